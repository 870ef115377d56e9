/*
 * Unit tests for src/mailauth/dmarc_report.c: the record line round trip,
 * malformed lines, rua URIs, aggregation and the exact XML of a report.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "mailauth/dmarc_report.h"

static void
record(struct drep_record *r, const char *ip, enum dmarc_policy disp, int dkim_ok)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->ip, sizeof(r->ip), "%s", ip);
	snprintf(r->header_from, sizeof(r->header_from), "good.test");
	snprintf(r->policy_domain, sizeof(r->policy_domain), "good.test");
	r->adkim = DMARC_ALIGN_STRICT;
	r->p = DMARC_POLICY_REJECT;
	r->sp = DMARC_POLICY_QUARANTINE;
	r->pct = 50;
	r->disposition = disp;
	r->dkim_aligned = dkim_ok;
	snprintf(r->spf_domain, sizeof(r->spf_domain), "bad.test");
	snprintf(r->spf_result, sizeof(r->spf_result), "fail");
	snprintf(r->rua[0], sizeof(r->rua[0]), "dmarc@localhost");
	snprintf(r->rua[1], sizeof(r->rua[1]), "agg@rep.test");
	r->nrua = 2;
	if (dkim_ok) {
		snprintf(r->dkim[0].domain, sizeof(r->dkim[0].domain), "good.test");
		snprintf(r->dkim[0].selector, sizeof(r->dkim[0].selector), "rsa");
		snprintf(r->dkim[0].result, sizeof(r->dkim[0].result), "pass");
		r->ndkim = 1;
	}
}

static void
test_line_roundtrip(void **state)
{
	struct drep_record r, back;
	char line[DREP_LINE_MAX + 1];
	int n;

	record(&r, "192.0.2.1", DMARC_POLICY_NONE, 1);
	n = drep_line_format(&r, line, sizeof(line));
	assert_string_equal(line, "1\t192.0.2.1\tgood.test\tgood.test\ts\tr\treject\tquarantine\t50\t"
	    "none\tpass\tfail\tbad.test\tmfrom\tfail\tdmarc@localhost,agg@rep.test\t"
	    "good.test/rsa/pass\n");
	assert_int_equal(n, (int)strlen(line));
	assert_int_equal(drep_line_parse(line, (size_t)n - 1, &back), 0);
	assert_memory_equal(&r, &back, sizeof(r));
	/* too small a buffer */
	assert_int_equal(drep_line_format(&r, line, 40), -1);
	/* a value that would break the format */
	snprintf(r.header_from, sizeof(r.header_from), "a\tb");
	assert_int_equal(drep_line_format(&r, line, sizeof(line)), -1);
}

static void
test_line_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"2\t1.2.3.4\ta\ta\tr\tr\tnone\tnone\t100\tnone\tpass\tpass\ta\tmfrom\tpass\tx@a\t-",
		"1\t1.2.3.4\ta\ta\tr\tr\tnone\tnone\t101\tnone\tpass\tpass\ta\tmfrom\tpass\tx@a\t-",
		"1\t1.2.3.4\ta\ta\tr\tr\tnone\tnone\t050\tnone\tpass\tpass\ta\tmfrom\tpass\tx@a\t-",
		"1\t1.2.3.4\ta\ta\tr\tr\tnone\tnone\t50\tnone\tpass\tpass\ta\tmfrom\tpass\tx@a,X@a\t-",
		"1\t1.2.3.4\ta\ta\tx\tr\tnone\tnone\t100\tnone\tpass\tpass\ta\tmfrom\tpass\tx@a\t-",
		"1\t1.2.3.4\ta\ta\tr\tr\tnone\tnone\t100\tnone\tpass\tpass\ta\tmfrom\tpass\txa\t-",
		"1\t1.2.3.4\ta\ta\tr\tr\tnone\tnone\t100\tnone\tpass\tpass\ta\tmfrom\tpass\t\t-",
		"1\t1.2.3.4\ta\ta\tr\tr\tnone\tnone\t100\tnone\tpass\tpass\ta\tmfrom\tpass\tx@a\td/s",
		"1\t1.2.3.4\ta\ta\tr\tr\tnone\tnone\t100\tnone\tpass\tpass\ta\tmfrom\tpass\tx@a\td/s/ok",
		"1\t1.2.3.4\ta\ta\tr\tr\tnone\tnone\t100\tnone\tpass\tpass\ta\tmfrom\tpass\tx@a\t-\textra",
		"1\t<x>\ta\ta\tr\tr\tnone\tnone\t100\tnone\tpass\tpass\ta\tmfrom\tpass\tx@a\t-",
		"1\t1.2.3.4\ta\ta\tr\tr\tnone\tnone\t100\tnone\tpass\tpass\ta\tmfrom\tpass\t"
		    "a@a,b@b,c@c,d@d,e@e\t-",
	};
	static const char good[] =
		"1\t::1\ta\ta\tr\tr\tnone\tnone\t0\tnone\tpass\tfail\t\thelo\tnone\tx@a\t-";
	struct drep_record r;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(drep_line_parse(bad[i], strlen(bad[i]), &r), -1);
	assert_int_equal(drep_line_parse(bad[1] + 0, 0, &r), -1);
	/* the minimal good one, and its empty SPF domain */
	assert_int_equal(drep_line_parse(good, strlen(good), &r), 0);
	assert_string_equal(r.ip, "::1");
	assert_int_equal(r.spf_helo, 1);
	assert_int_equal(r.ndkim, 0);
}

