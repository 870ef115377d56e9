/*
 * session — the SMTP server state machine (see session.h).
 *
 * The command table names every verb with its handler; the transaction
 * (struct txn) is born at MAIL and dies at RSET, HELO/EHLO, the end of the
 * data, or the end of the session. Message data is scanned byte by byte by
 * one function, data_feed(), which alone decides what ends the data (only
 * CRLF "." CRLF, RFC 5321 4.1.1.4) and what a bare CR or LF is (2.3.8): the
 * SMTP smuggling sequences never end a message here.
 */
#include "server/session.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mailauth/arc.h"
#include "mailauth/authcheck.h"
#include "mailauth/authres.h"
#include "queue/envelope.h"
#include "server/resolve.h"
#include "server/submit.h"
#include "smtp/parse.h"
#include "smtp/sasl.h"
#include "smtp/xtext.h"

#define SESSION_IN_MAX   (256 * 1024)	/* pipelined input held while waiting */
#define SESSION_OUT_MAX  (256 * 1024)
#define SESSION_WBUF     (64 * 1024)	/* message bytes gathered per write() */
#define ENV_MAX          (8 * 1024 * 1024)

enum sstate {
	ST_CMD, ST_SKIPLINE, ST_WAIT_OPEN, ST_DATA, ST_BDAT, ST_WAIT_COMMIT, ST_CLOSE,
	ST_TLS,		/* 220 to STARTTLS sent: the worker starts the handshake */
	ST_AUTH_LINE,	/* reading a SASL response line */
	ST_AUTH_WAIT,	/* the password is being checked */
	ST_WAIT_CHECK,	/* the message is being checked (SPF, DKIM, DMARC) */
};
enum auth_step { AUTH_PLAIN, AUTH_LOGIN_USER, AUTH_LOGIN_PASS };
enum dstate { D_LINE_START, D_MID, D_DOT, D_DOT_CR, D_CR };
enum derr   { DERR_NONE, DERR_BARE, DERR_LONGLINE, DERR_SIZE, DERR_WRITE, DERR_OPEN, DERR_SEQ,
	      DERR_HEADER, DERR_FROM };

#define SESSION_HDR_MAX  (256 * 1024)	/* header section held back in submission */
#define AUTH_LINE_MAX    12288		/* RFC 4954 4 */

struct txn {
	int             active;		/* MAIL accepted */
	struct smtp_path sender;
	int             body8, smtputf8;
	size_t          nrcpt;		/* accepted RCPT commands */
	char            first_rcpt[SMTP_PATH_MAX + 1];
	struct envelope env;		/* recipients gather here */
	char            id[QUEUE_ID_LEN + 1];
	int             file_open;
	int             bdat;		/* BDAT used: DATA is out of sequence */
	int             bdat_last;
	uint64_t        bdat_left;
	uint64_t        bdat_chunk;
	uint64_t        size;
	enum derr       err;
	int             err_errno;
	enum dstate     ds;
	size_t          linelen;
	struct buf      wbuf;
	int             hold;		/* submission: header section held in hdr */
	struct buf      hdr;
	size_t          hdr_scan;	/* where to look for its end next */
	/* inbound checks (mx listeners) */
	int             checking;	/* this message gets checked */
	struct dkim_verify *dkim;	/* body hashes, fed as the message streams */
	struct arc_body *arc;		/* ARC's body hashes, likewise (RFC 8617) */
	size_t          hdr_end;	/* header section length in hdr (blank line included) */
	uint64_t        removed;	/* octets of forged A-R fields not written */
};

struct session {
	const struct config      *cfg;
	const struct session_ops *ops;
	void                     *ctx;
	char                      ip[64];
	uint64_t                  sid;
	enum sstate               st;
	int                       helo_seen, esmtp, shutting_down, busy;
	char                      helo[SMTP_DOMAIN_MAX + 1];
	struct buf                in, out;
	/* The input process() works on, from in_off: the bytes buffered in
	 * `in`, or the caller's own when none were (no copy); NULL outside it. */
	const char               *inp;
	size_t                    inlen, in_off;
	struct txn                t;
	struct session_stats      stats;
	/* what the listener is and what the client has become */
	int                       submission, tls_mode, trusted;
	int                       tls_active;
	char                      tls_info[160];
	char                      auth_user[SASL_FIELD_MAX + 1];
	enum auth_step            auth_step;
	char                      auth_login[SASL_FIELD_MAX + 1];	/* LOGIN: the user name */
	const struct listen_cfg  *listener;
	uint32_t                  check_seq;
};

static void process(struct session *);
static int  spool_put(struct session *, const char *, size_t);
static void emit(struct session *, const char *, size_t);
static void hold_header(struct session *, const char *, size_t);

/* ---- replies ---- */

static size_t
put_str(char *line, size_t off, size_t size, const char *p)
{
	while (*p != '\0' && off < size)
		line[off++] = *p++;
	return off;
}

/*
 * "CODE ENH TEXT" CRLF, or "CODE TEXT" CRLF before EHLO; code is 200..599.
 * Put together without printf (replies are the worker's commonest output)
 * and appended whole or not at all.
 */
static void
reply_raw(struct session *s, int code, const char *enh, const char *text)
{
	char line[700];
	size_t n = 4;

	line[0] = (char)('0' + code / 100 % 10);
	line[1] = (char)('0' + code / 10 % 10);
	line[2] = (char)('0' + code % 10);
	line[3] = ' ';
	if (s->esmtp && enh) {
		n = put_str(line, n, sizeof(line) - 3, enh);
		line[n++] = ' ';
	}
	n = put_str(line, n, sizeof(line) - 2, text);
	line[n++] = '\r';
	line[n++] = '\n';
	buf_append(&s->out, line, n);
}

static void
slog(struct session *s, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!s->ops->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->ops->log(s->ctx, s, line);
}

