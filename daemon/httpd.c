/*
 * httpd — HTTPS server on libevent bufferevent_openssl (see httpd.h).
 *
 * A connection is a small state machine:
 *
 *   HANDSHAKE --connected--> HEAD --head ok--> BODY --body read--> (handler) --> WRITE
 *       ^                     ^  \__ early answer (error) __________________/     |
 *       accept                |                                                   |
 *                            IDLE <----- answer flushed, keep-alive --------------+
 *                                         answer flushed, closing --> LINGER --> freed
 *
 * One timer per connection carries whichever deadline the state has: the
 * handshake + head deadline (armed at accept, and at the first byte of each
 * later request), the body deadline (re-armed as bytes arrive, so a slow
 * but steady client gets time in proportion to what it sends, while a
 * client trickling a byte a second does not), and the linger time. The
 * bufferevent's own read timeout is only the idle/silence timeout: a
 * client sending a byte a second is never silent, which is why the
 * deadlines exist.
 *
 * Memory per connection is bounded by the read watermark: max_header_bytes
 * while a head is read, the declared Content-Length (already checked
 * against the caps and the global budget) while a body is read.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "daemon/addr.h"
#include "daemon/httpd.h"
#include "daemon/httpparse.h"
#include "daemon/log.h"
#include "daemon/ratelimit.h"
#include "protocol/compress.h"
#include "protocol/error.h"
#include "protocol/limits.h"
#include "protocol/message.h"

#define HTTPD_MAX_LISTENERS 8
#define HTTPD_EXTRA_HEADERS_MAX 8192 /* handler-added response headers */
#define HTTPD_LINGER_MAX_BYTES (1u << 20)

enum conn_state {
	C_HANDSHAKE,
	C_IDLE,
	C_HEAD,
	C_BODY,
	C_HANDLER,
	C_WRITE,
	C_LINGER,
};

struct route {
	char *method;
	char *path;
	size_t plen;
	int prefix;
	unsigned flags;
	size_t max_body;
	httpd_handler_fn handler;
	void *arg;
};

struct conn;

struct httpd_req {
	struct conn *c;
	char *head; /* the raw head, parsed in place into h */
	struct httpparse_head h;
	int has_head;
	const struct route *route;
	uint64_t content_length;
	int gzip_in;
	char *wire; /* body as received */
	size_t wire_len;
	struct buf inflated;
	const char *body;
	size_t body_len;
	int body_ready;
	void *principal;
	void (*principal_free)(void *);
	char rate_key[RATELIMIT_KEY_MAX + 1];
	struct buf extra; /* "Name: value\r\n" lines from httpd_add_header */
	int replied;
	int err;         /* the error code answered, for the log line */
	size_t reserved; /* share of the global body budget */
	uint64_t t0_ms;
};

struct conn {
	struct httpd *s;
	struct conn *prev, *next;
	struct bufferevent *bev;
	struct event *timer;
	enum conn_state state;
	char remote[INET6_ADDRSTRLEN + 8];
	struct httpd_req *req;
	unsigned nreq;
	int close_after;  /* close once the answer is flushed */
	uint64_t body_t0; /* when the body started */
	size_t lingered;  /* bytes discarded while lingering */
};

struct httpd {
	struct event_base *base;
	SSL_CTX *ctx;
	struct httpd_options o;
	struct evconnlistener *lis[HTTPD_MAX_LISTENERS];
	size_t nlis;
	struct route *routes;
	size_t nroutes;
	struct route health;
	httpd_auth_fn auth;
	void *auth_arg;
	struct ratelimit *rl;
	struct conn *conns;
	struct httpd_stats st;
	int stopping;
	struct event *sig_term, *sig_int, *grace;
	uint64_t started_ms;
	uint64_t refuse_log_ms;
	uint64_t refuse_unlogged;
};

/* ---- options ---- */

#define OPT(name, type, field, min, max, def, help)                                         \
	{                                                                                   \
		name, type, offsetof(struct httpd_options, field), min, max, def, NULL, help \
	}

const struct config_option httpd_config_options[] = {
	OPT("max_body_bytes", CONFIG_SIZE, max_body_bytes, 1024, 1ull << 30, "8mb",
	    "largest request body as received (413)"),
	OPT("max_inflated_bytes", CONFIG_SIZE, max_inflated_bytes, 1024, 4ull << 30, "32mb",
	    "largest request body after gunzip (413)"),
	OPT("max_header_bytes", CONFIG_SIZE, max_header_bytes, 1024, 1ull << 20, "16kb",
	    "largest request line plus headers (431)"),
	OPT("max_headers", CONFIG_UINT, max_headers, 8, HTTPPARSE_MAX_HEADERS, "64",
	    "most header lines in a request (431)"),
	OPT("max_connections", CONFIG_UINT, max_connections, 1, 1000000, "1024",
	    "open connections at most; more are closed at accept"),
	OPT("max_total_body_bytes", CONFIG_SIZE, max_total_body_bytes, 1024, 64ull << 30, "256mb",
	    "request bodies held at once over all connections (503)"),
	OPT("header_timeout", CONFIG_MS, header_timeout_ms, 100, 600000, "20s",
	    "time for the TLS handshake and a request's head (408)"),
	OPT("body_timeout", CONFIG_MS, body_timeout_ms, 100, 3600000, "20s",
	    "base time for a request body (408)"),
	OPT("body_min_rate", CONFIG_UINT, body_min_rate, 1, 1u << 30, "500",
	    "a body gets one more second per this many bytes received"),
	OPT("idle_timeout", CONFIG_MS, idle_timeout_ms, 100, 3600000, "60s",
	    "keep-alive idle time, and silence within a request"),
	OPT("write_timeout", CONFIG_MS, write_timeout_ms, 100, 3600000, "30s",
	    "time a client may take to read its answer"),
	OPT("linger_time", CONFIG_MS, linger_ms, 0, 60000, "2s",
	    "after a closing answer, wait this long for the client to close"),
	OPT("max_requests_per_connection", CONFIG_UINT, max_requests_per_conn, 1, 1000000, "1000",
	    "requests on one connection before it is closed"),
	OPT("rate_per_minute", CONFIG_UINT, rate_per_minute, 0, 1000000, "120",
	    "requests a minute per credential (0: no limit)"),
	OPT("rate_burst", CONFIG_UINT, rate_burst, 1, 1000000, "60",
	    "requests a credential may make at once"),
	OPT("rate_max_keys", CONFIG_UINT, rate_max_keys, 1, 10000000, "100000",
	    "credentials tracked by the rate limiter at most"),
	OPT("gzip_min_bytes", CONFIG_SIZE, gzip_min_bytes, 0, 1ull << 30, "1kb",
	    "answers at least this big are gzip'd for clients that accept it"),
	OPT("shutdown_grace", CONFIG_MS, shutdown_grace_ms, 0, 600000, "10s",
	    "on SIGTERM, time given to requests in flight"),
	OPT("log_requests", CONFIG_BOOL, log_requests, 0, 1, "yes", "one log line per request"),
};
const size_t httpd_config_options_count =
	sizeof httpd_config_options / sizeof httpd_config_options[0];

