/*
 * The convergence property (DESIGN.md guarantee 4 and 5), tested on random
 * histories: changes from several sites, with equal stamps across sites,
 * mixed value types and some server-assigned eff stamps, delivered to
 * several replicas in different orders with duplicates and redeliveries.
 * Every replica applies with merge_field and keeps a conflict log. At the
 * end, replicas that received the same set of changes must hold the same
 * state and the same set of losers, and that state must be the one the
 * rule names (highest stamp, then highest site).
 *
 * TALLY_SEED=n fixes the seed (else the time), TALLY_CASES=n sets the number
 * of cases (default 10000), TALLY_CASE=k runs only case k of the seed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protocol/error.h"
#include "protocol/hlc.h"
#include "protocol/merge.h"

#define MAX_SITES 6
#define MAX_SEQ 8
#define MAX_CHANGES (MAX_SITES * MAX_SEQ)
#define NREC 3
#define NFIELD 4
#define MAX_FULL 5
#define NSUB 2
#define MAX_DELIVERIES (MAX_CHANGES * 3)
#define T0 UINT64_C(1774915200000)

/* Site names chosen so bytewise order differs from "natural" order. */
static const char *const site_pool[] = {"v1", "v10", "v2", "a-", "a_", "a0", "zz", "town"};
static const char *const rec_ids[NREC] = {"t1", "t2", "T1"};
static const char *const field_names[NFIELD] = {"status", "progress", "title", "deadline"};
static const char *const text_pool[] = {"", "a", "ab", "b", "整改中", "已销号", "𠀀", "整改中 "};
static const int64_t int_pool[] = {0, 1, -1, 100, INT64_MIN, INT64_MAX};

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	/* splitmix64: tiny, good enough, and reproducible on every platform */
	uint64_t z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static size_t rng_below(size_t n) { return (size_t)(rng_next() % n); }

struct history {
	struct change *changes[MAX_CHANGES];
	int rec[MAX_CHANGES];  /* index into rec_ids */
	int site[MAX_CHANGES]; /* index into this case's sites */
	size_t n;
	const char *sites[MAX_SITES];
	size_t nsites;
};

struct log_entry {
	int rec, field;
	struct merge_write w;
};

struct replica {
	struct merge_write cur[NREC][NFIELD];
	int has[NREC][NFIELD];
	struct log_entry *log;
	size_t nlog, cap;
	/* Half the replicas skip (site, seq) they already applied, as the
	 * store does; the others apply every delivery, so merge_field itself
	 * must be idempotent. */
	int dedupe;
	unsigned char applied[MAX_SITES][MAX_SEQ + 1];
};

static int field_index(const char *name)
{
	for (int i = 0; i < NFIELD; i++)
		if (strcmp(field_names[i], name) == 0)
			return i;
	return -1;
}

static uint64_t random_stamp(void)
{
	/* A narrow range, so equal stamps across sites are common. */
	return hlc_make(T0 + rng_below(4), (uint32_t)rng_below(3));
}

static void history_make(struct history *h)
{
	memset(h, 0, sizeof *h);
	h->nsites = 3 + rng_below(MAX_SITES - 2);
	/* pick distinct sites from the pool */
	size_t pool = sizeof site_pool / sizeof site_pool[0];
	const char *p[sizeof site_pool / sizeof site_pool[0]];
	memcpy(p, site_pool, sizeof p);
	for (size_t i = 0; i < h->nsites; i++) {
		size_t j = i + rng_below(pool - i);
		const char *t = p[i];
		p[i] = p[j];
		p[j] = t;
		h->sites[i] = p[i];
	}
	for (size_t s = 0; s < h->nsites; s++) {
		size_t k = 1 + rng_below(MAX_SEQ);
		for (size_t q = 1; q <= k; q++) {
			int r = (int)rng_below(NREC);
			struct change *c = NULL;
			assert_int_equal(change_new(&c, CHANGE_SCHEMA_VERSION, h->sites[s], q,
						    random_stamp(), "task", rec_ids[r]),
					 TLY_OK);
			size_t nf = 1 + rng_below(NFIELD);
			for (size_t f = 0; f < nf; f++) {
				const char *name = field_names[rng_below(NFIELD)];
				switch (rng_below(3)) {
				case 0:
					assert_int_equal(change_set_null(c, name, NULL), TLY_OK);
					break;
				case 1:
					assert_int_equal(change_set_int(c, name,
									int_pool[rng_below(sizeof int_pool / sizeof int_pool[0])],
									NULL),
							 TLY_OK);
					break;
				default: {
					const char *t =
						text_pool[rng_below(sizeof text_pool / sizeof text_pool[0])];
					assert_int_equal(change_set_text(c, name, t, strlen(t), NULL), TLY_OK);
					break;
				}
				}
			}
			if (rng_below(5) == 0)
				change_set_eff(c, random_stamp());
			h->changes[h->n] = c;
			h->rec[h->n] = r;
			h->site[h->n] = (int)s;
			h->n++;
		}
	}
}

