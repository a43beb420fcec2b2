/*
 * verify — rechecks a database: every site's hash chain, that the merge
 * state and domain tables are exactly what the change log produces, and
 * SQLite's own integrity check.
 *
 * Chains: for each site in change_log, from genesis when the log holds it
 * from seq 1, else from the first change held (the report says so, with
 * "complete": false): seq without gaps, each prev equal to the hash before
 * it, each hash equal to SHA-256(prev || body), and the row's columns
 * (site, seq, hlc, kind, record_id) equal to what the body says. A village
 * holds other sites' changes only as far as its feed shows them: there
 * such a chain may have gaps, each run after one checked from its first
 * change ("complete": false).
 *
 * Rebuild: replays every applied change into a fresh in-memory database
 * and compares field_state and every domain table row for row.
 */
#ifndef TALLY_CLIENT_VERIFY_H
#define TALLY_CLIENT_VERIFY_H

#include <jansson.h>

#include "db.h"

/*
 * Runs every check. *report (caller frees with json_decref) is an object:
 *   {"ok": bool,
 *    "sites": [{"site", "first_seq", "last_seq", "changes", "complete", "ok"}],
 *    "rebuild": {"ok": bool, "changes": N, "tables": [{"table", "missing", "extra"}]},
 *    "integrity": {"ok": bool, "messages": [...]},
 *    "problems": ["<Chinese line>", ...]}
 * Returns TLY_OK when everything holds, TLY_E_VERIFY when something is
 * broken (the report says what), other codes when it could not check.
 */
int verify_run(struct db *db, json_t **report);

#endif
