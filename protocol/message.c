/*
 * message — the protocol messages on the wire (see message.h and
 * PROTOCOL.md §7, §9).
 *
 * Decoding is three gates, cheapest first: the size against
 * max_inflated_bytes, jsoncheck_scan (depth, counts, string sizes, UTF-8,
 * syntax, in constant memory), and only then jansson, which builds a tree
 * whose size the scan has bounded. The tree is then read strictly: version
 * first, then type, then unknown members, then each member in the order the
 * spec lists them.
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
	if (n > l->max_inflated_bytes) {
		rc = TLY_E_TOO_LARGE;
		goto out;
	}
	/* Before jansson sees a byte: it would build the whole tree (and
	 * recurse once per nesting level) before we could count anything. */
	if ((rc = jsoncheck_scan_stats(json, n, l, &want)) != TLY_OK)
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

static const char *const msg_type_names[] = {
	[MSG_PUSH] = "push",
	[MSG_PUSH_ANSWER] = "push_answer",
	[MSG_PULL] = "pull",
	[MSG_PULL_ANSWER] = "pull_answer",
	[MSG_ERROR] = "error",
};

/* "v" then "type", before anything else is looked at, so a peer speaking
 * another version gets version_unsupported whatever else it sent. */
static int msg_head(json_t *root, uint32_t *version, enum msg_type *type)
{
	json_t *v = json_object_get(root, "v");
	json_t *t = json_object_get(root, "type");

	if (!v)
		return TLY_E_MISSING_FIELD;
	if (!json_is_integer(v))
		return TLY_E_BAD_TYPE;
	json_int_t vi = json_integer_value(v);
	if (version)
		*version = vi < 0 ? 0 : vi > UINT32_MAX ? UINT32_MAX : (uint32_t)vi;
	if (vi != PROTOCOL_VERSION)
		return TLY_E_VERSION;
	if (!t)
		return TLY_E_MISSING_FIELD;
	if (!json_is_string(t))
		return TLY_E_BAD_TYPE;
	for (size_t k = MSG_PUSH; k <= MSG_ERROR; k++) {
		if (strcmp(json_string_value(t), msg_type_names[k]) == 0) {
			if (type)
				*type = (enum msg_type)k;
			return TLY_OK;
		}
	}
	return TLY_E_BAD_MSG_TYPE;
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

/* An integer member in [min, max]. When optional and absent, *present is 0
 * and *out untouched. */
static int get_int(json_t *o, const char *name, int required, int64_t min, int64_t max,
		   int64_t *out, int *present)
{
	json_t *v = json_object_get(o, name);
	if (present)
		*present = v != NULL;
	if (!v)
		return required ? TLY_E_MISSING_FIELD : TLY_OK;
	if (!json_is_integer(v))
		return TLY_E_BAD_TYPE;
	json_int_t x = json_integer_value(v);
	if (x < min || x > max)
		return TLY_E_BAD_VALUE;
	*out = (int64_t)x;
	return TLY_OK;
}

static int get_u64(json_t *o, const char *name, int required, int64_t min, uint64_t *out)
{
	int64_t x;
	int present;
	int rc = get_int(o, name, required, min, INT64_MAX, &x, &present);
	if (rc == TLY_OK && present)
		*out = (uint64_t)x;
	return rc;
}

/* A string member of at most max bytes (FIELD_TOO_LONG past it). */
static int get_str(json_t *o, const char *name, int required, size_t max, const char **out,
		   size_t *len)
{
	json_t *v = json_object_get(o, name);
	*out = NULL;
	if (!v)
		return required ? TLY_E_MISSING_FIELD : TLY_OK;
	if (!json_is_string(v))
		return TLY_E_BAD_TYPE;
	size_t n = json_string_length(v);
	if (n > max)
		return TLY_E_FIELD_TOO_LONG;
	*out = json_string_value(v);
	if (len)
		*len = n;
	return TLY_OK;
}

/* An identifier-like string: at most max_string_bytes, then its syntax. */
static int get_ident(json_t *o, const char *name, const struct limits *l, size_t max,
		     int (*check)(const char *), char *dst)
{
	const char *s;
	size_t n;
	int rc = get_str(o, name, 1, l->max_string_bytes, &s, &n);
	if (rc != TLY_OK)
		return rc;
	/* A NUL inside (jansson keeps \u0000 only with JSON_ALLOW_NUL, which we
	 * never set) would also fail strlen(s) == n. */
	if (n > max || strlen(s) != n || check(s) != TLY_OK)
		return TLY_E_BAD_VALUE;
	memcpy(dst, s, n + 1);
	return TLY_OK;
}

static int get_hash(json_t *o, const char *name, const struct limits *l, int required,
		    uint8_t out[CHANGE_HASH_LEN], int *present)
{
	const char *s;
	size_t n;
	int rc = get_str(o, name, required, l->max_string_bytes, &s, &n);
	if (present)
		*present = s != NULL;
	if (rc != TLY_OK || !s)
		return rc;
	/* Writers send lowercase; readers take either case (PROTOCOL.md §3):
	 * the bytes, not their spelling, are hashed and compared. */
	if (n != 2 * CHANGE_HASH_LEN)
		return TLY_E_BAD_VALUE;
	return chain_unhex(s, out);
}

static int get_epoch(json_t *o, const struct limits *l, int may_be_empty, char *dst)
{
	const char *s;
	size_t n;
	int rc = get_str(o, "epoch", 1, l->max_string_bytes, &s, &n);
	if (rc != TLY_OK)
		return rc;
	if (strlen(s) != n || !epoch_ok(s, may_be_empty))
		return TLY_E_BAD_VALUE;
	memcpy(dst, s, n + 1);
	return TLY_OK;
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

/* An error code name as received: syntax, and "ok" is no error. */
static int get_code(json_t *o, const struct limits *l, const char **name, int *code)
{
	size_t n;
	int rc = get_str(o, "code", 1, l->max_string_bytes, name, &n);
	if (rc != TLY_OK)
		return rc;
	if (!code_name_ok(*name, n) || strcmp(*name, "ok") == 0)
		return TLY_E_BAD_VALUE;
	*code = error_from_name(*name);
	return TLY_OK;
}

static int get_reason(json_t *o, const char *name, const struct limits *l, char **out)
{
	const char *s;
	size_t n;
	size_t max = l->max_string_bytes < MSG_REASON_MAX ? l->max_string_bytes : MSG_REASON_MAX;
	int rc = get_str(o, name, 1, max, &s, &n);
	if (rc != TLY_OK)
		return rc;
	if (strlen(s) != n)
		return TLY_E_BAD_UTF8;
	return copy_string(s, out);
}

/* ---- changes ---------------------------------------------------------- */

static const char *const push_change_members[] = {"seq", "hlc", "eff", "sv", "kind",
						  "id",  "fields", NULL};
static const char *const pull_change_members[] = {"site", "seq", "prev", "hlc", "eff", "sv",
						  "kind", "id", "fields", NULL};

static int decode_fields(json_t *o, const struct limits *l, struct change *c)
{
	json_t *fields = json_object_get(o, "fields");
	const char *name;
	json_t *v;
	int rc;

	if (!fields)
		return TLY_E_MISSING_FIELD;
	if (!json_is_object(fields))
		return TLY_E_BAD_TYPE;
	if (json_object_size(fields) > l->max_fields)
		return TLY_E_TOO_MANY;
	json_object_foreach(fields, name, v) {
		if (json_is_string(v)) {
			rc = change_set_text(c, name, json_string_value(v), json_string_length(v), l);
		} else if (json_is_integer(v)) {
			rc = change_set_int(c, name, (int64_t)json_integer_value(v), l);
		} else if (json_is_null(v)) {
			rc = change_set_null(c, name, l);
		} else {
			rc = TLY_E_BAD_TYPE; /* reals, booleans, arrays, objects */
		}
		if (rc != TLY_OK)
			return rc;
	}
	return TLY_OK;
}

/*
 * One change object. site is the push's top-level site, or NULL in a pull
 * answer (then the change carries its own). *has_prev and prev receive the
 * change's "prev" member, which only pull answers have.
 */
static int decode_change(json_t *o, const char *site, const struct limits *l,
			 struct change **out, int *has_prev, uint8_t prev[CHANGE_HASH_LEN])
{
	char own_site[CHANGE_SITE_MAX + 1];
	char kind[CHANGE_KIND_MAX + 1];
	char id[CHANGE_ID_MAX + 1];
	uint64_t seq = 0, hlc = 0, eff = 0, sv = 0;
	struct change *c = NULL;
	int rc;

	*out = NULL;
	*has_prev = 0;
	if (!json_is_object(o)) {
		rc = TLY_E_BAD_TYPE;
		goto out;
	}
	if ((rc = only_members(o, site ? push_change_members : pull_change_members)) != TLY_OK)
		goto out;
	if (!site) {
		rc = get_ident(o, "site", l, CHANGE_SITE_MAX, change_check_site, own_site);
		if (rc != TLY_OK)
			goto out;
		site = own_site;
	}
	if ((rc = get_u64(o, "seq", 1, 1, &seq)) != TLY_OK ||
	    (prev && (rc = get_hash(o, "prev", l, 0, prev, has_prev)) != TLY_OK) ||
	    (rc = get_u64(o, "hlc", 1, 1, &hlc)) != TLY_OK ||
	    (rc = get_u64(o, "eff", 0, 1, &eff)) != TLY_OK ||
	    (rc = get_u64(o, "sv", 1, 1, &sv)) != TLY_OK)
		goto out;
	/* The record's schema, not the protocol's: the hash covers it, so a
	 * receiver stores and forwards a schema it does not know unchanged. */
	if (sv > 0xFFFF) {
		rc = TLY_E_BAD_VALUE;
		goto out;
	}
	if ((rc = get_ident(o, "kind", l, CHANGE_KIND_MAX, change_check_kind, kind)) != TLY_OK ||
	    (rc = get_ident(o, "id", l, CHANGE_ID_MAX, change_check_id, id)) != TLY_OK ||
	    (rc = change_new(&c, (uint32_t)sv, site, seq, hlc, kind, id)) != TLY_OK)
		goto out;
	change_set_eff(c, eff);
	if ((rc = decode_fields(o, l, c)) != TLY_OK)
		goto out;
	*out = c;
	c = NULL;
out:
	change_free(c);
	return rc;
}

static void free_changes(struct change **cs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		change_free(cs[i]);
	free(cs);
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
	static const char *const members[] = {"v",	   "type",  "site",    "prev", "head",
					      "device_ms", "queue", "changes", NULL};
	const struct limits *l = limits_or_default(lim);
	json_t *root = NULL, *arr;
	int64_t queue = -1;
	int has_prev;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = msg_open(json, n, l, MSG_PUSH, members, &root)) != TLY_OK)
		goto out;
	if ((rc = get_ident(root, "site", l, CHANGE_SITE_MAX, change_check_site, out->site)) !=
		    TLY_OK ||
	    (rc = get_hash(root, "prev", l, 1, out->prev, NULL)) != TLY_OK ||
	    (rc = get_hash(root, "head", l, 1, out->head, NULL)) != TLY_OK ||
	    (rc = get_u64(root, "device_ms", 1, 0, &out->device_ms)) != TLY_OK ||
	    (rc = get_int(root, "queue", 0, 0, INT64_MAX, &queue, NULL)) != TLY_OK ||
	    (rc = get_array(root, "changes", l->max_changes, &arr)) != TLY_OK)
		goto out;
	out->queue = queue;
	size_t count = json_array_size(arr);
	if (count == 0) {
		rc = TLY_E_BAD_VALUE; /* a push with nothing to push */
		goto out;
	}
	out->changes = calloc(count, sizeof *out->changes);
	if (!out->changes) {
		rc = TLY_E_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		rc = decode_change(json_array_get(arr, i), out->site, l, &out->changes[i],
				   &has_prev, NULL);
		if (rc != TLY_OK)
			goto out;
		out->n = i + 1;
	}
	/* Order, site and hashes, from prev to head: a push that does not
	 * link is refused whole (PROTOCOL.md §9). */
	rc = chain_link_run(out->changes, out->n, out->prev, out->head);
out:
	json_decref(root);
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
	const char *status;
	const char *code_name;
	int rc;

	if (!json_is_object(o))
		return TLY_E_BAD_TYPE;
	if ((rc = only_members(o, members)) != TLY_OK ||
	    (rc = get_u64(o, "seq", 1, 1, &r->seq)) != TLY_OK ||
	    (rc = get_str(o, "status", 1, l->max_string_bytes, &status, NULL)) != TLY_OK)
		return rc;
	if (strcmp(status, "applied") == 0)
		r->status = PUSH_APPLIED;
	else if (strcmp(status, "duplicate") == 0)
		r->status = PUSH_DUPLICATE;
	else if (strcmp(status, "rejected") == 0)
		r->status = PUSH_REJECTED;
	else
		return TLY_E_BAD_VALUE;
	if (r->status == PUSH_REJECTED) {
		if ((rc = get_code(o, l, &code_name, &r->code)) != TLY_OK ||
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
	static const char *const members[] = {"v",    "type", "epoch",	 "server_ms",
					      "next", "more", "changes", NULL};
	const struct limits *l = limits_or_default(lim);
	json_t *root = NULL, *arr, *more;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = msg_open(json, n, l, MSG_PULL_ANSWER, members, &root)) != TLY_OK)
		goto out;
	if ((rc = get_epoch(root, l, 0, out->epoch)) != TLY_OK ||
	    (rc = get_u64(root, "server_ms", 1, 1, &out->server_ms)) != TLY_OK ||
	    (rc = get_u64(root, "next", 1, 0, &out->next)) != TLY_OK)
		goto out;
	more = json_object_get(root, "more");
	if (!more) {
		rc = TLY_E_MISSING_FIELD;
		goto out;
	}
	if (!json_is_boolean(more)) {
		rc = TLY_E_BAD_TYPE;
		goto out;
	}
	out->more = json_is_true(more);
	if ((rc = get_array(root, "changes", l->max_changes, &arr)) != TLY_OK)
		goto out;
	size_t count = json_array_size(arr);
	if (count) {
		out->changes = calloc(count, sizeof *out->changes);
		if (!out->changes) {
			rc = TLY_E_NOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < count; i++) {
		uint8_t prev[CHANGE_HASH_LEN];
		int has_prev;
		struct change *c;
		const struct change *b = i ? out->changes[i - 1] : NULL;

		rc = decode_change(json_array_get(arr, i), NULL, l, &out->changes[i], &has_prev,
				   prev);
		if (rc != TLY_OK)
			goto out;
		out->n = i + 1;
		c = out->changes[i];
		int follows = b && strcmp(change_site(b), change_site(c)) == 0 &&
			      change_seq(c) == change_seq(b) + 1;
		if (!has_prev) {
			/* Omitted only where it is the hash just computed. */
			if (!follows) {
				rc = TLY_E_MISSING_FIELD;
				goto out;
			}
			memcpy(prev, change_hash(b), CHANGE_HASH_LEN);
		} else if (follows && memcmp(prev, change_hash(b), CHANGE_HASH_LEN) != 0) {
			rc = TLY_E_CHAIN; /* the page contradicts itself */
			goto out;
		}
		/* Genesis belongs to seq 1 and to nothing else (as in chain_link_run). */
		if ((change_seq(c) == 1) != (memcmp(prev, chain_genesis, CHANGE_HASH_LEN) == 0)) {
			rc = TLY_E_CHAIN;
			goto out;
		}
		if ((rc = chain_link(c, prev)) != TLY_OK)
			goto out;
	}
out:
	json_decref(root);
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
	const char *name;
	int64_t retry = 0, version = 0;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = msg_open(json, n, l, MSG_ERROR, members, &root)) != TLY_OK)
		goto out;
	if ((rc = get_code(root, l, &name, &out->code)) != TLY_OK ||
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
