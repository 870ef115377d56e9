/*
 * mta — the outbound delivery process: the SMTP client side of tern. The
 * queue hands it one job per message and destination domain (the
 * recipients, the sender, a descriptor of the content); it finds where the
 * domain's mail goes (a configured route, else MX records per RFC 5321
 * section 5.1, resolved on a thread of its own with libunbound), connects
 * to each host in turn until one answers, speaks SMTP through
 * smtp/client.c (STARTTLS when offered, PIPELINING, CHUNKING) and reports
 * one result per recipient back to the queue, which retries or bounces.
 * It runs unprivileged and opens no file; it holds the DKIM signing keys
 * (deliver/signer.h), read before it dropped root, and signs mail from
 * authenticated and local senders on its way out.
 */
#ifndef TERN_MTA_H
#define TERN_MTA_H

#include "daemon/config.h"

struct signer;

/* Runs until the queue's channel closes or SIGTERM; takes ownership of
 * signer (may be NULL: nothing is signed). */
int mta_main(const struct config *cfg, struct signer *signer, int queue_fd);

#endif
