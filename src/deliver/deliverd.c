/* deliverd — the local (Maildir) delivery process (see deliverd.h). */
#include "deliver/deliverd.h"

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/exitsig.h"
#include "common/buf.h"
#include "common/ipc.h"
#include "common/log.h"
#include "common/msgtypes.h"
#include "common/syncpool.h"
#include "deliver/maildir.h"
#include "queue/envelope.h"

/*
 * Requests handled together: every request that arrived in one event-loop
 * turn shares the fsyncs' journal commits (the queue keeps at most 128 in
 * flight; a larger burst is cut into batches).
 */
#define BATCH_MAX    64
/*
 * A batch that no client waits for (every request DELIVER_F_LATER: stored
 * and acknowledged already) waits up to LINGER_USEC for more requests,
 * unless it has LINGER_BATCH: one message at a time (S=1) made rounds of
 * about 3, each with its own new/ fsync and wake-ups. The queue holds such
 * requests itself (its LATER_MS) and sends them together; the linger here
 * only lets all of one such burst arrive. A request that a client waits
 * for (a direct commit) runs the batch at the end of the turn.
 */
#define LINGER_USEC  2000
#define LINGER_BATCH 32
#define SYNC_THREADS 16	/* helper threads for the fsyncs, where AIO lacks fsync */
#define MAILDIR_CACHE 64	/* Maildirs whose tmp/ and new/ stay open */

/* One request of the batch; `status` is set at once when it is refused. */
struct job {
	uint32_t           status;	/* DELIVER_*, or 0 while delivering */
	char               text[300];
	char               id[QUEUE_ID_LEN + 1];
	char               path[PATH_MAX];
	const char        *where;	/* path, or relative to the cwd */
	int                staged;	/* md is in use */
	int                later;	/* DELIVER_F_LATER: nobody waits for the answer */
	struct maildir_job md;
};

struct deliverd {
	const struct config *cfg;
	struct event_base   *base;
	const char          *root;	/* cwd's absolute name, "" if none */
	struct ipc          *ipc;
	struct event        *ev_batch;
	struct syncpool     *syncpool;
	struct maildir_cache *maildirs;	/* NULL: open per message */
	struct job          *jobs;
	size_t               njobs;
	int                  urgent;	/* a job of the batch is not `later` */
};

int
deliver_template_base(const char *tmpl, char *out, size_t outsz)
{
	const char *pct = strchr(tmpl, '%');
	size_t n = pct ? (size_t)(pct - tmpl) : strlen(tmpl);

	while (n > 0 && tmpl[n - 1] != '/')
		n--;
	while (n > 1 && tmpl[n - 1] == '/')
		n--;
	if (n >= outsz)
		return -1;
	memcpy(out, tmpl, n);
	out[n] = '\0';
	return 0;
}

static void
answer(struct ipc *ipc, uint32_t status, const char *text)
{
	struct buf b;

	buf_init(&b, 1024);
	ipc_put_u32(&b, status);
	ipc_put_str(&b, text);
	ipc_send(ipc, MSG_D_RESULT, 0, b.data, b.len, -1);
	buf_free(&b);
}

/* Quarantine: the Maildir++ folder (".Junk") inside the mailbox. */
static int
append_folder(char *path, size_t size, const char *folder)
{
	size_t n = strlen(path);
	int r = snprintf(path + n, size - n, "/%s", folder);

	return r < 0 || (size_t)r >= size - n ? -1 : 0;
}

static void
refuse(struct job *j, uint32_t status, const char *text)
{
	j->status = status;
	snprintf(j->text, sizeof(j->text), "%s", text);
}

