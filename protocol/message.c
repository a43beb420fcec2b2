/*
 * message — the protocol messages on the wire (see message.h and
 * PROTOCOL.md §7, §9).
 *
 * Decoding is three gates, cheapest first: the size against
 * max_inflated_bytes, jsoncheck_scan (depth, counts, string sizes, UTF-8,
 * syntax, in constant memory), and only then a parser. The small messages
 * go to jansson, which builds a tree whose size the scan has bounded, read
 * strictly: version first, then type, then unknown members, then each
 * member in the order the spec lists them. push and pull_answer, which
 * carry the changes, are read once from the bytes by jsonpull, with the
 * same checks in the same order (see "straight from the bytes" below).
 *
 * Encoding writes the bytes directly rather than through a jansson tree:
 * the member order and number format are then fixed by this file alone,
 * which is what keeps tests/vectors/ byte-exact, and nothing is allocated
 * per value.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chain.h"
#include "change.h"
#include "error.h"
#include "jsoncheck.h"
#include "jsonpull.h"
#include "message.h"

#define MSG_CODE_MAX 64 /* an error code name: 1-64 bytes of [a-z0-9_] */

/* ======================================================================
 * Encoding
 * ====================================================================== */

/* A writer with a sticky error, so a message is a flat list of puts and
 * one check at the end. */
struct jw {
	struct buf *b;
	int rc;
};

static void jw_raw(struct jw *w, const char *s, size_t n)
{
	if (w->rc == TLY_OK)
		w->rc = buf_add(w->b, s, n);
}

static void jw_lit(struct jw *w, const char *s)
{
	jw_raw(w, s, strlen(s));
}

static void jw_digits(struct jw *w, uint64_t u)
{
	char tmp[24];
	size_t k = sizeof tmp;
	do {
		tmp[--k] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	jw_raw(w, tmp + k, sizeof tmp - k);
}

static void jw_u64(struct jw *w, uint64_t v)
{
	/* JSON integers on the wire are int64 (jansson reads nothing wider). */
	if (v > INT64_MAX) {
		if (w->rc == TLY_OK)
			w->rc = TLY_E_BAD_VALUE;
		return;
	}
	jw_digits(w, v);
}

static void jw_i64(struct jw *w, int64_t v)
{
	if (v < 0) {
		jw_raw(w, "-", 1);
		jw_digits(w, (uint64_t)(-(v + 1)) + 1); /* -(v + 1) + 1: INT64_MIN too */
	} else {
		jw_digits(w, (uint64_t)v);
	}
}

/* A JSON string of s[0..n), which must already be valid UTF-8 without NUL.
 * Only '"', '\\' and control bytes are escaped: everything else, Chinese
 * included, goes out as its UTF-8 bytes (one form per string, so the
 * vectors are byte-exact and Chinese costs 3 bytes, not 6). */
static void jw_str(struct jw *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0;

	jw_raw(w, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		jw_raw(w, s + run, i - run);
		run = i + 1;
		char esc[6] = {'\\', 0, 0, 0, 0, 0};
		size_t elen = 2;
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xF];
			elen = 6;
			break;
		}
		jw_raw(w, esc, elen);
	}
	jw_raw(w, s + run, n - run);
	jw_raw(w, "\"", 1);
}

/* A string that did not come through change_set_text (reasons, messages):
 * validated here, so an encoder never emits what a decoder must refuse. */
static void jw_checked_str(struct jw *w, const char *s, size_t max)
{
	size_t n = strlen(s);
	if (w->rc != TLY_OK)
		return;
	if (n > max) {
		w->rc = TLY_E_FIELD_TOO_LONG;
		return;
	}
	if ((w->rc = change_check_utf8(s, n)) != TLY_OK)
		return;
	jw_str(w, s, n);
}

static void jw_hash(struct jw *w, const uint8_t h[CHANGE_HASH_LEN])
{
	char hex[2 * CHANGE_HASH_LEN + 1];
	chain_hex(h, hex);
	jw_str(w, hex, 2 * CHANGE_HASH_LEN);
}

static int epoch_ok(const char *e, int may_be_empty)
{
	size_t n = strlen(e);
	if (n == 0)
		return may_be_empty;
	if (n > MSG_EPOCH_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!((e[i] >= '0' && e[i] <= '9') || (e[i] >= 'a' && e[i] <= 'z')))
			return 0;
	}
	return 1;
}

static int code_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > MSG_CODE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
			return 0;
	}
	return 1;
}

static void jw_epoch(struct jw *w, const char *e, int may_be_empty)
{
	if (w->rc == TLY_OK && !epoch_ok(e, may_be_empty))
		w->rc = TLY_E_BAD_VALUE;
	jw_str(w, e, strlen(e));
}

/* {"site":..,"seq":..,"prev":..,"hlc":..,"eff":..,"sv":..,"kind":..,"id":..,"fields":{..}}
 * site only in pull answers (with_site); prev only when given. */
static void jw_change(struct jw *w, const struct change *c, int with_site, const uint8_t *prev)
{
	struct field_view f;

	jw_raw(w, "{", 1);
	if (with_site) {
		jw_lit(w, "\"site\":");
		jw_str(w, change_site(c), strlen(change_site(c)));
		jw_raw(w, ",", 1);
	}
	jw_lit(w, "\"seq\":");
	jw_u64(w, change_seq(c));
	if (prev) {
		jw_lit(w, ",\"prev\":");
		jw_hash(w, prev);
	}
	jw_lit(w, ",\"hlc\":");
	jw_u64(w, change_hlc(c));
	if (change_eff(c)) {
		jw_lit(w, ",\"eff\":");
		jw_u64(w, change_eff(c));
	}
	jw_lit(w, ",\"sv\":");
	jw_u64(w, change_schema(c));
	jw_lit(w, ",\"kind\":");
	jw_str(w, change_kind(c), strlen(change_kind(c)));
	jw_lit(w, ",\"id\":");
	jw_str(w, change_id(c), strlen(change_id(c)));
	jw_lit(w, ",\"fields\":{");
	for (size_t i = 0; i < change_field_count(c); i++) {
		change_field_at(c, i, &f);
		if (i)
			jw_raw(w, ",", 1);
		jw_str(w, f.name, strlen(f.name));
		jw_raw(w, ":", 1);
		if (f.type == FIELD_TEXT)
			jw_str(w, f.text, f.len);
		else if (f.type == FIELD_INT)
			jw_i64(w, f.i);
		else
			jw_lit(w, "null");
	}
	jw_lit(w, "}}");
}

/*
 * Runs an encoder body all-or-nothing: into out directly when it is empty
 * (reset on failure), else into a scratch buffer capped at out's free room
 * and appended once, so a caller's earlier bytes are never followed by half
 * a message.
 */
struct enc {
	struct buf *out;
	struct buf tmp;
	struct jw w;
};

static void enc_begin(struct enc *e, struct buf *out, const char *type)
{
	e->out = out;
	buf_init(&e->tmp, out->max - out->len);
	e->w.b = out->len == 0 ? out : &e->tmp;
	e->w.rc = TLY_OK;
	jw_lit(&e->w, "{\"v\":1,\"type\":\"");
	jw_lit(&e->w, type);
	jw_raw(&e->w, "\"", 1);
}

static int enc_end(struct enc *e)
{
	int rc;
	jw_raw(&e->w, "}", 1);
	rc = e->w.rc;
	if (e->w.b == e->out) {
		if (rc != TLY_OK)
			buf_reset(e->out);
	} else if (rc == TLY_OK) {
		rc = buf_add(e->out, e->tmp.data, e->tmp.len);
	}
	buf_free(&e->tmp);
	return rc;
}

