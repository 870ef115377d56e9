/* config — tokenizer, parser and checks of tern.conf (see config.h, docs/CONFIG.md). */
#include "daemon/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "mailauth/dkim_canon.h"
#include "server/passwd.h"

#define CONFIG_FILE_MAX   (1024 * 1024)
#define CONFIG_PATH_MAX   4096
#define TABLE_FILE_MAX    ((size_t)256 * 1024 * 1024)
#define WORD_MAX          CONFIG_PATH_MAX
#define DIR_WORDS_MAX     8
#define WORKERS_MAX       64
#define DURATION_MAX      (7u * 86400)	/* a week: anything longer is a typo */
#define SIZE_MAX_BYTES    ((uint64_t)1 << 40)
#define LOCAL_NAME_MAX    64		/* RFC 5321 4.5.3.1.1 */

enum tok { TOK_WORD, TOK_END, TOK_OPEN, TOK_CLOSE, TOK_EOF, TOK_ERR };

struct lexer {
	const char *p;
	size_t      len, pos;
	int         line;
	int         unget;		/* a pushed-back token, or -1 */
	char        word[WORD_MAX + 1];
	size_t      wlen;
};

/* One directive: its words, and whether a '{' ended it. */
struct dir {
	int    line;
	size_t n;
	char  *w[DIR_WORDS_MAX];
	int    block;
	size_t used;
	char   store[DIR_WORDS_MAX * (WORD_MAX + 1)];
};

struct parser {
	struct lexer   lx;
	const char    *name;
	const char    *basedir;
	struct config *cfg;
	char          *err;
	size_t         errlen;
	int            load_tables;
};

#define NARGS_ANY ((size_t)-1)

enum blockness { BLOCK_NO, BLOCK_OPTIONAL, BLOCK_REQUIRED };

struct directive {
	const char     *name;
	int           (*fn)(struct parser *, const struct directive *,
	    struct dir *, void *);
	size_t          nargs;
	enum blockness  block;
	int             repeat;		/* may appear more than once */
	const void     *data;
};

/* Per-domain state while its block is read. */
struct domain_ctx {
	struct domain_cfg *dc;
	int                catchall_line;
	char               ctx[CONFIG_NAME_MAX + 16];	/* "domain \"NAME\"" for errors */
};

static int
perr(struct parser *ps, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
perr(struct parser *ps, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ps->err == NULL || ps->errlen == 0)
		return -1;
	n = snprintf(ps->err, ps->errlen, "%s:%d: ", ps->name, line);
	if (n < 0 || (size_t)n >= ps->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- tokenizer ---- */

static int
is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static int
is_ctl(int c)
{
	return (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f;
}

/* A bare word ends at a blank, a newline or one of ; { } # " */
static int
is_delim(int c)
{
	return is_blank(c) || c == '\n' || c == ';' || c == '{' || c == '}' ||
	    c == '#' || c == '"';
}

static int
lex_putc(struct parser *ps, int c)
{
	struct lexer *lx = &ps->lx;

	if (lx->wlen >= WORD_MAX)
		return perr(ps, lx->line, "word too long (max %d)", WORD_MAX);
	lx->word[lx->wlen++] = (char)c;
	return 0;
}

/* "double quotes" with \" and \\ escapes; no newline inside. */
static enum tok
lex_quoted(struct parser *ps)
{
	struct lexer *lx = &ps->lx;
	int c, start = lx->line;

	for (lx->pos++;; lx->pos++) {
		if (lx->pos >= lx->len || lx->p[lx->pos] == '\n')
			return perr(ps, start, "unterminated quoted string"), TOK_ERR;
		c = (unsigned char)lx->p[lx->pos];
		if (is_ctl(c) || c == '\r')
			return perr(ps, lx->line, "control character 0x%02x", c), TOK_ERR;
		if (c == '"')
			break;
		if (c == '\\') {
			if (lx->pos + 1 >= lx->len || (lx->p[lx->pos + 1] != '"' &&
			    lx->p[lx->pos + 1] != '\\'))
				return perr(ps, lx->line, "bad escape in quoted string "
				    "(only \\\" and \\\\)"), TOK_ERR;
			c = (unsigned char)lx->p[++lx->pos];
		}
		if (lex_putc(ps, c) == -1)
			return TOK_ERR;
	}
	lx->pos++;
	if (lx->pos < lx->len && !is_delim((unsigned char)lx->p[lx->pos]))
		return perr(ps, lx->line, "missing blank after quoted string"), TOK_ERR;
	return TOK_WORD;
}

static enum tok
lex_bare(struct parser *ps)
{
	struct lexer *lx = &ps->lx;
	int c;

	for (; lx->pos < lx->len; lx->pos++) {
		c = (unsigned char)lx->p[lx->pos];
		if (c == '"')
			return perr(ps, lx->line, "'\"' inside a word"), TOK_ERR;
		if (is_delim(c))
			break;
		if (is_ctl(c))
			return perr(ps, lx->line, "control character 0x%02x", c), TOK_ERR;
		if (lex_putc(ps, c) == -1)
			return TOK_ERR;
	}
	return TOK_WORD;
}

static enum tok
lex_next(struct parser *ps)
{
	struct lexer *lx = &ps->lx;
	int c;

	if (lx->unget != -1) {
		c = lx->unget;
		lx->unget = -1;
		return (enum tok)c;
	}
	while (lx->pos < lx->len) {
		c = (unsigned char)lx->p[lx->pos];
		if (is_blank(c)) {
			lx->pos++;
		} else if (c == '#') {
			while (lx->pos < lx->len && lx->p[lx->pos] != '\n')
				lx->pos++;
		} else
			break;
	}
	if (lx->pos >= lx->len)
		return TOK_EOF;
	lx->wlen = 0;
	switch (lx->p[lx->pos]) {
	case '\n':
		lx->pos++;
		lx->line++;
		return TOK_END;
	case ';':
		lx->pos++;
		return TOK_END;
	case '{':
		lx->pos++;
		return TOK_OPEN;
	case '}':
		lx->pos++;
		return TOK_CLOSE;
	case '"':
		return lex_quoted(ps);
	default:
		return lex_bare(ps);
	}
}

/* The line of the file's last byte, for errors found at its end. */
static int
last_line(const struct lexer *lx)
{
	if (lx->len > 0 && lx->p[lx->len - 1] == '\n')
		return lx->line - 1;
	return lx->line;
}

/* ---- directives ---- */

static int
dir_add_word(struct parser *ps, struct dir *d)
{
	struct lexer *lx = &ps->lx;

	if (d->n == 0)
		d->line = lx->line;
	/* Extra words are only counted: dispatch() reports them. */
	if (d->n >= DIR_WORDS_MAX) {
		d->n++;
		return 0;
	}
	d->w[d->n++] = d->store + d->used;
	memcpy(d->store + d->used, lx->word, lx->wlen);
	d->store[d->used + lx->wlen] = '\0';
	d->used += lx->wlen + 1;
	return 0;
}

/*
 * Reads the next directive. Returns TOK_WORD (a directive in *d),
 * TOK_CLOSE (a '}' with no directive before it), TOK_EOF or TOK_ERR.
 */
static enum tok
read_dir(struct parser *ps, struct dir *d)
{
	enum tok t;

	d->n = 0;
	d->used = 0;
	d->block = 0;
	d->line = ps->lx.line;
	for (;;) {
		switch (t = lex_next(ps)) {
		case TOK_WORD:
			if (dir_add_word(ps, d) == -1)
				return TOK_ERR;
			break;
		case TOK_END:
			if (d->n)
				return TOK_WORD;
			break;
		case TOK_OPEN:
			if (d->n == 0)
				return perr(ps, ps->lx.line, "'{' without a directive "
				    "(a block opens on its directive's line)"), TOK_ERR;
			d->block = 1;
			return TOK_WORD;
		case TOK_CLOSE:
		case TOK_EOF:
			if (d->n == 0)
				return t;
			ps->lx.unget = (int)t;	/* "{ mode mx }": '}' ends it */
			return TOK_WORD;
		default:
			return TOK_ERR;
		}
	}
}

static const struct directive *
find_directive(const struct directive *tab, size_t ntab, const char *name)
{
	size_t i;

	for (i = 0; i < ntab; i++)
		if (strcmp(tab[i].name, name) == 0)
			return &tab[i];
	return NULL;
}

/* Checks a directive against its table entry and runs it. */
static int
dispatch(struct parser *ps, const char *ctx, const struct directive *tab,
    size_t ntab, int *seen, struct dir *d, void *arg)
{
	const struct directive *e;
	const char *sep = ctx ? ": " : "";

	ctx = ctx ? ctx : "";
	if ((e = find_directive(tab, ntab, d->w[0])) == NULL)
		return perr(ps, d->line, "%s%sunknown directive \"%s\"", ctx, sep,
		    d->w[0]);
	if (!e->repeat && seen[e - tab])
		return perr(ps, d->line, "%s%sduplicate directive \"%s\" (first at "
		    "line %d)", ctx, sep, e->name, seen[e - tab]);
	seen[e - tab] = d->line;
	if (e->nargs == NARGS_ANY)
		;	/* the directive checks its own words */
	else if (d->n - 1 < e->nargs)
		return perr(ps, d->line, "%s%s%s: missing argument", ctx, sep, e->name);
	else if (d->n - 1 > e->nargs)
		return perr(ps, d->line, "%s%s%s: too many arguments", ctx, sep,
		    e->name);
	if (d->block && e->block == BLOCK_NO)
		return perr(ps, d->line, "%s%s%s: unexpected block", ctx, sep, e->name);
	if (!d->block && e->block == BLOCK_REQUIRED)
		return perr(ps, d->line, "%s%s%s: missing block (the '{' must be on "
		    "the directive's line)", ctx, sep, e->name);
	return e->fn(ps, e, d, arg);
}

/* Reads the directives of a block up to its '}'. */
static int
parse_block(struct parser *ps, const char *ctx, const struct directive *tab,
    size_t ntab, int open_line, void *arg)
{
	int seen[16] = { 0 };
	struct dir *d;
	enum tok t;
	int r = 0;

	if ((d = malloc(sizeof(*d))) == NULL)
		return perr(ps, open_line, "out of memory");
	while (r == 0) {
		t = read_dir(ps, d);
		if (t == TOK_CLOSE)
			break;
		if (t == TOK_EOF)
			r = perr(ps, last_line(&ps->lx), "unterminated block opened at line %d",
			    open_line);
		else if (t == TOK_ERR)
			r = -1;
		else
			r = dispatch(ps, ctx, tab, ntab, seen, d, arg);
	}
	free(d);
	return r;
}

/* ---- values ---- */

static int
parse_u64(const char *s, size_t n, uint64_t *v)
{
	size_t i;

	if (n == 0)
		return -1;
	for (*v = 0, i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || *v > (UINT64_MAX - 9) / 10)
			return -1;
		*v = *v * 10 + (uint64_t)(s[i] - '0');
	}
	return 0;
}

/* 35M, 512K, 1G (binary multiples) or plain octets. */
static int
parse_size(const char *s, uint64_t *v)
{
	size_t n = strlen(s);
	unsigned shift = 0;

	if (n > 0) {
		switch (s[n - 1]) {
		case 'K': case 'k': shift = 10; break;
		case 'M': case 'm': shift = 20; break;
		case 'G': case 'g': shift = 30; break;
		}
	}
	if (parse_u64(s, n - (shift != 0), v) == -1 || *v > (UINT64_MAX >> shift))
		return -1;
	*v <<= shift;
	return 0;
}

/* 30s, 5m, 1h, or plain seconds. */
static int
parse_duration(const char *s, uint64_t *v)
{
	size_t n = strlen(s);
	uint64_t mul = 0;

	if (n > 0) {
		switch (s[n - 1]) {
		case 's': mul = 1; break;
		case 'm': mul = 60; break;
		case 'h': mul = 3600; break;
		case 'd': mul = 86400; break;
		}
	}
	if (parse_u64(s, n - (mul != 0), v) == -1)
		return -1;
	if (mul && *v > UINT64_MAX / mul)
		return -1;
	*v *= mul ? mul : 1;
	return 0;
}

/* RFC 1035 2.3.1 host name: letters, digits, hyphens; labels of 1-63; 253 total. */
static int
valid_domain(const char *s, size_t n)
{
	size_t i, lab = 0;

	if (n == 0 || n > 253)
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (lab == 0 || s[i - 1] == '-')
				return 0;
			lab = 0;
			continue;
		}
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
		if ((lab == 0 && s[i] == '-') || ++lab > 63)
			return 0;
	}
	return lab > 0 && s[n - 1] != '-';
}

