/* dns — answer helpers and the static (in-memory zone) resolver (see dns.h). */
#include "dns/dns.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
dns_answer_init(struct dns_answer *a)
{
	memset(a, 0, sizeof(*a));
	a->status = DNS_NXDOMAIN;
}

void
dns_answer_free(struct dns_answer *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->rrs[i].data);
	free(a->rrs);
	dns_answer_init(a);
}

int
dns_answer_add(struct dns_answer *a, const struct dns_rr *rr)
{
	struct dns_rr *n = realloc(a->rrs, (a->n + 1) * sizeof(*n));

	if (n == NULL)
		return -1;
	a->rrs = n;
	n[a->n] = *rr;
	n[a->n].data = NULL;
	if (rr->data) {
		if ((n[a->n].data = malloc(rr->len + 1)) == NULL)
			return -1;
		memcpy(n[a->n].data, rr->data, rr->len);
		n[a->n].data[rr->len] = '\0';
	}
	a->n++;
	return 0;
}

const char *
dns_status_str(enum dns_status s)
{
	switch (s) {
	case DNS_OK: return "ok";
	case DNS_NODATA: return "nodata";
	case DNS_NXDOMAIN: return "nxdomain";
	case DNS_TEMPFAIL: return "tempfail";
	case DNS_PERMFAIL: return "permfail";
	}
	return "?";
}

static const struct {
	enum dns_type t;
	const char *name;
} dns_types[] = {
	{ DNS_T_A, "A" }, { DNS_T_CNAME, "CNAME" }, { DNS_T_PTR, "PTR" },
	{ DNS_T_MX, "MX" }, { DNS_T_TXT, "TXT" }, { DNS_T_AAAA, "AAAA" },
	{ DNS_T_TLSA, "TLSA" },
};

const char *
dns_type_str(enum dns_type t)
{
	size_t i;

	for (i = 0; i < sizeof(dns_types) / sizeof(dns_types[0]); i++)
		if (dns_types[i].t == t)
			return dns_types[i].name;
	return "?";
}

/* ---- the static resolver ---- */

#define ZONE_FAIL ((enum dns_type)0)	/* SERVFAIL/TIMEOUT marker */

struct zone_rec {
	char          name[DNS_NAME_MAX + 1];
	struct dns_rr rr;
};

struct dns_static {
	struct zone_rec *recs;
	size_t           n, cap;
	size_t           queries;
};

struct dns_static *
dns_static_new(void)
{
	return calloc(1, sizeof(struct dns_static));
}

void
dns_static_free(struct dns_static *z)
{
	size_t i;

	if (z == NULL)
		return;
	for (i = 0; i < z->n; i++)
		free(z->recs[i].rr.data);
	free(z->recs);
	free(z);
}

size_t
dns_static_queries(const struct dns_static *z)
{
	return z->queries;
}

static int
norm_name(const char *s, size_t n, char *out)
{
	size_t i, label = 0;

	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || n > DNS_NAME_MAX - 2)	/* RFC 1035 2.3.4: 253 as text */
		return -1;
	for (i = 0; i < n; i++) {
		out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
		/* No empty labels ("a..b", "a.."), none over 63 octets. */
		if (s[i] == '.' ? label == 0 : ++label > 63)
			return -1;
		if (s[i] == '.')
			label = 0;
	}
	out[n] = '\0';
	return label == 0 ? -1 : 0;
}

