/*
 * bench_report — time and peak memory of `tally report` on a big township:
 * 500 villages x 100 tasks (50,000 ledger rows), 80 % of tasks with one or
 * two progress entries.
 *
 * The database is filled with bulk SQL in one transaction (village,
 * problem, task and progress rows, and the record_base row of each
 * progress entry that the report's "latest entry" reads), NOT through
 * the ledger write path: that path fsyncs every write (~250/s here, so
 * 50,000 tasks would take minutes) and the report reads only the domain
 * tables and record_base, which bulk SQL fills with the same shapes.
 *
 * Measured, each from the open database: report_build (the summary and
 * the ledger in memory: one read transaction), the text summary to
 * /dev/null, the CSV, and report_xlsx_write. Peak memory is getrusage's
 * ru_maxrss, read after each phase (it only grows).
 *
 *   build-rel/bench/bench_report [DIR] [VILLAGES] [TASKS_PER_VILLAGE]
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/db.h"
#include "client/ledger.h"
#include "client/report.h"
#include "client/report_csv.h"
#include "client/report_xlsx.h"
#include "protocol/error.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long maxrss_kb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static int fill(struct db *db, int villages, int per)
{
	char sql[4096];
	int err = db_begin(db);
	if (err)
		return err;
	snprintf(sql, sizeof sql,
		 "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < %d) "
		 "INSERT INTO village (id, name) SELECT printf('v%%05d', n), printf('第%%d村', n + 1) "
		 "FROM s;"
		 "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < 49) "
		 "INSERT INTO problem (id, source, round, doc_no, category, text, manifestations, "
		 "created_on) SELECT printf('p%%03d', n), "
		 "CASE n %% 5 WHEN 0 THEN 'inspection' WHEN 1 THEN 'patrol' WHEN 2 THEN 'audit' "
		 "WHEN 3 THEN 'supervision' ELSE 'self_check' END, '第二轮', printf('镇纪〔2026〕%%d号', n), "
		 "'作风建设', printf('问题原文第%%d条：村务公开不及时，\"三务\"公开栏内容更新滞后。', n), "
		 "'具体表现：公开栏内容停留在上季度；财务票据未按月公示。', '2026-01-01' FROM s;"
		 "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < %d) "
		 "INSERT INTO task (id, problem, village, measures, target, root_cause, elsewhere, "
		 "leader, owner, deadline, status, created_on) SELECT printf('t%%07d', n), "
		 "printf('p%%03d', n %% 50), printf('v%%05d', n / %d), "
		 "printf('整改措施%%d：建立公开台账，每月5日前更新公开栏并拍照留存。', n), "
		 "'公开内容及时、完整、准确', '制度执行不严', '对照检查其他公开事项', '村党支部书记', "
		 "printf('责任人%%d', n %% 97), date('2026-03-01', ((n * 37) %% 90 - 30) || ' days'), "
		 "CASE n %% 6 WHEN 0 THEN 'todo' WHEN 1 THEN 'doing' WHEN 2 THEN 'submitted' "
		 "WHEN 3 THEN 'closed' WHEN 4 THEN 'long_term' ELSE 'withdrawn' END, "
		 "date('2026-03-01', '-' || (n %% 60 + 1) || ' days') FROM s;"
		 "INSERT INTO progress (id, task, percent, note, author, date) "
		 "SELECT 'g' || substr(id, 2), id, (rowid * 7) %% 101, '已完成公开栏更新，照片已上传。', "
		 "'村文书', date('2026-03-01', '-' || (rowid %% 30) || ' days') FROM task "
		 "WHERE rowid %% 5 <> 0;"
		 "INSERT INTO progress (id, task, percent, note, author, date) "
		 "SELECT 'h' || substr(id, 2), id, 100, '第二次进展', '村文书', '2026-02-27' "
		 "FROM task WHERE rowid %% 5 = 1;"
		 "INSERT INTO record_base (kind, record_id, stamp, site, seq, mask) "
		 "SELECT 'progress', id, rowid, 'bench', rowid, 63 FROM progress;",
		 villages - 1, villages * per - 1, per);
	err = db_exec(db, sql);
	if (err) {
		db_rollback(db);
		return err;
	}
	return db_commit(db);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/tmp";
	int villages = argc > 2 ? atoi(argv[2]) : 500, per = argc > 3 ? atoi(argv[3]) : 100;
	char path[1024], xlsx[1024], csv[1024];
	struct db *db = NULL;
	struct report *r = NULL;
	struct buf why;
	struct stat st;
	int err;

	setenv("TALLY_TODAY", "2026-03-01", 1);
	buf_init(&why, 1024);
	snprintf(path, sizeof path, "%s/bench_report.db", dir);
	snprintf(xlsx, sizeof xlsx, "%s/bench_report.xlsx", dir);
	snprintf(csv, sizeof csv, "%s/bench_report.csv", dir);
	unlink(path);
	for (const char *suf = "-wal"; suf; suf = NULL) {
		char p[1100];
		snprintf(p, sizeof p, "%s%s", path, suf);
		unlink(p);
	}
	double t = now_s();
	err = ledger_init(path, "township", "基准镇", NULL, &db, &why);
	if (!err)
		err = fill(db, villages, per);
	if (err) {
		fprintf(stderr, "fill: %s %s\n", error_name(err), why.data ? why.data : "");
		return 1;
	}
	/* Reopen so the report starts from a cold connection, as `tally` does. */
	db_close(db);
	db = NULL;
	if (db_open(path, 0, &db, &why) != TLY_OK)
		return 1;
	printf("database: %d villages x %d tasks, filled by bulk SQL in %.2f s\n", villages, per,
	       now_s() - t);
	long rss0 = maxrss_kb();

	t = now_s();
	err = report_build(db, NULL, &r);
	double t_build = now_s() - t;
	long rss1 = maxrss_kb();
	if (err) {
		fprintf(stderr, "report_build: %s\n", error_name(err));
		return 1;
	}
	size_t nrows;
	report_rows(r, &nrows);

	FILE *devnull = fopen("/dev/null", "w");
	t = now_s();
	err = report_text_write(r, REPORT_PART_SUMMARY, devnull);
	double t_text = now_s() - t;
	fclose(devnull);

	FILE *f = fopen(csv, "w");
	t = now_s();
	if (!err && f)
		err = report_csv_write(r, REPORT_PART_ALL, f);
	if (f)
		fclose(f);
	double t_csv = now_s() - t;
	long rss2 = maxrss_kb();

	t = now_s();
	if (!err)
		err = report_xlsx_write(r, xlsx, &why);
	double t_xlsx = now_s() - t;
	long rss3 = maxrss_kb();
	if (err) {
		fprintf(stderr, "write: %s %s\n", error_name(err), why.data ? why.data : "");
		return 1;
	}
	stat(xlsx, &st);
	printf("rows in ledger:                 %zu\n", nrows);
	printf("report_build (one snapshot):    %.3f s   peak RSS %ld KB (before: %ld KB)\n",
	       t_build, rss1, rss0);
	printf("text summary:                   %.3f s\n", t_text);
	printf("CSV, all parts:                 %.3f s   peak RSS %ld KB\n", t_csv, rss2);
	printf(".xlsx (constant memory):        %.3f s   peak RSS %ld KB, file %lld bytes\n", t_xlsx,
	       rss3, (long long)st.st_size);
	printf("summary + .xlsx:                %.3f s\n", t_build + t_xlsx);
	report_free(r);
	db_close(db);
	buf_free(&why);
	unlink(csv);
	return 0;
}
