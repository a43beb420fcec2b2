/* Tests for chain: hashing, linking runs, hex. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "protocol/chain.h"
#include "protocol/error.h"

#define N 6

static struct change *mk(const char *site, uint64_t seq)
{
	struct change *c = NULL;
	char id[16];
	snprintf(id, sizeof id, "T%llu", (unsigned long long)seq);
	assert_int_equal(change_new(&c, 1, site, seq, UINT64_C(0x19000000000000) + seq, "task", id),
			 TLY_OK);
	const char t[] = "整改进展𠀀";
	assert_int_equal(change_set_text(c, "note", t, strlen(t), NULL), TLY_OK);
	assert_int_equal(change_set_int(c, "progress", (int64_t)seq * 10, NULL), TLY_OK);
	return c;
}

static void mk_run(struct change **cs, size_t n, uint64_t first)
{
	for (size_t i = 0; i < n; i++)
		cs[i] = mk("v1", first + i);
}

static void free_run(struct change **cs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		change_free(cs[i]);
}

static void test_hash_definition(void **state)
{
	(void)state;
	/* hash = SHA-256(prev || canonical), recomputed with the one-shot API */
	struct change *c = mk("v1", 1);
	struct buf b;
	buf_init(&b, 1 << 20);
	uint8_t prev[CHANGE_HASH_LEN];
	for (int i = 0; i < CHANGE_HASH_LEN; i++)
		prev[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(buf_add(&b, prev, sizeof prev), TLY_OK);
	assert_int_equal(change_encode_canonical(c, &b), TLY_OK);
	uint8_t want[EVP_MAX_MD_SIZE];
	unsigned int wl = 0;
	assert_int_equal(EVP_Digest(b.data, b.len, want, &wl, EVP_sha256(), NULL), 1);
	assert_int_equal(wl, CHANGE_HASH_LEN);
	uint8_t got[CHANGE_HASH_LEN];
	assert_int_equal(chain_hash(c, prev, got), TLY_OK);
	assert_memory_equal(got, want, CHANGE_HASH_LEN);

	/* chain_link stores both */
	assert_int_equal(chain_link(c, prev), TLY_OK);
	assert_memory_equal(change_prev(c), prev, CHANGE_HASH_LEN);
	assert_memory_equal(change_hash(c), want, CHANGE_HASH_LEN);
	/* relinking from its own links is safe */
	assert_int_equal(chain_link(c, change_prev(c)), TLY_OK);
	assert_memory_equal(change_hash(c), want, CHANGE_HASH_LEN);

	/* eff is not covered */
	change_set_eff(c, 12345);
	assert_int_equal(chain_hash(c, prev, got), TLY_OK);
	assert_memory_equal(got, want, CHANGE_HASH_LEN);
	/* prev is */
	prev[31] ^= 1;
	assert_int_equal(chain_hash(c, prev, got), TLY_OK);
	assert_memory_not_equal(got, want, CHANGE_HASH_LEN);
	for (int i = 0; i < CHANGE_HASH_LEN; i++)
		assert_int_equal(chain_genesis[i], 0);
	buf_free(&b);
	change_free(c);
}

static void test_link_run_ok(void **state)
{
	(void)state;
	struct change *cs[N];
	mk_run(cs, N, 1);
	assert_int_equal(chain_link_run(cs, N, chain_genesis, NULL), TLY_OK);
	assert_memory_equal(change_prev(cs[0]), chain_genesis, CHANGE_HASH_LEN);
	for (size_t i = 1; i < N; i++)
		assert_memory_equal(change_prev(cs[i]), change_hash(cs[i - 1]), CHANGE_HASH_LEN);
	uint8_t head[CHANGE_HASH_LEN];
	memcpy(head, change_hash(cs[N - 1]), CHANGE_HASH_LEN);
	assert_int_equal(chain_link_run(cs, N, chain_genesis, head), TLY_OK);

	/* a later part of the run verifies from the hash before it */
	uint8_t mid[CHANGE_HASH_LEN];
	memcpy(mid, change_hash(cs[2]), CHANGE_HASH_LEN);
	assert_int_equal(chain_link_run(cs + 3, N - 3, mid, head), TLY_OK);
	/* ... and not from another one */
	assert_int_equal(chain_link_run(cs + 3, N - 3, change_hash(cs[1]), head), TLY_E_CHAIN);

	/* head mismatch */
	head[0] ^= 0x80;
	assert_int_equal(chain_link_run(cs, N, chain_genesis, head), TLY_E_CHAIN);
	free_run(cs, N);
}

