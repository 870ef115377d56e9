/* mx — mail routing per RFC 5321 section 5.1 (see mx.h). */
#include "dns/mx.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* An MX record on its way to becoming an mx_host. */
struct cand {
	const char *name;	/* points into the MX answer */
	uint16_t    pref;
	uint32_t    key;	/* random tie-breaker among equal prefs */
};

static int
cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return x->key < y->key ? -1 : x->key > y->key;
}

/* Case-insensitive, ignoring one trailing dot on either side. */
static int
name_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

static int
is_self(const char *name, const char *const *self)
{
	for (; self != NULL && *self != NULL; self++)
		if (name_eq(name, *self))
			return 1;
	return 0;
}

/* Lower case, no trailing dot, letters/digits/-/_ in non-empty labels. */
static int
norm_domain(const char *in, char out[DNS_NAME_MAX + 1])
{
	size_t n = strlen(in), i, label = 0;

	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return -1;
	for (i = 0; i < n; i++) {
		char c = in[i];

		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_') {
			label++;
		} else if (c >= 'A' && c <= 'Z') {
			label++;
			c = (char)(c - 'A' + 'a');
		} else
			return -1;
		if (label > 63)
			return -1;
		out[i] = c;
	}
	out[n] = '\0';
	return label == 0 ? -1 : 0;
}

