/*
 * dkim — verification (RFC 6376 section 6, RFC 8301, RFC 8463); see dkim.h.
 * Each DKIM-Signature gets its own body hash, fed while the body streams;
 * keys are fetched and signatures checked in dkim_verify_finish().
 */
#include "mailauth/dkim.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailauth/taglist.h"

#define RSA_MAX_BITS 8192
#define SIG_MAX      (RSA_MAX_BITS / 8)
#define KEY_MAX      4096	/* decoded p= */

enum alg { ALG_NONE, ALG_RSA_SHA256, ALG_ED25519_SHA256, ALG_RSA_SHA1 };

struct vsig {
	struct dkim_sig_result r;
	int             live;		/* parsed fine: hash the body, check it */
	size_t          field;
	enum alg        alg;
	enum dkim_canon hc, bc;
	unsigned char   bh[EVP_MAX_MD_SIZE], got[EVP_MAX_MD_SIZE];
	size_t          bhlen;
	unsigned char   b[SIG_MAX];
	size_t          blen;
	size_t          boff, bvlen;	/* b= value, relative to the field */
	size_t          hoff, hlen;	/* h= value, relative to the header section */
	int             has_l;
	uint64_t        l;
	enum dkim_bodyv  bodyv;		/* the body hash verdict, once known */
	size_t          idom;		/* offset of the domain in r.identity */
	char            qname[DNS_NAME_MAX + 1];
	struct dkim_body body;
	EVP_MD_CTX     *md;
};

struct dkim_verify {
	struct dkim_verify_opts o;
	struct dkim_msg m;
	struct vsig     sig[DKIM_MAX_SIGS];
	size_t          nsig;
	int             started, failed;
	int             bodies;		/* body verdicts known (ended here or given) */
};

const char *
dkim_result_str(enum dkim_result r)
{
	static const char *const s[] = { "none", "pass", "fail", "neutral", "policy",
		"temperror", "permerror" };

	return (unsigned)r < sizeof(s) / sizeof(s[0]) ? s[r] : "?";
}

static int
set_result(struct vsig *s, enum dkim_result r, const char *why)
{
	s->r.result = r;
	snprintf(s->r.reason, sizeof(s->r.reason), "%s", why);
	s->live = 0;
	return -1;
}

static int
is_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Copies a tag value into dst, with FWS dropped if strip; 0 if it fits. */
static int
copy_val(char *dst, size_t size, const struct tag *t, int strip)
{
	size_t i, n = 0;
	int fit = 1;

	for (i = 0; i < t->vallen; i++) {
		if (strip && is_fws(t->val[i]))
			continue;
		if (n + 1 >= size) {
			fit = 0;
			break;
		}
		dst[n++] = t->val[i];
	}
	dst[n] = '\0';
	return fit ? 0 : -1;
}

/* Next name of a ':'-separated list with FWS around names (h=, k= h=, s=, t=). */
static int
list_next(const char *s, size_t len, size_t *pos, const char **name, size_t *nlen)
{
	size_t i = *pos, e;

	if (i > len)
		return 0;
	for (e = i; e < len && s[e] != ':'; e++)
		;
	*pos = e + 1;
	while (i < e && is_fws(s[i]))
		i++;
	while (e > i && is_fws(s[e - 1]))
		e--;
	*name = s + i;
	*nlen = e - i;
	return 1;
}

static int
list_has(const struct tag *t, const char *word)
{
	size_t pos = 0, n, w = strlen(word);
	const char *p;

	while (list_next(t->val, t->vallen, &pos, &p, &n))
		if (n == w && strncasecmp(p, word, n) == 0)
			return 1;
	return 0;
}

