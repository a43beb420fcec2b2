/*
 * cmd_report — `tally report`: the consolidated status in text, JSON, CSV
 * or .xlsx (docs/report.md).
 *
 * Every option is checked, and the output directory looked at, before the
 * database is read, so a bad invocation writes nothing. A file is written
 * to a temporary name in its final directory and renamed into place, so a
 * scheduled run that dies half-way never leaves a half file under the real
 * name, and a reader opening the file sees either the old or the new one.
 *
 * --from URL fetches the report from a township server instead of the
 * local ledger (daemon/report_fetch.h): JSON, CSV and .xlsx are the
 * server's bytes, written the same way; text is the server's JSON rebuilt
 * into a report (report_from_json) and rendered by the same writer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/clock.h"
#include "client/cmds.h"
#include "client/report.h"
#include "client/report_csv.h"
#include "client/report_xlsx.h"
#include "client/why.h"
#include "daemon/report_fetch.h"
#include "protocol/error.h"

enum fmt { FMT_TEXT, FMT_JSON, FMT_CSV, FMT_XLSX };

static const char *const fmt_ext[] = {"txt", "json", "csv", "xlsx"};

#define PATH_CAP 4096
/* A township user's token is "u.<id>.<secret>": far below this. */
#define TOKEN_CAP 512

struct report_cmd {
	enum fmt fmt;
	unsigned parts;
	struct report_options opt;
	int to_file;
	char dir[PATH_CAP];   /* the directory of the output file */
	char final[PATH_CAP]; /* the output file */
	struct report_fetch_options from; /* from.url NULL: the local ledger */
	char token[TOKEN_CAP];
};

static int parse_days(struct cli *cli, const struct cli_args *a, const char *flag, int64_t *out)
{
	const char *v = cli_get(a, flag);
	char *end;
	*out = 0;
	if (!v)
		return TLY_OK;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (errno || end == v || *end || n < 1 || n > REPORT_DAYS_MAX)
		return cli_usage(cli, "--%s 要给 1 到 %d 之间的天数，收到的是“%s”", flag,
				 REPORT_DAYS_MAX, v);
	*out = n;
	return TLY_OK;
}

/* The -o value: the flag --output, or the pair `-o PATH` (cli.c knows
 * only long flags, so the short form arrives as two positional words). */
static int output_arg(struct cli *cli, const struct cli_args *a, const char **out)
{
	*out = cli_get(a, "output");
	if (a->npos == 0)
		return TLY_OK;
	if (a->npos != 2 || strcmp(a->pos[0], "-o") != 0)
		return cli_usage(cli, "多余的参数：%s（输出位置用 -o 文件或目录）", a->pos[0]);
	if (*out)
		return cli_usage(cli, "-o 和 --output 只能给一个");
	*out = a->pos[1];
	return TLY_OK;
}

static int is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Where the file goes: an existing directory gets the default name
 * 整改台账（汇总）YYYYMMDD.<ext>; otherwise the path's directory must exist. */
static int resolve_output(struct cli *cli, struct report_cmd *c, const char *o)
{
	char today[CLOCK_DATE_LEN + 1];
	int err = clock_today(today);
	if (err)
		return err;
	char name[128];
	/* The date in the name is compact, as township offices name their files. */
	snprintf(name, sizeof name, "整改台账（汇总）%.4s%.2s%.2s.%s", today, today + 5, today + 8,
		 fmt_ext[c->fmt]);
	if (!o) {
		if (c->fmt != FMT_XLSX)
			return TLY_OK; /* stdout */
		o = ".";
	}
	c->to_file = 1;
	size_t n = strlen(o);
	if (n == 0 || n >= PATH_CAP - sizeof name - 2)
		return cli_usage(cli, "输出位置不对：“%s”", o);
	if (is_dir(o)) {
		snprintf(c->dir, sizeof c->dir, "%s", o);
		snprintf(c->final, sizeof c->final, "%s%s%s", o, o[n - 1] == '/' ? "" : "/", name);
		return TLY_OK;
	}
	if (o[n - 1] == '/') {
		why_set(&cli->why, "输出目录 %s 不存在，请先建立这个目录", o);
		return TLY_E_NOT_FOUND;
	}
	snprintf(c->final, sizeof c->final, "%s", o);
	const char *slash = strrchr(o, '/');
	if (!slash)
		snprintf(c->dir, sizeof c->dir, ".");
	else if (slash == o)
		snprintf(c->dir, sizeof c->dir, "/");
	else
		snprintf(c->dir, sizeof c->dir, "%.*s", (int)(slash - o), o);
	if (!is_dir(c->dir)) {
		why_set(&cli->why, "输出目录 %s 不存在，请先建立这个目录", c->dir);
		return TLY_E_NOT_FOUND;
	}
	return TLY_OK;
}

