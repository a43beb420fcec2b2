/*
 * syncd — `tallyd sync`, the village's sync loop (see syncd.h).
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "client/clock.h"
#include "client/db.h"
#include "client/store.h"
#include "daemon/log.h"
#include "daemon/syncd.h"
#include "daemon/syncer.h"
#include "protocol/error.h"

#define SYNCD_MAX_URLS 8

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

void syncd_options_default(struct syncd_options *o)
{
	memset(o, 0, sizeof *o);
	o->idle_pull_ms = 60000;
	o->backoff_min_ms = 1000;
	o->backoff_max_ms = 5 * 60 * 1000;
	o->debounce_ms = 200;
}

int64_t syncd_backoff_ms(const struct syncd_options *o, unsigned failures, uint64_t rnd)
{
	int64_t cap = o->backoff_min_ms;
	for (unsigned i = 1; i < failures && cap < o->backoff_max_ms; i++)
		cap *= 2;
	if (cap > o->backoff_max_ms)
		cap = o->backoff_max_ms;
	if (cap <= 0)
		return 0;
	/* Full jitter: villages that lost the link together (the township's
	 * uplink went down) do not come back in step. */
	return (int64_t)(rnd % (uint64_t)(cap + 1));
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t random_u64(void)
{
	uint64_t v = 0;
	if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v)
		v = (uint64_t)mono_ms() * 6364136223846793005ull + (uint64_t)getpid();
	return v;
}

/* Watches the directory: SQLite replaces nothing, but the -wal file is
 * created and deleted as connections come and go, so watching it alone
 * would miss the first write after a checkpoint removed it. */
static int watch_dir(const char *db_path, int *fd_out)
{
	char dir[4096];
	const char *slash = strrchr(db_path, '/');
	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else if (slash == db_path)
		snprintf(dir, sizeof dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - db_path), db_path);
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return TLY_E_IO;
	if (inotify_add_watch(fd, dir, IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO) < 0) {
		close(fd);
		return TLY_E_IO;
	}
	*fd_out = fd;
	return TLY_OK;
}

/* Drains the inotify queue; 1 if an event named the database or its -wal. */
static int drain(int fd, const char *base)
{
	char evbuf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	size_t blen = strlen(base);
	int hit = 0;
	for (;;) {
		ssize_t n = read(fd, evbuf, sizeof evbuf);
		if (n <= 0)
			break;
		for (char *p = evbuf; p < evbuf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			if (ev->len && strncmp(ev->name, base, blen) == 0 &&
			    (ev->name[blen] == '\0' || strcmp(ev->name + blen, "-wal") == 0))
				hit = 1;
			p += sizeof *ev + ev->len;
		}
	}
	return hit;
}

int syncd_run(struct db *db, const struct syncd_options *o)
{
	struct syncer *s = NULL;
	struct syncer_options so = o->sync;
	struct sigaction sa;
	struct store_outbox_stats ob;
	int ifd = -1;
	unsigned failures = 0;
	uint64_t seen_seq = 0;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: poll returns at once with EINTR. */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	so.stop = &stop_flag;

	int err = syncer_new(db, &so, &s);
	if (err) {
		log_event(LOG_LEVEL_ERROR, "sync_not_configured", "code=%s", error_name(err));
		goto out;
	}
	const char *path = db_path(db);
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	err = watch_dir(path, &ifd);
	if (err) {
		log_event(LOG_LEVEL_ERROR, "sync_watch_failed", "errno=%d", errno);
		goto out;
	}
	if (store_outbox_stats(db, &ob) == TLY_OK)
		seen_seq = ob.last_seq;
	log_event(LOG_LEVEL_INFO, "sync_started", "db=%s queue=%llu", path,
		  (unsigned long long)ob.pending);

	int64_t due = mono_ms(); /* sync at start */
	while (!stop_flag) {
		int64_t now = mono_ms();
		if (now >= due) {
			struct syncer_report r;
			int64_t delay;
			/* The planned retry time goes into sync_state with an error,
			 * for `tally status`; computed before the cycle so it is
			 * stored in the same write. */
			delay = syncd_backoff_ms(o, failures + 1, random_u64());
			int rc = syncer_cycle(s, clock_device_ms() + delay, &r);
			if (stop_flag)
				break;
			if (rc == TLY_OK || r.progress)
				failures = 0;
			if (rc == TLY_OK) {
				log_event(LOG_LEVEL_INFO, "sync_done",
					  "pushed=%llu applied=%llu duplicate=%llu rejected=%llu "
					  "pulled=%llu new=%llu acked=%llu queue=%llu sent=%llu "
					  "received=%llu offset_ms=%lld epoch_changed=%d",
					  (unsigned long long)r.pushed, (unsigned long long)r.applied,
					  (unsigned long long)r.duplicates,
					  (unsigned long long)r.rejected, (unsigned long long)r.pulled,
					  (unsigned long long)r.pulled_new,
					  (unsigned long long)r.acked_seq, (unsigned long long)r.queue,
					  (unsigned long long)r.bytes_sent,
					  (unsigned long long)r.bytes_received, (long long)r.offset_ms,
					  r.epoch_changed);
				/* Written while we were busy: go again at once. */
				due = mono_ms() + (r.queue ? 0 : o->idle_pull_ms);
			} else {
				failures++;
				delay = syncd_backoff_ms(o, failures, random_u64());
				if ((int64_t)r.retry_after * 1000 > delay)
					delay = (int64_t)r.retry_after * 1000;
				log_event(LOG_LEVEL_WARN, "sync_failed",
					  "code=%s detail=%s failures=%u retry_ms=%lld pushed=%llu "
					  "pulled=%llu queue=%llu batch=%zu",
					  error_name(rc), r.detail, failures, (long long)delay,
					  (unsigned long long)r.pushed, (unsigned long long)r.pulled,
					  (unsigned long long)r.queue, syncer_batch(s));
				due = mono_ms() + delay;
			}
			if (store_outbox_stats(db, &ob) == TLY_OK)
				seen_seq = ob.last_seq;
			continue;
		}
		struct pollfd pfd = {.fd = ifd, .events = POLLIN};
		int64_t wait = due - now;
		int pr = poll(&pfd, 1, wait > 600000 ? 600000 : (int)wait);
		if (pr < 0 && errno != EINTR) {
			err = TLY_E_IO;
			break;
		}
		if (pr > 0 && drain(ifd, base)) {
			/* Our own acknowledgements write the WAL too: only a grown
			 * outbox (a `tally` write) is a reason to sync now. */
			if (store_outbox_stats(db, &ob) == TLY_OK && ob.last_seq > seen_seq) {
				seen_seq = ob.last_seq;
				int64_t soon = mono_ms() + o->debounce_ms;
				if (soon < due)
					due = soon;
			}
		}
	}
	log_event(LOG_LEVEL_INFO, "sync_stopped", NULL);
out:
	if (ifd >= 0)
		close(ifd);
	syncer_free(s);
	return err;
}

