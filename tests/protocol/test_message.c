/*
 * message: round trips of every message, and hostile inputs, each refused
 * with its own code in bounded memory (jansson's allocations are counted).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "protocol/chain.h"
#include "protocol/change.h"
#include "protocol/compress.h"
#include "protocol/error.h"
#include "protocol/limits.h"
#include "protocol/message.h"

/* ---- a counting allocator for jansson --------------------------------- */

/* Each block carries its size in front, so free can count it back. */
#define HDR 16
static size_t j_now, j_peak, j_calls;
static long j_fail_at = -1; /* fail the n-th allocation (0-based), -1 never */

static void *j_malloc(size_t n)
{
	if (j_fail_at >= 0 && (long)j_calls++ == j_fail_at)
		return NULL;
	unsigned char *p = malloc(n + HDR);
	if (!p)
		return NULL;
	memcpy(p, &n, sizeof n);
	j_now += n;
	if (j_now > j_peak)
		j_peak = j_now;
	return p + HDR;
}

static void j_free(void *q)
{
	if (!q)
		return;
	unsigned char *p = (unsigned char *)q - HDR;
	size_t n;
	memcpy(&n, p, sizeof n);
	j_now -= n;
	free(p);
}

static void j_reset(void)
{
	j_peak = j_now;
	j_calls = 0;
	j_fail_at = -1;
}

static int setup(void **state)
{
	(void)state;
	json_set_alloc_funcs(j_malloc, j_free);
	return 0;
}

/* ---- building changes ---------------------------------------------------- */

#define SITE "v01-lijiacun"
#define HLC0 (UINT64_C(1767225600000) << 16) /* 2026-01-01 */

/* U+20BB7 (𠮷) and U+1F4CB (📋) are 4-byte UTF-8; the rest 3-byte. */
static const char note_zh[] = "已完成道路硬化改造，𠮷祥村民小组验收通过📋，\"引号\"与\\反斜杠\n第二行\t制表";

static struct change *mk(const char *site, uint64_t seq, int full)
{
	struct change *c = NULL;
	char id[32];
	snprintf(id, sizeof id, "T%04llu", (unsigned long long)(seq % 7 + 1));
	assert_int_equal(change_new(&c, CHANGE_SCHEMA_VERSION, site, seq, HLC0 + seq * 65536 + 3,
				    "task", id),
			 TLY_OK);
	assert_int_equal(change_set_text(c, "status", "doing", 5, NULL), TLY_OK);
	assert_int_equal(change_set_int(c, "progress", (int64_t)(seq * 10 % 101), NULL), TLY_OK);
	if (full) {
		assert_int_equal(change_set_text(c, "note", note_zh, strlen(note_zh), NULL), TLY_OK);
		assert_int_equal(change_set_null(c, "deadline", NULL), TLY_OK);
		assert_int_equal(change_set_int(c, "delta", INT64_MIN, NULL), TLY_OK);
		assert_int_equal(change_set_text(c, "ctl", "\x01\x1f\x7f/", 4, NULL), TLY_OK);
	}
	return c;
}

struct run {
	struct change **cs;
	size_t n;
	uint8_t prev[CHANGE_HASH_LEN];
	uint8_t head[CHANGE_HASH_LEN];
};

/* n consecutive changes of SITE from seq `first`, linked from a made-up
 * prev (genesis for seq 1). */
static void mk_run(struct run *r, size_t n, uint64_t first, int full)
{
	r->cs = calloc(n, sizeof *r->cs);
	assert_non_null(r->cs);
	r->n = n;
	for (size_t i = 0; i < n; i++)
		r->cs[i] = mk(SITE, first + i, full);
	for (size_t i = 0; i < CHANGE_HASH_LEN; i++)
		r->prev[i] = first == 1 ? 0 : (uint8_t)(0xA0 + i);
	assert_int_equal(chain_link_run(r->cs, n, r->prev, NULL), TLY_OK);
	memcpy(r->head, change_hash(r->cs[n - 1]), CHANGE_HASH_LEN);
}

static void free_run(struct run *r)
{
	for (size_t i = 0; i < r->n; i++)
		change_free(r->cs[i]);
	free(r->cs);
}

static void encode_push_of(const struct run *r, struct buf *out)
{
	struct msg_push m;
	memset(&m, 0, sizeof m);
	strcpy(m.site, SITE);
	memcpy(m.prev, r->prev, CHANGE_HASH_LEN);
	memcpy(m.head, r->head, CHANGE_HASH_LEN);
	m.changes = r->cs;
	m.n = r->n;
	m.device_ms = 1767225600123;
	m.queue = 7;
	buf_init(out, 64u << 20);
	assert_int_equal(msg_encode_push(&m, out), TLY_OK);
}

/* A copy of s with the first occurrence of `from` replaced by `to`. */
static char *replace(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	if (!at)
		fail_msg("'%s' not in %s", from, s);
	size_t a = (size_t)(at - s), fl = strlen(from), tl = strlen(to), sl = strlen(s);
	char *r = malloc(sl - fl + tl + 1);
	assert_non_null(r);
	memcpy(r, s, a);
	memcpy(r + a, to, tl);
	memcpy(r + a + tl, at + fl, sl - a - fl + 1);
	return r;
}

static void assert_changes_equal(struct change *const *a, struct change *const *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		assert_true(change_equal(a[i], b[i]));
		assert_non_null(change_hash(b[i]));
		assert_memory_equal(change_prev(a[i]), change_prev(b[i]), CHANGE_HASH_LEN);
		assert_memory_equal(change_hash(a[i]), change_hash(b[i]), CHANGE_HASH_LEN);
	}
}

/* ---- round trips --------------------------------------------------------- */

