/*
 * blobsync — the village's evidence uploads (see blobsync.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "client/blobstore.h"
#include "client/clock.h"
#include "client/db.h"
#include "daemon/blobsync.h"
#include "daemon/httpc.h"
#include "daemon/log.h"
#include "protocol/error.h"

#define PENDING_BATCH 64
#define RETRIES_DEFAULT 12
/* The largest chunk size a server may state (daemon/blobsrv.c CHUNK_MAX);
 * also the buffer of one request. */
#define CHUNK_LIMIT (4u << 20)
/* A run of chunks in one PUT: at most this many, and this many bytes
 * (daemon/blobsrv.c accepts 16 and 4 MiB). */
#define RUN_CHUNKS 16
#define RUN_BYTES (1u << 20)

/* What the server told us about one blob. */
struct state {
	int64_t size, chunk_size;
	uint32_t nchunks;
	int complete;
	unsigned char *have; /* owned */
};

struct run {
	struct db *db;
	struct httpc *http;
	const char *token;
	const struct blobsync_options *o;
	struct blobsync_report *r;
	unsigned fails;
	uint32_t run;        /* chunks per request now (send_chunks) */
	uint32_t ceiling;    /* ... and at most, lowered whenever the link broke under one */
	unsigned calm;       /* requests answered cleanly since */
	int64_t budget; /* 0: none */
	char day[CLOCK_DATE_LEN + 1];
};

static int stopping(const struct run *u)
{
	return u->o->stop && *u->o->stop;
}

static int transient(int err)
{
	return err == TLY_E_NETWORK || err == TLY_E_TIMEOUT || err == TLY_E_UNAVAILABLE ||
	       err == TLY_E_BLOB_HASH || err == TLY_E_RATE_LIMITED;
}

/* Refusals that will not change by retrying: the blob is marked refused. */
static int final_refusal(int err)
{
	return err == TLY_E_FORBIDDEN || err == TLY_E_BLOB_TOO_LARGE || err == TLY_E_BAD_VALUE ||
	       err == TLY_E_NOT_FOUND;
}

static int parse_state(const char *body, size_t n, const char *hex, struct state *st)
{
	json_error_t je;
	json_t *o = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);
	int err = TLY_E_BAD_VALUE;
	const char *h = json_string_value(json_object_get(o, "have"));
	const char *sha = json_string_value(json_object_get(o, "sha256"));
	json_t *jsz = json_object_get(o, "size"), *jcs = json_object_get(o, "chunk_size");
	json_t *jn = json_object_get(o, "chunks"), *jc = json_object_get(o, "complete");

	memset(st, 0, sizeof *st);
	if (!json_is_object(o) || !h || !sha || strcmp(sha, hex) != 0 || !json_is_integer(jsz) ||
	    !json_is_integer(jcs) || !json_is_integer(jn) || !json_is_boolean(jc))
		goto out;
	st->size = json_integer_value(jsz);
	st->chunk_size = json_integer_value(jcs);
	/* Every number a server sends is checked before it sizes anything. */
	if (st->size < 0 || st->chunk_size <= 0 || st->chunk_size > (int64_t)CHUNK_LIMIT ||
	    json_integer_value(jn) != (st->size + st->chunk_size - 1) / st->chunk_size ||
	    json_integer_value(jn) > (1 << 24))
		goto out;
	st->nchunks = (uint32_t)json_integer_value(jn);
	size_t nb = ((size_t)st->nchunks + 7) / 8;
	if (strlen(h) != 2 * nb)
		goto out;
	st->have = calloc(1, nb ? nb : 1);
	if (!st->have) {
		err = TLY_E_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < nb; i++) {
		unsigned v;
		if (sscanf(h + 2 * i, "%2x", &v) != 1)
			goto out;
		st->have[i] = (unsigned char)v;
	}
	st->complete = json_is_true(jc);
	err = TLY_OK;
out:
	if (err) {
		free(st->have);
		st->have = NULL;
	}
	json_decref(o);
	return err;
}

/* One request; the server's error code (if it sent one) is the result. */
static int send_req(struct run *u, const char *method, const char *path, const void *body,
		    size_t n, const char *ctype, struct httpc_response *res)
{
	struct httpc_request req = {0};
	req.method = method;
	req.path = path;
	req.token = u->token && u->token[0] ? u->token : NULL;
	req.body = body;
	req.body_len = n;
	int err = httpc_send_typed(u->http, &req, ctype, res);
	u->r->http_sent += res->bytes_sent;
	u->r->http_received += res->bytes_received;
	if (err == TLY_E_HTTP_STATUS && res->remote_code != TLY_OK) {
		err = res->remote_code;
		snprintf(u->r->detail, sizeof u->r->detail, "%s",
			 res->remote_message ? res->remote_message : error_text_zh(err));
	} else if (err) {
		snprintf(u->r->detail, sizeof u->r->detail, "%s", res->detail);
	}
	if (err)
		u->r->failures++;
	return err;
}

