/*
 * store — THE local write path, THE remote apply path, and the outbox.
 *
 * Four tables carry the replication state (schema.c):
 *   change_log  every change this site holds, its own and received, with
 *               its canonical bytes, chain links, state applied|rejected;
 *               pos (its rowid) is the cursor for pulls.
 *   record_base the write of the change that created each record (stamp,
 *               site, seq, which fields it carried): one row per record.
 *   field_write every other current winning write, one row per field
 *               (value, stamp, site, seq). With record_base, the merge
 *               state; the view field_state shows it one row per field.
 *               The domain tables (village, problem, task, ...) hold the
 *               values, written in the same transaction.
 *   conflict    losing writes, with both values, sites and stamps.
 *
 * Local writes: build each change as a draft (store_draft_new + the
 * change_set_* functions of protocol/change.h), then store_write. The
 * store stamps, numbers, chains, logs and applies them in ONE transaction.
 *
 * Received changes: store_apply_remote, inside the caller's transaction,
 * after the caller has verified the chain (chain_link_run).
 *
 * Ownership: functions returning arrays of changes allocate them;
 * store_changes_free releases them. Drafts belong to the caller.
 */
#ifndef TALLY_CLIENT_STORE_H
#define TALLY_CLIENT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/buf.h"
#include "protocol/change.h"
#include "protocol/hlc.h"
#include "db.h"
#include "rules.h"

/* Makes an empty draft of a change to record (kind, id) by this site. Its
 * site, seq and hlc are placeholders that store_write replaces; set fields
 * on it with change_set_text/int/null. The caller frees it (change_free). */
int store_draft_new(struct db *db, const char *kind, const char *id, struct change **out);

/*
 * THE local write path. In one BEGIN IMMEDIATE transaction, for each draft
 * in order: checks it with rules_check as this site's actor against the
 * stored records (including earlier drafts of the same call), stamps it
 * with the site's HLC (wall time from clock.h), gives it the next seq,
 * links it into the site's hash chain, appends it to change_log and merges
 * its fields into the merge state and the domain table. Then COMMITs. Returns
 * TLY_OK only once the commit is durable; on any error nothing at all is
 * written. `why` (may be NULL) gets a Chinese detail on refusal.
 * *first_seq (may be NULL) gets the seq of the first change written.
 * Must not be called inside an open transaction.
 */
int store_write(struct db *db, struct change *const *drafts, size_t n, struct buf *why,
		uint64_t *first_seq);

/* The same inside the CALLER's transaction (db_begin ... db_commit), for a
 * write that must commit together with other work (tally init writes the
 * site identity and the village record at once). On error the caller must
 * roll back. TLY_E_INTERNAL when no transaction is open. */
int store_write_in_txn(struct db *db, struct change *const *drafts, size_t n, struct buf *why,
		       uint64_t *first_seq);

/*
 * Checks a change against the rules for actor, gathering what the database
 * holds about the records it touches (the stored task's village and status,
 * the latest progress, ...). Read-only. TLY_OK or the rule's code + why.
 */
int store_check(struct db *db, const struct rules_actor *actor, const struct change *c,
		struct buf *why);

enum store_outcome {
	STORE_APPLIED = 0,  /* new: stored and merged */
	STORE_DUPLICATE,    /* (site, seq) already held with the same canonical bytes */
	STORE_REJECTED,     /* new, refused by the rules: stored as rejected, no effect */
};

/*
 * THE remote apply path: applies one received change inside the CALLER's
 * transaction. The change must carry its chain links (the caller verified
 * them). Idempotent by (site, seq): already held with identical canonical
 * bytes is STORE_DUPLICATE (a newer eff is taken over), different bytes is
 * TLY_E_CHAIN and nothing changes (a changed body never replaces the
 * original). When actor is not NULL the change is first checked with
 * store_check; a refusal stores it as rejected with the code and Chinese
 * reason (*reject_code and reject_reason, either may be NULL) and is
 * STORE_REJECTED with TLY_OK returned. Otherwise it is stored and each
 * field merged by merge_field against the merge state: the winner goes to the
 * domain table, a loser from another site to the conflict log. The site's
 * HLC receives the change's stamp. recv_ms is this site's receive time.
 */
