/*
 * serve — `tallyd serve`: the township's HTTPS sync server. Wires
 * daemon/syncsrv.h (the logic) to daemon/httpd.h (the transport): routes,
 * the auth hook (bearer tokens, 401 revoked/unauthorized, 429 per device),
 * TLS material, the configuration file, and restore detection (a new
 * epoch when the database went back in time).
 *
 *   tallyd serve --db PATH [--listen HOST:PORT]... [--config FILE]
 *                [--set KEY=VALUE]... [--cert FILE --key FILE]
 *                [--host NAME]... [--url URL]... [--new-epoch]
 *                [--log-level debug|info|warn|error]
 *
 * Prints "port=N pin=PIN epoch=E" on stdout once listening (the first
 * address's port), logs to stderr, stops cleanly on SIGTERM/SIGINT.
 *
 * Test hook, inert unless set: TALLY_TEST_PAUSE_AFTER_COMMIT_MS sleeps that
 * long after a push's commit and before its answer is built, so a test can
 * kill the server in exactly that window.
 */
#ifndef TALLY_DAEMON_SERVE_H
#define TALLY_DAEMON_SERVE_H

#include <stddef.h>

#include "client/db.h"
#include "daemon/tls.h"
#include "protocol/buf.h"

/* `tallyd serve ARGS...` (argv[0] is "serve"); returns the exit status. */
int serve_main(int argc, char **argv);

/* The default TLS file paths of a database: PATH.crt and PATH.key. */
void serve_tls_paths(const char *db_path, char *cert, char *key, size_t n);

/*
 * Makes sure the township has TLS material: when neither file exists,
 * creates the key (0600) and a self-signed certificate for names[0..n)
 * (localhost, 127.0.0.1 and ::1 when n is 0); then writes the key's pin.
 * One file without the other is TLY_E_TLS (why says which).
 */
int serve_tls_ensure(const char *cert, const char *key, const char *const *names, size_t n,
		     char pin[TLS_PIN_SIZE], struct buf *why);

/* The "server_urls" setting (newline-separated), the addresses join codes carry. */
#define SERVE_URLS_SETTING "server_urls"

/* The restore-detection sidecar of a database: PATH.mark. */
void serve_mark_path(const char *db_path, char *out, size_t n);

#endif
