/*
 * chain — per-site hash chain: hash = SHA-256(prev || canonical(change)).
 */
#include <string.h>

#include <openssl/evp.h>

#include "chain.h"
#include "error.h"

const uint8_t chain_genesis[CHANGE_HASH_LEN] = {0};

/* A change's canonical encoding is bounded by its limits; this cap only
 * keeps a buffer from growing without one. 64 fields of 16 KiB text fit. */
#define CHAIN_CANON_MAX (64u << 20)

int chain_hash(const struct change *c, const uint8_t prev[CHANGE_HASH_LEN],
	       uint8_t out[CHANGE_HASH_LEN])
{
	struct buf canon;
	EVP_MD_CTX *md = NULL;
	unsigned int mdlen = 0;
	int rc;

	buf_init(&canon, CHAIN_CANON_MAX);
	if ((rc = change_encode_canonical(c, &canon)) != TLY_OK)
		goto out;
	md = EVP_MD_CTX_new();
	if (!md) {
		rc = TLY_E_NOMEM;
		goto out;
	}
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, prev, CHANGE_HASH_LEN) != 1 ||
	    EVP_DigestUpdate(md, canon.data, canon.len) != 1 ||
	    EVP_DigestFinal_ex(md, out, &mdlen) != 1 || mdlen != CHANGE_HASH_LEN) {
		rc = TLY_E_INTERNAL;
		goto out;
	}
	rc = TLY_OK;
out:
	EVP_MD_CTX_free(md);
	buf_free(&canon);
	return rc;
}

int chain_link(struct change *c, const uint8_t prev[CHANGE_HASH_LEN])
{
	uint8_t h[CHANGE_HASH_LEN];
	/* Copy prev first: it may point into c's own links. */
	uint8_t p[CHANGE_HASH_LEN];
	memcpy(p, prev, CHANGE_HASH_LEN);
	int rc = chain_hash(c, p, h);
	if (rc == TLY_OK)
		change_set_links(c, p, h);
	return rc;
}

int chain_link_run(struct change *const *cs, size_t n, const uint8_t prev[CHANGE_HASH_LEN],
		   const uint8_t *head)
{
	uint8_t cur[CHANGE_HASH_LEN];
	int rc;

	memcpy(cur, prev, CHANGE_HASH_LEN);
	/* Structure first, hashes second: a run with a seq or site error is
	 * refused with that specific code, and no change is touched. */
	for (size_t i = 1; i < n; i++) {
		if (strcmp(change_site(cs[i]), change_site(cs[0])) != 0)
			return TLY_E_SITE_MISMATCH;
		if (change_seq(cs[i - 1]) == UINT64_MAX ||
		    change_seq(cs[i]) != change_seq(cs[i - 1]) + 1)
			return TLY_E_SEQ_ORDER;
	}
	/* The zero prev belongs to seq 1 only; any other seq after genesis
	 * would let a run pretend to start a chain afresh. */
	if (n > 0 && (change_seq(cs[0]) == 1) != (memcmp(prev, chain_genesis, CHANGE_HASH_LEN) == 0))
		return TLY_E_CHAIN;
	for (size_t i = 0; i < n; i++) {
		if ((rc = chain_link(cs[i], cur)) != TLY_OK)
			return rc;
		memcpy(cur, change_hash(cs[i]), CHANGE_HASH_LEN);
	}
	if (head && memcmp(head, cur, CHANGE_HASH_LEN) != 0)
		return TLY_E_CHAIN;
	return TLY_OK;
}

void chain_hex(const uint8_t h[CHANGE_HASH_LEN], char out[2 * CHANGE_HASH_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < CHANGE_HASH_LEN; i++) {
		out[2 * i] = digits[h[i] >> 4];
		out[2 * i + 1] = digits[h[i] & 0x0F];
	}
	out[2 * CHANGE_HASH_LEN] = '\0';
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int chain_unhex(const char *s, uint8_t out[CHANGE_HASH_LEN])
{
	uint8_t tmp[CHANGE_HASH_LEN];
	if (!s)
		return TLY_E_BAD_VALUE;
	for (size_t i = 0; i < CHANGE_HASH_LEN; i++) {
		/* Reading pairwise stops at the NUL of a short string. */
		int hi = hex_val(s[2 * i]);
		if (hi < 0)
			return TLY_E_BAD_VALUE;
		int lo = hex_val(s[2 * i + 1]);
		if (lo < 0)
			return TLY_E_BAD_VALUE;
		tmp[i] = (uint8_t)(hi << 4 | lo);
	}
	if (s[2 * CHANGE_HASH_LEN] != '\0')
		return TLY_E_BAD_VALUE;
	memcpy(out, tmp, CHANGE_HASH_LEN);
	return TLY_OK;
}
