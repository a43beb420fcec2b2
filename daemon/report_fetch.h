/*
 * report_fetch — `tally report --from URL`: one report fetched over HTTPS
 * from a township server (`tallyd serve`, daemon/dash.c) with a township
 * user's bearer token, so a machine that is not the server can write the
 * weekly report on a schedule (docs/report.md).
 *
 * Trust is httpc's: a pin ("sha256//...", as in join codes) or a CA file.
 * The answer must be 200 with the asked media type; anything else is an
 * error with a stable code and a Chinese detail in why:
 *   TLY_E_UNAUTHORIZED  401, or the login redirect /report.xlsx gives
 *                       without a credential
 *   TLY_E_FORBIDDEN     403: a village device's token
 *   other server codes  the server's error body (code and message)
 *   TLY_E_NETWORK, TLY_E_TIMEOUT, TLY_E_TLS, TLY_E_PIN  httpc's
 *   TLY_E_HTTP_STATUS   any other status or media type
 *   TLY_E_USAGE         no pin and no CA file, a malformed pin, a URL that
 *                       is not https://host[:port] — refused before any
 *                       network action
 *
 * Ownership: the caller owns out (buf_init'd by it, its cap is the largest
 * answer accepted) and why; nothing is kept between calls.
 */
#ifndef TALLY_DAEMON_REPORT_FETCH_H
#define TALLY_DAEMON_REPORT_FETCH_H

#include "protocol/buf.h"

/* Largest report accepted (after gzip): 50,000 ledger rows as indented
 * JSON are about 60 MB. */
#define REPORT_FETCH_MAX_BYTES (256u * 1024 * 1024)

struct report_fetch_options {
	const char *url;     /* "https://host:port" (a trailing '/' is allowed) */
	const char *token;   /* "u.<id>.<secret>" */
	const char *pin;     /* NULL or "sha256//..." */
	const char *ca_file; /* NULL or a PEM file */
};

/*
 * GET path (e.g. "/v1/report?by=all") expecting Content-Type accept; the
 * body goes into out (reset first). The options are checked (httpc_new)
 * before anything is sent.
 */
int report_fetch_get(const struct report_fetch_options *o, const char *path, const char *accept,
		     struct buf *out, struct buf *why);

#endif
