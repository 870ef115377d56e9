/* dmarc — DMARC policy records, discovery, alignment (see dmarc.h). */
#include "mailauth/dmarc.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mailauth/orgdomain.h"

#define DMARC_RI_DEFAULT 86400

struct span {
	const char *p;
	size_t      n;
};

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
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

static struct span
trim(const char *p, size_t n)
{
	struct span s;

	while (n > 0 && is_wsp(*p)) {
		p++;
		n--;
	}
	while (n > 0 && is_wsp(p[n - 1]))
		n--;
	s.p = p;
	s.n = n;
	return s;
}

static int
span_ieq(struct span s, const char *word)
{
	size_t n = strlen(word);

	return s.n == n && strncasecmp(s.p, word, n) == 0;
}

static void
say(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
say(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/*
 * Tag lists (RFC 7489 6.4, the DKIM form of RFC 6376 3.2 without FWS):
 * tag *WSP "=" *WSP value, separated by *WSP ";" *WSP.
 * Not taglist.h: that parser refuses the whole list on one bad entry, where
 * 6.3 wants a bad part discarded and the rest used. XXX: share it once
 * taglist offers a lenient mode.
 * Takes the next segment from *pos; 1 = a tag in name/value, 0 = end,
 * -1 = a segment that is not tag=value (skipped by the caller).
 */
static int
next_tag(const char *s, size_t len, size_t *pos, struct span *name, struct span *value)
{
	struct span seg;
	size_t i, end;

	for (;;) {
		if (*pos >= len)
			return 0;
		for (end = *pos; end < len && s[end] != ';'; end++)
			;
		seg = trim(s + *pos, end - *pos);
		*pos = end < len ? end + 1 : end;
		if (seg.n > 0)
			break;	/* empty segments: ";;" or a final ";" */
	}
	for (i = 0; i < seg.n && seg.p[i] != '='; i++)
		;
	if (i == seg.n)
		return -1;
	*name = trim(seg.p, i);
	*value = trim(seg.p + i + 1, seg.n - i - 1);
	if (name->n == 0 || !is_alpha(name->p[0]))
		return -1;
	for (i = 1; i < name->n; i++)
		if (!is_alpha(name->p[i]) && !is_digit(name->p[i]) && name->p[i] != '_')
			return -1;
	return 1;
}

static int
parse_policy(struct span v, enum dmarc_policy *out)
{
	if (span_ieq(v, "none"))
		*out = DMARC_POLICY_NONE;
	else if (span_ieq(v, "quarantine"))
		*out = DMARC_POLICY_QUARANTINE;
	else if (span_ieq(v, "reject"))
		*out = DMARC_POLICY_REJECT;
	else
		return -1;
	return 0;
}

static void
parse_align(struct span v, enum dmarc_align *out)
{
	if (span_ieq(v, "s"))
		*out = DMARC_ALIGN_STRICT;
	else if (span_ieq(v, "r"))
		*out = DMARC_ALIGN_RELAXED;
	/* else: invalid, the default stays (6.3) */
}

/* 1*n DIGIT into *out, capped at max; -1 if not all digits or too long. */
static int
parse_uint(struct span v, size_t maxdigits, uint64_t max, uint64_t *out)
{
	uint64_t x = 0;
	size_t i;

	if (v.n == 0 || v.n > maxdigits)
		return -1;
	for (i = 0; i < v.n; i++) {
		if (!is_digit(v.p[i]))
			return -1;
		x = x > max / 10 ? max : x * 10 + (uint64_t)(v.p[i] - '0');
	}
	*out = x > max ? max : x;
	return 0;
}

/* dmarc-uri = URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ] (6.4). */
static int
parse_uri(struct span v, struct dmarc_uri *out)
{
	static const char units[] = "kmgt";
	uint64_t mult = 1, lim = 0;
	struct span num;
	size_t i, bang;
	const char *u;

	/* a final "!size" is the limit; a "!" elsewhere belongs to the URI */
	for (bang = v.n; bang > 0 && v.p[bang - 1] != '!'; bang--)
		;
	if (bang > 0) {
		num.p = v.p + bang;
		num.n = v.n - bang;
		if (num.n > 0 && (u = strchr(units, num.p[num.n - 1] | 0x20)) != NULL) {
			mult = (uint64_t)1 << (10 * (u - units + 1));
			num.n--;
		}
		if (parse_uint(num, 12, UINT64_MAX >> 40, &lim) == 0) {
			lim *= mult;
			v.n = bang - 1;
		}
	}
	/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" (RFC 3986 3.1) */
	if (v.n == 0 || v.n >= DMARC_URI_LEN || !is_alpha(v.p[0]))
		return -1;
	for (i = 1; i < v.n && v.p[i] != ':'; i++)
		if (!is_alpha(v.p[i]) && !is_digit(v.p[i]) && !strchr("+-.", v.p[i]))
			return -1;
	if (i + 1 >= v.n)
		return -1;
	for (i = 0; i < v.n; i++)
		if ((unsigned char)v.p[i] <= ' ' || (unsigned char)v.p[i] >= 0x7f)
			return -1;
	if (v.n > 7 && strncasecmp(v.p, "mailto:", 7) == 0 && !memchr(v.p + 7, '@', v.n - 7))
		return -1;
	memcpy(out->uri, v.p, v.n);
	out->uri[v.n] = '\0';
	out->limit = lim;
	return 0;
}

/* A comma-separated URI list; invalid entries are dropped. */
static void
parse_uri_list(struct span v, struct dmarc_uri *list, size_t *n)
{
	size_t i = 0, j;

	*n = 0;
	while (i <= v.n) {
		for (j = i; j < v.n && v.p[j] != ','; j++)
			;
		if (*n < DMARC_URI_MAX && parse_uri(trim(v.p + i, j - i), &list[*n]) == 0)
			(*n)++;
		i = j + 1;
	}
}

/* fo and rf: colon-separated words; -1 on any word it does not know. */
static int
parse_colon_list(struct span v, const char *const *words, unsigned *bits)
{
	size_t i = 0, j, k;
	struct span w;

	*bits = 0;
	while (i <= v.n) {
		for (j = i; j < v.n && v.p[j] != ':'; j++)
			;
		w = trim(v.p + i, j - i);
		for (k = 0; words[k] != NULL && !span_ieq(w, words[k]); k++)
			;
		if (words[k] == NULL)
			return -1;
		*bits |= 1u << k;
		i = j + 1;
	}
	return 0;
}

static void
record_defaults(struct dmarc_record *r)
{
	memset(r, 0, sizeof(*r));
	r->pct = 100;
	r->fo = DMARC_FO_0;
	r->rf_afrf = 1;
	r->ri = DMARC_RI_DEFAULT;
}

/* Applies one tag; *bad notes an invalid p or sp (6.6.3 step 6). The first p/sp wins. */
static void
record_tag(struct dmarc_record *r, struct span name, struct span v, int *have_p,
    int *have_sp, int *bad)
{
	static const char *const fo_words[] = { "0", "1", "d", "s", NULL };
	static const char *const rf_words[] = { "afrf", NULL };
	uint64_t x;
	unsigned bits;

	if (span_ieq(name, "p")) {
		if (!*have_p && parse_policy(v, &r->p) == -1)
			*bad = 1;
		*have_p = 1;
	} else if (span_ieq(name, "sp")) {
		if (!*have_sp && parse_policy(v, &r->sp) == -1)
			*bad = 1;
		*have_sp = 1;
	} else if (span_ieq(name, "adkim")) {
		parse_align(v, &r->adkim);
	} else if (span_ieq(name, "aspf")) {
		parse_align(v, &r->aspf);
	} else if (span_ieq(name, "pct")) {
		if (parse_uint(v, 3, 1000, &x) == 0 && x <= 100)
			r->pct = (int)x;
	} else if (span_ieq(name, "rua")) {
		parse_uri_list(v, r->rua, &r->nrua);
	} else if (span_ieq(name, "ruf")) {
		parse_uri_list(v, r->ruf, &r->nruf);
	} else if (span_ieq(name, "fo")) {
		if (parse_colon_list(v, fo_words, &bits) == 0)
			r->fo = bits;
	} else if (span_ieq(name, "rf")) {
		if (parse_colon_list(v, rf_words, &bits) == 0)
			r->rf_afrf = 1;
	} else if (span_ieq(name, "ri")) {
		if (parse_uint(v, 32, UINT32_MAX, &x) == 0)
			r->ri = (uint32_t)x;
	}
	/* unknown tags are ignored (6.3) */
}

/* 6.6.3 step 6: no valid p, or an invalid sp. */
static enum dmarc_rec_status
record_fallback(struct dmarc_record *r, char *why, size_t whylen)
{
	struct dmarc_record keep = *r;

	if (keep.nrua == 0) {
		say(why, whylen, "DMARC1 record without a valid p= or sp= and no valid rua=");
		return DMARC_REC_UNUSABLE;
	}
	/* act as if "v=DMARC1; p=none" was published, keeping its rua */
	record_defaults(r);
	memcpy(r->rua, keep.rua, sizeof(r->rua));
	r->nrua = keep.nrua;
	r->p_fallback = 1;
	return DMARC_REC_OK;
}

enum dmarc_rec_status
dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *out,
    char *why, size_t whylen)
{
	struct span name, value;
	size_t pos = 0;
	int rc, have_p = 0, have_sp = 0, bad = 0;

	record_defaults(out);
	/* v=DMARC1 must be the first tag; "DMARC1" is case-sensitive (6.4) */
	if (next_tag(txt, len, &pos, &name, &value) != 1 || !span_ieq(name, "v") ||
	    value.n != 6 || memcmp(value.p, "DMARC1", 6) != 0) {
		say(why, whylen, "not a DMARC1 record");
		return DMARC_REC_NOT_DMARC;
	}
	while ((rc = next_tag(txt, len, &pos, &name, &value)) != 0)
		if (rc == 1)
			record_tag(out, name, value, &have_p, &have_sp, &bad);
	if (!have_sp)
		out->sp = out->p;
	if (!have_p || bad)
		return record_fallback(out, why, whylen);
	return DMARC_REC_OK;
}

/* ---- policy discovery (6.6.3) ---- */

enum lookup {
	LOOKUP_FOUND,	/* one DMARC record: *rec, *status */
	LOOKUP_NONE,	/* no DMARC record at that name */
	LOOKUP_MULTI,	/* several: DMARC does not apply */
	LOOKUP_TEMP,
	LOOKUP_NOMEM,
};

static enum lookup
lookup(const struct dns_resolver *r, const char *domain, struct dmarc_outcome *out,
    enum dmarc_rec_status *status)
{
	struct dmarc_record *rec = &out->record;
	char *why = out->reason;
	size_t whylen = sizeof(out->reason);
	char qname[DNS_NAME_MAX + 1];
	struct dmarc_record tmp;
	struct dns_answer a;
	enum dmarc_rec_status st;
	size_t i, found = 0;
	int n;

	n = snprintf(qname, sizeof(qname), "_dmarc.%s", domain);
	if (n < 0 || (size_t)n > DNS_NAME_MAX - 2)
		return LOOKUP_NONE;
	if (dns_query(r, qname, DNS_T_TXT, &a) == -1)
		return LOOKUP_NOMEM;
	if (a.status == DNS_TEMPFAIL) {
		dns_answer_free(&a);
		say(why, whylen, "DNS temporary failure for %s", qname);
		return LOOKUP_TEMP;
	}
	for (i = 0; a.status == DNS_OK && i < a.n; i++) {
		if (a.rrs[i].type != DNS_T_TXT)
			continue;
		st = dmarc_record_parse(a.rrs[i].data, a.rrs[i].len, &tmp, why, whylen);
		if (st == DMARC_REC_NOT_DMARC)
			continue;	/* step 2: discarded */
		if (found++ == 0) {
			*rec = tmp;
			*status = st;
			snprintf(out->record_txt, sizeof(out->record_txt), "%.*s",
			    (int)a.rrs[i].len, (const char *)a.rrs[i].data);
		}
	}
	dns_answer_free(&a);
	if (found > 1)
		say(why, whylen, "%zu DMARC records at %s", found, qname);
	return found == 0 ? LOOKUP_NONE : found == 1 ? LOOKUP_FOUND : LOOKUP_MULTI;
}

/* ---- alignment (3.1) ---- */

static int
aligned(const struct orgdomain *od, const char *id, const char *from, enum dmarc_align mode)
{
	size_t il, fl;

	if (id == NULL)
		return 0;
	il = strlen(id);
	fl = strlen(from);
	if (il > 0 && id[il - 1] == '.')
		il--;
	if (il == fl && strncasecmp(id, from, fl) == 0)
		return 1;
	return mode == DMARC_ALIGN_RELAXED && orgdomain_same(od, id, il, from, fl);
}

static void
align_all(const struct orgdomain *od, const struct dmarc_input *in,
    const struct dmarc_record *rec, struct dmarc_outcome *out)
{
	size_t i;

	out->spf_aligned = in->spf_result == DMARC_AUTH_PASS &&
	    aligned(od, in->spf_domain, out->header_from, rec->aspf);
	for (i = 0; i < in->ndkim; i++) {
		if (in->dkim[i].result != DMARC_AUTH_PASS ||
		    !aligned(od, in->dkim[i].d, out->header_from, rec->adkim))
			continue;
		if (i < 32)
			out->dkim_aligned_set |= (uint32_t)1 << i;
		if (out->dkim_aligned)
			continue;
		out->dkim_aligned = 1;
		snprintf(out->dkim_domain, sizeof(out->dkim_domain), "%s", in->dkim[i].d);
	}
}

/* Lower-cases a From domain into out; -1 if it is no usable name. */
static int
norm_domain(const char *d, char *out, size_t outlen)
{
	size_t n, i;

	if (d == NULL)
		return -1;
	n = strlen(d);
	if (n > 0 && d[n - 1] == '.')
		n--;
	if (n == 0 || n > DNS_NAME_MAX - 2 || n >= outlen)
		return -1;
	for (i = 0; i < n; i++) {
		if ((unsigned char)d[i] <= ' ' || d[i] == ';')
			return -1;
		out[i] = (d[i] >= 'A' && d[i] <= 'Z') ? (char)(d[i] - 'A' + 'a') : d[i];
	}
	out[n] = '\0';
	return 0;
}

static void
apply_policy(const struct dmarc_input *in, int at_org, struct dmarc_outcome *out)
{
	const struct dmarc_record *rec = &out->record;

	/* sp= governs subdomains found through the Organizational Domain (6.3) */
	out->at_org = at_org;
	out->policy = at_org ? rec->sp : rec->p;
	out->result = out->spf_aligned || out->dkim_aligned ? DMARC_RESULT_PASS :
	    DMARC_RESULT_FAIL;
	out->disposition = DMARC_POLICY_NONE;
	if (out->result != DMARC_RESULT_FAIL)
		return;
	out->disposition = out->policy;
	/* 6.6.4: a message pct= leaves out gets the next less strict policy */
	if ((int)in->pct_roll >= rec->pct && out->policy != DMARC_POLICY_NONE) {
		out->sampled_out = 1;
		out->disposition = out->policy - 1;
	}
}

static void
describe(const struct dmarc_input *in, struct dmarc_outcome *out)
{
	snprintf(out->reason, sizeof(out->reason),
	    "record at _dmarc.%s%s: policy %s, disposition %s%s; spf %s %s; dkim %s%s",
	    out->policy_domain, out->record.p_fallback ? " (invalid p/sp, as p=none)" : "",
	    dmarc_policy_str(out->policy), dmarc_policy_str(out->disposition),
	    out->sampled_out ? " (pct sampled out)" : "",
	    in->spf_domain ? in->spf_domain : "-",
	    out->spf_aligned ? "aligned" : "not aligned or not pass",
	    out->dkim_aligned ? "aligned d=" : "no aligned passing signature",
	    out->dkim_aligned ? out->dkim_domain : "");
}

/* Steps 1-4 of 6.6.3: the From domain, then its Organizational Domain. */
static enum lookup
discover(const struct dns_resolver *r, const struct orgdomain *od,
    struct dmarc_outcome *out, enum dmarc_rec_status *st, int *at_org)
{
	char org[DNS_NAME_MAX + 1];
	enum lookup lk;

	*at_org = 0;
	snprintf(out->policy_domain, sizeof(out->policy_domain), "%s", out->header_from);
	lk = lookup(r, out->header_from, out, st);
	if (lk != LOOKUP_NONE)
		return lk;
	if (orgdomain_get(od, out->header_from, strlen(out->header_from), org, sizeof(org)) == -1 ||
	    strcmp(org, out->header_from) == 0)
		return LOOKUP_NONE;
	*at_org = 1;
	snprintf(out->policy_domain, sizeof(out->policy_domain), "%s", org);
	return lookup(r, org, out, st);
}

int
dmarc_evaluate(const struct dns_resolver *r, const struct orgdomain *od,
    const struct dmarc_input *in, struct dmarc_outcome *out)
{
	enum dmarc_rec_status st = DMARC_REC_OK;
	enum lookup lk;
	int at_org;

	memset(out, 0, sizeof(*out));
	record_defaults(&out->record);
	if (norm_domain(in->from_domain, out->header_from, sizeof(out->header_from)) == -1) {
		out->result = DMARC_RESULT_PERMERROR;
		snprintf(out->reason, sizeof(out->reason), "unusable From domain");
		return 0;
	}
	lk = discover(r, od, out, &st, &at_org);
	if (lk == LOOKUP_FOUND && st == DMARC_REC_OK) {
		align_all(od, in, &out->record, out);
		apply_policy(in, at_org, out);
		describe(in, out);
		return 0;
	}
	out->policy_domain[0] = '\0';
	out->record_txt[0] = '\0';
	record_defaults(&out->record);
	align_all(od, in, &out->record, out);	/* for reports: relaxed defaults */
	out->result = lk == LOOKUP_TEMP || lk == LOOKUP_NOMEM ? DMARC_RESULT_TEMPERROR :
	    DMARC_RESULT_NONE;
	if (lk == LOOKUP_NONE)
		snprintf(out->reason, sizeof(out->reason), "no DMARC record for %s",
		    out->header_from);
	return lk == LOOKUP_NOMEM ? -1 : 0;
}

const char *
dmarc_result_str(enum dmarc_result r)
{
	switch (r) {
	case DMARC_RESULT_PASS:		return "pass";
	case DMARC_RESULT_FAIL:		return "fail";
	case DMARC_RESULT_TEMPERROR:	return "temperror";
	case DMARC_RESULT_PERMERROR:	return "permerror";
	case DMARC_RESULT_NONE:		break;
	}
	return "none";
}

const char *
dmarc_policy_str(enum dmarc_policy p)
{
	switch (p) {
	case DMARC_POLICY_QUARANTINE:	return "quarantine";
	case DMARC_POLICY_REJECT:	return "reject";
	case DMARC_POLICY_NONE:		break;
	}
	return "none";
}

enum dmarc_auth
dmarc_auth_from_str(const char *s)
{
	static const char *const names[] = { "none", "pass", "fail", "softfail",
	    "neutral", "policy", "temperror", "permerror" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(s, names[i]) == 0)
			return (enum dmarc_auth)i;
	return DMARC_AUTH_NONE;
}

/* ---- RFC5322.From (RFC 5322 3.4, 3.6.2, 4.4) ---- */

enum tok {
	TOK_END, TOK_ERR, TOK_WORD, TOK_QSTR, TOK_DLIT, TOK_SPECIAL,
};

struct lexer {
	const char *s;
	size_t      len, pos;
	struct span tok;	/* the token's bytes (a special: its one byte) */
};

static int
is_atext(unsigned char c)
{
	/* RFC 5322 3.2.3, plus UTF-8 bytes (RFC 6532 3.2) */
	return is_alpha((char)c) || is_digit((char)c) || c >= 0x80 ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Skips CFWS: blanks, folding CR/LF and nested comments; -1 if unclosed. */
static int
skip_cfws(struct lexer *lx)
{
	size_t depth = 0;
	char c;

	for (; lx->pos < lx->len; lx->pos++) {
		c = lx->s[lx->pos];
		if (depth > 0 && c == '\\' && lx->pos + 1 < lx->len)
			lx->pos++;
		else if (c == '(')
			depth++;
		else if (c == ')' && depth > 0)
			depth--;
		else if (depth == 0 && !is_wsp(c) && c != '\r' && c != '\n')
			return 0;
	}
	return depth == 0 ? 0 : -1;
}

/* Scans to the closing quote or bracket; -1 if there is none. */
static int
skip_delimited(struct lexer *lx, char close)
{
	for (lx->pos++; lx->pos < lx->len; lx->pos++) {
		if (lx->s[lx->pos] == '\\')
			lx->pos++;
		else if (lx->s[lx->pos] == close) {
			lx->pos++;
			return 0;
		}
	}
	return -1;
}

static enum tok
lex(struct lexer *lx)
{
	size_t start;
	char c;

	if (skip_cfws(lx) == -1)
		return TOK_ERR;
	if (lx->pos >= lx->len)
		return TOK_END;
	start = lx->pos;
	lx->tok.p = lx->s + start;
	c = lx->s[start];
	if (c == '"' || c == '[') {
		if (skip_delimited(lx, c == '"' ? '"' : ']') == -1)
			return TOK_ERR;
		lx->tok.n = lx->pos - start;
		return c == '"' ? TOK_QSTR : TOK_DLIT;
	}
	if (c != '\0' && strchr("<>:;,@.", c) != NULL) {
		lx->pos++;
		lx->tok.n = 1;
		return TOK_SPECIAL;
	}
	while (lx->pos < lx->len && is_atext((unsigned char)lx->s[lx->pos]))
		lx->pos++;
	lx->tok.n = lx->pos - start;
	return lx->tok.n > 0 ? TOK_WORD : TOK_ERR;
}

/* One address being read: the local part, then the domain after "@". */
struct addr {
	int    words;		/* words before "@" */
	int    phrase;		/* two words without a dot: a display name */
	int    last_word;	/* the previous token was a word */
	int    at;		/* saw "@" */
	int    angle;		/* inside <> */
	int    closed;		/* an angle-addr was completed */
	int    empty;		/* no token yet */
	char   dom[DNS_NAME_MAX + 1];
	size_t dlen;
};

static void
addr_reset(struct addr *a)
{
	memset(a, 0, sizeof(*a));
	a->empty = 1;
}

/* The addr-spec inside <> or after a display name starts afresh. */
static void
addr_restart(struct addr *a)
{
	a->words = a->phrase = a->last_word = a->at = 0;
	a->dlen = 0;
}

static int
add_domain(struct dmarc_from *f, const struct addr *a)
{
	char d[DNS_NAME_MAX + 1];
	size_t i;

	if (a->dlen == 0 || a->dom[0] == '.' || a->dom[a->dlen - 1] == '.' ||
	    strstr(a->dom, "..") != NULL)
		return DMARC_FROM_SYNTAX;
	for (i = 0; i <= a->dlen; i++)
		d[i] = (a->dom[i] >= 'A' && a->dom[i] <= 'Z') ? (char)(a->dom[i] + 32) : a->dom[i];
	f->naddrs++;
	for (i = 0; i < f->ndomains; i++)
		if (strcmp(f->domains[i], d) == 0)
			return DMARC_FROM_OK;
	if (f->ndomains == DMARC_FROM_MAX)
		return DMARC_FROM_TOO_MANY;
	memcpy(f->domains[f->ndomains++], d, a->dlen + 1);
	return DMARC_FROM_OK;
}

/* Ends one address at "," ";" or the end; an empty one is skipped (4.4). */
static int
addr_finish(struct dmarc_from *f, struct addr *a)
{
	int rc = DMARC_FROM_OK;

	if (!a->empty) {
		if (a->angle || a->words == 0 || a->phrase || !a->at)
			rc = DMARC_FROM_SYNTAX;
		else
			rc = add_domain(f, a);
	}
	addr_reset(a);
	return rc;
}

static int
addr_word(struct addr *a, enum tok t, struct span w)
{
	if (a->closed)
		return -1;	/* words after <...> */
	if (!a->at) {
		a->phrase |= a->last_word;
		a->words++;
		a->last_word = 1;
		return 0;
	}
	if (t != TOK_WORD || a->last_word || a->dlen + w.n >= sizeof(a->dom))
		return -1;	/* a quoted string, or two words, as domain */
	a->last_word = 1;
	memcpy(a->dom + a->dlen, w.p, w.n);
	a->dlen += w.n;
	a->dom[a->dlen] = '\0';
	return 0;
}

/* Specials inside or outside <>; *group tracks "display-name:" ... ";". */
static int
addr_special(struct dmarc_from *f, struct addr *a, char c, int *group)
{
	a->last_word = 0;
	if (c == '.' || c == '@' || c == '<' || c == '>')
		a->empty = 0;
	switch (c) {
	case '.':
		if (a->at) {
			if (a->dlen + 1 >= sizeof(a->dom))
				return DMARC_FROM_SYNTAX;
			a->dom[a->dlen++] = '.';
			a->dom[a->dlen] = '\0';
		}
		return 0;
	case '@':
		if (a->at || a->closed)
			return DMARC_FROM_SYNTAX;
		a->at = 1;
		return 0;
	case '<':
		if (a->angle || a->closed)
			return DMARC_FROM_SYNTAX;
		a->angle = 1;
		addr_restart(a);	/* what came before was the display name */
		return 0;
	case '>':
		if (!a->angle || a->words == 0 || a->phrase || !a->at)
			return DMARC_FROM_SYNTAX;
		a->angle = 0;
		a->closed = 1;
		return 0;
	}
	if (a->angle) {
		/* obs-route "<@a,@b:user@host>": forget the route */
		if (c == ';' || a->words > 0)
			return DMARC_FROM_SYNTAX;
		addr_restart(a);
		return 0;
	}
	if (c == ':') {
		if (*group || a->at || a->closed)
			return DMARC_FROM_SYNTAX;
		*group = 1;
		addr_reset(a);
		return 0;
	}
	if (c == ';' && !*group)
		return DMARC_FROM_SYNTAX;
	if (c == ';')
		*group = 0;
	return addr_finish(f, a);	/* "," or ";" */
}

static enum dmarc_from_status
parse_address_list(const char *s, size_t len, struct dmarc_from *f)
{
	struct lexer lx = { s, len, 0, { NULL, 0 } };
	struct addr a;
	int group = 0, rc = 0;
	enum tok t;

	addr_reset(&a);
	while (rc == 0 && (t = lex(&lx)) != TOK_END) {
		if (t == TOK_ERR)
			return DMARC_FROM_SYNTAX;
		if (t == TOK_SPECIAL) {
			rc = addr_special(f, &a, lx.tok.p[0], &group);
			continue;
		}
		if (t == TOK_DLIT)
			return DMARC_FROM_SYNTAX;	/* no DNS domain to look up */
		a.empty = 0;
		if (addr_word(&a, t, lx.tok) == -1)
			return DMARC_FROM_SYNTAX;
	}
	if (rc != 0)
		return (enum dmarc_from_status)rc;
	if (group)
		return DMARC_FROM_SYNTAX;	/* group without its ";" */
	if ((rc = addr_finish(f, &a)) != 0)
		return (enum dmarc_from_status)rc;
	return f->naddrs == 0 ? DMARC_FROM_NO_ADDRESS : DMARC_FROM_OK;
}

/* 1 if the field line at s starts with name "From" then ":" (WSP allowed: 4.5). */
static int
is_from_field(const char *s, size_t n, size_t *valoff)
{
	size_t i = 4;

	if (n < 5 || strncasecmp(s, "From", 4) != 0)
		return 0;
	while (i < n && is_wsp(s[i]))
		i++;
	if (i == n || s[i] != ':')
		return 0;
	*valoff = i + 1;
	return 1;
}

enum dmarc_from_status
dmarc_from_domains(const char *hdr, size_t len, struct dmarc_from *out)
{
	size_t pos = 0, eol, n, off, vstart = 0, vend = 0, nfrom = 0;
	int in_from = 0;

	memset(out, 0, sizeof(*out));
	while (pos < len) {
		for (eol = pos; eol < len && hdr[eol] != '\n'; eol++)
			;
		n = eol - pos;
		if (n > 0 && hdr[pos + n - 1] == '\r')
			n--;
		if (n == 0)
			break;	/* the empty line ends the header */
		if (is_wsp(hdr[pos])) {
			if (in_from)
				vend = pos + n;	/* folded continuation */
		} else if ((in_from = is_from_field(hdr + pos, n, &off)) != 0) {
			nfrom++;
			vstart = pos + off;
			vend = pos + n;
		}
		pos = eol + 1;
	}
	if (nfrom == 0)
		return DMARC_FROM_NO_FIELD;
	if (nfrom > 1)
		return DMARC_FROM_MULTI_FIELD;
	return parse_address_list(hdr + vstart, vend - vstart, out);
}

/* Worse outcomes rank higher: fail (by disposition) > temperror > none > pass. */
static int
rank(const struct dmarc_outcome *o)
{
	switch (o->result) {
	case DMARC_RESULT_FAIL:		return 10 + (int)o->disposition;
	case DMARC_RESULT_PERMERROR:	return 9;
	case DMARC_RESULT_TEMPERROR:	return 3;
	case DMARC_RESULT_NONE:		return 2;
	case DMARC_RESULT_PASS:		break;
	}
	return 1;
}

static const char *
from_status_str(enum dmarc_from_status st)
{
	switch (st) {
	case DMARC_FROM_NO_FIELD:	return "no From field";
	case DMARC_FROM_MULTI_FIELD:	return "several From fields";
	case DMARC_FROM_NO_ADDRESS:	return "From field without an address";
	case DMARC_FROM_SYNTAX:		return "unparsable From field";
	case DMARC_FROM_TOO_MANY:	return "too many From domains";
	case DMARC_FROM_OK:		break;
	}
	return "ok";
}

int
dmarc_check_message(const struct dns_resolver *r, const struct orgdomain *od,
    const char *hdr, size_t len, const struct dmarc_input *in,
    struct dmarc_outcome *out)
{
	struct dmarc_outcome one;
	struct dmarc_input each = *in;
	struct dmarc_from from;
	enum dmarc_from_status st;
	size_t i;

	memset(out, 0, sizeof(*out));
	record_defaults(&out->record);
	if ((st = dmarc_from_domains(hdr, len, &from)) != DMARC_FROM_OK) {
		/* 6.6.1: such messages are invalid (RFC 5322 3.6): permerror */
		out->result = DMARC_RESULT_PERMERROR;
		snprintf(out->reason, sizeof(out->reason), "%s", from_status_str(st));
		return 0;
	}
	for (i = 0; i < from.ndomains; i++) {
		each.from_domain = from.domains[i];
		if (dmarc_evaluate(r, od, &each, &one) == -1)
			return -1;
		if (i == 0 || rank(&one) > rank(out))
			*out = one;
	}
	return 0;
}
