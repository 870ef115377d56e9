/* Unit tests for src/daemon/config.c: fields, defaults, every error with FILE:LINE. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/config.h"
#include "server/table.h"

static char tmpdir[256];
static char err[1024];

static void
write_file(const char *name, const char *text)
{
	char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static int
load(const char *text, struct config *cfg)
{
	char path[512];

	write_file("tern.conf", text);
	snprintf(path, sizeof(path), "%s/tern.conf", tmpdir);
	err[0] = '\0';
	return config_load(path, cfg, err, sizeof(err));
}

/* config_parse over a string, named "tern.conf", based in /etc/tern. */
static int
parse(const char *text, struct config *cfg)
{
	err[0] = '\0';
	return config_parse(text, strlen(text), "tern.conf", "/etc/tern", cfg, err,
	    sizeof(err));
}

/* The text must fail with exactly `want`. */
static void
bad(const char *text, const char *want)
{
	struct config cfg;

	if (parse(text, &cfg) == 0) {
		config_free(&cfg);
		fail_msg("accepted: %s", text);
	}
	assert_string_equal(err, want);
	assert_null(cfg.domains);
	assert_null(cfg.path);
}

#define MIN "listen 127.0.0.1:2525\ndomain localhost { maildir m/%u }\n"

static const char full[] =
    "# tern.conf for the tests\n"
    "hostname Mail.Example.TEST.\n"
    "user _tern2; deliver_user vmail2\n"
    "spool spool\n"
    "chroot /var/empty2\n"
    "workers 4; deliver_processes 3\n"
    "recipient_delimiter \"+-\"\n"
    "retry_interval 2m\n"
    "listen 127.0.0.1:2525 { mode mx }\n"
    "listen [::1]:2526\n"
    "listen *:25 {\n"
    "    mode mx\n"
    "}\n"
    "limits {\n"
    "    command_line 1024\n"
    "    text_line 2000\n"
    "    recipients 200\n"
    "    message_size 10M\n"
    "    connections 50\n"
    "    connections_per_ip 5\n"
    "    errors 3\n"
    "    timeout_command 5m\n"
    "    timeout_data 1h\n"
    "    timeout_commit 90\n"
    "    shutdown_wait 0s\n"
    "}\n"
    "domain Example.TEST. {\n"
    "    users users.passwd\n"
    "    aliases \"my aliases\"   # quoted name with a blank\n"
    "    maildir mail/%d/%u\n"
    "    catchall Alice\n"
    "}\n"
    "domain other.test { maildir /srv/mail/%%/%u; }\n";

