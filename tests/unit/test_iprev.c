/* Unit tests for src/mailauth/iprev.c over a static zone, and dns_reverse_name. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "dns/dns.h"
#include "mailauth/iprev.h"

static const char zone[] =
    /* pass: the PTR name leads back */
    "1.2.0.192.in-addr.arpa PTR mail.example.com\n"
    "mail.example.com A 192.0.2.1\n"
    /* fail: it leads elsewhere */
    "2.2.0.192.in-addr.arpa PTR other.example.com\n"
    "other.example.com A 192.0.2.99\n"
    /* the second of two names leads back */
    "3.2.0.192.in-addr.arpa PTR nothere.example.com\n"
    "3.2.0.192.in-addr.arpa PTR mx3.example.com\n"
    "nothere.example.com TXT \"no address\"\n"
    "mx3.example.com A 192.0.2.7\n"
    "mx3.example.com A 192.0.2.3\n"
    /* the only name's forward lookup fails for now */
    "4.2.0.192.in-addr.arpa PTR slow.example.com\n"
    "slow.example.com TIMEOUT\n"
    /* PTR lookup fails for now */
    "5.2.0.192.in-addr.arpa SERVFAIL\n"
    /* a name whose A is missing (fail, not temperror) */
    "6.2.0.192.in-addr.arpa PTR gone.example.com\n"
    /* a name with an address only through a CNAME */
    "8.2.0.192.in-addr.arpa PTR alias.example.com\n"
    "alias.example.com CNAME real.example.com\n"
    "real.example.com A 192.0.2.8\n"
    /* the name exists but has no PTR: permerror, like no name at all */
    "9.2.0.192.in-addr.arpa TXT \"not a ptr\"\n"
    /* IPv6 */
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa PTR v6.example.com\n"
    "v6.example.com AAAA 2001:db8::1\n"
    "v6.example.com A 192.0.2.1\n";

static struct dns_static *z;
static struct dns_resolver r;

static int
setup(void **state)
{
	char err[256];

	z = dns_static_new();
	if (z == NULL || dns_static_load(z, zone, sizeof(zone) - 1, err, sizeof(err)) == -1) {
		fprintf(stderr, "zone: %s\n", err);
		return -1;
	}
	r = dns_static_resolver(z);
	return 0;
}

static int
teardown(void **state)
{
	dns_static_free(z);
	return 0;
}

static void
expect(const char *ip, enum iprev_result want, const char *name)
{
	struct iprev_outcome o;

	assert_int_equal(iprev_check(&r, ip, &o), 0);
	if (o.result != want)
		fail_msg("%s: %s, want %s", ip, iprev_result_str(o.result), iprev_result_str(want));
	assert_string_equal(o.name, name);
}

static void
results(void **state)
{
	expect("192.0.2.1", IPREV_PASS, "mail.example.com");
	expect("192.0.2.2", IPREV_FAIL, "");
	expect("192.0.2.3", IPREV_PASS, "mx3.example.com");
	expect("192.0.2.4", IPREV_TEMPERROR, "");
	expect("192.0.2.5", IPREV_TEMPERROR, "");
	expect("192.0.2.6", IPREV_FAIL, "");
	expect("192.0.2.8", IPREV_PASS, "alias.example.com");
	expect("192.0.2.9", IPREV_PERMERROR, "");
	expect("192.0.2.10", IPREV_PERMERROR, "");	/* NXDOMAIN */
	expect("2001:db8::1", IPREV_PASS, "v6.example.com");
	expect("2001:db8::2", IPREV_PERMERROR, "");
	expect("not an address", IPREV_PERMERROR, "");
	expect("", IPREV_PERMERROR, "");
}

/* At most IPREV_NAMES_MAX names are looked up forward. */
static void
names_limited(void **state)
{
	struct dns_static *many = dns_static_new();
	struct dns_resolver mr;
	struct iprev_outcome o;
	char line[128], err[128];
	int i;

	assert_non_null(many);
	for (i = 0; i < 12; i++) {
		snprintf(line, sizeof(line), "20.2.0.192.in-addr.arpa PTR h%02d.example.com", i);
		assert_int_equal(dns_static_add(many, line, err, sizeof(err)), 0);
	}
	/* only the 12th name leads back */
	assert_int_equal(dns_static_add(many, "h11.example.com A 192.0.2.20", err, sizeof(err)), 0);
	mr = dns_static_resolver(many);
	assert_int_equal(iprev_check(&mr, "192.0.2.20", &o), 0);
	assert_int_equal(o.result, IPREV_FAIL);
	assert_int_equal(dns_static_queries(many), 1 + IPREV_NAMES_MAX);
	dns_static_free(many);
}

static void
reverse_names(void **state)
{
	static const uint8_t v4[4] = { 192, 0, 2, 1 };
	static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 0x1f };
	char b[DNS_REVERSE_MAX];

	dns_reverse_name(0, v4, b, sizeof(b));
	assert_string_equal(b, "1.2.0.192.in-addr.arpa");
	dns_reverse_name(1, v6, b, sizeof(b));
	assert_string_equal(b, "f.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	assert_int_equal(strlen(b) + 1, DNS_REVERSE_MAX);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(results),
		cmocka_unit_test(names_limited),
		cmocka_unit_test(reverse_names),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
