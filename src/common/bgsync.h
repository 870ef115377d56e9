/*
 * bgsync — fsync of one descriptor (a directory) on a thread of its own,
 * on request. Requests that arrive while a sync runs share the next one,
 * so a burst costs at most two. The queue asks for one as soon as it gives
 * a file its name, so that by the time the message is committed the name
 * is usually durable already and the commit waits for one flush (the
 * file's), not two.
 */
#ifndef TERN_BGSYNC_H
#define TERN_BGSYNC_H

#include <stdint.h>

struct bgsync;

/* A thread for fd (not owned). NULL if it cannot start. */
struct bgsync *bgsync_new(int fd);
void bgsync_free(struct bgsync *s);

/* Asks for a sync that covers everything done to fd until now: its ticket. */
uint64_t bgsync_request(struct bgsync *s);

/* 1 if a sync that started after ticket t was requested has succeeded. */
int bgsync_covered(struct bgsync *s, uint64_t t);

#endif
