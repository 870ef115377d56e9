/*
 * Unit tests for src/mailauth/dmarc.c and orgdomain.c: records, From
 * parsing, discovery, alignment, pct; plus two shared suites: the Public
 * Suffix List's test_psl.txt and ../shared/testdata/dmarc/dmarc-tests.yml
 * (converted by an embedded python3-yaml script into a line format).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dns/dns.h"
#include "mailauth/dmarc.h"
#include "mailauth/orgdomain.h"

#define TEST_PSL "/usr/share/doc/publicsuffix/examples/test_psl.txt"

static struct orgdomain *od;

/* ---- records ---- */

static enum dmarc_rec_status
rec(const char *s, struct dmarc_record *r)
{
	return dmarc_record_parse(s, strlen(s), r, NULL, 0);
}

static void
test_record_tags(void **state)
{
	struct dmarc_record r;

	assert_int_equal(rec("v=DMARC1; p=quarantine; sp=none; pct=20; fo=1:d; ri=3600; "
	    "rua=mailto:a@example.com!10m, mailto:b@example.com; ruf=mailto:f@example.com!5", &r),
	    DMARC_REC_OK);
	assert_int_equal(r.p, DMARC_POLICY_QUARANTINE);
	assert_int_equal(r.sp, DMARC_POLICY_NONE);
	assert_int_equal(r.pct, 20);
	assert_int_equal(r.fo, DMARC_FO_1 | DMARC_FO_D);
	assert_int_equal(r.ri, 3600);
	assert_int_equal(r.nrua, 2);
	assert_string_equal(r.rua[0].uri, "mailto:a@example.com");
	assert_int_equal(r.rua[0].limit, 10ULL << 20);
	assert_string_equal(r.rua[1].uri, "mailto:b@example.com");
	assert_int_equal(r.rua[1].limit, 0);
	assert_int_equal(r.nruf, 1);
	assert_int_equal(r.ruf[0].limit, 5);
	assert_int_equal(r.p_fallback, 0);
}

static void
test_record_invalid_optional(void **state)
{
	struct dmarc_record r;

	/* bad optional values give the defaults (6.3) */
	assert_int_equal(rec("v=DMARC1; p=reject; pct=101; adkim=x; fo=2; ri=abc; rf=iodef", &r),
	    DMARC_REC_OK);
	assert_int_equal(r.pct, 100);
	assert_int_equal(r.adkim, DMARC_ALIGN_RELAXED);
	assert_int_equal(r.fo, DMARC_FO_0);
	assert_int_equal(r.ri, 86400);
	assert_int_equal(r.rf_afrf, 1);
	/* a segment that is not tag=value is skipped, the rest used */
	assert_int_equal(rec("v=DMARC1; garbage; p=reject", &r), DMARC_REC_OK);
	assert_int_equal(r.p, DMARC_POLICY_REJECT);
	/* the first p wins */
	assert_int_equal(rec("v=DMARC1; p=none; p=reject", &r), DMARC_REC_OK);
	assert_int_equal(r.p, DMARC_POLICY_NONE);
	/* a rua that is no URI does not rescue an invalid p */
	assert_int_equal(rec("v=DMARC1; p=x; rua=nonsense", &r), DMARC_REC_UNUSABLE);
	assert_int_equal(rec("v=DMARC1; p=x; rua=mailto:nobody", &r), DMARC_REC_UNUSABLE);
	assert_int_equal(rec("v=DMARC1; p=x; rua=https://r.example/x", &r), DMARC_REC_OK);
	assert_int_equal(r.p_fallback, 1);
	/* "!" inside the URI, not a size */
	assert_int_equal(rec("v=DMARC1; p=none; rua=mailto:a!b@example.com", &r), DMARC_REC_OK);
	assert_string_equal(r.rua[0].uri, "mailto:a!b@example.com");
	assert_int_equal(r.rua[0].limit, 0);
}

