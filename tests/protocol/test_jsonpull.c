/*
 * jsonpull, and the push and pull_answer decoders built on it: the reader
 * refuses exactly what jansson's parse refused (repeated keys, numbers out
 * of range), with the same code and the first in the text winning; it
 * unescapes as jansson does; and msg_decode_push / msg_decode_pull_answer
 * agree with the jansson decoders they replaced (tests/fuzz/msg_jansson.h)
 * on the vectors in every member order and under edits that put faults in
 * every order (tests/fuzz/msg_diff.h does the comparing).
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

#include "protocol/buf.h"
#include "protocol/error.h"
#include "protocol/jsoncheck.h"
#include "protocol/jsonpull.h"
#include "protocol/limits.h"
#include "protocol/message.h"
#include "tests/fuzz/msg_diff.h"

/* ---- the reader against jansson ---------------------------------------- */

/* Reads the whole value of a text the scan passes. */
static int pull_verdict(const char *s, size_t n)
{
	struct jsonpull j;
	struct jsonpull_value v;
	int rc = jsoncheck_scan(s, n, NULL);

	if (rc != TLY_OK)
		fail_msg("the scan refuses %.80s: %s", s, error_name(rc));
	jsonpull_init(&j, s, n);
	rc = jsonpull_value(&j, &v);
	if (rc == TLY_OK)
		rc = jsonpull_skip(&j, 0);
	jsonpull_clear(&j);
	return rc;
}

/* jansson as message.c called it, its errors as message.c named them. */
static int jansson_verdict(const char *s, size_t n)
{
	json_error_t e;
	json_t *j = json_loadb(s, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
	if (j) {
		json_decref(j);
		return TLY_OK;
	}
	switch (json_error_code(&e)) {
	case json_error_duplicate_key:
		return TLY_E_DUP_KEY;
	case json_error_numeric_overflow:
		return TLY_E_BAD_VALUE;
	default:
		return TLY_E_BAD_JSON;
	}
}

static void check_verdict(const char *s, size_t n, int want)
{
	int got = pull_verdict(s, n), ref = jansson_verdict(s, n);
	if (got != want || ref != want)
		fail_msg("%.200s: jsonpull %s, jansson %s, want %s", s, error_name(got),
			 error_name(ref), error_name(want));
}

static const struct {
	const char *text;
	int want;
} verdicts[] = {
	{"{}", TLY_OK},
	{"{\"a\":1,\"b\":2}", TLY_OK},
	{"{\"a\":1,\"a\":2}", TLY_E_DUP_KEY},
	{"{\"a\":1,\"\\u0061\":2}", TLY_E_DUP_KEY}, /* compared after unescaping */
	{"{\"\\/\":1,\"/\":2}", TLY_E_DUP_KEY},
	{"{\"\\ud83d\\ude00\":1,\"😀\":2}", TLY_E_DUP_KEY},
	{"{\"a\":1,\"A\":2,\"a \":3}", TLY_OK},
	{"{\"a\":{\"a\":1}}", TLY_OK}, /* one key per object */
	{"[{\"a\":1},{\"a\":1}]", TLY_OK},
	{"{\"a\":{\"b\":1},\"b\":{\"a\":1}}", TLY_OK},
	{"{\"a\":[{\"b\":1,\"b\":1}]}", TLY_E_DUP_KEY},
	{"[1,2,{\"x\":{\"y\":[{\"z\":1,\"z\":2}]}}]", TLY_E_DUP_KEY},
	{"9223372036854775807", TLY_OK},
	{"9223372036854775808", TLY_E_BAD_VALUE},
	{"-9223372036854775808", TLY_OK},
	{"-9223372036854775809", TLY_E_BAD_VALUE},
	{"99999999999999999999", TLY_E_BAD_VALUE},
	{"[0,-0,1,-1,1000000000000000000]", TLY_OK},
	{"1.5", TLY_OK},
	{"1e308", TLY_OK},
	{"1.7976931348623157e308", TLY_OK},
	{"1e309", TLY_E_BAD_VALUE},
	{"-1e309", TLY_E_BAD_VALUE},
	{"1e-400", TLY_OK}, /* underflow is not an overflow */
	{"0.000000000000000000000000001e-999", TLY_OK},
	{"[1e99999999999999999999]", TLY_E_BAD_VALUE},
	/* The first fault in the text wins. */
	{"{\"a\":1,\"a\":1e999}", TLY_E_DUP_KEY},
	{"{\"a\":1e999,\"a\":1}", TLY_E_BAD_VALUE},
	{"{\"a\":99999999999999999999,\"a\":1}", TLY_E_BAD_VALUE},
	{"[{\"a\":1,\"a\":2},1e999]", TLY_E_DUP_KEY},
	{"[1e999,{\"a\":1,\"a\":2}]", TLY_E_BAD_VALUE},
	{"{\"a\":{\"b\":1e999},\"a\":1}", TLY_E_BAD_VALUE},
	{"{\"a\":{\"b\":1},\"a\":1e999}", TLY_E_DUP_KEY},
};

static void test_verdicts(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof verdicts / sizeof verdicts[0]; k++)
		check_verdict(verdicts[k].text, strlen(verdicts[k].text), verdicts[k].want);
}

