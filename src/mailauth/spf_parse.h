/*
 * spf_parse — the pure half of SPF (RFC 7208): the record grammar (section
 * 4.5, 4.6.1, 5, 6, 12) split into terms, and macro expansion (section 7).
 * No DNS, no allocation, no globals: bytes and lengths in, results out.
 * src/mailauth/spf.c evaluates records with it; the fuzzer drives it alone.
 */
#ifndef TERN_SPF_PARSE_H
#define TERN_SPF_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* The results of check_host() (RFC 7208 section 2.6). */
enum spf_result {
	SPF_NONE, SPF_NEUTRAL, SPF_PASS, SPF_FAIL, SPF_SOFTFAIL,
	SPF_TEMPERROR, SPF_PERMERROR,
};

enum spf_term_type {
	SPF_T_ALL, SPF_T_INCLUDE, SPF_T_A, SPF_T_MX, SPF_T_PTR,
	SPF_T_IP4, SPF_T_IP6, SPF_T_EXISTS,
	SPF_T_REDIRECT, SPF_T_EXP, SPF_T_MODIFIER,	/* last: unknown modifier */
};

/* One term of a record; the pointers point into the record. */
struct spf_term {
	enum spf_term_type type;
	enum spf_result    qualifier;	/* PASS, FAIL, SOFTFAIL, NEUTRAL */
	const char        *text;	/* the whole term, for diagnostics */
	size_t             textlen;
	const char        *spec;	/* domain-spec or modifier value; NULL if absent */
	size_t             speclen;
	uint8_t            ip[16];	/* ip4 (4 bytes) and ip6 networks */
	int                cidr4, cidr6;	/* prefix lengths, default 32 and 128 */
};

/* Walks the terms of one record. */
struct spf_record_iter {
	const char *rec;
	size_t      len, pos;
};

/* 1 if txt is an SPF record: "v=spf1" (any case) then a space or the end (4.5). */
int spf_is_spf1(const char *txt, size_t len);

/* Starts at the first term; -1 if rec is not an SPF record. */
int spf_record_begin(struct spf_record_iter *it, const char *rec, size_t len);

/* The next term: 1 and *t filled, 0 at the end, -1 on a syntax error
 * (reason in err). */
int spf_record_next(struct spf_record_iter *it, struct spf_term *t, char *err, size_t errlen);

/*
 * The whole-record check done before any evaluation (4.6: a syntax error
 * anywhere is a permerror): 7-bit ASCII only (3.1), every term valid,
 * redirect= and exp= at most once each (6). Returns 0 or -1 with a reason.
 * On success *redirect and *exp (either may be NULL) point at the modifier
 * terms found, or have spec NULL when absent.
 */
int spf_record_check(const char *rec, size_t len, struct spf_term *redirect,
    struct spf_term *exp, char *err, size_t errlen);

/* What a macro-string is used for: a domain-spec (letters c, r, t are
 * forbidden, 7.2) or an explanation string (any letter, spaces allowed). */
enum spf_macro_use { SPF_MACRO_DOMAIN, SPF_MACRO_EXP };

/* The values macros expand to (7.2). Strings are NUL-terminated. */
struct spf_macro_ctx {
	const char *sender;		/* s: <sender>, local-part@domain */
	const char *local;		/* l: local-part of <sender> */
	size_t      local_len;
	const char *sender_domain;	/* o: domain of <sender> */
	const char *domain;		/* d: the current <domain> */
	int         family;		/* AF_INET or AF_INET6, for i, c, v */
	uint8_t     ip[16];
	const char *validated;		/* p: validated name, or NULL = "unknown" */
	const char *helo;		/* h */
	const char *receiver;		/* r: or NULL = "unknown" */
	long long   now;		/* t */
};

/* Syntax of a macro-string (7.1) for its use; 0 or -1 with a reason. */
int spf_macro_check(const char *in, size_t len, enum spf_macro_use use, char *err, size_t errlen);

/* 1 if the (valid) macro-string uses the letter (any case): callers look
 * up %{p} only when asked for it. */
int spf_macro_uses(const char *in, size_t len, char letter);

/*
 * Expands a macro-string into out (always NUL-terminated when outcap > 0),
 * *outlen = its length. Returns 0, -1 on a syntax error (reason in err),
 * -2 if the expansion does not fit (out holds what fitted).
 */
int spf_macro_expand(const char *in, size_t len, enum spf_macro_use use,
    const struct spf_macro_ctx *mc, char *out, size_t outcap, size_t *outlen,
    char *err, size_t errlen);

/* domain-spec syntax (7.1): a valid macro-string for a domain that ends
 * in a macro-expand or in "." toplabel ["."]. 0 or -1 with a reason. */
int spf_domain_spec_check(const char *s, size_t len, char *err, size_t errlen);

/*
 * Turns an expanded domain-spec into a query name in place (7.3): one
 * trailing dot removed, then whole labels removed from the left until it
 * fits in 253 characters. Returns the new length, or -1 if the result is
 * not a usable DNS name (empty or over-long label, 4.3 and 4.8).
 */
int spf_domain_finish(char *name, size_t len);

#endif
