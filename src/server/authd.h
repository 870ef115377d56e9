/*
 * authd — the process that checks passwords for AUTH, so that the smtp
 * workers (which face the network) never hold a password hash: they keep
 * the user names only. It counts failures per client address and locks
 * an address out for a while after too many (auth { max_failures,
 * failure_window, lockout }), and tells the worker how long to wait before
 * answering a failure (a delay that grows with each failure).
 */
#ifndef TERN_AUTHD_H
#define TERN_AUTHD_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "daemon/config.h"

/* Runs until the parent's channel closes or SIGTERM. */
int authd_main(const struct config *cfg, int parent_fd);

/* The stored password field for a login ("user@domain" or "user"), or NULL. */
const char *authd_lookup(const struct config *cfg, const char *login);

/* Failure bookkeeping, separate for tests. */
struct authd_failures;
struct authd_failures *authd_failures_new(size_t slots);
void authd_failures_free(struct authd_failures *f);
/* 1 if addr is locked out at now. */
int  authd_locked(struct authd_failures *f, const char *addr, time_t now);
/* Records a failure; returns the failures counted in the window (lockout starts at max). */
unsigned authd_fail(struct authd_failures *f, const char *addr, time_t now,
    unsigned window, unsigned max, unsigned lockout);

#endif
