/* Tests for change: fields, identifiers, UTF-8, canonical encode/decode. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/change.h"
#include "protocol/error.h"

#define HLC1 UINT64_C(0x0196f3a2b4c50001)

static struct change *mk(void)
{
	struct change *c = NULL;
	assert_int_equal(change_new(&c, CHANGE_SCHEMA_VERSION, "v-001", 7, HLC1, "task", "T-1"),
			 TLY_OK);
	return c;
}

static void encode(const struct change *c, struct buf *b)
{
	buf_init(b, 1 << 24);
	assert_int_equal(change_encode_canonical(c, b), TLY_OK);
}

static void test_new_and_accessors(void **state)
{
	(void)state;
	struct change *c = mk();
	assert_int_equal(change_schema(c), CHANGE_SCHEMA_VERSION);
	assert_string_equal(change_site(c), "v-001");
	assert_int_equal(change_seq(c), 7);
	assert_int_equal(change_hlc(c), HLC1);
	assert_string_equal(change_kind(c), "task");
	assert_string_equal(change_id(c), "T-1");
	assert_int_equal(change_eff(c), 0);
	assert_int_equal(change_stamp(c), HLC1);
	change_set_eff(c, HLC1 + 99);
	assert_int_equal(change_stamp(c), HLC1 + 99);
	assert_null(change_prev(c));
	assert_null(change_hash(c));
	assert_int_equal(change_field_count(c), 0);
	change_free(c);
	change_free(NULL);
}

static void test_new_rejects(void **state)
{
	(void)state;
	struct change *c = (struct change *)1;
	assert_int_equal(change_new(&c, 1, "v1", 0, HLC1, "task", "a"), TLY_E_BAD_VALUE);
	assert_null(c);
	assert_int_equal(change_new(&c, 1, "v1", 1, 0, "task", "a"), TLY_E_BAD_VALUE);
	assert_int_equal(change_new(&c, 0, "v1", 1, 1, "task", "a"), TLY_E_BAD_VALUE);
	assert_int_equal(change_new(&c, 0x10000, "v1", 1, 1, "task", "a"), TLY_E_BAD_VALUE);
	assert_int_equal(change_new(&c, 1, "V1", 1, 1, "task", "a"), TLY_E_BAD_VALUE);
	assert_int_equal(change_new(&c, 1, "v1", 1, 1, "Task", "a"), TLY_E_BAD_VALUE);
	assert_int_equal(change_new(&c, 1, "v1", 1, 1, "task", "a b"), TLY_E_BAD_VALUE);
	assert_int_equal(change_new(&c, 1, NULL, 1, 1, "task", "a"), TLY_E_BAD_VALUE);
	assert_null(c);
}

static void test_identifiers(void **state)
{
	(void)state;
	char s[80];
	/* site: 1-32 of [0-9a-z_-] */
	assert_int_equal(change_check_site("a"), TLY_OK);
	assert_int_equal(change_check_site("0-9_az"), TLY_OK);
	assert_int_equal(change_check_site(""), TLY_E_BAD_VALUE);
	assert_int_equal(change_check_site("A"), TLY_E_BAD_VALUE);
	assert_int_equal(change_check_site("a.b"), TLY_E_BAD_VALUE);
	assert_int_equal(change_check_site("村"), TLY_E_BAD_VALUE);
	memset(s, 'a', 32);
	s[32] = '\0';
	assert_int_equal(change_check_site(s), TLY_OK);
	s[32] = 'a';
	s[33] = '\0';
	assert_int_equal(change_check_site(s), TLY_E_BAD_VALUE);
	/* kind: 1-32 of [a-z_] */
	assert_int_equal(change_check_kind("progress_entry"), TLY_OK);
	assert_int_equal(change_check_kind("task1"), TLY_E_BAD_VALUE);
	assert_int_equal(change_check_kind("ta-sk"), TLY_E_BAD_VALUE);
	assert_int_equal(change_check_kind(""), TLY_E_BAD_VALUE);
	s[32] = '\0';
	assert_int_equal(change_check_kind(s), TLY_OK);
	s[32] = 'a';
	assert_int_equal(change_check_kind(s), TLY_E_BAD_VALUE);
	/* id: 1-64 of [0-9A-Za-z_-] */
	assert_int_equal(change_check_id("Ab-9_z"), TLY_OK);
	assert_int_equal(change_check_id("a/b"), TLY_E_BAD_VALUE);
	assert_int_equal(change_check_id(""), TLY_E_BAD_VALUE);
	memset(s, 'Z', 64);
	s[64] = '\0';
	assert_int_equal(change_check_id(s), TLY_OK);
	s[64] = 'Z';
	s[65] = '\0';
	assert_int_equal(change_check_id(s), TLY_E_BAD_VALUE);
	/* field: [a-z_] first, then [a-z0-9_], 1-32 */
	assert_int_equal(change_check_field_name("status"), TLY_OK);
	assert_int_equal(change_check_field_name("_x9"), TLY_OK);
	assert_int_equal(change_check_field_name("9x"), TLY_E_BAD_VALUE);
	assert_int_equal(change_check_field_name("a-b"), TLY_E_BAD_VALUE);
	assert_int_equal(change_check_field_name("Status"), TLY_E_BAD_VALUE);
	assert_int_equal(change_check_field_name(""), TLY_E_BAD_VALUE);
	memset(s, 'f', 32);
	s[32] = '\0';
	assert_int_equal(change_check_field_name(s), TLY_OK);
	s[32] = 'f';
	s[33] = '\0';
	assert_int_equal(change_check_field_name(s), TLY_E_BAD_VALUE);
}

