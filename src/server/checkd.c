/* checkd — the check process (see checkd.h). */
#include "server/checkd.h"

#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/exitsig.h"
#include "common/buf.h"
#include "common/ipc.h"
#include "common/log.h"
#include "common/msgtypes.h"
#include "dns/cache.h"
#include "dns/unbound.h"
#include "mailauth/authcheck.h"
#include "mailauth/orgdomain.h"
#include "server/dmarcrep.h"
#include "smtp/parse.h"

#define CHECKD_PENDING_MAX 512			/* requests held at once */
#define CHECKD_HDR_MAX     (512 * 1024)		/* header section per request */
#define CHECKD_DNS_MS      5000			/* per DNS query */
#define CHECKD_ANSWER_MAX  16384			/* the A-R field */
#define CHECKD_REFUSED_MAX 4096			/* refused partial requests per worker */
#define CHECKD_BACKLOG_MAX 512			/* answers queued to a worker */
#define CHECKD_CACHE_N     2048			/* DNS answers kept for all threads */
#define CHECKD_CACHE_BYTES (1024 * 1024)		/* and their size */
#define CHECKD_RND_N       64				/* pct= rolls drawn at once */

struct checkd;

struct chan {
	struct chan   *next, *prev;	/* every channel, to free them at exit */
	struct checkd *d;
	struct ipc    *ipc;		/* NULL once the worker is gone */
	unsigned       refs;		/* the channel itself + jobs in the pool */
	struct job    *partial;		/* requests whose header is still arriving */
	unsigned       nrefused;	/* of those, refused ones (no header kept) */
};

struct job {
	struct job    *next;
	struct chan   *ch;
	uint32_t       reqid, seq;
	time_t         deadline;
	int            bad;
	int            refused;	/* the pool was full at its first part */
	char           ip[64], helo[SMTP_DOMAIN_MAX + 1], mailfrom[SMTP_PATH_MAX + 1];
	struct buf     hdr;
	uint8_t        body[DKIM_MAX_SIGS];
	size_t         nbody;
	int            has_arc;
	unsigned char  arc[ARC_BODY_HASHES];
	unsigned       pct_roll;
	/* the answer */
	uint32_t       spf, dmarc, disposition;
	struct buf     out;
	char           summary[256];
};

struct checkd {
	const struct config *cfg;
	struct event_base   *base;
	struct orgdomain    *od;
	struct dns_cache    *cache;	/* shared by the threads */
	struct dns_cache_view fast_view;	/* cache only, for the event loop */
	struct dns_resolver  fast;
	uint32_t             rnd[CHECKD_RND_N];	/* unused pct= rolls */
	unsigned             nrnd;
	pthread_mutex_t      lock;
	pthread_cond_t       cond;
	struct job          *todo, *todo_tail, *done;
	int                  stopping;
	int                  wake[2];
	pthread_t           *threads;
	unsigned             nthreads;
	unsigned             pending;
	unsigned             nchans;
	struct chan         *chans;
	int                  orphan;	/* the parent went away */
	struct dmarcrep     *rep;	/* DMARC aggregate reports, NULL when off */
	struct event        *ev_rep;
};

static void
chan_unref(struct chan *ch)
{
	if (--ch->refs == 0) {
		if (ch->prev)
			ch->prev->next = ch->next;
		else
			ch->d->chans = ch->next;
		if (ch->next)
			ch->next->prev = ch->prev;
		ch->d->nchans--;
		if (ch->d->nchans == 0 && ch->d->orphan)
			event_base_loopbreak(ch->d->base);
		free(ch);
	}
}

static void
job_free(struct job *j)
{
	buf_free(&j->hdr);
	buf_free(&j->out);
	free(j);
}

/* Frees a job not yet in the pool, with the count it holds. */
static void
job_release(struct checkd *d, struct job *j)
{
	if (j->refused)
		j->ch->nrefused--;
	else
		d->pending--;
	job_free(j);
}

/* A temperror answer without running anything. */
static void
job_unavailable(struct checkd *d, struct job *j, const char *why)
{
	buf_reset(&j->out);
	authcheck_unavailable(&j->out, config_authserv_id(d->cfg), j->mailfrom, j->helo,
	    j->nbody > 0, why);
	j->spf = SPF_TEMPERROR;
	j->dmarc = DMARC_RESULT_TEMPERROR;
	j->disposition = DMARC_POLICY_NONE;
	snprintf(j->summary, sizeof(j->summary), "result=unavailable why=\"%s\"", why);
}

