/* queue — the spool owner: create, commit, recover, schedule (see queue.h). */
#include "queue/queue.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/exitsig.h"
#include "common/ipc.h"
#include "common/log.h"
#include "common/msgtypes.h"
#include "queue/control.h"
#include "deliver/signer.h"
#include "common/bgsync.h"
#include "common/idmap.h"
#include "common/syncpool.h"
#include "queue/dsn.h"
#include "queue/envelope.h"
#include "queue/journal.h"
#include "queue/maildrop.h"
#include "queue/qconf.h"
#include "queue/spoolfile.h"
#include "server/resolve.h"
#include "smtp/parse.h"
#include "smtp/xtext.h"

#define QUEUE_DIR      "queue"
#define QUEUE_TMP      "tmp"
#define QUEUE_CORRUPT  "corrupt"
#define QUEUE_FREE     "free"
#define POOL_MAX       1024	/* spool files kept in free/ for reuse */
#define ENV_TEXT_MAX   (8 * 1024 * 1024)
#define DELIVER_WINDOW 128	/* requests in flight to the deliver process */
#define DIRECT_RCPTS   16	/* most recipients of a message delivered before its 250 */
#define DIRECT_WAIT_MS 1000	/* then it is stored as any other and acknowledged */
#define RETRY_MAX      3600
#define SYNC_THREADS   16	/* helper threads for the commits' fdatasyncs, where AIO lacks fsync */
#define SPOOL_LOW_BYTES ((uint64_t)256 << 20)	/* see spool_low */
#define STOCK_MAX      16	/* files named ahead in queue/ for lone messages */
#define STOCK_LOW      4	/* below this many the stock is filled up again */
/*
 * Deliveries of stored messages (acknowledged already, nobody waits) are
 * held for up to LATER_MS or until LATER_BATCH of them are there, then
 * sent to the deliver process together: at S=1 one request at a time woke
 * it for every message. LATER_BATCH is the deliver's LINGER_BATCH.
 */
#define LATER_MS       20
#define LATER_BATCH    32

struct wchan;

/* A message file handed to a worker, not yet committed. */
struct qfile {
	struct qfile *next;
	struct wchan *w;
	char          id[QUEUE_ID_LEN + 1];
	int           fd;
	uint32_t      reqid;
	uint64_t      dirticket;	/* its name's sync (bgsync), 0 if none was asked */
	int           lone;	/* nothing else was in the works at open: stored, not delivered first */
	int           spare;	/* handed to the worker ahead, not in use yet (see spare_new) */
	int           want_spare;	/* its commit's answer brings the worker a new spare */
	struct buf    env;
};

/* A file of the stock (see stock_fill): its name is in queue/ already. */
struct stock_file {
	char     id[QUEUE_ID_LEN + 1];
	int      fd;
	uint64_t ticket;	/* the sync of queue/ that makes the name durable */
};

struct wchan {
	struct wchan *next;
	struct queue *q;
	struct ipc   *ipc;
	struct qfile *files;
};

/* A committed message. */
struct qmsg {
	struct qmsg    *next, *prev;
	struct queue   *q;
	struct envelope env;
	uint64_t        content_len;	/* bytes of ID.msg that are the message */
	int             envfile;	/* ID.env exists (else the envelope is ID.msg's footer) */
	unsigned        inflight;
	unsigned        retries;
	struct event   *retry;
	char           *dsn_now;	/* per recipient: 'f' failed, 's' succeeded, owed a DSN */
	unsigned        relaying;	/* jobs at the mta */
	int             ctl_pending;	/* CTL_HOLD or CTL_DELETE once the attempt ends */
	/*
	 * Delivered before acknowledged (see direct_start): not on disk yet,
	 * the worker waits for its answer. `abandoned`: it could not be
	 * stored, the client was refused, nothing more is done for it.
	 */
	int             direct, abandoned;
	struct wchan   *direct_w;
	uint32_t        direct_reqid;
	int             direct_spare;	/* the answer brings a spare (qfile.want_spare) */
	struct event   *direct_deadline;
};

struct work {
	struct work *next;
	struct qmsg *m;
	size_t       rcpt;
};

/* A deliver process: its requests in flight are answered in order. */
struct dchan {
	struct queue *q;
	struct ipc   *ipc;
	struct work  *sent, *sent_tail;
	unsigned      nsent;
	int           retiring;	/* of an older configuration: gets nothing new, closed once empty */
};

struct queue {
	const struct config *cfg;
	struct config       *reloaded;	/* cfg since a reload (qconf), else NULL */
	struct event_base   *base;
	struct ipc          *parent;
	/* deliver_processes of them, and the retiring ones of older configurations */
	struct dchan        *deliver[2 * CONFIG_DELIVER_MAX];
	size_t               ndeliver;
	unsigned             deliver_gen;	/* the parent's generation they belong to */
	struct ipc          *mta;
	unsigned             relays;		/* jobs at the mta */
	struct wchan        *workers;
	struct qmsg         *msgs;
	struct idmap        *byid;	/* the same messages by queue ID */
	struct qfile       **batch;
	size_t               nbatch, batchcap;
	struct event        *ev_commit;
	struct work         *todo, *todo_tail;	/* waiting for a deliver process */
	struct work         *later, *later_tail;	/* held: stored messages' deliveries (LATER_MS) */
	size_t               nlater;
	struct event        *ev_later;
	struct event        *ev_retire;	/* closes retiring deliver channels once empty */
	unsigned             nsent;		/* in flight at all deliver processes */
	char                 last_id[QUEUE_ID_LEN + 1];
	int                  dirfd;
	struct control      *ctl;		/* ternctl's socket */
	unsigned             nheld;		/* held messages, on disk only */
	int                  journal;		/* RELAY_JOURNAL, for the mta; -1 if none */
	struct journal_line *owed;	/* replayed lines whose success report is ours (recovery) */
	size_t               nowed;
	struct syncpool     *syncpool;	/* the commits' fdatasyncs */
	time_t               low_checked;	/* spool_low: when it last asked (monotonic s) */
	int                  low;
	struct bgsync       *dirsync;	/* early syncs of queue/ for lone messages */
	unsigned             nopen;	/* files handed to workers, not committed or dropped */
	unsigned             ndirect;	/* messages in delivery before their 250 */
	char               (*pool)[QUEUE_ID_LEN + 5];	/* names in free/ */
	size_t               npool;
	struct stock_file    stock[STOCK_MAX];	/* oldest first */
	size_t               nstock;
};

static void schedule(struct queue *);
static void msg_check_done(struct qmsg *);
static void msg_fail_rcpt(struct qmsg *, size_t, const char *);
static void msg_report(struct qmsg *, char);
static void journal_owed_report(struct queue *, struct qmsg *);
static int read_file(const char *, struct buf *);
static const char *status_of(const char *, const char *);
static void dsn_mark(struct qmsg *, size_t, char);
static void msg_done_rcpt(struct qmsg *, size_t);
static int ctl_apply_pending(struct qmsg *);
static void ctl_on_status(struct queue *, struct ipc_msg *);
static void journal_give(struct queue *);
static void journal_empty_if_idle(struct queue *);
static int direct_end(struct qmsg *);
static struct dchan *dchan_pick(struct queue *);
static void reply_commit_to(struct wchan *, uint32_t, const char *, int, int);

/* ---- IDs ---- */

