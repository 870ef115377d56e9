/*
 * libFuzzer: xtext and the DSN parameter parsers (src/smtp/xtext.c).
 * Whatever decodes must encode and decode back to the same octets (the
 * encoding itself need not match: "+41" for "A" is legal xtext), outputs
 * stay NUL-terminated within their buffers, and the parsers never accept
 * what their rules refuse.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/xtext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_xtext(const char *in, size_t size)
{
	static char out[4096 + 1], enc[3 * 4096 + 1], back[4096 + 1];
	ssize_t n, m;

	/* A small output buffer must fail cleanly, never overflow. */
	if (xtext_decode(in, size, out, size > 4 ? size / 2 : 1) >
	    (ssize_t)(size > 4 ? size / 2 : 1) - 1)
		abort();
	if ((n = xtext_decode(in, size, out, sizeof(out))) < 0)
		return;
	if ((size_t)n > size || out[n] != '\0' || memchr(out, '\0', (size_t)n))
		abort();
	if ((m = xtext_encode(out, (size_t)n, enc, sizeof(enc))) < 0 ||
	    (size_t)m > size)
		abort();
	if (xtext_decode(enc, (size_t)m, back, sizeof(back)) != n ||
	    memcmp(back, out, (size_t)n) != 0)
		abort();
}

static void
check_params(const char *in, size_t size)
{
	char out[DSN_ORCPT_MAX + 1];
	enum dsn_ret ret;
	unsigned bits;

	if (dsn_parse_notify(in, size, &bits) == 0 &&
	    (bits == 0 || !dsn_notify_valid(bits)))
		abort();
	if (dsn_parse_ret(in, size, &ret) == 0 && ret != DSN_RET_FULL &&
	    ret != DSN_RET_HDRS)
		abort();
	if (dsn_parse_envid(in, size, out, DSN_ENVID_MAX + 1) == 0 &&
	    strlen(out) > DSN_ENVID_MAX)
		abort();
	if (dsn_parse_orcpt(in, size, out, sizeof(out)) == 0 &&
	    (strchr(out, ';') == NULL || strlen(out) > DSN_ORCPT_MAX))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy;

	if (size > 4096)
		return 0;
	/* An exact-size copy, so ASan catches a read past size. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	if (size)
		memcpy(copy, data, size);
	check_xtext(copy, size);
	check_params(copy, size);
	free(copy);
	return 0;
}
