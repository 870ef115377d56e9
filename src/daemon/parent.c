/* parent — process supervision and privilege separation (see parent.h). */
#include "daemon/parent.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/ipc.h"
#include "common/log.h"
#include "common/msgtypes.h"
#include "daemon/privsep.h"
#include "deliver/deliverd.h"
#include "deliver/mta.h"
#include "deliver/signer.h"
#include "queue/maildrop.h"
#include "queue/qconf.h"
#include "server/dmarcrep.h"
#include "queue/queue.h"
#include "server/authd.h"
#include "server/checkd.h"
#include "server/connlimit.h"
#include "server/sandbox.h"
#include "server/tls.h"
#include "server/worker.h"

#define MAX_CHILDREN (CONNLIMIT_SLOTS + 8)
#define LISTEN_BACKLOG 4096

enum role { ROLE_NONE, ROLE_WORKER, ROLE_QUEUE, ROLE_DELIVER, ROLE_AUTH, ROLE_MTA, ROLE_CHECK };

struct child {
	pid_t     pid;
	enum role role;
	int       slot;		/* workers: connlimit row */
	unsigned  gen;		/* configuration generation */
	time_t    started;
};

struct parent {
	struct config       *cfg;
	const char          *conf_path;
	pid_t                pid;
	struct event_base   *base;
	int                  root;
	struct privsep_user  smtp_user, deliver_user;
	int                  listen_fds[CONFIG_MAX_LISTEN];
	size_t               nlisten;
	struct connlimit    *cl;
	struct child         children[MAX_CHILDREN];
	struct ipc          *queue;	/* channel to the queue process */
	struct ipc          *auth;	/* channel to the auth process, if AUTH is on */
	struct ipc          *check;	/* channel to the check process, if checks are on */
	struct tls_server   *tls;	/* contexts made from the current configuration */
	unsigned             gen;
	int                  stopping;
	int                  restarting;	/* queue died: everything restarts */
	char                 mail_base[PATH_MAX];
};

static void spawn_all(struct parent *);
static void respawn_workers(struct parent *);

/* "workers 0" means one per core. */
static void
settle_workers(struct config *cfg)
{
	long n;

	if (cfg->workers > 0)
		return;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	cfg->workers = n > 0 ? (int)(n > 64 ? 64 : n) : 1;
}

/* ---- children ---- */

static struct child *
child_slot(struct parent *p)
{
	int i;

	for (i = 0; i < MAX_CHILDREN; i++)
		if (p->children[i].pid == 0)
			return &p->children[i];
	return NULL;
}

static int
count_role(struct parent *p, enum role r)
{
	int i, n = 0;

	for (i = 0; i < MAX_CHILDREN; i++)
		if (p->children[i].pid && (r == ROLE_NONE || p->children[i].role == r))
			n++;
	return n;
}

static void
signal_role(struct parent *p, enum role r, int sig, int only_old)
{
	int i;

	for (i = 0; i < MAX_CHILDREN; i++) {
		struct child *c = &p->children[i];

		if (c->pid && (r == ROLE_NONE || c->role == r) && (!only_old || c->gen != p->gen))
			kill(c->pid, sig);
	}
}

/* In a new child: forget the parent's signal handlers and descriptors. */
static void
child_setup(const int *keep, size_t nkeep)
{
	static const int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGUSR1 };
	DIR *d;
	struct dirent *de;
	sigset_t all;
	size_t i;

	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if ((d = opendir("/proc/self/fd")) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char *endp;
		long v = strtol(de->d_name, &endp, 10);
		int fd = (*endp == '\0' && v >= 0 && v < INT32_MAX) ? (int)v : -1, k = 0;

		if (de->d_name[0] == '.' || fd <= 2 || fd == dirfd(d) ||
		    fd == log_syslog_fd())
			continue;
		for (i = 0; i < nkeep; i++)
			if (keep[i] == fd)
				k = 1;
		if (!k)
			close(fd);
	}
	closedir(d);
}

static const char *role_name(enum role r);

static pid_t
fork_child(struct parent *p, enum role role, int slot)
{
	char comm[16];

	struct child *c = child_slot(p);
	sigset_t all, old;
	pid_t pid;

	if (c == NULL) {
		log_warn("event=too-many-children");
		return -1;
	}
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid = fork();
	if (pid > 0) {
		c->pid = pid;
		c->role = role;
		c->slot = slot;
		c->gen = p->gen;
		c->started = time(NULL);
	}
	if (pid == 0) {
		/* ps, top and perf then tell the processes apart. */
		snprintf(comm, sizeof(comm), "tern-%s", role_name(role));
		(void)prctl(PR_SET_NAME, comm, 0, 0, 0);	/* a name only */
	}
	if (pid != 0)
		sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid == -1)
		log_warn("event=fork-failed error=\"%s\"", strerror(errno));
	return pid;
}

