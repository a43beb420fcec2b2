/*
 * tally_testd — a small HTTPS server on daemon/httpd.h for the integration
 * tests: real TLS, real limits, a few routes that make each behaviour
 * observable. Not a product binary.
 *
 *   tally_testd --dir DIR [--config FILE] [--set KEY=VALUE]... [--listen ADDR]
 *               [--cert FILE --key FILE]
 *
 * Without --cert/--key it creates DIR/key.pem and DIR/cert.pem (names
 * localhost, 127.0.0.1, ::1) unless they exist. Prints one line
 * "port=N pin=PIN cert=PATH" on stdout once listening, then serves until
 * SIGTERM/SIGINT. Routes:
 *   GET  /v1/health              built in
 *   POST /echo                   JSON route: answers the (inflated) body
 *   GET  /slow?ms=N              blocks the loop N ms, then answers
 *   GET  /big?n=N                answers N bytes of JSON (compresses well)
 *   GET  /random?n=N             answers N bytes of JSON (hex noise, compresses ~2:1)
 *   GET  /portal                 200 text/html, like a captive portal
 *   GET  /redirect               302 to /echo
 *   GET  /stats                  the server's counters
 *   GET  /error?code=NAME        answers that error
 *   GET  /auth/ping, POST /auth/echo   behind the auth hook: bearer token
 *        required; "revoked" is refused; "custom" gets the hook's own 403;
 *        the rate key is the token
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "daemon/config.h"
#include "daemon/httpd.h"
#include "daemon/log.h"
#include "daemon/tls.h"
#include "protocol/error.h"

static struct httpd *srv;

static long query_num(const struct httpd_req *r, const char *key, long def)
{
	const char *q = httpd_req_query(r);
	size_t n = strlen(key);

	while (q && *q) {
		if (strncmp(q, key, n) == 0 && q[n] == '=')
			return strtol(q + n + 1, NULL, 10);
		q = strchr(q, '&');
		if (q)
			q++;
	}
	return def;
}

static int h_echo(struct httpd_req *r, void *arg)
{
	size_t len;
	const char *b = httpd_req_body(r, &len);
	char v[64];

	(void)arg;
	snprintf(v, sizeof v, "%zu/%zu", httpd_req_wire_bytes(r), len);
	httpd_add_header(r, "X-Body-Bytes", v);
	return httpd_reply_json(r, 200, b, len);
}

static int h_slow(struct httpd_req *r, void *arg)
{
	long ms = query_num(r, "ms", 1000);
	char body[64];
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	(void)arg;
	/* Blocks the whole loop on purpose: shows that a handler runs to
	 * completion, and stands in for a server that does not answer. */
	while (nanosleep(&ts, &ts) != 0)
		;
	int n = snprintf(body, sizeof body, "{\"slept\":%ld}", ms);
	return httpd_reply_json(r, 200, body, (size_t)n);
}

static int h_big(struct httpd_req *r, void *arg)
{
	long n = query_num(r, "n", 4096);
	char *b;
	int rc;

	(void)arg;
	if (n < 16 || n > (64L << 20))
		return TLY_E_BAD_VALUE;
	b = malloc((size_t)n);
	if (!b)
		return TLY_E_NOMEM;
	/* {"pad":"aaaa..."} : compressible, valid JSON */
	memset(b, 'a', (size_t)n);
	memcpy(b, "{\"pad\":\"", 8);
	memcpy(b + n - 2, "\"}", 2);
	rc = httpd_reply_json(r, 200, b, (size_t)n);
	free(b);
	return rc;
}

static int h_random(struct httpd_req *r, void *arg)
{
	long n = query_num(r, "n", 4096);
	static const char hex[] = "0123456789abcdef";
	uint64_t x = 88172645463325252ull;
	char *b;
	int rc;

	(void)arg;
	if (n < 16 || n > (64L << 20))
		return TLY_E_BAD_VALUE;
	b = malloc((size_t)n);
	if (!b)
		return TLY_E_NOMEM;
	for (long i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = hex[x & 15];
	}
	memcpy(b, "{\"pad\":\"", 8);
	memcpy(b + n - 2, "\"}", 2);
	rc = httpd_reply_json(r, 200, b, (size_t)n);
	free(b);
	return rc;
}