static void test_set_replace_get(void **state)
{
	(void)state;
	struct change *c = mk();
	struct field_view v;
	assert_int_equal(change_set_text(c, "title", "修路", strlen("修路"), NULL), TLY_OK);
	assert_int_equal(change_set_int(c, "progress", 30, NULL), TLY_OK);
	assert_int_equal(change_set_null(c, "deadline", NULL), TLY_OK);
	assert_int_equal(change_field_count(c), 3);

	assert_true(change_field_get(c, "title", &v));
	assert_int_equal(v.type, FIELD_TEXT);
	assert_string_equal(v.text, "修路");
	assert_int_equal(v.len, strlen("修路"));
	assert_true(change_field_get(c, "progress", &v));
	assert_int_equal(v.type, FIELD_INT);
	assert_int_equal(v.i, 30);
	assert_true(change_field_get(c, "deadline", &v));
	assert_int_equal(v.type, FIELD_NULL);
	assert_false(change_field_get(c, "nope", &v));

	/* replacing changes the value and type, never the count */
	assert_int_equal(change_set_int(c, "title", -1, NULL), TLY_OK);
	assert_int_equal(change_set_text(c, "progress", "", 0, NULL), TLY_OK);
	assert_int_equal(change_field_count(c), 3);
	assert_true(change_field_get(c, "title", &v));
	assert_int_equal(v.type, FIELD_INT);
	assert_int_equal(v.i, -1);
	assert_null(v.text);
	assert_true(change_field_get(c, "progress", &v));
	assert_int_equal(v.type, FIELD_TEXT);
	assert_int_equal(v.len, 0);
	assert_string_equal(v.text, "");

	/* bad names are refused and change nothing */
	assert_int_equal(change_set_int(c, "Bad", 1, NULL), TLY_E_BAD_VALUE);
	assert_int_equal(change_set_text(c, "1x", "a", 1, NULL), TLY_E_BAD_VALUE);
	assert_int_equal(change_field_count(c), 3);
	change_free(c);
}

