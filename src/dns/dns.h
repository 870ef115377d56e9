/*
 * dns — the resolver interface every DNS user in tern codes against
 * (SPF, DKIM, DMARC, MX routing). A resolver is a query function and its
 * context; a query fills a struct dns_answer. Two implementations:
 * dns_static (answers from an in-memory zone list: tests, fixed overrides)
 * and dns_unbound (libunbound, src/dns/unbound.c).
 *
 * Queries are synchronous from the caller's view; tern runs them where
 * blocking is harmless (the mail-authentication and routing processes),
 * never in an smtp worker's event loop. Timeouts surface as DNS_TEMPFAIL.
 */
#ifndef TERN_DNS_H
#define TERN_DNS_H

#include <stddef.h>
#include <stdint.h>

#define DNS_NAME_MAX 255

enum dns_type {
	DNS_T_A = 1, DNS_T_CNAME = 5, DNS_T_PTR = 12, DNS_T_MX = 15,
	DNS_T_TXT = 16, DNS_T_AAAA = 28, DNS_T_TLSA = 52,
};

enum dns_status {
	DNS_OK = 0,		/* answer with >= 1 record of the type asked */
	DNS_NODATA,		/* the name exists, no record of that type */
	DNS_NXDOMAIN,		/* the name does not exist */
	DNS_TEMPFAIL,		/* SERVFAIL, timeout, network: try later */
	DNS_PERMFAIL,		/* malformed name or answer, REFUSED... */
};

struct dns_rr {
	enum dns_type type;
	uint32_t      ttl;
	uint16_t      pref;			/* MX preference */
	/* TXT: the record's strings concatenated (may hold NUL bytes: use len);
	 * MX, PTR, CNAME: the target name without trailing dot, lower case;
	 * TLSA: the raw RDATA. */
	char         *data;
	size_t        len;
	uint8_t       addr[16];			/* A: 4 bytes, AAAA: 16 */
};

struct dns_answer {
	enum dns_status status;
	int             secure;		/* DNSSEC validated */
	uint32_t        ttl;		/* seconds it may be kept (0: not at all); dns/cache.h */
	struct dns_rr  *rrs;
	size_t          n;
	char            canon[DNS_NAME_MAX + 1];	/* name after CNAMEs */
};

struct dns_resolver {
	/* Returns 0 and fills *out (status tells the outcome); -1 only on ENOMEM. */
	int  (*query)(void *ctx, const char *name, enum dns_type type, struct dns_answer *out);
	void *ctx;
};

static inline int
dns_query(const struct dns_resolver *r, const char *name, enum dns_type type,
    struct dns_answer *out)
{
	return r->query(r->ctx, name, type, out);
}

void dns_answer_init(struct dns_answer *a);
void dns_answer_free(struct dns_answer *a);
/* Appends a copy of rr (and its data) to a; -1 on ENOMEM. */
int  dns_answer_add(struct dns_answer *a, const struct dns_rr *rr);
const char *dns_status_str(enum dns_status s);
/*
 * The PTR query name of an address: "4.3.2.1.in-addr.arpa" for the 4
 * bytes of an IPv4 one (v6 == 0), the 32 nibbles under "ip6.arpa" for
 * the 16 of an IPv6 one. cap must be at least DNS_REVERSE_MAX.
 */
#define DNS_REVERSE_MAX 73
void dns_reverse_name(int v6, const uint8_t *ip, char *buf, size_t cap);
const char *dns_type_str(enum dns_type t);

/*
 * dns_static: a resolver over an in-memory zone, written as text lines
 *     NAME TYPE DATA
 * e.g. "example.com TXT \"v=spf1 -all\"", "example.com MX 10 mx.example.com",
 * "mx.example.com A 192.0.2.1", "h.example AAAA 2001:db8::1",
 * "x.example CNAME y.example", "_25._tcp.mx.example TLSA 3 1 1 0a1b..." (TLSA
 * data kept raw: usage, selector, type, the bytes of HEX),
 * "bad.example SERVFAIL", "slow.example TIMEOUT"
 * (both give DNS_TEMPFAIL for every type). TXT data is one or more
 * "quoted strings" (backslash escapes \" \\ and \DDD) joined without a
 * separator. Names are case-insensitive, a trailing dot is ignored.
 * A name with records of other types gives DNS_NODATA; an unknown name
 * DNS_NXDOMAIN. CNAMEs are followed (at most 8).
 */
struct dns_static;
struct dns_static *dns_static_new(void);
/* Adds one line; -1 with a reason in err on a syntax error. */
int  dns_static_add(struct dns_static *z, const char *line, char *err, size_t errlen);
/* Adds one record without the text syntax (any name bytes, TXT data with
 * any bytes): a copy of rr; MX/PTR/CNAME targets are lower-cased and lose
 * a trailing dot ("." or "" is a null MX). -1 on a bad name or ENOMEM. */
int  dns_static_add_rr(struct dns_static *z, const char *name, const struct dns_rr *rr);
/* Adds many lines separated by newlines ('#' comments, blanks skipped). */
int  dns_static_load(struct dns_static *z, const char *text, size_t len, char *err, size_t errlen);
/* Counts the queries asked so far (tests check lookup limits with it). */
size_t dns_static_queries(const struct dns_static *z);
void dns_static_free(struct dns_static *z);
/* The resolver view of z. */
struct dns_resolver dns_static_resolver(struct dns_static *z);

#endif
