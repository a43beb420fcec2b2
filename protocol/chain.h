/*
 * chain — the per-site hash chain (tamper evidence).
 *
 *   hash(change) = SHA-256( prev || canonical(change) )
 *
 * where prev is the hash of the same site's change with seq - 1, and 32 zero
 * bytes for seq 1 (chain_genesis). A receiver that knows a site's hash at
 * some seq can verify any later contiguous run of that site's changes; a
 * verifier holding the whole chain rechecks it from genesis.
 */
#ifndef TALLY_PROTOCOL_CHAIN_H
#define TALLY_PROTOCOL_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "change.h"

extern const uint8_t chain_genesis[CHANGE_HASH_LEN];

/* Computes the hash of c after prev into out. */
int chain_hash(const struct change *c, const uint8_t prev[CHANGE_HASH_LEN],
	       uint8_t out[CHANGE_HASH_LEN]);

/* Computes c's hash after prev and stores both in c (change_set_links). */
int chain_link(struct change *c, const uint8_t prev[CHANGE_HASH_LEN]);

/*
 * Links and verifies a contiguous run of one site's changes: every change
 * has the site of the first and seq one more than the one before
 * (TLY_E_SITE_MISMATCH, TLY_E_SEQ_ORDER otherwise); hashes are computed from
 * prev forward and stored in each change; when head is not NULL the last
 * hash must equal it (TLY_E_CHAIN). A run starting at seq 1 must start from
 * chain_genesis and a later one must not (TLY_E_CHAIN): otherwise a forged
 * run could restart a chain. The seq and site checks come first, and on
 * them no change is touched. n == 0 is TLY_OK only with head NULL or equal
 * to prev.
 */
int chain_link_run(struct change *const *cs, size_t n, const uint8_t prev[CHANGE_HASH_LEN],
		   const uint8_t *head);

/* Lowercase hex, 64 characters plus NUL. */
void chain_hex(const uint8_t h[CHANGE_HASH_LEN], char out[2 * CHANGE_HASH_LEN + 1]);
/* Parses exactly 64 hex digits (either case). TLY_E_BAD_VALUE otherwise. */
int chain_unhex(const char *s, uint8_t out[CHANGE_HASH_LEN]);

#endif
