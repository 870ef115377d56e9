/* Unit tests for src/dns/dns.c (the static resolver) and src/dns/rr.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dns/dns.h"
#include "dns/rr.h"

static const char zone[] =
    "# test zone\n"
    "example.test MX 10 MX1.Example.Test.\n"
    "example.test MX 20 mx2.example.test\n"
    "example.test TXT \"v=spf1 \" \"-all\"\n"
    "esc.test TXT \"a\\\"b\\\\c\\065\"\n"
    "mx1.example.test A 192.0.2.1\n"
    "mx1.example.test AAAA 2001:db8::1\n"
    "\n"
    "null.test MX 0 .\n"
    "1.2.0.192.in-addr.arpa PTR mx1.example.test\n"
    "a.test CNAME b.test\n"
    "b.test CNAME mx1.example.test\n"
    "dangling.test CNAME nowhere.test\n"
    "loop1.test CNAME loop2.test\n"
    "loop2.test CNAME loop1.test\n"
    "_25._tcp.mx1.example.test TLSA 3 1 1 0aFF\n"
    "bad.test SERVFAIL\n"
    "slow.test TIMEOUT\n";

static int
setup(void **state)
{
	struct dns_static *z = dns_static_new();
	char err[256];

	assert_non_null(z);
	if (dns_static_load(z, zone, sizeof(zone) - 1, err, sizeof(err)) == -1)
		fail_msg("load: %s", err);
	*state = z;
	return 0;
}

static int
teardown(void **state)
{
	dns_static_free(*state);
	return 0;
}

static void
ask(void **state, const char *name, enum dns_type t, struct dns_answer *a)
{
	struct dns_resolver r = dns_static_resolver(*state);

	assert_int_equal(dns_query(&r, name, t, a), 0);
}

static void
test_static_types(void **state)
{
	static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	struct dns_answer a;

	ask(state, "example.test", DNS_T_MX, &a);
	assert_int_equal(a.status, DNS_OK);
	assert_int_equal(a.n, 2);
	assert_int_equal(a.rrs[0].pref, 10);
	assert_string_equal(a.rrs[0].data, "mx1.example.test");
	assert_int_equal(a.rrs[0].len, 16);
	assert_int_equal(a.rrs[1].pref, 20);
	assert_string_equal(a.rrs[1].data, "mx2.example.test");
	assert_int_equal(a.rrs[0].ttl, 300);
	dns_answer_free(&a);

	ask(state, "MX1.example.test.", DNS_T_A, &a);
	assert_int_equal(a.status, DNS_OK);
	assert_int_equal(a.n, 1);
	assert_memory_equal(a.rrs[0].addr, "\xc0\x00\x02\x01", 4);
	assert_string_equal(a.canon, "mx1.example.test");
	dns_answer_free(&a);

	ask(state, "mx1.example.test", DNS_T_AAAA, &a);
	assert_int_equal(a.status, DNS_OK);
	assert_memory_equal(a.rrs[0].addr, v6, 16);
	dns_answer_free(&a);

	ask(state, "example.test", DNS_T_TXT, &a);
	assert_int_equal(a.status, DNS_OK);
	assert_int_equal(a.rrs[0].len, 11);
	assert_string_equal(a.rrs[0].data, "v=spf1 -all");
	dns_answer_free(&a);

	ask(state, "esc.test", DNS_T_TXT, &a);
	assert_int_equal(a.rrs[0].len, 6);
	assert_string_equal(a.rrs[0].data, "a\"b\\cA");
	dns_answer_free(&a);

	ask(state, "1.2.0.192.in-addr.arpa", DNS_T_PTR, &a);
	assert_int_equal(a.status, DNS_OK);
	assert_string_equal(a.rrs[0].data, "mx1.example.test");
	dns_answer_free(&a);

	ask(state, "_25._tcp.mx1.example.test", DNS_T_TLSA, &a);
	assert_int_equal(a.status, DNS_OK);
	assert_int_equal(a.rrs[0].len, 5);
	assert_memory_equal(a.rrs[0].data, "\x03\x01\x01\x0a\xff", 5);
	dns_answer_free(&a);

	ask(state, "null.test", DNS_T_MX, &a);
	assert_int_equal(a.status, DNS_OK);
	assert_int_equal(a.rrs[0].pref, 0);
	assert_int_equal(a.rrs[0].len, 0);
	assert_string_equal(a.rrs[0].data, "");
	dns_answer_free(&a);
}

static void
test_static_cname(void **state)
{
	struct dns_answer a;

	ask(state, "a.test", DNS_T_A, &a);
	assert_int_equal(a.status, DNS_OK);
	assert_string_equal(a.canon, "mx1.example.test");
	assert_memory_equal(a.rrs[0].addr, "\xc0\x00\x02\x01", 4);
	dns_answer_free(&a);

	/* Asking for the CNAME itself does not follow it. */
	ask(state, "a.test", DNS_T_CNAME, &a);
	assert_int_equal(a.status, DNS_OK);
	assert_string_equal(a.rrs[0].data, "b.test");
	assert_string_equal(a.canon, "a.test");
	dns_answer_free(&a);

	ask(state, "a.test", DNS_T_TXT, &a);
	assert_int_equal(a.status, DNS_NODATA);
	assert_string_equal(a.canon, "mx1.example.test");
	dns_answer_free(&a);

	ask(state, "dangling.test", DNS_T_A, &a);
	assert_int_equal(a.status, DNS_NXDOMAIN);
	assert_string_equal(a.canon, "nowhere.test");
	dns_answer_free(&a);

	ask(state, "loop1.test", DNS_T_A, &a);
	assert_int_equal(a.status, DNS_PERMFAIL);
	assert_int_equal(a.n, 0);
	dns_answer_free(&a);
}

