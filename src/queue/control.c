/* control — the queue's command socket for ternctl (see control.h). */
#include "queue/control.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CONTROL_TIMEOUT 10	/* seconds for the command and for the answer */

struct control_conn {
	struct control_conn *next;
	struct control      *c;
	int                  fd;
	struct event        *ev;
	char                 line[CONTROL_LINE_MAX];
	size_t               len;
	unsigned             serial;		/* names the connection while it waits */
};

struct control {
	struct event_base   *base;
	int                  fd;
	struct event        *ev;
	control_cb           cb;
	void                *arg;
	struct control_conn *conns;
	unsigned             next_serial;
};

static const struct {
	const char        *name;
	enum control_verb  verb;
	int                takes_id;
} verbs[] = {
	{ "HOLD", CTL_HOLD, 1 },
	{ "RELEASE", CTL_RELEASE, 1 },
	{ "DELETE", CTL_DELETE, 1 },
	{ "STATUS", CTL_STATUS, 0 },
};

int
control_parse(const char *line, size_t len, struct control_cmd *out, const char **why)
{
	size_t vlen = 0, i;

	memset(out, 0, sizeof(*out));
	while (vlen < len && line[vlen] != ' ')
		vlen++;
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (strlen(verbs[i].name) != vlen || strncasecmp(line, verbs[i].name, vlen) != 0)
			continue;
		out->verb = verbs[i].verb;
		if (!verbs[i].takes_id) {
			if (vlen != len) {
				*why = "this command takes no argument";
				return -1;
			}
			return 0;
		}
		if (vlen == len || !envelope_id_valid(line + vlen + 1, len - vlen - 1)) {
			*why = "a queue ID (16 hex digits) is needed";
			return -1;
		}
		memcpy(out->id, line + vlen + 1, QUEUE_ID_LEN);
		out->id[QUEUE_ID_LEN] = '\0';
		return 0;
	}
	*why = "unknown command";
	return -1;
}

static void
conn_close(struct control_conn *cc)
{
	event_free(cc->ev);
	close(cc->fd);
	free(cc);
}

static void
conn_free(struct control_conn *cc)
{
	struct control_conn **pp;

	for (pp = &cc->c->conns; *pp; pp = &(*pp)->next)
		if (*pp == cc) {
			*pp = cc->next;
			break;
		}
	conn_close(cc);
}

void
control_reply(struct control_conn *cc, const char *text)
{
	size_t off = 0, len = strlen(text);

	/* Answers are small: the socket buffer takes them whole. */
	while (off < len) {
		ssize_t n = send(cc->fd, text + off, len - off, MSG_NOSIGNAL);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	conn_free(cc);
}

/* Reads the command line; the whole command must arrive within the timeout. */
static void
on_conn(evutil_socket_t fd, short what, void *arg)
{
	struct control_conn *cc = arg;
	struct control_cmd cmd;
	const char *why;
	char *nl;
	ssize_t n;
	size_t len;

	if (what & EV_TIMEOUT) {
		control_reply(cc, "error timeout\n");
		return;
	}
	n = recv(fd, cc->line + cc->len, sizeof(cc->line) - cc->len, 0);
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		conn_free(cc);
		return;
	}
	cc->len += (size_t)n;
	if ((nl = memchr(cc->line, '\n', cc->len)) == NULL) {
		if (cc->len == sizeof(cc->line))
			control_reply(cc, "error line too long\n");
		return;
	}
	len = (size_t)(nl - cc->line);
	if (len > 0 && cc->line[len - 1] == '\r')
		len--;
	if (control_parse(cc->line, len, &cmd, &why) == -1) {
		char err[128];

		snprintf(err, sizeof(err), "error %s\n", why);
		control_reply(cc, err);
		return;
	}
	/* From here the queue answers; the timeout still covers a lost answer. */
	event_del(cc->ev);
	event_assign(cc->ev, cc->c->base, -1, 0, on_conn, cc);
	{
		struct timeval tv = { CONTROL_TIMEOUT, 0 };

		event_add(cc->ev, &tv);
	}
	cc->c->cb(cc, &cmd, cc->c->arg);
}

static void
on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct control *c = arg;
	struct timeval tv = { CONTROL_TIMEOUT, 0 };
	struct sockaddr_un peer;
	socklen_t plen = sizeof(peer);
	struct control_conn *cc;
	int cfd = accept4(fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (cfd == -1)
		return;
	if ((cc = calloc(1, sizeof(*cc))) == NULL ||
	    (cc->ev = event_new(c->base, cfd, EV_READ | EV_PERSIST, on_conn, cc)) == NULL) {
		free(cc);
		close(cfd);
		return;
	}
	cc->c = c;
	cc->fd = cfd;
	cc->serial = ++c->next_serial;
	cc->next = c->conns;
	c->conns = cc;
	event_add(cc->ev, &tv);
}

struct control *
control_new(struct event_base *base, control_cb cb, void *arg)
{
	struct sockaddr_un sun;
	struct control *c = calloc(1, sizeof(*c));
	mode_t old;
	int e;

	if (c == NULL)
		return NULL;
	c->base = base;
	c->cb = cb;
	c->arg = arg;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, CONTROL_SOCKET, sizeof(CONTROL_SOCKET));
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		goto fail;
	unlink(CONTROL_SOCKET);
	old = umask(077);	/* only the spool owner (and root) may connect */
	e = bind(c->fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (e == -1 || listen(c->fd, 16) == -1)
		goto fail;
	if ((c->ev = event_new(base, c->fd, EV_READ | EV_PERSIST, on_accept, c)) == NULL)
		goto fail;
	event_add(c->ev, NULL);
	return c;
fail:
	e = errno;
	if (c->fd != -1)
		close(c->fd);
	free(c);
	errno = e;
	return NULL;
}

unsigned
control_serial(const struct control_conn *cc)
{
	return cc->serial;
}

struct control_conn *
control_find(struct control *c, unsigned serial)
{
	struct control_conn *cc;

	for (cc = c->conns; cc; cc = cc->next)
		if (cc->serial == serial)
			return cc;
	return NULL;
}

void
control_free(struct control *c)
{
	if (c == NULL)
		return;
	while (c->conns) {
		struct control_conn *cc = c->conns;

		c->conns = cc->next;
		conn_close(cc);
	}
	event_free(c->ev);
	close(c->fd);
	unlink(CONTROL_SOCKET);
	free(c);
}
