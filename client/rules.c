/*
 * rules — what each role may change (see rules.h for the lifecycle).
 */
#include <string.h>

#include "clock.h"
#include "protocol/error.h"
#include "rules.h"
#include "schema.h"
#include "why.h"

struct code_label {
	const char *code;
	const char *label;
};

static const struct code_label statuses[] = {
	{"todo", "待整改"},   {"doing", "整改中"},       {"submitted", "申请销号"},
	{"closed", "已销号"}, {"long_term", "长期坚持"}, {"withdrawn", "已撤销"},
};
static const struct code_label sources[] = {
	{"inspection", "巡视"}, {"patrol", "巡察"},     {"audit", "审计"},
	{"supervision", "督查"}, {"self_check", "自查"},
};
static const struct code_label notice_types[] = {
	{"supervision", "督办通报"},
	{"reminder", "提醒"},
	{"warning", "预警"},
	{"summons", "约谈问责"},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const struct code_label *find_code(const struct code_label *t, size_t n, const char *s)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(t[i].code, s) == 0)
			return &t[i];
	}
	return NULL;
}

int rules_is_status(const char *s) { return find_code(statuses, NELEM(statuses), s) != NULL; }
int rules_is_source(const char *s) { return find_code(sources, NELEM(sources), s) != NULL; }
int rules_is_notice_type(const char *s)
{
	return find_code(notice_types, NELEM(notice_types), s) != NULL;
}

static const char *label_of(const struct code_label *t, size_t n, const char *s)
{
	const struct code_label *c = find_code(t, n, s);
	return c ? c->label : (s ? s : "");
}

const char *rules_status_label(const char *s) { return label_of(statuses, NELEM(statuses), s); }
const char *rules_source_label(const char *s) { return label_of(sources, NELEM(sources), s); }
const char *rules_notice_type_label(const char *s)
{
	return label_of(notice_types, NELEM(notice_types), s);
}

const char *rules_review_label(const char *type, const char *decision)
{
	static const struct {
		const char *type, *decision, *label;
	} t[] = {
		{"close_off", "approve", "销号审核：同意销号"},
		{"close_off", "reject", "销号审核：驳回"},
		{"reinspect", "holds", "回头看：整改成效巩固"},
		{"reinspect", "rebounded", "回头看：问题反弹，重新整改"},
		{"extension", NULL, "延期申请"},
		{"extension_decision", "approve", "延期审批：同意"},
		{"extension_decision", "reject", "延期审批：不同意"},
	};
	for (size_t i = 0; i < NELEM(t); i++) {
		if (type && strcmp(t[i].type, type) == 0 &&
		    (t[i].decision == NULL || (decision && strcmp(t[i].decision, decision) == 0)))
			return t[i].label;
	}
	return type ? type : "";
}

int rules_role_parse(const char *s, enum rules_role *out)
{
	if (s && strcmp(s, "township") == 0) {
		*out = RULES_TOWNSHIP;
		return TLY_OK;
	}
	if (s && strcmp(s, "village") == 0) {
		*out = RULES_VILLAGE;
		return TLY_OK;
	}
	return TLY_E_BAD_VALUE;
}

/* ---- lifecycle ----------------------------------------------------------- */

enum move { NEVER = 0, BOTH, TOWNSHIP };

/* Indexed like `statuses`: todo doing submitted closed long_term withdrawn. */
static const unsigned char moves[6][6] = {
	/* todo */ {NEVER, BOTH, NEVER, NEVER, BOTH, TOWNSHIP},
	/* doing */ {NEVER, NEVER, BOTH, NEVER, BOTH, TOWNSHIP},
	/* submitted */ {NEVER, TOWNSHIP, NEVER, TOWNSHIP, NEVER, TOWNSHIP},
	/* closed */ {NEVER, TOWNSHIP, NEVER, NEVER, NEVER, TOWNSHIP},
	/* long_term */ {NEVER, BOTH, BOTH, NEVER, NEVER, TOWNSHIP},
	/* withdrawn */ {NEVER, NEVER, NEVER, NEVER, NEVER, NEVER},
};

