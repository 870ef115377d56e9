/*
 * dsn — delivery status notifications (see dsn.h; RFC 3464, RFC 6522,
 * RFC 3834, RFC 6533).
 *
 * The parts are built first (text, report, returned content), then a
 * boundary is chosen that occurs in none of them, then the whole is
 * written. Every generated line is kept under 998 octets (RFC 5322
 * 2.1.1): free text is folded at spaces, addresses are checked.
 */
#include "queue/dsn.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define LINE_MAX_OCTETS	998	/* RFC 5322 2.1.1, without the CRLF */
#define WRAP_WIDTH	76
#define WORD_MAX	800	/* a longer word is cut to keep lines short */
#define ADDR_MAX	256	/* RFC 5321 4.5.3.1.3 */
#define READ_CHUNK	65536
#define BOUNDARY_TRIES	8

enum dsn_kind_out { KIND_BOUNCE, KIND_DELAY, KIND_SUCCESS };

/* What the returned part holds. */
enum ret_what { RET_NONE, RET_HEADERS, RET_FULL };

struct returned {
	enum ret_what what;
	const char *data;
	size_t len;
	int eight_bit;		/* octets above 127 in data */
	int hdr_eight_bit;	/* ... in its header section */
	int want_full_but;	/* RET=FULL asked, headers given */
};

static int
set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* ---- checks on the input ---- */

/* A host name, address literal or queue id: no room for anything else. */
static int
host_ok(const char *s)
{
	size_t i, n;

	if (s == NULL || (n = strnlen(s, 256)) == 0 || n > 255)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr(".-_[]:", c) != NULL))
			return 0;
	}
	return 1;
}

/* RFC 3463 status: class "." subject "." detail. */
static int
status_ok(const char *s)
{
	size_t i, part, digits;

	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5'))
		return 0;
	for (i = 1, part = 0; part < 2; part++) {
		if (s[i++] != '.')
			return 0;
		for (digits = 0; s[i] >= '0' && s[i] <= '9'; i++)
			digits++;
		if (digits == 0 || digits > 3)
			return 0;
	}
	return s[i] == '\0';
}

/* Decodes one UTF-8 sequence (RFC 3629): its length, or -1. */
static int
utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len, i;
	uint32_t v;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, v = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, v = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, v = s[0] & 0x07;
	else
		return -1;
	if (n < len)
		return -1;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		v = v << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && v < 0x800) || (len == 4 && v < 0x10000) ||
	    v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return -1;
	*cp = v;
	return (int)len;
}

/* 1 if s is ASCII, 0 if it is other valid UTF-8, -1 if neither or it
 * holds a control character (which could break a line). */
static int
addr_class(const char *s, size_t n)
{
	size_t i = 0;
	uint32_t cp;
	int k, ascii = 1;

	while (i < n) {
		if ((k = utf8_next((const unsigned char *)s + i, n - i,
		    &cp)) < 0 || cp < 0x20 || cp == 0x7f)
			return -1;
		if (cp >= 0x80)
			ascii = 0;
		i += (size_t)k;
	}
	return ascii;
}

static int
addr_ok(const char *s)
{
	size_t n;

	return s != NULL && (n = strnlen(s, ADDR_MAX + 1)) > 0 &&
	    n <= ADDR_MAX && addr_class(s, n) >= 0;
}

static int
is_action(const char *a)
{
	static const char *const names[] = {
		"failed", "delayed", "delivered", "relayed", "expanded",
	};
	size_t i;

	for (i = 0; a != NULL && i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(a, names[i]) == 0)
			return 1;
	return 0;
}

