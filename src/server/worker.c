/* worker — accept loop and connection I/O around session.c (see worker.h). */
#include "server/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/exitsig.h"
#include "common/ipc.h"
#include "common/log.h"
#include "common/msgtypes.h"
#include "mailauth/arc.h"
#include "queue/envelope.h"
#include "server/session.h"
#include "server/tls.h"

#define READ_CHUNK     (64 * 1024)
#define ACCEPT_PAUSE_MS 100	/* no accept() for this long when out of descriptors */
#define OUT_HIGH       (64 * 1024)	/* stop reading while this much is unsent */
#define IN_HIGH        (128 * 1024)	/* stop reading while this much is unprocessed */
#define MAX_CONNS      (1u << 17)
#define ENV_PART       (64 * 1024)

struct worker;

enum conn_tls { CT_NONE, CT_HANDSHAKE, CT_ACTIVE };

struct listener {
	struct worker           *w;
	const struct listen_cfg *cfg;
	int                      fd;
};

struct conn {
	struct worker   *w;
	int              fd;
	uint32_t         reqid;
	struct event    *ev_read, *ev_write, *ev_timer;
	struct session  *s;
	int              msgfd;
	unsigned         bucket;
	int              greeted;
	char             ip[INET6_ADDRSTRLEN];
	const struct listen_cfg *lst;
	struct sockaddr_storage ss;
	SSL             *ssl;
	enum conn_tls    tls;
	int              ssl_want_write;	/* the last SSL_read needs the socket writable */
	struct event    *ev_delay;		/* holds back an AUTH failure answer */
	unsigned         timer_cmds;		/* commands seen when the timer was set */
	enum session_wait timer_wait;
	enum session_auth auth_result;
};

struct worker {
	const struct worker_args *args;
	const struct config      *cfg;
	struct event_base        *base;
	struct ipc               *queue;
	struct ipc               *auth;
	struct ipc               *check;
	struct listener          *listeners;
	struct event            **ev_listen;
	struct conn             **conns;
	uint32_t                  nconns, capconns, live;
	uint32_t                  gen;
	uint64_t                  next_sid;
	uint64_t                  pid;		/* the high half of session ids */
	int                       stopping;	/* SIGTERM: sessions are told to go */
	int                       retiring;	/* SIGUSR1: sessions end by themselves */
	int                       paused;	/* out of descriptors: not accepting */
	int                       epfd;		/* libevent's epoll set, -1 if unknown (listen_exclusive) */
	struct event             *ev_resume;	/* ends the pause */
	char                     *hdrbuf;	/* IPC_MAX_MSG: a check answer's header */
	/* The next message's file, given ahead by the queue (COMMIT_F_SPARE). */
	int                       spare_fd;	/* -1: none */
	char                      spare_id[QUEUE_ID_LEN + 1];
	int                       spare_asked;	/* a commit asked for one, not answered yet */
	uint32_t                  spare_reqid;	/* that commit's session */
	struct spare_open        *spare_opens;	/* announced in the next turn */
};

/* A spare file taken by a session at DATA, announced to it in the next turn. */
struct spare_open {
	struct spare_open *next;
	struct worker *w;
	uint32_t       reqid;
	char           id[QUEUE_ID_LEN + 1];
};

static void conn_after(struct conn *);

/* ---- connection table: reqid = generation << 17 | index ---- */

static struct conn *
conn_lookup(struct worker *w, uint32_t reqid)
{
	uint32_t i = reqid & (MAX_CONNS - 1);

	if (i < w->nconns && w->conns[i] && w->conns[i]->reqid == reqid)
		return w->conns[i];
	return NULL;
}

static int
conn_register(struct worker *w, struct conn *c)
{
	uint32_t i;

	for (i = 0; i < w->nconns && w->conns[i]; i++)
		;
	if (i == w->nconns) {
		if (w->nconns == MAX_CONNS)
			return -1;
		if (w->nconns == w->capconns) {
			uint32_t nc = w->capconns ? w->capconns * 2 : 256;
			/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
			struct conn **p = realloc(w->conns, nc * sizeof(*p));

			if (p == NULL)
				return -1;
			w->conns = p;
			w->capconns = nc;
		}
		w->nconns++;
	}
	w->conns[i] = c;
	w->gen = (w->gen + 1) & 0x7fff;
	c->reqid = (w->gen << 17) | i;
	w->live++;
	return 0;
}

