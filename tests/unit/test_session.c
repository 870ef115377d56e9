/*
 * Unit tests for src/server/session.c: scripted SMTP dialogs against a
 * fake queue (session_ops) that records opens, written bytes, commits with
 * their envelope, and aborts, and answers now or later as a test asks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "daemon/config.h"
#include "mailauth/dmarc.h"
#include "mailauth/spf.h"
#include "queue/envelope.h"
#include "server/session.h"
#include "server/table.h"

#define BIG	(64u * 1024 * 1024)

static const char conf_text[] =
    "hostname test.example\n"
    "listen 127.0.0.1:2525\n"
    "limits { message_size 1M; recipients 100; errors 10; command_line 512; "
    "text_line 1000 }\n"
    "domain localhost { maildir mail/%d/%u }\n";

static const char users_text[] = "alice:{PLAIN}x\nbob:{PLAIN}y\n";

static const char ehlo_reply[] =
    "250-test.example\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 1048576\r\n"
    "250-8BITMIME\r\n"
    "250-SMTPUTF8\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-DSN\r\n"
    "250 CHUNKING\r\n";

static const char bare_reply[] =
    "550 5.6.0 Message contains bare CR or LF (RFC 5321 section 2.3.8)\r\n";

enum answer { ANS_NOW, ANS_LATER };

struct fake {
	struct config   cfg;
	struct session *s;
	enum answer     open_mode, commit_mode;
	int             open_err, commit_err;
	int             write_err;	/* returned by writes after the first `write_ok` */
	int             write_ok;
	int             opens, commits, aborts, writes;
	int             open_pending, commit_pending;
	unsigned        next_id;
	char            id[QUEUE_ID_LEN + 1];		/* last id handed out */
	char            aborted[QUEUE_ID_LEN + 1];	/* last id aborted */
	struct buf      stored;		/* bytes written since the last open */
	struct buf      msg;		/* stored bytes at the last commit */
	struct buf      env;		/* envelope text of the last commit */
	struct buf      log;		/* every committed message, date masked */
	struct buf      out;		/* replies taken by take() */
	char            exp[4096];	/* expand() result */
	/* the fake check process */
	int             checks;		/* requests seen */
	uint32_t        check_seq;	/* of the last request */
	char            check_from[256];
	struct buf      check_hdr;	/* header section of the last request */
};

/* ---- the fake queue ---- */

static void
answer_open(struct fake *f)
{
	f->open_pending = 0;
	if (f->open_err) {
		session_open_done(f->s, NULL, f->open_err);
		return;
	}
	snprintf(f->id, sizeof(f->id), "%016x", f->next_id++);
	session_open_done(f->s, f->id, 0);
}

static void
answer_commit(struct fake *f)
{
	f->commit_pending = 0;
	session_commit_done(f->s, f->commit_err);
}

static void
f_open(void *ctx, struct session *s)
{
	struct fake *f = ctx;

	assert_ptr_equal(s, f->s);
	assert_false(f->open_pending);
	f->opens++;
	buf_reset(&f->stored);
	if (f->open_mode == ANS_LATER)
		f->open_pending = 1;
	else
		answer_open(f);
}

static int
f_write(void *ctx, struct session *s, const char *p, size_t n)
{
	struct fake *f = ctx;

	f->writes++;
	if (f->write_err && f->writes > f->write_ok)
		return f->write_err;
	assert_int_equal(buf_append(&f->stored, p, n), 0);
	return 0;
}

/* Appends the stored message to f->log with the Received date replaced. */
static void
log_message(struct fake *f)
{
	const char *p = f->stored.data, *end = p + f->stored.len, *q, *semi = NULL;

	/* The Received header ends at the first CRLF not followed by a tab. */
	for (q = p; q + 2 < end; q++) {
		if (q[0] == ';' && q[1] == ' ')
			semi = q;
		if (q[0] == '\r' && q[1] == '\n' && q[2] != '\t')
			break;
	}
	assert_non_null(semi);
	buf_append(&f->log, p, (size_t)(semi - p));
	buf_appends(&f->log, "; DATE");
	buf_append(&f->log, q, (size_t)(end - q));
	buf_appends(&f->log, "<END>");
}

static void
f_commit(void *ctx, struct session *s, const char *id, const struct buf *env)
{
	struct fake *f = ctx;

	assert_string_equal(id, f->id);
	assert_false(f->commit_pending);
	f->commits++;
	buf_reset(&f->env);
	assert_int_equal(buf_append(&f->env, env->data, env->len), 0);
	buf_reset(&f->msg);
	assert_int_equal(buf_append(&f->msg, f->stored.data, f->stored.len), 0);
	log_message(f);
	if (f->commit_mode == ANS_LATER)
		f->commit_pending = 1;
	else
		answer_commit(f);
}

static void
f_abort(void *ctx, struct session *s, const char *id)
{
	struct fake *f = ctx;

	f->aborts++;
	snprintf(f->aborted, sizeof(f->aborted), "%s", id);
}

static void
f_log(void *ctx, struct session *s, const char *line)
{
	assert_non_null(line);
}

static const struct session_ops fake_ops = { f_open, f_write, f_commit, f_abort, f_log, NULL, NULL, NULL };

/* The check process: records the request; the test answers with session_check_done(). */
static void
f_check(void *ctx, struct session *s, const struct session_check *q)
{
	struct fake *f = ctx;

	assert_ptr_equal(s, f->s);
	f->checks++;
	f->check_seq = q->seq;
	snprintf(f->check_from, sizeof(f->check_from), "%s", q->mailfrom);
	buf_reset(&f->check_hdr);
	assert_int_equal(buf_append(&f->check_hdr, q->hdr, q->hdrlen), 0);
}

static const struct session_ops check_ops = {
	f_open, f_write, f_commit, f_abort, f_log, NULL, NULL, f_check
};

/* ---- fixture ---- */

static void
fake_start(struct fake *f)
{
	f->s = session_new(&f->cfg, &fake_ops, f, "192.0.2.1", 42);
	assert_non_null(f->s);
	f->opens = f->commits = f->aborts = f->writes = 0;
	f->open_pending = f->commit_pending = 0;
	f->next_id = 0xa1;
	f->id[0] = f->aborted[0] = '\0';
	buf_reset(&f->stored);
	buf_reset(&f->msg);
	buf_reset(&f->env);
	buf_reset(&f->log);
}

static void
fake_stop(struct fake *f)
{
	session_free(f->s);
	f->s = NULL;
}

