/*
 * Store: the write path (data, change log and chain in one transaction,
 * nothing on failure), the apply path (idempotent, conflicts, rejections,
 * order independence on real SQLite files), the outbox, eff and verify.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "protocol/chain.h"
#include "client/clock.h"
#include "helpers.h"
#include "protocol/hlc.h"
#include "client/ledger.h"
#include "client/store.h"
#include "client/verify.h"

struct fx {
	char *dir;
	char *path;
	struct db *db;
	char village[LEDGER_ID_SIZE], problem[LEDGER_ID_SIZE], task[LEDGER_ID_SIZE];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	f->dir = tmp_dir();
	f->path = path_in(f->dir, "t.db");
	assert_int_equal(ledger_init(f->path, "township", "某某镇", NULL, &f->db, NULL), TLY_OK);
	assert_int_equal(ledger_village_add(f->db, "王家村", f->village, NULL), TLY_OK);
	struct ledger_problem p = {.source = "inspection", .text = "问题𠀀"};
	assert_int_equal(ledger_problem_add(f->db, &p, f->problem, NULL), TLY_OK);
	struct ledger_task t = {.problem = f->problem, .village = f->village, .measures = "措施",
				.owner = "张三", .leader = "李四", .deadline = "2026-12-31"};
	assert_int_equal(ledger_task_add(f->db, &t, f->task, NULL), TLY_OK);
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

static long long count(struct db *db, const char *sql)
{
	sqlite3_stmt *st;
	long long n = -1;
	assert_int_equal(sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static void text_of(struct db *db, const char *sql, const char *param, char *out, size_t n)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, param, -1, SQLITE_TRANSIENT);
	out[0] = '\0';
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

/* Every own change links to the one before and hashes to what is stored. */
static void test_write_path_chain(void **state)
{
	struct fx *f = *state;
	char pid[LEDGER_ID_SIZE];
	assert_int_equal(ledger_progress_add(f->db, f->task, 30, "开始", NULL, NULL, 0, pid, NULL),
			 TLY_OK);
	/* village, problem, task, then progress + todo->doing in one call */
	assert_int_equal(count(f->db, "SELECT count(*) FROM change_log"), 5);
	assert_int_equal(count(f->db, "SELECT count(*) FROM progress"), 1);
	char status[32];
	text_of(f->db, "SELECT status FROM task WHERE id = ?", f->task, status, sizeof status);
	assert_string_equal(status, "doing");

	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db_handle(f->db),
					    "SELECT seq, body, prev, hash FROM change_log ORDER BY seq",
					    -1, &st, NULL),
			 SQLITE_OK);
	uint8_t prev[CHANGE_HASH_LEN];
	memcpy(prev, chain_genesis, sizeof prev);
	uint64_t want = 1;
	while (sqlite3_step(st) == SQLITE_ROW) {
		assert_int_equal(sqlite3_column_int64(st, 0), (int64_t)want++);
		assert_memory_equal(sqlite3_column_blob(st, 2), prev, CHANGE_HASH_LEN);
		struct change *c = NULL;
		assert_int_equal(change_decode_canonical(sqlite3_column_blob(st, 1),
							 (size_t)sqlite3_column_bytes(st, 1), NULL, &c),
				 TLY_OK);
		uint8_t h[CHANGE_HASH_LEN];
		assert_int_equal(chain_hash(c, prev, h), TLY_OK);
		assert_memory_equal(sqlite3_column_blob(st, 3), h, CHANGE_HASH_LEN);
		memcpy(prev, h, sizeof prev);
		change_free(c);
	}
	sqlite3_finalize(st);
	assert_int_equal(want, 6);
	/* HLC stamps strictly increase and the clock is persisted. */
	assert_int_equal(count(f->db, "SELECT count(*) FROM change_log a JOIN change_log b "
				      "ON b.seq = a.seq + 1 WHERE b.hlc <= a.hlc"),
			 0);
	assert_int_equal(count(f->db, "SELECT (SELECT hlc_last FROM site) = "
				      "(SELECT max(hlc) FROM change_log)"),
			 1);
	json_t *r = NULL;
	assert_int_equal(verify_run(f->db, &r), TLY_OK);
	json_decref(r);
}

