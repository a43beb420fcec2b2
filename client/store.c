/*
 * store — write path, apply path, outbox (see store.h and docs/client.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/chain.h"
#include "clock.h"
#include "protocol/error.h"
#include "protocol/hlc.h"
#include "protocol/merge.h"
#include "schema.h"
#include "store.h"
#include "why.h"

/* Canonical bodies are bounded by the field limits; this cap is only a
 * backstop against a corrupted database row. */
#define STORE_BODY_MAX (64u << 20)

/* Placeholders of a draft (store_write replaces them). */
#define DRAFT_SEQ 1
#define DRAFT_HLC 1

void store_changes_free(struct change **cs, size_t n)
{
	if (!cs)
		return;
	for (size_t i = 0; i < n; i++)
		change_free(cs[i]);
	free(cs);
}

int store_draft_new(struct db *db, const char *kind, const char *id, struct change **out)
{
	const struct db_site *s = db_site(db);
	if (!s)
		return TLY_E_NOT_INITIALISED;
	return change_new(out, CHANGE_SCHEMA_VERSION, s->site_id, DRAFT_SEQ, DRAFT_HLC, kind, id);
}

/* ---- small SQL helpers ---------------------------------------------------- */

/* Copies a text column into a fixed buffer; "" when NULL, truncated safely
 * (ids and codes are far shorter than the buffers). */
static const char *col_copy(sqlite3_stmt *st, int i, char *out, size_t n)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	if (!t || sqlite3_column_type(st, i) != SQLITE_TEXT)
		return NULL;
	snprintf(out, n, "%s", (const char *)t);
	return out;
}

static void bind_field(sqlite3_stmt *st, int i, const struct merge_write *w)
{
	switch (w->type) {
	case FIELD_INT:
		sqlite3_bind_int64(st, i, w->i);
		break;
	case FIELD_TEXT:
		sqlite3_bind_text(st, i, w->text, (int)w->len, SQLITE_TRANSIENT);
		break;
	default:
		sqlite3_bind_null(st, i);
	}
}

/* ---- hlc persistence ------------------------------------------------------ */

static int hlc_load(struct db *db, struct hlc *clock)
{
	sqlite3_stmt *st;
	int err = db_stmt(db, "SELECT hlc_last FROM site WHERE one = 1", &st);
	if (err)
		return err;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return rc == SQLITE_DONE ? TLY_E_NOT_INITIALISED : db_err(db, rc);
	}
	hlc_init(clock, (uint64_t)sqlite3_column_int64(st, 0));
	sqlite3_reset(st);
	return TLY_OK;
}

static int hlc_save(struct db *db, const struct hlc *clock)
{
	sqlite3_stmt *st;
	int err = db_stmt(db, "UPDATE site SET hlc_last = ? WHERE one = 1", &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, (int64_t)clock->last);
	return db_step_done(db, st);
}

int store_clock_load(struct db *db, struct hlc *clock)
{
	return hlc_load(db, clock);
}

int store_clock_save(struct db *db, const struct hlc *clock)
{
	return hlc_save(db, clock);
}

/* ---- gathering facts for the rules ------------------------------------------ */

struct facts {
	struct rules_state s;
	char task_village[CHANGE_ID_MAX + 1], task_problem[CHANGE_ID_MAX + 1], task_status[32];
	char problem_source[32], problem_village[CHANGE_ID_MAX + 1];
	char request_type[32], request_task[CHANGE_ID_MAX + 1];
	char progress_task[CHANGE_ID_MAX + 1];
};

static const char *text_field(const struct change *c, const char *name)
{
	struct field_view v;
	if (change_field_get(c, name, &v) && v.type == FIELD_TEXT)
		return v.text;
	return NULL;
}

static int record_exists(struct db *db, const char *kind, const char *id, int *out)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "SELECT 1 FROM record_base WHERE kind = ? AND record_id = ?", &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_err(db, rc);
	*out = rc == SQLITE_ROW;
	return TLY_OK;
}