/* A reply; 4xx/5xx count as errors and too many end the session (421). */
static void
reply(struct session *s, int code, const char *enh, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void
reply(struct session *s, int code, const char *enh, const char *fmt, ...)
{
	char text[600];
	va_list ap;

	if (strchr(fmt, '%') == NULL)
		reply_raw(s, code, enh, fmt);	/* most replies: no formatting */
	else {
		va_start(ap, fmt);
		vsnprintf(text, sizeof(text), fmt, ap);
		va_end(ap);
		reply_raw(s, code, enh, text);
	}
	if (code < 400 || code == 421)
		return;
	s->stats.errors++;
	if (s->cfg->limits.errors && s->stats.errors >= s->cfg->limits.errors) {
		session_refuse(s, 421, "4.7.0", "Error: too many errors");
		slog(s, "event=too-many-errors errors=%u", s->stats.errors);
	}
}

/* A reply may have closed the session (too many errors): it stays closed. */
static void
set_state(struct session *s, enum sstate st)
{
	if (s->st != ST_CLOSE)
		s->st = st;
}

/* ---- transactions ---- */

static void
txn_reset(struct session *s)
{
	struct txn *t = &s->t;

	if (t->file_open)
		s->ops->abort(s->ctx, s, t->id);
	envelope_free(&t->env);
	buf_free(&t->wbuf);
	buf_free(&t->hdr);
	dkim_verify_free(t->dkim);
	arc_body_free(t->arc);
	memset(t, 0, sizeof(*t));
	envelope_init(&t->env);
	buf_init(&t->wbuf, SESSION_WBUF);
	buf_init(&t->hdr, SESSION_HDR_MAX);
}

/* RFC 3848 and RFC 6531 protocol names: ESMTP, ESMTPS, ESMTPSA, UTF8SMTPSA... */
static const char *
proto_name(const struct session *s)
{
	static const char *const names[2][4] = {
		{ "ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA" },
		{ "UTF8SMTP", "UTF8SMTPA", "UTF8SMTPS", "UTF8SMTPSA" },
	};

	if (!s->esmtp)
		return "SMTP";
	return names[s->t.smtputf8 != 0][(s->tls_active ? 2 : 0) + (s->auth_user[0] != 0)];
}

/* RFC 5321 4.4: the trace header tern prepends to every message. */
static int
write_received(struct session *s)
{
	struct txn *t = &s->t;
	char date[64];
	struct buf h;
	struct tm tm;
	time_t now = time(NULL);
	int r;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	buf_init(&h, 4096);
	/* An address literal (4.1.3): IPv6 ones are tagged "IPv6:". */
	buf_printf(&h, "Received: from %s ([%s%s])\r\n", s->helo,
	    strchr(s->ip, ':') ? "IPv6:" : "", s->ip);
	if (s->tls_active)
		buf_printf(&h, "\t(using %s)\r\n", s->tls_info);
	buf_printf(&h, "\tby %s (tern) with %s id %s", s->cfg->hostname, proto_name(s), t->id);
	if (t->nrcpt == 1)
		buf_printf(&h, "\r\n\tfor <%s>; %s\r\n", t->first_rcpt, date);
	else
		buf_printf(&h, "; %s\r\n", date);
	/* Written at once: a queue file that cannot be written fails DATA (451), not the end. */
	r = s->ops->write(s->ctx, s, h.data, h.len);
	buf_free(&h);
	return r;
}

static void
data_fail(struct session *s, enum derr e, int err)
{
	if (s->t.err == DERR_NONE) {
		s->t.err = e;
		s->t.err_errno = err;
	}
}

static void
wbuf_flush(struct session *s)
{
	struct txn *t = &s->t;
	int r;

	if (t->wbuf.len == 0)
		return;
	if (t->err == DERR_NONE && (r = s->ops->write(s->ctx, s, t->wbuf.data, t->wbuf.len)) != 0)
		data_fail(s, DERR_WRITE, r);
	buf_reset(&t->wbuf);
}

/*
 * Bytes for the queue file, gathered into writes of up to SESSION_WBUF
 * (the header and the body of a small message go in one write); 0 or an
 * errno.
 */
static int
spool_put(struct session *s, const char *p, size_t n)
{
	struct txn *t = &s->t;
	int r;

	if (t->wbuf.len > 0 && t->wbuf.len + n > SESSION_WBUF) {
		r = s->ops->write(s->ctx, s, t->wbuf.data, t->wbuf.len);
		buf_reset(&t->wbuf);
		if (r != 0)
			return r;
	}
	if (n >= SESSION_WBUF)
		return s->ops->write(s->ctx, s, p, n);
	/* The whole block at once: no string of reallocs per message. */
	if (t->wbuf.cap == 0 && buf_room(&t->wbuf, SESSION_WBUF) == -1)
		return ENOMEM;
	return buf_append(&t->wbuf, p, n) == -1 ? ENOMEM : 0;
}

/* Message bytes after unstuffing: counted, size-checked, buffered. */
static void
emit(struct session *s, const char *p, size_t n)
{
	struct txn *t = &s->t;
	uint64_t max = s->cfg->limits.message_size;
	int r;

	if (n == 0)
		return;
	t->size += n;
	if (max && t->size > max)
		data_fail(s, DERR_SIZE, 0);
	if (t->err != DERR_NONE)
		return;
	/* DKIM body hashes as the bytes pass (RFC 6376 3.7); a verifier that
	 * overflows simply has no signatures to report. While the header is
	 * held there is none yet (checks_start). */
	if (t->dkim && dkim_verify_feed(t->dkim, p, n) == -1) {
		dkim_verify_free(t->dkim);
		t->dkim = NULL;
	}
	if (t->arc)
		arc_body_feed(t->arc, p, n);
	if (t->hold) {
		hold_header(s, p, n);
		return;
	}
	if ((r = spool_put(s, p, n)) != 0)
		data_fail(s, DERR_WRITE, r);
}

/*
 * Submission (RFC 6409 8): the header section is held until its end, so
 * that a missing Date or Message-ID can be added and From: checked before
 * anything of the message is written.
 */
/* The end of the header field starting at off: after its last CRLF. */
static size_t
field_end(const char *h, size_t off, size_t end)
{
	size_t i;

	for (i = off; i + 1 < end; i++)
		if (h[i] == '\r' && h[i + 1] == '\n' &&
		    (i + 2 >= end || (h[i + 2] != ' ' && h[i + 2] != '\t')))
			return i + 2;
	return end;
}

/* An Authentication-Results field claiming our authserv-id? (RFC 8601 5) */
static int
forged_authres(const struct session *s, const char *f, size_t len)
{
	static const char name[] = "Authentication-Results";
	size_t n = sizeof(name) - 1, i = n;

	if (len <= n || strncasecmp(f, name, n) != 0)
		return 0;
	while (i < len && (f[i] == ' ' || f[i] == '\t'))
		i++;
	if (i >= len || f[i] != ':')
		return 0;
	i++;
	return authres_claims_id(f + i, len - i, config_authserv_id(s->cfg));
}

/*
 * Writes the held header section but the Authentication-Results fields
 * that claim to be ours (RFC 8601 5: we are the border, they are forged),
 * then whatever of the body was held with it.
 */
static int
write_checked_header(struct session *s, size_t end)
{
	struct txn *t = &s->t;
	const char *h = t->hdr.data;
	size_t off = 0, from = 0, fe;
	int r;

	while (off < end) {
		fe = field_end(h, off, end);
		if (forged_authres(s, h + off, fe - off)) {
			if (off > from && (r = spool_put(s, h + from, off - from)) != 0)
				return r;
			slog(s, "event=authres-removed id=%s", t->id);
			t->removed += fe - off;
			from = fe;
		}
		off = fe;
	}
	return t->hdr.len > from ? spool_put(s, h + from, t->hdr.len - from) : 0;
}

/* Submission: From: checked, a missing Date or Message-ID added. */
static int
submission_header(struct session *s, size_t end)
{
	struct txn *t = &s->t;
	struct submit_headers h;
	struct buf add;
	size_t i;
	int r = 0;

	submit_scan_headers(t->hdr.data, end, &h);
	if (s->auth_user[0] && s->cfg->auth.sender_check) {
		if (h.nfrom == 0 || h.from_bad)
			data_fail(s, DERR_FROM, 0);
		for (i = 0; i < h.naddr && i < SUBMIT_FROM_MAX; i++)
			if (!submit_owns(s->cfg, s->auth_user, h.from[i]))
				data_fail(s, DERR_FROM, 0);
	}
	if (t->err != DERR_NONE)
		return 0;
	buf_init(&add, 1024);
	if (!h.has_date) {
		char date[64];
		time_t now = time(NULL);
		struct tm tm;

		localtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
		buf_printf(&add, "Date: %s\r\n", date);
	}
	if (!h.has_message_id)
		buf_printf(&add, "Message-ID: <%s.tern@%s>\r\n", t->id, s->cfg->hostname);
	if (add.len)
		r = spool_put(s, add.data, add.len);
	buf_free(&add);
	return r;
}

/* Could the header hold a field named name (lower case)? Any mention counts. */
static int
mentions(const char *h, size_t n, const char *name)
{
	size_t k = strlen(name), i;

	for (i = 0; i + k <= n; i++)
		if ((h[i] | 0x20) == name[0] && strncasecmp(h + i, name, k) == 0)
			return 1;
	return 0;
}

/*
 * A checked message gets a DKIM verifier once its header is known, and
 * only if it names DKIM-Signature: without one the verifier (a large
 * block to clear) would have nothing to say. It is fed everything held
 * so far, the same bytes it would have seen from the start. Likewise
 * ARC's two body hashes if it names ARC-Seal, fed the body bytes held.
 */
static void
checks_start(struct session *s, size_t end)
{
	struct txn *t = &s->t;

	if (!t->checking || t->err != DERR_NONE)
		return;
	if (mentions(t->hdr.data, end, "arc-seal")) {
		if ((t->arc = arc_body_new()) == NULL) {
			data_fail(s, DERR_WRITE, ENOMEM);
			return;
		}
		if (t->hdr_end < t->hdr.len)
			arc_body_feed(t->arc, t->hdr.data + t->hdr_end, t->hdr.len - t->hdr_end);
	}
	if (!mentions(t->hdr.data, end, "dkim-signature"))
		return;
	if ((t->dkim = dkim_verify_new(NULL)) == NULL) {
		data_fail(s, DERR_WRITE, ENOMEM);
		return;
	}
	if (dkim_verify_feed(t->dkim, t->hdr.data, t->hdr.len) == -1) {
		dkim_verify_free(t->dkim);
		t->dkim = NULL;
	}
}

/*
 * The header section is held until its end: in submission (RFC 6409 8) so
 * that a missing Date or Message-ID can be added and From: checked before
 * anything of the message is written; on checked mx listeners so that
 * forged Authentication-Results fields can be left out and the header
 * sent to the check process.
 */
static void
release_header(struct session *s)
{
	struct txn *t = &s->t;
	size_t end = t->hdr.len;
	const char *e = t->hdr.len >= 2 ? memmem(t->hdr.data, t->hdr.len, "\r\n\r\n", 4) : NULL;
	int r = 0;

	t->hold = 0;
	if (t->hdr.len >= 2 && t->hdr.data[0] == '\r' && t->hdr.data[1] == '\n')
		end = 0;
	else if (e)
		end = (size_t)(e - t->hdr.data) + 2;
	t->hdr_end = e ? end + 2 : end == 0 ? 2 : end;
	checks_start(s, end);
	if (s->submission && (r = submission_header(s, end)) != 0)
		data_fail(s, DERR_WRITE, r);
	if (t->err != DERR_NONE)
		return;
	if (t->checking)
		r = write_checked_header(s, end);
	else
		r = spool_put(s, t->hdr.data, t->hdr.len);
	if (r != 0)
		data_fail(s, DERR_WRITE, r);
	if (!t->checking)
		buf_free(&t->hdr);	/* checked: kept for the check request */
}

static void
hold_header(struct session *s, const char *p, size_t n)
{
	struct txn *t = &s->t;
	size_t from = t->hdr_scan;

	if (buf_append(&t->hdr, p, n) == -1) {
		data_fail(s, DERR_HEADER, 0);
		return;
	}
	if ((t->hdr.len >= 2 && t->hdr.data[0] == '\r' && t->hdr.data[1] == '\n') ||
	    (t->hdr.len >= 4 && memmem(t->hdr.data + from, t->hdr.len - from, "\r\n\r\n", 4)))
		release_header(s);
	else
		t->hdr_scan = t->hdr.len >= 3 ? t->hdr.len - 3 : 0;
}

static void
line_end(struct session *s)
{
	struct txn *t = &s->t;

	if (t->linelen + 2 > s->cfg->limits.text_line)
		data_fail(s, DERR_LONGLINE, 0);
	t->linelen = 0;
	t->ds = D_LINE_START;
}

/*
 * The common case of data_feed() in one piece: from p[i] (in a line), the
 * whole lines ending in CRLF that need nothing done, up to the first one
 * that is too long (its length is checked by the caller), is the last in
 * p[0..n), or is followed by a dot or a bare CR or LF. Returns the end
 * of those lines, i if there is none.
 * t->linelen is the length of the last line (the caller checks it).
 */
static size_t
clean_run(struct session *s, const char *p, size_t i, size_t n, int dot)
{
	struct txn *t = &s->t;
	size_t max = s->cfg->limits.text_line, end = i, len = t->linelen;
	const char *lf;

	while (i < n && (lf = memchr(p + i, '\n', n - i)) != NULL) {
		size_t k = (size_t)(lf - p);

		/* Only a CR right before the LF: anything else is the slow path's. */
		if (k == i || memchr(p + i, '\r', k - i) != lf - 1)
			break;
		len += k - 1 - i;
		i = k + 1;
		end = i;
		t->linelen = len;
		if (len + 2 > max || i == n || (dot && p[i] == '.'))
			break;
		len = 0;
	}
	return end;
}

/*
 * Scans message bytes. For DATA (dot = 1) a "." at the start of a line is
 * removed (4.5.2) and CRLF "." CRLF ends the data (*done = 1); for BDAT
 * (dot = 0) bytes pass as they are. A CR not followed by LF, or an LF not
 * preceded by CR, marks the message bad, and an LF without CR does not
 * start a line, so "\n.\n" and friends end nothing.
 */
static size_t
data_feed(struct session *s, const char *p, size_t n, int dot, int *done)
{
	struct txn *t = &s->t;
	size_t i = 0, j;

	while (i < n) {
		switch (t->ds) {
		case D_LINE_START:
			if (dot && p[i] == '.') {
				/* The stuffed dot is not part of the line (4.5.2). */
				t->ds = D_DOT;
				i++;
			} else
				t->ds = D_MID;
			break;
		case D_DOT:
			if (p[i] == '\r') {
				t->ds = D_DOT_CR;
				i++;
			} else
				t->ds = D_MID;
			break;
		case D_DOT_CR:
			if (p[i] == '\n') {
				*done = 1;
				return i + 1;
			}
			data_fail(s, DERR_BARE, 0);
			emit(s, "\r", 1);
			t->ds = D_MID;
			break;
		case D_CR:
			if (p[i] == '\n') {
				emit(s, "\r\n", 2);
				i++;
				line_end(s);
			} else {
				data_fail(s, DERR_BARE, 0);
				emit(s, "\r", 1);
				t->linelen++;
				t->ds = D_MID;
			}
			break;
		case D_MID:
			if ((j = clean_run(s, p, i, n, dot)) > i) {
				emit(s, p + i, j - i);
				if (t->linelen + 2 > s->cfg->limits.text_line)
					data_fail(s, DERR_LONGLINE, 0);
				t->linelen = 0;
				t->ds = D_LINE_START;
				i = j;
				break;
			}
			for (j = i; j < n && p[j] != '\r' && p[j] != '\n'; j++)
				;
			emit(s, p + i, j - i);
			t->linelen += j - i;
			i = j;
			if (i == n)
				break;
			if (p[i] == '\r')
				t->ds = D_CR;
			else {
				data_fail(s, DERR_BARE, 0);
				emit(s, "\n", 1);
				t->linelen++;
			}
			i++;
			break;
		}
	}
	return i;
}

static void commit_message(struct session *);

/* The message is whole: ask the check process about it (mx listeners). */
static void
ask_check(struct session *s)
{
	struct txn *t = &s->t;
	struct session_check q;
	uint8_t body[DKIM_MAX_SIGS];
	unsigned char arc[ARC_BODY_HASHES];
	int n = t->dkim ? dkim_verify_bodies(t->dkim, body, DKIM_MAX_SIGS) : 0;

	memset(&q, 0, sizeof(q));
	q.seq = ++s->check_seq;
	q.ip = s->ip;
	q.helo = s->helo;
	q.mailfrom = t->sender.null ? "" : t->sender.addr;
	q.hdr = t->hdr.data ? t->hdr.data : "";
	q.hdrlen = t->hdr_end <= t->hdr.len ? t->hdr_end : t->hdr.len;
	q.body = body;
	q.nbody = n > 0 ? (size_t)n : 0;
	q.arc = t->arc && arc_body_finish(t->arc, arc) == 0 ? arc : NULL;
	s->st = ST_WAIT_CHECK;
	s->ops->check(s->ctx, s, &q);
}

static const char *
policy_reply(enum authcheck_verdict v, int *code, const char **enh)
{
	*code = 550;
	if (v == AC_REFUSE_SPF) {
		*enh = "5.7.23";	/* RFC 7372 3.2 */
		return "SPF validation failed: the sender's domain does not authorize this host";
	}
	*enh = "5.7.1";		/* RFC 7489 6.7 */
	return "Message rejected by the DMARC policy of the From: domain";
}

void
session_check_done(struct session *s, const struct session_check_answer *a)
{
	struct txn *t = &s->t;
	const struct checks_cfg *cc = &s->cfg->checks;
	const struct authcheck_policy pol = {
		(enum authcheck_action)cc->spf_fail, (enum authcheck_action)cc->dmarc_reject,
		(enum authcheck_action)cc->dmarc_quarantine,
	};
	enum authcheck_verdict v = AC_ACCEPT;
	struct buf h;
	const char *text, *enh;
	int code;

	if (s->st != ST_WAIT_CHECK || (a != NULL && a->seq != s->check_seq))
		return;	/* late: that message was answered already */
	buf_init(&h, ENVELOPE_PREPEND_MAX);
	if (a == NULL) {
		/* Temporary errors never refuse (RFC 7208 8.6, RFC 7489 6.6.3). */
		authcheck_unavailable(&h, config_authserv_id(s->cfg), t->sender.null ? "" :
		    t->sender.addr, s->helo, t->dkim && dkim_verify_count(t->dkim) > 0,
		    "checks did not complete");
		slog(s, "event=check-unavailable id=%s", t->id);
	} else {
		v = authcheck_verdict(&pol, (enum spf_result)a->spf, (enum dmarc_result)a->dmarc,
		    (enum dmarc_policy)a->disposition);
		buf_append(&h, a->header, a->len);
	}
	if (v == AC_REFUSE_SPF || v == AC_REFUSE_DMARC) {
		text = policy_reply(v, &code, &enh);
		reply(s, code, enh, "%s", text);
		slog(s, "event=reject stage=data reason=%s id=%s", v == AC_REFUSE_SPF ? "spf" : "dmarc",
		    t->id);
		buf_free(&h);
		txn_reset(s);
		s->st = ST_CMD;
		process(s);
		return;
	}
	if (v == AC_ACCEPT_QUARANTINE) {
		buf_appends(&h, "X-Tern-Quarantine: DMARC policy quarantine\r\n");
		t->env.quarantine = 1;
	}
	if (envelope_set_prepend(&t->env, h.data, h.len) == -1)
		slog(s, "event=prepend-failed id=%s", t->id);
	buf_free(&h);
	s->st = ST_CMD;
	commit_message(s);
	process(s);
}

/* The client's message is complete: answer an error or commit it. */
static void
finish_message(struct session *s)
{
	struct txn *t = &s->t;

	if (t->hold && t->err == DERR_NONE)
		release_header(s);	/* a message that is all header */
	wbuf_flush(s);
	switch (t->err) {
	case DERR_NONE:
		break;
	case DERR_HEADER:
		reply(s, 552, "5.3.4", "Message header section too large");
		break;
	case DERR_FROM:
		reply(s, 553, "5.7.1", "From: header address not owned by user %s", s->auth_user);
		break;
	case DERR_BARE:
		reply(s, 550, "5.6.0", "Message contains bare CR or LF (RFC 5321 section 2.3.8)");
		break;
	case DERR_LONGLINE:
		reply(s, 550, "5.6.0", "Message contains a line longer than %zu octets",
		    s->cfg->limits.text_line);
		break;
	case DERR_SIZE:
		reply(s, 552, "5.3.4", "Message size exceeds fixed limit");
		break;
	case DERR_WRITE:
	case DERR_OPEN:
		if (t->err_errno == ENOSPC || t->err_errno == EDQUOT)
			reply(s, 452, "4.3.1", "Insufficient system storage");
		else
			reply(s, 451, "4.3.0", "Error: queue write error");
		break;
	case DERR_SEQ:
		reply(s, 503, "5.5.1", "Error: need RCPT command");
		break;
	}
	if (t->err != DERR_NONE) {
		slog(s, "event=reject stage=data reason=%d size=%" PRIu64, (int)t->err, t->size);
		txn_reset(s);
		set_state(s, ST_CMD);
		return;
	}
	if (t->checking) {
		ask_check(s);
		return;
	}
	commit_message(s);
}

/* Sends the envelope to the queue: the message is whole and accepted. */
static void
commit_message(struct session *s)
{
	struct txn *t = &s->t;
	struct buf env;

	snprintf(t->env.id, sizeof(t->env.id), "%s", t->id);
	t->env.created = time(NULL);
	snprintf(t->env.sender, sizeof(t->env.sender), "%s", t->sender.null ? "" : t->sender.addr);
	snprintf(t->env.helo, sizeof(t->env.helo), "%s", s->helo);
	snprintf(t->env.client_addr, sizeof(t->env.client_addr), "%s", s->ip);
	snprintf(t->env.proto, sizeof(t->env.proto), "%s%s", proto_name(s),
	    s->submission ? ENVELOPE_PROTO_SUB : "");
	t->env.body_8bit = t->body8;
	t->env.smtputf8 = t->smtputf8;
	t->env.size = t->size - t->removed + envelope_prepend_len(&t->env);
	buf_init(&env, ENV_MAX);
	/* Room for a usual envelope at once: each field then formats in one pass. */
	if (buf_room(&env, 4096) == -1 || envelope_encode(&t->env, &env) == -1) {
		buf_free(&env);
		reply(s, 451, "4.3.0", "Error: queue write error");
		txn_reset(s);
		set_state(s, ST_CMD);
		return;
	}
	s->st = ST_WAIT_COMMIT;
	s->ops->commit(s->ctx, s, t->id, &env);
	buf_free(&env);
}

void
session_commit_done(struct session *s, int err)
{
	struct txn *t = &s->t;

	if (s->st != ST_WAIT_COMMIT)
		return;
	t->file_open = 0;	/* committed or dropped by the queue */
	if (err == 0) {
		reply(s, 250, "2.0.0", "Ok: queued as %s", t->id);
		s->stats.messages++;
		slog(s, "event=queued id=%s nrcpt=%zu size=%" PRIu64 " proto=%s",
		    t->id, t->env.nrcpts, t->size, proto_name(s));
	} else if (err == ENOSPC || err == EDQUOT)
		reply(s, 452, "4.3.1", "Insufficient system storage");
	else
		reply(s, 451, "4.3.0", "Error: queue write error");
	txn_reset(s);
	if (s->st == ST_WAIT_COMMIT)
		s->st = ST_CMD;
	process(s);
}

void
session_open_done(struct session *s, const char *id, int err)
{
	struct txn *t = &s->t;
	int bdat = t->bdat;

	if (s->st != ST_WAIT_OPEN) {
		/* The session ended (hangup, timeout) while the queue worked. */
		if (err == 0 && id != NULL)
			s->ops->abort(s->ctx, s, id);
		return;
	}
	if (err == 0) {
		snprintf(t->id, sizeof(t->id), "%s", id);
		t->file_open = 1;
		if ((err = write_received(s)) != 0)
			data_fail(s, DERR_WRITE, err);
		/* Inbound checks: mx listeners, not for authenticated clients. */
		t->checking = s->ops->check != NULL && !s->submission && !s->auth_user[0] &&
		    config_checks_on(s->cfg, s->listener);
		/* The DKIM verifier and ARC hashes come at the end of the header (checks_start). */
		t->hold = s->submission || t->checking;
	} else
		data_fail(s, DERR_OPEN, err);
	if (bdat) {
		/* RFC 3030: the chunk comes whatever we answer; read it, then reply. */
		s->st = ST_BDAT;
	} else if (t->err != DERR_NONE) {
		s->st = ST_CMD;
		finish_message(s);
	} else {
		reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
		t->ds = D_LINE_START;
		s->st = ST_DATA;
	}
	process(s);
}

/* ---- commands ---- */

static int
auth_offered(const struct session *s)
{
	return s->submission && s->cfg->auth.present && s->tls_active && !s->auth_user[0];
}

/* RFC 3207 4: with TLS required, only a few commands come before STARTTLS. */
static int
need_tls(struct session *s)
{
	if (s->tls_active || s->tls_mode != LTLS_REQUIRED)
		return 0;
	reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
	return -1;
}

static int
need_helo(struct session *s)
{
	if (s->helo_seen)
		return 0;
	reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
	return -1;
}

static int
no_arg(struct session *s, const struct smtp_cmd *c, const char *usage)
{
	if (c->arglen == 0)
		return 0;
	reply(s, 501, "5.5.4", "Syntax: %s", usage);
	return -1;
}

static void
cmd_helo(struct session *s, const struct smtp_cmd *c)
{
	int ehlo = c->verb == SMTP_VERB_EHLO;

	if (c->arglen == 0 || c->arglen > SMTP_DOMAIN_MAX ||
	    smtp_check_helo(c->arg, c->arglen, 1) == -1) {
		reply(s, 501, "5.5.4", "Syntax: %s hostname", ehlo ? "EHLO" : "HELO");
		return;
	}
	txn_reset(s);
	memcpy(s->helo, c->arg, c->arglen);
	s->helo[c->arglen] = '\0';
	s->helo_seen = 1;
	s->esmtp = ehlo;
	if (!ehlo) {
		buf_printf(&s->out, "250 %s\r\n", s->cfg->hostname);
		return;
	}
	buf_printf(&s->out, "250-%s\r\n250-PIPELINING\r\n250-SIZE %" PRIu64 "\r\n"
	    "250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n",
	    s->cfg->hostname, s->cfg->limits.message_size);
	if (!s->tls_active && (s->tls_mode == LTLS_OPTIONAL || s->tls_mode == LTLS_REQUIRED))
		buf_appends(&s->out, "250-STARTTLS\r\n");
	/* RFC 4954 14: never offer passwords on a connection in clear. */
	if (auth_offered(s))
		buf_appends(&s->out, "250-AUTH PLAIN LOGIN\r\n");
	buf_appends(&s->out, "250-DSN\r\n250 CHUNKING\r\n");
}

/* MAIL parameters: SIZE (RFC 1870), BODY (6152), SMTPUTF8 (6531). */
static int
mail_params(struct session *s, const struct smtp_mailarg *a)
{
	struct txn *t = &s->t;
	size_t i;

	for (i = 0; i < a->nparams; i++) {
		const struct smtp_param *p = &a->params[i];
		char key[32], val[32];

		if (p->keylen == 5 && strncasecmp(p->key, "ENVID", 5) == 0 && p->val) {
			/* RFC 3461 4.4: kept for the DSNs about this message. */
			if (dsn_parse_envid(p->val, p->vallen, t->env.envid, sizeof(t->env.envid)) == -1) {
				reply(s, 501, "5.5.4", "Syntax: bad ENVID value");
				return -1;
			}
			continue;
		}
		if (p->keylen >= sizeof(key) || (p->val && p->vallen >= sizeof(val))) {
			reply(s, 555, "5.5.4", "Unsupported option");
			return -1;
		}
		memcpy(key, p->key, p->keylen);
		key[p->keylen] = '\0';
		val[0] = '\0';
		if (p->val) {
			memcpy(val, p->val, p->vallen);
			val[p->vallen] = '\0';
		}
		if (strcasecmp(key, "SIZE") == 0 && p->val) {
			char *end;
			unsigned long long n;

			errno = 0;
			n = strtoull(val, &end, 10);
			if (*end || val[0] < '0' || val[0] > '9') {
				reply(s, 501, "5.5.4", "Syntax: bad SIZE value");
				return -1;
			}
			if (errno == ERANGE)
				n = ULLONG_MAX;	/* 1*20DIGIT may pass 64 bits: simply too big */
			if (s->cfg->limits.message_size && n > s->cfg->limits.message_size) {
				reply(s, 552, "5.3.4", "Message size exceeds fixed limit");
				return -1;
			}
		} else if (strcasecmp(key, "BODY") == 0 && p->val &&
		    (strcasecmp(val, "7BIT") == 0 || strcasecmp(val, "8BITMIME") == 0)) {
			t->body8 = strcasecmp(val, "8BITMIME") == 0;
		} else if (strcasecmp(key, "SMTPUTF8") == 0 && !p->val) {
			t->smtputf8 = 1;
		} else if (strcasecmp(key, "RET") == 0 && p->val) {
			if (dsn_parse_ret(p->val, p->vallen, &t->env.ret) == -1) {
				reply(s, 501, "5.5.4", "Syntax: bad RET value");
				return -1;
			}
		} else if (strcasecmp(key, "AUTH") == 0 && p->val) {
			/* RFC 4954 5: a relay's claim about the original submitter; not kept. */
		} else {
			reply(s, 555, "5.5.4", "Unsupported option: %s", key);
			return -1;
		}
	}
	return 0;
}

static void
cmd_mail(struct session *s, const struct smtp_cmd *c)
{
	struct smtp_mailarg a;
	const char *why = "syntax error";
	enum smtp_parse_err e;

	if (need_tls(s) || need_helo(s))
		return;
	if (s->t.active) {
		reply(s, 503, "5.5.1", "Error: nested MAIL command");
		return;
	}
	if (s->submission && !s->auth_user[0] && !s->trusted) {
		reply(s, 530, "5.7.0", "Authentication required");
		return;
	}
	if (s->ops->admit && s->ops->admit(s->ctx, s) == -1) {
		slog(s, "event=rate-limited");
		session_refuse(s, 421, "4.7.0", "Error: too many messages from your address");
		return;
	}
	if (s->shutting_down) {
		session_refuse(s, 421, "4.3.2", "Service shutting down");
		return;
	}
	e = smtp_parse_mailarg(c->arg, c->arglen, "FROM:", &a, &why);
	if (e == SMTP_PARSE_ADDRESS || e == SMTP_PARSE_BAD_UTF8) {
		reply(s, 501, "5.1.7", "Bad sender address syntax: %s", why);
		return;
	}
	if (e != SMTP_PARSE_OK) {
		reply(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>: %s", why);
		return;
	}
	txn_reset(s);
	if (mail_params(s, &a) == -1) {
		txn_reset(s);
		return;
	}
	if (a.path.utf8 && !s->t.smtputf8) {
		reply(s, 553, "5.6.7", "Non-ASCII sender address needs SMTPUTF8");
		txn_reset(s);
		return;
	}
	if (s->auth_user[0] && s->cfg->auth.sender_check && !a.path.null &&
	    !submit_owns(s->cfg, s->auth_user, a.path.addr)) {
		reply(s, 553, "5.7.1", "<%s>: Sender address rejected: not owned by user %s",
		    a.path.addr, s->auth_user);
		txn_reset(s);
		return;
	}
	s->t.sender = a.path;
	s->t.active = 1;
	reply(s, 250, "2.1.0", "Ok");
}

/* RCPT parameters: NOTIFY and ORCPT (RFC 3461 4.1, 4.2). */
static int
rcpt_params(struct session *s, const struct smtp_mailarg *a, unsigned *notify,
    char *orcpt, size_t orcptsz)
{
	size_t i;

	for (i = 0; i < a->nparams; i++) {
		const struct smtp_param *p = &a->params[i];

		if (p->keylen == 6 && strncasecmp(p->key, "NOTIFY", 6) == 0 && p->val) {
			if (dsn_parse_notify(p->val, p->vallen, notify) == -1) {
				reply(s, 501, "5.5.4", "Syntax: bad NOTIFY value");
				return -1;
			}
		} else if (p->keylen == 5 && strncasecmp(p->key, "ORCPT", 5) == 0 && p->val) {
			if (dsn_parse_orcpt(p->val, p->vallen, orcpt, orcptsz) == -1) {
				reply(s, 501, "5.5.4", "Syntax: bad ORCPT value");
				return -1;
			}
		} else {
			reply(s, 555, "5.5.4", "Unsupported option: %.*s", (int)p->keylen, p->key);
			return -1;
		}
	}
	return 0;
}

static void
cmd_rcpt(struct session *s, const struct smtp_cmd *c)
{
	struct rcpt_dest dest[RESOLVE_MAX_DEST];
	struct smtp_mailarg a;
	const char *why = "syntax error";
	const char *shown;
	enum smtp_parse_err e;
	char orcpt[DSN_ORCPT_MAX + 1] = "";
	unsigned notify = 0;
	size_t n = 0;

	if (need_tls(s) || need_helo(s))
		return;
	if (!s->t.active) {
		reply(s, 503, "5.5.1", "Error: need MAIL command");
		return;
	}
	if (s->t.nrcpt >= s->cfg->limits.recipients) {
		reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	e = smtp_parse_mailarg(c->arg, c->arglen, "TO:", &a, &why);
	if (e == SMTP_PARSE_ADDRESS || e == SMTP_PARSE_BAD_UTF8) {
		reply(s, 501, "5.1.3", "Bad recipient address syntax: %s", why);
		return;
	}
	if (e != SMTP_PARSE_OK) {
		reply(s, 501, "5.5.4", "Syntax: RCPT TO:<address>: %s", why);
		return;
	}
	if (rcpt_params(s, &a, &notify, orcpt, sizeof(orcpt)) == -1)
		return;
	if (a.path.utf8 && !s->t.smtputf8) {
		reply(s, 553, "5.6.7", "Non-ASCII recipient address needs SMTPUTF8");
		return;
	}
	shown = a.path.postmaster ? "postmaster" : a.path.addr;
	/* Only submission relays, and only for its users and trusted networks. */
	switch (resolve_rcpt(s->cfg, &a.path, s->submission && (s->auth_user[0] || s->trusted),
	    dest, RESOLVE_MAX_DEST, &n)) {
	case RESOLVE_OK:
		break;
	case RESOLVE_UNKNOWN_USER:
		reply(s, 550, "5.1.1", "<%s>: Recipient address rejected: User unknown", shown);
		return;
	case RESOLVE_RELAY_DENIED:
		reply(s, 554, "5.7.1", "<%s>: Relay access denied", shown);
		slog(s, "event=relay-denied rcpt=\"%s\"", shown);
		return;
	case RESOLVE_LOOP:
		reply(s, 550, "5.4.6", "<%s>: Alias expansion loop", shown);
		return;
	case RESOLVE_TOO_MANY:
		reply(s, 452, "4.5.3", "<%s>: Error: too many recipients", shown);
		return;
	}
	if (resolve_into_envelope(&s->t.env, shown, dest, n, notify, orcpt) == -1) {
		reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	if (s->t.nrcpt++ == 0)
		snprintf(s->t.first_rcpt, sizeof(s->t.first_rcpt), "%s", shown);
	s->stats.rcpts++;
	reply(s, 250, "2.1.5", "Ok");
}

static int
data_ready(struct session *s)
{
	if (!s->t.active) {
		reply(s, 503, "5.5.1", "Error: need MAIL command");
		return 0;
	}
	if (s->t.nrcpt == 0) {
		reply(s, 503, "5.5.1", "Error: need RCPT command");
		return 0;
	}
	return 1;
}

static void
cmd_data(struct session *s, const struct smtp_cmd *c)
{
	if (need_tls(s) || need_helo(s) || no_arg(s, c, "DATA"))
		return;
	if (s->t.bdat) {
		reply(s, 503, "5.5.1", "Error: DATA after BDAT");
		return;
	}
	if (!data_ready(s))
		return;
	s->st = ST_WAIT_OPEN;
	s->ops->open(s->ctx, s);
}

/* RFC 3030: "BDAT" SP chunk-size [ SP "LAST" ] */
static void
cmd_bdat(struct session *s, const struct smtp_cmd *c)
{
	struct txn *t = &s->t;
	uint64_t size = 0;
	size_t i = 0;
	int last = 0;

	while (i < c->arglen && c->arg[i] >= '0' && c->arg[i] <= '9' && i < 19)
		size = size * 10 + (uint64_t)(c->arg[i++] - '0');
	if (i > 0 && i + 5 == c->arglen && strncasecmp(c->arg + i, " LAST", 5) == 0)
		last = 1;
	else if (i == 0 || i != c->arglen) {
		/* Without a size we cannot know where the chunk ends: give up. */
		reply(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		s->st = ST_CLOSE;
		return;
	}
	t->bdat_left = size;
	t->bdat_chunk = size;
	t->bdat_last = last;
	if (!s->helo_seen || !t->active || t->nrcpt == 0) {
		/* Swallow the chunk, then say why (finish_message). */
		t->bdat = 1;
		data_fail(s, DERR_SEQ, 0);
		s->st = ST_BDAT;
		return;
	}
	if (!t->bdat) {
		t->bdat = 1;
		t->ds = D_MID;
	}
	if (t->file_open || t->err != DERR_NONE)
		s->st = ST_BDAT;
	else {
		s->st = ST_WAIT_OPEN;
		s->ops->open(s->ctx, s);
	}
}

static void
cmd_rset(struct session *s, const struct smtp_cmd *c)
{
	if (no_arg(s, c, "RSET"))
		return;
	txn_reset(s);
	reply(s, 250, "2.0.0", "Ok");
}

static void
cmd_noop(struct session *s, const struct smtp_cmd *c)
{
	reply(s, 250, "2.0.0", "Ok");
}

static void
cmd_quit(struct session *s, const struct smtp_cmd *c)
{
	reply(s, 221, "2.0.0", "Bye");
	s->st = ST_CLOSE;
}

static void
cmd_vrfy(struct session *s, const struct smtp_cmd *c)
{
	if (c->arglen == 0) {
		reply(s, 501, "5.5.4", "Syntax: VRFY address");
		return;
	}
	/* RFC 5321 3.5.3: 252 without saying whether the user exists. */
	reply(s, 252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery");
}

static void
cmd_help(struct session *s, const struct smtp_cmd *c)
{
	reply(s, 214, "2.0.0", "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP");
}

/* RFC 3207: the reply, then nothing more in clear; the worker does the handshake. */
static void
cmd_starttls(struct session *s, const struct smtp_cmd *c)
{
	if (s->tls_active) {
		reply(s, 503, "5.5.1", "Error: TLS already active");
		return;
	}
	if (s->tls_mode != LTLS_OPTIONAL && s->tls_mode != LTLS_REQUIRED) {
		reply(s, 502, "5.5.1", "Error: command not implemented");
		return;
	}
	if (no_arg(s, c, "STARTTLS"))
		return;
	reply(s, 220, "2.0.0", "Ready to start TLS");
	/* Whatever the client sent after STARTTLS in clear is dropped (CVE-2011-0411). */
	s->in_off = s->inlen;
	txn_reset(s);
	set_state(s, ST_TLS);
}

static void
auth_check(struct session *s, const char *user, const char *pass)
{
	snprintf(s->auth_login, sizeof(s->auth_login), "%s", user);
	set_state(s, ST_AUTH_WAIT);
	s->ops->auth(s->ctx, s, user, pass);
}

/* One SASL response (the initial one or a line after 334). */
static void
auth_response(struct session *s, const char *line, size_t len)
{
	unsigned char raw[3 * SASL_FIELD_MAX + 8];
	struct sasl_creds cr;
	long n;

	if (len == 1 && line[0] == '*') {
		set_state(s, ST_CMD);
		reply(s, 501, "5.7.0", "Authentication canceled");
		return;
	}
	if (len == 1 && line[0] == '=')
		n = 0;	/* RFC 4954 4: an empty initial response */
	else if ((n = sasl_b64_decode(line, len, raw, sizeof(raw))) < 0) {
		set_state(s, ST_CMD);
		reply(s, 501, "5.5.2", "Cannot decode response");
		return;
	}
	switch (s->auth_step) {
	case AUTH_PLAIN:
		if (sasl_plain_parse(raw, (size_t)n, &cr) == -1 ||
		    (cr.authzid[0] && strcasecmp(cr.authzid, cr.authcid) != 0)) {
			set_state(s, ST_CMD);
			reply(s, 501, "5.5.2", "Malformed PLAIN response");
			break;
		}
		auth_check(s, cr.authcid, cr.passwd);
		break;
	case AUTH_LOGIN_USER:
		if (n == 0 || (size_t)n > SASL_FIELD_MAX || memchr(raw, '\0', (size_t)n)) {
			set_state(s, ST_CMD);
			reply(s, 501, "5.5.2", "Malformed user name");
			break;
		}
		memcpy(s->auth_login, raw, (size_t)n);
		s->auth_login[n] = '\0';
		s->auth_step = AUTH_LOGIN_PASS;
		set_state(s, ST_AUTH_LINE);
		buf_appends(&s->out, "334 UGFzc3dvcmQ6\r\n");	/* "Password:" */
		break;
	case AUTH_LOGIN_PASS:
		if ((size_t)n > SASL_FIELD_MAX || memchr(raw, '\0', (size_t)n)) {
			set_state(s, ST_CMD);
			reply(s, 501, "5.5.2", "Malformed password");
			break;
		}
		memcpy(cr.passwd, raw, (size_t)n);
		cr.passwd[n] = '\0';
		snprintf(cr.authcid, sizeof(cr.authcid), "%s", s->auth_login);
		auth_check(s, cr.authcid, cr.passwd);
		break;
	}
	explicit_bzero(raw, sizeof(raw));
	explicit_bzero(&cr, sizeof(cr));
}

/* RFC 4954: AUTH mechanism [initial-response] */
static void
cmd_auth(struct session *s, const struct smtp_cmd *c)
{
	const char *sp = memchr(c->arg, ' ', c->arglen);
	size_t mlen = sp ? (size_t)(sp - c->arg) : c->arglen;

	if (!s->submission || !s->cfg->auth.present) {
		reply(s, 502, "5.5.1", "Error: authentication not enabled");
		return;
	}
	if (need_tls(s) || need_helo(s))
		return;
	if (!s->tls_active) {
		reply(s, 538, "5.7.11", "Encryption required for requested authentication mechanism");
		return;
	}
	if (s->auth_user[0] || s->t.active) {
		reply(s, 503, "5.5.1", s->auth_user[0] ? "Error: already authenticated" :
		    "Error: AUTH not allowed during a mail transaction");
		return;
	}
	if (mlen == 5 && strncasecmp(c->arg, "PLAIN", 5) == 0)
		s->auth_step = AUTH_PLAIN;
	else if (mlen == 5 && strncasecmp(c->arg, "LOGIN", 5) == 0)
		s->auth_step = AUTH_LOGIN_USER;
	else {
		reply(s, 504, "5.5.4", "Unrecognized authentication type");
		return;
	}
	if (sp) {
		auth_response(s, sp + 1, c->arglen - mlen - 1);
		return;
	}
	set_state(s, ST_AUTH_LINE);
	buf_appends(&s->out, s->auth_step == AUTH_PLAIN ? "334 \r\n" :
	    "334 VXNlcm5hbWU6\r\n");	/* "Username:" */
}

void
session_auth_done(struct session *s, enum session_auth result)
{
	if (s->st != ST_AUTH_WAIT)
		return;
	set_state(s, ST_CMD);
	switch (result) {
	case SESSION_AUTH_OK:
		snprintf(s->auth_user, sizeof(s->auth_user), "%s", s->auth_login);
		reply(s, 235, "2.7.0", "Authentication successful");
		slog(s, "event=auth-ok user=\"%s\"", s->auth_user);
		break;
	case SESSION_AUTH_FAIL:
		reply(s, 535, "5.7.8", "Authentication credentials invalid");
		slog(s, "event=auth-failed user=\"%s\"", s->auth_login);
		break;
	case SESSION_AUTH_LOCKED:
		slog(s, "event=auth-locked user=\"%s\"", s->auth_login);
		session_refuse(s, 421, "4.7.0", "Error: too many authentication failures from your address");
		break;
	case SESSION_AUTH_TEMPFAIL:
		reply(s, 454, "4.7.0", "Temporary authentication failure");
		break;
	}
	process(s);
}

static void
cmd_unimplemented(struct session *s, const struct smtp_cmd *c)
{
	reply(s, 502, "5.5.1", "Error: command not implemented");
}

static const struct {
	enum smtp_verb verb;
	void (*fn)(struct session *, const struct smtp_cmd *);
} commands[] = {
	{ SMTP_VERB_HELO, cmd_helo },	{ SMTP_VERB_EHLO, cmd_helo },
	{ SMTP_VERB_MAIL, cmd_mail },	{ SMTP_VERB_RCPT, cmd_rcpt },
	{ SMTP_VERB_DATA, cmd_data },	{ SMTP_VERB_BDAT, cmd_bdat },
	{ SMTP_VERB_RSET, cmd_rset },	{ SMTP_VERB_NOOP, cmd_noop },
	{ SMTP_VERB_QUIT, cmd_quit },	{ SMTP_VERB_VRFY, cmd_vrfy },
	{ SMTP_VERB_HELP, cmd_help },	{ SMTP_VERB_EXPN, cmd_unimplemented },
	{ SMTP_VERB_STARTTLS, cmd_starttls }, { SMTP_VERB_AUTH, cmd_auth },
};

static void
command(struct session *s, const char *line, size_t len)
{
	struct smtp_cmd c;
	size_t i;

	if (++s->stats.commands > s->cfg->limits.commands && s->cfg->limits.commands) {
		slog(s, "event=too-many-commands commands=%u", s->stats.commands);
		session_refuse(s, 421, "4.7.0", "Error: too many commands");
		return;
	}
	if (smtp_parse_cmd(line, len, &c) == -1) {
		reply(s, 500, "5.5.2", "Error: bad characters in command");
		return;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].verb == c.verb) {
			commands[i].fn(s, &c);
			return;
		}
	reply(s, 500, "5.5.2", "Error: command not recognized");
}

/* ---- the input loop ---- */

/* One command line from the input, or 0 if none is complete yet. */
static int
take_line(struct session *s)
{
	const char *p = s->inp + s->in_off;
	size_t avail = s->inlen - s->in_off;
	size_t max = s->cfg->limits.command_line;
	const char *lf = avail ? memchr(p, '\n', avail) : NULL;
	size_t len;

	if (s->st == ST_AUTH_LINE || (avail >= 5 && strncasecmp(p, "AUTH ", 5) == 0))
		max = max > AUTH_LINE_MAX ? max : AUTH_LINE_MAX;

	if (lf == NULL) {
		if (s->st == ST_SKIPLINE)
			s->in_off = s->inlen;	/* more of a line already refused */
		else if (avail >= max) {
			/* Over-long: answer now, drop the rest of the line (4.5.3.1.4). */
			reply(s, 500, "5.5.2", "Error: line too long");
			s->in_off = s->inlen;
			set_state(s, ST_SKIPLINE);
		}
		return 0;
	}
	len = (size_t)(lf - p);
	s->in_off += len + 1;
	if (s->st == ST_SKIPLINE) {
		s->st = ST_CMD;
		return 1;
	}
	if (len + 1 > max) {
		reply(s, 500, "5.5.2", "Error: line too long");
		return 1;
	}
	if (len > 0 && p[len - 1] == '\r')
		len--;
	if (s->st == ST_AUTH_LINE)
		auth_response(s, p, len);
	else
		command(s, p, len);
	return 1;
}

static void
feed_message(struct session *s)
{
	struct txn *t = &s->t;
	const char *p = s->inp + s->in_off;
	size_t avail = s->inlen - s->in_off, used;
	int done = 0;

	if (s->st == ST_DATA) {
		used = data_feed(s, p, avail, 1, &done);
		s->in_off += used;
		if (done)
			finish_message(s);
		return;
	}
	used = avail < t->bdat_left ? avail : (size_t)t->bdat_left;
	data_feed(s, p, used, 0, &done);
	s->in_off += used;
	t->bdat_left -= used;
	if (t->bdat_left > 0)
		return;
	if (t->bdat_last || t->err == DERR_SEQ) {
		if (t->ds == D_CR)
			data_fail(s, DERR_BARE, 0);
		finish_message(s);
		if (s->st == ST_BDAT)
			s->st = ST_CMD;
		return;
	}
	reply(s, 250, "2.0.0", "Ok: %" PRIu64 " octets received", t->bdat_chunk);
	s->st = ST_CMD;
}

static void
process(struct session *s)
{
	if (s->busy)
		return;
	s->busy = 1;
	if (s->inp == NULL) {
		s->inp = s->in.data;
		s->inlen = s->in.len;
		s->in_off = 0;
	}
	for (;;) {
		if (s->st == ST_CMD || s->st == ST_SKIPLINE || s->st == ST_AUTH_LINE) {
			if (!take_line(s))
				break;
		} else if (s->st == ST_DATA || s->st == ST_BDAT) {
			if (s->in_off == s->inlen && !(s->st == ST_BDAT && s->t.bdat_left == 0))
				break;
			feed_message(s);
		} else
			break;
	}
	/* What is left waits in `in` (copied there if it was the caller's). */
	if (s->inp == s->in.data)
		buf_consume(&s->in, s->in_off);
	else if (s->in_off < s->inlen && s->st != ST_CLOSE &&
	    buf_append(&s->in, s->inp + s->in_off, s->inlen - s->in_off) == -1)
		session_refuse(s, 421, "4.7.0", "Error: too much pipelined input");
	s->inp = NULL;
	s->inlen = 0;
	s->in_off = 0;
	if (s->shutting_down && s->st == ST_CMD && !s->t.active && s->in.len == 0) {
		session_refuse(s, 421, "4.3.2", "Service shutting down");
	}
	s->busy = 0;
}

void
session_input(struct session *s, const char *data, size_t len)
{
	if (s->st == ST_CLOSE)
		return;
	if (len && s->in.len == 0 && !s->busy) {
		/* Nothing held back: work on the caller's bytes where they are. */
		s->inp = data;
		s->inlen = len;
		s->in_off = 0;
	} else if (len && buf_append(&s->in, data, len) == -1) {
		/* Only a client ignoring our replies fills this: drop it. */
		session_refuse(s, 421, "4.7.0", "Error: too much pipelined input");
		return;
	}
	process(s);
}

/* ---- life cycle ---- */

struct session *
session_new(const struct config *cfg, const struct session_ops *ops, void *ctx,
    const char *client_ip, uint64_t sid)
{
	struct session *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->cfg = cfg;
	s->ops = ops;
	s->ctx = ctx;
	s->sid = sid;
	snprintf(s->ip, sizeof(s->ip), "%s", client_ip);
	buf_init(&s->in, SESSION_IN_MAX);
	buf_init(&s->out, SESSION_OUT_MAX);
	envelope_init(&s->t.env);
	buf_init(&s->t.wbuf, SESSION_WBUF);
	s->st = ST_CMD;
	return s;
}

void
session_free(struct session *s)
{
	if (s == NULL)
		return;
	txn_reset(s);
	envelope_free(&s->t.env);
	buf_free(&s->t.wbuf);
	buf_free(&s->in);
	buf_free(&s->out);
	free(s);
}

void
session_greet(struct session *s)
{
	buf_printf(&s->out, "220 %s ESMTP tern\r\n", s->cfg->hostname);
}

void
session_refuse(struct session *s, int code, const char *enh, const char *text)
{
	char line[512];

	/* Said before or outside EHLO too: these end the session, so be explicit. */
	snprintf(line, sizeof(line), "%d %s %s %s\r\n", code, enh, s->cfg->hostname, text);
	buf_appends(&s->out, line);
	s->st = ST_CLOSE;
}

void
session_hangup(struct session *s)
{
	if (s->t.active)
		slog(s, "event=lost stage=%s", s->st == ST_DATA || s->st == ST_BDAT ? "data" : "command");
	if (s->st == ST_WAIT_COMMIT)
		s->t.file_open = 0;	/* the queue commits it anyway */
	txn_reset(s);
	s->st = ST_CLOSE;
}

void
session_timeout(struct session *s)
{
	if (s->st == ST_WAIT_CHECK) {
		session_check_done(s, NULL);
		return;
	}
	if (s->st == ST_WAIT_COMMIT || s->st == ST_WAIT_OPEN) {
		/* A commit in progress completes in the queue; never abort it. */
		if (s->st == ST_WAIT_COMMIT)
			s->t.file_open = 0;
		reply_raw(s, 451, "4.3.0", "Error: queue timeout");
		s->st = ST_CLOSE;
		return;
	}
	slog(s, "event=timeout");
	session_refuse(s, 421, "4.4.2", "Error: timeout exceeded");
}

void
session_shutdown(struct session *s)
{
	s->shutting_down = 1;
	process(s);
}

void
session_set_listener(struct session *s, const struct listen_cfg *l, int trusted)
{
	s->submission = l->mode == LISTEN_SUBMISSION;
	s->listener = l;
	s->tls_mode = l->tls;
	s->trusted = trusted;
}

void
session_tls_started(struct session *s, const char *info)
{
	/* RFC 3207 4.2: everything learned before is forgotten; EHLO again. */
	snprintf(s->tls_info, sizeof(s->tls_info), "%s", info);
	s->tls_active = 1;
	s->helo_seen = 0;
	s->esmtp = 0;
	s->helo[0] = '\0';
	txn_reset(s);
	buf_reset(&s->in);
	s->in_off = 0;
	if (s->st == ST_TLS)
		s->st = ST_CMD;
	slog(s, "event=tls-started using=\"%s\"", info);
}

struct buf *
session_output(struct session *s)
{
	return &s->out;
}

enum session_wait
session_waiting(const struct session *s)
{
	switch (s->st) {
	case ST_DATA:
	case ST_BDAT:
		return SESSION_WAIT_DATA;
	case ST_WAIT_OPEN:
	case ST_WAIT_COMMIT:
		return SESSION_WAIT_QUEUE;
	case ST_CLOSE:
		return SESSION_WAIT_CLOSE;
	case ST_TLS:
		return SESSION_WAIT_TLS;
	case ST_AUTH_WAIT:
		return SESSION_WAIT_QUEUE;
	case ST_WAIT_CHECK:
		return SESSION_WAIT_CHECK;
	default:
		return SESSION_WAIT_COMMAND;
	}
}

size_t
session_pending_input(const struct session *s)
{
	return s->in.len;
}

uint64_t
session_id(const struct session *s)
{
	return s->sid;
}

int
session_idle(const struct session *s)
{
	return !s->t.active && (s->st == ST_CMD || s->st == ST_CLOSE);
}

void
session_trim(struct session *s)
{
	if (!session_idle(s) || s->busy)
		return;
	if (s->in.len == 0) {
		buf_free(&s->in);
		s->in_off = 0;
	}
	if (s->out.len == 0)
		buf_free(&s->out);
}

const struct session_stats *
session_stats(const struct session *s)
{
	return &s->stats;
}
