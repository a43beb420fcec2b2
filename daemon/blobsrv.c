/*
 * blobsrv — evidence-file endpoints of `tallyd serve` (see blobsrv.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "client/blobstore.h"
#include "client/clock.h"
#include "daemon/blobsrv.h"
#include "daemon/httpd.h"
#include "daemon/log.h"
#include "daemon/syncsrv.h"
#include "protocol/error.h"

#define PREFIX "/v1/blob/"
#define PREFIX_LEN (sizeof PREFIX - 1)
#define CHUNK_MIN 4096
#define CHUNK_MAX (4u << 20)
/* Chunks one PUT may carry (a run of consecutive ones); body <= RUN_BYTES_MAX. */
#define RUN_MAX 16
#define RUN_BYTES_MAX CHUNK_MAX

struct blobsrv {
	struct syncsrv *ss;
	struct blobsrv_options o;
	char db_path[BLOBSTORE_PATH_MAX];
};

#define OPT(n, t, f, lo, hi, d, h) {n, t, offsetof(struct blobsrv_options, f), lo, hi, d, NULL, h}
const struct config_option blobsrv_config_options[] = {
	OPT("blob_max_file", CONFIG_SIZE, max_file_bytes, 1024, 1ull << 31, "64mb",
	    "largest evidence file accepted (blob_too_large)"),
	OPT("blob_chunk", CONFIG_SIZE, chunk_bytes, CHUNK_MIN, CHUNK_MAX, "64kb",
	    "chunk size of new uploads; a link that drops every few hundred KiB needs several per connection"),
	OPT("blob_daily", CONFIG_SIZE, daily_bytes, 1024, 1ull << 40, "1gb",
	    "evidence bytes accepted per village per day (blob_quota)"),
};
#undef OPT
const size_t blobsrv_config_options_count =
	sizeof blobsrv_config_options / sizeof blobsrv_config_options[0];

void blobsrv_options_default(struct blobsrv_options *o)
{
	o->max_file_bytes = (size_t)BLOBSTORE_MAX_FILE_DEFAULT;
	o->chunk_bytes = 64u << 10;
	o->daily_bytes = (size_t)1 << 30;
}

int blobsrv_new(struct syncsrv *ss, const char *db_path, const struct blobsrv_options *o,
		struct blobsrv **out)
{
	struct blobsrv *b;
	*out = NULL;
	if (o->chunk_bytes < CHUNK_MIN || o->chunk_bytes > CHUNK_MAX || !o->max_file_bytes)
		return TLY_E_CONFIG;
	b = calloc(1, sizeof *b);
	if (!b)
		return TLY_E_NOMEM;
	if ((size_t)snprintf(b->db_path, sizeof b->db_path, "%s", db_path) >= sizeof b->db_path) {
		free(b);
		return TLY_E_FIELD_TOO_LONG;
	}
	b->ss = ss;
	b->o = *o;
	*out = b;
	return TLY_OK;
}

void blobsrv_free(struct blobsrv *b)
{
	free(b);
}

/* ---- paths ---- */

/* "/v1/blob/HASH" or "/v1/blob/HASH/chunk/I": 0 when it is neither. */
static int parse_path(const char *path, char hex[BLOBSTORE_HEX_LEN + 1], int64_t *chunk)
{
	*chunk = -1;
	if (strncmp(path, PREFIX, PREFIX_LEN) != 0)
		return 0;
	path += PREFIX_LEN;
	if (strlen(path) < BLOBSTORE_HEX_LEN)
		return 0;
	memcpy(hex, path, BLOBSTORE_HEX_LEN);
	hex[BLOBSTORE_HEX_LEN] = '\0';
	if (!blobstore_hex_ok(hex))
		return 0;
	path += BLOBSTORE_HEX_LEN;
	if (*path == '\0')
		return 1;
	if (strncmp(path, "/chunk/", 7) != 0)
		return 0;
	path += 7;
	/* Strict decimal, no sign, no leading zeros, bounded. */
	if (!*path || strlen(path) > 9 || (path[0] == '0' && path[1]))
		return 0;
	int64_t v = 0;
	for (; *path; path++) {
		if (*path < '0' || *path > '9')
			return 0;
		v = v * 10 + (*path - '0');
	}
	*chunk = v;
	return 1;
}

