/*
 * syncd — `tallyd sync`: the village's long-running sync loop.
 *
 *   tallyd sync --db PATH [--url URL]... [--pin PIN | --ca FILE] [--token T]
 *               [--idle-pull SECONDS] [--backoff-min-ms MS] [--backoff-max-ms MS]
 *               [--batch N] [--timeout-ms MS] [--log-level LEVEL]
 *
 * Runs in the foreground, logs one line per event to stderr (daemon/log.h),
 * and stops cleanly on SIGTERM or SIGINT: the request under way finishes or
 * is abandoned, and nothing is half-marked, because marking happens in one
 * transaction after a valid answer (daemon/syncer.h).
 *
 * When it syncs:
 *   - at start;
 *   - within a second of a local write: the database's directory is watched
 *     with inotify (the -wal file changes on every commit of `tally`), and a
 *     wake-up whose outbox has grown syncs after a short debounce. No polling
 *     for local changes;
 *   - every idle_pull_ms when idle, so township decisions arrive;
 *   - after a failure, with exponential backoff and full jitter: a delay
 *     drawn uniformly from [0, min(backoff_max, backoff_min * 2^failures)],
 *     at least the server's Retry-After; reset by any success or progress.
 *     It never gives up and never drops a queued change.
 *
 * Ownership: syncd_run borrows the db.
 */
#ifndef TALLY_DAEMON_SYNCD_H
#define TALLY_DAEMON_SYNCD_H

#include <stdint.h>

#include "daemon/syncer.h"

struct db;

struct syncd_options {
	struct syncer_options sync; /* its stop field is set by syncd_run */
	int64_t idle_pull_ms;       /* default 60 s */
	int64_t backoff_min_ms;     /* default 1 s */
	int64_t backoff_max_ms;     /* default 5 min */
	int64_t debounce_ms;        /* after a local write, default 200 ms */
};

void syncd_options_default(struct syncd_options *o);

/* The delay before retry number `failures` (1 = first retry), full jitter,
 * `rnd` a uniform random 64-bit value (exposed for tests). */
int64_t syncd_backoff_ms(const struct syncd_options *o, unsigned failures, uint64_t rnd);

/* Runs until SIGTERM/SIGINT. TLY_OK on a clean stop, else what made it
 * impossible to run at all (bad options, no upstream, no inotify). */
int syncd_run(struct db *db, const struct syncd_options *o);

/* `tallyd sync ARGS`: argv[0] is "sync". Returns the process exit status. */
int syncd_main(int argc, char **argv);

#endif
