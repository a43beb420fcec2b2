/*
 * test_syncsrv — the township server's sync logic on real database files,
 * without HTTP: enrolment, authentication, push (applied, duplicate,
 * replay, seq gap, chain breaks, site mismatch, cross-village writes,
 * clock far ahead), pull tenancy, township users, revocation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client/clock.h"
#include "client/ledger.h"
#include "client/srvstore.h"
#include "client/store.h"
#include "daemon/enrol.h"
#include "daemon/syncsrv.h"
#include "protocol/chain.h"
#include "protocol/error.h"
#include "protocol/message.h"

static const char fake_pin[] = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

struct village {
	struct db *db;
	struct syncsrv_principal p;
	char token[ENROL_TOKEN_SIZE];
};

struct fx {
	char dir[64];
	char town_path[128];
	struct syncsrv *s;
	char va[LEDGER_ID_SIZE], vb[LEDGER_ID_SIZE], prob[LEDGER_ID_SIZE];
	char ta[LEDGER_ID_SIZE], tb[LEDGER_ID_SIZE];
	struct village a, b;
};

static int64_t count(struct db *db, const char *sql)
{
	sqlite3_stmt *st;
	assert_int_equal(db_stmt(db, sql, &st), TLY_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t n = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return n;
}

/* A join code made at the township and exchanged by a new village db. */
static void enrol(struct fx *f, const char *village_id, const char *name, struct village *v)
{
	char path[160];
	struct buf code, body;
	struct enrol_code c;
	const char *urls[] = {"https://127.0.0.1:1"};
	char secret[DB_ID_LEN + 2 + 2 * ENROL_SECRET_LEN];
	struct syncsrv_reply r;

	buf_init(&code, 8192);
	buf_init(&body, 8192);
	assert_int_equal(enrol_code_create(syncsrv_db(f->s), village_id, urls, 1, fake_pin,
					   ENROL_DEFAULT_TTL_MS, &code),
			 TLY_OK);
	assert_int_equal(enrol_code_decode(code.data, &c), TLY_OK);
	assert_string_equal(c.urls[0], urls[0]);
	assert_string_equal(c.pin, fake_pin);

	snprintf(path, sizeof path, "%s/%s.db", f->dir, name);
	assert_int_equal(ledger_init(path, "village", name, village_id, &v->db, NULL), TLY_OK);
	memcpy(secret, c.id, DB_ID_LEN);
	secret[DB_ID_LEN] = '.';
	for (int i = 0; i < ENROL_SECRET_LEN; i++)
		snprintf(secret + DB_ID_LEN + 1 + 2 * i, 3, "%02x", c.secret[i]);
	assert_int_equal(buf_addf(&body, "{\"v\":1,\"code\":\"%s\",\"site\":\"%s\",\"name\":\"%s\"}",
				  secret, db_site(v->db)->site_id, name),
			 TLY_OK);
	syncsrv_reply_init(&r);
	assert_int_equal(syncsrv_join(f->s, body.data, body.len, "test", &r), TLY_OK);
	assert_int_equal(r.status, 200);
	json_t *j = json_loads(r.body.data, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "village_id")), village_id);
	snprintf(v->token, sizeof v->token, "%s", json_string_value(json_object_get(j, "token")));
	json_decref(j);
	assert_int_equal(syncsrv_authenticate(f->s, v->token, &v->p), TLY_OK);
	assert_string_equal(v->p.village, village_id);
	assert_string_equal(v->p.site, db_site(v->db)->site_id);

	/* the same code again: used */
	syncsrv_reply_free(&r);
	syncsrv_reply_init(&r);
	assert_int_equal(syncsrv_join(f->s, body.data, body.len, "test", &r), TLY_OK);
	assert_int_equal(r.status, 409);
	assert_non_null(strstr(r.body.data, "\"join_code_used\""));
	syncsrv_reply_free(&r);
	buf_free(&code);
	buf_free(&body);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	struct db *t;
	strcpy(f->dir, "/tmp/tally-syncsrv-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->town_path, sizeof f->town_path, "%s/town.db", f->dir);
	assert_int_equal(ledger_init(f->town_path, "township", "某某镇", NULL, &t, NULL), TLY_OK);
	assert_int_equal(ledger_village_add(t, "王家村", f->va, NULL), TLY_OK);
	assert_int_equal(ledger_village_add(t, "李家村", f->vb, NULL), TLY_OK);
	struct ledger_problem p = {.source = "inspection", .text = "道路硬化不到位"};
	assert_int_equal(ledger_problem_add(t, &p, f->prob, NULL), TLY_OK);
	struct ledger_task ta = {.problem = f->prob, .village = f->va, .measures = "硬化主干道",
				 .owner = "李明", .leader = "王建国", .deadline = "2030-06-30"};
	assert_int_equal(ledger_task_add(t, &ta, f->ta, NULL), TLY_OK);
	struct ledger_task tb = ta;
	tb.village = f->vb;
	assert_int_equal(ledger_task_add(t, &tb, f->tb, NULL), TLY_OK);
	db_close(t);
	assert_int_equal(syncsrv_open(f->town_path, NULL, &f->s, NULL), TLY_OK);
	enrol(f, f->va, "wang", &f->a);
	enrol(f, f->vb, "li", &f->b);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];
	syncsrv_close(f->s);
	db_close(f->a.db);
	db_close(f->b.db);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* The push body of a village's own changes seq from..from+n-1. */
