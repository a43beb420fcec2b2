/*
 * httpc — HTTPS client on libcurl with pinning (see httpc.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "daemon/httpc.h"
#include "daemon/httpparse.h"
#include "daemon/log.h"
#include "daemon/tls.h"
#include "protocol/compress.h"
#include "protocol/error.h"
#include "protocol/limits.h"
#include "protocol/message.h"

#define HTTPC_URL_MAX 2048

struct httpc {
	CURL *curl;
	char *urls[HTTPC_MAX_URLS];
	size_t nurls;
	size_t preferred; /* the URL that worked last */
	char *pin;
	char *ca_file;
	char *user_agent;
	struct httpc_options o;
	uint64_t total_sent, total_received, total_tls;

	/* state of the attempt in progress, reset before each */
	struct buf raw;
	int raw_overflow;
	int pin_mismatch;
	int alert_seen;
	int verify_error;
	int tls_error; /* OpenSSL failed the handshake for a TLS reason */
	char content_encoding[32];
	unsigned retry_after;
	uint64_t out_bytes, in_bytes, tls_bytes;
};

static int httpc_ex_index = -1;
static int httpc_curl_ready;

void httpc_options_default(struct httpc_options *o)
{
	const struct limits *l = limits_or_default(NULL);

	memset(o, 0, sizeof *o);
	o->connect_timeout_ms = 10000;
	o->total_timeout_ms = 60000;
	o->low_speed_bytes = 100;
	o->low_speed_secs = 30;
	o->max_response_bytes = l->max_body_bytes;
	o->max_inflated_bytes = l->max_inflated_bytes;
	o->gzip_min_bytes = 256;
	o->user_agent = "tallyd";
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int httpc_new(const struct httpc_options *o, struct httpc **out)
{
	struct httpc_options d;
	struct httpc *c = NULL;
	int rc = TLY_E_NOMEM;

	*out = NULL;
	if (!o || o->n_base_urls == 0 || o->n_base_urls > HTTPC_MAX_URLS || !o->base_urls)
		return TLY_E_USAGE;
	if (!o->pin && !o->ca_file)
		return TLY_E_USAGE; /* never without verification */
	if (o->pin && !tls_pin_list_valid(o->pin))
		return TLY_E_USAGE;
	for (size_t i = 0; i < o->n_base_urls; i++) {
		const char *u = o->base_urls[i];
		if (!u || strncmp(u, "https://", 8) != 0 || strlen(u) > HTTPC_URL_MAX)
			return TLY_E_USAGE;
	}
	if (!httpc_curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return TLY_E_INTERNAL;
		httpc_curl_ready = 1;
	}
	if (httpc_ex_index < 0) {
		httpc_ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
		if (httpc_ex_index < 0)
			return TLY_E_INTERNAL;
	}

	c = calloc(1, sizeof *c);
	if (!c)
		return TLY_E_NOMEM;
	httpc_options_default(&d);
	c->o = *o;
	/* zero means default, field by field */
	if (!c->o.connect_timeout_ms)
		c->o.connect_timeout_ms = d.connect_timeout_ms;
	if (!c->o.total_timeout_ms)
		c->o.total_timeout_ms = d.total_timeout_ms;
	if (!c->o.low_speed_bytes)
		c->o.low_speed_bytes = d.low_speed_bytes;
	if (!c->o.low_speed_secs)
		c->o.low_speed_secs = d.low_speed_secs;
	if (!c->o.max_response_bytes)
		c->o.max_response_bytes = d.max_response_bytes;
	if (!c->o.max_inflated_bytes)
		c->o.max_inflated_bytes = d.max_inflated_bytes;
	if (!c->o.gzip_min_bytes)
		c->o.gzip_min_bytes = d.gzip_min_bytes;
	c->o.base_urls = NULL;
	c->o.pin = NULL;
	c->o.ca_file = NULL;
	c->o.user_agent = NULL;

	for (size_t i = 0; i < o->n_base_urls; i++) {
		size_t n = strlen(o->base_urls[i]);
		while (n > 8 && o->base_urls[i][n - 1] == '/')
			n--; /* paths start with '/' */
		c->urls[i] = strndup(o->base_urls[i], n);
		if (!c->urls[i])
			goto fail;
		c->nurls++;
	}
	if ((o->pin && !(c->pin = strdup(o->pin))) ||
	    (o->ca_file && !(c->ca_file = strdup(o->ca_file))) ||
	    !(c->user_agent = strdup(o->user_agent ? o->user_agent : d.user_agent)))
		goto fail;
	c->curl = curl_easy_init();
	if (!c->curl) {
		rc = TLY_E_INTERNAL;
		goto fail;
	}
	buf_init(&c->raw, c->o.max_response_bytes);
	*out = c;
	return TLY_OK;
fail:
	httpc_free(c);
	return rc;
}

void httpc_free(struct httpc *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	for (size_t i = 0; i < c->nurls; i++)
		free(c->urls[i]);
	free(c->pin);
	free(c->ca_file);
	free(c->user_agent);
	buf_free(&c->raw);
	free(c);
}

void httpc_get_totals(const struct httpc *c, uint64_t *sent, uint64_t *received,
		      uint64_t *tls)
{
	if (sent)
		*sent = c->total_sent;
	if (received)
		*received = c->total_received;
	if (tls)
		*tls = c->total_tls;
}

void httpc_response_clear(struct httpc_response *res)
{
	buf_free(&res->body);
	free(res->remote_message);
	memset(res, 0, sizeof *res);
}

/* ---- OpenSSL hooks, installed per connection through curl ---- */

static struct httpc *httpc_of_ssl(const SSL *ssl)
{
	return ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), httpc_ex_index) : NULL;
}

