/*
 * views — read models and derived warnings (see views.h).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "protocol/error.h"
#include "protocol/hlc.h"
#include "rules.h"
#include "store.h"
#include "syncstate.h"
#include "views.h"

void views_settings_load(struct db *db, struct views_settings *out)
{
	out->yellow_days = 10;
	out->blue_days = 20;
	out->stale_days = 14;
	out->behind_points = 20;
	if (!db)
		return;
	out->yellow_days = db_setting_int(db, "warn_yellow_days", out->yellow_days);
	out->blue_days = db_setting_int(db, "warn_blue_days", out->blue_days);
	out->stale_days = db_setting_int(db, "stale_days", out->stale_days);
	out->behind_points = db_setting_int(db, "behind_points", out->behind_points);
}

void views_task_flags(const struct views_settings *s, const char *today, const char *status,
		      const char *deadline, const char *created, const char *last_progress,
		      int64_t progress, struct views_flags *out)
{
	int64_t t, dl, cr, lp;
	memset(out, 0, sizeof *out);
	out->warning = "none";
	out->active = !(status && (strcmp(status, "closed") == 0 || strcmp(status, "withdrawn") == 0));
	if (!out->active || clock_date_days(today, &t) != TLY_OK)
		return;
	int have_dl = deadline && clock_date_days(deadline, &dl) == TLY_OK;
	int have_cr = created && clock_date_days(created, &cr) == TLY_OK;
	if (have_dl) {
		out->days_left = dl - t;
		out->overdue = dl < t;
		if (out->overdue)
			out->warning = "red";
		else if (out->days_left <= s->yellow_days)
			out->warning = "yellow";
		else if (out->days_left <= s->blue_days)
			out->warning = "blue";
	}
	/* Stale counts from the last entry, or from creation when there is none. */
	if (last_progress && clock_date_days(last_progress, &lp) == TLY_OK)
		out->stale = t - lp >= s->stale_days;
	else if (have_cr)
		out->stale = t - cr >= s->stale_days;
	if (have_dl && have_cr && dl > cr) {
		int64_t elapsed = t - cr;
		if (elapsed < 0)
			elapsed = 0;
		if (elapsed > dl - cr)
			elapsed = dl - cr;
		/* Integer points: 100 * elapsed / span, compared without floats. */
		int64_t expected = 100 * elapsed / (dl - cr);
		out->behind = expected - progress > s->behind_points;
	}
}

void views_format_ms(int64_t ms, char out[20])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!localtime_r(&t, &tm) ||
	    strftime(out, 20, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(out, 20, "?");
}

/* ---- generic row to JSON ------------------------------------------------------------------------ */

static json_t *col_json(sqlite3_stmt *st, int i)
{
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER:
		return json_integer((json_int_t)sqlite3_column_int64(st, i));
	case SQLITE_NULL:
		return json_null();
	default: {
		const char *t = (const char *)sqlite3_column_text(st, i);
		return json_stringn(t ? t : "", (size_t)sqlite3_column_bytes(st, i));
	}
	}
}

static json_t *row_json(sqlite3_stmt *st)
{
	json_t *o = json_object();
	for (int i = 0; i < sqlite3_column_count(st); i++)
		json_object_set_new(o, sqlite3_column_name(st, i), col_json(st, i));
	return o;
}

/* Runs sql with up to two text parameters and appends each row as an
 * object keyed by column name. */
static int rows_json(struct db *db, const char *sql, const char *p1, const char *p2, json_t *arr)
{
	sqlite3_stmt *st;
	int err = db_stmt(db, sql, &st);
	if (err)
		return err;
	if (p1)
		sqlite3_bind_text(st, 1, p1, -1, SQLITE_TRANSIENT);
	if (p2)
		sqlite3_bind_text(st, 2, p2, -1, SQLITE_TRANSIENT);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(arr, row_json(st));
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? TLY_OK : db_err(db, rc);
}

