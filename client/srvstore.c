/*
 * srvstore — the township server's tables (see srvstore.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/srvstore.h"
#include "client/store.h"
#include "protocol/error.h"

/* Feed indexing works through the change log in slices, so a large
 * backlog (a first start on an old township database) holds bounded memory. */
#define FEED_SLICE 256

static void copy_col(sqlite3_stmt *st, int i, char *out, size_t n)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	size_t len = t ? (size_t)sqlite3_column_bytes(st, i) : 0;
	if (len >= n)
		len = n - 1;
	if (len)
		memcpy(out, t, len);
	out[len] = '\0';
}

static void bind_opt_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* ---- epoch and marks ---- */

int srvstore_epoch(struct db *db, char out[MSG_EPOCH_MAX + 1])
{
	sqlite3_stmt *st;
	int err = db_stmt(db, "SELECT epoch FROM srv_state WHERE one = 1", &st);
	if (err)
		return err;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		copy_col(st, 0, out, MSG_EPOCH_MAX + 1);
	else
		err = rc == SQLITE_DONE ? TLY_E_NOT_INITIALISED : db_err(db, rc);
	sqlite3_reset(st);
	return err;
}

int srvstore_epoch_renew(struct db *db, char out[MSG_EPOCH_MAX + 1])
{
	char id[DB_ID_LEN + 1];
	sqlite3_stmt *st;
	int err = db_random_id(id);
	if (err)
		return err;
	err = db_stmt(db, "UPDATE srv_state SET epoch = ? WHERE one = 1", &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	err = db_step_done(db, st);
	if (!err)
		memcpy(out, id, DB_ID_LEN + 1);
	return err;
}

static int one_int(struct db *db, const char *sql, const char *arg, int64_t *out)
{
	sqlite3_stmt *st;
	int err = db_stmt(db, sql, &st);
	if (err)
		return err;
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	*out = 0;
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		err = db_err(db, rc);
	sqlite3_reset(st);
	return err;
}

int srvstore_log_high(struct db *db, int64_t *pos)
{
	return one_int(db, "SELECT coalesce(max(pos), 0) FROM change_log", NULL, pos);
}

int srvstore_site_last_stamp(struct db *db, const char *site, uint64_t *stamp)
{
	int64_t v = 0; /* one_int sets it only after the statement is prepared */
	int err = one_int(db,
			  "SELECT coalesce(eff, hlc) FROM change_log WHERE site = ? "
			  "ORDER BY seq DESC LIMIT 1",
			  site, &v);
	*stamp = (uint64_t)v;
	return err;
}

int srvstore_change_links(struct db *db, const char *site, uint64_t seq, int *found,
			  uint8_t hash[CHANGE_HASH_LEN], uint64_t *eff)
{
	sqlite3_stmt *st;
	int err = db_stmt(db, "SELECT hash, coalesce(eff, 0) FROM change_log WHERE site = ? AND seq = ?",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, site, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (int64_t)seq);
	int rc = sqlite3_step(st);
	*found = 0;
	*eff = 0;
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 0) == CHANGE_HASH_LEN) {
			*found = 1;
			memcpy(hash, sqlite3_column_blob(st, 0), CHANGE_HASH_LEN);
			*eff = (uint64_t)sqlite3_column_int64(st, 1);
		} else {
			err = TLY_E_CHAIN;
		}
	} else if (rc != SQLITE_DONE) {
		err = db_err(db, rc);
	}
	sqlite3_reset(st);
	return err;
}

int srvstore_setting_text(struct db *db, const char *key, struct buf *out)
{
	sqlite3_stmt *st;
	int err = db_stmt(db, "SELECT value FROM settings WHERE key = ?", &st);
	if (err)
		return err;
	buf_reset(out);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		err = buf_add(out, sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0));
	else if (rc != SQLITE_DONE)
		err = db_err(db, rc);
	if (!err && !out->data)
		err = buf_add(out, "", 0);
	sqlite3_reset(st);
	return err;
}

/* ---- devices ---- */

int srvstore_device_add(struct db *db, const struct srvstore_device *d, int64_t now_ms)
{
	sqlite3_stmt *st;
	int64_t n;
	int err = one_int(db, "SELECT count(*) FROM srv_device WHERE site = ?", d->site, &n);
	if (err)
		return err;
	if (n)
		return TLY_E_EXISTS;
	err = db_stmt(db,
		      "INSERT INTO srv_device (id, site, village, name, secret_hash, created_ms) "
		      "VALUES (?, ?, ?, ?, ?, ?)",
		      &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, d->id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, d->site, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, d->village, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 4, d->name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 5, d->secret_hash, SRVSTORE_HASH_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 6, now_ms);
	return db_step_done(db, st);
}

