/*
 * syncer — one push-and-pull cycle of a village (see syncer.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/clock.h"
#include "client/db.h"
#include "client/store.h"
#include "client/syncstate.h"
#include "daemon/blobsync.h"
#include "daemon/httpc.h"
#include "daemon/syncer.h"
#include "protocol/error.h"
#include "protocol/limits.h"
#include "protocol/message.h"

#define BATCH_MAX 500
#define BATCH_BYTES_MAX (512u * 1024)
#define BATCH_BYTES_MIN 1024u
#define PULL_LIMIT_MAX 500
#define RETRIES_DEFAULT 12

struct syncer {
	struct db *db;
	struct httpc *http;
	char token[SYNCSTATE_TOKEN_LEN];
	char site[CHANGE_SITE_MAX + 1];
	size_t batch_max, batch;       /* changes per push / pull page */
	size_t bytes_max, bytes;       /* canonical bytes per push */
	uint32_t pull_max;
	unsigned max_retries;
	const volatile sig_atomic_t *stop;
	struct limits lim;
};

int syncer_transient(int err)
{
	return err == TLY_E_NETWORK || err == TLY_E_TIMEOUT;
}

size_t syncer_batch(const struct syncer *s)
{
	return s->batch;
}

static int stopping(const struct syncer *s)
{
	return s->stop && *s->stop;
}

int syncer_new(struct db *db, const struct syncer_options *o, struct syncer **out)
{
	struct syncstate_upstream up;
	struct httpc_options ho;
	struct syncer *s = NULL;
	const char *urls[SYNCSTATE_URLS_MAX];
	int err;

	*out = NULL;
	/* A village device, or a township replica pulling with a township
	 * user's credential (it has nothing of its own to push). */
	const struct db_site *site = db_site(db);
	if (!site)
		return TLY_E_USAGE;
	err = syncstate_upstream_get(db, &up);
	if (err)
		return err;
	s = calloc(1, sizeof *s);
	if (!s)
		return TLY_E_NOMEM;
	s->db = db;
	snprintf(s->site, sizeof s->site, "%s", site->site_id);
	limits_default(&s->lim);

	httpc_options_default(&ho);
	if (o->n_urls) {
		ho.base_urls = o->urls;
		ho.n_base_urls = o->n_urls;
	} else {
		for (size_t i = 0; i < up.n_urls; i++)
			urls[i] = up.urls[i];
		ho.base_urls = urls;
		ho.n_base_urls = up.n_urls;
	}
	/* A pin or CA given on the command line replaces the stored trust
	 * whole: mixing a stored pin with an operator's CA would be a trust
	 * nobody chose. */
	if (o->pin || o->ca_file) {
		ho.pin = o->pin;
		ho.ca_file = o->ca_file;
	} else {
		ho.pin = up.pin[0] ? up.pin : NULL;
		ho.ca_file = up.ca_file[0] ? up.ca_file : NULL;
	}
	if (o->connect_timeout_ms)
		ho.connect_timeout_ms = o->connect_timeout_ms;
	if (o->total_timeout_ms)
		ho.total_timeout_ms = o->total_timeout_ms;
	ho.user_agent = "tallyd-sync";
	if (ho.n_base_urls == 0) {
		err = TLY_E_USAGE;
		goto out;
	}
	const char *tok = o->token ? o->token : up.token;
	if (strlen(tok) >= sizeof s->token) {
		err = TLY_E_USAGE;
		goto out;
	}
	strcpy(s->token, tok);
	err = httpc_new(&ho, &s->http);
	if (err)
		goto out;

	s->batch_max = o->max_batch_changes && o->max_batch_changes < BATCH_MAX
			       ? o->max_batch_changes
			       : BATCH_MAX;
	s->bytes_max = o->max_batch_bytes ? o->max_batch_bytes : BATCH_BYTES_MAX;
	if (s->bytes_max < BATCH_BYTES_MIN)
		s->bytes_max = BATCH_BYTES_MIN;
	s->pull_max = o->pull_limit && o->pull_limit < PULL_LIMIT_MAX ? o->pull_limit
								       : PULL_LIMIT_MAX;
	s->batch = s->batch_max;
	s->bytes = s->bytes_max;
	s->max_retries = o->max_retries ? o->max_retries : RETRIES_DEFAULT;
	s->stop = o->stop;
	*out = s;
	s = NULL;
out:
	syncer_free(s);
	return err;
}

