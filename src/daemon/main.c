/*
 * tern — the mail transfer agent's daemon: command line, configuration
 * check, daemonizing, then the parent process (daemon/parent.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/config.h"
#include "daemon/parent.h"
#include "deliver/signer.h"
#include "server/tls.h"

#define DEFAULT_CONFIG "/etc/tern/tern.conf"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: tern [-dnv] [-f FILE]\n"
	    "\n"
	    "tern is a mail transfer agent: it receives mail over SMTP, keeps it in a\n"
	    "durable queue and delivers it into Maildirs.\n"
	    "\n"
	    "  -f FILE  configuration file (default " DEFAULT_CONFIG ")\n"
	    "  -n       check the configuration and the tables it names, then exit:\n"
	    "           0 if valid, else 1 with FILE:LINE: reason on stderr\n"
	    "  -d       stay in the foreground and log to stderr (without -d: go into\n"
	    "           the background and log to syslog, facility mail, through\n"
	    "           the socket `syslog_socket` names, default /dev/log)\n"
	    "  -v       log debug events too\n"
	    "  -h       this help\n"
	    "\n"
	    "Signals: SIGTERM stops (in-flight transactions finish first), SIGHUP\n"
	    "reloads the configuration and tables without dropping connections.\n"
	    "Started as root, tern drops privileges: smtp workers run as the\n"
	    "configured `user` inside `chroot`, queue and delivery as `deliver_user`.\n"
	    "See docs/CONFIG.md for the configuration reference.\n");
}

/*
 * Every connection is a descriptor in one smtp worker, and the soft limit is
 * often 1024 while the hard one is far higher: take all the hard limit
 * allows, before any child is forked (they inherit it; seccomp would forbid
 * it later). A limit below the configured connections is logged, not fatal.
 */
static void
raise_nofile(const struct config *cfg)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t old = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
			log_warn("event=nofile-raise-failed error=\"%s\"", strerror(errno));
			return;
		}
		log_info("event=nofile from=%llu to=%llu", (unsigned long long)old,
		    (unsigned long long)rl.rlim_cur);
	}
	/* Spool, IPC and log descriptors come on top of the sessions. */
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)cfg->limits.connections + 64)
		log_warn("event=nofile-low limit=%llu connections=%zu",
		    (unsigned long long)rl.rlim_cur, (size_t)cfg->limits.connections);
}

/*
 * glibc gives the top of the heap back to the kernel (brk) when more than
 * the trim threshold is free there, and its threshold for serving a block
 * by mmap moves with the blocks freed. With those defaults an smtp worker's
 * heap shrank and grew again about every other message (a session's
 * buffers are freed between transactions), every grow paid in page faults,
 * and some blocks came and went by mmap. Where page-table changes are dear
 * (a virtual machine) fixing them took 10-15% off the workers' CPU at
 * S=20 (bench/RESULTS.md, session 11). Fixed thresholds: each process
 * keeps up to 8 MiB of freed heap for reuse, and blocks under 1 MiB come
 * from it.
 * Set before the children are forked, so every process has them.
 */
static void
malloc_keep(void)
{
	mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
}

static void
daemonize(void)
{
	pid_t pid = fork();
	int fd;

	if (pid == -1) {
		fprintf(stderr, "tern: fork: %s\n", strerror(errno));
		exit(1);
	}
	if (pid > 0)
		_exit(0);
	setsid();
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
}

int
main(int argc, char **argv)
{
	const char *path = DEFAULT_CONFIG;
	int check = 0, foreground = 0, debug = 0, ch;
	struct config *cfg;
	char err[1024];
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};

	while ((ch = getopt_long(argc, argv, "df:hnv", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd': foreground = 1; break;
		case 'f': path = optarg; break;
		case 'n': check = 1; break;
		case 'v': debug = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL) {
		fprintf(stderr, "tern: out of memory\n");
		return 1;
	}
	if (config_load(path, cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		free(cfg);
		return 1;
	}
	if (cfg->tls.present) {
		/* Certificates and keys are read now, as at start: errors show here too. */
		struct tls_server *t = tls_server_new(cfg, err, sizeof(err));

		if (t == NULL) {
			fprintf(stderr, "%s\n", err);
			config_free(cfg);
			free(cfg);
			return 1;
		}
		tls_server_free(t);
	}
	if (signer_check(cfg, err, sizeof(err)) == -1) {
		/* DKIM keys too: the mta loads them at start and must not find them broken. */
		fprintf(stderr, "%s\n", err);
		config_free(cfg);
		free(cfg);
		return 1;
	}
	if (check) {
		printf("tern: configuration %s is valid\n", path);
		config_free(cfg);
		free(cfg);
		return 0;
	}
	if (!foreground)
		daemonize();
	log_init(foreground, debug, cfg->syslog_socket);
	raise_nofile(cfg);
	malloc_keep();
	return parent_main(cfg, path);
}
