/*
 * syncsrv — the township server's sync logic (see syncsrv.h and
 * docs/server.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client/clock.h"
#include "client/rules.h"
#include "client/srvstore.h"
#include "client/store.h"
#include "daemon/enrol.h"
#include "daemon/httpd.h"
#include "daemon/log.h"
#include "daemon/syncsrv.h"
#include "protocol/chain.h"
#include "protocol/error.h"
#include "protocol/hlc.h"

#define JOIN_BODY_MAX 4096

struct syncsrv {
	struct db *db;
	struct syncsrv_options o;
	char epoch[MSG_EPOCH_MAX + 1];
	syncsrv_commit_fn commit_fn;
	void *commit_arg;
};

void syncsrv_options_default(struct syncsrv_options *o)
{
	memset(o, 0, sizeof *o);
	limits_default(&o->limits);
	o->pull_max_bytes = 2u << 20;
	o->max_reply_bytes = 16u << 20;
}

int syncsrv_open(const char *db_path, const struct syncsrv_options *o, struct syncsrv **out,
		 struct buf *why)
{
	struct syncsrv *s = calloc(1, sizeof *s);
	int err;

	*out = NULL;
	if (!s)
		return TLY_E_NOMEM;
	if (o)
		s->o = *o;
	else
		syncsrv_options_default(&s->o);
	err = db_open(db_path, 0, &s->db, why);
	if (err)
		goto out;
	if (!db_site(s->db) || strcmp(db_site(s->db)->role, "township") != 0) {
		if (why) {
			buf_reset(why);
			(void)buf_addf(why, "%s 不是乡镇的台账数据库（先运行 tally init --role township）",
				       db_path);
		}
		err = TLY_E_USAGE;
		goto out;
	}
	err = srvstore_epoch(s->db, s->epoch);
	if (!err) {
		/* Catch up the feed with whatever `tally` wrote while we were
		 * not running, so the first pull does not pay for it. */
		err = db_begin(s->db);
		if (!err)
			err = srvstore_feed_index(s->db);
		if (!err)
			err = db_commit(s->db);
		if (err)
			db_rollback(s->db);
	}
out:
	if (err) {
		syncsrv_close(s);
		return err;
	}
	*out = s;
	return TLY_OK;
}

void syncsrv_close(struct syncsrv *s)
{
	if (!s)
		return;
	db_close(s->db);
	free(s);
}

struct db *syncsrv_db(struct syncsrv *s)
{
	return s->db;
}

void syncsrv_set_commit_hook(struct syncsrv *s, syncsrv_commit_fn fn, void *arg)
{
	s->commit_fn = fn;
	s->commit_arg = arg;
}

const char *syncsrv_epoch(const struct syncsrv *s)
{
	return s->epoch;
}

int syncsrv_new_epoch(struct syncsrv *s, const char *reason)
{
	char old[MSG_EPOCH_MAX + 1];
	memcpy(old, s->epoch, sizeof old);
	int err = srvstore_epoch_renew(s->db, s->epoch);
	if (err)
		return err;
	log_event(LOG_LEVEL_WARN, "server_new_epoch", "old=%s new=%s reason=%s", old, s->epoch,
		  reason);
	return TLY_OK;
}

static void committed(struct syncsrv *s)
{
	int64_t high;
	if (s->commit_fn && srvstore_log_high(s->db, &high) == TLY_OK)
		s->commit_fn(s->commit_arg, high);
}

/* ---- replies ---- */

void syncsrv_reply_init(struct syncsrv_reply *r)
{
	memset(r, 0, sizeof *r);
	buf_init(&r->body, 16u << 20);
}

void syncsrv_reply_free(struct syncsrv_reply *r)
{
	buf_free(&r->body);
	memset(r, 0, sizeof *r);
}

