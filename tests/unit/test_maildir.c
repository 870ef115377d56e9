/* Unit tests for src/deliver/maildir.c: delivery into a fresh Maildir. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deliver/maildir.h"

#define MIB	(1024 * 1024)

struct fixture {
	char root[64];		/* the mkdtemp directory */
	char md[PATH_MAX];	/* root/a/b/Maildir, not yet created */
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->root, sizeof(f->root), "/tmp/tern-maildir-XXXXXX");
	if (mkdtemp(f->root) == NULL)
		return -1;
	snprintf(f->md, sizeof(f->md), "%s/a/b/Maildir", f->root);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[PATH_MAX + 16];

	/* The test's own mkdtemp directory, nothing else. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/* Names in dir (not . and ..); the last one seen goes to last. */
static int
count_entries(const char *dir, char *last, size_t lastsz)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (last != NULL)
			snprintf(last, lastsz, "%s", de->d_name);
		n++;
	}
	closedir(d);
	return n;
}

static int
count_sub(const struct fixture *f, const char *sub)
{
	char p[PATH_MAX + 8];

	snprintf(p, sizeof(p), "%s/%s", f->md, sub);
	return count_entries(p, NULL, 0);
}

/* A temporary source file holding data[0..n); its offset is left at off. */
static int
make_source(const struct fixture *f, const void *data, size_t n, off_t off)
{
	char p[PATH_MAX + 8];
	int fd;

	snprintf(p, sizeof(p), "%s/src.XXXXXX", f->root);
	fd = mkstemp(p);
	assert_true(fd >= 0);
	unlink(p);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	assert_int_equal(lseek(fd, off, SEEK_SET), off);
	return fd;
}

static char *
read_delivered(const struct fixture *f, const char *name, size_t *len)
{
	char p[PATH_MAX + 300];
	struct stat st;
	char *buf;
	int fd;

	snprintf(p, sizeof(p), "%s/new/%s", f->md, name);
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size + 1), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/* The file new/name holds exactly want[0..n). */
static void
assert_delivered(const struct fixture *f, const char *name, const char *want, size_t n)
{
	size_t got;
	char *out = read_delivered(f, name, &got);

	assert_int_equal(got, n);
	assert_memory_equal(out, want, n);
	free(out);
}

static void
fill_random(char *p, size_t n)
{
	ssize_t r;

	while (n > 0) {
		r = getrandom(p, n, 0);
		assert_true(r > 0);
		p += r;
		n -= (size_t)r;
	}
}

static void
test_deliver_exact(void **state)
{
	struct fixture *f = *state;
	static const char prefix[] = "Return-Path: <a@b>\r\nDelivered-To: c@d\r\n";
	size_t plen = sizeof(prefix) - 1, n = MIB + 7, got;
	struct maildir_result res;
	char *data, *out, name[256], sub[PATH_MAX + 8];
	struct stat st;
	int fd;

	data = malloc(n);
	assert_non_null(data);
	fill_random(data, n);
	memset(data, 0, 4096);		/* NULs, a bare LF, a lone CR */
	data[100] = '\n';
	data[200] = '\r';
	fd = make_source(f, data, n, 12345);

	assert_int_equal(maildir_deliver(f->md, fd, prefix, plen, &res), 0);
	assert_string_equal(res.error, "");
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 12345);
	assert_int_equal(count_sub(f, "tmp"), 0);
	assert_int_equal(count_sub(f, "cur"), 0);
	snprintf(sub, sizeof(sub), "%s/new", f->md);
	assert_int_equal(count_entries(sub, name, sizeof(name)), 1);
	assert_string_equal(name, res.name);
	snprintf(sub, sizeof(sub), "%s/tmp", f->md);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 0777 & ~0700, 0);
	assert_true(S_ISDIR(st.st_mode));

	out = read_delivered(f, res.name, &got);
	assert_int_equal(got, plen + n);
	assert_memory_equal(out, prefix, plen);
	assert_memory_equal(out + plen, data, n);
	free(out);
	free(data);
	close(fd);
}