static void partial_path(const struct blobsrv *b, const char *hex, char *out, size_t n)
{
	char dir[BLOBSTORE_PATH_MAX];
	blobstore_dir(b->db_path, dir, sizeof dir);
	if ((size_t)snprintf(out, n, "%s/partial/%s", dir, hex) >= n)
		out[0] = '\0';
}

static int ensure_partial_dir(const struct blobsrv *b)
{
	char dir[BLOBSTORE_PATH_MAX], sub[BLOBSTORE_PATH_MAX + 16];
	blobstore_dir(b->db_path, dir, sizeof dir);
	snprintf(sub, sizeof sub, "%s/partial", dir);
	if ((mkdir(dir, 0700) != 0 && errno != EEXIST) || (mkdir(sub, 0700) != 0 && errno != EEXIST))
		return TLY_E_IO;
	return TLY_OK;
}

/* ---- answers ---- */

static void today(char out[CLOCK_DATE_LEN + 1])
{
	clock_ms_date(clock_device_ms(), out);
}

static int64_t quota_left(struct blobsrv *b, const struct syncsrv_principal *p)
{
	char day[CLOCK_DATE_LEN + 1];
	int64_t used = 0;
	if (p->kind != 'd')
		return (int64_t)b->o.daily_bytes;
	today(day);
	if (blobstore_usage_get(syncsrv_db(b->ss), p->village, day, &used) != TLY_OK)
		return 0;
	return used >= (int64_t)b->o.daily_bytes ? 0 : (int64_t)b->o.daily_bytes - used;
}

static int reply_state(struct blobsrv *b, struct httpd_req *r, const struct syncsrv_principal *p,
		       const struct blobstore_upload *u)
{
	size_t nb = ((size_t)u->nchunks + 7) / 8;
	char *have = malloc(2 * nb + 1);
	int err;
	if (!have)
		return TLY_E_NOMEM;
	for (size_t i = 0; i < nb; i++)
		snprintf(have + 2 * i, 3, "%02x", u->have[i]);
	have[2 * nb] = '\0';
	json_t *o = json_pack("{s:i, s:s, s:I, s:I, s:I, s:s, s:b, s:I}", "v", 1, "sha256",
			      u->sha256, "size", (json_int_t)u->size, "chunk_size",
			      (json_int_t)u->chunk_size, "chunks", (json_int_t)u->nchunks, "have",
			      have, "complete", u->complete, "quota_left",
			      (json_int_t)quota_left(b, p));
	free(have);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!s)
		return TLY_E_NOMEM;
	err = httpd_reply_json(r, 200, s, strlen(s));
	free(s);
	return err;
}

/* Who may touch hex: a township user always; a device only for evidence
 * of its own village's tasks (size -1: any size). */
static int allowed(struct blobsrv *b, const struct syncsrv_principal *p, const char *hex,
		   int64_t size, int *ok)
{
	*ok = 0;
	if (p->kind == 'u') {
		*ok = 1;
		return TLY_OK;
	}
	return blobstore_referenced(syncsrv_db(b->ss), hex, p->village, size, ok);
}

static void note(const struct syncsrv_principal *p, const char *event, const char *hex, int err)
{
	log_event(LOG_LEVEL_WARN, event, "who=%c:%s village=%s blob=%.16s code=%s", p->kind, p->id,
		  p->village, hex, error_name(err));
}

/*
 * All chunks present: check the whole file and move it into the store.
 * Order matters for a crash at any point: the store name appears only
 * after the hash matched and the bytes are fsynced (blobstore_install);
 * the row says complete only after that; a restart finding every bit set
 * and the partial gone but the stored file present finishes the job here.
 */
