/* libFuzzer: the client's reply reader and EHLO keyword parser (src/smtp/reply.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct smtp_reply rp;	/* large: keep it off the stack */
	struct reply_reader r;
	struct ehlo_caps caps;
	size_t off = 0, used, step = size ? (data[0] % 16) + 1 : 1;

	reply_reader_init(&r);
	while (off < size) {
		size_t k = size - off < step ? size - off : step;
		enum reply_status st = reply_feed(&r, (const char *)data + off, k, &used, &rp);

		if (used > k)
			abort();
		off += used;
		if (st == REPLY_ERROR)
			break;
		if (st == REPLY_DONE) {
			if (rp.code < 200 || rp.code > 599 || rp.textlen >= sizeof(rp.text) ||
			    rp.text[rp.textlen] != '\0' || rp.nlines == 0)
				abort();
			reply_ehlo_caps(&rp, &caps);
		} else if (used == 0)
			break;
	}
	reply_reader_free(&r);
	return 0;
}
