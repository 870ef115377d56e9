/* mta — outbound SMTP delivery (see mta.h). */
#include "deliver/mta.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/exitsig.h"
#include "common/buf.h"
#include "common/ipc.h"
#include "common/log.h"
#include "common/msgtypes.h"
#include "deliver/signer.h"
#include "dns/mx.h"
#include "dns/unbound.h"
#include "queue/envelope.h"
#include "queue/journal.h"
#include "smtp/client.h"
#include "smtp/reply.h"

#define MTA_RCPT_MAX     CLIENT_MAX_RCPT
#define MTA_CONNECT_TIME 30
#define MTA_OUT_HIGH     (256 * 1024)
#define MTA_CHUNK        (64 * 1024)
#define DNS_TIMEOUT_MS   10000
/* Header fields sent before the queue file (DKIM-Signature...). */
#define MTA_HEAD_MAX     (64 * 1024)
#define RELAY_F_SIGN     4	/* MSG_M_RELAY flag: the sender may get our DKIM signature */
#define MTA_BACKOFF_MAX  3600	/* the back-off of a failing destination grows to this */

struct mta;

/* One message to one destination domain. */
struct job {
	struct job          *next;		/* in the resolver's queue */
	struct mta          *m;
	char                 id[QUEUE_ID_LEN + 1];
	char                 sender[SMTP_PATH_MAX + 1];
	char                 domain[SMTP_DOMAIN_MAX + 1];
	uint64_t             size;
	uint64_t             content_len;	/* of the file; its envelope may follow */
	uint32_t             flags;
	int                  content;
	/* Text sent before the content (our DKIM-Signature fields): counted in
	 * SIZE= and BDAT, dot-stuffed like the content for DATA. */
	struct buf           head;
	int                  head_sent;
	/*
	 * Per recipient, n of each (sized to the request: arrays for
	 * MTA_RCPT_MAX in the job made every job a 550 KB calloc, an mmap
	 * and page faults, most of the mta's CPU).
	 */
	size_t               n;
	uint32_t            *index;
	char               **addr;
	unsigned            *notify;
	char               **orcpt;
	struct client_result *res;
	char                 envid[128];
	int                  dsn_passed;
	int                  reported;	/* the queue has the results already */
	struct job          *wnext;		/* waiting for a connection slot */
	struct dest         *dest;		/* counted against its limit while active */
	struct client_msg    msg;
	int                  tls;		/* 0 none, 1 may, 2 must */
	struct mx_route      route;
	size_t               host, naddr;	/* what we try now */
	char                 last_error[300];
	char                 last_status[16];	/* its enhanced status, "" = 4.4.1 */
	/* the connection */
	int                  fd;
	SSL                 *ssl;
	int                  handshaking;
	struct smtp_client  *cl;
	struct reply_reader  rr;
	struct event        *ev_read, *ev_write, *ev_timer;
	struct buf           out;
	int                  sending_body, body_bol;
	int                  out_secret;	/* out held AUTH credentials */
	uint64_t             body_off;	/* over the prepend, then the content file */
	char                *prepend;	/* header fields the checks added, sent first */
	size_t               prepend_len;
	int                  quitting;
	char                 peer[DNS_NAME_MAX + 64];	/* for logs: name[ip]:port */
	char                 remote[DNS_NAME_MAX + 1];	/* for DSNs: the host's name, or [ip] */
	unsigned             conn_msgs;	/* messages sent on this connection before */
	int                  reused;	/* on a kept connection, before its RSET's 250 */
	int                  attempted;	/* a connection was tried */
	int                  session_ok;	/* a server greeted us and took EHLO/HELO */
	/* DKIM, on the signing thread: its outcome for the log */
	int                  signing;	/* queued there, or back from it unseen */
	int                  sign_rc;
	char                 sign_dom[CONFIG_NAME_MAX + 1];
	char                 sign_why[256];
};

/* A connection kept open between messages to one destination. */
struct idle {
	struct idle         *next;
	struct dest         *dest;
	int                  fd;
	SSL                 *ssl;
	struct smtp_client  *cl;
	struct reply_reader  rr;
	struct event        *ev_read, *ev_timer;
	unsigned             msgs;		/* messages sent on it so far */
	char                 peer[DNS_NAME_MAX + 64];
	char                 remote[DNS_NAME_MAX + 1];
};

/*
 * A destination (a domain, or a configured route shared by its domains),
 * how many of its jobs are active, and its connections kept for reuse.
 */
struct dest {
	struct dest *next;
	char         key[SMTP_DOMAIN_MAX + 16];
	unsigned     active;
	struct idle *idle;
	/* back-off: connections failed this many times in a row */
	unsigned     failures;
	unsigned     backoff;		/* seconds of the last back-off, 0 = none yet */
	time_t       until;		/* no attempt before this (monotonic seconds) */
	char         last_error[300];
};

struct mta {
	const struct config *cfg;
	unsigned             active;
	struct dest         *dests;
	struct job          *wait_head, *wait_tail;
	struct event        *ev_pump;
	struct event_base   *base;
	struct ipc          *queue;
	int                  journal;	/* the queue's relay journal, -1 if none */
	struct signer       *signer;
	SSL_CTX             *tls;		/* none/may/encrypt: nothing checked */
	SSL_CTX             *verify;		/* verify with smtp_tls_ca, or the system's CAs */
	SSL_CTX             *route_verify[CONFIG_MAX_ROUTES];	/* verify with a route's tls_ca */
	/* resolver thread */
	pthread_t            thread;
	pthread_mutex_t      lock;
	pthread_cond_t       cond;
	struct job          *todo, *done;	/* to resolve / resolved or signed */
	/* signing thread: hashing a large message must not stall the loop */
	pthread_t            sign_thread;
	pthread_cond_t       sign_cond;
	struct job          *sign_todo;
	int                  wake[2];	/* the thread writes a byte when something is done */
	struct event        *ev_wake;
	int                  stopping;
};

static void job_next_address(struct job *);
static void job_admit(struct job *);
static void job_io(struct job *);
static void job_route(struct job *);
static void job_ready(struct job *);
static int act(struct job *, enum client_action);
static void on_read(evutil_socket_t, short, void *);
static void on_write(evutil_socket_t, short, void *);

/* ---- results ---- */

/*
 * Each recipient the peer took (2xx) is appended to the queue's journal
 * before the result travels to the queue: a kill of the whole daemon then
 * loses no 250, and the restarted queue does not send those again.
 */
