/*
 * views — what people read, with the warnings derived at read time.
 *
 * Nothing here is stored: overdue, warning colour, stale and behind are
 * computed from the task, its latest progress and "today" (clock_today,
 * overridable with TALLY_TODAY) every time. Thresholds come from the local
 * settings table (db_setting_int) with DESIGN.md §2's defaults:
 *   warn_yellow_days 10, warn_blue_days 20, stale_days 14, behind_points 20.
 *
 * Read functions build jansson values with stable English keys (the
 * `--json` output of tally); the caller owns the result (json_decref).
 * Text views for people are rendered from the same values.
 */
#ifndef TALLY_CLIENT_VIEWS_H
#define TALLY_CLIENT_VIEWS_H

#include <jansson.h>
#include <stdint.h>

#include "db.h"

struct views_settings {
	int64_t yellow_days;   /* deadline within this many days: yellow */
	int64_t blue_days;     /* within this many: blue */
	int64_t stale_days;    /* no progress entry for this many days: stale */
	int64_t behind_points; /* progress behind elapsed time by more than this: behind */
};

/* The defaults, overridden by the database's settings when db is not NULL. */
void views_settings_load(struct db *db, struct views_settings *out);

/* What the warning rules say about one task. */
struct views_flags {
	int active;        /* not closed and not withdrawn */
	int overdue;       /* active and deadline before today */
	const char *warning; /* "red" | "yellow" | "blue" | "none" */
	int64_t days_left; /* deadline - today (negative when overdue) */
	int stale;         /* active, and the last progress (or creation) is stale_days or older */
	int behind;        /* active, and progress lags elapsed time by more than behind_points */
};

/*
 * The pure rule. Dates are YYYY-MM-DD (created and last_progress may be
 * NULL); progress is the latest entry's percent (0 when none). A task with
 * an unparseable deadline gets no deadline warnings.
 */
void views_task_flags(const struct views_settings *s, const char *today, const char *status,
		      const char *deadline, const char *created, const char *last_progress,
		      int64_t progress, struct views_flags *out);

struct views_task_filter {
	const char *village; /* village id */
	const char *status;
	const char *source;
	int overdue;         /* -1 any, 0 not overdue, 1 overdue */
	const char *warning; /* red|yellow|blue|none, or NULL */
};

/* Tasks (an array of objects with id, village, village_id, problem,
 * source, measures, owner, leader, deadline, status, progress, warning,
 * overdue, days_left, stale, behind, created_on, last_progress). */
int views_task_list(struct db *db, const struct views_task_filter *f, json_t **out);

/* One task with its problem, progress entries, evidence, reviews, change
 * history and conflicts. task is a full id. */
int views_task_show(struct db *db, const char *task, json_t **out);

int views_problem_list(struct db *db, const char *source, json_t **out);
int views_village_list(struct db *db, json_t **out);
/* Notices this site may see (a village: to it or to all). */
int views_notice_list(struct db *db, json_t **out);
int views_conflicts(struct db *db, json_t **out);
/* Completion rate and warnings per village and per source. */
int views_report(struct db *db, json_t **out);
/* Site identity and outbox state. */
int views_status(struct db *db, json_t **out);

/* "YYYY-MM-DD HH:MM:SS" local time of an HLC timestamp or a millisecond time. */
void views_format_ms(int64_t ms, char out[20]);

#endif
