/*
 * log — one line per event, logfmt (key=value), to stderr in the foreground
 * or to syslog otherwise (facility mail, ident "tern", over /dev/log). Every line starts with proc=NAME; callers add
 * event=..., session=..., id=QUEUEID as the event needs.
 * Peer text must go through log_esc() before it is logged.
 * The destination is process-wide state set once at start by log_init().
 */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#include <stddef.h>

#define LOG_SYSLOG_PATH "/dev/log"

/* syslog_path: the syslog daemon's socket when not foreground (NULL: /dev/log). */
void log_init(int foreground, int debug, const char *syslog_path);
/*
 * The syslog socket (not foreground), or -1: a child that closes the
 * descriptors it inherited must keep this one.
 */
int  log_syslog_fd(void);
/* Connects to the syslog socket anew (a reload: the daemon may have restarted). */
void log_reopen(void);
void log_set_proc(const char *proc);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Configuration or environment error: log and exit(1). */
_Noreturn void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Our own bug: log and abort() for a core. */
_Noreturn void log_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Writes s[0..n) as a logfmt value into out: quoted when it holds spaces,
 * '=' or quotes; bytes outside printable ASCII as \xNN. Always
 * NUL-terminates; truncates with "..." if out is too small. Returns out.
 */
const char *log_esc(char *out, size_t outsz, const char *s, size_t n);

#endif
