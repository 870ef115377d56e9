/*
 * tern-sendmail — the sendmail(8) command of scripts and programs (cron,
 * mail(1), git, PHP's mail()). It reads a message on stdin and leaves it,
 * with its envelope, in the spool's maildrop folder, where the queue
 * picks it up at once (or when the daemon next starts): the message is
 * safe on disk when this command exits 0.
 *
 * With -bs it speaks SMTP on stdin and stdout instead (as sendmail -bs
 * does for programs that only know SMTP): each message the session ends
 * with "." goes into the maildrop the same way before its 250.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "daemon/config.h"
#include "queue/maildrop.h"
#include "server/submit.h"
#include "smtp/parse.h"

#define EX_USAGE    64
#define EX_DATAERR  65
#define EX_SOFTWARE 70
#define EX_TEMPFAIL 75
#define MAX_RCPTS   MAILDROP_MAX_RCPT
#define MSG_MAX     ((size_t)64 << 20)

struct opts {
	const char *config;
	const char *sender;
	const char *fullname;
	int         from_headers;	/* -t */
	int         dot_ends;		/* without -i: a line "." ends the input */
	int         smtp;		/* -bs: SMTP on stdin/stdout */
	const char *rcpts[MAX_RCPTS];
	char        owned[MAX_RCPTS];	/* rcpts[i] was allocated here (-t) */
	size_t      nrcpts;
};

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: tern-sendmail [-t] [-i] [-f sender] [-F name] [-C config] [recipient ...]\n"
	    "\n"
	    "Reads a message on standard input and queues it for the recipients.\n"
	    "  -t         recipients from the To:, Cc: and Bcc: headers (Bcc: is removed)\n"
	    "  -i, -oi    a line with a single dot does not end the message\n"
	    "  -f ADDR    envelope sender (default: your login @ the configured hostname)\n"
	    "  -F NAME    full name for the From: header tern adds when there is none\n"
	    "  -C FILE    tern configuration (default $TERN_CONFIG or /etc/tern/tern.conf)\n"
	    "  -bm        read mail and deliver it (the default)\n"
	    "  -bs        speak SMTP on standard input and output (EHLO, MAIL, RCPT, DATA, QUIT)\n"
	    "  -v, -odi, -odb, -oem, -oXX  accepted and ignored\n"
	    "Exit 0 when the message is safely in the spool, 75 to try later.\n");
}

static int
parse_args(int argc, char **argv, struct opts *o)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (a[0] != '-' || strcmp(a, "--") == 0) {
			if (strcmp(a, "--") == 0)
				i++;
			for (; i < argc; i++) {
				if (o->nrcpts == MAX_RCPTS)
					return -1;
				o->rcpts[o->nrcpts++] = argv[i];
			}
			break;
		}
		if (strcmp(a, "-t") == 0)
			o->from_headers = 1;
		else if (strcmp(a, "-i") == 0 || strcmp(a, "-oi") == 0)
			o->dot_ends = 0;
		else if (strncmp(a, "-f", 2) == 0 || strncmp(a, "-r", 2) == 0)
			o->sender = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
		else if (strncmp(a, "-F", 2) == 0)
			o->fullname = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
		else if (strncmp(a, "-C", 2) == 0)
			o->config = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
		else if (strcmp(a, "-bs") == 0)
			o->smtp = 1;
		else if (strcmp(a, "-bm") == 0 || strcmp(a, "-v") == 0 || strncmp(a, "-o", 2) == 0)
			;	/* delivery modes and options: tern decides */
		else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		} else
			return -1;
		if ((strncmp(a, "-f", 2) == 0 && !o->sender) || (strncmp(a, "-F", 2) == 0 && !o->fullname) ||
		    (strncmp(a, "-C", 2) == 0 && !o->config))
			return -1;
	}
	return 0;
}

/*
 * stdin with every line ending made CRLF; a lone "." ends it unless -i.
 * In SMTP (-bs) the "." always ends it and a leading dot is unstuffed
 * (RFC 5321 4.5.2); the rest of a message too large is still read, so
 * the session stays in step. *ended: the "." was seen.
 */
