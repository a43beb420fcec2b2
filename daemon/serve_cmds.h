/*
 * serve_cmds — `tally` commands implemented in daemon/ (see serve_cmds.c):
 * enrolment, devices, township users, epochs. Registered in client/tally.c.
 */
#ifndef TALLY_DAEMON_SERVE_CMDS_H
#define TALLY_DAEMON_SERVE_CMDS_H

struct cli;
struct cli_args;

int cmd_village_add_join(struct cli *cli, const struct cli_args *a);
int cmd_village_code(struct cli *cli, const struct cli_args *a);
int cmd_join(struct cli *cli, const struct cli_args *a);
int cmd_device_list(struct cli *cli, const struct cli_args *a);
int cmd_device_revoke(struct cli *cli, const struct cli_args *a);
int cmd_user_add(struct cli *cli, const struct cli_args *a);
int cmd_server_new_epoch(struct cli *cli, const struct cli_args *a);

#endif
