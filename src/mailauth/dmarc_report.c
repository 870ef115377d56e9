/* dmarc_report — aggregate report records, aggregation and XML (see dmarc_report.h). */
#include "mailauth/dmarc_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NFIELDS 17

static const char *const policies[] = { "none", "quarantine", "reject" };
static const char *const dkim_results[] = { "none", "pass", "fail", "policy", "neutral",
	"temperror", "permerror" };
static const char *const spf_results[] = { "none", "neutral", "pass", "fail", "softfail",
	"temperror", "permerror" };

/* A token that survives the line format and XML text: printable ASCII, no separators. */
static int
token_ok(const char *s, size_t n, size_t max, int allow_empty)
{
	size_t i;

	if ((n == 0 && !allow_empty) || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] > '~' ||
		    strchr(",/<>&\"'", s[i]) != NULL)
			return 0;
	return 1;
}

static int
word_index(const char *s, size_t n, const char *const *words, size_t nwords)
{
	size_t i;

	for (i = 0; i < nwords; i++)
		if (strlen(words[i]) == n && memcmp(words[i], s, n) == 0)
			return (int)i;
	return -1;
}

static int
take(const char *s, size_t n, char *out, size_t outsz, int allow_empty)
{
	if (!token_ok(s, n, outsz - 1, allow_empty))
		return -1;
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

int
drep_rua_address(const char *uri, char *out, size_t outsz)
{
	const char *a;
	size_t n;

	if (strncasecmp(uri, "mailto:", 7) != 0)
		return -1;
	a = uri + 7;
	n = strcspn(a, "!");	/* the size limit (6.2) does not matter here */
	if (memchr(a, '%', n) || memchr(a, '?', n) || n >= outsz || n > DREP_ADDR_MAX ||
	    !token_ok(a, n, DREP_ADDR_MAX, 0) || memchr(a, '@', n) == NULL)
		return -1;
	memcpy(out, a, n);
	out[n] = '\0';
	return 0;
}

/* An address listed twice would be counted twice in its report. */
static int
rua_dup(const struct drep_record *r, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(r->rua[i], r->rua[n]) == 0)
			return 1;
	return 0;
}

static int
put(char *out, size_t outsz, size_t *off, const char *s, char sep)
{
	size_t n = strlen(s);

	if (*off + n + 2 > outsz)
		return -1;
	memcpy(out + *off, s, n);
	*off += n;
	out[(*off)++] = sep;
	out[*off] = '\0';
	return 0;
}

/* Every field of r, checked, or -1: a line must parse back to the same record. */
static int
record_ok(const struct drep_record *r)
{
	size_t i;

	if (!token_ok(r->ip, strlen(r->ip), sizeof(r->ip) - 1, 0) ||
	    !token_ok(r->header_from, strlen(r->header_from), DNS_NAME_MAX, 0) ||
	    !token_ok(r->policy_domain, strlen(r->policy_domain), DNS_NAME_MAX, 0) ||
	    !token_ok(r->spf_domain, strlen(r->spf_domain), DNS_NAME_MAX, 1) ||
	    r->nrua == 0 || r->nrua > DREP_RUA_MAX || r->ndkim > DREP_DKIM_MAX ||
	    (unsigned)r->p > 2 || (unsigned)r->sp > 2 || (unsigned)r->disposition > 2 ||
	    r->pct > 100 || word_index(r->spf_result, strlen(r->spf_result), spf_results, 7) < 0)
		return -1;
	for (i = 0; i < r->nrua; i++)
		if (!token_ok(r->rua[i], strlen(r->rua[i]), DREP_ADDR_MAX, 0) || rua_dup(r, i))
			return -1;
	for (i = 0; i < r->ndkim; i++)
		if (!token_ok(r->dkim[i].domain, strlen(r->dkim[i].domain), DNS_NAME_MAX, 0) ||
		    !token_ok(r->dkim[i].selector, strlen(r->dkim[i].selector), 63, 0) ||
		    word_index(r->dkim[i].result, strlen(r->dkim[i].result), dkim_results, 7) < 0)
			return -1;
	return 0;
}

