/*
 * Golden vectors for change records: tests/vectors/changes.json holds
 * changes with their canonical bytes and chain hashes. This test rebuilds
 * every change from its fields and demands the same bytes and hashes, so
 * the encoding cannot drift without this test failing.
 *
 * TALLY_WRITE_VECTORS=1 instead (re)writes the file from the table below.
 * That is done once; the written file is the fixed truth, and rewriting it
 * is a protocol change (a new magic or schema version), not a fix.
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
#include "protocol/error.h"
#include "protocol/hlc.h"

#define VECTORS_FILE TALLY_VECTORS_DIR "/changes.json"

/* ---- the source of the vectors (used only when writing) ------------------ */

struct vfield {
	const char *name;
	enum field_type type;
	int64_t i;
	const char *text;
};

struct vchange {
	const char *name;
	const char *note;
	uint64_t seq;
	uint64_t hlc;
	uint64_t eff;
	const char *kind;
	const char *id;
	struct vfield fields[8];
};

/* 2026-03-31 08:30:00 in Beijing */
#define MS0 UINT64_C(1774917000000)
/* hlc_make as a constant expression, for the static table */
#define HLC(ms, ctr) (((uint64_t)(ms) << HLC_COUNTER_BITS) | (ctr))

static const struct vchange vsrc[] = {
	{"new_task", "a village creates a task; the title is 156 characters (469 bytes) including U+20000, a 4-byte character",
	 1, HLC(MS0, 0), 0, "task", "T-20260331-0001",
	 {{"deadline", FIELD_TEXT, 0, "2026-06-30"},
	  {"problem_id", FIELD_TEXT, 0, "P-2026-XC-017"},
	  {"progress", FIELD_INT, 0, NULL},
	  {"responsible_person", FIELD_TEXT, 0, "王建国"},
	  {"status", FIELD_TEXT, 0, "todo"},
	  {"title", FIELD_TEXT, 0,
	   "村内主干道路面破损严重，雨季积水，群众反映强烈。整改措施：一是对破损路段全面排查，"
	   "建立问题清单；二是筹措资金，分段实施硬化修复；三是完善排水沟渠，防止雨水倒灌；"
	   "四是建立日常巡查养护制度，明确专人负责，确保长效管理。𠀀号地块占道问题一并清理，"
	   "举一反三排查其他村组。同时建立整改台账，按月报送进展情况，接受群众监督。"},
	  {NULL, 0, 0, NULL}}},
	{"status_progress", "the same task moves to doing at 40 percent; counter 1, the second stamp issued in that millisecond",
	 2, HLC(MS0 + 3600000, 1), 0, "task", "T-20260331-0001",
	 {{"progress", FIELD_INT, 40, NULL}, {"status", FIELD_TEXT, 0, "doing"}, {NULL, 0, 0, NULL}}},
	{"null_field", "the responsible person is cleared; eff is set by a server and is not hashed",
	 3, HLC(MS0 + 7200000, 0), HLC(MS0 + 7260000, 0), "task", "T-20260331-0001",
	 {{"responsible_person", FIELD_NULL, 0, NULL}, {NULL, 0, 0, NULL}}},
	{"negative_int", "a deadline moved 14 days earlier, as a negative integer",
	 4, HLC(MS0 + 86400000, 0), 0, "task", "T-20260331-0001",
	 {{"deadline", FIELD_TEXT, 0, "2026-06-16"},
	  {"deadline_shift_days", FIELD_INT, -14, NULL},
	  {NULL, 0, 0, NULL}}},
};

#define VSITE "cun-01"

/* ---- helpers ----------------------------------------------------------- */

static char *hex_of(const void *p, size_t n)
{
	static const char d[] = "0123456789abcdef";
	const unsigned char *b = p;
	char *s = malloc(2 * n + 1);
	assert_non_null(s);
	for (size_t i = 0; i < n; i++) {
		s[2 * i] = d[b[i] >> 4];
		s[2 * i + 1] = d[b[i] & 15];
	}
	s[2 * n] = '\0';
	return s;
}

static const char *type_name(enum field_type t)
{
	return t == FIELD_NULL ? "null" : t == FIELD_INT ? "int" : "text";
}

