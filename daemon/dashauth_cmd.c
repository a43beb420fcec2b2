/*
 * dashauth_cmd — `tally user passwd NAME` (declared in dashauth.h). Apart
 * from dashauth.c because it needs the command line's helpers (client/cli.c,
 * linked into `tally` only), and tallyd links dashauth.c.
 */
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "client/clock.h"
#include "daemon/dashauth.h"
#include "protocol/error.h"

/* ---- tally user passwd ---- */

/* One line from stdin without its newline; echo off when stdin is a tty.
 * Returns 0 at EOF before any byte. */
static int read_secret(const char *prompt, char *out, size_t cap)
{
	struct termios old, quiet;
	int tty = isatty(STDIN_FILENO), got;

	if (tty) {
		fprintf(stderr, "%s", prompt);
		fflush(stderr);
		tcgetattr(STDIN_FILENO, &old);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	got = fgets(out, (int)cap, stdin) != NULL;
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (got)
		out[strcspn(out, "\r\n")] = '\0';
	return got;
}

int cmd_user_passwd(struct cli *cli, const struct cli_args *a)
{
	char pw[DASHAUTH_PW_MAX + 2], again[DASHAUTH_PW_MAX + 2];
	const char *name = a->pos[0];
	int err = TLY_OK;

	again[0] = '\0';
	if (strcmp(db_site(cli->db)->role, "township") != 0)
		return cli_usage(cli, "这个命令只能在乡镇的台账上使用");
	if (!dashauth_name_ok(name))
		return cli_usage(cli, "用户名为空或太长（最多 %d 字节）", DASHAUTH_NAME_MAX);
	if (!read_secret("看板登录密码：", pw, sizeof pw)) {
		err = cli_usage(cli, "没有读到密码（从标准输入读取，不能写在命令行上）");
		goto out;
	}
	if (strlen(pw) < DASHAUTH_PW_MIN || strlen(pw) > DASHAUTH_PW_MAX) {
		err = cli_usage(cli, "密码长度应为 %d 到 %d 个字节", DASHAUTH_PW_MIN,
				DASHAUTH_PW_MAX);
		goto out;
	}
	/* A pipe may give the password once; a terminal always asks twice. */
	if (read_secret("再输入一次：", again, sizeof again) || isatty(STDIN_FILENO)) {
		if (strcmp(pw, again) != 0) {
			err = cli_usage(cli, "两次输入的密码不一致");
			goto out;
		}
	}
	err = dashauth_password_set(cli->db, name, pw, clock_device_ms());
	if (!err) {
		if (cli->json)
			cli_print_json(json_pack("{s:s,s:b}", "user", name, "saved", 1));
		fprintf(stderr, "已保存：看板用户 %s 的密码（原有的登录会话已失效）\n", name);
	}
out:
	OPENSSL_cleanse(pw, sizeof pw);
	OPENSSL_cleanse(again, sizeof again);
	return err;
}