static int ask_state(struct run *u, const struct blobstore_pending *p, struct state *st)
{
	struct httpc_response res;
	char path[128], body[64];
	int n = snprintf(body, sizeof body, "{\"v\":1,\"size\":%lld}", (long long)p->size);
	if ((size_t)snprintf(path, sizeof path, "/v1/blob/%.64s", p->sha256) >= sizeof path)
		return TLY_E_INTERNAL;
	int err = send_req(u, "POST", path, body, (size_t)n, NULL, &res);
	if (!err)
		err = parse_state(res.body.data ? res.body.data : "", res.body.len, p->sha256, st);
	httpc_response_clear(&res);
	if (!err && st->size != p->size) {
		free(st->have);
		st->have = NULL;
		err = TLY_E_BAD_VALUE;
	}
	return err;
}

static int sha256_hex(const void *p, size_t n, char hex[BLOBSTORE_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32)
		return TLY_E_INTERNAL;
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return TLY_OK;
}

static int budget_left(struct run *u, int64_t want)
{
	int64_t sent = 0;
	if (u->budget <= 0)
		return 1;
	if (blobstore_sent_get(u->db, u->day, &sent) != TLY_OK)
		return 0;
	return sent + want <= u->budget;
}

/*
 * Sends the chunks the server lacks, in order, re-reading them from the
 * stored file (never from memory kept across requests, so a restart
 * loses nothing). Consecutive missing chunks go together, u->run of them
 * per request (each with its own hash): the run grows by one chunk after
 * every answered request up to RUN_BYTES and a ceiling. A request the link
 * broke under (it failed, or libcurl had to resend it on a new
 * connection) halves the ceiling and restarts the run at one chunk; 64
 * clean answers raise the ceiling by one. So a clean link pays one server
 * fsync per run of up to 1 MiB, while a link that drops every few hundred
 * KiB keeps requests small enough to fit whole between drops. Returns when the server says complete, or on an error.
 */
static int send_chunks(struct run *u, const struct blobstore_pending *p, int fd,
		       struct state *st, unsigned char *buf)
{
	char path[128 + RUN_CHUNKS * (BLOBSTORE_HEX_LEN + 1)], got[BLOBSTORE_HEX_LEN + 1];
	uint32_t cap = (uint32_t)(RUN_BYTES / st->chunk_size);
	int err = TLY_OK;

	cap = cap < 1 ? 1 : cap > RUN_CHUNKS ? RUN_CHUNKS : cap;
	for (uint32_t i = 0; i < st->nchunks && !st->complete;) {
		if (st->have[i / 8] & (1u << (i % 8))) {
			i++;
			continue;
		}
		if (stopping(u))
			return TLY_OK;
		/* The run: missing chunks from i on, contiguous, at most run. */
		uint32_t k = 0, want = u->run < cap ? u->run : cap;
		want = want < u->ceiling ? want : u->ceiling;
		while (k < want && i + k < st->nchunks &&
		       !(st->have[(i + k) / 8] & (1u << ((i + k) % 8))))
			k++;
		int64_t off = (int64_t)i * st->chunk_size;
		int64_t end = (int64_t)(i + k) * st->chunk_size;
		size_t len = (size_t)((end < st->size ? end : st->size) - off);
		if (!budget_left(u, (int64_t)len)) {
			if (k > 1) {
				u->run = 1; /* a smaller request may still fit today */
				continue;
			}
			u->r->deferred = 1;
			snprintf(u->r->detail, sizeof u->r->detail,
				 "今日上传已达本机设定的流量上限，剩下的文件明天继续上传");
			return TLY_OK;
		}
		ssize_t rd = pread(fd, buf, len, (off_t)off);
		if (rd != (ssize_t)len)
			return TLY_E_IO;
		int n = snprintf(path, sizeof path, "/v1/blob/%.64s/chunk/%u?sha256=", p->sha256, i);
		for (uint32_t j = 0; j < k; j++) {
			size_t co = (size_t)j * (size_t)st->chunk_size;
			size_t cl = len - co < (size_t)st->chunk_size ? len - co : (size_t)st->chunk_size;
			err = sha256_hex(buf + co, cl, got);
			if (err)
				return err;
			n += snprintf(path + n, sizeof path - (size_t)n, "%s%.64s", j ? "," : "", got);
		}
		struct httpc_response res;
		err = send_req(u, "PUT", path, buf, len, "application/octet-stream", &res);
		u->r->bytes += len;
		/* Counted as sent whatever the answer: the budget is about the link. */
		(void)blobstore_sent_add(u->db, u->day, (int64_t)len);
		if (!err) {
			struct state nst;
			err = parse_state(res.body.data ? res.body.data : "", res.body.len, p->sha256,
					  &nst);
			if (!err && (nst.nchunks != st->nchunks || nst.chunk_size != st->chunk_size)) {
				free(nst.have);
				err = TLY_E_BAD_VALUE;
			} else if (!err) {
				free(st->have);
				*st = nst;
				u->r->chunks += k;
				u->fails = 0;
				/* One chunk more per answer, not twice as many: a run
				 * that doubled could outgrow what is left of a
				 * connection by a whole run at once, and a run larger
				 * than a connection carries dies in libcurl's resend
				 * too (with 256 KiB cuts: 256 KiB lost twice at the
				 * start of every sync, which a loaded machine that
				 * restarts syncs often pays again and again). Growing
				 * by one, the first run that does not fit loses about
				 * what a lone chunk would, and fits whole on the
				 * fresh connection of the resend. */
				u->run = u->run + 1 > RUN_CHUNKS ? RUN_CHUNKS : u->run + 1;
				if (res.bytes_sent > len + len / 2) {
					/* Answered, but libcurl had to send it twice: the
					 * connection broke under it. Smaller requests. */
					u->ceiling = k / 2 ? k / 2 : 1;
					u->run = 1;
					u->calm = 0;
				} else if (u->ceiling < RUN_CHUNKS && ++u->calm % 64 == 0) {
					u->ceiling++; /* the link may have got better */
				}
			}
		}
		httpc_response_clear(&res);
		if (err) {
			/* The link broke under this request (libcurl's one resend
			 * did not fit either): half of it at most from now on. */
			u->ceiling = k / 2 ? k / 2 : 1;
			u->run = 1;
			u->calm = 0;
			return err;
		}
		i += k;
	}
	return TLY_OK;
}