static void
good_full(void **state)
{
	struct config cfg;
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;
	char want[600];

	write_file("users.passwd", "alice:{PLAIN}x\nbob@example.test:{PLAIN}y\n");
	write_file("my aliases", "postmaster: alice\nroot: alice, bob\n");
	if (load(full, &cfg) == -1)
		fail_msg("%s", err);
	snprintf(want, sizeof(want), "%s/tern.conf", tmpdir);
	assert_string_equal(cfg.path, want);
	assert_string_equal(cfg.hostname, "Mail.Example.TEST");
	assert_string_equal(cfg.user, "_tern2");
	assert_string_equal(cfg.deliver_user, "vmail2");
	snprintf(want, sizeof(want), "%s/spool", tmpdir);
	assert_string_equal(cfg.spool_dir, want);
	assert_string_equal(cfg.chroot_dir, "/var/empty2");
	assert_int_equal(cfg.workers, 4);
	assert_int_equal(cfg.deliver_processes, 3);
	assert_string_equal(cfg.recipient_delimiter, "+-");
	assert_int_equal(cfg.retry_interval, 120);

	assert_int_equal(cfg.nlisten, 3);
	assert_string_equal(cfg.listen[0].text, "127.0.0.1:2525");
	assert_int_equal(cfg.listen[0].mode, LISTEN_MX);
	assert_int_equal(cfg.listen[0].line, 9);
	sin = (const struct sockaddr_in *)&cfg.listen[0].ss;
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 2525);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x7f000001);
	assert_int_equal(cfg.listen[0].sslen, sizeof(struct sockaddr_in));
	sin6 = (const struct sockaddr_in6 *)&cfg.listen[1].ss;
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 2526);
	assert_memory_equal(&sin6->sin6_addr, &in6addr_loopback, 16);
	assert_int_equal(cfg.listen[1].sslen, sizeof(struct sockaddr_in6));
	assert_int_equal(cfg.listen[1].line, 10);
	sin = (const struct sockaddr_in *)&cfg.listen[2].ss;
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 25);
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_string_equal(cfg.listen[2].text, "*:25");
	assert_int_equal(cfg.listen[2].line, 11);

	assert_int_equal(cfg.limits.command_line, 1024);
	assert_int_equal(cfg.limits.text_line, 2000);
	assert_int_equal(cfg.limits.recipients, 200);
	assert_int_equal(cfg.limits.message_size, 10 * 1024 * 1024);
	assert_int_equal(cfg.limits.connections, 50);
	assert_int_equal(cfg.limits.connections_per_ip, 5);
	assert_int_equal(cfg.limits.errors, 3);
	assert_int_equal(cfg.limits.timeout_greeting, 300);
	assert_int_equal(cfg.limits.timeout_data_block, 3600);
	assert_int_equal(cfg.limits.timeout_data_end, 90);
	assert_int_equal(cfg.limits.shutdown_wait, 0);

	assert_int_equal(cfg.ndomains, 2);
	assert_string_equal(cfg.domains[0].name, "example.test");
	snprintf(want, sizeof(want), "%s/users.passwd", tmpdir);
	assert_string_equal(cfg.domains[0].users_path, want);
	snprintf(want, sizeof(want), "%s/my aliases", tmpdir);
	assert_string_equal(cfg.domains[0].aliases_path, want);
	snprintf(want, sizeof(want), "%s/mail/%%d/%%u", tmpdir);
	assert_string_equal(cfg.domains[0].maildir, want);
	assert_string_equal(cfg.domains[0].catchall, "alice");
	assert_int_equal(table_count(cfg.domains[0].users), 2);
	assert_int_equal(table_count(cfg.domains[0].aliases), 2);
	assert_string_equal(table_lookup(cfg.domains[0].aliases, "root", 4),
	    "alice,bob");
	assert_string_equal(cfg.domains[1].name, "other.test");
	assert_null(cfg.domains[1].users_path);
	assert_null(cfg.domains[1].aliases_path);
	assert_null(cfg.domains[1].users);
	assert_null(cfg.domains[1].catchall);
	assert_string_equal(cfg.domains[1].maildir, "/srv/mail/%%/%u");

	assert_ptr_equal(config_find_domain(&cfg, "EXAMPLE.test.", 13),
	    &cfg.domains[0]);
	assert_ptr_equal(config_find_domain(&cfg, "other.testXYZ", 10),
	    &cfg.domains[1]);
	assert_null(config_find_domain(&cfg, "example.test..", 14));
	assert_null(config_find_domain(&cfg, "sub.example.test", 16));
	assert_null(config_find_domain(&cfg, "example.tes", 11));
	config_free(&cfg);
	assert_null(cfg.domains);
	config_free(&cfg);	/* twice is harmless */
}

static void
defaults(void **state)
{
	struct config cfg;
	char host[256] = "";

	assert_int_equal(parse(MIN, &cfg), 0);
	gethostname(host, sizeof(host) - 1);
	assert_string_equal(cfg.hostname, host[0] ? host : "localhost");
	assert_string_equal(cfg.path, "tern.conf");
	assert_string_equal(cfg.user, "_tern");
	assert_string_equal(cfg.deliver_user, "vmail");
	assert_string_equal(cfg.spool_dir, "/var/spool/tern");
	assert_string_equal(cfg.chroot_dir, "/var/empty");
	assert_string_equal(cfg.syslog_socket, "/dev/log");
	assert_int_equal(cfg.workers, 0);
	assert_int_equal(cfg.deliver_processes, 1);
	assert_string_equal(cfg.recipient_delimiter, "+");
	assert_int_equal(cfg.retry_interval, 60);
	assert_int_equal(cfg.nlisten, 1);
	assert_int_equal(cfg.listen[0].mode, LISTEN_MX);
	assert_int_equal(cfg.listen[0].line, 1);
	assert_int_equal(cfg.limits.command_line, 512);
	assert_int_equal(cfg.limits.text_line, 1000);
	assert_int_equal(cfg.limits.recipients, 100);
	assert_int_equal(cfg.limits.message_size, 35 * 1024 * 1024);
	assert_int_equal(cfg.limits.connections, 1000);
	assert_int_equal(cfg.limits.connections_per_ip, 20);
	assert_int_equal(cfg.limits.errors, 10);
	assert_int_equal(cfg.limits.timeout_greeting, 300);
	assert_int_equal(cfg.limits.timeout_data_block, 180);
	assert_int_equal(cfg.limits.timeout_data_end, 600);
	assert_int_equal(cfg.limits.shutdown_wait, 30);
	assert_int_equal(cfg.ndomains, 1);
	assert_string_equal(cfg.domains[0].name, "localhost");
	assert_string_equal(cfg.domains[0].maildir, "/etc/tern/m/%u");
	/* config_parse loads no table */
	assert_null(cfg.domains[0].users);
	config_free(&cfg);
}