static void
become(struct parent *p, const struct privsep_user *u, const char *dir, const char *chroot_dir)
{
	char err[512];

	if (dir && chdir(dir) == -1)
		log_fatal("event=chdir-failed dir=\"%s\" error=\"%s\"", dir, strerror(errno));
	if (p->root && privsep_drop(u, chroot_dir, err, sizeof(err)) == -1)
		log_fatal("event=privdrop-failed error=\"%s\"", err);
	/*
	 * Die with the parent (even by SIGKILL), so a restarted daemon finds
	 * its ports free. Set after the uid change, which clears it.
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1 || getppid() != p->pid)
		_exit(1);
}

/* Every child but the workers, after its privilege drop (sandbox.h). */
static void
sandbox_or_die(int may_write_files)
{
	char err[256];

	if (sandbox_denylist(may_write_files, err, sizeof(err)) == -1)
		log_fatal("event=sandbox-failed error=\"%s\"", err);
}

static int
spawn_worker(struct parent *p, int slot)
{
	struct worker_args a;
	int sp[2], ap[2] = { -1, -1 }, cp[2] = { -1, -1 }, keep[CONFIG_MAX_LISTEN + 3];
	char err[256];
	size_t i;
	pid_t pid;

	if (ipc_socketpair(sp) == -1 || (p->auth && ipc_socketpair(ap) == -1) ||
	    (p->check && ipc_socketpair(cp) == -1)) {
		log_warn("event=socketpair-failed error=\"%s\"", strerror(errno));
		return -1;
	}
	connlimit_clear_slot(p->cl, slot);
	if ((pid = fork_child(p, ROLE_WORKER, slot)) == 0) {
		for (i = 0; i < p->nlisten; i++)
			keep[i] = p->listen_fds[i];
		keep[p->nlisten] = sp[0];
		keep[p->nlisten + 1] = ap[0];
		keep[p->nlisten + 2] = cp[0];
		child_setup(keep, p->nlisten + 3);
		tzset();	/* the zone file is out of reach after chroot */
		/* The network-facing process keeps user names, never password hashes. */
		for (i = 0; i < p->cfg->ndomains; i++)
			table_wipe_values(p->cfg->domains[i].users);
		config_wipe_secrets(p->cfg);
		become(p, &p->smtp_user, NULL, p->root ? p->cfg->chroot_dir : NULL);
		if (sandbox_worker(err, sizeof(err)) == -1)
			log_fatal("event=sandbox-failed error=\"%s\"", err);
		memset(&a, 0, sizeof(a));
		a.cfg = p->cfg;
		a.listen_fds = p->listen_fds;
		a.nlisten = p->nlisten;
		a.queue_fd = sp[0];
		a.auth_fd = ap[0];
		a.check_fd = cp[0];
		a.tls = p->tls;
		a.connlimit = p->cl;
		a.slot = slot;
		_exit(worker_main(&a));
	}
	close(sp[0]);
	if (ap[0] != -1)
		close(ap[0]);
	if (pid > 0 && p->queue)
		ipc_send(p->queue, MSG_P_WORKER, 0, NULL, 0, sp[1]);
	if (pid > 0 && p->auth && ap[1] != -1)
		ipc_send(p->auth, MSG_P_WORKER, 0, NULL, 0, ap[1]);
	if (cp[0] != -1)
		close(cp[0]);
	if (pid > 0 && p->check && cp[1] != -1)
		ipc_send(p->check, MSG_P_WORKER, 0, NULL, 0, cp[1]);
	close(sp[1]);
	if (ap[1] != -1)
		close(ap[1]);
	if (cp[1] != -1)
		close(cp[1]);
	return pid > 0 ? 0 : -1;
}

static int
free_worker_slot(struct parent *p)
{
	int s, i, used;

	for (s = 0; s < CONNLIMIT_SLOTS; s++) {
		used = 0;
		for (i = 0; i < MAX_CHILDREN; i++)
			if (p->children[i].pid && p->children[i].role == ROLE_WORKER &&
			    p->children[i].slot == s)
				used = 1;
		if (!used)
			return s;
	}
	return -1;
}

/*
 * In a child other than a worker, right after fork: what it does not need
 * of the secrets the parent read goes, so that owning it does not give
 * them away. The TLS server contexts (private keys) serve only the
 * workers; password hashes only auth; route AUTH passwords only the mta.
 */
static void
child_forget(struct parent *p, int keep_hashes, int keep_routes)
{
	size_t i;

	tls_server_free(p->tls);
	p->tls = NULL;
	if (!keep_hashes)
		for (i = 0; i < p->cfg->ndomains; i++)
			table_wipe_values(p->cfg->domains[i].users);
	if (!keep_routes)
		config_wipe_secrets(p->cfg);
}

static int
spawn_deliver(struct parent *p, int *queue_end)
{
	int sp[2];
	pid_t pid;

	if (ipc_socketpair(sp) == -1)
		return -1;
	if ((pid = fork_child(p, ROLE_DELIVER, -1)) == 0) {
		child_setup(&sp[0], 1);
		log_set_proc("deliver");
		child_forget(p, 0, 0);
		become(p, &p->deliver_user, p->mail_base[0] ? p->mail_base : NULL, NULL);
		sandbox_or_die(1);	/* it writes the mailboxes */
		_exit(deliver_main(p->cfg, sp[0], p->mail_base));
	}
	close(sp[0]);
	if (pid == -1) {
		close(sp[1]);
		return -1;
	}
	*queue_end = sp[1];
	return 0;
}

static void on_queue_msg(struct ipc *, struct ipc_msg *, void *);

/*
 * One more deliver process for the queue. The payload is the parent's
 * generation: a channel of a newer one replaces the older ones (reload).
 */
static void
add_deliver(struct parent *p)
{
	uint8_t gen[4];
	int qend;

	if (p->queue == NULL || spawn_deliver(p, &qend) == -1)
		return;
	memcpy(gen, &p->gen, sizeof(gen));
	ipc_send(p->queue, MSG_P_DELIVER, 0, gen, sizeof(gen), qend);
	close(qend);
}

/*
 * The queue outlives reloads and may not read the configuration's files:
 * it gets what it uses of the new configuration as bytes (queue/qconf.h).
 */
static void
send_qconf(struct parent *p)
{
	uint8_t gen[4];
	int fd;

	if (p->queue == NULL)
		return;
	if ((fd = qconf_to_memfd(p->cfg)) == -1) {
		log_warn("event=reload-queue-failed error=\"%s\" note=\"the queue keeps "
		    "the old configuration\"", strerror(errno));
		return;
	}
	memcpy(gen, &p->gen, sizeof(gen));
	ipc_send(p->queue, MSG_P_CONFIG, 0, gen, sizeof(gen), fd);
	close(fd);
}

/* The outbound process: unprivileged, no chroot (it reads resolv.conf). */
static int
spawn_mta(struct parent *p, int *queue_end)
{
	int sp[2];
	pid_t pid;

	if (ipc_socketpair(sp) == -1)
		return -1;
	if ((pid = fork_child(p, ROLE_MTA, -1)) == 0) {
		struct signer *sg;
		char err[1024];

		child_setup(&sp[0], 1);
		log_set_proc("mta");
		child_forget(p, 0, 1);
		/* DKIM keys are read before dropping root; only this process holds them. */
		if ((sg = signer_new(p->cfg, err, sizeof(err))) == NULL)
			log_warn("event=dkim-keys-failed error=\"%s\" note=\"mail goes out unsigned\"",
			    err);
		become(p, &p->smtp_user, "/", NULL);
		/* It parses remote replies: no exec, fork, file writes or signals to others. */
		sandbox_or_die(0);
		_exit(mta_main(p->cfg, sg, sp[0]));
	}
	close(sp[0]);
	if (pid == -1) {
		close(sp[1]);
		return -1;
	}
	*queue_end = sp[1];
	return 0;
}

/* The password checker, when AUTH is configured. */
static void
spawn_auth(struct parent *p)
{
	int sp[2];
	pid_t pid;

	if (!p->cfg->auth.present)
		return;
	if (ipc_socketpair(sp) == -1)
		log_fatal("event=spawn-failed what=auth error=\"%s\"", strerror(errno));
	if ((pid = fork_child(p, ROLE_AUTH, -1)) == 0) {
		child_setup(&sp[0], 1);
		log_set_proc("auth");
		child_forget(p, 1, 0);
		become(p, &p->deliver_user, "/", NULL);
		sandbox_or_die(0);
		_exit(authd_main(p->cfg, sp[0]));
	}
	close(sp[0]);
	if (pid == -1) {
		close(sp[1]);
		return;
	}
	p->auth = ipc_new(p->base, sp[1], on_queue_msg, p);
}

static int
checks_wanted(const struct config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->nlisten; i++)
		if (config_checks_on(cfg, &cfg->listen[i]))
			return 1;
	return 0;
}