/* The value of n hex digits; -1 if any is not one. */
static int64_t
hex_value(const char *s, size_t n)
{
	int64_t v = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		int d = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' :
		    s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10 : -1;

		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

void
queue_id_next(char out[17], const char *prev, uint64_t now_us)
{
	uint64_t t = now_us & 0xfffffffffffffULL, pt = 0;
	unsigned seq = 0, pseq = 0;
	int64_t a, b;

	if (prev && strlen(prev) == QUEUE_ID_LEN && (a = hex_value(prev, 13)) >= 0 &&
	    (b = hex_value(prev + 13, 3)) >= 0) {
		pt = (uint64_t)a;
		pseq = (unsigned)b;
	}
	if (prev && pt && t <= pt) {
		t = pt;
		seq = pseq + 1;
		if (seq > 0xfff) {
			t++;
			seq = 0;
		}
	}
	snprintf(out, 17, "%013" PRIx64 "%03x", t, seq);
}

static void
new_id(struct queue *q, char out[QUEUE_ID_LEN + 1])
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	queue_id_next(out, q->last_id, (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec);
	snprintf(q->last_id, sizeof(q->last_id), "%s", out);
}

static void
path_of(char *out, size_t sz, const char *id, const char *ext)
{
	snprintf(out, sz, QUEUE_DIR "/%s.%s", id, ext);
}

int
queue_spool_init(void)
{
	if (mkdir(QUEUE_DIR, 0700) == -1 && errno != EEXIST)
		return -1;
	if (mkdir(QUEUE_TMP, 0700) == -1 && errno != EEXIST)
		return -1;
	if (mkdir(QUEUE_FREE, 0700) == -1 && errno != EEXIST)
		return -1;
	/* Every local user may drop a file here, none may list or read it. */
	if ((mkdir(MAILDROP_DIR, 01733) == -1 && errno != EEXIST) || chmod(MAILDROP_DIR, 01733) == -1)
		return -1;
	return 0;
}

/* ---- committed messages ---- */

static struct qmsg *
msg_add(struct queue *q, struct envelope *env)
{
	struct qmsg *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	if (idmap_put(q->byid, env->id, m) == -1) {
		log_warn("event=message-add-failed id=%s error=\"%s\"", env->id, strerror(errno));
		free(m);
		return NULL;
	}
	m->q = q;
	m->env = *env;		/* takes over the recipient array */
	envelope_init(env);
	m->next = q->msgs;
	if (q->msgs)
		q->msgs->prev = m;
	q->msgs = m;
	return m;
}

static void
msg_free(struct qmsg *m)
{
	struct queue *q = m->q;

	idmap_del(q->byid, m->env.id);
	if (m->prev)
		m->prev->next = m->next;
	else
		q->msgs = m->next;
	if (m->next)
		m->next->prev = m->prev;
	if (m->retry)
		event_free(m->retry);
	if (m->direct_deadline)
		event_free(m->direct_deadline);
	free(m->dsn_now);
	envelope_free(&m->env);
	free(m);
}

/*
 * A file in free/ keeps its old content until it is overwritten: space
 * that a full spool needs back. Below 5% (or 256 MiB) free it is given
 * back at once (the truncate costs a discard on some disks, so not always).
 */
static int
spool_low(struct queue *q)
{
	struct statvfs sv;
	struct timespec now;

	/* Asked for every removed message: the filesystem's answer is kept a second. */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	if (q->low_checked != 0 && now.tv_sec == q->low_checked)
		return q->low;
	q->low_checked = now.tv_sec;
	if (fstatvfs(q->dirfd, &sv) == -1)
		return q->low = 0;
	return q->low = sv.f_bavail < sv.f_blocks / 20 ||
	    (uint64_t)sv.f_bavail * sv.f_frsize < SPOOL_LOW_BYTES;
}

/*
 * Spool files are reused instead of unlinked and created anew: ext4 without
 * a journal (the benchmark machine) searches past every inode deleted in
 * the last minutes at each create (fs/ext4/ialloc.c, recently_deleted()),
 * which made a create cost 0.3-0.6 ms at a few hundred messages a second.
 * A removed message's files are renamed into free/ (the envelope first, as
 * in msg_remove_files); a new file is renamed out of it, never over an
 * existing name, and overwritten from offset 0 (its old tail is cut at
 * commit). Files in free/ are never read.
 */
static void
pool_put(struct queue *q, const char *id, const char *ext)
{
	char src[64], dst[64], name[QUEUE_ID_LEN + 5];

	path_of(src, sizeof(src), id, ext);
	snprintf(name, sizeof(name), "%s.%s", id, ext);
	snprintf(dst, sizeof(dst), QUEUE_FREE "/%s", name);
	if (q->pool != NULL && q->npool < POOL_MAX && rename(src, dst) == 0) {
		memcpy(q->pool[q->npool++], name, sizeof(name));
		if (spool_low(q) && truncate(dst, 0) == -1)
			log_warn("event=truncate-failed file=%s error=\"%s\"", dst, strerror(errno));
	} else
		unlink(src);
}

/* A file at `path` (which must not exist yet) to write from offset 0. */
static int
pool_open(struct queue *q, const char *path, int flags)
{
	char src[64];
	int fd;

	while (q->npool > 0) {
		snprintf(src, sizeof(src), QUEUE_FREE "/%s", q->pool[--q->npool]);
		if (renameat2(AT_FDCWD, src, AT_FDCWD, path, RENAME_NOREPLACE) == -1) {
			if (errno == ENOENT)
				continue;
			break;
		}
		if ((fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC)) != -1)
			return fd;
		unlink(path);
		break;
	}
	return open(path, flags | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
}

/* The modification time of a file named ahead (stock, spare) until it is written. */
static const struct timespec stock_epoch[2] = { { 0, 0 }, { 0, 0 } };

/*
 * The stock: a few files named ahead for the next lone messages, with one
 * fsync of queue/ (on the bgsync thread) for all the names of a fill. A
 * lone message takes the oldest, and its commit then waits for one flush,
 * its own file's: without the stock each lone message had its name synced
 * as well (S=1 about 20% faster, 18% less CPU; docs/ARCHITECTURE.md). Their
 * content is stale (taken from free/): never committed, like a message
 * still being received. Their modification time is 0 (1970) until the
 * first write, so that people and tests can tell them apart in queue/. A
 * clean stop removes them; after a crash recovery removes them as it
 * removes any file that was never committed.
 */
static void
stock_fill(struct queue *q)
{
	size_t first = q->nstock, i;
	uint64_t t;
	char path[64];

	while (q->nstock < STOCK_MAX) {
		struct stock_file *s = &q->stock[q->nstock];

		new_id(q, s->id);
		path_of(path, sizeof(path), s->id, "msg");
		if ((s->fd = pool_open(q, path, O_RDWR)) == -1 || futimens(s->fd, stock_epoch) == -1) {
			log_warn("event=stock-failed error=\"%s\"", strerror(errno));
			if (s->fd != -1) {
				unlink(path);
				close(s->fd);
			}
			break;
		}
		q->nstock++;
	}
	if (q->nstock == first)
		return;
	t = bgsync_request(q->dirsync);
	for (i = first; i < q->nstock; i++)
		q->stock[i].ticket = t;
}

/* The oldest file of the stock into f: 0, or -1 if there is none. */
static int
stock_take(struct queue *q, struct qfile *f)
{
	if (q->nstock == 0)
		return -1;
	memcpy(f->id, q->stock[0].id, sizeof(f->id));
	f->fd = q->stock[0].fd;
	f->dirticket = q->stock[0].ticket;
	memmove(&q->stock[0], &q->stock[1], --q->nstock * sizeof(q->stock[0]));
	return 0;
}

static void
stock_remove(struct queue *q)
{
	char path[64];

	while (q->nstock > 0) {
		struct stock_file *s = &q->stock[--q->nstock];

		path_of(path, sizeof(path), s->id, "msg");
		unlink(path);
		close(s->fd);
	}
}

/*
 * At start free/ is emptied, not reused: after a crash on a filesystem
 * without a journal, a name in free/ could still point to a file that a
 * committed message uses under its queue/ name again; removing that extra
 * name is harmless, writing into it would not be.
 */
static void
pool_scan(struct queue *q)
{
	DIR *d;
	struct dirent *de;
	char p[300];

	q->pool = calloc(POOL_MAX, sizeof(*q->pool));
	if ((d = opendir(QUEUE_FREE)) == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.') {
			snprintf(p, sizeof(p), QUEUE_FREE "/%s", de->d_name);
			unlink(p);
		}
	closedir(d);
}

/*
 * The first half of env_store: writes tmp/ID.env and starts its writeback
 * (see on_commit_batch). Returns the open file, or -1 with errno set.
 */
static int
env_write_tmp(struct queue *q, const struct envelope *env)
{
	char tmp[64];
	struct buf b;
	size_t off = 0;
	ssize_t n = 0;
	int fd, e;

	buf_init(&b, ENV_TEXT_MAX);
	if (envelope_encode(env, &b) == -1) {
		buf_free(&b);
		errno = ENOMEM;
		return -1;
	}
	snprintf(tmp, sizeof(tmp), QUEUE_TMP "/%s.env", env->id);
	if ((fd = pool_open(q, tmp, O_WRONLY)) == -1 && errno == EEXIST)
		fd = open(tmp, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd != -1) {
		while (off < b.len) {
			n = write(fd, b.data + off, b.len - off);
			if (n == -1 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		if (off == b.len && ftruncate(fd, (off_t)off) == -1)
			n = -1;
		if (off != b.len || n == -1) {
			e = n == 0 ? EIO : errno;
			close(fd);
			unlink(tmp);
			fd = -1;
			errno = e;
		}
	}
	buf_free(&b);
	return fd;
}

/* The second half: fdatasync (unless `synced`), rename into queue/; closes fd. */
static int
env_publish(const struct envelope *env, int fd, int synced)
{
	char tmp[64], dst[64];
	int r = -1, e;

	snprintf(tmp, sizeof(tmp), QUEUE_TMP "/%s.env", env->id);
	path_of(dst, sizeof(dst), env->id, "env");
	if ((synced || fdatasync(fd) == 0) && rename(tmp, dst) == 0)
		r = 0;
	e = errno;
	close(fd);
	if (r == -1)
		unlink(tmp);
	errno = e;
	return r;
}

/* Rewrites the envelope (write, fsync, rename): recipient states persist. */
static int
env_store(struct queue *q, const struct envelope *env, int sync_dir)
{
	int fd, r, e = 0;

	if ((fd = env_write_tmp(q, env)) == -1)
		return -1;
	r = env_publish(env, fd, 0);
	e = errno;
	if (r == 0 && sync_dir && fsync(q->dirfd) == -1) {
		e = errno;
		r = -1;
	}
	errno = e;
	return r;
}

static void
msg_remove_files(const char *id)
{
	char p[64];

	/* The envelope first: without it the content is an orphan, never re-delivered. */
	path_of(p, sizeof(p), id, "env");
	unlink(p);
	path_of(p, sizeof(p), id, "msg");
	unlink(p);
}

static void
msg_recycle_files(struct queue *q, const struct qmsg *m)
{
	/* The envelope first, as in msg_remove_files. */
	if (m->envfile)
		pool_put(q, m->env.id, "env");
	pool_put(q, m->env.id, "msg");
}

/*
 * How much of ID.msg is the message: up to its footer if it has one for
 * this ID (spoolfile.h), else all of it (committed through ID.env alone).
 */
static int
content_len_of(const char *id, uint64_t *len)
{
	struct spool_footer f;
	struct stat st;
	const char *why;
	char p[64];

	path_of(p, sizeof(p), id, "msg");
	if (spool_read_file(p, id, 0, &f, NULL, &why) == 0) {
		*len = f.content_len;
		return 0;
	}
	if (stat(p, &st) == -1)
		return -1;
	*len = (uint64_t)st.st_size;
	return 0;
}

/*
 * The envelope of a first commit, after the content of ID.msg (its CRC
 * checked), and the content's length. 0, or -1 with *why.
 */
static int
footer_envelope(const char *id, struct envelope *env, uint64_t *clen, const char **why)
{
	struct spool_footer f;
	struct buf b;
	char p[64];
	int r = -1;

	path_of(p, sizeof(p), id, "msg");
	buf_init(&b, ENV_TEXT_MAX);
	if (spool_read_file(p, id, 1, &f, &b, why) == 0 &&
	    envelope_decode(b.data, b.len, env, why) == 0) {
		if (strcmp(env->id, id) == 0) {
			*clen = f.content_len;
			r = 0;
		} else {
			envelope_free(env);
			*why = "envelope of another message";
		}
	}
	buf_free(&b);
	return r;
}

/* Puts the chain first..last at the end of the list (head, tail). */
static void
work_append(struct work **head, struct work **tail, struct work *first, struct work *last)
{
	if (*tail)
		(*tail)->next = first;
	else
		*head = first;
	*tail = last;
}

static void
enqueue_work(struct queue *q, struct qmsg *m, size_t rcpt)
{
	struct work *w = calloc(1, sizeof(*w));

	if (w == NULL)
		log_panic("event=oom where=enqueue_work");
	w->m = m;
	w->rcpt = rcpt;
	m->inflight++;
	if (m->direct)
		work_append(&q->todo, &q->todo_tail, w, w);
	else {
		work_append(&q->later, &q->later_tail, w, w);
		q->nlater++;
	}
}

/* The held deliveries join the line for the deliver process. */
static void
later_release(struct queue *q)
{
	if (q->later == NULL)
		return;
	log_debug("event=later-released n=%zu", q->nlater);
	work_append(&q->todo, &q->todo_tail, q->later, q->later_tail);
	q->later = q->later_tail = NULL;
	q->nlater = 0;
	if (q->ev_later)
		evtimer_del(q->ev_later);
}

static const char *
domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : "";
}

/* One mta job per destination domain with that domain's pending recipients. */
static void
relay_schedule(struct qmsg *m)
{
	struct queue *q = m->q;
	unsigned char *sent = calloc(m->env.nrcpts ? m->env.nrcpts : 1, 1);
	size_t i, k;

	if (sent == NULL)
		return;
	for (i = 0; i < m->env.nrcpts && q->mta; i++) {
		const struct envelope_rcpt *r = &m->env.rcpts[i];
		const char *dom = domain_of(r->addr);
		char path[64];
		struct buf b;
		uint32_t n = 0;
		int fd;

		if (sent[i] || r->kind != RCPTK_REMOTE || r->state != RCPT_PENDING)
			continue;
		buf_init(&b, IPC_MAX_MSG);
		ipc_put_str(&b, m->env.id);
		ipc_put_str(&b, m->env.sender);
		ipc_put_str(&b, dom);
		ipc_put_u64(&b, m->env.size);
		ipc_put_u32(&b, (m->env.body_8bit ? 1u : 0) | (m->env.smtputf8 ? 2u : 0) |
		    (signer_eligible(m->env.proto, m->env.client_addr) ? 4u : 0));
		ipc_put_u32(&b, (uint32_t)m->env.ret);
		ipc_put_str(&b, m->env.envid);
		for (k = i; k < m->env.nrcpts; k++)
			if (!sent[k] && m->env.rcpts[k].kind == RCPTK_REMOTE &&
			    m->env.rcpts[k].state == RCPT_PENDING &&
			    strcasecmp(domain_of(m->env.rcpts[k].addr), dom) == 0)
				n++;
		ipc_put_u32(&b, n);
		for (k = i; k < m->env.nrcpts; k++)
			if (!sent[k] && m->env.rcpts[k].kind == RCPTK_REMOTE &&
			    m->env.rcpts[k].state == RCPT_PENDING &&
			    strcasecmp(domain_of(m->env.rcpts[k].addr), dom) == 0) {
				ipc_put_u32(&b, (uint32_t)k);
				ipc_put_str(&b, m->env.rcpts[k].addr);
				ipc_put_u32(&b, m->env.rcpts[k].notify);
				ipc_put_str(&b, m->env.rcpts[k].orcpt);
				sent[k] = 1;
			}
		ipc_put_str(&b, m->env.prepend ? m->env.prepend : "");
		ipc_put_u64(&b, m->content_len);
		path_of(path, sizeof(path), m->env.id, "msg");
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
		    ipc_send(q->mta, MSG_M_RELAY, 0, b.data, b.len, fd) == -1)
			log_warn("event=relay-request-failed id=%s domain=%s", m->env.id, dom);
		else {
			m->relaying++;
			q->relays++;
		}
		if (fd != -1)
			close(fd);
		buf_free(&b);
	}
	free(sent);
}

/* The enhanced status at the start of a reason ("5.1.1 ..." or "550 5.1.1 ..."). */
static const char *
status_of(const char *why, const char *dflt)
{
	static char st[16];
	const char *p = why;
	size_t n = 0;

	if (p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' &&
	    p[2] <= '9' && p[3] == ' ')
		p += 4;
	while (n < sizeof(st) - 1 && ((p[n] >= '0' && p[n] <= '9') || p[n] == '.'))
		n++;
	if (n < 5 || p[1] != '.' || (p[n] != ' ' && p[n] != '\0'))
		return dflt;
	memcpy(st, p, n);
	st[n] = '\0';
	return st;
}

static void
dsn_mark(struct qmsg *m, size_t k, char what)
{
	if (m->dsn_now == NULL)
		m->dsn_now = calloc(m->env.nrcpts ? m->env.nrcpts : 1, 1);
	if (m->dsn_now)
		m->dsn_now[k] = what;
}

/* A recipient failed for good: recorded now, bounced at msg_check_done. */
static void
msg_fail_rcpt(struct qmsg *m, size_t k, const char *why)
{
	struct envelope_rcpt *r = &m->env.rcpts[k];

	r->state = RCPT_FAILED;
	snprintf(r->last_error, sizeof(r->last_error), "%s", why);
	log_info("event=failed id=%s to=%s error=\"%s\"", m->env.id, r->addr, why);
	if (r->status[0] != '5')
		snprintf(r->status, sizeof(r->status), "%s", status_of(why, "5.0.0"));
	/* RFC 3461 4.1: no NOTIFY means FAILURE (and DELAY); NEVER means nothing. */
	if (r->notify == 0 || (r->notify & DSN_NOTIFY_FAILURE))
		dsn_mark(m, k, 'f');
}

/* A recipient delivered: a success DSN if it asked for one (NOTIFY=SUCCESS). */
static void
msg_done_rcpt(struct qmsg *m, size_t k)
{
	m->env.rcpts[k].state = RCPT_DELIVERED;
	m->env.rcpts[k].last_error[0] = '\0';
	if (m->env.rcpts[k].notify & DSN_NOTIFY_SUCCESS)
		dsn_mark(m, k, 's');
}

static struct qmsg *
msg_find(struct queue *q, const char *id)
{
	return idmap_get(q->byid, id);
}

static void
on_relay_result(struct queue *q, struct ipc_msg *msg)
{
	char id[QUEUE_ID_LEN + 1], enh[16], text[512], host[300];
	struct qmsg *m;
	uint32_t n, i, passed;

	ipc_get_str(msg, id, sizeof(id));
	passed = ipc_get_u32(msg);	/* the peer took over the DSN duty (RFC 3461 5.2) */
	n = ipc_get_u32(msg);
	if ((m = msg_find(q, id)) == NULL || msg->bad)
		return;
	for (i = 0; i < n && !msg->bad; i++) {
		uint32_t k = ipc_get_u32(msg), code = ipc_get_u32(msg);
		struct envelope_rcpt *r;

		ipc_get_str(msg, enh, sizeof(enh));
		ipc_get_str(msg, text, sizeof(text));
		ipc_get_str(msg, host, sizeof(host));
		if (msg->bad || k >= m->env.nrcpts || m->env.rcpts[k].state != RCPT_PENDING)
			continue;
		r = &m->env.rcpts[k];
		r->attempts++;
		snprintf(r->last_error, sizeof(r->last_error), "%s", code / 100 == 2 ? "" : text);
		snprintf(r->remote_mta, sizeof(r->remote_mta), "%s", host);
		snprintf(r->status, sizeof(r->status), "%s", enh);
		if (code / 100 == 2 && passed)
			r->notify &= ~DSN_NOTIFY_SUCCESS;	/* the peer reports success itself */
		if (code / 100 == 2)
			msg_done_rcpt(m, k);
		else if (code / 100 == 5)
			msg_fail_rcpt(m, k, text);
	}
	if (m->relaying)
		m->relaying--;
	if (q->relays)
		q->relays--;
	msg_check_done(m);
	journal_empty_if_idle(q);
}

static void
on_mta(struct ipc *ipc, struct ipc_msg *msg, void *arg)
{
	struct queue *q = arg;
	struct qmsg *m;

	if (msg) {
		if (msg->type == MSG_M_RESULT)
			on_relay_result(q, msg);
		if (msg->fd != -1)
			close(msg->fd);
		return;
	}
	/* The mta went away: its jobs come back as deferred at the next retry. */
	log_warn("event=mta-lost jobs=%u", q->relays);
	if (ipc == q->mta)
		q->mta = NULL;
	ipc_free(ipc);
	q->relays = 0;
	for (m = q->msgs; m; m = m->next)
		m->relaying = 0;
	for (m = q->msgs; m; ) {
		struct qmsg *next = m->next;

		msg_check_done(m);
		m = next;
	}
}

static void
msg_schedule(struct qmsg *m)
{
	struct queue *q = m->q;
	size_t i;

	for (i = 0; i < m->env.nrcpts; i++)
		if (m->env.rcpts[i].state == RCPT_PENDING && m->env.rcpts[i].kind == RCPTK_LOCAL)
			enqueue_work(q, m, i);
	relay_schedule(m);
	msg_check_done(m);	/* may free m */
	schedule(q);
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	msg_schedule(arg);
}

/*
 * Puts a message tern made itself (a DSN) into the queue, from <> to addr:
 * content and envelope written and synced as a client's would be.
 */
static int
queue_inject(struct queue *q, const char *addr, const struct buf *content,
    enum dsn_kind kind, int body_8bit)
{
	struct envelope env;
	char path[64];
	int fd, ok = -1;
	struct qmsg *m;

	envelope_init(&env);
	new_id(q, env.id);
	env.created = time(NULL);
	snprintf(env.helo, sizeof(env.helo), "%s", q->cfg->hostname);
	snprintf(env.client_addr, sizeof(env.client_addr), "local");
	snprintf(env.proto, sizeof(env.proto), "local");
	env.body_8bit = body_8bit;
	env.size = content->len;
	env.dsn_kind = kind;
	/* A failure here is judged by msg_report: once to the postmaster, never more. */
	if (resolve_address_into_envelope(q->cfg, addr, 1, &env) == -1)
		goto out;
	path_of(path, sizeof(path), env.id, "msg");
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) == -1)
		goto out;
	if (write(fd, content->data, content->len) == (ssize_t)content->len && fdatasync(fd) == 0 &&
	    env_store(q, &env, 1) == 0)
		ok = 0;
	close(fd);
	if (ok == -1) {
		unlink(path);
		goto out;
	}
	log_info("event=dsn-queued id=%s to=<%s> kind=%d", env.id, addr, (int)kind);
	if ((m = msg_add(q, &env)) != NULL) {
		m->content_len = content->len;
		m->envfile = 1;
		msg_schedule(m);
	}
