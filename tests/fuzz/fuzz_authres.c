/*
 * Fuzz harness for Authentication-Results. First byte even: the input is a
 * field value for authres_parse / authres_claims_id. Odd: the rest is
 * NUL-separated strings (authserv-id, then values) for authres_build; the
 * field built must have CRLF line ends, folded lines, no line over 998
 * bytes, and must parse back with the same authserv-id.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "mailauth/authres.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NSTR 8

static void
check_lines(const struct buf *b)
{
	size_t i, col = 0;

	if (b->len < 2 || memcmp(b->data + b->len - 2, "\r\n", 2) != 0)
		abort();
	for (i = 0; i < b->len; i++, col++) {
		if (b->data[i] == '\n' || (b->data[i] == '\r' && b->data[i + 1] != '\n'))
			abort();	/* bare LF or CR */
		if (b->data[i] != '\r')
			continue;
		if (col > 998 || (i + 2 < b->len && b->data[i + 2] != '\t'))
			abort();	/* long line or a new field injected */
		i++;
		col = (size_t)-1;
	}
}

static void
build_and_parse(const char *s[NSTR])
{
	struct authres_entry e[3];
	struct authres_parsed p;
	char want[AUTHRES_ID_MAX + 1];
	size_t hl = strlen("Authentication-Results:"), i, n = strlen(s[0]);
	struct buf b;

	authres_spf(&e[0], "pass", s[1], s[2]);
	authres_dkim(&e[1], "fail", s[3], s[4], s[5]);
	authres_dmarc(&e[2], "none", s[6], s[7][0] ? s[7] : NULL, NULL, NULL);
	e[0].comment = s[7];
	e[1].reason = s[6];
	buf_init(&b, 1 << 16);
	if (authres_build(&b, s[0], e, 3) == 0) {
		check_lines(&b);
		if (authres_parse(b.data + hl, b.len - hl, &p) != 0 && n <= AUTHRES_ID_MAX)
			abort();
		for (i = 0; i < n && n <= AUTHRES_ID_MAX; i++)
			want[i] = (unsigned char)s[0][i] < ' ' || s[0][i] == 0x7f ? '?' : s[0][i];
		if (n <= AUTHRES_ID_MAX && (want[n] = '\0', strcmp(p.authserv_id, want) != 0))
			abort();
	}
	buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s[NSTR];
	struct authres_parsed p;
	char *copy;
	size_t i, k;

	if (size == 0)
		return 0;
	if ((copy = malloc(size)) == NULL)
		return 0;
	memcpy(copy, data + 1, size - 1);
	if ((data[0] & 1) == 0) {
		authres_parse(copy, size - 1, &p);
		authres_claims_id(copy, size - 1, "mx.tern.example");
		free(copy);
		return 0;
	}
	copy[size - 1] = '\0';
	for (i = 0, k = 0; k < NSTR; k++) {
		s[k] = copy + i;
		i += strlen(copy + i);
		if (i < size - 1)
			i++;
	}
	build_and_parse(s);
	free(copy);
	return 0;
}
