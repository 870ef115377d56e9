/* connlimit — shared per-IP and total connection counts (see connlimit.h). */
#include "server/connlimit.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define CONNLIMIT_BUCKETS 4096

struct connlimit {
	/* rows [0, used) may be non-zero: the sums read only those, not all
	 * CONNLIMIT_SLOTS (per_ip rows are 8 KiB apart: a cache miss each) */
	_Atomic uint32_t used;
	_Atomic uint32_t total[CONNLIMIT_SLOTS];
	_Atomic uint16_t per_ip[CONNLIMIT_SLOTS][CONNLIMIT_BUCKETS];
	/* messages per client address: minute << 32 | count, shared by all workers */
	_Atomic uint64_t rate[CONNLIMIT_BUCKETS];
};

struct connlimit *
connlimit_create(void)
{
	void *p = mmap(NULL, sizeof(struct connlimit), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	return p;	/* zero-filled by the kernel */
}

/* FNV-1a over the address bytes that identify a client. */
static unsigned
bucket_of(const struct sockaddr *sa)
{
	const uint8_t *p = NULL;
	size_t n = 0, i;
	uint32_t h = 2166136261u;

	if (sa->sa_family == AF_INET) {
		p = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		n = 4;
	} else if (sa->sa_family == AF_INET6) {
		p = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		n = 8;	/* the /64 */
	}
	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h % CONNLIMIT_BUCKETS;
}

enum connlimit_verdict
connlimit_acquire(struct connlimit *cl, int slot, const struct sockaddr *sa,
    size_t max_total, size_t max_per_ip, unsigned *bucket)
{
	unsigned b = bucket_of(sa);
	size_t total = 0, ip = 0;
	uint32_t i, used = atomic_load_explicit(&cl->used, memory_order_relaxed);

	/* This row counts from now on: make the readers look at it first. */
	while (used < (uint32_t)slot + 1 &&
	    !atomic_compare_exchange_weak(&cl->used, &used, (uint32_t)slot + 1))
		;
	if (used < (uint32_t)slot + 1)
		used = (uint32_t)slot + 1;
	for (i = 0; i < used && i < CONNLIMIT_SLOTS; i++) {
		total += atomic_load_explicit(&cl->total[i], memory_order_relaxed);
		ip += atomic_load_explicit(&cl->per_ip[i][b], memory_order_relaxed);
	}
	if (max_total && total >= max_total)
		return CONNLIMIT_TOTAL;
	if (max_per_ip && ip >= max_per_ip)
		return CONNLIMIT_PER_IP;
	if (atomic_load_explicit(&cl->per_ip[slot][b], memory_order_relaxed) == UINT16_MAX)
		return CONNLIMIT_PER_IP;
	atomic_fetch_add_explicit(&cl->total[slot], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&cl->per_ip[slot][b], 1, memory_order_relaxed);
	*bucket = b;
	return CONNLIMIT_OK;
}

void
connlimit_release(struct connlimit *cl, int slot, unsigned bucket)
{
	atomic_fetch_sub_explicit(&cl->total[slot], 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&cl->per_ip[slot][bucket % CONNLIMIT_BUCKETS], 1,
	    memory_order_relaxed);
}

int
connlimit_message(struct connlimit *cl, const struct sockaddr *sa, size_t max,
    unsigned long now_minute)
{
	_Atomic uint64_t *r = &cl->rate[bucket_of(sa)];
	uint64_t old = atomic_load(r), nv;

	if (max == 0)
		return 0;
	do {
		uint64_t count = (old >> 32) == (uint32_t)now_minute ? (old & 0xffffffffu) : 0;

		if (count >= max)
			return -1;
		nv = ((uint64_t)(uint32_t)now_minute << 32) | (count + 1);
	} while (!atomic_compare_exchange_weak(r, &old, nv));
	return 0;
}

void
connlimit_clear_slot(struct connlimit *cl, int slot)
{
	int i;

	atomic_store(&cl->total[slot], 0);
	for (i = 0; i < CONNLIMIT_BUCKETS; i++)
		atomic_store(&cl->per_ip[slot][i], 0);
}

size_t
connlimit_total(struct connlimit *cl)
{
	size_t total = 0;
	uint32_t i, used = atomic_load(&cl->used);

	for (i = 0; i < used && i < CONNLIMIT_SLOTS; i++)
		total += atomic_load_explicit(&cl->total[i], memory_order_relaxed);
	return total;
}