static void
journal_delivered(const struct job *j)
{
	char line[64 * 32];
	size_t i, n = 0, w;

	for (i = 0; i < j->n && j->m->journal != -1; i++) {
		if (j->res[i].code / 100 != 2)
			continue;
		/* "r": the peer did not take the DSN duty over (journal.h). */
		if ((w = journal_format_line(line + n, sizeof(line) - n, j->id, j->index[i],
		    !j->dsn_passed)) == 0)
			break;
		n += w;
		if (sizeof(line) - n < 64) {
			/* One write per batch of lines: O_APPEND keeps them whole. */
			if (write(j->m->journal, line, n) != (ssize_t)n)
				log_warn("event=journal-write-failed id=%s", j->id);
			n = 0;
		}
	}
	if (n > 0 && write(j->m->journal, line, n) != (ssize_t)n)
		log_warn("event=journal-write-failed id=%s", j->id);
}

static void
job_report(struct job *j)
{
	struct buf b;
	size_t i;

	if (j->reported)
		return;
	j->reported = 1;
	for (i = 0; i < j->n; i++)
		log_info("event=%s id=%s to=<%s> relay=%s code=%d status=%s reply=\"%.200s\"",
		    j->res[i].code / 100 == 2 ? "sent" : j->res[i].code / 100 == 4 ? "deferred" : "bounced",
		    j->id, j->addr[i], j->peer[0] ? j->peer : "none", j->res[i].code,
		    j->res[i].enhanced, j->res[i].text);

	buf_init(&b, IPC_MAX_MSG);
	ipc_put_str(&b, j->id);
	ipc_put_u32(&b, (uint32_t)j->dsn_passed);
	ipc_put_u32(&b, (uint32_t)j->n);
	for (i = 0; i < j->n; i++) {
		ipc_put_u32(&b, j->index[i]);
		ipc_put_u32(&b, (uint32_t)j->res[i].code);
		ipc_put_str(&b, j->res[i].enhanced);
		ipc_put_str(&b, j->res[i].text);
		ipc_put_str(&b, j->remote);
	}
	journal_delivered(j);
	if (ipc_send(j->m->queue, MSG_M_RESULT, 0, b.data, b.len, -1) == -1)
		log_warn("event=result-lost id=%s", j->id);
	buf_free(&b);
}

static time_t
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/*
 * A destination whose connections fail relay_backoff_failures times in a
 * row gets no attempt for relay_backoff, then twice that after the next
 * failure, up to an hour; one session that gets past EHLO clears it.
 */
static void
dest_outcome(struct job *j)
{
	struct dest *d = j->dest;
	const struct config *cfg = j->m->cfg;

	if (j->session_ok) {
		if (d->failures >= cfg->relay_backoff_failures)
			log_info("event=dest-recovered dest=\"%s\" failures=%u", d->key, d->failures);
		d->failures = d->backoff = 0;
		d->until = 0;
		return;
	}
	if (!j->attempted)
		return;
	snprintf(d->last_error, sizeof(d->last_error), "%s", j->last_error);
	if (++d->failures < cfg->relay_backoff_failures)
		return;
	d->backoff = d->backoff == 0 ? cfg->relay_backoff :
	    d->backoff >= MTA_BACKOFF_MAX / 2 ? MTA_BACKOFF_MAX : d->backoff * 2;
	if (d->backoff < cfg->relay_backoff)
		d->backoff = cfg->relay_backoff;
	d->until = now_mono() + (time_t)d->backoff;
	log_info("event=dest-backoff dest=\"%s\" failures=%u seconds=%u error=\"%s\"",
	    d->key, d->failures, d->backoff, d->last_error);
}

static void
job_free(struct job *j)
{
	size_t i;

	if (j->dest) {
		dest_outcome(j);
		j->dest->active--;
		j->m->active--;
		event_active(j->m->ev_pump, EV_TIMEOUT, 0);	/* a slot is free */
	}
	if (j->cl)
		smtp_client_free(j->cl);
	if (j->ssl)
		SSL_free(j->ssl);
	if (j->fd != -1)
		close(j->fd);
	if (j->ev_read)
		event_free(j->ev_read);
	if (j->ev_write)
		event_free(j->ev_write);
	if (j->ev_timer)
		event_free(j->ev_timer);
	reply_reader_free(&j->rr);
	buf_free(&j->out);
	buf_free(&j->head);
	for (i = 0; i < j->n; i++) {
		free(j->addr[i]);
		free(j->orcpt[i]);
	}
	free(j->index);
	free(j->addr);
	free(j->notify);
	free(j->orcpt);
	free(j->res);
	close(j->content);
	free(j->prepend);
	free(j);
}

/* Every recipient without a result gets this one; then report and finish. */
static void
job_finish(struct job *j, int code, const char *enh, const char *text)
{
	size_t i;

	for (i = 0; i < j->n; i++)
		if (j->res[i].code == 0 || j->res[i].code == 249) {
			j->res[i].code = code;
			snprintf(j->res[i].enhanced, sizeof(j->res[i].enhanced), "%s", enh);
			snprintf(j->res[i].text, sizeof(j->res[i].text), "%s", text);
		}
	job_report(j);
	job_free(j);
}

/* ---- connections ---- */

static void
conn_close(struct job *j)
{
	if (j->ssl) {
		SSL_free(j->ssl);
		j->ssl = NULL;
	}
	if (j->fd != -1) {
		close(j->fd);
		j->fd = -1;
	}
	event_del(j->ev_read);
	event_del(j->ev_write);
	event_del(j->ev_timer);
	if (j->cl) {
		smtp_client_free(j->cl);
		j->cl = NULL;
	}
	reply_reader_free(&j->rr);
	reply_reader_init(&j->rr);
	buf_reset(&j->out);
	j->sending_body = j->quitting = j->handshaking = 0;
}

/*
 * The connection failed: try the next address, keeping why. With a status
 * (enh not "") it is the server's refusal of the session, reported as it
 * is if no other address does better; else a connection failure, reported
 * with the peer as "4.4.1".
 */
static void
conn_failed_status(struct job *j, const char *why, const char *enh)
{
	if (j->reused) {
		/* A kept connection that died while idle is no failure of the message. */
		log_info("event=reuse-failed id=%s peer=%s error=\"%s\"", j->id, j->peer, why);
		conn_close(j);
		j->reused = 0;
		j->peer[0] = j->remote[0] = '\0';
		job_route(j);
		return;
	}
	if (enh[0])
		snprintf(j->last_error, sizeof(j->last_error), "%s", why);
	else
		snprintf(j->last_error, sizeof(j->last_error), "%s: %s", j->peer, why);
	snprintf(j->last_status, sizeof(j->last_status), "%s", enh);
	log_info("event=connect-failed id=%s peer=%s error=\"%s\"", j->id, j->peer, why);
	conn_close(j);
	job_next_address(j);
}

