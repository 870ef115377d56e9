/* sandbox — seccomp-bpf allow-list of an smtp worker (see sandbox.h). */
#include "server/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * What a worker does once it runs as its user: accept4 on the inherited
 * listening sockets, recv/send on clients (recvfrom/sendto), recvmsg/sendmsg
 * with SCM_RIGHTS on the queue channel, write() into the message file the
 * queue hands over, logging to stderr, libevent's epoll loop and signal
 * pipe, malloc. Found with `strace -f` of the workers over the integration
 * suite; the few extra calls (exit paths, abort, stdio) are harmless.
 */
static const int allowed[] = {
	SCMP_SYS(read), SCMP_SYS(readv), SCMP_SYS(write), SCMP_SYS(writev),
	SCMP_SYS(close), SCMP_SYS(lseek), SCMP_SYS(fcntl), SCMP_SYS(fstat),
	SCMP_SYS(accept4), SCMP_SYS(recvfrom), SCMP_SYS(sendto),
	SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(shutdown),
	SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait), SCMP_SYS(pipe2),
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday),
	SCMP_SYS(time), SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep),
	SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getppid),
	SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
	SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise),
	SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn),
	SCMP_SYS(sigaltstack), SCMP_SYS(restart_syscall), SCMP_SYS(sched_yield),
	SCMP_SYS(getrandom), SCMP_SYS(futex), SCMP_SYS(exit), SCMP_SYS(exit_group),
};

/*
 * Refused with EPERM rather than fatal: a library may try these on an
 * error or logging path (the log's syslog socket reconnecting after the
 * daemon restarted, stdio may probe with ioctl), and the worker must then
 * go on without them.
 */
static const int refused[] = {
	SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(openat2), SCMP_SYS(creat),
	SCMP_SYS(stat), SCMP_SYS(lstat), SCMP_SYS(statx), SCMP_SYS(access),
	SCMP_SYS(faccessat), SCMP_SYS(faccessat2), SCMP_SYS(readlink),
	SCMP_SYS(readlinkat), SCMP_SYS(mkdir), SCMP_SYS(mkdirat),
	SCMP_SYS(unlink), SCMP_SYS(unlinkat), SCMP_SYS(rename),
	SCMP_SYS(renameat), SCMP_SYS(renameat2), SCMP_SYS(link),
	SCMP_SYS(linkat), SCMP_SYS(symlink), SCMP_SYS(symlinkat),
	SCMP_SYS(chmod), SCMP_SYS(fchmod), SCMP_SYS(fchmodat),
	SCMP_SYS(chown), SCMP_SYS(fchown), SCMP_SYS(fchownat), SCMP_SYS(lchown),
	SCMP_SYS(truncate), SCMP_SYS(ftruncate),
	SCMP_SYS(socket), SCMP_SYS(socketpair), SCMP_SYS(connect),
	SCMP_SYS(bind), SCMP_SYS(listen), SCMP_SYS(setsockopt),
	SCMP_SYS(getsockopt), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
	SCMP_SYS(ioctl), SCMP_SYS(kill), SCMP_SYS(uname),
};

static int
add_list(scmp_filter_ctx ctx, uint32_t action, const int *list, size_t n)
{
	size_t i;
	int rc;

	for (i = 0; i < n; i++)
		if ((rc = seccomp_rule_add(ctx, action, list[i], 0)) < 0)
			return rc;
	return 0;
}

/*
 * Calls allowed only with some arguments: memory is never made executable
 * (the usual second stage of an exploit), fstatat only on a descriptor
 * (glibc's fstat), a signal only to this process (abort(), raise()).
 */
static int
add_conditional(scmp_filter_ctx ctx)
{
	int rc;

	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
	    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))) < 0 ||
	    (rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
	    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))) < 0 ||
	    (rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(newfstatat), 1,
	    SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH))) < 0 ||
	    (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(newfstatat), 1,
	    SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, 0))) < 0 ||
	    (rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
	    SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()))) < 0)
		return rc;
	return 0;
}

/* The seccomp action that ends the whole process (not only the thread). */
static uint32_t
kill_action(void)
{
	return seccomp_api_get() >= 3 ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_KILL;
}

/* Loads ctx (built by the caller) and releases it; 0 or -1 with err. */
static int
load(scmp_filter_ctx ctx, int rc, char *err, size_t errlen)
{
	const char *what = ctx == NULL ? "seccomp_init" : "seccomp rules";

	if (ctx != NULL && rc >= 0) {
		what = "seccomp_load";
		rc = seccomp_load(ctx);
	}
	if (ctx != NULL)
		seccomp_release(ctx);
	if (ctx != NULL && rc >= 0)
		return 0;
	snprintf(err, errlen, "%s: %s", what, strerror(ctx == NULL ? ENOMEM : -rc));
	return -1;
}

int
sandbox_worker(char *err, size_t errlen)
{
#ifdef TERN_NO_SANDBOX
	/* Only for builds run under valgrind, which cannot run seccomp(2). */
	(void)err;
	(void)errlen;
	return 0;
#endif
	/* Anything not listed (execve, ptrace, clone, mount...) kills the process. */
	uint32_t kill = kill_action();
	scmp_filter_ctx ctx = seccomp_init(kill);
	int rc = 0;

	if (ctx != NULL && (rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, kill)) >= 0 &&
	    (rc = add_list(ctx, SCMP_ACT_ALLOW, allowed, sizeof(allowed) / sizeof(allowed[0]))) >= 0 &&
	    (rc = add_list(ctx, SCMP_ACT_ERRNO(EPERM), refused, sizeof(refused) / sizeof(refused[0]))) >= 0)
		rc = add_conditional(ctx);
	return load(ctx, rc, err, errlen);
}

