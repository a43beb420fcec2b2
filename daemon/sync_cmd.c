/*
 * sync_cmd — `tally sync`: one push-and-pull cycle now, with the same
 * engine as `tallyd sync` (daemon/syncer.h), and a report of what moved.
 * Registered in client/tally.c's command table (declared in client/cmds.h)
 * so people have one program; it lives here because it needs the network.
 */
#include <stdio.h>
#include <string.h>

#include "client/cmds.h"
#include "client/why.h"
#include "daemon/syncer.h"
#include "protocol/error.h"

int cmd_sync(struct cli *cli, const struct cli_args *a)
{
	struct syncer_options o;
	struct syncer *s = NULL;
	struct syncer_report r;
	const char *const *urls = NULL;

	memset(&o, 0, sizeof o);
	o.n_urls = cli_all(a, "url", &urls);
	o.urls = urls;
	o.pin = cli_get(a, "pin");
	o.ca_file = cli_get(a, "ca");
	o.token = cli_get(a, "token");
	int err = syncer_new(cli->db, &o, &s);
	if (err == TLY_E_USAGE) {
		why_set(&cli->why, "本机还没有加入乡镇台账，或者不是村里的台账（先运行 tally join）");
		return err;
	}
	if (err)
		return err;
	err = syncer_cycle(s, 0, &r);
	if (cli->json) {
		json_t *o2 = json_pack(
			"{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "ok",
			err == TLY_OK, "pushed", (json_int_t)r.pushed, "applied",
			(json_int_t)r.applied, "duplicates", (json_int_t)r.duplicates, "rejected",
			(json_int_t)r.rejected, "pulled", (json_int_t)r.pulled, "pulled_new",
			(json_int_t)r.pulled_new, "acked_seq", (json_int_t)r.acked_seq, "queue",
			(json_int_t)r.queue, "bytes_sent", (json_int_t)r.bytes_sent, "bytes_received",
			(json_int_t)r.bytes_received, "offset_ms", (json_int_t)r.offset_ms,
			"epoch_changed", r.epoch_changed);
		if (o2)
			json_object_update_new(
				o2, json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "blobs_uploaded",
					      (json_int_t)r.blobs_uploaded, "blobs_refused",
					      (json_int_t)r.blobs_refused, "blob_bytes",
					      (json_int_t)r.blob_bytes, "blobs_pending",
					      (json_int_t)r.blobs_pending, "requests",
					      (json_int_t)r.requests, "failures",
					      (json_int_t)r.failures));
		if (err) {
			json_object_set_new(o2, "error",
					    json_pack("{s:s, s:s, s:s}", "code", error_name(err),
						      "message", error_text_zh(err), "detail", r.detail));
			cli->json_error_done = 1;
		}
		cli_print_json(o2);
	} else {
		printf("上传 %llu 条（新收 %llu，重复 %llu，被拒收 %llu），下载 %llu 条（新 %llu），"
		       "待上传 %llu 条\n",
		       (unsigned long long)r.pushed, (unsigned long long)r.applied,
		       (unsigned long long)r.duplicates, (unsigned long long)r.rejected,
		       (unsigned long long)r.pulled, (unsigned long long)r.pulled_new,
		       (unsigned long long)r.queue);
		if (r.rejected)
			printf("有修改被乡镇拒收，原因见 tally status\n");
	}
	if (err && r.detail[0])
		why_set(&cli->why, "%s（%s）", error_text_zh(err), r.detail);
	syncer_free(s);
	return err;
}
