/*
 * connlimit — connection counts shared by all smtp workers, for the
 * limits on connections in total and per client address (RFC 5321 lets a
 * server refuse with 421). A table in shared memory made by the parent
 * before it forks: each worker writes only its own row (slot), everyone
 * reads all rows, so a worker that dies leaves a row the parent clears.
 * IPv6 clients are counted per /64, since one host holds a whole /64.
 */
#ifndef TERN_CONNLIMIT_H
#define TERN_CONNLIMIT_H

#include <stddef.h>
#include <sys/socket.h>

#define CONNLIMIT_SLOTS 128

struct connlimit;

enum connlimit_verdict { CONNLIMIT_OK = 0, CONNLIMIT_TOTAL, CONNLIMIT_PER_IP };

struct connlimit *connlimit_create(void);
/*
 * Counts a new connection in `slot` unless a limit (0 = none) would be
 * passed. On CONNLIMIT_OK *bucket is set for connlimit_release().
 */
enum connlimit_verdict connlimit_acquire(struct connlimit *cl, int slot,
    const struct sockaddr *sa, size_t max_total, size_t max_per_ip, unsigned *bucket);
void connlimit_release(struct connlimit *cl, int slot, unsigned bucket);
/*
 * Counts one message (a MAIL command) from the client in the current
 * minute; returns 0, or -1 when that passes max (0 = no limit).
 */
int  connlimit_message(struct connlimit *cl, const struct sockaddr *sa, size_t max,
    unsigned long now_minute);
void connlimit_clear_slot(struct connlimit *cl, int slot);
/* Connections open now, over all workers (for ternctl status). */
size_t connlimit_total(struct connlimit *cl);

#endif
