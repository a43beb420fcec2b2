/*
 * fuzz_serve_request — the township server's request handling, end to end,
 * in one process: the input is what a client sends after the TLS handshake
 * to a real httpd (daemon/httpd.c: the request reader, httpparse, routes,
 * framing, the body and gzip steps) carrying the real routes and auth hook
 * of `tallyd serve` (serve_app_new, daemon/serve.h), down to syncsrv's
 * join, push and pull on a real township database. The client is an
 * OpenSSL client on a loopback socket; one thread drives both ends, so an
 * input runs the same way every time.
 *
 * What it asserts besides "no crash, no leak": every answer is a complete
 * HTTP response; no request is answered 500; every JSON answer with a 4xx
 * status is the protocol's error message (msg_decode_error accepts it);
 * the server closes nothing it should not keep and keeps no connection
 * after the client closed.
 *
 * Placeholders, replaced before sending, so the fuzzer reaches past
 * authentication and the chain check (credentials and hashes it could not
 * guess): $TOKA $TOKB (device tokens of villages A and B), $TOKU (a
 * township user), $TOKR (a revoked device), $CODE (an unused join code
 * "id.secret" for A's village), $SITEA $SITEB $SITET (A's, B's and the
 * township's site ids), $VA $VB (village ids), $TASKA $TASKB $PROB,
 * $PREVA (the hash of A's last change held by the server, seq 2),
 * $EPOCH. Then in the body "$HEAD" is replaced by the head hash computed
 * from the body's own prev and changes (when they decode as changes), in
 * the head "$GZIP" gzips the body and reads "gzip", and "$LEN" is the
 * body's length. The dictionary (serve.dict) lists them.
 *
 * The database: a template township (2 villages, a problem, a task each,
 * devices for A and B, a revoked one, a user, A's first 2 changes held) is
 * built once in /dev/shm; the server runs on a copy that is replaced by a
 * fresh one every TALLY_FUZZ_RESET_EVERY inputs (default 1: each input
 * sees the same database, so a crash replays alone; ~1 ms on tmpfs).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "client/clock.h"
#include "client/ledger.h"
#include "client/srvstore.h"
#include "client/store.h"
#include "daemon/blobsrv.h"
#include "daemon/enrol.h"
#include "daemon/httpd.h"
#include "daemon/log.h"
#include "daemon/serve.h"
#include "daemon/syncsrv.h"
#include "daemon/tls.h"
#include "protocol/chain.h"
#include "protocol/compress.h"
#include "protocol/error.h"
#include "protocol/message.h"

#define FZ_MAX_REQUEST (1u << 20) /* bytes sent after expansion */
#define FZ_MAX_ANSWER (8u << 20)  /* bytes read back */
#define FZ_IDLE_ROUNDS 64         /* loop turns with nothing moving: the exchange is over */
#define FZ_MAX_ROUNDS 200000

#define NSUBST 16

static struct {
	int ready;
	char dir[64], tmpl[128], work[128], cert[160], key[160];
	SSL_CTX *sctx, *cctx;
	struct syncsrv *ss;
	struct httpd *h;
	struct serve_app *app;
	unsigned port;
	unsigned reset_every, since_reset;
	int verbose;
	const char *name[NSUBST];
	char value[NSUBST][200];
	size_t nsubst;
} F;

static void die(const char *what, int err)
{
	fprintf(stderr, "fuzz_serve_request: setup: %s: %s\n", what, error_name(err));
	abort();
}

static void subst_add(const char *name, const char *value)
{
	F.name[F.nsubst] = name;
	snprintf(F.value[F.nsubst], sizeof F.value[0], "%s", value);
	F.nsubst++;
}

/* ---- the template database ---- */

