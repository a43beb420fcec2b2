/*
 * httpc — the village's HTTPS client (libcurl easy interface, one request
 * at a time), with the trust and failure rules of DESIGN.md §4 and
 * PROTOCOL.md §6.
 *
 * Trust, one of (both may be given):
 *   pin      "sha256//BASE64[;sha256//BASE64]" from the join code. The pin
 *            replaces the trust anchor: the chain is still verified by
 *            OpenSSL (signatures, key usage, host name by curl), and an
 *            "unknown issuer / self-signed" verdict is accepted only for a
 *            leaf whose key matches the pin. Certificate dates are not
 *            checked (X509_V_FLAG_NO_CHECK_TIME), so a village clock years
 *            off still syncs. curl's CURLOPT_PINNEDPUBLICKEY checks the pin
 *            again after the handshake.
 *   ca_file  PEM CA certificates for a township with a CA-issued
 *            certificate: normal verification, dates included.
 * Verification is never switched off; with neither, httpc_new refuses.
 *
 * Every request: connect timeout, total timeout and a low-speed limit;
 * HTTPS only; redirects never followed (a 3xx is an unexpected status);
 * HTTP/1.1; the request body gzip'd (Content-Encoding: gzip) when at least
 * gzip_min_bytes, with Content-Type: application/json; Authorization:
 * Bearer TOKEN when given; Accept-Encoding: gzip, the answer inflated here
 * under max_inflated_bytes; the answer as received capped at
 * max_response_bytes (the write callback refuses past it).
 *
 * Success means: one of the expected statuses (200 unless told) AND
 * Content-Type application/json (any parameters; httpc_send_accept names
 * another type). Anything else is
 * TLY_E_HTTP_STATUS, with status, body and (when the body is the
 * protocol's error message) remote_code/remote_message filled, so the
 * caller can tell a 401 revoked or a 429 from a captive portal's 200
 * text/html login page.
 *
 * Several base URLs (a join code may carry several addresses): each
 * request tries them in turn, starting with the last that worked, moving on
 * only when no byte of the request can have reached a server (resolve,
 * connect, TLS or pin failure), so failover never sends a request twice.
 * (libcurl may resend once on a kept-alive connection found dead before
 * any answer byte: Tally's requests are idempotent.)
 *
 * Error mapping (rc of httpc_send):
 *   TLY_E_PIN         the server's key is not the pinned one (curl 90, or
 *                     our verify callback saw a self-signed leaf with
 *                     another key)
 *   TLY_E_TLS         a TLS failure the peer or we signalled with an alert:
 *                     protocol version, cipher, bad certificate, expired
 *                     (CA mode), wrong host name
 *   TLY_E_TIMEOUT     connect, total or low-speed timeout (curl 28)
 *   TLY_E_NETWORK     resolve/connect failure, connection reset or closed
 *                     mid-way (also during the handshake without an alert)
 *   TLY_E_HTTP_STATUS see above
 *   TLY_E_TOO_LARGE, TLY_E_INFLATE_LIMIT, TLY_E_BAD_COMPRESSION  answer caps
 *
 * Ownership: httpc_new copies the options' strings. A response owns its
 * body and remote_message; httpc_response_clear frees them.
 */
#ifndef TALLY_DAEMON_HTTPC_H
#define TALLY_DAEMON_HTTPC_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/buf.h"

#define HTTPC_MAX_URLS 8

struct httpc;

struct httpc_options {
	const char *const *base_urls; /* "https://host:port", no trailing '/' needed */
	size_t n_base_urls;
	const char *pin;              /* NULL or a pin list */
	const char *ca_file;          /* NULL or a PEM file */
	unsigned connect_timeout_ms;  /* default 10 s */
	unsigned total_timeout_ms;    /* default 60 s */
	unsigned low_speed_bytes;     /* abort below this many bytes/s ... (default 100) */
	unsigned low_speed_secs;      /* ... for this long (default 30 s) */
	size_t max_response_bytes;    /* default limits max_body_bytes (8 MiB) */
	size_t max_inflated_bytes;    /* default limits max_inflated_bytes (32 MiB) */
	size_t gzip_min_bytes;        /* request bodies this big are gzip'd (default 256;
				       * 1 gzips every body: below ~100 bytes gzip grows them) */
	const char *user_agent;       /* default "tallyd" */
};

/* Zero fields mean the defaults above. */
void httpc_options_default(struct httpc_options *o);

struct httpc_request {
	const char *method;     /* "GET" or "POST" (others allowed) */
	const char *path;       /* "/v1/push", appended to the base URL */
	const char *token;      /* bearer token or NULL */
	const void *body;       /* JSON, or NULL */
	size_t body_len;
	const int *expect;      /* expected statuses; NULL means {200} */
	size_t n_expect;
};

struct httpc_response {
	long status;             /* 0 if no HTTP answer */
	struct buf body;         /* inflated answer, NUL-terminated when not empty */
	char content_type[128];
	unsigned retry_after;    /* seconds, from Retry-After or the error body, 0 if none */
	int remote_code;         /* TLY_E_* of a protocol error body, TLY_OK if none */
	char *remote_message;    /* its Chinese message, owned, or NULL */
	uint64_t bytes_sent;     /* HTTP bytes sent: request line, headers, body (compressed) */
	uint64_t bytes_received; /* HTTP bytes received: status line, headers, body (compressed) */
	uint64_t tls_bytes;      /* TLS handshake messages both ways (0 on a reused
				  * connection; record framing not counted) */
	unsigned elapsed_ms;
	int curl_code;           /* CURLcode of the last attempt, for logs */
	char detail[256];        /* curl's error text, for logs */
	const char *base_url;    /* the base URL that answered or failed last */
};

/* TLY_E_USAGE for no base URL, a non-https URL, no pin and no CA file, or
 * a malformed pin. */
int httpc_new(const struct httpc_options *o, struct httpc **out);
void httpc_free(struct httpc *c);

/* Sends one request; *res is overwritten (clear it before reuse). */
int httpc_send(struct httpc *c, const struct httpc_request *req, struct httpc_response *res);

void httpc_response_clear(struct httpc_response *res);
/* httpc_send with a body of another Content-Type (NULL: application/json),
 * sent as is, never gzip'd: evidence chunks are dense and hashed as sent. */
int httpc_send_typed(struct httpc *c, const struct httpc_request *req, const char *content_type,
		     struct httpc_response *res);
/* httpc_send expecting an answer of another media type (NULL:
 * application/json), sent as the Accept header and required on success,
 * as application/json is for httpc_send: reports are fetched as text/csv
 * and as .xlsx. Error answers are still read as the protocol's JSON. */
int httpc_send_accept(struct httpc *c, const struct httpc_request *req, const char *accept,
		      struct httpc_response *res);

/* Sums over every request this handle sent, for benchmarks: HTTP bytes
 * sent and received, and TLS handshake bytes (see struct httpc_response). */
void httpc_get_totals(const struct httpc *c, uint64_t *sent, uint64_t *received,
		      uint64_t *tls);

#endif