static void
conn_free(struct conn *c)
{
	struct worker *w = c->w;
	const struct session_stats *st = session_stats(c->s);

	log_info("event=disconnect session=%" PRIx64 " ip=%s commands=%u messages=%u rcpts=%u errors=%u",
	    session_id(c->s), c->ip, st->commands, st->messages, st->rcpts, st->errors);
	session_hangup(c->s);
	session_free(c->s);
	w->conns[c->reqid & (MAX_CONNS - 1)] = NULL;
	w->live--;
	connlimit_release(w->args->connlimit, w->args->slot, c->bucket);
	event_free(c->ev_read);
	event_free(c->ev_write);
	event_free(c->ev_timer);
	if (c->ev_delay)
		event_free(c->ev_delay);
	if (c->ssl) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->msgfd != -1)
		close(c->msgfd);
	close(c->fd);
	free(c);
	if ((w->stopping || w->retiring) && w->live == 0)
		event_base_loopbreak(w->base);
}

/* ---- session operations ---- */

/* Gives a file back to the queue (MSG_Q_ABORT), e.g. a spare nobody can use. */
static void
file_give_back(struct worker *w, uint32_t reqid, const char *id)
{
	struct buf b;

	buf_init(&b, 64);
	ipc_put_str(&b, id);
	ipc_send(w->queue, MSG_Q_ABORT, reqid, b.data, b.len, -1);
	buf_free(&b);
}

static void
on_spare_open(evutil_socket_t fd, short what, void *arg)
{
	struct spare_open *so = arg, **pp;
	struct conn *c = conn_lookup(so->w, so->reqid);

	for (pp = &so->w->spare_opens; *pp; pp = &(*pp)->next)
		if (*pp == so) {
			*pp = so->next;
			break;
		}
	if (c == NULL)	/* gone meanwhile; conn_free closed the descriptor */
		file_give_back(so->w, so->reqid, so->id);
	else {
		session_open_done(c->s, so->id, 0);
		conn_after(c);
	}
	free(so);
}

/*
 * The spare file, if there is one, saves asking the queue: the session
 * learns of it in the next turn of the loop (not from inside its own
 * command handling). 0, or -1 to ask the queue.
 */
static int
spare_use(struct conn *c)
{
	struct worker *w = c->w;
	static const struct timeval now = { 0, 0 };
	struct spare_open *so;

	if (w->spare_fd == -1 || (so = malloc(sizeof(*so))) == NULL)
		return -1;
	so->w = w;
	so->reqid = c->reqid;
	memcpy(so->id, w->spare_id, sizeof(so->id));
	if (event_base_once(w->base, -1, EV_TIMEOUT, on_spare_open, so, &now) == -1) {
		free(so);
		return -1;
	}
	so->next = w->spare_opens;
	w->spare_opens = so;
	c->msgfd = w->spare_fd;
	w->spare_fd = -1;
	return 0;
}

/*
 * The commit's flags: a spare is asked for only by a worker serving this
 * one session (under load the queue answers many MSG_Q_OPEN in one turn
 * anyway, and a spare made while answering a commit delays the others).
 */
static uint32_t
spare_ask(struct conn *c)
{
	struct worker *w = c->w;

	if (w->live > 1 || w->spare_fd != -1 || w->spare_asked || w->stopping || w->retiring)
		return 0;
	w->spare_asked = 1;
	w->spare_reqid = c->reqid;
	return COMMIT_F_SPARE;
}

/* A spare that came with a commit's answer (the rest of MSG_Q_COMMIT_OK). */
static void
spare_take(struct worker *w, struct ipc_msg *m)
{
	char id[QUEUE_ID_LEN + 1] = "";

	ipc_get_str(m, id, sizeof(id));
	if (ipc_get_end(m) == -1 || id[0] == '\0')
		return;
	if (w->spare_fd != -1 || w->stopping || w->retiring) {
		file_give_back(w, m->reqid, id);
		return;
	}
	w->spare_fd = m->fd;
	m->fd = -1;
	memcpy(w->spare_id, id, sizeof(w->spare_id));
}

static void
op_open(void *ctx, struct session *s)
{
	struct conn *c = ctx;

	if (spare_use(c) == 0)
		return;
	if (ipc_send(c->w->queue, MSG_Q_OPEN, c->reqid, NULL, 0, -1) == -1)
		session_open_done(s, NULL, EIO);
}