static int
parse_uint(const struct tag *t, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (t->vallen == 0 || t->vallen > 20)
		return -1;
	for (i = 0; i < t->vallen; i++) {
		unsigned d = (unsigned char)t->val[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* Letters, digits, '-', '_' in dot-separated labels of 1..63 octets. */
static int
valid_domain(const char *s)
{
	size_t i, lab = 0, n = strlen(s);

	if (n == 0 || n > 253)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '.') {
			if (lab == 0)
				return 0;
			lab = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_') {
			if (++lab > 63)
				return 0;
		} else
			return 0;
	}
	return lab > 0;
}

/* dom equals d or is a subdomain of it (RFC 6376 3.5, i=). */
static int
in_domain(const char *dom, const char *d)
{
	size_t a = strlen(dom), b = strlen(d);

	if (a == b)
		return strcasecmp(dom, d) == 0;
	return a > b && dom[a - b - 1] == '.' && strcasecmp(dom + a - b, d) == 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* i= is dkim-quoted-printable (RFC 6376 2.11): =XX escapes, FWS ignored. */
static int
decode_qp(const struct tag *t, char *dst, size_t size)
{
	size_t i, n = 0;

	for (i = 0; i < t->vallen; i++) {
		char c = t->val[i];
		int hi, lo;

		if (is_fws(c))
			continue;
		if (c == '=') {
			if (i + 2 >= t->vallen)
				return -1;
			if ((hi = hexval(t->val[i + 1])) < 0 || (lo = hexval(t->val[i + 2])) < 0)
				return -1;
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (n + 1 >= size)
			return -1;
		/* Keep the result printable: it goes into log lines and headers. */
		dst[n++] = ((unsigned char)c < 0x21 || (unsigned char)c > 0x7e) ? '?' : c;
	}
	dst[n] = '\0';
	return 0;
}

static int
parse_alg(struct dkim_verify *v, struct vsig *s, const struct tag *a)
{
	if (taglist_val_is(a, "rsa-sha256"))
		s->alg = ALG_RSA_SHA256;
	else if (taglist_val_is(a, "ed25519-sha256"))
		s->alg = ALG_ED25519_SHA256;
	else if (taglist_val_is(a, "rsa-sha1"))
		s->alg = ALG_RSA_SHA1;
	else
		return set_result(s, DKIM_PERMERROR, "unknown algorithm");
	/* RFC 8301 3.1: rsa-sha1 signatures MUST NOT be considered valid. */
	if (s->alg == ALG_RSA_SHA1 && !v->o.allow_sha1)
		return set_result(s, DKIM_PERMERROR, "rsa-sha1 not allowed (RFC 8301)");
	return 0;
}

/* c= header[/body]; absent: simple/simple; "x" alone: x/simple (RFC 6376 3.5). */
static int
parse_canon(struct vsig *s, const struct tag *c)
{
	s->hc = s->bc = DKIM_CANON_SIMPLE;
	if (c != NULL && dkim_canon_parse(c->val, c->vallen, &s->hc, &s->bc) == -1)
		return set_result(s, DKIM_PERMERROR, "unknown canonicalization");
	return 0;
}

static int
parse_hashes(struct vsig *s, const struct taglist *tl)
{
	const struct tag *b = taglist_find(tl, "b"), *bh = taglist_find(tl, "bh");
	size_t want = s->alg == ALG_RSA_SHA1 ? 20 : 32;

	if (dkim_b64_decode(b->val, b->vallen, s->b, sizeof(s->b), &s->blen) == -1 || s->blen == 0)
		return set_result(s, DKIM_PERMERROR, "bad b= value");
	if (dkim_b64_decode(bh->val, bh->vallen, s->bh, sizeof(s->bh), &s->bhlen) == -1 ||
	    s->bhlen != want)
		return set_result(s, DKIM_PERMERROR, "bad bh= value");
	return 0;
}

/* h= must be a list of names that includes From (RFC 6376 5.4). */
static int
parse_h(struct vsig *s, const struct tag *h, const char *hdr)
{
	size_t pos = 0, n;
	const char *p;
	int from = 0;

	while (list_next(h->val, h->vallen, &pos, &p, &n)) {
		if (n == 0)
			return set_result(s, DKIM_PERMERROR, "empty name in h=");
		if (n == 4 && strncasecmp(p, "from", 4) == 0)
			from = 1;
	}
	if (!from)
		return set_result(s, DKIM_PERMERROR, "From not signed (h=)");
	s->hoff = (size_t)(h->val - hdr);
	s->hlen = h->vallen;
	return 0;
}

static int
parse_identity(struct vsig *s, const struct tag *i)
{
	const char *at;

	if (i == NULL) {
		snprintf(s->r.identity, sizeof(s->r.identity), "@%s", s->r.domain);
		s->idom = 1;
		return 0;
	}
	if (decode_qp(i, s->r.identity, sizeof(s->r.identity)) == -1 ||
	    (at = strrchr(s->r.identity, '@')) == NULL)
		return set_result(s, DKIM_PERMERROR, "bad i= value");
	s->idom = (size_t)(at + 1 - s->r.identity);
	if (!in_domain(at + 1, s->r.domain))
		return set_result(s, DKIM_PERMERROR, "i= not within d=");
	return 0;
}

static int
parse_times(struct dkim_verify *v, struct vsig *s, const struct taglist *tl)
{
	const struct tag *t = taglist_find(tl, "t"), *x = taglist_find(tl, "x"),
	    *l = taglist_find(tl, "l");
	uint64_t tv = 0, xv = 0;

	if ((t && parse_uint(t, &tv) == -1) || (x && parse_uint(x, &xv) == -1))
		return set_result(s, DKIM_PERMERROR, "bad t= or x= value");
	if (l && parse_uint(l, &s->l) == -1)
		return set_result(s, DKIM_PERMERROR, "bad l= value");
	s->has_l = l != NULL;
	if (t && x && xv < tv)
		return set_result(s, DKIM_PERMERROR, "x= before t=");
	if (x && xv < (uint64_t)v->o.now)
		return set_result(s, DKIM_PERMERROR, "signature expired");
	return 0;
}

static int
parse_names(struct vsig *s, const struct taglist *tl)
{
	const struct tag *q = taglist_find(tl, "q");
	int n;

	if (copy_val(s->r.domain, sizeof(s->r.domain), taglist_find(tl, "d"), 0) == -1 ||
	    !valid_domain(s->r.domain))
		return set_result(s, DKIM_PERMERROR, "bad d= value");
	if (copy_val(s->r.selector, sizeof(s->r.selector), taglist_find(tl, "s"), 0) == -1 ||
	    !valid_domain(s->r.selector))
		return set_result(s, DKIM_PERMERROR, "bad s= value");
	n = snprintf(s->qname, sizeof(s->qname), "%s._domainkey.%s", s->r.selector, s->r.domain);
	if (n < 0 || (size_t)n > 253)
		return set_result(s, DKIM_PERMERROR, "key name too long");
	if (q && !list_has(q, "dns/txt"))
		return set_result(s, DKIM_PERMERROR, "unknown query method (q=)");
	return 0;
}

/* Fills what the result shows even if a later check fails. */
static void
note_tags(struct vsig *s, const struct taglist *tl)
{
	const struct tag *t;

	if ((t = taglist_find(tl, "d")) != NULL)
		(void)copy_val(s->r.domain, sizeof(s->r.domain), t, 0);
	if ((t = taglist_find(tl, "s")) != NULL)
		(void)copy_val(s->r.selector, sizeof(s->r.selector), t, 0);
	if ((t = taglist_find(tl, "a")) != NULL)
		(void)copy_val(s->r.algorithm, sizeof(s->r.algorithm), t, 0);
	if ((t = taglist_find(tl, "b")) != NULL)
		(void)copy_val(s->r.header_b, sizeof(s->r.header_b), t, 1);
}

/* RFC 6376 6.1.1: validate one DKIM-Signature field. -1: result already set. */
static int
parse_sig(struct dkim_verify *v, struct vsig *s)
{
	static const char *const req[] = { "v", "a", "b", "bh", "d", "h", "s" };
	const struct dkim_field *f = &v->m.f[s->field];
	const char *hdr = v->m.hdr.data, *fv = hdr + f->off;
	const char *colon = memchr(fv, ':', f->len);
	const struct tag *b;
	struct taglist tl;
	char err[96], why[128];
	size_t k;

	if (colon == NULL ||
	    taglist_parse(colon + 1, f->len - (size_t)(colon + 1 - fv), &tl, err, sizeof(err)) == -1) {
		snprintf(why, sizeof(why), "signature syntax error: %s", colon ? err : "no value");
		return set_result(s, DKIM_PERMERROR, why);
	}
	note_tags(s, &tl);
	for (k = 0; k < sizeof(req) / sizeof(req[0]); k++) {
		if (taglist_find(&tl, req[k]) == NULL) {
			snprintf(why, sizeof(why), "missing tag %s=", req[k]);
			return set_result(s, DKIM_PERMERROR, why);
		}
	}
	if (!taglist_val_is(taglist_find(&tl, "v"), "1"))
		return set_result(s, DKIM_PERMERROR, "unsupported signature version");
	if (parse_alg(v, s, taglist_find(&tl, "a")) == -1 ||
	    parse_canon(s, taglist_find(&tl, "c")) == -1 ||
	    parse_hashes(s, &tl) == -1 || parse_names(s, &tl) == -1 ||
	    parse_h(s, taglist_find(&tl, "h"), hdr) == -1 ||
	    parse_identity(s, taglist_find(&tl, "i")) == -1 || parse_times(v, s, &tl) == -1)
		return -1;
	b = taglist_find(&tl, "b");
	s->boff = (size_t)(b->val - fv);
	s->bvlen = b->vallen;
	return 0;
}

static void
body_sink(void *ctx, const void *p, size_t n)
{
	struct vsig *s = ctx;

	if (EVP_DigestUpdate(s->md, p, n) != 1)
		set_result(s, DKIM_TEMPERROR, "hash failure");
}

static const EVP_MD *
alg_md(enum alg a)
{
	return a == ALG_RSA_SHA1 ? EVP_sha1() : EVP_sha256();
}

/* The header is complete: find the signatures and start their body hashes. */
static void
setup_sigs(struct dkim_verify *v)
{
	size_t i;

	v->started = 1;
	for (i = 0; i < v->m.nf && v->nsig < DKIM_MAX_SIGS; i++) {
		struct vsig *s = &v->sig[v->nsig];

		if (!dkim_msg_is(&v->m, i, "DKIM-Signature", 14))
			continue;
		v->nsig++;
		s->field = i;
		s->live = 1;
		if (parse_sig(v, s) == -1)
			continue;
		if ((s->md = EVP_MD_CTX_new()) == NULL ||
		    EVP_DigestInit_ex(s->md, alg_md(s->alg), NULL) != 1) {
			set_result(s, DKIM_TEMPERROR, "hash failure");
			continue;
		}
		dkim_body_init(&s->body, s->bc, s->has_l ? s->l : UINT64_MAX, body_sink, s);
	}
}

struct dkim_verify *
dkim_verify_new(const struct dkim_verify_opts *opts)
{
	struct dkim_verify *v = calloc(1, sizeof(*v));

	if (v == NULL)
		return NULL;
	if (opts)
		v->o = *opts;
	if (v->o.now == 0)
		v->o.now = time(NULL);
	if (v->o.min_rsa_bits == 0)
		v->o.min_rsa_bits = 1024;
	dkim_msg_init(&v->m);
	return v;
}

static void
feed_body(struct dkim_verify *v, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < v->nsig && n > 0; i++)
		if (v->sig[i].live)
			dkim_body_feed(&v->sig[i].body, p, n);
}

int
dkim_verify_feed(struct dkim_verify *v, const char *data, size_t len)
{
	size_t off;

	if (v->failed)
		return -1;
	if ((off = dkim_msg_feed(&v->m, data, len)) == (size_t)-1) {
		v->failed = 1;
		return -1;
	}
	if (v->m.done && !v->started)
		setup_sigs(v);
	if (v->m.done)
		feed_body(v, data + off, len - off);
	return 0;
}

/* ---- key records (RFC 6376 3.6.1) ---- */

static EVP_PKEY *
rsa_key(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	EVP_PKEY *k;

	/* SubjectPublicKeyInfo as the RFC's examples; a bare RSAPublicKey too. */
	if ((k = d2i_PUBKEY(NULL, &p, (long)len)) != NULL) {
		if (p == der + len && EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA)
			return k;
		EVP_PKEY_free(k);
		return NULL;
	}
	p = der;
	if ((k = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)len)) != NULL && p != der + len) {
		EVP_PKEY_free(k);
		k = NULL;
	}
	return k;
}

