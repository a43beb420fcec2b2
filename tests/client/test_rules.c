/*
 * Rules: every status move for both roles against an independently written
 * list of the allowed moves (DESIGN.md §2), and the tenancy, field and
 * append-only rules, table-driven.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "helpers.h"
#include "client/rules.h"

static const char *const statuses[] = {"todo",   "doing",     "submitted",
				       "closed", "long_term", "withdrawn"};

/* The lifecycle as the design states it, one move per line. */
static const struct {
	const char *from, *to;
	int township_only;
} allowed[] = {
	{"todo", "doing", 0},         {"doing", "submitted", 0},   {"submitted", "closed", 1},
	{"todo", "long_term", 0},     {"doing", "long_term", 0},   {"long_term", "doing", 0},
	{"long_term", "submitted", 0}, {"submitted", "doing", 1},  {"closed", "doing", 1},
	{"todo", "withdrawn", 1},     {"doing", "withdrawn", 1},   {"submitted", "withdrawn", 1},
	{"closed", "withdrawn", 1},   {"long_term", "withdrawn", 1},
};

static int expected_move(enum rules_role role, const char *from, const char *to)
{
	if (strcmp(from, to) == 0)
		return TLY_OK;
	for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
		if (strcmp(allowed[i].from, from) == 0 && strcmp(allowed[i].to, to) == 0)
			return allowed[i].township_only && role == RULES_VILLAGE ? TLY_E_FORBIDDEN
										 : TLY_OK;
	}
	return TLY_E_BAD_STATUS_MOVE;
}

static const struct rules_actor township = {RULES_TOWNSHIP, NULL};
static const struct rules_actor village_a = {RULES_VILLAGE, "villagea"};

static struct change *task_change(const char *status)
{
	struct change *c = NULL;
	assert_int_equal(change_new(&c, 1, "site1", 1, 1, "task", "task1"), TLY_OK);
	if (status)
		set_t(c, "status", status);
	return c;
}

/* A stored task of village a in status `status`. */
static void stored_task(struct rules_state *s, const char *status)
{
	memset(s, 0, sizeof *s);
	s->record_exists = 1;
	s->task_found = 1;
	s->task_village = "villagea";
	s->task_problem = "problem1";
	s->task_status = status;
}

static void test_every_status_move(void **state)
{
	(void)state;
	int checked = 0;
	for (int r = 0; r < 2; r++) {
		enum rules_role role = r ? RULES_VILLAGE : RULES_TOWNSHIP;
		const struct rules_actor *actor = r ? &village_a : &township;
		for (size_t f = 0; f < 6; f++) {
			for (size_t t = 0; t < 6; t++) {
				int want = expected_move(role, statuses[f], statuses[t]);
				/* The pure move function... */
				assert_int_equal(rules_status_move(role, statuses[f], statuses[t], NULL),
						 want);
				/* ...and the whole check of a task change. A village
				 * may not touch a closed or withdrawn task at all. */
				struct rules_state s;
				stored_task(&s, statuses[f]);
				struct change *c = task_change(statuses[t]);
				int got = rules_check(actor, &s, c, NULL);
				int want_full = want;
				if (role == RULES_VILLAGE && (strcmp(statuses[f], "closed") == 0 ||
							      strcmp(statuses[f], "withdrawn") == 0))
					want_full = TLY_E_FORBIDDEN;
				if (got != want_full)
					fail_msg("%s %s -> %s: got %s want %s", r ? "village" : "township",
						 statuses[f], statuses[t], error_name(got),
						 error_name(want_full));
				change_free(c);
				checked++;
			}
		}
	}
	assert_int_equal(checked, 72);
	assert_int_equal(rules_status_move(RULES_TOWNSHIP, "todo", "finished", NULL),
			 TLY_E_BAD_VALUE);
}

/* 300 bytes: past SCHEMA_SHORT_TEXT_MAX. */
#define S50 "01234567890123456789012345678901234567890123456789"

