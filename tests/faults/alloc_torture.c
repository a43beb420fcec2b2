/*
 * alloc_torture — every allocation of one village push-and-pull fails in
 * turn (curl's "torture" idea): no crash, no leak, no partial
 * acknowledgement, and a clean cycle afterwards converges.
 *
 * What runs is the real thing, in one process, on real database files:
 * syncsrv_open on a township DB, db_open on a joined village DB, then
 * syncer_new + syncer_cycle (daemon/syncer.c: outbox read, push encoding,
 * the answer applied and acknowledged in one transaction, pull pages
 * applied with the cursor, evidence step), then closing both. Only the
 * HTTPS hop is replaced, at link time: -Wl,--wrap=httpc_send (and
 * httpc_new/httpc_free) routes each request to what serve.c does with it:
 * syncsrv_authenticate, then syncsrv_push/pull/join, and a handler error
 * answered 500 with the protocol's error message (httpd_status_of), or a
 * closed connection (TLY_E_NETWORK) when even that cannot be built. curl,
 * TLS, gzip and libevent are therefore NOT under torture here (the
 * iofail/faultproxy tests cover the wire).
 *
 * Allocations counted and failed (the i-th counted call returns NULL):
 *   - our code (protocol/, client/, daemon/ and this file) through
 *     -Wl,--wrap=malloc,calloc,realloc,free,strdup,strndup: the linker
 *     points every call in the static libraries here; the real allocator
 *     behind (__real_malloc) is ASan's in a sanitizer build, so ASan still
 *     checks every access and LeakSanitizer still runs at exit;
 *   - SQLite: sqlite3_config(SQLITE_CONFIG_MALLOC) before its first use
 *     (page cache, statements, schema, everything);
 *   - jansson: json_set_alloc_funcs;
 *   - OpenSSL (hashing, random ids): CRYPTO_set_mem_functions.
 * libc's own internal allocations (stdio, locale) are not counted.
 *
 * Leaks: every counted allocation is tracked (pointer, size, number, whose)
 * while the cycle runs; after the cycle and both closes, none of ours,
 * SQLite's or jansson's may remain. A warm-up cycle first lets libraries
 * make their one-time caches. OpenSSL legitimately keeps some blocks past
 * a failure (its error queue, cleared here with ERR_clear_error, and a
 * digest re-fetched into its cache), so blocks OpenSSL still holds are
 * left to LeakSanitizer, which runs at exit in the ASan build (the ctest
 * build) and tells reachable caches from leaks. Open file descriptors are
 * counted too (a database left open by an error path).
 *
 * After each run (injection off), checked with plain SQL and verify_run:
 *   - the cycle failed only if the failure was reached;
 *   - every own change the village marked acknowledged is held by the
 *     township with the same hash; the township holds the batch up to the
 *     last change of one of the push messages sent, never part of one (one
 *     message normally; the syncer halves a batch after a dropped
 *     connection); the pull cursor either did not move or moved with its
 *     page applied;
 *   - PRAGMA integrity_check clean on both databases;
 *   - a second cycle without failures succeeds, and then both sides hold
 *     exactly the (site, seq, hash) lists a clean run ends with, the
 *     village's merge state is the township's, everything is acked, and
 *     verify_run (chains, rebuild, integrity) is clean on both.
 *
 * Usage: alloc_torture [--all | --stride N | --points N] [--offset K]
 *                      [--from I] [--to I] [--only I] [--trace I] [--verbose]
 *   default (the ctest run): --points 160, half spread evenly over SQLite's
 *   allocations, half over everyone else's; --all tries every I (the long
 *   run; --stride N every N-th); --offset K shifts the sample; --from/--to
 *   bound it; --only I one point; --trace I prints the stack of the I-th
 *   allocation (use with --only to see what a failing point hit).
 * Exit 0 when every run holds, 1 otherwise.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <sqlite3.h>

#include "client/db.h"
#include "client/ledger.h"
#include "client/verify.h"
#include "daemon/enrol.h"
#include "daemon/httpc.h"
#include "daemon/log.h"
#include "daemon/syncer.h"
#include "daemon/syncsrv.h"
#include "protocol/change.h"
#include "protocol/error.h"
#include "protocol/message.h"

/* The ctest run: about this many points, half on SQLite's allocations and
 * half on everyone else's (ours, jansson's, OpenSSL's), each half evenly
 * spread: SQLite makes ~97% of the calls, and an even stride over all of
 * them would leave our own error paths a handful of tries. */
#define DEFAULT_POINTS 160

/* ---- the counting, failing allocator ------------------------------------ */

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);

/* Tracked blocks: open addressing, linear probing, backward-shift delete. */
struct live {
	void *p;
	size_t n;
	unsigned long idx; /* which counted allocation made it */
	int by;            /* whose allocator (BY_*) */
};

static struct live *tab;
static size_t tab_cap, tab_used;
static int armed;                   /* counting, failing and tracking */
static unsigned long calls, fail_at, trace_at;
static unsigned long failed_size;   /* bytes the failed call asked for */
/* Counted calls by whose allocator they went through, for the summary. */
enum { BY_OURS, BY_SQLITE, BY_JANSSON, BY_OPENSSL, BY__N };
static const char *const by_name[BY__N] = {"ours (protocol/client/daemon)", "sqlite",
					   "jansson", "openssl"};
