/*
 * maildir — delivery into a Maildir (see maildir.h and maildir(5)).
 *
 * The order is what makes a delivery safe: the whole message is written
 * and fsync'd in tmp/ under a unique name, then linked into new/, where a
 * reader may see it, and new/ is fsync'd before we report success. A
 * failure at any step removes what we made, so the Maildir never holds
 * half a message and the caller may simply retry.
 */
#include "deliver/maildir.h"

#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COPY_CHUNK	(64 * 1024)
#define NAME_TRIES	4	/* fresh names to try when one exists already */
#define HOST_PART_MAX	128	/* escaped hostname in a file name */

/*
 * Whether retrying later can help. Errors that describe the path itself
 * (a file where a directory should be, a symlink loop, a name too long)
 * or the message (too big for the filesystem) stay until someone changes
 * the configuration; everything else (ENOSPC, EDQUOT, EIO, EACCES, EROFS,
 * EMFILE, ...) may pass, and a wrongly deferred message is better than a
 * wrongly bounced one.
 */
static int
errno_temporary(int err)
{
	switch (err) {
	case ENOTDIR:
	case ELOOP:
	case ENAMETOOLONG:
	case EISDIR:
	case EFBIG:
	case EINVAL:
		return 0;
	default:
		return 1;
	}
}

static int
md_fail(struct maildir_job *m, struct maildir_result *res, int err, const char *what)
{
	m->failed = 1;
	res->temporary = errno_temporary(err);
	snprintf(res->error, sizeof(res->error), "maildir %s: %s: %s",
	    m->path, what, strerror(err));
	return -1;
}