static int gather_task(struct db *db, const char *id, struct facts *f)
{
	sqlite3_stmt *st;
	int err = db_stmt(db, "SELECT village, problem, status FROM task WHERE id = ?", &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		f->s.task_found = 1;
		f->s.task_village = col_copy(st, 0, f->task_village, sizeof f->task_village);
		f->s.task_problem = col_copy(st, 1, f->task_problem, sizeof f->task_problem);
		f->s.task_status = col_copy(st, 2, f->task_status, sizeof f->task_status);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_err(db, rc);
	if (!f->s.task_found)
		return TLY_OK;
	/* The latest entry by the merge order of entries (their first write,
	 * record_base), so every replica agrees. */
	err = db_stmt(db,
		      "SELECT p.percent FROM progress p JOIN record_base f ON f.kind = 'progress' "
		      "AND f.record_id = p.id WHERE p.task = ? "
		      "ORDER BY f.stamp DESC, f.site DESC LIMIT 1",
		      &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER) {
		f->s.task_has_progress = 1;
		f->s.task_progress = sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? TLY_OK : db_err(db, rc);
}

static int gather_problem(struct db *db, const char *id, struct facts *f)
{
	sqlite3_stmt *st;
	int err = db_stmt(db, "SELECT source, village FROM problem WHERE id = ?", &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		f->s.problem_found = 1;
		f->s.problem_source = col_copy(st, 0, f->problem_source, sizeof f->problem_source);
		f->s.problem_village =
			col_copy(st, 1, f->problem_village, sizeof f->problem_village);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? TLY_OK : db_err(db, rc);
}

static int gather_simple(struct db *db, const char *sql, const char *id, int *found, char *a,
			 size_t an, const char **pa, char *b, size_t bn, const char **pb)
{
	sqlite3_stmt *st;
	int err = db_stmt(db, sql, &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*found = 1;
		if (a)
			*pa = col_copy(st, 0, a, an);
		if (b)
			*pb = col_copy(st, 1, b, bn);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? TLY_OK : db_err(db, rc);
}

static int gather(struct db *db, const struct change *c, struct facts *f)
{
	const char *kind = change_kind(c);
	const char *ref;
	int err;

	memset(f, 0, sizeof *f);
	err = record_exists(db, kind, change_id(c), &f->s.record_exists);
	if (err)
		return err;
	if (strcmp(kind, "task") == 0) {
		err = gather_task(db, change_id(c), f);
		if (!err) {
			ref = f->s.task_found ? f->s.task_problem : text_field(c, "problem");
			if (ref && *ref)
				err = gather_problem(db, ref, f);
		}
	} else if (strcmp(kind, "problem") == 0) {
		err = gather_problem(db, change_id(c), f);
	} else if ((ref = text_field(c, "task")) && *ref) {
		err = gather_task(db, ref, f);
	}
	if (!err && (ref = text_field(c, "village")) && *ref)
		err = gather_simple(db, "SELECT 1 FROM village WHERE id = ?", ref,
				    &f->s.village_found, NULL, 0, NULL, NULL, 0, NULL);
	if (!err && strcmp(kind, "review") == 0 && (ref = text_field(c, "request")) && *ref)
		err = gather_simple(db, "SELECT type, task FROM review WHERE id = ?", ref,
				    &f->s.request_found, f->request_type, sizeof f->request_type,
				    &f->s.request_type, f->request_task, sizeof f->request_task,
				    &f->s.request_task);
	if (!err && strcmp(kind, "evidence") == 0 && (ref = text_field(c, "progress")) && *ref)
		err = gather_simple(db, "SELECT task FROM progress WHERE id = ?", ref,
				    &f->s.progress_found, f->progress_task, sizeof f->progress_task,
				    &f->s.progress_task, NULL, 0, NULL);
	return err;
}

int store_check(struct db *db, const struct rules_actor *actor, const struct change *c,
		struct buf *why)
{
	struct facts f;
	int err = gather(db, c, &f);
	if (err)
		return err;
	return rules_check(actor, &f.s, c, why);
}

/* ---- merging ----------------------------------------------------------------- */

/* Bytes of SQL text the domain upsert may take: every schema column named
 * twice plus quoting; the schema's widest kind needs well under half. */
#define DOMAIN_SQL_MAX 4096

static void bind_field_static(sqlite3_stmt *st, int i, const struct merge_write *w)
{
	/* The caller keeps w's text alive until the statement is reset. */
	switch (w->type) {
	case FIELD_INT:
		sqlite3_bind_int64(st, i, w->i);
		break;
	case FIELD_TEXT:
		sqlite3_bind_text(st, i, w->text, (int)w->len, SQLITE_STATIC);
		break;
	default:
		sqlite3_bind_null(st, i);
	}
}

/* Appends s to the SQL text in sql[0..*len); 0 when it no longer fits. */
static int sql_add(char *sql, size_t *len, size_t cap, const char *s)
{
	size_t n = strlen(s);
	if (*len + n >= cap)
		return 0;
	memcpy(sql + *len, s, n + 1);
	*len += n;
	return 1;
}

/*
 * Creates the domain row if needed and writes every winning value of a
 * change into it in one statement. Column names come from the schema's list,
 * never from the change, so the SQL text is trusted; a field from a newer
 * schema is kept in field_write only. wins[i] marks field i of c as won.
 */
static int domain_put(struct db *db, const struct schema_kind *k, const struct change *c,
		      const struct merge_write *in, const unsigned char *wins)
{
	char sql[DOMAIN_SQL_MAX];
	sqlite3_stmt *st;
	size_t nf = change_field_count(c), ncol = 0, len = 0;
	const char *col[64];
	size_t colf[64];
	int ok;

	if (!k)
		return TLY_OK;
	for (size_t i = 0; i < nf; i++) {
		const struct schema_field *sf;
		struct field_view fv;
		if (!wins[i])
			continue;
		change_field_at(c, i, &fv);
		if (!(sf = schema_field_find(k, fv.name)))
			continue;
		/* Fields are unique within a change, so at most every column once. */
		if (ncol == sizeof col / sizeof col[0])
			return TLY_E_INTERNAL;
		col[ncol] = fv.name;
		colf[ncol++] = i;
	}
	ok = sql_add(sql, &len, sizeof sql, "INSERT INTO \"") &&
	     sql_add(sql, &len, sizeof sql, k->kind) && sql_add(sql, &len, sizeof sql, "\" (id");
	for (size_t j = 0; ok && j < ncol; j++)
		ok = sql_add(sql, &len, sizeof sql, ", \"") &&
		     sql_add(sql, &len, sizeof sql, col[j]) && sql_add(sql, &len, sizeof sql, "\"");
	ok = ok && sql_add(sql, &len, sizeof sql, ") VALUES (?");
	for (size_t j = 0; ok && j < ncol; j++)
		ok = sql_add(sql, &len, sizeof sql, ", ?");
	ok = ok && sql_add(sql, &len, sizeof sql,
			   ncol ? ") ON CONFLICT (id) DO UPDATE SET "
				: ") ON CONFLICT (id) DO NOTHING");
	for (size_t j = 0; ok && j < ncol; j++)
		ok = sql_add(sql, &len, sizeof sql, j ? ", \"" : "\"") &&
		     sql_add(sql, &len, sizeof sql, col[j]) &&
		     sql_add(sql, &len, sizeof sql, "\" = excluded.\"") &&
		     sql_add(sql, &len, sizeof sql, col[j]) && sql_add(sql, &len, sizeof sql, "\"");
	if (!ok)
		return TLY_E_INTERNAL;
	int err = db_stmt(db, sql, &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, change_id(c), -1, SQLITE_STATIC);
	for (size_t j = 0; j < ncol; j++)
		bind_field_static(st, (int)(2 + j), &in[colf[j]]);
	return db_step_done(db, st);
}

/* Rows per field_write upsert: bounds the SQL text and the number of
 * distinct cached statements (one per row count). */
#define STATE_ROWS_MAX 16
_Static_assert(6 + 2 * STATE_ROWS_MAX < 100, "two-digit parameter numbers");

/*
 * Stores the incoming write of each field in idx[0..n) as the field's
 * current write in field_write, STATE_ROWS_MAX rows per statement: per-statement overhead,
 * not the B-tree work, dominated applying a change one field at a time.
 * kind, record, seq, stamp and site are the change's, bound once.
 */
static int state_put(struct db *db, const struct change *c, const size_t *idx, size_t n,
		     const struct merge_write *in)
{
	static const char head[] =
		"INSERT INTO field_write (kind, record_id, field, value, stamp, site, seq) VALUES ";
	static const char tail[] = " ON CONFLICT (kind, record_id, field) DO UPDATE "
				   "SET value = excluded.value, stamp = excluded.stamp, "
				   "site = excluded.site, seq = excluded.seq";
	char sql[sizeof head + sizeof tail + STATE_ROWS_MAX * 48];

	for (size_t done = 0; done < n;) {
		size_t rows = n - done < STATE_ROWS_MAX ? n - done : STATE_ROWS_MAX, len;
		sqlite3_stmt *st;
		memcpy(sql, head, sizeof head - 1);
		len = sizeof head - 1;
		for (size_t r = 0; r < rows; r++) {
			/* "(?1, ?2, ?F, ?V, ?4, ?5, ?3)": F = 6 + 2r, V = F + 1, at most
			 * two digits each (STATE_ROWS_MAX 16), no snprintf per row. */
			size_t f = 6 + 2 * r;
			char *o = sql + len;
			if (r) {
				*o++ = ',';
				*o++ = ' ';
			}
			memcpy(o, "(?1, ?2, ?", 10);
			o += 10;
			if (f >= 10)
				*o++ = (char)('0' + f / 10);
			*o++ = (char)('0' + f % 10);
			memcpy(o, ", ?", 3);
			o += 3;
			if (f + 1 >= 10)
				*o++ = (char)('0' + (f + 1) / 10);
			*o++ = (char)('0' + (f + 1) % 10);
			memcpy(o, ", ?4, ?5, ?3)", 13);
			o += 13;
			len = (size_t)(o - sql);
		}
		memcpy(sql + len, tail, sizeof tail);
		int err = db_stmt(db, sql, &st);
		if (err)
			return err;
		sqlite3_bind_text(st, 1, change_kind(c), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, change_id(c), -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (int64_t)change_seq(c));
		sqlite3_bind_int64(st, 4, (int64_t)change_stamp(c));
		sqlite3_bind_text(st, 5, change_site(c), -1, SQLITE_STATIC);
		for (size_t r = 0; r < rows; r++) {
			struct field_view fv;
			change_field_at(c, idx[done + r], &fv);
			sqlite3_bind_text(st, (int)(6 + 2 * r), fv.name, -1, SQLITE_STATIC);
			bind_field_static(st, (int)(7 + 2 * r), &in[idx[done + r]]);
		}
		err = db_step_done(db, st);
		if (err)
			return err;
		done += rows;
	}
	return TLY_OK;
}

static int conflict_put(struct db *db, const struct change *c, const char *field,
			const struct merge_write *win, uint64_t win_seq,
			const struct merge_write *lose, uint64_t lose_seq)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "INSERT INTO conflict (kind, record_id, field, winner_value, winner_stamp, "
			  "winner_site, winner_seq, loser_value, loser_stamp, loser_site, loser_seq, "
			  "at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, change_kind(c), -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, change_id(c), -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, field, -1, SQLITE_TRANSIENT);
	bind_field(st, 4, win);
	sqlite3_bind_int64(st, 5, (int64_t)win->stamp);
	sqlite3_bind_text(st, 6, win->site, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 7, (int64_t)win_seq);
	bind_field(st, 8, lose);
	sqlite3_bind_int64(st, 9, (int64_t)lose->stamp);
	sqlite3_bind_text(st, 10, lose->site, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 11, (int64_t)lose_seq);
	sqlite3_bind_int64(st, 12, clock_device_ms());
	return db_step_done(db, st);
}

/* The current write of one field, copied out of field_write or, for a
 * field of the record's first change, record_base and the domain row. */
struct cur_write {
	int have;
	struct merge_write w;
	uint64_t seq;
	char *text; /* owned copy of w.text */
	char site[CHANGE_SITE_MAX + 1];
};

/* The record's first write (record_base), if the record is held at all. */
struct base_write {
	int have;
	uint64_t stamp, seq;
	uint64_t mask;
	char site[CHANGE_SITE_MAX + 1];
};

/* Fields a change usually carries fit here; more take the heap. */
#define MERGE_STACK_FIELDS 16

/* Copies column col of st into w as the field's value (owned copy). */
static int cur_value_copy(sqlite3_stmt *st, int col, struct cur_write *w)
{
	switch (sqlite3_column_type(st, col)) {
	case SQLITE_INTEGER:
		w->w.type = FIELD_INT;
		w->w.i = sqlite3_column_int64(st, col);
		return TLY_OK;
	case SQLITE_NULL:
		w->w.type = FIELD_NULL;
		return TLY_OK;
	default: {
		const void *t = sqlite3_column_text(st, col);
		size_t len = (size_t)sqlite3_column_bytes(st, col);
		if (!t && len == 0 && sqlite3_errcode(sqlite3_db_handle(st)) == SQLITE_NOMEM)
			return TLY_E_NOMEM;
		w->w.type = FIELD_TEXT;
		w->text = malloc(len + 1);
		if (!w->text)
			return TLY_E_NOMEM;
		if (len)
			memcpy(w->text, t, len);
		w->text[len] = '\0';
		w->w.text = w->text;
		w->w.len = len;
		return TLY_OK;
	}
	}
}

/*
 * Reads the field_write rows of the change's fields in one query.
 * field_write's primary key orders a record's rows by field bytewise, as a
 * change orders its fields, so the two lists are walked side by side; only
 * rows matching one of the change's fields are copied (bounded by the
 * change, not by the table). Copied so the statement can be reset before
 * the writes touch the same rows. *any is set when the record has any
 * field_write row at all, carried or not.
 */
static int state_load(struct db *db, const struct change *c, struct cur_write *cur, int *any)
{
	sqlite3_stmt *st;
	size_t nf = change_field_count(c), i = 0;
	int err = db_stmt(db,
			  "SELECT field, value, stamp, site, seq FROM field_write "
			  "WHERE kind = ? AND record_id = ? ORDER BY field",
			  &st);
	if (err)
		return err;
	*any = 0;
	sqlite3_bind_text(st, 1, change_kind(c), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, change_id(c), -1, SQLITE_STATIC);
	int rc = SQLITE_DONE;
	while (i < nf && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		struct field_view fv;
		int cmp = 1;
		*any = 1;
		if (!name)
			continue;
		while (i < nf) {
			change_field_at(c, i, &fv);
			cmp = strcmp(fv.name, name);
			if (cmp >= 0)
				break;
			i++;
		}
		if (i == nf)
			break;
		if (cmp > 0)
			continue; /* a field of the record this change does not carry */
		struct cur_write *w = &cur[i++];
		w->have = 1;
		err = cur_value_copy(st, 1, w);
		if (err)
			goto out;
		w->w.stamp = (uint64_t)sqlite3_column_int64(st, 2);
		const unsigned char *s = sqlite3_column_text(st, 3);
		if (!s) {
			err = TLY_E_NOMEM;
			goto out;
		}
		snprintf(w->site, sizeof w->site, "%s", (const char *)s);
		w->w.site = w->site;
		w->seq = (uint64_t)sqlite3_column_int64(st, 4);
	}
	if (i < nf && rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = db_err(db, rc);
out:
	sqlite3_reset(st);
	return err;
}

static int base_load(struct db *db, const struct change *c, struct base_write *b)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "SELECT stamp, site, seq, mask FROM record_base "
			  "WHERE kind = ? AND record_id = ?",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, change_kind(c), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, change_id(c), -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	b->have = rc == SQLITE_ROW;
	if (b->have) {
		b->stamp = (uint64_t)sqlite3_column_int64(st, 0);
		if (!col_copy(st, 1, b->site, sizeof b->site))
			err = TLY_E_DB;
		b->seq = (uint64_t)sqlite3_column_int64(st, 2);
		b->mask = (uint64_t)sqlite3_column_int64(st, 3);
	} else if (rc != SQLITE_DONE) {
		err = db_err(db, rc);
	}
	sqlite3_reset(st);
	return err;
}

static int base_put(struct db *db, const struct change *c, uint64_t mask)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "INSERT INTO record_base (kind, record_id, stamp, site, seq, mask) "
			  "VALUES (?, ?, ?, ?, ?, ?)",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, change_kind(c), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, change_id(c), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)change_stamp(c));
	sqlite3_bind_text(st, 4, change_site(c), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (int64_t)change_seq(c));
	sqlite3_bind_int64(st, 6, (int64_t)mask);
	return db_step_done(db, st);
}

