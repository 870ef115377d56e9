/*
 * syncpool — fsync (or fdatasync) of many files at once, through the
 * kernel's asynchronous fsync (Linux AIO) or, where the kernel lacks it, a
 * few helper threads. fsyncs issued one after the other each wait for
 * their own cache flush of the disk; issued together, the block layer
 * merges the flushes and one serves many (a batch of 32 small files: about
 * 5-30 ms instead of 80-130 ms on the benchmark machine). The semantics of
 * each call are those of fsync(2): when syncpool_run returns, every file
 * whose error is 0 is on stable storage. With two or more, the calling
 * thread first writes back the data of all of them (sync_file_range), then
 * the fsyncs run.
 */
#ifndef TERN_SYNCPOOL_H
#define TERN_SYNCPOOL_H

#include <stddef.h>

struct syncpool;

/*
 * A pool that uses AIO if this kernel runs fsyncs through it, else
 * `threads` helper threads (the caller works too). Returns NULL if neither
 * works; syncpool_run(NULL, ...) then syncs one file after the other.
 */
struct syncpool *syncpool_new(unsigned threads);
/* Helper threads only (for the tests, and kernels without AIO's fsync). */
struct syncpool *syncpool_new_threads(unsigned threads);
void syncpool_free(struct syncpool *p);
/* "aio", "threads", or "serial" for NULL: for the start-up log line. */
const char *syncpool_kind(const struct syncpool *p);

/*
 * fsync(fds[i]) (fdatasync if datasync) for every i < n with fds[i] != -1;
 * errs[i] = 0 or the errno. Returns when all are done.
 */
void syncpool_run(struct syncpool *p, const int *fds, int *errs, size_t n, int datasync);

/* The same with fdatasync for fds[i < full_from] and fsync for the rest
 * (files and the directory that names them, in one go). */
void syncpool_run_mixed(struct syncpool *p, const int *fds, int *errs, size_t n, size_t full_from);

#endif