/* Tells a TLS failure from a dead link: an alert either way, or OpenSSL
 * leaving the handshake with an error of its own (wrong version number,
 * no shared cipher, ...) is TLS; a reset or an EOF mid-handshake (a system
 * error, or SSL_R_UNEXPECTED_EOF_WHILE_READING) is the network's. A plain
 * "want read" exit leaves the error queue empty and marks nothing. */
static void info_cb(const SSL *ssl, int where, int ret)
{
	struct httpc *c = httpc_of_ssl(ssl);

	if (!c)
		return;
	if ((where & SSL_CB_ALERT) && (ret & 0xff) != SSL_AD_CLOSE_NOTIFY)
		c->alert_seen = 1;
	if ((where & SSL_CB_EXIT) && ret <= 0) {
		unsigned long e = ERR_peek_last_error();
		if (e && ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    ERR_GET_REASON(e) != SSL_R_UNEXPECTED_EOF_WHILE_READING)
			c->tls_error = 1;
	}
}

/*
 * Pin mode: OpenSSL verifies the chain as usual; the only verdicts we
 * overrule are "no trusted issuer" ones, and only when the leaf's key is a
 * pinned one: then the pin is the trust anchor. Every other failure stays
 * a failure. Dates are not checked at all in this mode
 * (X509_V_FLAG_NO_CHECK_TIME, set with this callback).
 */
static int pin_verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct httpc *c = httpc_of_ssl(ssl);
	char pin[TLS_PIN_SIZE];
	int err;

	if (ok)
		return 1;
	if (!c)
		return 0;
	err = X509_STORE_CTX_get_error(xs);
	switch (err) {
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		break;
	default:
		c->verify_error = err;
		return 0;
	}
	if (tls_pin_x509(X509_STORE_CTX_get0_cert(xs), pin) != TLY_OK ||
	    !tls_pin_in_list(pin, c->pin)) {
		c->pin_mismatch = 1;
		return 0;
	}
	X509_STORE_CTX_set_error(xs, X509_V_OK);
	return 1;
}

static CURLcode ssl_ctx_cb(CURL *curl, void *sslctx, void *arg)
{
	SSL_CTX *ctx = sslctx;
	struct httpc *c = arg;

	(void)curl;
	if (!SSL_CTX_set_ex_data(ctx, httpc_ex_index, c))
		return CURLE_OUT_OF_MEMORY;
	SSL_CTX_set_info_callback(ctx, info_cb);
	if (c->pin && !c->ca_file) {
		X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_NO_CHECK_TIME);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, pin_verify_cb);
	}
	return CURLE_OK;
}

/* ---- curl callbacks ---- */

static size_t write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct httpc *c = arg;
	size_t len = size * n;

	if (buf_add(&c->raw, p, len) != TLY_OK) {
		c->raw_overflow = 1;
		return 0; /* curl stops: CURLE_WRITE_ERROR */
	}
	return len;
}

