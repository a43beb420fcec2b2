/*
 * limits — the protocol's maxima (see limits.h and PROTOCOL.md §13).
 */
#include "limits.h"

static const struct limits limits_defaults = {
	/* A push of max_changes changes at max_fields text fields each is far
	 * larger in theory, but real pushes are a few KiB; 8 MiB lets a village
	 * that was offline for weeks catch up in a few requests. */
	.max_body_bytes = 8u << 20,
	/* Ledger JSON compresses about 4:1; anything inflating further is a bomb. */
	.max_inflated_bytes = 32u << 20,
	.max_changes = 1000,
	.max_fields = 64,
	/* 16 KiB holds about 5,000 Chinese characters: a long rectification
	 * measure or a problem text quoted verbatim. */
	.max_field_bytes = 16384,
	.max_string_bytes = 1024,
	.max_depth = 8,
	/* Must exceed max_changes and max_pull_limit: the changes array of a
	 * full push or pull page is one JSON array. */
	.max_elements = 5000,
	.max_pull_limit = 1000,
	/* Five minutes: ordinary PC clock drift passes, a wrong date does not. */
	.max_ahead_ms = 300000,
};

void limits_default(struct limits *l)
{
	*l = limits_defaults;
}

const struct limits *limits_or_default(const struct limits *l)
{
	return l ? l : &limits_defaults;
}
