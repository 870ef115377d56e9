/* Unit tests for src/smtp/parse.c: command lines, paths, HELO, UTF-8. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "smtp/parse.h"

#define LEN_STR ((size_t)-1)	/* take the length with strlen() */

/* Like assert_int_equal, naming the table case when it fails. */
#define EXPECT_INT(what, got, want) do {				\
	long long got_ = (long long)(got), want_ = (long long)(want);	\
	if (got_ != want_)						\
		print_error("%s: got %lld, want %lld\n", (what), got_,	\
		    want_);						\
	assert_int_equal(got_, want_);					\
} while (0)

static size_t
case_len(const char *s, size_t len)
{
	return len == LEN_STR ? strlen(s) : len;
}

/* ---- smtp_parse_cmd ---- */

static const struct {
	const char    *line;
	size_t         len;
	int            rc;
	enum smtp_verb verb;
	const char    *arg;
} cmd_cases[] = {
	{ "HELO example.com", LEN_STR, 0, SMTP_VERB_HELO, "example.com" },
	{ "ehlo   example.com  \t", LEN_STR, 0, SMTP_VERB_EHLO, "example.com" },
	{ "HELO\t\thost", LEN_STR, 0, SMTP_VERB_HELO, "host" },
	{ "MaIl FROM:<a@b.example>", LEN_STR, 0, SMTP_VERB_MAIL, "FROM:<a@b.example>" },
	{ "rcpt\tTO:<x@y.example> NOTIFY=NEVER", LEN_STR, 0, SMTP_VERB_RCPT,
	  "TO:<x@y.example> NOTIFY=NEVER" },
	{ "DATA", LEN_STR, 0, SMTP_VERB_DATA, "" },
	{ "data ", LEN_STR, 0, SMTP_VERB_DATA, "" },
	{ "BDAT 100 LAST", LEN_STR, 0, SMTP_VERB_BDAT, "100 LAST" },
	{ "RSET", LEN_STR, 0, SMTP_VERB_RSET, "" },
	{ "noop anything", LEN_STR, 0, SMTP_VERB_NOOP, "anything" },
	{ "Quit", LEN_STR, 0, SMTP_VERB_QUIT, "" },
	{ "VRFY bob", LEN_STR, 0, SMTP_VERB_VRFY, "bob" },
	{ "EXPN staff", LEN_STR, 0, SMTP_VERB_EXPN, "staff" },
	{ "help", LEN_STR, 0, SMTP_VERB_HELP, "" },
	{ "StartTLS", LEN_STR, 0, SMTP_VERB_STARTTLS, "" },
	{ "AUTH PLAIN AGJvYgBzZWNyZXQ=", LEN_STR, 0, SMTP_VERB_AUTH,
	  "PLAIN AGJvYgBzZWNyZXQ=" },
	{ "MAILFROM:<a@b.example>", LEN_STR, 0, SMTP_VERB_UNKNOWN,
	  "" },
	{ "MAIL:", LEN_STR, 0, SMTP_VERB_UNKNOWN, "" },
	{ "XYZZY plugh", LEN_STR, 0, SMTP_VERB_UNKNOWN, "plugh" },
	{ "", LEN_STR, 0, SMTP_VERB_UNKNOWN, "" },
	{ " MAIL FROM:<>", LEN_STR, 0, SMTP_VERB_UNKNOWN, "MAIL FROM:<>" },
	{ "RCPT TO:<j\xc3\xb6@x.example>", LEN_STR, 0, SMTP_VERB_RCPT,
	  "TO:<j\xc3\xb6@x.example>" },
	/* The length rules, not a NUL: "QUITX" cut to 4 is QUIT. */
	{ "QUITX", 4, 0, SMTP_VERB_QUIT, "" },
	{ "QUITX", 3, 0, SMTP_VERB_UNKNOWN, "" },
	{ "MAIL FROM:<a\0@b>", 16, -1, SMTP_VERB_UNKNOWN, NULL },
	{ "NOOP \x01", LEN_STR, -1, SMTP_VERB_UNKNOWN, NULL },
	{ "NOOP \x7f", LEN_STR, -1, SMTP_VERB_UNKNOWN, NULL },
	{ "NOOP x\r", LEN_STR, -1, SMTP_VERB_UNKNOWN, NULL },
	{ "NOOP x\ny", LEN_STR, -1, SMTP_VERB_UNKNOWN, NULL },
};

