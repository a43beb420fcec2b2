/*
 * jsoncheck: what the pre-parse scan accepts and refuses, each refusal with
 * its own code, and that it agrees with jansson (syntax) and with
 * change_check_utf8 (UTF-8) on the same inputs.
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

#include "protocol/change.h"
#include "protocol/error.h"
#include "protocol/jsoncheck.h"
#include "protocol/limits.h"

static int scan(const char *s)
{
	return jsoncheck_scan(s, strlen(s), NULL);
}

static int scan_l(const char *s, const struct limits *l)
{
	return jsoncheck_scan(s, strlen(s), l);
}

/* jansson, as message.c will call it, on the same bytes. */
static int jansson_accepts(const char *s, size_t n)
{
	json_error_t e;
	json_t *j = json_loadb(s, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
	json_decref(j);
	return j != NULL;
}

static const char *valid[] = {
	"{}", "[]", "0", "-0", "1", "-1", "9223372036854775807", "1.5", "-0.0e0", "1E+10",
	"2e-3", "\"\"", "\"x\"", "true", "false", "null", " \t\r\n{ \"a\" : [ 1 , 2 ] } \n",
	"{\"v\":1,\"type\":\"push\",\"changes\":[{\"fields\":{\"a\":null,\"b\":\"\"}}]}",
	"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\u00e9\\u4E2D\\ud83d\\ude00\"",
	"\"整改台账 𠀀😀\"", "{\"整改\":\"𠮷野家\"}", "[[],[[]],{}]", "[1,\"a\",null,true,{}]",
	"{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}}}", /* depth 8 */
};

static void test_valid(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof valid / sizeof valid[0]; k++) {
		int rc = scan(valid[k]);
		if (rc != TLY_OK)
			fail_msg("refused %s: %s", valid[k], error_name(rc));
		if (!jansson_accepts(valid[k], strlen(valid[k])))
			fail_msg("jansson refuses %s", valid[k]);
	}
}

static const char *bad_syntax[] = {
	"", " ", "[", "]", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\"}", "{\"a\":}", "{1:2}",
	"{a:1}", "[1 2]", "{\"a\":1 \"b\":2}", "01", "-01", "1.", ".5", "1e", "1e+", "-", "+1",
	"0x10", "tru", "nul", "falsey", "True", "NaN", "Infinity", "-Infinity", "\"abc",
	"'a'", "{\"a\":1}}", "[1]]", "1 2", "{} x", "{}{}", "[}", "{]", "[1,,2]", "[,1]",
	"\xef\xbb\xbf{}", /* a BOM */
	"\"a\tb\"", "\"a\nb\"", "\"\x01\"", "\"\\x\"", "\"\\u12G4\"", "\"\\u12\"", "\"\\u\"",
	"\"\\\"", "/* c */ {}", "{} // c", "[1,2", "{\"a\":[}", "\x80", "\xe4\xb8\xad",
	"{\"a\":1,\"b\"", "nulll", "[-]", "[1.e5]", "[1e5.5]",
};

static void test_bad_syntax(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof bad_syntax / sizeof bad_syntax[0]; k++) {
		const char *s = bad_syntax[k];
		int rc = scan(s);
		if (rc != TLY_E_BAD_JSON)
			fail_msg("case %zu \"%s\": got %s, want bad_json", k, s, error_name(rc));
		if (jansson_accepts(s, strlen(s)))
			fail_msg("case %zu \"%s\": jansson accepts what we refuse", k, s);
	}
	/* A NUL byte inside the length is not a terminator. */
	assert_int_equal(jsoncheck_scan("{}\0", 3, NULL), TLY_E_BAD_JSON);
	assert_int_equal(jsoncheck_scan("\"a\0b\"", 5, NULL), TLY_E_BAD_JSON);
	assert_int_equal(jsoncheck_scan("{\"a\":1}", 6, NULL), TLY_E_BAD_JSON);
}

struct coded {
	const char *text;
	int want;
};

static void check_coded(const struct coded *cases, size_t n, const struct limits *l)
{
	for (size_t k = 0; k < n; k++) {
		int rc = scan_l(cases[k].text, l);
		if (rc != cases[k].want)
			fail_msg("case %zu %s: got %s, want %s", k, cases[k].text, error_name(rc),
				 error_name(cases[k].want));
	}
}