static int
op_write(void *ctx, struct session *s, const char *p, size_t n)
{
	struct conn *c = ctx;

	while (n > 0) {
		ssize_t r = write(c->msgfd, p, n);

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 ? EIO : errno;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void
op_commit(void *ctx, struct session *s, const char *id, const struct buf *env)
{
	struct conn *c = ctx;
	size_t off = 0;

	/* The envelope may exceed one message: send it in parts, the last commits. */
	do {
		size_t n = env->len - off > ENV_PART ? ENV_PART : env->len - off;
		int last = off + n == env->len;
		struct buf b;

		buf_init(&b, ENV_PART + 256);
		ipc_put_str(&b, id);
		ipc_put_bytes(&b, env->data + off, n);
		if (last)
			ipc_put_u32(&b, spare_ask(c));
		if (ipc_send(c->w->queue, last ? MSG_Q_COMMIT : MSG_Q_ENV_PART, c->reqid,
		    b.data, b.len, -1) == -1) {
			c->w->spare_asked = 0;
			buf_free(&b);
			session_commit_done(s, EIO);
			return;
		}
		buf_free(&b);
		off += n;
	} while (off < env->len);
	close(c->msgfd);
	c->msgfd = -1;
}

static void
op_abort(void *ctx, struct session *s, const char *id)
{
	struct conn *c = ctx;
	struct buf b;

	buf_init(&b, 256);
	ipc_put_str(&b, id);
	ipc_send(c->w->queue, MSG_Q_ABORT, c->reqid, b.data, b.len, -1);
	buf_free(&b);
	if (c->msgfd != -1) {
		close(c->msgfd);
		c->msgfd = -1;
	}
}

static void
op_log(void *ctx, struct session *s, const char *line)
{
	struct conn *c = ctx;

	log_info("session=%" PRIx64 " ip=%s %s", session_id(s), c->ip, line);
}

static void
op_auth(void *ctx, struct session *s, const char *user, const char *pass)
{
	struct conn *c = ctx;
	struct buf b;
	int r;

	buf_init(&b, 1024);
	ipc_put_str(&b, c->ip);
	ipc_put_str(&b, user);
	ipc_put_str(&b, pass);
	r = c->w->auth ? ipc_send(c->w->auth, MSG_A_CHECK, c->reqid, b.data, b.len, -1) : -1;
	explicit_bzero(b.data, b.len);
	buf_free(&b);
	if (r == -1)
		session_auth_done(s, SESSION_AUTH_TEMPFAIL);
}

static int
op_admit(void *ctx, struct session *s)
{
	struct conn *c = ctx;

	return connlimit_message(c->w->args->connlimit, (struct sockaddr *)&c->ss,
	    c->w->cfg->limits.messages_per_ip, (unsigned long)(time(NULL) / 60));
}

/* The header goes in parts when it does not fit one message; the last carries the rest. */
static int
send_check(struct conn *c, const struct session_check *q)
{
	struct ipc *ipc = c->w->check;
	size_t off = 0, n;
	struct buf b;
	int r;

	while (q->hdrlen - off > ENV_PART) {
		buf_init(&b, ENV_PART + 64);
		ipc_put_bytes(&b, q->hdr + off, ENV_PART);
		r = ipc_send(ipc, MSG_C_PART, c->reqid, b.data, b.len, -1);
		buf_free(&b);
		if (r == -1)
			return -1;
		off += ENV_PART;
	}
	n = q->hdrlen - off;
	buf_init(&b, ENV_PART + 4096);
	ipc_put_u32(&b, q->seq);
	ipc_put_str(&b, q->ip);
	ipc_put_str(&b, q->helo);
	ipc_put_str(&b, q->mailfrom);
	ipc_put_bytes(&b, q->hdr + off, n);
	ipc_put_bytes(&b, q->body, q->nbody);
	ipc_put_bytes(&b, q->arc, q->arc ? ARC_BODY_HASHES : 0);
	r = ipc_send(ipc, MSG_C_CHECK, c->reqid, b.data, b.len, -1);
	buf_free(&b);
	return r;
}

static void
op_check(void *ctx, struct session *s, const struct session_check *q)
{
	struct conn *c = ctx;

	if (c->w->check == NULL || send_check(c, q) == -1)
		session_check_done(s, NULL);
}

static const struct session_ops conn_ops = {
	op_open, op_write, op_commit, op_abort, op_log, op_auth, op_admit, op_check,
};

/* ---- TLS ---- */

/* send/recv through TLS when it is on; -1 with errno EAGAIN when it must wait. */
static ssize_t
conn_send(struct conn *c, const char *p, size_t n)
{
	int r, e;

	if (c->tls != CT_ACTIVE)
		return send(c->fd, p, n, MSG_NOSIGNAL);
	ERR_clear_error();
	if ((r = SSL_write(c->ssl, p, (int)(n > INT32_MAX ? INT32_MAX : n))) > 0)
		return r;
	e = SSL_get_error(c->ssl, r);
	errno = (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) ? EAGAIN : EPIPE;
	return -1;
}

static ssize_t
conn_recv(struct conn *c, char *p, size_t n)
{
	int r, e;

	if (c->tls != CT_ACTIVE)
		return recv(c->fd, p, n, 0);
	ERR_clear_error();
	c->ssl_want_write = 0;
	if ((r = SSL_read(c->ssl, p, (int)n)) > 0)
		return r;
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		c->ssl_want_write = e == SSL_ERROR_WANT_WRITE;
		errno = EAGAIN;
		return -1;
	}
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	errno = ECONNRESET;
	return -1;
}

/* Drives the handshake; 1 done, 0 waiting, -1 failed (the caller closes). */
static int
conn_handshake(struct conn *c)
{
	char info[160];
	int r, e;

	ERR_clear_error();
	if ((r = SSL_accept(c->ssl)) == 1) {
		c->tls = CT_ACTIVE;
		tls_describe(c->ssl, info, sizeof(info));
		session_tls_started(c->s, info);
		if (!c->greeted) {
			c->greeted = 1;
			session_greet(c->s);
		}
		return 1;
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		event_add(c->ev_read, NULL);
		return 0;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		event_add(c->ev_write, NULL);
		return 0;
	}
	log_info("event=tls-failed session=%" PRIx64 " ip=%s error=\"%s\"", session_id(c->s), c->ip,
	    ERR_peek_last_error() ? ERR_reason_error_string(ERR_peek_last_error()) : "connection closed");
	return -1;
}

static int
conn_start_tls(struct conn *c)
{
	if (c->w->args->tls == NULL || (c->ssl = tls_server_ssl(c->w->args->tls, c->fd)) == NULL)
		return -1;
	c->tls = CT_HANDSHAKE;
	return conn_handshake(c) == -1 ? -1 : 0;
}

/* ---- I/O ---- */

static int
conn_flush(struct conn *c)
{
	struct buf *out = session_output(c->s);

	while (out->len > 0) {
		ssize_t n = conn_send(c, out->data, out->len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1;
		buf_consume(out, (size_t)n);
	}
	return 0;
}

static void
conn_timer(struct conn *c)
{
	const struct limits_cfg *l = &c->w->cfg->limits;
	struct timeval tv = { 0, 0 };
	enum session_wait wait = session_waiting(c->s);
	unsigned cmds = session_stats(c->s)->commands;

	/*
	 * Waiting for a command, the deadline runs from the end of the last
	 * one: bytes that trickle in without completing a command (one a
	 * second) do not push it back.
	 */
	if (wait == SESSION_WAIT_COMMAND && c->greeted && c->tls != CT_HANDSHAKE &&
	    cmds == c->timer_cmds && wait == c->timer_wait && evtimer_pending(c->ev_timer, NULL))
		return;
	c->timer_cmds = cmds;
	c->timer_wait = wait;

	switch (session_waiting(c->s)) {
	case SESSION_WAIT_COMMAND: tv.tv_sec = l->timeout_greeting; break;
	case SESSION_WAIT_DATA: tv.tv_sec = l->timeout_data_block; break;
	case SESSION_WAIT_QUEUE: tv.tv_sec = l->timeout_data_end; break;
	case SESSION_WAIT_CLOSE: tv.tv_sec = 10; break;
	case SESSION_WAIT_TLS: tv.tv_sec = l->timeout_greeting; break;
	case SESSION_WAIT_CHECK: tv.tv_sec = c->w->cfg->checks.timeout; break;
	}
	if (!c->greeted)
		tv.tv_sec = c->lst->tls == LTLS_IMPLICIT ? l->timeout_greeting : l->greeting_delay;
	evtimer_add(c->ev_timer, &tv);
}

/* After anything happened: write what is ready, decide to read or close. */
static void
conn_after(struct conn *c)
{
	struct buf *out = session_output(c->s);
	int closing = session_waiting(c->s) == SESSION_WAIT_CLOSE;

	if (conn_flush(c) == -1) {
		conn_free(c);
		return;
	}
	if (closing && out->len == 0) {
		conn_free(c);
		return;
	}
	if (c->tls == CT_HANDSHAKE) {
		conn_timer(c);
		return;
	}
	if (session_waiting(c->s) == SESSION_WAIT_TLS) {
		if (out->len > 0) {
			event_del(c->ev_read);	/* nothing more is read in clear */
			event_add(c->ev_write, NULL);
			conn_timer(c);
			return;
		}
		if (conn_start_tls(c) == -1) {
			conn_free(c);
			return;
		}
		conn_after(c);
		return;
	}
	if (out->len > 0)
		event_add(c->ev_write, NULL);
	if (closing || out->len > OUT_HIGH || session_pending_input(c->s) > IN_HIGH)
		event_del(c->ev_read);
	else {
		event_add(c->ev_read, NULL);
		/* TLS may hold decrypted bytes the socket no longer signals. */
		if (c->ssl && c->tls == CT_ACTIVE && SSL_pending(c->ssl) > 0)
			event_active(c->ev_read, EV_READ, 0);
	}
	if (c->ssl_want_write)
		event_add(c->ev_write, NULL);
	if (out->len == 0)
		session_trim(c->s);
	conn_timer(c);
}

static void
on_conn_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	char buf[READ_CHUNK];
	ssize_t n;

	if (c->tls == CT_HANDSHAKE) {
		if (conn_handshake(c) == -1)
			conn_free(c);
		else
			conn_after(c);
		return;
	}
	if (session_waiting(c->s) == SESSION_WAIT_TLS)
		return;
	n = conn_recv(c, buf, sizeof(buf));
	if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
		if (c->ssl_want_write)
			event_add(c->ev_write, NULL);
		return;
	}
	if (n <= 0) {
		conn_free(c);
		return;
	}
	if (!c->greeted) {
		/* RFC 5321 4.3.1: the client waits for the greeting; this one did not. */
		log_info("event=early-talker session=%" PRIx64 " ip=%s", session_id(c->s), c->ip);
		c->greeted = 1;
		session_refuse(c->s, 554, "5.5.0", "Error: talked before the greeting");
		conn_after(c);
		return;
	}
	session_input(c->s, buf, (size_t)n);
	conn_after(c);
}

