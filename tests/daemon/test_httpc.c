/*
 * test_httpc — the HTTPS client against a real tally_testd over TLS on
 * loopback: pins, CA mode, captive portal, redirects, error bodies, caps,
 * gzip both ways, timeouts, failover, and the error mapping for servers
 * that are not TLS or do not answer. (Clock skew runs under faketime in
 * httpc_faketime_test.py: it needs a process of its own.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/httpc.h"
#include "daemon/tls.h"
#include "protocol/error.h"

#define TESTD TALLY_BINARY_DIR "/tests/daemon/tally_testd"

static char dir[64];
static pid_t server_pid;
static unsigned port;
static char pin[TLS_PIN_SIZE];
static char cert[256];
static char url[64];
static pid_t fake_pid; /* a stand-in server; killed in teardown even if a test fails */

/* Starts tally_testd and reads its "port=N pin=P cert=C" line. */
static void start_server(void)
{
	int fds[2];
	char line[512] = "";
	FILE *f;

	assert_int_equal(pipe(fds), 0);
	server_pid = fork();
	assert_true(server_pid >= 0);
	if (server_pid == 0) {
		/* never outlive the test, even if it crashes */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl(TESTD, TESTD, "--dir", dir, "--log-level", "warn", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	f = fdopen(fds[0], "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof line, f));
	fclose(f);
	assert_int_equal(sscanf(line, "port=%u pin=%52s cert=%255s", &port, pin, cert), 3);
	snprintf(url, sizeof url, "https://127.0.0.1:%u", port);
}

static void stop_server(void)
{
	int st = 0;
	if (server_pid <= 0)
		return;
	kill(server_pid, SIGTERM);
	assert_int_equal(waitpid(server_pid, &st, 0), server_pid);
	server_pid = 0;
	/* a clean stop: exit 0, not a crash or a sanitizer report */
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/tally_httpc_XXXXXX");
	assert_non_null(mkdtemp(dir));
	start_server();
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	if (fake_pid > 0) {
		kill(fake_pid, SIGKILL);
		waitpid(fake_pid, NULL, 0);
		fake_pid = 0;
	}
	stop_server();
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd);
}

static struct httpc *client(const char *p, const char *ca, unsigned total_ms)
{
	struct httpc_options o;
	struct httpc *c = NULL;
	const char *urls[1] = {url};

	httpc_options_default(&o);
	o.base_urls = urls;
	o.n_base_urls = 1;
	o.pin = p;
	o.ca_file = ca;
	if (total_ms)
		o.total_timeout_ms = total_ms;
	assert_int_equal(httpc_new(&o, &c), TLY_OK);
	return c;
}

static int get(struct httpc *c, const char *path, struct httpc_response *res)
{
	struct httpc_request req = {"GET", path, NULL, NULL, 0, NULL, 0};
	return httpc_send(c, &req, res);
}

static uint64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_pin_ok_and_gzip_both_ways(void **state)
{
	struct httpc *c = client(pin, NULL, 0);
	struct httpc_response res;
	static char body[20000];
	(void)state;

	/* a compressible body well over gzip_min_bytes */
	size_t n = 0;
	n += (size_t)snprintf(body, sizeof body, "{\"items\":[");
	while (n < sizeof body - 64)
		n += (size_t)snprintf(body + n, sizeof body - n, "\"村委会整改\",");
	n += (size_t)snprintf(body + n, sizeof body - n, "\"end\"]}");
	struct httpc_request req = {"POST", "/echo", "tok-1", body, n, NULL, 0};
	assert_int_equal(httpc_send(c, &req, &res), TLY_OK);
	assert_int_equal(res.status, 200);
	assert_string_equal(res.content_type, "application/json");
	assert_int_equal(res.body.len, n);
	assert_memory_equal(res.body.data, body, n);
	/* gzip'd on the wire both ways: far fewer bytes than the body */
	assert_true(res.bytes_sent < n / 4);
	assert_true(res.bytes_received < n / 4);
	assert_true(res.bytes_sent > 100);
	assert_true(res.tls_bytes > 500); /* a fresh connection: a handshake */
	httpc_response_clear(&res);

	/* the server saw the compressed size as the wire size */
	assert_int_equal(get(c, "/stats", &res), TLY_OK);
	assert_non_null(strstr(res.body.data, "\"requests\":1,"));
	assert_true(res.tls_bytes < 100); /* the connection was reused */
	httpc_response_clear(&res);

	uint64_t sent = 0, recv = 0, tls = 0;
	httpc_get_totals(c, &sent, &recv, &tls);
	assert_true(sent > 0 && recv > 0 && tls > 500);
	httpc_free(c);
}

/* A wrong pin: refused during the handshake, nothing reaches a handler. */
static void test_wrong_pin(void **state)
{
	const char *wrong = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
	struct httpc *c = client(wrong, NULL, 0);
	struct httpc_response res;
	(void)state;
	assert_int_equal(get(c, "/v1/health", &res), TLY_E_PIN);
	assert_int_equal(res.status, 0);
	assert_int_equal(res.bytes_sent, 0);
	httpc_response_clear(&res);
	httpc_free(c);

	/* a pin list holding the right one among others is accepted */
	char list[200];
	snprintf(list, sizeof list, "%s;%s", wrong, pin);
	c = client(list, NULL, 0);
	assert_int_equal(get(c, "/v1/health", &res), TLY_OK);
	httpc_response_clear(&res);
	assert_int_equal(get(c, "/stats", &res), TLY_OK);
	assert_non_null(strstr(res.body.data, "\"requests\":1,")); /* only ours */
	httpc_response_clear(&res);
	httpc_free(c);
}

/* CA mode: the server's certificate as the CA file works; another
 * certificate as the CA file fails as TLS, not as a pin mismatch. */
static void test_ca_mode(void **state)
{
	char other_key[128], other_cert[128];
	static const char *const names[] = {"127.0.0.1"};
	struct httpc_response res;
	(void)state;
	struct httpc *c = client(NULL, cert, 0);
	assert_int_equal(get(c, "/v1/health", &res), TLY_OK);
	httpc_response_clear(&res);
	httpc_free(c);

	snprintf(other_key, sizeof other_key, "%s/other.key", dir);
	snprintf(other_cert, sizeof other_cert, "%s/other.pem", dir);
	assert_int_equal(tls_generate_cert(other_key, other_cert, names, 1, 0, 0), TLY_OK);
	c = client(NULL, other_cert, 0);
	assert_int_equal(get(c, "/v1/health", &res), TLY_E_TLS);
	assert_int_equal(res.curl_code, 60);
	httpc_response_clear(&res);
	httpc_free(c);
}

static void test_captive_portal_and_redirect(void **state)
{
	struct httpc *c = client(pin, NULL, 0);
	struct httpc_response res;
	(void)state;
	assert_int_equal(get(c, "/portal", &res), TLY_E_HTTP_STATUS);
	assert_int_equal(res.status, 200);
	assert_non_null(strstr(res.content_type, "text/html"));
	httpc_response_clear(&res);

	assert_int_equal(get(c, "/redirect", &res), TLY_E_HTTP_STATUS);
	assert_int_equal(res.status, 302);
	httpc_response_clear(&res);
	/* not followed: the server never saw a request for /echo */
	assert_int_equal(get(c, "/stats", &res), TLY_OK);
	assert_non_null(strstr(res.body.data, "\"requests\":2,"));
	httpc_response_clear(&res);

	/* a status the caller did not list, even 200 JSON, is not success */
	int want[] = {201};
	struct httpc_request req = {"GET", "/v1/health", NULL, NULL, 0, want, 1};
	assert_int_equal(httpc_send(c, &req, &res), TLY_E_HTTP_STATUS);
	assert_int_equal(res.status, 200);
	httpc_response_clear(&res);
	httpc_free(c);
}

static void test_error_bodies(void **state)
{
	struct httpc *c = client(pin, NULL, 0);
	struct httpc_response res;
	(void)state;
	assert_int_equal(get(c, "/error?code=revoked", &res), TLY_E_HTTP_STATUS);
	assert_int_equal(res.status, 401);
	assert_int_equal(res.remote_code, TLY_E_REVOKED);
	assert_string_equal(res.remote_message, error_text_zh(TLY_E_REVOKED));
	httpc_response_clear(&res);

	assert_int_equal(get(c, "/error?code=rate_limited", &res), TLY_E_HTTP_STATUS);
	assert_int_equal(res.status, 429);
	assert_int_equal(res.retry_after, 7);
	assert_int_equal(res.remote_code, TLY_E_RATE_LIMITED);
	httpc_response_clear(&res);

	/* the auth hook answers before any handler: 401 with a code */
	assert_int_equal(get(c, "/auth/ping", &res), TLY_E_HTTP_STATUS);
	assert_int_equal(res.status, 401);
	assert_int_equal(res.remote_code, TLY_E_UNAUTHORIZED);
	httpc_response_clear(&res);
	struct httpc_request req = {"GET", "/auth/ping", "dev-7", NULL, 0, NULL, 0};
	assert_int_equal(httpc_send(c, &req, &res), TLY_OK);
	assert_string_equal(res.body.data, "{\"you\":\"dev-7\"}");
	httpc_response_clear(&res);
	httpc_free(c);
}

static void test_response_caps(void **state)
{
	struct httpc_options o;
	struct httpc *c = NULL;
	struct httpc_response res;
	const char *urls[1] = {url};
	(void)state;
	httpc_options_default(&o);
	o.base_urls = urls;
	o.n_base_urls = 1;
	o.pin = pin;
	o.max_response_bytes = 10000;
	o.max_inflated_bytes = 50000;
	assert_int_equal(httpc_new(&o, &c), TLY_OK);
	/* compresses to little, inflates past 50000 */
	assert_int_equal(get(c, "/big?n=100000", &res), TLY_E_INFLATE_LIMIT);
	httpc_response_clear(&res);
	/* 100000 hex bytes are ~55000 gzip'd: over the wire cap */
	assert_int_equal(get(c, "/random?n=100000", &res), TLY_E_TOO_LARGE);
	httpc_response_clear(&res);
	assert_int_equal(get(c, "/big?n=40000", &res), TLY_OK);
	assert_int_equal(res.body.len, 40000);
	httpc_response_clear(&res);
	httpc_free(c);
}

/* Failover: a dead address first, the server second. */
static void test_failover(void **state)
{
	struct httpc_options o;
	struct httpc *c = NULL;
	struct httpc_response res;
	const char *urls[2] = {"https://127.0.0.1:1", url};
	(void)state;
	httpc_options_default(&o);
	o.base_urls = urls;
	o.n_base_urls = 2;
	o.pin = pin;
	assert_int_equal(httpc_new(&o, &c), TLY_OK);
	assert_int_equal(get(c, "/v1/health", &res), TLY_OK);
	assert_string_equal(res.base_url, url);
	httpc_response_clear(&res);
	/* the working one is tried first from now on */
	assert_int_equal(get(c, "/v1/health", &res), TLY_OK);
	assert_string_equal(res.base_url, url);
	httpc_response_clear(&res);
	httpc_free(c);

	const char *dead[1] = {"https://127.0.0.1:1"};
	o.base_urls = dead;
	o.n_base_urls = 1;
	assert_int_equal(httpc_new(&o, &c), TLY_OK);
	assert_int_equal(get(c, "/v1/health", &res), TLY_E_NETWORK);
	httpc_response_clear(&res);
	httpc_free(c);
}

/* Listens on a free loopback port in a child: mode 0 accepts and never
 * writes; mode 1 answers plain HTTP (not TLS). Returns the port. */
static unsigned start_fake(int mode, pid_t *pid)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s >= 0);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(s, 8), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	*pid = fork();
	assert_true(*pid >= 0);
	fake_pid = *pid;
	if (*pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;) {
			int c = accept(s, NULL, NULL);
			if (c < 0)
				_exit(0);
			if (mode == 1) {
				char buf[512];
				static const char ans[] = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
							  "Content-Length: 5\r\n\r\nhello";
				ssize_t r = read(c, buf, sizeof buf);
				(void)r;
				r = write(c, ans, sizeof ans - 1);
				(void)r;
				close(c);
			}
			/* mode 0: keep the connection open, say nothing */
		}
	}
	close(s);
	return ntohs(a.sin_port);
}