static int
fsync_dir_of(const char *path)
{
	char parent[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t n;
	int fd, rc;

	if (slash == NULL) {
		snprintf(parent, sizeof(parent), ".");
	} else {
		n = slash == path ? 1 : (size_t)(slash - path);
		memcpy(parent, path, n);	/* n < strlen(path) < PATH_MAX */
		parent[n] = '\0';
	}
	if ((fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/*
 * mkdir -p with mode 0700. Each directory made is fsync'd into its parent,
 * or a crash could lose the Maildir along with the message in it.
 */
static int
mkdir_parents(const char *path)
{
	char buf[PATH_MAX];
	size_t i, n = strlen(path);

	if (n >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if ((i < n && buf[i] != '/') || buf[i - 1] == '/')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) == 0) {
			if (fsync_dir_of(buf) == -1)
				return -1;
		} else if (errno != EEXIST) {
			return -1;
		}
		buf[i] = i < n ? '/' : '\0';
	}
	return 0;
}

static int
open_dir_at(int at, const char *name)
{
	return openat(at, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Opens the Maildir's tmp/ and new/ from its descriptor, making what is missing. */
static int
md_open_subdirs(struct maildir_job *m, int dirfd, struct maildir_result *res)
{
	static const char *const subs[] = { "tmp", "new", "cur" };
	size_t i;
	int made = 0;

	/* An existing Maildir (the usual case) needs no mkdir at all. */
	if ((m->tmpfd = open_dir_at(dirfd, "tmp")) != -1 &&
	    (m->newfd = open_dir_at(dirfd, "new")) != -1)
		return 0;
	if (errno != ENOENT)
		return md_fail(m, res, errno, m->tmpfd == -1 ? "open tmp" : "open new");
	if (m->tmpfd != -1)
		close(m->tmpfd);
	m->tmpfd = -1;
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (mkdirat(dirfd, subs[i], 0700) == 0)
			made = 1;
		else if (errno != EEXIST)
			return md_fail(m, res, errno, "create subdirectory");
	}
	if (made && fsync(dirfd) == -1)
		return md_fail(m, res, errno, "fsync");
	if ((m->tmpfd = open_dir_at(dirfd, "tmp")) == -1)
		return md_fail(m, res, errno, "open tmp");
	if ((m->newfd = open_dir_at(dirfd, "new")) == -1)
		return md_fail(m, res, errno, "open new");
	return 0;
}

/* Opens the Maildir's tmp/ and new/, creating what is missing. */
static int
md_open_dirs(struct maildir_job *m, struct maildir_result *res)
{
	int dirfd, rc;

	if (m->path[0] == '\0')
		return md_fail(m, res, EINVAL, "empty path");
	dirfd = open(m->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd == -1 && errno == ENOENT) {
		if (mkdir_parents(m->path) == -1)
			return md_fail(m, res, errno, "create");
		dirfd = open(m->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (dirfd == -1)
		return md_fail(m, res, errno, "open");
	rc = md_open_subdirs(m, dirfd, res);
	close(dirfd);
	return rc;
}

/*
 * The host part of a unique name: maildir(5) writes '/' as \057 and ':'
 * as \072 (':' starts the info part). Cut short rather than overflow.
 */
static void
host_part(char *out, size_t outsz)
{
	char host[256];
	const char *rep;
	size_t i, o = 0, n;

	if (gethostname(host, sizeof(host)) == -1 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	for (i = 0; host[i] != '\0'; i++) {
		rep = host[i] == '/' ? "\\057" : host[i] == ':' ? "\\072" : NULL;
		n = rep ? 4 : 1;
		if (n >= outsz - o)
			break;
		memcpy(out + o, rep ? rep : host + i, n);
		o += n;
	}
	out[o] = '\0';
}

static int
random64(uint64_t *r)
{
	ssize_t n;

	do
		n = getrandom(r, sizeof(*r), 0);
	while (n == -1 && errno == EINTR);
	if (n == (ssize_t)sizeof(*r))
		return 0;
	if (n >= 0)
		errno = EIO;
	return -1;
}

/*
 * What a long-lived process keeps (see maildir.h): the Maildirs' tmp/ and
 * new/ descriptors, and the parts of a unique name that do not change.
 */
struct maildir_slot {
	char         *path;	/* NULL: free */
	int           tmpfd, newfd;
	dev_t         dev;	/* new/'s identity, to compare with stat() */
	ino_t         ino;
	unsigned long used;	/* LRU clock */
	unsigned      refs;	/* jobs that borrow the descriptors */
	int           stale;	/* never found again; closed at refs 0 */
};

struct maildir_cache {
	struct maildir_slot *slots;
	size_t               n;
	unsigned long        clock;
	char                 host[HOST_PART_MAX];
	long                 pid;
	uint64_t             seed;	/* random once; + count per name */
	uint64_t             count;
};

/*
 * maildir(5) unique name: time, microseconds, pid, and 64 random bits
 * (the spec's R modifier) so that no counter needs to be kept. With a
 * cache the bits are a random start plus a count: unique in the process
 * without a getrandom per message, unguessable across processes.
 */
static int
make_name(struct maildir_cache *c, char *out, size_t outsz)
{
	char hostbuf[HOST_PART_MAX];
	const char *host = hostbuf;
	struct timeval tv;
	uint64_t r;
	long pid;
	int n;

	if (c != NULL) {
		r = c->seed + c->count++;
		host = c->host;
		pid = c->pid;
	} else {
		if (random64(&r) == -1)
			return -1;
		host_part(hostbuf, sizeof(hostbuf));
		pid = (long)getpid();
	}
	gettimeofday(&tv, NULL);
	n = snprintf(out, outsz, "%lld.M%ldP%ldR%016llx.%s",
	    (long long)tv.tv_sec, (long)tv.tv_usec, pid,
	    (unsigned long long)r, host);
	if (n < 0 || (size_t)n >= outsz) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			return -1;
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * The kernel copies from page cache to page cache (no pass through our
 * buffers) where it can; 0 when len bytes (or all of src) are copied, 1
 * to copy by hand from *off on (copy_file_range not possible here), -1 on
 * an error.
 */
static int
copy_in_kernel(int dst, int src, uint64_t len, off_t *off)
{
	ssize_t n;

	while ((uint64_t)*off < len) {
		uint64_t left = len - (uint64_t)*off;

		n = copy_file_range(src, off, dst, NULL, left > (1u << 30) ? (1u << 30) : (size_t)left, 0);
		if (n == 0)
			break;
		if (n > 0)
			continue;
		if (errno == EINTR)
			continue;
		if (*off == 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
		    errno == EOPNOTSUPP || errno == EBADF))
			return 1;
		return -1;
	}
	return 0;
}

/*
 * Copies src's bytes [0, len) (or all of it for MAILDIR_WHOLE) with pread
 * or the like: src's offset is untouched. A src that ends before len
 * fails (EIO).
 */
static int
copy_content(int dst, int src, uint64_t len, const char **what)
{
	char *buf;
	off_t off = 0;
	ssize_t n = 0;
	int rc = -1, saved;

	if ((rc = copy_in_kernel(dst, src, len, &off)) == 0)
		goto done;
	if (rc == -1) {
		*what = "copy";
		return rc;
	}
	rc = -1;
	if ((buf = malloc(COPY_CHUNK)) == NULL) {
		*what = "copy";
		return -1;
	}
	while ((uint64_t)off < len) {
		uint64_t left = len - (uint64_t)off;

		n = pread(src, buf, left < COPY_CHUNK ? (size_t)left : COPY_CHUNK, off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			*what = "read queued message";
			break;
		}
		if (n == 0)
			break;
		if (write_all(dst, buf, (size_t)n) == -1) {
			*what = "write";
			break;
		}
		off += n;
	}
	if (n != -1 && (n == 0 || (uint64_t)off >= len))
		rc = 0;
	saved = errno;
	free(buf);
	errno = saved;
	if (rc == -1)
		return rc;
done:
	if (len != MAILDIR_WHOLE && (uint64_t)off != len) {
		*what = "queued message shorter than its length";
		errno = EIO;
		return -1;
	}
	return 0;
}

static int
md_create_file(struct maildir_job *m, struct maildir_result *res)
{
	int i;

	for (i = 0; i < NAME_TRIES; i++) {
		if (make_name(m->cache, m->name, sizeof(m->name)) == -1)
			return md_fail(m, res, errno, "make unique name");
		m->fd = openat(m->tmpfd, m->name,
		    O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
		if (m->fd != -1) {
			m->in_tmp = 1;
			return 0;
		}
		if (errno != EEXIST)
			break;
	}
	return md_fail(m, res, errno, "create file in tmp");
}

static int
md_write(struct maildir_job *m, int src_fd, uint64_t src_len, const char *prefix,
    size_t prefixlen, struct maildir_result *res)
{
	const char *what = "write";

	if (md_create_file(m, res) == -1)
		return -1;
	if (prefixlen > 0 && write_all(m->fd, prefix, prefixlen) == -1)
		return md_fail(m, res, errno, "write");
	if (copy_content(m->fd, src_fd, src_len, &what) == -1)
		return md_fail(m, res, errno, what);
	return 0;
}

int
maildir_sync(struct maildir_job *m)
{
	if (m->failed)
		return -1;
	return maildir_synced(m, fsync(m->fd) == -1 ? errno : 0);
}

int
maildir_synced(struct maildir_job *m, int err)
{
	int rc;

	if (m->failed)
		return -1;
	if (err)
		return md_fail(m, &m->res, err, "fsync");
	/* close() can report a deferred write error (NFS): check it. */
	rc = close(m->fd);
	m->fd = -1;
	if (rc == -1)
		return md_fail(m, &m->res, errno, "close");
	return 0;
}

/* Moves tmp/name to new/name; maildir_sync_new makes that durable. */
int
maildir_publish(struct maildir_job *m)
{
	struct maildir_result *res = &m->res;

	if (m->failed)
		return -1;
	/*
	 * One call where the filesystem has it: a rename that, like link(),
	 * never replaces an existing name (maildir(5)'s link-then-unlink in
	 * one step; a crash before the fsync of new/ leaves the file under
	 * either name or both, as with link()).
	 */
	if (renameat2(m->tmpfd, m->name, m->newfd, m->name, RENAME_NOREPLACE) == 0) {
		m->in_tmp = 0;
		m->in_new = 1;
	} else if (errno != EINVAL && errno != ENOSYS) {
		return md_fail(m, res, errno, "rename into new");
	} else if (linkat(m->tmpfd, m->name, m->newfd, m->name, 0) == 0) {
		m->in_new = 1;
		/*
		 * The message is delivered now; a tmp/ leftover is harmless
		 * (maildir(5) readers sweep tmp/ after 36 hours).
		 */
		if (unlinkat(m->tmpfd, m->name, 0) == 0)
			m->in_tmp = 0;
	} else if (errno == EPERM || errno == ENOSYS || errno == EOPNOTSUPP) {
		/* A filesystem without hard links (vfat, some FUSE). */
		if (renameat(m->tmpfd, m->name, m->newfd, m->name) == -1)
			return md_fail(m, res, errno, "rename into new");
		m->in_tmp = 0;
		m->in_new = 1;
	} else {
		return md_fail(m, res, errno, "link into new");
	}
	return 0;
}

int
maildir_sync_new(struct maildir_job *m)
{
	if (m->failed)
		return -1;
	return maildir_new_synced(m, fsync(m->newfd) == -1 ? errno : 0);
}

int
maildir_new_synced(struct maildir_job *m, int err)
{
	if (m->failed)
		return -1;
	if (err)
		return md_fail(m, &m->res, err, "fsync new");
	return 0;
}

static void
slot_close(struct maildir_slot *s)
{
	close(s->tmpfd);
	close(s->newfd);
	free(s->path);
	memset(s, 0, sizeof(*s));
}

/* The slot is not found again; its descriptors go when no job borrows them. */
static void
slot_drop(struct maildir_slot *s)
{
	s->stale = 1;
	if (s->refs == 0)
		slot_close(s);
}

static void
slot_lend(struct maildir_cache *c, struct maildir_slot *s, struct maildir_job *m)
{
	s->refs++;
	s->used = ++c->clock;
	m->slot = s;
	m->tmpfd = s->tmpfd;
	m->newfd = s->newfd;
}

/*
 * The cached slot of m->path if it still names the same Maildir: one
 * stat() of path/new (an admin may have removed, renamed or recreated the
 * Maildir; an open descriptor keeps its inode, so its number cannot have
 * been reused meanwhile). A slot that no longer matches is dropped.
 */
static struct maildir_slot *
slot_find(struct maildir_cache *c, const char *path)
{
	char newpath[PATH_MAX];
	struct stat st;
	size_t i;
	int n;

	for (i = 0; i < c->n; i++) {
		struct maildir_slot *s = &c->slots[i];

		if (s->path == NULL || s->stale || strcmp(s->path, path) != 0)
			continue;
		n = snprintf(newpath, sizeof(newpath), "%s/new", path);
		if (n > 0 && (size_t)n < sizeof(newpath) &&
		    stat(newpath, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
			return s;
		slot_drop(s);
		return NULL;
	}
	return NULL;
}

/* A free slot, or the least recently used one no job borrows; NULL if none. */
static struct maildir_slot *
slot_victim(struct maildir_cache *c)
{
	struct maildir_slot *v = NULL;
	size_t i;

	for (i = 0; i < c->n; i++) {
		struct maildir_slot *s = &c->slots[i];

		if (s->path == NULL)
			return s;
		if (s->refs == 0 && (v == NULL || s->used < v->used))
			v = s;
	}
	if (v != NULL)
		slot_close(v);
	return v;
}

/* Keeps the job's freshly opened tmp/ and new/ in the cache if it can. */
static void
slot_store(struct maildir_cache *c, struct maildir_job *m)
{
	struct maildir_slot *s;
	struct stat st;
	char *path;

	if (fstat(m->newfd, &st) == -1 || (path = strdup(m->path)) == NULL)
		return;		/* the job keeps its own descriptors */
	if ((s = slot_victim(c)) == NULL) {
		free(path);
		return;
	}
	s->path = path;
	s->tmpfd = m->tmpfd;
	s->newfd = m->newfd;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	slot_lend(c, s, m);
}

static int
md_cached_dirs(struct maildir_job *m, struct maildir_cache *c)
{
	struct maildir_slot *s;

	if (m->path[0] != '\0' && (s = slot_find(c, m->path)) != NULL) {
		slot_lend(c, s, m);
		return 0;
	}
	if (md_open_dirs(m, &m->res) == -1)
		return -1;
	slot_store(c, m);
	return 0;
}

struct maildir_cache *
maildir_cache_new(size_t entries)
{
	struct maildir_cache *c = calloc(1, sizeof(*c));

	if (c == NULL || entries == 0 ||
	    (c->slots = calloc(entries, sizeof(*c->slots))) == NULL ||
	    random64(&c->seed) == -1) {
		if (c != NULL)
			free(c->slots);
		free(c);
		return NULL;
	}
	c->n = entries;
	host_part(c->host, sizeof(c->host));
	c->pid = (long)getpid();
	return c;
}

void
maildir_cache_free(struct maildir_cache *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->n; i++)
		if (c->slots[i].path != NULL)
			slot_close(&c->slots[i]);
	free(c->slots);
	free(c);
}

int
maildir_begin_cached(struct maildir_job *m, struct maildir_cache *c,
    const char *path, int src_fd, uint64_t src_len, const char *prefix, size_t prefixlen)
{
	int rc;

	memset(m, 0, sizeof(*m));
	m->path = path;
	m->cache = c;
	m->tmpfd = m->newfd = m->fd = -1;
	rc = c != NULL ? md_cached_dirs(m, c) : md_open_dirs(m, &m->res);
	if (rc == -1)
		return -1;
	return md_write(m, src_fd, src_len, prefix, prefixlen, &m->res);
}

int
maildir_begin(struct maildir_job *m, const char *path, int src_fd,
    const char *prefix, size_t prefixlen)
{
	return maildir_begin_cached(m, NULL, path, src_fd, MAILDIR_WHOLE, prefix, prefixlen);
}

void
maildir_end(struct maildir_job *m)
{
	if (m->fd != -1)
		close(m->fd);
	/* On failure nothing of ours stays: the caller will retry or bounce. */
	if (m->failed && m->in_new)
		unlinkat(m->newfd, m->name, 0);
	if (m->failed && m->in_tmp)
		unlinkat(m->tmpfd, m->name, 0);
	if (m->slot != NULL) {
		/* A failure may come from the directories: open them anew next time. */
		m->slot->refs--;
		if (m->failed)
			slot_drop(m->slot);
		else if (m->slot->stale && m->slot->refs == 0)
			slot_close(m->slot);
		m->slot = NULL;
		return;
	}
	if (m->newfd != -1)
		close(m->newfd);
	if (m->tmpfd != -1)
		close(m->tmpfd);
}

int
maildir_deliver(const char *path, int src_fd, const char *prefix,
    size_t prefixlen, struct maildir_result *res)
{
	struct maildir_job m;
	int rc;

	rc = maildir_begin(&m, path, src_fd, prefix, prefixlen);
	if (rc == 0)
		rc = maildir_sync(&m);
	if (rc == 0)
		rc = maildir_publish(&m);
	if (rc == 0)
		rc = maildir_sync_new(&m);
	if (rc == 0)
		memcpy(m.res.name, m.name, sizeof(m.res.name));
	maildir_end(&m);
	*res = m.res;
	return rc;
}

/*
 * A user or domain is put into a path: it must be one harmless path
 * component, never "..", a hidden name or a way to another directory.
 */
static int
safe_component(const char *s)
{
	const unsigned char *p;

	if (s == NULL || s[0] == '\0' || s[0] == '.')
		return 0;
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p == '/' || *p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

/* What "%c" stands for, or NULL if c is unknown or its value unsafe. */
static const char *
expand_one(char c, const char *user, const char *domain)
{
	switch (c) {
	case 'u':
		return safe_component(user) ? user : NULL;
	case 'd':
		return safe_component(domain) ? domain : NULL;
	case '%':
		return "%";
	default:
		return NULL;	/* also a '%' that ends the template */
	}
}

int
maildir_expand(const char *tmpl, const char *user, const char *domain,
    char *out, size_t outsz)
{
	const char *p, *ins;
	size_t n, o = 0;

	if (outsz == 0)
		return -1;
	for (p = tmpl; *p != '\0'; p++) {
		ins = p;
		n = 1;
		if (*p == '%') {
			if ((ins = expand_one(*++p, user, domain)) == NULL)
				goto fail;
			n = strlen(ins);
		}
		if (n >= outsz - o)
			goto fail;
		memcpy(out + o, ins, n);
		o += n;
	}
	out[o] = '\0';
	return 0;
fail:
	out[0] = '\0';
	return -1;
}