static void test_push_round_trip(void **state)
{
	(void)state;
	struct run r;
	struct buf b;
	struct msg_push d;
	mk_run(&r, 3, 41, 1);
	change_set_eff(r.cs[1], HLC0 + 99); /* resent after an epoch change */
	encode_push_of(&r, &b);

	/* Chinese, 4-byte characters included, travels as its own bytes. */
	char *note_json = replace(note_zh, "\"引号\"", "\\\"引号\\\"");
	char *tmp = replace(note_json, "\\反", "\\\\反");
	free(note_json);
	note_json = replace(tmp, "\n", "\\n");
	free(tmp);
	tmp = replace(note_json, "\t", "\\t");
	free(note_json);
	assert_non_null(strstr(b.data, tmp));
	free(tmp);
	assert_non_null(strstr(b.data, "\"ctl\":\"\\u0001\\u001f\x7f/\""));
	assert_non_null(strstr(b.data, "\"delta\":-9223372036854775808"));
	assert_non_null(strstr(b.data, "\"queue\":7"));
	assert_null(strstr(b.data, "\"site\":\"" SITE "\",\"seq\"")); /* site not per change */

	assert_int_equal(msg_decode_push(b.data, b.len, NULL, &d), TLY_OK);
	assert_string_equal(d.site, SITE);
	assert_memory_equal(d.prev, r.prev, CHANGE_HASH_LEN);
	assert_memory_equal(d.head, r.head, CHANGE_HASH_LEN);
	assert_int_equal(d.device_ms, 1767225600123);
	assert_int_equal(d.queue, 7);
	assert_int_equal(d.n, 3);
	assert_changes_equal(r.cs, d.changes, 3);
	assert_int_equal(change_eff(d.changes[1]), HLC0 + 99);
	struct field_view f;
	assert_true(change_field_get(d.changes[0], "note", &f));
	assert_int_equal(f.len, strlen(note_zh));
	assert_memory_equal(f.text, note_zh, f.len);

	/* Encoding the decoded message gives the same bytes. */
	struct buf b2;
	buf_init(&b2, 1 << 20);
	assert_int_equal(msg_encode_push(&d, &b2), TLY_OK);
	assert_int_equal(b2.len, b.len);
	assert_memory_equal(b2.data, b.data, b.len);
	msg_push_clear(&d);
	assert_null(d.changes);
	assert_int_equal(d.n, 0);

	/* queue -1 is not sent and comes back as -1. */
	struct msg_push m = {.changes = r.cs, .n = 3, .device_ms = 5, .queue = -1};
	strcpy(m.site, SITE);
	memcpy(m.prev, r.prev, CHANGE_HASH_LEN);
	memcpy(m.head, r.head, CHANGE_HASH_LEN);
	buf_reset(&b2);
	assert_int_equal(msg_encode_push(&m, &b2), TLY_OK);
	assert_null(strstr(b2.data, "queue"));
	assert_int_equal(msg_decode_push(b2.data, b2.len, NULL, &d), TLY_OK);
	assert_int_equal(d.queue, -1);
	msg_push_clear(&d);

	/* A push starting a chain. */
	struct run g;
	mk_run(&g, 2, 1, 0);
	buf_free(&b2);
	encode_push_of(&g, &b2);
	assert_non_null(strstr(b2.data, "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\""));
	assert_int_equal(msg_decode_push(b2.data, b2.len, NULL, &d), TLY_OK);
	assert_changes_equal(g.cs, d.changes, 2);
	msg_push_clear(&d);
	free_run(&g);

	buf_free(&b);
	buf_free(&b2);
	free_run(&r);
}

static void test_encoders_refuse(void **state)
{
	(void)state;
	struct run r;
	struct buf b;
	mk_run(&r, 3, 5, 0);
	struct msg_push m = {.changes = r.cs, .n = 3, .queue = -1};
	strcpy(m.site, SITE);
	buf_init(&b, 1 << 20);
	assert_int_equal(buf_add_str(&b, "keep"), TLY_OK);

	m.n = 0;
	assert_int_equal(msg_encode_push(&m, &b), TLY_E_BAD_VALUE);
	m.n = 3;
	strcpy(m.site, "other");
	assert_int_equal(msg_encode_push(&m, &b), TLY_E_SITE_MISMATCH);
	strcpy(m.site, SITE);
	struct change *t = r.cs[1];
	r.cs[1] = r.cs[2];
	r.cs[2] = t;
	assert_int_equal(msg_encode_push(&m, &b), TLY_E_SEQ_ORDER);
	r.cs[2] = r.cs[1];
	r.cs[1] = t;

	/* A cap too small leaves earlier bytes alone. */
	struct buf small;
	buf_init(&small, 64);
	assert_int_equal(buf_add_str(&small, "keep"), TLY_OK);
	assert_int_equal(msg_encode_push(&m, &small), TLY_E_TOO_LARGE);
	assert_string_equal(small.data, "keep");
	buf_free(&small);
	buf_init(&small, 64);
	assert_int_equal(msg_encode_push(&m, &small), TLY_E_TOO_LARGE);
	assert_int_equal(small.len, 0);
	buf_free(&small);

	/* Bad epoch, unsendable reason, a number past int64. */
	struct msg_pull p = {.epoch = "Bad", .cursor = 0, .limit = 10};
	assert_int_equal(msg_encode_pull(&p, &b), TLY_E_BAD_VALUE);
	strcpy(p.epoch, "ok1");
	p.cursor = UINT64_MAX;
	assert_int_equal(msg_encode_pull(&p, &b), TLY_E_BAD_VALUE);
	struct push_result res = {.seq = 1, .status = PUSH_REJECTED, .code = TLY_E_FORBIDDEN,
				  .reason = (char *)"\xff"};
	struct msg_push_answer a = {.epoch = "e1", .server_ms = 1, .results = &res, .n = 1};
	assert_int_equal(msg_encode_push_answer(&a, &b), TLY_E_BAD_UTF8);
	res.code = TLY_OK;
	res.reason = NULL;
	assert_int_equal(msg_encode_push_answer(&a, &b), TLY_E_BAD_VALUE);
	struct msg_error e = {.code = TLY_OK};
	assert_int_equal(msg_encode_error(&e, &b), TLY_E_BAD_VALUE);
	assert_string_equal(b.data, "keep");
	buf_free(&b);
	free_run(&r);
}

