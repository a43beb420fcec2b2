/*
 * ratelimit — token buckets in a chained hash table (see ratelimit.h).
 *
 * Tokens are counted in thousandths so that refill is exact integer
 * arithmetic: a bucket gains per_minute * elapsed_ms / 60 milli-tokens.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon/ratelimit.h"
#include "protocol/error.h"

#define MILLI 1000u

struct bucket {
	struct bucket *next;
	uint64_t tokens;  /* milli-tokens */
	uint64_t last_ms; /* time tokens was last brought up to date */
	size_t keylen;
	char key[];
};

struct ratelimit {
	unsigned per_minute;
	unsigned burst;
	size_t max_keys;
	size_t count;
	size_t nslots; /* power of two */
	struct bucket **slots;
};

static uint64_t hash_key(const char *s, size_t n)
{
	/* FNV-1a: keys come from our own auth layer (authenticated ids), so a
	 * keyed hash against collision flooding is not needed here. */
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

int ratelimit_new(unsigned per_minute, unsigned burst, size_t max_keys, struct ratelimit **out)
{
	struct ratelimit *rl;
	size_t n = 16;

	*out = NULL;
	if (per_minute == 0 || burst == 0 || max_keys == 0)
		return TLY_E_USAGE;
	while (n < max_keys && n < ((size_t)1 << 20))
		n <<= 1;
	rl = calloc(1, sizeof *rl);
	if (!rl)
		return TLY_E_NOMEM;
	rl->slots = calloc(n, sizeof *rl->slots);
	if (!rl->slots) {
		free(rl);
		return TLY_E_NOMEM;
	}
	rl->per_minute = per_minute;
	rl->burst = burst;
	rl->max_keys = max_keys;
	rl->nslots = n;
	*out = rl;
	return TLY_OK;
}

static void refill(const struct ratelimit *rl, struct bucket *b, uint64_t now_ms)
{
	uint64_t cap = (uint64_t)rl->burst * MILLI;

	if (now_ms <= b->last_ms)
		return; /* a clock that did not move (or a caller's mistake) adds nothing */
	uint64_t elapsed = now_ms - b->last_ms;
	/* elapsed * per_minute / 60 milli-tokens; clamp elapsed first so the
	 * product cannot overflow after a long idle time. */
	uint64_t full_ms = 60u * cap / rl->per_minute + 1;
	if (elapsed > full_ms)
		elapsed = full_ms;
	uint64_t add = elapsed * rl->per_minute / 60u;
	if (b->tokens + add >= cap) {
		b->tokens = cap;
		b->last_ms = now_ms;
		return;
	}
	/* Advance the clock only by the time the added tokens took (rounded
	 * up): frequent calls must not each throw away a fraction of a token. */
	b->tokens += add;
	b->last_ms += (add * 60u + rl->per_minute - 1) / rl->per_minute;
}

/* Drops every bucket that is full at now_ms: it is the same as absent. */
static void sweep(struct ratelimit *rl, uint64_t now_ms)
{
	uint64_t cap = (uint64_t)rl->burst * MILLI;

	for (size_t i = 0; i < rl->nslots; i++) {
		struct bucket **pp = &rl->slots[i];
		while (*pp) {
			struct bucket *b = *pp;
			refill(rl, b, now_ms);
			if (b->tokens >= cap) {
				*pp = b->next;
				free(b);
				rl->count--;
			} else {
				pp = &b->next;
			}
		}
	}
}

int ratelimit_take(struct ratelimit *rl, const char *key, uint64_t now_ms,
		   uint64_t *retry_after_ms)
{
	size_t n = strlen(key);
	struct bucket *b;
	size_t slot;

	if (n > RATELIMIT_KEY_MAX)
		return TLY_E_FIELD_TOO_LONG;
	slot = (size_t)hash_key(key, n) & (rl->nslots - 1);
	for (b = rl->slots[slot]; b; b = b->next) {
		if (b->keylen == n && memcmp(b->key, key, n) == 0)
			break;
	}
	if (!b) {
		if (rl->count >= rl->max_keys)
			sweep(rl, now_ms);
		if (rl->count >= rl->max_keys) {
			if (retry_after_ms)
				*retry_after_ms = 60000u / rl->per_minute + 1;
			return TLY_E_RATE_LIMITED;
		}
		b = malloc(sizeof *b + n + 1);
		if (!b)
			return TLY_E_NOMEM;
		b->tokens = (uint64_t)rl->burst * MILLI;
		b->last_ms = now_ms;
		b->keylen = n;
		memcpy(b->key, key, n + 1);
		b->next = rl->slots[slot];
		rl->slots[slot] = b;
		rl->count++;
	}
	refill(rl, b, now_ms);
	if (b->tokens >= MILLI) {
		b->tokens -= MILLI;
		return TLY_OK;
	}
	if (retry_after_ms) {
		/* time for the missing milli-tokens, rounded up */
		uint64_t missing = MILLI - b->tokens;
		uint64_t ms = (missing * 60u + rl->per_minute - 1) / rl->per_minute;
		*retry_after_ms = ms ? ms : 1;
	}
	return TLY_E_RATE_LIMITED;
}

size_t ratelimit_count(const struct ratelimit *rl)
{
	return rl->count;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	for (size_t i = 0; i < rl->nslots; i++) {
		struct bucket *b = rl->slots[i];
		while (b) {
			struct bucket *next = b->next;
			free(b);
			b = next;
		}
	}
	free(rl->slots);
	free(rl);
}
