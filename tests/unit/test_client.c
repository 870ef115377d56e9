/* Unit tests: the SMTP client state machine (src/smtp/client.c) against scripted servers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/client.h"

static enum client_action
say(struct smtp_client *c, const char *text)
{
	static struct smtp_reply r;
	struct reply_reader rr;
	size_t used;

	reply_reader_init(&rr);
	assert_int_equal(reply_feed(&rr, text, strlen(text), &used, &r), REPLY_DONE);
	reply_reader_free(&rr);
	return smtp_client_reply(c, &r);
}

/* The client's output so far, then cleared. */
static void
expect_out(struct smtp_client *c, const char *want)
{
	struct buf *o = smtp_client_output(c);

	assert_int_equal(o->len, strlen(want));
	assert_memory_equal(o->data, want, o->len);
	buf_reset(o);
}

static const char *const two[] = { "a@x.example", "b@x.example" };

static void
test_pipelined_mixed_results(void **state)
{
	struct smtp_client *c = smtp_client_new("me.example", CLIENT_TLS_MAY);
	struct client_msg m = { .sender = "s@me.example", .rcpts = two, .nrcpts = 2, .size = 100 };
	struct client_result res[2];

	assert_int_equal(say(c, "220 mx ESMTP\r\n"), CLIENT_WAIT);
	expect_out(c, "EHLO me.example\r\n");
	assert_int_equal(say(c, "250-mx\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"), CLIENT_IDLE);
	assert_int_equal(smtp_client_send(c, &m, res), CLIENT_WAIT);
	expect_out(c, "MAIL FROM:<s@me.example> SIZE=100\r\nRCPT TO:<a@x.example>\r\n"
	    "RCPT TO:<b@x.example>\r\nDATA\r\n");
	assert_int_equal(say(c, "250 2.1.0 ok\r\n"), CLIENT_WAIT);
	assert_int_equal(say(c, "550 5.1.1 no such user\r\n"), CLIENT_WAIT);
	assert_int_equal(say(c, "250 2.1.5 ok\r\n"), CLIENT_WAIT);
	assert_int_equal(say(c, "354 go\r\n"), CLIENT_SEND_BODY);
	assert_int_equal(smtp_client_chunking(c), 0);
	assert_int_equal(smtp_client_body_sent(c), CLIENT_WAIT);
	assert_int_equal(say(c, "250 2.0.0 queued\r\n"), CLIENT_MSG_DONE);
	assert_int_equal(res[0].code, 550);
	assert_string_equal(res[0].enhanced, "5.1.1");
	assert_int_equal(res[1].code, 250);
	assert_string_equal(res[1].text, "250 2.0.0 queued");
	assert_int_equal(smtp_client_quit(c), CLIENT_WAIT);
	expect_out(c, "QUIT\r\n");
	assert_int_equal(say(c, "221 bye\r\n"), CLIENT_CLOSED);
	smtp_client_free(c);
}

static void
test_no_pipelining_chunking_tls(void **state)
{
	struct smtp_client *c = smtp_client_new("me.example", CLIENT_TLS_MUST);
	struct client_msg m = { .sender = "", .rcpts = two, .nrcpts = 1, .size = 42, .body_8bit = 1 };
	struct client_result res[1];

	say(c, "220 mx\r\n");
	expect_out(c, "EHLO me.example\r\n");
	assert_int_equal(say(c, "250-mx\r\n250 STARTTLS\r\n"), CLIENT_WAIT);
	expect_out(c, "STARTTLS\r\n");
	assert_int_equal(say(c, "220 go ahead\r\n"), CLIENT_START_TLS);
	assert_int_equal(smtp_client_tls_done(c), CLIENT_WAIT);
	expect_out(c, "EHLO me.example\r\n");
	assert_int_equal(say(c, "250-mx\r\n250-8BITMIME\r\n250 CHUNKING\r\n"), CLIENT_IDLE);
	assert_true(smtp_client_tls_active(c));
	assert_int_equal(smtp_client_send(c, &m, res), CLIENT_WAIT);
	expect_out(c, "MAIL FROM:<> BODY=8BITMIME\r\n");
	assert_int_equal(say(c, "250 ok\r\n"), CLIENT_WAIT);
	expect_out(c, "RCPT TO:<a@x.example>\r\n");
	assert_int_equal(say(c, "250 ok\r\n"), CLIENT_SEND_BODY);
	assert_int_equal(smtp_client_chunking(c), 1);
	expect_out(c, "BDAT 42 LAST\r\n");
	smtp_client_body_sent(c);
	assert_int_equal(say(c, "452 4.3.1 full\r\n"), CLIENT_MSG_DONE);
	assert_int_equal(res[0].code, 452);
	smtp_client_free(c);
}

