/*
 * blobstore — the content-addressed store of evidence files (see blobstore.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "client/blobstore.h"
#include "client/clock.h"
#include "client/why.h"
#include "protocol/error.h"

#define IO_CHUNK 65536

void blobstore_dir(const char *db_path, char *out, size_t n)
{
	snprintf(out, n, "%s.blobs", db_path);
}

int blobstore_hex_ok(const char *s)
{
	size_t i;
	for (i = 0; s && s[i]; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return s && i == BLOBSTORE_HEX_LEN;
}

int blobstore_path(const char *db_path, const char *hex, char *out, size_t n)
{
	if (!blobstore_hex_ok(hex))
		return TLY_E_BAD_VALUE;
	if ((size_t)snprintf(out, n, "%s.blobs/%.2s/%s", db_path, hex, hex + 2) >= n)
		return TLY_E_FIELD_TOO_LONG;
	return TLY_OK;
}

const char *blobstore_type_of(const char *name, const unsigned char *h, size_t n)
{
	static const struct {
		const char *ext, *type;
	} exts[] = {
		{"jpg", "image/jpeg"},       {"jpeg", "image/jpeg"}, {"png", "image/png"},
		{"gif", "image/gif"},        {"webp", "image/webp"}, {"heic", "image/heic"},
		{"pdf", "application/pdf"},  {"txt", "text/plain"},  {"mp4", "video/mp4"},
		{"doc", "application/msword"},
		{"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
		{"xls", "application/vnd.ms-excel"},
		{"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
		{"wps", "application/vnd.ms-works"}, {"ofd", "application/ofd"},
		{"zip", "application/zip"},
	};
	/* Magic first: a photo renamed .txt is still a photo. */
	if (n >= 3 && h[0] == 0xff && h[1] == 0xd8 && h[2] == 0xff)
		return "image/jpeg";
	if (n >= 8 && memcmp(h, "\x89PNG\r\n\x1a\n", 8) == 0)
		return "image/png";
	if (n >= 6 && (memcmp(h, "GIF87a", 6) == 0 || memcmp(h, "GIF89a", 6) == 0))
		return "image/gif";
	if (n >= 5 && memcmp(h, "%PDF-", 5) == 0)
		return "application/pdf";
	if (n >= 12 && memcmp(h, "RIFF", 4) == 0 && memcmp(h + 8, "WEBP", 4) == 0)
		return "image/webp";
	const char *dot = name ? strrchr(name, '.') : NULL;
	if (dot && !strchr(dot, '/')) {
		for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
			if (strcasecmp(dot + 1, exts[i].ext) == 0)
				return exts[i].type;
		}
	}
	return "application/octet-stream";
}

static void to_hex(const unsigned char *md, char *hex)
{
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

int blobstore_hash_file(const char *path, char hex[BLOBSTORE_HEX_LEN + 1], int64_t *size,
			struct buf *why)
{
	unsigned char *chunk = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = NULL;
	int err = TLY_OK;
	size_t n;
	FILE *f = fopen(path, "rb");

	if (!f) {
		why_set(why, "无法读取文件 %s：%s", path, strerror(errno));
		return TLY_E_IO;
	}
	chunk = malloc(IO_CHUNK);
	ctx = EVP_MD_CTX_new();
	if (!chunk || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		err = TLY_E_NOMEM;
		goto out;
	}
	*size = 0;
	while ((n = fread(chunk, 1, IO_CHUNK, f)) > 0) {
		EVP_DigestUpdate(ctx, chunk, n);
		*size += (int64_t)n;
	}
	if (ferror(f)) {
		why_set(why, "读取文件 %s 出错", path);
		err = TLY_E_IO;
		goto out;
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	to_hex(md, hex);
out:
	EVP_MD_CTX_free(ctx);
	free(chunk);
	fclose(f);
	return err;
}

int blobstore_sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return TLY_E_IO;
	int rc = fsync(fd);
	close(fd);
	return rc == 0 ? TLY_OK : TLY_E_IO;
}

static int mkdir_p1(const char *path)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return TLY_OK;
	return TLY_E_IO;
}