/* A device for village_id with site `site`, through POST /v1/join's logic. */
static void enrol_device(const char *village_id, const char *site, char token[ENROL_TOKEN_SIZE],
			 char code_out[128])
{
	static const char pin[] = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
	const char *urls[] = {"https://127.0.0.1:1"};
	struct buf code, body;
	struct enrol_code c;
	struct syncsrv_reply r;
	char secret[DB_ID_LEN + 2 + 2 * ENROL_SECRET_LEN];
	int err;

	buf_init(&code, 8192);
	buf_init(&body, 8192);
	err = enrol_code_create(syncsrv_db(F.ss), village_id, urls, 1, pin, ENROL_DEFAULT_TTL_MS,
				&code);
	if (!err)
		err = enrol_code_decode(code.data, &c);
	if (err)
		die("join code", err);
	memcpy(secret, c.id, DB_ID_LEN);
	secret[DB_ID_LEN] = '.';
	for (int i = 0; i < ENROL_SECRET_LEN; i++)
		snprintf(secret + DB_ID_LEN + 1 + 2 * i, 3, "%02x", c.secret[i]);
	if (code_out) {
		/* not exchanged: the fuzzer's to use */
		snprintf(code_out, 128, "%s", secret);
		goto out;
	}
	err = buf_addf(&body, "{\"v\":1,\"code\":\"%s\",\"site\":\"%s\",\"name\":\"pc\"}", secret,
		       site);
	syncsrv_reply_init(&r);
	if (!err)
		err = syncsrv_join(F.ss, body.data, body.len, "setup", &r);
	if (!err && r.status != 200)
		err = TLY_E_INTERNAL;
	if (!err) {
		json_t *j = json_loads(r.body.data, 0, NULL);
		const char *t = json_string_value(json_object_get(j, "token"));
		if (t)
			snprintf(token, ENROL_TOKEN_SIZE, "%s", t);
		else
			err = TLY_E_INTERNAL;
		json_decref(j);
	}
	syncsrv_reply_free(&r);
	if (err)
		die("join", err);
out:
	buf_free(&code);
	buf_free(&body);
}

/* Applies every page a device may pull to its own database. */
static void pull_into(const char *token, struct db *db)
{
	struct syncsrv_principal p;
	uint64_t cursor = 0;
	int more = 1, err = syncsrv_authenticate(F.ss, token, &p);

	while (!err && more) {
		struct syncsrv_reply r;
		struct msg_pull_answer a;
		char body[160];
		snprintf(body, sizeof body,
			 "{\"v\":1,\"type\":\"pull\",\"epoch\":\"\",\"cursor\":%llu,\"limit\":1000}",
			 (unsigned long long)cursor);
		syncsrv_reply_init(&r);
		err = syncsrv_pull(F.ss, &p, body, strlen(body), &r);
		if (!err)
			err = msg_decode_pull_answer(r.body.data, r.body.len, NULL, &a);
		syncsrv_reply_free(&r);
		if (err)
			break;
		err = db_begin(db);
		for (size_t i = 0; i < a.n && !err; i++) {
			enum store_outcome oc;
			err = store_apply_remote(db, a.changes[i], NULL, clock_device_ms(), &oc, NULL,
						 NULL);
		}
		if (!err)
			err = db_commit(db);
		else
			db_rollback(db);
		cursor = a.next;
		more = a.more;
		msg_pull_answer_clear(&a);
	}
	if (err)
		die("pull", err);
}

/* Pushes a village's own changes 1..n through syncsrv_push. */
static void push_own(const char *token, struct db *db, char prev_hex[2 * CHANGE_HASH_LEN + 1])
{
	struct syncsrv_principal p;
	struct syncsrv_reply r;
	struct change **cs = NULL;
	struct msg_push m;
	struct buf body;
	size_t got = 0;
	int err = syncsrv_authenticate(F.ss, token, &p);

	memset(&m, 0, sizeof m);
	buf_init(&body, 1u << 20);
	syncsrv_reply_init(&r);
	if (!err)
		err = store_outbox_read(db, 0, 100, SIZE_MAX, &cs, &got);
	if (!err && got == 0)
		err = TLY_E_NOT_FOUND;
	if (!err) {
		snprintf(m.site, sizeof m.site, "%s", db_site(db)->site_id);
		memcpy(m.prev, change_prev(cs[0]), CHANGE_HASH_LEN);
		memcpy(m.head, change_hash(cs[got - 1]), CHANGE_HASH_LEN);
		m.changes = cs;
		m.n = got;
		m.device_ms = (uint64_t)clock_device_ms();
		m.queue = 0;
		err = msg_encode_push(&m, &body);
	}
	if (!err)
		err = syncsrv_push(F.ss, &p, body.data, body.len, &r);
	if (!err && r.status != 200)
		err = TLY_E_INTERNAL;
	if (!err)
		chain_hex(change_hash(cs[got - 1]), prev_hex);
	store_changes_free(cs, got);
	syncsrv_reply_free(&r);
	buf_free(&body);
	if (err)
		die("push", err);
}

