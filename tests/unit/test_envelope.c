/* Unit tests for src/queue/envelope.c: golden text, round trips, refusals. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/envelope.h"

#define BIG	(16u * 1024 * 1024)

static const char golden[] =
    "version: 3\n"
    "id: 0187a3f2c4d1e00a\n"
    "created: 1700000000\n"
    "sender: alice@example.org\n"
    "helo: mail.example.org\n"
    "client: 192.0.2.1\n"
    "proto: ESMTPS\n"
    "body: 8bitmime\n"
    "smtputf8: 0\n"
    "size: 12345\n"
    "ret: hdrs\n"
    "envid: QQ314159%20x+2By\n"
    "next_attempt: 1700000600\n"
    "warned: 1\n"
    "dsn_kind: none\n"
    "prepend: Authentication-Results:%20mx.example.test;%20spf=pass%0D%0A%09smtp.mailfrom=a@b%0D%0A\n"
    "quarantine: 1\n"
    "rcpt: pending local 0 bob example.test bob@example.test "
    "Bob@Example.TEST - 0 - - -\n"
    "rcpt: failed remote 3 - - carol@example.net carol@example.net "
    "550%205.1.1%20no%20such%20user 6 rfc822;Carol@example.net "
    "mx.example.net 5.1.1\n"
    "end: 1\n";

/* The same envelope as written by version 2: no prepend, no quarantine. */
static const char golden_v2[] =
    "version: 2\n"
    "id: 0187a3f2c4d1e00a\n"
    "created: 1700000000\n"
    "sender: alice@example.org\n"
    "helo: mail.example.org\n"
    "client: 192.0.2.1\n"
    "proto: ESMTPS\n"
    "body: 8bitmime\n"
    "smtputf8: 0\n"
    "size: 12345\n"
    "ret: hdrs\n"
    "envid: QQ314159%20x+2By\n"
    "next_attempt: 1700000600\n"
    "warned: 1\n"
    "dsn_kind: none\n"
    "rcpt: pending local 0 bob example.test bob@example.test "
    "Bob@Example.TEST - 0 - - -\n"
    "rcpt: failed remote 3 - - carol@example.net carol@example.net "
    "550%205.1.1%20no%20such%20user 6 rfc822;Carol@example.net "
    "mx.example.net 5.1.1\n"
    "end: 1\n";

/* The same envelope as written by version 1: no DSN or retry data. */
static const char golden_v1[] =
    "version: 1\n"
    "id: 0187a3f2c4d1e00a\n"
    "created: 1700000000\n"
    "sender: alice@example.org\n"
    "helo: mail.example.org\n"
    "client: 192.0.2.1\n"
    "proto: ESMTPS\n"
    "body: 8bitmime\n"
    "smtputf8: 0\n"
    "size: 12345\n"
    "rcpt: pending local 0 bob example.test bob@example.test "
    "Bob@Example.TEST -\n"
    "rcpt: failed remote 3 - - carol@example.net carol@example.net "
    "550%205.1.1%20no%20such%20user\n"
    "end: 1\n";

#define PREPEND "Authentication-Results: mx.example.test; spf=pass\r\n\tsmtp.mailfrom=a@b\r\n"

static void
set_rcpt(struct envelope_rcpt *r, enum rcpt_state st, enum rcpt_kind k,
    uint32_t att, const char *user, const char *dom, const char *addr,
    const char *orig, const char *err)
{
	memset(r, 0, sizeof(*r));
	r->state = st;
	r->kind = k;
	r->attempts = att;
	snprintf(r->user, sizeof(r->user), "%s", user);
	snprintf(r->domain, sizeof(r->domain), "%s", dom);
	snprintf(r->addr, sizeof(r->addr), "%s", addr);
	snprintf(r->orig, sizeof(r->orig), "%s", orig);
	snprintf(r->last_error, sizeof(r->last_error), "%s", err);
}