struct fixture_case {
	const char *name;
	const struct rules_actor *actor;
	const char *kind;
	int exists;
	/* field=value pairs, "#N" for an integer, "~" for null */
	const char *fields[12];
	/* stored state tweaks */
	const char *task_village, *task_status, *problem_source, *problem_village;
	int has_progress;
	int64_t progress;
	int village_found, problem_found, task_found;
	int want;
};

static const struct fixture_case cases[] = {
	{"new task without status", &township, "task", 0,
	 {"problem", "problem1", "village", "villagea", "measures", "m", "owner", "o", "leader", "l",
	  "deadline", "2026-03-31"},
	 NULL, NULL, "inspection", NULL, 0, 0, 1, 1, 0, TLY_E_MISSING_FIELD},
	{"new village task without status", &village_a, "task", 0,
	 {"problem", "problem1", "village", "villageb", "measures", "m", "owner", "o", "leader", "l",
	  "deadline", "2026-03-31"},
	 NULL, NULL, "self_check", "villagea", 0, 0, 1, 1, 0, TLY_E_MISSING_FIELD},
	{"bad deadline", &township, "task", 1, {"deadline", "2026-02-30"}, "villagea", "doing", NULL,
	 NULL, 0, 0, 0, 0, 1, TLY_E_BAD_DATE},
	{"village edits other village's task", &village_a, "task", 1, {"measures", "x"}, "villageb",
	 "doing", NULL, NULL, 0, 0, 0, 0, 1, TLY_E_FORBIDDEN},
	{"village edits own task", &village_a, "task", 1, {"measures", "x"}, "villagea", "doing",
	 NULL, NULL, 0, 0, 0, 0, 1, TLY_OK},
	{"task moved to another village", &township, "task", 1, {"village", "villageb"}, "villagea",
	 "doing", NULL, NULL, 0, 0, 1, 0, 1, TLY_E_BAD_VALUE},
	{"unknown field", &township, "task", 1, {"colour", "red"}, "villagea", "doing", NULL, NULL, 0,
	 0, 0, 0, 1, TLY_E_UNKNOWN_FIELD},
	{"required set to null", &township, "task", 1, {"measures", "~"}, "villagea", "doing", NULL,
	 NULL, 0, 0, 0, 0, 1, TLY_E_MISSING_FIELD},
	{"percent over 100", &village_a, "progress", 0, {"task", "task1", "percent", "#101"},
	 "villagea", "doing", NULL, NULL, 0, 0, 0, 0, 1, TLY_E_BAD_PERCENT},
	{"percent down without reason", &village_a, "progress", 0,
	 {"task", "task1", "percent", "#30"}, "villagea", "doing", NULL, NULL, 1, 40, 0, 0, 1,
	 TLY_E_PERCENT_DOWN},
	{"percent down with reason", &village_a, "progress", 0,
	 {"task", "task1", "percent", "#30", "reason", "返工"}, "villagea", "doing", NULL, NULL, 1,
	 40, 0, 0, 1, TLY_OK},
	{"percent down with empty reason", &village_a, "progress", 0,
	 {"task", "task1", "percent", "#30", "reason", ""}, "villagea", "doing", NULL, NULL, 1, 40,
	 0, 0, 1, TLY_E_PERCENT_DOWN},
	{"progress on unknown task", &village_a, "progress", 0, {"task", "task9", "percent", "#30"},
	 NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, TLY_E_NOT_FOUND},
	{"progress on other village's task", &village_a, "progress", 0,
	 {"task", "task1", "percent", "#30"}, "villageb", "doing", NULL, NULL, 0, 0, 0, 0, 1,
	 TLY_E_FORBIDDEN},
	{"progress on closed task", &township, "progress", 0, {"task", "task1", "percent", "#30"},
	 "villagea", "closed", NULL, NULL, 0, 0, 0, 0, 1, TLY_E_BAD_STATUS_MOVE},
	{"progress entry rewritten", &village_a, "progress", 1, {"task", "task1", "percent", "#50"},
	 "villagea", "doing", NULL, NULL, 0, 0, 0, 0, 1, TLY_E_EXISTS},
	{"village problem not self-check", &village_a, "problem", 0,
	 {"source", "inspection", "text", "t", "village", "villagea"}, NULL, NULL, NULL, NULL, 0, 0,
	 1, 0, 0, TLY_E_FORBIDDEN},
	{"village self-check problem", &village_a, "problem", 0,
	 {"source", "self_check", "text", "t", "village", "villagea"}, NULL, NULL, NULL, NULL, 0, 0,
	 1, 0, 0, TLY_OK},
	{"village problem for another village", &village_a, "problem", 0,
	 {"source", "self_check", "text", "t", "village", "villageb"}, NULL, NULL, NULL, NULL, 0, 0,
	 1, 0, 0, TLY_E_FORBIDDEN},
	{"bad source", &township, "problem", 0, {"source", "rumour", "text", "t"}, NULL, NULL, NULL,
	 NULL, 0, 0, 0, 0, 0, TLY_E_BAD_VALUE},
	{"village approves close-off", &village_a, "review", 0,
	 {"task", "task1", "type", "close_off", "decision", "approve"}, "villagea", "submitted",
	 NULL, NULL, 0, 0, 0, 0, 1, TLY_E_FORBIDDEN},
	{"township approves close-off", &township, "review", 0,
	 {"task", "task1", "type", "close_off", "decision", "approve"}, "villagea", "submitted",
	 NULL, NULL, 0, 0, 0, 0, 1, TLY_OK},
	{"close-off of a task not submitted", &township, "review", 0,
	 {"task", "task1", "type", "close_off", "decision", "approve"}, "villagea", "doing", NULL,
	 NULL, 0, 0, 0, 0, 1, TLY_E_BAD_STATUS_MOVE},
	{"village reinspects", &village_a, "review", 0,
	 {"task", "task1", "type", "reinspect", "decision", "holds"}, "villagea", "closed", NULL,
	 NULL, 0, 0, 0, 0, 1, TLY_E_FORBIDDEN},
	{"reinspect open task", &township, "review", 0,
	 {"task", "task1", "type", "reinspect", "decision", "holds"}, "villagea", "doing", NULL, NULL,
	 0, 0, 0, 0, 1, TLY_E_BAD_STATUS_MOVE},
	{"bad review decision", &township, "review", 0,
	 {"task", "task1", "type", "reinspect", "decision", "approve"}, "villagea", "closed", NULL,
	 NULL, 0, 0, 0, 0, 1, TLY_E_BAD_VALUE},
	{"village asks extension", &village_a, "review", 0,
	 {"task", "task1", "type", "extension", "until", "2027-01-01", "opinion", "雨季"},
	 "villagea", "doing", NULL, NULL, 0, 0, 0, 0, 1, TLY_OK},
	{"extension without date", &village_a, "review", 0, {"task", "task1", "type", "extension"},
	 "villagea", "doing", NULL, NULL, 0, 0, 0, 0, 1, TLY_E_MISSING_FIELD},
	{"village decides extension", &village_a, "review", 0,
	 {"task", "task1", "type", "extension_decision", "decision", "approve", "request", "r1"},
	 "villagea", "doing", NULL, NULL, 0, 0, 0, 0, 1, TLY_E_FORBIDDEN},
	{"village sends notice", &village_a, "notice", 0, {"type", "warning", "text", "t"}, NULL,
	 NULL, NULL, NULL, 0, 0, 0, 0, 0, TLY_E_FORBIDDEN},
	{"notice to unknown village", &township, "notice", 0,
	 {"type", "warning", "text", "t", "village", "nowhere"}, NULL, NULL, NULL, NULL, 0, 0, 0, 0,
	 0, TLY_E_NOT_FOUND},
	{"village creates a village", &village_a, "village", 0, {"name", "李家村"}, NULL, NULL, NULL,
	 NULL, 0, 0, 0, 0, 0, TLY_E_FORBIDDEN},
	{"short field too long", &township, "task", 1,
	 {"owner", S50 S50 S50 S50 S50 S50},
	 "villagea", "doing", NULL, NULL, 0, 0, 0, 0, 1, TLY_E_FIELD_TOO_LONG},
};

