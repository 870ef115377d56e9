/* syncpool — many fsyncs at once (see syncpool.h). */
#include "common/syncpool.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define STACK_SIZE (64 * 1024)	/* the threads only call fsync */
#define AIO_DEPTH  64		/* fsyncs in flight at once with AIO */

/*
 * No lock: a helper that was woken while the caller held a mutex went back
 * to sleep on that mutex at once, and again each time it reported a file
 * (the futex calls and their context switches were a fifth of the deliver
 * process's CPU at S=20). Instead, files are claimed from one atomic word,
 * which holds the batch's size (high half) and the next index (low half):
 * a claim whose index is below the size is a file of the batch then being
 * run, whatever batch the helper was woken for, and a claim can only
 * succeed while that batch is unfinished, so its arrays are still valid.
 * A failed claim touches nothing but the word.
 */
struct syncpool {
	aio_context_t     aio;		/* nonzero: the kernel runs the fsyncs */
	pthread_t        *threads;
	unsigned          nthreads;
	_Atomic uint64_t  claim;	/* n << 32 | next index */
	_Atomic uint32_t  left;		/* files of the batch not finished; futex */
	_Atomic uint32_t  bell;		/* bumped for every batch and at stop; futex */
	_Atomic int       stop;
	/* The batch: written before `claim`, read-only while it runs. */
	const int        *fds;
	int              *errs;
	size_t            full_from;	/* fds from this index get fsync, the others fdatasync */
};

static void
futex_wait(_Atomic uint32_t *word, uint32_t seen)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
}

static void
futex_wake(_Atomic uint32_t *word, int n)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static int
sync_one(int fd, int datasync)
{
	int rc;

	do
		rc = datasync ? fdatasync(fd) : fsync(fd);
	while (rc == -1 && errno == EINTR);
	return rc == -1 ? errno : 0;
}

/*
 * The data of every file written back first, from this thread: all of it
 * submitted, then waited for. The fsyncs that follow find it on disk and
 * write only the inodes and flush. Measured on the benchmark machine (a
 * batch of about 6 Maildir files at S=20): 10-18% less CPU in the deliver
 * process and a higher rate in each of 7 alternating runs; it spares the
 * helper threads' wake-ups for the data. Errors are ignored here: the fsync
 * reports them.
 */
static void
write_ahead(const int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (fds[i] != -1)
			sync_file_range(fds[i], 0, 0, SYNC_FILE_RANGE_WRITE);
	for (i = 0; i < n; i++)
		if (fds[i] != -1)
			sync_file_range(fds[i], 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE |
			    SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
}

/*
 * Linux AIO's fsync (IOCB_CMD_FSYNC, since 4.18): io_submit hands every file
 * of a batch to the kernel's workqueue, whose threads run the fsyncs at once
 * and never return to user space; the caller sleeps once, in
 * io_getevents. A helper thread costs a wake-up, a sleep in fsync and
 * a futex call or two per file, each a user-space context switch, which
 * are dear on a virtual machine (see ARCHITECTURE.md, "Performance").
 */
static long
aio_call_setup(unsigned nr, aio_context_t *ctx)
{
	return syscall(SYS_io_setup, nr, ctx);
}

static long
aio_call_submit(aio_context_t ctx, long n, struct iocb **cbs)
{
	return syscall(SYS_io_submit, ctx, n, cbs);
}

static long
aio_call_getevents(aio_context_t ctx, long min, long max, struct io_event *ev)
{
	return syscall(SYS_io_getevents, ctx, min, max, ev, NULL);
}

static void
aio_prepare(struct iocb *cb, int fd, int datasync, size_t index)
{
	memset(cb, 0, sizeof(*cb));
	cb->aio_fildes = (uint32_t)fd;
	cb->aio_lio_opcode = datasync ? IOCB_CMD_FDSYNC : IOCB_CMD_FSYNC;
	cb->aio_data = index;
}

/* Waits for `n` submitted fsyncs and writes their answers. */
static void
aio_collect(aio_context_t ctx, long n, int *errs)
{
	struct io_event ev[AIO_DEPTH];

	while (n > 0) {
		long got = aio_call_getevents(ctx, n, n, ev), i;

		if (got == -1 && errno == EINTR)
			continue;
		if (got <= 0)
			abort();	/* a submitted fsync that cannot be waited for: no answer is safe */
		for (i = 0; i < got; i++)
			errs[ev[i].data] = ev[i].res < 0 ? (int)-ev[i].res : 0;
		n -= got;
	}
}

/*
 * Up to AIO_DEPTH files: all submitted, then waited for. A file the kernel
 * refuses to take (a pipe, a closed descriptor, a full context) is synced
 * here instead, which gives fsync(2)'s own answer for it.
 */
static void
aio_chunk(aio_context_t ctx, const int *fds, int *errs, size_t n, size_t full_from, size_t base)
{
	struct iocb cb[AIO_DEPTH], *cbp[AIO_DEPTH];
	size_t i, m = 0, at = 0;
	long inflight = 0;

	for (i = 0; i < n; i++) {
		if (fds[i] == -1) {
			errs[i] = 0;
			continue;
		}
		aio_prepare(&cb[m], fds[i], base + i < full_from, i);
		cbp[m] = &cb[m];
		m++;
	}
	while (at < m) {
		long r = aio_call_submit(ctx, (long)(m - at), &cbp[at]);

		if (r > 0) {
			at += (size_t)r;
			inflight += r;
		} else if (r == -1 && errno == EINTR)
			continue;
		else {
			size_t k = (size_t)cbp[at]->aio_data;

			errs[k] = sync_one(fds[k], base + k < full_from);
			at++;
		}
	}
	aio_collect(ctx, inflight, errs);
}

/* 1 if this kernel runs an fsync through AIO (a memfd's fsync does nothing). */
static int
aio_works(aio_context_t ctx)
{
	struct iocb cb, *cbp = &cb;
	struct io_event ev;
	int fd = memfd_create("syncpool-probe", MFD_CLOEXEC), ok = 0;
	long r;

	if (fd == -1)
		return 0;
	aio_prepare(&cb, fd, 0, 0);
	if (aio_call_submit(ctx, 1, &cbp) == 1) {
		while ((r = aio_call_getevents(ctx, 1, 1, &ev)) == -1 && errno == EINTR)
			;
		ok = r == 1 && ev.res == 0;
		if (r != 1)
			abort();	/* submitted and lost: the context cannot be trusted */
	}
	close(fd);
	return ok;
}

/* Syncs files of the running batch until none is left to claim. */
static void
drain(struct syncpool *p)
{
	for (;;) {
		uint64_t c = atomic_fetch_add_explicit(&p->claim, 1, memory_order_acquire);
		size_t i = (size_t)(uint32_t)c;

		if (i >= (size_t)(c >> 32))
			return;
		p->errs[i] = p->fds[i] == -1 ? 0 : sync_one(p->fds[i], i < p->full_from);
		if (atomic_fetch_sub_explicit(&p->left, 1, memory_order_acq_rel) == 1)
			futex_wake(&p->left, 1);
	}
}

static void *
worker(void *arg)
{
	struct syncpool *p = arg;

	for (;;) {
		uint32_t seen = atomic_load_explicit(&p->bell, memory_order_acquire);

		if (atomic_load_explicit(&p->stop, memory_order_acquire))
			return NULL;
		drain(p);
		/* Sleeps only if no batch began since `seen` was read. */
		futex_wait(&p->bell, seen);
	}
}

struct syncpool *
syncpool_new_threads(unsigned threads)
{
	struct syncpool *p = calloc(1, sizeof(*p));
	pthread_attr_t attr;

	if (p == NULL || (p->threads = calloc(threads, sizeof(*p->threads))) == NULL) {
		free(p);
		return NULL;
	}
	atomic_init(&p->claim, 0);
	atomic_init(&p->left, 0);
	atomic_init(&p->bell, 0);
	atomic_init(&p->stop, 0);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, STACK_SIZE);
	while (p->nthreads < threads &&
	    pthread_create(&p->threads[p->nthreads], &attr, worker, p) == 0)
		p->nthreads++;
	pthread_attr_destroy(&attr);
	if (p->nthreads == 0) {
		syncpool_free(p);
		return NULL;
	}
	return p;
}

