/*
 * libFuzzer: a route's `auth FILE` (config_parse_secret in
 * src/daemon/config.c). What it accepts must be a user without blanks and
 * a password without a line end or outer blanks, both non-empty, both
 * copied from the first non-comment line of the input and within their
 * buffers; small buffers fail cleanly.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static void
check(const char *in, size_t size, const char *user, const char *pass, size_t psz)
{
	size_t ul = strlen(user), pl = strlen(pass), i;
	const char *u;

	if (ul == 0 || pl == 0 || pl >= psz || memchr(pass, '\n', pl) ||
	    blank(pass[0]) || blank(pass[pl - 1]))
		abort();
	for (i = 0; i < ul; i++)
		if (blank(user[i]) || user[i] == '\n')
			abort();
	/* The user name starts a line of the input, after blanks only. */
	u = memmem(in, size, user, ul);
	if (u == NULL || memmem(u + ul, size - (size_t)(u + ul - in), pass, pl) == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char user[256], pass[256], su[4], sp[4];
	char *in = malloc(size ? size : 1);	/* exactly size bytes: ASan sees overreads */

	if (in == NULL)
		return 0;
	memcpy(in, data, size);
	if (config_parse_secret(in, size, user, sizeof(user), pass, sizeof(pass)) == 0)
		check(in, size, user, pass, sizeof(pass));
	if (config_parse_secret(in, size, su, sizeof(su), sp, sizeof(sp)) == 0)
		check(in, size, su, sp, sizeof(sp));
	free(in);
	return 0;
}
