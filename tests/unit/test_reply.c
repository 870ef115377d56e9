/* Unit tests: the client's SMTP reply reader and EHLO keywords (src/smtp/reply.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/reply.h"

/* Feeds s in chunks of `step`, returns the first reply's status. */
static enum reply_status
feed_all(const char *s, size_t step, struct smtp_reply *out, size_t *consumed)
{
	struct reply_reader r;
	size_t off = 0, n = strlen(s), used;
	enum reply_status st = REPLY_MORE;

	reply_reader_init(&r);
	while (off < n && st == REPLY_MORE) {
		size_t k = n - off < step ? n - off : step;

		st = reply_feed(&r, s + off, k, &used, out);
		off += used;
	}
	*consumed = off;
	reply_reader_free(&r);
	return st;
}

static void
test_single(void **state)
{
	struct smtp_reply rp;
	size_t used;

	assert_int_equal(feed_all("250 2.1.0 Ok\r\n", 100, &rp, &used), REPLY_DONE);
	assert_int_equal(rp.code, 250);
	assert_string_equal(rp.enhanced, "2.1.0");
	assert_string_equal(rp.text, "2.1.0 Ok");
	assert_int_equal(rp.nlines, 1);
	assert_int_equal(used, 14);
	assert_int_equal(feed_all("354\r\n", 100, &rp, &used), REPLY_DONE);
	assert_int_equal(rp.code, 354);
	assert_string_equal(rp.enhanced, "");
	/* The class of the enhanced code must match the reply's. */
	assert_int_equal(feed_all("550 4.1.1 odd\r\n", 100, &rp, &used), REPLY_DONE);
	assert_string_equal(rp.enhanced, "");
}

/* One reader, one output, two replies: nothing of the long first one may
 * show through the short second one (a reply is emptied and copied field
 * by field, not whole). */
static void
test_reader_reused(void **state)
{
	static struct smtp_reply rp, copy;
	const char *two = "451-4.3.0 first line of a long reply\r\n"
	    "451-4.3.0 second line\r\n451 4.3.0 third\r\n354 go\r\n";
	struct reply_reader r;
	size_t off = 0, used;

	reply_reader_init(&r);
	assert_int_equal(reply_feed(&r, two, strlen(two), &used, &rp), REPLY_DONE);
	assert_int_equal(rp.code, 451);
	assert_string_equal(rp.enhanced, "4.3.0");
	assert_int_equal(rp.nlines, 3);
	assert_string_equal(rp.text,
	    "4.3.0 first line of a long reply\n4.3.0 second line\n4.3.0 third");
	off = used;
	assert_int_equal(reply_feed(&r, two + off, strlen(two) - off, &used, &rp), REPLY_DONE);
	assert_int_equal(rp.code, 354);
	assert_string_equal(rp.enhanced, "");
	assert_int_equal(rp.nlines, 1);
	assert_int_equal(rp.textlen, 2);
	assert_string_equal(rp.text, "go");
	reply_reader_free(&r);
	memset(&copy, 'X', sizeof(copy));
	reply_copy(&copy, &rp);
	assert_int_equal(copy.code, 354);
	assert_string_equal(copy.enhanced, "");
	assert_int_equal(copy.nlines, 1);
	assert_int_equal(copy.textlen, 2);
	assert_string_equal(copy.text, "go");
}

static void
test_multiline_every_split(void **state)
{
	const char *ehlo = "250-mx.example Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n"
	    "250-AUTH LOGIN PLAIN\r\n250-STARTTLS\r\n250 SMTPUTF8\r\n220 next\r\n";
	size_t step, used, first = strlen(ehlo) - strlen("220 next\r\n");
	struct smtp_reply rp;
	struct ehlo_caps caps;

	for (step = 1; step <= strlen(ehlo); step++) {
		assert_int_equal(feed_all(ehlo, step, &rp, &used), REPLY_DONE);
		assert_int_equal(used, first);
		assert_int_equal(rp.nlines, 6);
		assert_int_equal(rp.code, 250);
	}
	reply_ehlo_caps(&rp, &caps);
	assert_true(caps.pipelining);
	assert_true(caps.size_given);
	assert_int_equal(caps.size, 1000);
	assert_true(caps.auth_login);
	assert_true(caps.auth_plain);
	assert_true(caps.starttls);
	assert_true(caps.smtputf8);
	assert_false(caps.chunking);
	assert_false(caps.eightbitmime);
	assert_false(caps.dsn);
}

static void
test_errors(void **state)
{
	static const char *const bad[] = {
		"25 short\r\n", "abc x\r\n", "250x no separator\r\n", "150 wrong class\r\n",
		"250-a\r\n251 changed\r\n", "\r\n",
	};
	struct smtp_reply rp;
	size_t i, used;
	char longline[REPLY_LINE_MAX + 10];

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(feed_all(bad[i], 100, &rp, &used), REPLY_ERROR);
	memset(longline, 'x', sizeof(longline) - 1);
	memcpy(longline, "250 ", 4);
	longline[sizeof(longline) - 1] = '\0';
	assert_int_equal(feed_all(longline, 100, &rp, &used), REPLY_ERROR);
}

/* A reply whose text is longer than REPLY_TEXT_MAX is read whole; its text is cut. */
static void
test_long_text_cut(void **state)
{
	static char s[64 * (REPLY_LINE_MAX + 8)];
	static struct smtp_reply rp;
	size_t i, off = 0, used;

	for (i = 0; i < 20; i++) {
		off += (size_t)snprintf(s + off, sizeof(s) - off, "250%c", i == 19 ? ' ' : '-');
		memset(s + off, 'a' + (int)i, 1000);
		off += 1000;
		memcpy(s + off, "\r\n", 2);
		off += 2;
	}
	memcpy(s + off, "354 next\r\n", 11);
	s[off + 11] = '\0';
	assert_int_equal(feed_all(s, 4096, &rp, &used), REPLY_DONE);
	assert_int_equal(used, off);	/* all 20 lines, not the next reply */
	assert_int_equal(rp.code, 250);
	assert_int_equal(rp.nlines, 20);
	assert_int_equal(rp.textlen, REPLY_TEXT_MAX - 1);
	assert_int_equal(strlen(rp.text), REPLY_TEXT_MAX - 1);
	assert_int_equal(rp.text[0], 'a');
	assert_int_equal(rp.text[1000], '\n');
	assert_int_equal(rp.text[1001], 'b');
}

static void
test_pipelined(void **state)
{
	const char *s = "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n";
	struct reply_reader r;
	struct smtp_reply rp;
	size_t off = 0, used;
	int codes[3], n = 0;

	reply_reader_init(&r);
	while (off < strlen(s)) {
		enum reply_status st = reply_feed(&r, s + off, strlen(s) - off, &used, &rp);

		off += used;
		if (st == REPLY_DONE)
			codes[n++] = rp.code;
		assert_int_not_equal(st, REPLY_ERROR);
	}
	reply_reader_free(&r);
	assert_int_equal(n, 3);
	assert_int_equal(codes[0], 250);
	assert_int_equal(codes[2], 354);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single),
		cmocka_unit_test(test_reader_reused),
		cmocka_unit_test(test_long_text_cut),
		cmocka_unit_test(test_multiline_every_split),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_pipelined),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
