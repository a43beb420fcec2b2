/*
 * serve — `tallyd serve` (see serve.h and docs/server.md).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "client/clock.h"
#include "client/srvstore.h"
#include "daemon/blobsrv.h"
#include "daemon/config.h"
#include "daemon/dash.h"
#include "daemon/httpd.h"
#include "daemon/log.h"
#include "daemon/ratelimit.h"
#include "daemon/serve.h"
#include "daemon/syncsrv.h"
#include "protocol/error.h"
#include "protocol/message.h"

#define SERVE_MAX_LISTEN 8
#define SERVE_MAX_NAMES 16
#define PATH_MAX_LEN 4096

/* What the config file holds beyond httpd's own keys. */
struct serve_conf {
	char *cert;
	char *key;
	char *urls; /* space-separated */
	char *hosts; /* space-separated names for a generated certificate */
	unsigned max_ahead_ms;
	unsigned max_changes;
	unsigned max_pull_limit;
	size_t pull_max_bytes;
	int log_level;
};

static const char *const level_names[] = {"debug", "info", "warn", "error", NULL};

static const struct config_option serve_config_options[] = {
	{"cert", CONFIG_STRING, offsetof(struct serve_conf, cert), 1, 4095, NULL, NULL,
	 "PEM certificate file (leaf first); default DB.crt, made if missing"},
	{"key", CONFIG_STRING, offsetof(struct serve_conf, key), 1, 4095, NULL, NULL,
	 "PEM private key file; default DB.key, made if missing"},
	{"urls", CONFIG_STRING, offsetof(struct serve_conf, urls), 1, 2047, NULL, NULL,
	 "space-separated https:// addresses villages use (put in join codes)"},
	{"hosts", CONFIG_STRING, offsetof(struct serve_conf, hosts), 1, 2047, NULL, NULL,
	 "space-separated names/addresses for a generated self-signed certificate"},
	{"max_ahead", CONFIG_MS, offsetof(struct serve_conf, max_ahead_ms), 1000, 300000,
	 "300s", NULL, "how far ahead a change's clock may be before the server orders it"},
	{"max_changes", CONFIG_UINT, offsetof(struct serve_conf, max_changes), 1, 1000, "1000",
	 NULL, "changes in one push or pull page"},
	{"max_pull_limit", CONFIG_UINT, offsetof(struct serve_conf, max_pull_limit), 1, 1000,
	 "1000", NULL, "largest pull page"},
	{"pull_max_bytes", CONFIG_SIZE, offsetof(struct serve_conf, pull_max_bytes), 1024,
	 4u << 20, "2mb", NULL, "canonical bytes of one pull page"},
	{"log_level", CONFIG_ENUM, offsetof(struct serve_conf, log_level), 0, 0, "info",
	 level_names, "debug, info, warn or error"},
};

/* What the routes and the auth hook use (serve.h: serve_app_new). */
struct serve_app {
	struct syncsrv *ss; /* borrowed */
	struct httpd *h;    /* borrowed */
	struct ratelimit *rl;
	struct blobsrv *blob;
	struct dash *dash; /* the township dashboard (dash.h) */
};

/* What only the `tallyd serve` process has: the restore mark and the test hook. */
struct server {
	struct syncsrv *ss;
	struct httpd *h;
	struct serve_app *app;
	char mark_path[PATH_MAX_LEN];
	unsigned pause_ms; /* test hook, 0 in production */
};

void serve_tls_paths(const char *db_path, char *cert, char *key, size_t n)
{
	snprintf(cert, n, "%s.crt", db_path);
	snprintf(key, n, "%s.key", db_path);
}

void serve_mark_path(const char *db_path, char *out, size_t n)
{
	snprintf(out, n, "%s.mark", db_path);
}

int serve_tls_ensure(const char *cert, const char *key, const char *const *names, size_t n,
		     char pin[TLS_PIN_SIZE], struct buf *why)
{
	static const char *const defaults[] = {"localhost", "127.0.0.1", "::1"};
	int have_cert = access(cert, F_OK) == 0, have_key = access(key, F_OK) == 0;
	int err;

	if (have_cert != have_key) {
		if (why) {
			buf_reset(why);
			(void)buf_addf(why, "证书和私钥只找到一个（%s / %s），请补齐或两个都删除后重新生成",
				       cert, key);
		}
		return TLY_E_TLS;
	}
	if (!have_cert) {
		if (n == 0) {
			names = defaults;
			n = 3;
		}
		err = tls_generate_cert(key, cert, names, n, 0, 0);
		if (err)
			return err;
		log_event(LOG_LEVEL_INFO, "tls_generated", "cert=%s key=%s names=%zu", cert, key, n);
	}
	return tls_pin_cert_file(cert, pin);
}