static void push_body(struct db *db, uint64_t from, size_t n, uint64_t device_ms, struct buf *out)
{
	struct change **cs;
	size_t got;
	struct msg_push m;
	memset(&m, 0, sizeof m);
	assert_int_equal(store_outbox_read(db, from - 1, n, SIZE_MAX, &cs, &got), TLY_OK);
	assert_int_equal(got, n);
	snprintf(m.site, sizeof m.site, "%s", db_site(db)->site_id);
	memcpy(m.prev, change_prev(cs[0]), CHANGE_HASH_LEN);
	memcpy(m.head, change_hash(cs[n - 1]), CHANGE_HASH_LEN);
	m.changes = cs;
	m.n = n;
	m.device_ms = device_ms ? device_ms : (uint64_t)clock_device_ms();
	m.queue = 0;
	buf_reset(out);
	assert_int_equal(msg_encode_push(&m, out), TLY_OK);
	store_changes_free(cs, got);
}

static void do_push(struct fx *f, struct village *v, const struct buf *body,
		    struct syncsrv_reply *r)
{
	syncsrv_reply_init(r);
	assert_int_equal(syncsrv_push(f->s, &v->p, body->data, body->len, r), TLY_OK);
}

static void decode_answer(struct syncsrv_reply *r, struct msg_push_answer *a)
{
	assert_int_equal(r->status, 200);
	assert_int_equal(msg_decode_push_answer(r->body.data, r->body.len, NULL, a), TLY_OK);
}

/* Pulls every page for v and applies it to v's database; returns the
 * decoded changes' kinds/ids joined in a string for membership checks. */
