/*
 * config — the configuration file: its parser and the structure every
 * process reads. Syntax: directives of words separated by blanks, ended by
 * a newline or ';'; blocks in { }; '#' starts a comment; "double quotes"
 * hold a word with blanks. Errors come back as "FILE:LINE: reason".
 * The reference of every directive is docs/CONFIG.md.
 */
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "server/table.h"

#define CONFIG_MAX_LISTEN   16
#define CONFIG_MAX_DOMAINS  256
#define CONFIG_NAME_MAX     255

enum listen_mode { LISTEN_MX, LISTEN_SUBMISSION };

struct listen_cfg {
	char                    text[128];	/* as written: "127.0.0.1:2525" */
	struct sockaddr_storage ss;
	socklen_t               sslen;
	enum listen_mode        mode;
	int                     line;		/* where it was declared */
};

struct domain_cfg {
	char          name[CONFIG_NAME_MAX + 1];	/* lower case, no trailing dot */
	char         *users_path;	/* Dovecot passwd-file; NULL = no users */
	char         *aliases_path;	/* aliases(5); NULL = none */
	char         *maildir;		/* template: %u user, %d domain, %% */
	char         *catchall;		/* local user that gets unknown users; NULL = off */
	struct table *users;		/* loaded by config_load */
	struct table *aliases;
};

struct limits_cfg {
	size_t   command_line;	/* octets incl. CRLF; default 512 */
	size_t   text_line;	/* octets incl. CRLF; default 1000 */
	size_t   recipients;	/* per message; default 100 (452 4.5.3 after) */
	uint64_t message_size;	/* octets; default 35 MiB; 0 = no limit */
	size_t   connections;	/* total; default 1000 */
	size_t   connections_per_ip;	/* default 20 */
	size_t   errors;	/* per session before 421; default 10 */
	/* RFC 5321 4.5.3.2 timeouts, seconds */
	unsigned timeout_greeting;	/* server side: idle between commands, 300 */
	unsigned timeout_data_block;	/* 180 */
	unsigned timeout_data_end;	/* waiting for the commit, 600 */
	unsigned shutdown_wait;		/* SIGTERM grace for in-flight sessions, 30 */
	unsigned greeting_delay;	/* seconds before the 220; early talkers refused; 0 */
};

struct config {
	char              *path;		/* the file read */
	char               hostname[CONFIG_NAME_MAX + 1];	/* default: gethostname() */
	char               user[64];		/* smtp worker user when started as root; default "_tern" */
	char               deliver_user[64];	/* mailbox owner when root; default "vmail" */
	char              *spool_dir;		/* default "/var/spool/tern" */
	char              *chroot_dir;		/* smtp workers' chroot when root; default "/var/empty" */
	int                workers;		/* smtp worker processes; 0 = one per core */
	char               recipient_delimiter[8];	/* default "+"; "" = off */
	unsigned           retry_interval;	/* first retry of a temporary local delivery failure, s; default 60 */
	struct listen_cfg  listen[CONFIG_MAX_LISTEN];
	size_t             nlisten;
	struct domain_cfg *domains;
	size_t             ndomains;
	struct limits_cfg  limits;
};

/*
 * Reads and checks `path` (and loads the tables it names, relative paths
 * taken from the directory of `path`). On error returns -1 with
 * "FILE:LINE: reason" in err; *cfg is then left freed. 0 on success.
 */
int  config_load(const char *path, struct config *cfg, char *err, size_t errlen);
void config_free(struct config *cfg);

/*
 * The parser alone, pure over data[0..len) (no NUL needed): checks the
 * text as config_load does but loads no table (domain_cfg.users and
 * .aliases stay NULL). `name` is the file name used in errors; relative
 * paths are taken from `basedir` (should be absolute). Returns 0, or -1
 * with "NAME:LINE: reason" in err and *cfg freed.
 */
int  config_parse(const char *data, size_t len, const char *name,
    const char *basedir, struct config *cfg, char *err, size_t errlen);

/* The domain block for `domain` (case-insensitive, trailing dot ignored), or NULL. */
const struct domain_cfg *config_find_domain(const struct config *cfg,
    const char *domain, size_t len);

#endif
