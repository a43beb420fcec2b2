/*
 * blobsrv — the township's evidence-file endpoints (PROTOCOL.md "Evidence
 * transfer", docs/evidence.md): chunked, resumable, verified uploads into
 * the content-addressed store of client/blobstore.h, and downloads.
 *
 *   POST /v1/blob/HASH              {"v":1,"size":N} -> upload state
 *   PUT  /v1/blob/HASH/chunk/I?sha256=H0[,H1...]
 *                                   chunks I, I+1, ... (at most 16, body at
 *                                   most 4 MiB) back to back, Hj the SHA-256
 *                                   of chunk I+j -> upload state
 *   GET  /v1/blob/HASH              the whole file, only once complete
 *
 * The upload state answered by POST and PUT:
 *   {"v":1,"sha256":H,"size":N,"chunk_size":C,"chunks":K,
 *    "have":"HEX","complete":BOOL,"quota_left":Q}
 * where "have" is the received-chunk bitmap (bit i of byte i/8, least
 * significant bit first, as hex). The chunk size is the server's at the
 * upload's creation and stays fixed for that upload.
 *
 * Every chunk's hash is checked before a byte is written; the body is
 * written to PATH.blobs/partial/HASH at I*C and fdatasync'd BEFORE the
 * chunks' bits are committed; once every bit is set the whole file's
 * SHA-256 is checked and only a match is renamed into the store and marked
 * complete. A mismatch clears the upload (nothing stored). Partial files
 * are never served. State lives in the database (srv_blob), so uploads
 * resume across drops and restarts of either side.
 *
 * Authorisation (guarantee 7): a device may upload or read HASH only when
 * an evidence record of a task of ITS village (the stored task) names HASH
 * (and, for uploads, the declared size); township users read everything.
 * Limits (config keys below), checked on the headers before a body byte is
 * read: per-file size, chunk size, bytes per village per day.
 *
 * Ownership: blobsrv_new borrows the syncsrv (for its db and auth) and
 * copies db_path; blobsrv_free releases only its own memory.
 */
#ifndef TALLY_DAEMON_BLOBSRV_H
#define TALLY_DAEMON_BLOBSRV_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/config.h"

struct httpd;
struct httpd_req;
struct syncsrv;
struct syncsrv_principal;
struct blobsrv;

struct blobsrv_options {
	size_t max_file_bytes;  /* one evidence file (413 blob_too_large) */
	size_t chunk_bytes;     /* chunk size of new uploads */
	size_t daily_bytes;     /* chunk bytes accepted per village per day (429 blob_quota) */
};

void blobsrv_options_default(struct blobsrv_options *o);
/* The options as config-file keys (target: struct blobsrv_options). */
extern const struct config_option blobsrv_config_options[];
extern const size_t blobsrv_config_options_count;

int blobsrv_new(struct syncsrv *ss, const char *db_path, const struct blobsrv_options *o,
		struct blobsrv **out);
void blobsrv_free(struct blobsrv *b);
/* Adds the three routes above to h. */
int blobsrv_add_routes(struct blobsrv *b, struct httpd *h);

/* Whether r is a chunk PUT: those are metered by bytes (blobsrv_admit),
 * not by the per-device request rate. */
int blobsrv_is_chunk(const struct httpd_req *r);
/* For the auth hook, on the headers of a chunk PUT: refuses (answering
 * itself, with the Chinese message) a body over the chunk size or over
 * what is left of the village's bytes for today. TLY_OK to go on. */
int blobsrv_admit(struct blobsrv *b, struct httpd_req *r, const struct syncsrv_principal *p);

#endif