/* System and mailbox names: letters, digits, '.', '_', '-'; not starting with '.' or '-'. */
static int
valid_name(const char *s, size_t max)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > max || s[0] == '.' || s[0] == '-')
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' ||
		    s[i] == '-'))
			return 0;
	return 1;
}

static void
lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* An absolute path: `p` itself, or p taken from the config file's directory. */
static int
make_path(struct parser *ps, struct dir *d, const char *what, const char *p,
    char **out)
{
	char buf[CONFIG_PATH_MAX + 1];
	int n;

	if (*p == '\0')
		return perr(ps, d->line, "%s: empty path", what);
	if (*p == '/')
		n = snprintf(buf, sizeof(buf), "%s", p);
	else
		n = snprintf(buf, sizeof(buf), "%s%s%s", ps->basedir,
		    strcmp(ps->basedir, "/") ? "/" : "", p);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return perr(ps, d->line, "%s: path too long", what);
	free(*out);
	if ((*out = strdup(buf)) == NULL)
		return perr(ps, d->line, "out of memory");
	return 0;
}

/* ---- top-level directives ---- */

static int
fn_hostname(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	const char *h = d->w[1];
	size_t n = strlen(h);

	if (n > 1 && h[n - 1] == '.')
		n--;
	if (!valid_domain(h, n))
		return perr(ps, d->line, "hostname: bad domain name \"%s\"", h);
	memcpy(ps->cfg->hostname, h, n);
	ps->cfg->hostname[n] = '\0';
	return 0;
}

static int
fn_user(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	char *dst = strcmp(e->name, "user") == 0 ? ps->cfg->user :
	    ps->cfg->deliver_user;

	if (!valid_name(d->w[1], sizeof(ps->cfg->user) - 1))
		return perr(ps, d->line, "%s: bad user name \"%s\"", e->name, d->w[1]);
	snprintf(dst, sizeof(ps->cfg->user), "%s", d->w[1]);
	return 0;
}

static int
fn_path(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	char **dst = strcmp(e->name, "spool") == 0 ? &ps->cfg->spool_dir :
	    &ps->cfg->chroot_dir;

	return make_path(ps, d, e->name, d->w[1], dst);
}

static int
fn_workers(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	uint64_t v;

	if (parse_u64(d->w[1], strlen(d->w[1]), &v) == -1)
		return perr(ps, d->line, "workers: not a number \"%s\"", d->w[1]);
	if (v > WORKERS_MAX)
		return perr(ps, d->line, "workers: %s is out of range (0..%d)",
		    d->w[1], WORKERS_MAX);
	ps->cfg->workers = (int)v;
	return 0;
}

static int
fn_deliver_processes(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	uint64_t v;

	if (parse_u64(d->w[1], strlen(d->w[1]), &v) == -1)
		return perr(ps, d->line, "deliver_processes: not a number \"%s\"", d->w[1]);
	if (v < 1 || v > CONFIG_DELIVER_MAX)
		return perr(ps, d->line, "deliver_processes: %s is out of range (1..%d)",
		    d->w[1], CONFIG_DELIVER_MAX);
	ps->cfg->deliver_processes = (int)v;
	return 0;
}

static int
fn_delimiter(struct parser *ps, const struct directive *e, struct dir *d,
    void *arg)
{
	const char *s = d->w[1];
	size_t i, n = strlen(s);

	if (n >= sizeof(ps->cfg->recipient_delimiter))
		return perr(ps, d->line, "recipient_delimiter: too long (max %zu "
		    "characters)", sizeof(ps->cfg->recipient_delimiter) - 1);
	/* Characters that would change how an address splits are refused. */
	for (i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~' || strchr("@\"\\,", s[i]))
			return perr(ps, d->line, "recipient_delimiter: bad "
			    "character in \"%s\"", s);
	memcpy(ps->cfg->recipient_delimiter, s, n + 1);
	return 0;
}

static int
duration_value(struct parser *ps, struct dir *d, const char *what, uint64_t min,
    unsigned *out)
{
	uint64_t v;

	if (parse_duration(d->w[1], &v) == -1)
		return perr(ps, d->line, "%s: not a duration \"%s\"", what, d->w[1]);
	if (v < min || v > DURATION_MAX)
		return perr(ps, d->line, "%s: %s is out of range (%llu..%u seconds)",
		    what, d->w[1], (unsigned long long)min, DURATION_MAX);
	*out = (unsigned)v;
	return 0;
}

static int
fn_retry(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	return duration_value(ps, d, "retry_interval", 1, &ps->cfg->retry_interval);
}

/* ---- listen ---- */

/* "127.0.0.1:25", "[::1]:25", "*:25" (= 0.0.0.0). */
static int
parse_listen_addr(const char *s, struct listen_cfg *l)
{
	char host[64];
	const char *colon, *hs, *he;
	uint64_t port;
	size_t n = strlen(s);
	struct sockaddr_in *sin = (struct sockaddr_in *)&l->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&l->ss;

	if (n >= sizeof(l->text) || (colon = strrchr(s, ':')) == NULL)
		return -1;
	hs = s;
	he = colon;
	if (s[0] == '[') {
		if (colon == s || colon[-1] != ']')
			return -1;
		hs = s + 1;
		he = colon - 1;
	}
	if ((size_t)(he - hs) >= sizeof(host) ||
	    parse_u64(colon + 1, strlen(colon + 1), &port) == -1 ||
	    strlen(colon + 1) > 5 || port == 0 || port > 65535)
		return -1;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	memset(&l->ss, 0, sizeof(l->ss));
	if (s[0] == '[') {
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		l->sslen = sizeof(*sin6);
	} else {
		if (strcmp(host, "*") == 0)
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		l->sslen = sizeof(*sin);
	}
	memcpy(l->text, s, n + 1);
	return 0;
}

static int
fn_mode(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct listen_cfg *l = arg;

	if (strcmp(d->w[1], "mx") == 0)
		l->mode = LISTEN_MX;
	else if (strcmp(d->w[1], "submission") == 0)
		l->mode = LISTEN_SUBMISSION;
	else
		return perr(ps, d->line, "listen: mode: unknown mode \"%s\" (mx, submission)",
		    d->w[1]);
	return 0;
}

static int
fn_listen_tls(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	static const struct { const char *name; enum listen_tls v; } modes[] = {
		{ "none", LTLS_NONE }, { "optional", LTLS_OPTIONAL },
		{ "required", LTLS_REQUIRED }, { "starttls-required", LTLS_REQUIRED },
		{ "implicit", LTLS_IMPLICIT },
	};
	struct listen_cfg *l = arg;
	size_t i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(d->w[1], modes[i].name) == 0) {
			l->tls = modes[i].v;
			return 0;
		}
	return perr(ps, d->line, "listen: tls: unknown value \"%s\" (none, optional, "
	    "required, implicit)", d->w[1]);
}

