/*
 * authcmd — ternctl's mail-authentication commands: `dkim keygen`,
 * `dkim verify`, `spf check` and `dmarc check`. They run the daemon's own modules
 * (src/mailauth) against live DNS, so what an administrator sees is what
 * tern decides. argv starts after the command's first word ("dkim",
 * "spf", "dmarc"); conf is the configuration whose dns_server is the default
 * resolver, and conf_given says whether -C/-f named it (then it must load).
 */
#ifndef TERN_AUTHCMD_H
#define TERN_AUTHCMD_H

/* Exit status of a usage error, as the rest of ternctl. */
#define AUTHCMD_USAGE 2

int authcmd_dkim(const char *conf, int conf_given, int argc, char **argv);
int authcmd_spf(const char *conf, int conf_given, int argc, char **argv);
/* dmarc check: every check of authcheck_run() (the check process's code) on one message. */
int authcmd_dmarc(const char *conf, int conf_given, int argc, char **argv);

#endif