void httpd_options_default(struct httpd_options *o)
{
	struct config_section sec = {httpd_config_options, httpd_config_options_count, o};
	int rc;

	memset(o, 0, sizeof *o);
	rc = config_set_defaults(&sec, 1);
	/* The table's defaults are ours: a failure is a bug caught by the tests. */
	if (rc != TLY_OK)
		abort();
}

/* ---- small helpers ---- */

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct timeval tv_of_ms(uint64_t ms)
{
	struct timeval tv;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	return tv;
}

static void timer_arm(struct conn *c, uint64_t ms)
{
	struct timeval tv = tv_of_ms(ms);
	evtimer_add(c->timer, &tv);
}

static const char *reason_of(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	default: return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error" : "Server Error";
	}
}

int httpd_status_of(int err)
{
	switch (err) {
	case TLY_OK:
		return 200;
	case TLY_E_UNAUTHORIZED:
	case TLY_E_REVOKED:
		return 401;
	case TLY_E_FORBIDDEN:
	case TLY_E_SITE_MISMATCH:
		return 403;
	case TLY_E_NOT_FOUND:
		return 404;
	case TLY_E_METHOD:
		return 405;
	case TLY_E_TIMEOUT:
		return 408;
	case TLY_E_LENGTH_REQUIRED:
		return 411;
	case TLY_E_TOO_LARGE:
	case TLY_E_INFLATE_LIMIT:
		return 413;
	case TLY_E_MEDIA_TYPE:
		return 415;
	case TLY_E_RATE_LIMITED:
		return 429;
	case TLY_E_HEADER_TOO_LARGE:
		return 431;
	case TLY_E_UNAVAILABLE:
		return 503;
	case TLY_E_BAD_REQUEST:
	case TLY_E_BAD_COMPRESSION:
	case TLY_E_BAD_JSON:
	case TLY_E_DUP_KEY:
	case TLY_E_BAD_UTF8:
	case TLY_E_LONE_SURROGATE:
	case TLY_E_TOO_DEEP:
	case TLY_E_BAD_TYPE:
	case TLY_E_MISSING_FIELD:
	case TLY_E_UNKNOWN_FIELD:
	case TLY_E_BAD_VALUE:
	case TLY_E_TOO_MANY:
	case TLY_E_FIELD_TOO_LONG:
	case TLY_E_VERSION:
	case TLY_E_BAD_MSG_TYPE:
	case TLY_E_SEQ_ORDER:
	case TLY_E_SEQ_GAP:
	case TLY_E_CHAIN:
	case TLY_E_CLOCK_AHEAD:
	case TLY_E_BAD_DATE:
	case TLY_E_BAD_PERCENT:
	case TLY_E_PERCENT_DOWN:
	case TLY_E_BAD_STATUS_MOVE:
	case TLY_E_JOIN_USED:
	case TLY_E_USAGE:
		return 400;
	case TLY_E_EXISTS:
		return 409;
	default:
		return 500;
	}
}

/* The protocol's error message (PROTOCOL.md §7.7), so a village reads
 * every refusal, the HTTP layer's and the handlers', with one decoder. */
static int format_error(struct buf *out, int err, const char *message, uint32_t retry_after)
{
	struct msg_error m;
	char text[MSG_REASON_MAX + 1];

	memset(&m, 0, sizeof m);
	m.code = err;
	m.retry_after = retry_after;
	/* msg_error holds a mutable pointer; the encoder only reads it, so
	 * lend it a copy rather than cast the const away. A message over the
	 * protocol's cap falls back to the standard text. */
	if (message && strlen(message) <= MSG_REASON_MAX) {
		memcpy(text, message, strlen(message) + 1);
		m.message = text;
	}
	return msg_encode_error(&m, out);
}

int httpd_format_error(struct buf *out, int err, const char *message)
{
	return format_error(out, err, message, 0);
}

/* ---- requests ---- */

static struct httpd_req *req_new(struct conn *c)
{
	struct httpd_req *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->c = c;
	buf_init(&r->inflated, c->s->o.max_inflated_bytes);
	buf_init(&r->extra, HTTPD_EXTRA_HEADERS_MAX);
	r->t0_ms = mono_ms();
	return r;
}

static void req_free(struct httpd *s, struct httpd_req *r)
{
	if (!r)
		return;
	if (r->principal_free && r->principal)
		r->principal_free(r->principal);
	s->st.body_bytes_held -= r->reserved;
	free(r->head);
	free(r->wire);
	buf_free(&r->inflated);
	buf_free(&r->extra);
	free(r);
}

const char *httpd_req_method(const struct httpd_req *r)
{
	return r->has_head ? r->h.method : "-";
}