out:
	envelope_free(&env);
	return ok;
}

/*
 * The DSN owed for the recipients marked `what` ('f' failed, 's'
 * delivered): to the sender, never to <> (RFC 3461 6.2, RFC 5321 6.1).
 * A bounce of our own bounce goes to the postmaster once (a double bounce),
 * and one of those that fails is only logged.
 */
static void
msg_report(struct qmsg *m, char what)
{
	struct queue *q = m->q;
	struct dsn_rcpt *dr;
	struct dsn_input in;
	char err[256], postmaster[SMTP_PATH_MAX + 1], from[SMTP_PATH_MAX + 1];
	const char *to = m->env.sender;
	struct buf out;
	size_t i, n = 0;
	int fd, flags;

	for (i = 0; i < m->env.nrcpts; i++)
		n += m->dsn_now[i] == what;
	if (n == 0)
		return;
	snprintf(postmaster, sizeof(postmaster), "postmaster@%s",
	    q->cfg->ndomains ? q->cfg->domains[0].name : q->cfg->hostname);
	if (to[0] == '\0') {
		if (what != 'f' || m->env.dsn_kind != DSN_KIND_BOUNCE ||
		    strcasecmp(m->env.rcpts[0].orig, postmaster) == 0) {
			log_info("event=dsn-dropped id=%s failed=%zu reason=\"null sender\"", m->env.id, n);
			return;
		}
		to = postmaster;	/* double bounce */
	}
	if ((dr = calloc(n, sizeof(*dr))) == NULL)
		return;
	for (i = 0, n = 0; i < m->env.nrcpts; i++) {
		const struct envelope_rcpt *r = &m->env.rcpts[i];

		if (m->dsn_now[i] != what)
			continue;
		dr[n].final_rcpt = r->addr;
		dr[n].orig_rcpt = r->orcpt[0] ? r->orcpt : NULL;
		dr[n].action = what == 'f' ? "failed" : what == 'd' ? "delayed" :
		    r->kind == RCPTK_LOCAL ? "delivered" : "relayed";
		dr[n].status = what == 'd' ? status_of(r->last_error, "4.0.0") :
		    r->status[0] ? r->status : what == 'f' ? "5.0.0" : "2.0.0";
		if (what == 'd')
			dr[n].will_retry_until = (time_t)m->env.created + (time_t)q->cfg->lifetime;
		dr[n].remote_mta = r->remote_mta[0] ? r->remote_mta : NULL;
		dr[n].diagnostic = r->last_error[0] ? r->last_error : NULL;
		dr[n].last_attempt = time(NULL);
		n++;
	}
	snprintf(from, sizeof(from), "MAILER-DAEMON@%s", q->cfg->hostname);
	memset(&in, 0, sizeof(in));
	in.reporting_mta = q->cfg->hostname;
	in.queue_id = m->env.id;
	in.envid = m->env.envid[0] ? m->env.envid : NULL;
	in.arrival = (time_t)m->env.created;
	in.sender = to;
	in.postmaster = from;
	in.ret_full = m->env.ret != DSN_RET_HDRS;
	in.rcpts = dr;
	in.nrcpts = n;
	in.now = time(NULL);
	in.message_id_domain = q->cfg->hostname;
	in.content_len = m->content_len;
	buf_init(&out, (size_t)8 << 20);
	path_of(err, sizeof(err), m->env.id, "msg");
	if ((fd = open(err, O_RDONLY | O_CLOEXEC)) == -1 ||
	    (flags = dsn_build(&in, fd, (size_t)1 << 20, &out, err, sizeof(err))) < 0 ||
	    queue_inject(q, to, &out, what == 'f' ? DSN_KIND_BOUNCE : what == 'd' ? DSN_KIND_DELAY :
	    DSN_KIND_SUCCESS,
	    (flags & DSN_NEEDS_8BITMIME) != 0) == -1)
		log_warn("event=dsn-failed id=%s to=<%s> error=\"%s\"", m->env.id, to,
		    fd == -1 ? strerror(errno) : err);
	if (fd != -1)
		close(fd);
	buf_free(&out);
	free(dr);
}