static void
conn_failed(struct job *j, const char *why)
{
	conn_failed_status(j, why, "");
}

static void
set_timer(struct job *j, unsigned secs)
{
	struct timeval tv = { secs, 0 };

	evtimer_add(j->ev_timer, &tv);
}

static ssize_t
conn_write(struct job *j, const char *p, size_t n)
{
	int r;

	if (j->ssl == NULL)
		return send(j->fd, p, n, MSG_NOSIGNAL);
	ERR_clear_error();
	if ((r = SSL_write(j->ssl, p, (int)(n > INT32_MAX ? INT32_MAX : n))) > 0)
		return r;
	r = SSL_get_error(j->ssl, r);
	errno = (r == SSL_ERROR_WANT_WRITE || r == SSL_ERROR_WANT_READ) ? EAGAIN : EPIPE;
	return -1;
}

static ssize_t
conn_read(struct job *j, char *p, size_t n)
{
	int r;

	if (j->ssl == NULL)
		return recv(j->fd, p, n, 0);
	ERR_clear_error();
	if ((r = SSL_read(j->ssl, p, (int)n)) > 0)
		return r;
	r = SSL_get_error(j->ssl, r);
	if (r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	return r == SSL_ERROR_ZERO_RETURN ? 0 : (errno = ECONNRESET, -1);
}

/* Content for the wire: as it is after BDAT, dot-stuffed for DATA. */
static int
put_content(struct job *j, const char *p, size_t n)
{
	return smtp_client_chunking(j->cl) ? buf_append(&j->out, p, n) :
	    smtp_client_stuff(&j->body_bol, p, n, &j->out);
}

/* Moves the client's commands, then j->head and the content, into our output. */
static int
fill_output(struct job *j)
{
	struct buf *co = smtp_client_output(j->cl);
	char chunk[MTA_CHUNK];

	if (co->len) {
		if (buf_append(&j->out, co->data, co->len) == -1)
			return -1;
		j->out_secret |= smtp_client_output_taken(j->cl);
	}
	if (j->sending_body && !j->head_sent) {
		j->head_sent = 1;
		if (j->head.len && put_content(j, j->head.data, j->head.len) == -1)
			return -1;
	}
	while (j->sending_body && j->out.len < MTA_OUT_HIGH) {
		ssize_t n;

		if (j->body_off < j->prepend_len) {
			n = (ssize_t)(j->prepend_len - j->body_off);
			memcpy(chunk, j->prepend + j->body_off, (size_t)n);
		} else {
			uint64_t at = j->body_off - j->prepend_len;
			uint64_t left = at < j->content_len ? j->content_len - at : 0;

			n = left == 0 ? 0 : pread(j->content, chunk,
			    left < sizeof(chunk) ? (size_t)left : sizeof(chunk), (off_t)at);
			if (n == 0 && left > 0) {
				errno = EIO;	/* the file ends before its content did */
				return -1;
			}
		}

		if (n < 0)
			return -1;
		if (n == 0) {
			if (!smtp_client_chunking(j->cl) && smtp_client_data_end(j->body_bol, &j->out) == -1)
				return -1;
			j->sending_body = 0;
			smtp_client_body_sent(j->cl);
			break;
		}
		j->body_off += (uint64_t)n;
		if (put_content(j, chunk, (size_t)n) == -1)
			return -1;
	}
	return 0;
}

static int
flush_output(struct job *j)
{
	if (fill_output(j) == -1)
		return -1;
	while (j->out.len) {
		ssize_t n = conn_write(j, j->out.data, j->out.len);

		if (n < 0 && errno == EAGAIN) {
			event_add(j->ev_write, NULL);
			return 0;
		}
		if (n <= 0)
			return -1;
		buf_consume(&j->out, (size_t)n);
		if (j->out.len == 0 && j->out_secret) {
			/* AUTH credentials sent: no copy stays behind in our memory. */
			explicit_bzero(j->out.data, j->out.cap);
			j->out_secret = 0;
		}
		if (j->sending_body && fill_output(j) == -1)
			return -1;
	}
	return 0;
}

/* tls verify: the context with the right CAs, NULL if it could not be made. */
static SSL_CTX *
verify_ctx(struct job *j)
{
	const struct route_cfg *rt = config_find_route(j->m->cfg, j->domain);

	if (rt && rt->tls_ca_pem)
		return j->m->route_verify[rt - j->m->cfg->routes];
	return j->m->verify;
}

/*
 * tls verify: the chain must lead to a trusted CA and the certificate
 * must name the host we looked up (RFC 6125), or its address for a route
 * given as an address.
 */
static int
set_verify(struct job *j, const char *host)
{
	char ip[INET6_ADDRSTRLEN];
	size_t n;

	SSL_set_verify(j->ssl, SSL_VERIFY_PEER, NULL);
	if (host[0])
		return SSL_set1_host(j->ssl, host) == 1 ? 0 : -1;
	n = strlen(j->remote);
	if (n < 3 || n - 2 >= sizeof(ip))
		return -1;
	memcpy(ip, j->remote + 1, n - 2);	/* "[ip]" */
	ip[n - 2] = '\0';
	return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(j->ssl), ip) == 1 ? 0 : -1;
}

static int
start_tls(struct job *j)
{
	const char *host = j->route.hosts[j->host].name;
	SSL_CTX *ctx = j->tls == 3 ? verify_ctx(j) : j->m->tls;

	if (ctx == NULL || (j->ssl = SSL_new(ctx)) == NULL || SSL_set_fd(j->ssl, j->fd) != 1 ||
	    (j->tls == 3 && set_verify(j, host) == -1)) {
		conn_failed(j, "cannot start TLS");
		return 0;
	}
	if (host[0] && host[0] != '[')
		SSL_set_tlsext_host_name(j->ssl, host);
	SSL_set_connect_state(j->ssl);
	j->handshaking = 1;
	return 1;
}

/* ---- connections kept between messages ---- */