static int
setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));
	char err[256];

	assert_non_null(f);
	if (config_parse(conf_text, strlen(conf_text), "t.conf", "/etc/tern",
	    &f->cfg, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	f->cfg.domains[0].users = table_parse_passwd(users_text, strlen(users_text),
	    "users", err, sizeof(err));
	assert_non_null(f->cfg.domains[0].users);
	buf_init(&f->stored, BIG);
	buf_init(&f->msg, BIG);
	buf_init(&f->env, BIG);
	buf_init(&f->log, BIG);
	buf_init(&f->out, BIG);
	buf_init(&f->check_hdr, BIG);
	fake_start(f);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fake *f = *state;

	fake_stop(f);
	config_free(&f->cfg);
	buf_free(&f->stored);
	buf_free(&f->msg);
	buf_free(&f->env);
	buf_free(&f->log);
	buf_free(&f->out);
	buf_free(&f->check_hdr);
	free(f);
	return 0;
}

/* ---- dialog helpers ---- */

/* The replies written since the last take(); NUL-terminated. */
static const char *
take(struct fake *f)
{
	struct buf *o = session_output(f->s);

	buf_reset(&f->out);
	assert_int_equal(buf_append(&f->out, o->data, o->len), 0);
	buf_consume(o, o->len);
	return f->out.data;
}

static const char *
sayn(struct fake *f, const char *in, size_t n)
{
	session_input(f->s, in, n);
	return take(f);
}

static const char *
say(struct fake *f, const char *in)
{
	return sayn(f, in, strlen(in));
}

/* Feeds in[0..n) in pieces of `piece` octets, as a worker reads; all replies. */
static const char *
feed(struct fake *f, const char *in, size_t n, size_t piece)
{
	struct buf *o = session_output(f->s);
	size_t i;

	buf_reset(&f->out);
	for (i = 0; i < n; i += piece) {
		session_input(f->s, in + i, n - i < piece ? n - i : piece);
		assert_int_equal(buf_append(&f->out, o->data, o->len), 0);
		buf_consume(o, o->len);
	}
	return f->out.data;
}

/* pat with every "@ID@" replaced by the last queue id. */
static const char *
expand(struct fake *f, const char *pat)
{
	size_t o = 0;

	while (*pat) {
		if (strncmp(pat, "@ID@", 4) == 0) {
			assert_true(o + QUEUE_ID_LEN < sizeof(f->exp));
			memcpy(f->exp + o, f->id, QUEUE_ID_LEN);
			o += QUEUE_ID_LEN;
			pat += 4;
		} else {
			assert_true(o + 1 < sizeof(f->exp));
			f->exp[o++] = *pat++;
		}
	}
	f->exp[o] = '\0';
	return f->exp;
}

/* Feeds in[0..n) and checks the replies against pat (see expand()). */
static void
expectn(struct fake *f, const char *in, size_t n, const char *pat)
{
	const char *got = sayn(f, in, n);

	if (strcmp(got, expand(f, pat)) != 0)
		fail_msg("got \"%s\"\nwant \"%s\"", got, f->exp);
}

static void
expect(struct fake *f, const char *in, const char *pat)
{
	expectn(f, in, strlen(in), pat);
}

struct step {
	const char *in;
	const char *out;	/* exact replies; "@ID@" is the last queue id */
};

static void
run(struct fake *f, const struct step *st)
{
	for (; st->in; st++) {
		const char *got = say(f, st->in);

		if (strcmp(got, expand(f, st->out)) != 0)
			fail_msg("input \"%s\"\n got \"%s\"\nwant \"%s\"", st->in, got,
			    expand(f, st->out));
	}
}

/* Greeting and EHLO. */
static void
hello(struct fake *f)
{
	session_greet(f->s);
	assert_string_equal(take(f), "220 test.example ESMTP tern\r\n");
	assert_string_equal(say(f, "EHLO client.example\r\n"), ehlo_reply);
}

static void
mail_rcpt(struct fake *f)
{
	hello(f);
	assert_string_equal(say(f, "MAIL FROM:<sender@example.org>\r\n"), "250 2.1.0 Ok\r\n");
	assert_string_equal(say(f, "RCPT TO:<alice@localhost>\r\n"), "250 2.1.5 Ok\r\n");
}

/*
 * The last committed message is the Received header (for this proto,
 * queue id and, when one recipient, "for <rcpt>") followed by body.
 */
static void
check_stored(struct fake *f, const char *proto, const char *rcpt, const char *body,
    size_t bodylen)
{
	char pre[512];
	const char *p = f->msg.data, *end = p + f->msg.len, *crlf;

	snprintf(pre, sizeof(pre), "Received: from client.example ([192.0.2.1])\r\n"
	    "\tby test.example (tern) with %s id %s%s%s%s", proto, f->id,
	    rcpt ? "\r\n\tfor <" : "; ", rcpt ? rcpt : "", rcpt ? ">; " : "");
	assert_true(f->msg.len > strlen(pre));
	if (memcmp(p, pre, strlen(pre)) != 0)
		fail_msg("stored starts \"%.*s\", want \"%s\"", (int)strlen(pre), p, pre);
	p += strlen(pre);
	crlf = memmem(p, (size_t)(end - p), "\r\n", 2);
	assert_non_null(crlf);
	assert_true(crlf - p >= 20);	/* "Mon, 1 Jan 2024 00:00:00 +0000" */
	assert_null(memchr(p, '\n', (size_t)(crlf - p)));
	p = crlf + 2;
	assert_int_equal((size_t)(end - p), bodylen);
	assert_memory_equal(p, body, bodylen);
}

/* Decodes the last envelope and checks the usual fields. */
static void
check_env(struct fake *f, struct envelope *e, const char *sender, const char *proto,
    size_t nrcpts, uint64_t size)
{
	const char *why = NULL;

	if (envelope_decode(f->env.data, f->env.len, e, &why) == -1)
		fail_msg("envelope_decode: %s", why);
	assert_string_equal(e->id, f->id);
	assert_string_equal(e->sender, sender);
	assert_string_equal(e->proto, proto);
	assert_string_equal(e->helo, "client.example");
	assert_string_equal(e->client_addr, "192.0.2.1");
	assert_int_equal(e->nrcpts, nrcpts);
	assert_int_equal(e->size, size);
}

/* ---- greeting, EHLO, HELO, sequence ---- */

static void
test_greeting(void **state)
{
	struct fake *f = *state;

	session_greet(f->s);
	assert_string_equal(take(f), "220 test.example ESMTP tern\r\n");
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_COMMAND);
	assert_true(session_idle(f->s));
	assert_int_equal(session_id(f->s), 42);
}

/*
 * Idle connections keep no buffer memory (issue 6: 10,000 of them), and
 * nothing is trimmed that a transaction or a pending reply still needs.
 */
static void
test_trim(void **state)
{
	struct fake *f = *state;
	struct buf *o = session_output(f->s);

	hello(f);
	assert_true(o->cap > 0);
	session_trim(f->s);
	assert_null(o->data);
	assert_int_equal(o->cap, 0);
	assert_int_equal(o->max, 256 * 1024);	/* still bounded */
	/* It grows again with the next command. */
	assert_string_equal(say(f, "MAIL FROM:<sender@example.org>\r\n"), "250 2.1.0 Ok\r\n");
	/* In a transaction nothing is given back. */
	session_trim(f->s);
	assert_non_null(o->data);
	assert_string_equal(say(f, "RCPT TO:<alice@localhost>\r\n"), "250 2.1.5 Ok\r\n");
	expect(f, "DATA\r\nhi\r\n.\r\n",
	    "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as @ID@\r\n");
	/* A reply not yet written is kept. */
	session_input(f->s, "NOOP\r\n", 6);
	session_trim(f->s);
	assert_string_equal(take(f), "250 2.0.0 Ok\r\n");
	session_trim(f->s);
	assert_null(o->data);
	assert_int_equal(f->commits, 1);
	assert_string_equal(say(f, "QUIT\r\n"), "221 2.0.0 Bye\r\n");
}

static void
test_ehlo(void **state)
{
	struct fake *f = *state;
	static const struct step st[] = {
		{ "EHLO\r\n", "501 Syntax: EHLO hostname\r\n" },
		{ "EHLO client.example\r\n", ehlo_reply },
		/* After EHLO every reply carries an enhanced code (RFC 2034). */
		{ "NOOP\r\n", "250 2.0.0 Ok\r\n" },
		{ "ehlo client.example\r\n", ehlo_reply },
		{ "QUIT\r\n", "221 2.0.0 Bye\r\n" },
		{ NULL, NULL },
	};

	session_greet(f->s);
	take(f);
	run(f, st);
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_CLOSE);
}

static void
test_helo_dialog(void **state)
{
	struct fake *f = *state;
	struct envelope e;
	static const char body[] = "Subject: helo\r\n\r\nhi\r\n";
	static const struct step st[] = {
		{ "MAIL FROM:<>\r\n", "503 Error: send HELO/EHLO first\r\n" },
		{ "HELO client.example\r\n", "250 test.example\r\n" },
		{ "MAIL FROM:<>\r\n", "250 Ok\r\n" },
		{ "RCPT TO:<nobody@localhost>\r\n",
		  "550 <nobody@localhost>: Recipient address rejected: User unknown\r\n" },
		{ "RCPT TO:<bob@localhost>\r\n", "250 Ok\r\n" },
		{ "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n" },
		{ "Subject: helo\r\n\r\nhi\r\n.\r\n", "250 Ok: queued as @ID@\r\n" },
		{ "BOGUS\r\n", "500 Error: command not recognized\r\n" },
		{ "QUIT\r\n", "221 Bye\r\n" },
		{ NULL, NULL },
	};

	run(f, st);
	check_stored(f, "SMTP", "bob@localhost", body, strlen(body));
	check_env(f, &e, "", "SMTP", 1, strlen(body));
	assert_string_equal(e.rcpts[0].addr, "bob@localhost");
	envelope_free(&e);
	assert_int_equal(session_stats(f->s)->messages, 1);
	assert_int_equal(session_stats(f->s)->errors, 3);
}