int blobstore_install(const char *db_path, const char *tmp_path, const char *hex)
{
	char dir[BLOBSTORE_PATH_MAX], sub[BLOBSTORE_PATH_MAX], dest[BLOBSTORE_PATH_MAX];
	int err = blobstore_path(db_path, hex, dest, sizeof dest);
	if (err)
		return err;
	blobstore_dir(db_path, dir, sizeof dir);
	if ((size_t)snprintf(sub, sizeof sub, "%s/%.2s", dir, hex) >= sizeof sub)
		return TLY_E_FIELD_TOO_LONG;
	err = mkdir_p1(dir);
	if (!err)
		err = mkdir_p1(sub);
	if (err)
		return err;
	/* The content first, then the name: a rename that reached the disk
	 * before the bytes would leave a stored name with a hole in it. */
	int fd = open(tmp_path, O_RDONLY);
	if (fd < 0)
		return TLY_E_IO;
	int rc = fsync(fd);
	close(fd);
	if (rc != 0 || rename(tmp_path, dest) != 0)
		return TLY_E_IO;
	err = blobstore_sync_dir(sub);
	if (!err)
		err = blobstore_sync_dir(dir); /* the new "ab" directory itself */
	return err;
}

int blobstore_has(const char *db_path, const char *hex, int64_t *size)
{
	char path[BLOBSTORE_PATH_MAX];
	struct stat st;
	if (blobstore_path(db_path, hex, path, sizeof path) != TLY_OK)
		return 0;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return 0;
	if (size)
		*size = (int64_t)st.st_size;
	return 1;
}

int blobstore_put_file(struct db *db, const char *file, int64_t max_size,
		       struct blobstore_info *out, struct buf *why)
{
	char dir[BLOBSTORE_PATH_MAX], tmpdir[BLOBSTORE_PATH_MAX], tmp[BLOBSTORE_PATH_MAX];
	unsigned char *chunk = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = NULL;
	FILE *in = NULL;
	int fd = -1, err = TLY_OK, first = 1;
	size_t n;
	struct stat st;
	const char *name = strrchr(file, '/');

	memset(out, 0, sizeof *out);
	tmp[0] = '\0';
	name = name ? name + 1 : file;
	in = fopen(file, "rb");
	if (!in || fstat(fileno(in), &st) != 0 || !S_ISREG(st.st_mode)) {
		why_set(why, "无法读取佐证文件 %s：%s", file, in ? "不是普通文件" : strerror(errno));
		err = TLY_E_IO;
		goto out;
	}
	/* Refused on its declared size before a byte is copied. */
	if (max_size > 0 && (int64_t)st.st_size > max_size) {
		why_set(why, "单个文件超过上限：%s 有 %lld 字节，上限 %lld 字节", name,
			(long long)st.st_size, (long long)max_size);
		err = TLY_E_BLOB_TOO_LARGE;
		goto out;
	}
	blobstore_dir(db_path(db), dir, sizeof dir);
	if ((size_t)snprintf(tmpdir, sizeof tmpdir, "%s/tmp", dir) >= sizeof tmpdir ||
	    (size_t)snprintf(tmp, sizeof tmp, "%s/in.XXXXXX", tmpdir) >= sizeof tmp) {
		tmp[0] = '\0';
		err = TLY_E_FIELD_TOO_LONG;
		goto out;
	}
	if (mkdir_p1(dir) || mkdir_p1(tmpdir)) {
		tmp[0] = '\0';
		why_set(why, "无法建立佐证材料目录 %s：%s", tmpdir, strerror(errno));
		err = TLY_E_IO;
		goto out;
	}
	fd = mkstemp(tmp);
	chunk = malloc(IO_CHUNK);
	ctx = EVP_MD_CTX_new();
	if (fd < 0) {
		why_set(why, "无法写入佐证材料目录 %s：%s", tmpdir, strerror(errno));
		tmp[0] = '\0';
		err = TLY_E_IO;
		goto out;
	}
	if (!chunk || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		err = TLY_E_NOMEM;
		goto out;
	}
	while ((n = fread(chunk, 1, IO_CHUNK, in)) > 0) {
		if (first) {
			snprintf(out->type, sizeof out->type, "%s", blobstore_type_of(name, chunk, n));
			first = 0;
		}
		EVP_DigestUpdate(ctx, chunk, n);
		out->size += (int64_t)n;
		/* The file may grow while we copy: the cap holds for what we store. */
		if (max_size > 0 && out->size > max_size) {
			why_set(why, "单个文件超过上限：%s 超过 %lld 字节", name, (long long)max_size);
			err = TLY_E_BLOB_TOO_LARGE;
			goto out;
		}
		for (size_t off = 0; off < n;) {
			ssize_t w = write(fd, chunk + off, n - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				why_set(why, "写入佐证材料失败：%s", strerror(errno));
				err = TLY_E_IO;
				goto out;
			}
			off += (size_t)w;
		}
	}
	if (ferror(in)) {
		why_set(why, "读取佐证文件 %s 出错", file);
		err = TLY_E_IO;
		goto out;
	}
	if (first)
		snprintf(out->type, sizeof out->type, "%s", blobstore_type_of(name, NULL, 0));
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	to_hex(md, out->sha256);
	if (close(fd) != 0) {
		fd = -1;
		err = TLY_E_IO;
		goto out;
	}
	fd = -1;
	if (blobstore_has(db_path(db), out->sha256, NULL)) {
		unlink(tmp); /* stored once: the same content is already there */
		tmp[0] = '\0';
		goto out;
	}
	err = blobstore_install(db_path(db), tmp, out->sha256);
	if (err)
		why_set(why, "保存佐证材料失败：%s", strerror(errno));
	else
		tmp[0] = '\0';
out:
	if (fd >= 0)
		close(fd);
	if (err && tmp[0])
		unlink(tmp);
	if (in)
		fclose(in);
	EVP_MD_CTX_free(ctx);
	free(chunk);
	return err;
}