static EVP_PKEY *
key_from_p(struct vsig *s, const struct tag *p, int ed)
{
	unsigned char der[KEY_MAX];
	size_t len;
	EVP_PKEY *k;

	if (p->vallen == 0)
		return set_result(s, DKIM_PERMERROR, "key revoked"), NULL;
	if (dkim_b64_decode(p->val, p->vallen, der, sizeof(der), &len) == -1)
		return set_result(s, DKIM_PERMERROR, "bad key data (p=)"), NULL;
	/* RFC 8463 4.2: an Ed25519 p= is the raw 32-byte public key. */
	if (ed && len != 32)
		return set_result(s, DKIM_PERMERROR, "ed25519 key is not 32 bytes"), NULL;
	k = ed ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der, len) : rsa_key(der, len);
	if (k == NULL)
		set_result(s, DKIM_PERMERROR, "unparsable key");
	return k;
}

static int
key_tags(struct vsig *s, const struct taglist *tl, int *ed)
{
	const struct tag *t;

	/* p= is the one required tag: an empty record has none. */
	if (taglist_find(tl, "p") == NULL)
		return set_result(s, DKIM_PERMERROR, "key record has no p=");
	if ((t = taglist_find(tl, "v")) != NULL && (t != &tl->t[0] || !taglist_val_is(t, "DKIM1")))
		return set_result(s, DKIM_PERMERROR, "bad key version");
	*ed = 0;
	if ((t = taglist_find(tl, "k")) != NULL && taglist_val_is(t, "ed25519"))
		*ed = 1;
	else if (t != NULL && !taglist_val_is(t, "rsa"))
		return set_result(s, DKIM_PERMERROR, "unknown key type");
	if (*ed != (s->alg == ALG_ED25519_SHA256))
		return set_result(s, DKIM_PERMERROR, "key type does not match a=");
	if ((t = taglist_find(tl, "h")) != NULL &&
	    !list_has(t, s->alg == ALG_RSA_SHA1 ? "sha1" : "sha256"))
		return set_result(s, DKIM_PERMERROR, "hash not allowed by key (h=)");
	if ((t = taglist_find(tl, "s")) != NULL && !list_has(t, "*") && !list_has(t, "email"))
		return set_result(s, DKIM_PERMERROR, "key not for email (s=)");
	if ((t = taglist_find(tl, "t")) != NULL) {
		s->r.testing = list_has(t, "y");
		/* t=s: the i= domain must be d= itself, not a subdomain. */
		if (list_has(t, "s") && strcasecmp(s->r.identity + s->idom, s->r.domain) != 0)
			return set_result(s, DKIM_PERMERROR, "i= domain must equal d= (key t=s)");
	}
	return 0;
}