static void
test_record_version(void **state)
{
	struct dmarc_record r;

	assert_int_equal(rec("v=dmarc1; p=none", &r), DMARC_REC_NOT_DMARC);
	assert_int_equal(rec("v=DMARC1p=none", &r), DMARC_REC_NOT_DMARC);
	assert_int_equal(rec("V=DMARC1; p=none", &r), DMARC_REC_OK);
	assert_int_equal(dmarc_record_parse("v=DMARC1; p=none", 8, &r, NULL, 0),
	    DMARC_REC_UNUSABLE);
}

/* ---- From field ---- */

static enum dmarc_from_status
from(const char *hdr, struct dmarc_from *f)
{
	return dmarc_from_domains(hdr, strlen(hdr), f);
}

static void
test_from_forms(void **state)
{
	static const struct { const char *hdr, *dom; } ok[] = {
		{ "From: user@Example.COM\r\n", "example.com" },
		{ "from:user@example.com", "example.com" },
		{ "From : \"Doe, John\" <john@example.org>\r\n", "example.org" },
		{ "From: John Q. Public <jqp@example.net> (home)\r\n", "example.net" },
		{ "From: (c) \"a@b\"@x.example (c2)\r\n", "x.example" },
		{ "From: Joe\r\n <joe@fold.example>\r\nSubject: x\r\n", "fold.example" },
		{ "From: <@route.example,@r2.example:u@real.example>\n", "real.example" },
		{ "From: team: a@grp.example, b@grp.example;\r\n", "grp.example" },
		{ "From: a@sp . example\r\n", "sp.example" },
		{ "To: a@to.example\r\nFrom: b@f.example\r\n\r\nFrom: c@body.example\r\n",
		  "f.example" },
		{ "From: ,a@obs.example,,\r\n", "obs.example" },
	};
	struct dmarc_from f;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (from(ok[i].hdr, &f) != DMARC_FROM_OK)
			fail_msg("case %zu: %s", i, ok[i].hdr);
		assert_int_equal(f.ndomains, 1);
		assert_string_equal(f.domains[0], ok[i].dom);
	}
	assert_int_equal(f.naddrs, 1);
	assert_int_equal(from("From: a@x.example, B@Y.example, c@X.example\r\n", &f),
	    DMARC_FROM_OK);
	assert_int_equal(f.ndomains, 2);
	assert_int_equal(f.naddrs, 3);
	assert_string_equal(f.domains[1], "y.example");
}

static void
test_from_bad(void **state)
{
	static const struct { const char *hdr; enum dmarc_from_status st; } bad[] = {
		{ "Subject: hi\r\n", DMARC_FROM_NO_FIELD },
		{ "Subject: hi\r\n\r\nFrom: a@b.example\r\n", DMARC_FROM_NO_FIELD },
		{ "From: a@b.example\r\nFrom: c@d.example\r\n", DMARC_FROM_MULTI_FIELD },
		{ "From: \r\n", DMARC_FROM_NO_ADDRESS },
		{ "From: undisclosed:;\r\n", DMARC_FROM_NO_ADDRESS },
		{ "From: John Smith a@b.example\r\n", DMARC_FROM_SYNTAX },
		{ "From: a@[192.0.2.1]\r\n", DMARC_FROM_SYNTAX },
		{ "From: <a@b.example\r\n", DMARC_FROM_SYNTAX },
		{ "From: <>\r\n", DMARC_FROM_SYNTAX },
		{ "From: a@b.example c\r\n", DMARC_FROM_SYNTAX },
		{ "From: a@b..example\r\n", DMARC_FROM_SYNTAX },
		{ "From: a@.example\r\n", DMARC_FROM_SYNTAX },
		{ "From: @b.example\r\n", DMARC_FROM_SYNTAX },
		{ "From: user\r\n", DMARC_FROM_SYNTAX },
		{ "From: \"open@x.example\r\n", DMARC_FROM_SYNTAX },
		{ "From: a@b.example (open\r\n", DMARC_FROM_SYNTAX },
		{ "From: g: a@b.example\r\n", DMARC_FROM_SYNTAX },
		{ "From: <a@b.example> <c@d.example>\r\n", DMARC_FROM_SYNTAX },
		{ "From: a@\"q\"\r\n", DMARC_FROM_SYNTAX },
		{ "From: a@b.example;\r\n", DMARC_FROM_SYNTAX },
		{ "From: a@1.x,b@2.x,c@3.x,d@4.x,e@5.x,f@6.x,g@7.x,h@8.x,i@9.x\r\n",
		  DMARC_FROM_TOO_MANY },
	};
	struct dmarc_from f;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (from(bad[i].hdr, &f) != bad[i].st)
			fail_msg("case %zu: %s gave %d", i, bad[i].hdr, from(bad[i].hdr, &f));
	/* a NUL byte in the value is not taken as the end */
	assert_int_equal(dmarc_from_domains("From: a@b.ex\0ample\r\n", 20, &f), DMARC_FROM_SYNTAX);
}

