/*
 * The check process (src/server/checkd.c) against a worker that sends
 * requests and never reads the answers: the answers queued to it stop at
 * CHECKD_BACKLOG_MAX, the rest are dropped with a warning, and each
 * request is either answered or dropped. The process runs for real
 * (checkd_main in a child); the test is its parent and the worker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/ipc.h"
#include "common/log.h"
#include "common/msgtypes.h"
#include "server/checkd.h"

#define REQUESTS 3000
#define BACKLOG  512	/* CHECKD_BACKLOG_MAX */

static const char conf[] =
    "listen 127.0.0.1:2525\n"
    "domain localhost { maildir m/%u }\n"
    "dns_server 127.0.0.1@9\n"
    "auth_checks on\n";

static uint32_t answers;
static pid_t child = -1;	/* the check process, stopped by teardown also after a failure */

static void
on_answer(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
	if (m != NULL && m->type == MSG_C_RESULT)
		answers++;
}

static void
on_parent(struct ipc *ipc, struct ipc_msg *m, void *arg)
{
}

/* Lines of the child's log holding s. */
static size_t
count_lines(const char *path, const char *s)
{
	char line[4096];
	size_t n = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, s) != NULL;
	fclose(f);
	return n;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static pid_t
start_checkd(const char *logpath, int parent_fd)
{
	struct config cfg;
	char err[256];
	pid_t pid;

	assert_int_equal(config_parse(conf, sizeof(conf) - 1, "t.conf", "/", &cfg, err,
	    sizeof(err)), 0);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		prctl(PR_SET_PDEATHSIG, SIGKILL);	/* never outlives the test */
		dup2(fd, STDERR_FILENO);
		dup2(fd, STDOUT_FILENO);
		log_init(1, 0, NULL);
		_exit(checkd_main(&cfg, parent_fd));
	}
	config_free(&cfg);
	return pid;
}

static void
answers_to_a_worker_that_does_not_read_are_bounded(void **state)
{
	struct event_base *base = event_base_new();
	char logpath[] = "/tmp/test_checkd.XXXXXX";
	struct ipc *parent, *worker;
	int pp[2], wp[2], small = 4096, status, i, fd;
	uint32_t last = 0;
	size_t dropped;
	pid_t pid;

	assert_non_null(base);
	assert_true((fd = mkstemp(logpath)) != -1);
	close(fd);
	assert_int_equal(ipc_socketpair(pp), 0);
	assert_int_equal(ipc_socketpair(wp), 0);
	/* Little room in the socket: the check process's queue fills soon. */
	assert_int_equal(setsockopt(wp[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	pid = child = start_checkd(logpath, pp[0]);
	close(pp[0]);
	parent = ipc_new(base, pp[1], on_parent, NULL);
	assert_non_null(parent);
	assert_int_equal(ipc_send(parent, MSG_P_WORKER, 0, NULL, 0, wp[0]), 0);
	close(wp[0]);
	/*
	 * Malformed requests (a sequence number only), each answered at once
	 * without DNS, written as ipc frames straight to the socket: the test
	 * reads nothing back until all are sent.
	 */
	for (i = 0; i < REQUESTS; i++) {
		uint32_t frame[3] = { MSG_C_CHECK, (uint32_t)i + 1, (uint32_t)i };

		while (send(wp[1], frame, sizeof(frame), MSG_NOSIGNAL) == -1) {
			assert_int_equal(errno, EAGAIN);
			sleep_ms(1);
		}
	}
	/* Every request logged by the check process, answered or dropped. */
	for (i = 0; i < 400 && count_lines(logpath, "event=check ip=") < REQUESTS; i++)
		sleep_ms(50);
	assert_int_equal(count_lines(logpath, "event=check ip="), REQUESTS);
	dropped = count_lines(logpath, "event=check-answer-dropped");
	assert_true(dropped > 0);
	/* Now read: what was queued arrives, nothing more. */
	worker = ipc_new(base, wp[1], on_answer, NULL);
	assert_non_null(worker);
	for (i = 0; i < 100; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (answers == last && i > 20)
			break;
		last = answers;
		sleep_ms(20);
	}
	assert_int_equal(answers + dropped, REQUESTS);
	assert_true(answers >= BACKLOG);
	assert_true(answers < REQUESTS - 1000);
	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	child = -1;
	assert_true(WIFEXITED(status));
	ipc_free(worker);
	ipc_free(parent);
	event_base_free(base);
	unlink(logpath);
}

static int
teardown(void **state)
{
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		child = -1;
	}
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(answers_to_a_worker_that_does_not_read_are_bounded,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
