/*
 * mx — where mail for a domain goes, per RFC 5321 section 5.1: the MX
 * hosts in preference order (random among equal preference) with their
 * IPv6 and IPv4 addresses, the implicit MX, null MX (RFC 7505), address
 * literals and mail loops. Works over any dns_resolver (synchronous).
 *
 *     struct mx_route rt;
 *     if (mx_resolve(&r, "example.com", self, NULL, &rt) == 0 && rt.status == MX_OK)
 *             for (i = 0; i < rt.n; i++) ... rt.hosts[i].addrs[j] ...
 */
#ifndef TERN_DNS_MX_H
#define TERN_DNS_MX_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"

#define MX_HOSTS_MAX	16	/* hosts whose addresses are looked up */
#define MX_ADDRS_MAX	8	/* addresses kept per host */

enum mx_status {
	MX_OK = 0,	/* hosts[0..n) to try in order */
	MX_TEMPFAIL,	/* DNS trouble: defer, 451 4.4.3 */
	MX_NULLMX,	/* RFC 7505: the domain takes no mail, 556 5.1.10 */
	MX_NOHOST,	/* no such domain, or no host with an address: 550 5.4.4 */
	MX_LOOP,	/* mail for the domain loops back to myself: 554 5.4.6 */
	MX_BADDOMAIN,	/* not a domain or address literal: 550 5.1.2 */
};

enum mx_family {
	MX_V6_FIRST = 0,	/* RFC 6724 default policy prefers IPv6 */
	MX_V4_FIRST,
	MX_V6_ONLY,
	MX_V4_ONLY,
};

struct mx_options {
	enum mx_family family;
	/* Random source for the order among equal preferences (RFC 5321
	 * 5.1); NULL: arc4random(3). */
	uint32_t (*random)(void *arg);
	void      *random_arg;
};

struct mx_addr {
	int     family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];	/* 4 or 16 bytes, network order */
};

struct mx_host {
	char           name[DNS_NAME_MAX + 1];	/* lower case, no trailing dot */
	uint16_t       pref;
	struct mx_addr addrs[MX_ADDRS_MAX];
	size_t         naddrs;
};

struct mx_route {
	enum mx_status status;
	int            implicit;	/* no MX records: the domain's own addresses */
	struct mx_host hosts[MX_HOSTS_MAX];
	size_t         n;
	size_t         tempfails;	/* host address lookups that failed temporarily */
	char           why[256];	/* for logs and DSNs when status != MX_OK */
};

/*
 * Fills *out for mail to domain (a name, "[192.0.2.1]" or "[IPv6:...]").
 * self_names (NULL-terminated, may be NULL) are our own host names: a
 * host among the MX hosts drops itself and every host of equal or worse
 * preference. opt may be NULL (IPv6 first, arc4random(3)). Hosts without an
 * address are left out. Returns 0 (out->status tells), -1 on ENOMEM.
 */
int mx_resolve(const struct dns_resolver *r, const char *domain,
    const char *const *self_names, const struct mx_options *opt,
    struct mx_route *out);

/*
 * Only the addresses of one host (a route's "[name]", RFC 5321 5.1: no MX
 * lookup), as out->hosts[0]; MX_NOHOST if it has none. -1 on ENOMEM.
 */
int mx_resolve_host(const struct dns_resolver *r, const char *name,
    const struct mx_options *opt, struct mx_route *out);

const char *mx_status_str(enum mx_status s);
/* The SMTP reply code and enhanced status (RFC 3463) for a DSN. */
int         mx_status_code(enum mx_status s);
const char *mx_status_enhanced(enum mx_status s);

#endif