static void
test_static_status(void **state)
{
	struct dns_answer a;
	size_t before = dns_static_queries(*state);

	ask(state, "example.test", DNS_T_A, &a);
	assert_int_equal(a.status, DNS_NODATA);
	assert_int_equal(a.n, 0);
	dns_answer_free(&a);
	ask(state, "nope.example.test", DNS_T_A, &a);
	assert_int_equal(a.status, DNS_NXDOMAIN);
	dns_answer_free(&a);
	ask(state, "bad.test", DNS_T_MX, &a);
	assert_int_equal(a.status, DNS_TEMPFAIL);
	dns_answer_free(&a);
	ask(state, "slow.test", DNS_T_A, &a);
	assert_int_equal(a.status, DNS_TEMPFAIL);
	dns_answer_free(&a);
	ask(state, "", DNS_T_A, &a);
	assert_int_equal(a.status, DNS_PERMFAIL);
	dns_answer_free(&a);
	assert_int_equal(dns_static_queries(*state), before + 5);
	assert_string_equal(dns_status_str(DNS_NODATA), "nodata");
	assert_string_equal(dns_type_str(DNS_T_TLSA), "TLSA");
}

static void
test_static_syntax(void **state)
{
	static const char *bad[] = {
		"x.test A 300.1.1.1", "x.test AAAA 192.0.2.1", "x.test MX 10",
		"x.test MX 70000 mx.test", "x.test BOGUS 1", "x.test TXT unquoted",
		"x.test TXT \"open", "x.test TXT \"\\999\"", "x.test TLSA 3 1 1 abc",
		"x.test TLSA 3 1 1 zz", "x.test TLSA 256 1 1 00", "onlyname",
		"x.test MX 10 a..", ". A 192.0.2.1",
		/* numbers that would wrap to 10 or 3 in 32 bits are refused */
		"x.test MX 4294967306 mx.test", "x.test TLSA 4294967299 1 1 00",
		"x.test MX -1 mx.test",
	};
	struct dns_static *z = dns_static_new();
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (dns_static_add(z, bad[i], err, sizeof(err)) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_true(err[0] != '\0');
	}
	assert_int_equal(dns_static_load(z, "# c\n\nx.test A 1.2.3.4\nx.test Q 1\n", 31,
	    err, sizeof(err)), -1);
	assert_string_equal(err, "line 4: unknown type \"Q\"");
	dns_static_free(z);
}

