/*
 * checkd — the check process: SPF, DKIM and DMARC of inbound messages for
 * the smtp workers (which cannot do DNS), through mailauth/authcheck.
 * A pool of threads, each with its own synchronous libunbound resolver,
 * runs the checks so that one slow DNS answer holds up one message only;
 * the event loop reads requests and sends answers. Pending requests are
 * bounded; an overflow or a request that waited past the timeout gets a
 * temperror answer at once.
 */
#ifndef TERN_CHECKD_H
#define TERN_CHECKD_H

#include "daemon/config.h"

/* Runs until SIGTERM, or until the parent and every worker channel are gone. */
int checkd_main(const struct config *cfg, int parent_fd);

#endif
