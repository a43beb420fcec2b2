/*
 * msg_jansson — the decoders of push and pull_answer as protocol/message.c
 * had them before issue 8: a jansson tree, then strict reads of it. Kept
 * word for word (the two entry points renamed ref_*, free_changes left to
 * msg_push_clear and msg_pull_answer_clear) as the oracle
 * the tree-less decoders are compared with, by the msg_diff fuzz target and
 * tests/protocol/test_jsonpull.c. Test-only: never linked into a library.
 * Do not tidy it: its value is that it is the code that was trusted.
 *
 * Ownership and results as msg_decode_push / msg_decode_pull_answer
 * (message.h); release with msg_push_clear / msg_pull_answer_clear.
 */
#ifndef TALLY_FUZZ_MSG_JANSSON_H
#define TALLY_FUZZ_MSG_JANSSON_H

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "protocol/chain.h"
#include "protocol/change.h"
#include "protocol/error.h"
#include "protocol/jsoncheck.h"
#include "protocol/message.h"

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

static int ref_msg_decode_push(const char *json, size_t n, const struct limits *lim, struct msg_push *out)
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

static int ref_msg_decode_pull_answer(const char *json, size_t n,
				      const struct limits *lim, struct msg_pull_answer *out)
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

#endif
