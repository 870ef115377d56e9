/* maildrop — the local submission folder's file format (see maildrop.h). */
#include "queue/maildrop.h"

#include <stdio.h>
#include <string.h>

/* One "KEY VALUE\n" line: the value is a path as RCPT TO would take it. */
static int
take_addr(const char *v, size_t n, int allow_null, char *out)
{
	char wrapped[SMTP_PATH_MAX + 16];
	struct smtp_mailarg a;

	if (n == 0 && allow_null) {
		out[0] = '\0';
		return 0;
	}
	if (n > SMTP_PATH_MAX)
		return -1;
	snprintf(wrapped, sizeof(wrapped), "%s<%.*s>", allow_null ? "FROM:" : "TO:", (int)n, v);
	if (smtp_parse_mailarg(wrapped, strlen(wrapped), allow_null ? "FROM:" : "TO:", &a, NULL) !=
	    SMTP_PARSE_OK || a.path.postmaster || a.nparams)
		return -1;
	snprintf(out, SMTP_PATH_MAX + 1, "%s", a.path.addr);
	return 0;
}

int
maildrop_parse(const char *data, size_t len, struct maildrop_env *out, const char **why)
{
	size_t off = 0, lineno = 0;
	int have_sender = 0;

	memset(out, 0, sizeof(*out));
	for (;;) {
		const char *p = data + off, *nl = memchr(p, '\n', len - off);
		size_t n;

		if (nl == NULL) {
			*why = "no end of the envelope";
			return -1;
		}
		n = (size_t)(nl - p);
		off += n + 1;
		if (lineno++ == 0) {
			if (n != 15 || memcmp(p, "tern-maildrop 1", 15) != 0) {
				*why = "not a tern maildrop file (version 1)";
				return -1;
			}
			continue;
		}
		if (n == 0)
			break;
		if (n >= 7 && memcmp(p, "sender ", 7) == 0 && !have_sender) {
			if (take_addr(p + 7, n - 7, 1, out->sender) == -1) {
				*why = "bad sender address";
				return -1;
			}
			have_sender = 1;
		} else if (n >= 5 && memcmp(p, "rcpt ", 5) == 0) {
			if (out->nrcpts == MAILDROP_MAX_RCPT ||
			    take_addr(p + 5, n - 5, 0, out->rcpts[out->nrcpts]) == -1) {
				*why = "bad or too many recipient addresses";
				return -1;
			}
			out->nrcpts++;
		} else {
			*why = "unknown envelope line";
			return -1;
		}
	}
	if (!have_sender || out->nrcpts == 0) {
		*why = "sender or recipients missing";
		return -1;
	}
	out->body_off = off;
	return 0;
}

int
maildrop_header(const char *sender, const char *const *rcpts, size_t n, char *out, size_t outsz)
{
	size_t off, i;
	int k;

	k = snprintf(out, outsz, "tern-maildrop 1\nsender %s\n", sender);
	if (k < 0 || (size_t)k >= outsz)
		return -1;
	off = (size_t)k;
	for (i = 0; i < n; i++) {
		k = snprintf(out + off, outsz - off, "rcpt %s\n", rcpts[i]);
		if (k < 0 || (size_t)k >= outsz - off)
			return -1;
		off += (size_t)k;
	}
	if (off + 2 > outsz)
		return -1;
	out[off++] = '\n';
	out[off] = '\0';
	return 0;
}