const char *httpd_req_path(const struct httpd_req *r)
{
	return r->has_head ? r->h.path : "-";
}

const char *httpd_req_query(const struct httpd_req *r)
{
	return r->has_head ? r->h.query : "";
}

const char *httpd_req_remote(const struct httpd_req *r)
{
	return r->c->remote;
}

const char *httpd_req_header(const struct httpd_req *r, const char *name)
{
	return r->has_head ? httpparse_find(&r->h, name) : NULL;
}

const char *httpd_req_bearer(const struct httpd_req *r)
{
	return httpparse_bearer(httpd_req_header(r, "Authorization"));
}

const char *httpd_req_body(const struct httpd_req *r, size_t *len)
{
	if (!r->body_ready) {
		if (len)
			*len = 0;
		return NULL;
	}
	if (len)
		*len = r->body_len;
	return r->body;
}

size_t httpd_req_wire_bytes(const struct httpd_req *r)
{
	return r->wire_len;
}

void httpd_req_set_principal(struct httpd_req *r, void *principal, void (*free_fn)(void *))
{
	if (r->principal_free && r->principal && r->principal != principal)
		r->principal_free(r->principal);
	r->principal = principal;
	r->principal_free = free_fn;
}

void *httpd_req_principal(const struct httpd_req *r)
{
	return r->principal;
}

int httpd_req_set_rate_key(struct httpd_req *r, const char *key)
{
	size_t n = strlen(key);
	if (n > RATELIMIT_KEY_MAX)
		return TLY_E_FIELD_TOO_LONG;
	memcpy(r->rate_key, key, n + 1);
	return TLY_OK;
}

static int is_token(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("!#$%&'*+-.^_`|~", c)))
			return 0;
	}
	return 1;
}

int httpd_add_header(struct httpd_req *r, const char *name, const char *value)
{
	static const char *const reserved[] = {"content-length", "content-type",
					       "content-encoding", "connection", "date",
					       "transfer-encoding", NULL};
	if (!is_token(name))
		return TLY_E_BAD_VALUE;
	for (const char *v = value; *v; v++) {
		if (*v == '\r' || *v == '\n')
			return TLY_E_BAD_VALUE;
	}
	for (int i = 0; reserved[i]; i++) {
		if (httpparse_ieq(name, reserved[i]))
			return TLY_E_USAGE;
	}
	return buf_addf(&r->extra, "%s: %s\r\n", name, value);
}

/* ---- answering ---- */