/* Everything answered: remove, keep for relay, or wait for a retry. */
static void
msg_check_done(struct qmsg *m)
{
	size_t i, pending = 0, held = 0, failed = 0, done = 0;
	int expired = time(NULL) - m->env.created > (time_t)m->q->cfg->lifetime;

	if (m->inflight || m->relaying)
		return;
	if (m->direct && direct_end(m))
		return;
	if (m->abandoned) {
		msg_remove_files(m->env.id);
		msg_free(m);
		return;
	}
	if (m->ctl_pending && ctl_apply_pending(m))
		return;	/* deleted */
	/* RFC 5321 4.5.4.1: give up after the lifetime; a DSN says so. */
	for (i = 0; i < m->env.nrcpts && expired; i++)
		if (m->env.rcpts[i].state == RCPT_PENDING) {
			char why[300];

			snprintf(why, sizeof(why), "4.4.7 message expired after %us in the queue; last "
			    "error: %s", m->q->cfg->lifetime, m->env.rcpts[i].last_error[0] ?
			    m->env.rcpts[i].last_error : "none");
			msg_fail_rcpt(m, i, why);
		}
	if (m->dsn_now) {
		msg_report(m, 'f');
		msg_report(m, 's');
		free(m->dsn_now);
		m->dsn_now = NULL;
	}
	for (i = 0; i < m->env.nrcpts; i++) {
		switch (m->env.rcpts[i].state) {
		case RCPT_PENDING: pending++; break;
		case RCPT_HELD: held++; break;
		case RCPT_FAILED: failed++; break;
		case RCPT_DELIVERED: done++; break;
		}
	}
	if (pending && !m->env.warned && m->q->cfg->delay_warning &&
	    time(NULL) - m->env.created >= (time_t)m->q->cfg->delay_warning) {
		/* RFC 3461 4.1: a "delayed" DSN once, unless NOTIFY leaves DELAY out. */
		for (i = 0; i < m->env.nrcpts; i++) {
			const struct envelope_rcpt *r = &m->env.rcpts[i];

			if (r->state == RCPT_PENDING && (r->notify == 0 || (r->notify & DSN_NOTIFY_DELAY)))
				dsn_mark(m, i, 'd');
		}
		if (m->dsn_now) {
			msg_report(m, 'd');
			free(m->dsn_now);
			m->dsn_now = NULL;
		}
		m->env.warned = 1;
	}
	if (pending) {
		unsigned delay = m->q->cfg->retry_interval << (m->retries < 6 ? m->retries : 6);
		struct timeval tv = { delay > RETRY_MAX ? RETRY_MAX : delay, 0 };

		m->retries++;
		/* Kept on disk so that a restart waits too (no burst of retries). */
		m->env.next_attempt = (int64_t)time(NULL) + tv.tv_sec;
		if (env_store(m->q, &m->env, 0) == -1)
			log_warn("event=envelope-store-failed id=%s error=\"%s\"", m->env.id, strerror(errno));
		else
			m->envfile = 1;
		if (m->retry == NULL)
			m->retry = evtimer_new(m->q->base, on_retry, m);
		evtimer_add(m->retry, &tv);
		log_info("event=deferred id=%s pending=%zu retry_in=%lds", m->env.id, pending, (long)tv.tv_sec);
		return;
	}
	if (held) {
		if (env_store(m->q, &m->env, 1) == -1)
			log_warn("event=envelope-store-failed id=%s error=\"%s\"", m->env.id, strerror(errno));
		log_info("event=held id=%s recipients=%zu", m->env.id, held);
		m->q->nheld++;
		msg_free(m);	/* stays on disk, shown by the spool */
		return;
	}
	log_info("event=removed id=%s delivered=%zu failed=%zu", m->env.id, done, failed);
	msg_recycle_files(m->q, m);
	msg_free(m);
}

/* ---- delivery ---- */

/* The deliver process with the fewest requests in flight: one busy syncing a batch leaves the next to another. */
static struct dchan *
dchan_pick(struct queue *q)
{
	struct dchan *best = NULL;
	size_t i;

	for (i = 0; i < q->ndeliver; i++)
		if (!q->deliver[i]->retiring &&
		    (best == NULL || q->deliver[i]->nsent < best->nsent))
			best = q->deliver[i];
	return best;
}

static void
schedule(struct queue *q)
{
	static const struct timeval later_tv = { 0, LATER_MS * 1000 };
	struct dchan *dc;

	if (q->nlater >= LATER_BATCH || q->ev_later == NULL)
		later_release(q);
	else if (q->nlater > 0 && !evtimer_pending(q->ev_later, NULL))
		evtimer_add(q->ev_later, &later_tv);
	while (q->todo && q->nsent < DELIVER_WINDOW && (dc = dchan_pick(q)) != NULL) {
		struct work *w = q->todo;
		struct envelope_rcpt *r = &w->m->env.rcpts[w->rcpt];
		char path[64];
		struct buf b;
		int fd;

		q->todo = w->next;
		if (q->todo == NULL)
			q->todo_tail = NULL;
		w->next = NULL;
		path_of(path, sizeof(path), w->m->env.id, "msg");
		buf_init(&b, IPC_MAX_MSG);
		ipc_put_str(&b, w->m->env.id);
		ipc_put_u32(&b, (uint32_t)w->rcpt);
		ipc_put_str(&b, r->user);
		ipc_put_str(&b, r->domain);
		ipc_put_str(&b, w->m->env.sender);
		ipc_put_str(&b, w->m->env.prepend ? w->m->env.prepend : "");
		ipc_put_u32(&b, (w->m->env.quarantine ? DELIVER_F_QUARANTINE : 0) |
		    (w->m->direct ? 0 : DELIVER_F_LATER));
		ipc_put_u64(&b, w->m->content_len);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
		    ipc_send(dc->ipc, MSG_D_DELIVER, 0, b.data, b.len, fd) == -1) {
			log_warn("event=deliver-request-failed id=%s error=\"%s\"", w->m->env.id, strerror(errno));
			r->attempts++;
			w->m->inflight--;
			free(w);
			if (fd != -1)
				close(fd);
			buf_free(&b);
			continue;
		}
		close(fd);
		buf_free(&b);
		work_append(&dc->sent, &dc->sent_tail, w, w);
		dc->nsent++;
		q->nsent++;
	}
}

static void
on_later(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;

	later_release(q);
	schedule(q);
}

static void
on_deliver_result(struct dchan *dc, struct ipc_msg *m)
{
	struct queue *q = dc->q;
	struct work *w = dc->sent;
	struct envelope_rcpt *r;
	char text[256];
	uint32_t status;

	if (w == NULL || m->type != MSG_D_RESULT)
		return;
	status = ipc_get_u32(m);
	ipc_get_str(m, text, sizeof(text));
	if (ipc_get_end(m) == -1) {
		status = DELIVER_TEMPFAIL;
		snprintf(text, sizeof(text), "malformed answer from the deliver process");
	}
	dc->sent = w->next;
	if (dc->sent == NULL)
		dc->sent_tail = NULL;
	dc->nsent--;
	q->nsent--;
	r = &w->m->env.rcpts[w->rcpt];
	r->attempts++;
	switch (status) {
	case DELIVER_OK:
		msg_done_rcpt(w->m, w->rcpt);
		log_info("event=delivered id=%s to=%s mailbox=%s", w->m->env.id, r->addr, text);
		break;
	case DELIVER_PERMFAIL:
		msg_fail_rcpt(w->m, w->rcpt, text);
		break;
	default:
		snprintf(r->last_error, sizeof(r->last_error), "%s", text);
		log_info("event=tempfail id=%s to=%s error=\"%s\"", w->m->env.id, r->addr, text);
		break;
	}
	w->m->inflight--;
	msg_check_done(w->m);
	free(w);
	if (dc->retiring && dc->nsent == 0)
		event_active(q->ev_retire, EV_TIMEOUT, 0);
	schedule(q);
}

static void
dchan_unlist(struct dchan *dc)
{
	struct queue *q = dc->q;
	size_t i;

	for (i = 0; i < q->ndeliver; i++)
		if (q->deliver[i] == dc) {
			q->deliver[i] = q->deliver[--q->ndeliver];
			q->deliver[q->ndeliver] = NULL;
			break;
		}
}

/* Retiring channels with nothing in flight: closed, their process exits. */
static void
on_retire(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	struct dchan *gone[sizeof(q->deliver) / sizeof(q->deliver[0])];
	size_t i, n = 0;

	for (i = 0; i < q->ndeliver; i++)
		if (q->deliver[i]->retiring && q->deliver[i]->nsent == 0)
			gone[n++] = q->deliver[i];
	for (i = 0; i < n; i++) {
		dchan_unlist(gone[i]);
		ipc_free(gone[i]->ipc);
		free(gone[i]);
		log_info("event=deliver-retired");
	}
}

/*
 * A reload: the deliver processes of the older configuration get no new
 * requests and are closed once their answers are in, so nothing they
 * delivered is sent again.
 */
static void
dchan_retire_all(struct queue *q)
{
	size_t i;

	for (i = 0; i < q->ndeliver; i++)
		q->deliver[i]->retiring = 1;
	event_active(q->ev_retire, EV_TIMEOUT, 0);
}

/*
 * A deliver process went away: what it had goes to the others (or the
 * next one), first in line. Its answers are lost, so a message it had
 * delivered may be delivered again.
 */
static void
dchan_drop(struct dchan *dc)
{
	struct queue *q = dc->q;

	log_warn("event=deliver-lost inflight=%u", dc->nsent);
	dchan_unlist(dc);
	ipc_free(dc->ipc);
	if (dc->sent_tail) {
		dc->sent_tail->next = q->todo;
		if (q->todo == NULL)
			q->todo_tail = dc->sent_tail;
		q->todo = dc->sent;
	}
	q->nsent -= dc->nsent;
	free(dc);
}

static void
on_deliver(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct dchan *dc = arg;
	struct queue *q = dc->q;

	if (m) {
		on_deliver_result(dc, m);
		if (m->fd != -1)
			close(m->fd);
		return;
	}
	dchan_drop(dc);
	schedule(q);
}

static int
dchan_add(struct queue *q, int fd)
{
	struct dchan *dc;
	size_t i;

	/* Reloads faster than the old processes finish: a retiring one goes now. */
	for (i = 0; q->ndeliver == sizeof(q->deliver) / sizeof(q->deliver[0]) && i < q->ndeliver; i++)
		if (q->deliver[i]->retiring)
			dchan_drop(q->deliver[i]);
	if (q->ndeliver == sizeof(q->deliver) / sizeof(q->deliver[0]) ||
	    (dc = calloc(1, sizeof(*dc))) == NULL)
		return -1;
	dc->q = q;
	if ((dc->ipc = ipc_new(q->base, fd, on_deliver, dc)) == NULL) {
		free(dc);
		return -1;
	}
	q->deliver[q->ndeliver++] = dc;
	return 0;
}

/* ---- commits ---- */

