/*
 * Fuzz harness for the DKIM parsers: the first byte picks a target.
 *   0: taglist_parse — spans stay inside the input, no duplicate names.
 *   1: header canonicalization — simple is the identity, relaxed is bounded.
 *   2: a whole message through the verifier, with the bytes before the first
 *      NUL published as the key record of both RFC 8463 selectors; the
 *      results must not depend on chunking (1-byte feed vs one chunk).
 *   3: body canonicalization — chunked and whole give the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "mailauth/dkim.h"
#include "mailauth/dkim_canon.h"
#include "mailauth/taglist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_taglist(const char *p, size_t n)
{
	struct taglist tl;
	char err[128];
	size_t i, j;

	if (taglist_parse(p, n, &tl, err, sizeof(err)) == -1)
		return;
	for (i = 0; i < tl.n; i++) {
		const struct tag *t = &tl.t[i];

		if (t->name < p || t->name + t->namelen > p + n || t->namelen == 0 ||
		    t->val < p || t->val + t->vallen > p + n || memchr(t->val, ';', t->vallen))
			abort();
		for (j = 0; j < i; j++)
			if (tl.t[j].namelen == t->namelen && !memcmp(tl.t[j].name, t->name, t->namelen))
				abort();
	}
}

static void
fuzz_header(const char *p, size_t n)
{
	struct buf out;

	buf_init(&out, 1 << 20);
	if (dkim_canon_header(DKIM_CANON_SIMPLE, p, n, 1, &out) == -1 || out.len != n + 2 ||
	    memcmp(out.data, p, n) != 0)
		abort();
	buf_reset(&out);
	if (dkim_canon_header(DKIM_CANON_RELAXED, p, n, 0, &out) == -1 || out.len > n)
		abort();
	buf_free(&out);
}

static void
sink(void *ctx, const void *p, size_t n)
{
	if (buf_append(ctx, p, n) == -1)
		abort();
}

static void
fuzz_body(const char *p, size_t n)
{
	int c;

	for (c = 0; c < 2; c++) {
		struct buf a, b;
		struct dkim_body x, y;
		size_t i;

		buf_init(&a, 1 << 20);
		buf_init(&b, 1 << 20);
		dkim_body_init(&x, (enum dkim_canon)c, UINT64_MAX, sink, &a);
		dkim_body_init(&y, (enum dkim_canon)c, n / 2, sink, &b);
		dkim_body_feed(&x, p, n);
		for (i = 0; i < n; i++)
			dkim_body_feed(&y, p + i, 1);
		dkim_body_finish(&x);
		dkim_body_finish(&y);
		/* the capped copy is a prefix of the whole; totals agree */
		if (x.total != y.total || a.len != x.total || b.len > n / 2 ||
		    b.len != (x.total < n / 2 ? x.total : n / 2) ||
		    (b.len > 0 && memcmp(a.data, b.data, b.len) != 0))
			abort();
		buf_free(&a);
		buf_free(&b);
	}
}

static struct dkim_verify *
verify(const struct dns_resolver *r, const char *p, size_t n, size_t chunk)
{
	struct dkim_verify_opts o = { .now = 1700000000, .allow_sha1 = 1, .min_rsa_bits = 512 };
	struct dkim_verify *v = dkim_verify_new(&o);
	size_t i, k;

	if (v == NULL)
		abort();
	for (i = 0; i < n; i += k) {
		k = n - i < chunk ? n - i : chunk;
		(void)dkim_verify_feed(v, p + i, k);
	}
	(void)dkim_verify_finish(v, r);
	return v;
}

static void
fuzz_message(const char *p, size_t n)
{
	const char *nul = memchr(p, '\0', n);
	struct dns_static *z = dns_static_new();
	struct dns_resolver r;
	struct dkim_verify *a, *b;
	struct dns_rr rr;
	size_t i;

	if (z == NULL)
		abort();
	memset(&rr, 0, sizeof(rr));
	rr.type = DNS_T_TXT;
	rr.data = (char *)p;
	rr.len = nul ? (size_t)(nul - p) : 0;
	if (dns_static_add_rr(z, "brisbane._domainkey.football.example.com", &rr) == -1 ||
	    dns_static_add_rr(z, "test._domainkey.football.example.com", &rr) == -1)
		abort();
	if (nul) {
		n -= (size_t)(nul + 1 - p);
		p = nul + 1;
	}
	r = dns_static_resolver(z);
	a = verify(&r, p, n, n ? n : 1);
	b = verify(&r, p, n, 1);
	if (dkim_verify_count(a) != dkim_verify_count(b))
		abort();
	for (i = 0; i < dkim_verify_count(a); i++)
		if (memcmp(dkim_verify_result(a, i), dkim_verify_result(b, i),
		    sizeof(struct dkim_sig_result)) != 0)
			abort();
	dkim_verify_free(a);
	dkim_verify_free(b);
	dns_static_free(z);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy;

	if (size < 1)
		return 0;
	/* An exact-size copy, so ASan catches a read past the end. */
	if ((copy = malloc(size - 1 ? size - 1 : 1)) == NULL)
		return 0;
	memcpy(copy, data + 1, size - 1);
	switch (data[0] % 4) {
	case 0:
		fuzz_taglist(copy, size - 1);
		break;
	case 1:
		fuzz_header(copy, size - 1);
		break;
	case 2:
		fuzz_message(copy, size - 1);
		break;
	default:
		fuzz_body(copy, size - 1);
		break;
	}
	free(copy);
	return 0;
}