static void http_date(char out[40])
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
		 mons[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int conn_wants_close(const struct conn *c, const struct httpd_req *r)
{
	if (c->close_after || c->s->stopping || c->nreq >= c->s->o.max_requests_per_conn)
		return 1;
	if (!r->has_head || r->h.minor == 0)
		return 1;
	return httpparse_has_token(httpparse_find(&r->h, "Connection"), "close");
}

int httpd_reply(struct httpd_req *r, int status, const char *content_type, const void *body,
		size_t len)
{
	struct conn *c = r->c;
	struct httpd *s = c->s;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct buf gz, head;
	char date[40];
	int gzipped = 0;
	int rc;

	if (r->replied || status < 200 || status > 599 || !content_type)
		return TLY_E_USAGE;
	for (const char *p = content_type; *p; p++) {
		if (*p == '\r' || *p == '\n')
			return TLY_E_BAD_VALUE;
	}
	if (!body)
		len = 0;
	buf_init(&gz, len);
	buf_init(&head, 4096 + HTTPD_EXTRA_HEADERS_MAX);

	/* Compressing only pays past a threshold, and only if it shrinks:
	 * the scratch buffer's cap (len) makes a larger result fail. */
	if (len >= s->o.gzip_min_bytes && len > 0 && r->has_head &&
	    httpparse_accepts_gzip(httpparse_find(&r->h, "Accept-Encoding")) &&
	    compress_gzip(body, len, &gz) == TLY_OK) {
		gzipped = 1;
		body = gz.data;
		len = gz.len;
	}
	if (conn_wants_close(c, r))
		c->close_after = 1;
	http_date(date);
	rc = buf_addf(&head,
		      "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		      "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s%s",
		      status, reason_of(status), date, content_type, len,
		      gzipped ? "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n" : "",
		      c->close_after ? "Connection: close\r\n" : "");
	if (rc == TLY_OK && r->extra.len)
		rc = buf_add(&head, r->extra.data, r->extra.len);
	if (rc == TLY_OK)
		rc = buf_add(&head, "\r\n", 2);
	if (rc != TLY_OK)
		goto out;
	if (evbuffer_add(out, head.data, head.len) != 0 || (len && evbuffer_add(out, body, len) != 0)) {
		rc = TLY_E_NOMEM;
		c->close_after = 1;
		goto out;
	}
	r->replied = 1;
	s->st.requests++;
	s->st.bytes_out += len;
	if (status >= 400)
		s->st.errors++;
	if (s->o.log_requests)
		log_event(status >= 500 ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, "http_request",
			  "remote=%s method=%s path=%s status=%d code=%s in=%zu out=%zu gzip=%d ms=%llu",
			  c->remote, httpd_req_method(r), httpd_req_path(r), status,
			  r->err ? error_name(r->err) : "-", r->wire_len, len, gzipped,
			  (unsigned long long)(mono_ms() - r->t0_ms));
out:
	buf_free(&gz);
	buf_free(&head);
	return rc;
}

int httpd_reply_json(struct httpd_req *r, int status, const char *json, size_t len)
{
	return httpd_reply(r, status, "application/json", json, len);
}

/* retry_after (seconds, 0 for none) goes both in the Retry-After header
 * and in the body's retry_after. */
static int reply_error(struct httpd_req *r, int status, int err, const char *message,
		       uint32_t retry_after)
{
	struct buf b;
	char ra[16];
	int rc;

	buf_init(&b, 64 * 1024);
	if (status == 0)
		status = httpd_status_of(err);
	if (retry_after) {
		snprintf(ra, sizeof ra, "%u", (unsigned)retry_after);
		httpd_add_header(r, "Retry-After", ra);
	}
	rc = format_error(&b, err, message, retry_after);
	if (rc == TLY_OK) {
		r->err = err;
		rc = httpd_reply_json(r, status, b.data, b.len);
	}
	buf_free(&b);
	return rc;
}

int httpd_reply_error(struct httpd_req *r, int status, int err, const char *message)
{
	return reply_error(r, status, err, message, 0);
}

/* ---- connections ---- */

static void conn_free(struct conn *c)
{
	struct httpd *s = c->s;

	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	req_free(s, c->req);
	if (c->timer)
		event_free(c->timer);
	/* Safe inside this bufferevent's own callbacks: libevent defers the
	 * release until they return. Closes the socket and frees the SSL. */
	bufferevent_free(c->bev);
	s->st.connections--;
	free(c);
	if (s->stopping && s->st.connections == 0)
		event_base_loopexit(s->base, NULL);
}

static void conn_set_watermark(struct conn *c, size_t high)
{
	bufferevent_setwatermark(c->bev, EV_READ, 0, high ? high : 1);
}

/* The answer is queued: wait for it to be written, reading nothing new
 * meanwhile beyond the head cap (pipelined requests wait their turn). */
static void conn_after_reply(struct conn *c)
{
	struct httpd *s = c->s;

	req_free(s, c->req);
	c->req = NULL;
	evtimer_del(c->timer);
	c->state = C_WRITE;
	conn_set_watermark(c, s->o.max_header_bytes);
	/* Not reading while the answer drains: the idle (read) timeout must
	 * not cut a slow reader short (write_timeout covers it), and a
	 * pipelined request waits in the kernel, not in our memory. */
	bufferevent_disable(c->bev, EV_READ);
}

/* Answers an error from the server itself (not a handler). A request
 * whose body was not read cannot share its connection with the next one:
 * close after the answer. */
static void conn_fail(struct conn *c, int status, int err, int close_after, uint32_t retry_after)
{
	if (!c->req)
		c->req = req_new(c);
	if (!c->req) {
		conn_free(c);
		return;
	}
	if (close_after)
		c->close_after = 1;
	if (reply_error(c->req, status, err, NULL, retry_after) != TLY_OK) {
		conn_free(c);
		return;
	}
	conn_after_reply(c);
}

static const struct route *route_find(struct httpd *s, struct httpd_req *r, int *status)
{
	const struct route *best = NULL;
	size_t best_score = 0;
	int path_known = 0;
	char allow[128] = "";
	size_t alen = 0;
	const char *path = r->h.path;
	const char *method = r->h.method;

	for (size_t i = 0; i <= s->nroutes; i++) {
		const struct route *rt = i < s->nroutes ? &s->routes[i] : &s->health;
		int match = rt->prefix ? strncmp(path, rt->path, rt->plen) == 0
				       : strcmp(path, rt->path) == 0;
		if (!match)
			continue;
		size_t score = rt->prefix ? rt->plen : SIZE_MAX;
		if (strcmp(method, rt->method) == 0) {
			if (!best || score > best_score) {
				best = rt;
				best_score = score;
			}
		} else {
			path_known = 1;
			if (!strstr(allow, rt->method) && alen + strlen(rt->method) + 3 < sizeof allow)
				alen += (size_t)snprintf(allow + alen, sizeof allow - alen, "%s%s",
							 alen ? ", " : "", rt->method);
		}
	}
	if (best)
		return best;
	if (path_known) {
		httpd_add_header(r, "Allow", allow);
		*status = 405;
	} else {
		*status = 404;
	}
	return NULL;
}

static void conn_dispatch(struct conn *c);

/* The head is complete in the input: parse and check it, decide before
 * reading a single body byte. Returns 0 to go on to the body, -1 if the
 * request was answered (or the connection freed). */
static int conn_take_head(struct conn *c, size_t head_len)
{
	struct httpd *s = c->s;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct httpd_req *r;
	const char *v;
	int status = 0;
	int rc;

	r = c->req = req_new(c);
	if (!r) {
		conn_free(c);
		return -1;
	}
	r->head = malloc(head_len + 1);
	if (!r->head) {
		conn_free(c);
		return -1;
	}
	evbuffer_remove(in, r->head, head_len);
	r->head[head_len] = '\0';
	c->nreq++;

	rc = httpparse_request_head(r->head, head_len, s->o.max_headers, &r->h);
	if (rc != TLY_OK) {
		conn_fail(c, 0, rc, 1, 0);
		return -1;
	}
	r->has_head = 1;

	r->route = route_find(s, r, &status);
	if (!r->route) {
		/* A body may follow; it is not read, so close after answering. */
		int has_body = httpparse_find(&r->h, "Content-Length") ||
			       httpparse_find(&r->h, "Transfer-Encoding");
		conn_fail(c, status, status == 405 ? TLY_E_METHOD : TLY_E_NOT_FOUND, has_body, 0);
		return -1;
	}

	if (httpparse_find(&r->h, "Transfer-Encoding")) {
		conn_fail(c, 0, TLY_E_LENGTH_REQUIRED, 1, 0);
		return -1;
	}
	v = httpparse_find(&r->h, "Content-Length");
	if (v && httpparse_content_length(v, &r->content_length) != TLY_OK) {
		conn_fail(c, 0, TLY_E_BAD_REQUEST, 1, 0);
		return -1;
	}
	size_t max = s->o.max_body_bytes;
	if (r->route->max_body && r->route->max_body < max)
		max = r->route->max_body;
	if (r->content_length > max) {
		/* Refused on the declared size alone: not one body byte is read. */
		conn_fail(c, 0, TLY_E_TOO_LARGE, 1, 0);
		return -1;
	}

	v = httpparse_find(&r->h, "Content-Encoding");
	if (v && !httpparse_ieq(v, "identity")) {
		if (!httpparse_ieq(v, "gzip")) {
			conn_fail(c, 0, TLY_E_MEDIA_TYPE, r->content_length > 0, 0);
			return -1;
		}
		r->gzip_in = 1;
	}
	if ((r->route->flags & HTTPD_JSON) && r->content_length > 0 &&
	    !httpparse_media_type_is(httpparse_find(&r->h, "Content-Type"), "application/json")) {
		conn_fail(c, 0, TLY_E_MEDIA_TYPE, 1, 0);
		return -1;
	}

	if (!(r->route->flags & HTTPD_PUBLIC) && s->auth) {
		rc = s->auth(r, s->auth_arg);
		if (r->replied) {
			/* the hook answered itself: the body stays unread */
			if (r->content_length > 0)
				c->close_after = 1;
			conn_after_reply(c);
			return -1;
		}
		if (rc != TLY_OK) {
			conn_fail(c, 0, rc, r->content_length > 0, 0);
			return -1;
		}
	}
	if (s->rl && r->rate_key[0]) {
		uint64_t wait_ms = 0;
		rc = ratelimit_take(s->rl, r->rate_key, mono_ms(), &wait_ms);
		if (rc == TLY_E_RATE_LIMITED) {
			uint64_t secs = (wait_ms + 999) / 1000;
			conn_fail(c, 0, TLY_E_RATE_LIMITED, r->content_length > 0,
				  (uint32_t)(secs > 86400 ? 86400 : secs));
			return -1;
		}
		if (rc != TLY_OK) {
			conn_fail(c, 0, rc == TLY_E_NOMEM ? TLY_E_NOMEM : TLY_E_INTERNAL,
				  r->content_length > 0, 0);
			return -1;
		}
	}
	if (r->content_length > s->o.max_total_body_bytes - s->st.body_bytes_held) {
		conn_fail(c, 0, TLY_E_UNAVAILABLE, 1, 1);
		return -1;
	}
	r->reserved = (size_t)r->content_length;
	s->st.body_bytes_held += r->reserved;

	v = httpparse_find(&r->h, "Expect");
	if (v) {
		if (!httpparse_ieq(v, "100-continue")) {
			conn_fail(c, 0, TLY_E_BAD_REQUEST, 1, 0);
			return -1;
		}
		if (r->content_length > 0 && r->h.minor == 1)
			evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
	}
	return 0;
}

/* The body deadline moves with the bytes received: base time plus one
 * second per body_min_rate bytes. */
static void conn_arm_body_deadline(struct conn *c, size_t received)
{
	struct httpd *s = c->s;
	uint64_t allowed = s->o.body_timeout_ms + (uint64_t)received * 1000u / s->o.body_min_rate;
	uint64_t used = mono_ms() - c->body_t0;
	timer_arm(c, allowed > used ? allowed - used : 1);
}

/* Reads what the state allows from the input. Returns after scheduling
 * the next step; c may have been freed when it returns. */
static void conn_process(struct conn *c)
{
	struct httpd *s = c->s;
	struct evbuffer *in = bufferevent_get_input(c->bev);

	for (;;) {
		size_t avail = evbuffer_get_length(in);

		switch (c->state) {
		case C_HANDSHAKE:
		case C_HANDLER:
		case C_WRITE:
			return;
		case C_LINGER:
			c->lingered += avail;
			evbuffer_drain(in, avail);
			if (c->lingered > HTTPD_LINGER_MAX_BYTES)
				conn_free(c);
			return;
		case C_IDLE:
			if (avail == 0)
				return;
			if (s->stopping) {
				conn_free(c);
				return;
			}
			/* First byte of a new request: its head deadline starts. */
			timer_arm(c, s->o.header_timeout_ms);
			c->state = C_HEAD;
			continue;
		case C_HEAD: {
			/* A head ends at CRLF CRLF; one ending at a bare LF LF is
			 * taken too, so the strict parser refuses it at once (400)
			 * instead of the client waiting for the deadline. */
			struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
			struct evbuffer_ptr q = evbuffer_search(in, "\n\n", 2, NULL);
			size_t head_len;
			if (p.pos < 0 && q.pos < 0) {
				if (avail >= s->o.max_header_bytes)
					conn_fail(c, 0, TLY_E_HEADER_TOO_LARGE, 1, 0);
				return;
			}
			if (p.pos >= 0 && (q.pos < 0 || p.pos + 2 <= q.pos))
				head_len = (size_t)p.pos + 4;
			else
				head_len = (size_t)q.pos + 2;
			if (head_len > s->o.max_header_bytes) {
				conn_fail(c, 0, TLY_E_HEADER_TOO_LARGE, 1, 0);
				return;
			}
			if (conn_take_head(c, head_len) != 0)
				return;
			if (c->req->content_length == 0) {
				c->req->body = "";
				c->req->body_ready = 1;
				conn_dispatch(c);
				return;
			}
			c->state = C_BODY;
			c->body_t0 = mono_ms();
			conn_set_watermark(c, (size_t)c->req->content_length);
			conn_arm_body_deadline(c, 0);
			continue;
		}
		case C_BODY: {
			struct httpd_req *r = c->req;
			size_t need = (size_t)r->content_length;
			if (avail < need) {
				conn_arm_body_deadline(c, avail);
				return;
			}
			r->wire = malloc(need + 1);
			if (!r->wire) {
				conn_free(c);
				return;
			}
			evbuffer_remove(in, r->wire, need);
			r->wire[need] = '\0';
			r->wire_len = need;
			s->st.bytes_in += need;
			evtimer_del(c->timer);
			if (r->gzip_in) {
				int rc = compress_inflate(r->wire, r->wire_len, &r->inflated);
				if (rc != TLY_OK) {
					/* The body was read: the connection may carry on. */
					conn_fail(c, 0, rc, 0, 0);
					return;
				}
				r->body = r->inflated.data ? r->inflated.data : "";
				r->body_len = r->inflated.len;
			} else {
				r->body = r->wire;
				r->body_len = r->wire_len;
			}
			r->body_ready = 1;
			conn_dispatch(c);
			return;
		}
		}
	}
}

static void conn_dispatch(struct conn *c)
{
	struct httpd_req *r = c->req;
	int rc;

	evtimer_del(c->timer);
	c->state = C_HANDLER;
	rc = r->route->handler(r, r->route->arg);
	if (!r->replied) {
		if (rc == TLY_OK) {
			log_event(LOG_LEVEL_ERROR, "http_handler_no_answer", "path=%s", r->h.path);
			rc = TLY_E_INTERNAL;
		}
		if (httpd_reply_error(r, 0, rc, NULL) != TLY_OK) {
			conn_free(c);
			return;
		}
	} else if (rc != TLY_OK) {
		log_event(LOG_LEVEL_WARN, "http_handler_error_after_answer", "path=%s code=%s",
			  r->h.path, error_name(rc));
	}
	conn_after_reply(c);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_process(arg);
}

/* The answer has left our buffer. Keep-alive: back to IDLE and take any
 * pipelined request; closing: half-close and linger so the client reads
 * the answer before our close can turn into a reset. */
static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct httpd *s = c->s;

	if (c->state != C_WRITE || evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	if (c->close_after) {
		evutil_socket_t fd = bufferevent_getfd(bev);
		if (s->o.linger_ms == 0 || fd < 0) {
			conn_free(c);
			return;
		}
		shutdown(fd, SHUT_WR);
		c->state = C_LINGER;
		conn_set_watermark(c, 64 * 1024);
		bufferevent_enable(bev, EV_READ);
		timer_arm(c, s->o.linger_ms);
		conn_process(c);
		return;
	}
	c->state = C_IDLE;
	bufferevent_enable(bev, EV_READ);
	conn_process(c);
}

static void conn_log_tls_failure(struct conn *c, short what)
{
	unsigned long e;
	char why[256] = "";
	size_t len = 0;

	while ((e = bufferevent_get_openssl_error(c->bev)) != 0) {
		const char *r = ERR_reason_error_string(e);
		if (!r)
			continue; /* a library-internal code with no text */
		int w = snprintf(why + len, sizeof why - len, "%s%s", len ? "; " : "", r);
		if (w > 0 && (size_t)w < sizeof why - len)
			len += (size_t)w;
	}
	c->s->st.tls_failed++;
	if (len)
		log_event(LOG_LEVEL_WARN, "tls_handshake_failed", "remote=%s reason=%s", c->remote,
			  why);
	else
		log_event(LOG_LEVEL_INFO, "tls_handshake_failed", "remote=%s reason=%s", c->remote,
			  (what & BEV_EVENT_EOF) ? "closed by peer"
						 : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	SSL *ssl;

	if (what & BEV_EVENT_CONNECTED) {
		ssl = bufferevent_openssl_get_ssl(bev);
		log_event(LOG_LEVEL_DEBUG, "tls_handshake_done", "remote=%s version=%s cipher=%s",
			  c->remote, ssl ? SSL_get_version(ssl) : "-",
			  ssl ? SSL_get_cipher_name(ssl) : "-");
		if (c->state == C_HANDSHAKE) {
			/* The accept-time deadline keeps running: it covers the first
			 * request's head too. */
			c->state = C_HEAD;
			conn_process(c);
		}
		return;
	}
	if (c->state == C_HANDSHAKE) {
		conn_log_tls_failure(c, what);
	} else if (what & BEV_EVENT_TIMEOUT) {
		if (c->state != C_IDLE && c->state != C_LINGER) {
			c->s->st.timeouts++;
			log_event(LOG_LEVEL_INFO, "http_conn_timeout", "remote=%s while=%s", c->remote,
				  (what & BEV_EVENT_WRITING) ? "writing" : "reading");
		}
	} else if ((what & BEV_EVENT_ERROR) && c->state != C_IDLE && c->state != C_LINGER) {
		log_event(LOG_LEVEL_DEBUG, "http_conn_error", "remote=%s error=%s", c->remote,
			  evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	}
	conn_free(c);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct httpd *s = c->s;

	(void)fd;
	(void)what;
	switch (c->state) {
	case C_HANDSHAKE:
		s->st.timeouts++;
		log_event(LOG_LEVEL_INFO, "tls_handshake_timeout", "remote=%s", c->remote);
		conn_free(c);
		return;
	case C_HEAD:
	case C_BODY:
		s->st.timeouts++;
		log_event(LOG_LEVEL_INFO, "http_request_timeout", "remote=%s while=%s received=%zu",
			  c->remote, c->state == C_HEAD ? "head" : "body",
			  evbuffer_get_length(bufferevent_get_input(c->bev)));
		/* Drop what the slow client sent; answer 408 and close. */
		evbuffer_drain(bufferevent_get_input(c->bev),
			       evbuffer_get_length(bufferevent_get_input(c->bev)));
		conn_fail(c, 0, TLY_E_TIMEOUT, 1, 0);
		return;
	default:
		conn_free(c);
		return;
	}
}

static void format_remote(const struct sockaddr *sa, char *out, size_t n)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
		snprintf(out, n, "%s:%u", host, (unsigned)ntohs(a->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)sa;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
		snprintf(out, n, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
	} else {
		snprintf(out, n, "unknown");
	}
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct httpd *s = arg;
	struct conn *c = NULL;
	SSL *ssl = NULL;
	struct timeval rtv, wtv;

	(void)l;
	(void)salen;
	if (s->stopping) {
		evutil_closesocket(fd);
		return;
	}
	addr_set_nodelay(fd);
	if (s->st.connections >= s->o.max_connections) {
		/* Closed before any TLS work: an excess connection costs an
		 * accept and a close. Logged at most once a second. */
		uint64_t now = mono_ms();
		s->st.refused++;
		s->refuse_unlogged++;
		if (now - s->refuse_log_ms >= 1000) {
			log_event(LOG_LEVEL_WARN, "http_conn_refused",
				  "reason=max_connections max=%u refused=%llu", s->o.max_connections,
				  (unsigned long long)s->refuse_unlogged);
			s->refuse_log_ms = now;
			s->refuse_unlogged = 0;
		}
		evutil_closesocket(fd);
		return;
	}
	c = calloc(1, sizeof *c);
	ssl = SSL_new(s->ctx);
	if (!c || !ssl)
		goto fail;
	c->s = s;
	format_remote(sa, c->remote, sizeof c->remote);
	c->timer = evtimer_new(s->base, conn_timer_cb, c);
	if (!c->timer)
		goto fail;
	c->bev = bufferevent_openssl_socket_new(s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
						BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev)
		goto fail;
	ssl = NULL; /* owned by the bufferevent now, and so is fd */
	fd = -1;
	/* A client that closes without close_notify after a complete answer
	 * is normal (curl does it); treat it as EOF, not an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	conn_set_watermark(c, s->o.max_header_bytes);
	rtv = tv_of_ms(s->o.idle_timeout_ms);
	wtv = tv_of_ms(s->o.write_timeout_ms);
	bufferevent_set_timeouts(c->bev, &rtv, &wtv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->state = C_HANDSHAKE;
	timer_arm(c, s->o.header_timeout_ms);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->st.connections++;
	s->st.accepted++;
	return;
fail:
	log_event(LOG_LEVEL_ERROR, "http_accept_failed", "error=%s", "out of memory");
	if (c && c->bev)
		bufferevent_free(c->bev);
	if (c && c->timer)
		event_free(c->timer);
	SSL_free(ssl);
	if (fd >= 0)
		evutil_closesocket(fd);
	free(c);
}

static void listener_error_cb(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	(void)l;
	(void)arg;
	/* EMFILE and friends: the listener keeps going; say so once per event. */
	log_event(LOG_LEVEL_ERROR, "http_accept_error", "error=%s",
		  evutil_socket_error_to_string(err));
}

/* ---- built-in routes ---- */

static int health_handler(struct httpd_req *r, void *arg)
{
	struct httpd *s = arg;
	char body[256];
	int n = snprintf(body, sizeof body,
			 "{\"ok\":true,\"protocol\":%d,\"server_ms\":%llu,\"uptime_s\":%llu,"
			 "\"connections\":%u,\"stopping\":%s}",
			 PROTOCOL_VERSION, (unsigned long long)wall_ms(),
			 (unsigned long long)((mono_ms() - s->started_ms) / 1000), s->st.connections,
			 s->stopping ? "true" : "false");
	return httpd_reply_json(r, 200, body, (size_t)n);
}

/* ---- server ---- */

static void signal_cb(evutil_socket_t sig, short what, void *arg);

/* Each connection is a descriptor: make sure max_connections of them fit
 * under RLIMIT_NOFILE, raising the soft limit when the hard one allows. */
static void raise_fd_limit(struct httpd *s)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)s->o.max_connections + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
		return;
	rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
	if (want > rl.rlim_cur) {
		rl.rlim_cur = want;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
		unsigned fit = rl.rlim_cur > 64 ? (unsigned)(rl.rlim_cur - 64) : 1;
		log_event(LOG_LEVEL_WARN, "http_fd_limit", "max_connections=%u lowered_to=%u",
			  s->o.max_connections, fit);
		s->o.max_connections = fit;
	}
}

int httpd_new(const struct httpd_options *o, SSL_CTX *ctx, struct httpd **out)
{
	struct httpd *s;
	int rc = TLY_E_NOMEM;

	*out = NULL;
	if (!o || !ctx || o->max_header_bytes < 64 || o->body_min_rate == 0)
		return TLY_E_USAGE;
	s = calloc(1, sizeof *s);
	if (!s)
		return TLY_E_NOMEM;
	s->o = *o;
	s->base = event_base_new();
	if (!s->base)
		goto fail;
	if (s->o.rate_per_minute > 0) {
		rc = ratelimit_new(s->o.rate_per_minute, s->o.rate_burst, s->o.rate_max_keys, &s->rl);
		if (rc != TLY_OK)
			goto fail;
	}
	SSL_CTX_up_ref(ctx);
	s->ctx = ctx;
	s->health.method = "GET";
	s->health.path = "/v1/health";
	s->health.plen = strlen(s->health.path);
	s->health.flags = HTTPD_PUBLIC;
	s->health.handler = health_handler;
	s->health.arg = s;
	s->started_ms = mono_ms();
	raise_fd_limit(s);
	/* Signals are caught from here on, not only once httpd_run starts: a
	 * SIGTERM sent right after the server said it listens must still stop
	 * it cleanly (it is handled when the loop runs). */
	signal(SIGPIPE, SIG_IGN);
	s->sig_term = evsignal_new(s->base, SIGTERM, signal_cb, s);
	s->sig_int = evsignal_new(s->base, SIGINT, signal_cb, s);
	if (!s->sig_term || !s->sig_int || event_add(s->sig_term, NULL) != 0 ||
	    event_add(s->sig_int, NULL) != 0) {
		rc = TLY_E_INTERNAL;
		goto fail;
	}
	*out = s;
	return TLY_OK;
fail:
	if (s->sig_term)
		event_free(s->sig_term);
	if (s->sig_int)
		event_free(s->sig_int);
	ratelimit_free(s->rl);
	if (s->ctx)
		SSL_CTX_free(s->ctx);
	if (s->base)
		event_base_free(s->base);
	free(s);
	return rc;
}

int httpd_listen(struct httpd *s, const char *hostport, unsigned *port)
{
	struct sockaddr_storage ss;
	int sslen = sizeof ss;
	struct evconnlistener *l;

	if (s->nlis >= HTTPD_MAX_LISTENERS)
		return TLY_E_USAGE;
	memset(&ss, 0, sizeof ss);
	if (addr_parse_hostport(hostport, AI_PASSIVE, &ss, &sslen) != 0) {
		log_event(LOG_LEVEL_ERROR, "http_listen_bad_address", "address=%s", hostport);
		return TLY_E_USAGE;
	}
	l = evconnlistener_new_bind(s->base, accept_cb, s,
				    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
				    511, (struct sockaddr *)&ss, sslen);
	if (!l) {
		log_event(LOG_LEVEL_ERROR, "http_listen_failed", "address=%s error=%s", hostport,
			  strerror(errno));
		return TLY_E_IO;
	}
	evconnlistener_set_error_cb(l, listener_error_cb);
	s->lis[s->nlis++] = l;
	if (port) {
		struct sockaddr_storage got;
		socklen_t glen = sizeof got;
		*port = 0;
		if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&got, &glen) == 0) {
			if (got.ss_family == AF_INET)
				*port = ntohs(((struct sockaddr_in *)(void *)&got)->sin_port);
			else if (got.ss_family == AF_INET6)
				*port = ntohs(((struct sockaddr_in6 *)(void *)&got)->sin6_port);
		}
	}
	log_event(LOG_LEVEL_INFO, "http_listening", "address=%s port=%u", hostport,
		  port ? *port : 0);
	return TLY_OK;
}