/* ---- evaluation ---- */

static const char zone_text[] =
    "_dmarc.example.com TXT \"v=DMARC1; p=reject; sp=quarantine; pct=50\"\n"
    "_dmarc.fail.example TXT \"v=DMARC1; p=reject\"\n"
    "_dmarc.bad.example SERVFAIL\n"
    "_dmarc.none.example TXT \"v=DMARC1; p=none\"\n"
    "_dmarc.unusable.example TXT \"v=DMARC1; sp=reject\"\n";

static void
eval(const char *fromdom, const char *spfdom, unsigned roll, struct dmarc_outcome *o)
{
	struct dns_static *z = dns_static_new();
	struct dns_resolver r;
	struct dmarc_input in;
	char err[128];

	assert_non_null(z);
	assert_int_equal(dns_static_load(z, zone_text, strlen(zone_text), err, sizeof(err)), 0);
	r = dns_static_resolver(z);
	memset(&in, 0, sizeof(in));
	in.from_domain = fromdom;
	in.spf_domain = spfdom;
	in.spf_result = DMARC_AUTH_PASS;
	in.pct_roll = roll;
	assert_int_equal(dmarc_evaluate(&r, od, &in, o), 0);
	dns_static_free(z);
}

static void
test_eval_pct(void **state)
{
	struct dmarc_outcome o;

	eval("example.com", "other.example", 49, &o);
	assert_int_equal(o.result, DMARC_RESULT_FAIL);
	assert_int_equal(o.disposition, DMARC_POLICY_REJECT);
	assert_int_equal(o.sampled_out, 0);
	eval("example.com", "other.example", 50, &o);
	assert_int_equal(o.policy, DMARC_POLICY_REJECT);
	assert_int_equal(o.disposition, DMARC_POLICY_QUARANTINE);	/* 6.6.4 */
	assert_int_equal(o.sampled_out, 1);
	eval("www.example.com", "other.example", 99, &o);
	assert_int_equal(o.policy, DMARC_POLICY_QUARANTINE);
	assert_int_equal(o.disposition, DMARC_POLICY_NONE);
	eval("example.com", "x.Example.COM.", 99, &o);
	assert_int_equal(o.result, DMARC_RESULT_PASS);
	assert_int_equal(o.disposition, DMARC_POLICY_NONE);
}

static void
test_eval_errors(void **state)
{
	struct dmarc_outcome o;

	eval("bad.example", "bad.example", 0, &o);
	assert_int_equal(o.result, DMARC_RESULT_TEMPERROR);
	assert_string_equal(o.reason, "DNS temporary failure for _dmarc.bad.example");
	eval("x.bad.example", "bad.example", 0, &o);	/* at the org domain */
	assert_int_equal(o.result, DMARC_RESULT_TEMPERROR);
	eval("unusable.example", "other.example", 0, &o);	/* no fallback (6.6.3) */
	assert_int_equal(o.result, DMARC_RESULT_NONE);
	assert_string_equal(o.policy_domain, "");
	eval("", "other.example", 0, &o);
	assert_int_equal(o.result, DMARC_RESULT_PERMERROR);
	eval("co.uk", "co.uk", 0, &o);	/* a public suffix: looked up as itself */
	assert_int_equal(o.result, DMARC_RESULT_NONE);
}

