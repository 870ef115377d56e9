/* dkim_canon — message splitting, canonicalization, base64 for DKIM (see dkim_canon.h). */
#include "mailauth/dkim_canon.h"

#include "common/base64.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static char
lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* ---- header canonicalization (RFC 6376 3.4.1, 3.4.2) ---- */

static int
relaxed_value(const char *v, size_t n, struct buf *out)
{
	size_t i;
	int sp = 0, started = 0;

	for (i = 0; i < n; i++) {
		if (v[i] == '\r' && i + 1 < n && v[i + 1] == '\n') {
			i++;	/* unfold: the CRLF goes, the WSP after it stays */
			continue;
		}
		if (is_wsp(v[i])) {
			sp = 1;
			continue;
		}
		/* WSP runs become one SP; leading and trailing WSP go. */
		if (sp && started && buf_appendc(out, ' ') == -1)
			return -1;
		sp = 0;
		started = 1;
		if (buf_appendc(out, v[i]) == -1)
			return -1;
	}
	return 0;
}

int
dkim_canon_header(enum dkim_canon c, const char *f, size_t len, int crlf, struct buf *out)
{
	const char *colon;
	size_t i, nlen;

	if (c == DKIM_CANON_SIMPLE) {
		if (buf_append(out, f, len) == -1)
			return -1;
	} else {
		colon = memchr(f, ':', len);
		nlen = colon ? (size_t)(colon - f) : len;
		while (nlen > 0 && is_wsp(f[nlen - 1]))
			nlen--;
		for (i = 0; i < nlen; i++)
			if (buf_appendc(out, lower(f[i])) == -1)
				return -1;
		if (colon != NULL) {
			if (buf_appendc(out, ':') == -1)
				return -1;
			if (relaxed_value(colon + 1, len - (size_t)(colon + 1 - f), out) == -1)
				return -1;
		}
	}
	return crlf ? buf_append(out, "\r\n", 2) : 0;
}

/* ---- body canonicalization (RFC 6376 3.4.3, 3.4.4) ---- */

struct stage {
	struct dkim_body *b;
	size_t            n;
	char              d[4096];
};

static void
stage_flush(struct stage *s)
{
	struct dkim_body *b = s->b;
	uint64_t room = b->limit > b->total ? b->limit - b->total : 0;
	size_t n = s->n;

	if ((uint64_t)n > room)
		n = (size_t)room;
	if (n > 0)
		b->sink(b->ctx, s->d, n);
	b->total += s->n;
	s->n = 0;
}

static void
stage_put(struct stage *s, const char *p, size_t n)
{
	while (n > 0) {
		size_t k = sizeof(s->d) - s->n;

		if (k > n)
			k = n;
		memcpy(s->d + s->n, p, k);
		s->n += k;
		p += k;
		n -= k;
		if (s->n == sizeof(s->d))
			stage_flush(s);
	}
}

static void
body_content(struct stage *s, char c)
{
	struct dkim_body *b = s->b;

	/* Empty lines held back were not trailing after all. */
	for (; b->blank > 0; b->blank--)
		stage_put(s, "\r\n", 2);
	if (b->wsp)
		stage_put(s, " ", 1);	/* relaxed: a WSP run is one SP */
	b->wsp = 0;
	stage_put(s, &c, 1);
	b->linelen = 1;
}

static void
body_eol(struct stage *s)
{
	struct dkim_body *b = s->b;

	b->wsp = 0;	/* relaxed: WSP at the end of a line goes */
	if (b->linelen)
		stage_put(s, "\r\n", 2);
	else
		b->blank++;
	b->linelen = 0;
}

void
dkim_body_init(struct dkim_body *b, enum dkim_canon c, uint64_t limit,
    void (*sink)(void *, const void *, size_t), void *ctx)
{
	memset(b, 0, sizeof(*b));
	b->c = c;
	b->limit = limit;
	b->sink = sink;
	b->ctx = ctx;
}

void
dkim_body_feed(struct dkim_body *b, const char *p, size_t n)
{
	struct stage s;
	size_t i;

	s.b = b;
	s.n = 0;
	for (i = 0; i < n; i++) {
		char c = p[i];

		if (b->cr) {
			b->cr = 0;
			if (c == '\n') {
				body_eol(&s);
				continue;
			}
			body_content(&s, '\r');	/* a bare CR is content */
		}
		if (c == '\r')
			b->cr = 1;
		else if (b->c == DKIM_CANON_RELAXED && is_wsp(c))
			b->wsp = 1;
		else
			body_content(&s, c);
	}
	stage_flush(&s);
}

void
dkim_body_finish(struct dkim_body *b)
{
	struct stage s;

	s.b = b;
	s.n = 0;
	if (b->cr) {
		b->cr = 0;
		body_content(&s, '\r');
	}
	/* A last line without CRLF gets one; trailing empty lines are dropped. */
	b->wsp = 0;
	if (b->linelen)
		stage_put(&s, "\r\n", 2);
	b->linelen = 0;
	b->blank = 0;
	/* Simple: an empty body is one CRLF; relaxed: it stays empty. */
	if (b->c == DKIM_CANON_SIMPLE && b->total == 0 && s.n == 0)
		stage_put(&s, "\r\n", 2);
	stage_flush(&s);
}

/* ---- the message splitter ---- */

