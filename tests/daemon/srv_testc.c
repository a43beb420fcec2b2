/*
 * srv_testc — helper of the township server's integration tests: makes
 * real changes in a village database and prints push bodies built from
 * them, so the Python tests send exactly what a village would.
 *
 *   srv_testc make --db V --task TASK --count N   N progress entries (seq order)
 *   srv_testc body --db V --from SEQ --count N [--device-ms MS]
 *                                                 the push JSON of own seqs SEQ..
 *   srv_testc head --db V                         "seq=N" of the village's last change
 *   srv_testc pull --db V                         pulls every page with the credential
 *                                                 `tally join` stored, applies it; "pulled=N"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/clock.h"
#include "client/ledger.h"
#include "client/srvstore.h"
#include "client/store.h"
#include "daemon/httpc.h"
#include "protocol/error.h"
#include "protocol/message.h"

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
	for (int i = 2; i + 1 < argc; i++) {
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	}
	return def;
}

/* What a village's sync daemon will do on pull, minimally: every page from
 * cursor 0, each change applied (held ones are duplicates). */
static int pull_all(struct db *db)
{
	struct buf urls, pin, token, req;
	struct httpc *hc = NULL;
	struct httpc_options o;
	const char *u[1];
	uint64_t cursor = 0;
	size_t total = 0;
	int more = 1, err;

	buf_init(&urls, 8192);
	buf_init(&pin, 1024);
	buf_init(&token, 1024);
	buf_init(&req, 1024);
	err = srvstore_setting_text(db, "sync_urls", &urls);
	if (!err)
		err = srvstore_setting_text(db, "sync_pin", &pin);
	if (!err)
		err = srvstore_setting_text(db, "sync_token", &token);
	if (err)
		goto out;
	char *nl = strchr(urls.data, '\n');
	if (nl)
		*nl = '\0';
	u[0] = urls.data;
	httpc_options_default(&o);
	o.base_urls = u;
	o.n_base_urls = 1;
	o.pin = pin.data;
	err = httpc_new(&o, &hc);
	while (!err && more) {
		struct httpc_response res;
		struct msg_pull_answer a;
		memset(&res, 0, sizeof res);
		buf_reset(&req);
		err = buf_addf(&req, "{\"v\":1,\"type\":\"pull\",\"epoch\":\"\",\"cursor\":%llu,"
				     "\"limit\":1000}",
			       (unsigned long long)cursor);
		struct httpc_request hr = {.method = "POST", .path = "/v1/pull", .token = token.data,
					   .body = req.data, .body_len = req.len};
		if (!err)
			err = httpc_send(hc, &hr, &res);
		if (!err)
			err = msg_decode_pull_answer(res.body.data, res.body.len, NULL, &a);
		httpc_response_clear(&res);
		if (err)
			break;
		err = db_begin(db);
		for (size_t i = 0; i < a.n && !err; i++) {
			enum store_outcome oc;
			err = store_apply_remote(db, a.changes[i], NULL, clock_device_ms(), &oc, NULL,
						 NULL);
		}
		if (!err)
			err = db_commit(db);
		else
			db_rollback(db);
		total += a.n;
		cursor = a.next;
		more = a.more;
		msg_pull_answer_clear(&a);
	}
	if (!err)
		printf("pulled=%zu\n", total);
out:
	httpc_free(hc);
	buf_free(&urls);
	buf_free(&pin);
	buf_free(&token);
	buf_free(&req);
	return err;
}

int main(int argc, char **argv)
{
	struct db *db = NULL;
	int err;
	if (argc < 2 || !arg(argc, argv, "--db", NULL)) {
		fprintf(stderr, "usage: srv_testc make|body|head --db V ...\n");
		return 2;
	}
	err = db_open(arg(argc, argv, "--db", NULL), 0, &db, NULL);
	if (err)
		goto out;
	if (strcmp(argv[1], "make") == 0) {
		long n = atol(arg(argc, argv, "--count", "1"));
		const char *task = arg(argc, argv, "--task", "");
		for (long i = 0; i < n && !err; i++) {
			char id[LEDGER_ID_SIZE], note[64];
			snprintf(note, sizeof note, "第%ld次进展", i + 1);
			err = ledger_progress_add(db, task, 50, note, NULL, NULL, 0, id, NULL);
		}
	} else if (strcmp(argv[1], "head") == 0) {
		uint64_t seq;
		uint8_t h[CHANGE_HASH_LEN];
		err = store_site_head(db, db_site(db)->site_id, &seq, h);
		if (!err)
			printf("seq=%llu\n", (unsigned long long)seq);
	} else if (strcmp(argv[1], "body") == 0) {
		uint64_t from = strtoull(arg(argc, argv, "--from", "1"), NULL, 10);
		size_t n = strtoul(arg(argc, argv, "--count", "1"), NULL, 10), got = 0;
		struct change **cs = NULL;
		struct msg_push m;
		struct buf out;
		memset(&m, 0, sizeof m);
		buf_init(&out, 64u << 20);
		err = store_outbox_read(db, from - 1, n, SIZE_MAX, &cs, &got);
		if (!err && got == 0)
			err = TLY_E_NOT_FOUND;
		if (!err) {
			snprintf(m.site, sizeof m.site, "%s", db_site(db)->site_id);
			memcpy(m.prev, change_prev(cs[0]), CHANGE_HASH_LEN);
			memcpy(m.head, change_hash(cs[got - 1]), CHANGE_HASH_LEN);
			m.changes = cs;
			m.n = got;
			m.device_ms = strtoull(arg(argc, argv, "--device-ms", "0"), NULL, 10);
			if (!m.device_ms)
				m.device_ms = (uint64_t)clock_device_ms();
			m.queue = 0;
			err = msg_encode_push(&m, &out);
		}
		if (!err)
			fwrite(out.data, 1, out.len, stdout);
		store_changes_free(cs, got);
		buf_free(&out);
	} else if (strcmp(argv[1], "pull") == 0) {
		err = pull_all(db);
	} else {
		err = TLY_E_USAGE;
	}
out:
	db_close(db);
	if (err)
		fprintf(stderr, "srv_testc: %s\n", error_name(err));
	return err ? 1 : 0;
}
