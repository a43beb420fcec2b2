/*
 * change — change records and their canonical encoding (PROTOCOL.md §2-§3).
 */
#include <stdlib.h>
#include <string.h>

#include "change.h"
#include "error.h"

struct field {
	char name[CHANGE_FIELD_NAME_MAX + 1];
	enum field_type type;
	int64_t i;
	char *text; /* FIELD_TEXT: owned, NUL-terminated */
	size_t len;
};

struct change {
	uint32_t schema;
	char site[CHANGE_SITE_MAX + 1];
	uint64_t seq;
	uint64_t hlc;
	uint64_t eff;
	char kind[CHANGE_KIND_MAX + 1];
	char id[CHANGE_ID_MAX + 1];
	struct field *fields; /* sorted by name, bytewise, no repeats */
	size_t nfields;
	size_t cap;
	int has_links;
	uint8_t prev[CHANGE_HASH_LEN];
	uint8_t hash[CHANGE_HASH_LEN];
};

/* The magic that opens every canonical encoding; it names the byte layout,
 * which is why the layout can never change under the same four bytes. */
static const char change_magic[4] = {'T', 'L', 'Y', 'C'};

/* ---- identifiers and UTF-8 ---------------------------------------------- */

int change_check_utf8(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		/* Hot on every received text (decode, rules, encode): ASCII
		 * without NUL is skipped eight bytes at a time. */
		while (n - i >= 8) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			if ((w & 0x8080808080808080ull) ||
			    ((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull))
				break; /* a byte >= 0x80, or a NUL: byte by byte below */
			i += 8;
		}
		if (i >= n)
			break;
		unsigned char c = s[i];
		if (c == 0)
			return TLY_E_BAD_UTF8; /* a NUL would truncate the value in C and SQLite */
		if (c < 0x80) {
			i++;
			continue;
		}
		/* Most Chinese text: leads E1-EC and EE-EF accept any two
		 * continuation bytes (the general rule below, without its
		 * range bookkeeping). */
		if (((c >= 0xE1 && c <= 0xEC) || c >= 0xEE) && c <= 0xEF && n - i >= 3 &&
		    (s[i + 1] & 0xC0) == 0x80 && (s[i + 2] & 0xC0) == 0x80) {
			i += 3;
			continue;
		}
		size_t extra;
		unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
		if (c >= 0xC2 && c <= 0xDF) {
			extra = 1;
		} else if (c >= 0xE0 && c <= 0xEF) {
			extra = 2;
			if (c == 0xE0)
				lo = 0xA0; /* below is an overlong 2-byte form */
			else if (c == 0xED)
				hi = 0x9F; /* above is a surrogate D800-DFFF */
		} else if (c >= 0xF0 && c <= 0xF4) {
			extra = 3;
			if (c == 0xF0)
				lo = 0x90; /* below is an overlong 3-byte form */
			else if (c == 0xF4)
				hi = 0x8F; /* above is past U+10FFFF */
		} else {
			/* 80-BF stray continuation, C0/C1 overlong, F5-FF out of range */
			return TLY_E_BAD_UTF8;
		}
		if (n - i - 1 < extra)
			return TLY_E_BAD_UTF8;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return TLY_E_BAD_UTF8;
		for (size_t k = 2; k <= extra; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return TLY_E_BAD_UTF8;
		}
		i += extra + 1;
	}
	return TLY_OK;
}

/* Checks that s is 1..max bytes, each accepted by ok(). first_ok, when not
 * NULL, constrains the first byte further. */
static int check_ident(const char *s, size_t max, int (*ok)(unsigned char),
		       int (*first_ok)(unsigned char))
{
	if (!s || !s[0])
		return TLY_E_BAD_VALUE;
	size_t i = 0;
	for (; s[i]; i++) {
		if (i >= max)
			return TLY_E_BAD_VALUE;
		unsigned char c = (unsigned char)s[i];
		if (!ok(c) || (i == 0 && first_ok && !first_ok(c)))
			return TLY_E_BAD_VALUE;
	}
	return TLY_OK;
}