static void build_template(void)
{
	struct db *t = NULL, *va_db = NULL, *vb_db = NULL;
	char va[LEDGER_ID_SIZE], vb[LEDGER_ID_SIZE], vc[LEDGER_ID_SIZE], prob[LEDGER_ID_SIZE];
	char ta[LEDGER_ID_SIZE], tb[LEDGER_ID_SIZE], pid[LEDGER_ID_SIZE];
	char tok_a[ENROL_TOKEN_SIZE], tok_b[ENROL_TOKEN_SIZE], tok_r[ENROL_TOKEN_SIZE];
	char tok_u[ENROL_TOKEN_SIZE], code[128], prev[2 * CHANGE_HASH_LEN + 1];
	char path[160], site_t[CHANGE_SITE_MAX + 1], site_r[CHANGE_SITE_MAX + 1];
	int err;

	err = ledger_init(F.tmpl, "township", "某某镇", NULL, &t, NULL);
	if (!err)
		err = ledger_village_add(t, "王家村", va, NULL);
	if (!err)
		err = ledger_village_add(t, "李家村", vb, NULL);
	if (!err)
		err = ledger_village_add(t, "张家村", vc, NULL);
	struct ledger_problem p = {.source = "inspection", .text = "道路硬化不到位"};
	if (!err)
		err = ledger_problem_add(t, &p, prob, NULL);
	struct ledger_task tk = {.problem = prob, .village = va, .measures = "硬化主干道",
				 .owner = "李明", .leader = "王建国", .deadline = "2030-06-30"};
	if (!err)
		err = ledger_task_add(t, &tk, ta, NULL);
	tk.village = vb;
	if (!err)
		err = ledger_task_add(t, &tk, tb, NULL);
	if (err)
		die("township", err);
	snprintf(site_t, sizeof site_t, "%s", db_site(t)->site_id);
	db_close(t);

	if ((err = syncsrv_open(F.tmpl, NULL, &F.ss, NULL)) != TLY_OK)
		die("syncsrv_open", err);
	snprintf(path, sizeof path, "%s/a.db", F.dir);
	err = ledger_init(path, "village", "王家村", va, &va_db, NULL);
	snprintf(path, sizeof path, "%s/b.db", F.dir);
	if (!err)
		err = ledger_init(path, "village", "李家村", vb, &vb_db, NULL);
	if (err)
		die("villages", err);
	enrol_device(va, db_site(va_db)->site_id, tok_a, NULL);
	enrol_device(vb, db_site(vb_db)->site_id, tok_b, NULL);
	if ((err = db_random_id(site_r)) != TLY_OK)
		die("random", err);
	enrol_device(vc, site_r, tok_r, NULL);
	enrol_device(va, NULL, NULL, code);

	/* A reports progress on its task: its seqs 1..2 are held. */
	pull_into(tok_a, va_db);
	err = ledger_progress_add(va_db, ta, 30, "完成第一段", NULL, NULL, 0, pid, NULL);
	if (err)
		die("progress", err);
	push_own(tok_a, va_db, prev);

	struct enrol_token ut = {.kind = 'u'}, rt;
	uint8_t hash[ENROL_HASH_LEN];
	err = db_random_id(ut.id);
	if (!err)
		err = enrol_secret_new(ut.secret);
	if (!err) {
		enrol_secret_hash(ut.secret, hash);
		err = srvstore_user_add(syncsrv_db(F.ss), ut.id, "督查组", hash, clock_device_ms());
	}
	if (!err)
		err = enrol_token_parse(tok_r, &rt);
	if (!err)
		err = srvstore_device_revoke(syncsrv_db(F.ss), rt.id, clock_device_ms());
	if (err)
		die("user/revoke", err);
	enrol_token_format(&ut, tok_u);

	subst_add("$TOKA", tok_a);
	subst_add("$TOKB", tok_b);
	subst_add("$TOKU", tok_u);
	subst_add("$TOKR", tok_r);
	subst_add("$CODE", code);
	subst_add("$SITEA", db_site(va_db)->site_id);
	subst_add("$SITEB", db_site(vb_db)->site_id);
	subst_add("$SITET", site_t);
	subst_add("$VA", va);
	subst_add("$VB", vb);
	subst_add("$TASKA", ta);
	subst_add("$TASKB", tb);
	subst_add("$PROB", prob);
	subst_add("$PREVA", prev);
	subst_add("$EPOCH", syncsrv_epoch(F.ss));
	syncsrv_close(F.ss);
	F.ss = NULL;
	db_close(va_db);
	db_close(vb_db);
}

