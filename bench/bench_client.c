/*
 * bench_client — the ledger database's write and apply rates, each beside
 * the raw SQLite insert rate measured in the same run, on the same disk,
 * with the same pragmas (WAL, synchronous=FULL).
 *
 *   local writes:   store_write of one change per transaction (rules,
 *                   HLC, seq, hash chain, change_log, field_state, domain
 *                   table), vs one plain INSERT of a comparable row per
 *                   transaction.
 *   remote applies: store_apply_remote of chained changes from another
 *                   site, 1,000 per transaction, vs plain INSERTs of
 *                   comparable rows, 1,000 per transaction.
 *
 * Usage: bench_client [DIR] [LOCAL_WRITES] [REMOTE_CHANGES]
 * DIR (default $TMPDIR or /tmp) is where the database files go: put it on
 * the disk you want to measure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "protocol/chain.h"
#include "client/clock.h"
#include "client/db.h"
#include "protocol/error.h"
#include "protocol/hlc.h"
#include "client/ledger.h"
#include "client/store.h"

#define BATCH 1000

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench_client: %s: %s\n", what, error_name(err));
	exit(1);
}

static void rm_db(const char *path)
{
	char p[1024];
	unlink(path);
	snprintf(p, sizeof p, "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", path);
	unlink(p);
}

/* Plain INSERTs of rows about the size of a change_log row, `per_txn` per
 * transaction, with Tally's pragmas. Returns rows per second. */
static double raw_inserts(const char *path, int rows, int per_txn)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	char body[200];
	unsigned char hash[32] = {0};
	rm_db(path);
	if (sqlite3_open(path, &h) != SQLITE_OK)
		die("raw open", TLY_E_DB);
	sqlite3_exec(h, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; "
			"CREATE TABLE raw (pos INTEGER PRIMARY KEY, site TEXT, seq INTEGER, "
			"hlc INTEGER, kind TEXT, record_id TEXT, body BLOB, hash BLOB, "
			"UNIQUE (site, seq))",
		     NULL, NULL, NULL);
	sqlite3_prepare_v2(h, "INSERT INTO raw (site, seq, hlc, kind, record_id, body, hash) "
			      "VALUES ('abcdef0123456789', ?, ?, 'task', ?, ?, ?)",
			   -1, &st, NULL);
	memset(body, 'x', sizeof body);
	double t0 = now_s();
	for (int i = 0; i < rows; i++) {
		char id[17];
		if (i % per_txn == 0)
			sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		snprintf(id, sizeof id, "%016x", i % 1000);
		sqlite3_bind_int(st, 1, i + 1);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)i << 16);
		sqlite3_bind_text(st, 3, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_blob(st, 4, body, sizeof body, SQLITE_STATIC);
		hash[0] = (unsigned char)i;
		sqlite3_bind_blob(st, 5, hash, sizeof hash, SQLITE_TRANSIENT);
		if (sqlite3_step(st) != SQLITE_DONE)
			die("raw insert", TLY_E_DB);
		sqlite3_reset(st);
		if ((i + 1) % per_txn == 0 || i + 1 == rows)
			sqlite3_exec(h, "COMMIT", NULL, NULL, NULL);
	}
	double dt = now_s() - t0;
	sqlite3_finalize(st);
	sqlite3_close(h);
	rm_db(path);
	return rows / dt;
}

static double local_writes(const char *path, int n)
{
	struct db *db = NULL;
	char village[LEDGER_ID_SIZE], problem[LEDGER_ID_SIZE], task[LEDGER_ID_SIZE];
	rm_db(path);
	int err = ledger_init(path, "township", "基准镇", NULL, &db, NULL);
	if (!err)
		err = ledger_village_add(db, "王家村", village, NULL);
	struct ledger_problem p = {.source = "inspection", .text = "基准测试问题"};
	if (!err)
		err = ledger_problem_add(db, &p, problem, NULL);
	struct ledger_task t = {.problem = problem, .village = village, .measures = "措施",
				.owner = "张三", .leader = "李四", .deadline = "2026-12-31"};
	if (!err)
		err = ledger_task_add(db, &t, task, NULL);
	if (err)
		die("setup", err);
	double t0 = now_s();
	for (int i = 0; i < n; i++) {
		struct change *d = NULL;
		char owner[32];
		snprintf(owner, sizeof owner, "责任人%d", i);
		err = store_draft_new(db, "task", task, &d);
		if (!err)
			err = change_set_text(d, "owner", owner, strlen(owner), NULL);
		if (!err)
			err = store_write(db, &d, 1, NULL, NULL);
		change_free(d);
		if (err)
			die("store_write", err);
	}
	double dt = now_s() - t0;
	db_close(db);
	rm_db(path);
	return n / dt;
}