int blobstore_resolve(struct db *db, const char *prefix, char out[BLOBSTORE_HEX_LEN + 1],
		      struct buf *why)
{
	sqlite3_stmt *st;
	char lo[BLOBSTORE_HEX_LEN + 1], pat[BLOBSTORE_HEX_LEN + 2];
	size_t len = prefix ? strlen(prefix) : 0;
	int n = 0, rc, err;

	if (len < 4 || len > BLOBSTORE_HEX_LEN) {
		why_set(why, "文件校验值前缀应为 4 到 64 位十六进制数字");
		return TLY_E_BAD_VALUE;
	}
	for (size_t i = 0; i <= len; i++)
		lo[i] = (char)(prefix[i] >= 'A' && prefix[i] <= 'F' ? prefix[i] + 32 : prefix[i]);
	for (size_t i = 0; i < len; i++) {
		if (!((lo[i] >= '0' && lo[i] <= '9') || (lo[i] >= 'a' && lo[i] <= 'f'))) {
			why_set(why, "文件校验值只能含十六进制数字：%s", prefix);
			return TLY_E_BAD_VALUE;
		}
	}
	snprintf(pat, sizeof pat, "%s*", lo);
	err = db_stmt(db,
		      "SELECT DISTINCT sha256 FROM evidence WHERE sha256 GLOB ?1 "
		      "UNION SELECT sha256 FROM srv_blob WHERE sha256 GLOB ?1 LIMIT 2",
		      &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, pat, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *h = (const char *)sqlite3_column_text(st, 0);
		if (n++ == 0 && h)
			snprintf(out, BLOBSTORE_HEX_LEN + 1, "%s", h);
	}
	sqlite3_reset(st); /* a cached statement left mid-step would pin a read snapshot */
	if (rc != SQLITE_DONE)
		return db_err(db, rc);
	if (n == 0) {
		why_set(why, "没有校验值以 %s 开头的佐证材料", lo);
		return TLY_E_NOT_FOUND;
	}
	if (n > 1) {
		why_set(why, "校验值前缀 %s 对应多个文件，请多给几位", lo);
		return TLY_E_AMBIGUOUS;
	}
	return blobstore_hex_ok(out) ? TLY_OK : TLY_E_BAD_VALUE;
}