static void
test_name_format(void **state)
{
	struct fixture *f = *state;
	struct maildir_result res;
	char want[64], *p;
	int fd;

	fd = make_source(f, "x", 1, 0);
	assert_int_equal(maildir_deliver(f->md, fd, NULL, 0, &res), 0);
	/* <sec>.M<usec>P<pid>R<16 hex>.<host> */
	p = res.name + strspn(res.name, "0123456789");
	assert_true(p > res.name);
	assert_memory_equal(p, ".M", 2);
	p += 2;
	p += strspn(p, "0123456789");
	snprintf(want, sizeof(want), "P%ldR", (long)getpid());
	assert_memory_equal(p, want, strlen(want));
	p += strlen(want);
	assert_int_equal(strspn(p, "0123456789abcdef"), 16);
	p += 16;
	assert_int_equal(*p, '.');
	assert_true(strlen(p) > 1);
	assert_null(strchr(res.name, '/'));
	assert_null(strchr(res.name, ':'));
	close(fd);
}

static void
test_two_deliveries_distinct(void **state)
{
	struct fixture *f = *state;
	struct maildir_result r1, r2;
	size_t got;
	char *out;
	int fd;

	fd = make_source(f, "", 0, 0);
	assert_int_equal(maildir_deliver(f->md, fd, NULL, 0, &r1), 0);
	assert_int_equal(maildir_deliver(f->md, fd, "P\n", 2, &r2), 0);
	assert_string_not_equal(r1.name, r2.name);
	assert_int_equal(count_sub(f, "new"), 2);
	assert_int_equal(count_sub(f, "tmp"), 0);
	out = read_delivered(f, r1.name, &got);
	assert_int_equal(got, 0);
	free(out);
	assert_delivered(f, r2.name, "P\n", 2);
	close(fd);
}

/*
 * The steps over a batch: nothing shows in new/ before the links, a failed
 * job is not linked and leaves nothing, one new/ fsync serves the batch.
 */
static void
test_staged_batch(void **state)
{
	struct fixture *f = *state;
	struct maildir_job j[3];
	int i, fd[3];

	for (i = 0; i < 3; i++) {
		fd[i] = make_source(f, "abc", 3, 0);
		assert_int_equal(maildir_begin(&j[i], f->md, fd[i], "P:", 2), 0);
		close(fd[i]);	/* the content was copied at begin */
	}
	assert_int_equal(count_sub(f, "tmp"), 3);
	assert_int_equal(count_sub(f, "new"), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(maildir_sync(&j[i]), 0);
	assert_int_equal(count_sub(f, "new"), 0);
	/* Job 1 fails (an fsync error is reported): not linked, nothing left. */
	assert_int_equal(maildir_publish(&j[0]), 0);
	assert_int_equal(maildir_publish(&j[2]), 0);
	assert_int_equal(maildir_sync_new(&j[0]), 0);
	assert_int_equal(maildir_new_synced(&j[2], 0), 0);
	assert_int_equal(maildir_new_synced(&j[1], EIO), -1);
	assert_int_equal(j[1].res.temporary, 1);
	assert_int_equal(maildir_publish(&j[1]), -1);
	for (i = 0; i < 3; i++)
		maildir_end(&j[i]);
	assert_int_equal(count_sub(f, "new"), 2);
	assert_int_equal(count_sub(f, "tmp"), 0);
	assert_string_not_equal(j[0].name, j[2].name);
	assert_delivered(f, j[2].name, "P:abc", 5);
}

/* A name already in new/ is never replaced: the delivery fails, the old file stays. */
static void
test_publish_never_replaces(void **state)
{
	struct fixture *f = *state;
	struct maildir_job j;
	char p[PATH_MAX + 300];
	int fd;

	fd = make_source(f, "new", 3, 0);
	assert_int_equal(maildir_begin(&j, f->md, fd, "", 0), 0);
	close(fd);
	assert_int_equal(maildir_sync(&j), 0);
	snprintf(p, sizeof(p), "%s/new/%s", f->md, j.name);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "old", 3), 3);
	close(fd);
	assert_int_equal(maildir_publish(&j), -1);
	assert_int_equal(j.res.temporary, 1);
	maildir_end(&j);
	assert_int_equal(count_sub(f, "new"), 1);
	assert_int_equal(count_sub(f, "tmp"), 0);
	assert_delivered(f, j.name, "old", 3);
}

