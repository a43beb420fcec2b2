/*
 * serve_cmds — the `tally` commands of enrolment and the township server:
 *   village add NAME      (township: also prints a one-time join code)
 *   village code VILLAGE  a new join code for an existing village (another device)
 *   join CODE             a village device exchanges a join code for its credential
 *   device list, device revoke ID
 *   user add NAME         a township user credential (printed once)
 *   server new-epoch      the operator's restore step (PROTOCOL.md §11)
 * They live in daemon/ because they need the network (join) or the TLS
 * material (the pin in a join code); client/tally.c lists them in its table
 * and the `tally` executable links tally_server.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "client/cli.h"
#include "client/clock.h"
#include "client/ledger.h"
#include "client/srvstore.h"
#include "daemon/enrol.h"
#include "daemon/serve.h"
#include "daemon/serve_cmds.h"
#include "protocol/error.h"

#define URLS_MAX 8

static int is_township(struct cli *cli)
{
	return strcmp(db_site(cli->db)->role, "township") == 0;
}

static int need_township(struct cli *cli)
{
	if (is_township(cli))
		return TLY_OK;
	return cli_usage(cli, "这个命令只能在乡镇的台账上使用");
}

/* Makes a join code for village_id and prints it (stdout: the code alone;
 * with --json inside the object with the id). */
static int print_join_code(struct cli *cli, const struct cli_args *a, const char *village_id,
			   int print_id)
{
	char cert[4096], key[4096], pin[TLS_PIN_SIZE];
	const char *urls[URLS_MAX];
	const char *const *given;
	size_t nurls = cli_all(a, "url", &given);
	struct buf stored, code;
	int err;

	buf_init(&stored, 8192);
	buf_init(&code, ENROL_CODE_MAX);
	if (nurls > URLS_MAX)
		nurls = URLS_MAX;
	for (size_t i = 0; i < nurls; i++)
		urls[i] = given[i];
	if (nurls == 0) {
		err = srvstore_setting_text(cli->db, SERVE_URLS_SETTING, &stored);
		if (err)
			goto out;
		for (char *p = stored.data; p && *p && nurls < URLS_MAX;) {
			urls[nurls++] = p;
			p = strchr(p, '\n');
			if (p)
				*p++ = '\0';
		}
	}
	if (nurls == 0 && print_id) {
		/* A township that has never served and was given no address:
		 * the village is saved (the caller said so on stderr); the
		 * code can be made later. */
		if (cli->json)
			cli_print_json(json_pack("{s:s,s:b}", "id", village_id, "saved", 1));
		else
			printf("%s\n", village_id);
		fprintf(stderr, "还不知道服务器的地址，所以没有生成加入码；启动 tallyd serve 后运行 "
				"tally village code %s（或加 --url https://地址:端口）\n",
			village_id);
		err = TLY_OK;
		goto out;
	}
	if (nurls == 0) {
		err = cli_usage(cli, "还不知道服务器的地址：请给出 --url https://地址:端口，"
				     "或先运行一次 tallyd serve");
		goto out;
	}
	const char *const *hosts;
	size_t nhosts = cli_all(a, "host", &hosts);
	serve_tls_paths(cli->db_path, cert, key, sizeof cert);
	err = serve_tls_ensure(cert, key, hosts, nhosts, pin, &cli->why);
	if (!err)
		err = enrol_code_create(cli->db, village_id, urls, nurls, pin, ENROL_DEFAULT_TTL_MS,
					&code);
	if (err)
		goto out;
	if (cli->json) {
		json_t *o = print_id ? json_pack("{s:s,s:b,s:s}", "id", village_id, "saved", 1,
						 "join_code", code.data)
				     : json_pack("{s:s,s:s}", "village_id", village_id, "join_code",
						 code.data);
		cli_print_json(o);
	} else {
		if (print_id)
			printf("%s\n", village_id);
		printf("%s\n", code.data);
	}
	fflush(stdout);
	fprintf(stderr, "加入码（7 天内有效，只能用一次）已在上面一行；在村里的电脑上运行：\n"
			"  tally join 加入码\n");
out:
	buf_free(&stored);
	buf_free(&code);
	return err;
}

int cmd_village_add_join(struct cli *cli, const struct cli_args *a)
{
	char id[LEDGER_ID_SIZE];
	const char *name = a->npos > 0 ? a->pos[0] : cli_get(a, "name");
	if (!name)
		return cli_usage(cli, "需要村名：tally village add 村名");
	int err = ledger_village_add(cli->db, name, id, &cli->why);
	if (err)
		return err;
	if (!is_township(cli)) {
		cli_saved(cli, "村", id);
		return TLY_OK;
	}
	fprintf(stderr, "已保存：村 %s\n", id);
	/* The village record is committed (and will sync) before the code is
	 * made; if making the code fails, `tally village code` makes one. */
	return print_join_code(cli, a, id, 1);
}

