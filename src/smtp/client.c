/*
 * client — SMTP client state machine (see client.h).
 *
 * With PIPELINING the whole transaction (MAIL, every RCPT, DATA or BDAT)
 * goes out in one write and the replies are matched to the commands in
 * order (RFC 2920 3.1): `pending` is that queue of expected replies.
 */
#include "smtp/client.h"
#include "smtp/sasl.h"
#include "smtp/xtext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum cstate {
	CS_GREETING, CS_EHLO, CS_HELO, CS_STARTTLS, CS_TLS, CS_IDLE, CS_TXN,
	CS_BODY, CS_DOT, CS_RSET, CS_QUIT, CS_CLOSED, CS_REUSE,
	CS_AUTH, CS_AUTH_USER, CS_AUTH_PASS,
};

enum expect { EX_MAIL, EX_RCPT, EX_DATA, EX_BDAT };

struct smtp_client {
	enum cstate          st;
	enum client_tls      tls;
	int                  tls_active;
	int                  esmtp;
	struct ehlo_caps     caps;
	char                 helo[256];
	struct buf           out;
	char                 error[512];
	char                 error_status[16];
	/* AUTH as a client (RFC 4954), NULL user: none */
	const char          *auth_user, *auth_pass;
	int                  auth_without_tls;
	int                  out_secret;	/* out holds credentials */
	/* the current message */
	const struct client_msg *msg;
	struct client_result    *res;
	size_t               next_rcpt;	/* without pipelining: the next RCPT to send */
	size_t               rcpt_reply;	/* the next RCPT reply expected */
	size_t               accepted;
	int                  mail_failed;
	struct smtp_reply    mail_reply;
	int                  chunking;
	enum expect          pending[CLIENT_MAX_RCPT + 3];
	size_t               npending, phead;
};

struct smtp_client *
smtp_client_new(const char *helo_name, enum client_tls tls)
{
	struct smtp_client *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	snprintf(c->helo, sizeof(c->helo), "%s", helo_name);
	c->tls = tls;
	buf_init(&c->out, 1024 * 1024);
	return c;
}

void
smtp_client_free(struct smtp_client *c)
{
	if (c) {
		buf_free(&c->out);
		free(c);
	}
}

static void
set_result(struct client_result *r, int code, const char *enh, const char *text)
{
	r->code = code;
	if (enh && enh[0])
		snprintf(r->enhanced, sizeof(r->enhanced), "%s", enh);
	else
		snprintf(r->enhanced, sizeof(r->enhanced), "%d.0.0", code / 100);
	snprintf(r->text, sizeof(r->text), "%s", text);
}

static void
result_from_reply(struct client_result *r, const struct smtp_reply *rp)
{
	char text[512];

	snprintf(text, sizeof(text), "%d %s", rp->code, rp->text);
	for (char *p = text; *p; p++)
		if (*p == '\n')
			*p = ' ';
	set_result(r, rp->code, rp->enhanced, text);
}

/* Every recipient still without an answer gets this one. */
static void
settle_open(struct smtp_client *c, int code, const char *enh, const char *text)
{
	size_t i;

	if (c->msg == NULL)
		return;
	for (i = 0; i < c->msg->nrcpts; i++)
		if (c->res[i].code == 0 || (c->res[i].code / 100 == 2 && c->st != CS_IDLE))
			set_result(&c->res[i], code, enh, text);
}

static enum client_action
close_with(struct smtp_client *c, int code, const char *enh, const char *why)
{
	snprintf(c->error, sizeof(c->error), "%s", why);
	snprintf(c->error_status, sizeof(c->error_status), "%s", enh ? enh : "");
	settle_open(c, code, enh, why);
	c->st = CS_CLOSED;
	return c->msg ? CLIENT_MSG_DONE : CLIENT_CLOSED;
}

static void
send_ehlo(struct smtp_client *c)
{
	buf_printf(&c->out, "EHLO %s\r\n", c->helo);
	c->st = CS_EHLO;
}

/* An xtext-encoded parameter value (RFC 3461 4); nothing if it cannot be. */
static void
put_xtext(struct buf *b, const char *key, const char *val)
{
	char enc[1600];

	if (xtext_encode(val, strlen(val), enc, sizeof(enc)) >= 0)
		buf_printf(b, " %s=%s", key, enc);
}

