/*
 * dsn — builds a delivery status notification (RFC 3464) about a queued
 * message: a complete RFC 5322 message with CRLF line ends, of type
 * multipart/report (RFC 6522) holding a plain-English explanation, the
 * message/delivery-status report and the returned content (the whole
 * message or its headers, per RET). The caller sends it from <> to the
 * original envelope sender; it never decides whether a DSN is due.
 */
#ifndef TERN_DSN_H
#define TERN_DSN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"

struct dsn_rcpt {
	const char *final_rcpt;		/* the address tried */
	const char *orig_rcpt;		/* ORCPT "addr-type;address" or NULL */
	const char *action;		/* failed|delayed|delivered|relayed|expanded */
	const char *status;		/* "5.1.1" (RFC 3463) */
	const char *remote_mta;		/* host name, or NULL: local reason */
	const char *diagnostic;		/* remote reply text or a local reason; may be NULL */
	time_t last_attempt;		/* 0: not known */
	time_t will_retry_until;	/* delayed only, else 0 */
};

struct dsn_input {
	const char *reporting_mta;	/* our host name */
	const char *queue_id;
	const char *envid;		/* ENVID, decoded, or NULL */
	time_t arrival;
	const char *sender;		/* the original envelope sender: the DSN goes to it */
	const char *postmaster;		/* From: of the DSN, "MAILER-DAEMON@host" */
	int ret_full;			/* 1: whole message, 0: headers only */
	const struct dsn_rcpt *rcpts;
	size_t nrcpts;
	time_t now;
	const char *message_id_domain;
	uint64_t content_len;		/* bytes of content_fd that are the message
					   (its envelope may follow); 0: the whole file */
};

/* Flags dsn_build returns: what the transport of the DSN must offer. */
#define DSN_NEEDS_8BITMIME	1	/* 8-bit octets in a part: BODY=8BITMIME */
#define DSN_NEEDS_SMTPUTF8	2	/* the sender's address is UTF-8 */

/*
 * Appends the DSN to out (out unchanged on error). content_fd is the
 * queued message, read with pread from offset 0. At most max_returned
 * octets of it are returned: a larger message (or one that is not valid
 * 8-bit MIME text: NUL, bare CR or LF, lines over 998 octets) has only
 * its header section returned, and if that is not possible either,
 * nothing. Addresses that are not ASCII appear in the report with
 * address type utf-8 (RFC 6533). Subject and wording follow the actions:
 * any "failed" makes a bounce, else any "delayed" a delay warning, else a
 * success report.
 * Returns -1 with err set (bad input, I/O error, out's limit), or the
 * DSN_NEEDS_* flags (0 for a 7-bit DSN).
 */
int dsn_build(const struct dsn_input *in, int content_fd, size_t max_returned,
    struct buf *out, char *err, size_t errlen);

#endif