static const char *jstr(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* ---- tasks -------------------------------------------------------------------------------------------- */

/* CROSS JOIN fixes the join order: left to itself SQLite 3.40 drives the
 * latest-entry subquery from record_base (every progress entry of every
 * task) rather than from this task's few entries (see report.c). */
#define TASK_SELECT                                                                            \
	"SELECT t.id AS id, v.name AS village, t.village AS village_id, t.problem AS problem, "  \
	"p.source AS source, t.measures AS measures, t.target AS target, "                        \
	"t.root_cause AS root_cause, t.elsewhere AS elsewhere, t.owner AS owner, "                \
	"t.leader AS leader, t.deadline AS deadline, t.status AS status, "                        \
	"t.created_on AS created_on, "                                                            \
	"coalesce((SELECT pr.percent FROM progress pr CROSS JOIN record_base f ON f.kind = 'progress' " \
	"  AND f.record_id = pr.id WHERE pr.task = t.id "                                         \
	"  ORDER BY f.stamp DESC, f.site DESC LIMIT 1), 0) AS progress, "                          \
	"(SELECT max(pr.date) FROM progress pr WHERE pr.task = t.id) AS last_progress "           \
	"FROM task t LEFT JOIN village v ON v.id = t.village LEFT JOIN problem p ON p.id = t.problem "

/* Adds the derived members to a task object. */
static void task_decorate(json_t *o, const struct views_settings *s, const char *today)
{
	struct views_flags f;
	const char *status = jstr(o, "status");
	views_task_flags(s, today, status, jstr(o, "deadline"), jstr(o, "created_on"),
			 jstr(o, "last_progress"), json_integer_value(json_object_get(o, "progress")),
			 &f);
	json_object_set_new(o, "status_label", json_string(rules_status_label(status)));
	json_object_set_new(o, "warning", json_string(f.warning));
	json_object_set_new(o, "overdue", json_boolean(f.overdue));
	json_object_set_new(o, "days_left", json_integer(f.days_left));
	json_object_set_new(o, "stale", json_boolean(f.stale));
	json_object_set_new(o, "behind", json_boolean(f.behind));
}

int views_task_list(struct db *db, const struct views_task_filter *f, json_t **out)
{
	struct views_settings s;
	char today[CLOCK_DATE_LEN + 1];
	sqlite3_stmt *st;
	json_t *arr = json_array();
	int err = clock_today(today), rc;

	*out = NULL;
	views_settings_load(db, &s);
	if (!err)
		err = db_stmt(db,
			      TASK_SELECT "WHERE (?1 IS NULL OR t.village = ?1) AND "
					  "(?2 IS NULL OR t.status = ?2) AND (?3 IS NULL OR p.source = ?3) "
					  "ORDER BY t.deadline, t.id",
			      &st);
	if (err) {
		json_decref(arr);
		return err;
	}
	if (f->village)
		sqlite3_bind_text(st, 1, f->village, -1, SQLITE_TRANSIENT);
	if (f->status)
		sqlite3_bind_text(st, 2, f->status, -1, SQLITE_TRANSIENT);
	if (f->source)
		sqlite3_bind_text(st, 3, f->source, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *o = row_json(st);
		task_decorate(o, &s, today);
		int keep = 1;
		if (f->overdue >= 0 && json_is_true(json_object_get(o, "overdue")) != f->overdue)
			keep = 0;
		if (f->warning && strcmp(jstr(o, "warning"), f->warning) != 0)
			keep = 0;
		if (keep)
			json_array_append_new(arr, o);
		else
			json_decref(o);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return db_err(db, rc);
	}
	*out = arr;
	return TLY_OK;
}

/*
 * Changes the township refused that concern one task: the task's own, and
 * those of records under it (a progress entry, a review), which are found
 * by their `task` field because a refused record was never materialised.
 * Few rows: only refused changes are decoded.
 */
static int rejected_for_task_json(struct db *db, const char *task, json_t *arr)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "SELECT site, seq, kind, record_id, body, reject_code, reject_reason "
			  "FROM change_log WHERE state = 'rejected' ORDER BY pos",
			  &st);
	if (err)
		return err;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct change *c = NULL;
		struct field_view fv;
		const char *kind = (const char *)sqlite3_column_text(st, 2);
		const char *rid = (const char *)sqlite3_column_text(st, 3);
		int mine = strcmp(kind, "task") == 0 && strcmp(rid, task) == 0;
		if (!mine && change_decode_canonical(sqlite3_column_blob(st, 4),
						     (size_t)sqlite3_column_bytes(st, 4), NULL,
						     &c) == TLY_OK) {
			mine = change_field_get(c, "task", &fv) && fv.type == FIELD_TEXT &&
			       strcmp(fv.text, task) == 0;
			change_free(c);
		}
		if (!mine)
			continue;
		const char *code = (const char *)sqlite3_column_text(st, 5);
		const char *reason = (const char *)sqlite3_column_text(st, 6);
		json_array_append_new(
			arr, json_pack("{s:s, s:I, s:s, s:s, s:s, s:s}", "site",
				       (const char *)sqlite3_column_text(st, 0), "seq",
				       (json_int_t)sqlite3_column_int64(st, 1), "kind", kind, "record",
				       rid, "code", code ? code : "", "reason", reason ? reason : ""));
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? TLY_OK : db_err(db, rc);
}

