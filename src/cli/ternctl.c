/*
 * ternctl — tern's administration command: password hashes for users
 * files, a look at the queue (list, show, flush; `mailq` is `ternctl
 * queue list`), holding, releasing and deleting messages, the daemon's
 * status, and the mail-authentication tools (DKIM keys and checks, SPF
 * checks: src/cli/authcmd.c). list and show read the spool directly;
 * hold, release, delete and status ask the queue process on its control
 * socket (queue/control.h), because only it may rewrite an envelope and
 * only it knows which message is being delivered. The queue commands
 * need the spool owner's rights (root or deliver_user).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli/authcmd.h"
#include "common/buf.h"
#include "daemon/config.h"
#include "queue/control.h"
#include "queue/envelope.h"
#include "queue/queue.h"
#include "queue/spoolfile.h"
#include "server/passwd.h"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: ternctl [-C config] COMMAND ...\n"
	    "\n"
	    "  passwd   read a new password (twice from a terminal, once from a pipe)\n"
	    "           and print its yescrypt hash as {CRYPT}$y$..., ready for a\n"
	    "           users file line: user:{CRYPT}$y$...\n"
	    "  queue list        the queued messages, in the form of Postfix's mailq\n"
	    "                    ('!' after the ID: held)\n"
	    "  queue show ID     one message's envelope: sender, recipients, their state\n"
	    "  queue flush       try every deferred message now\n"
	    "  queue hold ID     no more delivery attempts until released (kept across restarts)\n"
	    "  queue release ID  a held message is tried again now\n"
	    "  queue delete ID   remove a message from the queue, without a bounce\n"
	    "  status   processes (pid, role, user), listeners, connections, queue sizes\n"
	    "  dkim keygen DOMAIN SELECTOR [--type rsa|ed25519] [--bits N] [--out FILE]\n"
	    "           make a signing key (default rsa, 2048 bits) in FILE (default\n"
	    "           DOMAIN.SELECTOR.key, mode 0600, never overwritten) and print\n"
	    "           the TXT record to publish at SELECTOR._domainkey.DOMAIN\n"
	    "  dkim verify [FILE] [--resolver HOST[:PORT]]\n"
	    "           check every DKIM-Signature of the message in FILE (default\n"
	    "           stdin): d=, s=, a=, the result and why. Exit 0 if one passes,\n"
	    "           1 if none does\n"
	    "  spf check IP HELO MAILFROM [--resolver HOST[:PORT]]\n"
	    "           SPF (RFC 7208) for a client: the MAIL FROM identity (\"<>\"\n"
	    "           for the null sender) and the HELO identity, with the record,\n"
	    "           the mechanism that decided and the explanation. Exit status\n"
	    "           from the MAIL FROM result: 0 pass, 1 fail, 3 softfail,\n"
	    "           4 neutral, 5 none, 6 temperror, 7 permerror\n"
	    "  dmarc check [FILE] --ip IP --helo NAME --mail-from ADDR [--resolver HOST[:PORT]]\n"
	    "           every check the daemon runs on a message at the MX, on the\n"
	    "           message in FILE (default stdin): SPF (both identities), each\n"
	    "           DKIM signature, DMARC (the record and where it was found,\n"
	    "           policy, SPF and DKIM alignment, disposition; the message is\n"
	    "           taken as sampled in by pct=) and the Authentication-Results\n"
	    "           field. Exit status from DMARC: 0 pass, 1 fail, 5 none,\n"
	    "           6 temperror, 7 permerror\n"
	    "  -C FILE, -f FILE  configuration (default $TERN_CONFIG or /etc/tern/tern.conf);\n"
	    "           its dns_server is the DNS server of dkim verify, spf check and\n"
	    "           dmarc check, its hostname/authserv_id the A-R field's\n"
	    "           unless --resolver names one (else /etc/resolv.conf's)\n"
	    "  help     this text\n"
	    "\n"
	    "Exit status 2: a usage error; 8: the command could not run (file, DNS).\n");
}

/* One line from stdin without its newline; no echo on a terminal. */
static int
read_secret(const char *prompt, char *out, size_t outsz)
{
	struct termios old, quiet;
	int tty = isatty(STDIN_FILENO);
	size_t n;

	if (tty) {
		fputs(prompt, stderr);
		tcgetattr(STDIN_FILENO, &old);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	if (fgets(out, (int)outsz, stdin) == NULL)
		out[0] = '\0';
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	n = strcspn(out, "\r\n");
	out[n] = '\0';
	return n > 0 ? 0 : -1;
}

static int
cmd_passwd(void)
{
	char pw[256], again[256], hash[256];
	int r = 1;

	if (read_secret("New password: ", pw, sizeof(pw)) == -1) {
		fprintf(stderr, "ternctl: empty password\n");
		return 1;
	}
	if (isatty(STDIN_FILENO) && (read_secret("Again: ", again, sizeof(again)) == -1 ||
	    strcmp(pw, again) != 0)) {
		fprintf(stderr, "ternctl: the passwords differ\n");
		goto out;
	}
	if (passwd_hash(pw, hash, sizeof(hash)) == -1) {
		fprintf(stderr, "ternctl: cannot make a hash\n");
		goto out;
	}
	printf("%s\n", hash);
	r = 0;
out:
	explicit_bzero(pw, sizeof(pw));
	explicit_bzero(again, sizeof(again));
	return r;
}

static int
read_all(const char *path, struct buf *b)
{
	char chunk[8192];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd == -1)
		return -1;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (buf_append(b, chunk, (size_t)n) == -1)
			break;
	close(fd);
	return n == 0 ? 0 : -1;
}