static void
make_golden(struct envelope *e)
{
	struct envelope_rcpt r;

	envelope_init(e);
	memcpy(e->id, "0187a3f2c4d1e00a", QUEUE_ID_LEN + 1);
	e->created = 1700000000;
	snprintf(e->sender, sizeof(e->sender), "alice@example.org");
	snprintf(e->helo, sizeof(e->helo), "mail.example.org");
	snprintf(e->client_addr, sizeof(e->client_addr), "192.0.2.1");
	snprintf(e->proto, sizeof(e->proto), "ESMTPS");
	e->body_8bit = 1;
	e->size = 12345;
	set_rcpt(&r, RCPT_PENDING, RCPTK_LOCAL, 0, "bob", "example.test",
	    "bob@example.test", "Bob@Example.TEST", "");
	assert_int_equal(envelope_add_rcpt(e, &r), 0);
	set_rcpt(&r, RCPT_FAILED, RCPTK_REMOTE, 3, "", "",
	    "carol@example.net", "carol@example.net",
	    "550 5.1.1 no such user");
	r.notify = DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE;
	snprintf(r.orcpt, sizeof(r.orcpt), "rfc822;Carol@example.net");
	snprintf(r.remote_mta, sizeof(r.remote_mta), "mx.example.net");
	snprintf(r.status, sizeof(r.status), "5.1.1");
	assert_int_equal(envelope_add_rcpt(e, &r), 0);
	e->ret = DSN_RET_HDRS;
	snprintf(e->envid, sizeof(e->envid), "QQ314159 x+2By");
	e->next_attempt = 1700000600;
	e->warned = 1;
	e->dsn_kind = DSN_KIND_NONE;
	assert_int_equal(envelope_set_prepend(e, PREPEND, strlen(PREPEND)), 0);
	e->quarantine = 1;
}

/* make_golden without the version 3 data: what golden_v2 holds. */
static void
make_golden_v2(struct envelope *e)
{
	make_golden(e);
	e->version = 2;
	assert_int_equal(envelope_set_prepend(e, NULL, 0), 0);
	e->quarantine = 0;
}

/* make_golden without the version 2 data: what golden_v1 holds. */
static void
make_golden_v1(struct envelope *e)
{
	size_t i;

	make_golden_v2(e);
	e->version = 1;
	e->ret = DSN_RET_UNSPEC;
	e->envid[0] = '\0';
	e->next_attempt = 0;
	e->warned = 0;
	for (i = 0; i < e->nrcpts; i++) {
		e->rcpts[i].notify = 0;
		e->rcpts[i].orcpt[0] = '\0';
		e->rcpts[i].remote_mta[0] = '\0';
		e->rcpts[i].status[0] = '\0';
	}
}

static int
rcpt_equal(const struct envelope_rcpt *a, const struct envelope_rcpt *b)
{
	return a->state == b->state && a->kind == b->kind &&
	    a->attempts == b->attempts && strcmp(a->user, b->user) == 0 &&
	    strcmp(a->domain, b->domain) == 0 &&
	    strcmp(a->addr, b->addr) == 0 && strcmp(a->orig, b->orig) == 0 &&
	    strcmp(a->last_error, b->last_error) == 0 &&
	    a->notify == b->notify && strcmp(a->orcpt, b->orcpt) == 0 &&
	    strcmp(a->remote_mta, b->remote_mta) == 0 &&
	    strcmp(a->status, b->status) == 0;
}

static void
assert_env_equal(const struct envelope *a, const struct envelope *b)
{
	size_t i;

	assert_int_equal(a->version, b->version);
	assert_string_equal(a->id, b->id);
	assert_true(a->created == b->created);
	assert_string_equal(a->sender, b->sender);
	assert_string_equal(a->helo, b->helo);
	assert_string_equal(a->client_addr, b->client_addr);
	assert_string_equal(a->proto, b->proto);
	assert_int_equal(a->body_8bit, b->body_8bit);
	assert_int_equal(a->smtputf8, b->smtputf8);
	assert_true(a->size == b->size);
	assert_int_equal(a->ret, b->ret);
	assert_string_equal(a->envid, b->envid);
	assert_true(a->next_attempt == b->next_attempt);
	assert_int_equal(a->warned, b->warned);
	assert_int_equal(a->dsn_kind, b->dsn_kind);
	assert_int_equal(a->quarantine, b->quarantine);
	assert_true((a->prepend == NULL) == (b->prepend == NULL));
	if (a->prepend)
		assert_string_equal(a->prepend, b->prepend);
	assert_int_equal(a->nrcpts, b->nrcpts);
	for (i = 0; i < a->nrcpts; i++)
		assert_true(rcpt_equal(&a->rcpts[i], &b->rcpts[i]));
}

/* Encodes e, decodes it, checks every field, re-encodes byte for byte. */
static void
round_trip(const struct envelope *e)
{
	struct envelope d;
	struct buf b1, b2;
	const char *why = "unset";

	buf_init(&b1, BIG);
	buf_init(&b2, BIG);
	assert_int_equal(envelope_encode(e, &b1), 0);
	assert_int_equal(envelope_decode(b1.data, b1.len, &d, &why), 0);
	assert_null(why);
	assert_env_equal(e, &d);
	assert_int_equal(envelope_encode(&d, &b2), 0);
	assert_int_equal(b1.len, b2.len);
	assert_memory_equal(b1.data, b2.data, b1.len);
	envelope_free(&d);
	buf_free(&b1);
	buf_free(&b2);
}

