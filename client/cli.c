/*
 * cli — parsing, output and errors of `tally` (see cli.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/change.h"
#include "cli.h"
#include "protocol/error.h"
#include "ledger.h"
#include "why.h"

static int flag_index(const struct cli_cmd *cmd, const char *name)
{
	for (int i = 0; cmd->flags && cmd->flags[i].name; i++) {
		if (strcmp(cmd->flags[i].name, name) == 0)
			return i;
	}
	return -1;
}

const char *cli_get(const struct cli_args *a, const char *flag)
{
	int i = flag_index(a->cmd, flag);
	if (i < 0 || a->nvals[i] == 0)
		return NULL;
	return a->vals[i][a->nvals[i] - 1];
}

int cli_has(const struct cli_args *a, const char *flag)
{
	int i = flag_index(a->cmd, flag);
	return i >= 0 && a->nvals[i] > 0;
}

size_t cli_all(const struct cli_args *a, const char *flag, const char *const **vals)
{
	int i = flag_index(a->cmd, flag);
	if (i < 0) {
		*vals = NULL;
		return 0;
	}
	*vals = a->vals[i];
	return a->nvals[i];
}

int cli_usage(struct cli *cli, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	why_set(&cli->why, "%s", line);
	return TLY_E_USAGE;
}

void cli_print_json(json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(v);
}

void cli_saved(struct cli *cli, const char *what, const char *id)
{
	if (cli->json) {
		cli_print_json(json_pack("{s:s, s:b}", "id", id, "saved", 1));
	} else {
		printf("%s\n", id);
	}
	fflush(stdout);
	fprintf(stderr, "已保存：%s %s\n", what, id);
}

void cli_print_clipped(const char *s, size_t max)
{
	size_t chars = 0;
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	const unsigned char *start = p;
	while (*p && chars < max) {
		p++;
		while ((*p & 0xC0) == 0x80)
			p++;
		chars++;
	}
	fwrite(start, 1, (size_t)(p - start), stdout);
	if (*p)
		fputs("…", stdout);
}

int cli_task(struct cli *cli, const char *prefix, char *out)
{
	return ledger_resolve(cli->db, "task", prefix, out, &cli->why);
}

/* ---- exit statuses -------------------------------------------------------------- */

/* Refusals of what the person typed or of the file they pointed at: 2.
 * Everything else (disk, database, internal, a failed verify): 1. */
static int exit_status(int err)
{
	switch (err) {
	case TLY_OK:
		return 0;
	case TLY_E_USAGE:
	case TLY_E_BAD_UTF8:
	case TLY_E_BAD_VALUE:
	case TLY_E_BAD_TYPE:
	case TLY_E_MISSING_FIELD:
	case TLY_E_UNKNOWN_FIELD:
	case TLY_E_TOO_MANY:
	case TLY_E_FIELD_TOO_LONG:
	case TLY_E_NOT_FOUND:
	case TLY_E_AMBIGUOUS:
	case TLY_E_BAD_DATE:
	case TLY_E_BAD_PERCENT:
	case TLY_E_PERCENT_DOWN:
	case TLY_E_FORBIDDEN:
	case TLY_E_BAD_STATUS_MOVE:
	case TLY_E_NOT_TALLY_DB:
	case TLY_E_DB_TOO_NEW:
	case TLY_E_EXISTS:
	case TLY_E_NOT_INITIALISED:
		return 2;
	default:
		return 1;
	}
}

static void print_error(struct cli *cli, int err)
{
	const char *msg = why_text(&cli->why, err);
	fprintf(stderr, "错误：%s (%s)\n", msg, error_name(err));
	if (cli->json && !cli->json_error_done)
		cli_print_json(json_pack("{s:{s:s, s:s}}", "error", "code", error_name(err),
					 "message", msg));
}

/* ---- help ---------------------------------------------------------------------- */

