/* spf — check_host() of RFC 7208 (see spf.h). */
#include "mailauth/spf.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define EXPAND_MAX	2048	/* an expanded domain-spec before truncation (7.3) */
#define NAME_MAX_TEXT	253

/* What a mechanism did: matched, did not, or stopped the evaluation. */
enum { M_NOMATCH, M_MATCH, M_TEMPERROR, M_PERMERROR };

/* Outcomes of one DNS lookup. */
enum { Q_OK, Q_VOID, Q_TEMP, Q_PERM };

struct spf_ctx {
	const struct dns_resolver *dns;
	const struct spf_request  *req;
	struct spf_outcome        *out;
	struct spf_macro_ctx       mc;	/* d and p are set per expansion */
	unsigned                   lookups, voids;
	unsigned                   depth;	/* nested check_host() calls */
	char                       sender[320];	/* "postmaster@domain" when made up */
};

static const char default_exp[] = "%{o} does not designate %{c} as a permitted sender";

const char *
spf_result_str(enum spf_result r)
{
	switch (r) {
	case SPF_NONE: return "none";
	case SPF_NEUTRAL: return "neutral";
	case SPF_PASS: return "pass";
	case SPF_FAIL: return "fail";
	case SPF_SOFTFAIL: return "softfail";
	case SPF_TEMPERROR: return "temperror";
	case SPF_PERMERROR: return "permerror";
	}
	return "?";
}

int
spf_request_set_ip(struct spf_request *req, const char *text)
{
	memset(req->ip, 0, sizeof(req->ip));
	if (inet_pton(AF_INET, text, req->ip) == 1) {
		req->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, req->ip) == 1) {
		req->family = AF_INET6;
		return 0;
	}
	return -1;
}

static void
problem(struct spf_ctx *c, const char *domain, const char *what)
{
	snprintf(c->out->problem, sizeof(c->out->problem), "%s: %s", domain, what);
}

/* ---- DNS ---- */

/* One query. Void answers count against the limit when count_void. The
 * caller frees *a whatever the outcome. */
static int
lookup(struct spf_ctx *c, const char *name, enum dns_type type, struct dns_answer *a,
    int count_void)
{
	char why[128];

	dns_answer_init(a);
	if (dns_query(c->dns, name, type, a) == -1) {
		problem(c, name, "out of memory");
		return Q_TEMP;
	}
	switch (a->status) {
	case DNS_OK:
		return Q_OK;
	case DNS_NODATA:
	case DNS_NXDOMAIN:
		if (count_void && ++c->voids > SPF_VOID_LIMIT) {
			problem(c, name, "more than 2 void lookups (RFC 7208 4.6.4)");
			return Q_PERM;
		}
		return Q_VOID;
	default:
		/* 2.6.6, 4.4: server failure, timeout, other RCODE */
		snprintf(why, sizeof(why), "DNS %s lookup: %s", dns_type_str(type),
		    dns_status_str(a->status));
		problem(c, name, why);
		return Q_TEMP;
	}
}

static int
prefix_match(const uint8_t *a, const uint8_t *b, int bits)
{
	int full = bits / 8, rem = bits % 8;
	uint8_t mask;

	if (memcmp(a, b, (size_t)full) != 0)
		return 0;
	if (rem == 0)
		return 1;
	mask = (uint8_t)(0xff << (8 - rem));
	return (a[full] & mask) == (b[full] & mask);
}

/* Does name have an A (IPv4 client) or AAAA record within the prefix?
 * M_MATCH, M_NOMATCH, or an error. */
static int
addr_match(struct spf_ctx *c, const char *name, int cidr4, int cidr6, int count_void)
{
	int v6 = c->mc.family == AF_INET6, q, m = M_NOMATCH;
	struct dns_answer a;
	size_t i;

	q = lookup(c, name, v6 ? DNS_T_AAAA : DNS_T_A, &a, count_void);
	if (q == Q_OK)
		for (i = 0; i < a.n && m == M_NOMATCH; i++)
			if (a.rrs[i].type == (v6 ? DNS_T_AAAA : DNS_T_A) &&
			    prefix_match(a.rrs[i].addr, c->mc.ip, v6 ? cidr6 : cidr4))
				m = M_MATCH;
	dns_answer_free(&a);
	return q == Q_TEMP ? M_TEMPERROR : q == Q_PERM ? M_PERMERROR : m;
}