static void test_link_run_empty(void **state)
{
	(void)state;
	uint8_t other[CHANGE_HASH_LEN] = {9};
	assert_int_equal(chain_link_run(NULL, 0, chain_genesis, NULL), TLY_OK);
	assert_int_equal(chain_link_run(NULL, 0, other, other), TLY_OK);
	assert_int_equal(chain_link_run(NULL, 0, chain_genesis, other), TLY_E_CHAIN);
}

static void test_link_run_genesis_only_for_seq1(void **state)
{
	(void)state;
	struct change *cs[2];
	mk_run(cs, 2, 4);
	/* seq 4 cannot follow genesis, seq 1 cannot follow anything else */
	assert_int_equal(chain_link_run(cs, 2, chain_genesis, NULL), TLY_E_CHAIN);
	free_run(cs, 2);
	mk_run(cs, 2, 1);
	uint8_t other[CHANGE_HASH_LEN] = {1};
	assert_int_equal(chain_link_run(cs, 2, other, NULL), TLY_E_CHAIN);
	free_run(cs, 2);
}

static void test_link_run_seq_errors(void **state)
{
	(void)state;
	struct change *cs[4];
	/* gap */
	cs[0] = mk("v1", 1);
	cs[1] = mk("v1", 2);
	cs[2] = mk("v1", 4);
	assert_int_equal(chain_link_run(cs, 3, chain_genesis, NULL), TLY_E_SEQ_ORDER);
	/* nothing was linked: structure is checked first */
	assert_null(change_hash(cs[0]));
	free_run(cs, 3);
	/* swapped */
	cs[0] = mk("v1", 1);
	cs[1] = mk("v1", 3);
	cs[2] = mk("v1", 2);
	assert_int_equal(chain_link_run(cs, 3, chain_genesis, NULL), TLY_E_SEQ_ORDER);
	free_run(cs, 3);
	/* repeated */
	cs[0] = mk("v1", 1);
	cs[1] = mk("v1", 1);
	assert_int_equal(chain_link_run(cs, 2, chain_genesis, NULL), TLY_E_SEQ_ORDER);
	free_run(cs, 2);
	/* decreasing */
	cs[0] = mk("v1", 5);
	cs[1] = mk("v1", 4);
	uint8_t some[CHANGE_HASH_LEN] = {3};
	assert_int_equal(chain_link_run(cs, 2, some, NULL), TLY_E_SEQ_ORDER);
	free_run(cs, 2);
	/* site mismatch */
	cs[0] = mk("v1", 1);
	cs[1] = mk("v1", 2);
	cs[2] = mk("v2", 3);
	cs[3] = mk("v1", 4);
	assert_int_equal(chain_link_run(cs, 4, chain_genesis, NULL), TLY_E_SITE_MISMATCH);
	free_run(cs, 4);
}

/* Any single flipped byte in any change (in any field, via its canonical
 * bytes) breaks the chain at the head. */
