/*
 * verify — chain, rebuild and integrity checks (see verify.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "protocol/chain.h"
#include "protocol/error.h"
#include "schema.h"
#include "store.h"
#include "verify.h"

static void problem(json_t *problems, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(json_t *problems, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	json_array_append_new(problems, json_string(line));
}

struct site_walk {
	char site[CHANGE_SITE_MAX + 1];
	uint64_t first, last, count, gaps;
	uint8_t prev[CHANGE_HASH_LEN];
	int ok;
};

static void site_flush(struct site_walk *w, json_t *sites)
{
	if (!w->site[0])
		return;
	json_array_append_new(sites, json_pack("{s:s, s:I, s:I, s:I, s:b, s:b}", "site", w->site,
					       "first_seq", (json_int_t)w->first, "last_seq",
					       (json_int_t)w->last, "changes",
					       (json_int_t)w->count, "complete",
					       w->first == 1 && !w->gaps,
					       "ok", w->ok));
}

static int check_chains(struct db *db, json_t *sites, json_t *problems, int *broken)
{
	sqlite3_stmt *st = NULL;
	struct site_walk w;
	int rc, err = TLY_OK;
	/* A village receives other sites' changes only as far as its feed
	 * shows them (tenancy, docs/server.md): a township's notices to other
	 * villages leave gaps. There a run after a gap is checked like a
	 * partial log. Its own chain, and every chain a township holds, must
	 * have none. */
	const struct db_site *me = db_site(db);
	int gaps_ok = me && me->role && strcmp(me->role, "village") == 0;

	memset(&w, 0, sizeof w);
	rc = sqlite3_prepare_v2(db_handle(db),
				"SELECT site, seq, hlc, kind, record_id, body, prev, hash FROM change_log "
				"ORDER BY site, seq",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_err(db, rc);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *site = (const char *)sqlite3_column_text(st, 0);
		uint64_t seq = (uint64_t)sqlite3_column_int64(st, 1);
		const void *prev = sqlite3_column_blob(st, 6);
		const void *hash = sqlite3_column_blob(st, 7);
		int links_ok = sqlite3_column_bytes(st, 6) == CHANGE_HASH_LEN &&
			       sqlite3_column_bytes(st, 7) == CHANGE_HASH_LEN;
		if (!site)
			site = "";
		if (strcmp(site, w.site) != 0) {
			site_flush(&w, sites);
			memset(&w, 0, sizeof w);
			snprintf(w.site, sizeof w.site, "%s", site);
			w.first = seq;
			w.ok = 1;
			/* A partial log is checked from the first change held: its
			 * prev is taken on trust, everything after must link. */
			if (seq == 1)
				memcpy(w.prev, chain_genesis, CHANGE_HASH_LEN);
			else if (links_ok)
				memcpy(w.prev, prev, CHANGE_HASH_LEN);
		} else if (seq != w.last + 1 && gaps_ok && strcmp(site, me->site_id) != 0) {
			w.gaps++;
			if (links_ok)
				memcpy(w.prev, prev, CHANGE_HASH_LEN);
		} else if (seq != w.last + 1) {
			problem(problems, "站点 %s 的修改记录缺了第 %llu 到 %llu 条", site,
				(unsigned long long)(w.last + 1), (unsigned long long)(seq - 1));
			w.ok = 0;
		}
		w.last = seq;
		w.count++;
		if (!w.ok)
			continue; /* one report per site: after a break nothing links */
		if (!links_ok) {
			problem(problems, "站点 %s 第 %llu 条的校验值长度不对", site,
				(unsigned long long)seq);
			w.ok = 0;
			continue;
		}
		if (memcmp(prev, w.prev, CHANGE_HASH_LEN) != 0) {
			problem(problems, "站点 %s 第 %llu 条没有接上前一条（prev 不符）", site,
				(unsigned long long)seq);
			w.ok = 0;
			continue;
		}
		struct change *c = NULL;
		int e = change_decode_canonical(sqlite3_column_blob(st, 5),
						(size_t)sqlite3_column_bytes(st, 5), NULL, &c);
		if (e) {
			problem(problems, "站点 %s 第 %llu 条内容无法解读（%s）", site,
				(unsigned long long)seq, error_name(e));
			w.ok = 0;
			continue;
		}
		const char *kind = (const char *)sqlite3_column_text(st, 3);
		const char *rid = (const char *)sqlite3_column_text(st, 4);
		uint8_t h[CHANGE_HASH_LEN];
		if (strcmp(change_site(c), site) != 0 || change_seq(c) != seq ||
		    change_hlc(c) != (uint64_t)sqlite3_column_int64(st, 2) || !kind || !rid ||
		    strcmp(change_kind(c), kind) != 0 || strcmp(change_id(c), rid) != 0) {
			problem(problems, "站点 %s 第 %llu 条的登记信息与内容不符", site,
				(unsigned long long)seq);
			w.ok = 0;
		} else if ((e = chain_hash(c, w.prev, h)) != TLY_OK) {
			err = e;
		} else if (memcmp(h, hash, CHANGE_HASH_LEN) != 0) {
			problem(problems, "站点 %s 第 %llu 条的校验值不符，内容可能被改动过", site,
				(unsigned long long)seq);
			w.ok = 0;
		} else {
			memcpy(w.prev, h, CHANGE_HASH_LEN);
		}
		change_free(c);
		if (err)
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = db_err(db, rc);
	site_flush(&w, sites);
	sqlite3_finalize(st);
	json_t *s;
	size_t i;
	json_array_foreach(sites, i, s)
	{
		if (!json_is_true(json_object_get(s, "ok")))
			*broken = 1;
	}
	return err;
}