static void
idle_free(struct idle *c, int quit)
{
	struct idle **pp;

	for (pp = &c->dest->idle; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	/* RFC 5321 4.1.1.10, best effort: nothing waits for the reply. */
	if (quit && c->ssl)
		(void)SSL_write(c->ssl, "QUIT\r\n", 6);
	else if (quit)
		(void)send(c->fd, "QUIT\r\n", 6, MSG_NOSIGNAL);
	event_free(c->ev_read);
	event_free(c->ev_timer);
	smtp_client_free(c->cl);
	if (c->ssl)
		SSL_free(c->ssl);
	close(c->fd);
	reply_reader_free(&c->rr);
	free(c);
}

static void
on_idle_timer(evutil_socket_t fd, short what, void *arg)
{
	struct idle *c = arg;

	log_info("event=conn-closed peer=%s messages=%u reason=idle", c->peer, c->msgs);
	idle_free(c, 1);
}

/* The server spoke or hung up between messages: that connection is done. */
static void
on_idle_read(evutil_socket_t fd, short what, void *arg)
{
	struct idle *c = arg;
	char b[512];
	int r;

	if (c->ssl) {
		ERR_clear_error();
		r = SSL_read(c->ssl, b, sizeof(b));
		if (r <= 0 && SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ)
			return;	/* a TLS 1.3 session ticket, say */
	} else if ((r = (int)recv(fd, b, sizeof(b), 0)) < 0 && errno == EAGAIN)
		return;
	log_info("event=conn-closed peer=%s messages=%u reason=%s", c->peer, c->msgs,
	    r > 0 ? "unexpected-data" : "closed-by-server");
	idle_free(c, 0);
}

/*
 * After a message, keeps j's connection for the next message to the same
 * destination (the job itself is done). 0 if it cannot be kept: the
 * session is not cleanly between messages, or it carried enough.
 */
static int
conn_park(struct job *j)
{
	struct idle *c;
	struct timeval tv = { j->m->cfg->relay_reuse_idle, 0 };

	if (j->cl == NULL || j->dest == NULL || j->handshaking || j->out.len ||
	    !smtp_client_idle(j->cl) || j->conn_msgs >= j->m->cfg->relay_reuse_messages)
		return 0;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return 0;
	c->ev_read = event_new(j->m->base, j->fd, EV_READ | EV_PERSIST, on_idle_read, c);
	c->ev_timer = evtimer_new(j->m->base, on_idle_timer, c);
	if (c->ev_read == NULL || c->ev_timer == NULL) {
		if (c->ev_read)
			event_free(c->ev_read);
		free(c);
		return 0;
	}
	event_del(j->ev_read);
	event_del(j->ev_write);
	event_del(j->ev_timer);
	c->dest = j->dest;
	c->fd = j->fd;
	c->ssl = j->ssl;
	c->cl = j->cl;
	c->rr = j->rr;
	c->msgs = j->conn_msgs;
	snprintf(c->peer, sizeof(c->peer), "%s", j->peer);
	snprintf(c->remote, sizeof(c->remote), "%s", j->remote);
	j->fd = -1;
	j->ssl = NULL;
	j->cl = NULL;
	reply_reader_init(&j->rr);
	c->next = c->dest->idle;
	c->dest->idle = c;
	event_add(c->ev_read, NULL);
	evtimer_add(c->ev_timer, &tv);
	return 1;
}

/* Starts j on a kept connection to its destination, if there is one. */
static int
conn_adopt(struct job *j)
{
	struct idle *c = j->dest->idle;

	if (c == NULL)
		return 0;
	j->dest->idle = c->next;
	event_free(c->ev_read);
	event_free(c->ev_timer);
	j->fd = c->fd;
	j->ssl = c->ssl;
	j->cl = c->cl;
	reply_reader_free(&j->rr);
	j->rr = c->rr;
	j->conn_msgs = c->msgs;
	snprintf(j->peer, sizeof(j->peer), "%s", c->peer);
	snprintf(j->remote, sizeof(j->remote), "%s", c->remote);
	free(c);
	j->reused = 1;
	log_info("event=conn-reused id=%s peer=%s messages=%u", j->id, j->peer, j->conn_msgs);
	event_assign(j->ev_read, j->m->base, j->fd, EV_READ | EV_PERSIST, on_read, j);
	event_assign(j->ev_write, j->m->base, j->fd, EV_WRITE, on_write, j);
	event_add(j->ev_read, NULL);
	(void)act(j, smtp_client_reuse(j->cl));
	return 1;
}

/*
 * What the client state machine wants next. Returns 1 if j goes on reading
 * this connection, 0 if it must not touch it again (j may be gone).
 */
static int
act(struct job *j, enum client_action a)
{
	for (;;) {
		switch (a) {
		case CLIENT_WAIT:
			break;
		case CLIENT_START_TLS:
			if (flush_output(j) == -1) {
				conn_failed(j, "write failed");
				return 0;
			}
			if (start_tls(j))
				job_io(j);
			return 0;
		case CLIENT_SEND_BODY:
			j->sending_body = 1;
			j->head_sent = 0;
			j->body_off = 0;
			j->body_bol = 1;
			break;
		case CLIENT_IDLE:
			j->reused = 0;
			j->session_ok = 1;
			a = smtp_client_send(j->cl, &j->msg, j->res);
			continue;
		case CLIENT_MSG_DONE:
			j->dsn_passed = smtp_client_dsn_passed(j->cl);
			if (smtp_client_error(j->cl)[0] && j->res[0].code / 100 == 4 &&
			    j->host + 1 < j->route.n) {
				/* The host as a whole failed: another MX may do better. */
				conn_failed(j, smtp_client_error(j->cl));
				return 0;
			}
			if (!j->quitting) {
				/*
				 * Tell the queue now, not after QUIT: the shorter the time
				 * between the peer's 250 and our record of it, the fewer
				 * duplicates a crash makes.
				 */
				job_report(j);
				j->conn_msgs++;
				if (conn_park(j)) {
					job_free(j);
					return 0;
				}
				j->quitting = 1;
				a = smtp_client_quit(j->cl);
				continue;
			}
			break;
		case CLIENT_CLOSED: {
			char why[512], enh[16];

			snprintf(why, sizeof(why), "%s", smtp_client_error(j->cl)[0] ?
			    smtp_client_error(j->cl) : j->last_error[0] ? j->last_error : "connection closed");
			snprintf(enh, sizeof(enh), "%s", smtp_client_error_status(j->cl));
			if (j->reused) {
				conn_failed(j, why);
				return 0;
			}
			if (!j->session_ok && !j->quitting) {
				/*
				 * RFC 5321 5.1: a host that refuses the session (a 421
				 * greeting, no TLS where it is required...) is like one
				 * that cannot be reached: on to the next address or MX.
				 */
				conn_failed_status(j, why, enh);
				return 0;
			}
			if (smtp_client_error(j->cl)[0])
				snprintf(j->last_error, sizeof(j->last_error), "%s: %s", j->peer,
				    smtp_client_error(j->cl));
			conn_close(j);
			job_finish(j, 451, enh, why);
			return 0;
		}
		}
		break;
	}
	if (flush_output(j) == -1) {
		conn_failed(j, "write failed");
		return 0;
	}
	set_timer(j, smtp_client_timeout(j->cl));
	return 1;
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;
	char buf[16384];
	ssize_t n;

	if (j->handshaking) {
		job_io(j);
		return;
	}
	for (;;) {
		size_t off = 0, used;

		n = conn_read(j, buf, sizeof(buf));
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			if (j->quitting) {
				conn_close(j);
				job_finish(j, 451, "4.4.2", "connection closed");
				return;
			}
			smtp_client_fail(j->cl, "connection closed by the server");
			conn_failed(j, "connection closed by the server");
			return;
		}
		while (off < (size_t)n) {
			static struct smtp_reply r;
			enum reply_status st = reply_feed(&j->rr, buf + off, (size_t)n - off, &used, &r);

			off += used;
			if (st == REPLY_ERROR) {
				smtp_client_fail(j->cl, j->rr.why);
				conn_failed(j, j->rr.why);
				return;
			}
			if (st != REPLY_DONE)
				break;
			if (!act(j, smtp_client_reply(j->cl, &r)))
				return;	/* finished, failed over, or TLS starts */
		}
	}
}