static int
on_off(struct parser *ps, struct dir *d, const char *what, int *out)
{
	if (strcmp(d->w[1], "on") == 0)
		*out = 1;
	else if (strcmp(d->w[1], "off") == 0)
		*out = 0;
	else
		return perr(ps, d->line, "%s: \"%s\" is not on or off", what, d->w[1]);
	return 0;
}

static int
fn_listen_checks(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	return on_off(ps, d, "listen: auth_checks", &((struct listen_cfg *)arg)->checks);
}

static const struct directive listen_tab[] = {
	{ "mode", fn_mode, 1, BLOCK_NO, 0, NULL },
	{ "auth_checks", fn_listen_checks, 1, BLOCK_NO, 0, NULL },
	{ "tls", fn_listen_tls, 1, BLOCK_NO, 0, NULL },
};

static int
fn_listen(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct config *cfg = ps->cfg;
	struct listen_cfg *l;
	size_t i;

	if (cfg->nlisten == CONFIG_MAX_LISTEN)
		return perr(ps, d->line, "listen: too many (max %d)", CONFIG_MAX_LISTEN);
	l = &cfg->listen[cfg->nlisten];
	memset(l, 0, sizeof(*l));
	l->mode = LISTEN_MX;
	l->checks = -1;
	l->line = d->line;
	if (parse_listen_addr(d->w[1], l) == -1)
		return perr(ps, d->line, "listen: bad address \"%s\"", d->w[1]);
	for (i = 0; i < cfg->nlisten; i++)
		if (cfg->listen[i].sslen == l->sslen &&
		    memcmp(&cfg->listen[i].ss, &l->ss, l->sslen) == 0)
			return perr(ps, d->line, "listen: \"%s\" declared twice "
			    "(first at line %d)", d->w[1], cfg->listen[i].line);
	if (d->block && parse_block(ps, "listen", listen_tab,
	    sizeof(listen_tab) / sizeof(listen_tab[0]), d->line, l) == -1)
		return -1;
	if (l->mode == LISTEN_SUBMISSION && l->tls == LTLS_OPTIONAL)
		return perr(ps, d->line, "listen: mode submission: tls optional would "
		    "let passwords travel in clear; use required or implicit");
	cfg->nlisten++;
	return 0;
}

/* ---- limits ---- */

enum limit_kind { LIM_COUNT, LIM_SIZE, LIM_DURATION };

struct limit_def {
	enum limit_kind kind;
	size_t          off;	/* into struct limits_cfg */
	uint64_t        min, max;
};

#define LIM(k, f, lo, hi) \
	(&(const struct limit_def){ k, offsetof(struct limits_cfg, f), lo, hi })

static int
fn_limit(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	const struct limit_def *ld = e->data;
	char *base = (char *)&ps->cfg->limits + ld->off;
	char what[64];
	uint64_t v;
	unsigned u;
	size_t z;

	if (ld->kind == LIM_DURATION) {
		snprintf(what, sizeof(what), "limits: %s", e->name);
		if (duration_value(ps, d, what, ld->min, &u) == -1)
			return -1;
		memcpy(base, &u, sizeof(u));
		return 0;
	}
	if ((ld->kind == LIM_SIZE ? parse_size(d->w[1], &v) :
	    parse_u64(d->w[1], strlen(d->w[1]), &v)) == -1)
		return perr(ps, d->line, "limits: %s: not a %s \"%s\"", e->name,
		    ld->kind == LIM_SIZE ? "size" : "number", d->w[1]);
	if (v < ld->min || v > ld->max)
		return perr(ps, d->line, "limits: %s: %s is out of range (%llu..%llu)",
		    e->name, d->w[1], (unsigned long long)ld->min,
		    (unsigned long long)ld->max);
	if (ld->kind == LIM_SIZE) {
		memcpy(base, &v, sizeof(v));
	} else {
		z = (size_t)v;
		memcpy(base, &z, sizeof(z));
	}
	return 0;
}

static const struct directive limits_tab[] = {
	/* RFC 5321 4.5.3.1.4-6 and 4.5.3.1.8 give the minimums. */
	{ "command_line", fn_limit, 1, BLOCK_NO, 0,
	    LIM(LIM_COUNT, command_line, 512, 65536) },
	{ "text_line", fn_limit, 1, BLOCK_NO, 0,
	    LIM(LIM_COUNT, text_line, 1000, 65536) },
	{ "recipients", fn_limit, 1, BLOCK_NO, 0,
	    LIM(LIM_COUNT, recipients, 100, 10000) },
	{ "message_size", fn_limit, 1, BLOCK_NO, 0,
	    LIM(LIM_SIZE, message_size, 0, SIZE_MAX_BYTES) },
	{ "connections", fn_limit, 1, BLOCK_NO, 0,
	    LIM(LIM_COUNT, connections, 1, 1000000) },
	{ "connections_per_ip", fn_limit, 1, BLOCK_NO, 0,
	    LIM(LIM_COUNT, connections_per_ip, 1, 1000000) },
	{ "errors", fn_limit, 1, BLOCK_NO, 0, LIM(LIM_COUNT, errors, 1, 1000) },
	{ "commands", fn_limit, 1, BLOCK_NO, 0, LIM(LIM_COUNT, commands, 10, 100000000) },
	{ "messages_per_ip", fn_limit, 1, BLOCK_NO, 0,
	    LIM(LIM_COUNT, messages_per_ip, 0, 100000000) },
	/* RFC 5321 4.5.3.2 timeouts. */
	{ "timeout_command", fn_limit, 1, BLOCK_NO, 0,
	    LIM(LIM_DURATION, timeout_greeting, 1, DURATION_MAX) },
	{ "timeout_data", fn_limit, 1, BLOCK_NO, 0,
	    LIM(LIM_DURATION, timeout_data_block, 1, DURATION_MAX) },
	{ "timeout_commit", fn_limit, 1, BLOCK_NO, 0,
	    LIM(LIM_DURATION, timeout_data_end, 1, DURATION_MAX) },
	{ "shutdown_wait", fn_limit, 1, BLOCK_NO, 0,
	    LIM(LIM_DURATION, shutdown_wait, 0, DURATION_MAX) },
	/* Seconds of silence before the 220; a client that talks first is refused. */
	{ "greeting_delay", fn_limit, 1, BLOCK_NO, 0,
	    LIM(LIM_DURATION, greeting_delay, 0, 60) },
};

static int
fn_limits(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	return parse_block(ps, "limits", limits_tab,
	    sizeof(limits_tab) / sizeof(limits_tab[0]), d->line, NULL);
}

/* ---- domain ---- */

/* Reads a whole regular file. NULL on success, else the reason. */
static const char *
read_file(const char *path, size_t max, char **data, size_t *len)
{
	const char *why = NULL;
	struct stat st;
	size_t got = 0;
	ssize_t r;
	int fd;

	*data = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return strerror(errno);
	if (fstat(fd, &st) == -1)
		goto fail;
	if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if ((uint64_t)st.st_size > max)
		why = "file too large";
	if (why || (*data = malloc((size_t)st.st_size + 1)) == NULL)
		goto fail;
	while (got < (size_t)st.st_size) {
		r = read(fd, *data + got, (size_t)st.st_size - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				break;
			goto fail;
		}
		got += (size_t)r;
	}
	close(fd);
	*len = got;
	return NULL;
fail:
	if (why == NULL)
		why = strerror(errno);
	close(fd);
	free(*data);
	*data = NULL;
	return why;
}

/* Loads a table named by a domain block; its own errors are TABLEFILE:LINE. */
static int
load_table(struct parser *ps, struct dir *d, const char *what, const char *path,
    int aliases, struct table **out)
{
	const char *why;
	char *data;
	size_t len;

	if ((why = read_file(path, TABLE_FILE_MAX, &data, &len)) != NULL)
		return perr(ps, d->line, "%s: cannot read \"%s\": %s", what, path,
		    why);
	*out = aliases ? table_parse_aliases(data, len, path, ps->err, ps->errlen)
	    : table_parse_passwd(data, len, path, ps->err, ps->errlen);
	free(data);
	return *out ? 0 : -1;
}

static int
fn_table(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct domain_ctx *dx = arg;
	struct domain_cfg *dc = dx->dc;
	int aliases = strcmp(e->name, "aliases") == 0;
	char **path = aliases ? &dc->aliases_path : &dc->users_path;
	char what[sizeof(dx->ctx) + 16];

	snprintf(what, sizeof(what), "%s: %s", dx->ctx, e->name);
	if (make_path(ps, d, what, d->w[1], path) == -1)
		return -1;
	if (!ps->load_tables)
		return 0;
	return load_table(ps, d, what, *path, aliases, aliases ? &dc->aliases :
	    &dc->users);
}

static int
fn_maildir(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct domain_ctx *dx = arg;
	char what[sizeof(dx->ctx) + 16];
	const char *p;

	for (p = d->w[1]; (p = strchr(p, '%')) != NULL; p += 2)
		if (p[1] != 'u' && p[1] != 'd' && p[1] != '%')
			return perr(ps, d->line, "%s: maildir: bad escape \"%%%.1s\" "
			    "(only %%u, %%d and %%%% are allowed)", dx->ctx, p + 1);
	snprintf(what, sizeof(what), "%s: maildir", dx->ctx);
	return make_path(ps, d, what, d->w[1], &dx->dc->maildir);
}

static int
fn_catchall(struct parser *ps, const struct directive *e, struct dir *d,
    void *arg)
{
	struct domain_ctx *dx = arg;

	if (!valid_name(d->w[1], LOCAL_NAME_MAX))
		return perr(ps, d->line, "%s: catchall: bad user name \"%s\"",
		    dx->ctx, d->w[1]);
	free(dx->dc->catchall);
	if ((dx->dc->catchall = strdup(d->w[1])) == NULL)
		return perr(ps, d->line, "out of memory");
	lower(dx->dc->catchall);
	dx->catchall_line = d->line;
	return 0;
}

