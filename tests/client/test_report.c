/*
 * report: display width of UTF-8, cleaning bytes before Excel, CSV quoting,
 * the report built from a small ledger (counts, rate with withdrawn left
 * out, freshness on a township and on a village device), a writer holding
 * the write lock does not block a report, and an .xlsx that is a zip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "client/clock.h"
#include "client/ledger.h"
#include "client/report.h"
#include "client/report_csv.h"
#include "client/report_xlsx.h"
#include "helpers.h"

static void test_display_width(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t w;
	} t[] = {
		{"", 0},
		{"abc", 3},
		{"王家村", 6},
		{"a王b", 4},
		{"（汇总）", 8},         /* fullwidth brackets */
		{"\xF0\xA0\x80\x80", 2}, /* U+20000, CJK extension B: 4 bytes, 2 columns */
		{"\xF0\x9F\x98\x80", 2}, /* U+1F600 emoji */
		{"e\xCC\x81", 1},        /* e + combining acute */
		{"\xE2\x80\x8B", 0},     /* zero width space */
		{"\xFF" "a", 2},         /* an invalid byte counts one column */
		{"\xE4\xB8", 2},         /* truncated sequence: two invalid bytes */
		{"한국", 4},
		{"→", 1},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		if (report_display_width(t[i].s) != t[i].w)
			fail_msg("row %zu: width %zu, want %zu", i, report_display_width(t[i].s),
				 t[i].w);
	}
}

static void test_utf8_clean(void **state)
{
	(void)state;
	char out[64];
	assert_int_equal(report_utf8_clean("王家村 ok\t\n", out, sizeof out), 0);
	assert_string_equal(out, "王家村 ok\t\n");
	assert_int_equal(report_utf8_clean("a\xFF" "b", out, sizeof out), 1);
	assert_string_equal(out, "a\xEF\xBF\xBD" "b");
	/* Overlong '/', a surrogate, a control character: each bad byte replaced. */
	assert_int_equal(report_utf8_clean("\xC0\xAF|\xED\xA0\x80|\x01", out, sizeof out), 6);
	assert_int_equal(change_check_utf8(out, strlen(out)), TLY_OK);
	assert_string_equal(out, "\xEF\xBF\xBD\xEF\xBF\xBD|\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD|"
				 "\xEF\xBF\xBD");
	assert_int_equal(report_utf8_clean("\xF0\xA0\x80\x80", out, sizeof out), 0);
	assert_string_equal(out, "\xF0\xA0\x80\x80");
	/* Cut at a character boundary when the output is full. */
	report_utf8_clean("王家村", out, 7);
	assert_string_equal(out, "王家");
}

static char *csv_of(const char *s)
{
	char *data = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&data, &n);
	assert_non_null(f);
	report_csv_field(f, s);
	fclose(f);
	return data;
}

static void test_csv_field(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} t[] = {
		{"plain", "plain"},
		{"王家村", "王家村"},
		{"", ""},
		{"a,b", "\"a,b\""},
		{"say \"hi\"", "\"say \"\"hi\"\"\""},
		{"line1\nline2", "\"line1\nline2\""},
		{"cr\r", "\"cr\r\""},
		{" lead", "\" lead\""},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		char *got = csv_of(t[i].in);
		if (strcmp(got, t[i].out) != 0)
			fail_msg("row %zu: %s", i, got);
		free(got);
	}
}

struct fixture {
	char *dir, *path;
	struct db *db;
	char v1[LEDGER_ID_SIZE], v2[LEDGER_ID_SIZE], v3[LEDGER_ID_SIZE];
};

static const struct report_group *group(const struct report *r, unsigned part, const char *label)
{
	size_t n;
	const struct report_group *g = report_groups(r, part, &n);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(g[i].label, label) == 0)
			return &g[i];
	}
	fail_msg("no group %s", label);
	return NULL;
}

/* 甲村: overdue todo, yellow doing (progress 10), closed, withdrawn.
 * 乙村: submitted (audit), long_term. 丙村: nothing. */