static int
read_message(const struct opts *o, struct buf *msg, int *ended)
{
	char line[8192];
	int bol = 1, over = 0;

	*ended = 0;
	while (fgets(line, sizeof(line), stdin) != NULL) {
		size_t n = strlen(line), skip = 0;
		int eol = n && line[n - 1] == '\n';

		if (eol)
			n--;
		if (eol && n && line[n - 1] == '\r')
			n--;
		if (bol && eol && (o->dot_ends || o->smtp) && n == 1 && line[0] == '.') {
			*ended = 1;
			break;
		}
		if (bol && o->smtp && n > 0 && line[0] == '.')
			skip = 1;
		if (!over && (buf_append(msg, line + skip, n - skip) == -1 ||
		    (eol && buf_appends(msg, "\r\n") == -1)))
			over = 1;
		if (over && !o->smtp)
			return -1;
		bol = eol;
	}
	if (!over && !bol && buf_appends(msg, "\r\n") == -1)
		over = 1;
	return over || ferror(stdin) ? -1 : 0;
}

static size_t
header_end(const struct buf *m)
{
	const char *e;

	if (m->len >= 2 && m->data[0] == '\r' && m->data[1] == '\n')
		return 0;
	e = m->len ? memmem(m->data, m->len, "\r\n\r\n", 4) : NULL;
	return e ? (size_t)(e - m->data) + 2 : m->len;
}

static void
add_rcpt(void *arg, const char *addr, size_t n)
{
	struct opts *o = arg;
	char *a;

	if (o->nrcpts < MAX_RCPTS && (a = strndup(addr, n)) != NULL) {
		o->owned[o->nrcpts] = 1;
		o->rcpts[o->nrcpts++] = a;
	}
}

/* Removes Bcc: fields (RFC 5322 3.6.3: blind copies stay blind). */
static void
drop_bcc(struct buf *m)
{
	size_t off = 0, end = header_end(m);

	while (off < end) {
		size_t n = 0;
		const char *p = m->data + off;

		do {
			const char *nl = memchr(p + n, '\n', end - off - n);

			n = nl ? (size_t)(nl - p) + 1 : end - off;
		} while (off + n < end && (p[n] == ' ' || p[n] == '\t'));
		if (n > 4 && strncasecmp(p, "Bcc:", 4) == 0) {
			memmove(m->data + off, m->data + off + n, m->len - off - n);
			m->len -= n;
			end -= n;
			m->data[m->len] = '\0';
		} else
			off += n;
	}
}

/* From:, Date: and Message-ID: when missing, as RFC 6409 8 asks of submission. */
static int
complete_headers(const struct opts *o, const struct config *cfg, const char *sender, struct buf *m)
{
	struct submit_headers h;
	struct buf add;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	uint64_t rnd = 0;
	int r;

	submit_scan_headers(m->data, header_end(m), &h);
	buf_init(&add, 4096);
	if (h.nfrom == 0) {
		if (o->fullname)
			buf_printf(&add, "From: \"%s\" <%s>\r\n", o->fullname, sender);
		else
			buf_printf(&add, "From: <%s>\r\n", sender);
	}
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	if (!h.has_date)
		buf_printf(&add, "Date: %s\r\n", date);
	if (!h.has_message_id) {
		(void)!getrandom(&rnd, sizeof(rnd), 0);
		buf_printf(&add, "Message-ID: <%lld.%016llx.sendmail@%s>\r\n", (long long)now,
		    (unsigned long long)rnd, cfg->hostname);
	}
	r = buf_append(&add, m->data, m->len);
	if (r == 0) {
		buf_free(m);
		*m = add;
	} else
		buf_free(&add);
	return r;
}

