/*
 * Unit tests for src/dns/unbound.c. The timeout and error tests run
 * always (a silent UDP socket on loopback plays the dead server). The
 * rest need a DNS server serving the zone of tests/integration/test_dns.py
 * at TERN_TEST_DNS ("127.0.0.1@PORT"); without it they are skipped, and
 * tests/integration/test_dns.py runs this program with it set.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>
#include <event2/event.h>

#include "dns/dns.h"
#include "dns/mx.h"
#include "dns/unbound.h"

static long
elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/* A UDP socket on 127.0.0.1 that never answers; *port gets its port. */
static int
silent_server(char *addr, size_t len)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	snprintf(addr, len, "127.0.0.1@%u", ntohs(sin.sin_port));
	return fd;
}

static void
test_bad_config(void **state)
{
	char err[256] = "";

	assert_null(dns_unbound_new("not an address", 100, err, sizeof(err)));
	assert_non_null(strstr(err, "forwarder"));
}

static void
test_bad_name(void **state)
{
	char err[256], addr[64];
	int fd = silent_server(addr, sizeof(addr));
	struct dns_unbound *u = dns_unbound_new(addr, 200, err, sizeof(err));
	struct dns_resolver r;
	struct dns_answer a;

	assert_non_null(u);
	r = dns_unbound_resolver(u);
	assert_int_equal(dns_query(&r, "bad name.test", DNS_T_A, &a), 0);
	assert_int_equal(a.status, DNS_PERMFAIL);
	assert_int_equal(dns_query(&r, "a\\.b", DNS_T_A, &a), 0);
	assert_int_equal(a.status, DNS_PERMFAIL);
	assert_int_equal(dns_unbound_query_async(u, "", DNS_T_A, NULL, NULL), -1);
	assert_int_equal(dns_unbound_pending(u), 0);
	assert_int_equal(dns_unbound_timeout_ms(u), -1);
	dns_unbound_free(u);
	close(fd);
}

static void
test_sync_timeout(void **state)
{
	char err[256], addr[64];
	int fd = silent_server(addr, sizeof(addr));
	struct dns_unbound *u = dns_unbound_new(addr, 300, err, sizeof(err));
	struct dns_resolver r;
	struct dns_answer a;
	struct timespec t0;
	long ms;

	assert_non_null(u);
	r = dns_unbound_resolver(u);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(dns_query(&r, "example.test", DNS_T_MX, &a), 0);
	ms = elapsed_ms(&t0);
	assert_int_equal(a.status, DNS_TEMPFAIL);
	assert_int_equal(a.n, 0);
	if (ms < 290 || ms > 1500)
		fail_msg("timed out after %ld ms, want about 300", ms);
	assert_int_equal(dns_unbound_pending(u), 0);
	dns_unbound_free(u);
	close(fd);
}

/* ---- async ---- */

struct result {
	struct event_base *base;
	int               *left;
	int                called;
	enum dns_status    status;
	size_t             n;
	char               first[DNS_NAME_MAX + 1];	/* rrs[0].data */
	uint16_t           pref;
	uint8_t            addr[16];
	char               canon[DNS_NAME_MAX + 1];
	long               ms;
	struct timespec    t0;
};

static void
on_answer(void *arg, struct dns_answer *a)
{
	struct result *r = arg;

	r->called++;
	r->status = a->status;
	r->n = a->n;
	r->ms = elapsed_ms(&r->t0);
	snprintf(r->canon, sizeof(r->canon), "%s", a->canon);
	if (a->n > 0) {
		snprintf(r->first, sizeof(r->first), "%s", a->rrs[0].data ? a->rrs[0].data : "");
		r->pref = a->rrs[0].pref;
		memcpy(r->addr, a->rrs[0].addr, 16);
	}
	if (--*r->left == 0)
		event_base_loopexit(r->base, NULL);
}

static void
start(struct dns_unbound *u, struct event_base *base, int *left, struct result *r,
    const char *name, enum dns_type t)
{
	memset(r, 0, sizeof(*r));
	r->base = base;
	r->left = left;
	clock_gettime(CLOCK_MONOTONIC, &r->t0);
	assert_true(dns_unbound_query_async(u, name, t, on_answer, r) > 0);
	(*left)++;
}

