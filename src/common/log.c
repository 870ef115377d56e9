/* log — logfmt event lines to stderr or syslog (see log.h). */
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Process-wide by nature: set once at start, read by every module. */
static int log_foreground = 1;
static int log_debug_on;
static char log_proc[16] = "tern";
/*
 * Not foreground: a datagram socket connected to /dev/log, ours rather
 * than syslog(3)'s so that children keep it (log_syslog_fd) and a chrooted,
 * filtered worker logs through it without reconnecting. glibc's hidden
 * descriptor was closed with every other one in each child, and its number
 * could then name the child's epoll or a client's socket, which syslog(3)
 * wrote into or closed (a worker exited at its first line).
 */
static int log_sock = -1;
static struct sockaddr_un log_syslog_addr;
/* The check process and the mta log from several threads: one reconnects at a time. */
static pthread_mutex_t log_sock_lock = PTHREAD_MUTEX_INITIALIZER;

static int
syslog_connect(void)
{
	const struct sockaddr_un *sa = &log_syslog_addr;
	int fd;

	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

void
log_init(int foreground, int debug, const char *syslog_path)
{
	const char *path = syslog_path ? syslog_path : LOG_SYSLOG_PATH;

	log_foreground = foreground;
	log_debug_on = debug;
	if (foreground || log_sock != -1)
		return;
	log_syslog_addr.sun_family = AF_UNIX;
	snprintf(log_syslog_addr.sun_path, sizeof(log_syslog_addr.sun_path), "%s", path);
	log_sock = syslog_connect();
}

int
log_syslog_fd(void)
{
	return log_sock;
}

void
log_reopen(void)
{
	int fd;

	if (log_foreground || (fd = syslog_connect()) == -1)
		return;
	pthread_mutex_lock(&log_sock_lock);
	if (log_sock != -1)
		close(log_sock);
	log_sock = fd;
	pthread_mutex_unlock(&log_sock_lock);
}

void
log_set_proc(const char *proc)
{
	snprintf(log_proc, sizeof(log_proc), "%s", proc);
}

/*
 * The pid is asked once (a fork clears it) and the stamp's seconds once
 * per second: the smtp workers log a few lines per message. Per thread:
 * the check process and the mta log from several.
 */
static _Thread_local pid_t log_pid;
static _Thread_local time_t log_sec = -1;
static _Thread_local char log_stamp[32];
static pthread_once_t log_atfork_once = PTHREAD_ONCE_INIT;

static void
log_forked(void)
{
	log_pid = 0;	/* the child's one thread is the one that forked */
}

static void
log_atfork(void)
{
	(void)pthread_atfork(NULL, NULL, log_forked);
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

/* The digits of v in base 10 or 16 (lower case) at out (no NUL); their count. */
static size_t
put_ull(char *out, unsigned long long v, unsigned base)
{
	static const char digits[] = "0123456789abcdef";
	char d[24];
	size_t n = 0, i;

	do {
		d[n++] = digits[v % base];
		v /= base;
	} while (v > 0);
	for (i = 0; i < n; i++)
		out[i] = d[n - 1 - i];
	return n;
}

/* Decimal digits of v at out, zero-padded to width (no NUL); their count. */
static size_t
put_uint(char *out, unsigned long v, size_t width)
{
	char d[24];
	size_t n = put_ull(d, v, 10), pad = width > n ? width - n : 0;

	memset(out, '0', pad);
	memcpy(out + pad, d, n);
	return pad + n;
}

static size_t
put_str(char *out, const char *s, size_t max)
{
	size_t n = strnlen(s, max);

	memcpy(out, s, n);
	return n;
}

/*
 * "2024-01-02T03:04:05.678Z pid=N " (foreground only) then "proc=P
 * level=L " into out (at least 128 bytes), without printf: this runs for
 * every line. *body is where "proc=" starts.
 */
static size_t
log_prefix(char *out, const char *level, size_t *body)
{
	struct timespec ts;
	struct tm tm;
	size_t n = 0;

	if (log_pid == 0) {
		(void)pthread_once(&log_atfork_once, log_atfork);
		log_pid = getpid();
	}
	if (log_foreground) {
		clock_gettime(CLOCK_REALTIME, &ts);
		if (ts.tv_sec != log_sec) {
			gmtime_r(&ts.tv_sec, &tm);
			strftime(log_stamp, sizeof(log_stamp), "%Y-%m-%dT%H:%M:%S", &tm);
			log_sec = ts.tv_sec;
		}
		n += put_str(out + n, log_stamp, sizeof(log_stamp));
		out[n++] = '.';
		n += put_uint(out + n, (unsigned long)(ts.tv_nsec / 1000000), 3);
		n += put_str(out + n, "Z pid=", 8);
		n += put_uint(out + n, (unsigned long)log_pid, 1);
		out[n++] = ' ';
	}
	*body = n;
	n += put_str(out + n, "proc=", 8);
	n += put_str(out + n, log_proc, sizeof(log_proc));
	n += put_str(out + n, " level=", 8);
	n += put_str(out + n, level, 8);
	out[n++] = ' ';
	return n;
}

/*
 * The conversions log lines use (%s %c %d %i %u %x, with l, ll or z, and
 * %%) without printf: 1,816 instead of vsnprintf's 3,071 instructions for
 * a committed line, and every process logs a few per message. Writes at most room - 1 bytes and a NUL;
 * returns their count, or -1 (nothing to trust in out) at the first
 * conversion it does not know (a flag, a width, another type): the caller
 * then formats the line with vsnprintf.
 */
static int
log_format(char *out, size_t room, const char *fmt, va_list ap)
{
	char num[24];
	size_t n = 0, k;

	for (; *fmt != '\0'; fmt++) {
		const char *add = num;
		unsigned long long u = 0;
		long long sv = 0;
		int lng = 0, sgn = 0;

		if (*fmt != '%') {
			if (n + 1 < room)
				out[n++] = *fmt;
			continue;
		}
		fmt++;
		if (*fmt == 'l' && fmt[1] == 'l')
			lng = 2, fmt += 2;
		else if (*fmt == 'l')
			lng = 1, fmt++;
		else if (*fmt == 'z')
			lng = 3, fmt++;
		switch (*fmt) {
		case '%':
			if (lng)
				return -1;
			add = "%";
			k = 1;
			break;
		case 's':
			if (lng)
				return -1;
			if ((add = va_arg(ap, const char *)) == NULL)
				add = "(null)";	/* as glibc prints it */
			k = strlen(add);
			break;
		case 'c':
			if (lng)
				return -1;
			num[0] = (char)va_arg(ap, int);
			k = 1;
			break;
		case 'd':
		case 'i':
			sv = lng == 0 ? va_arg(ap, int) : lng == 1 ? va_arg(ap, long) :
			    lng == 2 ? va_arg(ap, long long) : (long long)va_arg(ap, ssize_t);
			sgn = sv < 0;
			u = sgn ? 0ULL - (unsigned long long)sv : (unsigned long long)sv;
			num[0] = '-';
			k = (size_t)sgn + put_ull(num + sgn, u, 10);
			break;
		case 'u':
		case 'x':
			u = lng == 0 ? va_arg(ap, unsigned) : lng == 1 ? va_arg(ap, unsigned long) :
			    lng == 2 ? va_arg(ap, unsigned long long) : va_arg(ap, size_t);
			k = put_ull(num, u, *fmt == 'x' ? 16 : 10);
			break;
		default:
			return -1;
		}
		if (k > room - 1 - n)
			k = room - 1 - n;
		memcpy(out + n, add, k);
		n += k;
	}
	out[n] = '\0';
	return (int)n;
}

/*
 * "<PRI>Mmm dd hh:mm:ss tern[PID]: " (RFC 3164, local time, as syslog(3)
 * writes it) at out (at least 64 bytes); its length.
 */
static size_t
syslog_header(char *out, int prio)
{
	time_t now = time(NULL);
	struct tm tm;
	size_t n = 0;

	out[n++] = '<';
	n += put_uint(out + n, (unsigned long)(LOG_MAIL | prio), 1);
	out[n++] = '>';
	localtime_r(&now, &tm);
	n += strftime(out + n, 20, "%b %e %H:%M:%S", &tm);
	n += put_str(out + n, " tern[", 8);
	n += put_uint(out + n, (unsigned long)log_pid, 1);
	n += put_str(out + n, "]: ", 4);
	return n;
}

/* One datagram; a syslog daemon that went away is connected to again once. */
static void
syslog_send(int prio, const char *body, size_t len)
{
	char head[64];
	struct iovec iov[2];
	int tries;

	iov[0].iov_base = head;
	iov[0].iov_len = syslog_header(head, prio);
	iov[1].iov_base = (void *)body;
	iov[1].iov_len = len;
	pthread_mutex_lock(&log_sock_lock);
	for (tries = 0; tries < 2; tries++) {
		if (log_sock == -1 && (log_sock = syslog_connect()) == -1)
			break;	/* no syslog daemon, or a filtered worker: the line is lost */
		if (writev(log_sock, iov, 2) != -1 || errno == EAGAIN)
			break;
		close(log_sock);
		log_sock = -1;
	}
	pthread_mutex_unlock(&log_sock_lock);
}

static void
log_emit(int prio, const char *level, const char *fmt, va_list ap)
{
	/* The part from "proc=" on is at most 2047 bytes, as it always was. */
	char line[128 + 2048 + 1];
	size_t body, n = log_prefix(line, level, &body), room = 2048 - (n - body);
	va_list again;
	int r;

	va_copy(again, ap);
	if ((r = log_format(line + n, room, fmt, ap)) < 0)
		r = vsnprintf(line + n, room, fmt, again);
	va_end(again);
	if (r < 0)
		return;
	n += (size_t)r < room ? (size_t)r : room - 1;
	if (log_foreground) {
		/* One write per line, as fprintf to unbuffered stderr did. */
		line[n++] = '\n';
		log_write(line, n);
	} else
		syslog_send(prio, line + body, n - body);
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
