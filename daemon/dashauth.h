/*
 * dashauth — township dashboard logins: scrypt password hashes, sessions
 * stored hashed, and `tally user passwd NAME`.
 *
 * Passwords are hashed with scrypt (OpenSSL 3's EVP_KDF "SCRYPT", N=2^15,
 * r=8, p=1, a 16-byte random salt per password, 32-byte output) and compared
 * in constant time. The cost is stored with each hash so it can be raised
 * later without breaking old logins. A session id is 32 random bytes sent as
 * 64 hex digits in the cookie; only its SHA-256 is stored (dash_session),
 * so a copy of the database cannot be replayed as a cookie.
 *
 * Tables (schema version 3, server-local): dash_login, dash_session.
 * All functions take the caller's open database; none keeps a pointer.
 */
#ifndef TALLY_DAEMON_DASHAUTH_H
#define TALLY_DAEMON_DASHAUTH_H

#include <stddef.h>
#include <stdint.h>

#include "client/cli.h"
#include "client/db.h"

#define DASHAUTH_NAME_MAX 64
#define DASHAUTH_PW_MIN 8
#define DASHAUTH_PW_MAX 256
/* Cookie value: 64 hex digits. */
#define DASHAUTH_SESSION_HEX 64
#define DASHAUTH_SESSION_TTL_MS (12LL * 3600 * 1000)

/* 1 when name is a usable login name (1..DASHAUTH_NAME_MAX bytes). */
int dashauth_name_ok(const char *name);

/* Sets (or replaces) NAME's password. TLY_E_BAD_VALUE for a name or
 * password outside the limits above, TLY_E_DB, TLY_E_INTERNAL (KDF). */
int dashauth_password_set(struct db *db, const char *name, const char *password, int64_t now_ms);

/*
 * *ok = 1 when NAME exists and PASSWORD is its password. An unknown name
 * costs the same scrypt work as a known one, so timing does not tell
 * which names exist. Returns an error only when the check could not run.
 */
int dashauth_password_check(struct db *db, const char *name, const char *password, int *ok);

/* A new session for NAME valid until now_ms + ttl_ms; cookie gets the hex id. */
int dashauth_session_new(struct db *db, const char *name, int64_t now_ms, int64_t ttl_ms,
			 char cookie[DASHAUTH_SESSION_HEX + 1]);

/* The user of a live session: TLY_OK with name filled, or
 * TLY_E_UNAUTHORIZED (malformed, unknown or expired cookie). */
int dashauth_session_get(struct db *db, const char *cookie, int64_t now_ms,
			 char name[DASHAUTH_NAME_MAX + 1]);

/* Ends a session (unknown ones are ignored) and drops expired ones. */
int dashauth_session_end(struct db *db, const char *cookie, int64_t now_ms);

/* `tally user passwd NAME`: reads the password from stdin (twice, echo off
 * on a terminal; a pipe gives it on the first line, a second line must
 * match if present). Never from the command line. */
int cmd_user_passwd(struct cli *cli, const struct cli_args *a);

#endif
