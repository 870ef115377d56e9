/* Unit tests for src/queue/qconf.c: the queue's part of the configuration as bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue/qconf.h"
#include "server/resolve.h"
#include "server/table.h"

static const char conf_text[] =
    "listen 127.0.0.1:2525\n"
    "hostname mx.example.org\n"
    "recipient_delimiter -\n"
    "retry_interval 90\n"
    "lifetime 3d\n"
    "delay_warning 2h\n"
    "limits { message_size 10M }\n"
    "domain example.org { maildir /m/%u; catchall alice }\n"
    "domain example.net { maildir /m/%d/%u }\n"
    "domain example.com { maildir /m/%u }\n";

static const char users_text[] =
    "alice:{BLF-CRYPT}$2y$05$secrethashsecrethash::::::\n"
    "bob:{SHA512-CRYPT}$6$anothersecret::::::\n"
    "carol@example.org:::::::\n";

static const char aliases_text[] =
    "info: alice, bob\n"
    "ext: someone@far.example\n"
    "quoted: \"a b\"@far.example, alice\n";

/* The original: example.org with both tables, example.net with empty ones, .com with none. */
static void
make_config(struct config *cfg)
{
	char err[256];

	assert_int_equal(config_parse(conf_text, sizeof(conf_text) - 1, "t.conf", "/",
	    cfg, err, sizeof(err)), 0);
	cfg->domains[0].users = table_parse_passwd(users_text, sizeof(users_text) - 1,
	    "users", err, sizeof(err));
	cfg->domains[0].aliases = table_parse_aliases(aliases_text,
	    sizeof(aliases_text) - 1, "aliases", err, sizeof(err));
	cfg->domains[1].users = table_new();
	cfg->domains[1].aliases = table_new();
	assert_non_null(cfg->domains[0].users);
	assert_non_null(cfg->domains[0].aliases);
}

static void
encode(const struct config *cfg, struct buf *b)
{
	buf_init(b, QCONF_MAX);
	assert_int_equal(qconf_encode(cfg, b), 0);
}

static int
parse_text(const char *s, size_t n, struct config *out, char *err, size_t errlen)
{
	int r = qconf_parse(s, n, out, err, errlen);

	config_free(out);
	return r;
}

/* The resolved addresses of user@domain, comma-joined, or "" when it does not resolve. */
static void
resolve_str(const struct config *cfg, const char *user, const char *domain,
    char *out, size_t size)
{
	struct rcpt_dest d[RESOLVE_MAX_DEST];
	struct smtp_path p;
	size_t n = 0, i;

	memset(&p, 0, sizeof(p));
	snprintf(p.local, sizeof(p.local), "%s", user);
	snprintf(p.domain, sizeof(p.domain), "%s", domain);
	out[0] = '\0';
	if (resolve_rcpt(cfg, &p, 0, d, RESOLVE_MAX_DEST, &n) != RESOLVE_OK)
		return;
	for (i = 0; i < n; i++) {
		strncat(out, d[i].addr, size - strlen(out) - 1);
		strncat(out, ",", size - strlen(out) - 1);
	}
}

static void
round_trip_keeps_what_the_queue_uses(void **state)
{
	static const char *probe[][2] = {
		{ "alice", "example.org" }, { "bob", "example.org" },
		{ "carol", "example.org" }, { "nobody", "example.org" },
		{ "info", "example.org" }, { "ext", "example.org" },
		{ "quoted", "example.org" }, { "alice-tag", "example.org" },
		{ "alice", "example.net" }, { "postmaster", "example.net" },
		{ "anyone", "example.com" },
	};
	struct config a, b;
	struct buf enc;
	char err[256], ra[1024], rb[1024];
	size_t i;

	make_config(&a);
	encode(&a, &enc);
	assert_int_equal(qconf_parse(enc.data, enc.len, &b, err, sizeof(err)), 0);
	assert_string_equal(b.hostname, "mx.example.org");
	assert_string_equal(b.recipient_delimiter, "-");
	assert_int_equal(b.retry_interval, 90);
	assert_int_equal(b.lifetime, 3 * 86400);
	assert_int_equal(b.delay_warning, 2 * 3600);
	assert_int_equal(b.limits.message_size, 10 * 1024 * 1024);
	assert_int_equal(b.ndomains, 3);
	for (i = 0; i < 3; i++)
		assert_string_equal(b.domains[i].name, a.domains[i].name);
	assert_string_equal(b.domains[0].catchall, "alice");
	assert_null(b.domains[1].catchall);
	assert_int_equal(table_count(b.domains[0].users), 3);
	assert_int_equal(table_count(b.domains[0].aliases), 3);
	assert_non_null(b.domains[1].users);	/* empty, not absent */
	assert_int_equal(table_count(b.domains[1].users), 0);
	assert_null(b.domains[2].users);
	assert_null(b.domains[2].aliases);
	assert_string_equal(table_lookup(b.domains[0].aliases, "info", 4), "alice,bob");
	/* Names only: no password field leaves the parent. */
	assert_string_equal(table_lookup(b.domains[0].users, "alice", 5), "");
	assert_null(memmem(enc.data, enc.len, "secret", 6));
	for (i = 0; i < sizeof(probe) / sizeof(probe[0]); i++) {
		resolve_str(&a, probe[i][0], probe[i][1], ra, sizeof(ra));
		resolve_str(&b, probe[i][0], probe[i][1], rb, sizeof(rb));
		assert_string_equal(ra, rb);
	}
	resolve_str(&b, "info", "example.org", rb, sizeof(rb));
	assert_string_equal(rb, "alice@example.org,bob@example.org,");
	resolve_str(&b, "nobody", "example.org", rb, sizeof(rb));
	assert_string_equal(rb, "alice@example.org,");	/* the catch-all */
	config_free(&a);
	config_free(&b);
	buf_free(&enc);
}