static int
load_envelope(const char *spool, const char *id, struct envelope *e)
{
	char path[4200];
	const char *why;
	struct buf b;
	int r;

	snprintf(path, sizeof(path), "%s/queue/%s.env", spool, id);
	buf_init(&b, (size_t)16 << 20);
	r = read_all(path, &b) == 0 ? envelope_decode(b.data, b.len, e, &why) : -1;
	buf_free(&b);
	return r;
}

/*
 * A message whose envelope was never rewritten has it after its content
 * (queue/spoolfile.h). The CRC is not checked here: a listing shows what
 * looks committed, the queue's recovery is the judge.
 */
static int
load_footer_envelope(const char *spool, const char *id, struct envelope *e)
{
	struct spool_footer f;
	char path[4200];
	const char *why;
	struct buf b;
	int r = -1;

	snprintf(path, sizeof(path), "%s/queue/%s.msg", spool, id);
	buf_init(&b, SPOOL_ENV_MAX);
	if (spool_read_file(path, id, 0, &f, &b, &why) == 0)
		r = envelope_decode(b.data, b.len, e, &why);
	buf_free(&b);
	return r;
}

static const char *const state_names[] = { "pending", "delivered", "failed", "held" };

/* Postfix's mailq layout, so that scripts reading it keep working. */
static int
cmd_list(const char *spool)
{
	char dir[4200];
	struct dirent *de;
	DIR *d;
	size_t count = 0;
	uint64_t bytes = 0;

	snprintf(dir, sizeof(dir), "%s/queue", spool);
	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "ternctl: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name), i;
		char id[QUEUE_ID_LEN + 1], when[64];
		struct envelope e;
		struct tm tm;
		time_t t;
		int held;

		if (n != QUEUE_ID_LEN + 4 || !envelope_id_valid(de->d_name, QUEUE_ID_LEN))
			continue;
		memcpy(id, de->d_name, QUEUE_ID_LEN);
		id[QUEUE_ID_LEN] = '\0';
		if (strcmp(de->d_name + QUEUE_ID_LEN, ".env") == 0) {
			if (load_envelope(spool, id, &e) == -1)
				continue;
		} else if (strcmp(de->d_name + QUEUE_ID_LEN, ".msg") == 0) {
			char envp[4200];

			snprintf(envp, sizeof(envp), "%s/queue/%s.env", spool, id);
			if (access(envp, F_OK) == 0 || load_footer_envelope(spool, id, &e) == -1)
				continue;
		} else
			continue;
		if (count++ == 0)
			printf("-Queue ID-       --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
		t = (time_t)e.created;
		localtime_r(&t, &tm);
		strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm);
		/* Postfix marks a held message with '!' after its ID. */
		for (i = 0, held = 0; i < e.nrcpts; i++)
			held |= e.rcpts[i].state == RCPT_HELD;
		printf("%-16s%c%8" PRIu64 " %s  %s\n", e.id, held ? '!' : ' ', e.size, when,
		    e.sender[0] ? e.sender : "MAILER-DAEMON");
		for (i = 0; i < e.nrcpts; i++) {
			const struct envelope_rcpt *r = &e.rcpts[i];

			if (r->state != RCPT_PENDING && r->state != RCPT_HELD)
				continue;
			if (r->last_error[0])
				printf("%*s(%s)\n", 48, "", r->last_error);
			printf("%*s%s\n", 48, "", r->addr);
		}
		printf("\n");
		bytes += e.size;
		envelope_free(&e);
	}
	closedir(d);
	if (count == 0)
		printf("Mail queue is empty\n");
	else
		printf("-- %" PRIu64 " Kbytes in %zu Request%s.\n", (bytes + 1023) / 1024, count,
		    count == 1 ? "" : "s");
	return 0;
}