static const struct directive domain_tab[] = {
	{ "users", fn_table, 1, BLOCK_NO, 0, NULL },
	{ "aliases", fn_table, 1, BLOCK_NO, 0, NULL },
	{ "maildir", fn_maildir, 1, BLOCK_NO, 0, NULL },
	{ "catchall", fn_catchall, 1, BLOCK_NO, 0, NULL },
};

/* With its tables loaded, the catch-all must name a user or an alias. */
static int
check_catchall(struct parser *ps, const struct domain_ctx *dx)
{
	const struct domain_cfg *dc = dx->dc;
	char key[LOCAL_NAME_MAX + 1 + CONFIG_NAME_MAX + 1];
	const char *c = dc->catchall;

	if (c == NULL || dc->users == NULL)
		return 0;
	snprintf(key, sizeof(key), "%s@%s", c, dc->name);
	if (table_lookup(dc->users, c, strlen(c)) ||
	    table_lookup(dc->users, key, strlen(key)) ||
	    table_lookup(dc->aliases, c, strlen(c)) || strcmp(c, "postmaster") == 0)
		return 0;
	return perr(ps, dx->catchall_line, "domain \"%s\": catchall \"%s\" is "
	    "neither a user nor an alias", dc->name, c);
}

static int
add_domain(struct parser *ps, struct dir *d, const char *name, size_t n)
{
	struct config *cfg = ps->cfg;
	struct domain_cfg *nd;

	if (config_find_domain(cfg, name, n))
		return perr(ps, d->line, "domain \"%.*s\" declared twice", (int)n,
		    name);
	if (cfg->ndomains == CONFIG_MAX_DOMAINS)
		return perr(ps, d->line, "domain: too many (max %d)",
		    CONFIG_MAX_DOMAINS);
	nd = realloc(cfg->domains, (cfg->ndomains + 1) * sizeof(*nd));
	if (nd == NULL)
		return perr(ps, d->line, "out of memory");
	cfg->domains = nd;
	nd = &cfg->domains[cfg->ndomains++];
	memset(nd, 0, sizeof(*nd));
	memcpy(nd->name, name, n);
	nd->name[n] = '\0';
	return 0;
}

static int
fn_domain(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct domain_ctx dx;
	size_t n = strlen(d->w[1]);

	if (n > 1 && d->w[1][n - 1] == '.')
		n--;
	if (!valid_domain(d->w[1], n))
		return perr(ps, d->line, "domain: bad domain name \"%s\"", d->w[1]);
	lower(d->w[1]);
	if (add_domain(ps, d, d->w[1], n) == -1)
		return -1;
	dx.dc = &ps->cfg->domains[ps->cfg->ndomains - 1];
	dx.catchall_line = 0;
	snprintf(dx.ctx, sizeof(dx.ctx), "domain \"%s\"", dx.dc->name);
	if (parse_block(ps, dx.ctx, domain_tab,
	    sizeof(domain_tab) / sizeof(domain_tab[0]), d->line, &dx) == -1)
		return -1;
	if (dx.dc->maildir == NULL)
		return perr(ps, d->line, "%s: maildir is required", dx.ctx);
	return check_catchall(ps, &dx);
}

/* ---- tls ---- */

static int
fn_tls_file(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct tls_cert_cfg *c = arg;
	char what[CONFIG_NAME_MAX + 32];

	snprintf(what, sizeof(what), "tls%s%s: %s", c->name[0] ? " sni " : "", c->name, e->name);
	return make_path(ps, d, what, d->w[1], strcmp(e->name, "cert") == 0 ? &c->cert : &c->key);
}

static const struct directive sni_tab[] = {
	{ "cert", fn_tls_file, 1, BLOCK_NO, 0, NULL },
	{ "key", fn_tls_file, 1, BLOCK_NO, 0, NULL },
};

static int
fn_tls_sni(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct tls_cfg *t = &ps->cfg->tls;
	struct tls_cert_cfg *c;
	size_t i, n = strlen(d->w[1]);

	if (!valid_domain(d->w[1], n) && !(d->w[1][0] == '*' && d->w[1][1] == '.' &&
	    valid_domain(d->w[1] + 2, n - 2)))
		return perr(ps, d->line, "tls: sni: bad host name \"%s\"", d->w[1]);
	lower(d->w[1]);
	for (i = 1; i < t->ncerts; i++)
		if (strcmp(t->certs[i].name, d->w[1]) == 0)
			return perr(ps, d->line, "tls: sni \"%s\" declared twice", d->w[1]);
	if (t->ncerts > CONFIG_MAX_SNI)
		return perr(ps, d->line, "tls: too many sni blocks (max %d)", CONFIG_MAX_SNI);
	c = &t->certs[t->ncerts++];
	snprintf(c->name, sizeof(c->name), "%s", d->w[1]);
	c->line = d->line;
	if (parse_block(ps, "tls: sni", sni_tab, sizeof(sni_tab) / sizeof(sni_tab[0]),
	    d->line, c) == -1)
		return -1;
	if (!c->cert || !c->key)
		return perr(ps, d->line, "tls: sni \"%s\": cert and key are required", c->name);
	return 0;
}

static int
fn_tls_default_file(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	return fn_tls_file(ps, e, d, &ps->cfg->tls.certs[0]);
}

static int
fn_tls_min(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	if (strcmp(d->w[1], "1.2") == 0)
		ps->cfg->tls.min_version = 0x0303;
	else if (strcmp(d->w[1], "1.3") == 0)
		ps->cfg->tls.min_version = 0x0304;
	else
		return perr(ps, d->line, "tls: min_version: \"%s\" is not 1.2 or 1.3", d->w[1]);
	return 0;
}

static int
fn_tls_ciphers(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	free(ps->cfg->tls.ciphers);
	if ((ps->cfg->tls.ciphers = strdup(d->w[1])) == NULL)
		return perr(ps, d->line, "out of memory");
	return 0;
}

static const struct directive tls_tab[] = {
	{ "cert", fn_tls_default_file, 1, BLOCK_NO, 0, NULL },
	{ "key", fn_tls_default_file, 1, BLOCK_NO, 0, NULL },
	{ "min_version", fn_tls_min, 1, BLOCK_NO, 0, NULL },
	{ "ciphers", fn_tls_ciphers, 1, BLOCK_NO, 0, NULL },
	{ "sni", fn_tls_sni, 1, BLOCK_REQUIRED, 1, NULL },
};

static int
fn_tls(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct tls_cfg *t = &ps->cfg->tls;

	t->present = 1;
	t->line = d->line;
	t->ncerts = 1;
	t->certs[0].line = d->line;	/* errors of the default certificate point at the block */
	if (parse_block(ps, "tls", tls_tab, sizeof(tls_tab) / sizeof(tls_tab[0]),
	    d->line, NULL) == -1)
		return -1;
	if (!t->certs[0].cert || !t->certs[0].key)
		return perr(ps, d->line, "tls: cert and key are required");
	return 0;
}

/* ---- auth ---- */

static int
yes_no(struct parser *ps, struct dir *d, const char *what, int *out)
{
	if (strcmp(d->w[1], "yes") == 0)
		*out = 1;
	else if (strcmp(d->w[1], "no") == 0)
		*out = 0;
	else
		return perr(ps, d->line, "auth: %s: \"%s\" is not yes or no", what, d->w[1]);
	return 0;
}

static int
fn_auth_flag(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct auth_cfg *a = &ps->cfg->auth;

	return yes_no(ps, d, e->name, strcmp(e->name, "allow_plaintext") == 0 ?
	    &a->allow_plaintext : &a->sender_check);
}

static int
fn_auth_num(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct auth_cfg *a = &ps->cfg->auth;
	char what[64];
	uint64_t v;

	snprintf(what, sizeof(what), "auth: %s", e->name);
	if (strcmp(e->name, "max_failures") == 0) {
		if (parse_u64(d->w[1], strlen(d->w[1]), &v) == -1 || v < 1 || v > 1000)
			return perr(ps, d->line, "%s: \"%s\" is not a number in 1..1000",
			    what, d->w[1]);
		a->max_failures = (unsigned)v;
		return 0;
	}
	return duration_value(ps, d, what, 1, strcmp(e->name, "lockout") == 0 ?
	    &a->lockout : &a->failure_window);
}

static int
fn_auth_senders(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct auth_cfg *a = &ps->cfg->auth;

	if (make_path(ps, d, "auth: senders", d->w[1], &a->senders_path) == -1)
		return -1;
	if (!ps->load_tables)
		return 0;
	return load_table(ps, d, "auth: senders", a->senders_path, 1, &a->senders);
}

static const struct directive auth_tab[] = {
	{ "allow_plaintext", fn_auth_flag, 1, BLOCK_NO, 0, NULL },
	{ "sender_check", fn_auth_flag, 1, BLOCK_NO, 0, NULL },
	{ "max_failures", fn_auth_num, 1, BLOCK_NO, 0, NULL },
	{ "failure_window", fn_auth_num, 1, BLOCK_NO, 0, NULL },
	{ "lockout", fn_auth_num, 1, BLOCK_NO, 0, NULL },
	{ "senders", fn_auth_senders, 1, BLOCK_NO, 0, NULL },
};

static int
fn_auth(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	ps->cfg->auth.present = 1;
	ps->cfg->auth.line = d->line;
	return parse_block(ps, "auth", auth_tab, sizeof(auth_tab) / sizeof(auth_tab[0]),
	    d->line, NULL);
}

