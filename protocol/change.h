/*
 * change — one change record: the unit that sites exchange.
 *
 * A change sets one or more fields of one record. It is identified
 * globally by (site, seq): the origin site's id and that site's sequence
 * number, 1, 2, 3, ... without gaps. It carries the origin's HLC timestamp
 * (`hlc`), the record's kind and id, and its fields, each a typed value
 * (null, 64-bit integer, or UTF-8 text). Creating a task is one change with
 * all its fields; the merge is still per field, every field of a change
 * carrying that change's stamp.
 *
 * The ordering stamp of a change is `eff` when set, else `hlc`. `eff` is
 * assigned by the first server that accepts the change when the origin's
 * clock ran too far ahead (PROTOCOL.md §Clocks); it is not covered by the
 * hash, because the origin signed its chain before any server saw it.
 *
 * Identifier syntax (checked by change_new and the decoders):
 *   site:  1-32 bytes of [0-9a-z_-]
 *   kind:  1-32 bytes of [a-z_]
 *   id:    1-64 bytes of [0-9A-Za-z_-]
 *   field: 1-32 bytes, [a-z_] first, then [a-z0-9_]
 * Text values are valid UTF-8 without NUL bytes, at most the field byte
 * limit (limits.h).
 *
 * Ownership: struct change is opaque; change_new allocates it and
 * change_free releases it with every string it holds. Strings passed in are
 * copied. Pointers returned by accessors belong to the change and live until
 * it is freed or the field is set again.
 */
#ifndef TALLY_PROTOCOL_CHANGE_H
#define TALLY_PROTOCOL_CHANGE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "limits.h"

/* Schema version of change records this code writes. */
#define CHANGE_SCHEMA_VERSION 1

#define CHANGE_SITE_MAX 32
#define CHANGE_KIND_MAX 32
#define CHANGE_ID_MAX 64
#define CHANGE_FIELD_NAME_MAX 32
#define CHANGE_HASH_LEN 32

enum field_type {
	FIELD_NULL = 0,
	FIELD_INT = 1,
	FIELD_TEXT = 2,
};

/* A read-only view of one field. `text` is NUL-terminated, `len` excludes the NUL. */
struct field_view {
	const char *name;
	enum field_type type;
	int64_t i;        /* FIELD_INT */
	const char *text; /* FIELD_TEXT */
	size_t len;       /* FIELD_TEXT */
};

struct change;

/* Allocates a change with no fields. schema_version is CHANGE_SCHEMA_VERSION
 * unless re-creating a received one. TLY_E_BAD_VALUE on a bad identifier,
 * seq == 0 or hlc == 0. */
int change_new(struct change **out, uint32_t schema_version, const char *site, uint64_t seq,
	       uint64_t hlc, const char *kind, const char *id);
void change_free(struct change *c);

/* Deep copy. */
int change_clone(const struct change *c, struct change **out);

/* Setting a field that is already present replaces its value. limits may be
 * NULL (defaults). TLY_E_BAD_VALUE for a bad name, TLY_E_BAD_UTF8,
 * TLY_E_FIELD_TOO_LONG, TLY_E_TOO_MANY past max_fields. */
int change_set_text(struct change *c, const char *name, const char *text, size_t len,
		    const struct limits *l);
int change_set_int(struct change *c, const char *name, int64_t v, const struct limits *l);
int change_set_null(struct change *c, const char *name, const struct limits *l);

uint32_t change_schema(const struct change *c);
const char *change_site(const struct change *c);
uint64_t change_seq(const struct change *c);
uint64_t change_hlc(const struct change *c);
const char *change_kind(const struct change *c);
const char *change_id(const struct change *c);

/* The server-assigned ordering stamp; 0 when none was assigned. */
uint64_t change_eff(const struct change *c);
void change_set_eff(struct change *c, uint64_t eff);
/* eff if set, else hlc: the stamp the merge orders by. */
uint64_t change_stamp(const struct change *c);

/* Fields in canonical order (by name, bytewise). i < change_field_count. */
size_t change_field_count(const struct change *c);
void change_field_at(const struct change *c, size_t i, struct field_view *out);
/* Returns 1 and fills *out if the field is present, else 0. */
int change_field_get(const struct change *c, const char *name, struct field_view *out);

/* The chain links of a change, when known: `prev` is the hash of the
 * origin's previous change (all zero for seq 1), `hash` this change's own.
 * Decoders and chain_link fill them. NULL when not known. */
const uint8_t *change_prev(const struct change *c);
const uint8_t *change_hash(const struct change *c);
void change_set_links(struct change *c, const uint8_t prev[CHANGE_HASH_LEN],
		      const uint8_t hash[CHANGE_HASH_LEN]);

/* Appends the canonical byte encoding (PROTOCOL.md §Canonical encoding) to out.
 * eff and the links are not part of it. */
int change_encode_canonical(const struct change *c, struct buf *out);

/* Rebuilds a change from its canonical encoding (how a database stores it).
 * Strict: trailing bytes, unsorted or repeated field names, bad identifiers
 * or UTF-8 are errors. The result has no eff and no links. */
int change_decode_canonical(const void *bytes, size_t n, const struct limits *l,
			    struct change **out);

/* The one UTF-8 validator of Tally: TLY_OK if s[0..n) is well-formed UTF-8
 * (RFC 3629: no overlong forms, no surrogates D800-DFFF, nothing above
 * U+10FFFF) and holds no NUL byte, else TLY_E_BAD_UTF8. */
int change_check_utf8(const char *s, size_t n);

/* Identifier checks, exported for the decoders and the database layer.
 * Each returns TLY_OK or TLY_E_BAD_VALUE. */
int change_check_site(const char *s);
int change_check_kind(const char *s);
int change_check_id(const char *s);
int change_check_field_name(const char *s);

/* Returns 1 if two changes are equal in every hashed part (and eff). */
int change_equal(const struct change *a, const struct change *b);

#endif
