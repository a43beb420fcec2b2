/*
 * httpparse — a strict parser for an HTTP/1.x request head, and the few
 * header-value parsers the server needs.
 *
 * The server finds the end of the head ("\r\n\r\n") within its header cap
 * first, so this parser only ever sees a complete, bounded head. It accepts
 * RFC 9112's grammar and nothing looser: CRLF line ends only (a bare CR or
 * LF is an error), no obsolete line folding, no whitespace before a
 * header's colon, a method of 1-16 uppercase letters, an origin-form target
 * ("/path?query") of visible ASCII, HTTP/1.0 or HTTP/1.1. Ambiguity is what
 * request smuggling lives on, so headers whose repetition would be
 * ambiguous (Content-Length, Transfer-Encoding, Content-Type,
 * Content-Encoding, Authorization, Host, Expect) may appear once.
 *
 * Ownership: httpparse_request_head parses in place: it writes NULs into
 * the caller's bytes and every pointer in the result points into them.
 */
#ifndef TALLY_DAEMON_HTTPPARSE_H
#define TALLY_DAEMON_HTTPPARSE_H

#include <stddef.h>
#include <stdint.h>

#define HTTPPARSE_MAX_HEADERS 100

struct httpparse_header {
	const char *name;  /* as sent; compare case-insensitively */
	const char *value; /* without surrounding blanks */
};

struct httpparse_head {
	const char *method;
	const char *path;  /* the target up to '?' */
	const char *query; /* after '?', "" when none */
	int minor;         /* HTTP/1.minor: 0 or 1 */
	size_t n_headers;
	struct httpparse_header headers[HTTPPARSE_MAX_HEADERS];
};

/*
 * Parses p[0..n), which ends with the blank line's CRLF. max_headers (at
 * most HTTPPARSE_MAX_HEADERS) bounds the header count: more is
 * TLY_E_HEADER_TOO_LARGE. Anything malformed is TLY_E_BAD_REQUEST.
 */
int httpparse_request_head(char *p, size_t n, size_t max_headers, struct httpparse_head *out);

/* The first header named `name` (case-insensitive), or NULL. */
const char *httpparse_find(const struct httpparse_head *h, const char *name);

/* Content-Length: 1-18 digits only (no sign, no list). TLY_E_BAD_REQUEST otherwise. */
int httpparse_content_length(const char *v, uint64_t *out);

/* 1 if an Accept-Encoding value accepts gzip (listed, or "*", with q > 0). */
int httpparse_accepts_gzip(const char *accept_encoding);

/* 1 if a comma-separated header value lists `token` (case-insensitive),
 * as "Connection: keep-alive, close" lists "close". */
int httpparse_has_token(const char *list, const char *token);

/* 1 if a Content-Type value is the media type `type` (case-insensitive),
 * with or without parameters ("application/json; charset=utf-8"). */
int httpparse_media_type_is(const char *content_type, const char *type);

/* The token of "Authorization: Bearer TOKEN", or NULL. */
const char *httpparse_bearer(const char *authorization);

/* Case-insensitive ASCII comparison, 1 when equal. */
int httpparse_ieq(const char *a, const char *b);

#endif