static void
test_refusals_before_sending(void **state)
{
	struct smtp_client *c = smtp_client_new("me.example", CLIENT_TLS_MUST);
	struct client_msg big = { .sender = "s@x", .rcpts = two, .nrcpts = 2, .size = 5000 };
	struct client_msg utf = { .sender = "s@x", .rcpts = two, .nrcpts = 2, .size = 10, .smtputf8 = 1 };
	struct client_result res[2];

	say(c, "220 mx\r\n");
	buf_reset(smtp_client_output(c));
	/* TLS required, not offered: the connection is given up, results are 4xx. */
	assert_int_equal(say(c, "250-mx\r\n250 SIZE 1000\r\n"), CLIENT_CLOSED);
	assert_string_equal(smtp_client_error(c), "TLS is required for this destination "
	    "and the server does not offer it");
	smtp_client_free(c);

	c = smtp_client_new("me.example", CLIENT_TLS_NO);
	say(c, "220 mx\r\n");
	say(c, "250-mx\r\n250 SIZE 1000\r\n");
	buf_reset(smtp_client_output(c));
	assert_int_equal(smtp_client_send(c, &big, res), CLIENT_MSG_DONE);
	assert_int_equal(res[1].code, 552);
	assert_int_equal(smtp_client_send(c, &utf, res), CLIENT_MSG_DONE);
	assert_int_equal(res[0].code, 553);
	assert_string_equal(res[0].enhanced, "5.6.7");
	assert_int_equal(smtp_client_output(c)->len, 0);
	smtp_client_free(c);
}

static void
test_failures(void **state)
{
	struct smtp_client *c = smtp_client_new("me.example", CLIENT_TLS_NO);
	struct client_msg m = { .sender = "s@x", .rcpts = two, .nrcpts = 2, .size = 10 };
	struct client_result res[2];

	say(c, "220 mx\r\n");
	assert_int_equal(say(c, "500 what\r\n"), CLIENT_WAIT);	/* EHLO refused: HELO */
	buf_reset(smtp_client_output(c));
	assert_int_equal(say(c, "250 hi\r\n"), CLIENT_IDLE);
	smtp_client_send(c, &m, res);
	buf_reset(smtp_client_output(c));
	assert_int_equal(say(c, "451 4.3.0 try later\r\n"), CLIENT_WAIT);	/* MAIL */
	expect_out(c, "RSET\r\n");
	assert_int_equal(say(c, "250 ok\r\n"), CLIENT_MSG_DONE);
	assert_int_equal(res[0].code, 451);
	assert_int_equal(res[1].code, 451);
	/* The connection drops in the middle of the next one. */
	smtp_client_send(c, &m, res);
	say(c, "250 ok\r\n");
	smtp_client_fail(c, "connection closed");
	assert_int_equal(res[0].code, 451);
	assert_string_equal(res[0].enhanced, "4.4.2");
	smtp_client_free(c);
}