void syncer_free(struct syncer *s)
{
	if (!s)
		return;
	httpc_free(s->http);
	free(s);
}

/* The link broke mid-transfer: smaller batches have a better chance of
 * fitting between two drops. */
static void batch_shrink(struct syncer *s)
{
	s->batch = s->batch > 1 ? s->batch / 2 : 1;
	s->bytes = s->bytes / 2 > BATCH_BYTES_MIN ? s->bytes / 2 : BATCH_BYTES_MIN;
}

static void batch_grow(struct syncer *s)
{
	s->batch = s->batch * 2 < s->batch_max ? s->batch * 2 : s->batch_max;
	s->bytes = s->bytes * 2 < s->bytes_max ? s->bytes * 2 : s->bytes_max;
}

/*
 * One POST. On an unexpected status, the server's error message (the
 * protocol's `error`, or httpd's {"error":{...}}) becomes the result code,
 * so a 401 `revoked` or a 409 `seq_gap` reads as such; *expected gets a
 * seq_gap's seq. Anything else that is not 200 + JSON (a captive portal) is
 * TLY_E_HTTP_STATUS.
 */
static int post(struct syncer *s, const char *path, const struct buf *body,
		struct httpc_response *res, uint64_t *expected, struct syncer_report *r)
{
	struct httpc_request req = {0};
	struct msg_error me;
	req.method = "POST";
	req.path = path;
	req.token = s->token[0] ? s->token : NULL;
	req.body = body->data;
	req.body_len = body->len;
	*expected = 0;
	int err = httpc_send(s->http, &req, res);
	r->bytes_sent += res->bytes_sent;
	r->bytes_received += res->bytes_received;
	if (res->retry_after)
		r->retry_after = res->retry_after;
	if (err == TLY_OK) {
		r->requests++;
		return TLY_OK;
	}
	if (err == TLY_E_HTTP_STATUS && res->body.len &&
	    msg_decode_error(res->body.data, res->body.len, &s->lim, &me) == TLY_OK) {
		err = me.code;
		*expected = me.expected;
		if (me.retry_after)
			r->retry_after = me.retry_after;
		snprintf(r->detail, sizeof r->detail, "%s", me.message ? me.message : "");
		msg_error_clear(&me);
	} else if (err == TLY_E_HTTP_STATUS && res->remote_code != TLY_OK) {
		err = res->remote_code;
		snprintf(r->detail, sizeof r->detail, "%s",
			 res->remote_message ? res->remote_message : "");
	} else if (err == TLY_E_HTTP_STATUS) {
		snprintf(r->detail, sizeof r->detail, "HTTP %ld %s", res->status,
			 res->content_type);
	} else {
		snprintf(r->detail, sizeof r->detail, "%s", res->detail);
	}
	if (err == TLY_OK) /* an error message that says ok is no answer */
		err = TLY_E_REMOTE;
	r->failures++;
	return err;
}

/* Applies a push answer in the caller's transaction (see push_batch). */
static int apply_push_answer(struct syncer *s, struct change **cs, size_t n,
			     const struct msg_push_answer *a, struct syncer_report *r)
{
	int err = TLY_OK;
	for (size_t i = 0; i < a->n && !err; i++) {
		const struct push_result *pr = &a->results[i];
		if (pr->eff && pr->eff != change_eff(cs[i]))
			err = store_set_eff(s->db, s->site, pr->seq, pr->eff);
		if (err)
			break;
		if (pr->status == PUSH_APPLIED) {
			r->applied++;
		} else if (pr->status == PUSH_DUPLICATE) {
			r->duplicates++;
		} else {
			int found = 0, rejected = 0, code = 0;
			r->rejected++;
			err = store_change_state(s->db, s->site, pr->seq, &found, &rejected, &code,
						 NULL);
			/* Marked once: a resend after an epoch change answers it again. */
			if (!err && found && !rejected)
				err = store_outbox_reject(s->db, pr->seq, pr->code,
							  pr->reason ? pr->reason : "");
		}
	}
	(void)n;
	return err;
}