static void
test_async_timeout(void **state)
{
	char err[256], addr[64];
	int fd = silent_server(addr, sizeof(addr)), left = 0, id;
	struct dns_unbound *u = dns_unbound_new(addr, 250, err, sizeof(err));
	struct event_base *base = event_base_new();
	struct result r[2], cancelled;

	assert_non_null(u);
	assert_int_equal(dns_unbound_attach(u, base), 0);
	assert_true(dns_unbound_fd(u) >= 0);
	start(u, base, &left, &r[0], "a.test", DNS_T_A);
	start(u, base, &left, &r[1], "b.test", DNS_T_MX);
	memset(&cancelled, 0, sizeof(cancelled));
	id = dns_unbound_query_async(u, "c.test", DNS_T_A, on_answer, &cancelled);
	assert_true(id > 0);
	assert_int_equal(dns_unbound_pending(u), 3);
	assert_int_equal(dns_unbound_cancel(u, id), 0);
	assert_int_equal(dns_unbound_cancel(u, id), -1);
	assert_int_equal(event_base_dispatch(base), 0);
	assert_int_equal(left, 0);
	assert_int_equal(r[0].called, 1);
	assert_int_equal(r[0].status, DNS_TEMPFAIL);
	assert_int_equal(r[1].status, DNS_TEMPFAIL);
	if (r[1].ms < 240 || r[1].ms > 1500)
		fail_msg("timed out after %ld ms, want about 250", r[1].ms);
	assert_int_equal(cancelled.called, 0);
	assert_int_equal(dns_unbound_pending(u), 0);
	dns_unbound_free(u);
	event_base_free(base);
	close(fd);
}

/* ---- against the test server (TERN_TEST_DNS) ---- */

