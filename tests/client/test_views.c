/*
 * views: warning colours, overdue, stale and behind with an injected
 * "today", the task list filters, completion rates, dates.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "client/clock.h"
#include "helpers.h"
#include "client/ledger.h"
#include "client/views.h"

static void test_flags(void **state)
{
	(void)state;
	struct views_settings s;
	views_settings_load(NULL, &s);
	static const struct {
		const char *today, *status, *deadline, *created, *last;
		int64_t progress;
		const char *warning;
		int overdue, stale, behind;
	} t[] = {
		/* colours by days left */
		{"2026-03-01", "doing", "2026-02-28", "2026-01-01", "2026-02-27", 90, "red", 1, 0, 0},
		{"2026-03-01", "doing", "2026-03-01", "2026-01-01", "2026-02-27", 95, "yellow", 0, 0, 0},
		{"2026-03-01", "doing", "2026-03-11", "2026-01-01", "2026-02-27", 95, "yellow", 0, 0, 0},
		{"2026-03-01", "doing", "2026-03-12", "2026-01-01", "2026-02-27", 95, "blue", 0, 0, 0},
		{"2026-03-01", "doing", "2026-03-21", "2026-01-01", "2026-02-27", 95, "blue", 0, 0, 0},
		{"2026-03-01", "doing", "2026-03-22", "2026-01-01", "2026-02-27", 95, "none", 0, 0, 0},
		/* closed and withdrawn: never overdue, no warnings */
		{"2026-03-01", "closed", "2026-01-01", "2025-01-01", NULL, 0, "none", 0, 0, 0},
		{"2026-03-01", "withdrawn", "2026-01-01", "2025-01-01", NULL, 0, "none", 0, 0, 0},
		/* stale: 14 days since the last entry, or since creation */
		{"2026-03-15", "doing", "2026-12-31", "2026-03-01", "2026-03-01", 50, "none", 0, 1, 0},
		{"2026-03-14", "doing", "2026-12-31", "2026-03-01", "2026-03-01", 50, "none", 0, 0, 0},
		{"2026-03-15", "todo", "2026-12-31", "2026-03-01", NULL, 0, "none", 0, 1, 0},
		/* behind: half the time gone (50 points expected) */
		{"2026-01-31", "doing", "2026-03-02", "2026-01-01", "2026-01-30", 29, "none", 0, 0, 1},
		{"2026-01-31", "doing", "2026-03-02", "2026-01-01", "2026-01-30", 30, "none", 0, 0, 0},
		/* leap day */
		{"2028-02-28", "doing", "2028-02-29", "2028-02-01", "2028-02-27", 99, "yellow", 0, 0, 0},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct views_flags f;
		views_task_flags(&s, t[i].today, t[i].status, t[i].deadline, t[i].created, t[i].last,
				 t[i].progress, &f);
		if (strcmp(f.warning, t[i].warning) != 0 || f.overdue != t[i].overdue ||
		    f.stale != t[i].stale || f.behind != t[i].behind)
			fail_msg("row %zu: warning %s overdue %d stale %d behind %d", i, f.warning,
				 f.overdue, f.stale, f.behind);
	}
	/* Thresholds are settings. */
	s.yellow_days = 3;
	struct views_flags f;
	views_task_flags(&s, "2026-03-01", "doing", "2026-03-05", NULL, NULL, 0, &f);
	assert_string_equal(f.warning, "blue");
}