static int
cmd_show(const char *spool, const char *id)
{
	struct envelope e;
	size_t i;

	if (load_envelope(spool, id, &e) == -1 && (strlen(id) != QUEUE_ID_LEN ||
	    !envelope_id_valid(id, QUEUE_ID_LEN) || load_footer_envelope(spool, id, &e) == -1)) {
		fprintf(stderr, "ternctl: no queued message %s\n", id);
		return 1;
	}
	printf("id: %s\ncreated: %" PRId64 "\nsender: <%s>\nclient: %s (%s)\nproto: %s\n"
	    "size: %" PRIu64 "\n", e.id, e.created, e.sender, e.client_addr, e.helo, e.proto, e.size);
	for (i = 0; i < e.nrcpts; i++) {
		const struct envelope_rcpt *r = &e.rcpts[i];

		printf("rcpt: %s %s <%s> attempts=%u%s%s\n", state_names[r->state],
		    r->kind == RCPTK_LOCAL ? "local" : "remote", r->addr, r->attempts,
		    r->last_error[0] ? " error=" : "", r->last_error);
	}
	envelope_free(&e);
	return 0;
}

static int
cmd_flush(const char *spool)
{
	char path[4200], b[32] = "";
	FILE *f;
	long pid = 0;

	snprintf(path, sizeof(path), "%s/" QUEUE_PIDFILE, spool);
	if ((f = fopen(path, "r")) == NULL || fgets(b, sizeof(b), f) == NULL ||
	    (pid = strtol(b, NULL, 10)) <= 1 || kill((pid_t)pid, SIGUSR1) == -1) {
		fprintf(stderr, "ternctl: cannot reach the queue process (%s): %s\n", path,
		    strerror(errno));
		if (f)
			fclose(f);
		return 1;
	}
	fclose(f);
	printf("ternctl: the queue tries every deferred message now\n");
	return 0;
}

/*
 * One command on the queue's control socket; prints the answer. The
 * socket is reached from inside the spool, so a long spool path does not
 * overflow sun_path.
 */
static int
control_command(const char *spool, const char *line)
{
	struct sockaddr_un sun;
	char ans[4096];
	ssize_t n;
	int fd, first = 1, r = 1;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, CONTROL_SOCKET, sizeof(CONTROL_SOCKET));
	if (chdir(spool) == -1 || (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		fprintf(stderr, "ternctl: %s: %s\n", spool, strerror(errno));
		return 1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    write(fd, line, strlen(line)) != (ssize_t)strlen(line)) {
		fprintf(stderr, "ternctl: cannot reach the queue process (%s/%s): %s\n", spool,
		    CONTROL_SOCKET, strerror(errno));
		close(fd);
		return 1;
	}
	while ((n = read(fd, ans, sizeof(ans))) > 0) {
		if (first)
			r = n >= 2 && memcmp(ans, "ok", 2) == 0 ? 0 : 1;
		first = 0;
		fwrite(ans, 1, (size_t)n, r == 0 ? stdout : stderr);
	}
	close(fd);
	if (first)
		fprintf(stderr, "ternctl: the queue process closed without an answer\n");
	return r;
}

