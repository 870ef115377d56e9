/*
 * ValiMail's ARC conformance suite against src/mailauth/arc.c.
 * Reads $TERN_TESTDATA/arc/arc-draft-validation-tests.yml and
 * arc-draft-sign-tests.yml (default ../shared/testdata, relative to the
 * repository root) with libyaml; each scenario's txt-records become a
 * dns_static zone. Messages are converted to CRLF line ends. Prints one
 * line per failing case and "ARC validation: N passed, N failed",
 * "ARC signing: N passed, N failed"; fails on any failure.
 *
 * Where the draft-era suite disagrees with RFC 8617, RFC 8617 wins; the
 * cases are listed in rfc8617_cv[] with the reason.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "yaml_nodes.h"

#include "dns/dns.h"
#include "mailauth/arc.h"
#include "mailauth/dkim.h"
#include "mailauth/taglist.h"

#define VALIDATION_CASES 171
#define SIGN_CASES       17

struct tally {
	int passed, failed, skipped, listed;
};

/* Expectations RFC 8617 overrides: name, cv by RFC 8617, why. */
static const struct { const char *name, *cv, *why; } rfc8617_cv[] = {
	/* RFC 8617 4.1.2: the AMS is a DKIM-Signature but for v= and i=, so a
	 * missing c= means simple/simple (RFC 6376 3.5), not relaxed; the
	 * case's AMS was made relaxed, so it does not verify. */
	{ "ams_fields_c_na", "fail", "c= defaults to simple/simple" },
	/* The three cases with an empty cv (README: unspecified). RFC 8617 5.2
	 * decides them: step 2 (the newest seal says cv=fail) and step 3
	 * (instance 1 must say cv=none). */
	{ "cv_fail_i1_as_cv_fail", "fail", "5.2 step 2" },
	{ "cv_fail_i2_as2_fail", "fail", "5.2 step 2" },
	{ "cv_fail_i2_as1_fail", "fail", "5.2 step 3" },
	{ NULL, NULL, NULL },
};

/* LF to CRLF. */
static char *
crlf(const char *s, size_t *len)
{
	size_t i, n = strlen(s), o = 0;
	char *out = malloc(2 * n + 1);

	assert_non_null(out);
	for (i = 0; i < n; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = s[i];
	}
	out[o] = '\0';
	*len = o;
	return out;
}

static struct dns_static *
zone_of(yaml_document_t *d, yaml_node_t *root)
{
	yaml_node_t *txt = map_get(d, root, "txt-records");
	struct dns_static *z = dns_static_new();
	yaml_node_pair_t *p;

	assert_non_null(z);
	if (txt == NULL || txt->type != YAML_MAPPING_NODE)
		return z;
	for (p = txt->data.mapping.pairs.start; p < txt->data.mapping.pairs.top; p++) {
		const char *v = scalar(yaml_document_get_node(d, p->value));
		char data[4096];
		struct dns_rr rr;
		size_t i, n = 0;

		/* A literal block's line ends split the record into lines, not
		 * part of it (a TXT record's strings are joined with nothing). */
		for (i = 0; v[i] && n + 1 < sizeof(data); i++)
			if (v[i] != '\n')
				data[n++] = v[i];
		memset(&rr, 0, sizeof(rr));
		rr.type = DNS_T_TXT;
		rr.data = data;
		rr.len = n;
		assert_int_equal(dns_static_add_rr(z, scalar(yaml_document_get_node(d, p->key)), &rr), 0);
	}
	return z;
}

static const char *
override(const char *name, const char *cv)
{
	size_t i;

	for (i = 0; rfc8617_cv[i].name; i++)
		if (strcmp(rfc8617_cv[i].name, name) == 0)
			return rfc8617_cv[i].cv;
	return cv;
}

/*
 * The same message checked the way the check process does: the header
 * section alone, the body's hashes streamed in odd chunks (arc_body_*).
 * Must agree with the whole-message check in everything it reports.
 */
static int
header_only_agrees(const char *m, size_t len, const struct dns_resolver *res,
    const struct arc_result *whole)
{
	const char *sep = memmem(m, len, "\r\n\r\n", 4);
	size_t hlen = sep ? (size_t)(sep - m) + 4 : len, off;
	unsigned char bh[ARC_BODY_HASHES];
	struct arc_body *b = arc_body_new();
	struct arc_result r;

	assert_non_null(b);
	for (off = hlen; off < len; off += 7)
		arc_body_feed(b, m + off, len - off < 7 ? len - off : 7);
	assert_int_equal(arc_body_finish(b, bh), 0);
	arc_body_free(b);
	(void)arc_verify_header(m, hlen, bh, res, NULL, &r);
	return r.cv == whole->cv && r.n == whole->n && r.oldest_pass == whole->oldest_pass &&
	    strcmp(r.reason, whole->reason) == 0;
}