static int
check_input(const struct dsn_input *in, char *err, size_t errlen)
{
	const struct dsn_rcpt *r;
	size_t i;

	if (!host_ok(in->reporting_mta) || !host_ok(in->message_id_domain))
		return set_err(err, errlen, "bad reporting host name");
	if (!host_ok(in->queue_id))
		return set_err(err, errlen, "bad queue id");
	if (!addr_ok(in->sender))
		return set_err(err, errlen, "bad or null sender: no DSN");
	if (!addr_ok(in->postmaster) || addr_class(in->postmaster,
	    strlen(in->postmaster)) != 1 || strpbrk(in->postmaster, " <>"))
		return set_err(err, errlen, "bad postmaster address");
	if (in->envid != NULL && (strnlen(in->envid, 101) > 100 ||
	    addr_class(in->envid, strlen(in->envid)) != 1))
		return set_err(err, errlen, "bad envid");
	if (in->nrcpts == 0 || in->rcpts == NULL)
		return set_err(err, errlen, "no recipients");
	for (i = 0; i < in->nrcpts; i++) {
		r = &in->rcpts[i];
		if (!addr_ok(r->final_rcpt) || !is_action(r->action) ||
		    !status_ok(r->status) ||
		    (r->remote_mta != NULL && !host_ok(r->remote_mta)))
			return set_err(err, errlen, "bad recipient %zu", i);
	}
	return 0;
}

/* ---- small writers ---- */

/* RFC 5322 3.3 date-time in UTC, independent of the locale. */
static int
put_date(struct buf *b, time_t t)
{
	static const char *const days[] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat",
	};
	static const char *const months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
	};
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 ||
	    tm.tm_mon < 0 || tm.tm_mon > 11)
		return -1;
	return buf_printf(b, "%s, %d %s %04d %02d:%02d:%02d +0000",
	    days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int
put_date_field(struct buf *b, const char *name, time_t t)
{
	if (buf_printf(b, "%s: ", name) == -1 || put_date(b, t) == -1)
		return -1;
	return buf_appends(b, "\r\n");
}

/*
 * Makes free text safe for one header or text line: controls become
 * spaces, runs of spaces one, ends trimmed; octets above 127 become '?'
 * unless utf8 (the report part is US-ASCII, RFC 3464 2.1.2).
 */
static int
clean_text(const char *s, int utf8, struct buf *out)
{
	size_t i;
	unsigned char c;
	int space = 0;

	buf_reset(out);
	for (i = 0; s != NULL && s[i] != '\0'; i++) {
		c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7f) {
			space = 1;
			continue;
		}
		if (space && out->len > 0 && buf_appendc(out, ' ') == -1)
			return -1;
		space = 0;
		if (buf_appendc(out, c >= 0x80 && !utf8 ? '?' : (char)c) == -1)
			return -1;
	}
	return 0;
}

/*
 * Appends clean text (single spaces) as words, breaking lines where a
 * space allows before WRAP_WIDTH; a continuation starts with indent. For
 * a header field indent is " ": the break is then folding (RFC 5322
 * 2.2.3), and unfolding gives the text back. A word over WORD_MAX octets
 * is cut, which only a peer's odd reply text can cause.
 */
static int
put_wrapped(struct buf *b, const char *s, size_t n, size_t col,
    const char *indent)
{
	size_t i = 0, w;
	int first = 1;

	while (i < n) {
		if (s[i] == ' ') {
			i++;
			continue;
		}
		for (w = 0; i + w < n && s[i + w] != ' ' && w < WORD_MAX; w++)
			;
		if (!first && col + 1 + w > WRAP_WIDTH) {
			if (buf_appends(b, "\r\n") == -1 ||
			    buf_appends(b, indent) == -1)
				return -1;
			col = strlen(indent);
		} else if (!first) {
			if (buf_appendc(b, ' ') == -1)
				return -1;
			col++;
		}
		if (buf_append(b, s + i, w) == -1)
			return -1;
		col += w;
		i += w;
		first = 0;
	}
	return 0;
}

/* A paragraph of generated prose, wrapped, then an empty line. */
static int
put_para(struct buf *b, const char *text)
{
	if (put_wrapped(b, text, strlen(text), 0, "") == -1)
		return -1;
	return buf_appends(b, "\r\n\r\n");
}