static EVP_PKEY *
parse_key(struct dkim_verify *v, struct vsig *s, const char *rec, size_t len)
{
	struct taglist tl;
	char err[96];
	EVP_PKEY *k;
	int ed, bits;

	if (taglist_parse(rec, len, &tl, err, sizeof(err)) == -1)
		return set_result(s, DKIM_PERMERROR, "key record syntax error"), NULL;
	if (key_tags(s, &tl, &ed) == -1 || (k = key_from_p(s, taglist_find(&tl, "p"), ed)) == NULL)
		return NULL;
	bits = EVP_PKEY_get_bits(k);
	s->r.key_bits = bits > 0 ? (unsigned)bits : 0;
	if (!ed && (bits < (int)v->o.min_rsa_bits || bits > RSA_MAX_BITS)) {
		EVP_PKEY_free(k);
		return set_result(s, DKIM_PERMERROR, bits > RSA_MAX_BITS ? "key too long" :
		    "key too short"), NULL;
	}
	return k;
}

static EVP_PKEY *
fetch_key(struct dkim_verify *v, struct vsig *s, const struct dns_resolver *dns)
{
	struct dns_answer a;
	EVP_PKEY *k = NULL;

	dns_answer_init(&a);
	if (dns_query(dns, s->qname, DNS_T_TXT, &a) == -1) {
		set_result(s, DKIM_TEMPERROR, "key lookup: out of memory");
		dns_answer_free(&a);
		return NULL;
	}
	switch (a.status) {
	case DNS_OK:
		/* XXX several TXT records: RFC 6376 3.6.2.2 lets us pick; we take the first. */
		k = parse_key(v, s, a.rrs[0].data, a.rrs[0].len);
		break;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		set_result(s, DKIM_PERMERROR, "no key");
		break;
	case DNS_TEMPFAIL:
		set_result(s, DKIM_TEMPERROR, "key lookup failed (DNS)");
		break;
	default:
		set_result(s, DKIM_PERMERROR, "key lookup failed");
		break;
	}
	dns_answer_free(&a);
	return k;
}

