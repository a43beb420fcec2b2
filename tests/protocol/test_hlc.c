/* Tests for hlc: send rule, counter overflow, receive rule, bound, offset. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "protocol/error.h"
#include "protocol/hlc.h"

#define T0 UINT64_C(1774915200000) /* 2026-03-31T00:00:00Z in ms */

static void test_layout(void **state)
{
	(void)state;
	uint64_t t = hlc_make(T0, 7);
	assert_int_equal(hlc_ms(t), T0);
	assert_int_equal(hlc_counter(t), 7);
	assert_true(hlc_make(T0, 0xFFFF) < hlc_make(T0 + 1, 0));
	assert_int_equal(hlc_ms(hlc_make(HLC_MS_MAX, HLC_COUNTER_MAX)), HLC_MS_MAX);
}

static void test_send_monotonic(void **state)
{
	(void)state;
	struct hlc c;
	hlc_init(&c, 0);
	uint64_t prev = 0;
	uint64_t wall = T0;
	/* wall clock advancing, stalling and jumping back: always increasing,
	 * always at least the wall clock */
	for (int i = 0; i < 10000; i++) {
		if (i % 7 == 0)
			wall += 3;
		if (i % 101 == 0)
			wall -= 50;
		uint64_t t = hlc_send(&c, wall);
		assert_true(t > prev);
		assert_true(hlc_ms(t) >= wall);
		assert_int_equal(c.last, t);
		prev = t;
	}
}

static void test_send_uses_wall_when_ahead(void **state)
{
	(void)state;
	struct hlc c;
	hlc_init(&c, hlc_make(T0, 5));
	uint64_t t = hlc_send(&c, T0 + 10);
	assert_int_equal(t, hlc_make(T0 + 10, 0));
	t = hlc_send(&c, T0 + 10);
	assert_int_equal(t, hlc_make(T0 + 10, 1));
}

static void test_wall_going_backwards(void **state)
{
	(void)state;
	struct hlc c;
	hlc_init(&c, 0);
	uint64_t a = hlc_send(&c, T0 + 100000);
	/* the clock was set back by a day: stamps keep increasing from a */
	uint64_t b = hlc_send(&c, T0 + 100000 - 86400000);
	assert_true(b > a);
	assert_int_equal(hlc_ms(b), T0 + 100000);
	assert_int_equal(hlc_counter(b), 1);
}

static void test_counter_overflow_borrows_next_ms(void **state)
{
	(void)state;
	struct hlc c;
	hlc_init(&c, hlc_make(T0, HLC_COUNTER_MAX - 1));
	uint64_t t = hlc_send(&c, T0);
	assert_int_equal(t, hlc_make(T0, HLC_COUNTER_MAX));
	t = hlc_send(&c, T0);
	assert_int_equal(hlc_ms(t), T0 + 1);
	assert_int_equal(hlc_counter(t), 0);
	/* and a full 65536 events within one wall millisecond */
	hlc_init(&c, 0);
	uint64_t prev = 0;
	for (uint32_t i = 0; i < 3 * 65536u; i++) {
		t = hlc_send(&c, T0);
		assert_true(t > prev);
		prev = t;
	}
	assert_int_equal(hlc_ms(prev), T0 + 2);
}

static void test_never_zero_and_clamped(void **state)
{
	(void)state;
	struct hlc c;
	hlc_init(&c, 0);
	uint64_t t = hlc_send(&c, 0);
	assert_true(t != 0);
	hlc_init(&c, 0);
	t = hlc_send(&c, UINT64_MAX); /* clamped to the 48-bit maximum */
	assert_int_equal(hlc_ms(t), HLC_MS_MAX);
	t = hlc_send(&c, UINT64_MAX);
	assert_int_equal(hlc_ms(t), HLC_MS_MAX);
	assert_int_equal(hlc_counter(t), 1);
}

