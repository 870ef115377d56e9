/* privsep — user lookup, chroot and privilege drop (see privsep.h). */
#include "daemon/privsep.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int
privsep_lookup(const char *name, struct privsep_user *u, char *err, size_t errlen)
{
	struct passwd *pw;

	errno = 0;
	if ((pw = getpwnam(name)) == NULL) {
		snprintf(err, errlen, "user \"%s\" does not exist (create it, e.g. "
		    "useradd --system --no-create-home --shell /usr/sbin/nologin %s)", name, name);
		return -1;
	}
	if (pw->pw_uid == 0) {
		snprintf(err, errlen, "user \"%s\" is root; tern needs an unprivileged user", name);
		return -1;
	}
	snprintf(u->name, sizeof(u->name), "%s", name);
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	return 0;
}

int
privsep_drop(const struct privsep_user *u, const char *chroot_dir, char *err, size_t errlen)
{
	if (chroot_dir && (chroot(chroot_dir) == -1 || chdir("/") == -1)) {
		snprintf(err, errlen, "chroot %s: %s", chroot_dir, strerror(errno));
		return -1;
	}
	if (setgroups(1, &u->gid) == -1 || setresgid(u->gid, u->gid, u->gid) == -1 ||
	    setresuid(u->uid, u->uid, u->uid) == -1) {
		snprintf(err, errlen, "cannot become %s: %s", u->name, strerror(errno));
		return -1;
	}
	if (setuid(0) != -1 || seteuid(0) != -1) {
		snprintf(err, errlen, "could regain root after dropping to %s", u->name);
		return -1;
	}
	return 0;
}

int
privsep_mkdirs(const char *path, mode_t mode, int *created)
{
	char p[PATH_MAX];
	size_t i, n = strlen(path);

	*created = 0;
	if (n == 0 || n >= sizeof(p))
		return -1;
	memcpy(p, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		p[i] = '\0';
		if (mkdir(p, mode) == 0)
			*created = (i == n);
		else if (errno != EEXIST)
			return -1;
		if (i < n)
			p[i] = '/';
	}
	return 0;
}