/* Handshake steps and the connect completion. */
static void
job_io(struct job *j)
{
	int r;

	if (!j->handshaking)
		return;
	ERR_clear_error();
	if ((r = SSL_connect(j->ssl)) == 1) {
		j->handshaking = 0;
		log_info("event=tls id=%s peer=%s version=%s cipher=%s", j->id, j->peer,
		    SSL_get_version(j->ssl), SSL_get_cipher_name(j->ssl));
		(void)act(j, smtp_client_tls_done(j->cl));
		return;
	}
	r = SSL_get_error(j->ssl, r);
	if (r == SSL_ERROR_WANT_READ)
		event_add(j->ev_read, NULL);
	else if (r == SSL_ERROR_WANT_WRITE)
		event_add(j->ev_write, NULL);
	else if (SSL_get_verify_result(j->ssl) != X509_V_OK) {
		char why[300];

		snprintf(why, sizeof(why), "TLS certificate verification failed: %s",
		    X509_verify_cert_error_string(SSL_get_verify_result(j->ssl)));
		smtp_client_fail(j->cl, why);
		conn_failed(j, why);
	} else {
		smtp_client_fail(j->cl, "TLS handshake failed");
		conn_failed(j, "TLS handshake failed");
	}
}

static void
on_write(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;

	if (j->handshaking) {
		job_io(j);
		return;
	}
	if (j->cl == NULL) {
		/* the non-blocking connect finished */
		int err = 0;
		socklen_t l = sizeof(err);

		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) == -1 || err) {
			conn_failed(j, strerror(err ? err : errno));
			return;
		}
		j->cl = smtp_client_new(j->m->cfg->hostname, j->tls >= 2 ? CLIENT_TLS_MUST :
		    (enum client_tls)j->tls);
		{
			const struct route_cfg *rt = config_find_route(j->m->cfg, j->domain);

			if (j->cl && rt && rt->auth_user[0])
				smtp_client_set_auth(j->cl, rt->auth_user, rt->auth_pass,
				    rt->auth_without_tls);
		}
		event_add(j->ev_read, NULL);
		set_timer(j, 300);	/* RFC 5321 4.5.3.2.1: the greeting */
		return;
	}
	if (flush_output(j) == -1)
		conn_failed(j, "write failed");
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;

	if (j->cl)
		smtp_client_fail(j->cl, "timeout");
	conn_failed(j, j->cl ? "timeout waiting for the server" : "connect timeout");
}

/* Connects to the next address of the route, or gives up with the last error. */
static void
job_next_address(struct job *j)
{
	const struct route_cfg *rt = config_find_route(j->m->cfg, j->domain);

	while (j->host < j->route.n) {
		struct mx_host *h = &j->route.hosts[j->host];

		if (j->naddr < h->naddrs) {
			struct mx_addr *a = &h->addrs[j->naddr++];
			struct sockaddr_storage ss;
			socklen_t sl;
			char ip[INET6_ADDRSTRLEN];
			uint16_t port = 25;

			memset(&ss, 0, sizeof(ss));
			if (rt)
				port = rt->port;
			if (a->family == AF_INET) {
				struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

				s4->sin_family = AF_INET;
				s4->sin_port = htons(port);
				memcpy(&s4->sin_addr, a->addr, 4);
				sl = sizeof(*s4);
			} else {
				struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

				s6->sin6_family = AF_INET6;
				s6->sin6_port = htons(port);
				memcpy(&s6->sin6_addr, a->addr, 16);
				sl = sizeof(*s6);
			}
			inet_ntop(a->family, a->addr, ip, sizeof(ip));
			snprintf(j->peer, sizeof(j->peer), "%s[%s]:%u", h->name, ip, port);
			if (h->name[0])
				snprintf(j->remote, sizeof(j->remote), "%s", h->name);
			else
				snprintf(j->remote, sizeof(j->remote), "[%s]", ip);
			j->attempted = 1;
			j->fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (j->fd == -1 || (connect(j->fd, (struct sockaddr *)&ss, sl) == -1 &&
			    errno != EINPROGRESS)) {
				conn_failed(j, strerror(errno));
				return;
			}
			event_assign(j->ev_read, j->m->base, j->fd, EV_READ | EV_PERSIST, on_read, j);
			event_assign(j->ev_write, j->m->base, j->fd, EV_WRITE, on_write, j);
			event_add(j->ev_write, NULL);
			set_timer(j, MTA_CONNECT_TIME);
			return;
		}
		j->host++;
		j->naddr = 0;
	}
	job_finish(j, 451, j->last_status[0] ? j->last_status : "4.4.1",
	    j->last_error[0] ? j->last_error : "no host could be reached");
}

/* ---- routes: a configured one, else MX on the resolver thread ---- */