static void
test_rua(void **state)
{
	char a[DREP_ADDR_MAX + 1];

	assert_int_equal(drep_rua_address("mailto:dmarc@example.com", a, sizeof(a)), 0);
	assert_string_equal(a, "dmarc@example.com");
	assert_int_equal(drep_rua_address("MAILTO:r@x.test!10m", a, sizeof(a)), 0);
	assert_string_equal(a, "r@x.test");
	assert_int_equal(drep_rua_address("https://x.test/", a, sizeof(a)), -1);
	assert_int_equal(drep_rua_address("mailto:a%40b@x.test", a, sizeof(a)), -1);
	assert_int_equal(drep_rua_address("mailto:a@x.test?subject=x", a, sizeof(a)), -1);
	assert_int_equal(drep_rua_address("mailto:nobody", a, sizeof(a)), -1);
	assert_int_equal(drep_rua_address("mailto:a@b", a, 3), -1);
}

static const char expected_xml[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<feedback>\n"
	"  <version>1.0</version>\n"
	"  <report_metadata>\n"
	"    <org_name>Tern &amp; Co</org_name>\n"
	"    <email>dmarc-noreply@test.example</email>\n"
	"    <report_id>r1</report_id>\n"
	"    <date_range>\n"
	"      <begin>1700000000</begin>\n"
	"      <end>1700086400</end>\n"
	"    </date_range>\n"
	"  </report_metadata>\n"
	"  <policy_published>\n"
	"    <domain>good.test</domain>\n"
	"    <adkim>s</adkim>\n"
	"    <aspf>r</aspf>\n"
	"    <p>reject</p>\n"
	"    <sp>quarantine</sp>\n"
	"    <pct>50</pct>\n"
	"  </policy_published>\n"
	"  <record>\n"
	"    <row>\n"
	"      <source_ip>192.0.2.1</source_ip>\n"
	"      <count>2</count>\n"
	"      <policy_evaluated>\n"
	"        <disposition>none</disposition>\n"
	"        <dkim>pass</dkim>\n"
	"        <spf>fail</spf>\n"
	"      </policy_evaluated>\n"
	"    </row>\n"
	"    <identifiers>\n"
	"      <header_from>good.test</header_from>\n"
	"    </identifiers>\n"
	"    <auth_results>\n"
	"      <dkim>\n"
	"        <domain>good.test</domain>\n"
	"        <selector>rsa</selector>\n"
	"        <result>pass</result>\n"
	"      </dkim>\n"
	"      <spf>\n"
	"        <domain>bad.test</domain>\n"
	"        <scope>mfrom</scope>\n"
	"        <result>fail</result>\n"
	"      </spf>\n"
	"    </auth_results>\n"
	"  </record>\n"
	"  <record>\n"
	"    <row>\n"
	"      <source_ip>192.0.2.9</source_ip>\n"
	"      <count>1</count>\n"
	"      <policy_evaluated>\n"
	"        <disposition>reject</disposition>\n"
	"        <dkim>fail</dkim>\n"
	"        <spf>fail</spf>\n"
	"      </policy_evaluated>\n"
	"    </row>\n"
	"    <identifiers>\n"
	"      <header_from>good.test</header_from>\n"
	"    </identifiers>\n"
	"    <auth_results>\n"
	"      <spf>\n"
	"        <domain>bad.test</domain>\n"
	"        <scope>mfrom</scope>\n"
	"        <result>fail</result>\n"
	"      </spf>\n"
	"    </auth_results>\n"
	"  </record>\n"
	"</feedback>\n";

static void
test_aggregate_xml(void **state)
{
	struct drep_meta m = { "Tern & Co", "dmarc-noreply@test.example", "r1",
		1700000000, 1700086400 };
	struct drep_record r;
	struct drep_agg a;
	struct buf out;

	drep_agg_init(&a);
	record(&r, "192.0.2.1", DMARC_POLICY_NONE, 1);
	assert_int_equal(drep_agg_add(&a, &r), 0);
	assert_int_equal(drep_agg_add(&a, &r), 0);
	record(&r, "192.0.2.9", DMARC_POLICY_REJECT, 0);
	assert_int_equal(drep_agg_add(&a, &r), 0);
	/* one group per report address, two rows each */
	assert_int_equal(a.ngroups, 2);
	assert_string_equal(a.groups[0].rua, "dmarc@localhost");
	assert_string_equal(a.groups[1].rua, "agg@rep.test");
	assert_int_equal(a.groups[0].nrows, 2);
	assert_int_equal(a.nrows, 4);
	buf_init(&out, 1 << 20);
	assert_int_equal(drep_xml(&a.groups[0], &m, &out), 0);
	assert_int_equal(out.len, strlen(expected_xml));
	assert_memory_equal(out.data, expected_xml, out.len);
	buf_free(&out);
	/* the limit of the output buffer */
	buf_init(&out, 100);
	assert_int_equal(drep_xml(&a.groups[0], &m, &out), -1);
	buf_free(&out);
	drep_agg_free(&a);
}

static void
test_aggregate_limit(void **state)
{
	struct drep_record r;
	struct drep_agg a;
	unsigned i;

	drep_agg_init(&a);
	record(&r, "x", DMARC_POLICY_NONE, 0);
	r.nrua = 1;
	for (i = 0; i < DREP_ROWS_MAX + 5; i++) {
		snprintf(r.ip, sizeof(r.ip), "10.0.%u.%u", i / 256, i % 256);
		(void)drep_agg_add(&a, &r);
	}
	assert_int_equal(a.nrows, DREP_ROWS_MAX);
	assert_int_equal(a.dropped, 5);
	drep_agg_free(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_roundtrip),
		cmocka_unit_test(test_line_bad),
		cmocka_unit_test(test_rua),
		cmocka_unit_test(test_aggregate_xml),
		cmocka_unit_test(test_aggregate_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
