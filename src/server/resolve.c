/* resolve — recipient address -> mailboxes or remote addresses (see resolve.h). */
#include "server/resolve.h"

#include <stdio.h>
#include <string.h>

#include "server/table.h"

#define DONE_MAX   128		/* distinct aliases one RCPT may expand */
#define STEPS_MAX  4096		/* lookups one RCPT may cost */
#define KEY_MAX    SMTP_LOCAL_MAX

struct name_ref {
	const struct domain_cfg *d;
	char                     key[KEY_MAX + 1];
};

struct rctx {
	const struct config *cfg;
	struct rcpt_dest    *out;
	size_t               max, n;
	struct name_ref      stack[RESOLVE_MAX_DEPTH + 1];	/* aliases being expanded */
	size_t               depth;
	struct name_ref      done[DONE_MAX];	/* aliases expanded already */
	size_t               ndone;
	unsigned             steps;
};

static enum resolve_status resolve_local(struct rctx *, const struct domain_cfg *,
    const char *, size_t);

static char
lc(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int
ref_in(const struct name_ref *refs, size_t n, const struct domain_cfg *d,
    const char *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (refs[i].d == d && strcmp(refs[i].key, key) == 0)
			return 1;
	return 0;
}

static enum resolve_status
add_dest(struct rctx *cx, const struct rcpt_dest *dst)
{
	size_t i;

	for (i = 0; i < cx->n; i++)
		if (cx->out[i].kind == dst->kind &&
		    strcmp(cx->out[i].addr, dst->addr) == 0)
			return RESOLVE_OK;
	if (cx->n >= cx->max)
		return RESOLVE_TOO_MANY;
	cx->out[cx->n++] = *dst;
	return RESOLVE_OK;
}

/* The mailbox `user` (lower case, no tag) of domain d. */
static enum resolve_status
add_local(struct rctx *cx, const struct domain_cfg *d, const char *user)
{
	struct rcpt_dest dst;
	int n;

	memset(&dst, 0, sizeof(dst));
	dst.kind = DEST_LOCAL;
	n = snprintf(dst.addr, sizeof(dst.addr), "%s@%s", user, d->name);
	if (n < 0 || (size_t)n >= sizeof(dst.addr) ||
	    strlen(user) >= sizeof(dst.user) || strlen(d->name) >= sizeof(dst.domain))
		return RESOLVE_UNKNOWN_USER;
	memcpy(dst.user, user, strlen(user) + 1);
	memcpy(dst.domain, d->name, strlen(d->name) + 1);
	return add_dest(cx, &dst);
}

/* A foreign address as written, its domain lower-cased. */
static enum resolve_status
add_remote(struct rctx *cx, const char *addr, size_t len, size_t at)
{
	struct rcpt_dest dst;
	size_t i;

	if (len >= sizeof(dst.addr))
		return RESOLVE_UNKNOWN_USER;
	memset(&dst, 0, sizeof(dst));
	dst.kind = DEST_REMOTE;
	memcpy(dst.addr, addr, len);
	for (i = at; i < len; i++)
		dst.addr[i] = lc(dst.addr[i]);
	return add_dest(cx, &dst);
}

/* Users table keys are "user" or "user@domain". */
static int
user_exists(const struct domain_cfg *d, const char *user)
{
	char key[KEY_MAX + 1 + CONFIG_NAME_MAX + 1];
	int n;

	/* A local part holding '@' ("user@foreign"@local) is never a user. */
	if (d->users == NULL || strchr(user, '@'))
		return 0;
	if (table_lookup(d->users, user, strlen(user)))
		return 1;
	n = snprintf(key, sizeof(key), "%s@%s", user, d->name);
	return n > 0 && (size_t)n < sizeof(key) &&
	    table_lookup(d->users, key, (size_t)n) != NULL;
}

static int
is_postmaster(const char *key)
{
	return strcmp(key, "postmaster") == 0;
}

/*
 * A name met again while it is being expanded ("bob: bob, bob@elsewhere"):
 * the real mailbox if there is one, else a loop.
 */
static enum resolve_status
self_ref(struct rctx *cx, const struct domain_cfg *d, const char *key)
{
	if (user_exists(d, key) || is_postmaster(key))
		return add_local(cx, d, key);
	return RESOLVE_LOOP;
}

/* Index just past the last '@' outside double quotes, or 0. */
static size_t
split_at(const char *s, size_t n)
{
	size_t i, at = 0;
	int inq = 0;

	for (i = 0; i < n; i++) {
		if (inq && s[i] == '\\' && i + 1 < n)
			i++;
		else if (s[i] == '"')
			inq = !inq;
		else if (!inq && s[i] == '@')
			at = i + 1;
	}
	return at;
}

/* One alias target: "user" (same domain), "user@local", or "user@foreign". */
static enum resolve_status
resolve_target(struct rctx *cx, const struct domain_cfg *d, const char *t,
    size_t n)
{
	const struct domain_cfg *d2 = d;
	char local[KEY_MAX + 1];
	size_t at = split_at(t, n), llen = at ? at - 1 : n, i, k = 0;

	if (at) {
		/* The administrator wrote it: foreign targets leave even without relaying. */
		if (t[at] == '[' ||
		    (d2 = config_find_domain(cx->cfg, t + at, n - at)) == NULL)
			return add_remote(cx, t, n, at);
	}
	/* The lookup key is the local part without quotes and escapes. */
	for (i = 0; i < llen; i++) {
		if (t[i] == '"')
			continue;
		if (t[i] == '\\' && i + 1 < llen)
			i++;
		if (k == KEY_MAX)
			return RESOLVE_UNKNOWN_USER;
		local[k++] = t[i];
	}
	return resolve_local(cx, d2, local, k);
}

/* Expands alias `key` of d to its comma-separated targets. */
static enum resolve_status
expand(struct rctx *cx, const struct domain_cfg *d, const char *key,
    const char *val)
{
	enum resolve_status r = RESOLVE_OK;
	size_t start = 0, i, len = strlen(val);
	int inq = 0;

	if (cx->depth >= RESOLVE_MAX_DEPTH)
		return RESOLVE_LOOP;
	if (ref_in(cx->done, cx->ndone, d, key))
		return RESOLVE_OK;	/* its destinations are in the list already */
	if (cx->ndone == DONE_MAX)
		return RESOLVE_TOO_MANY;
	cx->done[cx->ndone].d = d;
	memcpy(cx->done[cx->ndone++].key, key, strlen(key) + 1);
	cx->stack[cx->depth].d = d;
	memcpy(cx->stack[cx->depth++].key, key, strlen(key) + 1);
	for (i = 0; i <= len && r == RESOLVE_OK; i++) {
		if (i < len && inq && val[i] == '\\')
			i++;
		else if (i < len && val[i] == '"')
			inq = !inq;
		else if (i == len || (!inq && val[i] == ',')) {
			if (i > start)
				r = resolve_target(cx, d, val + start, i - start);
			start = i + 1;
		}
	}
	cx->depth--;
	return r;
}

/* Steps for one name: alias, then user; self-references end as mailbox or loop. */
static int
try_name(struct rctx *cx, const struct domain_cfg *d, const char *key,
    enum resolve_status *r)
{
	const char *val;

	if (ref_in(cx->stack, cx->depth, d, key)) {
		*r = self_ref(cx, d, key);
		return 1;
	}
	if ((val = table_lookup(d->aliases, key, strlen(key))) != NULL) {
		*r = expand(cx, d, key, val);
		return 1;
	}
	if (user_exists(d, key)) {
		*r = add_local(cx, d, key);
		return 1;
	}
	return 0;
}

static enum resolve_status
resolve_catchall(struct rctx *cx, const struct domain_cfg *d)
{
	enum resolve_status r;

	if (try_name(cx, d, d->catchall, &r))
		return r;
	/* Without a users table the catch-all is the mailbox itself. */
	if (d->users == NULL || is_postmaster(d->catchall))
		return add_local(cx, d, d->catchall);
	return RESOLVE_UNKNOWN_USER;
}

/*
 * A local part of local domain d: the full name, then without its
 * "+tag", then postmaster (RFC 5321 4.5.1: it must exist), then the
 * catch-all.
 */
static enum resolve_status
resolve_local(struct rctx *cx, const struct domain_cfg *d, const char *local,
    size_t len)
{
	const char *delim = cx->cfg->recipient_delimiter;
	char key[KEY_MAX + 1];
	enum resolve_status r;
	size_t i, base;

	if (len == 0 || len > KEY_MAX || memchr(local, '\0', len))
		return RESOLVE_UNKNOWN_USER;
	if (++cx->steps > STEPS_MAX)
		return RESOLVE_TOO_MANY;
	for (i = 0; i < len; i++)
		key[i] = lc(local[i]);
	key[len] = '\0';
	if (try_name(cx, d, key, &r))
		return r;
	base = delim[0] ? strcspn(key, delim) : len;
	if (base > 0 && base < len) {
		key[base] = '\0';
		if (try_name(cx, d, key, &r))
			return r;
	}
	if (is_postmaster(key))
		return add_local(cx, d, key);
	if (d->catchall)
		return resolve_catchall(cx, d);
	return RESOLVE_UNKNOWN_USER;
}

enum resolve_status
resolve_rcpt(const struct config *cfg, const struct smtp_path *path,
    int may_relay, struct rcpt_dest *out, size_t max, size_t *n)
{
	const struct domain_cfg *d = NULL;
	enum resolve_status r;
	struct rctx cx;
	size_t dlen;

	/* The name arrays are read only up to depth and ndone: zeroing all
	 * of them (kilobytes) for every RCPT is wasted. */
	*n = 0;
	cx.n = cx.depth = cx.ndone = 0;
	cx.steps = 0;
	cx.cfg = cfg;
	cx.out = out;
	cx.max = max < RESOLVE_MAX_DEST ? max : RESOLVE_MAX_DEST;
	if (path->null)
		return RESOLVE_UNKNOWN_USER;	/* RCPT TO:<> names nobody */
	if (path->postmaster) {
		if (cfg->ndomains == 0)
			return RESOLVE_UNKNOWN_USER;
		r = resolve_local(&cx, &cfg->domains[0], "postmaster", 10);
	} else {
		dlen = strnlen(path->domain, sizeof(path->domain));
		/* An address literal is never one of ours: it is foreign. */
		if (!path->domain_literal)
			d = config_find_domain(cfg, path->domain, dlen);
		if (d)
			r = resolve_local(&cx, d, path->local,
			    strnlen(path->local, sizeof(path->local)));
		else if (!may_relay)
			r = RESOLVE_RELAY_DENIED;
		else
			r = add_remote(&cx, path->addr, strnlen(path->addr,
			    sizeof(path->addr)), path->local_len + 1);
	}
	if (r == RESOLVE_OK)
		*n = cx.n;
	return r;
}

int
resolve_into_envelope(struct envelope *e, const char *orig, const struct rcpt_dest *d,
    size_t n, unsigned notify, const char *orcpt)
{
	struct envelope_rcpt r;
	size_t i, k;

	for (i = 0; i < n; i++) {
		for (k = 0; k < e->nrcpts; k++)
			if (strcmp(e->rcpts[k].addr, d[i].addr) == 0)
				break;
		if (k < e->nrcpts)
			continue;
		memset(&r, 0, sizeof(r));
		r.state = RCPT_PENDING;
		r.kind = d[i].kind == DEST_LOCAL ? RCPTK_LOCAL : RCPTK_REMOTE;
		snprintf(r.user, sizeof(r.user), "%s", d[i].user);
		snprintf(r.domain, sizeof(r.domain), "%s", d[i].domain);
		snprintf(r.addr, sizeof(r.addr), "%s", d[i].addr);
		snprintf(r.orig, sizeof(r.orig), "%s", orig);
		r.notify = notify;
		snprintf(r.orcpt, sizeof(r.orcpt), "%s", orcpt ? orcpt : "");
		if (envelope_add_rcpt(e, &r) == -1)
			return -1;
	}
	return 0;
}

int
resolve_address_into_envelope(const struct config *cfg, const char *addr, int may_relay,
    struct envelope *e)
{
	struct rcpt_dest dest[RESOLVE_MAX_DEST];
	char wrapped[SMTP_PATH_MAX + 8];
	struct smtp_mailarg a;
	size_t n = 0;

	memset(dest, 0, sizeof(dest));	/* not needed, but the analyzer cannot see it */
	snprintf(wrapped, sizeof(wrapped), "TO:<%s>", addr);
	if (smtp_parse_mailarg(wrapped, strlen(wrapped), "TO:", &a, NULL) != SMTP_PARSE_OK ||
	    resolve_rcpt(cfg, &a.path, may_relay, dest, RESOLVE_MAX_DEST, &n) != RESOLVE_OK)
		return -1;
	if (a.path.utf8)
		e->smtputf8 = 1;
	return resolve_into_envelope(e, addr, dest, n, 0, NULL);
}
