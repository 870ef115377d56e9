/*
 * Unit tests for src/server/sandbox.c: a forked child loads a filter (the
 * worker's, or the mta's and check process's with or without file
 * writes), then tries allowed and forbidden calls; the parent checks what
 * the child reports through a pipe and how it ended.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server/sandbox.h"

/* What a child tells the parent: the result of its call and its errno. */
struct report {
	long rc;
	int  err;
};

typedef void (*child_fn)(int out);

/* Which filter run_sandboxed loads. */
enum filter { F_WORKER, F_DENYLIST, F_DENYLIST_WRITES };

static enum filter filter = F_WORKER;

/* The child's exit codes other than 0. */
#define EXIT_NO_SANDBOX	90
#define EXIT_SURVIVED	91

static void
send_report(int out, long rc, int err)
{
	struct report r = { rc, err };

	if (write(out, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(92);
}

/* Forks, runs fn under the filter; returns the wait status, fills *r if reported. */
static int
run_sandboxed(child_fn fn, struct report *r, int *reported)
{
	int p[2], status;
	pid_t pid;
	ssize_t n;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[256];

		close(p[0]);
		if ((filter == F_WORKER ? sandbox_worker(err, sizeof(err)) :
		    sandbox_denylist(filter == F_DENYLIST_WRITES, err, sizeof(err))) == -1) {
			(void)!write(2, err, strlen(err));
			_exit(EXIT_NO_SANDBOX);
		}
		fn(p[1]);
		_exit(0);
	}
	close(p[1]);
	n = read(p[0], r, sizeof(*r));
	*reported = n == (ssize_t)sizeof(*r);
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void
assert_exit0(int status)
{
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
assert_killed_by_sigsys(int status)
{
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

/* ---- children ---- */

static void
child_open(int out)
{
	int fd = open("/etc/passwd", O_RDONLY);

	send_report(out, fd, errno);
}

static void
child_openat_create(int out)
{
	int fd = openat(AT_FDCWD, "/tmp/tern-sandbox-test-must-not-exist",
	    O_WRONLY | O_CREAT | O_EXCL, 0600);

	send_report(out, fd, errno);
}

static void
child_socket(int out)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	send_report(out, fd, errno);
}

static void
child_kill_parent(int out)
{
	int rc = kill(getppid(), 0);

	send_report(out, rc, errno);
}

static void
child_execve(int out)
{
	char *argv[] = { "/bin/true", NULL }, *envp[] = { NULL };

	execve(argv[0], argv, envp);
	send_report(out, -1, errno);
	_exit(EXIT_SURVIVED);
}

static void
child_ptrace(int out)
{
	long rc = ptrace(PTRACE_TRACEME, 0, NULL, NULL);

	send_report(out, rc, errno);
	_exit(EXIT_SURVIVED);
}

static void
child_fork(int out)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	send_report(out, pid, errno);
	_exit(EXIT_SURVIVED);
}

static void
child_mmap_exec(int out)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	send_report(out, p == MAP_FAILED ? -1 : 0, errno);
	_exit(EXIT_SURVIVED);
}

/* Everything a worker does in its loop still works under the filter. */
static void
child_allowed(int out)
{
	struct timespec ts;
	struct epoll_event ev = { .events = EPOLLIN };
	int p[2], ep, sv;
	char c = 0, *big;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1 || getpid() <= 0)
		_exit(10);
	if ((big = malloc(8 << 20)) == NULL)	/* mmap'd by malloc */
		_exit(11);
	memset(big, 'x', 8 << 20);
	free(big);
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) == -1 || write(p[1], "y", 1) != 1 ||
	    read(p[0], &c, 1) != 1 || c != 'y')
		_exit(12);
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		_exit(13);
	ev.data.fd = p[0];
	if (epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == -1 || epoll_wait(ep, &ev, 1, 0) != 0)
		_exit(14);
	if ((sv = fcntl(p[0], F_GETFL)) == -1 || fcntl(p[0], F_SETFL, sv) == -1)
		_exit(15);
	close(ep);
	close(p[0]);
	close(p[1]);
	send_report(out, 0, 0);
}


/* ---- tests ---- */

static void
expect_eperm(child_fn fn)
{
	struct report r;
	int reported;

	assert_exit0(run_sandboxed(fn, &r, &reported));
	assert_true(reported);
	assert_int_equal(r.rc, -1);
	assert_int_equal(r.err, EPERM);
}

static void
test_open_refused(void **state)
{
	expect_eperm(child_open);
}

static void
test_create_refused(void **state)
{
	expect_eperm(child_openat_create);
	assert_int_equal(access("/tmp/tern-sandbox-test-must-not-exist", F_OK), -1);
}

static void
test_socket_refused(void **state)
{
	expect_eperm(child_socket);
}

static void
test_kill_refused(void **state)
{
	expect_eperm(child_kill_parent);
}

static void
expect_sigsys(child_fn fn)
{
	struct report r;
	int reported;

	assert_killed_by_sigsys(run_sandboxed(fn, &r, &reported));
	assert_false(reported);
}

static void
test_execve_kills(void **state)
{
	expect_sigsys(child_execve);
}

static void
test_ptrace_kills(void **state)
{
	expect_sigsys(child_ptrace);
}

static void
test_fork_kills(void **state)
{
	expect_sigsys(child_fork);
}

static void
test_exec_memory_kills(void **state)
{
	expect_sigsys(child_mmap_exec);
}

static void
test_allowed_calls_work(void **state)
{
	struct report r;
	int reported;

	assert_exit0(run_sandboxed(child_allowed, &r, &reported));
	assert_true(reported);
	assert_int_equal(r.rc, 0);
}