int msg_encode_push(const struct msg_push *m, struct buf *out)
{
	struct enc e;

	/* Refuse to send what the receiver must refuse: one site, consecutive
	 * seqs, at least one change. The hashes are the caller's (chain_link_run). */
	if (m->n == 0 || change_check_site(m->site) != TLY_OK)
		return TLY_E_BAD_VALUE;
	for (size_t i = 0; i < m->n; i++) {
		if (strcmp(change_site(m->changes[i]), m->site) != 0)
			return TLY_E_SITE_MISMATCH;
		if (i > 0 && change_seq(m->changes[i]) != change_seq(m->changes[i - 1]) + 1)
			return TLY_E_SEQ_ORDER;
	}

	enc_begin(&e, out, "push");
	jw_lit(&e.w, ",\"site\":");
	jw_str(&e.w, m->site, strlen(m->site));
	jw_lit(&e.w, ",\"prev\":");
	jw_hash(&e.w, m->prev);
	jw_lit(&e.w, ",\"head\":");
	jw_hash(&e.w, m->head);
	jw_lit(&e.w, ",\"device_ms\":");
	jw_u64(&e.w, m->device_ms);
	if (m->queue >= 0) {
		jw_lit(&e.w, ",\"queue\":");
		jw_i64(&e.w, m->queue);
	}
	jw_lit(&e.w, ",\"changes\":[");
	for (size_t i = 0; i < m->n; i++) {
		if (i)
			jw_raw(&e.w, ",", 1);
		jw_change(&e.w, m->changes[i], 0, NULL);
	}
	jw_raw(&e.w, "]", 1);
	return enc_end(&e);
}

static const char *push_status_name(enum push_status s)
{
	switch (s) {
	case PUSH_APPLIED: return "applied";
	case PUSH_DUPLICATE: return "duplicate";
	case PUSH_REJECTED: return "rejected";
	}
	return NULL;
}

int msg_encode_push_answer(const struct msg_push_answer *m, struct buf *out)
{
	struct enc e;

	if (m->expected && m->n)
		return TLY_E_BAD_VALUE; /* a seq_gap answer applied nothing */
	enc_begin(&e, out, "push_answer");
	jw_lit(&e.w, ",\"epoch\":");
	jw_epoch(&e.w, m->epoch, 0);
	jw_lit(&e.w, ",\"server_ms\":");
	jw_u64(&e.w, m->server_ms);
	jw_lit(&e.w, ",\"offset_ms\":");
	jw_i64(&e.w, m->offset_ms);
	jw_lit(&e.w, ",\"acked\":");
	jw_u64(&e.w, m->acked);
	if (m->expected) {
		jw_lit(&e.w, ",\"expected\":");
		jw_u64(&e.w, m->expected);
	}
	jw_lit(&e.w, ",\"results\":[");
	for (size_t i = 0; i < m->n; i++) {
		const struct push_result *r = &m->results[i];
		const char *status = push_status_name(r->status);
		if (!status || r->seq == 0 ||
		    (r->status == PUSH_REJECTED && (r->code <= TLY_OK || r->code >= TLY_E__COUNT))) {
			if (e.w.rc == TLY_OK)
				e.w.rc = TLY_E_BAD_VALUE;
			break;
		}
		jw_lit(&e.w, i ? ",{\"seq\":" : "{\"seq\":");
		jw_u64(&e.w, r->seq);
		jw_lit(&e.w, ",\"status\":\"");
		jw_lit(&e.w, status);
		jw_raw(&e.w, "\"", 1);
		if (r->status == PUSH_REJECTED) {
			jw_lit(&e.w, ",\"code\":\"");
			jw_lit(&e.w, error_name(r->code));
			jw_lit(&e.w, "\",\"reason\":");
			jw_checked_str(&e.w, r->reason ? r->reason : error_text_zh(r->code),
				       MSG_REASON_MAX);
		}
		if (r->eff) {
			jw_lit(&e.w, ",\"eff\":");
			jw_u64(&e.w, r->eff);
		}
		jw_raw(&e.w, "}", 1);
	}
	jw_raw(&e.w, "]", 1);
	return enc_end(&e);
}

int msg_encode_pull(const struct msg_pull *m, struct buf *out)
{
	struct enc e;

	if (m->limit == 0)
		return TLY_E_BAD_VALUE;
	enc_begin(&e, out, "pull");
	jw_lit(&e.w, ",\"epoch\":");
	jw_epoch(&e.w, m->epoch, 1);
	jw_lit(&e.w, ",\"cursor\":");
	jw_u64(&e.w, m->cursor);
	jw_lit(&e.w, ",\"limit\":");
	jw_u64(&e.w, m->limit);
	return enc_end(&e);
}

int msg_encode_pull_answer(const struct msg_pull_answer *m, struct buf *out)
{
	struct enc e;

	enc_begin(&e, out, "pull_answer");
	jw_lit(&e.w, ",\"epoch\":");
	jw_epoch(&e.w, m->epoch, 0);
	jw_lit(&e.w, ",\"server_ms\":");
	jw_u64(&e.w, m->server_ms);
	jw_lit(&e.w, ",\"next\":");
	jw_u64(&e.w, m->next);
	jw_lit(&e.w, m->more ? ",\"more\":true" : ",\"more\":false");
	jw_lit(&e.w, ",\"changes\":[");
	for (size_t i = 0; i < m->n; i++) {
		const struct change *c = m->changes[i];
		const struct change *b = i ? m->changes[i - 1] : NULL;
		const uint8_t *prev = change_prev(c);
		if (!prev || !change_hash(c)) {
			/* The server stores every change with its links; one without
			 * them here is a bug in the caller, not bad input. */
			if (e.w.rc == TLY_OK)
				e.w.rc = TLY_E_INTERNAL;
			break;
		}
		/* prev is implied when the change directly follows its
		 * predecessor in the page; only then may it be left out. */
		int implied = b && strcmp(change_site(b), change_site(c)) == 0 &&
			      change_seq(c) == change_seq(b) + 1 &&
			      memcmp(change_hash(b), prev, CHANGE_HASH_LEN) == 0;
		if (i)
			jw_raw(&e.w, ",", 1);
		jw_change(&e.w, c, 1, implied ? NULL : prev);
	}
	jw_raw(&e.w, "]", 1);
	return enc_end(&e);
}

int msg_encode_error(const struct msg_error *m, struct buf *out)
{
	struct enc e;
	const char *name = m->code_name ? m->code_name : error_name(m->code);
	const char *text = m->message ? m->message : error_text_zh(m->code);

	if (!code_name_ok(name, strlen(name)) || strcmp(name, "ok") == 0)
		return TLY_E_BAD_VALUE;
	enc_begin(&e, out, "error");
	jw_lit(&e.w, ",\"code\":");
	jw_str(&e.w, name, strlen(name));
	jw_lit(&e.w, ",\"message\":");
	jw_checked_str(&e.w, text, MSG_REASON_MAX);
	if (m->expected) {
		jw_lit(&e.w, ",\"expected\":");
		jw_u64(&e.w, m->expected);
	}
	if (m->retry_after) {
		jw_lit(&e.w, ",\"retry_after\":");
		jw_u64(&e.w, m->retry_after);
	}
	if (m->version) {
		jw_lit(&e.w, ",\"version\":");
		jw_u64(&e.w, m->version);
	}
	return enc_end(&e);
}

/* ======================================================================
 * Decoding
 * ====================================================================== */

/*
 * A member's value as the checks below see it, whichever reader found it:
 * jansson's tree (the small messages) or jsonpull (push, pull_answer). One
 * set of checks serves both, so the readers cannot drift apart on what a
 * member may hold or which code refuses it.
 */
enum mval_type {
	MV_ABSENT = 0,
	MV_INT,
	MV_STRING,
	MV_BOOL,
	MV_OTHER, /* a real, null, an array, an object */
};

