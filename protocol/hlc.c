/*
 * hlc — hybrid logical clock (PROTOCOL.md §4).
 *
 * Timestamps are packed so that integer order is HLC order; every rule below
 * therefore works on the packed value and only splits it to compare the
 * physical part with the wall clock.
 */
#include "error.h"
#include "hlc.h"

#define HLC_MAX hlc_make(HLC_MS_MAX, HLC_COUNTER_MAX)

void hlc_init(struct hlc *c, uint64_t last)
{
	c->last = last;
}

static uint64_t clamp_ms(uint64_t wall_ms)
{
	return wall_ms > HLC_MS_MAX ? HLC_MS_MAX : wall_ms;
}

uint64_t hlc_send(struct hlc *c, uint64_t wall_ms)
{
	uint64_t wall = clamp_ms(wall_ms);
	uint64_t t;

	if (wall > hlc_ms(c->last)) {
		t = hlc_make(wall, 0);
	} else if (c->last < HLC_MAX) {
		/* Adding one to the packed value is the counter rule, and when
		 * the counter is at 0xFFFF the carry lands in the millisecond:
		 * the clock borrows the next millisecond instead of failing. */
		t = c->last + 1;
	} else {
		/* Year 10889: nothing greater exists. Saturating beats wrapping
		 * to 0, which would order this site's edits before all others. */
		t = HLC_MAX;
	}
	c->last = t;
	return t;
}

int hlc_within_bound(uint64_t t, uint64_t wall_ms, uint64_t max_ahead_ms)
{
	if (t == 0)
		return 0;
	uint64_t ms = hlc_ms(t);
	uint64_t wall = clamp_ms(wall_ms);
	/* Written as a difference so wall + max_ahead cannot overflow. */
	return ms <= wall || ms - wall <= max_ahead_ms;
}

int hlc_recv(struct hlc *c, uint64_t remote, uint64_t wall_ms, uint64_t max_ahead_ms,
	     int64_t *offset_ms)
{
	if (remote == 0)
		return TLY_E_BAD_VALUE;
	/* Both parts are below 2^48, so the difference fits in int64_t. */
	if (offset_ms)
		*offset_ms = (int64_t)hlc_ms(remote) - (int64_t)clamp_ms(wall_ms);
	if (!hlc_within_bound(remote, wall_ms, max_ahead_ms))
		return TLY_E_CLOCK_AHEAD;
	/* Remembering the larger of the two is enough for causality: the next
	 * hlc_send issues something greater than both. */
	if (remote > c->last)
		c->last = remote;
	return TLY_OK;
}
