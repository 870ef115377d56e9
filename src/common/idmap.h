/*
 * idmap — a hash table from a short string key (a queue ID) to a pointer.
 * The queue finds a message by its ID for every answer of the mta and for
 * ternctl; a list scan cost O(messages) there, which a backlog of 100,000
 * deferred messages turned into the largest cost of relaying
 * (docs/ARCHITECTURE.md, "Performance").
 */
#ifndef TERN_IDMAP_H
#define TERN_IDMAP_H

#include <stddef.h>

#define IDMAP_KEY_MAX 63	/* longest key, bytes */

struct idmap;

/* An empty map; NULL if out of memory. */
struct idmap *idmap_new(void);
/* Frees the map, not what its values point to. */
void idmap_free(struct idmap *m);

/*
 * Maps key (copied) to val. -1 with errno EEXIST if key is there already,
 * EINVAL if it is empty or longer than IDMAP_KEY_MAX, ENOMEM.
 */
int idmap_put(struct idmap *m, const char *key, void *val);
/* The value of key, NULL if none. */
void *idmap_get(const struct idmap *m, const char *key);
/* Removes key: its value, NULL if it was not there. */
void *idmap_del(struct idmap *m, const char *key);
size_t idmap_count(const struct idmap *m);

#endif