/* /proc/PID/status shows one filter in filter mode (2). */
static void
test_status_shows_filter(void **state)
{
	int p[2], q[2], status;
	char path[64], text[8192], c;
	ssize_t n;
	FILE *f;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(q), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[256];

		close(p[0]);
		close(q[1]);
		if (sandbox_worker(err, sizeof(err)) == -1)
			_exit(EXIT_NO_SANDBOX);
		if (write(p[1], "r", 1) != 1 || read(q[0], &c, 1) != 0)
			_exit(93);
		_exit(0);
	}
	close(p[1]);
	close(q[0]);
	assert_int_equal(read(p[0], &c, 1), 1);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	assert_non_null(f = fopen(path, "r"));
	n = (ssize_t)fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	assert_true(n > 0);
	text[n] = '\0';
	assert_non_null(strstr(text, "\nSeccomp:\t2\n"));
	assert_non_null(strstr(text, "\nSeccomp_filters:\t1\n"));
	close(q[1]);	/* the child's read returns 0: it exits */
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_exit0(status);
}

/* ---- the mta's and check process's filter (sandbox_denylist) ---- */

#define SCRATCH "/tmp/tern-sandbox-test-scratch"

static void
child_open_read(int out)
{
	int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);

	send_report(out, fd >= 0 ? 0 : -1, errno);
}

static void
child_open_append(int out)
{
	int fd = open(SCRATCH, O_WRONLY | O_APPEND);

	send_report(out, fd, errno);
}

static void
child_open_rdwr(int out)
{
	int fd = openat(AT_FDCWD, SCRATCH, O_RDWR);

	send_report(out, fd, errno);
}

static void
child_unlink(int out)
{
	int rc = unlink(SCRATCH);

	send_report(out, rc, errno);
}

static void
child_chmod(int out)
{
	int rc = chmod(SCRATCH, 0777);

	send_report(out, rc, errno);
}

static void
child_io_uring(int out)
{
	char params[120] = { 0 };	/* struct io_uring_params */
	long rc = syscall(SYS_io_uring_setup, 4, params);

	send_report(out, rc, errno);
}

static void *
thread_main(void *arg)
{
	return arg;
}

/* Sockets, a connection attempt and threads: what libunbound and the mta need. */
static void
child_denylist_allowed(int out)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(9) };
	pthread_t t;
	void *back = NULL;
	int fd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		_exit(20);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 && errno == EPERM)
		_exit(21);
	close(fd);
	if (pthread_create(&t, NULL, thread_main, (void *)&sin) != 0 ||
	    pthread_join(t, &back) != 0 || back != (void *)&sin)
		_exit(22);
	if (kill(getpid(), 0) == -1)	/* itself: allowed */
		_exit(23);
	send_report(out, 0, 0);
}

static void
make_scratch(void)
{
	int fd = open(SCRATCH, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	close(fd);
}

static void
test_denylist_denies(void **state)
{
	filter = F_DENYLIST;
	make_scratch();
	expect_eperm(child_kill_parent);
	expect_eperm(child_open_append);
	expect_eperm(child_open_rdwr);
	expect_eperm(child_openat_create);
	assert_int_equal(access("/tmp/tern-sandbox-test-must-not-exist", F_OK), -1);
	expect_eperm(child_unlink);
	expect_eperm(child_chmod);
	assert_int_equal(access(SCRATCH, F_OK), 0);
	expect_eperm(child_io_uring);
	expect_sigsys(child_execve);
	expect_sigsys(child_ptrace);
	expect_sigsys(child_fork);
	unlink(SCRATCH);
}

static void
expect_works(child_fn fn)
{
	struct report r;
	int reported;

	assert_exit0(run_sandboxed(fn, &r, &reported));
	assert_true(reported);
	assert_int_equal(r.rc, 0);
}

static void
test_denylist_allows(void **state)
{
	filter = F_DENYLIST;
	expect_works(child_open_read);
	expect_works(child_denylist_allowed);
	expect_works(child_allowed);
}

/* With may_write_files (the check process writing DMARC reports). */
static void
test_denylist_writes(void **state)
{
	filter = F_DENYLIST_WRITES;
	make_scratch();
	expect_works(child_unlink);
	assert_int_equal(access(SCRATCH, F_OK), -1);
	expect_eperm(child_kill_parent);
	expect_eperm(child_io_uring);	/* its opens would escape the filter */
	expect_sigsys(child_execve);
	expect_sigsys(child_fork);
}

/* Each test starts with the worker's filter, also after a failed one. */
static int
reset_filter(void **state)
{
	(void)state;
	filter = F_WORKER;
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_open_refused, reset_filter),
		cmocka_unit_test_setup(test_create_refused, reset_filter),
		cmocka_unit_test_setup(test_socket_refused, reset_filter),
		cmocka_unit_test_setup(test_kill_refused, reset_filter),
		cmocka_unit_test_setup(test_execve_kills, reset_filter),
		cmocka_unit_test_setup(test_ptrace_kills, reset_filter),
		cmocka_unit_test_setup(test_fork_kills, reset_filter),
		cmocka_unit_test_setup(test_exec_memory_kills, reset_filter),
		cmocka_unit_test_setup(test_allowed_calls_work, reset_filter),
		cmocka_unit_test_setup(test_status_shows_filter, reset_filter),
		cmocka_unit_test_setup(test_denylist_denies, reset_filter),
		cmocka_unit_test_setup(test_denylist_allows, reset_filter),
		cmocka_unit_test_setup(test_denylist_writes, reset_filter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