static void
test_golden_encode(void **state)
{
	struct envelope e;
	struct buf b;

	(void)state;
	make_golden(&e);
	buf_init(&b, BIG);
	assert_int_equal(envelope_encode(&e, &b), 0);
	assert_int_equal(b.len, strlen(golden));
	assert_string_equal(b.data, golden);
	buf_free(&b);
	envelope_free(&e);
}

static void
test_golden_decode(void **state)
{
	struct envelope e, want;
	const char *why;

	(void)state;
	make_golden(&want);
	assert_int_equal(envelope_decode(golden, strlen(golden), &e, &why), 0);
	assert_env_equal(&want, &e);
	assert_string_equal(e.rcpts[1].last_error, "550 5.1.1 no such user");
	assert_string_equal(e.rcpts[1].user, "");
	assert_int_equal(e.rcpts[1].attempts, 3);
	envelope_free(&e);
	envelope_free(&want);
}

static void
test_round_trip_nasty(void **state)
{
	struct envelope e;
	struct envelope_rcpt r;
	char all[256];
	int i;

	(void)state;
	make_golden(&e);
	snprintf(e.sender, sizeof(e.sender), "%s", "");
	snprintf(e.helo, sizeof(e.helo), "-");
	memset(e.envid, '\n', DSN_ENVID_MAX);
	e.next_attempt = INT64_MAX;
	e.ret = DSN_RET_FULL;
	e.dsn_kind = DSN_KIND_SUCCESS;
	snprintf(e.client_addr, sizeof(e.client_addr), "2001:db8::1");
	snprintf(e.proto, sizeof(e.proto), "%%2D");
	e.created = INT64_MAX;
	e.size = UINT64_MAX;
	e.smtputf8 = 1;
	e.body_8bit = 0;
	/* Every octet 1..255 in one value. */
	for (i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	set_rcpt(&r, RCPT_HELD, RCPTK_REMOTE, UINT32_MAX, "a b", "-",
	    "\xc3\xa9l\xc3\xa8ve@\xc3\xa9xample.test", "x\r\ny%00z",
	    "%%%% - --  \t\x7f");
	assert_int_equal(envelope_add_rcpt(&e, &r), 0);
	set_rcpt(&r, RCPT_DELIVERED, RCPTK_LOCAL, 1, "-", "", "-", "", "");
	memcpy(r.last_error, all, 255);
	r.last_error[255] = '\0';
	assert_int_equal(envelope_add_rcpt(&e, &r), 0);
	/* Values at the exact length of their arrays. */
	set_rcpt(&r, RCPT_PENDING, RCPTK_LOCAL, 7, "", "", "", "", "");
	memset(r.user, '%', SMTP_LOCAL_MAX);
	memset(r.domain, ' ', SMTP_DOMAIN_MAX);
	memset(r.addr, 'a', SMTP_PATH_MAX);
	memset(r.orig, '\n', SMTP_PATH_MAX);
	memset(r.orcpt, '-', DSN_ORCPT_MAX);
	memset(r.remote_mta, '%', SMTP_DOMAIN_MAX);
	snprintf(r.status, sizeof(r.status), "4.999.999");
	r.notify = DSN_NOTIFY_NEVER;
	assert_int_equal(envelope_add_rcpt(&e, &r), 0);
	set_rcpt(&r, RCPT_FAILED, RCPTK_REMOTE, 2, "", "", "x@y", "", "");
	r.notify = DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY;
	snprintf(r.orcpt, sizeof(r.orcpt), "utf-8;\xc3\xa9 \x7f%%");
	snprintf(r.remote_mta, sizeof(r.remote_mta), "-");
	snprintf(r.status, sizeof(r.status), "2.0.0");
	assert_int_equal(envelope_add_rcpt(&e, &r), 0);
	round_trip(&e);
	envelope_free(&e);
}

static void
test_escaping_text(void **state)
{
	struct envelope e;
	struct buf b;

	(void)state;
	make_golden(&e);
	e.nrcpts = 0;
	snprintf(e.sender, sizeof(e.sender), "%s", "");
	snprintf(e.helo, sizeof(e.helo), "-");
	snprintf(e.client_addr, sizeof(e.client_addr), "a%%b c\r\n");
	snprintf(e.proto, sizeof(e.proto), "\xc3\xa9-\x7f");
	buf_init(&b, BIG);
	assert_int_equal(envelope_encode(&e, &b), 0);
	assert_non_null(strstr(b.data, "\nsender: -\n"));
	assert_non_null(strstr(b.data, "\nhelo: %2D\n"));
	assert_non_null(strstr(b.data, "\nclient: a%25b%20c%0D%0A\n"));
	assert_non_null(strstr(b.data, "\nproto: \xc3\xa9-%7F\n"));
	buf_free(&b);
	envelope_free(&e);
}

/* Golden text with line `from` replaced by `to` (to may be "" to drop it). */
static char *
edit(const char *from, const char *to)
{
	const char *p = strstr(golden, from);
	size_t n = strlen(golden) - strlen(from) + strlen(to) + 1;
	char *s = malloc(n);

	assert_non_null(p);
	assert_non_null(s);
	snprintf(s, n, "%.*s%s%s", (int)(p - golden), golden, to,
	    p + strlen(from));
	return s;
}

struct bad_case {
	const char *from, *to, *why;
};

static const struct bad_case bad_cases[] = {
	{ "version: 3\n", "version: 4\n", "unsupported version" },
	{ "version: 3\n", "version: 0\n", "unsupported version" },
	{ "version: 3\n", "version: 03\n", "bad version" },
	{ "version: 3\n", "", "version must be the first line" },
	{ "quarantine: 1\n", "quarantine: 2\n", "bad quarantine" },
	{ "quarantine: 1\n", "quarantine: 1\nquarantine: 1\n", "duplicate key" },
	{ "prepend: Auth", "prepend: %00Auth", "NUL in value" },
	{ "prepend: Auth", "prepend: Auth Auth", "raw control character or space" },
	{ "helo: mail.example.org\n", "helo: mail.example.org\nversion: 2\n",
	    "version must be the first line" },
	{ "id: 0187a3f2c4d1e00a\n", "id: 0187A3F2C4D1E00A\n", "bad id" },
	{ "id: 0187a3f2c4d1e00a\n", "id: 0187a3f2c4d1e00\n", "bad id" },
	{ "id: 0187a3f2c4d1e00a\n", "id: 0187a3f2c4d1e00ab\n", "bad id" },
	{ "id: 0187a3f2c4d1e00a\n", "id: 0187a3f2c4d1e00g\n", "bad id" },
	{ "id: 0187a3f2c4d1e00a\n", "", "required key missing" },
	{ "created: 1700000000\n", "", "required key missing" },
	{ "sender: alice@example.org\n", "", "required key missing" },
	{ "created: 1700000000\n", "created: -1\n", "bad created" },
	{ "created: 1700000000\n", "created: +1\n", "bad created" },
	{ "created: 1700000000\n", "created: 9223372036854775808\n",
	    "bad created" },
	{ "created: 1700000000\n", "created: 1x\n", "bad created" },
	{ "created: 1700000000\n", "created: \n", "bad created" },
	{ "size: 12345\n", "size: 18446744073709551616\n", "bad size" },
	{ "size: 12345\n", "size: 99999999999999999999\n", "bad size" },
	{ "smtputf8: 0\n", "smtputf8: 2\n", "bad smtputf8" },
	{ "body: 8bitmime\n", "body: 8BITMIME\n", "bad body" },
	{ "body: 8bitmime\n", "body: binarymime\n", "bad body" },
	{ "size: 12345\n", "size: 12345\nsize: 12345\n", "duplicate key" },
	{ "helo: mail.example.org\n",
	    "helo: mail.example.org\nhelo: x\n", "duplicate key" },
	{ "helo: mail.example.org\n", "colour: blue\n",
	    "malformed line or unknown key" },
	{ "helo: mail.example.org\n", "helo:mail.example.org\n",
	    "malformed line or unknown key" },
	{ "helo: mail.example.org\n", "helo mail.example.org\n",
	    "malformed line or unknown key" },
	{ "helo: mail.example.org\n", "HELO: mail.example.org\n",
	    "malformed line or unknown key" },
	{ "helo: mail.example.org\n", "\n", "malformed line or unknown key" },
	{ "helo: mail.example.org\n", "helo: \n", "empty value" },
	{ "helo: mail.example.org\n", "helo: mail example\n",
	    "raw control character or space" },
	{ "helo: mail.example.org\n", "helo: mail.example.org\r\n",
	    "raw control character or space" },
	{ "helo: mail.example.org\n", "helo: a\tb\n",
	    "raw control character or space" },
	{ "helo: mail.example.org\n", "helo: a\x7f\n",
	    "raw control character or space" },
	{ "helo: mail.example.org\n", "helo: a%2g\n", "bad escape" },
	{ "helo: mail.example.org\n", "helo: a%2a\n", "bad escape" },
	{ "helo: mail.example.org\n", "helo: a%2\n", "bad escape" },
	{ "helo: mail.example.org\n", "helo: a%\n", "bad escape" },
	{ "helo: mail.example.org\n", "helo: a%00b\n", "NUL in value" },
	{ "proto: ESMTPS\n", "proto: ESMTPSESMTPSESMT\n", "value too long" },
	{ "proto: ESMTPS\n", "proto: ESMTPSESMTPSESM\n", NULL },
	{ "Bob@Example.TEST - 0 - - -\n", "Bob@Example.TEST - 0 - -\n",
	    "rcpt: wrong number of fields" },
	{ "Bob@Example.TEST - 0 - - -\n", "Bob@Example.TEST -\n",
	    "rcpt: wrong number of fields" },
	{ "Bob@Example.TEST - 0 - - -\n", "Bob@Example.TEST - 0 - - - -\n",
	    "rcpt: wrong number of fields" },
	{ "Bob@Example.TEST - 0 - - -\n", "Bob@Example.TEST  - 0 - - -\n",
	    "rcpt: wrong number of fields" },
	{ "bob example.test", "bob ", "empty value" },
	{ "Bob@Example.TEST - 0 - - -\n", "Bob@Example.TEST - 0 - - - \n",
	    "rcpt: wrong number of fields" },
	{ "Bob@Example.TEST - 0 - - -\n", "Bob@Example.TEST - 0 - - -\x01\n",
	    "raw control character or space" },
	/* Version 2 data. */
	{ " 6 rfc822", " 16 rfc822", "rcpt: bad notify" },
	{ " 6 rfc822", " 3 rfc822", "rcpt: bad notify" },
	{ " 6 rfc822", " 06 rfc822", "rcpt: bad notify" },
	{ " 6 rfc822", " - rfc822", "rcpt: bad notify" },
	{ " 6 rfc822", " 14 rfc822", NULL },
	{ " 6 rfc822", " 1 rfc822", NULL },
	{ "mx.example.net 5.1.1\n", "mx.example.net 5.1\n", "rcpt: bad status" },
	{ "mx.example.net 5.1.1\n", "mx.example.net 3.1.1\n",
	    "rcpt: bad status" },
	{ "mx.example.net 5.1.1\n", "mx.example.net 5.1.1234\n",
	    "rcpt: bad status" },
	{ "mx.example.net 5.1.1\n", "mx.example.net 5..1\n",
	    "rcpt: bad status" },
	{ "mx.example.net 5.1.1\n", "mx.example.net 5.1.1.\n",
	    "rcpt: bad status" },
	{ "mx.example.net 5.1.1\n", "mx.example.net 4.123.456\n", NULL },
	{ "mx.example.net 5.1.1\n", "mx.example.net 5.1.1x\n",
	    "rcpt: bad status" },
	{ "mx.example.net 5.1.1\n", "mx.example.net 2.0.0123456789012\n",
	    "value too long" },
	{ "ret: hdrs\n", "ret: HDRS\n", "bad ret" },
	{ "ret: hdrs\n", "ret: full\n", NULL },
	{ "ret: hdrs\n", "ret: -\n", NULL },
	{ "ret: hdrs\n", "ret: %2D\n", "bad ret" },
	{ "ret: hdrs\n", "ret: hdrs\nret: hdrs\n", "duplicate key" },
	{ "next_attempt: 1700000600\n", "next_attempt: -1\n",
	    "bad next_attempt" },
	{ "next_attempt: 1700000600\n", "next_attempt: 0\n", NULL },
	{ "warned: 1\n", "warned: 2\n", "bad warned" },
	{ "dsn_kind: none\n", "dsn_kind: bounce\n", NULL },
	{ "dsn_kind: none\n", "dsn_kind: double\n", "bad dsn_kind" },
	{ "envid: QQ314159%20x+2By\n",
	    "envid: 01234567890123456789012345678901234567890123456789"
	    "01234567890123456789012345678901234567890123456789\n", NULL },
	{ "envid: QQ314159%20x+2By\n",
	    "envid: 01234567890123456789012345678901234567890123456789"
	    "012345678901234567890123456789012345678901234567890\n",
	    "value too long" },
	{ "rcpt: pending", "rcpt: Pending", "rcpt: bad state" },
	{ "pending local", "pending lokal", "rcpt: bad kind" },
	{ "pending local 0", "pending local 4294967296", "rcpt: bad attempts" },
	{ "pending local 0", "pending local -1", "rcpt: bad attempts" },
	{ "pending local 0", "pending local 4294967295", NULL },
	{ "end: 1\n", "", "torn file: no end line" },
	{ "end: 1\n", "end: 1", "torn file: last line unterminated" },
	{ "end: 1\n", "end: 2\n", "bad end" },
	{ "end: 1\n", "end: 1\n\n", "data after end line" },
	{ "end: 1\n", "end: 1\nsize: 1\n", "data after end line" },
	{ "end: 1\n", "end: 1\nend: 1\n", "data after end line" },
	{ "smtputf8: 0\n", "smtputf8: 0\nend: 1\n", "data after end line" },
};

static void
test_decode_errors(void **state)
{
	struct envelope e;
	const char *why;
	size_t i;
	char *s;

	(void)state;
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		s = edit(bad_cases[i].from, bad_cases[i].to);
		why = "unset";
		if (bad_cases[i].why == NULL) {
			if (envelope_decode(s, strlen(s), &e, &why) != 0)
				fail_msg("case %zu refused: %s", i, why);
		} else {
			if (envelope_decode(s, strlen(s), &e, &why) != -1)
				fail_msg("case %zu accepted", i);
			assert_string_equal(why, bad_cases[i].why);
			assert_null(e.rcpts);
			assert_int_equal(e.nrcpts, 0);
		}
		envelope_free(&e);
		free(s);
	}
}