static void
on_conn_write(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->tls == CT_HANDSHAKE) {
		if (conn_handshake(c) == -1)
			conn_free(c);
		else
			conn_after(c);
		return;
	}
	if (c->ssl_want_write) {
		on_conn_read(fd, EV_READ, c);
		return;
	}
	conn_after(c);
}

static void
on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->tls == CT_HANDSHAKE || (!c->greeted && c->lst->tls == LTLS_IMPLICIT)) {
		log_info("event=tls-timeout session=%" PRIx64 " ip=%s", session_id(c->s), c->ip);
		conn_free(c);
		return;
	}
	if (!c->greeted) {
		c->greeted = 1;
		session_greet(c->s);
	} else if (session_waiting(c->s) == SESSION_WAIT_CLOSE) {
		conn_free(c);
		return;
	} else
		session_timeout(c->s);
	conn_after(c);
}

static void
refuse_raw(struct worker *w, int fd, const char *why)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "421 4.7.0 %s Error: %s\r\n", w->cfg->hostname, why);

	(void)!send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static int
addr_trusted(const struct config *cfg, const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return config_trusted(cfg, AF_INET,
		    (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr);
	if (ss->ss_family == AF_INET6)
		return config_trusted(cfg, AF_INET6,
		    (const uint8_t *)&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return 0;
}

static void
accept_one(struct listener *li, int fd, struct sockaddr_storage *ss)
{
	struct worker *w = li->w;
	const struct limits_cfg *l = &w->cfg->limits;
	struct conn *c;
	unsigned bucket = 0;
	char ip[INET6_ADDRSTRLEN] = "?";
	enum connlimit_verdict v;

	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)ss)->sin_addr, ip, sizeof(ip));
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof(ip));
	v = connlimit_acquire(w->args->connlimit, w->args->slot, (struct sockaddr *)ss,
	    l->connections, l->connections_per_ip, &bucket);
	if (v != CONNLIMIT_OK) {
		log_info("event=refused ip=%s reason=%s", ip, v == CONNLIMIT_TOTAL ? "connections" : "connections-per-ip");
		refuse_raw(w, fd, v == CONNLIMIT_TOTAL ? "too many connections" :
		    "too many connections from your address");
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL || conn_register(w, c) == -1) {
		free(c);
		connlimit_release(w->args->connlimit, w->args->slot, bucket);
		refuse_raw(w, fd, "out of resources");
		return;
	}
	c->w = w;
	c->fd = fd;
	c->msgfd = -1;
	c->bucket = bucket;
	memcpy(c->ip, ip, sizeof(ip));
	c->s = session_new(w->cfg, &conn_ops, c, ip, w->pid << 32 | w->next_sid++);
	c->ev_read = event_new(w->base, fd, EV_READ | EV_PERSIST, on_conn_read, c);
	c->ev_write = event_new(w->base, fd, EV_WRITE, on_conn_write, c);
	c->ev_timer = evtimer_new(w->base, on_conn_timer, c);
	c->lst = li->cfg;
	c->ss = *ss;
	if (!c->s || !c->ev_read || !c->ev_write || !c->ev_timer)
		log_panic("event=oom where=accept");
	session_set_listener(c->s, li->cfg, addr_trusted(w->cfg, ss));
	log_info("event=connect session=%" PRIx64 " ip=%s listen=%s", session_id(c->s), ip, li->cfg->text);
	if (li->cfg->tls == LTLS_IMPLICIT) {
		/* RFC 8314: TLS first; the greeting comes after the handshake. */
		if (conn_start_tls(c) == -1) {
			conn_free(c);
			return;
		}
	} else if (l->greeting_delay == 0) {
		c->greeted = 1;
		session_greet(c->s);
	}
	conn_after(c);
}