static void
send_rcpt(struct smtp_client *c, size_t i)
{
	const struct client_msg *m = c->msg;

	buf_printf(&c->out, "RCPT TO:<%s>", m->rcpts[i]);
	if (c->caps.dsn && m->notify && m->notify[i]) {
		unsigned n = m->notify[i];

		if (n & DSN_NOTIFY_NEVER)
			buf_appends(&c->out, " NOTIFY=NEVER");
		else
			buf_printf(&c->out, " NOTIFY=%s%s%s%s%s",
			    n & DSN_NOTIFY_SUCCESS ? "SUCCESS" : "",
			    (n & DSN_NOTIFY_SUCCESS) && (n & (DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY)) ? "," : "",
			    n & DSN_NOTIFY_FAILURE ? "FAILURE" : "",
			    (n & DSN_NOTIFY_FAILURE) && (n & DSN_NOTIFY_DELAY) ? "," : "",
			    n & DSN_NOTIFY_DELAY ? "DELAY" : "");
	}
	if (c->caps.dsn && m->orcpt && m->orcpt[i] && m->orcpt[i][0]) {
		const char *semi = strchr(m->orcpt[i], ';');

		char enc[1600];

		if (semi && xtext_encode(semi + 1, strlen(semi + 1), enc, sizeof(enc)) >= 0)
			buf_printf(&c->out, " ORCPT=%.*s;%s", (int)(semi - m->orcpt[i]), m->orcpt[i], enc);
	}
	buf_appends(&c->out, "\r\n");
	c->pending[c->npending++] = EX_RCPT;
}

static void
send_data_cmd(struct smtp_client *c)
{
	if (c->chunking)
		buf_printf(&c->out, "BDAT %llu LAST\r\n", (unsigned long long)c->msg->size);
	else
		buf_appends(&c->out, "DATA\r\n");
	c->pending[c->npending++] = c->chunking ? EX_BDAT : EX_DATA;
}

/* MAIL FROM with the parameters the peer understands. */
static void
send_mail(struct smtp_client *c)
{
	const struct client_msg *m = c->msg;

	buf_printf(&c->out, "MAIL FROM:<%s>", m->sender);
	if (c->caps.size_given)
		buf_printf(&c->out, " SIZE=%llu", (unsigned long long)m->size);
	if (m->body_8bit && c->caps.eightbitmime)
		buf_appends(&c->out, " BODY=8BITMIME");
	if (m->smtputf8)
		buf_appends(&c->out, " SMTPUTF8");
	if (c->caps.dsn && m->ret)
		buf_appends(&c->out, m->ret == 2 ? " RET=HDRS" : " RET=FULL");
	if (c->caps.dsn && m->envid && m->envid[0])
		put_xtext(&c->out, "ENVID", m->envid);
	buf_appends(&c->out, "\r\n");
	c->npending = c->phead = 0;
	c->pending[c->npending++] = EX_MAIL;
	c->next_rcpt = c->rcpt_reply = c->accepted = 0;
	c->mail_failed = 0;
	if (c->caps.pipelining) {
		size_t i;

		for (i = 0; i < m->nrcpts; i++)
			send_rcpt(c, i);
		c->next_rcpt = m->nrcpts;
		if (!c->chunking)
			send_data_cmd(c);
	}
	c->st = CS_TXN;
}

enum client_action
smtp_client_send(struct smtp_client *c, const struct client_msg *m, struct client_result *out)
{
	size_t i;

	c->msg = m;
	c->res = out;
	for (i = 0; i < m->nrcpts; i++)
		memset(&out[i], 0, sizeof(out[i]));
	if (c->st != CS_IDLE || m->nrcpts == 0 || m->nrcpts > CLIENT_MAX_RCPT) {
		settle_open(c, 451, "4.3.0", "internal error: connection not ready");
		return CLIENT_MSG_DONE;
	}
	/* RFC 6531 3.5 and RFC 1870 6: decide before sending anything. */
	if (m->smtputf8 && !c->caps.smtputf8) {
		settle_open(c, 553, "5.6.7", "the receiving server does not support SMTPUTF8 "
		    "and an address needs it");
		return CLIENT_MSG_DONE;
	}
	if (c->caps.size_given && c->caps.size && m->size > c->caps.size) {
		char why[160];

		snprintf(why, sizeof(why), "message of %llu octets is larger than the "
		    "receiving server's limit of %llu", (unsigned long long)m->size,
		    (unsigned long long)c->caps.size);
		settle_open(c, 552, "5.3.4", why);
		return CLIENT_MSG_DONE;
	}
	c->chunking = c->caps.chunking;
	send_mail(c);
	return CLIENT_WAIT;
}