/* A version 1 file reads with the version 2 data at its defaults. */
static void
test_v1_decode(void **state)
{
	struct envelope e, want;
	struct buf b;
	const char *why = "unset";

	(void)state;
	make_golden_v1(&want);
	assert_int_equal(envelope_decode(golden_v1, strlen(golden_v1), &e,
	    &why), 0);
	assert_null(why);
	assert_int_equal(e.version, 1);
	assert_env_equal(&want, &e);
	/* Written again, it is a version 3 file with the defaults. */
	buf_init(&b, BIG);
	assert_int_equal(envelope_encode(&e, &b), 0);
	assert_non_null(strstr(b.data, "version: 3\n"));
	assert_non_null(strstr(b.data, "\nsize: 12345\nret: -\nenvid: -\n"
	    "next_attempt: 0\nwarned: 0\ndsn_kind: none\nprepend: -\n"
	    "quarantine: 0\nrcpt: "));
	assert_non_null(strstr(b.data, "Bob@Example.TEST - 0 - - -\n"));
	envelope_free(&e);
	assert_int_equal(envelope_decode(b.data, b.len, &e, &why), 0);
	assert_int_equal(e.version, 3);
	want.version = 3;
	assert_env_equal(&want, &e);
	buf_free(&b);
	envelope_free(&e);
	envelope_free(&want);
}

