/* base64 — RFC 4648 encoding and decoding (see base64.h). */
#include "common/base64.h"

#include <stdint.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

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

static int
is_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The last 2 or 3 characters of a padded group: k data characters in acc. */
static int
b64_tail(uint32_t acc, size_t k, unsigned flags, unsigned char *out, size_t *n, size_t max)
{
	if (k == 2) {
		if ((flags & BASE64_CANONICAL) && (acc & 0xf))
			return -1;
		if (*n + 1 > max)
			return -1;
		out[(*n)++] = (unsigned char)(acc >> 4);
	} else if (k == 3) {
		if ((flags & BASE64_CANONICAL) && (acc & 0x3))
			return -1;
		if (*n + 2 > max)
			return -1;
		out[(*n)++] = (unsigned char)(acc >> 10);
		out[(*n)++] = (unsigned char)(acc >> 2);
	}
	return 0;
}

int
base64_decode(const char *in, size_t len, unsigned flags, unsigned char *out,
    size_t max, size_t *outlen)
{
	uint32_t acc = 0;
	size_t i, n = 0, k = 0, pad = 0;
	int v;

	for (i = 0; i < len; i++) {
		if ((flags & BASE64_SKIP_FWS) && is_fws(in[i]))
			continue;
		if (in[i] == '=') {
			pad++;
			continue;
		}
		if (pad > 0 || (v = b64_val((unsigned char)in[i])) < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		if (++k % 4 == 0) {
			if (n + 3 > max)
				return -1;
			out[n++] = (unsigned char)(acc >> 16);
			out[n++] = (unsigned char)(acc >> 8);
			out[n++] = (unsigned char)acc;
			acc = 0;
		}
	}
	if ((k + pad) % 4 != 0 || pad > 2 || k % 4 == 1)
		return -1;
	if (b64_tail(acc, k % 4, flags, out, &n, max) == -1)
		return -1;
	*outlen = n;
	return 0;
}

size_t
base64_encode(const unsigned char *in, size_t n, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < n; i += 3) {
		uint32_t w = (uint32_t)in[i] << 16;

		if (i + 1 < n)
			w |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			w |= in[i + 2];
		out[o++] = b64_alphabet[(w >> 18) & 63];
		out[o++] = b64_alphabet[(w >> 12) & 63];
		out[o++] = i + 1 < n ? b64_alphabet[(w >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64_alphabet[w & 63] : '=';
	}
	return o;
}