/* The change history of one record, decoded. */
static int history_json(struct db *db, const char *kind, const char *id, json_t *arr)
{
	sqlite3_stmt *st;
	int err = db_stmt(db,
			  "SELECT site, seq, hlc, eff, state, reject_code, reject_reason, body "
			  "FROM change_log WHERE kind = ? AND record_id = ? ORDER BY pos",
			  &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct change *c = NULL;
		json_t *o = json_object(), *fields = json_object();
		char when[20];
		int64_t stamp = sqlite3_column_int64(st, 3) ? sqlite3_column_int64(st, 3)
							    : sqlite3_column_int64(st, 2);
		views_format_ms((int64_t)hlc_ms((uint64_t)stamp), when);
		json_object_set_new(o, "site", col_json(st, 0));
		json_object_set_new(o, "seq", col_json(st, 1));
		json_object_set_new(o, "hlc", col_json(st, 2));
		json_object_set_new(o, "eff", col_json(st, 3));
		json_object_set_new(o, "time", json_string(when));
		json_object_set_new(o, "state", col_json(st, 4));
		json_object_set_new(o, "reject_code", col_json(st, 5));
		json_object_set_new(o, "reject_reason", col_json(st, 6));
		if (change_decode_canonical(sqlite3_column_blob(st, 7),
					    (size_t)sqlite3_column_bytes(st, 7), NULL, &c) == TLY_OK) {
			for (size_t i = 0; i < change_field_count(c); i++) {
				struct field_view v;
				change_field_at(c, i, &v);
				json_object_set_new(fields, v.name,
						    v.type == FIELD_INT    ? json_integer(v.i)
						    : v.type == FIELD_TEXT ? json_stringn(v.text, v.len)
									   : json_null());
			}
			change_free(c);
		}
		json_object_set_new(o, "fields", fields);
		json_array_append_new(arr, o);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? TLY_OK : db_err(db, rc);
}

#define CONFLICT_SELECT                                                                        \
	"SELECT c.kind AS kind, c.record_id AS record, c.field AS field, "                        \
	"c.winner_value AS winner_value, c.winner_site AS winner_site, "                          \
	"c.winner_stamp AS winner_stamp, c.loser_value AS loser_value, "                          \
	"c.loser_site AS loser_site, c.loser_stamp AS loser_stamp, c.at_ms AS at_ms FROM conflict c "

/* Adds readable times to conflict rows. */
static void conflicts_decorate(json_t *arr)
{
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o)
	{
		char t[20];
		views_format_ms((int64_t)hlc_ms((uint64_t)json_integer_value(
					json_object_get(o, "winner_stamp"))),
				t);
		json_object_set_new(o, "winner_time", json_string(t));
		views_format_ms((int64_t)hlc_ms((uint64_t)json_integer_value(
					json_object_get(o, "loser_stamp"))),
				t);
		json_object_set_new(o, "loser_time", json_string(t));
		views_format_ms(json_integer_value(json_object_get(o, "at_ms")), t);
		json_object_set_new(o, "at", json_string(t));
	}
}