static void
test_sequence_errors(void **state)
{
	struct fake *f = *state;
	static const struct step st[] = {
		{ "RCPT TO:<alice@localhost>\r\n", "503 5.5.1 Error: need MAIL command\r\n" },
		{ "DATA\r\n", "503 5.5.1 Error: need MAIL command\r\n" },
		{ "MAIL FROM:<a@example.org>\r\n", "250 2.1.0 Ok\r\n" },
		{ "MAIL FROM:<a@example.org>\r\n", "503 5.5.1 Error: nested MAIL command\r\n" },
		{ "DATA\r\n", "503 5.5.1 Error: need RCPT command\r\n" },
		{ "VRFY alice\r\n", "252 2.5.0 Cannot VRFY user, but will accept message "
		  "and attempt delivery\r\n" },
		{ "EXPN staff\r\n", "502 5.5.1 Error: command not implemented\r\n" },
		{ "STARTTLS\r\n", "502 5.5.1 Error: command not implemented\r\n" },
		{ "RSET\r\n", "250 2.0.0 Ok\r\n" },
		{ "RCPT TO:<alice@localhost>\r\n", "503 5.5.1 Error: need MAIL command\r\n" },
		{ "MAIL FROM:a@example.org\r\n",
		  "501 5.5.4 Syntax: MAIL FROM:<address>: missing angle brackets\r\n" },
		{ "MAIL FROM:<a@@example.org>\r\n",
		  "501 5.1.7 Bad sender address syntax: malformed domain\r\n" },
		{ NULL, NULL },
	};

	hello(f);
	run(f, st);
	assert_int_equal(strncmp(say(f, "HELP\r\n"), "214 2.0.0 ", 10), 0);
	assert_int_equal(f->opens, 0);
}

/* ---- the happy path ---- */

static void
test_data_happy(void **state)
{
	struct fake *f = *state;
	struct envelope e;
	/* Dot-stuffing (RFC 5321 4.5.2) undone: one leading dot removed. */
	static const char in[] =
	    "From: <sender@example.org>\r\nSubject: hi\r\n\r\n"
	    "..dot\r\n...\r\nplain . text\r\n.x\r\n\r\nlast\r\n.\r\n";
	static const char body[] =
	    "From: <sender@example.org>\r\nSubject: hi\r\n\r\n"
	    ".dot\r\n..\r\nplain . text\r\nx\r\n\r\nlast\r\n";

	mail_rcpt(f);
	assert_string_equal(say(f, "DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
	assert_int_equal(f->opens, 1);
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_DATA);
	assert_false(session_idle(f->s));
	expect(f, in,
	    "250 2.0.0 Ok: queued as @ID@\r\n");
	assert_string_equal(f->id, "00000000000000a1");
	assert_int_equal(f->commits, 1);
	assert_int_equal(f->aborts, 0);
	assert_true(session_idle(f->s));
	check_stored(f, "ESMTP", "alice@localhost", body, strlen(body));
	/* The prefix the brief names, byte for byte. */
	assert_memory_equal(f->msg.data, "Received: from client.example ([192.0.2.1])\r\n"
	    "\tby test.example (tern) with ESMTP id ", 83);
	check_env(f, &e, "sender@example.org", "ESMTP", 1, strlen(body));
	assert_string_equal(e.rcpts[0].addr, "alice@localhost");
	assert_string_equal(e.rcpts[0].user, "alice");
	assert_string_equal(e.rcpts[0].domain, "localhost");
	assert_int_equal(e.rcpts[0].state, RCPT_PENDING);
	assert_int_equal(e.smtputf8, 0);
	envelope_free(&e);

	/* A second transaction in the same session, empty message, two recipients. */
	assert_string_equal(say(f, "MAIL FROM:<> BODY=8BITMIME\r\n"), "250 2.1.0 Ok\r\n");
	assert_string_equal(say(f, "RCPT TO:<Bob+tag@LOCALHOST>\r\n"), "250 2.1.5 Ok\r\n");
	assert_string_equal(say(f, "RCPT TO:<Postmaster>\r\n"), "250 2.1.5 Ok\r\n");
	expect(f, "DATA\r\n.\r\n",
	    "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as @ID@\r\n");
	assert_string_equal(f->id, "00000000000000a2");
	check_stored(f, "ESMTP", NULL, "", 0);
	check_env(f, &e, "", "ESMTP", 2, 0);
	assert_string_equal(e.rcpts[0].addr, "bob@localhost");
	assert_string_equal(e.rcpts[0].orig, "Bob+tag@LOCALHOST");
	assert_string_equal(e.rcpts[1].addr, "postmaster@localhost");
	assert_int_equal(e.body_8bit, 1);
	envelope_free(&e);
	assert_int_equal(session_stats(f->s)->messages, 2);
	assert_int_equal(session_stats(f->s)->rcpts, 3);
}

/* ---- pipelining (RFC 2920) ---- */

static const char pipe_in[] =
    "EHLO client.example\r\n"
    "MAIL FROM:<sender@example.org>\r\n"
    "RCPT TO:<alice@localhost>\r\n"
    "RCPT TO:<carol@localhost>\r\n"
    "RCPT TO:<bob@localhost>\r\n"
    "DATA\r\n"
    "Subject: p\r\n\r\n.. body\r\n.\r\n"
    "NOOP\r\n"
    "QUIT\r\n";

static const char pipe_first[] =
    "250 2.1.0 Ok\r\n"
    "250 2.1.5 Ok\r\n"
    "550 5.1.1 <carol@localhost>: Recipient address rejected: User unknown\r\n"
    "250 2.1.5 Ok\r\n";

static const char pipe_rest[] =
    "354 End data with <CR><LF>.<CR><LF>\r\n"
    "250 2.0.0 Ok: queued as @ID@\r\n"
    "250 2.0.0 Ok\r\n"
    "221 2.0.0 Bye\r\n";

static void
check_pipe_message(struct fake *f)
{
	struct envelope e;
	static const char body[] = "Subject: p\r\n\r\n. body\r\n";

	check_stored(f, "ESMTP", NULL, body, strlen(body));
	check_env(f, &e, "sender@example.org", "ESMTP", 2, strlen(body));
	assert_string_equal(e.rcpts[0].addr, "alice@localhost");
	assert_string_equal(e.rcpts[1].addr, "bob@localhost");
	envelope_free(&e);
}

static void
test_pipelining(void **state)
{
	struct fake *f = *state;
	char want[2048];

	snprintf(want, sizeof(want), "%s%s%s", ehlo_reply, pipe_first, pipe_rest);
	expect(f, pipe_in,
	    want);
	assert_int_equal(f->commits, 1);
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_CLOSE);
	check_pipe_message(f);
}

static void
test_pipelining_open_later(void **state)
{
	struct fake *f = *state;
	char want[2048];

	f->open_mode = ANS_LATER;
	f->commit_mode = ANS_LATER;
	snprintf(want, sizeof(want), "%s%s", ehlo_reply, pipe_first);
	/* Nothing after DATA is answered before the queue file is open. */
	assert_string_equal(say(f, pipe_in), want);
	assert_true(f->open_pending);
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_QUEUE);
	assert_true(session_pending_input(f->s) > 0);
	answer_open(f);
	assert_true(f->commit_pending);
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_QUEUE);
	assert_string_equal(take(f), "354 End data with <CR><LF>.<CR><LF>\r\n");
	answer_commit(f);
	assert_string_equal(take(f), expand(f, pipe_rest + 37));
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_CLOSE);
	check_pipe_message(f);
}

/* ---- the same transaction cut everywhere ---- */

static const char split_in[] =
    "EHLO client.example\r\n"
    "MAIL FROM:<sender@example.org> SIZE=100\r\n"
    "RCPT TO:<alice@localhost>\r\n"
    "DATA\r\n"
    "Subject: split\r\n\r\n..a\r\n.\r\r\n\r\n"	/* bare CR: rejected */
    ".\r\n"
    "MAIL FROM:<>\r\n"
    "RCPT TO:<bob@localhost>\r\n"
    "DATA\r\n"
    "Subject: two\r\n\r\n..\r\nb\r\n.\r\n"
    "MAIL FROM:<x@example.org>\r\n"
    "RCPT TO:<alice@localhost>\r\n"
    "BDAT 8\r\nA\r\n.\r\n\r\nBDAT 3 LAST\r\nB\r\n"
    "QUIT\r\n";

struct result {
	char   *out;
	char   *log;
	size_t  outlen, loglen;
	int     opens, commits, aborts;
};

static void
result_take(struct fake *f, struct result *r, struct buf *out)
{
	r->out = malloc(out->len + 1);
	r->log = malloc(f->log.len + 1);
	assert_non_null(r->out);
	assert_non_null(r->log);
	memcpy(r->out, out->data, out->len);
	memcpy(r->log, f->log.data, f->log.len);
	r->outlen = out->len;
	r->loglen = f->log.len;
	r->opens = f->opens;
	r->commits = f->commits;
	r->aborts = f->aborts;
}