static void
test_cmd_table(void **state)
{
	struct smtp_cmd cmd;
	size_t i, len;

	(void)state;
	for (i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
		len = case_len(cmd_cases[i].line, cmd_cases[i].len);
		EXPECT_INT(cmd_cases[i].line, smtp_parse_cmd(cmd_cases[i].line,
		    len, &cmd), cmd_cases[i].rc);
		if (cmd_cases[i].rc != 0)
			continue;
		EXPECT_INT(cmd_cases[i].line, cmd.verb, cmd_cases[i].verb);
		if (cmd_cases[i].verb == SMTP_VERB_UNKNOWN &&
		    cmd_cases[i].arg[0] == '\0')
			continue;	/* the argument of junk is unspecified */
		assert_int_equal(cmd.arglen, strlen(cmd_cases[i].arg));
		assert_memory_equal(cmd.arg, cmd_cases[i].arg, cmd.arglen);
	}
}

static void
test_verb_name(void **state)
{
	(void)state;
	assert_string_equal(smtp_verb_name(SMTP_VERB_MAIL), "MAIL");
	assert_string_equal(smtp_verb_name(SMTP_VERB_STARTTLS), "STARTTLS");
	assert_string_equal(smtp_verb_name(SMTP_VERB_AUTH), "AUTH");
	assert_string_equal(smtp_verb_name(SMTP_VERB_UNKNOWN), "UNKNOWN");
	assert_string_equal(smtp_verb_name((enum smtp_verb)99), "UNKNOWN");
}

/* ---- smtp_parse_mailarg ---- */

#define F_NULL	1
#define F_PM	2
#define F_UTF8	4
#define F_LIT	8

struct ma_case {
	const char          *arg;
	const char          *prefix;
	enum smtp_parse_err  err;
	const char          *addr;	/* on OK */
	const char          *local;
	const char          *domain;
	int                  flags;
	size_t               nparams;
	const char          *why;	/* on error, NULL: not checked */
};

#define OK(a, p, addr, local, dom, fl, np) \
	{ a, p, SMTP_PARSE_OK, addr, local, dom, fl, np, NULL }
#define BAD(a, p, e, why) { a, p, e, NULL, NULL, NULL, 0, 0, why }