int blobstore_copy_out(struct db *db, const char *hex, const char *dest, struct buf *why)
{
	char src[BLOBSTORE_PATH_MAX], tmp[BLOBSTORE_PATH_MAX], got[BLOBSTORE_HEX_LEN + 1];
	unsigned char *chunk = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = NULL;
	FILE *in = NULL, *outf = NULL;
	int err = blobstore_path(db_path(db), hex, src, sizeof src);
	size_t n;

	tmp[0] = '\0';
	if (err)
		return err;
	in = fopen(src, "rb");
	if (!in) {
		why_set(why, "本机还没有这个佐证文件（%.12s…），可能仍在上传中", hex);
		return TLY_E_NOT_FOUND;
	}
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.part", dest) >= sizeof tmp) {
		tmp[0] = '\0';
		err = TLY_E_FIELD_TOO_LONG;
		goto out;
	}
	outf = fopen(tmp, "wb");
	chunk = malloc(IO_CHUNK);
	ctx = EVP_MD_CTX_new();
	if (!outf) {
		why_set(why, "无法写入 %s：%s", tmp, strerror(errno));
		tmp[0] = '\0';
		err = TLY_E_IO;
		goto out;
	}
	if (!chunk || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		err = TLY_E_NOMEM;
		goto out;
	}
	while ((n = fread(chunk, 1, IO_CHUNK, in)) > 0) {
		EVP_DigestUpdate(ctx, chunk, n);
		if (fwrite(chunk, 1, n, outf) != n) {
			why_set(why, "写入 %s 失败：%s", tmp, strerror(errno));
			err = TLY_E_IO;
			goto out;
		}
	}
	if (ferror(in)) {
		err = TLY_E_IO;
		goto out;
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	to_hex(md, got);
	/* Never hand out bytes that are not what the hash promises. */
	if (strcmp(got, hex) != 0) {
		why_set(why, "本机保存的佐证文件已损坏（校验值不符）：%s", hex);
		err = TLY_E_BLOB_HASH;
		goto out;
	}
	if (fflush(outf) != 0 || fsync(fileno(outf)) != 0) {
		err = TLY_E_IO;
		goto out;
	}
	if (fclose(outf) != 0) {
		outf = NULL;
		err = TLY_E_IO;
		goto out;
	}
	outf = NULL;
	if (rename(tmp, dest) != 0) {
		why_set(why, "无法写入 %s：%s", dest, strerror(errno));
		err = TLY_E_IO;
		goto out;
	}
	tmp[0] = '\0';
out:
	if (outf)
		fclose(outf);
	if (tmp[0])
		unlink(tmp);
	fclose(in);
	EVP_MD_CTX_free(ctx);
	free(chunk);
	return err;
}

int blobstore_verify(struct db *db, json_t *report)
{
	sqlite3_stmt *st;
	json_t *bad = json_array(), *problems = json_object_get(report, "problems");
	int64_t checked = 0, missing = 0;
	int rc, err;

	if (!bad)
		return TLY_E_NOMEM;
	/* Every hash this site knows of, from its records and (township) its
	 * finished uploads; what is not held here is counted, not an error:
	 * a village's blob may still be on its way. */
	err = db_stmt(db,
		      "SELECT sha256 FROM evidence WHERE sha256 IS NOT NULL "
		      "UNION SELECT sha256 FROM srv_blob WHERE state = 'complete'",
		      &st);
	if (err) {
		json_decref(bad);
		return err;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char hex[BLOBSTORE_HEX_LEN + 1], got[BLOBSTORE_HEX_LEN + 1], path[BLOBSTORE_PATH_MAX];
		int64_t size;
		const char *h = (const char *)sqlite3_column_text(st, 0);
		if (!h || !blobstore_hex_ok(h))
			continue;
		snprintf(hex, sizeof hex, "%s", h);
		if (!blobstore_has(db_path(db), hex, NULL)) {
			missing++;
			continue;
		}
		checked++;
		if (blobstore_path(db_path(db), hex, path, sizeof path) != TLY_OK ||
		    blobstore_hash_file(path, got, &size, NULL) != TLY_OK || strcmp(got, hex) != 0) {
			json_array_append_new(bad, json_string(hex));
			if (json_is_array(problems)) {
				char line[200];
				snprintf(line, sizeof line, "佐证文件 %.16s… 与校验值不符（已损坏或被改动）",
					 hex);
				json_array_append_new(problems, json_string(line));
			}
		}
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		json_decref(bad);
		return db_err(db, rc);
	}
	size_t nbad = json_array_size(bad);
	json_object_set_new(report, "blobs",
			    json_pack("{s:I, s:o, s:I}", "checked", (json_int_t)checked, "bad", bad,
				      "missing", (json_int_t)missing));
	return nbad ? TLY_E_VERIFY : TLY_OK;
}

/* ---- village: the upload queue ---- */

/* Own evidence, acknowledged by the server (its record is there, so the
 * server can check the upload against it), not yet done or refused. */
#define PENDING_SQL                                                                       \
	"SELECT e.sha256, max(e.size) AS sz FROM evidence e "                            \
	"JOIN change_log c ON c.kind = 'evidence' AND c.record_id = e.id "                \
	"WHERE c.site = (SELECT site_id FROM site) AND c.state = 'applied' "              \
	"AND c.seq <= (SELECT acked_seq FROM sync_state) "                                \
	"AND e.sha256 NOT IN (SELECT sha256 FROM blob_upload) GROUP BY e.sha256 "

