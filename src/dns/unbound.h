/*
 * unbound — the libunbound resolver. dns_unbound_resolver() gives the
 * synchronous dns_resolver (worker threads and processes); the async
 * calls serve an event loop: attach to a libevent base (or watch
 * dns_unbound_fd() yourself and call dns_unbound_process()), then
 * dns_unbound_query_async(). Every query ends within timeout_ms, a late
 * one as DNS_TEMPFAIL. One dns_unbound belongs to one thread.
 */
#ifndef TERN_DNS_UNBOUND_H
#define TERN_DNS_UNBOUND_H

#include <stddef.h>

#include "dns/dns.h"

struct event_base;
struct dns_unbound;

/*
 * server: "127.0.0.1", "127.0.0.1@5353", "::1@5353" to forward every
 * query there (no DNSSEC validation); NULL: the servers of
 * /etc/resolv.conf. NULL with a reason in err on failure.
 */
struct dns_unbound *dns_unbound_new(const char *server, unsigned timeout_ms,
    char *err, size_t errlen);
/* Cancels pending queries without calling their callbacks. */
void dns_unbound_free(struct dns_unbound *u);

/* Blocks for at most the timeout; do not use with async queries pending. */
struct dns_resolver dns_unbound_resolver(struct dns_unbound *u);

/*
 * Called once per query with its answer, which is freed when the callback
 * returns (to keep it, copy the struct and dns_answer_init() the original).
 * The callback may start or cancel queries, not free u.
 */
typedef void dns_unbound_cb(void *arg, struct dns_answer *ans);

/* Starts a query; returns its id (> 0), or -1 (bad name, ENOMEM). */
int  dns_unbound_query_async(struct dns_unbound *u, const char *name,
    enum dns_type type, dns_unbound_cb *cb, void *arg);
/* Forgets a pending query: its callback will not be called. 0 or -1. */
int  dns_unbound_cancel(struct dns_unbound *u, int id);
size_t dns_unbound_pending(const struct dns_unbound *u);

/* Readable when answers wait; then call dns_unbound_process(). */
int  dns_unbound_fd(const struct dns_unbound *u);
/* Delivers the answers that arrived and times out the overdue queries. */
void dns_unbound_process(struct dns_unbound *u);
/* Milliseconds until the next query times out; -1 when none pend. */
int  dns_unbound_timeout_ms(const struct dns_unbound *u);

/* Watches the fd and the timeouts on base; 0, or -1 on failure. */
int  dns_unbound_attach(struct dns_unbound *u, struct event_base *base);

#endif