/* A version 2 file reads with the version 3 data at its defaults; version 3
 * keys in it are refused. */
static void
test_v2_decode(void **state)
{
	static const char *const v3keys[] = { "prepend: -\n", "quarantine: 0\n" };
	struct envelope e, want;
	const char *why = "unset", *p;
	char s[2048];
	size_t i;

	(void)state;
	make_golden_v2(&want);
	assert_int_equal(envelope_decode(golden_v2, strlen(golden_v2), &e, &why), 0);
	assert_null(why);
	assert_int_equal(e.version, 2);
	assert_null(e.prepend);
	assert_env_equal(&want, &e);
	envelope_free(&e);
	envelope_free(&want);
	for (i = 0; i < 2; i++) {
		p = strstr(golden_v2, "rcpt: ");
		snprintf(s, sizeof(s), "%.*s%s%s", (int)(p - golden_v2), golden_v2, v3keys[i], p);
		assert_int_equal(envelope_decode(s, strlen(s), &e, &why), -1);
		assert_string_equal(why, "key unknown before version 3");
	}
}

/* envelope_set_prepend refuses NUL bytes and oversize; replaces and clears. */
static void
test_prepend(void **state)
{
	struct envelope e;
	char *big = malloc(ENVELOPE_PREPEND_MAX + 1);

	(void)state;
	assert_non_null(big);
	memset(big, 'a', ENVELOPE_PREPEND_MAX + 1);
	envelope_init(&e);
	assert_int_equal(envelope_prepend_len(&e), 0);
	assert_int_equal(envelope_set_prepend(&e, "X: 1\r\n", 6), 0);
	assert_int_equal(envelope_prepend_len(&e), 6);
	assert_int_equal(envelope_set_prepend(&e, "a\0b", 3), -1);
	assert_string_equal(e.prepend, "X: 1\r\n");
	assert_int_equal(envelope_set_prepend(&e, big, ENVELOPE_PREPEND_MAX + 1), -1);
	assert_int_equal(envelope_set_prepend(&e, big, ENVELOPE_PREPEND_MAX), 0);
	assert_int_equal(envelope_prepend_len(&e), ENVELOPE_PREPEND_MAX);
	assert_int_equal(envelope_set_prepend(&e, NULL, 0), 0);
	assert_null(e.prepend);
	envelope_free(&e);
	free(big);
}

