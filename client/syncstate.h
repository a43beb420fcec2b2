/*
 * syncstate — the village's replication bookkeeping in sync_state (one
 * row), and where its upstream lives: the SQL of daemon/syncer.c, kept in
 * client/ like every other statement.
 *
 * sync_state columns used: epoch, acked_seq (through store_outbox_ack), pull_cursor,
 * server_offset_ms (read by clock_wall_ms), last_attempt_ms,
 * last_success_ms, last_error_code/text, next_attempt_ms, fail_count.
 * What the schema has no column for is in settings (local, never
 * replicated): sync_urls (one per line), sync_pin, sync_token (written
 * by `tally join`, srvstore_enrolled_save), sync_ca_file (set by an
 * operator for a CA-issued certificate), sync_server_ms (server clock at the last answer), sync_bytes_sent,
 * sync_bytes_received (totals, HTTP bytes on the wire).
 *
 * Functions marked "caller's transaction" neither begin nor commit, so the
 * syncer can make them part of the transaction that applies an answer.
 * The others are single autocommit statements.
 *
 * Ownership: structs live in caller memory; JSON returned is a new
 * reference the caller json_decref's.
 */
#ifndef TALLY_CLIENT_SYNCSTATE_H
#define TALLY_CLIENT_SYNCSTATE_H

#include <jansson.h>
#include <stdint.h>

#include "client/db.h"
#include "protocol/message.h"

#define SYNCSTATE_URLS_MAX 8
#define SYNCSTATE_URL_LEN 512
#define SYNCSTATE_PIN_LEN 512
#define SYNCSTATE_TOKEN_LEN 256
#define SYNCSTATE_PATH_LEN 1024

/* |offset| above this and `tally status` warns that the device clock is wrong. */
#define SYNCSTATE_CLOCK_WARN_MS (5 * 60 * 1000)

/* Where and how to reach the township, as `tally join` stored it. */
struct syncstate_upstream {
	char urls[SYNCSTATE_URLS_MAX][SYNCSTATE_URL_LEN];
	size_t n_urls;
	char pin[SYNCSTATE_PIN_LEN];      /* "" when none */
	char token[SYNCSTATE_TOKEN_LEN];  /* "" when none */
	char ca_file[SYNCSTATE_PATH_LEN]; /* "" when none */
};

/* The replication cursor state. */
struct syncstate {
	char epoch[MSG_EPOCH_MAX + 1]; /* "" before the first answer */
	uint64_t acked_seq;
	uint64_t pull_cursor;
	int64_t offset_ms;
	uint32_t fail_count;
};

int syncstate_load(struct db *db, struct syncstate *out);

/* Reads the upstream; n_urls 0 when the device has not joined. */
int syncstate_upstream_get(struct db *db, struct syncstate_upstream *out);

/* A new epoch (PROTOCOL.md §11): store it, forget every acknowledgement
 * and restart the pull cursor at 0. Caller's transaction. */
int syncstate_epoch_reset(struct db *db, const char *epoch);

/* The pull page was applied: the cursor moves to next. Caller's transaction. */
int syncstate_set_cursor(struct db *db, uint64_t next);

/* The server's clock at an answer and the offset to add to the device
 * clock (server_ms - device_ms). Caller's transaction. */
int syncstate_record_clock(struct db *db, uint64_t server_ms, int64_t offset_ms);

/* A cycle starts. */
int syncstate_record_attempt(struct db *db, int64_t now_ms);

/* A cycle ended well: last success, error cleared, fail count 0; bytes are
 * added to the totals. */
int syncstate_record_success(struct db *db, int64_t now_ms, uint64_t bytes_sent,
			     uint64_t bytes_received);

/* A cycle failed: code, its Chinese text (detail may add the server's
 * message; NULL for none), fail count + 1, the time of the next try. */
int syncstate_record_error(struct db *db, int code, const char *detail_zh, int64_t next_ms,
			   uint64_t bytes_sent, uint64_t bytes_received);

/*
 * For `tally status`: an object with upstream (array), epoch, acked_seq,
 * pull_cursor, offset_ms, clock_warning (|offset| over
 * SYNCSTATE_CLOCK_WARN_MS), server_ms, last_attempt, last_success (local
 * "YYYY-MM-DD HH:MM:SS" or null) with their _ms values, last_error
 * {code, message} or null, next_attempt, fail_count, bytes_sent,
 * bytes_received, joined (whether an upstream is set).
 */
int syncstate_json(struct db *db, json_t **out);

/* Prints the sync part of `tally status` in Chinese from syncstate_json's
 * object (and the status object's pending/oldest fields). */
void syncstate_print(const json_t *sync);

#endif