/* After the MAIL/RCPT replies: on to the data, or end the failed transaction. */
static enum client_action
after_rcpts(struct smtp_client *c)
{
	if (c->mail_failed || c->accepted == 0) {
		if (c->phead < c->npending)
			return CLIENT_WAIT;	/* the pipelined DATA reply is still to come */
		buf_appends(&c->out, "RSET\r\n");
		c->st = CS_RSET;
		return CLIENT_WAIT;
	}
	if (c->chunking) {
		/* RFC 3030: "BDAT size LAST" and the content right behind it. */
		send_data_cmd(c);
		c->st = CS_BODY;
		return CLIENT_SEND_BODY;
	}
	if (!c->caps.pipelining) {
		send_data_cmd(c);
		return CLIENT_WAIT;
	}
	return CLIENT_WAIT;
}

static enum client_action
txn_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	enum expect ex;
	size_t i;

	if (c->phead >= c->npending)
		return close_with(c, 451, "4.4.0", "unexpected reply from the server");
	ex = c->pending[c->phead++];
	switch (ex) {
	case EX_MAIL:
		if (r->code / 100 != 2) {
			c->mail_failed = 1;
			reply_copy(&c->mail_reply, r);
			for (i = 0; i < c->msg->nrcpts; i++)
				result_from_reply(&c->res[i], r);
		}
		if (!c->caps.pipelining && !c->mail_failed) {
			send_rcpt(c, c->next_rcpt++);
			return CLIENT_WAIT;
		}
		return c->caps.pipelining ? CLIENT_WAIT : after_rcpts(c);
	case EX_RCPT:
		i = c->rcpt_reply++;
		if (!c->mail_failed) {
			if (r->code / 100 == 2)
				c->accepted++;
			/* A 2xx RCPT is only a promise: the final reply decides. */
			result_from_reply(&c->res[i], r);
			if (r->code / 100 == 2)
				c->res[i].code = 250 - 1;	/* marked "accepted, pending" */
		}
		if (!c->caps.pipelining && c->next_rcpt < c->msg->nrcpts) {
			send_rcpt(c, c->next_rcpt++);
			return CLIENT_WAIT;
		}
		if (c->rcpt_reply < c->msg->nrcpts)
			return CLIENT_WAIT;
		return after_rcpts(c);
	case EX_DATA:
		if (c->mail_failed || c->accepted == 0) {
			if (r->code == 354) {
				/* RFC 2920 3.1: nothing valid to send, end it at once. */
				buf_appends(&c->out, ".\r\n");
				c->st = CS_DOT;
				c->accepted = 0;
				return CLIENT_WAIT;
			}
			return after_rcpts(c);
		}
		if (r->code != 354) {
			for (i = 0; i < c->msg->nrcpts; i++)
				if (c->res[i].code == 249)
					result_from_reply(&c->res[i], r);
			buf_appends(&c->out, "RSET\r\n");
			c->st = CS_RSET;
			return CLIENT_WAIT;
		}
		c->st = CS_BODY;
		return CLIENT_SEND_BODY;
	case EX_BDAT:
		break;
	}
	return close_with(c, 451, "4.4.0", "unexpected reply");
}

enum client_action
smtp_client_body_sent(struct smtp_client *c)
{
	c->st = CS_DOT;
	return CLIENT_WAIT;
}

static enum client_action
final_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	size_t i;

	for (i = 0; i < c->msg->nrcpts; i++)
		if (c->res[i].code == 249 || c->accepted == 0)
			if (c->res[i].code == 249)
				result_from_reply(&c->res[i], r);
	c->st = CS_IDLE;
	return CLIENT_MSG_DONE;
}

void
smtp_client_set_auth(struct smtp_client *c, const char *user, const char *pass,
    int without_tls)
{
	c->auth_user = user;
	c->auth_pass = pass;
	c->auth_without_tls = without_tls;
}

/* "AUTH LOGIN" steps: one base64 line. */
static void
send_b64_line(struct smtp_client *c, const char *prefix, const unsigned char *p, size_t n)
{
	char enc[4 * (2 * SASL_FIELD_MAX + 3) / 3 + 8];

	if (sasl_b64_encode(p, n, enc, sizeof(enc)) >= 0)
		buf_printf(&c->out, "%s%s\r\n", prefix, enc);
	explicit_bzero(enc, sizeof(enc));
	c->out_secret = 1;
}