/* Version 2 syntax in a version 1 file is refused. */
static void
test_v1_refuses_v2(void **state)
{
	static const char *const bad[][3] = {
		{ "size: 12345\n", "size: 12345\nret: full\n",
		    "key unknown in version 1" },
		{ "size: 12345\n", "size: 12345\nenvid: x\n",
		    "key unknown in version 1" },
		{ "size: 12345\n", "size: 12345\nnext_attempt: 0\n",
		    "key unknown in version 1" },
		{ "size: 12345\n", "size: 12345\nwarned: 0\n",
		    "key unknown in version 1" },
		{ "size: 12345\n", "size: 12345\ndsn_kind: none\n",
		    "key unknown in version 1" },
		{ "Bob@Example.TEST -\n", "Bob@Example.TEST - 0 - - -\n",
		    "rcpt: wrong number of fields" },
	};
	struct envelope e;
	const char *why, *p;
	char s[2048];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = strstr(golden_v1, bad[i][0]);
		assert_non_null(p);
		snprintf(s, sizeof(s), "%.*s%s%s", (int)(p - golden_v1),
		    golden_v1, bad[i][1], p + strlen(bad[i][0]));
		assert_int_equal(envelope_decode(s, strlen(s), &e, &why), -1);
		assert_string_equal(why, bad[i][2]);
	}
}

