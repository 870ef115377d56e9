/* ipc — framed messages with fd passing over SOCK_SEQPACKET (see ipc.h). */
#include "common/ipc.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

struct ipc_hdr {
	uint32_t type;
	uint32_t reqid;
};

struct ipc_out {
	struct ipc_out *next;
	int             fd;
	size_t          len;
	uint8_t         data[];	/* header + payload */
};

struct ipc {
	int             fd;
	struct event   *ev_read;
	struct event   *ev_write;
	struct ipc_out *head, *tail;
	size_t          backlog;
	ipc_cb         *cb;
	void           *arg;
	uint8_t         rbuf[IPC_MAX_MSG + sizeof(struct ipc_hdr)];
};

/* One message from iovcnt pieces: 0, or -1 with errno (SEQPACKET: all or nothing). */
static int
ipc_sendmsg(int sock, struct iovec *iov, int iovcnt, int fd)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct msghdr mh;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = (size_t)iovcnt;
	if (fd != -1) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	return n == -1 ? -1 : 0;
}

static void
ipc_flush(struct ipc *ipc)
{
	struct ipc_out *o;

	while ((o = ipc->head) != NULL) {
		struct iovec iov = { .iov_base = o->data, .iov_len = o->len };

		if (ipc_sendmsg(ipc->fd, &iov, 1, o->fd) == -1) {
			if (errno == EAGAIN || errno == ENOBUFS)
				break;
			/* The peer is gone; the read side will report it. */
		}
		ipc->head = o->next;
		if (ipc->head == NULL)
			ipc->tail = NULL;
		if (o->fd != -1)
			close(o->fd);
		free(o);
		ipc->backlog--;
	}
	if (ipc->head)
		event_add(ipc->ev_write, NULL);
	else
		event_del(ipc->ev_write);
}

static void
ipc_on_write(evutil_socket_t fd, short what, void *arg)
{
	ipc_flush(arg);
}

static void
ipc_on_read(evutil_socket_t sock, short what, void *arg)
{
	struct ipc *ipc = arg;
	int budget = 64;

	while (budget-- > 0) {
		union {
			struct cmsghdr hdr;
			char buf[CMSG_SPACE(sizeof(int) * 4)];
		} cm;
		struct iovec iov = { .iov_base = ipc->rbuf, .iov_len = sizeof(ipc->rbuf) };
		struct msghdr mh;
		struct ipc_msg m;
		struct ipc_hdr h;
		struct cmsghdr *c;
		ssize_t n;

		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			event_del(ipc->ev_read);
			ipc->cb(ipc, NULL, ipc->arg);
			return;
		}
		memset(&m, 0, sizeof(m));
		m.fd = -1;
		for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int), i;
				int fds[4];

				memcpy(fds, CMSG_DATA(c), nfd * sizeof(int));
				for (i = 0; i < nfd; i++) {
					if (m.fd == -1)
						m.fd = fds[i];
					else
						close(fds[i]);
				}
			}
		}
		if ((size_t)n < sizeof(h) || (mh.msg_flags & MSG_TRUNC)) {
			/* A malformed record from a peer: drop it, never trust it. */
			if (m.fd != -1)
				close(m.fd);
			continue;
		}
		memcpy(&h, ipc->rbuf, sizeof(h));
		m.type = h.type;
		m.reqid = h.reqid;
		m.data = ipc->rbuf + sizeof(h);
		m.len = (size_t)n - sizeof(h);
		ipc->cb(ipc, &m, ipc->arg);
	}
}

struct ipc *
ipc_new(struct event_base *base, int fd, ipc_cb *cb, void *arg)
{
	struct ipc *ipc = calloc(1, sizeof(*ipc));

	if (ipc == NULL)
		return NULL;
	ipc->fd = fd;
	ipc->cb = cb;
	ipc->arg = arg;
	ipc->ev_read = event_new(base, fd, EV_READ | EV_PERSIST, ipc_on_read, ipc);
	ipc->ev_write = event_new(base, fd, EV_WRITE, ipc_on_write, ipc);
	if (!ipc->ev_read || !ipc->ev_write) {
		ipc_free(ipc);
		return NULL;
	}
	event_add(ipc->ev_read, NULL);
	return ipc;
}

void
ipc_free(struct ipc *ipc)
{
	struct ipc_out *o;

	if (ipc == NULL)
		return;
	while ((o = ipc->head) != NULL) {
		ipc->head = o->next;
		if (o->fd != -1)
			close(o->fd);
		free(o);
	}
	if (ipc->ev_read)
		event_free(ipc->ev_read);
	if (ipc->ev_write)
		event_free(ipc->ev_write);
	close(ipc->fd);
	free(ipc);
}

