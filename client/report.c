/*
 * report — the consolidated status, read from one snapshot (see report.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/clock.h"
#include "client/report.h"
#include "client/rules.h"
#include "client/why.h"
#include "protocol/error.h"

/* ---- string arena: the report's strings live in a few large blocks ---- */

#define ARENA_BLOCK (256 * 1024)

struct arena_block {
	struct arena_block *next;
	size_t used, cap;
	char data[];
};

static char *arena_alloc(struct arena_block **head, size_t n)
{
	struct arena_block *b = *head;
	if (!b || b->cap - b->used < n) {
		size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
		b = malloc(sizeof *b + cap);
		if (!b)
			return NULL;
		b->next = *head;
		b->used = 0;
		b->cap = cap;
		*head = b;
	}
	char *p = b->data + b->used;
	b->used += n;
	return p;
}

/* Gives back the unused tail of the last allocation of size n. */
static void arena_shrink(struct arena_block *b, size_t n, size_t kept)
{
	b->used -= n - kept;
}

static void arena_free(struct arena_block *b)
{
	while (b) {
		struct arena_block *next = b->next;
		free(b);
		b = next;
	}
}

/* ---- the report ---- */

/* The five sources, in the order reports list them. */
static const char *const source_codes[] = {"inspection", "patrol", "audit", "supervision",
					   "self_check"};
#define NSOURCES (sizeof source_codes / sizeof source_codes[0])

struct report {
	struct arena_block *arena;
	char today[CLOCK_DATE_LEN + 1];
	int64_t today_days;
	int64_t generated_ms;
	struct views_settings settings;
	int64_t silent_days;
	const char *site_name;

	struct report_group *villages; /* sorted by label, key */
	size_t nvillages, villages_cap;
	struct report_group *sources;
	size_t nsources, sources_cap;
	struct report_group total;

	struct report_row *rows;
	size_t nrows, rows_cap;
};

/* An arena copy of s made clean UTF-8 ("" for NULL). */
static const char *dup_clean(struct report *r, const char *s)
{
	if (!s || !*s)
		return "";
	size_t n = strlen(s), cap = 3 * n + 1; /* each bad byte may become 3 */
	char *p = arena_alloc(&r->arena, cap);
	if (!p)
		return NULL;
	report_utf8_clean(s, p, cap);
	arena_shrink(r->arena, cap, strlen(p) + 1);
	return p;
}

static const char *col_dup(struct report *r, sqlite3_stmt *st, int i, int *nomem)
{
	const char *v = dup_clean(r, (const char *)sqlite3_column_text(st, i));
	if (!v)
		*nomem = 1;
	return v ? v : "";
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return TLY_OK;
	size_t ncap = *cap ? *cap * 2 : 64;
	void *p = realloc(*arr, ncap * elem);
	if (!p)
		return TLY_E_NOMEM;
	*arr = p;
	*cap = ncap;
	return TLY_OK;
}

static int group_cmp(const void *a, const void *b)
{
	const struct report_group *x = a, *y = b;
	int c = strcmp(x->label, y->label);
	return c ? c : strcmp(x->key, y->key);
}

/* Village groups are few (hundreds): a linear search per new village id
 * is fine because rows come ordered by village, so the last hit is cached. */
static struct report_group *village_find(struct report *r, const char *id)
{
	for (size_t i = 0; i < r->nvillages; i++) {
		if (strcmp(r->villages[i].key, id) == 0)
			return &r->villages[i];
	}
	return NULL;
}

static int village_add(struct report *r, const char *id, const char *name, int64_t sync_ms)
{
	int err = grow((void **)&r->villages, &r->villages_cap, r->nvillages, sizeof *r->villages);
	if (err)
		return err;
	struct report_group *g = &r->villages[r->nvillages];
	memset(g, 0, sizeof *g);
	g->key = dup_clean(r, id);
	g->label = dup_clean(r, name && *name ? name : id);
	if (!g->key || !g->label)
		return TLY_E_NOMEM;
	g->is_village = 1;
	g->last_sync_ms = sync_ms;
	r->nvillages++;
	return TLY_OK;
}

static int source_add(struct report *r, const char *code)
{
	int err = grow((void **)&r->sources, &r->sources_cap, r->nsources, sizeof *r->sources);
	if (err)
		return err;
	struct report_group *g = &r->sources[r->nsources];
	memset(g, 0, sizeof *g);
	g->key = dup_clean(r, code);
	g->label = dup_clean(r, *code ? rules_source_label(code) : "（未知来源）");
	if (!g->key || !g->label)
		return TLY_E_NOMEM;
	r->nsources++;
	return TLY_OK;
}

static struct report_group *source_find(struct report *r, const char *code)
{
	for (size_t i = 0; i < r->nsources; i++) {
		if (strcmp(r->sources[i].key, code) == 0)
			return &r->sources[i];
	}
	return NULL;
}

static void counts_add(struct report_counts *n, const struct report_row *row)
{
	const char *s = row->status;
	/* Withdrawn tasks are not work to complete: counted apart, never in tasks. */
	if (strcmp(s, "withdrawn") != 0)
		n->tasks++;
	if (strcmp(s, "closed") == 0)
		n->closed++;
	else if (strcmp(s, "submitted") == 0)
		n->submitted++;
	else if (strcmp(s, "doing") == 0)
		n->doing++;
	else if (strcmp(s, "todo") == 0)
		n->todo++;
	else if (strcmp(s, "long_term") == 0)
		n->long_term++;
	else if (strcmp(s, "withdrawn") == 0)
		n->withdrawn++;
	n->overdue += row->flags.overdue;
	if (strcmp(row->flags.warning, "red") == 0)
		n->red++;
	else if (strcmp(row->flags.warning, "yellow") == 0)
		n->yellow++;
	else if (strcmp(row->flags.warning, "blue") == 0)
		n->blue++;
	n->stale += row->flags.stale;
	n->behind += row->flags.behind;
}