static void
check_msg(const char *hdr, struct dmarc_outcome *o)
{
	struct dns_static *z = dns_static_new();
	struct dns_resolver r;
	struct dmarc_dkim sig = { "none.example", DMARC_AUTH_PASS };
	struct dmarc_input in;
	char err[128];

	assert_int_equal(dns_static_load(z, zone_text, strlen(zone_text), err, sizeof(err)), 0);
	r = dns_static_resolver(z);
	memset(&in, 0, sizeof(in));
	in.spf_domain = "other.example";
	in.spf_result = DMARC_AUTH_PASS;
	in.dkim = &sig;
	in.ndkim = 1;
	assert_int_equal(dmarc_check_message(&r, od, hdr, strlen(hdr), &in, o), 0);
	dns_static_free(z);
}

static void
test_check_message(void **state)
{
	struct dmarc_outcome o;

	check_msg("From: a@none.example\r\n", &o);
	assert_int_equal(o.result, DMARC_RESULT_PASS);
	assert_string_equal(o.dkim_domain, "none.example");
	/* several domains: the strictest failing one is reported (6.6.1) */
	check_msg("From: a@none.example, b@www.example.com, c@fail.example\r\n", &o);
	assert_int_equal(o.result, DMARC_RESULT_FAIL);
	assert_string_equal(o.header_from, "fail.example");
	assert_int_equal(o.disposition, DMARC_POLICY_REJECT);
	check_msg("From: a@none.example, c@nothing.example\r\n", &o);
	assert_int_equal(o.result, DMARC_RESULT_NONE);
	check_msg("From: a@none.example\r\nFrom: b@none.example\r\n", &o);
	assert_int_equal(o.result, DMARC_RESULT_PERMERROR);
	assert_string_equal(o.reason, "several From fields");
	check_msg("Subject: x\r\n", &o);
	assert_int_equal(o.result, DMARC_RESULT_PERMERROR);
}

/* ---- Public Suffix List test cases ---- */

/* Reads null or 'text' at *p into out (NULL for null); -1 on bad syntax. */
static int
psl_arg(const char **p, char *out, size_t n, int *isnull)
{
	const char *q = *p, *e;

	while (*q == ' ' || *q == ',')
		q++;
	if (strncmp(q, "null", 4) == 0) {
		*isnull = 1;
		*p = q + 4;
		return 0;
	}
	if (*q != '\'' || (e = strchr(q + 1, '\'')) == NULL || (size_t)(e - q - 1) >= n)
		return -1;
	memcpy(out, q + 1, (size_t)(e - q - 1));
	out[e - q - 1] = '\0';
	*isnull = 0;
	*p = e + 1;
	return 0;
}

static void
test_psl_suite(void **state)
{
	FILE *fp = fopen(TEST_PSL, "r");
	char line[1024], in[512], want[512], got[512];
	size_t pass = 0, failed = 0;
	int innull, wantnull, rc;
	const char *p;

	if (fp == NULL)
		fail_msg("%s missing (Debian package publicsuffix)", TEST_PSL);
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (strncmp(line, "checkPublicSuffix(", 18) != 0)
			continue;
		p = line + 18;
		if (psl_arg(&p, in, sizeof(in), &innull) == -1 ||
		    psl_arg(&p, want, sizeof(want), &wantnull) == -1)
			fail_msg("bad line: %s", line);
		rc = orgdomain_get(od, innull ? "" : in, innull ? 0 : strlen(in), got, sizeof(got));
		if (wantnull ? rc == -1 : rc == 0 && strcmp(got, want) == 0) {
			pass++;
		} else {
			failed++;
			print_message("PSL FAIL %s -> %s (got %s)\n", in, want, rc ? "null" : got);
		}
	}
	fclose(fp);
	print_message("PSL cases: %zu passed, %zu failed\n", pass, failed);
	assert_int_equal(failed, 0);
	assert_int_equal(pass, 78);	/* 82 lines, 4 commented out */
}

/* ---- the shared DMARC suite ---- */

