/* Unit tests for src/mailauth/authres.c: exact builder output, the parser, round trips. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "mailauth/authres.h"

static void
build_expect(const char *id, const struct authres_entry *e, size_t n, const char *want)
{
	struct buf b;

	buf_init(&b, 8192);
	assert_int_equal(authres_build(&b, id, e, n), 0);
	assert_string_equal(b.data, want);
	buf_free(&b);
}

static void
test_build_typical(void **state)
{
	struct authres_entry e[4];

	authres_spf(&e[0], "pass", "bounce@example.com", NULL);
	authres_dkim(&e[1], "pass", "example.com", "sel1", "dGh/ cyBp\r\n\tcyBh/b2s=");
	authres_dmarc(&e[2], "pass", "example.com", "reject", NULL, "none");
	authres_iprev(&e[3], "pass", "192.0.2.1", "mail.example.com");
	build_expect("mx.tern.example", e, 4,
	    "Authentication-Results: mx.tern.example;\r\n"
	    "\tspf=pass smtp.mailfrom=bounce@example.com;\r\n"
	    "\tdkim=pass header.d=example.com header.s=sel1 header.b=\"dGh/cyBp\";\r\n"
	    "\tdmarc=pass (p=reject dis=none) header.from=example.com policy.dmarc=none;\r\n"
	    "\tiprev=pass (mail.example.com) policy.iprev=192.0.2.1\r\n");
}

static void
test_build_none_and_quoting(void **state)
{
	struct authres_entry e[2];

	build_expect("mx.tern.example", NULL, 0,
	    "Authentication-Results: mx.tern.example; none\r\n");
	/* null MAIL FROM: the HELO identity; an IPv6 address is quoted (':') */
	authres_spf(&e[0], "none", NULL, "[192.0.2.1]");
	authres_iprev(&e[1], "fail", "2001:db8::1", "");
	build_expect("mx", e, 2,
	    "Authentication-Results: mx;\r\n"
	    "\tspf=none smtp.helo=\"[192.0.2.1]\";\r\n"
	    "\tiprev=fail policy.iprev=\"2001:db8::1\"\r\n");
	/* quotes, backslashes and CR/LF in peer data cannot break the field */
	authres_spf(&e[0], "fail", "a \"b\"\\c\r\nX-Evil: 1", NULL);
	e[0].reason = "no (match)";
	e[0].comment = "x) (y\r\n";
	build_expect("mx", e, 1,
	    "Authentication-Results: mx;\r\n"
	    "\tspf=fail (x\\) \\(y?\?) reason=\"no (match)\"\r\n"
	    "\tsmtp.mailfrom=\"a \\\"b\\\"\\\\c?\?X-Evil: 1\"\r\n");
}

static void
test_build_folding(void **state)
{
	struct authres_entry e;
	struct buf b;
	const char *p, *nl;

	authres_dkim(&e, "fail", "a-rather-long-signing-domain.subdomain.example.com",
	    "selector-2024-very-long-name", "AbCdEfGhIjKl");
	e.reason = "signature verification failed";
	build_expect("mx.tern.example", &e, 1,
	    "Authentication-Results: mx.tern.example;\r\n"
	    "\tdkim=fail reason=\"signature verification failed\"\r\n"
	    "\theader.d=a-rather-long-signing-domain.subdomain.example.com\r\n"
	    "\theader.s=selector-2024-very-long-name header.b=AbCdEfGh\r\n");
	buf_init(&b, 8192);
	assert_int_equal(authres_build(&b, "mx.tern.example", &e, 1), 0);
	for (p = b.data; (nl = strstr(p, "\r\n")) != NULL; p = nl + 2)
		assert_true(nl - p <= 78);
	buf_free(&b);
}

static void
test_build_refuses(void **state)
{
	struct authres_entry e;
	struct buf b;
	char big[1000];

	buf_init(&b, 8192);
	buf_appends(&b, "X: y\r\n");
	authres_spf(&e, "pass=x", "a@b", NULL);
	assert_int_equal(authres_build(&b, "mx", &e, 1), -1);
	assert_string_equal(b.data, "X: y\r\n");	/* unchanged */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	authres_spf(&e, "pass", big, NULL);
	assert_int_equal(authres_build(&b, "mx", &e, 1), -1);
	assert_int_equal(b.len, 6);
	buf_free(&b);
}

static int
parse(const char *v, struct authres_parsed *p)
{
	return authres_parse(v, strlen(v), p);
}