/*
 * RFC 4954 after EHLO: PLAIN (RFC 4616) when offered, else LOGIN. Never
 * in clear text unless the route allows it: a password sent without TLS
 * is a password given away.
 */
static enum client_action
start_auth(struct smtp_client *c)
{
	unsigned char msg[2 * SASL_FIELD_MAX + 2];
	size_t ul = strlen(c->auth_user), pl = strlen(c->auth_pass);

	if (!c->tls_active && !c->auth_without_tls)
		return close_with(c, 451, "4.7.10", "credentials are not sent without TLS and "
		    "the server did not start it");
	if (ul > SASL_FIELD_MAX || pl > SASL_FIELD_MAX)
		return close_with(c, 451, "4.7.0", "credentials too long");
	if (c->caps.auth_plain) {
		msg[0] = '\0';
		memcpy(msg + 1, c->auth_user, ul);
		msg[1 + ul] = '\0';
		memcpy(msg + 2 + ul, c->auth_pass, pl);
		send_b64_line(c, "AUTH PLAIN ", msg, ul + pl + 2);
		explicit_bzero(msg, sizeof(msg));
		c->st = CS_AUTH;
		return CLIENT_WAIT;
	}
	if (c->caps.auth_login) {
		buf_appends(&c->out, "AUTH LOGIN\r\n");
		c->st = CS_AUTH_USER;
		return CLIENT_WAIT;
	}
	return close_with(c, 451, "4.7.0", "the server offers neither AUTH PLAIN nor AUTH LOGIN");
}

/* The replies to AUTH; a refusal defers (the credentials are ours to fix). */
static enum client_action
auth_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	char why[600];

	if (c->st == CS_AUTH && r->code == 235) {
		c->auth_user = NULL;	/* done for this connection */
		c->st = CS_IDLE;
		return CLIENT_IDLE;
	}
	if (c->st != CS_AUTH && r->code == 334) {
		const char *v = c->st == CS_AUTH_USER ? c->auth_user : c->auth_pass;

		send_b64_line(c, "", (const unsigned char *)v, strlen(v));
		c->st = c->st == CS_AUTH_USER ? CS_AUTH_PASS : CS_AUTH;
		return CLIENT_WAIT;
	}
	snprintf(why, sizeof(why), "authentication failed: %d %s", r->code, r->text);
	return close_with(c, 451, "4.7.0", why);
}

enum client_action
smtp_client_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	char why[600];

	switch (c->st) {
	case CS_GREETING:
		if (r->code != 220) {
			snprintf(why, sizeof(why), "greeting: %d %s", r->code, r->text);
			return close_with(c, r->code / 100 == 5 ? 554 : 421, NULL, why);
		}
		send_ehlo(c);
		return CLIENT_WAIT;
	case CS_EHLO:
		if (r->code / 100 != 2) {
			buf_printf(&c->out, "HELO %s\r\n", c->helo);	/* RFC 5321 3.2 */
			c->st = CS_HELO;
			return CLIENT_WAIT;
		}
		c->esmtp = 1;
		reply_ehlo_caps(r, &c->caps);
		if (!c->tls_active && c->tls != CLIENT_TLS_NO && c->caps.starttls) {
			buf_appends(&c->out, "STARTTLS\r\n");
			c->st = CS_STARTTLS;
			return CLIENT_WAIT;
		}
		break;
	case CS_HELO:
		if (r->code / 100 != 2) {
			snprintf(why, sizeof(why), "HELO refused: %d %s", r->code, r->text);
			return close_with(c, r->code / 100 == 5 ? 554 : 421, NULL, why);
		}
		memset(&c->caps, 0, sizeof(c->caps));
		break;
	case CS_STARTTLS:
		if (r->code == 220) {
			c->st = CS_TLS;
			return CLIENT_START_TLS;
		}
		break;	/* no TLS: the policy check below decides */
	case CS_TXN:
		return txn_reply(c, r);
	case CS_DOT:
		if (c->accepted == 0) {
			c->st = CS_IDLE;
			return CLIENT_MSG_DONE;
		}
		return final_reply(c, r);
	case CS_RSET:
		c->st = CS_IDLE;
		return CLIENT_MSG_DONE;
	case CS_REUSE:
		if (r->code / 100 != 2) {
			snprintf(why, sizeof(why), "RSET refused: %d %s", r->code, r->text);
			return close_with(c, 421, NULL, why);
		}
		c->st = CS_IDLE;
		return CLIENT_IDLE;
	case CS_QUIT:
		c->st = CS_CLOSED;
		return CLIENT_CLOSED;
	case CS_AUTH:
	case CS_AUTH_USER:
	case CS_AUTH_PASS:
		return auth_reply(c, r);
	default:
		return close_with(c, 451, "4.4.0", "unexpected reply from the server");
	}
	if (!c->tls_active && c->tls == CLIENT_TLS_MUST)
		return close_with(c, 451, "4.7.4", "TLS is required for this destination "
		    "and the server does not offer it");
	if (c->auth_user)
		return start_auth(c);
	c->st = CS_IDLE;
	return CLIENT_IDLE;
}

