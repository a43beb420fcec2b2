/*
 * jsonpull — pull reader over a scanned JSON text (see jsonpull.h).
 *
 * jansson (JSON_REJECT_DUPLICATES) refused a repeated key when it read the
 * repeat, before the value after it, and an out-of-range number when it
 * read the number; its first error in the text was the answer. This reader
 * reports the same errors at the same places. Keys of an object are
 * compared one by one while it has few (every object of a valid message
 * does); past JSONPULL_LINEAR keys, comparing each new key with all the
 * others would cost the square of a hostile object's 5,000 keys, so the
 * object's keys are sorted once instead, when it closes or when an error
 * is about to be returned from inside it: a repeat found then was read
 * before anything inside the object that comes later, so it is the error
 * jansson would have met first. Sorting, unlike a hash, has no input that
 * makes it slow.
 */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "jsonpull.h"

#define JSONPULL_LINEAR 32

void jsonpull_init(struct jsonpull *j, const char *text, size_t n)
{
	j->p = text;
	j->end = text + n;
	j->text_len = n;
	j->check_keys = 1;
	j->depth = 0;
	j->keys = NULL;
	j->nkeys = j->cap = 0;
	j->arena = NULL;
	j->arena_len = 0;
}

void jsonpull_init_again(struct jsonpull *j, const char *at, const char *end)
{
	jsonpull_init(j, at, (size_t)(end - at));
	j->check_keys = 0;
}

void jsonpull_clear(struct jsonpull *j)
{
	free(j->keys);
	free(j->arena);
	j->keys = NULL;
	j->arena = NULL;
	j->nkeys = j->cap = j->arena_len = 0;
}

size_t jsonpull_depth(const struct jsonpull *j)
{
	return j->depth;
}

/* ---- strings -------------------------------------------------------------- */

static int hex_val(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return 0; /* the scan let no other byte through */
}

static uint32_t read_u4(const unsigned char *p)
{
	return (uint32_t)(hex_val(p[0]) << 12 | hex_val(p[1]) << 8 | hex_val(p[2]) << 4 |
			  hex_val(p[3]));
}

size_t jsonpull_str_copy(const struct jsonpull_str *s, char *dst, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s->raw;
	const unsigned char *end = p + s->raw_len;
	size_t len = 0;

	if (!s->escaped) {
		if (cap)
			memcpy(dst, s->raw, s->raw_len < cap ? s->raw_len : cap);
		return s->raw_len;
	}
	while (p < end) {
		const unsigned char *run = p;
		while (p < end && *p != '\\')
			p++;
		size_t n = (size_t)(p - run);
		if (len < cap)
			memcpy(dst + len, run, n < cap - len ? n : cap - len);
		len += n;
		if (p >= end)
			break;
		unsigned char out[4];
		size_t k = 1;
		if (end - p < 2)
			break;
		switch (p[1]) {
		case 'b': out[0] = '\b'; break;
		case 'f': out[0] = '\f'; break;
		case 'n': out[0] = '\n'; break;
		case 'r': out[0] = '\r'; break;
		case 't': out[0] = '\t'; break;
		case 'u': {
			if (end - p < 6)
				return len;
			uint32_t cp = read_u4(p + 2);
			if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 12) {
				/* The scan paired every high half with a low one. */
				cp = 0x10000 + ((cp - 0xD800) << 10) + (read_u4(p + 8) - 0xDC00);
				p += 6;
			}
			if (cp < 0x80) {
				out[0] = (unsigned char)cp;
			} else if (cp < 0x800) {
				out[0] = (unsigned char)(0xC0 | cp >> 6);
				out[1] = (unsigned char)(0x80 | (cp & 0x3F));
				k = 2;
			} else if (cp < 0x10000) {
				out[0] = (unsigned char)(0xE0 | cp >> 12);
				out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
				out[2] = (unsigned char)(0x80 | (cp & 0x3F));
				k = 3;
			} else {
				out[0] = (unsigned char)(0xF0 | cp >> 18);
				out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
				out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
				out[3] = (unsigned char)(0x80 | (cp & 0x3F));
				k = 4;
			}
			p += 4;
			break;
		}
		default: /* '"', '\\', '/' */
			out[0] = p[1];
			break;
		}
		p += 2;
		for (size_t i = 0; i < k; i++, len++) {
			if (len < cap)
				dst[len] = (char)out[i];
		}
	}
	return len;
}

