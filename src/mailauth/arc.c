/*
 * arc — ARC chain validation and sealing (RFC 8617); see arc.h.
 */
#include "mailauth/arc.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailauth/dkim_canon.h"
#include "mailauth/taglist.h"

#define SIG_MAX 1024	/* decoded b= (8192-bit RSA) */

enum kind { K_AAR, K_AMS, K_AS, K_N };

/* The message split into fields, and the ARC fields by instance. */
struct chain {
	struct dkim_msg m;
	const char     *body;
	size_t          bodylen;
	const unsigned char *bh;	/* ARC_BODY_HASHES: given, or own once computed; NULL: not yet */
	unsigned char   own[ARC_BODY_HASHES];
	size_t          set[ARC_MAX_INSTANCE + 1][K_N];	/* field index + 1; 0: absent */
	unsigned        n;
};

static const char *const kind_name[K_N] = {
	"ARC-Authentication-Results", "ARC-Message-Signature", "ARC-Seal",
};

const char *
arc_cv_str(enum arc_cv cv)
{
	return cv == ARC_PASS ? "pass" : cv == ARC_FAIL ? "fail" : "none";
}

static int
is_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int
set_reason(struct arc_result *r, enum arc_cv cv, const char *why)
{
	r->cv = cv;
	snprintf(r->reason, sizeof(r->reason), "%s", why);
	return -1;
}

/* The value of field i (after the colon). */
static void
field_value(const struct chain *c, size_t i, const char **v, size_t *vlen)
{
	const struct dkim_field *f = &c->m.f[i];
	const char *p = c->m.hdr.data + f->off;
	const char *colon = memchr(p, ':', f->len);

	*v = colon ? colon + 1 : p + f->len;
	*vlen = f->len - (size_t)(*v - p);
}

/* A decimal instance 1..50 (RFC 8617 4.2.1) in s[0..n); 0 if not one. */
static unsigned
parse_instance(const char *s, size_t n)
{
	unsigned v = 0;
	size_t i;

	if (n == 0 || n > 2)
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	return v <= ARC_MAX_INSTANCE ? v : 0;
}

/* The AAR starts with "i=N;" (RFC 8617 4.1.1). */
static unsigned
aar_instance(const char *v, size_t n)
{
	size_t i = 0, d, e;

	while (i < n && is_fws(v[i]))
		i++;
	if (i >= n || v[i++] != 'i')
		return 0;
	while (i < n && is_fws(v[i]))
		i++;
	if (i >= n || v[i++] != '=')
		return 0;
	while (i < n && is_fws(v[i]))
		i++;
	for (d = i; d < n && v[d] >= '0' && v[d] <= '9'; d++)
		;
	for (e = d; e < n && is_fws(v[e]); e++)
		;
	if (e >= n || v[e] != ';')
		return 0;
	return parse_instance(v + i, d - i);
}

/* The i= of an ARC-Seal or ARC-Message-Signature; 0 if unparsable. */
static unsigned
tag_instance(const char *v, size_t n, struct taglist *tl)
{
	const struct tag *t;
	char err[96];

	if (taglist_parse(v, n, tl, err, sizeof(err)) == -1 || (t = taglist_find(tl, "i")) == NULL)
		return 0;
	return parse_instance(t->val, t->vallen);
}

/* RFC 8617 5.2 steps 1 and 3: every ARC field numbered, one of each kind per
 * instance, instances 1..N without gaps. */
static int
collect(struct chain *c, struct arc_result *r)
{
	struct taglist tl;
	unsigned i, top = 0;
	size_t f;
	int k;

	for (f = 0; f < c->m.nf; f++) {
		const char *v;
		size_t vlen;

		for (k = 0; k < K_N; k++)
			if (dkim_msg_is(&c->m, f, kind_name[k], strlen(kind_name[k])))
				break;
		if (k == K_N)
			continue;
		field_value(c, f, &v, &vlen);
		i = k == K_AAR ? aar_instance(v, vlen) : tag_instance(v, vlen, &tl);
		if (i == 0)
			return set_reason(r, ARC_FAIL, "ARC field without a valid instance");
		if (c->set[i][k] != 0)
			return set_reason(r, ARC_FAIL, "duplicate ARC field for an instance");
		c->set[i][k] = f + 1;
		if (i > top)
			top = i;
	}
	c->n = top;
	r->n = top;
	for (i = 1; i <= top; i++)
		for (k = 0; k < K_N; k++)
			if (c->set[i][k] == 0)
				return set_reason(r, ARC_FAIL, "incomplete ARC set");
	return 0;
}