static void
syntax_forms(void **state)
{
	struct config cfg;

	/* ';' ends directives; blocks on one line or several; comments;
	 * quoted words with escapes; CRLF line ends; "" empty word. */
	assert_int_equal(parse(
	    "listen 127.0.0.1:1 { mode mx; }; listen 127.0.0.1:2 {mode mx}\r\n"
	    "listen 127.0.0.1:3 {\n mode \"mx\" # comment } not a close\n}\n"
	    "recipient_delimiter \"\"\n"
	    "limits {}\n"
	    "domain a.test {\n"
	    "  maildir \"/m/a \\\"q\\\" \\\\ #x/%u\"\n"
	    "}\n"
	    "domain b.test { maildir /m/%u } domain c.test { maildir /m/%u }\n"
	    "# last line without newline", &cfg), 0);
	assert_int_equal(cfg.nlisten, 3);
	assert_string_equal(cfg.recipient_delimiter, "");
	assert_int_equal(cfg.ndomains, 3);
	assert_string_equal(cfg.domains[0].maildir, "/m/a \"q\" \\ #x/%u");
	assert_string_equal(cfg.domains[2].name, "c.test");
	config_free(&cfg);
	/* a NUL-free buffer that is not NUL-terminated */
	{
		char buf[sizeof(MIN) - 1];

		memcpy(buf, MIN, sizeof(buf));
		assert_int_equal(config_parse(buf, sizeof(buf), "x", "/", &cfg, err,
		    sizeof(err)), 0);
		assert_string_equal(cfg.domains[0].maildir, "/m/%u");
		config_free(&cfg);
	}
}

static void
errors_brief(void **state)
{
	bad("listen 127.0.0.1:2525\n\n\n\n\n\n\n\n\n\n\nhostnme x\n",
	    "tern.conf:12: unknown directive \"hostnme\"");
	bad("\n\nlisten 127.0.0.1:99999\n",
	    "tern.conf:3: listen: bad address \"127.0.0.1:99999\"");
	bad(MIN "\n\n\n\nlimits { message_size 12Q }\n",
	    "tern.conf:7: limits: message_size: not a size \"12Q\"");
	bad(MIN "\ndomain x {\n  maildir /x\n",
	    "tern.conf:5: unterminated block opened at line 4");
	bad("listen *:25\ndomain localhost { maildir /a }\n\n\n\n\n\n\n"
	    "domain LocalHost. { maildir /b }\n",
	    "tern.conf:9: domain \"localhost\" declared twice");
	bad(MIN "hostname a\nhostname b\n",
	    "tern.conf:4: duplicate directive \"hostname\" (first at line 3)");
	bad(MIN "hostname\n", "tern.conf:3: hostname: missing argument");
	bad(MIN "hostname a b\n", "tern.conf:3: hostname: too many arguments");
	bad(MIN "hostname a b c d e f g h i j k\n",
	    "tern.conf:3: hostname: too many arguments");
	bad(MIN "limits {\n bogus 1\n}\n",
	    "tern.conf:4: limits: unknown directive \"bogus\"");
	bad("listen *:25 {\n  foo\n}\n",
	    "tern.conf:2: listen: unknown directive \"foo\"");
	bad("domain x {\n  mailbox /m\n}\n",
	    "tern.conf:2: domain \"x\": unknown directive \"mailbox\"");
	bad("listen *:587 {\n mode submission; tls optional\n}\n",
	    "tern.conf:1: listen: mode submission: tls optional would let passwords "
	    "travel in clear; use required or implicit");
	bad("listen *:587 { mode submission; tls required }\n"
	    "domain x { maildir /m }\n",
	    "tern.conf:1: listen *:587: tls needs a \"tls\" block with cert and key");
	bad(MIN "tls {\n cert /c\n}\n",
	    "tern.conf:3: tls: cert and key are required");
	bad(MIN "auth {\n max_failures 0\n}\n",
	    "tern.conf:4: auth: max_failures: \"0\" is not a number in 1..1000");
	bad(MIN "trusted_networks 10.0.0.0/33\n",
	    "tern.conf:3: trusted_networks: bad network \"10.0.0.0/33\"");
}