int64_t report_rate_permille(const struct report_counts *c)
{
	/* Rounded half up: 1 of 6 closed reads 16.7 %, as a person would say. */
	return c->tasks > 0 ? (c->closed * 1000 + c->tasks / 2) / c->tasks : -1;
}

/* Last contact of each village: the township's devices, or this device's
 * own last successful sync. */
static int load_villages(struct report *r, struct db *db, const char *own_village)
{
	sqlite3_stmt *st;
	int rc, err = db_stmt(db,
			      "SELECT v.id, v.name, (SELECT max(d.last_contact_ms) FROM srv_device d "
			      "WHERE d.village = v.id) FROM village v WHERE ?1 IS NULL OR v.id = ?1",
			      &st);
	if (err)
		return err;
	if (own_village)
		sqlite3_bind_text(st, 1, own_village, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		err = village_add(r, (const char *)sqlite3_column_text(st, 0),
				  (const char *)sqlite3_column_text(st, 1), sqlite3_column_int64(st, 2));
		if (err)
			break;
	}
	sqlite3_reset(st);
	if (err)
		return err;
	if (rc != SQLITE_DONE)
		return db_err(db, rc);
	if (!own_village)
		return TLY_OK;
	if (!village_find(r, own_village)) {
		err = village_add(r, own_village, NULL, 0);
		if (err)
			return err;
	}
	err = db_stmt(db, "SELECT last_success_ms FROM sync_state", &st);
	if (err)
		return err;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		village_find(r, own_village)->last_sync_ms = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? TLY_OK : db_err(db, rc);
}

/*
 * The ledger query. The latest progress entry is the last in merge order
 * (stamp, then site), as views.c and docs/client.md define a task's
 * percent; stale counts from the latest entry date, as views does, so
 * `tally task list` and the report agree.
 *
 * CROSS JOIN fixes the join order: left to itself SQLite 3.40 drives the
 * latest-entry subquery from record_base (every progress entry, for
 * every task: minutes at 50,000 tasks) instead of from the task's few
 * entries through progress_task.
 */
#define LEDGER_SQL                                                                             \
	"SELECT t.id, t.village, v.name, t.problem, p.source, p.round, p.doc_no, p.category, "   \
	"p.text, p.manifestations, t.measures, t.target, t.root_cause, t.elsewhere, t.leader, "   \
	"t.owner, t.deadline, t.status, t.created_on, lp.id, lp.percent, lp.date, lp.note, "      \
	"(SELECT max(pr.date) FROM progress pr WHERE pr.task = t.id) "                           \
	"FROM task t LEFT JOIN village v ON v.id = t.village "                                    \
	"LEFT JOIN problem p ON p.id = t.problem "                                                \
	"LEFT JOIN progress lp ON lp.id = (SELECT pr.id FROM progress pr CROSS JOIN record_base " \
	"  f ON f.kind = 'progress' AND f.record_id = pr.id "                                      \
	"  WHERE pr.task = t.id ORDER BY f.stamp DESC, f.site DESC LIMIT 1) "                      \
	"WHERE ?1 IS NULL OR t.village = ?1 "                                                      \
	"ORDER BY v.name, t.village, t.deadline, t.id"

static int load_rows(struct report *r, struct db *db, const char *own_village)
{
	sqlite3_stmt *st;
	int rc, err = db_stmt(db, LEDGER_SQL, &st), nomem = 0;
	struct report_group *last_village = NULL;
	if (err)
		return err;
	if (own_village)
		sqlite3_bind_text(st, 1, own_village, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		err = grow((void **)&r->rows, &r->rows_cap, r->nrows, sizeof *r->rows);
		if (err)
			break;
		struct report_row *w = &r->rows[r->nrows];
		memset(w, 0, sizeof *w);
		w->id = col_dup(r, st, 0, &nomem);
		w->village_id = col_dup(r, st, 1, &nomem);
		w->village = col_dup(r, st, 2, &nomem);
		w->problem = col_dup(r, st, 3, &nomem);
		w->source = col_dup(r, st, 4, &nomem);
		w->round = col_dup(r, st, 5, &nomem);
		w->doc_no = col_dup(r, st, 6, &nomem);
		w->category = col_dup(r, st, 7, &nomem);
		w->problem_text = col_dup(r, st, 8, &nomem);
		w->manifestations = col_dup(r, st, 9, &nomem);
		w->measures = col_dup(r, st, 10, &nomem);
		w->target = col_dup(r, st, 11, &nomem);
		w->root_cause = col_dup(r, st, 12, &nomem);
		w->elsewhere = col_dup(r, st, 13, &nomem);
		w->leader = col_dup(r, st, 14, &nomem);
		w->owner = col_dup(r, st, 15, &nomem);
		w->deadline = col_dup(r, st, 16, &nomem);
		w->status = col_dup(r, st, 17, &nomem);
		w->created_on = col_dup(r, st, 18, &nomem);
		w->has_latest = sqlite3_column_type(st, 19) != SQLITE_NULL;
		w->progress = w->has_latest ? sqlite3_column_int64(st, 20) : 0;
		w->latest_date = col_dup(r, st, 21, &nomem);
		w->latest_note = col_dup(r, st, 22, &nomem);
		w->last_progress_date = col_dup(r, st, 23, &nomem);
		if (nomem) {
			err = TLY_E_NOMEM;
			break;
		}
		w->status_label = *w->status ? rules_status_label(w->status) : "";
		w->source_label = *w->source ? rules_source_label(w->source) : "";
		views_task_flags(&r->settings, r->today, w->status, w->deadline,
				 *w->created_on ? w->created_on : NULL,
				 *w->last_progress_date ? w->last_progress_date : NULL, w->progress,
				 &w->flags);

		/* A task whose village record has not arrived yet still counts. */
		if (!last_village || strcmp(last_village->key, w->village_id) != 0) {
			last_village = village_find(r, w->village_id);
			if (!last_village) {
				err = village_add(r, w->village_id, w->village, 0);
				if (err)
					break;
				last_village = &r->villages[r->nvillages - 1];
			}
		}
		counts_add(&last_village->n, w);
		struct report_group *sg = source_find(r, w->source);
		if (!sg) {
			err = source_add(r, w->source);
			if (err)
				break;
			sg = &r->sources[r->nsources - 1];
		}
		counts_add(&sg->n, w);
		counts_add(&r->total.n, w);
		r->nrows++;
	}
	sqlite3_reset(st);
	if (err)
		return err;
	return rc == SQLITE_DONE ? TLY_OK : db_err(db, rc);
}

