/*
 * cli — what every `tally` command shares: flag parsing, the open
 * database, output in Chinese or JSON, errors and exit statuses.
 *
 * Exit statuses: 0 success; 2 bad usage or invalid input (nothing was
 * written); 1 any other failure (disk, database, a verify that found a
 * break). Errors go to stderr as `错误：<中文> (<code>)`; with --json the
 * same error is also printed on stdout as {"error":{"code","message"}}.
 */
#ifndef TALLY_CLIENT_CLI_H
#define TALLY_CLIENT_CLI_H

#include <jansson.h>
#include <stddef.h>

#include "protocol/buf.h"
#include "db.h"

#define CLI_MAX_FLAGS 24
#define CLI_MAX_VALUES 64
#define CLI_MAX_POS 4

struct cli_flag {
	const char *name;  /* without the leading dashes */
	int takes_value;   /* 0: a switch */
	int multi;         /* may be repeated */
	const char *arg;   /* placeholder in help, e.g. DATE */
	const char *help;  /* Chinese */
};

struct cli;
struct cli_args;

struct cli_cmd {
	const char *name;     /* "task add" */
	const char *pos_help; /* e.g. "TASK", or NULL */
	int npos_min, npos_max;
	int needs_db;
	const char *summary;  /* Chinese, one line */
	const struct cli_flag *flags; /* terminated by a zero entry */
	int (*run)(struct cli *cli, const struct cli_args *a);
};

struct cli_args {
	const struct cli_cmd *cmd;
	const char *pos[CLI_MAX_POS];
	int npos;
	const char *vals[CLI_MAX_FLAGS][CLI_MAX_VALUES];
	size_t nvals[CLI_MAX_FLAGS];
};

struct cli {
	int json;
	const char *db_path;
	struct db *db;
	struct buf why; /* detail of the error, if any */
	int json_error_done; /* the command already put its error in its --json output */
};

/* The last value of a flag, or NULL. */
const char *cli_get(const struct cli_args *a, const char *flag);
/* Whether a flag (switch or valued) was given. */
int cli_has(const struct cli_args *a, const char *flag);
/* All values of a repeatable flag. */
size_t cli_all(const struct cli_args *a, const char *flag, const char *const **vals);

/* Sets a usage error's detail and returns TLY_E_USAGE. */
int cli_usage(struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints a JSON value (with --json) on stdout; steals the reference. */
void cli_print_json(json_t *v);

/* After a successful write: the id on stdout (or {"id":..,"saved":true}
 * with --json) and 已保存 + what on stderr. */
void cli_saved(struct cli *cli, const char *what, const char *id);

/* Prints at most max characters (not bytes) of a UTF-8 string. */
void cli_print_clipped(const char *s, size_t max);

/* Resolves a task id/prefix, with the error detail in cli->why. */
int cli_task(struct cli *cli, const char *prefix, char *out);

/* Opens cli->db_path as cli->db (closed by cli_main) and requires an
 * initialised ledger; what cli_main does for commands with needs_db, for
 * a command that needs the database only in some modes (tally report
 * --from reads nothing local). */
int cli_open_db(struct cli *cli);

/* The whole program: parses argv against the command table and runs. */
int cli_main(const struct cli_cmd *cmds, size_t ncmds, int argc, char **argv);

#endif
