/* Unit tests for src/server/table.c: passwd-file and aliases(5) parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/table.h"

static char err[512];

static struct table *
pw(const char *text)
{
	err[0] = '\0';
	return table_parse_passwd(text, strlen(text), "users", err, sizeof(err));
}

static struct table *
al(const char *text)
{
	err[0] = '\0';
	return table_parse_aliases(text, strlen(text), "aliases", err, sizeof(err));
}

static const char *
get(const struct table *t, const char *key)
{
	return table_lookup(t, key, strlen(key));
}

static void
passwd_good(void **state)
{
	struct table *t = pw(
	    "# comment\n"
	    "\n"
	    "Alice:{SHA512-CRYPT}$6$abc:1000:1000::/home/alice:/bin/sh:extra\r\n"
	    "bob@Example.TEST:{PLAIN}secret\n"
	    "   \t\n"
	    "carol:\n"
	    "dave");
	assert_null(t);
	assert_string_equal(err, "users:7: missing ':' (expected user:password:...)");

	t = pw("Alice:{SHA512-CRYPT}$6$abc:1000:1000::/home/alice:/bin/sh:extra\r\n"
	    "bob@Example.TEST:{PLAIN}secret\n"
	    "carol:\n");
	assert_non_null(t);
	assert_int_equal(table_count(t), 3);
	assert_string_equal(get(t, "alice"), "{SHA512-CRYPT}$6$abc");
	assert_string_equal(get(t, "ALICE"), "{SHA512-CRYPT}$6$abc");
	assert_string_equal(get(t, "bob@example.test"), "{PLAIN}secret");
	assert_string_equal(get(t, "carol"), "");
	assert_null(get(t, "bob"));
	assert_null(get(t, "alic"));
	/* keylen is honoured: no NUL needed. */
	assert_string_equal(table_lookup(t, "alicexyz", 5), "{SHA512-CRYPT}$6$abc");
	table_free(t);
}

static void
passwd_errors(void **state)
{
	assert_null(pw("a:x\n\nb:y\nA:z\n"));
	assert_string_equal(err, "users:4: user \"A\" declared twice (first at line 1)");
	assert_null(pw(":x\n"));
	assert_string_equal(err, "users:1: bad user name \"\"");
	assert_null(pw("a b:x\n"));
	assert_string_equal(err, "users:1: bad user name \"a b\"");
	assert_null(pw("ok:x\nnocolon\n"));
	assert_string_equal(err, "users:2: missing ':' (expected user:password:...)");
	assert_null(table_parse_passwd("a:\x01x\n", 5, "users", err, sizeof(err)));
	assert_string_equal(err, "users:1: control character in password field");
}

static void
passwd_long_line(void **state)
{
	size_t n = 70 * 1024;
	char *big = malloc(n);

	assert_non_null(big);
	memset(big, 'a', n);
	big[0] = 'u';
	big[1] = ':';
	assert_null(table_parse_passwd(big, n, "users", err, sizeof(err)));
	assert_string_equal(err, "users:1: line too long (max 65536)");
	free(big);
}

static void
passwd_empty(void **state)
{
	struct table *t = pw("");

	assert_non_null(t);
	assert_int_equal(table_count(t), 0);
	assert_null(get(t, "x"));
	table_free(t);
	assert_null(table_lookup(NULL, "x", 1));
	assert_int_equal(table_count(NULL), 0);
	table_free(NULL);
}

static void
aliases_good(void **state)
{
	struct table *t = al(
	    "# the usual\n"
	    "Postmaster: root\n"
	    "root:alice , bob@example.net,\n"
	    "  carol,\n"
	    "# a comment inside the entry\n"
	    "\n"
	    "\tdave@example.org\n"
	    "team: \"smith, john\"@example.net, \"a b\"\n"
	    "bob: bob, bob@elsewhere.example\n");

	assert_non_null(t);
	assert_int_equal(table_count(t), 4);
	assert_string_equal(get(t, "postmaster"), "root");
	assert_string_equal(get(t, "ROOT"),
	    "alice,bob@example.net,carol,dave@example.org");
	assert_string_equal(get(t, "team"), "\"smith, john\"@example.net,\"a b\"");
	assert_string_equal(get(t, "bob"), "bob,bob@elsewhere.example");
	table_free(t);
}