/* Silence is counted in calendar days, against "today" (TALLY_TODAY in
 * tests), so a report run on Monday flags the same villages all day. */
static void mark_silent(struct report *r)
{
	for (size_t i = 0; i < r->nvillages; i++) {
		struct report_group *g = &r->villages[i];
		char d[CLOCK_DATE_LEN + 1];
		int64_t days;
		if (g->last_sync_ms <= 0) {
			g->silent = 1;
			continue;
		}
		clock_ms_date(g->last_sync_ms, d);
		g->silent = clock_date_days(d, &days) != TLY_OK || r->today_days - days >= r->silent_days;
	}
}

int report_build(struct db *db, const struct report_options *o, struct report **out)
{
	struct report *r = calloc(1, sizeof *r);
	const struct db_site *site = db_site(db);
	const char *own = NULL;
	int err = TLY_OK, in_txn = 0;

	*out = NULL;
	if (!r)
		return TLY_E_NOMEM;
	err = clock_today(r->today);
	if (!err)
		err = clock_date_days(r->today, &r->today_days);
	if (err)
		goto out;
	r->generated_ms = clock_device_ms();
	r->silent_days = o && o->silent_days > 0 ? o->silent_days : REPORT_SILENT_DAYS_DEFAULT;
	r->total.key = "all";
	r->total.label = "合计";
	if (site && strcmp(site->role, "village") == 0 && site->village_id)
		own = site->village_id;
	r->site_name = dup_clean(r, site ? site->name : "");
	if (!r->site_name) {
		err = TLY_E_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < NSOURCES && !err; i++)
		err = source_add(r, source_codes[i]);
	if (err)
		goto out;

	/* One deferred read transaction: the settings, villages, sync times
	 * and every task come from the same snapshot of the WAL, so a commit
	 * by tallyd half-way through cannot make the totals disagree with the
	 * rows. Deferred, not IMMEDIATE: a reader must not block the writer. */
	err = db_exec(db, "BEGIN");
	if (err)
		goto out;
	in_txn = 1;
	views_settings_load(db, &r->settings);
	if (o && o->stale_days > 0)
		r->settings.stale_days = o->stale_days;
	err = load_villages(r, db, own);
	if (!err)
		err = load_rows(r, db, own);
	if (err)
		goto out;
	err = db_exec(db, "COMMIT");
	if (err)
		goto out;
	in_txn = 0;

	qsort(r->villages, r->nvillages, sizeof *r->villages, group_cmp);
	/* Rows point at their village's freshness; the sort above moved the
	 * groups, so the links are made only now. */
	{
		const struct report_group *cur = NULL;
		for (size_t i = 0; i < r->nrows; i++) {
			struct report_row *w = &r->rows[i];
			if (!cur || strcmp(cur->key, w->village_id) != 0) {
				cur = NULL;
				for (size_t j = 0; j < r->nvillages; j++) {
					if (strcmp(r->villages[j].key, w->village_id) == 0) {
						cur = &r->villages[j];
						break;
					}
				}
			}
			w->village_group = cur;
		}
	}
	mark_silent(r);
out:
	if (in_txn)
		db_exec(db, "ROLLBACK");
	if (err) {
		report_free(r);
		return err;
	}
	*out = r;
	return TLY_OK;
}

void report_free(struct report *r)
{
	if (!r)
		return;
	arena_free(r->arena);
	free(r->villages);
	free(r->sources);
	free(r->rows);
	free(r);
}

const char *report_today(const struct report *r) { return r->today; }
int64_t report_generated_ms(const struct report *r) { return r->generated_ms; }
const struct views_settings *report_settings(const struct report *r) { return &r->settings; }
int64_t report_silent_days(const struct report *r) { return r->silent_days; }
const char *report_site_name(const struct report *r) { return r->site_name; }

const struct report_group *report_groups(const struct report *r, unsigned part, size_t *n)
{
	if (part == REPORT_PART_VILLAGE) {
		*n = r->nvillages;
		return r->villages;
	}
	*n = r->nsources;
	return r->sources;
}

const struct report_group *report_total(const struct report *r) { return &r->total; }

const struct report_row *report_rows(const struct report *r, size_t *n)
{
	*n = r->nrows;
	return r->rows;
}

/* ---- columns ---- */

/* Summary columns after the first; the village table has the last two
 * as well (a source has no sync time). */
#define SUMMARY_COUNT_COLS                                                                     \
	{"tasks", "任务数(不含已撤销)", 12, 1}, {"closed", "已销号", 8, 1}, {"submitted", "申请销号", 9, 1},   \
		{"doing", "整改中", 8, 1}, {"todo", "待整改", 8, 1}, {"long_term", "长期坚持", 9, 1}, \
		{"withdrawn", "已撤销", 8, 1}, {"overdue", "逾期", 6, 1},                            \
		{"completion_permille", "完成率(%)", 10, 1}, {"red", "红色预警", 9, 1},              \
		{"yellow", "黄色预警", 9, 1}, {"blue", "蓝色预警", 9, 1}, {"stale", "久未更新", 9, 1}, \
		{"behind", "进度滞后", 9, 1}

