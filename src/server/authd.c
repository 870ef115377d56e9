/* authd — password checks and failure lockout (see authd.h). */
#include "server/authd.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/exitsig.h"
#include "common/buf.h"
#include "common/ipc.h"
#include "common/log.h"
#include "common/msgtypes.h"
#include "server/passwd.h"
#include "server/session.h"

#define AUTHD_SLOTS      4096
#define AUTHD_DELAY_MS   500	/* per failure already counted, up to the cap */
#define AUTHD_DELAY_MAX  5000

struct failure {
	char     addr[64];
	unsigned count;
	time_t   first, locked_until, last;
};

struct authd_failures {
	struct failure *f;
	size_t          n;
};

struct authd {
	const struct config   *cfg;
	struct event_base     *base;
	struct authd_failures *fails;
	struct ipc            *parent;
	struct ipc           **workers;	/* kept to be freed at exit */
	unsigned               nworkers, capworkers;
	int                    orphan;	/* replaced by a reload: serve the old workers, then go */
};

struct authd_failures *
authd_failures_new(size_t slots)
{
	struct authd_failures *f = calloc(1, sizeof(*f));

	if (f && (f->f = calloc(slots, sizeof(*f->f))) == NULL) {
		free(f);
		return NULL;
	}
	if (f)
		f->n = slots;
	return f;
}

void
authd_failures_free(struct authd_failures *f)
{
	if (f) {
		free(f->f);
		free(f);
	}
}

/* The slot of addr, or (make = 1) the oldest slot taken over for it. */
static struct failure *
slot_of(struct authd_failures *f, const char *addr, int make)
{
	struct failure *old = &f->f[0];
	size_t i;

	for (i = 0; i < f->n; i++) {
		if (f->f[i].addr[0] && strcmp(f->f[i].addr, addr) == 0)
			return &f->f[i];
		if (f->f[i].last < old->last)
			old = &f->f[i];
	}
	if (!make)
		return NULL;
	memset(old, 0, sizeof(*old));
	snprintf(old->addr, sizeof(old->addr), "%s", addr);
	return old;
}

int
authd_locked(struct authd_failures *f, const char *addr, time_t now)
{
	struct failure *s = slot_of(f, addr, 0);

	return s && s->locked_until > now;
}

unsigned
authd_fail(struct authd_failures *f, const char *addr, time_t now, unsigned window,
    unsigned max, unsigned lockout)
{
	struct failure *s = slot_of(f, addr, 1);

	if (s->count == 0 || now - s->first > (time_t)window) {
		s->count = 0;
		s->first = now;
	}
	s->count++;
	s->last = now;
	if (s->count >= max)
		s->locked_until = now + (time_t)lockout;
	return s->count;
}

const char *
authd_lookup(const struct config *cfg, const char *login)
{
	const char *at = strrchr(login, '@');
	const struct domain_cfg *d;
	const char *v;
	size_t n;

	if (cfg->ndomains == 0)
		return NULL;
	d = at ? config_find_domain(cfg, at + 1, strlen(at + 1)) : &cfg->domains[0];
	if (d == NULL || d->users == NULL)
		return NULL;
	n = at ? (size_t)(at - login) : strlen(login);
	if ((v = table_lookup(d->users, login, n)) != NULL)
		return v;
	return at ? table_lookup(d->users, login, strlen(login)) : NULL;
}