int
drep_line_format(const struct drep_record *r, char *out, size_t outsz)
{
	char num[16];
	size_t off = 0, i;
	int bad;

	if (outsz == 0 || record_ok(r) == -1)
		return -1;
	out[0] = '\0';
	snprintf(num, sizeof(num), "%u", r->pct);
	bad = put(out, outsz, &off, "1", '\t') || put(out, outsz, &off, r->ip, '\t') ||
	    put(out, outsz, &off, r->header_from, '\t') ||
	    put(out, outsz, &off, r->policy_domain, '\t') ||
	    put(out, outsz, &off, r->adkim == DMARC_ALIGN_STRICT ? "s" : "r", '\t') ||
	    put(out, outsz, &off, r->aspf == DMARC_ALIGN_STRICT ? "s" : "r", '\t') ||
	    put(out, outsz, &off, policies[r->p], '\t') || put(out, outsz, &off, policies[r->sp], '\t') ||
	    put(out, outsz, &off, num, '\t') || put(out, outsz, &off, policies[r->disposition], '\t') ||
	    put(out, outsz, &off, r->dkim_aligned ? "pass" : "fail", '\t') ||
	    put(out, outsz, &off, r->spf_aligned ? "pass" : "fail", '\t') ||
	    put(out, outsz, &off, r->spf_domain, '\t') ||
	    put(out, outsz, &off, r->spf_helo ? "helo" : "mfrom", '\t') ||
	    put(out, outsz, &off, r->spf_result, '\t');
	for (i = 0; !bad && i < r->nrua; i++)
		bad = put(out, outsz, &off, r->rua[i], i + 1 < r->nrua ? ',' : '\t');
	if (!bad && r->ndkim == 0)
		bad = put(out, outsz, &off, "-", '\n');
	for (i = 0; !bad && i < r->ndkim; i++)
		bad = put(out, outsz, &off, r->dkim[i].domain, '/') ||
		    put(out, outsz, &off, r->dkim[i].selector, '/') ||
		    put(out, outsz, &off, r->dkim[i].result, i + 1 < r->ndkim ? ',' : '\n');
	if (bad || off > DREP_LINE_MAX)
		return -1;
	return (int)off;
}

/* Splits p[0..len) at sep into at most max parts; the count, or -1 for more. */
static int
split(const char *p, size_t len, char sep, const char **part, size_t *plen, size_t max)
{
	size_t n = 0, start = 0, i;

	for (i = 0; i <= len; i++) {
		if (i < len && p[i] != sep)
			continue;
		if (n == max)
			return -1;
		part[n] = p + start;
		plen[n++] = i - start;
		start = i + 1;
	}
	return (int)n;
}

static int
parse_pct(const char *s, size_t n, unsigned *out)
{
	size_t i;

	if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))	/* one spelling per value */
		return -1;
	for (*out = 0, i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*out = *out * 10 + (unsigned)(s[i] - '0');
	}
	return *out <= 100 ? 0 : -1;
}

static int
parse_enum(const char *s, size_t n, const char *const *words, size_t nwords, int *out)
{
	return (*out = word_index(s, n, words, nwords)) < 0 ? -1 : 0;
}

static int
parse_dkims(const char *p, size_t len, struct drep_record *out)
{
	const char *sig[DREP_DKIM_MAX], *f[3];
	size_t siglen[DREP_DKIM_MAX], flen[3], i;
	int n, res;

	if (len == 1 && p[0] == '-')
		return 0;
	if ((n = split(p, len, ',', sig, siglen, DREP_DKIM_MAX)) < 0)
		return -1;
	for (i = 0; i < (size_t)n; i++) {
		struct drep_dkim *d = &out->dkim[i];

		if (split(sig[i], siglen[i], '/', f, flen, 3) != 3 ||
		    take(f[0], flen[0], d->domain, sizeof(d->domain), 0) == -1 ||
		    take(f[1], flen[1], d->selector, sizeof(d->selector), 0) == -1 ||
		    parse_enum(f[2], flen[2], dkim_results, 7, &res) == -1)
			return -1;
		memcpy(d->result, f[2], flen[2]);
		d->result[flen[2]] = '\0';
	}
	out->ndkim = (size_t)n;
	return 0;
}