static void test_recv_rule(void **state)
{
	(void)state;
	struct hlc c;
	int64_t off = 12345;
	hlc_init(&c, hlc_make(T0, 3));
	/* a remote ahead of us (within bound) is accepted; the next send is past it */
	uint64_t remote = hlc_make(T0 + 2000, 9);
	assert_int_equal(hlc_recv(&c, remote, T0, 300000, &off), TLY_OK);
	assert_int_equal(off, 2000);
	assert_int_equal(c.last, remote);
	uint64_t t = hlc_send(&c, T0);
	assert_true(t > remote);
	assert_int_equal(t, hlc_make(T0 + 2000, 10));
	/* a remote behind us changes nothing */
	uint64_t before = c.last;
	assert_int_equal(hlc_recv(&c, hlc_make(T0 - 5, 0), T0, 300000, &off), TLY_OK);
	assert_int_equal(off, -5);
	assert_int_equal(c.last, before);
	/* NULL offset is allowed */
	assert_int_equal(hlc_recv(&c, hlc_make(T0, 1), T0, 300000, NULL), TLY_OK);
}

static void test_recv_bound(void **state)
{
	(void)state;
	struct hlc c;
	int64_t off = 0;
	hlc_init(&c, hlc_make(T0, 0));
	/* exactly at the bound passes, one millisecond past fails */
	uint64_t at = hlc_make(T0 + 300000, 0xFFFF);
	assert_true(hlc_within_bound(at, T0, 300000));
	assert_int_equal(hlc_recv(&c, at, T0, 300000, &off), TLY_OK);
	assert_int_equal(off, 300000);
	hlc_init(&c, hlc_make(T0, 0));
	uint64_t past = hlc_make(T0 + 300001, 0);
	assert_false(hlc_within_bound(past, T0, 300000));
	assert_int_equal(hlc_recv(&c, past, T0, 300000, &off), TLY_E_CLOCK_AHEAD);
	assert_int_equal(off, 300001); /* reported even when refused */
	assert_int_equal(c.last, hlc_make(T0, 0)); /* untouched */
	/* a clock two years ahead */
	uint64_t years = hlc_make(T0 + UINT64_C(2) * 365 * 86400000, 0);
	assert_int_equal(hlc_recv(&c, years, T0, 300000, &off), TLY_E_CLOCK_AHEAD);
	assert_int_equal(off, (int64_t)(UINT64_C(2) * 365 * 86400000));
	assert_int_equal(c.last, hlc_make(T0, 0));
	/* zero is not a timestamp */
	assert_int_equal(hlc_recv(&c, 0, T0, 300000, &off), TLY_E_BAD_VALUE);
	assert_false(hlc_within_bound(0, T0, 300000));
	/* no overflow near the top of the range */
	assert_true(hlc_within_bound(hlc_make(HLC_MS_MAX, 0), HLC_MS_MAX, UINT64_MAX));
	assert_true(hlc_within_bound(hlc_make(HLC_MS_MAX, 0), 0, UINT64_MAX));
	assert_false(hlc_within_bound(hlc_make(HLC_MS_MAX, 0), 0, 0));
	assert_true(hlc_within_bound(hlc_make(5, 0), UINT64_MAX, 0));
}

static void test_offset_negative(void **state)
{
	(void)state;
	struct hlc c;
	int64_t off = 0;
	hlc_init(&c, 0);
	/* a remote three days behind: offset is negative, accepted */
	uint64_t remote = hlc_make(T0 - 3 * 86400000, 0);
	assert_int_equal(hlc_recv(&c, remote, T0, 300000, &off), TLY_OK);
	assert_int_equal(off, -(int64_t)3 * 86400000);
	assert_int_equal(c.last, remote);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_send_monotonic),
		cmocka_unit_test(test_send_uses_wall_when_ahead),
		cmocka_unit_test(test_wall_going_backwards),
		cmocka_unit_test(test_counter_overflow_borrows_next_ms),
		cmocka_unit_test(test_never_zero_and_clamped),
		cmocka_unit_test(test_recv_rule),
		cmocka_unit_test(test_recv_bound),
		cmocka_unit_test(test_offset_negative),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