static double remote_applies(const char *path, int n)
{
	struct db *db = NULL;
	struct change **cs = calloc((size_t)n, sizeof *cs);
	uint8_t prev[CHANGE_HASH_LEN];
	memcpy(prev, chain_genesis, sizeof prev);
	uint64_t stamp = hlc_make((uint64_t)clock_device_ms() - 3600000, 0);
	/* Task creations (8 fields) for 1,000 records, then one-field updates. */
	for (int i = 0; i < n; i++) {
		char id[17];
		snprintf(id, sizeof id, "%016x", i % 1000);
		int err = change_new(&cs[i], 1, "remotesite000001", (uint64_t)i + 1, ++stamp, "task", id);
		if (err)
			die("change_new", err);
		if (i < 1000) {
			change_set_text(cs[i], "problem", "p000000000000001", 16, NULL);
			change_set_text(cs[i], "village", "v000000000000001", 16, NULL);
			change_set_text(cs[i], "measures", "每月公开村务，建立台账，专人负责", 48, NULL);
			change_set_text(cs[i], "owner", "张三", 6, NULL);
			change_set_text(cs[i], "leader", "李四", 6, NULL);
			change_set_text(cs[i], "deadline", "2026-12-31", 10, NULL);
			change_set_text(cs[i], "status", "todo", 4, NULL);
			change_set_text(cs[i], "created_on", "2026-03-01", 10, NULL);
		} else {
			change_set_text(cs[i], "owner", "王五", 6, NULL);
		}
		if ((err = chain_link(cs[i], prev)) != TLY_OK)
			die("chain_link", err);
		memcpy(prev, change_hash(cs[i]), sizeof prev);
	}
	rm_db(path);
	int err = ledger_init(path, "township", "基准镇", NULL, &db, NULL);
	if (err)
		die("setup", err);
	double t0 = now_s();
	for (int i = 0; i < n; i += BATCH) {
		err = db_begin(db);
		for (int j = i; !err && j < i + BATCH && j < n; j++) {
			enum store_outcome o;
			err = store_apply_remote(db, cs[j], NULL, clock_device_ms(), &o, NULL, NULL);
		}
		if (!err)
			err = db_commit(db);
		if (err)
			die("apply", err);
	}
	double dt = now_s() - t0;
	db_close(db);
	rm_db(path);
	for (int i = 0; i < n; i++)
		change_free(cs[i]);
	free(cs);
	return n / dt;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	int nlocal = argc > 2 ? atoi(argv[2]) : 500;
	int nremote = argc > 3 ? atoi(argv[3]) : 20000;
	char a[1024], b[1024];
	if (nlocal < 1 || nremote < 1)
		return 2;
	snprintf(a, sizeof a, "%s/bench_client_ledger.db", dir);
	snprintf(b, sizeof b, "%s/bench_client_raw.db", dir);

	double lw = local_writes(a, nlocal);
	double lr = raw_inserts(b, nlocal, 1);
	double ra = remote_applies(a, nremote);
	double rr = raw_inserts(b, nremote, BATCH);
	printf("bench_client (dir %s, WAL, synchronous=FULL)\n", dir);
	printf("%-44s %10.0f /s\n", "local writes, full path, 1 per transaction", lw);
	printf("%-44s %10.0f /s   (ledger at %.0f%% of raw)\n", "raw SQLite INSERT, 1 per transaction",
	       lr, 100.0 * lw / lr);
	printf("%-44s %10.0f /s\n", "remote changes applied, 1,000 per transaction", ra);
	printf("%-44s %10.0f /s   (ledger at %.0f%% of raw)\n",
	       "raw SQLite INSERT, 1,000 per transaction", rr, 100.0 * ra / rr);
	return 0;
}