static int
parse_rua(const char *p, size_t len, struct drep_record *out)
{
	const char *a[DREP_RUA_MAX];
	size_t alen[DREP_RUA_MAX], i;
	int n;

	if ((n = split(p, len, ',', a, alen, DREP_RUA_MAX)) < 0)
		return -1;
	for (i = 0; i < (size_t)n; i++)
		if (take(a[i], alen[i], out->rua[i], sizeof(out->rua[i]), 0) == -1 ||
		    memchr(a[i], '@', alen[i]) == NULL || rua_dup(out, i))
			return -1;
	out->nrua = (size_t)n;
	return 0;
}

static int
parse_align(const char *s, size_t n, enum dmarc_align *out)
{
	if (n != 1 || (s[0] != 'r' && s[0] != 's'))
		return -1;
	*out = s[0] == 's' ? DMARC_ALIGN_STRICT : DMARC_ALIGN_RELAXED;
	return 0;
}

int
drep_line_parse(const char *p, size_t len, struct drep_record *out)
{
	static const char *const passfail[] = { "fail", "pass" };
	static const char *const scopes[] = { "mfrom", "helo" };
	const char *f[NFIELDS];
	size_t fl[NFIELDS];
	int p_, sp, disp, res;

	memset(out, 0, sizeof(*out));
	if (len > DREP_LINE_MAX || split(p, len, '\t', f, fl, NFIELDS) != NFIELDS ||
	    fl[0] != 1 || f[0][0] != '1')
		return -1;
	if (take(f[1], fl[1], out->ip, sizeof(out->ip), 0) == -1 ||
	    take(f[2], fl[2], out->header_from, sizeof(out->header_from), 0) == -1 ||
	    take(f[3], fl[3], out->policy_domain, sizeof(out->policy_domain), 0) == -1 ||
	    parse_align(f[4], fl[4], &out->adkim) == -1 ||
	    parse_align(f[5], fl[5], &out->aspf) == -1 ||
	    parse_enum(f[6], fl[6], policies, 3, &p_) == -1 ||
	    parse_enum(f[7], fl[7], policies, 3, &sp) == -1 ||
	    parse_pct(f[8], fl[8], &out->pct) == -1 ||
	    parse_enum(f[9], fl[9], policies, 3, &disp) == -1 ||
	    parse_enum(f[10], fl[10], passfail, 2, &out->dkim_aligned) == -1 ||
	    parse_enum(f[11], fl[11], passfail, 2, &out->spf_aligned) == -1 ||
	    take(f[12], fl[12], out->spf_domain, sizeof(out->spf_domain), 1) == -1 ||
	    parse_enum(f[13], fl[13], scopes, 2, &out->spf_helo) == -1 ||
	    parse_enum(f[14], fl[14], spf_results, 7, &res) == -1 ||
	    parse_rua(f[15], fl[15], out) == -1 || parse_dkims(f[16], fl[16], out) == -1)
		return -1;
	out->p = (enum dmarc_policy)p_;
	out->sp = (enum dmarc_policy)sp;
	out->disposition = (enum dmarc_policy)disp;
	memcpy(out->spf_result, f[14], fl[14]);
	out->spf_result[fl[14]] = '\0';
	return 0;
}

/* ---- aggregation ---- */

void
drep_agg_init(struct drep_agg *a)
{
	memset(a, 0, sizeof(*a));
}

void
drep_agg_free(struct drep_agg *a)
{
	size_t i;

	for (i = 0; i < a->ngroups; i++)
		free(a->groups[i].rows);
	free(a->groups);
	memset(a, 0, sizeof(*a));
}

