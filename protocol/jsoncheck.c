/*
 * jsoncheck — strict single-pass JSON scan in constant memory (see
 * jsoncheck.h and PROTOCOL.md §9).
 *
 * The scanner is a loop over a small state machine, never recursion, so a
 * text nested 100,000 deep is refused at depth max_depth after reading that
 * many bytes and using the same stack as a flat one. The only per-level
 * state is one bit (object or array) and one member counter, kept in fixed
 * arrays sized for JSONCHECK_DEPTH_MAX levels.
 */
#include <stdint.h>
#include <string.h>

#include "change.h"
#include "error.h"
#include "jsoncheck.h"

/* The deepest nesting this scanner tracks, whatever the limits say. Every
 * protocol message needs 4 levels; the configured max_depth is 8. */
#define JSONCHECK_DEPTH_MAX 64

/* Values a change object may hold besides its fields (its own members, its
 * fields object, itself), with room to spare, and values a message may
 * hold outside its changes. */
#define JSONCHECK_VALUES_PER_CHANGE 16
#define JSONCHECK_VALUES_OUTSIDE 64

enum scan_state {
	ST_VALUE,       /* a value must come next */
	ST_VALUE_OR_END,/* just after '[': a value or ']' */
	ST_KEY,         /* after '{' or ',' in an object: a key string */
	ST_KEY_OR_END,  /* just after '{': a key or '}' */
	ST_AFTER,       /* a value ended: ',' or a closer, or the end of the text */
};

struct scan {
	const unsigned char *p;
	const unsigned char *end;
	const struct limits *l;
	size_t depth;
	size_t max_depth;
	uint64_t is_object; /* bit d set: level d is an object */
	size_t members[JSONCHECK_DEPTH_MAX];
	size_t max_values;
	struct jsoncheck_stats st;
};

/*
 * Depth and per-container counts alone still let 32 MiB of "[0,0,...]"
 * split over many arrays become ~16 million jansson nodes (~40 bytes each,
 * over 600 MiB). No message can hold more values than max_changes changes
 * of max_fields fields each plus a fixed frame, so the whole text is held
 * to that: jansson's tree is then a small multiple of the input at most.
 */
static size_t values_bound(const struct limits *l)
{
	size_t per = l->max_fields + JSONCHECK_VALUES_PER_CHANGE;
	if (per < l->max_fields || (l->max_changes && per > (SIZE_MAX - JSONCHECK_VALUES_OUTSIDE) /
								      l->max_changes))
		return SIZE_MAX;
	return l->max_changes * per + JSONCHECK_VALUES_OUTSIDE;
}

static int is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_ws(struct scan *s)
{
	while (s->p < s->end && is_ws(*s->p))
		s->p++;
}