static size_t header_cb(char *p, size_t size, size_t n, void *arg)
{
	struct httpc *c = arg;
	size_t len = size * n;
	char line[256];
	size_t k = len < sizeof line - 1 ? len : sizeof line - 1;

	memcpy(line, p, k);
	line[k] = '\0';
	while (k > 0 && (line[k - 1] == '\r' || line[k - 1] == '\n' || line[k - 1] == ' '))
		line[--k] = '\0';
	if (strncmp(line, "HTTP/", 5) == 0) {
		/* a new answer (a 100 Continue came first): forget the old headers */
		c->content_encoding[0] = '\0';
		c->retry_after = 0;
		return len;
	}
	char *colon = strchr(line, ':');
	if (!colon)
		return len;
	*colon = '\0';
	char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	if (httpparse_ieq(line, "Content-Encoding")) {
		snprintf(c->content_encoding, sizeof c->content_encoding, "%s", v);
	} else if (httpparse_ieq(line, "Retry-After")) {
		unsigned long secs = 0;
		int digits = 0;
		for (const char *d = v; *d >= '0' && *d <= '9' && digits < 9; d++, digits++)
			secs = secs * 10 + (unsigned long)(*d - '0');
		c->retry_after = digits ? (unsigned)secs : 0;
	}
	return len;
}

/* Counts what went over the connection, exactly: curl's size counters
 * (CURLINFO_REQUEST_SIZE, SIZE_UPLOAD_T) overlap for a small POST whose
 * body is sent with the headers, so the trace callback is the one source
 * that neither misses nor double-counts a byte. */
static int debug_cb(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
	struct httpc *c = arg;

	(void)h;
	(void)data;
	switch (type) {
	case CURLINFO_HEADER_OUT:
	case CURLINFO_DATA_OUT:
		c->out_bytes += size;
		break;
	case CURLINFO_HEADER_IN:
	case CURLINFO_DATA_IN:
		c->in_bytes += size;
		break;
	case CURLINFO_SSL_DATA_IN:
	case CURLINFO_SSL_DATA_OUT:
		c->tls_bytes += size;
		break;
	default:
		break;
	}
	return 0;
}

/* ---- one request ---- */

static int map_curl(const struct httpc *c, CURLcode cc, long os_errno)
{
	if (c->pin_mismatch || cc == CURLE_SSL_PINNEDPUBKEYNOTMATCH)
		return TLY_E_PIN;
	switch (cc) {
	case CURLE_OK:
		return TLY_OK;
	case CURLE_OPERATION_TIMEDOUT:
		return TLY_E_TIMEOUT;
	case CURLE_WRITE_ERROR:
		return c->raw_overflow ? TLY_E_TOO_LARGE : TLY_E_IO;
	case CURLE_FILESIZE_EXCEEDED:
		return TLY_E_TOO_LARGE;
	case CURLE_OUT_OF_MEMORY:
		return TLY_E_NOMEM;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return TLY_E_USAGE;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_USE_SSL_FAILED:
		return TLY_E_TLS;
	case CURLE_SSL_CONNECT_ERROR:
		/* An alert means TLS itself said no; a reset or EOF without one
		 * is a dropped link (a flaky village line must not read as a
		 * certificate problem). */
		(void)os_errno;
		if (c->alert_seen || c->verify_error || c->tls_error)
			return TLY_E_TLS;
		return TLY_E_NETWORK;
	default:
		return TLY_E_NETWORK;
	}
}

static int significance(int rc)
{
	switch (rc) {
	case TLY_E_PIN:
		return 4;
	case TLY_E_TLS:
		return 3;
	case TLY_E_TIMEOUT:
		return 2;
	case TLY_E_NETWORK:
		return 1;
	default:
		return 5;
	}
}

/* An unexpected status with a JSON body: if it is the protocol's error
 * message, keep its code and Chinese text for the caller. The strict
 * decoder is the protocol's, so a hostile body gets no further here than
 * in the sync engine. */
static void parse_error_body(struct httpc_response *res)
{
	struct msg_error m;

	if (res->body.len == 0)
		return;
	if (msg_decode_error(res->body.data, res->body.len, NULL, &m) != TLY_OK)
		return;
	res->remote_code = m.code;
	free(res->remote_message);
	res->remote_message = m.message;
	m.message = NULL;
	if (!res->retry_after && m.retry_after)
		res->retry_after = m.retry_after;
	msg_error_clear(&m);
}

static int status_expected(const struct httpc_request *req, long status)
{
	if (!req->expect || req->n_expect == 0)
		return status == 200;
	for (size_t i = 0; i < req->n_expect; i++) {
		if (req->expect[i] == status)
			return 1;
	}
	return 0;
}

/* One attempt against one base URL. Fills res (status, body, sizes,
 * detail); *sent_any tells whether request bytes went out. */
static int add_header(struct curl_slist **list, const char *line)
{
	struct curl_slist *t = curl_slist_append(*list, line);
	if (!t)
		return TLY_E_NOMEM;
	*list = t;
	return TLY_OK;
}

