/*
 * msg_diff — decodes one text with msg_decode_push / msg_decode_pull_answer
 * (read from the bytes by jsonpull) and with the jansson decoders they
 * replaced (msg_jansson.h), and says whether they agree: the same code,
 * both results cleared on error, and on success the same members and, for
 * every change, the same canonical bytes, eff and links. Used by the
 * msg_diff fuzz target and tests/protocol/test_jsonpull.c.
 */
#ifndef TALLY_FUZZ_MSG_DIFF_H
#define TALLY_FUZZ_MSG_DIFF_H

#include <stdio.h>
#include <string.h>

#include "msg_jansson.h"
#include "protocol/buf.h"
#include "protocol/change.h"
#include "protocol/error.h"
#include "protocol/limits.h"
#include "protocol/message.h"

/* The limits the comparisons run under: the defaults, then tight ones
 * whose counts and sizes real inputs reach (max_string_bytes 70 still
 * takes a hash; 20 does not; the last lowers only the counts, so that the
 * vectors pass the scan and meet them). */
static inline size_t msg_diff_limits(struct limits *out, size_t cap)
{
	static const struct {
		size_t changes, fields, field_bytes, string_bytes, depth, elements;
	} tight[] = {
		{2, 3, 80, 70, 6, 12},
		{3, 2, 40, 20, 5, 6},
		{4, 2, 16384, 1024, 8, 5000},
	};
	size_t k = 0;
	if (cap > k)
		limits_default(&out[k]);
	k++;
	for (size_t i = 0; i < sizeof tight / sizeof tight[0]; i++, k++) {
		if (cap <= k)
			continue;
		limits_default(&out[k]);
		out[k].max_changes = tight[i].changes;
		out[k].max_fields = tight[i].fields;
		out[k].max_field_bytes = tight[i].field_bytes;
		out[k].max_string_bytes = tight[i].string_bytes;
		out[k].max_depth = tight[i].depth;
		out[k].max_elements = tight[i].elements;
		out[k].max_pull_limit = 2;
	}
	return k;
}

/* NULL when the changes agree, else what differs (in why, of size wn). */
static inline const char *msg_diff_changes(struct change *const *a, struct change *const *b,
					   size_t n, char *why, size_t wn)
{
	struct buf x, y;
	const char *bad = NULL;

	buf_init(&x, 64u << 20);
	buf_init(&y, 64u << 20);
	for (size_t i = 0; i < n && !bad; i++) {
		buf_reset(&x);
		buf_reset(&y);
		if (change_encode_canonical(a[i], &x) != TLY_OK ||
		    change_encode_canonical(b[i], &y) != TLY_OK || x.len != y.len ||
		    memcmp(x.data, y.data, x.len) != 0 || !change_equal(a[i], b[i]))
			bad = "canonical bytes";
		else if (change_eff(a[i]) != change_eff(b[i]))
			bad = "eff";
		else if (!change_hash(a[i]) || !change_hash(b[i]) ||
			 memcmp(change_hash(a[i]), change_hash(b[i]), CHANGE_HASH_LEN) != 0 ||
			 memcmp(change_prev(a[i]), change_prev(b[i]), CHANGE_HASH_LEN) != 0)
			bad = "links";
		if (bad)
			snprintf(why, wn, "change %zu: %s", i, bad);
	}
	buf_free(&x);
	buf_free(&y);
	return bad ? why : NULL;
}

/* NULL when both push decoders agree on text[0..n) under l. */
static inline const char *msg_diff_push(const char *text, size_t n, const struct limits *l,
					char *why, size_t wn)
{
	struct msg_push a, b;
	const char *bad = NULL;
	int ra = msg_decode_push(text, n, l, &a);
	int rb = ref_msg_decode_push(text, n, l, &b);

	if (ra != rb) {
		snprintf(why, wn, "push: %s, jansson %s", error_name(ra), error_name(rb));
		bad = why;
	} else if (ra != TLY_OK) {
		if (a.changes || a.n || a.site[0])
			bad = "push: not cleared on error";
	} else if (strcmp(a.site, b.site) != 0 || memcmp(a.prev, b.prev, CHANGE_HASH_LEN) != 0 ||
		   memcmp(a.head, b.head, CHANGE_HASH_LEN) != 0 || a.device_ms != b.device_ms ||
		   a.queue != b.queue || a.n != b.n) {
		bad = "push: members";
	} else {
		bad = msg_diff_changes(a.changes, b.changes, a.n, why, wn);
	}
	msg_push_clear(&a);
	msg_push_clear(&b);
	return bad;
}

/* NULL when both pull answer decoders agree on text[0..n) under l. */
static inline const char *msg_diff_pull_answer(const char *text, size_t n,
					       const struct limits *l, char *why, size_t wn)
{
	struct msg_pull_answer a, b;
	const char *bad = NULL;
	int ra = msg_decode_pull_answer(text, n, l, &a);
	int rb = ref_msg_decode_pull_answer(text, n, l, &b);

	if (ra != rb) {
		snprintf(why, wn, "pull_answer: %s, jansson %s", error_name(ra), error_name(rb));
		bad = why;
	} else if (ra != TLY_OK) {
		if (a.changes || a.n || a.epoch[0])
			bad = "pull_answer: not cleared on error";
	} else if (strcmp(a.epoch, b.epoch) != 0 || a.server_ms != b.server_ms ||
		   a.next != b.next || a.more != b.more || a.n != b.n) {
		bad = "pull_answer: members";
	} else {
		bad = msg_diff_changes(a.changes, b.changes, a.n, why, wn);
	}
	msg_pull_answer_clear(&a);
	msg_pull_answer_clear(&b);
	return bad;
}

/* Both messages, under each of msg_diff_limits. */
static inline const char *msg_diff_all(const char *text, size_t n, char *why, size_t wn)
{
	struct limits ls[4];
	size_t nl = msg_diff_limits(ls, 4);
	const char *bad = NULL;

	for (size_t k = 0; k < nl && !bad; k++) {
		bad = msg_diff_push(text, n, &ls[k], why, wn);
		if (!bad)
			bad = msg_diff_pull_answer(text, n, &ls[k], why, wn);
	}
	return bad;
}

#endif
