/* Unit tests for src/dns/cache.c over a static zone that hands out TTLs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "dns/cache.h"
#include "dns/dns.h"

static const char zone[] =
    "example.test TXT \"v=spf1 \" \"-all\"\n"
    "example.test MX 10 mx1.example.test\n"
    "mx1.example.test A 192.0.2.1\n"
    "a.test CNAME mx1.example.test\n"
    "bad.test SERVFAIL\n"
    "n1.test A 192.0.2.11\n"
    "n2.test A 192.0.2.12\n"
    "n3.test A 192.0.2.13\n"
    "n4.test A 192.0.2.14\n"
    "n5.test A 192.0.2.15\n";

/* The inner resolver: the static zone, whose answers may be kept ttl s. */
struct inner {
	struct dns_static *z;
	uint32_t           ttl;
};

static int
inner_query(void *ctx, const char *name, enum dns_type type, struct dns_answer *out)
{
	struct inner *in = ctx;
	struct dns_resolver r = dns_static_resolver(in->z);
	int rc = dns_query(&r, name, type, out);

	out->ttl = in->ttl;
	return rc;
}

struct fixture {
	struct inner          in;
	struct dns_cache_view view;
	struct dns_resolver   r;
};

static struct fixture *
fixture_new(size_t max_entries, size_t max_bytes, uint32_t ttl)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	assert_non_null(f);
	assert_non_null(f->in.z = dns_static_new());
	if (dns_static_load(f->in.z, zone, sizeof(zone) - 1, err, sizeof(err)) == -1)
		fail_msg("load: %s", err);
	f->in.ttl = ttl;
	assert_non_null(f->view.cache = dns_cache_new(max_entries, max_bytes));
	f->view.inner.query = inner_query;
	f->view.inner.ctx = &f->in;
	f->r = dns_cache_resolver(&f->view);
	return f;
}

static void
fixture_free(struct fixture *f)
{
	dns_cache_free(f->view.cache);
	dns_static_free(f->in.z);
	free(f);
}

static size_t
asked(const struct fixture *f)
{
	return dns_static_queries(f->in.z);
}

static void
ask(struct fixture *f, const char *name, enum dns_type t, struct dns_answer *a)
{
	assert_int_equal(dns_query(&f->r, name, t, a), 0);
}

static void
test_hit_same_answer(void **state)
{
	struct fixture *f = fixture_new(64, 65536, 300);
	struct dns_answer a, b;
	struct dns_cache_stats st;

	ask(f, "example.test", DNS_T_TXT, &a);
	ask(f, "example.test", DNS_T_TXT, &b);
	assert_int_equal(asked(f), 1);
	assert_int_equal(b.status, DNS_OK);
	assert_int_equal(b.n, 1);
	assert_int_equal(b.rrs[0].type, DNS_T_TXT);
	assert_int_equal(b.rrs[0].len, 11);
	assert_memory_equal(b.rrs[0].data, "v=spf1 -all", 11);
	assert_int_equal(b.rrs[0].ttl, 300);
	assert_int_equal(b.ttl, 300);
	assert_string_equal(b.canon, a.canon);
	dns_answer_free(&a);
	dns_answer_free(&b);
	/* another type of the same name is another entry */
	ask(f, "example.test", DNS_T_MX, &a);
	assert_int_equal(asked(f), 2);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.rrs[0].pref, 10);
	assert_string_equal(a.rrs[0].data, "mx1.example.test");
	dns_answer_free(&a);
	/* a CNAME answer keeps its canonical name */
	ask(f, "a.test", DNS_T_A, &a);
	ask(f, "a.test", DNS_T_A, &b);
	assert_int_equal(asked(f), 3);
	assert_string_equal(b.canon, "mx1.example.test");
	assert_memory_equal(b.rrs[0].addr, "\xc0\x00\x02\x01", 4);
	dns_answer_free(&a);
	dns_answer_free(&b);
	/* names are keys as given: no case folding */
	ask(f, "EXAMPLE.test", DNS_T_TXT, &a);
	assert_int_equal(asked(f), 4);
	dns_answer_free(&a);
	dns_cache_stats(f->view.cache, &st);
	assert_int_equal(st.entries, 4);
	assert_int_equal(st.hits, 2);
	assert_int_equal(st.misses, 4);
	fixture_free(f);
}

