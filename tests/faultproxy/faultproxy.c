/*
 * faultproxy — a userspace TCP proxy that breaks links on purpose, for
 * tests (tc netem does not exist on these machines).
 *
 *   faultproxy --listen 127.0.0.1:0 --target 127.0.0.1:PORT
 *              [--control 127.0.0.1:0] [--latency-ms N]
 *              [--cut MIN-MAX] [--cut-dir c2s|s2c|both] [--cut-mode rst|fin]
 *              [--stall-after N --stall-ms M] [--kill-every MS] [--refuse]
 *              [--seed N] [--max-buffer BYTES] [--verbose]
 *
 * Prints "listen=PORT control=PORT" on stdout once ready (PORT 0 when no
 * --control), then proxies until SIGTERM/SIGINT or the "quit" command.
 *
 * Faults (set at start or at run time; cut and stall apply to connections
 * accepted after the change, latency and refuse at once):
 *   latency   every chunk is held N ms in each direction, order kept
 *   cut       each connection gets a cut point drawn uniformly in
 *             [MIN, MAX] bytes for each direction in cut-dir; exactly that
 *             many bytes are forwarded, then both sides are closed, with a
 *             reset (rst, the default: SO_LINGER 0) or a plain close (fin)
 *   stall     after N bytes in a cut-dir direction, nothing moves for M ms
 *             (M = 0: forever), once per connection
 *   refuse    the listening socket is closed: connects get "connection
 *             refused"; "off" listens again on the same port
 *   kill      at random intervals (exponential, mean MS, at least 5 ms)
 *             every open connection is reset at once, wherever its bytes
 *             are: the "ms" fault of the PouchDB bench's tcp_proxy.js
 *             (../shared/bench/peers), so both systems face the same link
 *
 * Control port: one command per line, one answer line ("ok ..." or
 * "err ..."):
 *   set latency N | set cut MIN-MAX | set cut off | set cut-dir c2s|s2c|both
 *   set cut-mode rst|fin | set stall N M | set stall off | set refuse on|off
 *   set kill-every MS | set kill-every off (or 0)
 *   stats   -> ok connections=N active=N c2s=N s2c=N cuts=N stalls=N kills=N
 *   reset   -> closes every proxied connection now
 *   quit    -> exits
 *
 * Memory per connection is bounded: a side is not read while the other
 * side's pending bytes (its output buffer plus the latency queue) are over
 * --max-buffer (default 256 KiB); each input buffer is capped the same way.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "daemon/addr.h"

#define DIR_C2S 0
#define DIR_S2C 1
#define NO_LIMIT UINT64_MAX

struct chunk {
	struct chunk *next;
	uint64_t due_ms;
	struct evbuffer *data;
};

struct pconn;

struct side {
	struct pconn *pc;
	struct bufferevent *bev;
	int dir;    /* direction of the bytes this side reads */
	int closed; /* EOF or error seen */
};

struct pconn {
	struct proxy *p;
	struct pconn *prev, *next;
	struct side cli, srv;
	uint64_t fwd[2];
	uint64_t cut_at[2];
	uint64_t stall_at[2];
	int stalled[2];
	struct event *stall_timer[2];
	struct chunk *q_head[2], *q_tail[2];
	size_t q_bytes[2];
	struct event *lat_timer[2];
	int cutting; /* cut point reached: flushing, then close */
	int connected;
};

struct proxy {
	struct event_base *base;
	struct evconnlistener *lis;
	struct sockaddr_storage listen_addr;
	int listen_len;
	struct sockaddr_storage target;
	int target_len;
	struct pconn *conns;
	/* settings */
	unsigned latency_ms;
	uint64_t cut_min, cut_max; /* cut_max 0: no cut */
	int cut_dirs;              /* bit 0: c2s, bit 1: s2c */
	int cut_rst;
	uint64_t stall_after;      /* NO_LIMIT: no stall */
	unsigned stall_ms;
	int refuse;
	unsigned kill_ms;          /* mean interval of the kill fault, 0: off */
	struct event *kill_timer;
	size_t max_buffer;
	int verbose;
	uint64_t rng;
	/* stats */
	uint64_t n_conns, n_active, bytes[2], n_cuts, n_stalls, n_kills;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* xorshift64*: reproducible with --seed, good enough to spread cut points */
static uint64_t rnd(struct proxy *p)
{
	p->rng ^= p->rng >> 12;
	p->rng ^= p->rng << 25;
	p->rng ^= p->rng >> 27;
	return p->rng * 2685821657736338717ull;
}

static unsigned port_of(evutil_socket_t fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)(void *)&ss)->sin6_port);
}