static void build(struct fixture *fx)
{
	char p1[LEDGER_ID_SIZE], p2[LEDGER_ID_SIZE], t[6][LEDGER_ID_SIZE];
	fx->dir = tmp_dir();
	fx->path = path_in(fx->dir, "t.db");
	setenv("TALLY_TODAY", "2026-03-01", 1);
	assert_int_equal(ledger_init(fx->path, "township", "某镇", NULL, &fx->db, NULL), TLY_OK);
	assert_int_equal(ledger_village_add(fx->db, "甲村", fx->v1, NULL), TLY_OK);
	assert_int_equal(ledger_village_add(fx->db, "乙村", fx->v2, NULL), TLY_OK);
	assert_int_equal(ledger_village_add(fx->db, "丙村", fx->v3, NULL), TLY_OK);
	struct ledger_problem pa = {.source = "inspection", .text = "巡视问题", .round = "第一轮"};
	struct ledger_problem pb = {.source = "audit", .text = "审计问题，含\"引号\""};
	assert_int_equal(ledger_problem_add(fx->db, &pa, p1, NULL), TLY_OK);
	assert_int_equal(ledger_problem_add(fx->db, &pb, p2, NULL), TLY_OK);
	struct ledger_task k = {.problem = p1, .village = fx->v1, .measures = "措施", .owner = "张三",
				.leader = "李四", .deadline = "2026-02-01"};
	assert_int_equal(ledger_task_add(fx->db, &k, t[0], NULL), TLY_OK);
	k.deadline = "2026-03-05";
	assert_int_equal(ledger_task_add(fx->db, &k, t[1], NULL), TLY_OK);
	assert_int_equal(ledger_progress_add(fx->db, t[1], 10, "开始", NULL, NULL, 0, NULL, NULL),
			 TLY_OK);
	k.deadline = "2026-12-31";
	assert_int_equal(ledger_task_add(fx->db, &k, t[2], NULL), TLY_OK);
	assert_int_equal(ledger_progress_add(fx->db, t[2], 100, "完成", NULL, NULL, 0, NULL, NULL),
			 TLY_OK);
	assert_int_equal(ledger_submit(fx->db, t[2], NULL), TLY_OK);
	assert_int_equal(ledger_review(fx->db, t[2], 1, "同意", NULL, NULL), TLY_OK);
	assert_int_equal(ledger_task_add(fx->db, &k, t[3], NULL), TLY_OK);
	struct ledger_task w = {.status = "withdrawn"};
	assert_int_equal(ledger_task_update(fx->db, t[3], &w, NULL), TLY_OK);
	k.problem = p2;
	k.village = fx->v2;
	assert_int_equal(ledger_task_add(fx->db, &k, t[4], NULL), TLY_OK);
	assert_int_equal(ledger_progress_add(fx->db, t[4], 100, "好了", NULL, NULL, 0, NULL, NULL),
			 TLY_OK);
	assert_int_equal(ledger_submit(fx->db, t[4], NULL), TLY_OK);
	assert_int_equal(ledger_task_add(fx->db, &k, t[5], NULL), TLY_OK);
	w.status = "long_term";
	assert_int_equal(ledger_task_update(fx->db, t[5], &w, NULL), TLY_OK);
}

static void done(struct fixture *fx)
{
	unsetenv("TALLY_TODAY");
	db_close(fx->db);
	free(fx->path);
	rm_tree(fx->dir);
}