/*
 * RFC 6533 3: utf-8-addr-xtext. ASCII other than '+', '=', '\\' and
 * space as is, anything else as \x{HEX} of its code point.
 */
static int
put_utf8_xtext(struct buf *b, const char *s, size_t n)
{
	size_t i = 0;
	uint32_t cp;
	int k;

	while (i < n) {
		if ((k = utf8_next((const unsigned char *)s + i, n - i,
		    &cp)) < 0)
			return -1;
		if (cp > 0x20 && cp < 0x7f && cp != '+' && cp != '=' &&
		    cp != '\\') {
			if (buf_appendc(b, (char)cp) == -1)
				return -1;
		} else if (buf_printf(b, "\\x{%" PRIX32 "}", cp) == -1)
			return -1;
		i += (size_t)k;
	}
	return 0;
}

/*
 * "Name: type; address" (RFC 3464 2.3.1, 2.3.2): rfc822 for ASCII, utf-8
 * with the embedded form otherwise. -1 if the line would be too long.
 */
static int
put_addr_field(struct buf *b, const char *name, const char *type,
    const char *addr, size_t n)
{
	size_t start = b->len;
	int cls = addr_class(addr, n);

	if (cls < 0)
		return -1;
	if (cls == 1) {
		if (buf_printf(b, "%s: %s; %.*s\r\n", name, type, (int)n,
		    addr) == -1)
			return -1;
	} else if (buf_printf(b, "%s: utf-8; ", name) == -1 ||
	    put_utf8_xtext(b, addr, n) == -1 || buf_appends(b, "\r\n") == -1)
		goto undo;
	if (b->len - start - 2 <= LINE_MAX_OCTETS)
		return 0;
undo:
	b->len = start;
	if (b->data != NULL)
		b->data[start] = '\0';
	return -1;
}

/* RFC 3464 2.3.1: from the ORCPT "addr-type;address"; optional, so one
 * that cannot be shown is left out. */
static void
put_orig_rcpt(struct buf *s, const char *orcpt)
{
	const char *semi;
	char type[32];
	size_t i, tlen;

	if (orcpt == NULL || (semi = strchr(orcpt, ';')) == NULL ||
	    (tlen = (size_t)(semi - orcpt)) == 0 || tlen >= sizeof(type))
		return;
	for (i = 0; i < tlen; i++)
		if ((unsigned char)orcpt[i] <= 0x20 ||
		    (unsigned char)orcpt[i] >= 0x7f || orcpt[i] == ';')
			return;
	memcpy(type, orcpt, tlen);
	type[tlen] = '\0';
	if (semi[1] != '\0')
		(void)put_addr_field(s, "Original-Recipient", type, semi + 1,
		    strnlen(semi + 1, LINE_MAX_OCTETS + 1));
}

/* ---- the parts ---- */

static enum dsn_kind_out
kind_of(const struct dsn_input *in)
{
	size_t i;
	int delayed = 0;

	for (i = 0; i < in->nrcpts; i++) {
		if (strcmp(in->rcpts[i].action, "failed") == 0)
			return KIND_BOUNCE;
		if (strcmp(in->rcpts[i].action, "delayed") == 0)
			delayed = 1;
	}
	return delayed ? KIND_DELAY : KIND_SUCCESS;
}

