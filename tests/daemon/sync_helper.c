/*
 * sync_helper — test data and internals the sync tests need, done
 * through the project's own functions (nothing re-implemented):
 *
 *   sync_helper backoff MIN MAX FAILURES RND              prints the delay
 *   sync_helper tasks VILLAGE_DB N                        N new tasks (ledger_task_add)
 *   sync_helper update DB N STATUS [SKIP]                 moves N tasks to STATUS
 *                                                         (by id order, after SKIP)
 *   sync_helper edit DB FILE                              one ledger_task_update per
 *                                                         line "TASK<TAB>FIELD<TAB>VALUE"
 *
 * Task texts are drawn from the phrase pool of ../shared/bench/peers (the
 * PouchDB bench): measures ~100 characters, target ~150, so bytes on the
 * wire compare with its records.
 *
 * edit sets one task field per line (measures, target, root_cause, elsewhere,
 * owner, leader, deadline or status) as the database's own role, so the
 * role rules apply as for `tally task update`; the soak test makes its
 * 1,000 concurrent edit pairs with it.
 *
 * tasks/update/edit run with synchronous=OFF: they make test data fast, they are
 * not what is under test (the write path's durability has its own tests).
 *
 * Exit 0 on success, 1 with the error code on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "client/db.h"
#include "client/ledger.h"
#include "daemon/syncd.h"
#include "protocol/error.h"

static const char *const phrases[] = {
	"村集体经济", "账目公开不及时", "惠民资金", "发放不规范", "财务票据", "审核把关不严",
	"低保评定", "程序不透明", "工程项目", "招投标", "监督缺位", "党员教育", "流于形式",
	"三务公开", "内容不全", "扶贫项目", "资产管理", "台账不清", "矛盾纠纷", "排查化解",
	"人居环境", "整治不到位", "垃圾清运", "不及时", "基层干部", "作风不实", "群众反映",
	"问题未回应", "土地流转", "合同不规范", "集体资金", "管理混乱", "制度执行", "不严格",
	"责任落实", "不到位", "整改措施", "建立台账", "明确责任人", "限期整改", "定期回访",
	"公开公示", "加强培训", "完善制度", "严格审批", "专项检查", "跟踪督办", "逐项销号",
	"召开会议", "研究部署", "对照问题", "举一反三", "健全机制", "长效管理", "群众满意",
	"巩固成果", "，", "。", "；", "、",
};

/* About `chars` Chinese characters (3 bytes each) of random phrases. */
static void chinese_text(unsigned *seed, size_t chars, char *out, size_t cap)
{
	size_t len = 0, want = chars * 3;
	out[0] = '\0';
	while (len < want) {
		const char *p = phrases[rand_r(seed) % (sizeof phrases / sizeof phrases[0])];
		size_t n = strlen(p);
		if (len + n + 1 > cap)
			break;
		memcpy(out + len, p, n + 1);
		len += n;
	}
}

/* The ledger_task member named `field`, or NULL. */
static const char **task_field(struct ledger_task *t, const char *field)
{
	static const char *const names[] = {"measures", "target",   "root_cause", "elsewhere",
					    "owner",    "leader",   "deadline",   "status"};
	const char **slots[] = {&t->measures, &t->target, &t->root_cause, &t->elsewhere,
				&t->owner,    &t->leader, &t->deadline,   &t->status};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strcmp(names[i], field) == 0)
			return slots[i];
	}
	return NULL;
}

/* Applies the edits listed in the file at path (see the header). */
static int edit_tasks(struct db *db, const char *path, struct buf *why)
{
	char line[4096];
	int err = TLY_OK;
	FILE *f = fopen(path, "r");
	if (!f)
		return TLY_E_IO;
	while (!err && fgets(line, sizeof line, f)) {
		struct ledger_task t = {0};
		char *field, *value, *nl = strchr(line, '\n');
		const char **slot;
		if (nl)
			*nl = '\0';
		field = strchr(line, '\t');
		value = field ? strchr(field + 1, '\t') : NULL;
		if (!value) {
			err = TLY_E_USAGE;
			break;
		}
		*field++ = '\0';
		*value++ = '\0';
		slot = task_field(&t, field);
		if (!slot) {
			err = TLY_E_USAGE;
			break;
		}
		*slot = value;
		err = ledger_task_update(db, line, &t, why);
	}
	fclose(f);
	return err;
}

int main(int argc, char **argv)
{
	struct buf why;
	struct db *db = NULL;
	int err = TLY_E_USAGE;
	buf_init(&why, 4096);
	if (argc == 6 && strcmp(argv[1], "backoff") == 0) {
		struct syncd_options o;
		syncd_options_default(&o);
		o.backoff_min_ms = atoll(argv[2]);
		o.backoff_max_ms = atoll(argv[3]);
		printf("%lld\n", (long long)syncd_backoff_ms(&o, (unsigned)atoi(argv[4]),
							   strtoull(argv[5], NULL, 10)));
		err = TLY_OK;
	} else if (argc == 4 && strcmp(argv[1], "tasks") == 0) {
		char pid[LEDGER_ID_SIZE], tid[LEDGER_ID_SIZE];
		struct ledger_problem p = {0};
		long n = atol(argv[3]);
		err = db_open(argv[2], 0, &db, &why);
		if (!err)
			err = db_exec(db, "PRAGMA synchronous=OFF");
		p.source = "self_check";
		p.text = "自查发现的问题（批量）";
		if (!err)
			err = ledger_problem_add(db, &p, pid, &why);
		unsigned seed = (unsigned)getpid();
		for (long i = 0; i < n && !err; i++) {
			char measures[512], target[768];
			struct ledger_task t = {0};
			chinese_text(&seed, 100, measures, sizeof measures);
			chinese_text(&seed, 150, target, sizeof target);
			t.problem = pid;
			t.measures = measures;
			t.target = target;
			t.owner = "李明";
			t.leader = "王书记";
			t.deadline = "2027-06-30";
			err = ledger_task_add(db, &t, tid, &why);
		}
	} else if ((argc == 5 || argc == 6) && strcmp(argv[1], "update") == 0) {
		long n = atol(argv[3]);
		static char ids[100000][LEDGER_ID_SIZE];
		long k = 0;
		sqlite3_stmt *st;
		err = db_open(argv[2], 0, &db, &why);
		if (!err)
			err = db_exec(db, "PRAGMA synchronous=OFF");
		if (!err)
			err = db_stmt(db, "SELECT id FROM task ORDER BY id LIMIT -1 OFFSET ?", &st);
		if (!err)
			sqlite3_bind_int64(st, 1, argc == 6 ? atoll(argv[5]) : 0);
		while (!err && k < n && k < 100000 && sqlite3_step(st) == SQLITE_ROW)
			snprintf(ids[k++], LEDGER_ID_SIZE, "%s", sqlite3_column_text(st, 0));
		if (!err)
			sqlite3_reset(st);
		for (long i = 0; i < k && !err; i++) {
			struct ledger_task t = {0};
			t.status = argv[4];
			err = ledger_task_update(db, ids[i], &t, &why);
		}
	} else if (argc == 4 && strcmp(argv[1], "edit") == 0) {
		err = db_open(argv[2], 0, &db, &why);
		if (!err)
			err = db_exec(db, "PRAGMA synchronous=OFF");
		if (!err)
			err = edit_tasks(db, argv[3], &why);
	}
	if (err)
		fprintf(stderr, "sync_helper: %s %s\n", error_name(err), why.data ? why.data : "");
	db_close(db);
	buf_free(&why);
	return err ? 1 : 0;
}
