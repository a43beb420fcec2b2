/* Tests for merge: the total order and merge_field's outcomes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "protocol/error.h"
#include "protocol/merge.h"

static struct merge_write w_int(uint64_t stamp, const char *site, int64_t i)
{
	struct merge_write w = {stamp, site, FIELD_INT, i, NULL, 0};
	return w;
}

static struct merge_write w_text(uint64_t stamp, const char *site, const char *t)
{
	struct merge_write w = {stamp, site, FIELD_TEXT, 0, t, strlen(t)};
	return w;
}

static struct merge_write w_null(uint64_t stamp, const char *site)
{
	struct merge_write w = {stamp, site, FIELD_NULL, 0, NULL, 0};
	return w;
}

static void test_stamp_first(void **state)
{
	(void)state;
	struct merge_write a = w_int(10, "zzz", 100), b = w_int(11, "aaa", -5);
	assert_true(merge_compare(&a, &b) < 0);
	assert_true(merge_compare(&b, &a) > 0);
	/* stamps compare as unsigned 64-bit */
	struct merge_write hi = w_int(UINT64_C(0x8000000000000000), "a", 0), lo = w_int(1, "z", 0);
	assert_true(merge_compare(&hi, &lo) > 0);
}

static void test_site_tie_break(void **state)
{
	(void)state;
	struct merge_write a = w_int(10, "v1", 100), b = w_int(10, "v2", -5);
	assert_true(merge_compare(&a, &b) < 0);
	assert_true(merge_compare(&b, &a) > 0);
	/* bytewise: "v1" < "v10" < "v2", "-" (0x2D) < "0" < "_" (0x5F) < "a" */
	struct merge_write s1 = w_null(5, "v1"), s10 = w_null(5, "v10"), s2 = w_null(5, "v2");
	assert_true(merge_compare(&s1, &s10) < 0);
	assert_true(merge_compare(&s10, &s2) < 0);
	struct merge_write d = w_null(5, "a-"), z = w_null(5, "a0"), u = w_null(5, "a_"),
			   l = w_null(5, "aa");
	assert_true(merge_compare(&d, &z) < 0);
	assert_true(merge_compare(&z, &u) < 0);
	assert_true(merge_compare(&u, &l) < 0);
}

static void test_value_order(void **state)
{
	(void)state;
	/* same stamp and site: only forged input gets here, and it must still be total */
	struct merge_write n = w_null(7, "s"), i1 = w_int(7, "s", INT64_MIN), i2 = w_int(7, "s", -1),
			   i3 = w_int(7, "s", 0), i4 = w_int(7, "s", INT64_MAX), t0 = w_text(7, "s", ""),
			   t1 = w_text(7, "s", "a"), t2 = w_text(7, "s", "ab"),
			   t3 = w_text(7, "s", "b"), t4 = w_text(7, "s", "\xE6\x95\xB4");
	const struct merge_write *order[] = {&n, &i1, &i2, &i3, &i4, &t0, &t1, &t2, &t3, &t4};
	size_t k = sizeof order / sizeof order[0];
	for (size_t x = 0; x < k; x++) {
		for (size_t y = 0; y < k; y++) {
			int c = merge_compare(order[x], order[y]);
			if (x < y)
				assert_true(c < 0);
			else if (x > y)
				assert_true(c > 0);
			else
				assert_int_equal(c, 0);
		}
	}
	/* texts with an embedded prefix and different lengths */
	struct merge_write p = {7, "s", FIELD_TEXT, 0, "abc", 2}, q = {7, "s", FIELD_TEXT, 0, "abc", 3};
	assert_true(merge_compare(&p, &q) < 0);
	/* the int member of a text write is ignored */
	struct merge_write r = {7, "s", FIELD_TEXT, 1, "x", 1}, s = {7, "s", FIELD_TEXT, 2, "x", 1};
	assert_int_equal(merge_compare(&r, &s), 0);
}

static void test_merge_field_outcomes(void **state)
{
	(void)state;
	const struct merge_write *loser = (const struct merge_write *)1;
	struct merge_write cur = w_text(10, "v1", "old"), inc = w_text(11, "v2", "new");

	assert_int_equal(merge_field(NULL, &inc, &loser), MERGE_TAKE_INCOMING);
	assert_null(loser);

	assert_int_equal(merge_field(&cur, &inc, &loser), MERGE_TAKE_INCOMING);
	assert_ptr_equal(loser, &cur);

	assert_int_equal(merge_field(&inc, &cur, &loser), MERGE_KEEP_CURRENT);
	assert_ptr_equal(loser, &cur);

	struct merge_write again = w_text(11, "v2", "new");
	loser = (const struct merge_write *)1;
	assert_int_equal(merge_field(&inc, &again, &loser), MERGE_SAME);
	assert_null(loser);

	/* same stamp and site, different value: not SAME; the greater value wins */
	struct merge_write forged = w_text(11, "v2", "newer");
	assert_int_equal(merge_field(&inc, &forged, &loser), MERGE_TAKE_INCOMING);
	assert_ptr_equal(loser, &inc);
	assert_int_equal(merge_field(&forged, &inc, &loser), MERGE_KEEP_CURRENT);
	assert_ptr_equal(loser, &inc);
}

static void test_write_from_change(void **state)
{
	(void)state;
	struct change *c = NULL;
	assert_int_equal(change_new(&c, 1, "v7", 3, 1000, "task", "t1"), TLY_OK);
	assert_int_equal(change_set_text(c, "title", "修路", strlen("修路"), NULL), TLY_OK);
	assert_int_equal(change_set_int(c, "progress", 40, NULL), TLY_OK);
	assert_int_equal(change_set_null(c, "deadline", NULL), TLY_OK);
	struct merge_write w;
	merge_write_from_change(c, 0, &w); /* deadline */
	assert_int_equal(w.stamp, 1000);
	assert_string_equal(w.site, "v7");
	assert_int_equal(w.type, FIELD_NULL);
	merge_write_from_change(c, 1, &w); /* progress */
	assert_int_equal(w.type, FIELD_INT);
	assert_int_equal(w.i, 40);
	merge_write_from_change(c, 2, &w); /* title */
	assert_int_equal(w.type, FIELD_TEXT);
	assert_int_equal(w.len, strlen("修路"));
	assert_memory_equal(w.text, "修路", w.len);
	/* eff, when set, is the stamp */
	change_set_eff(c, 5000);
	merge_write_from_change(c, 2, &w);
	assert_int_equal(w.stamp, 5000);
	change_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stamp_first),
		cmocka_unit_test(test_site_tie_break),
		cmocka_unit_test(test_value_order),
		cmocka_unit_test(test_merge_field_outcomes),
		cmocka_unit_test(test_write_from_change),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