/* RFC 3464 2.2 and 2.3: the machine-readable report. */
static int
put_report_rcpt(struct buf *s, const struct dsn_rcpt *r, struct buf *tmp)
{
	const char *type = r->remote_mta ? "smtp" : "X-Tern";

	if (put_addr_field(s, "Final-Recipient", "rfc822", r->final_rcpt,
	    strlen(r->final_rcpt)) == -1)
		return -1;
	put_orig_rcpt(s, r->orig_rcpt);
	if (buf_printf(s, "Action: %s\r\nStatus: %s\r\n", r->action,
	    r->status) == -1)
		return -1;
	if (r->remote_mta != NULL &&
	    buf_printf(s, "Remote-MTA: dns; %s\r\n", r->remote_mta) == -1)
		return -1;
	/* RFC 3464 2.3.6: "smtp" for an SMTP reply, else our own type. */
	if (clean_text(r->diagnostic, 0, tmp) == -1)
		return -1;
	if (tmp->len > 0 && (buf_printf(s, "Diagnostic-Code: %s; ",
	    type) == -1 || put_wrapped(s, tmp->data, tmp->len,
	    strlen("Diagnostic-Code: ; ") + strlen(type), " ") == -1 ||
	    buf_appends(s, "\r\n") == -1))
		return -1;
	if (r->last_attempt > 0 &&
	    put_date_field(s, "Last-Attempt-Date", r->last_attempt) == -1)
		return -1;
	if (strcmp(r->action, "delayed") == 0 && r->will_retry_until > 0 &&
	    put_date_field(s, "Will-Retry-Until", r->will_retry_until) == -1)
		return -1;
	return 0;
}

static int
build_report(const struct dsn_input *in, struct buf *s, struct buf *tmp)
{
	size_t i;

	if (buf_printf(s, "Reporting-MTA: dns; %s\r\n", in->reporting_mta) ==
	    -1 || buf_printf(s, "X-Tern-Queue-ID: %s\r\n", in->queue_id) == -1)
		return -1;
	if (in->envid != NULL && in->envid[0] != '\0' &&
	    buf_printf(s, "Original-Envelope-Id: %s\r\n", in->envid) == -1)
		return -1;
	if (in->arrival > 0 &&
	    put_date_field(s, "Arrival-Date", in->arrival) == -1)
		return -1;
	for (i = 0; i < in->nrcpts; i++)
		if (buf_appends(s, "\r\n") == -1 ||
		    put_report_rcpt(s, &in->rcpts[i], tmp) == -1)
			return -1;
	return 0;
}

static const char *
action_text(const char *action)
{
	if (strcmp(action, "failed") == 0)
		return "delivery failed";
	if (strcmp(action, "delayed") == 0)
		return "delivery delayed, still trying";
	if (strcmp(action, "delivered") == 0)
		return "delivered";
	if (strcmp(action, "relayed") == 0)
		return "relayed to a system that sends no further notifications";
	return "delivered to a list or alias, which may send its own";
}

/* One recipient in plain English, e.g. "<bob@x>: delivery failed". */
static int
put_text_rcpt(struct buf *t, const struct dsn_rcpt *r, struct buf *tmp)
{
	if (buf_printf(t, "<%s>: %s (status %s).\r\n", r->final_rcpt,
	    action_text(r->action), r->status) == -1)
		return -1;
	if (clean_text(r->diagnostic, 0, tmp) == -1)
		return -1;
	if (tmp->len > 0) {
		if (r->remote_mta != NULL) {
			if (buf_printf(t, "    The server %s said:\r\n    ",
			    r->remote_mta) == -1)
				return -1;
		} else if (buf_appends(t, "    Reason: ") == -1)
			return -1;
		if (put_wrapped(t, tmp->data, tmp->len,
		    r->remote_mta != NULL ? 4 : 12, "    ") == -1 ||
		    buf_appends(t, "\r\n") == -1)
			return -1;
	}
	if (strcmp(r->action, "delayed") == 0 && r->will_retry_until > 0) {
		if (buf_appends(t, "    Delivery will be retried until ") == -1 ||
		    put_date(t, r->will_retry_until) == -1 ||
		    buf_appends(t, ".\r\n") == -1)
			return -1;
	}
	return buf_appends(t, "\r\n");
}

