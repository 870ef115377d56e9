/*
 * authres — the Authentication-Results header field (RFC 8601).
 * authres_build() writes tern's one field for a message from a list of
 * method results (filled by the authres_spf/dkim/dmarc/iprev helpers or by
 * hand). authres_parse() reads an existing field's value, so that the daemon
 * can remove fields that claim our authserv-id (RFC 8601 5): use
 * authres_claims_id() for that decision.
 */
#ifndef TERN_AUTHRES_H
#define TERN_AUTHRES_H

#include <stddef.h>

#include "common/buf.h"

#define AUTHRES_PROPS_MAX	4
#define AUTHRES_ID_MAX		255	/* authserv-id bytes (unquoted) */
#define AUTHRES_RESINFO_MAX	16	/* resinfos stored by the parser */
#define AUTHRES_COMMENT_MAX	200	/* longer comments are cut */
#define AUTHRES_VALUE_MAX	900	/* longer values are refused (998 line limit) */
#define AUTHRES_BPREFIX		8	/* header.b characters kept (RFC 6008 3) */

struct authres_prop {
	const char *ptype;	/* "smtp", "header", "policy", ... */
	const char *property;	/* "mailfrom", "d", ... */
	const char *value;
};

struct authres_entry {
	const char         *method;	/* Keyword: "spf", "dkim", "dmarc", "iprev", "arc" */
	const char         *result;	/* Keyword: "pass", "fail", ... */
	const char         *reason;	/* reason= value, or NULL */
	const char         *comment;	/* text of a (comment) after the result, or NULL */
	struct authres_prop props[AUTHRES_PROPS_MAX];
	size_t              nprops;
	char                store[AUTHRES_BPREFIX + 1];	/* header.b prefix */
	char                cstore[64];			/* dmarc comment */
};

/*
 * Helpers: each fills *e; the strings passed must outlive e (NULL or ""
 * leaves a property out). spf: smtp.mailfrom (the MAIL FROM address or
 * domain) and/or smtp.helo. dkim: header.d, header.s and the first 8
 * characters of b= (whitespace removed). dmarc: header.from,
 * policy.dmarc = the disposition applied (when not NULL) and a comment
 * "p=... sp=... dis=..." with the published policies. iprev: policy.iprev
 * = the client address, the name found in a comment. arc (RFC 8617 6):
 * a comment "i=N" with the chain's instances (n > 0), smtp.remote-ip,
 * and header.oldest-pass when oldest_pass >= 0 (0: every AMS verified).
 */
void authres_spf(struct authres_entry *e, const char *result, const char *mailfrom,
	const char *helo);
void authres_dkim(struct authres_entry *e, const char *result, const char *d,
	const char *s, const char *b);
void authres_dmarc(struct authres_entry *e, const char *result, const char *header_from,
	const char *p, const char *sp, const char *disposition);
void authres_iprev(struct authres_entry *e, const char *result, const char *ip,
	const char *name);
void authres_arc(struct authres_entry *e, const char *result, const char *ip, unsigned n,
	int oldest_pass);

/*
 * Appends the whole field "Authentication-Results: ID; ...\r\n" to out,
 * one resinfo per line, folded before ~78 columns, values quoted when they
 * are not an RFC 2045 token or [local-part "@"] domain (RFC 8601 2.2);
 * control characters in values and comments become '?'. n == 0 writes
 * "ID; none". -1 (out unchanged) on a method or result that is not a
 * Keyword, a value over AUTHRES_VALUE_MAX, or out's limit.
 */
int  authres_build(struct buf *out, const char *authserv_id,
	const struct authres_entry *e, size_t n);

struct authres_span {
	size_t off, len;	/* bytes of the parsed value */
};

struct authres_resinfo {
	struct authres_span method, result;
	int                 has_reason;
	size_t              nprops;
};

struct authres_parsed {
	int                    has_id;		/* authserv_id is valid */
	char                   authserv_id[AUTHRES_ID_MAX + 1];	/* quotes removed */
	int                    version;		/* authres-version, -1 if absent */
	int                    none;		/* "; none" */
	struct authres_resinfo res[AUTHRES_RESINFO_MAX];
	size_t                 nres;		/* all resinfos; the first MAX stored */
};

/*
 * Parses a field value (the bytes after "Authentication-Results:", folding
 * CRLFs included) per RFC 8601 2.2. 0 if all of it is valid, else -1; the
 * authserv-id is filled (has_id) as soon as it is read, even when a later
 * part is invalid.
 */
int  authres_parse(const char *v, size_t len, struct authres_parsed *out);

/*
 * 1 if the value's authserv-id is id (case-insensitive), whatever follows:
 * a forger's malformed field claiming our id must go too (RFC 8601 5).
 */
int  authres_claims_id(const char *v, size_t len, const char *id);

#endif