/*
 * Out of descriptors (or kernel memory) the pending connection stays in the
 * backlog and the listening socket stays readable: accepting again at once
 * would spin. Stop listening for a moment instead; sessions that end in
 * the meantime free descriptors.
 */
static void
accept_pause(struct worker *w, int err)
{
	static const struct timeval pause = { 0, ACCEPT_PAUSE_MS * 1000 };
	size_t i;

	if (w->paused)
		return;
	w->paused = 1;
	for (i = 0; i < w->args->nlisten; i++)
		event_del(w->ev_listen[i]);
	log_warn("event=accept-paused error=\"%s\" open_sessions=%u pause_ms=%d",
	    strerror(err), w->live, ACCEPT_PAUSE_MS);
	evtimer_add(w->ev_resume, &pause);
}

/*
 * Every worker listens on the same sockets. Registered as libevent does,
 * a new connection wakes every idle worker and all but one find nothing
 * to accept: at one message at a time the idle worker's wake-ups cost 30-40
 * ms of CPU per 1000 messages, a tenth of tern's. EPOLLEXCLUSIVE wakes one
 * worker that waits (more only when the first is busy), but libevent 2.1
 * cannot ask for it; so each listening socket's entry in libevent's epoll
 * set is replaced by an exclusive one holding what libevent puts there
 * (the descriptor as data, EPOLLIN), after every event_add of the
 * listening events. Without libevent's epoll set (another backend) the
 * entries stay as they are.
 */
