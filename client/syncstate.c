/*
 * syncstate — sync_state and the upstream settings (see syncstate.h).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/clock.h"
#include "client/syncstate.h"
#include "client/views.h"
#include "protocol/error.h"

/* Copies a settings value into out (n bytes with the NUL); "" when absent.
 * A stored value too long for out is refused rather than cut: a cut pin or
 * token would fail later with a misleading error. */
static int setting_str(struct db *db, const char *key, char *out, size_t n)
{
	sqlite3_stmt *st;
	int err = db_stmt(db, "SELECT value FROM settings WHERE key = ?", &st);
	if (err)
		return err;
	out[0] = '\0';
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);
		size_t len = v ? strlen(v) : 0;
		if (len >= n)
			err = TLY_E_CONFIG;
		else if (v)
			memcpy(out, v, len + 1);
	} else if (rc != SQLITE_DONE) {
		err = db_err(db, rc);
	}
	sqlite3_reset(st);
	return err;
}

static int setting_add_u64(struct db *db, const char *key, uint64_t add)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO "
			  "UPDATE SET value = CAST(CAST(value AS INTEGER) + ?2 AS TEXT)",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)add);
	return db_step_done(db, st);
}

int syncstate_load(struct db *db, struct syncstate *out)
{
	sqlite3_stmt *st;
	memset(out, 0, sizeof *out);
	int err = db_stmt(db,
			  "SELECT epoch, acked_seq, pull_cursor, server_offset_ms, fail_count "
			  "FROM sync_state WHERE one = 1",
			  &st);
	if (err)
		return err;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *e = (const char *)sqlite3_column_text(st, 0);
		if (e && strlen(e) <= MSG_EPOCH_MAX)
			strcpy(out->epoch, e);
		out->acked_seq = (uint64_t)sqlite3_column_int64(st, 1);
		out->pull_cursor = (uint64_t)sqlite3_column_int64(st, 2);
		out->offset_ms = sqlite3_column_int64(st, 3);
		out->fail_count = (uint32_t)sqlite3_column_int64(st, 4);
	} else {
		err = rc == SQLITE_DONE ? TLY_E_NOT_INITIALISED : db_err(db, rc);
	}
	sqlite3_reset(st);
	return err;
}

/* Splits one URL per line into out; blank lines and surrounding spaces ignored. */
static int split_urls(const char *p, struct syncstate_upstream *out)
{
	while (*p) {
		size_t len = strcspn(p, "\n");
		const char *s = p, *e = p + len;
		while (s < e && (*s == ' ' || *s == '\r' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\r' || e[-1] == '\t'))
			e--;
		if (e > s) {
			if (out->n_urls == SYNCSTATE_URLS_MAX || (size_t)(e - s) >= SYNCSTATE_URL_LEN)
				return TLY_E_CONFIG;
			memcpy(out->urls[out->n_urls++], s, (size_t)(e - s));
		}
		p += len;
		if (*p)
			p++;
	}
	return TLY_OK;
}

int syncstate_upstream_get(struct db *db, struct syncstate_upstream *out)
{
	char all[SYNCSTATE_URLS_MAX * SYNCSTATE_URL_LEN];
	sqlite3_stmt *st;
	memset(out, 0, sizeof *out);
	/* `tally join` (daemon/enrol.c, srvstore_enrolled_save) stores every
	 * address in sync_urls and the first in sync_state.upstream_url. */
	int err = setting_str(db, "sync_urls", all, sizeof all);
	if (!err && all[0]) {
		err = split_urls(all, out);
	} else if (!err) {
		err = db_stmt(db, "SELECT upstream_url FROM sync_state WHERE one = 1", &st);
		if (err)
			return err;
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
			err = split_urls((const char *)sqlite3_column_text(st, 0), out);
		sqlite3_reset(st);
	}
	if (!err)
		err = setting_str(db, "sync_pin", out->pin, sizeof out->pin);
	if (!err)
		err = setting_str(db, "sync_token", out->token, sizeof out->token);
	if (!err)
		err = setting_str(db, "sync_ca_file", out->ca_file, sizeof out->ca_file);
	return err;
}

int syncstate_epoch_reset(struct db *db, const char *epoch)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "UPDATE sync_state SET epoch = ?, acked_seq = 0, pull_cursor = 0 "
			  "WHERE one = 1",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, epoch, -1, SQLITE_STATIC);
	return db_step_done(db, st);
}

