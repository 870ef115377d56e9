/* cache — a bounded cache of DNS answers (see cache.h). */
#include "dns/cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct centry {
	struct centry  *hnext;		/* hash chain */
	struct centry  *newer, *older;	/* use order: c->newest .. c->oldest */
	uint32_t        hash;
	enum dns_type   type;
	uint64_t        stored, expires;	/* CLOCK_MONOTONIC, ms */
	size_t          bytes;
	struct dns_answer ans;
	char            name[];
};

struct bucket {
	struct centry *head;
};

struct dns_cache {
	pthread_mutex_t  lock;
	struct bucket   *table;
	size_t           nbuckets;	/* a power of two */
	struct centry   *newest, *oldest;
	size_t           n, bytes, max_entries, max_bytes;
	uint64_t         hits, misses;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* FNV-1a over the name and the type. */
static uint32_t
key_hash(const char *name, enum dns_type type)
{
	uint32_t h = 2166136261u;

	for (; *name; name++)
		h = (h ^ (uint8_t)*name) * 16777619u;
	return (h ^ (uint32_t)type) * 16777619u;
}

struct dns_cache *
dns_cache_new(size_t max_entries, size_t max_bytes)
{
	struct dns_cache *c = calloc(1, sizeof(*c));
	size_t nb = 16;

	if (c == NULL)
		return NULL;
	while (nb < max_entries && nb < ((size_t)1 << 20))
		nb <<= 1;
	if ((c->table = calloc(nb, sizeof(*c->table))) == NULL) {
		free(c);
		return NULL;
	}
	c->nbuckets = nb;
	c->max_entries = max_entries;
	c->max_bytes = max_bytes;
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

static void
entry_free(struct centry *e)
{
	dns_answer_free(&e->ans);
	free(e);
}

void
dns_cache_free(struct dns_cache *c)
{
	struct centry *e;

	if (c == NULL)
		return;
	while ((e = c->newest) != NULL) {
		c->newest = e->older;
		entry_free(e);
	}
	free(c->table);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void
order_unlink(struct dns_cache *c, struct centry *e)
{
	if (e->newer)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
	e->newer = e->older = NULL;
}

static void
order_push(struct dns_cache *c, struct centry *e)
{
	e->newer = NULL;
	e->older = c->newest;
	if (c->newest)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
}

/* Takes e off its hash chain and out of the counts. */
static void
unhash(struct dns_cache *c, struct centry *e)
{
	struct centry **pp = &c->table[e->hash & (c->nbuckets - 1)].head;

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	c->n--;
	c->bytes -= e->bytes;
}

/* Takes e out of the cache and frees it. */
static void
evict(struct dns_cache *c, struct centry *e)
{
	unhash(c, e);
	order_unlink(c, e);
	entry_free(e);
}

/* The least recently used entry out, when there is one; 0 if none. */
static int
evict_oldest(struct dns_cache *c)
{
	struct centry *e = c->oldest;

	if (e == NULL)
		return 0;
	unhash(c, e);
	c->oldest = e->newer;
	if (c->oldest != NULL)
		c->oldest->older = NULL;
	else
		c->newest = NULL;
	entry_free(e);
	return 1;
}

static struct centry *
find(struct dns_cache *c, const char *name, enum dns_type type, uint32_t h)
{
	struct centry *e;

	for (e = c->table[h & (c->nbuckets - 1)].head; e != NULL; e = e->hnext)
		if (e->hash == h && e->type == type && strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

/* A copy of a into out, each TTL lowered by age seconds; -1 on ENOMEM. */
static int
answer_copy(const struct dns_answer *a, uint32_t age, struct dns_answer *out)
{
	size_t i;

	dns_answer_init(out);
	for (i = 0; i < a->n; i++) {
		struct dns_rr rr = a->rrs[i];

		rr.ttl = rr.ttl > age ? rr.ttl - age : 0;
		if (dns_answer_add(out, &rr) == -1) {
			dns_answer_free(out);
			return -1;
		}
	}
	out->status = a->status;
	out->secure = a->secure;
	out->ttl = a->ttl > age ? a->ttl - age : 0;
	memcpy(out->canon, a->canon, sizeof(out->canon));
	return 0;
}

/* 1 and a copy in out on a hit, 0 on a miss (or ENOMEM: ask again). */
static int
lookup(struct dns_cache *c, const char *name, enum dns_type type, struct dns_answer *out)
{
	uint32_t h = key_hash(name, type);
	uint64_t now = now_ms();
	struct centry *e;
	int hit = 0;

	pthread_mutex_lock(&c->lock);
	if ((e = find(c, name, type, h)) != NULL && e->expires <= now) {
		evict(c, e);
		e = NULL;
	}
	if (e != NULL && answer_copy(&e->ans, (uint32_t)((now - e->stored) / 1000), out) == 0) {
		order_unlink(c, e);
		order_push(c, e);
		hit = 1;
	}
	if (hit)
		c->hits++;
	else
		c->misses++;
	pthread_mutex_unlock(&c->lock);
	return hit;
}

static size_t
answer_bytes(const struct dns_answer *a)
{
	size_t i, n = a->n * sizeof(struct dns_rr);

	for (i = 0; i < a->n; i++)
		if (a->rrs[i].data != NULL)
			n += a->rrs[i].len + 1;
	return n;
}

/* Whether an answer may be kept: the resolver's final word, with a TTL. */
static int
cacheable(const struct dns_answer *a)
{
	return a->ttl > 0 && (a->status == DNS_OK || a->status == DNS_NODATA ||
	    a->status == DNS_NXDOMAIN);
}

/* A new entry holding a copy of a; NULL on ENOMEM. */
static struct centry *
entry_new(const char *name, enum dns_type type, const struct dns_answer *a, uint64_t now)
{
	size_t nlen = strlen(name);
	struct centry *e = calloc(1, sizeof(*e) + nlen + 1);
	uint32_t ttl = a->ttl < DNS_CACHE_TTL_MAX ? a->ttl : DNS_CACHE_TTL_MAX;

	if (e == NULL)
		return NULL;
	if (answer_copy(a, 0, &e->ans) == -1) {
		free(e);
		return NULL;
	}
	memcpy(e->name, name, nlen + 1);
	e->type = type;
	e->hash = key_hash(name, type);
	e->stored = now;
	e->expires = now + (uint64_t)ttl * 1000;
	e->bytes = sizeof(*e) + nlen + 1 + answer_bytes(a);
	return e;
}

static void
store(struct dns_cache *c, const char *name, enum dns_type type, const struct dns_answer *a)
{
	struct centry *e;
	struct bucket *b;

	if (!cacheable(a) || c->max_entries == 0 ||
	    (e = entry_new(name, type, a, now_ms())) == NULL)
		return;
	/* One answer may take a sixteenth of the room: a few huge TXT sets
	 * must not push out everything else. */
	if (e->bytes > c->max_bytes / 16) {
		entry_free(e);
		return;
	}
	pthread_mutex_lock(&c->lock);
	if (find(c, name, type, e->hash) != NULL) {
		/* another thread asked at the same time and stored it first */
		pthread_mutex_unlock(&c->lock);
		entry_free(e);
		return;
	}
	while ((c->n >= c->max_entries || c->bytes + e->bytes > c->max_bytes) &&
	    evict_oldest(c))
		;
	b = &c->table[e->hash & (c->nbuckets - 1)];
	e->hnext = b->head;
	b->head = e;
	order_push(c, e);
	c->n++;
	c->bytes += e->bytes;
	pthread_mutex_unlock(&c->lock);
}

static int
cache_query(void *ctx, const char *name, enum dns_type type, struct dns_answer *out)
{
	struct dns_cache_view *v = ctx;

	if (lookup(v->cache, name, type, out))
		return 0;
	if (v->cache_only) {
		v->missed++;
		dns_answer_init(out);
		out->status = DNS_TEMPFAIL;
		return 0;
	}
	if (dns_query(&v->inner, name, type, out) == -1)
		return -1;
	store(v->cache, name, type, out);
	return 0;
}

struct dns_resolver
dns_cache_resolver(struct dns_cache_view *v)
{
	struct dns_resolver r = { cache_query, v };

	return r;
}

void
dns_cache_stats(struct dns_cache *c, struct dns_cache_stats *out)
{
	pthread_mutex_lock(&c->lock);
	out->entries = c->n;
	out->bytes = c->bytes;
	out->hits = c->hits;
	out->misses = c->misses;
	pthread_mutex_unlock(&c->lock);
}