static void
result_check(const struct result *want, const struct result *got, size_t cut)
{
	if (got->outlen != want->outlen || memcmp(got->out, want->out, got->outlen) != 0)
		fail_msg("cut %zu: replies differ:\n%.*s\nwant\n%.*s", cut,
		    (int)got->outlen, got->out, (int)want->outlen, want->out);
	if (got->loglen != want->loglen || memcmp(got->log, want->log, got->loglen) != 0)
		fail_msg("cut %zu: stored bytes differ:\n%.*s\nwant\n%.*s", cut,
		    (int)got->loglen, got->log, (int)want->loglen, want->log);
	assert_int_equal(got->opens, want->opens);
	assert_int_equal(got->commits, want->commits);
	assert_int_equal(got->aborts, want->aborts);
}

static void
result_free(struct result *r)
{
	free(r->out);
	free(r->log);
}

/*
 * Feeds split_in in pieces: cut > 0 gives two pieces cut there; cut == 0
 * gives one byte at a time. Answers a delayed open or commit after every
 * piece.
 */
static void
feed_split(struct fake *f, size_t cut, struct result *r)
{
	size_t len = strlen(split_in), i = 0;
	struct buf all;

	buf_init(&all, BIG);
	fake_start(f);
	while (i < len) {
		size_t n = cut == 0 ? 1 : (i == 0 ? cut : len - cut);
		struct buf *o;

		session_input(f->s, split_in + i, n);
		i += n;
		for (;;) {
			if (f->open_pending)
				answer_open(f);
			else if (f->commit_pending)
				answer_commit(f);
			else
				break;
		}
		o = session_output(f->s);
		buf_append(&all, o->data, o->len);
		buf_consume(o, o->len);
	}
	result_take(f, r, &all);
	buf_free(&all);
	fake_stop(f);
}

static void
split_all(struct fake *f)
{
	static const char msg2[] = "with ESMTP id 00000000000000a2\r\n\tfor <bob@localhost>"
	    "; DATE\r\nSubject: two\r\n\r\n.\r\nb\r\n<END>";
	static const char msg3[] = "with ESMTP id 00000000000000a3\r\n\tfor "
	    "<alice@localhost>; DATE\r\nA\r\n.\r\n\r\nB\r\n<END>";
	struct result want, got;
	size_t len = strlen(split_in), cut;

	feed_split(f, len, &want);
	assert_int_equal(want.opens, 3);
	assert_int_equal(want.commits, 2);
	assert_int_equal(want.aborts, 1);
	assert_non_null(memmem(want.out, want.outlen, bare_reply, strlen(bare_reply)));
	assert_non_null(memmem(want.log, want.loglen, msg2, strlen(msg2)));
	assert_non_null(memmem(want.log, want.loglen, msg3, strlen(msg3)));
	for (cut = 0; cut < len; cut++) {
		feed_split(f, cut, &got);
		result_check(&want, &got, cut);
		result_free(&got);
	}
	result_free(&want);
}

static void
test_split_everywhere(void **state)
{
	struct fake *f = *state;

	fake_stop(f);
	split_all(f);
	f->open_mode = f->commit_mode = ANS_LATER;
	split_all(f);
	fake_start(f);
}

/* ---- SMTP smuggling: only CRLF "." CRLF ends the data ---- */

static void
test_smuggling(void **state)
{
	struct fake *f = *state;
	static const char *const seqs[] = {
		"\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r.\r\n", "\r\n.\r",
		"\n.\r", ".\n", "\r\n.\r\r\n", "\r\n.\n\r\n",
	};
	size_t i;

	for (i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
		char in[512];

		fake_stop(f);
		fake_start(f);
		mail_rcpt(f);
		assert_string_equal(say(f, "DATA\r\n"),
		    "354 End data with <CR><LF>.<CR><LF>\r\n");
		/* ".\n" is meant at the start of a line: after a CRLF. */
		snprintf(in, sizeof(in), "Subject: s\r\n\r\nhello%s%s"
		    "MAIL FROM:<evil@example.org>\r\nRCPT TO:<bob@localhost>\r\n"
		    "DATA\r\nsmuggled\r\n", i == 7 ? "\r\n" : "", seqs[i]);
		if (strcmp(say(f, in), "") != 0)
			fail_msg("sequence %zu ended the data", i);
		assert_int_equal(f->commits, 0);
		assert_string_equal(say(f, ".\r\n"), bare_reply);
		assert_int_equal(f->commits, 0);
		assert_int_equal(f->aborts, 1);
		assert_string_equal(f->aborted, f->id);
		assert_string_equal(say(f, "RCPT TO:<bob@localhost>\r\nNOOP\r\n"),
		    "503 5.5.1 Error: need MAIL command\r\n250 2.0.0 Ok\r\n");
	}
}

/* ---- CHUNKING (RFC 3030) ---- */

static void
test_bdat(void **state)
{
	struct fake *f = *state;
	/* Stored raw: no dot-unstuffing, "." lines end nothing. */
	static const char body[] = "Subject: b\r\n..dot\r\n.\r\n";
	static const struct step st[] = {
		{ "BDAT 12\r\nSubject: b\r\n", "250 2.0.0 Ok: 12 octets received\r\n" },
		{ "BDAT 7\r\n..dot\r\n", "250 2.0.0 Ok: 7 octets received\r\n" },
		{ "DATA\r\n", "503 5.5.1 Error: DATA after BDAT\r\n" },
		{ "BDAT 3\r\n.\r\nNOOP\r\n",
		  "250 2.0.0 Ok: 3 octets received\r\n250 2.0.0 Ok\r\n" },
		{ "BDAT 0 LAST\r\n", "250 2.0.0 Ok: queued as @ID@\r\n" },
		{ NULL, NULL },
	};
	struct envelope e;

	mail_rcpt(f);
	run(f, st);
	assert_int_equal(f->opens, 1);
	assert_int_equal(f->commits, 1);
	check_stored(f, "ESMTP", "alice@localhost", body, strlen(body));
	check_env(f, &e, "sender@example.org", "ESMTP", 1, strlen(body));
	envelope_free(&e);

	/* BDAT 0 LAST alone: an empty message. */
	expect(f, "MAIL FROM:<>\r\nRCPT TO:<bob@localhost>\r\n"
	    "BDAT 0 LAST\r\nNOOP\r\n",
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	    "250 2.0.0 Ok: queued as @ID@\r\n250 2.0.0 Ok\r\n");
	assert_int_equal(f->commits, 2);
	check_stored(f, "ESMTP", "bob@localhost", "", 0);

	/* One chunk with LAST, the next command in the same read. */
	expect(f, "MAIL FROM:<>\r\nRCPT TO:<bob@localhost>\r\n"
	    "BDAT 5 LAST\r\nhey\r\nQUIT\r\n",
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	    "250 2.0.0 Ok: queued as @ID@\r\n221 2.0.0 Bye\r\n");
	check_stored(f, "ESMTP", "bob@localhost", "hey\r\n", 5);
	assert_int_equal(f->aborts, 0);
}

static void
test_bdat_errors(void **state)
{
	struct fake *f = *state;

	hello(f);
	/* Without a transaction the chunk is read, then refused. */
	assert_string_equal(say(f, "BDAT 3 LAST\r\nabcNOOP\r\n"),
	    "503 5.5.1 Error: need RCPT command\r\n250 2.0.0 Ok\r\n");
	assert_int_equal(f->opens, 0);
	/* A bare LF in a chunk: refused at LAST, nothing committed. */
	assert_string_equal(say(f, "MAIL FROM:<>\r\nRCPT TO:<bob@localhost>\r\n"
	    "BDAT 4\r\na\nb\n"), "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	    "250 2.0.0 Ok: 4 octets received\r\n");
	assert_string_equal(say(f, "BDAT 1 LAST\r\nx"), bare_reply);
	assert_int_equal(f->commits, 0);
	assert_int_equal(f->aborts, 1);
	/* A CR ending the last chunk is bare too. */
	assert_string_equal(say(f, "MAIL FROM:<>\r\nRCPT TO:<bob@localhost>\r\n"
	    "BDAT 3 LAST\r\nab\r"), "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.6.0 Message "
	    "contains bare CR or LF (RFC 5321 section 2.3.8)\r\n");
	assert_int_equal(f->aborts, 2);
	/* CRLF split across two chunks is fine. */
	expect(f, "MAIL FROM:<>\r\nRCPT TO:<bob@localhost>\r\n"
	    "BDAT 2\r\na\rBDAT 1 LAST\r\n\n",
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	    "250 2.0.0 Ok: 2 octets received\r\n250 2.0.0 Ok: queued as @ID@\r\n");
	check_stored(f, "ESMTP", "bob@localhost", "a\r\n", 3);
	/* A size we cannot read means we cannot find the next command. */
	assert_string_equal(say(f, "BDAT x\r\n"), "501 5.5.4 Syntax: BDAT size [LAST]\r\n");
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_CLOSE);
}