/* The bit of field name in record_base.mask; -1 for a field outside the
 * kind's list (kept in field_write only). */
static int field_bit(const struct schema_kind *k, const char *name)
{
	const struct schema_field *sf = k ? schema_field_find(k, name) : NULL;
	return sf ? (int)(sf - k->fields) : -1;
}

/*
 * Fills the fields of c that have no field_write row but are carried by
 * the record's first change (base) with that write: stamp, site and seq
 * from record_base, the value from the domain row, read once.
 */
static int base_fill(struct db *db, const struct schema_kind *k, const struct change *c,
		     const struct base_write *b, struct cur_write *cur)
{
	char sql[96];
	sqlite3_stmt *st = NULL;
	size_t nf = change_field_count(c);
	int err = TLY_OK, rc;

	for (size_t i = 0; i < nf; i++) {
		struct field_view fv;
		int bit;
		if (cur[i].have)
			continue;
		change_field_at(c, i, &fv);
		bit = field_bit(k, fv.name);
		if (bit < 0 || !(b->mask >> bit & 1))
			continue;
		if (!st) {
			/* Column i + 1 is field i: the domain table is id plus the
			 * kind's fields in list order (schema.c). */
			snprintf(sql, sizeof sql, "SELECT * FROM \"%s\" WHERE id = ?", k->kind);
			err = db_stmt(db, sql, &st);
			if (err)
				return err;
			sqlite3_bind_text(st, 1, change_id(c), -1, SQLITE_STATIC);
			rc = sqlite3_step(st);
			if (rc != SQLITE_ROW) {
				/* record_base without its domain row: a damaged file. */
				err = rc == SQLITE_DONE ? TLY_E_DB : db_err(db, rc);
				goto out;
			}
		}
		struct cur_write *w = &cur[i];
		w->have = 1;
		err = cur_value_copy(st, bit + 1, w);
		if (err)
			goto out;
		w->w.stamp = b->stamp;
		snprintf(w->site, sizeof w->site, "%s", b->site);
		w->w.site = w->site;
		w->seq = b->seq;
	}
out:
	if (st)
		sqlite3_reset(st);
	return err;
}