static void test_push_answer_round_trip(void **state)
{
	(void)state;
	char reason[] = "村级账号不能销号，请由乡镇审核𠮷";
	struct push_result res[4] = {
		{.seq = 10, .status = PUSH_APPLIED},
		{.seq = 11, .status = PUSH_APPLIED, .eff = HLC0 + 77},
		{.seq = 12, .status = PUSH_DUPLICATE},
		{.seq = 13, .status = PUSH_REJECTED, .code = TLY_E_BAD_STATUS_MOVE, .reason = reason},
	};
	struct msg_push_answer m = {.epoch = "k3x9", .server_ms = 1767225600999,
				    .offset_ms = -86400000, .acked = 13, .results = res, .n = 4};
	struct buf b;
	struct msg_push_answer d;
	buf_init(&b, 1 << 20);
	assert_int_equal(msg_encode_push_answer(&m, &b), TLY_OK);
	assert_null(strstr(b.data, "expected"));
	assert_non_null(strstr(b.data, reason));
	assert_non_null(strstr(b.data, "{\"seq\":10,\"status\":\"applied\"}"));
	assert_int_equal(msg_decode_push_answer(b.data, b.len, NULL, &d), TLY_OK);
	assert_string_equal(d.epoch, "k3x9");
	assert_int_equal(d.server_ms, 1767225600999);
	assert_int_equal(d.offset_ms, -86400000);
	assert_int_equal(d.acked, 13);
	assert_int_equal(d.expected, 0);
	assert_int_equal(d.n, 4);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(d.results[i].seq, res[i].seq);
		assert_int_equal(d.results[i].status, res[i].status);
		assert_int_equal(d.results[i].code, res[i].code);
		assert_int_equal(d.results[i].eff, res[i].eff);
	}
	assert_null(d.results[0].reason);
	assert_string_equal(d.results[3].reason, reason);
	msg_push_answer_clear(&d);

	/* seq_gap: nothing applied, expected told, no results; a rejected
	 * change without a reason gets the code's Chinese text. */
	struct push_result one = {.seq = 4, .status = PUSH_REJECTED, .code = TLY_E_FORBIDDEN};
	struct msg_push_answer g = {.epoch = "a", .server_ms = 1, .acked = 3, .expected = 4};
	buf_reset(&b);
	assert_int_equal(msg_encode_push_answer(&g, &b), TLY_OK);
	assert_int_equal(msg_decode_push_answer(b.data, b.len, NULL, &d), TLY_OK);
	assert_int_equal(d.expected, 4);
	assert_int_equal(d.n, 0);
	assert_null(d.results);
	msg_push_answer_clear(&d);
	g.results = &one;
	g.n = 1;
	buf_reset(&b);
	assert_int_equal(msg_encode_push_answer(&g, &b), TLY_E_BAD_VALUE); /* expected + results */
	g.expected = 0;
	assert_int_equal(msg_encode_push_answer(&g, &b), TLY_OK);
	assert_int_equal(msg_decode_push_answer(b.data, b.len, NULL, &d), TLY_OK);
	assert_string_equal(d.results[0].reason, error_text_zh(TLY_E_FORBIDDEN));
	msg_push_answer_clear(&d);
	buf_free(&b);
}

static void test_pull_round_trip(void **state)
{
	(void)state;
	struct msg_pull m = {.epoch = "", .cursor = 0, .limit = 1}, d;
	struct buf b;
	buf_init(&b, 4096);
	assert_int_equal(msg_encode_pull(&m, &b), TLY_OK);
	assert_string_equal(b.data, "{\"v\":1,\"type\":\"pull\",\"epoch\":\"\",\"cursor\":0,\"limit\":1}");
	assert_int_equal(msg_decode_pull(b.data, b.len, NULL, &d), TLY_OK);
	assert_string_equal(d.epoch, "");
	assert_int_equal(d.cursor, 0);
	assert_int_equal(d.limit, 1);
	struct msg_pull m2 = {.epoch = "0123456789abcdefghijklmnopqrstuv", .cursor = INT64_MAX,
			      .limit = 1000};
	buf_reset(&b);
	assert_int_equal(msg_encode_pull(&m2, &b), TLY_OK);
	assert_int_equal(msg_decode_pull(b.data, b.len, NULL, &d), TLY_OK);
	assert_string_equal(d.epoch, m2.epoch);
	assert_int_equal(d.cursor, INT64_MAX);
	assert_int_equal(d.limit, 1000);
	buf_free(&b);
}

static size_t count_of(const char *hay, const char *needle)
{
	size_t k = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		k++;
	return k;
}

/* A page: SITE 3..5, "v02" 1..2, SITE 7 (a gap), "v02" 3 after another site. */
static struct change **mk_page(size_t *n)
{
	struct change **cs = calloc(7, sizeof *cs);
	struct run a, b;
	assert_non_null(cs);
	mk_run(&a, 5, 3, 1); /* SITE 3..7 */
	b.cs = calloc(3, sizeof *b.cs);
	for (size_t i = 0; i < 3; i++)
		b.cs[i] = mk("v02", 1 + i, 0);
	assert_int_equal(chain_link_run(b.cs, 3, chain_genesis, NULL), TLY_OK);
	change_set_eff(b.cs[1], HLC0 + 5);
	cs[0] = a.cs[0];
	cs[1] = a.cs[1];
	cs[2] = a.cs[2];
	cs[3] = b.cs[0];
	cs[4] = b.cs[1];
	cs[5] = a.cs[4];
	cs[6] = b.cs[2];
	change_free(a.cs[3]);
	free(a.cs);
	free(b.cs);
	*n = 7;
	return cs;
}

static void test_pull_answer_round_trip(void **state)
{
	(void)state;
	size_t n;
	struct change **cs = mk_page(&n);
	struct msg_pull_answer m = {.epoch = "e9", .server_ms = 1767225601000, .changes = cs,
				    .n = n, .next = 812, .more = 1};
	struct msg_pull_answer d;
	struct buf b;
	buf_init(&b, 1 << 20);
	assert_int_equal(msg_encode_pull_answer(&m, &b), TLY_OK);
	/* prev only where a run starts: SITE 3, v02 1, SITE 7, v02 3. */
	assert_int_equal(count_of(b.data, "\"prev\""), 4);
	assert_int_equal(count_of(b.data, "\"site\""), 7);
	assert_int_equal(count_of(b.data, "\"eff\""), 1);
	assert_int_equal(msg_decode_pull_answer(b.data, b.len, NULL, &d), TLY_OK);
	assert_string_equal(d.epoch, "e9");
	assert_int_equal(d.server_ms, 1767225601000);
	assert_int_equal(d.next, 812);
	assert_int_equal(d.more, 1);
	assert_int_equal(d.n, n);
	assert_changes_equal(cs, d.changes, n);
	msg_pull_answer_clear(&d);

	/* An empty last page. */
	struct msg_pull_answer e = {.epoch = "e9", .server_ms = 2, .next = 812};
	buf_reset(&b);
	assert_int_equal(msg_encode_pull_answer(&e, &b), TLY_OK);
	assert_int_equal(msg_decode_pull_answer(b.data, b.len, NULL, &d), TLY_OK);
	assert_int_equal(d.n, 0);
	assert_int_equal(d.more, 0);
	msg_pull_answer_clear(&d);

	/* A change without links cannot be sent. */
	struct change *bare = mk("v03", 1, 0);
	struct msg_pull_answer u = {.epoch = "e9", .server_ms = 2, .changes = &bare, .n = 1};
	assert_int_equal(msg_encode_pull_answer(&u, &b), TLY_E_INTERNAL);
	change_free(bare);
	for (size_t i = 0; i < n; i++)
		change_free(cs[i]);
	free(cs);
	buf_free(&b);
}