static int status_index(const char *s)
{
	const struct code_label *c = find_code(statuses, NELEM(statuses), s);
	return c ? (int)(c - statuses) : -1;
}

int rules_status_move(enum rules_role role, const char *from, const char *to, struct buf *why)
{
	int f = status_index(from), t = status_index(to);
	if (f < 0 || t < 0) {
		why_set(why, "任务状态代码不对：%s", f < 0 ? (from ? from : "") : to);
		return TLY_E_BAD_VALUE;
	}
	if (f == t)
		return TLY_OK;
	switch (moves[f][t]) {
	case BOTH:
		return TLY_OK;
	case TOWNSHIP:
		if (role == RULES_TOWNSHIP)
			return TLY_OK;
		why_set(why, "只有乡镇才能把任务从“%s”改为“%s”（销号、撤销、重新打开由乡镇办理）",
			rules_status_label(from), rules_status_label(to));
		return TLY_E_FORBIDDEN;
	default:
		why_set(why, "任务状态不能从“%s”改为“%s”", rules_status_label(from),
			rules_status_label(to));
		return TLY_E_BAD_STATUS_MOVE;
	}
}

/* ---- fields -------------------------------------------------------------- */

static int get_text(const struct change *c, const char *name, const char **out)
{
	struct field_view v;
	*out = NULL;
	if (!change_field_get(c, name, &v) || v.type != FIELD_TEXT)
		return 0;
	*out = v.text;
	return 1;
}

static int is_hex64(const char *s)
{
	if (strlen(s) != 64)
		return 0;
	for (const char *p = s; *p; p++) {
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	}
	return 1;
}

static const char *const required_village[] = {"name", NULL};
static const char *const required_problem[] = {"source", "text", NULL};
static const char *const required_task[] = {"problem",  "village", "measures", "owner",
					    "leader",   "deadline", "status", NULL};
static const char *const required_progress[] = {"task", "percent", NULL};
static const char *const required_evidence[] = {"task", "sha256", "name", NULL};
static const char *const required_review[] = {"task", "type", NULL};
static const char *const required_notice[] = {"type", "text", NULL};

static const char *const *required_of(const char *kind)
{
	static const struct {
		const char *kind;
		const char *const *req;
	} t[] = {
		{"village", required_village},   {"problem", required_problem},
		{"task", required_task},         {"progress", required_progress},
		{"evidence", required_evidence}, {"review", required_review},
		{"notice", required_notice},
	};
	for (size_t i = 0; i < NELEM(t); i++) {
		if (strcmp(t[i].kind, kind) == 0)
			return t[i].req;
	}
	return NULL;
}

static int is_required(const char *kind, const char *field)
{
	const char *const *req = required_of(kind);
	for (; req && *req; req++) {
		if (strcmp(*req, field) == 0)
			return 1;
	}
	return 0;
}

/* Fields that hold another record's id. */
static int is_reference(const char *kind, const char *field)
{
	return strcmp(field, "task") == 0 || strcmp(field, "problem") == 0 ||
	       (strcmp(field, "village") == 0) || strcmp(field, "request") == 0 ||
	       (strcmp(field, "progress") == 0 && strcmp(kind, "evidence") == 0);
}

static int is_date_field(const char *field)
{
	return strcmp(field, "deadline") == 0 || strcmp(field, "created_on") == 0 ||
	       strcmp(field, "date") == 0 || strcmp(field, "until") == 0;
}

