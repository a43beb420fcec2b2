/*
 * Golden vectors for messages: tests/vectors/msg_*.json hold the exact wire
 * bytes of each message type, and tests/vectors/messages.json what a
 * receiver must decode from them (every change's canonical bytes, prev and
 * hash). This test rebuilds each message from the table below and demands
 * the same bytes, decodes each file and demands the same hashes, and
 * re-encodes what it decoded, so the wire format cannot drift in either
 * direction without failing here.
 *
 * TALLY_WRITE_VECTORS=1 instead (re)writes the files from the table. That
 * was done once; the files are the fixed truth, and rewriting them is a
 * protocol change (a new "v"), not a fix.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "protocol/chain.h"
#include "protocol/change.h"
#include "protocol/compress.h"
#include "protocol/error.h"
#include "protocol/hlc.h"
#include "protocol/message.h"

#define VDIR TALLY_VECTORS_DIR "/"
#define MANIFEST VDIR "messages.json"

/* 2026-03-31 09:00:00 in Beijing */
#define MS0 UINT64_C(1774918800000)
#define VILLAGE "v01-lijiacun"
#define TOWN "town-xiangzhen"
#define EPOCH "7k2m9q4x"
/* The village's clock jumped a day ahead after its first change; the
 * server receives the push two hours after MS0 and stamps seq 2 with its
 * own time (PROTOCOL.md §6 rule 2). */
#define DAY UINT64_C(86400000)
#define SERVER_MS (MS0 + 7200000)
#define DEVICE_MS (MS0 + DAY + 5)
#define EFF2 hlc_make(SERVER_MS, 0)

/* ---- the source of the vectors ------------------------------------------- */

static const char measures[] =
	"对村内主干道破损路面进行硬化修复，设置警示标志；举一反三，排查𠮷祥组等三个村民小组的同类问题，"
	"建立道路巡查台账，每月巡查一次并留存照片。";
static const char problem[] =
	"2025年第四轮巡察反馈：村内主干道年久失修，雨天积水严重，群众反映强烈，"
	"村“两委”未及时研究解决（巡察〔2025〕17号）。";
static const char note_seq3[] = "完成第一段\"主干道\"硬化（约320米）\n第二段待验收\t📋";

static struct change *mk(const char *site, uint64_t seq, uint64_t hlc, const char *kind,
			 const char *id)
{
	struct change *c = NULL;
	assert_int_equal(change_new(&c, CHANGE_SCHEMA_VERSION, site, seq, hlc, kind, id), TLY_OK);
	return c;
}

static void text(struct change *c, const char *name, const char *v)
{
	assert_int_equal(change_set_text(c, name, v, strlen(v), NULL), TLY_OK);
}

static void num(struct change *c, const char *name, int64_t v)
{
	assert_int_equal(change_set_int(c, name, v, NULL), TLY_OK);
}

/* The village's first three changes: a new task, a progress update, a note
 * with characters that must be escaped and a cleared deadline. */
static void village_changes(struct change *cs[3])
{
	cs[0] = mk(VILLAGE, 1, hlc_make(MS0, 0), "task", "t7f3a9c21");
	text(cs[0], "problem", problem);
	text(cs[0], "measures", measures);
	text(cs[0], "village", VILLAGE);
	text(cs[0], "owner", "李明");
	text(cs[0], "leader", "王建国");
	text(cs[0], "deadline", "2026-06-30");
	text(cs[0], "status", "todo");
	num(cs[0], "progress", 0);
	cs[1] = mk(VILLAGE, 2, hlc_make(MS0 + DAY, 0), "task", "t7f3a9c21");
	text(cs[1], "status", "doing");
	num(cs[1], "progress", 40);
	cs[2] = mk(VILLAGE, 3, hlc_make(MS0 + DAY, 1), "task", "t7f3a9c21");
	text(cs[2], "note", note_seq3);
	assert_int_equal(change_set_null(cs[2], "deadline", NULL), TLY_OK);
	num(cs[2], "progress", 60);
	assert_int_equal(chain_link_run(cs, 3, chain_genesis, NULL), TLY_OK);
}

static void build_push(struct buf *out, struct change *cs[3])
{
	struct msg_push m = {.changes = cs, .n = 3, .device_ms = DEVICE_MS, .queue = 0};
	strcpy(m.site, VILLAGE);
	memcpy(m.prev, chain_genesis, CHANGE_HASH_LEN);
	memcpy(m.head, change_hash(cs[2]), CHANGE_HASH_LEN);
	assert_int_equal(msg_encode_push(&m, out), TLY_OK);
}