/* Reads the string whose opening quote is at j->p. */
static int read_string(struct jsonpull *j, struct jsonpull_str *s)
{
	const char *start = j->p + 1;
	const char *q;

	/* Texts are mostly long runs without escapes: find the closing quote
	 * with memchr, then look for a backslash before it. */
	q = memchr(start, '"', (size_t)(j->end - start));
	if (!q)
		return TLY_E_BAD_JSON;
	s->escaped = 0;
	const char *b = memchr(start, '\\', (size_t)(q - start));
	if (b) {
		s->escaped = 1;
		/* That quote may be escaped: walk the escapes from the first. */
		const char *p = b;
		for (;;) {
			if (p >= j->end)
				return TLY_E_BAD_JSON;
			if (*p == '\\') {
				p += 2;
				continue;
			}
			if (*p == '"')
				break;
			p++;
		}
		q = p;
	}
	s->raw = start;
	s->raw_len = (size_t)(q - start);
	j->p = q + 1;
	return TLY_OK;
}

/* ---- keys ------------------------------------------------------------------- */

static int key_cmp(const void *a, const void *b)
{
	const struct jsonpull_key *x = a, *y = b;
	if (x->n != y->n)
		return x->n < y->n ? -1 : 1;
	return memcmp(x->s, y->s, x->n);
}

/* Whether the keys of an object past JSONPULL_LINEAR keys repeat one. */
static int level_has_repeat(struct jsonpull *j, const struct jsonpull_level *lv, size_t upto)
{
	size_t n = upto - lv->first_key;
	struct jsonpull_key *k = j->keys + lv->first_key;
	qsort(k, n, sizeof *k, key_cmp);
	for (size_t i = 1; i < n; i++) {
		if (key_cmp(&k[i - 1], &k[i]) == 0)
			return 1;
	}
	return 0;
}

/*
 * An error found at j->p: a repeated key read earlier in an open object
 * whose keys were left for sorting came first in the text. (The sort
 * reorders the keys; nothing reads on after an error.)
 */
static int fail(struct jsonpull *j, int rc)
{
	size_t upto = j->nkeys;

	/* Innermost first: each object's keys end where the next deeper
	 * object's begin. */
	for (size_t d = j->depth; d-- > 0;) {
		struct jsonpull_level *lv = &j->level[d];
		if (!lv->object)
			continue;
		if (lv->many && level_has_repeat(j, lv, upto))
			return TLY_E_DUP_KEY;
		upto = lv->first_key;
	}
	return rc;
}

static int key_add(struct jsonpull *j, const struct jsonpull_str *k)
{
	struct jsonpull_level *lv = &j->level[j->depth - 1];
	struct jsonpull_key key = {k->raw, k->raw_len};

	if (k->escaped) {
		/* The unescaped keys of a text fit in its length. */
		if (!j->arena) {
			j->arena = malloc(j->text_len ? j->text_len : 1);
			if (!j->arena)
				return TLY_E_NOMEM;
		}
		key.s = j->arena + j->arena_len;
		key.n = jsonpull_str_copy(k, j->arena + j->arena_len, j->text_len - j->arena_len);
		j->arena_len += key.n;
	}
	if (!lv->many) {
		for (size_t i = lv->first_key; i < j->nkeys; i++) {
			if (j->keys[i].n == key.n && memcmp(j->keys[i].s, key.s, key.n) == 0)
				return TLY_E_DUP_KEY;
		}
		lv->many = j->nkeys - lv->first_key + 1 > JSONPULL_LINEAR;
	}
	if (j->nkeys == j->cap) {
		size_t ncap = j->cap ? 2 * j->cap : 64;
		struct jsonpull_key *nk = realloc(j->keys, ncap * sizeof *nk);
		if (!nk)
			return TLY_E_NOMEM;
		j->keys = nk;
		j->cap = ncap;
	}
	j->keys[j->nkeys++] = key;
	return TLY_OK;
}

/* ---- values ------------------------------------------------------------------ */

static void skip_ws(struct jsonpull *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
		j->p++;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * A number with a fraction or an exponent, between start and end. jansson
 * refused one that strtod reads as out of a double's range, having first
 * put the locale's decimal point in place of '.' so strtod would read the
 * fraction; so does this.
 */
static int check_real(const char *start, const char *end)
{
	char small[64];
	size_t n = (size_t)(end - start);
	char *t = n < sizeof small ? small : malloc(n + 1);
	int rc = TLY_OK;

	if (!t)
		return TLY_E_NOMEM;
	memcpy(t, start, n);
	t[n] = '\0';
	char point = localeconv()->decimal_point[0];
	if (point != '.') {
		char *dot = strchr(t, '.');
		if (dot)
			*dot = point;
	}
	errno = 0;
	double v = strtod(t, NULL);
	if ((v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE)
		rc = TLY_E_BAD_VALUE;
	if (t != small)
		free(t);
	return rc;
}

static int read_number(struct jsonpull *j, struct jsonpull_value *v)
{
	const char *start = j->p;
	int neg = *j->p == '-';
	int rc;

	j->p += neg;
	const char *digits = j->p;
	while (j->p < j->end && is_digit(*j->p))
		j->p++;
	size_t nd = (size_t)(j->p - digits);
	if (nd == 0)
		return TLY_E_BAD_JSON;
	if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E')) {
		if (*j->p == '.') {
			j->p++;
			while (j->p < j->end && is_digit(*j->p))
				j->p++;
		}
		if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
			j->p++;
			if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
				j->p++;
			while (j->p < j->end && is_digit(*j->p))
				j->p++;
		}
		if ((rc = check_real(start, j->p)) != TLY_OK)
			return fail(j, rc);
		v->type = JSONPULL_REAL;
		return TLY_OK;
	}
	/* No leading zeros (the scan refused them): past 19 digits is past
	 * int64, and 19 digits fit a uint64. */
	if (nd > 19)
		return fail(j, TLY_E_BAD_VALUE);
	uint64_t u = 0;
	for (size_t k = 0; k < nd; k++)
		u = u * 10 + (uint64_t)(digits[k] - '0');
	if (u > (uint64_t)INT64_MAX + (uint64_t)neg)
		return fail(j, TLY_E_BAD_VALUE);
	v->type = JSONPULL_INT;
	v->i = neg ? (int64_t)(0 - u) : (int64_t)u; /* 0 - u: INT64_MIN too */
	return TLY_OK;
}

