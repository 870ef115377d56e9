/* table — passwd-file and aliases(5) lookup tables (see table.h). */
#include "server/table.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"

#define TABLE_MAX_ENTRIES  (1024 * 1024)
#define TABLE_LINE_MAX     (64 * 1024)	/* one physical or logical line */
#define TABLE_FILE_MAX     ((size_t)256 * 1024 * 1024)
#define TABLE_KEY_MAX      320		/* local part 64 + '@' + domain 255 */
#define TABLE_ADDR_MAX     256		/* RFC 5321 4.5.3.1.3 path */

struct entry {
	char  *key;	/* lower case, NUL-terminated; val follows in the same block */
	size_t keylen;
	char  *val;
	int    line;
};

struct table {
	struct entry *slot;	/* open addressing, linear probing */
	size_t        cap;	/* power of two */
	size_t        count;
};

/* Line splitting state shared by both parsers. */
struct lines {
	const char *p;
	size_t      len, pos;
	int         line;
};

static int
terr(char *err, size_t errlen, const char *name, int line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int
terr(char *err, size_t errlen, const char *name, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (err == NULL || errlen == 0)
		return -1;
	n = snprintf(err, errlen, "%s:%d: ", name, line);
	if (n < 0 || (size_t)n >= errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static unsigned char
lc(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static uint64_t
hash_key(const char *key, size_t len)
{
	uint64_t h = 14695981039346656037ULL;	/* FNV-1a */
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= lc((unsigned char)key[i]);
		h *= 1099511628211ULL;
	}
	return h;
}

static int
key_eq(const struct entry *e, const char *key, size_t len)
{
	size_t i;

	if (e->keylen != len)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)e->key[i] != lc((unsigned char)key[i]))
			return 0;
	return 1;
}

static struct entry *
table_find(const struct table *t, const char *key, size_t len)
{
	size_t i, mask;

	if (t == NULL || t->cap == 0)
		return NULL;
	mask = t->cap - 1;
	for (i = hash_key(key, len) & mask; t->slot[i].key; i = (i + 1) & mask)
		if (key_eq(&t->slot[i], key, len))
			return &t->slot[i];
	return NULL;
}

static int
table_grow(struct table *t)
{
	struct entry *old = t->slot, *ns;
	size_t oldcap = t->cap, ncap = t->cap ? t->cap * 2 : 64, i, j;

	if ((ns = calloc(ncap, sizeof(*ns))) == NULL)
		return -1;
	for (i = 0; i < oldcap; i++) {
		if (old[i].key == NULL)
			continue;
		j = hash_key(old[i].key, old[i].keylen) & (ncap - 1);
		while (ns[j].key)
			j = (j + 1) & (ncap - 1);
		ns[j] = old[i];
	}
	free(old);
	t->slot = ns;
	t->cap = ncap;
	return 0;
}

/* Adds key -> val. 0 ok, -1 out of memory, or the line of the earlier entry (> 0). */
static int
table_put(struct table *t, const char *key, size_t klen, const char *val,
    size_t vlen, int line)
{
	struct entry *e;
	size_t i;
	char *blk;

	if ((e = table_find(t, key, klen)) != NULL)
		return e->line;
	/* Keep the load factor under 0.7 so probes stay short. */
	if ((t->count + 1) * 10 >= t->cap * 7 && table_grow(t) == -1)
		return -1;
	if ((blk = malloc(klen + vlen + 2)) == NULL)
		return -1;
	for (i = 0; i < klen; i++)
		blk[i] = (char)lc((unsigned char)key[i]);
	blk[klen] = '\0';
	memcpy(blk + klen + 1, val, vlen);
	blk[klen + 1 + vlen] = '\0';
	i = hash_key(key, klen) & (t->cap - 1);
	while (t->slot[i].key)
		i = (i + 1) & (t->cap - 1);
	t->slot[i].key = blk;
	t->slot[i].keylen = klen;
	t->slot[i].val = blk + klen + 1;
	t->slot[i].line = line;
	t->count++;
	return 0;
}

const char *
table_lookup(const struct table *t, const char *key, size_t keylen)
{
	const struct entry *e = table_find(t, key, keylen);

	return e ? e->val : NULL;
}

size_t
table_count(const struct table *t)
{
	return t ? t->count : 0;
}

int
table_walk(const struct table *t,
    int (*fn)(void *arg, const char *key, const char *val, int line), void *arg)
{
	size_t i;
	int r;

	if (t == NULL)
		return 0;
	for (i = 0; i < t->cap; i++)
		if (t->slot[i].key && (r = fn(arg, t->slot[i].key, t->slot[i].val, t->slot[i].line)) != 0)
			return r;
	return 0;
}

void
table_wipe_values(struct table *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->cap; i++)
		if (t->slot[i].key)
			explicit_bzero(t->slot[i].val, strlen(t->slot[i].val));
}

