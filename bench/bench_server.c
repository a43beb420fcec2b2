/*
 * bench_server — the township server (`tallyd serve`, a real process on
 * loopback, real TLS, real database files) under the two loads,
 * each beside the raw SQLite batch insert rate measured in the same run on
 * the same disk with the ledger's pragmas (WAL, synchronous=FULL, 1,000
 * rows of the same size per transaction):
 *
 *   apply   V villages (enrolled devices, `tally join`'s code path) push at
 *           once, each B batches of 1,000 new-task changes (Chinese text,
 *           ~150 characters of measures) over httpc (gzip'd bodies), one
 *           thread per village; changes applied per second = V*B*1000 /
 *           wall time from the first send to the last answer.
 *   memory  a freshly started server, then C enrolled devices each holding
 *           an open keep-alive TLS connection after one authenticated
 *           request (GET /v1/whoami); VmHWM/VmRSS of the server process.
 *
 * Setup (databases, enrolment, making the changes, encoding the push
 * bodies) is not timed. The server's config file raises max_connections
 * and switches the per-credential rate limit off (both would refuse a
 * benchmark, not a village) and turns per-request log lines off.
 *
 * Usage: bench_server BUILD_DIR [--villages 20] [--batches 10]
 *                     [--conns 500] [--dir DIR] [--json FILE]
 * BUILD_DIR holds daemon/tallyd (a Release build without sanitizers).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/clock.h"
#include "client/db.h"
#include "client/ledger.h"
#include "client/srvstore.h"
#include "client/store.h"
#include "daemon/enrol.h"
#include "daemon/httpc.h"
#include "daemon/serve.h"
#include "daemon/syncer.h"
#include "daemon/syncsrv.h"
#include "protocol/error.h"
#include "protocol/message.h"

#define BATCH 1000
#define MAX_VILLAGES 256

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int err, const struct buf *why)
{
	fprintf(stderr, "bench_server: %s: %s %s\n", what, error_name(err),
		why && why->data ? why->data : "");
	exit(1);
}

static const char *opt(int argc, char **argv, const char *name, const char *def)
{
	for (int i = 2; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return def;
}

/* ---- the server process ---- */

struct server {
	pid_t pid;
	unsigned port;
	char pin[TLS_PIN_SIZE];
	char url[64];
};

