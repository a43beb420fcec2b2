/* Tests for error: every code has a distinct stable name and a Chinese text. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "protocol/change.h"
#include "protocol/error.h"

static void test_names_distinct_and_round_trip(void **state)
{
	(void)state;
	for (int i = 0; i < TLY_E__COUNT; i++) {
		const char *n = error_name(i);
		assert_non_null(n);
		assert_true(strlen(n) > 0);
		assert_string_not_equal(n, "unknown");
		/* stable codes are lowercase snake_case: they travel in JSON and logs */
		for (const char *p = n; *p; p++)
			assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_');
		assert_int_equal(error_from_name(n), i);
		for (int j = 0; j < i; j++)
			assert_string_not_equal(n, error_name(j));
	}
}

static void test_chinese_texts(void **state)
{
	(void)state;
	for (int i = 0; i < TLY_E__COUNT; i++) {
		const char *t = error_text_zh(i);
		assert_non_null(t);
		assert_true(strlen(t) > 0);
		assert_int_equal(change_check_utf8(t, strlen(t)), TLY_OK);
		/* at least one CJK ideograph (3-byte UTF-8 starting E4..E9) */
		int cjk = 0;
		for (const unsigned char *p = (const unsigned char *)t; *p; p++)
			if (*p >= 0xE4 && *p <= 0xE9)
				cjk = 1;
		assert_true(cjk);
		for (int j = 0; j < i; j++)
			assert_string_not_equal(t, error_text_zh(j));
	}
	assert_string_equal(error_text_zh(TLY_E_BAD_DATE),
			    "日期格式不对，应为 YYYY-MM-DD，例如 2026-03-31");
}

static void test_unknown(void **state)
{
	(void)state;
	assert_string_equal(error_name(-1), "unknown");
	assert_string_equal(error_name(TLY_E__COUNT), "unknown");
	assert_string_equal(error_name(100000), "unknown");
	assert_true(strlen(error_text_zh(-5)) > 0);
	assert_true(strlen(error_text_zh(TLY_E__COUNT)) > 0);
	assert_int_equal(error_from_name("no_such_code"), TLY_E_REMOTE);
	assert_int_equal(error_from_name(""), TLY_E_REMOTE);
	assert_int_equal(error_from_name(NULL), TLY_E_REMOTE);
	assert_int_equal(error_from_name("unknown"), TLY_E_REMOTE);
}

static void test_some_fixed_names(void **state)
{
	(void)state;
	/* These names are on the wire; changing one breaks old peers. */
	assert_string_equal(error_name(TLY_OK), "ok");
	assert_string_equal(error_name(TLY_E_BAD_UTF8), "bad_utf8");
	assert_string_equal(error_name(TLY_E_CHAIN), "chain_broken");
	assert_string_equal(error_name(TLY_E_VERSION), "version_unsupported");
	assert_string_equal(error_name(TLY_E_SEQ_GAP), "seq_gap");
	assert_string_equal(error_name(TLY_E_REMOTE), "remote_error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_distinct_and_round_trip),
		cmocka_unit_test(test_chinese_texts),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_some_fixed_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
