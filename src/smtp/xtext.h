/*
 * xtext — the DSN extension's parameters (RFC 3461): the xtext encoding
 * (section 4), NOTIFY (4.1), ORCPT (4.2), RET (4.3) and ENVID (4.4).
 * Pure functions over (bytes, length): no allocation, no globals, no
 * reliance on NUL termination of the input. The session decides what to
 * reply; these only decide syntax.
 */
#ifndef TERN_XTEXT_H
#define TERN_XTEXT_H

#include <stddef.h>
#include <sys/types.h>

/* NOTIFY as a bit set; 0 means "not given" (RFC 3461 4.1: FAILURE,DELAY). */
#define DSN_NOTIFY_NEVER	1u
#define DSN_NOTIFY_SUCCESS	2u
#define DSN_NOTIFY_FAILURE	4u
#define DSN_NOTIFY_DELAY	8u

#define DSN_ENVID_MAX	100	/* RFC 3461 4.4: the encoded value */
#define DSN_ORCPT_MAX	500	/* RFC 3461 4.2: the whole encoded value */

enum dsn_ret { DSN_RET_UNSPEC = 0, DSN_RET_FULL, DSN_RET_HDRS };

/*
 * Decodes xtext in[0..len) into out (outsz bytes, NUL included) and
 * returns the decoded length, or -1: a character outside 33..126, a '='
 * (never legal in xtext), a '+' not followed by two upper-case hex digits,
 * "+00" (a NUL no C string can hold), or out too small.
 */
ssize_t	xtext_decode(const char *in, size_t len, char *out, size_t outsz);
/*
 * Encodes in[0..len) as xtext into out (NUL-terminated): octets 33..126
 * other than '+' and '=' as they are, every other octet as "+XX".
 * Returns the encoded length, or -1 if out is too small.
 */
ssize_t	xtext_encode(const char *in, size_t len, char *out, size_t outsz);

/*
 * NOTIFY=NEVER, or a comma list of SUCCESS, FAILURE, DELAY (any case,
 * each at most once). Sets *bits (DSN_NOTIFY_*); 0 or -1.
 */
int	dsn_parse_notify(const char *val, size_t len, unsigned *bits);
/* 1 if bits is a value dsn_parse_notify can give, or 0 (not given). */
int	dsn_notify_valid(unsigned bits);
/* RET=FULL or RET=HDRS (any case); 0 or -1. */
int	dsn_parse_ret(const char *val, size_t len, enum dsn_ret *ret);
/*
 * ENVID=xtext of at most DSN_ENVID_MAX characters whose decoded value is
 * printable US-ASCII (RFC 3461 4.4). Decodes into out; 0 or -1.
 */
int	dsn_parse_envid(const char *val, size_t len, char *out, size_t outsz);
/*
 * ORCPT=addr-type ";" xtext, at most DSN_ORCPT_MAX characters; addr-type
 * is an atom ("rfc822", "utf-8"). Writes "addr-type;decoded-address" to
 * out (addr-type as given). The decoded address must be non-empty and
 * printable US-ASCII (RFC 3461 4.2); with addr-type utf-8 (RFC 6533) octets
 * above 127 are allowed too. 0 or -1.
 */
int	dsn_parse_orcpt(const char *val, size_t len, char *out, size_t outsz);

#endif