static const char *state_sql =
	"SELECT (SELECT count(*) FROM change_log) || '/' || (SELECT count(*) FROM field_state) "
	"|| '/' || (SELECT count(*) FROM task) || '/' || (SELECT count(*) FROM progress) || '/' "
	"|| (SELECT hlc_last FROM site) || '/' || (SELECT group_concat(status) FROM task)";

/* A rule refusal in the second change of a batch leaves nothing at all. */
static void test_write_atomic_rule(void **state)
{
	struct fx *f = *state;
	char before[256], after[256];
	text_of(f->db, state_sql, NULL, before, sizeof before);
	struct change *d[2] = {NULL, NULL};
	assert_int_equal(store_draft_new(f->db, "task", f->task, &d[0]), TLY_OK);
	set_t(d[0], "status", "doing");
	assert_int_equal(store_draft_new(f->db, "task", f->task, &d[1]), TLY_OK);
	set_t(d[1], "status", "todo"); /* doing -> todo is not a move */
	struct buf why;
	buf_init(&why, 1024);
	assert_int_equal(store_write(f->db, d, 2, &why, NULL), TLY_E_BAD_STATUS_MOVE);
	assert_non_null(why.data);
	text_of(f->db, state_sql, NULL, after, sizeof after);
	assert_string_equal(before, after);
	buf_free(&why);
	change_free(d[0]);
	change_free(d[1]);
}

/* A database failure half-way through a change leaves nothing either. */
static void test_write_atomic_sql(void **state)
{
	struct fx *f = *state;
	char before[256], after[256];
	text_of(f->db, state_sql, NULL, before, sizeof before);
	assert_int_equal(db_exec(f->db, "CREATE TEMP TRIGGER boom AFTER INSERT ON task "
					"WHEN NEW.owner = '王五' BEGIN SELECT RAISE(ABORT, 'boom'); END"),
			 TLY_OK);
	struct ledger_task t = {.problem = f->problem, .village = f->village, .measures = "m2",
				.owner = "王五", .leader = "赵六", .deadline = "2026-10-01"};
	char id[LEDGER_ID_SIZE];
	assert_int_not_equal(ledger_task_add(f->db, &t, id, NULL), TLY_OK);
	text_of(f->db, state_sql, NULL, after, sizeof after);
	assert_string_equal(before, after);
	assert_int_equal(db_exec(f->db, "DROP TRIGGER boom"), TLY_OK);
	assert_int_equal(ledger_task_add(f->db, &t, id, NULL), TLY_OK);
	json_t *r = NULL;
	assert_int_equal(verify_run(f->db, &r), TLY_OK);
	json_decref(r);
}

static struct change *remote_owner(const char *site, uint64_t seq, uint64_t stamp,
				   const char *task, const char *owner, uint8_t prev[32])
{
	struct change *c = mk_change(site, seq, stamp, "task", task);
	set_t(c, "owner", owner);
	link_change(c, prev);
	return c;
}

