/*
 * test_config — the Redis-style config reader: every type, the bounds,
 * errors with line numbers, all-or-nothing loads, and httpd's own table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/config.h"
#include "daemon/httpd.h"
#include "protocol/error.h"

struct opts {
	unsigned workers;
	size_t cache;
	unsigned timeout_ms;
	int verbose;
	char *name;
	int level;
};

static const char *const levels[] = {"debug", "info", "warn", NULL};

static const struct config_option table[] = {
	{"workers", CONFIG_UINT, offsetof(struct opts, workers), 1, 64, "4", NULL, "threads"},
	{"cache", CONFIG_SIZE, offsetof(struct opts, cache), 1024, 1ull << 32, "1mb", NULL, "cache"},
	{"timeout", CONFIG_MS, offsetof(struct opts, timeout_ms), 10, 3600000, "5s", NULL, "wait"},
	{"verbose", CONFIG_BOOL, offsetof(struct opts, verbose), 0, 1, "no", NULL, "chatty"},
	{"name", CONFIG_STRING, offsetof(struct opts, name), 1, 16, "tally", NULL, "who"},
	{"level", CONFIG_ENUM, offsetof(struct opts, level), 0, 0, "info", levels, "log level"},
};

static struct opts o;
static struct config_section sec = {table, sizeof table / sizeof table[0], &o};

static int setup(void **state)
{
	(void)state;
	memset(&o, 0, sizeof o);
	assert_int_equal(config_set_defaults(&sec, 1), TLY_OK);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	config_free(&sec, 1);
	assert_null(o.name);
	return 0;
}

static void test_defaults(void **state)
{
	(void)state;
	assert_int_equal(o.workers, 4);
	assert_int_equal(o.cache, 1024 * 1024);
	assert_int_equal(o.timeout_ms, 5000);
	assert_int_equal(o.verbose, 0);
	assert_string_equal(o.name, "tally");
	assert_int_equal(o.level, 1);
}

static void test_load_every_type(void **state)
{
	static const char text[] = "# a comment\r\n"
				   "\n"
				   "  workers   12  \n"
				   "cache 64kb\n"
				   "timeout 2m\r\n"
				   "verbose yes\n"
				   "name \"村 \\\"A\\\"\"\n"
				   "level warn";
	struct config_error err;
	(void)state;
	assert_int_equal(config_load_text(&sec, 1, text, strlen(text), &err), TLY_OK);
	assert_int_equal(o.workers, 12);
	assert_int_equal(o.cache, 64 * 1024);
	assert_int_equal(o.timeout_ms, 120000);
	assert_int_equal(o.verbose, 1);
	assert_string_equal(o.name, "村 \"A\"");
	assert_int_equal(o.level, 2);
}

static void test_suffixes(void **state)
{
	struct config_error err;
	(void)state;
	assert_int_equal(config_set(&sec, 1, "cache", "2k", &err), TLY_OK);
	assert_int_equal(o.cache, 2000);
	assert_int_equal(config_set(&sec, 1, "cache", "3MB", &err), TLY_OK);
	assert_int_equal(o.cache, 3u << 20);
	assert_int_equal(config_set(&sec, 1, "cache", "1gb", &err), TLY_OK);
	assert_int_equal(o.cache, 1u << 30);
	assert_int_equal(config_set(&sec, 1, "timeout", "250", &err), TLY_OK);
	assert_int_equal(o.timeout_ms, 250);
	assert_int_equal(config_set(&sec, 1, "timeout", "250ms", &err), TLY_OK);
	assert_int_equal(o.timeout_ms, 250);
	assert_int_equal(config_set(&sec, 1, "timeout", "1h", &err), TLY_OK);
	assert_int_equal(o.timeout_ms, 3600000);
	assert_int_equal(config_set(&sec, 1, "timeout", "2h", &err), TLY_E_CONFIG);
	assert_int_equal(config_set(&sec, 1, "cache", "12qb", &err), TLY_E_CONFIG);
	assert_int_equal(config_set(&sec, 1, "cache", "-1", &err), TLY_E_CONFIG);
	assert_int_equal(config_set(&sec, 1, "cache", "99999999999999999999999", &err),
			 TLY_E_CONFIG);
	assert_int_equal(config_set(&sec, 1, "workers", "1e3", &err), TLY_E_CONFIG);
}

/* Each bad file: the error names its line, and nothing at all changes. */
static void test_errors_have_lines_and_change_nothing(void **state)
{
	static const struct {
		const char *text;
		unsigned line;
		const char *needle;
	} bad[] = {
		{"workers 8\nfrobnicate 1\n", 2, "unknown option"},
		{"workers 8\nworkers 9\n", 2, "twice"},
		{"workers 8\ncache 12\n", 2, "outside"},
		{"workers 65\n", 1, "outside"},
		{"workers eight\n", 1, "whole number"},
		{"# ok\nverbose maybe\n", 2, "yes or no"},
		{"\n\nlevel loud\n", 3, "allowed"},
		{"name \"open\n", 1, "unterminated"},
		{"name \"a\" b\n", 1, "after the closing quote"},
		{"name 12345678901234567\n", 1, "length"},
		{"workers\n", 1, "missing value"},
		{"Workers 3\n", 1, "lowercase"},
		{"timeout 5x\n", 1, "duration"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct config_error err;
		int rc = config_load_text(&sec, 1, bad[i].text, strlen(bad[i].text), &err);
		if (rc != TLY_E_CONFIG || err.line != bad[i].line || !strstr(err.msg, bad[i].needle))
			fail_msg("case %zu: rc=%d line=%u msg=%s", i, rc, err.line, err.msg);
		assert_int_equal(o.workers, 4); /* line 1's "workers 8" was not applied */
		assert_string_equal(o.name, "tally");
	}
}

static void test_nul_and_long_line(void **state)
{
	static char text[CONFIG_LINE_MAX + 32];
	struct config_error err;
	(void)state;
	assert_int_equal(config_load_text(&sec, 1, "workers 1\0", 10, &err), TLY_E_CONFIG);
	memset(text, 'a', sizeof text);
	memcpy(text, "name ", 5);
	assert_int_equal(config_load_text(&sec, 1, text, sizeof text, &err), TLY_E_CONFIG);
	assert_int_equal(err.line, 1);
	assert_non_null(strstr(err.msg, "over"));
}

static void test_file(void **state)
{
	char path[] = "/tmp/tally_config_XXXXXX";
	struct config_error err;
	int fd = mkstemp(path);
	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "workers 2\nname ab\n", 18), 18);
	close(fd);
	assert_int_equal(config_load_file(&sec, 1, path, &err), TLY_OK);
	assert_int_equal(o.workers, 2);
	assert_string_equal(o.name, "ab");
	unlink(path);
	assert_int_equal(config_load_file(&sec, 1, path, &err), TLY_E_IO);
	assert_int_equal(err.line, 0);
}

