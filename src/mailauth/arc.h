/*
 * arc — Authenticated Received Chain (RFC 8617): validating the chain of
 * ARC sets (ARC-Authentication-Results, ARC-Message-Signature, ARC-Seal)
 * a message carries (section 5.2), and sealing it with the next set
 * (section 5.1). Keys, tag-lists, canonicalization and rsa-sha256 are
 * DKIM's (dkim.h, dkim_canon.h, taglist.h). Both work on the whole message
 * in memory (CRLF line ends): msg[0..len), header and body.
 */
#ifndef TERN_ARC_H
#define TERN_ARC_H

#include <stddef.h>
#include <time.h>

#include "common/buf.h"
#include "dns/dns.h"
#include "mailauth/dkim.h"

#define ARC_MAX_INSTANCE 50	/* RFC 8617 4.2.1 */

/* RFC 8617 4.4 chain validation status. */
enum arc_cv {
	ARC_NONE = 0,
	ARC_PASS,
	ARC_FAIL,
};

const char *arc_cv_str(enum arc_cv cv);

struct arc_result {
	enum arc_cv cv;
	unsigned    n;		/* instances found (the newest i=), 0: none */
	unsigned    oldest_pass;	/* RFC 8617 5.2 step 5: the lowest i whose AMS and all newer ones verify; 0: not pass */
	int         last_cv_fail;	/* the newest ARC-Seal says cv=fail */
	char        domain[254];	/* d= of the newest ARC-Seal, if parsed */
	char        reason[128];	/* why, for people */
};

struct arc_verify_opts {
	unsigned min_rsa_bits;	/* 0: 1024 (RFC 8301) */
};

/*
 * Validates the ARC chain of msg[0..len) (RFC 8617 5.2). Fills *r; returns
 * 0, or -1 on ENOMEM or a header section too large (r says fail then).
 */
int  arc_verify(const char *msg, size_t len, const struct dns_resolver *dns,
    const struct arc_verify_opts *o, struct arc_result *r);

/*
 * The canonical body's SHA-256 under both of ARC's body canonicalizations
 * (RFC 6376 3.4.3 simple, 3.4.4 relaxed; ARC has no l=), computed while the
 * body streams, for arc_verify_header(). Bytes in any chunking.
 */
#define ARC_BODY_HASHES 64	/* simple's 32 bytes, then relaxed's */

struct arc_body;

struct arc_body *arc_body_new(void);
void arc_body_feed(struct arc_body *b, const char *p, size_t n);
/* Writes both hashes to out; 0, or -1 (OpenSSL failed). b is still to be freed. */
int  arc_body_finish(struct arc_body *b, unsigned char out[ARC_BODY_HASHES]);
void arc_body_free(struct arc_body *b);

/*
 * arc_verify() for a message whose body is not at hand: hdr[0..len) is its
 * header section (the blank line may follow; anything after it is ignored)
 * and bh what arc_body_finish() gave for its body. Same results.
 */
int  arc_verify_header(const char *hdr, size_t len, const unsigned char bh[ARC_BODY_HASHES],
    const struct dns_resolver *dns, const struct arc_verify_opts *o, struct arc_result *r);

struct arc_seal_opts {
	const char       *domain;	/* d= */
	const char       *selector;	/* s= */
	struct dkim_key  *key;		/* RSA (rsa-sha256 is ARC's only algorithm) */
	time_t            timestamp;	/* t=; 0: time(NULL) */
	const char       *authserv_id;	/* the AAR's authserv-id */
	const char       *results;	/* the AAR's results after the authserv-id ("spf=pass ...") */
	const char *const *headers;	/* names for the AMS h=, NULL-terminated */
	/* The chain's cv as validated on reception (the arc= this host wrote
	 * in its Authentication-Results, RFC 8617 5.1.2 step 2); NULL: the
	 * chain is validated here. */
	const enum arc_cv *cv;
	unsigned          min_rsa_bits;	/* for validating the chain here; 0: 1024 */
};

/*
 * Seals msg[0..len) (RFC 8617 5.1): takes or finds the chain's cv, then appends to
 * out the ARC-Seal, ARC-Message-Signature and ARC-Authentication-Results
 * of instance N+1, folded, CRLF-terminated, to prepend to the message.
 * Returns 0 if sealed, 1 if not sealed (the newest seal says cv=fail, the
 * chain is broken beyond numbering, or is full: err says which), -1 on
 * error (err says why).
 */
int  arc_seal(const struct arc_seal_opts *o, const char *msg, size_t len,
    const struct dns_resolver *dns, struct buf *out, char *err, size_t errlen);

#endif