static void test_canonical_order(void **state)
{
	(void)state;
	struct change *c = mk();
	const char *names[] = {"zeta", "alpha", "mid", "a_b", "a", "ab", "a0", "_z"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		assert_int_equal(change_set_int(c, names[i], (int64_t)i, NULL), TLY_OK);
	const char *want[] = {"_z", "a", "a0", "a_b", "ab", "alpha", "mid", "zeta"};
	assert_int_equal(change_field_count(c), 8);
	for (size_t i = 0; i < 8; i++) {
		struct field_view v;
		change_field_at(c, i, &v);
		assert_string_equal(v.name, want[i]);
	}
	/* insertion order does not matter to the encoding */
	struct change *d = mk();
	for (size_t i = 8; i-- > 0;)
		assert_int_equal(change_set_int(d, names[i], (int64_t)i, NULL), TLY_OK);
	struct buf a, b;
	encode(c, &a);
	encode(d, &b);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.data, b.data, a.len);
	assert_true(change_equal(c, d));
	buf_free(&a);
	buf_free(&b);
	change_free(c);
	change_free(d);
}

static void test_limits_on_set(void **state)
{
	(void)state;
	struct limits l;
	limits_default(&l);
	l.max_fields = 3;
	l.max_field_bytes = 6;
	struct change *c = mk();
	assert_int_equal(change_set_text(c, "a", "整改", 6, &l), TLY_OK);
	assert_int_equal(change_set_text(c, "a", "整改x", 7, &l), TLY_E_FIELD_TOO_LONG);
	assert_int_equal(change_set_int(c, "b", 1, &l), TLY_OK);
	assert_int_equal(change_set_int(c, "c", 1, &l), TLY_OK);
	assert_int_equal(change_set_int(c, "d", 1, &l), TLY_E_TOO_MANY);
	assert_int_equal(change_set_int(c, "c", 2, &l), TLY_OK); /* replacing is not adding */
	assert_int_equal(change_field_count(c), 3);
	struct field_view v;
	assert_true(change_field_get(c, "a", &v));
	assert_string_equal(v.text, "整改"); /* unchanged after the refused set */
	change_free(c);

	/* the defaults: 64 fields, 16384 bytes */
	c = mk();
	char name[8];
	for (int i = 0; i < 64; i++) {
		snprintf(name, sizeof name, "f%d", i);
		assert_int_equal(change_set_null(c, name, NULL), TLY_OK);
	}
	assert_int_equal(change_set_null(c, "one_more", NULL), TLY_E_TOO_MANY);
	char *big = malloc(16385);
	memset(big, 'x', 16385);
	assert_int_equal(change_set_text(c, "f0", big, 16384, NULL), TLY_OK);
	assert_int_equal(change_set_text(c, "f0", big, 16385, NULL), TLY_E_FIELD_TOO_LONG);
	free(big);
	change_free(c);
}