/*
 * Merges every field of c against its current write.
 *
 * A record's first change (no record_base row, no field_write row) wins
 * every field by definition: it becomes the record's base (one row), its
 * values the domain row, and only fields outside the kind's list go to
 * field_write. Any later change reads the record's field_write rows and
 * base once, merges field by field, and stores each field it wins in
 * field_write and the domain row.
 *
 * Which losers are logged: a write replaced by a later write of the SAME
 * site is an ordinary edit (a site sees its own writes), so it is not a
 * conflict. A write that loses to another site's write is logged: the
 * protocol carries no causal base, so this log may also show cross-site
 * edits made in sequence; it never misses a concurrent one.
 */
static int merge_fields(struct db *db, const struct change *c, int log_conflicts)
{
	const struct schema_kind *k = schema_kind_find(change_kind(c));
	size_t nf = change_field_count(c);
	struct cur_write cur_stack[MERGE_STACK_FIELDS], *cur = cur_stack;
	struct merge_write in_stack[MERGE_STACK_FIELDS], *in = in_stack;
	unsigned char wins_stack[MERGE_STACK_FIELDS], *wins = wins_stack;
	size_t won_stack[MERGE_STACK_FIELDS], *won = won_stack, nwon = 0;
	struct base_write base;
	int err = TLY_OK, any_write = 0;

	if (nf > MERGE_STACK_FIELDS) {
		cur = malloc(nf * sizeof *cur);
		in = malloc(nf * sizeof *in);
		wins = malloc(nf);
		won = malloc(nf * sizeof *won);
		if (!cur || !in || !wins || !won) {
			free(cur);
			free(in);
			free(wins);
			free(won);
			return TLY_E_NOMEM;
		}
	}
	memset(cur, 0, (nf ? nf : 1) * sizeof *cur);
	err = base_load(db, c, &base);
	if (!err)
		err = state_load(db, c, cur, &any_write);
	if (err)
		goto out;

	if (!base.have && !any_write) {
		uint64_t mask = 0;
		for (size_t i = 0; i < nf; i++) {
			struct field_view fv;
			int bit;
			change_field_at(c, i, &fv);
			merge_write_from_change(c, i, &in[i]);
			wins[i] = 1;
			bit = field_bit(k, fv.name);
			if (bit >= 0)
				mask |= (uint64_t)1 << bit;
			else
				won[nwon++] = i;
		}
		err = base_put(db, c, mask);
		if (!err)
			err = state_put(db, c, won, nwon, in);
		if (!err)
			err = domain_put(db, k, c, in, wins);
		goto out;
	}
	if (base.have)
		err = base_fill(db, k, c, &base, cur);
	if (err)
		goto out;

	for (size_t i = 0; i < nf; i++) {
		struct field_view fv;
		const struct merge_write *loser = NULL;
		struct cur_write *cw = &cur[i];

		change_field_at(c, i, &fv);
		merge_write_from_change(c, i, &in[i]);
		enum merge_outcome o = merge_field(cw->have ? &cw->w : NULL, &in[i], &loser);
		wins[i] = o == MERGE_TAKE_INCOMING;
		if (o == MERGE_TAKE_INCOMING) {
			won[nwon++] = i;
			if (log_conflicts && cw->have && strcmp(cw->w.site, in[i].site) != 0)
				err = conflict_put(db, c, fv.name, &in[i], change_seq(c), &cw->w,
						   cw->seq);
		} else if (o == MERGE_KEEP_CURRENT) {
			if (log_conflicts && strcmp(cw->w.site, in[i].site) != 0)
				err = conflict_put(db, c, fv.name, &cw->w, cw->seq, &in[i],
						   change_seq(c));
		}
		if (err)
			goto out;
	}
	err = state_put(db, c, won, nwon, in);
	if (!err)
		err = domain_put(db, k, c, in, wins);
out:
	for (size_t i = 0; i < nf; i++)
		free(cur[i].text);
	if (cur != cur_stack) {
		free(cur);
		free(in);
		free(wins);
		free(won);
	}
	return err;
}