/*
 * Objects past the reader's linear comparing (it sorts their keys): n keys,
 * a repeat of key `of` placed at position `at` (or none), a number out of
 * range at position `big` (or none), a repeat in an inner object, all
 * inside an object of `outer` keys or not. Every combination agrees with
 * jansson, so the repeat found by sorting is reported exactly when it was
 * the first fault in the text.
 */
static char *many_keys(size_t n, long at, size_t of, long big, int esc, size_t *len)
{
	struct buf b;
	buf_init(&b, 1 << 24);
	assert_int_equal(buf_add_str(&b, "{"), TLY_OK);
	for (size_t i = 0, m = 0; i < n + 2; i++) {
		if ((long)i == at) {
			assert_int_equal(buf_addf(&b, esc ? "%s\"\\u006b%zu\":0" : "%s\"k%zu\":0",
						  m ? "," : "", of),
					 TLY_OK);
		} else if ((long)i == big) {
			assert_int_equal(buf_addf(&b, "%s\"big\":99999999999999999999", m ? "," : ""),
					 TLY_OK);
		} else if (i < n) {
			assert_int_equal(buf_addf(&b, "%s\"k%zu\":[%zu]", m ? "," : "", i, i), TLY_OK);
		} else {
			continue;
		}
		m++;
	}
	assert_int_equal(buf_add_str(&b, "}"), TLY_OK);
	return buf_detach(&b, len);
}

static void test_many_keys(void **state)
{
	(void)state;
	static const size_t sizes[] = {31, 32, 33, 34, 100, 4000};
	for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
		size_t n = sizes[si];
		long places[] = {-1, 0, 1, 31, 32, 33, (long)n / 2, (long)n - 1, (long)n, (long)n + 1};
		for (size_t a = 0; a < sizeof places / sizeof places[0]; a++) {
			for (size_t g = 0; g < sizeof places / sizeof places[0]; g++) {
				long at = places[a], big = places[g];
				if (at == big && at >= 0)
					continue;
				for (int esc = 0; esc < 2; esc++) {
					size_t len;
					char *s = many_keys(n, at, n > 5 ? n - 5 : 0, big, esc, &len);
					check_verdict(s, len, jansson_verdict(s, len));
					/* The same object inside a large one, and after a
					 * sibling, and followed by an out-of-range number. */
					struct buf w;
					buf_init(&w, 1 << 25);
					assert_int_equal(buf_add_str(&w, "{"), TLY_OK);
					for (size_t i = 0; i < 40; i++)
						assert_int_equal(buf_addf(&w, "\"o%zu\":1,", i), TLY_OK);
					assert_int_equal(buf_add_str(&w, "\"in\":"), TLY_OK);
					assert_int_equal(buf_add(&w, s, len), TLY_OK);
					assert_int_equal(buf_add_str(&w, ",\"o7\":1,\"z\":1e999}"),
							 TLY_OK);
					check_verdict(w.data, w.len, jansson_verdict(w.data, w.len));
					buf_free(&w);
					free(s);
				}
			}
		}
	}
}