/* ---- restore detection ---- */

static int mark_read(const char *path, int64_t *out)
{
	FILE *f = fopen(path, "r");
	long long v = 0;
	*out = -1;
	if (!f)
		return errno == ENOENT ? TLY_OK : TLY_E_IO;
	if (fscanf(f, "%lld", &v) == 1 && v >= 0)
		*out = v;
	fclose(f);
	return TLY_OK;
}

/* Written with rename so it is never torn, and without fsync: the mark can
 * only lag the database (it is written after the commit), and a lagging
 * mark cannot make a good database look restored. */
static void mark_write(const char *path, int64_t high)
{
	char tmp[PATH_MAX_LEN + 8];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	int ok = fprintf(f, "%lld\n", (long long)high) > 0;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		log_event(LOG_LEVEL_WARN, "mark_write_failed", "path=%s errno=%d", path, errno);
		(void)unlink(tmp);
	}
}

static void on_commit(void *arg, int64_t high)
{
	struct server *sv = arg;
	mark_write(sv->mark_path, high);
	if (sv->pause_ms) {
		struct timespec ts = {sv->pause_ms / 1000, (long)(sv->pause_ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) != 0)
			;
	}
}

/* ---- answering ---- */

static int send_reply(struct httpd_req *r, struct syncsrv_reply *rep)
{
	if (rep->retry_after) {
		char ra[16];
		snprintf(ra, sizeof ra, "%u", rep->retry_after);
		(void)httpd_add_header(r, "Retry-After", ra);
	}
	return httpd_reply_json(r, rep->status, rep->body.data ? rep->body.data : "{}",
				rep->body.len);
}

static int answer_error(struct httpd_req *r, int status, int err, const char *message,
			uint32_t retry_after)
{
	struct syncsrv_reply rep;
	struct msg_error m;
	int rc;

	syncsrv_reply_init(&rep);
	memset(&m, 0, sizeof m);
	m.code = err;
	m.message = (char *)(message ? message : error_text_zh(err));
	m.retry_after = retry_after;
	rep.status = status ? status : httpd_status_of(err);
	rep.retry_after = retry_after;
	rc = msg_encode_error(&m, &rep.body);
	if (!rc)
		rc = send_reply(r, &rep);
	syncsrv_reply_free(&rep);
	return rc;
}

typedef int (*sync_fn)(struct syncsrv *s, const struct syncsrv_principal *p, const char *body,
		       size_t n, struct syncsrv_reply *r);

static int run_sync(struct httpd_req *r, struct serve_app *sv, sync_fn fn)
{
	struct syncsrv_reply rep;
	size_t n;
	const char *body = httpd_req_body(r, &n);
	syncsrv_reply_init(&rep);
	int err = fn(sv->ss, httpd_req_principal(r), body, n, &rep);
	if (!err)
		err = send_reply(r, &rep);
	syncsrv_reply_free(&rep);
	return err;
}

static int h_push(struct httpd_req *r, void *arg)
{
	return run_sync(r, arg, syncsrv_push);
}

static int h_pull(struct httpd_req *r, void *arg)
{
	return run_sync(r, arg, syncsrv_pull);
}

static int h_join(struct httpd_req *r, void *arg)
{
	struct serve_app *sv = arg;
	struct syncsrv_reply rep;
	size_t n;
	const char *body = httpd_req_body(r, &n);
	syncsrv_reply_init(&rep);
	int err = syncsrv_join(sv->ss, body, n, httpd_req_remote(r), &rep);
	if (!err)
		err = send_reply(r, &rep);
	syncsrv_reply_free(&rep);
	return err;
}