static void
aliases_errors(void **state)
{
	assert_null(al("a: b\nempty:\n"));
	assert_string_equal(err, "aliases:2: alias \"empty\" has no targets");
	assert_null(al("a: , ,\n"));
	assert_string_equal(err, "aliases:1: alias \"a\" has no targets");
	assert_null(al("a: b\nprog: |/usr/bin/x\n"));
	assert_string_equal(err,
	    "aliases:2: pipe/file/include targets are not supported");
	assert_null(al("a: b,\n  \"|/bin/sh -c x\"\n"));
	assert_string_equal(err,
	    "aliases:1: pipe/file/include targets are not supported");
	assert_null(al("f: /var/mail/x\n"));
	assert_string_equal(err,
	    "aliases:1: pipe/file/include targets are not supported");
	assert_null(al("\n\ni: :INCLUDE:/etc/list\n"));
	assert_string_equal(err,
	    "aliases:3: pipe/file/include targets are not supported");
	assert_null(al("a: b\nA: c\n"));
	assert_string_equal(err, "aliases:2: alias \"A\" declared twice (first at line 1)");
	assert_null(al("  b\n"));
	assert_string_equal(err, "aliases:1: continuation line without an alias");
	assert_null(al("a b\n"));
	assert_string_equal(err, "aliases:1: missing ':' after the alias name");
	assert_null(al("a: b c\n"));
	assert_string_equal(err, "aliases:1: bad address \"b c\"");
	assert_null(al("a: \"b\n"));
	assert_string_equal(err, "aliases:1: bad address \"\"b\"");
	assert_null(al("a: b@\n"));
	assert_string_equal(err, "aliases:1: bad address \"b@\"");
	assert_null(al("a: @x\n"));
	assert_string_equal(err, "aliases:1: bad address \"@x\"");
	assert_null(al(": b\n"));
	assert_string_equal(err, "aliases:1: bad alias name \"\"");
}

static void
aliases_nul(void **state)
{
	static const char text[] = "a: b\0c\n";

	assert_null(table_parse_aliases(text, sizeof(text) - 1, "aliases", err,
	    sizeof(err)));
	assert_string_equal(err, "aliases:1: NUL byte in line");
}

/* Many entries: the hash table grows and keeps every key. */
static void
many_entries(void **state)
{
	size_t n = 5000, i, len = 0;
	char *text = malloc(n * 32), key[32];
	struct table *t;

	assert_non_null(text);
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, 32, "user%zu:pw%zu\n", i, i);
	t = table_parse_passwd(text, len, "users", err, sizeof(err));
	assert_non_null(t);
	assert_int_equal(table_count(t), n);
	for (i = 0; i < n; i++) {
		char want[32];

		snprintf(key, sizeof(key), "USER%zu", i);
		snprintf(want, sizeof(want), "pw%zu", i);
		assert_string_equal(get(t, key), want);
	}
	assert_null(get(t, "user5000"));
	table_free(t);
	free(text);
}

static void
load_missing(void **state)
{
	assert_null(table_load_passwd("/nonexistent/tern-users", err, sizeof(err)));
	assert_string_equal(err, "/nonexistent/tern-users: No such file or directory");
	assert_null(table_load_aliases("/", err, sizeof(err)));
	assert_string_equal(err, "/: not a regular file");
}

/* Built entry by entry (what the queue does with a reload's tables). */
static void
add_entries(void **state)
{
	struct table *t = table_new();
	char key[400];

	assert_non_null(t);
	assert_int_equal(table_add(t, "Alice", 5, "x", 1), 0);
	assert_string_equal(get(t, "alice"), "x");
	errno = 0;
	assert_int_equal(table_add(t, "ALICE", 5, "y", 1), -1);
	assert_int_equal(errno, EEXIST);
	assert_string_equal(get(t, "alice"), "x");
	assert_int_equal(table_add(t, "", 0, "y", 1), -1);
	assert_int_equal(errno, E2BIG);
	memset(key, 'k', sizeof(key));
	assert_int_equal(table_add(t, key, 321, "", 0), -1);
	assert_int_equal(errno, E2BIG);
	assert_int_equal(table_add(t, key, 320, "", 0), 0);
	assert_int_equal(table_add(t, "a\0b", 3, "", 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(table_add(t, "b", 1, "v\0w", 3), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(table_count(t), 2);
	table_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(passwd_good),
		cmocka_unit_test(passwd_errors),
		cmocka_unit_test(passwd_long_line),
		cmocka_unit_test(passwd_empty),
		cmocka_unit_test(aliases_good),
		cmocka_unit_test(aliases_errors),
		cmocka_unit_test(aliases_nul),
		cmocka_unit_test(many_entries),
		cmocka_unit_test(load_missing),
		cmocka_unit_test(add_entries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
