/*
 * The OpenSPF RFC 7208 conformance suite against src/mailauth/spf.c.
 * Reads $TERN_TESTDATA/spf/rfc7208-tests.yml (default ../shared/testdata,
 * relative to the repository root) with libyaml; each scenario's zonedata
 * becomes a dns_static zone (rules in spf/README.md beside the suite),
 * each test one spf_check_mailfrom(). Prints one line per failing case and
 * "SPF suite: N passed, N failed"; fails unless every case of the file ran
 * and passed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "yaml_nodes.h"

#include "dns/dns.h"
#include "mailauth/spf.h"

#define SUITE_MIN_CASES	203	/* what spf/README.md says the file holds */
#define MAX_TIMEOUTS	64

/* A name with a TIMEOUT item: the types answered (listed before it). */
struct timeout_name {
	char     name[DNS_NAME_MAX + 1];
	uint64_t answered;
};

struct zone {
	struct dns_static  *z;
	struct timeout_name to[MAX_TIMEOUTS];
	size_t              nto;
};

struct tally {
	int passed, failed, listed;
};

/* ---- libyaml helpers ---- */

/* ---- zone building ---- */

static void
lower_name(const char *s, char *out, size_t cap)
{
	size_t i, n = strlen(s);

	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n >= cap)
		n = cap - 1;
	for (i = 0; i < n; i++)
		out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
	out[n] = '\0';
}

static enum dns_type
type_of(const char *t)
{
	static const struct { const char *name; enum dns_type type; } types[] = {
		{ "A", DNS_T_A }, { "AAAA", DNS_T_AAAA }, { "MX", DNS_T_MX },
		{ "PTR", DNS_T_PTR }, { "CNAME", DNS_T_CNAME }, { "TXT", DNS_T_TXT },
		{ "SPF", DNS_T_TXT },
	};
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(t, types[i].name) == 0)
			return types[i].type;
	fail_msg("zonedata: unknown type %s", t);
	return DNS_T_A;
}

/* TXT/SPF value: a string, or a list of strings joined with nothing. */
static size_t
txt_value(yaml_document_t *d, yaml_node_t *v, char *buf, size_t cap)
{
	yaml_node_item_t *it;
	size_t n = 0;

	if (v->type == YAML_SCALAR_NODE) {
		assert_true(v->data.scalar.length < cap);
		memcpy(buf, v->data.scalar.value, v->data.scalar.length);
		return v->data.scalar.length;
	}
	assert_int_equal(v->type, YAML_SEQUENCE_NODE);
	for (it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
		yaml_node_t *s = yaml_document_get_node(d, *it);

		assert_non_null(scalar(s));
		assert_true(n + s->data.scalar.length < cap);
		memcpy(buf + n, s->data.scalar.value, s->data.scalar.length);
		n += s->data.scalar.length;
	}
	return n;
}

static void
add_item(struct zone *z, yaml_document_t *d, const char *name, const char *type,
    yaml_node_t *v)
{
	static char data[8192];
	struct dns_rr rr;

	memset(&rr, 0, sizeof(rr));
	rr.type = type_of(type);
	switch (rr.type) {
	case DNS_T_A:
	case DNS_T_AAAA:
		assert_int_equal(inet_pton(rr.type == DNS_T_A ? AF_INET : AF_INET6, scalar(v),
		    rr.addr), 1);
		break;
	case DNS_T_MX:
		assert_int_equal(v->type, YAML_SEQUENCE_NODE);
		rr.pref = (uint16_t)atoi(scalar(yaml_document_get_node(d,
		    v->data.sequence.items.start[0])));
		rr.data = (char *)scalar(yaml_document_get_node(d,
		    v->data.sequence.items.start[1]));
		rr.len = strlen(rr.data);
		break;
	case DNS_T_PTR:
	case DNS_T_CNAME:
		rr.data = (char *)scalar(v);
		rr.len = strlen(rr.data);
		break;
	default:
		rr.len = txt_value(d, v, data, sizeof(data));
		rr.data = data;
		break;
	}
	if (dns_static_add_rr(z->z, name, &rr) == -1)
		fail_msg("zonedata: cannot add %s %s", name, type);
}

/* One name's item list (README "zonedata" rules 1-4). */
static void
add_name(struct zone *z, yaml_document_t *d, const char *name, yaml_node_t *items)
{
	yaml_node_item_t *it;
	uint64_t seen = 0;
	int has_txt = 0;

	assert_int_equal(items->type, YAML_SEQUENCE_NODE);
	for (it = items->data.sequence.items.start; it < items->data.sequence.items.top; it++)
		if (map_get(d, yaml_document_get_node(d, *it), "TXT") != NULL)
			has_txt = 1;
	for (it = items->data.sequence.items.start; it < items->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(d, *it), *k, *v;
		const char *type;

		if (scalar(item) != NULL) {
			assert_string_equal(scalar(item), "TIMEOUT");
			assert_true(z->nto < MAX_TIMEOUTS);
			lower_name(name, z->to[z->nto].name, sizeof(z->to[z->nto].name));
			z->to[z->nto++].answered = seen;
			continue;
		}
		assert_int_equal(item->type, YAML_MAPPING_NODE);
		k = yaml_document_get_node(d, item->data.mapping.pairs.start->key);
		v = yaml_document_get_node(d, item->data.mapping.pairs.start->value);
		type = scalar(k);
		assert_non_null(type);
		/* SPF (type 99) items are served as TXT only where no TXT item is */
		if (strcmp(type, "SPF") == 0 && has_txt)
			continue;
		if (strcmp(type, "TXT") == 0 && scalar(v) && strcmp(scalar(v), "NONE") == 0)
			continue;
		seen |= 1ull << type_of(type);
		add_item(z, d, name, type, v);
	}
}

