/* journal — the relay journal's line format (see journal.h). */
#include "queue/journal.h"

#include <string.h>

int
journal_parse_line(const char *p, size_t n, char id[QUEUE_ID_LEN + 1], uint32_t *index)
{
	uint32_t v = 0;
	size_t i;

	if (n < QUEUE_ID_LEN + 2 || n > QUEUE_ID_LEN + 6 || p[QUEUE_ID_LEN] != ' ')
		return -1;
	for (i = 0; i < QUEUE_ID_LEN; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return -1;
	if (p[QUEUE_ID_LEN + 1] == '0' && n > QUEUE_ID_LEN + 2)
		return -1;
	for (i = QUEUE_ID_LEN + 1; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (uint32_t)(p[i] - '0');
	}
	if (v >= ENVELOPE_MAX_RCPT)
		return -1;
	memcpy(id, p, QUEUE_ID_LEN);
	id[QUEUE_ID_LEN] = '\0';
	*index = v;
	return 0;
}