static void test_apply_idempotent(void **state)
{
	struct fx *f = *state;
	uint8_t prev[32];
	memcpy(prev, chain_genesis, 32);
	uint64_t now = hlc_make((uint64_t)clock_device_ms(), 0);
	struct change *c = remote_owner("remote1", 1, now, f->task, "甲", prev);
	enum store_outcome o;
	long long before = count(f->db, "SELECT count(*) FROM change_log");
	assert_int_equal(db_begin(f->db), TLY_OK);
	assert_int_equal(store_apply_remote(f->db, c, NULL, 1, &o, NULL, NULL), TLY_OK);
	assert_int_equal(o, STORE_APPLIED);
	assert_int_equal(store_apply_remote(f->db, c, NULL, 2, &o, NULL, NULL), TLY_OK);
	assert_int_equal(o, STORE_DUPLICATE);
	/* Same id, different body: never replaces the original. */
	uint8_t p2[32];
	memcpy(p2, chain_genesis, 32);
	struct change *forged = remote_owner("remote1", 1, now, f->task, "乙", p2);
	assert_int_equal(store_apply_remote(f->db, forged, NULL, 3, &o, NULL, NULL), TLY_E_CHAIN);
	assert_int_equal(db_commit(f->db), TLY_OK);
	assert_int_equal(count(f->db, "SELECT count(*) FROM change_log"), before + 1);
	char owner[64];
	text_of(f->db, "SELECT owner FROM task WHERE id = ?", f->task, owner, sizeof owner);
	assert_string_equal(owner, "甲");
	uint64_t seq;
	uint8_t head[32];
	assert_int_equal(store_site_head(f->db, "remote1", &seq, head), TLY_OK);
	assert_int_equal(seq, 1);
	assert_memory_equal(head, change_hash(c), 32);
	change_free(c);
	change_free(forged);
}

static void test_apply_conflict(void **state)
{
	struct fx *f = *state;
	uint8_t pa[32], pb[32];
	memcpy(pa, chain_genesis, 32);
	memcpy(pb, chain_genesis, 32);
	uint64_t now = hlc_make((uint64_t)clock_device_ms(), 0);
	struct change *late = remote_owner("sitea", 1, now + 10, f->task, "新值", pa);
	struct change *early = remote_owner("siteb", 1, now + 5, f->task, "旧值", pb);
	enum store_outcome o;
	assert_int_equal(db_begin(f->db), TLY_OK);
	assert_int_equal(store_apply_remote(f->db, late, NULL, 1, &o, NULL, NULL), TLY_OK);
	assert_int_equal(store_apply_remote(f->db, early, NULL, 1, &o, NULL, NULL), TLY_OK);
	assert_int_equal(db_commit(f->db), TLY_OK);
	char owner[64];
	text_of(f->db, "SELECT owner FROM task WHERE id = ?", f->task, owner, sizeof owner);
	assert_string_equal(owner, "新值");
	/* The loser is kept with both values, both sites, both stamps. */
	assert_int_equal(count(f->db, "SELECT count(*) FROM conflict WHERE field = 'owner' AND "
				      "winner_value = '新值' AND winner_site = 'sitea' AND "
				      "loser_value = '旧值' AND loser_site = 'siteb' AND "
				      "loser_stamp < winner_stamp"),
			 1);
	/* The local value (张三, this site) lost to sitea's and is logged too. */
	assert_int_equal(count(f->db, "SELECT count(*) FROM conflict WHERE loser_value = '张三'"),
			 1);
	change_free(late);
	change_free(early);
}

static void test_apply_rejected(void **state)
{
	struct fx *f = *state;
	uint8_t prev[32];
	memcpy(prev, chain_genesis, 32);
	uint64_t now = hlc_make((uint64_t)clock_device_ms(), 0);
	struct change *c = mk_change("othervillage", 1, now, "progress", "p00001");
	set_t(c, "task", f->task);
	set_i(c, "percent", 50);
	link_change(c, prev);
	/* The pushing device belongs to another village than the stored task. */
	struct rules_actor actor = {RULES_VILLAGE, "notthevillage"};
	enum store_outcome o;
	int code;
	struct buf reason;
	buf_init(&reason, 1024);
	assert_int_equal(db_begin(f->db), TLY_OK);
	assert_int_equal(store_apply_remote(f->db, c, &actor, 1, &o, &code, &reason), TLY_OK);
	assert_int_equal(db_commit(f->db), TLY_OK);
	assert_int_equal(o, STORE_REJECTED);
	assert_int_equal(code, TLY_E_FORBIDDEN);
	assert_non_null(reason.data);
	assert_int_equal(count(f->db, "SELECT count(*) FROM progress"), 0);
	assert_int_equal(count(f->db, "SELECT count(*) FROM change_log WHERE state = 'rejected' "
				      "AND reject_code = 'forbidden' AND site = 'othervillage'"),
			 1);
	int found, rejected;
	assert_int_equal(store_change_state(f->db, "othervillage", 1, &found, &rejected, &code, NULL),
			 TLY_OK);
	assert_true(found && rejected && code == TLY_E_FORBIDDEN);
	/* The rejected change still extends that site's chain. */
	uint64_t seq;
	uint8_t head[32];
	assert_int_equal(store_site_head(f->db, "othervillage", &seq, head), TLY_OK);
	assert_int_equal(seq, 1);
	json_t *r = NULL;
	assert_int_equal(verify_run(f->db, &r), TLY_OK);
	json_decref(r);
	buf_free(&reason);
	change_free(c);
}