int httpd_add_route(struct httpd *s, const struct httpd_route *r)
{
	struct route *grown;
	struct route *rt;

	if (!r || !r->method || !r->path || r->path[0] != '/' || !r->handler || !is_token(r->method))
		return TLY_E_USAGE;
	grown = realloc(s->routes, (s->nroutes + 1) * sizeof *s->routes);
	if (!grown)
		return TLY_E_NOMEM;
	s->routes = grown;
	rt = &s->routes[s->nroutes];
	memset(rt, 0, sizeof *rt);
	rt->method = strdup(r->method);
	rt->path = strdup(r->path);
	if (!rt->method || !rt->path) {
		free(rt->method);
		free(rt->path);
		return TLY_E_NOMEM;
	}
	rt->plen = strlen(rt->path);
	rt->prefix = r->prefix;
	rt->flags = r->flags;
	rt->max_body = r->max_body;
	rt->handler = r->handler;
	rt->arg = r->arg;
	s->nroutes++;
	return TLY_OK;
}

void httpd_set_auth(struct httpd *s, httpd_auth_fn fn, void *arg)
{
	s->auth = fn;
	s->auth_arg = arg;
}

struct event_base *httpd_base(struct httpd *s)
{
	return s->base;
}

static void free_all_conns(struct httpd *s)
{
	while (s->conns)
		conn_free(s->conns);
}

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct httpd *s = arg;
	(void)fd;
	(void)what;
	log_event(LOG_LEVEL_WARN, "http_stop_grace_over", "closing=%u", s->st.connections);
	free_all_conns(s);
	event_base_loopexit(s->base, NULL);
}

