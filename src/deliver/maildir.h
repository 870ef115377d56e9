/*
 * maildir — delivery of one message into one Maildir (the maildir(5)
 * specification): a unique name, write into tmp/, fsync, link into new/,
 * unlink tmp, fsync new/. The Maildir and its tmp/new/cur are created
 * (mode 0700) when missing. A long-lived process keeps a maildir_cache.
 */
#ifndef TERN_MAILDIR_H
#define TERN_MAILDIR_H

#include <stddef.h>
#include <stdint.h>

struct maildir_result {
	int  temporary;		/* 1: retry later (ENOSPC, EDQUOT, EACCES, EIO...) */
	char name[256];		/* the file name in new/ on success */
	char error[256];	/* reason on failure */
};

/*
 * Writes prefix[0..prefixlen) (Return-Path:, Delivered-To: lines) followed
 * by the whole content of src_fd (read with pread from offset 0, so the
 * descriptor's offset is left alone) into a new message of the Maildir at
 * `path`. Returns 0 on success, -1 with *res filled on failure.
 */
int maildir_deliver(const char *path, int src_fd, const char *prefix,
    size_t prefixlen, struct maildir_result *res);

/*
 * The same delivery in steps, so that a batch of deliveries can have its
 * fsyncs done together (see common/syncpool.h): maildir_begin for every
 * message (write into tmp/), then maildir_sync for every one (or fsync
 * m->fd yourself and report with maildir_synced), maildir_publish (link
 * into new/), maildir_sync_new (or maildir_new_synced) once per distinct
 * Maildir, and maildir_end. Every message is still fsync'd before its
 * link, and new/ before success is reported. A step on a failed job does
 * nothing and returns -1; m->res says why. maildir_end undoes a failed
 * job's files. The *_synced calls take 0 or the fsync's errno.
 */
struct maildir_slot;

struct maildir_job {
	const char *path;
	struct maildir_cache *cache;	/* NULL: no cache */
	struct maildir_slot *slot;	/* the cache entry lent to us, or NULL */
	int	tmpfd;		/* the Maildir's tmp/ */
	int	newfd;		/* its new/ */
	int	fd;		/* the message file being written */
	int	in_tmp;		/* tmp/name exists */
	int	in_new;		/* new/name exists */
	int	failed;
	char	name[sizeof(((struct maildir_result *)0)->name)];
	struct maildir_result res;
};

int  maildir_begin(struct maildir_job *m, const char *path, int src_fd,
    const char *prefix, size_t prefixlen);
int  maildir_sync(struct maildir_job *m);
int  maildir_synced(struct maildir_job *m, int err);
int  maildir_publish(struct maildir_job *m);
int  maildir_sync_new(struct maildir_job *m);
int  maildir_new_synced(struct maildir_job *m, int err);
void maildir_end(struct maildir_job *m);

/*
 * A cache of the tmp/ and new/ descriptors of recently used Maildirs (at
 * most `entries`, least recently used dropped first) and of the parts of
 * a unique name that stay the same in one process (host, pid), for a
 * long-lived process that delivers many messages. An entry is used only
 * while stat() of its path's new/ gives the cached directory (same st_dev
 * and st_ino), so a Maildir removed, renamed or recreated by an admin is
 * opened (and created) anew. A failed job drops its entry. Use
 * maildir_begin_cached instead of maildir_begin; the other steps are the
 * same. Free the cache after the last maildir_end.
 */
struct maildir_cache;

struct maildir_cache *maildir_cache_new(size_t entries);
void maildir_cache_free(struct maildir_cache *c);
int  maildir_begin_cached(struct maildir_job *m, struct maildir_cache *c,
    const char *path, int src_fd, uint64_t src_len, const char *prefix, size_t prefixlen);

/*
 * src_len for all of src_fd. A spool file holds its envelope after the
 * content (queue/spoolfile.h): the deliver process copies src_len bytes;
 * a file shorter than that is a failure.
 */
#define MAILDIR_WHOLE UINT64_MAX

/*
 * Expands a maildir template: %u user, %d domain, %% a percent sign.
 * User and domain must not contain '/' or start with '.' (checked here,
 * -1 if so). Returns 0, or -1 if out is too small or the input is unsafe.
 */
int maildir_expand(const char *tmpl, const char *user, const char *domain,
    char *out, size_t outsz);

#endif
