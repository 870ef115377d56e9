/*
 * Unit tests for src/mailauth/dkim.c, dkim_sign.c, dkim_canon.c, taglist.c:
 * tag lists, canonicalization, the shared test vectors of
 * ../shared/testdata/dkim (or $TERN_TESTDATA/dkim), sign/verify rules,
 * streaming, and interoperability with dkimpy (python3-dkim) both ways.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "dns/dns.h"
#include "mailauth/dkim.h"
#include "mailauth/dkim_canon.h"
#include "mailauth/taglist.h"

static char tdir[512];		/* .../testdata/dkim */
static char tmpdir[256];
static int  vec_pass, vec_fail;

/* ---- helpers ---- */

static char *
read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *p;
	long n;

	if (fp == NULL)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	p = malloc((size_t)n + 1);
	assert_non_null(p);
	*len = fread(p, 1, (size_t)n, fp);
	p[*len] = '\0';
	fclose(fp);
	return p;
}

static char *
tfile(const char *rel, size_t *len)
{
	char path[1024];
	char *p;

	snprintf(path, sizeof(path), "%s/%s", tdir, rel);
	p = read_file(path, len);
	if (p == NULL)
		fail_msg("cannot read %s", path);
	return p;
}

/* Every line end becomes CRLF (the vectors are stored with LF, some CRLF). */
static void
to_crlf(const char *p, size_t n, struct buf *out)
{
	size_t i;

	buf_init(out, 1 << 24);
	for (i = 0; i < n; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			assert_int_equal(buf_appendc(out, '\r'), 0);
		assert_int_equal(buf_appendc(out, p[i]), 0);
	}
}

static void
add_txt(struct dns_static *z, const char *name, const char *val, size_t len)
{
	struct dns_rr rr;

	memset(&rr, 0, sizeof(rr));
	rr.type = DNS_T_TXT;
	rr.data = (char *)val;
	rr.len = len;
	assert_int_equal(dns_static_add_rr(z, name, &rr), 0);
}

/* dns.txt / FAKE_DNS.dat: "NAME VALUE" lines (see the testdata README). */
static void
load_zone(struct dns_static *z, const char *rel, const char *skip)
{
	size_t len, i = 0;
	char *text = tfile(rel, &len);

	while (i < len) {
		char line[4096], name[300], err[128], *v;
		size_t e = i, k;

		while (e < len && text[e] != '\n')
			e++;
		k = e - i;
		assert_true(k < sizeof(line));
		memcpy(line, text + i, k);
		line[k] = '\0';
		i = e + 1;
		while (k > 0 && (line[k - 1] == '\r' || line[k - 1] == ' ' || line[k - 1] == '\t'))
			line[--k] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		v = line + strcspn(line, " \t");
		assert_true((size_t)(v - line) < sizeof(name));
		memcpy(name, line, (size_t)(v - line));
		name[v - line] = '\0';
		v += strspn(v, " \t");
		if (strcmp(v, "NXDOMAIN") == 0 || (skip && strcmp(name, skip) == 0))
			continue;
		if (strncmp(v, "~~", 2) == 0) {
			char l2[400];

			snprintf(l2, sizeof(l2), "%s SERVFAIL", name);
			assert_int_equal(dns_static_add(z, l2, err, sizeof(err)), 0);
		} else if (strcmp(v, "\"\"") == 0)
			add_txt(z, name, "", 0);
		else
			add_txt(z, name, v, strlen(v));
	}
	free(text);
}

/* Verifies msg fed in chunks of chunk bytes (0: one chunk); "r1,r2,..." into res. */
static struct dkim_verify *
verify_buf(struct dns_static *z, const char *msg, size_t len, size_t chunk, int legacy,
    char *res, size_t reslen)
{
	struct dkim_verify_opts o;
	struct dns_resolver r = dns_static_resolver(z);
	struct dkim_verify *v;
	size_t i, n;

	memset(&o, 0, sizeof(o));
	if (legacy) {
		o.allow_sha1 = 1;
		o.min_rsa_bits = 512;
	}
	v = dkim_verify_new(&o);
	assert_non_null(v);
	if (chunk == 0)
		chunk = len ? len : 1;
	for (i = 0; i < len; i += n) {
		n = len - i < chunk ? len - i : chunk;
		assert_int_equal(dkim_verify_feed(v, msg + i, n), 0);
	}
	assert_int_equal(dkim_verify_finish(v, &r), 0);
	res[0] = '\0';
	for (i = 0; i < dkim_verify_count(v); i++) {
		size_t l = strlen(res);

		snprintf(res + l, reslen - l, "%s%s", i ? "," : "",
		    dkim_result_str(dkim_verify_result(v, i)->result));
	}
	return v;
}

/*
 * The same check split as the daemon does it: body verdicts where the
 * message streams, then a verifier over the header section alone.
 */
static void
verify_split(struct dns_static *z, const char *msg, size_t len, int legacy, char *res,
    size_t reslen)
{
	struct dkim_verify_opts o;
	struct dns_resolver r = dns_static_resolver(z);
	struct dkim_verify *v, *p;
	uint8_t body[DKIM_MAX_SIGS];
	const char *e = memmem(msg, len, "\r\n\r\n", 4);
	size_t i, hlen = e ? (size_t)(e - msg) + 4 : len;
	int n;

	memset(&o, 0, sizeof(o));
	if (legacy) {
		o.allow_sha1 = 1;
		o.min_rsa_bits = 512;
	}
	v = dkim_verify_new(&o);
	assert_non_null(v);
	for (i = 0; i < len; i += 7)
		assert_int_equal(dkim_verify_feed(v, msg + i, len - i < 7 ? len - i : 7), 0);
	n = dkim_verify_bodies(v, body, DKIM_MAX_SIGS);
	assert_true(n >= 0);
	assert_int_equal((size_t)n, dkim_verify_count(v));
	p = dkim_verify_prepared(&o, msg, hlen, body, (size_t)n);
	assert_non_null(p);
	assert_int_equal(dkim_verify_finish(p, &r), 0);
	assert_int_equal(dkim_verify_count(p), dkim_verify_count(v));
	res[0] = '\0';
	for (i = 0; i < dkim_verify_count(p); i++) {
		size_t l = strlen(res);

		snprintf(res + l, reslen - l, "%s%s", i ? "," : "",
		    dkim_result_str(dkim_verify_result(p, i)->result));
	}
	dkim_verify_free(v);
	dkim_verify_free(p);
}

static void
print_results(const char *what, const struct dkim_verify *v)
{
	size_t i;

	for (i = 0; i < dkim_verify_count(v); i++) {
		const struct dkim_sig_result *r = dkim_verify_result(v, i);

		printf("  %s #%zu: %s d=%s s=%s a=%s b=%s i=%s bits=%u (%s)\n", what, i,
		    dkim_result_str(r->result), r->domain, r->selector, r->algorithm,
		    r->header_b, r->identity, r->key_bits, r->reason);
	}
}

static struct dns_static *
zone_for(const char *dir)
{
	struct dns_static *z = dns_static_new();

	assert_non_null(z);
	load_zone(z, strcmp(dir, "mail-dkim") == 0 ? "mail-dkim/FAKE_DNS.dat" : "dns.txt", NULL);
	return z;
}

/* Checks one vector file; counts it; returns the verifier for more checks. */
static int
check_vector(const char *dir, const char *file, int legacy, const char *expect,
    const char *over_name, const char *over_file)
{
	struct dns_static *z;
	struct dkim_verify *v;
	char rel[256], res[256], split[256];
	size_t len;
	struct buf msg;
	char *raw;
	int ok;

	if (over_name != NULL) {
		/* dns.txt with one key record replaced. */
		char *rec = tfile(over_file, &len);

		while (len > 0 && (rec[len - 1] == '\n' || rec[len - 1] == '\r'))
			len--;
		z = dns_static_new();
		add_txt(z, over_name, rec, len);
		free(rec);
		load_zone(z, "dns.txt", over_name);
	} else
		z = zone_for(dir);
	snprintf(rel, sizeof(rel), "%s/%s", dir, file);
	raw = tfile(rel, &len);
	to_crlf(raw, len, &msg);
	v = verify_buf(z, msg.data, msg.len, 0, legacy, res, sizeof(res));
	verify_split(z, msg.data, msg.len, legacy, split, sizeof(split));
	ok = strcmp(res, expect) == 0 && strcmp(split, expect) == 0;
	if (strcmp(split, res) != 0)
		printf("split verification differs: %s\n", split);
	printf("%s %s%s%s%s: %s (expected %s)\n", ok ? "ok  " : "FAIL", rel,
	    legacy ? " [legacy]" : "", over_file ? " key " : "", over_file ? over_file : "",
	    res, expect);
	if (!ok)
		print_results(file, v);
	if (ok)
		vec_pass++;
	else
		vec_fail++;
	dkim_verify_free(v);
	dns_static_free(z);
	buf_free(&msg);
	free(raw);
	return ok;
}

