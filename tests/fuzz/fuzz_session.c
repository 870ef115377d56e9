/*
 * fuzz_session — one SMTP server session (src/server/session.c) driven by
 * arbitrary client bytes in arbitrary pieces, with a fake queue that
 * answers opens and commits now or later, with success or failure.
 *
 * Input: byte 0 chooses the queue's behaviour and the limits, byte 1
 * seeds the generator that cuts the rest into pieces and decides when a
 * pending answer is given; with its low bit set the session is on a
 * checked mx listener (ops->check) whose fake check process answers one of
 * four fixed results (bits 1-2: pass, SPF fail under spf_fail reject,
 * DMARC reject, DMARC quarantine) now or later, sometimes first with a
 * stale sequence number that must change nothing; the rest is what the
 * client sends.
 *
 * After every step: each reply line is "DDD" (200..599) then ' ' or '-',
 * printable, CRLF-ended, multi-line replies well formed and complete; the
 * output stays bounded; the ops contract holds (one file at a time, writes
 * only to the open file, commit and abort only of it); a commit follows an
 * end of data ("\r\n.\r\n" or a BDAT ... LAST command) seen in the input,
 * and the stored message holds no bare CR or LF. At the end every file
 * handed out was committed or given back, and everything is freed.
 * Checked: a request comes only for a whole message with its file open,
 * one at a time, numbered upwards, its header section within bounds;
 * forged Authentication-Results fields (authserv-id test.example) never
 * reach the stored message; an answer after the session ended (or timed
 * out the check) is ignored.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "daemon/config.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "mailauth/spf.h"
#include "queue/envelope.h"
#include "server/session.h"
#include "server/table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

#define OUT_BOUND   (256 * 1024)	/* session.c's SESSION_OUT_MAX */
#define IN_BOUND    (256 * 1024)
#define STORE_MAX   (8 * 1024 * 1024)

static const char conf_text[] =
    "hostname test.example\n"
    "listen 127.0.0.1:2525\n"
    "domain localhost { maildir mail/%d/%u }\n"
    "domain example.test { maildir mail/%d/%u }\n";

static const char users_text[] = "alice:{PLAIN}x\nbob:{PLAIN}y\n";

enum file_state { F_NONE, F_PENDING, F_OPEN, F_COMMITTING };

struct fz {
	struct session *s;
	uint32_t        rng;
	uint8_t         mode;
	enum file_state fstate;
	char            id[QUEUE_ID_LEN + 1];
	unsigned        next_id;
	int             commit_pending;
	int             open_err, commit_err, write_err;
	unsigned        writes;
	unsigned        opened, closed;	/* files handed out / committed or given back */
	unsigned        commits, ends;	/* commits / ends of data seen in the input */
	struct buf      stored;
	/* the fake check process */
	int             checked;	/* the session is on a checked listener */
	int             check_pending;
	uint32_t        check_seq;	/* of the last request */
	unsigned        verdict;	/* which fixed answer */
	/* Input scanner (scan_input). */
	size_t          dotmatch;	/* how much of "\r\n.\r\n" is matched */
	char            line[4];	/* last non-blank characters of the line */
	size_t          linelen;
	int             line_has_last, line_is_bdat;
	size_t          bdat_pos, last_pos;	/* partial matches */
};

static uint32_t
rnd(struct fz *z)
{
	/* xorshift32: deterministic for a given input. */
	z->rng ^= z->rng << 13;
	z->rng ^= z->rng >> 17;
	z->rng ^= z->rng << 5;
	return z->rng;
}

/* ---- the fake queue ---- */

static void
give_open(struct fz *z)
{
	CHECK(z->fstate == F_PENDING);
	if (z->open_err) {
		z->fstate = F_NONE;
		session_open_done(z->s, NULL, z->open_err);
		return;
	}
	snprintf(z->id, sizeof(z->id), "%016x", z->next_id++);
	z->fstate = F_OPEN;
	z->opened++;
	buf_reset(&z->stored);
	z->writes = 0;
	session_open_done(z->s, z->id, 0);
}

static void
give_commit(struct fz *z)
{
	CHECK(z->fstate == F_COMMITTING && z->commit_pending);
	z->commit_pending = 0;
	z->fstate = F_NONE;
	z->closed++;	/* committed, or dropped by the queue on failure */
	session_commit_done(z->s, z->commit_err);
}

static void
f_open(void *ctx, struct session *s)
{
	struct fz *z = ctx;

	CHECK(s == z->s);
	CHECK(z->fstate == F_NONE);
	z->fstate = F_PENDING;
	if (!(z->mode & 0x01))
		give_open(z);
}

