/*
 * report — the consolidated status of the ledger: summary by village and by
 * problem source, and the full ledger (one row per task), taken from one
 * read transaction so every number comes from the same snapshot even while
 * tallyd writes.
 *
 * report_build reads everything into memory (struct report, opaque) and the
 * writers render it: report_json and report_text_write here, report_csv.h
 * and report_xlsx.h for files. The writers never touch the database.
 *
 * Counting rules (docs/report.md):
 *   tasks counts every task except withdrawn ones (as views_report always
 *   did: a withdrawn task is not work to complete); withdrawn is its own
 *   column. The completion rate is closed / tasks in permille (-1 when
 *   tasks is 0).
 *   overdue, red/yellow/blue, stale and behind are views_task_flags over
 *   active tasks (not closed, not withdrawn), with the database's
 *   thresholds (stale_days may be overridden by the caller).
 *   A village's last sync is, on a township, the latest last_contact_ms of
 *   any of its devices (srv_device); on a village device, its own last
 *   successful sync (sync_state.last_success_ms). It is "silent" when it
 *   never synced or its last sync is silent_days or more days before today.
 *
 * Tables are described by column lists (struct report_col) shared by every
 * format, so CSV, .xlsx, JSON and the text table cannot disagree about
 * which columns exist or what a cell holds.
 *
 * Ownership: report_build allocates the report; report_free frees it and
 * every string in it. Pointers returned by the accessors (groups, rows,
 * strings) belong to the report and live until report_free.
 */
#ifndef TALLY_CLIENT_REPORT_H
#define TALLY_CLIENT_REPORT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "client/db.h"
#include "client/views.h"
#include "protocol/buf.h"

#define REPORT_SILENT_DAYS_DEFAULT 7
/* Largest threshold accepted for --stale-days and --silent-days (ten years). */
#define REPORT_DAYS_MAX 3650

/* Which tables: a bit set. */
#define REPORT_PART_VILLAGE 1u
#define REPORT_PART_SOURCE 2u
#define REPORT_PART_LEDGER 4u
#define REPORT_PART_SUMMARY (REPORT_PART_VILLAGE | REPORT_PART_SOURCE)
#define REPORT_PART_ALL (REPORT_PART_SUMMARY | REPORT_PART_LEDGER)

struct report;

struct report_options {
	int64_t stale_days;  /* > 0 overrides the database's stale_days setting */
	int64_t silent_days; /* > 0, else REPORT_SILENT_DAYS_DEFAULT */
};

struct report_counts {
	int64_t tasks; /* every task except withdrawn ones */
	int64_t closed, submitted, doing, todo, long_term, withdrawn;
	int64_t overdue, red, yellow, blue, stale, behind;
};

/* One line of a summary table: a village, a source, or the total. */
struct report_group {
	const char *key;   /* village id, source code, or "all" for the total */
	const char *label; /* village name, Chinese source label, or 合计 */
	struct report_counts n;
	int is_village;
	int64_t last_sync_ms; /* villages: 0 when never synced */
	int silent;           /* villages: not heard from for silent_days */
};

/* One task of the ledger. Strings are never NULL ("" for absent). */
struct report_row {
	const char *id, *village_id, *village, *problem;
	const char *source, *source_label, *round, *doc_no, *category, *problem_text,
		*manifestations;
	const char *measures, *target, *root_cause, *elsewhere, *leader, *owner, *deadline;
	const char *status, *status_label, *created_on;
	int64_t progress;   /* percent of the latest entry (merge order), 0 when none */
	int has_latest;     /* whether the task has a progress entry */
	const char *latest_date, *latest_note; /* the latest entry (merge order) */
	const char *last_progress_date; /* max(date) of its entries: what stale counts from */
	struct views_flags flags;
	const struct report_group *village_group; /* freshness of the row's village */
};

/*
 * Reads the report from db in one read transaction (BEGIN ... COMMIT; a
 * deferred BEGIN takes no write lock, so tallyd keeps writing and the
 * report sees the snapshot of its first read). Today is clock_today
 * (TALLY_TODAY). A township sees every village; a village device its own.
 * Errors: TLY_E_BAD_DATE (TALLY_TODAY), TLY_E_DB, TLY_E_NOMEM.
 */
