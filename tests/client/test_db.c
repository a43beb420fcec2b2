/*
 * db: creation, migrations from every earlier version, files that are not
 * Tally's or are too new (refused and left byte-for-byte unchanged), site
 * identity, ids.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "helpers.h"
#include "client/ledger.h"
#include "client/schema.h"
#include "client/store.h"

static int exec_raw(const char *path, const char *sql)
{
	sqlite3 *h = NULL;
	int rc = sqlite3_open(path, &h);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
	sqlite3_close(h);
	return rc;
}

static void test_create_and_reopen(void **state)
{
	(void)state;
	char *dir = tmp_dir(), *path = path_in(dir, "a.db");
	struct db *db = NULL;
	struct buf why;
	buf_init(&why, 1024);
	assert_int_equal(db_open(path, 0, &db, &why), TLY_E_NOT_INITIALISED);
	assert_null(db);
	assert_int_equal(db_open(path, DB_OPEN_CREATE, &db, NULL), TLY_OK);
	int v = -1;
	assert_int_equal(db_user_version(db, &v), TLY_OK);
	assert_int_equal(v, schema_version());
	assert_null(db_site(db));
	assert_int_equal(db_begin(db), TLY_OK);
	assert_int_equal(db_site_create(db, "village", "王家村𠀀", "v1", 42), TLY_OK);
	assert_int_equal(db_site_create(db, "village", "x", "v1", 42), TLY_E_EXISTS);
	assert_int_equal(db_commit(db), TLY_OK);
	char site[DB_ID_LEN + 1];
	snprintf(site, sizeof site, "%s", db_site(db)->site_id);
	db_close(db);
	assert_int_equal(db_open(path, 0, &db, NULL), TLY_OK);
	assert_string_equal(db_site(db)->site_id, site);
	assert_string_equal(db_site(db)->name, "王家村𠀀");
	assert_string_equal(db_site(db)->village_id, "v1");
	assert_int_equal(strlen(site), DB_ID_LEN);
	assert_int_equal(strspn(site, "0123456789abcdef"), DB_ID_LEN);
	/* Pragmas every open sets. */
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db_handle(db), "PRAGMA journal_mode", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(db_handle(db), "PRAGMA synchronous", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 2); /* FULL */
	sqlite3_finalize(st);
	assert_int_equal(db_setting_int(db, "stale_days", 14), 14);
	assert_int_equal(db_setting_set(db, "stale_days", "7"), TLY_OK);
	assert_int_equal(db_setting_int(db, "stale_days", 14), 7);
	db_close(db);
	buf_free(&why);
	free(path);
	rm_tree(dir);
}

/* Each file below must be refused with code, and left exactly as it was. */
static void refuse_unchanged(const char *path, int code)
{
	unsigned long long before = file_sum(path);
	struct db *db = NULL;
	struct buf why;
	buf_init(&why, 1024);
	assert_int_equal(db_open(path, 0, &db, &why), code);
	assert_non_null(why.data);
	assert_int_equal(db_open(path, DB_OPEN_CREATE, &db, NULL), code);
	assert_null(db);
	assert_int_equal(file_sum(path), before);
	buf_free(&why);
}

static void test_not_tally(void **state)
{
	(void)state;
	char *dir = tmp_dir();
	char *other = path_in(dir, "other.db"), *text = path_in(dir, "notes.txt");
	char *newer = path_in(dir, "newer.db");
	assert_int_equal(exec_raw(other, "CREATE TABLE t (x); INSERT INTO t VALUES (1);"),
			 SQLITE_OK);
	refuse_unchanged(other, TLY_E_NOT_TALLY_DB);
	FILE *f = fopen(text, "w");
	fputs("这不是数据库，只是一段文字。 this is not a database, just some text.\n", f);
	for (int i = 0; i < 200; i++)
		fputs("filler line to exceed one page of sqlite header bytes\n", f);
	fclose(f);
	refuse_unchanged(text, TLY_E_NOT_TALLY_DB);
	/* A Tally file from a future version. */
	struct db *db = NULL;
	assert_int_equal(db_open(newer, DB_OPEN_CREATE, &db, NULL), TLY_OK);
	db_close(db);
	char sql[64];
	snprintf(sql, sizeof sql, "PRAGMA user_version = %d", schema_version() + 1);
	assert_int_equal(exec_raw(newer, sql), SQLITE_OK);
	refuse_unchanged(newer, TLY_E_DB_TOO_NEW);
	free(other);
	free(text);
	free(newer);
	rm_tree(dir);
}

/*
 * A database left at every earlier version (0 = new empty file) opens and
 * ends at the current version, keeping what it held. Version k is built by
 * running the first k migrations by hand, as an older Tally would have.
 */