static void
errors_more(void **state)
{
	bad("", "tern.conf:1: no \"listen\" directive (at least one is required)");
	bad("listen *:25\n\n", "tern.conf:2: no \"domain\" block (at least one is "
	    "required)");
	bad("listen *:25\ndomain x { catchall y }\n",
	    "tern.conf:2: domain \"x\": maildir is required");
	bad("listen *:25\ndomain x\n{ maildir /m }\n",
	    "tern.conf:2: domain: missing block (the '{' must be on the "
	    "directive's line)");
	bad("listen *:25\nlimits\n", "tern.conf:2: limits: missing block (the '{' "
	    "must be on the directive's line)");
	bad("listen *:25\n{ }\n", "tern.conf:2: '{' without a directive (a block "
	    "opens on its directive's line)");
	bad(MIN "}\n", "tern.conf:3: unexpected '}'");
	bad(MIN "hostname x { }\n", "tern.conf:3: hostname: unexpected block");
	bad(MIN "limits { recipients 5 { } }\n",
	    "tern.conf:3: limits: recipients: unexpected block");
	bad(MIN "limits { recipients 100\n recipients 200 }\n",
	    "tern.conf:4: limits: duplicate directive \"recipients\" (first at line 3)");
	bad(MIN "limits { }\nlimits { }\n",
	    "tern.conf:4: duplicate directive \"limits\" (first at line 3)");
	bad(MIN "limits { recipients 99 }\n",
	    "tern.conf:3: limits: recipients: 99 is out of range (100..10000)");
	bad(MIN "limits { command_line 511 }\n",
	    "tern.conf:3: limits: command_line: 511 is out of range (512..65536)");
	bad(MIN "limits { text_line 65537 }\n",
	    "tern.conf:3: limits: text_line: 65537 is out of range (1000..65536)");
	bad(MIN "limits { errors x }\n",
	    "tern.conf:3: limits: errors: not a number \"x\"");
	bad(MIN "limits { message_size M }\n",
	    "tern.conf:3: limits: message_size: not a size \"M\"");
	bad(MIN "limits { message_size 2048G }\n",
	    "tern.conf:3: limits: message_size: 2048G is out of range "
	    "(0..1099511627776)");
	bad(MIN "limits { message_size 99999999999999999999 }\n",
	    "tern.conf:3: limits: message_size: not a size \"99999999999999999999\"");
	bad(MIN "limits { timeout_data 5x }\n",
	    "tern.conf:3: limits: timeout_data: not a duration \"5x\"");
	bad(MIN "limits { timeout_command 0 }\n",
	    "tern.conf:3: limits: timeout_command: 0 is out of range (1..604800 "
	    "seconds)");
	bad(MIN "retry_interval 8w\n",
	    "tern.conf:3: retry_interval: not a duration \"8w\"");
	bad(MIN "retry_interval 8d\n",
	    "tern.conf:3: retry_interval: 8d is out of range (1..604800 seconds)");
	bad(MIN "workers 65\n", "tern.conf:3: workers: 65 is out of range (0..64)");
	bad(MIN "workers -1\n", "tern.conf:3: workers: not a number \"-1\"");
	bad(MIN "deliver_processes 0\n", "tern.conf:3: deliver_processes: 0 is out of range (1..16)");
	bad(MIN "deliver_processes 17\n", "tern.conf:3: deliver_processes: 17 is out of range (1..16)");
	bad(MIN "deliver_processes two\n", "tern.conf:3: deliver_processes: not a number \"two\"");
	bad(MIN "user \"a b\"\n", "tern.conf:3: user: bad user name \"a b\"");
	bad(MIN "hostname bad_name\n",
	    "tern.conf:3: hostname: bad domain name \"bad_name\"");
	bad(MIN "recipient_delimiter @\n",
	    "tern.conf:3: recipient_delimiter: bad character in \"@\"");
	bad(MIN "recipient_delimiter ++++++++\n",
	    "tern.conf:3: recipient_delimiter: too long (max 7 characters)");
	bad(MIN "spool \"\"\n", "tern.conf:3: spool: empty path");
	bad(MIN "syslog_socket dev/log\n", "tern.conf:3: syslog_socket: \"dev/log\" is not "
	    "an absolute path of at most 107 bytes");
	{
		/* sun_path holds 108 bytes with the NUL: 107 is the longest path. */
		char text[300], want[300], path[109];
		struct config cfg;

		path[0] = '/';
		memset(path + 1, 'p', 107);
		path[108] = '\0';
		snprintf(text, sizeof(text), "%ssyslog_socket %s\n", MIN, path);
		snprintf(want, sizeof(want), "tern.conf:3: syslog_socket: \"%s\" is not an "
		    "absolute path of at most 107 bytes", path);
		bad(text, want);
		path[107] = '\0';
		snprintf(text, sizeof(text), "%ssyslog_socket %s\n", MIN, path);
		assert_int_equal(parse(text, &cfg), 0);
		assert_string_equal(cfg.syslog_socket, path);
		config_free(&cfg);
	}
	{
		struct config cfg;

		assert_int_equal(parse(MIN "syslog_socket /run/tern-log\n", &cfg), 0);
		assert_string_equal(cfg.syslog_socket, "/run/tern-log");
		config_free(&cfg);
	}
}

