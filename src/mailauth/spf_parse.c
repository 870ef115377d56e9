/* spf_parse — SPF record terms and macro expansion (see spf_parse.h). */
#include "mailauth/spf_parse.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DIGITS_MAX	1000	/* a larger DIGIT transformer means "all parts" anyway */
#define DNS_TEXT_MAX	253	/* a domain name in text form (7.3) */
#define LABEL_MAX	63

static void
seterr(char *err, size_t errlen, const char *what, const char *s, size_t n)
{
	if (errlen == 0)
		return;
	if (s == NULL)
		snprintf(err, errlen, "%s", what);
	else
		snprintf(err, errlen, "%s \"%.*s\"", what, (int)(n > 64 ? 64 : n), s);
}

static int
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

/* ---- macro tokens (7.1) ---- */

enum mtok_kind { MT_LIT, MT_ESC, MT_MACRO };

struct mtok {
	enum mtok_kind kind;
	size_t         len;		/* bytes of input taken */
	char           c;		/* MT_LIT: the byte; MT_ESC: '%', '_' or '-' */
	char           letter;		/* MT_MACRO: lower case */
	int            upper;		/* URL-escape the expansion (7.3) */
	unsigned       digits;		/* 0: all parts */
	int            reverse;
	char           delims[8];	/* NUL-terminated set; "" = "." */
};

static int
macro_letter_ok(char l, int allow_crt)
{
	if (strchr("slodiphv", l) != NULL)
		return 1;
	return allow_crt && strchr("crt", l) != NULL;
}

/* Parses "%{" letter *DIGIT ["r"] *delimiter "}" at in[0..len). */
static int
mtok_macro(const char *in, size_t len, int allow_crt, struct mtok *t, char *err, size_t errlen)
{
	size_t i = 2, nd = 0;

	if (len < 3 || !is_alpha(in[2]) || !macro_letter_ok((char)lower(in[2]), allow_crt))
		goto bad;
	t->kind = MT_MACRO;
	t->letter = (char)lower(in[2]);
	t->upper = in[2] >= 'A' && in[2] <= 'Z';
	t->digits = 0;
	t->reverse = 0;
	t->delims[0] = '\0';
	for (i = 3; i < len && is_digit(in[i]); i++) {
		t->digits = t->digits * 10 + (unsigned)(in[i] - '0');
		if (t->digits > DIGITS_MAX)
			t->digits = DIGITS_MAX;
		nd++;
	}
	if (nd > 0 && t->digits == 0)
		goto bad;		/* 7.3: a DIGIT transformer MUST be nonzero */
	if (i < len && (in[i] == 'r' || in[i] == 'R')) {
		t->reverse = 1;
		i++;
	}
	for (; i < len && strchr(".-+,/_=", in[i]) != NULL && in[i] != '\0'; i++) {
		size_t k = strlen(t->delims);

		if (strchr(t->delims, in[i]) == NULL && k < sizeof(t->delims) - 1) {
			t->delims[k] = in[i];
			t->delims[k + 1] = '\0';
		}
	}
	if (i >= len || in[i] != '}')
		goto bad;
	t->len = i + 1;
	return 0;
bad:
	seterr(err, errlen, "bad macro", in, i < len ? i + 1 : len);
	return -1;
}

/* The token at in[0..len) (len > 0). */
static int
mtok_next(const char *in, size_t len, int allow_space, int allow_crt, struct mtok *t,
    char *err, size_t errlen)
{
	unsigned char c = (unsigned char)in[0];

	if (c != '%') {
		/* macro-literal = %x21-24 / %x26-7E; explain-string adds SP */
		if ((c < 0x21 || c > 0x7e) && !(allow_space && c == ' ')) {
			seterr(err, errlen, "bad character in", in, len);
			return -1;
		}
		t->kind = MT_LIT;
		t->c = (char)c;
		t->len = 1;
		return 0;
	}
	if (len >= 2 && (in[1] == '%' || in[1] == '_' || in[1] == '-')) {
		t->kind = MT_ESC;
		t->c = in[1];
		t->len = 2;
		return 0;
	}
	if (len >= 2 && in[1] == '{')
		return mtok_macro(in, len, allow_crt, t, err, errlen);
	seterr(err, errlen, "'%' not followed by '{', '%', '_' or '-' in", in, len);
	return -1;
}

static int
check_macro(const char *in, size_t len, int allow_space, int allow_crt, char *err, size_t errlen)
{
	struct mtok t;
	size_t i;

	for (i = 0; i < len; i += t.len)
		if (mtok_next(in + i, len - i, allow_space, allow_crt, &t, err, errlen) == -1)
			return -1;
	return 0;
}

