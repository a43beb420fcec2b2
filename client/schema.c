/*
 * schema — migrations and record kinds (see schema.h and docs/client.md).
 */
#include <string.h>

#include "schema.h"

/*
 * Version 1.
 *
 * Domain tables declare no column types on purpose: with no affinity SQLite
 * stores each value exactly as the change carried it (integer stays
 * integer, text stays text), so a rebuilt table compares equal byte for
 * byte. There are no foreign keys between replicated records because
 * changes from different sites may arrive in any order; referential checks
 * are the rules' job (rules.h), made when a change is first accepted.
 */
static const char schema_v1[] =
	"PRAGMA application_id = 1413565529;\n" /* DB_APPLICATION_ID, 'TALY' */
	"CREATE TABLE site (\n"
	"  one INTEGER PRIMARY KEY CHECK (one = 1),\n"
	"  site_id TEXT NOT NULL,\n"
	"  role TEXT NOT NULL CHECK (role IN ('village', 'township')),\n"
	"  name TEXT NOT NULL,\n"
	"  village_id TEXT,\n"
	"  created_ms INTEGER NOT NULL,\n"
	"  hlc_last INTEGER NOT NULL DEFAULT 0\n"
	");\n"
	"CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);\n"
	/* One row: this site's view of its upstream (the township server). */
	"CREATE TABLE sync_state (\n"
	"  one INTEGER PRIMARY KEY CHECK (one = 1),\n"
	"  upstream_url TEXT,\n"
	"  epoch TEXT,\n"
	"  acked_seq INTEGER NOT NULL DEFAULT 0,\n"
	"  pull_cursor INTEGER NOT NULL DEFAULT 0,\n"
	"  server_offset_ms INTEGER NOT NULL DEFAULT 0,\n"
	"  last_attempt_ms INTEGER,\n"
	"  last_success_ms INTEGER,\n"
	"  last_error_code TEXT,\n"
	"  last_error_text TEXT,\n"
	"  next_attempt_ms INTEGER,\n"
	"  fail_count INTEGER NOT NULL DEFAULT 0\n"
	");\n"
	"INSERT INTO sync_state (one) VALUES (1);\n"
	/* Every change this site holds, its own and received: the outbox (own
	 * site, seq > acked_seq) and the source of pulls (pos is the cursor). */
	"CREATE TABLE change_log (\n"
	"  pos INTEGER PRIMARY KEY,\n"
	"  site TEXT NOT NULL,\n"
	"  seq INTEGER NOT NULL CHECK (seq > 0),\n"
	"  hlc INTEGER NOT NULL,\n"
	"  eff INTEGER,\n"
	"  kind TEXT NOT NULL,\n"
	"  record_id TEXT NOT NULL,\n"
	"  body BLOB NOT NULL,\n"
	"  prev BLOB NOT NULL CHECK (length(prev) = 32),\n"
	"  hash BLOB NOT NULL CHECK (length(hash) = 32),\n"
	"  recv_ms INTEGER NOT NULL,\n"
	"  state TEXT NOT NULL CHECK (state IN ('applied', 'rejected')),\n"
	"  reject_code TEXT,\n"
	"  reject_reason TEXT,\n"
	"  UNIQUE (site, seq)\n"
	");\n"
	"CREATE INDEX change_log_record ON change_log (kind, record_id);\n"
	/* The merge state: the current winning write of every field. */
	"CREATE TABLE field_state (\n"
	"  kind TEXT NOT NULL,\n"
	"  record_id TEXT NOT NULL,\n"
	"  field TEXT NOT NULL,\n"
	"  value,\n"
	"  stamp INTEGER NOT NULL,\n"
	"  site TEXT NOT NULL,\n"
	"  seq INTEGER NOT NULL,\n"
	"  PRIMARY KEY (kind, record_id, field)\n"
	") WITHOUT ROWID;\n"
	"CREATE INDEX field_state_origin ON field_state (site, seq);\n"
	/* Values overwritten by concurrent edits (guarantee 5). */
	"CREATE TABLE conflict (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  kind TEXT NOT NULL,\n"
	"  record_id TEXT NOT NULL,\n"
	"  field TEXT NOT NULL,\n"
	"  winner_value, winner_stamp INTEGER, winner_site TEXT, winner_seq INTEGER,\n"
	"  loser_value, loser_stamp INTEGER NOT NULL, loser_site TEXT NOT NULL,\n"
	"  loser_seq INTEGER NOT NULL,\n"
	"  at_ms INTEGER NOT NULL\n"
	");\n"
	"CREATE INDEX conflict_record ON conflict (kind, record_id);\n"
	"CREATE TABLE village (id TEXT PRIMARY KEY, name);\n"
	"CREATE TABLE problem (id TEXT PRIMARY KEY, source, round, doc_no, category, text,\n"
	"  manifestations, village, created_on);\n"
	"CREATE TABLE task (id TEXT PRIMARY KEY, problem, village, measures, target, root_cause,\n"
	"  elsewhere, leader, owner, deadline, status, created_on);\n"
	"CREATE INDEX task_village ON task (village);\n"
	"CREATE INDEX task_problem ON task (problem);\n"
	"CREATE TABLE progress (id TEXT PRIMARY KEY, task, percent, note, reason, author, date);\n"
	"CREATE INDEX progress_task ON progress (task);\n"
	"CREATE TABLE evidence (id TEXT PRIMARY KEY, task, progress, sha256, name, size, author,\n"
	"  date);\n"
	"CREATE INDEX evidence_task ON evidence (task);\n"
	"CREATE TABLE review (id TEXT PRIMARY KEY, task, type, decision, opinion, until, request,\n"
	"  author, date);\n"
	"CREATE INDEX review_task ON review (task);\n"
	"CREATE TABLE notice (id TEXT PRIMARY KEY, type, village, title, text, tasks, author, date);\n";

