/* Unit tests for src/common/log.c: a line's body is what printf would make
 * of the format, whether log.c formats it itself or hands it to vsnprintf. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

#define BODY_MAX 2047	/* log.c: from "proc=" on */

static FILE *captured;	/* log lines go here */
static int saved_stderr = -1;	/* cmocka's messages keep going there */

static int
capture(void **state)
{
	(void)state;
	captured = tmpfile();
	if (captured == NULL || (saved_stderr = dup(STDERR_FILENO)) == -1)
		return -1;
	log_init(1, 1, NULL);
	log_set_proc("test");
	return 0;
}

/* stderr into the capture file for one log line, then back. */
static void
to_capture(int on)
{
	assert_int_not_equal(dup2(on ? fileno(captured) : saved_stderr, STDERR_FILENO), -1);
}

/* The last line written, from "proc=" on, without its newline. */
static const char *
last_body(void)
{
	static char buf[8192];
	const char *p, *line = buf;
	size_t n;

	fflush(captured);
	rewind(captured);
	n = fread(buf, 1, sizeof(buf) - 1, captured);
	buf[n] = '\0';
	assert_true(n > 0 && buf[n - 1] == '\n');
	buf[n - 1] = '\0';
	if ((p = strrchr(buf, '\n')) != NULL)
		line = p + 1;
	assert_int_equal(ftruncate(fileno(captured), 0), 0);
	rewind(captured);
	/* "2026-11-29T09:06:25.256Z pid=649 ": milliseconds with three digits. */
	assert_true(strlen(line) > 30 && line[4] == '-' && line[10] == 'T' && line[19] == '.');
	assert_true(line[20] >= '0' && line[20] <= '9' && line[22] >= '0' && line[22] <= '9');
	assert_memory_equal(line + 23, "Z pid=", 6);
	assert_non_null(p = strstr(line, " proc=test level=info "));
	return p + 1;
}

/* Logs fmt with its arguments and compares the body with snprintf's. */
#define CHECK(...) do {							\
	char want_[BODY_MAX + 64];					\
	int h_ = snprintf(want_, sizeof(want_), "proc=test level=info ");	\
									\
	snprintf(want_ + h_, (size_t)(BODY_MAX + 1 - h_), __VA_ARGS__);	\
	to_capture(1);							\
	log_info(__VA_ARGS__);						\
	to_capture(0);							\
	assert_string_equal(last_body(), want_);			\
} while (0)

static void
test_conversions(void **state)
{
	const char *none = getenv("TERN_TEST_UNSET_VARIABLE");	/* NULL, unknown to the compiler */

	(void)state;
	CHECK("event=plain text");
	CHECK("%s", "");
	CHECK("a=%s b=%s", "x y", none);
	CHECK("%d %d %d %i", 0, -1, INT_MIN, INT_MAX);
	CHECK("%u %u %x %x", 0u, UINT_MAX, 0u, 0xdeadbeefu);
	CHECK("%ld %ld %lu %lx", LONG_MIN, LONG_MAX, ULONG_MAX, ULONG_MAX);
	CHECK("%lld %llu %llx", LLONG_MIN, ULLONG_MAX, 0x123456789abcdefULL);
	CHECK("%zu %zd %zx", SIZE_MAX, (ssize_t)-5, (size_t)255);
	CHECK("%" PRIu64 " %" PRId64 " %" PRIx64, UINT64_MAX, INT64_MIN, (uint64_t)1 << 40);
	CHECK("100%% %c%c", 'o', 'k');
	CHECK("id=%s size=%" PRIu64 " nrcpt=%zu client=%s",
	    "661669b97e708000", (uint64_t)5250, (size_t)1, "127.0.0.1");
}

/* What log.c leaves to vsnprintf: flags, widths, precisions, other types. */
static void
test_fallbacks(void **state)
{
	(void)state;
	CHECK("%5d|%-6s|%.3s|%02x|%X", 42, "ab", "abcdef", 7u, 255u);
	CHECK("a=%s then %08.3f", "x", 3.14159);
	CHECK("%o %p", 8u, (void *)0);
	CHECK("%s %*d", "w", 4, 9);
	CHECK("trailing %s %5s", "one", "two");
}

/* Bodies longer than the line: cut where vsnprintf would cut them. */
static void
test_long_lines(void **state)
{
	char big[3000];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK("a=%s", big);
	CHECK("a=%s b=%d", big + 1000, 77);
	CHECK("%s%s", big + 1500, big + 1000);
	CHECK("n=%d %5s%s", 1, "w", big);
	to_capture(1);
	log_info("a=%s", big);
	to_capture(0);
	assert_int_equal(strlen(last_body()), BODY_MAX);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conversions),
		cmocka_unit_test(test_fallbacks),
		cmocka_unit_test(test_long_lines),
	};

	return cmocka_run_group_tests(tests, capture, NULL);
}