/* The check process (SPF, DKIM, DMARC), when an mx listener checks mail:
 * unprivileged like the mta, no chroot (libunbound reads resolv.conf). */
static void
spawn_check(struct parent *p)
{
	int sp[2];
	pid_t pid;

	if (!checks_wanted(p->cfg))
		return;
	if (ipc_socketpair(sp) == -1)
		log_fatal("event=spawn-failed what=check error=\"%s\"", strerror(errno));
	if ((pid = fork_child(p, ROLE_CHECK, -1)) == 0) {
		child_setup(&sp[0], 1);
		log_set_proc("check");
		child_forget(p, 0, 0);
		/* In the spool when it writes DMARC reports: the path above may be closed to it. */
		become(p, &p->smtp_user, p->cfg->checks.reports.enabled ? p->cfg->spool_dir : "/", NULL);
		/* It parses anyone's DNS answers; files only for the DMARC reports. */
		sandbox_or_die(p->cfg->checks.reports.enabled);
		_exit(checkd_main(p->cfg, sp[0]));
	}
	close(sp[0]);
	if (pid == -1) {
		close(sp[1]);
		return;
	}
	p->check = ipc_new(p->base, sp[1], on_queue_msg, p);
}

static void
spawn_all(struct parent *p)
{
	int pq[2], dq = -1, mq = -1, i, n = p->cfg->workers;
	pid_t pid;

	if (spawn_deliver(p, &dq) == -1 || spawn_mta(p, &mq) == -1 || ipc_socketpair(pq) == -1)
		log_fatal("event=spawn-failed error=\"%s\"", strerror(errno));
	if ((pid = fork_child(p, ROLE_QUEUE, -1)) == 0) {
		int keep[3] = { pq[0], dq, mq };

		child_setup(keep, 3);
		log_set_proc("queue");
		child_forget(p, 0, 0);
		become(p, &p->deliver_user, p->cfg->spool_dir, NULL);
		sandbox_or_die(1);	/* it owns the spool */
		_exit(queue_main(p->cfg, pq[0], dq, mq));
	}
	close(pq[0]);
	close(dq);
	close(mq);
	if (pid == -1)
		log_fatal("event=spawn-failed what=queue");
	p->queue = ipc_new(p->base, pq[1], on_queue_msg, p);
	for (i = 1; i < p->cfg->deliver_processes; i++)
		add_deliver(p);
	spawn_auth(p);
	spawn_check(p);
	for (i = 0; i < n; i++)
		spawn_worker(p, free_worker_slot(p));
	log_info("event=ready workers=%d listen=%zu", n, p->nlisten);
}

