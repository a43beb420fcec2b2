/*
 * ledger — domain operations as batches of changes (see ledger.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobstore.h"
#include "clock.h"
#include "protocol/error.h"
#include "ledger.h"
#include "rules.h"
#include "schema.h"
#include "store.h"
#include "why.h"

/* A batch never holds more than a progress entry, its evidence and a task
 * change; evidence files per entry are bounded to keep it so. */
#define LEDGER_MAX_EVIDENCE 32
#define LEDGER_MAX_DRAFTS (LEDGER_MAX_EVIDENCE + 4)
#define LEDGER_MAX_NOTICE_TASKS 200

struct batch {
	struct change *d[LEDGER_MAX_DRAFTS];
	size_t n;
};

static void batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		change_free(b->d[i]);
	b->n = 0;
}

/* Starts a new draft in the batch for (kind, id); id NULL makes a new one. */
static int batch_add(struct db *db, struct batch *b, const char *kind, const char *id,
		     char *new_id, struct change **out)
{
	char fresh[DB_RECORD_ID_LEN + 1];
	int err;
	if (b->n == LEDGER_MAX_DRAFTS)
		return TLY_E_TOO_MANY;
	if (!id) {
		err = db_record_id(clock_device_ms(), fresh);
		if (err)
			return err;
		id = fresh;
		if (new_id)
			snprintf(new_id, LEDGER_ID_SIZE, "%s", fresh);
	}
	err = store_draft_new(db, kind, id, &b->d[b->n]);
	if (err)
		return err;
	*out = b->d[b->n++];
	return TLY_OK;
}

static const char *field_label(const char *name)
{
	static const struct {
		const char *name, *label;
	} t[] = {
		{"measures", "整改措施"}, {"target", "整改目标"},   {"root_cause", "问题根源"},
		{"elsewhere", "举一反三"}, {"leader", "责任领导"},  {"owner", "责任人"},
		{"deadline", "完成时限"}, {"text", "内容"},         {"note", "说明"},
		{"reason", "原因"},       {"opinion", "意见"},      {"title", "标题"},
		{"name", "名称"},         {"round", "轮次"},        {"doc_no", "文号"},
		{"category", "类别"},     {"manifestations", "具体表现"}, {"author", "填报人"},
		{"tasks", "相关任务"},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		if (strcmp(t[i].name, name) == 0)
			return t[i].label;
	}
	return name;
}

static int set_text(struct change *c, const char *name, const char *text, struct buf *why)
{
	if (!text)
		return TLY_OK;
	int err = change_set_text(c, name, text, strlen(text), NULL);
	if (err == TLY_E_BAD_UTF8)
		why_set(why, "“%s”的文字编码不对（不是 UTF-8），请重新输入", field_label(name));
	else if (err == TLY_E_FIELD_TOO_LONG)
		why_set(why, "“%s”太长（%zu 字节），超过了允许的长度", field_label(name),
			strlen(text));
	return err;
}

static int set_int(struct change *c, const char *name, int64_t v)
{
	return change_set_int(c, name, v, NULL);
}

static const char *author_of(struct db *db)
{
	const char *u = getenv("TALLY_USER");
	if (u && *u && change_check_utf8(u, strlen(u)) == TLY_OK && strlen(u) <= 128)
		return u;
	return db_site(db) ? db_site(db)->name : "";
}

static int today(char out[CLOCK_DATE_LEN + 1], struct buf *why)
{
	int err = clock_today(out);
	if (err)
		why_set(why, "环境变量 TALLY_TODAY 不是有效日期（应为 YYYY-MM-DD）");
	return err;
}

static int write_batch(struct db *db, struct batch *b, struct buf *why)
{
	int err = store_write(db, b->d, b->n, why, NULL);
	batch_free(b);
	return err;
}

/* ---- ids -------------------------------------------------------------------- */

/* Collects up to 6 ids of kind matching one GLOB pattern form; an exact id
 * ends the search as the only candidate. */