struct mval {
	enum mval_type type;
	int64_t i;             /* MV_INT; MV_BOOL: 1 for true */
	struct jsonpull_str s; /* MV_STRING as written; jansson's: its value, not escaped */
	size_t n;              /* MV_STRING: bytes of its value */
};

static void mval_of_json(json_t *o, const char *name, struct mval *v)
{
	json_t *j = json_object_get(o, name);

	memset(v, 0, sizeof *v);
	if (!j)
		return;
	switch (json_typeof(j)) {
	case JSON_INTEGER:
		v->type = MV_INT;
		v->i = (int64_t)json_integer_value(j);
		break;
	case JSON_STRING:
		v->type = MV_STRING;
		v->s.raw = json_string_value(j);
		v->s.raw_len = v->n = json_string_length(j);
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		v->type = MV_BOOL;
		v->i = json_is_true(j);
		break;
	default:
		v->type = MV_OTHER;
		break;
	}
}

static void mval_of_pull(const struct jsonpull_value *pv, struct mval *v)
{
	memset(v, 0, sizeof *v);
	switch (pv->type) {
	case JSONPULL_INT:
		v->type = MV_INT;
		v->i = pv->i;
		break;
	case JSONPULL_STRING:
		v->type = MV_STRING;
		v->s = pv->s;
		v->n = pv->s.escaped ? jsonpull_str_copy(&pv->s, NULL, 0) : pv->s.raw_len;
		break;
	case JSONPULL_TRUE:
	case JSONPULL_FALSE:
		v->type = MV_BOOL;
		v->i = pv->type == JSONPULL_TRUE;
		break;
	default:
		v->type = MV_OTHER;
		break;
	}
}

/* An integer in [min, max]. When optional and absent, *present is 0 and
 * *out untouched. */
static int val_int(const struct mval *v, int required, int64_t min, int64_t max, int64_t *out,
		   int *present)
{
	if (present)
		*present = v->type != MV_ABSENT;
	if (v->type == MV_ABSENT)
		return required ? TLY_E_MISSING_FIELD : TLY_OK;
	if (v->type != MV_INT)
		return TLY_E_BAD_TYPE;
	if (v->i < min || v->i > max)
		return TLY_E_BAD_VALUE;
	*out = v->i;
	return TLY_OK;
}

static int val_u64(const struct mval *v, int required, int64_t min, uint64_t *out)
{
	int64_t x;
	int present;
	int rc = val_int(v, required, min, INT64_MAX, &x, &present);
	if (rc == TLY_OK && present)
		*out = (uint64_t)x;
	return rc;
}

/* A string of at most max bytes (FIELD_TOO_LONG past it); TLY_OK when
 * optional and absent. */
static int val_str(const struct mval *v, int required, size_t max)
{
	if (v->type == MV_ABSENT)
		return required ? TLY_E_MISSING_FIELD : TLY_OK;
	if (v->type != MV_STRING)
		return TLY_E_BAD_TYPE;
	return v->n > max ? TLY_E_FIELD_TOO_LONG : TLY_OK;
}

/* The string's value into dst (room for n + 1 bytes), NUL-terminated; 0
 * when it holds a NUL. jansson keeps \u0000 only with JSON_ALLOW_NUL,
 * which we never set, and the scan refuses it: this is the last guard. */
static int val_copy(const struct mval *v, char *dst)
{
	jsonpull_str_copy(&v->s, dst, v->n);
	dst[v->n] = '\0';
	return strlen(dst) == v->n;
}

/* A string equal to lit (a short word such as a status). */
static int val_equals(const struct mval *v, const char *lit)
{
	char tmp[16];
	size_t n = strlen(lit);
	return v->n == n && n < sizeof tmp && val_copy(v, tmp) && memcmp(tmp, lit, n) == 0;
}

/* An identifier-like string: at most max_string_bytes, then its syntax. */
static int val_ident(const struct mval *v, const struct limits *l, size_t max,
		     int (*check)(const char *), char *dst)
{
	int rc = val_str(v, 1, l->max_string_bytes);
	if (rc != TLY_OK)
		return rc;
	if (v->n > max || !val_copy(v, dst) || check(dst) != TLY_OK)
		return TLY_E_BAD_VALUE;
	return TLY_OK;
}

/* *present is 1 only for a hash string within max_string_bytes. */
static int val_hash(const struct mval *v, const struct limits *l, int required,
		    uint8_t out[CHANGE_HASH_LEN], int *present)
{
	char hex[2 * CHANGE_HASH_LEN + 1];
	int rc = val_str(v, required, l->max_string_bytes);
	if (present)
		*present = rc == TLY_OK && v->type != MV_ABSENT;
	if (rc != TLY_OK || v->type == MV_ABSENT)
		return rc;
	/* Writers send lowercase; readers take either case (PROTOCOL.md §3):
	 * the bytes, not their spelling, are hashed and compared. */
	if (v->n != 2 * CHANGE_HASH_LEN || !val_copy(v, hex))
		return TLY_E_BAD_VALUE;
	return chain_unhex(hex, out);
}

static int val_epoch(const struct mval *v, const struct limits *l, int may_be_empty, char *dst)
{
	int rc = val_str(v, 1, l->max_string_bytes);
	if (rc != TLY_OK)
		return rc;
	if (v->n > MSG_EPOCH_MAX || !val_copy(v, dst) || !epoch_ok(dst, may_be_empty))
		return TLY_E_BAD_VALUE;
	return TLY_OK;
}

/* An error code name as received (into name, MSG_CODE_MAX + 1 bytes):
 * syntax, and "ok" is no error. */
static int val_code(const struct mval *v, const struct limits *l, char *name, int *code)
{
	int rc = val_str(v, 1, l->max_string_bytes);
	if (rc != TLY_OK)
		return rc;
	if (v->n > MSG_CODE_MAX || !val_copy(v, name) || !code_name_ok(name, v->n) ||
	    strcmp(name, "ok") == 0)
		return TLY_E_BAD_VALUE;
	*code = error_from_name(name);
	return TLY_OK;
}

/* A reason or message, copied into *out (owned by the caller). */
static int val_reason(const struct mval *v, const struct limits *l, char **out)
{
	size_t max = l->max_string_bytes < MSG_REASON_MAX ? l->max_string_bytes : MSG_REASON_MAX;
	int rc = val_str(v, 1, max);
	char *s;
	if (rc != TLY_OK)
		return rc;
	s = malloc(v->n + 1);
	if (!s)
		return TLY_E_NOMEM;
	if (!val_copy(v, s)) {
		free(s);
		return TLY_E_BAD_UTF8;
	}
	*out = s;
	return TLY_OK;
}

static const char *const msg_type_names[] = {
	[MSG_PUSH] = "push",
	[MSG_PUSH_ANSWER] = "push_answer",
	[MSG_PULL] = "pull",
	[MSG_PULL_ANSWER] = "pull_answer",
	[MSG_ERROR] = "error",
};

/* "v" then "type", before anything else is looked at, so a peer speaking
 * another version gets version_unsupported whatever else it sent. */
static int head_check(const struct mval *v, const struct mval *t, uint32_t *version,
		      enum msg_type *type)
{
	if (v->type == MV_ABSENT)
		return TLY_E_MISSING_FIELD;
	if (v->type != MV_INT)
		return TLY_E_BAD_TYPE;
	if (version)
		*version = v->i < 0 ? 0 : v->i > UINT32_MAX ? UINT32_MAX : (uint32_t)v->i;
	if (v->i != PROTOCOL_VERSION)
		return TLY_E_VERSION;
	if (t->type == MV_ABSENT)
		return TLY_E_MISSING_FIELD;
	if (t->type != MV_STRING)
		return TLY_E_BAD_TYPE;
	for (size_t k = MSG_PUSH; k <= MSG_ERROR; k++) {
		if (val_equals(t, msg_type_names[k])) {
			if (type)
				*type = (enum msg_type)k;
			return TLY_OK;
		}
	}
	return TLY_E_BAD_MSG_TYPE;
}