static void history_free(struct history *h)
{
	for (size_t i = 0; i < h->n; i++)
		change_free(h->changes[i]);
}

static void log_add(struct replica *r, int rec, int field, const struct merge_write *w)
{
	if (r->nlog == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->log = realloc(r->log, r->cap * sizeof *r->log);
		assert_non_null(r->log);
	}
	r->log[r->nlog].rec = rec;
	r->log[r->nlog].field = field;
	r->log[r->nlog].w = *w;
	r->nlog++;
}

static void replica_apply(struct replica *r, const struct history *h, size_t k)
{
	const struct change *c = h->changes[k];
	int s = h->site[k];
	uint64_t seq = change_seq(c);
	if (r->dedupe) {
		if (r->applied[s][seq])
			return;
		r->applied[s][seq] = 1;
	}
	int rec = h->rec[k];
	for (size_t i = 0; i < change_field_count(c); i++) {
		struct merge_write w;
		merge_write_from_change(c, i, &w);
		struct field_view v;
		change_field_at(c, i, &v);
		int f = field_index(v.name);
		assert_true(f >= 0);
		const struct merge_write *loser = NULL;
		enum merge_outcome o = merge_field(r->has[rec][f] ? &r->cur[rec][f] : NULL, &w, &loser);
		switch (o) {
		case MERGE_TAKE_INCOMING:
			/* log before overwriting: loser points at cur */
			if (loser)
				log_add(r, rec, f, loser);
			r->cur[rec][f] = w;
			r->has[rec][f] = 1;
			break;
		case MERGE_KEEP_CURRENT:
			assert_ptr_equal(loser, &w);
			log_add(r, rec, f, loser);
			break;
		case MERGE_SAME:
			assert_null(loser);
			break;
		}
	}
}

/* An equality and order independent of merge.c, so a broken merge_compare
 * cannot hide its own mistakes. */
static int write_cmp_raw(const struct merge_write *a, const struct merge_write *b)
{
	if (a->stamp != b->stamp)
		return a->stamp < b->stamp ? -1 : 1;
	int c = strcmp(a->site, b->site);
	if (c)
		return c;
	if (a->type != b->type)
		return (int)a->type - (int)b->type;
	if (a->type == FIELD_INT && a->i != b->i)
		return a->i < b->i ? -1 : 1;
	if (a->type == FIELD_TEXT) {
		if (a->len != b->len)
			return a->len < b->len ? -1 : 1;
		return memcmp(a->text, b->text, a->len);
	}
	return 0;
}

static int log_cmp(const void *x, const void *y)
{
	const struct log_entry *a = x, *b = y;
	if (a->rec != b->rec)
		return a->rec - b->rec;
	if (a->field != b->field)
		return a->field - b->field;
	return write_cmp_raw(&a->w, &b->w);
}

/* Sorts the log and removes repeats: the log is compared as a set. */
static void log_normalise(struct replica *r)
{
	if (r->nlog == 0)
		return;
	qsort(r->log, r->nlog, sizeof *r->log, log_cmp);
	size_t out = 1;
	for (size_t i = 1; i < r->nlog; i++)
		if (log_cmp(&r->log[i], &r->log[out - 1]) != 0)
			r->log[out++] = r->log[i];
	r->nlog = out;
}

static uint64_t g_seed;
static size_t g_case;