static void
listen_exclusive(struct worker *w)
{
	struct epoll_event ev;
	size_t i;
	int fd;

	for (i = 0; w->epfd != -1 && i < w->args->nlisten; i++) {
		fd = w->args->listen_fds[i];
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | EPOLLEXCLUSIVE;
		ev.data.fd = fd;
		if (epoll_ctl(w->epfd, EPOLL_CTL_DEL, fd, NULL) == 0 &&
		    epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
			continue;
		log_warn("event=listen-exclusive-failed error=\"%s\"", strerror(errno));
		ev.events = EPOLLIN;	/* libevent's entry back as it was */
		(void)epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev);
		w->epfd = -1;
	}
}

/*
 * libevent's epoll descriptor: the lowest free one when the base is made
 * (`predicted`), if it is an epoll set; one that is answers ENOENT when
 * asked to drop a descriptor it does not hold (a listening socket, before
 * any event is added). -1 otherwise.
 */
static int
libevent_epoll_fd(int predicted, const struct worker_args *args)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	if (predicted < 0 || args->nlisten == 0 ||
	    epoll_ctl(predicted, EPOLL_CTL_DEL, args->listen_fds[0], &ev) == 0 || errno != ENOENT)
		return -1;
	return predicted;
}

static void
on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	size_t i;

	w->paused = 0;
	if (w->stopping || w->retiring)
		return;
	for (i = 0; i < w->args->nlisten; i++)
		event_add(w->ev_listen[i], NULL);
	listen_exclusive(w);
}

static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct listener *li = arg;
	struct worker *w = li->w;
	int budget = 64;

	while (budget-- > 0 && !w->stopping && !w->retiring) {
		struct sockaddr_storage ss = { 0 };
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				accept_pause(w, errno);
			else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("event=accept-failed error=\"%s\"", strerror(errno));
			return;
		}
		accept_one(li, fd, &ss);
	}
}

/* ---- queue channel ---- */