/* The first two gates, for both readers: the size, then the scan. */
static int msg_scan(const char *json, size_t n, const struct limits *l,
		    struct jsoncheck_stats *stats)
{
	if (n > l->max_inflated_bytes)
		return TLY_E_TOO_LARGE;
	/* Before any parser sees a byte: jansson would build the whole tree
	 * (and recurse once per nesting level) before we could count
	 * anything. */
	return jsoncheck_scan_stats(json, n, l, stats);
}

/* ---- the small messages, from jansson's tree ------------------------------ */

static size_t int_digits(json_int_t v)
{
	size_t k = v < 0 ? 2 : 1; /* sign and the last digit */
	while (v <= -10 || v >= 10) {
		v /= 10;
		k++;
	}
	return k;
}

/* Adds up what jansson built, for comparing with the scan. Recursion is
 * bounded: the scan refused anything deeper than 64. */
static void tree_stats(json_t *j, struct jsoncheck_stats *st)
{
	const char *key;
	json_t *v;
	size_t i;

	st->values++;
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		json_object_foreach(j, key, v) {
			st->string_bytes += strlen(key); /* \u0000 was refused, so no NUL inside */
			tree_stats(v, st);
		}
		break;
	case JSON_ARRAY:
		json_array_foreach(j, i, v)
			tree_stats(v, st);
		break;
	case JSON_STRING:
		st->string_bytes += json_string_length(j);
		break;
	case JSON_INTEGER:
		st->int_digits += int_digits(json_integer_value(j));
		break;
	case JSON_REAL:
		st->reals++;
		break;
	default:
		break;
	}
}