/* ---- limits ---- */

static void
test_size(void **state)
{
	struct fake *f = *state;
	char body[512];

	hello(f);
	assert_string_equal(say(f, "MAIL FROM:<a@example.org> SIZE=1048577\r\n"),
	    "552 5.3.4 Message size exceeds fixed limit\r\n");
	assert_string_equal(say(f, "MAIL FROM:<a@example.org> SIZE=1048576\r\n"),
	    "250 2.1.0 Ok\r\n");
	assert_string_equal(say(f, "RSET\r\n"), "250 2.0.0 Ok\r\n");

	/* Exactly at the limit passes, one octet more fails after the data. */
	f->cfg.limits.message_size = 100;
	memset(body, 'x', 98);
	memcpy(body + 98, "\r\n.\r\n", 6);
	assert_string_equal(say(f, "MAIL FROM:<>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n"),
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
	expect(f, body,
	    "250 2.0.0 Ok: queued as @ID@\r\n");
	assert_int_equal(f->commits, 1);
	memset(body, 'x', 99);
	memcpy(body + 99, "\r\n.\r\n", 6);
	assert_string_equal(say(f, "MAIL FROM:<>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n"),
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
	assert_string_equal(say(f, body), "552 5.3.4 Message size exceeds fixed limit\r\n");
	assert_int_equal(f->commits, 1);
	assert_int_equal(f->aborts, 1);
	/* Same over BDAT: the chunks are read, the refusal comes at LAST. */
	memset(body, 'y', 101);
	assert_string_equal(say(f, "MAIL FROM:<>\r\nRCPT TO:<bob@localhost>\r\nBDAT 101\r\n"),
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
	assert_string_equal(sayn(f, body, 101), "250 2.0.0 Ok: 101 octets received\r\n");
	assert_string_equal(say(f, "BDAT 0 LAST\r\n"),
	    "552 5.3.4 Message size exceeds fixed limit\r\n");
	assert_int_equal(f->commits, 1);
	assert_int_equal(f->aborts, 2);
	assert_true(session_idle(f->s));
}

static void
test_size_large(void **state)
{
	struct fake *f = *state;
	size_t n = (1u << 20) + 4096, i;
	char *big = malloc(n + 8);

	/* 1 MiB and a bit in 64-octet lines: refused, nothing committed. */
	assert_non_null(big);
	for (i = 0; i + 64 <= n; i += 64) {
		memset(big + i, 'z', 62);
		memcpy(big + i + 62, "\r\n", 2);
	}
	memcpy(big + i, ".\r\n", 4);
	mail_rcpt(f);
	say(f, "DATA\r\n");
	assert_string_equal(feed(f, big, i + 3, 16384),
	    "552 5.3.4 Message size exceeds fixed limit\r\n");
	assert_int_equal(f->commits, 0);
	assert_int_equal(f->aborts, 1);
	/* Under the limit the big message is stored whole. */
	say(f, "MAIL FROM:<>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n");
	assert_string_equal(feed(f, big + 8192, i + 3 - 8192, 16384),
	    expand(f, "250 2.0.0 Ok: queued as @ID@\r\n"));
	check_stored(f, "ESMTP", "bob@localhost", big + 8192, i - 8192);
	free(big);
}

/*
 * However the data is cut into reads, the stored message and the replies
 * are the same: the scanner takes whole runs of lines at once (issue 6)
 * and must stop at a stuffed dot, a bare CR or LF, a long line and the
 * end of a read.
 */
static void
test_data_pieces(void **state)
{
	static const size_t pieces[] = { 1, 2, 3, 5, 13, 64, 1 << 20 };
	struct fake *f = *state;
	char wire[2400], want[2400], bad[1200];
	size_t nw = 0, nb = 0, i;

#define ADD(w, b) do {							\
		memcpy(wire + nw, w, strlen(w)); nw += strlen(w);	\
		memcpy(want + nb, b, strlen(b)); nb += strlen(b);	\
	} while (0)
	ADD("Subject: pieces\r\n\r\n", "Subject: pieces\r\n\r\n");
	ADD("..dot\r\n", ".dot\r\n");
	ADD("\r\n", "\r\n");
	ADD("...\r\n", "..\r\n");
	memset(wire + nw, 'a', 998);	/* the longest line allowed: 1000 with CRLF */
	memset(want + nb, 'a', 998);
	nw += 998;
	nb += 998;
	ADD("\r\n..\r\n", "\r\n.\r\n");
	ADD("x.\r\n", "x.\r\n");
#undef ADD
	f->cfg.limits.errors = 0;	/* 14 refused messages below */
	memcpy(wire + nw, ".\r\n", 3);
	nw += 3;
	hello(f);
	for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		say(f, "MAIL FROM:<>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n");
		assert_string_equal(feed(f, wire, nw, pieces[i]),
		    expand(f, "250 2.0.0 Ok: queued as @ID@\r\n"));
		check_stored(f, "ESMTP", "bob@localhost", want, nb);
	}
	assert_int_equal(f->commits, (int)i);
	/* A line of 1001 octets then a bare LF: the first error is the one told. */
	memset(bad, 'b', 999);
	memcpy(bad + 999, "\r\nx\ny\r\n.\r\n", 10);
	nb = 999 + 10;
	for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		assert_string_equal(say(f, "MAIL FROM:<>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n"),
		    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
		assert_string_equal(feed(f, bad, nb, pieces[i]),
		    "550 5.6.0 Message contains a line longer than 1000 octets\r\n");
	}
	/* The other way round. */
	memcpy(bad, "x\ny\r\n", 5);
	memset(bad + 5, 'b', 999);
	memcpy(bad + 1004, "\r\n.\r\n", 5);
	nb = 1009;
	for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		say(f, "MAIL FROM:<>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n");
		assert_string_equal(feed(f, bad, nb, pieces[i]),
		    "550 5.6.0 Message contains bare CR or LF (RFC 5321 section 2.3.8)\r\n");
	}
	assert_int_equal(f->commits, 7);
}

