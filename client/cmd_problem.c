/*
 * cmd_problem — tally problem add|list.
 */
#include <stdio.h>

#include "cmds.h"
#include "protocol/error.h"
#include "ledger.h"
#include "rules.h"
#include "views.h"

int cmd_problem_add(struct cli *cli, const struct cli_args *a)
{
	struct ledger_problem p = {
		.source = cli_get(a, "source"),
		.text = cli_get(a, "text"),
		.round = cli_get(a, "round"),
		.doc_no = cli_get(a, "doc-no"),
		.category = cli_get(a, "category"),
		.manifestations = cli_get(a, "manifestations"),
	};
	char id[LEDGER_ID_SIZE];
	if (!p.source || !p.text)
		return cli_usage(cli, "需要 --source 来源 和 --text 问题原文");
	int err = ledger_problem_add(cli->db, &p, id, &cli->why);
	if (!err)
		cli_saved(cli, "问题", id);
	return err;
}

int cmd_problem_list(struct cli *cli, const struct cli_args *a)
{
	json_t *arr, *o;
	size_t i;
	const char *source = cli_get(a, "source");
	if (source && !rules_is_source(source))
		return cli_usage(cli, "--source 应为 inspection|patrol|audit|supervision|self_check");
	int err = views_problem_list(cli->db, source, &arr);
	if (err)
		return err;
	if (cli->json) {
		cli_print_json(arr);
		return TLY_OK;
	}
	json_array_foreach(arr, i, o)
	{
		const char *round = json_string_value(json_object_get(o, "round"));
		printf("%s  [%s%s%s]  任务 %lld  ", json_string_value(json_object_get(o, "id")),
		       json_string_value(json_object_get(o, "source_label")), round ? " " : "",
		       round ? round : "", (long long)json_integer_value(json_object_get(o, "tasks")));
		cli_print_clipped(json_string_value(json_object_get(o, "text")), 40);
		printf("\n");
	}
	if (json_array_size(arr) == 0)
		printf("（没有问题）\n");
	json_decref(arr);
	return TLY_OK;
}
