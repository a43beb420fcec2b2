/*
 * tally_testc — one request with daemon/httpc.h, for the integration
 * tests (which run it under faketime, behind the fault proxy, ...).
 *
 *   tally_testc --url URL [--url URL]... [--pin PIN] [--ca FILE] --path P
 *               [--method M] [--body TEXT] [--token T] [--expect 200,201]
 *               [--connect-ms N] [--total-ms N] [--low-speed B,S]
 *               [--max-response N] [--gzip-min N] [--repeat N]
 *
 * Prints one summary line per request:
 *   rc=<error_name> status=N curl=N sent=N received=N ms=N retry_after=N
 *   remote=<error_name> ctype="..." body_len=N
 * then, after the last request, a line "--" and the last body. Exit 0 if
 * every request returned TLY_OK, 1 otherwise, 2 for usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/httpc.h"
#include "protocol/error.h"

static void usage(void)
{
	fprintf(stderr, "usage: tally_testc --url URL [--pin PIN] [--ca FILE] --path P ...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct httpc_options o;
	struct httpc_request req = {"GET", NULL, NULL, NULL, 0, NULL, 0};
	struct httpc_response res;
	const char *urls[HTTPC_MAX_URLS];
	int expect[8];
	size_t nurls = 0, nexpect = 0;
	long repeat = 1;
	struct httpc *c = NULL;
	int all_ok = 1;
	int rc;

	httpc_options_default(&o);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		i++;
		if (strcmp(a, "--url") == 0 && nurls < HTTPC_MAX_URLS)
			urls[nurls++] = v;
		else if (strcmp(a, "--pin") == 0)
			o.pin = v;
		else if (strcmp(a, "--ca") == 0)
			o.ca_file = v;
		else if (strcmp(a, "--path") == 0)
			req.path = v;
		else if (strcmp(a, "--method") == 0)
			req.method = v;
		else if (strcmp(a, "--body") == 0) {
			req.body = v;
			req.body_len = strlen(v);
		} else if (strcmp(a, "--token") == 0)
			req.token = v;
		else if (strcmp(a, "--expect") == 0) {
			char *copy = strdup(v), *save = NULL;
			for (char *t = strtok_r(copy, ",", &save); t && nexpect < 8;
			     t = strtok_r(NULL, ",", &save))
				expect[nexpect++] = atoi(t);
			free(copy);
		} else if (strcmp(a, "--connect-ms") == 0)
			o.connect_timeout_ms = (unsigned)atol(v);
		else if (strcmp(a, "--total-ms") == 0)
			o.total_timeout_ms = (unsigned)atol(v);
		else if (strcmp(a, "--low-speed") == 0) {
			unsigned b = 0, s = 0;
			if (sscanf(v, "%u,%u", &b, &s) != 2)
				usage();
			o.low_speed_bytes = b;
			o.low_speed_secs = s;
		} else if (strcmp(a, "--max-response") == 0)
			o.max_response_bytes = (size_t)atol(v);
		else if (strcmp(a, "--gzip-min") == 0)
			o.gzip_min_bytes = (size_t)atol(v);
		else if (strcmp(a, "--repeat") == 0)
			repeat = atol(v);
		else
			usage();
	}
	if (nurls == 0 || !req.path)
		usage();
	o.base_urls = urls;
	o.n_base_urls = nurls;
	if (nexpect) {
		req.expect = expect;
		req.n_expect = nexpect;
	}
	rc = httpc_new(&o, &c);
	if (rc != TLY_OK) {
		printf("rc=%s\n", error_name(rc));
		return 1;
	}
	memset(&res, 0, sizeof res);
	for (long k = 0; k < repeat; k++) {
		httpc_response_clear(&res);
		rc = httpc_send(c, &req, &res);
		if (rc != TLY_OK)
			all_ok = 0;
		printf("rc=%s status=%ld curl=%d sent=%llu received=%llu tls=%llu ms=%u retry_after=%u "
		       "remote=%s ctype=\"%s\" body_len=%zu detail=\"%s\"\n",
		       error_name(rc), res.status, res.curl_code, (unsigned long long)res.bytes_sent,
		       (unsigned long long)res.bytes_received, (unsigned long long)res.tls_bytes, res.elapsed_ms, res.retry_after,
		       res.remote_code ? error_name(res.remote_code) : "-", res.content_type,
		       res.body.len, res.detail);
	}
	printf("--\n");
	if (res.body.len)
		fwrite(res.body.data, 1, res.body.len, stdout);
	printf("\n");
	httpc_response_clear(&res);
	httpc_free(c);
	return all_ok ? 0 : 1;
}