/* Each value as jansson reads it: types, integers, unescaped strings. */
static void test_values(void **state)
{
	(void)state;
	const char *s = "[1,-0,\"a\\u00e9\\u4e2D\\ud83d\\ude00\\/\\n\\\"\\\\\\t\\b\\f\\r\",true,"
			"false,null,1.5,{\"k\\u0031\":\"\"},-9223372036854775808,\"中文 𠮷\"]";
	struct jsonpull j;
	struct jsonpull_value v;
	struct jsonpull_str key;
	json_error_t e;
	json_t *ref = json_loads(s, JSON_DECODE_ANY, &e);
	char out[64];
	int more;

	assert_non_null(ref);
	assert_int_equal(jsoncheck_scan(s, strlen(s), NULL), TLY_OK);
	jsonpull_init(&j, s, strlen(s));
	assert_int_equal(jsonpull_value(&j, &v), TLY_OK);
	assert_int_equal(v.type, JSONPULL_ARRAY);
	for (size_t i = 0;; i++) {
		assert_int_equal(jsonpull_element(&j, &more), TLY_OK);
		if (!more) {
			assert_int_equal(i, json_array_size(ref));
			break;
		}
		size_t d = jsonpull_depth(&j);
		json_t *r = json_array_get(ref, i);
		assert_int_equal(jsonpull_value(&j, &v), TLY_OK);
		switch (json_typeof(r)) {
		case JSON_INTEGER:
			assert_int_equal(v.type, JSONPULL_INT);
			assert_true(v.i == json_integer_value(r));
			break;
		case JSON_STRING: {
			size_t n = json_string_length(r);
			assert_int_equal(v.type, JSONPULL_STRING);
			assert_int_equal(jsonpull_str_copy(&v.s, NULL, 0), n);
			assert_int_equal(jsonpull_str_copy(&v.s, out, sizeof out), n);
			assert_memory_equal(out, json_string_value(r), n);
			/* Cut short, it says the whole length and writes no more. */
			memset(out, '#', sizeof out);
			assert_int_equal(jsonpull_str_copy(&v.s, out, 3), n);
			assert_memory_equal(out, json_string_value(r), 3);
			assert_int_equal(out[3], '#');
			break;
		}
		case JSON_TRUE:
			assert_int_equal(v.type, JSONPULL_TRUE);
			break;
		case JSON_FALSE:
			assert_int_equal(v.type, JSONPULL_FALSE);
			break;
		case JSON_NULL:
			assert_int_equal(v.type, JSONPULL_NULL);
			break;
		case JSON_REAL:
			assert_int_equal(v.type, JSONPULL_REAL);
			break;
		case JSON_OBJECT:
			assert_int_equal(v.type, JSONPULL_OBJECT);
			assert_int_equal(jsonpull_member(&j, &key, &more), TLY_OK);
			assert_true(more);
			assert_int_equal(jsonpull_str_copy(&key, out, sizeof out), 2);
			assert_memory_equal(out, "k1", 2);
			assert_int_equal(jsonpull_value(&j, &v), TLY_OK);
			assert_int_equal(v.type, JSONPULL_STRING);
			assert_int_equal(v.s.raw_len, 0);
			break;
		default:
			fail();
		}
		assert_int_equal(jsonpull_skip(&j, d), TLY_OK);
	}
	assert_int_equal(jsonpull_depth(&j), 0);
	jsonpull_clear(&j);
	json_decref(ref);
}

/* ---- the decoders against the jansson ones ------------------------------- */

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot read %s", path);
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *s = malloc((size_t)len + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)len, f), (size_t)len);
	s[len] = '\0';
	fclose(f);
	*n = (size_t)len;
	return s;
}

static void expect_same(const char *s, size_t n)
{
	char why[128];
	const char *bad = msg_diff_all(s, n, why, sizeof why);
	if (bad)
		fail_msg("%s\n%.600s", bad, s);
}

/* A copy of o with its members in the order perm[0..n) of its keys. */
static json_t *reordered(json_t *o, const size_t *perm, size_t n)
{
	const char *keys[16];
	const char *k;
	json_t *v, *r = json_object();
	size_t i = 0;

	json_object_foreach(o, k, v) {
		assert_true(i < 16);
		keys[i++] = k;
	}
	assert_int_equal(i, n);
	for (i = 0; i < n; i++)
		json_object_set(r, keys[perm[i]], json_object_get(o, keys[perm[i]]));
	return r;
}

/* Orders of n members: as written, reversed, every rotation, and (for a
 * change) "fields" first, in the middle, last. */
static size_t orders(size_t n, size_t fields, size_t perm[][16])
{
	size_t k = 0;
	for (size_t r = 0; r < n; r++, k++) {
		for (size_t i = 0; i < n; i++)
			perm[k][i] = (i + r) % n;
	}
	for (size_t i = 0; i < n; i++)
		perm[k][i] = n - 1 - i;
	k++;
	if (fields < n) {
		for (size_t place = 0; place < n; place += n / 2 ? n / 2 : 1, k++) {
			size_t m = 0;
			for (size_t i = 0; i < n; i++) {
				if (i == place)
					perm[k][m++] = fields;
				if (i != fields)
					perm[k][m++] = i;
			}
			if (m < n)
				perm[k][m++] = fields;
		}
	}
	return k;
}