/* The token from --token-file: its first line, without surrounding space. */
static int read_token_file(struct cli *cli, const char *path, char *out)
{
	char line[TOKEN_CAP + 2];
	FILE *f = fopen(path, "r");
	if (!f) {
		why_set(&cli->why, "无法读取凭证文件 %s：%s", path, strerror(errno));
		return TLY_E_NOT_FOUND;
	}
	const char *got = fgets(line, sizeof line, f);
	fclose(f);
	size_t n = got ? strcspn(line, "\r\n") : 0;
	int whole = got && (line[n] != '\0' || n < sizeof line - 2);
	const char *p = line;
	while (n > 0 && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (!whole || n == 0 || n >= TOKEN_CAP)
		return cli_usage(cli, "凭证文件 %s 的第一行应是乡镇用户凭证（u.编号.密钥）", path);
	memcpy(out, p, n);
	out[n] = '\0';
	return TLY_OK;
}

/* --from and its companions, checked before anything is fetched or written. */
static int from_args(struct cli *cli, const struct cli_args *a, struct report_cmd *c)
{
	static const char *const only_from[] = {"token", "token-file", "pin", "ca"};
	const char *url = cli_get(a, "from"), *tok = cli_get(a, "token"),
		   *tok_file = cli_get(a, "token-file");
	if (!url) {
		for (size_t i = 0; i < sizeof only_from / sizeof only_from[0]; i++) {
			if (cli_has(a, only_from[i]))
				return cli_usage(cli, "--%s 只能和 --from 一起用", only_from[i]);
		}
		return TLY_OK;
	}
	/* The server builds the report with its own thresholds. */
	if (cli_has(a, "stale-days") || cli_has(a, "silent-days"))
		return cli_usage(cli, "--stale-days 和 --silent-days 不能和 --from 一起用"
				      "（按服务器的设置计算）");
	if (tok && tok_file)
		return cli_usage(cli, "--token 和 --token-file 只能给一个");
	if (!cli_get(a, "pin") && !cli_get(a, "ca"))
		return cli_usage(cli, "--from 需要 --pin（服务器公钥指纹 sha256//...）"
				      "或 --ca 证书文件");
	if (tok_file) {
		int err = read_token_file(cli, tok_file, c->token);
		if (err)
			return err;
	} else {
		if (!tok)
			tok = getenv("TALLY_TOKEN");
		if (!tok || !*tok)
			return cli_usage(cli, "--from 需要乡镇用户凭证：--token-file 文件、"
					      "--token 或环境变量 TALLY_TOKEN");
		if (strlen(tok) >= TOKEN_CAP)
			return cli_usage(cli, "凭证太长，应是 tally user add 给出的 u.编号.密钥");
		snprintf(c->token, sizeof c->token, "%s", tok);
	}
	c->from.url = url;
	c->from.token = c->token;
	c->from.pin = cli_get(a, "pin");
	c->from.ca_file = cli_get(a, "ca");
	return TLY_OK;
}

static int parse_args(struct cli *cli, const struct cli_args *a, struct report_cmd *c)
{
	const char *by = cli_get(a, "by"), *format = cli_get(a, "format"), *o = NULL;
	int err;

	memset(c, 0, sizeof *c);
	c->fmt = cli->json ? FMT_JSON : FMT_TEXT;
	if (format) {
		size_t i;
		for (i = 0; i < sizeof fmt_ext / sizeof fmt_ext[0]; i++) {
			if (strcmp(format, i == 0 ? "text" : fmt_ext[i]) == 0)
				break;
		}
		if (i == sizeof fmt_ext / sizeof fmt_ext[0])
			return cli_usage(cli, "--format 只能是 text、json、csv 或 xlsx，收到的是“%s”",
					 format);
		c->fmt = (enum fmt)i;
	}
	/* A terminal gets the summaries; files and programs get everything. */
	c->parts = c->fmt == FMT_TEXT ? REPORT_PART_SUMMARY : REPORT_PART_ALL;
	if (by) {
		static const struct {
			const char *name;
			unsigned parts;
		} t[] = {{"village", REPORT_PART_VILLAGE}, {"source", REPORT_PART_SOURCE},
			 {"summary", REPORT_PART_SUMMARY}, {"ledger", REPORT_PART_LEDGER},
			 {"all", REPORT_PART_ALL}};
		size_t i;
		for (i = 0; i < sizeof t / sizeof t[0]; i++) {
			if (strcmp(by, t[i].name) == 0)
				break;
		}
		if (i == sizeof t / sizeof t[0])
			return cli_usage(cli,
					 "--by 只能是 village、source、summary、ledger 或 all，收到的是“%s”",
					 by);
		c->parts = t[i].parts;
	}
	if (c->fmt == FMT_XLSX && c->parts != REPORT_PART_ALL)
		return cli_usage(cli, "Excel 文件总是包含汇总和台账两张表，--format xlsx 不能和 --by "
				      "%s 一起用",
				 by);
	err = parse_days(cli, a, "stale-days", &c->opt.stale_days);
	if (!err)
		err = parse_days(cli, a, "silent-days", &c->opt.silent_days);
	if (!err)
		err = output_arg(cli, a, &o);
	if (!err)
		err = from_args(cli, a, c);
	if (!err)
		err = resolve_output(cli, c, o);
	return err;
}

static int write_stream(const struct report *r, const struct report_cmd *c, FILE *f)
{
	int err = TLY_OK;
	switch (c->fmt) {
	case FMT_TEXT:
		err = report_text_write(r, c->parts, f);
		break;
	case FMT_CSV:
		err = report_csv_write(r, c->parts, f);
		break;
	case FMT_JSON: {
		json_t *j = report_json(r, c->parts);
		if (!j)
			return TLY_E_NOMEM;
		if (json_dumpf(j, f, JSON_INDENT(2)) != 0)
			err = TLY_E_IO;
		fputc('\n', f);
		json_decref(j);
		break;
	}
	case FMT_XLSX:
	default:
		err = TLY_E_INTERNAL;
		break;
	}
	return err ? err : (ferror(f) ? TLY_E_IO : TLY_OK);
}

/* The server's bytes. JSON gets the newline local output ends with
 * (json_dumpf + '\n' above; the server's json_dumps has none), so the
 * two files differ only where the report does (generated_at). */
static int write_bytes(const struct buf *b, const struct report_cmd *c, FILE *f)
{
	if (b->len && fwrite(b->data, 1, b->len, f) != b->len)
		return TLY_E_IO;
	if (c->fmt == FMT_JSON && (b->len == 0 || b->data[b->len - 1] != '\n'))
		fputc('\n', f);
	return ferror(f) ? TLY_E_IO : TLY_OK;
}

/* fsyncs a directory so a rename in it survives a power cut. */
static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return TLY_E_IO;
	int rc = fsync(fd);
	close(fd);
	return rc == 0 ? TLY_OK : TLY_E_IO;
}