static void test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct fixture_case *fc = &cases[i];
		struct change *c = NULL;
		const char *id = strcmp(fc->kind, "village") == 0 ? "villagez" : "rec1";
		assert_int_equal(change_new(&c, 1, "site1", 1, 1, fc->kind, id), TLY_OK);
		for (int k = 0; k < 12 && fc->fields[k]; k += 2) {
			const char *v = fc->fields[k + 1];
			if (v[0] == '#')
				set_i(c, fc->fields[k], atoll(v + 1));
			else if (strcmp(v, "~") == 0)
				assert_int_equal(change_set_null(c, fc->fields[k], NULL), TLY_OK);
			else
				set_t(c, fc->fields[k], v);
		}
		struct rules_state s;
		memset(&s, 0, sizeof s);
		s.record_exists = fc->exists;
		s.task_found = fc->task_found;
		s.task_village = fc->task_village;
		s.task_status = fc->task_status;
		s.task_problem = "problem1";
		s.task_has_progress = fc->has_progress;
		s.task_progress = fc->progress;
		s.problem_found = fc->problem_found;
		s.problem_source = fc->problem_source;
		s.problem_village = fc->problem_village;
		s.village_found = fc->village_found;
		struct buf why;
		buf_init(&why, 1024);
		int got = rules_check(fc->actor, &s, c, &why);
		if (got != fc->want)
			fail_msg("case '%s': got %s want %s (%s)", fc->name, error_name(got),
				 error_name(fc->want), why.data ? why.data : "");
		/* Every refusal explains itself in Chinese. */
		if (got != TLY_OK && !(why.data && why.len) && got != TLY_E_BAD_UTF8)
			fail_msg("case '%s': no reason given", fc->name);
		buf_free(&why);
		change_free(c);
	}
}