static size_t index_of(json_t *o, const char *name)
{
	const char *k;
	json_t *v;
	size_t i = 0;
	json_object_foreach(o, k, v) {
		if (strcmp(k, name) == 0)
			return i;
		i++;
	}
	return SIZE_MAX;
}

/* Edits whose codes rank differently against each other and against the
 * members they move past: each is applied to every ordering. */
static const struct {
	const char *from, *to;
} edits[] = {
	{NULL, NULL},
	{"\"seq\":2", "\"seq\":\"2\""},
	{"\"seq\":2", "\"seq\":0"},
	{"\"seq\":2", "\"seq\":3"},
	{"\"sv\":1", "\"sv\":65536"},
	{"\"kind\":\"task\"", "\"kind\":\"Task\""},
	{"\"kind\":\"task\"", "\"kind\":\"t\\u0061sk\""},
	{"\"id\":\"", "\"zz\":1,\"id\":\""},
	{"\"hlc\":", "\"hlc\":1.5,\"x\":"},
	{"\"hlc\":", "\"eff\":0,\"hlc\":"},
	{"\"hlc\":", "\"eff\":7,\"hlc\":"},
	{"\"hlc\":", "\"hlc\":99999999999999999999,\"x\":"},
	{"\"status\":\"doing\"", "\"status\":\"doing\",\"status\":1"},
	{"\"status\":\"doing\"", "\"st\\u0061tus\":\"doing\""},
	{"\"status\":\"doing\"", "\"Status\":\"doing\""},
	{"\"status\":\"doing\"", "\"status\":true"},
	{"\"status\":\"doing\"", "\"status\":\"do\\ning\""},
	{"\"progress\":40", "\"progress\":40,\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5"},
	{"\"progress\":40", "\"progress\":1e999"},
	{"\"fields\":{", "\"fields\":{\"x\":[1,{\"y\":2}],"},
	{"\"v\":1", "\"v\":2"},
	{"\"v\":1", "\"v\":1.0"},
	{"\"type\":\"", "\"type\":\"x"},
	{"\"type\":", "\"tipe\":"},
	{"\"v\":1", "\"v\":1,\"extra\":{}"},
	{"\"site\":\"v01-lijiacun\"", "\"site\":\"V01\""},
	{"\"site\":\"v01-lijiacun\"", "\"site\":7"},
	{"\"prev\":\"", "\"prev\":\"0"},
	{"\"head\":\"6b", "\"head\":\"6B"},
	{"\"queue\":0", "\"queue\":-1"},
	{"\"device_ms\":", "\"device_ms\":-"},
	{"\"epoch\":\"7k2m9q4x\"", "\"epoch\":\"\""},
	{"\"more\":false", "\"more\":null"},
	{"\"next\":118", "\"next\":-118"},
	{"\"server_ms\":", "\"server_ms\":0,\"y\":"},
	{"\"site\":\"town-xiangzhen\",\"seq\":13", "\"site\":\"town-xiangzhen\",\"seq\":14"},
	{"\"prev\":\"0000", "\"prev\":\"1000"},
	{"\"level\":\"warning\"", "\"level\":\"warning\",\"level\":\"warning\""},
	/* Members after a change's fields, read when the change was built. */
	{"\"doing\"}}", "\"doing\"},\"eff\":0}"},
	{"\"doing\"}}", "\"doing\"},\"eff\":5}"},
	{"\"doing\"}}", "\"doing\"},\"prev\":\"00\"}"},
	{"\"doing\"}}", "\"doing\"},\"zz\":null}"},
	/* A refused field in a fields object over the tight max_fields. */
	{"\"deadline\":\"2026-06-30\"", "\"deadline\":1.5"},
	{"\"level\":\"reminder\"", "\"level\":true"},
	/* A prev given where it follows, contradicting the page. */
	{"\"seq\":2,", "\"seq\":2,\"prev\":\"0000000000000000000000000000000000000000000000000000000000000001\","},
};