int store_merge_change(struct db *db, const struct change *c)
{
	return merge_fields(db, c, 0);
}

/* ---- the change log ------------------------------------------------------------ */

static int log_insert(struct db *db, const struct change *c, const struct buf *body,
		      int64_t recv_ms, int rejected, int code, const char *reason)
{
	sqlite3_stmt *st;
	const uint8_t *prev = change_prev(c), *hash = change_hash(c);
	if (!prev || !hash)
		return TLY_E_BAD_VALUE;
	int err = db_stmt(db,
			  "INSERT INTO change_log (site, seq, hlc, eff, kind, record_id, body, prev, "
			  "hash, recv_ms, state, reject_code, reject_reason) "
			  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			  &st);
	if (err)
		return err;
	/* Static bindings: everything bound outlives the step, which resets. */
	sqlite3_bind_text(st, 1, change_site(c), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)change_seq(c));
	sqlite3_bind_int64(st, 3, (int64_t)change_hlc(c));
	if (change_eff(c))
		sqlite3_bind_int64(st, 4, (int64_t)change_eff(c));
	sqlite3_bind_text(st, 5, change_kind(c), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, change_id(c), -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 7, body->data ? body->data : "", (int)body->len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 8, prev, CHANGE_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 9, hash, CHANGE_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 10, recv_ms);
	sqlite3_bind_text(st, 11, rejected ? "rejected" : "applied", -1, SQLITE_STATIC);
	if (rejected) {
		sqlite3_bind_text(st, 12, error_name(code), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 13, reason ? reason : error_text_zh(code), -1,
				  SQLITE_STATIC);
	}
	return db_step_done(db, st);
}

int store_site_head(struct db *db, const char *site, uint64_t *seq,
		    uint8_t hash[CHANGE_HASH_LEN])
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "SELECT seq, hash FROM change_log WHERE site = ? ORDER BY seq DESC LIMIT 1",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, site, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	*seq = 0;
	memcpy(hash, chain_genesis, CHANGE_HASH_LEN);
	if (rc == SQLITE_ROW) {
		*seq = (uint64_t)sqlite3_column_int64(st, 0);
		if (sqlite3_column_bytes(st, 1) == CHANGE_HASH_LEN)
			memcpy(hash, sqlite3_column_blob(st, 1), CHANGE_HASH_LEN);
		else
			err = TLY_E_CHAIN;
	} else if (rc != SQLITE_DONE) {
		err = db_err(db, rc);
	}
	sqlite3_reset(st);
	return err;
}

int store_change_from_row(const void *body, size_t n, int64_t eff, const void *prev,
			  const void *hash, struct change **out)
{
	int err = change_decode_canonical(body, n, NULL, out);
	if (err)
		return err;
	if (eff > 0)
		change_set_eff(*out, (uint64_t)eff);
	if (prev && hash)
		change_set_links(*out, prev, hash);
	return TLY_OK;
}

/* Collects rows (body, eff, prev, hash) of a prepared query into changes. */
static int read_changes(struct db *db, sqlite3_stmt *st, size_t max_count, size_t max_bytes,
			struct change ***out, size_t *n, int64_t *last_pos, int pos_col)
{
	struct change **cs = NULL;
	size_t count = 0, bytes = 0;
	int err = TLY_OK, rc;

