/* Unit tests for src/deliver/signer.c: who may be signed, key loading
 * errors, and signatures that our verifier accepts (dkimpy checks them in
 * tests/integration/test_dkim_sign.py). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deliver/signer.h"
#include "dns/dns.h"
#include "mailauth/dkim.h"

static char tmpdir[256];
static char err[1024];
static struct buf txt_ed, txt_rsa;	/* the published records */

static void
write_file(const char *name, const char *data, size_t len)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static int
setup(void **state)
{
	struct buf pem;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/tern-signer-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	buf_init(&txt_ed, 4096);
	buf_init(&txt_rsa, 4096);
	buf_init(&pem, 65536);
	if (dkim_keygen(DKIM_KEY_ED25519, 0, &pem, &txt_ed, err, sizeof(err)) == -1)
		return -1;
	write_file("ed.key", pem.data, pem.len);
	buf_reset(&pem);
	if (dkim_keygen(DKIM_KEY_RSA, 1024, &pem, &txt_rsa, err, sizeof(err)) == -1)
		return -1;
	write_file("rsa.key", pem.data, pem.len);
	buf_free(&pem);
	write_file("junk.key", "junk\n", 5);
	return 0;
}

static int
teardown(void **state)
{
	static const char *const files[] = { "ed.key", "rsa.key", "junk.key", "msg" };
	char path[512];
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, files[i]);
		unlink(path);
	}
	buf_free(&txt_ed);
	buf_free(&txt_rsa);
	return rmdir(tmpdir);
}

static struct signer *
make(const char *lines, struct config *cfg)
{
	char text[2048];
	struct signer *s;

	snprintf(text, sizeof(text), "listen 127.0.0.1:2525\ndomain localhost { maildir m }\n%s",
	    lines);
	assert_int_equal(config_parse(text, strlen(text), "tern.conf", tmpdir, cfg, err,
	    sizeof(err)), 0);
	err[0] = '\0';
	s = signer_new(cfg, err, sizeof(err));
	return s;
}

/* A queue file holding text; its descriptor. */
static int
message_fd(const char *text)
{
	char path[512];
	int fd;

	write_file("msg", text, strlen(text));
	snprintf(path, sizeof(path), "%s/msg", tmpdir);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	return fd;
}

static void
eligible(void **state)
{
	assert_true(signer_eligible("ESMTPSA", "192.0.2.1"));
	assert_true(signer_eligible("ESMTPA", "192.0.2.1"));
	assert_true(signer_eligible("UTF8SMTPSA", "2001:db8::1"));
	assert_true(signer_eligible("local", "local"));
	assert_false(signer_eligible("ESMTPS", "192.0.2.1"));
	assert_false(signer_eligible("ESMTP", "127.0.0.1"));
	assert_false(signer_eligible("SMTP", "192.0.2.1"));
	assert_false(signer_eligible("UTF8SMTPS", "192.0.2.1"));
	assert_false(signer_eligible("", ""));
	/* A trusted client of a submission listener, without AUTH. */
	assert_true(signer_eligible("ESMTP/sub", "127.0.0.1"));
	assert_true(signer_eligible("UTF8SMTPS/sub", "192.0.2.1"));
	assert_true(signer_eligible("ESMTPSA/sub", "192.0.2.1"));
	assert_false(signer_eligible("/sub", "192.0.2.1"));
	assert_false(signer_eligible("ESMTP/sub ", "192.0.2.1"));
	assert_false(signer_eligible("ESMTP/subx", "192.0.2.1"));
}

static void
load_errors(void **state)
{
	struct config cfg;
	struct signer *s;
	char want[512];

	s = make("dkim_sign example.test ed missing.key\n", &cfg);
	assert_null(s);
	snprintf(want, sizeof(want), "tern.conf:3: dkim_sign: %s/missing.key: ", tmpdir);
	assert_memory_equal(err, want, strlen(want));
	config_free(&cfg);
	s = make("dkim_sign example.test ed ed.key\ndkim_sign example.test j junk.key\n", &cfg);
	assert_null(s);
	snprintf(want, sizeof(want), "tern.conf:4: dkim_sign: %s/junk.key: ", tmpdir);
	assert_memory_equal(err, want, strlen(want));
	assert_int_equal(signer_check(&cfg, err, sizeof(err)), -1);
	config_free(&cfg);
	/* No dkim_sign: a signer that signs nothing. */
	s = make("", &cfg);
	assert_non_null(s);
	assert_false(signer_active(s));
	assert_int_equal(signer_check(&cfg, err, sizeof(err)), 0);
	signer_free(s);
	config_free(&cfg);
}

