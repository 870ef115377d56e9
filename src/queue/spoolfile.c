/* spoolfile — envelope and footer after the content (see spoolfile.h). */
#include "queue/spoolfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/*
 * Footer: magic (8) | queue ID (16) | content_len u64 | env_len u32 |
 * crc u32 | zero u32 | CRC of the 44 bytes before it u32; little endian.
 */
static const char magic[8] = "TERNSP1\n";

#define CHUNK (64 * 1024)

uint32_t
spool_crc(uint32_t crc, const void *p, size_t n)
{
	const unsigned char *b = p;

	/* zlib's length is a uInt: feed huge inputs in parts. */
	while (n > 0) {
		uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;

		crc = (uint32_t)crc32(crc, b, k);
		b += k;
		n -= k;
	}
	return crc;
}

static void
put_le(unsigned char *p, uint64_t v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t
get_le(const unsigned char *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void
spool_footer_encode(unsigned char out[SPOOL_FOOTER_LEN], const struct spool_footer *f)
{
	memset(out, 0, SPOOL_FOOTER_LEN);
	memcpy(out, magic, sizeof(magic));
	memcpy(out + 8, f->id, QUEUE_ID_LEN);
	put_le(out + 24, f->content_len, 8);
	put_le(out + 32, f->env_len, 4);
	put_le(out + 36, f->crc, 4);
	put_le(out + 44, spool_crc(0, out, 44), 4);
}

int
spool_footer_decode(const unsigned char *p, size_t n, struct spool_footer *f, const char **why)
{
	if (n != SPOOL_FOOTER_LEN || memcmp(p, magic, sizeof(magic)) != 0) {
		*why = "no footer";
		return -1;
	}
	if (get_le(p + 44, 4) != spool_crc(0, p, 44) || get_le(p + 40, 4) != 0) {
		*why = "footer damaged";
		return -1;
	}
	if (!envelope_id_valid((const char *)p + 8, QUEUE_ID_LEN)) {
		*why = "footer with a bad queue ID";
		return -1;
	}
	memcpy(f->id, p + 8, QUEUE_ID_LEN);
	f->id[QUEUE_ID_LEN] = '\0';
	f->content_len = get_le(p + 24, 8);
	f->env_len = (uint32_t)get_le(p + 32, 4);
	f->crc = (uint32_t)get_le(p + 36, 4);
	if (f->env_len == 0 || f->env_len > SPOOL_ENV_MAX || f->content_len > (uint64_t)INT64_MAX / 2) {
		*why = "footer with impossible lengths";
		return -1;
	}
	return 0;
}

static int
pwrite_all(int fd, const void *p, size_t n, off_t off)
{
	const char *c = p;
	ssize_t w;

	while (n > 0) {
		if ((w = pwrite(fd, c, n, off)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		c += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

/* CRC of fd's bytes [0, len), read with pread (the offset is not touched). */
static int
crc_of_range(int fd, uint64_t len, uint32_t *crc, unsigned char *chunk)
{
	uint64_t off = 0;
	ssize_t n;

	while (off < len) {
		size_t want = len - off > CHUNK ? CHUNK : (size_t)(len - off);

		if ((n = pread(fd, chunk, want, (off_t)off)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;	/* shorter than it claims */
			return -1;
		}
		*crc = spool_crc(*crc, chunk, (size_t)n);
		off += (uint64_t)n;
	}
	return 0;
}

/* The envelope and the footer at `off`: one write when they fit in buf (CHUNK bytes). */
static int
tail_write(int fd, const struct buf *envtext, const unsigned char *foot, unsigned char *buf, off_t off)
{
	if (envtext->len + SPOOL_FOOTER_LEN > CHUNK)
		return pwrite_all(fd, envtext->data, envtext->len, off) == 0 &&
		    pwrite_all(fd, foot, SPOOL_FOOTER_LEN, off + (off_t)envtext->len) == 0 ? 0 : -1;
	memcpy(buf, envtext->data, envtext->len);
	memcpy(buf + envtext->len, foot, SPOOL_FOOTER_LEN);
	return pwrite_all(fd, buf, envtext->len + SPOOL_FOOTER_LEN, off);
}

/*
 * The file ends at `end`: a reused spool file may be longer. Cut only
 * then: an ftruncate to the same size still costs a syscall and an inode
 * update per message.
 */
static int
end_at(int fd, off_t end)
{
	struct stat st;

	if (fstat(fd, &st) == 0 && st.st_size == end)
		return 0;
	return ftruncate(fd, end);
}

int
spool_append(int fd, const char *id, uint64_t content_len, const struct buf *envtext)
{
	struct spool_footer f;
	unsigned char foot[SPOOL_FOOTER_LEN], *chunk;
	uint32_t crc = 0;
	off_t end;
	int rc = -1;

	if (envtext->len == 0 || envtext->len > SPOOL_ENV_MAX || strlen(id) != QUEUE_ID_LEN) {
		errno = EINVAL;
		return -1;
	}
	if ((chunk = malloc(CHUNK)) == NULL)
		return -1;
	if (crc_of_range(fd, content_len, &crc, chunk) == 0) {
		memset(&f, 0, sizeof(f));
		memcpy(f.id, id, QUEUE_ID_LEN + 1);
		f.content_len = content_len;
		f.env_len = (uint32_t)envtext->len;
		f.crc = spool_crc(crc, envtext->data, envtext->len);
		spool_footer_encode(foot, &f);
		end = (off_t)(content_len + envtext->len + SPOOL_FOOTER_LEN);
		if (tail_write(fd, envtext, foot, chunk, (off_t)content_len) == 0 &&
		    end_at(fd, end) == 0)
			rc = 0;
	}
	free(chunk);
	return rc;
}

static int
read_exact(int fd, void *p, size_t n, off_t off)
{
	char *c = p;
	ssize_t r;

	while (n > 0) {
		if ((r = pread(fd, c, n, off)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			return -1;
		c += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

int
spool_read(int fd, const char *id, int check_crc, struct spool_footer *f, struct buf *env,
    const char **why)
{
	unsigned char foot[SPOOL_FOOTER_LEN], *chunk;
	struct stat st;
	char *text;
	uint32_t crc = 0;
	int rc;

	if (fstat(fd, &st) == -1 || st.st_size < SPOOL_FOOTER_LEN ||
	    read_exact(fd, foot, sizeof(foot), st.st_size - SPOOL_FOOTER_LEN) == -1) {
		*why = "no footer";
		return -1;
	}
	if (spool_footer_decode(foot, sizeof(foot), f, why) == -1)
		return -1;
	if (strcmp(f->id, id) != 0) {
		*why = "footer of another message";
		return -1;
	}
	if (f->content_len + f->env_len + SPOOL_FOOTER_LEN != (uint64_t)st.st_size) {
		*why = "footer does not match the file's length";
		return -1;
	}
	if (!check_crc && env == NULL)
		return 0;
	if ((text = malloc(f->env_len)) == NULL) {
		*why = "out of memory";
		return -1;
	}
	rc = read_exact(fd, text, f->env_len, (off_t)f->content_len);
	if (rc == 0 && check_crc) {
		if ((chunk = malloc(CHUNK)) == NULL || crc_of_range(fd, f->content_len, &crc, chunk) == -1 ||
		    spool_crc(crc, text, f->env_len) != f->crc)
			rc = -1;
		free(chunk);
	}
	if (rc == -1)
		*why = "content or envelope torn (CRC)";
	else if (env != NULL && buf_append(env, text, f->env_len) == -1) {
		*why = "envelope too large";
		rc = -1;
	}
	free(text);
	return rc;
}

int
spool_read_file(const char *path, const char *id, int check_crc, struct spool_footer *f,
    struct buf *env, const char **why)
{
	int fd, rc;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		*why = "cannot open";
		return -1;
	}
	rc = spool_read(fd, id, check_crc, f, env, why);
	close(fd);
	return rc;
}