static int h_devices(struct httpd_req *r, void *arg)
{
	struct serve_app *sv = arg;
	struct syncsrv_reply rep;
	syncsrv_reply_init(&rep);
	int err = syncsrv_devices(sv->ss, httpd_req_principal(r), &rep);
	if (!err)
		err = send_reply(r, &rep);
	syncsrv_reply_free(&rep);
	return err;
}

static int h_whoami(struct httpd_req *r, void *arg)
{
	struct serve_app *sv = arg;
	struct syncsrv_reply rep;
	syncsrv_reply_init(&rep);
	int err = syncsrv_whoami(sv->ss, httpd_req_principal(r), &rep);
	if (!err)
		err = send_reply(r, &rep);
	syncsrv_reply_free(&rep);
	return err;
}

static int h_health(struct httpd_req *r, void *arg)
{
	struct serve_app *sv = arg;
	struct httpd_stats st;
	char body[512];
	httpd_get_stats(sv->h, &st);
	int n = snprintf(body, sizeof body,
			 "{\"ok\":true,\"v\":%d,\"epoch\":\"%s\",\"server_ms\":%lld,"
			 "\"connections\":%u,\"requests\":%llu}",
			 PROTOCOL_VERSION, syncsrv_epoch(sv->ss), (long long)clock_device_ms(),
			 st.connections, (unsigned long long)st.requests);
	return httpd_reply_json(r, 200, body, (size_t)n);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* On the headers, before a body byte is read: who is calling, and may
 * they send now. Our own answers (not httpd's) so that 401 and 429 carry
 * the protocol's error message. */
static int auth_hook(struct httpd_req *r, void *arg)
{
	struct serve_app *sv = arg;
	struct syncsrv_principal p, *copy;
	int err = syncsrv_authenticate(sv->ss, httpd_req_bearer(r), &p);

	if (err == TLY_E_UNAUTHORIZED || err == TLY_E_REVOKED) {
		log_event(LOG_LEVEL_WARN, "auth_refused", "remote=%s path=%s code=%s",
			  httpd_req_remote(r), httpd_req_path(r), error_name(err));
		return answer_error(r, 401, err,
				    err == TLY_E_REVOKED
					    ? "本设备已被乡镇注销，不能再同步；如需继续使用，请向乡镇申请新的加入码"
					    : "身份凭证无效或缺失，请先用加入码加入乡镇台账",
				    0);
	}
	if (err)
		return err;
	if (sv->blob && blobsrv_is_chunk(r)) {
		/* Chunks are metered by bytes per village per day, not by the
		 * request rate: a 20 MB photo is hundreds of them. */
		err = blobsrv_admit(sv->blob, r, &p);
		if (err)
			return err;
	} else if (sv->rl) {
		char key[40];
		uint64_t wait_ms = 0;
		snprintf(key, sizeof key, "%c:%s", p.kind, p.id);
		err = ratelimit_take(sv->rl, key, mono_ms(), &wait_ms);
		if (err == TLY_E_RATE_LIMITED) {
			uint32_t secs = (uint32_t)((wait_ms + 999) / 1000);
			syncsrv_note_error(sv->ss, &p, err);
			log_event(LOG_LEVEL_WARN, "rate_limited", "device=%s retry_after=%u", p.id,
				  secs);
			return answer_error(r, 429, err, NULL, secs ? secs : 1);
		}
		if (err)
			return err;
	}
	copy = malloc(sizeof *copy);
	if (!copy)
		return TLY_E_NOMEM;
	*copy = p;
	httpd_req_set_principal(r, copy, free);
	return TLY_OK;
}

int serve_app_new(struct httpd *h, struct syncsrv *ss, const char *db_path,
		  const struct httpd_options *ho, const struct blobsrv_options *bo,
		  struct serve_app **out)
{
	struct serve_app *a = calloc(1, sizeof *a);
	int err = TLY_E_NOMEM;

	*out = NULL;
	if (!a)
		return err;
	a->ss = ss;
	a->h = h;
	/* Rate limits are ours (keyed by credential in the auth hook), so the
	 * 429 carries the protocol's error message; httpd's must be off. */
	if (ho->rate_per_minute) {
		err = ratelimit_new(ho->rate_per_minute, ho->rate_burst ? ho->rate_burst : 1,
				    ho->rate_max_keys ? ho->rate_max_keys : 1, &a->rl);
		if (err)
			goto out;
	}
	const struct httpd_route routes[] = {
		{"GET", "/v1/health", 0, HTTPD_PUBLIC, 0, h_health, a},
		{"POST", "/v1/join", 0, HTTPD_JSON | HTTPD_PUBLIC, 4096, h_join, a},
		{"POST", "/v1/push", 0, HTTPD_JSON, 0, h_push, a},
		{"POST", "/v1/pull", 0, HTTPD_JSON, 4096, h_pull, a},
		{"GET", "/v1/devices", 0, 0, 0, h_devices, a},
		{"GET", "/v1/whoami", 0, 0, 0, h_whoami, a},
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		err = httpd_add_route(h, &routes[i]);
		if (err)
			goto out;
	}
	err = dash_new(ss, &a->dash);
	if (!err)
		err = dash_add_routes(a->dash, h);
	if (!err)
		err = blobsrv_new(ss, db_path, bo, &a->blob);
	if (!err)
		err = blobsrv_add_routes(a->blob, h);
	if (!err)
		httpd_set_auth(h, auth_hook, a);
out:
	if (err) {
		serve_app_free(a);
		return err;
	}
	*out = a;
	return TLY_OK;
}

void serve_app_free(struct serve_app *a)
{
	if (!a)
		return;
	dash_free(a->dash);
	ratelimit_free(a->rl);
	blobsrv_free(a->blob);
	free(a);
}

/* ---- main ---- */

static void usage(void)
{
	fprintf(stderr,
		"用法: tallyd serve --db PATH [--listen HOST:PORT]... [--config FILE]\n"
		"       [--set KEY=VALUE]... [--cert FILE --key FILE] [--host NAME]...\n"
		"       [--url https://HOST:PORT]... [--new-epoch] [--log-level LEVEL]\n");
}

static size_t split_words(char *s, const char **out, size_t max)
{
	size_t n = 0;
	for (char *tok = strtok(s, " \t\n"); tok && n < max; tok = strtok(NULL, " \t\n"))
		out[n++] = tok;
	return n;
}

/* Stores the addresses join codes carry: --url/urls when given, else the
 * stored ones, else one made from the listening address. */
static int save_urls(struct db *db, const char *const *urls, size_t n, const char *listen,
		     unsigned port)
{
	struct buf b;
	int err;
	buf_init(&b, 8192);
	if (n == 0) {
		err = srvstore_setting_text(db, SERVE_URLS_SETTING, &b);
		if (err || (b.data && b.data[0])) {
			buf_free(&b);
			return err;
		}
		char host[256];
		snprintf(host, sizeof host, "%s", listen);
		char *colon = strrchr(host, ':');
		if (colon)
			*colon = '\0';
		if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "[::]") == 0 || !host[0]) {
			log_event(LOG_LEVEL_WARN, "server_urls_guessed",
				  "listen=%s hint=\"give --url https://ADDRESS:PORT for join codes\"",
				  listen);
			snprintf(host, sizeof host, "127.0.0.1");
		}
		err = buf_addf(&b, "https://%s:%u", host, port);
	} else {
		buf_reset(&b);
		err = TLY_OK;
		for (size_t i = 0; i < n && !err; i++)
			err = buf_addf(&b, "%s%s", i ? "\n" : "", urls[i]);
	}
	if (!err)
		err = db_setting_set(db, SERVE_URLS_SETTING, b.data);
	buf_free(&b);
	return err;
}

