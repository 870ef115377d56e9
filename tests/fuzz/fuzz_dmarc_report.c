/*
 * libFuzzer: the DMARC report record line parser (src/mailauth/dmarc_report.c).
 * Lines are read back from a file other processes of the same user could
 * write. A line that parses must format to exactly the same bytes (the
 * format has one spelling per record), and aggregating and writing the XML
 * of what parsed must stay within its buffer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/dmarc_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct drep_record r;
	static char line[DREP_LINE_MAX + 2];
	struct drep_meta m = { "org", "a@b", "id", 0, 1 };
	struct drep_agg a;
	struct buf out;
	int n;

	if (drep_line_parse((const char *)data, size, &r) == -1)
		return 0;
	n = drep_line_format(&r, line, sizeof(line));
	if (n < 1 || (size_t)n != size + 1 || memcmp(line, data, size) != 0 || line[size] != '\n')
		abort();
	drep_agg_init(&a);
	if (drep_agg_add(&a, &r) == -1 || drep_agg_add(&a, &r) == -1 || a.ngroups != r.nrua ||
	    a.groups[0].rows[0].count != 2)
		abort();
	buf_init(&out, 1 << 16);
	if (drep_xml(&a.groups[0], &m, &out) == -1)
		abort();
	buf_free(&out);
	drep_agg_free(&a);
	return 0;
}