static void test_not_tls_and_silent_servers(void **state)
{
	struct httpc_options o;
	struct httpc *c = NULL;
	struct httpc_response res;
	char u[64];
	const char *urls[1] = {u};
	pid_t pid;
	int st;
	(void)state;

	httpc_options_default(&o);
	o.base_urls = urls;
	o.n_base_urls = 1;
	o.pin = pin;

	/* plain HTTP where TLS was expected: a TLS failure */
	snprintf(u, sizeof u, "https://127.0.0.1:%u", start_fake(1, &pid));
	assert_int_equal(httpc_new(&o, &c), TLY_OK);
	assert_int_equal(get(c, "/v1/health", &res), TLY_E_TLS);
	httpc_response_clear(&res);
	httpc_free(c);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	fake_pid = 0;

	/* accepts and never speaks: the connect timeout (which covers the
	 * handshake) fires, in bounded time */
	snprintf(u, sizeof u, "https://127.0.0.1:%u", start_fake(0, &pid));
	o.connect_timeout_ms = 700;
	assert_int_equal(httpc_new(&o, &c), TLY_OK);
	uint64_t t0 = ms_now();
	assert_int_equal(get(c, "/v1/health", &res), TLY_E_TIMEOUT);
	uint64_t took = ms_now() - t0;
	assert_true(took >= 600 && took < 3000);
	httpc_response_clear(&res);
	httpc_free(c);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	fake_pid = 0;
}