static void pull_all(struct fx *f, const struct syncsrv_principal *p, struct db *apply_to,
		     struct buf *seen)
{
	uint64_t cursor = 0;
	int more = 1;
	buf_reset(seen);
	while (more) {
		struct syncsrv_reply r;
		struct msg_pull_answer a;
		char body[128];
		snprintf(body, sizeof body,
			 "{\"v\":1,\"type\":\"pull\",\"epoch\":\"%s\",\"cursor\":%llu,\"limit\":2}",
			 syncsrv_epoch(f->s), (unsigned long long)cursor);
		syncsrv_reply_init(&r);
		assert_int_equal(syncsrv_pull(f->s, p, body, strlen(body), &r), TLY_OK);
		assert_int_equal(r.status, 200);
		assert_int_equal(msg_decode_pull_answer(r.body.data, r.body.len, NULL, &a), TLY_OK);
		assert_true(a.n <= 2);
		if (apply_to)
			assert_int_equal(db_begin(apply_to), TLY_OK);
		for (size_t i = 0; i < a.n; i++) {
			assert_int_equal(buf_addf(seen, "[%s:%s:%s]", change_site(a.changes[i]),
						  change_kind(a.changes[i]), change_id(a.changes[i])),
					 TLY_OK);
			if (apply_to) {
				enum store_outcome oc;
				assert_int_equal(store_apply_remote(apply_to, a.changes[i], NULL, 1,
								    &oc, NULL, NULL),
						 TLY_OK);
			}
		}
		if (apply_to)
			assert_int_equal(db_commit(apply_to), TLY_OK);
		assert_true(a.next >= cursor);
		cursor = a.next;
		more = a.more;
		msg_pull_answer_clear(&a);
		syncsrv_reply_free(&r);
	}
	if (!seen->data)
		assert_int_equal(buf_add_str(seen, "-"), TLY_OK);
}

