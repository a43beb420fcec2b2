/*
 * cmd_task — tally task add|list|show|update.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "protocol/error.h"
#include "ledger.h"
#include "rules.h"
#include "views.h"

static const char *js(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static const char *warning_label(const char *w)
{
	if (strcmp(w, "red") == 0)
		return "红色预警（逾期）";
	if (strcmp(w, "yellow") == 0)
		return "黄色预警";
	if (strcmp(w, "blue") == 0)
		return "蓝色预警";
	return "";
}

static void fill_task(const struct cli_args *a, struct ledger_task *t)
{
	memset(t, 0, sizeof *t);
	t->measures = cli_get(a, "measures");
	t->owner = cli_get(a, "owner");
	t->leader = cli_get(a, "leader");
	t->deadline = cli_get(a, "deadline");
	t->target = cli_get(a, "target");
	t->root_cause = cli_get(a, "root-cause");
	t->elsewhere = cli_get(a, "elsewhere");
	t->status = cli_get(a, "status");
}

int cmd_task_add(struct cli *cli, const struct cli_args *a)
{
	struct ledger_task t;
	char id[LEDGER_ID_SIZE];
	fill_task(a, &t);
	t.problem = cli_get(a, "problem");
	t.village = cli_get(a, "village");
	if (!t.problem || !t.measures || !t.owner || !t.leader || !t.deadline)
		return cli_usage(cli, "需要 --problem、--measures、--owner、--leader 和 --deadline");
	int err = ledger_task_add(cli->db, &t, id, &cli->why);
	if (!err)
		cli_saved(cli, "任务", id);
	return err;
}

int cmd_task_update(struct cli *cli, const struct cli_args *a)
{
	struct ledger_task t;
	char id[LEDGER_ID_SIZE];
	fill_task(a, &t);
	int err = cli_task(cli, a->pos[0], id);
	if (!err)
		err = ledger_task_update(cli->db, id, &t, &cli->why);
	if (!err)
		cli_saved(cli, "任务", id);
	return err;
}

int cmd_task_list(struct cli *cli, const struct cli_args *a)
{
	struct views_task_filter f = {NULL, cli_get(a, "status"), cli_get(a, "source"),
				      cli_has(a, "overdue") ? 1 : -1, cli_get(a, "warning")};
	char vid[LEDGER_ID_SIZE];
	json_t *arr, *o;
	size_t i;
	int err;

	if (f.status && !rules_is_status(f.status))
		return cli_usage(cli, "--status 应为 todo|doing|submitted|closed|long_term|withdrawn");
	if (f.source && !rules_is_source(f.source))
		return cli_usage(cli, "--source 应为 inspection|patrol|audit|supervision|self_check");
	if (f.warning && strcmp(f.warning, "red") && strcmp(f.warning, "yellow") &&
	    strcmp(f.warning, "blue") && strcmp(f.warning, "none"))
		return cli_usage(cli, "--warning 应为 red|yellow|blue|none");
	if (cli_get(a, "village")) {
		err = ledger_village_find(cli->db, cli_get(a, "village"), vid, &cli->why);
		if (err)
			return err;
		f.village = vid;
	}
	err = views_task_list(cli->db, &f, &arr);
	if (err)
		return err;
	if (cli->json) {
		cli_print_json(arr);
		return TLY_OK;
	}
	json_array_foreach(arr, i, o)
	{
		printf("%s  %s  %s  %3lld%%  时限 %s  %s%s%s  ", js(o, "id"), js(o, "village"),
		       js(o, "status_label"),
		       (long long)json_integer_value(json_object_get(o, "progress")),
		       js(o, "deadline"), warning_label(js(o, "warning")),
		       json_is_true(json_object_get(o, "stale")) ? " 久未更新" : "",
		       json_is_true(json_object_get(o, "behind")) ? " 进度滞后" : "");
		cli_print_clipped(js(o, "measures"), 30);
		printf("\n");
	}
	if (json_array_size(arr) == 0)
		printf("（没有符合条件的任务）\n");
	json_decref(arr);
	return TLY_OK;
}

int cmd_task_show(struct cli *cli, const struct cli_args *a)
{
	char id[LEDGER_ID_SIZE];
	json_t *o, *e;
	size_t i;
	int err = cli_task(cli, a->pos[0], id);
	if (!err)
		err = views_task_show(cli->db, id, &o);
	if (err)
		return err;
	if (cli->json) {
		cli_print_json(o);
		return TLY_OK;
	}
	json_t *p = json_object_get(o, "problem_detail");
	printf("任务 %s\n村：%s\n状态：%s  进度：%lld%%  时限：%s  %s\n", js(o, "id"), js(o, "village"),
	       js(o, "status_label"), (long long)json_integer_value(json_object_get(o, "progress")),
	       js(o, "deadline"), warning_label(js(o, "warning")));
	printf("问题（%s）：%s\n", rules_source_label(js(p, "source")), js(p, "text"));
	printf("整改措施：%s\n责任领导：%s  责任人：%s\n", js(o, "measures"), js(o, "leader"),
	       js(o, "owner"));
	if (*js(o, "target"))
		printf("整改目标：%s\n", js(o, "target"));
	printf("\n整改进展：\n");
	json_array_foreach(json_object_get(o, "progress_entries"), i, e)
	{
		printf("  %s  %lld%%  %s（%s）%s%s\n", js(e, "date"),
		       (long long)json_integer_value(json_object_get(e, "percent")), js(e, "note"),
		       js(e, "author"), *js(e, "reason") ? "  下降原因：" : "", js(e, "reason"));
	}
	printf("佐证材料：\n");
	json_array_foreach(json_object_get(o, "evidence"), i, e)
	{
		printf("  %s  %s  %lld 字节  sha256 %s\n", js(e, "date"), js(e, "name"),
		       (long long)json_integer_value(json_object_get(e, "size")), js(e, "sha256"));
	}
	printf("审核记录：\n");
	json_array_foreach(json_object_get(o, "reviews"), i, e)
	{
		printf("  %s  %s  %s%s%s（%s）\n", js(e, "date"), js(e, "label"), js(e, "opinion"),
		       *js(e, "until") ? "  延期到 " : "", js(e, "until"), js(e, "author"));
	}
	printf("修改历史：\n");
	json_array_foreach(json_object_get(o, "history"), i, e)
	{
		char *fields = json_dumps(json_object_get(e, "fields"), JSON_COMPACT);
		printf("  %s  站点 %s 第 %lld 条%s  %s\n", js(e, "time"), js(e, "site"),
		       (long long)json_integer_value(json_object_get(e, "seq")),
		       strcmp(js(e, "state"), "rejected") == 0 ? "（被拒收）" : "",
		       fields ? fields : "");
		free(fields);
	}
	json_t *rej = json_object_get(o, "rejected_changes");
	if (json_array_size(rej)) {
		printf("被乡镇拒收的修改（不会再上传）：\n");
		json_array_foreach(rej, i, e)
		{
			printf("  站点 %s 第 %lld 条（%s）：%s (%s)\n", js(e, "site"),
			       (long long)json_integer_value(json_object_get(e, "seq")), js(e, "kind"),
			       js(e, "reason"), js(e, "code"));
		}
	}
	json_t *conf = json_object_get(o, "conflicts");
	if (json_array_size(conf)) {
		printf("被覆盖的修改：\n");
		json_array_foreach(conf, i, e)
		{
			char *w = json_dumps(json_object_get(e, "winner_value"), JSON_ENCODE_ANY);
			char *l = json_dumps(json_object_get(e, "loser_value"), JSON_ENCODE_ANY);
			printf("  %s：保留 %s（站点 %s，%s），覆盖 %s（站点 %s，%s）\n", js(e, "field"),
			       w ? w : "", js(e, "winner_site"), js(e, "winner_time"), l ? l : "",
			       js(e, "loser_site"), js(e, "loser_time"));
			free(w);
			free(l);
		}
	}
	json_decref(o);
	return TLY_OK;
}