static void test_error_round_trip(void **state)
{
	(void)state;
	struct msg_error m = {.code = TLY_E_SEQ_GAP, .expected = 42, .retry_after = 30,
			      .version = 1};
	struct msg_error d;
	struct buf b;
	buf_init(&b, 4096);
	assert_int_equal(msg_encode_error(&m, &b), TLY_OK);
	assert_int_equal(msg_decode_error(b.data, b.len, NULL, &d), TLY_OK);
	assert_int_equal(d.code, TLY_E_SEQ_GAP);
	assert_string_equal(d.code_name, "seq_gap");
	assert_string_equal(d.message, error_text_zh(TLY_E_SEQ_GAP));
	assert_int_equal(d.expected, 42);
	assert_int_equal(d.retry_after, 30);
	assert_int_equal(d.version, 1);
	msg_error_clear(&d);
	assert_null(d.code_name);

	/* A code from a newer peer: kept by name, known as remote_error. */
	char msg[] = "新版本的错误𠮷";
	struct msg_error f = {.code_name = (char *)"some_future_code", .message = msg};
	buf_reset(&b);
	assert_int_equal(msg_encode_error(&f, &b), TLY_OK);
	assert_null(strstr(b.data, "expected"));
	assert_int_equal(msg_decode_error(b.data, b.len, NULL, &d), TLY_OK);
	assert_int_equal(d.code, TLY_E_REMOTE);
	assert_string_equal(d.code_name, "some_future_code");
	assert_string_equal(d.message, msg);
	assert_int_equal(d.expected, 0);
	msg_error_clear(&d);
	buf_free(&b);
}

static void test_peek(void **state)
{
	(void)state;
	uint32_t v = 0;
	enum msg_type t = 0;
	const char *s = "{\"type\":\"pull_answer\",\"v\":1,\"anything\":[1,2]}";
	assert_int_equal(msg_peek(s, strlen(s), NULL, &v, &t), TLY_OK);
	assert_int_equal(v, 1);
	assert_int_equal(t, MSG_PULL_ANSWER);
	s = "{\"v\":7,\"type\":\"teleport\",\"x\":{}}";
	assert_int_equal(msg_peek(s, strlen(s), NULL, &v, &t), TLY_E_VERSION);
	assert_int_equal(v, 7);
	s = "{\"v\":1,\"type\":\"teleport\"}";
	assert_int_equal(msg_peek(s, strlen(s), NULL, &v, &t), TLY_E_BAD_MSG_TYPE);
	s = "{\"type\":\"push\"}";
	assert_int_equal(msg_peek(s, strlen(s), NULL, &v, &t), TLY_E_MISSING_FIELD);
	s = "{\"v\":\"1\",\"type\":\"push\"}";
	assert_int_equal(msg_peek(s, strlen(s), NULL, &v, &t), TLY_E_BAD_TYPE);
	s = "{\"v\":1.0,\"type\":\"push\"}";
	assert_int_equal(msg_peek(s, strlen(s), NULL, &v, &t), TLY_E_BAD_TYPE);
	s = "[{\"v\":1}]";
	assert_int_equal(msg_peek(s, strlen(s), NULL, &v, &t), TLY_E_BAD_TYPE);
	s = "{\"v\":1,\"v\":1,\"type\":\"push\"}";
	assert_int_equal(msg_peek(s, strlen(s), NULL, &v, &t), TLY_E_DUP_KEY);
}

/* ---- hostile inputs ------------------------------------------------------- */

enum which { PUSH, PUSH_ANSWER, PULL, PULL_ANSWER, ERROR, PEEK };

static int decode(enum which w, const char *s, size_t n, const struct limits *l)
{
	int rc;
	switch (w) {
	case PUSH: {
		struct msg_push m;
		rc = msg_decode_push(s, n, l, &m);
		if (rc != TLY_OK)
			assert_null(m.changes); /* left cleared on error */
		msg_push_clear(&m);
		return rc;
	}
	case PUSH_ANSWER: {
		struct msg_push_answer m;
		rc = msg_decode_push_answer(s, n, l, &m);
		msg_push_answer_clear(&m);
		return rc;
	}
	case PULL: {
		struct msg_pull m;
		return msg_decode_pull(s, n, l, &m);
	}
	case PULL_ANSWER: {
		struct msg_pull_answer m;
		rc = msg_decode_pull_answer(s, n, l, &m);
		msg_pull_answer_clear(&m);
		return rc;
	}
	case ERROR: {
		struct msg_error m;
		rc = msg_decode_error(s, n, l, &m);
		msg_error_clear(&m);
		return rc;
	}
	case PEEK: {
		uint32_t v;
		enum msg_type t;
		return msg_peek(s, n, l, &v, &t);
	}
	}
	return -1;
}

struct hostile {
	const char *what;
	enum which w;
	const char *from, *to; /* edit of the base message: replace the first
				* `from` by `to`, or with to NULL drop the
				* first member named `from` */
	int want;
};

/* A copy of s without the first member "key":scalar and one comma. */
static char *drop(const char *s, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *at = strstr(s, pat);
	if (!at)
		fail_msg("no member %s in %s", key, s);
	const char *end = at + strlen(pat);
	while (*end && *end != ',' && *end != '}')
		end++;
	if (at[-1] == ',')
		at--;
	else if (*end == ',')
		end++;
	size_t a = (size_t)(at - s);
	char *r = malloc(strlen(s) + 1);
	assert_non_null(r);
	memcpy(r, s, a);
	strcpy(r + a, end);
	return r;
}

/* Push bodies are edits of a real push (3 changes, seq 41..43), so only
 * the edit can be what is refused. */