	*out = NULL;
	*n = 0;
	if (max_count == 0)
		return TLY_OK;
	cs = calloc(max_count < 1024 ? max_count : 1024, sizeof *cs);
	size_t cap = max_count < 1024 ? max_count : 1024;
	if (!cs)
		return TLY_E_NOMEM;
	while (count < max_count && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		size_t blen = (size_t)sqlite3_column_bytes(st, 0);
		if (count > 0 && bytes + blen > max_bytes)
			break;
		if (blen > STORE_BODY_MAX) {
			err = TLY_E_TOO_LARGE;
			goto out;
		}
		if (count == cap) {
			size_t ncap = cap * 2 < max_count ? cap * 2 : max_count;
			struct change **m = realloc(cs, ncap * sizeof *cs);
			if (!m) {
				err = TLY_E_NOMEM;
				goto out;
			}
			cs = m;
			cap = ncap;
		}
		const void *prev = sqlite3_column_blob(st, 2);
		const void *hash = sqlite3_column_blob(st, 3);
		if (sqlite3_column_bytes(st, 2) != CHANGE_HASH_LEN ||
		    sqlite3_column_bytes(st, 3) != CHANGE_HASH_LEN) {
			err = TLY_E_CHAIN;
			goto out;
		}
		err = store_change_from_row(sqlite3_column_blob(st, 0), blen,
					    sqlite3_column_int64(st, 1), prev, hash, &cs[count]);
		if (err)
			goto out;
		count++;
		bytes += blen;
		if (last_pos)
			*last_pos = sqlite3_column_int64(st, pos_col);
	}
	if (count < max_count && rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = db_err(db, rc);
out:
	sqlite3_reset(st);
	if (err) {
		store_changes_free(cs, count);
		return err;
	}
	*out = cs;
	*n = count;
	return TLY_OK;
}

int store_log_read(struct db *db, int64_t after_pos, size_t max_count, size_t max_bytes,
		   struct change ***out, size_t *n, int64_t *last_pos)
{
	sqlite3_stmt *st;
	*last_pos = after_pos;
	int err = db_stmt(db,
			  "SELECT body, eff, prev, hash, pos FROM change_log WHERE pos > ? "
			  "AND state = 'applied' ORDER BY pos LIMIT ?",
			  &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, after_pos);
	sqlite3_bind_int64(st, 2, (int64_t)(max_count > INT32_MAX ? INT32_MAX : max_count));
	return read_changes(db, st, max_count, max_bytes, out, n, last_pos, 4);
}

int store_change_state(struct db *db, const char *site, uint64_t seq, int *found, int *rejected,
		       int *code, struct buf *reason)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "SELECT state, reject_code, reject_reason FROM change_log "
			  "WHERE site = ? AND seq = ?",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, site, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (int64_t)seq);
	*found = *rejected = 0;
	if (code)
		*code = TLY_OK;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*found = 1;
		const char *state = (const char *)sqlite3_column_text(st, 0);
		*rejected = state && strcmp(state, "rejected") == 0;
		if (*rejected && code)
			*code = error_from_name((const char *)sqlite3_column_text(st, 1));
		if (*rejected && reason) {
			const char *r = (const char *)sqlite3_column_text(st, 2);
			buf_reset(reason);
			if (r)
				(void)buf_add_str(reason, r);
		}
	} else if (rc != SQLITE_DONE) {
		err = db_err(db, rc);
	}
	sqlite3_reset(st);
	return err;
}

/* ---- the write path --------------------------------------------------------------- */

/* Copies the draft's fields into the real change. */
static int copy_fields(const struct change *from, struct change *to)
{
	for (size_t i = 0; i < change_field_count(from); i++) {
		struct field_view v;
		int err;
		change_field_at(from, i, &v);
		if (v.type == FIELD_INT)
			err = change_set_int(to, v.name, v.i, NULL);
		else if (v.type == FIELD_TEXT)
			err = change_set_text(to, v.name, v.text, v.len, NULL);
		else
			err = change_set_null(to, v.name, NULL);
		if (err)
			return err;
	}
	return TLY_OK;
}

static int actor_of_site(const struct db_site *s, struct rules_actor *a)
{
	int err = rules_role_parse(s->role, &a->role);
	a->village_id = s->village_id;
	return err;
}

int store_write_in_txn(struct db *db, struct change *const *drafts, size_t n, struct buf *why,
		       uint64_t *first_seq)
{
	const struct db_site *site = db_site(db);
	struct rules_actor actor;
	struct hlc clock;
	struct change *c = NULL;
	struct buf body;
	uint64_t seq;
	uint8_t prev[CHANGE_HASH_LEN];
	int err;

	buf_init(&body, STORE_BODY_MAX);
	if (!site)
		return TLY_E_NOT_INITIALISED;
	if (!db_in_txn(db))
		return TLY_E_INTERNAL;
	err = actor_of_site(site, &actor);
	if (!err)
		err = hlc_load(db, &clock);
	if (!err)
		err = store_site_head(db, site->site_id, &seq, prev);
	if (err)
		goto out;
	if (first_seq)
		*first_seq = seq + 1;

	for (size_t i = 0; i < n; i++) {
		const struct change *d = drafts[i];
		/* Checked against what is stored now, earlier drafts included:
		 * a new task's first progress sees the task. */
		err = store_check(db, &actor, d, why);
		if (err)
			goto out;
		uint64_t t = hlc_send(&clock, clock_wall_ms(db));
		seq++;
		err = change_new(&c, CHANGE_SCHEMA_VERSION, site->site_id, seq, t, change_kind(d),
				 change_id(d));
		if (!err)
			err = copy_fields(d, c);
		if (!err)
			err = chain_link(c, prev);
		buf_reset(&body);
		if (!err)
			err = change_encode_canonical(c, &body);
		if (!err)
			err = log_insert(db, c, &body, clock_device_ms(), 0, TLY_OK, NULL);
		if (!err)
			err = merge_fields(db, c, 1);
		if (err)
			goto out;
		memcpy(prev, change_hash(c), CHANGE_HASH_LEN);
		change_free(c);
		c = NULL;
	}
	err = hlc_save(db, &clock);
out:
	change_free(c);
	buf_free(&body);
	return err;
}