static void test_push_pull_tenancy(void **state)
{
	struct fx *f = *state;
	struct buf seen, body;
	struct syncsrv_reply r;
	struct msg_push_answer a;
	struct db *t = syncsrv_db(f->s);
	char id[LEDGER_ID_SIZE], pat[160];

	buf_init(&seen, 1 << 20);
	buf_init(&body, 8 << 20);
	/* village A sees its village, the problem and its task; not B's */
	pull_all(f, &f->a.p, f->a.db, &seen);
	snprintf(pat, sizeof pat, ":village:%s]", f->va);
	assert_non_null(strstr(seen.data, pat));
	snprintf(pat, sizeof pat, ":problem:%s]", f->prob);
	assert_non_null(strstr(seen.data, pat));
	snprintf(pat, sizeof pat, ":task:%s]", f->ta);
	assert_non_null(strstr(seen.data, pat));
	snprintf(pat, sizeof pat, ":task:%s]", f->tb);
	assert_null(strstr(seen.data, pat));
	snprintf(pat, sizeof pat, ":village:%s]", f->vb);
	assert_null(strstr(seen.data, pat));
	/* the problem arrives before the task that needs it */
	snprintf(pat, sizeof pat, ":problem:%s]", f->prob);
	char *pp = strstr(seen.data, pat);
	snprintf(pat, sizeof pat, ":task:%s]", f->ta);
	assert_true(pp < strstr(seen.data, pat));

	/* A reports progress (progress entry + todo->doing: seqs 1, 2) */
	assert_int_equal(ledger_progress_add(f->a.db, f->ta, 30, "完成第一段", NULL, NULL, 0, id,
					     NULL),
			 TLY_OK);
	push_body(f->a.db, 1, 2, 0, &body);
	do_push(f, &f->a, &body, &r);
	decode_answer(&r, &a);
	assert_int_equal(a.acked, 2);
	assert_int_equal(a.n, 2);
	assert_int_equal(a.results[0].status, PUSH_APPLIED);
	assert_int_equal(a.results[1].status, PUSH_APPLIED);
	assert_string_equal(a.epoch, syncsrv_epoch(f->s));
	msg_push_answer_clear(&a);
	syncsrv_reply_free(&r);
	snprintf(pat, sizeof pat, "SELECT count(*) FROM progress WHERE id = '%s'", id);
	assert_int_equal(count(t, pat), 1);
	snprintf(pat, sizeof pat, "SELECT count(*) FROM task WHERE id = '%s' AND status = 'doing'",
		 f->ta);
	assert_int_equal(count(t, pat), 1);
	int64_t logged = count(t, "SELECT count(*) FROM change_log");

	/* the captured request sent again: duplicate, no second effect */
	do_push(f, &f->a, &body, &r);
	decode_answer(&r, &a);
	assert_int_equal(a.results[0].status, PUSH_DUPLICATE);
	assert_int_equal(a.results[1].status, PUSH_DUPLICATE);
	assert_int_equal(a.acked, 2);
	msg_push_answer_clear(&a);
	syncsrv_reply_free(&r);
	assert_int_equal(count(t, "SELECT count(*) FROM change_log"), logged);

	/* B's device sees none of A's progress; a township user sees it */
	pull_all(f, &f->b.p, NULL, &seen);
	snprintf(pat, sizeof pat, ":progress:%s]", id);
	assert_null(strstr(seen.data, pat));
	snprintf(pat, sizeof pat, ":task:%s]", f->ta);
	assert_null(strstr(seen.data, pat));
	/* and A does not get its own changes back */
	pull_all(f, &f->a.p, NULL, &seen);
	snprintf(pat, sizeof pat, ":progress:%s]", id);
	assert_null(strstr(seen.data, pat));

	uint8_t secret[ENROL_SECRET_LEN], hash[ENROL_HASH_LEN];
	struct enrol_token ut = {.kind = 'u'};
	char utok[ENROL_TOKEN_SIZE];
	struct syncsrv_principal up;
	assert_int_equal(db_random_id(ut.id), TLY_OK);
	assert_int_equal(enrol_secret_new(secret), TLY_OK);
	memcpy(ut.secret, secret, sizeof secret);
	enrol_secret_hash(secret, hash);
	assert_int_equal(srvstore_user_add(t, ut.id, "督查组", hash, 1), TLY_OK);
	enrol_token_format(&ut, utok);
	assert_int_equal(syncsrv_authenticate(f->s, utok, &up), TLY_OK);
	pull_all(f, &up, NULL, &seen);
	snprintf(pat, sizeof pat, ":progress:%s]", id);
	assert_non_null(strstr(seen.data, pat));
	snprintf(pat, sizeof pat, ":task:%s]", f->tb);
	assert_non_null(strstr(seen.data, pat));
	/* a user cannot push; a device cannot list devices */
	do_push(f, (struct village *)&(struct village){.p = up}, &body, &r);
	assert_int_equal(r.status, 403);
	syncsrv_reply_free(&r);
	syncsrv_reply_init(&r);
	assert_int_equal(syncsrv_devices(f->s, &f->a.p, &r), TLY_OK);
	assert_int_equal(r.status, 403);
	syncsrv_reply_free(&r);
	syncsrv_reply_init(&r);
	assert_int_equal(syncsrv_devices(f->s, &up, &r), TLY_OK);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body.data, "\"acked_seq\":2"));
	syncsrv_reply_free(&r);

	/* a wrong secret for a known user is unauthorized */
	utok[ENROL_TOKEN_SIZE - 2] = utok[ENROL_TOKEN_SIZE - 2] == '0' ? '1' : '0';
	assert_int_equal(syncsrv_authenticate(f->s, utok, &up), TLY_E_UNAUTHORIZED);
	buf_free(&seen);
	buf_free(&body);
}