/* A tag-list field of the chain, parsed; -1 on a syntax error. */
static int
parse_field(const struct chain *c, unsigned i, enum kind k, struct taglist *tl)
{
	const char *v;
	size_t vlen;
	char err[96];

	field_value(c, c->set[i][k] - 1, &v, &vlen);
	return taglist_parse(v, vlen, tl, err, sizeof(err));
}

static int
copy_tag(const struct tag *t, char *dst, size_t size)
{
	if (t == NULL || t->vallen == 0 || t->vallen >= size)
		return -1;
	memcpy(dst, t->val, t->vallen);
	dst[t->vallen] = '\0';
	return 0;
}

/* Hashes f[0..len) canonicalized, without the b= value at [boff, boff+blen)
 * if blen is not 0. */
static int
hash_field(EVP_MD_CTX *md, enum dkim_canon hc, const char *f, size_t len, size_t boff,
    size_t blen, int crlf)
{
	struct buf raw, can;
	int rc = -1;

	buf_init(&raw, DKIM_HEADER_MAX);
	buf_init(&can, DKIM_HEADER_MAX + 4);
	if (buf_append(&raw, f, blen ? boff : len) == 0 &&
	    (blen == 0 || buf_append(&raw, f + boff + blen, len - boff - blen) == 0) &&
	    dkim_canon_header(hc, raw.data, raw.len, crlf, &can) == 0 &&
	    (can.len == 0 || EVP_DigestUpdate(md, can.data, can.len) == 1))
		rc = 0;
	buf_free(&raw);
	buf_free(&can);
	return rc;
}

static const char *
field_ptr(const struct chain *c, size_t fi, size_t *len)
{
	*len = c->m.f[fi].len;
	return c->m.hdr.data + c->m.f[fi].off;
}

/* The signature b= of tl, decoded, and where its value lies in field fi. */
static int
sig_b(const struct chain *c, size_t fi, const struct taglist *tl, unsigned char *b,
    size_t *blen, size_t *boff, size_t *bvlen)
{
	const struct tag *t = taglist_find(tl, "b");
	size_t flen;
	const char *f = field_ptr(c, fi, &flen);

	if (t == NULL || dkim_b64_decode(t->val, t->vallen, b, SIG_MAX, blen) == -1 || *blen == 0)
		return -1;
	*boff = (size_t)(t->val - f);
	*bvlen = t->vallen;
	return 0;
}

/* Tags every AMS and AS needs (RFC 8617 4.1.2, 4.1.3); ARC signs with rsa-sha256 only (4.1.3 a=, RFC 8301). */
static int
check_common(const struct taglist *tl, const char *const *req, size_t nreq, char *dom,
    char *sel)
{
	size_t k;

	for (k = 0; k < nreq; k++)
		if (taglist_find(tl, req[k]) == NULL)
			return -1;
	if (!taglist_val_is(taglist_find(tl, "a"), "rsa-sha256"))
		return -1;
	if (copy_tag(taglist_find(tl, "d"), dom, 254) == -1 ||
	    copy_tag(taglist_find(tl, "s"), sel, 64) == -1)
		return -1;
	return 0;
}

static int
check_time(const struct taglist *tl)
{
	const struct tag *t = taglist_find(tl, "t");
	size_t i;

	if (t == NULL)
		return 0;
	if (t->vallen == 0 || t->vallen > 12)
		return -1;
	for (i = 0; i < t->vallen; i++)
		if (t->val[i] < '0' || t->val[i] > '9')
			return -1;
	return 0;
}

/* c= as in DKIM: absent is simple/simple, "x" alone is x/simple (RFC 6376 3.5). */
static int
parse_canon(const struct tag *t, enum dkim_canon *hc, enum dkim_canon *bc)
{
	*hc = *bc = DKIM_CANON_SIMPLE;
	return t == NULL ? 0 : dkim_canon_parse(t->val, t->vallen, hc, bc);
}

static void
body_sink(void *ctx, const void *p, size_t n)
{
	(void)EVP_DigestUpdate(ctx, p, n);
}

