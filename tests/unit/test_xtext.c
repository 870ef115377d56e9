/* Unit tests for src/smtp/xtext.c: xtext and the DSN parameters (RFC 3461). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "smtp/xtext.h"

static ssize_t
dec(const char *s, char *out, size_t outsz)
{
	return xtext_decode(s, strlen(s), out, outsz);
}

static void
test_decode(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(dec("", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(dec("abc", out, sizeof(out)), 3);
	assert_string_equal(out, "abc");
	assert_int_equal(dec("a+2Bb+3Dc+20d", out, sizeof(out)), 7);
	assert_string_equal(out, "a+b=c d");
	assert_int_equal(dec("+C3+A9", out, sizeof(out)), 2);
	assert_string_equal(out, "\xc3\xa9");
	assert_int_equal(dec("!~", out, sizeof(out)), 2);
	assert_int_equal(dec("+FF", out, sizeof(out)), 1);
	assert_int_equal((unsigned char)out[0], 0xff);
	/* Refusals. */
	assert_int_equal(dec("a+2b", out, sizeof(out)), -1);	/* lower hex */
	assert_int_equal(dec("a+2", out, sizeof(out)), -1);
	assert_int_equal(dec("a+", out, sizeof(out)), -1);
	assert_int_equal(dec("+G0", out, sizeof(out)), -1);
	assert_int_equal(dec("+00", out, sizeof(out)), -1);
	assert_int_equal(dec("a=b", out, sizeof(out)), -1);
	assert_int_equal(dec("a b", out, sizeof(out)), -1);
	assert_int_equal(dec("a\x7f", out, sizeof(out)), -1);
	assert_int_equal(dec("\xc3\xa9", out, sizeof(out)), -1);
	assert_int_equal(dec("a\tb", out, sizeof(out)), -1);
	assert_int_equal(xtext_decode("a\0b", 3, out, sizeof(out)), -1);
	/* Output bounds: 3 octets need 4 bytes. */
	assert_int_equal(dec("abc", out, 4), 3);
	assert_int_equal(dec("abc", out, 3), -1);
	assert_int_equal(dec("", out, 1), 0);
	assert_int_equal(dec("", out, 0), -1);
	/* The input is not read past len. */
	assert_int_equal(xtext_decode("ab+41", 3, out, sizeof(out)), -1);
	assert_int_equal(xtext_decode("abcd", 2, out, sizeof(out)), 2);
	assert_string_equal(out, "ab");
}