static void
data_line(struct fake *f, char lead, size_t n, const char *want)
{
	char line[1200];
	size_t o = 0;

	if (lead)
		line[o++] = lead;
	memset(line + o, 'a', n);
	memcpy(line + o + n, "\r\n.\r\n", 6);
	assert_string_equal(say(f, "MAIL FROM:<>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n"),
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
	expect(f, line, want);
}

static void
test_line_length(void **state)
{
	struct fake *f = *state;
	static const char longline[] =
	    "550 5.6.0 Message contains a line longer than 1000 octets\r\n";
	static const char queued[] = "250 2.0.0 Ok: queued as @ID@\r\n";
	char body[1000];

	memset(body, 'a', 998);
	memcpy(body + 998, "\r\n", 2);
	hello(f);
	/* 998 octets + CRLF = 1000: fine (RFC 5321 4.5.3.1.6). */
	data_line(f, 0, 998, queued);
	assert_int_equal(f->commits, 1);
	check_stored(f, "ESMTP", "bob@localhost", body, 1000);
	/* 1001 octets: refused after the data, nothing stored. */
	data_line(f, 0, 999, longline);
	assert_int_equal(f->commits, 1);
	assert_int_equal(f->aborts, 1);
	/* The dot added for transparency does not count (4.5.3.1.6). */
	data_line(f, '.', 998, queued);
	assert_int_equal(f->commits, 2);
	check_stored(f, "ESMTP", "bob@localhost", body, 1000);
	data_line(f, '.', 999, longline);
	assert_int_equal(f->commits, 2);
	assert_int_equal(f->aborts, 2);
}

static void
test_recipients(void **state)
{
	struct fake *f = *state;
	struct envelope e;
	char cmd[128];
	int i;

	hello(f);
	assert_string_equal(say(f, "MAIL FROM:<a@example.org>\r\n"), "250 2.1.0 Ok\r\n");
	for (i = 0; i < 100; i++) {
		snprintf(cmd, sizeof(cmd), "RCPT TO:<%s+%d@localhost>\r\n",
		    i % 2 ? "alice" : "bob", i);
		assert_string_equal(say(f, cmd), "250 2.1.5 Ok\r\n");
	}
	assert_string_equal(say(f, "RCPT TO:<alice@localhost>\r\n"),
	    "452 4.5.3 Error: too many recipients\r\n");
	expect(f, "DATA\r\nx\r\n.\r\n",
	    "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as @ID@\r\n");
	/* Each mailbox once per message, in the order first seen. */
	check_env(f, &e, "a@example.org", "ESMTP", 2, 3);
	assert_string_equal(e.rcpts[0].addr, "bob@localhost");
	assert_string_equal(e.rcpts[1].addr, "alice@localhost");
	envelope_free(&e);
	check_stored(f, "ESMTP", NULL, "x\r\n", 3);
	assert_int_equal(session_stats(f->s)->rcpts, 100);
}

static void
test_rcpt_refusals(void **state)
{
	struct fake *f = *state;
	static const struct step st[] = {
		{ "MAIL FROM:<a@example.org>\r\n", "250 2.1.0 Ok\r\n" },
		{ "RCPT TO:<x@example.org>\r\n",
		  "554 5.7.1 <x@example.org>: Relay access denied\r\n" },
		{ "RCPT TO:<carol@localhost>\r\n",
		  "550 5.1.1 <carol@localhost>: Recipient address rejected: User unknown\r\n" },
		{ "RCPT TO:<POSTMASTER@LocalHost>\r\n", "250 2.1.5 Ok\r\n" },
		{ "RCPT TO:<bob@localhost> XFOO=1\r\n", "555 5.5.4 Unsupported option: XFOO\r\n" },
		{ "RCPT TO:<bob@localhost> NOTIFY=NEVER,SUCCESS\r\n", "501 5.5.4 Syntax: bad NOTIFY value\r\n" },
		{ "RCPT TO:<bob@localhost> ORCPT=rfc822\r\n", "501 5.5.4 Syntax: bad ORCPT value\r\n" },
		{ "MAIL FROM:<b@example.org>\r\n", "503 5.5.1 Error: nested MAIL command\r\n" },
		{ NULL, NULL },
	};
	const char *got;

	hello(f);
	run(f, st);
	got = say(f, "RCPT TO:<a@@localhost>\r\n");
	assert_string_equal(got, "501 5.1.3 Bad recipient address syntax: malformed domain\r\n");
	got = say(f, "MAIL FROM:<a@example.org> FOO=BAR\r\n");
	assert_true(strncmp(got, "503 5.5.1", 9) == 0);
	assert_string_equal(say(f, "RSET\r\nMAIL FROM:<a@example.org> FOO=BAR\r\n"),
	    "250 2.0.0 Ok\r\n555 5.5.4 Unsupported option: FOO\r\n");
}

static void
test_errors_limit(void **state)
{
	struct fake *f = *state;
	struct buf in, want;
	int i;

	buf_init(&in, BIG);
	buf_init(&want, BIG);
	for (i = 0; i < 12; i++)
		buf_appends(&in, i == 10 ? "NOOP\r\n" : "BOGUS\r\n");
	for (i = 0; i < 10; i++)
		buf_appends(&want, "500 5.5.2 Error: command not recognized\r\n");
	buf_appends(&want, "421 4.7.0 test.example Error: too many errors\r\n");
	hello(f);
	assert_string_equal(say(f, in.data), want.data);
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_CLOSE);
	assert_string_equal(say(f, "NOOP\r\n"), "");
	assert_int_equal(session_stats(f->s)->errors, 10);
	buf_free(&in);
	buf_free(&want);
}

/* The error that reaches the limit may be the end of a message. */
static void
test_errors_limit_data(void **state)
{
	struct fake *f = *state;
	int i;

	hello(f);
	for (i = 0; i < 9; i++)
		say(f, "BOGUS\r\n");
	assert_string_equal(say(f, "MAIL FROM:<>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n"),
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
	assert_string_equal(say(f, "a\nb\r\n.\r\nNOOP\r\n"),
	    "550 5.6.0 Message contains bare CR or LF (RFC 5321 section 2.3.8)\r\n"
	    "421 4.7.0 test.example Error: too many errors\r\n");
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_CLOSE);
	assert_int_equal(f->aborts, 1);
	assert_string_equal(say(f, "NOOP\r\n"), "");
}

static void
test_command_line(void **state)
{
	struct fake *f = *state;
	char line[2100];
	struct buf all;
	size_t i;

	hello(f);
	/* 512 octets with CRLF: fine (RFC 5321 4.5.3.1.4). */
	memcpy(line, "NOOP ", 5);
	memset(line + 5, 'a', 505);
	memcpy(line + 510, "\r\n", 3);
	assert_string_equal(say(f, line), "250 2.0.0 Ok\r\n");
	/* 513 octets: refused, the session goes on. */
	memset(line + 5, 'a', 506);
	memcpy(line + 511, "\r\nNOOP\r\n", 9);
	assert_string_equal(say(f, line),
	    "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n");
	/* A very long line arriving in pieces is refused once. */
	memset(line, 'b', 2000);
	buf_init(&all, BIG);
	for (i = 0; i < 2000; i += 600)
		buf_appends(&all, sayn(f, line + i, 2000 - i < 600 ? 2000 - i : 600));
	buf_appends(&all, say(f, "\r\nRSET\r\n"));
	assert_string_equal(all.data, "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n");
	buf_reset(&all);
	for (i = 0; i < 2000; i += 250)
		buf_appends(&all, sayn(f, line + i, 250));
	buf_appends(&all, say(f, "\r\nNOOP\r\n"));
	assert_string_equal(all.data, "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n");
	buf_free(&all);
	assert_int_equal(session_stats(f->s)->errors, 3);
}

/* ---- the queue fails ---- */

static void
test_commit_fails(void **state)
{
	struct fake *f = *state;

	mail_rcpt(f);
	f->commit_err = ENOSPC;
	assert_string_equal(say(f, "DATA\r\nx\r\n.\r\n"),
	    "354 End data with <CR><LF>.<CR><LF>\r\n452 4.3.1 Insufficient system storage\r\n");
	assert_int_equal(f->commits, 1);
	assert_int_equal(f->aborts, 0);	/* the queue dropped it itself */
	assert_true(session_idle(f->s));
	f->commit_err = EIO;
	f->commit_mode = ANS_LATER;
	assert_string_equal(say(f, "MAIL FROM:<>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n"
	    "x\r\n.\r\nNOOP\r\n"), "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	    "354 End data with <CR><LF>.<CR><LF>\r\n");
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_QUEUE);
	answer_commit(f);
	assert_string_equal(take(f), "451 4.3.0 Error: queue write error\r\n250 2.0.0 Ok\r\n");
	assert_int_equal(session_stats(f->s)->messages, 0);
}

static void
test_open_fails(void **state)
{
	struct fake *f = *state;

	mail_rcpt(f);
	f->open_err = ENOSPC;
	assert_string_equal(say(f, "DATA\r\n"), "452 4.3.1 Insufficient system storage\r\n");
	/* The transaction is gone. */
	assert_string_equal(say(f, "RCPT TO:<bob@localhost>\r\n"),
	    "503 5.5.1 Error: need MAIL command\r\n");
	f->open_err = EIO;
	f->open_mode = ANS_LATER;
	assert_string_equal(say(f, "MAIL FROM:<>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n"),
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
	answer_open(f);
	assert_string_equal(take(f), "451 4.3.0 Error: queue write error\r\n");
	/* BDAT: the chunk is read, then refused. */
	assert_string_equal(say(f, "MAIL FROM:<>\r\nRCPT TO:<bob@localhost>\r\n"
	    "BDAT 3 LAST\r\nabcNOOP\r\n"), "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
	answer_open(f);
	assert_string_equal(take(f), "451 4.3.0 Error: queue write error\r\n250 2.0.0 Ok\r\n");
	assert_int_equal(f->commits, 0);
	assert_int_equal(f->aborts, 0);
	assert_int_equal(f->opens, 3);
}

static void
test_write_fails(void **state)
{
	struct fake *f = *state;

	mail_rcpt(f);
	f->write_err = ENOSPC;
	f->write_ok = 1;	/* the Received header */
	assert_string_equal(say(f, "DATA\r\nx\r\n.\r\n"),
	    "354 End data with <CR><LF>.<CR><LF>\r\n452 4.3.1 Insufficient system storage\r\n");
	assert_int_equal(f->commits, 0);
	assert_int_equal(f->aborts, 1);
	f->write_err = EIO;
	f->write_ok = 0;
	assert_string_equal(say(f, "MAIL FROM:<>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n"),
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n451 4.3.0 Error: queue write error\r\n");
	assert_int_equal(f->commits, 0);
	assert_int_equal(f->aborts, 2);
}

/* ---- the session ends ---- */

static void
test_hangup(void **state)
{
	struct fake *f = *state;

	mail_rcpt(f);
	assert_string_equal(say(f, "DATA\r\nSubject: cut\r\n\r\nhalf a me"),
	    "354 End data with <CR><LF>.<CR><LF>\r\n");
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_DATA);
	session_hangup(f->s);
	assert_int_equal(f->aborts, 1);
	assert_string_equal(f->aborted, f->id);
	assert_int_equal(f->commits, 0);
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_CLOSE);
	assert_string_equal(say(f, "\r\n.\r\n"), "");
	assert_int_equal(f->commits, 0);
}

/* A queue file that arrives after the client left is given back. */
static void
test_hangup_open_pending(void **state)
{
	struct fake *f = *state;

	mail_rcpt(f);
	f->open_mode = ANS_LATER;
	assert_string_equal(say(f, "DATA\r\n"), "");
	session_hangup(f->s);
	assert_int_equal(f->aborts, 0);
	answer_open(f);
	assert_int_equal(f->aborts, 1);
	assert_string_equal(f->aborted, "00000000000000a1");
	assert_string_equal(take(f), "");
	assert_int_equal(f->writes, 0);
}

static void
test_shutdown(void **state)
{
	struct fake *f = *state;

	hello(f);
	session_shutdown(f->s);
	assert_string_equal(take(f), "421 4.3.2 test.example Service shutting down\r\n");
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_CLOSE);
}