static void test_utf8_validator(void **state)
{
	(void)state;
	struct {
		const char *s;
		size_t n;
		int ok;
	} cases[] = {
		{"", 0, 1},
		{"plain ascii", 11, 1},
		{"\xC2\x80", 2, 1},           /* U+0080 */
		{"\xDF\xBF", 2, 1},           /* U+07FF */
		{"\xE0\xA0\x80", 3, 1},       /* U+0800 */
		{"\xED\x9F\xBF", 3, 1},       /* U+D7FF */
		{"\xEE\x80\x80", 3, 1},       /* U+E000 */
		{"\xEF\xBF\xBF", 3, 1},       /* U+FFFF */
		{"\xF0\x90\x80\x80", 4, 1},   /* U+10000 */
		{"\xF0\xA0\x80\x80", 4, 1},   /* U+20000 𠀀 */
		{"\xF4\x8F\xBF\xBF", 4, 1},   /* U+10FFFF */
		{"\x00", 1, 0},               /* NUL */
		{"a\x00b", 3, 0},             /* NUL inside */
		{"\x80", 1, 0},               /* stray continuation */
		{"\xBF", 1, 0},
		{"\xC0\x80", 2, 0},           /* overlong NUL */
		{"\xC1\xBF", 2, 0},           /* overlong */
		{"\xE0\x80\x80", 3, 0},       /* overlong 3-byte */
		{"\xE0\x9F\xBF", 3, 0},       /* overlong U+07FF */
		{"\xF0\x80\x80\x80", 4, 0},   /* overlong 4-byte */
		{"\xF0\x8F\xBF\xBF", 4, 0},   /* overlong U+FFFF */
		{"\xED\xA0\x80", 3, 0},       /* U+D800 surrogate */
		{"\xED\xBF\xBF", 3, 0},       /* U+DFFF surrogate */
		{"\xED\xA0\xBD\xED\xB8\x80", 6, 0}, /* CESU-8 pair */
		{"\xF4\x90\x80\x80", 4, 0},   /* U+110000 */
		{"\xF5\x80\x80\x80", 4, 0},
		{"\xF8\x88\x80\x80\x80", 5, 0},
		{"\xFE", 1, 0},
		{"\xFF", 1, 0},
		{"\xC2", 1, 0},               /* truncated */
		{"\xE4\xB8", 2, 0},
		{"\xF0\xA0\x80", 3, 0},
		{"\xC2\x41", 2, 0},           /* bad continuation */
		{"\xE4\x41\x80", 3, 0},
		{"\xF0\xA0\x41\x80", 4, 0},
		{"\xF0\xA0\x80\x41", 4, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = change_check_utf8(cases[i].s, cases[i].n);
		if ((rc == TLY_OK) != cases[i].ok)
			fail_msg("utf8 case %zu: got %d", i, rc);
		if (!cases[i].ok)
			assert_int_equal(rc, TLY_E_BAD_UTF8);
	}
	/* length is honoured: a valid prefix of an invalid string passes */
	assert_int_equal(change_check_utf8("ab\xFF", 2), TLY_OK);
	/* and every code point round-trips through the validator */
	for (uint32_t cp = 1; cp <= 0x10FFFF; cp++) {
		unsigned char b[4];
		size_t n;
		if (cp < 0x80) {
			b[0] = (unsigned char)cp;
			n = 1;
		} else if (cp < 0x800) {
			b[0] = (unsigned char)(0xC0 | cp >> 6);
			b[1] = (unsigned char)(0x80 | (cp & 0x3F));
			n = 2;
		} else if (cp < 0x10000) {
			b[0] = (unsigned char)(0xE0 | cp >> 12);
			b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
			b[2] = (unsigned char)(0x80 | (cp & 0x3F));
			n = 3;
		} else {
			b[0] = (unsigned char)(0xF0 | cp >> 18);
			b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
			b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
			b[3] = (unsigned char)(0x80 | (cp & 0x3F));
			n = 4;
		}
		int want = (cp >= 0xD800 && cp <= 0xDFFF) ? TLY_E_BAD_UTF8 : TLY_OK;
		if (change_check_utf8((const char *)b, n) != want)
			fail_msg("code point U+%04X", cp);
	}
}

static void test_text_values_utf8(void **state)
{
	(void)state;
	struct change *c = mk();
	const char four[] = "整改𠀀完成"; /* with U+20000, a 4-byte character */
	assert_int_equal(change_set_text(c, "note", four, strlen(four), NULL), TLY_OK);
	assert_int_equal(change_set_text(c, "bad", "\xED\xA0\x80", 3, NULL), TLY_E_BAD_UTF8);
	assert_int_equal(change_set_text(c, "bad", "\xC0\xAF", 2, NULL), TLY_E_BAD_UTF8);
	assert_int_equal(change_set_text(c, "bad", "a\0b", 3, NULL), TLY_E_BAD_UTF8);
	assert_int_equal(change_set_text(c, "bad", "\xF4\x90\x80\x80", 4, NULL), TLY_E_BAD_UTF8);
	assert_int_equal(change_field_count(c), 1);

	struct buf b;
	encode(c, &b);
	struct change *d = NULL;
	assert_int_equal(change_decode_canonical(b.data, b.len, NULL, &d), TLY_OK);
	struct field_view v;
	assert_true(change_field_get(d, "note", &v));
	assert_int_equal(v.len, strlen(four));
	assert_memory_equal(v.text, four, v.len);
	assert_true(change_equal(c, d));
	buf_free(&b);
	change_free(c);
	change_free(d);
}

/* A change with every kind of field, for the decode tests. */
static struct change *mk_full(void)
{
	struct change *c = mk();
	const char t[] = "村道硬化𠀀";
	assert_int_equal(change_set_text(c, "title", t, strlen(t), NULL), TLY_OK);
	assert_int_equal(change_set_int(c, "progress", INT64_MIN, NULL), TLY_OK);
	assert_int_equal(change_set_int(c, "count", INT64_MAX, NULL), TLY_OK);
	assert_int_equal(change_set_null(c, "deadline", NULL), TLY_OK);
	assert_int_equal(change_set_text(c, "empty", "", 0, NULL), TLY_OK);
	return c;
}

static void test_encoding_layout(void **state)
{
	(void)state;
	struct change *c = NULL;
	assert_int_equal(change_new(&c, 1, "ab", 0x0102030405060708, 0x1112131415161718, "k", "I"),
			 TLY_OK);
	assert_int_equal(change_set_int(c, "n", -2, NULL), TLY_OK);
	assert_int_equal(change_set_text(c, "t", "xy", 2, NULL), TLY_OK);
	assert_int_equal(change_set_null(c, "z", NULL), TLY_OK);
	struct buf b;
	encode(c, &b);
	const unsigned char want[] = {
		'T', 'L', 'Y', 'C', 0, 1,                 /* magic, schema */
		0, 2, 'a', 'b',                           /* site */
		1, 2, 3, 4, 5, 6, 7, 8,                   /* seq */
		0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, /* hlc */
		0, 1, 'k', 0, 1, 'I',                     /* kind, id */
		0, 3,                                     /* field count */
		0, 1, 'n', 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
		0, 1, 't', 2, 0, 0, 0, 2, 'x', 'y',
		0, 1, 'z', 0,
	};
	assert_int_equal(b.len, sizeof want);
	assert_memory_equal(b.data, want, sizeof want);
	/* eff and links are not encoded */
	change_set_eff(c, 999);
	uint8_t h[CHANGE_HASH_LEN] = {1};
	change_set_links(c, h, h);
	struct buf b2;
	encode(c, &b2);
	assert_int_equal(b2.len, b.len);
	assert_memory_equal(b2.data, b.data, b.len);
	/* appending keeps what was there */
	assert_int_equal(change_encode_canonical(c, &b2), TLY_OK);
	assert_int_equal(b2.len, 2 * b.len);
	buf_free(&b);
	buf_free(&b2);
	change_free(c);
}

static void test_encode_cap_leaves_buffer(void **state)
{
	(void)state;
	struct change *c = mk_full();
	struct buf b;
	buf_init(&b, 40);
	assert_int_equal(buf_add_str(&b, "pre"), TLY_OK);
	assert_int_equal(change_encode_canonical(c, &b), TLY_E_TOO_LARGE);
	assert_int_equal(b.len, 3);
	assert_string_equal(b.data, "pre");
	buf_free(&b);
	change_free(c);
}

static void test_decode_round_trip(void **state)
{
	(void)state;
	struct change *c = mk_full();
	struct buf b;
	encode(c, &b);
	struct change *d = NULL;
	assert_int_equal(change_decode_canonical(b.data, b.len, NULL, &d), TLY_OK);
	assert_true(change_equal(c, d));
	assert_int_equal(change_eff(d), 0);
	assert_null(change_prev(d));
	struct buf b2;
	encode(d, &b2);
	assert_int_equal(b.len, b2.len);
	assert_memory_equal(b.data, b2.data, b.len);
	struct field_view v;
	assert_true(change_field_get(d, "progress", &v));
	assert_int_equal(v.i, INT64_MIN);
	assert_true(change_field_get(d, "count", &v));
	assert_int_equal(v.i, INT64_MAX);

	/* clone is deep and equal; eff makes a difference to change_equal */
	struct change *e = NULL;
	change_set_eff(c, 5);
	assert_int_equal(change_clone(c, &e), TLY_OK);
	assert_true(change_equal(c, e));
	assert_int_equal(change_eff(e), 5);
	assert_false(change_equal(c, d));
	change_set_eff(e, 6);
	assert_false(change_equal(c, e));
	change_set_eff(e, 5);
	assert_int_equal(change_set_text(e, "title", "x", 1, NULL), TLY_OK);
	assert_false(change_equal(c, e));
	assert_true(change_field_get(c, "title", &v));
	assert_string_equal(v.text, "村道硬化𠀀"); /* c untouched by edits to its clone */
	buf_free(&b);
	buf_free(&b2);
	change_free(c);
	change_free(d);
	change_free(e);
}

static void test_decode_truncated_everywhere(void **state)
{
	(void)state;
	struct change *c = mk_full();
	struct buf b;
	encode(c, &b);
	for (size_t n = 0; n < b.len; n++) {
		/* a fresh allocation of exactly n bytes, so ASan sees any over-read */
		unsigned char *p = malloc(n ? n : 1);
		memcpy(p, b.data, n);
		struct change *d = (struct change *)1;
		int rc = change_decode_canonical(p, n, NULL, &d);
		if (rc == TLY_OK)
			fail_msg("truncation at %zu decoded", n);
		assert_null(d);
		free(p);
	}
	buf_free(&b);
	change_free(c);
}

static void test_decode_trailing(void **state)
{
	(void)state;
	struct change *c = mk_full();
	struct buf b;
	encode(c, &b);
	assert_int_equal(buf_add(&b, "\0", 1), TLY_OK);
	struct change *d = NULL;
	assert_int_equal(change_decode_canonical(b.data, b.len, NULL, &d), TLY_E_BAD_VALUE);
	assert_null(d);
	buf_free(&b);
	change_free(c);
}

/* Hand-built encodings: header for site "s", seq 1, hlc 1, kind "k", id "i". */
static void hdr(struct buf *b, uint16_t nfields)
{
	const unsigned char h[] = {'T', 'L', 'Y', 'C', 0, 1, 0, 1, 's', 0, 0, 0, 0, 0, 0, 0, 1,
				   0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 'k', 0, 1, 'i'};
	buf_init(b, 1 << 20);
	assert_int_equal(buf_add(b, h, sizeof h), TLY_OK);
	unsigned char n[2] = {(unsigned char)(nfields >> 8), (unsigned char)nfields};
	assert_int_equal(buf_add(b, n, 2), TLY_OK);
}

static void add_null_field(struct buf *b, const char *name)
{
	unsigned char n[2] = {0, (unsigned char)strlen(name)};
	assert_int_equal(buf_add(b, n, 2), TLY_OK);
	assert_int_equal(buf_add_str(b, name), TLY_OK);
	assert_int_equal(buf_add(b, "\0", 1), TLY_OK);
}

static int decode_buf(struct buf *b, const struct limits *l)
{
	struct change *d = NULL;
	int rc = change_decode_canonical(b->data, b->len, l, &d);
	if (rc == TLY_OK)
		assert_non_null(d);
	else
		assert_null(d);
	change_free(d);
	buf_free(b);
	return rc;
}

static void test_decode_hand_built(void **state)
{
	(void)state;
	struct buf b;

	hdr(&b, 2);
	add_null_field(&b, "a");
	add_null_field(&b, "b");
	assert_int_equal(decode_buf(&b, NULL), TLY_OK); /* the control */

	hdr(&b, 2); /* unsorted */
	add_null_field(&b, "b");
	add_null_field(&b, "a");
	assert_int_equal(decode_buf(&b, NULL), TLY_E_BAD_VALUE);

	hdr(&b, 2); /* repeated */
	add_null_field(&b, "a");
	add_null_field(&b, "a");
	assert_int_equal(decode_buf(&b, NULL), TLY_E_BAD_VALUE);

	hdr(&b, 2); /* prefix orders first: "a" < "ab" */
	add_null_field(&b, "ab");
	add_null_field(&b, "a");
	assert_int_equal(decode_buf(&b, NULL), TLY_E_BAD_VALUE);

	hdr(&b, 1); /* bad field name */
	add_null_field(&b, "A");
	assert_int_equal(decode_buf(&b, NULL), TLY_E_BAD_VALUE);

	hdr(&b, 1); /* unknown type */
	assert_int_equal(buf_add(&b, "\0\1a\3", 4), TLY_OK);
	assert_int_equal(decode_buf(&b, NULL), TLY_E_BAD_VALUE);

	hdr(&b, 1); /* text length over the field limit, with few bytes behind it */
	assert_int_equal(buf_add(&b, "\0\1a\2\0\0\x40\x01", 8), TLY_OK);
	assert_int_equal(decode_buf(&b, NULL), TLY_E_FIELD_TOO_LONG);

	hdr(&b, 1); /* text length 0xFFFFFFFF */
	assert_int_equal(buf_add(&b, "\0\1a\2\xFF\xFF\xFF\xFF", 8), TLY_OK);
	assert_int_equal(decode_buf(&b, NULL), TLY_E_FIELD_TOO_LONG);

	hdr(&b, 1); /* text length within the limit but past the end */
	assert_int_equal(buf_add(&b, "\0\1a\2\0\0\0\x05xy", 10), TLY_OK);
	assert_int_equal(decode_buf(&b, NULL), TLY_E_BAD_VALUE);

	hdr(&b, 1); /* invalid UTF-8 text */
	assert_int_equal(buf_add(&b, "\0\1a\2\0\0\0\x03\xED\xA0\x80", 11), TLY_OK);
	assert_int_equal(decode_buf(&b, NULL), TLY_E_BAD_UTF8);

	hdr(&b, 1); /* NUL in text */
	assert_int_equal(buf_add(&b, "\0\1a\2\0\0\0\x03x\0y", 11), TLY_OK);
	assert_int_equal(decode_buf(&b, NULL), TLY_E_BAD_UTF8);

	hdr(&b, 0xFFFF); /* field count over max_fields, checked before anything else */
	assert_int_equal(decode_buf(&b, NULL), TLY_E_TOO_MANY);

	struct limits l;
	limits_default(&l);
	l.max_fields = 1;
	hdr(&b, 2);
	add_null_field(&b, "a");
	add_null_field(&b, "b");
	assert_int_equal(decode_buf(&b, &l), TLY_E_TOO_MANY);

	hdr(&b, 1); /* field name length over its maximum */
	assert_int_equal(buf_add(&b, "\0\x21", 2), TLY_OK);
	for (int i = 0; i < 33; i++)
		assert_int_equal(buf_add(&b, "a", 1), TLY_OK);
	assert_int_equal(buf_add(&b, "\0", 1), TLY_OK);
	assert_int_equal(decode_buf(&b, NULL), TLY_E_BAD_VALUE);

	hdr(&b, 1); /* field name length 0xFFFF */
	assert_int_equal(buf_add(&b, "\xFF\xFF" "a", 3), TLY_OK);
	assert_int_equal(decode_buf(&b, NULL), TLY_E_BAD_VALUE);

	hdr(&b, 1); /* NUL inside a field name */
	assert_int_equal(buf_add(&b, "\0\2a\0\0", 5), TLY_OK);
	assert_int_equal(decode_buf(&b, NULL), TLY_E_BAD_VALUE);
}

static void test_decode_bad_header(void **state)
{
	(void)state;
	struct change *c = mk_full();
	struct buf good;
	encode(c, &good);
	struct {
		size_t off;
		unsigned char val;
	} flips[] = {
		{0, 'X'},  /* magic */
		{5, 0},    /* schema 0 */
		{6, 0xFF}, /* site length huge */
		{7, 0},    /* site length 0 */
		{8, 'V'},  /* site uppercase */
		{8, 0},    /* NUL in site */
	};
	for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
		struct buf b;
		buf_init(&b, 1 << 20);
		assert_int_equal(buf_add(&b, good.data, good.len), TLY_OK);
		b.data[flips[i].off] = (char)flips[i].val;
		assert_int_equal(decode_buf(&b, NULL), TLY_E_BAD_VALUE);
	}
	/* seq 0 and hlc 0 */
	struct change *z = NULL;
	assert_int_equal(change_new(&z, 1, "s", 1, 1, "k", "i"), TLY_OK);
	struct buf b;
	encode(z, &b);
	memset(b.data + 9, 0, 8); /* seq */
	assert_int_equal(decode_buf(&b, NULL), TLY_E_BAD_VALUE);
	encode(z, &b);
	memset(b.data + 17, 0, 8); /* hlc */
	assert_int_equal(decode_buf(&b, NULL), TLY_E_BAD_VALUE);
	/* other schema versions are kept as they are */
	encode(z, &b);
	b.data[5] = 7;
	struct change *d = NULL;
	assert_int_equal(change_decode_canonical(b.data, b.len, NULL, &d), TLY_OK);
	assert_int_equal(change_schema(d), 7);
	change_free(d);
	buf_free(&b);
	change_free(z);
	buf_free(&good);
	change_free(c);
}

