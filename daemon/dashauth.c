/*
 * dashauth — dashboard passwords and sessions (see dashauth.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sqlite3.h>

#include "client/clock.h"
#include "daemon/dashauth.h"
#include "protocol/chain.h"
#include "protocol/error.h"

#define SALT_LEN 16
#define HASH_LEN 32
#define COST_LOG2_N 15
#define COST_R 8
#define COST_P 1
/* scrypt needs 128 * r * N bytes (32 MiB here); OpenSSL's default cap is
 * exactly that, which it refuses as "too much" once overhead is added. */
#define KDF_MAXMEM (64u * 1024 * 1024)

static int scrypt(const char *pw, const uint8_t *salt, unsigned log2_n, unsigned r, unsigned p,
		  uint8_t out[HASH_LEN])
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
	EVP_KDF_CTX *ctx = NULL;
	uint64_t n = (uint64_t)1 << log2_n, maxmem = KDF_MAXMEM;
	uint32_t rr = r, pp = p;
	OSSL_PARAM params[7], *q = params;
	int err = TLY_E_INTERNAL;

	if (!kdf || log2_n < 10 || log2_n > 20 || r < 1 || r > 32 || p < 1 || p > 16)
		goto out;
	ctx = EVP_KDF_CTX_new(kdf);
	if (!ctx)
		goto out;
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)pw, strlen(pw));
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, SALT_LEN);
	*q++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
	*q++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &rr);
	*q++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &pp);
	*q++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem);
	*q = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, HASH_LEN, params) == 1)
		err = TLY_OK;
out:
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return err;
}

int dashauth_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	return n > 0 && n <= DASHAUTH_NAME_MAX;
}

int dashauth_password_set(struct db *db, const char *name, const char *password, int64_t now_ms)
{
	uint8_t salt[SALT_LEN], hash[HASH_LEN];
	sqlite3_stmt *st;
	size_t n = password ? strlen(password) : 0;
	int err;

	if (!dashauth_name_ok(name) || n < DASHAUTH_PW_MIN || n > DASHAUTH_PW_MAX)
		return TLY_E_BAD_VALUE;
	if (RAND_bytes(salt, sizeof salt) != 1)
		return TLY_E_INTERNAL;
	err = scrypt(password, salt, COST_LOG2_N, COST_R, COST_P, hash);
	if (err)
		goto out;
	err = db_stmt(db,
		      "INSERT INTO dash_login (name, salt, hash, log2_n, r, p, updated_ms) "
		      "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
		      "salt = excluded.salt, hash = excluded.hash, log2_n = excluded.log2_n, "
		      "r = excluded.r, p = excluded.p, updated_ms = excluded.updated_ms",
		      &st);
	if (err)
		goto out;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, salt, sizeof salt, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, hash, sizeof hash, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, COST_LOG2_N);
	sqlite3_bind_int(st, 5, COST_R);
	sqlite3_bind_int(st, 6, COST_P);
	sqlite3_bind_int64(st, 7, now_ms);
	err = sqlite3_step(st) == SQLITE_DONE ? TLY_OK : db_err(db, sqlite3_errcode(db_handle(db)));
	sqlite3_reset(st);
	/* Existing sessions of this name end with the old password. */
	if (!err)
		err = db_stmt(db, "DELETE FROM dash_session WHERE name = ?", &st);
	if (!err) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		err = sqlite3_step(st) == SQLITE_DONE ? TLY_OK
						      : db_err(db, sqlite3_errcode(db_handle(db)));
		sqlite3_reset(st);
	}
out:
	OPENSSL_cleanse(hash, sizeof hash);
	return err;
}