static void set_status(struct mx_route *, enum mx_status, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_status(struct mx_route *out, enum mx_status s, const char *fmt, ...)
{
	va_list ap;

	out->status = s;
	va_start(ap, fmt);
	vsnprintf(out->why, sizeof(out->why), fmt, ap);
	va_end(ap);
	out->n = 0;
}

static int
family_wanted(const struct mx_options *opt, int af)
{
	if (opt->family == MX_V6_ONLY)
		return af == AF_INET6;
	if (opt->family == MX_V4_ONLY)
		return af == AF_INET;
	return 1;
}

/* RFC 5321 4.1.3: "[192.0.2.1]" and "[IPv6:2001:db8::1]" skip DNS. */
static void
literal(const char *domain, const struct mx_options *opt, struct mx_route *out)
{
	size_t n = strlen(domain);
	char ip[INET6_ADDRSTRLEN + 8];
	const char *p = domain + 1;
	struct mx_host *h = &out->hosts[0];
	int af = AF_INET;

	if (n < 3 || domain[n - 1] != ']' || n - 2 >= sizeof(ip)) {
		set_status(out, MX_BADDOMAIN, "bad address literal");
		return;
	}
	if (strncasecmp(p, "IPv6:", 5) == 0) {
		af = AF_INET6;
		p += 5;
	}
	memcpy(ip, p, (size_t)(domain + n - 1 - p));
	ip[domain + n - 1 - p] = '\0';
	if (inet_pton(af, ip, h->addrs[0].addr) != 1) {
		set_status(out, MX_BADDOMAIN, "bad address literal");
		return;
	}
	if (!family_wanted(opt, af)) {
		set_status(out, MX_NOHOST, "address family of the literal disabled");
		return;
	}
	snprintf(h->name, sizeof(h->name), "%s", domain);
	h->addrs[0].family = af;
	h->naddrs = 1;
	out->n = 1;
	out->status = MX_OK;
}

/* One address family's lookup into a[]; counts temporary failures. */
static int
lookup_family(const struct dns_resolver *r, const char *name, int af,
    struct mx_addr *a, size_t max, size_t *n, size_t *temp)
{
	struct dns_answer ans;
	size_t i;

	*n = 0;
	if (dns_query(r, name, af == AF_INET6 ? DNS_T_AAAA : DNS_T_A, &ans) == -1) {
		dns_answer_free(&ans);
		return -1;
	}
	if (ans.status == DNS_TEMPFAIL || ans.status == DNS_PERMFAIL)
		(*temp)++;
	for (i = 0; ans.status == DNS_OK && i < ans.n && *n < max; i++) {
		a[*n].family = af;
		memcpy(a[*n].addr, ans.rrs[i].addr, af == AF_INET6 ? 16 : 4);
		(*n)++;
	}
	dns_answer_free(&ans);
	return 0;
}

/*
 * The host's addresses, preferred family first; when both families have
 * addresses each keeps at least half the slots.
 */
static int
lookup_host(const struct dns_resolver *r, const struct mx_options *opt,
    struct mx_host *h, size_t *temp)
{
	struct mx_addr first[MX_ADDRS_MAX], second[MX_ADDRS_MAX];
	int af1 = AF_INET6, af2 = AF_INET;
	size_t n1 = 0, n2 = 0, take1;

	if (opt->family == MX_V4_FIRST || opt->family == MX_V4_ONLY) {
		af1 = AF_INET;
		af2 = AF_INET6;
	}
	if (lookup_family(r, h->name, af1, first, MX_ADDRS_MAX, &n1, temp) == -1)
		return -1;
	if (opt->family <= MX_V4_FIRST &&
	    lookup_family(r, h->name, af2, second, MX_ADDRS_MAX, &n2, temp) == -1)
		return -1;
	take1 = n1;
	if (n2 > 0 && take1 > MX_ADDRS_MAX / 2)
		take1 = MX_ADDRS_MAX - (n2 < MX_ADDRS_MAX / 2 ? n2 : MX_ADDRS_MAX / 2);
	memcpy(h->addrs, first, take1 * sizeof(first[0]));
	h->naddrs = take1;
	if (n2 > MX_ADDRS_MAX - take1)
		n2 = MX_ADDRS_MAX - take1;
	memcpy(h->addrs + take1, second, n2 * sizeof(second[0]));
	h->naddrs += n2;
	return 0;
}

/* Looks up the addresses of the candidates in order; keeps those with any. */
static int
resolve_cands(const struct dns_resolver *r, const struct mx_options *opt,
    const struct cand *c, size_t nc, struct mx_route *out)
{
	size_t i;

	for (i = 0; i < nc && i < MX_HOSTS_MAX; i++) {
		struct mx_host *h = &out->hosts[out->n];

		memset(h, 0, sizeof(*h));
		snprintf(h->name, sizeof(h->name), "%s", c[i].name);
		h->pref = c[i].pref;
		if (lookup_host(r, opt, h, &out->tempfails) == -1)
			return -1;
		if (h->naddrs > 0)
			out->n++;
	}
	return 0;
}

/*
 * RFC 5321 5.1: if we are among the hosts, only those strictly more
 * preferred than our best entry may be used. Returns the count kept.
 */
static size_t
cut_self(struct cand *c, size_t nc, const char *const *self)
{
	size_t i;

	for (i = 0; i < nc; i++)
		if (is_self(c[i].name, self))
			break;
	if (i == nc)
		return nc;
	while (i > 0 && c[i - 1].pref == c[i].pref)
		i--;
	return i;
}

static uint32_t
default_random(void *arg)
{
	(void)arg;
	return arc4random();
}

/* Candidates from an MX answer, sorted and with duplicates removed. */
static struct cand *
mx_cands(const struct dns_answer *ans, const struct mx_options *opt, size_t *ncp)
{
	struct cand *c = calloc(ans->n ? ans->n : 1, sizeof(*c));
	size_t i, j, nc = 0;

	if (c == NULL)
		return NULL;
	for (i = 0; i < ans->n; i++) {
		/* A null MX among others cannot be connected to: skip it. */
		if (ans->rrs[i].len == 0)
			continue;
		c[nc].name = ans->rrs[i].data;
		c[nc].pref = ans->rrs[i].pref;
		c[nc].key = opt->random(opt->random_arg);
		nc++;
	}
	qsort(c, nc, sizeof(*c), cand_cmp);
	for (i = 0, j = 0; i < nc; i++) {
		size_t k;

		for (k = 0; k < j && !name_eq(c[k].name, c[i].name); k++)
			;
		if (k == j)
			c[j++] = c[i];
	}
	*ncp = j;
	return c;
}

static int
from_mx(const struct dns_resolver *r, const char *dom, const struct dns_answer *ans,
    const char *const *self, const struct mx_options *opt, struct mx_route *out)
{
	struct cand *c;
	size_t nc;

	if ((c = mx_cands(ans, opt, &nc)) == NULL)
		return -1;
	if (nc == 0) {
		free(c);
		set_status(out, MX_NULLMX, "domain %s does not accept mail (null MX, RFC 7505)", dom);
		return 0;
	}
	nc = cut_self(c, nc, self);
	if (nc == 0) {
		free(c);
		set_status(out, MX_LOOP, "mail for %s loops back to myself", dom);
		return 0;
	}
	if (resolve_cands(r, opt, c, nc, out) == -1) {
		free(c);
		return -1;
	}
	free(c);
	if (out->n == 0)
		set_status(out, out->tempfails ? MX_TEMPFAIL : MX_NOHOST, out->tempfails ?
		    "temporary DNS failure resolving the MX hosts of %s" :
		    "no MX host of %s has an address", dom);
	return 0;
}

/* RFC 5321 5.1: no MX records, the domain itself is the host, pref 0. */
static int
implicit_mx(const struct dns_resolver *r, const char *dom, const char *const *self,
    const struct mx_options *opt, struct mx_route *out)
{
	struct cand c = { dom, 0, 0 };

	out->implicit = 1;
	if (is_self(dom, self)) {
		set_status(out, MX_LOOP, "mail for %s loops back to myself", dom);
		return 0;
	}
	if (resolve_cands(r, opt, &c, 1, out) == -1)
		return -1;
	if (out->n == 0)
		set_status(out, out->tempfails ? MX_TEMPFAIL : MX_NOHOST, out->tempfails ?
		    "temporary DNS failure resolving %s" :
		    "%s has no MX and no address", dom);
	return 0;
}

int
mx_resolve(const struct dns_resolver *r, const char *domain,
    const char *const *self_names, const struct mx_options *opt,
    struct mx_route *out)
{
	static const struct mx_options defaults = { MX_V6_FIRST, default_random, NULL };
	struct mx_options o = opt ? *opt : defaults;
	char dom[DNS_NAME_MAX + 1];
	struct dns_answer ans;
	int rc = 0;

	if (o.random == NULL)
		o.random = default_random;
	memset(out, 0, sizeof(*out));
	out->status = MX_OK;
	if (domain[0] == '[') {
		literal(domain, &o, out);
		return 0;
	}
	if (norm_domain(domain, dom) == -1) {
		set_status(out, MX_BADDOMAIN, "bad domain name");
		return 0;
	}
	if (dns_query(r, dom, DNS_T_MX, &ans) == -1) {
		dns_answer_free(&ans);
		return -1;
	}
	switch (ans.status) {
	case DNS_OK:
		rc = from_mx(r, dom, &ans, self_names, &o, out);
		break;
	case DNS_NODATA:
		rc = implicit_mx(r, dom, self_names, &o, out);
		break;
	case DNS_NXDOMAIN:
		set_status(out, MX_NOHOST, "domain %s not found", dom);
		break;
	case DNS_TEMPFAIL:
	case DNS_PERMFAIL:
		/* Never bounce over our own DNS trouble: retry later. */
		set_status(out, MX_TEMPFAIL, "temporary DNS failure looking up the MX of %s", dom);
		break;
	}
	dns_answer_free(&ans);
	return rc;
}

int
mx_resolve_host(const struct dns_resolver *r, const char *name,
    const struct mx_options *opt, struct mx_route *out)
{
	static const struct mx_options defaults = { MX_V6_FIRST, default_random, NULL };
	struct mx_options o = opt ? *opt : defaults;
	char dom[DNS_NAME_MAX + 1];
	struct cand c = { dom, 0, 0 };

	memset(out, 0, sizeof(*out));
	out->status = MX_OK;
	if (norm_domain(name, dom) == -1) {
		set_status(out, MX_BADDOMAIN, "bad host name");
		return 0;
	}
	if (resolve_cands(r, &o, &c, 1, out) == -1)
		return -1;
	if (out->n == 0)
		set_status(out, out->tempfails ? MX_TEMPFAIL : MX_NOHOST, out->tempfails ?
		    "temporary DNS failure resolving %s" : "host %s has no address", dom);
	return 0;
}

const char *
mx_status_str(enum mx_status s)
{
	switch (s) {
	case MX_OK: return "ok";
	case MX_TEMPFAIL: return "tempfail";
	case MX_NULLMX: return "nullmx";
	case MX_NOHOST: return "nohost";
	case MX_LOOP: return "loop";
	case MX_BADDOMAIN: return "baddomain";
	}
	return "?";
}

int
mx_status_code(enum mx_status s)
{
	switch (s) {
	case MX_OK: return 250;
	case MX_TEMPFAIL: return 451;
	case MX_NULLMX: return 556;
	case MX_NOHOST: return 550;
	case MX_LOOP: return 554;
	case MX_BADDOMAIN: return 550;
	}
	return 451;
}

const char *
mx_status_enhanced(enum mx_status s)
{
	switch (s) {
	case MX_OK: return "2.0.0";
	case MX_TEMPFAIL: return "4.4.3";
	case MX_NULLMX: return "5.1.10";
	case MX_NOHOST: return "5.4.4";
	case MX_LOOP: return "5.4.6";
	case MX_BADDOMAIN: return "5.1.2";
	}
	return "4.0.0";
}