int views_task_show(struct db *db, const char *task, json_t **out)
{
	struct views_settings s;
	char today[CLOCK_DATE_LEN + 1];
	json_t *rows = json_array(), *o = NULL;
	int err = clock_today(today);

	*out = NULL;
	views_settings_load(db, &s);
	if (!err)
		err = rows_json(db, TASK_SELECT "WHERE t.id = ?1", task, NULL, rows);
	if (!err && json_array_size(rows) == 0)
		err = TLY_E_NOT_FOUND;
	if (err) {
		json_decref(rows);
		return err;
	}
	o = json_incref(json_array_get(rows, 0));
	json_decref(rows);
	task_decorate(o, &s, today);

	json_t *problem = json_array(), *progress = json_array(), *evidence = json_array();
	json_t *reviews = json_array(), *history = json_array(), *conflicts = json_array();
	err = rows_json(db,
			"SELECT id, source, round, doc_no, category, text, manifestations "
			"FROM problem WHERE id = ?",
			jstr(o, "problem"), NULL, problem);
	if (!err)
		err = rows_json(db,
				"SELECT p.id AS id, p.percent AS percent, p.note AS note, "
				"p.reason AS reason, p.author AS author, p.date AS date FROM progress p "
				"JOIN record_base f ON f.kind = 'progress' AND f.record_id = p.id "
				"WHERE p.task = ? ORDER BY f.stamp, f.site",
				task, NULL, progress);
	if (!err)
		err = rows_json(db,
				"SELECT id, progress, sha256, name, size, author, date FROM evidence "
				"WHERE task = ? ORDER BY date, id",
				task, NULL, evidence);
	if (!err)
		err = rows_json(db,
				"SELECT r.id AS id, r.type AS type, r.decision AS decision, "
				"r.opinion AS opinion, r.until AS until, r.request AS request, "
				"r.author AS author, r.date AS date FROM review r JOIN record_base f ON "
				"f.kind = 'review' AND f.record_id = r.id "
				"WHERE r.task = ? ORDER BY f.stamp, f.site",
				task, NULL, reviews);
	if (!err)
		err = history_json(db, "task", task, history);
	if (!err)
		err = rows_json(db, CONFLICT_SELECT "WHERE c.kind = 'task' AND c.record_id = ? "
						    "ORDER BY c.id",
				task, NULL, conflicts);
	size_t i;
	json_t *r;
	json_array_foreach(reviews, i, r)
	{
		json_object_set_new(r, "label",
				    json_string(rules_review_label(jstr(r, "type"), jstr(r, "decision"))));
	}
	conflicts_decorate(conflicts);
	json_object_set(o, "problem_detail",
			json_array_size(problem) ? json_array_get(problem, 0) : json_null());
	json_decref(problem);
	json_object_set_new(o, "progress_entries", progress);
	json_object_set_new(o, "evidence", evidence);
	json_object_set_new(o, "reviews", reviews);
	json_object_set_new(o, "history", history);
	json_object_set_new(o, "conflicts", conflicts);
	json_t *rejected = json_array();
	if (!err)
		err = rejected_for_task_json(db, task, rejected);
	json_object_set_new(o, "rejected_changes", rejected);
	if (err) {
		json_decref(o);
		return err;
	}
	*out = o;
	return TLY_OK;
}

/* ---- other lists ------------------------------------------------------------------------------------ */

int views_problem_list(struct db *db, const char *source, json_t **out)
{
	json_t *arr = json_array();
	int err = rows_json(db,
			    "SELECT p.id AS id, p.source AS source, p.round AS round, "
			    "p.doc_no AS doc_no, p.category AS category, p.text AS text, "
			    "p.manifestations AS manifestations, p.village AS village_id, "
			    "v.name AS village, p.created_on AS created_on, "
			    "(SELECT count(*) FROM task t WHERE t.problem = p.id) AS tasks "
			    "FROM problem p LEFT JOIN village v ON v.id = p.village "
			    "WHERE (?1 IS NULL OR p.source = ?1) ORDER BY p.created_on, p.id",
			    source, NULL, arr);
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o)
	{
		json_object_set_new(o, "source_label",
				    json_string(rules_source_label(jstr(o, "source"))));
	}
	if (err) {
		json_decref(arr);
		return err;
	}
	*out = arr;
	return TLY_OK;
}