static void
on_queue(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct worker *w = arg;
	char id[QUEUE_ID_LEN + 1] = "";
	struct conn *c;
	uint32_t err = 0;

	if (m == NULL) {
		log_warn("event=queue-lost");
		event_base_loopbreak(w->base);
		return;
	}
	c = conn_lookup(w, m->reqid);
	switch (m->type) {
	case MSG_Q_OPEN_OK:
		ipc_get_str(m, id, sizeof(id));
		if (ipc_get_end(m) == -1 || m->fd == -1 || c == NULL) {
			file_give_back(w, m->reqid, id);	/* the session is gone */
			if (c)
				session_open_done(c->s, NULL, EIO);
			break;
		}
		c->msgfd = m->fd;
		m->fd = -1;
		session_open_done(c->s, id, 0);
		break;
	case MSG_Q_OPEN_FAIL:
		err = ipc_get_u32(m);
		if (c)
			session_open_done(c->s, NULL, err ? (int)err : EIO);
		break;
	case MSG_Q_COMMIT_OK:
	case MSG_Q_COMMIT_FAIL:
		ipc_get_str(m, id, sizeof(id));
		if (m->type == MSG_Q_COMMIT_FAIL)
			err = ipc_get_u32(m);
		else if (m->fd != -1)
			spare_take(w, m);
		if (w->spare_asked && m->reqid == w->spare_reqid)
			w->spare_asked = 0;
		if (c)
			session_commit_done(c->s, m->type == MSG_Q_COMMIT_OK ? 0 : (err ? (int)err : EIO));
		break;
	default:
		break;
	}
	if (m->fd != -1)
		close(m->fd);
	if (c)
		conn_after(c);
}

/* ---- auth channel ---- */

static void
on_auth_delay(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	session_auth_done(c->s, c->auth_result);
	conn_after(c);
}

static void
on_auth(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct worker *w = arg;
	struct conn *c;
	uint32_t result, delay;

	if (m == NULL) {
		log_warn("event=auth-lost");
		w->auth = NULL;
		ipc_free(ipc);
		return;
	}
	if (m->fd != -1)
		close(m->fd);
	result = ipc_get_u32(m);
	delay = ipc_get_u32(m);
	if (m->type != MSG_A_RESULT || (c = conn_lookup(w, m->reqid)) == NULL)
		return;
	if (ipc_get_end(m) == -1 || result > SESSION_AUTH_TEMPFAIL)
		result = SESSION_AUTH_TEMPFAIL;
	c->auth_result = (enum session_auth)result;
	if (delay > 0) {
		/* A failure is answered late: password guessing gets slow. */
		struct timeval tv = { delay / 1000, (delay % 1000) * 1000 };

		if (c->ev_delay == NULL)
			c->ev_delay = evtimer_new(w->base, on_auth_delay, c);
		evtimer_add(c->ev_delay, &tv);
		return;
	}
	session_auth_done(c->s, c->auth_result);
	conn_after(c);
}

/* ---- check channel ---- */

static void
on_check(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct worker *w = arg;
	struct session_check_answer a;
	char *hdr;
	struct conn *c;
	uint32_t k;

	if (m == NULL) {
		/* Sessions waiting get temperror results; later ones too. */
		log_warn("event=check-lost");
		w->check = NULL;
		ipc_free(ipc);
		for (k = 0; k < w->nconns; k++)
			if ((c = w->conns[k]) != NULL && session_waiting(c->s) == SESSION_WAIT_CHECK) {
				session_check_done(c->s, NULL);
				conn_after(c);
			}
		return;
	}
	if (m->fd != -1)
		close(m->fd);
	if (m->type != MSG_C_RESULT || (c = conn_lookup(w, m->reqid)) == NULL)
		return;
	/* Allocated once: 128 KiB a message is an mmap and munmap at first. */
	if (w->hdrbuf == NULL && (w->hdrbuf = malloc(IPC_MAX_MSG)) == NULL)
		return;
	hdr = w->hdrbuf;
	memset(&a, 0, sizeof(a));
	a.seq = ipc_get_u32(m);
	a.spf = ipc_get_u32(m);
	a.dmarc = ipc_get_u32(m);
	a.disposition = ipc_get_u32(m);
	ipc_get_str(m, hdr, IPC_MAX_MSG);
	a.header = hdr;
	a.len = strlen(hdr);
	session_check_done(c->s, ipc_get_end(m) == 0 ? &a : NULL);
	conn_after(c);
}

/* ---- life cycle ---- */

static void
on_stop_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	log_info("event=stop-deadline open_sessions=%u", w->live);
	event_base_loopbreak(w->base);
}