static int h_portal(struct httpd_req *r, void *arg)
{
	static const char page[] = "<html><body>Please log in to use the Wi-Fi</body></html>";
	(void)arg;
	return httpd_reply(r, 200, "text/html; charset=utf-8", page, sizeof page - 1);
}

static int h_redirect(struct httpd_req *r, void *arg)
{
	(void)arg;
	httpd_add_header(r, "Location", "/echo");
	return httpd_reply(r, 302, "text/plain", "moved\n", 6);
}

static int h_stats(struct httpd_req *r, void *arg)
{
	struct httpd_stats st;
	char body[512];

	(void)arg;
	httpd_get_stats(srv, &st);
	int n = snprintf(body, sizeof body,
			 "{\"accepted\":%llu,\"refused\":%llu,\"tls_failed\":%llu,\"requests\":%llu,"
			 "\"errors\":%llu,\"timeouts\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu,"
			 "\"connections\":%u,\"body_bytes_held\":%zu}",
			 (unsigned long long)st.accepted, (unsigned long long)st.refused,
			 (unsigned long long)st.tls_failed, (unsigned long long)st.requests,
			 (unsigned long long)st.errors, (unsigned long long)st.timeouts,
			 (unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out,
			 st.connections, st.body_bytes_held);
	return httpd_reply_json(r, 200, body, (size_t)n);
}

static int h_error(struct httpd_req *r, void *arg)
{
	const char *q = httpd_req_query(r);
	(void)arg;
	if (strncmp(q, "code=", 5) != 0)
		return TLY_E_BAD_VALUE;
	if (error_from_name(q + 5) == TLY_E_RATE_LIMITED)
		httpd_add_header(r, "Retry-After", "7");
	return httpd_reply_error(r, 0, error_from_name(q + 5), NULL);
}

static int h_auth_ping(struct httpd_req *r, void *arg)
{
	char body[256];
	(void)arg;
	int n = snprintf(body, sizeof body, "{\"you\":\"%s\"}", (char *)httpd_req_principal(r));
	return httpd_reply_json(r, 200, body, (size_t)n);
}

static int auth_hook(struct httpd_req *r, void *arg)
{
	const char *tok = httpd_req_bearer(r);
	char key[140];
	char *who;

	(void)arg;
	if (!tok || strlen(tok) > 64)
		return TLY_E_UNAUTHORIZED;
	for (const char *p = tok; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return TLY_E_UNAUTHORIZED;
	}
	if (strcmp(tok, "revoked") == 0)
		return TLY_E_REVOKED;
	if (strcmp(tok, "custom") == 0) /* a hook that answers itself */
		return httpd_reply_error(r, 403, TLY_E_FORBIDDEN, "本村设备不能查看其他村的台账");
	who = strdup(tok);
	if (!who)
		return TLY_E_NOMEM;
	httpd_req_set_principal(r, who, free);
	snprintf(key, sizeof key, "tok:%s", tok);
	return httpd_req_set_rate_key(r, key);
}

static void usage(void)
{
	fprintf(stderr, "usage: tally_testd --dir DIR [--config FILE] [--set KEY=VALUE]... "
			"[--listen ADDR] [--cert FILE --key FILE] [--log-level L]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct httpd_options o;
	struct config_section sec = {httpd_config_options, httpd_config_options_count, &o};
	struct config_error cerr;
	const char *dir = NULL, *config = NULL, *cert = NULL, *key = NULL;
	const char *listen = "127.0.0.1:0";
	char cert_buf[4096], key_buf[4096], pin[TLS_PIN_SIZE];
	SSL_CTX *ctx = NULL;
	unsigned port = 0;
	int rc;

	httpd_options_default(&o);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			config = argv[++i];
		else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
			listen = argv[++i];
		else if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc)
			cert = argv[++i];
		else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			key = argv[++i];
		else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
			int lvl;
			if (log_parse_level(argv[++i], &lvl) != TLY_OK)
				usage();
			log_set_level(lvl);
		} else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc) {
			/* config first so that --set overrides the file: applied below */
			i++;
		} else
			usage();
	}
	if (!dir && !(cert && key))
		usage();
	if (config) {
		rc = config_load_file(&sec, 1, config, &cerr);
		if (rc != TLY_OK) {
			log_event(LOG_LEVEL_ERROR, "config_refused", "file=%s line=%u key=%s reason=%s",
				  config, cerr.line, cerr.key, cerr.msg);
			return 1;
		}
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--set") == 0 && i + 1 < argc) {
			char kv[512];
			snprintf(kv, sizeof kv, "%s", argv[++i]);
			char *eq = strchr(kv, '=');
			if (!eq)
				usage();
			*eq = '\0';
			rc = config_set(&sec, 1, kv, eq + 1, &cerr);
			if (rc != TLY_OK) {
				log_event(LOG_LEVEL_ERROR, "config_refused", "key=%s reason=%s", cerr.key,
					  cerr.msg);
				return 1;
			}
		} else if (argv[i][0] == '-' && strcmp(argv[i], "--set") != 0) {
			i++;
		}
	}
	if (!cert || !key) {
		static const char *const names[] = {"localhost", "127.0.0.1", "::1"};
		snprintf(cert_buf, sizeof cert_buf, "%s/cert.pem", dir);
		snprintf(key_buf, sizeof key_buf, "%s/key.pem", dir);
		cert = cert_buf;
		key = key_buf;
		if (access(cert, F_OK) != 0) {
			rc = tls_generate_cert(key, cert, names, 3, 0, 0);
			if (rc != TLY_OK) {
				log_event(LOG_LEVEL_ERROR, "tls_generate_failed", "code=%s",
					  error_name(rc));
				return 1;
			}
		}
	}
	if ((rc = tls_create_server_ctx(cert, key, &ctx)) != TLY_OK ||
	    (rc = tls_pin_cert_file(cert, pin)) != TLY_OK || (rc = httpd_new(&o, ctx, &srv)) != TLY_OK)
		goto out;
	static const struct httpd_route routes[] = {
		{"POST", "/echo", 0, HTTPD_JSON | HTTPD_PUBLIC, 0, h_echo, NULL},
		{"GET", "/slow", 0, HTTPD_PUBLIC, 0, h_slow, NULL},
		{"GET", "/big", 0, HTTPD_PUBLIC, 0, h_big, NULL},
		{"GET", "/random", 0, HTTPD_PUBLIC, 0, h_random, NULL},
		{"GET", "/portal", 0, HTTPD_PUBLIC, 0, h_portal, NULL},
		{"GET", "/redirect", 0, HTTPD_PUBLIC, 0, h_redirect, NULL},
		{"GET", "/stats", 0, HTTPD_PUBLIC, 0, h_stats, NULL},
		{"GET", "/error", 0, HTTPD_PUBLIC, 0, h_error, NULL},
		{"GET", "/auth/ping", 0, 0, 0, h_auth_ping, NULL},
		{"POST", "/auth/echo", 0, HTTPD_JSON, 0, h_echo, NULL},
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		if ((rc = httpd_add_route(srv, &routes[i])) != TLY_OK)
			goto out;
	}
	httpd_set_auth(srv, auth_hook, NULL);
	if ((rc = httpd_listen(srv, listen, &port)) != TLY_OK)
		goto out;
	printf("port=%u pin=%s cert=%s\n", port, pin, cert);
	fflush(stdout);
	rc = httpd_run(srv);
out:
	if (rc != TLY_OK)
		log_event(LOG_LEVEL_ERROR, "testd_failed", "code=%s", error_name(rc));
	httpd_free(srv);
	SSL_CTX_free(ctx);
	return rc == TLY_OK ? 0 : 1;
}