static const char yaml_to_lines[] =
    "import sys, yaml\n"
    "def q(s):\n"
    "    o = []\n"
    "    for c in s.encode():\n"
    "        o.append('\\\\' + chr(c) if c in (34, 92) else chr(c) if 32 <= c < 127 else '\\\\%03d' % c)\n"
    "    return '\"' + ''.join(o) + '\"'\n"
    "def b(t, k):\n"
    "    return '-' if k not in t else '1' if t[k] else '0'\n"
    "for d in yaml.safe_load_all(open(sys.argv[1])):\n"
    "    for name, items in (d.get('zonedata') or {}).items():\n"
    "        for it in items:\n"
    "            v = it['TXT']\n"
    "            print('Z\\t%s TXT %s' % (name, ' '.join(q(x) for x in (v if isinstance(v, list) else [v]))))\n"
    "    for n, t in d['tests'].items():\n"
    "        if 'record' in t:\n"
    "            e = t['expect']\n"
    "            x = 'none' if e == 'none' else ' '.join(str(e[k]) for k in ('p', 'sp', 'adkim', 'aspf', 'pct'))\n"
    "            print('R\\t%s\\t%s\\t%s' % (n, t['record'].encode().hex() or '-', x))\n"
    "            continue\n"
    "        dk = ','.join('%s:%s' % (s['d'], s['result']) for s in t.get('dkim') or []) or '-'\n"
    "        print('E\\t' + '\\t'.join([n, t['from'], t['spf']['domain'], t['spf']['result'], dk,\n"
    "            t['result'], t.get('policy_domain', '-'), t.get('policy', '-'),\n"
    "            t.get('disposition', '-'), b(t, 'spf_aligned'), b(t, 'dkim_aligned')]))\n";

/* Runs the converter (argv, no shell) with stdout into a temp file. */
static FILE *
convert_suite(void)
{
	char yml[1024], tmpl[] = "/tmp/tern-dmarc-XXXXXX";
	const char *td = getenv("TERN_TESTDATA");
	int fd, status;
	pid_t pid;
	FILE *fp;

	snprintf(yml, sizeof(yml), "%s/dmarc/dmarc-tests.yml", td ? td : "../shared/testdata");
	if (access(yml, R_OK) == -1)
		fail_msg("%s not found (set TERN_TESTDATA)", yml);
	if ((fd = mkstemp(tmpl)) == -1)
		fail_msg("mkstemp");
	unlink(tmpl);
	if ((pid = fork()) == 0) {
		dup2(fd, 1);
		execl("/usr/bin/python3", "python3", "-c", yaml_to_lines, yml, (char *)NULL);
		_exit(127);
	}
	if (pid == -1 || waitpid(pid, &status, 0) == -1 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		fail_msg("python3-yaml conversion of %s failed", yml);
	lseek(fd, 0, SEEK_SET);
	if ((fp = fdopen(fd, "r")) == NULL)
		fail_msg("fdopen");
	return fp;
}

static size_t
split_tabs(char *line, char **f, size_t max)
{
	size_t n = 0;
	char *save = NULL, *t;

	line[strcspn(line, "\n")] = '\0';
	for (t = strtok_r(line, "\t", &save); t && n < max; t = strtok_r(NULL, "\t", &save))
		f[n++] = t;
	return n;
}

static int
hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c - 'a' + 10;
}

/* R name hexrecord expect: "none" or "p sp adkim aspf pct". */
static int
run_record(char **f)
{
	static const char *const pol[] = { "none", "quarantine", "reject" };
	char txt[1024], got[128];
	struct dmarc_record r;
	size_t i, n = 0;

	for (i = 0; f[2][0] != '-' && f[2][i] && f[2][i + 1] && n < sizeof(txt); i += 2)
		txt[n++] = (char)(hexval(f[2][i]) * 16 + hexval(f[2][i + 1]));
	if (dmarc_record_parse(txt, n, &r, NULL, 0) != DMARC_REC_OK)
		snprintf(got, sizeof(got), "none");
	else
		snprintf(got, sizeof(got), "%s %s %s %s %d", pol[r.p], pol[r.sp],
		    r.adkim == DMARC_ALIGN_STRICT ? "s" : "r",
		    r.aspf == DMARC_ALIGN_STRICT ? "s" : "r", r.pct);
	if (strcmp(got, f[3]) == 0)
		return 1;
	print_message("DMARC FAIL %s: want %s, got %s\n", f[1], f[3], got);
	return 0;
}

