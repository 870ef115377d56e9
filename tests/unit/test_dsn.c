/*
 * Unit tests for src/queue/dsn.c. Every DSN built here is checked for
 * CRLF line ends and line length, then parsed by an independent reader,
 * Python's email package (/usr/bin/python3), whose view of the message
 * is compared with what was asked for.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "queue/dsn.h"

#define BIG	(64u * 1024 * 1024)
#define NOW	1700000000
#define MIB	(1024u * 1024)

/* Prints what Python's email package makes of the DSN, one fact a line. */
static const char py_script[] =
"import sys, re, email, email.policy\n"
"raw = open(sys.argv[1], 'rb').read()\n"
"m = email.message_from_bytes(raw, policy=email.policy.default)\n"
"def p(*a): print(' '.join(str(x) for x in a))\n"
"for part in m.walk():\n"
"    for d in part.defects: p('defect', type(d).__name__)\n"
"p('type', m.get_content_type())\n"
"p('report-type', m.get_param('report-type'))\n"
"p('subject', m['subject'])\n"
"f = m['from'].addresses[0]\n"
"p('from', f.display_name, '|', f.addr_spec)\n"
"p('to', m['to'].addresses[0].addr_spec)\n"
"p('auto-submitted', m['auto-submitted'])\n"
"p('date', m['date'].datetime.isoformat())\n"
"p('message-id-ok', bool(re.fullmatch(r'<[^<>@ ]+@mx\\.example\\.test>',"
" str(m['message-id']))))\n"
"p('multipart', m.is_multipart())\n"
"parts = m.get_payload()\n"
"p('parts', len(parts))\n"
"for i, part in enumerate(parts): p('part', i, part.get_content_type(),"
" part.get('content-transfer-encoding', '-'))\n"
"p('text-charset', parts[0].get_content_charset())\n"
"for line in parts[0].get_content().splitlines(): p('text:', line)\n"
"for i, b in enumerate(parts[1].get_payload()):\n"
"    for k, v in b.items(): p('ds', i, k + ':', v)\n"
"if len(parts) > 2:\n"
"    r = parts[2]\n"
"    if r.get_content_maintype() == 'message':\n"
"        inner = r.get_payload(0)\n"
"        for k, v in inner.items(): p('returned-header', k + ':', v)\n"
"        body = inner.get_payload(decode=True) or b''\n"
"        p('returned-body', repr(body))\n"
"    else:\n"
"        p('returned-text', repr(r.get_content()))\n";

struct built {
	struct buf dsn;
	int flags;
	char *py;	/* Python's output */
};

static int
content_fd(const char *data, size_t len)
{
	char path[] = "/tmp/tern-dsn-test-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	return fd;
}

