/* journal — the relay journal's line format (see journal.h). */
#include "queue/journal.h"

#include <stdio.h>
#include <string.h>

static int
is_id(const char *p)
{
	size_t i;

	for (i = 0; i < QUEUE_ID_LEN; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	return 1;
}

int
journal_parse_line(const char *p, size_t n, struct journal_line *out)
{
	uint32_t v = 0;
	size_t i, end = n;
	int report = 0;

	if (n >= 2 && p[n - 2] == ' ' && p[n - 1] == 'r') {
		report = 1;
		end = n - 2;
	}
	if (end < QUEUE_ID_LEN + 2 || end > QUEUE_ID_LEN + 6 || p[QUEUE_ID_LEN] != ' ' || !is_id(p))
		return -1;
	if (p[QUEUE_ID_LEN + 1] == '0' && end > QUEUE_ID_LEN + 2)
		return -1;
	for (i = QUEUE_ID_LEN + 1; i < end; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (uint32_t)(p[i] - '0');
	}
	if (v >= ENVELOPE_MAX_RCPT)
		return -1;
	memcpy(out->id, p, QUEUE_ID_LEN);
	out->id[QUEUE_ID_LEN] = '\0';
	out->index = v;
	out->report = report;
	return 0;
}

size_t
journal_format_line(char *buf, size_t size, const char *id, uint32_t index, int report)
{
	int w;

	if (strlen(id) != QUEUE_ID_LEN || !is_id(id) || index >= ENVELOPE_MAX_RCPT)
		return 0;
	w = snprintf(buf, size, "%s %u%s\n", id, (unsigned)index, report ? " r" : "");
	return w < 0 || (size_t)w >= size ? 0 : (size_t)w;
}