static const char *
role_name(enum role r)
{
	switch (r) {
	case ROLE_WORKER: return "smtp";
	case ROLE_QUEUE: return "queue";
	case ROLE_DELIVER: return "deliver";
	case ROLE_AUTH: return "auth";
	case ROLE_MTA: return "mta";
	case ROLE_CHECK: return "check";
	default: return "none";
	}
}

/* ternctl status, asked through the queue: what only the parent knows (see msgtypes.h). */
static void
send_status(struct parent *p, uint32_t reqid)
{
	char line[300], me[64];
	struct buf b;
	size_t i;

	snprintf(me, sizeof(me), "%s", p->root ? "root" : "-");
	if (!p->root) {
		struct passwd *pw = getpwuid(getuid());

		snprintf(me, sizeof(me), "%s", pw ? pw->pw_name : "?");
	}
	buf_init(&b, IPC_MAX_MSG - 1024);
	snprintf(line, sizeof(line), "process %d parent %s\n", (int)p->pid, me);
	buf_append(&b, line, strlen(line));
	for (i = 0; i < MAX_CHILDREN; i++) {
		const struct child *c = &p->children[i];
		const char *u = !p->root ? me : c->role == ROLE_WORKER || c->role == ROLE_MTA ?
		    p->cfg->user : p->cfg->deliver_user;

		if (c->pid == 0)
			continue;
		snprintf(line, sizeof(line), "process %d %s %s\n", (int)c->pid, role_name(c->role), u);
		buf_append(&b, line, strlen(line));
	}
	for (i = 0; i < p->nlisten && i < p->cfg->nlisten; i++) {
		snprintf(line, sizeof(line), "listen %s %s\n", p->cfg->listen[i].text,
		    p->cfg->listen[i].mode == LISTEN_SUBMISSION ? "submission" : "mx");
		buf_append(&b, line, strlen(line));
	}
	snprintf(line, sizeof(line), "connections %zu\n", connlimit_total(p->cl));
	buf_append(&b, line, strlen(line));
	buf_append(&b, "", 1);
	{
		struct buf out;

		buf_init(&out, IPC_MAX_MSG);
		ipc_put_str(&out, b.data);
		ipc_send(p->queue, MSG_P_STATUS, reqid, out.data, out.len, -1);
		buf_free(&out);
	}
	buf_free(&b);
}

