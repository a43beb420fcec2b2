/*
 * Store apply path, field by field: the batched merge (one read of a
 * record's field_state, field_state upserts in groups, one domain upsert)
 * must give each field exactly what a per-field merge gives — winners in
 * field_state and the domain row, losers kept out and logged, fields of the
 * record a change does not carry untouched, fields of a newer schema kept in
 * field_state only, and changes wider than one upsert group.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "client/clock.h"
#include "client/store.h"
#include "client/verify.h"
#include "helpers.h"
#include "protocol/hlc.h"

/* Fields of a newer schema in the wide change: more than one upsert group
 * (16 rows) and more than the merge's on-stack arrays (16 fields). */
#define WIDE_EXTRA 29

struct fx {
	char *dir;
	char *path;
	struct db *db;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	struct buf why;
	buf_init(&why, 4096);
	f->dir = tmp_dir();
	f->path = path_in(f->dir, "a.db");
	assert_int_equal(db_open(f->path, DB_OPEN_CREATE, &f->db, &why), TLY_OK);
	assert_int_equal(db_site_create(f->db, "township", "测试镇", NULL, 1), TLY_OK);
	buf_free(&why);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	db_close(f->db);
	free(f->path);
	rm_tree(f->dir);
	free(f);
	return 0;
}

static long long count(struct db *db, const char *sql, const char *p1, const char *p2)
{
	sqlite3_stmt *st;
	long long n = -1;
	assert_int_equal(sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL), SQLITE_OK);
	if (p1)
		sqlite3_bind_text(st, 1, p1, -1, SQLITE_TRANSIENT);
	if (p2)
		sqlite3_bind_text(st, 2, p2, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* The text of one column of the row a query with up to two parameters finds. */
static void text_of(struct db *db, const char *sql, const char *p1, const char *p2, char *out,
		    size_t n)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL), SQLITE_OK);
	if (p1)
		sqlite3_bind_text(st, 1, p1, -1, SQLITE_TRANSIENT);
	if (p2)
		sqlite3_bind_text(st, 2, p2, -1, SQLITE_TRANSIENT);
	snprintf(out, n, "<none>");
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(out, n, "%s",
			 sqlite3_column_type(st, 0) == SQLITE_NULL
				 ? "<null>"
				 : (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

static void apply(struct db *db, struct change *c)
{
	enum store_outcome o;
	assert_int_equal(db_begin(db), TLY_OK);
	assert_int_equal(store_apply_remote(db, c, NULL, 1, &o, NULL, NULL), TLY_OK);
	assert_int_equal(o, STORE_APPLIED);
	assert_int_equal(db_commit(db), TLY_OK);
}

static void assert_state(struct db *db, const char *field, const char *value, const char *site)
{
	char v[256], s[64];
	text_of(db, "SELECT value FROM field_state WHERE kind = 'task' AND record_id = 'T1' "
		    "AND field = ?",
		field, NULL, v, sizeof v);
	text_of(db, "SELECT site FROM field_state WHERE kind = 'task' AND record_id = 'T1' "
		    "AND field = ?",
		field, NULL, s, sizeof s);
	assert_string_equal(v, value);
	assert_string_equal(s, site);
}

static void assert_column(struct db *db, const char *col, const char *value)
{
	char sql[128], v[256];
	snprintf(sql, sizeof sql, "SELECT \"%s\" FROM task WHERE id = 'T1'", col);
	text_of(db, sql, NULL, NULL, v, sizeof v);
	assert_string_equal(v, value);
}

/* A task created by one change with every known field and WIDE_EXTRA more. */
static void test_wide_create(void **state)
{
	struct fx *f = *state;
	uint8_t prev[32];
	char name[16], val[32];
	memcpy(prev, chain_genesis, 32);
	uint64_t t0 = hlc_make((uint64_t)clock_device_ms(), 0);
	struct change *c = mk_change("sitea", 1, t0, "task", "T1");
	set_t(c, "problem", "P1");
	set_t(c, "village", "V1");
	set_t(c, "measures", "措施甲");
	set_t(c, "target", "目标");
	set_t(c, "root_cause", "原因");
	set_t(c, "elsewhere", "no");
	set_t(c, "leader", "李四");
	set_t(c, "owner", "张三");
	set_t(c, "deadline", "2026-12-31");
	set_t(c, "status", "todo");
	set_t(c, "created_on", "2026-01-02");
	for (int i = 0; i < WIDE_EXTRA; i++) {
		snprintf(name, sizeof name, "x%02d", i);
		snprintf(val, sizeof val, "值%d", i);
		set_t(c, name, val);
	}
	link_change(c, prev);
	apply(f->db, c);

	assert_int_equal(count(f->db, "SELECT count(*) FROM field_state WHERE record_id = 'T1'",
			       NULL, NULL),
			 11 + WIDE_EXTRA);
	assert_int_equal(count(f->db, "SELECT count(DISTINCT field) FROM field_state "
				      "WHERE record_id = 'T1' AND site = 'sitea' AND seq = 1",
			       NULL, NULL),
			 11 + WIDE_EXTRA);
	for (int i = 0; i < WIDE_EXTRA; i++) {
		snprintf(name, sizeof name, "x%02d", i);
		snprintf(val, sizeof val, "值%d", i);
		assert_state(f->db, name, val, "sitea");
	}
	assert_state(f->db, "owner", "张三", "sitea");
	assert_column(f->db, "owner", "张三");
	assert_column(f->db, "measures", "措施甲");
	assert_column(f->db, "created_on", "2026-01-02");
	assert_column(f->db, "village", "V1");
	assert_int_equal(count(f->db, "SELECT count(*) FROM task", NULL, NULL), 1);
	assert_int_equal(count(f->db, "SELECT count(*) FROM conflict", NULL, NULL), 0);
	change_free(c);
}

/*
 * One change some of whose fields win and some lose, against a record with
 * fields the change does not carry: the winners only reach field_state and
 * the domain row, the losers are logged, the rest is untouched.
 */
static void test_mixed_outcomes(void **state)
{
	struct fx *f = *state;
	uint8_t pa[32], pb[32], pc[32];
	char name[16], val[32];
	memcpy(pa, chain_genesis, 32);
	memcpy(pb, chain_genesis, 32);
	memcpy(pc, chain_genesis, 32);
	uint64_t t0 = hlc_make((uint64_t)clock_device_ms(), 0);

	/* sitea creates the task at t0 with a few fields. */
	struct change *a = mk_change("sitea", 1, t0, "task", "T1");
	set_t(a, "deadline", "2026-06-30");
	set_t(a, "leader", "李四");
	set_t(a, "measures", "措施甲");
	set_t(a, "owner", "张三");
	set_t(a, "status", "todo");
	link_change(a, pa);
	apply(f->db, a);

	/* sitec writes owner and target later (t0 + 20). */
	struct change *cc = mk_change("sitec", 1, t0 + 20, "task", "T1");
	set_t(cc, "owner", "王五");
	set_t(cc, "target", "目标丙");
	link_change(cc, pc);
	apply(f->db, cc);

	/* siteb at t0 + 10: wins deadline, measures, status and its new
	 * fields; loses owner and target to sitec; leader it does not carry. */
	struct change *b = mk_change("siteb", 1, t0 + 10, "task", "T1");
	set_t(b, "deadline", "2026-09-30");
	set_t(b, "measures", "措施乙");
	set_t(b, "owner", "赵六");
	set_t(b, "status", "doing");
	set_t(b, "target", "目标乙");
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof name, "y%02d", i);
		snprintf(val, sizeof val, "乙%d", i);
		set_t(b, name, val);
	}
	set_i(b, "z_int", 42);
	link_change(b, pb);
	apply(f->db, b);

	assert_state(f->db, "deadline", "2026-09-30", "siteb");
	assert_state(f->db, "measures", "措施乙", "siteb");
	assert_state(f->db, "status", "doing", "siteb");
	assert_state(f->db, "owner", "王五", "sitec");
	assert_state(f->db, "target", "目标丙", "sitec");
	assert_state(f->db, "leader", "李四", "sitea");
	assert_state(f->db, "y00", "乙0", "siteb");
	assert_state(f->db, "y19", "乙19", "siteb");
	assert_state(f->db, "z_int", "42", "siteb");
	assert_column(f->db, "deadline", "2026-09-30");
	assert_column(f->db, "measures", "措施乙");
	assert_column(f->db, "status", "doing");
	assert_column(f->db, "owner", "王五");
	assert_column(f->db, "target", "目标丙");
	assert_column(f->db, "leader", "李四");
	assert_column(f->db, "created_on", "<null>");
	assert_int_equal(count(f->db, "SELECT count(*) FROM field_state WHERE record_id = 'T1'",
			       NULL, NULL),
			 6 + 20 + 1);

	/* Logged: sitea's owner lost to sitec; siteb lost owner and target to
	 * sitec; sitea's deadline, measures and status lost to siteb. */
	assert_int_equal(count(f->db, "SELECT count(*) FROM conflict WHERE loser_site = ? "
				      "AND winner_site = ?",
			       "siteb", "sitec"),
			 2);
	assert_int_equal(count(f->db, "SELECT count(*) FROM conflict WHERE loser_site = ? "
				      "AND winner_site = ?",
			       "sitea", "siteb"),
			 3);
	assert_int_equal(count(f->db, "SELECT count(*) FROM conflict WHERE loser_site = ? "
				      "AND winner_site = ?",
			       "sitea", "sitec"),
			 1);
	assert_int_equal(count(f->db, "SELECT count(*) FROM conflict WHERE field = 'owner' AND "
				      "loser_value = '赵六' AND winner_value = '王五'",
			       NULL, NULL),
			 1);
	assert_int_equal(count(f->db, "SELECT count(*) FROM conflict", NULL, NULL), 6);

	/* The same three changes in another order give the same state. */
	struct fx g = {0};
	struct buf why;
	buf_init(&why, 4096);
	g.path = path_in(f->dir, "b.db");
	assert_int_equal(db_open(g.path, DB_OPEN_CREATE, &g.db, &why), TLY_OK);
	assert_int_equal(db_site_create(g.db, "township", "另一镇", NULL, 1), TLY_OK);
	apply(g.db, b);
	apply(g.db, cc);
	apply(g.db, a);
	const char *q = "SELECT group_concat(field || '=' || quote(value) || '@' || site, ';') "
			"FROM (SELECT * FROM field_state WHERE record_id = 'T1' ORDER BY field)";
	char s1[4096], s2[4096];
	text_of(f->db, q, NULL, NULL, s1, sizeof s1);
	text_of(g.db, q, NULL, NULL, s2, sizeof s2);
	assert_string_equal(s1, s2);
	const char *qt = "SELECT quote(problem) || quote(village) || quote(measures) || "
			 "quote(target) || quote(leader) || quote(owner) || quote(deadline) || "
			 "quote(status) FROM task WHERE id = 'T1'";
	text_of(f->db, qt, NULL, NULL, s1, sizeof s1);
	text_of(g.db, qt, NULL, NULL, s2, sizeof s2);
	assert_string_equal(s1, s2);

	/* verify replays the log into a fresh database and compares. */
	json_t *r = NULL;
	assert_int_equal(verify_run(f->db, &r), TLY_OK);
	json_decref(r);
	db_close(g.db);
	free(g.path);
	buf_free(&why);
	change_free(a);
	change_free(b);
	change_free(cc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_wide_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mixed_outcomes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