static void
errors_listen_domain(void **state)
{
	bad("listen 127.0.0.1\n", "tern.conf:1: listen: bad address \"127.0.0.1\"");
	bad("listen ::1:25\n", "tern.conf:1: listen: bad address \"::1:25\"");
	bad("listen [::1]\n", "tern.conf:1: listen: bad address \"[::1]\"");
	bad("listen 1.2.3.4:0\n", "tern.conf:1: listen: bad address \"1.2.3.4:0\"");
	bad("listen host.example:25\n",
	    "tern.conf:1: listen: bad address \"host.example:25\"");
	bad("listen *:25\nlisten 0.0.0.0:25\n",
	    "tern.conf:2: listen: \"0.0.0.0:25\" declared twice (first at line 1)");
	bad("listen *:25 { mode relay }\n",
	    "tern.conf:1: listen: mode: unknown mode \"relay\" (mx, submission)");
	bad("listen *:25 { mode mx; mode mx }\n",
	    "tern.conf:1: listen: duplicate directive \"mode\" (first at line 1)");
	bad("listen *:25\ndomain -bad.test { maildir /m }\n",
	    "tern.conf:2: domain: bad domain name \"-bad.test\"");
	bad("listen *:25\ndomain a..b { maildir /m }\n",
	    "tern.conf:2: domain: bad domain name \"a..b\"");
	bad("listen *:25\ndomain a.. { maildir /m }\n",
	    "tern.conf:2: domain: bad domain name \"a..\"");
	bad("listen *:25\ndomain . { maildir /m }\n",
	    "tern.conf:2: domain: bad domain name \".\"");
	bad(MIN "hostname a-.b\n",
	    "tern.conf:3: hostname: bad domain name \"a-.b\"");
	bad("listen *:25\ndomain x {\n maildir /m/%x\n}\n",
	    "tern.conf:3: domain \"x\": maildir: bad escape \"%x\" (only %u, %d and "
	    "%% are allowed)");
	bad("listen *:25\ndomain x { maildir /m/% }\n",
	    "tern.conf:2: domain \"x\": maildir: bad escape \"%\" (only %u, %d and "
	    "%% are allowed)");
	bad("listen *:25\ndomain x { maildir /m; catchall ../x }\n",
	    "tern.conf:2: domain \"x\": catchall: bad user name \"../x\"");
	bad("listen *:25\ndomain x { maildir /m; maildir /n }\n",
	    "tern.conf:2: domain \"x\": duplicate directive \"maildir\" (first at "
	    "line 2)");
}