static int msg_parse(const char *json, size_t n, const struct limits *l, json_t **out)
{
	struct jsoncheck_stats want, got;
	json_error_t err;
	json_t *j = NULL;
	int rc;

	*out = NULL;
	if ((rc = msg_scan(json, n, l, &want)) != TLY_OK)
		goto out;
	/* jansson leaves err untouched on some allocation failures. */
	memset(&err, 0, sizeof err);
	j = json_loadb(json, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
	if (!j) {
		switch (json_error_code(&err)) {
		case json_error_duplicate_key:
			rc = TLY_E_DUP_KEY;
			break;
		case json_error_out_of_memory:
			rc = TLY_E_NOMEM;
			break;
		case json_error_numeric_overflow:
			/* Well-formed JSON whose number does not fit int64 (or a
			 * double): a value out of range, like a negative seq. */
			rc = TLY_E_BAD_VALUE;
			break;
		default:
			/* After the scan passed, in practice an allocation failure
			 * that jansson reports as a syntax error. */
			rc = TLY_E_BAD_JSON;
			break;
		}
		goto out;
	}
	/* See jsoncheck.h: a tree that does not add up lost bytes to a failed
	 * allocation inside jansson. */
	memset(&got, 0, sizeof got);
	tree_stats(j, &got);
	if (memcmp(&got, &want, sizeof got) != 0) {
		rc = TLY_E_NOMEM;
		goto out;
	}
	if (!json_is_object(j)) {
		rc = TLY_E_BAD_TYPE;
		goto out;
	}
	*out = j;
	j = NULL;
	rc = TLY_OK;
out:
	json_decref(j);
	return rc;
}

static int msg_head(json_t *root, uint32_t *version, enum msg_type *type)
{
	struct mval v, t;
	mval_of_json(root, "v", &v);
	mval_of_json(root, "type", &t);
	return head_check(&v, &t, version, type);
}

/* Every member of o must be one of names[] (NULL-terminated). */
static int only_members(json_t *o, const char *const *names)
{
	const char *key;
	json_t *val;

	json_object_foreach(o, key, val) {
		size_t k = 0;
		while (names[k] && strcmp(names[k], key) != 0)
			k++;
		if (!names[k])
			return TLY_E_UNKNOWN_FIELD;
	}
	return TLY_OK;
}

/* Parses, checks version and type and the member names of the top object. */
static int msg_open(const char *json, size_t n, const struct limits *l, enum msg_type want,
		    const char *const *names, json_t **root)
{
	enum msg_type type = 0;
	int rc;

	if ((rc = msg_parse(json, n, l, root)) != TLY_OK)
		goto out;
	if ((rc = msg_head(*root, NULL, &type)) != TLY_OK)
		goto out;
	if (type != want) {
		rc = TLY_E_BAD_MSG_TYPE;
		goto out;
	}
	rc = only_members(*root, names);
out:
	if (rc != TLY_OK) {
		json_decref(*root);
		*root = NULL;
	}
	return rc;
}

static int get_int(json_t *o, const char *name, int required, int64_t min, int64_t max,
		   int64_t *out, int *present)
{
	struct mval v;
	mval_of_json(o, name, &v);
	return val_int(&v, required, min, max, out, present);
}

static int get_u64(json_t *o, const char *name, int required, int64_t min, uint64_t *out)
{
	struct mval v;
	mval_of_json(o, name, &v);
	return val_u64(&v, required, min, out);
}

static int get_epoch(json_t *o, const struct limits *l, int may_be_empty, char *dst)
{
	struct mval v;
	mval_of_json(o, "epoch", &v);
	return val_epoch(&v, l, may_be_empty, dst);
}

static int get_code(json_t *o, const struct limits *l, char *name, int *code)
{
	struct mval v;
	mval_of_json(o, "code", &v);
	return val_code(&v, l, name, code);
}

static int get_reason(json_t *o, const char *name, const struct limits *l, char **out)
{
	struct mval v;
	mval_of_json(o, name, &v);
	return val_reason(&v, l, out);
}

/* An array member with at most max elements (TOO_MANY before any is read). */
static int get_array(json_t *o, const char *name, size_t max, json_t **out)
{
	json_t *v = json_object_get(o, name);
	*out = NULL;
	if (!v)
		return TLY_E_MISSING_FIELD;
	if (!json_is_array(v))
		return TLY_E_BAD_TYPE;
	if (json_array_size(v) > max)
		return TLY_E_TOO_MANY;
	*out = v;
	return TLY_OK;
}

static int copy_string(const char *s, char **out)
{
	size_t n = strlen(s);
	*out = malloc(n + 1);
	if (!*out)
		return TLY_E_NOMEM;
	memcpy(*out, s, n + 1);
	return TLY_OK;
}

static void free_changes(struct change **cs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		change_free(cs[i]);
	free(cs);
}

/* ---- push and pull_answer, straight from the bytes ------------------------ */

/*
 * These carry up to max_changes changes, and building jansson's tree of
 * them (a hash table per change and per fields object) cost more than
 * everything else the server does with a pushed change. So they are read
 * once with jsonpull, after the same scan, and each change is built while
 * its bytes go by.
 *
 * The codes stay those of the tree reading they replace (PROTOCOL.md §9,
 * and tests/fuzz/msg_jansson.h, which keeps that reading to compare
 * with): a parse error anywhere in the text (jsonpull returns those at
 * once) before anything else; then the message's members in the order of
 * its table, whatever their order in the text; then each change in array
 * order, each by decode_change's order (unknown members, then site, seq,
 * prev, hlc, eff, sv, kind, id, then its fields). So a member's value is
 * only noted where it stands (a struct mval) and checked when its object
 * ends; a change found faulty is noted and the reading goes on to the end
 * of the text; the checks that rank first then decide. Where the text
 * follows the writers' order (a change's fields after its other members, a
 * push's changes after its site) a change is complete when its fields
 * begin, and they are set as they are read; otherwise the fields (or the
 * changes) are skipped and read again from where they start once the rest
 * is known.
 */

/* Per decode: the limits and a buffer for text values with escapes. */
struct bulk {
	const struct limits *l;
	char *text;
	size_t text_cap;
};

enum { CM_SITE, CM_SEQ, CM_PREV, CM_HLC, CM_EFF, CM_SV, CM_KIND, CM_ID, CM_FIELDS, CM_COUNT };
static const char *const change_member_names[CM_COUNT] = {
	"site", "seq", "prev", "hlc", "eff", "sv", "kind", "id", "fields"};

enum {
	PM_V,
	PM_TYPE,
	PM_SITE,
	PM_PREV,
	PM_HEAD,
	PM_DEVICE_MS,
	PM_QUEUE,
	PM_CHANGES,
	PM_COUNT
};
static const char *const push_member_names[PM_COUNT] = {
	"v", "type", "site", "prev", "head", "device_ms", "queue", "changes"};

enum { AM_V, AM_TYPE, AM_EPOCH, AM_SERVER_MS, AM_NEXT, AM_MORE, AM_CHANGES, AM_COUNT };
static const char *const pull_answer_member_names[AM_COUNT] = {
	"v", "type", "epoch", "server_ms", "next", "more", "changes"};

/* Index of the key among names[0..count), or -1. *hint (one past where
 * the last key was found) is tried first: writers keep the table's order. */
static int member_find(const struct jsonpull_str *k, const char *const *names, int count,
		       int *hint)
{
	char tmp[16];
	const char *s = k->raw;
	size_t n = k->raw_len;

	if (k->escaped) {
		n = jsonpull_str_copy(k, tmp, sizeof tmp);
		if (n > sizeof tmp)
			return -1;
		s = tmp;
	}
	for (int t = 0; t < count; t++) {
		int i = (*hint + t) % count;
		/* strncmp stops at the name's NUL; a key holds none. */
		if (strncmp(names[i], s, n) == 0 && names[i][n] == '\0') {
			*hint = i + 1;
			return i;
		}
	}
	return -1;
}

/* Reads a member's value into *v; a container is read through and noted
 * as MV_OTHER. v NULL: the value is only read through. */
static int read_mval(struct jsonpull *j, struct mval *v)
{
	struct jsonpull_value pv;
	size_t d = jsonpull_depth(j);
	int rc = jsonpull_value(j, &pv);

	if (rc != TLY_OK)
		return rc;
	if (v)
		mval_of_pull(&pv, v);
	return jsonpull_skip(j, d);
}

/* A change object as read, and what its checks found. */
struct rchange {
	struct mval m[CM_FIELDS]; /* the members besides "fields" */
	int unknown;              /* a member §7.2 does not list */
	int has_fields;
	enum jsonpull_type fields_type;
	const char *fields_at; /* fields to read again once the rest is known */
	int checked;           /* check_rc holds the checks of every member read */
	int check_rc;
	size_t nfields;        /* members of the fields object */
	int fields_rc;         /* the first field refused */
	/* set by rchange_check */
	char site[CHANGE_SITE_MAX + 1];
	char kind[CHANGE_KIND_MAX + 1];
	char id[CHANGE_ID_MAX + 1];
	uint64_t seq, hlc, eff, sv;
	int has_prev;
	uint8_t prev[CHANGE_HASH_LEN];
};

/* decode_change's checks before the fields, in its order. site is the
 * push's, or NULL in a pull answer (where the change has its own). */
static int rchange_check(struct rchange *r, const char *site, const struct limits *l)
{
	int rc;

	r->seq = r->hlc = r->eff = r->sv = 0;
	r->has_prev = 0;
	if (!site &&
	    (rc = val_ident(&r->m[CM_SITE], l, CHANGE_SITE_MAX, change_check_site, r->site)) !=
		    TLY_OK)
		return rc;
	if ((rc = val_u64(&r->m[CM_SEQ], 1, 1, &r->seq)) != TLY_OK ||
	    (!site && (rc = val_hash(&r->m[CM_PREV], l, 0, r->prev, &r->has_prev)) != TLY_OK) ||
	    (rc = val_u64(&r->m[CM_HLC], 1, 1, &r->hlc)) != TLY_OK ||
	    (rc = val_u64(&r->m[CM_EFF], 0, 1, &r->eff)) != TLY_OK ||
	    (rc = val_u64(&r->m[CM_SV], 1, 1, &r->sv)) != TLY_OK)
		return rc;
	/* The record's schema, not the protocol's: the hash covers it, so a
	 * receiver stores and forwards a schema it does not know unchanged. */
	if (r->sv > 0xFFFF)
		return TLY_E_BAD_VALUE;
	if ((rc = val_ident(&r->m[CM_KIND], l, CHANGE_KIND_MAX, change_check_kind, r->kind)) !=
		    TLY_OK ||
	    (rc = val_ident(&r->m[CM_ID], l, CHANGE_ID_MAX, change_check_id, r->id)) != TLY_OK)
		return rc;
	return TLY_OK;
}

static int rchange_new(const struct rchange *r, const char *site, struct change **c)
{
	return change_new(c, (uint32_t)r->sv, site ? site : r->site, r->seq, r->hlc, r->kind,
			  r->id);
}

/* The value of a text field, unescaped when it has escapes. */
static int bulk_set_text(struct bulk *b, struct change *c, const char *name,
			 const struct jsonpull_str *s, int *fault)
{
	if (!s->escaped) {
		*fault = change_set_text(c, name, s->raw, s->raw_len, b->l);
		return TLY_OK;
	}
	/* Unescaping never lengthens a string. */
	if (b->text_cap < s->raw_len) {
		char *t = realloc(b->text, s->raw_len);
		if (!t)
			return TLY_E_NOMEM;
		b->text = t;
		b->text_cap = s->raw_len;
	}
	size_t n = jsonpull_str_copy(s, b->text, b->text_cap);
	*fault = change_set_text(c, name, b->text, n, b->l);
	return TLY_OK;
}

/*
 * The members of an open fields object, set on c in the order read, as
 * decode_fields did: *count of them, *fault the first refused. Past
 * max_fields the object is refused whole (TOO_MANY, ranked before any
 * field), and after a refused field nothing else can matter: the rest is
 * only read through.
 */
static int read_fields(struct jsonpull *j, struct bulk *b, struct change *c, size_t *count,
		       int *fault)
{
	struct jsonpull_str key;
	struct jsonpull_value v;
	char name[CHANGE_FIELD_NAME_MAX + 2];
	int more, rc;

	for (;;) {
		if ((rc = jsonpull_member(j, &key, &more)) != TLY_OK || !more)
			return rc;
		size_t d = jsonpull_depth(j);
		if ((rc = jsonpull_value(j, &v)) != TLY_OK)
			return rc;
		++*count;
		if (*fault == TLY_OK && *count <= b->l->max_fields) {
			/* A name too long for a field is still too long cut
			 * one byte past the longest: the setter refuses it the
			 * same way. */
			size_t n = jsonpull_str_copy(&key, name, sizeof name - 1);
			name[n < sizeof name - 1 ? n : sizeof name - 1] = '\0';
			switch (v.type) {
			case JSONPULL_STRING:
				rc = bulk_set_text(b, c, name, &v.s, fault);
				break;
			case JSONPULL_INT:
				*fault = change_set_int(c, name, v.i, b->l);
				break;
			case JSONPULL_NULL:
				*fault = change_set_null(c, name, b->l);
				break;
			default:
				*fault = TLY_E_BAD_TYPE; /* reals, booleans, arrays, objects */
				break;
			}
			if (rc != TLY_OK)
				return rc;
		}
		if ((rc = jsonpull_skip(j, d)) != TLY_OK)
			return rc;
	}
}

/* Every member the change needs was read (the writers' order puts them
 * before "fields"). */
static int rchange_complete(const struct rchange *r, const char *site)
{
	return (site || r->m[CM_SITE].type != MV_ABSENT) && r->m[CM_SEQ].type != MV_ABSENT &&
	       r->m[CM_HLC].type != MV_ABSENT && r->m[CM_SV].type != MV_ABSENT &&
	       r->m[CM_KIND].type != MV_ABSENT && r->m[CM_ID].type != MV_ABSENT;
}

/* The "fields" member: set on a new *c at once when the change is complete
 * and its members pass, else (when they may yet) noted to read again. */
static int read_change_fields(struct jsonpull *j, struct bulk *b, const char *site,
			      struct rchange *r, struct change **c)
{
	struct jsonpull_value v;
	size_t d = jsonpull_depth(j);
	int rc = jsonpull_value(j, &v);

	if (rc != TLY_OK)
		return rc;
	r->has_fields = 1;
	r->fields_type = v.type;
	if (v.type != JSONPULL_OBJECT || r->unknown)
		return jsonpull_skip(j, d);
	if (!rchange_complete(r, site)) {
		r->fields_at = v.at;
		return jsonpull_skip(j, d);
	}
	r->check_rc = rchange_check(r, site, b->l);
	r->checked = 1;
	if (r->check_rc != TLY_OK)
		return jsonpull_skip(j, d);
	if ((rc = rchange_new(r, site, c)) != TLY_OK)
		return rc;
	return read_fields(j, b, *c, &r->nfields, &r->fields_rc);
}

/* The fields noted by read_change_fields, read again now that c exists. */
static int read_fields_again(const struct jsonpull *j, struct bulk *b, const struct rchange *r,
			     struct change *c, size_t *count, int *fault)
{
	struct jsonpull again;
	struct jsonpull_value v;
	int rc;

	jsonpull_init_again(&again, r->fields_at, j->end);
	if ((rc = jsonpull_value(&again, &v)) == TLY_OK)
		rc = read_fields(&again, b, c, count, fault);
	jsonpull_clear(&again);
	return rc;
}

/*
 * One change object: *out the change, or *fault what decode_change would
 * have refused it for. site is the push's, or NULL in a pull answer (then
 * r->has_prev and r->prev are its "prev"). The return is jsonpull's (a
 * parse error) or TLY_E_NOMEM.
 */
static int read_change(struct jsonpull *j, struct bulk *b, const char *site, struct rchange *r,
		       struct change **out, int *fault)
{
	struct jsonpull_value v;
	struct jsonpull_str key;
	struct change *c = NULL;
	size_t d = jsonpull_depth(j);
	int hint = 0, more, rc;

	*out = NULL;
	*fault = TLY_OK;
	memset(r->m, 0, sizeof r->m);
	r->unknown = r->has_fields = r->checked = 0;
	r->fields_at = NULL;
	r->nfields = 0;
	r->fields_rc = TLY_OK;
	if ((rc = jsonpull_value(j, &v)) != TLY_OK)
		goto out;
	if (v.type != JSONPULL_OBJECT) {
		*fault = TLY_E_BAD_TYPE;
		rc = jsonpull_skip(j, d);
		goto out;
	}
	for (;;) {
		if ((rc = jsonpull_member(j, &key, &more)) != TLY_OK)
			goto out;
		if (!more)
			break;
		int k = member_find(&key, change_member_names, CM_COUNT, &hint);
		/* A push's changes are of its site; prev is a pull answer's. */
		if (site && (k == CM_SITE || k == CM_PREV))
			k = -1;
		/* A member after the fields may change what the checks say. */
		if (r->has_fields)
			r->checked = 0;
		if (k < 0) {
			r->unknown = 1;
			rc = read_mval(j, NULL);
		} else if (k == CM_FIELDS) {
			rc = read_change_fields(j, b, site, r, &c);
		} else {
			rc = read_mval(j, &r->m[k]);
		}
		if (rc != TLY_OK)
			goto out;
	}
	if (r->unknown) {
		*fault = TLY_E_UNKNOWN_FIELD;
		goto out;
	}
	if (!r->checked)
		r->check_rc = rchange_check(r, site, b->l);
	if (r->check_rc != TLY_OK) {
		*fault = r->check_rc;
		goto out;
	}
	if (!r->has_fields) {
		*fault = TLY_E_MISSING_FIELD;
		goto out;
	}
	if (r->fields_type != JSONPULL_OBJECT) {
		*fault = TLY_E_BAD_TYPE;
		goto out;
	}
	if (!c) {
		/* Complete only after its fields: they were noted. */
		if (!r->fields_at) {
			rc = TLY_E_INTERNAL;
			goto out;
		}
		if ((rc = rchange_new(r, site, &c)) != TLY_OK ||
		    (rc = read_fields_again(j, b, r, c, &r->nfields, &r->fields_rc)) != TLY_OK)
			goto out;
	}
	change_set_eff(c, r->eff);
	if (r->nfields > b->l->max_fields)
		*fault = TLY_E_TOO_MANY;
	else
		*fault = r->fields_rc;
	if (*fault != TLY_OK)
		goto out;
	*out = c;
	c = NULL;
out:
	change_free(c);
	return rc;
}

/* A changes array as read. */
struct rchanges {
	struct change **cs;
	size_t n, cap;
	size_t count; /* elements, read or not */
	int fault;    /* the first element refused */
};

/* A pull answer's change once read, as msg_decode_pull_answer checked
 * it: its prev (from the change before when omitted), then its links. */
static int link_in_page(struct rchanges *a, const struct rchange *r)
{
	struct change *c = a->cs[a->n - 1];
	const struct change *b = a->n > 1 ? a->cs[a->n - 2] : NULL;
	uint8_t prev[CHANGE_HASH_LEN];
	int follows = b && strcmp(change_site(b), change_site(c)) == 0 &&
		      change_seq(c) == change_seq(b) + 1;

	if (!r->has_prev) {
		/* Omitted only where it is the hash just computed. */
		if (!follows) {
			a->fault = TLY_E_MISSING_FIELD;
			return TLY_OK;
		}
		memcpy(prev, change_hash(b), CHANGE_HASH_LEN);
	} else {
		memcpy(prev, r->prev, CHANGE_HASH_LEN);
		if (follows && memcmp(prev, change_hash(b), CHANGE_HASH_LEN) != 0) {
			a->fault = TLY_E_CHAIN; /* the page contradicts itself */
			return TLY_OK;
		}
	}
	/* Genesis belongs to seq 1 and to nothing else (as in chain_link_run). */
	if ((change_seq(c) == 1) != (memcmp(prev, chain_genesis, CHANGE_HASH_LEN) == 0)) {
		a->fault = TLY_E_CHAIN;
		return TLY_OK;
	}
	return chain_link(c, prev);
}

/* The elements of an open changes array (site as for read_change). Past
 * max_changes the array is refused before any element (TOO_MANY), and
 * after a refused element the later ones cannot matter: from there they
 * are only read through. */
static int read_changes(struct jsonpull *j, struct bulk *b, const char *site, struct rchanges *a)
{
	struct rchange r;
	struct change *c;
	int more, rc;

	for (;;) {
		if ((rc = jsonpull_element(j, &more)) != TLY_OK || !more)
			return rc;
		a->count++;
		if (a->fault != TLY_OK || a->count > b->l->max_changes) {
			if ((rc = read_mval(j, NULL)) != TLY_OK)
				return rc;
			continue;
		}
		if ((rc = read_change(j, b, site, &r, &c, &a->fault)) != TLY_OK)
			return rc;
		if (!c)
			continue;
		if (a->n == a->cap) {
			size_t ncap = a->cap ? 2 * a->cap : 16;
			struct change **ncs = realloc(a->cs, ncap * sizeof *ncs);
			if (!ncs) {
				change_free(c);
				return TLY_E_NOMEM;
			}
			a->cs = ncs;
			a->cap = ncap;
		}
		a->cs[a->n++] = c;
		if (!site && (rc = link_in_page(a, &r)) != TLY_OK)
			return rc;
	}
}

/* A push or pull answer as read: its members noted by index in its table
 * (v and type first in both), its changes read or where they start. */
struct rmsg {
	struct mval m[PM_COUNT]; /* the larger table */
	int not_object;
	int unknown;
	int has_changes;
	enum jsonpull_type changes_type;
	const char *changes_at;
	struct rchanges a;
};

/*
 * Reads the whole text. push: the changes are read where they stand when
 * the push's site came before them and passes (into site), else noted.
 */
static int read_msg(struct jsonpull *j, struct bulk *b, const char *const *names, int count,
		    int changes, int push, char *site, struct rmsg *r)
{
	struct jsonpull_value v;
	struct jsonpull_str key;
	int hint = 0, more, rc;

	if ((rc = jsonpull_value(j, &v)) != TLY_OK)
		return rc;
	if (v.type != JSONPULL_OBJECT) {
		r->not_object = 1;
		return jsonpull_skip(j, 0);
	}
	for (;;) {
		if ((rc = jsonpull_member(j, &key, &more)) != TLY_OK || !more)
			return rc;
		int k = member_find(&key, names, count, &hint);
		if (k < 0) {
			r->unknown = 1;
			rc = read_mval(j, NULL);
		} else if (k != changes) {
			rc = read_mval(j, &r->m[k]);
		} else {
			size_t d = jsonpull_depth(j);
			if ((rc = jsonpull_value(j, &v)) != TLY_OK)
				return rc;
			r->has_changes = 1;
			r->changes_type = v.type;
			if (v.type != JSONPULL_ARRAY) {
				rc = jsonpull_skip(j, d);
			} else if (push && val_ident(&r->m[PM_SITE], b->l, CHANGE_SITE_MAX,
						     change_check_site, site) != TLY_OK) {
				r->changes_at = v.at;
				rc = jsonpull_skip(j, d);
			} else {
				rc = read_changes(j, b, push ? site : NULL, &r->a);
			}
		}
		if (rc != TLY_OK)
			return rc;
	}
}

/* msg_open's checks on a message read: an object, v, type, members. */
static int rmsg_head(const struct rmsg *r, enum msg_type want)
{
	enum msg_type type = 0;
	int rc;

	if (r->not_object)
		return TLY_E_BAD_TYPE;
	if ((rc = head_check(&r->m[PM_V], &r->m[PM_TYPE], NULL, &type)) != TLY_OK)
		return rc;
	if (type != want)
		return TLY_E_BAD_MSG_TYPE;
	return r->unknown ? TLY_E_UNKNOWN_FIELD : TLY_OK;
}

/* The changes member, as get_array and the loop after it: absent, not an
 * array, more than max_changes, then the first element refused. Noted
 * changes are read here, from where they start. */
static int rmsg_changes(const struct jsonpull *j, struct bulk *b, const char *site,
			struct rmsg *r)
{
	struct jsonpull again;
	struct jsonpull_value v;
	int rc;

	if (!r->has_changes)
		return TLY_E_MISSING_FIELD;
	if (r->changes_type != JSONPULL_ARRAY)
		return TLY_E_BAD_TYPE;
	if (r->changes_at) {
		jsonpull_init_again(&again, r->changes_at, j->end);
		if ((rc = jsonpull_value(&again, &v)) == TLY_OK)
			rc = read_changes(&again, b, site, &r->a);
		jsonpull_clear(&again);
		if (rc != TLY_OK)
			return rc;
	}
	if (r->a.count > b->l->max_changes)
		return TLY_E_TOO_MANY;
	return r->a.fault;
}

/* ---- messages ------------------------------------------------------------ */

int msg_peek(const char *json, size_t n, const struct limits *l, uint32_t *version,
	     enum msg_type *type)
{
	json_t *root = NULL;
	int rc = msg_parse(json, n, limits_or_default(l), &root);
	if (rc == TLY_OK)
		rc = msg_head(root, version, type);
	json_decref(root);
	return rc;
}

void msg_push_clear(struct msg_push *m)
{
	free_changes(m->changes, m->n);
	memset(m, 0, sizeof *m);
}

int msg_decode_push(const char *json, size_t n, const struct limits *lim, struct msg_push *out)
{
	const struct limits *l = limits_or_default(lim);
	struct bulk b = {.l = l, .text = NULL, .text_cap = 0};
	struct jsonpull j;
	struct rmsg r;
	char site[CHANGE_SITE_MAX + 1];
	int64_t queue = -1;
	int rc;

	memset(out, 0, sizeof *out);
	memset(&r, 0, sizeof r);
	jsonpull_init(&j, json, n);
	if ((rc = msg_scan(json, n, l, NULL)) != TLY_OK ||
	    (rc = read_msg(&j, &b, push_member_names, PM_COUNT, PM_CHANGES, 1, site, &r)) !=
		    TLY_OK ||
	    (rc = rmsg_head(&r, MSG_PUSH)) != TLY_OK)
		goto out;
	if ((rc = val_ident(&r.m[PM_SITE], l, CHANGE_SITE_MAX, change_check_site, out->site)) !=
		    TLY_OK ||
	    (rc = val_hash(&r.m[PM_PREV], l, 1, out->prev, NULL)) != TLY_OK ||
	    (rc = val_hash(&r.m[PM_HEAD], l, 1, out->head, NULL)) != TLY_OK ||
	    (rc = val_u64(&r.m[PM_DEVICE_MS], 1, 0, &out->device_ms)) != TLY_OK ||
	    (rc = val_int(&r.m[PM_QUEUE], 0, 0, INT64_MAX, &queue, NULL)) != TLY_OK ||
	    (rc = rmsg_changes(&j, &b, out->site, &r)) != TLY_OK)
		goto out;
	out->queue = queue;
	if (r.a.n == 0) {
		rc = TLY_E_BAD_VALUE; /* a push with nothing to push */
		goto out;
	}
	out->changes = r.a.cs;
	out->n = r.a.n;
	r.a.cs = NULL;
	r.a.n = 0;
	/* Order, site and hashes, from prev to head: a push that does not
	 * link is refused whole (PROTOCOL.md §9). */
	rc = chain_link_run(out->changes, out->n, out->prev, out->head);
out:
	free_changes(r.a.cs, r.a.n);
	free(b.text);
	jsonpull_clear(&j);
	if (rc != TLY_OK)
		msg_push_clear(out);
	return rc;
}

void msg_push_answer_clear(struct msg_push_answer *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->results[i].reason);
	free(m->results);
	memset(m, 0, sizeof *m);
}