/*
 * Version 2: the township server's own tables (daemon/syncsrv.c, through
 * client/srvstore.h). Never replicated; a village file has them empty.
 *
 * srv_state.epoch is made here, with the file, so a server database has
 * its epoch from its first open; a restored copy gets a new one from the
 * server (PROTOCOL.md §11). Secrets are stored only as SHA-256 hashes.
 * srv_feed is the per-village pull order (its id is a device's cursor);
 * feed_pos is the change_log position indexed into it so far.
 */
static const char schema_v2[] =
	"CREATE TABLE srv_state (\n"
	"  one INTEGER PRIMARY KEY CHECK (one = 1),\n"
	"  epoch TEXT NOT NULL,\n"
	"  feed_pos INTEGER NOT NULL DEFAULT 0\n"
	");\n"
	"INSERT INTO srv_state (one, epoch) VALUES (1, lower(hex(randomblob(8))));\n"
	"CREATE TABLE srv_device (\n"
	"  id TEXT PRIMARY KEY,\n"
	"  site TEXT NOT NULL UNIQUE,\n"
	"  village TEXT NOT NULL,\n"
	"  name TEXT NOT NULL,\n"
	"  secret_hash BLOB NOT NULL CHECK (length(secret_hash) = 32),\n"
	"  created_ms INTEGER NOT NULL,\n"
	"  revoked_ms INTEGER,\n"
	"  last_contact_ms INTEGER,\n"
	"  acked_seq INTEGER NOT NULL DEFAULT 0,\n"
	"  queue_depth INTEGER,\n"
	"  offset_ms INTEGER,\n"
	"  last_error_code TEXT,\n"
	"  last_error_ms INTEGER\n"
	");\n"
	"CREATE TABLE srv_user (\n"
	"  id TEXT PRIMARY KEY,\n"
	"  name TEXT NOT NULL,\n"
	"  secret_hash BLOB NOT NULL CHECK (length(secret_hash) = 32),\n"
	"  created_ms INTEGER NOT NULL,\n"
	"  revoked_ms INTEGER\n"
	");\n"
	"CREATE TABLE srv_join (\n"
	"  id TEXT PRIMARY KEY,\n"
	"  village TEXT NOT NULL,\n"
	"  secret_hash BLOB NOT NULL CHECK (length(secret_hash) = 32),\n"
	"  created_ms INTEGER NOT NULL,\n"
	"  expires_ms INTEGER NOT NULL,\n"
	"  used_ms INTEGER,\n"
	"  device_id TEXT\n"
	");\n"
	"CREATE TABLE srv_feed (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  village TEXT NOT NULL,\n" /* '' means every village */
	"  pos INTEGER NOT NULL,\n"
	"  UNIQUE (village, pos)\n"
	");\n"
	"CREATE INDEX srv_feed_village ON srv_feed (village, id);\n"
	"CREATE TABLE srv_feed_problem (\n"
	"  village TEXT NOT NULL,\n"
	"  problem TEXT NOT NULL,\n"
	"  PRIMARY KEY (village, problem)\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE srv_audit (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  at_ms INTEGER NOT NULL,\n"
	"  device_id TEXT,\n"
	"  site TEXT,\n"
	"  event TEXT NOT NULL,\n"
	"  code TEXT,\n"
	"  detail TEXT\n"
	");\n"
	"CREATE INDEX srv_audit_device ON srv_audit (device_id, id);\n";