int
spf_macro_check(const char *in, size_t len, enum spf_macro_use use, char *err, size_t errlen)
{
	int exp = use == SPF_MACRO_EXP;

	return check_macro(in, len, exp, exp, err, errlen);
}

int
spf_macro_uses(const char *in, size_t len, char letter)
{
	size_t i;

	for (i = 0; i + 2 < len; i++)
		if (in[i] == '%' && in[i + 1] == '{' && lower(in[i + 2]) == lower(letter))
			return 1;
		else if (in[i] == '%')
			i++;	/* skip the escaped byte of %%, %_, %- */
	return 0;
}

/* ---- expansion ---- */

struct out {
	char  *p;
	size_t cap, len;
	int    full;
};

static void
put(struct out *o, char c)
{
	if (o->len + 1 < o->cap)
		o->p[o->len++] = c;
	else
		o->full = 1;
}

static void
puts_n(struct out *o, const char *s, size_t n)
{
	while (n-- > 0)
		put(o, *s++);
}

/* 7.3: upper-case macro letters URL-escape all but the unreserved set. */
static void
put_maybe_escaped(struct out *o, char c, int escape)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char u = (unsigned char)c;

	if (!escape || is_alpha(c) || is_digit(c) || strchr("-._~", c) != NULL) {
		put(o, c);
		return;
	}
	put(o, '%');
	put(o, hex[u >> 4]);
	put(o, hex[u & 15]);
}

static int
is_delim(const struct mtok *t, char c)
{
	if (t->delims[0] == '\0')
		return c == '.';
	return c != '\0' && strchr(t->delims, c) != NULL;
}

/* Emits parts [from, to) of v, rejoined with '.'. */
static void
put_span(struct out *o, const struct mtok *t, const char *v, size_t from, size_t to)
{
	size_t i;

	for (i = from; i < to; i++)
		put_maybe_escaped(o, is_delim(t, v[i]) ? '.' : v[i], t->upper);
}

/* 7.3: split on the delimiters, optionally reverse, keep the right-hand
 * `digits` parts, join with dots. */
static void
put_transformed(struct out *o, const struct mtok *t, const char *v, size_t n)
{
	size_t parts = 1, keep, i, seen = 0, end;

	for (i = 0; i < n; i++)
		parts += is_delim(t, v[i]);
	keep = (t->digits == 0 || t->digits > parts) ? parts : t->digits;
	if (!t->reverse) {
		/* skip the first parts - keep parts */
		for (i = 0; i < n && seen < parts - keep; i++)
			seen += is_delim(t, v[i]);
		put_span(o, t, v, i, n);
		return;
	}
	/* reversed: the kept parts are the original first `keep`, last first */
	for (end = 0; end < n; end++)
		if (is_delim(t, v[end]) && ++seen == keep)
			break;
	for (;;) {
		size_t start = end;

		while (start > 0 && !is_delim(t, v[start - 1]))
			start--;
		put_span(o, t, v, start, end);
		if (start == 0)
			break;
		put(o, '.');
		end = start - 1;
	}
}

/* The text a macro letter stands for (7.2). */
static size_t
macro_value(const struct spf_macro_ctx *mc, char letter, char *tmp, size_t tmplen, const char **v)
{
	int i;

	switch (letter) {
	case 's': *v = mc->sender; break;
	case 'l': *v = mc->local; return mc->local_len;
	case 'o': *v = mc->sender_domain; break;
	case 'd': *v = mc->domain; break;
	case 'h': *v = mc->helo; break;
	case 'p': *v = mc->validated ? mc->validated : "unknown"; break;
	case 'r': *v = mc->receiver ? mc->receiver : "unknown"; break;
	case 'v': *v = mc->family == AF_INET6 ? "ip6" : "in-addr"; break;
	case 't': snprintf(tmp, tmplen, "%lld", mc->now); *v = tmp; break;
	case 'c':
		if (inet_ntop(mc->family, mc->ip, tmp, (socklen_t)tmplen) == NULL)
			tmp[0] = '\0';
		*v = tmp;
		break;
	case 'i':
		*v = tmp;
		if (mc->family != AF_INET6)
			return (size_t)snprintf(tmp, tmplen, "%u.%u.%u.%u", mc->ip[0],
			    mc->ip[1], mc->ip[2], mc->ip[3]);
		/* 7.3: IPv6 as dot-separated nibbles, most significant first */
		for (i = 0; i < 32; i++) {
			tmp[2 * i] = "0123456789abcdef"[(mc->ip[i / 2] >> (i % 2 ? 0 : 4)) & 15];
			tmp[2 * i + 1] = '.';
		}
		tmp[63] = '\0';
		return 63;
	default: *v = ""; break;
	}
	if (*v == NULL)
		*v = "";
	return strlen(*v);
}