static const struct ma_case ma_cases[] = {
	OK("FROM:<user@example.com>", "FROM:", "user@example.com", "user",
	    "example.com", 0, 0),
	OK("FROM: <user@example.com>", "FROM:", "user@example.com", "user",
	    "example.com", 0, 0),
	OK("from:<User@Example.COM>", "FROM:", "User@Example.COM", "User",
	    "Example.COM", 0, 0),
	OK("To:<a.b-c+d@x-y.example>", "TO:", "a.b-c+d@x-y.example",
	    "a.b-c+d", "x-y.example", 0, 0),
	BAD("FROM:  <user@example.com>", "FROM:", SMTP_PARSE_SYNTAX,
	    "missing angle brackets"),
	BAD("FROM:user@example.com", "FROM:", SMTP_PARSE_SYNTAX,
	    "missing angle brackets"),
	BAD("FROM:<user@example.com", "FROM:", SMTP_PARSE_SYNTAX,
	    "missing angle brackets"),
	BAD("FROM:<user", "FROM:", SMTP_PARSE_SYNTAX, "missing angle brackets"),
	BAD("FROM:", "FROM:", SMTP_PARSE_SYNTAX, "missing angle brackets"),
	BAD("TO :<a@b.example>", "TO:", SMTP_PARSE_SYNTAX, NULL),
	BAD("TO<a@b.example>", "TO:", SMTP_PARSE_SYNTAX, NULL),
	BAD("", "TO:", SMTP_PARSE_SYNTAX, NULL),
	BAD("TO:<a@b.example>", "FROM:", SMTP_PARSE_SYNTAX, NULL),
	/* Null path and Postmaster. */
	OK("FROM:<>", "FROM:", "", "", "", F_NULL, 0),
	OK("FROM:<> BODY=8BITMIME", "FROM:", "", "", "", F_NULL, 1),
	BAD("TO:<>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	OK("TO:<Postmaster>", "TO:", "", "", "", F_PM, 0),
	OK("TO:<pOsTmAsTeR>", "TO:", "", "", "", F_PM, 0),
	BAD("FROM:<Postmaster>", "FROM:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<\"Postmaster\">", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<@a.example:Postmaster>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	OK("TO:<postmaster@example.com>", "TO:", "postmaster@example.com",
	    "postmaster", "example.com", 0, 0),
	BAD("TO:<user>", "TO:", SMTP_PARSE_ADDRESS, "address lacks a domain"),
	/* The relay tricks. */
	OK("TO:<user%other.example@local.test>", "TO:",
	    "user%other.example@local.test", "user%other.example",
	    "local.test", 0, 0),
	OK("TO:<\"user@other.example\"@local.test>", "TO:",
	    "\"user@other.example\"@local.test", "user@other.example",
	    "local.test", 0, 0),
	BAD("TO:<user@other.example@local.test>", "TO:", SMTP_PARSE_ADDRESS,
	    "malformed address"),
	OK("TO:<@local.test:user@other.example>", "TO:", "user@other.example",
	    "user", "other.example", 0, 0),
	OK("TO:<@a.example,@b.example:user@c.example>", "TO:",
	    "user@c.example", "user", "c.example", 0, 0),
	BAD("TO:<@a.example,b.example:user@c.example>", "TO:",
	    SMTP_PARSE_ADDRESS, "malformed source route"),
	BAD("TO:<@a..example:user@c.example>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<@[192.0.2.1]:user@c.example>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<@a.example user@c.example>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<user@local.test.>", "TO:", SMTP_PARSE_ADDRESS,
	    "malformed domain"),
	BAD("TO:<user@.local.test>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<user@>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<@local.test>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<user@exa_mple.com>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<user@-example.com>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<user@example-.com>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	OK("TO:<user@3com.example>", "TO:", "user@3com.example", "user",
	    "3com.example", 0, 0),
	/* Address literals. */
	OK("TO:<user@[127.0.0.1]>", "TO:", "user@[127.0.0.1]", "user",
	    "[127.0.0.1]", F_LIT, 0),
	BAD("TO:<user@[127.0.0.256]>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<user@[127.0.0]>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<user@[127.0.0.1>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	OK("TO:<user@[IPv6:2001:db8::1]>", "TO:", "user@[IPv6:2001:db8::1]",
	    "user", "[IPv6:2001:db8::1]", F_LIT, 0),
	OK("TO:<user@[ipv6:::ffff:192.0.2.1]>", "TO:",
	    "user@[ipv6:::ffff:192.0.2.1]", "user", "[ipv6:::ffff:192.0.2.1]",
	    F_LIT, 0),
	OK("TO:<user@[IPv6:1:2:3:4:5:6:7:8]>", "TO:",
	    "user@[IPv6:1:2:3:4:5:6:7:8]", "user", "[IPv6:1:2:3:4:5:6:7:8]",
	    F_LIT, 0),
	BAD("TO:<user@[IPv6:2001:db8:::1]>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<user@[IPv6:2001:db8::g]>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<user@[IPv6:1:2:3:4:5:6:7:8:9]>", "TO:", SMTP_PARSE_ADDRESS,
	    NULL),
	BAD("TO:<user@[IPv6:127.0.0.1]>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<user@[IPv6:]>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	OK("TO:<user@[x-tag:any-thing]>", "TO:", "user@[x-tag:any-thing]",
	    "user", "[x-tag:any-thing]", F_LIT, 0),
	BAD("TO:<user@[x-:y]>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<user@[x-tag:]>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<user@[]>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	/* Local parts. */
	BAD("TO:<a..b@example.com>", "TO:", SMTP_PARSE_ADDRESS,
	    "malformed local part"),
	BAD("TO:<.a@example.com>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<a.@example.com>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<a b@example.com>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<a(b)@example.com>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	OK("TO:<\"a b\"@example.com>", "TO:", "\"a b\"@example.com", "a b",
	    "example.com", 0, 0),
	OK("TO:<\"a\\\"b\\\\c\"@example.com>", "TO:",
	    "\"a\\\"b\\\\c\"@example.com", "a\"b\\c", "example.com", 0, 0),
	OK("TO:<\"\"@example.com>", "TO:", "\"\"@example.com", "",
	    "example.com", 0, 0),
	OK("TO:<\"a>b\"@example.com>", "TO:", "\"a>b\"@example.com", "a>b",
	    "example.com", 0, 0),
	BAD("TO:<\"a\tb\"@example.com>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<\"a\\\tb\"@example.com>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<\"abc@example.com>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<\"a\"b@example.com>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	/* UTF-8 (RFC 6531). */
	OK("TO:<j\xc3\xb6" "e@ex\xc3\xa4mple.com>", "TO:",
	    "j\xc3\xb6" "e@ex\xc3\xa4mple.com", "j\xc3\xb6" "e",
	    "ex\xc3\xa4mple.com", F_UTF8, 0),
	OK("TO:<\"\xe2\x82\xac \"@example.com>", "TO:",
	    "\"\xe2\x82\xac \"@example.com", "\xe2\x82\xac ", "example.com",
	    F_UTF8, 0),
	OK("TO:<@\xc3\xa4.example:a@b.example>", "TO:", "a@b.example", "a",
	    "b.example", F_UTF8, 0),
	BAD("TO:<j\xc3@example.com>", "TO:", SMTP_PARSE_BAD_UTF8,
	    "ill-formed UTF-8"),
	BAD("TO:<j\xc0\xaf" "e@example.com>", "TO:", SMTP_PARSE_BAD_UTF8, NULL),
	BAD("TO:<a@\xed\xa0\x80.example>", "TO:", SMTP_PARSE_BAD_UTF8, NULL),
	BAD("TO:<a@[\xc3\xa4]>", "TO:", SMTP_PARSE_ADDRESS, NULL),
	BAD("TO:<\"a\\\xc3\xa4\"@example.com>", "TO:", SMTP_PARSE_ADDRESS,
	    NULL),
	/* Parameters. */
	OK("TO:<a@b.example> NOTIFY=NEVER", "TO:", "a@b.example", "a",
	    "b.example", 0, 1),
	OK("FROM:<a@b.example> SIZE=1000 BODY=8BITMIME SMTPUTF8", "FROM:",
	    "a@b.example", "a", "b.example", 0, 3),
	OK("FROM:<a@b.example>  SIZE=1  X-9=y ", "FROM:", "a@b.example", "a",
	    "b.example", 0, 2),
	OK("FROM:<a@b.example> ENVID=\xc3\xa4<x>", "FROM:", "a@b.example",
	    "a", "b.example", 0, 1),
	BAD("FROM:<a@b.example>SIZE=1", "FROM:", SMTP_PARSE_PARAM,
	    "bad parameter syntax"),
	BAD("FROM:<a@b.example> SIZE=", "FROM:", SMTP_PARSE_PARAM, NULL),
	BAD("FROM:<a@b.example> SIZE==1", "FROM:", SMTP_PARSE_PARAM, NULL),
	BAD("FROM:<a@b.example> SIZE=1=2", "FROM:", SMTP_PARSE_PARAM, NULL),
	BAD("FROM:<a@b.example> -SIZE=1", "FROM:", SMTP_PARSE_PARAM, NULL),
	BAD("FROM:<a@b.example> SI_ZE=1", "FROM:", SMTP_PARSE_PARAM, NULL),
	BAD("FROM:<a@b.example> =1", "FROM:", SMTP_PARSE_PARAM, NULL),
	BAD("FROM:<a@b.example>\tSIZE=1", "FROM:", SMTP_PARSE_PARAM, NULL),
	BAD("FROM:<a@b.example> ENVID=a\x7f", "FROM:", SMTP_PARSE_PARAM, NULL),
	BAD("FROM:<a@b.example> ENVID=\xff", "FROM:", SMTP_PARSE_BAD_UTF8,
	    NULL),
	BAD("FROM:<a@b.example>>", "FROM:", SMTP_PARSE_PARAM, NULL),
	OK("FROM:<a@b.example> A B C D E F G H I J K L M N O P", "FROM:",
	    "a@b.example", "a", "b.example", 0, 16),
	BAD("FROM:<a@b.example> A B C D E F G H I J K L M N O P Q", "FROM:",
	    SMTP_PARSE_PARAM, "too many parameters"),
};

static void
check_ma_case(const struct ma_case *c)
{
	struct smtp_mailarg ma;
	const char *why = NULL;
	enum smtp_parse_err err;

	err = smtp_parse_mailarg(c->arg, strlen(c->arg), c->prefix, &ma, &why);
	EXPECT_INT(c->arg, err, c->err);
	if (c->err != SMTP_PARSE_OK) {
		assert_non_null(why);
		if (c->why != NULL)
			assert_string_equal(why, c->why);
		return;
	}
	assert_string_equal(ma.path.addr, c->addr);
	assert_string_equal(ma.path.local, c->local);
	assert_string_equal(ma.path.domain, c->domain);
	assert_int_equal(ma.path.local_len, c->addr[0] == '\0' ? 0 :
	    strlen(c->addr) - strlen(c->domain) - 1);
	assert_int_equal(ma.path.null, (c->flags & F_NULL) != 0);
	assert_int_equal(ma.path.postmaster, (c->flags & F_PM) != 0);
	assert_int_equal(ma.path.utf8, (c->flags & F_UTF8) != 0);
	assert_int_equal(ma.path.domain_literal, (c->flags & F_LIT) != 0);
	assert_int_equal(ma.nparams, c->nparams);
}

static void
test_mailarg_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ma_cases) / sizeof(ma_cases[0]); i++)
		check_ma_case(&ma_cases[i]);
}

/* The parser must stop at len: the ">" past it does not count. */
static void
test_mailarg_no_nul(void **state)
{
	struct smtp_mailarg ma;
	const char *arg = "TO:<a@b.example>";

	(void)state;
	assert_int_equal(smtp_parse_mailarg(arg, strlen(arg) - 1, "TO:", &ma,
	    NULL), SMTP_PARSE_SYNTAX);
	assert_int_equal(smtp_parse_mailarg(arg, strlen(arg), "to:", &ma,
	    NULL), SMTP_PARSE_OK);
}

/* Fills out with n octets of a valid domain: labels of "d" split by dots. */
static void
make_domain(char *out, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		out[i] = (i % 50 == 49 && i + 1 < n) ? '.' : 'd';
	out[n] = '\0';
}

/* Runs "TO:<" local "@" domain ">" with the given part lengths. */
static enum smtp_parse_err
try_lengths(size_t llen, size_t dlen, struct smtp_mailarg *ma,
    const char **why)
{
	char arg[1024], dom[600];
	size_t n;

	assert_true(llen < 500 && dlen < sizeof(dom));
	memcpy(arg, "TO:<", 4);
	memset(arg + 4, 'l', llen);
	n = 4 + llen;
	arg[n++] = '@';
	make_domain(dom, dlen);
	memcpy(arg + n, dom, dlen);
	n += dlen;
	arg[n++] = '>';
	return smtp_parse_mailarg(arg, n, "TO:", ma, why);
}

static void
test_mailarg_limits(void **state)
{
	struct smtp_mailarg ma;
	const char *why;
	char arg[600];
	size_t n;

	(void)state;
	/* Local part: 64 octets, 4.5.3.1.1. */
	assert_int_equal(try_lengths(64, 20, &ma, &why), SMTP_PARSE_OK);
	assert_int_equal(strlen(ma.path.local), 64);
	assert_int_equal(ma.path.local_len, 64);
	assert_int_equal(try_lengths(65, 20, &ma, &why), SMTP_PARSE_TOO_LONG);
	assert_string_equal(why, "local part too long");
	/* Domain: 255 octets, 4.5.3.1.2 (the path limit comes first here). */
	assert_int_equal(try_lengths(1, 255, &ma, &why), SMTP_PARSE_TOO_LONG);
	assert_string_equal(why, "path too long");
	assert_int_equal(try_lengths(1, 256, &ma, &why), SMTP_PARSE_TOO_LONG);
	assert_string_equal(why, "domain too long");
	/* Path: 256 octets with "<" and ">", 4.5.3.1.3. */
	assert_int_equal(try_lengths(64, 256 - 3 - 64, &ma, &why),
	    SMTP_PARSE_OK);
	assert_int_equal(strlen(ma.path.addr), 254);
	assert_int_equal(strlen(ma.path.domain), 189);
	assert_int_equal(try_lengths(64, 257 - 3 - 64, &ma, &why),
	    SMTP_PARSE_TOO_LONG);
	assert_string_equal(why, "path too long");
	/* A source route counts toward the path length: 256 then 257. */
	memcpy(arg, "TO:<@", 5);
	make_domain(arg + 5, 247);
	memcpy(arg + 5 + 247, ":a@b.c>", 7);
	assert_int_equal(smtp_parse_mailarg(arg, 5 + 247 + 7, "TO:", &ma, &why),
	    SMTP_PARSE_OK);
	assert_string_equal(ma.path.addr, "a@b.c");
	make_domain(arg + 5, 248);
	memcpy(arg + 5 + 248, ":a@b.c>", 7);
	assert_int_equal(smtp_parse_mailarg(arg, 5 + 248 + 7, "TO:", &ma, &why),
	    SMTP_PARSE_TOO_LONG);
	assert_string_equal(why, "path too long");
	/* A quoted local part counts as written, quotes included. */
	n = (size_t)snprintf(arg, sizeof(arg), "TO:<\"");
	memset(arg + n, 'q', 62);
	n += 62;
	memcpy(arg + n, "\"@x.example>", 12);
	n += 12;
	assert_int_equal(smtp_parse_mailarg(arg, n, "TO:", &ma, &why),
	    SMTP_PARSE_OK);
	assert_int_equal(ma.path.local_len, 64);
	assert_int_equal(strlen(ma.path.local), 62);
	memmove(arg + 6, arg + 5, n - 5);
	n++;
	assert_int_equal(smtp_parse_mailarg(arg, n, "TO:", &ma, &why),
	    SMTP_PARSE_TOO_LONG);
}

static void
test_param_find(void **state)
{
	struct smtp_mailarg ma;
	const char *arg = "FROM:<a@b.example> SIZE=1000 smtputf8 BODY=8BITMIME";
	const struct smtp_param *p;

	(void)state;
	assert_int_equal(smtp_parse_mailarg(arg, strlen(arg), "FROM:", &ma,
	    NULL), SMTP_PARSE_OK);
	assert_int_equal(ma.nparams, 3);
	p = smtp_param_find(&ma, "size");
	assert_non_null(p);
	assert_int_equal(p->keylen, 4);
	assert_int_equal(p->vallen, 4);
	assert_memory_equal(p->val, "1000", 4);
	p = smtp_param_find(&ma, "SMTPUTF8");
	assert_non_null(p);
	assert_null(p->val);
	assert_int_equal(p->vallen, 0);
	p = smtp_param_find(&ma, "Body");
	assert_non_null(p);
	assert_memory_equal(p->val, "8BITMIME", 8);
	assert_null(smtp_param_find(&ma, "SIZ"));
	assert_null(smtp_param_find(&ma, "SIZE1"));
	assert_null(smtp_param_find(&ma, ""));
}

/* ---- smtp_check_helo ---- */

static const struct {
	const char *arg;
	size_t      len;
	int         utf8;
	int         rc;
} helo_cases[] = {
	{ "example.com", LEN_STR, 0, 0 },
	{ "localhost", LEN_STR, 0, 0 },
	{ "my_host", LEN_STR, 0, 0 },
	{ "_my_host.example.com", LEN_STR, 0, 0 },
	{ "xn--bcher-kva.example", LEN_STR, 0, 0 },
	{ "123abc", LEN_STR, 0, 0 },
	{ "Mail.Example.COM", LEN_STR, 0, 0 },
	{ "example.com.", LEN_STR, 0, -1 },
	{ "", LEN_STR, 0, -1 },
	{ ".", LEN_STR, 0, -1 },
	{ "exa mple", LEN_STR, 0, -1 },
	{ "host\t", LEN_STR, 0, -1 },
	{ "host\0x", 6, 0, -1 },
	{ "-host", LEN_STR, 0, -1 },
	{ "host-", LEN_STR, 0, -1 },
	{ "a..b", LEN_STR, 0, -1 },
	{ "a@b", LEN_STR, 0, -1 },
	{ "[192.0.2.1]", LEN_STR, 0, 0 },
	{ "[IPv6:::1]", LEN_STR, 0, 0 },
	{ "[IPv6:fe80::1%eth0]", LEN_STR, 0, -1 },
	{ "[IPv6:zz]", LEN_STR, 0, -1 },
	{ "[192.0.2.1]x", LEN_STR, 0, -1 },
	{ "[192.0.2.1", LEN_STR, 0, -1 },
	{ "192.0.2.1", LEN_STR, 0, -1 },
	{ "12345", LEN_STR, 0, -1 },
	{ "::1", LEN_STR, 0, -1 },
	{ "ex\xc3\xa4mple.com", LEN_STR, 1, 0 },
	{ "ex\xc3\xa4mple.com", LEN_STR, 0, -1 },
	{ "ex\xc3mple.com", LEN_STR, 1, -1 },
	{ "example.comX", 11, 0, 0 },
};

static void
test_helo_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(helo_cases) / sizeof(helo_cases[0]); i++) {
		EXPECT_INT(helo_cases[i].arg, smtp_check_helo(helo_cases[i].arg,
		    case_len(helo_cases[i].arg, helo_cases[i].len),
		    helo_cases[i].utf8), helo_cases[i].rc);
	}
}

