/* authres — build and parse Authentication-Results (see authres.h). */
#include "mailauth/authres.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define AUTHRES_FOLD_AT	78	/* RFC 5322 2.1.1 SHOULD */
#define AUTHRES_LINE_MAX	998	/* RFC 5322 2.1.1 MUST */
#define AUTHRES_NAME	"Authentication-Results:"

static int
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 2045 5.1: token = 1*<any (US-ASCII) CHAR except SPACE, CTLs, or tspecials> */
static int
is_tokenc(unsigned char c)
{
	return c > ' ' && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

static int
is_atextc(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* ldh-str (RFC 5321 4.1.2), the Keyword of RFC 8601 2.2 */
static int
is_keyword(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || s[n - 1] == '-')
		return 0;
	for (i = 0; i < n; i++)
		if (!is_alnum((unsigned char)s[i]) && s[i] != '-')
			return 0;
	return 1;
}

/* ---- builder ---- */

static void
entry_init(struct authres_entry *e, const char *method, const char *result)
{
	memset(e, 0, sizeof(*e));
	e->method = method;
	e->result = result;
}

static void
add_prop(struct authres_entry *e, const char *ptype, const char *property, const char *value)
{
	if (value == NULL || value[0] == '\0' || e->nprops == AUTHRES_PROPS_MAX)
		return;
	e->props[e->nprops].ptype = ptype;
	e->props[e->nprops].property = property;
	e->props[e->nprops++].value = value;
}

void
authres_spf(struct authres_entry *e, const char *result, const char *mailfrom,
    const char *helo)
{
	entry_init(e, "spf", result);
	add_prop(e, "smtp", "mailfrom", mailfrom);
	add_prop(e, "smtp", "helo", helo);
}

void
authres_dkim(struct authres_entry *e, const char *result, const char *d,
    const char *s, const char *b)
{
	size_t n = 0;

	entry_init(e, "dkim", result);
	add_prop(e, "header", "d", d);
	add_prop(e, "header", "s", s);
	/* b= may be folded: keep the first characters of the base64 itself */
	for (; b != NULL && *b != '\0' && n < AUTHRES_BPREFIX; b++)
		if (*b != ' ' && *b != '\t' && *b != '\r' && *b != '\n')
			e->store[n++] = *b;
	e->store[n] = '\0';
	add_prop(e, "header", "b", e->store);
}

void
authres_dmarc(struct authres_entry *e, const char *result, const char *header_from,
    const char *p, const char *sp, const char *disposition)
{
	entry_init(e, "dmarc", result);
	if (p != NULL) {
		snprintf(e->cstore, sizeof(e->cstore), "p=%s%s%s%s%s", p, sp ? " sp=" : "",
		    sp ? sp : "", disposition ? " dis=" : "", disposition ? disposition : "");
		e->comment = e->cstore;
	}
	add_prop(e, "header", "from", header_from);
	/* the policy applied after pct and sp (IANA Email Authentication Methods) */
	add_prop(e, "policy", "dmarc", disposition);
}

void
authres_arc(struct authres_entry *e, const char *result, const char *ip, unsigned n,
    int oldest_pass)
{
	entry_init(e, "arc", result);
	if (n > 0) {
		snprintf(e->cstore, sizeof(e->cstore), "i=%u", n);
		e->comment = e->cstore;
	}
	add_prop(e, "smtp", "remote-ip", ip);
	if (oldest_pass >= 0) {
		snprintf(e->store, sizeof(e->store), "%d", oldest_pass);
		add_prop(e, "header", "oldest-pass", e->store);
	}
}

void
authres_iprev(struct authres_entry *e, const char *result, const char *ip,
    const char *name)
{
	entry_init(e, "iprev", result);
	e->comment = name && name[0] ? name : NULL;
	add_prop(e, "policy", "iprev", ip);
}

/* 1 if s is [local-part "@"] domain with a dot-atom local part (RFC 8601 2.2). */
static int
is_addr_value(const char *s, size_t n)
{
	const char *at = memchr(s, '@', n);
	size_t i, dstart = at ? (size_t)(at - s) + 1 : 0;

	if (dstart == n)
		return 0;
	for (i = 0; i + 1 < dstart; i++)
		if (!is_atextc((unsigned char)s[i]) && !(s[i] == '.' && i > 0 && s[i - 1] != '.'))
			return 0;
	for (i = dstart; i < n; i++)
		if (!is_alnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
			return 0;
	return s[dstart] != '.' && s[n - 1] != '.';
}

/* Appends c, a control character made harmless. */
static int
put_safe(struct buf *w, char c)
{
	unsigned char u = (unsigned char)c;

	return buf_appendc(w, u < ' ' || u == 0x7f ? '?' : c);
}

/*
 * A value as token or quoted-string (RFC 2045 5.1, RFC 5322 3.2.4); addr:
 * a pvalue, where [local-part "@"] domain may also stand unquoted.
 */
static int
put_value(struct buf *w, const char *s, int addr)
{
	size_t i, n = strlen(s);
	int plain = n > 0;

	if (n > AUTHRES_VALUE_MAX)
		return -1;
	for (i = 0; i < n && plain; i++)
		plain = is_tokenc((unsigned char)s[i]);
	if (plain || (addr && n > 0 && is_addr_value(s, n)))
		return buf_append(w, s, n);
	if (buf_appendc(w, '"') == -1)
		return -1;
	for (i = 0; i < n; i++)
		if ((s[i] == '"' || s[i] == '\\' ? buf_appendc(w, '\\') : 0) == -1 ||
		    put_safe(w, s[i]) == -1)
			return -1;
	return buf_appendc(w, '"');
}

static int
put_comment(struct buf *w, const char *s)
{
	size_t i;

	if (buf_appendc(w, '(') == -1)
		return -1;
	for (i = 0; i < AUTHRES_COMMENT_MAX && s[i] != '\0'; i++)
		if ((strchr("()\\", s[i]) ? buf_appendc(w, '\\') : 0) == -1 ||
		    put_safe(w, s[i]) == -1)
			return -1;
	return buf_appendc(w, ')');
}

/* The output line being written and its column, for folding. */
struct writer {
	struct buf *out;
	size_t      col;
};

/* Appends a word after a space, or on a new folded line if it would pass 78. */
static int
put_word(struct writer *wr, const struct buf *word, int newline)
{
	const char *sep = " ";

	if (word->len > AUTHRES_LINE_MAX - 8)
		return -1;	/* would pass the line limit even on a line of its own */
	if (newline || wr->col + 1 + word->len > AUTHRES_FOLD_AT)
		sep = "\r\n\t";
	if (buf_appends(wr->out, sep) == -1 || buf_append(wr->out, word->data, word->len) == -1)
		return -1;
	wr->col = (sep[0] == ' ' ? wr->col + 1 : 1) + word->len;
	return 0;
}

static int
put_entry(struct writer *wr, const struct authres_entry *e, int last)
{
	struct buf w;
	size_t i;
	int rc = 0;

	if (!is_keyword(e->method, strlen(e->method)) || !is_keyword(e->result, strlen(e->result)))
		return -1;
	buf_init(&w, 2048);
	rc |= buf_printf(&w, "%s=%s", e->method, e->result);
	if (rc == 0 && e->comment && e->comment[0]) {
		rc |= put_word(wr, &w, 1);
		buf_reset(&w);
		rc |= put_comment(&w, e->comment);
	}
	if (rc == 0 && e->reason) {
		rc |= put_word(wr, &w, wr->col == 0);
		buf_reset(&w);
		rc |= buf_appends(&w, "reason=") | put_value(&w, e->reason, 0);
	}
	for (i = 0; rc == 0 && i < e->nprops; i++) {
		rc |= put_word(wr, &w, wr->col == 0);
		buf_reset(&w);
		rc |= buf_printf(&w, "%s.%s=", e->props[i].ptype, e->props[i].property);
		rc |= put_value(&w, e->props[i].value, 1);
	}
	if (rc == 0 && !last)
		rc |= buf_appendc(&w, ';');
	if (rc == 0)
		rc |= put_word(wr, &w, wr->col == 0);
	buf_free(&w);
	return rc ? -1 : 0;
}

int
authres_build(struct buf *out, const char *authserv_id,
    const struct authres_entry *e, size_t n)
{
	struct writer wr = { out, 0 };
	size_t start = out->len, i;
	struct buf w;
	int rc;

	buf_init(&w, AUTHRES_VALUE_MAX + 16);
	rc = buf_appends(out, AUTHRES_NAME) | put_value(&w, authserv_id, 0) | buf_appendc(&w, ';');
	wr.col = strlen(AUTHRES_NAME);
	if (rc == 0)
		rc = put_word(&wr, &w, 0);
	buf_free(&w);
	if (rc == 0 && n == 0)
		rc = buf_appends(out, " none");
	for (i = 0; rc == 0 && i < n; i++) {
		wr.col = 0;	/* each resinfo starts a line */
		rc = put_entry(&wr, &e[i], i + 1 == n);
	}
	if (rc == 0)
		rc = buf_appends(out, "\r\n");
	if (rc != 0) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
		return -1;
	}
	return 0;
}

/* ---- parser (RFC 8601 2.2) ---- */

struct cursor {
	const char *s;
	size_t      len, pos;
};

/* [CFWS] (RFC 5322 3.2.2); -1 on an unclosed comment. */
static int
cfws(struct cursor *c)
{
	size_t depth = 0;
	char ch;

	for (; c->pos < c->len; c->pos++) {
		ch = c->s[c->pos];
		if (depth > 0 && ch == '\\' && c->pos + 1 < c->len)
			c->pos++;
		else if (ch == '(')
			depth++;
		else if (ch == ')' && depth > 0)
			depth--;
		else if (depth == 0 && ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n')
			return 0;
	}
	return depth == 0 ? 0 : -1;
}

static int
peek(const struct cursor *c)
{
	return c->pos < c->len ? (unsigned char)c->s[c->pos] : -1;
}

/* A Keyword into *sp; -1 if none is there. */
static int
keyword(struct cursor *c, struct authres_span *sp)
{
	size_t start = c->pos;

	while (c->pos < c->len && (is_alnum((unsigned char)c->s[c->pos]) || c->s[c->pos] == '-'))
		c->pos++;
	sp->off = start;
	sp->len = c->pos - start;
	return is_keyword(c->s + start, sp->len) ? 0 : -1;
}

/* quoted-string; the unquoted bytes go to out (when not NULL) up to outlen-1. */
static int
quoted(struct cursor *c, char *out, size_t outlen, size_t *n)
{
	unsigned char ch;

	*n = 0;
	for (c->pos++; c->pos < c->len; c->pos++) {
		ch = (unsigned char)c->s[c->pos];
		if (ch == '"') {
			c->pos++;
			return 0;
		}
		if (ch == '\\' && ++c->pos == c->len)
			break;
		ch = (unsigned char)c->s[c->pos];
		if (ch == '\0')
			return -1;
		if (out != NULL && *n + 1 >= outlen)
			return -1;
		if (out != NULL)
			out[*n] = (char)ch;
		(*n)++;
	}
	return -1;
}

/* value = token / quoted-string (RFC 2045); addr: a pvalue, [local-part "@"] domain too. */
static int
value(struct cursor *c, char *out, size_t outlen, int addr)
{
	size_t start = c->pos, n;

	if (peek(c) == '"') {
		if (quoted(c, out, outlen, &n) == -1)
			return -1;
		if (!addr || peek(c) != '@')
			goto done;	/* else: "local"@domain */
	}
	while (c->pos < c->len && (is_tokenc((unsigned char)c->s[c->pos]) ||
	    (addr && (c->s[c->pos] == '@' || is_atextc((unsigned char)c->s[c->pos])))))
		c->pos++;
	n = c->pos - start;
	if (n == 0 || (addr && c->s[c->pos - 1] == '@'))
		return -1;
	if (out != NULL) {
		if (n >= outlen)
			return -1;
		memcpy(out, c->s + start, n);
	}
done:
	if (out != NULL)
		out[n] = '\0';
	return 0;
}

static int
digits(struct cursor *c, int *v)
{
	size_t start = c->pos;

	*v = 0;
	while (peek(c) >= '0' && peek(c) <= '9') {
		*v = *v > 99999 ? *v : *v * 10 + (c->s[c->pos] - '0');
		c->pos++;
	}
	return c->pos > start ? 0 : -1;
}

/* methodspec = [CFWS] method [CFWS] "=" [CFWS] result */
static int
methodspec(struct cursor *c, struct authres_resinfo *r)
{
	int ver;

	if (cfws(c) || keyword(c, &r->method) || cfws(c))
		return -1;
	if (peek(c) == '/') {	/* method-version */
		c->pos++;
		if (cfws(c) || digits(c, &ver) || cfws(c))
			return -1;
	}
	if (peek(c) != '=')
		return -1;
	c->pos++;
	return cfws(c) || keyword(c, &r->result) ? -1 : 0;
}

/* [CFWS reasonspec] [CFWS 1*propspec], up to the next ";" or the end */
static int
resinfo_tail(struct cursor *c, struct authres_resinfo *r)
{
	struct authres_span k, prop;

	for (;;) {
		if (cfws(c))
			return -1;
		if (peek(c) == ';' || peek(c) == -1)
			return 0;
		if (keyword(c, &k) || cfws(c))
			return -1;
		if (k.len == 6 && strncasecmp(c->s + k.off, "reason", 6) == 0 && peek(c) == '=' &&
		    !r->has_reason && r->nprops == 0) {
			c->pos++;
			if (cfws(c) || value(c, NULL, 0, 0))
				return -1;
			r->has_reason = 1;
			continue;
		}
		if (peek(c) != '.')
			return -1;
		c->pos++;
		if (cfws(c) || keyword(c, &prop) || cfws(c) || peek(c) != '=')
			return -1;
		c->pos++;
		if (cfws(c) || value(c, NULL, 0, 1))
			return -1;
		r->nprops++;
	}
}

/* "; none" (no-result), with nothing after it */
static int
no_result(struct cursor c)
{
	struct authres_span k;

	c.pos++;
	if (cfws(&c) || keyword(&c, &k) || k.len != 4 ||
	    strncasecmp(c.s + k.off, "none", 4) != 0)
		return 0;
	return cfws(&c) == 0 && c.pos == c.len;
}

static int
resinfos(struct cursor *c, struct authres_parsed *out)
{
	struct authres_resinfo r;

	if (peek(c) == ';' && no_result(*c)) {
		out->none = 1;
		return 0;
	}
	if (peek(c) != ';')
		return -1;	/* 1*resinfo */
	while (peek(c) == ';') {
		c->pos++;
		memset(&r, 0, sizeof(r));
		if (methodspec(c, &r) || resinfo_tail(c, &r))
			return -1;
		if (out->nres < AUTHRES_RESINFO_MAX)
			out->res[out->nres] = r;
		out->nres++;
	}
	return peek(c) == -1 ? 0 : -1;
}

int
authres_parse(const char *v, size_t len, struct authres_parsed *out)
{
	struct cursor c = { v, len, 0 };
	size_t save;

	memset(out, 0, sizeof(*out));
	out->version = -1;
	if (cfws(&c) || value(&c, out->authserv_id, sizeof(out->authserv_id), 0))
		return -1;
	out->has_id = 1;
	save = c.pos;
	if (cfws(&c))
		return -1;
	if (c.pos > save && digits(&c, &out->version) == 0) {
		if (cfws(&c))	/* authres-version = 1*DIGIT [CFWS] */
			return -1;
	}
	return resinfos(&c, out);
}

int
authres_claims_id(const char *v, size_t len, const char *id)
{
	struct authres_parsed p;

	authres_parse(v, len, &p);
	return p.has_id && strcasecmp(p.authserv_id, id) == 0;
}