static int
f_write(void *ctx, struct session *s, const char *p, size_t n)
{
	struct fz *z = ctx;

	CHECK(z->fstate == F_OPEN);
	CHECK(n > 0);
	z->writes++;
	if (z->write_err && z->writes > 2)
		return z->write_err;
	CHECK(buf_append(&z->stored, p, n) == 0);
	return 0;
}

/* RFC 5321 2.3.8: no CR without LF, no LF without CR. */
static void
check_stored(const struct buf *b)
{
	size_t i;

	CHECK(b->len >= 10 && memcmp(b->data, "Received: ", 10) == 0);
	for (i = 0; i < b->len; i++) {
		if (b->data[i] == '\r')
			CHECK(i + 1 < b->len && b->data[i + 1] == '\n');
		if (b->data[i] == '\n')
			CHECK(i > 0 && b->data[i - 1] == '\r');
	}
}

static void
f_commit(void *ctx, struct session *s, const char *id, const struct buf *env)
{
	struct fz *z = ctx;
	struct envelope e;
	const char *why;

	CHECK(z->fstate == F_OPEN);
	CHECK(strcmp(id, z->id) == 0);
	z->commits++;
	CHECK(z->commits <= z->ends);
	check_stored(&z->stored);
	CHECK(envelope_decode(env->data, env->len, &e, &why) == 0);
	CHECK(strcmp(e.id, id) == 0);
	CHECK(e.nrcpts > 0);
	envelope_free(&e);
	z->fstate = F_COMMITTING;
	z->commit_pending = 1;
	if (!(z->mode & 0x02))
		give_commit(z);
}

static void
f_abort(void *ctx, struct session *s, const char *id)
{
	struct fz *z = ctx;

	CHECK(id != NULL && strcmp(id, z->id) == 0);
	/* The queue ignores an abort of a file in a commit batch. */
	if (z->fstate == F_COMMITTING)
		return;
	CHECK(z->fstate == F_OPEN);
	z->fstate = F_NONE;
	z->closed++;
}

static void
f_log(void *ctx, struct session *s, const char *line)
{
	CHECK(line != NULL);
}

static const struct session_ops fz_ops = { f_open, f_write, f_commit, f_abort, f_log, NULL, NULL };

/* RFC 8601 5: a field claiming our authserv-id, as the message stored it. */
static int
has_our_authres(const struct buf *b)
{
	static const char f[] = "\r\nAuthentication-Results: test.example;";
	const char *end = b->len ? memmem(b->data, b->len, "\r\n\r\n", 4) : NULL;
	size_t hl = end ? (size_t)(end - b->data) + 2 : b->len;

	return hl > 0 && memmem(b->data, hl, f, sizeof(f) - 1) != NULL;
}

static void
f_check(void *ctx, struct session *s, const struct session_check *q)
{
	struct fz *z = ctx;

	CHECK(s == z->s && z->checked);
	CHECK(z->fstate == F_OPEN && !z->check_pending);
	CHECK(q->seq > z->check_seq);
	CHECK(q->nbody <= DKIM_MAX_SIGS);
	CHECK(q->hdr != NULL && q->hdrlen <= 2 * 1024 * 1024);
	CHECK(strcmp(q->ip, "192.0.2.1") == 0 && q->mailfrom != NULL && q->helo != NULL);
	z->check_seq = q->seq;
	z->check_pending = 1;
	/* The forged fields were left out of what was written. */
	CHECK(!has_our_authres(&z->stored));
}

static void
give_check(struct fz *z, uint32_t seq)
{
	static const char ar[] = "Authentication-Results: test.example;\r\n\tspf=pass\r\n";
	static const struct { uint32_t spf, dmarc, disposition; } v[4] = {
		{ SPF_PASS, DMARC_RESULT_PASS, DMARC_POLICY_NONE },
		{ SPF_FAIL, DMARC_RESULT_NONE, DMARC_POLICY_NONE },
		{ SPF_FAIL, DMARC_RESULT_FAIL, DMARC_POLICY_REJECT },
		{ SPF_PASS, DMARC_RESULT_FAIL, DMARC_POLICY_QUARANTINE },
	};
	struct session_check_answer a = { seq, v[z->verdict].spf, v[z->verdict].dmarc,
	    v[z->verdict].disposition, ar, sizeof(ar) - 1 };

	session_check_done(z->s, &a);
}

static const struct session_ops fz_check_ops = {
	f_open, f_write, f_commit, f_abort, f_log, NULL, NULL, f_check
};