static int check_one_field(const char *kind, const struct schema_field *sf,
			   const struct field_view *v, struct buf *why)
{
	if (v->type == FIELD_NULL) {
		if (is_required(kind, v->name)) {
			why_set(why, "必填项 %s 不能为空", v->name);
			return TLY_E_MISSING_FIELD;
		}
		return TLY_OK;
	}
	if (v->type != sf->type) {
		why_set(why, "%s 的类型不对", v->name);
		return TLY_E_BAD_TYPE;
	}
	if (v->type == FIELD_INT) {
		if ((strcmp(v->name, "percent") == 0) && (v->i < 0 || v->i > 100)) {
			why_set(why, "完成进度应在 0 到 100 之间，填的是 %lld", (long long)v->i);
			return TLY_E_BAD_PERCENT;
		}
		if (strcmp(v->name, "size") == 0 && v->i < 0) {
			why_set(why, "文件大小不能是负数");
			return TLY_E_BAD_VALUE;
		}
		return TLY_OK;
	}
	/* text */
	if (change_check_utf8(v->text, v->len))
		return TLY_E_BAD_UTF8;
	if (!sf->long_text && v->len > SCHEMA_SHORT_TEXT_MAX) {
		why_set(why, "%s 太长（%zu 字节，最多 %d 字节）", v->name, v->len,
			SCHEMA_SHORT_TEXT_MAX);
		return TLY_E_FIELD_TOO_LONG;
	}
	if (v->len == 0 && is_required(kind, v->name)) {
		why_set(why, "必填项 %s 不能为空", v->name);
		return TLY_E_MISSING_FIELD;
	}
	if (v->len == 0)
		return TLY_OK;
	if (is_reference(kind, v->name) && change_check_id(v->text)) {
		why_set(why, "%s 不是有效的编号：%s", v->name, v->text);
		return TLY_E_BAD_VALUE;
	}
	if (is_date_field(v->name) && clock_check_date(v->text)) {
		why_set(why, "%s 不是有效日期（应为 YYYY-MM-DD）：%s", v->name, v->text);
		return TLY_E_BAD_DATE;
	}
	if (strcmp(v->name, "status") == 0 && !rules_is_status(v->text)) {
		why_set(why, "任务状态代码不对：%s", v->text);
		return TLY_E_BAD_VALUE;
	}
	if (strcmp(v->name, "source") == 0 && !rules_is_source(v->text)) {
		why_set(why, "问题来源应为 inspection|patrol|audit|supervision|self_check，填的是：%s",
			v->text);
		return TLY_E_BAD_VALUE;
	}
	if (strcmp(kind, "notice") == 0 && strcmp(v->name, "type") == 0 &&
	    !rules_is_notice_type(v->text)) {
		why_set(why, "通报类型应为 supervision|reminder|warning|summons，填的是：%s", v->text);
		return TLY_E_BAD_VALUE;
	}
	if (strcmp(v->name, "sha256") == 0 && !is_hex64(v->text)) {
		why_set(why, "佐证材料的 SHA-256 应为 64 位小写十六进制");
		return TLY_E_BAD_VALUE;
	}
	return TLY_OK;
}

/* review: type and decision must pair up. */
static int check_review_shape(const struct change *c, struct buf *why)
{
	const char *type, *decision, *until, *request;
	get_text(c, "type", &type);
	get_text(c, "decision", &decision);
	get_text(c, "until", &until);
	get_text(c, "request", &request);
	static const struct {
		const char *type, *d1, *d2;
	} shapes[] = {
		{"close_off", "approve", "reject"},
		{"reinspect", "holds", "rebounded"},
		{"extension", NULL, NULL},
		{"extension_decision", "approve", "reject"},
	};
	for (size_t i = 0; i < NELEM(shapes); i++) {
		if (!type || strcmp(type, shapes[i].type) != 0)
			continue;
		if (!shapes[i].d1) {
			if (decision && *decision) {
				why_set(why, "延期申请不应带审批结论");
				return TLY_E_BAD_VALUE;
			}
			if (!until || !*until) {
				why_set(why, "延期申请必须写明延期到哪一天（--until）");
				return TLY_E_MISSING_FIELD;
			}
			return TLY_OK;
		}
		if (!decision || (strcmp(decision, shapes[i].d1) != 0 &&
				  strcmp(decision, shapes[i].d2) != 0)) {
			why_set(why, "%s 的结论应为 %s 或 %s", type, shapes[i].d1, shapes[i].d2);
			return TLY_E_BAD_VALUE;
		}
		if (strcmp(type, "extension_decision") == 0 && (!request || !*request)) {
			why_set(why, "延期审批必须指明是哪一条延期申请");
			return TLY_E_MISSING_FIELD;
		}
		return TLY_OK;
	}
	why_set(why, "审核记录类型不对：%s", type ? type : "");
	return TLY_E_BAD_VALUE;
}

