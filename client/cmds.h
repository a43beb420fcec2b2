/*
 * cmds — the `tally` commands, one function per command, grouped in
 * cmd_*.c files; tally.c holds the table that names them.
 */
#ifndef TALLY_CLIENT_CMDS_H
#define TALLY_CLIENT_CMDS_H

#include "cli.h"

int cmd_init(struct cli *cli, const struct cli_args *a);
int cmd_status(struct cli *cli, const struct cli_args *a);
int cmd_verify(struct cli *cli, const struct cli_args *a);
int cmd_report(struct cli *cli, const struct cli_args *a);
int cmd_village_add(struct cli *cli, const struct cli_args *a);
int cmd_village_list(struct cli *cli, const struct cli_args *a);
int cmd_problem_add(struct cli *cli, const struct cli_args *a);
int cmd_problem_list(struct cli *cli, const struct cli_args *a);
int cmd_task_add(struct cli *cli, const struct cli_args *a);
int cmd_task_list(struct cli *cli, const struct cli_args *a);
int cmd_task_show(struct cli *cli, const struct cli_args *a);
int cmd_task_update(struct cli *cli, const struct cli_args *a);
int cmd_progress(struct cli *cli, const struct cli_args *a);
int cmd_evidence_add(struct cli *cli, const struct cli_args *a);
int cmd_evidence_list(struct cli *cli, const struct cli_args *a);
int cmd_evidence_get(struct cli *cli, const struct cli_args *a);
int cmd_submit(struct cli *cli, const struct cli_args *a);
int cmd_review(struct cli *cli, const struct cli_args *a);
int cmd_reinspect(struct cli *cli, const struct cli_args *a);
int cmd_extend(struct cli *cli, const struct cli_args *a);
int cmd_extend_decide(struct cli *cli, const struct cli_args *a);
int cmd_notice_send(struct cli *cli, const struct cli_args *a);
int cmd_notice_list(struct cli *cli, const struct cli_args *a);
int cmd_conflicts(struct cli *cli, const struct cli_args *a);
/* daemon/sync_cmd.c: needs the network, so it lives with the sync engine. */
int cmd_sync(struct cli *cli, const struct cli_args *a);

#endif
