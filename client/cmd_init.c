/*
 * cmd_init — tally init.
 */
#include <stdio.h>

#include "cmds.h"
#include "protocol/error.h"
#include "ledger.h"

int cmd_init(struct cli *cli, const struct cli_args *a)
{
	const char *role = cli_get(a, "role"), *name = cli_get(a, "name");
	struct db *db = NULL;
	if (!role || !name)
		return cli_usage(cli, "tally init 需要 --role village|township 和 --name 名称");
	int err = ledger_init(cli->db_path, role, name, cli_get(a, "village-id"), &db, &cli->why);
	if (err)
		return err;
	const struct db_site *s = db_site(db);
	if (cli->json) {
		cli_print_json(json_pack("{s:s, s:s, s:s, s:o, s:s}", "site", s->site_id, "role",
					 s->role, "name", s->name, "village_id",
					 s->village_id ? json_string(s->village_id) : json_null(),
					 "db", cli->db_path));
	} else {
		printf("%s\n", s->site_id);
		fprintf(stderr, "已保存：%s 的台账已建立（%s，站点 %s）于 %s\n", s->name,
			s->village_id ? "村" : "乡镇", s->site_id, cli->db_path);
	}
	db_close(db);
	return TLY_OK;
}
