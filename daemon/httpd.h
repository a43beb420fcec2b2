/*
 * httpd — the township's HTTPS server: TLS on libevent bufferevents, a
 * strict HTTP/1.1 request reader with every limit enforced before
 * buffering, a route table, and handlers that run synchronously.
 *
 * Why not evhttp: libevent 2.1's evhttp has no hook between "headers read"
 * and "body read" for server requests (evhttp_set_newreqcb is 2.2), no
 * connection cap, and answers its own limits (oversize body, oversize
 * headers) with HTML bodies and 413 for both. We need JSON error bodies,
 * 431, a declared Content-Length refused before any body byte is read,
 * auth and rate limits decided on the headers, and a total deadline per
 * request. So this module reads requests itself (httpparse.h) on
 * bufferevent_openssl and libevent's listener, timers and signals.
 *
 * A request goes through these steps, each able to answer an error and
 * stop before the next (see docs/daemon.md for the table):
 *   1. head: request line + headers within max_header_bytes and
 *      header_timeout_ms (counted from the first byte, or from accept for a
 *      new connection, so the TLS handshake is inside it too)     431/400/408
 *   2. route: exact path, or longest prefix                        404/405
 *   3. framing: Content-Length <= route/server max; chunked refused 413/411
 *   4. Content-Encoding gzip or identity; Content-Type on JSON routes   415
 *   5. auth hook (routes not marked HTTPD_PUBLIC), on the headers   401/403
 *   6. rate limit on the key the auth hook set                      429
 *   7. body memory budget across all connections                    503
 *   8. body: read within body_timeout_ms + bytes/body_min_rate      408
 *   9. gzip body inflated under max_inflated_bytes               413/400
 *  10. handler runs, answers; response gzip'd if the client accepts it
 * An answer given before the body was read closes the connection after it
 * (the unread body cannot be told from the next request).
 *
 * Handlers run inside the event loop, one at a time, to completion: no
 * other request, timer or signal is processed while one runs. That is what
 * makes a clean stop simple: see httpd_stop.
 *
 * Ownership: the server owns its connections, requests and a reference to
 * the SSL_CTX it was given. A struct httpd_req and everything read from it
 * are valid only during the handler (or auth hook) call.
 */
#ifndef TALLY_DAEMON_HTTPD_H
#define TALLY_DAEMON_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/config.h"
#include "protocol/buf.h"

struct event_base;
struct ssl_ctx_st; /* OpenSSL's SSL_CTX; see tls.h for why it is not included */
struct httpd;
struct httpd_req;

/* All limits and timeouts; set by httpd_options_default or a config file
 * (httpd_config_options below names each one). */
struct httpd_options {
	size_t max_body_bytes;       /* request body as received (413) */
	size_t max_inflated_bytes;   /* request body after gunzip (413) */
	size_t max_header_bytes;     /* request line + headers (431) */
	unsigned max_headers;        /* header lines (431) */
	unsigned max_connections;    /* open connections; more are closed at accept */
	size_t max_total_body_bytes; /* bodies being received at once, all connections (503) */
	unsigned header_timeout_ms;  /* TLS handshake + head of one request (408/close) */
	unsigned body_timeout_ms;    /* body: base time ... */
	unsigned body_min_rate;      /* ... plus 1 s per this many bytes received (bytes/s) */
	unsigned idle_timeout_ms;    /* keep-alive idle, and silence within a request */
	unsigned write_timeout_ms;   /* a client not reading its answer */
	unsigned linger_ms;          /* after a closing answer: wait for the client's EOF */
	unsigned max_requests_per_conn;
	unsigned rate_per_minute;    /* token refill per key; 0 disables rate limiting */
	unsigned rate_burst;         /* bucket size */
	unsigned rate_max_keys;      /* buckets held at most */
	size_t gzip_min_bytes;       /* answers at least this big are gzip'd when accepted */
	unsigned shutdown_grace_ms;  /* httpd_stop: time given to requests in flight */
	int log_requests;            /* one info line per request */
};

