/* Unit tests for src/server/resolve.c: how RCPT addresses resolve. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"
#include "server/resolve.h"
#include "server/table.h"

static const char conf_text[] =
    "listen 127.0.0.1:2525\n"
    "domain example.test { maildir mail/%d/%u; catchall Sink }\n"
    "domain other.test { maildir mail/%d/%u }\n"
    "domain aliasonly.test { maildir mail/%d/%u }\n";

static const char users_text[] =
    "alice:{PLAIN}a\n"
    "bob:{PLAIN}b\n"
    "carol@example.test:{PLAIN}c\n"
    "dave@other.test:{PLAIN}d\n"
    "sink:{PLAIN}s\n"
    "mary-jane:{PLAIN}m\n";

static const char aliases_text[] =
    "root: alice\n"
    "team: alice, bob@example.test, Carol, x@remote.example, alice+dup\n"
    "fwd: someone@Remote.Example\n"
    "bob: bob, bob@elsewhere.example\n"
    "loop1: loop2\n"
    "loop2: loop1\n"
    "self: self\n"
    "cross: dave@other.test, dave@OTHER.TEST.\n"
    "d1: d2\nd2: d3\nd3: d4\nd4: d5\nd5: d6\nd6: d7\nd7: d8\nd8: d9\nd9: alice\n"
    "e1: e2\ne2: e3\ne3: e4\ne4: e5\ne5: e6\ne6: e7\ne7: e8\ne8: alice\n"
    "quoted: \"a b\"@remote.example\n"
    "literal: x@[192.0.2.1]\n"
    "ghost: nobody-at-all@other.test\n";

static const char other_aliases[] = "info: postmaster\n";
static const char aliasonly_aliases[] =
    "sales: dave@other.test\n"
    "postmaster: alice@example.test\n"
    "bob: bob, bob@remote.example\n";

struct fixture {
	struct config    cfg;
	struct rcpt_dest out[RESOLVE_MAX_DEST];
	size_t           n;
};

static struct table *
mk(int aliases, const char *text)
{
	char err[256];
	struct table *t = aliases ?
	    table_parse_aliases(text, strlen(text), "t", err, sizeof(err)) :
	    table_parse_passwd(text, strlen(text), "t", err, sizeof(err));

	if (t == NULL)
		fail_msg("%s", err);
	return t;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	assert_non_null(f);
	if (config_parse(conf_text, strlen(conf_text), "t.conf", "/etc/tern",
	    &f->cfg, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	f->cfg.domains[0].users = mk(0, users_text);
	f->cfg.domains[0].aliases = mk(1, aliases_text);
	f->cfg.domains[1].users = mk(0, users_text);
	f->cfg.domains[1].aliases = mk(1, other_aliases);
	f->cfg.domains[2].aliases = mk(1, aliasonly_aliases);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	config_free(&f->cfg);
	free(f);
	return 0;
}

/* A parsed path as parse.c would fill it: `local` is the decoded local part. */
static struct smtp_path
mkpath(const char *wire_local, const char *local, const char *domain)
{
	struct smtp_path p;

	memset(&p, 0, sizeof(p));
	snprintf(p.addr, sizeof(p.addr), "%s@%s", wire_local, domain);
	p.local_len = strlen(wire_local);
	snprintf(p.local, sizeof(p.local), "%s", local);
	snprintf(p.domain, sizeof(p.domain), "%s", domain);
	p.domain_literal = domain[0] == '[';
	return p;
}

static enum resolve_status
res(struct fixture *f, const char *local, const char *domain, int relay)
{
	struct smtp_path p = mkpath(local, local, domain);

	return resolve_rcpt(&f->cfg, &p, relay, f->out, RESOLVE_MAX_DEST, &f->n);
}

static void
expect_local(struct fixture *f, size_t i, const char *user, const char *domain)
{
	char addr[400];

	assert_true(i < f->n);
	snprintf(addr, sizeof(addr), "%s@%s", user, domain);
	assert_int_equal(f->out[i].kind, DEST_LOCAL);
	assert_string_equal(f->out[i].user, user);
	assert_string_equal(f->out[i].domain, domain);
	assert_string_equal(f->out[i].addr, addr);
}