/* hold, release, delete: the verb as the control socket spells it. */
static int
cmd_control_id(const char *spool, const char *verb, const char *id)
{
	char line[CONTROL_LINE_MAX];

	if (!envelope_id_valid(id, strlen(id))) {
		fprintf(stderr, "ternctl: not a queue ID: %s\n", id);
		return 2;
	}
	snprintf(line, sizeof(line), "%s %s\n", verb, id);
	return control_command(spool, line);
}

static int
cmd_status(const char *conf)
{
	struct config cfg;
	char err[1024];
	int r;

	if (config_load(conf, &cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "ternctl: %s\n", err);
		return 1;
	}
	r = control_command(cfg.spool_dir, "STATUS\n");
	config_free(&cfg);
	return r;
}

static int
queue_command(const char *conf, int argc, char **argv)
{
	struct config cfg;
	char err[1024];
	int r;

	if (config_load(conf, &cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "ternctl: %s\n", err);
		return 1;
	}
	if (argc == 1 && strcmp(argv[0], "list") == 0)
		r = cmd_list(cfg.spool_dir);
	else if (argc == 2 && strcmp(argv[0], "show") == 0)
		r = cmd_show(cfg.spool_dir, argv[1]);
	else if (argc == 1 && strcmp(argv[0], "flush") == 0)
		r = cmd_flush(cfg.spool_dir);
	else if (argc == 2 && strcmp(argv[0], "hold") == 0)
		r = cmd_control_id(cfg.spool_dir, "HOLD", argv[1]);
	else if (argc == 2 && strcmp(argv[0], "release") == 0)
		r = cmd_control_id(cfg.spool_dir, "RELEASE", argv[1]);
	else if (argc == 2 && strcmp(argv[0], "delete") == 0)
		r = cmd_control_id(cfg.spool_dir, "DELETE", argv[1]);
	else {
		usage(stderr);
		r = 2;
	}
	config_free(&cfg);
	return r;
}

int
main(int argc, char **argv)
{
	const char *conf = getenv("TERN_CONFIG") ? getenv("TERN_CONFIG") : "/etc/tern/tern.conf";
	const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	char *list[] = { "list" };
	int given = 0, r;

	if (argc >= 3 && (strcmp(argv[1], "-C") == 0 || strcmp(argv[1], "-f") == 0)) {
		conf = argv[2];
		given = 1;
		argv += 2;
		argc -= 2;
	}
	/* Installed as mailq, it lists the queue. */
	if (strcmp(prog, "mailq") == 0)
		return queue_command(conf, 1, list);
	if (argc >= 3 && strcmp(argv[1], "queue") == 0)
		return queue_command(conf, argc - 2, argv + 2);
	if (argc == 2 && strcmp(argv[1], "passwd") == 0)
		return cmd_passwd();
	if (argc == 2 && strcmp(argv[1], "status") == 0)
		return cmd_status(conf);
	if (argc >= 2 && (strcmp(argv[1], "dkim") == 0 || strcmp(argv[1], "spf") == 0 ||
	    strcmp(argv[1], "dmarc") == 0)) {
		r = strcmp(argv[1], "dkim") == 0 ? authcmd_dkim(conf, given, argc - 2, argv + 2) :
		    strcmp(argv[1], "spf") == 0 ? authcmd_spf(conf, given, argc - 2, argv + 2) :
		    authcmd_dmarc(conf, given, argc - 2, argv + 2);
		if (r == AUTHCMD_USAGE)
			usage(stderr);
		return r;
	}
	if (argc == 2 && (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