static void
route_ready(struct job *j)
{
	if (j->route.status != MX_OK) {
		char enh[16];
		int code = mx_status_code(j->route.status);

		snprintf(enh, sizeof(enh), "%s", mx_status_enhanced(j->route.status));
		if (config_find_route(j->m->cfg, j->domain)) {
			/* A configured relay host that does not resolve is ours to fix: defer. */
			code = 451;
			enh[0] = '4';
		}
		job_finish(j, code, enh, j->route.why);
		return;
	}
	job_next_address(j);
}

static void *
resolver_thread(void *arg)
{
	struct mta *m = arg;
	struct dns_unbound *u;
	struct dns_resolver r;
	const char *self[2] = { m->cfg->hostname, NULL };
	char err[256];

	u = dns_unbound_new(m->cfg->dns_server, DNS_TIMEOUT_MS, err, sizeof(err));
	if (u == NULL)
		log_warn("event=resolver-failed error=\"%s\"", err);
	pthread_mutex_lock(&m->lock);
	for (;;) {
		struct job *j;

		while (m->todo == NULL && !m->stopping)
			pthread_cond_wait(&m->cond, &m->lock);
		if (m->stopping)
			break;
		j = m->todo;
		m->todo = j->next;
		pthread_mutex_unlock(&m->lock);
		if (u == NULL) {
			j->route.status = MX_TEMPFAIL;
			snprintf(j->route.why, sizeof(j->route.why), "no DNS resolver: %s", err);
		} else {
			const struct route_cfg *rt = config_find_route(m->cfg, j->domain);
			int rc;

			r = dns_unbound_resolver(u);
			if (rt && rt->kind == ROUTE_HOST)
				rc = mx_resolve_host(&r, rt->host, NULL, &j->route);
			else
				rc = mx_resolve(&r, rt ? rt->host : j->domain, self, NULL, &j->route);
			if (rc == -1) {
				j->route.status = MX_TEMPFAIL;
				snprintf(j->route.why, sizeof(j->route.why), "out of memory");
			}
		}
		pthread_mutex_lock(&m->lock);
		j->next = m->done;
		m->done = j;
		(void)!write(m->wake[1], "x", 1);
	}
	pthread_mutex_unlock(&m->lock);
	dns_unbound_free(u);
	return NULL;
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct mta *m = arg;
	char b[64];
	struct job *j;

	while (read(fd, b, sizeof(b)) > 0)
		;
	pthread_mutex_lock(&m->lock);
	j = m->done;
	m->done = NULL;
	pthread_mutex_unlock(&m->lock);
	while (j) {
		struct job *next = j->next;

		if (j->signing)
			job_ready(j);
		else
			route_ready(j);
		j = next;
	}
}