/* ---- tag lists ---- */

static void
test_taglist(void **state)
{
	struct taglist tl;
	char err[128];
	const char *s;

	s = " v=1; a = rsa-sha256 ;\r\n\tb=ab\r\n cd ;c=;";
	assert_int_equal(taglist_parse(s, strlen(s), &tl, err, sizeof(err)), 0);
	assert_int_equal(tl.n, 4);
	assert_true(taglist_val_is(taglist_find(&tl, "a"), "rsa-sha256"));
	assert_int_equal(taglist_find(&tl, "b")->vallen, 7);	/* "ab\r\n cd": inner FWS kept */
	assert_memory_equal(taglist_find(&tl, "b")->val, "ab\r\n cd", 7);
	assert_int_equal(taglist_find(&tl, "c")->vallen, 0);
	assert_null(taglist_find(&tl, "A"));	/* tag names are case-sensitive */
	assert_int_equal(taglist_parse("", 0, &tl, err, sizeof(err)), 0);
	assert_int_equal(tl.n, 0);
	s = "x1 = extra ; t = y:n";
	assert_int_equal(taglist_parse(s, strlen(s), &tl, err, sizeof(err)), 0);
	assert_true(taglist_val_is(taglist_find(&tl, "t"), "y:n"));
	/* errors */
	assert_int_equal(taglist_parse("a=1; a=2", 8, &tl, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "duplicate"));
	assert_int_equal(taglist_parse("k=rsa; t; p=x", 13, &tl, err, sizeof(err)), -1);
	assert_int_equal(taglist_parse("a=1;;b=2", 8, &tl, err, sizeof(err)), -1);
	assert_int_equal(taglist_parse("1a=2", 4, &tl, err, sizeof(err)), -1);
	assert_int_equal(taglist_parse("a-b=2", 5, &tl, err, sizeof(err)), -1);
	assert_int_equal(taglist_parse("a=b\r\nc=d", 8, &tl, err, sizeof(err)), -1);	/* CRLF without WSP */
	assert_int_equal(taglist_parse("a=\x01", 3, &tl, err, sizeof(err)), -1);
	assert_int_equal(taglist_parse("synerr", 6, &tl, err, sizeof(err)), -1);
	assert_int_equal(taglist_parse("a=b\0c", 5, &tl, err, sizeof(err)), -1);	/* NUL is data */
}

/* ---- canonicalization ---- */

struct sinkbuf {
	struct buf b;
};

static void
sink(void *ctx, const void *p, size_t n)
{
	struct sinkbuf *s = ctx;

	assert_int_equal(buf_append(&s->b, p, n), 0);
}

static void
body_canon(enum dkim_canon c, const char *in, size_t chunk, uint64_t limit, struct buf *out)
{
	struct sinkbuf s;
	struct dkim_body b;
	size_t i, n, len = strlen(in);

	buf_init(&s.b, 1 << 20);
	dkim_body_init(&b, c, limit, sink, &s);
	for (i = 0; i < len; i += n) {
		n = chunk && len - i > chunk ? chunk : len - i;
		dkim_body_feed(&b, in + i, n);
	}
	dkim_body_finish(&b);
	*out = s.b;
}

static void
expect_body(enum dkim_canon c, const char *in, const char *want)
{
	size_t chunk;

	for (chunk = 0; chunk < 4; chunk++) {
		struct buf out;

		body_canon(c, in, chunk, UINT64_MAX, &out);
		assert_int_equal(out.len, strlen(want));
		assert_memory_equal(out.data, want, out.len);
		buf_free(&out);
	}
}

static void
test_canon_body(void **state)
{
	struct buf out;

	/* RFC 6376 3.4.5 example */
	expect_body(DKIM_CANON_RELAXED, " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n");
	expect_body(DKIM_CANON_SIMPLE, " C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n");
	/* empty body: simple is one CRLF, relaxed nothing (RFC 6376 3.4.3, 3.4.4) */
	expect_body(DKIM_CANON_SIMPLE, "", "\r\n");
	expect_body(DKIM_CANON_RELAXED, "", "");
	expect_body(DKIM_CANON_SIMPLE, "\r\n\r\n", "\r\n");
	expect_body(DKIM_CANON_RELAXED, "\r\n  \r\n\t\r\n", "");
	/* no final CRLF: one is added */
	expect_body(DKIM_CANON_SIMPLE, "abc", "abc\r\n");
	expect_body(DKIM_CANON_RELAXED, "abc  ", "abc\r\n");
	/* empty lines inside are kept */
	expect_body(DKIM_CANON_RELAXED, "a\r\n\r\n \r\nb\r\n\r\n", "a\r\n\r\n\r\nb\r\n");
	/* bare CR and LF are content, not line ends */
	expect_body(DKIM_CANON_SIMPLE, "a\rb\nc\r\n", "a\rb\nc\r\n");
	expect_body(DKIM_CANON_RELAXED, "a \r", "a \r\r\n");
	/* l= caps what is hashed, total counts all */
	{
		struct sinkbuf s;
		struct dkim_body b;

		buf_init(&s.b, 1024);
		dkim_body_init(&b, DKIM_CANON_SIMPLE, 3, sink, &s);
		dkim_body_feed(&b, "hello\r\n", 7);
		dkim_body_finish(&b);
		assert_int_equal(s.b.len, 3);
		assert_memory_equal(s.b.data, "hel", 3);
		assert_int_equal(b.total, 7);
		buf_free(&s.b);
	}
	body_canon(DKIM_CANON_SIMPLE, "x", 0, 0, &out);
	assert_int_equal(out.len, 0);
	buf_free(&out);
}

static void
test_canon_header(void **state)
{
	struct buf out;
	const char *f1 = "B : Y\t\r\n\tZ  ";

	buf_init(&out, 1024);
	assert_int_equal(dkim_canon_header(DKIM_CANON_RELAXED, "A: X", 4, 1, &out), 0);
	assert_int_equal(dkim_canon_header(DKIM_CANON_RELAXED, f1, strlen(f1), 1, &out), 0);
	assert_string_equal(out.data, "a:X\r\nb:Y Z\r\n");
	buf_reset(&out);
	assert_int_equal(dkim_canon_header(DKIM_CANON_SIMPLE, f1, strlen(f1), 1, &out), 0);
	assert_string_equal(out.data, "B : Y\t\r\n\tZ  \r\n");
	buf_reset(&out);
	assert_int_equal(dkim_canon_header(DKIM_CANON_RELAXED, "SUBJECT:", 8, 0, &out), 0);
	assert_string_equal(out.data, "subject:");
	buf_free(&out);
}

static void
test_msg_split(void **state)
{
	const char *m = "From: a\r\nTo: b\r\n c\r\nSubject: x\r\nfrom: d\r\n\r\nbody\r\n";
	struct dkim_msg msg;
	unsigned char used[8] = { 0 };
	size_t i, off = 0;

	/* byte by byte: the body starts exactly after the empty line */
	dkim_msg_init(&msg);
	for (i = 0; i < strlen(m); i++) {
		size_t r = dkim_msg_feed(&msg, m + i, 1);

		if (msg.done && off == 0 && r == 1)
			off = i + 1;
	}
	assert_int_equal(off, strlen(m) - 6);
	assert_int_equal(msg.nf, 4);
	assert_int_equal(msg.f[1].len, 9);	/* "To: b\r\n c" */
	assert_int_equal(dkim_msg_select(&msg, "FROM", 4, used), 3);	/* bottom-up */
	assert_int_equal(dkim_msg_select(&msg, "from", 4, used), 0);
	assert_int_equal(dkim_msg_select(&msg, "from", 4, used), -1);	/* over-signed: none */
	dkim_msg_free(&msg);
	/* no header at all */
	dkim_msg_init(&msg);
	assert_int_equal(dkim_msg_feed(&msg, "\r\nbody", 6), 2);
	assert_int_equal(msg.nf, 0);
	dkim_msg_free(&msg);
	/* no separator: all header, ended by dkim_msg_end */
	dkim_msg_init(&msg);
	assert_int_equal(dkim_msg_feed(&msg, "A: 1\r\nB: 2", 10), 10);
	assert_int_equal(dkim_msg_end(&msg), 0);
	assert_int_equal(msg.nf, 2);
	dkim_msg_free(&msg);
}

