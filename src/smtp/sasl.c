/* sasl — PLAIN and base64 for AUTH (see sasl.h). */
#include "smtp/sasl.h"

#include <string.h>

#include "common/base64.h"

#include "smtp/parse.h"

long
sasl_b64_decode(const char *in, size_t len, unsigned char *out, size_t outsz)
{
	size_t n;

	if (base64_decode(in, len, BASE64_CANONICAL, out, outsz, &n) == -1)
		return -1;
	return (long)n;
}

long
sasl_b64_encode(const unsigned char *in, size_t len, char *out, size_t outsz)
{
	size_t n;

	if (BASE64_ENCODED_LEN(len) + 1 > outsz)
		return -1;
	n = base64_encode(in, len, out);
	out[n] = '\0';
	return (long)n;
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
