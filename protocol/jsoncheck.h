/*
 * jsoncheck — a strict, single-pass, constant-memory scan of a JSON text,
 * run before a parser builds any tree from it.
 *
 * jansson would allocate the whole document before we could count its
 * changes or measure its strings. This scan walks the bytes once with a
 * fixed-size state and refuses, with a specific code, anything the limits
 * forbid: nesting deeper than max_depth (TLY_E_TOO_DEEP), a string longer
 * than max_field_bytes after unescaping (TLY_E_FIELD_TOO_LONG), an array or
 * object with more than max_elements members, or more values in all than
 * max_changes changes of max_fields fields could need (TLY_E_TOO_MANY;
 * bounds the tree the parser builds), bytes that
 * are not UTF-8 or an escaped NUL (TLY_E_BAD_UTF8), an unpaired surrogate
 * escape (TLY_E_LONE_SURROGATE), and syntax errors (TLY_E_BAD_JSON).
 * Duplicate keys are left to the reader that follows: jsonpull (push and
 * pull answers) or jansson's JSON_REJECT_DUPLICATES (the other messages).
 */
#ifndef TALLY_PROTOCOL_JSONCHECK_H
#define TALLY_PROTOCOL_JSONCHECK_H

#include <stddef.h>

#include "limits.h"

int jsoncheck_scan(const char *text, size_t n, const struct limits *l);

/*
 * What a parser must have built from a text that passed the scan. message.c
 * compares jansson's tree against it: jansson 2.14 drops bytes from a string
 * or number when an allocation fails mid-token and carries on (jansson
 * issue #362), so a tree that does not add up is refused as TLY_E_NOMEM
 * rather than used with a value silently altered.
 */
struct jsoncheck_stats {
	size_t values;       /* every value, containers included */
	size_t string_bytes; /* keys and strings, unescaped */
	size_t int_digits;   /* integer tokens' length, as the integers print */
	size_t reals;        /* numbers with a fraction or exponent */
};

/* jsoncheck_scan, filling *out (when not NULL) on success. */
int jsoncheck_scan_stats(const char *text, size_t n, const struct limits *l,
			 struct jsoncheck_stats *out);

#endif
