/*
 * fuzz_common — checks shared by the message fuzz targets.
 */
#ifndef TALLY_FUZZ_COMMON_H
#define TALLY_FUZZ_COMMON_H

#include <stdlib.h>
#include <string.h>

#include "protocol/buf.h"
#include "protocol/change.h"

/* The property every decoder must have: what it accepts re-encodes, and
 * the re-encoding decodes to the same thing and re-encodes to the same
 * bytes (encode . decode is idempotent). */
static inline void fuzz_same_bytes(const struct buf *a, const struct buf *b)
{
	if (a->len != b->len || (a->len && memcmp(a->data, b->data, a->len) != 0))
		abort();
}

static inline void fuzz_same_changes(struct change *const *a, struct change *const *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!change_equal(a[i], b[i]) || !change_hash(a[i]) || !change_hash(b[i]) ||
		    memcmp(change_hash(a[i]), change_hash(b[i]), CHANGE_HASH_LEN) != 0 ||
		    memcmp(change_prev(a[i]), change_prev(b[i]), CHANGE_HASH_LEN) != 0)
			abort();
	}
}

#endif
