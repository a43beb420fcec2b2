/*
 * hlc — hybrid logical clock.
 *
 * A timestamp is a uint64_t: the top 48 bits are milliseconds since the Unix
 * epoch (enough until the year 10889), the low 16 bits a counter that orders
 * events within one millisecond. Comparing two timestamps as integers
 * compares them as HLC values. 0 is never a valid timestamp.
 *
 * Wall time is always passed in, never read here, so tests can drive the
 * clock and the caller can correct a device clock with the offset a server
 * reported. `struct hlc` is a plain value (no resources): the last
 * timestamp this site issued or accepted; persist it with the database.
 */
#ifndef TALLY_PROTOCOL_HLC_H
#define TALLY_PROTOCOL_HLC_H

#include <stdint.h>

#define HLC_COUNTER_BITS 16
#define HLC_COUNTER_MAX 0xFFFFu
#define HLC_MS_MAX ((UINT64_C(1) << 48) - 1)

struct hlc {
	uint64_t last;
};

static inline uint64_t hlc_ms(uint64_t t) { return t >> HLC_COUNTER_BITS; }
static inline uint32_t hlc_counter(uint64_t t) { return (uint32_t)(t & HLC_COUNTER_MAX); }
static inline uint64_t hlc_make(uint64_t ms, uint32_t counter)
{
	return (ms << HLC_COUNTER_BITS) | (counter & HLC_COUNTER_MAX);
}

/* Starts a clock at a persisted value (0 for a new site). */
void hlc_init(struct hlc *c, uint64_t last);

/*
 * Send / local event rule: returns a timestamp greater than every one this
 * clock has issued or accepted, and at least wall_ms. When the counter is
 * exhausted within one millisecond the physical part borrows the next one,
 * so this never fails. wall_ms above HLC_MS_MAX is clamped.
 */
uint64_t hlc_send(struct hlc *c, uint64_t wall_ms);

/*
 * Receive rule: merges a remote timestamp into the clock. If the remote's
 * physical part leads wall_ms by more than max_ahead_ms the clock is left
 * untouched and TLY_E_CLOCK_AHEAD is returned (a clock years off must not
 * drag every site's clock along with it). *offset_ms, if not NULL, is set
 * in both cases to remote_ms - wall_ms, the measured lead of the remote.
 * TLY_E_BAD_VALUE for remote == 0.
 */
int hlc_recv(struct hlc *c, uint64_t remote, uint64_t wall_ms, uint64_t max_ahead_ms,
	     int64_t *offset_ms);

/* Whether t would pass hlc_recv's bound at wall_ms. */
int hlc_within_bound(uint64_t t, uint64_t wall_ms, uint64_t max_ahead_ms);

#endif