static int finish(struct blobsrv *b, struct blobstore_upload *u, int *mismatch)
{
	char part[BLOBSTORE_PATH_MAX], got[BLOBSTORE_HEX_LEN + 1];
	int64_t size = 0;
	struct db *db = syncsrv_db(b->ss);
	int err;

	*mismatch = 0;
	partial_path(b, u->sha256, part, sizeof part);
	if (access(part, F_OK) != 0 && blobstore_has(b->db_path, u->sha256, NULL)) {
		char path[BLOBSTORE_PATH_MAX];
		err = blobstore_path(b->db_path, u->sha256, path, sizeof path);
		if (!err)
			err = blobstore_hash_file(path, got, &size, NULL);
		if (!err && strcmp(got, u->sha256) == 0)
			goto done;
	}
	err = blobstore_hash_file(part, got, &size, NULL);
	if (err == TLY_OK && (strcmp(got, u->sha256) != 0 || size != u->size)) {
		/* A truncated or forged upload is never accepted: start over. */
		*mismatch = 1;
		log_event(LOG_LEVEL_WARN, "blob_hash_mismatch", "blob=%s size=%lld got=%.16s",
			  u->sha256, (long long)size, got);
		(void)unlink(part);
		err = blobstore_upload_reset(db, u->sha256);
		memset(u->have, 0, ((size_t)u->nchunks + 7) / 8);
		return err ? err : TLY_E_BLOB_HASH;
	}
	if (err == TLY_E_IO) {
		/* Bits say present, the file is gone (disk replaced?): re-upload. */
		err = blobstore_upload_reset(db, u->sha256);
		memset(u->have, 0, ((size_t)u->nchunks + 7) / 8);
		return err;
	}
	if (err)
		return err;
	err = blobstore_install(b->db_path, part, u->sha256);
	if (err)
		return err;
done:
	err = blobstore_upload_done(db, u->sha256, clock_device_ms());
	if (!err) {
		u->complete = 1;
		log_event(LOG_LEVEL_INFO, "blob_received", "blob=%s size=%lld", u->sha256,
			  (long long)u->size);
	}
	return err;
}

static int all_present(const struct blobstore_upload *u)
{
	for (uint32_t i = 0; i < u->nchunks; i++) {
		if (!(u->have[i / 8] & (1u << (i % 8))))
			return 0;
	}
	return 1;
}

/* POST /v1/blob/HASH {"v":1,"size":N}: creates the upload if needed and
 * answers its state. */
