/*
 * submit — the message submission policy (RFC 6409) that is pure logic:
 * which sender addresses an authenticated user owns, and what the header
 * section of a submitted message says (From addresses, whether Date and
 * Message-ID are present).
 */
#ifndef TERN_SUBMIT_H
#define TERN_SUBMIT_H

#include <stddef.h>

#include "daemon/config.h"

#define SUBMIT_FROM_MAX 16

/*
 * Does `login` ("user@domain", or "user" for the first domain) own the
 * address addr ("local@domain", as in MAIL FROM)? Owned: the login's own
 * address (with or without +tag), an address of a local domain that
 * resolves to the login's mailbox (an alias of it), or an address listed
 * for the login in the auth senders table ("*@domain" there owns a whole
 * domain). Case-insensitive.
 */
int submit_owns(const struct config *cfg, const char *login, const char *addr);

struct submit_headers {
	int    has_date, has_message_id;
	size_t nfrom;			/* From: fields seen */
	size_t naddr;			/* addresses in them (at most SUBMIT_FROM_MAX kept) */
	char   from[SUBMIT_FROM_MAX][320];	/* addr-specs, as written */
	int    from_bad;		/* a From: address could not be read */
};

/*
 * Reads a header section (CRLF line ends; folded lines allowed) up to its
 * end. Comments, display names, quoted strings and groups in From: are
 * understood well enough to find the addr-specs.
 */
void submit_scan_headers(const char *hdr, size_t len, struct submit_headers *out);

/* Calls cb with each addr-spec of every field `name` ("To", "Cc", "Bcc"). */
void submit_field_addresses(const char *hdr, size_t len, const char *name,
    void (*cb)(void *arg, const char *addr, size_t n), void *arg);

#endif