static int
drop_file(const struct config *cfg, const char *hdr, const struct buf *msg)
{
	char dir[4096], tmp[4200], final[4200];
	uint64_t rnd = 0;
	int fd, dfd, ok;

	snprintf(dir, sizeof(dir), "%s/%s", cfg->spool_dir, MAILDROP_DIR);
	(void)!getrandom(&rnd, sizeof(rnd), 0);
	snprintf(tmp, sizeof(tmp), "%s/.%d.%016llx", dir, (int)getpid(), (unsigned long long)rnd);
	snprintf(final, sizeof(final), "%s/%lld.%d.%016llx", dir, (long long)time(NULL), (int)getpid(),
	    (unsigned long long)rnd);
	/*
	 * Readable by the queue, which runs as another user; the folder cannot
	 * be listed and the name is random, so other users cannot find it.
	 */
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) == -1 ||
	    fchmod(fd, 0644) == -1) {
		fprintf(stderr, "tern-sendmail: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	ok = write(fd, hdr, strlen(hdr)) == (ssize_t)strlen(hdr) &&
	    write(fd, msg->data, msg->len) == (ssize_t)msg->len && fsync(fd) == 0;
	ok = close(fd) == 0 && ok && rename(tmp, final) == 0;
	if (!ok) {
		fprintf(stderr, "tern-sendmail: cannot write to %s: %s\n", dir, strerror(errno));
		unlink(tmp);
		return -1;
	}
	/* The name must be durable too before we say the mail is safe. */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
}

/*
 * Only the spool and the host name are needed: the tables (which a local
 * user may not be allowed to read) are left alone.
 */
static int
load_config(const char *path, struct config *cfg, char *err, size_t errlen)
{
	char dir[4096], *slash;
	struct buf data;
	char chunk[8192];
	ssize_t n;
	int fd, r;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	buf_init(&data, 1 << 20);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (buf_append(&data, chunk, (size_t)n) == -1)
			break;
	close(fd);
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	r = config_parse(data.data ? data.data : "", data.len, path, dir, cfg, err, errlen);
	buf_free(&data);
	return r;
}

static int queue_it(struct opts *, const struct config *, const char *, struct buf *);

static int
send_it(struct opts *o, const struct config *cfg, const char *sender, struct buf *msg)
{
	int ended;

	if (read_message(o, msg, &ended) == -1) {
		fprintf(stderr, "tern-sendmail: cannot read the message (over %zu octets?)\n", MSG_MAX);
		return EX_DATAERR;
	}
	if (o->from_headers) {
		submit_field_addresses(msg->data, header_end(msg), "To", add_rcpt, o);
		submit_field_addresses(msg->data, header_end(msg), "Cc", add_rcpt, o);
		submit_field_addresses(msg->data, header_end(msg), "Bcc", add_rcpt, o);
		drop_bcc(msg);
	}
	if (o->nrcpts == 0) {
		fprintf(stderr, "tern-sendmail: no recipients\n");
		return EX_USAGE;
	}
	return queue_it(o, cfg, sender, msg);
}

static void
clear_rcpts(struct opts *o)
{
	size_t i;

	for (i = 0; i < o->nrcpts; i++)
		if (o->owned[i])
			free((char *)o->rcpts[i]);
	o->nrcpts = 0;
}

static void
reply(const char *text)
{
	fputs(text, stdout);
	fflush(stdout);
}

/* MAIL and RCPT: the path, checked by the server's own parser; parameters ignored. */
static int
smtp_path(const struct smtp_cmd *c, const char *prefix, const struct config *cfg, char *out,
    size_t outsz)
{
	struct smtp_mailarg a;
	const char *why = NULL;

	if (smtp_parse_mailarg(c->arg, c->arglen, prefix, &a, &why) != SMTP_PARSE_OK) {
		printf("501 5.5.4 %s\r\n", why ? why : "syntax error");
		fflush(stdout);
		return -1;
	}
	if (a.path.postmaster)
		snprintf(out, outsz, "postmaster@%s", cfg->hostname);
	else
		snprintf(out, outsz, "%s", a.path.addr);
	return 0;
}

/* One SMTP command of the -bs session; 1 after QUIT. */
static int
smtp_command(struct opts *o, const struct config *cfg, char *sender, int *have_mail,
    const char *line, size_t n)
{
	char path[SMTP_PATH_MAX + 1];
	struct smtp_cmd c;
	struct buf msg;
	int rc;

	if (smtp_parse_cmd(line, n, &c) == -1) {
		reply("500 5.5.2 bad characters in the command\r\n");
		return 0;
	}
	switch (c.verb) {
	case SMTP_VERB_EHLO:
	case SMTP_VERB_HELO:
		clear_rcpts(o);
		*have_mail = 0;
		if (c.verb == SMTP_VERB_HELO)
			printf("250 %s\r\n", cfg->hostname);
		else
			printf("250-%s\r\n250-8BITMIME\r\n250-SIZE %zu\r\n250 ENHANCEDSTATUSCODES\r\n",
			    cfg->hostname, MSG_MAX);
		fflush(stdout);
		return 0;
	case SMTP_VERB_MAIL:
		if (*have_mail)
			reply("503 5.5.1 MAIL already given\r\n");
		else if (smtp_path(&c, "FROM:", cfg, path, sizeof(path)) == 0) {
			snprintf(sender, SMTP_PATH_MAX + 1, "%s", path);
			*have_mail = 1;
			reply("250 2.1.0 Ok\r\n");
		}
		return 0;
	case SMTP_VERB_RCPT:
		if (!*have_mail)
			reply("503 5.5.1 MAIL first\r\n");
		else if (o->nrcpts == MAX_RCPTS)
			reply("452 4.5.3 too many recipients\r\n");
		else if (smtp_path(&c, "TO:", cfg, path, sizeof(path)) == 0) {
			if (path[0] == '\0' || (o->rcpts[o->nrcpts] = strdup(path)) == NULL) {
				reply("501 5.1.3 bad recipient\r\n");
				return 0;
			}
			o->owned[o->nrcpts++] = 1;
			reply("250 2.1.5 Ok\r\n");
		}
		return 0;
	case SMTP_VERB_DATA:
		if (!*have_mail || o->nrcpts == 0) {
			reply("503 5.5.1 MAIL and RCPT first\r\n");
			return 0;
		}
		reply("354 End data with <CR><LF>.<CR><LF>\r\n");
		buf_init(&msg, MSG_MAX);
		if (read_message(o, &msg, &rc) == -1)
			reply(rc ? "552 5.3.4 message too large\r\n" : "451 4.3.0 cannot read the message\r\n");
		else if (!rc) {
			buf_free(&msg);
			return 1;	/* end of input inside DATA: nothing is sent */
		} else if (queue_it(o, cfg, sender, &msg) != 0)
			reply("451 4.3.0 cannot queue the message, try again later\r\n");
		else
			reply("250 2.0.0 Ok: queued\r\n");
		buf_free(&msg);
		clear_rcpts(o);
		*have_mail = 0;
		return 0;
	case SMTP_VERB_RSET:
		clear_rcpts(o);
		*have_mail = 0;
		reply("250 2.0.0 Ok\r\n");
		return 0;
	case SMTP_VERB_NOOP:
		reply("250 2.0.0 Ok\r\n");
		return 0;
	case SMTP_VERB_VRFY:
		reply("252 2.5.0 Cannot VRFY, but will accept the message\r\n");
		return 0;
	case SMTP_VERB_QUIT:
		printf("221 2.0.0 %s closing\r\n", cfg->hostname);
		fflush(stdout);
		return 1;
	default:
		reply("502 5.5.1 command not implemented\r\n");
		return 0;
	}
}

/* sendmail -bs: an SMTP session on stdin/stdout, one maildrop file per message. */
static int
smtp_session(struct opts *o, const struct config *cfg)
{
	char line[1024], sender[SMTP_PATH_MAX + 1] = "";
	int have_mail = 0;

	printf("220 %s ESMTP tern (sendmail -bs)\r\n", cfg->hostname);
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		size_t n = strlen(line);

		if (n == 0 || line[n - 1] != '\n') {
			int ch;

			/* Over 512 octets (RFC 5321 4.5.3.1.4 allows refusing): skip the rest. */
			while (n == sizeof(line) - 1 && (ch = getchar()) != EOF && ch != '\n')
				;
			if (n == sizeof(line) - 1) {
				reply("500 5.5.2 line too long\r\n");
				continue;
			}
		}
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			n--;
		if (smtp_command(o, cfg, sender, &have_mail, line, n))
			break;
	}
	clear_rcpts(o);
	return 0;
}