/* ---- invariants on what the session says ---- */

/* Checks and drops the output: whole, well-formed replies only. */
static void
check_output(struct fz *z)
{
	struct buf *o = session_output(z->s);
	size_t i = 0;
	int cont = 0, code = 0;

	CHECK(o->len <= OUT_BOUND);
	CHECK(session_pending_input(z->s) <= IN_BOUND);
	while (i < o->len) {
		const char *l = o->data + i;
		const char *crlf = memmem(l, o->len - i, "\r\n", 2);
		size_t n, k;
		int c;

		CHECK(crlf != NULL);
		n = (size_t)(crlf - l);
		CHECK(n >= 4);
		CHECK(l[0] >= '2' && l[0] <= '5');
		CHECK(l[1] >= '0' && l[1] <= '9' && l[2] >= '0' && l[2] <= '9');
		CHECK(l[3] == ' ' || l[3] == '-');
		for (k = 4; k < n; k++)
			CHECK((unsigned char)l[k] >= 0x20 && l[k] != 0x7f);
		c = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
		if (cont)
			CHECK(c == code);	/* RFC 5321 4.2.1: one code per reply */
		code = c;
		cont = l[3] == '-';
		i += n + 2;
	}
	CHECK(!cont);	/* no reply left half-written */
	buf_consume(o, o->len);
}

/* Matches pattern pat (no self-overlap) one character at a time. */
static int
match_step(size_t *pos, const char *pat, size_t len, char c)
{
	c = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
	if (c == pat[*pos])
		(*pos)++;
	else
		*pos = c == pat[0] ? 1 : 0;
	if (*pos < len)
		return 0;
	*pos = 0;
	return 1;
}

/*
 * Counts ends of data in the client's bytes, an upper bound on commits:
 * every "\r\n.\r\n" (overlaps too), every line holding "BDAT " then
 * "LAST" (a chunk need not end with a line end, so anywhere in a line),
 * and ".\r\n" right after a line ending in "DATA" (the data starts at a
 * line start however the DATA command ended).
 */
static void
scan_input(struct fz *z, const uint8_t *p, size_t n)
{
	static const char end[] = "\r\n.\r\n";
	size_t i;

	for (i = 0; i < n; i++) {
		char c = (char)p[i];

		if (c == end[z->dotmatch])
			z->dotmatch++;
		else
			z->dotmatch = c == '\r' ? 1 : 0;
		if (z->dotmatch == 5) {
			z->ends++;
			z->dotmatch = 3;	/* "\r\n" may start the next one */
		}
		if (c == '\n') {
			if (z->line_is_bdat && z->line_has_last)
				z->ends++;
			if (z->linelen == 4 && strncasecmp(z->line, "DATA", 4) == 0)
				z->dotmatch = 2;
			z->linelen = 0;
			z->line_is_bdat = z->line_has_last = 0;
			z->bdat_pos = z->last_pos = 0;
			continue;
		}
		if (c != ' ' && c != '\t' && c != '\r') {
			/* The last four non-blank characters of the line. */
			if (z->linelen == 4)
				memmove(z->line, z->line + 1, 3);
			else
				z->linelen++;
			z->line[z->linelen - 1] = c;
		}
		if (match_step(&z->bdat_pos, "bdat ", 5, c))
			z->line_is_bdat = 1;
		if (z->line_is_bdat && match_step(&z->last_pos, "last", 4, c))
			z->line_has_last = 1;
	}
}

/* Gives pending answers now or leaves them for later, as the dice say. */
static void
answer_some(struct fz *z, int all)
{
	for (;;) {
		if (z->check_pending && rnd(z) % 5 == 0) {
			/* A stale answer (an earlier message's) changes nothing. */
			unsigned commits = z->commits;
			size_t out = session_output(z->s)->len;

			give_check(z, z->check_seq - 1);
			CHECK(z->commits == commits && session_output(z->s)->len == out);
			CHECK(session_waiting(z->s) == SESSION_WAIT_CHECK);
		}
		if (z->fstate == F_PENDING && (all || rnd(z) % 3 == 0))
			give_open(z);
		else if (z->check_pending && (all || rnd(z) % 3 == 0)) {
			z->check_pending = 0;
			give_check(z, z->check_seq);
		}
		else if (z->commit_pending && (all || rnd(z) % 3 == 0))
			give_commit(z);
		else
			break;
		check_output(z);
	}
}