int serve_main(int argc, char **argv)
{
	struct httpd_options ho;
	struct serve_conf sc;
	struct blobsrv_options bo;
	struct config_section secs[3] = {
		{httpd_config_options, httpd_config_options_count, &ho},
		{serve_config_options, sizeof serve_config_options / sizeof serve_config_options[0],
		 &sc},
		{blobsrv_config_options, blobsrv_config_options_count, &bo},
	};
	struct config_error cerr;
	struct syncsrv_options so;
	struct server sv;
	struct buf why;
	const char *db_path = NULL, *config = NULL, *cert_arg = NULL, *key_arg = NULL;
	const char *listen[SERVE_MAX_LISTEN], *names[SERVE_MAX_NAMES], *urls[SERVE_MAX_NAMES];
	size_t nlisten = 0, nnames = 0, nurls = 0;
	char cert[PATH_MAX_LEN], key[PATH_MAX_LEN], pin[TLS_PIN_SIZE];
	int new_epoch = 0, level_flag = -1, rc = 1, err = TLY_OK;
	unsigned port = 0;
	SSL_CTX *ctx = NULL;

	memset(&sv, 0, sizeof sv);
	memset(&sc, 0, sizeof sc);
	buf_init(&why, 4096);
	httpd_options_default(&ho);
	blobsrv_options_default(&bo);
	if (config_set_defaults(secs, 3) != TLY_OK)
		goto out;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--new-epoch") == 0) {
			new_epoch = 1;
			continue;
		}
		if (!v || a[0] != '-') {
			usage();
			rc = 2;
			goto out;
		}
		i++;
		if (strcmp(a, "--db") == 0)
			db_path = v;
		else if (strcmp(a, "--config") == 0)
			config = v;
		else if (strcmp(a, "--listen") == 0 && nlisten < SERVE_MAX_LISTEN)
			listen[nlisten++] = v;
		else if (strcmp(a, "--cert") == 0)
			cert_arg = v;
		else if (strcmp(a, "--key") == 0)
			key_arg = v;
		else if (strcmp(a, "--host") == 0 && nnames < SERVE_MAX_NAMES)
			names[nnames++] = v;
		else if (strcmp(a, "--url") == 0 && nurls < SERVE_MAX_NAMES)
			urls[nurls++] = v;
		else if (strcmp(a, "--log-level") == 0) {
			if (log_parse_level(v, &level_flag) != TLY_OK) {
				usage();
				rc = 2;
				goto out;
			}
		} else if (strcmp(a, "--set") == 0) {
			/* applied after the file, below */
		} else {
			usage();
			rc = 2;
			goto out;
		}
	}
	if (!db_path) {
		usage();
		rc = 2;
		goto out;
	}
	/* The file first, then --set, then flags: the command line wins. */
	if (config) {
		err = config_load_file(secs, 3, config, &cerr);
		if (err) {
			log_event(LOG_LEVEL_ERROR, "config_refused", "file=%s line=%u key=%s reason=%s",
				  config, cerr.line, cerr.key, cerr.msg);
			rc = 2;
			goto out;
		}
	}
	for (int i = 1; i + 1 < argc; i++) {
		if (strcmp(argv[i], "--set") != 0)
			continue;
		char kv[1024];
		snprintf(kv, sizeof kv, "%s", argv[++i]);
		char *eq = strchr(kv, '=');
		if (!eq || (*eq = '\0', config_set(secs, 3, kv, eq + 1, &cerr)) != TLY_OK) {
			log_event(LOG_LEVEL_ERROR, "config_refused", "set=%s reason=%s", argv[i],
				  eq ? cerr.msg : "KEY=VALUE expected");
			rc = 2;
			goto out;
		}
	}
	log_set_level(level_flag >= 0 ? level_flag : sc.log_level);
	if (nurls == 0 && sc.urls)
		nurls = split_words(sc.urls, urls, SERVE_MAX_NAMES);
	if (nnames == 0 && sc.hosts)
		nnames = split_words(sc.hosts, names, SERVE_MAX_NAMES);
	for (size_t i = 0; i < nurls; i++) {
		if (strncmp(urls[i], "https://", 8) != 0 || strlen(urls[i]) > 255) {
			log_event(LOG_LEVEL_ERROR, "config_refused", "url=%s reason=\"https:// only\"",
				  urls[i]);
			rc = 2;
			goto out;
		}
	}
	if (nlisten == 0)
		listen[nlisten++] = "127.0.0.1:8443";

	syncsrv_options_default(&so);
	so.limits.max_ahead_ms = sc.max_ahead_ms;
	so.limits.max_changes = sc.max_changes;
	so.limits.max_pull_limit = sc.max_pull_limit;
	so.limits.max_body_bytes = ho.max_body_bytes < so.limits.max_body_bytes
					   ? ho.max_body_bytes
					   : so.limits.max_body_bytes;
	so.pull_max_bytes = sc.pull_max_bytes;
	err = syncsrv_open(db_path, &so, &sv.ss, &why);
	if (err) {
		log_event(LOG_LEVEL_ERROR, "serve_db_refused", "db=%s code=%s detail=%s", db_path,
			  error_name(err), why.data);
		fprintf(stderr, "错误：%s (%s)\n", why.data ? why.data : error_text_zh(err),
			error_name(err));
		goto out;
	}

	/* Restore detection: the mark is the change-log high-water of the last
	 * commit this server made. A database below it went back in time (a
	 * backup was restored): villages must resend what it lost, so it gets a
	 * new epoch (PROTOCOL.md §11). */
	serve_mark_path(db_path, sv.mark_path, sizeof sv.mark_path);
	int64_t mark, high;
	err = mark_read(sv.mark_path, &mark);
	if (!err)
		err = srvstore_log_high(syncsrv_db(sv.ss), &high);
	if (err)
		goto out;
	if (mark > high) {
		log_event(LOG_LEVEL_ERROR, "server_restored",
			  "db=%s log_high=%lld mark=%lld action=new_epoch", db_path, (long long)high,
			  (long long)mark);
		err = syncsrv_new_epoch(sv.ss, "database older than its last commit (restored)");
	} else if (new_epoch) {
		err = syncsrv_new_epoch(sv.ss, "operator (--new-epoch)");
	}
	if (err)
		goto out;
	mark_write(sv.mark_path, high);
	syncsrv_set_commit_hook(sv.ss, on_commit, &sv);
	const char *pause = getenv("TALLY_TEST_PAUSE_AFTER_COMMIT_MS");
	if (pause && *pause) {
		sv.pause_ms = (unsigned)strtoul(pause, NULL, 10);
		log_event(LOG_LEVEL_WARN, "test_hook_active", "pause_after_commit_ms=%u", sv.pause_ms);
	}

	if ((cert_arg != NULL) != (key_arg != NULL)) {
		fprintf(stderr, "错误：--cert 和 --key 要一起给出\n");
		rc = 2;
		goto out;
	}
	serve_tls_paths(db_path, cert, key, sizeof cert);
	if (cert_arg || sc.cert) {
		snprintf(cert, sizeof cert, "%s", cert_arg ? cert_arg : sc.cert);
		snprintf(key, sizeof key, "%s", key_arg ? key_arg : (sc.key ? sc.key : ""));
		err = tls_pin_cert_file(cert, pin);
	} else {
		err = serve_tls_ensure(cert, key, names, nnames, pin, &why);
	}
	if (!err)
		err = tls_create_server_ctx(cert, key, &ctx);
	if (err) {
		log_event(LOG_LEVEL_ERROR, "serve_tls_refused", "cert=%s key=%s code=%s detail=%s",
			  cert, key, error_name(err), why.data);
		goto out;
	}

	/* The rate limit is the app's (serve_app_new), not httpd's. */
	struct httpd_options hd = ho;
	hd.rate_per_minute = 0;
	err = httpd_new(&hd, ctx, &sv.h);
	if (!err)
		err = serve_app_new(sv.h, sv.ss, db_path, &ho, &bo, &sv.app);
	if (err)
		goto out;
	for (size_t i = 0; i < nlisten; i++) {
		unsigned p = 0;
		err = httpd_listen(sv.h, listen[i], &p);
		if (err) {
			log_event(LOG_LEVEL_ERROR, "serve_listen_failed", "listen=%s code=%s", listen[i],
				  error_name(err));
			goto out;
		}
		if (i == 0)
			port = p;
	}
	err = save_urls(syncsrv_db(sv.ss), urls, nurls, listen[0], port);
	if (err)
		goto out;
	log_event(LOG_LEVEL_INFO, "serve_started", "db=%s port=%u epoch=%s pin=%s", db_path, port,
		  syncsrv_epoch(sv.ss), pin);
	printf("port=%u pin=%s epoch=%s\n", port, pin, syncsrv_epoch(sv.ss));
	fflush(stdout);
	err = httpd_run(sv.h);
	if (!err)
		rc = 0;
out:
	if (rc == 1 && err)
		log_event(LOG_LEVEL_ERROR, "serve_failed", "code=%s", error_name(err));
	httpd_free(sv.h);
	serve_app_free(sv.app); /* borrows sv.ss: before syncsrv_close */
	syncsrv_close(sv.ss);
	SSL_CTX_free(ctx);
	config_free(secs, 3);
	buf_free(&why);
	return rc;
}