static void
test_parse_valid(void **state)
{
	static const char *const ok[] = {
		"example.org; none",
		" example.org 1; none",
		"example.org (comment); spf=pass smtp.mailfrom=example.net",
		"\"quoted id\"; dkim/1=pass header.d=example.com header.i=@example.com",
		("example.com;\r\n\tspf=pass (good) reason=\"ok\" smtp.mailfrom=\"a b\"@example.net;\r\n"
		"\tdmarc = fail (p=reject) header . from = example.net"),
		"mx; auth=pass smtp.auth=user@example.com; x-custom=neutral",
		"mx;spf=pass smtp.mailfrom=a=b/c@example.com",
	};
	struct authres_parsed p;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (parse(ok[i], &p) != 0)
			fail_msg("should parse: %s", ok[i]);
	assert_int_equal(parse(ok[4], &p), 0);
	assert_string_equal(p.authserv_id, "example.com");
	assert_int_equal(p.nres, 2);
	assert_int_equal(p.res[1].method.len, 5);
	assert_memory_equal(ok[4] + p.res[1].method.off, "dmarc", 5);
	assert_memory_equal(ok[4] + p.res[1].result.off, "fail", 4);
	assert_int_equal(p.res[0].has_reason, 1);
	assert_int_equal(p.res[0].nprops, 1);
	assert_int_equal(parse(ok[1], &p), 0);
	assert_int_equal(p.version, 1);
	assert_int_equal(p.none, 1);
	assert_int_equal(parse(ok[3], &p), 0);
	assert_string_equal(p.authserv_id, "quoted id");
}

static void
test_parse_invalid(void **state)
{
	static const char *const bad[] = {
		"", "   ", "example.org", "example.org;", "example.org; spf",
		"example.org; spf=", "example.org; spf=pass smtp", "example.org; spf=pass smtp.=x",
		"example.org; spf=pass smtp.mailfrom=", "example.org; none; spf=pass",
		"example.org (open; none", "\"open; none", "example.org; spf=pass-",
		"example.org; spf=pass header.d=x y", "ex@mple; none",
		"example.org; spf=pass smtp.mailfrom=a@",
	};
	struct authres_parsed p;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse(bad[i], &p) != -1)
			fail_msg("should not parse: %s", bad[i]);
	/* the authserv-id is known even when the rest is broken */
	assert_int_equal(parse("mx.tern.example; spf=", &p), -1);
	assert_int_equal(p.has_id, 1);
	assert_string_equal(p.authserv_id, "mx.tern.example");
	assert_int_equal(authres_parse("mx\0; none", 9, &p), -1);
}

static void
test_claims_id(void **state)
{
	const char *forged = "MX.Tern.Example; dkim=pass header.d=bank.example (broken";

	assert_int_equal(authres_claims_id(forged, strlen(forged), "mx.tern.example"), 1);
	assert_int_equal(authres_claims_id("other.example; none", 19, "mx.tern.example"), 0);
	assert_int_equal(authres_claims_id(" (c) \"mx.tern.example\"; none", 28, "mx.tern.example"), 1);
	assert_int_equal(authres_claims_id("mx.tern.example.evil; none", 26, "mx.tern.example"), 0);
	assert_int_equal(authres_claims_id("", 0, "mx.tern.example"), 0);
}

static void
test_round_trip(void **state)
{
	struct authres_entry e[3];
	struct authres_parsed p;
	const char *v;
	struct buf b;

	authres_spf(&e[0], "softfail", "\"odd local\"@example.net", "helo.example.net");
	authres_dkim(&e[1], "fail", "example.com", "s(1)", "ab=/cdefgh");
	authres_dmarc(&e[2], "fail", "example.com", "reject", "quarantine", "quarantine");
	buf_init(&b, 8192);
	assert_int_equal(authres_build(&b, "mx.tern.example", e, 3), 0);
	v = b.data + strlen("Authentication-Results:");
	assert_int_equal(authres_parse(v, b.len - 2 - (size_t)(v - b.data), &p), 0);
	assert_string_equal(p.authserv_id, "mx.tern.example");
	assert_int_equal(p.nres, 3);
	assert_int_equal(p.res[0].nprops, 2);
	assert_int_equal(p.res[1].nprops, 3);
	assert_int_equal(p.res[2].nprops, 2);
	assert_int_equal(authres_claims_id(v, strlen(v), "mx.tern.example"), 1);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_typical),
		cmocka_unit_test(test_build_none_and_quoting),
		cmocka_unit_test(test_build_folding),
		cmocka_unit_test(test_build_refuses),
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_claims_id),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