/*
 * Runs the checks of j and fills its answer. With only (the cache-only
 * view behind dns), -1 and nothing filled when an answer was not in the
 * cache or anything else went wrong: the pool runs it again from scratch.
 */
static int
job_run(struct checkd *d, struct job *j, const struct dns_resolver *dns,
    struct dns_cache_view *only)
{
	struct authcheck_request rq;
	struct authcheck_result *r;
	int rc;

	if (only != NULL) {
		only->missed = 0;
		if ((r = malloc(sizeof(*r))) == NULL)
			return -1;
	} else if (dns == NULL) {
		job_unavailable(d, j, "no DNS resolver");
		return 0;
	} else if (time(NULL) > j->deadline) {
		job_unavailable(d, j, "waited too long");
		return 0;
	} else if ((r = malloc(sizeof(*r))) == NULL) {
		job_unavailable(d, j, "out of memory");
		return 0;
	}
	memset(&rq, 0, sizeof(rq));
	rq.ip = j->ip;
	rq.helo = j->helo;
	rq.mailfrom = j->mailfrom;
	rq.hdr = j->hdr.data ? j->hdr.data : "";
	rq.hdrlen = j->hdr.len;
	rq.body = j->body;
	rq.nbody = j->nbody;
	rq.arc = j->has_arc ? j->arc : NULL;
	rq.authserv_id = config_authserv_id(d->cfg);
	rq.receiver = d->cfg->hostname;
	rq.pct_roll = j->pct_roll;
	rc = authcheck_run(dns, d->od, &rq, r);	/* on -1, r is freed */
	if (rc == 0 && only != NULL && only->missed > 0) {
		authcheck_result_free(r);
		rc = -1;
	}
	if (rc == -1) {
		free(r);
		if (only != NULL)
			return -1;
		job_unavailable(d, j, "out of memory");
		return 0;
	}
	if (d->rep != NULL)
		dmarcrep_note(d->rep, j->ip, j->mailfrom, r);
	j->spf = r->spf.result;
	j->dmarc = r->dmarc.result;
	j->disposition = r->dmarc.disposition;
	buf_append(&j->out, r->header.data, r->header.len);
	snprintf(j->summary, sizeof(j->summary), "spf=%s dkim=%zu dkim_pass=%s dmarc=%s "
	    "disposition=%s", spf_result_str(r->spf.result), r->ndkim,
	    r->ndkim && r->dkim[0].result == DKIM_PASS ? r->dkim[0].domain : "-",
	    dmarc_result_str(r->dmarc.result), dmarc_policy_str(r->dmarc.disposition));
	authcheck_result_free(r);
	free(r);
	return 0;
}

static void *
pool_thread(void *arg)
{
	struct checkd *d = arg;
	struct dns_unbound *u;
	struct dns_cache_view view;
	struct dns_resolver r;
	char err[256];

	u = dns_unbound_new(d->cfg->dns_server, CHECKD_DNS_MS, err, sizeof(err));
	if (u == NULL)
		log_warn("event=resolver-failed error=\"%s\"", err);
	else {
		/* Answers from the shared cache cost no hand-off to libunbound's
		 * thread (two pipes, two wake-ups per query). */
		memset(&view, 0, sizeof(view));
		view.cache = d->cache;
		view.inner = dns_unbound_resolver(u);
		r = dns_cache_resolver(&view);
	}
	pthread_mutex_lock(&d->lock);
	for (;;) {
		struct job *j;

		while (d->todo == NULL && !d->stopping)
			pthread_cond_wait(&d->cond, &d->lock);
		if (d->stopping)
			break;
		j = d->todo;
		if ((d->todo = j->next) == NULL)
			d->todo_tail = NULL;
		pthread_mutex_unlock(&d->lock);
		(void)job_run(d, j, u ? &r : NULL, NULL);
		pthread_mutex_lock(&d->lock);
		j->next = d->done;
		/* One wake-up per batch: the loop takes the whole list at once. */
		if (d->done == NULL)
			(void)!write(d->wake[1], "x", 1);
		d->done = j;
	}
	pthread_mutex_unlock(&d->lock);
	dns_unbound_free(u);
	return NULL;
}