int syncstate_set_cursor(struct db *db, uint64_t next)
{
	sqlite3_stmt *st;
	int err = db_stmt(db, "UPDATE sync_state SET pull_cursor = ? WHERE one = 1", &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, (int64_t)next);
	return db_step_done(db, st);
}

int syncstate_record_clock(struct db *db, uint64_t server_ms, int64_t offset_ms)
{
	sqlite3_stmt *st;
	char v[24];
	int err = db_stmt(db, "UPDATE sync_state SET server_offset_ms = ? WHERE one = 1", &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, offset_ms);
	err = db_step_done(db, st);
	snprintf(v, sizeof v, "%llu", (unsigned long long)server_ms);
	if (!err)
		err = db_setting_set(db, "sync_server_ms", v);
	return err;
}

int syncstate_record_attempt(struct db *db, int64_t now_ms)
{
	sqlite3_stmt *st;
	int err = db_stmt(db, "UPDATE sync_state SET last_attempt_ms = ? WHERE one = 1", &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, now_ms);
	return db_step_done(db, st);
}

static int add_bytes(struct db *db, uint64_t sent, uint64_t received)
{
	int err = setting_add_u64(db, "sync_bytes_sent", sent);
	if (!err)
		err = setting_add_u64(db, "sync_bytes_received", received);
	return err;
}

int syncstate_record_success(struct db *db, int64_t now_ms, uint64_t bytes_sent,
			     uint64_t bytes_received)
{
	sqlite3_stmt *st;
	/* Bookkeeping only: the changes and acknowledgements were committed by
	 * their own transactions, so losing this row in a crash loses nothing. */
	int err = db_begin(db);
	if (err)
		return err;
	err = db_stmt(db,
		      "UPDATE sync_state SET last_success_ms = ?, last_error_code = NULL, "
		      "last_error_text = NULL, next_attempt_ms = NULL, fail_count = 0 WHERE one = 1",
		      &st);
	if (!err) {
		sqlite3_bind_int64(st, 1, now_ms);
		err = db_step_done(db, st);
	}
	if (!err)
		err = add_bytes(db, bytes_sent, bytes_received);
	if (!err)
		err = db_commit(db);
	if (err)
		db_rollback(db);
	return err;
}

int syncstate_record_error(struct db *db, int code, const char *detail_zh, int64_t next_ms,
			   uint64_t bytes_sent, uint64_t bytes_received)
{
	sqlite3_stmt *st;
	struct buf text;
	buf_init(&text, 2048);
	int err = buf_add_str(&text, error_text_zh(code));
	if (!err && detail_zh && *detail_zh)
		err = buf_addf(&text, "（%s）", detail_zh);
	if (err)
		goto out;
	err = db_begin(db);
	if (err)
		goto out;
	err = db_stmt(db,
		      "UPDATE sync_state SET last_error_code = ?, last_error_text = ?, "
		      "next_attempt_ms = ?, fail_count = fail_count + 1 WHERE one = 1",
		      &st);
	if (!err) {
		sqlite3_bind_text(st, 1, error_name(code), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, text.data, -1, SQLITE_STATIC);
		if (next_ms > 0)
			sqlite3_bind_int64(st, 3, next_ms);
		else
			sqlite3_bind_null(st, 3);
		err = db_step_done(db, st);
	}
	if (!err)
		err = add_bytes(db, bytes_sent, bytes_received);
	if (!err)
		err = db_commit(db);
	if (err)
		db_rollback(db);
out:
	buf_free(&text);
	return err;
}

static json_t *when_json(sqlite3_stmt *st, int col)
{
	char when[20];
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return json_null();
	views_format_ms(sqlite3_column_int64(st, col), when);
	return json_string(when);
}

static json_t *ms_json(sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return json_null();
	return json_integer(sqlite3_column_int64(st, col));
}