int dashauth_password_check(struct db *db, const char *name, const char *password, int *ok)
{
	uint8_t salt[SALT_LEN], want[HASH_LEN], got[HASH_LEN];
	unsigned log2_n = COST_LOG2_N, r = COST_R, p = COST_P;
	sqlite3_stmt *st;
	int found = 0, err;

	*ok = 0;
	memset(salt, 0, sizeof salt);
	memset(want, 0xff, sizeof want);
	if (!password || strlen(password) > DASHAUTH_PW_MAX || !dashauth_name_ok(name))
		return TLY_OK;
	err = db_stmt(db, "SELECT salt, hash, log2_n, r, p FROM dash_login WHERE name = ?", &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == SALT_LEN &&
	    sqlite3_column_bytes(st, 1) == HASH_LEN) {
		memcpy(salt, sqlite3_column_blob(st, 0), SALT_LEN);
		memcpy(want, sqlite3_column_blob(st, 1), HASH_LEN);
		log2_n = (unsigned)sqlite3_column_int(st, 2);
		r = (unsigned)sqlite3_column_int(st, 3);
		p = (unsigned)sqlite3_column_int(st, 4);
		found = 1;
	} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		err = db_err(db, rc);
	}
	sqlite3_reset(st);
	if (err)
		return err;
	/* An unknown name still pays for one scrypt run (with a zero salt), so
	 * a wrong name and a wrong password take the same time. */
	err = scrypt(password, salt, log2_n, r, p, got);
	if (!err)
		*ok = found && CRYPTO_memcmp(got, want, HASH_LEN) == 0;
	OPENSSL_cleanse(got, sizeof got);
	return err;
}

int dashauth_session_new(struct db *db, const char *name, int64_t now_ms, int64_t ttl_ms,
			 char cookie[DASHAUTH_SESSION_HEX + 1])
{
	uint8_t id[32], h[32];
	sqlite3_stmt *st;
	int err;

	if (RAND_bytes(id, sizeof id) != 1)
		return TLY_E_INTERNAL;
	SHA256(id, sizeof id, h);
	err = db_stmt(db,
		      "INSERT INTO dash_session (id_hash, name, created_ms, expires_ms) "
		      "VALUES (?, ?, ?, ?)",
		      &st);
	if (err)
		goto out;
	sqlite3_bind_blob(st, 1, h, sizeof h, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms);
	sqlite3_bind_int64(st, 4, now_ms + ttl_ms);
	err = sqlite3_step(st) == SQLITE_DONE ? TLY_OK : db_err(db, sqlite3_errcode(db_handle(db)));
	sqlite3_reset(st);
	if (!err)
		chain_hex(id, cookie);
out:
	OPENSSL_cleanse(id, sizeof id);
	return err;
}

int dashauth_session_get(struct db *db, const char *cookie, int64_t now_ms,
			 char name[DASHAUTH_NAME_MAX + 1])
{
	uint8_t id[32], h[32];
	sqlite3_stmt *st;
	int err;

	name[0] = '\0';
	if (!cookie || strlen(cookie) != DASHAUTH_SESSION_HEX || chain_unhex(cookie, id) != TLY_OK)
		return TLY_E_UNAUTHORIZED;
	SHA256(id, sizeof id, h);
	err = db_stmt(db, "SELECT name FROM dash_session WHERE id_hash = ? AND expires_ms > ?", &st);
	if (err)
		return err;
	sqlite3_bind_blob(st, 1, h, sizeof h, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(name, DASHAUTH_NAME_MAX + 1, "%s", (const char *)sqlite3_column_text(st, 0));
		err = TLY_OK;
	} else {
		err = rc == SQLITE_DONE ? TLY_E_UNAUTHORIZED : db_err(db, rc);
	}
	sqlite3_reset(st);
	return err;
}

int dashauth_session_end(struct db *db, const char *cookie, int64_t now_ms)
{
	uint8_t id[32], h[32];
	sqlite3_stmt *st;
	int err = db_stmt(db, "DELETE FROM dash_session WHERE id_hash = ? OR expires_ms <= ?", &st);
	if (err)
		return err;
	memset(h, 0, sizeof h);
	if (cookie && strlen(cookie) == DASHAUTH_SESSION_HEX && chain_unhex(cookie, id) == TLY_OK)
		SHA256(id, sizeof id, h);
	sqlite3_bind_blob(st, 1, h, sizeof h, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	err = sqlite3_step(st) == SQLITE_DONE ? TLY_OK : db_err(db, sqlite3_errcode(db_handle(db)));
	sqlite3_reset(st);
	return err;
}