static int attempt(struct httpc *c, const char *base, const struct httpc_request *req,
		   const char *body_type, const char *accept, const void *body, size_t body_len,
		   int gzipped, struct httpc_response *res, int *sent_any)
{
	char accept_hdr[160];
	CURL *h = c->curl;
	struct curl_slist *hdrs = NULL;
	char url[HTTPC_URL_MAX + 1024];
	char errbuf[CURL_ERROR_SIZE] = "";
	char auth[1100];
	CURLcode cc;
	long os_errno = 0, status = 0;
	char *ctype = NULL;
	int rc = TLY_OK;

	*sent_any = 0;
	buf_reset(&c->raw);
	c->raw_overflow = 0;
	c->pin_mismatch = 0;
	c->alert_seen = 0;
	c->verify_error = 0;
	c->tls_error = 0;
	c->content_encoding[0] = '\0';
	c->retry_after = 0;
	c->out_bytes = c->in_bytes = c->tls_bytes = 0;

	if ((size_t)snprintf(url, sizeof url, "%s%s", base, req->path) >= sizeof url)
		return TLY_E_USAGE;

	/* Reset keeps the connection and TLS session caches; every option is
	 * set again below, so no request inherits another's. */
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->pin)
		curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, c->pin);
	if (c->pin && !c->ca_file) {
		/* Pinned, the key is the trust and the system's CA bundle is never
		 * consulted; curl would still parse it for every new connection
		 * (our SSL_CTX callback turns its CA cache off): ~20 ms of CPU a
		 * handshake, which on a link cut every few hundred ms was more
		 * than the link left. */
		curl_easy_setopt(h, CURLOPT_CAINFO, NULL);
		curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
	}
	if (c->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
	curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, c);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->o.connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->o.total_timeout_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, (long)c->o.low_speed_bytes);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)c->o.low_speed_secs);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->o.max_response_bytes);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, debug_cb);
	curl_easy_setopt(h, CURLOPT_DEBUGDATA, c);
	curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);

	/* We inflate ourselves, under our cap: so no CURLOPT_ACCEPT_ENCODING. */
	/* "Expect:" removes curl's 100-continue wait for bodies over 1 MiB. */
	if ((size_t)snprintf(accept_hdr, sizeof accept_hdr, "Accept: %s", accept) >=
	    sizeof accept_hdr) {
		rc = TLY_E_USAGE;
		goto out;
	}
	if ((rc = add_header(&hdrs, accept_hdr)) != TLY_OK ||
	    (rc = add_header(&hdrs, "Accept-Encoding: gzip")) != TLY_OK ||
	    (rc = add_header(&hdrs, "Expect:")) != TLY_OK)
		goto out;
	if (req->token) {
		if ((size_t)snprintf(auth, sizeof auth, "Authorization: Bearer %s", req->token) >=
		    sizeof auth) {
			rc = TLY_E_USAGE;
			goto out;
		}
		if ((rc = add_header(&hdrs, auth)) != TLY_OK)
			goto out;
	}
	if (body) {
		char ct[160];
		if ((size_t)snprintf(ct, sizeof ct, "Content-Type: %s",
				     body_type ? body_type : "application/json") >=
		    sizeof ct) {
			rc = TLY_E_USAGE;
			goto out;
		}
		if ((rc = add_header(&hdrs, ct)) != TLY_OK ||
		    (gzipped && (rc = add_header(&hdrs, "Content-Encoding: gzip")) != TLY_OK))
			goto out;
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);

	if (strcmp(req->method, "GET") == 0 && !body) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else {
		if (strcmp(req->method, "POST") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
	}

	cc = curl_easy_perform(h);

	curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ctype);

	*sent_any = c->out_bytes > 0;
	res->bytes_sent += c->out_bytes;
	res->bytes_received += c->in_bytes;
	res->tls_bytes += c->tls_bytes;
	res->curl_code = (int)cc;
	res->status = status;
	snprintf(res->detail, sizeof res->detail, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
	snprintf(res->content_type, sizeof res->content_type, "%s", ctype ? ctype : "");
	res->retry_after = c->retry_after;

	rc = map_curl(c, cc, os_errno);
	if (rc != TLY_OK)
		goto out;

	/* Decode the answer whatever its status: an error body is read too. */
	buf_free(&res->body);
	buf_init(&res->body, c->o.max_inflated_bytes);
	if (c->content_encoding[0] == '\0' || httpparse_ieq(c->content_encoding, "identity")) {
		if (c->raw.len > c->o.max_inflated_bytes)
			rc = TLY_E_INFLATE_LIMIT;
		else if (c->raw.len)
			rc = buf_add(&res->body, c->raw.data, c->raw.len);
	} else if (httpparse_ieq(c->content_encoding, "gzip")) {
		rc = compress_inflate(c->raw.data, c->raw.len, &res->body);
	} else {
		rc = TLY_E_BAD_COMPRESSION;
	}
	if (rc != TLY_OK)
		goto out;

	int json = httpparse_media_type_is(ctype, "application/json");
	if (!status_expected(req, status)) {
		if (json)
			parse_error_body(res);
		rc = TLY_E_HTTP_STATUS;
	} else if (!httpparse_media_type_is(ctype, accept) &&
		   !(status == 204 && res->body.len == 0)) {
		/* A captive portal's 200 login page: not a Tally answer. */
		rc = TLY_E_HTTP_STATUS;
	}
out:
	curl_slist_free_all(hdrs);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	return rc;
}

