/* log — logfmt event lines to stderr or syslog (see log.h). */
#include "common/log.h"

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

static void
log_emit(int prio, const char *level, const char *fmt, va_list ap)
{
	char line[2048];
	int n;

	n = snprintf(line, sizeof(line), "proc=%s level=%s ", log_proc, level);
	if (n < 0)
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (log_foreground) {
		struct timespec ts;
		struct tm tm;
		char stamp[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ pid=%d %s\n", stamp,
		    ts.tv_nsec / 1000000, (int)getpid(), line);
	} else
		syslog(prio, "%s", line);
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