/* ---- wire format ---- */

struct pkt {
	uint8_t b[1024];
	size_t  n;
};

static void
put(struct pkt *p, const void *d, size_t n)
{
	assert_true(p->n + n <= sizeof(p->b));
	memcpy(p->b + p->n, d, n);
	p->n += n;
}

static void
put16(struct pkt *p, unsigned v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	put(p, b, 2);
}

/* A name in wire form; a label "@N" is a pointer to offset N. */
static void
put_name(struct pkt *p, const char *name)
{
	while (*name) {
		size_t l = strcspn(name, ".");

		if (name[0] == '@') {
			put16(p, 0xc000 | (unsigned)atoi(name + 1));
			return;
		}
		p->b[p->n++] = (uint8_t)l;
		put(p, name, l);
		name += l;
		if (*name == '.')
			name++;
	}
	p->b[p->n++] = 0;
}

static void
put_hdr(struct pkt *p, unsigned rcode, unsigned an, const char *qname, unsigned qtype)
{
	p->n = 0;
	put16(p, 0x1234);
	put16(p, 0x8180 | rcode);
	put16(p, 1);
	put16(p, an);
	put16(p, 0);
	put16(p, 0);
	put_name(p, qname);
	put16(p, qtype);
	put16(p, 1);
}

/* An RR whose RDATA is rd (rdlen given) or, with rd NULL, a name. */
static void
put_rr(struct pkt *p, const char *owner, unsigned type, const void *rd, size_t rdlen,
    const char *target)
{
	size_t lenpos;

	put_name(p, owner);
	put16(p, type);
	put16(p, 1);
	put16(p, 0);
	put16(p, 3600);
	lenpos = p->n;
	put16(p, 0);
	if (rd)
		put(p, rd, rdlen);
	if (target)
		put_name(p, target);
	p->b[lenpos] = (uint8_t)((p->n - lenpos - 2) >> 8);
	p->b[lenpos + 1] = (uint8_t)(p->n - lenpos - 2);
}

static void
test_parse_name(void **state)
{
	char out[DNS_NAME_MAX + 1];
	size_t next = 0;
	uint8_t m[600];
	size_t i;

	/* "Ex.com" at 0, "mail" + pointer to 0 at 8. */
	memcpy(m, "\x02" "Ex" "\x03" "com" "\x00" "\x04" "mail" "\xc0\x00", 15);
	assert_int_equal(dns_parse_name(m, 15, 0, out, &next), 0);
	assert_string_equal(out, "ex.com");
	assert_int_equal(next, 8);
	assert_int_equal(dns_parse_name(m, 15, 8, out, &next), 0);
	assert_string_equal(out, "mail.ex.com");
	assert_int_equal(next, 15);
	/* A pointer to itself, and forward: refused. */
	assert_int_equal(dns_parse_name(m, 15, 13, out, &next), 0);
	memcpy(m, "\xc0\x00", 2);
	assert_int_equal(dns_parse_name(m, 2, 0, out, &next), -1);
	memcpy(m, "\xc0\x02\x00", 3);
	assert_int_equal(dns_parse_name(m, 3, 0, out, &next), -1);
	/* A backwards pointer into a forward walk that would loop. */
	memcpy(m, "\x01" "a" "\xc0\x00", 4);
	assert_int_equal(dns_parse_name(m, 4, 2, out, &next), -1);
	/* Truncated label, truncated pointer, missing root, 0x40 label type. */
	assert_int_equal(dns_parse_name((const uint8_t *)"\x05" "ab", 3, 0, out, &next), -1);
	assert_int_equal(dns_parse_name((const uint8_t *)"\x01" "a" "\xc0", 3, 0, out, &next), -1);
	assert_int_equal(dns_parse_name((const uint8_t *)"\x01" "a", 2, 0, out, &next), -1);
	assert_int_equal(dns_parse_name((const uint8_t *)"\x41" "a", 2, 0, out, &next), -1);
	/* Root. */
	assert_int_equal(dns_parse_name((const uint8_t *)"", 1, 0, out, &next), 0);
	assert_string_equal(out, "");
	assert_int_equal(next, 1);
	/* Refused bytes: the wire is fine, next is set. */
	next = 0;
	assert_int_equal(dns_parse_name((const uint8_t *)"\x03" "a.b" "\x00", 5, 0, out, &next),
	    DNS_PARSE_BADNAME);
	assert_int_equal(next, 5);
	assert_int_equal(dns_parse_name((const uint8_t *)"\x02" "a " "\x00", 4, 0, out, &next),
	    DNS_PARSE_BADNAME);
	/* 4 labels of 63: 257 octets on the wire, one too many; 3 + 61 fit. */
	for (i = 0; i < 4; i++) {
		m[i * 64] = 63;
		memset(m + i * 64 + 1, 'a', 63);
	}
	m[256] = 0;
	assert_int_equal(dns_parse_name(m, 257, 0, out, &next), -1);
	m[192] = 61;
	m[192 + 62] = 0;
	assert_int_equal(dns_parse_name(m, 255, 0, out, &next), 0);
	assert_int_equal(strlen(out), 253);
	assert_int_equal(next, 255);
}