static void server_start(const char *tallyd, const char *town, const char *conf,
			 const char *log, struct server *sv)
{
	int fds[2];
	if (pipe(fds) != 0)
		die("pipe", TLY_E_IO, NULL);
	sv->pid = fork();
	if (sv->pid == 0) {
		dup2(fds[1], 1);
		FILE *e = fopen(log, "a");
		if (e)
			dup2(fileno(e), 2);
		close(fds[0]);
		close(fds[1]);
		execl(tallyd, tallyd, "serve", "--db", town, "--listen", "127.0.0.1:0", "--config",
		      conf, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	FILE *f = fdopen(fds[0], "r");
	char line[512] = "";
	if (!f || !fgets(line, sizeof line, f) ||
	    sscanf(line, "port=%u pin=%127s", &sv->port, sv->pin) != 2)
		die("server did not start (see its log)", TLY_E_IO, NULL);
	fclose(f);
	snprintf(sv->url, sizeof sv->url, "https://127.0.0.1:%u", sv->port);
}

static void server_stop(struct server *sv)
{
	int st = 0;
	kill(sv->pid, SIGTERM);
	waitpid(sv->pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fprintf(stderr, "bench_server: server exit status %d\n", st);
}

/* kB of a /proc/PID/status field (VmHWM, VmRSS). */
static long proc_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	long v = -1;
	size_t n = strlen(field);
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, field, n) == 0 && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

static struct httpc *client_new(const struct server *sv)
{
	struct httpc_options o;
	struct httpc *hc = NULL;
	const char *u[1] = {sv->url};
	httpc_options_default(&o);
	o.base_urls = u;
	o.n_base_urls = 1;
	o.pin = sv->pin;
	o.total_timeout_ms = 600000;
	int err = httpc_new(&o, &hc);
	if (err)
		die("httpc_new", err, NULL);
	return hc;
}

/* ---- enrolment ---- */

/* n villages with one join code each, written to the township database
 * while the server runs (as `tally village add` does). */
static void make_codes(const char *town, const struct server *sv, int n, char **codes)
{
	struct db *db = NULL;
	struct buf why, code;
	const char *u[1] = {sv->url};
	buf_init(&why, 4096);
	buf_init(&code, ENROL_CODE_MAX);
	int err = db_open(town, 0, &db, &why);
	if (err)
		die("open town", err, &why);
	for (int i = 0; i < n && !err; i++) {
		char name[64], vid[LEDGER_ID_SIZE];
		snprintf(name, sizeof name, "基准村%03d", i);
		buf_reset(&code);
		err = ledger_village_add(db, name, vid, &why);
		if (!err)
			err = enrol_code_create(db, vid, u, 1, sv->pin, ENROL_DEFAULT_TTL_MS, &code);
		if (!err)
			codes[i] = strdup(code.data);
	}
	if (err)
		die("village add", err, &why);
	db_close(db);
	buf_free(&why);
	buf_free(&code);
}

/* `tally join`: creates the village database and stores the credential;
 * with pull, one sync cycle as `tally sync` would run next. */
static void join(const char *vdb, const char *code, const char *name, int pull, char *token,
		 size_t n)
{
	struct db *db = NULL;
	struct buf why, t;
	buf_init(&why, 4096);
	buf_init(&t, 1024);
	int err = enrol_join(vdb, code, name, &why, NULL);
	if (!err)
		err = db_open(vdb, 0, &db, &why);
	if (!err)
		err = srvstore_setting_text(db, "sync_token", &t);
	if (err)
		die("join", err, &why);
	snprintf(token, n, "%s", t.data);
	if (pull) {
		/* the village's own record, which its tasks refer to */
		struct syncer *sy = NULL;
		struct syncer_options o;
		struct syncer_report r;
		memset(&o, 0, sizeof o);
		err = syncer_new(db, &o, &sy);
		if (!err)
			err = syncer_cycle(sy, 0, &r);
		syncer_free(sy);
		if (err)
			die("first sync", err, NULL);
	}
	db_close(db);
	buf_free(&why);
	buf_free(&t);
}

/* ---- the apply load ---- */

struct village {
	char db[512];
	char token[ENROL_TOKEN_SIZE];
	struct buf *bodies; /* one push per batch */
	int batches;
	struct httpc *hc;
	int err;
	long status;
	size_t applied;
	double max_latency;
};

/* ~150 characters of the sort of text a rectification measure has. */
static const char MEASURE[] =
	"针对村务公开不及时、内容不全面的问题，村两委召开专题会议研究整改措施：一是建立村务公开"
	"月度台账，明确专人负责，每月五日前更新公开栏；二是将财务收支、项目建设、惠民资金发放等"
	"事项逐项公开，接受群众监督；三是设立意见箱和监督电话，及时回应群众关切；四是镇纪委每季度"
	"抽查一次，发现问题立即督促整改并通报。";

/* The village's own changes (one self-check problem, then tasks; setup,
 * not timed, so synchronous is off here) and the push bodies of its
 * batches, encoded as the village's sync would. */
static size_t make_village(struct village *v, size_t *change_bytes)
{
	struct db *db = NULL;
	struct buf why, cb;
	char problem[LEDGER_ID_SIZE], task[LEDGER_ID_SIZE];
	size_t total = (size_t)v->batches * BATCH, bytes = 0;
	buf_init(&why, 4096);
	buf_init(&cb, 1u << 20);
	int err = db_open(v->db, 0, &db, &why);
	if (!err)
		err = db_exec(db, "PRAGMA synchronous = OFF");
	struct ledger_problem p = {.source = "self_check", .text = "自查：村务公开不及时，群众反映强烈"};
	if (!err)
		err = ledger_problem_add(db, &p, problem, &why);
	for (size_t i = 1; i < total && !err; i++) {
		char owner[32];
		snprintf(owner, sizeof owner, "责任人%zu", i);
		struct ledger_task t = {.problem = problem, .measures = MEASURE,
					.target = "群众满意度明显提升", .owner = owner,
					.leader = "王建国", .deadline = "2030-12-31"};
		err = ledger_task_add(db, &t, task, &why);
	}
	if (err)
		die("making changes", err, &why);
	v->bodies = calloc((size_t)v->batches, sizeof *v->bodies);
	for (int b = 0; b < v->batches && !err; b++) {
		struct change **cs = NULL;
		size_t got = 0;
		struct msg_push m;
		memset(&m, 0, sizeof m);
		buf_init(&v->bodies[b], 64u << 20);
		err = store_outbox_read(db, (uint64_t)b * BATCH, BATCH, SIZE_MAX, &cs, &got);
		if (!err && got != BATCH)
			err = TLY_E_NOT_FOUND;
		if (!err) {
			snprintf(m.site, sizeof m.site, "%s", db_site(db)->site_id);
			memcpy(m.prev, change_prev(cs[0]), CHANGE_HASH_LEN);
			memcpy(m.head, change_hash(cs[got - 1]), CHANGE_HASH_LEN);
			m.changes = cs;
			m.n = got;
			m.device_ms = (uint64_t)clock_device_ms();
			m.queue = (int64_t)(total - (size_t)(b + 1) * BATCH);
			err = msg_encode_push(&m, &v->bodies[b]);
		}
		for (size_t i = 0; i < got && !err; i++) {
			buf_reset(&cb);
			err = change_encode_canonical(cs[i], &cb);
			bytes += cb.len;
		}
		store_changes_free(cs, got);
	}
	if (err)
		die("encoding pushes", err, NULL);
	db_close(db);
	buf_free(&why);
	buf_free(&cb);
	*change_bytes += bytes;
	return total;
}

static void *push_thread(void *arg)
{
	struct village *v = arg;
	for (int b = 0; b < v->batches && !v->err; b++) {
		struct httpc_response res;
		struct msg_push_answer a;
		memset(&res, 0, sizeof res);
		struct httpc_request r = {.method = "POST", .path = "/v1/push", .token = v->token,
					  .body = v->bodies[b].data, .body_len = v->bodies[b].len};
		double t0 = now_s();
		v->err = httpc_send(v->hc, &r, &res);
		double dt = now_s() - t0;
		if (dt > v->max_latency)
			v->max_latency = dt;
		v->status = res.status;
		if (!v->err)
			v->err = msg_decode_push_answer(res.body.data, res.body.len, NULL, &a);
		httpc_response_clear(&res);
		if (v->err)
			break;
		for (size_t i = 0; i < a.n; i++)
			v->applied += a.results[i].status == PUSH_APPLIED;
		if (a.acked != (uint64_t)(b + 1) * BATCH)
			v->err = TLY_E_INTERNAL;
		msg_push_answer_clear(&a);
	}
	return NULL;
}

/* ---- raw SQLite ---- */

static void rm_db(const char *path)
{
	char p[1024];
	unlink(path);
	snprintf(p, sizeof p, "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", path);
	unlink(p);
}

/* Plain INSERTs of rows shaped like a change_log row whose body is
 * row_bytes long, BATCH per transaction, with the ledger's pragmas.
 * Returns rows per second. */
static double raw_batch_inserts(const char *path, size_t rows, size_t row_bytes)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	unsigned char hash[32] = {0};
	char *body = malloc(row_bytes);
	rm_db(path);
	if (!body || sqlite3_open(path, &h) != SQLITE_OK)
		die("raw open", TLY_E_DB, NULL);
	/* Chinese-looking bytes, so the row is the size the real text is */
	for (size_t i = 0; i < row_bytes; i++)
		body[i] = (char)(0x80 | (i * 7 % 64));
	if (sqlite3_exec(h, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; "
			    "CREATE TABLE raw (pos INTEGER PRIMARY KEY, site TEXT, seq INTEGER, "
			    "hlc INTEGER, kind TEXT, record_id TEXT, body BLOB, hash BLOB, "
			    "UNIQUE (site, seq))",
			 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(h, "INSERT INTO raw (site, seq, hlc, kind, record_id, body, hash) "
				  "VALUES (?, ?, ?, 'task', ?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK)
		die("raw prepare", TLY_E_DB, NULL);
	double t0 = now_s();
	for (size_t i = 0; i < rows; i++) {
		char id[17], site[17];
		if (i % BATCH == 0 && sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL))
			die("raw begin", TLY_E_DB, NULL);
		snprintf(site, sizeof site, "%016zx", i / 10000);
		snprintf(id, sizeof id, "%016zx", i * 2654435761u);
		sqlite3_bind_text(st, 1, site, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)i + 1);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)i << 16);
		sqlite3_bind_text(st, 4, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_blob(st, 5, body, (int)row_bytes, SQLITE_STATIC);
		memcpy(hash, &i, sizeof i);
		sqlite3_bind_blob(st, 6, hash, sizeof hash, SQLITE_TRANSIENT);
		if (sqlite3_step(st) != SQLITE_DONE)
			die("raw insert", TLY_E_DB, NULL);
		sqlite3_reset(st);
		if (((i + 1) % BATCH == 0 || i + 1 == rows) &&
		    sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			die("raw commit", TLY_E_DB, NULL);
	}
	double dt = now_s() - t0;
	sqlite3_finalize(st);
	sqlite3_close(h);
	rm_db(path);
	free(body);
	return (double)rows / dt;
}

static void write_conf(const char *path, int conns)
{
	FILE *f = fopen(path, "w");
	if (!f)
		die("config", TLY_E_IO, NULL);
	/* What the bench changes from the defaults, and why: */
	fprintf(f, "# one process holds every village's connection\n"
		   "max_connections %d\n"
		   "# 10 pushes per device at once is a benchmark, not abuse\n"
		   "rate_per_minute 0\n"
		   "# keep the held connections open while memory is read\n"
		   "idle_timeout 600s\n"
		   "# a log line per request is not what is measured\n"
		   "log_requests no\n"
		   "log_level warn\n",
		conns + 64);
	fclose(f);
}

int main(int argc, char **argv)
{
	if (argc < 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: bench_server BUILD_DIR [--villages 20] [--batches 10] "
				"[--conns 500] [--dir DIR] [--json FILE]\n");
		return 2;
	}
	int nv = atoi(opt(argc, argv, "--villages", "20"));
	int nb = atoi(opt(argc, argv, "--batches", "10"));
	int nc = atoi(opt(argc, argv, "--conns", "500"));
	const char *json = opt(argc, argv, "--json", NULL);
	char base[300], dir[400], town[600], conf[600], log[600], tallyd[600], path[700];
	if (nv < 1 || nv > MAX_VILLAGES || nb < 1 || nc < 1) {
		fprintf(stderr, "bench_server: villages 1..%d, batches and conns >= 1\n",
			MAX_VILLAGES);
		return 2;
	}
	snprintf(base, sizeof base, "%s",
		 opt(argc, argv, "--dir", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp"));
	snprintf(dir, sizeof dir, "%s/bench_server_XXXXXX", base);
	if (!mkdtemp(dir))
		die("mkdtemp", TLY_E_IO, NULL);
	snprintf(town, sizeof town, "%s/town.db", dir);
	snprintf(conf, sizeof conf, "%s/serve.conf", dir);
	snprintf(log, sizeof log, "%s/serve.log", dir);
	snprintf(tallyd, sizeof tallyd, "%s/daemon/tallyd", argv[1]);
	write_conf(conf, nc);

	/* the township: database, schema, TLS material */
	struct db *tdb = NULL;
	struct buf why;
	buf_init(&why, 4096);
	int err = ledger_init(town, "township", "基准镇", NULL, &tdb, &why);
	if (err)
		die("township init", err, &why);
	db_close(tdb);

	/* ---- apply ---- */
	struct server sv;
	server_start(tallyd, town, conf, log, &sv);
	int ncodes = nv > nc ? nv : nc;
	char **codes = calloc((size_t)ncodes, sizeof *codes);
	make_codes(town, &sv, ncodes, codes);
	struct village *vs = calloc((size_t)nv, sizeof *vs);
	size_t total = 0, change_bytes = 0;
	double t_setup = now_s();
	for (int i = 0; i < nv; i++) {
		char name[32];
		snprintf(vs[i].db, sizeof vs[i].db, "%s/v%03d.db", dir, i);
		snprintf(name, sizeof name, "bench-pc-%03d", i);
		join(vs[i].db, codes[i], name, 1, vs[i].token, sizeof vs[i].token);
		vs[i].batches = nb;
		total += make_village(&vs[i], &change_bytes);
		/* handles made here, not in the threads: curl's global init is not
		 * thread-safe */
		vs[i].hc = client_new(&sv);
	}
	/* the other devices of the connection phase, enrolled now: their codes
	 * carry this server's address */
	char(*tokens)[ENROL_TOKEN_SIZE] = calloc((size_t)nc, sizeof *tokens);
	for (int i = 0; i < nc; i++) {
		char vdb[600], name[32];
		if (i < nv) {
			snprintf(tokens[i], sizeof tokens[i], "%s", vs[i].token);
			continue;
		}
		snprintf(vdb, sizeof vdb, "%s/c%03d.db", dir, i);
		snprintf(name, sizeof name, "conn-pc-%03d", i);
		join(vdb, codes[i], name, 0, tokens[i], sizeof tokens[i]);
	}
	size_t body_bytes = 0;
	for (int i = 0; i < nv; i++)
		for (int b = 0; b < nb; b++)
			body_bytes += vs[i].bodies[b].len;
	fprintf(stderr, "setup: %d villages x %d x %d changes, %.1f s\n", nv, nb, BATCH,
		now_s() - t_setup);
	pthread_t *th = calloc((size_t)nv, sizeof *th);
	double t0 = now_s();
	for (int i = 0; i < nv; i++)
		if (pthread_create(&th[i], NULL, push_thread, &vs[i]) != 0)
			die("pthread_create", TLY_E_INTERNAL, NULL);
	for (int i = 0; i < nv; i++)
		pthread_join(th[i], NULL);
	double apply_s = now_s() - t0;
	long apply_hwm = proc_kb(sv.pid, "VmHWM");
	size_t applied = 0;
	double max_lat = 0;
	for (int i = 0; i < nv; i++) {
		if (vs[i].err) {
			fprintf(stderr, "village %d: %s (HTTP %ld)\n", i, error_name(vs[i].err),
				vs[i].status);
			return 1;
		}
		applied += vs[i].applied;
		if (vs[i].max_latency > max_lat)
			max_lat = vs[i].max_latency;
		httpc_free(vs[i].hc);
	}
	server_stop(&sv);
	if (applied != total) {
		fprintf(stderr, "bench_server: %zu of %zu changes applied\n", applied, total);
		return 1;
	}
	double apply_rate = (double)total / apply_s;
	size_t row_bytes = change_bytes / total;
	snprintf(path, sizeof path, "%s/raw.db", dir);
	double raw_rate_1 = raw_batch_inserts(path, total, row_bytes);

	/* ---- memory at nc connected villages, on a fresh server ---- */
	server_start(tallyd, town, conf, log, &sv);
	usleep(200000);
	long idle_rss = proc_kb(sv.pid, "VmRSS"), idle_hwm = proc_kb(sv.pid, "VmHWM");
	struct httpc **hcs = calloc((size_t)nc, sizeof *hcs);
	t_setup = now_s();
	for (int i = 0; i < nc; i++) {
		hcs[i] = client_new(&sv);
		struct httpc_response res;
		memset(&res, 0, sizeof res);
		struct httpc_request r = {.method = "GET", .path = "/v1/whoami", .token = tokens[i]};
		err = httpc_send(hcs[i], &r, &res);
		httpc_response_clear(&res);
		if (err)
			die("whoami", err, NULL);
	}
	fprintf(stderr, "connections: %d in %.1f s\n", nc, now_s() - t_setup);
	usleep(200000);
	long conn_rss = proc_kb(sv.pid, "VmRSS"), conn_hwm = proc_kb(sv.pid, "VmHWM");
	/* the server's own count of open connections (ours plus this one) */
	unsigned open_conns = 0;
	{
		struct httpc *hc = client_new(&sv);
		struct httpc_response res;
		memset(&res, 0, sizeof res);
		struct httpc_request r = {.method = "GET", .path = "/v1/health"};
		err = httpc_send(hc, &r, &res);
		const char *c = !err && res.body.data ? strstr(res.body.data, "\"connections\":")
						      : NULL;
		if (c)
			open_conns = (unsigned)strtoul(c + 14, NULL, 10);
		httpc_response_clear(&res);
		httpc_free(hc);
	}
	for (int i = 0; i < nc; i++)
		httpc_free(hcs[i]);
	server_stop(&sv);
	snprintf(path, sizeof path, "%s/raw2.db", dir);
	double raw_rate_2 = raw_batch_inserts(path, total, row_bytes);

	double per_conn_kb = (double)(conn_rss - idle_rss) / nc;
	printf("bench_server: %d villages x %d batches x %d changes (%zu B canonical/change, "
	       "%.0f B push JSON/change before gzip)\n",
	       nv, nb, BATCH, row_bytes, (double)body_bytes / (double)total);
	printf("%-46s %14s %14s %8s\n", "measure", "server", "raw sqlite", "ratio");
	printf("%-46s %14.0f %14.0f %8.3f\n", "changes applied/s (batches of 1000, concurrent)",
	       apply_rate, raw_rate_1, apply_rate / raw_rate_1);
	printf("%-46s %14ld %14.0f %8s\n", "server VmHWM kB, 500-conn phase (raw: rows/s)",
	       conn_hwm, raw_rate_2, "-");
	printf("  apply: %zu changes in %.2f s, slowest push %.2f s, server VmHWM %ld kB\n", total,
	       apply_s, max_lat, apply_hwm);
	printf("  memory: idle VmRSS %ld kB (HWM %ld); with %d connections (server counts %u) "
	       "VmRSS %ld kB, VmHWM %ld kB: %.1f kB per connection\n",
	       idle_rss, idle_hwm, nc, open_conns, conn_rss, conn_hwm, per_conn_kb);
	if (json) {
		FILE *f = fopen(json, "w");
		if (!f)
			die("json", TLY_E_IO, NULL);
		fprintf(f,
			"{\"villages\":%d,\"batches\":%d,\"batch\":%d,\"changes\":%zu,"
			"\"change_bytes\":%zu,\"push_body_bytes\":%zu,\"apply_seconds\":%.3f,"
			"\"apply_per_s\":%.1f,\"raw_insert_per_s\":%.1f,\"apply_ratio\":%.4f,"
			"\"slowest_push_s\":%.3f,\"apply_vmhwm_kb\":%ld,"
			"\"conns\":%d,\"server_counted_conns\":%u,\"idle_vmrss_kb\":%ld,"
			"\"conns_vmrss_kb\":%ld,\"conns_vmhwm_kb\":%ld,\"kb_per_conn\":%.2f,"
			"\"raw_insert_per_s_conn_phase\":%.1f}\n",
			nv, nb, BATCH, total, row_bytes, body_bytes, apply_s, apply_rate, raw_rate_1,
			apply_rate / raw_rate_1, max_lat, apply_hwm, nc, open_conns, idle_rss,
			conn_rss, conn_hwm, per_conn_kb, raw_rate_2);
		fclose(f);
	}
	for (int i = 0; i < ncodes; i++)
		free(codes[i]);
	free(codes);
	for (int i = 0; i < nv; i++) {
		for (int b = 0; b < nb; b++)
			buf_free(&vs[i].bodies[b]);
		free(vs[i].bodies);
	}
	free(vs);
	free(th);
	free(hcs);
	free(tokens);
	buf_free(&why);
	if (!getenv("BENCH_KEEP")) {
		char cmd[800];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "bench_server: could not remove %s\n", dir);
	} else {
		fprintf(stderr, "kept %s\n", dir);
	}
	return 0;
}