static unsigned long by_count[BY__N];
static unsigned char *kind_of; /* kind_of[i - 1]: whose call i was (counting run) */
static size_t kind_cap;
static int record_kinds;

static size_t slot_of(const void *p)
{
	uintptr_t h = (uintptr_t)p;
	h ^= h >> 17;
	h *= UINT64_C(0x9E3779B97F4A7C15);
	return (size_t)(h >> 20) & (tab_cap - 1);
}

static void live_put(void *p, size_t n, unsigned long idx, int by);

static void live_grow(void)
{
	struct live *old = tab;
	size_t cap = tab_cap;
	tab_cap = cap ? cap * 2 : 1u << 14;
	tab = __real_calloc(tab_cap, sizeof *tab);
	if (!tab) {
		fputs("alloc_torture: out of memory for the tracking table\n", stderr);
		abort();
	}
	tab_used = 0;
	for (size_t i = 0; i < cap; i++)
		if (old[i].p)
			live_put(old[i].p, old[i].n, old[i].idx, old[i].by);
	__real_free(old);
}

static void live_put(void *p, size_t n, unsigned long idx, int by)
{
	if ((tab_used + 1) * 2 > tab_cap)
		live_grow();
	size_t i = slot_of(p);
	while (tab[i].p)
		i = (i + 1) & (tab_cap - 1);
	tab[i].p = p;
	tab[i].n = n;
	tab[i].idx = idx;
	tab[i].by = by;
	tab_used++;
}

/* 1 if p was tracked (and no longer is). */
static int live_del(const void *p)
{
	if (!tab_used)
		return 0;
	size_t i = slot_of(p);
	while (tab[i].p && tab[i].p != p)
		i = (i + 1) & (tab_cap - 1);
	if (!tab[i].p)
		return 0;
	tab[i].p = NULL;
	tab_used--;
	/* Backward shift (Knuth's algorithm R): move into the hole every later
	 * entry of the cluster whose home slot is not between the hole and it. */
	for (size_t j = (i + 1) & (tab_cap - 1); tab[j].p; j = (j + 1) & (tab_cap - 1)) {
		size_t k = slot_of(tab[j].p);
		int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
		if (stays)
			continue;
		tab[i] = tab[j];
		tab[j].p = NULL;
		i = j;
	}
	return 1;
}

static void live_forget(void)
{
	if (tab)
		memset(tab, 0, tab_cap * sizeof *tab);
	tab_used = 0;
}

extern void __sanitizer_print_stack_trace(void) __attribute__((weak));

static void print_stack(void)
{
	if (__sanitizer_print_stack_trace) {
		__sanitizer_print_stack_trace();
	} else {
		void *frames[48];
		int n = backtrace(frames, 48);
		backtrace_symbols_fd(frames, n, 2);
	}
}

/* Counts one allocation; 1 when it must fail. */
static int alloc_fails(size_t n, int by)
{
	if (!armed)
		return 0;
	unsigned long i = ++calls;
	by_count[by]++;
	if (record_kinds) {
		if (i > kind_cap) {
			size_t cap = kind_cap ? kind_cap * 2 : 1u << 15;
			unsigned char *k = __real_realloc(kind_of, cap);
			if (!k)
				abort();
			kind_of = k;
			kind_cap = cap;
		}
		kind_of[i - 1] = (unsigned char)by;
	}
	if (i == trace_at) {
		fprintf(stderr, "allocation %lu (%zu bytes)%s:\n", i, n,
			i == fail_at ? ", failing" : "");
		print_stack();
	}
	if (i != fail_at)
		return 0;
	failed_size = n;
	errno = ENOMEM;
	return 1;
}

static void *t_malloc(size_t n, int by)
{
	if (alloc_fails(n, by))
		return NULL;
	void *p = __real_malloc(n);
	if (p && armed)
		live_put(p, n, calls, by);
	return p;
}

static void t_free(void *p)
{
	if (!p)
		return;
	live_del(p);
	__real_free(p);
}

static void *t_realloc(void *p, size_t n, int by)
{
	if (!p)
		return t_malloc(n, by);
	if (n == 0) {
		t_free(p);
		return NULL;
	}
	if (alloc_fails(n, by))
		return NULL;
	void *q = __real_realloc(p, n);
	/* The block keeps its standing: one from before the cycle is the
	 * caller's, one from inside it must be gone by the end. */
	if (q && live_del(p))
		live_put(q, n, calls, by);
	return q;
}

void *__wrap_malloc(size_t n)
{
	return t_malloc(n, BY_OURS);
}

void *__wrap_calloc(size_t a, size_t b)
{
	if (b && a > SIZE_MAX / b) {
		errno = ENOMEM;
		return NULL;
	}
	if (alloc_fails(a * b, BY_OURS))
		return NULL;
	void *p = __real_calloc(a, b);
	if (p && armed)
		live_put(p, a * b, calls, BY_OURS);
	return p;
}