static void
test_parse_rdata(void **state)
{
	struct dns_rr rr;
	struct pkt p;
	size_t rd;

	assert_int_equal(dns_parse_rdata(DNS_T_A, (const uint8_t *)"\x7f\0\0\x01", 4, NULL, 0, &rr), 0);
	assert_memory_equal(rr.addr, "\x7f\0\0\x01", 4);
	assert_null(rr.data);
	assert_int_equal(dns_parse_rdata(DNS_T_A, (const uint8_t *)"\x7f\0\0", 3, NULL, 0, &rr), -1);
	assert_int_equal(dns_parse_rdata(DNS_T_AAAA, (const uint8_t *)"\x7f\0\0\x01", 4, NULL, 0, &rr), -1);

	/* MX with its target compressed against the message. */
	p.n = 0;
	put_name(&p, "example.test");		/* offset 0 */
	rd = p.n;
	put(&p, "\x00\x0a", 2);
	put_name(&p, "mx.@0");
	assert_int_equal(dns_parse_rdata(DNS_T_MX, p.b + rd, p.n - rd, p.b, p.n, &rr), 0);
	assert_int_equal(rr.type, DNS_T_MX);
	assert_int_equal(rr.pref, 10);
	assert_string_equal(rr.data, "mx.example.test");
	assert_int_equal(rr.len, 15);
	free(rr.data);
	/* Without the message the pointer resolves inside the RDATA: offset 0
	 * is the preference's high byte, 0, read as the root label. */
	assert_int_equal(dns_parse_rdata(DNS_T_MX, p.b + rd, p.n - rd, NULL, 0, &rr), 0);
	assert_string_equal(rr.data, "mx");
	free(rr.data);
	/* RDATA one byte short, and one byte longer than the name. */
	assert_int_equal(dns_parse_rdata(DNS_T_MX, p.b + rd, p.n - rd - 1, p.b, p.n, &rr), -1);
	p.b[p.n++] = 0;
	assert_int_equal(dns_parse_rdata(DNS_T_MX, p.b + rd, p.n - rd, p.b, p.n, &rr), -1);
	/* rdata outside msg. */
	assert_int_equal(dns_parse_rdata(DNS_T_MX, p.b + rd, p.n, p.b, p.n, &rr), -1);

	assert_int_equal(dns_parse_rdata(DNS_T_MX, (const uint8_t *)"\0\0\0", 3, NULL, 0, &rr), 0);
	assert_string_equal(rr.data, "");
	free(rr.data);
	assert_int_equal(dns_parse_rdata(DNS_T_MX, (const uint8_t *)"\0\0", 2, NULL, 0, &rr), -1);

	assert_int_equal(dns_parse_rdata(DNS_T_TXT, (const uint8_t *)"\x02" "ab" "\x00" "\x01" "c",
	    6, NULL, 0, &rr), 0);
	assert_int_equal(rr.len, 3);
	assert_string_equal(rr.data, "abc");
	free(rr.data);
	assert_int_equal(dns_parse_rdata(DNS_T_TXT, (const uint8_t *)"\x03" "ab", 3, NULL, 0, &rr), -1);
	assert_int_equal(dns_parse_rdata(DNS_T_TXT, (const uint8_t *)"", 0, NULL, 0, &rr), -1);
	assert_int_equal(dns_parse_rdata(DNS_T_TXT, (const uint8_t *)"\x00", 1, NULL, 0, &rr), 0);
	assert_int_equal(rr.len, 0);
	free(rr.data);

	assert_int_equal(dns_parse_rdata(DNS_T_TLSA, (const uint8_t *)"\x03\x01\x01\xab", 4, NULL, 0, &rr), 0);
	assert_int_equal(rr.len, 4);
	assert_memory_equal(rr.data, "\x03\x01\x01\xab", 4);
	free(rr.data);
	assert_int_equal(dns_parse_rdata(DNS_T_TLSA, (const uint8_t *)"\x03\x01", 2, NULL, 0, &rr), -1);

	assert_int_equal(dns_parse_rdata(DNS_T_PTR, (const uint8_t *)"\x01" "h" "\x00", 3, NULL, 0, &rr), 0);
	assert_string_equal(rr.data, "h");
	free(rr.data);
	assert_int_equal(dns_parse_rdata(DNS_T_CNAME, (const uint8_t *)"\x01" "*" "\x00", 3, NULL, 0, &rr), -1);
	assert_int_equal(dns_parse_rdata((enum dns_type)99, (const uint8_t *)"\x00", 1, NULL, 0, &rr), -1);
}

