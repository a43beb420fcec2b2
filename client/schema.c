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

static const struct schema_migration migrations[] = {
	{schema_v1},
	{schema_v2},
	{schema_v3},
	{schema_v4},
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

/* Field lists: keep each in step with its CREATE TABLE above. */
#define T(n) {n, FIELD_TEXT, 0}
#define L(n) {n, FIELD_TEXT, 1}
#define I(n) {n, FIELD_INT, 0}

static const struct schema_field village_fields[] = {T("name")};
static const struct schema_field problem_fields[] = {
	T("source"), T("round"), T("doc_no"), T("category"), L("text"),
	L("manifestations"), T("village"), T("created_on"),
};
static const struct schema_field task_fields[] = {
	T("problem"), T("village"), L("measures"), L("target"), L("root_cause"), L("elsewhere"),
	T("leader"), T("owner"), T("deadline"), T("status"), T("created_on"),
};
static const struct schema_field progress_fields[] = {
	T("task"), I("percent"), L("note"), L("reason"), T("author"), T("date"),
};
static const struct schema_field evidence_fields[] = {
	T("task"), T("progress"), T("sha256"), T("name"), I("size"), T("author"), T("date"),
	T("type"),
};
static const struct schema_field review_fields[] = {
	T("task"), T("type"), T("decision"), L("opinion"), T("until"), T("request"),
	T("author"), T("date"),
};
static const struct schema_field notice_fields[] = {
	T("type"), T("village"), T("title"), L("text"), L("tasks"), T("author"), T("date"),
};

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