static void
test_helo_limits(void **state)
{
	char dom[300];

	(void)state;
	make_domain(dom, 255);
	assert_int_equal(smtp_check_helo(dom, 255, 0), 0);
	make_domain(dom, 256);
	assert_int_equal(smtp_check_helo(dom, 256, 0), -1);
}

/* ---- smtp_utf8_valid ---- */

static const struct {
	const char *s;
	size_t      len;
	int         valid;
} utf8_cases[] = {
	{ "", LEN_STR, 1 },
	{ "abc", LEN_STR, 1 },
	{ "\0", 1, 1 },
	{ "\xc3\xa9", LEN_STR, 1 },		/* U+00E9 */
	{ "\xe2\x82\xac", LEN_STR, 1 },		/* U+20AC */
	{ "\xe0\xa0\x80", LEN_STR, 1 },		/* U+0800, smallest 3-octet */
	{ "\xed\x9f\xbf", LEN_STR, 1 },		/* U+D7FF */
	{ "\xee\x80\x80", LEN_STR, 1 },		/* U+E000 */
	{ "\xf0\x90\x80\x80", LEN_STR, 1 },	/* U+10000 */
	{ "\xf4\x8f\xbf\xbf", LEN_STR, 1 },	/* U+10FFFF */
	{ "\xc3", LEN_STR, 0 },			/* truncated */
	{ "a\xe2\x82", LEN_STR, 0 },		/* truncated */
	{ "\xe2\x82\xac", 2, 0 },		/* truncated by len */
	{ "\xc0\xaf", LEN_STR, 0 },		/* overlong "/" */
	{ "\xc1\xbf", LEN_STR, 0 },		/* overlong */
	{ "\xe0\x80\xaf", LEN_STR, 0 },		/* overlong */
	{ "\xe0\x9f\xbf", LEN_STR, 0 },		/* overlong U+07FF */
	{ "\xf0\x80\x80\xaf", LEN_STR, 0 },	/* overlong */
	{ "\xf0\x8f\xbf\xbf", LEN_STR, 0 },	/* overlong U+FFFF */
	{ "\xed\xa0\x80", LEN_STR, 0 },		/* U+D800 surrogate */
	{ "\xed\xbf\xbf", LEN_STR, 0 },		/* U+DFFF surrogate */
	{ "\xf4\x90\x80\x80", LEN_STR, 0 },	/* U+110000 */
	{ "\xf5\x80\x80\x80", LEN_STR, 0 },
	{ "\xff", LEN_STR, 0 },
	{ "\x80", LEN_STR, 0 },			/* lone continuation */
	{ "\xe2\x28\xa1", LEN_STR, 0 },		/* bad continuation */
	{ "\xc3\xa9\xc3", LEN_STR, 0 },
};

static void
test_utf8_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
		EXPECT_INT("utf8 table", smtp_utf8_valid(utf8_cases[i].s,
		    case_len(utf8_cases[i].s, utf8_cases[i].len)),
		    utf8_cases[i].valid);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cmd_table),
		cmocka_unit_test(test_verb_name),
		cmocka_unit_test(test_mailarg_table),
		cmocka_unit_test(test_mailarg_no_nul),
		cmocka_unit_test(test_mailarg_limits),
		cmocka_unit_test(test_param_find),
		cmocka_unit_test(test_helo_table),
		cmocka_unit_test(test_helo_limits),
		cmocka_unit_test(test_utf8_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