/* A transaction under way is let finish first. */
static void
test_shutdown_busy(void **state)
{
	struct fake *f = *state;

	mail_rcpt(f);
	session_shutdown(f->s);
	assert_string_equal(take(f), "");
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_COMMAND);
	expect(f, "RCPT TO:<bob@localhost>\r\nDATA\r\nx\r\n.\r\n",
	    "250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
	    "250 2.0.0 Ok: queued as @ID@\r\n"
	    "421 4.3.2 test.example Service shutting down\r\n");
	assert_int_equal(f->commits, 1);
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_CLOSE);
}

static void
test_shutdown_helo(void **state)
{
	struct fake *f = *state;

	session_greet(f->s);
	take(f);
	assert_string_equal(say(f, "HELO client.example\r\n"), "250 test.example\r\n");
	session_shutdown(f->s);
	/* Replies that end the session carry the enhanced code even after HELO. */
	assert_string_equal(take(f), "421 4.3.2 test.example Service shutting down\r\n");
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_CLOSE);
}

static void
test_timeout(void **state)
{
	struct fake *f = *state;

	hello(f);
	session_timeout(f->s);
	assert_string_equal(take(f), "421 4.4.2 test.example Error: timeout exceeded\r\n");
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_CLOSE);
	assert_string_equal(say(f, "NOOP\r\n"), "");
}

static void
test_refuse(void **state)
{
	struct fake *f = *state;

	session_refuse(f->s, 554, "5.5.0", "Error: talked before the greeting");
	assert_string_equal(take(f),
	    "554 5.5.0 test.example Error: talked before the greeting\r\n");
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_CLOSE);
}

/* ---- SMTPUTF8 (RFC 6531) ---- */

static void
test_smtputf8(void **state)
{
	struct fake *f = *state;
	struct envelope e;
	static const struct step st[] = {
		{ "MAIL FROM:<j\xc3\xb6rg@example.org>\r\n",
		  "553 5.6.7 Non-ASCII sender address needs SMTPUTF8\r\n" },
		{ "MAIL FROM:<a@example.org>\r\n", "250 2.1.0 Ok\r\n" },
		{ "RCPT TO:<b\xc3\xb6" "b@localhost>\r\n",
		  "553 5.6.7 Non-ASCII recipient address needs SMTPUTF8\r\n" },
		{ "RSET\r\n", "250 2.0.0 Ok\r\n" },
		{ "MAIL FROM:<j\xc3\xb6rg@example.org> SMTPUTF8 BODY=8BITMIME\r\n",
		  "250 2.1.0 Ok\r\n" },
		{ "RCPT TO:<alice@localhost>\r\n", "250 2.1.5 Ok\r\n" },
		{ "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n" },
		{ "Subject: \xc3\xa9t\xc3\xa9\r\n.\r\n", "250 2.0.0 Ok: queued as @ID@\r\n" },
		{ NULL, NULL },
	};

	hello(f);
	run(f, st);
	check_stored(f, "UTF8SMTP", "alice@localhost", "Subject: \xc3\xa9t\xc3\xa9\r\n", 16);
	check_env(f, &e, "j\xc3\xb6rg@example.org", "UTF8SMTP", 1, 16);
	assert_int_equal(e.smtputf8, 1);
	assert_int_equal(e.body_8bit, 1);
	envelope_free(&e);
}