static const struct report_col village_cols[] = {
	{"label", "村", 14, 1},
	SUMMARY_COUNT_COLS,
	{"last_sync", "最后同步时间", 19, 1},
	{"silent", "久未同步", 9, 1},
};
static const struct report_col source_cols[] = {
	{"label", "问题来源", 14, 1},
	SUMMARY_COUNT_COLS,
};

static const struct report_col ledger_cols[] = {
	{"id", "任务编号", 18, 1},
	{"village", "村", 12, 1},
	{"source", "问题来源", 9, 1},
	{"round", "轮次", 10, 0},
	{"doc_no", "文号", 14, 0},
	{"category", "问题类别", 12, 0},
	{"problem_text", "问题原文", 40, 0},
	{"manifestations", "具体表现", 30, 0},
	{"measures", "整改措施", 40, 1},
	{"target", "整改目标", 24, 0},
	{"root_cause", "问题根源", 24, 0},
	{"elsewhere", "举一反三", 24, 0},
	{"leader", "责任领导", 10, 0},
	{"owner", "责任人", 10, 1},
	{"deadline", "完成时限", 12, 1},
	{"status", "状态", 10, 1},
	{"progress", "完成进度(%)", 11, 1},
	{"latest_date", "最新进展日期", 13, 1},
	{"latest_note", "最新进展", 40, 0},
	{"warning", "预警", 8, 1},
	{"overdue", "逾期", 6, 1},
	{"days_left", "剩余天数", 9, 0},
	{"stale", "久未更新", 9, 1},
	{"behind", "进度滞后", 9, 1},
	{"created_on", "建立日期", 12, 0},
	{"village_last_sync", "村数据最后同步", 19, 0},
	{"village_silent", "村久未同步", 10, 0},
};
#define NLEDGER (sizeof ledger_cols / sizeof ledger_cols[0])

const struct report_col *report_cols(unsigned part, size_t *n)
{
	if (part == REPORT_PART_LEDGER) {
		*n = NLEDGER;
		return ledger_cols;
	}
	if (part == REPORT_PART_VILLAGE) {
		*n = sizeof village_cols / sizeof village_cols[0];
		return village_cols;
	}
	*n = sizeof source_cols / sizeof source_cols[0];
	return source_cols;
}

const char *report_part_title(unsigned part)
{
	return part == REPORT_PART_VILLAGE  ? "按村汇总"
	       : part == REPORT_PART_SOURCE ? "按问题来源汇总"
					    : "整改台账";
}

static void cell_text(struct report_cell *c, const char *s)
{
	c->type = s && *s ? REPORT_CELL_TEXT : REPORT_CELL_EMPTY;
	c->text = s ? s : "";
}

static void cell_num(struct report_cell *c, enum report_cell_type t, int64_t v)
{
	c->type = t;
	c->num = v;
}

void report_group_cell(const struct report_group *g, unsigned part, size_t col,
		       struct report_cell *out)
{
	const struct report_counts *n = &g->n;
	int64_t vals[] = {0,          n->tasks,     n->closed, n->submitted, n->doing,
			  n->todo,    n->long_term, n->withdrawn, n->overdue, 0,
			  n->red,     n->yellow,    n->blue,   n->stale,     n->behind};
	memset(out, 0, sizeof *out);
	out->text = "";
	if (col == 0) {
		cell_text(out, g->label);
	} else if (col == 9) {
		int64_t p = report_rate_permille(n);
		if (p >= 0)
			cell_num(out, REPORT_CELL_PERMILLE, p);
	} else if (col < sizeof vals / sizeof vals[0]) {
		cell_num(out, REPORT_CELL_INT, vals[col]);
	} else if (part == REPORT_PART_VILLAGE && g->is_village && col == 15) {
		if (g->last_sync_ms > 0)
			cell_num(out, REPORT_CELL_DATETIME, g->last_sync_ms);
	} else if (part == REPORT_PART_VILLAGE && g->is_village && col == 16) {
		cell_num(out, REPORT_CELL_BOOL, g->silent);
	}
}

void report_row_cell(const struct report_row *w, size_t col, struct report_cell *out)
{
	memset(out, 0, sizeof *out);
	out->text = "";
	switch (col) {
	case 0: cell_text(out, w->id); break;
	case 1: cell_text(out, *w->village ? w->village : w->village_id); break;
	case 2: cell_text(out, w->source_label); break;
	case 3: cell_text(out, w->round); break;
	case 4: cell_text(out, w->doc_no); break;
	case 5: cell_text(out, w->category); break;
	case 6: cell_text(out, w->problem_text); break;
	case 7: cell_text(out, w->manifestations); break;
	case 8: cell_text(out, w->measures); break;
	case 9: cell_text(out, w->target); break;
	case 10: cell_text(out, w->root_cause); break;
	case 11: cell_text(out, w->elsewhere); break;
	case 12: cell_text(out, w->leader); break;
	case 13: cell_text(out, w->owner); break;
	case 14:
		cell_text(out, w->deadline);
		if (out->type == REPORT_CELL_TEXT)
			out->type = REPORT_CELL_DATE;
		break;
	case 15: cell_text(out, w->status_label); break;
	case 16: cell_num(out, REPORT_CELL_INT, w->progress); break;
	case 17:
		cell_text(out, w->has_latest ? w->latest_date : "");
		if (out->type == REPORT_CELL_TEXT)
			out->type = REPORT_CELL_DATE;
		break;
	case 18: cell_text(out, w->has_latest ? w->latest_note : ""); break;
	case 19:
		out->type = REPORT_CELL_WARNING;
		out->text = w->flags.warning;
		break;
	case 20: cell_num(out, REPORT_CELL_BOOL, w->flags.overdue); break;
	case 21:
		/* Days left mean something only for active tasks with a deadline. */
		if (w->flags.active && clock_check_date(w->deadline) == TLY_OK)
			cell_num(out, REPORT_CELL_INT, w->flags.days_left);
		break;
	case 22: cell_num(out, REPORT_CELL_BOOL, w->flags.stale); break;
	case 23: cell_num(out, REPORT_CELL_BOOL, w->flags.behind); break;
	case 24:
		cell_text(out, w->created_on);
		if (out->type == REPORT_CELL_TEXT)
			out->type = REPORT_CELL_DATE;
		break;
	case 25:
		if (w->village_group && w->village_group->last_sync_ms > 0)
			cell_num(out, REPORT_CELL_DATETIME, w->village_group->last_sync_ms);
		break;
	case 26: cell_num(out, REPORT_CELL_BOOL, w->village_group ? w->village_group->silent : 1); break;
	default: break;
	}
}