static void test_gap_chain_site(void **state)
{
	struct fx *f = *state;
	struct buf body;
	struct syncsrv_reply r;
	struct msg_push_answer a;
	struct db *t = syncsrv_db(f->s);
	struct buf seen;
	char id[LEDGER_ID_SIZE];

	buf_init(&body, 8 << 20);
	buf_init(&seen, 1 << 20);
	pull_all(f, &f->a.p, f->a.db, &seen);
	for (int pct = 10; pct <= 40; pct += 10)
		assert_int_equal(ledger_progress_add(f->a.db, f->ta, pct, "进展", NULL, NULL, 0, id,
						     NULL),
				 TLY_OK);
	/* seqs 1..5 exist (first entry moved the task too); push 3..5 first: gap */
	int64_t logged = count(t, "SELECT count(*) FROM change_log");
	push_body(f->a.db, 3, 3, 0, &body);
	do_push(f, &f->a, &body, &r);
	assert_int_equal(r.status, 409);
	struct msg_error e;
	assert_int_equal(msg_decode_error(r.body.data, r.body.len, NULL, &e), TLY_OK);
	assert_int_equal(e.code, TLY_E_SEQ_GAP);
	assert_int_equal(e.expected, 1);
	msg_error_clear(&e);
	syncsrv_reply_free(&r);
	assert_int_equal(count(t, "SELECT count(*) FROM change_log"), logged);

	/* one byte changed in transit: the chain does not reach head */
	push_body(f->a.db, 1, 5, 0, &body);
	char *p = strstr(body.data, "进展");
	assert_non_null(p);
	p[2] ^= 1; /* another CJK character: valid UTF-8, other bytes */
	do_push(f, &f->a, &body, &r);
	assert_true(r.status == 400);
	assert_int_equal(count(t, "SELECT count(*) FROM change_log"), logged);
	syncsrv_reply_free(&r);
	p[2] ^= 1;

	/* pushed by B's credential: site mismatch, audited, nothing stored */
	do_push(f, &f->b, &body, &r);
	assert_int_equal(r.status, 403);
	assert_non_null(strstr(r.body.data, "\"site_mismatch\""));
	syncsrv_reply_free(&r);
	assert_int_equal(count(t, "SELECT count(*) FROM change_log"), logged);
	assert_int_equal(count(t, "SELECT count(*) FROM srv_audit WHERE event = 'site_mismatch'"), 1);

	/* the real push */
	do_push(f, &f->a, &body, &r);
	decode_answer(&r, &a);
	assert_int_equal(a.acked, 5);
	msg_push_answer_clear(&a);
	syncsrv_reply_free(&r);

	/* a held seq with other bytes (a second history from genesis) */
	struct change *c;
	assert_int_equal(change_new(&c, 1, db_site(f->a.db)->site_id, 1, hlc_make(1700000000000, 0),
				    "village", f->va),
			 TLY_OK);
	assert_int_equal(change_set_text(c, "name", "假村", 6, NULL), TLY_OK);
	assert_int_equal(chain_link(c, chain_genesis), TLY_OK);
	struct msg_push m = {.changes = &c, .n = 1, .device_ms = 1, .queue = -1};
	snprintf(m.site, sizeof m.site, "%s", db_site(f->a.db)->site_id);
	memcpy(m.prev, chain_genesis, CHANGE_HASH_LEN);
	memcpy(m.head, change_hash(c), CHANGE_HASH_LEN);
	buf_reset(&body);
	assert_int_equal(msg_encode_push(&m, &body), TLY_OK);
	change_free(c);
	logged = count(t, "SELECT count(*) FROM change_log");
	do_push(f, &f->a, &body, &r);
	assert_int_equal(r.status, 409);
	assert_non_null(strstr(r.body.data, "\"chain_broken\""));
	syncsrv_reply_free(&r);
	assert_int_equal(count(t, "SELECT count(*) FROM change_log"), logged);
	assert_int_equal(count(t, "SELECT count(*) FROM srv_audit WHERE event = 'chain_broken'"), 1);
	buf_free(&body);
	buf_free(&seen);
}