int blobstore_pending(struct db *db, struct blobstore_pending *out, size_t max, size_t *n)
{
	sqlite3_stmt *st;
	int rc, err = db_stmt(db, PENDING_SQL "ORDER BY sz, e.sha256", &st);
	*n = 0;
	if (err)
		return err;
	while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *h = (const char *)sqlite3_column_text(st, 0);
		if (!h || !blobstore_hex_ok(h) || !blobstore_has(db_path(db), h, NULL))
			continue;
		snprintf(out[*n].sha256, sizeof out[*n].sha256, "%s", h);
		out[*n].size = sqlite3_column_int64(st, 1);
		(*n)++;
	}
	/* Stopped at max: release the statement, or its read snapshot would
	 * hide later writes from this connection (tallyd sync's outbox check). */
	sqlite3_reset(st);
	if (*n < max && rc != SQLITE_DONE)
		return db_err(db, rc);
	return TLY_OK;
}

int blobstore_pending_stats(struct db *db, int64_t *count, int64_t *bytes)
{
	sqlite3_stmt *st;
	int rc, err = db_stmt(db, "SELECT count(*), coalesce(sum(sz), 0) FROM (" PENDING_SQL ")",
			      &st);
	*count = *bytes = 0;
	if (err)
		return err;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*count = sqlite3_column_int64(st, 0);
		*bytes = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? TLY_OK : db_err(db, rc);
}

int blobstore_mark(struct db *db, const char *hex, const char *state, const char *code,
		   const char *message)
{
	sqlite3_stmt *st;
	int rc, err = db_stmt(db,
			      "INSERT OR REPLACE INTO blob_upload (sha256, state, code, message, at_ms) "
			      "VALUES (?, ?, ?, ?, ?)",
			      &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, code, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, message, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, clock_device_ms());
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? TLY_OK : db_err(db, rc);
}

int blobstore_sent_get(struct db *db, const char *day, int64_t *bytes)
{
	sqlite3_stmt *st;
	int rc, err = db_stmt(db, "SELECT bytes FROM blob_sent WHERE day = ?", &st);
	*bytes = 0;
	if (err)
		return err;
	sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*bytes = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? TLY_OK : db_err(db, rc);
}

int blobstore_sent_add(struct db *db, const char *day, int64_t bytes)
{
	sqlite3_stmt *st;
	int rc, err = db_stmt(db,
			      "INSERT INTO blob_sent (day, bytes) VALUES (?1, ?2) "
			      "ON CONFLICT (day) DO UPDATE SET bytes = bytes + ?2",
			      &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, bytes);
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? TLY_OK : db_err(db, rc);
}

/* ---- township: upload state ---- */

void blobstore_upload_free(struct blobstore_upload *u)
{
	free(u->have);
	u->have = NULL;
}

static int upload_row(sqlite3_stmt *st, const char *hex, struct blobstore_upload *u)
{
	snprintf(u->sha256, sizeof u->sha256, "%s", hex);
	u->size = sqlite3_column_int64(st, 0);
	u->chunk_size = sqlite3_column_int64(st, 1);
	if (u->chunk_size <= 0 || u->size < 0)
		return TLY_E_INTERNAL;
	int64_t nc = (u->size + u->chunk_size - 1) / u->chunk_size;
	if (nc > UINT32_MAX)
		return TLY_E_INTERNAL;
	u->nchunks = (uint32_t)nc;
	size_t nb = ((size_t)u->nchunks + 7) / 8;
	u->have = calloc(1, nb ? nb : 1);
	if (!u->have)
		return TLY_E_NOMEM;
	const void *have = sqlite3_column_blob(st, 2);
	size_t hn = (size_t)sqlite3_column_bytes(st, 2);
	if (have && hn)
		memcpy(u->have, have, hn < nb ? hn : nb);
	const char *state = (const char *)sqlite3_column_text(st, 3);
	u->complete = state && strcmp(state, "complete") == 0;
	return TLY_OK;
}