/* ---- the server ---- */

static int copy_file(const char *from, const char *to)
{
	char buf[1 << 16];
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ssize_t n = 0;
	int err = in < 0 || out < 0 ? TLY_E_IO : TLY_OK;
	while (!err && (n = read(in, buf, sizeof buf)) > 0) {
		if (write(out, buf, (size_t)n) != n)
			err = TLY_E_IO;
	}
	if (n < 0)
		err = TLY_E_IO;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return err;
}

static void server_stop(void)
{
	httpd_free(F.h);
	serve_app_free(F.app);
	syncsrv_close(F.ss);
	F.h = NULL;
	F.app = NULL;
	F.ss = NULL;
}

static void server_start(void)
{
	struct httpd_options ho, hd;
	struct blobsrv_options bo;
	char p[160];
	int err;

	snprintf(p, sizeof p, "%s-wal", F.work);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", F.work);
	unlink(p);
	if ((err = copy_file(F.tmpl, F.work)) != TLY_OK)
		die("copy", err);
	if ((err = syncsrv_open(F.work, NULL, &F.ss, NULL)) != TLY_OK)
		die("syncsrv_open", err);
	httpd_options_default(&ho);
	blobsrv_options_default(&bo);
	/* Deadlines far away: an input is over in milliseconds, and a timer
	 * firing in the middle of one would make runs differ. No rate limit:
	 * every input uses the same credentials. */
	ho.header_timeout_ms = ho.body_timeout_ms = ho.idle_timeout_ms = 600000;
	ho.write_timeout_ms = 600000;
	ho.linger_ms = 600000;
	ho.rate_per_minute = 0;
	ho.log_requests = 0;
	ho.max_body_bytes = 2u << 20;
	ho.max_inflated_bytes = 4u << 20;
	hd = ho;
	err = httpd_new(&hd, F.sctx, &F.h);
	if (!err)
		err = serve_app_new(F.h, F.ss, F.work, &ho, &bo, &F.app);
	if (!err)
		err = httpd_listen(F.h, "127.0.0.1:0", &F.port);
	if (err)
		die("server", err);
	F.since_reset = 0;
}