/* Wraps the static zone: TIMEOUT names time out for the types not listed
 * before their TIMEOUT item. */
static int
zone_query(void *ctx, const char *qname, enum dns_type type, struct dns_answer *out)
{
	struct zone *z = ctx;
	struct dns_resolver r = dns_static_resolver(z->z);
	char name[DNS_NAME_MAX + 1];
	size_t i;

	lower_name(qname, name, sizeof(name));
	for (i = 0; i < z->nto; i++)
		if (strcmp(z->to[i].name, name) == 0 && !(z->to[i].answered & (1ull << type))) {
			dns_answer_init(out);
			out->status = DNS_TEMPFAIL;
			return 0;
		}
	return dns_query(&r, qname, type, out);
}

/* ---- running ---- */

static int
result_ok(yaml_document_t *d, yaml_node_t *want, enum spf_result got)
{
	yaml_node_item_t *it;

	if (scalar(want) != NULL)
		return strcmp(scalar(want), spf_result_str(got)) == 0;
	assert_int_equal(want->type, YAML_SEQUENCE_NODE);
	for (it = want->data.sequence.items.start; it < want->data.sequence.items.top; it++)
		if (strcmp(scalar(yaml_document_get_node(d, *it)), spf_result_str(got)) == 0)
			return 1;
	return 0;
}

static void
run_case(struct zone *z, yaml_document_t *d, const char *scen, const char *name,
    yaml_node_t *t, struct tally *tally)
{
	struct dns_resolver res = { zone_query, z };
	struct spf_request req;
	struct spf_outcome out;
	yaml_node_t *want = map_get(d, t, "result");
	const char *exp = scalar(map_get(d, t, "explanation"));
	int ok;

	memset(&req, 0, sizeof(req));
	assert_int_equal(spf_request_set_ip(&req, scalar(map_get(d, t, "host"))), 0);
	req.helo = scalar(map_get(d, t, "helo"));
	req.sender = scalar(map_get(d, t, "mailfrom"));
	req.default_exp = "DEFAULT";	/* README: the runner's default explanation */
	req.now = 1700000000;
	assert_non_null(want);
	assert_non_null(req.helo);
	assert_non_null(req.sender);
	spf_check_mailfrom(&res, &req, &out);
	ok = result_ok(d, want, out.result);
	/*
	 * Explanations are compared without regard to case: the suite spells
	 * the %{ir} nibbles of an IPv6 client in upper case (v-macro-ip6) where
	 * RFC 7208 7.4 writes them in lower case; the text is a DNS name.
	 */
	if (ok && exp != NULL && out.result == SPF_FAIL && strcasecmp(exp, out.explanation) != 0)
		ok = 0;
	if (ok) {
		tally->passed++;
		return;
	}
	tally->failed++;
	printf("SPF FAIL %s / %s: got %s (%s) mechanism \"%s\" explanation \"%s\"%s%s%s\n",
	    scen, name, spf_result_str(out.result), out.problem, out.mechanism,
	    out.explanation, exp ? " want explanation \"" : "", exp ? exp : "", exp ? "\"" : "");
}

static void
run_scenario(yaml_document_t *d, yaml_node_t *root, struct tally *tally)
{
	yaml_node_t *zd = map_get(d, root, "zonedata"), *tests = map_get(d, root, "tests");
	const char *scen = scalar(map_get(d, root, "description"));
	yaml_node_pair_t *p;
	struct zone *z;

	assert_non_null(tests);
	assert_non_null(z = calloc(1, sizeof(*z)));
	assert_non_null(z->z = dns_static_new());
	if (zd != NULL && zd->type == YAML_MAPPING_NODE)
		for (p = zd->data.mapping.pairs.start; p < zd->data.mapping.pairs.top; p++)
			add_name(z, d, scalar(yaml_document_get_node(d, p->key)),
			    yaml_document_get_node(d, p->value));
	for (p = tests->data.mapping.pairs.start; p < tests->data.mapping.pairs.top; p++) {
		tally->listed++;
		run_case(z, d, scen ? scen : "?", scalar(yaml_document_get_node(d, p->key)),
		    yaml_document_get_node(d, p->value), tally);
	}
	dns_static_free(z->z);
	free(z);
}

static void
run_document(yaml_document_t *d, yaml_node_t *root, void *arg)
{
	run_scenario(d, root, arg);
}

static void
test_rfc7208_suite(void **state)
{
	struct tally tally = { 0, 0, 0 };

	(void)state;
	yaml_each_document("spf/rfc7208-tests.yml", run_document, &tally);
	printf("SPF suite: %d passed, %d failed\n", tally.passed, tally.failed);
	assert_int_equal(tally.passed + tally.failed, tally.listed);
	assert_true(tally.listed >= SUITE_MIN_CASES);
	assert_int_equal(tally.failed, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7208_suite),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
