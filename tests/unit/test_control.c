/* Unit tests for src/queue/control.c: the ternctl command line parser. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "queue/control.h"

static int
parse(const char *s, struct control_cmd *c, const char **why)
{
	return control_parse(s, strlen(s), c, why);
}

static void
test_good(void **state)
{
	struct control_cmd c;
	const char *why = NULL;

	(void)state;
	assert_int_equal(parse("HOLD 0186c2a4f1e0b7d3", &c, &why), 0);
	assert_int_equal(c.verb, CTL_HOLD);
	assert_string_equal(c.id, "0186c2a4f1e0b7d3");
	assert_int_equal(parse("release 0186c2a4f1e0b7d3", &c, &why), 0);
	assert_int_equal(c.verb, CTL_RELEASE);
	assert_int_equal(parse("Delete 0000000000000000", &c, &why), 0);
	assert_int_equal(c.verb, CTL_DELETE);
	assert_string_equal(c.id, "0000000000000000");
	assert_int_equal(parse("STATUS", &c, &why), 0);
	assert_int_equal(c.verb, CTL_STATUS);
	assert_string_equal(c.id, "");
}

static void
test_bad(void **state)
{
	struct control_cmd c;
	const char *why = NULL;

	(void)state;
	assert_int_equal(parse("", &c, &why), -1);
	assert_string_equal(why, "unknown command");
	assert_int_equal(parse("HOLDX 0186c2a4f1e0b7d3", &c, &why), -1);
	assert_string_equal(why, "unknown command");
	assert_int_equal(parse("HOLD", &c, &why), -1);
	assert_string_equal(why, "a queue ID (16 hex digits) is needed");
	assert_int_equal(parse("HOLD ", &c, &why), -1);
	assert_int_equal(parse("HOLD 0186C2A4F1E0B7D3", &c, &why), -1);	/* IDs are lower case */
	assert_int_equal(parse("HOLD 0186c2a4f1e0b7d", &c, &why), -1);
	assert_int_equal(parse("HOLD 0186c2a4f1e0b7d33", &c, &why), -1);
	assert_int_equal(parse("HOLD  0186c2a4f1e0b7d3", &c, &why), -1);
	assert_int_equal(parse("HOLD ../../etc/passw", &c, &why), -1);
	assert_int_equal(parse("STATUS now", &c, &why), -1);
	assert_string_equal(why, "this command takes no argument");
	/* Not NUL-terminated: the length decides. */
	assert_int_equal(control_parse("STATUSXYZ", 6, &c, &why), 0);
	assert_int_equal(control_parse("HOLD 0186c2a4f1e0b7d3", 20, &c, &why), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