static const char msg_ok[] =
    "Received: from x ([192.0.2.1])\r\n\tby test.example (tern) with ESMTPSA id 1; now\r\n"
    "From: \"Alice, A.\" <alice@Example.TEST>\r\nTo: bob@peer.test\r\nSubject: hi\r\n"
    "Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n.dot\r\n";

/* Verifies the message with the signature prepended, against the records. */
static void
verify(const struct buf *sig, const char *msg, size_t want_pass)
{
	struct dns_static *z = dns_static_new();
	struct dns_resolver r;
	struct dkim_verify_opts vo = { 0 };
	struct dkim_verify *v;
	struct dns_rr rr = { .type = DNS_T_TXT };
	size_t i, pass = 0;

	rr.data = txt_ed.data;
	rr.len = txt_ed.len;
	assert_int_equal(dns_static_add_rr(z, "ed._domainkey.example.test", &rr), 0);
	rr.data = txt_rsa.data;
	rr.len = txt_rsa.len;
	assert_int_equal(dns_static_add_rr(z, "rsa._domainkey.example.test", &rr), 0);
	r = dns_static_resolver(z);
	v = dkim_verify_new(&vo);
	assert_int_equal(dkim_verify_feed(v, sig->data, sig->len), 0);
	assert_int_equal(dkim_verify_feed(v, msg, strlen(msg)), 0);
	assert_int_equal(dkim_verify_finish(v, &r), 0);
	for (i = 0; i < dkim_verify_count(v); i++)
		pass += dkim_verify_result(v, i)->result == DKIM_PASS;
	assert_int_equal(dkim_verify_count(v), want_pass);
	assert_int_equal(pass, want_pass);
	dkim_verify_free(v);
	dns_static_free(z);
}

static void
sign_dual(void **state)
{
	struct config cfg;
	struct signer *s = make("dkim_sign example.test ed ed.key\n"
	    "dkim_sign example.test rsa rsa.key\n", &cfg);
	char dom[256] = "", why[256] = "";
	struct buf out;
	int fd = message_fd(msg_ok);

	assert_non_null(s);
	assert_true(signer_active(s));
	buf_init(&out, 65536);
	assert_int_equal(signer_sign(s, fd, UINT64_MAX, &out, dom, sizeof(dom), why, sizeof(why)), 1);
	assert_string_equal(dom, "example.test");
	assert_memory_equal(out.data, "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; "
	    "d=example.test;", 58);
	assert_non_null(strstr(out.data, "\r\nDKIM-Signature: v=1; a=rsa-sha256;"));
	verify(&out, msg_ok, 2);
	close(fd);
	buf_free(&out);
	signer_free(s);
	config_free(&cfg);
}

static void
not_signed(void **state)
{
	static const char *const msgs[] = {
		"From: alice@other.test\r\nSubject: x\r\n\r\nbody\r\n",
		"Subject: no from\r\n\r\nbody\r\n",
		"From: alice@sub.example.test\r\n\r\nbody\r\n",
		"",
	};
	struct config cfg;
	struct signer *s = make("dkim_sign example.test ed ed.key\n", &cfg);
	char dom[256] = "", why[256] = "";
	struct buf out;
	size_t i;

	buf_init(&out, 65536);
	for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		int fd = message_fd(msgs[i]);

		assert_int_equal(signer_sign(s, fd, UINT64_MAX, &out, dom, sizeof(dom), why, sizeof(why)), 0);
		assert_int_equal(out.len, 0);
		close(fd);
	}
	/* Several From domains: the first that has a key. */
	{
		static const char two[] = "From: a@other.test, b@example.test\r\n\r\nbody\r\n";
		int fd = message_fd(two);

		assert_int_equal(signer_sign(s, fd, UINT64_MAX, &out, dom, sizeof(dom), why, sizeof(why)), 1);
		assert_string_equal(dom, "example.test");
		verify(&out, two, 1);
		close(fd);
	}
	buf_free(&out);
	signer_free(s);
	config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(eligible),
		cmocka_unit_test(load_errors),
		cmocka_unit_test(sign_dual),
		cmocka_unit_test(not_signed),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