static void
test_decode_empty(void **state)
{
	static const char minimal[] = "version: 2\nid: 0123456789abcdef\n"
	    "created: 0\nsender: -\nend: 1\n";
	struct envelope e;
	const char *why;

	(void)state;
	assert_int_equal(envelope_decode(NULL, 0, &e, &why), -1);
	assert_string_equal(why, "empty file");
	assert_int_equal(envelope_decode("", 0, &e, NULL), -1);
	/* The minimal file: only the required keys. */
	assert_int_equal(envelope_decode(minimal, strlen(minimal), &e, &why), 0);
	assert_string_equal(e.id, "0123456789abcdef");
	assert_string_equal(e.sender, "");
	assert_int_equal(e.nrcpts, 0);
	envelope_free(&e);
}

/* Every proper prefix of a valid file is torn and must be refused. */
static void
test_truncated(void **state)
{
	struct envelope e;
	const char *why;
	size_t n, len = strlen(golden);
	char *copy;

	(void)state;
	for (n = 0; n < len; n++) {
		/* An exact-size heap copy so ASan sees any read past n. */
		copy = malloc(n ? n : 1);
		assert_non_null(copy);
		memcpy(copy, golden, n);
		why = NULL;
		assert_int_equal(envelope_decode(copy, n, &e, &why), -1);
		assert_non_null(why);
		free(copy);
	}
	copy = malloc(len);
	memcpy(copy, golden, len);
	assert_int_equal(envelope_decode(copy, len, &e, &why), 0);
	envelope_free(&e);
	free(copy);
}

static void
test_max_rcpt(void **state)
{
	struct envelope e, d;
	struct envelope_rcpt r;
	struct buf b;
	const char *why;
	static const char extra[] =
	    "rcpt: pending remote 0 - - a@b a@b - 0 - - -\n";

	(void)state;
	make_golden(&e);
	set_rcpt(&r, RCPT_PENDING, RCPTK_REMOTE, 0, "", "", "a@b", "a@b", "");
	while (e.nrcpts < ENVELOPE_MAX_RCPT)
		assert_int_equal(envelope_add_rcpt(&e, &r), 0);
	assert_int_equal(envelope_add_rcpt(&e, &r), -1);
	assert_int_equal(e.nrcpts, ENVELOPE_MAX_RCPT);
	buf_init(&b, BIG);
	assert_int_equal(envelope_encode(&e, &b), 0);
	assert_int_equal(envelope_decode(b.data, b.len, &d, &why), 0);
	assert_int_equal(d.nrcpts, ENVELOPE_MAX_RCPT);
	envelope_free(&d);
	/* One more line before "end: 1". */
	b.len -= strlen("end: 1\n");
	assert_int_equal(buf_appends(&b, extra), 0);
	assert_int_equal(buf_appends(&b, "end: 1\n"), 0);
	assert_int_equal(envelope_decode(b.data, b.len, &d, &why), -1);
	assert_string_equal(why, "too many recipients");
	assert_null(d.rcpts);
	assert_int_equal(d.nrcpts, 0);
	buf_free(&b);
	envelope_free(&e);
}