int syncsrv_reply_error(struct syncsrv_reply *r, int status, int err, const char *message,
			uint64_t expected)
{
	struct msg_error m;
	memset(&m, 0, sizeof m);
	m.code = err;
	m.message = (char *)(message ? message : error_text_zh(err));
	m.expected = expected;
	if (err == TLY_E_VERSION)
		m.version = PROTOCOL_VERSION;
	r->status = status ? status : httpd_status_of(err);
	buf_reset(&r->body);
	return msg_encode_error(&m, &r->body);
}

static int reply_json(struct syncsrv_reply *r, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	int err = TLY_E_NOMEM;
	if (text) {
		buf_reset(&r->body);
		err = buf_add_str(&r->body, text);
		r->status = 200;
	}
	free(text);
	json_decref(j);
	return err;
}

/* The first checks of every message: version (§12) and type (§9 step 6). */
static int check_message(struct syncsrv *s, const char *body, size_t n, enum msg_type want,
			 struct syncsrv_reply *r, int *refused)
{
	uint32_t v = 0;
	enum msg_type t = 0;
	int err = msg_peek(body, n, &s->o.limits, &v, &t);
	*refused = 1;
	if (err)
		return syncsrv_reply_error(r, 0, err, NULL, 0);
	if (t != want)
		return syncsrv_reply_error(r, 0, TLY_E_BAD_MSG_TYPE, NULL, 0);
	*refused = 0;
	return TLY_OK;
}

/* ---- authentication ---- */

int syncsrv_authenticate(struct syncsrv *s, const char *bearer, struct syncsrv_principal *p)
{
	struct enrol_token t;
	int err;

	memset(p, 0, sizeof *p);
	if (!bearer || enrol_token_parse(bearer, &t))
		return TLY_E_UNAUTHORIZED;
	if (t.kind == 'd') {
		struct srvstore_device d;
		err = srvstore_device_get(s->db, t.id, &d);
		if (err == TLY_E_NOT_FOUND || (!err && !enrol_secret_matches(t.secret, d.secret_hash)))
			err = TLY_E_UNAUTHORIZED;
		else if (!err && d.revoked_ms)
			err = TLY_E_REVOKED;
		if (!err) {
			p->kind = 'd';
			memcpy(p->id, d.id, sizeof p->id);
			memcpy(p->site, d.site, sizeof p->site);
			memcpy(p->village, d.village, sizeof p->village);
		}
	} else {
		uint8_t hash[SRVSTORE_HASH_LEN];
		int64_t revoked = 0;
		err = srvstore_user_get(s->db, t.id, NULL, hash, &revoked);
		if (err == TLY_E_NOT_FOUND || (!err && !enrol_secret_matches(t.secret, hash)))
			err = TLY_E_UNAUTHORIZED;
		else if (!err && revoked)
			err = TLY_E_REVOKED;
		if (!err) {
			p->kind = 'u';
			memcpy(p->id, t.id, sizeof p->id);
		}
	}
	memset(t.secret, 0, sizeof t.secret);
	return err;
}

void syncsrv_note_error(struct syncsrv *s, const struct syncsrv_principal *p, int err)
{
	if (p->kind != 'd')
		return;
	int64_t now = clock_device_ms();
	/* Best effort, outside any push transaction: a failure to note a
	 * failure must not change the answer. */
	(void)srvstore_audit(s->db, now, p->id, p->site, "refused", error_name(err), NULL);
	(void)srvstore_device_contact(s->db, p->id, now, -1, -1, 0, 0, error_name(err));
}

/* ---- push ---- */

/* Assigns the ordering stamp of a new change of its site (PROTOCOL.md §6
 * rule 2) and lets this server's clock receive what it keeps, so a fresh
 * stamp issued later is above every stamp the site has. *last is the
 * site's last ordering stamp, updated. */
