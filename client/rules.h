/*
 * rules — the role, tenancy and lifecycle rules of the ledger, as pure
 * functions (no I/O, no SQLite).
 *
 * rules_check answers whether an actor may make a change, given what the
 * database holds about the records the change touches (struct rules_state,
 * which store_rules_state gathers). Both the local write path and the
 * server's apply path call it, so a village device and the township server
 * refuse exactly the same things; the server checks the STORED record (the
 * stored task's village, the stored status), never the incoming change's
 * claims about it (guarantee 7).
 *
 * Each function returns TLY_OK or a code from error.h and, on refusal, puts
 * one line of Chinese into `why` (may be NULL) saying what is wrong.
 *
 * Status lifecycle (DESIGN.md §2), B = either role, T = township only:
 *   todo -> doing (B), todo -> long_term (B)
 *   doing -> submitted (B), doing -> long_term (B)
 *   long_term -> doing (B), long_term -> submitted (B)
 *   submitted -> closed (T), submitted -> doing (T, close-off rejected)
 *   closed -> doing (T, rebound on re-inspection)
 *   any status except withdrawn -> withdrawn (T)
 * Nothing else; withdrawn is final. A village attempting a T move gets
 * TLY_E_FORBIDDEN, anyone attempting a move not listed TLY_E_BAD_STATUS_MOVE.
 */
#ifndef TALLY_CLIENT_RULES_H
#define TALLY_CLIENT_RULES_H

#include <stdint.h>

#include "protocol/buf.h"
#include "protocol/change.h"

enum rules_role {
	RULES_TOWNSHIP = 0,
	RULES_VILLAGE = 1,
};

/* Who makes the change: a township site, or a device of one village. */
struct rules_actor {
	enum rules_role role;
	const char *village_id; /* RULES_VILLAGE: the actor's village record id */
};

/*
 * What the database holds, as far as the rules need it. Borrowed strings;
 * NULL for absent. Which members matter depends on the change's kind:
 *   record_exists: the change's own (kind, id) already has stored fields.
 *   task:    kind task: the stored task itself; progress/evidence/review:
 *            the task named by the change's "task" field.
 *   problem: kind problem: the stored problem itself; kind task: the
 *            stored task's problem, or for a new task the one named by the
 *            change's "problem" field.
 *   village_found: kind task/problem/notice: the village named by the
 *            change's "village" field exists.
 *   request: kind review with type extension_decision: the review named by
 *            "request".
 *   progress: kind evidence: the progress entry named by "progress".
 */
struct rules_state {
	int record_exists;

	int task_found;
	const char *task_village;
	const char *task_problem;
	const char *task_status;
	int task_has_progress;
	int64_t task_progress; /* percent of the task's latest progress entry */

	int problem_found;
	const char *problem_source;
	const char *problem_village;

	int village_found;

	int request_found;
	const char *request_type;
	const char *request_task;

	int progress_found;
	const char *progress_task;
};

/* Field-level validity of a change on its own: known kind and fields,
 * types, lengths, code lists, dates, percent range, required fields when
 * the record is new (record_exists == 0). */
int rules_check_fields(const struct change *c, int record_exists, struct buf *why);

/* The whole check: rules_check_fields, then role, tenancy and lifecycle. */
int rules_check(const struct rules_actor *a, const struct rules_state *s, const struct change *c,
		struct buf *why);

/* Whether role may move a task from status `from` to `to` (from == to is
 * not a move and is TLY_OK). Unknown codes are TLY_E_BAD_VALUE. */
int rules_status_move(enum rules_role role, const char *from, const char *to, struct buf *why);

/* Code lists and their Chinese labels. *_label returns the code itself
 * when unknown, never NULL. rules_is_* return 1 for a known code. */
int rules_is_status(const char *s);
int rules_is_source(const char *s);
int rules_is_notice_type(const char *s);
const char *rules_status_label(const char *status);
const char *rules_source_label(const char *source);
const char *rules_notice_type_label(const char *type);
const char *rules_review_label(const char *type, const char *decision);

/* "village" / "township" to the role; TLY_E_BAD_VALUE otherwise. */
int rules_role_parse(const char *s, enum rules_role *out);

#endif