static int decode_result(json_t *o, const struct limits *l, struct push_result *r)
{
	static const char *const members[] = {"seq", "status", "code", "reason", "eff", NULL};
	char code_name[MSG_CODE_MAX + 1];
	struct mval status;
	int rc;

	if (!json_is_object(o))
		return TLY_E_BAD_TYPE;
	mval_of_json(o, "status", &status);
	if ((rc = only_members(o, members)) != TLY_OK ||
	    (rc = get_u64(o, "seq", 1, 1, &r->seq)) != TLY_OK ||
	    (rc = val_str(&status, 1, l->max_string_bytes)) != TLY_OK)
		return rc;
	if (val_equals(&status, "applied"))
		r->status = PUSH_APPLIED;
	else if (val_equals(&status, "duplicate"))
		r->status = PUSH_DUPLICATE;
	else if (val_equals(&status, "rejected"))
		r->status = PUSH_REJECTED;
	else
		return TLY_E_BAD_VALUE;
	if (r->status == PUSH_REJECTED) {
		if ((rc = get_code(o, l, code_name, &r->code)) != TLY_OK ||
		    (rc = get_reason(o, "reason", l, &r->reason)) != TLY_OK)
			return rc;
	} else if (json_object_get(o, "code") || json_object_get(o, "reason")) {
		return TLY_E_UNKNOWN_FIELD; /* defined for rejected changes only */
	}
	return get_u64(o, "eff", 0, 1, &r->eff);
}

