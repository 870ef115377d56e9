/*
 * journal — the relay journal (spool/relay.journal): one line "ID INDEX\n"
 * per recipient a remote server accepted (2xx), appended by the mta
 * before it reports the result to the queue. The queue replays it at
 * start, so a kill of the whole daemon between a peer's 250 and the
 * queue's record of it does not send that recipient's mail again, and
 * empties it whenever no relay job is outstanding. Lines come from
 * another process and are checked like any outside input.
 */
#ifndef TERN_JOURNAL_H
#define TERN_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "queue/envelope.h"

#define RELAY_JOURNAL "relay.journal"	/* in the spool */

/*
 * Parses one line without its LF: a queue ID (16 lower-case hex digits),
 * one space, a recipient index (decimal, below ENVELOPE_MAX_RCPT, no
 * leading zeros). 0, or -1 for anything else (a torn last line, say).
 */
int journal_parse_line(const char *p, size_t n, char id[QUEUE_ID_LEN + 1], uint32_t *index);

#endif