static const char *
intro(enum dsn_kind_out k)
{
	switch (k) {
	case KIND_BOUNCE:
		return "Your message could not be delivered to one or more "
		    "of its recipients. The mail system has given up on the "
		    "recipients listed below; sending the message again "
		    "will not help unless the problem is fixed.";
	case KIND_DELAY:
		return "Your message has not been delivered yet to the "
		    "recipients listed below. The mail system will keep "
		    "trying; you do not need to send it again. You will be "
		    "told if delivery finally fails.";
	default:
		return "Your message was delivered to the recipients listed "
		    "below, as you asked to be told.";
	}
}

static const char *
returned_text(const struct returned *rt)
{
	if (rt->what == RET_FULL)
		return "Your message is attached.";
	if (rt->what == RET_HEADERS && rt->want_full_but)
		return "Your message could not be attached whole (too large, "
		    "or not plain text); its headers are attached.";
	if (rt->what == RET_HEADERS)
		return "The headers of your message are attached.";
	return "Your message could not be attached.";
}

static int
build_text(const struct dsn_input *in, enum dsn_kind_out k,
    const struct returned *rt, struct buf *t, struct buf *tmp)
{
	char line[512];
	size_t i;

	snprintf(line, sizeof(line), "This is the mail system at host %s.",
	    in->reporting_mta);
	if (put_para(t, line) == -1 || put_para(t, intro(k)) == -1 ||
	    put_para(t, returned_text(rt)) == -1)
		return -1;
	snprintf(line, sizeof(line), "If you need help, contact the "
	    "postmaster of %s and quote the queue ID %s.", in->reporting_mta,
	    in->queue_id);
	if (put_para(t, line) == -1)
		return -1;
	for (i = 0; i < in->nrcpts; i++)
		if (put_text_rcpt(t, &in->rcpts[i], tmp) == -1)
			return -1;
	return 0;
}

/* ---- the returned content ---- */

static int
read_content(int fd, uint64_t len, size_t cap, struct buf *c, int *more)
{
	char chunk[READ_CHUNK];
	size_t want;
	ssize_t n;

	*more = 0;
	for (;;) {
		/* One octet past cap tells whether there is more. */
		want = cap + 1 - c->len;
		if (want > sizeof(chunk))
			want = sizeof(chunk);
		if (len != 0 && (uint64_t)c->len + want > len)
			want = (size_t)(len - (uint64_t)c->len);
		if (want == 0)
			return 0;
		n = pread(fd, chunk, want, (off_t)c->len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			return 0;
		if (c->len + (size_t)n > cap) {
			*more = 1;
			return buf_append(c, chunk, cap - c->len);
		}
		if (buf_append(c, chunk, (size_t)n) == -1)
			return -1;
	}
}

/*
 * 1 if p[0..n) can go into a 7bit/8bit MIME body as it is (RFC 2045
 * 2.8): no NUL, CR and LF only as CRLF, lines at most 998 octets.
 * Sets *eight if an octet is above 127.
 */
static int
mime_clean(const char *p, size_t n, int *eight)
{
	size_t i, col = 0;
	unsigned char c;

	*eight = 0;
	for (i = 0; i < n; i++) {
		c = (unsigned char)p[i];
		if (c == '\r') {
			if (i + 1 >= n || p[i + 1] != '\n')
				return 0;
			i++;
			col = 0;
			continue;
		}
		if (c == '\0' || c == '\n' || ++col > LINE_MAX_OCTETS)
			return 0;
		if (c >= 0x80)
			*eight = 1;
	}
	return 1;
}

/* The header section: up to the first empty line, with its last CRLF. */
static size_t
header_len(const char *p, size_t n, int more)
{
	const char *e;

	if (n >= 2 && p[0] == '\r' && p[1] == '\n')
		return 0;
	if ((e = memmem(p, n, "\r\n\r\n", 4)) != NULL)
		return (size_t)(e - p) + 2;
	return more ? 0 : n;
}

static void
choose_returned(const struct dsn_input *in, const struct buf *c, int more,
    struct returned *rt)
{
	size_t h = header_len(c->data ? c->data : "", c->len, more);
	int e8;

	memset(rt, 0, sizeof(*rt));
	if (h > 0 && c->data && mime_clean(c->data, h, &e8))
		rt->hdr_eight_bit = e8;
	else
		h = 0;
	if (in->ret_full && !more && c->len > 0 && h > 0 && c->data &&
	    mime_clean(c->data, c->len, &e8)) {
		rt->what = RET_FULL;
		rt->len = c->len;
		rt->eight_bit = e8;
	} else if (h > 0) {
		rt->what = RET_HEADERS;
		rt->len = h;
		rt->eight_bit = rt->hdr_eight_bit;
		rt->want_full_but = in->ret_full;
	}
	rt->data = c->data;
}

/* ---- assembly ---- */

static int
make_boundary(char *bnd, size_t bndsz, const struct buf *const *parts,
    size_t nparts, const struct returned *rt)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[16];
	char h[33];
	size_t i, k, tries;
	int clash;

	for (tries = 0; tries < BOUNDARY_TRIES; tries++) {
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return -1;
		for (i = 0; i < sizeof(rnd); i++) {
			h[2 * i] = hex[rnd[i] >> 4];
			h[2 * i + 1] = hex[rnd[i] & 0x0f];
		}
		h[32] = '\0';
		/* "=_" cannot start a line of base64 or quoted-printable. */
		snprintf(bnd, bndsz, "=_tern_%s", h);
		clash = rt->len > 0 && memmem(rt->data, rt->len, bnd,
		    strlen(bnd)) != NULL;
		for (k = 0; k < nparts && !clash; k++)
			clash = parts[k]->len > 0 && memmem(parts[k]->data,
			    parts[k]->len, bnd, strlen(bnd)) != NULL;
		if (!clash)
			return 0;
	}
	return -1;
}