/* Locale-free character classes: identifiers are ASCII by definition. */
static int is_lower(unsigned char c) { return c >= 'a' && c <= 'z'; }
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
static int site_ok(unsigned char c) { return is_lower(c) || is_digit(c) || c == '_' || c == '-'; }
static int kind_ok(unsigned char c) { return is_lower(c) || c == '_'; }
static int id_ok(unsigned char c)
{
	return is_lower(c) || is_upper(c) || is_digit(c) || c == '_' || c == '-';
}
static int field_ok(unsigned char c) { return is_lower(c) || is_digit(c) || c == '_'; }

int change_check_site(const char *s) { return check_ident(s, CHANGE_SITE_MAX, site_ok, NULL); }
int change_check_kind(const char *s) { return check_ident(s, CHANGE_KIND_MAX, kind_ok, NULL); }
int change_check_id(const char *s) { return check_ident(s, CHANGE_ID_MAX, id_ok, NULL); }
int change_check_field_name(const char *s)
{
	return check_ident(s, CHANGE_FIELD_NAME_MAX, field_ok, kind_ok);
}

/* ---- lifetime ------------------------------------------------------------ */

int change_new(struct change **out, uint32_t schema_version, const char *site, uint64_t seq,
	       uint64_t hlc, const char *kind, const char *id)
{
	*out = NULL;
	/* The canonical encoding carries the schema version in 16 bits. */
	if (schema_version == 0 || schema_version > 0xFFFF || seq == 0 || hlc == 0)
		return TLY_E_BAD_VALUE;
	if (change_check_site(site) != TLY_OK || change_check_kind(kind) != TLY_OK ||
	    change_check_id(id) != TLY_OK)
		return TLY_E_BAD_VALUE;

	struct change *c = calloc(1, sizeof *c);
	if (!c)
		return TLY_E_NOMEM;
	c->schema = schema_version;
	strcpy(c->site, site); /* lengths checked above */
	c->seq = seq;
	c->hlc = hlc;
	strcpy(c->kind, kind);
	strcpy(c->id, id);
	*out = c;
	return TLY_OK;
}

void change_free(struct change *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nfields; i++)
		free(c->fields[i].text);
	free(c->fields);
	free(c);
}

int change_clone(const struct change *c, struct change **out)
{
	struct change *d = NULL;
	int rc;

	*out = NULL;
	d = malloc(sizeof *d);
	if (!d) {
		rc = TLY_E_NOMEM;
		goto out;
	}
	*d = *c;
	d->fields = NULL;
	d->nfields = 0;
	d->cap = 0;
	if (c->nfields) {
		d->fields = calloc(c->nfields, sizeof *d->fields);
		if (!d->fields) {
			rc = TLY_E_NOMEM;
			goto out;
		}
		d->cap = c->nfields;
		for (size_t i = 0; i < c->nfields; i++) {
			d->fields[i] = c->fields[i];
			d->fields[i].text = NULL;
			if (c->fields[i].type == FIELD_TEXT) {
				d->fields[i].text = malloc(c->fields[i].len + 1);
				if (!d->fields[i].text) {
					rc = TLY_E_NOMEM;
					goto out;
				}
				memcpy(d->fields[i].text, c->fields[i].text, c->fields[i].len + 1);
			}
			d->nfields = i + 1;
		}
	}
	*out = d;
	d = NULL;
	rc = TLY_OK;
out:
	change_free(d);
	return rc;
}

/* ---- fields -------------------------------------------------------------- */

/* Binary search; returns 1 and the index if found, else 0 and the index
 * where the name would be inserted to keep the array sorted. */
static int field_find(const struct change *c, const char *name, size_t *at)
{
	size_t lo = 0, hi = c->nfields;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(c->fields[mid].name, name); /* strcmp compares as unsigned char */
		if (cmp == 0) {
			*at = mid;
			return 1;
		}
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*at = lo;
	return 0;
}

/* Sets a field from an already validated value. `text`, when given, is
 * owned by this function from the call on (stored or freed). */