static void
qfile_drop(struct qfile *f, int unlink_it)
{
	struct qfile **pp;
	char p[64];

	for (pp = &f->w->files; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	if (unlink_it) {
		path_of(p, sizeof(p), f->id, "msg");
		unlink(p);
	}
	if (!f->spare && f->w->q->nopen)
		f->w->q->nopen--;
	close(f->fd);
	buf_free(&f->env);
	free(f);
}

/*
 * A file the worker gave back (the client left or failed in the middle of
 * the data): kept in free/ for the next message, not unlinked (see pool_put).
 */
static void
qfile_recycle(struct queue *q, struct qfile *f)
{
	char id[QUEUE_ID_LEN + 1];

	memcpy(id, f->id, sizeof(id));
	qfile_drop(f, 0);
	pool_put(q, id, "msg");
}

static struct qfile *
qfile_find(struct wchan *w, const char *id)
{
	struct qfile *f;

	for (f = w->files; f; f = f->next)
		if (strcmp(f->id, id) == 0)
			return f;
	return NULL;
}

/*
 * A file for worker w: from the stock when `stocked` (its name is on disk
 * already; if the stock is empty, one whose name starts on its way to disk
 * now), else a new one. NULL with errno.
 */
static struct qfile *
qfile_new(struct wchan *w, int stocked)
{
	struct queue *q = w->q;
	struct qfile *f = calloc(1, sizeof(*f));
	char path[64];

	if (f == NULL)
		return NULL;
	if (!stocked || stock_take(q, f) == -1) {
		new_id(q, f->id);
		path_of(path, sizeof(path), f->id, "msg");
		if ((f->fd = pool_open(q, path, O_RDWR)) == -1) {
			int e = errno;

			free(f);
			errno = e;
			return NULL;
		}
		if (stocked)
			f->dirticket = bgsync_request(q->dirsync);
	}
	f->w = w;
	buf_init(&f->env, ENV_TEXT_MAX);
	f->next = w->files;
	w->files = f;
	return f;
}

/*
 * The next message's file, handed to the worker with a commit's answer
 * (MSG_Q_COMMIT_OK): its next DATA needs no MSG_Q_OPEN, and one message at
 * a time (S=1) saves a round trip, two wake-ups, per message. A file of
 * the stock, so that it can be stored alone; until the worker commits or
 * gives it back it is not counted as open (see on_env).
 */
static struct qfile *
spare_new(struct wchan *w)
{
	struct queue *q = w->q;
	/* Under load (other commits, deliveries first) a plain file, as MSG_Q_OPEN gives. */
	int stocked = q->ndirect == 0 && q->nbatch <= 1;
	struct qfile *f = qfile_new(w, stocked);

	if (f != NULL)
		f->spare = 1;
	if (f == NULL || (!stocked && futimens(f->fd, stock_epoch) == -1)) {
		log_warn("event=spare-failed error=\"%s\"", strerror(errno));
		if (f)
			qfile_recycle(q, f);
		return NULL;
	}
	if (w->q->nstock < STOCK_LOW)
		stock_fill(w->q);
	return f;
}

static void
reply_commit_to(struct wchan *w, uint32_t reqid, const char *id, int err, int spare)
{
	struct qfile *f = spare && !err ? spare_new(w) : NULL;
	struct buf b;

	buf_init(&b, 256);
	ipc_put_str(&b, id);
	if (err)
		ipc_put_u32(&b, (uint32_t)err);
	else if (f)
		ipc_put_str(&b, f->id);
	ipc_send(w->ipc, err ? MSG_Q_COMMIT_FAIL : MSG_Q_COMMIT_OK, reqid, b.data, b.len,
	    f ? f->fd : -1);
	buf_free(&b);
}

static void
reply_commit(struct qfile *f, int err)
{
	reply_commit_to(f->w, f->reqid, f->id, err, f->want_spare);
}

/* Checks what a worker sent us before it goes to disk: it may be hostile. */
static int
env_check(struct qfile *f, struct envelope *env, const char **why)
{
	size_t i;

	if (envelope_decode(f->env.data, f->env.len, env, why) == -1)
		return -1;
	/* What only the queue decides is the queue's, whatever the worker wrote. */
	env->dsn_kind = DSN_KIND_NONE;
	env->warned = 0;
	env->next_attempt = 0;
	if (strcmp(env->id, f->id) != 0 || env->nrcpts == 0) {
		*why = "envelope does not match the file";
		envelope_free(env);
		return -1;
	}
	for (i = 0; i < env->nrcpts; i++) {
		const struct envelope_rcpt *r = &env->rcpts[i];

		/* The deliver process checks the domain again at delivery. */
		if (r->state != RCPT_PENDING ||
		    (r->kind == RCPTK_LOCAL && (r->user[0] == '\0' || r->domain[0] == '\0'))) {
			*why = "bad recipient state";
			envelope_free(env);
			return -1;
		}
	}
	return 0;
}

/* ---- delivery before the 250 ---- */

/*
 * Mail for local mailboxes only is delivered while the client waits, and
 * acknowledged once it is in every mailbox (the deliver process fsyncs the
 * Maildir file before its link into new/ and new/ before it answers): the
 * spool file then never needs an fsync, and no envelope is written at all.
 * That halves the disk flushes per message. Whatever does not go as
 * planned (a recipient not delivered, the deliver process slow or gone
 * for DIRECT_WAIT_MS) turns the message into an ordinary one: content and
 * envelope synced, then the 250, then retries and bounces as usual. A
 * crash before the 250 leaves a spool file without envelope (removed at
 * recovery) and perhaps a delivered copy: the client, without its 250,
 * sends again (a duplicate, never a loss).
 */
static int
direct_ok(const struct queue *q, const struct envelope *env)
{
	size_t i;

	if (q->ndeliver == 0 || q->todo != NULL || env->nrcpts > DIRECT_RCPTS ||
	    q->nsent + env->nrcpts > DELIVER_WINDOW)
		return 0;
	for (i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].kind != RCPTK_LOCAL || (env->rcpts[i].notify & DSN_NOTIFY_SUCCESS))
			return 0;
	return 1;
}

static void
direct_reply(struct qmsg *m, int err, const char *how)
{
	if (m->direct_w)
		reply_commit_to(m->direct_w, m->direct_reqid, m->env.id, err, m->direct_spare);
	m->direct_w = NULL;
	if (m->direct && m->q->ndirect)
		m->q->ndirect--;
	m->direct = 0;
	if (m->direct_deadline)
		evtimer_del(m->direct_deadline);
	if (err)
		log_warn("event=commit-failed id=%s error=\"%s\"", m->env.id, strerror(err));
	else
		log_info("event=committed id=%s from=<%s> nrcpt=%zu size=%" PRIu64 " client=%s direct=%s",
		    m->env.id, m->env.sender, m->env.nrcpts, m->env.size, m->env.client_addr, how);
}

/*
 * Stores a direct message as an ordinary commit would (content and
 * envelope with the recipients' states so far, the directory), then
 * answers. It goes on as any queued message, or, not stored, the client
 * is refused and the message abandoned (msg_check_done removes it).
 */
static void
direct_store(struct qmsg *m)
{
	char p[64];
	int fd, err = 0;

	/* Stored through ID.env: the file must end where the content does. */
	path_of(p, sizeof(p), m->env.id, "msg");
	if ((fd = open(p, O_WRONLY | O_CLOEXEC)) == -1 || ftruncate(fd, (off_t)m->content_len) == -1 ||
	    fdatasync(fd) == -1)
		err = errno;
	if (fd != -1)
		close(fd);
	if (err == 0 && env_store(m->q, &m->env, 1) == -1)
		err = errno ? errno : EIO;
	if (err == 0)
		m->envfile = 1;
	direct_reply(m, err, "stored");
	m->abandoned = err != 0;
}

/* Every recipient has its answer. 1 if m is gone (all delivered). */
static int
direct_end(struct qmsg *m)
{
	size_t i;

	for (i = 0; i < m->env.nrcpts; i++)
		if (m->env.rcpts[i].state != RCPT_DELIVERED) {
			direct_store(m);	/* stored, or abandoned: msg_check_done goes on */
			return 0;
		}
	direct_reply(m, 0, "delivered");
	log_info("event=removed id=%s delivered=%zu failed=0", m->env.id, m->env.nrcpts);
	pool_put(m->q, m->env.id, "msg");
	msg_free(m);
	return 1;
}

static void
on_direct_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct qmsg *m = arg;

	if (!m->direct)
		return;
	log_info("event=direct-timeout id=%s inflight=%u", m->env.id, m->inflight);
	/* Its deliveries still come back, and count as for any queued message. */
	direct_store(m);
}

/* Takes over env and f (which the worker wrote and the queue checked). */
static void
direct_start(struct queue *q, struct qfile *f, struct envelope *env, uint64_t clen)
{
	struct timeval tv = { DIRECT_WAIT_MS / 1000, (DIRECT_WAIT_MS % 1000) * 1000 };
	struct qmsg *m = msg_add(q, env);
	size_t i;

	if (m == NULL || (m->direct_deadline = evtimer_new(q->base, on_direct_deadline, m)) == NULL) {
		reply_commit(f, ENOMEM);
		qfile_drop(f, 1);
		if (m)
			msg_free(m);
		envelope_free(env);
		return;
	}
	m->direct = 1;
	q->ndirect++;
	m->content_len = clen;
	m->direct_w = f->w;
	m->direct_reqid = f->reqid;
	m->direct_spare = f->want_spare;
	evtimer_add(m->direct_deadline, &tv);
	qfile_drop(f, 0);
	for (i = 0; i < m->env.nrcpts; i++)
		enqueue_work(q, m, i);
}

/*
 * The first store of a message: its envelope and footer after the content
 * (spoolfile.h), so that one fdatasync makes it durable. 0, or -1 with errno.
 */
static int
footer_write(struct qfile *f, const struct envelope *env, uint64_t clen)
{
	struct buf b;
	int rc;

	buf_init(&b, ENV_TEXT_MAX);
	if (envelope_encode(env, &b) == -1) {
		buf_free(&b);
		errno = ENOMEM;
		return -1;
	}
	rc = spool_append(f->fd, f->id, clen, &b);
	buf_free(&b);
	return rc;
}

/*
 * Group commit: every commit of this loop turn is written (envelope and
 * footer after its content), then all are fdatasync'd at once together
 * with one fsync of queue/ (which makes the names durable that on_open
 * gave them: syncpool.h, the disk merges their cache flushes). No 250
 * before all of that.
 */
static void
on_commit_batch(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	struct envelope *envs;
	uint64_t *clens;
	int *errs, *fds, *serrs;
	size_t i, n = q->nbatch, needdir = 0;

	if (n == 0)
		return;
	envs = calloc(n, sizeof(*envs));
	clens = calloc(n, sizeof(*clens));
	errs = calloc(n, sizeof(*errs));
	fds = calloc(n + 1, sizeof(*fds));	/* contents, then queue/ */
	serrs = calloc(n + 1, sizeof(*serrs));
	if (!envs || !clens || !errs || !fds || !serrs)
		log_panic("event=oom where=commit");
	for (i = 0; i < n; i++) {
		struct qfile *f = q->batch[i];
		const char *why = NULL;
		off_t end;

		envelope_init(&envs[i]);
		fds[i] = -1;
		if (env_check(f, &envs[i], &why) == -1) {
			log_warn("event=commit-refused id=%s reason=\"%s\"", f->id, why);
			errs[i] = EINVAL;
			continue;
		}
		/* The worker's writes ended at the shared offset. */
		if ((end = lseek(f->fd, 0, SEEK_CUR)) == -1) {
			errs[i] = errno;
			continue;
		}
		clens[i] = (uint64_t)end;
		/*
		 * A lone message is stored: one flush (its file; its name was
		 * synced meanwhile) before the 250, delivery after. Under load
		 * delivering first pays: the flushes of many messages merge.
		 */
		if (!(n == 1 && q->ndirect == 0 && f->lone) && direct_ok(q, &envs[i]))
			errs[i] = -1;	/* delivered first, see direct_start */
		else if (footer_write(f, &envs[i], clens[i]) == -1)
			errs[i] = errno ? errno : EIO;
		else {
			fds[i] = f->fd;
			if (!bgsync_covered(q->dirsync, f->dirticket))
				needdir++;	/* its name is not known to be on disk */
		}
	}
	fds[n] = needdir ? q->dirfd : -1;
	syncpool_run_mixed(q->syncpool, fds, serrs, n + 1, n);
	for (i = 0; i < n; i++)
		if (fds[i] != -1 && (serrs[i] || serrs[n]))
			errs[i] = serrs[i] ? serrs[i] : serrs[n];
	for (i = 0; i < n; i++) {
		struct qfile *f = q->batch[i];
		struct qmsg *m;

		if (errs[i] == -1) {
			direct_start(q, f, &envs[i], clens[i]);
			continue;
		}
		reply_commit(f, errs[i]);
		if (errs[i]) {
			log_warn("event=commit-failed id=%s error=\"%s\"", f->id, strerror(errs[i]));
			qfile_drop(f, 1);
			envelope_free(&envs[i]);
			continue;
		}
		log_info("event=committed id=%s from=<%s> nrcpt=%zu size=%" PRIu64 " client=%s batch=%zu",
		    f->id, envs[i].sender, envs[i].nrcpts, envs[i].size, envs[i].client_addr, n);
		qfile_drop(f, 0);
		if ((m = msg_add(q, &envs[i])) != NULL) {
			m->content_len = clens[i];
			msg_schedule(m);
		} else
			envelope_free(&envs[i]);	/* on disk: found again at the next start */
	}
	q->nbatch = 0;
	free(envs);
	free(clens);
	free(errs);
	free(fds);
	free(serrs);
	schedule(q);
}

/* Nothing else in the works (open, committing, delivered first): a message now would be alone. */
static int
queue_alone(const struct queue *q)
{
	return q->nopen == 0 && q->ndirect == 0 && q->nbatch == 0;
}

