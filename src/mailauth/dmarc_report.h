/*
 * dmarc_report — DMARC aggregate reports (RFC 7489 7.2, appendix C),
 * the pure part: one evaluation as a text line (the check process appends
 * these to a per-interval file and reads them back when the interval ends),
 * the aggregation of lines per policy domain and report address, and the
 * XML of one report. The file is writable by the check process's user, so
 * a line read back is untrusted input: drep_line_parse checks everything.
 *
 * A line: tab-separated fields, LF-terminated (the LF is not part of it):
 *   1 IP HEADER_FROM POLICY_DOMAIN ADKIM ASPF P SP PCT DISPOSITION
 *     DKIM_ALIGNED SPF_ALIGNED SPF_DOMAIN SPF_SCOPE SPF_RESULT RUA DKIMS
 * ADKIM/ASPF are r|s; P/SP/DISPOSITION none|quarantine|reject; the
 * alignments pass|fail; SPF_SCOPE mfrom|helo; RUA the report addresses
 * separated by ',' (no address twice); DKIMS "-" or domain/selector/result separated by ','.
 */
#ifndef TERN_DMARC_REPORT_H
#define TERN_DMARC_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "dns/dns.h"
#include "mailauth/dmarc.h"

#define DREP_LINE_MAX	4096	/* longer lines are refused */
#define DREP_DKIM_MAX	4	/* signatures kept per record */
#define DREP_RUA_MAX	4	/* report addresses kept per record */
#define DREP_ADDR_MAX	254
#define DREP_ROWS_MAX	10000	/* distinct rows per aggregation; more are counted as dropped */

struct drep_dkim {
	char domain[DNS_NAME_MAX + 1];
	char selector[64];
	char result[16];	/* none pass fail policy neutral temperror permerror */
};

struct drep_record {
	char              ip[64];
	char              header_from[DNS_NAME_MAX + 1];
	char              policy_domain[DNS_NAME_MAX + 1];
	enum dmarc_align  adkim, aspf;
	enum dmarc_policy p, sp;
	unsigned          pct;
	enum dmarc_policy disposition;	/* what this receiver applied */
	int               dkim_aligned, spf_aligned;	/* 1 pass, 0 fail */
	char              spf_domain[DNS_NAME_MAX + 1];
	int               spf_helo;	/* scope helo, else mfrom */
	char              spf_result[16];	/* none neutral pass fail softfail temperror permerror */
	char              rua[DREP_RUA_MAX][DREP_ADDR_MAX + 1];	/* addresses, mailto: removed */
	size_t            nrua;
	struct drep_dkim  dkim[DREP_DKIM_MAX];
	size_t            ndkim;
};

/* Writes r as one line with its LF and a NUL into out; length, or -1 if it does not fit. */
int drep_line_format(const struct drep_record *r, char *out, size_t outsz);

/* Parses one line p[0..len) (without its LF). 0, or -1 if malformed. */
int drep_line_parse(const char *p, size_t len, struct drep_record *out);

/*
 * The address of a rua URI ("mailto:dmarc@example.com!10m"): 0 and out,
 * or -1 for another scheme, %-escapes, '?' headers or an address that
 * does not fit in DREP_ADDR_MAX or would not survive the line format.
 */
int drep_rua_address(const char *uri, char *out, size_t outsz);

struct drep_row {
	struct drep_record rec;		/* rua unused */
	uint64_t           count;
};

/* One report: a policy domain and one of its report addresses. */
struct drep_group {
	char               policy_domain[DNS_NAME_MAX + 1];
	char               rua[DREP_ADDR_MAX + 1];
	struct drep_record policy;	/* the last record seen: policy_published */
	struct drep_row   *rows;
	size_t             nrows, cap;
};

struct drep_agg {
	struct drep_group *groups;
	size_t             ngroups, cap;
	size_t             nrows;	/* over all groups */
	uint64_t           dropped;	/* records beyond DREP_ROWS_MAX */
};

void drep_agg_init(struct drep_agg *a);
/* Counts r in the group of each of its addresses; -1 on ENOMEM (then counted as dropped). */
int  drep_agg_add(struct drep_agg *a, const struct drep_record *r);
void drep_agg_free(struct drep_agg *a);

struct drep_meta {
	const char *org_name;
	const char *email;
	const char *report_id;
	int64_t     begin, end;	/* seconds since the epoch, UTC */
};

/* Appends the appendix C XML of one report to out; -1 on out's limit. */
int drep_xml(const struct drep_group *g, const struct drep_meta *m, struct buf *out);

#endif