static void
errors_lexer(void **state)
{
	bad("listen \"*:25\n", "tern.conf:1: unterminated quoted string");
	bad("listen \"*:25\\n\"\n",
	    "tern.conf:1: bad escape in quoted string (only \\\" and \\\\)");
	bad("listen \"*:25\"x\n", "tern.conf:1: missing blank after quoted string");
	bad("listen a\"b\"\n", "tern.conf:1: '\"' inside a word");
	bad("\nlisten *:25\x01\n", "tern.conf:2: control character 0x01");
	bad("listen \"*:25\r\"\n", "tern.conf:1: control character 0x0d");
	{
		struct config cfg;
		static const char nul[] = "listen *:25\0\n";

		assert_int_equal(config_parse(nul, sizeof(nul) - 1, "tern.conf", "/",
		    &cfg, err, sizeof(err)), -1);
		assert_string_equal(err, "tern.conf:1: control character 0x00");
	}
	{
		size_t n = 5000;
		char *big = malloc(n + 1);

		memset(big, 'a', n);
		big[n] = '\0';
		bad(big, "tern.conf:1: word too long (max 4096)");
		free(big);
	}
}

static void
load_tables_errors(void **state)
{
	struct config cfg;
	char want[600];

	write_file("bad.passwd", "alice:x\n\n# c\nbob\n");
	assert_int_equal(load(MIN "domain t.test {\n users bad.passwd\n"
	    " maildir /m/%u\n}\n", &cfg), -1);
	snprintf(want, sizeof(want), "%s/bad.passwd:4: missing ':' (expected "
	    "user:password:...)", tmpdir);
	assert_string_equal(err, want);
	assert_null(cfg.domains);

	write_file("bad.aliases", "a: b\nprog: \"|/bin/sh\"\n");
	assert_int_equal(load(MIN "domain t.test { aliases bad.aliases; "
	    "maildir /m/%u }\n", &cfg), -1);
	snprintf(want, sizeof(want), "%s/bad.aliases:2: pipe/file/include targets "
	    "are not supported", tmpdir);
	assert_string_equal(err, want);

	assert_int_equal(load(MIN "\ndomain t.test { users nothere; maildir /m }\n",
	    &cfg), -1);
	snprintf(want, sizeof(want), "%s/tern.conf:4: domain \"t.test\": users: cannot read "
	    "\"%s/nothere\": No such file or directory", tmpdir, tmpdir);
	assert_string_equal(err, want);

	write_file("ok.passwd", "alice:x\n");
	assert_int_equal(load(MIN "domain t.test { users ok.passwd; maildir /m\n"
	    "catchall bob }\n", &cfg), -1);
	snprintf(want, sizeof(want), "%s/tern.conf:4: domain \"t.test\": catchall "
	    "\"bob\" is neither a user nor an alias", tmpdir);
	assert_string_equal(err, want);

	assert_int_equal(config_load("/nonexistent/tern.conf", &cfg, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/tern.conf: No such file or directory");
}

/* A relative config path: paths still come out absolute. */
static void
relative_path(void **state)
{
	struct config cfg;
	char cwd[512], want[600];

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	write_file("rel.conf", MIN "spool ./q\n");
	assert_int_equal(chdir(tmpdir), 0);
	assert_int_equal(config_load("rel.conf", &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.path, "rel.conf");
	snprintf(want, sizeof(want), "%s/./q", tmpdir);
	assert_string_equal(cfg.spool_dir, want);
	snprintf(want, sizeof(want), "%s/m/%%u", tmpdir);
	assert_string_equal(cfg.domains[0].maildir, want);
	config_free(&cfg);
	assert_int_equal(chdir(".."), 0);
	{
		char *base = strrchr(tmpdir, '/') + 1, rel[300];

		snprintf(rel, sizeof(rel), "%s/rel.conf", base);
		assert_int_equal(config_load(rel, &cfg, err, sizeof(err)), 0);
		snprintf(want, sizeof(want), "%s/./q", tmpdir);
		assert_string_equal(cfg.spool_dir, want);
		config_free(&cfg);
	}
	assert_int_equal(chdir(cwd), 0);
}

static int
setup(void **state)
{
	char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/tern-config-XXXXXX", t ? t : "/tmp");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	static const char *files[] = { "tern.conf", "users.passwd", "my aliases",
	    "bad.passwd", "bad.aliases", "ok.passwd", "rel.conf" };
	char path[512];
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, files[i]);
		unlink(path);
	}
	return rmdir(tmpdir);
}