/*
 * Sends one batch from *after (exclusive). *after moves past what the
 * server acknowledged, or back to a seq_gap's `expected`; *done when the
 * outbox had nothing past it.
 */
static int push_batch(struct syncer *s, uint64_t *after, int *done, struct syncer_report *r)
{
	struct change **cs = NULL;
	size_t n = 0;
	struct buf body;
	struct httpc_response res;
	struct msg_push m;
	struct msg_push_answer a;
	struct store_outbox_stats ob;
	struct syncstate st;
	uint64_t expected = 0;
	int in_txn = 0;

	memset(&res, 0, sizeof res);
	memset(&a, 0, sizeof a);
	buf_init(&body, s->lim.max_inflated_bytes);
	*done = 0;
	int err = store_outbox_read(s->db, *after, s->batch, s->bytes, &cs, &n);
	if (err)
		goto out;
	if (n == 0) {
		*done = 1;
		goto out;
	}
	err = store_outbox_stats(s->db, &ob);
	if (err)
		goto out;
	memset(&m, 0, sizeof m);
	snprintf(m.site, sizeof m.site, "%s", s->site);
	memcpy(m.prev, change_prev(cs[0]), CHANGE_HASH_LEN);
	memcpy(m.head, change_hash(cs[n - 1]), CHANGE_HASH_LEN);
	m.changes = cs;
	m.n = n;
	m.device_ms = (uint64_t)clock_device_ms();
	m.queue = (int64_t)(ob.last_seq - change_seq(cs[n - 1]));
	err = msg_encode_push(&m, &body);
	if (err)
		goto out;

	err = post(s, "/v1/push", &body, &res, &expected, r);
	if (err == TLY_E_SEQ_GAP && expected >= 1 && expected - 1 < *after) {
		/* The server lacks changes before this batch (it was restored, or
		 * an earlier answer was lost with the server's disk): resend from
		 * where it needs. Nothing here is marked. */
		*after = expected - 1;
		err = TLY_OK;
		goto out;
	}
	if (err)
		goto out;
	err = msg_decode_push_answer(res.body.data, res.body.len, &s->lim, &a);
	if (err)
		goto out;
	if (a.expected) {
		if (a.expected - 1 >= *after) {
			err = TLY_E_REMOTE;
			goto out;
		}
		*after = a.expected - 1;
		goto out;
	}
	/* A valid answer must speak of exactly the changes sent. */
	if (a.n != n || change_seq(cs[0]) != a.results[0].seq) {
		err = TLY_E_SEQ_ORDER;
		goto out;
	}
	r->offset_ms = a.offset_ms;

	/*
	 * Durability order (guarantee 3): the server committed these changes
	 * before it answered; only now, holding a valid answer, does the village
	 * mark them acknowledged, in one transaction with the eff re-stamps and
	 * the rejections, so a crash leaves either all of it or none (and then
	 * the batch is simply resent and answered duplicate).
	 */
	err = db_begin(s->db);
	if (err)
		goto out;
	in_txn = 1;
	err = syncstate_load(s->db, &st);
	if (err)
		goto out;
	err = apply_push_answer(s, cs, n, &a, r);
	if (err)
		goto out;
	uint64_t last = change_seq(cs[n - 1]);
	uint64_t acked = a.acked < last ? a.acked : last;
	if (st.epoch[0] && strcmp(st.epoch, a.epoch) != 0) {
		/* PROTOCOL.md §11: a new epoch acknowledged nothing we knew of;
		 * everything is resent from seq 1 and the pull starts over. */
		err = syncstate_epoch_reset(s->db, a.epoch);
		r->epoch_changed = 1;
		acked = 0;
	} else {
		err = store_outbox_ack(s->db, a.epoch, acked);
	}
	if (!err)
		err = syncstate_record_clock(s->db, a.server_ms, a.offset_ms);
	if (!err)
		err = db_commit(s->db);
	if (err)
		goto out;
	in_txn = 0;
	r->pushed += n;
	if (acked > *after || r->epoch_changed) {
		*after = acked;
		r->progress = 1;
	}
	if (!r->epoch_changed && acked < last && acked <= *after) {
		/* Answered but not held: the server could not take them now. */
		err = TLY_E_UNAVAILABLE;
	}
out:
	if (in_txn)
		db_rollback(s->db);
	msg_push_answer_clear(&a);
	httpc_response_clear(&res);
	buf_free(&body);
	store_changes_free(cs, n);
	return err;
}

