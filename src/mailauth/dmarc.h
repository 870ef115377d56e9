/*
 * dmarc — DMARC (RFC 7489): record parsing, policy discovery in the DNS,
 * identifier alignment and the policy a receiver applies.
 *
 * The caller runs SPF and DKIM first and passes their outcomes in a
 * struct dmarc_input; dmarc_evaluate() looks the policy up through a
 * struct dns_resolver and fills a struct dmarc_outcome. dmarc_from_domains()
 * extracts the RFC5322.From domains from a message's header block, and
 * dmarc_check_message() does both, handling several From domains (6.6.1).
 * Pure functions except for the DNS queries; no global state.
 */
#ifndef TERN_DMARC_H
#define TERN_DMARC_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"

struct orgdomain;

enum dmarc_policy {
	DMARC_POLICY_NONE = 0,
	DMARC_POLICY_QUARANTINE,
	DMARC_POLICY_REJECT,
};

enum dmarc_align {
	DMARC_ALIGN_RELAXED = 0,	/* same Organizational Domain (3.1.1, 3.1.2) */
	DMARC_ALIGN_STRICT,		/* identical names, case-insensitive */
};

/* fo= failure reporting options (6.3), a bit set. */
#define DMARC_FO_0	0x01
#define DMARC_FO_1	0x02
#define DMARC_FO_D	0x04
#define DMARC_FO_S	0x08

#define DMARC_URI_MAX	8	/* reporting URIs kept per tag; more are dropped */
#define DMARC_URI_LEN	256	/* longer URIs are dropped as invalid */
#define DMARC_TXT_MAX	512	/* record text kept in an outcome, for people */

struct dmarc_uri {
	char     uri[DMARC_URI_LEN];
	uint64_t limit;		/* "!" size limit in bytes, 0 = none */
};

/* A parsed record with every default filled in (6.3). */
struct dmarc_record {
	enum dmarc_policy p, sp;	/* sp is p when absent */
	enum dmarc_align  adkim, aspf;
	int               pct;		/* 0..100 */
	unsigned          fo;		/* DMARC_FO_* */
	int               rf_afrf;	/* rf lists afrf (the default) */
	uint32_t          ri;		/* seconds, default 86400 */
	struct dmarc_uri  rua[DMARC_URI_MAX], ruf[DMARC_URI_MAX];
	size_t            nrua, nruf;
	int               p_fallback;	/* invalid/missing p or sp, acting as p=none (6.6.3 step 6) */
};

enum dmarc_rec_status {
	DMARC_REC_OK = 0,
	DMARC_REC_NOT_DMARC,	/* does not start with v=DMARC1: discard (6.6.3 step 2) */
	DMARC_REC_UNUSABLE,	/* v=DMARC1 but no valid p/sp and no valid rua (step 6) */
};

/*
 * Parses one TXT record (its strings already joined) of len bytes. Unknown
 * tags are ignored; invalid values of optional tags give the default (6.3).
 * why (may be NULL) receives a short explanation when not OK.
 */
enum dmarc_rec_status dmarc_record_parse(const char *txt, size_t len,
	struct dmarc_record *out, char *why, size_t whylen);

enum dmarc_result {
	DMARC_RESULT_NONE = 0,	/* no policy found: no DMARC processing */
	DMARC_RESULT_PASS,
	DMARC_RESULT_FAIL,
	DMARC_RESULT_TEMPERROR,	/* DNS failure while looking for the policy */
	DMARC_RESULT_PERMERROR,	/* the message cannot be evaluated (From field unusable) */
};

/* An SPF or DKIM result as the other modules report it (RFC 8601 2.7). */
enum dmarc_auth {
	DMARC_AUTH_NONE = 0,
	DMARC_AUTH_PASS,
	DMARC_AUTH_FAIL,
	DMARC_AUTH_SOFTFAIL,
	DMARC_AUTH_NEUTRAL,
	DMARC_AUTH_POLICY,
	DMARC_AUTH_TEMPERROR,
	DMARC_AUTH_PERMERROR,
};

struct dmarc_dkim {
	const char     *d;		/* the signature's d= (SDID) */
	enum dmarc_auth result;
};