static int assign_stamp(struct syncsrv *s, struct change *c, uint64_t *last)
{
	struct hlc clock;
	uint64_t wall = clock_wall_ms(s->db);
	uint64_t sent = change_eff(c) ? change_eff(c) : change_hlc(c);
	int err = store_clock_load(s->db, &clock);
	if (err)
		return err;
	if (hlc_within_bound(sent, wall, s->o.limits.max_ahead_ms) && sent > *last) {
		(void)hlc_recv(&clock, sent, wall, s->o.limits.max_ahead_ms, NULL);
		change_set_eff(c, sent == change_hlc(c) ? 0 : sent);
	} else {
		change_set_eff(c, hlc_send(&clock, wall));
	}
	*last = change_stamp(c);
	return store_clock_save(s->db, &clock);
}

static void audit_log(struct syncsrv *s, const struct syncsrv_principal *p, const char *event,
		      int code, const char *detail)
{
	log_event(LOG_LEVEL_WARN, event, "device=%s site=%s village=%s code=%s detail=%s", p->id,
		  p->site, p->village, error_name(code), detail);
	(void)srvstore_audit(s->db, clock_device_ms(), p->id, p->site, event, error_name(code),
			     detail);
	(void)srvstore_device_contact(s->db, p->id, clock_device_ms(), -1, -1, 0, 0,
				      error_name(code));
}

