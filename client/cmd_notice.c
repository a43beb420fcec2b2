/*
 * cmd_notice — notices and the conflict log.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cmds.h"
#include "protocol/error.h"
#include "ledger.h"
#include "views.h"

static const char *js(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

int cmd_notice_send(struct cli *cli, const struct cli_args *a)
{
	const char *const *tasks;
	size_t ntasks = cli_all(a, "task", &tasks);
	char id[LEDGER_ID_SIZE];
	if (!cli_get(a, "type") || !cli_get(a, "text"))
		return cli_usage(cli, "需要 --type 类型 和 --text 正文");
	int err = ledger_notice_send(cli->db, cli_get(a, "type"), cli_get(a, "village"),
				     cli_get(a, "title"), cli_get(a, "text"), tasks, ntasks, id,
				     &cli->why);
	if (!err)
		cli_saved(cli, "通报", id);
	return err;
}

int cmd_notice_list(struct cli *cli, const struct cli_args *a)
{
	json_t *arr, *o, *t;
	size_t i, j;
	(void)a;
	int err = views_notice_list(cli->db, &arr);
	if (err)
		return err;
	if (cli->json) {
		cli_print_json(arr);
		return TLY_OK;
	}
	json_array_foreach(arr, i, o)
	{
		printf("%s  %s  [%s] 发给：%s  %s\n  %s\n", js(o, "id"), js(o, "date"),
		       js(o, "type_label"), json_is_null(json_object_get(o, "village_id"))
						    ? "所有村"
						    : js(o, "village"),
		       js(o, "title"), js(o, "text"));
		json_array_foreach(json_object_get(o, "tasks"), j, t)
		{
			printf("  涉及任务：%s\n", json_string_value(t));
		}
	}
	if (json_array_size(arr) == 0)
		printf("（没有通报）\n");
	json_decref(arr);
	return TLY_OK;
}

int cmd_conflicts(struct cli *cli, const struct cli_args *a)
{
	json_t *arr, *e;
	size_t i;
	(void)a;
	int err = views_conflicts(cli->db, &arr);
	if (err)
		return err;
	if (cli->json) {
		cli_print_json(arr);
		return TLY_OK;
	}
	json_array_foreach(arr, i, e)
	{
		char *w = json_dumps(json_object_get(e, "winner_value"), JSON_ENCODE_ANY);
		char *l = json_dumps(json_object_get(e, "loser_value"), JSON_ENCODE_ANY);
		printf("%s %s 的 %s：保留 %s（站点 %s，%s）；被覆盖 %s（站点 %s，%s）\n", js(e, "kind"),
		       js(e, "record"), js(e, "field"), w ? w : "", js(e, "winner_site"),
		       js(e, "winner_time"), l ? l : "", js(e, "loser_site"), js(e, "loser_time"));
		free(w);
		free(l);
	}
	if (json_array_size(arr) == 0)
		printf("（没有被覆盖的修改）\n");
	json_decref(arr);
	return TLY_OK;
}