static void
on_queue_msg(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct parent *p = arg;

	if (m && m->type == MSG_Q_STATUS && ipc == p->queue) {
		send_status(p, m->reqid);
		return;
	}
	if (m == NULL) {
		if (ipc == p->queue)
			p->queue = NULL;
		if (ipc == p->auth)
			p->auth = NULL;
		if (ipc == p->check)
			p->check = NULL;
		ipc_free(ipc);
	} else if (m->fd != -1)
		close(m->fd);
}

/* ---- events ---- */

static void
maybe_exit(struct parent *p)
{
	/*
	 * Workers first (no new mail), then the queue, then the rest: a deliver
	 * process or mta that stopped before the queue would look lost to it
	 * (event=deliver-lost at every stop); they leave when its channel closes.
	 */
	if (p->stopping && count_role(p, ROLE_WORKER) == 0)
		signal_role(p, count_role(p, ROLE_QUEUE) ? ROLE_QUEUE : ROLE_NONE, SIGTERM, 0);
	if (p->stopping && count_role(p, ROLE_NONE) == 0)
		event_base_loopbreak(p->base);
	if (p->restarting && count_role(p, ROLE_NONE) == 0) {
		p->restarting = 0;
		log_info("event=restart-all");
		spawn_all(p);
	}
}

struct respawn {
	struct parent *p;
	int            slot;
	unsigned       gen;
};

static void
on_respawn(evutil_socket_t fd, short what, void *arg)
{
	struct respawn *r = arg;

	if (!r->p->stopping && !r->p->restarting && r->gen == r->p->gen)
		spawn_worker(r->p, r->slot);
	free(r);
}

static void
child_exited(struct parent *p, struct child *c, int status)
{
	struct child dead = *c;
	const char *what = role_name(dead.role);
	int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;

	memset(c, 0, sizeof(*c));
	if (p->stopping || p->restarting || (dead.gen != p->gen && clean)) {
		log_info("event=child-exit proc=%s pid=%d status=%d", what, (int)dead.pid, status);
		return;
	}
	if (WIFSIGNALED(status))
		log_warn("event=child-died proc=%s pid=%d signal=%d", what, (int)dead.pid, WTERMSIG(status));
	else
		log_warn("event=child-died proc=%s pid=%d exit=%d", what, (int)dead.pid, WEXITSTATUS(status));
	if (dead.role == ROLE_WORKER) {
		if (dead.gen != p->gen)
			return;
		if (time(NULL) - dead.started < 2) {
			/* It died at once: wait a little, never a fork storm. */
			struct timeval tv = { 1, 0 };
			struct respawn *r = malloc(sizeof(*r));

			if (r) {
				r->p = p;
				r->slot = dead.slot;
				r->gen = p->gen;
				event_base_once(p->base, -1, EV_TIMEOUT, on_respawn, r, &tv);
			}
			return;
		}
		spawn_worker(p, dead.slot);
		return;
	}
	if (dead.role == ROLE_DELIVER && dead.gen == p->gen && p->queue) {
		add_deliver(p);
		return;
	}
	if (dead.role == ROLE_MTA && p->queue) {
		int qend;

		if (spawn_mta(p, &qend) == 0) {
			ipc_send(p->queue, MSG_P_MTA, 0, NULL, 0, qend);
			close(qend);
		}
		return;
	}
	if (dead.role == ROLE_CHECK && dead.gen == p->gen) {
		/* As for auth: the workers' channels lead nowhere now. Sessions
		 * waiting on it answer with temperror results meanwhile. */
		if (p->check) {
			ipc_free(p->check);
			p->check = NULL;
		}
		spawn_check(p);
		p->gen++;
		respawn_workers(p);
		return;
	}
	if (dead.role == ROLE_AUTH && dead.gen == p->gen) {
		/* Workers hold channels to the dead one: new auth, new workers. */
		if (p->auth) {
			ipc_free(p->auth);
			p->auth = NULL;
		}
		spawn_auth(p);
		p->gen++;
		respawn_workers(p);
		return;
	}
	if (dead.role == ROLE_QUEUE && dead.gen == p->gen) {
		/* Workers and deliver hold channels to the dead queue: start over. */
		p->restarting = 1;
		if (p->queue) {
			ipc_free(p->queue);
			p->queue = NULL;
		}
		signal_role(p, ROLE_NONE, SIGKILL, 0);
	}
}