static void
test_negative_and_failures(void **state)
{
	struct fixture *f = fixture_new(64, 65536, 300);
	struct dns_answer a;

	/* NXDOMAIN and NODATA are kept for their TTL (RFC 2308) */
	ask(f, "none.test", DNS_T_A, &a);
	assert_int_equal(a.status, DNS_NXDOMAIN);
	ask(f, "none.test", DNS_T_A, &a);
	assert_int_equal(a.status, DNS_NXDOMAIN);
	ask(f, "mx1.example.test", DNS_T_TXT, &a);
	assert_int_equal(a.status, DNS_NODATA);
	ask(f, "mx1.example.test", DNS_T_TXT, &a);
	assert_int_equal(a.status, DNS_NODATA);
	assert_int_equal(asked(f), 2);
	/* a temporary or permanent failure never is */
	ask(f, "bad.test", DNS_T_TXT, &a);
	assert_int_equal(a.status, DNS_TEMPFAIL);
	ask(f, "bad.test", DNS_T_TXT, &a);
	assert_int_equal(a.status, DNS_TEMPFAIL);
	ask(f, "a..test", DNS_T_TXT, &a);
	assert_int_equal(a.status, DNS_PERMFAIL);
	ask(f, "a..test", DNS_T_TXT, &a);
	assert_int_equal(a.status, DNS_PERMFAIL);
	assert_int_equal(asked(f), 6);
	fixture_free(f);
}

static void
test_ttl_zero_not_kept(void **state)
{
	struct fixture *f = fixture_new(64, 65536, 0);
	struct dns_answer a;
	struct dns_cache_stats st;

	ask(f, "example.test", DNS_T_TXT, &a);
	dns_answer_free(&a);
	ask(f, "example.test", DNS_T_TXT, &a);
	assert_int_equal(a.status, DNS_OK);
	dns_answer_free(&a);
	assert_int_equal(asked(f), 2);
	dns_cache_stats(f->view.cache, &st);
	assert_int_equal(st.entries, 0);
	fixture_free(f);
}

static void
test_expiry(void **state)
{
	struct fixture *f = fixture_new(64, 65536, 1);
	struct timespec ts = { 1, 100 * 1000 * 1000 };
	struct dns_answer a;

	ask(f, "example.test", DNS_T_TXT, &a);
	dns_answer_free(&a);
	ask(f, "example.test", DNS_T_TXT, &a);
	dns_answer_free(&a);
	assert_int_equal(asked(f), 1);
	nanosleep(&ts, NULL);
	ask(f, "example.test", DNS_T_TXT, &a);
	assert_int_equal(a.status, DNS_OK);
	dns_answer_free(&a);
	assert_int_equal(asked(f), 2);
	fixture_free(f);
}

static void
test_bounds(void **state)
{
	struct fixture *f = fixture_new(4, 65536, 300);
	struct dns_cache_stats st;
	struct dns_answer a;
	char name[32];
	int i;

	for (i = 1; i <= 5; i++) {
		snprintf(name, sizeof(name), "n%d.test", i);
		ask(f, name, DNS_T_A, &a);
		assert_int_equal(a.rrs[0].addr[3], 10 + i);
		dns_answer_free(&a);
	}
	dns_cache_stats(f->view.cache, &st);
	assert_int_equal(st.entries, 4);
	/* the least recently used went first: n1 is asked again, n5 is not */
	ask(f, "n5.test", DNS_T_A, &a);
	dns_answer_free(&a);
	assert_int_equal(asked(f), 5);
	ask(f, "n1.test", DNS_T_A, &a);
	dns_answer_free(&a);
	assert_int_equal(asked(f), 6);
	fixture_free(f);

	/* room for no answer at all: nothing is kept, everything is asked */
	f = fixture_new(64, 16, 300);
	ask(f, "n1.test", DNS_T_A, &a);
	dns_answer_free(&a);
	ask(f, "n1.test", DNS_T_A, &a);
	assert_int_equal(a.status, DNS_OK);
	dns_answer_free(&a);
	assert_int_equal(asked(f), 2);
	dns_cache_stats(f->view.cache, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	fixture_free(f);
}

static void
test_cache_only(void **state)
{
	struct fixture *f = fixture_new(64, 65536, 300);
	struct dns_cache_view only = { f->view.cache, { NULL, NULL }, 1, 0 };
	struct dns_resolver r = dns_cache_resolver(&only);
	struct dns_answer a;

	/* a miss: a temporary failure, counted, and no query at all */
	assert_int_equal(dns_query(&r, "example.test", DNS_T_TXT, &a), 0);
	assert_int_equal(a.status, DNS_TEMPFAIL);
	assert_int_equal(only.missed, 1);
	assert_int_equal(asked(f), 0);
	/* once the other view has it, a hit */
	ask(f, "example.test", DNS_T_TXT, &a);
	dns_answer_free(&a);
	assert_int_equal(dns_query(&r, "example.test", DNS_T_TXT, &a), 0);
	assert_int_equal(a.status, DNS_OK);
	assert_memory_equal(a.rrs[0].data, "v=spf1 -all", 11);
	dns_answer_free(&a);
	assert_int_equal(only.missed, 1);
	assert_int_equal(asked(f), 1);
	fixture_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_same_answer),
		cmocka_unit_test(test_negative_and_failures),
		cmocka_unit_test(test_ttl_zero_not_kept),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_cache_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