static const char *warning_zh(const char *w)
{
	if (strcmp(w, "red") == 0)
		return "红色";
	if (strcmp(w, "yellow") == 0)
		return "黄色";
	if (strcmp(w, "blue") == 0)
		return "蓝色";
	return "无";
}

/* Copies s into out, cutting at a UTF-8 character boundary. */
static const char *copy_cut(const char *s, char *out, size_t cap)
{
	size_t n = strlen(s);
	if (cap == 0)
		return out;
	if (n >= cap) {
		n = cap - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(out, s, n);
	out[n] = '\0';
	return out;
}

const char *report_cell_text(const struct report_cell *c, char *out, size_t cap)
{
	char tmp[32];
	switch (c->type) {
	case REPORT_CELL_TEXT:
	case REPORT_CELL_DATE:
		return copy_cut(c->text, out, cap);
	case REPORT_CELL_INT:
		snprintf(tmp, sizeof tmp, "%lld", (long long)c->num);
		return copy_cut(tmp, out, cap);
	case REPORT_CELL_DATETIME: {
		char when[20];
		views_format_ms(c->num, when);
		return copy_cut(when, out, cap);
	}
	case REPORT_CELL_BOOL:
		return copy_cut(c->num ? "是" : "否", out, cap);
	case REPORT_CELL_PERMILLE:
		snprintf(tmp, sizeof tmp, "%lld.%lld", (long long)(c->num / 10),
			 (long long)(c->num % 10));
		return copy_cut(tmp, out, cap);
	case REPORT_CELL_WARNING:
		return copy_cut(warning_zh(c->text), out, cap);
	case REPORT_CELL_EMPTY:
	default:
		return copy_cut("", out, cap);
	}
}

/* ---- JSON ---- */

static json_t *cell_json(const struct report_cell *c)
{
	switch (c->type) {
	case REPORT_CELL_TEXT:
	case REPORT_CELL_DATE:
	case REPORT_CELL_WARNING:
		return json_string(c->text);
	case REPORT_CELL_INT:
	case REPORT_CELL_PERMILLE:
		return json_integer((json_int_t)c->num);
	case REPORT_CELL_BOOL:
		return json_boolean(c->num);
	case REPORT_CELL_DATETIME: {
		char when[20];
		views_format_ms(c->num, when);
		return json_string(when);
	}
	case REPORT_CELL_EMPTY:
	default:
		return json_null();
	}
}

static json_t *group_json(const struct report_group *g, unsigned part)
{
	size_t ncols;
	const struct report_col *cols = report_cols(part, &ncols);
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "key", json_string(g->key));
	for (size_t i = 0; i < ncols; i++) {
		struct report_cell c;
		report_group_cell(g, part, i, &c);
		json_object_set_new(o, cols[i].key, cell_json(&c));
	}
	if (part == REPORT_PART_VILLAGE && g->is_village)
		json_object_set_new(o, "last_sync_ms",
				    g->last_sync_ms > 0 ? json_integer(g->last_sync_ms) : json_null());
	return o;
}

json_t *report_json(const struct report *r, unsigned parts)
{
	json_t *o = json_object();
	char when[20];
	if (!o)
		return NULL;
	views_format_ms(r->generated_ms, when);
	json_object_set_new(o, "today", json_string(r->today));
	json_object_set_new(o, "generated_at", json_string(when));
	json_object_set_new(o, "site", json_string(r->site_name));
	json_object_set_new(o, "settings",
			    json_pack("{s:I, s:I, s:I, s:I, s:I}", "warn_yellow_days",
				      (json_int_t)r->settings.yellow_days, "warn_blue_days",
				      (json_int_t)r->settings.blue_days, "stale_days",
				      (json_int_t)r->settings.stale_days, "behind_points",
				      (json_int_t)r->settings.behind_points, "silent_days",
				      (json_int_t)r->silent_days));
	static const unsigned summary_parts[] = {REPORT_PART_VILLAGE, REPORT_PART_SOURCE};
	static const char *const summary_keys[] = {"by_village", "by_source"};
	for (size_t p = 0; p < 2; p++) {
		if (!(parts & summary_parts[p]))
			continue;
		size_t n;
		const struct report_group *g = report_groups(r, summary_parts[p], &n);
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, group_json(&g[i], summary_parts[p]));
		json_object_set_new(o, summary_keys[p], arr);
	}
	json_object_set_new(o, "total", group_json(&r->total, REPORT_PART_SOURCE));
	if (parts & REPORT_PART_LEDGER) {
		json_t *arr = json_array();
		for (size_t i = 0; i < r->nrows; i++) {
			json_t *row = json_object();
			const struct report_row *w = &r->rows[i];
			for (size_t c = 0; c < NLEDGER; c++) {
				struct report_cell cell;
				report_row_cell(w, c, &cell);
				json_object_set_new(row, ledger_cols[c].key, cell_json(&cell));
			}
			/* Codes next to the Chinese labels, for programs. */
			json_object_set_new(row, "village_id", json_string(w->village_id));
			json_object_set_new(row, "problem", json_string(w->problem));
			json_object_set_new(row, "source_code", json_string(w->source));
			json_object_set_new(row, "status_code", json_string(w->status));
			json_array_append_new(arr, row);
		}
		json_object_set_new(o, "ledger", arr);
	}
	return o;
}