int cmd_village_code(struct cli *cli, const struct cli_args *a)
{
	char id[LEDGER_ID_SIZE];
	int err = need_township(cli);
	if (!err)
		err = ledger_village_find(cli->db, a->pos[0], id, &cli->why);
	if (!err)
		err = print_join_code(cli, a, id, 0);
	return err;
}

int cmd_join(struct cli *cli, const struct cli_args *a)
{
	struct buf summary;
	buf_init(&summary, 4096);
	int err = enrol_join(cli->db_path, a->pos[0], cli_get(a, "name"), &cli->why, &summary);
	if (!err) {
		json_t *s = json_loadb(summary.data ? summary.data : "{}", summary.len, 0, NULL);
		if (cli->json) {
			cli_print_json(s);
		} else {
			printf("%s\n", json_string_value(json_object_get(s, "device_id")));
			fprintf(stderr, "已加入乡镇台账：本村 %s（%s），本机设备编号 %s\n",
				json_string_value(json_object_get(s, "village_name")),
				json_string_value(json_object_get(s, "village_id")),
				json_string_value(json_object_get(s, "device_id")));
			json_decref(s);
		}
	}
	buf_free(&summary);
	return err;
}

int cmd_device_list(struct cli *cli, const struct cli_args *a)
{
	json_t *arr, *d;
	size_t i;
	(void)a;
	int err = need_township(cli);
	if (!err)
		err = srvstore_devices_json(cli->db, &arr);
	if (err)
		return err;
	if (cli->json) {
		cli_print_json(arr);
		return TLY_OK;
	}
	json_array_foreach(arr, i, d)
	{
		json_t *rv = json_object_get(d, "revoked_ms");
		printf("%s  %s  村 %s  站点 %s  已确认 %lld  %s\n",
		       json_string_value(json_object_get(d, "device_id")),
		       json_string_value(json_object_get(d, "name")),
		       json_string_value(json_object_get(d, "village")),
		       json_string_value(json_object_get(d, "site")),
		       (long long)json_integer_value(json_object_get(d, "acked_seq")),
		       json_is_integer(rv) ? "已注销" : "正常");
	}
	if (json_array_size(arr) == 0)
		printf("（还没有设备加入）\n");
	json_decref(arr);
	return TLY_OK;
}

int cmd_device_revoke(struct cli *cli, const struct cli_args *a)
{
	int err = need_township(cli);
	if (!err)
		err = srvstore_device_revoke(cli->db, a->pos[0], clock_device_ms());
	if (err == TLY_E_NOT_FOUND)
		buf_addf(&cli->why, "没有编号为 %s 的设备（用 tally device list 查看）", a->pos[0]);
	if (!err) {
		(void)srvstore_audit(cli->db, clock_device_ms(), a->pos[0], NULL, "revoke", NULL,
				     NULL);
		cli_saved(cli, "注销设备", a->pos[0]);
	}
	return err;
}

int cmd_user_add(struct cli *cli, const struct cli_args *a)
{
	struct enrol_token t;
	uint8_t hash[ENROL_HASH_LEN];
	char token[ENROL_TOKEN_SIZE];
	const char *name = a->pos[0];
	int err = need_township(cli);
	if (err)
		return err;
	if (!*name || strlen(name) > SRVSTORE_NAME_MAX)
		return cli_usage(cli, "用户名为空或太长");
	memset(&t, 0, sizeof t);
	t.kind = 'u';
	err = db_random_id(t.id);
	if (!err)
		err = enrol_secret_new(t.secret);
	if (err)
		return err;
	enrol_secret_hash(t.secret, hash);
	err = srvstore_user_add(cli->db, t.id, name, hash, clock_device_ms());
	if (!err) {
		enrol_token_format(&t, token);
		if (cli->json)
			cli_print_json(json_pack("{s:s,s:s}", "user_id", t.id, "token", token));
		else
			printf("%s\n", token);
		fflush(stdout);
		fprintf(stderr, "已保存：乡镇用户 %s（%s）。上面一行是它的凭证，只显示这一次\n", name,
			t.id);
	}
	memset(&t, 0, sizeof t);
	memset(token, 0, sizeof token);
	return err;
}

int cmd_server_new_epoch(struct cli *cli, const struct cli_args *a)
{
	char epoch[MSG_EPOCH_MAX + 1];
	(void)a;
	int err = need_township(cli);
	if (!err)
		err = srvstore_epoch_renew(cli->db, epoch);
	if (!err) {
		(void)srvstore_audit(cli->db, clock_device_ms(), NULL, NULL, "new_epoch", NULL, epoch);
		cli_saved(cli, "新纪元（各村将重新上传未确认的修改）", epoch);
	}
	return err;
}