static void
validation_case(struct dns_static *z, const char *name, yaml_node_t *d_cv, const char *msg,
    struct tally *t)
{
	struct dns_resolver res = dns_static_resolver(z);
	struct arc_result r;
	const char *want = override(name, scalar(d_cv));
	size_t len;
	char *m = crlf(msg, &len);

	(void)arc_verify(m, len, &res, NULL, &r);
	if (!header_only_agrees(m, len, &res, &r)) {
		free(m);
		t->failed++;
		printf("ARC validation FAIL %s: the header-only check disagrees\n", name);
		return;
	}
	free(m);
	/* README: an empty cv is unspecified; the case only has to run. */
	if (want == NULL || want[strspn(want, " \t\r\n")] == '\0') {
		t->skipped++;
		printf("ARC validation %s: unspecified cv, got %s (%s)\n", name, arc_cv_str(r.cv),
		    r.reason);
		return;
	}
	/* oldest-pass (RFC 8617 5.2 step 5) where the suite's chains show it. */
	if ((strcmp(name, "cv_pass_i2_1_ams1_invalid") == 0 && r.oldest_pass != 2) ||
	    (strcmp(name, "cv_pass_i3_1") == 0 && r.oldest_pass != 1)) {
		t->failed++;
		printf("ARC validation FAIL %s: oldest-pass %u\n", name, r.oldest_pass);
		return;
	}
	if (strncasecmp(want, arc_cv_str(r.cv), strlen(arc_cv_str(r.cv))) == 0 &&
	    strlen(arc_cv_str(r.cv)) == strcspn(want, " \t\r\n")) {
		t->passed++;
		return;
	}
	t->failed++;
	printf("ARC validation FAIL %s: want %s got %s (%s)\n", name, want, arc_cv_str(r.cv),
	    r.reason);
}

/* Whitespace runs to one space, trimmed. */
static void
squash(const char *s, size_t n, char *out, size_t cap)
{
	size_t i, o = 0;
	int sp = 0;

	for (i = 0; i < n && o + 2 < cap; i++) {
		if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
			sp = o > 0;
			continue;
		}
		if (sp)
			out[o++] = ' ';
		sp = 0;
		out[o++] = s[i];
	}
	out[o] = '\0';
}

/* Tag lists equal, values compared with all whitespace removed. */
static int
tags_equal(const char *a, size_t alen, const char *b, size_t blen, char *why, size_t wl)
{
	struct taglist ta, tb;
	char err[96], va[2048], vb[2048];
	size_t i, j, k;

	if (taglist_parse(a, alen, &ta, err, sizeof(err)) == -1 ||
	    taglist_parse(b, blen, &tb, err, sizeof(err)) == -1 || ta.n != tb.n)
		return snprintf(why, wl, "tag lists differ: got \"%.*s\" want \"%.*s\"", (int)alen, a,
		    (int)blen, b), 0;
	/* b= last: a differing tag explains a differing signature. */
	for (i = 0; i <= ta.n; i++) {
		const struct tag *x = i < ta.n ? &ta.t[i] : taglist_find(&ta, "b"), *y = NULL;

		if (x == NULL || (i < ta.n && x->namelen == 1 && x->name[0] == 'b'))
			continue;
		for (j = 0; j < tb.n; j++)
			if (tb.t[j].namelen == x->namelen && memcmp(tb.t[j].name, x->name, x->namelen) == 0)
				y = &tb.t[j];
		if (y == NULL)
			return snprintf(why, wl, "tag %.*s missing", (int)x->namelen, x->name), 0;
		for (k = j = 0; k < x->vallen && j + 1 < sizeof(va); k++)
			if (x->val[k] != ' ' && x->val[k] != '\t' && x->val[k] != '\r' && x->val[k] != '\n')
				va[j++] = x->val[k];
		va[j] = '\0';
		for (k = j = 0; k < y->vallen && j + 1 < sizeof(vb); k++)
			if (y->val[k] != ' ' && y->val[k] != '\t' && y->val[k] != '\r' && y->val[k] != '\n')
				vb[j++] = y->val[k];
		vb[j] = '\0';
		if (strcmp(va, vb) != 0)
			return snprintf(why, wl, "tag %.*s: got %s want %s", (int)x->namelen, x->name,
			    va, vb), 0;
	}
	return 1;
}