int
spf_macro_expand(const char *in, size_t len, enum spf_macro_use use,
    const struct spf_macro_ctx *mc, char *out, size_t outcap, size_t *outlen,
    char *err, size_t errlen)
{
	struct out o = { out, outcap, 0, 0 };
	int exp = use == SPF_MACRO_EXP;
	struct mtok t;
	char tmp[80];
	const char *v;
	size_t i, n;

	for (i = 0; i < len; i += t.len) {
		if (mtok_next(in + i, len - i, exp, exp, &t, err, errlen) == -1) {
			if (outcap > 0)
				out[0] = '\0';
			return -1;
		}
		if (t.kind == MT_LIT)
			put(&o, t.c);
		else if (t.kind == MT_ESC)
			puts_n(&o, t.c == '%' ? "%" : t.c == '_' ? " " : "%20", t.c == '-' ? 3 : 1);
		else {
			n = macro_value(mc, t.letter, tmp, sizeof(tmp), &v);
			put_transformed(&o, &t, v, n);
		}
	}
	if (outcap > 0)
		out[o.len] = '\0';
	*outlen = o.len;
	if (o.full) {
		seterr(err, errlen, "macro expansion too long", NULL, 0);
		return -2;
	}
	return 0;
}

/* ---- domain-spec (7.1) ---- */

/* toplabel = ( *alphanum ALPHA *alphanum ) /
 *            ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) */
