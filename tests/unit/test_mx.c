/* Unit tests for src/dns/mx.c: RFC 5321 5.1 routing over dns_static. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "dns/dns.h"
#include "dns/mx.h"

static const char zone[] =
    "example.test MX 20 mx2.example.test\n"
    "example.test MX 10 mx1.example.test\n"
    "example.test MX 30 mx3.example.test\n"
    "mx1.example.test A 192.0.2.1\n"
    "mx1.example.test AAAA 2001:db8::1\n"
    "mx2.example.test A 192.0.2.2\n"
    "mx3.example.test A 192.0.2.3\n"
    "eq.test MX 10 e1.test\n"
    "eq.test MX 10 e2.test\n"
    "eq.test MX 10 e3.test\n"
    "eq.test MX 5 e0.test\n"
    "e0.test A 10.0.0.0\n"
    "e1.test A 10.0.0.1\n"
    "e2.test A 10.0.0.2\n"
    "e3.test A 10.0.0.3\n"
    "implicit.test A 192.0.2.9\n"
    "implicit.test AAAA 2001:db8::9\n"
    "txtonly.test TXT \"x\"\n"
    "null.test MX 0 .\n"
    "halfnull.test MX 0 .\n"
    "halfnull.test MX 10 mx1.example.test\n"
    "loop.test MX 10 mx1.example.test\n"
    "loop.test MX 20 self.test\n"
    "loop.test MX 20 mx2.example.test\n"
    "loop.test MX 30 mx3.example.test\n"
    "self.test A 127.0.0.1\n"
    "selfbest.test MX 10 self.test\n"
    "selfbest.test MX 20 mx2.example.test\n"
    "servfail.test SERVFAIL\n"
    "halftemp.test MX 10 slow.test\n"
    "halftemp.test MX 20 mx2.example.test\n"
    "alltemp.test MX 10 slow.test\n"
    "alltemp.test MX 20 bad.test\n"
    "nxhosts.test MX 10 gone1.test\n"
    "nxhosts.test MX 20 gone2.test\n"
    "nxtemp.test MX 10 gone1.test\n"
    "nxtemp.test MX 20 slow.test\n"
    "slow.test TIMEOUT\n"
    "bad.test SERVFAIL\n"
    "cname.test MX 10 alias.test\n"
    "alias.test CNAME mx1.example.test\n"
    "dup.test MX 20 mx1.example.test\n"
    "dup.test MX 10 MX1.example.test.\n"
    "dual.test MX 10 dual-host.test\n"
    "dual-host.test A 192.0.2.11\n"
    "dual-host.test AAAA 2001:db8::11\n"
    "dual-host.test A 192.0.2.12\n"
    "dual-host.test AAAA 2001:db8::12\n";

struct fixture {
	struct dns_static  *z;
	struct dns_resolver r;
	uint32_t            keys[64];	/* returned by fake_random in turn */
	size_t              nkeys, next;
};

static uint32_t
fake_random(void *arg)
{
	struct fixture *f = arg;

	return f->nkeys ? f->keys[f->next++ % f->nkeys] : 0;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	assert_non_null(f);
	f->z = dns_static_new();
	if (dns_static_load(f->z, zone, sizeof(zone) - 1, err, sizeof(err)) == -1)
		fail_msg("load: %s", err);
	f->r = dns_static_resolver(f->z);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	dns_static_free(f->z);
	free(f);
	return 0;
}

static void
route(struct fixture *f, const char *domain, const char *const *self,
    enum mx_family fam, struct mx_route *rt)
{
	struct mx_options o = { fam, fake_random, f };

	f->next = 0;
	assert_int_equal(mx_resolve(&f->r, domain, self, &o, rt), 0);
}

static void
assert_v4(const struct mx_addr *a, const char *want)
{
	char got[INET6_ADDRSTRLEN];

	assert_int_equal(a->family, AF_INET);
	assert_non_null(inet_ntop(AF_INET, a->addr, got, sizeof(got)));
	assert_string_equal(got, want);
}

static void
assert_v6(const struct mx_addr *a, const char *want)
{
	char got[INET6_ADDRSTRLEN];

	assert_int_equal(a->family, AF_INET6);
	assert_non_null(inet_ntop(AF_INET6, a->addr, got, sizeof(got)));
	assert_string_equal(got, want);
}