int srvstore_device_get(struct db *db, const char *id, struct srvstore_device *out)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "SELECT id, site, village, name, secret_hash, coalesce(revoked_ms, 0) "
			  "FROM srv_device WHERE id = ?",
			  &st);
	if (err)
		return err;
	memset(out, 0, sizeof *out);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 4) == SRVSTORE_HASH_LEN) {
		copy_col(st, 0, out->id, sizeof out->id);
		copy_col(st, 1, out->site, sizeof out->site);
		copy_col(st, 2, out->village, sizeof out->village);
		copy_col(st, 3, out->name, sizeof out->name);
		memcpy(out->secret_hash, sqlite3_column_blob(st, 4), SRVSTORE_HASH_LEN);
		out->revoked_ms = sqlite3_column_int64(st, 5);
	} else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		err = TLY_E_NOT_FOUND;
	} else {
		err = db_err(db, rc);
	}
	sqlite3_reset(st);
	return err;
}

int srvstore_device_revoke(struct db *db, const char *id, int64_t now_ms)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "UPDATE srv_device SET revoked_ms = coalesce(revoked_ms, ?) WHERE id = ?",
			  &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
	err = db_step_done(db, st);
	if (!err && sqlite3_changes(db_handle(db)) == 0)
		err = TLY_E_NOT_FOUND;
	return err;
}

int srvstore_device_contact(struct db *db, const char *id, int64_t now_ms, int64_t acked,
			    int64_t queue, int has_offset, int64_t offset_ms, const char *err_code)
{
	sqlite3_stmt *st;
	int err = db_stmt(
		db,
		"UPDATE srv_device SET last_contact_ms = ?1, "
		"acked_seq = CASE WHEN ?2 >= 0 THEN ?2 ELSE acked_seq END, "
		"queue_depth = CASE WHEN ?3 >= 0 THEN ?3 ELSE queue_depth END, "
		"offset_ms = CASE WHEN ?4 THEN ?5 ELSE offset_ms END, "
		"last_error_code = coalesce(?6, last_error_code), "
		"last_error_ms = CASE WHEN ?6 IS NULL THEN last_error_ms ELSE ?1 END "
		"WHERE id = ?7",
		&st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_int64(st, 2, acked);
	sqlite3_bind_int64(st, 3, queue);
	sqlite3_bind_int(st, 4, has_offset);
	sqlite3_bind_int64(st, 5, offset_ms);
	bind_opt_text(st, 6, err_code);
	sqlite3_bind_text(st, 7, id, -1, SQLITE_TRANSIENT);
	return db_step_done(db, st);
}

static json_t *col_json(sqlite3_stmt *st, int i)
{
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER:
		return json_integer(sqlite3_column_int64(st, i));
	case SQLITE_TEXT:
		return json_stringn((const char *)sqlite3_column_text(st, i),
				    (size_t)sqlite3_column_bytes(st, i));
	default:
		return json_null();
	}
}

static int device_events(struct db *db, const char *id, json_t *into)
{
	static const char *const names[] = {"at_ms", "event", "code", "detail"};
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "SELECT at_ms, event, code, detail FROM srv_audit WHERE device_id = ? "
			  "ORDER BY id DESC LIMIT 5",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *o = json_object();
		if (!o || json_array_append_new(into, o)) {
			err = TLY_E_NOMEM;
			break;
		}
		for (int i = 0; i < 4; i++) {
			if (json_object_set_new(o, names[i], col_json(st, i))) {
				err = TLY_E_NOMEM;
				break;
			}
		}
		if (err)
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = db_err(db, rc);
	sqlite3_reset(st);
	return err;
}