void *__wrap_realloc(void *p, size_t n)
{
	return t_realloc(p, n, BY_OURS);
}

void __wrap_free(void *p)
{
	t_free(p);
}

char *__wrap_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = t_malloc(n, BY_OURS);
	if (p)
		memcpy(p, s, n);
	return p;
}

char *__wrap_strndup(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	char *p = t_malloc(n + 1, BY_OURS);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

/* SQLite: a header before each block holds its size (xSize). */
#define SQ_HDR 16

static void *sq_malloc(int n)
{
	if (n <= 0 || alloc_fails((size_t)n, BY_SQLITE))
		return NULL;
	unsigned char *p = __real_malloc((size_t)n + SQ_HDR);
	if (!p)
		return NULL;
	size_t sz = (size_t)n;
	memcpy(p, &sz, sizeof sz);
	if (armed)
		live_put(p + SQ_HDR, sz, calls, BY_SQLITE);
	return p + SQ_HDR;
}

static void sq_free(void *q)
{
	if (!q)
		return;
	live_del(q);
	__real_free((unsigned char *)q - SQ_HDR);
}

static void *sq_realloc(void *q, int n)
{
	if (!q)
		return sq_malloc(n);
	if (n <= 0 || alloc_fails((size_t)n, BY_SQLITE))
		return NULL;
	unsigned char *p = __real_realloc((unsigned char *)q - SQ_HDR, (size_t)n + SQ_HDR);
	if (!p)
		return NULL;
	size_t sz = (size_t)n;
	memcpy(p, &sz, sizeof sz);
	if (live_del(q))
		live_put(p + SQ_HDR, sz, calls, BY_SQLITE);
	return p + SQ_HDR;
}

static int sq_size(void *q)
{
	size_t sz;
	memcpy(&sz, (unsigned char *)q - SQ_HDR, sizeof sz);
	return (int)sz;
}

static int sq_roundup(int n)
{
	return (n + 7) & ~7;
}

static int sq_init(void *arg)
{
	(void)arg;
	return SQLITE_OK;
}

static void sq_shutdown(void *arg)
{
	(void)arg;
}

static void *ossl_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return t_malloc(n, BY_OPENSSL);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return t_realloc(p, n, BY_OPENSSL);
}

static void ossl_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	t_free(p);
}

static void *j_malloc(size_t n)
{
	return t_malloc(n, BY_JANSSON);
}

static int hooks_install(void)
{
	static const sqlite3_mem_methods sq = {sq_malloc, sq_free,	 sq_realloc, sq_size,
					       sq_roundup, sq_init, sq_shutdown, NULL};
	if (!CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free)) {
		fputs("alloc_torture: OpenSSL allocated before main; cannot hook it\n", stderr);
		return -1;
	}
	if (sqlite3_config(SQLITE_CONFIG_MALLOC, &sq) != SQLITE_OK) {
		fputs("alloc_torture: sqlite3_config(SQLITE_CONFIG_MALLOC) refused\n", stderr);
		return -1;
	}
	json_set_alloc_funcs(j_malloc, t_free);
	return 0;
}

/* ---- the HTTPS hop, replaced by what serve.c does with a request -------- */

static struct syncsrv *g_srv; /* the township server of the current run */
static int g_dummy_httpc;
/* The last seq of each push message sent this run: the township must hold
 * its batch up to one of them, never in the middle of one. */
static uint64_t push_last[64];
static size_t n_push;

/* Notes a push message's last seq, decoded outside the count. */
static void note_push(const struct httpc_request *req)
{
	struct msg_push m;
	int was = armed;
	armed = 0;
	memset(&m, 0, sizeof m);
	if (msg_decode_push(req->body, req->body_len, NULL, &m) == TLY_OK && m.n &&
	    n_push < sizeof push_last / sizeof push_last[0])
		push_last[n_push++] = change_seq(m.changes[m.n - 1]);
	msg_push_clear(&m);
	armed = was;
}

int __wrap_httpc_new(const struct httpc_options *o, struct httpc **out)
{
	(void)o;
	*out = (struct httpc *)&g_dummy_httpc;
	return TLY_OK;
}

void __wrap_httpc_free(struct httpc *c)
{
	(void)c;
}

/* An answer as httpc hands it over: 200 + JSON is TLY_OK, anything else
 * TLY_E_HTTP_STATUS with the status and body (the caller decodes the
 * protocol's error message from it). */
static int deliver(struct syncsrv_reply *rep, struct httpc_response *res)
{
	res->status = rep->status;
	snprintf(res->content_type, sizeof res->content_type, "application/json");
	buf_free(&res->body);
	res->body = rep->body; /* moved: no allocation on the way */
	buf_init(&rep->body, 0);
	res->bytes_received = res->body.len;
	return rep->status == 200 ? TLY_OK : TLY_E_HTTP_STATUS;
}

int __wrap_httpc_send(struct httpc *c, const struct httpc_request *req,
		      struct httpc_response *res)
{
	struct syncsrv_principal p;
	struct syncsrv_reply rep;
	int err;