int report_build(struct db *db, const struct report_options *o, struct report **out);
void report_free(struct report *r);

const char *report_today(const struct report *r);
int64_t report_generated_ms(const struct report *r);
const struct views_settings *report_settings(const struct report *r);
int64_t report_silent_days(const struct report *r);
const char *report_site_name(const struct report *r);

/* part is REPORT_PART_VILLAGE or REPORT_PART_SOURCE. */
const struct report_group *report_groups(const struct report *r, unsigned part, size_t *n);
const struct report_group *report_total(const struct report *r);
const struct report_row *report_rows(const struct report *r, size_t *n);

/* closed * 1000 / tasks, or -1 when tasks is 0. */
int64_t report_rate_permille(const struct report_counts *c);

/* ---- columns ---- */

enum report_cell_type {
	REPORT_CELL_EMPTY,
	REPORT_CELL_TEXT,
	REPORT_CELL_INT,
	REPORT_CELL_DATE,     /* text, YYYY-MM-DD when valid (else shown as text) */
	REPORT_CELL_DATETIME, /* num: milliseconds since the epoch, local time */
	REPORT_CELL_BOOL,     /* num 0/1: 否/是 */
	REPORT_CELL_PERMILLE, /* num: permille, shown as a percent with one decimal */
	REPORT_CELL_WARNING,  /* text: red|yellow|blue|none, shown 红色/黄色/蓝色/无 */
};

struct report_cell {
	enum report_cell_type type;
	const char *text;
	int64_t num;
};

struct report_col {
	const char *key;  /* stable English JSON key */
	const char *zh;   /* Chinese header */
	int width;        /* suggested width in display columns (xlsx) */
	int text_table;   /* shown in the terminal's table */
};

/* The columns of a table: part is one of REPORT_PART_VILLAGE, _SOURCE, _LEDGER. */
const struct report_col *report_cols(unsigned part, size_t *n);
/* A summary cell (part VILLAGE or SOURCE, g from report_groups or report_total). */
void report_group_cell(const struct report_group *g, unsigned part, size_t col,
		       struct report_cell *out);
void report_row_cell(const struct report_row *row, size_t col, struct report_cell *out);

/* The cell as people read it (CSV, text): into out (cap bytes, NUL-terminated,
 * cut at a character boundary). Returns out. */
const char *report_cell_text(const struct report_cell *c, char *out, size_t cap);
/* Chinese title of a part: 按村汇总 / 按问题来源汇总 / 整改台账. */
const char *report_part_title(unsigned part);

/*
 * The inverse of report_json: a report rebuilt from another machine's
 * report_json output (`tally report --from URL` fetches GET /v1/report
 * and renders it with the same writers). Parts absent from j are empty;
 * a ledger row links to its village's group when j has by_village.
 * generated_at is read back as local time to the second.
 * j is the peer's: every member is type-checked, and a wrong one is
 * TLY_E_REMOTE with why naming it. TLY_E_NOMEM. The report is the
 * caller's (report_free); it does not keep j.
 */
int report_from_json(const json_t *j, struct report **out, struct buf *why);

/* ---- outputs ---- */

/*
 * The report as JSON with stable English keys: today, generated_at,
 * settings, and by part by_village, by_source, total, ledger (arrays of
 * objects keyed by the columns' keys). New reference, caller json_decref's.
 * NULL only when out of memory.
 */
json_t *report_json(const struct report *r, unsigned parts);

/* Aligned text tables for a terminal (CJK counted two columns wide). */
int report_text_write(const struct report *r, unsigned parts, FILE *f);

/* ---- UTF-8 helpers ---- */

/* Columns a UTF-8 string takes on a terminal: East Asian wide and
 * fullwidth characters 2, combining marks and zero-width characters 0,
 * others 1. Invalid bytes count 1 each. */
size_t report_display_width(const char *s);

/*
 * Copies s into out (cap bytes) so it is valid UTF-8 that XML accepts:
 * invalid bytes and control characters other than tab, LF and CR become
 * U+FFFD. Stops at a character boundary when out is full. Returns the
 * number of replacements.
 */
size_t report_utf8_clean(const char *s, char *out, size_t cap);

#endif