static void setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	const char *names[] = {"127.0.0.1"};
	const char *every = getenv("TALLY_FUZZ_RESET_EVERY");
	char pin[TLS_PIN_SIZE];
	int err;

	log_set_level(LOG_LEVEL_ERROR);
	snprintf(F.dir, sizeof F.dir, "%s/tally-fuzz-serve-XXXXXX", base);
	if (!mkdtemp(F.dir))
		die("mkdtemp", TLY_E_IO);
	snprintf(F.tmpl, sizeof F.tmpl, "%s/template.db", F.dir);
	snprintf(F.work, sizeof F.work, "%s/town.db", F.dir);
	snprintf(F.cert, sizeof F.cert, "%s/town.crt", F.dir);
	snprintf(F.key, sizeof F.key, "%s/town.key", F.dir);
	F.reset_every = every && atoi(every) > 0 ? (unsigned)atoi(every) : 1;
	F.verbose = getenv("TALLY_FUZZ_VERBOSE") != NULL;
	build_template();
	err = serve_tls_ensure(F.cert, F.key, names, 1, pin, NULL);
	if (!err)
		err = tls_create_server_ctx(F.cert, F.key, &F.sctx);
	if (err)
		die("tls", err);
	F.cctx = SSL_CTX_new(TLS_client_method());
	if (!F.cctx)
		die("client ctx", TLY_E_NOMEM);
	SSL_CTX_set_verify(F.cctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(F.cctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
	server_start();
	F.ready = 1;
}

/* Removes the temporary files when the run ends (libFuzzer exits). */
static void teardown(void)
{
	char cmd[128];
	if (!F.ready)
		return;
	server_stop();
	SSL_CTX_free(F.sctx);
	SSL_CTX_free(F.cctx);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", F.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_serve_request: could not remove %s\n", F.dir);
}

/* ---- the request ---- */

/* The first occurrence of what[0..m) in p[0..n), or NULL (no memmem: GNU only). */
static const char *find(const char *p, size_t n, const char *what, size_t m)
{
	for (size_t i = 0; p && m && n >= m && i <= n - m; i++) {
		if (p[i] == what[0] && memcmp(p + i, what, m) == 0)
			return p + i;
	}
	return NULL;
}

static const char *str_or(const json_t *j, const char *def)
{
	const char *s = json_string_value(j);
	return s ? s : def;
}

/* in[0..n) with every placeholder replaced; NUL-terminated. */
static void expand(const uint8_t *in, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n;) {
		size_t k;
		if (in[i] == '$') {
			for (k = 0; k < F.nsubst; k++) {
				size_t l = strlen(F.name[k]);
				if (n - i >= l && memcmp(in + i, F.name[k], l) == 0)
					break;
			}
			/* longest names first would matter only for prefixes; none is */
			if (k < F.nsubst) {
				(void)buf_add_str(out, F.value[k]);
				i += strlen(F.name[k]);
				continue;
			}
		}
		(void)buf_add(out, in + i, 1);
		i++;
	}
}

/* The head hash of a push body's changes from its own prev, or 0. */
static int push_head(const char *body, size_t n, char hex[2 * CHANGE_HASH_LEN + 1])
{
	json_t *j = json_loadb(body, n, 0, NULL), *arr, *c;
	struct change *cs[64];
	size_t nc = 0, i;
	uint8_t prev[CHANGE_HASH_LEN];
	int ok = 0;

	arr = json_object_get(j, "changes");
	if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > 64 ||
	    !json_is_string(json_object_get(j, "site")) ||
	    chain_unhex(str_or(json_object_get(j, "prev"), ""), prev))
		goto out;
	json_array_foreach(arr, i, c) {
		json_t *f = json_object_get(c, "fields"), *v;
		const char *name;
		struct change *ch = NULL;
		if (!json_is_object(f) ||
		    change_new(&ch, (uint32_t)json_integer_value(json_object_get(c, "sv")),
			       json_string_value(json_object_get(j, "site")),
			       (uint64_t)json_integer_value(json_object_get(c, "seq")),
			       (uint64_t)json_integer_value(json_object_get(c, "hlc")),
			       str_or(json_object_get(c, "kind"), ""),
			       str_or(json_object_get(c, "id"), "")))
			goto out;
		cs[nc++] = ch;
		json_object_foreach(f, name, v) {
			int e = json_is_string(v)    ? change_set_text(ch, name, json_string_value(v),
								     json_string_length(v), NULL)
				: json_is_integer(v) ? change_set_int(ch, name, json_integer_value(v), NULL)
				: json_is_null(v)    ? change_set_null(ch, name, NULL)
						     : TLY_E_BAD_TYPE;
			if (e)
				goto out;
		}
	}
	for (i = 0; i < nc; i++) {
		if (chain_link(cs[i], i ? change_hash(cs[i - 1]) : prev))
			goto out;
	}
	chain_hex(change_hash(cs[nc - 1]), hex);
	ok = 1;