static void test_build_counts(void **state)
{
	(void)state;
	struct fixture fx;
	struct report *r = NULL;
	build(&fx);
	/* Two devices for 甲村: the later contact counts. 乙村's is 10 days old. */
	int64_t day = 86400000, t0;
	char sql[512];
	assert_int_equal(clock_date_days("2026-03-01", &t0), TLY_OK);
	snprintf(sql, sizeof sql,
		 "INSERT INTO srv_device (id, site, village, name, secret_hash, created_ms, "
		 "last_contact_ms) VALUES ('d1', 's1', '%s', 'a', zeroblob(32), 0, %lld), "
		 "('d2', 's2', '%s', 'b', zeroblob(32), 0, %lld), "
		 "('d3', 's3', '%s', 'c', zeroblob(32), 0, %lld)",
		 fx.v1, (long long)((t0 - 20) * day), fx.v1, (long long)((t0 - 1) * day + 43200000),
		 fx.v2, (long long)((t0 - 10) * day + 43200000));
	assert_int_equal(db_exec(fx.db, sql), TLY_OK);

	struct report_options o = {0, 0};
	assert_int_equal(report_build(fx.db, &o, &r), TLY_OK);
	assert_false(db_in_txn(fx.db));
	assert_string_equal(report_today(r), "2026-03-01");
	const struct report_group *total = report_total(r);
	assert_int_equal(total->n.tasks, 5); /* withdrawn apart */
	assert_int_equal(total->n.closed, 1);
	assert_int_equal(total->n.withdrawn, 1);
	assert_int_equal(total->n.submitted, 1);
	assert_int_equal(total->n.long_term, 1);
	assert_int_equal(total->n.doing, 1);
	assert_int_equal(total->n.todo, 1);
	/* closed / tasks = 1/5 */
	assert_int_equal(report_rate_permille(&total->n), 200);

	const struct report_group *a = group(r, REPORT_PART_VILLAGE, "甲村");
	assert_int_equal(a->n.tasks, 3);
	assert_int_equal(a->n.overdue, 1);
	assert_int_equal(a->n.red, 1);
	assert_int_equal(a->n.yellow, 1);
	assert_int_equal(report_rate_permille(&a->n), 333);
	assert_int_equal(a->last_sync_ms, (t0 - 1) * day + 43200000);
	assert_false(a->silent);
	const struct report_group *b = group(r, REPORT_PART_VILLAGE, "乙村");
	assert_true(b->silent); /* 10 days >= 7 */
	const struct report_group *c = group(r, REPORT_PART_VILLAGE, "丙村");
	assert_int_equal(c->n.tasks, 0);
	assert_int_equal(report_rate_permille(&c->n), -1);
	assert_true(c->silent); /* never synced */
	report_free(r);

	/* --silent-days 11: 乙村 is fresh again. */
	o.silent_days = 11;
	assert_int_equal(report_build(fx.db, &o, &r), TLY_OK);
	assert_false(group(r, REPORT_PART_VILLAGE, "乙村")->silent);
	const struct report_group *src = group(r, REPORT_PART_SOURCE, "审计");
	assert_int_equal(src->n.tasks, 2);
	assert_int_equal(src->n.submitted, 1);
	assert_int_equal(group(r, REPORT_PART_SOURCE, "督查")->n.tasks, 0);
	size_t n;
	report_groups(r, REPORT_PART_SOURCE, &n);
	assert_int_equal(n, 5);
	const struct report_row *rows = report_rows(r, &n);
	assert_int_equal(n, 6);
	/* Rows carry their village's freshness. */
	for (size_t i = 0; i < n; i++) {
		assert_non_null(rows[i].village_group);
		assert_string_equal(rows[i].village_group->key, rows[i].village_id);
	}
	json_t *j = report_json(r, REPORT_PART_ALL);
	assert_int_equal(json_array_size(json_object_get(j, "ledger")), 6);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "total"), "tasks")), 5);
	json_decref(j);
	report_free(r);

	/* --stale-days overrides the setting: with 1 day, everything active
	 * whose last entry is older than today is stale. */
	setenv("TALLY_TODAY", "2026-03-03", 1);
	o.stale_days = 1;
	assert_int_equal(report_build(fx.db, &o, &r), TLY_OK);
	assert_int_equal(report_settings(r)->stale_days, 1);
	assert_int_equal(report_total(r)->n.stale, 4);
	report_free(r);
	done(&fx);
}

/* A writer holding the write lock (tallyd applying a push) does not stop
 * a report, and the report does not see its uncommitted rows. */
static void test_concurrent_writer(void **state)
{
	(void)state;
	struct fixture fx;
	struct db *other = NULL;
	struct report *r = NULL;
	build(&fx);
	assert_int_equal(db_open(fx.path, 0, &other, NULL), TLY_OK);
	assert_int_equal(db_begin(other), TLY_OK);
	assert_int_equal(db_exec(other, "INSERT INTO task (id, village, status) VALUES "
					"('zz', 'nowhere', 'todo')"),
			 TLY_OK);
	assert_int_equal(report_build(fx.db, NULL, &r), TLY_OK);
	assert_int_equal(report_total(r)->n.tasks, 5);
	report_free(r);
	assert_int_equal(db_commit(other), TLY_OK);
	assert_int_equal(report_build(fx.db, NULL, &r), TLY_OK);
	assert_int_equal(report_total(r)->n.tasks, 6);
	/* A task of a village with no record still counts, under its id. */
	assert_int_equal(group(r, REPORT_PART_VILLAGE, "nowhere")->n.todo, 1);
	report_free(r);
	db_close(other);
	done(&fx);
}