/* A server that takes the request and does not answer in time: the total
 * timeout, in bounded time. Last, since it blocks the server's loop. */
static void test_total_timeout(void **state)
{
	struct httpc *c = client(pin, NULL, 800);
	struct httpc_response res;
	(void)state;
	uint64_t t0 = ms_now();
	assert_int_equal(get(c, "/slow?ms=2500", &res), TLY_E_TIMEOUT);
	uint64_t took = ms_now() - t0;
	assert_true(took >= 700 && took < 2000);
	assert_int_equal(res.curl_code, 28);
	httpc_response_clear(&res);
	httpc_free(c);
}

static void test_usage(void **state)
{
	struct httpc_options o;
	struct httpc *c = NULL;
	const char *http[1] = {"http://127.0.0.1:80"};
	const char *ok[1] = {"https://127.0.0.1:443"};
	(void)state;
	httpc_options_default(&o);
	o.base_urls = ok;
	o.n_base_urls = 1;
	/* no pin and no CA: verification would be off, so refused */
	assert_int_equal(httpc_new(&o, &c), TLY_E_USAGE);
	o.pin = "sha256//short";
	assert_int_equal(httpc_new(&o, &c), TLY_E_USAGE);
	o.pin = pin;
	o.base_urls = http;
	assert_int_equal(httpc_new(&o, &c), TLY_E_USAGE);
	o.base_urls = NULL;
	o.n_base_urls = 0;
	assert_int_equal(httpc_new(&o, &c), TLY_E_USAGE);
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pin_ok_and_gzip_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_pin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ca_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_captive_portal_and_redirect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_bodies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_response_caps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_tls_and_silent_servers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_total_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