int syncstate_json(struct db *db, json_t **out)
{
	sqlite3_stmt *st;
	struct syncstate_upstream up;
	int err = syncstate_upstream_get(db, &up);
	if (err)
		return err;
	json_t *o = json_object();
	json_t *urls = json_array();
	for (size_t i = 0; i < up.n_urls; i++)
		json_array_append_new(urls, json_string(up.urls[i]));
	json_object_set_new(o, "joined", json_boolean(up.n_urls > 0));
	json_object_set_new(o, "upstream", urls);
	json_object_set_new(o, "trust", json_string(up.ca_file[0] ? "ca" : up.pin[0] ? "pin" : "none"));
	err = db_stmt(db,
		      "SELECT epoch, acked_seq, pull_cursor, server_offset_ms, last_attempt_ms, "
		      "last_success_ms, last_error_code, last_error_text, next_attempt_ms, fail_count "
		      "FROM sync_state WHERE one = 1",
		      &st);
	if (err)
		goto out;
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *epoch = (const char *)sqlite3_column_text(st, 0);
		int64_t off = sqlite3_column_int64(st, 3);
		json_object_set_new(o, "epoch", epoch ? json_string(epoch) : json_null());
		json_object_set_new(o, "acked_seq", json_integer(sqlite3_column_int64(st, 1)));
		json_object_set_new(o, "pull_cursor", json_integer(sqlite3_column_int64(st, 2)));
		json_object_set_new(o, "offset_ms", json_integer(off));
		json_object_set_new(o, "clock_warning",
				    json_boolean(off > SYNCSTATE_CLOCK_WARN_MS ||
						 off < -SYNCSTATE_CLOCK_WARN_MS));
		json_object_set_new(o, "last_attempt", when_json(st, 4));
		json_object_set_new(o, "last_attempt_ms", ms_json(st, 4));
		json_object_set_new(o, "last_success", when_json(st, 5));
		json_object_set_new(o, "last_success_ms", ms_json(st, 5));
		if (sqlite3_column_type(st, 6) != SQLITE_NULL)
			json_object_set_new(
				o, "last_error",
				json_pack("{s:s, s:s}", "code", (const char *)sqlite3_column_text(st, 6),
					  "message",
					  sqlite3_column_text(st, 7)
						  ? (const char *)sqlite3_column_text(st, 7)
						  : ""));
		else
			json_object_set_new(o, "last_error", json_null());
		json_object_set_new(o, "next_attempt", when_json(st, 8));
		json_object_set_new(o, "fail_count", json_integer(sqlite3_column_int64(st, 9)));
	}
	sqlite3_reset(st);
	json_object_set_new(o, "server_ms", json_integer(db_setting_int(db, "sync_server_ms", 0)));
	json_object_set_new(o, "bytes_sent", json_integer(db_setting_int(db, "sync_bytes_sent", 0)));
	json_object_set_new(o, "bytes_received",
			    json_integer(db_setting_int(db, "sync_bytes_received", 0)));
out:
	if (err) {
		json_decref(o);
		return err;
	}
	*out = o;
	return TLY_OK;
}

static const char *str_of(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

void syncstate_print(const json_t *sync)
{
	if (!sync || !json_is_true(json_object_get(sync, "joined"))) {
		printf("同步：本机还没有加入乡镇台账（用 tally join 加入），修改只保存在本机\n");
		return;
	}
	json_t *u;
	size_t i;
	printf("乡镇服务器：");
	json_array_foreach(json_object_get(sync, "upstream"), i, u)
	{
		printf("%s%s", i ? "、" : "", json_string_value(u));
	}
	printf("\n");
	const char *ok = json_string_value(json_object_get(sync, "last_success"));
	printf("上次同步成功：%s\n", ok ? ok : "从未成功");
	const char *at = json_string_value(json_object_get(sync, "last_attempt"));
	json_t *e = json_object_get(sync, "last_error");
	if (at)
		printf("上次尝试同步：%s，%s\n", at,
		       json_is_object(e) ? "没有成功" : "成功");
	if (json_is_object(e))
		printf("同步失败原因：%s (%s)\n", str_of(e, "message"), str_of(e, "code"));
	const char *next = json_string_value(json_object_get(sync, "next_attempt"));
	if (json_is_object(e) && next)
		printf("下次自动重试：%s\n", next);
	long long off = (long long)json_integer_value(json_object_get(sync, "offset_ms"));
	long long aoff = off < 0 ? -off : off;
	if (aoff < 1000)
		printf("本机时钟与乡镇服务器一致（相差不到 1 秒）\n");
	else
		printf("本机时钟与乡镇服务器相差：%s %lld 秒\n", off > 0 ? "慢" : "快", aoff / 1000);
	if (json_is_true(json_object_get(sync, "clock_warning")))
		printf("注意：本机时钟不准（相差 %lld 分钟以上），请校准电脑时间；"
		       "同步不受影响，记录时间已按乡镇服务器时间校正\n",
		       aoff / 60000);
}