static void test_migrations_from_every_version(void **state)
{
	(void)state;
	size_t n;
	const struct schema_migration *m = schema_migrations(&n);
	assert_true(n >= 1);
	for (size_t from = 0; from < n; from++) {
		char *dir = tmp_dir(), *path = path_in(dir, "old.db");
		for (size_t k = 0; k < from; k++) {
			char sql[64];
			assert_int_equal(exec_raw(path, m[k].sql), SQLITE_OK);
			snprintf(sql, sizeof sql, "PRAGMA user_version = %zu", k + 1);
			assert_int_equal(exec_raw(path, sql), SQLITE_OK);
		}
		if (from >= 1)
			assert_int_equal(exec_raw(path, "INSERT INTO site (one, site_id, role, name, "
							"created_ms) VALUES (1, '0123456789abcdef', "
							"'township', '旧镇', 1)"),
					 SQLITE_OK);
		struct db *db = NULL;
		assert_int_equal(db_open(path, DB_OPEN_CREATE, &db, NULL), TLY_OK);
		int v = -1;
		assert_int_equal(db_user_version(db, &v), TLY_OK);
		assert_int_equal(v, (int)n);
		if (from >= 1) {
			assert_non_null(db_site(db));
			assert_string_equal(db_site(db)->name, "旧镇");
		}
		db_close(db);
		free(path);
		rm_tree(dir);
	}
}

/* The rows of one SELECT joined into text, "|" between columns, ";" after rows. */
static void rows_text(struct db *db, const char *sql, char *out, size_t n)
{
	sqlite3_stmt *st = NULL;
	size_t len = 0;
	out[0] = '\0';
	assert_int_equal(sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		for (int i = 0; i < sqlite3_column_count(st); i++) {
			const unsigned char *t = sqlite3_column_text(st, i);
			len += (size_t)snprintf(out + len, n - len, "%s%s", i ? "|" : "",
						t ? (const char *)t : "NULL");
			assert_true(len < n);
		}
		len += (size_t)snprintf(out + len, n - len, ";");
		assert_true(len < n);
	}
	sqlite3_finalize(st);
}

/*
 * Version 5 moves a record's first write into record_base. A version 4 file
 * keeps every per-field row (now in field_write), the field_state view
 * shows exactly the rows it held, each record gets a base covering no
 * field, and merging against the old rows still follows the total order.
 */
static void test_migration_v5_keeps_merge_state(void **state)
{
	(void)state;
	size_t n;
	const struct schema_migration *m = schema_migrations(&n);
	char *dir = tmp_dir(), *path = path_in(dir, "v4.db");
	char got[1024];
	for (size_t k = 0; k < 4; k++)
		assert_int_equal(exec_raw(path, m[k].sql), SQLITE_OK);
	assert_int_equal(exec_raw(path,
				  "PRAGMA user_version = 4; INSERT INTO site (one, site_id, role, "
				  "name, created_ms) VALUES (1, '0123456789abcdef', 'township', "
				  "'旧镇', 1); INSERT INTO task (id, owner, status) VALUES ('t1', "
				  "'张三', 'doing'); INSERT INTO field_state VALUES ('task', 't1', "
				  "'owner', '张三', 100, 'a', 1), ('task', 't1', 'status', 'doing', "
				  "200, 'b', 5);"),
			 SQLITE_OK);
	struct db *db = NULL;
	assert_int_equal(db_open(path, DB_OPEN_CREATE, &db, NULL), TLY_OK);
	rows_text(db, "SELECT field, value, stamp, site, seq FROM field_state ORDER BY field", got,
		  sizeof got);
	assert_string_equal(got, "owner|张三|100|a|1;status|doing|200|b|5;");
	rows_text(db, "SELECT * FROM record_base", got, sizeof got);
	assert_string_equal(got, "task|t1|100|a|1|0;");

	/* Stamp 150 from site c: beats the owner (100), loses the status (200),
	 * and a field the record never had is simply taken. */
	struct change *c = mk_change("c", 1, 150, "task", "t1");
	set_t(c, "owner", "李四");
	set_t(c, "status", "done");
	set_t(c, "deadline", "2027-01-01");
	assert_int_equal(db_begin(db), TLY_OK);
	assert_int_equal(store_merge_change(db, c), TLY_OK);
	assert_int_equal(db_commit(db), TLY_OK);
	change_free(c);
	rows_text(db, "SELECT owner, status, deadline FROM task", got, sizeof got);
	assert_string_equal(got, "李四|doing|2027-01-01;");
	db_close(db);
	free(path);
	rm_tree(dir);
}

static void test_init_village(void **state)
{
	(void)state;
	char *dir = tmp_dir(), *path = path_in(dir, "v.db");
	struct db *db = NULL;
	assert_int_equal(ledger_init(path, "village", "王家村", NULL, &db, NULL), TLY_OK);
	const struct db_site *s = db_site(db);
	assert_string_equal(s->role, "village");
	assert_non_null(s->village_id);
	char id[LEDGER_ID_SIZE];
	/* Its own village record was made through the write path. */
	assert_int_equal(ledger_village_find(db, "王家村", id, NULL), TLY_OK);
	assert_string_equal(id, s->village_id);
	db_close(db);
	assert_int_equal(ledger_init(path, "village", "王家村", NULL, NULL, NULL), TLY_E_EXISTS);
	free(path);
	path = path_in(dir, "enrolled.db");
	assert_int_equal(ledger_init(path, "village", "李家村", "abcdef0123456789", &db, NULL),
			 TLY_OK);
	assert_string_equal(db_site(db)->village_id, "abcdef0123456789");
	db_close(db);
	free(path);
	rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_and_reopen),
		cmocka_unit_test(test_not_tally),
		cmocka_unit_test(test_migrations_from_every_version),
		cmocka_unit_test(test_migration_v5_keeps_merge_state),
		cmocka_unit_test(test_init_village),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