static const struct hostile hostile[] = {
	{"duplicate key at top", PUSH, "\"queue\":7", "\"queue\":7,\"queue\":7", TLY_E_DUP_KEY},
	{"duplicate key in fields", PUSH, "\"status\":\"doing\"",
	 "\"status\":\"doing\",\"status\":\"done\"", TLY_E_DUP_KEY},
	{"raw invalid UTF-8", PUSH, "\"doing\"", "\"do\xff\xfeing\"", TLY_E_BAD_UTF8},
	{"overlong UTF-8", PUSH, "\"doing\"", "\"do\xc0\xafing\"", TLY_E_BAD_UTF8},
	{"raw surrogate", PUSH, "\"doing\"", "\"\xed\xa0\x80\"", TLY_E_BAD_UTF8},
	{"lone high surrogate", PUSH, "\"doing\"", "\"do\\ud800ing\"", TLY_E_LONE_SURROGATE},
	{"lone low surrogate", PUSH, "\"doing\"", "\"\\udc00\"", TLY_E_LONE_SURROGATE},
	{"escaped NUL", PUSH, "\"doing\"", "\"do\\u0000ing\"", TLY_E_BAD_UTF8},
	{"escaped NUL in id", PUSH, "\"T0007\"", "\"T\\u00000\"", TLY_E_BAD_UTF8},
	{"string seq", PUSH, "\"seq\":41", "\"seq\":\"41\"", TLY_E_BAD_TYPE},
	{"float hlc", PUSH, "\"hlc\":", "\"hlc\":0.", TLY_E_BAD_TYPE},
	{"bool device_ms", PUSH, "\"device_ms\":1767225600123", "\"device_ms\":true",
	 TLY_E_BAD_TYPE},
	{"float field", PUSH, "\"progress\":", "\"progress\":0.5,\"p\":", TLY_E_BAD_TYPE},
	{"bool field", PUSH, "\"progress\":", "\"b\":false,\"progress\":", TLY_E_BAD_TYPE},
	{"array field", PUSH, "\"progress\":", "\"b\":[],\"progress\":", TLY_E_BAD_TYPE},
	{"missing head", PUSH, "head", NULL, TLY_E_MISSING_FIELD},
	{"missing device_ms", PUSH, "device_ms", NULL, TLY_E_MISSING_FIELD},
	{"missing hlc", PUSH, "hlc", NULL, TLY_E_MISSING_FIELD},
	{"missing kind", PUSH, "\"kind\":\"task\",", "", TLY_E_MISSING_FIELD},
	{"unknown top member", PUSH, "\"queue\":7", "\"queue\":7,\"hint\":1", TLY_E_UNKNOWN_FIELD},
	{"site inside a push change", PUSH, "\"seq\":41", "\"site\":\"" SITE "\",\"seq\":41",
	 TLY_E_UNKNOWN_FIELD},
	{"out of order", PUSH, "\"seq\":42", "\"seq\":44", TLY_E_SEQ_ORDER},
	{"flipped text, head kept", PUSH, "道路", "道理", TLY_E_CHAIN},
	{"flipped ascii", PUSH, "\"doing\"", "\"doinG\"", TLY_E_CHAIN},
	{"v 2", PUSH, "\"v\":1", "\"v\":2", TLY_E_VERSION},
	{"type pull", PUSH, "\"type\":\"push\"", "\"type\":\"pull\"", TLY_E_BAD_MSG_TYPE},
	{"seq 0", PUSH, "\"seq\":41", "\"seq\":0", TLY_E_BAD_VALUE},
	{"seq negative", PUSH, "\"seq\":41", "\"seq\":-41", TLY_E_BAD_VALUE},
	{"seq past int64", PUSH, "\"seq\":41", "\"seq\":99999999999999999999", TLY_E_BAD_VALUE},
	{"eff 0", PUSH, "\"seq\":41", "\"seq\":41,\"eff\":0", TLY_E_BAD_VALUE},
	{"uppercase hash reads as lowercase", PUSH, "\"prev\":\"a0", "\"prev\":\"A0", TLY_OK},
	{"hash not hex", PUSH, "\"prev\":\"a0", "\"prev\":\"g0", TLY_E_BAD_VALUE},
	{"hash too long", PUSH, "\"prev\":\"a0", "\"prev\":\"a0a0", TLY_E_BAD_VALUE},
	{"short hash", PUSH, "\"prev\":\"a0", "\"prev\":\"", TLY_E_BAD_VALUE},
	{"bad site", PUSH, "\"site\":\"v01", "\"site\":\"V01", TLY_E_BAD_VALUE},
	{"site over 32", PUSH, "\"site\":\"v01", "\"site\":\"v01xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	 TLY_E_BAD_VALUE},
	{"bad field name", PUSH, "\"progress\":", "\"Progress\":", TLY_E_BAD_VALUE},
	{"bad kind", PUSH, "\"kind\":\"task\"", "\"kind\":\"task1\"", TLY_E_BAD_VALUE},
	{"sv 0", PUSH, "\"sv\":1", "\"sv\":0", TLY_E_BAD_VALUE},
	{"negative queue", PUSH, "\"queue\":7", "\"queue\":-1", TLY_E_BAD_VALUE},

	{"applied with code", PUSH_ANSWER, "\"status\":\"applied\"",
	 "\"status\":\"applied\",\"code\":\"forbidden\"", TLY_E_UNKNOWN_FIELD},
	{"rejected without reason", PUSH_ANSWER, "reason", NULL, TLY_E_MISSING_FIELD},
	{"missing acked", PUSH_ANSWER, "acked", NULL, TLY_E_MISSING_FIELD},
	{"bad status", PUSH_ANSWER, "\"duplicate\"", "\"dup\"", TLY_E_BAD_VALUE},
	{"results out of order", PUSH_ANSWER, "\"seq\":11", "\"seq\":12", TLY_E_SEQ_ORDER},
	{"expected with results", PUSH_ANSWER, "\"acked\":13", "\"acked\":13,\"expected\":14",
	 TLY_E_BAD_VALUE},
	{"expected 0", PUSH_ANSWER, "\"acked\":13", "\"acked\":13,\"expected\":0", TLY_E_BAD_VALUE},
	{"epoch uppercase", PUSH_ANSWER, "\"k3x9\"", "\"K3X9\"", TLY_E_BAD_VALUE},
	{"epoch empty", PUSH_ANSWER, "\"k3x9\"", "\"\"", TLY_E_BAD_VALUE},
	{"code ok", PUSH_ANSWER, "\"bad_status_move\"", "\"ok\"", TLY_E_BAD_VALUE},
	{"float offset", PUSH_ANSWER, "-86400000", "-8.64e7", TLY_E_BAD_TYPE},
	{"v 2 garbage", PUSH_ANSWER, "\"v\":1", "\"v\":2,\"results\":7", TLY_E_DUP_KEY},

	{"limit 0", PULL, "\"limit\":50", "\"limit\":0", TLY_E_BAD_VALUE},
	{"limit 1001", PULL, "\"limit\":50", "\"limit\":1001", TLY_E_BAD_VALUE},
	{"cursor negative", PULL, "\"cursor\":9", "\"cursor\":-1", TLY_E_BAD_VALUE},
	{"cursor string", PULL, "\"cursor\":9", "\"cursor\":\"9\"", TLY_E_BAD_TYPE},
	{"missing limit", PULL, ",\"limit\":50", "", TLY_E_MISSING_FIELD},
	{"epoch 33", PULL, "\"epoch\":\"\"", "\"epoch\":\"123456789012345678901234567890123\"",
	 TLY_E_BAD_VALUE},
	{"epoch number", PULL, "\"epoch\":\"\"", "\"epoch\":0", TLY_E_BAD_TYPE},
	{"v 2 type junk", PULL, "\"v\":1,\"type\":\"pull\"", "\"v\":2,\"type\":[]", TLY_E_VERSION},
	{"v missing", PULL, "\"v\":1,", "", TLY_E_MISSING_FIELD},
	{"v float", PULL, "\"v\":1", "\"v\":1.0", TLY_E_BAD_TYPE},
	{"type missing", PULL, ",\"type\":\"pull\"", "", TLY_E_MISSING_FIELD},

	{"more as int", PULL_ANSWER, "\"more\":true", "\"more\":1", TLY_E_BAD_TYPE},
	{"first prev missing", PULL_ANSWER, "prev", NULL, TLY_E_MISSING_FIELD},
	{"site missing", PULL_ANSWER, "\"site\":\"v01-lijiacun\",", "", TLY_E_MISSING_FIELD},
	{"prev contradicts", PULL_ANSWER, "\"seq\":4,", "\"seq\":4,\"prev\":\"" "0000000000000000000000000000000000000000000000000000000000000001\",",
	 TLY_E_CHAIN},
	{"genesis after 1", PULL_ANSWER, "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf",
	 "0000000000000000000000000000000000000000000000000000000000000000", TLY_E_CHAIN},
	{"seq 1 not from genesis", PULL_ANSWER, "\"site\":\"v02\",\"seq\":1,\"prev\":\"00",
	 "\"site\":\"v02\",\"seq\":1,\"prev\":\"01", TLY_E_CHAIN},
	{"seq 1 without prev", PULL_ANSWER, "\"site\":\"v02\",\"seq\":1,\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"",
	 "\"site\":\"v02\",\"seq\":1", TLY_E_MISSING_FIELD},
	{"next float", PULL_ANSWER, "\"next\":812", "\"next\":812.0", TLY_E_BAD_TYPE},

	{"code bad syntax", ERROR, "\"seq_gap\"", "\"Seq Gap\"", TLY_E_BAD_VALUE},
	{"missing code", ERROR, "code", NULL, TLY_E_MISSING_FIELD},
	{"retry_after 0", ERROR, "\"retry_after\":30", "\"retry_after\":0", TLY_E_BAD_VALUE},
	{"version past u32", ERROR, "\"version\":1", "\"version\":4294967296", TLY_E_BAD_VALUE},
	{"missing message", ERROR, "message", NULL, TLY_E_MISSING_FIELD},
	{"v 2 with unknown members", ERROR, "\"v\":1", "\"v\":2,\"zzz\":{\"a\":[]}", TLY_E_VERSION},
	{"peek dup", PEEK, "\"v\":1", "\"v\":1,\"v\":1", TLY_E_DUP_KEY},
};

static char *base_of(enum which w, size_t *len)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	switch (w) {
	case PUSH:
	case PEEK: {
		struct run r;
		mk_run(&r, 3, 41, 1);
		buf_free(&b);
		encode_push_of(&r, &b);
		free_run(&r);
		break;
	}
	case PUSH_ANSWER: {
		char reason[] = "村级账号不能销号";
		struct push_result res[3] = {
			{.seq = 10, .status = PUSH_APPLIED},
			{.seq = 11, .status = PUSH_DUPLICATE},
			{.seq = 12, .status = PUSH_REJECTED, .code = TLY_E_BAD_STATUS_MOVE,
			 .reason = reason},
		};
		struct msg_push_answer m = {.epoch = "k3x9", .server_ms = 1767225600999,
					    .offset_ms = -86400000, .acked = 13, .results = res,
					    .n = 3};
		assert_int_equal(msg_encode_push_answer(&m, &b), TLY_OK);
		break;
	}
	case PULL: {
		struct msg_pull m = {.epoch = "", .cursor = 9, .limit = 50};
		assert_int_equal(msg_encode_pull(&m, &b), TLY_OK);
		break;
	}
	case PULL_ANSWER: {
		size_t n;
		struct change **cs = mk_page(&n);
		struct msg_pull_answer m = {.epoch = "e9", .server_ms = 1, .changes = cs, .n = n,
					    .next = 812, .more = 1};
		assert_int_equal(msg_encode_pull_answer(&m, &b), TLY_OK);
		for (size_t i = 0; i < n; i++)
			change_free(cs[i]);
		free(cs);
		break;
	}
	case ERROR: {
		struct msg_error m = {.code = TLY_E_SEQ_GAP, .expected = 42, .retry_after = 30,
				      .version = 1};
		assert_int_equal(msg_encode_error(&m, &b), TLY_OK);
		break;
	}
	}
	return buf_detach(&b, len);
}