static int field_put(struct change *c, const char *name, enum field_type type, int64_t i,
		     char *text, size_t len, const struct limits *l)
{
	size_t at;
	int rc;

	if (change_check_field_name(name) != TLY_OK) {
		rc = TLY_E_BAD_VALUE;
		goto out;
	}
	if (!field_find(c, name, &at)) {
		/* 0xFFFF: the field count is a u16 in the canonical encoding,
		 * whatever limits a caller configures. */
		if (c->nfields >= limits_or_default(l)->max_fields || c->nfields >= 0xFFFF) {
			rc = TLY_E_TOO_MANY;
			goto out;
		}
		if (c->nfields == c->cap) {
			size_t ncap = c->cap ? c->cap * 2 : 8;
			struct field *nf = realloc(c->fields, ncap * sizeof *nf);
			if (!nf) {
				rc = TLY_E_NOMEM;
				goto out;
			}
			c->fields = nf;
			c->cap = ncap;
		}
		memmove(&c->fields[at + 1], &c->fields[at], (c->nfields - at) * sizeof *c->fields);
		memset(&c->fields[at], 0, sizeof *c->fields);
		strcpy(c->fields[at].name, name);
		c->nfields++;
	}
	struct field *f = &c->fields[at];
	free(f->text);
	f->type = type;
	f->i = i;
	f->text = text;
	f->len = len;
	text = NULL;
	rc = TLY_OK;
out:
	free(text);
	return rc;
}

int change_set_text(struct change *c, const char *name, const char *text, size_t len,
		    const struct limits *l)
{
	/* UINT32_MAX: a text length is a u32 in the canonical encoding. */
	if (len > limits_or_default(l)->max_field_bytes || len > UINT32_MAX)
		return TLY_E_FIELD_TOO_LONG;
	int rc = change_check_utf8(text, len);
	if (rc != TLY_OK)
		return rc;
	char *copy = malloc(len + 1);
	if (!copy)
		return TLY_E_NOMEM;
	if (len)
		memcpy(copy, text, len);
	copy[len] = '\0';
	return field_put(c, name, FIELD_TEXT, 0, copy, len, l);
}

int change_set_int(struct change *c, const char *name, int64_t v, const struct limits *l)
{
	return field_put(c, name, FIELD_INT, v, NULL, 0, l);
}

int change_set_null(struct change *c, const char *name, const struct limits *l)
{
	return field_put(c, name, FIELD_NULL, 0, NULL, 0, l);
}

/* ---- accessors ----------------------------------------------------------- */

uint32_t change_schema(const struct change *c) { return c->schema; }
const char *change_site(const struct change *c) { return c->site; }
uint64_t change_seq(const struct change *c) { return c->seq; }
uint64_t change_hlc(const struct change *c) { return c->hlc; }
const char *change_kind(const struct change *c) { return c->kind; }
const char *change_id(const struct change *c) { return c->id; }
uint64_t change_eff(const struct change *c) { return c->eff; }
void change_set_eff(struct change *c, uint64_t eff) { c->eff = eff; }
uint64_t change_stamp(const struct change *c) { return c->eff ? c->eff : c->hlc; }
size_t change_field_count(const struct change *c) { return c->nfields; }

static void field_view_of(const struct field *f, struct field_view *out)
{
	out->name = f->name;
	out->type = f->type;
	out->i = f->type == FIELD_INT ? f->i : 0;
	out->text = f->type == FIELD_TEXT ? f->text : NULL;
	out->len = f->type == FIELD_TEXT ? f->len : 0;
}

void change_field_at(const struct change *c, size_t i, struct field_view *out)
{
	field_view_of(&c->fields[i], out);
}

int change_field_get(const struct change *c, const char *name, struct field_view *out)
{
	size_t at;
	if (!field_find(c, name, &at))
		return 0;
	field_view_of(&c->fields[at], out);
	return 1;
}

const uint8_t *change_prev(const struct change *c) { return c->has_links ? c->prev : NULL; }
const uint8_t *change_hash(const struct change *c) { return c->has_links ? c->hash : NULL; }

void change_set_links(struct change *c, const uint8_t prev[CHANGE_HASH_LEN],
		      const uint8_t hash[CHANGE_HASH_LEN])
{
	memcpy(c->prev, prev, CHANGE_HASH_LEN);
	memcpy(c->hash, hash, CHANGE_HASH_LEN);
	c->has_links = 1;
}

