/*
 * worker — an smtp worker process: accepts on the listening sockets it
 * inherited (the kernel spreads connections over the workers), runs one
 * session per connection on one event loop, and talks to the queue
 * process for message files and commits. It holds no key, no spool
 * access and no table file: only what it was forked with.
 */
#ifndef TERN_WORKER_H
#define TERN_WORKER_H

#include <stddef.h>

#include "daemon/config.h"
#include "server/connlimit.h"

struct tls_server;

struct worker_args {
	const struct config *cfg;
	const int           *listen_fds;	/* listen_fds[i] is cfg->listen[i] */
	size_t               nlisten;
	int                  queue_fd;
	int                  auth_fd;		/* -1 without an auth process */
	int                  check_fd;		/* -1 without a check process */
	struct tls_server   *tls;		/* NULL without a tls block */
	struct connlimit    *connlimit;
	int                  slot;
};

/* Runs until SIGTERM (then drains sessions) or until the queue goes away. */
int worker_main(const struct worker_args *args);

#endif
