/*
 * spf — Sender Policy Framework, RFC 7208: check_host() with all its
 * limits, over the resolver interface of src/dns/dns.h. It neither logs
 * nor keeps state between calls (reentrant); its only allocations are the
 * resolver's answers, at most one per nesting level alive at a time.
 * Callers: spf_check_mailfrom() at MAIL FROM, spf_check_helo() for the
 * HELO identity; spf_check_host() is the RFC's function itself.
 * The record grammar and macro expansion are in spf_parse.h.
 */
#ifndef TERN_SPF_H
#define TERN_SPF_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"
#include "mailauth/spf_parse.h"

#define SPF_LOOKUP_LIMIT	10	/* DNS-querying terms per check (4.6.4) */
#define SPF_VOID_LIMIT		2	/* lookups answering NXDOMAIN/no data (4.6.4) */
#define SPF_MX_LIMIT		10	/* MX names per "mx" (4.6.4) */
#define SPF_PTR_LIMIT		10	/* PTR names per "ptr" and %{p} (4.6.4) */

struct spf_request {
	int         family;		/* AF_INET or AF_INET6 (v4-mapped is IPv4) */
	uint8_t     ip[16];		/* the client address, network order */
	const char *helo;		/* HELO/EHLO argument */
	const char *sender;		/* MAIL FROM address, "" for <> */
	const char *receiver;		/* our host name for %{r}; NULL: "unknown" */
	const char *default_exp;	/* explanation macro-string for a fail
					 * without exp=; NULL: a built-in one */
	long long   now;		/* %{t}; 0: the current time */
};

struct spf_outcome {
	enum spf_result result;
	char     domain[256];		/* the domain checked */
	char     record[512];		/* domain's SPF record (non-printables as '?'), "" if none */
	char     mechanism[128];	/* what decided: "ip4:192.0.2.0/24", "default";
					 * an include's term when the include matched */
	char     explanation[512];	/* for fail: exp= text, macro-expanded */
	char     problem[256];		/* why temperror/permerror/none */
	unsigned dns_lookups;		/* DNS-querying terms evaluated */
	unsigned void_lookups;
};

/* Parses an IPv4 or IPv6 address text into req->family and req->ip;
 * -1 if it is neither. */
int spf_request_set_ip(struct spf_request *req, const char *text);

/* check_host(<ip>, <domain>, <sender>) of RFC 7208 section 4, with <ip>,
 * HELO and the rest from req. Fills *out and returns out->result. */
enum spf_result spf_check_host(const struct dns_resolver *dns, const struct spf_request *req,
    const char *domain, const char *sender, struct spf_outcome *out);

/* The MAIL FROM identity (2.4): the domain of req->sender, or for the
 * null sender postmaster@<helo>; a missing local-part is "postmaster". */
enum spf_result spf_check_mailfrom(const struct dns_resolver *dns, const struct spf_request *req,
    struct spf_outcome *out);

/* The HELO identity (2.3): postmaster@<helo>. */
enum spf_result spf_check_helo(const struct dns_resolver *dns, const struct spf_request *req,
    struct spf_outcome *out);

/* "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror" */
const char *spf_result_str(enum spf_result r);

#endif