/* The chain of a received change must continue what we hold of its site
 * (PROTOCOL.md §7.6: a page cannot prove the first prev of a run). */
static int check_link(struct syncer *s, const struct change *c)
{
	uint64_t head = 0;
	uint8_t hash[CHANGE_HASH_LEN];
	int err = store_site_head(s->db, change_site(c), &head, hash);
	if (err)
		return err;
	if (head + 1 == change_seq(c) && memcmp(hash, change_prev(c), CHANGE_HASH_LEN) != 0)
		return TLY_E_CHAIN;
	return TLY_OK;
}

/* Pulls one page and applies it with the new cursor in one transaction. */
static int pull_page(struct syncer *s, int *more, struct syncer_report *r)
{
	struct buf body;
	struct httpc_response res;
	struct msg_pull p;
	struct msg_pull_answer a;
	struct syncstate st;
	uint64_t expected = 0;
	int in_txn = 0;

	memset(&res, 0, sizeof res);
	memset(&a, 0, sizeof a);
	memset(&p, 0, sizeof p);
	buf_init(&body, 4096);
	*more = 0;
	int err = syncstate_load(s->db, &st);
	if (err)
		goto out;
	snprintf(p.epoch, sizeof p.epoch, "%s", st.epoch);
	p.cursor = st.pull_cursor;
	p.limit = (uint32_t)(s->batch < s->pull_max ? s->batch : s->pull_max);
	err = msg_encode_pull(&p, &body);
	if (err)
		goto out;
	int64_t t0 = clock_device_ms();
	err = post(s, "/v1/pull", &body, &res, &expected, r);
	if (err)
		goto out;
	int64_t t1 = clock_device_ms();
	err = msg_decode_pull_answer(res.body.data, res.body.len, &s->lim, &a);
	if (err)
		goto out;
	/* The answer's clock against the middle of the exchange. */
	r->offset_ms = (int64_t)a.server_ms - (t0 + (t1 - t0) / 2);

	err = db_begin(s->db);
	if (err)
		goto out;
	in_txn = 1;
	if (st.epoch[0] && strcmp(st.epoch, a.epoch) != 0) {
		/* §11: the page belongs to another history's cursor; start over. */
		err = syncstate_epoch_reset(s->db, a.epoch);
		if (!err)
			err = db_commit(s->db);
		if (!err) {
			in_txn = 0;
			r->epoch_changed = 1;
		}
		goto out;
	}
	if (!st.epoch[0])
		err = syncstate_epoch_reset(s->db, a.epoch);
	int64_t now = clock_device_ms();
	for (size_t i = 0; i < a.n && !err; i++) {
		enum store_outcome oc;
		err = check_link(s, a.changes[i]);
		if (!err)
			err = store_apply_remote(s->db, a.changes[i], NULL, now, &oc, NULL, NULL);
		if (!err && oc != STORE_DUPLICATE)
			r->pulled_new++;
	}
	if (!err)
		err = syncstate_set_cursor(s->db, a.next);
	if (!err)
		err = syncstate_record_clock(s->db, a.server_ms, r->offset_ms);
	if (!err)
		err = db_commit(s->db);
	if (err)
		goto out;
	in_txn = 0;
	r->pulled += a.n;
	if (a.n || a.next != st.pull_cursor)
		r->progress = 1;
	/* A server that says "more" but moved nothing would loop us forever. */
	*more = a.more && (a.n > 0 || a.next != st.pull_cursor);
out:
	if (in_txn)
		db_rollback(s->db);
	msg_pull_answer_clear(&a);
	httpc_response_clear(&res);
	buf_free(&body);
	return err;
}

