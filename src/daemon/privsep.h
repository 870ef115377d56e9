/*
 * privsep — becoming a less privileged user: look the user up while the
 * password database can still be read, then (in a child) optionally
 * chroot and drop every group and user id for good.
 */
#ifndef TERN_PRIVSEP_H
#define TERN_PRIVSEP_H

#include <stddef.h>
#include <sys/types.h>

struct privsep_user {
	char  name[64];
	uid_t uid;
	gid_t gid;
};

/* Looks a user up. -1 with a reason in err if unknown. */
int privsep_lookup(const char *name, struct privsep_user *u, char *err, size_t errlen);
/* chroot (if dir is not NULL), then setgroups/setresgid/setresuid; checks root cannot come back. */
int privsep_drop(const struct privsep_user *u, const char *chroot_dir, char *err, size_t errlen);
/* mkdir -p with mode; *created = 1 if the last component was made here. */
int privsep_mkdirs(const char *path, mode_t mode, int *created);

#endif
