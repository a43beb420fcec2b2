/*
 * cmd_evidence — evidence files (佐证材料): attach to a task, list, get a
 * copy out of the store (docs/evidence.md).
 */
#include <stdio.h>
#include <string.h>

#include "blobstore.h"
#include "cmds.h"
#include "ledger.h"
#include "protocol/error.h"
#include "why.h"

int cmd_evidence_add(struct cli *cli, const struct cli_args *a)
{
	const char *files[CLI_MAX_POS + CLI_MAX_VALUES];
	const char *const *more;
	size_t n = 0, nmore = cli_all(a, "file", &more);
	char id[LEDGER_ID_SIZE];

	for (int i = 1; i < a->npos; i++)
		files[n++] = a->pos[i];
	for (size_t i = 0; i < nmore; i++)
		files[n++] = more[i];
	if (n == 0)
		return cli_usage(cli, "需要给出至少一个佐证文件");
	int err = cli_task(cli, a->pos[0], id);
	if (!err)
		err = ledger_evidence_add(cli->db, id, cli_get(a, "progress"), files, n, &cli->why);
	if (!err)
		cli_saved(cli, "佐证材料，任务", id);
	return err;
}

/* Where this site stands with a blob: held here or not, and its transfer. */
static const char *blob_state(struct db *db, const char *hex, const char *up, const char *srv)
{
	int have = blobstore_has(db_path(db), hex, NULL);
	const struct db_site *site = db_site(db);
	if (site && strcmp(site->role, "township") == 0)
		return have && srv && strcmp(srv, "complete") == 0 ? "received"
		       : srv                                      ? "uploading"
								  : "waiting";
	if (up && strcmp(up, "refused") == 0)
		return "refused";
	if (up && strcmp(up, "done") == 0)
		return have ? "uploaded" : "on_server";
	return have ? "pending" : "not_here";
}

static const char *state_zh(const char *s)
{
	static const char *const map[][2] = {
		{"received", "已收到"},  {"uploading", "上传中"}, {"waiting", "等待村里上传"},
		{"refused", "被拒绝"},   {"uploaded", "已上传"},  {"on_server", "在乡镇服务器上"},
		{"pending", "待上传"},   {"not_here", "本机没有"},
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
		if (strcmp(map[i][0], s) == 0)
			return map[i][1];
	}
	return s;
}

int cmd_evidence_list(struct cli *cli, const struct cli_args *a)
{
	sqlite3_stmt *st;
	char task[LEDGER_ID_SIZE];
	json_t *arr = NULL;
	int rc, err = TLY_OK;

	if (a->npos > 0) {
		err = cli_task(cli, a->pos[0], task);
		if (err)
			return err;
	}
	err = db_stmt(cli->db,
		      "SELECT e.id, e.task, e.sha256, e.name, e.size, e.type, e.author, e.date, "
		      "u.state, u.message, s.state FROM evidence e "
		      "LEFT JOIN blob_upload u ON u.sha256 = e.sha256 "
		      "LEFT JOIN srv_blob s ON s.sha256 = e.sha256 "
		      "WHERE ?1 IS NULL OR e.task = ?1 ORDER BY e.task, e.date, e.id",
		      &st);
	if (err)
		return err;
	if (a->npos > 0)
		sqlite3_bind_text(st, 1, task, -1, SQLITE_TRANSIENT);
	arr = json_array();
	if (!arr)
		return TLY_E_NOMEM;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *c[11];
		for (int i = 0; i < 11; i++)
			c[i] = (const char *)sqlite3_column_text(st, i);
		const char *hex = c[2] ? c[2] : "";
		const char *state = blob_state(cli->db, hex, c[8], c[10]);
		json_t *o = json_pack("{s:s, s:s?, s:s, s:s?, s:I, s:s?, s:s?, s:s?, s:s, s:s?}", "id",
				      c[0] ? c[0] : "", "task", c[1], "sha256", hex, "name", c[3],
				      "size", (json_int_t)sqlite3_column_int64(st, 4), "type", c[5],
				      "author", c[6], "date", c[7], "state", state, "refused",
				      c[9]);
		if (!o || json_array_append_new(arr, o) != 0) {
			err = TLY_E_NOMEM;
			goto out;
		}
		if (!cli->json)
			printf("%.12s  %-8.8s  %10lld  %-10s  %s  %s%s%s\n", hex, c[1] ? c[1] : "",
			       (long long)sqlite3_column_int64(st, 4), c[7] ? c[7] : "",
			       state_zh(state), c[3] ? c[3] : "", c[9] ? "：" : "", c[9] ? c[9] : "");
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = db_err(cli->db, rc);
	if (err)
		goto out;
	if (cli->json) {
		cli_print_json(arr);
		arr = NULL;
	} else if (json_array_size(arr) == 0) {
		printf("没有佐证材料\n");
	}
out:
	sqlite3_reset(st);
	json_decref(arr);
	return err;
}

int cmd_evidence_get(struct cli *cli, const struct cli_args *a)
{
	char hex[BLOBSTORE_HEX_LEN + 1];
	const char *dest = cli_get(a, "output");

	if (a->npos == 3 && strcmp(a->pos[1], "-o") == 0 && !dest)
		dest = a->pos[2];
	else if (a->npos != 1)
		return cli_usage(cli, "用法：tally evidence get HASH -o FILE");
	if (!dest)
		return cli_usage(cli, "需要 -o FILE：取出的文件写到哪里");
	int err = blobstore_resolve(cli->db, a->pos[0], hex, &cli->why);
	if (!err)
		err = blobstore_copy_out(cli->db, hex, dest, &cli->why);
	if (err)
		return err;
	if (cli->json)
		cli_print_json(json_pack("{s:s, s:s}", "sha256", hex, "output", dest));
	else
		fprintf(stderr, "已取出佐证材料 %.12s… 到 %s（校验值已核对）\n", hex, dest);
	return TLY_OK;
}
