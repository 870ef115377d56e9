/*
 * fuzz_smtp_cmd — one SMTP command line through smtp_parse_cmd, then its
 * argument through smtp_parse_mailarg (MAIL, RCPT) and smtp_check_helo,
 * checking the invariants the session relies on.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "smtp/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

/* p[0..n) lies inside [base, base + size). */
static int
inside(const char *p, size_t n, const char *base, size_t size)
{
	return p >= base && n <= size && (size_t)(p - base) <= size - n;
}

static void
check_path(const struct smtp_path *p)
{
	size_t alen;

	CHECK(memchr(p->addr, '\0', sizeof(p->addr)) != NULL);
	CHECK(memchr(p->local, '\0', sizeof(p->local)) != NULL);
	CHECK(memchr(p->domain, '\0', sizeof(p->domain)) != NULL);
	alen = strlen(p->addr);
	CHECK(alen <= SMTP_PATH_MAX);
	CHECK(p->local_len <= alen);
	CHECK(smtp_utf8_valid(p->addr, alen));
	if (p->null || p->postmaster) {
		CHECK(alen == 0 && p->local_len == 0 && p->domain[0] == '\0');
		CHECK(!(p->null && p->postmaster));
		return;
	}
	CHECK(p->local_len <= SMTP_LOCAL_MAX);
	CHECK(strlen(p->local) <= p->local_len);
	CHECK(p->addr[p->local_len] == '@');
	CHECK(strcmp(p->addr + p->local_len + 1, p->domain) == 0);
	CHECK(p->domain_literal == (p->domain[0] == '['));
	if (!p->utf8)
		for (size_t i = 0; i < alen; i++)
			CHECK((unsigned char)p->addr[i] < 0x80);
}

/* The stored form must parse back to itself: "<" addr ">". */
static void
check_roundtrip(const struct smtp_path *p, const char *prefix)
{
	char arg[SMTP_PATH_MAX + 16];
	struct smtp_mailarg again;
	int n;

	if (p->null || p->postmaster)
		return;
	n = snprintf(arg, sizeof(arg), "%s<%s>", prefix, p->addr);
	CHECK(n > 0 && (size_t)n < sizeof(arg));
	CHECK(smtp_parse_mailarg(arg, (size_t)n, prefix, &again, NULL) ==
	    SMTP_PARSE_OK);
	CHECK(strcmp(again.path.addr, p->addr) == 0);
	CHECK(strcmp(again.path.local, p->local) == 0);
	CHECK(strcmp(again.path.domain, p->domain) == 0);
	CHECK(again.path.local_len == p->local_len);
	CHECK(again.path.domain_literal == p->domain_literal);
	CHECK(again.nparams == 0);
}

static void
check_mailarg(const char *arg, size_t len, const char *prefix)
{
	struct smtp_mailarg ma;
	const char *why = NULL;
	size_t i;

	if (smtp_parse_mailarg(arg, len, prefix, &ma, &why) != SMTP_PARSE_OK) {
		CHECK(why != NULL && why[0] != '\0');
		return;
	}
	check_path(&ma.path);
	check_roundtrip(&ma.path, prefix);
	CHECK(ma.nparams <= SMTP_PARAMS_MAX);
	CHECK(smtp_param_find(&ma, "") == NULL);
	for (i = 0; i < ma.nparams; i++) {
		CHECK(ma.params[i].keylen > 0);
		CHECK(inside(ma.params[i].key, ma.params[i].keylen, arg, len));
		if (ma.params[i].val != NULL) {
			CHECK(ma.params[i].vallen > 0);
			CHECK(inside(ma.params[i].val, ma.params[i].vallen,
			    arg, len));
		} else
			CHECK(ma.params[i].vallen == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	struct smtp_cmd cmd;
	int plain, utf8;

	if (smtp_parse_cmd(line, size, &cmd) == -1)
		return 0;
	CHECK(inside(cmd.arg, cmd.arglen, line, size));
	CHECK(strcmp(smtp_verb_name(cmd.verb), "") != 0);
	if (cmd.verb == SMTP_VERB_MAIL)
		check_mailarg(cmd.arg, cmd.arglen, "FROM:");
	else if (cmd.verb == SMTP_VERB_RCPT)
		check_mailarg(cmd.arg, cmd.arglen, "TO:");
	/* A name good without UTF-8 stays good with it. */
	plain = smtp_check_helo(cmd.arg, cmd.arglen, 0);
	utf8 = smtp_check_helo(cmd.arg, cmd.arglen, 1);
	CHECK(plain == 0 || plain == -1);
	CHECK(utf8 == 0 || utf8 == -1);
	CHECK(plain == -1 || utf8 == 0);
	return 0;
}
