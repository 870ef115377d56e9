/*
 * dkim_sign — DKIM signing, private keys and key generation (see dkim.h).
 * One body hash (SHA-256, the same canonicalization for every key) is fed
 * while the message streams; each key then signs its own header hash.
 */
#include "mailauth/dkim.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEYFILE_MAX (64 * 1024)
#define FOLD_COL    76		/* fold before a token that would pass this column */

struct dkim_key {
	EVP_PKEY          *pk;
	enum dkim_key_type type;
};

struct dkim_sign {
	struct dkim_sign_opts o;
	char            domain[254], selector[2][64], identity[320];
	struct dkim_msg m;
	struct dkim_body body;
	EVP_MD_CTX     *md;
	int             failed;
	char            err[128];
};

/* RFC 6376 5.4.1's recommended fields, roughly; absent ones are not listed. */
static const char *const default_headers[] = {
	"From", "Sender", "Reply-To", "Subject", "Date", "Message-ID", "To", "Cc",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-ID",
	"Content-Description", "Resent-Date", "Resent-From", "Resent-Sender",
	"Resent-To", "Resent-Cc", "Resent-Message-ID", "In-Reply-To", "References",
	"List-Id", "List-Help", "List-Unsubscribe", "List-Subscribe", "List-Post",
	"List-Owner", "List-Archive", "List-Unsubscribe-Post", NULL,
};

/* Signed once more than they occur, so that adding one breaks the signature. */
static const char *const oversigned[] = {
	"From", "Subject", "Date", "To", "Cc", "Message-ID", NULL,
};

/* ---- keys ---- */

static int
no_password(char *b, int size, int rw, void *u)
{
	(void)b;
	(void)size;
	(void)rw;
	(void)u;
	return 0;	/* encrypted keys are not supported: never prompt */
}

static struct dkim_key *
key_wrap(EVP_PKEY *pk, char *err, size_t errlen)
{
	struct dkim_key *k;
	int id = EVP_PKEY_get_base_id(pk);

	if (id != EVP_PKEY_RSA && id != EVP_PKEY_ED25519) {
		snprintf(err, errlen, "not an RSA or Ed25519 key");
		EVP_PKEY_free(pk);
		return NULL;
	}
	if (id == EVP_PKEY_RSA && EVP_PKEY_get_bits(pk) < 1024) {
		snprintf(err, errlen, "RSA key under 1024 bits (RFC 8301)");
		EVP_PKEY_free(pk);
		return NULL;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		snprintf(err, errlen, "out of memory");
		EVP_PKEY_free(pk);
		return NULL;
	}
	k->pk = pk;
	k->type = id == EVP_PKEY_RSA ? DKIM_KEY_RSA : DKIM_KEY_ED25519;
	return k;
}

struct dkim_key *
dkim_key_parse(const char *data, size_t len, char *err, size_t errlen)
{
	unsigned char seed[48];
	EVP_PKEY *pk = NULL;
	size_t n;
	BIO *bio;

	if (len > KEYFILE_MAX || (bio = BIO_new_mem_buf(data, (int)len)) == NULL) {
		snprintf(err, errlen, "key too large or out of memory");
		return NULL;
	}
	pk = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
	BIO_free(bio);
	ERR_clear_error();
	/* Else the base64 of a raw 32-byte Ed25519 seed (RFC 8463 A.1). */
	if (pk == NULL && dkim_b64_decode(data, len, seed, sizeof(seed), &n) == 0 && n == 32)
		pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	OPENSSL_cleanse(seed, sizeof(seed));
	if (pk == NULL) {
		snprintf(err, errlen, "neither a PEM private key nor a base64 Ed25519 seed");
		return NULL;
	}
	return key_wrap(pk, err, errlen);
}

struct dkim_key *
dkim_key_load(const char *path, char *err, size_t errlen)
{
	struct dkim_key *k;
	char *data;
	size_t n;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: cannot open", path);
		return NULL;
	}
	if ((data = malloc(KEYFILE_MAX + 1)) == NULL) {
		fclose(fp);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n = fread(data, 1, KEYFILE_MAX + 1, fp);
	fclose(fp);
	k = dkim_key_parse(data, n, err, errlen);
	OPENSSL_cleanse(data, KEYFILE_MAX + 1);
	free(data);
	return k;
}

