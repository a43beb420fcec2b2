/*
 * blobstore — a site's content-addressed store of evidence files
 * (佐证材料), and the SQL that tracks their uploads (docs/evidence.md).
 *
 * Layout, next to the database PATH:
 *   PATH.blobs/ab/cdef...    a stored file, named by its SHA-256 (lowercase
 *                            hex, the first two digits as a directory)
 *   PATH.blobs/tmp/          files being copied in (never read as blobs)
 *   PATH.blobs/partial/HASH  the township's uploads in progress; never
 *                            served, moved into the store only once the
 *                            whole file's SHA-256 was checked
 * A file enters the store by write to a temp file, fsync, rename, fsync of
 * the directory: after a crash a stored name either holds its whole
 * content or does not exist. The same content is stored once.
 *
 * The SQL: a village's upload queue (evidence records of its own,
 * acknowledged by the server, whose blob the server does not have yet),
 * its per-day byte counter for a metered link, and the township's upload
 * state (srv_blob, srv_blob_usage; see daemon/blobsrv.h).
 *
 * Ownership: nothing here keeps memory past a call; paths are written
 * into the caller's buffers. The db is borrowed.
 */
#ifndef TALLY_CLIENT_BLOBSTORE_H
#define TALLY_CLIENT_BLOBSTORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "client/db.h"
#include "protocol/buf.h"

#define BLOBSTORE_HEX_LEN 64
#define BLOBSTORE_PATH_MAX 4096
/* Default cap on one evidence file, both sides (configurable on the server). */
#define BLOBSTORE_MAX_FILE_DEFAULT (64ll << 20)

struct blobstore_info {
	char sha256[BLOBSTORE_HEX_LEN + 1];
	int64_t size;
	char type[64]; /* media type, e.g. image/jpeg; application/octet-stream if unknown */
};

/* "PATH.blobs". */
void blobstore_dir(const char *db_path, char *out, size_t n);
/* The stored file of hex (which need not exist). TLY_E_BAD_VALUE when hex is
 * not 64 lowercase hex digits, TLY_E_FIELD_TOO_LONG when the path does not fit. */
int blobstore_path(const char *db_path, const char *hex, char *out, size_t n);
/* Whether s is 64 lowercase hex digits. */
int blobstore_hex_ok(const char *s);
/* Media type from the first bytes (magic) or else the name's extension. */
const char *blobstore_type_of(const char *name, const unsigned char *head, size_t n);
/* SHA-256 and size of any file. TLY_E_IO (why says which) when unreadable. */
int blobstore_hash_file(const char *path, char hex[BLOBSTORE_HEX_LEN + 1], int64_t *size,
			struct buf *why);
/* fsync of a directory, so a rename or create inside it is durable. */
int blobstore_sync_dir(const char *dir);

/*
 * Copies file into db's store (temp, fsync, rename, fsync dir), hashing on
 * the way, and fills *out. A file over max_size bytes is
 * TLY_E_BLOB_TOO_LARGE and leaves nothing behind; already stored content
 * is not written again. Durable when it returns TLY_OK, so a record
 * written after it never names a blob that a power cut could lose.
 */
int blobstore_put_file(struct db *db, const char *file, int64_t max_size,
		       struct blobstore_info *out, struct buf *why);
/*
 * Moves an already verified file (same filesystem, e.g. a finished
 * partial upload) into the store under hex: fsync, rename, fsync dir.
 */
int blobstore_install(const char *db_path, const char *tmp_path, const char *hex);
/* Whether the stored file of hex exists; its size in *size when it does. */
int blobstore_has(const char *db_path, const char *hex, int64_t *size);
/*
 * Resolves a hash prefix (at least 4 hex digits) against the evidence
 * records of db: TLY_E_NOT_FOUND, TLY_E_AMBIGUOUS (why lists), or the
 * full hash in out.
 */
int blobstore_resolve(struct db *db, const char *prefix, char out[BLOBSTORE_HEX_LEN + 1],
		      struct buf *why);
/*
 * Copies the stored blob hex to dest (temp file beside dest, then rename),
 * checking its SHA-256 on the way: a stored file that no longer matches is
 * TLY_E_BLOB_HASH and dest is not created. TLY_E_NOT_FOUND when this site
 * does not hold it (yet).
 */
int blobstore_copy_out(struct db *db, const char *hex, const char *dest, struct buf *why);
/*
 * Rechecks every stored blob against its name, and every evidence record's
 * blob held here. Adds "blobs": {"checked","bad":[hash...],"missing":N} to
 * report and one line per bad blob to its "problems" array. TLY_E_VERIFY
 * when a stored file does not match its hash.
 */
int blobstore_verify(struct db *db, json_t *report);

/* ---- village: the upload queue ---- */

struct blobstore_pending {
	char sha256[BLOBSTORE_HEX_LEN + 1];
	int64_t size;
};
/*
 * Up to max blobs to upload, smallest first: named by this site's own
 * evidence records that the server has acknowledged (records before
 * blobs), held in the local store, and not yet marked done or refused.
 */
int blobstore_pending(struct db *db, struct blobstore_pending *out, size_t max, size_t *n);
/* Counts what blobstore_pending would list (all of it) and its bytes. */
int blobstore_pending_stats(struct db *db, int64_t *count, int64_t *bytes);
/* Marks hex uploaded ("done") or refused for good ("refused", with the
 * server's code and Chinese message). */
int blobstore_mark(struct db *db, const char *hex, const char *state, const char *code,
		   const char *message);
/* Bytes sent on day (YYYY-MM-DD), and adding to it. */
int blobstore_sent_get(struct db *db, const char *day, int64_t *bytes);
int blobstore_sent_add(struct db *db, const char *day, int64_t bytes);

/* ---- township: upload state (daemon/blobsrv.c) ---- */

struct blobstore_upload {
	char sha256[BLOBSTORE_HEX_LEN + 1];
	int64_t size;
	int64_t chunk_size;
	uint32_t nchunks;
	int complete;
	unsigned char *have; /* (nchunks + 7) / 8 bytes, bit i = chunk i; owned */
};
void blobstore_upload_free(struct blobstore_upload *u);
/* Loads hex's upload state: TLY_E_NOT_FOUND when none. */
int blobstore_upload_get(struct db *db, const char *hex, struct blobstore_upload *u);
/* Creates a partial upload with no chunk present (caller's checks done). */
int blobstore_upload_create(struct db *db, const char *hex, int64_t size, int64_t chunk_size,
			    int64_t now_ms);
/* Stores u->have (after the chunk's bytes were fsynced) and, in the same
 * transaction, adds bytes to village's usage of day. */
int blobstore_upload_save(struct db *db, const struct blobstore_upload *u, const char *village,
			  const char *day, int64_t bytes);
/* Marks it complete (after the file is in the store). */
int blobstore_upload_done(struct db *db, const char *hex, int64_t now_ms);
/* Clears every chunk of hex (a whole-file hash mismatch). */
int blobstore_upload_reset(struct db *db, const char *hex);
/* Bytes village sent on day. */
int blobstore_usage_get(struct db *db, const char *village, const char *day, int64_t *bytes);
/* Whether village (NULL: any) has an evidence record naming hex with
 * this size (-1: any), in *found. */
int blobstore_referenced(struct db *db, const char *hex, const char *village, int64_t size,
			 int *found);

#endif