int rules_check_fields(const struct change *c, int record_exists, struct buf *why)
{
	const struct schema_kind *k = schema_kind_find(change_kind(c));
	if (!k) {
		why_set(why, "不认识的记录类型：%s", change_kind(c));
		return TLY_E_BAD_VALUE;
	}
	if (change_field_count(c) == 0) {
		why_set(why, "修改记录中没有任何内容");
		return TLY_E_BAD_VALUE;
	}
	for (size_t i = 0; i < change_field_count(c); i++) {
		struct field_view v;
		change_field_at(c, i, &v);
		const struct schema_field *sf = schema_field_find(k, v.name);
		if (!sf) {
			why_set(why, "%s 记录没有 %s 这一项", k->kind, v.name);
			return TLY_E_UNKNOWN_FIELD;
		}
		int err = check_one_field(k->kind, sf, &v, why);
		if (err)
			return err;
	}
	if (!record_exists) {
		for (const char *const *req = required_of(k->kind); req && *req; req++) {
			struct field_view v;
			if (!change_field_get(c, *req, &v)) {
				why_set(why, "新建%s记录缺少必填项 %s", k->kind, *req);
				return TLY_E_MISSING_FIELD;
			}
		}
	}
	if (strcmp(k->kind, "review") == 0 && !record_exists)
		return check_review_shape(c, why);
	return TLY_OK;
}

/* ---- roles and tenancy ---------------------------------------------------- */

