/*
 * blobsync — the village's evidence-file uploads, run by the sync cycle
 * (daemon/syncer.c) after its records went through (records before
 * blobs: a big photo never holds back a day's progress entries).
 *
 * For each pending blob, smallest first (client/blobstore.h):
 *   1. POST /v1/blob/HASH {"v":1,"size":N}: the server's state of it
 *      (chunk size, which chunks it has, complete or not);
 *   2. PUT each missing chunk with its own SHA-256 (daemon/blobsrv.h);
 *      each answer carries the state again;
 *   3. complete -> the blob is marked done here and never sent again.
 * Nothing about an upload in progress is kept here: the server's answer
 * is the state, so a village restarted or rebooted asks and resumes at
 * chunk granularity.
 *
 * Refusals for good (forbidden, blob_too_large, a size conflict) mark the
 * blob refused with the server's Chinese message, shown by `tally
 * evidence list`. blob_quota (the village's bytes for today) and the
 * local daily budget for metered links (setting blob_daily_budget, bytes;
 * absent or 0: none) end the run quietly: the rest goes tomorrow. A link
 * that drops costs at most the chunk in flight: the run retries at once
 * while requests keep succeeding in between, and gives up after
 * max_retries failures in a row (the caller backs off).
 *
 * Ownership: borrows the db and the httpc handle.
 */
#ifndef TALLY_DAEMON_BLOBSYNC_H
#define TALLY_DAEMON_BLOBSYNC_H

#include <signal.h>
#include <stdint.h>

struct db;
struct httpc;

/* Local setting: bytes of evidence a village sends per day at most. */
#define BLOBSYNC_BUDGET_SETTING "blob_daily_budget"

struct blobsync_options {
	unsigned max_retries;               /* failures in a row, default 12 */
	const volatile sig_atomic_t *stop;  /* checked between requests */
};

struct blobsync_report {
	uint64_t uploaded;     /* blobs the server now has (sent or already there) */
	uint64_t refused;      /* blobs refused for good in this run */
	uint64_t chunks;       /* chunks the server accepted in this run */
	uint64_t bytes;        /* chunk bytes sent (accepted or not) */
	uint64_t http_sent;    /* HTTP bytes sent, all requests */
	uint64_t http_received;
	uint64_t failures;     /* requests that failed */
	int64_t pending;       /* blobs still to upload after the run */
	int deferred;          /* stopped by blob_quota or the local budget */
	char detail[256];      /* last server message or curl text */
};

/* Runs the uploads; TLY_OK when nothing is left that could be sent now. */
int blobsync_run(struct db *db, struct httpc *http, const char *token,
		 const struct blobsync_options *o, struct blobsync_report *r);

#endif