/* Both canonicalizations at once, in ARC_BODY_HASHES order: simple, relaxed. */
struct arc_body {
	struct dkim_body c[2];
	EVP_MD_CTX      *md[2];
};

static const enum dkim_canon body_canon[2] = { DKIM_CANON_SIMPLE, DKIM_CANON_RELAXED };

struct arc_body *
arc_body_new(void)
{
	struct arc_body *b = calloc(1, sizeof(*b));
	int k;

	if (b == NULL)
		return NULL;
	for (k = 0; k < 2; k++) {
		if ((b->md[k] = EVP_MD_CTX_new()) == NULL ||
		    EVP_DigestInit_ex(b->md[k], EVP_sha256(), NULL) != 1) {
			arc_body_free(b);
			return NULL;
		}
		dkim_body_init(&b->c[k], body_canon[k], UINT64_MAX, body_sink, b->md[k]);
	}
	return b;
}

void
arc_body_feed(struct arc_body *b, const char *p, size_t n)
{
	dkim_body_feed(&b->c[0], p, n);
	dkim_body_feed(&b->c[1], p, n);
}

int
arc_body_finish(struct arc_body *b, unsigned char out[ARC_BODY_HASHES])
{
	unsigned n;
	int k;

	for (k = 0; k < 2; k++) {
		dkim_body_finish(&b->c[k]);
		if (EVP_DigestFinal_ex(b->md[k], out + 32 * k, &n) != 1 || n != 32)
			return -1;
	}
	return 0;
}

void
arc_body_free(struct arc_body *b)
{
	if (b == NULL)
		return;
	EVP_MD_CTX_free(b->md[0]);
	EVP_MD_CTX_free(b->md[1]);
	free(b);
}

/* Both body hashes, once per chain (each AMS needs one): given, or the body's. */
static int
chain_hash_body(struct chain *c)
{
	struct arc_body *b;
	int rc;

	if (c->bh != NULL)
		return 0;
	if ((b = arc_body_new()) == NULL)
		return -1;
	arc_body_feed(b, c->body, c->bodylen);
	rc = arc_body_finish(b, c->own);
	arc_body_free(b);
	if (rc == 0)
		c->bh = c->own;
	return rc;
}

/* The canonical body's SHA-256 (RFC 6376 3.7), all of it (ARC has no l=). */
static int
body_hash(const struct chain *c, enum dkim_canon bc, unsigned char *out)
{
	if (c->bh == NULL)
		return -1;
	memcpy(out, c->bh + (bc == DKIM_CANON_SIMPLE ? 0 : 32), 32);
	return 0;
}

/* Hashes the fields h= names (bottom-up selection, RFC 6376 5.4.2). */
static int
hash_hlist(const struct chain *c, EVP_MD_CTX *md, enum dkim_canon hc, const struct tag *h)
{
	unsigned char *used = calloc(c->m.nf ? c->m.nf : 1, 1);
	size_t pos = 0, e, s, flen;
	const char *f;
	long fi;
	int rc = -1;

	if (used == NULL)
		return -1;
	while (pos <= h->vallen) {
		for (e = pos; e < h->vallen && h->val[e] != ':'; e++)
			;
		s = pos;
		pos = e + 1;
		while (s < e && is_fws(h->val[s]))
			s++;
		while (e > s && is_fws(h->val[e - 1]))
			e--;
		if ((fi = dkim_msg_select(&c->m, h->val + s, e - s, used)) < 0)
			continue;
		f = field_ptr(c, (size_t)fi, &flen);
		if (hash_field(md, hc, f, flen, 0, 0, 1) == -1)
			goto out;
	}
	rc = 0;
out:
	free(used);
	return rc;
}

/* h= names no ARC-Seal (RFC 8617 4.1.2: the AMS must not sign it). */
static int
h_has_seal(const struct tag *h)
{
	size_t i;

	for (i = 0; i + 8 <= h->vallen; i++)
		if (strncasecmp(h->val + i, "arc-seal", 8) == 0)
			return 1;
	return 0;
}

/* Signature check of a digest with the key d=/s= names. */
static int
check_sig(const struct dns_resolver *dns, const struct arc_verify_opts *o, const char *dom,
    const char *sel, const unsigned char *dg, const unsigned char *b, size_t blen)
{
	struct dkim_verify_opts vo;
	char why[128];

	memset(&vo, 0, sizeof(vo));
	vo.min_rsa_bits = o ? o->min_rsa_bits : 0;
	return dkim_check_digest(dns, &vo, dom, sel, dg, 32, b, blen, why, sizeof(why)) ==
	    DKIM_PASS ? 0 : -1;
}