	(void)c;
	memset(res, 0, sizeof *res);
	buf_init(&res->body, 32u << 20);
	res->bytes_sent = req->body_len;
	syncsrv_reply_init(&rep);
	if (strcmp(req->path, "/v1/join") == 0) {
		err = syncsrv_join(g_srv, req->body, req->body_len, "torture", &rep);
	} else {
		/* serve.c's auth hook: its own 401s, other failures answered by httpd. */
		err = syncsrv_authenticate(g_srv, req->token, &p);
		if (err == TLY_E_UNAUTHORIZED || err == TLY_E_REVOKED) {
			err = syncsrv_reply_error(&rep, 401, err, NULL, 0);
		} else if (!err && strcmp(req->path, "/v1/push") == 0) {
			note_push(req);
			err = syncsrv_push(g_srv, &p, req->body, req->body_len, &rep);
		} else if (!err && strcmp(req->path, "/v1/pull") == 0) {
			err = syncsrv_pull(g_srv, &p, req->body, req->body_len, &rep);
		} else if (!err) {
			err = syncsrv_reply_error(&rep, 404, TLY_E_NOT_FOUND, NULL, 0);
		}
	}
	/* httpd answers a handler's error itself; if it cannot even build that
	 * answer it drops the connection. */
	if (err)
		err = syncsrv_reply_error(&rep, 0, err, NULL, 0) ? TLY_E_NETWORK : TLY_OK;
	if (!err)
		err = deliver(&rep, res);
	syncsrv_reply_free(&rep);
	return err;
}

/* Evidence uploads: the base has none, so none are sent. */
int __wrap_httpc_send_typed(struct httpc *c, const struct httpc_request *req,
			    const char *content_type, struct httpc_response *res)
{
	(void)content_type;
	return __wrap_httpc_send(c, req, res);
}

/* ---- files and SQL --------------------------------------------------------- */

/* Open file descriptors, to catch a database left open by an error path. */
static int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int fds_base; /* after the warm-up */

static char dir[64], base_town[128], base_village[128], town[128], village[128];
static int verbose;

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY), out = -1, ok = 0;
	ssize_t n;
	if (in < 0)
		return errno == ENOENT ? 0 : -1;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (out < 0)
		goto out;
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n)
			goto out;
	ok = n == 0;
out:
	close(in);
	if (out >= 0)
		close(out);
	return ok ? 0 : -1;
}

static int copy_db(const char *from, const char *to)
{
	static const char *const sfx[] = {"", "-wal", "-journal", "-shm"};
	char f[160], t[160];
	for (size_t i = 0; i < 4; i++) {
		snprintf(t, sizeof t, "%s%s", to, sfx[i]);
		(void)unlink(t);
	}
	for (size_t i = 0; i < 3; i++) {
		snprintf(f, sizeof f, "%s%s", from, sfx[i]);
		snprintf(t, sizeof t, "%s%s", to, sfx[i]);
		if (copy_file(f, t))
			return -1;
	}
	return 0;
}

