/*
 * syncsrv — the township server's sync logic, independent of HTTP: it
 * authenticates bearer tokens, decodes requests, authorises them against
 * the STORED records, applies pushes in one transaction, serves pulls from
 * the per-village feed, enrols devices, and builds every answer (success
 * or protocol error message) with its HTTP status. daemon/serve.c only
 * moves bytes between httpd and these functions; tests call them directly
 * on real database files.
 *
 * Every request function returns TLY_OK when it filled the reply (a
 * refusal is a reply too: an `error` message and a 4xx status), or an
 * error code when it could not build one at all (the transport answers
 * 500). The database is committed BEFORE any success reply is built.
 *
 * Ownership: syncsrv_open opens and owns the database; syncsrv_close
 * closes it. A reply owns its body; syncsrv_reply_free releases it.
 * One thread at a time (the httpd loop).
 */
#ifndef TALLY_DAEMON_SYNCSRV_H
#define TALLY_DAEMON_SYNCSRV_H

#include <stddef.h>
#include <stdint.h>

#include "client/db.h"
#include "protocol/buf.h"
#include "protocol/change.h"
#include "protocol/limits.h"
#include "protocol/message.h"

struct syncsrv;

struct syncsrv_options {
	struct limits limits;     /* protocol limits (max_changes, max_ahead_ms, ...) */
	size_t pull_max_bytes;    /* canonical bytes of one pull page (past its first change) */
	size_t max_reply_bytes;   /* cap of a reply body */
};

void syncsrv_options_default(struct syncsrv_options *o);

/* Called after every commit that added to the change log, with the new
 * high-water position (serve.c writes the restore-detection sidecar). */
typedef void (*syncsrv_commit_fn)(void *arg, int64_t log_high);

/* Opens (creating the schema if needed) a township database. A database
 * whose site is not a township is TLY_E_USAGE (why says so). */
int syncsrv_open(const char *db_path, const struct syncsrv_options *o, struct syncsrv **out,
		 struct buf *why);
void syncsrv_close(struct syncsrv *s);
struct db *syncsrv_db(struct syncsrv *s);
void syncsrv_set_commit_hook(struct syncsrv *s, syncsrv_commit_fn fn, void *arg);

/* The current epoch (owned by s). */
const char *syncsrv_epoch(const struct syncsrv *s);
/* Makes a new epoch (restored database, operator's request), logged. */
int syncsrv_new_epoch(struct syncsrv *s, const char *reason);

/* Who is calling, as the auth step found it. */
struct syncsrv_principal {
	char kind; /* 'd' device, 'u' township user */
	char id[DB_ID_LEN + 1];
	char site[CHANGE_SITE_MAX + 1];     /* devices */
	char village[CHANGE_ID_MAX + 1];    /* devices */
};

/* TLY_OK, TLY_E_UNAUTHORIZED (missing, malformed, unknown, wrong secret)
 * or TLY_E_REVOKED; bearer may be NULL. Compares hashes in constant time. */
int syncsrv_authenticate(struct syncsrv *s, const char *bearer, struct syncsrv_principal *p);

struct syncsrv_reply {
	int status;           /* HTTP status */
	struct buf body;      /* JSON */
	uint32_t retry_after; /* seconds, 0 for none */
};

void syncsrv_reply_init(struct syncsrv_reply *r);
void syncsrv_reply_free(struct syncsrv_reply *r);
/* Fills r with the protocol error message for err (message NULL: the
 * standard Chinese text) and its status (0: the standard one). */
int syncsrv_reply_error(struct syncsrv_reply *r, int status, int err, const char *message,
			uint64_t expected);

/* POST /v1/push by a device (body already inflated). */
int syncsrv_push(struct syncsrv *s, const struct syncsrv_principal *p, const char *body,
		 size_t n, struct syncsrv_reply *r);
/* POST /v1/pull by a device or a township user. */
int syncsrv_pull(struct syncsrv *s, const struct syncsrv_principal *p, const char *body,
		 size_t n, struct syncsrv_reply *r);
/* POST /v1/join, unauthenticated: {"v":1,"code":"id.secret","site":S,"name":N}. */
int syncsrv_join(struct syncsrv *s, const char *body, size_t n, const char *remote,
		 struct syncsrv_reply *r);
/* GET /v1/devices, township users only. */
int syncsrv_devices(struct syncsrv *s, const struct syncsrv_principal *p,
		    struct syncsrv_reply *r);
/* GET /v1/whoami. */
int syncsrv_whoami(struct syncsrv *s, const struct syncsrv_principal *p,
		   struct syncsrv_reply *r);

/* Records a refusal against a device (audit row + last error), for
 * refusals decided outside syncsrv (rate limit). */
void syncsrv_note_error(struct syncsrv *s, const struct syncsrv_principal *p, int err);

#endif
