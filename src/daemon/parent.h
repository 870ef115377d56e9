/*
 * parent — the root process: opens the listening sockets, prepares the
 * spool and mailbox folders, forks the queue, the deliver process and the
 * smtp workers (each with its own rights), replaces children that die,
 * reloads on SIGHUP and stops them all on SIGTERM. It never parses SMTP.
 */
#ifndef TERN_PARENT_H
#define TERN_PARENT_H

#include "daemon/config.h"

/* Takes ownership of cfg. Returns the process exit status. */
int parent_main(struct config *cfg, const char *conf_path);

#endif