/* RFC 3461: DSN parameters go to a peer that offers DSN, and only then. */
static void
test_dsn_parameters(void **state)
{
	static const unsigned notify[] = { 2 | 4, 1 };
	static const char *const orcpt[] = { "rfc822;a+b@x.example", "" };
	struct client_msg m = { .sender = "s@x", .rcpts = two, .nrcpts = 2, .size = 10, .ret = 2,
	    .envid = "id 1", .notify = notify, .orcpt = orcpt };
	struct client_result res[2];
	struct smtp_client *c;
	int with;

	for (with = 0; with < 2; with++) {
		c = smtp_client_new("me.example", CLIENT_TLS_NO);
		say(c, "220 mx\r\n");
		buf_reset(smtp_client_output(c));
		say(c, with ? "250-mx\r\n250-DSN\r\n250 PIPELINING\r\n" : "250-mx\r\n250 PIPELINING\r\n");
		smtp_client_send(c, &m, res);
		if (with)
			expect_out(c, "MAIL FROM:<s@x> RET=HDRS ENVID=id+201\r\n"
			    "RCPT TO:<a@x.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bb@x.example\r\n"
			    "RCPT TO:<b@x.example> NOTIFY=NEVER\r\nDATA\r\n");
		else
			expect_out(c, "MAIL FROM:<s@x>\r\nRCPT TO:<a@x.example>\r\n"
			    "RCPT TO:<b@x.example>\r\nDATA\r\n");
		assert_int_equal(smtp_client_dsn_passed(c), with);
		smtp_client_free(c);
	}
}

/* One message to its end on an idle PIPELINING connection. */
static void
one_message(struct smtp_client *c, const struct client_msg *m, struct client_result *res)
{
	assert_int_equal(smtp_client_send(c, m, res), CLIENT_WAIT);
	expect_out(c, "MAIL FROM:<s@x>\r\nRCPT TO:<a@x.example>\r\nDATA\r\n");
	say(c, "250 ok\r\n");
	say(c, "250 ok\r\n");
	assert_int_equal(say(c, "354 go\r\n"), CLIENT_SEND_BODY);
	smtp_client_body_sent(c);
	assert_int_equal(say(c, "250 2.0.0 queued\r\n"), CLIENT_MSG_DONE);
	assert_int_equal(res[0].code, 250);
	assert_int_equal(smtp_client_idle(c), 1);
}

/* A kept connection: RSET first; its 250 makes it idle, anything else ends it. */
static void
test_reuse(void **state)
{
	static const char *const refusals[] = { "421 4.3.2 shutting down\r\n", "554 no\r\n" };
	struct client_msg m = { .sender = "s@x", .rcpts = two, .nrcpts = 1, .size = 10 };
	struct client_result res[1];
	size_t i;

	for (i = 0; i < 3; i++) {
		struct smtp_client *c = smtp_client_new("me.example", CLIENT_TLS_NO);

		say(c, "220 mx\r\n");
		buf_reset(smtp_client_output(c));
		assert_int_equal(say(c, "250-mx\r\n250 PIPELINING\r\n"), CLIENT_IDLE);
		one_message(c, &m, res);
		assert_int_equal(smtp_client_reuse(c), CLIENT_WAIT);
		expect_out(c, "RSET\r\n");
		assert_int_equal(smtp_client_idle(c), 0);
		if (i < 2) {
			assert_int_equal(say(c, refusals[i]), CLIENT_CLOSED);
			assert_string_equal(smtp_client_error(c), i == 0 ?
			    "RSET refused: 421 4.3.2 shutting down" : "RSET refused: 554 no");
			assert_int_equal(smtp_client_output(c)->len, 0);
			assert_int_equal(smtp_client_idle(c), 0);
			/* the old message's results are not touched */
			assert_int_equal(res[0].code, 250);
		} else {
			assert_int_equal(say(c, "250 2.0.0 ok\r\n"), CLIENT_IDLE);
			one_message(c, &m, res);
		}
		smtp_client_free(c);
	}
}

static void
test_reuse_not_idle(void **state)
{
	struct smtp_client *c = smtp_client_new("me.example", CLIENT_TLS_NO);

	say(c, "220 mx\r\n");
	assert_int_equal(smtp_client_reuse(c), CLIENT_CLOSED);	/* still in EHLO */
	assert_string_equal(smtp_client_error(c), "connection not idle");
	smtp_client_free(c);
}