static void
on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	struct parent *p = arg;
	int status, i;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < MAX_CHILDREN; i++)
			if (p->children[i].pid == pid) {
				int slot = p->children[i].role == ROLE_WORKER ? p->children[i].slot : -1;

				child_exited(p, &p->children[i], status);
				if (slot >= 0 && !p->stopping) {
					int used = 0, k;

					for (k = 0; k < MAX_CHILDREN; k++)
						if (p->children[k].pid && p->children[k].role == ROLE_WORKER &&
						    p->children[k].slot == slot)
							used = 1;
					if (!used)
						connlimit_clear_slot(p->cl, slot);
				}
				break;
			}
	}
	maybe_exit(p);
}

static void
on_kill_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct parent *p = arg;

	log_warn("event=stop-deadline remaining=%d", count_role(p, ROLE_NONE));
	signal_role(p, ROLE_NONE, SIGKILL, 0);
}

static void
on_sigterm(evutil_socket_t sig, short what, void *arg)
{
	struct parent *p = arg;
	struct timeval tv = { p->cfg->limits.shutdown_wait + 5, 0 };

	if (p->stopping)
		return;
	log_info("event=stopping signal=%d", (int)sig);
	p->stopping = 1;
	signal_role(p, ROLE_WORKER, SIGTERM, 0);
	event_base_once(p->base, -1, EV_TIMEOUT, on_kill_deadline, p, &tv);
	maybe_exit(p);
}

static int
same_listen(const struct config *a, const struct config *b)
{
	size_t i;

	if (a->nlisten != b->nlisten)
		return 0;
	for (i = 0; i < a->nlisten; i++)
		if (a->listen[i].sslen != b->listen[i].sslen ||
		    memcmp(&a->listen[i].ss, &b->listen[i].ss, a->listen[i].sslen) != 0)
			return 0;
	return 1;
}

/*
 * Settings the running processes were started with: a reload keeps the old
 * value and says so. 0, or -1 when memory runs out.
 */
static int
keep_start_settings(const struct config *old, struct config *n)
{
	char *spool;

	if (strcmp(old->user, n->user) != 0 || strcmp(old->deliver_user, n->deliver_user) != 0) {
		log_warn("event=reload-restart-needed setting=user note=\"user and deliver_user "
		    "change at a restart; the old ones stay\"");
		memcpy(n->user, old->user, sizeof(n->user));
		memcpy(n->deliver_user, old->deliver_user, sizeof(n->deliver_user));
	}
	if (strcmp(old->syslog_socket, n->syslog_socket) != 0) {
		log_warn("event=reload-restart-needed setting=syslog_socket note=\"syslog_socket "
		    "changes at a restart; the old one stays\"");
		memcpy(n->syslog_socket, old->syslog_socket, sizeof(n->syslog_socket));
	}
	if (strcmp(old->spool_dir, n->spool_dir) != 0) {
		log_warn("event=reload-restart-needed setting=spool note=\"spool changes at a "
		    "restart; the old one stays\"");
		if ((spool = strdup(old->spool_dir)) == NULL)
			return -1;
		free(n->spool_dir);
		n->spool_dir = spool;
	}
	return 0;
}

/* A new generation of workers; the old ones stop accepting and drain. */
static void
respawn_workers(struct parent *p)
{
	int i;

	for (i = 0; i < p->cfg->workers; i++)
		spawn_worker(p, free_worker_slot(p));
	signal_role(p, ROLE_WORKER, SIGUSR1, 1);
}