/* ---- text tables ---- */

/* One code point from s (advancing it); invalid bytes come back as -1. */
static long utf8_next(const unsigned char **s)
{
	const unsigned char *p = *s;
	long cp;
	int n;
	if (p[0] < 0x80) {
		*s = p + 1;
		return p[0];
	}
	if (p[0] >= 0xC2 && p[0] <= 0xDF) {
		n = 1;
		cp = p[0] & 0x1F;
	} else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
		n = 2;
		cp = p[0] & 0x0F;
	} else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
		n = 3;
		cp = p[0] & 0x07;
	} else {
		*s = p + 1;
		return -1;
	}
	for (int i = 1; i <= n; i++) {
		if ((p[i] & 0xC0) != 0x80) {
			*s = p + 1;
			return -1;
		}
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are invalid. */
	if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF)) {
		*s = p + 1;
		return -1;
	}
	*s = p + n + 1;
	return cp;
}

/* East Asian Wide (W) and Fullwidth (F) ranges of Unicode's
 * EastAsianWidth.txt, merged where adjacent: enough for Chinese text,
 * fullwidth punctuation, CJK extensions and emoji. */
static int cp_width(long cp)
{
	static const long wide[][2] = {
		{0x1100, 0x115F},   {0x231A, 0x231B},   {0x2329, 0x232A},   {0x23E9, 0x23EC},
		{0x2E80, 0x303E},   {0x3041, 0x33FF},   {0x3400, 0x4DBF},   {0x4E00, 0x9FFF},
		{0xA000, 0xA4CF},   {0xA960, 0xA97F},   {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},
		{0xFE10, 0xFE19},   {0xFE30, 0xFE6F},   {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},
		{0x1F300, 0x1F64F}, {0x1F900, 0x1F9FF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
	};
	if (cp < 0)
		return 1;
	if (cp == 0 || (cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x200B && cp <= 0x200F) ||
	    (cp >= 0xFE00 && cp <= 0xFE0F))
		return 0;
	for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++) {
		if (cp >= wide[i][0] && cp <= wide[i][1])
			return 2;
	}
	return 1;
}

size_t report_display_width(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t w = 0;
	while (*p)
		w += (size_t)cp_width(utf8_next(&p));
	return w;
}