/* Greeting, EHLO, STARTTLS, EHLO again with caps: the AUTH command (or not) follows. */
static enum client_action
to_auth(struct smtp_client *c, const char *caps)
{
	say(c, "220 mx\r\n");
	expect_out(c, "EHLO me.example\r\n");
	assert_int_equal(say(c, "250-mx\r\n250 STARTTLS\r\n"), CLIENT_WAIT);
	expect_out(c, "STARTTLS\r\n");
	assert_int_equal(say(c, "220 go\r\n"), CLIENT_START_TLS);
	assert_int_equal(smtp_client_tls_done(c), CLIENT_WAIT);
	expect_out(c, "EHLO me.example\r\n");
	return say(c, caps);
}

/* RFC 4954 + RFC 4616: "\0user\0pass" in base64; 235 opens the session. */
static void
test_auth_plain(void **state)
{
	static const char *const fails[] = {
		"535 5.7.8 bad credentials\r\n", "454 4.7.0 try later\r\n" };
	size_t i;

	for (i = 0; i < 3; i++) {
		struct smtp_client *c = smtp_client_new("me.example", CLIENT_TLS_MAY);

		smtp_client_set_auth(c, "user", "pass", 0);
		assert_int_equal(to_auth(c, "250-mx\r\n250-AUTH LOGIN PLAIN\r\n250 PIPELINING\r\n"),
		    CLIENT_WAIT);
		expect_out(c, "AUTH PLAIN AHVzZXIAcGFzcw==\r\n");
		if (i < 2) {
			assert_int_equal(say(c, fails[i]), CLIENT_CLOSED);
			assert_string_equal(smtp_client_error(c), i == 0 ?
			    "authentication failed: 535 5.7.8 bad credentials" :
			    "authentication failed: 454 4.7.0 try later");
			assert_string_equal(smtp_client_error_status(c), "4.7.0");
		} else {
			assert_int_equal(say(c, "235 2.7.0 ok\r\n"), CLIENT_IDLE);
			assert_int_equal(smtp_client_output(c)->len, 0);
			assert_int_equal(smtp_client_idle(c), 1);
		}
		smtp_client_free(c);
	}
}

/* LOGIN: the user and the password each answer a 334 challenge. */
static void
test_auth_login(void **state)
{
	struct smtp_client *c = smtp_client_new("me.example", CLIENT_TLS_MAY);

	smtp_client_set_auth(c, "user@x.example", "s3cret", 0);
	assert_int_equal(to_auth(c, "250-mx\r\n250 AUTH LOGIN\r\n"), CLIENT_WAIT);
	expect_out(c, "AUTH LOGIN\r\n");
	assert_int_equal(say(c, "334 VXNlcm5hbWU6\r\n"), CLIENT_WAIT);
	expect_out(c, "dXNlckB4LmV4YW1wbGU=\r\n");
	assert_int_equal(say(c, "334 UGFzc3dvcmQ6\r\n"), CLIENT_WAIT);
	expect_out(c, "czNjcmV0\r\n");
	assert_int_equal(say(c, "235 ok\r\n"), CLIENT_IDLE);
	smtp_client_free(c);

	c = smtp_client_new("me.example", CLIENT_TLS_MAY);
	smtp_client_set_auth(c, "user@x.example", "s3cret", 0);
	to_auth(c, "250-mx\r\n250 AUTH LOGIN\r\n");
	buf_reset(smtp_client_output(c));
	say(c, "334 VXNlcm5hbWU6\r\n");
	buf_reset(smtp_client_output(c));
	assert_int_equal(say(c, "535 5.7.8 no\r\n"), CLIENT_CLOSED);	/* at the user name */
	assert_string_equal(smtp_client_error(c), "authentication failed: 535 5.7.8 no");
	smtp_client_free(c);

	c = smtp_client_new("me.example", CLIENT_TLS_MAY);
	smtp_client_set_auth(c, "u", "p", 0);
	assert_int_equal(to_auth(c, "250-mx\r\n250 AUTH CRAM-MD5\r\n"), CLIENT_CLOSED);
	assert_string_equal(smtp_client_error(c),
	    "the server offers neither AUTH PLAIN nor AUTH LOGIN");
	smtp_client_free(c);
}