/* Strings may hold blanks and line feeds; every proper prefix is refused. */
static void
strings_and_prefixes(void **state)
{
	static const char text[] =
	    "tern-qconf 1\n"
	    "hostname 4:h\n x\n"
	    "delimiter 0:\n"
	    "domain 3:a.b\n"
	    "aliases\n"
	    "alias 5:x y z 3:q\nr\n"
	    "end\n";
	struct config c;
	char err[256];
	size_t n;

	assert_int_equal(qconf_parse(text, sizeof(text) - 1, &c, err, sizeof(err)), 0);
	assert_string_equal(c.hostname, "h\n x");
	assert_string_equal(c.recipient_delimiter, "");
	assert_string_equal(table_lookup(c.domains[0].aliases, "x y z", 5), "q\nr");
	config_free(&c);
	for (n = 0; n < sizeof(text) - 1; n++)
		assert_int_equal(parse_text(text, n, &c, err, sizeof(err)), -1);
}

static void
expect_error(const char *body, const char *want)
{
	char text[2048], err[256] = "";
	struct config c;
	int n;

	n = snprintf(text, sizeof(text), "tern-qconf 1\nhostname 1:h\n%s", body);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	assert_int_equal(parse_text(text, (size_t)n, &c, err, sizeof(err)), -1);
	if (strstr(err, want) == NULL)
		fail_msg("for %s: got \"%s\", want \"%s\"", body, err, want);
	assert_int_equal(strncmp(err, "byte ", 5), 0);
}

static void
errors_say_what_is_wrong(void **state)
{
	char err[256], big[600];
	struct config c;
	int n;

	assert_int_equal(parse_text("tern-qconf 2\nend\n", 17, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a tern-qconf 1 encoding"));
	assert_int_equal(parse_text("tern-qconf 1\nend\n", 17, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no hostname"));
	expect_error("", "cut short");
	expect_error("end\nx", "bytes after");
	expect_error("frobnicate 1\nend\n", "an unknown record");
	expect_error(" 1\nend\n", "a record without a name");
	expect_error("user 1:a\nend\n", "before any domain");
	expect_error("domain 1:d\nuser 1:a\nend\n", "an entry before its table");
	expect_error("domain 1:d\nusers\nuser 1:a\nuser 1:A\nend\n", "an entry given twice");
	expect_error("domain 1:d\nusers\nusers\nend\n", "a table given twice");
	expect_error("domain 1:d\naliases\nalias 1:a 0:\nend\n", "an alias without targets");
	expect_error("domain 0:\nend\n", "an empty domain name");
	expect_error("domain 1:d\ncatchall 0:\nend\n", "a catch-all empty");
	expect_error("lifetime 4294967296\nend\n", "a number too large");
	expect_error("message_size 99999999999999999999\nend\n", "a number too large");
	expect_error("lifetime x\nend\n", "a number expected");
	expect_error("lifetime  1\nend\n", "a number expected");
	expect_error("lifetime\nend\n", "a blank expected");
	expect_error("hostname 50:ab\nend\n", "longer than the rest");
	expect_error("hostname 1x\nend\n", "':' expected");
	expect_error("hostname 1:ab\nend\n", "the end of the record expected");
	expect_error("delimiter 8:12345678\nend\n", "too long for its field");
	expect_error("domain 1:d\nusers\nuser 0:\nend\n", "too long or too many");
	n = snprintf(big, sizeof(big), "hostname 300:");
	memset(big + n, 'a', 300);
	memcpy(big + n + 300, "\nend\n", 6);	/* a name of 300 bytes: the field holds 255 */
	expect_error(big, "too long for its field");
	{
		static const char nul[] = "tern-qconf 1\nhostname 3:a\0b\nend\n";

		assert_int_equal(parse_text(nul, sizeof(nul) - 1, &c, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "a NUL byte"));
	}
}

static void
through_a_memfd(void **state)
{
	struct config a, b;
	char err[256];
	int fd;

	make_config(&a);
	fd = qconf_to_memfd(&a);
	assert_true(fd >= 0);
	assert_int_equal(qconf_from_fd(fd, &b, err, sizeof(err)), 0);
	assert_string_equal(b.hostname, "mx.example.org");
	assert_int_equal(b.ndomains, 3);
	assert_int_equal(table_count(b.domains[0].users), 3);
	config_free(&b);
	assert_int_equal(ftruncate(fd, 0), 0);	/* empty: refused, not parsed */
	assert_int_equal(qconf_from_fd(fd, &b, err, sizeof(err)), -1);
	config_free(&b);
	close(fd);
	assert_int_equal(qconf_from_fd(fd, &b, err, sizeof(err)), -1);	/* EBADF */
	assert_non_null(strstr(err, "fstat"));
	config_free(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip_keeps_what_the_queue_uses),
		cmocka_unit_test(strings_and_prefixes),
		cmocka_unit_test(errors_say_what_is_wrong),
		cmocka_unit_test(through_a_memfd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