static void test_hostile(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof hostile / sizeof hostile[0]; k++) {
		const struct hostile *h = &hostile[k];
		size_t n;
		char *base = base_of(h->w, &n);
		/* The unedited base decodes: each refusal below is the edit's. */
		assert_int_equal(decode(h->w, base, n, NULL), TLY_OK);
		char *s = h->to ? replace(base, h->from, h->to) : drop(base, h->from);
		size_t before = j_now;
		int rc = decode(h->w, s, strlen(s), NULL);
		if (rc != h->want)
			fail_msg("%s: got %s, want %s\n%s", h->what, error_name(rc),
				 error_name(h->want), s);
		assert_int_equal(j_now, before); /* jansson's tree released */
		free(s);
		free(base);
	}
}

/* Edits that change a message's shape, not one member. */
static void test_hostile_shapes(void **state)
{
	(void)state;
	size_t n;
	char *push = base_of(PUSH, &n);
	char *s, *t;

	/* "changes" an object, then an empty array. */
	s = replace(push, "\"changes\":[", "\"changes\":{\"a\":[");
	t = malloc(strlen(s) + 2);
	strcpy(t, s);
	strcat(t, "}");
	assert_int_equal(decode(PUSH, t, strlen(t), NULL), TLY_E_BAD_TYPE);
	free(s);
	free(t);
	s = strdup(push);
	strcpy(strstr(s, "\"changes\":[") + 11, "]}");
	assert_int_equal(decode(PUSH, s, strlen(s), NULL), TLY_E_BAD_VALUE);
	strcpy(strstr(s, "\"changes\":[") + 10, "null}");
	assert_int_equal(decode(PUSH, s, strlen(s), NULL), TLY_E_BAD_TYPE);
	free(s);

	/* Anything after the one value. */
	s = malloc(n + 8);
	memcpy(s, push, n);
	memcpy(s + n, " x", 3);
	assert_int_equal(decode(PUSH, s, n + 2, NULL), TLY_E_BAD_JSON);
	memcpy(s + n, "{}", 3);
	assert_int_equal(decode(PUSH, s, n + 2, NULL), TLY_E_BAD_JSON);
	memcpy(s + n, " \n", 3);
	assert_int_equal(decode(PUSH, s, n + 2, NULL), TLY_OK);
	/* ... and a text cut short anywhere. */
	for (size_t k = 0; k < n; k += 7)
		assert_int_equal(decode(PUSH, push, k, NULL), TLY_E_BAD_JSON);
	free(s);

	/* Not an object at all. */
	assert_int_equal(decode(PUSH, "[1]", 3, NULL), TLY_E_BAD_TYPE);
	assert_int_equal(decode(PULL, "\"pull\"", 6, NULL), TLY_E_BAD_TYPE);
	assert_int_equal(decode(ERROR, "null", 4, NULL), TLY_E_BAD_TYPE);
	free(push);

	/* A reason or message over MSG_REASON_MAX bytes. */
	char *e = base_of(ERROR, &n);
	const char *msgkey = "\"message\":\"";
	size_t keep = (size_t)(strstr(e, msgkey) - e) + strlen(msgkey);
	s = malloc(keep + MSG_REASON_MAX + 64);
	memcpy(s, e, keep);
	memset(s + keep, 'x', MSG_REASON_MAX);
	strcpy(s + keep + MSG_REASON_MAX, "\"}");
	/* the message is now 512 bytes and the rest of the members gone */
	assert_int_equal(decode(ERROR, s, strlen(s), NULL), TLY_OK);
	memset(s + keep, 'x', MSG_REASON_MAX + 1);
	strcpy(s + keep + MSG_REASON_MAX + 1, "\"}");
	assert_int_equal(decode(ERROR, s, strlen(s), NULL), TLY_E_FIELD_TOO_LONG);
	free(s);
	free(e);
}

