/*
 * limits — every size and count a peer controls, in one place.
 *
 * Decoders take a `const struct limits *` and check each bound while they
 * read, before allocating what the bound protects. NULL means the defaults.
 * Servers and clients may lower these in their configuration; the
 * protocol's hard maxima (PROTOCOL.md §Limits) are what limits_default
 * gives.
 */
#ifndef TALLY_PROTOCOL_LIMITS_H
#define TALLY_PROTOCOL_LIMITS_H

#include <stddef.h>
#include <stdint.h>

struct limits {
	size_t max_body_bytes;     /* a message as received (compressed or not); 8 MiB */
	size_t max_inflated_bytes; /* a message after inflating; 32 MiB */
	size_t max_changes;        /* changes in one push or pull answer; 1000 */
	size_t max_fields;         /* fields in one change; 64 */
	size_t max_field_bytes;    /* bytes in one text value; 16384 (~5000 Chinese characters) */
	size_t max_string_bytes;   /* any other JSON string (ids, codes, reasons); 1024 */
	size_t max_depth;          /* JSON nesting; 8 */
	size_t max_elements;       /* members of any one JSON array or object; 5000, more than
				    * max_changes and max_pull_limit so a full page fits */
	uint32_t max_pull_limit;   /* largest page a pull may ask for; 1000 */
	uint64_t max_ahead_ms;     /* how far a received HLC may lead the receiver's wall clock;
				    * 300000 (5 minutes) */
};

/* The defaults (the protocol's maxima). */
void limits_default(struct limits *l);

/* Returns l itself, or a static copy of the defaults when l is NULL. */
const struct limits *limits_or_default(const struct limits *l);

#endif