/* ---- connections ---- */

static struct side *other(struct side *s)
{
	return s == &s->pc->cli ? &s->pc->srv : &s->pc->cli;
}

static size_t pending(struct pconn *pc, int dir)
{
	struct side *to = dir == DIR_C2S ? &pc->srv : &pc->cli;
	return evbuffer_get_length(bufferevent_get_output(to->bev)) + pc->q_bytes[dir];
}

static void pconn_free(struct pconn *pc, int reset)
{
	struct proxy *p = pc->p;

	if (pc->prev)
		pc->prev->next = pc->next;
	else
		p->conns = pc->next;
	if (pc->next)
		pc->next->prev = pc->prev;
	for (int d = 0; d < 2; d++) {
		struct chunk *c = pc->q_head[d];
		while (c) {
			struct chunk *n = c->next;
			evbuffer_free(c->data);
			free(c);
			c = n;
		}
		if (pc->stall_timer[d])
			event_free(pc->stall_timer[d]);
		if (pc->lat_timer[d])
			event_free(pc->lat_timer[d]);
	}
	struct side *sides[2] = {&pc->cli, &pc->srv};
	for (int i = 0; i < 2; i++) {
		if (!sides[i]->bev)
			continue;
		evutil_socket_t fd = bufferevent_getfd(sides[i]->bev);
		if (reset && fd >= 0) {
			/* SO_LINGER 0: close sends RST, like a link that died */
			struct linger lg = {1, 0};
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		}
		bufferevent_free(sides[i]->bev);
	}
	p->n_active--;
	free(pc);
}

/* Closes when nothing is left to deliver: after a cut (all bytes up to
 * the cut point flushed) or after one side closed. */
static int pconn_maybe_close(struct pconn *pc)
{
	if (!pc->cutting && !pc->cli.closed && !pc->srv.closed)
		return 0;
	if (pending(pc, DIR_C2S) > 0 && !pc->srv.closed && pc->connected)
		return 0;
	if (pending(pc, DIR_S2C) > 0 && !pc->cli.closed)
		return 0;
	pconn_free(pc, pc->cutting && pc->p->cut_rst);
	return 1;
}

static void pump(struct side *from);

static void deliver(struct pconn *pc, int dir, struct evbuffer *src, size_t n)
{
	struct proxy *p = pc->p;
	struct side *to = dir == DIR_C2S ? &pc->srv : &pc->cli;

	if (p->latency_ms == 0 && !pc->q_head[dir]) {
		evbuffer_remove_buffer(src, bufferevent_get_output(to->bev), n);
		return;
	}
	struct chunk *c = calloc(1, sizeof *c);
	if (!c || !(c->data = evbuffer_new())) {
		free(c);
		evbuffer_drain(src, n); /* out of memory in a test tool: drop */
		return;
	}
	evbuffer_remove_buffer(src, c->data, n);
	c->due_ms = now_ms() + p->latency_ms;
	if (pc->q_tail[dir])
		pc->q_tail[dir]->next = c;
	else
		pc->q_head[dir] = c;
	pc->q_tail[dir] = c;
	pc->q_bytes[dir] += n;
	if (!evtimer_pending(pc->lat_timer[dir], NULL)) {
		struct timeval tv = {p->latency_ms / 1000, (suseconds_t)(p->latency_ms % 1000) * 1000};
		evtimer_add(pc->lat_timer[dir], &tv);
	}
}

