/*
 * checkd — the check process: SPF, DKIM and DMARC of inbound messages for
 * the smtp workers (which cannot do DNS), through mailauth/authcheck.
 * A pool of threads, each with its own synchronous libunbound resolver,
 * runs the checks so that one slow DNS answer holds up one message only;
 * the event loop reads requests and sends answers, and checks at once a
 * request whose DNS answers are all in the threads' shared cache
 * (dns/cache.h). Pending requests are
 * bounded; an overflow or a request that waited past the timeout gets a
 * temperror answer at once.
 */
#ifndef TERN_CHECKD_H
#define TERN_CHECKD_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/config.h"
#include "mailauth/arc.h"
#include "mailauth/dkim.h"
#include "smtp/parse.h"

/* Runs until SIGTERM, or until the parent and every worker channel are gone. */
int checkd_main(const struct config *cfg, int parent_fd);

/* A check request as a worker sends it (MSG_C_CHECK, common/msgtypes.h). */
struct checkd_request {
	uint32_t       seq;
	char           ip[64], helo[SMTP_DOMAIN_MAX + 1], mailfrom[SMTP_PATH_MAX + 1];
	const uint8_t *hdr;		/* the (rest of the) header section, inside the input */
	size_t         hdrlen;
	uint8_t        body[DKIM_MAX_SIGS];	/* enum dkim_bodyv per signature */
	size_t         nbody;
	int            has_arc;
	unsigned char  arc[ARC_BODY_HASHES];	/* ARC's body hashes (arc.h), if has_arc */
};

/*
 * Decodes a request's bytes p[0..len). A worker is not trusted: -1 if
 * anything is off (short, a string too long or holding a NUL, more body
 * verdicts than DKIM_MAX_SIGS, ARC hashes of another length, bytes left
 * over); *out is then unusable.
 */
int checkd_request_decode(const uint8_t *p, size_t len, struct checkd_request *out);

#endif
