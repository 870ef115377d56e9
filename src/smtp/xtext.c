/* xtext — the DSN extension's parameters (see xtext.h; RFC 3461). */
#include "smtp/xtext.h"

#include <string.h>

static int
upper_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;	/* RFC 3461 4: "two upper case hexadecimal digits" */
}

/* RFC 3461 4: xchar = any CHAR from 33 to 126 except "+" and "=". */
static int
is_xchar(unsigned char c)
{
	return c >= 33 && c <= 126 && c != '+' && c != '=';
}

ssize_t
xtext_decode(const char *in, size_t len, char *out, size_t outsz)
{
	size_t i, o = 0;
	int hi, lo;
	unsigned char c;

	if (outsz == 0)
		return -1;
	for (i = 0; i < len; i++) {
		c = (unsigned char)in[i];
		if (c == '+') {
			if (len - i < 3 || (hi = upper_hex(in[i + 1])) < 0 ||
			    (lo = upper_hex(in[i + 2])) < 0)
				return -1;
			if ((c = (unsigned char)(hi << 4 | lo)) == 0)
				return -1;
			i += 2;
		} else if (!is_xchar(c))
			return -1;
		if (o + 1 >= outsz)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (ssize_t)o;
}

ssize_t
xtext_encode(const char *in, size_t len, char *out, size_t outsz)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, o = 0;
	unsigned char c;

	if (outsz == 0)
		return -1;
	for (i = 0; i < len; i++) {
		c = (unsigned char)in[i];
		if (is_xchar(c)) {
			if (o + 1 >= outsz)
				return -1;
			out[o++] = (char)c;
			continue;
		}
		if (o + 3 >= outsz)
			return -1;
		out[o++] = '+';
		out[o++] = hex[c >> 4];
		out[o++] = hex[c & 0x0f];
	}
	out[o] = '\0';
	return (ssize_t)o;
}

/* Case-insensitive match of s[0..n) against an upper-case ASCII word. */
static int
word_is(const char *s, size_t n, const char *w)
{
	size_t i;
	char c;

	if (strlen(w) != n)
		return 0;
	for (i = 0; i < n; i++) {
		c = s[i];
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (c != w[i])
			return 0;
	}
	return 1;
}

static unsigned
notify_word(const char *s, size_t n)
{
	if (word_is(s, n, "NEVER"))
		return DSN_NOTIFY_NEVER;
	if (word_is(s, n, "SUCCESS"))
		return DSN_NOTIFY_SUCCESS;
	if (word_is(s, n, "FAILURE"))
		return DSN_NOTIFY_FAILURE;
	if (word_is(s, n, "DELAY"))
		return DSN_NOTIFY_DELAY;
	return 0;
}

int
dsn_notify_valid(unsigned bits)
{
	/* RFC 3461 4.1: NEVER only alone. */
	if (bits == DSN_NOTIFY_NEVER || bits == 0)
		return 1;
	return (bits & ~(DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE |
	    DSN_NOTIFY_DELAY)) == 0;
}

int
dsn_parse_notify(const char *val, size_t len, unsigned *bits)
{
	const char *p = val, *end = val + len, *comma;
	unsigned acc = 0, b;

	if (len == 0)
		return -1;
	for (;;) {
		comma = memchr(p, ',', (size_t)(end - p));
		b = notify_word(p, (size_t)((comma ? comma : end) - p));
		if (b == 0 || (acc & b))
			return -1;	/* unknown, empty or repeated */
		acc |= b;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	if (!dsn_notify_valid(acc))
		return -1;
	*bits = acc;
	return 0;
}

int
dsn_parse_ret(const char *val, size_t len, enum dsn_ret *ret)
{
	if (word_is(val, len, "FULL"))
		*ret = DSN_RET_FULL;
	else if (word_is(val, len, "HDRS"))
		*ret = DSN_RET_HDRS;
	else
		return -1;
	return 0;
}

/* Every decoded octet within [lo, 126], or also above 127 if high. */
static int
all_printable(const char *s, size_t n, unsigned char lo, int high)
{
	size_t i;
	unsigned char c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c >= 0x80 ? !high : (c < lo || c > 126))
			return 0;
	}
	return 1;
}

int
dsn_parse_envid(const char *val, size_t len, char *out, size_t outsz)
{
	ssize_t n;

	if (len == 0 || len > DSN_ENVID_MAX)
		return -1;
	if ((n = xtext_decode(val, len, out, outsz)) < 0)
		return -1;
	/* RFC 3461 4.4: printable (graphic and white space) US-ASCII. */
	return all_printable(out, (size_t)n, 0x20, 0) ? 0 : -1;
}

/* RFC 5322 atext without '=', which an esmtp-value cannot hold. */
static int
is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != '=' && c < 0x80 &&
	    strchr("!#$%&'*+-/?^_`{|}~", c) != NULL && c != '\0');
}

int
dsn_parse_orcpt(const char *val, size_t len, char *out, size_t outsz)
{
	const char *semi;
	size_t tlen, i;
	ssize_t n;

	if (len == 0 || len > DSN_ORCPT_MAX ||
	    (semi = memchr(val, ';', len)) == NULL)
		return -1;
	if ((tlen = (size_t)(semi - val)) == 0 || tlen + 1 >= outsz)
		return -1;
	for (i = 0; i < tlen; i++)
		if (!is_atext((unsigned char)val[i]))
			return -1;
	memcpy(out, val, tlen);
	out[tlen] = ';';
	n = xtext_decode(semi + 1, len - tlen - 1, out + tlen + 1,
	    outsz - tlen - 1);
	if (n <= 0)
		return -1;
	/* RFC 3461 4.2: printable US-ASCII; RFC 6533 3: utf-8 adds UTF-8. */
	if (!all_printable(out + tlen + 1, (size_t)n, 0x20,
	    word_is(val, tlen, "UTF-8")))
		return -1;
	return 0;
}