int srvstore_devices_json(struct db *db, json_t **out)
{
	static const char *const names[] = {
		"device_id", "site", "village", "name", "created_ms", "revoked_ms",
		"last_contact_ms", "acked_seq", "queue_depth", "offset_ms", "last_error_code",
		"last_error_ms",
	};
	enum { NCOL = sizeof names / sizeof names[0] };
	sqlite3_stmt *st;
	json_t *arr = json_array();
	char (*ids)[DB_ID_LEN + 1] = NULL;
	size_t nids = 0, cap = 0;
	int err = arr ? TLY_OK : TLY_E_NOMEM, rc;

	*out = NULL;
	if (err)
		goto out;
	err = db_stmt(db,
		      "SELECT id, site, village, name, created_ms, revoked_ms, last_contact_ms, "
		      "acked_seq, queue_depth, offset_ms, last_error_code, last_error_ms "
		      "FROM srv_device ORDER BY created_ms, id",
		      &st);
	if (err)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *o = json_object();
		if (!o || json_array_append_new(arr, o)) {
			err = TLY_E_NOMEM;
			break;
		}
		for (int i = 0; i < NCOL && !err; i++) {
			if (json_object_set_new(o, names[i], col_json(st, i)))
				err = TLY_E_NOMEM;
		}
		if (nids == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			void *m = realloc(ids, ncap * sizeof *ids);
			if (!m) {
				err = TLY_E_NOMEM;
				break;
			}
			ids = m;
			cap = ncap;
		}
		copy_col(st, 0, ids[nids++], sizeof ids[0]);
		if (err)
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = db_err(db, rc);
	sqlite3_reset(st);
	/* The events are read after the device query is finished: db_stmt
	 * statements must not be stepped while another use is open. */
	for (size_t i = 0; i < nids && !err; i++) {
		json_t *ev = json_array();
		if (!ev || json_object_set_new(json_array_get(arr, i), "recent_events", ev))
			err = TLY_E_NOMEM;
		else
			err = device_events(db, ids[i], ev);
	}
out:
	free(ids);
	if (err) {
		json_decref(arr);
		return err;
	}
	*out = arr;
	return TLY_OK;
}

/* ---- users ---- */

int srvstore_user_add(struct db *db, const char *id, const char *name,
		      const uint8_t hash[SRVSTORE_HASH_LEN], int64_t now_ms)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "INSERT INTO srv_user (id, name, secret_hash, created_ms) VALUES (?, ?, ?, ?)",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 3, hash, SRVSTORE_HASH_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, now_ms);
	return db_step_done(db, st);
}

int srvstore_user_get(struct db *db, const char *id, char name[SRVSTORE_NAME_MAX + 1],
		      uint8_t hash[SRVSTORE_HASH_LEN], int64_t *revoked_ms)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "SELECT name, secret_hash, coalesce(revoked_ms, 0) FROM srv_user WHERE id = ?",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 1) == SRVSTORE_HASH_LEN) {
		if (name)
			copy_col(st, 0, name, SRVSTORE_NAME_MAX + 1);
		memcpy(hash, sqlite3_column_blob(st, 1), SRVSTORE_HASH_LEN);
		*revoked_ms = sqlite3_column_int64(st, 2);
	} else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		err = TLY_E_NOT_FOUND;
	} else {
		err = db_err(db, rc);
	}
	sqlite3_reset(st);
	return err;
}

/* ---- join codes ---- */

int srvstore_join_add(struct db *db, const struct srvstore_join *j, int64_t now_ms)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "INSERT INTO srv_join (id, village, secret_hash, created_ms, expires_ms) "
			  "VALUES (?, ?, ?, ?, ?)",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, j->id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, j->village, -1, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 3, j->secret_hash, SRVSTORE_HASH_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, now_ms);
	sqlite3_bind_int64(st, 5, j->expires_ms);
	return db_step_done(db, st);
}

int srvstore_join_get(struct db *db, const char *id, struct srvstore_join *out)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "SELECT id, village, secret_hash, expires_ms, coalesce(used_ms, 0) "
			  "FROM srv_join WHERE id = ?",
			  &st);
	if (err)
		return err;
	memset(out, 0, sizeof *out);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 2) == SRVSTORE_HASH_LEN) {
		copy_col(st, 0, out->id, sizeof out->id);
		copy_col(st, 1, out->village, sizeof out->village);
		memcpy(out->secret_hash, sqlite3_column_blob(st, 2), SRVSTORE_HASH_LEN);
		out->expires_ms = sqlite3_column_int64(st, 3);
		out->used_ms = sqlite3_column_int64(st, 4);
	} else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		err = TLY_E_NOT_FOUND;
	} else {
		err = db_err(db, rc);
	}
	sqlite3_reset(st);
	return err;
}