static char *replace_first(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	if (!at)
		return NULL;
	size_t a = (size_t)(at - s), fl = strlen(from), tl = strlen(to);
	char *r = malloc(strlen(s) - fl + tl + 1);
	assert_non_null(r);
	memcpy(r, s, a);
	memcpy(r + a, to, tl);
	strcpy(r + a + tl, at + fl);
	return r;
}

/* s with edits k then k2 applied (index 0: none); NULL when one does not apply. */
static char *edit2(const char *s, size_t k, size_t k2)
{
	char *x = edits[k].from ? replace_first(s, edits[k].from, edits[k].to) : strdup(s);
	if (!x || !edits[k2].from)
		return x;
	char *y = replace_first(x, edits[k2].from, edits[k2].to);
	free(x);
	return y;
}

static void check_orders_of(const char *file, int push, size_t *compared)
{
	size_t n;
	char path[512];
	snprintf(path, sizeof path, "%s/%s", TALLY_VECTORS_DIR, file);
	char *text = slurp(path, &n);
	json_error_t e;
	json_t *m = json_loads(text, 0, &e);
	size_t top[24][16], chg[24][16];
	assert_non_null(m);

	json_t *cs = json_object_get(m, "changes");
	json_t *ch;
	size_t i, nc = SIZE_MAX;
	json_array_foreach(cs, i, ch) {
		size_t k = orders(json_object_size(ch), index_of(ch, "fields"), chg);
		nc = k < nc ? k : nc;
	}
	size_t nt = orders(json_object_size(m), SIZE_MAX, top);
	for (size_t t = 0; t < nt; t++) {
		/* Every change takes the same order of its own members. */
		for (size_t c = 0; c < nc; c++) {
			json_t *arr = json_array();
			json_array_foreach(cs, i, ch) {
				size_t nm = json_object_size(ch);
				orders(nm, index_of(ch, "fields"), chg);
				json_array_append_new(arr, reordered(ch, chg[c], nm));
			}
			json_t *copy = json_copy(m);
			json_object_set_new(copy, "changes", arr);
			json_t *r = reordered(copy, top[t], json_object_size(m));
			char *s = json_dumps(r, JSON_COMPACT);
			assert_non_null(s);
			/* Every edit in every order; pairs of edits (two faults to
			 * rank) in the first order and the reversed one. */
			size_t ne = sizeof edits / sizeof edits[0];
			int pairs = c == 0 && (t == 0 || t == nt - 1);
			for (size_t k = 0; k < ne; k++) {
				for (size_t k2 = 0; k2 < (pairs ? ne : 1); k2++) {
					char *x = edit2(s, k, k2);
					if (!x)
						continue;
					if (!edits[k].from && !edits[k2].from) {
						/* Unedited, every order decodes. */
						struct msg_push p;
						struct msg_pull_answer a;
						int rc = push ? msg_decode_push(x, strlen(x), NULL, &p)
							      : msg_decode_pull_answer(x, strlen(x),
										       NULL, &a);
						if (rc != TLY_OK)
							fail_msg("%s: %s\n%s", file, error_name(rc), x);
						if (push)
							msg_push_clear(&p);
						else
							msg_pull_answer_clear(&a);
					}
					expect_same(x, strlen(x));
					++*compared;
					free(x);
				}
			}
			free(s);
			json_decref(r);
			json_decref(copy);
		}
	}
	json_decref(m);
	free(text);
}

static void test_member_orders(void **state)
{
	(void)state;
	size_t compared = 0;
	check_orders_of("msg_push.json", 1, &compared);
	check_orders_of("msg_pull_answer.json", 0, &compared);
	print_message("compared %zu texts\n", compared);
	assert_true(compared > 1000);
}

/* The seeds of the msg_diff fuzz target, and what some of them must give:
 * each decoder path (fields first, changes before site, escapes, many
 * fields) is taken by one of them. */