/* A connection to the village with the township attached as t (checks only). */
static sqlite3 *sql_open(void)
{
	sqlite3 *h = NULL;
	char att[200];
	if (sqlite3_open_v2(village, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		goto fail;
	snprintf(att, sizeof att, "ATTACH '%s' AS t", town);
	if (sqlite3_exec(h, att, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	return h;
fail:
	fprintf(stderr, "alloc_torture: cannot open the databases: %s\n",
		h ? sqlite3_errmsg(h) : "?");
	sqlite3_close(h);
	return NULL;
}

/* The first column of the first row as an integer (-1 on error). */
static int64_t sql_int(sqlite3 *h, const char *sql, const char *text)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
		if (text)
			sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
	} else {
		fprintf(stderr, "alloc_torture: %s: %s\n", sql, sqlite3_errmsg(h));
	}
	sqlite3_finalize(st);
	return v;
}

/* 1 when the statement's one row is the text "ok" (PRAGMA integrity_check). */
static int sql_ok(sqlite3 *h, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int ok = sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK &&
		 sqlite3_step(st) == SQLITE_ROW &&
		 strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0 &&
		 sqlite3_step(st) == SQLITE_DONE;
	sqlite3_finalize(st);
	return ok;
}

/* Every (site, seq, hash) of schema's change_log, one line each (free()). */
static char *sql_chain(sqlite3 *h, const char *schema)
{
	char sql[160];
	sqlite3_stmt *st = NULL;
	struct buf b;
	buf_init(&b, SIZE_MAX);
	snprintf(sql, sizeof sql,
		 "SELECT site || ' ' || seq || ' ' || hex(hash) FROM %s.change_log ORDER BY site, seq",
		 schema);
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
		goto out;
	while (sqlite3_step(st) == SQLITE_ROW)
		if (buf_addf(&b, "%s\n", (const char *)sqlite3_column_text(st, 0)))
			break;
out:
	sqlite3_finalize(st);
	if (buf_add(&b, "", 0)) {
		buf_free(&b);
		return NULL;
	}
	return b.data ? buf_detach(&b, NULL) : strdup("");
}

static int verify_file(const char *path, const char *what, char *msg, size_t n)
{
	struct db *db = NULL;
	json_t *rep = NULL;
	int err = db_open(path, 0, &db, NULL);
	if (!err)
		err = verify_run(db, &rep);
	if (err) {
		char *text = rep ? json_dumps(rep, JSON_COMPACT) : NULL;
		snprintf(msg, n, "verify %s: %s %.300s", what, error_name(err), text ? text : "");
		free(text);
	}
	json_decref(rep);
	db_close(db);
	return err;
}

/* ---- one run ------------------------------------------------------------ */

/* What a clean run ends with, and what the base starts with. */
struct facts {
	char site[CHANGE_SITE_MAX + 1];
	char town_task[LEDGER_ID_SIZE];
	int64_t own, held0, acked0, cursor0, cursor_ref;
	char *ref_town, *ref_village;
};

/* One cycle as `tally sync` runs it, with both databases opened and
 * closed inside. Returns the first error. */
static int cycle(struct syncer_report *rep)
{
	struct db *vdb = NULL;
	struct syncer *sy = NULL;
	struct syncer_options o;
	memset(&o, 0, sizeof o);
	memset(rep, 0, sizeof *rep);
	int err = syncsrv_open(town, NULL, &g_srv, NULL);
	if (!err)
		err = db_open(village, 0, &vdb, NULL);
	if (!err)
		err = syncer_new(vdb, &o, &sy);
	if (!err)
		err = syncer_cycle(sy, 0, rep);
	syncer_free(sy);
	db_close(vdb);
	syncsrv_close(g_srv);
	g_srv = NULL;
	return err;
}

struct stats {
	unsigned long runs, reached, surfaced, absorbed, bad;
	unsigned long by_code[TLY_E__COUNT];
};

/* Runs with allocation `at` failing (0: none). Returns 0 when every
 * property held, and fills *cycle_err with the cycle's result. */
static int run_one(struct facts *f, unsigned long at, int *cycle_err, char *why, size_t nwhy)
{
	struct syncer_report rep;
	sqlite3 *h = NULL;
	char msg[512] = "";
	int bad = 0;

	why[0] = '\0';
	if (copy_db(base_town, town) || copy_db(base_village, village)) {
		snprintf(why, nwhy, "cannot copy the base databases");
		return -1;
	}
	calls = 0;
	fail_at = at;
	n_push = 0;
	memset(by_count, 0, sizeof by_count);
	live_forget();
	armed = 1;
	int err = cycle(&rep);
	armed = 0;
	*cycle_err = err;
	int reached = at && at <= calls;
	int fds = fd_count();
	failed_size = reached ? failed_size : 0;

	/* Every broken property, "; "-separated, as far as why holds. */
#define BAD(...)                                                                     \
	do {                                                                         \
		size_t used_ = strlen(why);                                          \
		if (used_ && used_ + 2 < nwhy)                                       \
			used_ += (size_t)snprintf(why + used_, nwhy - used_, "; ");  \
		if (used_ < nwhy)                                                    \
			snprintf(why + used_, nwhy - used_, __VA_ARGS__);            \
		bad = 1;                                                             \
	} while (0)

	/* OpenSSL keeps the last errors (with strdup'd file and function
	 * names) until cleared; nothing in Tally clears them, and the queue
	 * is bounded, so they are not a leak. */
	ERR_clear_error();
	size_t ossl_kept = 0;
	for (size_t i = 0; i < tab_cap; i++) {
		/* What OpenSSL still holds is its own (a digest fetched again
		 * after a failed fetch is cached anew); LeakSanitizer, which
		 * sees what is still reachable, judges those at exit. */
		if (tab[i].p && tab[i].by == BY_OPENSSL) {
			ossl_kept++;
			live_del(tab[i].p);
			i--; /* the backward shift may have moved another entry here */
		}
	}
	if (verbose && ossl_kept)
		printf("     allocation %lu: %zu block(s) kept by OpenSSL\n", at, ossl_kept);
	if (tab_used) {
		char list[160] = "";
		size_t bytes = 0, shown = 0, len = 0;
		for (size_t i = 0; i < tab_cap; i++) {
			if (!tab[i].p)
				continue;
			bytes += tab[i].n;
			if (shown++ < 4 && len < sizeof list)
				len += (size_t)snprintf(list + len, sizeof list - len, " #%lu:%zuB",
							tab[i].idx, tab[i].n);
		}
		BAD("leak: %zu block(s), %zu bytes still held, made by allocation(s)%s "
		    "(--only %lu --trace N shows where)",
		    tab_used, bytes, list, at);
		live_forget();
	}
	if (fds != fds_base)
		BAD("%d file descriptor(s) open after the cycle, %d before", fds, fds_base);
	if (err && !reached)
		BAD("cycle failed (%s) with no failure injected", error_name(err));

	h = sql_open();
	if (!h) {
		BAD("databases unreadable");
		goto out;
	}
	/* No partial acknowledgement. */
	int64_t acked = sql_int(h, "SELECT acked_seq FROM main.sync_state", NULL);
	int64_t cursor = sql_int(h, "SELECT pull_cursor FROM main.sync_state", NULL);
	int64_t lost = sql_int(h,
			       "SELECT count(*) FROM main.change_log c WHERE c.site = ?1 AND "
			       "c.seq <= (SELECT acked_seq FROM main.sync_state) AND NOT EXISTS "
			       "(SELECT 1 FROM t.change_log w WHERE w.site = c.site AND "
			       "w.seq = c.seq AND w.hash = c.hash)",
			       f->site);
	int64_t held = sql_int(h, "SELECT count(*) FROM t.change_log WHERE site = ?1", f->site);
	int64_t top = sql_int(h, "SELECT coalesce(max(seq), 0) FROM t.change_log WHERE site = ?1",
			      f->site);
	int whole = held == f->held0;
	for (size_t i = 0; i < n_push && !whole; i++)
		whole = held == top && (int64_t)push_last[i] == top;
	if (lost != 0)
		BAD("%lld change(s) acknowledged (acked_seq %lld) but not held by the township",
		    (long long)lost, (long long)acked);
	if (!whole)
		BAD("the township holds %lld of the batch's %lld changes, up to seq %lld: not the "
		    "end of a push message",
		    (long long)(held - f->held0), (long long)(f->own - f->held0), (long long)top);
	if (cursor != f->cursor0 && cursor != f->cursor_ref)
		BAD("pull cursor %lld: neither before (%lld) nor after the page (%lld)",
		    (long long)cursor, (long long)f->cursor0, (long long)f->cursor_ref);
	if (cursor == f->cursor_ref &&
	    sql_int(h, "SELECT count(*) FROM main.task WHERE id = ?1", f->town_task) != 1)
		BAD("the pull cursor moved but the page is not applied");
	/* The full verify_run comes after the clean cycle; here SQLite's own
	 * check of both files, which is what a failed cycle could break. */
	if (!sql_ok(h, "PRAGMA main.integrity_check") || !sql_ok(h, "PRAGMA t.integrity_check"))
		BAD("integrity_check fails after the failed cycle");
	sqlite3_close(h);
	h = NULL;

	/* A clean cycle converges. */
	err = cycle(&rep);
	if (err) {
		BAD("the next clean cycle failed: %s %s", error_name(err), rep.detail);
		goto out;
	}
	h = sql_open();
	if (!h) {
		BAD("databases unreadable");
		goto out;
	}
	char *ct = sql_chain(h, "t"), *cv = sql_chain(h, "main");
	if (!ct || !cv || strcmp(ct, f->ref_town) != 0)
		BAD("township change_log differs from a clean run's (missing, twice or other bytes)");
	else if (strcmp(cv, f->ref_village) != 0)
		BAD("village change_log differs from a clean run's");
	free(ct);
	free(cv);
	if (sql_int(h,
		    "SELECT count(*) FROM main.field_state v WHERE NOT EXISTS (SELECT 1 FROM "
		    "t.field_state w WHERE w.kind = v.kind AND w.record_id = v.record_id AND "
		    "w.field = v.field AND w.value IS v.value AND w.stamp = v.stamp AND "
		    "w.site = v.site AND w.seq = v.seq)",
		    NULL) != 0)
		BAD("the village's merge state differs from the township's");
	if (sql_int(h, "SELECT acked_seq FROM main.sync_state", NULL) != f->own)
		BAD("not everything acknowledged after the clean cycle");
	sqlite3_close(h);
	h = NULL;
	if (verify_file(town, "township", msg, sizeof msg) ||
	    verify_file(village, "village", msg, sizeof msg))
		BAD("after the clean cycle: %s", msg);
out:
#undef BAD
	sqlite3_close(h);
	return bad ? -1 : 0;
}

/* ---- the base world -------------------------------------------------------- */

static int make_base(struct facts *f)
{
	static const char pin[] = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
	const char *urls[] = {"https://127.0.0.1:1"};
	struct db *t = NULL, *v = NULL;
	struct buf code, why;
	struct syncer_report rep;
	char vid[LEDGER_ID_SIZE], prob[LEDGER_ID_SIZE], id[LEDGER_ID_SIZE];
	char tasks[3][LEDGER_ID_SIZE];
	int err;

	buf_init(&code, 8192);
	buf_init(&why, 8192);
	/* The township, its village, a join code, and the village joined
	 * through the real `tally join` path (its request routed as above). */
	err = ledger_init(base_town, "township", "某某镇", NULL, &t, &why);
	if (!err)
		err = ledger_village_add(t, "王家村", vid, &why);
	db_close(t);
	t = NULL;
	if (!err)
		err = syncsrv_open(base_town, NULL, &g_srv, &why);
	if (!err)
		err = enrol_code_create(syncsrv_db(g_srv), vid, urls, 1, pin, ENROL_DEFAULT_TTL_MS,
					&code);
	if (!err)
		err = enrol_join(base_village, code.data, "torture", &why, NULL);
	syncsrv_close(g_srv);
	g_srv = NULL;
	if (err)
		goto out;
	/* The first cycle brings the village record, as after `tally join`. */
	snprintf(town, sizeof town, "%s", base_town);
	snprintf(village, sizeof village, "%s", base_village);
	err = cycle(&rep);
	if (err)
		goto out;

	/* The village's batch: a problem, tasks, progress, an edit. */
	err = db_open(base_village, 0, &v, &why);
	struct ledger_problem p = {.source = "self_check", .text = "自查：村务公开不及时𠀀"};
	if (!err)
		err = ledger_problem_add(v, &p, prob, &why);
	for (int i = 0; i < 3 && !err; i++) {
		char m[64];
		snprintf(m, sizeof m, "整改措施第%d条", i + 1);
		struct ledger_task tk = {.problem = prob, .measures = m, .owner = "李明",
					 .leader = "王书记", .deadline = "2030-06-30"};
		err = ledger_task_add(v, &tk, tasks[i], &why);
	}
	for (int i = 0; i < 2 && !err; i++)
		err = ledger_progress_add(v, tasks[i], 30 + 20 * i, "已完成入户核实", NULL, NULL, 0, id,
					  &why);
	struct ledger_task up = {.measures = "调整后的措施：逐户核实"};
	if (!err)
		err = ledger_task_update(v, tasks[2], &up, &why);
	db_close(v);
	v = NULL;
	if (err)
		goto out;

	/* The township's decisions for the village, pulled by the cycle. */
	err = db_open(base_town, 0, &t, &why);
	struct ledger_problem tp = {.source = "patrol", .text = "巡察发现：账目公开不及时"};
	if (!err)
		err = ledger_problem_add(t, &tp, prob, &why);
	struct ledger_task tt = {.problem = prob, .village = vid, .measures = "按月公开村务账目",
				 .owner = "张三", .leader = "李四", .deadline = "2030-06-30"};
	if (!err)
		err = ledger_task_add(t, &tt, f->town_task, &why);
	const char *about[] = {f->town_task};
	if (!err)
		err = ledger_notice_send(t, "reminder", vid, "请按期整改", "请于月底前报送整改进展",
					 about, 1, id, &why);
	db_close(t);
	t = NULL;
	if (err)
		goto out;

	snprintf(town, sizeof town, "%s", base_town);
	snprintf(village, sizeof village, "%s", base_village);
	sqlite3 *h = sql_open();
	if (!h) {
		err = TLY_E_DB;
		goto out;
	}
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(h, "SELECT site_id FROM main.site", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		snprintf(f->site, sizeof f->site, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	f->own = sql_int(h, "SELECT count(*) FROM main.change_log WHERE site = ?1", f->site);
	f->held0 = sql_int(h, "SELECT count(*) FROM t.change_log WHERE site = ?1", f->site);
	f->acked0 = sql_int(h, "SELECT acked_seq FROM main.sync_state", NULL);
	f->cursor0 = sql_int(h, "SELECT pull_cursor FROM main.sync_state", NULL);
	sqlite3_close(h);
	if (f->own <= f->held0 || f->acked0 != f->held0)
		err = TLY_E_INTERNAL;
out:
	if (err)
		fprintf(stderr, "alloc_torture: setup failed: %s %s\n", error_name(err),
			why.data ? why.data : "");
	db_close(t);
	db_close(v);
	buf_free(&code);
	buf_free(&why);
	return err;
}

/* The reference: a clean run's end state. */
static int make_reference(struct facts *f)
{
	struct syncer_report rep;
	int err = cycle(&rep);
	if (err) {
		fprintf(stderr, "alloc_torture: clean cycle failed: %s %s\n", error_name(err),
			rep.detail);
		return err;
	}
	sqlite3 *h = sql_open();
	if (!h)
		return TLY_E_DB;
	f->cursor_ref = sql_int(h, "SELECT pull_cursor FROM main.sync_state", NULL);
	f->ref_town = sql_chain(h, "t");
	f->ref_village = sql_chain(h, "main");
	sqlite3_close(h);
	return f->ref_town && f->ref_village && f->cursor_ref != f->cursor0 ? TLY_OK
									       : TLY_E_INTERNAL;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct facts f;
	struct stats tl;
	unsigned long stride = 0, offset = 0, only = 0, from = 1, to = ULONG_MAX, count;
	unsigned long points = DEFAULT_POINTS, *pick = NULL;
	size_t npick = 0;
	int all = 0, cycle_err, rc = 1;
	char why[1500];

	if (hooks_install())
		return 1;
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : "0";
		if (strcmp(argv[i], "--all") == 0)
			all = 1;
		else if (strcmp(argv[i], "--verbose") == 0)
			verbose = 1;
		else if (strcmp(argv[i], "--stride") == 0 && ++i)
			stride = strtoul(v, NULL, 10);
		else if (strcmp(argv[i], "--offset") == 0 && ++i)
			offset = strtoul(v, NULL, 10);
		else if (strcmp(argv[i], "--points") == 0 && ++i)
			points = strtoul(v, NULL, 10);
		else if (strcmp(argv[i], "--from") == 0 && ++i)
			from = strtoul(v, NULL, 10);
		else if (strcmp(argv[i], "--to") == 0 && ++i)
			to = strtoul(v, NULL, 10);
		else if (strcmp(argv[i], "--only") == 0 && ++i)
			only = strtoul(v, NULL, 10);
		else if (strcmp(argv[i], "--trace") == 0 && ++i)
			trace_at = strtoul(v, NULL, 10);
		else {
			fprintf(stderr, "usage: %s [--all | --stride N | --points N] [--offset K] "
					"[--from I] [--to I] [--only I] [--trace I] [--verbose]\n",
				argv[0]);
			return 2;
		}
	}
	if (!verbose) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			log_set_fd(null);
	}
	/* Lazy one-time state made now, outside any counted cycle. */
	void *frames[4];
	(void)backtrace(frames, 4);
	ERR_raise(ERR_LIB_USER, 1);
	ERR_clear_error();

	memset(&f, 0, sizeof f);
	memset(&tl, 0, sizeof tl);
	snprintf(dir, sizeof dir, "/tmp/tally-torture-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(base_town, sizeof base_town, "%s/base-town.db", dir);
	snprintf(base_village, sizeof base_village, "%s/base-village.db", dir);
	if (make_base(&f))
		goto out;
	snprintf(town, sizeof town, "%s/town.db", dir);
	snprintf(village, sizeof village, "%s/village.db", dir);

	/* Warm-up (libraries' one-time caches), then the counting run, which
	 * must hold every property itself. */
	if (copy_db(base_town, town) || copy_db(base_village, village))
		goto out;
	armed = 1;
	calls = 0;
	fail_at = 0;
	int werr = cycle(&(struct syncer_report){0});
	armed = 0;
	live_forget();
	fds_base = fd_count();
	if (werr) {
		fprintf(stderr, "alloc_torture: warm-up cycle failed: %s\n", error_name(werr));
		goto out;
	}
	if (copy_db(base_town, town) || copy_db(base_village, village) || make_reference(&f))
		goto out;
	record_kinds = 1;
	int clean = run_one(&f, 0, &cycle_err, why, sizeof why);
	record_kinds = 0;
	if (clean) {
		fprintf(stderr, "FAIL clean run: %s\n", why);
		goto out;
	}
	count = calls;
	printf("allocation points in one push-and-pull (opening and closing both databases "
	       "included): %lu:",
	       count);
	for (int i = 0; i < BY__N; i++)
		printf("%s %s %lu", i ? "," : "", by_name[i], by_count[i]);
	printf("\n");
	fflush(stdout);
	/* The points to try, in order. */
	pick = malloc((count + 1) * sizeof *pick);
	if (!pick)
		goto out;
	if (only) {
		pick[npick++] = only;
	} else if (all || stride) {
		stride = all || !stride ? 1 : stride;
		for (unsigned long at = from + offset % stride; at <= count && at <= to; at += stride)
			pick[npick++] = at;
	} else {
		unsigned long n_sql = by_count[BY_SQLITE], n_other = count - n_sql;
		unsigned long half = points / 2 ? points / 2 : 1;
		unsigned long s_sql = n_sql / half ? n_sql / half : 1;
		unsigned long s_other = n_other / half ? n_other / half : 1;
		unsigned long seen_sql = 0, seen_other = 0;
		for (unsigned long at = 1; at <= count; at++) {
			int sql = kind_of[at - 1] == BY_SQLITE;
			unsigned long k = sql ? seen_sql++ : seen_other++;
			if (at >= from && at <= to && (k + offset) % (sql ? s_sql : s_other) == 0)
				pick[npick++] = at;
		}
		printf("trying every %lu-th of SQLite's and every %lu-th of the other allocations\n",
		       s_sql, s_other);
	}

	for (size_t pi = 0; pi < npick; pi++) {
		unsigned long at = pick[pi];
		int r = run_one(&f, at, &cycle_err, why, sizeof why);
		tl.runs++;
		if (at <= calls)
			tl.reached++;
		if (cycle_err) {
			tl.surfaced++;
			tl.by_code[cycle_err > 0 && cycle_err < TLY_E__COUNT ? cycle_err : 0]++;
		} else {
			tl.absorbed++;
		}
		if (r) {
			tl.bad++;
			printf("FAIL allocation %lu (%lu bytes; cycle: %s): %s\n", at, failed_size,
			       cycle_err ? error_name(cycle_err) : "ok", why);
			fflush(stdout);
		} else if (verbose) {
			printf("ok   allocation %lu (%lu bytes; cycle: %s)\n", at, failed_size,
			       cycle_err ? error_name(cycle_err) : "ok");
		}
		if ((all || stride == 1) && at % 1000 == 0) {
			printf("... %lu of %lu, %lu failed a check so far\n", at, count, tl.bad);
			fflush(stdout);
		}
	}
	printf("tried %lu of %lu allocation points%s: %lu reported an error, %lu absorbed "
	       "(cycle ok), %lu failed a check\n",
	       tl.runs, count, all ? " (--all)" : "", tl.surfaced, tl.absorbed, tl.bad);
	printf("errors reported:");
	for (int i = 0; i < TLY_E__COUNT; i++)
		if (tl.by_code[i])
			printf(" %s=%lu", error_name(i), tl.by_code[i]);
	printf("\n");
	rc = tl.bad ? 1 : 0;
out:
	free(pick);
	free(kind_of);
	free(f.ref_town);
	free(f.ref_village);
	{
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "alloc_torture: could not remove %s\n", dir);
	}
	return rc;
}