enum dkim_key_type
dkim_key_type(const struct dkim_key *k)
{
	return k->type;
}

int
dkim_key_dns_record(const struct dkim_key *k, struct buf *txt)
{
	unsigned char raw[32], *der = NULL;
	size_t n = sizeof(raw);
	int len, rc;

	if (k->type == DKIM_KEY_ED25519) {
		if (EVP_PKEY_get_raw_public_key(k->pk, raw, &n) != 1 || n != 32)
			return -1;
		if (buf_appends(txt, "v=DKIM1; k=ed25519; p=") == -1)
			return -1;
		return dkim_b64_encode(raw, n, txt);
	}
	if ((len = i2d_PUBKEY(k->pk, &der)) <= 0)
		return -1;
	rc = buf_appends(txt, "v=DKIM1; k=rsa; p=");
	if (rc == 0)
		rc = dkim_b64_encode(der, (size_t)len, txt);
	OPENSSL_free(der);
	return rc;
}

void
dkim_key_free(struct dkim_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pk);
	free(k);
}

int
dkim_keygen(enum dkim_key_type type, unsigned bits, struct buf *pem, struct buf *txt,
    char *err, size_t errlen)
{
	struct dkim_key k;
	BIO *bio = NULL;
	char *p;
	long n;
	int rc = -1;

	if (bits == 0)
		bits = 2048;
	if (type == DKIM_KEY_RSA && (bits < 1024 || bits > 8192)) {
		snprintf(err, errlen, "RSA bits must be 1024 to 8192");
		return -1;
	}
	k.type = type;
	k.pk = type == DKIM_KEY_RSA ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits) :
	    EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (k.pk == NULL || (bio = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_PrivateKey(bio, k.pk, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (n = BIO_get_mem_data(bio, &p)) <= 0 || buf_append(pem, p, (size_t)n) == -1 ||
	    dkim_key_dns_record(&k, txt) == -1)
		snprintf(err, errlen, "key generation failed");
	else
		rc = 0;
	BIO_free(bio);
	EVP_PKEY_free(k.pk);
	ERR_clear_error();
	return rc;
}

/* ---- signing ---- */

static void
sign_sink(void *ctx, const void *p, size_t n)
{
	struct dkim_sign *s = ctx;

	if (EVP_DigestUpdate(s->md, p, n) != 1)
		s->failed = 1;
}

/* Header names are 1*ftext (RFC 5322 2.2): printable, no ':'. */
static int
names_ok(const char *const *names)
{
	size_t i, k;

	for (i = 0; names != NULL && names[i] != NULL; i++) {
		if (names[i][0] == '\0')
			return 0;
		for (k = 0; names[i][k] != '\0'; k++)
			if ((unsigned char)names[i][k] < 0x21 || (unsigned char)names[i][k] > 0x7e ||
			    names[i][k] == ':')
				return 0;
	}
	return 1;
}

struct dkim_sign *
dkim_sign_new(const struct dkim_sign_opts *o)
{
	struct dkim_sign *s;
	size_t i;

	if (o->domain == NULL || o->nkeys == 0 || o->nkeys > 2 || !names_ok(o->headers))
		return NULL;
	for (i = 0; i < o->nkeys; i++)
		if (o->keys[i].key == NULL || o->keys[i].selector == NULL)
			return NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->o = *o;
	for (i = 0; i < o->nkeys; i++) {
		if (snprintf(s->selector[i], sizeof(s->selector[i]), "%s", o->keys[i].selector) >=
		    (int)sizeof(s->selector[i])) {
			free(s);
			return NULL;
		}
	}
	if (snprintf(s->domain, sizeof(s->domain), "%s", o->domain) >= (int)sizeof(s->domain) ||
	    snprintf(s->identity, sizeof(s->identity), "%s", o->identity ? o->identity : "") >=
	    (int)sizeof(s->identity) || (s->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(s->md);
		free(s);
		return NULL;
	}
	if (s->o.timestamp == 0)
		s->o.timestamp = time(NULL);
	dkim_msg_init(&s->m);
	dkim_body_init(&s->body, o->bcanon, UINT64_MAX, sign_sink, s);
	return s;
}

int
dkim_sign_feed(struct dkim_sign *s, const char *data, size_t len)
{
	size_t off;

	if (s->failed)
		return -1;
	if ((off = dkim_msg_feed(&s->m, data, len)) == (size_t)-1) {
		snprintf(s->err, sizeof(s->err), "header section too large");
		s->failed = 1;
		return -1;
	}
	if (s->m.done)
		dkim_body_feed(&s->body, data + off, len - off);
	return s->failed ? -1 : 0;
}

static size_t
count_fields(const struct dkim_msg *m, const char *name)
{
	size_t i, n = 0, len = strlen(name);

	for (i = 0; i < m->nf; i++)
		n += (size_t)dkim_msg_is(m, i, name, len);
	return n;
}

static int
is_oversigned(const char *name)
{
	size_t i;

	for (i = 0; oversigned[i] != NULL; i++)
		if (strcasecmp(oversigned[i], name) == 0)
			return 1;
	return 0;
}

/* Appends each name once per occurrence (+1 if over-signed), lower case. */
static int
build_hlist_names(struct dkim_sign *s, const char *const *names, struct buf *h)
{
	size_t i, j, k, n;

	for (i = 0; names[i] != NULL; i++) {
		n = count_fields(&s->m, names[i]) + (size_t)is_oversigned(names[i]);
		for (j = 0; j < n; j++) {
			if (h->len > 0 && buf_appendc(h, ':') == -1)
				return -1;
			for (k = 0; names[i][k] != '\0'; k++) {
				char c = names[i][k];

				if (buf_appendc(h, c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c) == -1)
					return -1;
			}
		}
	}
	return 0;
}

/* The h= list. */
static int
build_hlist(struct dkim_sign *s, struct buf *h)
{
	static const char *const from_only[] = { "From", NULL };
	const char *const *names = s->o.headers ? s->o.headers : default_headers;
	size_t i;

	/* RFC 6376 5.4: From MUST be signed, whatever the configured list says. */
	for (i = 0; names[i] != NULL && strcasecmp(names[i], "From") != 0; i++)
		;
	if (names[i] == NULL && build_hlist_names(s, from_only, h) == -1)
		return -1;
	return build_hlist_names(s, names, h);
}

struct fold {
	struct buf *b;
	size_t      col;
};

/* Appends a token, after a space or, if it would not fit, a fold. */
static int
fold_tok(struct fold *f, const char *tok, size_t n, const char *sep)
{
	if (f->col + strlen(sep) + n > FOLD_COL && f->col > 1) {
		if (buf_append(f->b, "\r\n\t", 3) == -1)
			return -1;
		f->col = 1;
	} else {
		if (buf_appends(f->b, sep) == -1)
			return -1;
		f->col += strlen(sep);
	}
	f->col += n;
	return buf_append(f->b, tok, n);
}

/* Appends "name=value;". */
static int
fold_tag(struct fold *f, const char *name, const char *val)
{
	char tok[400];
	int n = snprintf(tok, sizeof(tok), "%s=%s;", name, val);

	if (n < 0 || (size_t)n >= sizeof(tok))
		return -1;
	return fold_tok(f, tok, (size_t)n, " ");
}

/* i= in dkim-quoted-printable (RFC 6376 2.11). */
static int
qp_identity(const char *id, struct buf *out)
{
	for (; *id; id++) {
		unsigned char c = (unsigned char)*id;

		if (c > 0x20 && c < 0x7f && c != ';' && c != '=') {
			if (buf_appendc(out, (char)c) == -1)
				return -1;
		} else if (buf_printf(out, "=%02X", c) == -1)
			return -1;
	}
	return 0;
}

static int
fold_hlist(struct fold *f, const struct buf *h)
{
	size_t i = 0, e;
	char tok[300];

	while (i < h->len) {
		for (e = i; e < h->len && h->data[e] != ':'; e++)
			;
		if (snprintf(tok, sizeof(tok), "%s%.*s%s", i == 0 ? "h=" : ":", (int)(e - i),
		    h->data + i, e == h->len ? ";" : "") >= (int)sizeof(tok) ||
		    fold_tok(f, tok, strlen(tok), i == 0 ? " " : "") == -1)
			return -1;
		i = e + 1;
	}
	return 0;
}

/* The field up to and including "b=", as it will be hashed (RFC 6376 3.7). */
static int
build_field(struct dkim_sign *s, size_t ki, const struct buf *bh,
    const struct buf *h, struct fold *fo)
{
	const struct dkim_key *k = s->o.keys[ki].key;
	char tok[64];
	struct buf id;
	int rc = -1;

	buf_init(&id, 1024);
	snprintf(tok, sizeof(tok), "%s/%s", s->o.hcanon == DKIM_CANON_SIMPLE ? "simple" :
	    "relaxed", s->o.bcanon == DKIM_CANON_SIMPLE ? "simple" : "relaxed");
	if (buf_appends(fo->b, "DKIM-Signature:") == -1 || fold_tag(fo, "v", "1") == -1 ||
	    fold_tag(fo, "a", k->type == DKIM_KEY_RSA ? "rsa-sha256" : "ed25519-sha256") == -1 ||
	    fold_tag(fo, "c", tok) == -1 || fold_tag(fo, "d", s->domain) == -1 ||
	    fold_tag(fo, "s", s->selector[ki]) == -1)
		goto out;
	snprintf(tok, sizeof(tok), "%lld", (long long)s->o.timestamp);
	if (fold_tag(fo, "t", tok) == -1)
		goto out;
	snprintf(tok, sizeof(tok), "%lld", (long long)s->o.timestamp + s->o.expire);
	if (s->o.expire > 0 && fold_tag(fo, "x", tok) == -1)
		goto out;
	if (s->identity[0] && (qp_identity(s->identity, &id) == -1 ||
	    fold_tag(fo, "i", id.data) == -1))
		goto out;
	snprintf(tok, sizeof(tok), "%llu", (unsigned long long)s->body.total);
	if (s->o.body_length && fold_tag(fo, "l", tok) == -1)
		goto out;
	if (fold_hlist(fo, h) == -1 || fold_tag(fo, "bh", bh->data) == -1 ||
	    fold_tok(fo, "b=", 2, " ") == -1)
		goto out;
	rc = 0;
out:
	buf_free(&id);
	return rc;
}

/* Selected fields bottom-up, then the new field itself without CRLF. */
static int
hash_headers(struct dkim_sign *s, const struct buf *h, const struct buf *field,
    unsigned char *dg, unsigned *dglen)
{
	unsigned char *used = calloc(s->m.nf ? s->m.nf : 1, 1);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	struct buf c;
	size_t i = 0, e;
	long f;
	int rc = -1;

	buf_init(&c, DKIM_HEADER_MAX * 2);
	if (used == NULL || md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto out;
	while (i < h->len) {
		for (e = i; e < h->len && h->data[e] != ':'; e++)
			;
		if ((f = dkim_msg_select(&s->m, h->data + i, e - i, used)) >= 0 &&
		    dkim_canon_header(s->o.hcanon, s->m.hdr.data + s->m.f[f].off, s->m.f[f].len, 1,
		    &c) == -1)
			goto out;
		i = e + 1;
	}
	if (dkim_canon_header(s->o.hcanon, field->data, field->len, 0, &c) == -1 ||
	    EVP_DigestUpdate(md, c.data, c.len) != 1 || EVP_DigestFinal_ex(md, dg, dglen) != 1)
		goto out;
	rc = 0;
out:
	buf_free(&c);
	EVP_MD_CTX_free(md);
	free(used);
	return rc;
}

/* RSA: PKCS#1 v1.5 of the SHA-256; Ed25519: PureEdDSA of the SHA-256 (RFC 8463 3). */
static int
sign_digest(const struct dkim_key *k, const unsigned char *dg, unsigned dglen,
    unsigned char *sig, size_t *siglen)
{
	EVP_PKEY_CTX *pc = NULL;
	EVP_MD_CTX *mc = NULL;
	int ok = 0;

	if (k->type == DKIM_KEY_ED25519) {
		ok = (mc = EVP_MD_CTX_new()) != NULL &&
		    EVP_DigestSignInit(mc, NULL, NULL, NULL, k->pk) == 1 &&
		    EVP_DigestSign(mc, sig, siglen, dg, dglen) == 1;
	} else {
		ok = (pc = EVP_PKEY_CTX_new(k->pk, NULL)) != NULL &&
		    EVP_PKEY_sign_init(pc) == 1 &&
		    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
		    EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
		    EVP_PKEY_sign(pc, sig, siglen, dg, dglen) == 1;
	}
	EVP_MD_CTX_free(mc);
	EVP_PKEY_CTX_free(pc);
	return ok ? 0 : -1;
}

int
dkim_key_sign_digest(const struct dkim_key *k, const unsigned char *dg, size_t dglen,
    struct buf *b64)
{
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);

	if (sign_digest(k, dg, (unsigned)dglen, sig, &siglen) == -1) {
		ERR_clear_error();
		return -1;
	}
	return dkim_b64_encode(sig, siglen, b64);
}

/* The b= value, folded inside itself (FWS is allowed in base64, RFC 6376 3.5). */
static int
append_b(struct fold *fo, const struct buf *b64)
{
	size_t i = 0, room, n;

	while (i < b64->len) {
		room = fo->col < FOLD_COL ? FOLD_COL - fo->col : 1;
		n = b64->len - i < room ? b64->len - i : room;
		if (buf_append(fo->b, b64->data + i, n) == -1)
			return -1;
		i += n;
		fo->col += n;
		if (i < b64->len) {
			if (buf_append(fo->b, "\r\n\t", 3) == -1)
				return -1;
			fo->col = 1;
		}
	}
	return buf_append(fo->b, "\r\n", 2);
}

static int
sign_one(struct dkim_sign *s, size_t ki, const struct buf *bh,
    const struct buf *h, struct buf *out)
{
	unsigned char dg[EVP_MAX_MD_SIZE], sig[1024];
	size_t siglen = sizeof(sig);
	unsigned dglen;
	struct buf f, b64;
	struct fold fo = { &f, 15 };
	int rc = -1;

	buf_init(&f, 64 * 1024);
	buf_init(&b64, 4096);
	if (build_field(s, ki, bh, h, &fo) == -1 || hash_headers(s, h, &f, dg, &dglen) == -1 ||
	    sign_digest(s->o.keys[ki].key, dg, dglen, sig, &siglen) == -1 ||
	    dkim_b64_encode(sig, siglen, &b64) == -1 || append_b(&fo, &b64) == -1 ||
	    buf_append(out, f.data, f.len) == -1)
		snprintf(s->err, sizeof(s->err), "signing failed");
	else
		rc = 0;
	buf_free(&f);
	buf_free(&b64);
	ERR_clear_error();
	return rc;
}

int
dkim_sign_finish(struct dkim_sign *s, struct buf *out)
{
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned dglen;
	struct buf bh, h;
	size_t i;
	int rc = -1;

	if (s->failed)
		return -1;
	if (dkim_msg_end(&s->m) == -1) {
		snprintf(s->err, sizeof(s->err), "header section too large");
		return -1;
	}
	/* RFC 6376 5.4: From MUST be signed, so a message without one is refused. */
	if (count_fields(&s->m, "From") == 0) {
		snprintf(s->err, sizeof(s->err), "no From field (RFC 6376 5.4)");
		return -1;
	}
	dkim_body_finish(&s->body);
	buf_init(&bh, 128);
	buf_init(&h, 64 * 1024);
	if (s->failed || EVP_DigestFinal_ex(s->md, dg, &dglen) != 1 ||
	    dkim_b64_encode(dg, dglen, &bh) == -1 || build_hlist(s, &h) == -1) {
		snprintf(s->err, sizeof(s->err), "hashing failed");
		goto out;
	}
	for (i = 0; i < s->o.nkeys; i++)
		if (sign_one(s, i, &bh, &h, out) == -1)
			goto out;
	rc = 0;
out:
	s->failed = 1;	/* one message per signer */
	buf_free(&bh);
	buf_free(&h);
	return rc;
}

const char *
dkim_sign_error(const struct dkim_sign *s)
{
	return s->err[0] ? s->err : "no error";
}

void
dkim_sign_free(struct dkim_sign *s)
{
	if (s == NULL)
		return;
	EVP_MD_CTX_free(s->md);
	dkim_msg_free(&s->m);
	free(s);
}
