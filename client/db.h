/*
 * db — one site's SQLite database: opening, migrations, transactions and
 * the site's identity.
 *
 * Every site (village device or township server) has one file with the same
 * schema (schema.h). Opening sets WAL, synchronous=FULL (a commit survives a
 * power cut: guarantee 1), foreign_keys=ON and a 5 s busy timeout so `tally`
 * and a running `tallyd` can share the file.
 *
 * A file is recognised as Tally's by PRAGMA application_id; anything else
 * (another program's SQLite file, a text file) is TLY_E_NOT_TALLY_DB and is
 * never written to. A file whose user_version is newer than this code knows
 * is TLY_E_DB_TOO_NEW, also untouched.
 *
 * Ownership: struct db is opaque; db_open allocates it, db_close frees it
 * and every statement it cached. Strings in struct db_site belong to the db
 * and live until db_close (or db_site_create, which reloads them).
 * A struct db is used from one thread at a time.
 */
#ifndef TALLY_CLIENT_DB_H
#define TALLY_CLIENT_DB_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/buf.h"

/* PRAGMA application_id of every Tally database: "TALY". */
#define DB_APPLICATION_ID 0x54414C59

/* Random record and site ids: 16 lowercase hex characters. */
#define DB_ID_LEN 16

/* db_open flags */
#define DB_OPEN_CREATE 1 /* create the file if missing and bring the schema up */

struct db;

/* This site's identity, as `tally init` stored it. */
struct db_site {
	const char *site_id;    /* 16 lowercase hex */
	const char *role;       /* "village" or "township" */
	const char *name;       /* e.g. 王家村 or 某某镇 */
	const char *village_id; /* village devices: their village's record id; NULL on a township */
	int64_t created_ms;
};

/*
 * Opens path. Without DB_OPEN_CREATE a missing file, or a file without
 * Tally's schema, is TLY_E_NOT_INITIALISED. With it, a missing or empty
 * file gets the current schema. An older Tally schema is migrated (one
 * transaction per version step). Errors: TLY_E_NOT_TALLY_DB,
 * TLY_E_DB_TOO_NEW, TLY_E_DB, TLY_E_NOMEM. `why` (may be NULL) gets a
 * detail for people.
 */
int db_open(const char *path, int flags, struct db **out, struct buf *why);
void db_close(struct db *db);

/* The connection, for modules that run their own SQL. Owned by db. */
sqlite3 *db_handle(struct db *db);
const char *db_path(const struct db *db);

/*
 * A prepared statement cached by its SQL text: reset, bindings cleared, and
 * owned by db (never finalize it). Do not hold two uses of the same SQL at
 * once (a loop over a query calling something that runs that query again).
 */
int db_stmt(struct db *db, const char *sql, sqlite3_stmt **out);

/* Runs SQL without results (one or more statements). */
int db_exec(struct db *db, const char *sql);

/* Steps a cached statement that returns no rows and resets it, so it never
 * stays mid-read: TLY_OK, or the SQLite failure as a Tally code. */
int db_step_done(struct db *db, sqlite3_stmt *st);

/*
 * Transactions. db_begin starts BEGIN IMMEDIATE, taking the write lock at
 * once so a concurrent writer waits for the busy timeout instead of failing
 * half-way. db_commit returns only once SQLite has made the commit durable
 * (synchronous=FULL). db_rollback is safe to call when no transaction is open.
 * db_in_txn tells whether a transaction is open (for functions documented to
 * run inside the caller's transaction).
 * A statement that fails with SQLITE_NOMEM, IOERR or FULL may make SQLite
 * roll the whole transaction back on its own: from then on db_stmt, db_exec
 * and db_commit of a db_begin'd transaction fail with TLY_E_DB until
 * db_rollback, so nothing after an ignored error is written in autocommit
 * mode, one statement at a time.
 */
int db_begin(struct db *db);
int db_commit(struct db *db);
void db_rollback(struct db *db);
int db_in_txn(struct db *db);

/* Maps an SQLite result code to a Tally code (busy and I/O errors included). */
int db_err(struct db *db, int rc);

/* Reads PRAGMA user_version (the schema version of the open file). */
int db_user_version(struct db *db, int *out);

/* This site's identity, or NULL when `tally init` has not run yet. */
const struct db_site *db_site(const struct db *db);

/*
 * Stores this site's identity (once: TLY_E_EXISTS if already set) with a
 * fresh random site id. Runs in the caller's transaction. role is
 * "village" or "township"; village_id is required for a village, NULL for a
 * township.
 */
int db_site_create(struct db *db, const char *role, const char *name, const char *village_id,
		   int64_t now_ms);

/* Sets a village device's village id once enrolment tells it (caller's transaction). */
int db_site_set_village(struct db *db, const char *village_id);

/* Writes DB_ID_LEN random lowercase hex characters and a NUL into out. */
int db_random_id(char out[DB_ID_LEN + 1]);

/*
 * A new record's id: DB_RECORD_ID_LEN lowercase hex characters and a NUL,
 * 11 of now_ms (milliseconds since 1970) then 9 random (36 bits). Ids made
 * later sort later, so a new record's rows and index entries land at the
 * right edge of every B-tree keyed by id, not on a random page: on the
 * township server that halved the pages each push writes. Unique across
 * sites with overwhelming odds: two ids collide only if made in the same
 * millisecond with the same 36 random bits.
 */
#define DB_RECORD_ID_LEN 20
int db_record_id(int64_t now_ms, char out[DB_RECORD_ID_LEN + 1]);

/* Local settings (never replicated): warning thresholds and the like.
 * db_setting_int returns def when the key is absent or not an integer. */
int64_t db_setting_int(struct db *db, const char *key, int64_t def);
int db_setting_set(struct db *db, const char *key, const char *value);

#endif
