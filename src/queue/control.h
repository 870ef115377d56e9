/*
 * control — the queue's command socket, through which `ternctl` holds,
 * releases and deletes queued messages and asks for the daemon's status.
 * Commands go to the queue process itself because it is the only writer
 * of envelopes and the only one that knows which message is in delivery.
 *
 * The socket is spool/control (AF_UNIX, SOCK_STREAM, mode 0600: the spool
 * owner and root only). One command per connection, one line:
 *
 *   HOLD ID | RELEASE ID | DELETE ID | STATUS      (CRLF or LF ends it)
 *
 * The answer is text lines; the first starts with "ok" or "error"; the
 * queue closes the connection after it.
 */
#ifndef TERN_CONTROL_H
#define TERN_CONTROL_H

#include <stddef.h>

#include "queue/envelope.h"

#define CONTROL_SOCKET   "control"	/* in the spool */
#define CONTROL_LINE_MAX 128

enum control_verb { CTL_HOLD = 1, CTL_RELEASE, CTL_DELETE, CTL_STATUS };

struct control_cmd {
	enum control_verb verb;
	char              id[QUEUE_ID_LEN + 1];	/* "" for STATUS */
};

/*
 * Parses one command line (without its line end) of len octets; verbs
 * are case-insensitive, an ID is 16 lower-case hex digits. Returns 0, or
 * -1 with *why set.
 */
int control_parse(const char *line, size_t len, struct control_cmd *out, const char **why);

struct event_base;
struct control;
struct control_conn;

/* Called once per connection with its parsed command; answer with control_reply. */
typedef void (*control_cb)(struct control_conn *, const struct control_cmd *, void *arg);

/*
 * Listens on CONTROL_SOCKET in the current directory (an old socket
 * file is replaced). NULL with errno on failure.
 */
struct control *control_new(struct event_base *base, control_cb cb, void *arg);
/* Closes the socket, every open connection, and unlinks the socket file. */
void control_free(struct control *c);
/*
 * A connection waiting for an answer that comes later (STATUS) is named by
 * its serial: it may be gone (timed out) when the answer arrives.
 */
unsigned control_serial(const struct control_conn *cc);
struct control_conn *control_find(struct control *c, unsigned serial);
/* Writes text (lines ending in LF) to the client and closes the connection. */
void control_reply(struct control_conn *cc, const char *text);

#endif