static int same(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static int village_owns_task(const struct rules_actor *a, const struct rules_state *s,
			     struct buf *why)
{
	if (a->role == RULES_TOWNSHIP || same(s->task_village, a->village_id))
		return TLY_OK;
	why_set(why, "这项任务属于别的村，本村不能修改");
	return TLY_E_FORBIDDEN;
}

static int need_task(const struct rules_state *s, const struct change *c, struct buf *why)
{
	if (s->task_found)
		return TLY_OK;
	const char *t;
	get_text(c, "task", &t);
	why_set(why, "没有找到任务 %s", t ? t : "");
	return TLY_E_NOT_FOUND;
}

static int task_is_open(const struct rules_state *s, const char *what, struct buf *why)
{
	if (same(s->task_status, "closed") || same(s->task_status, "withdrawn")) {
		why_set(why, "任务已%s，不能再%s", same(s->task_status, "closed") ? "销号" : "撤销",
			what);
		return TLY_E_BAD_STATUS_MOVE;
	}
	return TLY_OK;
}

static int check_village(const struct rules_actor *a, const struct rules_state *s,
			 const struct change *c, struct buf *why)
{
	if (a->role == RULES_TOWNSHIP)
		return TLY_OK;
	/* A village device bootstraps its own village record before enrolment
	 * (tally init); everything else about villages is the township's. */
	if (!s->record_exists && same(change_id(c), a->village_id))
		return TLY_OK;
	why_set(why, "只有乡镇才能登记或修改村的信息");
	return TLY_E_FORBIDDEN;
}

static int check_problem(const struct rules_actor *a, const struct rules_state *s,
			 const struct change *c, struct buf *why)
{
	const char *source, *village;
	int has_source = get_text(c, "source", &source);
	int has_village = get_text(c, "village", &village);
	struct field_view v;
	int village_set = change_field_get(c, "village", &v);

	if (has_village && *village && !s->village_found) {
		why_set(why, "没有找到村 %s", village);
		return TLY_E_NOT_FOUND;
	}
	if (a->role == RULES_TOWNSHIP)
		return TLY_OK;
	if (s->record_exists &&
	    (!same(s->problem_source, "self_check") || !same(s->problem_village, a->village_id))) {
		why_set(why, "这个问题不是本村自查登记的，本村不能修改");
		return TLY_E_FORBIDDEN;
	}
	if ((has_source || !s->record_exists) && !same(source, "self_check")) {
		why_set(why, "村里只能登记自查发现的问题（来源 self_check）");
		return TLY_E_FORBIDDEN;
	}
	if ((village_set || !s->record_exists) && !same(village, a->village_id)) {
		why_set(why, "村里只能为本村登记问题");
		return TLY_E_FORBIDDEN;
	}
	return TLY_OK;
}

static int check_task(const struct rules_actor *a, const struct rules_state *s,
		      const struct change *c, struct buf *why)
{
	const char *status, *village, *problem;
	int has_status = get_text(c, "status", &status);
	get_text(c, "village", &village);
	get_text(c, "problem", &problem);
	struct field_view v;

	if (!s->record_exists) {
		if (!same(status, "todo")) {
			why_set(why, "新任务的状态应为“待整改”(todo)");
			return TLY_E_BAD_STATUS_MOVE;
		}
		if (!s->problem_found) {
			why_set(why, "没有找到问题 %s", problem ? problem : "");
			return TLY_E_NOT_FOUND;
		}
		if (!s->village_found) {
			why_set(why, "没有找到村 %s", village ? village : "");
			return TLY_E_NOT_FOUND;
		}
		if (a->role == RULES_TOWNSHIP)
			return TLY_OK;
		if (!same(village, a->village_id)) {
			why_set(why, "村里只能为本村建立整改任务");
			return TLY_E_FORBIDDEN;
		}
		if (!same(s->problem_source, "self_check") ||
		    !same(s->problem_village, a->village_id)) {
			why_set(why, "村里只能为本村自查发现的问题建立任务");
			return TLY_E_FORBIDDEN;
		}
		return TLY_OK;
	}

	int err = village_owns_task(a, s, why);
	if (err)
		return err;
	/* A task belongs to one problem and one village for life: moving it
	 * would hide it from the village that owns the work. */
	if ((change_field_get(c, "village", &v) && !same(village, s->task_village)) ||
	    (change_field_get(c, "problem", &v) && !same(problem, s->task_problem))) {
		why_set(why, "任务所属的村和问题不能修改");
		return TLY_E_BAD_VALUE;
	}
	if (a->role == RULES_VILLAGE &&
	    (same(s->task_status, "closed") || same(s->task_status, "withdrawn"))) {
		why_set(why, "任务已%s，村里不能再修改",
			same(s->task_status, "closed") ? "销号" : "撤销");
		return TLY_E_FORBIDDEN;
	}
	if (has_status && s->task_status)
		return rules_status_move(a->role, s->task_status, status, why);
	return TLY_OK;
}

static int check_progress(const struct rules_actor *a, const struct rules_state *s,
			  const struct change *c, struct buf *why)
{
	int err = need_task(s, c, why);
	if (!err)
		err = village_owns_task(a, s, why);
	if (!err)
		err = task_is_open(s, "填报进展", why);
	if (err)
		return err;
	struct field_view pct;
	const char *reason;
	change_field_get(c, "percent", &pct);
	get_text(c, "reason", &reason);
	if (s->task_has_progress && pct.i < s->task_progress && (!reason || !*reason)) {
		why_set(why, "完成进度 %lld%% 比上次填报的 %lld%% 低，如确实下降，请用 --reason 写明原因",
			(long long)pct.i, (long long)s->task_progress);
		return TLY_E_PERCENT_DOWN;
	}
	return TLY_OK;
}

static int check_evidence(const struct rules_actor *a, const struct rules_state *s,
			  const struct change *c, struct buf *why)
{
	int err = need_task(s, c, why);
	if (!err)
		err = village_owns_task(a, s, why);
	if (err)
		return err;
	const char *progress, *task;
	get_text(c, "task", &task);
	if (get_text(c, "progress", &progress) && *progress &&
	    (!s->progress_found || !same(s->progress_task, task))) {
		why_set(why, "佐证材料对应的进展记录 %s 不存在或不属于这项任务", progress);
		return TLY_E_NOT_FOUND;
	}
	return TLY_OK;
}

static int check_review(const struct rules_actor *a, const struct rules_state *s,
			const struct change *c, struct buf *why)
{
	const char *type, *task;
	get_text(c, "type", &type);
	get_text(c, "task", &task);
	int err = need_task(s, c, why);
	if (!err)
		err = village_owns_task(a, s, why);
	if (err)
		return err;

	if (same(type, "extension"))
		return task_is_open(s, "申请延期", why);
	if (a->role != RULES_TOWNSHIP) {
		why_set(why, "%s只能由乡镇办理",
			same(type, "close_off")   ? "销号审核"
			: same(type, "reinspect") ? "回头看"
						  : "延期审批");
		return TLY_E_FORBIDDEN;
	}
	if (same(type, "close_off") && !same(s->task_status, "submitted")) {
		why_set(why, "任务当前是“%s”，不是“申请销号”，不能审核销号",
			rules_status_label(s->task_status));
		return TLY_E_BAD_STATUS_MOVE;
	}
	if (same(type, "reinspect") && !same(s->task_status, "closed")) {
		why_set(why, "任务当前是“%s”，只有已销号的任务才能回头看",
			rules_status_label(s->task_status));
		return TLY_E_BAD_STATUS_MOVE;
	}
	if (same(type, "extension_decision")) {
		const char *req;
		get_text(c, "request", &req);
		if (!s->request_found || !same(s->request_type, "extension") ||
		    !same(s->request_task, task)) {
			why_set(why, "没有找到这项任务的延期申请 %s", req ? req : "");
			return TLY_E_NOT_FOUND;
		}
		return task_is_open(s, "审批延期", why);
	}
	return TLY_OK;
}

static int check_notice(const struct rules_actor *a, const struct rules_state *s,
			const struct change *c, struct buf *why)
{
	const char *village;
	if (a->role != RULES_TOWNSHIP) {
		why_set(why, "通报只能由乡镇发出");
		return TLY_E_FORBIDDEN;
	}
	if (get_text(c, "village", &village) && *village && !s->village_found) {
		why_set(why, "没有找到村 %s", village);
		return TLY_E_NOT_FOUND;
	}
	return TLY_OK;
}

int rules_check(const struct rules_actor *a, const struct rules_state *s, const struct change *c,
		struct buf *why)
{
	int err = rules_check_fields(c, s->record_exists, why);
	if (err)
		return err;
	if (a->role == RULES_VILLAGE && (!a->village_id || !*a->village_id)) {
		why_set(why, "本机还没有对应的村，不能修改台账");
		return TLY_E_FORBIDDEN;
	}
	const char *kind = change_kind(c);
	const struct schema_kind *k = schema_kind_find(kind);
	if (k->append_only && s->record_exists) {
		why_set(why, "记录 %s 已经存在，不能修改", change_id(c));
		return TLY_E_EXISTS;
	}
	if (strcmp(kind, "village") == 0)
		return check_village(a, s, c, why);
	if (strcmp(kind, "problem") == 0)
		return check_problem(a, s, c, why);
	if (strcmp(kind, "task") == 0)
		return check_task(a, s, c, why);
	if (strcmp(kind, "progress") == 0)
		return check_progress(a, s, c, why);
	if (strcmp(kind, "evidence") == 0)
		return check_evidence(a, s, c, why);
	if (strcmp(kind, "review") == 0)
		return check_review(a, s, c, why);
	return check_notice(a, s, c, why);
}