static void
test_existing_maildir(void **state)
{
	struct fixture *f = *state;
	struct maildir_result res;
	int fd;

	/* A Maildir with only new/: tmp/ and cur/ are made. */
	snprintf(f->md, sizeof(f->md), "%s/m", f->root);
	assert_int_equal(mkdir(f->md, 0755), 0);
	snprintf(f->md, sizeof(f->md), "%s/m/new", f->root);
	assert_int_equal(mkdir(f->md, 0755), 0);
	snprintf(f->md, sizeof(f->md), "%s/m/", f->root);	/* trailing '/' */
	fd = make_source(f, "body", 4, 0);
	assert_int_equal(maildir_deliver(f->md, fd, NULL, 0, &res), 0);
	assert_int_equal(count_sub(f, "new"), 1);
	assert_int_equal(count_sub(f, "cur"), 0);
	assert_int_equal(count_sub(f, "tmp"), 0);
	close(fd);
}

static void
test_path_under_file(void **state)
{
	struct fixture *f = *state;
	struct maildir_result res;
	char file[PATH_MAX];
	int fd, src;

	snprintf(file, sizeof(file), "%s/plain", f->root);
	fd = open(file, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	src = make_source(f, "x", 1, 0);

	snprintf(f->md, sizeof(f->md), "%s/plain/Maildir", f->root);
	res.temporary = 7;
	assert_int_equal(maildir_deliver(f->md, src, NULL, 0, &res), -1);
	assert_int_equal(res.temporary, 0);
	assert_non_null(strstr(res.error, strerror(ENOTDIR)));

	/* The Maildir itself a file. */
	assert_int_equal(maildir_deliver(file, src, NULL, 0, &res), -1);
	assert_int_equal(res.temporary, 0);
	assert_non_null(strstr(res.error, strerror(ENOTDIR)));

	/* Deeper: a parent to create lies under the file. */
	snprintf(f->md, sizeof(f->md), "%s/plain/x/y/Maildir", f->root);
	assert_int_equal(maildir_deliver(f->md, src, NULL, 0, &res), -1);
	assert_int_equal(res.temporary, 0);

	assert_int_equal(maildir_deliver("", src, NULL, 0, &res), -1);
	assert_int_equal(res.temporary, 0);
	close(src);
}

static void
test_bad_source_cleans_up(void **state)
{
	struct fixture *f = *state;
	struct maildir_result res;
	char p[PATH_MAX];
	int wfd;

	/* -1 and a write-only descriptor: pread fails, EBADF (temporary). */
	assert_int_equal(maildir_deliver(f->md, -1, "x", 1, &res), -1);
	assert_int_equal(res.temporary, 1);
	assert_non_null(strstr(res.error, strerror(EBADF)));
	snprintf(p, sizeof(p), "%s/wo", f->root);
	wfd = open(p, O_CREAT | O_WRONLY, 0600);
	assert_true(wfd >= 0);
	assert_int_equal(maildir_deliver(f->md, wfd, NULL, 0, &res), -1);
	assert_int_equal(res.temporary, 1);
	close(wfd);
	assert_int_equal(count_sub(f, "tmp"), 0);
	assert_int_equal(count_sub(f, "new"), 0);
}

/* A write that fails half way (EFBIG via RLIMIT_FSIZE) leaves nothing. */
static void
test_write_failure_cleans_up(void **state)
{
	struct fixture *f = *state;
	struct maildir_result res;
	struct rlimit old, lim;
	void (*oldsig)(int);
	char *data;
	int fd, rc;

	data = calloc(1, MIB);
	assert_non_null(data);
	fd = make_source(f, data, MIB, 0);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 100000;
	oldsig = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	rc = maildir_deliver(f->md, fd, NULL, 0, &res);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);
	assert_int_equal(rc, -1);
	assert_int_equal(res.temporary, 0);
	assert_non_null(strstr(res.error, strerror(EFBIG)));
	assert_int_equal(count_sub(f, "tmp"), 0);
	assert_int_equal(count_sub(f, "new"), 0);
	free(data);
	close(fd);
}


/* One cached delivery into path; returns the name in res. */
static void
deliver_cached(struct maildir_cache *c, const char *path, int src,
    struct maildir_result *res)
{
	struct maildir_job j;