/* On a village device: its own village only, freshness from sync_state. */
static void test_village_site(void **state)
{
	(void)state;
	char *dir = tmp_dir(), *path = path_in(dir, "v.db");
	struct db *db = NULL;
	struct report *r = NULL;
	char p[LEDGER_ID_SIZE], t[LEDGER_ID_SIZE];
	setenv("TALLY_TODAY", "2026-03-01", 1);
	assert_int_equal(ledger_init(path, "village", "王家村", NULL, &db, NULL), TLY_OK);
	struct ledger_problem pr = {.source = "self_check", .text = "自查问题"};
	assert_int_equal(ledger_problem_add(db, &pr, p, NULL), TLY_OK);
	struct ledger_task k = {.problem = p, .measures = "m", .owner = "o", .leader = "l",
				.deadline = "2026-03-20"};
	assert_int_equal(ledger_task_add(db, &k, t, NULL), TLY_OK);
	assert_int_equal(report_build(db, NULL, &r), TLY_OK);
	size_t n;
	const struct report_group *g = report_groups(r, REPORT_PART_VILLAGE, &n);
	assert_int_equal(n, 1);
	assert_string_equal(g[0].label, "王家村");
	assert_int_equal(g[0].n.blue, 1);
	assert_true(g[0].silent);
	report_free(r);
	int64_t d;
	assert_int_equal(clock_date_days("2026-02-27", &d), TLY_OK);
	char sql[128];
	snprintf(sql, sizeof sql, "UPDATE sync_state SET last_success_ms = %lld",
		 (long long)(d * 86400000 + 43200000));
	assert_int_equal(db_exec(db, sql), TLY_OK);
	assert_int_equal(report_build(db, NULL, &r), TLY_OK);
	g = report_groups(r, REPORT_PART_VILLAGE, &n);
	assert_false(g[0].silent);
	assert_int_equal(g[0].last_sync_ms, d * 86400000 + 43200000);
	report_free(r);
	unsetenv("TALLY_TODAY");
	db_close(db);
	free(path);
	rm_tree(dir);
}

static void test_xlsx_and_csv(void **state)
{
	(void)state;
	struct fixture fx;
	struct report *r = NULL;
	build(&fx);
	assert_int_equal(report_build(fx.db, NULL, &r), TLY_OK);
	char *x = path_in(fx.dir, "out.xlsx");
	struct buf why;
	buf_init(&why, 1024);
	assert_int_equal(report_xlsx_write(r, x, &why), TLY_OK);
	FILE *f = fopen(x, "rb");
	assert_non_null(f);
	char magic[4];
	assert_int_equal(fread(magic, 1, 4, f), 4);
	fclose(f);
	assert_memory_equal(magic, "PK\x03\x04", 4);
	/* A path in a missing directory is an error, not a crash. */
	char *bad = path_in(fx.dir, "missing/out.xlsx");
	assert_int_not_equal(report_xlsx_write(r, bad, &why), TLY_OK);
	free(bad);
	buf_free(&why);
	free(x);

	char *data = NULL;
	size_t n = 0;
	f = open_memstream(&data, &n);
	assert_int_equal(report_csv_write(r, REPORT_PART_LEDGER, f), TLY_OK);
	fclose(f);
	assert_memory_equal(data, "\xEF\xBB\xBF", 3);
	/* header + 6 rows, every line CRLF-terminated */
	size_t lines = 0;
	for (size_t i = 0; i + 1 < n; i++)
		if (data[i] == '\r' && data[i + 1] == '\n')
			lines++;
	assert_int_equal(lines, 7);
	assert_non_null(strstr(data, "\"审计问题，含\"\"引号\"\"\""));
	free(data);
	report_free(r);
	done(&fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_display_width), cmocka_unit_test(test_utf8_clean),
		cmocka_unit_test(test_csv_field),     cmocka_unit_test(test_build_counts),
		cmocka_unit_test(test_concurrent_writer), cmocka_unit_test(test_village_site),
		cmocka_unit_test(test_xlsx_and_csv),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