int httpc_send(struct httpc *c, const struct httpc_request *req, struct httpc_response *res)
{
	return httpc_send_typed(c, req, NULL, res);
}

static int send_request(struct httpc *c, const struct httpc_request *req,
			const char *content_type, const char *accept, struct httpc_response *res);

int httpc_send_typed(struct httpc *c, const struct httpc_request *req, const char *content_type,
		     struct httpc_response *res)
{
	return send_request(c, req, content_type, "application/json", res);
}

int httpc_send_accept(struct httpc *c, const struct httpc_request *req, const char *accept,
		      struct httpc_response *res)
{
	return send_request(c, req, NULL, accept ? accept : "application/json", res);
}

static int send_request(struct httpc *c, const struct httpc_request *req,
			const char *content_type, const char *accept, struct httpc_response *res)
{
	struct buf gz;
	const void *body = NULL;
	size_t body_len = 0;
	int gzipped = 0;
	int best_rc = TLY_OK, best_sig = -1;
	int best_curl = 0;
	char best_detail[sizeof res->detail] = "";
	const char *best_url = NULL;
	uint64_t t0 = mono_ms();
	int rc = TLY_OK;

	memset(res, 0, sizeof *res);
	buf_init(&res->body, c->o.max_inflated_bytes);
	buf_init(&gz, SIZE_MAX);
	if (!req || !req->method || !req->path || req->path[0] != '/') {
		rc = TLY_E_USAGE;
		goto out;
	}
	if (req->body) {
		if (!content_type && req->body_len >= c->o.gzip_min_bytes) {
			rc = compress_gzip(req->body, req->body_len, &gz);
			if (rc != TLY_OK)
				goto out;
			body = gz.data;
			body_len = gz.len;
			gzipped = 1;
		} else {
			body = req->body;
			body_len = req->body_len;
		}
	}

	for (size_t k = 0; k < c->nurls; k++) {
		size_t i = (c->preferred + k) % c->nurls;
		int sent_any = 0;

		res->base_url = c->urls[i];
		rc = attempt(c, c->urls[i], req, content_type, accept, body, body_len, gzipped, res,
			     &sent_any);
		if (rc == TLY_OK || rc == TLY_E_HTTP_STATUS) {
			/* a server answered: it is the one to ask next time */
			c->preferred = i;
			break;
		}
		log_event(LOG_LEVEL_DEBUG, "httpc_attempt_failed", "url=%s code=%s curl=%d detail=%s",
			  c->urls[i], error_name(rc), res->curl_code, res->detail);
		int sig = significance(rc);
		if (sig > best_sig) {
			best_sig = sig;
			best_rc = rc;
			best_curl = res->curl_code;
			best_url = res->base_url;
			snprintf(best_detail, sizeof best_detail, "%s", res->detail);
		}
		/* Only a request that cannot have reached a server may go to the
		 * next address; anything else is the caller's to retry. */
		if (sent_any || (rc != TLY_E_NETWORK && rc != TLY_E_TIMEOUT && rc != TLY_E_TLS &&
				 rc != TLY_E_PIN))
			break;
	}
	if (rc != TLY_OK && rc != TLY_E_HTTP_STATUS && best_sig >= 0) {
		rc = best_rc;
		res->curl_code = best_curl;
		res->base_url = best_url;
		snprintf(res->detail, sizeof res->detail, "%s", best_detail);
	}
out:
	res->elapsed_ms = (unsigned)(mono_ms() - t0);
	c->total_sent += res->bytes_sent;
	c->total_received += res->bytes_received;
	c->total_tls += res->tls_bytes;
	buf_free(&gz);
	return rc;
}
