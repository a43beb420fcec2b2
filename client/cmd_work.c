/*
 * cmd_work — the work on a task: progress, submit, review, reinspect,
 * extend and its decision.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cmds.h"
#include "protocol/error.h"
#include "ledger.h"
#include "why.h"

/* Strict decimal integer: "50" yes; "50%", "5e1", "" no. */
static int parse_percent(const char *s, int64_t *out)
{
	char *end = NULL;
	if (!s || !*s)
		return TLY_E_BAD_PERCENT;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || !end || *end || v < 0 || v > 100)
		return TLY_E_BAD_PERCENT;
	*out = v;
	return TLY_OK;
}

int cmd_progress(struct cli *cli, const struct cli_args *a)
{
	const char *const *ev;
	size_t nev = cli_all(a, "evidence", &ev);
	const char *pct = cli_get(a, "percent"), *note = cli_get(a, "note");
	char id[LEDGER_ID_SIZE];
	int64_t percent;

	if (!pct || !note)
		return cli_usage(cli, "需要 --percent 进度 和 --note 进展情况");
	if (parse_percent(pct, &percent)) {
		why_set(&cli->why, "完成进度应为 0 到 100 之间的整数，填的是：%s", pct);
		return TLY_E_BAD_PERCENT;
	}
	int err = ledger_progress_add(cli->db, a->pos[0], percent, note, cli_get(a, "reason"), ev,
				      nev, id, &cli->why);
	if (!err)
		cli_saved(cli, "整改进展", id);
	return err;
}

int cmd_submit(struct cli *cli, const struct cli_args *a)
{
	char id[LEDGER_ID_SIZE];
	int err = cli_task(cli, a->pos[0], id);
	if (!err)
		err = ledger_submit(cli->db, id, &cli->why);
	if (!err)
		cli_saved(cli, "销号申请，任务", id);
	return err;
}

/* Exactly one of two switches. */
static int one_of(struct cli *cli, const struct cli_args *a, const char *yes, const char *no,
		  int *out)
{
	int y = cli_has(a, yes), n = cli_has(a, no);
	if (y == n)
		return cli_usage(cli, "--%s 和 --%s 要选一个（只能选一个）", yes, no);
	*out = y;
	return TLY_OK;
}

int cmd_review(struct cli *cli, const struct cli_args *a)
{
	char id[LEDGER_ID_SIZE];
	int approve = 0;
	int err = one_of(cli, a, "approve", "reject", &approve);
	if (err)
		return err;
	if (!cli_get(a, "opinion"))
		return cli_usage(cli, "需要 --opinion 审核意见");
	err = ledger_review(cli->db, a->pos[0], approve, cli_get(a, "opinion"), id, &cli->why);
	if (!err)
		cli_saved(cli, approve ? "销号审核（同意）" : "销号审核（驳回）", id);
	return err;
}

int cmd_reinspect(struct cli *cli, const struct cli_args *a)
{
	char id[LEDGER_ID_SIZE];
	int holds = 0;
	int err = one_of(cli, a, "holds", "rebounded", &holds);
	if (err)
		return err;
	if (!cli_get(a, "note"))
		return cli_usage(cli, "需要 --note 回头看情况");
	err = ledger_reinspect(cli->db, a->pos[0], holds, cli_get(a, "note"), id, &cli->why);
	if (!err)
		cli_saved(cli, holds ? "回头看（巩固）" : "回头看（反弹）", id);
	return err;
}

int cmd_extend(struct cli *cli, const struct cli_args *a)
{
	char id[LEDGER_ID_SIZE];
	if (!cli_get(a, "until") || !cli_get(a, "reason"))
		return cli_usage(cli, "需要 --until 日期 和 --reason 原因");
	int err = ledger_extend_request(cli->db, a->pos[0], cli_get(a, "until"),
					cli_get(a, "reason"), id, &cli->why);
	if (!err)
		cli_saved(cli, "延期申请", id);
	return err;
}

int cmd_extend_decide(struct cli *cli, const struct cli_args *a)
{
	char id[LEDGER_ID_SIZE];
	int approve = 0;
	int err = one_of(cli, a, "approve", "reject", &approve);
	if (err)
		return err;
	err = ledger_extend_decide(cli->db, a->pos[0], approve, cli_get(a, "opinion"), id,
				   &cli->why);
	if (!err)
		cli_saved(cli, approve ? "延期审批（同意）" : "延期审批（不同意）", id);
	return err;
}