static int
make_config(struct config *cfg, uint8_t mode)
{
	char err[256];

	if (config_parse(conf_text, sizeof(conf_text) - 1, "f.conf", "/etc/tern",
	    cfg, err, sizeof(err)) == -1)
		return -1;
	cfg->domains[0].users = table_parse_passwd(users_text, sizeof(users_text) - 1,
	    "users", err, sizeof(err));
	if (mode & 0x80) {
		/* Small limits, so that the fuzzer meets them. */
		cfg->limits.message_size = 300;
		cfg->limits.recipients = 3;
		cfg->limits.errors = 4;
		cfg->limits.text_line = 40;
		cfg->limits.command_line = 64;
	} else
		cfg->limits.message_size = 1 << 20;
	return 0;
}

static size_t
piece_size(struct fz *z, size_t left)
{
	uint32_t r = rnd(z) % 8;
	size_t n;

	if (r == 0)
		n = left;			/* everything at once */
	else if (r < 4)
		n = 1 + rnd(z) % 4;		/* tiny pieces */
	else
		n = 1 + rnd(z) % 64;
	return n < left ? n : left;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int errs[4] = { 0, 0, ENOSPC, EIO };
	struct config cfg;
	struct fz z;
	size_t i;

	if (size < 2)
		return 0;
	memset(&z, 0, sizeof(z));
	z.mode = data[0];
	z.rng = 0x9e3779b9u ^ ((uint32_t)data[1] << 8 | data[0]);
	z.open_err = errs[(z.mode >> 2) & 3];
	z.commit_err = errs[(z.mode >> 4) & 3];
	z.write_err = (z.mode & 0x40) && (z.mode & 0x30) == 0x30 ? ENOSPC : 0;
	z.next_id = 1;
	if (make_config(&cfg, z.mode) == -1)
		abort();
	buf_init(&z.stored, STORE_MAX);
	z.checked = data[1] & 0x01;
	z.verdict = (data[1] >> 1) & 0x03;
	if (z.verdict == 1)
		cfg.checks.spf_fail = CHECK_REJECT;
	z.s = session_new(&cfg, z.checked ? &fz_check_ops : &fz_ops, &z, "192.0.2.1", 1);
	CHECK(z.s != NULL);
	if (z.checked) {
		CHECK(cfg.nlisten == 1 && cfg.listen[0].mode == LISTEN_MX);
		session_set_listener(z.s, &cfg.listen[0], 0);
	}
	session_greet(z.s);
	check_output(&z);
	data += 2;
	size -= 2;
	for (i = 0; i < size;) {
		size_t n = piece_size(&z, size - i);

		scan_input(&z, data + i, n);
		session_input(z.s, (const char *)data + i, n);
		i += n;
		check_output(&z);
		answer_some(&z, 0);
		if (rnd(&z) % 512 == 0) {
			session_shutdown(z.s);
			check_output(&z);
		}
	}
	answer_some(&z, (z.mode & 0x03) == 0x03);
	if (z.check_pending && rnd(&z) % 2 == 0) {
		/* No answer in time: accepted with temperror; the answer comes late. */
		uint32_t stale = z.check_seq;
		unsigned commits;

		CHECK(session_waiting(z.s) == SESSION_WAIT_CHECK);
		z.check_pending = 0;
		session_timeout(z.s);	/* may go on to the next message's check */
		check_output(&z);
		commits = z.commits;
		give_check(&z, stale);
		CHECK(z.commits == commits);
		check_output(&z);
		answer_some(&z, 0);
	}
	/* The client goes (or times out first); late answers come after. */
	if (rnd(&z) % 4 == 0 && !z.check_pending) {
		session_timeout(z.s);
		CHECK(session_waiting(z.s) == SESSION_WAIT_CLOSE);
		check_output(&z);
	}
	session_hangup(z.s);
	CHECK(session_waiting(z.s) == SESSION_WAIT_CLOSE);
	if (z.check_pending) {
		/* After the session ended: ignored (a commit now would fail f_commit). */
		z.check_pending = 0;
		give_check(&z, z.check_seq);
		CHECK(session_waiting(z.s) == SESSION_WAIT_CLOSE);
	}
	if (z.fstate == F_COMMITTING) {
		/* The queue commits it anyway (or ignored an abort). */
		z.fstate = F_NONE;
		z.closed++;
		z.commit_pending = 0;
	}
	if (z.fstate == F_PENDING)
		give_open(&z);	/* handed out after the session ended */
	check_output(&z);
	CHECK(z.fstate == F_NONE);
	CHECK(z.opened == z.closed);
	session_free(z.s);
	buf_free(&z.stored);
	config_free(&cfg);
	return 0;
}
