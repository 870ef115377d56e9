/* orgdomain — Organizational Domains from the Public Suffix List (see orgdomain.h). */
#include "mailauth/orgdomain.h"

#include <libpsl.h>
#include <stdlib.h>
#include <string.h>

#define ORGDOMAIN_NAME_MAX 253

struct orgdomain {
	const psl_ctx_t *psl;
	psl_ctx_t       *owned;		/* NULL when psl is libpsl's built-in list */
};

struct orgdomain *
orgdomain_open(const char *path)
{
	struct orgdomain *od;

	if ((od = calloc(1, sizeof(*od))) == NULL)
		return NULL;
	od->owned = psl_load_file(path ? path : ORGDOMAIN_DEFAULT_LIST);
	if (od->owned == NULL)
		od->owned = psl_latest(NULL);
	od->psl = od->owned ? od->owned : psl_builtin();
	if (od->psl == NULL) {
		free(od);
		return NULL;
	}
	return od;
}

void
orgdomain_close(struct orgdomain *od)
{
	if (od == NULL)
		return;
	psl_free(od->owned);
	free(od);
}

/* Lower-cases ASCII into lc; rejects what cannot be a domain name. */
static int
normalize(const char *name, size_t len, char *lc)
{
	size_t i;

	if (len > 0 && name[len - 1] == '.')
		len--;	/* the root label: "example.com." is example.com */
	if (len == 0 || len > ORGDOMAIN_NAME_MAX || name[0] == '.')
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '\0' || c == ' ' || (c == '.' && name[i - 1] == '.'))
			return -1;
		lc[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : (char)c;
	}
	lc[len] = '\0';
	return 0;
}

int
orgdomain_get(const struct orgdomain *od, const char *name, size_t len,
    char *out, size_t outlen)
{
	char lc[ORGDOMAIN_NAME_MAX + 1];
	const char *reg;
	size_t n;

	if (normalize(name, len, lc) == -1)
		return -1;
	/* NULL when lc is itself a public suffix (or under none at all). */
	if ((reg = psl_registrable_domain(od->psl, lc)) == NULL)
		return -1;
	n = strlen(reg);
	if (n + 1 > outlen)
		return -1;
	memcpy(out, reg, n + 1);
	return 0;
}

int
orgdomain_same(const struct orgdomain *od, const char *a, size_t al,
    const char *b, size_t bl)
{
	char oa[ORGDOMAIN_NAME_MAX + 1], ob[ORGDOMAIN_NAME_MAX + 1];

	if (orgdomain_get(od, a, al, oa, sizeof(oa)) == -1 ||
	    orgdomain_get(od, b, bl, ob, sizeof(ob)) == -1)
		return 0;
	return strcmp(oa, ob) == 0;
}