struct syncpool *
syncpool_new(unsigned threads)
{
	aio_context_t ctx = 0;
	struct syncpool *p;

	if (aio_call_setup(AIO_DEPTH, &ctx) == 0) {
		if (aio_works(ctx) && (p = calloc(1, sizeof(*p))) != NULL) {
			p->aio = ctx;
			return p;
		}
		syscall(SYS_io_destroy, ctx);
	}
	return syncpool_new_threads(threads);
}

const char *
syncpool_kind(const struct syncpool *p)
{
	return p == NULL ? "serial" : p->aio ? "aio" : "threads";
}

void
syncpool_free(struct syncpool *p)
{
	unsigned i;

	if (p == NULL)
		return;
	if (p->aio) {
		syscall(SYS_io_destroy, p->aio);
		free(p);
		return;
	}
	atomic_store_explicit(&p->stop, 1, memory_order_release);
	atomic_fetch_add_explicit(&p->bell, 1, memory_order_release);
	futex_wake(&p->bell, INT32_MAX);
	for (i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	free(p->threads);
	free(p);
}

void
syncpool_run(struct syncpool *p, const int *fds, int *errs, size_t n, int datasync)
{
	syncpool_run_mixed(p, fds, errs, n, datasync ? n : 0);
}

/* One batch of at most UINT32_MAX files (the claim word's halves). */
static void
run_batch(struct syncpool *p, const int *fds, int *errs, size_t n, size_t full_from, size_t busy)
{
	uint32_t l;

	write_ahead(fds, n);
	p->fds = fds;
	p->errs = errs;
	p->full_from = full_from;
	atomic_store_explicit(&p->left, (uint32_t)n, memory_order_relaxed);
	atomic_store_explicit(&p->claim, (uint64_t)n << 32, memory_order_release);
	atomic_fetch_add_explicit(&p->bell, 1, memory_order_release);
	/* Only as many helpers as there is work for: each wake-up costs. */
	futex_wake(&p->bell, (int)(busy - 1 < p->nthreads ? busy - 1 : p->nthreads));
	drain(p);
	while ((l = atomic_load_explicit(&p->left, memory_order_acquire)) != 0)
		futex_wait(&p->left, l);
}

void
syncpool_run_mixed(struct syncpool *p, const int *fds, int *errs, size_t n, size_t full_from)
{
	size_t i, busy = 0;

	for (i = 0; i < n; i++)
		busy += fds[i] != -1;
	if (p == NULL || busy < 2 || n > UINT32_MAX) {
		for (i = 0; i < n; i++)
			errs[i] = fds[i] == -1 ? 0 : sync_one(fds[i], i < full_from);
		return;
	}
	if (p->aio) {
		write_ahead(fds, n);
		for (i = 0; i < n; i += AIO_DEPTH)
			aio_chunk(p->aio, fds + i, errs + i, n - i < AIO_DEPTH ? n - i : AIO_DEPTH,
			    full_from, i);
		return;
	}
	run_batch(p, fds, errs, n, full_from, busy);
}