static void test_seeds(void **state)
{
	(void)state;
	static const struct {
		const char *file;
		int push, pull_answer;
	} want[] = {
		{"push_vector", TLY_OK, TLY_E_BAD_MSG_TYPE},
		{"push_top_reversed", TLY_OK, TLY_E_BAD_MSG_TYPE},
		{"push_fields_first", TLY_OK, TLY_E_BAD_MSG_TYPE},
		{"push_fields_middle", TLY_OK, TLY_E_BAD_MSG_TYPE},
		{"push_escaped_keys", TLY_OK, TLY_E_BAD_MSG_TYPE},
		{"push_unknown_after_fields", TLY_E_UNKNOWN_FIELD, TLY_E_BAD_MSG_TYPE},
		{"push_dup_escaped", TLY_E_DUP_KEY, TLY_E_DUP_KEY},
		{"push_overflow_late", TLY_E_BAD_VALUE, TLY_E_BAD_VALUE},
		{"push_many_fields", TLY_E_TOO_MANY, TLY_E_BAD_MSG_TYPE},
		{"push_many_fields_dup", TLY_E_DUP_KEY, TLY_E_DUP_KEY},
		{"push_many_fields_dup_then_overflow", TLY_E_DUP_KEY, TLY_E_DUP_KEY},
		{"push_many_fields_overflow_then_dup", TLY_E_BAD_VALUE, TLY_E_BAD_VALUE},
		{"pull_answer_vector", TLY_E_BAD_MSG_TYPE, TLY_OK},
		{"pull_answer_top_reversed", TLY_E_BAD_MSG_TYPE, TLY_OK},
		{"pull_answer_fields_first", TLY_E_BAD_MSG_TYPE, TLY_OK},
		{"pull_answer_fields_middle", TLY_E_BAD_MSG_TYPE, TLY_OK},
		{"pull_answer_escaped_keys", TLY_E_BAD_MSG_TYPE, TLY_OK},
		{"pull_answer_unknown_after_fields", TLY_E_BAD_MSG_TYPE, TLY_E_UNKNOWN_FIELD},
	};
	for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
		char path[512];
		size_t n;
		struct msg_push p;
		struct msg_pull_answer a;
		snprintf(path, sizeof path, "%s/tests/fuzz/corpus/msg_diff/%s", TALLY_SOURCE_DIR,
			 want[k].file);
		char *s = slurp(path, &n);
		int rp = msg_decode_push(s, n, NULL, &p);
		int ra = msg_decode_pull_answer(s, n, NULL, &a);
		if (rp != want[k].push || ra != want[k].pull_answer)
			fail_msg("%s: push %s, pull_answer %s", want[k].file, error_name(rp),
				 error_name(ra));
		msg_push_clear(&p);
		msg_pull_answer_clear(&a);
		expect_same(s, n);
		free(s);
	}
}

/* Past max_fields or max_changes an object or array is refused whole,
 * whatever an element before the limit holds. */
static void test_counts_first(void **state)
{
	(void)state;
	size_t n;
	char path[512];
	snprintf(path, sizeof path, "%s/msg_push.json", TALLY_VECTORS_DIR);
	char *push = slurp(path, &n);
	static const struct {
		const char *first;
		size_t extra;
		int want;
	} cases[] = {
		{"\"a\":1.5,", 0, TLY_E_BAD_TYPE},
		{"\"a\":1.5,", 61, TLY_E_BAD_TYPE}, /* with progress and status: 64 */
		{"\"a\":1.5,", 62, TLY_E_TOO_MANY},
		{"\"A\":1,", 62, TLY_E_TOO_MANY},
		{"\"a\":1,\"a\":2,", 62, TLY_E_DUP_KEY},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		struct buf f;
		struct msg_push p;
		buf_init(&f, 1 << 20);
		assert_int_equal(buf_add_str(&f, "\"fields\":{"), TLY_OK);
		assert_int_equal(buf_add_str(&f, cases[k].first), TLY_OK);
		for (size_t i = 0; i < cases[k].extra; i++)
			assert_int_equal(buf_addf(&f, "\"f%zu\":%zu,", i, i), TLY_OK);
		/* Into seq 2, whose fields are progress and status. */
		size_t head = (size_t)(strstr(push, "\"seq\":2") - push);
		char *tail = replace_first(push + head, "\"fields\":{", f.data);
		char *t = malloc(head + strlen(tail) + 1);
		assert_non_null(t);
		memcpy(t, push, head);
		strcpy(t + head, tail);
		int rc = msg_decode_push(t, strlen(t), NULL, &p);
		if (rc != cases[k].want)
			fail_msg("case %zu: %s, want %s", k, error_name(rc), error_name(cases[k].want));
		msg_push_clear(&p);
		expect_same(t, strlen(t));
		free(t);
		free(tail);
		buf_free(&f);
	}
	free(push);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verdicts),
		cmocka_unit_test(test_many_keys),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_member_orders),
		cmocka_unit_test(test_seeds),
		cmocka_unit_test(test_counts_first),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