/* RFC 8617 5.2 step 4: the AMS of instance i verifies as a DKIM signature. */
static int
verify_ams(const struct chain *c, unsigned i, const struct dns_resolver *dns,
    const struct arc_verify_opts *o)
{
	static const char *const req[] = { "a", "b", "bh", "d", "h", "i", "s" };
	unsigned char b[SIG_MAX], bh[64], got[32], dg[EVP_MAX_MD_SIZE];
	char dom[254], sel[64];
	size_t fi = c->set[i][K_AMS] - 1, blen, boff, bvlen, bhlen, flen;
	const char *f = field_ptr(c, fi, &flen);
	enum dkim_canon hc, bc;
	struct taglist tl;
	const struct tag *bht;
	EVP_MD_CTX *md;
	unsigned dglen;
	int rc = -1;

	if (parse_field(c, i, K_AMS, &tl) == -1 ||
	    check_common(&tl, req, sizeof(req) / sizeof(req[0]), dom, sel) == -1 ||
	    check_time(&tl) == -1 || parse_canon(taglist_find(&tl, "c"), &hc, &bc) == -1 ||
	    h_has_seal(taglist_find(&tl, "h")) ||
	    sig_b(c, fi, &tl, b, &blen, &boff, &bvlen) == -1)
		return -1;
	bht = taglist_find(&tl, "bh");
	if (dkim_b64_decode(bht->val, bht->vallen, bh, sizeof(bh), &bhlen) == -1 || bhlen != 32 ||
	    body_hash(c, bc, got) == -1 || memcmp(got, bh, 32) != 0)
		return -1;
	if ((md = EVP_MD_CTX_new()) != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	    hash_hlist(c, md, hc, taglist_find(&tl, "h")) == 0 &&
	    hash_field(md, hc, f, flen, boff, bvlen, 0) == 0 &&
	    EVP_DigestFinal_ex(md, dg, &dglen) == 1)
		rc = check_sig(dns, o, dom, sel, dg, b, blen);
	EVP_MD_CTX_free(md);
	return rc;
}

/* RFC 8617 5.1.1: the sets 1..i, each AAR, AMS, AS, relaxed; the AS of i
 * last with its b= empty and no final CRLF. */
static int
seal_hash(const struct chain *c, unsigned i, EVP_MD_CTX *md, size_t boff, size_t bvlen)
{
	unsigned j;
	size_t flen;
	const char *f;
	int k;

	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		return -1;
	for (j = 1; j <= i; j++) {
		for (k = 0; k < K_N; k++) {
			int last = j == i && k == K_AS;

			f = field_ptr(c, c->set[j][k] - 1, &flen);
			if (hash_field(md, DKIM_CANON_RELAXED, f, flen, last ? boff : 0,
			    last ? bvlen : 0, !last) == -1)
				return -1;
		}
	}
	return 0;
}

/* RFC 8617 5.2 step 6: the AS of instance i verifies. */
static int
verify_as(const struct chain *c, unsigned i, const struct dns_resolver *dns,
    const struct arc_verify_opts *o)
{
	static const char *const req[] = { "a", "b", "cv", "d", "i", "s" };
	unsigned char b[SIG_MAX], dg[EVP_MAX_MD_SIZE];
	char dom[254], sel[64];
	size_t fi = c->set[i][K_AS] - 1, blen, boff, bvlen;
	struct taglist tl;
	EVP_MD_CTX *md;
	unsigned dglen;
	int rc = -1;

	if (parse_field(c, i, K_AS, &tl) == -1 ||
	    check_common(&tl, req, sizeof(req) / sizeof(req[0]), dom, sel) == -1 ||
	    check_time(&tl) == -1 || taglist_find(&tl, "h") != NULL ||
	    sig_b(c, fi, &tl, b, &blen, &boff, &bvlen) == -1)
		return -1;
	if ((md = EVP_MD_CTX_new()) != NULL && seal_hash(c, i, md, boff, bvlen) == 0 &&
	    EVP_DigestFinal_ex(md, dg, &dglen) == 1)
		rc = check_sig(dns, o, dom, sel, dg, b, blen);
	EVP_MD_CTX_free(md);
	return rc;
}