static void build_push_answer(struct buf *out)
{
	struct push_result r[3] = {
		{.seq = 1, .status = PUSH_APPLIED},
		{.seq = 2, .status = PUSH_APPLIED, .eff = EFF2},
		{.seq = 3, .status = PUSH_REJECTED, .code = TLY_E_FORBIDDEN,
		 .reason = (char *)"村级账号不能取消整改时限；如需延期，请提交延期申请"},
	};
	struct msg_push_answer m = {.epoch = EPOCH, .server_ms = SERVER_MS,
				    .offset_ms = (int64_t)SERVER_MS - (int64_t)DEVICE_MS, .acked = 3,
				    .results = r, .n = 3};
	assert_int_equal(msg_encode_push_answer(&m, out), TLY_OK);
}

static void build_pull(struct buf *out)
{
	struct msg_pull m = {.epoch = EPOCH, .cursor = 96, .limit = 200};
	assert_int_equal(msg_encode_pull(&m, out), TLY_OK);
}

/* The township's seq 12 and 13 (so a page starting mid-chain), then the
 * village's 1 and 2 as the server holds them (seq 2 with its eff). */
static size_t page_changes(struct change **page)
{
	struct change *town[13];
	struct change *vil[3];
	for (uint64_t s = 1; s <= 13; s++) {
		char id[16];
		snprintf(id, sizeof id, "n%04llu", (unsigned long long)s);
		town[s - 1] = mk(TOWN, s, hlc_make(MS0 - 3600000 + s * 1000, 0), "notice", id);
		text(town[s - 1], "level", s == 13 ? "warning" : "reminder");
		text(town[s - 1], "text",
		     s == 13 ? "关于加快整改进度的督办通知：请李家村于6月30日前完成𠮷祥组道路硬化，逾期将约谈提醒。"
			     : "请按时报送整改进展。");
		text(town[s - 1], "village", VILLAGE);
	}
	num(town[12], "due_days", 10);
	assert_int_equal(chain_link_run(town, 13, chain_genesis, NULL), TLY_OK);
	village_changes(vil);
	change_set_eff(vil[1], EFF2);
	page[0] = town[11];
	page[1] = town[12];
	page[2] = vil[0];
	page[3] = vil[1];
	for (size_t i = 0; i < 11; i++)
		change_free(town[i]);
	change_free(vil[2]);
	return 4;
}

static void build_pull_answer(struct buf *out, struct change **page, size_t n)
{
	struct msg_pull_answer m = {.epoch = EPOCH, .server_ms = SERVER_MS + 60000,
				    .changes = page, .n = n, .next = 118, .more = 0};
	assert_int_equal(msg_encode_pull_answer(&m, out), TLY_OK);
}

static void build_error(struct buf *out)
{
	struct msg_error m = {.code = TLY_E_SEQ_GAP, .expected = 4};
	assert_int_equal(msg_encode_error(&m, out), TLY_OK);
}

static void build_error_version(struct buf *out)
{
	struct msg_error m = {.code = TLY_E_VERSION, .version = PROTOCOL_VERSION,
			      .retry_after = 3600};
	assert_int_equal(msg_encode_error(&m, out), TLY_OK);
}

/* ---- files ----------------------------------------------------------------- */

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot read %s (run with TALLY_WRITE_VECTORS=1 once to create it)", path);
	struct buf b;
	buf_init(&b, 16u << 20);
	char tmp[4096];
	size_t k;
	while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
		assert_int_equal(buf_add(&b, tmp, k), TLY_OK);
	fclose(f);
	if (!b.data)
		assert_int_equal(buf_add(&b, "", 0), TLY_OK);
	return buf_detach(&b, n);
}

static void spit(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static int writing(void)
{
	const char *w = getenv("TALLY_WRITE_VECTORS");
	return w && strcmp(w, "1") == 0;
}

/* Compares built bytes with the file (or writes the file). */
static void check_bytes(const char *name, const struct buf *b)
{
	char path[512];
	snprintf(path, sizeof path, VDIR "%s", name);
	if (writing()) {
		spit(path, b->data, b->len);
		return;
	}
	size_t n;
	char *want = slurp(path, &n);
	if (n != b->len || memcmp(want, b->data, n) != 0)
		fail_msg("%s: the encoder no longer writes the vector's bytes\nwant %.*s\ngot  %.*s",
			 name, (int)n, want, (int)b->len, b->data);
	free(want);
}

static json_t *change_entry(const struct change *c)
{
	struct buf canon;
	char hex_prev[65], hex_hash[65];
	buf_init(&canon, 1 << 20);
	assert_int_equal(change_encode_canonical(c, &canon), TLY_OK);
	char *hex = malloc(2 * canon.len + 1);
	for (size_t i = 0; i < canon.len; i++)
		sprintf(hex + 2 * i, "%02x", (unsigned char)canon.data[i]);
	hex[2 * canon.len] = '\0';
	chain_hex(change_prev(c), hex_prev);
	chain_hex(change_hash(c), hex_hash);
	json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:s}", "site", change_site(c), "seq",
			      (json_int_t)change_seq(c), "canonical", hex, "prev", hex_prev, "hash",
			      hex_hash);
	assert_non_null(o);
	free(hex);
	buf_free(&canon);
	return o;
}