void httpd_options_default(struct httpd_options *o);

/* The options as config-file keys (target: struct httpd_options). */
extern const struct config_option httpd_config_options[];
extern const size_t httpd_config_options_count;

/* Route flags */
#define HTTPD_JSON 0x1   /* a request body must be Content-Type application/json (415) */
#define HTTPD_PUBLIC 0x2 /* no auth hook (and so no rate limit key) */

/*
 * A handler answers with one of the httpd_reply* calls and returns TLY_OK.
 * Returning an error code without having answered makes the server answer
 * that error (status from httpd_status_of); returning after answering
 * ignores the code (it is logged).
 */
typedef int (*httpd_handler_fn)(struct httpd_req *req, void *arg);

/*
 * The auth hook runs on the headers, before the body is read, for every
 * route without HTTPD_PUBLIC. It may look at httpd_req_bearer, set a
 * principal and a rate-limit key, and returns TLY_OK to go on, or an error
 * code (TLY_E_UNAUTHORIZED, TLY_E_REVOKED -> 401, TLY_E_FORBIDDEN -> 403,
 * any other -> its httpd_status_of) that is answered instead. It may also
 * answer itself (httpd_reply_error with a message of its own); the
 * handler then does not run. Either way an unread body closes the
 * connection after the answer.
 */
typedef int (*httpd_auth_fn)(struct httpd_req *req, void *arg);

struct httpd_route {
	const char *method;  /* "GET", "POST", ...: exact, uppercase */
	const char *path;    /* "/v1/push"; with prefix=1 any path starting with it */
	int prefix;
	unsigned flags;      /* HTTPD_JSON | HTTPD_PUBLIC */
	size_t max_body;     /* 0: the server's max_body_bytes; may only lower it */
	httpd_handler_fn handler;
	void *arg;
};

/* Counters since start, for the health route and benchmarks. */
struct httpd_stats {
	uint64_t accepted;        /* connections accepted */
	uint64_t refused;         /* connections closed at accept (max_connections) */
	uint64_t tls_failed;      /* handshakes that failed (plain HTTP, old TLS, junk) */
	uint64_t requests;        /* requests answered, any status */
	uint64_t errors;          /* of which 4xx/5xx */
	uint64_t timeouts;        /* requests or handshakes dropped at their deadline */
	uint64_t bytes_in;        /* request bodies as received */
	uint64_t bytes_out;       /* response bodies as sent */
	unsigned connections;     /* open now */
	size_t body_bytes_held;   /* body budget in use now */
};

/* Creates a server; ctx is up-referenced (the caller keeps its own
 * reference). The GET /v1/health route is built in (public); a route the
 * caller adds for the same method and path replaces it. From here on the
 * process ignores SIGPIPE, and SIGTERM and SIGINT are caught by the
 * server's loop (they call httpd_stop once httpd_run runs). */
int httpd_new(const struct httpd_options *o, struct ssl_ctx_st *ctx, struct httpd **out);

/* Listens on "HOST:PORT" ("127.0.0.1:0", "[::1]:8443", "0.0.0.0:8443");
 * port 0 picks a free port, reported in *port if port is not NULL. May be
 * called several times (up to 8 addresses). */
int httpd_listen(struct httpd *s, const char *hostport, unsigned *port);

/* Copies the route (its strings too). TLY_E_USAGE for a bad one. */
int httpd_add_route(struct httpd *s, const struct httpd_route *r);

void httpd_set_auth(struct httpd *s, httpd_auth_fn fn, void *arg);

/* The event loop, for timers of the embedding daemon. */
struct event_base *httpd_base(struct httpd *s);

/* Runs the loop until the server is stopped (httpd_stop, SIGTERM, SIGINT). */
int httpd_run(struct httpd *s);