/* No TLS, no password on the wire, unless the route says so. */
static void
test_auth_needs_tls(void **state)
{
	struct smtp_client *c = smtp_client_new("me.example", CLIENT_TLS_MAY);

	smtp_client_set_auth(c, "user", "pass", 0);
	say(c, "220 mx\r\n");
	expect_out(c, "EHLO me.example\r\n");
	assert_int_equal(say(c, "250-mx\r\n250 AUTH PLAIN\r\n"), CLIENT_CLOSED);
	assert_int_equal(smtp_client_output(c)->len, 0);
	assert_string_equal(smtp_client_error(c), "credentials are not sent without TLS and "
	    "the server did not start it");
	assert_string_equal(smtp_client_error_status(c), "4.7.10");
	smtp_client_free(c);

	c = smtp_client_new("me.example", CLIENT_TLS_NO);
	smtp_client_set_auth(c, "user", "pass", 1);
	say(c, "220 mx\r\n");
	expect_out(c, "EHLO me.example\r\n");
	assert_int_equal(say(c, "250-mx\r\n250 AUTH PLAIN\r\n"), CLIENT_WAIT);
	expect_out(c, "AUTH PLAIN AHVzZXIAcGFzcw==\r\n");
	smtp_client_free(c);
}

/* The output that carried credentials is overwritten once taken; other output is not marked. */
static void
test_auth_output_wiped(void **state)
{
	static const char line[] = "AUTH PLAIN AHVzZXIAcGFzcw==\r\n";
	static const char zeros[sizeof(line)];
	struct smtp_client *c = smtp_client_new("me.example", CLIENT_TLS_MAY);
	struct buf *o = smtp_client_output(c);

	smtp_client_set_auth(c, "user", "pass", 0);
	say(c, "220 mx\r\n");
	assert_int_equal(smtp_client_output_taken(c), 0);	/* EHLO: no secret */
	say(c, "250-mx\r\n250 STARTTLS\r\n");
	assert_int_equal(smtp_client_output_taken(c), 0);
	say(c, "220 go\r\n");
	smtp_client_tls_done(c);
	smtp_client_output_taken(c);
	say(c, "250-mx\r\n250 AUTH PLAIN\r\n");
	assert_int_equal(o->len, sizeof(line) - 1);
	assert_memory_equal(o->data, line, o->len);
	assert_int_equal(smtp_client_output_taken(c), 1);
	assert_int_equal(o->len, 0);
	assert_memory_equal(o->data, zeros, sizeof(line) - 1);
	assert_int_equal(say(c, "235 ok\r\n"), CLIENT_IDLE);
	assert_int_equal(smtp_client_quit(c), CLIENT_WAIT);
	assert_int_equal(smtp_client_output_taken(c), 0);
	smtp_client_free(c);
}

static void
test_stuffing(void **state)
{
	struct buf out;
	int bol = 1;

	buf_init(&out, 1024);
	assert_int_equal(smtp_client_stuff(&bol, ".a\r\nb\r\n.", 8, &out), 0);
	assert_int_equal(smtp_client_stuff(&bol, ".\r\n", 3, &out), 0);
	assert_int_equal(smtp_client_data_end(bol, &out), 0);
	assert_string_equal(out.data, "..a\r\nb\r\n...\r\n.\r\n");
	buf_reset(&out);
	bol = 1;
	smtp_client_stuff(&bol, "x", 1, &out);
	smtp_client_data_end(bol, &out);
	assert_string_equal(out.data, "x\r\n.\r\n");
	buf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipelined_mixed_results),
		cmocka_unit_test(test_no_pipelining_chunking_tls),
		cmocka_unit_test(test_refusals_before_sending),
		cmocka_unit_test(test_failures),
		cmocka_unit_test(test_dsn_parameters),
		cmocka_unit_test(test_stuffing),
		cmocka_unit_test(test_reuse),
		cmocka_unit_test(test_reuse_not_idle),
		cmocka_unit_test(test_auth_plain),
		cmocka_unit_test(test_auth_login),
		cmocka_unit_test(test_auth_needs_tls),
		cmocka_unit_test(test_auth_output_wiped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