/* The manifest's entry for a file, or NULL. */
static json_t *manifest_entry(json_t *manifest, const char *file)
{
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(manifest, "vectors"), i, v) {
		if (strcmp(json_string_value(json_object_get(v, "file")), file) == 0)
			return v;
	}
	fail_msg("%s is not in messages.json", file);
	return NULL;
}

/* Decoded changes against the manifest: canonical bytes, prev, hash. */
static void check_changes(json_t *entry, struct change *const *cs, size_t n)
{
	json_t *want = json_object_get(entry, "changes");
	assert_int_equal(json_array_size(want), n);
	for (size_t i = 0; i < n; i++) {
		json_t *got = change_entry(cs[i]);
		if (!json_equal(got, json_array_get(want, i))) {
			char *g = json_dumps(got, JSON_COMPACT);
			fail_msg("%s change %zu decodes differently: %s",
				 json_string_value(json_object_get(entry, "file")), i, g);
		}
		json_decref(got);
	}
}

/* ---- the test ------------------------------------------------------------- */

static void test_vectors(void **state)
{
	(void)state;
	struct change *vil[3];
	struct change *page[4];
	struct buf b;
	json_t *manifest = NULL;
	size_t n, np;
	char *s;

	village_changes(vil);
	np = page_changes(page);
	if (!writing()) {
		json_error_t e;
		manifest = json_load_file(MANIFEST, 0, &e);
		if (!manifest)
			fail_msg("%s: %s", MANIFEST, e.text);
	}

	/* push */
	buf_init(&b, 1 << 20);
	build_push(&b, vil);
	check_bytes("msg_push.json", &b);
	if (writing()) {
		struct buf gz;
		buf_init(&gz, 1 << 20);
		assert_int_equal(compress_gzip(b.data, b.len, &gz), TLY_OK);
		spit(VDIR "msg_push.json.gz", gz.data, gz.len);
		buf_free(&gz);
	} else {
		struct msg_push d;
		struct buf re;
		s = slurp(VDIR "msg_push.json", &n);
		assert_int_equal(msg_decode_push(s, n, NULL, &d), TLY_OK);
		check_changes(manifest_entry(manifest, "msg_push.json"), d.changes, d.n);
		buf_init(&re, 1 << 20);
		assert_int_equal(msg_encode_push(&d, &re), TLY_OK);
		assert_int_equal(re.len, n);
		assert_memory_equal(re.data, s, n);
		msg_push_clear(&d);
		buf_free(&re);

		/* One character of one text changed, head kept (PROTOCOL.md §15.2). */
		char *at = strstr(s, "道路");
		assert_non_null(at);
		memcpy(at + 3, "理", 3);
		assert_int_equal(msg_decode_push(s, n, NULL, &d), TLY_E_CHAIN);
		memcpy(at + 3, "路", 3);

		/* The gzip'd body inflates to the same bytes. */
		size_t gn;
		char *gz = slurp(VDIR "msg_push.json.gz", &gn);
		buf_init(&re, 1 << 20);
		assert_int_equal(compress_inflate(gz, gn, &re), TLY_OK);
		assert_int_equal(re.len, n);
		assert_memory_equal(re.data, s, n);
		buf_free(&re);
		free(gz);
		free(s);
	}
	buf_free(&b);

	/* pull_answer */
	buf_init(&b, 1 << 20);
	build_pull_answer(&b, page, np);
	check_bytes("msg_pull_answer.json", &b);
	if (!writing()) {
		struct msg_pull_answer d;
		struct buf re;
		s = slurp(VDIR "msg_pull_answer.json", &n);
		assert_int_equal(msg_decode_pull_answer(s, n, NULL, &d), TLY_OK);
		check_changes(manifest_entry(manifest, "msg_pull_answer.json"), d.changes, d.n);
		assert_int_equal(change_eff(d.changes[3]), EFF2);
		buf_init(&re, 1 << 20);
		assert_int_equal(msg_encode_pull_answer(&d, &re), TLY_OK);
		assert_int_equal(re.len, n);
		assert_memory_equal(re.data, s, n);
		msg_pull_answer_clear(&d);
		buf_free(&re);
		free(s);
	}
	buf_free(&b);

	/* push_answer, pull, error: bytes both ways. */
	struct {
		const char *file;
		void (*build)(struct buf *);
	} simple[] = {
		{"msg_push_answer.json", build_push_answer},
		{"msg_pull.json", build_pull},
		{"msg_error.json", build_error},
		{"msg_error_version.json", build_error_version},
	};
	for (size_t k = 0; k < sizeof simple / sizeof simple[0]; k++) {
		buf_init(&b, 1 << 20);
		simple[k].build(&b);
		check_bytes(simple[k].file, &b);
		if (!writing()) {
			struct buf re;
			buf_init(&re, 1 << 20);
			char path[512];
			snprintf(path, sizeof path, VDIR "%s", simple[k].file);
			s = slurp(path, &n);
			enum msg_type t;
			uint32_t v;
			assert_int_equal(msg_peek(s, n, NULL, &v, &t), TLY_OK);
			if (t == MSG_PUSH_ANSWER) {
				struct msg_push_answer d;
				assert_int_equal(msg_decode_push_answer(s, n, NULL, &d), TLY_OK);
				assert_int_equal(msg_encode_push_answer(&d, &re), TLY_OK);
				msg_push_answer_clear(&d);
			} else if (t == MSG_PULL) {
				struct msg_pull d;
				assert_int_equal(msg_decode_pull(s, n, NULL, &d), TLY_OK);
				assert_int_equal(msg_encode_pull(&d, &re), TLY_OK);
			} else {
				struct msg_error d;
				assert_int_equal(t, MSG_ERROR);
				assert_int_equal(msg_decode_error(s, n, NULL, &d), TLY_OK);
				assert_int_equal(msg_encode_error(&d, &re), TLY_OK);
				msg_error_clear(&d);
			}
			assert_int_equal(re.len, n);
			assert_memory_equal(re.data, s, n);
			buf_free(&re);
			free(s);
		}
		buf_free(&b);
	}

	if (writing()) {
		json_t *vs = json_array();
		json_t *chs = json_array();
		for (size_t i = 0; i < 3; i++)
			json_array_append_new(chs, change_entry(vil[i]));
		json_array_append_new(
			vs, json_pack("{s:s, s:s, s:s, s:o}", "file", "msg_push.json", "type", "push",
				      "note",
				      "a village's first push: a new task (Chinese text with U+20BB7), a "
				      "progress update, a note with quotes, newline, tab, U+1F4CB and a "
				      "cleared deadline; msg_push.json.gz is the same body gzip'd",
				      "changes", chs));
		chs = json_array();
		for (size_t i = 0; i < np; i++)
			json_array_append_new(chs, change_entry(page[i]));
		json_array_append_new(
			vs, json_pack("{s:s, s:s, s:s, s:o}", "file", "msg_pull_answer.json", "type",
				      "pull_answer", "note",
				      "a page starting mid-chain (township seq 12 carries prev, 13 "
				      "omits it), then the village's seq 1 (prev = genesis, sent) and "
				      "2 (prev omitted, eff assigned by the server)",
				      "changes", chs));
		const char *rest[][3] = {
			{"msg_push_answer.json", "push_answer",
			 "answer to msg_push.json from a server two hours past MS0 while the village clock read a day ahead: applied, applied with the server's eff, rejected (forbidden) with a Chinese reason; offset_ms = server_ms - device_ms"},
			{"msg_pull.json", "pull", "a pull from cursor 96, 200 at most"},
			{"msg_error.json", "error", "seq_gap with expected; message is the code's Chinese text"},
			{"msg_error_version.json", "error",
			 "version_unsupported with the sender's highest version and retry_after"},
		};
		for (size_t k = 0; k < 4; k++)
			json_array_append_new(vs, json_pack("{s:s, s:s, s:s}", "file", rest[k][0],
							    "type", rest[k][1], "note",
							    rest[k][2]));
		json_t *m = json_pack("{s:o}", "vectors", vs);
		assert_int_equal(json_dump_file(m, MANIFEST, JSON_INDENT(2) | JSON_PRESERVE_ORDER),
				 0);
		json_decref(m);
	}
	json_decref(manifest);
	for (size_t i = 0; i < 3; i++)
		change_free(vil[i]);
	for (size_t i = 0; i < np; i++)
		change_free(page[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