static void
expect_remote(struct fixture *f, size_t i, const char *addr)
{
	assert_true(i < f->n);
	assert_int_equal(f->out[i].kind, DEST_REMOTE);
	assert_string_equal(f->out[i].addr, addr);
}

static void
user_plain(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(res(f, "alice", "example.test", 0), RESOLVE_OK);
	assert_int_equal(f->n, 1);
	expect_local(f, 0, "alice", "example.test");
	/* Case of local part and domain, trailing dot. */
	assert_int_equal(res(f, "ALICE", "Example.TEST.", 0), RESOLVE_OK);
	assert_int_equal(f->n, 1);
	expect_local(f, 0, "alice", "example.test");
	/* users key "carol@example.test" */
	assert_int_equal(res(f, "Carol", "example.test", 0), RESOLVE_OK);
	assert_int_equal(f->n, 1);
	expect_local(f, 0, "carol", "example.test");
	/* a user name holding the delimiter character is found whole */
	assert_int_equal(res(f, "mary-jane", "example.test", 0), RESOLVE_OK);
	expect_local(f, 0, "mary-jane", "example.test");
}

static void
user_tag(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(res(f, "alice+lists", "example.test", 0), RESOLVE_OK);
	assert_int_equal(f->n, 1);
	expect_local(f, 0, "alice", "example.test");
	assert_int_equal(res(f, "Alice+A+B", "example.test", 0), RESOLVE_OK);
	expect_local(f, 0, "alice", "example.test");
	/* alias found after the tag is stripped */
	assert_int_equal(res(f, "root+cron", "example.test", 0), RESOLVE_OK);
	assert_int_equal(f->n, 1);
	expect_local(f, 0, "alice", "example.test");
	/* "+x" alone: no base to strip to; unknown -> catch-all */
	assert_int_equal(res(f, "+x", "example.test", 0), RESOLVE_OK);
	expect_local(f, 0, "sink", "example.test");
	/* the delimiter can be turned off */
	f->cfg.recipient_delimiter[0] = '\0';
	assert_int_equal(res(f, "alice+lists", "other.test", 0),
	    RESOLVE_UNKNOWN_USER);
	snprintf(f->cfg.recipient_delimiter, sizeof(f->cfg.recipient_delimiter),
	    "-+");
	assert_int_equal(res(f, "dave-x", "other.test", 0), RESOLVE_OK);
	expect_local(f, 0, "dave", "other.test");
	snprintf(f->cfg.recipient_delimiter, sizeof(f->cfg.recipient_delimiter), "+");
}

static void
postmaster(void **state)
{
	struct fixture *f = *state;
	struct smtp_path p;

	/* other.test has no user or alias "postmaster": built in. */
	assert_int_equal(res(f, "PostMaster", "other.test", 0), RESOLVE_OK);
	assert_int_equal(f->n, 1);
	expect_local(f, 0, "postmaster", "other.test");
	assert_int_equal(res(f, "postmaster+x", "other.test", 0), RESOLVE_OK);
	expect_local(f, 0, "postmaster", "other.test");
	/* other.test alias info -> postmaster */
	assert_int_equal(res(f, "info", "other.test", 0), RESOLVE_OK);
	expect_local(f, 0, "postmaster", "other.test");
	/* aliasonly.test has an alias postmaster: it is used */
	assert_int_equal(res(f, "POSTMASTER", "aliasonly.test", 0), RESOLVE_OK);
	assert_int_equal(f->n, 1);
	expect_local(f, 0, "alice", "example.test");
	/* RCPT TO:<Postmaster>: the first domain's */
	memset(&p, 0, sizeof(p));
	p.postmaster = 1;
	assert_int_equal(resolve_rcpt(&f->cfg, &p, 0, f->out, 8, &f->n), RESOLVE_OK);
	assert_int_equal(f->n, 1);
	expect_local(f, 0, "postmaster", "example.test");
	/* RCPT TO:<> names nobody */
	p.postmaster = 0;
	p.null = 1;
	assert_int_equal(resolve_rcpt(&f->cfg, &p, 1, f->out, 8, &f->n),
	    RESOLVE_UNKNOWN_USER);
	assert_int_equal(f->n, 0);
}