/* Rows are the same when every reported value is (7.2.1.1: "grouped by ..."). */
static int
same_row(const struct drep_record *x, const struct drep_record *y)
{
	size_t i;

	if (strcmp(x->ip, y->ip) != 0 || strcmp(x->header_from, y->header_from) != 0 ||
	    x->disposition != y->disposition || x->dkim_aligned != y->dkim_aligned ||
	    x->spf_aligned != y->spf_aligned || strcmp(x->spf_domain, y->spf_domain) != 0 ||
	    x->spf_helo != y->spf_helo || strcmp(x->spf_result, y->spf_result) != 0 ||
	    x->ndkim != y->ndkim)
		return 0;
	for (i = 0; i < x->ndkim; i++)
		if (strcmp(x->dkim[i].domain, y->dkim[i].domain) != 0 ||
		    strcmp(x->dkim[i].selector, y->dkim[i].selector) != 0 ||
		    strcmp(x->dkim[i].result, y->dkim[i].result) != 0)
			return 0;
	return 1;
}

static int
grow(void **arr, size_t *cap, size_t n, size_t size)
{
	void *p;
	size_t c;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : 4;
	if ((p = realloc(*arr, c * size)) == NULL)
		return -1;
	*arr = p;
	*cap = c;
	return 0;
}

static struct drep_group *
group_for(struct drep_agg *a, const char *domain, const char *rua)
{
	struct drep_group *g;
	size_t i;

	for (i = 0; i < a->ngroups; i++)
		if (strcasecmp(a->groups[i].policy_domain, domain) == 0 &&
		    strcasecmp(a->groups[i].rua, rua) == 0)
			return &a->groups[i];
	if (grow((void **)&a->groups, &a->cap, a->ngroups, sizeof(*a->groups)) == -1)
		return NULL;
	g = &a->groups[a->ngroups++];
	memset(g, 0, sizeof(*g));
	snprintf(g->policy_domain, sizeof(g->policy_domain), "%s", domain);
	snprintf(g->rua, sizeof(g->rua), "%s", rua);
	return g;
}

static int
add_row(struct drep_agg *a, struct drep_group *g, const struct drep_record *r)
{
	size_t i;

	g->policy = *r;
	for (i = 0; i < g->nrows; i++)
		if (same_row(&g->rows[i].rec, r)) {
			g->rows[i].count++;
			return 0;
		}
	if (a->nrows >= DREP_ROWS_MAX ||
	    grow((void **)&g->rows, &g->cap, g->nrows, sizeof(*g->rows)) == -1)
		return -1;
	g->rows[g->nrows].rec = *r;
	g->rows[g->nrows].rec.nrua = 0;
	g->rows[g->nrows++].count = 1;
	a->nrows++;
	return 0;
}

int
drep_agg_add(struct drep_agg *a, const struct drep_record *r)
{
	struct drep_group *g;
	size_t i;
	int rc = 0;

	for (i = 0; i < r->nrua; i++)
		if ((g = group_for(a, r->policy_domain, r->rua[i])) == NULL || add_row(a, g, r) == -1) {
			a->dropped++;
			rc = -1;
		}
	return rc;
}

/* ---- XML (appendix C) ---- */

/* Text content: tokens are checked, but escape anyway (org_name is free text). */
static int
xml_text(struct buf *out, const char *s)
{
	int r = 0;

	for (; *s && r == 0; s++)
		switch (*s) {
		case '<':	r = buf_appends(out, "&lt;"); break;
		case '>':	r = buf_appends(out, "&gt;"); break;
		case '&':	r = buf_appends(out, "&amp;"); break;
		case '"':	r = buf_appends(out, "&quot;"); break;
		case '\'':	r = buf_appends(out, "&apos;"); break;
		default:	r = buf_appendc(out, *s); break;
		}
	return r;
}

static int
elem(struct buf *out, int indent, const char *name, const char *value)
{
	return buf_printf(out, "%*s<%s>", indent, "", name) == -1 || xml_text(out, value) == -1 ||
	    buf_printf(out, "</%s>\n", name) == -1 ? -1 : 0;
}