static void latency_cb(evutil_socket_t fd, short what, void *arg);

/* Moves what may move from one side's input towards the other side. */
static void pump(struct side *from)
{
	struct pconn *pc = from->pc;
	struct proxy *p = pc->p;
	int d = from->dir;
	struct evbuffer *in = bufferevent_get_input(from->bev);

	if (pc->cutting || pc->stalled[d] || !pc->connected)
		return;
	size_t avail = evbuffer_get_length(in);
	if (avail == 0)
		return;
	if (pending(pc, d) >= p->max_buffer) {
		bufferevent_disable(from->bev, EV_READ);
		return;
	}
	uint64_t n = avail;
	if (pc->cut_at[d] != NO_LIMIT && pc->cut_at[d] - pc->fwd[d] < n)
		n = pc->cut_at[d] - pc->fwd[d];
	if (pc->stall_at[d] != NO_LIMIT && pc->stall_at[d] - pc->fwd[d] < n)
		n = pc->stall_at[d] - pc->fwd[d];
	if (n > 0) {
		deliver(pc, d, in, (size_t)n);
		pc->fwd[d] += n;
		p->bytes[d] += n;
	}
	if (pc->fwd[d] == pc->cut_at[d]) {
		pc->cutting = 1;
		p->n_cuts++;
		if (p->verbose)
			fprintf(stderr, "faultproxy: cut after %llu bytes %s\n",
				(unsigned long long)pc->fwd[d], d == DIR_C2S ? "c2s" : "s2c");
		bufferevent_disable(pc->cli.bev, EV_READ);
		bufferevent_disable(pc->srv.bev, EV_READ);
		pconn_maybe_close(pc);
		return;
	}
	if (pc->fwd[d] == pc->stall_at[d]) {
		pc->stalled[d] = 1;
		pc->stall_at[d] = NO_LIMIT; /* once per connection */
		p->n_stalls++;
		bufferevent_disable(from->bev, EV_READ);
		if (p->stall_ms > 0) {
			struct timeval tv = {p->stall_ms / 1000,
					     (suseconds_t)(p->stall_ms % 1000) * 1000};
			evtimer_add(pc->stall_timer[d], &tv);
		}
		return;
	}
	if (pending(pc, d) >= p->max_buffer)
		bufferevent_disable(from->bev, EV_READ);
}

static void latency_cb(evutil_socket_t fd, short what, void *arg)
{
	struct side *to = arg;
	struct pconn *pc = to->pc;
	int d = to == &pc->srv ? DIR_C2S : DIR_S2C;
	uint64_t now = now_ms();

	(void)fd;
	(void)what;
	while (pc->q_head[d] && pc->q_head[d]->due_ms <= now) {
		struct chunk *c = pc->q_head[d];
		size_t n = evbuffer_get_length(c->data);
		evbuffer_add_buffer(bufferevent_get_output(to->bev), c->data);
		pc->q_bytes[d] -= n;
		pc->q_head[d] = c->next;
		if (!pc->q_head[d])
			pc->q_tail[d] = NULL;
		evbuffer_free(c->data);
		free(c);
	}
	if (pc->q_head[d]) {
		uint64_t wait = pc->q_head[d]->due_ms - now;
		struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
		evtimer_add(pc->lat_timer[d], &tv);
	}
	pconn_maybe_close(pc);
}

static void stall_cb(evutil_socket_t fd, short what, void *arg)
{
	struct side *from = arg;
	struct pconn *pc = from->pc;

	(void)fd;
	(void)what;
	pc->stalled[from->dir] = 0;
	bufferevent_enable(from->bev, EV_READ);
	pump(from);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	pump(arg);
}