/* ---- outbound ---- */

static int
tls_policy(struct parser *ps, struct dir *d, const char *what, int *out)
{
	if (strcmp(d->w[1], "none") == 0)
		*out = 0;
	else if (strcmp(d->w[1], "may") == 0)
		*out = 1;
	else if (strcmp(d->w[1], "must") == 0 || strcmp(d->w[1], "encrypt") == 0)
		*out = 2;
	else if (strcmp(d->w[1], "verify") == 0)
		*out = 3;
	else
		return perr(ps, d->line, "%s: \"%s\" is not none, may, encrypt or verify",
		    what, d->w[1]);
	return 0;
}

static int
fn_smtp_tls(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	return tls_policy(ps, d, "smtp_tls", &ps->cfg->smtp_tls);
}

/* Like a route's tls_ca, for every destination without one. */
static int
fn_smtp_tls_ca(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct config *cfg = ps->cfg;
	const char *why;

	if (make_path(ps, d, "smtp_tls_ca", d->w[1], &cfg->smtp_tls_ca) == -1)
		return -1;
	if (!ps->load_tables)
		return 0;
	free(cfg->smtp_tls_ca_pem);
	cfg->smtp_tls_ca_pem = NULL;
	if ((why = read_file(cfg->smtp_tls_ca, TABLE_FILE_MAX, &cfg->smtp_tls_ca_pem,
	    &cfg->smtp_tls_ca_len)) != NULL)
		return perr(ps, d->line, "smtp_tls_ca: cannot read \"%s\": %s", cfg->smtp_tls_ca, why);
	return 0;
}

static int
fn_dns_server(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	free(ps->cfg->dns_server);
	if ((ps->cfg->dns_server = strdup(d->w[1])) == NULL)
		return perr(ps, d->line, "out of memory");
	return 0;
}

static int
fn_syslog_socket(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	size_t n = strlen(d->w[1]);

	if (d->w[1][0] != '/' || n >= sizeof(ps->cfg->syslog_socket))
		return perr(ps, d->line, "syslog_socket: \"%s\" is not an absolute path "
		    "of at most %zu bytes", d->w[1], sizeof(ps->cfg->syslog_socket) - 1);
	memcpy(ps->cfg->syslog_socket, d->w[1], n + 1);
	return 0;
}

static int
fn_lifetime(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	if (strcmp(e->name, "delay_warning") == 0)
		return duration_value(ps, d, "delay_warning", 0, &ps->cfg->delay_warning);
	return duration_value(ps, d, "lifetime", 60, &ps->cfg->lifetime);
}

/* The outbound numbers: each one's range and where it goes. */
static const struct relay_num {
	const char *name;
	uint64_t    min, max;
	size_t      off;
	int         duration;
} relay_nums[] = {
	{ "relay_concurrency", 1, 10000, offsetof(struct config, relay_concurrency), 0 },
	{ "relay_destination_concurrency", 1, 1000,
	    offsetof(struct config, relay_destination_concurrency), 0 },
	{ "relay_reuse_messages", 0, 100000, offsetof(struct config, relay_reuse_messages), 0 },
	{ "relay_reuse_idle", 1, 300, offsetof(struct config, relay_reuse_idle), 1 },
	{ "relay_backoff_failures", 1, 1000, offsetof(struct config, relay_backoff_failures), 0 },
	{ "relay_backoff", 1, 3600, offsetof(struct config, relay_backoff), 1 },
};

static int
fn_relay_num(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	const struct relay_num *rn = NULL;
	unsigned *out;
	uint64_t v;
	size_t i;

	for (i = 0; i < sizeof(relay_nums) / sizeof(relay_nums[0]); i++)
		if (strcmp(relay_nums[i].name, e->name) == 0)
			rn = &relay_nums[i];
	if (rn == NULL)
		return perr(ps, d->line, "%s: internal error", e->name);
	out = (unsigned *)(void *)((char *)ps->cfg + rn->off);
	if (rn->duration ? parse_duration(d->w[1], &v) == -1 :
	    parse_u64(d->w[1], strlen(d->w[1]), &v) == -1)
		return perr(ps, d->line, "%s: not a %s \"%s\"", e->name,
		    rn->duration ? "duration" : "number", d->w[1]);
	if (v < rn->min || v > rn->max)
		return perr(ps, d->line, "%s: %s is out of range (%llu..%llu)", e->name, d->w[1],
		    (unsigned long long)rn->min, (unsigned long long)rn->max);
	*out = (unsigned)v;
	return 0;
}

/* "[name]:port" or "name:port" (port optional): the host part and the port. */
static int
split_route_host(const char *s, char *host, size_t hostsz, uint16_t *port, int *bracket)
{
	const char *end, *rest;
	size_t n;
	uint64_t v = 25;

	*bracket = s[0] == '[';
	if (*bracket) {
		if ((end = strchr(s, ']')) == NULL)
			return -1;
		s++;
		rest = end + 1;
	} else {
		end = rest = s + strcspn(s, ":");
	}
	n = (size_t)(end - s);
	if (n == 0 || n >= hostsz || !valid_domain(s, n))
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	if (rest[0] != '\0' && (rest[0] != ':' ||
	    parse_u64(rest + 1, strlen(rest + 1), &v) == -1 || v < 1 || v > 65535))
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static int
fn_route_via(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct route_cfg *r = arg;
	struct listen_cfg l;
	struct in_addr a4;
	int bracket;

	if (strlen(d->w[1]) >= sizeof(r->via))
		return perr(ps, d->line, "route: via: too long");
	snprintf(r->via, sizeof(r->via), "%s", d->w[1]);
	if (parse_listen_addr(d->w[1], &l) == 0) {
		r->kind = ROUTE_ADDR;
		r->ss = l.ss;
		r->sslen = l.sslen;
		r->port = ntohs(l.ss.ss_family == AF_INET ? ((struct sockaddr_in *)&l.ss)->sin_port :
		    ((struct sockaddr_in6 *)&l.ss)->sin6_port);
		return 0;
	}
	if (split_route_host(d->w[1], r->host, sizeof(r->host), &r->port, &bracket) == -1)
		return perr(ps, d->line, "route: via: bad host \"%s\" (IP:PORT, [IPv6]:PORT, "
		    "[HOST]:PORT or DOMAIN:PORT)", d->w[1]);
	lower(r->host);
	if (inet_pton(AF_INET, r->host, &a4) == 1) {
		/* An IPv4 address without its port. */
		struct sockaddr_in *s4 = (struct sockaddr_in *)&r->ss;

		memset(&r->ss, 0, sizeof(r->ss));
		s4->sin_family = AF_INET;
		s4->sin_port = htons(r->port);
		s4->sin_addr = a4;
		r->sslen = sizeof(*s4);
		r->kind = ROUTE_ADDR;
		r->host[0] = '\0';
		return 0;
	}
	r->kind = bracket ? ROUTE_HOST : ROUTE_MX;
	return 0;
}

static int
fn_route_tls(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	return tls_policy(ps, d, "route: tls", &((struct route_cfg *)arg)->tls);
}

/* Read now: the mta runs unprivileged and may not reach the file. */
static int
fn_route_tls_ca(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct route_cfg *r = arg;
	const char *why;

	if (make_path(ps, d, "route: tls_ca", d->w[1], &r->tls_ca) == -1)
		return -1;
	if (!ps->load_tables)
		return 0;
	free(r->tls_ca_pem);
	if ((why = read_file(r->tls_ca, TABLE_FILE_MAX, &r->tls_ca_pem, &r->tls_ca_len)) != NULL)
		return perr(ps, d->line, "route: tls_ca: cannot read \"%s\": %s", r->tls_ca, why);
	return 0;
}

/* The line data[i..e) holds "USER PASSWORD" (leading blanks already skipped). */
static int
secret_line(const char *data, size_t i, size_t e, char *user, size_t usz, char *pass,
    size_t psz)
{
	size_t end = e, u, p;

	while (end > i && (data[end - 1] == '\r' || is_blank(data[end - 1])))
		end--;
	for (u = i; u < end && !is_blank(data[u]); u++)
		;
	for (p = u; p < end && is_blank(data[p]); p++)
		;
	/* A NUL would cut the password short where it is used as a string. */
	if (u == i || p == end || u - i >= usz || end - p >= psz ||
	    memchr(data + i, '\0', end - i) != NULL)
		return -1;
	memcpy(user, data + i, u - i);
	user[u - i] = '\0';
	memcpy(pass, data + p, end - p);
	pass[end - p] = '\0';
	return 0;
}

int
config_parse_secret(const char *data, size_t len, char *user, size_t usz, char *pass,
    size_t psz)
{
	size_t i = 0;

	while (i < len) {
		size_t e = i;

		while (e < len && data[e] != '\n')
			e++;
		while (i < e && is_blank(data[i]))
			i++;
		if (i < e && data[i] != '#' && data[i] != '\r')
			return secret_line(data, i, e, user, usz, pass, psz);
		i = e + 1;
	}
	return -1;
}

/* Read now, as root; a file others may read is refused (it holds a password). */
static int
fn_route_auth(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct route_cfg *r = arg;
	struct stat st;
	const char *why;
	char *data;
	size_t len;
	int rc;

	if (make_path(ps, d, "route: auth", d->w[1], &r->auth) == -1)
		return -1;
	if (!ps->load_tables)
		return 0;
	if (stat(r->auth, &st) == 0 && (st.st_mode & 027))
		return perr(ps, d->line, "route: auth: \"%s\" may be read or written by others "
		    "(mode %03o; it must be 0600 or 0640)", r->auth, (unsigned)(st.st_mode & 0777));
	if ((why = read_file(r->auth, 65536, &data, &len)) != NULL)
		return perr(ps, d->line, "route: auth: cannot read \"%s\": %s", r->auth, why);
	rc = config_parse_secret(data, len, r->auth_user, sizeof(r->auth_user), r->auth_pass,
	    sizeof(r->auth_pass));
	explicit_bzero(data, len);
	free(data);
	if (rc == -1)
		return perr(ps, d->line, "route: auth: \"%s\" holds no line \"USER PASSWORD\"",
		    r->auth);
	return 0;
}

static int
fn_route_auth_tls(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	return yes_no(ps, d, "route: auth_without_tls", &((struct route_cfg *)arg)->auth_without_tls);
}

void
config_wipe_secrets(struct config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->nroutes; i++) {
		explicit_bzero(cfg->routes[i].auth_user, sizeof(cfg->routes[i].auth_user));
		explicit_bzero(cfg->routes[i].auth_pass, sizeof(cfg->routes[i].auth_pass));
	}
}