size_t report_utf8_clean(const char *s, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t used = 0, bad = 0;
	if (cap == 0)
		return 0;
	while (*p) {
		const unsigned char *start = p;
		long cp = utf8_next(&p);
		const char *src = (const char *)start;
		size_t n = (size_t)(p - start);
		/* XML 1.0 allows tab, LF and CR only among the C0 controls. */
		if (cp < 0 || (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') ||
		    cp == 0xFFFE || cp == 0xFFFF) {
			src = "\xEF\xBF\xBD";
			n = 3;
			bad++;
		}
		if (used + n >= cap)
			break;
		memcpy(out + used, src, n);
		used += n;
	}
	out[used] = '\0';
	return bad;
}

/* Writes s padded with spaces to width display columns, cut with … when longer. */
static void put_padded(FILE *f, const char *s, size_t width, int right)
{
	size_t w = report_display_width(s);
	if (w > width) {
		const unsigned char *p = (const unsigned char *)s;
		size_t used = 0;
		while (*p) {
			const unsigned char *start = p;
			int cw = cp_width(utf8_next(&p));
			if (used + (size_t)cw > width - 1) {
				p = start;
				break;
			}
			used += (size_t)cw;
		}
		fwrite(s, 1, (size_t)((const char *)p - s), f);
		fputs("…", f);
		for (size_t i = used + 1; i < width; i++)
			fputc(' ', f);
		return;
	}
	if (right)
		for (size_t i = w; i < width; i++)
			fputc(' ', f);
	fputs(s, f);
	if (!right)
		for (size_t i = w; i < width; i++)
			fputc(' ', f);
}

#define TEXT_COL_MAX 24 /* the widest a text column gets on a terminal */
#define CELL_CAP 4096

struct text_table {
	const struct report *r;
	unsigned part;
	const struct report_col *cols;
	size_t ncols;
	size_t nrows; /* data rows; summaries add the total */
};

static void text_cell(const struct text_table *t, size_t row, size_t col, char *buf)
{
	struct report_cell c;
	if (t->part == REPORT_PART_LEDGER) {
		report_row_cell(&t->r->rows[row], col, &c);
	} else {
		size_t n;
		const struct report_group *g = report_groups(t->r, t->part, &n);
		report_group_cell(row < n ? &g[row] : &t->r->total, t->part, col, &c);
	}
	report_cell_text(&c, buf, CELL_CAP);
	/* Line breaks inside a cell would break the table's rows. */
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
}

static int text_table_write(const struct report *r, unsigned part, FILE *f)
{
	struct text_table t = {r, part, NULL, 0, 0};
	size_t widths[32] = {0};
	char *buf = malloc(CELL_CAP);
	if (!buf)
		return TLY_E_NOMEM;
	t.cols = report_cols(part, &t.ncols);
	if (part == REPORT_PART_LEDGER)
		t.nrows = r->nrows;
	else
		report_groups(r, part, &t.nrows), t.nrows++;
	for (size_t c = 0; c < t.ncols; c++) {
		if (!t.cols[c].text_table)
			continue;
		widths[c] = report_display_width(t.cols[c].zh);
		for (size_t i = 0; i < t.nrows; i++) {
			text_cell(&t, i, c, buf);
			size_t w = report_display_width(buf);
			if (w > widths[c])
				widths[c] = w;
		}
		if (widths[c] > TEXT_COL_MAX)
			widths[c] = TEXT_COL_MAX;
	}
	fprintf(f, "%s\n", report_part_title(part));
	for (size_t c = 0; c < t.ncols; c++) {
		if (t.cols[c].text_table) {
			put_padded(f, t.cols[c].zh, widths[c], 0);
			fputs("  ", f);
		}
	}
	fputc('\n', f);
	for (size_t i = 0; i < t.nrows; i++) {
		for (size_t c = 0; c < t.ncols; c++) {
			if (!t.cols[c].text_table)
				continue;
			text_cell(&t, i, c, buf);
			put_padded(f, buf, widths[c], c > 0 && part != REPORT_PART_LEDGER);
			fputs("  ", f);
		}
		fputc('\n', f);
	}
	fputc('\n', f);
	free(buf);
	return ferror(f) ? TLY_E_IO : TLY_OK;
}

int report_text_write(const struct report *r, unsigned parts, FILE *f)
{
	int err = TLY_OK;
	fprintf(f, "整改完成情况汇总（%s，截至 %s；完成率 = 已销号 ÷ 任务数，已撤销的任务不计入任务数；"
		   "超过 %lld 天未同步的村标为久未同步）\n\n",
		r->site_name, r->today, (long long)r->silent_days);
	if (parts & REPORT_PART_VILLAGE)
		err = text_table_write(r, REPORT_PART_VILLAGE, f);
	if (!err && (parts & REPORT_PART_SOURCE))
		err = text_table_write(r, REPORT_PART_SOURCE, f);
	if (!err && (parts & REPORT_PART_LEDGER))
		err = text_table_write(r, REPORT_PART_LEDGER, f);
	return err;
}

/* ---- a report from report_json's output ---- */

/* Reading a peer's JSON: the first wrong member is remembered, the rest
 * of the walk sees defaults, and report_from_json reports it once. */
struct jreader {
	struct report *r;
	const char *bad; /* the first member that was wrong, or NULL */
	int nomem;
};

static const json_t *jr_member(struct jreader *jr, const json_t *o, const char *key)
{
	const json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
	if (!v && !jr->bad)
		jr->bad = key;
	return v;
}

/* A string member (null and absent allowed when optional, as ""). */
static const char *jr_str(struct jreader *jr, const json_t *o, const char *key, int optional)
{
	const json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
	if ((!v || json_is_null(v)) && optional)
		return "";
	if (!json_is_string(v)) {
		if (!jr->bad)
			jr->bad = key;
		return "";
	}
	const char *s = dup_clean(jr->r, json_string_value(v));
	if (!s) {
		jr->nomem = 1;
		return "";
	}
	return s;
}

/* An integer member; *is_null tells null apart when the caller allows it. */
static int64_t jr_int(struct jreader *jr, const json_t *o, const char *key, int *is_null)
{
	const json_t *v = jr_member(jr, o, key);
	if (is_null)
		*is_null = json_is_null(v);
	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (!(is_null && json_is_null(v)) && !jr->bad)
		jr->bad = key;
	return 0;
}

static int jr_bool(struct jreader *jr, const json_t *o, const char *key)
{
	const json_t *v = jr_member(jr, o, key);
	if (!json_is_boolean(v) && !jr->bad)
		jr->bad = key;
	return json_is_true(v);
}

static void jr_counts(struct jreader *jr, const json_t *o, struct report_counts *n)
{
	n->tasks = jr_int(jr, o, "tasks", NULL);
	n->closed = jr_int(jr, o, "closed", NULL);
	n->submitted = jr_int(jr, o, "submitted", NULL);
	n->doing = jr_int(jr, o, "doing", NULL);
	n->todo = jr_int(jr, o, "todo", NULL);
	n->long_term = jr_int(jr, o, "long_term", NULL);
	n->withdrawn = jr_int(jr, o, "withdrawn", NULL);
	n->overdue = jr_int(jr, o, "overdue", NULL);
	n->red = jr_int(jr, o, "red", NULL);
	n->yellow = jr_int(jr, o, "yellow", NULL);
	n->blue = jr_int(jr, o, "blue", NULL);
	n->stale = jr_int(jr, o, "stale", NULL);
	n->behind = jr_int(jr, o, "behind", NULL);
}

static int jr_groups(struct jreader *jr, const json_t *arr, unsigned part)
{
	struct report *r = jr->r;
	size_t i;
	const json_t *g;
	if (!arr)
		return TLY_OK;
	if (!json_is_array(arr)) {
		jr->bad = part == REPORT_PART_VILLAGE ? "by_village" : "by_source";
		return TLY_OK;
	}
	if (part == REPORT_PART_SOURCE)
		r->nsources = 0; /* the peer's list replaces the five defaults */
	json_array_foreach(arr, i, g)
	{
		struct report_group *x;
		int err;
		if (part == REPORT_PART_VILLAGE) {
			err = grow((void **)&r->villages, &r->villages_cap, r->nvillages,
				   sizeof *r->villages);
			if (err)
				return err;
			x = &r->villages[r->nvillages++];
		} else {
			err = grow((void **)&r->sources, &r->sources_cap, r->nsources,
				   sizeof *r->sources);
			if (err)
				return err;
			x = &r->sources[r->nsources++];
		}
		memset(x, 0, sizeof *x);
		x->key = jr_str(jr, g, "key", 0);
		x->label = jr_str(jr, g, "label", 0);
		jr_counts(jr, g, &x->n);
		if (part == REPORT_PART_VILLAGE) {
			int none;
			x->is_village = 1;
			x->last_sync_ms = jr_int(jr, g, "last_sync_ms", &none);
			x->silent = jr_bool(jr, g, "silent");
		}
		if (jr->nomem)
			return TLY_E_NOMEM;
	}
	return TLY_OK;
}

static int jr_rows(struct jreader *jr, const json_t *arr)
{
	struct report *r = jr->r;
	size_t i;
	const json_t *o;
	if (!arr)
		return TLY_OK;
	if (!json_is_array(arr)) {
		jr->bad = "ledger";
		return TLY_OK;
	}
	json_array_foreach(arr, i, o)
	{
		int err = grow((void **)&r->rows, &r->rows_cap, r->nrows, sizeof *r->rows);
		if (err)
			return err;
		struct report_row *w = &r->rows[r->nrows++];
		int no_days;
		memset(w, 0, sizeof *w);
		w->id = jr_str(jr, o, "id", 0);
		w->village_id = jr_str(jr, o, "village_id", 0);
		w->village = jr_str(jr, o, "village", 1);
		w->problem = jr_str(jr, o, "problem", 1);
		w->source = jr_str(jr, o, "source_code", 1);
		w->source_label = jr_str(jr, o, "source", 1);
		w->round = jr_str(jr, o, "round", 1);
		w->doc_no = jr_str(jr, o, "doc_no", 1);
		w->category = jr_str(jr, o, "category", 1);
		w->problem_text = jr_str(jr, o, "problem_text", 1);
		w->manifestations = jr_str(jr, o, "manifestations", 1);
		w->measures = jr_str(jr, o, "measures", 1);
		w->target = jr_str(jr, o, "target", 1);
		w->root_cause = jr_str(jr, o, "root_cause", 1);
		w->elsewhere = jr_str(jr, o, "elsewhere", 1);
		w->leader = jr_str(jr, o, "leader", 1);
		w->owner = jr_str(jr, o, "owner", 1);
		w->deadline = jr_str(jr, o, "deadline", 1);
		w->status = jr_str(jr, o, "status_code", 0);
		w->status_label = jr_str(jr, o, "status", 1);
		w->created_on = jr_str(jr, o, "created_on", 1);
		w->progress = jr_int(jr, o, "progress", NULL);
		w->latest_date = jr_str(jr, o, "latest_date", 1);
		w->latest_note = jr_str(jr, o, "latest_note", 1);
		w->has_latest = *w->latest_date || *w->latest_note;
		w->last_progress_date = w->latest_date;
		w->flags.warning = jr_str(jr, o, "warning", 0);
		w->flags.overdue = jr_bool(jr, o, "overdue");
		w->flags.stale = jr_bool(jr, o, "stale");
		w->flags.behind = jr_bool(jr, o, "behind");
		w->flags.days_left = jr_int(jr, o, "days_left", &no_days);
		/* report_row_cell shows days left only for active tasks, and
		 * report_json wrote null exactly for the others. */
		w->flags.active = !no_days;
		if (jr->nomem)
			return TLY_E_NOMEM;
	}
	return TLY_OK;
}

/* "YYYY-MM-DD HH:MM:SS" local time (views_format_ms's form) back to ms. */
static int64_t local_ms(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	if (sscanf(s, "%4d-%2d-%2d %2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec) != 6)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	tm.tm_isdst = -1;
	time_t t = mktime(&tm);
	return t == (time_t)-1 ? 0 : (int64_t)t * 1000;
}

int report_from_json(const json_t *j, struct report **out, struct buf *why)
{
	struct report *r = calloc(1, sizeof *r);
	struct jreader jr = {r, NULL, 0};
	const json_t *set;
	int err = TLY_OK;

	*out = NULL;
	if (!r)
		return TLY_E_NOMEM;
	r->total.key = "all";
	r->total.label = "合计";
	for (size_t i = 0; i < NSOURCES && !err; i++)
		err = source_add(r, source_codes[i]);
	if (err)
		goto out;
	if (!json_is_object(j)) {
		jr.bad = "(top level)";
		goto out;
	}
	snprintf(r->today, sizeof r->today, "%s", jr_str(&jr, j, "today", 0));
	if (!jr.bad && clock_date_days(r->today, &r->today_days) != TLY_OK)
		jr.bad = "today";
	r->generated_ms = local_ms(jr_str(&jr, j, "generated_at", 0));
	r->site_name = jr_str(&jr, j, "site", 1);
	set = jr_member(&jr, j, "settings");
	r->settings.yellow_days = jr_int(&jr, set, "warn_yellow_days", NULL);
	r->settings.blue_days = jr_int(&jr, set, "warn_blue_days", NULL);
	r->settings.stale_days = jr_int(&jr, set, "stale_days", NULL);
	r->settings.behind_points = jr_int(&jr, set, "behind_points", NULL);
	r->silent_days = jr_int(&jr, set, "silent_days", NULL);
	jr_counts(&jr, jr_member(&jr, j, "total"), &r->total.n);
	err = jr_groups(&jr, json_object_get(j, "by_village"), REPORT_PART_VILLAGE);
	if (!err)
		err = jr_groups(&jr, json_object_get(j, "by_source"), REPORT_PART_SOURCE);
	if (!err)
		err = jr_rows(&jr, json_object_get(j, "ledger"));
	if (!err && jr.nomem)
		err = TLY_E_NOMEM;
	if (err)
		goto out;
	/* The groups keep the peer's order (report_build's sort); rows point
	 * at them only now that the array no longer moves. */
	for (size_t i = 0; i < r->nrows; i++) {
		struct report_row *w = &r->rows[i];
		w->village_group = village_find(r, w->village_id);
	}
out:
	if (!err && jr.bad) {
		why_set(why, "服务器返回的报表不对：%s 缺少或类型不对", jr.bad);
		err = TLY_E_REMOTE;
	}
	if (err) {
		report_free(r);
		return err;
	}
	*out = r;
	return TLY_OK;
}