int views_village_list(struct db *db, json_t **out)
{
	json_t *arr = json_array();
	int err = rows_json(db,
			    "SELECT v.id AS id, v.name AS name, "
			    "(SELECT count(*) FROM task t WHERE t.village = v.id AND "
			    "  t.status <> 'withdrawn') AS tasks, "
			    "(SELECT count(*) FROM task t WHERE t.village = v.id AND "
			    "  t.status = 'closed') AS closed FROM village v ORDER BY v.name, v.id",
			    NULL, NULL, arr);
	if (err) {
		json_decref(arr);
		return err;
	}
	*out = arr;
	return TLY_OK;
}

int views_notice_list(struct db *db, json_t **out)
{
	const struct db_site *site = db_site(db);
	json_t *arr = json_array();
	int err = rows_json(db,
			    "SELECT n.id AS id, n.type AS type, n.village AS village_id, "
			    "v.name AS village, n.title AS title, n.text AS text, n.tasks AS tasks, "
			    "n.author AS author, n.date AS date FROM notice n "
			    "JOIN record_base f ON f.kind = 'notice' AND f.record_id = n.id "
			    "LEFT JOIN village v ON v.id = n.village "
			    "WHERE ?1 IS NULL OR n.village IS NULL OR n.village = ?1 "
			    "ORDER BY f.stamp DESC, f.site DESC",
			    site ? site->village_id : NULL, NULL, arr);
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o)
	{
		const char *tasks = jstr(o, "tasks");
		json_t *list = json_array();
		/* Stored comma-separated; shown as an array. */
		while (tasks && *tasks) {
			const char *comma = strchr(tasks, ',');
			size_t n = comma ? (size_t)(comma - tasks) : strlen(tasks);
			json_array_append_new(list, json_stringn(tasks, n));
			tasks = comma ? comma + 1 : NULL;
		}
		json_object_set_new(o, "tasks", list);
		json_object_set_new(o, "type_label",
				    json_string(rules_notice_type_label(jstr(o, "type"))));
	}
	if (err) {
		json_decref(arr);
		return err;
	}
	*out = arr;
	return TLY_OK;
}

int views_conflicts(struct db *db, json_t **out)
{
	json_t *arr = json_array();
	int err = rows_json(db, CONFLICT_SELECT "ORDER BY c.id", NULL, NULL, arr);
	if (err) {
		json_decref(arr);
		return err;
	}
	conflicts_decorate(arr);
	*out = arr;
	return TLY_OK;
}

/* Accumulates one task into a group's counters. */
static void group_add(json_t *groups, const char *key, const char *label, json_t *task)
{
	json_t *g = json_object_get(groups, key);
	if (!g) {
		g = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}", "key", key,
			      "label", label, "tasks", 0, "closed", 0, "overdue", 0, "red", 0,
			      "yellow", 0, "blue", 0, "stale", 0, "behind", 0);
		json_object_set_new(groups, key, g);
	}
	const char *status = jstr(task, "status");
	if (status && strcmp(status, "withdrawn") == 0)
		return; /* withdrawn tasks are not work to complete */
#define BUMP(k) json_object_set_new(g, k, json_integer(json_integer_value(json_object_get(g, k)) + 1))
	BUMP("tasks");
	if (status && strcmp(status, "closed") == 0)
		BUMP("closed");
	if (json_is_true(json_object_get(task, "overdue")))
		BUMP("overdue");
	const char *w = jstr(task, "warning");
	if (w && strcmp(w, "none") != 0)
		BUMP(w);
	if (json_is_true(json_object_get(task, "stale")))
		BUMP("stale");
	if (json_is_true(json_object_get(task, "behind")))
		BUMP("behind");
#undef BUMP
}