/* Output drained below the low-water mark: the other side may be read again. */
static void write_cb(struct bufferevent *bev, void *arg)
{
	struct side *to = arg;
	struct side *from = other(to);
	struct pconn *pc = to->pc;

	(void)bev;
	if (pconn_maybe_close(pc))
		return;
	if (!pc->cutting && !from->closed && !pc->stalled[from->dir] &&
	    pending(pc, from->dir) < pc->p->max_buffer) {
		bufferevent_enable(from->bev, EV_READ);
		pump(from);
	}
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct side *s = arg;
	struct pconn *pc = s->pc;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		pc->connected = 1;
		pump(&pc->cli);
		return;
	}
	if (s == &pc->srv && !pc->connected) {
		/* target refused: the client sees its connection reset */
		fprintf(stderr, "faultproxy: connecting to the target failed: %s\n",
			evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		pc->cutting = 0;
		pconn_free(pc, 1);
		return;
	}
	s->closed = 1;
	bufferevent_disable(s->bev, EV_READ);
	/* deliver what this side sent before closing, then close the rest */
	if (!pc->cutting)
		pump(s);
	pconn_maybe_close(pc);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct proxy *p = arg;
	struct pconn *pc = calloc(1, sizeof *pc);

	(void)l;
	(void)sa;
	(void)salen;
	if (!pc) {
		evutil_closesocket(fd);
		return;
	}
	pc->p = p;
	pc->cli.pc = pc->srv.pc = pc;
	pc->cli.dir = DIR_C2S;
	pc->srv.dir = DIR_S2C;
	addr_set_nodelay(fd);
	pc->cli.bev = bufferevent_socket_new(p->base, fd, BEV_OPT_CLOSE_ON_FREE);
	pc->srv.bev = bufferevent_socket_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE);
	for (int d = 0; d < 2; d++) {
		int on = (p->cut_dirs >> d) & 1;
		pc->cut_at[d] = on && p->cut_max > 0
					? p->cut_min + rnd(p) % (p->cut_max - p->cut_min + 1)
					: NO_LIMIT;
		pc->stall_at[d] = on ? p->stall_after : NO_LIMIT;
		pc->stall_timer[d] = evtimer_new(p->base, stall_cb, d == DIR_C2S ? &pc->cli : &pc->srv);
		pc->lat_timer[d] = evtimer_new(p->base, latency_cb, d == DIR_C2S ? &pc->srv : &pc->cli);
	}
	pc->next = p->conns;
	if (p->conns)
		p->conns->prev = pc;
	p->conns = pc;
	p->n_conns++;
	p->n_active++;
	if (!pc->cli.bev || !pc->srv.bev || !pc->stall_timer[0] || !pc->stall_timer[1] ||
	    !pc->lat_timer[0] || !pc->lat_timer[1]) {
		pconn_free(pc, 1);
		return;
	}
	struct side *sides[2] = {&pc->cli, &pc->srv};
	for (int i = 0; i < 2; i++) {
		bufferevent_setcb(sides[i]->bev, read_cb, write_cb, event_cb, sides[i]);
		bufferevent_setwatermark(sides[i]->bev, EV_READ, 0, p->max_buffer);
		bufferevent_setwatermark(sides[i]->bev, EV_WRITE, p->max_buffer / 2, 0);
		bufferevent_enable(sides[i]->bev, EV_READ | EV_WRITE);
	}
	if (pc->cut_at[DIR_C2S] == 0 || pc->cut_at[DIR_S2C] == 0) {
		pc->cutting = 1;
		p->n_cuts++;
		pconn_free(pc, p->cut_rst);
		return;
	}
	if (bufferevent_socket_connect(pc->srv.bev, (struct sockaddr *)&p->target,
				       p->target_len) != 0) {
		fprintf(stderr, "faultproxy: cannot connect to the target: %s\n", strerror(errno));
		pconn_free(pc, 1);
	} else {
		/* Latency is the proxy's to add, not Nagle's. */
		addr_set_nodelay(bufferevent_getfd(pc->srv.bev));
	}
}