int syncsrv_push(struct syncsrv *s, const struct syncsrv_principal *p, const char *body,
		 size_t n, struct syncsrv_reply *r)
{
	struct msg_push m;
	struct msg_push_answer a;
	struct buf reason;
	uint64_t held = 0, last_stamp = 0, expected = 0;
	uint8_t held_hash[CHANGE_HASH_LEN];
	int err, fail = TLY_OK, in_txn = 0;
	int64_t recv_ms = clock_device_ms();
	char detail[160];

	memset(&m, 0, sizeof m);
	memset(&a, 0, sizeof a);
	buf_init(&reason, MSG_REASON_MAX + 1);
	if (p->kind != 'd') {
		err = syncsrv_reply_error(r, 403, TLY_E_FORBIDDEN,
					  "乡镇用户不能上传修改；请在乡镇的台账里直接录入", 0);
		goto out;
	}
	/* No msg_peek first (pull does one): msg_decode_push checks version and
	 * type with the same codes, and a second parse of a 1,000-change body
	 * was a sixth of the server's time per push (bench_server). */
	err = msg_decode_push(body, n, &s->o.limits, &m);
	if (err) {
		/* Not applied, not logged as an event of the village: a bad
		 * message is answered with its code, and the device's last
		 * error shows it. */
		(void)srvstore_device_contact(s->db, p->id, recv_ms, -1, -1, 0, 0, error_name(err));
		err = syncsrv_reply_error(r, 0, err, NULL, 0);
		goto out;
	}
	if (strcmp(m.site, p->site) != 0) {
		snprintf(detail, sizeof detail, "push of site %s", m.site);
		audit_log(s, p, "site_mismatch", TLY_E_SITE_MISMATCH, detail);
		err = syncsrv_reply_error(r, 403, TLY_E_SITE_MISMATCH, NULL, 0);
		goto out;
	}

	err = db_begin(s->db);
	if (err)
		goto out;
	in_txn = 1;
	/* Re-read: `tally server new-epoch` may have run while we serve. */
	err = srvstore_epoch(s->db, s->epoch);
	if (!err)
		err = store_site_head(s->db, m.site, &held, held_hash);
	if (!err)
		err = srvstore_site_last_stamp(s->db, m.site, &last_stamp);
	if (err)
		goto out;
	uint64_t first = change_seq(m.changes[0]);
	if (first > held + 1) {
		fail = TLY_E_SEQ_GAP;
		expected = held + 1;
		goto refuse;
	}
	if (first > 1) {
		/* The push's prev must be what we hold at first-1: otherwise the
		 * run belongs to another history of this site. */
		uint8_t h[CHANGE_HASH_LEN];
		uint64_t eff;
		int found;
		err = srvstore_change_links(s->db, m.site, first - 1, &found, h, &eff);
		if (err)
			goto out;
		if (!found || memcmp(h, m.prev, CHANGE_HASH_LEN) != 0) {
			fail = TLY_E_CHAIN;
			goto refuse;
		}
	}

	a.results = calloc(m.n, sizeof *a.results);
	if (!a.results) {
		err = TLY_E_NOMEM;
		goto out;
	}
	struct rules_actor actor = {RULES_VILLAGE, p->village};
	for (size_t i = 0; i < m.n; i++) {
		struct change *c = m.changes[i];
		struct push_result *res = &a.results[i];
		enum store_outcome oc;
		int code = TLY_OK;

		res->seq = change_seq(c);
		if (change_seq(c) > held) {
			err = assign_stamp(s, c, &last_stamp);
			if (err)
				goto out;
		}
		err = store_apply_remote(s->db, c, &actor, recv_ms, &oc, &code, &reason);
		if (err == TLY_E_CHAIN) {
			/* A held seq with other bytes: never replaces the original. */
			fail = TLY_E_CHAIN;
			goto refuse;
		}
		if (err)
			goto out;
		a.n = i + 1;
		if (oc == STORE_DUPLICATE) {
			/* Answer what we hold, so a village that lost our first
			 * answer learns the outcome and eff now. */
			int found, rejected, rcode;
			uint8_t h[CHANGE_HASH_LEN];
			err = store_change_state(s->db, m.site, res->seq, &found, &rejected, &rcode,
						 &reason);
			if (!err)
				err = srvstore_change_links(s->db, m.site, res->seq, &found, h,
							    &res->eff);
			if (err)
				goto out;
			res->status = rejected ? PUSH_REJECTED : PUSH_DUPLICATE;
			if (rejected) {
				res->code = rcode;
				res->reason = strdup(reason.data ? reason.data : error_text_zh(rcode));
			}
		} else if (oc == STORE_REJECTED) {
			res->status = PUSH_REJECTED;
			res->code = code;
			res->reason = strdup(reason.data ? reason.data : error_text_zh(code));
			res->eff = change_eff(c);
			log_event(LOG_LEVEL_INFO, "push_rejected", "device=%s site=%s seq=%llu code=%s",
				  p->id, m.site, (unsigned long long)res->seq, error_name(code));
			if (code == TLY_E_FORBIDDEN)
				(void)srvstore_audit(s->db, recv_ms, p->id, p->site,
						     "cross_village_write", error_name(code),
						     reason.data);
		} else {
			res->status = PUSH_APPLIED;
			res->eff = change_eff(c);
		}
		if (res->status == PUSH_REJECTED && !res->reason) {
			err = TLY_E_NOMEM;
			goto out;
		}
		/* eff travels only when it differs from hlc (§7.4). */
		if (res->eff == change_hlc(c))
			res->eff = 0;
	}
	uint64_t top = change_seq(m.changes[m.n - 1]);
	a.acked = top > held ? top : held;
	err = srvstore_feed_index(s->db);
	if (!err)
		err = srvstore_device_contact(s->db, p->id, recv_ms, (int64_t)a.acked, m.queue, 1,
					      recv_ms - (int64_t)m.device_ms, NULL);
	if (err)
		goto out;
	/* Durability before acknowledgement (guarantee 3): COMMIT returns only
	 * once the WAL is on disk; the answer below is built only after it.
	 * A crash before this line loses nothing the village was told. */
	err = db_commit(s->db);
	if (err)
		goto out;
	in_txn = 0;
	committed(s);
	memcpy(a.epoch, s->epoch, sizeof a.epoch);
	a.server_ms = (uint64_t)clock_device_ms();
	a.offset_ms = (int64_t)a.server_ms - (int64_t)m.device_ms;
	buf_reset(&r->body);
	err = msg_encode_push_answer(&a, &r->body);
	r->status = 200;
	goto out;

refuse:
	db_rollback(s->db);
	in_txn = 0;
	snprintf(detail, sizeof detail, "seq %llu..%llu held %llu",
		 (unsigned long long)change_seq(m.changes[0]),
		 (unsigned long long)change_seq(m.changes[m.n - 1]), (unsigned long long)held);
	if (fail == TLY_E_CHAIN)
		audit_log(s, p, "chain_broken", fail, detail);
	else
		(void)srvstore_device_contact(s->db, p->id, recv_ms, (int64_t)held, m.queue, 1,
					      recv_ms - (int64_t)m.device_ms, error_name(fail));
	err = syncsrv_reply_error(r, 409, fail, NULL, expected);
out:
	if (in_txn)
		db_rollback(s->db);
	/* results own their reasons; the answer struct owns results */
	for (size_t i = 0; a.results && i < m.n; i++)
		free(a.results[i].reason);
	free(a.results);
	msg_push_clear(&m);
	buf_free(&reason);
	return err;
}