/* The report goes to c->final: rendered from r, or, when bytes is not
 * NULL, the server's bytes as fetched. */
static int write_file(struct cli *cli, const struct report *r, const struct buf *bytes,
		      const struct report_cmd *c)
{
	char tmp[PATH_CAP + 32];
	FILE *f = NULL;
	int fd, err = TLY_OK, made = 0;

	snprintf(tmp, sizeof tmp, "%s/.tally-report-XXXXXX", c->dir);
	fd = mkstemp(tmp);
	if (fd < 0) {
		why_set(&cli->why, "无法在 %s 里建立文件：%s", c->dir, strerror(errno));
		return TLY_E_IO;
	}
	made = 1;
	/* mkstemp makes 0600; a report is for the office to read. */
	if (fchmod(fd, 0644) != 0) {
		err = TLY_E_IO;
		goto out;
	}
	if (bytes) {
		f = fdopen(fd, "w");
		if (!f) {
			err = TLY_E_IO;
			goto out;
		}
		err = write_bytes(bytes, c, f);
		if (!err && fflush(f) != 0)
			err = TLY_E_IO;
		if (err)
			goto out;
	} else if (c->fmt == FMT_XLSX) {
		/* libxlsxwriter writes by path: it replaces the empty temp file. */
		close(fd);
		fd = -1;
		err = report_xlsx_write(r, tmp, &cli->why);
		if (err)
			goto out;
		fd = open(tmp, O_RDONLY);
		if (fd < 0) {
			err = TLY_E_IO;
			goto out;
		}
	} else {
		f = fdopen(fd, "w");
		if (!f) {
			err = TLY_E_IO;
			goto out;
		}
		err = write_stream(r, c, f);
		if (!err && fflush(f) != 0)
			err = TLY_E_IO;
		if (err)
			goto out;
	}
	/* Durability order: the file's bytes reach the disk before the rename
	 * makes them the report, and the directory is synced after it, so
	 * after a crash the name holds either the old file or the whole new one. */
	if (fsync(fd) != 0) {
		err = TLY_E_IO;
		goto out;
	}
	if (rename(tmp, c->final) != 0) {
		why_set(&cli->why, "无法写入 %s：%s", c->final, strerror(errno));
		err = TLY_E_IO;
		goto out;
	}
	made = 0;
	err = sync_dir(c->dir);
out:
	if (f)
		fclose(f);
	else if (fd >= 0)
		close(fd);
	if (made)
		unlink(tmp);
	if (err == TLY_E_IO && cli->why.len == 0)
		why_set(&cli->why, "写报表文件 %s 失败：%s", c->final, strerror(errno));
	return err;
}