int srvstore_join_use(struct db *db, const char *id, const char *device_id, int64_t now_ms)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "UPDATE srv_join SET used_ms = ?, device_id = ? "
			  "WHERE id = ? AND used_ms IS NULL",
			  &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_text(st, 2, device_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, id, -1, SQLITE_TRANSIENT);
	err = db_step_done(db, st);
	if (!err && sqlite3_changes(db_handle(db)) != 1)
		err = TLY_E_JOIN_USED;
	return err;
}

/* ---- audit ---- */

int srvstore_audit(struct db *db, int64_t now_ms, const char *device_id, const char *site,
		   const char *event, const char *code, const char *detail)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "INSERT INTO srv_audit (at_ms, device_id, site, event, code, detail) "
			  "VALUES (?, ?, ?, ?, ?, ?)",
			  &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, now_ms);
	bind_opt_text(st, 2, device_id);
	bind_opt_text(st, 3, site);
	sqlite3_bind_text(st, 4, event, -1, SQLITE_TRANSIENT);
	bind_opt_text(st, 5, code);
	bind_opt_text(st, 6, detail);
	return db_step_done(db, st);
}

int srvstore_audit_count(struct db *db, const char *event, int64_t *n)
{
	return one_int(db, "SELECT count(*) FROM srv_audit WHERE event = ?", event, n);
}

/* ---- feed ---- */

static int feed_add(struct db *db, const char *village, int64_t pos)
{
	sqlite3_stmt *st;
	int err = db_stmt(db, "INSERT OR IGNORE INTO srv_feed (village, pos) VALUES (?, ?)", &st);
	if (err)
		return err;
	/* Static bindings in the feed's statements: a TRANSIENT bind copies,
	 * and a copy that fails for memory leaves NULL bound, which OR IGNORE
	 * (or a WHERE) would swallow as "nothing to add" — a change silently
	 * missing from a village's feed (found by tests/faults/alloc_torture).
	 * The caller's strings outlive each step. */
	sqlite3_bind_text(st, 1, village, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, pos);
	return db_step_done(db, st);
}

/* Makes problem visible to village from now on; the first time, also
 * appends the problem's changes logged before `pos` to the village's feed,
 * so the village gets the problem before the task that needs it. */
static int feed_problem_open(struct db *db, const char *village, const char *problem,
			     int64_t pos)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "INSERT OR IGNORE INTO srv_feed_problem (village, problem) VALUES (?, ?)",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, village, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, problem, -1, SQLITE_STATIC);
	err = db_step_done(db, st);
	if (err || sqlite3_changes(db_handle(db)) == 0)
		return err;
	err = db_stmt(db,
		      "INSERT OR IGNORE INTO srv_feed (village, pos) SELECT ?, pos FROM change_log "
		      "WHERE kind = 'problem' AND record_id = ? AND state = 'applied' AND pos < ? "
		      "ORDER BY pos",
		      &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, village, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, problem, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, pos);
	return db_step_done(db, st);
}