static int hex_val(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reads the 4 hex digits after "\u" at p. */
static int read_u4(const unsigned char *p, const unsigned char *end, uint32_t *out)
{
	uint32_t v = 0;
	if (end - p < 4)
		return TLY_E_BAD_JSON;
	for (int k = 0; k < 4; k++) {
		int h = hex_val(p[k]);
		if (h < 0)
			return TLY_E_BAD_JSON;
		v = (v << 4) | (uint32_t)h;
	}
	*out = v;
	return TLY_OK;
}

/*
 * Scans a string; s->p is on the opening quote and ends after the closing
 * one. Raw bytes are checked in runs by change_check_utf8 (the one UTF-8
 * validator): a run ends only at '"', '\\' or a control byte, all ASCII, and
 * ASCII never occurs inside a multi-byte sequence, so splitting there cannot
 * cut a valid character in two. The unescaped length is what a parser will
 * allocate, so that is what max_field_bytes bounds.
 */
static int scan_string(struct scan *s)
{
	size_t len = 0;
	size_t max = s->l->max_field_bytes;
	int rc;

	s->p++; /* opening quote */
	for (;;) {
		const unsigned char *run = s->p;
		while (s->p < s->end && *s->p != '"' && *s->p != '\\' && *s->p >= 0x20)
			s->p++;
		size_t n = (size_t)(s->p - run);
		if (n > max - len)
			return TLY_E_FIELD_TOO_LONG;
		/* A text cut short is refused as such, not as the half character
		 * the cut may have left at its end. */
		if (s->p >= s->end)
			return TLY_E_BAD_JSON;
		s->st.string_bytes += n;
		if (n > 0) {
			len += n;
			rc = change_check_utf8((const char *)run, n);
			if (rc != TLY_OK)
				return rc;
		}
		unsigned char c = *s->p;
		if (c == '"') {
			s->p++;
			return TLY_OK;
		}
		if (c < 0x20)
			return TLY_E_BAD_JSON; /* RFC 8259: control characters must be escaped */

		/* An escape. */
		if (s->end - s->p < 2)
			return TLY_E_BAD_JSON;
		size_t add;
		switch (s->p[1]) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
			add = 1;
			s->p += 2;
			break;
		case 'u': {
			uint32_t cp;
			if ((rc = read_u4(s->p + 2, s->end, &cp)) != TLY_OK)
				return rc;
			s->p += 6;
			if (cp == 0)
				return TLY_E_BAD_UTF8; /* NUL would truncate the value in C and SQLite */
			if (cp >= 0xDC00 && cp <= 0xDFFF)
				return TLY_E_LONE_SURROGATE; /* a low half with no high half before it */
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				uint32_t lo;
				if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u')
					return TLY_E_LONE_SURROGATE;
				if ((rc = read_u4(s->p + 2, s->end, &lo)) != TLY_OK)
					return rc;
				if (lo < 0xDC00 || lo > 0xDFFF)
					return TLY_E_LONE_SURROGATE;
				s->p += 6;
				add = 4; /* a supplementary character is 4 bytes of UTF-8 */
			} else {
				add = cp < 0x80 ? 1 : cp < 0x800 ? 2 : 3;
			}
			break;
		}
		default:
			return TLY_E_BAD_JSON;
		}
		if (add > max - len)
			return TLY_E_FIELD_TOO_LONG;
		len += add;
		s->st.string_bytes += add;
	}
}

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 8259 number: -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)? */
static int scan_number(struct scan *s)
{
	const unsigned char *start = s->p;
	int real = 0;

	if (s->p < s->end && *s->p == '-')
		s->p++;
	if (s->p >= s->end || !is_digit(*s->p))
		return TLY_E_BAD_JSON;
	if (*s->p == '0') {
		s->p++;
	} else {
		while (s->p < s->end && is_digit(*s->p))
			s->p++;
	}
	if (s->p < s->end && *s->p == '.') {
		real = 1;
		s->p++;
		if (s->p >= s->end || !is_digit(*s->p))
			return TLY_E_BAD_JSON;
		while (s->p < s->end && is_digit(*s->p))
			s->p++;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		real = 1;
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (s->p >= s->end || !is_digit(*s->p))
			return TLY_E_BAD_JSON;
		while (s->p < s->end && is_digit(*s->p))
			s->p++;
	}
	/* "01" or "1x": the next byte must end the token. The state after a
	 * value accepts only whitespace, ',', ']', '}' or the end, so leading
	 * zeros and letters are refused there. */
	if (real) {
		s->st.reals++;
	} else {
		size_t len = (size_t)(s->p - start);
		/* As the integer prints back: "-0" is 0. */
		s->st.int_digits += (len == 2 && start[0] == '-' && start[1] == '0') ? 1 : len;
	}
	return TLY_OK;
}

static int scan_literal(struct scan *s, const char *word, size_t n)
{
	if ((size_t)(s->end - s->p) < n)
		return TLY_E_BAD_JSON;
	for (size_t k = 0; k < n; k++) {
		if (s->p[k] != (unsigned char)word[k])
			return TLY_E_BAD_JSON;
	}
	s->p += n;
	return TLY_OK;
}

/* Counts one more member of the innermost container. */
static int add_member(struct scan *s)
{
	if (++s->members[s->depth - 1] > s->l->max_elements)
		return TLY_E_TOO_MANY;
	return TLY_OK;
}

