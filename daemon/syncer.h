/*
 * syncer — one sync cycle of a village: push everything queued, then pull
 * until the server has nothing more. `tallyd sync` (daemon/syncd.c) runs it
 * in a loop; `tally sync` runs it once. Same code, same bookkeeping.
 *
 * A cycle:
 *   1. push: read the outbox from acked_seq in seq order in batches bounded
 *      in changes and canonical bytes, send each as one push message
 *      (gzip'd by httpc), and apply the push_answer in ONE transaction:
 *      eff re-stamps (store_set_eff), rejections (store_outbox_reject), the
 *      acknowledgement (store_outbox_ack) and the server's clock. Order that
 *      guarantee 3 rests on: the server commits, then answers; the village
 *      marks acknowledged only after a valid answer, never before.
 *   2. pull: from pull_cursor, pages of at most pull_limit changes, each
 *      page applied with store_apply_remote in ONE transaction together
 *      with the new cursor, until `more` is false.
 *   3. evidence files (daemon/blobsync.h), only after 1 and 2 succeeded:
 *      records before blobs, so a big photo never holds back the day's
 *      progress entries.
 * seq_gap answers move the next push to the seq the server expects; an
 * epoch other than the stored one (PROTOCOL.md §11) resets acked_seq and
 * the pull cursor and restarts the cycle, so everything is resent from
 * seq 1 (with eff) and answered duplicate where the server still holds it.
 *
 * Bad links: a request that fails mid-way (network, timeout) halves the
 * batch (down to one change, and the pull page with it) and is retried at
 * once while requests keep succeeding in between; batches double back
 * after each success. So a link that drops every few KiB still moves
 * changes. A cycle gives up after max_retries failures in a row, and the
 * caller backs off. Trust failures (pin, TLS), a captive portal (bad_status)
 * and answers that do not decode end the cycle at once: nothing is marked.
 *
 * Ownership: syncer_new borrows the db (the caller closes it after
 * syncer_free) and copies the options' strings; the report is plain data.
 */
#ifndef TALLY_DAEMON_SYNCER_H
#define TALLY_DAEMON_SYNCER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct syncer;

struct syncer_options {
	/* Override the upstream stored by `tally join` (tests, operators).
	 * NULL/0 fields take the stored value. */
	const char *const *urls;
	size_t n_urls;
	const char *pin;
	const char *ca_file;
	const char *token;
	size_t max_batch_changes;    /* default and cap 500 (protocol max_changes 1000) */
	size_t max_batch_bytes;      /* canonical bytes per push, default 512 KiB */
	uint32_t pull_limit;         /* default 500 */
	unsigned max_retries;        /* failures in a row within a cycle, default 12 */
	unsigned connect_timeout_ms; /* httpc defaults when 0 */
	unsigned total_timeout_ms;
	const volatile sig_atomic_t *stop; /* checked between requests; NULL: never */
};

struct syncer_report {
	uint64_t pushed;        /* changes sent in pushes that were answered */
	uint64_t applied;       /* of those, answered applied */
	uint64_t duplicates;    /* answered duplicate */
	uint64_t rejected;      /* answered rejected (marked, never resent) */
	uint64_t pulled;        /* changes received in pull pages */
	uint64_t pulled_new;    /* of those, new here */
	uint64_t acked_seq;     /* after the cycle */
	uint64_t queue;         /* own changes still unacknowledged after the cycle */
	uint64_t requests;      /* HTTP requests answered */
	uint64_t failures;      /* requests that failed */
	uint64_t bytes_sent;    /* HTTP bytes, this cycle */
	uint64_t bytes_received;
	int epoch_changed;      /* the server's epoch changed during the cycle */
	int progress;           /* something was acknowledged or pulled */
	unsigned retry_after;   /* seconds the server asked to wait (429, 503), 0 if none */
	int64_t offset_ms;      /* server_ms - device_ms at the last answer */
	uint64_t blobs_uploaded; /* evidence files the server now has (daemon/blobsync.h) */
	uint64_t blobs_refused;  /* refused for good this cycle */
	uint64_t blob_bytes;     /* chunk bytes sent this cycle */
	int64_t blobs_pending;   /* evidence files still to upload */
	char detail[512];       /* the server's Chinese message or curl's text, for logs */
};

/* TLY_E_USAGE when no upstream is stored or given (not joined) or the
 * database has no site yet. A village device pushes and pulls; a township
 * replica (a township user's token) has nothing to push and only pulls. */
int syncer_new(struct db *db, const struct syncer_options *o, struct syncer **out);
void syncer_free(struct syncer *s);

/*
 * Runs one cycle (see above) and records it in sync_state: the attempt,
 * then success, or the error's code and Chinese text. next_attempt_ms is
 * what the caller plans (0: none) and is only stored with an error.
 * Returns TLY_OK or the code that ended the cycle; *r is filled either way.
 */
int syncer_cycle(struct syncer *s, int64_t next_attempt_ms, struct syncer_report *r);

/* The current batch size (changes), for logs and tests of the halving. */
size_t syncer_batch(const struct syncer *s);

/* Whether an error is worth an immediate retry inside a cycle (the link
 * broke mid-way) rather than ending it. */
int syncer_transient(int err);

#endif
