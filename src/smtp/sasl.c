/* sasl — PLAIN and base64 for AUTH (see sasl.h). */
#include "smtp/sasl.h"

#include <string.h>

#include "smtp/parse.h"

static int
b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long
sasl_b64_decode(const char *in, size_t len, unsigned char *out, size_t outsz)
{
	size_t i, o = 0;

	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i += 4) {
		int v[4], k, pad = 0;
		unsigned long w;

		for (k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];

			if (c == '=' && i + 4 == len && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad || (v[k] = b64_val(c)) < 0)
				return -1;
		}
		w = ((unsigned long)v[0] << 18) | ((unsigned long)v[1] << 12) |
		    ((unsigned long)v[2] << 6) | (unsigned long)v[3];
		/* Bits below the padding must be zero (RFC 4648 3.5, canonical form). */
		if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
			return -1;
		if (o + 3 - (size_t)pad > outsz)
			return -1;
		out[o++] = (unsigned char)(w >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(w >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)w;
	}
	return (long)o;
}

long
sasl_b64_encode(const unsigned char *in, size_t len, char *out, size_t outsz)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	if ((len + 2) / 3 * 4 + 1 > outsz)
		return -1;
	for (i = 0; i < len; i += 3) {
		unsigned long w = (unsigned long)in[i] << 16;

		if (i + 1 < len)
			w |= (unsigned long)in[i + 1] << 8;
		if (i + 2 < len)
			w |= in[i + 2];
		out[o++] = tab[(w >> 18) & 63];
		out[o++] = tab[(w >> 12) & 63];
		out[o++] = i + 1 < len ? tab[(w >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? tab[w & 63] : '=';
	}
	out[o] = '\0';
	return (long)o;
}

static int
take_field(const unsigned char *p, size_t n, char *out, int may_be_empty)
{
	if ((n == 0 && !may_be_empty) || n > SASL_FIELD_MAX ||
	    !smtp_utf8_valid((const char *)p, n))
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

int
sasl_plain_parse(const unsigned char *msg, size_t len, struct sasl_creds *out)
{
	const unsigned char *z1 = memchr(msg, '\0', len), *z2;
	size_t rest;

	memset(out, 0, sizeof(*out));
	if (z1 == NULL)
		return -1;
	rest = len - (size_t)(z1 - msg) - 1;
	if ((z2 = memchr(z1 + 1, '\0', rest)) == NULL)
		return -1;
	if (take_field(msg, (size_t)(z1 - msg), out->authzid, 1) == -1 ||
	    take_field(z1 + 1, (size_t)(z2 - z1 - 1), out->authcid, 0) == -1 ||
	    take_field(z2 + 1, len - (size_t)(z2 - msg) - 1, out->passwd, 0) == -1) {
		explicit_bzero(out, sizeof(*out));
		return -1;
	}
	return 0;
}
