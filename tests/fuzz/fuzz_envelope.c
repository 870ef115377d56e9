/*
 * Fuzz harness for envelope_decode: arbitrary bytes must be refused or
 * decoded; whatever decodes must encode, and that encoding must be a
 * fixed point (decode then encode gives the same bytes again). A version 1
 * or 2 input is written as version 3, so the fixed point is checked from
 * there. A refused input leaves nothing allocated (rcpts, prepend).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
encode_or_abort(const struct envelope *e, struct buf *out)
{
	if (envelope_encode(e, out) == -1)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope e1, e2;
	struct buf b1, b2;
	const char *why;
	char *copy;

	/* An exact-size copy, so ASan catches a read past size. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	if (size)
		memcpy(copy, data, size);
	if (envelope_decode(copy, size, &e1, &why) == -1) {
		if (why == NULL || e1.rcpts != NULL || e1.nrcpts != 0 || e1.prepend != NULL)
			abort();
		free(copy);
		return 0;
	}
	buf_init(&b1, 64u * 1024 * 1024);
	buf_init(&b2, 64u * 1024 * 1024);
	encode_or_abort(&e1, &b1);
	if (envelope_decode(b1.data, b1.len, &e2, &why) == -1)
		abort();
	encode_or_abort(&e2, &b2);
	if (b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0)
		abort();
	envelope_free(&e1);
	envelope_free(&e2);
	buf_free(&b1);
	buf_free(&b2);
	free(copy);
	return 0;
}