/* Every single-byte mutation of a valid encoding either fails cleanly or
 * decodes to something that re-encodes to exactly those bytes: there is
 * one encoding per change. */
static void test_decode_mutations_are_canonical(void **state)
{
	(void)state;
	struct change *c = mk_full();
	struct buf good;
	encode(c, &good);
	const unsigned char vals[] = {0x00, 0x01, 0x7F, 0x80, 0xFF};
	for (size_t off = 0; off < good.len; off++) {
		for (size_t k = 0; k < sizeof vals; k++) {
			unsigned char *p = malloc(good.len);
			memcpy(p, good.data, good.len);
			p[off] = vals[k];
			struct change *d = NULL;
			if (change_decode_canonical(p, good.len, NULL, &d) == TLY_OK) {
				struct buf re;
				encode(d, &re);
				assert_int_equal(re.len, good.len);
				assert_memory_equal(re.data, p, good.len);
				buf_free(&re);
				change_free(d);
			} else {
				assert_null(d);
			}
			free(p);
		}
	}
	buf_free(&good);
	change_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_and_accessors),
		cmocka_unit_test(test_new_rejects),
		cmocka_unit_test(test_identifiers),
		cmocka_unit_test(test_set_replace_get),
		cmocka_unit_test(test_canonical_order),
		cmocka_unit_test(test_limits_on_set),
		cmocka_unit_test(test_utf8_validator),
		cmocka_unit_test(test_text_values_utf8),
		cmocka_unit_test(test_encoding_layout),
		cmocka_unit_test(test_encode_cap_leaves_buffer),
		cmocka_unit_test(test_decode_round_trip),
		cmocka_unit_test(test_decode_truncated_everywhere),
		cmocka_unit_test(test_decode_trailing),
		cmocka_unit_test(test_decode_hand_built),
		cmocka_unit_test(test_decode_bad_header),
		cmocka_unit_test(test_decode_mutations_are_canonical),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