/* What none of the other children ever does: the process dies (SIGSYS). */
static const int denylist_fatal[] = {
	SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(fork), SCMP_SYS(vfork),
	SCMP_SYS(ptrace), SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev),
	SCMP_SYS(mount), SCMP_SYS(umount2), SCMP_SYS(pivot_root), SCMP_SYS(chroot),
	SCMP_SYS(setns), SCMP_SYS(unshare), SCMP_SYS(init_module),
	SCMP_SYS(finit_module), SCMP_SYS(delete_module), SCMP_SYS(kexec_load),
	SCMP_SYS(kexec_file_load), SCMP_SYS(bpf), SCMP_SYS(perf_event_open),
	SCMP_SYS(userfaultfd), SCMP_SYS(keyctl), SCMP_SYS(add_key),
	SCMP_SYS(request_key), SCMP_SYS(reboot), SCMP_SYS(swapon), SCMP_SYS(swapoff),
};

/* Changes to the file system (names, modes, owners): EPERM without may_write_files. */
static const int denylist_fs_changes[] = {
	SCMP_SYS(creat), SCMP_SYS(openat2), SCMP_SYS(unlink), SCMP_SYS(unlinkat),
	SCMP_SYS(rename), SCMP_SYS(renameat), SCMP_SYS(renameat2), SCMP_SYS(mkdir),
	SCMP_SYS(mkdirat), SCMP_SYS(rmdir), SCMP_SYS(link), SCMP_SYS(linkat),
	SCMP_SYS(symlink), SCMP_SYS(symlinkat), SCMP_SYS(chmod), SCMP_SYS(fchmodat),
	SCMP_SYS(chown), SCMP_SYS(lchown), SCMP_SYS(fchownat), SCMP_SYS(truncate),
	SCMP_SYS(mknod), SCMP_SYS(mknodat),
};

/*
 * io_uring runs opens, unlinks and renames that no seccomp filter sees:
 * none of our processes uses it, so it is refused (EPERM, for a library
 * that only probes for it).
 */
static const int denylist_no_uring[] = {
	SCMP_SYS(io_uring_setup), SCMP_SYS(io_uring_enter), SCMP_SYS(io_uring_register),
};

/* Any of these in open()'s flags is a write (one rule per bit: the rules of a call are or'ed). */
static const int open_write_bits[] = { O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND };

static int
refuse_open_for_write(scmp_filter_ctx ctx)
{
	size_t i;
	int rc;

	for (i = 0; i < sizeof(open_write_bits) / sizeof(open_write_bits[0]); i++) {
		scmp_datum_t b = (scmp_datum_t)open_write_bits[i];

		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(open), 1,
		    SCMP_A1(SCMP_CMP_MASKED_EQ, b, b))) < 0 ||
		    (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(openat), 1,
		    SCMP_A2(SCMP_CMP_MASKED_EQ, b, b))) < 0)
			return rc;
	}
	return 0;
}

/*
 * A thread (clone with CLONE_THREAD) is fine, a new process is not. clone3
 * passes its flags in memory a filter cannot read: ENOSYS makes glibc fall
 * back to clone, whose flags it can. Signals go only to this process
 * (abort(), raise(), its own threads).
 */
static int
denylist_conditional(scmp_filter_ctx ctx, uint32_t kill, int may_write_files)
{
	scmp_datum_t self = (scmp_datum_t)getpid();
	int rc;

	if ((rc = seccomp_rule_add(ctx, kill, SCMP_SYS(clone), 1,
	    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0))) < 0 ||
	    (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) < 0 ||
	    (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(kill), 1,
	    SCMP_A0(SCMP_CMP_NE, self))) < 0 ||
	    (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(tgkill), 1,
	    SCMP_A0(SCMP_CMP_NE, self))) < 0 ||
	    (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(tkill), 0)) < 0 ||
	    (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(pidfd_send_signal), 0)) < 0 ||
	    (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(pidfd_getfd), 0)) < 0 ||
	    (rc = add_list(ctx, SCMP_ACT_ERRNO(EPERM), denylist_no_uring,
	    sizeof(denylist_no_uring) / sizeof(denylist_no_uring[0]))) < 0)
		return rc;
	if (may_write_files)
		return 0;
	if ((rc = add_list(ctx, SCMP_ACT_ERRNO(EPERM), denylist_fs_changes,
	    sizeof(denylist_fs_changes) / sizeof(denylist_fs_changes[0]))) < 0)
		return rc;
	return refuse_open_for_write(ctx);
}

int
sandbox_denylist(int may_write_files, char *err, size_t errlen)
{
#ifdef TERN_NO_SANDBOX
	(void)may_write_files;
	(void)err;
	(void)errlen;
	return 0;
#endif
	uint32_t kill = kill_action();
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int rc = 0;

	if (ctx != NULL && (rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, kill)) >= 0 &&
	    (rc = add_list(ctx, kill, denylist_fatal,
	    sizeof(denylist_fatal) / sizeof(denylist_fatal[0]))) >= 0)
		rc = denylist_conditional(ctx, kill, may_write_files);
	return load(ctx, rc, err, errlen);
}