static void
route_free(struct route_cfg *r)
{
	free(r->tls_ca);
	free(r->tls_ca_pem);
	free(r->auth);
	r->tls_ca = r->tls_ca_pem = r->auth = NULL;
	explicit_bzero(r->auth_pass, sizeof(r->auth_pass));
}

static const struct directive route_tab[] = {
	{ "via", fn_route_via, 1, BLOCK_NO, 0, NULL },
	{ "tls", fn_route_tls, 1, BLOCK_NO, 0, NULL },
	{ "tls_ca", fn_route_tls_ca, 1, BLOCK_NO, 0, NULL },
	{ "auth", fn_route_auth, 1, BLOCK_NO, 0, NULL },
	{ "auth_without_tls", fn_route_auth_tls, 1, BLOCK_NO, 0, NULL },
};

static int
fn_route(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct config *cfg = ps->cfg;
	struct route_cfg *r;
	size_t i, n = strlen(d->w[1]);

	if (strcmp(d->w[1], "*") != 0 && !valid_domain(d->w[1], n))
		return perr(ps, d->line, "route: bad domain \"%s\"", d->w[1]);
	lower(d->w[1]);
	for (i = 0; i < cfg->nroutes; i++)
		if (strcmp(cfg->routes[i].domain, d->w[1]) == 0)
			return perr(ps, d->line, "route \"%s\" declared twice", d->w[1]);
	if (cfg->nroutes == CONFIG_MAX_ROUTES)
		return perr(ps, d->line, "route: too many (max %d)", CONFIG_MAX_ROUTES);
	r = &cfg->routes[cfg->nroutes];
	memset(r, 0, sizeof(*r));
	snprintf(r->domain, sizeof(r->domain), "%s", d->w[1]);
	r->tls = -1;	/* smtp_tls, wherever it is set */
	r->line = d->line;
	if (parse_block(ps, "route", route_tab, sizeof(route_tab) / sizeof(route_tab[0]),
	    d->line, r) == -1 || (r->via[0] == '\0' &&
	    perr(ps, d->line, "route \"%s\": via is required", r->domain) == -1)) {
		route_free(r);	/* not counted yet: config_free would miss it */
		return -1;
	}
	cfg->nroutes++;
	return 0;
}

const struct route_cfg *
config_find_route(const struct config *cfg, const char *domain)
{
	size_t i;

	for (i = 0; i < cfg->nroutes; i++)
		if (strcasecmp(cfg->routes[i].domain, domain) == 0)
			return &cfg->routes[i];
	for (i = 0; i < cfg->nroutes; i++)
		if (strcmp(cfg->routes[i].domain, "*") == 0)
			return &cfg->routes[i];
	return NULL;
}

/* ---- DKIM signing ---- */

static int
fn_dkim_sign(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct config *cfg = ps->cfg;
	struct dkim_sign_cfg *k;
	size_t i, same = 0, n = strlen(d->w[1]);

	if (n > 1 && d->w[1][n - 1] == '.')
		d->w[1][--n] = '\0';
	if (!valid_domain(d->w[1], n))
		return perr(ps, d->line, "dkim_sign: bad domain \"%s\"", d->w[1]);
	/* RFC 6376 3.1: a selector is one or more sub-domain labels. */
	if (strlen(d->w[2]) > CONFIG_DKIM_SELECTOR_MAX || !valid_domain(d->w[2], strlen(d->w[2])))
		return perr(ps, d->line, "dkim_sign: bad selector \"%s\"", d->w[2]);
	lower(d->w[1]);
	for (i = 0; i < cfg->ndkim; i++) {
		if (strcmp(cfg->dkim[i].domain, d->w[1]) != 0)
			continue;
		if (strcasecmp(cfg->dkim[i].selector, d->w[2]) == 0)
			return perr(ps, d->line, "dkim_sign: %s %s declared twice (first at line %d)",
			    d->w[1], d->w[2], cfg->dkim[i].line);
		same++;
	}
	if (same == 2)
		return perr(ps, d->line, "dkim_sign: at most 2 keys per domain (%s)", d->w[1]);
	if (cfg->ndkim == CONFIG_MAX_DKIM)
		return perr(ps, d->line, "dkim_sign: too many (max %d)", CONFIG_MAX_DKIM);
	k = &cfg->dkim[cfg->ndkim];
	memset(k, 0, sizeof(*k));
	snprintf(k->domain, sizeof(k->domain), "%s", d->w[1]);
	snprintf(k->selector, sizeof(k->selector), "%s", d->w[2]);
	k->line = d->line;
	if (make_path(ps, d, "dkim_sign", d->w[3], &k->keyfile) == -1)
		return -1;
	cfg->ndkim++;
	return 0;
}

/* "From:To:Subject", the h= tag's form; names are ftext (RFC 5322 2.2). */
static int
fn_dkim_headers(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	const char *h = d->w[1];
	size_t i, n = strlen(h);

	for (i = 0; i <= n; i++) {
		int c = (unsigned char)h[i];

		if ((c == ':' || c == '\0') && (i == 0 || h[i - 1] == ':'))
			return perr(ps, d->line, "dkim_headers: empty header name in \"%s\"", h);
		if (c != '\0' && (c < 0x21 || c > 0x7e))
			return perr(ps, d->line, "dkim_headers: bad header name in \"%s\"", h);
	}
	free(ps->cfg->dkim_headers);
	if ((ps->cfg->dkim_headers = strdup(h)) == NULL)
		return perr(ps, d->line, "out of memory");
	return 0;
}

/* c= of RFC 6376 3.5: "header/body"; one word alone is the header's, body simple. */
static int
fn_dkim_canon(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	const char *w = d->w[1];
	enum dkim_canon hc, bc;

	if (dkim_canon_parse(w, strlen(w), &hc, &bc) == -1)
		return perr(ps, d->line, "dkim_canonicalization: \"%s\" is not "
		    "relaxed|simple[/relaxed|simple]", w);
	ps->cfg->dkim_hcanon = hc == DKIM_CANON_SIMPLE;
	ps->cfg->dkim_bcanon = bc == DKIM_CANON_SIMPLE;
	return 0;
}

/* ---- trusted networks ---- */

static int
parse_cidr(const char *s, struct cidr *c)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	uint64_t bits;
	int max;

	if (n >= sizeof(host))
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, host, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else
		return -1;
	c->bits = max;
	if (slash) {
		if (parse_u64(slash + 1, strlen(slash + 1), &bits) == -1 || bits > (uint64_t)max)
			return -1;
		c->bits = (int)bits;
	}
	return 0;
}

static int
fn_trusted(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct config *cfg = ps->cfg;
	size_t i;

	if (d->n < 2)
		return perr(ps, d->line, "trusted_networks: missing argument");
	cfg->ntrusted = 0;	/* the directive replaces the default */
	cfg->trusted_given = 1;
	for (i = 1; i < d->n; i++) {
		if (strcmp(d->w[i], "none") == 0 && d->n == 2)
			return 0;
		if (cfg->ntrusted == CONFIG_MAX_TRUSTED)
			return perr(ps, d->line, "trusted_networks: too many (max %d)",
			    CONFIG_MAX_TRUSTED);
		if (parse_cidr(d->w[i], &cfg->trusted[cfg->ntrusted]) == -1)
			return perr(ps, d->line, "trusted_networks: bad network \"%s\"",
			    d->w[i]);
		cfg->ntrusted++;
	}
	return 0;
}

int
config_trusted(const struct config *cfg, int family, const uint8_t *addr)
{
	size_t i;

	for (i = 0; i < cfg->ntrusted; i++) {
		const struct cidr *c = &cfg->trusted[i];
		int full = c->bits / 8, rest = c->bits % 8;

		if (c->family != family || memcmp(c->addr, addr, (size_t)full) != 0)
			continue;
		if (rest == 0 || ((c->addr[full] ^ addr[full]) & (0xff << (8 - rest))) == 0)
			return 1;
	}
	return 0;
}

/* ---- auth_checks ---- */

static int
fn_checks_action(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	static const char *const words[] = { "record", "reject", "quarantine" };
	struct checks_cfg *c = &ps->cfg->checks;
	enum check_action *dst = strcmp(e->name, "spf_fail") == 0 ? &c->spf_fail :
	    strcmp(e->name, "dmarc_reject") == 0 ? &c->dmarc_reject : &c->dmarc_quarantine;
	size_t i, n = dst == &c->spf_fail ? 2 : 3;

	for (i = 0; i < n; i++)
		if (strcmp(d->w[1], words[i]) == 0) {
			*dst = (enum check_action)i;
			return 0;
		}
	return perr(ps, d->line, "auth_checks: %s: \"%s\" is not %s", e->name, d->w[1],
	    n == 2 ? "record or reject" : "record, reject or quarantine");
}

