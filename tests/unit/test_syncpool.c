/* Unit tests for src/common/syncpool.c: every file of every batch gets its
 * own answer, and syncpool_run returns only when all are in, with AIO's
 * fsync and with helper threads. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/syncpool.h"

#define NFILES   24
#define UNSET    (-12345)	/* an answer nobody wrote */
#define BIG      200		/* more than the AIO context holds at once */

/* fds of three kinds: files (fsync works), pipes (EINVAL), closed (EBADF). */
struct kit {
	char dir[64];
	int  file[NFILES];
	int  pipe[2];
	int  closed;
};

static void
kit_open(struct kit *k)
{
	int i;

	snprintf(k->dir, sizeof(k->dir), "/tmp/test_syncpool.XXXXXX");
	assert_non_null(mkdtemp(k->dir));
	for (i = 0; i < NFILES; i++) {
		char p[96];

		snprintf(p, sizeof(p), "%s/f%d", k->dir, i);
		k->file[i] = open(p, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
		assert_true(k->file[i] >= 0);
		assert_int_equal(write(k->file[i], "x", 1), 1);
		unlink(p);
	}
	assert_int_equal(pipe(k->pipe), 0);
	k->closed = dup(k->pipe[0]);
	assert_true(k->closed >= 0);
	close(k->closed);
}

static void
kit_close(struct kit *k)
{
	int i;

	for (i = 0; i < NFILES; i++)
		close(k->file[i]);
	close(k->pipe[0]);
	close(k->pipe[1]);
	rmdir(k->dir);
}

/* fds[i] of kind (i * 7 + seed) % 5: file, file, -1, pipe, closed; the expected answers. */
static void
make_batch(const struct kit *k, int *fds, int *want, int *errs, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		switch ((i * 7 + seed) % 5) {
		case 0:
		case 1: fds[i] = k->file[(i + seed) % NFILES]; want[i] = 0; break;
		case 2: fds[i] = -1; want[i] = 0; break;
		case 3: fds[i] = k->pipe[1]; want[i] = EINVAL; break;
		default: fds[i] = k->closed; want[i] = EBADF; break;
		}
		errs[i] = UNSET;
	}
}

static void
check_batches(struct syncpool *p, unsigned rounds)
{
	struct kit k;
	int fds[BIG], want[BIG], errs[BIG];
	unsigned r;
	size_t i, n;

	kit_open(&k);
	for (r = 0; r < rounds; r++) {
		n = r % 50 == 7 ? BIG - r % 3 : (r * 13) % 65;
		make_batch(&k, fds, want, errs, n, r);
		syncpool_run_mixed(p, fds, errs, n, r % 3 ? n / 2 : 0);
		for (i = 0; i < n; i++)
			if (errs[i] != want[i])
				fail_msg("round %u: file %zu of %zu answered %d, not %d", r, i, n, errs[i], want[i]);
	}
	kit_close(&k);
}

/* A pool of the given kind through the batches, then freed. */
static void
check_pool(struct syncpool *p, const char *kind, unsigned rounds)
{
	assert_non_null(p);
	assert_string_equal(syncpool_kind(p), kind);
	check_batches(p, rounds);
	syncpool_free(p);
}

/*
 * The default pool on this kernel is AIO's (Linux 4.18 and later): a
 * machine without it runs the fsyncs on threads, and this test says so
 * rather than passing over it.
 */
static void
test_answers_with_aio(void **state)
{
	(void)state;
	check_pool(syncpool_new(4), "aio", 2000);
}

static void
test_answers_with_threads(void **state)
{
	(void)state;
	check_pool(syncpool_new_threads(4), "threads", 2000);
}

/* More threads than files: helpers that wake late must find nothing to take. */
static void
test_many_helpers(void **state)
{
	(void)state;
	check_pool(syncpool_new_threads(16), "threads", 1000);
}

static void
test_one_helper(void **state)
{
	(void)state;
	check_pool(syncpool_new_threads(1), "threads", 300);
}

/* No pool: one file after the other, the same answers. */
static void
test_without_pool(void **state)
{
	(void)state;
	assert_string_equal(syncpool_kind(NULL), "serial");
	check_batches(NULL, 200);
}

/* An empty batch and a batch of -1 only return at once, touching only errs. */
static void
nothing_to_do(struct syncpool *p)
{
	int fds[3] = { -1, -1, -1 }, errs[3] = { UNSET, UNSET, UNSET };

	assert_non_null(p);
	syncpool_run(p, fds, errs, 0, 0);
	assert_int_equal(errs[0], UNSET);
	syncpool_run(p, fds, errs, 3, 1);
	assert_int_equal(errs[0], 0);
	assert_int_equal(errs[2], 0);
	syncpool_free(p);
}

static void
test_nothing_to_do(void **state)
{
	(void)state;
	nothing_to_do(syncpool_new(2));
	nothing_to_do(syncpool_new_threads(2));
	syncpool_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answers_with_aio),
		cmocka_unit_test(test_answers_with_threads),
		cmocka_unit_test(test_many_helpers),
		cmocka_unit_test(test_one_helper),
		cmocka_unit_test(test_without_pool),
		cmocka_unit_test(test_nothing_to_do),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