static void
job_route(struct job *j)
{
	struct mta *m = j->m;
	const struct route_cfg *rt = config_find_route(m->cfg, j->domain);

	j->tls = rt && rt->tls >= 0 ? rt->tls : m->cfg->smtp_tls;
	if (rt && rt->kind == ROUTE_ADDR) {
		struct mx_host *h = &j->route.hosts[0];

		j->route.status = MX_OK;
		j->route.n = 1;
		h->name[0] = '\0';	/* an address: no name to check or to send as SNI */
		h->naddrs = 1;
		h->addrs[0].family = rt->ss.ss_family;
		memcpy(h->addrs[0].addr, rt->ss.ss_family == AF_INET ?
		    (const void *)&((const struct sockaddr_in *)&rt->ss)->sin_addr :
		    (const void *)&((const struct sockaddr_in6 *)&rt->ss)->sin6_addr,
		    rt->ss.ss_family == AF_INET ? 4 : 16);
		route_ready(j);
		return;
	}
	pthread_mutex_lock(&m->lock);
	j->next = m->todo;
	m->todo = j;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

/* ---- the queue's requests ---- */

/*
 * The signing thread: DKIM hashes the whole message (signer.h), which for
 * a large one takes long enough to stall every connection if done in the
 * event loop. A job waits here before admission; it comes back through
 * the resolver's wake pipe with j->head filled (or not).
 */
static void *
signing_thread(void *arg)
{
	struct mta *m = arg;

	pthread_mutex_lock(&m->lock);
	for (;;) {
		struct job *j;

		while (m->sign_todo == NULL && !m->stopping)
			pthread_cond_wait(&m->sign_cond, &m->lock);
		if (m->stopping)
			break;
		j = m->sign_todo;
		m->sign_todo = j->next;
		pthread_mutex_unlock(&m->lock);
		/* Only this thread touches j (and the signer) until it is handed back. */
		j->sign_rc = signer_sign(m->signer, j->content, j->content_len, &j->head, j->sign_dom,
		    sizeof(j->sign_dom), j->sign_why, sizeof(j->sign_why));
		pthread_mutex_lock(&m->lock);
		j->next = m->done;
		m->done = j;
		(void)!write(m->wake[1], "x", 1);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* DKIM-signs j's message into j->head when the queue allows it; else on at once. */
static void
job_sign(struct job *j)
{
	struct mta *m = j->m;

	if (!(j->flags & RELAY_F_SIGN) || !signer_active(m->signer)) {
		job_ready(j);
		return;
	}
	j->signing = 1;
	pthread_mutex_lock(&m->lock);
	j->next = NULL;
	if (m->sign_todo == NULL)
		m->sign_todo = j;
	else {
		struct job *t = m->sign_todo;	/* first come, first signed */

		while (t->next)
			t = t->next;
		t->next = j;
	}
	pthread_cond_signal(&m->sign_cond);
	pthread_mutex_unlock(&m->lock);
}

/* Signed (or not to be): the message as it will go out, then admission. */
static void
job_ready(struct job *j)
{
	if (j->signing) {
		j->signing = 0;
		if (j->sign_rc == 1)
			log_info("event=dkim-signed id=%s domain=%s", j->id, j->sign_dom);
		else if (j->sign_rc == -1)
			log_warn("event=dkim-sign-failed id=%s domain=%s error=\"%s\" "
			    "note=\"sent unsigned\"", j->id, j->sign_dom, j->sign_why);
	}
	j->size += j->head.len;
	j->msg.sender = j->sender;
	j->msg.rcpts = (const char *const *)j->addr;
	j->msg.nrcpts = j->n;
	j->msg.size = j->size;
	j->msg.body_8bit = (j->flags & 1) != 0;
	j->msg.smtputf8 = (j->flags & 2) != 0;
	j->msg.envid = j->envid;
	j->msg.notify = j->notify;
	j->msg.orcpt = (const char *const *)j->orcpt;
	job_admit(j);
}

static int
rcpts_alloc(struct job *j, size_t n)
{
	j->index = calloc(n, sizeof(*j->index));
	j->addr = calloc(n, sizeof(*j->addr));
	j->notify = calloc(n, sizeof(*j->notify));
	j->orcpt = calloc(n, sizeof(*j->orcpt));
	j->res = calloc(n, sizeof(*j->res));
	return j->index && j->addr && j->notify && j->orcpt && j->res ? 0 : -1;
}

static void
on_relay(struct mta *m, struct ipc_msg *msg)
{
	struct job *j = calloc(1, sizeof(*j));
	uint32_t n, i;

	if (j == NULL || msg->fd == -1) {
		free(j);
		return;
	}
	j->m = m;
	j->fd = -1;
	j->content = msg->fd;
	msg->fd = -1;
	reply_reader_init(&j->rr);
	buf_init(&j->out, MTA_OUT_HIGH + MTA_CHUNK * 2 + MTA_HEAD_MAX * 2 + 1024);
	buf_init(&j->head, MTA_HEAD_MAX);
	ipc_get_str(msg, j->id, sizeof(j->id));
	ipc_get_str(msg, j->sender, sizeof(j->sender));
	ipc_get_str(msg, j->domain, sizeof(j->domain));
	j->size = ipc_get_u64(msg);
	j->flags = ipc_get_u32(msg);
	j->msg.ret = (int)ipc_get_u32(msg);
	ipc_get_str(msg, j->envid, sizeof(j->envid));
	n = ipc_get_u32(msg);
	if (n == 0 || n > MTA_RCPT_MAX || rcpts_alloc(j, n) == -1)
		msg->bad = 1;
	for (i = 0; i < n && !msg->bad; i++) {
		char a[SMTP_PATH_MAX + 1], o[512];

		j->index[i] = ipc_get_u32(msg);
		ipc_get_str(msg, a, sizeof(a));
		j->notify[i] = ipc_get_u32(msg);
		ipc_get_str(msg, o, sizeof(o));
		if ((j->addr[i] = strdup(a)) == NULL || (j->orcpt[i] = strdup(o)) == NULL)
			msg->bad = 1;
		j->n = i + 1;
	}
	if ((j->prepend = ipc_get_strdup(msg, ENVELOPE_PREPEND_MAX)) == NULL)
		msg->bad = 1;
	else
		j->prepend_len = strlen(j->prepend);
	j->content_len = ipc_get_u64(msg);
	j->ev_read = event_new(m->base, -1, 0, on_read, j);
	j->ev_write = event_new(m->base, -1, 0, on_write, j);
	j->ev_timer = evtimer_new(m->base, on_timer, j);
	if (ipc_get_end(msg) == -1 || n == 0 || n > MTA_RCPT_MAX || !j->ev_timer || j->content_len == 0) {
		log_warn("event=bad-relay-request id=%s", j->id);
		job_finish(j, 451, "4.3.0", "malformed relay request");
		return;
	}
	/* What goes out is the prepend, then the queue file's content (our
	 * Received header included): SIZE= and BDAT count both. */
	j->size = j->content_len + j->prepend_len;
	job_sign(j);
}

/* Domains sent through one route are one destination; else each domain is. */
static struct dest *
dest_of(struct mta *m, const char *domain)
{
	const struct route_cfg *rt = config_find_route(m->cfg, domain);
	char key[sizeof(((struct dest *)NULL)->key)];
	struct dest *d;

	if (rt)
		snprintf(key, sizeof(key), "route %s", rt->domain);
	else
		snprintf(key, sizeof(key), "%s", domain);
	for (d = m->dests; d; d = d->next)
		if (strcasecmp(d->key, key) == 0)
			return d;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	snprintf(d->key, sizeof(d->key), "%s", key);
	d->next = m->dests;
	m->dests = d;
	return d;
}

/* Starts j if the limits allow, else it waits its turn (first come, first served). */
static int
job_try_start(struct job *j)
{
	struct mta *m = j->m;
	struct dest *d = dest_of(m, j->domain);

	if (d && d->until && now_mono() < d->until) {
		char why[512];

		/* Deferred without a connection: the queue's retry comes back later. */
		snprintf(why, sizeof(why), "destination backed off for %us after %u failures "
		    "in a row; last error: %s", d->backoff, d->failures, d->last_error);
		log_info("event=backed-off id=%s dest=\"%s\" failures=%u", j->id, d->key, d->failures);
		job_finish(j, 451, "4.4.1", why);
		return 1;
	}
	if (d == NULL || m->active >= m->cfg->relay_concurrency ||
	    d->active >= m->cfg->relay_destination_concurrency)
		return 0;
	d->active++;
	m->active++;
	j->dest = d;
	if (!conn_adopt(j))
		job_route(j);
	return 1;
}

static void
job_admit(struct job *j)
{
	struct mta *m = j->m;

	if (m->wait_head == NULL && job_try_start(j))
		return;
	j->wnext = NULL;
	if (m->wait_tail)
		m->wait_tail->wnext = j;
	else
		m->wait_head = j;
	m->wait_tail = j;
}

/* Slots came free: start what waits and now fits, keeping the order. */
static void
on_pump(evutil_socket_t fd, short what, void *arg)
{
	struct mta *m = arg;
	struct job **pp = &m->wait_head, *j;

	m->wait_tail = NULL;
	while ((j = *pp) != NULL) {
		if (m->active >= m->cfg->relay_concurrency)
			break;
		*pp = j->wnext;
		if (!job_try_start(j)) {
			j->wnext = *pp;
			*pp = j;
			pp = &j->wnext;
		}
	}
	for (j = m->wait_head; j; j = j->wnext)
		m->wait_tail = j;
}

static void
on_queue(struct ipc *ipc, struct ipc_msg *msg, void *arg)
{
	struct mta *m = arg;

	if (msg == NULL) {
		event_base_loopbreak(m->base);
		return;
	}
	if (msg->type == MSG_M_RELAY)
		on_relay(m, msg);
	if (msg->type == MSG_M_JOURNAL && msg->fd != -1) {
		if (m->journal != -1)
			close(m->journal);
		m->journal = msg->fd;
		msg->fd = -1;
	}
	if (msg->fd != -1)
		close(msg->fd);
}

static void
on_term(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* A context that verifies against the PEM certificates of pem[0..len), or the system's CAs. */
static SSL_CTX *
new_verify_ctx(const char *pem, size_t len, const char *name)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	int ok = 1, n = 0;

	if (c == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	if (pem == NULL)
		ok = SSL_CTX_set_default_verify_paths(c) == 1;
	else {
		BIO *b = BIO_new_mem_buf(pem, (int)len);
		X509 *x;

		while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
			ok = ok && X509_STORE_add_cert(SSL_CTX_get_cert_store(c), x) == 1;
			X509_free(x);
			n++;
		}
		BIO_free(b);
		ERR_clear_error();
		ok = ok && n > 0;
	}
	if (!ok) {
		log_warn("event=tls-ca-failed file=\"%s\"", name);
		SSL_CTX_free(c);
		return NULL;	/* then verify fails: "cannot start TLS" */
	}
	return c;
}

/* The contexts for `tls verify`, made once: CA files are read at start. */
static void
make_verify_ctxs(struct mta *m)
{
	size_t i;
	int need = m->cfg->smtp_tls == 3;

	/* The default context (the system's CA store is large) only when some
	 * destination is verified without a tls_ca of its own. */
	for (i = 0; i < m->cfg->nroutes; i++)
		if (m->cfg->routes[i].tls == 3 && !m->cfg->routes[i].tls_ca_pem)
			need = 1;
	if (need)
		m->verify = new_verify_ctx(m->cfg->smtp_tls_ca_pem, m->cfg->smtp_tls_ca_len,
		    m->cfg->smtp_tls_ca ? m->cfg->smtp_tls_ca : "(system)");
	for (i = 0; i < m->cfg->nroutes; i++)
		if (m->cfg->routes[i].tls_ca_pem)
			m->route_verify[i] = new_verify_ctx(m->cfg->routes[i].tls_ca_pem,
			    m->cfg->routes[i].tls_ca_len, m->cfg->routes[i].tls_ca);
}

/* ---- exit ---- */

/* Jobs still in progress at exit, each once. */
struct job_set {
	struct job **v;
	size_t       n, cap;
};

static void
job_set_add(struct job_set *s, struct job *j)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->v[i] == j)
			return;
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 64;
		/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
		struct job **p = realloc(s->v, nc * sizeof(*p));

		if (p == NULL)
			return;	/* exiting anyway: that job stays unfreed */
		s->v = p;
		s->cap = nc;
	}
	s->v[s->n++] = j;
}