/* RFC 8617 5.2 step 3: cv=none on instance 1, cv=pass on the others. */
static int
check_cvs(const struct chain *c, struct arc_result *r)
{
	struct taglist tl;
	const struct tag *cv;
	unsigned i;

	for (i = 1; i <= c->n; i++) {
		if (parse_field(c, i, K_AS, &tl) == -1 || (cv = taglist_find(&tl, "cv")) == NULL)
			return set_reason(r, ARC_FAIL, "ARC-Seal unparsable");
		if (i == c->n)
			(void)copy_tag(taglist_find(&tl, "d"), r->domain, sizeof(r->domain));
		if (taglist_val_is(cv, "fail")) {
			r->last_cv_fail = i == c->n;
			return set_reason(r, ARC_FAIL, "a seal says cv=fail");
		}
		if (!taglist_val_is(cv, i == 1 ? "none" : "pass"))
			return set_reason(r, ARC_FAIL, i == 1 ? "instance 1 has cv other than none" :
			    "cv other than pass after instance 1");
	}
	return 0;
}

static int
chain_load(struct chain *c, const char *msg, size_t len)
{
	size_t off;

	memset(c, 0, sizeof(*c));
	dkim_msg_init(&c->m);
	if ((off = dkim_msg_feed(&c->m, msg, len)) == (size_t)-1 || dkim_msg_end(&c->m) == -1)
		return -1;
	c->body = msg + off;
	c->bodylen = len - off;
	return 0;
}

/* RFC 8617 5.2 over a loaded chain. */
static void
validate(struct chain *c, const struct dns_resolver *dns, const struct arc_verify_opts *o,
    struct arc_result *r)
{
	unsigned i;

	if (collect(c, r) == -1 || c->n == 0 || check_cvs(c, r) == -1)
		return;
	if (chain_hash_body(c) == -1) {
		set_reason(r, ARC_FAIL, "out of memory");
		return;
	}
	if (verify_ams(c, c->n, dns, o) == -1) {
		set_reason(r, ARC_FAIL, "newest ARC-Message-Signature did not verify");
		return;
	}
	/* Step 5: going down from N, the last instance before an AMS fails
	 * (what header.oldest-pass reports). */
	r->oldest_pass = c->n;
	for (i = c->n - 1; i >= 1 && verify_ams(c, i, dns, o) == 0; i--)
		r->oldest_pass = i;
	for (i = c->n; i >= 1; i--)
		if (verify_as(c, i, dns, o) == -1) {
			set_reason(r, ARC_FAIL, "an ARC-Seal did not verify");
			return;
		}
	set_reason(r, ARC_PASS, "chain verified");
}

static int
verify_loaded(const char *msg, size_t len, const unsigned char *bh,
    const struct dns_resolver *dns, const struct arc_verify_opts *o, struct arc_result *r)
{
	struct chain *c = malloc(sizeof(*c));
	int rc = 0;

	memset(r, 0, sizeof(*r));
	set_reason(r, ARC_NONE, "no ARC sets");
	if (c == NULL)
		return set_reason(r, ARC_FAIL, "out of memory");
	if (chain_load(c, msg, len) == -1) {
		rc = set_reason(r, ARC_FAIL, "header section too large");
	} else {
		c->bh = bh;
		validate(c, dns, o, r);
	}
	dkim_msg_free(&c->m);
	free(c);
	return rc;
}

int
arc_verify(const char *msg, size_t len, const struct dns_resolver *dns,
    const struct arc_verify_opts *o, struct arc_result *r)
{
	return verify_loaded(msg, len, NULL, dns, o, r);
}

int
arc_verify_header(const char *hdr, size_t len, const unsigned char bh[ARC_BODY_HASHES],
    const struct dns_resolver *dns, const struct arc_verify_opts *o, struct arc_result *r)
{
	return verify_loaded(hdr, len, bh, dns, o, r);
}

/* ---- sealing (RFC 8617 5.1) ---- */

/*
 * "b=" and the base64 on one line: the seal signs the AMS as it stands,
 * b= included, and an unfolded b= gives the same seal as other signers
 * (dkimpy, the suite's origin). 8192-bit keys stay under 998 octets a line.
 */
