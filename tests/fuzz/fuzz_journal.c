/*
 * libFuzzer: the relay journal's line parser (src/queue/journal.c). An
 * accepted line names a well-formed queue ID and an index in range, and
 * journal_format_line prints it back to exactly the input (and its LF).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct journal_line l;
	char back[64];
	char *copy;

	if (size > 256)
		return 0;
	/* An exact-size copy, so ASan catches a read past size. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	if (size)
		memcpy(copy, data, size);
	if (journal_parse_line(copy, size, &l) == 0) {
		size_t n = journal_format_line(back, sizeof(back), l.id, l.index, l.report);

		if (l.index >= ENVELOPE_MAX_RCPT || n != size + 1 || memcmp(back, copy, size) != 0 ||
		    back[size] != '\n')
			abort();
	}
	free(copy);
	return 0;
}