static const char *const subjects[] = {
	"Undelivered Mail Returned to Sender",
	"Delayed Mail (still being retried)",
	"Successful Mail Delivery Report",
};

static int
put_headers(struct buf *o, const struct dsn_input *in, enum dsn_kind_out k,
    const char *bnd, int eight)
{
	unsigned char rnd[8];
	uint64_t r = 0;
	size_t i;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -1;
	for (i = 0; i < sizeof(rnd); i++)
		r = r << 8 | rnd[i];
	if (put_date_field(o, "Date", in->now) == -1 ||
	    buf_printf(o, "From: Mail Delivery System <%s>\r\n"
	    "To: <%s>\r\nSubject: %s\r\n", in->postmaster, in->sender,
	    subjects[k]) == -1 ||
	    buf_printf(o, "Message-ID: <%" PRId64 ".%s.%016" PRIx64 "@%s>\r\n",
	    (int64_t)in->now, in->queue_id, r, in->message_id_domain) == -1)
		return -1;
	/* RFC 3834 5: a machine's reply; autoresponders keep quiet. */
	if (buf_printf(o, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s\"\r\n", bnd) == -1)
		return -1;
	if (eight && buf_appends(o, "Content-Transfer-Encoding: 8bit\r\n") == -1)
		return -1;
	return buf_appends(o, "\r\nThis is a MIME-encapsulated message.\r\n");
}

static const char *
returned_type(const struct returned *rt)
{
	/* RFC 6532 3.7: headers with UTF-8 need the "global" types. */
	if (rt->what == RET_FULL)
		return rt->hdr_eight_bit ? "message/global" : "message/rfc822";
	return rt->hdr_eight_bit ? "message/global-headers" :
	    "text/rfc822-headers";
}

static int
put_part(struct buf *o, const char *bnd, const char *head, const char *data,
    size_t len)
{
	if (buf_printf(o, "\r\n--%s\r\n%s\r\n", bnd, head) == -1 ||
	    buf_append(o, data, len) == -1)
		return -1;
	/* The CRLF before the next delimiter belongs to it (RFC 2046 5.1.1). */
	if (len < 2 || data[len - 2] != '\r' || data[len - 1] != '\n')
		return buf_appends(o, "\r\n");
	return 0;
}