int blobstore_upload_get(struct db *db, const char *hex, struct blobstore_upload *u)
{
	sqlite3_stmt *st;
	int rc, err;

	memset(u, 0, sizeof *u);
	err = db_stmt(db, "SELECT size, chunk_size, have, state FROM srv_blob WHERE sha256 = ?",
		      &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		err = upload_row(st, hex, u);
	else
		err = rc == SQLITE_DONE ? TLY_E_NOT_FOUND : db_err(db, rc);
	sqlite3_reset(st);
	if (err)
		blobstore_upload_free(u);
	return err;
}

int blobstore_upload_create(struct db *db, const char *hex, int64_t size, int64_t chunk_size,
			    int64_t now_ms)
{
	sqlite3_stmt *st;
	int rc, err = db_stmt(db,
			      "INSERT OR IGNORE INTO srv_blob (sha256, size, chunk_size, have, state, "
			      "created_ms) VALUES (?, ?, ?, zeroblob(?), 'partial', ?)",
			      &st);
	if (err)
		return err;
	int64_t nc = (size + chunk_size - 1) / chunk_size;
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, size);
	sqlite3_bind_int64(st, 3, chunk_size);
	sqlite3_bind_int64(st, 4, (nc + 7) / 8);
	sqlite3_bind_int64(st, 5, now_ms);
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? TLY_OK : db_err(db, rc);
}

int blobstore_upload_save(struct db *db, const struct blobstore_upload *u, const char *village,
			  const char *day, int64_t bytes)
{
	sqlite3_stmt *st;
	int rc, err = db_begin(db);
	if (err)
		return err;
	err = db_stmt(db, "UPDATE srv_blob SET have = ? WHERE sha256 = ?", &st);
	if (err)
		goto out;
	sqlite3_bind_blob(st, 1, u->have, (int)(((size_t)u->nchunks + 7) / 8), SQLITE_STATIC);
	sqlite3_bind_text(st, 2, u->sha256, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		err = db_err(db, rc);
		goto out;
	}
	if (village && bytes > 0) {
		err = db_stmt(db,
			      "INSERT INTO srv_blob_usage (village, day, bytes) VALUES (?1, ?2, ?3) "
			      "ON CONFLICT (village, day) DO UPDATE SET bytes = bytes + ?3",
			      &st);
		if (err)
			goto out;
		sqlite3_bind_text(st, 1, village, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, day, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, bytes);
		rc = sqlite3_step(st);
		if (rc != SQLITE_DONE) {
			err = db_err(db, rc);
			goto out;
		}
	}
	err = db_commit(db);
out:
	if (err)
		db_rollback(db);
	return err;
}

static int exec_hex(struct db *db, const char *sql, const char *hex, int64_t v)
{
	sqlite3_stmt *st;
	int rc, err = db_stmt(db, sql, &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, v);
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? TLY_OK : db_err(db, rc);
}

int blobstore_upload_done(struct db *db, const char *hex, int64_t now_ms)
{
	return exec_hex(db, "UPDATE srv_blob SET state = 'complete', done_ms = ?2 WHERE sha256 = ?1",
			hex, now_ms);
}

int blobstore_upload_reset(struct db *db, const char *hex)
{
	return exec_hex(db,
			"UPDATE srv_blob SET have = zeroblob(length(have)), state = 'partial' "
			"WHERE sha256 = ?1 AND ?2 = 0",
			hex, 0);
}

int blobstore_usage_get(struct db *db, const char *village, const char *day, int64_t *bytes)
{
	sqlite3_stmt *st;
	int rc, err = db_stmt(db, "SELECT bytes FROM srv_blob_usage WHERE village = ? AND day = ?",
			      &st);
	*bytes = 0;
	if (err)
		return err;
	sqlite3_bind_text(st, 1, village, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, day, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*bytes = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? TLY_OK : db_err(db, rc);
}

int blobstore_referenced(struct db *db, const char *hex, const char *village, int64_t size,
			 int *found)
{
	sqlite3_stmt *st;
	int rc, err;
	/* The STORED task decides the village (guarantee 7), never the upload. */
	err = db_stmt(db,
		      "SELECT 1 FROM evidence e JOIN task t ON t.id = e.task "
		      "WHERE e.sha256 = ?1 AND (?3 < 0 OR e.size = ?3) AND (?2 IS NULL OR t.village = ?2) "
		      "LIMIT 1",
		      &st);
	*found = 0;
	if (err)
		return err;
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	if (village)
		sqlite3_bind_text(st, 2, village, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 2);
	sqlite3_bind_int64(st, 3, size);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*found = 1;
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? TLY_OK : db_err(db, rc);
}
