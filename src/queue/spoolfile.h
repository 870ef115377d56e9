/*
 * spoolfile — the envelope stored at the end of a message's content file.
 *
 * A first commit writes, after the content, the envelope text and a
 * fixed-size footer, and makes that one file durable with one fdatasync:
 *
 *     [content: content_len bytes][envelope: env_len bytes][footer]
 *
 * The footer names the queue ID, both lengths and a CRC-32 over content
 * and envelope, and carries a CRC of its own. The CRC matters because
 * content files are reused: after a crash a file may hold a valid-looking
 * footer over pages of which only some were written back (a new message
 * over an old one); the CRC tells such a file from a committed one.
 * Every reader of the content stops at content_len.
 *
 * Later envelope rewrites go to queue/ID.env (written, synced, renamed),
 * which then takes precedence; the footer still gives the content length.
 */
#ifndef TERN_SPOOLFILE_H
#define TERN_SPOOLFILE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "queue/envelope.h"

#define SPOOL_FOOTER_LEN 48
#define SPOOL_ENV_MAX    (4u * 1024 * 1024)	/* the largest envelope a footer may announce */

struct spool_footer {
	char     id[QUEUE_ID_LEN + 1];
	uint64_t content_len;
	uint32_t env_len;
	uint32_t crc;	/* CRC-32 (zlib) of content, then envelope */
};

/* CRC-32 of p[0..n), continuing from crc (0 to start). */
uint32_t spool_crc(uint32_t crc, const void *p, size_t n);

/* The footer's bytes for f. */
void spool_footer_encode(unsigned char out[SPOOL_FOOTER_LEN], const struct spool_footer *f);

/*
 * Parses a footer from p[0..n) (n must be SPOOL_FOOTER_LEN): magic, its
 * own CRC, an ID of hex digits, env_len within SPOOL_ENV_MAX. 0, or -1
 * with *why set.
 */
int spool_footer_decode(const unsigned char *p, size_t n, struct spool_footer *f, const char **why);

/*
 * Appends the envelope text and the footer at content_len of fd (cutting
 * whatever a reused file held beyond), after reading the content back for
 * the CRC. No sync: the caller fdatasyncs. 0, or -1 with errno.
 */
int spool_append(int fd, const char *id, uint64_t content_len, const struct buf *envtext);

/*
 * Reads the footer of fd (whose name gives `id`). With check_crc, also
 * reads content and envelope and verifies the CRC. On success fills *f,
 * and env (if not NULL) with the envelope text. -1 with *why if the file
 * has no footer for this ID (never committed through one), or it is torn.
 */
int spool_read(int fd, const char *id, int check_crc, struct spool_footer *f, struct buf *env,
    const char **why);

/* spool_read of the file at path (opened read-only and closed again). */
int spool_read_file(const char *path, const char *id, int check_crc, struct spool_footer *f,
    struct buf *env, const char **why);

#endif
