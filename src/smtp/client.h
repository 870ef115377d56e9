/*
 * client — the SMTP client's protocol logic (RFC 5321 with PIPELINING,
 * SIZE, 8BITMIME, SMTPUTF8, CHUNKING, STARTTLS), free of I/O like the
 * server session: the outbound process feeds it the server's replies
 * (smtp/reply.h) and sends what it writes into its output buffer; the
 * returned action says what else to do (start TLS, send the message
 * body, collect results). One client is one connection; several messages
 * may follow one another on it.
 */
#ifndef TERN_CLIENT_H
#define TERN_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "smtp/reply.h"

#define CLIENT_MAX_RCPT 1000

enum client_tls { CLIENT_TLS_NO, CLIENT_TLS_MAY, CLIENT_TLS_MUST };

struct client_msg {
	const char         *sender;		/* "" for the null path */
	const char *const  *rcpts;
	size_t              nrcpts;
	uint64_t            size;		/* octets of the content */
	int                 body_8bit;
	int                 smtputf8;		/* needs SMTPUTF8 (UTF-8 addresses) */
	/* DSN (RFC 3461), passed on when the peer offers DSN: */
	int                 ret;		/* 0 not given, 1 FULL, 2 HDRS */
	const char         *envid;		/* decoded, or NULL */
	const unsigned     *notify;		/* per recipient, DSN_NOTIFY_* bits, or NULL */
	const char *const  *orcpt;		/* per recipient "type;addr" decoded, or NULL */
};

struct client_result {
	int  code;			/* 2xx delivered, 4xx try later, 5xx bounce */
	char enhanced[16];		/* "5.1.1", or derived from the code */
	char text[512];			/* the server's reply, or our reason */
};

enum client_action {
	CLIENT_WAIT,		/* send the output, read the next reply */
	CLIENT_START_TLS,	/* output sent? then the TLS handshake; call smtp_client_tls_done */
	CLIENT_SEND_BODY,	/* send the output, then the content (see smtp_client_chunking) */
	CLIENT_MSG_DONE,	/* results of the current message are ready */
	CLIENT_IDLE,		/* ready for a message (after EHLO, or after one is done) */
	CLIENT_CLOSED,		/* nothing more on this connection */
};

struct smtp_client;

struct smtp_client *smtp_client_new(const char *helo_name, enum client_tls tls);
void smtp_client_free(struct smtp_client *c);

/*
 * Log in after EHLO (RFC 4954, PLAIN or LOGIN) before the first message;
 * without TLS only if without_tls. The strings must outlive the client.
 */
void smtp_client_set_auth(struct smtp_client *c, const char *user, const char *pass,
    int without_tls);
/* The next server reply (the first one is the greeting). */
enum client_action smtp_client_reply(struct smtp_client *c, const struct smtp_reply *r);
/* The handshake after STARTTLS worked: EHLO again. */
enum client_action smtp_client_tls_done(struct smtp_client *c);
/* Start a message on an idle connection; results go to out[0..nrcpts). */
enum client_action smtp_client_send(struct smtp_client *c, const struct client_msg *m,
    struct client_result *out);
/* The content has been sent (for DATA: stuffed and ended with ".\r\n"). */
enum client_action smtp_client_body_sent(struct smtp_client *c);
/*
 * A kept connection is taken up for another message: forget the last one
 * and check the server is still there (RSET); CLIENT_IDLE follows its 250.
 */
enum client_action smtp_client_reuse(struct smtp_client *c);
/* Between messages with nothing unsent: the connection may be kept. */
int smtp_client_idle(const struct smtp_client *c);
/* Say goodbye (QUIT). */
enum client_action smtp_client_quit(struct smtp_client *c);
/*
 * The connection failed (closed, timed out, TLS failed) with this reason:
 * every recipient not yet answered of the current message gets 4xx.
 */
void smtp_client_fail(struct smtp_client *c, const char *why);

struct buf *smtp_client_output(struct smtp_client *c);
/*
 * The output has been copied out: empties it, overwriting it first if it
 * held AUTH credentials. Returns 1 in that case (the caller wipes its copy
 * once sent), else 0.
 */
int smtp_client_output_taken(struct smtp_client *c);
/* For SEND_BODY: 1 = BDAT (the output already holds "BDAT n LAST"), 0 = DATA. */
int smtp_client_chunking(const struct smtp_client *c);
/* Seconds to wait for the reply now expected (RFC 5321 4.5.3.2). */
unsigned smtp_client_timeout(const struct smtp_client *c);
const struct ehlo_caps *smtp_client_caps(const struct smtp_client *c);
/* Whether the DSN parameters of the current message went to the peer. */
int smtp_client_dsn_passed(const struct smtp_client *c);
int smtp_client_tls_active(const struct smtp_client *c);
/* Why the connection as a whole failed ("" if it did not). */
const char *smtp_client_error(const struct smtp_client *c);
/* The enhanced status of that failure ("4.7.4"), or "4.4.2" when unknown. */
const char *smtp_client_error_status(const struct smtp_client *c);

/*
 * Dot-stuffing for DATA (RFC 5321 4.5.2): copies in[0..n) to out adding a
 * '.' before every line that starts with one. *bol carries "at the start of
 * a line" across calls (start with 1). smtp_client_data_end() appends the
 * final CRLF if the content lacked it, then ".\r\n".
 */
int smtp_client_stuff(int *bol, const char *in, size_t n, struct buf *out);
int smtp_client_data_end(int bol, struct buf *out);

#endif