static void
answer(struct checkd *d, struct job *j)
{
	struct buf b;

	if (j->ch->ipc != NULL && ipc_backlog(j->ch->ipc) >= CHECKD_BACKLOG_MAX) {
		/* A worker that does not read gets no more: its session times out
		 * to temperror on its own, and our memory stays bounded. */
		log_warn("event=check-answer-dropped reqid=%u reason=\"worker not reading\"", j->reqid);
	} else if (j->ch->ipc != NULL) {
		buf_init(&b, IPC_MAX_MSG);
		ipc_put_u32(&b, j->seq);
		ipc_put_u32(&b, j->spf);
		ipc_put_u32(&b, j->dmarc);
		ipc_put_u32(&b, j->disposition);
		ipc_put_str(&b, j->out.data ? j->out.data : "");
		ipc_send(j->ch->ipc, MSG_C_RESULT, j->reqid, b.data, b.len, -1);
		buf_free(&b);
	}
	log_info("event=check ip=%s mailfrom=<%s> %s", j->ip, j->mailfrom, j->summary);
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct checkd *d = arg;
	struct job *j, *next;
	char b[64];

	/* A byte per batch: one read empties the pipe but for a flood. */
	while (read(fd, b, sizeof(b)) == (ssize_t)sizeof(b))
		;
	pthread_mutex_lock(&d->lock);
	j = d->done;
	d->done = NULL;
	pthread_mutex_unlock(&d->lock);
	for (; j; j = next) {
		next = j->next;
		answer(d, j);
		d->pending--;
		chan_unref(j->ch);
		job_free(j);
	}
}

