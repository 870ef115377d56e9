/* unbound — the libunbound resolver (see unbound.h). */
#include "dns/unbound.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <unbound.h>

#include "dns/rr.h"

#define DEFAULT_TIMEOUT_MS	10000
#define RCODE_SERVFAIL		2
#define RCODE_NXDOMAIN		3
#define CLASS_IN		1

/* A pending query. */
struct uq {
	struct dns_unbound *u;
	int             id, ub_id;
	enum dns_type   type;
	uint64_t        deadline;	/* CLOCK_MONOTONIC, ms */
	dns_unbound_cb *cb;
	void           *arg;
	struct uq      *prev, *next;
};

struct dns_unbound {
	struct ub_ctx *ctx;
	unsigned       timeout_ms;
	int            next_id;
	struct uq     *head;
	size_t         npending;
	struct event  *ev_fd, *ev_timer;	/* when attached */
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Plain names only: libunbound would read '\' and spaces as zone syntax. */
static int
name_ok(const char *name)
{
	size_t n = strlen(name), i;

	if (n == 0 || n > DNS_NAME_MAX - 1)
		return 0;
	for (i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

static void
link_q(struct dns_unbound *u, struct uq *q)
{
	q->prev = NULL;
	q->next = u->head;
	if (u->head)
		u->head->prev = q;
	u->head = q;
	u->npending++;
}

static void
unlink_q(struct dns_unbound *u, struct uq *q)
{
	/* Test the head itself rather than q->prev: same result, and it lets
	 * the static analyzer see that q is off the list afterwards. */
	if (u->head == q)
		u->head = q->next;
	else
		q->prev->next = q->next;
	if (q->next)
		q->next->prev = q->prev;
	u->npending--;
}

/* The answer from the data arrays, when there is no answer packet. */
static int
from_data(const struct ub_result *res, enum dns_type type, struct dns_answer *out)
{
	struct dns_rr rr;
	int i, rc;

	snprintf(out->canon, sizeof(out->canon), "%s",
	    res->canonname ? res->canonname : res->qname);
	for (i = 0; res->havedata && res->data[i] != NULL; i++) {
		if (dns_parse_rdata(type, (const uint8_t *)res->data[i], (size_t)res->len[i],
		    NULL, 0, &rr) == -1)
			continue;
		rr.ttl = (uint32_t)res->ttl;
		rc = dns_answer_add(out, &rr);
		free(rr.data);
		if (rc == -1)
			return -1;
	}
	out->status = out->n > 0 ? DNS_OK : res->nxdomain ? DNS_NXDOMAIN : DNS_NODATA;
	return 0;
}

/* SERVFAIL and failed validation are temporary, NXDOMAIN is not. */
static int
to_answer(const struct ub_result *res, enum dns_type type, struct dns_answer *out)
{
	int rc = 0;

	dns_answer_init(out);
	if (res->bogus || res->rcode == RCODE_SERVFAIL)
		out->status = DNS_TEMPFAIL;
	else if (res->rcode == RCODE_NXDOMAIN)
		out->status = DNS_NXDOMAIN;
	else if (res->rcode != 0)
		out->status = DNS_PERMFAIL;
	else if (res->answer_packet != NULL && res->answer_len > 0)
		rc = dns_parse_msg(res->answer_packet, (size_t)res->answer_len, type, out);
	else
		rc = from_data(res, type, out);
	out->secure = res->secure;
	/* How long libunbound's own cache keeps it: the least TTL of the
	 * message, or the negative TTL of RFC 2308 5. */
	if (res->ttl > 0)
		out->ttl = (uint32_t)res->ttl;
	return rc;
}

/* Hands the answer to the query's owner and forgets the query. */
static void
deliver(struct uq *q, struct dns_answer *ans)
{
	q->cb(q->arg, ans);
	dns_answer_free(ans);
	free(q);
}

static void
ub_done(void *mydata, int err, struct ub_result *res)
{
	struct uq *q = mydata;
	struct dns_answer ans;

	dns_answer_init(&ans);
	if (err != 0 || res == NULL || to_answer(res, q->type, &ans) == -1) {
		dns_answer_free(&ans);
		ans.status = DNS_TEMPFAIL;
	}
	if (res != NULL)
		ub_resolve_free(res);
	unlink_q(q->u, q);
	deliver(q, &ans);
}

static struct uq *
first_overdue(const struct dns_unbound *u, uint64_t now)
{
	struct uq *q;

	for (q = u->head; q != NULL; q = q->next)
		if (q->deadline <= now)
			return q;
	return NULL;
}

/* libunbound has no per-query deadline: cancel overdue queries ourselves. */
static void
expire(struct dns_unbound *u)
{
	uint64_t now = now_ms();
	struct dns_answer ans;
	struct uq *q;

	while ((q = first_overdue(u, now)) != NULL) {
		(void)ub_cancel(u->ctx, q->ub_id);
		unlink_q(u, q);
		dns_answer_init(&ans);
		ans.status = DNS_TEMPFAIL;
		deliver(q, &ans);
	}
}

int
dns_unbound_timeout_ms(const struct dns_unbound *u)
{
	uint64_t now = now_ms(), first = UINT64_MAX;
	const struct uq *q;

	for (q = u->head; q != NULL; q = q->next)
		if (q->deadline < first)
			first = q->deadline;
	if (first == UINT64_MAX)
		return -1;
	return first <= now ? 0 : (int)(first - now);
}

static void
rearm(struct dns_unbound *u)
{
	int ms;

	if (u->ev_timer == NULL)
		return;
	if ((ms = dns_unbound_timeout_ms(u)) < 0) {
		evtimer_del(u->ev_timer);
	} else {
		struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

		evtimer_add(u->ev_timer, &tv);
	}
}

void
dns_unbound_process(struct dns_unbound *u)
{
	(void)ub_process(u->ctx);
	expire(u);
	rearm(u);
}

int
dns_unbound_fd(const struct dns_unbound *u)
{
	return ub_fd(u->ctx);
}

size_t
dns_unbound_pending(const struct dns_unbound *u)
{
	return u->npending;
}

int
dns_unbound_query_async(struct dns_unbound *u, const char *name,
    enum dns_type type, dns_unbound_cb *cb, void *arg)
{
	struct uq *q;

	if (!name_ok(name) || (q = calloc(1, sizeof(*q))) == NULL)
		return -1;
	q->u = u;
	q->type = type;
	q->cb = cb;
	q->arg = arg;
	q->deadline = now_ms() + u->timeout_ms;
	if (ub_resolve_async(u->ctx, name, (int)type, CLASS_IN, q, ub_done, &q->ub_id) != 0) {
		free(q);
		return -1;
	}
	if (u->next_id == INT32_MAX)
		u->next_id = 0;
	q->id = ++u->next_id;
	link_q(u, q);
	rearm(u);
	return q->id;
}

int
dns_unbound_cancel(struct dns_unbound *u, int id)
{
	struct uq *q;

	for (q = u->head; q != NULL; q = q->next)
		if (q->id == id)
			break;
	if (q == NULL)
		return -1;
	(void)ub_cancel(u->ctx, q->ub_id);
	unlink_q(u, q);
	free(q);
	rearm(u);
	return 0;
}

static void
on_event(evutil_socket_t fd, short what, void *arg)
{
	dns_unbound_process(arg);
}

int
dns_unbound_attach(struct dns_unbound *u, struct event_base *base)
{
	if (u->ev_fd != NULL)
		return -1;
	u->ev_fd = event_new(base, ub_fd(u->ctx), EV_READ | EV_PERSIST, on_event, u);
	u->ev_timer = evtimer_new(base, on_event, u);
	if (u->ev_fd == NULL || u->ev_timer == NULL || event_add(u->ev_fd, NULL) == -1) {
		if (u->ev_fd)
			event_free(u->ev_fd);
		if (u->ev_timer)
			event_free(u->ev_timer);
		u->ev_fd = u->ev_timer = NULL;
		return -1;
	}
	rearm(u);
	return 0;
}

static int
set_opt(struct ub_ctx *ctx, const char *opt, const char *val, char *err, size_t errlen)
{
	int rc = ub_ctx_set_option(ctx, opt, val);

	if (rc != 0)
		snprintf(err, errlen, "unbound option %s %s: %s", opt, val, ub_strerror(rc));
	return rc;
}

static int
configure(struct ub_ctx *ctx, const char *server, char *err, size_t errlen)
{
	int rc;

	/* Answers arrive on a thread of ours, not a forked process. */
	if ((rc = ub_ctx_async(ctx, 1)) != 0) {
		snprintf(err, errlen, "unbound threads: %s", ub_strerror(rc));
		return -1;
	}
	/* We only forward, and the forwarder may well be on loopback
	 * (127.0.0.53, a local unbound, the tests' server). */
	if (set_opt(ctx, "do-not-query-localhost:", "no", err, errlen) != 0)
		return -1;
	/* libunbound answers NXDOMAIN for .test (RFC 6761) by itself; ask the
	 * forwarder instead, which knows better (the tests' server does). */
	if (set_opt(ctx, "local-zone:", "test. transparent", err, errlen) != 0)
		return -1;
	if (server != NULL)
		rc = ub_ctx_set_fwd(ctx, server);
	else
		rc = ub_ctx_resolvconf(ctx, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "unbound %s %s: %s", server ? "forwarder" : "resolv.conf",
		    server ? server : "", ub_strerror(rc));
		return -1;
	}
	return 0;
}

struct dns_unbound *
dns_unbound_new(const char *server, unsigned timeout_ms, char *err, size_t errlen)
{
	struct dns_unbound *u = calloc(1, sizeof(*u));

	if (u == NULL || (u->ctx = ub_ctx_create()) == NULL) {
		snprintf(err, errlen, "unbound: out of memory");
		free(u);
		return NULL;
	}
	u->timeout_ms = timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS;
	if (configure(u->ctx, server, err, errlen) == -1) {
		ub_ctx_delete(u->ctx);
		free(u);
		return NULL;
	}
	return u;
}

void
dns_unbound_free(struct dns_unbound *u)
{
	struct uq *q;

	if (u == NULL)
		return;
	while ((q = u->head) != NULL) {
		(void)ub_cancel(u->ctx, q->ub_id);
		unlink_q(u, q);
		free(q);
	}
	if (u->ev_fd)
		event_free(u->ev_fd);
	if (u->ev_timer)
		event_free(u->ev_timer);
	ub_ctx_delete(u->ctx);
	free(u);
}

/* ---- the synchronous resolver: an async query and a poll loop ---- */

struct sync_wait {
	int                done;
	struct dns_answer *out;
};

static void
sync_done(void *arg, struct dns_answer *ans)
{
	struct sync_wait *w = arg;

	*w->out = *ans;
	dns_answer_init(ans);
	w->done = 1;
}

static int
unbound_query(void *ctx, const char *name, enum dns_type type, struct dns_answer *out)
{
	struct dns_unbound *u = ctx;
	struct sync_wait w = { 0, out };
	struct pollfd p;
	int id;

	dns_answer_init(out);
	if (!name_ok(name)) {
		out->status = DNS_PERMFAIL;
		return 0;
	}
	if ((id = dns_unbound_query_async(u, name, type, sync_done, &w)) == -1) {
		out->status = DNS_TEMPFAIL;
		return 0;
	}
	while (!w.done) {
		p.fd = ub_fd(u->ctx);
		p.events = POLLIN;
		p.revents = 0;
		if (poll(&p, 1, dns_unbound_timeout_ms(u)) == -1 && errno != EINTR) {
			(void)dns_unbound_cancel(u, id);
			out->status = DNS_TEMPFAIL;
			break;
		}
		dns_unbound_process(u);
	}
	return 0;
}

struct dns_resolver
dns_unbound_resolver(struct dns_unbound *u)
{
	struct dns_resolver r = { unbound_query, u };

	return r;
}
