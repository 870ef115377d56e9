/*
 * journal — the relay journal (spool/relay.journal): one line per
 * recipient a remote server accepted (2xx), appended by the mta before it
 * reports the result to the queue:
 *
 *     ID INDEX\n        the peer took over the DSN duty (RFC 3461 5.2)
 *     ID INDEX r\n      it did not: a NOTIFY=SUCCESS report is ours to send
 *
 * The queue replays it at start, so a kill of the whole daemon between a
 * peer's 250 and the queue's record of it does not send that recipient's
 * mail again (nor lose its success report), and empties it whenever no
 * relay job is outstanding. Lines come from another process and are
 * checked like any outside input.
 */
#ifndef TERN_JOURNAL_H
#define TERN_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "queue/envelope.h"

#define RELAY_JOURNAL "relay.journal"	/* in the spool */
#define JOURNAL_LINE_MAX (QUEUE_ID_LEN + 8)	/* "ID 9999 r\n" */

struct journal_line {
	char     id[QUEUE_ID_LEN + 1];
	uint32_t index;		/* below ENVELOPE_MAX_RCPT */
	int      report;	/* 1: "r", the success report is ours */
};

/*
 * Parses one line without its LF: a queue ID (16 lower-case hex digits),
 * one space, a recipient index (decimal, below ENVELOPE_MAX_RCPT, no
 * leading zeros), optionally " r". 0, or -1 for anything else (a torn last
 * line, say).
 */
int journal_parse_line(const char *p, size_t n, struct journal_line *out);

/*
 * Writes one line with its LF into buf (at least JOURNAL_LINE_MAX + 1
 * bytes); the length, or 0 when the ID or index is not valid.
 */
size_t journal_format_line(char *buf, size_t size, const char *id, uint32_t index, int report);

#endif