/* The value of the first field named name in out[0..len). */
static int
find_field(const char *s, size_t len, const char *name, const char **v, size_t *vlen)
{
	size_t nl = strlen(name), i = 0, e;

	while (i < len) {
		for (e = i; e + 1 < len && !(s[e] == '\r' && s[e + 1] == '\n' &&
		    (e + 2 >= len || (s[e + 2] != ' ' && s[e + 2] != '\t'))); e++)
			;
		if (e - i > nl && strncasecmp(s + i, name, nl) == 0 && s[i + nl] == ':') {
			*v = s + i + nl + 1;
			*vlen = e - i - nl - 1;
			return 1;
		}
		i = e + 2;
	}
	return 0;
}

/* The A-R results of srv-id, merged (the suite's ar_merged cases). */
static void
ar_results(const char *msg, const char *srv, char *out, size_t cap)
{
	const char *p = msg, *eol;
	size_t o = 0, sl = strlen(srv);

	out[0] = '\0';
	while (*p && !(p[0] == '\r' && p[1] == '\n')) {
		const char *start = p;
		char val[4096];

		for (eol = p; *eol && !(eol[0] == '\r' && eol[1] == '\n' && eol[2] != ' ' &&
		    eol[2] != '\t'); eol++)
			;
		if (strncasecmp(start, "Authentication-Results:", 23) == 0) {
			squash(start + 23, (size_t)(eol - start - 23), val, sizeof(val));
			if (strncmp(val, srv, sl) == 0 && val[sl] == ';') {
				const char *r = val + sl + 1;
				size_t n;

				r += strspn(r, " ");
				n = strlen(r);
				while (n > 0 && r[n - 1] == ';')
					n--;
				o += (size_t)snprintf(out + o, cap - o, "%s%.*s", o ? "; " : "", (int)n, r);
			}
		}
		p = *eol ? eol + 2 : eol;
	}
}

static int
sign_check(const char *got, size_t glen, const char *name, const char *want, char *why,
    size_t wl)
{
	const char *v;
	size_t vlen, len;
	char *w;
	int ok;

	if (want == NULL || want[strspn(want, " \t\r\n")] == '\0')
		return glen == 0 ? 1 : (snprintf(why, wl, "sealed where it should not"), 0);
	if (!find_field(got, glen, name, &v, &vlen))
		return snprintf(why, wl, "no %s", name), 0;
	w = crlf(want, &len);
	if (strcmp(name, "ARC-Authentication-Results") == 0) {
		char a[4096], b[4096];

		squash(v, vlen, a, sizeof(a));
		squash(w, len, b, sizeof(b));
		ok = strcmp(a, b) == 0;
		if (!ok)
			snprintf(why, wl, "AAR got \"%s\" want \"%s\"", a, b);
	} else {
		/* The suite's expected texts have bare line ends: not FWS. */
		char b[4096];

		squash(w, len, b, sizeof(b));
		ok = tags_equal(v, vlen, b, strlen(b), why, wl);
	}
	free(w);
	return ok;
}

