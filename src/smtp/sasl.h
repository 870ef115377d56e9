/*
 * sasl — the server side of the SASL mechanisms tern offers with AUTH
 * (RFC 4954): PLAIN (RFC 4616) and LOGIN, and the base64 (RFC 4648) they
 * travel in. Pure functions over (bytes, length).
 */
#ifndef TERN_SASL_H
#define TERN_SASL_H

#include <stddef.h>

#define SASL_FIELD_MAX 255	/* authcid, authzid, password: RFC 4616 allows 255 */

/* Strict base64: no blanks, correct padding. Returns the decoded length or -1. */
long sasl_b64_decode(const char *in, size_t len, unsigned char *out, size_t outsz);
/* Returns the encoded length (NUL-terminated) or -1 if out is too small. */
long sasl_b64_encode(const unsigned char *in, size_t len, char *out, size_t outsz);

struct sasl_creds {
	char authzid[SASL_FIELD_MAX + 1];
	char authcid[SASL_FIELD_MAX + 1];
	char passwd[SASL_FIELD_MAX + 1];
};

/*
 * PLAIN message "[authzid] NUL authcid NUL passwd" (already base64-decoded).
 * Each field is 1..255 UTF-8 octets without NUL (authzid may be empty).
 * Returns 0 or -1.
 */
int sasl_plain_parse(const unsigned char *msg, size_t len, struct sasl_creds *out);

#endif