static void test_any_flipped_byte_breaks_chain(void **state)
{
	(void)state;
	struct change *cs[N];
	mk_run(cs, N, 1);
	assert_int_equal(chain_link_run(cs, N, chain_genesis, NULL), TLY_OK);
	uint8_t head[CHANGE_HASH_LEN];
	memcpy(head, change_hash(cs[N - 1]), CHANGE_HASH_LEN);

	size_t tried = 0, decodable = 0;
	for (size_t k = 0; k < N; k++) {
		struct buf enc;
		buf_init(&enc, 1 << 20);
		assert_int_equal(change_encode_canonical(cs[k], &enc), TLY_OK);
		for (size_t off = 0; off < enc.len; off++) {
			for (int bit = 0; bit < 8; bit++) {
				enc.data[off] ^= (char)(1 << bit);
				struct change *forged = NULL;
				int rc = change_decode_canonical(enc.data, enc.len, NULL, &forged);
				enc.data[off] ^= (char)(1 << bit);
				tried++;
				if (rc != TLY_OK)
					continue; /* the store would refuse it anyway */
				decodable++;
				struct change *run[N];
				memcpy(run, cs, sizeof run);
				run[k] = forged;
				rc = chain_link_run(run, N, chain_genesis, head);
				/* a flipped seq or site byte fails on structure, others on the hash */
				if (rc != TLY_E_CHAIN && rc != TLY_E_SEQ_ORDER && rc != TLY_E_SITE_MISMATCH)
					fail_msg("change %zu byte %zu bit %d: rc %d", k, off, bit, rc);
				change_free(forged);
			}
		}
		buf_free(&enc);
	}
	/* most flips give a decodable change: the test exercises the hash */
	assert_true(decodable > tried / 4);
	/* put the original links back for the next run */
	assert_int_equal(chain_link_run(cs, N, chain_genesis, head), TLY_OK);
	free_run(cs, N);
}

static void test_hex(void **state)
{
	(void)state;
	uint8_t h[CHANGE_HASH_LEN], back[CHANGE_HASH_LEN];
	for (int i = 0; i < CHANGE_HASH_LEN; i++)
		h[i] = (uint8_t)(i * 37 + 5);
	char hex[2 * CHANGE_HASH_LEN + 1];
	chain_hex(h, hex);
	assert_int_equal(strlen(hex), 64);
	assert_memory_equal(hex, "052a4f74", 8);
	assert_int_equal(chain_unhex(hex, back), TLY_OK);
	assert_memory_equal(back, h, CHANGE_HASH_LEN);
	for (char *p = hex; *p; p++)
		assert_true((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));

	char upper[65];
	for (int i = 0; i < 65; i++)
		upper[i] = (hex[i] >= 'a' && hex[i] <= 'f') ? (char)(hex[i] - 32) : hex[i];
	assert_int_equal(chain_unhex(upper, back), TLY_OK);
	assert_memory_equal(back, h, CHANGE_HASH_LEN);

	memset(back, 0xAA, sizeof back);
	char bad[70];
	strcpy(bad, hex);
	bad[63] = '\0'; /* too short */
	assert_int_equal(chain_unhex(bad, back), TLY_E_BAD_VALUE);
	strcpy(bad, hex);
	strcat(bad, "0"); /* too long */
	assert_int_equal(chain_unhex(bad, back), TLY_E_BAD_VALUE);
	strcpy(bad, hex);
	bad[10] = 'g';
	assert_int_equal(chain_unhex(bad, back), TLY_E_BAD_VALUE);
	strcpy(bad, hex);
	bad[0] = ' ';
	assert_int_equal(chain_unhex(bad, back), TLY_E_BAD_VALUE);
	assert_int_equal(chain_unhex("", back), TLY_E_BAD_VALUE);
	assert_int_equal(chain_unhex(NULL, back), TLY_E_BAD_VALUE);
	for (int i = 0; i < CHANGE_HASH_LEN; i++)
		assert_int_equal(back[i], 0xAA); /* untouched on error */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_definition),
		cmocka_unit_test(test_link_run_ok),
		cmocka_unit_test(test_link_run_empty),
		cmocka_unit_test(test_link_run_genesis_only_for_seq1),
		cmocka_unit_test(test_link_run_seq_errors),
		cmocka_unit_test(test_any_flipped_byte_breaks_chain),
		cmocka_unit_test(test_hex),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