static int proxy_listen(struct proxy *p)
{
	p->lis = evconnlistener_new_bind(p->base, accept_cb, p,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 128,
					 (struct sockaddr *)&p->listen_addr, p->listen_len);
	if (!p->lis)
		return -1;
	/* keep the port: "refuse off" must come back on the same one */
	unsigned port = port_of(evconnlistener_get_fd(p->lis));
	if (p->listen_addr.ss_family == AF_INET)
		((struct sockaddr_in *)(void *)&p->listen_addr)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)(void *)&p->listen_addr)->sin6_port = htons((uint16_t)port);
	return 0;
}

static int set_refuse(struct proxy *p, int on)
{
	if (on && p->lis) {
		evconnlistener_free(p->lis);
		p->lis = NULL;
	} else if (!on && !p->lis) {
		if (proxy_listen(p) != 0)
			return -1;
	}
	p->refuse = on;
	return 0;
}

/* ---- the kill fault ---- */

static void kill_arm(struct proxy *p)
{
	evtimer_del(p->kill_timer);
	if (p->kill_ms == 0)
		return;
	/* 53 random bits in [0, 1): 1 - u is never 0, so the log is finite */
	double u = (double)(rnd(p) >> 11) / 9007199254740992.0;
	double ms = -log(1.0 - u) * p->kill_ms;
	if (ms < 5)
		ms = 5; /* as tcp_proxy.js: a burst of kills is one kill */
	if (ms > 3600e3)
		ms = 3600e3;
	uint64_t w = (uint64_t)ms;
	struct timeval tv = {(time_t)(w / 1000), (suseconds_t)(w % 1000) * 1000};
	evtimer_add(p->kill_timer, &tv);
}

static void kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *p = arg;

	(void)fd;
	(void)what;
	while (p->conns) {
		pconn_free(p->conns, 1);
		p->n_kills++;
	}
	kill_arm(p);
}

/* ---- control ---- */

static int parse_range(const char *s, uint64_t *lo, uint64_t *hi)
{
	char *end;
	unsigned long long a = strtoull(s, &end, 10);
	unsigned long long b = a;
	if (end == s)
		return -1;
	if (*end == '-') {
		const char *t = end + 1;
		b = strtoull(t, &end, 10);
		if (end == t)
			return -1;
	}
	if (*end || a > b)
		return -1;
	*lo = a;
	*hi = b;
	return 0;
}

static int parse_dirs(const char *s)
{
	if (strcmp(s, "c2s") == 0)
		return 1;
	if (strcmp(s, "s2c") == 0)
		return 2;
	if (strcmp(s, "both") == 0)
		return 3;
	return -1;
}

