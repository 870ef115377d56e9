/*
 * cache — a bounded cache of DNS answers in front of other resolvers, so
 * that a busy process asks its resolver (and pays its thread hand-offs and
 * pipes) once per TTL per name instead of once per message. An answer is
 * kept for the time its resolver allows (dns_answer.ttl, capped), a
 * DNS_TEMPFAIL or DNS_PERMFAIL never. Names are keyed as given (no case
 * folding), so an answer served from the cache is the one the resolver
 * gave for that very name, with each record's TTL lowered by its age.
 *
 * One dns_cache is shared by many threads (it locks); each thread asks
 * through its own dns_cache_view, which holds that thread's resolver.
 */
#ifndef TERN_DNS_CACHE_H
#define TERN_DNS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"

#define DNS_CACHE_TTL_MAX 3600	/* seconds: at most this long, whatever the TTL */

struct dns_cache;

/* At most max_entries answers and max_bytes of them (the oldest used go
 * first); NULL on ENOMEM. */
struct dns_cache *dns_cache_new(size_t max_entries, size_t max_bytes);
void dns_cache_free(struct dns_cache *c);

struct dns_cache_view {
	struct dns_cache   *cache;
	struct dns_resolver inner;	/* asked on a miss */
	/* Set: no inner resolver; a miss answers DNS_TEMPFAIL and counts in
	 * missed, so that the caller can tell a run that needed the network
	 * (and throw its result away) from one the cache answered whole. */
	int                 cache_only;
	unsigned            missed;
};

/* The resolver view of v (v must outlive it). */
struct dns_resolver dns_cache_resolver(struct dns_cache_view *v);

struct dns_cache_stats {
	size_t   entries, bytes;
	uint64_t hits, misses;
};

void dns_cache_stats(struct dns_cache *c, struct dns_cache_stats *out);

#endif