/* A's device writes progress on B's task (forged: A never saw it). */
static void test_cross_village_write(void **state)
{
	struct fx *f = *state;
	struct buf body;
	struct syncsrv_reply r;
	struct msg_push_answer a;
	struct db *t = syncsrv_db(f->s);
	uint64_t seq;
	uint8_t head[CHANGE_HASH_LEN];
	struct change *c;
	char sql[200];

	buf_init(&body, 1 << 20);
	assert_int_equal(store_site_head(f->a.db, db_site(f->a.db)->site_id, &seq, head), TLY_OK);
	assert_int_equal(seq, 0);
	assert_int_equal(change_new(&c, 1, db_site(f->a.db)->site_id, 1,
				    hlc_make((uint64_t)clock_device_ms(), 0), "progress", "pxforged1"),
			 TLY_OK);
	assert_int_equal(change_set_text(c, "task", f->tb, strlen(f->tb), NULL), TLY_OK);
	assert_int_equal(change_set_int(c, "percent", 100, NULL), TLY_OK);
	assert_int_equal(change_set_text(c, "note", "替李家村填报", strlen("替李家村填报"), NULL),
			 TLY_OK);
	assert_int_equal(change_set_text(c, "author", "x", 1, NULL), TLY_OK);
	assert_int_equal(change_set_text(c, "date", "2026-03-31", 10, NULL), TLY_OK);
	assert_int_equal(chain_link(c, chain_genesis), TLY_OK);
	struct msg_push m = {.changes = &c, .n = 1, .device_ms = 1, .queue = 3};
	snprintf(m.site, sizeof m.site, "%s", db_site(f->a.db)->site_id);
	memcpy(m.prev, chain_genesis, CHANGE_HASH_LEN);
	memcpy(m.head, change_hash(c), CHANGE_HASH_LEN);
	assert_int_equal(msg_encode_push(&m, &body), TLY_OK);
	change_free(c);
	do_push(f, &f->a, &body, &r);
	decode_answer(&r, &a);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.results[0].status, PUSH_REJECTED);
	assert_int_equal(a.results[0].code, TLY_E_FORBIDDEN);
	assert_non_null(a.results[0].reason);
	assert_int_equal(a.acked, 1); /* held: answered, never resent */
	msg_push_answer_clear(&a);
	syncsrv_reply_free(&r);
	assert_int_equal(count(t, "SELECT count(*) FROM progress WHERE id = 'pxforged1'"), 0);
	assert_int_equal(
		count(t, "SELECT count(*) FROM srv_audit WHERE event = 'cross_village_write'"), 1);
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM change_log WHERE record_id = 'pxforged1' AND state = "
		 "'rejected'");
	assert_int_equal(count(t, sql), 1);
	/* and a replay answers the rejection again */
	do_push(f, &f->a, &body, &r);
	decode_answer(&r, &a);
	assert_int_equal(a.results[0].status, PUSH_REJECTED);
	assert_int_equal(a.results[0].code, TLY_E_FORBIDDEN);
	msg_push_answer_clear(&a);
	syncsrv_reply_free(&r);
	/* B never sees it */
	struct buf seen;
	buf_init(&seen, 1 << 20);
	pull_all(f, &f->b.p, NULL, &seen);
	assert_null(strstr(seen.data, "pxforged1"));
	buf_free(&seen);
	buf_free(&body);
}

static void test_clock_ahead(void **state)
{
	struct fx *f = *state;
	struct buf body, seen;
	struct syncsrv_reply r;
	struct msg_push_answer a;
	char id[LEDGER_ID_SIZE];
	const int64_t year = 365LL * 24 * 3600 * 1000;

	buf_init(&body, 1 << 20);
	buf_init(&seen, 1 << 20);
	pull_all(f, &f->a.p, f->a.db, &seen);
	setenv("TALLY_CLOCK_SKEW_MS", "31536000000", 1);
	assert_int_equal(ledger_progress_add(f->a.db, f->ta, 20, "时钟快了一年", NULL, NULL, 0, id,
					     NULL),
			 TLY_OK);
	int64_t device_ms = clock_device_ms();
	unsetenv("TALLY_CLOCK_SKEW_MS");
	push_body(f->a.db, 1, 2, (uint64_t)device_ms, &body);
	int64_t before = clock_device_ms();
	do_push(f, &f->a, &body, &r);
	decode_answer(&r, &a);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(a.results[i].status, PUSH_APPLIED);
		assert_true(a.results[i].eff != 0);
		/* ordered at the server's time, not a year ahead */
		assert_true((int64_t)hlc_ms(a.results[i].eff) >= before - 1000);
		assert_true((int64_t)hlc_ms(a.results[i].eff) <= clock_device_ms() + 1000);
	}
	assert_true(a.results[1].eff > a.results[0].eff);
	assert_true(a.offset_ms < -year + 60000 && a.offset_ms > -year - 60000);
	msg_push_answer_clear(&a);
	syncsrv_reply_free(&r);
	/* the device's sync state records the offset; the change its hlc and recv */
	char sql[256];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM srv_device WHERE id = '%s' AND offset_ms < %lld",
		 f->a.p.id, (long long)(-year + 60000));
	assert_int_equal(count(syncsrv_db(f->s), sql), 1);
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM change_log WHERE record_id = '%s' AND hlc > eff AND "
		 "recv_ms < (hlc >> 16)",
		 id);
	assert_int_equal(count(syncsrv_db(f->s), sql), 1);
	buf_free(&body);
	buf_free(&seen);
}