static void
on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct parent *p = arg;
	struct config *ncfg;
	struct tls_server *ntls = NULL;
	char err[1024];
	int qend, i;

	if (p->stopping || p->restarting)
		return;
	log_reopen();	/* the new children inherit a live syslog socket */
	if ((ncfg = calloc(1, sizeof(*ncfg))) == NULL ||
	    config_load(p->conf_path, ncfg, err, sizeof(err)) == -1) {
		log_warn("event=reload-failed error=\"%s\" note=\"old configuration kept\"",
		    ncfg ? err : "out of memory");
		free(ncfg);
		return;
	}
	if (!same_listen(p->cfg, ncfg)) {
		log_warn("event=reload-listen-unchanged note=\"listen changes need a restart\"");
		memcpy(ncfg->listen, p->cfg->listen, sizeof(ncfg->listen));
		ncfg->nlisten = p->cfg->nlisten;
	}
	if (keep_start_settings(p->cfg, ncfg) == -1) {
		log_warn("event=reload-failed error=\"out of memory\" note=\"old configuration kept\"");
		config_free(ncfg);
		free(ncfg);
		return;
	}
	settle_workers(ncfg);
	if (ncfg->tls.present && (ntls = tls_server_new(ncfg, err, sizeof(err))) == NULL) {
		log_warn("event=reload-failed error=\"%s\" note=\"old configuration kept\"", err);
		config_free(ncfg);
		free(ncfg);
		return;
	}
	if (signer_check(ncfg, err, sizeof(err)) == -1) {
		tls_server_free(ntls);
		log_warn("event=reload-failed error=\"%s\" note=\"old configuration kept\"", err);
		config_free(ncfg);
		free(ncfg);
		return;
	}
	/* Old children go on with their copy of the old configuration. */
	config_free(p->cfg);
	free(p->cfg);
	tls_server_free(p->tls);
	p->cfg = ncfg;
	p->tls = ntls;
	p->gen++;
	send_qconf(p);
	for (i = 0; i < p->cfg->deliver_processes; i++)
		add_deliver(p);
	if (p->queue && spawn_mta(p, &qend) == 0) {
		ipc_send(p->queue, MSG_P_MTA, 0, NULL, 0, qend);
		close(qend);
	}
	/* The old auth and check processes serve the old workers until they are gone. */
	if (p->auth) {
		ipc_free(p->auth);
		p->auth = NULL;
	}
	spawn_auth(p);
	if (p->check) {
		ipc_free(p->check);
		p->check = NULL;
	}
	spawn_check(p);
	respawn_workers(p);
	log_info("event=reloaded generation=%u", p->gen);
}

static void
on_signalfd(evutil_socket_t fd, short what, void *arg)
{
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD: on_sigchld((int)si.ssi_signo, 0, arg); break;
		case SIGHUP: on_sighup((int)si.ssi_signo, 0, arg); break;
		default: on_sigterm((int)si.ssi_signo, 0, arg); break;
		}
	}
}

/* ---- set-up ---- */