/* 1 if name is target or a subdomain of it (case-insensitive). */
static int
name_within(const char *name, const char *target)
{
	size_t n = strlen(name), t = strlen(target);

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (t > 0 && target[t - 1] == '.')
		t--;
	if (n < t || strncasecmp(name + n - t, target, t) != 0)
		return 0;
	return n == t || name[n - t - 1] == '.';
}

/*
 * The client's validated names (5.5): PTR names whose A/AAAA records hold
 * the client address. With want (the "ptr" mechanism) stops at the first
 * one within want: M_MATCH. Without (%{p}, 7.3) picks the best into p:
 * <domain> itself, else a subdomain of it, else any.
 */
static int
validated(struct spf_ctx *c, const char *want, const char *domain, char *p, size_t pcap,
    int count_void)
{
	char rev[DNS_REVERSE_MAX];
	struct dns_answer a;
	int q, rank, best = 0, m = M_NOMATCH;
	size_t i;

	dns_reverse_name(c->mc.family == AF_INET6, c->mc.ip, rev, sizeof(rev));
	q = lookup(c, rev, DNS_T_PTR, &a, count_void);
	for (i = 0; q == Q_OK && i < a.n && i < SPF_PTR_LIMIT && m == M_NOMATCH; i++) {
		const char *name = a.rrs[i].data;

		if (a.rrs[i].type != DNS_T_PTR || name == NULL || name[0] == '\0')
			continue;
		if (want != NULL)
			rank = name_within(name, want) ? 3 : 0;
		else
			rank = strcasecmp(name, domain) == 0 ? 3 : name_within(name, domain) ? 2 : 1;
		if (rank <= best)
			continue;	/* check the likely names only (5.5) */
		/* 5.5: a DNS error on the address lookup skips the name */
		if (addr_match(c, name, 32, 128, 0) != M_MATCH)
			continue;
		best = rank;
		if (p != NULL)
			snprintf(p, pcap, "%s", name);
		if (rank == 3)
			m = M_MATCH;
	}
	dns_answer_free(&a);
	/* 5.5: a DNS error on the PTR lookup is a no-match, not an error */
	return q == Q_PERM ? M_PERMERROR : m;
}

/* ---- macros ---- */

/*
 * Expands a domain-spec for <domain> into buf as a query name. Returns its
 * length; 0 if the result is no usable name (4.8: treated as no match);
 * -1 on an expansion error (reason in why).
 */
static int
expand_domain(struct spf_ctx *c, const char *domain, const char *spec, size_t len,
    char *buf, size_t cap, char *why, size_t whylen)
{
	struct spf_macro_ctx mc = c->mc;
	char p[DNS_NAME_MAX + 1];
	size_t n;
	int r;

	mc.domain = domain;
	if (spf_macro_uses(spec, len, 'p')) {
		p[0] = '\0';
		if (validated(c, NULL, domain, p, sizeof(p), 0) == M_PERMERROR)
			return -1;
		mc.validated = p[0] ? p : NULL;
	}
	if (spf_macro_expand(spec, len, SPF_MACRO_DOMAIN, &mc, buf, cap, &n, why, whylen) != 0)
		return -1;
	r = spf_domain_finish(buf, n);
	return r < 0 ? 0 : r;
}

/* 6.2: the explanation of a fail; problems fall back to the default. */
static void
explain(struct spf_ctx *c, const char *domain, const struct spf_term *exp)
{
	char name[EXPAND_MAX], why[128], p[DNS_NAME_MAX + 1];
	struct spf_macro_ctx mc = c->mc;
	const char *text = c->req->default_exp ? c->req->default_exp : default_exp;
	size_t len = strlen(text), n, i;
	struct dns_answer a;

	dns_answer_init(&a);
	mc.domain = domain;
	if (exp->spec != NULL &&
	    expand_domain(c, domain, exp->spec, exp->speclen, name, sizeof(name), why,
	    sizeof(why)) > 0 &&
	    lookup(c, name, DNS_T_TXT, &a, 0) == Q_OK && a.n == 1 &&
	    a.rrs[0].type == DNS_T_TXT && a.rrs[0].data != NULL) {
		for (i = 0; i < a.rrs[0].len && (unsigned char)a.rrs[0].data[i] < 0x80; i++)
			;
		if (i == a.rrs[0].len &&
		    spf_macro_check(a.rrs[0].data, a.rrs[0].len, SPF_MACRO_EXP, why, sizeof(why)) == 0) {
			text = a.rrs[0].data;
			len = a.rrs[0].len;
		}
	}
	if (spf_macro_uses(text, len, 'p')) {
		p[0] = '\0';
		validated(c, NULL, domain, p, sizeof(p), 0);
		mc.validated = p[0] ? p : NULL;
	}
	/* too long: keep what fitted; bad syntax (a bad default): nothing */
	if (spf_macro_expand(text, len, SPF_MACRO_EXP, &mc, c->out->explanation,
	    sizeof(c->out->explanation), &n, why, sizeof(why)) == -1)
		c->out->explanation[0] = '\0';
	dns_answer_free(&a);
}

