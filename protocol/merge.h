/*
 * merge — the per-field last-writer-wins rule, as a pure function.
 *
 * Concurrent writes to one field of one record are totally ordered by
 * (stamp, site, value): the change's ordering stamp first (change_stamp),
 * then the origin site id bytewise, and only for two writes that agree on
 * both (which honest sites never produce) the value itself, so even forged
 * input cannot make replicas diverge. The greater write wins everywhere;
 * the other is the loser, which the caller keeps in its conflict log.
 *
 * Append-only records (progress entries, evidence, reviews) are written
 * once by one site, so their fields never meet a concurrent write.
 */
#ifndef TALLY_PROTOCOL_MERGE_H
#define TALLY_PROTOCOL_MERGE_H

#include <stdint.h>

#include "change.h"

/* One write to a field: its value and who wrote it when. Borrowed pointers. */
struct merge_write {
	uint64_t stamp;
	const char *site;
	enum field_type type;
	int64_t i;
	const char *text;
	size_t len;
};

enum merge_outcome {
	MERGE_KEEP_CURRENT = 0, /* incoming loses: *loser = incoming */
	MERGE_TAKE_INCOMING,    /* incoming wins: *loser = current (NULL if there was none) */
	MERGE_SAME,             /* the same write again: nothing to do, *loser = NULL */
};

/* <0, 0, >0 as a orders before, equal to, after b in the total order. */
int merge_compare(const struct merge_write *a, const struct merge_write *b);

/* Decides between the field's current write (NULL if the field was never
 * set) and an incoming one, and points *loser at the write that lost. */
enum merge_outcome merge_field(const struct merge_write *current,
			       const struct merge_write *incoming,
			       const struct merge_write **loser);

/* Fills a merge_write from field i of change c (stamp = change_stamp(c)). */
void merge_write_from_change(const struct change *c, size_t i, struct merge_write *out);

#endif
