/*
 * db — opening, migrating and identifying a site's database (see db.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "db.h"
#include "protocol/error.h"
#include "schema.h"
#include "why.h"

/* Small fixed cache: the write and apply paths run a few dozen distinct
 * statements, and re-preparing them per change would dominate batch apply.
 * The apply path adds one domain upsert per (kind, set of columns won) and
 * one field_state upsert per row count, so there is room for those too. */
#define DB_STMT_CACHE 192

struct db_cached {
	char *sql;
	const char *key; /* the caller's pointer when cached: a hint, never trusted alone */
	uint32_t hash;
	sqlite3_stmt *st;
};

struct db {
	sqlite3 *h;
	char *path;
	struct db_cached cache[DB_STMT_CACHE];
	size_t ncached;
	int have_site;
	int txn; /* db_begin'd, not yet committed or rolled back */
	struct db_site site;
	char *site_id, *role, *name, *village_id;
};

int db_err(struct db *db, int rc)
{
	(void)db;
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return TLY_OK;
	case SQLITE_NOMEM:
		return TLY_E_NOMEM;
	case SQLITE_IOERR:
	case SQLITE_FULL:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
	case SQLITE_PERM:
		return TLY_E_IO;
	case SQLITE_NOTADB:
		return TLY_E_NOT_TALLY_DB;
	default:
		return TLY_E_DB;
	}
}

sqlite3 *db_handle(struct db *db) { return db->h; }
const char *db_path(const struct db *db) { return db->path; }

static uint32_t sql_hash(const char *sql)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

static void stmt_hit(struct db_cached *e, const char *sql, sqlite3_stmt **out)
{
	e->key = sql;
	sqlite3_reset(e->st);
	sqlite3_clear_bindings(e->st);
	*out = e->st;
}

int db_stmt(struct db *db, const char *sql, sqlite3_stmt **out)
{
	/* A statement that failed with SQLITE_NOMEM, IOERR or FULL may have
	 * rolled the whole transaction back; whoever ignored that error must
	 * not go on writing in autocommit mode, one statement at a time. */
	if (db->txn && sqlite3_get_autocommit(db->h))
		return TLY_E_DB;
	/* Hot paths pass the same string literal each time: the pointer finds
	 * the entry without hashing, and strcmp confirms it (a stack buffer
	 * may hold other text at the same address). */
	for (size_t i = 0; i < db->ncached; i++) {
		if (db->cache[i].key == sql && strcmp(db->cache[i].sql, sql) == 0) {
			stmt_hit(&db->cache[i], sql, out);
			return TLY_OK;
		}
	}
	uint32_t h = sql_hash(sql);
	for (size_t i = 0; i < db->ncached; i++) {
		if (db->cache[i].hash == h && strcmp(db->cache[i].sql, sql) == 0) {
			stmt_hit(&db->cache[i], sql, out);
			return TLY_OK;
		}
	}
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (rc != SQLITE_OK)
		return db_err(db, rc);
	if (db->ncached == DB_STMT_CACHE) {
		/* Full: evict the oldest; callers never hold a statement across
		 * more than a handful of other db_stmt calls. */
		sqlite3_finalize(db->cache[0].st);
		free(db->cache[0].sql);
		memmove(&db->cache[0], &db->cache[1], (DB_STMT_CACHE - 1) * sizeof db->cache[0]);
		db->ncached--;
	}
	char *copy = strdup(sql);
	if (!copy) {
		sqlite3_finalize(st);
		return TLY_E_NOMEM;
	}
	db->cache[db->ncached].sql = copy;
	db->cache[db->ncached].key = sql;
	db->cache[db->ncached].hash = h;
	db->cache[db->ncached].st = st;
	db->ncached++;
	*out = st;
	return TLY_OK;
}

int db_step_done(struct db *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? TLY_OK : db_err(db, rc);
}

int db_exec(struct db *db, const char *sql)
{
	if (db->txn && sqlite3_get_autocommit(db->h))
		return TLY_E_DB; /* see db_stmt */
	return db_err(db, sqlite3_exec(db->h, sql, NULL, NULL, NULL));
}

int db_begin(struct db *db)
{
	int err = db_exec(db, "BEGIN IMMEDIATE");
	db->txn = !err;
	return err;
}

int db_commit(struct db *db)
{
	/* With synchronous=FULL in WAL mode SQLite fsyncs the WAL before
	 * COMMIT returns: after this, "saved" is true across a power cut. */
	int err = db_exec(db, "COMMIT");
	db->txn = 0;
	if (err)
		db_rollback(db);
	return err;
}