static int
assemble(struct buf *o, const struct dsn_input *in, enum dsn_kind_out k,
    const struct buf *t, int t8, const struct buf *s,
    const struct returned *rt, const char *bnd)
{
	char head[256];

	if (put_headers(o, in, k, bnd, t8 || rt->eight_bit) == -1)
		return -1;
	snprintf(head, sizeof(head), "Content-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=%s\r\n%s",
	    t8 ? "utf-8" : "us-ascii",
	    t8 ? "Content-Transfer-Encoding: 8bit\r\n" : "");
	if (put_part(o, bnd, head, t->data, t->len) == -1)
		return -1;
	if (put_part(o, bnd, "Content-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n", s->data, s->len) == -1)
		return -1;
	if (rt->what != RET_NONE) {
		snprintf(head, sizeof(head), "Content-Description: %s\r\n"
		    "Content-Type: %s\r\n%s", rt->what == RET_FULL ?
		    "Your message" : "Headers of your message",
		    returned_type(rt), rt->eight_bit ?
		    "Content-Transfer-Encoding: 8bit\r\n" : "");
		if (put_part(o, bnd, head, rt->data, rt->len) == -1)
			return -1;
	}
	return buf_printf(o, "\r\n--%s--\r\n", bnd);
}

static int
text_has_8bit(const struct buf *t)
{
	size_t i;

	for (i = 0; i < t->len; i++)
		if ((unsigned char)t->data[i] >= 0x80)
			return 1;
	return 0;
}

int
dsn_build(const struct dsn_input *in, int content_fd, size_t max_returned,
    struct buf *out, char *err, size_t errlen)
{
	struct buf text, report, tmp, content;
	const struct buf *parts[2];
	struct returned rt;
	enum dsn_kind_out k;
	char bnd[64];
	size_t start = out->len;
	int more = 0, t8, rc = -1;

	if (errlen > 0)
		err[0] = '\0';
	if (check_input(in, err, errlen) == -1)
		return -1;
	k = kind_of(in);
	buf_init(&text, 16u * 1024 * 1024);
	buf_init(&report, 16u * 1024 * 1024);
	buf_init(&tmp, 64u * 1024);
	buf_init(&content, max_returned < (size_t)-2 ? max_returned + 1 :
	    max_returned);
	if (max_returned > 0 && read_content(content_fd, in->content_len, max_returned,
	    &content, &more) == -1) {
		set_err(err, errlen, "reading the message: %s", strerror(errno));
		goto done;
	}
	if (max_returned == 0)
		more = 1;
	choose_returned(in, &content, more, &rt);
	if (build_text(in, k, &rt, &text, &tmp) == -1 ||
	    build_report(in, &report, &tmp) == -1) {
		set_err(err, errlen, "building the report failed");
		goto done;
	}
	parts[0] = &text;
	parts[1] = &report;
	if (make_boundary(bnd, sizeof(bnd), parts, 2, &rt) == -1) {
		set_err(err, errlen, "no MIME boundary");
		goto done;
	}
	t8 = text_has_8bit(&text);
	if (assemble(out, in, k, &text, t8, &report, &rt, bnd) == -1) {
		set_err(err, errlen, "output limit reached");
		goto done;
	}
	rc = (t8 || rt.eight_bit ? DSN_NEEDS_8BITMIME : 0) |
	    (addr_class(in->sender, strlen(in->sender)) == 0 ?
	    DSN_NEEDS_SMTPUTF8 : 0);
done:
	if (rc == -1) {
		out->len = start;
		if (out->data != NULL)
			out->data[start] = '\0';
	}
	buf_free(&text);
	buf_free(&report);
	buf_free(&tmp);
	buf_free(&content);
	return rc;
}