static void
test_encode(void **state)
{
	char out[64], back[64];
	char all[255];
	char big[3 * 255 + 1];
	int i;

	(void)state;
	assert_int_equal(xtext_encode("a+b=c d", 7, out, sizeof(out)), 13);
	assert_string_equal(out, "a+2Bb+3Dc+20d");
	assert_int_equal(xtext_encode("\0\x7f\xc3", 3, out, sizeof(out)), 9);
	assert_string_equal(out, "+00+7F+C3");
	assert_int_equal(xtext_encode("", 0, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(xtext_encode("abc", 3, out, 4), 3);
	assert_int_equal(xtext_encode("abc", 3, out, 3), -1);
	assert_int_equal(xtext_encode("a ", 2, out, 4), -1);
	assert_int_equal(xtext_encode("a ", 2, out, 5), 4);
	/* Every octet 1..255 survives encode then decode. */
	for (i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	assert_true(xtext_encode(all, 255, big, sizeof(big)) > 0);
	{
		char dback[256];

		assert_int_equal(xtext_decode(big, strlen(big), dback,
		    sizeof(dback)), 255);
		assert_memory_equal(dback, all, 255);
	}
	assert_int_equal(xtext_encode("x=y", 3, out, sizeof(out)), 5);
	assert_int_equal(dec(out, back, sizeof(back)), 3);
	assert_string_equal(back, "x=y");
}

static void
test_notify(void **state)
{
	static const struct {
		const char *s;
		int ok;
		unsigned bits;
	} cases[] = {
		{ "NEVER", 0, DSN_NOTIFY_NEVER },
		{ "never", 0, DSN_NOTIFY_NEVER },
		{ "SUCCESS", 0, DSN_NOTIFY_SUCCESS },
		{ "FAILURE", 0, DSN_NOTIFY_FAILURE },
		{ "Delay", 0, DSN_NOTIFY_DELAY },
		{ "SUCCESS,FAILURE", 0, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE },
		{ "delay,success,failure", 0, DSN_NOTIFY_SUCCESS |
		    DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY },
		{ "", -1, 0 },
		{ ",", -1, 0 },
		{ "SUCCESS,", -1, 0 },
		{ ",SUCCESS", -1, 0 },
		{ "SUCCESS,,FAILURE", -1, 0 },
		{ "SUCCESS,SUCCESS", -1, 0 },
		{ "success,SUCCESS", -1, 0 },
		{ "NEVER,SUCCESS", -1, 0 },
		{ "FAILURE,NEVER", -1, 0 },
		{ "NEVER,NEVER", -1, 0 },
		{ "SUCCESS FAILURE", -1, 0 },
		{ " SUCCESS", -1, 0 },
		{ "SUCCES", -1, 0 },
		{ "SUCCESSS", -1, 0 },
		{ "FAILURE;DELAY", -1, 0 },
	};
	unsigned bits;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bits = 0xdead;
		if (dsn_parse_notify(cases[i].s, strlen(cases[i].s), &bits) !=
		    cases[i].ok)
			fail_msg("case %zu (%s)", i, cases[i].s);
		if (cases[i].ok == 0)
			assert_int_equal(bits, cases[i].bits);
		else
			assert_int_equal(bits, 0xdead);
	}
	/* Bounded by len: "SUCCESS" of "SUCCESSX". */
	assert_int_equal(dsn_parse_notify("SUCCESSX", 7, &bits), 0);
	assert_int_equal(bits, DSN_NOTIFY_SUCCESS);
	assert_int_equal(dsn_notify_valid(0), 1);
	assert_int_equal(dsn_notify_valid(1), 1);
	assert_int_equal(dsn_notify_valid(3), 0);
	assert_int_equal(dsn_notify_valid(14), 1);
	assert_int_equal(dsn_notify_valid(15), 0);
	assert_int_equal(dsn_notify_valid(16), 0);
}

static void
test_ret(void **state)
{
	enum dsn_ret r = DSN_RET_UNSPEC;

	(void)state;
	assert_int_equal(dsn_parse_ret("FULL", 4, &r), 0);
	assert_int_equal(r, DSN_RET_FULL);
	assert_int_equal(dsn_parse_ret("hdrs", 4, &r), 0);
	assert_int_equal(r, DSN_RET_HDRS);
	assert_int_equal(dsn_parse_ret("Full", 4, &r), 0);
	assert_int_equal(r, DSN_RET_FULL);
	assert_int_equal(dsn_parse_ret("FULLX", 5, &r), -1);
	assert_int_equal(dsn_parse_ret("FUL", 3, &r), -1);
	assert_int_equal(dsn_parse_ret("", 0, &r), -1);
	assert_int_equal(dsn_parse_ret("HEADERS", 7, &r), -1);
	assert_int_equal(r, DSN_RET_FULL);
}

static void
test_envid(void **state)
{
	char out[DSN_ENVID_MAX + 1];
	char big[DSN_ENVID_MAX + 2];

	(void)state;
	assert_int_equal(dsn_parse_envid("QQ314159", 8, out, sizeof(out)), 0);
	assert_string_equal(out, "QQ314159");
	assert_int_equal(dsn_parse_envid("a+20b+2B", 8, out, sizeof(out)), 0);
	assert_string_equal(out, "a b+");
	memset(big, 'x', sizeof(big));
	assert_int_equal(dsn_parse_envid(big, DSN_ENVID_MAX, out,
	    sizeof(out)), 0);
	assert_int_equal(strlen(out), DSN_ENVID_MAX);
	assert_int_equal(dsn_parse_envid(big, DSN_ENVID_MAX + 1, out,
	    sizeof(out)), -1);
	assert_int_equal(dsn_parse_envid("", 0, out, sizeof(out)), -1);
	assert_int_equal(dsn_parse_envid("a+0Ab", 5, out, sizeof(out)), -1);
	assert_int_equal(dsn_parse_envid("a+C3", 4, out, sizeof(out)), -1);
	assert_int_equal(dsn_parse_envid("a+7F", 4, out, sizeof(out)), -1);
	assert_int_equal(dsn_parse_envid("a=b", 3, out, sizeof(out)), -1);
	assert_int_equal(dsn_parse_envid("abc", 3, out, 3), -1);
}

static int
orcpt(const char *s, char *out, size_t outsz)
{
	return dsn_parse_orcpt(s, strlen(s), out, outsz);
}

static void
test_orcpt(void **state)
{
	char out[DSN_ORCPT_MAX + 1];
	char big[DSN_ORCPT_MAX + 2];

	(void)state;
	assert_int_equal(orcpt("rfc822;bob@example.net", out, sizeof(out)), 0);
	assert_string_equal(out, "rfc822;bob@example.net");
	assert_int_equal(orcpt("RFC822;Bob+2Bx@Example.NET", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "RFC822;Bob+x@Example.NET");
	assert_int_equal(orcpt("rfc822;+22a+20b+22@x", out, sizeof(out)), 0);
	assert_string_equal(out, "rfc822;\"a b\"@x");
	/* RFC 6533: utf-8 addresses, embedded or (with +XX) raw. */
	assert_int_equal(orcpt("utf-8;\\x{E9}l\\x{E8}ve@x", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "utf-8;\\x{E9}l\\x{E8}ve@x");
	assert_int_equal(orcpt("UTF-8;+C3+A9@x", out, sizeof(out)), 0);
	assert_string_equal(out, "UTF-8;\xc3\xa9@x");
	assert_int_equal(orcpt("x-foo;anything", out, sizeof(out)), 0);
	assert_string_equal(out, "x-foo;anything");
	/* Refusals. */
	assert_int_equal(orcpt("rfc822;+C3+A9@x", out, sizeof(out)), -1);
	assert_int_equal(orcpt("rfc822;a+0Ab@x", out, sizeof(out)), -1);
	assert_int_equal(orcpt("rfc822;", out, sizeof(out)), -1);
	assert_int_equal(orcpt(";bob@x", out, sizeof(out)), -1);
	assert_int_equal(orcpt("bob@x", out, sizeof(out)), -1);
	assert_int_equal(orcpt("", out, sizeof(out)), -1);
	assert_int_equal(orcpt("rfc 822;bob@x", out, sizeof(out)), -1);
	assert_int_equal(orcpt("rfc822:x;bob@x", out, sizeof(out)), -1);
	assert_int_equal(orcpt("rfc=822;bob@x", out, sizeof(out)), -1);
	assert_int_equal(orcpt("rfc822;bob=x", out, sizeof(out)), -1);
	assert_int_equal(orcpt("rfc822;a+2", out, sizeof(out)), -1);
	assert_int_equal(orcpt("rfc822;a b", out, sizeof(out)), -1);
	assert_int_equal(orcpt("rfc822;bob@x", out, 12), -1);
	assert_int_equal(orcpt("rfc822;bob@x", out, 13), 0);
	/* A second ';' belongs to the address (';' is an xchar). */
	assert_int_equal(orcpt("rfc822;a;b", out, sizeof(out)), 0);
	assert_string_equal(out, "rfc822;a;b");
	/* 500 characters, not 501. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "rfc822;", 7);
	assert_int_equal(dsn_parse_orcpt(big, DSN_ORCPT_MAX, out,
	    sizeof(out)), 0);
	assert_int_equal(strlen(out), DSN_ORCPT_MAX);
	assert_int_equal(dsn_parse_orcpt(big, DSN_ORCPT_MAX + 1, out,
	    sizeof(out)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_notify),
		cmocka_unit_test(test_ret),
		cmocka_unit_test(test_envid),
		cmocka_unit_test(test_orcpt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