void db_rollback(struct db *db)
{
	db->txn = 0;
	if (!sqlite3_get_autocommit(db->h))
		(void)sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

int db_in_txn(struct db *db) { return !sqlite3_get_autocommit(db->h); }

static int pragma_int(struct db *db, const char *sql, int *out)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db->h, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*out = sqlite3_column_int(st, 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	return db_err(db, rc);
}

int db_user_version(struct db *db, int *out) { return pragma_int(db, "PRAGMA user_version", out); }

const struct db_site *db_site(const struct db *db) { return db->have_site ? &db->site : NULL; }

static char *dup_col(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? strdup((const char *)t) : NULL;
}

static void site_clear(struct db *db)
{
	free(db->site_id);
	free(db->role);
	free(db->name);
	free(db->village_id);
	db->site_id = db->role = db->name = db->village_id = NULL;
	db->have_site = 0;
	memset(&db->site, 0, sizeof db->site);
}

static int site_load(struct db *db)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "SELECT site_id, role, name, village_id, created_ms FROM site WHERE one = 1",
			  &st);
	if (err)
		return err;
	site_clear(db);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return TLY_OK;
	if (rc != SQLITE_ROW)
		return db_err(db, rc);
	db->site_id = dup_col(st, 0);
	db->role = dup_col(st, 1);
	db->name = dup_col(st, 2);
	db->village_id = dup_col(st, 3);
	db->site.created_ms = sqlite3_column_int64(st, 4);
	sqlite3_reset(st);
	if (!db->site_id || !db->role || !db->name) {
		site_clear(db);
		return TLY_E_NOMEM;
	}
	db->site.site_id = db->site_id;
	db->site.role = db->role;
	db->site.name = db->name;
	db->site.village_id = db->village_id;
	db->have_site = 1;
	return TLY_OK;
}

static const char hex_digits[] = "0123456789abcdef";

