/*
 * authcheck — every inbound authentication check of one message: SPF for
 * MAIL FROM (or postmaster@HELO for <>) and HELO (RFC 7208), each DKIM
 * signature (RFC 6376; body verdicts computed earlier, see dkim.h),
 * DMARC for the From domain (RFC 7489), the client's reverse DNS (iprev),
 * the ARC chain (RFC 8617; reported only when the message carries one),
 * and the one Authentication-Results field that reports them (RFC 8601). The check process runs it for the
 * smtp workers; anything else holding a resolver (ternctl) may too.
 * authcheck_verdict() turns the results and a policy into what to do.
 */
#ifndef TERN_AUTHCHECK_H
#define TERN_AUTHCHECK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"
#include "dns/dns.h"
#include "mailauth/arc.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "mailauth/iprev.h"
#include "mailauth/spf.h"

struct orgdomain;

struct authcheck_request {
	const char    *ip;		/* client address text */
	const char    *helo;		/* HELO/EHLO argument */
	const char    *mailfrom;	/* MAIL FROM address, "" for <> */
	const char    *hdr;		/* header section as received; NULL: no DKIM, no DMARC */
	size_t         hdrlen;
	const uint8_t *body;		/* enum dkim_bodyv per signature (dkim_verify_bodies) */
	size_t         nbody;
	const unsigned char *arc;	/* ARC_BODY_HASHES of the body (arc_body_finish); NULL: no ARC check */
	const char    *authserv_id;	/* RFC 8601 2.5 */
	const char    *receiver;	/* our host name (SPF %{r}) */
	unsigned       pct_roll;	/* 0..99, DMARC pct= sampling */
	time_t         now;		/* 0: time(NULL) */
};

struct authcheck_result {
	struct spf_outcome     spf;	/* the MAIL FROM identity */
	struct spf_outcome     helo;	/* the HELO identity (not run for <>: same as spf) */
	int                    helo_run;
	struct dkim_sig_result dkim[DKIM_MAX_SIGS];
	size_t                 ndkim;
	int                    dmarc_run;	/* a header section was given */
	/* the SPF identity DMARC aligns (3.1.2): MAIL FROM's domain, or HELO for <> */
	char                   dmarc_spf_domain[DNS_NAME_MAX + 1];
	struct dmarc_outcome   dmarc;
	struct iprev_outcome   iprev;	/* the client address (RFC 8601 3) */
	struct arc_result      arc;	/* the ARC chain (RFC 8617 5.2); cv NONE: none or not checked */
	struct buf             header;	/* "Authentication-Results: ...\r\n" */
};

/* Runs every check; 0, or -1 on ENOMEM (out is then freed). */
int  authcheck_run(const struct dns_resolver *dns, const struct orgdomain *od,
	const struct authcheck_request *req, struct authcheck_result *out);
void authcheck_result_free(struct authcheck_result *r);

/*
 * The field for a message that could not be checked (check process gone,
 * timeout): spf and dmarc temperror, and dkim temperror if it carried
 * signatures. Appends to out; -1 on out's limit.
 */
int  authcheck_unavailable(struct buf *out, const char *authserv_id, const char *mailfrom,
	const char *helo, int signed_msg, const char *why);

enum authcheck_action { AC_RECORD = 0, AC_REJECT, AC_QUARANTINE };

struct authcheck_policy {
	enum authcheck_action spf_fail;		/* RECORD or REJECT */
	enum authcheck_action dmarc_reject;	/* what p=reject does: any of the three */
	enum authcheck_action dmarc_quarantine;	/* what p=quarantine does: any of the three */
};

enum authcheck_verdict {
	AC_ACCEPT = 0,
	AC_ACCEPT_QUARANTINE,	/* accept, mark and file as junk */
	AC_REFUSE_SPF,		/* 550 5.7.23 (RFC 7372) */
	AC_REFUSE_DMARC,	/* 550 5.7.1 (RFC 7489 6.7) */
};

/* Temporary errors never refuse: a result that is not known does not count. */
enum authcheck_verdict authcheck_verdict(const struct authcheck_policy *p,
	enum spf_result spf, enum dmarc_result dmarc, enum dmarc_policy disposition);

#endif
