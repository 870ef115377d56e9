/* Unit tests for src/queue/spoolfile.c: the envelope and footer after a message's content. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue/spoolfile.h"

#define ID  "0186c2a4f1e0b7d3"
#define ID2 "0186c2a4f1e0b7d4"

static int
temp_file(void)
{
	FILE *f = tmpfile();

	assert_non_null(f);
	return dup(fileno(f));	/* the FILE may go, the file stays while fd is open */
}

static void
put(int fd, const char *s, off_t off)
{
	assert_int_equal(pwrite(fd, s, strlen(s), off), (ssize_t)strlen(s));
}

static void
append(int fd, const char *id, uint64_t clen, const char *env)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	assert_int_equal(buf_appends(&b, env), 0);
	assert_int_equal(spool_append(fd, id, clen, &b), 0);
	buf_free(&b);
}

static void
test_footer_round_trip(void **state)
{
	unsigned char raw[SPOOL_FOOTER_LEN];
	struct spool_footer f = { ID, 123456789012ull, 4321, 0xdeadbeef }, g;
	const char *why = NULL;

	(void)state;
	spool_footer_encode(raw, &f);
	assert_int_equal(spool_footer_decode(raw, sizeof(raw), &g, &why), 0);
	assert_string_equal(g.id, ID);
	assert_true(g.content_len == f.content_len);
	assert_int_equal(g.env_len, 4321);
	assert_true(g.crc == 0xdeadbeef);
	/* Any changed byte is caught by the footer's own CRC or its checks. */
	for (size_t i = 0; i < sizeof(raw); i++) {
		raw[i] ^= 0x20;
		assert_int_equal(spool_footer_decode(raw, sizeof(raw), &g, &why), -1);
		raw[i] ^= 0x20;
	}
	assert_int_equal(spool_footer_decode(raw, sizeof(raw) - 1, &g, &why), -1);
}

static void
test_footer_rejects(void **state)
{
	unsigned char raw[SPOOL_FOOTER_LEN];
	struct spool_footer f = { ID, 10, 0, 1 }, g;
	const char *why = NULL;

	(void)state;
	spool_footer_encode(raw, &f);	/* env_len 0: a valid CRC, impossible lengths */
	assert_int_equal(spool_footer_decode(raw, sizeof(raw), &g, &why), -1);
	assert_string_equal(why, "footer with impossible lengths");
	f.env_len = SPOOL_ENV_MAX + 1;
	spool_footer_encode(raw, &f);
	assert_int_equal(spool_footer_decode(raw, sizeof(raw), &g, &why), -1);
	memcpy(f.id, "0186C2A4F1E0B7D3", QUEUE_ID_LEN);	/* queue IDs are lower case */
	f.env_len = 5;
	spool_footer_encode(raw, &f);
	assert_int_equal(spool_footer_decode(raw, sizeof(raw), &g, &why), -1);
	assert_string_equal(why, "footer with a bad queue ID");
}

static void
test_append_and_read(void **state)
{
	struct spool_footer f;
	const char *why = NULL;
	struct buf env;
	int fd = temp_file();

	(void)state;
	/* A reused file: longer than the new content, its old bytes must go. */
	put(fd, "OLD OLD OLD OLD OLD OLD OLD OLD OLD OLD OLD OLD OLD OLD OLD\r\n", 0);
	put(fd, "Subject: hi\r\n\r\nbody\r\n", 0);
	append(fd, ID, 21, "v: 2\nend: 1\n");
	assert_int_equal(lseek(fd, 0, SEEK_END), 21 + 12 + SPOOL_FOOTER_LEN);
	buf_init(&env, 1 << 20);
	assert_int_equal(spool_read(fd, ID, 1, &f, &env, &why), 0);
	assert_true(f.content_len == 21);
	assert_int_equal(env.len, 12);
	assert_memory_equal(env.data, "v: 2\nend: 1\n", 12);
	/* Named for another message: not this one's commit. */
	assert_int_equal(spool_read(fd, ID2, 0, &f, NULL, &why), -1);
	assert_string_equal(why, "footer of another message");
	buf_free(&env);
	close(fd);
}

/*
 * An envelope too large to go out in one write with its footer (64 KiB
 * and more: thousands of recipients), and a file reused for a message of
 * the same length (nothing to cut): both read back whole.
 */