int store_apply_remote(struct db *db, const struct change *c, const struct rules_actor *actor,
		       int64_t recv_ms, enum store_outcome *outcome, int *reject_code,
		       struct buf *reject_reason);

/* The highest seq held for site and its hash (0 and chain_genesis when
 * none): where the next change of that site must link. */
int store_site_head(struct db *db, const char *site, uint64_t *seq,
		    uint8_t hash[CHANGE_HASH_LEN]);

/* State of a held change: 1 in *found if held; *rejected, *code (error
 * code) and reason (may be NULL) for rejected ones. */
int store_change_state(struct db *db, const char *site, uint64_t seq, int *found, int *rejected,
		       int *code, struct buf *reason);

/*
 * Reads held changes with pos > after_pos in pos order, applied ones only,
 * at most max_count of them and, past the first, at most max_bytes of
 * canonical bytes. Each has its eff and links. *last_pos gets the pos of
 * the last one returned (after_pos when none).
 */
int store_log_read(struct db *db, int64_t after_pos, size_t max_count, size_t max_bytes,
		   struct change ***out, size_t *n, int64_t *last_pos);

void store_changes_free(struct change **cs, size_t n);

/* ---- the outbox: this site's own changes not yet acknowledged upstream ---- */

/* This site's changes with seq > after_seq in seq order (bounded like
 * store_log_read), with eff and links, rejected ones included (the server
 * holds them too and answers duplicate). */
int store_outbox_read(struct db *db, uint64_t after_seq, size_t max_count, size_t max_bytes,
		      struct change ***out, size_t *n);

/* Records that the upstream with this epoch durably holds every own
 * change up to seq. A different epoch than the stored one replaces it (and
 * acked_seq starts over from seq). Caller's transaction. */
int store_outbox_ack(struct db *db, const char *epoch, uint64_t seq);

/* Marks own change seq as rejected upstream with code and a Chinese reason,
 * and undoes its effect here: the record it touched is rebuilt from the
 * changes still applied. Caller's transaction. */
int store_outbox_reject(struct db *db, uint64_t seq, int code, const char *reason_zh);

/* Sets the eff the server assigned to a held change of site (own site for a
 * push answer) and re-merges its fields under the new stamp, so the fields
 * it wins here are the fields it wins at the server (PROTOCOL.md §6 rule 3).
 * Caller's transaction. */
int store_set_eff(struct db *db, const char *site, uint64_t seq, uint64_t eff);

struct store_outbox_stats {
	uint64_t last_seq;    /* highest own seq */
	uint64_t acked_seq;   /* acknowledged upstream */
	uint64_t pending;     /* own changes after acked_seq */
	int64_t oldest_ms;    /* device time of the oldest pending one, 0 if none */
	uint64_t rejected;    /* own changes rejected upstream */
};
int store_outbox_stats(struct db *db, struct store_outbox_stats *out);

/* ---- this site's clock ------------------------------------------------------- */

/* The persisted HLC of this site (site.hlc_last), for a server that
 * assigns ordering stamps (PROTOCOL.md §6 rule 2) in the caller's
 * transaction: load, hlc_send/hlc_recv, save. */
int store_clock_load(struct db *db, struct hlc *clock);
int store_clock_save(struct db *db, const struct hlc *clock);

/* ---- rebuilding ------------------------------------------------------------ */

/* Merges c's fields into the merge state and the domain table without touching
 * change_log or the conflict log: the replay step of rebuilds (verify). */
int store_merge_change(struct db *db, const struct change *c);

/* Rebuilds one record's fields and domain row from the applied changes in
 * change_log (used after a rejection). Caller's transaction. */
int store_rebuild_record(struct db *db, const char *kind, const char *id);

/* Decodes a change_log row's body and sets its eff and links. */
int store_change_from_row(const void *body, size_t n, int64_t eff, const void *prev,
			  const void *hash, struct change **out);

#endif
