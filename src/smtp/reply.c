/* reply — client-side SMTP reply reader and EHLO keywords (see reply.h). */
#include "smtp/reply.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* A reply is emptied and copied by its fields: of its REPLY_TEXT_MAX bytes of text a few are used. */
static void
reply_clear(struct smtp_reply *c)
{
	c->code = 0;
	c->enhanced[0] = '\0';
	c->nlines = 0;
	c->textlen = 0;
	c->text[0] = '\0';
}

void
reply_copy(struct smtp_reply *dst, const struct smtp_reply *src)
{
	dst->code = src->code;
	memcpy(dst->enhanced, src->enhanced, sizeof(dst->enhanced));
	dst->nlines = src->nlines;
	dst->textlen = src->textlen;
	memcpy(dst->text, src->text, src->textlen + 1);
}

void
reply_reader_init(struct reply_reader *r)
{
	buf_init(&r->line, REPLY_LINE_MAX);
	r->code = 0;
	r->nlines = 0;
	reply_clear(&r->cur);
	r->why[0] = '\0';
}

void
reply_reader_free(struct reply_reader *r)
{
	buf_free(&r->line);
}

static enum reply_status
fail(struct reply_reader *r, const char *why)
{
	snprintf(r->why, sizeof(r->why), "%s", why);
	return REPLY_ERROR;
}

/* "x.y.z " at the start of a 2xx/4xx/5xx text, class matching the code. */
static size_t
enhanced_len(const char *t, size_t n, int code)
{
	size_t i = 0, parts = 0, digits;

	if (n < 5 || t[0] != '0' + code / 100 || t[1] != '.')
		return 0;
	for (i = 0; parts < 3; parts++) {
		for (digits = 0; i < n && t[i] >= '0' && t[i] <= '9'; i++)
			digits++;
		if (digits == 0 || digits > 3)
			return 0;
		if (parts < 2) {
			if (i >= n || t[i] != '.')
				return 0;
			i++;
		}
	}
	return (i == n || t[i] == ' ') ? i : 0;
}

/* One complete line (without CRLF). 1: the reply is complete. */
static int
take_line(struct reply_reader *r, const char *l, size_t n, enum reply_status *st)
{
	struct smtp_reply *c = &r->cur;
	int code, last;
	size_t tlen;

	*st = REPLY_MORE;
	if (n < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' ||
	    l[2] < '0' || l[2] > '9' || (n > 3 && l[3] != ' ' && l[3] != '-')) {
		*st = fail(r, "malformed reply line");
		return 1;
	}
	code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	if (r->code && code != r->code) {
		*st = fail(r, "reply code changed inside a multi-line reply");
		return 1;
	}
	if (r->nlines == REPLY_LINES_MAX) {
		*st = fail(r, "too many reply lines");
		return 1;
	}
	if (r->code == 0) {
		reply_clear(c);
		c->code = code;
		if ((tlen = n > 4 ? enhanced_len(l + 4, n - 4, code) : 0) > 0 &&
		    tlen < sizeof(c->enhanced)) {
			memcpy(c->enhanced, l + 4, tlen);
			c->enhanced[tlen] = '\0';
		}
	}
	r->code = code;
	r->nlines++;
	last = n == 3 || l[3] == ' ';
	tlen = n > 4 ? n - 4 : 0;
	if (c->textlen && c->textlen < sizeof(c->text) - 1)
		c->text[c->textlen++] = '\n';
	if (tlen > sizeof(c->text) - 1 - c->textlen)
		tlen = sizeof(c->text) - 1 - c->textlen;
	memcpy(c->text + c->textlen, l + 4, tlen);
	c->textlen += tlen;
	c->text[c->textlen] = '\0';
	c->nlines = r->nlines;
	if (!last)
		return 0;
	*st = REPLY_DONE;
	return 1;
}

enum reply_status
reply_feed(struct reply_reader *r, const char *p, size_t n, size_t *used,
    struct smtp_reply *out)
{
	size_t i = 0;
	enum reply_status st = REPLY_MORE;

	while (i < n) {
		const char *lf = memchr(p + i, '\n', n - i);
		size_t k = lf ? (size_t)(lf - (p + i)) : n - i;

		if (buf_append(&r->line, p + i, k) == -1) {
			*used = i;
			return fail(r, "reply line too long");
		}
		i += k;
		if (lf == NULL)
			break;
		i++;	/* the LF */
		/* A bare LF is tolerated from servers (RFC 5321 4.1.1.4 is about data). */
		if (r->line.len && r->line.data[r->line.len - 1] == '\r')
			r->line.len--;
		if (take_line(r, r->line.data ? r->line.data : "", r->line.len, &st)) {
			buf_reset(&r->line);
			if (st == REPLY_DONE) {
				reply_copy(out, &r->cur);
				r->code = 0;
				r->nlines = 0;
			}
			*used = i;
			return st;
		}
		buf_reset(&r->line);
	}
	*used = i;
	return REPLY_MORE;
}

static int
word_is(const char *w, size_t n, const char *kw)
{
	return strlen(kw) == n && strncasecmp(w, kw, n) == 0;
}

void
reply_ehlo_caps(const struct smtp_reply *r, struct ehlo_caps *caps)
{
	const char *p = r->text, *end = r->text + r->textlen;

	memset(caps, 0, sizeof(*caps));
	/* The first line is the greeting; keywords follow, one a line. */
	p = memchr(p, '\n', r->textlen);
	while (p && p < end) {
		const char *line = ++p, *nl = memchr(line, '\n', (size_t)(end - line));
		const char *le = nl ? nl : end, *sp;
		size_t kl;

		sp = memchr(line, ' ', (size_t)(le - line));
		kl = (size_t)((sp ? sp : le) - line);
		if (word_is(line, kl, "PIPELINING")) caps->pipelining = 1;
		else if (word_is(line, kl, "8BITMIME")) caps->eightbitmime = 1;
		else if (word_is(line, kl, "SMTPUTF8")) caps->smtputf8 = 1;
		else if (word_is(line, kl, "STARTTLS")) caps->starttls = 1;
		else if (word_is(line, kl, "CHUNKING")) caps->chunking = 1;
		else if (word_is(line, kl, "DSN")) caps->dsn = 1;
		else if (word_is(line, kl, "ENHANCEDSTATUSCODES")) caps->enhancedstatuscodes = 1;
		else if (word_is(line, kl, "REQUIRETLS")) caps->requiretls = 1;
		else if (word_is(line, kl, "SIZE")) {
			uint64_t v = 0;
			const char *q = sp ? sp + 1 : le;

			caps->size_given = 1;
			for (; q < le && *q >= '0' && *q <= '9' && v < UINT64_MAX / 10; q++)
				v = v * 10 + (uint64_t)(*q - '0');
			caps->size = v;
		} else if (word_is(line, kl, "AUTH") && sp) {
			const char *q = sp + 1;

			while (q < le) {
				const char *e = memchr(q, ' ', (size_t)(le - q));
				size_t ml = (size_t)((e ? e : le) - q);

				if (word_is(q, ml, "PLAIN")) caps->auth_plain = 1;
				if (word_is(q, ml, "LOGIN")) caps->auth_login = 1;
				q += ml + 1;
			}
		}
		p = nl;
	}
}
