/*
 * sandbox — the seccomp-bpf filter of an smtp worker (Linux, libseccomp).
 * Call sandbox_worker() once in the worker, after the chroot and the
 * privilege drop: from then on the process may only use the system calls
 * of its event loop, its sockets and descriptors it already holds or is
 * given. Opening files, making sockets and the like fail with EPERM;
 * executing programs, tracing and forking kill the process (SIGSYS).
 * The filter cannot be removed and is inherited by any child.
 */
#ifndef TERN_SANDBOX_H
#define TERN_SANDBOX_H

#include <stddef.h>

/* Loads the filter. 0, or -1 with a reason in err (the caller should stop). */
int sandbox_worker(char *err, size_t errlen);

#endif