int
ipc_send(struct ipc *ipc, uint32_t type, uint32_t reqid, const void *payload,
    size_t len, int fd)
{
	struct ipc_hdr h = { type, reqid };
	struct ipc_out *o;

	if (len > IPC_MAX_MSG)
		return -1;
	if (ipc->head == NULL) {
		/*
		 * Nothing waiting: straight from the caller's buffers, with no
		 * copy and no dup of the descriptor (the common case; a full
		 * socket queues the message as below).
		 */
		struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, len } };

		if (ipc_sendmsg(ipc->fd, iov, len ? 2 : 1, fd) == 0)
			return 0;
		if (errno != EAGAIN && errno != ENOBUFS)
			return 0;	/* the peer is gone; the read side will report it */
	}
	if ((o = malloc(sizeof(*o) + sizeof(h) + len)) == NULL)
		return -1;
	memcpy(o->data, &h, sizeof(h));
	if (len)
		memcpy(o->data + sizeof(h), payload, len);
	o->len = sizeof(h) + len;
	o->next = NULL;
	o->fd = -1;
	if (fd != -1 && (o->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1) {
		free(o);
		return -1;
	}
	if (ipc->tail)
		ipc->tail->next = o;
	else
		ipc->head = o;
	ipc->tail = o;
	ipc->backlog++;
	ipc_flush(ipc);
	return 0;
}

size_t
ipc_backlog(const struct ipc *ipc)
{
	return ipc->backlog;
}

int
ipc_put_u32(struct buf *b, uint32_t v)
{
	return buf_append(b, &v, sizeof(v));
}

int
ipc_put_u64(struct buf *b, uint64_t v)
{
	return buf_append(b, &v, sizeof(v));
}

int
ipc_put_bytes(struct buf *b, const void *p, size_t n)
{
	if (n > UINT32_MAX || ipc_put_u32(b, (uint32_t)n) == -1)
		return -1;
	return buf_append(b, p, n);
}

int
ipc_put_str(struct buf *b, const char *s)
{
	return ipc_put_bytes(b, s, strlen(s));
}

static const uint8_t *
ipc_take(struct ipc_msg *m, size_t n)
{
	const uint8_t *p;

	if (m->bad || n > m->len - m->off) {
		m->bad = 1;
		return NULL;
	}
	p = m->data + m->off;
	m->off += n;
	return p;
}

uint32_t
ipc_get_u32(struct ipc_msg *m)
{
	const uint8_t *p = ipc_take(m, sizeof(uint32_t));
	uint32_t v = 0;

	if (p)
		memcpy(&v, p, sizeof(v));
	return v;
}

uint64_t
ipc_get_u64(struct ipc_msg *m)
{
	const uint8_t *p = ipc_take(m, sizeof(uint64_t));
	uint64_t v = 0;

	if (p)
		memcpy(&v, p, sizeof(v));
	return v;
}

const uint8_t *
ipc_get_bytes(struct ipc_msg *m, size_t *n)
{
	uint32_t len = ipc_get_u32(m);
	const uint8_t *p = ipc_take(m, len);

	*n = p ? len : 0;
	return p;
}

void
ipc_get_str(struct ipc_msg *m, char *out, size_t outsz)
{
	size_t n;
	const uint8_t *p = ipc_get_bytes(m, &n);

	out[0] = '\0';
	if (p == NULL)
		return;
	if (n >= outsz || memchr(p, '\0', n)) {
		m->bad = 1;
		return;
	}
	memcpy(out, p, n);
	out[n] = '\0';
}

char *
ipc_get_strdup(struct ipc_msg *m, size_t max)
{
	size_t n;
	const uint8_t *p = ipc_get_bytes(m, &n);
	char *s;

	if (p == NULL)
		n = 0;
	if (n > max || (n && memchr(p, '\0', n)) || (s = malloc(n + 1)) == NULL) {
		m->bad = 1;
		return NULL;
	}
	if (n)
		memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

int
ipc_get_end(const struct ipc_msg *m)
{
	return m->bad || m->off != m->len ? -1 : 0;
}

int
ipc_socketpair(int fds[2])
{
	int sz = 4 * 1024 * 1024, i;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == -1)
		return -1;
	for (i = 0; i < 2; i++) {
		setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	return 0;
}