/* Checks one request and writes its message into tmp/ (maildir_begin). */
static void
deliver_one(struct deliverd *d, struct job *j, struct ipc_msg *m)
{
	char id[QUEUE_ID_LEN + 1], user[SMTP_LOCAL_MAX + 1], domain[SMTP_DOMAIN_MAX + 1];
	char sender[SMTP_PATH_MAX + 1];
	char *path = j->path;
	char *prepend;
	uint32_t flags;
	uint64_t clen;
	const struct domain_cfg *dom;
	const char *where = path;
	struct buf prefix;
	size_t rootlen = strlen(d->root);

	ipc_get_str(m, id, sizeof(id));
	ipc_get_u32(m);
	ipc_get_str(m, user, sizeof(user));
	ipc_get_str(m, domain, sizeof(domain));
	ipc_get_str(m, sender, sizeof(sender));
	prepend = ipc_get_strdup(m, ENVELOPE_PREPEND_MAX);
	flags = ipc_get_u32(m);
	clen = ipc_get_u64(m);	/* the content's length: the envelope may follow it */
	if (prepend == NULL || ipc_get_end(m) == -1 || m->fd == -1 || clen == 0) {
		refuse(j, DELIVER_TEMPFAIL, "malformed request");
		free(prepend);
		return;
	}
	if ((dom = config_find_domain(d->cfg, domain, strlen(domain))) == NULL) {
		refuse(j, DELIVER_PERMFAIL, "5.1.2 domain is not local");
		free(prepend);
		return;
	}
	if (maildir_expand(dom->maildir, user, domain, path, sizeof(j->path)) == -1 ||
	    ((flags & DELIVER_F_QUARANTINE) && append_folder(path, sizeof(j->path), d->cfg->checks.junk_folder) == -1)) {
		refuse(j, DELIVER_PERMFAIL, "5.1.3 unsafe mailbox name");
		free(prepend);
		return;
	}
	/* Paths under the directory we entered as root are taken relative to it. */
	if (rootlen && strncmp(path, d->root, rootlen) == 0 && path[rootlen] == '/')
		where = path + rootlen + 1;
	buf_init(&prefix, ENVELOPE_PREPEND_MAX + 2048);
	buf_printf(&prefix, "Return-Path: <%s>\r\nDelivered-To: %s@%s\r\n", sender, user, domain);
	/* What the inbound checks added (Authentication-Results), above our Received. */
	buf_appends(&prefix, prepend);
	free(prepend);
	snprintf(j->id, sizeof(j->id), "%s", id);
	j->later = (flags & DELIVER_F_LATER) != 0;
	j->where = where;
	j->staged = 1;
	maildir_begin_cached(&j->md, d->maildirs, where, m->fd, clen, prefix.data, prefix.len);
	buf_free(&prefix);
}

/* An earlier job of the batch that fsyncs the same new/ (after all links), or i. */
static size_t
same_new(const struct deliverd *d, size_t i)
{
	size_t k;

	for (k = 0; k < i; k++)
		if (d->jobs[k].staged && !d->jobs[k].md.failed &&
		    strcmp(d->jobs[k].where, d->jobs[i].where) == 0)
			return k;
	return i;
}

static void
job_answer(struct deliverd *d, struct job *j)
{
	struct maildir_result *res = &j->md.res;

	if (j->status == 0 && !j->md.failed) {
		snprintf(j->text, sizeof(j->text), "%s/new/%s", j->path, j->md.name);
		j->status = DELIVER_OK;
	} else if (j->status == 0) {
		log_warn("event=maildir-failed id=%s path=%s temporary=%d error=\"%s\"",
		    j->id, j->path, res->temporary, res->error);
		refuse(j, res->temporary ? DELIVER_TEMPFAIL : DELIVER_PERMFAIL, res->error);
	}
	answer(d->ipc, j->status, j->text);
}

/*
 * The batch, step by step over all its messages (see maildir.h): every
 * file fsync'd (all at once), then linked, then each distinct new/
 * fsync'd (all at once), then the answers in request order.
 */
