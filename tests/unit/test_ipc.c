/*
 * ipc: messages arrive whole and in order, with their descriptor, whether
 * they went out at once or waited in the queue of a full socket; the
 * sender keeps its own descriptor either way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/ipc.h"

#define MANY 200	/* 128 KiB each: far more than the 4 MiB socket buffer */

struct got {
	uint32_t n;
	uint32_t bad;	/* messages out of order or with the wrong content */
	uint32_t fds;	/* messages whose descriptor names the sent file */
	ino_t    ino;
};

static void
on_msg(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	struct got *g = arg;
	struct stat st;

	if (m == NULL)
		return;
	if (m->reqid != g->n || m->type != 7 || m->len != IPC_MAX_MSG ||
	    m->data[0] != (uint8_t)g->n || m->data[m->len - 1] != (uint8_t)g->n)
		g->bad++;
	if (m->fd != -1) {
		if (fstat(m->fd, &st) == 0 && st.st_ino == g->ino)
			g->fds++;
		close(m->fd);
		m->fd = -1;
	}
	g->n++;
}

static void
test_queued_and_direct(void **state)
{
	struct event_base *base = event_base_new();
	struct got g = { 0 };
	struct ipc *a, *b;
	struct stat st;
	char path[] = "/tmp/test_ipc.XXXXXX";
	uint8_t *payload = malloc(IPC_MAX_MSG);
	int sp[2], fd, i;

	(void)state;
	assert_non_null(base);
	assert_non_null(payload);
	assert_int_equal(ipc_socketpair(sp), 0);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(fstat(fd, &st), 0);
	g.ino = st.st_ino;
	a = ipc_new(base, sp[0], on_msg, NULL);
	b = ipc_new(base, sp[1], on_msg, &g);
	assert_non_null(a);
	assert_non_null(b);
	for (i = 0; i < MANY; i++) {
		memset(payload, i, IPC_MAX_MSG);
		assert_int_equal(ipc_send(a, 7, (uint32_t)i, payload, IPC_MAX_MSG, fd), 0);
	}
	/* The first went out at once, the socket filled, the rest wait. */
	assert_true(ipc_backlog(a) > 0);
	assert_true(ipc_backlog(a) < MANY);
	while (g.n < MANY && event_base_loop(base, EVLOOP_ONCE) == 0)
		;
	assert_int_equal(g.n, MANY);
	assert_int_equal(g.bad, 0);
	assert_int_equal(g.fds, MANY);
	assert_int_equal(ipc_backlog(a), 0);
	/* The caller's descriptor is still its own. */
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_ino, g.ino);
	ipc_free(a);
	ipc_free(b);
	close(fd);
	free(payload);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queued_and_direct),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
