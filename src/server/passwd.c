/* passwd — password checks with libxcrypt (see passwd.h). */
#include "server/passwd.h"

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const crypt_prefixes[] = {
	"{CRYPT}", "{SHA512-CRYPT}", "{SHA256-CRYPT}", "{BLF-CRYPT}", "{MD5-CRYPT}",
};

/* The crypt(3) hash inside a field, or NULL. */
static const char *
hash_of(const char *stored)
{
	size_t i;

	for (i = 0; i < sizeof(crypt_prefixes) / sizeof(crypt_prefixes[0]); i++)
		if (strncasecmp(stored, crypt_prefixes[i], strlen(crypt_prefixes[i])) == 0)
			return stored + strlen(crypt_prefixes[i]);
	return stored[0] == '$' ? stored : NULL;
}

enum passwd_kind
passwd_kind(const char *stored)
{
	const char *h;

	if (stored == NULL || stored[0] == '\0' || strcmp(stored, "*") == 0 || stored[0] == '!')
		return PASSWD_NONE;
	if (strncasecmp(stored, "{PLAIN}", 7) == 0)
		return PASSWD_PLAIN;
	if ((h = hash_of(stored)) != NULL && h[0] == '$')
		return PASSWD_HASH;
	return PASSWD_UNKNOWN;
}

static int
same(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, n = la > lb ? la : lb;
	unsigned char d = la != lb;

	for (i = 0; i < n; i++)
		d |= (unsigned char)((i < la ? a[i] : 0) ^ (i < lb ? b[i] : 0));
	return d == 0;
}

int
passwd_verify(const char *stored, const char *password, int allow_plain)
{
	struct crypt_data *cd;
	const char *h, *r;
	int ok;

	switch (passwd_kind(stored)) {
	case PASSWD_PLAIN:
		return allow_plain && same(stored + 7, password);
	case PASSWD_HASH:
		break;
	default:
		return 0;
	}
	h = hash_of(stored);
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return 0;
	r = crypt_r(password, h, cd);
	ok = r != NULL && r[0] != '*' && same(r, h);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

int
passwd_hash(const char *password, char *out, size_t outsz)
{
	struct crypt_data *cd;
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	const char *r;
	int ok = -1;

	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof(setting)) == NULL)
		return -1;
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return -1;
	r = crypt_r(password, setting, cd);
	if (r && r[0] == '$' && (size_t)snprintf(out, outsz, "{CRYPT}%s", r) < outsz)
		ok = 0;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}