void
table_free(struct table *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->cap; i++)
		free(t->slot[i].key);
	free(t->slot);
	free(t);
}

/* Next physical line without its LF (and without a CR before it). 0 at end. */
static int
next_line(struct lines *l, const char **s, size_t *n)
{
	const char *nl;
	size_t rest;

	if (l->pos >= l->len)
		return 0;
	rest = l->len - l->pos;
	*s = l->p + l->pos;
	nl = memchr(*s, '\n', rest);
	*n = nl ? (size_t)(nl - *s) : rest;
	l->pos += *n + (nl != NULL);
	l->line++;
	if (*n > 0 && (*s)[*n - 1] == '\r')
		(*n)--;
	return 1;
}

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Blank, whitespace-only or a '#' comment line. */
static int
skip_line(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && is_blank(s[i]))
		i++;
	return i == n || s[i] == '#';
}

static int
bad_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > TABLE_KEY_MAX)
		return 1;
	for (i = 0; i < n; i++)
		if (is_blank(s[i]) || is_ctl((unsigned char)s[i]) || s[i] == '"')
			return 1;
	return 0;
}

struct table *
table_new(void)
{
	return calloc(1, sizeof(struct table));
}

int
table_add(struct table *t, const char *key, size_t klen, const char *val,
    size_t vlen)
{
	if (klen == 0 || klen > TABLE_KEY_MAX || vlen > TABLE_LINE_MAX ||
	    t->count >= TABLE_MAX_ENTRIES) {
		errno = E2BIG;
		return -1;
	}
	if (memchr(key, '\0', klen) || memchr(val, '\0', vlen)) {
		errno = EINVAL;
		return -1;
	}
	if (table_find(t, key, klen) != NULL) {
		errno = EEXIST;
		return -1;
	}
	if (table_put(t, key, klen, val, vlen, 0) != 0) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

static int
put_or_fail(struct table *t, const char *what, const char *key, size_t klen,
    const char *val, size_t vlen, const char *name, int line, char *err,
    size_t errlen)
{
	int r;

	if (t->count >= TABLE_MAX_ENTRIES)
		return terr(err, errlen, name, line, "too many entries (max %d)",
		    TABLE_MAX_ENTRIES);
	r = table_put(t, key, klen, val, vlen, line);
	if (r == -1)
		return terr(err, errlen, name, line, "out of memory");
	if (r > 0)
		return terr(err, errlen, name, line,
		    "%s \"%.*s\" declared twice (first at line %d)", what,
		    (int)klen, key, r);
	return 0;
}

/* One passwd-file line: user:password[:uid:gid:gecos:home:shell:extra]. */
static int
passwd_line(struct table *t, const char *s, size_t n, const char *name,
    int line, char *err, size_t errlen)
{
	const char *c1, *pw, *c2;
	size_t ulen, pwlen, i;

	if ((c1 = memchr(s, ':', n)) == NULL)
		return terr(err, errlen, name, line,
		    "missing ':' (expected user:password:...)");
	ulen = (size_t)(c1 - s);
	if (bad_name(s, ulen))
		return terr(err, errlen, name, line, "bad user name \"%.*s\"",
		    (int)(ulen > 64 ? 64 : ulen), s);
	pw = c1 + 1;
	c2 = memchr(pw, ':', n - ulen - 1);
	pwlen = c2 ? (size_t)(c2 - pw) : n - ulen - 1;
	for (i = 0; i < pwlen; i++)
		if (is_ctl((unsigned char)pw[i]))
			return terr(err, errlen, name, line,
			    "control character in password field");
	return put_or_fail(t, "user", s, ulen, pw, pwlen, name, line, err, errlen);
}

struct table *
table_parse_passwd(const char *data, size_t len, const char *name, char *err,
    size_t errlen)
{
	struct lines l = { data, len, 0, 0 };
	struct table *t;
	const char *s;
	size_t n;

	if ((t = table_new()) == NULL) {
		terr(err, errlen, name, 0, "out of memory");
		return NULL;
	}
	while (next_line(&l, &s, &n)) {
		if (n > TABLE_LINE_MAX) {
			terr(err, errlen, name, l.line, "line too long (max %d)",
			    TABLE_LINE_MAX);
			goto fail;
		}
		if (skip_line(s, n))
			continue;
		if (passwd_line(t, s, n, name, l.line, err, errlen) == -1)
			goto fail;
	}
	return t;
fail:
	table_free(t);
	return NULL;
}

/*
 * Checks one alias target. Programs, files and includes are refused
 * (also in their quoted forms, as sendmail reads them): tern never runs
 * or writes what a table names.
 */
static int
check_target(const char *s, size_t n, const char *name, int line, char *err,
    size_t errlen)
{
	const char *p = s;
	size_t m = n, i, at = 0;
	int inq = 0;

	if (m > 0 && p[0] == '"') {
		p++;
		m--;
	}
	if ((m > 0 && (p[0] == '|' || p[0] == '/')) ||
	    (m >= 9 && strncasecmp(p, ":include:", 9) == 0))
		return terr(err, errlen, name, line,
		    "pipe/file/include targets are not supported");
	if (n > TABLE_ADDR_MAX)
		return terr(err, errlen, name, line, "address too long \"%.64s...\"", s);
	for (i = 0; i < n; i++) {
		if (inq && s[i] == '\\' && i + 1 < n) {
			i++;
			continue;
		}
		if (is_ctl((unsigned char)s[i]))
			goto bad;
		if (s[i] == '"')
			inq = !inq;
		else if (!inq && is_blank(s[i]))
			goto bad;
		else if (!inq && s[i] == '@')
			at = i + 1;
	}
	if (inq || (at && (at == 1 || at == n)))
		goto bad;
	return 0;
bad:
	return terr(err, errlen, name, line, "bad address \"%.*s\"", (int)n, s);
}

/* The value of one alias: targets split on commas outside quotes, blanks trimmed. */
static int
alias_value(struct buf *out, const char *s, size_t n, const char *name, int line,
    char *err, size_t errlen)
{
	size_t i = 0, start, end;
	int inq;

	while (i <= n) {
		start = i;
		for (inq = 0; i < n && (inq || s[i] != ','); i++) {
			if (inq && s[i] == '\\' && i + 1 < n)
				i++;
			else if (s[i] == '"')
				inq = !inq;
		}
		end = i++;
		while (start < end && is_blank(s[start]))
			start++;
		while (end > start && is_blank(s[end - 1]))
			end--;
		if (start == end)
			continue;	/* "a, , b" and a trailing comma are harmless */
		if (check_target(s + start, end - start, name, line, err, errlen) == -1)
			return -1;
		if ((out->len && buf_appendc(out, ',') == -1) ||
		    buf_append(out, s + start, end - start) == -1)
			return terr(err, errlen, name, line, "alias too long");
	}
	return 0;
}

/* One logical alias line "name: targets" (continuations already joined). */
static int
alias_entry(struct table *t, const char *s, size_t n, const char *name,
    int line, char *err, size_t errlen)
{
	const char *colon;
	size_t klen;
	struct buf val;
	int r;

	if ((colon = memchr(s, ':', n)) == NULL)
		return terr(err, errlen, name, line, "missing ':' after the alias name");
	klen = (size_t)(colon - s);
	while (klen > 0 && is_blank(s[klen - 1]))
		klen--;
	if (bad_name(s, klen))
		return terr(err, errlen, name, line, "bad alias name \"%.*s\"",
		    (int)(klen > 64 ? 64 : klen), s);
	buf_init(&val, TABLE_LINE_MAX);
	r = alias_value(&val, colon + 1, n - (size_t)(colon - s) - 1, name, line,
	    err, errlen);
	if (r == 0 && val.len == 0)
		r = terr(err, errlen, name, line, "alias \"%.*s\" has no targets",
		    (int)klen, s);
	if (r == 0)
		r = put_or_fail(t, "alias", s, klen, val.len ? val.data : "",
		    val.len, name, line, err, errlen);
	buf_free(&val);
	return r;
}

static int
aliases_lines(struct table *t, struct lines *l, struct buf *ent, const char *name,
    char *err, size_t errlen)
{
	const char *s;
	size_t n;
	int eline = 0;

	while (next_line(l, &s, &n)) {
		if (n > TABLE_LINE_MAX)
			return terr(err, errlen, name, l->line,
			    "line too long (max %d)", TABLE_LINE_MAX);
		if (memchr(s, '\0', n))
			return terr(err, errlen, name, l->line, "NUL byte in line");
		if (skip_line(s, n))
			continue;
		if (is_blank(s[0])) {
			/* aliases(5): a line starting with a blank continues the entry. */
			if (eline == 0)
				return terr(err, errlen, name, l->line,
				    "continuation line without an alias");
			if (buf_appendc(ent, ' ') == -1 || buf_append(ent, s, n) == -1)
				return terr(err, errlen, name, eline, "alias too long");
			continue;
		}
		if (eline && alias_entry(t, ent->data, ent->len, name, eline, err,
		    errlen) == -1)
			return -1;
		buf_reset(ent);
		eline = l->line;
		if (buf_append(ent, s, n) == -1)
			return terr(err, errlen, name, eline, "alias too long");
	}
	if (eline)
		return alias_entry(t, ent->data, ent->len, name, eline, err, errlen);
	return 0;
}

struct table *
table_parse_aliases(const char *data, size_t len, const char *name, char *err,
    size_t errlen)
{
	struct lines l = { data, len, 0, 0 };
	struct table *t;
	struct buf ent;
	int r;

	if ((t = table_new()) == NULL) {
		terr(err, errlen, name, 0, "out of memory");
		return NULL;
	}
	buf_init(&ent, TABLE_LINE_MAX);
	r = aliases_lines(t, &l, &ent, name, err, errlen);
	buf_free(&ent);
	if (r == -1) {
		table_free(t);
		return NULL;
	}
	return t;
}

static char *
read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	char *data = NULL;
	size_t got = 0;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		goto syserr;
	if (fstat(fd, &st) == -1)
		goto syserr;
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if ((uint64_t)st.st_size > TABLE_FILE_MAX) {
		snprintf(err, errlen, "%s: file too large", path);
		goto fail;
	}
	if ((data = malloc((size_t)st.st_size + 1)) == NULL)
		goto syserr;
	while (got < (size_t)st.st_size) {
		r = read(fd, data + got, (size_t)st.st_size - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			goto syserr;
		if (r == 0)
			break;	/* the file shrank: parse what is there */
		got += (size_t)r;
	}
	close(fd);
	*len = got;
	return data;
syserr:
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
fail:
	if (fd != -1)
		close(fd);
	free(data);
	return NULL;
}

static struct table *
table_load(const char *path, int aliases, char *err, size_t errlen)
{
	struct table *t;
	size_t len;
	char *data;

	if ((data = read_file(path, &len, err, errlen)) == NULL)
		return NULL;
	t = aliases ? table_parse_aliases(data, len, path, err, errlen)
	    : table_parse_passwd(data, len, path, err, errlen);
	free(data);
	return t;
}

struct table *
table_load_passwd(const char *path, char *err, size_t errlen)
{
	return table_load(path, 0, err, errlen);
}

struct table *
table_load_aliases(const char *path, char *err, size_t errlen)
{
	return table_load(path, 1, err, errlen);
}