/* One text column of one row of a query with one text parameter; "" if none. */
static int lookup(struct db *db, const char *sql, const char *arg, char *out, size_t n,
		  int *null_out)
{
	sqlite3_stmt *st;
	int err = db_stmt(db, sql, &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	out[0] = '\0';
	if (null_out)
		*null_out = 1;
	if (rc == SQLITE_ROW) {
		if (null_out)
			*null_out = sqlite3_column_type(st, 0) == SQLITE_NULL;
		copy_col(st, 0, out, n);
	} else if (rc != SQLITE_DONE) {
		err = db_err(db, rc);
	}
	sqlite3_reset(st);
	return err;
}

struct feed_row {
	int64_t pos;
	char kind[CHANGE_KIND_MAX + 1];
	char id[CHANGE_ID_MAX + 1];
};

/* The (village, problem) pair opened last in this indexing run: a push of
 * many tasks under one problem opens it once, not once per task (opening an
 * open pair changes nothing). */
struct feed_open {
	char village[CHANGE_ID_MAX + 1];
	char problem[CHANGE_ID_MAX + 1];
};

static int task_village_problem(struct db *db, const char *id, char *v, char *p, size_t n)
{
	sqlite3_stmt *st;
	int err = db_stmt(db, "SELECT village, problem FROM task WHERE id = ?", &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	v[0] = p[0] = '\0';
	if (rc == SQLITE_ROW) {
		copy_col(st, 0, v, n);
		copy_col(st, 1, p, n);
	} else if (rc != SQLITE_DONE) {
		err = db_err(db, rc);
	}
	sqlite3_reset(st);
	return err;
}

static int feed_index_one(struct db *db, const struct feed_row *r, struct feed_open *last)
{
	char v[CHANGE_ID_MAX + 1], p[CHANGE_ID_MAX + 1];
	int is_null, err;

	if (strcmp(r->kind, "village") == 0)
		return feed_add(db, r->id, r->pos);
	if (strcmp(r->kind, "task") == 0) {
		err = task_village_problem(db, r->id, v, p, sizeof v);
		if (err || !v[0])
			return err;
		if (p[0] && (strcmp(last->village, v) != 0 || strcmp(last->problem, p) != 0)) {
			err = feed_problem_open(db, v, p, r->pos);
			if (!err) {
				memcpy(last->village, v, sizeof v);
				memcpy(last->problem, p, sizeof p);
			}
		}
		return err ? err : feed_add(db, v, r->pos);
	}
	if (strcmp(r->kind, "progress") == 0 || strcmp(r->kind, "evidence") == 0 ||
	    strcmp(r->kind, "review") == 0) {
		/* The kind is one of three fixed names, never peer text. */
		char sql[128];
		snprintf(sql, sizeof sql,
			 "SELECT t.village FROM %s r JOIN task t ON t.id = r.task WHERE r.id = ?",
			 r->kind);
		err = lookup(db, sql, r->id, v, sizeof v, NULL);
		return err || !v[0] ? err : feed_add(db, v, r->pos);
	}
	if (strcmp(r->kind, "problem") == 0) {
		sqlite3_stmt *st;
		err = lookup(db, "SELECT village FROM problem WHERE id = ?", r->id, v, sizeof v,
			     NULL);
		if (!err && v[0])
			err = feed_problem_open(db, v, r->id, r->pos);
		if (err)
			return err;
		err = db_stmt(db,
			      "INSERT OR IGNORE INTO srv_feed (village, pos) "
			      "SELECT village, ? FROM srv_feed_problem WHERE problem = ?",
			      &st);
		if (err)
			return err;
		sqlite3_bind_int64(st, 1, r->pos);
		sqlite3_bind_text(st, 2, r->id, -1, SQLITE_STATIC);
		return db_step_done(db, st);
	}
	if (strcmp(r->kind, "notice") == 0) {
		err = lookup(db, "SELECT village FROM notice WHERE id = ?", r->id, v, sizeof v,
			     &is_null);
		if (err)
			return err;
		return feed_add(db, is_null ? "" : v, r->pos);
	}
	return TLY_OK; /* kinds no village sees (none today): township users only */
}

int srvstore_feed_index(struct db *db)
{
	struct feed_row *rows = NULL;
	struct feed_open last = {"", ""};
	int64_t done, high;
	int err = one_int(db, "SELECT feed_pos FROM srv_state WHERE one = 1", NULL, &done);
	if (!err)
		err = srvstore_log_high(db, &high);
	if (err || done >= high)
		return err;
	rows = malloc(FEED_SLICE * sizeof *rows);
	if (!rows)
		return TLY_E_NOMEM;
	while (done < high) {
		sqlite3_stmt *st;
		size_t n = 0;
		int rc;
		err = db_stmt(db,
			      "SELECT pos, kind, record_id FROM change_log WHERE pos > ? "
			      "AND state = 'applied' ORDER BY pos LIMIT ?",
			      &st);
		if (err)
			goto out;
		sqlite3_bind_int64(st, 1, done);
		sqlite3_bind_int(st, 2, FEED_SLICE);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			rows[n].pos = sqlite3_column_int64(st, 0);
			copy_col(st, 1, rows[n].kind, sizeof rows[n].kind);
			copy_col(st, 2, rows[n].id, sizeof rows[n].id);
			n++;
		}
		sqlite3_reset(st);
		if (rc != SQLITE_DONE) {
			err = db_err(db, rc);
			goto out;
		}
		for (size_t i = 0; i < n && !err; i++)
			err = feed_index_one(db, &rows[i], &last);
		if (err)
			goto out;
		done = n < FEED_SLICE ? high : rows[n - 1].pos;
	}
	{
		sqlite3_stmt *st;
		err = db_stmt(db, "UPDATE srv_state SET feed_pos = ? WHERE one = 1", &st);
		if (err)
			goto out;
		sqlite3_bind_int64(st, 1, high);
		err = db_step_done(db, st);
	}
out:
	free(rows);
	return err;
}

int srvstore_feed_read(struct db *db, const char *village, const char *exclude_site,
		       int64_t after, size_t max_count, size_t max_bytes, struct change ***out,
		       size_t *n, int64_t *next, int *more)
{
	static const char sql[] =
		"SELECT c.body, c.eff, c.prev, c.hash, f.id FROM srv_feed f "
		"JOIN change_log c ON c.pos = f.pos "
		"WHERE f.village IN (?1, '') AND f.id > ?2 AND c.site <> ?3 "
		"AND c.state = 'applied' ORDER BY f.id LIMIT ?4";
	struct change **cs = NULL;
	size_t count = 0, bytes = 0;
	sqlite3_stmt *st;
	int err, rc;

	*out = NULL;
	*n = 0;
	*next = after;
	*more = 0;
	if (max_count == 0)
		return TLY_OK;
	cs = calloc(max_count, sizeof *cs);
	if (!cs)
		return TLY_E_NOMEM;
	err = db_stmt(db, sql, &st);
	if (err)
		goto out;
	sqlite3_bind_text(st, 1, village, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, after);
	sqlite3_bind_text(st, 3, exclude_site, -1, SQLITE_TRANSIENT);
	/* One row more than the page tells whether more remain. */
	sqlite3_bind_int64(st, 4, (int64_t)max_count + 1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		size_t blen = (size_t)sqlite3_column_bytes(st, 0);
		if (count == max_count || (count > 0 && bytes + blen > max_bytes)) {
			*more = 1;
			break;
		}
		if (sqlite3_column_bytes(st, 2) != CHANGE_HASH_LEN ||
		    sqlite3_column_bytes(st, 3) != CHANGE_HASH_LEN) {
			err = TLY_E_CHAIN;
			break;
		}
		err = store_change_from_row(sqlite3_column_blob(st, 0), blen,
					    sqlite3_column_int64(st, 1), sqlite3_column_blob(st, 2),
					    sqlite3_column_blob(st, 3), &cs[count]);
		if (err)
			break;
		count++;
		bytes += blen;
		*next = sqlite3_column_int64(st, 4);
	}
	if (!err && rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = db_err(db, rc);
	sqlite3_reset(st);
out:
	if (err) {
		store_changes_free(cs, count);
		*next = after;
		*more = 0;
		return err;
	}
	*out = cs;
	*n = count;
	return TLY_OK;
}

int srvstore_log_more(struct db *db, int64_t pos, int *more)
{
	int64_t v;
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "SELECT count(*) FROM (SELECT 1 FROM change_log WHERE pos > ? "
			  "AND state = 'applied' LIMIT 1)",
			  &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, pos);
	int rc = sqlite3_step(st);
	v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	if (rc != SQLITE_ROW)
		err = db_err(db, rc);
	sqlite3_reset(st);
	*more = v > 0;
	return err;
}

int srvstore_village_name(struct db *db, const char *id, char *out, size_t n)
{
	int err = lookup(db, "SELECT name FROM village WHERE id = ?", id, out, n, NULL);
	if (!err && !out[0])
		err = TLY_E_NOT_FOUND;
	return err;
}

int srvstore_enrolled_save(struct db *db, const char *const *urls, size_t nurls, const char *pin,
			   const char *device_id, const char *token, const char *server_site,
			   const char *epoch, int64_t offset_ms)
{
	struct buf all;
	sqlite3_stmt *st;
	int err = TLY_OK;

	if (nurls == 0)
		return TLY_E_USAGE;
	buf_init(&all, 8192);
	for (size_t i = 0; i < nurls && !err; i++)
		err = buf_addf(&all, "%s%s", i ? "\n" : "", urls[i]);
	if (!err)
		err = db_setting_set(db, "sync_urls", all.data);
	if (!err)
		err = db_setting_set(db, "sync_pin", pin);
	if (!err)
		err = db_setting_set(db, "sync_device_id", device_id);
	if (!err)
		err = db_setting_set(db, "sync_token", token);
	if (!err)
		err = db_setting_set(db, "sync_server_site", server_site);
	if (!err)
		err = db_stmt(db,
			      "UPDATE sync_state SET upstream_url = ?, epoch = ?, acked_seq = 0, "
			      "pull_cursor = 0, server_offset_ms = ? WHERE one = 1",
			      &st);
	if (!err) {
		sqlite3_bind_text(st, 1, urls[0], -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, epoch, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 3, offset_ms);
		err = db_step_done(db, st);
	}
	buf_free(&all);
	return err;
}