static void help_all(const struct cli_cmd *cmds, size_t n)
{
	printf("tally — 整改台账（离线可用）\n\n"
	       "用法：tally [--db 文件] [--json] 命令 [参数]\n\n命令：\n");
	for (size_t i = 0; i < n; i++)
		printf("  %-18s %s\n", cmds[i].name, cmds[i].summary);
	printf("\n通用选项：\n"
	       "  --db PATH    台账数据库文件（也可用环境变量 TALLY_DB；默认 ./tally.db）\n"
	       "  --json       以 JSON 输出（字段名为稳定的英文），便于脚本处理\n"
	       "  --help       显示帮助；tally 命令 --help 显示该命令的帮助\n\n"
	       "编号可以只输入前几位（只要不与别的记录重复）；日期格式为 YYYY-MM-DD。\n"
	       "退出状态：0 成功；2 用法或输入有误（什么都没有写入）；1 其他失败。\n");
}

static void help_cmd(const struct cli_cmd *c)
{
	printf("用法：tally %s%s%s", c->name, c->pos_help ? " " : "", c->pos_help ? c->pos_help : "");
	for (int i = 0; c->flags && c->flags[i].name; i++)
		printf(" [--%s%s%s]%s", c->flags[i].name, c->flags[i].takes_value ? " " : "",
		       c->flags[i].takes_value ? c->flags[i].arg : "", c->flags[i].multi ? "..." : "");
	printf("\n\n%s\n", c->summary);
	if (c->flags && c->flags[0].name) {
		printf("\n选项：\n");
		for (int i = 0; c->flags[i].name; i++) {
			char left[64];
			snprintf(left, sizeof left, "--%s%s%s", c->flags[i].name,
				 c->flags[i].takes_value ? " " : "",
				 c->flags[i].takes_value ? c->flags[i].arg : "");
			printf("  %-24s %s\n", left, c->flags[i].help);
		}
	}
	printf("  %-24s %s\n  %-24s %s\n", "--db PATH", "台账数据库文件（或环境变量 TALLY_DB）",
	       "--json", "以 JSON 输出");
}

/* ---- parsing ---------------------------------------------------------------------- */

static const struct cli_cmd *find_cmd(const struct cli_cmd *cmds, size_t n, int argc,
				      char **argv, int *used)
{
	/* Command words are the first arguments that are not flags (global
	 * flags may come before them). */
	const char *words[2] = {NULL, NULL};
	int nw = 0;
	for (int i = 1; i < argc && nw < 2; i++) {
		if (strncmp(argv[i], "--", 2) == 0) {
			if (strcmp(argv[i], "--db") == 0)
				i++;
			continue;
		}
		words[nw++] = argv[i];
	}
	if (nw == 0)
		return NULL;
	for (size_t i = 0; i < n && nw == 2; i++) {
		char two[128];
		snprintf(two, sizeof two, "%s %s", words[0], words[1]);
		if (strcmp(cmds[i].name, two) == 0) {
			*used = 2;
			return &cmds[i];
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(cmds[i].name, words[0]) == 0) {
			*used = 1;
			return &cmds[i];
		}
	}
	return NULL;
}