static void write_vectors_test(void **state)
{
	(void)state;
	json_t *root = json_object(), *arr = json_array();
	uint8_t prev[CHANGE_HASH_LEN];
	memcpy(prev, chain_genesis, sizeof prev);
	json_object_set_new(root, "description",
			    json_string("Tally change records: canonical encoding and hash chain "
					"(PROTOCOL.md sections 2-3). Generated once; do not edit."));
	json_object_set_new(root, "site", json_string(VSITE));
	for (size_t k = 0; k < sizeof vsrc / sizeof vsrc[0]; k++) {
		const struct vchange *v = &vsrc[k];
		struct change *c = NULL;
		assert_int_equal(change_new(&c, CHANGE_SCHEMA_VERSION, VSITE, v->seq, v->hlc, v->kind, v->id),
				 TLY_OK);
		json_t *fields = json_array();
		for (const struct vfield *f = v->fields; f->name; f++) {
			json_t *jf = json_object();
			json_object_set_new(jf, "name", json_string(f->name));
			json_object_set_new(jf, "type", json_string(type_name(f->type)));
			if (f->type == FIELD_INT) {
				assert_int_equal(change_set_int(c, f->name, f->i, NULL), TLY_OK);
				json_object_set_new(jf, "value", json_integer(f->i));
			} else if (f->type == FIELD_TEXT) {
				assert_int_equal(change_set_text(c, f->name, f->text, strlen(f->text), NULL),
						 TLY_OK);
				json_object_set_new(jf, "value", json_string(f->text));
			} else {
				assert_int_equal(change_set_null(c, f->name, NULL), TLY_OK);
				json_object_set_new(jf, "value", json_null());
			}
			json_array_append_new(fields, jf);
		}
		change_set_eff(c, v->eff);
		struct buf b;
		buf_init(&b, 1 << 20);
		assert_int_equal(change_encode_canonical(c, &b), TLY_OK);
		assert_int_equal(chain_link(c, prev), TLY_OK);

		json_t *jv = json_object();
		json_object_set_new(jv, "name", json_string(v->name));
		json_object_set_new(jv, "note", json_string(v->note));
		json_object_set_new(jv, "schema", json_integer(CHANGE_SCHEMA_VERSION));
		json_object_set_new(jv, "site", json_string(VSITE));
		json_object_set_new(jv, "seq", json_integer((json_int_t)v->seq));
		json_object_set_new(jv, "hlc", json_integer((json_int_t)v->hlc));
		json_object_set_new(jv, "hlc_ms", json_integer((json_int_t)hlc_ms(v->hlc)));
		json_object_set_new(jv, "hlc_counter", json_integer(hlc_counter(v->hlc)));
		if (v->eff)
			json_object_set_new(jv, "eff", json_integer((json_int_t)v->eff));
		json_object_set_new(jv, "kind", json_string(v->kind));
		json_object_set_new(jv, "id", json_string(v->id));
		json_object_set_new(jv, "fields", fields);
		char *h;
		json_object_set_new(jv, "canonical_len", json_integer((json_int_t)b.len));
		h = hex_of(b.data, b.len);
		json_object_set_new(jv, "canonical", json_string(h));
		free(h);
		h = hex_of(change_prev(c), CHANGE_HASH_LEN);
		json_object_set_new(jv, "prev", json_string(h));
		free(h);
		h = hex_of(change_hash(c), CHANGE_HASH_LEN);
		json_object_set_new(jv, "hash", json_string(h));
		free(h);
		json_array_append_new(arr, jv);

		memcpy(prev, change_hash(c), CHANGE_HASH_LEN);
		buf_free(&b);
		change_free(c);
	}
	json_object_set_new(root, "changes", arr);
	assert_int_equal(json_dump_file(root, VECTORS_FILE, JSON_INDENT(2) | JSON_PRESERVE_ORDER), 0);
	json_decref(root);
	print_message("wrote %s\n", VECTORS_FILE);
}

/* ---- the check ---------------------------------------------------------- */

static const char *jstr(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		fail_msg("vector member \"%s\" missing or not a string", key);
	return json_string_value(v);
}

static json_int_t jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		fail_msg("vector member \"%s\" missing or not an integer", key);
	return json_integer_value(v);
}

static unsigned char *unhex(const char *s, size_t *n)
{
	size_t len = strlen(s);
	assert_int_equal(len % 2, 0);
	unsigned char *b = malloc(len / 2 + 1);
	assert_non_null(b);
	for (size_t i = 0; i < len / 2; i++) {
		unsigned int x;
		assert_int_equal(sscanf(s + 2 * i, "%2x", &x), 1);
		b[i] = (unsigned char)x;
	}
	*n = len / 2;
	return b;
}