static struct job *
job_new(struct checkd *d, struct chan *ch, uint32_t reqid)
{
	struct job *j;

	if (d->pending >= CHECKD_PENDING_MAX || (j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->ch = ch;
	j->reqid = reqid;
	j->deadline = time(NULL) + (time_t)d->cfg->checks.timeout;
	buf_init(&j->hdr, CHECKD_HDR_MAX);
	buf_init(&j->out, CHECKD_ANSWER_MAX);
	d->pending++;
	return j;
}

/* The partial request of reqid, taken off the channel's list. */
static struct job *
take_partial(struct chan *ch, uint32_t reqid)
{
	struct job **pp, *j;

	for (pp = &ch->partial; (j = *pp) != NULL; pp = &j->next)
		if (j->reqid == reqid) {
			*pp = j->next;
			j->next = NULL;
			return j;
		}
	return NULL;
}

static void
on_part(struct checkd *d, struct chan *ch, struct ipc_msg *m)
{
	struct job *j = take_partial(ch, m->reqid);
	const uint8_t *p;
	size_t n;

	if (j == NULL && (j = job_new(d, ch, m->reqid)) == NULL) {
		/* The pool is full: remember the refusal, so that a later part
		 * cannot start a check of a header section cut at its start. */
		if (ch->nrefused >= CHECKD_REFUSED_MAX || (j = calloc(1, sizeof(*j))) == NULL)
			return;
		j->ch = ch;
		j->reqid = m->reqid;
		j->refused = 1;
		buf_init(&j->hdr, 0);
		buf_init(&j->out, CHECKD_ANSWER_MAX);
		ch->nrefused++;
	}
	p = ipc_get_bytes(m, &n);
	if (!j->refused && (ipc_get_end(m) == -1 || buf_append(&j->hdr, p, n) == -1))
		j->bad = 1;
	j->next = ch->partial;
	ch->partial = j;
}

/* A roll for DMARC pct= sampling (RFC 7489 6.6.4), 0..99; the random
 * bytes come CHECKD_RND_N rolls at a time, not a system call per message. */
static unsigned
pct_roll(struct checkd *d)
{
	if (d->nrnd == 0) {
		if (getrandom(d->rnd, sizeof(d->rnd), 0) != (ssize_t)sizeof(d->rnd))
			return (unsigned)(time(NULL) % 100);
		d->nrnd = CHECKD_RND_N;
	}
	return d->rnd[--d->nrnd] % 100;
}

static void
enqueue(struct checkd *d, struct job *j)
{
	j->ch->refs++;
	pthread_mutex_lock(&d->lock);
	if (d->todo_tail)
		d->todo_tail->next = j;
	else
		d->todo = j;
	d->todo_tail = j;
	pthread_mutex_unlock(&d->lock);
	/* After the unlock, so that the thread woken does not block on it. */
	pthread_cond_signal(&d->cond);
}

int
checkd_request_decode(const uint8_t *p, size_t len, struct checkd_request *out)
{
	struct ipc_msg m = { 0, 0, p, len, 0, -1, 0 };
	const uint8_t *bv, *av;
	size_t nb, na;

	memset(out, 0, sizeof(*out));
	out->seq = ipc_get_u32(&m);
	ipc_get_str(&m, out->ip, sizeof(out->ip));
	ipc_get_str(&m, out->helo, sizeof(out->helo));
	ipc_get_str(&m, out->mailfrom, sizeof(out->mailfrom));
	out->hdr = ipc_get_bytes(&m, &out->hdrlen);
	bv = ipc_get_bytes(&m, &nb);
	av = ipc_get_bytes(&m, &na);
	if (ipc_get_end(&m) == -1 || nb > DKIM_MAX_SIGS || (na != 0 && na != ARC_BODY_HASHES))
		return -1;
	if (nb > 0)
		memcpy(out->body, bv, nb);
	out->nbody = nb;
	if ((out->has_arc = na > 0))
		memcpy(out->arc, av, na);
	return 0;
}

/* Too many at once: answer temperror now rather than queue without bound. */
static void
refuse_now(struct checkd *d, struct chan *ch, struct ipc_msg *m)
{
	struct job tmp;

	memset(&tmp, 0, sizeof(tmp));
	tmp.ch = ch;
	tmp.reqid = m->reqid;
	tmp.seq = ipc_get_u32(m);
	buf_init(&tmp.out, CHECKD_ANSWER_MAX);
	job_unavailable(d, &tmp, "too many pending checks");
	answer(d, &tmp);
	buf_free(&tmp.out);
}

static void
on_check(struct checkd *d, struct chan *ch, struct ipc_msg *m)
{
	struct job *j = take_partial(ch, m->reqid);
	struct checkd_request rq;

	if (j != NULL && j->refused) {
		job_release(d, j);
		refuse_now(d, ch, m);
		return;
	}
	if (j == NULL && (j = job_new(d, ch, m->reqid)) == NULL) {
		refuse_now(d, ch, m);
		return;
	}
	if (checkd_request_decode(m->data, m->len, &rq) == -1 ||
	    buf_append(&j->hdr, rq.hdr, rq.hdrlen) == -1) {
		/* the seq, if there is one, so that the answer is not ignored */
		j->seq = m->len >= 4 ? ipc_get_u32(m) : 0;
		j->bad = 1;
	} else {
		j->seq = rq.seq;
		memcpy(j->ip, rq.ip, sizeof(j->ip));
		memcpy(j->helo, rq.helo, sizeof(j->helo));
		memcpy(j->mailfrom, rq.mailfrom, sizeof(j->mailfrom));
		memcpy(j->body, rq.body, rq.nbody);
		j->nbody = rq.nbody;
		j->has_arc = rq.has_arc;
		memcpy(j->arc, rq.arc, sizeof(j->arc));
	}
	if (j->bad) {
		/* A worker is not trusted: a malformed request gets an answer, no check. */
		job_unavailable(d, j, "malformed request");
		answer(d, j);
		job_release(d, j);
		return;
	}
	j->pct_roll = pct_roll(d);
	/* Answers all in the cache (the common case: the same senders again
	 * and again): checked here at once, without a hand-off to a thread.
	 * Anything not cached goes to the pool, which checks from scratch. */
	if (job_run(d, j, &d->fast, &d->fast_view) == 0) {
		answer(d, j);
		job_release(d, j);
		return;
	}
	enqueue(d, j);
}

static void
on_worker(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct chan *ch = arg;
	struct checkd *d = ch->d;
	struct job *j;

	if (m == NULL) {
		ipc_free(ipc);
		ch->ipc = NULL;
		while ((j = ch->partial) != NULL) {
			ch->partial = j->next;
			job_release(d, j);
		}
		chan_unref(ch);
		return;
	}
	if (m->fd != -1)
		close(m->fd);
	if (m->type == MSG_C_PART)
		on_part(d, ch, m);
	else if (m->type == MSG_C_CHECK)
		on_check(d, ch, m);
}

static void
on_parent(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct checkd *d = arg;
	struct chan *ch;

	if (m == NULL) {
		ipc_free(ipc);
		d->orphan = 1;
		if (d->nchans == 0)
			event_base_loopbreak(d->base);
		return;
	}
	if (m->type != MSG_P_WORKER || m->fd == -1) {
		if (m->fd != -1)
			close(m->fd);
		return;
	}
	if ((ch = calloc(1, sizeof(*ch))) == NULL ||
	    (ch->ipc = ipc_new(d->base, m->fd, on_worker, ch)) == NULL) {
		free(ch);
		close(m->fd);
		return;
	}
	ch->d = d;
	ch->refs = 1;
	ch->next = d->chans;
	if (d->chans)
		d->chans->prev = ch;
	d->chans = ch;
	d->nchans++;
}

static void
on_term(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* The end of a DMARC report interval (RFC 7489 7.2). */
static void
on_report_timer(evutil_socket_t fd, short what, void *arg)
{
	struct checkd *d = arg;
	struct timeval tv = { 0, 0 };

	dmarcrep_tick(d->rep, time(NULL));
	tv.tv_sec = dmarcrep_wait(d->rep, time(NULL));
	evtimer_add(d->ev_rep, &tv);
}

static void
reports_start(struct checkd *d)
{
	if ((d->rep = dmarcrep_open(d->cfg, d->od, time(NULL))) == NULL)
		return;
	if ((d->ev_rep = evtimer_new(d->base, on_report_timer, d)) == NULL)
		log_fatal("event=check-init-failed error=oom");
	on_report_timer(-1, 0, d);
}

static void
reports_stop(struct checkd *d)
{
	if (d->ev_rep != NULL)
		event_free(d->ev_rep);
	dmarcrep_close(d->rep);
}

static void
pool_start(struct checkd *d)
{
	unsigned i;

	d->nthreads = d->cfg->checks.threads ? d->cfg->checks.threads : 1;
	if ((d->threads = calloc(d->nthreads, sizeof(*d->threads))) == NULL)
		log_fatal("event=check-init-failed error=oom");
	for (i = 0; i < d->nthreads; i++)
		if (pthread_create(&d->threads[i], NULL, pool_thread, d) != 0)
			log_fatal("event=check-init-failed error=thread");
}

/* Stops the threads (each ends its current check) and frees what is left. */
static void
pool_stop(struct checkd *d)
{
	struct job *j;
	unsigned i;

	pthread_mutex_lock(&d->lock);
	d->stopping = 1;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	for (i = 0; i < d->nthreads; i++)
		pthread_join(d->threads[i], NULL);
	free(d->threads);
	while ((j = d->todo) != NULL) {
		d->todo = j->next;
		chan_unref(j->ch);
		job_free(j);
	}
	while ((j = d->done) != NULL) {
		d->done = j->next;
		chan_unref(j->ch);
		job_free(j);
	}
}

/* At exit, after pool_stop: the channels of workers still connected, so
 * that a leak checker sees every block freed. */
static void
chans_free(struct checkd *d)
{
	struct chan *ch;
	struct job *j;

	while ((ch = d->chans) != NULL) {
		while ((j = ch->partial) != NULL) {
			ch->partial = j->next;
			job_free(j);
		}
		ipc_free(ch->ipc);
		d->chans = ch->next;
		free(ch);
	}
}

int
checkd_main(const struct config *cfg, int parent_fd)
{
	struct checkd d;
	struct event *ev_term, *ev_wake;
	struct ipc *parent;

	log_set_proc("check");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	memset(&d, 0, sizeof(d));
	d.cfg = cfg;
	pthread_mutex_init(&d.lock, NULL);
	pthread_cond_init(&d.cond, NULL);
	if ((d.base = event_base_new()) == NULL || pipe2(d.wake, O_NONBLOCK | O_CLOEXEC) == -1 ||
	    (d.od = orgdomain_open(NULL)) == NULL ||
	    (d.cache = dns_cache_new(CHECKD_CACHE_N, CHECKD_CACHE_BYTES)) == NULL)
		log_fatal("event=check-init-failed");
	d.fast_view.cache = d.cache;
	d.fast_view.cache_only = 1;
	d.fast = dns_cache_resolver(&d.fast_view);
	if ((parent = ipc_new(d.base, parent_fd, on_parent, &d)) == NULL)
		log_fatal("event=ipc-failed");
	ev_wake = event_new(d.base, d.wake[0], EV_READ | EV_PERSIST, on_wake, &d);
	ev_term = evsignal_new(d.base, SIGTERM, on_term, d.base);
	if (ev_wake == NULL || ev_term == NULL)
		log_fatal("event=check-init-failed");
	event_add(ev_wake, NULL);
	evsignal_add(ev_term, NULL);
	reports_start(&d);
	pool_start(&d);
	log_info("event=check-ready threads=%u", d.nthreads);
	event_base_dispatch(d.base);
	pool_stop(&d);
	chans_free(&d);
	reports_stop(&d);
	if (!d.orphan)
		ipc_free(parent);
	event_free(ev_wake);
	exitsig_block();	/* before the signal events are freed */
	event_free(ev_term);
	orgdomain_close(d.od);
	dns_cache_free(d.cache);
	close(d.wake[0]);
	close(d.wake[1]);
	event_base_free(d.base);
	return 0;
}
