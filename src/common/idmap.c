/* idmap — string key to pointer (see idmap.h). */
#include "common/idmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_BUCKETS 64

struct entry {
	struct entry *next;
	void         *val;
	char          key[];
};

struct idmap {
	struct entry **buckets;
	size_t         nbuckets;	/* a power of two */
	size_t         count;
};

/* FNV-1a: queue IDs differ in their last characters, all of them count. */
static size_t
hash_of(const char *key)
{
	uint64_t h = 1469598103934665603ull;

	for (; *key; key++) {
		h ^= (unsigned char)*key;
		h *= 1099511628211ull;
	}
	return (size_t)(h ^ (h >> 32));
}

struct idmap *
idmap_new(void)
{
	struct idmap *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	if ((m->buckets = calloc(FIRST_BUCKETS, sizeof(struct entry *))) == NULL) {
		free(m);
		return NULL;
	}
	m->nbuckets = FIRST_BUCKETS;
	return m;
}

void
idmap_free(struct idmap *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->nbuckets; i++)
		while (m->buckets[i]) {
			struct entry *e = m->buckets[i];

			m->buckets[i] = e->next;
			free(e);
		}
	free(m->buckets);
	free(m);
}

/* Twice the buckets once there are more entries than buckets; as it was if that fails. */
static void
grow(struct idmap *m)
{
	size_t n = m->nbuckets * 2, i;
	struct entry **b;

	if (m->count <= m->nbuckets || (b = calloc(n, sizeof(struct entry *))) == NULL)
		return;
	for (i = 0; i < m->nbuckets; i++)
		while (m->buckets[i]) {
			struct entry *e = m->buckets[i];
			size_t k = hash_of(e->key) & (n - 1);

			m->buckets[i] = e->next;
			e->next = b[k];
			b[k] = e;
		}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
}

static struct entry **
slot_of(const struct idmap *m, const char *key)
{
	struct entry **pp = &m->buckets[hash_of(key) & (m->nbuckets - 1)];

	while (*pp && strcmp((*pp)->key, key) != 0)
		pp = &(*pp)->next;
	return pp;
}

int
idmap_put(struct idmap *m, const char *key, void *val)
{
	size_t len = strlen(key);
	struct entry **pp, *e;

	if (len == 0 || len > IDMAP_KEY_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (*(pp = slot_of(m, key)) != NULL) {
		errno = EEXIST;
		return -1;
	}
	if ((e = malloc(sizeof(*e) + len + 1)) == NULL)
		return -1;
	memcpy(e->key, key, len + 1);
	e->val = val;
	e->next = NULL;
	*pp = e;
	m->count++;
	grow(m);
	return 0;
}

void *
idmap_get(const struct idmap *m, const char *key)
{
	struct entry *e = *slot_of(m, key);

	return e ? e->val : NULL;
}

void *
idmap_del(struct idmap *m, const char *key)
{
	struct entry **pp = slot_of(m, key), *e = *pp;
	void *val;

	if (e == NULL)
		return NULL;
	*pp = e->next;
	val = e->val;
	free(e);
	m->count--;
	return val;
}

size_t
idmap_count(const struct idmap *m)
{
	return m->count;
}