static void
write_file(char *tmpl, const char *data, size_t len)
{
	int fd = mkstemp(tmpl);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* Every line ends with CRLF, no CR or LF elsewhere, none over 998. */
static void
check_lines(const struct buf *b)
{
	size_t i, col = 0;

	assert_true(b->len >= 2);
	for (i = 0; i < b->len; i++) {
		if (b->data[i] == '\r') {
			assert_true(i + 1 < b->len && b->data[i + 1] == '\n');
			i++;
			col = 0;
			continue;
		}
		assert_true(b->data[i] != '\n');
		col++;
		if (col > 998)
			fail_msg("line over 998 octets at offset %zu", i);
	}
	assert_int_equal(col, 0);
}

/* Runs the Python reader over the DSN; fails the test if it fails. */
static char *
python_view(const struct buf *b)
{
	char dsn[] = "/tmp/tern-dsn-XXXXXX", py[] = "/tmp/tern-dsn-py-XXXXXX";
	char cmd[256], chunk[4096];
	struct buf out;
	FILE *f;
	size_t n;
	int st;

	write_file(dsn, b->data, b->len);
	write_file(py, py_script, strlen(py_script));
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s 2>&1", py, dsn);
	assert_non_null(f = popen(cmd, "r"));
	buf_init(&out, BIG);
	assert_int_equal(buf_appendc(&out, '\n'), 0);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_int_equal(buf_append(&out, chunk, n), 0);
	st = pclose(f);
	unlink(dsn);
	unlink(py);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("python failed:%s", out.data);
	if (strstr(out.data, "\ndefect ") != NULL)
		fail_msg("python found defects:%s", out.data);
	return out.data;	/* the buffer's memory, freed by the caller */
}

static void
build(const struct dsn_input *in, const char *content, size_t clen,
    size_t max_ret, struct built *r)
{
	char err[256] = "";
	int fd = content_fd(content, clen);

	buf_init(&r->dsn, BIG);
	r->flags = dsn_build(in, fd, max_ret, &r->dsn, err, sizeof(err));
	close(fd);
	if (r->flags < 0)
		fail_msg("dsn_build: %s", err);
	check_lines(&r->dsn);
	r->py = python_view(&r->dsn);
}

static void
built_free(struct built *r)
{
	buf_free(&r->dsn);
	free(r->py);
}

/* Python printed these lines, in this order and next to each other. */
static void
expect(const struct built *r, const char *lines)
{
	char *want;
	size_t n = strlen(lines) + 2;

	want = malloc(n);
	assert_non_null(want);
	snprintf(want, n, "\n%s", lines);
	if (strstr(r->py, want) == NULL) {
		/* cmocka cuts long messages: the whole view goes to stderr. */
		fprintf(stderr, "missing:\n%s\nin python's view:%s\n", lines,
		    r->py);
		fail();
	}
	free(want);
}

static void
expect_not(const struct built *r, const char *s)
{
	if (strstr(r->py, s) != NULL)
		fail_msg("unexpected %s in python's view:%s", s, r->py);
}

static const char message[] =
    "Received: from client.example.org by mx.example.test\r\n"
    "From: Alice <alice@example.org>\r\n"
    "To: bob@example.net\r\n"
    "Subject: Lunch\r\n"
    "Message-ID: <1@example.org>\r\n"
    "\r\n"
    "Shall we meet at noon?\r\n"
    "--=_tern_0\r\n"
    "Alice\r\n";

static const char headers_only[] =
    "Received: from client.example.org by mx.example.test\r\n"
    "From: Alice <alice@example.org>\r\n"
    "To: bob@example.net\r\n"
    "Subject: Lunch\r\n"
    "Message-ID: <1@example.org>\r\n";

static void
base_input(struct dsn_input *in, const struct dsn_rcpt *r, size_t n)
{
	memset(in, 0, sizeof(*in));
	in->reporting_mta = "mx.example.test";
	in->queue_id = "0187a3f2c4d1e00a";
	in->arrival = NOW - 3600;
	in->sender = "alice@example.org";
	in->postmaster = "MAILER-DAEMON@mx.example.test";
	in->rcpts = r;
	in->nrcpts = n;
	in->now = NOW;
	in->message_id_domain = "mx.example.test";
}

static void
test_bounce_headers(void **state)
{
	struct dsn_rcpt r[2] = {
		{ .final_rcpt = "bob@example.net",
		  .orig_rcpt = "rfc822;Bob@Example.NET", .action = "failed",
		  .status = "5.1.1", .remote_mta = "mx.example.net",
		  .diagnostic = "550 5.1.1 <bob@example.net>: no such user",
		  .last_attempt = NOW - 60 },
		{ .final_rcpt = "carol@example.net", .action = "failed",
		  .status = "5.4.7", .diagnostic = "delivery time expired",
		  .last_attempt = NOW - 30 },
	};
	struct dsn_input in;
	struct built b;

	(void)state;
	base_input(&in, r, 2);
	in.envid = "QQ314159";
	build(&in, message, strlen(message), MIB, &b);
	assert_int_equal(b.flags, 0);
	expect(&b, "type multipart/report\nreport-type delivery-status\n"
	    "subject Undelivered Mail Returned to Sender\n"
	    "from Mail Delivery System | MAILER-DAEMON@mx.example.test\n"
	    "to alice@example.org\nauto-submitted auto-replied\n"
	    "date 2023-11-14T22:13:20+00:00\nmessage-id-ok True\n"
	    "multipart True\nparts 3\n"
	    "part 0 text/plain -\npart 1 message/delivery-status -\n"
	    "part 2 text/rfc822-headers -\ntext-charset us-ascii\n");
	expect(&b,
	    "ds 0 Reporting-MTA: dns; mx.example.test\n"
	    "ds 0 X-Tern-Queue-ID: 0187a3f2c4d1e00a\n"
	    "ds 0 Original-Envelope-Id: QQ314159\n"
	    "ds 0 Arrival-Date: Tue, 14 Nov 2023 21:13:20 +0000\n"
	    "ds 1 Final-Recipient: rfc822; bob@example.net\n"
	    "ds 1 Original-Recipient: rfc822; Bob@Example.NET\n"
	    "ds 1 Action: failed\nds 1 Status: 5.1.1\n"
	    "ds 1 Remote-MTA: dns; mx.example.net\n"
	    "ds 1 Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: "
	    "no such user\n"
	    "ds 1 Last-Attempt-Date: Tue, 14 Nov 2023 22:12:20 +0000\n"
	    "ds 2 Final-Recipient: rfc822; carol@example.net\n"
	    "ds 2 Action: failed\nds 2 Status: 5.4.7\n"
	    "ds 2 Diagnostic-Code: X-Tern; delivery time expired\n"
	    "ds 2 Last-Attempt-Date: Tue, 14 Nov 2023 22:12:50 +0000\n"
	    "returned-text ");
	/* The header section, exactly. */
	expect(&b, "returned-text 'Received: from client.example.org by "
	    "mx.example.test\\r\\nFrom: Alice <alice@example.org>\\r\\n"
	    "To: bob@example.net\\r\\nSubject: Lunch\\r\\n"
	    "Message-ID: <1@example.org>\\r\\n'\n");
	expect(&b, "text: <bob@example.net>: delivery failed (status 5.1.1).\n"
	    "text:     The server mx.example.net said:\n"
	    "text:     550 5.1.1 <bob@example.net>: no such user\n");
	expect(&b, "text: <carol@example.net>: delivery failed (status "
	    "5.4.7).\ntext:     Reason: delivery time expired\n");
	expect(&b, "text: The headers of your message are attached.\n");
	expect_not(&b, "Will-Retry-Until");
	/* The raw form: the report's header lines as RFC 3464 writes them. */
	assert_non_null(strstr(b.dsn.data, "\r\nAuto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"=_tern_"));
	assert_non_null(strstr(b.dsn.data, "\r\n\r\nReceived: from "));
	assert_null(strstr(b.dsn.data, "Shall we meet"));
	built_free(&b);
}

static void
test_bounce_full(void **state)
{
	struct dsn_rcpt r = { .final_rcpt = "bob@example.net",
	    .action = "failed", .status = "5.7.1",
	    .remote_mta = "mx.example.net",
	    .diagnostic = "554 5.7.1 rejected" };
	struct dsn_input in;
	struct built b;

	(void)state;
	base_input(&in, &r, 1);
	in.ret_full = 1;
	build(&in, message, strlen(message), MIB, &b);
	assert_int_equal(b.flags, 0);
	expect(&b, "parts 3\npart 0 text/plain -\n"
	    "part 1 message/delivery-status -\npart 2 message/rfc822 -\n");
	expect(&b, "returned-header Subject: Lunch\n"
	    "returned-header Message-ID: <1@example.org>\n"
	    "returned-body b'Shall we meet at noon?\\r\\n--=_tern_0\\r\\n"
	    "Alice\\r\\n'\n");
	expect(&b, "text: Your message is attached.\n");
	expect_not(&b, "Original-Envelope-Id");
	expect_not(&b, "Original-Recipient");
	/* The whole message, byte for byte, inside the DSN. */
	assert_non_null(memmem(b.dsn.data, b.dsn.len, message,
	    strlen(message)));
	built_free(&b);
}

static void
test_delayed(void **state)
{
	struct dsn_rcpt r = { .final_rcpt = "bob@example.net",
	    .action = "delayed", .status = "4.4.1",
	    .remote_mta = "mx.example.net",
	    .diagnostic = "connect to mx.example.net: Connection refused",
	    .last_attempt = NOW - 10, .will_retry_until = NOW + 86400 * 4 };
	struct dsn_input in;
	struct built b;

	(void)state;
	base_input(&in, &r, 1);
	build(&in, message, strlen(message), MIB, &b);
	expect(&b, "subject Delayed Mail (still being retried)\n");
	expect(&b, "ds 1 Final-Recipient: rfc822; bob@example.net\n"
	    "ds 1 Action: delayed\nds 1 Status: 4.4.1\n"
	    "ds 1 Remote-MTA: dns; mx.example.net\n"
	    "ds 1 Diagnostic-Code: smtp; connect to mx.example.net: "
	    "Connection refused\n"
	    "ds 1 Last-Attempt-Date: Tue, 14 Nov 2023 22:13:10 +0000\n"
	    "ds 1 Will-Retry-Until: Sat, 18 Nov 2023 22:13:20 +0000\n");
	expect(&b, "text: <bob@example.net>: delivery delayed, still trying "
	    "(status 4.4.1).\n");
	expect(&b, "text:     Delivery will be retried until Sat, 18 Nov 2023 "
	    "22:13:20 +0000.\n");
	expect(&b, "part 2 text/rfc822-headers -\n");
	built_free(&b);
}

static void
test_delivered(void **state)
{
	struct dsn_rcpt r[2] = {
		{ .final_rcpt = "bob@example.test", .action = "delivered",
		  .status = "2.0.0", .orig_rcpt = "rfc822;bob@example.test",
		  .last_attempt = NOW },
		{ .final_rcpt = "list@example.test", .action = "expanded",
		  .status = "2.0.0", .diagnostic = "" },
	};
	struct dsn_input in;
	struct built b;

	(void)state;
	base_input(&in, r, 2);
	build(&in, message, strlen(message), MIB, &b);
	expect(&b, "subject Successful Mail Delivery Report\n");
	expect(&b, "ds 1 Final-Recipient: rfc822; bob@example.test\n"
	    "ds 1 Original-Recipient: rfc822; bob@example.test\n"
	    "ds 1 Action: delivered\nds 1 Status: 2.0.0\n"
	    "ds 1 Last-Attempt-Date: Tue, 14 Nov 2023 22:13:20 +0000\n"
	    "ds 2 Final-Recipient: rfc822; list@example.test\n"
	    "ds 2 Action: expanded\nds 2 Status: 2.0.0\n"
	    "returned-text");
	expect(&b, "text: <bob@example.test>: delivered (status 2.0.0).\n");
	expect_not(&b, "Diagnostic-Code");
	expect_not(&b, "Remote-MTA");
	built_free(&b);
}

/* RET=FULL but over the cap: headers only, and the text says why. */
static void
test_too_large(void **state)
{
	struct dsn_rcpt r = { .final_rcpt = "bob@example.net",
	    .action = "failed", .status = "5.3.4",
	    .diagnostic = "message too big" };
	struct dsn_input in;
	struct built b;

	(void)state;
	base_input(&in, &r, 1);
	in.ret_full = 1;
	build(&in, message, strlen(message), strlen(message) - 1, &b);
	expect(&b, "part 2 text/rfc822-headers -\n");
	expect(&b, "text: Your message could not be attached whole (too "
	    "large, or not plain text); its\ntext: headers are attached.\n");
	built_free(&b);
	/* Exactly at the cap it is returned whole. */
	build(&in, message, strlen(message), strlen(message), &b);
	expect(&b, "part 2 message/rfc822 -\n");
	built_free(&b);
	/* Headers larger than the cap: nothing returned, two parts. */
	build(&in, message, strlen(message), 20, &b);
	expect(&b, "parts 2\n");
	expect(&b, "text: Your message could not be attached.\n");
	built_free(&b);
	/* A cap of 0 returns nothing. */
	build(&in, message, strlen(message), 0, &b);
	expect(&b, "parts 2\n");
	built_free(&b);
}

/* Any content bytes: NULs, bare CR and LF, long lines, no headers. */
static void
test_binary_content(void **state)
{
	struct dsn_rcpt r = { .final_rcpt = "bob@example.net",
	    .action = "failed", .status = "5.0.0", .diagnostic = "x" };
	struct dsn_input in;
	struct built b;
	char bin[5000];
	size_t i;

	(void)state;
	base_input(&in, &r, 1);
	in.ret_full = 1;
	for (i = 0; i < sizeof(bin); i++)
		bin[i] = (char)(i * 7 + 3);
	/* Binary everywhere, the header section too: nothing returned. */
	build(&in, bin, sizeof(bin), MIB, &b);
	expect(&b, "parts 2\n");
	built_free(&b);
	/* Clean headers, binary body with NULs: headers only. */
	{
		char mixed[sizeof(headers_only) + 2 + sizeof(bin)];
		size_t hl = strlen(headers_only);

		memcpy(mixed, headers_only, hl);
		memcpy(mixed + hl, "\r\n", 2);
		memcpy(mixed + hl + 2, bin, sizeof(bin));
		build(&in, mixed, sizeof(mixed), MIB, &b);
		expect(&b, "parts 3\n");
		expect(&b, "part 2 text/rfc822-headers -\n");
		built_free(&b);
	}
	/* Only NULs; an empty file; headers without a body or CRLF end. */
	memset(bin, 0, sizeof(bin));
	build(&in, bin, sizeof(bin), MIB, &b);
	expect(&b, "parts 2\n");
	built_free(&b);
	build(&in, "", 0, MIB, &b);
	expect(&b, "parts 2\n");
	built_free(&b);
	build(&in, "Subject: x", 10, MIB, &b);
	expect(&b, "part 2 message/rfc822 -\n");
	expect(&b, "returned-header Subject: x\n");
	built_free(&b);
	/* A line of 999 octets is not 8-bit MIME: headers only. */
	{
		char longl[64 + 1000];
		size_t n = (size_t)snprintf(longl, sizeof(longl),
		    "Subject: y\r\n\r\n");

		memset(longl + n, 'a', 999);
		build(&in, longl, n + 999, MIB, &b);
		expect(&b, "part 2 text/rfc822-headers -\n");
		built_free(&b);
	}
}

/* Diagnostics with controls, 8-bit octets and huge words stay in line. */
static void
test_long_diagnostic(void **state)
{
	struct dsn_rcpt r = { .final_rcpt = "bob@example.net",
	    .action = "failed", .status = "5.0.0",
	    .remote_mta = "mx.example.net" };
	struct dsn_input in;
	struct built b;
	char diag[6000];
	size_t i;

	(void)state;
	base_input(&in, &r, 1);
	/* Multi-line reply text, tabs, a high octet, long runs. */
	snprintf(diag, sizeof(diag), "550-5.0.0 first line\r\n"
	    "550 5.0.0 second\tline \xc3\xa9 ");
	for (i = strlen(diag); i < 3000; i++)
		diag[i] = (char)('a' + i % 26);
	for (; i < sizeof(diag) - 1; i++)
		diag[i] = i % 9 ? 'x' : ' ';
	diag[i] = '\0';
	r.diagnostic = diag;
	build(&in, message, strlen(message), MIB, &b);
	assert_int_equal(b.flags, 0);
	expect(&b, "ds 1 Diagnostic-Code: smtp; 550-5.0.0 first line 550 "
	    "5.0.0 second line ?? ");
	assert_null(strstr(b.dsn.data, "\t"  "line"));
	built_free(&b);
}

/* RFC 6533: UTF-8 addresses; 8-bit content needs 8BITMIME. */
static void
test_utf8(void **state)
{
	static const char msg8[] =
	    "Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\ncaf\xc3\xa9\r\n";
	static const char hdr8[] =
	    "Subject: caf\xc3\xa9\r\nFrom: \xc3\xa9@x.test\r\n\r\nbody\r\n";
	struct dsn_rcpt r = { .final_rcpt = "\xc3\xa9l\xc3\xa8ve+x@"
	    "\xc3\xa9xample.test", .orig_rcpt = "utf-8;\xc3\xa9=1@x.test",
	    .action = "failed", .status = "5.1.1" };
	struct dsn_input in;
	struct built b;

	(void)state;
	base_input(&in, &r, 1);
	in.ret_full = 1;
	build(&in, msg8, strlen(msg8), MIB, &b);
	assert_int_equal(b.flags, DSN_NEEDS_8BITMIME);
	expect(&b, "ds 1 Final-Recipient: utf-8; \\x{E9}l\\x{E8}ve\\x{2B}x@"
	    "\\x{E9}xample.test\n"
	    "ds 1 Original-Recipient: utf-8; \\x{E9}\\x{3D}1@x.test\n");
	expect(&b, "part 0 text/plain 8bit\n");
	expect(&b, "text-charset utf-8\n");
	expect(&b, "text: <\xc3\xa9l\xc3\xa8ve+x@\xc3\xa9xample.test>: "
	    "delivery failed (status 5.1.1).\n");
	expect(&b, "part 2 message/rfc822 8bit\n");
	assert_non_null(strstr(b.dsn.data, "\r\nContent-Transfer-Encoding: "
	    "8bit\r\n\r\nThis is a MIME-encapsulated message."));
	built_free(&b);
	/* UTF-8 in the returned headers: message/global (RFC 6532 3.7). */
	build(&in, hdr8, strlen(hdr8), MIB, &b);
	expect(&b, "part 2 message/global 8bit\n");
	built_free(&b);
	in.ret_full = 0;
	build(&in, hdr8, strlen(hdr8), MIB, &b);
	expect(&b, "part 2 message/global-headers 8bit\n");
	built_free(&b);
	/* An ASCII report for an ASCII message stays 7-bit. */
	r.final_rcpt = "bob@example.net";
	r.orig_rcpt = NULL;
	build(&in, headers_only, strlen(headers_only), MIB, &b);
	assert_int_equal(b.flags, 0);
	built_free(&b);
	/* A UTF-8 sender: the DSN needs SMTPUTF8 on its way. */
	in.sender = "\xc3\xa9@example.org";
	build(&in, headers_only, strlen(headers_only), MIB, &b);
	assert_int_equal(b.flags, DSN_NEEDS_SMTPUTF8);
	expect(&b, "to \xc3\xa9@example.org\n");
	built_free(&b);
}

static void
test_bad_input(void **state)
{
	struct dsn_rcpt r = { .final_rcpt = "bob@example.net",
	    .action = "failed", .status = "5.1.1" };
	struct dsn_input in;
	struct buf out;
	char err[128];
	int fd = content_fd(message, strlen(message));

	(void)state;
	buf_init(&out, BIG);
	assert_int_equal(buf_appends(&out, "keep"), 0);
#define REFUSED(why) do {						\
	err[0] = '\0';							\
	assert_int_equal(dsn_build(&in, fd, MIB, &out, err,		\
	    sizeof(err)), -1);						\
	assert_string_equal(err, why);					\
	assert_int_equal(out.len, 4);					\
	base_input(&in, &r, 1);						\
} while (0)
	base_input(&in, &r, 1);
	in.sender = "";
	REFUSED("bad or null sender: no DSN");
	in.sender = "a\r\nBcc: x@y";
	REFUSED("bad or null sender: no DSN");
	in.sender = "\xc3(@x";
	REFUSED("bad or null sender: no DSN");
	in.reporting_mta = "mx example";
	REFUSED("bad reporting host name");
	in.message_id_domain = "a>b";
	REFUSED("bad reporting host name");
	in.queue_id = "";
	REFUSED("bad queue id");
	in.postmaster = "<x@y>";
	REFUSED("bad postmaster address");
	in.envid = "a\nb";
	REFUSED("bad envid");
	in.nrcpts = 0;
	REFUSED("no recipients");
	r.status = "5.1";
	REFUSED("bad recipient 0");
	r.status = "5.1.1";
	r.action = "bounced";
	REFUSED("bad recipient 0");
	r.action = "failed";
	r.remote_mta = "mx\r\n";
	REFUSED("bad recipient 0");
	r.remote_mta = NULL;
	/* A read error is reported, not a DSN without content. */
	close(fd);
	fd = -1;
	REFUSED("reading the message: Bad file descriptor");
	/* An output limit is an error, and out is left as it was. */
	buf_free(&out);
	buf_init(&out, 1000);
	assert_int_equal(buf_appends(&out, "keep"), 0);
	fd = content_fd(message, strlen(message));
	REFUSED("output limit reached");
	assert_string_equal(out.data, "keep");
#undef REFUSED
	close(fd);
	buf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounce_headers),
		cmocka_unit_test(test_bounce_full),
		cmocka_unit_test(test_delayed),
		cmocka_unit_test(test_delivered),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_binary_content),
		cmocka_unit_test(test_long_diagnostic),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