/* Version 3: the township dashboard's logins and sessions (daemon/dashauth.c).
 * Server-local, never replicated. Passwords are scrypt hashes with their
 * salt and cost; a session is known only by the SHA-256 of its cookie. */
static const char schema_v3[] =
	"CREATE TABLE dash_login (\n"
	"  name TEXT PRIMARY KEY,\n"
	"  salt BLOB NOT NULL CHECK (length(salt) = 16),\n"
	"  hash BLOB NOT NULL CHECK (length(hash) = 32),\n"
	"  log2_n INTEGER NOT NULL,\n"
	"  r INTEGER NOT NULL,\n"
	"  p INTEGER NOT NULL,\n"
	"  updated_ms INTEGER NOT NULL\n"
	");\n"
	"CREATE TABLE dash_session (\n"
	"  id_hash BLOB PRIMARY KEY CHECK (length(id_hash) = 32),\n"
	"  name TEXT NOT NULL,\n"
	"  created_ms INTEGER NOT NULL,\n"
	"  expires_ms INTEGER NOT NULL\n"
	");\n";

/*
 * Version 4: evidence files (client/blobstore.h, docs/evidence.md).
 *
 * evidence.type is the media type guessed when the file was stored. The
 * other tables are never replicated: blob_upload is a village's memory of
 * which blobs the server has (or refused for good), blob_sent its bytes
 * per day for the metered-link budget; srv_blob is the township's state of
 * each upload (have: one bit per chunk, set only after the chunk's bytes
 * were fsynced), srv_blob_usage the bytes each village sent per day.
 */
static const char schema_v4[] =
	"ALTER TABLE evidence ADD COLUMN type;\n"
	"CREATE INDEX evidence_sha256 ON evidence (sha256);\n"
	"CREATE TABLE blob_upload (\n"
	"  sha256 TEXT PRIMARY KEY,\n"
	"  state TEXT NOT NULL CHECK (state IN ('done', 'refused')),\n"
	"  code TEXT,\n"
	"  message TEXT,\n"
	"  at_ms INTEGER NOT NULL\n"
	");\n"
	"CREATE TABLE blob_sent (day TEXT PRIMARY KEY, bytes INTEGER NOT NULL);\n"
	"CREATE TABLE srv_blob (\n"
	"  sha256 TEXT PRIMARY KEY,\n"
	"  size INTEGER NOT NULL CHECK (size >= 0),\n"
	"  chunk_size INTEGER NOT NULL CHECK (chunk_size > 0),\n"
	"  have BLOB NOT NULL,\n"
	"  state TEXT NOT NULL CHECK (state IN ('partial', 'complete')),\n"
	"  created_ms INTEGER NOT NULL,\n"
	"  done_ms INTEGER\n"
	");\n"
	"CREATE TABLE srv_blob_usage (\n"
	"  village TEXT NOT NULL,\n"
	"  day TEXT NOT NULL,\n"
	"  bytes INTEGER NOT NULL,\n"
	"  PRIMARY KEY (village, day)\n"
	") WITHOUT ROWID;\n";