static int
append_b(struct buf *out, const struct buf *b64)
{
	return buf_append(out, "b=", 2) == -1 ? -1 : buf_append(out, b64->data, b64->len);
}

/* Joins the AMS h= names with ':'; -1 if one is empty, holds ':' or is ARC-Seal. */
static int
hlist(const char *const *names, struct buf *h)
{
	size_t i;

	for (i = 0; names && names[i]; i++) {
		if (names[i][0] == '\0' || strchr(names[i], ':') || strcasecmp(names[i], "ARC-Seal") == 0)
			return -1;
		if ((i > 0 && buf_appendc(h, ':') == -1) || buf_appends(h, names[i]) == -1)
			return -1;
	}
	return i > 0 ? 0 : -1;
}

/* Signs the digest of md into the field text at out[start..): the field has
 * "b=" as a placeholder at bpos, which is replaced by the folded value. */
static int
sign_into(const struct arc_seal_opts *o, EVP_MD_CTX *md, struct buf *field, size_t bpos)
{
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned dglen;
	struct buf b64, tmp;
	int rc = -1;

	buf_init(&b64, 4096);
	buf_init(&tmp, DKIM_HEADER_MAX);
	if (EVP_DigestFinal_ex(md, dg, &dglen) == 1 &&
	    dkim_key_sign_digest(o->key, dg, dglen, &b64) == 0 &&
	    buf_append(&tmp, field->data, bpos) == 0 && append_b(&tmp, &b64) == 0 &&
	    buf_append(&tmp, field->data + bpos + 2, field->len - bpos - 2) == 0) {
		buf_reset(field);
		rc = buf_append(field, tmp.data, tmp.len);
	}
	buf_free(&b64);
	buf_free(&tmp);
	return rc;
}

/* The value of "Name:" + text, for hashing with the b= value given by its offset. */
static int
hash_new(EVP_MD_CTX *md, const struct buf *f, int crlf)
{
	return hash_field(md, DKIM_CANON_RELAXED, f->data, f->len, 0, 0, crlf);
}

static int
build_ams(const struct arc_seal_opts *o, const struct chain *c, unsigned n, time_t t,
    struct buf *ams)
{
	unsigned char bh[32];
	struct buf h, bh64;
	struct tag ht;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t bpos;
	int rc = -1;

	buf_init(&h, 8192);
	buf_init(&bh64, 128);
	if (md == NULL || hlist(o->headers, &h) == -1 || body_hash(c, DKIM_CANON_RELAXED, bh) == -1 ||
	    dkim_b64_encode(bh, sizeof(bh), &bh64) == -1)
		goto out;
	/* RFC 8617 4.1.2 tags in the suite's fixed order, so that equal
	 * inputs give equal signatures. */
	if (buf_appends(ams, "ARC-Message-Signature: a=rsa-sha256;\r\n ") == -1)
		goto out;
	bpos = ams->len;
	if (buf_printf(ams, "b=;\r\n bh=%.*s; c=relaxed/relaxed;\r\n d=%s; h=%.*s;\r\n"
	    " i=%u; s=%s; t=%lld", (int)bh64.len, bh64.data, o->domain, (int)h.len, h.data, n,
	    o->selector, (long long)t) == -1)
		goto out;
	ht.name = "h";
	ht.namelen = 1;
	ht.val = h.data;
	ht.vallen = h.len;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    hash_hlist(c, md, DKIM_CANON_RELAXED, &ht) == -1 || hash_new(md, ams, 0) == -1 ||
	    sign_into(o, md, ams, bpos) == -1 || buf_append(ams, "\r\n", 2) == -1)
		goto out;
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	buf_free(&h);
	buf_free(&bh64);
	return rc;
}

/* The seal over the sets 1..n-1 of the message, then the new AAR and AMS
 * (RFC 8617 5.1.1). aar and ams end in CRLF; the AS is hashed without. */