/* ---- order independence -------------------------------------------------------------------- */

#define ORDERINGS 300
#define NSITES 3
#define PER_SITE 12

static unsigned long long rng_state = 88172645463325252ULL;
static unsigned long long rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Everything the merge state holds, as one string. */
static char *dump(struct db *db)
{
	static const char *const q[] = {
		"SELECT kind, record_id, field, quote(value), stamp, site, seq FROM field_state "
		"ORDER BY 1, 2, 3",
		"SELECT id, quote(name) FROM village ORDER BY id",
		"SELECT id, quote(problem), quote(village), quote(measures), quote(owner), "
		"quote(leader), quote(deadline), quote(status) FROM task ORDER BY id",
		"SELECT id, quote(task), quote(percent), quote(note) FROM progress ORDER BY id",
	};
	struct buf b;
	buf_init(&b, 1 << 22);
	for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(db_handle(db), q[i], -1, &st, NULL), SQLITE_OK);
		while (sqlite3_step(st) == SQLITE_ROW) {
			for (int c = 0; c < sqlite3_column_count(st); c++) {
				const char *t = (const char *)sqlite3_column_text(st, c);
				assert_int_equal(buf_addf(&b, "%s|", t ? t : "NULL"), TLY_OK);
			}
			assert_int_equal(buf_add_str(&b, "\n"), TLY_OK);
		}
		sqlite3_finalize(st);
	}
	return buf_detach(&b, NULL);
}

