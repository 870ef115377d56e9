/*
 * config — the configuration file: its parser and the structure every
 * process reads. Syntax: directives of words separated by blanks, ended by
 * a newline or ';'; blocks in { }; '#' starts a comment; "double quotes"
 * hold a word with blanks. Errors come back as "FILE:LINE: reason".
 * The reference of every directive is docs/CONFIG.md.
 */
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H

#define CONFIG_DELIVER_MAX 16	/* deliver processes */

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "server/table.h"

#define CONFIG_MAX_LISTEN   16
#define CONFIG_MAX_DOMAINS  256
#define CONFIG_NAME_MAX     255

enum listen_mode { LISTEN_MX, LISTEN_SUBMISSION };
/* none: no TLS; optional: STARTTLS offered; required: STARTTLS before MAIL/AUTH
 * (RFC 3207); implicit: TLS from the first byte (RFC 8314). */
enum listen_tls { LTLS_DEFAULT = 0, LTLS_NONE, LTLS_OPTIONAL, LTLS_REQUIRED, LTLS_IMPLICIT };

#define CONFIG_MAX_SNI     32
#define CONFIG_MAX_TRUSTED 32

struct listen_cfg {
	char                    text[128];	/* as written: "127.0.0.1:2525" */
	struct sockaddr_storage ss;
	socklen_t               sslen;
	enum listen_mode        mode;
	enum listen_tls         tls;		/* never LTLS_DEFAULT after config_load */
	int                     checks;		/* auth_checks here: 1 on, 0 off, -1 as global */
	int                     line;		/* where it was declared */
};

struct tls_cert_cfg {
	char  name[CONFIG_NAME_MAX + 1];	/* SNI host name; "" for the default */
	char *cert;				/* PEM chain */
	char *key;				/* PEM private key */
	int   line;
};

struct tls_cfg {
	int                 present;		/* a tls block was given */
	int                 line;
	int                 min_version;	/* 0x0303 (TLS 1.2) or 0x0304 (TLS 1.3) */
	char               *ciphers;		/* TLS 1.2 cipher list; NULL = default */
	struct tls_cert_cfg certs[CONFIG_MAX_SNI + 1];	/* [0] = default */
	size_t              ncerts;
};

struct auth_cfg {
	int           present;		/* an auth block was given: AUTH on submission listeners */
	int           line;
	int           allow_plaintext;	/* accept {PLAIN} passwords */
	int           sender_check;	/* MAIL FROM and From: must belong to the user (default on) */
	unsigned      max_failures;	/* per client address within failure_window (5) */
	unsigned      failure_window;	/* seconds (600) */
	unsigned      lockout;		/* seconds an address gets 421 after that (900) */
	char         *senders_path;	/* aliases(5)-style "login: addr, addr" */
	struct table *senders;
};

/*
 * Outbound: where mail for a domain goes instead of its MX hosts. RFC 5321
 * 5.1's convention: "[name]" is that host's A/AAAA records, a bare name
 * is looked up as a mail domain (MX, then the implicit MX).
 */
enum route_kind { ROUTE_ADDR, ROUTE_HOST, ROUTE_MX };

struct route_cfg {
	char                    domain[CONFIG_NAME_MAX + 1];	/* "*" = every domain */
	char                    via[CONFIG_NAME_MAX + 16];	/* as written: "192.0.2.1:25", "[mx.example]:587" */
	enum route_kind         kind;
	char                    host[CONFIG_NAME_MAX + 1];	/* ROUTE_HOST, ROUTE_MX: lower case */
	uint16_t                port;		/* 25 unless given */
	struct sockaddr_storage ss;		/* ROUTE_ADDR */
	socklen_t               sslen;
	int                     tls;		/* 0 none, 1 may, 2 encrypt, 3 verify; -1: smtp_tls */
	char                   *tls_ca;		/* CA file for verify; NULL: the system's */
	char                   *tls_ca_pem;	/* its contents, read at load (as root) */
	size_t                  tls_ca_len;
	char                   *auth;		/* file "user password" for AUTH to the host */
	char                    auth_user[256];	/* read from it at load; wiped in smtp workers */
	char                    auth_pass[256];
	int                     auth_without_tls;	/* send them in clear text too */
	int                     line;
};

#define CONFIG_MAX_ROUTES 64

/* DMARC aggregate reports (RFC 7489 7.2), sent by the check process. */
struct dmarc_reports_cfg {
	int      enabled;		/* a dmarc_reports block is present */
	int      line;
	char     from[256];		/* envelope and header From: local-part@domain */
	char     org_name[128];		/* report_metadata/org_name */
	unsigned interval;		/* seconds per report period: 86400 */
};

/* Inbound SPF/DKIM/DMARC checks on mx listeners (the check process). */
enum check_action { CHECK_RECORD = 0, CHECK_REJECT, CHECK_QUARANTINE };