int change_equal(const struct change *a, const struct change *b)
{
	if (a->schema != b->schema || a->seq != b->seq || a->hlc != b->hlc || a->eff != b->eff ||
	    strcmp(a->site, b->site) || strcmp(a->kind, b->kind) || strcmp(a->id, b->id) ||
	    a->nfields != b->nfields)
		return 0;
	for (size_t i = 0; i < a->nfields; i++) {
		const struct field *x = &a->fields[i], *y = &b->fields[i];
		if (strcmp(x->name, y->name) || x->type != y->type)
			return 0;
		if (x->type == FIELD_INT && x->i != y->i)
			return 0;
		if (x->type == FIELD_TEXT &&
		    (x->len != y->len || memcmp(x->text, y->text, x->len) != 0))
			return 0;
	}
	return 1;
}

/* ---- canonical encoding ---------------------------------------------------- */

/* Big-endian, fixed width: the bytes are the same on every machine, which
 * is what makes the hash of a change the same on every machine. */
static void put_be(uint8_t *p, uint64_t v, int width)
{
	for (int k = width - 1; k >= 0; k--) {
		p[k] = (uint8_t)(v & 0xFF);
		v >>= 8;
	}
}

static int enc_uint(struct buf *out, uint64_t v, int width)
{
	uint8_t b[8];
	put_be(b, v, width);
	return buf_add(out, b, (size_t)width);
}

/* A short string: u16 length, then the bytes. */
static int enc_str(struct buf *out, const char *s)
{
	size_t n = strlen(s);
	int rc = enc_uint(out, n, 2);
	return rc != TLY_OK ? rc : buf_add(out, s, n);
}

int change_encode_canonical(const struct change *c, struct buf *out)
{
	/* On error, put the buffer back as it was: callers append into shared
	 * buffers and must not see half a record. */
	size_t mark = out->len;
	int rc;

	if ((rc = buf_add(out, change_magic, sizeof change_magic)) != TLY_OK ||
	    (rc = enc_uint(out, c->schema, 2)) != TLY_OK || (rc = enc_str(out, c->site)) != TLY_OK ||
	    (rc = enc_uint(out, c->seq, 8)) != TLY_OK || (rc = enc_uint(out, c->hlc, 8)) != TLY_OK ||
	    (rc = enc_str(out, c->kind)) != TLY_OK || (rc = enc_str(out, c->id)) != TLY_OK ||
	    (rc = enc_uint(out, c->nfields, 2)) != TLY_OK)
		goto out;
	for (size_t i = 0; i < c->nfields; i++) {
		const struct field *f = &c->fields[i];
		if ((rc = enc_str(out, f->name)) != TLY_OK ||
		    (rc = enc_uint(out, (uint64_t)f->type, 1)) != TLY_OK)
			goto out;
		if (f->type == FIELD_INT)
			rc = enc_uint(out, (uint64_t)f->i, 8); /* two's complement */
		else if (f->type == FIELD_TEXT) {
			if ((rc = enc_uint(out, f->len, 4)) == TLY_OK)
				rc = buf_add(out, f->text, f->len);
		}
		if (rc != TLY_OK)
			goto out;
	}
	rc = TLY_OK;
out:
	if (rc != TLY_OK) {
		out->len = mark;
		if (out->data)
			out->data[mark] = '\0';
	}
	return rc;
}

/* A bounded reader: every take checks the remaining length first, so no
 * length read from the input can move the cursor past the end. */
struct reader {
	const uint8_t *p;
	size_t left;
};

static int rd_uint(struct reader *r, int width, uint64_t *v)
{
	if (r->left < (size_t)width)
		return TLY_E_BAD_VALUE;
	uint64_t x = 0;
	for (int k = 0; k < width; k++)
		x = (x << 8) | r->p[k];
	r->p += width;
	r->left -= (size_t)width;
	*v = x;
	return TLY_OK;
}

/* Reads a u16-prefixed identifier into out (size max + 1), refusing a
 * declared length over max before looking at the bytes. */