static const char *const by_name[] = {"", "village", "source", "summary", "ledger", "", "",
				      "all"};

/*
 * Fetches the report from the server: for text, the JSON rebuilt into *r
 * (the whole report when the ledger is asked for, so its rows find their
 * villages' freshness); for the files, the server's bytes in *bytes.
 */
static int fetch(struct cli *cli, const struct report_cmd *c, struct report **r,
		 struct buf *bytes)
{
	char path[64];
	const char *accept = "application/json";
	unsigned parts = c->parts;
	int err;

	if (c->fmt == FMT_TEXT && (parts & REPORT_PART_LEDGER))
		parts = REPORT_PART_ALL;
	if (c->fmt == FMT_XLSX) {
		snprintf(path, sizeof path, "/report.xlsx");
		accept = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
	} else {
		snprintf(path, sizeof path, "/v1/report%s?by=%s", c->fmt == FMT_CSV ? ".csv" : "",
			 by_name[parts]);
		if (c->fmt == FMT_CSV)
			accept = "text/csv";
	}
	err = report_fetch_get(&c->from, path, accept, bytes, &cli->why);
	if (err || c->fmt != FMT_TEXT)
		return err;
	json_error_t je;
	json_t *j = json_loadb(bytes->data, bytes->len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		why_set(&cli->why, "服务器返回的报表不是 JSON：%s", je.text);
		return TLY_E_REMOTE;
	}
	err = report_from_json(j, r, &cli->why);
	json_decref(j);
	return err;
}

int cmd_report(struct cli *cli, const struct cli_args *a)
{
	struct report_cmd c;
	struct report *r = NULL;
	struct buf bytes;
	const struct buf *got = NULL;
	int err;

	buf_init(&bytes, REPORT_FETCH_MAX_BYTES);
	err = parse_args(cli, a, &c);
	if (err)
		goto out;
	if (c.from.url) {
		err = fetch(cli, &c, &r, &bytes);
		if (!err && c.fmt != FMT_TEXT)
			got = &bytes;
	} else {
		err = cli_open_db(cli);
		if (!err)
			err = report_build(cli->db, &c.opt, &r);
	}
	if (err)
		goto out;
	if (!c.to_file) {
		err = got ? write_bytes(got, &c, stdout) : write_stream(r, &c, stdout);
		goto out;
	}
	err = write_file(cli, r, got, &c);
	if (err)
		goto out;
	if (cli->json)
		cli_print_json(json_pack("{s:s, s:s, s:b}", "path", c.final, "format",
					 c.fmt == FMT_TEXT ? "text" : fmt_ext[c.fmt], "saved", 1));
	else
		printf("%s\n", c.final);
	fprintf(stderr, "已生成报表：%s\n", c.final);
out:
	report_free(r);
	buf_free(&bytes);
	return err;
}