/* The message with its headers completed, into the maildrop. */
static int
queue_it(struct opts *o, const struct config *cfg, const char *sender, struct buf *msg)
{
	static char hdr[MAX_RCPTS * 300 + 600];

	if (complete_headers(o, cfg, sender, msg) == -1 ||
	    maildrop_header(sender, o->rcpts, o->nrcpts, hdr, sizeof(hdr)) == -1) {
		fprintf(stderr, "tern-sendmail: message or envelope too large\n");
		return EX_DATAERR;
	}
	return drop_file(cfg, hdr, msg) == -1 ? EX_TEMPFAIL : 0;
}

int
main(int argc, char **argv)
{
	static struct opts o = { .dot_ends = 1 };
	struct config cfg;
	struct passwd *pw;
	char err[1024], sender[SMTP_PATH_MAX + 1];
	struct buf msg;
	size_t i;
	int rc;

	if (parse_args(argc, argv, &o) == -1) {
		usage(stderr);
		return EX_USAGE;
	}
	if (o.config == NULL && (o.config = getenv("TERN_CONFIG")) == NULL)
		o.config = "/etc/tern/tern.conf";
	memset(&cfg, 0, sizeof(cfg));
	if (load_config(o.config, &cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "tern-sendmail: %s\n", err);
		return EX_TEMPFAIL;
	}
	pw = getpwuid(getuid());
	if (o.sender)
		snprintf(sender, sizeof(sender), "%s", o.sender);
	else
		snprintf(sender, sizeof(sender), "%s@%s", pw ? pw->pw_name : "nobody", cfg.hostname);
	buf_init(&msg, MSG_MAX);
	rc = o.smtp ? smtp_session(&o, &cfg) : send_it(&o, &cfg, sender, &msg);
	buf_free(&msg);
	config_free(&cfg);
	for (i = 0; i < o.nrcpts; i++)
		if (o.owned[i])
			free((char *)o.rcpts[i]);
	return rc;
}
