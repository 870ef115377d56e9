/* libFuzzer: the header-section reader of submission (src/server/submit.c) and SASL decoding. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/submit.h"
#include "smtp/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct submit_headers h;
	struct sasl_creds cr;
	unsigned char raw[1024];
	char enc[2048];
	long n, m;
	size_t i;

	submit_scan_headers((const char *)data, size, &h);
	for (i = 0; i < h.naddr && i < SUBMIT_FROM_MAX; i++)
		if (strlen(h.from[i]) >= sizeof(h.from[i]))
			abort();
	/* base64 round trip: what decodes must encode back to the same text. */
	n = sasl_b64_decode((const char *)data, size, raw, sizeof(raw));
	if (n >= 0) {
		m = sasl_b64_encode(raw, (size_t)n, enc, sizeof(enc));
		if (m != (long)size || memcmp(enc, data, size) != 0)
			abort();
		sasl_plain_parse(raw, (size_t)n, &cr);
	}
	return 0;
}
