/* Tests for buf: growth, the cap, NUL termination, detach and reset. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "protocol/buf.h"
#include "protocol/error.h"

static void test_empty(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 100);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	size_t len = 99;
	assert_null(buf_detach(&b, &len));
	assert_int_equal(len, 0);
	buf_free(&b);
}

static void test_append_grows_and_terminates(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 1 << 20);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(buf_add(&b, "abc", 3), TLY_OK);
	assert_int_equal(b.len, 3000);
	assert_true(b.alloc > b.len);
	assert_int_equal(b.data[3000], '\0');
	assert_int_equal(strlen(b.data), 3000);
	assert_memory_equal(b.data + 2997, "abc", 3);
	buf_free(&b);
	assert_null(b.data);
}

static void test_cap_exact_and_over(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 10);
	assert_int_equal(buf_add(&b, "0123456789", 10), TLY_OK);
	/* memory never exceeds the cap plus the terminating NUL */
	assert_true(b.alloc <= 11);
	assert_int_equal(buf_add(&b, "x", 1), TLY_E_TOO_LARGE);
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "0123456789");
	/* an empty append at the cap is fine */
	assert_int_equal(buf_add(&b, "", 0), TLY_OK);
	buf_free(&b);

	buf_init(&b, 5);
	assert_int_equal(buf_add_str(&b, "abc"), TLY_OK);
	assert_int_equal(buf_add_str(&b, "def"), TLY_E_TOO_LARGE);
	assert_string_equal(b.data, "abc"); /* unchanged on error */
	buf_free(&b);
}

static void test_huge_declared_size_refused_before_alloc(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 1024);
	/* A pointer that must never be read: the cap check comes first. */
	assert_int_equal(buf_add(&b, (const void *)1, SIZE_MAX), TLY_E_TOO_LARGE);
	assert_int_equal(buf_add(&b, (const void *)1, SIZE_MAX / 2), TLY_E_TOO_LARGE);
	assert_null(b.data);
	buf_free(&b);
}

static void test_addf(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 4096);
	assert_int_equal(buf_addf(&b, "%d-%s", 42, "x"), TLY_OK);
	assert_string_equal(b.data, "42-x");
	char big[1000];
	memset(big, 'z', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_int_equal(buf_addf(&b, "[%s]", big), TLY_OK); /* past the small stack buffer */
	assert_int_equal(b.len, 4 + 2 + 999);
	assert_int_equal(b.data[5], 'z');
	assert_int_equal(b.data[b.len - 1], ']');
	buf_free(&b);

	buf_init(&b, 8);
	assert_int_equal(buf_addf(&b, "%s", "123456789"), TLY_E_TOO_LARGE);
	assert_int_equal(b.len, 0);
	assert_int_equal(buf_addf(&b, "%s", big), TLY_E_TOO_LARGE);
	assert_int_equal(buf_addf(&b, "%d", 1234), TLY_OK);
	assert_string_equal(b.data, "1234");
	buf_free(&b);
}

static void test_reset_and_detach(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 64);
	assert_int_equal(buf_add_str(&b, "hello"), TLY_OK);
	char *keep = b.data;
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_ptr_equal(b.data, keep); /* memory kept */
	assert_string_equal(b.data, "");
	assert_int_equal(buf_add_str(&b, "world"), TLY_OK);
	size_t len = 0;
	char *p = buf_detach(&b, &len);
	assert_non_null(p);
	assert_int_equal(len, 5);
	assert_string_equal(p, "world");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.max, 64); /* still usable with its cap */
	assert_int_equal(buf_add_str(&b, "again"), TLY_OK);
	assert_string_equal(b.data, "again");
	free(p);
	buf_free(&b);
}

static void test_binary_bytes(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 16);
	const unsigned char bytes[] = {0, 1, 0xFF, 0};
	assert_int_equal(buf_add(&b, bytes, sizeof bytes), TLY_OK);
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, bytes, 4);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_append_grows_and_terminates),
		cmocka_unit_test(test_cap_exact_and_over),
		cmocka_unit_test(test_huge_declared_size_refused_before_alloc),
		cmocka_unit_test(test_addf),
		cmocka_unit_test(test_reset_and_detach),
		cmocka_unit_test(test_binary_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