static void
test_base64(void **state)
{
	unsigned char out[16];
	size_t n;
	struct buf b;

	assert_int_equal(dkim_b64_decode("aGVs\r\n\tbG8=", 11, out, sizeof(out), &n), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(out, "hello", 5);
	assert_int_equal(dkim_b64_decode("aGVsbG8", 7, out, sizeof(out), &n), -1);
	assert_int_equal(dkim_b64_decode("aGVs=bG8", 8, out, sizeof(out), &n), -1);
	assert_int_equal(dkim_b64_decode("a!==", 4, out, sizeof(out), &n), -1);
	assert_int_equal(dkim_b64_decode("", 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	buf_init(&b, 64);
	assert_int_equal(dkim_b64_encode((const unsigned char *)"hello", 5, &b), 0);
	assert_string_equal(b.data, "aGVsbG8=");
	buf_free(&b);
}

/* ---- the shared vectors (README.md of the testdata) ---- */

static const struct {
	const char *dir, *file;
	int         legacy;
	const char *expect;
} vectors[] = {
	{ "dkimpy", "rfc6376.signed.msg", 0, "pass,pass" },
	{ "dkimpy", "ed25519test2.msg", 0, "pass" },
	{ "dkimpy", "test2.message", 0, "pass" },
	{ "mail-dkim", "goodkey_ed25519.txt", 0, "pass" },
	{ "mail-dkim", "badkey1_ed25519.txt", 0, "permerror" },
	{ "mail-dkim", "badkey2_ed25519.txt", 0, "fail" },
	{ "mail-dkim", "badkey3_ed25519.txt", 0, "fail" },
	{ "mail-dkim", "badkey4_ed25519.txt", 0, "permerror" },
	{ "mail-dkim", "badkey5_ed25519.txt", 0, "permerror" },
	{ "mail-dkim", "ignore_1.txt", 0, "permerror" },
	{ "mail-dkim", "ignore_2.txt", 0, "permerror" },
	{ "mail-dkim", "ignore_3.txt", 0, "permerror" },
	{ "mail-dkim", "ignore_4.txt", 0, "permerror" },
	{ "mail-dkim", "ignore_7.txt", 0, "permerror" },
	{ "mail-dkim", "ignore_8.txt", 0, "permerror" },
	{ "mail-dkim", "badkey_2.txt", 0, "permerror" },
	{ "mail-dkim", "badkey_4.txt", 0, "permerror" },
	{ "mail-dkim", "badkey_5.txt", 0, "permerror" },
	{ "mail-dkim", "badkey_10.txt", 0, "permerror" },
	{ "mail-dkim", "badkey_11.txt", 0, "permerror" },
	{ "mail-dkim", "good_rfc4871_3.txt", 0, "permerror" },
	{ "mail-dkim", "good_qp_1.txt", 0, "permerror" },
	{ "mail-dkim", "multiple_2.txt", 0, "permerror,permerror,permerror,permerror" },
	/* legacy: rsa-sha1 and 512-bit keys accepted, to reach the canonicalization paths */
	{ "mail-dkim", "good_rfc4871_3.txt", 1, "pass" },
	{ "mail-dkim", "good_qp_1.txt", 1, "pass" },
	{ "mail-dkim", "multiple_2.txt", 1, "permerror,pass,fail,permerror" },
	{ "mail-dkim", "ignore_7.txt", 1, "permerror" },
	{ "mail-dkim", "ignore_8.txt", 1, "permerror" },
	{ "mail-dkim", "badkey_2.txt", 1, "permerror" },
	{ "mail-dkim", "badkey_4.txt", 1, "permerror" },
	{ "mail-dkim", "badkey_5.txt", 1, "permerror" },
	{ "mail-dkim", "badkey_10.txt", 1, "permerror" },
	{ "mail-dkim", "badkey_11.txt", 1, "permerror" },
	{ "mail-dkim", "goodkey_ed25519.txt", 1, "pass" },
};

/* rfc6376.signed.msg with the s=test RSA key record replaced */
static const struct {
	const char *file, *expect;
} bad_keys[] = {
	{ "dkimpy/test.txt", "pass,pass" },
	{ "dkimpy/badk.txt", "pass,permerror" },
	{ "dkimpy/badversion.txt", "pass,permerror" },
	{ "dkimpy/test_bad.txt", "pass,permerror" },
};

static void
test_vectors(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++)
		check_vector(vectors[i].dir, vectors[i].file, vectors[i].legacy, vectors[i].expect,
		    NULL, NULL);
	for (i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++)
		check_vector("dkimpy", "rfc6376.signed.msg", 0, bad_keys[i].expect,
		    "test._domainkey.football.example.com", bad_keys[i].file);
}

/* Reasons matter to administrators: check the ones the README names. */
static void
expect_reason(const char *dir, const char *file, int legacy, size_t idx, const char *reason)
{
	struct dns_static *z = zone_for(dir);
	struct dkim_verify *v;
	char rel[256], res[256];
	struct buf msg;
	size_t len;
	char *raw;

	snprintf(rel, sizeof(rel), "%s/%s", dir, file);
	raw = tfile(rel, &len);
	to_crlf(raw, len, &msg);
	v = verify_buf(z, msg.data, msg.len, 0, legacy, res, sizeof(res));
	assert_true(idx < dkim_verify_count(v));
	if (strstr(dkim_verify_result(v, idx)->reason, reason) == NULL)
		fail_msg("%s #%zu: reason \"%s\", expected \"%s\"", rel, idx,
		    dkim_verify_result(v, idx)->reason, reason);
	dkim_verify_free(v);
	dns_static_free(z);
	buf_free(&msg);
	free(raw);
}

static void
test_vector_reasons(void **state)
{
	expect_reason("mail-dkim", "badkey1_ed25519.txt", 0, 0, "ed25519 key is not 32 bytes");
	expect_reason("mail-dkim", "badkey2_ed25519.txt", 0, 0, "signature did not verify");
	expect_reason("mail-dkim", "badkey3_ed25519.txt", 0, 0, "body hash mismatch");
	expect_reason("mail-dkim", "badkey4_ed25519.txt", 0, 0, "no key");
	expect_reason("mail-dkim", "badkey5_ed25519.txt", 0, 0, "no p=");
	expect_reason("mail-dkim", "ignore_1.txt", 0, 0, "version");
	expect_reason("mail-dkim", "ignore_3.txt", 1, 0, "version");	/* v=0.5 comes first */
	expect_reason("mail-dkim", "ignore_4.txt", 1, 0, "version");
	expect_reason("mail-dkim", "ignore_7.txt", 1, 0, "signature expired");
	expect_reason("mail-dkim", "ignore_8.txt", 1, 0, "i= not within d=");
	expect_reason("mail-dkim", "badkey_4.txt", 1, 0, "version");
	expect_reason("mail-dkim", "badkey_10.txt", 1, 0, "t=s");
	expect_reason("mail-dkim", "badkey_11.txt", 1, 0, "h=");
	expect_reason("mail-dkim", "good_rfc4871_3.txt", 0, 0, "rsa-sha1 not allowed (RFC 8301)");
	expect_reason("mail-dkim", "multiple_2.txt", 1, 0, "unknown canonicalization");
	expect_reason("mail-dkim", "multiple_2.txt", 1, 3, "syntax error");
}

static void
test_vector_fields(void **state)
{
	struct dns_static *z = zone_for("dkimpy");
	struct dkim_verify *v;
	const struct dkim_sig_result *r;
	char res[128];
	struct buf msg;
	size_t len;
	char *raw = tfile("dkimpy/rfc6376.signed.msg", &len);

	to_crlf(raw, len, &msg);
	v = verify_buf(z, msg.data, msg.len, 0, 0, res, sizeof(res));
	r = dkim_verify_result(v, 0);
	assert_string_equal(r->domain, "football.example.com");
	assert_string_equal(r->selector, "brisbane");
	assert_string_equal(r->algorithm, "ed25519-sha256");
	assert_string_equal(r->header_b, "9/dsDChY0YMTtD5E");
	assert_string_equal(r->identity, "@football.example.com");
	r = dkim_verify_result(v, 1);
	assert_string_equal(r->algorithm, "rsa-sha256");
	assert_int_equal(r->key_bits, 1024);
	assert_int_equal(r->testing, 0);
	assert_null(dkim_verify_result(v, 2));
	dkim_verify_free(v);
	buf_free(&msg);
	free(raw);
	dns_static_free(z);
}

/* ---- signing ---- */

static struct dkim_key *
load_key(const char *rel)
{
	char path[1024], err[256];
	struct dkim_key *k;

	snprintf(path, sizeof(path), "%s/%s", tdir, rel);
	k = dkim_key_load(path, err, sizeof(err));
	if (k == NULL)
		fail_msg("%s: %s", rel, err);
	return k;
}

/* Signs msg (CRLF) with o, in chunks; out = signature field(s) + message. */
static int
sign_buf(const struct dkim_sign_opts *o, const char *msg, size_t len, size_t chunk,
    struct buf *out, char *err, size_t errlen)
{
	struct dkim_sign *s = dkim_sign_new(o);
	size_t i, n;
	int rc;

	assert_non_null(s);
	buf_init(out, 1 << 24);
	if (chunk == 0)
		chunk = len ? len : 1;
	for (i = 0; i < len; i += n) {
		n = len - i < chunk ? len - i : chunk;
		assert_int_equal(dkim_sign_feed(s, msg + i, n), 0);
	}
	rc = dkim_sign_finish(s, out);
	snprintf(err, errlen, "%s", dkim_sign_error(s));
	if (rc == 0)
		assert_int_equal(buf_append(out, msg, len), 0);
	dkim_sign_free(s);
	return rc;
}

static void
sign_opts(struct dkim_sign_opts *o, const char *domain, struct dkim_key *k, const char *sel)
{
	memset(o, 0, sizeof(*o));
	o->domain = domain;
	o->keys[0].key = k;
	o->keys[0].selector = sel;
	o->nkeys = 1;
	o->timestamp = time(NULL);
}

static void
round_trip(const char *msgfile, const char *keyfile, const char *domain)
{
	struct dkim_sign_opts o;
	struct dkim_key *k = load_key(keyfile);
	struct dns_static *z = zone_for("dkimpy");
	struct dkim_verify *v;
	struct buf msg, signed_;
	char err[128], res[128];
	size_t len;
	char *raw = tfile(msgfile, &len);
	int ok;

	to_crlf(raw, len, &msg);
	sign_opts(&o, domain, k, "test");
	assert_int_equal(sign_buf(&o, msg.data, msg.len, 0, &signed_, err, sizeof(err)), 0);
	v = verify_buf(z, signed_.data, signed_.len, 0, 0, res, sizeof(res));
	ok = strcmp(res, "pass") == 0;
	printf("%s sign+verify %s with %s: %s\n", ok ? "ok  " : "FAIL", msgfile, keyfile, res);
	if (!ok)
		print_results(msgfile, v);
	ok ? vec_pass++ : vec_fail++;
	dkim_verify_free(v);
	dns_static_free(z);
	dkim_key_free(k);
	buf_free(&msg);
	buf_free(&signed_);
	free(raw);
}

static void
test_sign_vectors(void **state)
{
	struct dkim_sign_opts o;
	struct dkim_key *k;
	struct buf msg, out;
	char err[128];
	size_t len;
	char *raw;
	int ok;

	round_trip("dkimpy/ed25519test.msg", "dkimpy/ed25519test.key", "example.net");
	round_trip("dkimpy/test.message", "dkimpy/test.private", "example.com");
	/* bad options are refused */
	{
		static const char *const bad[] = { "From", "X-Bad:Name", NULL };

		k = load_key("dkimpy/test.private");
		sign_opts(&o, "example.com", k, "test");
		o.headers = bad;
		assert_null(dkim_sign_new(&o));
		o.headers = NULL;
		o.keys[0].selector = NULL;
		assert_null(dkim_sign_new(&o));
		o.nkeys = 0;
		assert_null(dkim_sign_new(&o));
		dkim_key_free(k);
	}
	/* a message without From cannot be signed (RFC 6376 5.4) */
	k = load_key("dkimpy/test.private");
	raw = tfile("dkimpy/test_nofrom.message", &len);
	to_crlf(raw, len, &msg);
	sign_opts(&o, "example.com", k, "test");
	ok = sign_buf(&o, msg.data, msg.len, 0, &out, err, sizeof(err)) == -1 &&
	    strstr(err, "From") != NULL;
	printf("%s sign dkimpy/test_nofrom.message: refused (%s)\n", ok ? "ok  " : "FAIL", err);
	ok ? vec_pass++ : vec_fail++;
	buf_free(&out);
	buf_free(&msg);
	free(raw);
	dkim_key_free(k);
}

static void
test_key_load(void **state)
{
	char err[128];
	struct dkim_key *k;
	struct buf txt;

	k = load_key("dkimpy/rfc8032_7_1.key");
	assert_int_equal(dkim_key_type(k), DKIM_KEY_ED25519);
	buf_init(&txt, 4096);
	assert_int_equal(dkim_key_dns_record(k, &txt), 0);
	assert_string_equal(txt.data, "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
	dkim_key_free(k);
	k = load_key("dkimpy/test.private");
	assert_int_equal(dkim_key_type(k), DKIM_KEY_RSA);
	buf_reset(&txt);
	assert_int_equal(dkim_key_dns_record(k, &txt), 0);
	/* the same p= as the RFC 8463 record in dns.txt */
	assert_non_null(strstr(txt.data, "p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/"));
	dkim_key_free(k);
	buf_free(&txt);
	assert_null(dkim_key_parse("not a key", 9, err, sizeof(err)));
	assert_non_null(strstr(err, "neither"));
	assert_null(dkim_key_load("/nonexistent/key.pem", err, sizeof(err)));
	/* 31 bytes of seed is not an Ed25519 key */
	assert_null(dkim_key_parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", 44, err, sizeof(err)));
}

/* ---- rules, with test.message signed by test.private as d=example.com ---- */

struct rig {
	struct dkim_key *rsa, *ed;
	char             p_rsa[512], p_ed[64];	/* their p= values */
	struct buf       msg;			/* test.message, CRLF */
};

static void
rig_init(struct rig *r)
{
	struct buf txt;
	size_t len;
	char *raw = tfile("dkimpy/test.message", &len);

	r->rsa = load_key("dkimpy/test.private");
	r->ed = load_key("dkimpy/ed25519test.key");
	buf_init(&txt, 4096);
	assert_int_equal(dkim_key_dns_record(r->rsa, &txt), 0);
	snprintf(r->p_rsa, sizeof(r->p_rsa), "%s", strstr(txt.data, "p=") + 2);
	buf_reset(&txt);
	assert_int_equal(dkim_key_dns_record(r->ed, &txt), 0);
	snprintf(r->p_ed, sizeof(r->p_ed), "%s", strstr(txt.data, "p=") + 2);
	buf_free(&txt);
	to_crlf(raw, len, &r->msg);
	free(raw);
}

static void
rig_free(struct rig *r)
{
	dkim_key_free(r->rsa);
	dkim_key_free(r->ed);
	buf_free(&r->msg);
}

/* Verifies m against one key record (NULL: no record; "SERVFAIL"); checks result and reason. */
static void
expect_with(const char *m, size_t len, const char *name, const char *rec, const char *want,
    const char *reason)
{
	struct dns_static *z = dns_static_new();
	struct dkim_verify *v;
	char res[128], line[600], err[128];

	if (rec != NULL && strcmp(rec, "SERVFAIL") == 0) {
		snprintf(line, sizeof(line), "%s SERVFAIL", name);
		assert_int_equal(dns_static_add(z, line, err, sizeof(err)), 0);
	} else if (rec != NULL)
		add_txt(z, name, rec, strlen(rec));
	v = verify_buf(z, m, len, 0, 0, res, sizeof(res));
	if (strcmp(res, want) != 0 || (reason && strstr(dkim_verify_result(v, 0)->reason, reason) == NULL)) {
		print_results("rule", v);
		fail_msg("record \"%s\": got %s (%s), want %s (%s)", rec ? rec : "(none)", res,
		    dkim_verify_count(v) ? dkim_verify_result(v, 0)->reason : "-", want,
		    reason ? reason : "-");
	}
	dkim_verify_free(v);
	dns_static_free(z);
}

static void
rig_sign(struct rig *r, struct dkim_sign_opts *o, struct buf *out)
{
	char err[128];

	if (sign_buf(o, r->msg.data, r->msg.len, 0, out, err, sizeof(err)) != 0)
		fail_msg("sign: %s", err);
}

static void
test_key_rules(void **state)
{
	static const char *const nm = "test._domainkey.example.com";
	struct dkim_sign_opts o;
	struct rig r;
	struct buf s;
	char rec[700];

	rig_init(&r);
	sign_opts(&o, "example.com", r.rsa, "test");
	rig_sign(&r, &o, &s);
#define REC(fmt) (snprintf(rec, sizeof(rec), fmt, r.p_rsa), rec)
	expect_with(s.data, s.len, nm, REC("v=DKIM1; k=rsa; p=%s"), "pass", "good signature");
	expect_with(s.data, s.len, nm, REC("p=%s"), "pass", NULL);
	expect_with(s.data, s.len, nm, "v=DKIM1; k=rsa; p=", "permerror", "key revoked");
	expect_with(s.data, s.len, nm, "v=DKIM1; k=rsa", "permerror", "no p=");
	expect_with(s.data, s.len, nm, NULL, "permerror", "no key");
	expect_with(s.data, s.len, nm, "SERVFAIL", "temperror", "DNS");
	expect_with(s.data, s.len, nm, REC("v=DKIM1; k=ed25519; p=%s"), "permerror", "does not match");
	expect_with(s.data, s.len, nm, REC("v=DKIM1; k=dsa; p=%s"), "permerror", "unknown key type");
	expect_with(s.data, s.len, nm, REC("v=DKIM1; s=chat; p=%s"), "permerror", "s=");
	expect_with(s.data, s.len, nm, REC("v=DKIM1; s=email:chat; p=%s"), "pass", NULL);
	expect_with(s.data, s.len, nm, REC("v=DKIM1; s=*; p=%s"), "pass", NULL);
	expect_with(s.data, s.len, nm, REC("v=DKIM1; h=sha1; p=%s"), "permerror", "h=");
	expect_with(s.data, s.len, nm, REC("v=DKIM1; h=sha1 : sha256; p=%s"), "pass", NULL);
	expect_with(s.data, s.len, nm, REC("p=%s; v=DKIM1"), "permerror", "bad key version");
	expect_with(s.data, s.len, nm, REC("v=DKIM2; p=%s"), "permerror", "bad key version");
	expect_with(s.data, s.len, nm, REC("v=DKIM1; t; p=%s"), "permerror", "syntax");
	expect_with(s.data, s.len, nm, REC("v=DKIM1; p=%s; p=x"), "permerror", "syntax");
	expect_with(s.data, s.len, nm, "v=DKIM1; p=!!!!", "permerror", "p=");
	/* t=y: passes, flagged as testing */
	{
		struct dns_static *z = dns_static_new();
		struct dkim_verify *v;
		char res[64];

		add_txt(z, nm, REC("v=DKIM1; t=y; p=%s"), strlen(rec));
		v = verify_buf(z, s.data, s.len, 0, 0, res, sizeof(res));
		assert_string_equal(res, "pass");
		assert_int_equal(dkim_verify_result(v, 0)->testing, 1);
		dkim_verify_free(v);
		dns_static_free(z);
	}
	/* t=s: i= must be in d= itself */
	expect_with(s.data, s.len, nm, REC("v=DKIM1; t=s; p=%s"), "pass", NULL);
	buf_free(&s);
	o.identity = "user@sub.example.com";
	rig_sign(&r, &o, &s);
	expect_with(s.data, s.len, nm, REC("v=DKIM1; p=%s"), "pass", NULL);
	expect_with(s.data, s.len, nm, REC("v=DKIM1; t=y:s; p=%s"), "permerror", "t=s");
	buf_free(&s);
	/* a custom header list without From still signs From */
	{
		static const char *const hl[] = { "Subject", "X-Missing", NULL };

		o.identity = NULL;
		o.headers = hl;
		rig_sign(&r, &o, &s);
		assert_non_null(strstr(s.data, " h=from:from:subject:subject;"));
		expect_with(s.data, s.len, nm, REC("p=%s"), "pass", NULL);
		buf_free(&s);
		o.headers = NULL;
	}
	/* i= with characters that need dkim-quoted-printable */
	o.identity = "a;b=c@example.com";
	rig_sign(&r, &o, &s);
	assert_non_null(strstr(s.data, "i=a=3Bb=3Dc@example.com;"));
	expect_with(s.data, s.len, nm, REC("p=%s"), "pass", NULL);
	buf_free(&s);
#undef REC
	rig_free(&r);
}

/* A hand-written signature field over test.message: parse-time rules. */
static void
expect_sig(const struct rig *r, const char *sig, const char *want, const char *reason)
{
	struct buf m;

	buf_init(&m, 1 << 20);
	assert_int_equal(buf_appends(&m, sig), 0);
	assert_int_equal(buf_append(&m, r->msg.data, r->msg.len), 0);
	expect_with(m.data, m.len, "test._domainkey.example.com", "p=", want, reason);
	buf_free(&m);
}

static void
test_sig_rules(void **state)
{
	struct rig r;

#define SIG(tags) "DKIM-Signature: " tags "\r\n"
#define BH "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;"
	rig_init(&r);
	expect_sig(&r, SIG("v=1; a=rsa-sha256; d=example.com; s=test; h=to:subject; " BH " b=AAAA"),
	    "permerror", "From not signed");
	expect_sig(&r, SIG("v=1; a=rsa-sha256; d=example.com; s=test; h=from; b=AAAA"),
	    "permerror", "missing tag bh=");
	expect_sig(&r, SIG("a=rsa-sha256; d=example.com; s=test; h=from; " BH " b=AAAA"),
	    "permerror", "missing tag v=");
	expect_sig(&r, SIG("v=1; a=rsa-sha512; d=example.com; s=test; h=from; " BH " b=AAAA"),
	    "permerror", "unknown algorithm");
	expect_sig(&r, SIG("v=1; a=rsa-sha1; d=example.com; s=test; h=from; "
	    "bh=AAAAAAAAAAAAAAAAAAAAAAAAAAA=; b=AAAA"), "permerror", "rsa-sha1 not allowed (RFC 8301)");
	expect_sig(&r, SIG("v=1; a=rsa-sha256; c=relaxed/fancy; d=example.com; s=test; h=from; " BH
	    " b=AAAA"), "permerror", "canonicalization");
	expect_sig(&r, SIG("v=1; a=rsa-sha256; d=example.com; s=test; h=from; bh=AAAA; b=AAAA"),
	    "permerror", "bh=");
	expect_sig(&r, SIG("v=1; a=rsa-sha256; d=example.com; s=test; h=from; " BH " b=A"),
	    "permerror", "b=");
	expect_sig(&r, SIG("v=1; a=rsa-sha256; d=exa mple.com; s=test; h=from; " BH " b=AAAA"),
	    "permerror", "d=");
	expect_sig(&r, SIG("v=1; a=rsa-sha256; d=example.com; s=te/st; h=from; " BH " b=AAAA"),
	    "permerror", "s=");
	expect_sig(&r, SIG("v=1; a=rsa-sha256; d=example.com; s=test; h=from::to; " BH " b=AAAA"),
	    "permerror", "h=");
	expect_sig(&r, SIG("v=1; a=rsa-sha256; d=example.com; s=test; h=from; q=http; " BH " b=AAAA"),
	    "permerror", "q=");
	expect_sig(&r, SIG("v=1; a=rsa-sha256; d=example.com; s=test; h=from; i=x@example.org; " BH
	    " b=AAAA"), "permerror", "i= not within d=");
	expect_sig(&r, SIG("v=1; a=rsa-sha256; d=example.com; s=test; h=from; i=x@notexample.com; " BH
	    " b=AAAA"), "permerror", "i= not within d=");
	expect_sig(&r, SIG("v=1; a=rsa-sha256; d=example.com; s=test; h=from; i=x; " BH " b=AAAA"),
	    "permerror", "i=");
	expect_sig(&r, SIG("v=1; a=rsa-sha256; d=example.com; s=test; h=from; t=200; x=100; " BH
	    " b=AAAA"), "permerror", "x= before t=");
	expect_sig(&r, SIG("v=1; a=rsa-sha256; d=example.com; s=test; h=from; x=100; " BH " b=AAAA"),
	    "permerror", "signature expired");
	expect_sig(&r, SIG("v=1; a=rsa-sha256; d=example.com; s=test; h=from; l=12a; " BH " b=AAAA"),
	    "permerror", "l=");
	expect_sig(&r, SIG("v=1; a=rsa-sha256; d=example.com; s=test; h=from; x=99999999999999999999999; "
	    BH " b=AAAA"), "permerror", "x=");
	/* all fine syntactically (future tags ignored): the revoked key decides */
	expect_sig(&r, SIG("v=1; a=rsa-sha256; d=example.com; s=test; h=from; i=x@sub.example.com; "
	    "z=From:a|To:b; foo=bar; " BH " b=AAAA"), "permerror", "key revoked");
	expect_sig(&r, "DKIM-Signature: synerr\r\n", "permerror", "syntax");
	expect_sig(&r, "DKIM-Signature:\r\n", "permerror", "missing tag");
#undef SIG
#undef BH
	rig_free(&r);
}

/* Verifies text against the rig's keys (both selectors published). */
static void
expect_rig(const struct rig *r, const char *m, size_t len, const char *want, const char *reason)
{
	struct dns_static *z = dns_static_new();
	struct dkim_verify *v;
	char res[128], rec[700];

	snprintf(rec, sizeof(rec), "v=DKIM1; p=%s", r->p_rsa);
	add_txt(z, "test._domainkey.example.com", rec, strlen(rec));
	snprintf(rec, sizeof(rec), "v=DKIM1; k=ed25519; p=%s", r->p_ed);
	add_txt(z, "ed._domainkey.example.com", rec, strlen(rec));
	v = verify_buf(z, m, len, 0, 0, res, sizeof(res));
	if (strcmp(res, want) != 0 || (reason && strstr(dkim_verify_result(v, 0)->reason, reason) == NULL)) {
		print_results("mod", v);
		fail_msg("got %s, want %s (%s)", res, want, reason ? reason : "-");
	}
	dkim_verify_free(v);
	dns_static_free(z);
}

/* s with its first occurrence of what replaced by with. */
static void
edit(const struct buf *s, const char *what, const char *with, struct buf *out)
{
	const char *p = strstr(s->data, what);

	assert_non_null(p);
	buf_init(out, 1 << 20);
	assert_int_equal(buf_append(out, s->data, (size_t)(p - s->data)), 0);
	assert_int_equal(buf_appends(out, with), 0);
	assert_int_equal(buf_appends(out, p + strlen(what)), 0);
}

static void
test_modifications(void **state)
{
	struct dkim_sign_opts o;
	struct rig r;
	struct buf s, m;
	int canon;

	rig_init(&r);
	for (canon = 0; canon < 2; canon++) {
		sign_opts(&o, "example.com", r.rsa, "test");
		o.keys[1].key = r.ed;
		o.keys[1].selector = "ed";
		o.nkeys = 2;
		o.hcanon = o.bcanon = canon ? DKIM_CANON_SIMPLE : DKIM_CANON_RELAXED;
		rig_sign(&r, &o, &s);
		assert_non_null(strstr(s.data, canon ? "c=simple/simple;" : "c=relaxed/relaxed;"));
		/* over-signing: the absent Cc is listed once, From twice */
		assert_non_null(strstr(s.data, "h=from:from:subject:subject:date:date:message-id:"));
		assert_non_null(strstr(s.data, ":to:to:cc;"));
		expect_rig(&r, s.data, s.len, "pass,pass", NULL);
		/* an unsigned header may be added */
		edit(&s, "From: Test", "X-Added: yes\r\nFrom: Test", &m);
		expect_rig(&r, m.data, m.len, "pass,pass", NULL);
		buf_free(&m);
		/* a second From, Subject or a Cc breaks it (over-signing) */
		edit(&s, "From: Test", "From: Evil <e@example.org>\r\nFrom: Test", &m);
		expect_rig(&r, m.data, m.len, "fail,fail", "signature did not verify");
		buf_free(&m);
		edit(&s, "Subject: Testing", "Subject: Testing\r\nCc: x@example.org", &m);
		expect_rig(&r, m.data, m.len, "fail,fail", "signature did not verify");
		buf_free(&m);
		edit(&s, "Subject: Testing", "Subject: Testing\r\nSubject: Other", &m);
		expect_rig(&r, m.data, m.len, "fail,fail", "signature did not verify");
		buf_free(&m);
		/* the body */
		edit(&s, "This is a test", "This is a tesT", &m);
		expect_rig(&r, m.data, m.len, "fail,fail", "body hash mismatch");
		buf_free(&m);
		/* trailing empty lines do not count in either canonicalization */
		edit(&s, "message.\r\n", "message.\r\n\r\n\r\n", &m);
		expect_rig(&r, m.data, m.len, "pass,pass", NULL);
		buf_free(&m);
		/* whitespace: only relaxed tolerates it */
		edit(&s, "Subject: Testing", "subject:   Testing ", &m);
		expect_rig(&r, m.data, m.len, canon ? "fail,fail" : "pass,pass", NULL);
		buf_free(&m);
		edit(&s, "a test message", "a  test \tmessage", &m);
		expect_rig(&r, m.data, m.len, canon ? "fail,fail" : "pass,pass", NULL);
		buf_free(&m);
		buf_free(&s);
	}
	/* l=: content appended after the counted body still passes, else not */
	sign_opts(&o, "example.com", r.rsa, "test");
	o.body_length = 1;
	rig_sign(&r, &o, &s);
	assert_non_null(strstr(s.data, " l=25;"));
	assert_int_equal(buf_appends(&s, "appended\r\n"), 0);
	expect_rig(&r, s.data, s.len, "pass", NULL);
	edit(&s, "This is a test message.\r\n", "Short\r\n", &m);
	expect_rig(&r, m.data, m.len, "permerror", "body shorter than l=");
	buf_free(&m);
	buf_free(&s);
	/* x=: still valid, and expired */
	sign_opts(&o, "example.com", r.rsa, "test");
	o.expire = 3600;
	rig_sign(&r, &o, &s);
	expect_rig(&r, s.data, s.len, "pass", NULL);
	buf_free(&s);
	o.timestamp = time(NULL) - 7200;
	rig_sign(&r, &o, &s);
	expect_rig(&r, s.data, s.len, "permerror", "signature expired");
	buf_free(&s);
	rig_free(&r);
}

static void
test_sign_folding(void **state)
{
	struct dkim_sign_opts o;
	struct rig r;
	struct buf s;
	size_t i, col = 0;

	rig_init(&r);
	sign_opts(&o, "example.com", r.rsa, "test");
	rig_sign(&r, &o, &s);
	/* lines of the signature field stay short; it ends with one CRLF before the message */
	assert_memory_equal(s.data, "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;", 53);
	for (i = 0; i < s.len && strncmp(s.data + i, "\r\nAuthentication", 16) != 0; i++) {
		if (s.data[i] == '\n') {
			assert_true(s.data[i + 1] == '\t');
			col = 0;
		} else
			assert_true(++col <= 78);
	}
	assert_true(i < s.len);
	buf_free(&s);
	rig_free(&r);
}

/* ---- streaming: any chunking gives the same results ---- */

static void
same_results(const struct dkim_verify *a, const struct dkim_verify *b)
{
	size_t i;

	assert_int_equal(dkim_verify_count(a), dkim_verify_count(b));
	for (i = 0; i < dkim_verify_count(a); i++)
		assert_memory_equal(dkim_verify_result(a, i), dkim_verify_result(b, i),
		    sizeof(struct dkim_sig_result));
}

static void
stream_file(const char *dir, const char *file, int legacy)
{
	static const size_t chunks[] = { 1, 2, 3, 7, 64, 1000 };
	struct dns_static *z = zone_for(dir);
	struct dkim_verify *whole, *part;
	char rel[256], r1[256], r2[256];
	struct buf msg;
	size_t len, i;
	char *raw;

	snprintf(rel, sizeof(rel), "%s/%s", dir, file);
	raw = tfile(rel, &len);
	to_crlf(raw, len, &msg);
	whole = verify_buf(z, msg.data, msg.len, 0, legacy, r1, sizeof(r1));
	for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		part = verify_buf(z, msg.data, msg.len, chunks[i], legacy, r2, sizeof(r2));
		assert_string_equal(r1, r2);
		same_results(whole, part);
		dkim_verify_free(part);
	}
	dkim_verify_free(whole);
	dns_static_free(z);
	buf_free(&msg);
	free(raw);
}

static void
test_streaming(void **state)
{
	struct dkim_sign_opts o;
	struct rig r;
	struct buf big, s1, s2;
	char err[128];
	size_t i;

	stream_file("dkimpy", "rfc6376.signed.msg", 0);
	stream_file("dkimpy", "test2.message", 0);
	stream_file("mail-dkim", "multiple_2.txt", 1);
	stream_file("mail-dkim", "goodkey_ed25519.txt", 0);
	/* signing: 1-byte chunks give the same bytes as one chunk (both algorithms
	 * are deterministic); a larger body with trailing WSP and empty lines */
	rig_init(&r);
	buf_init(&big, 1 << 22);
	assert_int_equal(buf_append(&big, r.msg.data, r.msg.len), 0);
	for (i = 0; i < 3000; i++)
		assert_int_equal(buf_printf(&big, "line %zu \t with  space  \r\n%s", i,
		    i % 7 == 0 ? "\r\n \r\n" : ""), 0);
	assert_int_equal(buf_appends(&big, "\r\n\r\n  \r\n"), 0);
	for (i = 0; i < 2; i++) {
		sign_opts(&o, "example.com", r.rsa, "test");
		o.keys[1].key = r.ed;
		o.keys[1].selector = "ed";
		o.nkeys = 2;
		o.timestamp = 1700000000;
		o.hcanon = o.bcanon = i ? DKIM_CANON_SIMPLE : DKIM_CANON_RELAXED;
		o.body_length = (int)i;
		assert_int_equal(sign_buf(&o, big.data, big.len, 1, &s1, err, sizeof(err)), 0);
		assert_int_equal(sign_buf(&o, big.data, big.len, 0, &s2, err, sizeof(err)), 0);
		assert_int_equal(s1.len, s2.len);
		assert_memory_equal(s1.data, s2.data, s1.len);
		expect_rig(&r, s1.data, s1.len, "pass,pass", NULL);
		{
			struct dns_static *z = dns_static_new();
			struct dkim_verify *a, *b;
			char rec[700], ra[64], rb[64];

			snprintf(rec, sizeof(rec), "p=%s", r.p_rsa);
			add_txt(z, "test._domainkey.example.com", rec, strlen(rec));
			a = verify_buf(z, s1.data, s1.len, 1, 0, ra, sizeof(ra));
			b = verify_buf(z, s1.data, s1.len, 0, 0, rb, sizeof(rb));
			assert_string_equal(ra, "pass,permerror");
			same_results(a, b);
			dkim_verify_free(a);
			dkim_verify_free(b);
			dns_static_free(z);
		}
		buf_free(&s1);
		buf_free(&s2);
	}
	buf_free(&big);
	rig_free(&r);
}

static void
test_header_limit(void **state)
{
	struct dkim_verify *v = dkim_verify_new(NULL);
	struct dns_static *z = dns_static_new();
	struct dns_resolver res = dns_static_resolver(z);
	char line[1024];
	size_t i;
	int rc = 0;

	memset(line, 'a', sizeof(line));
	memcpy(line, "X-Big: ", 7);
	line[1022] = '\r';
	line[1023] = '\n';
	for (i = 0; i < 1100 && rc == 0; i++)
		rc = dkim_verify_feed(v, line, sizeof(line));
	assert_int_equal(rc, -1);
	assert_int_equal(dkim_verify_finish(v, &res), -1);
	assert_int_equal(dkim_verify_count(v), 0);
	dkim_verify_free(v);
	/* no signatures at all: no results, no lookups */
	v = dkim_verify_new(NULL);
	assert_int_equal(dkim_verify_feed(v, "From: a\r\n\r\nhi\r\n", 15), 0);
	assert_int_equal(dkim_verify_finish(v, &res), 0);
	assert_int_equal(dkim_verify_count(v), 0);
	assert_int_equal(dns_static_queries(z), 0);
	dkim_verify_free(v);
	dns_static_free(z);
}

static void
test_keygen(void **state)
{
	static const enum dkim_key_type types[] = { DKIM_KEY_ED25519, DKIM_KEY_RSA };
	struct dkim_sign_opts o;
	struct rig r;
	char err[128];
	size_t i;

	rig_init(&r);
	for (i = 0; i < 2; i++) {
		struct buf pem, txt, txt2, s;
		struct dkim_key *k;
		struct dns_static *z = dns_static_new();
		struct dkim_verify *v;
		char res[64];

		buf_init(&pem, 1 << 16);
		buf_init(&txt, 1 << 16);
		buf_init(&txt2, 1 << 16);
		assert_int_equal(dkim_keygen(types[i], 1024, &pem, &txt, err, sizeof(err)), 0);
		assert_non_null(strstr(pem.data, "-----BEGIN PRIVATE KEY-----"));
		assert_non_null(strstr(txt.data, i ? "v=DKIM1; k=rsa; p=MIGf" : "v=DKIM1; k=ed25519; p="));
		k = dkim_key_parse(pem.data, pem.len, err, sizeof(err));
		assert_non_null(k);
		assert_int_equal(dkim_key_type(k), types[i]);
		assert_int_equal(dkim_key_dns_record(k, &txt2), 0);
		assert_string_equal(txt.data, txt2.data);
		sign_opts(&o, "example.com", k, "gen");
		rig_sign(&r, &o, &s);
		add_txt(z, "gen._domainkey.example.com", txt.data, txt.len);
		v = verify_buf(z, s.data, s.len, 0, 0, res, sizeof(res));
		assert_string_equal(res, "pass");
		dkim_verify_free(v);
		dns_static_free(z);
		dkim_key_free(k);
		buf_free(&pem);
		buf_free(&txt);
		buf_free(&txt2);
		buf_free(&s);
	}
	{
		struct buf pem, txt;

		buf_init(&pem, 1 << 16);
		buf_init(&txt, 1 << 16);
		assert_int_equal(dkim_keygen(DKIM_KEY_RSA, 512, &pem, &txt, err, sizeof(err)), -1);
		buf_free(&pem);
		buf_free(&txt);
	}
	rig_free(&r);
}

/* ---- interoperability with dkimpy (python3-dkim) ---- */

static const char pyscript[] =
"import sys, dkim\n"
"zone = {}\n"
"for line in open(sys.argv[2], encoding='ascii'):\n"
"    line = line.strip()\n"
"    if line and not line.startswith('#'):\n"
"        n, v = line.split(None, 1)\n"
"        zone[n.lower()] = v.encode()\n"
"def dnsfunc(name, timeout=5):\n"
"    if isinstance(name, bytes):\n"
"        name = name.decode()\n"
"    return zone.get(name.rstrip('.').lower())\n"
"if sys.argv[1] == 'verify':\n"
"    msg = open(sys.argv[3], 'rb').read()\n"
"    d = dkim.DKIM(msg)\n"
"    ok = [d.verify(idx=i, dnsfunc=dnsfunc) for i in range(int(sys.argv[4]))]\n"
"    sys.exit(0 if ok and all(ok) else 1)\n"
"else:\n"
"    _, _, _, keyfile, sel, dom, alg, canon, inp, out = sys.argv\n"
"    key = open(keyfile, 'rb').read()\n"
"    if alg == 'ed25519-sha256':\n"
"        key = key.strip()\n"
"    msg = open(inp, 'rb').read()\n"
"    c = canon.encode()\n"
"    sig = dkim.sign(msg, sel.encode(), dom.encode(), key, canonicalize=(c, c),\n"
"                    signature_algorithm=alg.encode())\n"
"    open(out, 'wb').write(sig + msg)\n";

static int
run(char *const argv[])
{
	pid_t pid = fork();
	int st;

	assert_true(pid != -1);
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void
write_tmp(const char *name, const char *data, size_t len, char *path, size_t size)
{
	FILE *fp;

	snprintf(path, size, "%s/%s", tmpdir, name);
	assert_non_null(fp = fopen(path, "wb"));
	assert_int_equal(fwrite(data, 1, len, fp), len);
	fclose(fp);
}

static int
have_dkimpy(void)
{
	char *const argv[] = { "/usr/bin/python3", "-c", "import dkim, nacl", NULL };

	if (access("/usr/bin/python3", X_OK) == 0 && run(argv) == 0)
		return 1;
	printf("SKIPPED: dkimpy interop: /usr/bin/python3 cannot import dkim and nacl "
	    "(apt-get install python3-dkim)\n");
	return 0;
}

static const struct {
	const char *key, *domain, *alg;
} interop_keys[] = {
	{ "dkimpy/ed25519test.key", "example.net", "ed25519-sha256" },
	{ "dkimpy/test.private", "example.com", "rsa-sha256" },
};

static void
test_interop_tern_signs(void **state)
{
	char script[512], zone[1024], file[512], nsig[4], err[128];
	struct dkim_sign_opts o;
	struct buf msg, out;
	size_t i, c, len;
	char *raw;

	if (!have_dkimpy())
		skip();
	write_tmp("interop.py", pyscript, strlen(pyscript), script, sizeof(script));
	snprintf(zone, sizeof(zone), "%s/dns.txt", tdir);
	raw = tfile("dkimpy/test.message", &len);
	to_crlf(raw, len, &msg);
	for (i = 0; i < 2; i++) {
		for (c = 0; c < 2; c++) {
			struct dkim_key *k = load_key(interop_keys[i].key);
			char *const argv[] = { "/usr/bin/python3", script, "verify", zone, file, "1", NULL };

			sign_opts(&o, interop_keys[i].domain, k, "test");
			o.hcanon = o.bcanon = c ? DKIM_CANON_SIMPLE : DKIM_CANON_RELAXED;
			assert_int_equal(sign_buf(&o, msg.data, msg.len, 0, &out, err, sizeof(err)), 0);
			write_tmp("tern-signed.eml", out.data, out.len, file, sizeof(file));
			if (run(argv) != 0)
				fail_msg("dkimpy rejects tern's %s %s signature:\n%s",
				    interop_keys[i].alg, c ? "simple" : "relaxed", out.data);
			printf("ok   dkimpy verifies tern %s c=%s\n", interop_keys[i].alg,
			    c ? "simple/simple" : "relaxed/relaxed");
			buf_free(&out);
			dkim_key_free(k);
		}
	}
	/* dual signing with the RFC 8463 keys: dkimpy checks both */
	{
		struct dkim_key *ed = load_key("dkimpy/rfc8032_7_1.key");
		struct dkim_key *rsa = load_key("dkimpy/test.private");
		char *const argv[] = { "/usr/bin/python3", script, "verify", zone, file, nsig, NULL };

		buf_free(&msg);
		free(raw);
		raw = tfile("dkimpy/rfc6376.msg", &len);
		to_crlf(raw, len, &msg);
		sign_opts(&o, "football.example.com", ed, "brisbane");
		o.keys[1].key = rsa;
		o.keys[1].selector = "test";
		o.nkeys = 2;
		o.expire = 86400;
		assert_int_equal(sign_buf(&o, msg.data, msg.len, 0, &out, err, sizeof(err)), 0);
		write_tmp("tern-dual.eml", out.data, out.len, file, sizeof(file));
		snprintf(nsig, sizeof(nsig), "2");
		if (run(argv) != 0)
			fail_msg("dkimpy rejects tern's dual signature:\n%s", out.data);
		printf("ok   dkimpy verifies tern dual ed25519+rsa\n");
		buf_free(&out);
		dkim_key_free(ed);
		dkim_key_free(rsa);
	}
	buf_free(&msg);
	free(raw);
}

static void
test_interop_dkimpy_signs(void **state)
{
	char script[512], zone[1024], key[1024], in[512], out[512];
	struct dns_static *z;
	size_t i, c;

	if (!have_dkimpy())
		skip();
	write_tmp("interop.py", pyscript, strlen(pyscript), script, sizeof(script));
	snprintf(zone, sizeof(zone), "%s/dns.txt", tdir);
	snprintf(in, sizeof(in), "%s/dkimpy/test.message", tdir);
	snprintf(out, sizeof(out), "%s/dkimpy-signed.eml", tmpdir);
	z = zone_for("dkimpy");
	for (i = 0; i < 2; i++) {
		for (c = 0; c < 2; c++) {
			char alg[32], canon[16], res[64];
			char *const argv[] = { "/usr/bin/python3", script, "sign", zone, key, "test",
				(char *)interop_keys[i].domain, alg, canon, in, out, NULL };
			struct dkim_verify *v;
			struct buf msg;
			size_t len;
			char *raw;

			snprintf(key, sizeof(key), "%s/%s", tdir, interop_keys[i].key);
			snprintf(alg, sizeof(alg), "%s", interop_keys[i].alg);
			snprintf(canon, sizeof(canon), "%s", c ? "simple" : "relaxed");
			assert_int_equal(run(argv), 0);
			raw = read_file(out, &len);
			assert_non_null(raw);
			to_crlf(raw, len, &msg);
			v = verify_buf(z, msg.data, msg.len, 0, 0, res, sizeof(res));
			if (strcmp(res, "pass") != 0) {
				print_results("dkimpy", v);
				fail_msg("tern rejects dkimpy's %s %s signature:\n%s", alg, canon, raw);
			}
			printf("ok   tern verifies dkimpy %s c=%s/%s\n", alg, canon, canon);
			dkim_verify_free(v);
			buf_free(&msg);
			free(raw);
		}
	}
	dns_static_free(z);
}

/* ---- main ---- */

static void
rm_tmp(void)
{
	static const char *const names[] = { "interop.py", "tern-signed.eml", "tern-dual.eml",
		"dkimpy-signed.eml" };
	char path[512];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	rmdir(tmpdir);
}

static void
test_summary(void **state)
{
	printf("DKIM vectors: %d passed, %d failed\n", vec_pass, vec_fail);
	assert_int_equal(vec_fail, 0);
	assert_true(vec_pass > 0);
}

static int
canon_of(const char *v, enum dkim_canon *hc, enum dkim_canon *bc)
{
	*hc = *bc = (enum dkim_canon)7;	/* untouched on error */
	return dkim_canon_parse(v, strlen(v), hc, bc);
}

static void
test_canon_parse(void **state)
{
	enum dkim_canon hc, bc;

	(void)state;
	assert_int_equal(canon_of("relaxed/relaxed", &hc, &bc), 0);
	assert_int_equal(hc, DKIM_CANON_RELAXED);
	assert_int_equal(bc, DKIM_CANON_RELAXED);
	assert_int_equal(canon_of("relaxed", &hc, &bc), 0);	/* body simple */
	assert_int_equal(hc, DKIM_CANON_RELAXED);
	assert_int_equal(bc, DKIM_CANON_SIMPLE);
	assert_int_equal(canon_of("simple/relaxed", &hc, &bc), 0);
	assert_int_equal(hc, DKIM_CANON_SIMPLE);
	assert_int_equal(bc, DKIM_CANON_RELAXED);
	assert_int_equal(canon_of("relaxed/", &hc, &bc), -1);
	assert_int_equal(canon_of("/simple", &hc, &bc), -1);
	assert_int_equal(canon_of("Relaxed", &hc, &bc), -1);
	assert_int_equal(canon_of("relaxed/simple/x", &hc, &bc), -1);
	assert_int_equal(hc, (enum dkim_canon)7);
	assert_int_equal(canon_of("", &hc, &bc), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_taglist),
		cmocka_unit_test(test_canon_parse),
		cmocka_unit_test(test_canon_body),
		cmocka_unit_test(test_canon_header),
		cmocka_unit_test(test_msg_split),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_sign_vectors),
		cmocka_unit_test(test_vector_reasons),
		cmocka_unit_test(test_vector_fields),
		cmocka_unit_test(test_key_load),
		cmocka_unit_test(test_key_rules),
		cmocka_unit_test(test_sig_rules),
		cmocka_unit_test(test_modifications),
		cmocka_unit_test(test_sign_folding),
		cmocka_unit_test(test_streaming),
		cmocka_unit_test(test_header_limit),
		cmocka_unit_test(test_keygen),
		cmocka_unit_test(test_interop_tern_signs),
		cmocka_unit_test(test_interop_dkimpy_signs),
		cmocka_unit_test(test_summary),
	};
	const char *td = getenv("TERN_TESTDATA");
	int rc;

	snprintf(tdir, sizeof(tdir), "%s/dkim", td && *td ? td : "../shared/testdata");
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/tern-dkim-XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rm_tmp();
	return rc;
}