/* ---- the header hash (RFC 6376 3.7) ---- */

static int
hash_canon(EVP_MD_CTX *md, enum dkim_canon c, const char *f, size_t len, int crlf)
{
	struct buf b;
	int rc;

	buf_init(&b, DKIM_HEADER_MAX + 4);
	rc = dkim_canon_header(c, f, len, crlf, &b);
	if (rc == 0 && b.len > 0)
		rc = EVP_DigestUpdate(md, b.data, b.len) == 1 ? 0 : -1;
	buf_free(&b);
	return rc;
}

/* The selected fields, then this DKIM-Signature with its b= value emptied. */
static int
header_hash(struct dkim_verify *v, struct vsig *s, EVP_MD_CTX *md, unsigned char *out,
    unsigned *outlen)
{
	const char *hdr = v->m.hdr.data, *name;
	const struct dkim_field *sf = &v->m.f[s->field];
	unsigned char *used = calloc(v->m.nf ? v->m.nf : 1, 1);
	size_t pos = 0, n;
	struct buf self;
	long i;
	int rc = -1;

	buf_init(&self, DKIM_HEADER_MAX);
	if (used == NULL || EVP_DigestInit_ex(md, alg_md(s->alg), NULL) != 1)
		goto out;
	while (list_next(hdr + s->hoff, s->hlen, &pos, &name, &n)) {
		if ((i = dkim_msg_select(&v->m, name, n, used)) >= 0 &&
		    hash_canon(md, s->hc, hdr + v->m.f[i].off, v->m.f[i].len, 1) == -1)
			goto out;
	}
	if (buf_append(&self, hdr + sf->off, s->boff) == -1 ||
	    buf_append(&self, hdr + sf->off + s->boff + s->bvlen, sf->len - s->boff - s->bvlen) == -1 ||
	    hash_canon(md, s->hc, self.data, self.len, 0) == -1 ||
	    EVP_DigestFinal_ex(md, out, outlen) != 1)
		goto out;
	rc = 0;
out:
	buf_free(&self);
	free(used);
	return rc;
}

