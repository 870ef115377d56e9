/*
 * dkim — DomainKeys Identified Mail (RFC 6376), with RFC 8301 (no rsa-sha1,
 * RSA keys of 1024 bits at least) and RFC 8463 (ed25519-sha256).
 * Verification (dkim.c) and signing (dkim_sign.c) both take the message
 * (CRLF line ends) in chunks of any size: the header section is collected
 * (at most DKIM_HEADER_MAX bytes) and the body is canonicalized and hashed
 * as it streams, never kept. Crypto is OpenSSL 3.
 *
 * Verify:  v = dkim_verify_new(&opts); dkim_verify_feed(v, ...)...;
 *          dkim_verify_finish(v, resolver); then read each result.
 * Split:   where the message streams (no DNS), dkim_verify_feed() then
 *          dkim_verify_bodies() gives one body verdict per signature; where
 *          DNS is, dkim_verify_prepared(header, verdicts) then
 *          dkim_verify_finish(). The header section alone crosses over.
 * Sign:    s = dkim_sign_new(&opts); dkim_sign_feed(s, ...)...;
 *          dkim_sign_finish(s, &out) gives the DKIM-Signature field(s).
 */
#ifndef TERN_DKIM_H
#define TERN_DKIM_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"
#include "dns/dns.h"
#include "mailauth/dkim_canon.h"

#define DKIM_MAX_SIGS 16	/* signatures checked per message; more are ignored */

/* RFC 8601 section 2.7.1 result words. */
enum dkim_result {
	DKIM_NONE = 0,
	DKIM_PASS,
	DKIM_FAIL,		/* body hash or signature mismatch */
	DKIM_NEUTRAL,
	DKIM_POLICY,
	DKIM_TEMPERROR,		/* key lookup failed for now */
	DKIM_PERMERROR,		/* unusable signature or key */
};

const char *dkim_result_str(enum dkim_result r);

struct dkim_verify_opts {
	time_t   now;		/* for x=; 0: time(NULL) */
	unsigned min_rsa_bits;	/* 0: 1024 (RFC 8301) */
	int      allow_sha1;	/* accept rsa-sha1 (RFC 8301 forbids; old test vectors only) */
};

struct dkim_sig_result {
	enum dkim_result result;
	char     domain[254];		/* d= */
	char     selector[64];		/* s= */
	char     algorithm[32];		/* a= */
	char     header_b[17];		/* the first 16 characters of b= (RFC 6008) */
	char     identity[320];		/* i= decoded, or "@" d= */
	char     reason[128];		/* why, for people: "body hash mismatch", ... */
	int      testing;		/* the key has t=y */
	unsigned key_bits;
};

struct dkim_verify;

struct dkim_verify *dkim_verify_new(const struct dkim_verify_opts *opts);
/* The next chunk of the message; -1 if the header section is too large. */
int    dkim_verify_feed(struct dkim_verify *v, const char *data, size_t len);
/* Ends the message, fetches keys and checks every signature; -1 on ENOMEM or overflow. */
int    dkim_verify_finish(struct dkim_verify *v, const struct dns_resolver *dns);
/* Signatures found (at most DKIM_MAX_SIGS), in header order, and their results. */
size_t dkim_verify_count(const struct dkim_verify *v);
const struct dkim_sig_result *dkim_verify_result(const struct dkim_verify *v, size_t i);
void   dkim_verify_free(struct dkim_verify *v);

/* A signature's body hash, decided where the body streamed by. */
enum dkim_bodyv {
	DKIM_BODY_UNUSED = 0,	/* not computed: the signature was already refused */
	DKIM_BODY_MATCH,
	DKIM_BODY_MISMATCH,
	DKIM_BODY_SHORT,	/* the body is shorter than l= */
};

/*
 * Ends the message without DNS and writes one enum dkim_bodyv per signature
 * (header order, at most max) to out; returns how many, or -1 (header too
 * large, ENOMEM). dkim_verify_finish() may still follow.
 */
int    dkim_verify_bodies(struct dkim_verify *v, uint8_t *out, size_t max);
/*
 * A verifier over a header section hdr[0..len) (the separator line may be
 * included) whose body verdicts come from dkim_verify_bodies() elsewhere:
 * body[i] for the i-th signature; a missing or unknown one gives temperror.
 * Go on with dkim_verify_finish(). NULL on ENOMEM or a header too large.
 */
