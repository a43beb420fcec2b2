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

struct httpd;
struct httpd_options;
struct blobsrv_options;
struct syncsrv;
struct serve_app;

/*
 * The township's HTTPS application on h: the sync routes (/v1/join, push,
 * pull, devices, whoami, health), the dashboard, the evidence routes and
 * the auth hook (bearer tokens; a per-credential rate limit from
 * ho->rate_per_minute, rate_burst and rate_max_keys, so h itself must be
 * made with rate_per_minute 0). `tallyd serve` and the request fuzzer
 * (tests/fuzz/fuzz_serve_request.c) build the same server with it.
 * h and ss are borrowed and must outlive the app; free the app after
 * httpd_free(h) and before syncsrv_close(ss). On failure h may hold some
 * of the routes already: free it, do not run it.
 */
int serve_app_new(struct httpd *h, struct syncsrv *ss, const char *db_path,
		  const struct httpd_options *ho, const struct blobsrv_options *bo,
		  struct serve_app **out);
void serve_app_free(struct serve_app *a);

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
