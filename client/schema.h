/*
 * schema — the database schema as a list of migrations, and the record
 * kinds with their fields.
 *
 * Migration i (0-based) brings a file from user_version i to i + 1. Adding
 * version 2 is appending one entry to the list in schema.c; db_open runs
 * every step a file is missing, each in its own transaction together with
 * its user_version bump, so a crash between steps leaves a consistent older
 * version that the next open continues from.
 *
 * Record kinds: each replicated record kind has a domain table of the same
 * name whose columns are exactly its fields (plus `id`). The per-field merge
 * state is record_base (the write of the change that created a record, one
 * row, its values being the domain row's) plus field_write (every other
 * current write, one row per field); the view field_state shows both as one
 * row per field, keyed by (kind, record_id, field). A field's index in its
 * kind's list is its bit in record_base.mask, so lists only grow at the end.
 * The domain tables and both merge tables are what `tally verify` rebuilds
 * from the log and compares.
 */
#ifndef TALLY_CLIENT_SCHEMA_H
#define TALLY_CLIENT_SCHEMA_H

#include <stddef.h>

#include "protocol/change.h"

/* Maximum bytes for short text fields (names, codes, dates); long text
 * (measures, problem text, notes) may use the protocol's field limit. */
#define SCHEMA_SHORT_TEXT_MAX 256

struct schema_migration {
	const char *sql; /* one or more statements */
};

/* The list of migrations; *n is the current schema version. */
const struct schema_migration *schema_migrations(size_t *n);
/* The schema version this code writes (the number of migrations). */
int schema_version(void);

struct schema_field {
	const char *name;
	enum field_type type; /* FIELD_INT or FIELD_TEXT; any field may also be null */
	int long_text;        /* FIELD_TEXT: 1 if it may use the full field limit */
};

struct schema_kind {
	const char *kind; /* also the domain table's name */
	int append_only;  /* created once by one change, never updated */
	const struct schema_field *fields;
	size_t nfields;
};

/* The kinds, and lookups by name (NULL when unknown). */
const struct schema_kind *schema_kinds(size_t *n);
const struct schema_kind *schema_kind_find(const char *kind);
const struct schema_field *schema_field_find(const struct schema_kind *k, const char *name);

#endif