static void
on_term(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;
	struct timeval tv = { w->cfg->limits.shutdown_wait, 0 };
	size_t i;
	uint32_t k;

	if (w->stopping)
		return;
	w->stopping = 1;
	for (i = 0; i < w->args->nlisten; i++)
		event_del(w->ev_listen[i]);
	for (k = 0; k < w->nconns; k++) {
		struct conn *c = w->conns[k];

		if (c) {
			session_shutdown(c->s);
			conn_after(c);
		}
	}
	if (w->live == 0) {
		event_base_loopbreak(w->base);
		return;
	}
	event_base_once(w->base, -1, EV_TIMEOUT, on_stop_deadline, w, &tv);
}

/* SIGUSR1 after a reload: stop accepting, let every session end by itself. */
static void
on_retire(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;
	size_t i;

	if (w->stopping || w->retiring)
		return;
	w->retiring = 1;
	for (i = 0; i < w->args->nlisten; i++)
		event_del(w->ev_listen[i]);
	log_info("event=retire open_sessions=%u", w->live);
	if (w->live == 0)
		event_base_loopbreak(w->base);
}

/* At exit: the sessions the stop deadline cut off, then everything else,
 * so that a leak checker sees every block freed. */
static void
worker_free(struct worker *w)
{
	uint32_t k;
	size_t i;

	w->stopping = 0;	/* no loopbreak from conn_free: the loop is over */
	w->retiring = 0;
	for (k = 0; k < w->nconns; k++)
		if (w->conns[k] != NULL)
			conn_free(w->conns[k]);
	free(w->conns);
	for (i = 0; i < w->args->nlisten; i++)
		event_free(w->ev_listen[i]);
	free(w->ev_listen);
	free(w->listeners);
	event_free(w->ev_resume);
	free(w->hdrbuf);
	if (w->spare_fd != -1)
		close(w->spare_fd);	/* the queue takes it back when the channel closes */
	while (w->spare_opens) {	/* their events go with the base */
		struct spare_open *so = w->spare_opens;

		w->spare_opens = so->next;
		free(so);
	}
	ipc_free(w->check);
	ipc_free(w->auth);
	ipc_free(w->queue);
	event_base_free(w->base);
}

int
worker_main(const struct worker_args *args)
{
	struct worker w;
	struct event *ev_term, *ev_retire;
	size_t i;
	int lowest;

	memset(&w, 0, sizeof(w));
	w.spare_fd = -1;
	w.args = args;
	w.cfg = args->cfg;
	w.pid = (uint64_t)getpid();
	log_set_proc("smtp");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	/* The lowest free descriptor: the one epoll_create1 gets in event_base_new. */
	if ((lowest = fcntl(args->queue_fd, F_DUPFD_CLOEXEC, 0)) != -1)
		close(lowest);
	if ((w.base = event_base_new()) == NULL)
		log_fatal("event=event-base-failed");
	w.epfd = libevent_epoll_fd(lowest, args);
	if ((w.queue = ipc_new(w.base, args->queue_fd, on_queue, &w)) == NULL)
		log_fatal("event=ipc-failed");
	if (args->auth_fd != -1 && (w.auth = ipc_new(w.base, args->auth_fd, on_auth, &w)) == NULL)
		log_fatal("event=ipc-failed");
	if (args->check_fd != -1 && (w.check = ipc_new(w.base, args->check_fd, on_check, &w)) == NULL)
		log_fatal("event=ipc-failed");
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
	w.ev_listen = calloc(args->nlisten ? args->nlisten : 1, sizeof(*w.ev_listen));
	w.listeners = calloc(args->nlisten ? args->nlisten : 1, sizeof(*w.listeners));
	w.ev_resume = evtimer_new(w.base, on_accept_resume, &w);
	if (!w.ev_listen || !w.listeners || !w.ev_resume)
		log_fatal("event=oom");
	for (i = 0; i < args->nlisten; i++) {
		w.listeners[i] = (struct listener){ &w, &args->cfg->listen[i], args->listen_fds[i] };
		w.ev_listen[i] = event_new(w.base, args->listen_fds[i], EV_READ | EV_PERSIST, on_accept,
		    &w.listeners[i]);
		event_add(w.ev_listen[i], NULL);
	}
	listen_exclusive(&w);
	ev_term = evsignal_new(w.base, SIGTERM, on_term, &w);
	evsignal_add(ev_term, NULL);
	ev_retire = evsignal_new(w.base, SIGUSR1, on_retire, &w);
	evsignal_add(ev_retire, NULL);
	event_base_dispatch(w.base);
	log_info("event=stop open_sessions=%u", w.live);
	exitsig_block();	/* before the signal events are freed */
	event_free(ev_term);
	event_free(ev_retire);
	worker_free(&w);
	return 0;
}
