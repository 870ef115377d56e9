/*
 * deliverd — the local delivery process. It runs with the mailbox owner's
 * rights, takes one request at a time from the queue (message descriptor,
 * mailbox user and domain, sender), writes the message into the user's
 * Maildir with Return-Path and Delivered-To prepended, and answers
 * ok / temporary failure / permanent failure in order.
 */
#ifndef TERN_DELIVERD_H
#define TERN_DELIVERD_H

#include "daemon/config.h"

/*
 * Runs until the queue closes its channel or SIGTERM. `base` is the
 * directory the process chdir'd to before dropping privileges ("" if none):
 * expanded Maildir paths under it are used relative to the cwd.
 */
int deliver_main(const struct config *cfg, int queue_fd, const char *base);

/*
 * The fixed leading directory of a maildir template (up to the last '/'
 * before the first '%'), e.g. "/var/mail/%d/%u" -> "/var/mail". Returns 0,
 * or -1 if out is too small.
 */
int deliver_template_base(const char *tmpl, char *out, size_t outsz);

#endif
