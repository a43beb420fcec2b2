/*
 * cmd_admin — status, verify, report and villages.
 */
#include <stdio.h>
#include <string.h>

#include "blobstore.h"
#include "clock.h"
#include "cmds.h"
#include "protocol/error.h"
#include "ledger.h"
#include "syncstate.h"
#include "verify.h"
#include "views.h"

static const char *js(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static long long ji(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

int cmd_status(struct cli *cli, const struct cli_args *a)
{
	json_t *o;
	(void)a;
	int err = views_status(cli->db, &o);
	if (err)
		return err;
	if (cli->json) {
		cli_print_json(o);
		return TLY_OK;
	}
	printf("本机：%s（%s）\n站点编号：%s\n", js(o, "name"),
	       strcmp(js(o, "role"), "township") == 0 ? "乡镇" : "村", js(o, "site"));
	printf("本机修改记录：共 %lld 条，已上传确认 %lld 条，待上传 %lld 条\n", ji(o, "last_seq"),
	       ji(o, "acked_seq"), ji(o, "pending"));
	if (ji(o, "pending")) {
		long long age = (clock_device_ms() - ji(o, "oldest_pending_ms")) / 60000;
		if (age < 0) /* the device clock was set back since */
			age = 0;
		printf("最早一条待上传的修改：%s（已等待 %lld 小时 %lld 分钟）\n",
		       js(o, "oldest_pending"), age / 60, age % 60);
	}
	syncstate_print(json_object_get(o, "sync"));
	json_t *rej = json_object_get(o, "rejected_changes"), *r;
	size_t i;
	if (json_array_size(rej))
		printf("被乡镇拒收的修改 %zu 条：\n", json_array_size(rej));
	json_array_foreach(rej, i, r)
	{
		printf("  第 %lld 条（%s %s）：%s (%s)\n", ji(r, "seq"), js(r, "kind"), js(r, "record"),
		       js(r, "reason"), js(r, "code"));
	}
	json_decref(o);
	return TLY_OK;
}

int cmd_verify(struct cli *cli, const struct cli_args *a)
{
	json_t *r = NULL;
	(void)a;
	int err = verify_run(cli->db, &r);
	if (!r)
		return err;
	/* Evidence files are checked against their names as part of verify. */
	int berr = blobstore_verify(cli->db, r);
	if (!err)
		err = berr;
	if (cli->json) {
		/* One JSON document: the report, carrying the error when it failed. */
		if (err) {
			json_object_set_new(r, "error", json_pack("{s:s, s:s}", "code", error_name(err),
								  "message", error_text_zh(err)));
			cli->json_error_done = 1;
		}
		cli_print_json(json_incref(r));
	} else {
		json_t *s;
		size_t i;
		json_array_foreach(json_object_get(r, "sites"), i, s)
		{
			printf("站点 %s：第 %lld 至 %lld 条，共 %lld 条，%s%s\n", js(s, "site"),
			       ji(s, "first_seq"), ji(s, "last_seq"), ji(s, "changes"),
			       json_is_true(json_object_get(s, "ok")) ? "校验链完好" : "校验链断裂",
			       json_is_true(json_object_get(s, "complete")) ? ""
				       : "（本机只保存了从第一条起的部分，从已有的第一条开始核查）");
		}
		json_t *rb = json_object_get(r, "rebuild");
		printf("由修改记录重建数据（%lld 条）：%s\n", ji(rb, "changes"),
		       json_is_true(json_object_get(rb, "ok")) ? "一致" : "不一致");
		json_t *bl = json_object_get(r, "blobs");
		if (bl)
			printf("佐证文件：核对 %lld 个，损坏 %zu 个，本机没有 %lld 个\n",
			       ji(bl, "checked"), json_array_size(json_object_get(bl, "bad")),
			       ji(bl, "missing"));
		printf("数据库完整性：%s\n",
		       json_is_true(json_object_get(json_object_get(r, "integrity"), "ok")) ? "正常"
											   : "异常");
		json_t *p;
		json_array_foreach(json_object_get(r, "problems"), i, p)
		{
			printf("问题：%s\n", json_string_value(p));
		}
		printf("%s\n", err == TLY_OK ? "核查通过" : "核查没有通过");
	}
	json_decref(r);
	return err;
}

/* cmd_report is in cmd_report.c. */

int cmd_village_add(struct cli *cli, const struct cli_args *a)
{
	char id[LEDGER_ID_SIZE];
	const char *name = cli_get(a, "name");
	if (!name)
		return cli_usage(cli, "需要 --name 村名");
	int err = ledger_village_add(cli->db, name, id, &cli->why);
	if (!err)
		cli_saved(cli, "村", id);
	return err;
}

int cmd_village_list(struct cli *cli, const struct cli_args *a)
{
	json_t *arr, *v;
	size_t i;
	(void)a;
	int err = views_village_list(cli->db, &arr);
	if (err)
		return err;
	if (cli->json) {
		cli_print_json(arr);
		return TLY_OK;
	}
	json_array_foreach(arr, i, v)
	{
		printf("%s  %s  任务 %lld，已销号 %lld\n", js(v, "id"), js(v, "name"), ji(v, "tasks"),
		       ji(v, "closed"));
	}
	if (json_array_size(arr) == 0)
		printf("（还没有登记村）\n");
	json_decref(arr);
	return TLY_OK;
}
