/*
 * parse — the SMTP server's parsers for one command line and for the
 * paths in MAIL FROM / RCPT TO (RFC 5321 4.1.1, 4.1.2; RFC 6531 for UTF-8).
 * Pure functions over (bytes, length): no I/O, no allocation, no globals,
 * no reliance on NUL termination of the input. The session decides policy
 * (is SMTPUTF8 on? is the domain local?); these only decide syntax.
 */
#ifndef TERN_SMTP_PARSE_H
#define TERN_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* RFC 5321 4.5.3.1 size limits. */
#define SMTP_LOCAL_MAX   64
#define SMTP_DOMAIN_MAX  255
#define SMTP_PATH_MAX    256
#define SMTP_PARAMS_MAX  16

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_HELO, SMTP_VERB_EHLO, SMTP_VERB_MAIL, SMTP_VERB_RCPT,
	SMTP_VERB_DATA, SMTP_VERB_BDAT, SMTP_VERB_RSET, SMTP_VERB_NOOP,
	SMTP_VERB_QUIT, SMTP_VERB_VRFY, SMTP_VERB_EXPN, SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS, SMTP_VERB_AUTH,
};

struct smtp_cmd {
	enum smtp_verb verb;
	const char    *arg;	/* points into the line; after the verb and its spaces */
	size_t         arglen;	/* trailing spaces removed */
};

/*
 * Splits one command line (without its CRLF) into verb and argument. The
 * verb is matched case-insensitively and must be followed by SP or the end
 * of the line ("MAILFROM" is unknown). Returns 0, or -1 when the line holds
 * a NUL byte or other control characters (except HTAB) — the session
 * answers 500 5.5.2 then. An unknown verb is not an error here: verb is
 * SMTP_VERB_UNKNOWN.
 */
int smtp_parse_cmd(const char *line, size_t len, struct smtp_cmd *out);

/* Name of a verb for logs ("MAIL"); "UNKNOWN" for SMTP_VERB_UNKNOWN. */
const char *smtp_verb_name(enum smtp_verb verb);

struct smtp_path {
	int    null;			/* "<>" */
	int    postmaster;		/* RCPT TO:<Postmaster> without a domain (4.5.1) */
	int    utf8;			/* holds non-ASCII (valid UTF-8) octets */
	int    domain_literal;		/* domain is "[...]" */
	/* local@domain in wire form: local part exactly as written (dot-string
	 * or quoted-string), source route dropped. "" for null/postmaster. */
	char   addr[SMTP_PATH_MAX + 1];
	size_t local_len;		/* length of the local part within addr */
	/* The local part with quotes and backslash escapes removed, the key for
	 * lookups: "\"a b\"" -> "a b". */
	char   local[SMTP_LOCAL_MAX + 1];
	char   domain[SMTP_DOMAIN_MAX + 1];	/* as written, case kept */
};

struct smtp_param {
	const char *key;	/* points into the argument */
	size_t      keylen;
	const char *val;	/* NULL when the parameter has no "=value" */
	size_t      vallen;
};

struct smtp_mailarg {
	struct smtp_path  path;
	struct smtp_param params[SMTP_PARAMS_MAX];
	size_t            nparams;
};

enum smtp_parse_err {
	SMTP_PARSE_OK = 0,
	SMTP_PARSE_SYNTAX,	/* "FROM:"/"TO:" missing, no <...>: 501 5.5.4 */
	SMTP_PARSE_ADDRESS,	/* bad mailbox syntax: 501 5.1.3 (5.1.7 for a sender) */
	SMTP_PARSE_TOO_LONG,	/* local part, domain or path over the limits: 501 5.5.4 */
	SMTP_PARSE_BAD_UTF8,	/* ill-formed UTF-8: 501 5.6.7 */
	SMTP_PARSE_PARAM,	/* bad esmtp-keyword/value or too many: 501 5.5.4 */
};

/*
 * Parses the argument of MAIL ("FROM:<path> [params]") or RCPT
 * ("TO:<path> [params]"); `prefix` is "FROM:" or "TO:" (matched
 * case-insensitively). One optional space after the colon is tolerated,
 * as most servers do. For MAIL, "<>" gives path.null = 1; for RCPT,
 * "<Postmaster>" (any case, no domain) gives path.postmaster = 1. Source
 * routes ("<@a,@b:user@c>") are accepted and dropped. Address literals
 * ([1.2.3.4], [IPv6:...]) are accepted as domains. Non-ASCII octets are
 * accepted only as well-formed UTF-8 and flag path.utf8; the caller
 * refuses them without SMTPUTF8. On error, *why (if why is not NULL)
 * points to a short static English reason for the reply text.
 */
enum smtp_parse_err smtp_parse_mailarg(const char *arg, size_t len,
    const char *prefix, struct smtp_mailarg *out, const char **why);

/*
 * Checks the argument of EHLO/HELO: a domain (letters, digits, hyphens,
 * dots, optionally UTF-8 U-labels if allow_utf8) or an address literal.
 * Returns 0 if acceptable, -1 otherwise.
 */
int smtp_check_helo(const char *arg, size_t len, int allow_utf8);

/* Checks that s[0..n) is well-formed UTF-8 (RFC 3629). Returns 1 or 0. */
int smtp_utf8_valid(const char *s, size_t n);

/*
 * Case-insensitive lookup of a parameter by key in a parsed argument;
 * returns NULL if absent.
 */
const struct smtp_param *smtp_param_find(const struct smtp_mailarg *a,
    const char *key);

#endif
