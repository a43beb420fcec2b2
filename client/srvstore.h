/*
 * srvstore — the township server's own tables (schema version 2): epoch,
 * enrolled devices, township users, one-time join codes, the per-village
 * pull feed and the audit log. The SQL of daemon/syncsrv.c lives here so
 * that all SQL stays behind client/ (a PostgreSQL backend would replace
 * this file and store.c, not the daemon).
 *
 * None of these tables is replicated. Secrets are never stored: only the
 * SHA-256 of a 32-byte random secret (high entropy, so a plain hash is
 * enough; people's passwords would need scrypt or argon2).
 *
 * Functions documented "caller's transaction" do not begin or commit; the
 * others run as single statements (autocommit when no transaction is open).
 *
 * Ownership: structs are filled in caller memory; arrays of changes from
 * srvstore_feed_read are freed with store_changes_free; JSON from
 * srvstore_devices_json is a new reference the caller json_decref's.
 */
#ifndef TALLY_CLIENT_SRVSTORE_H
#define TALLY_CLIENT_SRVSTORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "client/db.h"
#include "protocol/change.h"
#include "protocol/message.h"

#define SRVSTORE_HASH_LEN 32
#define SRVSTORE_NAME_MAX 255

/* ---- epoch and high-water mark ---- */

/* The server's epoch (PROTOCOL.md §11), [0-9a-z]{16}. */
int srvstore_epoch(struct db *db, char out[MSG_EPOCH_MAX + 1]);
/* Makes and stores a fresh random epoch (a restored database), into out. */
int srvstore_epoch_renew(struct db *db, char out[MSG_EPOCH_MAX + 1]);
/* The highest change_log position (0 when empty): the restore detector's mark. */
int srvstore_log_high(struct db *db, int64_t *pos);
/* The ordering stamp (eff, else hlc) of site's highest held seq, 0 when none. */
int srvstore_site_last_stamp(struct db *db, const char *site, uint64_t *stamp);

/* The links of held change (site, seq): *found 0 when not held; else its
 * hash and eff (0 when none). */
int srvstore_change_links(struct db *db, const char *site, uint64_t seq, int *found,
			  uint8_t hash[CHANGE_HASH_LEN], uint64_t *eff);

/* A text setting (local, never replicated) into out; "" when absent. */
int srvstore_setting_text(struct db *db, const char *key, struct buf *out);

/* ---- devices (village machines, one site each) ---- */

struct srvstore_device {
	char id[DB_ID_LEN + 1];
	char site[CHANGE_SITE_MAX + 1];
	char village[CHANGE_ID_MAX + 1];
	char name[SRVSTORE_NAME_MAX + 1];
	uint8_t secret_hash[SRVSTORE_HASH_LEN];
	int64_t revoked_ms; /* 0 when not revoked */
};

/* TLY_E_EXISTS when the site already has a device. Caller's transaction. */
int srvstore_device_add(struct db *db, const struct srvstore_device *d, int64_t now_ms);
/* TLY_E_NOT_FOUND when unknown. */
int srvstore_device_get(struct db *db, const char *id, struct srvstore_device *out);
/* Marks revoked (once; revoking again keeps the first time). TLY_E_NOT_FOUND. */
int srvstore_device_revoke(struct db *db, const char *id, int64_t now_ms);
/*
 * Records a contact: last_contact = now; acked_seq when acked >= 0; the
 * queue depth the device reported when queue >= 0; offset_ms when
 * has_offset; err_code (NULL: keep the last error) with its time.
 */
int srvstore_device_contact(struct db *db, const char *id, int64_t now_ms, int64_t acked,
			    int64_t queue, int has_offset, int64_t offset_ms, const char *err_code);
/* Every device with its sync state and its five most recent audit events:
 * a JSON array. */
int srvstore_devices_json(struct db *db, json_t **out);

/* ---- township users (read everything) ---- */

int srvstore_user_add(struct db *db, const char *id, const char *name,
		      const uint8_t hash[SRVSTORE_HASH_LEN], int64_t now_ms);
/* TLY_E_NOT_FOUND; *revoked_ms 0 when active. name may be NULL. */
int srvstore_user_get(struct db *db, const char *id, char name[SRVSTORE_NAME_MAX + 1],
		      uint8_t hash[SRVSTORE_HASH_LEN], int64_t *revoked_ms);

/* ---- join codes ---- */

struct srvstore_join {
	char id[DB_ID_LEN + 1];
	char village[CHANGE_ID_MAX + 1];
	uint8_t secret_hash[SRVSTORE_HASH_LEN];
	int64_t expires_ms;
	int64_t used_ms; /* 0 when unused */
};

int srvstore_join_add(struct db *db, const struct srvstore_join *j, int64_t now_ms);
int srvstore_join_get(struct db *db, const char *id, struct srvstore_join *out);
/* Marks the code used by device_id, only if still unused: TLY_E_JOIN_USED
 * otherwise (so two racing joins cannot both win). Caller's transaction. */
int srvstore_join_use(struct db *db, const char *id, const char *device_id, int64_t now_ms);

/* ---- audit log ---- */

/* One row; device_id, site, code and detail may be NULL. */
int srvstore_audit(struct db *db, int64_t now_ms, const char *device_id, const char *site,
		   const char *event, const char *code, const char *detail);
/* Rows with this event (for tests and operators). */
int srvstore_audit_count(struct db *db, const char *event, int64_t *n);

/* ---- the per-village feed (tenancy of pulls, DESIGN.md guarantee 7) ---- */

/*
 * Indexes every change_log row past srv_state.feed_pos into the feed of
 * each village that may see it: a village's own record; tasks of the
 * village and their progress, evidence and reviews (by the STORED task's
 * village); problems once the village has a task under them (the
 * problem's earlier changes are appended to the village's feed when its
 * first task under it is indexed) or when the problem is the village's own
 * self-check; notices to the village, or to all ('' rows). Rejected
 * changes are never in a feed. Local township writes are indexed the same
 * way the next time this runs. Caller's transaction.
 */
int srvstore_feed_index(struct db *db);

/*
 * A page of village's feed after cursor `after` (a feed id), skipping
 * changes whose origin is exclude_site (the caller's own), bounded like
 * store_log_read. *next gets the cursor for the next page, *more 1 when
 * rows remain after it.
 */
int srvstore_feed_read(struct db *db, const char *village, const char *exclude_site,
		       int64_t after, size_t max_count, size_t max_bytes, struct change ***out,
		       size_t *n, int64_t *next, int *more);

/* Whether the change log holds applied rows past pos (township pulls). */
int srvstore_log_more(struct db *db, int64_t pos, int *more);

/* ---- the village end of enrolment ---- */

/*
 * Stores what `tally join` got, in the caller's transaction: local
 * settings sync_urls (newline-separated), sync_pin, sync_device_id,
 * sync_token (the bearer token), sync_server_site; and sync_state's
 * upstream_url (the first URL), epoch, server_offset_ms, with acked_seq and
 * pull_cursor starting over at 0 (a new upstream holds nothing of ours yet).
 */
int srvstore_enrolled_save(struct db *db, const char *const *urls, size_t nurls, const char *pin,
			   const char *device_id, const char *token, const char *server_site,
			   const char *epoch, int64_t offset_ms);

/* The name of a village record, into out (at most n bytes with the NUL). */
int srvstore_village_name(struct db *db, const char *id, char *out, size_t n);

#endif
