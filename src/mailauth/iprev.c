/* iprev — forward-confirmed reverse DNS of the client (see iprev.h). */
#include "mailauth/iprev.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

const char *
iprev_result_str(enum iprev_result r)
{
	switch (r) {
	case IPREV_PASS: return "pass";
	case IPREV_FAIL: return "fail";
	case IPREV_TEMPERROR: return "temperror";
	case IPREV_PERMERROR: return "permerror";
	}
	return "permerror";
}

/* 1 if name's A (AAAA) records hold addr, 0 if not, -1 on a temporary failure, -2 on ENOMEM. */
static int
leads_back(const struct dns_resolver *dns, const char *name, int v6, const uint8_t *addr)
{
	enum dns_type t = v6 ? DNS_T_AAAA : DNS_T_A;
	struct dns_answer a;
	size_t i;
	int r = 0;

	if (dns_query(dns, name, t, &a) == -1)
		return -2;
	if (a.status == DNS_TEMPFAIL)
		r = -1;
	for (i = 0; a.status == DNS_OK && i < a.n && r == 0; i++)
		if (a.rrs[i].type == t && memcmp(a.rrs[i].addr, addr, v6 ? 16 : 4) == 0)
			r = 1;
	dns_answer_free(&a);
	return r;
}

int
iprev_check(const struct dns_resolver *dns, const char *ip, struct iprev_outcome *out)
{
	char rev[DNS_REVERSE_MAX];
	uint8_t addr[16];
	struct dns_answer a;
	size_t i, tried = 0;
	int v6 = 0, temp = 0, r;

	memset(out, 0, sizeof(*out));
	out->result = IPREV_PERMERROR;
	if (inet_pton(AF_INET, ip, addr) != 1) {
		if (inet_pton(AF_INET6, ip, addr) != 1)
			return 0;
		v6 = 1;
	}
	dns_reverse_name(v6, addr, rev, sizeof(rev));
	if (dns_query(dns, rev, DNS_T_PTR, &a) == -1)
		return -1;
	if (a.status == DNS_TEMPFAIL)
		out->result = IPREV_TEMPERROR;
	for (i = 0; a.status == DNS_OK && i < a.n && tried < IPREV_NAMES_MAX; i++) {
		const char *name = a.rrs[i].data;

		if (a.rrs[i].type != DNS_T_PTR || name == NULL || name[0] == '\0')
			continue;
		tried++;
		if ((r = leads_back(dns, name, v6, addr)) == -2) {
			dns_answer_free(&a);
			return -1;
		}
		if (r == 1) {
			out->result = IPREV_PASS;
			snprintf(out->name, sizeof(out->name), "%s", name);
			break;
		}
		temp |= r == -1;
	}
	if (tried > 0 && out->result != IPREV_PASS)
		out->result = temp ? IPREV_TEMPERROR : IPREV_FAIL;
	dns_answer_free(&a);
	return 0;
}