static void test_order_independence(void **state)
{
	(void)state;
	static const char *const sites[NSITES] = {"alpha", "bravo", "charlie"};
	static const char *const tasks[] = {"task0001", "task0002", "task0003"};
	static const char *const fields[] = {"owner", "measures", "deadline", "status"};
	static const char *const values[] = {"甲", "乙", "丙𠀀", "2026-01-01", "x"};
	struct change *all[NSITES * PER_SITE];
	size_t n = 0;
	uint64_t base = hlc_make(1700000000000ULL, 0);

	for (int s = 0; s < NSITES; s++) {
		uint8_t prev[32];
		memcpy(prev, chain_genesis, 32);
		uint64_t stamp = base;
		for (int k = 0; k < PER_SITE; k++) {
			/* Small random steps from a shared base: stamps of different
			 * sites interleave and sometimes tie exactly. */
			stamp += 1 + rng() % 3;
			struct change *c;
			if (k % 4 == 3) {
				char pid[32];
				snprintf(pid, sizeof pid, "prog%d%02d", s, k);
				c = mk_change(sites[s], (uint64_t)k + 1, stamp, "progress", pid);
				set_t(c, "task", tasks[rng() % 3]);
				set_i(c, "percent", (int64_t)(rng() % 101));
				set_t(c, "note", values[rng() % 5]);
			} else {
				c = mk_change(sites[s], (uint64_t)k + 1, stamp, "task",
					      tasks[rng() % 3]);
				int nf = 1 + (int)(rng() % 3);
				for (int j = 0; j < nf; j++)
					set_t(c, fields[rng() % 4], values[rng() % 5]);
				if (rng() % 5 == 0)
					assert_int_equal(change_set_null(c, "owner", NULL), TLY_OK);
			}
			link_change(c, prev);
			all[n++] = c;
		}
	}

	char *dir = tmp_dir();
	char *baseline = NULL;
	/* One initialised file, copied for each ordering: every replica is a
	 * real SQLite file without paying for schema creation 300 times. */
	char *template = path_in(dir, "template.db");
	struct db *tdb = NULL;
	assert_int_equal(db_open(template, DB_OPEN_CREATE, &tdb, NULL), TLY_OK);
	assert_int_equal(db_begin(tdb), TLY_OK);
	assert_int_equal(db_site_create(tdb, "township", "test", NULL, 1), TLY_OK);
	assert_int_equal(db_commit(tdb), TLY_OK);
	db_close(tdb);
	size_t order[NSITES * PER_SITE];
	for (int round = 0; round < ORDERINGS; round++) {
		for (size_t i = 0; i < n; i++)
			order[i] = i;
		for (size_t i = n - 1; i > 0; i--) {
			size_t j = (size_t)(rng() % (i + 1));
			size_t t = order[i];
			order[i] = order[j];
			order[j] = t;
		}
		char name[32];
		snprintf(name, sizeof name, "r%03d.db", round);
		char *path = path_in(dir, name);
		struct db *db = NULL;
		assert_int_equal(copy_file(template, path), 0);
		assert_int_equal(db_open(path, 0, &db, NULL), TLY_OK);
		/* Ordering, not durability, is under test: skip the fsyncs. */
		assert_int_equal(db_exec(db, "PRAGMA synchronous = OFF"), TLY_OK);
		assert_int_equal(db_begin(db), TLY_OK);
		for (size_t i = 0; i < n; i++) {
			enum store_outcome o;
			assert_int_equal(store_apply_remote(db, all[order[i]], NULL, 1, &o, NULL, NULL),
					 TLY_OK);
			assert_int_equal(o, STORE_APPLIED);
			/* Redelivery mixed in: must change nothing. */
			if (rng() % 7 == 0) {
				size_t again = order[rng() % (i + 1)];
				assert_int_equal(store_apply_remote(db, all[again], NULL, 1, &o, NULL,
								    NULL),
						 TLY_OK);
				assert_int_equal(o, STORE_DUPLICATE);
			}
		}
		assert_int_equal(db_commit(db), TLY_OK);
		char *d = dump(db);
		if (!baseline)
			baseline = d;
		else {
			if (strcmp(baseline, d) != 0)
				fail_msg("ordering %d gave a different state:\n%s\nvs\n%s", round, d,
					 baseline);
			free(d);
		}
		if (round % 50 == 0) {
			json_t *r = NULL;
			assert_int_equal(verify_run(db, &r), TLY_OK);
			json_decref(r);
		}
		db_close(db);
		free(path);
	}
	/* The state is not trivially empty. */
	assert_non_null(strstr(baseline, "task0001"));
	free(baseline);
	for (size_t i = 0; i < n; i++)
		change_free(all[i]);
	free(template);
	rm_tree(dir);
}

/* ---- outbox ---------------------------------------------------------------------------------- */