static void
test_large_envelope_and_same_size(void **state)
{
	struct spool_footer f;
	const char *why = NULL;
	struct buf env, big;
	int fd = temp_file();

	(void)state;
	buf_init(&big, 1 << 20);
	while (big.len < 70000)
		assert_int_equal(buf_appends(&big, "rcpt: <someone@example.org> 0 N\n"), 0);
	put(fd, "Subject: hi\r\n\r\nbody\r\n", 0);
	assert_int_equal(spool_append(fd, ID, 21, &big), 0);
	assert_int_equal(lseek(fd, 0, SEEK_END), (off_t)(21 + big.len + SPOOL_FOOTER_LEN));
	buf_init(&env, 1 << 20);
	assert_int_equal(spool_read(fd, ID, 1, &f, &env, &why), 0);
	assert_int_equal(env.len, big.len);
	assert_memory_equal(env.data, big.data, big.len);
	/* Reused by a message of the same sizes: the footer is the new one. */
	put(fd, "Subject: ho\r\n\r\nbody\r\n", 0);
	assert_int_equal(spool_append(fd, ID2, 21, &big), 0);
	assert_int_equal(lseek(fd, 0, SEEK_END), (off_t)(21 + big.len + SPOOL_FOOTER_LEN));
	assert_int_equal(spool_read(fd, ID2, 1, &f, NULL, &why), 0);
	assert_int_equal(spool_read(fd, ID, 0, &f, NULL, &why), -1);
	buf_free(&env);
	buf_free(&big);
	close(fd);
}

/*
 * After a crash a reused file can hold an intact footer over content of
 * which only some pages were written: the CRC must refuse it.
 */
static void
test_torn_content(void **state)
{
	struct spool_footer f;
	const char *why = NULL;
	int fd = temp_file();

	(void)state;
	put(fd, "Subject: old\r\n\r\nold body\r\n", 0);
	append(fd, ID, 26, "v: 2\nend: 1\n");
	put(fd, "NEW", 16);	/* part of a new message over the old one */
	assert_int_equal(spool_read(fd, ID, 0, &f, NULL, &why), 0);	/* looks committed */
	assert_int_equal(spool_read(fd, ID, 1, &f, NULL, &why), -1);	/* but is not */
	assert_string_equal(why, "content or envelope torn (CRC)");
	/* The old bytes back: the CRC holds again. */
	put(fd, "old", 16);
	assert_int_equal(spool_read(fd, ID, 1, &f, NULL, &why), 0);
	/* The envelope is covered too. */
	put(fd, "x", 26 + 3);
	assert_int_equal(spool_read(fd, ID, 1, &f, NULL, &why), -1);
	put(fd, "2", 26 + 3);
	assert_int_equal(spool_read(fd, ID, 1, &f, NULL, &why), 0);
	close(fd);
}

static void
test_lengths(void **state)
{
	struct spool_footer f;
	const char *why = NULL;
	int fd = temp_file();

	(void)state;
	/* No footer at all, and a file too short to hold one. */
	put(fd, "short", 0);
	assert_int_equal(spool_read(fd, ID, 1, &f, NULL, &why), -1);
	assert_string_equal(why, "no footer");
	put(fd, "Subject: x\r\n\r\nbody body body body body body body body body\r\n", 0);
	append(fd, ID, 20, "v: 2\nend: 1\n");
	assert_int_equal(spool_read(fd, ID, 1, &f, NULL, &why), 0);
	/* Bytes after the footer (or a file cut short) do not match its lengths. */
	assert_int_equal(ftruncate(fd, 20 + 12 + SPOOL_FOOTER_LEN + 1), 0);
	assert_int_equal(spool_read(fd, ID, 0, &f, NULL, &why), -1);
	/* A footer that claims more content than the file holds. */
	{
		unsigned char raw[SPOOL_FOOTER_LEN];
		struct spool_footer big = { ID, 1000, 12, 0 };

		assert_int_equal(ftruncate(fd, 20 + 12), 0);
		spool_footer_encode(raw, &big);
		assert_int_equal(pwrite(fd, raw, sizeof(raw), 32), (ssize_t)sizeof(raw));
		assert_int_equal(spool_read(fd, ID, 1, &f, NULL, &why), -1);
		assert_string_equal(why, "footer does not match the file's length");
	}
	/* spool_append refuses an empty envelope and a bad ID. */
	{
		struct buf b;

		buf_init(&b, 16);
		assert_int_equal(spool_append(fd, ID, 20, &b), -1);
		assert_int_equal(buf_appends(&b, "x"), 0);
		assert_int_equal(spool_append(fd, "short", 20, &b), -1);
		buf_free(&b);
	}
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_footer_round_trip),
		cmocka_unit_test(test_footer_rejects),
		cmocka_unit_test(test_append_and_read),
		cmocka_unit_test(test_large_envelope_and_same_size),
		cmocka_unit_test(test_torn_content),
		cmocka_unit_test(test_lengths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
