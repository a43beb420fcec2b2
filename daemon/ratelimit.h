/*
 * ratelimit — token buckets keyed by a credential, for 429 answers.
 *
 * Each key (a device id, a user id: whatever the auth layer says the
 * request is "from") has a bucket holding up to `burst` tokens that refills
 * at `per_minute` tokens a minute; a request takes one token or is refused
 * with the time until the next token. Time is passed in (milliseconds on a
 * monotonic clock), so tests drive it and a wall-clock jump changes nothing.
 *
 * Memory is bounded: at most max_keys buckets exist. A full bucket is the
 * same as no bucket, so when the table is full the full buckets are dropped;
 * if none is full (max_keys distinct credentials all busy within one refill
 * time), a new key is refused (TLY_E_RATE_LIMITED), failing closed.
 *
 * Ownership: the table owns copies of the keys; ratelimit_free frees all.
 */
#ifndef TALLY_DAEMON_RATELIMIT_H
#define TALLY_DAEMON_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_KEY_MAX 128 /* bytes, without the NUL */

struct ratelimit;

/* per_minute >= 1, burst >= 1, max_keys >= 1, else TLY_E_USAGE. */
int ratelimit_new(unsigned per_minute, unsigned burst, size_t max_keys, struct ratelimit **out);

/*
 * Takes one token from key's bucket at time now_ms. TLY_OK if there was
 * one; TLY_E_RATE_LIMITED if not, with *retry_after_ms (if not NULL) set to
 * the wait until one will be there (at least 1). TLY_E_FIELD_TOO_LONG for a
 * key over RATELIMIT_KEY_MAX, TLY_E_NOMEM.
 */
int ratelimit_take(struct ratelimit *rl, const char *key, uint64_t now_ms,
		   uint64_t *retry_after_ms);

/* Buckets currently held. */
size_t ratelimit_count(const struct ratelimit *rl);

void ratelimit_free(struct ratelimit *rl);

#endif
