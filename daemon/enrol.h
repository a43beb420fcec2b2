/*
 * enrol — credentials and join codes: their formats, how secrets are made,
 * hashed and compared, and the two ends of enrolment.
 *
 * Bearer tokens (Authorization: Bearer TOKEN):
 *   d.<device_id>.<secret>   a village device (one site)
 *   u.<user_id>.<secret>     a township user (reads everything)
 * ids are 16 lowercase hex (db_random_id), secrets 32 random bytes as 64
 * lowercase hex. Servers store SHA-256(secret) only and compare hashes in
 * constant time (CRYPTO_memcmp).
 *
 * Join code: "TALLY1-" + base64url (no padding) of the JSON
 *   {"urls":["https://..."],"pin":"sha256//...","code":"<id>.<secret>"}
 * one copy-pasteable string that carries where the server is, the key to
 * trust it by, and the one-time secret.
 *
 * Ownership: every function fills caller memory; nothing to free except
 * the struct buf the caller gives.
 */
#ifndef TALLY_DAEMON_ENROL_H
#define TALLY_DAEMON_ENROL_H

#include <stddef.h>
#include <stdint.h>

#include "client/db.h"
#include "daemon/httpc.h"
#include "daemon/tls.h"
#include "protocol/buf.h"

#define ENROL_SECRET_LEN 32
#define ENROL_HASH_LEN 32
#define ENROL_URL_MAX 255
/* "d." + 16 + "." + 64 + NUL */
#define ENROL_TOKEN_SIZE (2 + DB_ID_LEN + 1 + 2 * ENROL_SECRET_LEN + 1)
#define ENROL_CODE_PREFIX "TALLY1-"
#define ENROL_CODE_MAX 4096 /* longest join code accepted */
#define ENROL_DEFAULT_TTL_MS (7LL * 24 * 3600 * 1000)

struct enrol_token {
	char kind; /* 'd' device, 'u' township user */
	char id[DB_ID_LEN + 1];
	uint8_t secret[ENROL_SECRET_LEN];
};

/* Strict parse: exactly the format above. TLY_E_UNAUTHORIZED otherwise
 * (a malformed credential is no credential). */
int enrol_token_parse(const char *s, struct enrol_token *out);
/* Writes the token string of (kind, id, secret). */
void enrol_token_format(const struct enrol_token *t, char out[ENROL_TOKEN_SIZE]);

/* 32 bytes from the OS's CSPRNG (OpenSSL RAND_bytes). */
int enrol_secret_new(uint8_t out[ENROL_SECRET_LEN]);
void enrol_secret_hash(const uint8_t secret[ENROL_SECRET_LEN], uint8_t out[ENROL_HASH_LEN]);
/* 1 if the secret hashes to `stored`, in time independent of where they differ. */
int enrol_secret_matches(const uint8_t secret[ENROL_SECRET_LEN],
			 const uint8_t stored[ENROL_HASH_LEN]);

struct enrol_code {
	char urls[HTTPC_MAX_URLS][ENROL_URL_MAX + 1];
	size_t nurls;
	char pin[TLS_PIN_SIZE];
	char id[DB_ID_LEN + 1];
	uint8_t secret[ENROL_SECRET_LEN];
};

/* Appends the join code string to out. */
int enrol_code_encode(const struct enrol_code *c, struct buf *out);
/* TLY_E_BAD_VALUE for anything but a well-formed code (1..8 https URLs,
 * a valid pin, id.secret). */
int enrol_code_decode(const char *s, struct enrol_code *out);

/* "id.secret" (the "code" member) to its parts, and back. */
int enrol_code_secret_parse(const char *s, char id[DB_ID_LEN + 1],
			    uint8_t secret[ENROL_SECRET_LEN]);

/*
 * Township end: creates a one-time join code for an existing village
 * record `village_id` valid for ttl_ms, stores its hash, and writes the
 * code string to out. urls[0..n) and the pin come from the caller (the
 * server's addresses and its certificate).
 */
int enrol_code_create(struct db *db, const char *village_id, const char *const *urls,
		      size_t nurls, const char *pin, int64_t ttl_ms, struct buf *out);

/*
 * Village end (`tally join`): exchanges the code for a device credential at
 * the server (POST /v1/join) and stores it, the server's addresses and pin,
 * the village id and the epoch in the database at db_path, creating the
 * database (role village, fresh site id) when it does not exist. If the
 * join fails, a database this call created is removed again, so a failed
 * join leaves nothing behind. device_name may be NULL (the host name).
 * why gets a Chinese detail; summary (may be NULL) gets one JSON object
 * {device_id, village_id, village_name, server_site, epoch}.
 */
int enrol_join(const char *db_path, const char *code, const char *device_name, struct buf *why,
	       struct buf *summary);

#endif