static void test_utf8(void **state)
{
	(void)state;
	static const struct coded cases[] = {
		{"\"\xff\"", TLY_E_BAD_UTF8},
		{"\"\xc0\x80\"", TLY_E_BAD_UTF8},             /* overlong NUL */
		{"\"\xc1\xbf\"", TLY_E_BAD_UTF8},             /* overlong 2-byte */
		{"\"\xe0\x80\xaf\"", TLY_E_BAD_UTF8},         /* overlong '/' */
		{"\"\xf0\x82\x82\xac\"", TLY_E_BAD_UTF8},     /* overlong euro sign */
		{"\"\xed\xa0\x80\"", TLY_E_BAD_UTF8},         /* surrogate D800 encoded raw */
		{"\"\xed\xbf\xbf\"", TLY_E_BAD_UTF8},         /* surrogate DFFF encoded raw */
		{"\"\xf4\x90\x80\x80\"", TLY_E_BAD_UTF8},     /* U+110000 */
		{"\"\xf5\x80\x80\x80\"", TLY_E_BAD_UTF8},
		{"\"\xe4\xb8\"", TLY_E_BAD_UTF8},             /* 中 cut short by the quote */
		{"\"\xe4\xb8\\n\"", TLY_E_BAD_UTF8},          /* ... or by an escape */
		{"\"\x80\"", TLY_E_BAD_UTF8},                 /* stray continuation */
		{"{\"\xfe\":1}", TLY_E_BAD_UTF8},             /* in a key */
		{"\"\\u0000\"", TLY_E_BAD_UTF8},              /* escaped NUL */
		{"[\"ok\",\"a\\u0000b\"]", TLY_E_BAD_UTF8},
		{"\"\\ud800\"", TLY_E_LONE_SURROGATE},
		{"\"\\udc00\"", TLY_E_LONE_SURROGATE},
		{"\"\\uDBFF\"", TLY_E_LONE_SURROGATE},
		{"\"\\ud800x\"", TLY_E_LONE_SURROGATE},
		{"\"\\ud800\\n\"", TLY_E_LONE_SURROGATE},
		{"\"\\ud800\\u0041\"", TLY_E_LONE_SURROGATE},
		{"\"\\ud800\\ud800\"", TLY_E_LONE_SURROGATE},
		{"\"\\udc00\\ud800\"", TLY_E_LONE_SURROGATE},
		{"{\"\\udfff\":1}", TLY_E_LONE_SURROGATE},
		{"\"\\ud83d\\ude00\"", TLY_OK},
		{"\"\\uDBFF\\uDFFF\"", TLY_OK},               /* U+10FFFF */
		{"\"\xf4\x8f\xbf\xbf\"", TLY_OK},             /* U+10FFFF raw */
		{"\"\xef\xbf\xbf\"", TLY_OK},                 /* U+FFFF */
		{"\"\\u0001\"", TLY_OK},
	};
	check_coded(cases, sizeof cases / sizeof cases[0], NULL);
}

/*
 * The scanner and change_check_utf8 must agree on every byte pair and
 * triple that can sit inside a JSON string unescaped, so a text accepted on
 * the wire is always storable and the reverse.
 */
static void test_utf8_agrees_with_change(void **state)
{
	(void)state;
	char text[8];
	for (unsigned a = 0x20; a < 0x100; a++) {
		for (unsigned b = 0x20; b < 0x100; b++) {
			if (a == '"' || a == '\\' || b == '"' || b == '\\')
				continue;
			unsigned char bytes[2] = {(unsigned char)a, (unsigned char)b};
			text[0] = '"';
			memcpy(text + 1, bytes, 2);
			text[3] = '"';
			int want = change_check_utf8((const char *)bytes, 2);
			int got = jsoncheck_scan(text, 4, NULL);
			if (got != want)
				fail_msg("%02x %02x: scan %s, change_check_utf8 %s", a, b,
					 error_name(got), error_name(want));
		}
	}
	/* Every lead byte with every second byte and a fixed set of thirds and
	 * fourths covers the 3- and 4-byte boundaries (E0, ED, F0, F4). */
	static const unsigned char tails[] = {0x20, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0};
	for (unsigned a = 0xc0; a < 0x100; a++)
		for (unsigned b = 0x20; b < 0x100; b++)
			for (size_t t = 0; t < sizeof tails; t++)
				for (size_t u = 0; u < sizeof tails; u++) {
					if (b == '"' || b == '\\')
						continue;
					unsigned char bytes[4] = {(unsigned char)a, (unsigned char)b,
								  tails[t], tails[u]};
					text[0] = '"';
					memcpy(text + 1, bytes, 4);
					text[5] = '"';
					int want = change_check_utf8((const char *)bytes, 4);
					int got = jsoncheck_scan(text, 6, NULL);
					if (got != want)
						fail_msg("%02x %02x %02x %02x: scan %s, utf8 %s", a,
							 b, tails[t], tails[u], error_name(got),
							 error_name(want));
				}
}