static void test_dates(void **state)
{
	(void)state;
	static const char *const good[] = {"2026-03-31", "2024-02-29", "2000-02-29", "1900-01-01"};
	static const char *const bad[] = {"2026-02-29", "1900-02-29", "2026-13-01", "2026-00-10",
					  "2026-1-01", "2026/01/01", "26-01-01", "2026-01-32",
					  "", "2026-01-01x", "１２３４-01-01"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		assert_int_equal(clock_check_date(good[i]), TLY_OK);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(clock_check_date(bad[i]), TLY_E_BAD_DATE);
	/* Day numbers round-trip over four centuries. */
	for (int64_t d = -25567; d < 146097; d += 37) {
		char s[CLOCK_DATE_LEN + 1];
		int64_t back;
		clock_days_date(d, s);
		assert_int_equal(clock_date_days(s, &back), TLY_OK);
		assert_int_equal(back, d);
	}
	int64_t d;
	assert_int_equal(clock_date_days("1970-01-01", &d), TLY_OK);
	assert_int_equal(d, 0);
	setenv("TALLY_TODAY", "2026-05-06", 1);
	char today[CLOCK_DATE_LEN + 1];
	assert_int_equal(clock_today(today), TLY_OK);
	assert_string_equal(today, "2026-05-06");
	setenv("TALLY_TODAY", "2026-05-66", 1);
	assert_int_equal(clock_today(today), TLY_E_BAD_DATE);
	unsetenv("TALLY_TODAY");
	setenv("TALLY_CLOCK_SKEW_MS", "86400000", 1);
	int64_t skewed = clock_device_ms();
	unsetenv("TALLY_CLOCK_SKEW_MS");
	int64_t plain = clock_device_ms();
	assert_true(skewed - plain > 86390000 && skewed - plain < 86410000);
}

static void test_list_and_report(void **state)
{
	(void)state;
	char *dir = tmp_dir(), *path = path_in(dir, "t.db");
	struct db *db = NULL;
	char v1[LEDGER_ID_SIZE], v2[LEDGER_ID_SIZE], p1[LEDGER_ID_SIZE], p2[LEDGER_ID_SIZE];
	char t1[LEDGER_ID_SIZE], t2[LEDGER_ID_SIZE], t3[LEDGER_ID_SIZE];
	setenv("TALLY_TODAY", "2026-03-01", 1);
	assert_int_equal(ledger_init(path, "township", "镇", NULL, &db, NULL), TLY_OK);
	assert_int_equal(ledger_village_add(db, "甲村", v1, NULL), TLY_OK);
	assert_int_equal(ledger_village_add(db, "乙村", v2, NULL), TLY_OK);
	struct ledger_problem pa = {.source = "audit", .text = "审计问题"};
	struct ledger_problem pb = {.source = "patrol", .text = "巡察问题"};
	assert_int_equal(ledger_problem_add(db, &pa, p1, NULL), TLY_OK);
	assert_int_equal(ledger_problem_add(db, &pb, p2, NULL), TLY_OK);
	struct ledger_task t = {.problem = p1, .village = v1, .measures = "m", .owner = "o",
				.leader = "l", .deadline = "2026-02-01"};
	assert_int_equal(ledger_task_add(db, &t, t1, NULL), TLY_OK); /* overdue */
	t.deadline = "2026-03-05";
	t.problem = p2;
	assert_int_equal(ledger_task_add(db, &t, t2, NULL), TLY_OK); /* yellow */
	t.village = v2;
	t.deadline = "2026-12-31";
	assert_int_equal(ledger_task_add(db, &t, t3, NULL), TLY_OK);
	assert_int_equal(ledger_progress_add(db, t3, 100, "完成", NULL, NULL, 0, NULL, NULL), TLY_OK);
	assert_int_equal(ledger_submit(db, t3, NULL), TLY_OK);
	assert_int_equal(ledger_review(db, t3, 1, "同意", NULL, NULL), TLY_OK);

	json_t *arr;
	struct views_task_filter f = {NULL, NULL, NULL, 1, NULL};
	assert_int_equal(views_task_list(db, &f, &arr), TLY_OK);
	assert_int_equal(json_array_size(arr), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "id")), t1);
	json_decref(arr);
	struct views_task_filter g = {NULL, NULL, NULL, -1, "yellow"};
	assert_int_equal(views_task_list(db, &g, &arr), TLY_OK);
	assert_int_equal(json_array_size(arr), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "id")), t2);
	json_decref(arr);
	struct views_task_filter h = {v2, "closed", "patrol", -1, NULL};
	assert_int_equal(views_task_list(db, &h, &arr), TLY_OK);
	assert_int_equal(json_array_size(arr), 1);
	json_t *o = json_array_get(arr, 0);
	assert_int_equal(json_integer_value(json_object_get(o, "progress")), 100);
	assert_false(json_is_true(json_object_get(o, "overdue")));
	json_decref(arr);

	json_t *r;
	assert_int_equal(views_report(db, &r), TLY_OK);
	json_t *total = json_object_get(r, "total");
	assert_int_equal(json_integer_value(json_object_get(total, "tasks")), 3);
	assert_int_equal(json_integer_value(json_object_get(total, "closed")), 1);
	assert_int_equal(json_integer_value(json_object_get(total, "completion_permille")), 333);
	json_t *gv;
	size_t i;
	int seen = 0;
	json_array_foreach(json_object_get(r, "by_village"), i, gv)
	{
		if (strcmp(json_string_value(json_object_get(gv, "label")), "乙村") == 0) {
			assert_int_equal(json_integer_value(json_object_get(gv, "completion_permille")),
					 1000);
			seen++;
		}
	}
	json_array_foreach(json_object_get(r, "by_source"), i, gv)
	{
		if (strcmp(json_string_value(json_object_get(gv, "key")), "patrol") == 0) {
			assert_int_equal(json_integer_value(json_object_get(gv, "tasks")), 2);
			assert_int_equal(json_integer_value(json_object_get(gv, "completion_permille")),
					 500);
			seen++;
		}
	}
	assert_int_equal(seen, 2);
	json_decref(r);
	unsetenv("TALLY_TODAY");
	db_close(db);
	free(path);
	rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_list_and_report),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