static int count_query(sqlite3 *h, const char *sql, long long *out)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(h, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

static int compare_table(struct db *mem, const char *table, json_t *tables, json_t *problems,
			 int *broken)
{
	char sql[256];
	long long missing = 0, extra = 0;
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM (SELECT * FROM main.\"%s\" EXCEPT SELECT * FROM src.\"%s\")",
		 table, table);
	int rc = count_query(db_handle(mem), sql, &missing);
	if (rc == SQLITE_OK) {
		snprintf(sql, sizeof sql,
			 "SELECT count(*) FROM (SELECT * FROM src.\"%s\" EXCEPT SELECT * FROM main.\"%s\")",
			 table, table);
		rc = count_query(db_handle(mem), sql, &extra);
	}
	if (rc != SQLITE_OK)
		return db_err(mem, rc);
	json_array_append_new(tables, json_pack("{s:s, s:I, s:I}", "table", table, "missing",
						(json_int_t)missing, "extra", (json_int_t)extra));
	if (missing || extra) {
		*broken = 1;
		problem(problems, "表 %s 与修改记录重建的结果不一致：缺 %lld 行，多 %lld 行", table,
			missing, extra);
	}
	return TLY_OK;
}

static int check_rebuild(struct db *db, json_t *rebuild, json_t *problems, int *broken)
{
	struct db *mem = NULL;
	sqlite3_stmt *rows = NULL;
	size_t total = 0, bad = 0;
	int err, rc;
	json_t *tables = json_array();

	json_object_set_new(rebuild, "tables", tables);
	err = db_open(":memory:", DB_OPEN_CREATE, &mem, NULL);
	if (err)
		return err;
	rc = sqlite3_prepare_v2(db_handle(db),
				"SELECT body, eff, site, seq FROM change_log WHERE state = 'applied' "
				"ORDER BY pos",
				-1, &rows, NULL);
	if (rc != SQLITE_OK) {
		err = db_err(db, rc);
		goto out;
	}
	err = db_begin(mem);
	/* One row at a time: memory stays flat however long the log is. */
	while (!err && (rc = sqlite3_step(rows)) == SQLITE_ROW) {
		struct change *c = NULL;
		int e = store_change_from_row(sqlite3_column_blob(rows, 0),
					      (size_t)sqlite3_column_bytes(rows, 0),
					      sqlite3_column_int64(rows, 1), NULL, NULL, &c);
		if (e) {
			/* Reported by the chain check too; the rebuild goes on without it. */
			bad++;
			continue;
		}
		err = store_merge_change(mem, c);
		change_free(c);
		total++;
	}
	if (!err && rc != SQLITE_DONE)
		err = db_err(db, rc);
	if (!err)
		err = db_commit(mem);
	if (err) {
		db_rollback(mem);
		goto out;
	}
	if (bad) {
		*broken = 1;
		problem(problems, "有 %zu 条修改记录无法解读，重建时跳过了它们", bad);
	}
	json_object_set_new(rebuild, "changes", json_integer((json_int_t)total));

	sqlite3_stmt *st = NULL;
	rc = sqlite3_prepare_v2(db_handle(mem), "ATTACH ? AS src", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, db_path(db), -1, SQLITE_TRANSIENT);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		err = db_err(mem, rc);
		goto out;
	}
	int was = *broken;
	*broken = 0;
	/* field_state is the view of every field's current write; record_base
	 * also orders entries, so it is compared as stored. */
	err = compare_table(mem, "field_state", tables, problems, broken);
	if (!err)
		err = compare_table(mem, "record_base", tables, problems, broken);
	size_t nk;
	const struct schema_kind *k = schema_kinds(&nk);
	for (size_t i = 0; !err && i < nk; i++)
		err = compare_table(mem, k[i].kind, tables, problems, broken);
	json_object_set_new(rebuild, "ok", json_boolean(!*broken && !bad));
	*broken |= was;
	(void)db_exec(mem, "DETACH src");
out:
	sqlite3_finalize(rows);
	db_close(mem);
	return err;
}

static int check_integrity(struct db *db, json_t *integ, json_t *problems, int *broken)
{
	sqlite3_stmt *st = NULL;
	json_t *msgs = json_array();
	int ok = 1;
	json_object_set_new(integ, "messages", msgs);
	int rc = sqlite3_prepare_v2(db_handle(db), "PRAGMA integrity_check", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_err(db, rc);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *m = (const char *)sqlite3_column_text(st, 0);
		if (!m || strcmp(m, "ok") != 0) {
			ok = 0;
			json_array_append_new(msgs, json_string(m ? m : "?"));
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_err(db, rc);
	json_object_set_new(integ, "ok", json_boolean(ok));
	if (!ok) {
		*broken = 1;
		problem(problems, "数据库文件本身的完整性检查没有通过（PRAGMA integrity_check）");
	}
	return TLY_OK;
}

int verify_run(struct db *db, json_t **report)
{
	json_t *r = json_object(), *sites = json_array(), *problems = json_array();
	json_t *rebuild = json_object(), *integ = json_object();
	int broken = 0, err;

	json_object_set_new(r, "sites", sites);
	json_object_set_new(r, "rebuild", rebuild);
	json_object_set_new(r, "integrity", integ);
	json_object_set_new(r, "problems", problems);
	err = check_integrity(db, integ, problems, &broken);
	if (!err)
		err = check_chains(db, sites, problems, &broken);
	if (!err)
		err = check_rebuild(db, rebuild, problems, &broken);
	json_object_set_new(r, "ok", json_boolean(!err && !broken));
	*report = r;
	if (err)
		return err;
	return broken ? TLY_E_VERIFY : TLY_OK;
}
