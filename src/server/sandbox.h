/*
 * sandbox — seccomp-bpf filters (Linux, libseccomp). Filters cannot be
 * removed and are inherited by any child.
 *
 * sandbox_worker(), once in an smtp worker after the chroot and the
 * privilege drop: an allow-list. From then on the process may only use the
 * system calls of its event loop, its sockets and descriptors it already
 * holds or is given. Opening files, making sockets and the like fail with
 * EPERM; executing programs, tracing and forking kill the process (SIGSYS).
 *
 * sandbox_denylist(), once in every other child after its privilege drop
 * (mta, check, queue, deliver, auth): a deny-list for processes that need
 * more of the system than a worker (files, connections, DNS through
 * libunbound's threads, OpenSSL) but never run a program. Executing
 * programs, forking, tracing, reading or writing other processes' memory,
 * namespaces, mounts, modules, bpf and keyrings kill the process; a signal
 * to another process, and (unless may_write_files) opening a file for
 * writing or changing any name or mode in the file system, fail with
 * EPERM. Threads are allowed.
 */
#ifndef TERN_SANDBOX_H
#define TERN_SANDBOX_H

#include <stddef.h>

/* Loads the filter. 0, or -1 with a reason in err (the caller should stop). */
int sandbox_worker(char *err, size_t errlen);

/* Loads the deny-list filter. 0, or -1 with a reason in err. */
int sandbox_denylist(int may_write_files, char *err, size_t errlen);

#endif
