/* Unit tests for common/base64: RFC 4648 section 10 vectors and the modes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/base64.h"

static const char *const vec[][2] = {
	{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
};

static void
test_rfc4648_vectors(void **state)
{
	char enc[16];
	unsigned char dec[16];
	size_t i, n, plain, code;

	(void)state;
	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		plain = strlen(vec[i][0]);
		code = strlen(vec[i][1]);
		n = base64_encode((const unsigned char *)vec[i][0], plain, enc);
		assert_int_equal(n, code);
		assert_int_equal(BASE64_ENCODED_LEN(plain), code);
		assert_memory_equal(enc, vec[i][1], code);
		assert_int_equal(base64_decode(vec[i][1], code, BASE64_CANONICAL, dec,
		    sizeof(dec), &n), 0);
		assert_int_equal(n, plain);
		assert_memory_equal(dec, vec[i][0], plain);
	}
}

static int
decode(const char *s, unsigned flags, size_t max)
{
	unsigned char out[64];
	size_t n = 0;

	return base64_decode(s, strlen(s), flags, out, max, &n);
}

static void
test_bad_input(void **state)
{
	(void)state;
	assert_int_equal(decode("Zg=", 0, 64), -1);		/* short padding */
	assert_int_equal(decode("Z===", 0, 64), -1);		/* too much padding */
	assert_int_equal(decode("Zg==Zg==", 0, 64), -1);	/* data after padding */
	assert_int_equal(decode("Zm9v!A==", 0, 64), -1);	/* bad character */
	assert_int_equal(decode("Zm9vY", 0, 64), -1);		/* one char of a group */
	assert_int_equal(decode("Zm9v", 0, 2), -1);		/* passes max */
	assert_int_equal(decode("Zg==", 0, 0), -1);
}

static void
test_modes(void **state)
{
	(void)state;
	/* "Zh==" has bits set below the padding: only canonical mode refuses it. */
	assert_int_equal(decode("Zh==", 0, 64), 0);
	assert_int_equal(decode("Zh==", BASE64_CANONICAL, 64), -1);
	assert_int_equal(decode("Zm9=", BASE64_CANONICAL, 64), -1);
	/* Folding white space only where DKIM allows it. */
	assert_int_equal(decode("Zm9v\r\n Ym Fy", 0, 64), -1);
	assert_int_equal(decode("Zm9v\r\n Ym Fy", BASE64_SKIP_FWS, 64), 0);
	assert_int_equal(decode("Zm9vYg =\t=", BASE64_SKIP_FWS, 64), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4648_vectors),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_modes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