/* A job on a connection is reachable only through its pending events. */
static int
collect_job_event(const struct event_base *base, const struct event *ev, void *arg)
{
	event_callback_fn cb = event_get_callback(ev);

	if (cb == on_read || cb == on_write || cb == on_timer)
		job_set_add(arg, event_get_callback_arg(ev));
	return 0;
}

/*
 * At exit (SIGTERM, or the queue gone), after the resolver thread ended:
 * the jobs in progress are dropped without a result (the queue tries those
 * recipients again) and freed, so that a leak checker sees every block freed.
 */
static void
jobs_free(struct mta *m)
{
	struct job_set s = { NULL, 0, 0 };
	struct job *j;
	size_t i;

	for (j = m->wait_head; j; j = j->wnext)
		job_set_add(&s, j);
	for (j = m->todo; j; j = j->next)
		job_set_add(&s, j);
	for (j = m->done; j; j = j->next)
		job_set_add(&s, j);
	event_base_foreach_event(m->base, collect_job_event, &s);
	m->wait_head = m->wait_tail = m->todo = m->done = NULL;
	for (i = 0; i < s.n; i++) {
		/* Cut short by us: no back-off counted against the destination. */
		s.v[i]->attempted = 0;
		s.v[i]->session_ok = 0;
		job_free(s.v[i]);
	}
	free(s.v);
}

int
mta_main(const struct config *cfg, struct signer *signer, int queue_fd)
{
	struct mta m;
	struct event *ev;

	log_set_proc("mta");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	memset(&m, 0, sizeof(m));
	m.cfg = cfg;
	m.journal = -1;
	m.signer = signer;
	if ((m.base = event_base_new()) == NULL || pipe2(m.wake, O_NONBLOCK | O_CLOEXEC) == -1)
		log_fatal("event=mta-init-failed");
	/* Opportunistic TLS verifies nothing (RFC 7435); MTA-STS/DANE would. */
	if ((m.tls = SSL_CTX_new(TLS_client_method())) == NULL)
		log_fatal("event=mta-tls-failed");
	SSL_CTX_set_min_proto_version(m.tls, TLS1_2_VERSION);
	SSL_CTX_set_verify(m.tls, SSL_VERIFY_NONE, NULL);
	make_verify_ctxs(&m);
	pthread_mutex_init(&m.lock, NULL);
	pthread_cond_init(&m.cond, NULL);
	pthread_cond_init(&m.sign_cond, NULL);
	if (pthread_create(&m.thread, NULL, resolver_thread, &m) != 0 ||
	    pthread_create(&m.sign_thread, NULL, signing_thread, &m) != 0)
		log_fatal("event=mta-thread-failed");
	m.ev_pump = event_new(m.base, -1, 0, on_pump, &m);
	m.ev_wake = event_new(m.base, m.wake[0], EV_READ | EV_PERSIST, on_wake, &m);
	event_add(m.ev_wake, NULL);
	if ((m.queue = ipc_new(m.base, queue_fd, on_queue, &m)) == NULL)
		log_fatal("event=ipc-failed");
	ev = evsignal_new(m.base, SIGTERM, on_term, m.base);
	evsignal_add(ev, NULL);
	event_base_dispatch(m.base);
	pthread_mutex_lock(&m.lock);
	m.stopping = 1;
	pthread_cond_signal(&m.cond);
	pthread_cond_signal(&m.sign_cond);
	pthread_mutex_unlock(&m.lock);
	pthread_join(m.thread, NULL);
	pthread_join(m.sign_thread, NULL);
	jobs_free(&m);
	event_free(m.ev_pump);
	signer_free(m.signer);
	for (size_t i = 0; i < CONFIG_MAX_ROUTES; i++)
		SSL_CTX_free(m.route_verify[i]);
	SSL_CTX_free(m.verify);
	while (m.dests) {
		struct dest *d = m.dests;

		while (d->idle)
			idle_free(d->idle, 1);
		m.dests = d->next;
		free(d);
	}
	if (m.journal != -1)
		close(m.journal);
	log_info("event=stop");
	SSL_CTX_free(m.tls);
	exitsig_block();	/* before the signal events are freed */
	ipc_free(m.queue);
	event_free(m.ev_wake);
	event_free(ev);
	close(m.wake[0]);
	close(m.wake[1]);
	event_base_free(m.base);
	return 0;
}