/* Turns the keyed groups into an array with completion rates (percent,
 * one decimal, as an integer of tenths to keep JSON free of floats). */
static json_t *groups_array(json_t *groups)
{
	json_t *arr = json_array(), *g;
	const char *k;
	json_object_foreach(groups, k, g)
	{
		json_int_t tasks = json_integer_value(json_object_get(g, "tasks"));
		json_int_t closed = json_integer_value(json_object_get(g, "closed"));
		json_object_set_new(g, "completion_permille",
				    json_integer(tasks ? (closed * 1000 + tasks / 2) / tasks : 0));
		json_array_append(arr, g);
	}
	return arr;
}

int views_report(struct db *db, json_t **out)
{
	struct views_task_filter f = {NULL, NULL, NULL, -1, NULL};
	json_t *tasks = NULL;
	char today[CLOCK_DATE_LEN + 1];
	int err = views_task_list(db, &f, &tasks);
	if (!err)
		err = clock_today(today);
	if (err) {
		json_decref(tasks);
		return err;
	}
	json_t *by_village = json_object(), *by_source = json_object(), *all = json_object();
	size_t i;
	json_t *t;
	json_array_foreach(tasks, i, t)
	{
		const char *vid = jstr(t, "village_id"), *vname = jstr(t, "village");
		const char *src = jstr(t, "source");
		group_add(by_village, vid ? vid : "", vname ? vname : (vid ? vid : ""), t);
		group_add(by_source, src ? src : "", rules_source_label(src), t);
		group_add(all, "all", "合计", t);
	}
	json_t *r = json_object();
	json_object_set_new(r, "today", json_string(today));
	json_object_set_new(r, "by_village", groups_array(by_village));
	json_object_set_new(r, "by_source", groups_array(by_source));
	json_t *tarr = groups_array(all);
	json_t *total = json_array_size(tarr) ? json_incref(json_array_get(tarr, 0))
					      : json_pack("{s:s, s:s, s:i, s:i, s:i}", "key", "all",
							  "label", "合计", "tasks", 0, "closed", 0,
							  "completion_permille", 0);
	json_object_set_new(r, "total", total);
	json_decref(tarr);
	json_decref(by_village);
	json_decref(by_source);
	json_decref(all);
	json_decref(tasks);
	*out = r;
	return TLY_OK;
}

int views_status(struct db *db, json_t **out)
{
	const struct db_site *s = db_site(db);
	struct store_outbox_stats ob;
	char when[20] = "";
	int err = store_outbox_stats(db, &ob);
	if (err)
		return err;
	json_t *o = json_object();
	json_object_set_new(o, "site", json_string(s->site_id));
	json_object_set_new(o, "role", json_string(s->role));
	json_object_set_new(o, "name", json_string(s->name));
	json_object_set_new(o, "village_id", s->village_id ? json_string(s->village_id) : json_null());
	json_object_set_new(o, "last_seq", json_integer((json_int_t)ob.last_seq));
	json_object_set_new(o, "acked_seq", json_integer((json_int_t)ob.acked_seq));
	json_object_set_new(o, "pending", json_integer((json_int_t)ob.pending));
	json_object_set_new(o, "rejected", json_integer((json_int_t)ob.rejected));
	if (ob.pending)
		views_format_ms(ob.oldest_ms, when);
	json_object_set_new(o, "oldest_pending", ob.pending ? json_string(when) : json_null());
	json_object_set_new(o, "oldest_pending_ms", ob.pending ? json_integer(ob.oldest_ms) : json_null());
	json_t *sync = NULL;
	err = syncstate_json(db, &sync);
	json_object_set_new(o, "sync", sync ? sync : json_null());
	json_t *rej = json_array();
	if (!err)
		err = rows_json(db,
				"SELECT seq, kind, record_id AS record, reject_code AS code, "
				"reject_reason AS reason FROM change_log WHERE site = ? AND "
				"state = 'rejected' ORDER BY seq",
				s->site_id, NULL, rej);
	json_object_set_new(o, "rejected_changes", rej);
	if (err) {
		json_decref(o);
		return err;
	}
	*out = o;
	return TLY_OK;
}