static void test_outbox(void **state)
{
	struct fx *f = *state;
	struct change **cs = NULL;
	size_t n = 0;
	const struct db_site *site = db_site(f->db);
	assert_int_equal(store_outbox_read(f->db, 0, 2, 1 << 20, &cs, &n), TLY_OK);
	assert_int_equal(n, 2);
	assert_int_equal(change_seq(cs[0]), 1);
	assert_int_equal(change_seq(cs[1]), 2);
	assert_string_equal(change_site(cs[0]), site->site_id);
	assert_non_null(change_prev(cs[1]));
	assert_memory_equal(change_prev(cs[1]), change_hash(cs[0]), 32);
	store_changes_free(cs, n);
	/* A byte budget smaller than one change still returns one. */
	assert_int_equal(store_outbox_read(f->db, 1, 100, 1, &cs, &n), TLY_OK);
	assert_int_equal(n, 1);
	assert_int_equal(change_seq(cs[0]), 2);
	store_changes_free(cs, n);

	struct store_outbox_stats s;
	assert_int_equal(store_outbox_stats(f->db, &s), TLY_OK);
	assert_int_equal(s.last_seq, 3);
	assert_int_equal(s.pending, 3);
	assert_true(s.oldest_ms > 0);
	assert_int_equal(db_begin(f->db), TLY_OK);
	assert_int_equal(store_outbox_ack(f->db, "epoch1", 3), TLY_OK);
	assert_int_equal(store_outbox_ack(f->db, "epoch1", 2), TLY_OK); /* never goes back */
	assert_int_equal(db_commit(f->db), TLY_OK);
	assert_int_equal(store_outbox_stats(f->db, &s), TLY_OK);
	assert_int_equal(s.acked_seq, 3);
	assert_int_equal(s.pending, 0);
	/* A restored server (new epoch) confirms from scratch. */
	assert_int_equal(db_begin(f->db), TLY_OK);
	assert_int_equal(store_outbox_ack(f->db, "epoch2", 1), TLY_OK);
	assert_int_equal(db_commit(f->db), TLY_OK);
	assert_int_equal(store_outbox_stats(f->db, &s), TLY_OK);
	assert_int_equal(s.acked_seq, 1);
	assert_int_equal(s.pending, 2);
}

/* A server-assigned eff makes the origin's change win what it wins there. */
static void test_set_eff(void **state)
{
	struct fx *f = *state;
	struct ledger_task upd = {.owner = "本地值"};
	assert_int_equal(ledger_task_update(f->db, f->task, &upd, NULL), TLY_OK);
	struct store_outbox_stats s;
	assert_int_equal(store_outbox_stats(f->db, &s), TLY_OK);
	uint64_t own_seq = s.last_seq;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db_handle(f->db),
					    "SELECT hlc FROM change_log WHERE seq = ?", -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st, 1, (int64_t)own_seq);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	uint64_t own_hlc = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);

	uint8_t prev[32];
	memcpy(prev, chain_genesis, 32);
	struct change *c = remote_owner("zsite", 1, own_hlc + 5, f->task, "远端值", prev);
	enum store_outcome o;
	char owner[64];
	assert_int_equal(db_begin(f->db), TLY_OK);
	assert_int_equal(store_apply_remote(f->db, c, NULL, 1, &o, NULL, NULL), TLY_OK);
	text_of(f->db, "SELECT owner FROM task WHERE id = ?", f->task, owner, sizeof owner);
	assert_string_equal(owner, "远端值");
	assert_int_equal(store_set_eff(f->db, db_site(f->db)->site_id, own_seq, own_hlc + 50),
			 TLY_OK);
	assert_int_equal(db_commit(f->db), TLY_OK);
	text_of(f->db, "SELECT owner FROM task WHERE id = ?", f->task, owner, sizeof owner);
	assert_string_equal(owner, "本地值");
	assert_int_equal(count(f->db, "SELECT count(*) FROM field_state WHERE field = 'owner' AND "
				      "stamp = (SELECT eff FROM change_log WHERE eff IS NOT NULL)"),
			 1);
	json_t *r = NULL;
	assert_int_equal(verify_run(f->db, &r), TLY_OK);
	json_decref(r);
	change_free(c);
}

