/*
 * helpers — shared by the client unit tests: temporary directories, file
 * checksums, and building chained changes by hand.
 */
#ifndef TALLY_TESTS_CLIENT_HELPERS_H
#define TALLY_TESTS_CLIENT_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol/chain.h"
#include "protocol/change.h"
#include "client/db.h"
#include "protocol/error.h"

/* A fresh directory under /tmp; the caller removes it with rm_tree. */
static inline char *tmp_dir(void)
{
	char *d = strdup("/tmp/tally-client-test-XXXXXX");
	if (!d || !mkdtemp(d)) {
		fprintf(stderr, "mkdtemp failed\n");
		abort();
	}
	return d;
}

static inline void rm_tree(char *d)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", d);
	free(d);
}

static inline char *path_in(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

/* FNV-1a of a file's bytes (0 for a missing file): enough to see a change. */
static inline unsigned long long file_sum(const char *path)
{
	unsigned long long h = 1469598103934665603ULL;
	FILE *f = fopen(path, "rb");
	int c;
	if (!f)
		return 0;
	while ((c = fgetc(f)) != EOF) {
		h ^= (unsigned char)c;
		h *= 1099511628211ULL;
	}
	fclose(f);
	return h;
}

/* Copies a file byte for byte (0 on success). */
static inline int copy_file(const char *from, const char *to)
{
	FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
	char chunk[65536];
	size_t n;
	int rc = a && b ? 0 : -1;
	while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, a)) > 0) {
		if (fwrite(chunk, 1, n, b) != n)
			rc = -1;
	}
	if (a)
		fclose(a);
	if (b && fclose(b) != 0)
		rc = -1;
	return rc;
}

/* An empty change of site at seq with stamp hlc; set its fields, then
 * link_change it. */
static inline struct change *mk_change(const char *site, uint64_t seq, uint64_t hlc,
				       const char *kind, const char *id)
{
	struct change *c = NULL;
	if (change_new(&c, CHANGE_SCHEMA_VERSION, site, seq, hlc, kind, id) != TLY_OK)
		abort();
	return c;
}

/* Links c after prev and advances prev to its hash. */
static inline void link_change(struct change *c, uint8_t prev[CHANGE_HASH_LEN])
{
	if (chain_link(c, prev) != TLY_OK)
		abort();
	memcpy(prev, change_hash(c), CHANGE_HASH_LEN);
}

static inline void set_t(struct change *c, const char *name, const char *v)
{
	if (change_set_text(c, name, v, strlen(v), NULL) != TLY_OK)
		abort();
}

static inline void set_i(struct change *c, const char *name, int64_t v)
{
	if (change_set_int(c, name, v, NULL) != TLY_OK)
		abort();
}

#endif
