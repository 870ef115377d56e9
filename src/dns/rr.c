/* rr — DNS wire format decoding (see rr.h). RFC 1035 sections 3.1, 4.1. */
#include "dns/rr.h"

#include <stdlib.h>
#include <string.h>

#define HDR_LEN		12
#define RCODE_SERVFAIL	2
#define RCODE_NXDOMAIN	3
#define CLASS_IN	1
#define CNAME_HOPS	8

/* One resource record of a message, as located by rr_next(). */
struct wire_rr {
	char     owner[DNS_NAME_MAX + 1];
	int      owner_ok;		/* owner decoded without refused bytes */
	uint16_t type, class;
	uint32_t ttl;
	size_t   rdoff, rdlen;
};

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Host names (RFC 952/1123) plus '_' (SRV, DKIM, DMARC owners). */
static int
name_byte_ok(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int
dns_parse_name(const uint8_t *msg, size_t msglen, size_t off,
    char out[DNS_NAME_MAX + 1], size_t *next)
{
	size_t pos = off, seg = off, olen = 0, wire = 1, i;
	int jumped = 0, bad = 0;
	uint8_t c;

	for (;;) {
		if (pos >= msglen)
			return -1;
		c = msg[pos];
		if ((c & 0xc0) == 0xc0) {
			size_t to;

			if (pos + 1 >= msglen)
				return -1;
			to = (size_t)(c & 0x3f) << 8 | msg[pos + 1];
			/* Strictly before the segment being read: no loops. */
			if (to >= seg)
				return -1;
			if (!jumped)
				*next = pos + 2;
			jumped = 1;
			seg = pos = to;
			continue;
		}
		if (c & 0xc0)		/* obsolete extended label types */
			return -1;
		if (c == 0)
			break;
		/* RFC 1035 2.3.4: 255 octets at most on the wire. */
		wire += (size_t)c + 1;
		if (wire > 255 || c > msglen - pos - 1)
			return -1;
		if (olen > 0)
			out[olen++] = '.';
		for (i = 1; i <= c; i++) {
			uint8_t b = msg[pos + i];

			bad |= !name_byte_ok(b);
			out[olen++] = (char)(b >= 'A' && b <= 'Z' ? b - 'A' + 'a' : b);
		}
		pos += (size_t)c + 1;
	}
	if (!jumped)
		*next = pos + 1;
	out[olen] = '\0';
	return bad ? DNS_PARSE_BADNAME : 0;
}

static int
set_data(struct dns_rr *out, const void *p, size_t n)
{
	if ((out->data = malloc(n + 1)) == NULL)
		return -1;
	memcpy(out->data, p, n);
	out->data[n] = '\0';
	out->len = n;
	return 0;
}

/* RFC 1035 3.3.14: one or more <character-string>s, joined here. */
static int
parse_txt(const uint8_t *rdata, size_t len, struct dns_rr *out)
{
	size_t i = 0, n = 0;
	char *d;

	if (len == 0 || (d = malloc(len)) == NULL)
		return -1;
	while (i < len) {
		size_t l = rdata[i];

		if (l > len - i - 1) {
			free(d);
			return -1;
		}
		memcpy(d + n, rdata + i + 1, l);
		n += l;
		i += l + 1;
	}
	d[n] = '\0';		/* n < len: each string costs a length byte */
	out->data = d;
	out->len = n;
	return 0;
}

/* A name filling the RDATA from off exactly (MX, CNAME, PTR targets). */
static int
parse_target(const uint8_t *msg, size_t msglen, size_t off, size_t end,
    struct dns_rr *out)
{
	char name[DNS_NAME_MAX + 1];
	size_t next;

	if (dns_parse_name(msg, msglen, off, name, &next) != 0 || next != end)
		return -1;
	return set_data(out, name, strlen(name));
}

int
dns_parse_rdata(enum dns_type type, const uint8_t *rdata, size_t len,
    const uint8_t *msg, size_t msglen, struct dns_rr *out)
{
	uintptr_t r = (uintptr_t)rdata, m;
	size_t off;

	memset(out, 0, sizeof(*out));
	out->type = type;
	if (msg == NULL) {
		msg = rdata;
		msglen = len;
	}
	m = (uintptr_t)msg;
	if (r < m || len > msglen || r - m > msglen - len)
		return -1;
	off = r - m;
	switch (type) {
	case DNS_T_A:
	case DNS_T_AAAA:
		if (len != (type == DNS_T_A ? 4u : 16u))
			return -1;
		memcpy(out->addr, rdata, len);
		return 0;
	case DNS_T_MX:
		if (len < 3)
			return -1;
		out->pref = get16(rdata);
		return parse_target(msg, msglen, off + 2, off + len, out);
	case DNS_T_CNAME:
	case DNS_T_PTR:
		return parse_target(msg, msglen, off, off + len, out);
	case DNS_T_TXT:
		return parse_txt(rdata, len, out);
	case DNS_T_TLSA:
		/* RFC 6698 2.1: usage, selector, matching type, data. */
		if (len < 3)
			return -1;
		return set_data(out, rdata, len);
	}
	return -1;
}

/* Locates the record at *off and moves *off past it; -1 if malformed. */
static int
rr_next(const uint8_t *msg, size_t len, size_t *off, struct wire_rr *w)
{
	size_t p;
	int rc;

	rc = dns_parse_name(msg, len, *off, w->owner, &p);
	if (rc == -1 || p > len || len - p < 10)
		return -1;
	w->owner_ok = rc == 0;
	w->type = get16(msg + p);
	w->class = get16(msg + p + 2);
	w->ttl = get32(msg + p + 4);
	w->rdlen = get16(msg + p + 8);
	w->rdoff = p + 10;
	if (w->rdlen > len - w->rdoff)
		return -1;
	*off = w->rdoff + w->rdlen;
	return 0;
}

/*
 * Looks through the answer section (an records from off) for a CNAME
 * owned by cur and replaces cur with its target. 1 found, 0 not, -1
 * malformed.
 */
static int
follow_cname(const uint8_t *msg, size_t len, size_t off, unsigned an, char *cur)
{
	struct wire_rr w;
	struct dns_rr rr;

	for (; an > 0; an--) {
		if (rr_next(msg, len, &off, &w) == -1)
			return -1;
		if (w.type != DNS_T_CNAME || w.class != CLASS_IN || !w.owner_ok ||
		    strcmp(w.owner, cur) != 0)
			continue;
		if (dns_parse_rdata(DNS_T_CNAME, msg + w.rdoff, w.rdlen, msg, len, &rr) == -1)
			return -1;
		memcpy(cur, rr.data, rr.len + 1);
		free(rr.data);
		return 1;
	}
	return 0;
}

/* Adds the records of qtype owned by out->canon; counts refused RDATA. */
static int
collect(const uint8_t *msg, size_t len, size_t off, unsigned an,
    enum dns_type qtype, struct dns_answer *out, size_t *bad)
{
	struct wire_rr w;
	struct dns_rr rr;
	int rc;

	for (; an > 0; an--) {
		if (rr_next(msg, len, &off, &w) == -1)
			return -2;
		if (w.type != qtype || w.class != CLASS_IN || !w.owner_ok ||
		    strcmp(w.owner, out->canon) != 0)
			continue;
		if (dns_parse_rdata(qtype, msg + w.rdoff, w.rdlen, msg, len, &rr) == -1) {
			(*bad)++;
			continue;
		}
		rr.ttl = w.ttl;
		rc = dns_answer_add(out, &rr);
		free(rr.data);
		if (rc == -1)
			return -1;
	}
	return 0;
}

int
dns_parse_msg(const uint8_t *msg, size_t len, enum dns_type qtype,
    struct dns_answer *out)
{
	size_t off, bad = 0;
	unsigned an, rcode, hops;
	int rc;

	dns_answer_init(out);
	out->status = DNS_PERMFAIL;
	/* QR set, exactly one question. */
	if (len < HDR_LEN || !(msg[2] & 0x80) || get16(msg + 4) != 1)
		return 0;
	rcode = msg[3] & 0x0f;
	an = get16(msg + 6);
	if (dns_parse_name(msg, len, HDR_LEN, out->canon, &off) != 0 || len - off < 4)
		return 0;
	off += 4;
	if (rcode == RCODE_SERVFAIL)
		out->status = DNS_TEMPFAIL;
	else if (rcode == RCODE_NXDOMAIN)
		out->status = DNS_NXDOMAIN;
	if (rcode != 0)
		return 0;
	for (hops = 0; qtype != DNS_T_CNAME; hops++) {
		rc = follow_cname(msg, len, off, an, out->canon);
		if (rc == -1)
			return 0;
		if (rc == 0)
			break;
		if (hops == CNAME_HOPS)
			return 0;	/* chain too long (or a loop) */
	}
	rc = collect(msg, len, off, an, qtype, out, &bad);
	if (rc == -1)
		return -1;
	if (rc == -2) {
		dns_answer_free(out);
		out->status = DNS_PERMFAIL;
		return 0;
	}
	out->status = out->n > 0 ? DNS_OK : bad > 0 ? DNS_PERMFAIL : DNS_NODATA;
	return 0;
}