out:
	for (i = 0; i < nc; i++)
		change_free(cs[i]);
	json_decref(j);
	return ok;
}

static void replace_first(struct buf *b, const char *what, const char *with, size_t with_len)
{
	const char *p = find(b->data, b->len, what, strlen(what));
	struct buf out;
	if (!p)
		return;
	buf_init(&out, FZ_MAX_REQUEST * 2);
	(void)buf_add(&out, b->data, (size_t)(p - b->data));
	(void)buf_add(&out, with, with_len);
	(void)buf_add(&out, p + strlen(what), b->len - (size_t)(p - b->data) - strlen(what));
	buf_reset(b);
	(void)buf_add(b, out.data ? out.data : "", out.len);
	buf_free(&out);
}

/* The bytes to send: placeholders, then $HEAD, $GZIP and $LEN. */
static void make_request(const uint8_t *data, size_t size, struct buf *req)
{
	struct buf all, head, body;
	char hex[2 * CHANGE_HASH_LEN + 1], len[24];

	buf_init(&all, FZ_MAX_REQUEST);
	buf_init(&head, FZ_MAX_REQUEST);
	buf_init(&body, FZ_MAX_REQUEST * 2);
	expand(data, size, &all);
	const char *sep = find(all.data, all.len, "\r\n\r\n", 4);
	if (!sep) {
		(void)buf_add(req, all.data ? all.data : "", all.len);
		goto out;
	}
	(void)buf_add(&head, all.data, (size_t)(sep - all.data) + 4);
	(void)buf_add(&body, sep + 4, all.len - (size_t)(sep - all.data) - 4);
	if (find(body.data, body.len, "\"$HEAD\"", 7) &&
	    push_head(body.data, body.len, hex))
		replace_first(&body, "$HEAD", hex, strlen(hex));
	if (find(head.data, head.len, "$GZIP", 5)) {
		struct buf gz;
		buf_init(&gz, FZ_MAX_REQUEST * 2);
		if (compress_gzip(body.data ? body.data : "", body.len, &gz) == TLY_OK) {
			buf_reset(&body);
			(void)buf_add(&body, gz.data, gz.len);
		}
		buf_free(&gz);
		replace_first(&head, "$GZIP", "gzip", 4);
	}
	snprintf(len, sizeof len, "%zu", body.len);
	replace_first(&head, "$LEN", len, strlen(len));
	(void)buf_add(req, head.data, head.len);
	(void)buf_add(req, body.data ? body.data : "", body.len);
out:
	buf_free(&all);
	buf_free(&head);
	buf_free(&body);
}

/* ---- the answers ---- */

/* Checks every complete response in a[0..n): the properties above.
 * Returns the bytes consumed by complete responses. */
static size_t check_answers(const char *a, size_t n)
{
	size_t at = 0;
	while (at < n) {
		const char *p = a + at;
		const char *end = find(p, n - at, "\r\n\r\n", 4);
		int status;
		if (!end)
			break;
		if (n - at < 12 || memcmp(p, "HTTP/1.1 ", 9) != 0 || sscanf(p + 9, "%3d", &status) != 1)
			abort(); /* not an HTTP answer */
		size_t head_len = (size_t)(end - p) + 4, body_len = 0;
		const char *cl = find(p, head_len, "\r\nContent-Length: ", 18);
		int json = find(p, head_len, "\r\nContent-Type: application/json", 32) != NULL;
		int gz = find(p, head_len, "\r\nContent-Encoding: gzip", 24) != NULL;
		if (status >= 200) {
			if (!cl)
				abort(); /* every answer has a length */
			body_len = strtoul(cl + 18, NULL, 10);
		}
		if (n - at < head_len + body_len)
			break;
		if (status == 500)
			abort(); /* a request made the server fail */
		if (json && status >= 400) {
			struct buf plain;
			struct msg_error e;
			const char *b = p + head_len;
			size_t bl = body_len;
			buf_init(&plain, FZ_MAX_ANSWER);
			if (gz) {
				if (compress_inflate(b, bl, &plain) != TLY_OK)
					abort();
				b = plain.data ? plain.data : "";
				bl = plain.len;
			}
			if (msg_decode_error(b, bl, NULL, &e) != TLY_OK)
				abort(); /* a refusal that is not the protocol's error message */
			msg_error_clear(&e);
			buf_free(&plain);
		}
		at += head_len + body_len;
	}
	return at;
}