/* TXT data: one or more "quoted strings", joined. */
static int
parse_txt(const char *p, struct dns_rr *rr, char *err, size_t errlen)
{
	size_t cap = strlen(p) + 1, len = 0;
	char *out = malloc(cap);

	if (out == NULL)
		return -1;
	while (*p) {
		if (*p == ' ' || *p == '\t') {
			p++;
			continue;
		}
		if (*p++ != '"')
			goto bad;
		while (*p && *p != '"') {
			if (*p == '\\' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9' &&
			    p[3] >= '0' && p[3] <= '9') {
				int v = (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');

				if (v > 255)
					goto bad;
				out[len++] = (char)v;
				p += 4;
			} else if (*p == '\\' && p[1]) {
				out[len++] = p[1];
				p += 2;
			} else
				out[len++] = *p++;
		}
		if (*p++ != '"')
			goto bad;
	}
	rr->data = out;
	rr->len = len;
	return 0;
bad:
	free(out);
	snprintf(err, errlen, "TXT data must be \"quoted strings\"");
	return -1;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * A decimal number no greater than max after optional white space, and the
 * white space after it; advances *p. Unlike sscanf's %u it refuses
 * numbers that do not fit instead of wrapping them.
 */
static int
scan_uint(const char **p, unsigned long max, unsigned *out)
{
	const char *q = *p;
	char *end;
	unsigned long v;

	while (isspace((unsigned char)*q))
		q++;
	if (!isdigit((unsigned char)*q))
		return -1;
	errno = 0;
	v = strtoul(q, &end, 10);
	if (errno != 0 || v > max)
		return -1;
	while (isspace((unsigned char)*end))
		end++;
	*out = (unsigned)v;
	*p = end;
	return 0;
}

/* TLSA data (RFC 6698 2.2): usage selector matching-type HEX, kept raw. */
static int
parse_tlsa(const char *p, struct dns_rr *rr, char *err, size_t errlen)
{
	unsigned u, s, m;
	size_t n, i;
	uint8_t *out;

	if (scan_uint(&p, 255, &u) == -1 || scan_uint(&p, 255, &s) == -1 ||
	    scan_uint(&p, 255, &m) == -1)
		goto bad;
	n = strcspn(p, " \t\r");
	if (n == 0 || n % 2 != 0 || (out = malloc(3 + n / 2 + 1)) == NULL)
		goto bad;
	out[0] = (uint8_t)u;
	out[1] = (uint8_t)s;
	out[2] = (uint8_t)m;
	for (i = 0; i < n; i += 2) {
		int hi = hexval(p[i]), lo = hexval(p[i + 1]);

		if (hi < 0 || lo < 0) {
			free(out);
			goto bad;
		}
		out[3 + i / 2] = (uint8_t)(hi << 4 | lo);
	}
	out[3 + n / 2] = '\0';
	rr->data = (char *)out;
	rr->len = 3 + n / 2;
	return 0;
bad:
	snprintf(err, errlen, "TLSA data must be: usage selector type HEX");
	return -1;
}

/* Takes rec (and its data) into the zone; frees the data on failure. */
static int
zone_append(struct dns_static *z, struct zone_rec *rec)
{
	if (z->n == z->cap) {
		size_t nc = z->cap ? z->cap * 2 : 32;
		struct zone_rec *nr = realloc(z->recs, nc * sizeof(*nr));

		if (nr == NULL) {
			free(rec->rr.data);
			return -1;
		}
		z->recs = nr;
		z->cap = nc;
	}
	z->recs[z->n++] = *rec;
	return 0;
}

int
dns_static_add(struct dns_static *z, const char *line, char *err, size_t errlen)
{
	char name[DNS_NAME_MAX + 2], type[16], tgt[DNS_NAME_MAX + 2];
	struct zone_rec rec;
	const char *rest;
	int off = 0;
	size_t i;

	memset(&rec, 0, sizeof(rec));
	if (sscanf(line, " %256s %15s %n", name, type, &off) != 2) {
		snprintf(err, errlen, "expected NAME TYPE DATA");
		return -1;
	}
	rest = line + off;
	if (norm_name(name, strlen(name), rec.name) == -1) {
		snprintf(err, errlen, "bad name \"%s\"", name);
		return -1;
	}
	if (strcasecmp(type, "SERVFAIL") == 0 || strcasecmp(type, "TIMEOUT") == 0) {
		rec.rr.type = ZONE_FAIL;
	} else {
		for (i = 0; i < sizeof(dns_types) / sizeof(dns_types[0]); i++)
			if (strcasecmp(type, dns_types[i].name) == 0)
				rec.rr.type = dns_types[i].t;
		switch (rec.rr.type) {
		case DNS_T_A:
		case DNS_T_AAAA:
			if (sscanf(rest, "%256s", tgt) != 1 ||
			    inet_pton(rec.rr.type == DNS_T_A ? AF_INET : AF_INET6, tgt, rec.rr.addr) != 1) {
				snprintf(err, errlen, "bad %s address", type);
				return -1;
			}
			break;
		case DNS_T_MX: {
			unsigned pref;

			if (scan_uint(&rest, 65535, &pref) == -1 ||
			    sscanf(rest, "%256s", tgt) != 1)
				goto badtarget;
			rec.rr.pref = (uint16_t)pref;
			goto target;
		}
		case DNS_T_CNAME:
		case DNS_T_PTR:
			if (sscanf(rest, "%256s", tgt) != 1)
				goto badtarget;
target:
			/* "." (null MX, RFC 7505) stays as an empty name. */
			if (strcmp(tgt, ".") == 0)
				tgt[0] = '\0';
			else if (norm_name(tgt, strlen(tgt), tgt) == -1)
				goto badtarget;
			if ((rec.rr.data = strdup(tgt)) == NULL)
				return -1;
			rec.rr.len = strlen(tgt);
			break;
		case DNS_T_TXT:
			if (parse_txt(rest, &rec.rr, err, errlen) == -1)
				return -1;
			break;
		case DNS_T_TLSA:
			if (parse_tlsa(rest, &rec.rr, err, errlen) == -1)
				return -1;
			break;
		default:
			snprintf(err, errlen, "unknown type \"%s\"", type);
			return -1;
		}
	}
	rec.rr.ttl = 300;
	return zone_append(z, &rec);
badtarget:
	snprintf(err, errlen, "bad %s target", type);
	return -1;
}

int
dns_static_add_rr(struct dns_static *z, const char *name, const struct dns_rr *rr)
{
	struct zone_rec rec;
	char tgt[DNS_NAME_MAX + 1];

	memset(&rec, 0, sizeof(rec));
	if (norm_name(name, strlen(name), rec.name) == -1)
		return -1;
	rec.rr = *rr;
	rec.rr.data = NULL;
	rec.rr.len = 0;
	if ((rr->type == DNS_T_MX || rr->type == DNS_T_PTR || rr->type == DNS_T_CNAME) &&
	    rr->data != NULL && rr->len > 0 && !(rr->len == 1 && rr->data[0] == '.')) {
		/* names are stored as dns.h promises: lower case, no trailing dot */
		if (memchr(rr->data, '\0', rr->len) != NULL ||
		    norm_name(rr->data, rr->len, tgt) == -1)
			return -1;
		if ((rec.rr.data = strdup(tgt)) == NULL)
			return -1;
		rec.rr.len = strlen(tgt);
	} else if (rr->type == DNS_T_TXT || rr->type == DNS_T_TLSA || rr->type == DNS_T_MX ||
	    rr->type == DNS_T_PTR || rr->type == DNS_T_CNAME) {
		int raw = rr->type == DNS_T_TXT || rr->type == DNS_T_TLSA;

		/* a null MX ("." or "") stays an empty name */
		if ((rec.rr.data = malloc(raw ? rr->len + 1 : 1)) == NULL)
			return -1;
		rec.rr.len = raw ? rr->len : 0;
		if (rec.rr.len > 0)
			memcpy(rec.rr.data, rr->data, rec.rr.len);
		rec.rr.data[rec.rr.len] = '\0';
	}
	if (rec.rr.ttl == 0)
		rec.rr.ttl = 300;
	return zone_append(z, &rec);
}

int
dns_static_load(struct dns_static *z, const char *text, size_t len, char *err, size_t errlen)
{
	size_t i = 0, lineno = 0;

	while (i < len) {
		size_t j = i, k;
		char line[4096], why[256];

		while (j < len && text[j] != '\n')
			j++;
		lineno++;
		k = j - i;
		if (k >= sizeof(line)) {
			snprintf(err, errlen, "line %zu: too long", lineno);
			return -1;
		}
		memcpy(line, text + i, k);
		line[k] = '\0';
		i = j + 1;
		for (k = 0; line[k] == ' ' || line[k] == '\t'; k++)
			;
		if (line[k] == '\0' || line[k] == '#')
			continue;
		if (dns_static_add(z, line, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "line %zu: %s", lineno, why);
			return -1;
		}
	}
	return 0;
}

static int
static_query(void *ctx, const char *qname, enum dns_type type, struct dns_answer *out)
{
	struct dns_static *z = ctx;
	char name[DNS_NAME_MAX + 1];
	int hops, seen;
	size_t i;

	dns_answer_init(out);
	z->queries++;
	if (norm_name(qname, strlen(qname), name) == -1) {
		out->status = DNS_PERMFAIL;
		return 0;
	}
	for (hops = 0; hops <= 8; hops++) {
		const char *cname = NULL;

		seen = 0;
		for (i = 0; i < z->n; i++) {
			const struct zone_rec *r = &z->recs[i];

			if (strcmp(r->name, name) != 0)
				continue;
			seen = 1;
			if (r->rr.type == ZONE_FAIL) {
				dns_answer_free(out);
				out->status = DNS_TEMPFAIL;
				return 0;
			}
			if (r->rr.type == type) {
				if (dns_answer_add(out, &r->rr) == -1)
					return -1;
			} else if (r->rr.type == DNS_T_CNAME)	/* and type is not */
				cname = r->rr.data;
		}
		snprintf(out->canon, sizeof(out->canon), "%s", name);
		if (out->n > 0) {
			out->status = DNS_OK;
			return 0;
		}
		if (cname == NULL) {
			out->status = seen ? DNS_NODATA : DNS_NXDOMAIN;
			return 0;
		}
		snprintf(name, sizeof(name), "%s", cname);
	}
	out->status = DNS_PERMFAIL;	/* CNAME chain too long */
	return 0;
}

struct dns_resolver
dns_static_resolver(struct dns_static *z)
{
	struct dns_resolver r = { static_query, z };

	return r;
}

void
dns_reverse_name(int v6, const uint8_t *ip, char *buf, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	int i;

	if (!v6) {
		snprintf(buf, cap, "%u.%u.%u.%u.in-addr.arpa", ip[3], ip[2], ip[1], ip[0]);
		return;
	}
	for (i = 15; i >= 0 && n + 4 < cap; i--) {
		buf[n++] = hex[ip[i] & 15];
		buf[n++] = '.';
		buf[n++] = hex[ip[i] >> 4];
		buf[n++] = '.';
	}
	snprintf(buf + n, cap - n, "ip6.arpa");
}