static void
dkim_directives(void **state)
{
	struct config cfg;

	assert_int_equal(parse(MIN "dkim_sign Example.ORG. ed k/ed.key\n"
	    "dkim_sign example.org rsa /k/rsa.key\ndkim_sign other.test s1.x k\n"
	    "dkim_headers From:Subject\ndkim_canonicalization simple\n", &cfg), 0);
	assert_int_equal(cfg.ndkim, 3);
	assert_string_equal(cfg.dkim[0].domain, "example.org");
	assert_string_equal(cfg.dkim[0].selector, "ed");
	assert_string_equal(cfg.dkim[0].keyfile, "/etc/tern/k/ed.key");
	assert_int_equal(cfg.dkim[0].line, 3);
	assert_string_equal(cfg.dkim[1].keyfile, "/k/rsa.key");
	assert_string_equal(cfg.dkim[2].selector, "s1.x");
	assert_string_equal(cfg.dkim_headers, "From:Subject");
	/* c=simple alone is simple/simple (RFC 6376 3.5) */
	assert_int_equal(cfg.dkim_hcanon, 1);
	assert_int_equal(cfg.dkim_bcanon, 1);
	config_free(&cfg);
	assert_int_equal(parse(MIN "dkim_canonicalization relaxed\n", &cfg), 0);
	assert_int_equal(cfg.dkim_hcanon, 0);
	assert_int_equal(cfg.dkim_bcanon, 1);
	assert_int_equal(cfg.ndkim, 0);
	assert_null(cfg.dkim_headers);
	config_free(&cfg);

	bad(MIN "dkim_sign a..b s k\n", "tern.conf:3: dkim_sign: bad domain \"a..b\"");
	bad(MIN "dkim_sign a.b -s k\n", "tern.conf:3: dkim_sign: bad selector \"-s\"");
	bad(MIN "dkim_sign a.b s\n", "tern.conf:3: dkim_sign: missing argument");
	bad(MIN "dkim_sign a.b s k\ndkim_sign A.B S k2\n",
	    "tern.conf:4: dkim_sign: a.b S declared twice (first at line 3)");
	bad(MIN "dkim_sign a.b s k\ndkim_sign a.b t k\ndkim_sign a.b u k\n",
	    "tern.conf:5: dkim_sign: at most 2 keys per domain (a.b)");
	bad(MIN "dkim_sign a.b s \"\"\n", "tern.conf:3: dkim_sign: empty path");
	bad(MIN "dkim_headers :From\n", "tern.conf:3: dkim_headers: empty header name in \":From\"");
	bad(MIN "dkim_headers From:\n", "tern.conf:3: dkim_headers: empty header name in \"From:\"");
	bad(MIN "dkim_headers \"From To\"\n",
	    "tern.conf:3: dkim_headers: bad header name in \"From To\"");
	bad(MIN "dkim_canonicalization relaxed/\n", "tern.conf:3: dkim_canonicalization: "
	    "\"relaxed/\" is not relaxed|simple[/relaxed|simple]");
	bad(MIN "dkim_headers From\ndkim_headers To\n",
	    "tern.conf:4: duplicate directive \"dkim_headers\" (first at line 3)");
}

