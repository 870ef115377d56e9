/*
 * reply — the SMTP client's reader of server replies (RFC 5321 4.2):
 * "CODE-text" continuation lines then "CODE text" (or a bare "CODE"),
 * with the enhanced status code (RFC 2034) split out, and the EHLO
 * keywords a client acts on (RFC 1869 4.3). Resumable: bytes go in as
 * they arrive, a whole reply comes out when its last line is there.
 */
#ifndef TERN_REPLY_H
#define TERN_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define REPLY_LINE_MAX  2048	/* generous: RFC 5321 4.5.3.1.5 says 512 */
#define REPLY_LINES_MAX 64
/*
 * The text kept of a reply: all lines are read and checked, but their text
 * is cut here. EHLO replies are a few hundred bytes, error texts are kept
 * to 300; a reply sits in every job and idle connection of the mta and is
 * copied when a connection changes hands (it was 128 KiB: a third of the
 * mta's CPU went to zeroing and copying it).
 */
#define REPLY_TEXT_MAX  8192

struct smtp_reply {
	int    code;		/* 200..599 */
	char   enhanced[16];	/* "2.1.5" of the first line, "" if none */
	size_t nlines;
	/* The text of all lines (after "CODE-" / "CODE "), joined by '\n'. */
	char   text[REPLY_TEXT_MAX];
	size_t textlen;
};

enum reply_status { REPLY_MORE = 0, REPLY_DONE, REPLY_ERROR };

struct reply_reader {
	struct buf line;	/* a partial line */
	int        code;	/* of the reply being read, 0 before its first line */
	size_t     nlines;
	struct smtp_reply cur;
	char       why[64];
};

void reply_reader_init(struct reply_reader *r);
/* dst = src, the used part of the text only. */
void reply_copy(struct smtp_reply *dst, const struct smtp_reply *src);
void reply_reader_free(struct reply_reader *r);
/*
 * Consumes bytes from p[0..n); *used tells how many. REPLY_DONE: *out holds
 * a whole reply and bytes after it are left unconsumed (pipelined replies
 * come one call at a time). REPLY_ERROR: the server broke the syntax
 * (r->why says how); the connection cannot go on.
 */
enum reply_status reply_feed(struct reply_reader *r, const char *p, size_t n,
    size_t *used, struct smtp_reply *out);

/* What an EHLO reply offers. */
struct ehlo_caps {
	int      pipelining, eightbitmime, smtputf8, starttls, chunking, dsn;
	int      enhancedstatuscodes, requiretls;
	int      size_given;
	uint64_t size;		/* SIZE value; 0 = no limit stated */
	int      auth_plain, auth_login;
};

/* Reads the keywords of a 250 EHLO reply (lines after the first). */
void reply_ehlo_caps(const struct smtp_reply *r, struct ehlo_caps *caps);

#endif
