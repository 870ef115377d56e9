/*
 * queue — the process that owns the spool. It creates message files for
 * the smtp workers (passing them an open descriptor), commits them (the
 * envelope and a footer after the content, one fdatasync per file, one
 * fsync of the queue directory shared by the batch unless its names were
 * synced early) before any 250 is given, hands committed messages to the
 * deliver process, records per-recipient results, retries temporary
 * failures, and on start recovers what a crash left: committed messages
 * are delivered again, partial ones removed.
 *
 * Spool layout (cwd of the process): queue/ID.msg content (then envelope
 * and footer: queue/spoolfile.h), queue/ID.env the envelope once rewritten
 * (it then takes precedence), tmp/ for envelope rewrites, free/ files kept
 * for reuse.
 */
#ifndef TERN_QUEUE_H
#define TERN_QUEUE_H

#include <stdint.h>

#include "daemon/config.h"

/*
 * Runs the queue process: parent_fd is its channel to the parent (new
 * worker, deliver and mta channels arrive there), deliver_fd and mta_fd its
 * first channels to the deliver and mta processes. The current directory must be the spool.
 * Returns when the parent goes away or SIGTERM arrives.
 */
int queue_main(const struct config *cfg, int parent_fd, int deliver_fd, int mta_fd);

/*
 * The next queue ID after `prev` (may be "" at start) for the time
 * now_us (microseconds since the epoch): 13 hex digits of time and 3 of
 * sequence, so IDs are unique within one queue and sort by time.
 */
void queue_id_next(char out[17], const char *prev, uint64_t now_us);

#define QUEUE_PIDFILE "queue.pid"	/* in the spool: the queue process */

/* Creates spool/queue and spool/tmp if missing. 0 or -1 with errno. */
int queue_spool_init(void);

#endif