static int rd_ident(struct reader *r, char *out, size_t max)
{
	uint64_t n;
	int rc = rd_uint(r, 2, &n);
	if (rc != TLY_OK)
		return rc;
	if (n == 0 || n > max || n > r->left)
		return TLY_E_BAD_VALUE;
	memcpy(out, r->p, n);
	out[n] = '\0';
	r->p += n;
	r->left -= n;
	/* An embedded NUL makes strlen(out) < n; the caller's syntax check then
	 * sees a different string, so catch it here. */
	if (strlen(out) != n)
		return TLY_E_BAD_VALUE;
	return TLY_OK;
}

int change_decode_canonical(const void *bytes, size_t n, const struct limits *l,
			    struct change **out)
{
	const struct limits *lim = limits_or_default(l);
	struct reader r = {bytes, n};
	struct change *c = NULL;
	char site[CHANGE_SITE_MAX + 1], kind[CHANGE_KIND_MAX + 1], id[CHANGE_ID_MAX + 1];
	char name[CHANGE_FIELD_NAME_MAX + 1], last[CHANGE_FIELD_NAME_MAX + 1] = "";
	uint64_t schema, seq, hlc, nfields;
	int rc;

	*out = NULL;
	if (n < sizeof change_magic || memcmp(bytes, change_magic, sizeof change_magic) != 0) {
		rc = TLY_E_BAD_VALUE;
		goto out;
	}
	r.p += sizeof change_magic;
	r.left -= sizeof change_magic;

	if ((rc = rd_uint(&r, 2, &schema)) != TLY_OK ||
	    (rc = rd_ident(&r, site, CHANGE_SITE_MAX)) != TLY_OK ||
	    (rc = rd_uint(&r, 8, &seq)) != TLY_OK || (rc = rd_uint(&r, 8, &hlc)) != TLY_OK ||
	    (rc = rd_ident(&r, kind, CHANGE_KIND_MAX)) != TLY_OK ||
	    (rc = rd_ident(&r, id, CHANGE_ID_MAX)) != TLY_OK ||
	    (rc = rd_uint(&r, 2, &nfields)) != TLY_OK)
		goto out;
	if (nfields > lim->max_fields) {
		rc = TLY_E_TOO_MANY;
		goto out;
	}
	if ((rc = change_new(&c, (uint32_t)schema, site, seq, hlc, kind, id)) != TLY_OK)
		goto out;

	for (uint64_t k = 0; k < nfields; k++) {
		uint64_t type, v;
		if ((rc = rd_ident(&r, name, CHANGE_FIELD_NAME_MAX)) != TLY_OK ||
		    (rc = change_check_field_name(name)) != TLY_OK)
			goto out;
		/* Strictly ascending: one encoding per change, so equal changes
		 * always hash equal and a repeated name cannot smuggle a value. */
		if (k > 0 && strcmp(last, name) >= 0) {
			rc = TLY_E_BAD_VALUE;
			goto out;
		}
		strcpy(last, name);
		if ((rc = rd_uint(&r, 1, &type)) != TLY_OK)
			goto out;
		switch (type) {
		case FIELD_NULL:
			rc = change_set_null(c, name, lim);
			break;
		case FIELD_INT:
			if ((rc = rd_uint(&r, 8, &v)) == TLY_OK)
				rc = change_set_int(c, name, (int64_t)v, lim);
			break;
		case FIELD_TEXT:
			if ((rc = rd_uint(&r, 4, &v)) != TLY_OK)
				break;
			if (v > lim->max_field_bytes) {
				rc = TLY_E_FIELD_TOO_LONG;
				break;
			}
			if (v > r.left) {
				rc = TLY_E_BAD_VALUE;
				break;
			}
			rc = change_set_text(c, name, (const char *)r.p, (size_t)v, lim);
			r.p += v;
			r.left -= (size_t)v;
			break;
		default:
			rc = TLY_E_BAD_VALUE;
			break;
		}
		if (rc != TLY_OK)
			goto out;
	}
	if (r.left != 0) {
		rc = TLY_E_BAD_VALUE; /* trailing bytes would give one change two encodings */
		goto out;
	}
	*out = c;
	c = NULL;
	rc = TLY_OK;
out:
	change_free(c);
	return rc;
}