static void
unknown_and_catchall(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(res(f, "nobody", "other.test", 0), RESOLVE_UNKNOWN_USER);
	assert_int_equal(f->n, 0);
	assert_int_equal(res(f, "nobody", "example.test", 0), RESOLVE_OK);
	assert_int_equal(f->n, 1);
	expect_local(f, 0, "sink", "example.test");
	/* an alias target that names nobody is refused as a whole */
	assert_int_equal(res(f, "ghost", "example.test", 0), RESOLVE_UNKNOWN_USER);
	/* a domain without a users table knows only aliases and postmaster */
	assert_int_equal(res(f, "alice", "aliasonly.test", 0), RESOLVE_UNKNOWN_USER);
	assert_int_equal(res(f, "sales", "aliasonly.test", 0), RESOLVE_OK);
	expect_local(f, 0, "dave", "other.test");
	/* ... and a catch-all, which is then the mailbox itself */
	f->cfg.domains[2].catchall = strdup("box");
	assert_int_equal(res(f, "anything", "aliasonly.test", 0), RESOLVE_OK);
	expect_local(f, 0, "box", "aliasonly.test");
}

static void
alias_several(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(res(f, "team", "example.test", 0), RESOLVE_OK);
	assert_int_equal(f->n, 5);	/* alice+dup is alice again */
	expect_local(f, 0, "alice", "example.test");
	expect_local(f, 1, "bob", "example.test");	/* bob via the self-alias */
	expect_remote(f, 2, "bob@elsewhere.example");
	expect_local(f, 3, "carol", "example.test");
	expect_remote(f, 4, "x@remote.example");
}

static void
alias_remote(void **state)
{
	struct fixture *f = *state;

	/* may_relay 0: the administrator's forward still leaves */
	assert_int_equal(res(f, "fwd", "example.test", 0), RESOLVE_OK);
	assert_int_equal(f->n, 1);
	expect_remote(f, 0, "someone@remote.example");
	assert_int_equal(res(f, "quoted", "example.test", 0), RESOLVE_OK);
	expect_remote(f, 0, "\"a b\"@remote.example");
	assert_int_equal(res(f, "literal", "example.test", 0), RESOLVE_OK);
	expect_remote(f, 0, "x@[192.0.2.1]");
	/* another local domain, twice in two spellings: one destination */
	assert_int_equal(res(f, "cross", "example.test", 0), RESOLVE_OK);
	assert_int_equal(f->n, 1);
	expect_local(f, 0, "dave", "other.test");
}

static void
alias_loops(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(res(f, "loop1", "example.test", 0), RESOLVE_LOOP);
	assert_int_equal(f->n, 0);
	assert_int_equal(res(f, "self", "example.test", 0), RESOLVE_LOOP);
	/* 9 nested aliases is one too deep; 8 is fine */
	assert_int_equal(res(f, "d1", "example.test", 0), RESOLVE_LOOP);
	assert_int_equal(res(f, "e1", "example.test", 0), RESOLVE_OK);
	assert_int_equal(f->n, 1);
	expect_local(f, 0, "alice", "example.test");
}

static void
self_alias(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(res(f, "bob", "example.test", 0), RESOLVE_OK);
	assert_int_equal(f->n, 2);
	expect_local(f, 0, "bob", "example.test");
	expect_remote(f, 1, "bob@elsewhere.example");
	/* with a tag too */
	assert_int_equal(res(f, "bob+x", "example.test", 0), RESOLVE_OK);
	assert_int_equal(f->n, 2);
	expect_local(f, 0, "bob", "example.test");
	/* the same idiom where bob is no user: a loop */
	assert_int_equal(res(f, "bob", "aliasonly.test", 0), RESOLVE_LOOP);
}

