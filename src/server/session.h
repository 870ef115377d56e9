/*
 * session — one SMTP server session as a state machine free of I/O.
 * The worker pushes the client's bytes in with session_input() and sends
 * what accumulates in session_output(); the session asks for a queue file
 * and for a commit through session_ops and is told the outcome with
 * session_open_done() / session_commit_done(). While it waits, input stays
 * buffered (pipelined commands are answered in order once it resumes).
 * RFC 5321 with PIPELINING (2920), SIZE (1870), 8BITMIME (6152), SMTPUTF8
 * (6531), CHUNKING (3030) and ENHANCEDSTATUSCODES (2034, 3463).
 */
#ifndef TERN_SESSION_H
#define TERN_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "daemon/config.h"

struct session;

/* What the check process is asked at the end of a message on an mx listener. */
struct session_check {
	uint32_t       seq;		/* echoed in the answer: a late answer is ignored */
	const char    *ip, *helo, *mailfrom;	/* mailfrom "" for <> */
	const char    *hdr;		/* the header section as received (blank line included) */
	size_t         hdrlen;
	const uint8_t *body;		/* enum dkim_bodyv per DKIM-Signature */
	size_t         nbody;
	const unsigned char *arc;	/* ARC_BODY_HASHES (arc.h); NULL: no ARC-Seal named */
};

struct session_check_answer {
	uint32_t    seq;
	uint32_t    spf;		/* enum spf_result */
	uint32_t    dmarc;		/* enum dmarc_result */
	uint32_t    disposition;	/* enum dmarc_policy */
	const char *header;		/* "Authentication-Results: ...\r\n" */
	size_t      len;
};

struct session_ops {
	/* Ask for a new queue file; answer with session_open_done(). */
	void (*open)(void *ctx, struct session *s);
	/* Append message bytes to the open queue file; 0 or an errno. */
	int  (*write)(void *ctx, struct session *s, const char *p, size_t n);
	/* Commit the open file with this envelope text; answer with session_commit_done(). */
	void (*commit)(void *ctx, struct session *s, const char *id, const struct buf *env);
	/* Drop the open file (transaction failed or aborted). */
	void (*abort)(void *ctx, struct session *s, const char *id);
	/* One log line about the session (logfmt fields without proc/session). */
	void (*log)(void *ctx, struct session *s, const char *line);
	/* Check a password (elsewhere); answer with session_auth_done(). */
	void (*auth)(void *ctx, struct session *s, const char *user, const char *pass);
	/* May this client start another message now (per-address rate)? 0 yes, -1 no. NULL: yes. */
	int  (*admit)(void *ctx, struct session *s);
	/* Run the SPF/DKIM/DMARC checks (elsewhere); answer with session_check_done().
	 * NULL: messages are not checked. */
	void (*check)(void *ctx, struct session *s, const struct session_check *q);
};

enum session_auth { SESSION_AUTH_OK, SESSION_AUTH_FAIL, SESSION_AUTH_LOCKED, SESSION_AUTH_TEMPFAIL };

enum session_wait {
	SESSION_WAIT_COMMAND,	/* reading commands: command timeout */
	SESSION_WAIT_DATA,	/* reading message data: data block timeout */
	SESSION_WAIT_QUEUE,	/* waiting on the queue: commit timeout */
	SESSION_WAIT_CLOSE,	/* flush the output and close */
	SESSION_WAIT_TLS,	/* flush the output, then the TLS handshake */
	SESSION_WAIT_CHECK,	/* waiting on the check process: auth_checks timeout */
};

struct session_stats {
	unsigned commands, messages, rcpts, errors;
};

/* client_ip: text form of the peer's address; cfg must outlive the session. */
struct session *session_new(const struct config *cfg, const struct session_ops *ops,
    void *ctx, const char *client_ip, uint64_t sid);
void session_free(struct session *s);

/* Writes the 220 greeting. */
void session_greet(struct session *s);
/* Writes a reply and closes (421 overload, 554 early talker, timeouts...). */
void session_refuse(struct session *s, int code, const char *enh, const char *text);
/* Pushes client bytes; processes as far as possible. len 0 just resumes. */
void session_input(struct session *s, const char *data, size_t len);
/* The client went away: abort any open transaction. */
void session_hangup(struct session *s);
/* The timeout of the current wait fired. */
void session_timeout(struct session *s);
/* The daemon stops: answer 421 at the next command, close when idle. */
void session_shutdown(struct session *s);

/* Which listener the client came in on, and whether its address is trusted. */
void session_set_listener(struct session *s, const struct listen_cfg *l, int trusted);
/* The TLS handshake finished (after STARTTLS, or at once on implicit TLS). */
void session_tls_started(struct session *s, const char *info);
void session_auth_done(struct session *s, enum session_auth result);

void session_open_done(struct session *s, const char *id, int err);
/* The checks' answer; NULL when they could not run (channel gone, timeout):
 * the message is then accepted with temperror results. */
void session_check_done(struct session *s, const struct session_check_answer *a);
void session_commit_done(struct session *s, int err);

struct buf *session_output(struct session *s);
enum session_wait session_waiting(const struct session *s);
/* Bytes of input buffered but not yet processed (the worker stops reading when high). */
size_t session_pending_input(const struct session *s);
uint64_t session_id(const struct session *s);
/* True between the end of a transaction and the next MAIL: safe to stop. */
int session_idle(const struct session *s);
const struct session_stats *session_stats(const struct session *s);
/*
 * Between transactions, gives back the memory of the input and output
 * buffers if they are empty (the input one may have grown to a whole read
 * of message data): an idle connection then costs only the session itself.
 * They grow again with the next command.
 */
void session_trim(struct session *s);

#endif
