/*
 * maildrop — the folder through which local programs (tern-sendmail) hand
 * mail to the queue when they are not speaking SMTP, as Postfix's
 * postdrop does. A file there is
 *
 *     tern-maildrop 1\n
 *     sender ADDRESS\n          (empty for the null sender)
 *     rcpt ADDRESS\n            (one or more)
 *     \n
 *     the message, CRLF line ends
 *
 * written under a name starting with '.' and renamed when complete. The
 * folder is writable by every local user, so its files are untrusted
 * input: maildrop_parse checks everything.
 */
#ifndef TERN_MAILDROP_H
#define TERN_MAILDROP_H

#include <stddef.h>

#include "smtp/parse.h"

#define MAILDROP_DIR      "maildrop"
#define MAILDROP_MAX_RCPT 1000

struct maildrop_env {
	char   sender[SMTP_PATH_MAX + 1];
	size_t nrcpts;
	char   rcpts[MAILDROP_MAX_RCPT][SMTP_PATH_MAX + 1];
	size_t body_off;	/* where the message starts */
};

/* Parses the envelope part of data[0..len). 0, or -1 with *why. */
int maildrop_parse(const char *data, size_t len, struct maildrop_env *out, const char **why);

/* Writes the envelope part for a maildrop file into out (NUL-terminated). -1 if too small. */
int maildrop_header(const char *sender, const char *const *rcpts, size_t n, char *out, size_t outsz);

#endif
