/*
 * jsonpull — reads a JSON text that jsoncheck_scan accepted, one value at a
 * time, straight from its bytes: no tree, no copy of a string that holds no
 * escape.
 *
 * The bulk decoders (push, pull_answer) build their changes with it while
 * the bytes go by, where jansson would first build a hash table per object.
 * It trusts what the scan proved (syntax, at most 64 levels of nesting,
 * string sizes, UTF-8, escapes, surrogate pairs, no \u0000) and checks only
 * what the scan leaves to a parser (PROTOCOL.md §9 step 3), with the codes
 * message.c gave jansson's errors, each at its place in the text so that
 * the first one in the text wins, as it did with jansson:
 *   - a key that an object already has, compared after unescaping:
 *     TLY_E_DUP_KEY;
 *   - an integer outside int64, or a number with a fraction or exponent
 *     that overflows a double (as strtod sees it): TLY_E_BAD_VALUE.
 * Those and TLY_E_NOMEM are the only errors its reads return. A caller
 * that meets a value it does not want reads on (jsonpull_skip) rather than
 * stop: a parse error later in the text must still be the answer.
 *
 * On a text the scan refused it reads within the buffer and returns
 * TLY_E_BAD_JSON where it notices, but its results mean nothing.
 *
 * Ownership: struct jsonpull is the caller's (usually on the stack); it
 * borrows the text, which must outlive it and every jsonpull_str read from
 * it, and owns what jsonpull_clear frees.
 */
#ifndef TALLY_PROTOCOL_JSONPULL_H
#define TALLY_PROTOCOL_JSONPULL_H

#include <stddef.h>
#include <stdint.h>

/* As deep as jsoncheck tracks nesting, whatever the limits say. */
#define JSONPULL_DEPTH_MAX 64

enum jsonpull_type {
	JSONPULL_OBJECT = 1,
	JSONPULL_ARRAY,
	JSONPULL_STRING,
	JSONPULL_INT,
	JSONPULL_REAL,
	JSONPULL_TRUE,
	JSONPULL_FALSE,
	JSONPULL_NULL,
};

/* A string as it stands in the text, between its quotes. */
struct jsonpull_str {
	const char *raw;
	size_t raw_len;
	int escaped; /* holds a backslash: its value differs from raw */
};

struct jsonpull_value {
	enum jsonpull_type type;
	const char *at;        /* its first byte, to read it again (jsonpull_init_again) */
	struct jsonpull_str s; /* JSONPULL_STRING */
	int64_t i;             /* JSONPULL_INT */
};

/* A key of an open object, unescaped: in the text, or in the arena. */
struct jsonpull_key {
	const char *s;
	size_t n;
};

struct jsonpull_level {
	int object;
	int many;         /* over JSONPULL_LINEAR keys: checked by sorting at its end */
	size_t first_key; /* its keys are keys[first_key .. nkeys) */
};

struct jsonpull {
	const char *p;
	const char *end;
	size_t text_len;
	int check_keys; /* 0 when reading again what was read (and checked) once */
	size_t depth;   /* containers open */
	struct jsonpull_level level[JSONPULL_DEPTH_MAX];
	struct jsonpull_key *keys; /* keys of the open objects, innermost last */
	size_t nkeys, cap;
	char *arena; /* unescaped keys; text-sized, made at the first escaped key */
	size_t arena_len;
};

/* Before the first value of text[0..n). */
void jsonpull_init(struct jsonpull *j, const char *text, size_t n);
/* Before a value that a jsonpull over the same text already read whole
 * (at = its jsonpull_value.at, end = the text's end). Keys are not checked
 * again: that reading did it. */
void jsonpull_init_again(struct jsonpull *j, const char *at, const char *end);
/* Frees what j allocated; j may then be initialised again. */
void jsonpull_clear(struct jsonpull *j);

/* Containers open: save it before jsonpull_value to skip what it opens. */
size_t jsonpull_depth(const struct jsonpull *j);

/* Reads the next value: a scalar whole, an object or array only its
 * opening bracket (then jsonpull_member or jsonpull_element walk it). */
int jsonpull_value(struct jsonpull *j, struct jsonpull_value *v);

/* In an open object: *more = 1 and *key the next member's key (read its
 * value next), or *more = 0 and the object closed. */
int jsonpull_member(struct jsonpull *j, struct jsonpull_str *key, int *more);

/* In an open array: *more = 1 if an element follows (read it next), or
 * *more = 0 and the array closed. */
int jsonpull_element(struct jsonpull *j, int *more);

/* Reads on until only `depth` containers are open, checking as it goes:
 * after jsonpull_value opened a container, jsonpull_skip(j, the depth
 * before) reads the rest of it; after a scalar it does nothing. */
int jsonpull_skip(struct jsonpull *j, size_t depth);

/* The string's value written into dst, at most cap bytes (no NUL added).
 * Returns the value's whole length, so cap 0 measures it. */
size_t jsonpull_str_copy(const struct jsonpull_str *s, char *dst, size_t cap);

#endif