static void
test_order(void **state)
{
	struct mx_route *rt = malloc(sizeof(*rt));

	route(*state, "Example.Test.", NULL, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_OK);
	assert_int_equal(rt->implicit, 0);
	assert_int_equal(rt->n, 3);
	assert_string_equal(rt->hosts[0].name, "mx1.example.test");
	assert_int_equal(rt->hosts[0].pref, 10);
	assert_int_equal(rt->hosts[0].naddrs, 2);
	assert_v6(&rt->hosts[0].addrs[0], "2001:db8::1");
	assert_v4(&rt->hosts[0].addrs[1], "192.0.2.1");
	assert_string_equal(rt->hosts[1].name, "mx2.example.test");
	assert_int_equal(rt->hosts[1].pref, 20);
	assert_string_equal(rt->hosts[2].name, "mx3.example.test");
	assert_int_equal(rt->hosts[2].naddrs, 1);
	assert_v4(&rt->hosts[2].addrs[0], "192.0.2.3");
	assert_int_equal(rt->tempfails, 0);
	free(rt);
}

static void
test_random_equal(void **state)
{
	struct fixture *f = *state;
	struct mx_route *rt = malloc(sizeof(*rt));

	/* Keys go to e1, e2, e3, e0 in zone order. */
	f->nkeys = 4;
	f->keys[0] = 3, f->keys[1] = 1, f->keys[2] = 2, f->keys[3] = 99;
	route(f, "eq.test", NULL, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_OK);
	assert_int_equal(rt->n, 4);
	/* Preference first, whatever the random key says. */
	assert_string_equal(rt->hosts[0].name, "e0.test");
	assert_string_equal(rt->hosts[1].name, "e2.test");
	assert_string_equal(rt->hosts[2].name, "e3.test");
	assert_string_equal(rt->hosts[3].name, "e1.test");
	assert_int_equal(f->next, 4);

	f->keys[0] = 1, f->keys[1] = 3, f->keys[2] = 2;
	route(f, "eq.test", NULL, MX_V6_FIRST, rt);
	assert_string_equal(rt->hosts[0].name, "e0.test");
	assert_string_equal(rt->hosts[1].name, "e1.test");
	assert_string_equal(rt->hosts[2].name, "e3.test");
	assert_string_equal(rt->hosts[3].name, "e2.test");
	free(rt);
}

static void
test_default_random(void **state)
{
	struct fixture *f = *state;
	struct mx_route *rt = malloc(sizeof(*rt));
	int first[4] = { 0 }, i;

	/* With the real random source each of e1..e3 comes first sometimes. */
	for (i = 0; i < 200; i++) {
		assert_int_equal(mx_resolve(&f->r, "eq.test", NULL, NULL, rt), 0);
		assert_int_equal(rt->n, 4);
		assert_string_equal(rt->hosts[0].name, "e0.test");
		first[rt->hosts[1].name[1] - '0']++;
	}
	assert_true(first[1] > 0 && first[2] > 0 && first[3] > 0);
	free(rt);
}

static void
test_implicit(void **state)
{
	struct mx_route *rt = malloc(sizeof(*rt));

	route(*state, "implicit.test", NULL, MX_V4_FIRST, rt);
	assert_int_equal(rt->status, MX_OK);
	assert_int_equal(rt->implicit, 1);
	assert_int_equal(rt->n, 1);
	assert_string_equal(rt->hosts[0].name, "implicit.test");
	assert_int_equal(rt->hosts[0].pref, 0);
	assert_int_equal(rt->hosts[0].naddrs, 2);
	assert_v4(&rt->hosts[0].addrs[0], "192.0.2.9");
	assert_v6(&rt->hosts[0].addrs[1], "2001:db8::9");

	route(*state, "txtonly.test", NULL, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_NOHOST);
	assert_int_equal(rt->n, 0);
	assert_string_equal(rt->why, "txtonly.test has no MX and no address");

	route(*state, "nowhere.test", NULL, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_NOHOST);
	assert_string_equal(rt->why, "domain nowhere.test not found");
	assert_int_equal(mx_status_code(rt->status), 550);
	free(rt);
}

static void
test_null_mx(void **state)
{
	struct fixture *f = *state;
	struct mx_route *rt = malloc(sizeof(*rt));

	route(f, "null.test", NULL, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_NULLMX);
	assert_int_equal(rt->n, 0);
	assert_int_equal(mx_status_code(rt->status), 556);
	assert_string_equal(mx_status_enhanced(rt->status), "5.1.10");
	assert_string_equal(rt->why, "domain null.test does not accept mail (null MX, RFC 7505)");
	/* No address lookups for it. */
	assert_int_equal(dns_static_queries(f->z), 1);

	route(f, "halfnull.test", NULL, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_OK);
	assert_int_equal(rt->n, 1);
	assert_string_equal(rt->hosts[0].name, "mx1.example.test");
	free(rt);
}