static void
on_batch(evutil_socket_t fd, short what, void *arg)
{
	struct deliverd *d = arg;
	int fds[BATCH_MAX], errs[BATCH_MAX];
	size_t i, src[BATCH_MAX];

	event_del(d->ev_batch);	/* a linger timer, when a full batch runs early */
	log_debug("event=deliver-batch n=%zu", d->njobs);
	for (i = 0; i < d->njobs; i++)
		fds[i] = d->jobs[i].staged && !d->jobs[i].md.failed ? d->jobs[i].md.fd : -1;
	syncpool_run(d->syncpool, fds, errs, d->njobs, 0);
	for (i = 0; i < d->njobs; i++)
		if (fds[i] != -1)
			maildir_synced(&d->jobs[i].md, errs[i]);
	for (i = 0; i < d->njobs; i++) {
		if (d->jobs[i].staged)
			maildir_publish(&d->jobs[i].md);
		fds[i] = -1;
	}
	for (i = 0; i < d->njobs; i++)
		if (d->jobs[i].staged && !d->jobs[i].md.failed &&
		    (src[i] = same_new(d, i)) == i)
			fds[i] = d->jobs[i].md.newfd;
	syncpool_run(d->syncpool, fds, errs, d->njobs, 0);
	for (i = 0; i < d->njobs; i++)
		if (d->jobs[i].staged && !d->jobs[i].md.failed)
			maildir_new_synced(&d->jobs[i].md, errs[src[i]]);
	for (i = 0; i < d->njobs; i++) {
		job_answer(d, &d->jobs[i]);
		if (d->jobs[i].staged)
			maildir_end(&d->jobs[i].md);
	}
	d->njobs = 0;
	d->urgent = 0;
}

/* Runs the batch at the end of this turn, or after the linger (see LINGER_USEC). */
static void
batch_schedule(struct deliverd *d)
{
	static const struct timeval linger = { 0, LINGER_USEC };

	if (d->urgent || d->njobs >= LINGER_BATCH) {
		event_del(d->ev_batch);
		event_active(d->ev_batch, EV_TIMEOUT, 0);
	} else if (!event_pending(d->ev_batch, EV_TIMEOUT, NULL))
		event_add(d->ev_batch, &linger);
}

/* Leaves nothing of an unfinished batch behind: the queue sends it again. */
static void
batch_abort(struct deliverd *d)
{
	size_t i;

	for (i = 0; i < d->njobs; i++)
		if (d->jobs[i].staged) {
			d->jobs[i].md.failed = 1;
			maildir_end(&d->jobs[i].md);
		}
	d->njobs = 0;
	d->urgent = 0;
}

static void
on_queue(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct deliverd *d = arg;

	struct job *j;

	if (m == NULL) {
		event_base_loopbreak(d->base);
		return;
	}
	if (d->njobs == BATCH_MAX)
		on_batch(-1, 0, d);
	j = &d->jobs[d->njobs++];
	memset(j, 0, offsetof(struct job, md));
	if (m->type == MSG_D_DELIVER)
		deliver_one(d, j, m);
	else
		refuse(j, DELIVER_TEMPFAIL, "unknown request");
	d->urgent |= !j->later;	/* refusals too: answered at once */
	batch_schedule(d);
	if (m->fd != -1)
		close(m->fd);
}

static void
on_term(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(arg);
}

int
deliver_main(const struct config *cfg, int queue_fd, const char *base)
{
	struct deliverd d;
	struct event *ev;

	log_set_proc("deliver");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	d.cfg = cfg;
	d.root = base ? base : "";
	d.njobs = 0;
	d.urgent = 0;
	if ((d.jobs = calloc(BATCH_MAX, sizeof(*d.jobs))) == NULL)
		log_fatal("event=oom");
	if ((d.base = event_base_new()) == NULL)
		log_fatal("event=event-base-failed");
	d.ev_batch = event_new(d.base, -1, 0, on_batch, &d);
	d.syncpool = syncpool_new(SYNC_THREADS);
	log_info("event=fsync-pool kind=%s", syncpool_kind(d.syncpool));
	d.maildirs = maildir_cache_new(MAILDIR_CACHE);
	if ((d.ipc = ipc_new(d.base, queue_fd, on_queue, &d)) == NULL)
		log_fatal("event=ipc-failed");
	ev = evsignal_new(d.base, SIGTERM, on_term, d.base);
	evsignal_add(ev, NULL);
	event_base_dispatch(d.base);
	batch_abort(&d);
	maildir_cache_free(d.maildirs);
	ipc_free(d.ipc);
	event_free(d.ev_batch);
	free(d.jobs);
	syncpool_free(d.syncpool);
	exitsig_block();	/* before the signal events are freed */
	event_free(ev);
	event_base_free(d.base);
	return 0;
}
