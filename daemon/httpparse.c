/*
 * httpparse — strict HTTP/1.x request heads (see httpparse.h).
 */
#include <string.h>

#include "daemon/httpparse.h"
#include "protocol/error.h"

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

int httpparse_ieq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++) {
		if (lower(*a) != lower(*b))
			return 0;
	}
	return *a == *b;
}

static int ieq_n(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (lower(a[i]) != lower(b[i]))
			return 0;
	}
	return 1;
}

/* RFC 9110 tchar */
static int is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static const char *const singletons[] = {
	"content-length", "transfer-encoding", "content-type", "content-encoding",
	"authorization",  "host",              "expect",       NULL,
};

static int is_singleton(const char *name)
{
	for (int i = 0; singletons[i]; i++) {
		if (httpparse_ieq(name, singletons[i]))
			return 1;
	}
	return 0;
}

/* Cuts the line starting at *pos (ending in CRLF, before end) and returns
 * it NUL-terminated, or NULL for a bare CR or LF inside. */
static char *next_line(char *p, size_t n, size_t *pos)
{
	char *start = p + *pos;
	for (size_t i = *pos; i + 1 < n; i++) {
		if (p[i] == '\r') {
			if (p[i + 1] != '\n')
				return NULL;
			p[i] = '\0';
			*pos = i + 2;
			return start;
		}
		if (p[i] == '\n' || p[i] == '\0')
			return NULL;
	}
	return NULL;
}

static int parse_request_line(char *line, struct httpparse_head *out)
{
	char *m = line, *t, *v;
	size_t mlen = 0;

	while (m[mlen] >= 'A' && m[mlen] <= 'Z')
		mlen++;
	if (mlen == 0 || mlen > 16 || m[mlen] != ' ')
		return TLY_E_BAD_REQUEST;
	m[mlen] = '\0';
	t = m + mlen + 1;
	if (*t != '/')
		return TLY_E_BAD_REQUEST; /* origin-form only: no proxies, no "*" */
	v = t;
	while ((unsigned char)*v > 0x20 && (unsigned char)*v < 0x7f && *v != '#')
		v++;
	if (*v != ' ')
		return TLY_E_BAD_REQUEST;
	*v++ = '\0';
	if (strcmp(v, "HTTP/1.1") == 0)
		out->minor = 1;
	else if (strcmp(v, "HTTP/1.0") == 0)
		out->minor = 0;
	else
		return TLY_E_BAD_REQUEST;
	out->method = m;
	out->path = t;
	char *q = strchr(t, '?');
	if (q) {
		*q = '\0';
		out->query = q + 1;
	} else {
		out->query = "";
	}
	return TLY_OK;
}

int httpparse_request_head(char *p, size_t n, size_t max_headers, struct httpparse_head *out)
{
	size_t pos = 0;
	char *line;
	int rc;

	memset(out, 0, sizeof *out);
	if (max_headers > HTTPPARSE_MAX_HEADERS)
		max_headers = HTTPPARSE_MAX_HEADERS;
	if (n < 4 || memcmp(p + n - 4, "\r\n\r\n", 4) != 0)
		return TLY_E_BAD_REQUEST;

	line = next_line(p, n, &pos);
	if (!line)
		return TLY_E_BAD_REQUEST;
	rc = parse_request_line(line, out);
	if (rc != TLY_OK)
		return rc;

	for (;;) {
		line = next_line(p, n, &pos);
		if (!line)
			return TLY_E_BAD_REQUEST;
		if (*line == '\0')
			break; /* the blank line */
		if (out->n_headers >= max_headers)
			return TLY_E_HEADER_TOO_LARGE;
		char *c = line;
		while (is_tchar((unsigned char)*c))
			c++;
		/* no name, a blank before the colon, or a folded continuation */
		if (c == line || *c != ':')
			return TLY_E_BAD_REQUEST;
		*c++ = '\0';
		while (*c == ' ' || *c == '\t')
			c++;
		char *e = c + strlen(c);
		while (e > c && (e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		for (char *x = c; *x; x++) {
			unsigned char u = (unsigned char)*x;
			if ((u < 0x20 && u != '\t') || u == 0x7f)
				return TLY_E_BAD_REQUEST;
		}
		if (is_singleton(line) && httpparse_find(out, line))
			return TLY_E_BAD_REQUEST;
		out->headers[out->n_headers].name = line;
		out->headers[out->n_headers].value = c;
		out->n_headers++;
	}
	if (pos != n)
		return TLY_E_BAD_REQUEST;
	return TLY_OK;
}

const char *httpparse_find(const struct httpparse_head *h, const char *name)
{
	for (size_t i = 0; i < h->n_headers; i++) {
		if (httpparse_ieq(h->headers[i].name, name))
			return h->headers[i].value;
	}
	return NULL;
}

int httpparse_content_length(const char *v, uint64_t *out)
{
	uint64_t x = 0;
	size_t i = 0;

	for (; v[i]; i++) {
		if (v[i] < '0' || v[i] > '9' || i >= 18)
			return TLY_E_BAD_REQUEST;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	if (i == 0)
		return TLY_E_BAD_REQUEST;
	*out = x;
	return TLY_OK;
}

/* Whether a comma-separated list of "token[;param]..." elements accepts
 * `want`: its own element's q-value decides, else a "*" element's (when
 * star_counts), else no. */
static int list_has(const char *v, const char *want, int star_counts)
{
	const char *p = v;
	size_t wlen = strlen(want);
	int exact_q = -1, star_q = -1;

	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *tok = p;
		while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
			p++;
		size_t tlen = (size_t)(p - tok);
		int q = 1000;
		/* parameters up to the next comma; only q matters */
		while (*p && *p != ',') {
			if (*p == ';') {
				p++;
				while (*p == ' ' || *p == '\t')
					p++;
				if ((p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
					p += 2;
					int ip = 0, frac = 0, scale = 100;
					if (*p >= '0' && *p <= '9')
						ip = *p++ - '0';
					if (*p == '.') {
						p++;
						while (*p >= '0' && *p <= '9') {
							frac += (*p++ - '0') * scale;
							scale /= 10;
						}
					}
					q = ip >= 1 ? 1000 : frac;
					continue;
				}
			}
			if (*p && *p != ',')
				p++;
		}
		if (tlen == 0)
			continue;
		if (tlen == wlen && ieq_n(tok, want, wlen))
			exact_q = q;
		else if (star_counts && tlen == 1 && *tok == '*')
			star_q = q;
	}
	if (exact_q >= 0)
		return exact_q > 0;
	return star_q > 0;
}

int httpparse_accepts_gzip(const char *accept_encoding)
{
	if (!accept_encoding)
		return 0;
	return list_has(accept_encoding, "gzip", 1);
}

int httpparse_has_token(const char *list, const char *token)
{
	if (!list)
		return 0;
	return list_has(list, token, 0);
}

int httpparse_media_type_is(const char *content_type, const char *type)
{
	size_t n = strlen(type);

	if (!content_type || strlen(content_type) < n || !ieq_n(content_type, type, n))
		return 0;
	const char *p = content_type + n;
	while (*p == ' ' || *p == '\t')
		p++;
	return *p == '\0' || *p == ';';
}

const char *httpparse_bearer(const char *authorization)
{
	if (!authorization || strlen(authorization) < 7 || !ieq_n(authorization, "Bearer ", 7))
		return NULL;
	const char *t = authorization + 7;
	while (*t == ' ')
		t++;
	return *t ? t : NULL;
}
