/*
 * base64 — RFC 4648 section 4 encoding, one implementation for every user
 * (SASL in AUTH, DKIM's b=/bh=/p= values, keys).
 */
#ifndef TERN_BASE64_H
#define TERN_BASE64_H

#include <stddef.h>

/* Decoding modes. */
#define BASE64_SKIP_FWS   0x1	/* ignore SP, HTAB, CR, LF anywhere (RFC 6376 2.4) */
#define BASE64_CANONICAL  0x2	/* bits below the padding must be zero (RFC 4648 3.5) */

/* Characters base64_encode writes for n input bytes (without a NUL). */
#define BASE64_ENCODED_LEN(n) (((n) + 2) / 3 * 4)

/*
 * Decodes len bytes of in into out (at most max bytes); *outlen gets the
 * decoded length. Padding is required and only at the end. Returns 0, or
 * -1 on a bad character, bad padding or if the result passes max.
 */
int  base64_decode(const char *in, size_t len, unsigned flags, unsigned char *out,
    size_t max, size_t *outlen);

/*
 * Encodes n bytes of in into out, which must hold BASE64_ENCODED_LEN(n)
 * characters (no NUL is written). Returns the number written.
 */
size_t base64_encode(const unsigned char *in, size_t n, char *out);

#endif