/* ---- pull ---- */

int syncsrv_pull(struct syncsrv *s, const struct syncsrv_principal *p, const char *body,
		 size_t n, struct syncsrv_reply *r)
{
	struct msg_pull m;
	struct msg_pull_answer a;
	int refused, err, in_txn = 0;
	int64_t next = 0;

	memset(&a, 0, sizeof a);
	err = check_message(s, body, n, MSG_PULL, r, &refused);
	if (err || refused)
		return err;
	err = msg_decode_pull(body, n, &s->o.limits, &m);
	if (err)
		return syncsrv_reply_error(r, 0, err, NULL, 0);
	err = srvstore_epoch(s->db, s->epoch);
	if (err)
		return err;
	/* A cursor of another epoch means nothing here (§11): start over. */
	uint64_t cursor = m.epoch[0] && strcmp(m.epoch, s->epoch) != 0 ? 0 : m.cursor;
	if (cursor > INT64_MAX)
		cursor = INT64_MAX;
	size_t limit = m.limit < s->o.limits.max_changes ? m.limit : s->o.limits.max_changes;

	/* Index first: township writes made by `tally` meanwhile become
	 * visible; the read runs in the same transaction, so the page is one
	 * consistent snapshot. */
	err = db_begin(s->db);
	if (err)
		goto out;
	in_txn = 1;
	err = srvstore_feed_index(s->db);
	if (err)
		goto out;
	if (p->kind == 'd') {
		err = srvstore_feed_read(s->db, p->village, p->site, (int64_t)cursor, limit,
					 s->o.pull_max_bytes, &a.changes, &a.n, &next, &a.more);
		if (!err)
			err = srvstore_device_contact(s->db, p->id, clock_device_ms(), -1, -1, 0, 0,
						      NULL);
	} else {
		err = store_log_read(s->db, (int64_t)cursor, limit, s->o.pull_max_bytes, &a.changes,
				     &a.n, &next);
		if (!err)
			err = srvstore_log_more(s->db, next, &a.more);
	}
	if (err)
		goto out;
	err = db_commit(s->db);
	if (err)
		goto out;
	in_txn = 0;
	memcpy(a.epoch, s->epoch, sizeof a.epoch);
	a.server_ms = (uint64_t)clock_device_ms();
	a.next = (uint64_t)next;
	buf_reset(&r->body);
	err = msg_encode_pull_answer(&a, &r->body);
	r->status = 200;
out:
	if (in_txn)
		db_rollback(s->db);
	store_changes_free(a.changes, a.n);
	a.changes = NULL;
	return err;
}

/* ---- join ---- */

int syncsrv_join(struct syncsrv *s, const char *body, size_t n, const char *remote,
		 struct syncsrv_reply *r)
{
	json_t *j = NULL;
	const char *code = NULL, *site = NULL, *name = NULL;
	json_int_t v = 0;
	char id[DB_ID_LEN + 1];
	uint8_t secret[ENROL_SECRET_LEN];
	struct srvstore_join jr;
	struct srvstore_device d;
	struct enrol_token t;
	char token[ENROL_TOKEN_SIZE];
	char vname[SRVSTORE_NAME_MAX + 1];
	int64_t now = clock_device_ms();
	int err, in_txn = 0;

