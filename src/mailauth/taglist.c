/* taglist — RFC 6376 3.2 tag=value lists (see taglist.h). */
#include "mailauth/taglist.h"

#include <stdio.h>
#include <string.h>

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static int
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* ALNUMPUNC = ALPHA / DIGIT / "_" */
static int
is_alnumpunc(char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9') || c == '_';
}

/* VALCHAR = %x21-3A / %x3C-7E (printable ASCII except ';') */
static int
is_valchar(char c)
{
	unsigned char u = (unsigned char)c;

	return u >= 0x21 && u <= 0x7e && u != ';';
}

/* Length of the FWS at s[i] (0 if none): [*WSP CRLF] 1*WSP, repeated. */
static size_t
fws_len(const char *s, size_t len, size_t i)
{
	size_t j = i;

	for (;;) {
		if (j < len && is_wsp(s[j]))
			j++;
		else if (j + 2 < len && s[j] == '\r' && s[j + 1] == '\n' && is_wsp(s[j + 2]))
			j += 3;
		else
			return j - i;
	}
}

static int
fail(char *err, size_t errlen, const char *why, size_t at)
{
	snprintf(err, errlen, "%s at offset %zu", why, at);
	return -1;
}

/* Scans a value from s[*ip]; stops at ';' or the end. */
static int
scan_value(const char *s, size_t len, size_t *ip, struct tag *t, char *err, size_t errlen)
{
	size_t i = *ip, end, f;

	end = i;

	t->val = s + i;
	while (i < len && s[i] != ';') {
		if (is_valchar(s[i])) {
			end = ++i;
		} else if ((f = fws_len(s, len, i)) > 0) {
			i += f;
		} else
			return fail(err, errlen, "bad character in tag value", i);
	}
	t->vallen = end - (size_t)(t->val - s);
	*ip = i;
	return 0;
}

static int
scan_spec(const char *s, size_t len, size_t *ip, struct tag *t, char *err, size_t errlen)
{
	size_t i = *ip;

	if (i >= len || !is_alpha(s[i]))
		return fail(err, errlen, i >= len || s[i] == ';' ? "empty tag" : "bad tag name", i);
	t->name = s + i;
	while (i < len && is_alnumpunc(s[i]))
		i++;
	t->namelen = (size_t)(s + i - t->name);
	i += fws_len(s, len, i);
	if (i >= len || s[i] != '=')
		return fail(err, errlen, "expected '=' after tag name", i);
	i++;
	i += fws_len(s, len, i);
	*ip = i;
	return scan_value(s, len, ip, t, err, errlen);
}

static int
is_dup(const struct taglist *tl, const struct tag *t)
{
	size_t k;

	for (k = 0; k < tl->n; k++)
		if (tl->t[k].namelen == t->namelen && memcmp(tl->t[k].name, t->name, t->namelen) == 0)
			return 1;
	return 0;
}

int
taglist_parse(const char *s, size_t len, struct taglist *tl, char *err, size_t errlen)
{
	size_t i = 0;
	struct tag t;

	tl->n = 0;
	i += fws_len(s, len, i);
	while (i < len) {
		if (scan_spec(s, len, &i, &t, err, errlen) == -1)
			return -1;
		/* RFC 6376 3.2: a duplicate tag invalidates the whole list. */
		if (is_dup(tl, &t))
			return fail(err, errlen, "duplicate tag", (size_t)(t.name - s));
		if (tl->n == TAGLIST_MAX)
			return fail(err, errlen, "too many tags", (size_t)(t.name - s));
		tl->t[tl->n++] = t;
		if (i < len)
			i++;	/* the ';' */
		i += fws_len(s, len, i);
	}
	return 0;
}

const struct tag *
taglist_find(const struct taglist *tl, const char *name)
{
	size_t k, n = strlen(name);

	for (k = 0; k < tl->n; k++)
		if (tl->t[k].namelen == n && memcmp(tl->t[k].name, name, n) == 0)
			return &tl->t[k];
	return NULL;
}

int
taglist_val_is(const struct tag *t, const char *s)
{
	size_t n = strlen(s);

	return t->vallen == n && memcmp(t->val, s, n) == 0;
}