static void
check(struct authd *a, struct ipc *ipc, struct ipc_msg *m)
{
	char addr[64], user[256], pass[256];
	const struct auth_cfg *ac = &a->cfg->auth;
	uint32_t result, delay = 0;
	time_t now = time(NULL);
	struct buf b;
	unsigned n;

	ipc_get_str(m, addr, sizeof(addr));
	ipc_get_str(m, user, sizeof(user));
	ipc_get_str(m, pass, sizeof(pass));
	if (ipc_get_end(m) == -1)
		result = SESSION_AUTH_TEMPFAIL;
	else if (authd_locked(a->fails, addr, now))
		result = SESSION_AUTH_LOCKED;
	else if (passwd_verify(authd_lookup(a->cfg, user), pass, ac->allow_plaintext))
		result = SESSION_AUTH_OK;
	else {
		n = authd_fail(a->fails, addr, now, ac->failure_window, ac->max_failures, ac->lockout);
		result = SESSION_AUTH_FAIL;
		delay = n * AUTHD_DELAY_MS > AUTHD_DELAY_MAX ? AUTHD_DELAY_MAX : n * AUTHD_DELAY_MS;
		if (n >= ac->max_failures)
			log_info("event=auth-lockout ip=%s failures=%u for=%us", addr, n, ac->lockout);
	}
	explicit_bzero(pass, sizeof(pass));
	buf_init(&b, 64);
	ipc_put_u32(&b, result);
	ipc_put_u32(&b, delay);
	ipc_send(ipc, MSG_A_RESULT, m->reqid, b.data, b.len, -1);
	buf_free(&b);
}

static int
worker_keep(struct authd *a, struct ipc *ipc)
{
	if (a->nworkers == a->capworkers) {
		unsigned nc = a->capworkers ? a->capworkers * 2 : 16;
		/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
		struct ipc **p = realloc(a->workers, nc * sizeof(*p));

		if (p == NULL)
			return -1;
		a->workers = p;
		a->capworkers = nc;
	}
	a->workers[a->nworkers++] = ipc;
	return 0;
}

static void
worker_forget(struct authd *a, const struct ipc *ipc)
{
	unsigned i;

	for (i = 0; i < a->nworkers; i++)
		if (a->workers[i] == ipc) {
			a->workers[i] = a->workers[--a->nworkers];
			return;
		}
}

static void
on_worker(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct authd *a = arg;

	if (m == NULL) {
		worker_forget(a, ipc);
		ipc_free(ipc);
		if (a->nworkers == 0 && a->orphan)
			event_base_loopbreak(a->base);
		return;
	}
	if (m->fd != -1)
		close(m->fd);
	if (m->type == MSG_A_CHECK)
		check(arg, ipc, m);
}

static void
on_parent(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct authd *a = arg;

	if (m == NULL) {
		a->parent = NULL;
		ipc_free(ipc);
		a->orphan = 1;
		if (a->nworkers == 0)
			event_base_loopbreak(a->base);
		return;
	}
	if (m->type == MSG_P_WORKER && m->fd != -1) {
		struct ipc *w = ipc_new(a->base, m->fd, on_worker, a);

		if (w == NULL)
			close(m->fd);
		else if (worker_keep(a, w) == -1)
			ipc_free(w);
	} else if (m->fd != -1)
		close(m->fd);
}

static void
on_term(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(arg);
}

int
authd_main(const struct config *cfg, int parent_fd)
{
	struct authd a;
	struct event *ev;

	log_set_proc("auth");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	memset(&a, 0, sizeof(a));
	a.cfg = cfg;
	if ((a.base = event_base_new()) == NULL || (a.fails = authd_failures_new(AUTHD_SLOTS)) == NULL)
		log_fatal("event=auth-init-failed");
	if ((a.parent = ipc_new(a.base, parent_fd, on_parent, &a)) == NULL)
		log_fatal("event=ipc-failed");
	ev = evsignal_new(a.base, SIGTERM, on_term, a.base);
	evsignal_add(ev, NULL);
	event_base_dispatch(a.base);
	exitsig_block();	/* before the signal events are freed */
	/* Everything freed, so that a leak checker sees no block lost. */
	while (a.nworkers > 0)
		ipc_free(a.workers[--a.nworkers]);
	free(a.workers);
	ipc_free(a.parent);
	event_free(ev);
	authd_failures_free(a.fails);
	event_base_free(a.base);
	return 0;
}
