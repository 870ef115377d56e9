/* Unit tests for src/queue/journal.c: the relay journal's lines. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "queue/journal.h"

static int
parse(const char *s, char *id, uint32_t *k)
{
	return journal_parse_line(s, strlen(s), id, k);
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
	assert_int_equal(journal_parse_line("0186c2a4f1e0b7d3 12", 18, id, &k), 0);
	assert_int_equal(k, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