	memset(&d, 0, sizeof d);
	memset(&t, 0, sizeof t);
	if (n > JOIN_BODY_MAX)
		return syncsrv_reply_error(r, 0, TLY_E_TOO_LARGE, NULL, 0);
	json_error_t jerr;
	j = json_loadb(body, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!j || !json_is_object(j)) {
		/* A repeated key is its own code (PROTOCOL.md §9 step 3), as in
		 * every other message: a second "site" must not read as a typo. */
		int code = !j && json_error_code(&jerr) == json_error_duplicate_key ? TLY_E_DUP_KEY
										   : TLY_E_BAD_JSON;
		err = syncsrv_reply_error(r, 0, code, NULL, 0);
		goto out;
	}
	if (json_unpack(j, "{s:I}", "v", &v) || v != PROTOCOL_VERSION) {
		err = syncsrv_reply_error(r, 0, json_object_get(j, "v") ? TLY_E_VERSION
									: TLY_E_MISSING_FIELD,
					  NULL, 0);
		goto out;
	}
	if (json_unpack(j, "{s:I,s:s,s:s,s:s!}", "v", &v, "code", &code, "site", &site, "name",
			&name) ||
	    change_check_site(site) || !*name || strlen(name) > SRVSTORE_NAME_MAX ||
	    change_check_utf8(name, strlen(name))) {
		err = syncsrv_reply_error(r, 0, TLY_E_BAD_VALUE, NULL, 0);
		goto out;
	}
	if (enrol_code_secret_parse(code, id, secret) ||
	    srvstore_join_get(s->db, id, &jr) != TLY_OK ||
	    !enrol_secret_matches(secret, jr.secret_hash)) {
		log_event(LOG_LEVEL_WARN, "join_refused", "remote=%s reason=unknown_code", remote);
		err = syncsrv_reply_error(r, 401, TLY_E_UNAUTHORIZED,
					  "加入码无效，请从乡镇重新复制完整的加入码", 0);
		goto out;
	}
	if (jr.used_ms) {
		log_event(LOG_LEVEL_WARN, "join_refused", "remote=%s code=%s reason=used", remote,
			  id);
		err = syncsrv_reply_error(r, 409, TLY_E_JOIN_USED, NULL, 0);
		goto out;
	}
	if (jr.expires_ms < now) {
		log_event(LOG_LEVEL_WARN, "join_refused", "remote=%s code=%s reason=expired", remote,
			  id);
		err = syncsrv_reply_error(r, 403, TLY_E_FORBIDDEN,
					  "加入码已过期，请向乡镇索取新的加入码", 0);
		goto out;
	}
	err = srvstore_village_name(s->db, jr.village, vname, sizeof vname);
	if (err == TLY_E_NOT_FOUND) {
		err = syncsrv_reply_error(r, 404, TLY_E_NOT_FOUND, "加入码对应的村已不存在", 0);
		goto out;
	}
	if (err)
		goto out;

