/* qconf — the queue's part of the configuration, as bytes (see qconf.h). */
#include "queue/qconf.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/table.h"

#define QCONF_MAGIC   "tern-qconf 1"
#define QCONF_STR_MAX (64 * 1024)	/* an alias's targets, at most */
#define QCONF_NUM_MAX 20		/* digits of a uint64_t */

/* ---- encoding ---- */

static int
put_num(struct buf *b, uint64_t v)
{
	char d[QCONF_NUM_MAX];
	size_t n = 0;

	do
		d[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	if (buf_appendc(b, ' ') == -1)
		return -1;
	while (n > 0)
		if (buf_appendc(b, d[--n]) == -1)
			return -1;
	return 0;
}

static int
put_str(struct buf *b, const char *s)
{
	size_t n = strlen(s);

	if (put_num(b, n) == -1 || buf_appendc(b, ':') == -1)
		return -1;
	return buf_append(b, s, n);
}

/* "name\n", "name S\n" or "name N\n". */
static int
put_rec(struct buf *b, const char *name, const char *s, const uint64_t *v)
{
	if (buf_appends(b, name) == -1 ||
	    (s && put_str(b, s) == -1) || (v && put_num(b, *v) == -1))
		return -1;
	return buf_appendc(b, '\n');
}

static int
put_user(void *arg, const char *key, const char *val, int line)
{
	return put_rec(arg, "user", key, NULL);
}

static int
put_alias(void *arg, const char *key, const char *val, int line)
{
	struct buf *b = arg;

	if (buf_appends(b, "alias") == -1 || put_str(b, key) == -1 ||
	    put_str(b, val) == -1)
		return -1;
	return buf_appendc(b, '\n');
}

static int
put_domain(struct buf *b, const struct domain_cfg *d)
{
	if (put_rec(b, "domain", d->name, NULL) == -1 ||
	    (d->catchall && put_rec(b, "catchall", d->catchall, NULL) == -1))
		return -1;
	if (d->users && (put_rec(b, "users", NULL, NULL) == -1 ||
	    table_walk(d->users, put_user, b) != 0))
		return -1;
	if (d->aliases && (put_rec(b, "aliases", NULL, NULL) == -1 ||
	    table_walk(d->aliases, put_alias, b) != 0))
		return -1;
	return 0;
}

int
qconf_encode(const struct config *cfg, struct buf *out)
{
	const uint64_t retry = cfg->retry_interval, life = cfg->lifetime,
	    warn = cfg->delay_warning, size = cfg->limits.message_size;
	size_t i;

	if (put_rec(out, QCONF_MAGIC, NULL, NULL) == -1 ||
	    put_rec(out, "hostname", cfg->hostname, NULL) == -1 ||
	    put_rec(out, "delimiter", cfg->recipient_delimiter, NULL) == -1 ||
	    put_rec(out, "retry_interval", NULL, &retry) == -1 ||
	    put_rec(out, "lifetime", NULL, &life) == -1 ||
	    put_rec(out, "delay_warning", NULL, &warn) == -1 ||
	    put_rec(out, "message_size", NULL, &size) == -1)
		return -1;
	for (i = 0; i < cfg->ndomains; i++)
		if (put_domain(out, &cfg->domains[i]) == -1)
			return -1;
	return put_rec(out, "end", NULL, NULL);
}

/* ---- parsing ---- */

struct cur {
	const char *p;
	size_t      len, pos;
	char       *err;
	size_t      errlen;
};

static int
fail(struct cur *c, const char *what)
{
	snprintf(c->err, c->errlen, "byte %zu: %s", c->pos, what);
	return -1;
}

/* A record's name: the bytes up to a blank or the end of the line. */
static int
get_name(struct cur *c, const char **name, size_t *n)
{
	size_t start = c->pos;

	while (c->pos < c->len && c->p[c->pos] != ' ' && c->p[c->pos] != '\n')
		c->pos++;
	*name = c->p + start;
	*n = c->pos - start;
	return *n == 0 ? fail(c, "a record without a name") : 0;
}

static int
get_blank(struct cur *c)
{
	if (c->pos >= c->len || c->p[c->pos] != ' ')
		return fail(c, "a blank expected");
	c->pos++;
	return 0;
}

static int
get_digits(struct cur *c, uint64_t *v)
{
	size_t n = 0;

	*v = 0;
	while (c->pos < c->len && c->p[c->pos] >= '0' && c->p[c->pos] <= '9') {
		unsigned d = (unsigned)(c->p[c->pos] - '0');

		if (++n > QCONF_NUM_MAX || *v > (UINT64_MAX - d) / 10)
			return fail(c, "a number too large");
		*v = *v * 10 + d;
		c->pos++;
	}
	return n == 0 ? fail(c, "a number expected") : 0;
}

static int
get_num(struct cur *c, uint64_t *v)
{
	return get_blank(c) == -1 ? -1 : get_digits(c, v);
}

/* " LEN:BYTES": *s points into the input, *n bytes, none of them NUL. */
static int
get_str(struct cur *c, const char **s, size_t *n)
{
	uint64_t len;

	if (get_num(c, &len) == -1)
		return -1;
	if (c->pos >= c->len || c->p[c->pos] != ':')
		return fail(c, "':' expected after a string's length");
	c->pos++;
	if (len > QCONF_STR_MAX || len > c->len - c->pos)
		return fail(c, "a string longer than the rest or the limit");
	*s = c->p + c->pos;
	*n = (size_t)len;
	if (memchr(*s, '\0', *n))
		return fail(c, "a NUL byte in a string");
	c->pos += *n;
	return 0;
}

/* A string copied into a fixed field of size `size` (with its NUL). */
static int
get_field(struct cur *c, char *field, size_t size)
{
	const char *s;
	size_t n;

	if (get_str(c, &s, &n) == -1)
		return -1;
	if (n >= size)
		return fail(c, "a string too long for its field");
	memcpy(field, s, n);
	field[n] = '\0';
	return 0;
}

static int
get_unsigned(struct cur *c, unsigned *field)
{
	uint64_t v;

	if (get_num(c, &v) == -1)
		return -1;
	if (v > UINT_MAX)
		return fail(c, "a number too large");
	*field = (unsigned)v;
	return 0;
}

static struct domain_cfg *
last_domain(struct cur *c, struct config *cfg)
{
	if (cfg->ndomains == 0)
		fail(c, "a domain's record before any domain");
	return cfg->ndomains ? &cfg->domains[cfg->ndomains - 1] : NULL;
}

static int
rec_domain(struct cur *c, struct config *cfg)
{
	struct domain_cfg *nd;

	if (cfg->ndomains == CONFIG_MAX_DOMAINS)
		return fail(c, "too many domains");
	nd = realloc(cfg->domains, (cfg->ndomains + 1) * sizeof(*nd));
	if (nd == NULL)
		return fail(c, "out of memory");
	cfg->domains = nd;
	nd = &cfg->domains[cfg->ndomains++];
	memset(nd, 0, sizeof(*nd));
	if (get_field(c, nd->name, sizeof(nd->name)) == -1)
		return -1;
	return nd->name[0] ? 0 : fail(c, "an empty domain name");
}

static int
rec_catchall(struct cur *c, struct config *cfg)
{
	struct domain_cfg *d = last_domain(c, cfg);
	const char *s;
	size_t n;

	if (d == NULL || get_str(c, &s, &n) == -1)
		return -1;
	if (n == 0 || n > CONFIG_NAME_MAX)
		return fail(c, "a catch-all empty or too long");
	free(d->catchall);
	if ((d->catchall = strndup(s, n)) == NULL)
		return fail(c, "out of memory");
	return 0;
}

/* "users" or "aliases": the domain has that table (maybe empty). */
static int
rec_table(struct cur *c, struct config *cfg, int users)
{
	struct domain_cfg *d = last_domain(c, cfg);
	struct table **t;

	if (d == NULL)
		return -1;
	t = users ? &d->users : &d->aliases;
	if (*t != NULL)
		return fail(c, "a table given twice");
	return (*t = table_new()) == NULL ? fail(c, "out of memory") : 0;
}

static int
add_entry(struct cur *c, struct table *t, const char *k, size_t kn,
    const char *v, size_t vn)
{
	if (t == NULL)
		return fail(c, "an entry before its table");
	if (table_add(t, k, kn, v, vn) == -1)
		return fail(c, errno == EEXIST ? "an entry given twice" :
		    errno == ENOMEM ? "out of memory" : "an entry too long or too many");
	return 0;
}

static int
rec_entry(struct cur *c, struct config *cfg, int users)
{
	struct domain_cfg *d = last_domain(c, cfg);
	const char *k, *v = "";
	size_t kn, vn = 0;

	if (d == NULL || get_str(c, &k, &kn) == -1 ||
	    (!users && get_str(c, &v, &vn) == -1))
		return -1;
	if (!users && vn == 0)
		return fail(c, "an alias without targets");
	return add_entry(c, users ? d->users : d->aliases, k, kn, v, vn);
}

/* One record after the first; 1 at "end". */
static int
record(struct cur *c, struct config *cfg)
{
	const char *name;
	size_t n;
	int r;

	if (get_name(c, &name, &n) == -1)
		return -1;
#define IS(s) (n == sizeof(s) - 1 && memcmp(name, s, n) == 0)
	if (IS("end"))
		r = 1;
	else if (IS("hostname"))
		r = get_field(c, cfg->hostname, sizeof(cfg->hostname));
	else if (IS("delimiter"))
		r = get_field(c, cfg->recipient_delimiter, sizeof(cfg->recipient_delimiter));
	else if (IS("retry_interval"))
		r = get_unsigned(c, &cfg->retry_interval);
	else if (IS("lifetime"))
		r = get_unsigned(c, &cfg->lifetime);
	else if (IS("delay_warning"))
		r = get_unsigned(c, &cfg->delay_warning);
	else if (IS("message_size"))
		r = get_num(c, &cfg->limits.message_size);
	else if (IS("domain"))
		r = rec_domain(c, cfg);
	else if (IS("catchall"))
		r = rec_catchall(c, cfg);
	else if (IS("users") || IS("aliases"))
		r = rec_table(c, cfg, IS("users"));
	else if (IS("user") || IS("alias"))
		r = rec_entry(c, cfg, IS("user"));
	else
		return fail(c, "an unknown record");
#undef IS
	if (r == -1)
		return -1;
	if (c->pos >= c->len || c->p[c->pos] != '\n')
		return fail(c, "the end of the record expected");
	c->pos++;
	return r;
}

int
qconf_parse(const char *data, size_t len, struct config *out, char *err,
    size_t errlen)
{
	struct cur c = { data, len, 0, err, errlen };
	const size_t ml = sizeof(QCONF_MAGIC) - 1;
	int r = 0;

	memset(out, 0, sizeof(*out));
	if (len <= ml || memcmp(data, QCONF_MAGIC, ml) != 0 || data[ml] != '\n')
		return fail(&c, "not a tern-qconf 1 encoding");
	c.pos = ml + 1;
	while (r == 0) {
		if (c.pos >= c.len)
			return fail(&c, "cut short (no \"end\")");
		r = record(&c, out);
	}
	if (r == -1)
		return -1;
	if (c.pos != c.len)
		return fail(&c, "bytes after \"end\"");
	if (out->hostname[0] == '\0')
		return fail(&c, "no hostname");
	return 0;
}

/* ---- passing it on ---- */

int
qconf_to_memfd(const struct config *cfg)
{
	struct buf b;
	void *map = MAP_FAILED;
	int fd = -1, saved;

	buf_init(&b, QCONF_MAX);
	errno = EFBIG;	/* what a refused append leaves; a failed allocation sets ENOMEM */
	if (qconf_encode(cfg, &b) == -1)
		goto fail;
	if ((fd = memfd_create("tern-qconf", MFD_CLOEXEC)) == -1 ||
	    ftruncate(fd, (off_t)b.len) == -1 ||
	    (map = mmap(NULL, b.len, PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED)
		goto fail;
	memcpy(map, b.data, b.len);
	munmap(map, b.len);
	buf_free(&b);
	return fd;
fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	buf_free(&b);
	errno = saved;
	return -1;
}

int
qconf_from_fd(int fd, struct config *out, char *err, size_t errlen)
{
	struct stat st;
	void *map;
	int r;

	memset(out, 0, sizeof(*out));
	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "fstat: %s", strerror(errno));
		return -1;
	}
	if (st.st_size <= 0 || (uint64_t)st.st_size > QCONF_MAX) {
		snprintf(err, errlen, "an encoding of %lld bytes", (long long)st.st_size);
		return -1;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(err, errlen, "mmap: %s", strerror(errno));
		return -1;
	}
	r = qconf_parse(map, (size_t)st.st_size, out, err, errlen);
	munmap(map, (size_t)st.st_size);
	return r;
}