/* ---- records ---- */

/*
 * 4.4, 4.5: the one "v=spf1" TXT record of domain into *rec (inside *a,
 * which the caller frees). Returns -1 when found, else the result.
 */
static int
fetch_record(struct spf_ctx *c, const char *domain, struct dns_answer *a,
    const struct dns_rr **rec)
{
	size_t i, found = 0;

	switch (lookup(c, domain, DNS_T_TXT, a, 0)) {
	case Q_TEMP:
		return SPF_TEMPERROR;
	case Q_VOID:
		problem(c, domain, "no SPF record");
		return SPF_NONE;
	default:
		break;
	}
	for (i = 0; i < a->n; i++)
		if (a->rrs[i].type == DNS_T_TXT && a->rrs[i].data != NULL &&
		    spf_is_spf1(a->rrs[i].data, a->rrs[i].len)) {
			*rec = &a->rrs[i];
			found++;
		}
	if (found == 1)
		return -1;
	problem(c, domain, found ? "more than one SPF record (RFC 7208 4.5)" : "no SPF record");
	return found ? SPF_PERMERROR : SPF_NONE;
}

/* 4.3: a multi-label name with labels of 1 to 63 characters. */
static int
domain_ok(const char *d)
{
	size_t n = strlen(d), i, lab = 0, labels = 0;

	if (n > 0 && d[n - 1] == '.')
		n--;
	if (n == 0 || n > NAME_MAX_TEXT || d[0] == '[')
		return 0;
	for (i = 0; i <= n; i++) {
		if (i < n && d[i] != '.') {
			lab++;
			continue;
		}
		if (lab == 0 || lab > 63)
			return 0;
		labels++;
		lab = 0;
	}
	return labels >= 2;
}

static enum spf_result check_host(struct spf_ctx *c, const char *domain, int want_exp);

/* include (5.2): pass matches, fail/softfail/neutral do not, errors and
 * none stop the evaluation. */
static int
eval_include(struct spf_ctx *c, const char *target)
{
	switch (check_host(c, target, 0)) {
	case SPF_PASS:
		return M_MATCH;
	case SPF_TEMPERROR:
		return M_TEMPERROR;
	case SPF_NONE:
		problem(c, target, "included domain has no SPF record (RFC 7208 5.2)");
		return M_PERMERROR;
	case SPF_PERMERROR:
		return M_PERMERROR;
	default:
		return M_NOMATCH;
	}
}

/* mx (5.4): at most 10 MX names, then their addresses. */
static int
eval_mx(struct spf_ctx *c, const char *target, const struct spf_term *t)
{
	struct dns_answer a;
	int q, m = M_NOMATCH;
	size_t i;

	q = lookup(c, target, DNS_T_MX, &a, 1);
	if (q == Q_OK && a.n > SPF_MX_LIMIT) {
		problem(c, target, "more than 10 MX records (RFC 7208 4.6.4)");
		q = Q_PERM;
	}
	for (i = 0; q == Q_OK && i < a.n && m == M_NOMATCH; i++)
		if (a.rrs[i].type == DNS_T_MX && a.rrs[i].data != NULL &&
		    a.rrs[i].data[0] != '\0')	/* "." is a null MX (RFC 7505) */
			m = addr_match(c, a.rrs[i].data, t->cidr4, t->cidr6, 0);
	dns_answer_free(&a);
	return q == Q_TEMP ? M_TEMPERROR : q == Q_PERM ? M_PERMERROR : m;
}