static void test_string_length(void **state)
{
	(void)state;
	struct limits l;
	limits_default(&l);
	l.max_field_bytes = 6;
	static const struct coded cases[] = {
		{"\"abcdef\"", TLY_OK},
		{"\"abcdefg\"", TLY_E_FIELD_TOO_LONG},
		{"\"中文\"", TLY_OK},                         /* 6 bytes raw */
		{"\"中文a\"", TLY_E_FIELD_TOO_LONG},
		{"\"\\u4e2d\\u6587\"", TLY_OK},               /* 6 bytes unescaped, 12 escaped */
		{"\"\\u4e2d\\u6587\\n\"", TLY_E_FIELD_TOO_LONG},
		{"\"\\n\\n\\n\\n\\n\\n\"", TLY_OK},
		{"\"\\n\\n\\n\\n\\n\\n\\n\"", TLY_E_FIELD_TOO_LONG},
		{"\"\\ud83d\\ude00ab\"", TLY_OK},             /* 4 + 2 */
		{"\"\\ud83d\\ude00abc\"", TLY_E_FIELD_TOO_LONG},
		{"\"\\u00e9\\u00e9\\u00e9\"", TLY_OK},        /* 2 bytes each */
		{"\"\\u00e9\\u00e9\\u00e9a\"", TLY_E_FIELD_TOO_LONG},
		{"{\"abcdefg\":1}", TLY_E_FIELD_TOO_LONG},    /* keys too */
	};
	check_coded(cases, sizeof cases / sizeof cases[0], &l);

	/* At the default limit, exactly. */
	limits_default(&l);
	size_t n = l.max_field_bytes;
	char *s = malloc(n + 4);
	assert_non_null(s);
	s[0] = '"';
	memset(s + 1, 'x', n);
	s[n + 1] = '"';
	assert_int_equal(jsoncheck_scan(s, n + 2, &l), TLY_OK);
	s[n + 1] = 'x';
	s[n + 2] = '"';
	assert_int_equal(jsoncheck_scan(s, n + 3, &l), TLY_E_FIELD_TOO_LONG);
	free(s);
}