struct dkim_verify *dkim_verify_prepared(const struct dkim_verify_opts *opts,
    const char *hdr, size_t len, const uint8_t *body, size_t n);

/*
 * Fetches the key selector._domainkey.domain and checks an rsa-sha256
 * signature sig over the SHA-256 digest dg (RFC 6376 3.7): the key rules
 * (RFC 6376 3.6.1, RFC 8301 sizes) of the verifier, for users of DKIM keys
 * outside a DKIM-Signature (ARC, RFC 8617 4.1.2/4.1.3). The reason for a
 * result other than pass goes to why.
 */
enum dkim_result dkim_check_digest(const struct dns_resolver *dns,
    const struct dkim_verify_opts *opts, const char *domain, const char *selector,
    const unsigned char *dg, size_t dglen, const unsigned char *sig, size_t siglen,
    char *why, size_t whylen);

/* ---- signing (dkim_sign.c) ---- */

enum dkim_key_type {
	DKIM_KEY_RSA,
	DKIM_KEY_ED25519,
};

struct dkim_key;

/*
 * Loads a private key: PEM (RSA or Ed25519, PKCS#1 or PKCS#8) or a file
 * holding the base64 of a raw 32-byte Ed25519 seed (RFC 8463 A.1 style).
 * NULL with a reason in err on failure; RSA under 1024 bits is refused.
 */
struct dkim_key *dkim_key_load(const char *path, char *err, size_t errlen);
/* The same from bytes in memory. */
struct dkim_key *dkim_key_parse(const char *data, size_t len, char *err, size_t errlen);
enum dkim_key_type dkim_key_type(const struct dkim_key *k);
/* Appends the key's DNS TXT record text ("v=DKIM1; k=...; p=..."). */
int    dkim_key_dns_record(const struct dkim_key *k, struct buf *txt);
void   dkim_key_free(struct dkim_key *k);
/* Signs the SHA-256 digest dg with k (as for b=) and appends the base64. */
int    dkim_key_sign_digest(const struct dkim_key *k, const unsigned char *dg, size_t dglen,
    struct buf *b64);

struct dkim_signer {
	struct dkim_key *key;		/* not owned */
	const char      *selector;	/* s= */
};

struct dkim_sign_opts {
	const char      *domain;	/* d= */
	struct dkim_signer keys[2];	/* one signature each (dual signing: Ed25519 + RSA) */
	size_t           nkeys;
	enum dkim_canon  hcanon, bcanon;	/* zero: relaxed/relaxed */
	/* Header names to sign, NULL-terminated; NULL: a default list. Each is
	 * signed once per occurrence; From, Subject, Date, To, Cc and
	 * Message-ID once more (over-signing: adding one breaks the signature).
	 * From is signed even if the list omits it. */
	const char *const *headers;
	time_t           timestamp;	/* t=; 0: time(NULL) */
	long             expire;	/* x= t + expire seconds; 0: no x= */
	const char      *identity;	/* i=; NULL: none */
	int              body_length;	/* add l= (not recommended: allows appended content) */
};

struct dkim_sign;

/* NULL on ENOMEM or bad options (no key, no domain or selector). Strings are
 * copied; keys and the headers list must outlive the signer. */
struct dkim_sign *dkim_sign_new(const struct dkim_sign_opts *o);
int    dkim_sign_feed(struct dkim_sign *s, const char *data, size_t len);
/*
 * Appends to out the DKIM-Signature field(s), folded and CRLF-terminated,
 * to prepend to the message. -1 with dkim_sign_error() set on failure
 * (no From field: RFC 6376 5.4 requires it signed; header too large; crypto).
 */
int    dkim_sign_finish(struct dkim_sign *s, struct buf *out);
const char *dkim_sign_error(const struct dkim_sign *s);
void   dkim_sign_free(struct dkim_sign *s);

/*
 * Generates a key (`ternctl dkim keygen`): bits for RSA (0: 2048; 1024 to
 * 8192), ignored for Ed25519. Appends the PKCS#8 PEM private key to pem and
 * the TXT record text to txt (over 255 octets it must be published as
 * several strings). -1 with a reason in err.
 */
int    dkim_keygen(enum dkim_key_type type, unsigned bits, struct buf *pem, struct buf *txt,
    char *err, size_t errlen);

#endif