int msg_decode_push_answer(const char *json, size_t n, const struct limits *lim,
			   struct msg_push_answer *out)
{
	static const char *const members[] = {"v",	"type",	    "epoch",	"server_ms",
					      "offset_ms", "acked", "expected", "results",
					      NULL};
	const struct limits *l = limits_or_default(lim);
	json_t *root = NULL, *arr;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = msg_open(json, n, l, MSG_PUSH_ANSWER, members, &root)) != TLY_OK)
		goto out;
	if ((rc = get_epoch(root, l, 0, out->epoch)) != TLY_OK ||
	    (rc = get_u64(root, "server_ms", 1, 1, &out->server_ms)) != TLY_OK ||
	    (rc = get_int(root, "offset_ms", 1, INT64_MIN, INT64_MAX, &out->offset_ms, NULL)) !=
		    TLY_OK ||
	    (rc = get_u64(root, "acked", 1, 0, &out->acked)) != TLY_OK ||
	    (rc = get_u64(root, "expected", 0, 1, &out->expected)) != TLY_OK ||
	    (rc = get_array(root, "results", l->max_changes, &arr)) != TLY_OK)
		goto out;
	size_t count = json_array_size(arr);
	if (out->expected && count) {
		rc = TLY_E_BAD_VALUE; /* a seq_gap answer applied nothing */
		goto out;
	}
	if (count) {
		out->results = calloc(count, sizeof *out->results);
		if (!out->results) {
			rc = TLY_E_NOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < count; i++) {
		/* Counted before decoding so a half-filled result is freed too. */
		out->n = i + 1;
		if ((rc = decode_result(json_array_get(arr, i), l, &out->results[i])) != TLY_OK)
			goto out;
		/* Results answer a push, whose seqs are consecutive. */
		if (i > 0 && out->results[i].seq != out->results[i - 1].seq + 1) {
			rc = TLY_E_SEQ_ORDER;
			goto out;
		}
	}
out:
	json_decref(root);
	if (rc != TLY_OK)
		msg_push_answer_clear(out);
	return rc;
}