/*
 * Field lists: keep each in step with its CREATE TABLE above. Each kind's
 * list is an X-macro so that the field_state view of version 5 is written
 * from the same list at compile time. A field's position is its bit in
 * record_base.mask: lists may only grow at the end, and a version that adds
 * a field must recreate the view.
 */
#define VILLAGE_FIELDS(F) F("village", 0, "name", T)
#define PROBLEM_FIELDS(F)                                                                       \
	F("problem", 0, "source", T) F("problem", 1, "round", T) F("problem", 2, "doc_no", T)   \
	F("problem", 3, "category", T) F("problem", 4, "text", L)                               \
	F("problem", 5, "manifestations", L) F("problem", 6, "village", T)                      \
	F("problem", 7, "created_on", T)
#define TASK_FIELDS(F)                                                                          \
	F("task", 0, "problem", T) F("task", 1, "village", T) F("task", 2, "measures", L)      \
	F("task", 3, "target", L) F("task", 4, "root_cause", L) F("task", 5, "elsewhere", L)   \
	F("task", 6, "leader", T) F("task", 7, "owner", T) F("task", 8, "deadline", T)         \
	F("task", 9, "status", T) F("task", 10, "created_on", T)
#define PROGRESS_FIELDS(F)                                                                      \
	F("progress", 0, "task", T) F("progress", 1, "percent", I) F("progress", 2, "note", L) \
	F("progress", 3, "reason", L) F("progress", 4, "author", T) F("progress", 5, "date", T)
#define EVIDENCE_FIELDS(F)                                                                      \
	F("evidence", 0, "task", T) F("evidence", 1, "progress", T)                             \
	F("evidence", 2, "sha256", T) F("evidence", 3, "name", T) F("evidence", 4, "size", I)  \
	F("evidence", 5, "author", T) F("evidence", 6, "date", T) F("evidence", 7, "type", T)
#define REVIEW_FIELDS(F)                                                                        \
	F("review", 0, "task", T) F("review", 1, "type", T) F("review", 2, "decision", T)      \
	F("review", 3, "opinion", L) F("review", 4, "until", T) F("review", 5, "request", T)   \
	F("review", 6, "author", T) F("review", 7, "date", T)
#define NOTICE_FIELDS(F)                                                                        \
	F("notice", 0, "type", T) F("notice", 1, "village", T) F("notice", 2, "title", T)      \
	F("notice", 3, "text", L) F("notice", 4, "tasks", L) F("notice", 5, "author", T)       \
	F("notice", 6, "date", T)

/*
 * Version 5: the merge state of a record's first change in one row.
 *
 * Up to version 4 every field of every record had its own field_state row
 * (value, stamp, site, seq): a new task wrote eleven rows, a second copy
 * of its text and eleven index entries, half the server's apply cost.
 * Now record_base holds the write of the change that created the record
 * (stamp, site, seq, and mask: bit i set when that change carried field i
 * of the kind's list below), whose values are the domain row's columns;
 * field_write holds only writes that are not that change's (later writes,
 * fields outside the schema, and everything from before version 5). A
 * field's current write is its field_write row, else record_base when its
 * bit is set, else none (store.c). field_state is now a view giving the
 * same rows as before: what `tally verify`, reports and tests read.
 *
 * Existing files keep their rows in field_write; each record gets a
 * record_base row with mask 0 (covering no field) from its earliest write,
 * which is also what orders entries (progress, reviews, notices).
 * change_log_rejected lets the outbox statistics count a site's rejected
 * changes without reading the log.
 */
#define BASE_ROW(kind, bit, name, type)                                                          \
	" UNION ALL SELECT b.kind, b.record_id, '" name "', d.\"" name "\", b.stamp, b.site, "      \
	"b.seq FROM record_base b JOIN \"" kind "\" d ON d.id = b.record_id WHERE b.kind = '" kind \
	"' AND (b.mask >> " #bit ") & 1 AND NOT EXISTS (SELECT 1 FROM field_write w WHERE "         \
	"w.kind = b.kind AND w.record_id = b.record_id AND w.field = '" name "')"