/* Runs step() until it says done, retrying transient failures with a
 * smaller batch while requests keep succeeding in between. */
static int run_phase(struct syncer *s, int pull, struct syncer_report *r)
{
	struct syncstate st;
	unsigned fails = 0;
	uint64_t after = 0;
	int err = TLY_OK;
	if (!pull) {
		err = syncstate_load(s->db, &st);
		if (err)
			return err;
		after = st.acked_seq;
	}
	for (;;) {
		int done = 0, more = 0;
		if (stopping(s))
			return TLY_OK;
		err = pull ? pull_page(s, &more, r) : push_batch(s, &after, &done, r);
		if (r->epoch_changed)
			return err;
		if (err && syncer_transient(err) && ++fails <= s->max_retries) {
			batch_shrink(s);
			continue;
		}
		if (err)
			return err;
		fails = 0;
		batch_grow(s);
		if (pull ? !more : done)
			return TLY_OK;
	}
}

/* Evidence files, after the records (see syncer.h step 3). */
static int run_blobs(struct syncer *s, struct syncer_report *r)
{
	struct blobsync_options bo = {s->max_retries, s->stop};
	struct blobsync_report br;
	int err = blobsync_run(s->db, s->http, s->token, &bo, &br);
	r->blobs_uploaded += br.uploaded;
	r->blobs_refused += br.refused;
	r->blob_bytes += br.bytes;
	r->blobs_pending = br.pending;
	r->bytes_sent += br.http_sent;
	r->bytes_received += br.http_received;
	r->failures += br.failures;
	if (br.uploaded || br.chunks)
		r->progress = 1;
	if (err || br.deferred)
		snprintf(r->detail, sizeof r->detail, "%s", br.detail);
	return err;
}

int syncer_cycle(struct syncer *s, int64_t next_attempt_ms, struct syncer_report *r)
{
	struct store_outbox_stats ob;
	int restarts = 0, epoch_seen = 0;

	memset(r, 0, sizeof *r);
	int err = syncstate_record_attempt(s->db, clock_device_ms());
	if (err)
		return err;
	for (;;) {
		r->epoch_changed = 0;
		err = run_phase(s, 0, r);
		if (!err && !r->epoch_changed)
			err = run_phase(s, 1, r);
		if (!err && !r->epoch_changed && !stopping(s))
			err = run_blobs(s, r);
		epoch_seen |= r->epoch_changed;
		/* An epoch change restarts the cycle from seq 1; twice in one cycle
		 * means the server keeps changing its mind: try again later. */
		if (r->epoch_changed && restarts++ < 2 && !stopping(s)) {
			err = TLY_OK;
			continue;
		}
		break;
	}
	if (r->epoch_changed && !err)
		err = TLY_E_UNAVAILABLE;
	r->epoch_changed = epoch_seen;
	if (store_outbox_stats(s->db, &ob) == TLY_OK) {
		r->acked_seq = ob.acked_seq;
		r->queue = ob.pending;
	}
	if (stopping(s) && !err)
		return TLY_OK; /* neither a success nor an error: we were asked to stop */
	int rec = err ? syncstate_record_error(s->db, err, r->detail[0] ? r->detail : NULL,
					       next_attempt_ms, r->bytes_sent, r->bytes_received)
		      : syncstate_record_success(s->db, clock_device_ms(), r->bytes_sent,
						 r->bytes_received);
	return err ? err : rec;
}