static void
on_open(struct wchan *w, uint32_t reqid)
{
	struct queue *q = w->q;
	/*
	 * A message on its own (no other in the works) will be stored rather
	 * than delivered first (see on_commit_batch): it gets a file of the
	 * stock, whose name is on disk already, or one whose name starts on
	 * its way to disk now, while the client still sends.
	 */
	int lone = queue_alone(q);
	struct qfile *f = qfile_new(w, lone);
	struct buf b;

	buf_init(&b, 256);
	if (f == NULL) {
		int err = errno ? errno : ENOMEM;

		log_warn("event=open-failed error=\"%s\"", strerror(err));
		ipc_put_u32(&b, (uint32_t)err);
		ipc_send(w->ipc, MSG_Q_OPEN_FAIL, reqid, b.data, b.len, -1);
		buf_free(&b);
		return;
	}
	f->lone = lone;
	f->reqid = reqid;
	q->nopen++;
	ipc_put_str(&b, f->id);
	ipc_send(w->ipc, MSG_Q_OPEN_OK, reqid, b.data, b.len, f->fd);
	buf_free(&b);
	if (q->nstock < STOCK_LOW)
		stock_fill(q);	/* after the answer: the client need not wait for it */
}

static void
on_env(struct wchan *w, struct ipc_msg *m)
{
	struct queue *q = w->q;
	char id[QUEUE_ID_LEN + 1];
	const uint8_t *p;
	struct qfile *f;
	uint32_t flags = 0;
	size_t n;

	ipc_get_str(m, id, sizeof(id));
	p = ipc_get_bytes(m, &n);
	if (m->type == MSG_Q_COMMIT)
		flags = ipc_get_u32(m);
	if (ipc_get_end(m) == -1 || (f = qfile_find(w, id)) == NULL)
		return;
	if (f->spare) {
		/* In use since the worker's DATA: judged as on_open would have. */
		f->spare = 0;
		f->lone = queue_alone(q);
		q->nopen++;
	}
	f->reqid = m->reqid;
	f->want_spare = (flags & COMMIT_F_SPARE) != 0;
	if (buf_append(&f->env, p, n) == -1) {
		reply_commit(f, E2BIG);
		qfile_drop(f, 1);
		return;
	}
	if (m->type != MSG_Q_COMMIT)
		return;
	if (q->nbatch == q->batchcap) {
		size_t nc = q->batchcap ? q->batchcap * 2 : 64;
		/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
		struct qfile **nb = realloc(q->batch, nc * sizeof(*nb));

		if (nb == NULL)
			log_panic("event=oom where=batch");
		q->batch = nb;
		q->batchcap = nc;
	}
	/* Unlink from the worker's list now: the batch owns it. */
	q->batch[q->nbatch++] = f;
	event_active(q->ev_commit, EV_TIMEOUT, 0);
}

static void
wchan_free(struct wchan *w)
{
	struct queue *q = w->q;
	struct wchan **pp;
	struct qmsg *m;
	size_t i;

	/* Files in the pending batch are still committed (the client may get its 250 lost). */
	for (i = 0; i < q->nbatch; i++)
		if (q->batch[i]->w == w)
			on_commit_batch(-1, 0, q);
	while (w->files) {
		if (w->files->spare) {	/* never used: back to free/ */
			qfile_recycle(q, w->files);
			continue;
		}
		log_info("event=partial-removed id=%s", w->files->id);
		qfile_drop(w->files, 1);
	}
	/* Delivered-first messages of this worker go on: nobody to answer. */
	for (m = q->msgs; m; m = m->next)
		if (m->direct_w == w)
			m->direct_w = NULL;
	for (pp = &q->workers; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	ipc_free(w->ipc);
	free(w);
}

static void
on_worker(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct wchan *w = arg;
	char id[QUEUE_ID_LEN + 1];
	struct qfile *f;

	if (m == NULL) {
		wchan_free(w);
		return;
	}
	if (m->fd != -1) {
		close(m->fd);	/* workers never pass descriptors */
		m->fd = -1;
	}
	switch (m->type) {
	case MSG_Q_OPEN:
		on_open(w, m->reqid);
		break;
	case MSG_Q_ENV_PART:
	case MSG_Q_COMMIT:
		on_env(w, m);
		break;
	case MSG_Q_ABORT:
		ipc_get_str(m, id, sizeof(id));
		if (ipc_get_end(m) == 0 && (f = qfile_find(w, id)) != NULL) {
			size_t i;

			for (i = 0; i < w->q->nbatch; i++)
				if (w->q->batch[i] == f)
					return;
			qfile_recycle(w->q, f);
		}
		break;
	default:
		log_warn("event=bad-message from=worker type=%u", m->type);
		break;
	}
}

/* ---- parent channel ---- */


/* A reload: the part of the new configuration the queue uses (qconf.h). */
static void
config_apply(struct queue *q, struct ipc_msg *m)
{
	struct config *c = calloc(1, sizeof(*c));
	uint32_t gen = 0;
	char err[256];

	if (m->len == sizeof(gen))
		memcpy(&gen, m->data, sizeof(gen));
	if (c == NULL || qconf_from_fd(m->fd, c, err, sizeof(err)) == -1) {
		log_warn("event=reload-queue-failed generation=%u error=\"%s\" "
		    "note=\"the queue keeps the old configuration\"", gen,
		    c ? err : "out of memory");
		if (c)
			config_free(c);
		free(c);
		return;
	}
	if (q->reloaded) {
		config_free(q->reloaded);
		free(q->reloaded);
	}
	q->cfg = q->reloaded = c;
	log_info("event=config-applied generation=%u domains=%zu", gen, c->ndomains);
}

static void
on_parent(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct queue *q = arg;

	if (m == NULL) {
		event_base_loopbreak(q->base);
		return;
	}
	if (m->type == MSG_P_STATUS) {
		ctl_on_status(q, m);
		return;
	}
	if (m->fd == -1)
		return;
	if (m->type == MSG_P_CONFIG) {
		config_apply(q, m);
		close(m->fd);
	} else if (m->type == MSG_P_WORKER) {
		struct wchan *w = calloc(1, sizeof(*w));

		if (w == NULL || (w->ipc = ipc_new(q->base, m->fd, on_worker, w)) == NULL) {
			close(m->fd);
			free(w);
			return;
		}
		w->q = q;
		w->next = q->workers;
		q->workers = w;
	} else if (m->type == MSG_P_MTA) {
		struct ipc *n = ipc_new(q->base, m->fd, on_mta, q);

		if (n == NULL) {
			close(m->fd);
			return;
		}
		if (q->mta)
			on_mta(q->mta, NULL, q);
		q->mta = n;
		journal_give(q);
	} else if (m->type == MSG_P_DELIVER) {
		uint32_t gen = 0;

		if (m->len == sizeof(gen))
			memcpy(&gen, m->data, sizeof(gen));
		/* A reload: the processes of the old configuration finish and go. */
		if (gen > q->deliver_gen) {
			dchan_retire_all(q);
			q->deliver_gen = gen;
		}
		if (dchan_add(q, m->fd) == -1) {
			close(m->fd);
			return;
		}
		schedule(q);
	} else
		close(m->fd);
}

/* ---- the maildrop: mail from local programs ---- */

/* Turns one maildrop file into a queued message; the file goes when it is safe. */
static void
pickup_one(struct queue *q, const char *name)
{
	char path[300], hdr[600], date[64], bad[300];
	struct maildrop_env *md = NULL;
	struct envelope env;
	const char *why = "unreadable";
	struct buf data;
	struct stat st;
	struct tm tm;
	time_t now = time(NULL);
	size_t i;
	int fd, out = -1, ok = 0;
	struct qmsg *m;

	snprintf(path, sizeof(path), MAILDROP_DIR "/%s", name);
	buf_init(&data, (size_t)q->cfg->limits.message_size + (1u << 20));
	envelope_init(&env);
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		if (fd != -1)
			close(fd);
		goto fail;
	}
	close(fd);
	if (read_file(path, &data) == -1) {
		why = "too large or unreadable";
		goto fail;
	}
	if ((md = malloc(sizeof(*md))) == NULL || maildrop_parse(data.data, data.len, md, &why) == -1)
		goto fail;
	for (i = 0; i < md->nrcpts; i++)
		if (resolve_address_into_envelope(q->cfg, md->rcpts[i], 1, &env) == -1) {
			why = "a recipient cannot be resolved";
			goto fail;
		}
	new_id(q, env.id);
	env.created = now;
	snprintf(env.sender, sizeof(env.sender), "%s", md->sender);
	snprintf(env.helo, sizeof(env.helo), "%s", q->cfg->hostname);
	snprintf(env.client_addr, sizeof(env.client_addr), "local");
	snprintf(env.proto, sizeof(env.proto), "local");
	for (i = md->body_off; i < data.len && !env.body_8bit; i++)
		env.body_8bit = (unsigned char)data.data[i] >= 0x80;
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	snprintf(hdr, sizeof(hdr), "Received: by %s (tern) with local id %s\r\n\t(uid %u); %s\r\n",
	    q->cfg->hostname, env.id, (unsigned)st.st_uid, date);
	env.size = strlen(hdr) + data.len - md->body_off;
	path_of(bad, sizeof(bad), env.id, "msg");
	if ((out = open(bad, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) != -1 &&
	    write(out, hdr, strlen(hdr)) == (ssize_t)strlen(hdr) &&
	    write(out, data.data + md->body_off, data.len - md->body_off) ==
	    (ssize_t)(data.len - md->body_off) && fdatasync(out) == 0 && env_store(q, &env, 1) == 0)
		ok = 1;
	if (out != -1)
		close(out);
	if (!ok) {
		unlink(bad);
		log_warn("event=pickup-deferred file=%s error=\"%s\"", name, strerror(errno));
		goto out;	/* left in the maildrop for the next scan */
	}
	unlink(path);
	log_info("event=picked-up id=%s file=%s uid=%u from=<%s> nrcpt=%zu size=%" PRIu64, env.id,
	    name, (unsigned)st.st_uid, env.sender, env.nrcpts, env.size);
	if ((m = msg_add(q, &env)) != NULL) {
		m->content_len = strlen(hdr) + data.len - md->body_off;
		m->envfile = 1;
		msg_schedule(m);
	}
	goto out;
fail:
	mkdir(QUEUE_CORRUPT, 0700);
	snprintf(bad, sizeof(bad), QUEUE_CORRUPT "/maildrop.%s", name);
	if (rename(path, bad) == -1)
		unlink(path);
	log_warn("event=pickup-refused file=%s reason=\"%s\" moved_to=" QUEUE_CORRUPT, name, why);
out:
	free(md);
	envelope_free(&env);
	buf_free(&data);
}

static void
pickup_scan(struct queue *q)
{
	DIR *d = opendir(MAILDROP_DIR);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			pickup_one(q, de->d_name);
	closedir(d);
}

static void
on_maildrop(evutil_socket_t fd, short what, void *arg)
{
	char ev[4096];

	if (fd != -1)
		while (read(fd, ev, sizeof(ev)) > 0)
			;	/* which file does not matter: scan them all */
	pickup_scan(arg);
}

/* ---- recovery ---- */

static int
read_file(const char *path, struct buf *out)
{
	char chunk[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd == -1)
		return -1;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (buf_append(out, chunk, (size_t)n) == -1) {
			n = -1;
			break;
		}
	close(fd);
	return n == 0 ? 0 : -1;
}

/*
 * A recovered message is tried at the time its envelope says (the retry
 * schedule survives a restart), at once if that time has come or nothing
 * is pending (held recipients, reports owed), and never
 * later than RETRY_MAX from now (the clock may have been set back).
 */
static void
msg_resume(struct qmsg *m)
{
	int64_t now = (int64_t)time(NULL), wait = m->env.next_attempt - now;
	struct timeval tv = { 0, 0 };
	size_t i, pending = 0;

	for (i = 0; i < m->env.nrcpts; i++)
		if (m->env.rcpts[i].state == RCPT_PENDING) {
			pending++;
			if (m->env.rcpts[i].attempts > m->retries)
				m->retries = m->env.rcpts[i].attempts;
		}
	if (wait <= 0 || pending == 0) {
		m->retries = 0;
		msg_schedule(m);
		return;
	}
	tv.tv_sec = wait > RETRY_MAX ? RETRY_MAX : (time_t)wait;
	if (m->retry == NULL && (m->retry = evtimer_new(m->q->base, on_retry, m)) == NULL) {
		msg_schedule(m);
		return;
	}
	evtimer_add(m->retry, &tv);
	log_info("event=deferred id=%s retry_in=%lds", m->env.id, (long)tv.tv_sec);
}

static void
recover_one(struct queue *q, const char *id)
{
	char envp[64], msgp[64], bad[64];
	struct envelope env;
	const char *why = "unreadable";
	struct buf b;
	struct qmsg *m;

	path_of(envp, sizeof(envp), id, "env");
	path_of(msgp, sizeof(msgp), id, "msg");
	buf_init(&b, ENV_TEXT_MAX);
	envelope_init(&env);
	if (access(msgp, F_OK) == -1)
		why = "content missing";
	else if (read_file(envp, &b) == 0 && envelope_decode(b.data, b.len, &env, &why) == 0) {
		buf_free(&b);
		if (strcmp(env.id, id) != 0) {
			envelope_free(&env);
			why = "id mismatch";
		} else if ((m = msg_add(q, &env)) != NULL) {
			m->envfile = 1;
			if (content_len_of(id, &m->content_len) == -1)
				log_warn("event=content-unreadable id=%s error=\"%s\"", id, strerror(errno));
			log_info("event=recovered id=%s nrcpt=%zu", id, m->env.nrcpts);
			journal_owed_report(q, m);
			msg_resume(m);
			return;
		}
	}
	buf_free(&b);
	mkdir(QUEUE_CORRUPT, 0700);
	snprintf(bad, sizeof(bad), QUEUE_CORRUPT "/%s.env", id);
	if (rename(envp, bad) == -1 && errno != ENOENT)
		log_warn("event=move-failed file=%s error=\"%s\"", envp, strerror(errno));
	snprintf(bad, sizeof(bad), QUEUE_CORRUPT "/%s.msg", id);
	if (rename(msgp, bad) == -1 && errno != ENOENT)
		log_warn("event=move-failed file=%s error=\"%s\"", msgp, strerror(errno));
	log_warn("event=recover-corrupt id=%s reason=\"%s\" moved_to=" QUEUE_CORRUPT, id, why);
}

/*
 * ID.msg without ID.env: committed if it ends in a footer for this ID whose
 * CRC holds (spoolfile.h). 1 if recovered, 0 if it never was committed.
 */
static int
recover_footer(struct queue *q, const char *id)
{
	struct envelope env;
	const char *why = "unreadable";
	struct qmsg *m;
	uint64_t clen;

	envelope_init(&env);
	if (footer_envelope(id, &env, &clen, &why) == -1) {
		if (strcmp(why, "no footer") != 0)
			log_info("event=footer-invalid id=%s reason=\"%s\"", id, why);
		return 0;
	}
	if ((m = msg_add(q, &env)) == NULL) {
		envelope_free(&env);
		return 0;
	}
	m->content_len = clen;
	log_info("event=recovered id=%s nrcpt=%zu", id, m->env.nrcpts);
	journal_owed_report(q, m);
	msg_resume(m);
	return 1;
}

static void
recover(struct queue *q)
{
	DIR *d;
	struct dirent *de;
	char p[300];
	size_t nrec = 0, nrm = 0;

	if ((d = opendir(QUEUE_TMP)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.') {
				snprintf(p, sizeof(p), QUEUE_TMP "/%s", de->d_name);
				unlink(p);
			}
		closedir(d);
	}
	if ((d = opendir(QUEUE_DIR)) == NULL)
		log_fatal("event=recover-failed error=\"%s\"", strerror(errno));
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		char id[QUEUE_ID_LEN + 1];

		if (n != QUEUE_ID_LEN + 4 || !envelope_id_valid(de->d_name, QUEUE_ID_LEN))
			continue;
		memcpy(id, de->d_name, QUEUE_ID_LEN);
		id[QUEUE_ID_LEN] = '\0';
		if (strcmp(de->d_name + QUEUE_ID_LEN, ".env") == 0) {
			recover_one(q, id);
			nrec++;
			if (strcmp(id, q->last_id) > 0)
				memcpy(q->last_id, id, sizeof(id));
		} else if (strcmp(de->d_name + QUEUE_ID_LEN, ".msg") == 0) {
			char envp[64];
			int has_env;

			/* With ID.env it is recovered through that. */
			path_of(envp, sizeof(envp), id, "env");
			has_env = access(envp, F_OK) == 0;
			if (!has_env && recover_footer(q, id))
				nrec++;
			else if (!has_env) {
				/* Never committed: no client was told 250. */
				snprintf(p, sizeof(p), QUEUE_DIR "/%s", de->d_name);
				unlink(p);
				log_info("event=partial-removed id=%s", id);
				nrm++;
			}
			if (strcmp(id, q->last_id) > 0)
				memcpy(q->last_id, id, sizeof(id));
		}
	}
	closedir(d);
	log_info("event=recovery messages=%zu partial_removed=%zu", nrec, nrm);
}

