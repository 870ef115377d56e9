/*
 * table — the lookup tables tern reads: Dovecot passwd-file (users and
 * password hashes) and aliases(5). A table maps a lower-cased key to a
 * value string; it is loaded whole into memory and read-only afterwards.
 */
#ifndef TERN_TABLE_H
#define TERN_TABLE_H

#include <stddef.h>

struct table;

/*
 * Parses a passwd-file: "user:{SCHEME}hash:uid:gid:gecos:home:shell:extra",
 * only the first two fields matter; blank lines and '#' comments skipped.
 * Key = user (lower-cased; may be "user@domain"), value = the password
 * field (may be empty). Errors as "NAME:LINE: reason" (NAME = `name`).
 */
struct table *table_parse_passwd(const char *data, size_t len, const char *name,
    char *err, size_t errlen);

/*
 * Parses an aliases(5) file: "name: addr1, addr2", continuation lines start
 * with a blank, '#' comments. Values are kept as one comma-separated
 * string of addresses with blanks removed around commas. "|command",
 * "/file" and ":include:" targets are refused with an error (tern never
 * runs programs or writes files named by a table).
 */
struct table *table_parse_aliases(const char *data, size_t len, const char *name,
    char *err, size_t errlen);

/* Reads the file at path and parses it with one of the parsers above. */
struct table *table_load_passwd(const char *path, char *err, size_t errlen);
struct table *table_load_aliases(const char *path, char *err, size_t errlen);

/* An empty table, to be filled with table_add. NULL: out of memory. */
struct table *table_new(void);
/*
 * Adds key -> val (the key lower-cased; both may hold any byte but NUL).
 * 0, or -1 with errno EEXIST (the key is there), E2BIG (an empty or too
 * long key, too long a value, too many entries), EINVAL (a NUL byte) or
 * ENOMEM.
 */
int         table_add(struct table *t, const char *key, size_t klen,
    const char *val, size_t vlen);

/* Looks up key (case-insensitive); returns the value or NULL. */
const char *table_lookup(const struct table *t, const char *key, size_t keylen);
size_t      table_count(const struct table *t);
/* Calls fn for every entry, in no order; a non-zero return stops the walk and is returned. */
int         table_walk(const struct table *t,
    int (*fn)(void *arg, const char *key, const char *val, int line), void *arg);
/* Zeroes every value (keys stay): what an smtp worker keeps of a passwd-file. */
void        table_wipe_values(struct table *t);
void        table_free(struct table *t);

#endif
