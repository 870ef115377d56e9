/* Unit tests for src/queue/journal.c: the relay journal's lines. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "queue/journal.h"

static struct journal_line line;

/* Parses s into `line`; id and k point into it for the checks. */
static int
parse(const char *s, char *id, uint32_t *k)
{
	int r = journal_parse_line(s, strlen(s), &line);

	if (r == 0) {
		memcpy(id, line.id, sizeof(line.id));
		*k = line.index;
	}
	return r;
}

static void
test_lines(void **state)
{
	char id[QUEUE_ID_LEN + 1];
	uint32_t k = 77;

	(void)state;
	assert_int_equal(parse("0186c2a4f1e0b7d3 0", id, &k), 0);
	assert_string_equal(id, "0186c2a4f1e0b7d3");
	assert_int_equal(k, 0);
	assert_int_equal(parse("0186c2a4f1e0b7d3 9999", id, &k), 0);
	assert_int_equal(k, 9999);
	assert_int_equal(parse("0186c2a4f1e0b7d3 10000", id, &k), -1);	/* ENVELOPE_MAX_RCPT */
	assert_int_equal(parse("0186c2a4f1e0b7d3 01", id, &k), -1);
	assert_int_equal(parse("0186c2a4f1e0b7d3 ", id, &k), -1);
	assert_int_equal(parse("0186c2a4f1e0b7d3", id, &k), -1);
	assert_int_equal(parse("0186C2A4F1E0B7D3 1", id, &k), -1);
	assert_int_equal(parse("0186c2a4f1e0b7d 1", id, &k), -1);
	assert_int_equal(parse("0186c2a4f1e0b7d3  1", id, &k), -1);
	assert_int_equal(parse("0186c2a4f1e0b7d3 1x", id, &k), -1);
	assert_int_equal(parse("0186c2a4f1e0b7d3 -1", id, &k), -1);
	/* The length decides, not a NUL. */
	assert_int_equal(journal_parse_line("0186c2a4f1e0b7d3 12", 18, &line), 0);
	assert_int_equal(line.index, 1);
	assert_int_equal(line.report, 0);
}

/* " r": the success report is ours (the peer did not take the DSN duty). */
static void
test_report_flag(void **state)
{
	char id[QUEUE_ID_LEN + 1];
	uint32_t k = 77;

	(void)state;
	assert_int_equal(parse("0186c2a4f1e0b7d3 3 r", id, &k), 0);
	assert_int_equal(k, 3);
	assert_int_equal(line.report, 1);
	assert_int_equal(parse("0186c2a4f1e0b7d3 9999 r", id, &k), 0);
	assert_int_equal(parse("0186c2a4f1e0b7d3 3", id, &k), 0);
	assert_int_equal(line.report, 0);
	assert_int_equal(parse("0186c2a4f1e0b7d3 3 R", id, &k), -1);
	assert_int_equal(parse("0186c2a4f1e0b7d3 3 rr", id, &k), -1);
	assert_int_equal(parse("0186c2a4f1e0b7d3 3r", id, &k), -1);
	assert_int_equal(parse("0186c2a4f1e0b7d3 3  r", id, &k), -1);
	assert_int_equal(parse("0186c2a4f1e0b7d3 r", id, &k), -1);
	assert_int_equal(parse(" r", id, &k), -1);
	assert_int_equal(parse("r", id, &k), -1);
}

static void
test_format(void **state)
{
	char buf[JOURNAL_LINE_MAX + 1];

	(void)state;
	assert_int_equal(journal_format_line(buf, sizeof(buf), "0186c2a4f1e0b7d3", 9999, 1),
	    JOURNAL_LINE_MAX);
	assert_memory_equal(buf, "0186c2a4f1e0b7d3 9999 r\n", JOURNAL_LINE_MAX);
	assert_int_equal(journal_format_line(buf, sizeof(buf), "0186c2a4f1e0b7d3", 0, 0), 19);
	assert_memory_equal(buf, "0186c2a4f1e0b7d3 0\n", 19);
	/* What the queue cannot parse is never written. */
	assert_int_equal(journal_format_line(buf, sizeof(buf), "0186c2a4f1e0b7d3", 10000, 0), 0);
	assert_int_equal(journal_format_line(buf, sizeof(buf), "0186C2A4F1E0B7D3", 1, 0), 0);
	assert_int_equal(journal_format_line(buf, sizeof(buf), "0186c2a4f1e0b7d", 1, 0), 0);
	assert_int_equal(journal_format_line(buf, 10, "0186c2a4f1e0b7d3", 1, 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_report_flag),
		cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