static int parse(struct cli *cli, const struct cli_cmd *cmd, int used, int argc, char **argv,
		 struct cli_args *a)
{
	int skipped = 0;
	memset(a, 0, sizeof *a);
	a->cmd = cmd;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--json") == 0 || strcmp(arg, "--help") == 0)
			continue;
		if (strcmp(arg, "--db") == 0) {
			i++;
			continue;
		}
		if (strncmp(arg, "--db=", 5) == 0)
			continue;
		if (strncmp(arg, "--", 2) != 0 || strcmp(arg, "--") == 0) {
			if (skipped < used) {
				skipped++;
				continue;
			}
			if (a->npos >= cmd->npos_max || a->npos >= CLI_MAX_POS)
				return cli_usage(cli, "多余的参数：%s", arg);
			a->pos[a->npos++] = arg;
			continue;
		}
		char name[64];
		const char *eq = strchr(arg + 2, '=');
		size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
		if (len >= sizeof name)
			return cli_usage(cli, "不认识的选项：%s", arg);
		memcpy(name, arg + 2, len);
		name[len] = '\0';
		int fi = flag_index(cmd, name);
		if (fi < 0)
			return cli_usage(cli, "tally %s 没有 --%s 这个选项（用 --help 查看）", cmd->name,
					 name);
		const struct cli_flag *f = &cmd->flags[fi];
		const char *val = "";
		if (f->takes_value) {
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				return cli_usage(cli, "--%s 后面要跟一个值（%s）", name, f->arg);
		} else if (eq) {
			return cli_usage(cli, "--%s 不带值", name);
		}
		if (a->nvals[fi] > 0 && !f->multi)
			return cli_usage(cli, "--%s 只能给一次", name);
		if (a->nvals[fi] >= CLI_MAX_VALUES)
			return cli_usage(cli, "--%s 给得太多了", name);
		a->vals[fi][a->nvals[fi]++] = val;
	}
	if (a->npos < cmd->npos_min)
		return cli_usage(cli, "缺少参数 %s（用 tally %s --help 查看用法）",
				 cmd->pos_help ? cmd->pos_help : "", cmd->name);
	return TLY_OK;
}

int cli_open_db(struct cli *cli)
{
	int err = db_open(cli->db_path, 0, &cli->db, &cli->why);
	if (!err && !db_site(cli->db)) {
		why_set(&cli->why, "%s 还没有初始化，请先运行 tally init", cli->db_path);
		err = TLY_E_NOT_INITIALISED;
	}
	return err;
}

int cli_main(const struct cli_cmd *cmds, size_t ncmds, int argc, char **argv)
{
	struct cli cli;
	struct cli_args *a = NULL;
	int err = TLY_OK, help = 0, used = 0;

	memset(&cli, 0, sizeof cli);
	buf_init(&cli.why, 2048);
	cli.db_path = getenv("TALLY_DB");
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			cli.json = 1;
		else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			help = 1;
		else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc)
			cli.db_path = argv[++i];
		else if (strncmp(argv[i], "--db=", 5) == 0)
			cli.db_path = argv[i] + 5;
	}
	if (!cli.db_path || !*cli.db_path)
		cli.db_path = "tally.db";

	const struct cli_cmd *cmd = find_cmd(cmds, ncmds, argc, argv, &used);
	if (!cmd) {
		if (help || argc < 2) {
			help_all(cmds, ncmds);
			buf_free(&cli.why);
			return help ? 0 : 2;
		}
		for (int i = 1; i < argc; i++) {
			if (strncmp(argv[i], "--", 2) != 0) {
				err = cli_usage(&cli, "没有 %s 这个命令（用 tally --help 查看全部命令）",
						argv[i]);
				break;
			}
		}
		if (!err)
			err = cli_usage(&cli, "缺少命令（用 tally --help 查看全部命令）");
		goto out;
	}
	if (help) {
		help_cmd(cmd);
		buf_free(&cli.why);
		return 0;
	}
	/* Every byte a person typed is checked before anything is opened. */
	for (int i = 1; i < argc; i++) {
		if (change_check_utf8(argv[i], strlen(argv[i])) != TLY_OK) {
			why_set(&cli.why, "第 %d 个参数的文字编码不对（不是 UTF-8），请重新输入", i);
			err = TLY_E_BAD_UTF8;
			goto out;
		}
	}
	a = malloc(sizeof *a);
	if (!a) {
		err = TLY_E_NOMEM;
		goto out;
	}
	err = parse(&cli, cmd, used, argc, argv, a);
	if (err)
		goto out;
	if (cmd->needs_db) {
		err = cli_open_db(&cli);
		if (err)
			goto out;
	}
	err = cmd->run(&cli, a);
out:
	if (err)
		print_error(&cli, err);
	fflush(stdout);
	db_close(cli.db);
	free(a);
	buf_free(&cli.why);
	return exit_status(err);
}
