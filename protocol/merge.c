/*
 * merge — per-field last-writer-wins under a total order (PROTOCOL.md §5).
 *
 * The order must be total over everything a peer can send, forged input
 * included: if two different writes ever compared equal, which one a replica
 * keeps would depend on arrival order, and replicas would diverge.
 */
#include <string.h>

#include "merge.h"

static int cmp_u64(uint64_t a, uint64_t b) { return (a > b) - (a < b); }

/* Values: null < int < text; ints numerically; texts bytewise, a proper
 * prefix before the longer text. */
static int cmp_value(const struct merge_write *a, const struct merge_write *b)
{
	if (a->type != b->type)
		return a->type < b->type ? -1 : 1;
	switch (a->type) {
	case FIELD_INT:
		return (a->i > b->i) - (a->i < b->i);
	case FIELD_TEXT: {
		size_t n = a->len < b->len ? a->len : b->len;
		int c = n ? memcmp(a->text, b->text, n) : 0;
		if (c)
			return c < 0 ? -1 : 1;
		return cmp_u64(a->len, b->len);
	}
	case FIELD_NULL:
	default:
		return 0;
	}
}

int merge_compare(const struct merge_write *a, const struct merge_write *b)
{
	int c = cmp_u64(a->stamp, b->stamp);
	if (c)
		return c;
	c = strcmp(a->site, b->site); /* strcmp orders as unsigned char: bytewise */
	if (c)
		return c < 0 ? -1 : 1;
	return cmp_value(a, b);
}

enum merge_outcome merge_field(const struct merge_write *current,
			       const struct merge_write *incoming,
			       const struct merge_write **loser)
{
	if (!current) {
		*loser = NULL;
		return MERGE_TAKE_INCOMING;
	}
	int c = merge_compare(incoming, current);
	if (c > 0) {
		*loser = current;
		return MERGE_TAKE_INCOMING;
	}
	if (c < 0) {
		*loser = incoming;
		return MERGE_KEEP_CURRENT;
	}
	*loser = NULL;
	return MERGE_SAME;
}

void merge_write_from_change(const struct change *c, size_t i, struct merge_write *out)
{
	struct field_view v;
	change_field_at(c, i, &v);
	out->stamp = change_stamp(c);
	out->site = change_site(c);
	out->type = v.type;
	out->i = v.i;
	out->text = v.text;
	out->len = v.len;
}
