/*
 * test_httpparse — the strict request-head parser: what it accepts, the
 * smuggling-shaped inputs it refuses, and the header value helpers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "daemon/httpparse.h"
#include "protocol/error.h"

static struct httpparse_head h;

static int parse(const char *text, size_t max_headers)
{
	static char copy[8192];
	size_t n = strlen(text);
	assert_true(n < sizeof copy);
	memcpy(copy, text, n + 1);
	return httpparse_request_head(copy, n, max_headers, &h);
}

static void test_good(void **state)
{
	(void)state;
	assert_int_equal(parse("POST /v1/push?x=1&y=2 HTTP/1.1\r\nHost: a\r\n"
			       "Content-Length: 12\r\nX-Empty:\r\nAccept-Encoding:  gzip, br \t\r\n\r\n",
			       64),
			 TLY_OK);
	assert_string_equal(h.method, "POST");
	assert_string_equal(h.path, "/v1/push");
	assert_string_equal(h.query, "x=1&y=2");
	assert_int_equal(h.minor, 1);
	assert_int_equal(h.n_headers, 4);
	assert_string_equal(httpparse_find(&h, "content-length"), "12");
	assert_string_equal(httpparse_find(&h, "x-empty"), "");
	assert_string_equal(httpparse_find(&h, "ACCEPT-ENCODING"), "gzip, br");
	assert_null(httpparse_find(&h, "Cookie"));
	assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n", 64), TLY_OK);
	assert_int_equal(h.minor, 0);
	assert_string_equal(h.query, "");
}

static void test_bad(void **state)
{
	static const char *const bad[] = {
		"GET / HTTP/1.1\n\n",                                  /* bare LF */
		"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",                   /* bare CR */
		"get / HTTP/1.1\r\n\r\n",                              /* lowercase method */
		"GET  / HTTP/1.1\r\n\r\n",                             /* double space */
		"GET http://x/ HTTP/1.1\r\n\r\n",                      /* absolute form */
		"GET / HTTP/2.0\r\n\r\n",                              /* version */
		"GET /a b HTTP/1.1\r\n\r\n",                           /* space in target */
		"GET /#frag HTTP/1.1\r\n\r\n",                         /* fragment */
		"GET / HTTP/1.1\r\nHost : a\r\n\r\n",                  /* space before colon */
		"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",           /* obs-fold */
		"GET / HTTP/1.1\r\nNoColon\r\n\r\n",                   /* no colon */
		"GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",                  /* control byte */
		"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",        /* duplicate singleton */
		"GET / HTTP/1.1\r\n",                                  /* no blank line */
		"GET / HTTP/1.1\r\n\r\nX",                             /* trailing byte */
		"GET / HTTP/1.1\r\n\r\n\r\n",                          /* extra line */
		"ABCDEFGHIJKLMNOPQ / HTTP/1.1\r\n\r\n",                /* 17-letter method */
	};
	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = parse(bad[i], 64);
		if (rc != TLY_E_BAD_REQUEST)
			fail_msg("case %zu accepted or wrong code %d", i, rc);
	}
}

static void test_header_count(void **state)
{
	char text[4096];
	size_t n = 0;
	(void)state;
	n += (size_t)snprintf(text + n, sizeof text - n, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < 10; i++)
		n += (size_t)snprintf(text + n, sizeof text - n, "X-%d: v\r\n", i);
	snprintf(text + n, sizeof text - n, "\r\n");
	assert_int_equal(parse(text, 10), TLY_OK);
	assert_int_equal(parse(text, 9), TLY_E_HEADER_TOO_LARGE);
}

static void test_values(void **state)
{
	uint64_t v = 0;
	(void)state;
	assert_int_equal(httpparse_content_length("0", &v), TLY_OK);
	assert_int_equal(v, 0);
	assert_int_equal(httpparse_content_length("8388608", &v), TLY_OK);
	assert_int_equal(v, 8388608);
	assert_int_equal(httpparse_content_length("", &v), TLY_E_BAD_REQUEST);
	assert_int_equal(httpparse_content_length("-1", &v), TLY_E_BAD_REQUEST);
	assert_int_equal(httpparse_content_length("1,1", &v), TLY_E_BAD_REQUEST);
	assert_int_equal(httpparse_content_length("+5", &v), TLY_E_BAD_REQUEST);
	assert_int_equal(httpparse_content_length("1234567890123456789", &v), TLY_E_BAD_REQUEST);

	assert_true(httpparse_accepts_gzip("gzip"));
	assert_true(httpparse_accepts_gzip("deflate, GZIP;q=0.5"));
	assert_true(httpparse_accepts_gzip("*"));
	assert_false(httpparse_accepts_gzip("gzip;q=0"));
	assert_false(httpparse_accepts_gzip("*, gzip;q=0"));
	assert_false(httpparse_accepts_gzip("br, deflate"));
	assert_false(httpparse_accepts_gzip("xgzip"));
	assert_false(httpparse_accepts_gzip(NULL));

	assert_true(httpparse_media_type_is("application/json", "application/json"));
	assert_true(httpparse_media_type_is("Application/JSON; charset=utf-8", "application/json"));
	assert_false(httpparse_media_type_is("application/jsonp", "application/json"));
	assert_false(httpparse_media_type_is("text/html", "application/json"));
	assert_false(httpparse_media_type_is("application/js", "application/json"));
	assert_false(httpparse_media_type_is(NULL, "application/json"));

	assert_string_equal(httpparse_bearer("Bearer abc.def"), "abc.def");
	assert_string_equal(httpparse_bearer("bearer xyz"), "xyz");
	assert_null(httpparse_bearer("Basic abc"));
	assert_null(httpparse_bearer("Bearer "));
	assert_null(httpparse_bearer(NULL));

	assert_true(httpparse_has_token("keep-alive, Close", "close"));
	assert_false(httpparse_has_token("keep-alive", "close"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_header_count),
		cmocka_unit_test(test_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
