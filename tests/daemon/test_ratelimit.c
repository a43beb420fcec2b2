/*
 * test_ratelimit — token buckets on an injected clock: burst, refill,
 * retry-after, independent keys, bounded table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "daemon/ratelimit.h"
#include "protocol/error.h"

static void test_burst_then_refill(void **state)
{
	struct ratelimit *rl;
	uint64_t wait = 0;
	(void)state;
	/* 60 a minute = one a second, burst 5 */
	assert_int_equal(ratelimit_new(60, 5, 100, &rl), TLY_OK);
	for (int i = 0; i < 5; i++)
		assert_int_equal(ratelimit_take(rl, "dev:a", 1000, &wait), TLY_OK);
	assert_int_equal(ratelimit_take(rl, "dev:a", 1000, &wait), TLY_E_RATE_LIMITED);
	assert_int_equal(wait, 1000);
	/* half a second later: still nothing, half the wait left */
	assert_int_equal(ratelimit_take(rl, "dev:a", 1500, &wait), TLY_E_RATE_LIMITED);
	assert_int_equal(wait, 500);
	assert_int_equal(ratelimit_take(rl, "dev:a", 2000, &wait), TLY_OK);
	assert_int_equal(ratelimit_take(rl, "dev:a", 2000, &wait), TLY_E_RATE_LIMITED);
	/* another key is untouched */
	assert_int_equal(ratelimit_take(rl, "dev:b", 2000, &wait), TLY_OK);
	/* a long idle refills to the burst, not beyond */
	int ok = 0;
	while (ratelimit_take(rl, "dev:a", 10000000, &wait) == TLY_OK)
		ok++;
	assert_int_equal(ok, 5);
	ratelimit_free(rl);
}

/* Frequent calls must not lose fractions of a token: 1 a minute polled
 * every 10 ms still refills after 60 s. */
static void test_no_fraction_loss(void **state)
{
	struct ratelimit *rl;
	uint64_t wait = 0, t;
	(void)state;
	assert_int_equal(ratelimit_new(1, 1, 10, &rl), TLY_OK);
	assert_int_equal(ratelimit_take(rl, "k", 0, &wait), TLY_OK);
	for (t = 10; t < 60000; t += 10)
		assert_int_equal(ratelimit_take(rl, "k", t, &wait), TLY_E_RATE_LIMITED);
	assert_int_equal(ratelimit_take(rl, "k", 60000, &wait), TLY_OK);
	ratelimit_free(rl);
}

static void test_bounded_table(void **state)
{
	struct ratelimit *rl;
	char key[32];
	uint64_t wait = 0;
	(void)state;
	assert_int_equal(ratelimit_new(60, 2, 3, &rl), TLY_OK);
	for (int i = 0; i < 3; i++) {
		snprintf(key, sizeof key, "k%d", i);
		assert_int_equal(ratelimit_take(rl, key, 0, &wait), TLY_OK);
	}
	assert_int_equal(ratelimit_count(rl), 3);
	/* full, and every bucket busy: a new key is refused (fails closed) */
	assert_int_equal(ratelimit_take(rl, "new", 0, &wait), TLY_E_RATE_LIMITED);
	assert_true(wait > 0);
	/* once buckets have refilled they are dropped to make room */
	assert_int_equal(ratelimit_take(rl, "new", 5000, &wait), TLY_OK);
	assert_true(ratelimit_count(rl) <= 3);
	char big[RATELIMIT_KEY_MAX + 2];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_int_equal(ratelimit_take(rl, big, 0, &wait), TLY_E_FIELD_TOO_LONG);
	ratelimit_free(rl);
	assert_int_equal(ratelimit_new(0, 1, 1, &rl), TLY_E_USAGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_refill),
		cmocka_unit_test(test_no_fraction_loss),
		cmocka_unit_test(test_bounded_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