/* One blob, to completion or to an error the caller sorts out. */
static int upload_one(struct run *u, const struct blobstore_pending *p, unsigned char *buf)
{
	char path[BLOBSTORE_PATH_MAX];
	struct state st = {0};
	int fd = -1;
	int err = blobstore_path(db_path(u->db), p->sha256, path, sizeof path);
	if (err)
		return err;
	while (!stopping(u) && !u->r->deferred) {
		err = ask_state(u, p, &st);
		if (!err && !st.complete) {
			if (fd < 0)
				fd = open(path, O_RDONLY);
			if (fd < 0) {
				err = TLY_E_IO;
				break;
			}
			err = send_chunks(u, p, fd, &st, buf);
		}
		if (!err && st.complete) {
			err = blobstore_mark(u->db, p->sha256, "done", NULL, NULL);
			if (!err) {
				u->r->uploaded++;
				log_event(LOG_LEVEL_INFO, "blob_uploaded", "blob=%.16s size=%lld",
					  p->sha256, (long long)p->size);
			}
			break;
		}
		free(st.have);
		st.have = NULL;
		if (!err)
			continue; /* stopped or deferred inside send_chunks: loop test ends it */
		if (transient(err) && ++u->fails <= u->o->max_retries) {
			log_event(LOG_LEVEL_DEBUG, "blob_retry", "blob=%.16s code=%s fails=%u",
				  p->sha256, error_name(err), u->fails);
			continue;
		}
		break;
	}
	free(st.have);
	if (fd >= 0)
		close(fd);
	return err;
}

int blobsync_run(struct db *db, struct httpc *http, const char *token,
		 const struct blobsync_options *o, struct blobsync_report *r)
{
	struct blobstore_pending list[PENDING_BATCH];
	struct blobsync_options def = {0};
	struct run u = {0};
	unsigned char *buf = NULL;
	size_t n;
	int err = TLY_OK;

	memset(r, 0, sizeof *r);
	if (!o)
		o = &def;
	if (!o->max_retries) {
		def = *o;
		def.max_retries = RETRIES_DEFAULT;
		o = &def;
	}
	u.db = db;
	u.http = http;
	u.token = token;
	u.o = o;
	u.r = r;
	u.run = 1;
	u.ceiling = RUN_CHUNKS;
	u.budget = db_setting_int(db, BLOBSYNC_BUDGET_SETTING, 0);
	clock_ms_date(clock_device_ms(), u.day);
	buf = malloc(CHUNK_LIMIT);
	if (!buf)
		return TLY_E_NOMEM;
	for (;;) {
		size_t done_before = (size_t)(r->uploaded + r->refused);
		err = blobstore_pending(db, list, PENDING_BATCH, &n);
		if (err || n == 0)
			break;
		for (size_t i = 0; i < n && !err && !stopping(&u) && !r->deferred; i++) {
			err = upload_one(&u, &list[i], buf);
			if (err == TLY_E_BLOB_QUOTA) {
				r->deferred = 1;
				err = TLY_OK;
			} else if (err && final_refusal(err)) {
				log_event(LOG_LEVEL_WARN, "blob_refused", "blob=%.16s code=%s detail=%s",
					  list[i].sha256, error_name(err), r->detail);
				err = blobstore_mark(db, list[i].sha256, "refused", error_name(err),
						     r->detail);
				r->refused++;
			} else if (err == TLY_E_IO) {
				/* The stored file went missing since the list was made: it
				 * is no longer pending (blobstore_pending skips it). */
				err = TLY_OK;
			}
		}
		if (err || stopping(&u) || r->deferred ||
		    (size_t)(r->uploaded + r->refused) == done_before)
			break;
	}
	int64_t bytes;
	(void)blobstore_pending_stats(db, &r->pending, &bytes);
	free(buf);
	return err;
}