/*
 * Stops cleanly, in this order:
 *   1. the listening sockets are closed: new connections are refused;
 *   2. idle connections (between requests, or still in the TLS handshake)
 *      are closed;
 *   3. requests being received or answered get shutdown_grace_ms to finish;
 *      each connection is closed once its answer is flushed (answers made
 *      after the stop also say "Connection: close");
 *   4. when none is left, or at the end of the grace time (the rest are
 *      closed), httpd_run returns.
 * No handler is ever interrupted: handlers run to completion inside the
 * loop, and a signal is only seen between callbacks. So a push is either
 * applied and answered, or (if its body was still arriving) not applied at
 * all and retried by the village. A second SIGTERM/SIGINT skips the grace.
 */
void httpd_stop(struct httpd *s);

void httpd_get_stats(const struct httpd *s, struct httpd_stats *st);

/* Closes everything. Must not be called from inside a callback. */
void httpd_free(struct httpd *s);

/* ---- the request, for handlers and the auth hook ---- */

const char *httpd_req_method(const struct httpd_req *r);
const char *httpd_req_path(const struct httpd_req *r);  /* raw, not percent-decoded */
const char *httpd_req_query(const struct httpd_req *r); /* after '?', "" if none */
const char *httpd_req_remote(const struct httpd_req *r); /* "10.0.0.7:51234", "[::1]:40000" */
/* Any request header by name (case-insensitive), or NULL. */
const char *httpd_req_header(const struct httpd_req *r, const char *name);
/* The token of "Authorization: Bearer TOKEN", or NULL. */
const char *httpd_req_bearer(const struct httpd_req *r);
/* The body after gunzip, NUL-terminated ("" with *len 0 when none).
 * NULL in the auth hook: the body has not been read yet. */
const char *httpd_req_body(const struct httpd_req *r, size_t *len);
/* Body bytes as they came over the wire (compressed size). */
size_t httpd_req_wire_bytes(const struct httpd_req *r);

/* For the auth hook: the caller's identity for the handler, freed with
 * free_fn (may be NULL) after the request. */
void httpd_req_set_principal(struct httpd_req *r, void *principal, void (*free_fn)(void *));
void *httpd_req_principal(const struct httpd_req *r);
/* For the auth hook: the rate-limit key (at most 128 bytes); none means
 * not limited. TLY_E_FIELD_TOO_LONG. */
int httpd_req_set_rate_key(struct httpd_req *r, const char *key);

/* ---- answering ---- */

/* Adds a response header (Retry-After, Set-Cookie, Location, ...). Names
 * must be tokens and values free of CR, LF and NUL (TLY_E_BAD_VALUE);
 * headers the server writes itself (Content-Length, Content-Type,
 * Content-Encoding, Connection, Date, Transfer-Encoding) are TLY_E_USAGE. */
int httpd_add_header(struct httpd_req *r, const char *name, const char *value);

/* Answers: status 200-599, content type, body copied. Only the first
 * answer counts (TLY_E_USAGE after that). */
int httpd_reply(struct httpd_req *r, int status, const char *content_type, const void *body,
		size_t len);
int httpd_reply_json(struct httpd_req *r, int status, const char *json, size_t len);

/* Answers the protocol's error message (PROTOCOL.md §7.7),
 *   {"v":1,"type":"error","code":"<error_name>","message":"<zh>"}
 * which is also what the server itself answers for every refusal (413, 415,
 * 429, 431, ...; those of 429 and 503 with "retry_after" and a
 * Retry-After header). status 0 means httpd_status_of(err); message NULL
 * (or over 512 bytes) means error_text_zh(err). For "expected" (seq_gap)
 * or "retry_after", build it with msg_encode_error and httpd_reply_json. */
int httpd_reply_error(struct httpd_req *r, int status, int err, const char *message);

/* The HTTP status an error code is answered with: 400 for bad input, 401,
 * 403, 404, 405, 408, 411, 413, 415, 429, 431, 503, 500 for the rest. */
int httpd_status_of(int err);

/* Appends the error message above to out. */
int httpd_format_error(struct buf *out, int err, const char *message);

#endif