static void test_elements(void **state)
{
	(void)state;
	struct limits l;
	limits_default(&l);
	l.max_elements = 2;
	static const struct coded cases[] = {
		{"[1,2]", TLY_OK},
		{"[1,2,3]", TLY_E_TOO_MANY},
		{"{\"a\":1,\"b\":2}", TLY_OK},
		{"{\"a\":1,\"b\":2,\"c\":3}", TLY_E_TOO_MANY},
		{"[[1,2],[3,4]]", TLY_OK},        /* each container counts its own */
		{"[[1,2,3]]", TLY_E_TOO_MANY},
		{"[[1,2],3]", TLY_OK},            /* the outer count resumes after the inner closes */
		{"[[1,2],3,4]", TLY_E_TOO_MANY},
		{"{\"a\":[1,2],\"b\":{\"c\":1,\"d\":2}}", TLY_OK},
		{"{\"a\":[1,2],\"b\":{\"c\":1,\"d\":2},\"e\":0}", TLY_E_TOO_MANY},
		{"[[],[],[]]", TLY_E_TOO_MANY},
	};
	check_coded(cases, sizeof cases / sizeof cases[0], &l);

	/* Default limit, exactly and one over. */
	limits_default(&l);
	size_t m = l.max_elements;
	char *s = malloc(2 * m + 8);
	assert_non_null(s);
	size_t k = 0;
	s[k++] = '[';
	for (size_t i = 0; i < m; i++) {
		s[k++] = '0';
		s[k++] = ',';
	}
	s[k - 1] = ']';
	assert_int_equal(jsoncheck_scan(s, k, NULL), TLY_OK);
	s[k - 1] = ',';
	s[k++] = '0';
	s[k++] = ']';
	assert_int_equal(jsoncheck_scan(s, k, NULL), TLY_E_TOO_MANY);
	free(s);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_depth(void **state)
{
	(void)state;
	const size_t deep = 100000;
	char *s = malloc(6 * deep + 16);
	assert_non_null(s);

	/* [[[[... 100,000 deep, and closed, so only depth can refuse it. */
	memset(s, '[', deep);
	memset(s + deep, ']', deep);
	double t0 = now_s();
	assert_int_equal(jsoncheck_scan(s, 2 * deep, NULL), TLY_E_TOO_DEEP);
	/* {"a":{"a":... 100,000 deep, left open. */
	size_t k = 0;
	for (size_t i = 0; i < deep; i++) {
		memcpy(s + k, "{\"a\":", 5);
		k += 5;
	}
	assert_int_equal(jsoncheck_scan(s, k, NULL), TLY_E_TOO_DEEP);
	assert_true(now_s() - t0 < 1.0);
	/* jansson, without the scan, would recurse for each level. */

	struct limits l;
	limits_default(&l);
	static const struct coded at_default[] = {
		{"[[[[[[[[1]]]]]]]]", TLY_OK},        /* 8 */
		{"[[[[[[[[[1]]]]]]]]]", TLY_E_TOO_DEEP},
		{"[[[[[[[[{}]]]]]]]]", TLY_E_TOO_DEEP},
		{"{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}}}}", TLY_E_TOO_DEEP},
	};
	check_coded(at_default, sizeof at_default / sizeof at_default[0], &l);
	l.max_depth = 1;
	assert_int_equal(scan_l("[1,2]", &l), TLY_OK);
	assert_int_equal(scan_l("[[]]", &l), TLY_E_TOO_DEEP);
	l.max_depth = 0;
	assert_int_equal(scan_l("1", &l), TLY_OK);
	assert_int_equal(scan_l("[]", &l), TLY_E_TOO_DEEP);

	/* A configured depth past what the scanner tracks is capped at 64. */
	l.max_depth = 1000;
	memset(s, '[', 64);
	memset(s + 64, ']', 64);
	assert_int_equal(jsoncheck_scan(s, 128, &l), TLY_OK);
	memset(s, '[', 65);
	memset(s + 65, ']', 65);
	assert_int_equal(jsoncheck_scan(s, 130, &l), TLY_E_TOO_DEEP);
	free(s);
}

/* Every prefix of a valid message is refused (nothing passes by stopping
 * early), and every prefix of a refused one is refused or needs more. */
static void test_prefixes(void **state)
{
	(void)state;
	const char *m = "{\"v\":1,\"type\":\"pull\",\"epoch\":\"ab\",\"cursor\":0,\"limit\":[1.5e3,-2,true,null,\"\\u4e2d\"]}";
	size_t n = strlen(m);
	assert_int_equal(jsoncheck_scan(m, n, NULL), TLY_OK);
	for (size_t k = 0; k < n; k++)
		if (jsoncheck_scan(m, k, NULL) != TLY_E_BAD_JSON)
			fail_msg("prefix of length %zu accepted", k);
}

/* What the scan reports for message.c to check jansson's tree against. */
static void test_stats(void **state)
{
	(void)state;
	const char *t = "{\"ab\":[1,-0,-12,0,1.5,-2e3,\"中\\u00e9\\n\",true,null,{}],\"\\ud83d\\ude00\":\"\"}";
	struct jsoncheck_stats st;
	memset(&st, 0xff, sizeof st);
	assert_int_equal(jsoncheck_scan_stats(t, strlen(t), NULL, &st), TLY_OK);
	assert_int_equal(st.values, 13);      /* 2 objects, 1 array, 10 scalars */
	assert_int_equal(st.string_bytes, 12); /* ab, 中é\n (3+2+1), 😀 (4), "" */
	assert_int_equal(st.int_digits, 6);    /* 1, 0, -12, 0 */
	assert_int_equal(st.reals, 2);
	/* Not filled on failure. */
	memset(&st, 0, sizeof st);
	assert_int_equal(jsoncheck_scan_stats("[1,", 3, NULL, &st), TLY_E_BAD_JSON);
	assert_int_equal(st.values, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_bad_syntax),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_utf8_agrees_with_change),
		cmocka_unit_test(test_string_length),
		cmocka_unit_test(test_elements),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_stats),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