static int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end = NULL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || !end || *end || end == s || v < min || v > max)
		return TLY_E_USAGE;
	*out = v;
	return TLY_OK;
}

static void usage(void)
{
	fprintf(stderr,
		"用法：tallyd sync --db PATH [--url URL]... [--pin PIN | --ca FILE] [--token TOKEN]\n"
		"                  [--idle-pull SECONDS] [--backoff-min-ms MS] [--backoff-max-ms MS]\n"
		"                  [--batch N] [--timeout-ms MS] [--log-level debug|info|warn|error]\n"
		"在前台持续同步：本机有新记录时立即上传，空闲时每隔一段时间从乡镇拉取；"
		"SIGTERM 时干净退出。\n");
}

int syncd_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'd'},
		{"url", required_argument, NULL, 'u'},
		{"pin", required_argument, NULL, 'p'},
		{"ca", required_argument, NULL, 'c'},
		{"token", required_argument, NULL, 't'},
		{"idle-pull", required_argument, NULL, 'i'},
		{"backoff-min-ms", required_argument, NULL, 'm'},
		{"backoff-max-ms", required_argument, NULL, 'M'},
		{"batch", required_argument, NULL, 'b'},
		{"timeout-ms", required_argument, NULL, 'T'},
		{"log-level", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{0, 0, 0, 0},
	};
	struct syncd_options o;
	const char *urls[SYNCD_MAX_URLS];
	const char *dbp = NULL;
	struct db *db = NULL;
	struct buf why;
	int64_t v;
	int c, level, err = TLY_OK;

	syncd_options_default(&o);
	o.sync.urls = urls;
	buf_init(&why, 1024);
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dbp = optarg;
			break;
		case 'u':
			if (o.sync.n_urls == SYNCD_MAX_URLS)
				err = TLY_E_USAGE;
			else
				urls[o.sync.n_urls++] = optarg;
			break;
		case 'p':
			o.sync.pin = optarg;
			break;
		case 'c':
			o.sync.ca_file = optarg;
			break;
		case 't':
			o.sync.token = optarg;
			break;
		case 'i':
			err = parse_i64(optarg, 1, 86400, &v);
			o.idle_pull_ms = v * 1000;
			break;
		case 'm':
			err = parse_i64(optarg, 1, 3600000, &o.backoff_min_ms);
			break;
		case 'M':
			err = parse_i64(optarg, 1, 3600000, &o.backoff_max_ms);
			break;
		case 'b':
			err = parse_i64(optarg, 1, 1000, &v);
			o.sync.max_batch_changes = (size_t)v;
			break;
		case 'T':
			err = parse_i64(optarg, 100, 3600000, &v);
			o.sync.total_timeout_ms = (unsigned)v;
			break;
		case 'l':
			err = log_parse_level(optarg, &level);
			if (!err)
				log_set_level(level);
			break;
		case 'h':
			usage();
			return 0;
		default:
			err = TLY_E_USAGE;
		}
		if (err)
			break;
	}
	if (!err && (!dbp || optind != argc))
		err = TLY_E_USAGE;
	if (err) {
		usage();
		return 2;
	}
	err = db_open(dbp, 0, &db, &why);
	if (err) {
		fprintf(stderr, "错误：%s%s%s (%s)\n", error_text_zh(err), why.len ? "：" : "",
			why.len ? why.data : "", error_name(err));
		goto out;
	}
	err = syncd_run(db, &o);
	if (err == TLY_E_USAGE)
		fprintf(stderr, "错误：本机还没有加入乡镇台账，或不是村里的台账（先运行 tally join） (%s)\n",
			error_name(err));
out:
	db_close(db);
	buf_free(&why);
	return err == TLY_OK ? 0 : err == TLY_E_USAGE ? 2 : 1;
}