void httpd_stop(struct httpd *s)
{
	struct conn *c, *next;

	if (s->stopping)
		return;
	s->stopping = 1;
	log_event(LOG_LEVEL_INFO, "http_stopping", "connections=%u grace_ms=%u", s->st.connections,
		  s->o.shutdown_grace_ms);
	/* 1. no new connections */
	for (size_t i = 0; i < s->nlis; i++)
		evconnlistener_free(s->lis[i]);
	s->nlis = 0;
	/* 2. idle ones go now; 3. requests in flight finish with Connection: close */
	for (c = s->conns; c; c = next) {
		next = c->next;
		if (c->state == C_IDLE || c->state == C_HANDSHAKE ||
		    (c->state == C_HEAD && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0))
			conn_free(c);
		else
			c->close_after = 1;
	}
	if (s->st.connections == 0) {
		event_base_loopexit(s->base, NULL);
		return;
	}
	s->grace = evtimer_new(s->base, grace_cb, s);
	if (s->grace) {
		struct timeval tv = tv_of_ms(s->o.shutdown_grace_ms);
		evtimer_add(s->grace, &tv);
	} else {
		free_all_conns(s);
		event_base_loopexit(s->base, NULL);
	}
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct httpd *s = arg;
	(void)what;
	if (s->stopping) {
		log_event(LOG_LEVEL_WARN, "http_stop_now", "signal=%d", (int)sig);
		free_all_conns(s);
		event_base_loopexit(s->base, NULL);
		return;
	}
	log_event(LOG_LEVEL_INFO, "http_signal", "signal=%d", (int)sig);
	httpd_stop(s);
}

int httpd_run(struct httpd *s)
{
	int rc = TLY_OK;

	if (event_base_dispatch(s->base) < 0)
		rc = TLY_E_INTERNAL;
	log_event(LOG_LEVEL_INFO, "http_stopped", "requests=%llu",
		  (unsigned long long)s->st.requests);
	return rc;
}

void httpd_get_stats(const struct httpd *s, struct httpd_stats *st)
{
	*st = s->st;
}

void httpd_free(struct httpd *s)
{
	if (!s)
		return;
	free_all_conns(s);
	for (size_t i = 0; i < s->nlis; i++)
		evconnlistener_free(s->lis[i]);
	if (s->grace)
		event_free(s->grace);
	if (s->sig_term)
		event_free(s->sig_term);
	if (s->sig_int)
		event_free(s->sig_int);
	for (size_t i = 0; i < s->nroutes; i++) {
		free(s->routes[i].method);
		free(s->routes[i].path);
	}
	free(s->routes);
	ratelimit_free(s->rl);
	SSL_CTX_free(s->ctx);
	event_base_free(s->base);
	free(s);
}