/* httpd's table: its defaults parse, and a real server config loads. */
static void test_httpd_table(void **state)
{
	struct httpd_options h, d;
	struct config_section hs = {httpd_config_options, httpd_config_options_count, &h};
	struct config_error err;
	static const char text[] = "max_body_bytes 1mb\nheader_timeout 5s\nrate_per_minute 0\n"
				   "max_connections 600\nlog_requests no\n";
	(void)state;
	httpd_options_default(&d);
	assert_int_equal(d.max_body_bytes, 8u << 20);
	assert_int_equal(d.header_timeout_ms, 20000);
	assert_int_equal(d.log_requests, 1);
	h = d;
	assert_int_equal(config_load_text(&hs, 1, text, strlen(text), &err), TLY_OK);
	assert_int_equal(h.max_body_bytes, 1u << 20);
	assert_int_equal(h.header_timeout_ms, 5000);
	assert_int_equal(h.rate_per_minute, 0);
	assert_int_equal(h.max_connections, 600);
	assert_int_equal(h.log_requests, 0);
	assert_int_equal(h.idle_timeout_ms, d.idle_timeout_ms);
	/* two sections in one file */
	struct config_section both[2] = {hs, sec};
	static const char two[] = "workers 3\nmax_headers 20\n";
	assert_int_equal(config_load_text(both, 2, two, strlen(two), &err), TLY_OK);
	assert_int_equal(o.workers, 3);
	assert_int_equal(h.max_headers, 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_every_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_suffixes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors_have_lines_and_change_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_nul_and_long_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_httpd_table, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