struct checks_cfg {
	int               enabled;		/* auth_checks on (default) | off */
	int               line;
	char              authserv_id[CONFIG_NAME_MAX + 1];	/* "" = hostname */
	enum check_action spf_fail;		/* record (default) | reject */
	enum check_action dmarc_reject;		/* reject (default) | quarantine | record */
	enum check_action dmarc_quarantine;	/* quarantine (default) | reject | record */
	char              junk_folder[64];	/* Maildir++ folder for quarantine: ".Junk" */
	unsigned          timeout;		/* seconds a session waits for the answer: 20 */
	unsigned          threads;		/* concurrent checks in the check process: 4 */
	struct dmarc_reports_cfg reports;
};

/* DKIM signing of outbound mail (src/deliver/signer.c): one key per line,
 * at most two per domain (dual signing, RFC 8463 section 3: Ed25519 + RSA). */
#define CONFIG_MAX_DKIM 64
#define CONFIG_DKIM_SELECTOR_MAX 63

struct dkim_sign_cfg {
	char  domain[CONFIG_NAME_MAX + 1];	/* d=, lower case */
	char  selector[CONFIG_DKIM_SELECTOR_MAX + 1];	/* s= */
	char *keyfile;				/* absolute path; read by the mta only */
	int   line;
};

struct cidr {
	int     family;			/* AF_INET or AF_INET6 */
	uint8_t addr[16];
	int     bits;
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
	size_t   commands;	/* per session before 421; default 100000 */
	size_t   messages_per_ip;	/* MAIL commands per client address per minute; 0 = no limit */
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
	char               syslog_socket[108];	/* without -d, logs go here; default "/dev/log" */
	int                workers;		/* smtp worker processes; 0 = one per core */
	int                deliver_processes;	/* 1..CONFIG_DELIVER_MAX, default 1 */
	char               recipient_delimiter[8];	/* default "+"; "" = off */
	unsigned           retry_interval;	/* first retry of a temporary local delivery failure, s; default 60 */
	struct listen_cfg  listen[CONFIG_MAX_LISTEN];
	size_t             nlisten;
	struct domain_cfg *domains;
	size_t             ndomains;
	struct limits_cfg  limits;
	struct tls_cfg     tls;
	struct auth_cfg    auth;
	/* Clients that may relay through submission listeners without AUTH. */
	struct cidr        trusted[CONFIG_MAX_TRUSTED];
	size_t             ntrusted;
	int                trusted_given;	/* trusted_networks was written */
	/* outbound delivery */
	char              *dns_server;		/* "127.0.0.1@5353"; NULL = /etc/resolv.conf */
	unsigned           lifetime;		/* seconds a message may stay queued: 5 days */
	unsigned           delay_warning;	/* seconds before a "still trying" DSN: 4 h; 0 = never */
	int                smtp_tls;		/* 0 none, 1 may (default), 2 encrypt, 3 verify */
	char              *smtp_tls_ca;		/* CA file for verify; NULL: the system's */
	char              *smtp_tls_ca_pem;	/* its contents, read at load (as root) */
	size_t             smtp_tls_ca_len;
	struct route_cfg   routes[CONFIG_MAX_ROUTES];
	size_t             nroutes;
	struct checks_cfg  checks;
	struct dkim_sign_cfg dkim[CONFIG_MAX_DKIM];
	size_t             ndkim;
	char              *dkim_headers;	/* "From:To:..." as in h=; NULL = the default list */
	int                dkim_hcanon, dkim_bcanon;	/* 0 relaxed (default), 1 simple */
	unsigned           relay_concurrency;	/* outbound jobs at once: 100 */
	unsigned           relay_destination_concurrency;	/* ... per destination: 10 */
	unsigned           relay_reuse_messages;	/* messages per connection: 100; 0 = no reuse */
	unsigned           relay_reuse_idle;	/* seconds a connection is kept idle: 5 */
	unsigned           relay_backoff_failures;	/* failures in a row before a back-off: 5 */
	unsigned           relay_backoff;	/* first back-off, seconds: 60; doubles to 1 h */
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

/*
 * A route's `auth FILE`, pure over data[0..len): "USER PASSWORD" on the
 * first line that is not blank or a # comment (blanks around them and a
 * CR before the LF dropped; the password may hold blanks inside). Fills
 * user[usz] and pass[psz] NUL-terminated; -1 if there is no such line,
 * a field does not fit, or the line holds a NUL.
 */
int config_parse_secret(const char *data, size_t len, char *user, size_t usz,
    char *pass, size_t psz);

/* Forgets the routes' AUTH passwords (in processes that do not need them). */
void config_wipe_secrets(struct config *cfg);

/* Does the address (AF_INET/AF_INET6 bytes) fall in one of the trusted networks? */
int config_trusted(const struct config *cfg, int family, const uint8_t *addr);

/* Are messages arriving on listener l checked (mx mode and auth_checks on)? */
int config_checks_on(const struct config *cfg, const struct listen_cfg *l);
/* The authserv-id of our Authentication-Results fields. */
const char *config_authserv_id(const struct config *cfg);

/* The route for a destination domain (exact, then "*"), or NULL for MX. */
const struct route_cfg *config_find_route(const struct config *cfg, const char *domain);

/* The domain block for `domain` (case-insensitive, trailing dot ignored), or NULL. */
const struct domain_cfg *config_find_domain(const struct config *cfg,
    const char *domain, size_t len);

#endif