static int resolve_pass(struct db *db, const struct schema_kind *k, const char *glob,
			const char *ref, char *out, int *n, struct buf *cands)
{
	char sql[128];
	sqlite3_stmt *st;
	int rc, err;

	snprintf(sql, sizeof sql, "SELECT id FROM \"%s\" WHERE id GLOB %s ORDER BY id LIMIT 6",
		 k->kind, glob);
	err = db_stmt(db, sql, &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, ref, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		if (!id)
			continue;
		if (strcmp(id, ref) == 0) { /* an exact id always wins */
			snprintf(out, LEDGER_ID_SIZE, "%s", id);
			*n = 1;
			buf_reset(cands);
			break;
		}
		if (*n == 0)
			snprintf(out, LEDGER_ID_SIZE, "%s", id);
		if (*n < 5)
			(void)buf_addf(cands, "%s%s", *n ? "、" : "", id);
		(*n)++;
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? TLY_OK : db_err(db, rc);
}

int ledger_resolve(struct db *db, const char *kind, const char *prefix, char *out,
		   struct buf *why)
{
	const struct schema_kind *k = schema_kind_find(kind);
	int err, n = 0;
	struct buf cands;

	if (!k)
		return TLY_E_INTERNAL;
	/* Ids are [0-9A-Za-z_-], so the prefix holds no GLOB metacharacter. */
	if (!prefix || change_check_id(prefix) != TLY_OK) {
		why_set(why, "编号格式不对：%s", prefix ? prefix : "");
		return TLY_E_NOT_FOUND;
	}
	buf_init(&cands, 512);
	/* A prefix first; failing that, the id's last digits: new ids begin
	 * with their creation time (db_record_id), so records made the same
	 * day share their first digits and differ at the end. */
	err = resolve_pass(db, k, "? || '*'", prefix, out, &n, &cands);
	if (!err && n == 0)
		err = resolve_pass(db, k, "'*' || ?", prefix, out, &n, &cands);
	if (!err && n == 0) {
		why_set(why, "没有找到编号为 %s 的%s", prefix,
			strcmp(kind, "task") == 0      ? "任务"
			: strcmp(kind, "problem") == 0 ? "问题"
			: strcmp(kind, "village") == 0 ? "村"
			: strcmp(kind, "review") == 0  ? "审核记录"
						       : "记录");
		err = TLY_E_NOT_FOUND;
	} else if (!err && n > 1) {
		why_set(why, "编号 %s 对应了多条记录：%s%s，请多输入几位", prefix,
			cands.data ? cands.data : "", n > 5 ? " 等" : "");
		err = TLY_E_AMBIGUOUS;
	}
	buf_free(&cands);
	return err;
}

int ledger_village_find(struct db *db, const char *name_or_id, char *out, struct buf *why)
{
	sqlite3_stmt *st;
	int err = db_stmt(db, "SELECT id FROM village WHERE name = ? ORDER BY id LIMIT 2", &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, name_or_id, -1, SQLITE_TRANSIENT);
	int found = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (found++ == 0)
			snprintf(out, LEDGER_ID_SIZE, "%s", (const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_err(db, rc);
	if (found == 1)
		return TLY_OK;
	if (found > 1) {
		why_set(why, "有多个村叫“%s”，请用村的编号", name_or_id);
		return TLY_E_AMBIGUOUS;
	}
	err = ledger_resolve(db, "village", name_or_id, out, NULL);
	if (err == TLY_E_NOT_FOUND)
		why_set(why, "没有找到村“%s”（可用 tally village list 查看）", name_or_id);
	else if (err == TLY_E_AMBIGUOUS)
		why_set(why, "编号 %s 对应了多个村，请多输入几位", name_or_id);
	return err;
}

/* ---- init ------------------------------------------------------------------------ */

int ledger_init(const char *path, const char *role, const char *name, const char *village_id,
		struct db **out, struct buf *why)
{
	struct db *db = NULL;
	char vid[DB_ID_LEN + 1];
	struct batch b = {0};
	struct change *c;
	int err;

	if (out)
		*out = NULL;
	if (strcmp(role, "village") != 0 && strcmp(role, "township") != 0) {
		why_set(why, "--role 应为 village 或 township");
		return TLY_E_USAGE;
	}
	if (change_check_utf8(name, strlen(name)) || !*name || strlen(name) > 256) {
		why_set(why, "名称为空、太长或不是 UTF-8 文字");
		return !*name || strlen(name) > 256 ? TLY_E_BAD_VALUE : TLY_E_BAD_UTF8;
	}
	if (village_id && (strcmp(role, "village") != 0 || change_check_id(village_id))) {
		why_set(why, "--village-id 只用于村的设备，且须是有效编号");
		return TLY_E_BAD_VALUE;
	}
	err = db_open(path, DB_OPEN_CREATE, &db, why);
	if (err)
		return err;
	if (db_site(db)) {
		why_set(why, "%s 已经建立过台账（本机：%s），不能重复初始化", path, db_site(db)->name);
		err = TLY_E_EXISTS;
		goto out;
	}
	int own_village = strcmp(role, "village") == 0 && !village_id;
	if (own_village) {
		err = db_random_id(vid);
		if (err)
			goto out;
		village_id = vid;
	}
	/* Identity and the village's own record commit together: a crash
	 * cannot leave a village device without its village. */
	err = db_begin(db);
	if (!err)
		err = db_site_create(db, role, name, strcmp(role, "village") == 0 ? village_id : NULL,
				     clock_device_ms());
	if (!err && own_village) {
		/* Before enrolment the device keeps its own village record; it
		 * goes upstream like any change (rules.c allows exactly this). */
		err = batch_add(db, &b, "village", village_id, NULL, &c);
		if (!err)
			err = set_text(c, "name", name, why);
		if (!err)
			err = store_write_in_txn(db, b.d, b.n, why, NULL);
	}
	if (!err)
		err = db_commit(db);
	if (err) {
		db_rollback(db);
		goto out;
	}
	if (out) {
		*out = db;
		db = NULL;
	}
out:
	batch_free(&b);
	db_close(db);
	return err;
}

/* ---- records ------------------------------------------------------------------- */

int ledger_village_add(struct db *db, const char *name, char *out, struct buf *why)
{
	struct batch b = {0};
	struct change *c;
	int err = batch_add(db, &b, "village", NULL, out, &c);
	if (!err)
		err = set_text(c, "name", name, why);
	if (!err)
		return write_batch(db, &b, why);
	batch_free(&b);
	return err;
}

int ledger_problem_add(struct db *db, const struct ledger_problem *p, char *out, struct buf *why)
{
	struct batch b = {0};
	struct change *c;
	char d[CLOCK_DATE_LEN + 1];
	const struct db_site *s = db_site(db);
	int err = today(d, why);
	if (!err)
		err = batch_add(db, &b, "problem", NULL, out, &c);
	if (!err)
		err = set_text(c, "source", p->source, why);
	if (!err)
		err = set_text(c, "text", p->text, why);
	if (!err)
		err = set_text(c, "round", p->round, why);
	if (!err)
		err = set_text(c, "doc_no", p->doc_no, why);
	if (!err)
		err = set_text(c, "category", p->category, why);
	if (!err)
		err = set_text(c, "manifestations", p->manifestations, why);
	/* A village's own finds belong to it; township problems to no village. */
	if (!err && s && s->village_id)
		err = set_text(c, "village", s->village_id, why);
	if (!err)
		err = set_text(c, "created_on", d, why);
	if (!err)
		return write_batch(db, &b, why);
	batch_free(&b);
	return err;
}

static int set_task_fields(struct change *c, const struct ledger_task *t, struct buf *why)
{
	int err = set_text(c, "measures", t->measures, why);
	if (!err)
		err = set_text(c, "target", t->target, why);
	if (!err)
		err = set_text(c, "root_cause", t->root_cause, why);
	if (!err)
		err = set_text(c, "elsewhere", t->elsewhere, why);
	if (!err)
		err = set_text(c, "owner", t->owner, why);
	if (!err)
		err = set_text(c, "leader", t->leader, why);
	if (!err)
		err = set_text(c, "deadline", t->deadline, why);
	if (!err)
		err = set_text(c, "status", t->status, why);
	return err;
}

int ledger_task_add(struct db *db, const struct ledger_task *t, char *out, struct buf *why)
{
	struct batch b = {0};
	struct change *c;
	char problem[LEDGER_ID_SIZE], village[LEDGER_ID_SIZE], d[CLOCK_DATE_LEN + 1];
	const struct db_site *s = db_site(db);
	int err;

	if (!s)
		return TLY_E_NOT_INITIALISED;
	if (t->deadline && clock_check_date(t->deadline)) {
		why_set(why, "完成时限不是有效日期（应为 YYYY-MM-DD）：%s", t->deadline);
		return TLY_E_BAD_DATE;
	}
	err = today(d, why);
	if (!err)
		err = ledger_resolve(db, "problem", t->problem, problem, why);
	if (err)
		return err;
	if (t->village) {
		err = ledger_village_find(db, t->village, village, why);
		if (err)
			return err;
	} else if (s->village_id) {
		snprintf(village, sizeof village, "%s", s->village_id);
	} else {
		why_set(why, "乡镇建立任务时必须用 --village 指定村");
		return TLY_E_USAGE;
	}
	err = batch_add(db, &b, "task", NULL, out, &c);
	if (!err)
		err = set_text(c, "problem", problem, why);
	if (!err)
		err = set_text(c, "village", village, why);
	if (!err)
		err = set_task_fields(c, t, why);
	if (!err && !t->status)
		err = set_text(c, "status", "todo", why);
	if (!err)
		err = set_text(c, "created_on", d, why);
	if (!err)
		return write_batch(db, &b, why);
	batch_free(&b);
	return err;
}

int ledger_task_update(struct db *db, const char *task, const struct ledger_task *t,
		       struct buf *why)
{
	struct batch b = {0};
	struct change *c;
	char id[LEDGER_ID_SIZE];
	if (t->problem || t->village) {
		why_set(why, "任务所属的村和问题不能修改");
		return TLY_E_BAD_VALUE;
	}
	if (t->deadline && clock_check_date(t->deadline)) {
		why_set(why, "完成时限不是有效日期（应为 YYYY-MM-DD）：%s", t->deadline);
		return TLY_E_BAD_DATE;
	}
	int err = ledger_resolve(db, "task", task, id, why);
	if (!err)
		err = batch_add(db, &b, "task", id, NULL, &c);
	if (!err)
		err = set_task_fields(c, t, why);
	if (!err && change_field_count(c) == 0) {
		why_set(why, "没有要修改的内容（请给出 --measures、--deadline 等）");
		err = TLY_E_USAGE;
	}
	if (!err)
		return write_batch(db, &b, why);
	batch_free(&b);
	return err;
}

/* ---- work on a task ------------------------------------------------------------- */

static int task_status(struct db *db, const char *id, char *out, size_t n)
{
	sqlite3_stmt *st;
	int err = db_stmt(db, "SELECT status FROM task WHERE id = ?", &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	out[0] = '\0';
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	return TLY_OK;
}

/*
 * Copies an evidence file into the site's store and adds its record to the
 * batch. The blob is durable before the record is written: a record never
 * names a file this site could have lost (blobstore.h).
 */
static int add_evidence(struct db *db, struct batch *b, const char *task, const char *progress,
			const char *file, const char *date, struct buf *why)
{
	struct blobstore_info bi;
	struct change *c;
	const char *base = strrchr(file, '/');
	base = base ? base + 1 : file;
	int err = blobstore_put_file(
		db, file, db_setting_int(db, "evidence_max_bytes", BLOBSTORE_MAX_FILE_DEFAULT), &bi,
		why);
	if (!err)
		err = batch_add(db, b, "evidence", NULL, NULL, &c);
	if (!err)
		err = set_text(c, "task", task, why);
	if (!err && progress)
		err = set_text(c, "progress", progress, why);
	if (!err)
		err = set_text(c, "sha256", bi.sha256, why);
	if (!err)
		err = set_text(c, "name", base, why);
	if (!err)
		err = set_int(c, "size", bi.size);
	if (!err)
		err = set_text(c, "type", bi.type, why);
	if (!err)
		err = set_text(c, "author", author_of(db), why);
	if (!err)
		err = set_text(c, "date", date, why);
	return err;
}

int ledger_progress_add(struct db *db, const char *task, int64_t percent, const char *note,
			const char *reason, const char *const *evidence, size_t nevidence,
			char *out, struct buf *why)
{
	struct batch b = {0};
	struct change *c;
	char id[LEDGER_ID_SIZE], pid[LEDGER_ID_SIZE], d[CLOCK_DATE_LEN + 1], status[32];
	int err;

	if (percent < 0 || percent > 100) {
		why_set(why, "完成进度应在 0 到 100 之间，填的是 %lld", (long long)percent);
		return TLY_E_BAD_PERCENT;
	}
	if (nevidence > LEDGER_MAX_EVIDENCE) {
		why_set(why, "一次最多附 %d 个佐证文件", LEDGER_MAX_EVIDENCE);
		return TLY_E_TOO_MANY;
	}
	err = today(d, why);
	if (!err)
		err = ledger_resolve(db, "task", task, id, why);
	if (!err)
		err = task_status(db, id, status, sizeof status);
	if (!err)
		err = batch_add(db, &b, "progress", NULL, pid, &c);
	if (!err)
		err = set_text(c, "task", id, why);
	if (!err)
		err = set_int(c, "percent", percent);
	if (!err)
		err = set_text(c, "note", note, why);
	if (!err && reason && *reason)
		err = set_text(c, "reason", reason, why);
	if (!err)
		err = set_text(c, "author", author_of(db), why);
	if (!err)
		err = set_text(c, "date", d, why);
	for (size_t i = 0; !err && i < nevidence; i++)
		err = add_evidence(db, &b, id, pid, evidence[i], d, why);
	/* Reporting work on a task that has not started means it has. */
	if (!err && strcmp(status, "todo") == 0) {
		err = batch_add(db, &b, "task", id, NULL, &c);
		if (!err)
			err = set_text(c, "status", "doing", why);
	}
	if (!err) {
		err = write_batch(db, &b, why);
		if (!err && out)
			snprintf(out, LEDGER_ID_SIZE, "%s", pid);
		return err;
	}
	batch_free(&b);
	return err;
}

int ledger_evidence_add(struct db *db, const char *task, const char *progress,
			const char *const *files, size_t nfiles, struct buf *why)
{
	struct batch b = {0};
	char id[LEDGER_ID_SIZE], pid[LEDGER_ID_SIZE], d[CLOCK_DATE_LEN + 1];
	int err;

	if (nfiles == 0 || nfiles > LEDGER_MAX_EVIDENCE) {
		why_set(why, "一次可附 1 到 %d 个佐证文件", LEDGER_MAX_EVIDENCE);
		return nfiles ? TLY_E_TOO_MANY : TLY_E_USAGE;
	}
	err = today(d, why);
	if (!err)
		err = ledger_resolve(db, "task", task, id, why);
	if (!err && progress)
		err = ledger_resolve(db, "progress", progress, pid, why);
	for (size_t i = 0; !err && i < nfiles; i++)
		err = add_evidence(db, &b, id, progress ? pid : NULL, files[i], d, why);
	if (!err)
		return write_batch(db, &b, why);
	batch_free(&b);
	return err;
}

static int status_change(struct db *db, struct batch *b, const char *task, const char *status,
			 struct buf *why)
{
	struct change *c;
	int err = batch_add(db, b, "task", task, NULL, &c);
	if (!err)
		err = set_text(c, "status", status, why);
	return err;
}

int ledger_submit(struct db *db, const char *task, struct buf *why)
{
	struct batch b = {0};
	char id[LEDGER_ID_SIZE];
	int err = ledger_resolve(db, "task", task, id, why);
	if (!err)
		err = status_change(db, &b, id, "submitted", why);
	if (!err)
		return write_batch(db, &b, why);
	batch_free(&b);
	return err;
}

/* A review record about task; the status change (if any) follows it in the
 * same batch, so the rules see the review against the status before. */
static int review_batch(struct db *db, const char *task_prefix, const char *type,
			const char *decision, const char *opinion, const char *until,
			const char *request, const char *new_status, const char *new_deadline,
			char *out, struct buf *why)
{
	struct batch b = {0};
	struct change *c;
	char id[LEDGER_ID_SIZE], d[CLOCK_DATE_LEN + 1];
	int err = today(d, why);
	if (!err)
		err = ledger_resolve(db, "task", task_prefix, id, why);
	if (!err)
		err = batch_add(db, &b, "review", NULL, out, &c);
	if (!err)
		err = set_text(c, "task", id, why);
	if (!err)
		err = set_text(c, "type", type, why);
	if (!err)
		err = set_text(c, "decision", decision, why);
	if (!err)
		err = set_text(c, "opinion", opinion, why);
	if (!err)
		err = set_text(c, "until", until, why);
	if (!err)
		err = set_text(c, "request", request, why);
	if (!err)
		err = set_text(c, "author", author_of(db), why);
	if (!err)
		err = set_text(c, "date", d, why);
	if (!err && new_status)
		err = status_change(db, &b, id, new_status, why);
	if (!err && new_deadline) {
		err = batch_add(db, &b, "task", id, NULL, &c);
		if (!err)
			err = set_text(c, "deadline", new_deadline, why);
	}
	if (!err)
		return write_batch(db, &b, why);
	batch_free(&b);
	return err;
}

int ledger_review(struct db *db, const char *task, int approve, const char *opinion, char *out,
		  struct buf *why)
{
	return review_batch(db, task, "close_off", approve ? "approve" : "reject", opinion, NULL,
			    NULL, approve ? "closed" : "doing", NULL, out, why);
}

int ledger_reinspect(struct db *db, const char *task, int holds, const char *note, char *out,
		     struct buf *why)
{
	return review_batch(db, task, "reinspect", holds ? "holds" : "rebounded", note, NULL, NULL,
			    holds ? NULL : "doing", NULL, out, why);
}

int ledger_extend_request(struct db *db, const char *task, const char *until, const char *reason,
			  char *out, struct buf *why)
{
	if (!until || clock_check_date(until)) {
		why_set(why, "延期日期不是有效日期（应为 YYYY-MM-DD）：%s", until ? until : "");
		return TLY_E_BAD_DATE;
	}
	return review_batch(db, task, "extension", NULL, reason, until, NULL, NULL, NULL, out, why);
}

/* Finds the extension request named by `ref` (its id, or a task whose
 * latest undecided request is meant): request id, task id, until. */
static int find_request(struct db *db, const char *ref, char *req, char *task, char *until,
			struct buf *why)
{
	sqlite3_stmt *st;
	char id[LEDGER_ID_SIZE];
	int err = ledger_resolve(db, "review", ref, id, NULL);
	if (err == TLY_OK) {
		err = db_stmt(db, "SELECT task, until, type FROM review WHERE id = ?", &st);
		if (err)
			return err;
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		err = TLY_E_NOT_FOUND;
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 2) &&
		    strcmp((const char *)sqlite3_column_text(st, 2), "extension") == 0 &&
		    sqlite3_column_text(st, 0) && sqlite3_column_text(st, 1)) {
			snprintf(req, LEDGER_ID_SIZE, "%s", id);
			snprintf(task, LEDGER_ID_SIZE, "%s", (const char *)sqlite3_column_text(st, 0));
			snprintf(until, CLOCK_DATE_LEN + 1, "%s",
				 (const char *)sqlite3_column_text(st, 1));
			err = TLY_OK;
		}
		sqlite3_reset(st);
		if (err)
			why_set(why, "%s 不是延期申请", ref);
		return err;
	}
	err = ledger_resolve(db, "task", ref, task, why);
	if (err) {
		why_set(why, "没有找到延期申请或任务 %s", ref);
		return err;
	}
	err = db_stmt(db,
		      "SELECT r.id, r.until FROM review r JOIN record_base f ON f.kind = 'review' "
		      "AND f.record_id = r.id WHERE r.task = ? "
		      "AND r.type = 'extension' AND NOT EXISTS (SELECT 1 FROM review x WHERE "
		      "x.type = 'extension_decision' AND x.request = r.id) "
		      "ORDER BY f.stamp DESC, f.site DESC LIMIT 1",
		      &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, task, -1, SQLITE_TRANSIENT);
	err = TLY_E_NOT_FOUND;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 1)) {
		snprintf(req, LEDGER_ID_SIZE, "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(until, CLOCK_DATE_LEN + 1, "%s", (const char *)sqlite3_column_text(st, 1));
		err = TLY_OK;
	}
	sqlite3_reset(st);
	if (err)
		why_set(why, "任务 %s 没有待审批的延期申请", task);
	return err;
}

int ledger_extend_decide(struct db *db, const char *request, int approve, const char *opinion,
			 char *out, struct buf *why)
{
	char req[LEDGER_ID_SIZE], task[LEDGER_ID_SIZE], until[CLOCK_DATE_LEN + 1];
	int err = find_request(db, request, req, task, until, why);
	if (err)
		return err;
	return review_batch(db, task, "extension_decision", approve ? "approve" : "reject",
			    opinion, NULL, req, NULL, approve ? until : NULL, out, why);
}

int ledger_notice_send(struct db *db, const char *type, const char *village, const char *title,
		       const char *text, const char *const *tasks, size_t ntasks, char *out,
		       struct buf *why)
{
	struct batch b = {0};
	struct change *c;
	struct buf list;
	char vid[LEDGER_ID_SIZE], d[CLOCK_DATE_LEN + 1];
	int err;

	if (ntasks > LEDGER_MAX_NOTICE_TASKS) {
		why_set(why, "一份通报最多关联 %d 项任务", LEDGER_MAX_NOTICE_TASKS);
		return TLY_E_TOO_MANY;
	}
	buf_init(&list, (size_t)LEDGER_MAX_NOTICE_TASKS * LEDGER_ID_SIZE);
	err = today(d, why);
	if (!err && village)
		err = ledger_village_find(db, village, vid, why);
	/* Tasks travel as one comma-separated text field: ids never hold commas. */
	for (size_t i = 0; !err && i < ntasks; i++) {
		char id[LEDGER_ID_SIZE];
		err = ledger_resolve(db, "task", tasks[i], id, why);
		if (!err)
			err = buf_addf(&list, "%s%s", i ? "," : "", id);
	}
	if (!err)
		err = batch_add(db, &b, "notice", NULL, out, &c);
	if (!err)
		err = set_text(c, "type", type, why);
	if (!err && village)
		err = set_text(c, "village", vid, why);
	if (!err)
		err = set_text(c, "title", title, why);
	if (!err)
		err = set_text(c, "text", text, why);
	if (!err && ntasks)
		err = set_text(c, "tasks", list.data, why);
	if (!err)
		err = set_text(c, "author", author_of(db), why);
	if (!err)
		err = set_text(c, "date", d, why);
	buf_free(&list);
	if (!err)
		return write_batch(db, &b, why);
	batch_free(&b);
	return err;
}