static void
test_loop(void **state)
{
	static const char *const self[] = { "mail.other", "SELF.test.", NULL };
	static const char *const self_impl[] = { "implicit.test", NULL };
	struct mx_route *rt = malloc(sizeof(*rt));

	/* We are at 20: only the 10 stays (RFC 5321 5.1). */
	route(*state, "loop.test", self, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_OK);
	assert_int_equal(rt->n, 1);
	assert_string_equal(rt->hosts[0].name, "mx1.example.test");

	route(*state, "selfbest.test", self, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_LOOP);
	assert_int_equal(rt->n, 0);
	assert_string_equal(rt->why, "mail for selfbest.test loops back to myself");
	assert_int_equal(mx_status_code(rt->status), 554);
	assert_string_equal(mx_status_enhanced(rt->status), "5.4.6");

	route(*state, "implicit.test", self_impl, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_LOOP);

	/* Not ours: untouched. */
	route(*state, "loop.test", self_impl, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_OK);
	assert_int_equal(rt->n, 4);
	free(rt);
}

static void
test_tempfail(void **state)
{
	struct mx_route *rt = malloc(sizeof(*rt));

	route(*state, "servfail.test", NULL, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_TEMPFAIL);
	assert_int_equal(mx_status_code(rt->status), 451);
	assert_string_equal(mx_status_enhanced(rt->status), "4.4.3");

	route(*state, "halftemp.test", NULL, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_OK);
	assert_int_equal(rt->n, 1);
	assert_string_equal(rt->hosts[0].name, "mx2.example.test");
	assert_int_equal(rt->tempfails, 2);	/* AAAA and A of slow.test */

	route(*state, "alltemp.test", NULL, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_TEMPFAIL);
	assert_string_equal(rt->why, "temporary DNS failure resolving the MX hosts of alltemp.test");

	route(*state, "nxhosts.test", NULL, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_NOHOST);
	assert_string_equal(rt->why, "no MX host of nxhosts.test has an address");

	route(*state, "nxtemp.test", NULL, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_TEMPFAIL);
	free(rt);
}

static void
test_cname_dup(void **state)
{
	struct mx_route *rt = malloc(sizeof(*rt));

	/* RFC 5321 5.1 says an MX should not be a CNAME; tolerate it. */
	route(*state, "cname.test", NULL, MX_V4_ONLY, rt);
	assert_int_equal(rt->status, MX_OK);
	assert_string_equal(rt->hosts[0].name, "alias.test");
	assert_int_equal(rt->hosts[0].naddrs, 1);
	assert_v4(&rt->hosts[0].addrs[0], "192.0.2.1");

	route(*state, "dup.test", NULL, MX_V6_FIRST, rt);
	assert_int_equal(rt->n, 1);
	assert_int_equal(rt->hosts[0].pref, 10);
	free(rt);
}

static void
test_families(void **state)
{
	struct mx_route *rt = malloc(sizeof(*rt));

	route(*state, "dual.test", NULL, MX_V6_FIRST, rt);
	assert_int_equal(rt->hosts[0].naddrs, 4);
	assert_v6(&rt->hosts[0].addrs[0], "2001:db8::11");
	assert_v6(&rt->hosts[0].addrs[1], "2001:db8::12");
	assert_v4(&rt->hosts[0].addrs[2], "192.0.2.11");
	assert_v4(&rt->hosts[0].addrs[3], "192.0.2.12");

	route(*state, "dual.test", NULL, MX_V4_FIRST, rt);
	assert_int_equal(rt->hosts[0].naddrs, 4);
	assert_v4(&rt->hosts[0].addrs[0], "192.0.2.11");
	assert_v6(&rt->hosts[0].addrs[2], "2001:db8::11");

	route(*state, "dual.test", NULL, MX_V6_ONLY, rt);
	assert_int_equal(rt->hosts[0].naddrs, 2);
	assert_v6(&rt->hosts[0].addrs[1], "2001:db8::12");

	route(*state, "dual.test", NULL, MX_V4_ONLY, rt);
	assert_int_equal(rt->hosts[0].naddrs, 2);
	assert_v4(&rt->hosts[0].addrs[1], "192.0.2.12");

	/* IPv6 only: the hosts with only A records drop out. */
	route(*state, "example.test", NULL, MX_V6_ONLY, rt);
	assert_int_equal(rt->n, 1);
	assert_string_equal(rt->hosts[0].name, "mx1.example.test");
	free(rt);
}

