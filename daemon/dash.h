/*
 * dash — the township dashboard on `tallyd serve`'s HTTPS port: login and
 * sessions (dashauth.h), the overview page, the task page, the Excel and
 * CSV downloads and the report as JSON for scripts.
 *
 *   GET  /login  POST /login  POST /logout  GET /dash.css     (public)
 *   GET  /  GET /task/ID  GET /report.xlsx                    (pages)
 *   GET  /v1/report?by=village|source|ledger|summary|all  GET /v1/report.csv (API)
 *
 * Every page and API route wants a dashboard session (cookie tally_session)
 * or, for scripts, a township user token (Authorization: Bearer u.…).
 * Without one a page redirects to /login (303) and the API answers 401;
 * a village device's token is refused with 403. Routes are registered
 * HTTPD_PUBLIC because the server's auth hook knows bearer tokens only:
 * this module does its own check first thing in every handler, before
 * anything is read from the ledger.
 *
 * Text in pages comes from villages, so every string is HTML-escaped; the
 * pages carry a Content-Security-Policy (default-src 'self', no inline
 * script or style, frame-ancestors 'none'). All assets are C literals.
 * Login attempts are rate-limited per client address and per user name.
 *
 * Ownership: dash_new allocates; dash_free frees. The dash borrows the
 * syncsrv (and its database) for its whole life: free the dash first.
 */
#ifndef TALLY_DAEMON_DASH_H
#define TALLY_DAEMON_DASH_H

#include "daemon/httpd.h"
#include "daemon/syncsrv.h"

/* Login attempts: a burst of this many, then this many a minute. */
#define DASH_LOGIN_BURST 5
#define DASH_LOGIN_PER_MINUTE 5

struct dash;

int dash_new(struct syncsrv *ss, struct dash **out);
/* Adds the routes above to h (TLY_E_USAGE, TLY_E_NOMEM). */
int dash_add_routes(struct dash *d, struct httpd *h);
void dash_free(struct dash *d);

#endif