static int h_post(struct httpd_req *r, void *arg)
{
	struct blobsrv *b = arg;
	const struct syncsrv_principal *p = httpd_req_principal(r);
	struct db *db = syncsrv_db(b->ss);
	struct blobstore_upload u = {0};
	char hex[BLOBSTORE_HEX_LEN + 1];
	int64_t chunk, size;
	size_t n;
	json_error_t je;
	json_t *body = NULL;
	int ok = 0, err, mismatch;
	const char *raw = httpd_req_body(r, &n);

	if (!parse_path(httpd_req_path(r), hex, &chunk) || chunk >= 0)
		return httpd_reply_error(r, 404, TLY_E_NOT_FOUND, NULL);
	body = json_loadb(raw, n, JSON_REJECT_DUPLICATES, &je);
	json_t *jv = json_object_get(body, "v"), *js = json_object_get(body, "size");
	if (!json_is_object(body) || json_object_size(body) != 2 || !json_is_integer(jv) ||
	    json_integer_value(jv) != 1 || !json_is_integer(js) || json_integer_value(js) < 0) {
		err = httpd_reply_error(r, 400, TLY_E_BAD_VALUE, "请求应为 {\"v\":1,\"size\":文件字节数}");
		goto out;
	}
	size = json_integer_value(js);
	if (size > (int64_t)b->o.max_file_bytes) {
		char msg[160];
		snprintf(msg, sizeof msg, "单个文件超过上限：%lld 字节，上限 %zu 字节", (long long)size,
			 b->o.max_file_bytes);
		note(p, "blob_refused", hex, TLY_E_BLOB_TOO_LARGE);
		err = httpd_reply_error(r, 413, TLY_E_BLOB_TOO_LARGE, msg);
		goto out;
	}
	err = allowed(b, p, hex, size, &ok);
	if (err)
		goto out;
	if (!ok) {
		note(p, "blob_refused", hex, TLY_E_FORBIDDEN);
		err = httpd_reply_error(r, 403, TLY_E_FORBIDDEN,
					"这个文件不是本村任务的佐证材料（或大小与记录不符），不能上传");
		goto out;
	}
	err = blobstore_upload_get(db, hex, &u);
	if (err == TLY_E_NOT_FOUND) {
		if (p->kind != 'd') {
			err = httpd_reply_error(r, 404, TLY_E_NOT_FOUND, "这个文件还没有开始上传");
			goto out;
		}
		err = blobstore_upload_create(db, hex, size, (int64_t)b->o.chunk_bytes,
					      clock_device_ms());
		if (!err)
			err = blobstore_upload_get(db, hex, &u);
	}
	if (err)
		goto out;
	if (u.size != size) {
		err = httpd_reply_error(r, 409, TLY_E_BAD_VALUE,
					"同一校验值的文件已按另一个大小在上传，两条记录必有一条不对");
		goto out;
	}
	/* Everything here already (the same file from another village, or a
	 * restart between rename and commit): finish without a byte sent. */
	if (!u.complete && (all_present(&u) || blobstore_has(b->db_path, hex, NULL))) {
		if (blobstore_has(b->db_path, hex, NULL))
			memset(u.have, 0xff, ((size_t)u.nchunks + 7) / 8);
		err = finish(b, &u, &mismatch);
		if (err == TLY_E_BLOB_HASH)
			err = TLY_OK; /* cleared: the state answered says start over */
		if (err)
			goto out;
	}
	if (u.complete)
		memset(u.have, 0xff, ((size_t)u.nchunks + 7) / 8);
	err = reply_state(b, r, p, &u);
out:
	json_decref(body);
	blobstore_upload_free(&u);
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

/* Writes the chunk at its offset and makes it durable before returning:
 * its bit is committed only after this (the order resumption rests on). */
static int write_chunk(struct blobsrv *b, const struct blobstore_upload *u, int64_t idx,
		       const char *data, size_t n)
{
	char part[BLOBSTORE_PATH_MAX];
	int err = ensure_partial_dir(b);
	if (err)
		return err;
	partial_path(b, u->sha256, part, sizeof part);
	int fd = open(part, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd >= 0) {
		/* A new partial file: its name must be durable before any bit
		 * that points into it is committed. */
		char dir[BLOBSTORE_PATH_MAX + 16];
		blobstore_dir(b->db_path, dir, sizeof dir);
		strncat(dir, "/partial", sizeof dir - strlen(dir) - 1);
		if (blobstore_sync_dir(dir) != TLY_OK) {
			close(fd);
			return TLY_E_IO;
		}
	} else if (errno == EEXIST) {
		fd = open(part, O_WRONLY);
	}
	if (fd < 0)
		return TLY_E_IO;
	off_t off = (off_t)(idx * u->chunk_size);
	size_t done = 0;
	while (done < n) {
		ssize_t w = pwrite(fd, data + done, n - done, off + (off_t)done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			err = TLY_E_IO;
			goto out;
		}
		done += (size_t)w;
	}
	if (fdatasync(fd) != 0)
		err = TLY_E_IO;
out:
	close(fd);
	return err;
}

/* PUT /v1/blob/HASH/chunk/I */
static int h_put(struct httpd_req *r, void *arg)
{
	struct blobsrv *b = arg;
	const struct syncsrv_principal *p = httpd_req_principal(r);
	struct db *db = syncsrv_db(b->ss);
	struct blobstore_upload u = {0};
	char hex[BLOBSTORE_HEX_LEN + 1], got[BLOBSTORE_HEX_LEN + 1], day[CLOCK_DATE_LEN + 1];
	int64_t idx;
	size_t n;
	int ok = 0, err, mismatch = 0;
	const char *data = httpd_req_body(r, &n);
	const char *q = httpd_req_query(r);
	const char *claim = strncmp(q, "sha256=", 7) == 0 ? q + 7 : NULL;
	size_t k = 0; /* chunks in this request: one hash each, comma-separated */

	if (!parse_path(httpd_req_path(r), hex, &idx) || idx < 0)
		return httpd_reply_error(r, 404, TLY_E_NOT_FOUND, NULL);
	if (p->kind != 'd')
		return httpd_reply_error(r, 403, TLY_E_FORBIDDEN, "只有村里的设备上传佐证材料");
	for (const char *c = claim; c && k <= RUN_MAX; k++) {
		char one[BLOBSTORE_HEX_LEN + 1];
		snprintf(one, sizeof one, "%.64s", c);
		if (!blobstore_hex_ok(one) || (c[64] != '\0' && c[64] != ',')) {
			k = 0;
			break;
		}
		c = c[64] == ',' ? c + 65 : NULL;
	}
	if (k == 0 || k > RUN_MAX)
		return httpd_reply_error(r, 400, TLY_E_MISSING_FIELD,
					 "分块缺少校验值：?sha256=每块 64 位小写十六进制，逗号分隔，最多 16 块");
	err = blobstore_upload_get(db, hex, &u);
	if (err == TLY_E_NOT_FOUND) {
		err = httpd_reply_error(r, 404, TLY_E_NOT_FOUND, "请先用 POST 查询上传状态再上传分块");
		goto out;
	}
	if (err)
		goto out;
	/* Checked again on every chunk: the upload may have been started by
	 * another village holding the same file. */
	err = allowed(b, p, hex, u.size, &ok);
	if (err)
		goto out;
	if (!ok) {
		note(p, "blob_refused", hex, TLY_E_FORBIDDEN);
		err = httpd_reply_error(r, 403, TLY_E_FORBIDDEN, "这个文件不是本村任务的佐证材料，不能上传");
		goto out;
	}
	if (u.complete) {
		memset(u.have, 0xff, ((size_t)u.nchunks + 7) / 8);
		err = reply_state(b, r, p, &u);
		goto out;
	}
	if (idx + (int64_t)k > (int64_t)u.nchunks) {
		err = httpd_reply_error(r, 400, TLY_E_BAD_VALUE, "分块序号超出文件范围");
		goto out;
	}
	/* Chunks idx..idx+k-1 are contiguous in the file: the body is exactly
	 * their bytes, each checked against its own hash before anything is
	 * written. */
	int64_t end = (idx + (int64_t)k) * u.chunk_size < u.size ? (idx + (int64_t)k) * u.chunk_size
								  : u.size;
	int64_t want = end - idx * u.chunk_size, fresh = 0;
	if ((int64_t)n != want) {
		char msg[120];
		snprintf(msg, sizeof msg, "第 %lld 块起的 %zu 块应为 %lld 字节，收到 %zu 字节",
			 (long long)idx, k, (long long)want, n);
		err = httpd_reply_error(r, 400, TLY_E_BAD_VALUE, msg);
		goto out;
	}
	for (size_t j = 0; j < k; j++) {
		int64_t i = idx + (int64_t)j, off = (int64_t)j * u.chunk_size;
		int64_t len = n - (size_t)off < (size_t)u.chunk_size ? (int64_t)n - off : u.chunk_size;
		err = sha256_hex(data + off, (size_t)len, got);
		if (err)
			goto out;
		if (strncmp(got, claim + 65 * j, BLOBSTORE_HEX_LEN) != 0) {
			note(p, "blob_chunk_refused", hex, TLY_E_BLOB_HASH);
			err = httpd_reply_error(r, 422, TLY_E_BLOB_HASH,
						"分块内容与其校验值不符，未写入，请重传");
			goto out;
		}
		if (!(u.have[i / 8] & (1u << (i % 8))))
			fresh += len;
	}
	if (fresh == 0) {
		err = reply_state(b, r, p, &u); /* a retry of chunks we have: idempotent */
		goto out;
	}
	if (quota_left(b, p) < fresh) {
		note(p, "blob_refused", hex, TLY_E_BLOB_QUOTA);
		err = httpd_reply_error(r, 429, TLY_E_BLOB_QUOTA, NULL);
		goto out;
	}
	/* Chunks held already are rewritten with the same verified bytes:
	 * harmless, and one contiguous write needs one fdatasync. */
	err = write_chunk(b, &u, idx, data, n);
	if (err)
		goto out;
	for (size_t j = 0; j < k; j++) {
		int64_t i = idx + (int64_t)j;
		u.have[i / 8] |= (unsigned char)(1u << (i % 8));
	}
	today(day);
	err = blobstore_upload_save(db, &u, p->village, day, fresh);
	if (err)
		goto out;
	if (all_present(&u)) {
		err = finish(b, &u, &mismatch);
		if (err == TLY_E_BLOB_HASH) {
			err = httpd_reply_error(r, 422, TLY_E_BLOB_HASH,
						"整个文件与校验值不符，未被接收，已清空重来");
			goto out;
		}
		if (err)
			goto out;
	}
	if (u.complete)
		memset(u.have, 0xff, ((size_t)u.nchunks + 7) / 8);
	err = reply_state(b, r, p, &u);
out:
	blobstore_upload_free(&u);
	return err;
}

/* GET /v1/blob/HASH: the file, only from the store, only once complete. */
static int h_get(struct httpd_req *r, void *arg)
{
	struct blobsrv *b = arg;
	const struct syncsrv_principal *p = httpd_req_principal(r);
	struct blobstore_upload u = {0};
	char hex[BLOBSTORE_HEX_LEN + 1], path[BLOBSTORE_PATH_MAX];
	char *data = NULL;
	int64_t idx, size = 0;
	int ok = 0, err;
	FILE *f = NULL;

	if (!parse_path(httpd_req_path(r), hex, &idx) || idx >= 0)
		return httpd_reply_error(r, 404, TLY_E_NOT_FOUND, NULL);
	err = allowed(b, p, hex, -1, &ok);
	if (err)
		return err;
	if (!ok) {
		note(p, "blob_read_refused", hex, TLY_E_FORBIDDEN);
		return httpd_reply_error(r, 403, TLY_E_FORBIDDEN, "只能查看本村任务的佐证材料");
	}
	err = blobstore_upload_get(syncsrv_db(b->ss), hex, &u);
	int complete = err == TLY_OK && u.complete;
	blobstore_upload_free(&u);
	if (err && err != TLY_E_NOT_FOUND)
		return err;
	/* A file the township attached itself is in the store with no upload row. */
	if ((!complete && err != TLY_E_NOT_FOUND) || !blobstore_has(b->db_path, hex, &size))
		return httpd_reply_error(r, 404, TLY_E_NOT_FOUND, "这个文件还没有上传完成");
	if (size > (int64_t)b->o.max_file_bytes)
		return httpd_reply_error(r, 413, TLY_E_BLOB_TOO_LARGE, NULL);
	err = blobstore_path(b->db_path, hex, path, sizeof path);
	if (err)
		return err;
	f = fopen(path, "rb");
	data = malloc(size ? (size_t)size : 1);
	if (!f || !data) {
		err = f ? TLY_E_NOMEM : TLY_E_IO;
		goto out;
	}
	if (size && fread(data, 1, (size_t)size, f) != (size_t)size) {
		err = TLY_E_IO;
		goto out;
	}
	err = httpd_add_header(r, "X-Tally-Sha256", hex);
	if (!err)
		err = httpd_reply(r, 200, "application/octet-stream", data, (size_t)size);
out:
	if (f)
		fclose(f);
	free(data);
	return err;
}

/*
 * PUT /v1/test/raw — the benchmark's baseline only (bench/bench_evidence.py),
 * inert unless TALLY_TEST_RAW_UPLOAD=1 when the server starts: one body,
 * hashed, written to a temp file in the store directory and fsynced, then
 * removed. The same disk work as a chunked upload without its bookkeeping,
 * so `curl --data-binary` against it is the plain upload to compare with.
 */
static int h_raw(struct httpd_req *r, void *arg)
{
	struct blobsrv *b = arg;
	char dir[BLOBSTORE_PATH_MAX], tmp[BLOBSTORE_PATH_MAX + 32], hex[BLOBSTORE_HEX_LEN + 1];
	char answer[128];
	size_t n;
	const char *data = httpd_req_body(r, &n);
	int err = sha256_hex(data, n, hex);
	if (err)
		return err;
	blobstore_dir(b->db_path, dir, sizeof dir);
	(void)mkdir(dir, 0700);
	snprintf(tmp, sizeof tmp, "%s/raw.XXXXXX", dir);
	int fd = mkstemp(tmp);
	if (fd < 0)
		return TLY_E_IO;
	for (size_t off = 0; off < n && !err;) {
		ssize_t w = write(fd, data + off, n - off);
		if (w <= 0)
			err = TLY_E_IO;
		else
			off += (size_t)w;
	}
	if (!err && fsync(fd) != 0)
		err = TLY_E_IO;
	close(fd);
	unlink(tmp);
	if (err)
		return err;
	int len = snprintf(answer, sizeof answer, "{\"sha256\":\"%s\",\"size\":%zu}", hex, n);
	return httpd_reply_json(r, 200, answer, (size_t)len);
}

int blobsrv_add_routes(struct blobsrv *b, struct httpd *h)
{
	const char *raw = getenv("TALLY_TEST_RAW_UPLOAD");
	if (raw && strcmp(raw, "1") == 0) {
		const struct httpd_route rr = {"PUT", "/v1/test/raw", 0, 0, 0, h_raw, b};
		log_event(LOG_LEVEL_WARN, "test_hook_active", "raw_upload=1");
		int err = httpd_add_route(h, &rr);
		if (err)
			return err;
	}
	const struct httpd_route routes[] = {
		{"POST", PREFIX, 1, HTTPD_JSON, 1024, h_post, b},
		{"PUT", PREFIX, 1, 0, RUN_BYTES_MAX, h_put, b},
		{"GET", PREFIX, 1, 0, 0, h_get, b},
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		int err = httpd_add_route(h, &routes[i]);
		if (err)
			return err;
	}
	return TLY_OK;
}

int blobsrv_is_chunk(const struct httpd_req *r)
{
	return strcmp(httpd_req_method(r), "PUT") == 0 &&
	       strncmp(httpd_req_path(r), PREFIX, PREFIX_LEN) == 0;
}

int blobsrv_admit(struct blobsrv *b, struct httpd_req *r, const struct syncsrv_principal *p)
{
	const char *cl = httpd_req_header(r, "Content-Length");
	unsigned long long len = cl ? strtoull(cl, NULL, 10) : 0;
	/* An upload's chunk size is fixed at its start and may differ from
	 * today's setting, so the cap here is the largest body ever allowed
	 * (a run of chunks, or one largest chunk); the handler checks the
	 * exact length. */
	if (len > RUN_BYTES_MAX) {
		httpd_reply_error(r, 413, TLY_E_TOO_LARGE, "分块超过上限");
		return TLY_E_TOO_LARGE;
	}
	if (p->kind == 'd' && quota_left(b, p) < (int64_t)len) {
		note(p, "blob_refused", "-", TLY_E_BLOB_QUOTA);
		httpd_reply_error(r, 429, TLY_E_BLOB_QUOTA, NULL);
		return TLY_E_BLOB_QUOTA;
	}
	return TLY_OK;
}