/* E name from spfdom spfres dkim result pdomain policy disposition spf_al dkim_al */
static int
run_eval(const struct dns_resolver *r, char **f)
{
	struct dmarc_dkim sigs[8];
	struct dmarc_input in;
	struct dmarc_outcome o;
	char dk[512], *save = NULL, *t, *c, got[512], want[512];
	int pd = strcmp(f[7], "-") != 0;

	memset(&in, 0, sizeof(in));
	in.from_domain = f[2];
	in.spf_domain = f[3];
	in.spf_result = dmarc_auth_from_str(f[4]);
	snprintf(dk, sizeof(dk), "%s", f[5]);
	for (t = strtok_r(dk, ",", &save); t && strcmp(t, "-") && in.ndkim < 8;
	    t = strtok_r(NULL, ",", &save)) {
		if ((c = strrchr(t, ':')) == NULL)
			return 0;
		*c = '\0';
		sigs[in.ndkim].d = t;
		sigs[in.ndkim++].result = dmarc_auth_from_str(c + 1);
	}
	in.dkim = sigs;
	if (dmarc_evaluate(r, od, &in, &o) == -1)
		return 0;
	snprintf(want, sizeof(want), "%s %s %s %s %s %s", f[6], f[7], f[8], f[9], f[10], f[11]);
	snprintf(got, sizeof(got), "%s %s %s %s %s %s", dmarc_result_str(o.result),
	    pd ? o.policy_domain : "-", pd ? dmarc_policy_str(o.policy) : "-",
	    pd ? dmarc_policy_str(o.disposition) : "-",
	    strcmp(f[10], "-") ? (o.spf_aligned ? "1" : "0") : "-",
	    strcmp(f[11], "-") ? (o.dkim_aligned ? "1" : "0") : "-");
	if (strcmp(got, want) == 0)
		return 1;
	print_message("DMARC FAIL %s: want %s, got %s (%s)\n", f[1], want, got, o.reason);
	return 0;
}

static void
test_dmarc_suite(void **state)
{
	struct dns_static *z = dns_static_new();
	struct dns_resolver r = dns_static_resolver(z);
	char *line = NULL, *f[12], err[256];
	size_t cap = 0, n, pass = 0, failed = 0;
	FILE *fp = convert_suite();

	/* zone lines first: the whole file, then the tests */
	while (getline(&line, &cap, fp) != -1)
		if (split_tabs(line, f, 12) == 2 && strcmp(f[0], "Z") == 0 &&
		    dns_static_add(z, f[1], err, sizeof(err)) == -1)
			fail_msg("zone: %s", err);
	rewind(fp);
	while (getline(&line, &cap, fp) != -1) {
		n = split_tabs(line, f, 12);
		if (n == 4 && strcmp(f[0], "R") == 0)
			run_record(f) ? pass++ : failed++;
		else if (n == 12 && strcmp(f[0], "E") == 0)
			run_eval(&r, f) ? pass++ : failed++;
		else if (strcmp(f[0], "Z") != 0)
			fail_msg("bad converted line starting %s", f[0]);
	}
	free(line);
	fclose(fp);
	dns_static_free(z);
	print_message("DMARC cases: %zu passed, %zu failed\n", pass, failed);
	assert_int_equal(failed, 0);
	assert_int_equal(pass, 43);
}

static int
setup(void **state)
{
	return (od = orgdomain_open(NULL)) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	orgdomain_close(od);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_tags),
		cmocka_unit_test(test_record_invalid_optional),
		cmocka_unit_test(test_record_version),
		cmocka_unit_test(test_from_forms),
		cmocka_unit_test(test_from_bad),
		cmocka_unit_test(test_eval_pct),
		cmocka_unit_test(test_eval_errors),
		cmocka_unit_test(test_check_message),
		cmocka_unit_test(test_psl_suite),
		cmocka_unit_test(test_dmarc_suite),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