static int open_level(struct jsonpull *j, int object)
{
	if (j->depth >= JSONPULL_DEPTH_MAX)
		return TLY_E_TOO_DEEP; /* the scan refused it already */
	struct jsonpull_level *lv = &j->level[j->depth++];
	lv->object = object;
	lv->many = 0;
	lv->first_key = j->nkeys;
	j->p++;
	return TLY_OK;
}

static int literal(struct jsonpull *j, struct jsonpull_value *v, enum jsonpull_type t, size_t n)
{
	if ((size_t)(j->end - j->p) < n)
		return TLY_E_BAD_JSON;
	v->type = t;
	j->p += n;
	return TLY_OK;
}

int jsonpull_value(struct jsonpull *j, struct jsonpull_value *v)
{
	skip_ws(j);
	if (j->p >= j->end)
		return TLY_E_BAD_JSON;
	v->at = j->p;
	switch (*j->p) {
	case '{':
		v->type = JSONPULL_OBJECT;
		return open_level(j, 1);
	case '[':
		v->type = JSONPULL_ARRAY;
		return open_level(j, 0);
	case '"':
		v->type = JSONPULL_STRING;
		return read_string(j, &v->s);
	case 't':
		return literal(j, v, JSONPULL_TRUE, 4);
	case 'f':
		return literal(j, v, JSONPULL_FALSE, 5);
	case 'n':
		return literal(j, v, JSONPULL_NULL, 4);
	default:
		return read_number(j, v);
	}
}

/* Closes the innermost container at its closing bracket. */
static int close_level(struct jsonpull *j)
{
	struct jsonpull_level *lv = &j->level[j->depth - 1];
	int repeat = lv->object && lv->many && level_has_repeat(j, lv, j->nkeys);

	j->p++;
	if (lv->object)
		j->nkeys = lv->first_key;
	j->depth--;
	/* The repeat was read before anything after this object. */
	return repeat ? TLY_E_DUP_KEY : TLY_OK;
}

int jsonpull_member(struct jsonpull *j, struct jsonpull_str *key, int *more)
{
	int rc;

	*more = 0;
	skip_ws(j);
	if (j->p < j->end && *j->p == ',') {
		j->p++;
		skip_ws(j);
	}
	if (j->p >= j->end || j->depth == 0)
		return TLY_E_BAD_JSON;
	if (*j->p == '}')
		return close_level(j);
	if (*j->p != '"' || (rc = read_string(j, key)) != TLY_OK)
		return TLY_E_BAD_JSON;
	skip_ws(j);
	if (j->p >= j->end || *j->p != ':')
		return TLY_E_BAD_JSON;
	j->p++;
	if (j->check_keys && (rc = key_add(j, key)) != TLY_OK)
		return rc;
	*more = 1;
	return TLY_OK;
}

int jsonpull_element(struct jsonpull *j, int *more)
{
	*more = 0;
	skip_ws(j);
	if (j->p < j->end && *j->p == ',') {
		j->p++;
		skip_ws(j);
	}
	if (j->p >= j->end || j->depth == 0)
		return TLY_E_BAD_JSON;
	if (*j->p == ']')
		return close_level(j);
	*more = 1;
	return TLY_OK;
}

int jsonpull_skip(struct jsonpull *j, size_t depth)
{
	struct jsonpull_str key;
	struct jsonpull_value v;
	int more, rc;

	while (j->depth > depth) {
		if (j->level[j->depth - 1].object)
			rc = jsonpull_member(j, &key, &more);
		else
			rc = jsonpull_element(j, &more);
		if (rc == TLY_OK && more)
			rc = jsonpull_value(j, &v);
		if (rc != TLY_OK)
			return rc;
	}
	return TLY_OK;
}