/* Writes n random lowercase hex digits to out (no NUL). */
static int random_hex(char *out, size_t n)
{
	unsigned char raw[16];
	size_t got = 0, need = (n + 1) / 2;

	if (need > sizeof raw)
		return TLY_E_INTERNAL;
	while (got < need) {
		ssize_t r = getrandom(raw + got, need - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return TLY_E_IO;
		}
		got += (size_t)r;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = hex_digits[i % 2 ? raw[i / 2] & 15 : raw[i / 2] >> 4];
	return TLY_OK;
}

int db_random_id(char out[DB_ID_LEN + 1])
{
	int err = random_hex(out, DB_ID_LEN);
	out[err ? 0 : DB_ID_LEN] = '\0';
	return err;
}

int db_record_id(int64_t now_ms, char out[DB_RECORD_ID_LEN + 1])
{
	uint64_t t = now_ms > 0 ? (uint64_t)now_ms : 0;
	/* 11 hex digits hold milliseconds until the year 2527. */
	for (int i = 10; i >= 0; i--, t >>= 4)
		out[i] = hex_digits[t & 15];
	int err = random_hex(out + 11, DB_RECORD_ID_LEN - 11);
	out[err ? 0 : DB_RECORD_ID_LEN] = '\0';
	return err;
}

int db_site_create(struct db *db, const char *role, const char *name, const char *village_id,
		   int64_t now_ms)
{
	char id[DB_ID_LEN + 1];
	sqlite3_stmt *st;
	int err;

	if (db->have_site)
		return TLY_E_EXISTS;
	if (strcmp(role, "township") != 0 && strcmp(role, "village") != 0)
		return TLY_E_BAD_VALUE;
	if ((strcmp(role, "village") == 0) != (village_id != NULL))
		return TLY_E_BAD_VALUE;
	err = db_random_id(id);
	if (err)
		return err;
	err = db_stmt(db,
		      "INSERT INTO site (one, site_id, role, name, village_id, created_ms) "
		      "VALUES (1, ?, ?, ?, ?, ?)",
		      &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, role, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
	if (village_id)
		sqlite3_bind_text(st, 4, village_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 5, now_ms);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_err(db, rc);
	return site_load(db);
}

int db_site_set_village(struct db *db, const char *village_id)
{
	sqlite3_stmt *st;
	int err = db_stmt(db, "UPDATE site SET village_id = ? WHERE one = 1", &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, village_id, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_err(db, rc);
	return site_load(db);
}

int64_t db_setting_int(struct db *db, const char *key, int64_t def)
{
	sqlite3_stmt *st;
	int64_t v = def;
	if (db_stmt(db, "SELECT value FROM settings WHERE key = ?", &st))
		return def;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		char *end = NULL;
		if (t && *t) {
			errno = 0;
			long long x = strtoll(t, &end, 10);
			if (errno == 0 && end && *end == '\0')
				v = x;
		}
	}
	sqlite3_reset(st);
	return v;
}

int db_setting_set(struct db *db, const char *key, const char *value)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "INSERT INTO settings (key, value) VALUES (?, ?) "
			  "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? TLY_OK : db_err(db, rc);
}

/* Counts objects in the file's schema (0 for a new or empty file). */
static int schema_object_count(struct db *db, int *out)
{
	return pragma_int(db, "SELECT count(*) FROM sqlite_schema", out);
}

/* Brings the file from version `from` to the current one, one transaction
 * per step: the user_version bump commits together with the step's DDL. */
static int migrate(struct db *db, int from, struct buf *why)
{
	size_t n;
	const struct schema_migration *m = schema_migrations(&n);
	char sql[64];

	for (size_t v = (size_t)from; v < n; v++) {
		int err = db_begin(db);
		if (!err)
			err = db_exec(db, m[v].sql);
		if (!err) {
			snprintf(sql, sizeof sql, "PRAGMA user_version = %zu", v + 1);
			err = db_exec(db, sql);
		}
		if (!err)
			err = db_commit(db);
		if (err) {
			db_rollback(db);
			why_set(why, "数据库升级到第 %zu 版失败：%s", v + 1, sqlite3_errmsg(db->h));
			return err;
		}
	}
	return TLY_OK;
}

/*
 * Decides what the file is before anything writes to it: setting WAL or
 * running a migration on someone else's SQLite file would change it.
 */
static int check_identity(struct db *db, int flags, int *version, struct buf *why)
{
	int appid = 0, objects = 0, err;

	err = pragma_int(db, "PRAGMA application_id", &appid);
	if (!err)
		err = db_user_version(db, version);
	if (!err)
		err = schema_object_count(db, &objects);
	if (err == TLY_E_NOT_TALLY_DB || err == TLY_E_DB) {
		why_set(why, "文件 %s 不是台账数据库（无法按数据库打开）", db->path);
		return TLY_E_NOT_TALLY_DB;
	}
	if (err)
		return err;
	if (objects == 0 && appid == 0 && *version == 0) {
		if (!(flags & DB_OPEN_CREATE)) {
			why_set(why, "%s 还没有台账数据，请先运行 tally init", db->path);
			return TLY_E_NOT_INITIALISED;
		}
		return TLY_OK;
	}
	if (appid != DB_APPLICATION_ID) {
		why_set(why, "文件 %s 是别的软件的数据库，不是台账数据库", db->path);
		return TLY_E_NOT_TALLY_DB;
	}
	if (*version > schema_version()) {
		why_set(why, "数据库 %s 是新版软件创建的（第 %d 版，本软件只认识到第 %d 版），请先升级台账软件",
			db->path, *version, schema_version());
		return TLY_E_DB_TOO_NEW;
	}
	return TLY_OK;
}

int db_open(const char *path, int flags, struct db **out, struct buf *why)
{
	struct db *db = NULL;
	int err = TLY_OK, version = 0;
	int oflags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
	struct stat sb;

	*out = NULL;
	if (!(flags & DB_OPEN_CREATE) && strcmp(path, ":memory:") != 0 && stat(path, &sb) != 0) {
		why_set(why, "找不到数据库 %s，请先运行 tally init（或用 --db 指定）", path);
		return TLY_E_NOT_INITIALISED;
	}
	if (flags & DB_OPEN_CREATE)
		oflags |= SQLITE_OPEN_CREATE;
	db = calloc(1, sizeof *db);
	if (!db)
		return TLY_E_NOMEM;
	db->path = strdup(path);
	if (!db->path) {
		err = TLY_E_NOMEM;
		goto out;
	}
	int rc = sqlite3_open_v2(path, &db->h, oflags, NULL);
	if (rc != SQLITE_OK) {
		why_set(why, "无法打开数据库 %s：%s", path, db->h ? sqlite3_errmsg(db->h) : "");
		err = db_err(db, rc);
		goto out;
	}
	sqlite3_extended_result_codes(db->h, 1);
	/* Before any read: tallyd may hold the write lock for a moment. */
	sqlite3_busy_timeout(db->h, 5000);

	err = check_identity(db, flags, &version, why);
	if (err)
		goto out;
	/* WAL lets `tally` read while tallyd writes; FULL makes each commit
	 * durable before it returns (guarantee 1). */
	err = db_exec(db, "PRAGMA journal_mode = WAL");
	if (!err)
		err = db_exec(db, "PRAGMA synchronous = FULL");
	if (!err)
		err = db_exec(db, "PRAGMA foreign_keys = ON");
	/* A transaction's statement journal in memory: on disk it was a temp
	 * file written page by page for every statement of a push, more
	 * writes than the WAL itself. */
	if (!err)
		err = db_exec(db, "PRAGMA temp_store = MEMORY");
	if (err) {
		why_set(why, "无法设置数据库 %s：%s", path, sqlite3_errmsg(db->h));
		goto out;
	}
	if (version < schema_version()) {
		err = migrate(db, version, why);
		if (err)
			goto out;
	}
	err = site_load(db);
	if (err)
		goto out;
	/* A township file holds every village's records: 16 MiB of page cache
	 * (SQLite's default is 2 MiB) keeps a push's B-tree pages from being
	 * read back from the WAL. A village's file is small, and its old PC
	 * keeps the default. */
	if (db->have_site && db->role && strcmp(db->role, "township") == 0)
		err = db_exec(db, "PRAGMA cache_size = -16384");
	if (err)
		goto out;
	*out = db;
	db = NULL;
out:
	db_close(db);
	return err;
}

void db_close(struct db *db)
{
	if (!db)
		return;
	for (size_t i = 0; i < db->ncached; i++) {
		sqlite3_finalize(db->cache[i].st);
		free(db->cache[i].sql);
	}
	if (db->h)
		sqlite3_close(db->h);
	site_clear(db);
	free(db->path);
	free(db);
}