static void
test_parse_msg(void **state)
{
	struct dns_answer a;
	struct pkt p;

	/* CNAME chain (out of order), two MX, a record of another owner. */
	put_hdr(&p, 0, 5, "Alias.Test", DNS_T_MX);		/* qname at 12 */
	put_rr(&p, "mid.test", DNS_T_CNAME, NULL, 0, "real.test");
	put_rr(&p, "@12", DNS_T_CNAME, NULL, 0, "mid.test");
	put_rr(&p, "real.test", DNS_T_MX, "\x00\x14", 2, "mx2.real.test");
	put_rr(&p, "other.test", DNS_T_MX, "\x00\x01", 2, "evil.test");
	put_rr(&p, "real.test", DNS_T_MX, "\x00\x0a", 2, "mx1.@12");
	assert_int_equal(dns_parse_msg(p.b, p.n, DNS_T_MX, &a), 0);
	assert_int_equal(a.status, DNS_OK);
	assert_string_equal(a.canon, "real.test");
	assert_int_equal(a.n, 2);
	assert_int_equal(a.rrs[0].pref, 20);
	assert_string_equal(a.rrs[0].data, "mx2.real.test");
	assert_int_equal(a.rrs[0].ttl, 3600);
	assert_string_equal(a.rrs[1].data, "mx1.alias.test");
	dns_answer_free(&a);

	/* Every truncation of it is refused or safe, never more records. */
	{
		size_t cut;

		for (cut = 0; cut < p.n; cut++) {
			assert_int_equal(dns_parse_msg(p.b, cut, DNS_T_MX, &a), 0);
			assert_int_equal(a.status, DNS_PERMFAIL);
			dns_answer_free(&a);
		}
	}

	/* Only the CNAME: the name exists, no MX. */
	put_hdr(&p, 0, 1, "alias.test", DNS_T_MX);
	put_rr(&p, "alias.test", DNS_T_CNAME, NULL, 0, "real.test");
	assert_int_equal(dns_parse_msg(p.b, p.n, DNS_T_MX, &a), 0);
	assert_int_equal(a.status, DNS_NODATA);
	assert_string_equal(a.canon, "real.test");
	dns_answer_free(&a);
	/* Asking for the CNAME type returns it without following. */
	assert_int_equal(dns_parse_msg(p.b, p.n, DNS_T_CNAME, &a), 0);
	assert_int_equal(a.status, DNS_OK);
	assert_string_equal(a.rrs[0].data, "real.test");
	dns_answer_free(&a);

	/* CNAME loop. */
	put_hdr(&p, 0, 2, "a.test", DNS_T_A);
	put_rr(&p, "a.test", DNS_T_CNAME, NULL, 0, "b.test");
	put_rr(&p, "b.test", DNS_T_CNAME, NULL, 0, "a.test");
	assert_int_equal(dns_parse_msg(p.b, p.n, DNS_T_A, &a), 0);
	assert_int_equal(a.status, DNS_PERMFAIL);
	dns_answer_free(&a);

	/* RCODEs. */
	put_hdr(&p, 3, 0, "gone.test", DNS_T_A);
	assert_int_equal(dns_parse_msg(p.b, p.n, DNS_T_A, &a), 0);
	assert_int_equal(a.status, DNS_NXDOMAIN);
	dns_answer_free(&a);
	put_hdr(&p, 2, 0, "gone.test", DNS_T_A);
	assert_int_equal(dns_parse_msg(p.b, p.n, DNS_T_A, &a), 0);
	assert_int_equal(a.status, DNS_TEMPFAIL);
	dns_answer_free(&a);
	put_hdr(&p, 5, 0, "gone.test", DNS_T_A);
	assert_int_equal(dns_parse_msg(p.b, p.n, DNS_T_A, &a), 0);
	assert_int_equal(a.status, DNS_PERMFAIL);
	dns_answer_free(&a);

	/* A record with bad RDATA beside a good one; then alone. */
	put_hdr(&p, 0, 2, "h.test", DNS_T_A);
	put_rr(&p, "h.test", DNS_T_A, "\x01\x02\x03", 3, NULL);
	put_rr(&p, "h.test", DNS_T_A, "\x01\x02\x03\x04", 4, NULL);
	assert_int_equal(dns_parse_msg(p.b, p.n, DNS_T_A, &a), 0);
	assert_int_equal(a.status, DNS_OK);
	assert_int_equal(a.n, 1);
	assert_memory_equal(a.rrs[0].addr, "\x01\x02\x03\x04", 4);
	dns_answer_free(&a);
	put_hdr(&p, 0, 1, "h.test", DNS_T_A);
	put_rr(&p, "h.test", DNS_T_A, "\x01\x02\x03", 3, NULL);
	assert_int_equal(dns_parse_msg(p.b, p.n, DNS_T_A, &a), 0);
	assert_int_equal(a.status, DNS_PERMFAIL);
	dns_answer_free(&a);

	/* Not a response; two questions; answer count beyond the data. */
	put_hdr(&p, 0, 0, "h.test", DNS_T_A);
	p.b[2] &= 0x7f;
	assert_int_equal(dns_parse_msg(p.b, p.n, DNS_T_A, &a), 0);
	assert_int_equal(a.status, DNS_PERMFAIL);
	p.b[2] |= 0x80;
	p.b[5] = 2;
	assert_int_equal(dns_parse_msg(p.b, p.n, DNS_T_A, &a), 0);
	assert_int_equal(a.status, DNS_PERMFAIL);
	p.b[5] = 1;
	p.b[7] = 1;
	assert_int_equal(dns_parse_msg(p.b, p.n, DNS_T_A, &a), 0);
	assert_int_equal(a.status, DNS_PERMFAIL);
	p.b[7] = 0;
	assert_int_equal(dns_parse_msg(p.b, p.n, DNS_T_A, &a), 0);
	assert_int_equal(a.status, DNS_NODATA);
	assert_string_equal(a.canon, "h.test");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_static_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_static_cname, setup, teardown),
		cmocka_unit_test_setup_teardown(test_static_status, setup, teardown),
		cmocka_unit_test(test_static_syntax),
		cmocka_unit_test(test_parse_name),
		cmocka_unit_test(test_parse_rdata),
		cmocka_unit_test(test_parse_msg),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
