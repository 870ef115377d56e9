/*
 * libFuzzer: the relay journal's line parser (src/queue/journal.c). An
 * accepted line names a well-formed queue ID and an index in range, and
 * prints back to exactly the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char id[QUEUE_ID_LEN + 1], back[64];
	uint32_t k;
	char *copy;

	if (size > 256)
		return 0;
	/* An exact-size copy, so ASan catches a read past size. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	if (size)
		memcpy(copy, data, size);
	if (journal_parse_line(copy, size, id, &k) == 0) {
		int n = snprintf(back, sizeof(back), "%s %u", id, (unsigned)k);

		if (k >= ENVELOPE_MAX_RCPT || n < 0 || (size_t)n != size || memcmp(back, copy, size) != 0)
			abort();
	}
	free(copy);
	return 0;
}
