/*
 * Fuzz harness for SPF: the input is used three ways. As a record: the
 * whole-record check and the term walk must agree and stay inside the
 * input. As a macro-string: expansion for a domain and for an explanation
 * with a fixed context, then the query-name step. As the TXT record of the
 * domain checked by check_host() over a tiny fixed zone: the result must
 * be one of the seven, the outcome strings terminated, the lookups bounded.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "mailauth/spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char zone_text[] =
    "fuzz.test A 192.0.2.1\n"
    "fuzz.test MX 10 a.fuzz.test\n"
    "a.fuzz.test A 192.0.2.1\n"
    "a.fuzz.test AAAA 2001:db8::1\n"
    "inc.fuzz.test TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n"
    "loop.fuzz.test TXT \"v=spf1 include:loop.fuzz.test\"\n"
    "red.fuzz.test TXT \"v=spf1 redirect=%{d}\"\n"
    "exp.fuzz.test TXT \"%{l} %{c} %{p} %{r} %{t} %{ir}.%{v}\"\n"
    "1.2.0.192.in-addr.arpa PTR a.fuzz.test\n"
    "slow.fuzz.test TIMEOUT\n";

static void
fuzz_record(const char *s, size_t n)
{
	struct spf_term t, red, exp;
	struct spf_record_iter it;
	char err[128];
	int r, ok = spf_record_check(s, n, &red, &exp, err, sizeof(err)) == 0;

	if (spf_record_begin(&it, s, n) == -1) {
		if (ok)
			abort();
		return;
	}
	while ((r = spf_record_next(&it, &t, err, sizeof(err))) == 1)
		if (t.text < s || t.text + t.textlen > s + n ||
		    (t.spec && (t.spec < s || t.spec + t.speclen > s + n)))
			abort();
	if (ok && r != 0)
		abort();
}

static void
fuzz_macro(const char *s, size_t n)
{
	struct spf_macro_ctx mc;
	char out[600], err[128];
	size_t len;
	int r;

	memset(&mc, 0, sizeof(mc));
	mc.sender = "strong-bad@email.example.com";
	mc.local = mc.sender;
	mc.local_len = 10;
	mc.sender_domain = mc.sender + 11;
	mc.domain = "email.example.com";
	mc.family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::cb01", mc.ip);
	mc.helo = "mx.example.org";
	mc.now = 1;
	r = spf_macro_expand(s, n, SPF_MACRO_DOMAIN, &mc, out, sizeof(out), &len, err, sizeof(err));
	if (r != -1 && (len >= sizeof(out) || strlen(out) != len))
		abort();
	if ((r == -1) != (spf_macro_check(s, n, SPF_MACRO_DOMAIN, err, sizeof(err)) == -1))
		abort();
	if (r == 0 && spf_domain_finish(out, len) > 253)
		abort();
	spf_domain_spec_check(s, n, err, sizeof(err));
	mc.family = AF_INET;
	r = spf_macro_expand(s, n, SPF_MACRO_EXP, &mc, out, 64, &len, err, sizeof(err));
	if (r != -1 && (len >= 64 || strlen(out) != len))
		abort();
}

static void
fuzz_check_host(const char *s, size_t n)
{
	struct dns_static *z = dns_static_new();
	struct dns_resolver res;
	struct spf_request req;
	struct spf_outcome out;
	struct dns_rr rr;
	char err[128];

	if (z == NULL || dns_static_load(z, zone_text, sizeof(zone_text) - 1, err, sizeof(err)) == -1)
		abort();
	memset(&rr, 0, sizeof(rr));
	rr.type = DNS_T_TXT;
	rr.data = (char *)s;
	rr.len = n;
	if (dns_static_add_rr(z, "fuzz.test", &rr) == -1)
		abort();
	res = dns_static_resolver(z);
	memset(&req, 0, sizeof(req));
	spf_request_set_ip(&req, "192.0.2.1");
	req.helo = "a.fuzz.test";
	req.sender = "user@fuzz.test";
	req.now = 1;
	spf_check_mailfrom(&res, &req, &out);
	if (out.result > SPF_PERMERROR || strlen(out.explanation) >= sizeof(out.explanation) ||
	    strlen(out.mechanism) >= sizeof(out.mechanism) || out.dns_lookups > SPF_LOOKUP_LIMIT + 1 ||
	    dns_static_queries(z) > 400)
		abort();
	dns_static_free(z);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy;

	/* An exact-size copy, so ASan catches a read past size. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	if (size)
		memcpy(copy, data, size);
	fuzz_record(copy, size);
	fuzz_macro(copy, size);
	fuzz_check_host(copy, size);
	free(copy);
	return 0;
}
