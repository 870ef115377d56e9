/* log — logfmt event lines to stderr or syslog (see log.h). */
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Process-wide by nature: set once at start, read by every module. */
static int log_foreground = 1;
static int log_debug_on;
static char log_proc[16] = "tern";

void
log_init(int foreground, int debug)
{
	log_foreground = foreground;
	log_debug_on = debug;
	if (!foreground)
		openlog("tern", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_proc(const char *proc)
{
	snprintf(log_proc, sizeof(log_proc), "%s", proc);
}

/*
 * The pid is asked once per process (a fork clears it) and the stamp's
 * seconds once per second: the smtp workers log a few lines per message.
 */
static pid_t log_pid;
static int log_atfork;
static time_t log_sec = -1;
static char log_stamp[32];

static void
log_forked(void)
{
	log_pid = 0;
}

static void
log_write(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = write(STDERR_FILENO, p, n);

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		p += r;
		n -= (size_t)r;
	}
}

/* "2024-01-02T03:04:05.678Z pid=N " */
static int
log_prefix(char *out, size_t outsz)
{
	struct timespec ts;
	struct tm tm;

	if (log_pid == 0) {
		if (!log_atfork)
			log_atfork = pthread_atfork(NULL, NULL, log_forked) == 0;
		log_pid = getpid();
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != log_sec) {
		gmtime_r(&ts.tv_sec, &tm);
		strftime(log_stamp, sizeof(log_stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		log_sec = ts.tv_sec;
	}
	return snprintf(out, outsz, "%s.%03ldZ pid=%d ", log_stamp, ts.tv_nsec / 1000000,
	    (int)log_pid);
}

static void
log_emit(int prio, const char *level, const char *fmt, va_list ap)
{
	char line[64 + 2048];
	size_t head = 0, n;
	int r;

	if (log_foreground && (r = log_prefix(line, 64)) > 0)
		head = (size_t)r < 64 ? (size_t)r : 63;
	r = snprintf(line + head, 2048, "proc=%s level=%s ", log_proc, level);
	if (r < 0)
		return;
	n = (size_t)r < 2048 ? (size_t)r : 2047;
	r = vsnprintf(line + head + n, 2048 - n, fmt, ap);
	if (r < 0)
		return;
	n += (size_t)r < 2048 - n ? (size_t)r : 2047 - n;
	if (log_foreground) {
		/* One write per line, as fprintf to unbuffered stderr did. */
		line[head + n] = '\n';
		log_write(line, head + n + 1);
	} else
		syslog(prio, "%s", line + head);
}

#define LOG_BODY(prio, level) do {		\
	va_list ap;				\
	va_start(ap, fmt);			\
	log_emit(prio, level, fmt, ap);		\
	va_end(ap);				\
} while (0)

void log_info(const char *fmt, ...) { LOG_BODY(LOG_INFO, "info"); }
void log_warn(const char *fmt, ...) { LOG_BODY(LOG_WARNING, "warn"); }

void
log_debug(const char *fmt, ...)
{
	if (log_debug_on)
		LOG_BODY(LOG_DEBUG, "debug");
}

void
log_fatal(const char *fmt, ...)
{
	LOG_BODY(LOG_ERR, "fatal");
	exit(1);
}

void
log_panic(const char *fmt, ...)
{
	LOG_BODY(LOG_CRIT, "panic");
	abort();
}

const char *
log_esc(char *out, size_t outsz, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;
	int quote = (n == 0);

	if (outsz < 8) {
		if (outsz)
			out[0] = '\0';
		return out;
	}
	for (i = 0; i < n && !quote; i++)
		if (s[i] == ' ' || s[i] == '=' || s[i] == '"')
			quote = 1;
	if (quote)
		out[o++] = '"';
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (o + 6 >= outsz) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (c < 0x20 || c >= 0x7f) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else
			out[o++] = (char)c;
	}
	if (quote)
		out[o++] = '"';
	out[o] = '\0';
	return out;
}