static int
fn_checks_id(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	const char *v = d->w[1];

	if (!valid_domain(v, strlen(v)))
		return perr(ps, d->line, "auth_checks: authserv_id: bad domain name \"%s\"", v);
	snprintf(ps->cfg->checks.authserv_id, sizeof(ps->cfg->checks.authserv_id), "%s", v);
	return 0;
}

static int
fn_checks_folder(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	const char *v = d->w[1];
	size_t i, n = strlen(v);

	/* A Maildir++ folder: ".Name", no '/', no "..". */
	if (n < 2 || n >= sizeof(ps->cfg->checks.junk_folder) || v[0] != '.' || v[1] == '.')
		return perr(ps, d->line, "auth_checks: junk_folder: \"%s\" is not a Maildir++ "
		    "folder name (.Name)", v);
	for (i = 0; i < n; i++)
		if (v[i] == '/' || (unsigned char)v[i] < 0x21)
			return perr(ps, d->line, "auth_checks: junk_folder: bad character in \"%s\"", v);
	memcpy(ps->cfg->checks.junk_folder, v, n + 1);
	return 0;
}

static int
fn_checks_num(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct checks_cfg *c = &ps->cfg->checks;
	uint64_t v;

	if (strcmp(e->name, "timeout") == 0) {
		if (duration_value(ps, d, "auth_checks: timeout", 1, &c->timeout) == -1)
			return -1;
		if (c->timeout > 600)
			return perr(ps, d->line, "auth_checks: timeout: at most 600 seconds");
		return 0;
	}
	if (parse_u64(d->w[1], strlen(d->w[1]), &v) == -1 || v < 1 || v > 64)
		return perr(ps, d->line, "auth_checks: threads: \"%s\" is not a number in 1..64",
		    d->w[1]);
	c->threads = (unsigned)v;
	return 0;
}

/* dmarc_reports { from ADDR; org_name NAME; interval DURATION } */
static int
fn_reports_from(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct dmarc_reports_cfg *r = &ps->cfg->checks.reports;
	const char *v = d->w[1], *at = strrchr(v, '@');
	size_t i, n = strlen(v);

	if (at == NULL || at == v || n >= sizeof(r->from) || !valid_domain(at + 1, strlen(at + 1)))
		return perr(ps, d->line, "auth_checks: dmarc_reports: from: \"%s\" is not "
		    "local-part@domain", v);
	for (i = 0; i < (size_t)(at - v); i++)
		if ((unsigned char)v[i] <= ' ' || (unsigned char)v[i] > '~' || strchr("\"\\<>()[],;:@", v[i]))
			return perr(ps, d->line, "auth_checks: dmarc_reports: from: bad character "
			    "in \"%s\"", v);
	memcpy(r->from, v, n + 1);
	return 0;
}

static int
fn_reports_org(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct dmarc_reports_cfg *r = &ps->cfg->checks.reports;
	const char *v = d->w[1];
	size_t i, n = strlen(v);

	/* It goes into a Subject field and XML: printable ASCII only. */
	if (n == 0 || n >= sizeof(r->org_name))
		return perr(ps, d->line, "auth_checks: dmarc_reports: org_name: 1..%zu characters",
		    sizeof(r->org_name) - 1);
	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] < ' ' || (unsigned char)v[i] > '~')
			return perr(ps, d->line, "auth_checks: dmarc_reports: org_name: bad "
			    "character in \"%s\"", v);
	memcpy(r->org_name, v, n + 1);
	return 0;
}

static int
fn_reports_interval(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	return duration_value(ps, d, "auth_checks: dmarc_reports: interval", 1,
	    &ps->cfg->checks.reports.interval);
}

static const struct directive reports_tab[] = {
	{ "from", fn_reports_from, 1, BLOCK_NO, 0, NULL },
	{ "org_name", fn_reports_org, 1, BLOCK_NO, 0, NULL },
	{ "interval", fn_reports_interval, 1, BLOCK_NO, 0, NULL },
};

static int
fn_checks_reports(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct dmarc_reports_cfg *r = &ps->cfg->checks.reports;

	r->enabled = 1;
	r->line = d->line;
	if (parse_block(ps, "auth_checks: dmarc_reports", reports_tab,
	    sizeof(reports_tab) / sizeof(reports_tab[0]), d->line, NULL) == -1)
		return -1;
	if (!r->from[0])
		return perr(ps, d->line, "auth_checks: dmarc_reports: from is required");
	if (!r->org_name[0])
		snprintf(r->org_name, sizeof(r->org_name), "%s", strrchr(r->from, '@') + 1);
	return 0;
}

static const struct directive checks_tab[] = {
	{ "dmarc_reports", fn_checks_reports, 0, BLOCK_REQUIRED, 0, NULL },
	{ "authserv_id", fn_checks_id, 1, BLOCK_NO, 0, NULL },
	{ "spf_fail", fn_checks_action, 1, BLOCK_NO, 0, NULL },
	{ "dmarc_reject", fn_checks_action, 1, BLOCK_NO, 0, NULL },
	{ "dmarc_quarantine", fn_checks_action, 1, BLOCK_NO, 0, NULL },
	{ "junk_folder", fn_checks_folder, 1, BLOCK_NO, 0, NULL },
	{ "timeout", fn_checks_num, 1, BLOCK_NO, 0, NULL },
	{ "threads", fn_checks_num, 1, BLOCK_NO, 0, NULL },
};

static int
fn_checks(struct parser *ps, const struct directive *e, struct dir *d, void *arg)
{
	struct checks_cfg *c = &ps->cfg->checks;

	if (on_off(ps, d, "auth_checks", &c->enabled) == -1)
		return -1;
	c->line = d->line;
	return d->block ? parse_block(ps, "auth_checks", checks_tab,
	    sizeof(checks_tab) / sizeof(checks_tab[0]), d->line, NULL) : 0;
}

int
config_checks_on(const struct config *cfg, const struct listen_cfg *l)
{
	if (l == NULL || l->mode != LISTEN_MX)
		return 0;
	return l->checks == -1 ? cfg->checks.enabled : l->checks;
}

const char *
config_authserv_id(const struct config *cfg)
{
	return cfg->checks.authserv_id[0] ? cfg->checks.authserv_id : cfg->hostname;
}

static const struct directive top_tab[] = {
	{ "hostname", fn_hostname, 1, BLOCK_NO, 0, NULL },
	{ "user", fn_user, 1, BLOCK_NO, 0, NULL },
	{ "deliver_user", fn_user, 1, BLOCK_NO, 0, NULL },
	{ "spool", fn_path, 1, BLOCK_NO, 0, NULL },
	{ "chroot", fn_path, 1, BLOCK_NO, 0, NULL },
	{ "workers", fn_workers, 1, BLOCK_NO, 0, NULL },
	{ "deliver_processes", fn_deliver_processes, 1, BLOCK_NO, 0, NULL },
	{ "recipient_delimiter", fn_delimiter, 1, BLOCK_NO, 0, NULL },
	{ "retry_interval", fn_retry, 1, BLOCK_NO, 0, NULL },
	{ "listen", fn_listen, 1, BLOCK_OPTIONAL, 1, NULL },
	{ "limits", fn_limits, 0, BLOCK_REQUIRED, 0, NULL },
	{ "domain", fn_domain, 1, BLOCK_REQUIRED, 1, NULL },
	{ "tls", fn_tls, 0, BLOCK_REQUIRED, 0, NULL },
	{ "auth", fn_auth, 0, BLOCK_REQUIRED, 0, NULL },
	{ "trusted_networks", fn_trusted, NARGS_ANY, BLOCK_NO, 0, NULL },
	{ "dns_server", fn_dns_server, 1, BLOCK_NO, 0, NULL },
	{ "syslog_socket", fn_syslog_socket, 1, BLOCK_NO, 0, NULL },
	{ "lifetime", fn_lifetime, 1, BLOCK_NO, 0, NULL },
	{ "delay_warning", fn_lifetime, 1, BLOCK_NO, 0, NULL },
	{ "smtp_tls", fn_smtp_tls, 1, BLOCK_NO, 0, NULL },
	{ "smtp_tls_ca", fn_smtp_tls_ca, 1, BLOCK_NO, 0, NULL },
	{ "route", fn_route, 1, BLOCK_REQUIRED, 1, NULL },
	{ "auth_checks", fn_checks, 1, BLOCK_OPTIONAL, 0, NULL },
	{ "dkim_sign", fn_dkim_sign, 3, BLOCK_NO, 1, NULL },
	{ "dkim_headers", fn_dkim_headers, 1, BLOCK_NO, 0, NULL },
	{ "dkim_canonicalization", fn_dkim_canon, 1, BLOCK_NO, 0, NULL },
	{ "relay_concurrency", fn_relay_num, 1, BLOCK_NO, 0, NULL },
	{ "relay_destination_concurrency", fn_relay_num, 1, BLOCK_NO, 0, NULL },
	{ "relay_reuse_messages", fn_relay_num, 1, BLOCK_NO, 0, NULL },
	{ "relay_reuse_idle", fn_relay_num, 1, BLOCK_NO, 0, NULL },
	{ "relay_backoff_failures", fn_relay_num, 1, BLOCK_NO, 0, NULL },
	{ "relay_backoff", fn_relay_num, 1, BLOCK_NO, 0, NULL },
};

/* ---- the whole file ---- */