static int
eval_exists(struct spf_ctx *c, const char *target)
{
	struct dns_answer a;
	int q = lookup(c, target, DNS_T_A, &a, 1);	/* A even for IPv6 (5.7) */

	dns_answer_free(&a);
	return q == Q_OK ? M_MATCH : q == Q_VOID ? M_NOMATCH : q == Q_TEMP ? M_TEMPERROR :
	    M_PERMERROR;
}

/* The mechanisms that query DNS, after the limit check and expansion. */
static int
eval_dns_mech(struct spf_ctx *c, const char *domain, const struct spf_term *t)
{
	char target[EXPAND_MAX], why[128];
	int n;

	if (++c->lookups > SPF_LOOKUP_LIMIT) {
		problem(c, domain, "more than 10 DNS-querying terms (RFC 7208 4.6.4)");
		return M_PERMERROR;
	}
	if (t->spec == NULL)
		n = snprintf(target, sizeof(target), "%s", domain);
	else if ((n = expand_domain(c, domain, t->spec, t->speclen, target, sizeof(target),
	    why, sizeof(why))) == -1) {
		problem(c, domain, why);
		return M_PERMERROR;
	}
	if (n == 0) {
		if (t->type != SPF_T_INCLUDE)
			return M_NOMATCH;	/* 4.8: not a usable name */
		problem(c, domain, "include target is not a domain name");
		return M_PERMERROR;
	}
	switch (t->type) {
	case SPF_T_INCLUDE: return eval_include(c, target);
	case SPF_T_A: return addr_match(c, target, t->cidr4, t->cidr6, 1);
	case SPF_T_MX: return eval_mx(c, target, t);
	case SPF_T_PTR: return validated(c, target, domain, NULL, 0, 1);
	default: return eval_exists(c, target);
	}
}

static int
eval_mech(struct spf_ctx *c, const char *domain, const struct spf_term *t)
{
	switch (t->type) {
	case SPF_T_ALL:
		return M_MATCH;
	case SPF_T_IP4:
		return c->mc.family == AF_INET && prefix_match(t->ip, c->mc.ip, t->cidr4);
	case SPF_T_IP6:
		return c->mc.family == AF_INET6 && prefix_match(t->ip, c->mc.ip, t->cidr6);
	default:
		return eval_dns_mech(c, domain, t);
	}
}

static void
set_mechanism(struct spf_ctx *c, const char *s, size_t n)
{
	if (n >= sizeof(c->out->mechanism))
		n = sizeof(c->out->mechanism) - 1;
	memcpy(c->out->mechanism, s, n);
	c->out->mechanism[n] = '\0';
}

/* 4.6.2, 4.7: the first matching mechanism decides; -1 when none does. */
static int
eval_terms(struct spf_ctx *c, const char *domain, const struct dns_rr *rec)
{
	struct spf_record_iter it;
	struct spf_term t;
	char why[8];
	int m;

	spf_record_begin(&it, rec->data, rec->len);
	while (spf_record_next(&it, &t, why, sizeof(why)) == 1) {
		if (t.type >= SPF_T_REDIRECT)
			continue;
		if ((m = eval_mech(c, domain, &t)) == M_NOMATCH)
			continue;
		if (m == M_TEMPERROR)
			return SPF_TEMPERROR;
		if (m == M_PERMERROR)
			return SPF_PERMERROR;
		set_mechanism(c, t.text, t.textlen);
		return (int)t.qualifier;
	}
	return -1;
}

/* 6.1: redirect= replaces the result when nothing matched. */
static enum spf_result
eval_redirect(struct spf_ctx *c, const char *domain, const struct spf_term *red, int want_exp)
{
	char target[EXPAND_MAX], why[128];
	enum spf_result r;
	int n;

	if (++c->lookups > SPF_LOOKUP_LIMIT) {
		problem(c, domain, "more than 10 DNS-querying terms (RFC 7208 4.6.4)");
		return SPF_PERMERROR;
	}
	n = expand_domain(c, domain, red->spec, red->speclen, target, sizeof(target), why,
	    sizeof(why));
	if (n <= 0) {
		problem(c, domain, n == 0 ? "redirect target is not a domain name" : why);
		return SPF_PERMERROR;
	}
	r = check_host(c, target, want_exp);
	if (r == SPF_NONE) {
		problem(c, target, "redirect target has no SPF record (RFC 7208 6.1)");
		return SPF_PERMERROR;
	}
	return r;
}

