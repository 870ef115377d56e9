/*
 * qconf — the part of the configuration the queue works with, as bytes.
 *
 * The queue is the one process a reload does not replace (it owns the
 * spool and the messages in flight), and it runs as deliver_user, which
 * need not be able to read the configuration file or the users tables.
 * So at a reload the parent encodes what the queue uses and passes it in
 * a memfd; the queue parses it into a configuration of its own:
 * hostname, recipient_delimiter, retry_interval, lifetime, delay_warning,
 * limits { message_size }, and per domain its name, catch-all, users
 * (names only, never a password field) and aliases. Everything else
 * belongs to processes the reload starts anew.
 *
 * The encoding: one record per line, "NAME[ ARG]...\n"; a number is
 * decimal, a string is "LEN:BYTES" (LEN decimal, BYTES any but NUL, so a
 * string may hold a blank or a line feed). The first record is
 * "tern-qconf 1", the last "end"; "domain" opens a domain, and "catchall",
 * "users" (the domain has a users table), "user", "aliases" (it has an
 * aliases table) and "alias" belong to the last one opened.
 */
#ifndef TERN_QCONF_H
#define TERN_QCONF_H

#include <stddef.h>

#include "common/buf.h"
#include "daemon/config.h"

#define QCONF_MAX ((size_t)1 << 30)	/* bytes of an encoding */

/* Appends the encoding of cfg to out. 0, or -1 (out's limit or ENOMEM). */
int qconf_encode(const struct config *cfg, struct buf *out);

/*
 * Parses an encoding into out (zeroed first; only the fields above are
 * set; config_free releases it, also after a failure). 0, or -1 with the
 * reason in err ("byte N: what is wrong").
 */
int qconf_parse(const char *data, size_t len, struct config *out, char *err,
    size_t errlen);

/* The encoding of cfg in a new memfd (close-on-exec), or -1 with errno. */
int qconf_to_memfd(const struct config *cfg);

/* qconf_parse over the whole of a file (a memfd from qconf_to_memfd). */
int qconf_from_fd(int fd, struct config *out, char *err, size_t errlen);

#endif
