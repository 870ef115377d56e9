/* parse — SMTP command line and MAIL/RCPT path parsers (see parse.h). */
#include "smtp/parse.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* A read position over bytes that need not be NUL-terminated. */
struct cursor {
	const unsigned char *s;
	size_t               pos;
	size_t               end;
};

static const char *const verb_names[] = {
	[SMTP_VERB_UNKNOWN] = "UNKNOWN",
	[SMTP_VERB_HELO] = "HELO",	[SMTP_VERB_EHLO] = "EHLO",
	[SMTP_VERB_MAIL] = "MAIL",	[SMTP_VERB_RCPT] = "RCPT",
	[SMTP_VERB_DATA] = "DATA",	[SMTP_VERB_BDAT] = "BDAT",
	[SMTP_VERB_RSET] = "RSET",	[SMTP_VERB_NOOP] = "NOOP",
	[SMTP_VERB_QUIT] = "QUIT",	[SMTP_VERB_VRFY] = "VRFY",
	[SMTP_VERB_EXPN] = "EXPN",	[SMTP_VERB_HELP] = "HELP",
	[SMTP_VERB_STARTTLS] = "STARTTLS", [SMTP_VERB_AUTH] = "AUTH",
};
#define NVERBS (sizeof(verb_names) / sizeof(verb_names[0]))

static int
lc(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int
is_alpha(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

/* RFC 5322 3.2.3 atext; RFC 6531 3.3 adds UTF8-non-ascii. */
static int
is_atext(int c)
{
	return is_alpha(c) || is_digit(c) || c >= 0x80 ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* RFC 5321 4.1.2 qtextSMTP (plus UTF8-non-ascii, RFC 6531 3.3). */
static int
is_qtext(int c)
{
	return c == 32 || c == 33 || (c >= 35 && c <= 91) ||
	    (c >= 93 && c <= 126) || c >= 0x80;
}

/* RFC 5321 4.1.3 dcontent. */
static int
is_dcontent(int c)
{
	return c >= 33 && c <= 126 && c != '[' && c != '\\' && c != ']';
}

/* RFC 5321 4.1.2 esmtp-value octets (plus UTF8-non-ascii, RFC 6531 3.3). */
static int
is_esmtp_value(int c)
{
	return (c >= 33 && c <= 126 && c != '=') || c >= 0x80;
}

/* s[0..n) equals the NUL-terminated ASCII word w, ignoring case. */
static int
caseeq(const unsigned char *s, size_t n, const char *w)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (w[i] == '\0' || lc(s[i]) != lc((unsigned char)w[i]))
			return 0;
	return w[n] == '\0';
}

static int
peek(const struct cursor *c)
{
	return c->pos < c->end ? c->s[c->pos] : -1;
}

static int
take(struct cursor *c, int ch)
{
	if (peek(c) != ch)
		return 0;
	c->pos++;
	return 1;
}

static enum smtp_parse_err
fail(const char **why, enum smtp_parse_err err, const char *msg)
{
	if (why != NULL)
		*why = msg;
	return err;
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629 4), 0 if none. */
static size_t
utf8_seqlen(const unsigned char *p, size_t n)
{
	unsigned char lo = 0x80, hi = 0xBF;
	size_t len, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xC2 && p[0] <= 0xDF)
		len = 2;
	else if (p[0] >= 0xE0 && p[0] <= 0xEF)
		len = 3;
	else if (p[0] >= 0xF0 && p[0] <= 0xF4)
		len = 4;
	else
		return 0;	/* continuation, C0/C1 overlong lead, > U+10FFFF */
	/* The second octet's range excludes overlongs, surrogates, > U+10FFFF. */
	if (p[0] == 0xE0)
		lo = 0xA0;
	else if (p[0] == 0xED)
		hi = 0x9F;
	else if (p[0] == 0xF0)
		lo = 0x90;
	else if (p[0] == 0xF4)
		hi = 0x8F;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return len;
}

int
smtp_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i, k;

	for (i = 0; i < n; i += k)
		if ((k = utf8_seqlen(p + i, n - i)) == 0)
			return 0;
	return 1;
}

const char *
smtp_verb_name(enum smtp_verb verb)
{
	if ((size_t)verb >= NVERBS)
		return verb_names[SMTP_VERB_UNKNOWN];
	return verb_names[verb];
}

