/*
 * maildir — delivery of one message into one Maildir (the maildir(5)
 * specification): a unique name, write into tmp/, fsync, link into new/,
 * unlink tmp, fsync new/. The Maildir and its tmp/new/cur are created
 * (mode 0700) when missing.
 */
#ifndef TERN_MAILDIR_H
#define TERN_MAILDIR_H

#include <stddef.h>

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
 * Expands a maildir template: %u user, %d domain, %% a percent sign.
 * User and domain must not contain '/' or start with '.' (checked here,
 * -1 if so). Returns 0, or -1 if out is too small or the input is unsafe.
 */
int maildir_expand(const char *tmpl, const char *user, const char *domain,
    char *out, size_t outsz);

#endif