	assert_int_equal(maildir_begin_cached(&j, c, path, src, MAILDIR_WHOLE, "C:", 2), 0);
	assert_int_equal(maildir_sync(&j), 0);
	assert_int_equal(maildir_publish(&j), 0);
	assert_int_equal(maildir_sync_new(&j), 0);
	memcpy(res->name, j.name, sizeof(res->name));
	maildir_end(&j);
}

/* Descriptors open in this process (to see the cache keep and close them). */
static int
open_fds(void)
{
	return count_entries("/proc/self/fd", NULL, 0);
}

static void
test_cache_reuses_and_revalidates(void **state)
{
	struct fixture *f = *state;
	struct maildir_cache *c = maildir_cache_new(4);
	struct maildir_result r;
	char moved[PATH_MAX + 8], cmd[2 * PATH_MAX];
	size_t got;
	char *out;
	int src, fds;

	assert_non_null(c);
	src = make_source(f, "x", 1, 0);
	deliver_cached(c, f->md, src, &r);
	fds = open_fds();
	deliver_cached(c, f->md, src, &r);
	assert_int_equal(open_fds(), fds);	/* nothing opened or leaked */
	assert_int_equal(count_sub(f, "new"), 2);
	assert_int_equal(count_sub(f, "tmp"), 0);
	assert_delivered(f, r.name, "C:x", 3);

	/* Removed: the next message makes the Maildir again. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->md);
	assert_int_equal(system(cmd), 0);
	deliver_cached(c, f->md, src, &r);
	assert_int_equal(count_sub(f, "new"), 1);
	out = read_delivered(f, r.name, &got);
	free(out);

	/* Renamed away: the message goes to the path, not the old directory. */
	snprintf(moved, sizeof(moved), "%s.old", f->md);
	assert_int_equal(rename(f->md, moved), 0);
	deliver_cached(c, f->md, src, &r);
	assert_int_equal(count_sub(f, "new"), 1);
	snprintf(cmd, sizeof(cmd), "%s/new", moved);
	assert_int_equal(count_entries(cmd, NULL, 0), 1);

	/* Recreated in place by an admin between two messages. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s/new' '%s/tmp' '%s/cur'",
	    f->md, f->md, f->md, f->md);
	assert_int_equal(system(cmd), 0);
	deliver_cached(c, f->md, src, &r);
	assert_int_equal(count_sub(f, "new"), 1);
	out = read_delivered(f, r.name, &got);
	free(out);
	close(src);
	maildir_cache_free(c);
}

/* More Maildirs than entries: the oldest is closed, never one still lent. */
static void
test_cache_eviction(void **state)
{
	struct fixture *f = *state;
	struct maildir_cache *c = maildir_cache_new(2);
	struct maildir_job j[3];
	char path[3][PATH_MAX];
	int i, src, fds;

	assert_non_null(c);
	src = make_source(f, "y", 1, 0);
	for (i = 0; i < 3; i++)
		snprintf(path[i], sizeof(path[i]), "%s/m%d", f->root, i);
	fds = open_fds();
	/* Three jobs at once: the third finds no free entry and owns its dirs. */
	for (i = 0; i < 3; i++)
		assert_int_equal(maildir_begin_cached(&j[i], c, path[i], src, MAILDIR_WHOLE, NULL, 0), 0);
	assert_non_null(j[0].slot);
	assert_non_null(j[1].slot);
	assert_null(j[2].slot);
	for (i = 0; i < 3; i++) {
		assert_int_equal(maildir_sync(&j[i]), 0);
		assert_int_equal(maildir_publish(&j[i]), 0);
		assert_int_equal(maildir_sync_new(&j[i]), 0);
		maildir_end(&j[i]);
	}
	assert_int_equal(open_fds(), fds + 4);	/* two entries of two dirs */
	/* m2 replaces the least recently used, m0; m1 stays. */
	assert_int_equal(maildir_begin_cached(&j[2], c, path[2], src, MAILDIR_WHOLE, NULL, 0), 0);
	assert_non_null(j[2].slot);
	j[2].failed = 1;	/* a failed job drops its entry */
	maildir_end(&j[2]);
	assert_int_equal(open_fds(), fds + 2);
	assert_int_equal(maildir_begin_cached(&j[1], c, path[1], src, MAILDIR_WHOLE, NULL, 0), 0);
	assert_int_equal(open_fds(), fds + 3);	/* only the message file */
	maildir_end(&j[1]);
	maildir_cache_free(c);
	assert_int_equal(open_fds(), fds);
	close(src);
}

/* Names from one cache differ and keep the maildir(5) form with our pid. */
static void
test_cache_names(void **state)
{
	struct fixture *f = *state;
	struct maildir_cache *c = maildir_cache_new(1);
	struct maildir_result r1, r2;
	char want[64];
	int src;

	assert_non_null(c);
	src = make_source(f, "z", 1, 0);
	deliver_cached(c, f->md, src, &r1);
	deliver_cached(c, f->md, src, &r2);
	assert_string_not_equal(r1.name, r2.name);
	snprintf(want, sizeof(want), "P%ldR", (long)getpid());
	assert_non_null(strstr(r1.name, want));
	assert_int_equal(strspn(strstr(r1.name, want) + strlen(want), "0123456789abcdef"), 16);
	assert_null(strchr(r1.name, '/'));
	assert_null(strchr(r1.name, ':'));
	assert_null(maildir_cache_new(0));
	maildir_cache_free(NULL);
	close(src);
	maildir_cache_free(c);
}

struct expand_case {
	const char *tmpl, *user, *domain, *want;	/* want NULL: -1 */
};

static const struct expand_case expand_cases[] = {
	{ "/var/mail/%d/%u", "bob", "example.test",
	    "/var/mail/example.test/bob" },
	{ "/m/%u/%u%%%d", "a", "b", "/m/a/a%b" },
	{ "%%u", "bob", "x", "%u" },
	{ "/plain", "bob", "x", "/plain" },
	{ "/m/%u", "bob", "", "/m/bob" },		/* %d unused */
	{ "/m/%u", "b\xc3\xb6" "b", "x", "/m/b\xc3\xb6" "b" },
	{ "/m/%x", "bob", "x", NULL },
	{ "/m/%U", "bob", "x", NULL },
	{ "/m/%", "bob", "x", NULL },
	{ "/m/%u", "a/b", "x", NULL },
	{ "/m/%u", ".", "x", NULL },
	{ "/m/%u", "..", "x", NULL },
	{ "/m/%u", ".hidden", "x", NULL },
	{ "/m/%u", "", "x", NULL },
	{ "/m/%u", "a\nb", "x", NULL },
	{ "/m/%d/%u", "bob", "..", NULL },
	{ "/m/%d/%u", "bob", "a/../..", NULL },
	{ "/m/%d/%u", "bob", "", NULL },
};

static void
test_expand(void **state)
{
	char out[128];
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(expand_cases) / sizeof(expand_cases[0]); i++) {
		const struct expand_case *c = &expand_cases[i];

		memset(out, 'Z', sizeof(out));
		rc = maildir_expand(c->tmpl, c->user, c->domain, out,
		    sizeof(out));
		if (c->want == NULL) {
			if (rc != -1)
				fail_msg("case %zu accepted: %s", i, out);
			assert_string_equal(out, "");
		} else {
			if (rc != 0)
				fail_msg("case %zu refused", i);
			assert_string_equal(out, c->want);
		}
	}
	assert_int_equal(maildir_expand("/m/%u", NULL, "x", out, 10), -1);
}

static void
test_expand_sizes(void **state)
{
	char out[8];

	(void)state;
	/* "/m/abcd" is 7 bytes: fits in 8 with the NUL, not in 7. */
	assert_int_equal(maildir_expand("/m/%u", "abcd", "x", out, 8), 0);
	assert_string_equal(out, "/m/abcd");
	assert_int_equal(maildir_expand("/m/%u", "abcd", "x", out, 7), -1);
	assert_string_equal(out, "");
	assert_int_equal(maildir_expand("/m/abcd", "u", "x", out, 7), -1);
	assert_int_equal(maildir_expand("", "u", "x", out, 1), 0);
	assert_string_equal(out, "");
	assert_int_equal(maildir_expand("", "u", "x", out, 0), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_deliver_exact, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_name_format, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_two_deliveries_distinct,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_staged_batch, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_publish_never_replaces, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_existing_maildir, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_path_under_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_source_cleans_up,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_failure_cleans_up,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_reuses_and_revalidates,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_eviction, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cache_names, setup,
		    teardown),
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_expand_sizes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