static struct dns_unbound *
server_or_skip(unsigned timeout_ms)
{
	const char *addr = getenv("TERN_TEST_DNS");
	struct dns_unbound *u;
	char err[256];

	if (addr == NULL || *addr == '\0') {
		printf("SKIP: TERN_TEST_DNS not set\n");
		skip();
	}
	if ((u = dns_unbound_new(addr, timeout_ms, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	return u;
}

static void
test_sync_server(void **state)
{
	static const uint8_t lo2[4] = { 127, 0, 0, 2 };
	static const uint8_t v6[16] = { [15] = 2 };
	struct dns_unbound *u = server_or_skip(1000);
	struct dns_resolver r = dns_unbound_resolver(u);
	struct dns_answer a;

	assert_int_equal(dns_query(&r, "Example.Test", DNS_T_MX, &a), 0);
	assert_int_equal(a.status, DNS_OK);
	assert_int_equal(a.n, 2);
	assert_int_equal(a.rrs[0].pref + a.rrs[1].pref, 30);
	assert_string_equal(a.rrs[a.rrs[0].pref == 10 ? 0 : 1].data, "mx1.example.test");
	assert_int_equal(a.rrs[0].ttl, 300);
	dns_answer_free(&a);

	assert_int_equal(dns_query(&r, "mx1.example.test", DNS_T_A, &a), 0);
	assert_int_equal(a.status, DNS_OK);
	assert_memory_equal(a.rrs[0].addr, lo2, 4);
	dns_answer_free(&a);
	assert_int_equal(dns_query(&r, "mx1.example.test.", DNS_T_AAAA, &a), 0);
	assert_int_equal(a.status, DNS_OK);
	assert_memory_equal(a.rrs[0].addr, v6, 16);
	dns_answer_free(&a);

	assert_int_equal(dns_query(&r, "txt.test", DNS_T_TXT, &a), 0);
	assert_int_equal(a.status, DNS_OK);
	assert_string_equal(a.rrs[0].data, "v=spf1 -all");
	dns_answer_free(&a);

	assert_int_equal(dns_query(&r, "alias.test", DNS_T_A, &a), 0);
	assert_int_equal(a.status, DNS_OK);
	assert_string_equal(a.canon, "mx1.example.test");
	assert_memory_equal(a.rrs[0].addr, lo2, 4);
	dns_answer_free(&a);

	assert_int_equal(dns_query(&r, "9.8.7.6.in-addr.arpa", DNS_T_PTR, &a), 0);
	assert_int_equal(a.status, DNS_OK);
	assert_string_equal(a.rrs[0].data, "mx1.example.test");
	dns_answer_free(&a);

	assert_int_equal(dns_query(&r, "_25._tcp.mx1.example.test", DNS_T_TLSA, &a), 0);
	assert_int_equal(a.status, DNS_OK);
	assert_int_equal(a.rrs[0].len, 5);
	assert_memory_equal(a.rrs[0].data, "\x03\x01\x01\x00\xff", 5);
	dns_answer_free(&a);

	assert_int_equal(dns_query(&r, "null.test", DNS_T_MX, &a), 0);
	assert_int_equal(a.status, DNS_OK);
	assert_int_equal(a.rrs[0].len, 0);
	dns_answer_free(&a);

	assert_int_equal(dns_query(&r, "example.test", DNS_T_A, &a), 0);
	assert_int_equal(a.status, DNS_NODATA);
	dns_answer_free(&a);
	assert_int_equal(dns_query(&r, "nope.test", DNS_T_A, &a), 0);
	assert_int_equal(a.status, DNS_NXDOMAIN);
	dns_answer_free(&a);
	assert_int_equal(dns_query(&r, "fail.test", DNS_T_MX, &a), 0);
	assert_int_equal(a.status, DNS_TEMPFAIL);
	dns_answer_free(&a);
	assert_int_equal(dns_query(&r, "slow.test", DNS_T_MX, &a), 0);
	assert_int_equal(a.status, DNS_TEMPFAIL);
	dns_answer_free(&a);
	dns_unbound_free(u);
}

static void
test_mx_server(void **state)
{
	static const char *const self[] = { "mx2.example.test", NULL };
	struct dns_unbound *u = server_or_skip(1000);
	struct dns_resolver r = dns_unbound_resolver(u);
	struct mx_route *rt = malloc(sizeof(*rt));

	assert_int_equal(mx_resolve(&r, "example.test", NULL, NULL, rt), 0);
	assert_int_equal(rt->status, MX_OK);
	assert_int_equal(rt->n, 2);
	assert_string_equal(rt->hosts[0].name, "mx1.example.test");
	assert_int_equal(rt->hosts[0].naddrs, 2);
	assert_int_equal(rt->hosts[0].addrs[0].family, AF_INET6);
	assert_string_equal(rt->hosts[1].name, "mx2.example.test");

	assert_int_equal(mx_resolve(&r, "example.test", self, NULL, rt), 0);
	assert_int_equal(rt->n, 1);
	assert_int_equal(mx_resolve(&r, "null.test", NULL, NULL, rt), 0);
	assert_int_equal(rt->status, MX_NULLMX);
	assert_int_equal(mx_resolve(&r, "mx2.example.test", NULL, NULL, rt), 0);
	assert_int_equal(rt->status, MX_OK);
	assert_int_equal(rt->implicit, 1);
	assert_int_equal(mx_resolve(&r, "fail.test", NULL, NULL, rt), 0);
	assert_int_equal(rt->status, MX_TEMPFAIL);
	assert_int_equal(mx_resolve(&r, "nope.test", NULL, NULL, rt), 0);
	assert_int_equal(rt->status, MX_NOHOST);
	free(rt);
	dns_unbound_free(u);
}

static void
test_async_server(void **state)
{
	struct dns_unbound *u = server_or_skip(500);
	struct event_base *base = event_base_new();
	struct result r[6];
	int left = 0;

	assert_int_equal(dns_unbound_attach(u, base), 0);
	start(u, base, &left, &r[0], "example.test", DNS_T_MX);
	start(u, base, &left, &r[1], "alias.test", DNS_T_A);
	start(u, base, &left, &r[2], "nope.test", DNS_T_MX);
	start(u, base, &left, &r[3], "fail.test", DNS_T_A);
	start(u, base, &left, &r[4], "slow.test", DNS_T_A);
	start(u, base, &left, &r[5], "txt.test", DNS_T_TXT);
	assert_int_equal(event_base_dispatch(base), 0);
	assert_int_equal(left, 0);
	assert_int_equal(r[0].status, DNS_OK);
	assert_int_equal(r[0].n, 2);
	assert_int_equal(r[1].status, DNS_OK);
	assert_string_equal(r[1].canon, "mx1.example.test");
	assert_memory_equal(r[1].addr, "\x7f\x00\x00\x02", 4);
	assert_int_equal(r[2].status, DNS_NXDOMAIN);
	assert_int_equal(r[3].status, DNS_TEMPFAIL);
	assert_int_equal(r[4].status, DNS_TEMPFAIL);
	if (r[4].ms < 490 || r[4].ms > 2000)
		fail_msg("slow.test timed out after %ld ms, want about 500", r[4].ms);
	/* The answered ones did not wait for the slow one. */
	if (r[0].ms > 400)
		fail_msg("example.test took %ld ms", r[0].ms);
	assert_int_equal(r[5].status, DNS_OK);
	assert_string_equal(r[5].first, "v=spf1 -all");
	dns_unbound_free(u);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_bad_name),
		cmocka_unit_test(test_sync_timeout),
		cmocka_unit_test(test_async_timeout),
		cmocka_unit_test(test_sync_server),
		cmocka_unit_test(test_mx_server),
		cmocka_unit_test(test_async_server),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
