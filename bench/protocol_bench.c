/*
 * bench_protocol — what a push costs: changes hashed + encoded + gzip'd per
 * second on one core, and bytes on the wire per change, for two batches of
 * 100 changes:
 *
 *   updates    typical progress reports: status and progress of a task
 *   new_tasks  new tasks with a ~150-character Chinese problem text and
 *              the other task fields (measures, owner, leader, deadline,
 *              village, status, progress)
 *
 * The send side is chain_link_run + msg_encode_push + compress_gzip, the
 * receive side compress_inflate + msg_decode_push (which scans, parses and
 * re-verifies the chain). Single-threaded; run it from a Release build.
 *
 *   bench_protocol [SECONDS_PER_CASE]   (default 2)
 *
 * Prints a table, then one JSON object on the last line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protocol/chain.h"
#include "protocol/change.h"
#include "protocol/compress.h"
#include "protocol/error.h"
#include "protocol/hlc.h"
#include "protocol/limits.h"
#include "protocol/message.h"

#define BATCH 100
#define SITE "v07-wangjiazhuang"
#define MS0 UINT64_C(1774918800000)

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_protocol: %s: %s\n", what, error_name(rc));
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Ledger-like text: set phrases of rectification reports (which real
 * ledgers repeat a lot) alternating with runs of common characters drawn at
 * random (which no compressor can predict), so gzip sees text neither as
 * repetitive as a template nor as random as noise. */
static const char *const phrases[] = {
	"村集体经济合同管理不规范，",
	"部分合同未经村民代表会议讨论，",
	"惠农补贴资金发放台账不完整，",
	"存在优亲厚友现象，",
	"农村人居环境整治不到位，",
	"垃圾清运不及时，",
	"村务公开栏内容更新滞后，",
	"低保对象动态管理不严格，",
	"工程项目未按规定公开招标，",
	"“三资”管理制度执行不严，",
	"村干部履职尽责不到位，",
	"群众反映的问题未及时办理，",
	"危房改造验收把关不严，",
	"防汛物资储备不足，",
	"集体土地发包程序不规范，",
	"财务票据审核不严格，",
};

static const char common[] =
	"的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也"
	"能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实"
	"加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样"
	"与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情"
	"者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级"
	"少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色"
	"光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再"
	"采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马"
	"节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须";

static const char *const names[] = {"张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄强"};

/* About `chars` Chinese characters (3 bytes each) ending in "。". */
static void chinese_text(struct buf *b, unsigned seed, size_t chars)
{
	const size_t ncommon = (sizeof common - 1) / 3;
	uint32_t x = seed * 2654435761u + 1;
	int rc = TLY_OK;

	buf_reset(b);
	while (rc == TLY_OK && b->len / 3 < chars - 1) {
		x = x * 1103515245u + 12345u;
		if ((x >> 30) & 1) {
			rc = buf_add_str(b, phrases[(x >> 16) % (sizeof phrases / sizeof phrases[0])]);
			continue;
		}
		for (unsigned k = 0; rc == TLY_OK && k < 4 + (x >> 20) % 7; k++) {
			x = x * 1103515245u + 12345u;
			rc = buf_add(b, common + 3 * ((x >> 12) % ncommon), 3);
		}
		if (rc == TLY_OK)
			rc = buf_add_str(b, "，");
	}
	if (rc == TLY_OK)
		rc = buf_add_str(b, "。");
	if (rc != TLY_OK)
		die("text", rc);
}

static void set_text(struct change *c, const char *name, const char *v, size_t n)
{
	int rc = change_set_text(c, name, v, n, NULL);
	if (rc != TLY_OK)
		die(name, rc);
}

static void set_int(struct change *c, const char *name, int64_t v)
{
	int rc = change_set_int(c, name, v, NULL);
	if (rc != TLY_OK)
		die(name, rc);
}