static void test_auth(void **state)
{
	struct fx *f = *state;
	struct syncsrv_principal p;
	char tok[ENROL_TOKEN_SIZE];

	assert_int_equal(syncsrv_authenticate(f->s, NULL, &p), TLY_E_UNAUTHORIZED);
	assert_int_equal(syncsrv_authenticate(f->s, "", &p), TLY_E_UNAUTHORIZED);
	assert_int_equal(syncsrv_authenticate(f->s, "d.1234", &p), TLY_E_UNAUTHORIZED);
	snprintf(tok, sizeof tok, "%s", f->a.token);
	tok[5] = tok[5] == 'a' ? 'b' : 'a'; /* unknown device id */
	assert_int_equal(syncsrv_authenticate(f->s, tok, &p), TLY_E_UNAUTHORIZED);
	snprintf(tok, sizeof tok, "%s", f->a.token);
	tok[40] = tok[40] == 'a' ? 'b' : 'a'; /* right id, wrong secret */
	assert_int_equal(syncsrv_authenticate(f->s, tok, &p), TLY_E_UNAUTHORIZED);
	tok[40] = (char)(tok[40] - 'a' + 'A'); /* uppercase hex is another spelling: refused */
	assert_int_equal(syncsrv_authenticate(f->s, tok, &p), TLY_E_UNAUTHORIZED);
	assert_int_equal(syncsrv_authenticate(f->s, f->a.token, &p), TLY_OK);
	assert_int_equal(srvstore_device_revoke(syncsrv_db(f->s), f->a.p.id, 5), TLY_OK);
	assert_int_equal(syncsrv_authenticate(f->s, f->a.token, &p), TLY_E_REVOKED);
	assert_int_equal(syncsrv_authenticate(f->s, f->b.token, &p), TLY_OK);
}

static void test_version(void **state)
{
	struct fx *f = *state;
	struct syncsrv_reply r;
	const char *b = "{\"v\":2,\"type\":\"push\",\"whatever\":[1,2]}";
	syncsrv_reply_init(&r);
	assert_int_equal(syncsrv_push(f->s, &f->a.p, b, strlen(b), &r), TLY_OK);
	assert_int_equal(r.status, 400);
	assert_non_null(strstr(r.body.data, "\"version_unsupported\""));
	assert_non_null(strstr(r.body.data, "\"version\":1"));
	syncsrv_reply_free(&r);
	const char *pl = "{\"v\":1,\"type\":\"pull\",\"epoch\":\"\",\"cursor\":0,\"limit\":5000}";
	syncsrv_reply_init(&r);
	assert_int_equal(syncsrv_pull(f->s, &f->a.p, pl, strlen(pl), &r), TLY_OK);
	assert_int_equal(r.status, 400);
	assert_non_null(strstr(r.body.data, "\"bad_value\""));
	syncsrv_reply_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_push_pull_tenancy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gap_chain_site, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cross_village_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clock_ahead, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