#define CHECK(cond, ...)                                                                     \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			print_error("convergence failed: seed %" PRIu64 " case %zu: ", g_seed, \
				    g_case);                                                  \
			print_error(__VA_ARGS__);                                            \
			print_error("\nreproduce: TALLY_SEED=%" PRIu64 " TALLY_CASE=%zu\n",  \
				    g_seed, g_case);                                          \
			fail();                                                              \
		}                                                                            \
	} while (0)

static void deliver(struct replica *r, const struct history *h, const unsigned char *subset)
{
	size_t order[MAX_DELIVERIES];
	size_t n = 0;
	for (size_t i = 0; i < h->n; i++)
		if (!subset || subset[i])
			order[n++] = i;
	size_t base = n;
	/* redeliveries: at-least-once transport */
	size_t extra = rng_below(base + 1);
	for (size_t i = 0; i < extra && n < MAX_DELIVERIES; i++)
		order[n++] = order[rng_below(base)];
	for (size_t i = n; i > 1; i--) {
		size_t j = rng_below(i);
		size_t t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
	for (size_t i = 0; i < n; i++)
		replica_apply(r, h, order[i]);
}

/* Checks that replicas a and b hold the same state and loser set. */
static void compare_replicas(const struct replica *a, const struct replica *b, size_t ia, size_t ib)
{
	for (int rec = 0; rec < NREC; rec++) {
		for (int f = 0; f < NFIELD; f++) {
			CHECK(a->has[rec][f] == b->has[rec][f], "replica %zu and %zu disagree on whether %s.%s is set",
			      ia, ib, rec_ids[rec], field_names[f]);
			if (!a->has[rec][f])
				continue;
			const struct merge_write *x = &a->cur[rec][f], *y = &b->cur[rec][f];
			CHECK(write_cmp_raw(x, y) == 0,
			      "replica %zu and %zu differ on %s.%s: stamp %" PRIx64 " site %s vs stamp %" PRIx64
			      " site %s",
			      ia, ib, rec_ids[rec], field_names[f], x->stamp, x->site, y->stamp, y->site);
		}
	}
	CHECK(a->nlog == b->nlog, "replica %zu has %zu losers, replica %zu has %zu", ia, a->nlog, ib,
	      b->nlog);
	for (size_t i = 0; i < a->nlog; i++)
		CHECK(log_cmp(&a->log[i], &b->log[i]) == 0,
		      "loser %zu differs between replica %zu and %zu (%s.%s site %s vs %s)", i, ia, ib,
		      rec_ids[a->log[i].rec], field_names[a->log[i].field], a->log[i].w.site,
		      b->log[i].w.site);
}

/* The specification, independently of merge.c: the winner of each field is
 * a write with the highest stamp, among those the highest site bytewise;
 * the losers are every other distinct write to the field. */
static void check_against_spec(const struct replica *r, const struct history *h,
			       const unsigned char *subset, size_t ir)
{
	struct log_entry all[MAX_CHANGES * NFIELD];
	size_t n = 0;
	for (size_t k = 0; k < h->n; k++) {
		if (subset && !subset[k])
			continue;
		for (size_t i = 0; i < change_field_count(h->changes[k]); i++) {
			struct field_view v;
			change_field_at(h->changes[k], i, &v);
			all[n].rec = h->rec[k];
			all[n].field = field_index(v.name);
			merge_write_from_change(h->changes[k], i, &all[n].w);
			n++;
		}
	}
	qsort(all, n, sizeof all[0], log_cmp);
	size_t losers = 0;
	for (int rec = 0; rec < NREC; rec++) {
		for (int f = 0; f < NFIELD; f++) {
			const struct merge_write *best = NULL;
			size_t distinct = 0;
			for (size_t i = 0; i < n; i++) {
				if (all[i].rec != rec || all[i].field != f)
					continue;
				if (i == 0 || log_cmp(&all[i], &all[i - 1]) != 0)
					distinct++;
				const struct merge_write *w = &all[i].w;
				if (!best || w->stamp > best->stamp ||
				    (w->stamp == best->stamp && strcmp(w->site, best->site) > 0))
					best = w;
			}
			CHECK((best != NULL) == (r->has[rec][f] != 0), "replica %zu: %s.%s set wrongly", ir,
			      rec_ids[rec], field_names[f]);
			if (!best)
				continue;
			const struct merge_write *got = &r->cur[rec][f];
			CHECK(got->stamp == best->stamp && strcmp(got->site, best->site) == 0,
			      "replica %zu: %s.%s won by stamp %" PRIx64 " site %s, rule says stamp %" PRIx64
			      " site %s",
			      ir, rec_ids[rec], field_names[f], got->stamp, got->site, best->stamp, best->site);
			losers += distinct - 1;
		}
	}
	CHECK(r->nlog == losers, "replica %zu: %zu losers logged, %zu distinct non-winning writes", ir,
	      r->nlog, losers);
	/* every logged loser is one of the writes, and none is the winner */
	for (size_t i = 0; i < r->nlog; i++) {
		const struct log_entry *e = &r->log[i];
		CHECK(bsearch(e, all, n, sizeof all[0], log_cmp) != NULL, "replica %zu: logged an unknown write",
		      ir);
		CHECK(write_cmp_raw(&e->w, &r->cur[e->rec][e->field]) != 0,
		      "replica %zu: the winner of %s.%s is also logged as a loser", ir, rec_ids[e->rec],
		      field_names[e->field]);
	}
}

/* The current case lives in file scope so a failing check, which leaves
 * the test by longjmp, still has its memory freed by the teardown. */
static struct history g_h;
static struct replica g_reps[MAX_FULL + NSUB];
static size_t g_nrep;

static void case_free(void)
{
	for (size_t i = 0; i < g_nrep; i++)
		free(g_reps[i].log);
	g_nrep = 0;
	history_free(&g_h);
	g_h.n = 0;
}

static void run_case(void)
{
	unsigned char subset[MAX_CHANGES];

	history_make(&g_h);
	size_t nfull = 3 + rng_below(MAX_FULL - 2);
	memset(g_reps, 0, sizeof g_reps);
	g_nrep = nfull + NSUB;
	for (size_t i = 0; i < g_h.n; i++)
		subset[i] = (unsigned char)rng_below(2);
	for (size_t i = 0; i < g_nrep; i++) {
		g_reps[i].dedupe = (int)rng_below(2);
		deliver(&g_reps[i], &g_h, i < nfull ? NULL : subset);
		log_normalise(&g_reps[i]);
	}
	/* The property itself first, then that the common state is the right one. */
	for (size_t i = 1; i < nfull; i++)
		compare_replicas(&g_reps[0], &g_reps[i], 0, i);
	/* replicas that received the same partial set agree too */
	compare_replicas(&g_reps[nfull], &g_reps[nfull + 1], nfull, nfull + 1);
	for (size_t i = 0; i < g_nrep; i++)
		check_against_spec(&g_reps[i], &g_h, i < nfull ? NULL : subset, i);
	case_free();
}

static int teardown(void **state)
{
	(void)state;
	case_free();
	return 0;
}

static uint64_t env_u64(const char *name, uint64_t dflt, int *set)
{
	const char *s = getenv(name);
	if (set)
		*set = 0;
	if (!s || !*s)
		return dflt;
	char *end = NULL;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end) {
		fprintf(stderr, "%s must be a decimal number\n", name);
		exit(2);
	}
	if (set)
		*set = 1;
	return (uint64_t)v;
}

static void test_convergence(void **state)
{
	(void)state;
	g_seed = env_u64("TALLY_SEED", (uint64_t)time(NULL), NULL);
	size_t cases = (size_t)env_u64("TALLY_CASES", 10000, NULL);
	int one = 0;
	size_t only = (size_t)env_u64("TALLY_CASE", 0, &one);
	print_message("convergence: seed %" PRIu64 ", %zu cases\n", g_seed, one ? (size_t)1 : cases);
	for (g_case = one ? only : 0; g_case < (one ? only + 1 : cases); g_case++) {
		/* each case has its own stream, so one case reruns alone */
		rng_state = g_seed * UINT64_C(0x100000001B3) ^ (uint64_t)g_case;
		rng_next();
		run_case();
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_convergence, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