void
dkim_msg_init(struct dkim_msg *m)
{
	memset(m, 0, sizeof(*m));
	buf_init(&m->hdr, DKIM_HEADER_MAX + 2);
	m->st = 2;	/* as if after a CRLF: a message may open with the separator */
}

void
dkim_msg_free(struct dkim_msg *m)
{
	buf_free(&m->hdr);
	free(m->f);
	m->f = NULL;
	m->nf = 0;
}

static int
add_field(struct dkim_msg *m, size_t off, size_t len, size_t *cap)
{
	struct dkim_field *nf;
	const char *colon;
	size_t nl;

	if (m->nf == DKIM_FIELDS_MAX)
		return -1;
	if (m->nf == *cap) {
		*cap = *cap ? *cap * 2 : 32;
		if ((nf = realloc(m->f, *cap * sizeof(*nf))) == NULL)
			return -1;
		m->f = nf;
	}
	colon = memchr(m->hdr.data + off, ':', len);
	nl = colon ? (size_t)(colon - (m->hdr.data + off)) : 0;
	while (nl > 0 && is_wsp(m->hdr.data[off + nl - 1]))
		nl--;
	m->f[m->nf].off = off;
	m->f[m->nf].len = len;
	m->f[m->nf].namelen = nl;
	m->nf++;
	return 0;
}

/* Splits hdr into fields: a line opening with WSP continues the field above. */
static int
index_fields(struct dkim_msg *m)
{
	const char *d = m->hdr.data;
	size_t i = 0, e, len = m->hdr.len, cap = 0;

	while (i < len) {
		for (e = i; e < len && !(d[e] == '\r' && e + 1 < len && d[e + 1] == '\n'); e++)
			;
		if (is_wsp(d[i]) && m->nf > 0)
			m->f[m->nf - 1].len = e - m->f[m->nf - 1].off;
		else if (add_field(m, i, e - i, &cap) == -1)
			return -1;
		i = e < len ? e + 2 : len;
	}
	m->done = 1;
	return 0;
}

size_t
dkim_msg_feed(struct dkim_msg *m, const char *p, size_t n)
{
	static const char sep[] = "\r\n\r\n";
	size_t i, take = n;
	int found = 0;

	if (m->overflow)
		return (size_t)-1;
	if (m->done)
		return 0;
	for (i = 0; i < n && !found; i++) {
		if (p[i] == sep[m->st])
			m->st++;
		else
			m->st = p[i] == '\r' ? 1 : 0;
		if (m->st == 4) {
			found = 1;
			take = i + 1;
		}
	}
	if (m->hdr.len + take > DKIM_HEADER_MAX + 2 || buf_append(&m->hdr, p, take) == -1) {
		m->overflow = 1;
		return (size_t)-1;
	}
	if (found) {
		m->hdr.len -= 2;	/* the empty line is the separator, not header */
		m->hdr.data[m->hdr.len] = '\0';
		if (index_fields(m) == -1) {
			m->overflow = 1;
			return (size_t)-1;
		}
	}
	return take;
}

int
dkim_msg_end(struct dkim_msg *m)
{
	if (m->overflow)
		return -1;
	if (m->done)
		return 0;
	if (index_fields(m) == -1) {
		m->overflow = 1;
		return -1;
	}
	return 0;
}

int
dkim_msg_is(const struct dkim_msg *m, size_t i, const char *name, size_t n)
{
	return m->f[i].namelen == n && n > 0 &&
	    strncasecmp(m->hdr.data + m->f[i].off, name, n) == 0;
}

long
dkim_msg_select(const struct dkim_msg *m, const char *name, size_t n, unsigned char *used)
{
	size_t i;

	for (i = m->nf; i > 0; i--) {
		if (!used[i - 1] && dkim_msg_is(m, i - 1, name, n)) {
			used[i - 1] = 1;
			return (long)(i - 1);
		}
	}
	return -1;
}

/* ---- c= ---- */

static int
canon_word(const char *p, size_t n, enum dkim_canon *c)
{
	if (n == 6 && memcmp(p, "simple", 6) == 0)
		*c = DKIM_CANON_SIMPLE;
	else if (n == 7 && memcmp(p, "relaxed", 7) == 0)
		*c = DKIM_CANON_RELAXED;
	else
		return -1;
	return 0;
}

int
dkim_canon_parse(const char *v, size_t n, enum dkim_canon *hc, enum dkim_canon *bc)
{
	const char *slash = memchr(v, '/', n);
	size_t hn = slash ? (size_t)(slash - v) : n;
	enum dkim_canon h, b = DKIM_CANON_SIMPLE;

	if (canon_word(v, hn, &h) == -1 || (slash && canon_word(slash + 1, n - hn - 1, &b) == -1))
		return -1;
	*hc = h;
	*bc = b;
	return 0;
}

/* ---- base64 ---- */

int
dkim_b64_decode(const char *s, size_t len, unsigned char *out, size_t max, size_t *outlen)
{
	return base64_decode(s, len, BASE64_SKIP_FWS, out, max, outlen);
}

int
dkim_b64_encode(const unsigned char *p, size_t n, struct buf *out)
{
	char q[4];
	size_t i, k;

	/* In groups of 3 bytes, so no large temporary buffer is needed. */
	for (i = 0; i < n; i += 3) {
		k = n - i < 3 ? n - i : 3;
		(void)base64_encode(p + i, k, q);
		if (buf_append(out, q, 4) == -1)
			return -1;
	}
	return 0;
}