int
smtp_parse_cmd(const char *line, size_t len, struct smtp_cmd *out)
{
	const unsigned char *s = (const unsigned char *)line;
	size_t i, vlen, a, e;

	/* 500 5.5.2 for NUL and other controls; HTAB is tolerated as a space. */
	for (i = 0; i < len; i++)
		if ((s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
			return -1;
	for (vlen = 0; vlen < len && !is_wsp(s[vlen]); vlen++)
		;
	out->verb = SMTP_VERB_UNKNOWN;
	for (i = 1; i < NVERBS; i++)
		if (caseeq(s, vlen, verb_names[i]))
			out->verb = (enum smtp_verb)i;
	for (a = vlen; a < len && is_wsp(s[a]); a++)
		;
	for (e = len; e > a && is_wsp(s[e - 1]); e--)
		;
	out->arg = a == 0 ? line : line + a;	/* no arithmetic on a NULL line */
	out->arglen = e - a;
	return 0;
}

/*
 * sub-domain = Let-dig [Ldh-str] (RFC 5321 4.1.2), non-ASCII octets counted
 * as letters (U-labels, RFC 6531 3.3). HELO names may also hold "_".
 */
static int
parse_label(struct cursor *c, int underscore)
{
	size_t start = c->pos;
	int ch;

	while ((ch = peek(c)) != -1 && (is_alpha(ch) || is_digit(ch) ||
	    ch == '-' || ch >= 0x80 || (underscore && ch == '_')))
		c->pos++;
	if (c->pos == start || c->s[start] == '-' || c->s[c->pos - 1] == '-')
		return -1;
	return 0;
}

/* Domain = sub-domain *("." sub-domain): no empty label, no trailing dot. */
static int
parse_domain(struct cursor *c, int underscore)
{
	do {
		if (parse_label(c, underscore) == -1)
			return -1;
	} while (take(c, '.'));
	return 0;
}

/* Checks s[0..n) with inet_pton on a bounded NUL-terminated copy. */
static int
ip_valid(int af, const unsigned char *s, size_t n)
{
	char tmp[INET6_ADDRSTRLEN];
	unsigned char bin[sizeof(struct in6_addr)];

	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return inet_pton(af, tmp, bin) == 1 ? 0 : -1;
}

/* General-address-literal = Standardized-tag ":" 1*dcontent (4.1.3). */
static int
general_literal_valid(const unsigned char *s, size_t n)
{
	const unsigned char *colon = memchr(s, ':', n);
	size_t i, taglen;

	if (colon == NULL || colon + 1 == s + n)
		return -1;
	taglen = (size_t)(colon - s);
	/* Standardized-tag = Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig */
	if (taglen == 0 || s[taglen - 1] == '-')
		return -1;
	for (i = 0; i < taglen; i++)
		if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '-')
			return -1;
	return 0;
}

/* address-literal = "[" ( IPv4 / "IPv6:" IPv6 / General ) "]" (4.1.3). */
static int
parse_literal(struct cursor *c)
{
	const unsigned char *s;
	size_t start, n;

	if (!take(c, '['))
		return -1;
	start = c->pos;
	while (peek(c) != -1 && is_dcontent(peek(c)))
		c->pos++;
	n = c->pos - start;
	if (!take(c, ']'))
		return -1;
	s = c->s + start;
	if (n >= 5 && caseeq(s, 5, "IPv6:"))
		return ip_valid(AF_INET6, s + 5, n - 5);
	if (memchr(s, ':', n) != NULL)
		return general_literal_valid(s, n);
	return ip_valid(AF_INET, s, n);
}

/* A-d-l = At-domain *( "," At-domain ) ":"; At-domain = "@" Domain. */
static int
parse_route(struct cursor *c)
{
	do {
		if (!take(c, '@') || parse_domain(c, 0) == -1)
			return -1;
	} while (take(c, ','));
	return take(c, ':') ? 0 : -1;
}

/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE (4.1.2). */
static int
parse_quoted(struct cursor *c)
{
	int ch;

	if (!take(c, '"'))
		return -1;
	while ((ch = peek(c)) != -1 && ch != '"') {
		c->pos++;
		if (ch == '\\') {
			/* quoted-pairSMTP = %d92 %d32-126 */
			ch = peek(c);
			if (ch < 32 || ch > 126)
				return -1;
			c->pos++;
		} else if (!is_qtext(ch))
			return -1;
	}
	return take(c, '"') ? 0 : -1;
}

/* Dot-string = Atom *("." Atom); Atom = 1*atext (4.1.2). */
static int
parse_dotstring(struct cursor *c)
{
	size_t start;

	do {
		start = c->pos;
		while (peek(c) != -1 && is_atext(peek(c)))
			c->pos++;
		if (c->pos == start)
			return -1;
	} while (take(c, '.'));
	return 0;
}

/* Writes the local part s[0..n) without quotes and escapes; n <= 64. */
static void
decode_local(const unsigned char *s, size_t n, char *out)
{
	size_t i, o = 0;

	if (n >= 2 && s[0] == '"') {
		for (i = 1; i + 1 < n; i++) {
			if (s[i] == '\\')
				i++;
			out[o++] = (char)s[i];
		}
	} else {
		memcpy(out, s, n);
		o = n;
	}
	out[o] = '\0';
}

/* Bounds of the pieces of one parsed path, as offsets into the argument. */
struct path_span {
	size_t start, lstart, lend, dstart, dend;
};

/* Checks the 4.5.3.1 limits, then copies the pieces into p. */
static enum smtp_parse_err
path_store(const struct cursor *c, const struct path_span *sp,
    struct smtp_path *p, const char **why)
{
	size_t llen = sp->lend - sp->lstart, dlen = sp->dend - sp->dstart;
	size_t i;

	if (llen > SMTP_LOCAL_MAX)
		return fail(why, SMTP_PARSE_TOO_LONG, "local part too long");
	if (dlen > SMTP_DOMAIN_MAX)
		return fail(why, SMTP_PARSE_TOO_LONG, "domain too long");
	/* 4.5.3.1.3: the path counts its punctuation, "<" and ">" included. */
	if (c->pos - sp->start > SMTP_PATH_MAX)
		return fail(why, SMTP_PARSE_TOO_LONG, "path too long");
	for (i = sp->start; i < c->pos; i++)
		if (c->s[i] >= 0x80)
			p->utf8 = 1;
	/* llen + 1 + dlen < path length <= SMTP_PATH_MAX: it fits in addr. */
	memcpy(p->addr, c->s + sp->lstart, llen);
	p->addr[llen] = '@';
	memcpy(p->addr + llen + 1, c->s + sp->dstart, dlen);
	p->addr[llen + 1 + dlen] = '\0';
	p->local_len = llen;
	memcpy(p->domain, c->s + sp->dstart, dlen);
	p->domain[dlen] = '\0';
	decode_local(c->s + sp->lstart, llen, p->local);
	return SMTP_PARSE_OK;
}

/* Path = "<" [ A-d-l ":" ] Mailbox ">" (4.1.2), cursor on the "<". */
static enum smtp_parse_err
parse_path(struct cursor *c, int is_from, struct smtp_path *p,
    const char **why)
{
	struct path_span sp;
	int routed, rc;

	sp.start = c->pos++;
	if (take(c, '>')) {
		if (!is_from)
			return fail(why, SMTP_PARSE_ADDRESS, "null path not allowed");
		p->null = 1;
		return SMTP_PARSE_OK;
	}
	routed = peek(c) == '@';
	if (routed && parse_route(c) == -1)
		return fail(why, SMTP_PARSE_ADDRESS, "malformed source route");
	sp.lstart = c->pos;
	rc = peek(c) == '"' ? parse_quoted(c) : parse_dotstring(c);
	sp.lend = c->pos;
	if (rc == -1)
		return fail(why, SMTP_PARSE_ADDRESS, "malformed local part");
	/* 4.1.1.3: RCPT TO:<Postmaster> needs no domain. */
	if (!is_from && !routed && peek(c) == '>' &&
	    caseeq(c->s + sp.lstart, sp.lend - sp.lstart, "postmaster")) {
		c->pos++;
		p->postmaster = 1;
		return SMTP_PARSE_OK;
	}
	if (peek(c) == -1)
		return fail(why, SMTP_PARSE_SYNTAX, "missing angle brackets");
	if (!take(c, '@'))
		return fail(why, SMTP_PARSE_ADDRESS, "address lacks a domain");
	sp.dstart = c->pos;
	p->domain_literal = peek(c) == '[';
	rc = p->domain_literal ? parse_literal(c) : parse_domain(c, 0);
	sp.dend = c->pos;
	if (rc == -1)
		return fail(why, SMTP_PARSE_ADDRESS, "malformed domain");
	if (peek(c) == -1)
		return fail(why, SMTP_PARSE_SYNTAX, "missing angle brackets");
	if (!take(c, '>'))
		return fail(why, SMTP_PARSE_ADDRESS, "malformed address");
	return path_store(c, &sp, p, why);
}

/* esmtp-param = esmtp-keyword ["=" esmtp-value] (4.1.2). */
static int
parse_param(struct cursor *c, struct smtp_param *p)
{
	size_t start = c->pos;

	if (peek(c) == -1 || !(is_alpha(peek(c)) || is_digit(peek(c))))
		return -1;
	while (peek(c) != -1 &&
	    (is_alpha(peek(c)) || is_digit(peek(c)) || peek(c) == '-'))
		c->pos++;
	p->key = (const char *)c->s + start;
	p->keylen = c->pos - start;
	p->val = NULL;
	p->vallen = 0;
	if (!take(c, '='))
		return 0;
	start = c->pos;
	while (peek(c) != -1 && is_esmtp_value(peek(c)))
		c->pos++;
	if (c->pos == start)
		return -1;
	p->val = (const char *)c->s + start;
	p->vallen = c->pos - start;
	return 0;
}

/* Mail-parameters after the path: SP-separated, extra spaces tolerated. */
static enum smtp_parse_err
parse_params(struct cursor *c, struct smtp_mailarg *out, const char **why)
{
	while (peek(c) != -1) {
		if (!take(c, ' '))
			return fail(why, SMTP_PARSE_PARAM, "bad parameter syntax");
		while (take(c, ' '))
			;
		if (peek(c) == -1)
			break;
		if (out->nparams == SMTP_PARAMS_MAX)
			return fail(why, SMTP_PARSE_PARAM, "too many parameters");
		if (parse_param(c, &out->params[out->nparams]) == -1 ||
		    (peek(c) != -1 && peek(c) != ' '))
			return fail(why, SMTP_PARSE_PARAM, "bad parameter syntax");
		out->nparams++;
	}
	return SMTP_PARSE_OK;
}

enum smtp_parse_err
smtp_parse_mailarg(const char *arg, size_t len, const char *prefix,
    struct smtp_mailarg *out, const char **why)
{
	struct cursor c = { (const unsigned char *)arg, 0, len };
	size_t plen = strlen(prefix);
	enum smtp_parse_err err;

	memset(out, 0, sizeof(*out));
	/*
	 * Checking the whole argument first lets the grammar below treat every
	 * octet >= 0x80 alike: a sequence can then never be split.
	 */
	if (!smtp_utf8_valid(arg, len))
		return fail(why, SMTP_PARSE_BAD_UTF8, "ill-formed UTF-8");
	if (len < plen || !caseeq(c.s, plen, prefix))
		return fail(why, SMTP_PARSE_SYNTAX, "missing FROM: or TO:");
	c.pos = plen;
	(void)take(&c, ' ');
	if (peek(&c) != '<')
		return fail(why, SMTP_PARSE_SYNTAX, "missing angle brackets");
	err = parse_path(&c, caseeq((const unsigned char *)prefix, plen,
	    "FROM:"), &out->path, why);
	if (err != SMTP_PARSE_OK)
		return err;
	return parse_params(&c, out, why);
}

int
smtp_check_helo(const char *arg, size_t len, int allow_utf8)
{
	struct cursor c = { (const unsigned char *)arg, 0, len };
	size_t i, last = 0;
	int utf8 = 0;

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return -1;
	for (i = 0; i < len; i++) {
		if (c.s[i] >= 0x80)
			utf8 = 1;
		if (c.s[i] == '.')
			last = i + 1;
	}
	if (utf8 && (!allow_utf8 || !smtp_utf8_valid(arg, len)))
		return -1;
	if (peek(&c) == '[')
		return parse_literal(&c) == 0 && c.pos == len ? 0 : -1;
	if (parse_domain(&c, 1) == -1 || c.pos != len)
		return -1;
	/* No TLD is numeric: this refuses a bare IPv4 address without "[]". */
	for (i = last; i < len && is_digit(c.s[i]); i++)
		;
	return i == len ? -1 : 0;
}

const struct smtp_param *
smtp_param_find(const struct smtp_mailarg *a, const char *key)
{
	size_t i;

	for (i = 0; i < a->nparams; i++)
		if (caseeq((const unsigned char *)a->params[i].key,
		    a->params[i].keylen, key))
			return &a->params[i];
	return NULL;
}