static int
build_as(const struct arc_seal_opts *o, const struct chain *c, unsigned n, time_t t,
    enum arc_cv cv, const struct buf *aar, const struct buf *ams, struct buf *as)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	/* A failed chain is not vouched for: the seal covers its own set only
	 * (RFC 8617 5.1.1 as the suite's signer reads it). */
	int prev = n > 1 && cv != ARC_FAIL;
	size_t bpos;
	int rc = -1;

	if (md == NULL || buf_appends(as, "ARC-Seal: a=rsa-sha256;\r\n ") == -1)
		goto out;
	bpos = as->len;
	if (buf_printf(as, "b=; cv=%s;\r\n d=%s; i=%u; s=%s;\r\n t=%lld", arc_cv_str(cv),
	    o->domain, n, o->selector, (long long)t) == -1 ||
	    (prev ? seal_hash(c, n - 1, md, 0, 0) :
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : -1) == -1)
		goto out;
	/* seal_hash() leaves the previous AS without its CRLF: add it. */
	if ((prev && EVP_DigestUpdate(md, "\r\n", 2) != 1) ||
	    hash_field(md, DKIM_CANON_RELAXED, aar->data, aar->len - 2, 0, 0, 1) == -1 ||
	    hash_field(md, DKIM_CANON_RELAXED, ams->data, ams->len - 2, 0, 0, 1) == -1 ||
	    hash_new(md, as, 0) == -1 || sign_into(o, md, as, bpos) == -1 ||
	    buf_append(as, "\r\n", 2) == -1)
		goto out;
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	return rc;
}

static int
seal_err(char *err, size_t errlen, int rc, const char *why)
{
	snprintf(err, errlen, "%s", why);
	return rc;
}

static int
seal_chain(const struct arc_seal_opts *o, struct chain *c, const struct dns_resolver *dns,
    struct buf *out, char *err, size_t errlen)
{
	struct arc_verify_opts vo = { o->min_rsa_bits };
	struct arc_result r;
	struct buf aar, ams, as;
	time_t t = o->timestamp ? o->timestamp : time(NULL);
	unsigned n;
	int rc = -1;

	memset(&r, 0, sizeof(r));
	if (o->cv == NULL)
		validate(c, dns, &vo, &r);
	else if (collect(c, &r) == 0 && c->n > 0)
		(void)check_cvs(c, &r);
	if (o->cv != NULL)
		r.cv = *o->cv;
	/* RFC 8617 5.1.2: a chain whose newest seal says fail is not extended. */
	if (r.last_cv_fail)
		return seal_err(err, errlen, 1, "the newest ARC-Seal says cv=fail");
	if (r.cv == ARC_FAIL && r.n == 0)
		return seal_err(err, errlen, 1, "ARC sets not numbered");
	if ((n = r.n + 1) > ARC_MAX_INSTANCE)
		return seal_err(err, errlen, 1, "ARC chain full (RFC 8617 4.2.1)");
	buf_init(&aar, DKIM_HEADER_MAX);
	buf_init(&ams, DKIM_HEADER_MAX);
	buf_init(&as, DKIM_HEADER_MAX);
	if (buf_printf(&aar, "ARC-Authentication-Results: i=%u; %s;\r\n %s\r\n", n, o->authserv_id,
	    o->results && o->results[0] ? o->results : "none") == -1 ||
	    chain_hash_body(c) == -1 || build_ams(o, c, n, t, &ams) == -1 || build_as(o, c, n, t, r.cv, &aar, &ams, &as) == -1) {
		seal_err(err, errlen, -1, "cannot build the ARC set (h= list, key or memory)");
		goto out;
	}
	rc = buf_append(out, as.data, as.len) == 0 && buf_append(out, ams.data, ams.len) == 0 &&
	    buf_append(out, aar.data, aar.len) == 0 ? 0 : seal_err(err, errlen, -1, "out of memory");
out:
	buf_free(&aar);
	buf_free(&ams);
	buf_free(&as);
	return rc;
}

int
arc_seal(const struct arc_seal_opts *o, const char *msg, size_t len,
    const struct dns_resolver *dns, struct buf *out, char *err, size_t errlen)
{
	struct chain *c;
	int rc;

	if (o->key == NULL || dkim_key_type(o->key) != DKIM_KEY_RSA || o->domain == NULL ||
	    o->selector == NULL || o->authserv_id == NULL)
		return seal_err(err, errlen, -1, "ARC needs an RSA key, domain, selector, authserv-id");
	if ((c = malloc(sizeof(*c))) == NULL)
		return seal_err(err, errlen, -1, "out of memory");
	if (chain_load(c, msg, len) == -1)
		rc = seal_err(err, errlen, -1, "header section too large");
	else
		rc = seal_chain(o, c, dns, out, err, errlen);
	dkim_msg_free(&c->m);
	free(c);
	return rc;
}