static void
relay(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(res(f, "x", "remote.example", 0), RESOLVE_RELAY_DENIED);
	assert_int_equal(f->n, 0);
	assert_int_equal(res(f, "X", "Remote.Example", 1), RESOLVE_OK);
	assert_int_equal(f->n, 1);
	expect_remote(f, 0, "X@remote.example");
	/* a subdomain of a local domain is not local */
	assert_int_equal(res(f, "alice", "sub.example.test", 0),
	    RESOLVE_RELAY_DENIED);
}

static void
no_reroute(void **state)
{
	struct fixture *f = *state;
	struct smtp_path p;

	/* the percent hack is just an unknown local part */
	assert_int_equal(res(f, "alice%remote.example", "other.test", 0),
	    RESOLVE_UNKNOWN_USER);
	/* with a catch-all it is caught, never relayed */
	assert_int_equal(res(f, "alice%remote.example", "example.test", 1),
	    RESOLVE_OK);
	assert_int_equal(f->n, 1);
	expect_local(f, 0, "sink", "example.test");
	/* "dave@other.test"@other.test: dave@other.test is a users key, but a
	 * local part holding '@' is never a user */
	p = mkpath("\"dave@other.test\"", "dave@other.test", "other.test");
	assert_int_equal(resolve_rcpt(&f->cfg, &p, 1, f->out, 8, &f->n),
	    RESOLVE_UNKNOWN_USER);
	p = mkpath("\"x@remote.example\"", "x@remote.example", "other.test");
	assert_int_equal(resolve_rcpt(&f->cfg, &p, 1, f->out, 8, &f->n),
	    RESOLVE_UNKNOWN_USER);
}

static void
address_literal(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(res(f, "alice", "[127.0.0.1]", 0), RESOLVE_RELAY_DENIED);
	assert_int_equal(res(f, "alice", "[127.0.0.1]", 1), RESOLVE_OK);
	assert_int_equal(f->n, 1);
	expect_remote(f, 0, "alice@[127.0.0.1]");
}

static void
too_many(void **state)
{
	struct fixture *f = *state;
	struct smtp_path p = mkpath("team", "team", "example.test");

	assert_int_equal(resolve_rcpt(&f->cfg, &p, 0, f->out, 4, &f->n),
	    RESOLVE_TOO_MANY);
	assert_int_equal(f->n, 0);
	assert_int_equal(resolve_rcpt(&f->cfg, &p, 0, f->out, 5, &f->n),
	    RESOLVE_OK);
	assert_int_equal(f->n, 5);
}

/* An alias with more distinct targets than RESOLVE_MAX_DEST. */
static void
too_many_big(void **state)
{
	struct fixture *f = *state;
	char text[4096], *p2;
	size_t i, len;
	struct smtp_path p = mkpath("big", "big", "other.test");

	len = (size_t)snprintf(text, sizeof(text), "big: ");
	for (i = 0; i < RESOLVE_MAX_DEST + 1; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
		    "u%zu@remote.example,", i);
	text[len - 1] = '\n';
	table_free(f->cfg.domains[1].aliases);
	f->cfg.domains[1].aliases = mk(1, text);
	assert_int_equal(resolve_rcpt(&f->cfg, &p, 0, f->out, 1000, &f->n),
	    RESOLVE_TOO_MANY);
	text[len - 1] = '\0';
	p2 = strrchr(text, ',');
	p2[0] = '\n';
	p2[1] = '\0';
	table_free(f->cfg.domains[1].aliases);
	f->cfg.domains[1].aliases = mk(1, text);
	assert_int_equal(resolve_rcpt(&f->cfg, &p, 0, f->out, 1000, &f->n),
	    RESOLVE_OK);
	assert_int_equal(f->n, RESOLVE_MAX_DEST);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(user_plain), T(user_tag), T(postmaster), T(unknown_and_catchall),
		T(alias_several), T(alias_remote), T(alias_loops), T(self_alias),
		T(relay), T(no_reroute), T(address_literal), T(too_many),
		T(too_many_big),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