/* RFC 5321 4.1.3: an IPv6 client's address literal in Received is "IPv6:..." */
static void
received_ipv6_literal(void **state)
{
	struct fake *f = *state;
	static const char want[] = "Received: from client.example ([IPv6:2001:db8::25])\r\n"
	    "\tby test.example (tern) with ESMTP id ";

	session_free(f->s);
	f->s = session_new(&f->cfg, &fake_ops, f, "2001:db8::25", 44);
	assert_non_null(f->s);
	mail_rcpt(f);
	assert_string_equal(say(f, "DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
	assert_string_equal(say(f, "Subject: v6\r\n\r\nhi\r\n.\r\n"),
	    "250 2.0.0 Ok: queued as 00000000000000a1\r\n");
	assert_int_equal(f->commits, 1);
	assert_true(f->msg.len > sizeof(want) - 1);
	assert_memory_equal(f->msg.data, want, sizeof(want) - 1);
}

/* ---- inbound checks (mx listener with ops->check) ---- */

/* A session on the configuration's mx listener whose messages are checked. */
static void
checked_start(struct fake *f)
{
	fake_stop(f);
	fake_start(f);
	session_free(f->s);
	f->s = session_new(&f->cfg, &check_ops, f, "192.0.2.1", 43);
	assert_non_null(f->s);
	assert_int_equal(f->cfg.listen[0].mode, LISTEN_MX);
	session_set_listener(f->s, &f->cfg.listen[0], 0);
	f->checks = 0;
}

/* MAIL, RCPT and the message: the session then waits on the check. */
static void
checked_message(struct fake *f, const char *msg)
{
	mail_rcpt(f);
	assert_string_equal(say(f, "DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
	assert_string_equal(say(f, msg), "");
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_CHECK);
	assert_string_equal(f->check_from, "sender@example.org");
	assert_int_equal(f->commits, 0);
}

static void
answer_check(struct fake *f, uint32_t seq, enum spf_result spf, enum dmarc_result dmarc,
    enum dmarc_policy disposition, const char *header)
{
	struct session_check_answer a = { seq, spf, dmarc, disposition, header, strlen(header) };

	session_check_done(f->s, &a);
}

/* The stored message after tern's Received field. */
static const char *
stored_after_received(struct fake *f)
{
	const char *p = f->msg.data, *end = p + f->msg.len;

	assert_non_null(p);
	for (; p + 2 < end; p++)
		if (p[0] == '\r' && p[1] == '\n' && p[2] != '\t')
			break;
	assert_true(p + 2 < end);
	assert_int_equal(buf_appendc(&f->msg, '\0'), 0);
	f->msg.len--;
	return p + 2;
}

/* Decodes the last envelope: the sender and the one recipient of these tests. */
static void
decode_last(struct fake *f, struct envelope *e)
{
	const char *why = NULL;

	if (envelope_decode(f->env.data, f->env.len, e, &why) == -1)
		fail_msg("envelope_decode: %s", why);
	assert_string_equal(e->id, f->id);
	assert_string_equal(e->sender, "sender@example.org");
	assert_int_equal(e->nrcpts, 1);
}

static const char ar_pass[] =
    "Authentication-Results: test.example;\r\n\tspf=pass smtp.mailfrom=sender@example.org\r\n";

static void
test_check_forged_authres_removed(void **state)
{
	struct fake *f = *state;
	struct envelope e;
	static const char msg[] =
	    "Authentication-Results: test.example; spf=pass smtp.mailfrom=x@example.org\r\n"
	    "Authentication-Results: other.example; dkim=pass header.d=example.org\r\n"
	    "Authentication-Results:TEST.Example ;;; ((( malformed\r\n"
	    "Authentication-Results: test.example;\r\n\tdmarc=pass header.from=example.org\r\n"
	    "Authentication-Results: test.example.evil; spf=pass\r\n"
	    "From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n.\r\n";

	checked_start(f);
	checked_message(f, msg);
	assert_int_equal(f->checks, 1);
	/* The check process sees the header section as received, blank line included. */
	assert_int_equal(f->check_hdr.len, strlen(msg) - strlen("body\r\n.\r\n"));
	assert_memory_equal(f->check_hdr.data, msg, f->check_hdr.len);
	answer_check(f, f->check_seq, SPF_PASS, DMARC_RESULT_PASS, DMARC_POLICY_NONE, ar_pass);
	assert_string_equal(take(f), expand(f, "250 2.0.0 Ok: queued as @ID@\r\n"));
	assert_int_equal(f->commits, 1);
	/* Ours (well-formed, folded or malformed) are gone; foreign ones stay. */
	assert_string_equal(stored_after_received(f),
	    "Authentication-Results: other.example; dkim=pass header.d=example.org\r\n"
	    "Authentication-Results: test.example.evil; spf=pass\r\n"
	    "From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n");
	check_env(f, &e, "sender@example.org", "ESMTP", 1,
	    strlen(stored_after_received(f)) + strlen(ar_pass));
	assert_string_equal(e.prepend, ar_pass);
	assert_int_equal(e.quarantine, 0);
	envelope_free(&e);
}

static void
test_check_spf_reject(void **state)
{
	struct fake *f = *state;

	f->cfg.checks.spf_fail = CHECK_REJECT;
	checked_start(f);
	checked_message(f, "From: a@example.org\r\n\r\nhi\r\n.\r\n");
	answer_check(f, f->check_seq, SPF_FAIL, DMARC_RESULT_NONE, DMARC_POLICY_NONE, ar_pass);
	assert_string_equal(take(f), "550 5.7.23 SPF validation failed: the sender's domain "
	    "does not authorize this host\r\n");
	assert_int_equal(f->commits, 0);
	assert_int_equal(f->aborts, 1);
	assert_string_equal(f->aborted, f->id);
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_COMMAND);
	/* The session goes on. */
	assert_string_equal(say(f, "MAIL FROM:<b@example.org>\r\n"), "250 2.1.0 Ok\r\n");
	/* Recorded only (the default): the same answer is accepted. */
	f->cfg.checks.spf_fail = CHECK_RECORD;
	checked_start(f);
	checked_message(f, "From: a@example.org\r\n\r\nhi\r\n.\r\n");
	answer_check(f, f->check_seq, SPF_FAIL, DMARC_RESULT_NONE, DMARC_POLICY_NONE, ar_pass);
	assert_string_equal(take(f), expand(f, "250 2.0.0 Ok: queued as @ID@\r\n"));
}

static void
test_check_dmarc_reject_and_quarantine(void **state)
{
	struct fake *f = *state;
	struct envelope e;
	char want[512];

	checked_start(f);
	checked_message(f, "From: a@example.org\r\n\r\nhi\r\n.\r\n");
	answer_check(f, f->check_seq, SPF_FAIL, DMARC_RESULT_FAIL, DMARC_POLICY_REJECT, ar_pass);
	assert_string_equal(take(f),
	    "550 5.7.1 Message rejected by the DMARC policy of the From: domain\r\n");
	assert_int_equal(f->commits, 0);
	assert_int_equal(f->aborts, 1);

	/* p=quarantine: accepted, marked, filed as junk. */
	assert_string_equal(say(f, "MAIL FROM:<sender@example.org>\r\n"), "250 2.1.0 Ok\r\n");
	assert_string_equal(say(f, "RCPT TO:<alice@localhost>\r\n"), "250 2.1.5 Ok\r\n");
	assert_string_equal(say(f, "DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
	assert_string_equal(say(f, "From: a@example.org\r\n\r\nhi\r\n.\r\n"), "");
	assert_int_equal(f->checks, 2);
	answer_check(f, f->check_seq, SPF_PASS, DMARC_RESULT_FAIL, DMARC_POLICY_QUARANTINE,
	    ar_pass);
	assert_string_equal(take(f), expand(f, "250 2.0.0 Ok: queued as @ID@\r\n"));
	decode_last(f, &e);
	snprintf(want, sizeof(want), "%sX-Tern-Quarantine: DMARC policy quarantine\r\n", ar_pass);
	assert_string_equal(e.prepend, want);
	assert_int_equal(e.quarantine, 1);
	envelope_free(&e);

	/* dmarc_reject quarantine: p=reject is filed as junk instead. */
	f->cfg.checks.dmarc_reject = CHECK_QUARANTINE;
	checked_start(f);
	checked_message(f, "From: a@example.org\r\n\r\nhi\r\n.\r\n");
	answer_check(f, f->check_seq, SPF_FAIL, DMARC_RESULT_FAIL, DMARC_POLICY_REJECT, ar_pass);
	assert_string_equal(take(f), expand(f, "250 2.0.0 Ok: queued as @ID@\r\n"));
	decode_last(f, &e);
	assert_int_equal(e.quarantine, 1);
	envelope_free(&e);
}

static void
test_check_timeout_then_late_answer(void **state)
{
	struct fake *f = *state;
	struct envelope e;
	uint32_t first;
	static const char temperror[] =
	    "Authentication-Results: test.example;\r\n"
	    "\tspf=temperror reason=\"checks did not complete\"\r\n"
	    "\tsmtp.mailfrom=sender@example.org;\r\n"
	    "\tdmarc=temperror reason=\"checks did not complete\"\r\n";

	checked_start(f);
	checked_message(f, "From: a@example.org\r\n\r\nhi\r\n.\r\n");
	first = f->check_seq;
	/* No answer in time: temperror, and the message is accepted (never refused). */
	session_timeout(f->s);
	assert_string_equal(take(f), expand(f, "250 2.0.0 Ok: queued as @ID@\r\n"));
	decode_last(f, &e);
	assert_string_equal(e.prepend, temperror);
	envelope_free(&e);
	/* The next message is checked under a new number. */
	assert_string_equal(say(f, "MAIL FROM:<sender@example.org>\r\n"), "250 2.1.0 Ok\r\n");
	assert_string_equal(say(f, "RCPT TO:<alice@localhost>\r\n"), "250 2.1.5 Ok\r\n");
	assert_string_equal(say(f, "DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
	assert_string_equal(say(f, "From: a@example.org\r\n\r\nagain\r\n.\r\n"), "");
	assert_int_equal(f->checks, 2);
	assert_int_not_equal(f->check_seq, first);
	/* The first message's answer arrives late: ignored, the session still waits. */
	answer_check(f, first, SPF_FAIL, DMARC_RESULT_FAIL, DMARC_POLICY_REJECT, ar_pass);
	assert_string_equal(take(f), "");
	assert_int_equal(session_waiting(f->s), SESSION_WAIT_CHECK);
	assert_int_equal(f->commits, 1);
	answer_check(f, f->check_seq, SPF_PASS, DMARC_RESULT_PASS, DMARC_POLICY_NONE, ar_pass);
	assert_string_equal(take(f), expand(f, "250 2.0.0 Ok: queued as @ID@\r\n"));
	assert_int_equal(f->commits, 2);
	decode_last(f, &e);
	assert_string_equal(e.prepend, ar_pass);
	envelope_free(&e);
	/* An answer when nothing waits changes nothing. */
	answer_check(f, f->check_seq, SPF_FAIL, DMARC_RESULT_FAIL, DMARC_POLICY_REJECT, ar_pass);
	assert_string_equal(take(f), "");
	assert_int_equal(f->commits, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_greeting),
		T(test_trim),
		T(test_ehlo),
		T(test_helo_dialog),
		T(test_sequence_errors),
		T(test_data_happy),
		T(received_ipv6_literal),
		T(test_pipelining),
		T(test_pipelining_open_later),
		T(test_split_everywhere),
		T(test_smuggling),
		T(test_bdat),
		T(test_bdat_errors),
		T(test_size),
		T(test_size_large),
		T(test_line_length),
		T(test_recipients),
		T(test_rcpt_refusals),
		T(test_errors_limit),
		T(test_errors_limit_data),
		T(test_command_line),
		T(test_commit_fails),
		T(test_open_fails),
		T(test_write_fails),
		T(test_data_pieces),
		T(test_hangup),
		T(test_hangup_open_pending),
		T(test_shutdown),
		T(test_shutdown_busy),
		T(test_shutdown_helo),
		T(test_timeout),
		T(test_refuse),
		T(test_smtputf8),
		T(test_check_forged_authres_removed),
		T(test_check_spf_reject),
		T(test_check_dmarc_reject_and_quarantine),
		T(test_check_timeout_then_late_answer),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
