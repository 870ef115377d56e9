/*
 * resolve — what a recipient address means: local mailboxes (after
 * sub-addressing, aliases, catch-all) or remote addresses, or a refusal.
 * Called by the smtp worker at RCPT time; pure over the loaded config.
 */
#ifndef TERN_RESOLVE_H
#define TERN_RESOLVE_H

#include <stddef.h>

#include "daemon/config.h"
#include "queue/envelope.h"
#include "smtp/parse.h"

#define RESOLVE_MAX_DEST   64	/* destinations one RCPT may expand to */
#define RESOLVE_MAX_DEPTH  8	/* alias nesting */

enum dest_kind { DEST_LOCAL, DEST_REMOTE };

struct rcpt_dest {
	enum dest_kind kind;
	/* DEST_LOCAL: mailbox user (lower-cased, no +tag) and domain (lower case). */
	char user[SMTP_LOCAL_MAX + 1];
	char domain[SMTP_DOMAIN_MAX + 1];
	/* The final address: user@domain for local, the target for remote. */
	char addr[SMTP_PATH_MAX + 1];
};

enum resolve_status {
	RESOLVE_OK = 0,
	RESOLVE_UNKNOWN_USER,	/* 550 5.1.1 */
	RESOLVE_RELAY_DENIED,	/* 554 5.7.1 */
	RESOLVE_LOOP,		/* alias loop or too deep: 550 5.4.6 */
	RESOLVE_TOO_MANY,	/* more than max destinations: 452 4.5.3 */
};

/*
 * Resolves one RCPT path. A domain that is not a local domain is a remote
 * recipient only when may_relay is set, else RESOLVE_RELAY_DENIED. For a
 * local domain: "postmaster" (any case) always exists; the local part is
 * stripped of "+tag" (cfg->recipient_delimiter) for lookups; aliases are
 * expanded recursively (to local or remote addresses; alias targets may
 * leave tern even when may_relay is 0, since the administrator wrote
 * them); users are looked up in the users table; unknown users go to the
 * catch-all if set. Destinations are de-duplicated. path->postmaster
 * means postmaster of the first configured domain.
 */
enum resolve_status resolve_rcpt(const struct config *cfg,
    const struct smtp_path *path, int may_relay,
    struct rcpt_dest *out, size_t max, size_t *n);

/*
 * Appends destinations to an envelope as pending recipients, each final
 * address once per message; orig is the address as the client gave it.
 * Returns 0, or -1 (ENOMEM, too many recipients).
 */
int resolve_into_envelope(struct envelope *e, const char *orig,
    const struct rcpt_dest *d, size_t n, unsigned notify, const char *orcpt);

/*
 * Resolves a bare address ("user@domain") and appends what it means to e
 * (marking e SMTPUTF8 when the address needs it): for mail tern makes or
 * takes from local programs. -1 when it does not resolve.
 */
int resolve_address_into_envelope(const struct config *cfg, const char *addr,
    int may_relay, struct envelope *e);

#endif