/* ---- ternctl: hold, release, delete, status (control.h) ---- */

/* Every pending recipient becomes held; msg_check_done stores and forgets the message. */
static void
ctl_mark_held(struct qmsg *m)
{
	size_t i;

	for (i = 0; i < m->env.nrcpts; i++)
		if (m->env.rcpts[i].state == RCPT_PENDING)
			m->env.rcpts[i].state = RCPT_HELD;
	m->ctl_pending = 0;
	log_info("event=hold id=%s", m->env.id);
}

/* No bounce: the administrator asked for it, the log says so. */
static void
ctl_delete_now(struct qmsg *m)
{
	size_t i, pending = 0;

	for (i = 0; i < m->env.nrcpts; i++)
		pending += m->env.rcpts[i].state == RCPT_PENDING || m->env.rcpts[i].state == RCPT_HELD;
	log_info("event=deleted id=%s from=<%s> undelivered=%zu", m->env.id, m->env.sender, pending);
	msg_remove_files(m->env.id);
	msg_free(m);
}

/* The attempt in progress has ended: a hold or delete asked for meanwhile. 1 if m is gone. */
static int
ctl_apply_pending(struct qmsg *m)
{
	if (m->ctl_pending == CTL_DELETE) {
		ctl_delete_now(m);
		return 1;
	}
	ctl_mark_held(m);
	return 0;
}

/* An envelope as stored (a held message lives on disk only); 0 if it could be read. */
static int
env_load_disk(const char *id, struct envelope *env)
{
	char p[64];
	const char *why;
	struct buf b;
	int r = -1;

	path_of(p, sizeof(p), id, "env");
	buf_init(&b, ENV_TEXT_MAX);
	if (read_file(p, &b) == 0) {
		if (envelope_decode(b.data, b.len, env, &why) == 0)
			r = 0;
	} else if (errno == ENOENT) {
		/* Never rewritten: the envelope of its first commit, after the content. */
		uint64_t clen;

		r = footer_envelope(id, env, &clen, &why);
	}
	buf_free(&b);
	return r;
}

/* Released: held recipients are pending again, stored, and tried now. */
static void
ctl_release(struct queue *q, const char *id, char *out, size_t outsz)
{
	struct envelope env;
	struct qmsg *m;
	size_t i, n = 0;

	if ((m = msg_find(q, id)) != NULL) {
		if (m->ctl_pending == CTL_HOLD) {
			m->ctl_pending = 0;
			snprintf(out, outsz, "ok %s released before its hold took effect\n", id);
		} else
			snprintf(out, outsz, "error %s is not held\n", id);
		return;
	}
	if (env_load_disk(id, &env) == -1) {
		snprintf(out, outsz, "error no queued message %s\n", id);
		return;
	}
	for (i = 0; i < env.nrcpts; i++)
		if (env.rcpts[i].state == RCPT_HELD) {
			env.rcpts[i].state = RCPT_PENDING;
			n++;
		}
	env.next_attempt = 0;
	if (n == 0 || env_store(q, &env, 1) == -1 || (m = msg_add(q, &env)) == NULL) {
		snprintf(out, outsz, "error %s: %s\n", id, n == 0 ? "not held" : strerror(errno));
		envelope_free(&env);
		return;
	}
	m->envfile = 1;
	if (content_len_of(id, &m->content_len) == -1)
		log_warn("event=content-unreadable id=%s error=\"%s\"", id, strerror(errno));
	if (q->nheld)
		q->nheld--;
	log_info("event=released id=%s recipients=%zu", id, n);
	snprintf(out, outsz, "ok %s released\n", id);
	msg_schedule(m);
}

static void
ctl_hold_or_delete(struct queue *q, const struct control_cmd *cmd, char *out, size_t outsz)
{
	const char *what = cmd->verb == CTL_HOLD ? "held" : "deleted";
	struct envelope env;
	struct qmsg *m;

	if ((m = msg_find(q, cmd->id)) == NULL) {
		/* Not in memory but on disk: held. */
		if (env_load_disk(cmd->id, &env) == -1) {
			snprintf(out, outsz, "error no queued message %s\n", cmd->id);
			return;
		}
		if (cmd->verb == CTL_HOLD)
			snprintf(out, outsz, "error %s is already held\n", cmd->id);
		else {
			log_info("event=deleted id=%s from=<%s> held=1", cmd->id, env.sender);
			msg_remove_files(cmd->id);
			if (q->nheld)
				q->nheld--;
			snprintf(out, outsz, "ok %s deleted\n", cmd->id);
		}
		envelope_free(&env);
		return;
	}
	if (m->inflight || m->relaying) {
		/* Never under a delivery: its results must land on pending recipients. */
		m->ctl_pending = (int)cmd->verb;
		log_info("event=%s-requested id=%s note=\"after the delivery in progress\"",
		    cmd->verb == CTL_HOLD ? "hold" : "delete", m->env.id);
		snprintf(out, outsz, "ok %s will be %s when the delivery in progress ends\n",
		    cmd->id, what);
		return;
	}
	snprintf(out, outsz, "ok %s %s\n", cmd->id, what);
	if (m->retry)
		evtimer_del(m->retry);
	if (cmd->verb == CTL_DELETE) {
		ctl_delete_now(m);
		return;
	}
	ctl_mark_held(m);
	msg_check_done(m);	/* stores the envelope and forgets the message */
}

/* The queue's part of STATUS: messages in memory by what they wait for. */
static void
ctl_queue_status(struct queue *q, struct buf *b)
{
	char line[160];
	size_t active = 0, deferred = 0;
	struct qmsg *m;

	for (m = q->msgs; m; m = m->next) {
		if (m->inflight || m->relaying)
			active++;
		else if (m->retry && evtimer_pending(m->retry, NULL))
			deferred++;
	}
	snprintf(line, sizeof(line), "queue active %zu\nqueue deferred %zu\nqueue held %u\n",
	    active, deferred, q->nheld);
	buf_append(b, line, strlen(line));
}

/* The parent's answer to MSG_Q_STATUS: processes, listeners, connections. */
static void
ctl_on_status(struct queue *q, struct ipc_msg *msg)
{
	struct control_conn *cc = q->ctl ? control_find(q->ctl, msg->reqid) : NULL;
	char *text = malloc(IPC_MAX_MSG);
	struct buf b;

	if (msg->fd != -1)
		close(msg->fd);
	if (text == NULL)
		return;
	ipc_get_str(msg, text, IPC_MAX_MSG);
	if (cc != NULL && ipc_get_end(msg) == 0) {
		buf_init(&b, IPC_MAX_MSG + 4096);
		buf_append(&b, "ok\n", 3);
		buf_append(&b, text, strlen(text));
		ctl_queue_status(q, &b);
		buf_append(&b, "", 1);
		control_reply(cc, b.data);
		buf_free(&b);
	}
	free(text);
}

static void
on_control(struct control_conn *cc, const struct control_cmd *cmd, void *arg)
{
	struct queue *q = arg;
	char out[256];

	out[0] = '\0';
	switch (cmd->verb) {
	case CTL_HOLD:
	case CTL_DELETE:
		ctl_hold_or_delete(q, cmd, out, sizeof(out));
		break;
	case CTL_RELEASE:
		ctl_release(q, cmd->id, out, sizeof(out));
		break;
	case CTL_STATUS:
		/* The parent knows the processes; it answers on our channel. */
		if (q->parent == NULL ||
		    ipc_send(q->parent, MSG_Q_STATUS, control_serial(cc), NULL, 0, -1) == -1)
			snprintf(out, sizeof(out), "error the parent process does not answer\n");
		break;
	}
	if (out[0])
		control_reply(cc, out);
}