	t.kind = 'd';
	err = db_random_id(t.id);
	if (!err)
		err = enrol_secret_new(t.secret);
	if (err)
		goto out;
	memcpy(d.id, t.id, sizeof d.id);
	snprintf(d.site, sizeof d.site, "%s", site);
	memcpy(d.village, jr.village, sizeof d.village);
	snprintf(d.name, sizeof d.name, "%s", name);
	enrol_secret_hash(t.secret, d.secret_hash);
	/* The code is spent and the device created in ONE transaction: two
	 * racing joins with one code cannot both get a credential. */
	err = db_begin(s->db);
	if (err)
		goto out;
	in_txn = 1;
	/* A site with a history here (the township's own, or any site whose
	 * changes the log holds) is not a new device's: enrolled under it, a
	 * village would push as that site, past the site check of a push. */
	uint64_t site_held = 0;
	uint8_t site_hash[CHANGE_HASH_LEN];
	err = store_site_head(s->db, d.site, &site_held, site_hash);
	if (!err && (site_held > 0 || strcmp(d.site, db_site(s->db)->site_id) == 0)) {
		db_rollback(s->db);
		in_txn = 0;
		log_event(LOG_LEVEL_WARN, "join_refused", "remote=%s code=%s reason=site_taken site=%s",
			  remote, id, d.site);
		err = syncsrv_reply_error(r, 409, TLY_E_EXISTS,
					  "这个站点编号已经有记录，不能用来加入；请在新的村级台账上重新加入", 0);
		goto out;
	}
	if (!err)
		err = srvstore_join_use(s->db, id, d.id, now);
	if (err == TLY_E_JOIN_USED) {
		db_rollback(s->db);
		in_txn = 0;
		err = syncsrv_reply_error(r, 409, TLY_E_JOIN_USED, NULL, 0);
		goto out;
	}
	if (!err)
		err = srvstore_device_add(s->db, &d, now);
	if (err == TLY_E_EXISTS) {
		db_rollback(s->db);
		in_txn = 0;
		err = syncsrv_reply_error(r, 409, TLY_E_EXISTS,
					  "这台设备（站点）已经加入过；如需重新加入，请先在乡镇注销旧设备", 0);
		goto out;
	}
	if (!err)
		err = srvstore_audit(s->db, now, d.id, d.site, "join", NULL, d.village);
	if (!err)
		err = db_commit(s->db);
	if (err)
		goto out;
	in_txn = 0;
	log_event(LOG_LEVEL_INFO, "device_joined", "device=%s site=%s village=%s remote=%s", d.id,
		  d.site, d.village, remote);
	enrol_token_format(&t, token);
	err = reply_json(r, json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:s}", "v",
				      PROTOCOL_VERSION, "type", "join_answer", "device_id", d.id,
				      "token", token, "village_id", d.village, "village_name", vname,
				      "server_site", db_site(s->db)->site_id, "server_ms",
				      (json_int_t)clock_device_ms(), "epoch", s->epoch));
	memset(token, 0, sizeof token);
out:
	if (in_txn)
		db_rollback(s->db);
	memset(secret, 0, sizeof secret);
	memset(t.secret, 0, sizeof t.secret);
	json_decref(j);
	return err;
}

/* ---- status ---- */

int syncsrv_devices(struct syncsrv *s, const struct syncsrv_principal *p,
		    struct syncsrv_reply *r)
{
	json_t *arr;
	if (p->kind != 'u')
		return syncsrv_reply_error(r, 403, TLY_E_FORBIDDEN, "只有乡镇用户可以查看各设备的同步情况",
					   0);
	int err = srvstore_devices_json(s->db, &arr);
	if (err)
		return err;
	return reply_json(r, json_pack("{s:i,s:s,s:s,s:I,s:o}", "v", PROTOCOL_VERSION, "type",
				       "devices", "epoch", s->epoch, "server_ms",
				       (json_int_t)clock_device_ms(), "devices", arr));
}

int syncsrv_whoami(struct syncsrv *s, const struct syncsrv_principal *p,
		   struct syncsrv_reply *r)
{
	if (p->kind == 'd')
		return reply_json(r, json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "v",
					       PROTOCOL_VERSION, "type", "whoami", "kind", "device",
					       "id", p->id, "site", p->site, "village", p->village,
					       "epoch", s->epoch, "server_ms",
					       (json_int_t)clock_device_ms()));
	return reply_json(r, json_pack("{s:i,s:s,s:s,s:s,s:s,s:I}", "v", PROTOCOL_VERSION, "type",
				       "whoami", "kind", "user", "id", p->id, "epoch", s->epoch,
				       "server_ms", (json_int_t)clock_device_ms()));
}