/* A complete new task: which creator may make it. */
static void test_task_creation(void **state)
{
	(void)state;
	struct change *c = NULL;
	assert_int_equal(change_new(&c, 1, "site1", 1, 1, "task", "t1"), TLY_OK);
	set_t(c, "problem", "p1");
	set_t(c, "village", "villagea");
	set_t(c, "measures", "m");
	set_t(c, "owner", "o");
	set_t(c, "leader", "l");
	set_t(c, "deadline", "2026-03-31");
	set_t(c, "status", "todo");
	struct rules_state s;
	memset(&s, 0, sizeof s);
	s.problem_found = 1;
	s.village_found = 1;
	s.problem_source = "inspection";
	assert_int_equal(rules_check(&township, &s, c, NULL), TLY_OK);
	/* A village may not create tasks under township problems... */
	assert_int_equal(rules_check(&village_a, &s, c, NULL), TLY_E_FORBIDDEN);
	/* ...only under its own self-check finds. */
	s.problem_source = "self_check";
	s.problem_village = "villagea";
	assert_int_equal(rules_check(&village_a, &s, c, NULL), TLY_OK);
	s.problem_found = 0;
	assert_int_equal(rules_check(&township, &s, c, NULL), TLY_E_NOT_FOUND);
	s.problem_found = 1;
	s.village_found = 0;
	assert_int_equal(rules_check(&township, &s, c, NULL), TLY_E_NOT_FOUND);
	s.village_found = 1;
	set_t(c, "status", "doing");
	assert_int_equal(rules_check(&township, &s, c, NULL), TLY_E_BAD_STATUS_MOVE);
	change_free(c);
}

static void test_labels(void **state)
{
	(void)state;
	assert_string_equal(rules_status_label("closed"), "已销号");
	assert_string_equal(rules_source_label("self_check"), "自查");
	assert_string_equal(rules_status_label("nonsense"), "nonsense");
	enum rules_role r;
	assert_int_equal(rules_role_parse("village", &r), TLY_OK);
	assert_int_equal(r, RULES_VILLAGE);
	assert_int_equal(rules_role_parse("county", &r), TLY_E_BAD_VALUE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_status_move),
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_task_creation),
		cmocka_unit_test(test_labels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