static struct change *new_change(uint64_t seq, unsigned task)
{
	struct change *c = NULL;
	char id[24];
	snprintf(id, sizeof id, "t%08x", task * 2654435761u);
	int rc = change_new(&c, CHANGE_SCHEMA_VERSION, SITE, seq,
			    hlc_make(MS0 + seq * 37000, (uint32_t)(seq & 3)), "task", id);
	if (rc != TLY_OK)
		die("change_new", rc);
	return c;
}

/* (a) status + progress of 100 tasks. */
static void make_updates(struct change **cs, uint64_t first)
{
	static const char *const status[] = {"doing", "doing", "doing", "submitted"};
	for (unsigned i = 0; i < BATCH; i++) {
		cs[i] = new_change(first + i, i * 7 + 3);
		const char *s = status[i % 4];
		set_text(cs[i], "status", s, strlen(s));
		set_int(cs[i], "progress", (int64_t)(10 + (i * 13) % 90));
	}
}

/* (b) 100 new tasks, each with every task field. */
static void make_new_tasks(struct change **cs, uint64_t first, size_t *text_bytes)
{
	struct buf problem, measures;
	char deadline[16];
	buf_init(&problem, 1 << 16);
	buf_init(&measures, 1 << 16);
	*text_bytes = 0;
	for (unsigned i = 0; i < BATCH; i++) {
		cs[i] = new_change(first + i, i);
		chinese_text(&problem, i, 150);
		chinese_text(&measures, i + 1000, 60);
		*text_bytes += problem.len;
		snprintf(deadline, sizeof deadline, "2026-%02u-%02u", 4 + i % 9, 1 + i % 28);
		set_text(cs[i], "problem", problem.data, problem.len);
		set_text(cs[i], "measures", measures.data, measures.len);
		set_text(cs[i], "owner", names[i % 8], strlen(names[i % 8]));
		set_text(cs[i], "leader", names[(i + 3) % 8], strlen(names[(i + 3) % 8]));
		set_text(cs[i], "deadline", deadline, strlen(deadline));
		set_text(cs[i], "village", SITE, strlen(SITE));
		set_text(cs[i], "status", "todo", 4);
		set_int(cs[i], "progress", 0);
	}
	*text_bytes /= BATCH;
	buf_free(&problem);
	buf_free(&measures);
}

struct result {
	const char *name;
	size_t json_bytes, gzip_bytes;
	double send_per_s;  /* changes hashed + encoded + gzip'd per second */
	double hash_per_s, encode_per_s, gzip_per_s;
	double recv_per_s;  /* changes inflated + decoded + verified per second */
};

/* One send: hash the batch, encode the push, gzip it. */
static void send_once(struct change **cs, struct buf *json, struct buf *gz, double t[3])
{
	struct msg_push m = {.changes = cs, .n = BATCH, .device_ms = MS0, .queue = 0};
	double t0 = now_s();
	int rc = chain_link_run(cs, BATCH, chain_genesis, NULL);
	if (rc != TLY_OK)
		die("chain_link_run", rc);
	double t1 = now_s();
	strcpy(m.site, SITE);
	memcpy(m.prev, chain_genesis, CHANGE_HASH_LEN);
	memcpy(m.head, change_hash(cs[BATCH - 1]), CHANGE_HASH_LEN);
	buf_reset(json);
	if ((rc = msg_encode_push(&m, json)) != TLY_OK)
		die("msg_encode_push", rc);
	double t2 = now_s();
	buf_reset(gz);
	if ((rc = compress_gzip(json->data, json->len, gz)) != TLY_OK)
		die("compress_gzip", rc);
	double t3 = now_s();
	t[0] += t1 - t0;
	t[1] += t2 - t1;
	t[2] += t3 - t2;
}