/* An own change refused upstream is undone here too. */
static void test_outbox_reject(void **state)
{
	struct fx *f = *state;
	struct ledger_task upd = {.measures = "会被拒收的措施"};
	assert_int_equal(ledger_task_update(f->db, f->task, &upd, NULL), TLY_OK);
	struct store_outbox_stats s;
	assert_int_equal(store_outbox_stats(f->db, &s), TLY_OK);
	assert_int_equal(db_begin(f->db), TLY_OK);
	assert_int_equal(store_outbox_reject(f->db, s.last_seq, TLY_E_FORBIDDEN, "不允许"), TLY_OK);
	assert_int_equal(db_commit(f->db), TLY_OK);
	char m[64];
	text_of(f->db, "SELECT measures FROM task WHERE id = ?", f->task, m, sizeof m);
	assert_string_equal(m, "措施");
	assert_int_equal(store_outbox_stats(f->db, &s), TLY_OK);
	assert_int_equal(s.rejected, 1);
	json_t *r = NULL;
	assert_int_equal(verify_run(f->db, &r), TLY_OK);
	json_decref(r);
}

static void test_verify_detects(void **state)
{
	struct fx *f = *state;
	json_t *r = NULL;
	/* A domain value edited behind the log's back. */
	assert_int_equal(db_exec(f->db, "UPDATE task SET owner = '篡改'"), TLY_OK);
	assert_int_equal(verify_run(f->db, &r), TLY_E_VERIFY);
	assert_false(json_is_true(json_object_get(json_object_get(r, "rebuild"), "ok")));
	json_decref(r);
	assert_int_equal(db_exec(f->db, "UPDATE task SET owner = '张三'"), TLY_OK);
	assert_int_equal(verify_run(f->db, &r), TLY_OK);
	json_decref(r);
	/* A change body altered in the log: the chain breaks. */
	assert_int_equal(db_exec(f->db, "UPDATE change_log SET hash = zeroblob(32) WHERE seq = 2"),
			 TLY_OK);
	assert_int_equal(verify_run(f->db, &r), TLY_E_VERIFY);
	assert_true(json_array_size(json_object_get(r, "problems")) > 0);
	json_decref(r);
}

/* A site whose log is held only from seq 5 on is checked from there. */
static void test_verify_partial(void **state)
{
	struct fx *f = *state;
	uint8_t prev[32];
	memset(prev, 0xab, sizeof prev); /* the hash of seq 4, which we never saw */
	uint64_t now = hlc_make((uint64_t)clock_device_ms(), 0);
	struct change *a = remote_owner("late", 5, now, f->task, "五", prev);
	struct change *b = remote_owner("late", 6, now + 1, f->task, "六", prev);
	enum store_outcome o;
	assert_int_equal(db_begin(f->db), TLY_OK);
	assert_int_equal(store_apply_remote(f->db, a, NULL, 1, &o, NULL, NULL), TLY_OK);
	assert_int_equal(store_apply_remote(f->db, b, NULL, 1, &o, NULL, NULL), TLY_OK);
	assert_int_equal(db_commit(f->db), TLY_OK);
	json_t *r = NULL, *site;
	size_t i;
	int seen = 0;
	assert_int_equal(verify_run(f->db, &r), TLY_OK);
	json_array_foreach(json_object_get(r, "sites"), i, site)
	{
		if (strcmp(json_string_value(json_object_get(site, "site")), "late") == 0) {
			assert_false(json_is_true(json_object_get(site, "complete")));
			assert_int_equal(json_integer_value(json_object_get(site, "first_seq")), 5);
			seen = 1;
		}
	}
	assert_true(seen);
	json_decref(r);
	/* Within the held part every link is still checked. */
	assert_int_equal(db_exec(f->db, "UPDATE change_log SET prev = zeroblob(32) "
					"WHERE site = 'late' AND seq = 6"),
			 TLY_OK);
	assert_int_equal(verify_run(f->db, &r), TLY_E_VERIFY);
	json_decref(r);
	change_free(a);
	change_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_path_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_atomic_rule, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_atomic_sql, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_conflict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_rejected, setup, teardown),
		cmocka_unit_test(test_order_independence),
		cmocka_unit_test_setup_teardown(test_outbox, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_eff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_reject, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_detects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_partial, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