static int
open_listener(const struct listen_cfg *l)
{
	int fd, one = 1;

	fd = socket(l->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (l->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&l->ss, l->sslen) == -1 ||
	    listen(fd, LISTEN_BACKLOG) == -1) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/*
 * The maildrop exists before any child runs: tern-sendmail, started right
 * after the daemon, must never find the spool without it.
 */
static void
prepare_maildrop(struct parent *p)
{
	char drop[PATH_MAX];

	if (snprintf(drop, sizeof(drop), "%s/" MAILDROP_DIR, p->cfg->spool_dir) >= (int)sizeof(drop))
		log_fatal("event=spool-failed dir=\"%s\" error=\"path too long\"", p->cfg->spool_dir);
	if ((mkdir(drop, 01733) == -1 && errno != EEXIST) ||
	    (p->root && chown(drop, p->deliver_user.uid, p->deliver_user.gid) == -1) ||
	    chmod(drop, 01733) == -1)
		log_fatal("event=maildrop-failed dir=\"%s\" error=\"%s\"", drop, strerror(errno));
}

/*
 * The DMARC report records (server/dmarcrep.h): only the check process's
 * user may enter; the smtp workers are chrooted away from the spool.
 */
static void
prepare_reports(struct parent *p)
{
	char dir[PATH_MAX];

	if (!p->cfg->checks.reports.enabled)
		return;
	if (snprintf(dir, sizeof(dir), "%s/" DMARCREP_DIR, p->cfg->spool_dir) >= (int)sizeof(dir))
		log_fatal("event=spool-failed dir=\"%s\" error=\"path too long\"", p->cfg->spool_dir);
	if ((mkdir(dir, 0700) == -1 && errno != EEXIST) ||
	    (p->root && chown(dir, p->smtp_user.uid, p->smtp_user.gid) == -1) ||
	    chmod(dir, 0700) == -1)
		log_fatal("event=dmarc-dir-failed dir=\"%s\" error=\"%s\"", dir, strerror(errno));
}

static void
prepare_dirs(struct parent *p)
{
	size_t i;
	int created;

	if (privsep_mkdirs(p->cfg->spool_dir, 0700, &created) == -1)
		log_fatal("event=spool-failed dir=\"%s\" error=\"%s\"", p->cfg->spool_dir, strerror(errno));
	if (p->root && chown(p->cfg->spool_dir, p->deliver_user.uid, p->deliver_user.gid) == -1)
		log_fatal("event=spool-chown-failed dir=\"%s\" error=\"%s\"", p->cfg->spool_dir, strerror(errno));
	/* Others may pass through (to the maildrop) but not list or read. */
	if (chmod(p->cfg->spool_dir, 0711) == -1)
		log_fatal("event=spool-chmod-failed dir=\"%s\" error=\"%s\"", p->cfg->spool_dir, strerror(errno));
	prepare_maildrop(p);
	prepare_reports(p);
	if (p->root && p->cfg->chroot_dir && privsep_mkdirs(p->cfg->chroot_dir, 0755, &created) == -1)
		log_fatal("event=chroot-dir-failed dir=\"%s\" error=\"%s\"", p->cfg->chroot_dir, strerror(errno));
	for (i = 0; i < p->cfg->ndomains; i++) {
		char base[PATH_MAX];

		if (deliver_template_base(p->cfg->domains[i].maildir, base, sizeof(base)) == -1 || !base[0])
			continue;
		if (privsep_mkdirs(base, 0700, &created) == -1)
			log_fatal("event=maildir-base-failed dir=\"%s\" error=\"%s\"", base, strerror(errno));
		if (p->root && created && chown(base, p->deliver_user.uid, p->deliver_user.gid) == -1)
			log_fatal("event=maildir-chown-failed dir=\"%s\" error=\"%s\"", base, strerror(errno));
		if (i == 0)
			snprintf(p->mail_base, sizeof(p->mail_base), "%s", base);
	}
}

int
parent_main(struct config *cfg, const char *conf_path)
{
	struct parent p;
	struct event *ev_sig;
	sigset_t mask;
	char err[512];
	int sfd;
	size_t i;

	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	p.conf_path = conf_path;
	p.root = geteuid() == 0;
	p.pid = getpid();
	settle_workers(cfg);
	log_set_proc("parent");
	if (p.root) {
		if (privsep_lookup(cfg->user, &p.smtp_user, err, sizeof(err)) == -1 ||
		    privsep_lookup(cfg->deliver_user, &p.deliver_user, err, sizeof(err)) == -1)
			log_fatal("event=config-error error=\"%s\"", err);
		log_info("event=start mode=root smtp_user=%s deliver_user=%s chroot=%s",
		    cfg->user, cfg->deliver_user, cfg->chroot_dir);
	} else
		log_info("event=start mode=unprivileged uid=%d note=\"not started as root: "
		    "every process runs as this user, without chroot\"", (int)getuid());
	prepare_dirs(&p);
	for (i = 0; i < cfg->nlisten; i++) {
		if ((p.listen_fds[i] = open_listener(&cfg->listen[i])) == -1)
			log_fatal("event=listen-failed addr=%s error=\"%s\"", cfg->listen[i].text, strerror(errno));
		p.nlisten++;
	}
	if (cfg->tls.present && (p.tls = tls_server_new(cfg, err, sizeof(err))) == NULL)
		log_fatal("event=config-error error=\"%s\"", err);
	if ((p.cl = connlimit_create()) == NULL)
		log_fatal("event=shm-failed error=\"%s\"", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	if ((p.base = event_base_new()) == NULL)
		log_fatal("event=event-base-failed");
	/*
	 * Signals arrive through a signalfd rather than libevent's handlers:
	 * forked children would otherwise inherit handlers that write into
	 * the parent's signal pipe.
	 */
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if ((sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		log_fatal("event=signalfd-failed error=\"%s\"", strerror(errno));
	ev_sig = event_new(p.base, sfd, EV_READ | EV_PERSIST, on_signalfd, &p);
	event_add(ev_sig, NULL);
	spawn_all(&p);
	event_base_dispatch(p.base);
	log_info("event=stop");
	if (p.queue)
		ipc_free(p.queue);
	if (p.auth)
		ipc_free(p.auth);
	if (p.check)
		ipc_free(p.check);
	tls_server_free(p.tls);
	for (i = 0; i < p.nlisten; i++)
		close(p.listen_fds[i]);
	event_free(ev_sig);
	close(sfd);
	event_base_free(p.base);
	config_free(p.cfg);
	free(p.cfg);
	return 0;
}