/* ---- the relay journal (journal.h) ---- */

/*
 * One journal line: the recipient is delivered in the stored envelope.
 * The mta writes the journal and only ever gets remote recipients: a line
 * naming a local one is not believed (a compromised mta could otherwise
 * drop local mail at the next start). A recipient that asked for
 * NOTIFY=SUCCESS from a peer that did not take the DSN duty over is left
 * pending on disk and marked at recovery (journal_owed_report), so its
 * report is committed before the envelope says delivered.
 */
static void
journal_apply(struct queue *q, const struct journal_line *l, size_t *applied)
{
	struct envelope env;
	uint32_t k = l->index;

	if (env_load_disk(l->id, &env) == -1)
		return;		/* already removed */
	if (k < env.nrcpts && env.rcpts[k].kind != RCPTK_REMOTE) {
		log_warn("event=journal-ignored id=%s to=%s reason=\"not a relayed recipient\"",
		    l->id, env.rcpts[k].addr);
	} else if (k < env.nrcpts && env.rcpts[k].state == RCPT_PENDING && l->report &&
	    (env.rcpts[k].notify & DSN_NOTIFY_SUCCESS)) {
		struct journal_line *o = realloc(q->owed, (q->nowed + 1) * sizeof(*o));

		if (o != NULL) {
			q->owed = o;
			q->owed[q->nowed++] = *l;
		}
	} else if (k < env.nrcpts && env.rcpts[k].state == RCPT_PENDING) {
		env.rcpts[k].state = RCPT_DELIVERED;
		env.rcpts[k].last_error[0] = '\0';
		if (env_store(q, &env, 0) == 0)
			(*applied)++;
		log_info("event=journal-delivered id=%s to=%s", l->id, env.rcpts[k].addr);
	}
	envelope_free(&env);
}

/*
 * A recovered message's recipients that journal_apply left for us: marked
 * delivered, the success report (action "relayed") committed, then the
 * envelope. A crash in between sends the report again at worst.
 */
static void
journal_owed_report(struct queue *q, struct qmsg *m)
{
	size_t i, n = 0;

	for (i = 0; i < q->nowed; i++) {
		struct envelope_rcpt *r;

		if (strcmp(q->owed[i].id, m->env.id) != 0 || q->owed[i].index >= m->env.nrcpts)
			continue;
		r = &m->env.rcpts[q->owed[i].index];
		if (r->state != RCPT_PENDING)
			continue;
		snprintf(r->status, sizeof(r->status), "2.0.0");
		r->remote_mta[0] = '\0';	/* not in the journal */
		msg_done_rcpt(m, q->owed[i].index);
		log_info("event=journal-delivered id=%s to=%s", m->env.id, r->addr);
		n++;
	}
	if (n == 0 || m->dsn_now == NULL)
		return;
	msg_report(m, 's');
	free(m->dsn_now);
	m->dsn_now = NULL;
	if (env_store(q, &m->env, 1) == 0)
		m->envfile = 1;
	else
		log_warn("event=envelope-store-failed id=%s error=\"%s\"", m->env.id, strerror(errno));
}

/*
 * At start, before recovery: what the mta had accepted before a crash is
 * written into the envelopes (recovery then removes finished messages).
 * The journal is emptied after recovery (journal_recovered), when the
 * success reports owed for its lines are committed.
 */
static void
journal_replay(struct queue *q)
{
	struct buf b;
	size_t off = 0, applied = 0, lines = 0;

	q->journal = -1;
	buf_init(&b, (size_t)64 << 20);
	if (read_file(RELAY_JOURNAL, &b) == 0) {
		while (off < b.len) {
			const char *nl = memchr(b.data + off, '\n', b.len - off);
			struct journal_line l;

			if (nl == NULL)
				break;	/* torn last line: its result never reached anyone */
			if (journal_parse_line(b.data + off, (size_t)(nl - b.data) - off, &l) == 0)
				journal_apply(q, &l, &applied);
			lines++;
			off = (size_t)(nl - b.data) + 1;
		}
	}
	buf_free(&b);
	if (applied && fsync(q->dirfd) == -1)
		log_warn("event=journal-sync-failed error=\"%s\"", strerror(errno));
	q->journal = open(RELAY_JOURNAL, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (q->journal == -1)
		log_warn("event=journal-open-failed error=\"%s\"", strerror(errno));
	log_info("event=journal-replay lines=%zu applied=%zu reports=%zu", lines, applied, q->nowed);
}

/* After recovery: every line is in the envelopes, the journal starts empty. */
static void
journal_recovered(struct queue *q)
{
	free(q->owed);
	q->owed = NULL;
	q->nowed = 0;
	if (q->journal != -1 && ftruncate(q->journal, 0) == -1)
		log_warn("event=journal-truncate-failed error=\"%s\"", strerror(errno));
}

/* The mta appends to the journal through a descriptor of ours. */
static void
journal_give(struct queue *q)
{
	if (q->mta && q->journal != -1 &&
	    ipc_send(q->mta, MSG_M_JOURNAL, 0, NULL, 0, q->journal) == -1)
		log_warn("event=journal-give-failed");
}

/*
 * With no job at the mta every line written has been answered by an IPC
 * result the queue has recorded: the journal can start over.
 */
static void
journal_empty_if_idle(struct queue *q)
{
	if (q->relays == 0 && q->journal != -1 && ftruncate(q->journal, 0) == -1)
		log_warn("event=journal-truncate-failed error=\"%s\"", strerror(errno));
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* SIGUSR1 (ternctl queue flush): every deferred message is tried now. */
static void
on_flush(evutil_socket_t sig, short what, void *arg)
{
	struct queue *q = arg;
	struct qmsg *m, *next;
	unsigned n = 0;

	for (m = q->msgs; m; m = next) {
		next = m->next;
		if (m->retry && evtimer_pending(m->retry, NULL)) {
			evtimer_del(m->retry);
			n++;
			msg_schedule(m);
		}
	}
	log_info("event=flush messages=%u", n);
}

/* spool/queue.pid: where `ternctl queue flush` sends its signal. */
static void
write_pidfile(void)
{
	char b[32];
	int fd = open(QUEUE_PIDFILE ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int n = snprintf(b, sizeof(b), "%d\n", (int)getpid());

	if (fd == -1)
		return;
	if (write(fd, b, (size_t)n) == n && rename(QUEUE_PIDFILE ".tmp", QUEUE_PIDFILE) == -1)
		log_warn("event=pidfile-failed error=\"%s\"", strerror(errno));
	close(fd);
}

/* At exit, after the last commit: what is in memory goes, the spool stays
 * (recovery reads it at the next start), so a leak checker sees every
 * block freed. */
static void
queue_free(struct queue *q)
{
	struct wchan *wc, *wnext;
	struct qfile *f, *fnext;
	struct qmsg *m, *mnext;
	struct work *w, *next;
	size_t i;

	/* Files of open transactions stay on disk: recovery removes them. */
	for (wc = q->workers; wc; wc = wnext) {
		wnext = wc->next;
		for (f = wc->files; f; f = fnext) {
			fnext = f->next;
			close(f->fd);
			buf_free(&f->env);
			free(f);
		}
		ipc_free(wc->ipc);
		free(wc);
	}
	for (w = q->later; w; w = next) {
		next = w->next;
		free(w);
	}
	for (w = q->todo; w; w = next) {
		next = w->next;
		free(w);
	}
	for (i = 0; i < q->ndeliver; i++) {
		for (w = q->deliver[i]->sent; w; w = next) {
			next = w->next;
			free(w);
		}
		ipc_free(q->deliver[i]->ipc);
		free(q->deliver[i]);
	}
	for (m = q->msgs; m; m = mnext) {
		mnext = m->next;
		if (m->retry)
			event_free(m->retry);
		if (m->direct_deadline)
			event_free(m->direct_deadline);
		free(m->dsn_now);
		envelope_free(&m->env);
		free(m);
	}
	idmap_free(q->byid);
	free(q->batch);
	if (q->reloaded) {
		config_free(q->reloaded);
		free(q->reloaded);
	}
	event_free(q->ev_commit);
	event_free(q->ev_retire);
	if (q->ev_later)
		event_free(q->ev_later);
	ipc_free(q->mta);
	ipc_free(q->parent);
	close(q->dirfd);
	event_base_free(q->base);
}

int
queue_main(const struct config *cfg, int parent_fd, int deliver_fd, int mta_fd)
{
	struct queue q;
	struct event *ev_term, *ev_int, *ev_ino = NULL, *ev_pick, *ev_usr1;
	struct timeval pick_tv = { 10, 0 };
	int ino;

	memset(&q, 0, sizeof(q));
	q.cfg = cfg;
	log_set_proc("queue");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	if (queue_spool_init() == -1)
		log_fatal("event=spool-init-failed error=\"%s\"", strerror(errno));
	if ((q.dirfd = open(QUEUE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		log_fatal("event=spool-open-failed error=\"%s\"", strerror(errno));
	if ((q.base = event_base_new()) == NULL)
		log_fatal("event=event-base-failed");
	q.syncpool = syncpool_new(SYNC_THREADS);
	log_info("event=fsync-pool kind=%s", syncpool_kind(q.syncpool));
	if ((q.byid = idmap_new()) == NULL)
		log_fatal("event=oom");
	q.dirsync = bgsync_new(q.dirfd);
	q.ev_commit = event_new(q.base, -1, 0, on_commit_batch, &q);
	q.ev_later = evtimer_new(q.base, on_later, &q);	/* NULL: nothing is held */
	if ((q.ev_retire = evtimer_new(q.base, on_retire, &q)) == NULL)
		log_fatal("event=oom");
	q.parent = ipc_new(q.base, parent_fd, on_parent, &q);
	if (dchan_add(&q, deliver_fd) == -1)
		log_fatal("event=ipc-failed what=deliver");
	q.mta = mta_fd == -1 ? NULL : ipc_new(q.base, mta_fd, on_mta, &q);
	ev_term = evsignal_new(q.base, SIGTERM, on_signal, q.base);
	ev_int = evsignal_new(q.base, SIGINT, on_signal, q.base);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	ev_usr1 = evsignal_new(q.base, SIGUSR1, on_flush, &q);
	evsignal_add(ev_usr1, NULL);
	write_pidfile();
	if ((q.ctl = control_new(q.base, on_control, &q)) == NULL)
		log_warn("event=control-socket-failed error=\"%s\"", strerror(errno));
	journal_replay(&q);
	pool_scan(&q);
	recover(&q);
	journal_recovered(&q);
	stock_fill(&q);
	journal_give(&q);
	/* Local programs drop mail here; inotify says when, a slow timer backs it up. */
	if ((ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) != -1 &&
	    inotify_add_watch(ino, MAILDROP_DIR, IN_MOVED_TO | IN_CLOSE_WRITE) != -1) {
		ev_ino = event_new(q.base, ino, EV_READ | EV_PERSIST, on_maildrop, &q);
		event_add(ev_ino, NULL);
	}
	ev_pick = event_new(q.base, -1, EV_PERSIST, on_maildrop, &q);
	event_add(ev_pick, &pick_tv);
	pickup_scan(&q);
	event_base_dispatch(q.base);
	on_commit_batch(-1, 0, &q);
	stock_remove(&q);
	control_free(q.ctl);
	if (q.journal != -1)
		close(q.journal);
	syncpool_free(q.syncpool);
	bgsync_free(q.dirsync);
	free(q.pool);
	log_info("event=stop");
	exitsig_block();	/* before the signal events are freed */
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_usr1);
	event_free(ev_pick);
	if (ev_ino)
		event_free(ev_ino);
	if (ino != -1)
		close(ino);
	queue_free(&q);
	return 0;
}