static const char schema_v5[] =
	"ALTER TABLE field_state RENAME TO field_write;\n"
	/* Rejected changes are few; counting them must not read every change
	 * body (the outbox statistics are read after every pushed batch). */
	"CREATE INDEX change_log_rejected ON change_log (site) WHERE state = 'rejected';\n"
	/* set_eff finds a change's writes through the primary key now. */
	"DROP INDEX field_state_origin;\n"
	"CREATE TABLE record_base (\n"
	"  kind TEXT NOT NULL,\n"
	"  record_id TEXT NOT NULL,\n"
	"  stamp INTEGER NOT NULL,\n"
	"  site TEXT NOT NULL,\n"
	"  seq INTEGER NOT NULL,\n"
	"  mask INTEGER NOT NULL,\n"
	"  PRIMARY KEY (kind, record_id)\n"
	") WITHOUT ROWID;\n"
	"INSERT INTO record_base (kind, record_id, stamp, site, seq, mask) "
	"SELECT kind, record_id, stamp, site, seq, 0 FROM (SELECT kind, record_id, stamp, site, "
	"seq, row_number() OVER (PARTITION BY kind, record_id ORDER BY stamp, site) AS n "
	"FROM field_write) WHERE n = 1;\n"
	"CREATE VIEW field_state (kind, record_id, field, value, stamp, site, seq) AS "
	"SELECT kind, record_id, field, value, stamp, site, seq FROM field_write" VILLAGE_FIELDS(
		BASE_ROW) PROBLEM_FIELDS(BASE_ROW) TASK_FIELDS(BASE_ROW) PROGRESS_FIELDS(BASE_ROW)
		EVIDENCE_FIELDS(BASE_ROW) REVIEW_FIELDS(BASE_ROW) NOTICE_FIELDS(BASE_ROW) ";\n";
#undef BASE_ROW

static const struct schema_migration migrations[] = {
	{schema_v1},
	{schema_v2},
	{schema_v3},
	{schema_v4},
	{schema_v5},
};

const struct schema_migration *schema_migrations(size_t *n)
{
	*n = sizeof migrations / sizeof migrations[0];
	return migrations;
}

int schema_version(void)
{
	return (int)(sizeof migrations / sizeof migrations[0]);
}

#define T(n) {n, FIELD_TEXT, 0}
#define L(n) {n, FIELD_TEXT, 1}
#define I(n) {n, FIELD_INT, 0}
#define FIELD_ENTRY(kind, bit, name, type) type(name),

static const struct schema_field village_fields[] = {VILLAGE_FIELDS(FIELD_ENTRY)};
static const struct schema_field problem_fields[] = {PROBLEM_FIELDS(FIELD_ENTRY)};
static const struct schema_field task_fields[] = {TASK_FIELDS(FIELD_ENTRY)};
static const struct schema_field progress_fields[] = {PROGRESS_FIELDS(FIELD_ENTRY)};
static const struct schema_field evidence_fields[] = {EVIDENCE_FIELDS(FIELD_ENTRY)};
static const struct schema_field review_fields[] = {REVIEW_FIELDS(FIELD_ENTRY)};
static const struct schema_field notice_fields[] = {NOTICE_FIELDS(FIELD_ENTRY)};

#undef FIELD_ENTRY
#undef T
#undef L
#undef I

#define KIND(name, ao, f) {name, ao, f, sizeof f / sizeof f[0]}
static const struct schema_kind kinds[] = {
	KIND("village", 0, village_fields),   KIND("problem", 0, problem_fields),
	KIND("task", 0, task_fields),         KIND("progress", 1, progress_fields),
	KIND("evidence", 1, evidence_fields), KIND("review", 1, review_fields),
	KIND("notice", 1, notice_fields),
};
#undef KIND

const struct schema_kind *schema_kinds(size_t *n)
{
	*n = sizeof kinds / sizeof kinds[0];
	return kinds;
}

const struct schema_kind *schema_kind_find(const char *kind)
{
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		if (strcmp(kinds[i].kind, kind) == 0)
			return &kinds[i];
	}
	return NULL;
}

const struct schema_field *schema_field_find(const struct schema_kind *k, const char *name)
{
	for (size_t i = 0; i < k->nfields; i++) {
		if (strcmp(k->fields[i].name, name) == 0)
			return &k->fields[i];
	}
	return NULL;
}