/* The record of the domain asked about, for people (ternctl spf check, logs). */
static void
keep_record(struct spf_ctx *c, const struct dns_rr *rec)
{
	size_t i, n = rec->len < sizeof(c->out->record) ? rec->len : sizeof(c->out->record) - 1;

	for (i = 0; i < n; i++)	/* printable ASCII only: it is someone else's text */
		c->out->record[i] = rec->data[i] >= 0x20 && rec->data[i] < 0x7f ? rec->data[i] : '?';
	c->out->record[n] = '\0';
}

static enum spf_result
check_host(struct spf_ctx *c, const char *domain, int want_exp)
{
	struct spf_term red, exp;
	const struct dns_rr *rec = NULL;
	struct dns_answer a;
	char why[200];
	int r;

	if (!domain_ok(domain)) {
		problem(c, domain, "not a valid domain name (RFC 7208 4.3)");
		return SPF_NONE;
	}
	if ((r = fetch_record(c, domain, &a, &rec)) == -1) {
		if (c->depth == 0)
			keep_record(c, rec);
		c->depth++;
		if (spf_record_check(rec->data, rec->len, &red, &exp, why, sizeof(why)) == -1) {
			problem(c, domain, why);
			r = SPF_PERMERROR;
		} else if ((r = eval_terms(c, domain, rec)) == -1) {
			if (red.spec != NULL)
				r = eval_redirect(c, domain, &red, want_exp);
			else {
				r = SPF_NEUTRAL;	/* 4.7 */
				set_mechanism(c, "default", 7);
			}
		} else if (r == SPF_FAIL && want_exp)
			explain(c, domain, &exp);
		c->depth--;
	}
	dns_answer_free(&a);
	return (enum spf_result)r;
}

enum spf_result
spf_check_host(const struct dns_resolver *dns, const struct spf_request *req,
    const char *domain, const char *sender, struct spf_outcome *out)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	struct spf_ctx c;
	const char *at = strrchr(sender, '@');

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	c.dns = dns;
	c.req = req;
	c.out = out;
	snprintf(out->domain, sizeof(out->domain), "%s", domain);
	c.mc.family = req->family;
	memcpy(c.mc.ip, req->ip, sizeof(c.mc.ip));
	if (req->family == AF_INET6 && memcmp(req->ip, mapped, 12) == 0) {
		/* 5: an IPv4-mapped IPv6 address is an IPv4 client */
		c.mc.family = AF_INET;
		memmove(c.mc.ip, req->ip + 12, 4);
	}
	/* 4.3: no local-part means "postmaster" */
	c.mc.sender = sender;
	c.mc.local = sender;
	c.mc.local_len = at ? (size_t)(at - sender) : 0;
	c.mc.sender_domain = at ? at + 1 : sender;
	if (c.mc.local_len == 0) {
		snprintf(c.sender, sizeof(c.sender), "postmaster@%s", c.mc.sender_domain);
		c.mc.sender = c.sender;
		c.mc.local = "postmaster";
		c.mc.local_len = 10;
	}
	c.mc.helo = req->helo ? req->helo : "";
	c.mc.receiver = req->receiver;
	c.mc.now = req->now ? req->now : (long long)time(NULL);
	if (c.mc.family != AF_INET && c.mc.family != AF_INET6) {
		snprintf(out->problem, sizeof(out->problem), "no client address");
		out->result = SPF_PERMERROR;
	} else
		out->result = check_host(&c, domain, 1);
	if (out->result != SPF_NONE && out->result != SPF_TEMPERROR &&
	    out->result != SPF_PERMERROR)
		out->problem[0] = '\0';	/* left by a lookup that did not matter */
	out->dns_lookups = c.lookups;
	out->void_lookups = c.voids;
	return out->result;
}

enum spf_result
spf_check_mailfrom(const struct dns_resolver *dns, const struct spf_request *req,
    struct spf_outcome *out)
{
	const char *s = req->sender ? req->sender : "", *at = strrchr(s, '@');

	if (s[0] == '\0')
		return spf_check_helo(dns, req, out);	/* 2.4: postmaster@<helo> */
	return spf_check_host(dns, req, at ? at + 1 : s, s, out);
}

enum spf_result
spf_check_helo(const struct dns_resolver *dns, const struct spf_request *req,
    struct spf_outcome *out)
{
	char sender[320];
	const char *helo = req->helo ? req->helo : "";

	snprintf(sender, sizeof(sender), "postmaster@%s", helo);
	return spf_check_host(dns, req, helo, sender, out);
}