/* auth_checks { dmarc_reports { ... } }: RFC 7489 7.2 aggregate reports. */
static void
dmarc_reports_directives(void **state)
{
	struct config cfg;

	assert_int_equal(parse(MIN "auth_checks on {\n dmarc_reports {\n"
	    "  from dmarc-noreply@Example.ORG\n  org_name \"Example Org\"\n  interval 6h\n }\n}\n",
	    &cfg), 0);
	assert_int_equal(cfg.checks.reports.enabled, 1);
	assert_int_equal(cfg.checks.reports.line, 4);
	assert_string_equal(cfg.checks.reports.from, "dmarc-noreply@Example.ORG");
	assert_string_equal(cfg.checks.reports.org_name, "Example Org");
	assert_int_equal(cfg.checks.reports.interval, 6 * 3600);
	config_free(&cfg);
	/* org_name defaults to the domain of from, interval to a day. */
	assert_int_equal(parse(MIN "auth_checks on { dmarc_reports { from r@mx.example.net } }\n",
	    &cfg), 0);
	assert_string_equal(cfg.checks.reports.org_name, "mx.example.net");
	assert_int_equal(cfg.checks.reports.interval, 86400);
	config_free(&cfg);
	/* Without the block: no reports. */
	assert_int_equal(parse(MIN "auth_checks on\n", &cfg), 0);
	assert_int_equal(cfg.checks.reports.enabled, 0);
	config_free(&cfg);

	bad(MIN "auth_checks on { dmarc_reports { org_name X } }\n",
	    "tern.conf:3: auth_checks: dmarc_reports: from is required");
	bad(MIN "auth_checks on { dmarc_reports { from nobody } }\n",
	    "tern.conf:3: auth_checks: dmarc_reports: from: \"nobody\" is not local-part@domain");
	bad(MIN "auth_checks on { dmarc_reports { from a@b..c } }\n",
	    "tern.conf:3: auth_checks: dmarc_reports: from: \"a@b..c\" is not local-part@domain");
	bad(MIN "auth_checks on { dmarc_reports { from \"a<b@x.org\" } }\n",
	    "tern.conf:3: auth_checks: dmarc_reports: from: bad character in \"a<b@x.org\"");
	bad(MIN "auth_checks on { dmarc_reports { from a@x.org; org_name \"\" } }\n",
	    "tern.conf:3: auth_checks: dmarc_reports: org_name: 1..127 characters");
	bad(MIN "auth_checks on { dmarc_reports { from a@x.org; interval soon } }\n",
	    "tern.conf:3: auth_checks: dmarc_reports: interval: not a duration \"soon\"");
}

/* A route's auth FILE: the first line "USER PASSWORD" that is not blank or a comment. */
static void
secret_file(void **state)
{
	static const struct {
		const char *in;
		size_t      len;	/* 0: strlen */
		int         rc;
		const char *user, *pass;
	} t[] = {
		{ "alice pw\n", 0, 0, "alice", "pw" },
		{ "# relay\n\n  \t\r\n\talice \t pass word \r\n", 0, 0, "alice", "pass word" },
		{ "bob secret", 0, 0, "bob", "secret" },
		{ "first one\nsecond two\n", 0, 0, "first", "one" },
		{ "alice\n", 0, -1, NULL, NULL },
		{ "alice   \r\n", 0, -1, NULL, NULL },
		{ "# only a comment\n\n", 0, -1, NULL, NULL },
		{ "", 0, -1, NULL, NULL },
		{ "al\0ce pw\n", 9, -1, NULL, NULL },
		{ "alice p\0w\n", 10, -1, NULL, NULL },
		{ "alice pw\nX", 5, -1, NULL, NULL },	/* the length counts, not the NUL */
		{ "alice pw\nX", 8, 0, "alice", "pw" },
	};
	char user[16], pass[16];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t len = t[i].len ? t[i].len : strlen(t[i].in);
		int rc = config_parse_secret(t[i].in, len, user, sizeof(user), pass, sizeof(pass));

		assert_int_equal(rc, t[i].rc);
		if (rc == 0) {
			assert_string_equal(user, t[i].user);
			assert_string_equal(pass, t[i].pass);
		}
	}
	/* Fields that do not fit are refused, not cut. */
	assert_int_equal(config_parse_secret("u 1234567", 9, user, sizeof(user), pass, 8), 0);
	assert_int_equal(config_parse_secret("u 12345678", 10, user, sizeof(user), pass, 8), -1);
	assert_int_equal(config_parse_secret("0123456789abcdef p", 18, user, 16, pass, 8), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good_full),
		cmocka_unit_test(defaults),
		cmocka_unit_test(syntax_forms),
		cmocka_unit_test(errors_brief),
		cmocka_unit_test(errors_more),
		cmocka_unit_test(errors_listen_domain),
		cmocka_unit_test(errors_lexer),
		cmocka_unit_test(load_tables_errors),
		cmocka_unit_test(relative_path),
		cmocka_unit_test(dkim_directives),
		cmocka_unit_test(dmarc_reports_directives),
		cmocka_unit_test(secret_file),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