static int
xml_metadata(struct buf *out, const struct drep_meta *m)
{
	char b[24], e[24];

	snprintf(b, sizeof(b), "%lld", (long long)m->begin);
	snprintf(e, sizeof(e), "%lld", (long long)m->end);
	return buf_appends(out, "  <report_metadata>\n") || elem(out, 4, "org_name", m->org_name) ||
	    elem(out, 4, "email", m->email) || elem(out, 4, "report_id", m->report_id) ||
	    buf_appends(out, "    <date_range>\n") || elem(out, 6, "begin", b) ||
	    elem(out, 6, "end", e) || buf_appends(out, "    </date_range>\n") ||
	    buf_appends(out, "  </report_metadata>\n") ? -1 : 0;
}

static int
xml_policy(struct buf *out, const struct drep_group *g)
{
	const struct drep_record *p = &g->policy;
	char pct[8];

	snprintf(pct, sizeof(pct), "%u", p->pct);
	return buf_appends(out, "  <policy_published>\n") ||
	    elem(out, 4, "domain", g->policy_domain) ||
	    elem(out, 4, "adkim", p->adkim == DMARC_ALIGN_STRICT ? "s" : "r") ||
	    elem(out, 4, "aspf", p->aspf == DMARC_ALIGN_STRICT ? "s" : "r") ||
	    elem(out, 4, "p", policies[p->p]) || elem(out, 4, "sp", policies[p->sp]) ||
	    elem(out, 4, "pct", pct) || buf_appends(out, "  </policy_published>\n") ? -1 : 0;
}

static int
xml_auth(struct buf *out, const struct drep_record *r)
{
	size_t i;

	if (buf_appends(out, "    <auth_results>\n"))
		return -1;
	for (i = 0; i < r->ndkim; i++)
		if (buf_appends(out, "      <dkim>\n") || elem(out, 8, "domain", r->dkim[i].domain) ||
		    elem(out, 8, "selector", r->dkim[i].selector) ||
		    elem(out, 8, "result", r->dkim[i].result) || buf_appends(out, "      </dkim>\n"))
			return -1;
	return buf_appends(out, "      <spf>\n") || elem(out, 8, "domain", r->spf_domain) ||
	    elem(out, 8, "scope", r->spf_helo ? "helo" : "mfrom") ||
	    elem(out, 8, "result", r->spf_result) || buf_appends(out, "      </spf>\n") ||
	    buf_appends(out, "    </auth_results>\n") ? -1 : 0;
}

static int
xml_row(struct buf *out, const struct drep_row *row)
{
	const struct drep_record *r = &row->rec;
	char n[24];

	snprintf(n, sizeof(n), "%llu", (unsigned long long)row->count);
	return buf_appends(out, "  <record>\n    <row>\n") || elem(out, 6, "source_ip", r->ip) ||
	    elem(out, 6, "count", n) || buf_appends(out, "      <policy_evaluated>\n") ||
	    elem(out, 8, "disposition", policies[r->disposition]) ||
	    elem(out, 8, "dkim", r->dkim_aligned ? "pass" : "fail") ||
	    elem(out, 8, "spf", r->spf_aligned ? "pass" : "fail") ||
	    buf_appends(out, "      </policy_evaluated>\n    </row>\n") ||
	    buf_appends(out, "    <identifiers>\n") || elem(out, 6, "header_from", r->header_from) ||
	    buf_appends(out, "    </identifiers>\n") || xml_auth(out, r) ||
	    buf_appends(out, "  </record>\n") ? -1 : 0;
}

int
drep_xml(const struct drep_group *g, const struct drep_meta *m, struct buf *out)
{
	size_t i;

	if (buf_appends(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n") ||
	    elem(out, 2, "version", "1.0") || xml_metadata(out, m) || xml_policy(out, g))
		return -1;
	for (i = 0; i < g->nrows; i++)
		if (xml_row(out, &g->rows[i]) == -1)
			return -1;
	return buf_appends(out, "</feedback>\n");
}