static void
sign_case(struct dns_static *z, struct dkim_key *key, yaml_document_t *d, yaml_node_t *root,
    const char *name, yaml_node_t *tc, struct tally *t)
{
	struct dns_resolver res = dns_static_resolver(z);
	char hbuf[1024], results[4096], err[128], why[4096] = "";
	const char *hdrs[32];
	struct arc_seal_opts o;
	enum arc_cv cv;
	struct buf out;
	size_t len, nh = 0;
	char *m = crlf(scalar(map_get(d, tc, "message")), &len), *p, *save = NULL;
	int rc, ok;

	memset(&o, 0, sizeof(o));
	o.domain = scalar(map_get(d, root, "domain"));
	o.selector = scalar(map_get(d, root, "sel"));
	o.key = key;
	o.timestamp = (time_t)atoll(scalar(map_get(d, tc, "t")));
	o.authserv_id = scalar(map_get(d, tc, "srv-id"));
	snprintf(hbuf, sizeof(hbuf), "%s", scalar(map_get(d, tc, "sig-headers")));
	for (p = strtok_r(hbuf, ":", &save); p && nh + 1 < 32; p = strtok_r(NULL, ":", &save))
		hdrs[nh++] = p;
	hdrs[nh] = NULL;
	o.headers = hdrs;
	ar_results(m, o.authserv_id, results, sizeof(results));
	o.results = results;
	/* The suite's signer takes cv from the arc= its A-R holds. */
	if ((p = strstr(results, "arc=")) != NULL && (p == results || p[-1] == ' ')) {
		cv = strncmp(p + 4, "pass", 4) == 0 ? ARC_PASS : strncmp(p + 4, "fail", 4) == 0 ?
		    ARC_FAIL : ARC_NONE;
		o.cv = &cv;
	}
	buf_init(&out, 1 << 20);
	rc = arc_seal(&o, m, len, &res, &out, err, sizeof(err));
	ok = rc >= 0 &&
	    sign_check(out.data, out.len, "ARC-Seal", scalar(map_get(d, tc, "AS")), why, sizeof(why)) &&
	    sign_check(out.data, out.len, "ARC-Authentication-Results",
	    scalar(map_get(d, tc, "AAR")), why, sizeof(why)) &&
	    sign_check(out.data, out.len, "ARC-Message-Signature",
	    scalar(map_get(d, tc, "AMS")), why, sizeof(why));
	/* A first seal validates here too. */
	if (ok && rc == 0 && (o.cv == NULL || cv == ARC_NONE)) {
		struct buf sealed;
		struct arc_result r;

		buf_init(&sealed, 1 << 22);
		assert_int_equal(buf_append(&sealed, out.data, out.len), 0);
		assert_int_equal(buf_append(&sealed, m, len), 0);
		(void)arc_verify(sealed.data, sealed.len, &res, NULL, &r);
		if (r.cv != ARC_PASS || r.n != 1 || r.oldest_pass != 1) {
			ok = 0;
			snprintf(why, sizeof(why), "own seal: %s (%s)", arc_cv_str(r.cv), r.reason);
		}
		buf_free(&sealed);
	}
	if (ok)
		t->passed++;
	else {
		t->failed++;
		printf("ARC signing FAIL %s: rc %d (%s) %s\n", name, rc, rc ? err : "", why);
	}
	buf_free(&out);
	free(m);
}

static void
run_scenario(yaml_document_t *d, yaml_node_t *root, int sign, struct tally *t)
{
	yaml_node_t *tests = map_get(d, root, "tests");
	struct dns_static *z = zone_of(d, root);
	struct dkim_key *key = NULL;
	yaml_node_pair_t *p;
	char err[128];

	assert_non_null(tests);
	if (sign) {
		const char *pem = scalar(map_get(d, root, "privatekey"));

		assert_non_null(pem);
		key = dkim_key_parse(pem, strlen(pem), err, sizeof(err));
		if (key == NULL)
			fail_msg("signing key: %s", err);
	}
	for (p = tests->data.mapping.pairs.start; p < tests->data.mapping.pairs.top; p++) {
		const char *name = scalar(yaml_document_get_node(d, p->key));
		yaml_node_t *tc = yaml_document_get_node(d, p->value);

		yaml_node_pair_t *q;
		int later = 0;

		/* A key given twice in a mapping: the last one counts (YAML). */
		for (q = p + 1; q < tests->data.mapping.pairs.top; q++)
			if (strcmp(scalar(yaml_document_get_node(d, q->key)), name) == 0)
				later = 1;
		if (later)
			continue;
		t->listed++;
		if (sign)
			sign_case(z, key, d, root, name, tc, t);
		else
			validation_case(z, name, map_get(d, tc, "cv"),
			    scalar(map_get(d, tc, "message")), t);
	}
	dkim_key_free(key);
	dns_static_free(z);
}

struct run {
	int           sign;
	struct tally *t;
};

static void
run_document(yaml_document_t *d, yaml_node_t *root, void *arg)
{
	struct run *r = arg;

	run_scenario(d, root, r->sign, r->t);
}

static void
run_file(const char *file, int sign, struct tally *t)
{
	char rel[256];
	struct run r = { sign, t };

	snprintf(rel, sizeof(rel), "arc/%s", file);
	yaml_each_document(rel, run_document, &r);
}

static void
test_validation_suite(void **state)
{
	struct tally t = { 0, 0, 0, 0 };

	(void)state;
	run_file("arc-draft-validation-tests.yml", 0, &t);
	printf("ARC validation: %d passed, %d failed (%d unspecified)\n", t.passed, t.failed,
	    t.skipped);
	assert_int_equal(t.listed, VALIDATION_CASES);
	assert_int_equal(t.passed + t.failed + t.skipped, t.listed);
	assert_int_equal(t.failed, 0);
}

static void
test_sign_suite(void **state)
{
	struct tally t = { 0, 0, 0, 0 };

	(void)state;
	run_file("arc-draft-sign-tests.yml", 1, &t);
	printf("ARC signing: %d passed, %d failed\n", t.passed, t.failed);
	assert_int_equal(t.listed, SIGN_CASES);
	assert_int_equal(t.failed, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validation_suite),
		cmocka_unit_test(test_sign_suite),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