/* RSA: PKCS#1 v1.5 over the digest; Ed25519: PureEdDSA of the digest (RFC 8463 3). */
static int
check_crypto(struct vsig *s, EVP_PKEY *k, const unsigned char *dg, unsigned dglen)
{
	EVP_PKEY_CTX *pc = NULL;
	EVP_MD_CTX *mc = NULL;
	int ok = 0;

	if (s->alg == ALG_ED25519_SHA256) {
		if ((mc = EVP_MD_CTX_new()) != NULL &&
		    EVP_DigestVerifyInit(mc, NULL, NULL, NULL, k) == 1)
			ok = EVP_DigestVerify(mc, s->b, s->blen, dg, dglen) == 1;
	} else if ((pc = EVP_PKEY_CTX_new(k, NULL)) != NULL &&
	    EVP_PKEY_verify_init(pc) == 1 &&
	    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
	    EVP_PKEY_CTX_set_signature_md(pc, alg_md(s->alg)) == 1)
		ok = EVP_PKEY_verify(pc, s->b, s->blen, dg, dglen) == 1;
	EVP_MD_CTX_free(mc);
	EVP_PKEY_CTX_free(pc);
	return ok;
}

static void
check_sig(struct dkim_verify *v, struct vsig *s, const struct dns_resolver *dns)
{
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned dglen;
	EVP_MD_CTX *md;
	EVP_PKEY *k;

	if ((k = fetch_key(v, s, dns)) == NULL)
		return;
	if ((md = EVP_MD_CTX_new()) == NULL || header_hash(v, s, md, dg, &dglen) == -1)
		set_result(s, DKIM_TEMPERROR, "hash failure");
	else if (s->bodyv == DKIM_BODY_SHORT)
		set_result(s, DKIM_PERMERROR, "body shorter than l=");
	else if (s->bodyv == DKIM_BODY_MISMATCH)
		set_result(s, DKIM_FAIL, "body hash mismatch");
	else if (s->bodyv != DKIM_BODY_MATCH)
		set_result(s, DKIM_TEMPERROR, "body hash not known");
	else if (!check_crypto(s, k, dg, dglen))
		set_result(s, DKIM_FAIL, "signature did not verify");
	else
		set_result(s, DKIM_PASS, s->r.testing ? "good signature (key in testing mode)" :
		    "good signature");
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(k);
}

/* Ends the header and every body hash and decides each body verdict. */
static int
end_bodies(struct dkim_verify *v)
{
	size_t i;
	unsigned n;

	if (v->failed || dkim_msg_end(&v->m) == -1) {
		v->failed = 1;
		return -1;
	}
	if (!v->started)
		setup_sigs(v);
	for (i = 0; i < v->nsig; i++) {
		struct vsig *s = &v->sig[i];

		if (!s->live)
			continue;
		dkim_body_finish(&s->body);
		if (s->live && EVP_DigestFinal_ex(s->md, s->got, &n) != 1)
			set_result(s, DKIM_TEMPERROR, "hash failure");
		if (!s->live)
			continue;
		if (s->has_l && s->body.total < s->l)
			s->bodyv = DKIM_BODY_SHORT;
		else if (memcmp(s->got, s->bh, s->bhlen) != 0)
			s->bodyv = DKIM_BODY_MISMATCH;
		else
			s->bodyv = DKIM_BODY_MATCH;
	}
	v->bodies = 1;
	return 0;
}