static void run_case(struct result *r, struct change **cs, double secs)
{
	const struct limits *l = limits_or_default(NULL);
	struct buf json, gz, body;
	double t[3] = {0, 0, 0};
	long iters = 0;
	int rc;

	buf_init(&json, l->max_inflated_bytes);
	buf_init(&gz, l->max_body_bytes);
	buf_init(&body, l->max_inflated_bytes);

	send_once(cs, &json, &gz, t); /* warm up */
	t[0] = t[1] = t[2] = 0;
	double start = now_s();
	while (now_s() - start < secs) {
		send_once(cs, &json, &gz, t);
		iters++;
	}
	double total = t[0] + t[1] + t[2];
	r->send_per_s = (double)BATCH * (double)iters / total;
	r->hash_per_s = (double)BATCH * (double)iters / t[0];
	r->encode_per_s = (double)BATCH * (double)iters / t[1];
	r->gzip_per_s = (double)BATCH * (double)iters / t[2];
	r->json_bytes = json.len;
	r->gzip_bytes = gz.len;

	long riters = 0;
	start = now_s();
	double elapsed;
	while ((elapsed = now_s() - start) < secs) {
		struct msg_push d;
		if ((rc = compress_inflate(gz.data, gz.len, &body)) != TLY_OK)
			die("compress_inflate", rc);
		if ((rc = msg_decode_push(body.data, body.len, NULL, &d)) != TLY_OK)
			die("msg_decode_push", rc);
		msg_push_clear(&d);
		riters++;
	}
	r->recv_per_s = (double)BATCH * (double)riters / elapsed;
	buf_free(&json);
	buf_free(&gz);
	buf_free(&body);
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 2.0;
	struct change *cs[BATCH];
	struct result r[2];
	size_t text_bytes;

	if (secs <= 0)
		secs = 2.0;
	memset(r, 0, sizeof r);

	make_updates(cs, 1);
	r[0].name = "updates";
	run_case(&r[0], cs, secs);
	for (size_t i = 0; i < BATCH; i++)
		change_free(cs[i]);

	make_new_tasks(cs, 1, &text_bytes);
	r[1].name = "new_tasks";
	run_case(&r[1], cs, secs);
	for (size_t i = 0; i < BATCH; i++)
		change_free(cs[i]);

	printf("batch of %d changes, one thread, %.1f s per measurement\n", BATCH, secs);
	printf("new_tasks: problem text %zu bytes (%zu characters) per task\n\n", text_bytes,
	       text_bytes / 3);
	printf("%-10s %12s %12s %12s %12s %12s %10s %10s %8s\n", "case", "send/s", "hash/s",
	       "encode/s", "gzip/s", "receive/s", "json B/chg", "wire B/chg", "ratio");
	for (int k = 0; k < 2; k++)
		printf("%-10s %12.0f %12.0f %12.0f %12.0f %12.0f %10.1f %10.1f %8.2f\n", r[k].name,
		       r[k].send_per_s, r[k].hash_per_s, r[k].encode_per_s, r[k].gzip_per_s,
		       r[k].recv_per_s, (double)r[k].json_bytes / BATCH,
		       (double)r[k].gzip_bytes / BATCH,
		       (double)r[k].json_bytes / (double)r[k].gzip_bytes);
	printf("\n(send = hashed + encoded + gzip'd; receive = inflated + scanned + parsed + "
	       "chain-verified; changes per second)\n");

	printf("{\"batch\":%d,\"seconds\":%.1f,\"cases\":[", BATCH, secs);
	for (int k = 0; k < 2; k++)
		printf("%s{\"case\":\"%s\",\"send_changes_per_s\":%.0f,\"hash_per_s\":%.0f,"
		       "\"encode_per_s\":%.0f,\"gzip_per_s\":%.0f,\"receive_changes_per_s\":%.0f,"
		       "\"json_bytes_per_change\":%.1f,\"wire_bytes_per_change\":%.1f}",
		       k ? "," : "", r[k].name, r[k].send_per_s, r[k].hash_per_s, r[k].encode_per_s,
		       r[k].gzip_per_s, r[k].recv_per_s, (double)r[k].json_bytes / BATCH,
		       (double)r[k].gzip_bytes / BATCH);
	printf("]}\n");
	return 0;
}