/* Applies one command; writes the answer line into out. */
static void command(struct proxy *p, char *line, char *out, size_t n)
{
	char *argv[4] = {NULL, NULL, NULL, NULL};
	int argc = 0;
	char *save = NULL;

	for (char *t = strtok_r(line, " \t\r", &save); t && argc < 4; t = strtok_r(NULL, " \t\r", &save))
		argv[argc++] = t;
	if (argc == 0) {
		snprintf(out, n, "err empty\n");
		return;
	}
	if (strcmp(argv[0], "stats") == 0) {
		snprintf(out, n,
			 "ok connections=%llu active=%llu c2s=%llu s2c=%llu cuts=%llu stalls=%llu "
			 "kills=%llu\n",
			 (unsigned long long)p->n_conns, (unsigned long long)p->n_active,
			 (unsigned long long)p->bytes[0], (unsigned long long)p->bytes[1],
			 (unsigned long long)p->n_cuts, (unsigned long long)p->n_stalls,
			 (unsigned long long)p->n_kills);
		return;
	}
	if (strcmp(argv[0], "reset") == 0) {
		unsigned k = 0;
		while (p->conns) {
			pconn_free(p->conns, 1);
			k++;
		}
		snprintf(out, n, "ok reset=%u\n", k);
		return;
	}
	if (strcmp(argv[0], "quit") == 0) {
		snprintf(out, n, "ok bye\n");
		event_base_loopexit(p->base, NULL);
		return;
	}
	if (strcmp(argv[0], "set") != 0 || argc < 3) {
		snprintf(out, n, "err unknown command\n");
		return;
	}
	const char *what = argv[1], *v = argv[2];
	if (strcmp(what, "latency") == 0) {
		char *end;
		unsigned long ms = strtoul(v, &end, 10);
		if (*end || ms > 600000) {
			snprintf(out, n, "err latency\n");
			return;
		}
		p->latency_ms = (unsigned)ms;
	} else if (strcmp(what, "cut") == 0) {
		if (strcmp(v, "off") == 0) {
			p->cut_min = p->cut_max = 0;
		} else if (parse_range(v, &p->cut_min, &p->cut_max) != 0 || p->cut_max == 0) {
			p->cut_min = p->cut_max = 0;
			snprintf(out, n, "err cut range\n");
			return;
		}
	} else if (strcmp(what, "cut-dir") == 0) {
		int d = parse_dirs(v);
		if (d < 0) {
			snprintf(out, n, "err cut-dir\n");
			return;
		}
		p->cut_dirs = d;
	} else if (strcmp(what, "cut-mode") == 0) {
		if (strcmp(v, "rst") != 0 && strcmp(v, "fin") != 0) {
			snprintf(out, n, "err cut-mode\n");
			return;
		}
		p->cut_rst = strcmp(v, "rst") == 0;
	} else if (strcmp(what, "stall") == 0) {
		if (strcmp(v, "off") == 0) {
			p->stall_after = NO_LIMIT;
		} else {
			char *end;
			unsigned long long after = strtoull(v, &end, 10);
			if (*end || argc < 4) {
				snprintf(out, n, "err stall N M\n");
				return;
			}
			p->stall_after = after;
			p->stall_ms = (unsigned)strtoul(argv[3], NULL, 10);
		}
	} else if (strcmp(what, "kill-every") == 0) {
		char *end;
		unsigned long ms = strcmp(v, "off") == 0 ? 0 : strtoul(v, &end, 10);
		if (strcmp(v, "off") != 0 && (end == v || *end || ms > 3600000)) {
			snprintf(out, n, "err kill-every\n");
			return;
		}
		p->kill_ms = (unsigned)ms;
		kill_arm(p);
	} else if (strcmp(what, "refuse") == 0) {
		if ((strcmp(v, "on") != 0 && strcmp(v, "off") != 0) ||
		    set_refuse(p, strcmp(v, "on") == 0) != 0) {
			snprintf(out, n, "err refuse\n");
			return;
		}
	} else {
		snprintf(out, n, "err unknown setting\n");
		return;
	}
	snprintf(out, n, "ok\n");
}

static void control_read_cb(struct bufferevent *bev, void *arg)
{
	struct proxy *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t len;
	char out[256];

	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		command(p, line, out, sizeof out);
		free(line);
		bufferevent_write(bev, out, strlen(out));
	}
	if (evbuffer_get_length(in) > 1024)
		bufferevent_free(bev); /* not a command line */
}

static void control_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	(void)arg;
	bufferevent_free(bev);
}