int msg_decode_pull(const char *json, size_t n, const struct limits *lim, struct msg_pull *out)
{
	static const char *const members[] = {"v", "type", "epoch", "cursor", "limit", NULL};
	const struct limits *l = limits_or_default(lim);
	json_t *root = NULL;
	int64_t limit;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = msg_open(json, n, l, MSG_PULL, members, &root)) != TLY_OK)
		goto out;
	if ((rc = get_epoch(root, l, 1, out->epoch)) != TLY_OK ||
	    (rc = get_u64(root, "cursor", 1, 0, &out->cursor)) != TLY_OK ||
	    (rc = get_int(root, "limit", 1, 1, (int64_t)l->max_pull_limit, &limit, NULL)) != TLY_OK)
		goto out;
	out->limit = (uint32_t)limit;
out:
	json_decref(root);
	if (rc != TLY_OK)
		memset(out, 0, sizeof *out);
	return rc;
}

void msg_pull_answer_clear(struct msg_pull_answer *m)
{
	free_changes(m->changes, m->n);
	memset(m, 0, sizeof *m);
}

int msg_decode_pull_answer(const char *json, size_t n, const struct limits *lim,
			   struct msg_pull_answer *out)
{
	const struct limits *l = limits_or_default(lim);
	struct bulk b = {.l = l, .text = NULL, .text_cap = 0};
	struct jsonpull j;
	struct rmsg r;
	const struct mval *more = &r.m[AM_MORE];
	int rc;

	memset(out, 0, sizeof *out);
	memset(&r, 0, sizeof r);
	jsonpull_init(&j, json, n);
	if ((rc = msg_scan(json, n, l, NULL)) != TLY_OK ||
	    (rc = read_msg(&j, &b, pull_answer_member_names, AM_COUNT, AM_CHANGES, 0, NULL, &r)) !=
		    TLY_OK ||
	    (rc = rmsg_head(&r, MSG_PULL_ANSWER)) != TLY_OK)
		goto out;
	if ((rc = val_epoch(&r.m[AM_EPOCH], l, 0, out->epoch)) != TLY_OK ||
	    (rc = val_u64(&r.m[AM_SERVER_MS], 1, 1, &out->server_ms)) != TLY_OK ||
	    (rc = val_u64(&r.m[AM_NEXT], 1, 0, &out->next)) != TLY_OK)
		goto out;
	if (more->type != MV_BOOL) {
		rc = more->type == MV_ABSENT ? TLY_E_MISSING_FIELD : TLY_E_BAD_TYPE;
		goto out;
	}
	out->more = (int)more->i;
	/* Each change was linked as it was read (link_in_page). */
	if ((rc = rmsg_changes(&j, &b, NULL, &r)) != TLY_OK)
		goto out;
	out->changes = r.a.cs;
	out->n = r.a.n;
	r.a.cs = NULL;
	r.a.n = 0;
out:
	free_changes(r.a.cs, r.a.n);
	free(b.text);
	jsonpull_clear(&j);
	if (rc != TLY_OK)
		msg_pull_answer_clear(out);
	return rc;
}

void msg_error_clear(struct msg_error *m)
{
	free(m->code_name);
	free(m->message);
	memset(m, 0, sizeof *m);
}

int msg_decode_error(const char *json, size_t n, const struct limits *lim, struct msg_error *out)
{
	static const char *const members[] = {"v",	  "type",	 "code",    "message",
					      "expected", "retry_after", "version", NULL};
	const struct limits *l = limits_or_default(lim);
	json_t *root = NULL;
	char name[MSG_CODE_MAX + 1];
	int64_t retry = 0, version = 0;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = msg_open(json, n, l, MSG_ERROR, members, &root)) != TLY_OK)
		goto out;
	if ((rc = get_code(root, l, name, &out->code)) != TLY_OK ||
	    (rc = copy_string(name, &out->code_name)) != TLY_OK ||
	    (rc = get_reason(root, "message", l, &out->message)) != TLY_OK ||
	    (rc = get_u64(root, "expected", 0, 1, &out->expected)) != TLY_OK ||
	    (rc = get_int(root, "retry_after", 0, 1, UINT32_MAX, &retry, NULL)) != TLY_OK ||
	    (rc = get_int(root, "version", 0, 1, UINT32_MAX, &version, NULL)) != TLY_OK)
		goto out;
	out->retry_after = (uint32_t)retry;
	out->version = (uint32_t)version;
out:
	json_decref(root);
	if (rc != TLY_OK)
		msg_error_clear(out);
	return rc;
}

/* ---- sizes before bodies ------------------------------------------------- */

/* uint64_t, not size_t: a declared length is checked before it is trusted
 * to fit anything. */
int msg_check_body_size(uint64_t n, const struct limits *l)
{
	return n > limits_or_default(l)->max_body_bytes ? TLY_E_TOO_LARGE : TLY_OK;
}