static int
toplabel_ok(const char *s, size_t n)
{
	int alpha = 0, dash = 0;
	size_t i;

	if (n == 0 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (i = 0; i < n; i++) {
		if (is_alpha(s[i]))
			alpha = 1;
		else if (s[i] == '-')
			dash = 1;
		else if (!is_digit(s[i]))
			return 0;
	}
	return alpha || dash;
}

int
spf_domain_spec_check(const char *s, size_t len, char *err, size_t errlen)
{
	size_t i, tail = 0, q;
	struct mtok t;

	if (len == 0) {
		seterr(err, errlen, "empty domain-spec", NULL, 0);
		return -1;
	}
	for (i = 0; i < len; i += t.len) {
		if (mtok_next(s + i, len - i, 0, 0, &t, err, errlen) == -1)
			return -1;
		if (t.kind != MT_LIT)
			tail = i + t.len;
	}
	if (tail == len)
		return 0;	/* domain-end = macro-expand */
	/* domain-end = "." toplabel [ "." ], within the literal tail */
	if (s[len - 1] == '.')
		len--;
	for (q = len; q > tail && s[q - 1] != '.'; q--)
		;
	if (q > tail && toplabel_ok(s + q, len - q))
		return 0;
	seterr(err, errlen, "domain-spec does not end in a valid top label:", s, len);
	return -1;
}

int
spf_domain_finish(char *name, size_t len)
{
	size_t i, lab = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	while (len > DNS_TEXT_MAX) {
		const char *dot = memchr(name, '.', len);

		if (dot == NULL)
			return -1;
		i = (size_t)(dot - name) + 1;
		memmove(name, name + i, len - i);
		len -= i;
	}
	name[len] = '\0';
	if (len == 0)
		return -1;
	for (i = 0; i <= len; i++) {
		if (i == len || name[i] == '.') {
			if (lab == 0 || lab > LABEL_MAX)
				return -1;
			lab = 0;
		} else
			lab++;
	}
	return (int)len;
}

/* ---- record terms (4.6.1, 5, 6) ---- */

int
spf_is_spf1(const char *txt, size_t len)
{
	return len >= 6 && strncasecmp(txt, "v=spf1", 6) == 0 && (len == 6 || txt[6] == ' ');
}

int
spf_record_begin(struct spf_record_iter *it, const char *rec, size_t len)
{
	if (!spf_is_spf1(rec, len))
		return -1;
	it->rec = rec;
	it->len = len;
	it->pos = 6;
	return 0;
}

/* A CIDR length: 1*DIGIT without leading zeros, at most max. */
static int
parse_cidr(const char *s, size_t n, int max)
{
	int v = 0;
	size_t i;

	if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v > max ? -1 : v;
}

/* ip4-network: four qnums, no leading zeros, no omitted parts (5.6). */
static int
parse_ip4(const char *s, size_t n, uint8_t ip[4])
{
	size_t i = 0, k;
	int part;

	for (part = 0; part < 4; part++) {
		int v;

		for (k = i; k < n && is_digit(s[k]); k++)
			;
		if ((v = parse_cidr(s + i, k - i, 255)) == -1)
			return -1;
		ip[part] = (uint8_t)v;
		if (part < 3 && (k >= n || s[k] != '.'))
			return -1;
		i = k + 1;
	}
	return i == n + 1 ? 0 : -1;
}

static int
parse_ip6(const char *s, size_t n, uint8_t ip[16])
{
	char tmp[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return inet_pton(AF_INET6, tmp, ip) == 1 ? 0 : -1;
}

/* "ip4:" / "ip6:" network [ "/" length ] */
static int
parse_ipnet(struct spf_term *t, const char *a, size_t n, char *err, size_t errlen)
{
	int v6 = t->type == SPF_T_IP6, bits = v6 ? 128 : 32, c = bits;
	const char *slash;
	size_t netlen;

	if (n < 2 || a[0] != ':')
		goto bad;
	a++, n--;
	slash = memchr(a, '/', n);
	netlen = slash ? (size_t)(slash - a) : n;
	if (slash && (c = parse_cidr(slash + 1, n - netlen - 1, bits)) == -1)
		goto bad;
	if ((v6 ? parse_ip6(a, netlen, t->ip) : parse_ip4(a, netlen, t->ip)) == -1)
		goto bad;
	if (v6)
		t->cidr6 = c;
	else
		t->cidr4 = c;
	return 0;
bad:
	seterr(err, errlen, "bad network in", t->text, t->textlen);
	return -1;
}

/* Where the digits at the end of a..n start, if "/" comes before them;
 * n if there is no such length. */
static size_t
trailing_cidr(const char *a, size_t n)
{
	size_t d = n;

	while (d > 0 && is_digit(a[d - 1]))
		d--;
	return (d == n || d == 0 || a[d - 1] != '/') ? n : d;
}

/* Takes a trailing dual-cidr-length ("/n", "//m", "/n//m") off a..n. */
static int
strip_dual_cidr(struct spf_term *t, const char *a, size_t *n)
{
	size_t d = trailing_cidr(a, *n);

	if (d == *n)
		return 0;
	if (d >= 2 && a[d - 2] == '/') {
		if ((t->cidr6 = parse_cidr(a + d, *n - d, 128)) == -1)
			return -1;
		*n = d - 2;
		if ((d = trailing_cidr(a, *n)) == *n)
			return 0;
		if (d >= 2 && a[d - 2] == '/')
			return -1;	/* "//n//m" */
	}
	if ((t->cidr4 = parse_cidr(a + d, *n - d, 32)) == -1)
		return -1;
	*n = d - 1;
	return 0;
}

/* [ ":" domain-spec ], required or not. */
static int
parse_target(struct spf_term *t, const char *a, size_t n, int required, char *err, size_t errlen)
{
	if (n == 0 && !required)
		return 0;
	if (n == 0 || a[0] != ':') {
		seterr(err, errlen, "bad mechanism", t->text, t->textlen);
		return -1;
	}
	t->spec = a + 1;
	t->speclen = n - 1;
	return spf_domain_spec_check(t->spec, t->speclen, err, errlen);
}

static const struct {
	const char        *name;
	enum spf_term_type type;
} mechanisms[] = {
	{ "all", SPF_T_ALL }, { "include", SPF_T_INCLUDE }, { "a", SPF_T_A },
	{ "mx", SPF_T_MX }, { "ptr", SPF_T_PTR }, { "ip4", SPF_T_IP4 },
	{ "ip6", SPF_T_IP6 }, { "exists", SPF_T_EXISTS },
};

static int
parse_mechanism(struct spf_term *t, const char *s, size_t n, char *err, size_t errlen)
{
	size_t i, k, rest;

	t->qualifier = SPF_PASS;
	if (n > 0 && strchr("+-~?", s[0]) != NULL && s[0] != '\0') {
		t->qualifier = s[0] == '-' ? SPF_FAIL : s[0] == '~' ? SPF_SOFTFAIL :
		    s[0] == '?' ? SPF_NEUTRAL : SPF_PASS;
		s++, n--;
	}
	for (k = 0; k < n && s[k] != ':' && s[k] != '/'; k++)
		;
	for (i = 0; i < sizeof(mechanisms) / sizeof(mechanisms[0]); i++)
		if (strlen(mechanisms[i].name) == k && strncasecmp(s, mechanisms[i].name, k) == 0)
			break;
	if (i == sizeof(mechanisms) / sizeof(mechanisms[0])) {
		seterr(err, errlen, "unknown mechanism", t->text, t->textlen);
		return -1;
	}
	t->type = mechanisms[i].type;
	s += k, rest = n - k;
	switch (t->type) {
	case SPF_T_ALL:
		if (rest == 0)
			return 0;
		seterr(err, errlen, "bad mechanism", t->text, t->textlen);
		return -1;
	case SPF_T_INCLUDE:
	case SPF_T_EXISTS:
		return parse_target(t, s, rest, 1, err, errlen);
	case SPF_T_PTR:
		return parse_target(t, s, rest, 0, err, errlen);
	case SPF_T_A:
	case SPF_T_MX:
		if (strip_dual_cidr(t, s, &rest) == -1) {
			seterr(err, errlen, "bad CIDR length in", t->text, t->textlen);
			return -1;
		}
		return parse_target(t, s, rest, 0, err, errlen);
	default:
		return parse_ipnet(t, s, rest, err, errlen);
	}
}

/* name "=" value, name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." );
 * returns 1 if the term is a modifier, 0 if not, -1 on error. */
static int
parse_modifier(struct spf_term *t, const char *s, size_t n, char *err, size_t errlen)
{
	size_t k;

	if (n == 0 || !is_alpha(s[0]))
		return 0;
	for (k = 1; k < n && (is_alpha(s[k]) || is_digit(s[k]) || strchr("-_.", s[k]) != NULL) &&
	    s[k] != '\0'; k++)
		;
	if (k == n || s[k] != '=')
		return 0;
	t->spec = s + k + 1;
	t->speclen = n - k - 1;
	if (k == 8 && strncasecmp(s, "redirect", 8) == 0)
		t->type = SPF_T_REDIRECT;
	else if (k == 3 && strncasecmp(s, "exp", 3) == 0)
		t->type = SPF_T_EXP;
	else {
		/* unknown-modifier = name "=" macro-string: checked, then ignored */
		t->type = SPF_T_MODIFIER;
		return check_macro(t->spec, t->speclen, 0, 1, err, errlen) == -1 ? -1 : 1;
	}
	return spf_domain_spec_check(t->spec, t->speclen, err, errlen) == -1 ? -1 : 1;
}

int
spf_record_next(struct spf_record_iter *it, struct spf_term *t, char *err, size_t errlen)
{
	size_t start, n;
	int m;

	/* terms are separated by one or more SP (4.6.1); trailing SP is fine */
	while (it->pos < it->len && it->rec[it->pos] == ' ')
		it->pos++;
	if (it->pos >= it->len)
		return 0;
	start = it->pos;
	while (it->pos < it->len && it->rec[it->pos] != ' ')
		it->pos++;
	n = it->pos - start;
	memset(t, 0, sizeof(*t));
	t->text = it->rec + start;
	t->textlen = n;
	t->cidr4 = 32;
	t->cidr6 = 128;
	t->qualifier = SPF_NEUTRAL;
	if ((m = parse_modifier(t, t->text, n, err, errlen)) != 0)
		return m;
	return parse_mechanism(t, t->text, n, err, errlen) == -1 ? -1 : 1;
}

int
spf_record_check(const char *rec, size_t len, struct spf_term *redirect,
    struct spf_term *exp, char *err, size_t errlen)
{
	struct spf_term t, red, ex;
	struct spf_record_iter it;
	size_t i;
	int r;

	memset(&red, 0, sizeof(red));
	memset(&ex, 0, sizeof(ex));
	for (i = 0; i < len; i++)
		if ((unsigned char)rec[i] >= 0x80) {
			seterr(err, errlen, "non-ASCII byte in the record (3.1)", NULL, 0);
			return -1;
		}
	if (spf_record_begin(&it, rec, len) == -1) {
		seterr(err, errlen, "not an SPF record", NULL, 0);
		return -1;
	}
	while ((r = spf_record_next(&it, &t, err, errlen)) == 1) {
		struct spf_term *slot = t.type == SPF_T_REDIRECT ? &red :
		    t.type == SPF_T_EXP ? &ex : NULL;

		if (slot == NULL)
			continue;
		if (slot->spec != NULL) {
			/* 6: redirect and exp MUST NOT appear more than once */
			seterr(err, errlen, "modifier given twice:", t.text, t.textlen);
			return -1;
		}
		*slot = t;
	}
	if (r == -1)
		return -1;
	if (redirect)
		*redirect = red;
	if (exp)
		*exp = ex;
	return 0;
}