/* Many addresses and many hosts: the caps hold, both families keep half. */
static void
test_caps(void **state)
{
	struct dns_static *z = dns_static_new();
	struct dns_resolver r = dns_static_resolver(z);
	struct mx_route *rt = malloc(sizeof(*rt));
	char line[128], err[128];
	int i;

	for (i = 0; i < 12; i++) {
		snprintf(line, sizeof(line), "h.test A 10.0.0.%d", i);
		assert_int_equal(dns_static_add(z, line, err, sizeof(err)), 0);
		snprintf(line, sizeof(line), "h.test AAAA 2001:db8::%d", i);
		assert_int_equal(dns_static_add(z, line, err, sizeof(err)), 0);
		snprintf(line, sizeof(line), "v4.test A 10.1.0.%d", i);
		assert_int_equal(dns_static_add(z, line, err, sizeof(err)), 0);
	}
	for (i = 0; i < 40; i++) {
		snprintf(line, sizeof(line), "many.test MX %d m%d.test", i, i);
		assert_int_equal(dns_static_add(z, line, err, sizeof(err)), 0);
		snprintf(line, sizeof(line), "m%d.test A 10.2.0.%d", i, i);
		assert_int_equal(dns_static_add(z, line, err, sizeof(err)), 0);
	}
	assert_int_equal(mx_resolve(&r, "h.test", NULL, NULL, rt), 0);
	assert_int_equal(rt->hosts[0].naddrs, MX_ADDRS_MAX);
	assert_v6(&rt->hosts[0].addrs[0], "2001:db8::");
	assert_v6(&rt->hosts[0].addrs[3], "2001:db8::3");
	assert_v4(&rt->hosts[0].addrs[4], "10.0.0.0");
	assert_v4(&rt->hosts[0].addrs[7], "10.0.0.3");
	assert_int_equal(mx_resolve(&r, "v4.test", NULL, NULL, rt), 0);
	assert_int_equal(rt->hosts[0].naddrs, MX_ADDRS_MAX);
	assert_v4(&rt->hosts[0].addrs[7], "10.1.0.7");

	i = (int)dns_static_queries(z);
	assert_int_equal(mx_resolve(&r, "many.test", NULL, NULL, rt), 0);
	assert_int_equal(rt->n, MX_HOSTS_MAX);
	assert_string_equal(rt->hosts[MX_HOSTS_MAX - 1].name, "m15.test");
	assert_int_equal(dns_static_queries(z) - (size_t)i, 1 + 2 * MX_HOSTS_MAX);
	dns_static_free(z);
	free(rt);
}

static void
test_literal(void **state)
{
	static const char *bad[] = {
		"[1.2.3]", "[IPv6:1.2.3.4]", "[]", "[", "[1.2.3.4", "[IPv6:]",
		"[1.2.3.4]x", "[IPv6:2001:db8::1:2:3:4:5:6:7:8:9:0:1:2:3:4:5:6:7]",
	};
	struct fixture *f = *state;
	struct mx_route *rt = malloc(sizeof(*rt));
	size_t i;

	route(f, "[192.0.2.7]", NULL, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_OK);
	assert_int_equal(rt->n, 1);
	assert_string_equal(rt->hosts[0].name, "[192.0.2.7]");
	assert_v4(&rt->hosts[0].addrs[0], "192.0.2.7");

	route(f, "[ipv6:2001:DB8::7]", NULL, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_OK);
	assert_v6(&rt->hosts[0].addrs[0], "2001:db8::7");

	route(f, "[192.0.2.7]", NULL, MX_V6_ONLY, rt);
	assert_int_equal(rt->status, MX_NOHOST);
	assert_int_equal(dns_static_queries(f->z), 0);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		route(f, bad[i], NULL, MX_V6_FIRST, rt);
		if (rt->status != MX_BADDOMAIN)
			fail_msg("accepted %s", bad[i]);
	}
	route(f, "a..test", NULL, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_BADDOMAIN);
	route(f, "", NULL, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_BADDOMAIN);
	route(f, "sp ace.test", NULL, MX_V6_FIRST, rt);
	assert_int_equal(rt->status, MX_BADDOMAIN);
	assert_int_equal(dns_static_queries(f->z), 0);
	assert_string_equal(mx_status_str(MX_BADDOMAIN), "baddomain");
	free(rt);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_order), T(test_random_equal), T(test_default_random),
		T(test_implicit), T(test_null_mx), T(test_loop), T(test_tempfail),
		T(test_cname_dup), T(test_families), T(test_literal),
		cmocka_unit_test(test_caps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
