/*
 * signer — DKIM signing of outbound mail (RFC 6376, RFC 8463) for the mta.
 * signer_new() loads the keys of every `dkim_sign` line; the mta calls it
 * at start, so keys live in the outbound process only (never in an smtp
 * worker). For each relayed message the queue says whether it may be
 * signed (signer_eligible: an authenticated or a local sender, never mail
 * merely relayed from the Internet); signer_sign() then reads the queue
 * file, picks the keys of the From: domain (as OpenDKIM does) and gives
 * the DKIM-Signature field(s) to send before the content.
 */
#ifndef TERN_SIGNER_H
#define TERN_SIGNER_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "daemon/config.h"

struct signer;

/*
 * Loads every key of cfg->dkim. NULL with "FILE:LINE: dkim_sign: reason"
 * in err when one cannot be loaded (or on ENOMEM). No dkim_sign lines give
 * a signer that signs nothing.
 */
struct signer *signer_new(const struct config *cfg, char *err, size_t errlen);
void signer_free(struct signer *s);
/* Loads and frees every key (tern -n, start, SIGHUP): 0, or -1 with err as above. */
int  signer_check(const struct config *cfg, char *err, size_t errlen);

/* Does the signer hold any key? */
int  signer_active(const struct signer *s);

/*
 * Whether mail with this envelope protocol and client may carry our
 * signature: a client that authenticated (RFC 3848 "...A" protocols:
 * ESMTPA, ESMTPSA, UTF8SMTPSA...), mail that came in on a submission
 * listener (proto ending in ENVELOPE_PROTO_SUB: authenticated or from
 * trusted_networks) or a local program / tern itself (client "local").
 */
int  signer_eligible(const char *proto, const char *client_addr);

/*
 * Signs the message in fd's bytes [0, len) (read with pread, CRLF line
 * ends; UINT64_MAX for the whole file) with the keys of its first From: domain that has any. Appends the
 * DKIM-Signature field(s) to out and the domain to dom. Returns 1 when
 * signed, 0 when no From: domain has a key (out unchanged), -1 with a
 * reason in why on a read or signing failure (out unchanged).
 */
int  signer_sign(struct signer *s, int fd, uint64_t len, struct buf *out, char *dom,
    size_t domsz, char *why, size_t whysz);

#endif