static void pump(void)
{
	event_base_loop(httpd_base(F.h), EVLOOP_NONBLOCK);
}

/* One connection: handshake, send, read until nothing moves, close. */
static void exchange(const struct buf *req)
{
	struct sockaddr_in sa;
	struct httpd_stats st;
	struct buf ans;
	SSL *ssl = NULL;
	size_t sent = 0;
	int fd, shook = 0, closed = 0, idle = 0;
	char tmp[16384];

	buf_init(&ans, FZ_MAX_ANSWER);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)F.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		abort();
	fcntl(fd, F_SETFL, O_NONBLOCK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)
		abort();
	ssl = SSL_new(F.cctx);
	if (!ssl)
		abort();
	SSL_set_fd(ssl, fd);
	SSL_set_connect_state(ssl);
	for (int round = 0; round < FZ_MAX_ROUNDS && !closed && idle < FZ_IDLE_ROUNDS; round++) {
		int moved = 0;
		pump();
		if (!shook) {
			int r = SSL_do_handshake(ssl);
			if (r == 1) {
				shook = moved = 1;
			} else {
				int e = SSL_get_error(ssl, r);
				if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
					abort(); /* our own server refused our handshake */
				continue;
			}
		}
		if (sent < req->len) {
			size_t chunk = req->len - sent < 16384 ? req->len - sent : 16384;
			int w = SSL_write(ssl, req->data + sent, (int)chunk);
			if (w > 0) {
				sent += (size_t)w;
				moved = 1;
			} else {
				int e = SSL_get_error(ssl, w);
				if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
					closed = 1; /* the server closed while we were sending */
			}
		}
		for (;;) {
			int r = SSL_read(ssl, tmp, sizeof tmp);
			if (r > 0) {
				if (ans.len + (size_t)r <= FZ_MAX_ANSWER)
					(void)buf_add(&ans, tmp, (size_t)r);
				moved = 1;
				continue;
			}
			int e = SSL_get_error(ssl, r);
			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				closed = 1;
			break;
		}
		idle = moved ? 0 : idle + 1;
	}
	check_answers(ans.data ? ans.data : "", ans.len);
	if (F.verbose) {
		/* TALLY_FUZZ_VERBOSE=1: each answer's status line and body, to
		 * see how far a seed gets */
		fprintf(stderr, "-- sent %zu of %zu bytes; answer:\n%.*s\n", sent, req->len,
			(int)(ans.len < 2000 ? ans.len : 2000), ans.data ? ans.data : "");
	}
	SSL_free(ssl);
	close(fd);
	/* The server must notice and free the connection. */
	for (int round = 0; round < FZ_MAX_ROUNDS; round++) {
		pump();
		httpd_get_stats(F.h, &st);
		if (st.connections == 0)
			break;
	}
	httpd_get_stats(F.h, &st);
	if (st.connections != 0)
		abort(); /* a connection the client closed is still held */
	buf_free(&ans);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf req;

	if (!F.ready) {
		setup();
		atexit(teardown);
	}
	if (size > 256 * 1024)
		return 0;
	if (F.since_reset >= F.reset_every) {
		server_stop();
		server_start();
	}
	F.since_reset++;
	buf_init(&req, FZ_MAX_REQUEST * 4);
	make_request(data, size, &req);
	exchange(&req);
	buf_free(&req);
	return 0;
}