/* The declared size of 1 GB is refused from the header, before any body. */
static void test_declared_size(void **state)
{
	(void)state;
	const struct limits *d = limits_or_default(NULL);
	assert_int_equal(msg_check_body_size(UINT64_C(1) << 30, NULL), TLY_E_TOO_LARGE);
	assert_int_equal(msg_check_body_size(UINT64_MAX, NULL), TLY_E_TOO_LARGE);
	assert_int_equal(msg_check_body_size(d->max_body_bytes, NULL), TLY_OK);
	assert_int_equal(msg_check_body_size(d->max_body_bytes + 1, NULL), TLY_E_TOO_LARGE);
	assert_int_equal(msg_check_body_size(0, NULL), TLY_OK);
	struct limits l;
	limits_default(&l);
	l.max_body_bytes = 100;
	assert_int_equal(msg_check_body_size(100, &l), TLY_OK);
	assert_int_equal(msg_check_body_size(101, &l), TLY_E_TOO_LARGE);

	/* A text longer than max_inflated_bytes is refused before scanning. */
	l.max_inflated_bytes = 20;
	const char *p = "{\"v\":1,\"type\":\"pull\",\"epoch\":\"\",\"cursor\":0,\"limit\":1}";
	assert_int_equal(decode(PULL, p, strlen(p), &l), TLY_E_TOO_LARGE);
	assert_int_equal(decode(PEEK, p, strlen(p), &l), TLY_E_TOO_LARGE);
	assert_int_equal(decode(PULL, p, strlen(p), NULL), TLY_OK);
}

/* The receive path as the HTTP layer runs it: inflate under the cap, then
 * decode. A gzip bomb stops in compress_inflate and jansson never runs. */
static void test_gzip_bomb_message(void **state)
{
	(void)state;
	const struct limits *l = limits_or_default(NULL);
	size_t n = l->max_inflated_bytes + (1u << 20);
	char *spaces = malloc(n);
	assert_non_null(spaces);
	memset(spaces, ' ', n);
	memcpy(spaces, "{\"v\":1,\"type\":\"pull\",\"pad\":\"", 28);
	struct buf gz, body;
	buf_init(&gz, l->max_body_bytes);
	assert_int_equal(compress_gzip(spaces, n, &gz), TLY_OK);
	free(spaces);
	assert_true(gz.len < 100000); /* ~33 MiB in well under 100 KB */
	buf_init(&body, l->max_inflated_bytes);
	j_reset();
	size_t before = j_now;
	assert_int_equal(compress_inflate(gz.data, gz.len, &body), TLY_E_INFLATE_LIMIT);
	assert_null(body.data);
	assert_int_equal(j_peak, before);
	buf_free(&gz);
}

static void test_deep_nesting(void **state)
{
	(void)state;
	const size_t deep = 100000;
	char *s = malloc(6 * deep + 64);
	assert_non_null(s);
	size_t k = 0;
	memset(s, '[', deep);
	memset(s + deep, ']', deep);
	k = 2 * deep;
	enum which all[] = {PUSH, PUSH_ANSWER, PULL, PULL_ANSWER, ERROR, PEEK};
	for (size_t w = 0; w < 6; w++) {
		j_reset();
		assert_int_equal(decode(all[w], s, k, NULL), TLY_E_TOO_DEEP);
		assert_int_equal(j_peak, j_now); /* jansson allocated nothing */
	}
	k = 0;
	k += (size_t)sprintf(s, "{\"v\":1,\"type\":\"push\",\"x\":");
	for (size_t i = 0; i < deep; i++) {
		memcpy(s + k, "{\"a\":", 5);
		k += 5;
	}
	for (size_t w = 0; w < 6; w++) {
		j_reset();
		assert_int_equal(decode(all[w], s, k, NULL), TLY_E_TOO_DEEP);
		assert_int_equal(j_peak, j_now);
	}
	free(s);
}

/* 1001 changes, 65 fields, a 16 KiB + 1 text: each refused by its count. */
static void test_counts(void **state)
{
	(void)state;
	const struct limits *l = limits_or_default(NULL);
	struct run r;
	struct buf b;
	struct msg_push d;

	mk_run(&r, l->max_changes + 1, 1, 0);
	encode_push_of(&r, &b);
	j_reset();
	assert_int_equal(msg_decode_push(b.data, b.len, NULL, &d), TLY_E_TOO_MANY);
	free_run(&r);
	buf_free(&b);

	/* Exactly max_changes is fine, and jansson's tree stays a small
	 * multiple of the text. */
	mk_run(&r, l->max_changes, 1, 1);
	encode_push_of(&r, &b);
	j_reset();
	size_t before = j_now;
	assert_int_equal(msg_decode_push(b.data, b.len, NULL, &d), TLY_OK);
	assert_int_equal(d.n, l->max_changes);
	if (j_peak - before >= 8 * b.len)
		fail_msg("jansson peak %zu for %zu bytes", j_peak - before, b.len);
	msg_push_clear(&d);
	free_run(&r);
	buf_free(&b);

	/* 65 fields. */
	mk_run(&r, 1, 1, 0);
	encode_push_of(&r, &b);
	struct buf f;
	buf_init(&f, 1 << 20);
	for (size_t i = 0; i < l->max_fields + 1 - 2; i++)
		assert_int_equal(buf_addf(&f, "\"f%zu\":%zu,", i, i), TLY_OK);
	char *s = replace(b.data, "\"fields\":{", "\"fields\":{\x01");
	char *t = replace(s, "\x01", f.data);
	assert_int_equal(msg_decode_push(t, strlen(t), NULL, &d), TLY_E_TOO_MANY);
	free(s);
	free(t);
	buf_free(&f);

	/* A text one byte over, raw and escaped. */
	size_t over = l->max_field_bytes + 1;
	char *big = malloc(2 * over + 16);
	assert_non_null(big);
	big[0] = '"';
	memset(big + 1, 'x', over);
	strcpy(big + 1 + over, "\"");
	s = replace(b.data, "\"doing\"", big);
	assert_int_equal(msg_decode_push(s, strlen(s), NULL, &d), TLY_E_FIELD_TOO_LONG);
	free(s);
	big[over] = '"';
	big[over + 1] = '\0';
	s = replace(b.data, "\"doing\"", big); /* exactly the limit: only the chain breaks */
	assert_int_equal(msg_decode_push(s, strlen(s), NULL, &d), TLY_E_CHAIN);
	free(s);
	free(big);

	/* A value too long for a field after unescaping (\n is one byte). */
	size_t esc = l->max_field_bytes / 2 + 1;
	big = malloc(2 * esc + 4);
	big[0] = '"';
	for (size_t i = 0; i < esc; i++)
		memcpy(big + 1 + 2 * i, "\\n", 2);
	strcpy(big + 1 + 2 * esc, "\"");
	s = replace(b.data, "\"doing\"", big);
	assert_int_equal(msg_decode_push(s, strlen(s), NULL, &d), TLY_E_CHAIN); /* fits */
	free(s);
	free(big);
	free_run(&r);
	buf_free(&b);

	/* A lower configured limit is honoured too. */
	struct limits low;
	limits_default(&low);
	low.max_changes = 2;
	mk_run(&r, 3, 1, 0);
	encode_push_of(&r, &b);
	assert_int_equal(msg_decode_push(b.data, b.len, &low, &d), TLY_E_TOO_MANY);
	assert_int_equal(msg_decode_push(b.data, b.len, NULL, &d), TLY_OK);
	msg_push_clear(&d);
	free_run(&r);
	buf_free(&b);
}