static void test_vectors(void **state)
{
	(void)state;
	json_error_t err;
	json_t *root = json_load_file(VECTORS_FILE, JSON_REJECT_DUPLICATES, &err);
	if (!root)
		fail_msg("%s: %s (line %d)", VECTORS_FILE, err.text, err.line);
	json_t *arr = json_object_get(root, "changes");
	assert_true(json_is_array(arr));
	assert_true(json_array_size(arr) >= 4);

	uint8_t prev[CHANGE_HASH_LEN];
	memcpy(prev, chain_genesis, sizeof prev);
	int saw_4byte = 0, saw_null = 0, saw_negative = 0, saw_eff = 0;
	struct change *run[16];
	size_t nrun = 0;
	size_t i;
	json_t *jv;
	json_array_foreach(arr, i, jv) {
		const char *name = jstr(jv, "name");
		struct change *c = NULL;
		assert_int_equal(change_new(&c, (uint32_t)jint(jv, "schema"), jstr(jv, "site"),
					    (uint64_t)jint(jv, "seq"), (uint64_t)jint(jv, "hlc"),
					    jstr(jv, "kind"), jstr(jv, "id")),
				 TLY_OK);
		assert_int_equal(hlc_ms(change_hlc(c)), (uint64_t)jint(jv, "hlc_ms"));
		assert_int_equal(hlc_counter(change_hlc(c)), (uint64_t)jint(jv, "hlc_counter"));
		json_t *fields = json_object_get(jv, "fields"), *jf;
		size_t k;
		json_array_foreach(fields, k, jf) {
			const char *fname = jstr(jf, "name"), *type = jstr(jf, "type");
			json_t *val = json_object_get(jf, "value");
			if (strcmp(type, "int") == 0) {
				assert_true(json_is_integer(val));
				saw_negative |= json_integer_value(val) < 0;
				assert_int_equal(change_set_int(c, fname, json_integer_value(val), NULL), TLY_OK);
			} else if (strcmp(type, "text") == 0) {
				assert_true(json_is_string(val));
				const char *t = json_string_value(val);
				for (const unsigned char *p = (const unsigned char *)t; *p; p++)
					saw_4byte |= *p >= 0xF0;
				assert_int_equal(change_set_text(c, fname, t, json_string_length(val), NULL),
						 TLY_OK);
			} else {
				assert_string_equal(type, "null");
				assert_true(json_is_null(val));
				saw_null = 1;
				assert_int_equal(change_set_null(c, fname, NULL), TLY_OK);
			}
		}
		if (json_object_get(jv, "eff")) {
			change_set_eff(c, (uint64_t)jint(jv, "eff"));
			saw_eff = 1;
		}

		struct buf b;
		buf_init(&b, 1 << 20);
		assert_int_equal(change_encode_canonical(c, &b), TLY_OK);
		size_t wn;
		unsigned char *want = unhex(jstr(jv, "canonical"), &wn);
		if (wn != b.len || memcmp(want, b.data, wn) != 0) {
			char *got = hex_of(b.data, b.len);
			fail_msg("vector %s: canonical bytes differ\n got  %s\n want %s", name, got,
				 jstr(jv, "canonical"));
		}
		assert_int_equal((json_int_t)b.len, jint(jv, "canonical_len"));

		/* decoding the stored bytes gives the same change back */
		struct change *d = NULL;
		assert_int_equal(change_decode_canonical(want, wn, NULL, &d), TLY_OK);
		change_set_eff(d, change_eff(c));
		assert_true(change_equal(c, d));
		change_free(d);

		uint8_t vprev[CHANGE_HASH_LEN], vhash[CHANGE_HASH_LEN], got[CHANGE_HASH_LEN];
		assert_int_equal(chain_unhex(jstr(jv, "prev"), vprev), TLY_OK);
		assert_int_equal(chain_unhex(jstr(jv, "hash"), vhash), TLY_OK);
		assert_memory_equal(vprev, prev, CHANGE_HASH_LEN);
		assert_int_equal(chain_hash(c, prev, got), TLY_OK);
		if (memcmp(got, vhash, CHANGE_HASH_LEN) != 0) {
			char hex[2 * CHANGE_HASH_LEN + 1];
			chain_hex(got, hex);
			fail_msg("vector %s: hash %s, file says %s", name, hex, jstr(jv, "hash"));
		}
		memcpy(prev, got, CHANGE_HASH_LEN);
		assert_true(nrun < sizeof run / sizeof run[0]);
		run[nrun++] = c;
		free(want);
		buf_free(&b);
	}
	/* the whole file is one chain: verify it the way a receiver does */
	assert_int_equal(chain_link_run(run, nrun, chain_genesis, prev), TLY_OK);
	for (size_t k = 0; k < nrun; k++)
		change_free(run[k]);
	assert_true(saw_4byte && saw_null && saw_negative && saw_eff);
	json_decref(root);
}

int main(void)
{
	const char *w = getenv("TALLY_WRITE_VECTORS");
	if (w && strcmp(w, "1") == 0) {
		const struct CMUnitTest gen[] = {cmocka_unit_test(write_vectors_test)};
		return cmocka_run_group_tests(gen, NULL, NULL);
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
