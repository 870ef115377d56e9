/*
 * libFuzzer: the footer after a spool file's content (src/queue/spoolfile.c),
 * both the footer parser over the last SPOOL_FOOTER_LEN bytes and the whole
 * file reader over a memfd. An accepted footer encodes back to the same
 * bytes; an accepted file has lengths that add up to its size and a CRC
 * that holds over what spool_read returned.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "queue/spoolfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char back[SPOOL_FOOTER_LEN];
	struct spool_footer f;
	const char *why;
	struct buf env;
	int fd;

	if (size > 1 << 20)
		return 0;
	if (size >= SPOOL_FOOTER_LEN &&
	    spool_footer_decode(data + size - SPOOL_FOOTER_LEN, SPOOL_FOOTER_LEN, &f, &why) == 0) {
		spool_footer_encode(back, &f);
		if (memcmp(back, data + size - SPOOL_FOOTER_LEN, SPOOL_FOOTER_LEN) != 0)
			abort();
	}
	if ((fd = memfd_create("spool", MFD_CLOEXEC)) == -1)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	buf_init(&env, SPOOL_ENV_MAX);
	/* The ID every seed in the corpus uses. */
	if (spool_read(fd, "0186c2a4f1e0b7d3", 1, &f, &env, &why) == 0) {
		if (f.content_len + f.env_len + SPOOL_FOOTER_LEN != size || env.len != f.env_len ||
		    memcmp(env.data, data + f.content_len, env.len) != 0 ||
		    spool_crc(spool_crc(0, data, (size_t)f.content_len), env.data, env.len) != f.crc)
			abort();
	}
	buf_free(&env);
	close(fd);
	return 0;
}