int store_write(struct db *db, struct change *const *drafts, size_t n, struct buf *why,
		uint64_t *first_seq)
{
	if (!db_site(db))
		return TLY_E_NOT_INITIALISED;
	if (db_in_txn(db))
		return TLY_E_INTERNAL;
	int err = db_begin(db);
	if (err)
		return err;
	err = store_write_in_txn(db, drafts, n, why, first_seq);
	/*
	 * Durability order: the domain rows, their field stamps, the
	 * change_log entries (outbox + chain head) and the HLC all commit in
	 * this one COMMIT. A crash before it returns leaves none of them (WAL
	 * rollback), after it all of them (synchronous=FULL fsyncs the WAL
	 * first). Only after TLY_OK here may a command print 已保存.
	 */
	if (!err)
		err = db_commit(db);
	if (err)
		db_rollback(db);
	return err;
}

/* ---- the apply path ------------------------------------------------------------------ */

static int recv_clock(struct db *db, uint64_t stamp)
{
	struct hlc clock;
	int err = hlc_load(db, &clock);
	if (err)
		return err;
	uint64_t before = clock.last;
	/* A stamp too far ahead leaves the clock alone (TLY_E_CLOCK_AHEAD):
	 * one wrong clock must not drag this site's stamps into the future. */
	(void)hlc_recv(&clock, stamp, clock_wall_ms(db), limits_or_default(NULL)->max_ahead_ms,
		       NULL);
	return clock.last == before ? TLY_OK : hlc_save(db, &clock);
}

int store_apply_remote(struct db *db, const struct change *c, const struct rules_actor *actor,
		       int64_t recv_ms, enum store_outcome *outcome, int *reject_code,
		       struct buf *reject_reason)
{
	struct buf body, why;
	sqlite3_stmt *st;
	int err, rc;

	buf_init(&body, STORE_BODY_MAX);
	buf_init(&why, 1024);
	*outcome = STORE_APPLIED;
	if (reject_code)
		*reject_code = TLY_OK;
	if (!change_prev(c) || !change_hash(c))
		return TLY_E_BAD_VALUE;
	err = change_encode_canonical(c, &body);
	if (err)
		goto out;

	err = db_stmt(db, "SELECT body, eff FROM change_log WHERE site = ? AND seq = ?", &st);
	if (err)
		goto out;
	sqlite3_bind_text(st, 1, change_site(c), -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (int64_t)change_seq(c));
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		const void *held = sqlite3_column_blob(st, 0);
		int64_t held_eff = sqlite3_column_int64(st, 1);
		int same = n == body.len && (n == 0 || memcmp(held, body.data, n) == 0);
		sqlite3_reset(st);
		if (!same) {
			err = TLY_E_CHAIN;
			goto out;
		}
		*outcome = STORE_DUPLICATE;
		if (change_eff(c) && (uint64_t)held_eff != change_eff(c) &&
		    change_eff(c) > (uint64_t)held_eff)
			err = store_set_eff(db, change_site(c), change_seq(c), change_eff(c));
		goto out;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		err = db_err(db, rc);
		goto out;
	}

	if (actor) {
		int verdict = store_check(db, actor, c, &why);
		if (verdict == TLY_E_NOMEM || verdict == TLY_E_DB || verdict == TLY_E_IO) {
			err = verdict;
			goto out;
		}
		if (verdict) {
			const char *reason = why_text(&why, verdict);
			err = log_insert(db, c, &body, recv_ms, 1, verdict, reason);
			if (err)
				goto out;
			*outcome = STORE_REJECTED;
			if (reject_code)
				*reject_code = verdict;
			if (reject_reason) {
				buf_reset(reject_reason);
				(void)buf_add_str(reject_reason, reason);
			}
			goto out;
		}
	}
	err = log_insert(db, c, &body, recv_ms, 0, TLY_OK, NULL);
	if (!err)
		err = merge_fields(db, c, 1);
	if (!err)
		err = recv_clock(db, change_stamp(c));
out:
	buf_free(&body);
	buf_free(&why);
	return err;
}

/* ---- eff, rejection, rebuild -------------------------------------------------------------- */

static int load_logged(struct db *db, const char *site, uint64_t seq, struct change **out,
		       int *applied)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "SELECT body, eff, prev, hash, state FROM change_log "
			  "WHERE site = ? AND seq = ?",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, site, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (int64_t)seq);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *state = (const char *)sqlite3_column_text(st, 4);
		*applied = state && strcmp(state, "applied") == 0;
		err = store_change_from_row(sqlite3_column_blob(st, 0),
					    (size_t)sqlite3_column_bytes(st, 0),
					    sqlite3_column_int64(st, 1), NULL, NULL, out);
	} else {
		err = rc == SQLITE_DONE ? TLY_E_NOT_FOUND : db_err(db, rc);
	}
	sqlite3_reset(st);
	return err;
}

int store_set_eff(struct db *db, const char *site, uint64_t seq, uint64_t eff)
{
	struct change *c = NULL;
	sqlite3_stmt *st;
	int applied = 0;
	int err = load_logged(db, site, seq, &c, &applied);
	if (err)
		return err;
	err = db_stmt(db, "UPDATE change_log SET eff = ? WHERE site = ? AND seq = ?", &st);
	if (err)
		goto out;
	sqlite3_bind_int64(st, 1, (int64_t)eff);
	sqlite3_bind_text(st, 2, site, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, (int64_t)seq);
	err = db_step_done(db, st);
	if (err || !applied)
		goto out;
	/* Fields this change still holds move to the new stamp first, so the
	 * re-merge below compares the change with the other writes only. A
	 * change touches one record: its writes are found by primary key. */
	static const char *const moves[] = {
		"UPDATE field_write SET stamp = ?1 WHERE kind = ?2 AND record_id = ?3 "
		"AND site = ?4 AND seq = ?5",
		"UPDATE record_base SET stamp = ?1 WHERE kind = ?2 AND record_id = ?3 "
		"AND site = ?4 AND seq = ?5",
	};
	for (size_t m = 0; m < sizeof moves / sizeof moves[0]; m++) {
		err = db_stmt(db, moves[m], &st);
		if (err)
			goto out;
		sqlite3_bind_int64(st, 1, (int64_t)eff);
		sqlite3_bind_text(st, 2, change_kind(c), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, change_id(c), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, site, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 5, (int64_t)seq);
		err = db_step_done(db, st);
		if (err)
			goto out;
	}
	/* A later stamp may now win fields it had lost here: merge again. */
	change_set_eff(c, eff);
	err = merge_fields(db, c, 1);
	if (!err)
		err = recv_clock(db, eff);
out:
	change_free(c);
	return err;
}