struct dmarc_input {
	const char              *from_domain;	/* one RFC5322.From domain */
	/* The identity SPF checked: the MAIL FROM domain, or the HELO name
	 * when MAIL FROM was null (3.1.2). NULL when SPF did not run. */
	const char              *spf_domain;
	enum dmarc_auth          spf_result;
	const struct dmarc_dkim *dkim;		/* every signature verified */
	size_t                   ndkim;
	/* pct sampling: the message is subject to the policy when
	 * pct_roll < pct; the caller draws it uniformly from 0..99. */
	unsigned                 pct_roll;
};

struct dmarc_outcome {
	enum dmarc_result   result;
	enum dmarc_policy   policy;		/* p or sp that applies (NONE without a record) */
	enum dmarc_policy   disposition;	/* what to do: policy after pct, NONE on pass */
	int                 sampled_out;	/* pct excluded the message (6.6.4) */
	int                 spf_aligned, dkim_aligned;
	/* bit i: in->dkim[i] passed and is aligned (the first 32 signatures) */
	uint32_t            dkim_aligned_set;
	/* the record came from the Organizational Domain: sp= applies (6.6.3 step 3) */
	int                 at_org;
	char                header_from[DNS_NAME_MAX + 1];	/* lower case */
	char                policy_domain[DNS_NAME_MAX + 1];	/* where the record was */
	char                dkim_domain[DNS_NAME_MAX + 1];	/* the aligned d=, if any */
	struct dmarc_record record;		/* valid when policy_domain[0] */
	char                record_txt[DMARC_TXT_MAX];	/* its text, cut if longer */
	char                reason[256];	/* one line for logs and ternctl */
};

/*
 * Evaluates one From domain: discovery (6.6.3), alignment (3.1), policy
 * (6.6.4). od gives Organizational Domains. Returns 0, or -1 on ENOMEM
 * (out is then a temperror).
 */
int dmarc_evaluate(const struct dns_resolver *r, const struct orgdomain *od,
	const struct dmarc_input *in, struct dmarc_outcome *out);

#define DMARC_FROM_MAX	8	/* distinct From domains kept */

enum dmarc_from_status {
	DMARC_FROM_OK = 0,	/* one From field, >= 1 address, all parsed */
	DMARC_FROM_NO_FIELD,	/* no From field in the header block */
	DMARC_FROM_MULTI_FIELD,	/* several From fields (RFC 5322 3.6 allows one) */
	DMARC_FROM_NO_ADDRESS,	/* empty, or only an empty group */
	DMARC_FROM_SYNTAX,	/* unparsable address list or domain-literal */
	DMARC_FROM_TOO_MANY,	/* more than DMARC_FROM_MAX distinct domains */
};

struct dmarc_from {
	char   domains[DMARC_FROM_MAX][DNS_NAME_MAX + 1];	/* distinct, lower case */
	size_t ndomains;
	size_t naddrs;		/* addresses seen, duplicates included */
};

/*
 * Finds the From field(s) in the header block hdr[0..len) (field lines up to
 * the first empty line or the end; CRLF or LF) and parses the address list
 * (RFC 5322 3.4 with the obsolete forms of 4.4: display names, comments,
 * quoted strings, groups, routes) into its distinct domains.
 */
enum dmarc_from_status dmarc_from_domains(const char *hdr, size_t len,
	struct dmarc_from *out);

/*
 * The whole check on a message: in->from_domain is ignored and taken from
 * the header block. No usable From field -> DMARC_RESULT_PERMERROR (the
 * daemon should reject such a message: RFC 7489 6.6.1, RFC 5322 3.6).
 * Several distinct From domains: each is evaluated (6.6.1) and the worst
 * outcome is reported: a fail (the strictest disposition among the fails),
 * else a temperror, else none, else pass -- so pass only if all pass.
 * Returns 0, -1 on ENOMEM.
 */
int dmarc_check_message(const struct dns_resolver *r, const struct orgdomain *od,
	const char *hdr, size_t len, const struct dmarc_input *in,
	struct dmarc_outcome *out);

const char *dmarc_result_str(enum dmarc_result r);
const char *dmarc_policy_str(enum dmarc_policy p);
/* "pass", "fail", ... -> enum; unknown words give DMARC_AUTH_NONE. */
enum dmarc_auth dmarc_auth_from_str(const char *s);

#endif