static void
test_encode_refuses(void **state)
{
	struct envelope e;
	struct buf b;

	(void)state;
	make_golden(&e);
	buf_init(&b, BIG);
	assert_int_equal(buf_appends(&b, "keep"), 0);

	e.id[3] = 'A';
	assert_int_equal(envelope_encode(&e, &b), -1);
	e.id[3] = '7';
	e.created = -5;
	assert_int_equal(envelope_encode(&e, &b), -1);
	e.created = 0;
	e.rcpts[1].state = (enum rcpt_state)9;
	assert_int_equal(envelope_encode(&e, &b), -1);
	e.rcpts[1].state = RCPT_FAILED;
	memset(e.helo, 'x', sizeof(e.helo));	/* no terminating NUL */
	assert_int_equal(envelope_encode(&e, &b), -1);
	e.helo[0] = '\0';
	e.version = 4;
	assert_int_equal(envelope_encode(&e, &b), -1);
	e.version = 0;
	assert_int_equal(envelope_encode(&e, &b), -1);
	e.version = ENVELOPE_VERSION;
	e.next_attempt = -1;
	assert_int_equal(envelope_encode(&e, &b), -1);
	e.next_attempt = 0;
	e.ret = (enum dsn_ret)3;
	assert_int_equal(envelope_encode(&e, &b), -1);
	e.ret = DSN_RET_FULL;
	e.dsn_kind = (enum dsn_kind)4;
	assert_int_equal(envelope_encode(&e, &b), -1);
	e.dsn_kind = DSN_KIND_DELAY;
	e.rcpts[0].notify = DSN_NOTIFY_NEVER | DSN_NOTIFY_DELAY;
	assert_int_equal(envelope_encode(&e, &b), -1);
	e.rcpts[0].notify = 16;
	assert_int_equal(envelope_encode(&e, &b), -1);
	e.rcpts[0].notify = DSN_NOTIFY_DELAY;
	snprintf(e.rcpts[0].status, sizeof(e.rcpts[0].status), "5.1");
	assert_int_equal(envelope_encode(&e, &b), -1);
	e.rcpts[0].status[0] = '\0';
	memset(e.rcpts[0].orcpt, 'x', sizeof(e.rcpts[0].orcpt));
	assert_int_equal(envelope_encode(&e, &b), -1);
	e.rcpts[0].orcpt[0] = '\0';
	assert_int_equal(b.len, 4);
	assert_string_equal(b.data, "keep");

	/* A buffer limit reached half way leaves the buffer as it was. */
	buf_free(&b);
	buf_init(&b, 100);
	assert_int_equal(buf_appends(&b, "keep"), 0);
	assert_int_equal(envelope_encode(&e, &b), -1);
	assert_int_equal(b.len, 4);
	assert_string_equal(b.data, "keep");
	buf_free(&b);
	envelope_free(&e);
}

static void
test_id_valid(void **state)
{
	(void)state;
	assert_int_equal(envelope_id_valid("0187a3f2c4d1e00a", 16), 1);
	assert_int_equal(envelope_id_valid("0187a3f2c4d1e00A", 16), 0);
	assert_int_equal(envelope_id_valid("0187a3f2c4d1e00", 15), 0);
	assert_int_equal(envelope_id_valid("0187a3f2c4d1e00ab", 17), 0);
	assert_int_equal(envelope_id_valid("0187a3f2c4d1e00g", 16), 0);
	assert_int_equal(envelope_id_valid("../a3f2c4d1e00ab", 16), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_id_valid),
		cmocka_unit_test(test_golden_encode),
		cmocka_unit_test(test_golden_decode),
		cmocka_unit_test(test_round_trip_nasty),
		cmocka_unit_test(test_escaping_text),
		cmocka_unit_test(test_decode_errors),
		cmocka_unit_test(test_v1_decode),
		cmocka_unit_test(test_v1_refuses_v2),
		cmocka_unit_test(test_v2_decode),
		cmocka_unit_test(test_prepend),
		cmocka_unit_test(test_decode_empty),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_max_rcpt),
		cmocka_unit_test(test_encode_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