int store_rebuild_record(struct db *db, const char *kind, const char *id)
{
	const struct schema_kind *k = schema_kind_find(kind);
	sqlite3_stmt *st;
	char sql[128];
	struct change **cs = NULL;
	size_t n = 0;
	int err;

	static const char *const clears[] = {
		"DELETE FROM field_write WHERE kind = ? AND record_id = ?",
		"DELETE FROM record_base WHERE kind = ? AND record_id = ?",
	};
	for (size_t i = 0; i < sizeof clears / sizeof clears[0]; i++) {
		err = db_stmt(db, clears[i], &st);
		if (err)
			return err;
		sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
		err = db_step_done(db, st);
		if (err)
			return err;
	}
	if (k) {
		snprintf(sql, sizeof sql, "DELETE FROM \"%s\" WHERE id = ?", k->kind);
		err = db_stmt(db, sql, &st);
		if (err)
			return err;
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		err = db_step_done(db, st);
		if (err)
			return err;
	}
	err = db_stmt(db,
		      "SELECT body, eff, prev, hash FROM change_log WHERE kind = ? AND record_id = ? "
		      "AND state = 'applied' ORDER BY pos",
		      &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
	err = read_changes(db, st, SIZE_MAX / sizeof(struct change *), SIZE_MAX, &cs, &n, NULL, 0);
	for (size_t i = 0; !err && i < n; i++)
		err = merge_fields(db, cs[i], 0);
	store_changes_free(cs, n);
	return err;
}

int store_outbox_reject(struct db *db, uint64_t seq, int code, const char *reason_zh)
{
	const struct db_site *site = db_site(db);
	struct change *c = NULL;
	sqlite3_stmt *st;
	int applied = 0, err;

	if (!site)
		return TLY_E_NOT_INITIALISED;
	err = load_logged(db, site->site_id, seq, &c, &applied);
	if (err)
		return err;
	err = db_stmt(db,
		      "UPDATE change_log SET state = 'rejected', reject_code = ?, reject_reason = ? "
		      "WHERE site = ? AND seq = ?",
		      &st);
	if (err)
		goto out;
	sqlite3_bind_text(st, 1, error_name(code), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, reason_zh ? reason_zh : error_text_zh(code), -1,
			  SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, site->site_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, (int64_t)seq);
	err = db_step_done(db, st);
	/* The server holds it without effect; so must we, or we would diverge. */
	if (!err && applied)
		err = store_rebuild_record(db, change_kind(c), change_id(c));
out:
	change_free(c);
	return err;
}

/* ---- the outbox ----------------------------------------------------------------------------- */

int store_outbox_read(struct db *db, uint64_t after_seq, size_t max_count, size_t max_bytes,
		      struct change ***out, size_t *n)
{
	const struct db_site *site = db_site(db);
	sqlite3_stmt *st;
	if (!site)
		return TLY_E_NOT_INITIALISED;
	int err = db_stmt(db,
			  "SELECT body, eff, prev, hash FROM change_log WHERE site = ? AND seq > ? "
			  "ORDER BY seq LIMIT ?",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, site->site_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (int64_t)after_seq);
	sqlite3_bind_int64(st, 3, (int64_t)(max_count > INT32_MAX ? INT32_MAX : max_count));
	return read_changes(db, st, max_count, max_bytes, out, n, NULL, 0);
}

int store_outbox_ack(struct db *db, const char *epoch, uint64_t seq)
{
	sqlite3_stmt *st;
	/* Same epoch: acked only grows. New epoch: what the old server
	 * confirmed means nothing to the restored one, so start from seq. */
	int err = db_stmt(db,
			  "UPDATE sync_state SET acked_seq = CASE WHEN epoch IS ?1 "
			  "THEN max(acked_seq, ?2) ELSE ?2 END, epoch = ?1 WHERE one = 1",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, epoch, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (int64_t)seq);
	return db_step_done(db, st);
}

int store_outbox_stats(struct db *db, struct store_outbox_stats *out)
{
	const struct db_site *site = db_site(db);
	sqlite3_stmt *st;
	memset(out, 0, sizeof *out);
	if (!site)
		return TLY_E_NOT_INITIALISED;
	int err = db_stmt(db,
			  "SELECT (SELECT acked_seq FROM sync_state WHERE one = 1), "
			  "(SELECT max(seq) FROM change_log WHERE site = ?1), "
			  "(SELECT count(*) FROM change_log WHERE site = ?1 AND seq > "
			  "  (SELECT acked_seq FROM sync_state WHERE one = 1)), "
			  /* The syncer asks after every batch: each part is an index
			   * lookup, never a scan of the change bodies. Own changes are
			   * received (written) in seq order, so the first pending one
			   * is the oldest. */
			  "(SELECT recv_ms FROM change_log WHERE site = ?1 AND seq > "
			  "  (SELECT acked_seq FROM sync_state WHERE one = 1) ORDER BY seq LIMIT 1), "
			  "(SELECT count(*) FROM change_log WHERE site = ?1 AND state = 'rejected')",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, site->site_id, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->acked_seq = (uint64_t)sqlite3_column_int64(st, 0);
		out->last_seq = (uint64_t)sqlite3_column_int64(st, 1);
		out->pending = (uint64_t)sqlite3_column_int64(st, 2);
		out->oldest_ms = sqlite3_column_int64(st, 3);
		out->rejected = (uint64_t)sqlite3_column_int64(st, 4);
		err = TLY_OK;
	} else {
		err = db_err(db, rc);
	}
	sqlite3_reset(st);
	return err;
}
