/* Unit tests for src/mailauth/spf.c and spf_parse.c: macros (RFC 7208 7.4
 * exactly), record syntax, domain-specs, limits counted with dns_static. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "dns/dns.h"
#include "mailauth/spf.h"

/* ---- macro expansion ---- */

static void
rfc_ctx(struct spf_macro_ctx *mc, const char *ip)
{
	static const char sender[] = "strong-bad@email.example.com";

	memset(mc, 0, sizeof(*mc));
	mc->sender = sender;
	mc->local = sender;
	mc->local_len = 10;
	mc->sender_domain = sender + 11;
	mc->domain = sender + 11;
	mc->validated = "mx.example.org";
	mc->helo = "mx.example.org";
	mc->receiver = "mx.example.net";
	mc->now = 1700000000;
	mc->family = strchr(ip, ':') ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(mc->family, ip, mc->ip), 1);
}

static void
expands(const struct spf_macro_ctx *mc, enum spf_macro_use use, const char *in, const char *want)
{
	char out[512], err[128];
	size_t n = 99;

	if (spf_macro_expand(in, strlen(in), use, mc, out, sizeof(out), &n, err, sizeof(err)) != 0)
		fail_msg("%s: %s", in, err);
	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
}

/* RFC 7208 section 7.4, every line of the examples. */
static void
test_macro_rfc_examples(void **state)
{
	static const char *const t[][2] = {
		{ "%{s}", "strong-bad@email.example.com" },
		{ "%{o}", "email.example.com" },
		{ "%{d}", "email.example.com" },
		{ "%{d4}", "email.example.com" },
		{ "%{d3}", "email.example.com" },
		{ "%{d2}", "example.com" },
		{ "%{d1}", "com" },
		{ "%{dr}", "com.example.email" },
		{ "%{d2r}", "example.email" },
		{ "%{l}", "strong-bad" },
		{ "%{l-}", "strong.bad" },
		{ "%{lr}", "strong-bad" },
		{ "%{lr-}", "bad.strong" },
		{ "%{l1r-}", "strong" },
		{ "%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com" },
		{ "%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com" },
		{ "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
		  "bad.strong.lp.3.2.0.192.in-addr._spf.example.com" },
		{ "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
		  "3.2.0.192.in-addr.strong.lp._spf.example.com" },
		{ "%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net" },
	};
	struct spf_macro_ctx mc;
	size_t i;

	(void)state;
	rfc_ctx(&mc, "192.0.2.3");
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		expands(&mc, SPF_MACRO_DOMAIN, t[i][0], t[i][1]);
	rfc_ctx(&mc, "2001:db8::cb01");
	expands(&mc, SPF_MACRO_DOMAIN, "%{ir}.%{v}._spf.%{d2}",
	    "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
}

static void
test_macro_letters(void **state)
{
	struct spf_macro_ctx mc;

	(void)state;
	rfc_ctx(&mc, "2001:db8::cb01");
	expands(&mc, SPF_MACRO_EXP, "%{c} %{r} %{t} %{h} %{p} %{v}",
	    "2001:db8::cb01 mx.example.net 1700000000 mx.example.org mx.example.org ip6");
	expands(&mc, SPF_MACRO_DOMAIN, "%{i}",
	    "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.b.0.1");
	expands(&mc, SPF_MACRO_DOMAIN, "%%%_%-x", "% %20x");
	/* 7.3: upper case letters URL-escape (unreserved kept) */
	mc.local = "~jack&jill=up-a_b3.c";
	mc.local_len = strlen(mc.local);
	expands(&mc, SPF_MACRO_DOMAIN, "%{L}", "~jack%26jill%3Dup-a_b3.c");
	/* several delimiters, digits larger than the parts, empty parts kept */
	mc.local = "foo-bar+zip+quux";
	mc.local_len = strlen(mc.local);
	expands(&mc, SPF_MACRO_DOMAIN, "%{l2r+-}", "bar.foo");
	expands(&mc, SPF_MACRO_DOMAIN, "%{l99}", "foo-bar+zip+quux");
	expands(&mc, SPF_MACRO_DOMAIN, "%{l2+}", "zip.quux");
	mc.domain = "a..b";
	expands(&mc, SPF_MACRO_DOMAIN, "%{dr}", "b..a");
	mc.validated = NULL;
	mc.receiver = NULL;
	expands(&mc, SPF_MACRO_EXP, "%{p} %{r}", "unknown unknown");
	rfc_ctx(&mc, "192.0.2.3");
	expands(&mc, SPF_MACRO_EXP, "%{c} %{i} %{v}", "192.0.2.3 192.0.2.3 in-addr");
}

static void
test_macro_errors(void **state)
{
	static const char *const bad_domain[] = {
		"%{c}", "%{r}", "%{t}", "%{a}", "%{d0}", "%(ir)", "foo%", "%x", "%{d",
		"%{dr!}", "a b", "\x01", "%{}",
	};
	struct spf_macro_ctx mc;
	char out[64], err[128];
	size_t i, n;

	(void)state;
	rfc_ctx(&mc, "192.0.2.3");
	for (i = 0; i < sizeof(bad_domain) / sizeof(bad_domain[0]); i++) {
		const char *s = bad_domain[i];

		if (spf_macro_expand(s, strlen(s), SPF_MACRO_DOMAIN, &mc, out, sizeof(out), &n,
		    err, sizeof(err)) != -1)
			fail_msg("accepted \"%s\"", s);
		assert_int_equal(spf_macro_check(s, strlen(s), SPF_MACRO_DOMAIN, err, sizeof(err)), -1);
	}
	assert_int_equal(spf_macro_check("%{c} is %{r}", 12, SPF_MACRO_EXP, err, sizeof(err)), 0);
	/* too long: -2 with what fitted */
	assert_int_equal(spf_macro_expand("%{s}%{s}%{s}", 12, SPF_MACRO_DOMAIN, &mc, out,
	    sizeof(out), &n, err, sizeof(err)), -2);
	assert_int_equal(strlen(out), sizeof(out) - 1);
	assert_int_equal(spf_macro_uses("a%%{p}", 6, 'p'), 0);
	assert_int_equal(spf_macro_uses("a.%{P2}", 7, 'p'), 1);
}

/* ---- record and domain-spec syntax ---- */

static int
record_ok(const char *rec)
{
	char err[128];

	return spf_record_check(rec, strlen(rec), NULL, NULL, err, sizeof(err)) == 0;
}

static void
test_record_syntax(void **state)
{
	static const char *const good[] = {
		"v=spf1", "V=SpF1 -all", "v=spf1  a  -all ", "v=spf1 a/24//64 mx//0 ptr ptr:x.org",
		"v=spf1 ip4:1.2.3.4/32 ip6:::1/0 ip6:2001:db8::/33 exists:%{i}.x.org",
		"v=spf1 include:_spf.example.com ~all redirect=x.org exp=e.%{d}",
		"v=spf1 moo.cow-far_out=man:dog/cat", "v=spf1 default=+ foo=%{c}",
		"v=spf1 a:foo:bar/baz.example.com a:foo.example.xn--zckzah",
		"v=spf1 ?a:%{H}.bar a:%{d}", "v=spf1 a:%{d}%%",
	};
	static const char *const bad[] = {
		"v=spf10", "v=spf1 -all moo", "v=spf1 moo.cow/far_out=man:dog/cat",
		"v=spf1 redirect:x.org", "v=spf1 a:foo-bar", "v=spf1 -all.", "v=spf1 -all:x",
		"v=spf1 -all/8", "v=spf1 ptr/0", "v=spf1 ptr:", "v=spf1 a/33",
		"v=spf1 a//129", "v=spf1 a/24/64", "v=spf1 a:example.com:8080",
		"v=spf1 a:111.222.33.44", "v=spf1 a:abc.123", "v=spf1 a:museum",
		"v=spf1 a:museum.", "v=spf1 a:example.-com", "v=spf1 a:", "v=spf1 include",
		"v=spf1 include:", "v=spf1 include:x.org/24", "v=spf1 exists",
		"v=spf1 exists:x.org/24", "v=spf1 ip4", "v=spf1 ip4:1.2.3", "v=spf1 ip4:1.2.3.4:8080",
		"v=spf1 ip4:1.2.3.4/33", "v=spf1 ip4:1.2.3.4/032", "v=spf1 ip4:1.2.3.4//32",
		"v=spf1 ip4:01.2.3.4", "v=spf1 ip6", "v=spf1 ip6::CAFE::BABE", "v=spf1 ip6:::1/129",
		"v=spf1 ip6:::1//33", "v=spf1 1up=foo", "v=spf1 =all", "v=spf1 foo=%abc",
		"v=spf1 exp=", "v=spf1 redirect=", "v=spf1 exp=-all", "v=spf1 exp=%{r}.x.org",
		"v=spf1 exp=a.org exp=b.org", "v=spf1 redirect=a.org redirect=a.org",
		"v=spf1 -redirect=a.org", "v=spf1 a:ctrl.example.com\rptr",
		"v=spf1 ip4:192.0.2.5\n", "v=spf1 \x80" "a", "v=spf1 a:%{a}.x.org",
		"v=spf1\tall",
	};
	struct spf_term red, exp;
	char err[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!record_ok(good[i]))
			fail_msg("refused \"%s\"", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (record_ok(bad[i]))
			fail_msg("accepted \"%s\"", bad[i]);
	/* a NUL inside the record is a bad byte, not the end */
	assert_int_equal(spf_record_check("v=spf1 a:x.org\0", 15, NULL, NULL, err, sizeof(err)), -1);
	assert_int_equal(spf_record_check("v=spf1 exp=e.org redirect=r.org", 31, &red, &exp, err,
	    sizeof(err)), 0);
	assert_int_equal(red.speclen, 5);
	assert_memory_equal(red.spec, "r.org", 5);
	assert_int_equal(exp.speclen, 5);
	assert_memory_equal(exp.spec, "e.org", 5);
}

static void
test_record_terms(void **state)
{
	static const char rec[] = "v=spf1 -a:x.org/24//64 ~ip4:192.0.2.0/24 ?mx ip6:2001:db8::/32 all";
	struct spf_record_iter it;
	struct spf_term t;
	char err[64];

	(void)state;
	assert_int_equal(spf_record_begin(&it, rec, strlen(rec)), 0);
	assert_int_equal(spf_record_next(&it, &t, err, sizeof(err)), 1);
	assert_int_equal(t.type, SPF_T_A);
	assert_int_equal(t.qualifier, SPF_FAIL);
	assert_int_equal(t.speclen, 5);
	assert_int_equal(t.cidr4, 24);
	assert_int_equal(t.cidr6, 64);
	assert_int_equal(spf_record_next(&it, &t, err, sizeof(err)), 1);
	assert_int_equal(t.type, SPF_T_IP4);
	assert_int_equal(t.qualifier, SPF_SOFTFAIL);
	assert_int_equal(t.cidr4, 24);
	assert_memory_equal(t.ip, "\xc0\x00\x02\x00", 4);
	assert_int_equal(spf_record_next(&it, &t, err, sizeof(err)), 1);
	assert_int_equal(t.type, SPF_T_MX);
	assert_int_equal(t.qualifier, SPF_NEUTRAL);
	assert_null(t.spec);
	assert_int_equal(t.cidr4, 32);
	assert_int_equal(t.cidr6, 128);
	assert_int_equal(spf_record_next(&it, &t, err, sizeof(err)), 1);
	assert_int_equal(t.type, SPF_T_IP6);
	assert_int_equal(t.cidr6, 32);
	assert_int_equal(spf_record_next(&it, &t, err, sizeof(err)), 1);
	assert_int_equal(t.type, SPF_T_ALL);
	assert_int_equal(t.qualifier, SPF_PASS);
	assert_int_equal(spf_record_next(&it, &t, err, sizeof(err)), 0);
	assert_int_equal(spf_is_spf1("v=spf1", 6), 1);
	assert_int_equal(spf_is_spf1("v=spf1mx", 8), 0);
	assert_int_equal(spf_is_spf1("v=spf", 5), 0);
}

static void
test_domain_finish(void **state)
{
	char name[600];
	size_t i;

	(void)state;
	strcpy(name, "example.com.");
	assert_int_equal(spf_domain_finish(name, strlen(name)), 11);
	assert_string_equal(name, "example.com");
	strcpy(name, "a..b");
	assert_int_equal(spf_domain_finish(name, 4), -1);
	/* 7.3: labels come off the left until 253 characters or fewer */
	memset(name, 0, sizeof(name));
	for (i = 0; i < 26; i++)
		memcpy(name + i * 10, "abcdefghi.", 10);
	memcpy(name + 260, "example.com", 11);
	assert_int_equal(spf_domain_finish(name, 271), 251);
	assert_int_equal(strncmp(name, "abcdefghi.", 10), 0);
	assert_string_equal(name + 240, "example.com");
	memset(name, 'a', 64);
	memcpy(name + 64, ".com", 5);
	assert_int_equal(spf_domain_finish(name, 68), -1);
}

/* ---- check_host against a static zone ---- */

static struct dns_static *
zone(const char *text)
{
	struct dns_static *z = dns_static_new();
	char err[256];

	assert_non_null(z);
	if (dns_static_load(z, text, strlen(text), err, sizeof(err)) == -1)
		fail_msg("zone: %s", err);
	return z;
}

static enum spf_result
check(struct dns_static *z, const char *ip, const char *sender, struct spf_outcome *out)
{
	struct dns_resolver r = dns_static_resolver(z);
	struct spf_request req;

	memset(&req, 0, sizeof(req));
	assert_int_equal(spf_request_set_ip(&req, ip), 0);
	req.helo = "mail.example.org";
	req.sender = sender;
	req.receiver = "mx.tern.test";
	req.now = 1700000000;
	return spf_check_mailfrom(&r, &req, out);
}

static void
test_limits(void **state)
{
	struct spf_outcome out;
	struct dns_static *z;

	(void)state;
	/* 4.6.4: ten DNS terms are fine, the eleventh is a permerror before
	 * it is queried: 1 TXT + 10 A queries */
	z = zone("l.test TXT \"v=spf1 a a a a a a a a a a -all\"\n"
	    "m.test TXT \"v=spf1 a a a a a a a a a a a ip4:192.0.2.1\"\n"
	    "l.test A 198.51.100.1\nm.test A 198.51.100.1\n");
	assert_int_equal(check(z, "192.0.2.1", "x@l.test", &out), SPF_FAIL);
	assert_int_equal(out.dns_lookups, 10);
	assert_int_equal(dns_static_queries(z), 11);
	assert_int_equal(check(z, "192.0.2.1", "x@m.test", &out), SPF_PERMERROR);
	assert_int_equal(out.dns_lookups, 11);
	assert_int_equal(dns_static_queries(z), 11 + 11);
	dns_static_free(z);

	/* two void lookups are fine, the third is a permerror */
	z = zone("v.test TXT \"v=spf1 a:n1.test a:n2.test a:n3.test a:n4.test ?all\"\n"
	    "w.test TXT \"v=spf1 a:n1.test a:n2.test ?all\"\n");
	assert_int_equal(check(z, "192.0.2.1", "x@w.test", &out), SPF_NEUTRAL);
	assert_int_equal(out.void_lookups, 2);
	assert_int_equal(check(z, "192.0.2.1", "x@v.test", &out), SPF_PERMERROR);
	assert_int_equal(out.void_lookups, 3);
	assert_int_equal(dns_static_queries(z), 3 + 4);
	dns_static_free(z);

	/* more than 10 MX records: permerror, and none of them looked up */
	z = zone("mx.test TXT \"v=spf1 mx -all\"\n"
	    "mx.test MX 1 a.test\nmx.test MX 2 a.test\nmx.test MX 3 a.test\n"
	    "mx.test MX 4 a.test\nmx.test MX 5 a.test\nmx.test MX 6 a.test\n"
	    "mx.test MX 7 a.test\nmx.test MX 8 a.test\nmx.test MX 9 a.test\n"
	    "mx.test MX 10 a.test\nmx.test MX 11 b.test\nb.test A 192.0.2.1\n");
	assert_int_equal(check(z, "192.0.2.1", "x@mx.test", &out), SPF_PERMERROR);
	assert_int_equal(dns_static_queries(z), 2);
	dns_static_free(z);

	/* ptr: only the first 10 names are tried, and only those in the
	 * target domain are validated */
	z = zone("p.test TXT \"v=spf1 ptr ?all\"\n"
	    "1.2.0.192.in-addr.arpa PTR a.other\n1.2.0.192.in-addr.arpa PTR b.other\n"
	    "1.2.0.192.in-addr.arpa PTR c.other\n1.2.0.192.in-addr.arpa PTR d.other\n"
	    "1.2.0.192.in-addr.arpa PTR e.other\n1.2.0.192.in-addr.arpa PTR f.other\n"
	    "1.2.0.192.in-addr.arpa PTR g.other\n1.2.0.192.in-addr.arpa PTR h.other\n"
	    "1.2.0.192.in-addr.arpa PTR i.other\n1.2.0.192.in-addr.arpa PTR bad.p.test\n"
	    "1.2.0.192.in-addr.arpa PTR mail.p.test\nmail.p.test A 192.0.2.1\n"
	    "bad.p.test A 192.0.2.99\n");
	assert_int_equal(check(z, "192.0.2.1", "x@p.test", &out), SPF_NEUTRAL);
	assert_int_equal(dns_static_queries(z), 1 + 1 + 1);
	dns_static_free(z);
}

static void
test_include_redirect(void **state)
{
	struct spf_outcome out;
	struct dns_static *z;

	(void)state;
	z = zone("top.test TXT \"v=spf1 include:inc.test include:none.test -all\"\n"
	    "inc.test TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n"
	    "none.test TXT \"not spf\"\n"
	    "tmp.test TXT \"v=spf1 include:slow.test -all\"\n"
	    "slow.test TIMEOUT\n"
	    "red.test TXT \"v=spf1 exp=e.test redirect=inc.test\"\n"
	    "e.test TXT \"not this one\"\n"
	    "rn.test TXT \"v=spf1 redirect=none.test\"\n");
	assert_int_equal(check(z, "192.0.2.7", "x@top.test", &out), SPF_PASS);
	assert_string_equal(out.mechanism, "include:inc.test");
	assert_string_equal(out.domain, "top.test");
	/* include of a domain without a record is a permerror (5.2) */
	assert_int_equal(check(z, "198.51.100.1", "x@top.test", &out), SPF_PERMERROR);
	assert_non_null(strstr(out.problem, "none.test"));
	assert_int_equal(check(z, "198.51.100.1", "x@tmp.test", &out), SPF_TEMPERROR);
	/* redirect: the target's result and explanation, not ours (6.2) */
	assert_int_equal(check(z, "198.51.100.1", "x@red.test", &out), SPF_FAIL);
	assert_string_equal(out.explanation,
	    "red.test does not designate 198.51.100.1 as a permitted sender");
	assert_int_equal(check(z, "198.51.100.1", "x@rn.test", &out), SPF_PERMERROR);
	dns_static_free(z);
}

static void
test_identities(void **state)
{
	struct dns_resolver r;
	struct spf_request req;
	struct spf_outcome out;
	struct dns_static *z;

	(void)state;
	z = zone("mail.example.org TXT \"v=spf1 a -all exp=why.example.org\"\n"
	    "mail.example.org A 192.0.2.10\n"
	    "why.example.org TXT \"%{l} at %{o} via %{h} from %{c} to %{r} at %{t}\"\n"
	    "example.org TXT \"v=spf1 ip6:2001:db8::/32 -all\"\n");
	r = dns_static_resolver(z);
	/* the null sender is checked as postmaster@<helo> (2.4) */
	assert_int_equal(check(z, "192.0.2.11", "", &out), SPF_FAIL);
	assert_string_equal(out.explanation, "postmaster at mail.example.org via mail.example.org "
	    "from 192.0.2.11 to mx.tern.test at 1700000000");
	assert_string_equal(out.mechanism, "-all");
	assert_int_equal(check(z, "::ffff:192.0.2.10", "", &out), SPF_PASS);
	assert_string_equal(out.mechanism, "a");
	assert_int_equal(check(z, "2001:db8::1", "joe@example.org", &out), SPF_PASS);
	assert_int_equal(check(z, "192.0.2.10", "joe@nowhere.test", &out), SPF_NONE);
	assert_int_equal(check(z, "192.0.2.10", "joe@[192.0.2.10]", &out), SPF_NONE);
	memset(&req, 0, sizeof(req));
	assert_int_equal(spf_request_set_ip(&req, "192.0.2.10"), 0);
	req.helo = "mail.example.org";
	assert_int_equal(spf_check_helo(&r, &req, &out), SPF_PASS);
	req.helo = "localhost";
	assert_int_equal(spf_check_helo(&r, &req, &out), SPF_NONE);
	assert_int_equal(spf_request_set_ip(&req, "not-an-ip"), -1);
	assert_string_equal(spf_result_str(SPF_SOFTFAIL), "softfail");
	assert_string_equal(spf_result_str(SPF_TEMPERROR), "temperror");
	dns_static_free(z);
}

static void
test_record_selection(void **state)
{
	struct spf_outcome out;
	struct dns_static *z;

	(void)state;
	z = zone("two.test TXT \"v=spf1 -all\"\ntwo.test TXT \"V=SPF1 +all\"\n"
	    "one.test TXT \"hello\"\none.test TXT \"v=spf1 \" \"+all\"\n"
	    "bad.test TXT \"v=spf1 a:\\128.test\"\n"
	    "slow.test TIMEOUT\n");
	assert_int_equal(check(z, "192.0.2.1", "x@two.test", &out), SPF_PERMERROR);
	assert_int_equal(check(z, "192.0.2.1", "x@one.test", &out), SPF_PASS);
	assert_int_equal(check(z, "192.0.2.1", "x@bad.test", &out), SPF_PERMERROR);
	assert_int_equal(check(z, "192.0.2.1", "x@slow.test", &out), SPF_TEMPERROR);
	assert_int_equal(check(z, "192.0.2.1", "x@a123456789012345678901234567890123456789"
	    "0123456789012345678901234.test", &out), SPF_NONE);
	dns_static_free(z);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_macro_rfc_examples),
		cmocka_unit_test(test_macro_letters),
		cmocka_unit_test(test_macro_errors),
		cmocka_unit_test(test_record_syntax),
		cmocka_unit_test(test_record_terms),
		cmocka_unit_test(test_domain_finish),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_include_redirect),
		cmocka_unit_test(test_identities),
		cmocka_unit_test(test_record_selection),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
