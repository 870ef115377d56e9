/*
 * envelope — a queued message's envelope: sender, recipients with their
 * delivery state, and what the session learned (client, HELO, protocol).
 * Stored beside the message content as a small versioned text file:
 *
 *   version: 2
 *   id: 0187a3f2c4d1e00a
 *   ...one "key: value" line per field, "rcpt:" once per recipient...
 *   end: 1
 *
 * One escaping rule for every value: octets <= 0x20, 0x7f and '%' are
 * written as %XX (upper-case hex); nothing else is escaped. An empty value
 * is written "-", so a value that is exactly "-" is written "%2D". A file
 * without the final "end: 1" line is torn and refused.
 *
 * Version 2 added the DSN (RFC 3461) and retry data: the keys ret, envid,
 * next_attempt, warned and dsn_kind, and four more fields at the end of
 * each rcpt line (notify, orcpt, remote_mta, status). Version 1 files are
 * still read (the new data takes its defaults).
 *
 * Version 3 added what the inbound checks decided: "prepend" (header
 * fields written before the content at delivery and relay: the
 * Authentication-Results field) and "quarantine" (file into the junk
 * folder). Versions 1 and 2 are read; only version 3 is written.
 */
#ifndef TERN_ENVELOPE_H
#define TERN_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "smtp/parse.h"
#include "smtp/xtext.h"

#define ENVELOPE_VERSION  3
#define ENVELOPE_PREPEND_MAX (32 * 1024)	/* octets of prepend */
#define ENVELOPE_STATUS_MAX 16	/* "5.123.456" fits with room */
#define QUEUE_ID_LEN      16
#define ENVELOPE_MAX_RCPT 10000

enum rcpt_state { RCPT_PENDING = 0, RCPT_DELIVERED, RCPT_FAILED, RCPT_HELD };
enum rcpt_kind  { RCPTK_LOCAL = 0, RCPTK_REMOTE };

struct envelope_rcpt {
	enum rcpt_state state;
	enum rcpt_kind  kind;
	char user[SMTP_LOCAL_MAX + 1];		/* local: mailbox user */
	char domain[SMTP_DOMAIN_MAX + 1];	/* local: mailbox domain */
	char addr[SMTP_PATH_MAX + 1];		/* final address */
	char orig[SMTP_PATH_MAX + 1];		/* as the client gave it in RCPT TO */
	uint32_t attempts;
	char last_error[256];			/* last failure text, "" if none */
	/* version 2 */
	unsigned notify;			/* DSN_NOTIFY_* bits, 0 = not given */
	char orcpt[DSN_ORCPT_MAX + 1];		/* "rfc822;addr" xtext-decoded, or "" */
	char remote_mta[SMTP_DOMAIN_MAX + 1];	/* host of the last attempt, or "" */
	char status[ENVELOPE_STATUS_MAX];	/* "5.1.1" of the last result, or "" */
};

/* What the message itself is: a DSN is never answered by a bounce. */
enum dsn_kind { DSN_KIND_NONE = 0, DSN_KIND_BOUNCE, DSN_KIND_DELAY,
    DSN_KIND_SUCCESS };

/*
 * Appended to envelope.proto for mail received on a submission listener
 * (so, from a user: authenticated, or a client of trusted_networks): the
 * queue lets the mta sign it. "UTF8SMTPSA/sub" still fits proto.
 */
#define ENVELOPE_PROTO_SUB "/sub"

struct envelope {
	uint32_t version;
	char     id[QUEUE_ID_LEN + 1];
	int64_t  created;		/* unix seconds */
	char     sender[SMTP_PATH_MAX + 1];	/* "" for the null path */
	char     helo[SMTP_DOMAIN_MAX + 1];
	char     client_addr[64];	/* "192.0.2.1", "2001:db8::1" or "local" */
	char     proto[16];		/* SMTP, ESMTP, ESMTPS, UTF8SMTP ..., then
					 * ENVELOPE_PROTO_SUB if it came in on a
					 * submission listener; "local" */
	int      body_8bit;		/* BODY=8BITMIME */
	int      smtputf8;		/* SMTPUTF8 given */
	uint64_t size;			/* octets of the stored content */
	struct envelope_rcpt *rcpts;	/* malloc'd */
	size_t   nrcpts;
	size_t   rcpt_cap;
	/* version 2 */
	enum dsn_ret  ret;		/* RET=, DSN_RET_UNSPEC if not given */
	char     envid[DSN_ENVID_MAX + 1];	/* ENVID= decoded, or "" */
	int64_t  next_attempt;		/* unix seconds, 0 = now */
	int      warned;		/* the delay warning was sent */
	enum dsn_kind dsn_kind;
	/* version 3 */
	char    *prepend;		/* malloc'd header fields (CRLF lines), or NULL */
	int      quarantine;		/* deliver into the junk folder */
};

/* 1 if s[0..n) is a queue ID: QUEUE_ID_LEN lower-case hex digits. */
int  envelope_id_valid(const char *s, size_t n);

void envelope_init(struct envelope *e);
void envelope_free(struct envelope *e);
/* Replaces e->prepend with a copy of p[0..n) (n 0: none); -1 on ENOMEM, a NUL
 * byte or n over ENVELOPE_PREPEND_MAX. */
int  envelope_set_prepend(struct envelope *e, const char *p, size_t n);
/* The length of e->prepend (0 without). */
size_t envelope_prepend_len(const struct envelope *e);
/* Appends a recipient (copied); -1 on ENOMEM or past ENVELOPE_MAX_RCPT. */
int  envelope_add_rcpt(struct envelope *e, const struct envelope_rcpt *r);
/*
 * Appends the text form (always version 3) to out; -1 (out unchanged) if
 * out's limit is reached or e could not be read back (bad id, negative
 * created or next_attempt, unknown state or enum, invalid notify bits or
 * status, a string not terminated within its array). e->version may be 1,
 * 2 or 3: an older envelope read earlier is written as version 3.
 */
int  envelope_encode(const struct envelope *e, struct buf *out);
/*
 * Parses the text form. Unknown keys are refused (the version says what
 * is known: a version 1 file may not hold version 2 keys, and its rcpt
 * lines have 8 fields, version 2's and 3's 12); a missing "end:", a bad
 * escape, an over-long value or a version other than 1, 2 or 3 is an error
 * with *why set. e->version tells which version the file was; newer data
 * of an older file keeps its defaults (0, "", NULL).
 * *e need not be initialised: it is overwritten (free its old content
 * first). On error *e is left freed. Returns 0 or -1.
 */
int  envelope_decode(const char *data, size_t len, struct envelope *e,
    const char **why);

#endif
