/*
 * ledger — the domain operations people perform (what `tally` commands
 * do), each turned into one or more changes and written through
 * store_write in ONE transaction: a progress entry and the task's move from
 * todo to doing, or a close-off decision and the task's new status, commit
 * together or not at all.
 *
 * Ids given by people may be unambiguous prefixes of record ids (git
 * style); villages may also be named. Text must be valid UTF-8.
 *
 * Every function returns TLY_OK or an error code, with a Chinese detail in
 * `why` (may be NULL) on refusal. Ids of created records are written into
 * `out` (at least CHANGE_ID_MAX + 1 bytes) when out is not NULL.
 */
#ifndef TALLY_CLIENT_LEDGER_H
#define TALLY_CLIENT_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/buf.h"
#include "protocol/change.h"
#include "db.h"

#define LEDGER_ID_SIZE (CHANGE_ID_MAX + 1)

/*
 * Creates the database at path with this site's identity. role "village"
 * or "township". A village device needs its village: village_id when
 * enrolment gave one (the record arrives from the server), else a new
 * village record named `name` is made here. TLY_E_EXISTS if the database
 * already has an identity. *out (may be NULL) gets the open database.
 */
int ledger_init(const char *path, const char *role, const char *name, const char *village_id,
		struct db **out, struct buf *why);

/* Resolves an id, an unambiguous prefix or, when no id has that prefix,
 * an unambiguous suffix (the last digits) of a record of kind into out.
 * TLY_E_NOT_FOUND, TLY_E_AMBIGUOUS (why lists candidates). */
int ledger_resolve(struct db *db, const char *kind, const char *prefix, char *out,
		   struct buf *why);

/* A village by exact name or by id/prefix. */
int ledger_village_find(struct db *db, const char *name_or_id, char *out, struct buf *why);

int ledger_village_add(struct db *db, const char *name, char *out, struct buf *why);

struct ledger_problem {
	const char *source; /* inspection|patrol|audit|supervision|self_check */
	const char *text;
	const char *round, *doc_no, *category, *manifestations; /* optional */
};
int ledger_problem_add(struct db *db, const struct ledger_problem *p, char *out, struct buf *why);

/* Task fields; NULL means "not given". For ledger_task_add, problem and
 * village are ids/prefixes/names (village NULL on a village device means
 * itself). For ledger_task_update, problem and village must be NULL and
 * every non-NULL field is set. */
struct ledger_task {
	const char *problem, *village;
	const char *measures, *target, *root_cause, *elsewhere;
	const char *owner, *leader, *deadline, *status;
};
int ledger_task_add(struct db *db, const struct ledger_task *t, char *out, struct buf *why);
int ledger_task_update(struct db *db, const char *task, const struct ledger_task *t,
		       struct buf *why);

/* A progress entry (and the task's move from todo to doing), with the
 * SHA-256, size and name of each evidence file. reason may be NULL. */
int ledger_progress_add(struct db *db, const char *task, int64_t percent, const char *note,
			const char *reason, const char *const *evidence, size_t nevidence,
			char *out, struct buf *why);

/* Attaches evidence files to an existing task (and, when progress is not
 * NULL, to one of its progress entries): each file is copied into the
 * site's store (client/blobstore.h) and gets an `evidence` record; all in
 * one batch. Same limits as ledger_progress_add. */
int ledger_evidence_add(struct db *db, const char *task, const char *progress,
			const char *const *files, size_t nfiles, struct buf *why);

/* 申请销号: the task moves to submitted. */
int ledger_submit(struct db *db, const char *task, struct buf *why);

/* Close-off decision (township): approve closes, reject returns to doing. */
int ledger_review(struct db *db, const char *task, int approve, const char *opinion, char *out,
		  struct buf *why);

/* Re-inspection (township): holds, or rebounded (the task returns to doing). */
int ledger_reinspect(struct db *db, const char *task, int holds, const char *note, char *out,
		     struct buf *why);

/* Extension request, and its decision (township). `request` is the
 * request's id/prefix, or a task's: then its latest undecided request.
 * Approving sets the task's deadline to the requested date. */
int ledger_extend_request(struct db *db, const char *task, const char *until, const char *reason,
			  char *out, struct buf *why);
int ledger_extend_decide(struct db *db, const char *request, int approve, const char *opinion,
			 char *out, struct buf *why);

/* A notice (township) to one village (name/id) or all (village NULL), about
 * some tasks (ids/prefixes). type: supervision|reminder|warning|summons. */
int ledger_notice_send(struct db *db, const char *type, const char *village, const char *title,
		       const char *text, const char *const *tasks, size_t ntasks, char *out,
		       struct buf *why);

#endif