static int open_container(struct scan *s, int object)
{
	if (s->depth >= s->max_depth)
		return TLY_E_TOO_DEEP;
	uint64_t bit = UINT64_C(1) << s->depth;
	if (object)
		s->is_object |= bit;
	else
		s->is_object &= ~bit;
	s->members[s->depth] = 0;
	s->depth++;
	s->p++;
	return TLY_OK;
}

static int top_is_object(const struct scan *s)
{
	return (int)((s->is_object >> (s->depth - 1)) & 1);
}

int jsoncheck_scan(const char *text, size_t n, const struct limits *l)
{
	return jsoncheck_scan_stats(text, n, l, NULL);
}

int jsoncheck_scan_stats(const char *text, size_t n, const struct limits *l,
			 struct jsoncheck_stats *out)
{
	struct scan s;
	enum scan_state st = ST_VALUE;
	int rc;

	s.p = (const unsigned char *)text;
	s.end = s.p + n;
	s.l = limits_or_default(l);
	s.depth = 0;
	s.max_depth = s.l->max_depth < JSONCHECK_DEPTH_MAX ? s.l->max_depth : JSONCHECK_DEPTH_MAX;
	s.is_object = 0;
	memset(&s.st, 0, sizeof s.st);
	s.max_values = values_bound(s.l);

	for (;;) {
		skip_ws(&s);
		if (s.p >= s.end) {
			/* Only a complete top-level value may end the text. */
			if (st != ST_AFTER || s.depth != 0)
				return TLY_E_BAD_JSON;
			if (out)
				*out = s.st;
			return TLY_OK;
		}
		unsigned char c = *s.p;

		switch (st) {
		case ST_KEY_OR_END:
			if (c == '}') {
				s.p++;
				s.depth--;
				st = ST_AFTER;
				continue;
			}
			/* fall through */
		case ST_KEY:
			if (c != '"')
				return TLY_E_BAD_JSON;
			if ((rc = add_member(&s)) != TLY_OK || (rc = scan_string(&s)) != TLY_OK)
				return rc;
			skip_ws(&s);
			if (s.p >= s.end || *s.p != ':')
				return TLY_E_BAD_JSON;
			s.p++;
			st = ST_VALUE;
			continue;

		case ST_VALUE_OR_END:
			if (c == ']') {
				s.p++;
				s.depth--;
				st = ST_AFTER;
				continue;
			}
			if ((rc = add_member(&s)) != TLY_OK)
				return rc;
			/* fall through */
		case ST_VALUE:
			if (++s.st.values > s.max_values)
				return TLY_E_TOO_MANY;
			if (c == '{') {
				if ((rc = open_container(&s, 1)) != TLY_OK)
					return rc;
				st = ST_KEY_OR_END;
				continue;
			}
			if (c == '[') {
				if ((rc = open_container(&s, 0)) != TLY_OK)
					return rc;
				st = ST_VALUE_OR_END;
				continue;
			}
			if (c == '"')
				rc = scan_string(&s);
			else if (c == '-' || is_digit(c))
				rc = scan_number(&s);
			else if (c == 't')
				rc = scan_literal(&s, "true", 4);
			else if (c == 'f')
				rc = scan_literal(&s, "false", 5);
			else if (c == 'n')
				rc = scan_literal(&s, "null", 4);
			else
				rc = TLY_E_BAD_JSON;
			if (rc != TLY_OK)
				return rc;
			st = ST_AFTER;
			continue;

		case ST_AFTER:
			if (s.depth == 0)
				return TLY_E_BAD_JSON; /* a second value, or junk after the first */
			if (c == ',') {
				s.p++;
				if (top_is_object(&s)) {
					st = ST_KEY;
				} else {
					if ((rc = add_member(&s)) != TLY_OK)
						return rc;
					st = ST_VALUE;
				}
				continue;
			}
			if ((c == '}' && top_is_object(&s)) || (c == ']' && !top_is_object(&s))) {
				s.p++;
				s.depth--;
				continue;
			}
			return TLY_E_BAD_JSON;
		}
	}
}