/* Many small values in shallow arrays: within depth and per-container
 * counts, but more values than any message holds. Refused by the scan,
 * before jansson would have built millions of nodes. */
static void test_value_amplification(void **state)
{
	(void)state;
	const size_t rows = 800, cols = 4999;
	size_t cap = 64 + rows * (2 * cols + 4);
	char *s = malloc(cap);
	assert_non_null(s);
	size_t k = (size_t)sprintf(s, "{\"v\":1,\"type\":\"push\",\"x\":[");
	for (size_t r = 0; r < rows; r++) {
		s[k++] = r ? ',' : '[';
		if (r)
			s[k++] = '[';
		for (size_t c = 0; c < cols; c++) {
			s[k++] = '0';
			s[k++] = ',';
		}
		s[k - 1] = ']';
	}
	k += (size_t)sprintf(s + k, "]}");
	j_reset();
	assert_int_equal(decode(PUSH, s, k, NULL), TLY_E_TOO_MANY);
	assert_int_equal(j_peak, j_now);
	assert_int_equal(decode(PEEK, s, k, NULL), TLY_E_TOO_MANY);
	free(s);
}

/* Every jansson allocation failing in turn: an error or the very message
 * sent, never a crash, a leak (ASan and LSan watch) or a value altered.
 * jansson drops bytes when an allocation fails mid-token (its issue #362);
 * msg_parse's tree check must turn that into an error. push and
 * pull_answer are read without jansson (issue 8): they decode whole while
 * every jansson allocation fails; msg_peek (of that push) and push_answer
 * still go through jansson and take the failures. */
static void test_alloc_failures(void **state)
{
	(void)state;
	struct run r;
	struct buf b;
	mk_run(&r, 3, 41, 1);
	encode_push_of(&r, &b);
	size_t pn, an, n;
	char *page = base_of(PULL_ANSWER, &pn);
	char *answer = base_of(PUSH_ANSWER, &an);
	struct change **want = mk_page(&n);
	struct msg_push p;
	struct msg_pull_answer a;

	j_reset();
	j_fail_at = 0;
	assert_int_equal(msg_decode_push(b.data, b.len, NULL, &p), TLY_OK);
	assert_int_equal(msg_decode_pull_answer(page, pn, NULL, &a), TLY_OK);
	assert_int_equal(j_calls, 0); /* not one jansson allocation */
	j_fail_at = -1;
	assert_int_equal(p.n, 3);
	assert_changes_equal(r.cs, p.changes, 3);
	assert_int_equal(a.n, n);
	assert_changes_equal(want, a.changes, n);
	msg_push_clear(&p);
	msg_pull_answer_clear(&a);

	int failures = 0;
	for (long k = 0;; k++) {
		struct msg_push_answer pa;
		uint32_t v = 0;
		enum msg_type t = 0;
		j_reset();
		j_fail_at = k;
		int rc1 = msg_peek(b.data, b.len, NULL, &v, &t);
		j_calls = 0;
		int rc2 = msg_decode_push_answer(answer, an, NULL, &pa);
		j_fail_at = -1;
		/* jansson reports most of its allocation failures as syntax
		 * errors, which message.c can only pass on as bad_json. */
		if (rc1 != TLY_OK && rc1 != TLY_E_NOMEM && rc1 != TLY_E_BAD_JSON)
			fail_msg("peek, allocation %ld failing: %s", k, error_name(rc1));
		if (rc2 != TLY_OK && rc2 != TLY_E_NOMEM && rc2 != TLY_E_BAD_JSON)
			fail_msg("push answer, allocation %ld failing: %s", k, error_name(rc2));
		if (rc1 == TLY_OK) {
			assert_int_equal(v, PROTOCOL_VERSION);
			assert_int_equal(t, MSG_PUSH);
		}
		if (rc2 == TLY_OK) {
			struct buf re;
			buf_init(&re, 1 << 20);
			assert_int_equal(msg_encode_push_answer(&pa, &re), TLY_OK);
			assert_int_equal(re.len, an);
			assert_memory_equal(re.data, answer, an);
			buf_free(&re);
		}
		msg_push_answer_clear(&pa);
		failures += rc1 != TLY_OK;
		if (rc1 == TLY_OK && rc2 == TLY_OK)
			break;
		assert_true(k < 100000);
	}
	assert_true(failures > 10);
	for (size_t i = 0; i < n; i++)
		change_free(want[i]);
	free(want);
	free(page);
	free(answer);
	free_run(&r);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_push_round_trip),
		cmocka_unit_test(test_encoders_refuse),
		cmocka_unit_test(test_push_answer_round_trip),
		cmocka_unit_test(test_pull_round_trip),
		cmocka_unit_test(test_pull_answer_round_trip),
		cmocka_unit_test(test_error_round_trip),
		cmocka_unit_test(test_peek),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_hostile_shapes),
		cmocka_unit_test(test_declared_size),
		cmocka_unit_test(test_gzip_bomb_message),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_value_amplification),
		cmocka_unit_test(test_alloc_failures),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