static int
config_defaults(struct config *cfg, const char *name)
{
	memset(cfg, 0, sizeof(*cfg));
	if (gethostname(cfg->hostname, sizeof(cfg->hostname) - 1) == -1 ||
	    cfg->hostname[0] == '\0')
		snprintf(cfg->hostname, sizeof(cfg->hostname), "localhost");
	snprintf(cfg->user, sizeof(cfg->user), "_tern");
	snprintf(cfg->deliver_user, sizeof(cfg->deliver_user), "vmail");
	snprintf(cfg->recipient_delimiter, sizeof(cfg->recipient_delimiter), "+");
	cfg->retry_interval = 60;
	cfg->deliver_processes = 1;
	cfg->limits = (struct limits_cfg){
		.command_line = 512, .text_line = 1000, .recipients = 100,
		.message_size = (uint64_t)35 << 20, .connections = 1000,
		.connections_per_ip = 20, .errors = 10, .commands = 100000,
		.timeout_greeting = 300,
		.timeout_data_block = 180, .timeout_data_end = 600,
		.shutdown_wait = 30,
	};
	cfg->tls.min_version = 0x0303;
	cfg->lifetime = 5 * 24 * 3600;
	cfg->delay_warning = 4 * 3600;
	cfg->smtp_tls = 1;
	cfg->relay_concurrency = 100;
	cfg->relay_destination_concurrency = 10;
	cfg->relay_reuse_messages = 100;
	cfg->relay_reuse_idle = 5;
	cfg->relay_backoff_failures = 5;
	cfg->relay_backoff = 60;
	cfg->auth.sender_check = 1;
	cfg->auth.max_failures = 5;
	cfg->auth.failure_window = 600;
	cfg->auth.lockout = 900;
	cfg->checks = (struct checks_cfg){
		.enabled = 1, .spf_fail = CHECK_RECORD, .dmarc_reject = CHECK_REJECT,
		.dmarc_quarantine = CHECK_QUARANTINE, .junk_folder = ".Junk",
		.timeout = 20, .threads = 4, .reports.interval = 86400,
	};
	parse_cidr("127.0.0.0/8", &cfg->trusted[0]);
	parse_cidr("::1/128", &cfg->trusted[1]);
	cfg->ntrusted = 2;
	cfg->path = strdup(name);
	cfg->spool_dir = strdup("/var/spool/tern");
	snprintf(cfg->syslog_socket, sizeof(cfg->syslog_socket), "%s", LOG_SYSLOG_PATH);
	cfg->chroot_dir = strdup("/var/empty");
	return cfg->path && cfg->spool_dir && cfg->chroot_dir ? 0 : -1;
}

/* Settles each listener's TLS mode; TLS needs a tls block. */
static int
check_listen_tls(struct parser *ps)
{
	struct config *cfg = ps->cfg;
	size_t i;

	for (i = 0; i < cfg->nlisten; i++) {
		struct listen_cfg *l = &cfg->listen[i];

		if (l->tls == LTLS_DEFAULT)
			l->tls = !cfg->tls.present ? LTLS_NONE :
			    l->mode == LISTEN_SUBMISSION ? LTLS_REQUIRED : LTLS_OPTIONAL;
		if (l->tls != LTLS_NONE && !cfg->tls.present)
			return perr(ps, l->line, "listen %s: tls needs a \"tls\" block with "
			    "cert and key", l->text);
	}
	return 0;
}

struct plain_walk {
	struct parser     *ps;
	int                line;
	char               user[128];
};

static int
plain_entry(void *arg, const char *key, const char *val, int line)
{
	struct plain_walk *w = arg;

	if (passwd_kind(val) != PASSWD_PLAIN)
		return 0;
	w->line = line;
	snprintf(w->user, sizeof(w->user), "%s", key);
	return 1;
}

/* Plain-text passwords are refused once AUTH uses them, unless allowed. */
static int
check_plaintext(struct parser *ps)
{
	struct config *cfg = ps->cfg;
	struct plain_walk w;
	size_t i;

	if (!cfg->auth.present || cfg->auth.allow_plaintext)
		return 0;
	for (i = 0; i < cfg->ndomains; i++) {
		memset(&w, 0, sizeof(w));
		w.ps = ps;
		if (table_walk(cfg->domains[i].users, plain_entry, &w) == 0)
			continue;
		snprintf(ps->err, ps->errlen, "%s:%d: user \"%s\" has a plain-text "
		    "password; make a hash with \"ternctl passwd\", or allow them with "
		    "\"allow_plaintext yes\" in the auth block (%s:%d)",
		    cfg->domains[i].users_path, w.line, w.user, ps->name, cfg->auth.line);
		return -1;
	}
	return 0;
}

static int
parse_top(struct parser *ps)
{
	int seen[sizeof(top_tab) / sizeof(top_tab[0])] = { 0 };
	struct dir *d;
	enum tok t;
	int r = 0;

	if ((d = malloc(sizeof(*d))) == NULL)
		return perr(ps, 1, "out of memory");
	while (r == 0 && (t = read_dir(ps, d)) != TOK_EOF) {
		if (t == TOK_ERR)
			r = -1;
		else if (t == TOK_CLOSE)
			r = perr(ps, ps->lx.line, "unexpected '}'");
		else
			r = dispatch(ps, NULL, top_tab, sizeof(top_tab) /
			    sizeof(top_tab[0]), seen, d, NULL);
	}
	free(d);
	if (r == 0 && ps->cfg->nlisten == 0)
		r = perr(ps, last_line(&ps->lx), "no \"listen\" directive (at least "
		    "one is required)");
	if (r == 0 && ps->cfg->ndomains == 0)
		r = perr(ps, last_line(&ps->lx), "no \"domain\" block (at least one "
		    "is required)");
	/* Loopback is trusted by default only while there is no AUTH to use. */
	if (r == 0 && ps->cfg->auth.present && !ps->cfg->trusted_given)
		ps->cfg->ntrusted = 0;
	if (r == 0)
		r = check_listen_tls(ps);
	if (r == 0 && ps->load_tables)
		r = check_plaintext(ps);
	return r;
}

static int
config_parse_tables(const char *data, size_t len, const char *name,
    const char *basedir, int load_tables, struct config *cfg, char *err,
    size_t errlen)
{
	struct parser *ps;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if ((ps = calloc(1, sizeof(*ps))) == NULL || config_defaults(cfg, name) == -1) {
		free(ps);
		config_free(cfg);
		snprintf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	ps->lx = (struct lexer){ .p = data, .len = len, .line = 1, .unget = -1 };
	ps->name = name;
	ps->basedir = basedir ? basedir : ".";
	ps->cfg = cfg;
	ps->err = err;
	ps->errlen = errlen;
	ps->load_tables = load_tables;
	if (len > CONFIG_FILE_MAX)
		r = perr(ps, 1, "file too large (max %d bytes)", CONFIG_FILE_MAX);
	else
		r = parse_top(ps);
	free(ps);
	if (r == -1)
		config_free(cfg);
	return r;
}

int
config_parse(const char *data, size_t len, const char *name, const char *basedir,
    struct config *cfg, char *err, size_t errlen)
{
	return config_parse_tables(data, len, name, basedir, 0, cfg, err, errlen);
}

/* The absolute directory of `path`, relative names taken from the cwd. */
static int
config_dir(const char *path, char *out, size_t outlen)
{
	char cwd[CONFIG_PATH_MAX];
	const char *slash = strrchr(path, '/');
	int dlen = slash ? (int)(slash - path) : 0, n;

	if (path[0] == '/')
		n = snprintf(out, outlen, "%.*s", dlen ? dlen : 1, path);
	else if (getcwd(cwd, sizeof(cwd)) == NULL)
		return -1;
	else if (slash)
		n = snprintf(out, outlen, "%s/%.*s", strcmp(cwd, "/") ? cwd : "",
		    dlen, path);
	else
		n = snprintf(out, outlen, "%s", cwd);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int
config_load(const char *path, struct config *cfg, char *err, size_t errlen)
{
	char dir[CONFIG_PATH_MAX + 1];
	const char *why;
	char *data;
	size_t len = 0;
	int r;

	memset(cfg, 0, sizeof(*cfg));
	if ((why = read_file(path, CONFIG_FILE_MAX, &data, &len)) != NULL) {
		snprintf(err, errlen, "%s: %s", path, why);
		return -1;
	}
	if (config_dir(path, dir, sizeof(dir)) == -1) {
		snprintf(err, errlen, "%s: cannot find its directory", path);
		free(data);
		return -1;
	}
	r = config_parse_tables(data, len, path, dir, 1, cfg, err, errlen);
	free(data);
	return r;
}

void
config_free(struct config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->ndomains; i++) {
		free(cfg->domains[i].users_path);
		free(cfg->domains[i].aliases_path);
		free(cfg->domains[i].maildir);
		free(cfg->domains[i].catchall);
		table_free(cfg->domains[i].users);
		table_free(cfg->domains[i].aliases);
	}
	free(cfg->domains);
	for (i = 0; i < cfg->tls.ncerts; i++) {
		free(cfg->tls.certs[i].cert);
		free(cfg->tls.certs[i].key);
	}
	free(cfg->tls.ciphers);
	free(cfg->auth.senders_path);
	free(cfg->dns_server);
	free(cfg->smtp_tls_ca);
	free(cfg->smtp_tls_ca_pem);
	for (i = 0; i < cfg->ndkim; i++)
		free(cfg->dkim[i].keyfile);
	free(cfg->dkim_headers);
	for (i = 0; i < cfg->nroutes; i++)
		route_free(&cfg->routes[i]);
	table_free(cfg->auth.senders);
	free(cfg->path);
	free(cfg->spool_dir);
	free(cfg->chroot_dir);
	memset(cfg, 0, sizeof(*cfg));
}

const struct domain_cfg *
config_find_domain(const struct config *cfg, const char *domain, size_t len)
{
	size_t i;

	if (len > 0 && domain[len - 1] == '.')
		len--;
	for (i = 0; i < cfg->ndomains; i++)
		if (strlen(cfg->domains[i].name) == len &&
		    strncasecmp(cfg->domains[i].name, domain, len) == 0)
			return &cfg->domains[i];
	return NULL;
}