static void control_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
			      int salen, void *arg)
{
	struct proxy *p = arg;
	struct bufferevent *bev = bufferevent_socket_new(p->base, fd, BEV_OPT_CLOSE_ON_FREE);

	(void)l;
	(void)sa;
	(void)salen;
	if (!bev) {
		evutil_closesocket(fd);
		return;
	}
	bufferevent_setcb(bev, control_read_cb, NULL, control_event_cb, p);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopexit(arg, NULL);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: faultproxy --listen ADDR --target ADDR [--control ADDR] [--latency-ms N]\n"
		"       [--cut MIN-MAX] [--cut-dir c2s|s2c|both] [--cut-mode rst|fin]\n"
		"       [--stall-after N --stall-ms M] [--kill-every MS] [--refuse] [--seed N]\n"
		"       [--max-buffer BYTES] [--verbose]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct proxy p;
	const char *listen = NULL, *target = NULL, *control = NULL;
	struct evconnlistener *ctl = NULL;
	struct event *sig_term = NULL, *sig_int = NULL;
	int start_refused = 0;
	int rc = 1;

	memset(&p, 0, sizeof p);
	p.cut_dirs = 3;
	p.cut_rst = 1;
	p.stall_after = NO_LIMIT;
	p.max_buffer = 256 * 1024;
	p.rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--refuse") == 0) {
			start_refused = 1;
			continue;
		}
		if (strcmp(a, "--verbose") == 0) {
			p.verbose = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		const char *v = argv[++i];
		if (strcmp(a, "--listen") == 0)
			listen = v;
		else if (strcmp(a, "--target") == 0)
			target = v;
		else if (strcmp(a, "--control") == 0)
			control = v;
		else if (strcmp(a, "--latency-ms") == 0)
			p.latency_ms = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--cut") == 0) {
			if (parse_range(v, &p.cut_min, &p.cut_max) != 0)
				usage();
		} else if (strcmp(a, "--cut-dir") == 0) {
			if ((p.cut_dirs = parse_dirs(v)) < 0)
				usage();
		} else if (strcmp(a, "--cut-mode") == 0) {
			if (strcmp(v, "rst") != 0 && strcmp(v, "fin") != 0)
				usage();
			p.cut_rst = strcmp(v, "rst") == 0;
		} else if (strcmp(a, "--stall-after") == 0)
			p.stall_after = strtoull(v, NULL, 10);
		else if (strcmp(a, "--stall-ms") == 0)
			p.stall_ms = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--kill-every") == 0)
			p.kill_ms = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--seed") == 0)
			p.rng = strtoull(v, NULL, 10) | 1;
		else if (strcmp(a, "--max-buffer") == 0)
			p.max_buffer = (size_t)strtoull(v, NULL, 10);
		else
			usage();
	}
	if (!listen || !target || p.max_buffer < 1024)
		usage();
	if (addr_parse_hostport(listen, AI_NUMERICHOST, &p.listen_addr, &p.listen_len) != 0 ||
	    addr_parse_hostport(target, AI_NUMERICHOST, &p.target, &p.target_len) != 0) {
		fprintf(stderr, "faultproxy: bad address\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	p.base = event_base_new();
	if (!p.base)
		return 1;
	if (proxy_listen(&p) != 0) {
		fprintf(stderr, "faultproxy: cannot listen on %s: %s\n", listen, strerror(errno));
		goto out;
	}
	unsigned lport = port_of(evconnlistener_get_fd(p.lis));
	unsigned cport = 0;
	if (control) {
		struct sockaddr_storage cs;
		int clen;
		if (addr_parse_hostport(control, AI_NUMERICHOST, &cs, &clen) != 0)
			usage();
		ctl = evconnlistener_new_bind(p.base, control_accept_cb, &p,
					      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
					      (struct sockaddr *)&cs, clen);
		if (!ctl) {
			fprintf(stderr, "faultproxy: cannot listen on %s\n", control);
			goto out;
		}
		cport = port_of(evconnlistener_get_fd(ctl));
	}
	if (start_refused)
		set_refuse(&p, 1);
	sig_term = evsignal_new(p.base, SIGTERM, signal_cb, p.base);
	sig_int = evsignal_new(p.base, SIGINT, signal_cb, p.base);
	p.kill_timer = evtimer_new(p.base, kill_cb, &p);
	if (!sig_term || !sig_int || !p.kill_timer)
		goto out;
	kill_arm(&p);
	event_add(sig_term, NULL);
	event_add(sig_int, NULL);
	printf("listen=%u control=%u\n", lport, cport);
	fflush(stdout);
	event_base_dispatch(p.base);
	rc = 0;
out:
	while (p.conns)
		pconn_free(p.conns, 0);
	if (p.lis)
		evconnlistener_free(p.lis);
	if (ctl)
		evconnlistener_free(ctl);
	if (sig_term)
		event_free(sig_term);
	if (sig_int)
		event_free(sig_int);
	if (p.kill_timer)
		event_free(p.kill_timer);
	event_base_free(p.base);
	return rc;
}