int
dkim_verify_bodies(struct dkim_verify *v, uint8_t *out, size_t max)
{
	size_t i;

	if (!v->bodies && end_bodies(v) == -1)
		return -1;
	for (i = 0; i < v->nsig && i < max; i++)
		out[i] = (uint8_t)(v->sig[i].live ? v->sig[i].bodyv : DKIM_BODY_UNUSED);
	ERR_clear_error();
	return (int)i;
}

struct dkim_verify *
dkim_verify_prepared(const struct dkim_verify_opts *opts, const char *hdr, size_t len,
    const uint8_t *body, size_t n)
{
	struct dkim_verify *v = dkim_verify_new(opts);
	size_t i;

	if (v == NULL)
		return NULL;
	if (dkim_msg_feed(&v->m, hdr, len) == (size_t)-1 || dkim_msg_end(&v->m) == -1) {
		dkim_verify_free(v);
		return NULL;
	}
	/* The same header gives the same signatures in the same order. */
	setup_sigs(v);
	for (i = 0; i < v->nsig; i++) {
		struct vsig *s = &v->sig[i];

		s->bodyv = i < n && body[i] <= DKIM_BODY_SHORT ? (enum dkim_bodyv)body[i] :
		    DKIM_BODY_UNUSED;
	}
	v->bodies = 1;
	return v;
}

int
dkim_verify_finish(struct dkim_verify *v, const struct dns_resolver *dns)
{
	size_t i;

	if (!v->bodies && end_bodies(v) == -1)
		return -1;
	for (i = 0; i < v->nsig; i++)
		if (v->sig[i].live)
			check_sig(v, &v->sig[i], dns);
	ERR_clear_error();
	return 0;
}

enum dkim_result
dkim_check_digest(const struct dns_resolver *dns, const struct dkim_verify_opts *opts,
    const char *domain, const char *selector, const unsigned char *dg, size_t dglen,
    const unsigned char *sig, size_t siglen, char *why, size_t whylen)
{
	struct dkim_verify *v = dkim_verify_new(opts);
	struct vsig *s;
	enum dkim_result r;
	EVP_PKEY *k;
	int n;

	if (v == NULL)
		return snprintf(why, whylen, "out of memory"), DKIM_TEMPERROR;
	s = &v->sig[0];
	s->alg = ALG_RSA_SHA256;
	snprintf(s->r.domain, sizeof(s->r.domain), "%s", domain);
	snprintf(s->r.identity, sizeof(s->r.identity), "@%s", domain);
	s->idom = 1;
	n = snprintf(s->qname, sizeof(s->qname), "%s._domainkey.%s", selector, domain);
	if (!valid_domain(domain) || !valid_domain(selector) || n < 0 || (size_t)n > 253)
		set_result(s, DKIM_PERMERROR, "bad d= or s= value");
	else if (siglen == 0 || siglen > sizeof(s->b))
		set_result(s, DKIM_PERMERROR, "bad b= value");
	else if ((k = fetch_key(v, s, dns)) != NULL) {
		memcpy(s->b, sig, siglen);
		s->blen = siglen;
		if (check_crypto(s, k, dg, (unsigned)dglen))
			set_result(s, DKIM_PASS, "good signature");
		else
			set_result(s, DKIM_FAIL, "signature did not verify");
		EVP_PKEY_free(k);
	}
	r = s->r.result;
	snprintf(why, whylen, "%s", s->r.reason);
	dkim_verify_free(v);
	ERR_clear_error();
	return r;
}

size_t
dkim_verify_count(const struct dkim_verify *v)
{
	return v->nsig;
}

const struct dkim_sig_result *
dkim_verify_result(const struct dkim_verify *v, size_t i)
{
	return i < v->nsig ? &v->sig[i].r : NULL;
}

void
dkim_verify_free(struct dkim_verify *v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < v->nsig; i++)
		EVP_MD_CTX_free(v->sig[i].md);
	dkim_msg_free(&v->m);
	free(v);
}
