/*
 * iprev — the "iprev" authentication method (RFC 8601 3, results 2.7.3):
 * the client address's PTR names, each looked up forward; the address
 * among a name's A (or AAAA) records is a pass. Reported in
 * Authentication-Results as iprev=RESULT (name) policy.iprev=ADDRESS.
 */
#ifndef TERN_IPREV_H
#define TERN_IPREV_H

#include "dns/dns.h"

#define IPREV_NAMES_MAX 10	/* PTR names looked up forward, as SPF's limit (RFC 7208 4.6.4) */

enum iprev_result {
	IPREV_PASS = 0,		/* a PTR name's forward lookup holds the address */
	IPREV_FAIL,		/* PTR names, none of them leads back */
	IPREV_TEMPERROR,	/* a lookup failed for now and nothing passed */
	IPREV_PERMERROR,	/* no PTR data (NXDOMAIN, none of that type), or no address */
};

struct iprev_outcome {
	enum iprev_result result;
	char              name[DNS_NAME_MAX + 1];	/* pass: the name that led back; else "" */
};

const char *iprev_result_str(enum iprev_result r);

/* Checks the address text ip (IPv4 or IPv6). 0, or -1 on ENOMEM. */
int iprev_check(const struct dns_resolver *dns, const char *ip, struct iprev_outcome *out);

#endif