enum client_action
smtp_client_tls_done(struct smtp_client *c)
{
	c->tls_active = 1;
	memset(&c->caps, 0, sizeof(c->caps));
	send_ehlo(c);	/* RFC 3207 4.2: forget what was learned in clear */
	return CLIENT_WAIT;
}

enum client_action
smtp_client_reuse(struct smtp_client *c)
{
	c->msg = NULL;	/* the last message's results belong to its job */
	c->res = NULL;
	if (c->st != CS_IDLE)
		return close_with(c, 421, NULL, "connection not idle");
	buf_appends(&c->out, "RSET\r\n");
	c->st = CS_REUSE;
	return CLIENT_WAIT;
}

int
smtp_client_idle(const struct smtp_client *c)
{
	return c->st == CS_IDLE && c->out.len == 0;
}

enum client_action
smtp_client_quit(struct smtp_client *c)
{
	if (c->st == CS_CLOSED)
		return CLIENT_CLOSED;
	buf_appends(&c->out, "QUIT\r\n");
	c->st = CS_QUIT;
	return CLIENT_WAIT;
}

void
smtp_client_fail(struct smtp_client *c, const char *why)
{
	size_t i;

	snprintf(c->error, sizeof(c->error), "%s", why);
	if (c->msg && c->st != CS_IDLE)
		for (i = 0; i < c->msg->nrcpts; i++)
			if (c->res[i].code == 0 || c->res[i].code == 249)
				set_result(&c->res[i], 451, "4.4.2", why);
	c->st = CS_CLOSED;
}

struct buf *
smtp_client_output(struct smtp_client *c)
{
	return &c->out;
}

int
smtp_client_output_taken(struct smtp_client *c)
{
	int secret = c->out_secret;

	if (secret && c->out.data)
		explicit_bzero(c->out.data, c->out.len);
	c->out_secret = 0;
	buf_reset(&c->out);
	return secret;
}

int
smtp_client_chunking(const struct smtp_client *c)
{
	return c->chunking;
}

unsigned
smtp_client_timeout(const struct smtp_client *c)
{
	/* RFC 5321 4.5.3.2 */
	switch (c->st) {
	case CS_BODY: return 180;
	case CS_DOT: return 600;
	case CS_TXN: return c->phead < c->npending && c->pending[c->phead] == EX_DATA ? 120 : 300;
	default: return 300;
	}
}

int
smtp_client_dsn_passed(const struct smtp_client *c)
{
	return c->caps.dsn;
}

const struct ehlo_caps *
smtp_client_caps(const struct smtp_client *c)
{
	return &c->caps;
}

int
smtp_client_tls_active(const struct smtp_client *c)
{
	return c->tls_active;
}

const char *
smtp_client_error(const struct smtp_client *c)
{
	return c->error;
}

const char *
smtp_client_error_status(const struct smtp_client *c)
{
	return c->error_status[0] ? c->error_status : "4.4.2";
}

int
smtp_client_stuff(int *bol, const char *in, size_t n, struct buf *out)
{
	size_t i, start = 0;

	for (i = 0; i < n; i++) {
		if (*bol && in[i] == '.') {
			if (buf_append(out, in + start, i - start) == -1 || buf_appendc(out, '.') == -1)
				return -1;
			start = i;
		}
		*bol = in[i] == '\n';
	}
	return buf_append(out, in + start, n - start);
}

int
smtp_client_data_end(int bol, struct buf *out)
{
	if (!bol && buf_appends(out, "\r\n") == -1)
		return -1;
	return buf_appends(out, ".\r\n");
}
