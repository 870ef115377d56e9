/* Unit tests for src/common/idmap.c: queue ID to message. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/idmap.h"

#define N 20000	/* enough to grow the table nine times */

static void
key_of(char *out, size_t n, unsigned i)
{
	snprintf(out, n, "0186c2a4%08x", i);
}

static void
test_put_get_del_many(void **state)
{
	struct idmap *m = idmap_new();
	static int vals[N];
	char key[32];
	unsigned i;

	(void)state;
	assert_non_null(m);
	for (i = 0; i < N; i++) {
		key_of(key, sizeof(key), i);
		assert_int_equal(idmap_put(m, key, &vals[i]), 0);
	}
	assert_int_equal(idmap_count(m), N);
	for (i = 0; i < N; i++) {
		key_of(key, sizeof(key), i);
		assert_ptr_equal(idmap_get(m, key), &vals[i]);
	}
	key_of(key, sizeof(key), N);
	assert_null(idmap_get(m, key));
	/* Every other one removed: the rest still found, the removed not. */
	for (i = 0; i < N; i += 2) {
		key_of(key, sizeof(key), i);
		assert_ptr_equal(idmap_del(m, key), &vals[i]);
		assert_null(idmap_del(m, key));
	}
	assert_int_equal(idmap_count(m), N / 2);
	for (i = 0; i < N; i++) {
		key_of(key, sizeof(key), i);
		if (i % 2)
			assert_ptr_equal(idmap_get(m, key), &vals[i]);
		else
			assert_null(idmap_get(m, key));
	}
	idmap_free(m);
}

static void
test_duplicate_and_bad_keys(void **state)
{
	struct idmap *m = idmap_new();
	int a, b;
	char longkey[IDMAP_KEY_MAX + 2];

	(void)state;
	assert_int_equal(idmap_put(m, "0186c2a4f1e0b7d3", &a), 0);
	errno = 0;
	assert_int_equal(idmap_put(m, "0186c2a4f1e0b7d3", &b), -1);
	assert_int_equal(errno, EEXIST);
	assert_ptr_equal(idmap_get(m, "0186c2a4f1e0b7d3"), &a);
	/* Keys are compared whole: a prefix or a longer key is another key. */
	assert_null(idmap_get(m, "0186c2a4f1e0b7d"));
	assert_null(idmap_get(m, "0186c2a4f1e0b7d33"));
	errno = 0;
	assert_int_equal(idmap_put(m, "", &b), -1);
	assert_int_equal(errno, EINVAL);
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	errno = 0;
	assert_int_equal(idmap_put(m, longkey, &b), -1);
	assert_int_equal(errno, EINVAL);
	longkey[IDMAP_KEY_MAX] = '\0';
	assert_int_equal(idmap_put(m, longkey, &b), 0);
	assert_ptr_equal(idmap_get(m, longkey), &b);
	assert_int_equal(idmap_count(m), 2);
	/* Removed, the key can be put again. */
	assert_ptr_equal(idmap_del(m, "0186c2a4f1e0b7d3"), &a);
	assert_int_equal(idmap_put(m, "0186c2a4f1e0b7d3", &b), 0);
	assert_ptr_equal(idmap_get(m, "0186c2a4f1e0b7d3"), &b);
	idmap_free(m);
	idmap_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get_del_many),
		cmocka_unit_test(test_duplicate_and_bad_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
