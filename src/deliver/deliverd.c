/* deliverd — the local (Maildir) delivery process (see deliverd.h). */
#include "deliver/deliverd.h"

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/ipc.h"
#include "common/log.h"
#include "common/msgtypes.h"
#include "deliver/maildir.h"
#include "queue/envelope.h"

struct deliverd {
	const struct config *cfg;
	struct event_base   *base;
	const char          *root;	/* cwd's absolute name, "" if none */
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
deliver_one(struct deliverd *d, struct ipc *ipc, struct ipc_msg *m)
{
	char id[QUEUE_ID_LEN + 1], user[SMTP_LOCAL_MAX + 1], domain[SMTP_DOMAIN_MAX + 1];
	char sender[SMTP_PATH_MAX + 1], path[PATH_MAX];
	char *prepend = malloc(ENVELOPE_PREPEND_MAX + 1);
	uint32_t quarantine;
	const struct domain_cfg *dom;
	struct maildir_result res;
	const char *where = path;
	struct buf prefix;
	size_t rootlen = strlen(d->root);

	ipc_get_str(m, id, sizeof(id));
	ipc_get_u32(m);
	ipc_get_str(m, user, sizeof(user));
	ipc_get_str(m, domain, sizeof(domain));
	ipc_get_str(m, sender, sizeof(sender));
	if (prepend == NULL) {
		answer(ipc, DELIVER_TEMPFAIL, "out of memory");
		return;
	}
	ipc_get_str(m, prepend, ENVELOPE_PREPEND_MAX + 1);
	quarantine = ipc_get_u32(m);
	if (ipc_get_end(m) == -1 || m->fd == -1) {
		answer(ipc, DELIVER_TEMPFAIL, "malformed request");
		free(prepend);
		return;
	}
	if ((dom = config_find_domain(d->cfg, domain, strlen(domain))) == NULL) {
		answer(ipc, DELIVER_PERMFAIL, "5.1.2 domain is not local");
		free(prepend);
		return;
	}
	if (maildir_expand(dom->maildir, user, domain, path, sizeof(path)) == -1 ||
	    (quarantine && append_folder(path, sizeof(path), d->cfg->checks.junk_folder) == -1)) {
		answer(ipc, DELIVER_PERMFAIL, "5.1.3 unsafe mailbox name");
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
	if (maildir_deliver(where, m->fd, prefix.data, prefix.len, &res) == 0) {
		char text[300];

		snprintf(text, sizeof(text), "%s/new/%s", path, res.name);
		answer(ipc, DELIVER_OK, text);
	} else {
		log_warn("event=maildir-failed id=%s user=%s domain=%s temporary=%d error=\"%s\"",
		    id, user, domain, res.temporary, res.error);
		answer(ipc, res.temporary ? DELIVER_TEMPFAIL : DELIVER_PERMFAIL, res.error);
	}
	buf_free(&prefix);
}

static void
on_queue(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct deliverd *d = arg;

	if (m == NULL) {
		event_base_loopbreak(d->base);
		return;
	}
	if (m->type == MSG_D_DELIVER)
		deliver_one(d, ipc, m);
	else
		answer(ipc, DELIVER_TEMPFAIL, "unknown request");
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
	struct ipc *ipc;
	struct event *ev;

	log_set_proc("deliver");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	d.cfg = cfg;
	d.root = base ? base : "";
	if ((d.base = event_base_new()) == NULL)
		log_fatal("event=event-base-failed");
	if ((ipc = ipc_new(d.base, queue_fd, on_queue, &d)) == NULL)
		log_fatal("event=ipc-failed");
	ev = evsignal_new(d.base, SIGTERM, on_term, d.base);
	evsignal_add(ev, NULL);
	event_base_dispatch(d.base);
	ipc_free(ipc);
	/* Freeing a signal event restores the default action: a late SIGTERM
	 * from the parent stays blocked, not killing the process halfway
	 * through (it exits with the signal pending). */
	{
		sigset_t ss;

		sigemptyset(&ss);
		sigaddset(&ss, SIGTERM);
		sigprocmask(SIG_BLOCK, &ss, NULL);
	}
	event_free(ev);
	event_base_free(d.base);
	return 0;
}
