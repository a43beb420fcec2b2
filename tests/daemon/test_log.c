/*
 * test_log — one line per event, values quoted so a peer cannot forge
 * fields or lines, level filter, journald priority prefix.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/log.h"
#include "protocol/error.h"

/* Captures what log_event writes into a temporary file. */
static FILE *cap;

static int setup(void **state)
{
	(void)state;
	cap = tmpfile();
	assert_non_null(cap);
	log_set_fd(fileno(cap));
	log_set_level(LOG_LEVEL_DEBUG);
	unsetenv("JOURNAL_STREAM");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	log_set_fd(2);
	log_set_level(LOG_LEVEL_INFO);
	fclose(cap);
	return 0;
}

/* Everything written so far, NUL-terminated, static. */
static const char *captured(void)
{
	static char text[16384];
	long n = ftell(cap);
	assert_true(n >= 0 && (size_t)n < sizeof text);
	rewind(cap);
	size_t got = fread(text, 1, (size_t)n, cap);
	text[got] = '\0';
	fseek(cap, 0, SEEK_END);
	return text;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_format(void **state)
{
	(void)state;
	log_event(LOG_LEVEL_INFO, "http_request", "path=%s status=%d bytes=%zu big=%llu", "/v1/push",
		  200, (size_t)1234, 18446744073709551615ull);
	const char *t = captured();
	/* 2026-03-31T08:15:42.123Z info http_request ... */
	assert_int_equal(count_lines(t), 1);
	assert_true(strlen(t) > 25);
	assert_int_equal(t[4], '-');
	assert_int_equal(t[10], 'T');
	assert_int_equal(t[23], 'Z');
	assert_non_null(strstr(t, "Z info http_request path=/v1/push status=200 bytes=1234 "
				  "big=18446744073709551615\n"));
}

static void test_quoting(void **state)
{
	(void)state;
	/* A hostile path tries to end the line and forge a status field. */
	const char *volatile none = NULL; /* hidden from the format checker */
	log_event(LOG_LEVEL_WARN, "bad", "path=%s empty=%s null=%s zh=%s", "/x\n status=200 \"q\"",
		  "", none, "整改台账");
	log_event(LOG_LEVEL_WARN, "bad2", "raw=%s", "\xff\xfe=");
	const char *t = captured();
	assert_int_equal(count_lines(t), 2);
	assert_non_null(strstr(t, "path=\"/x\\n status=200 \\\"q\\\"\" empty=\"\" null=- zh=整改台账\n"));
	assert_non_null(strstr(t, "raw=\"\\xff\\xfe=\"\n"));
}

static void test_level_filter(void **state)
{
	int lvl = -1;
	(void)state;
	log_set_level(LOG_LEVEL_WARN);
	log_event(LOG_LEVEL_INFO, "dropped", NULL);
	log_event(LOG_LEVEL_DEBUG, "dropped", NULL);
	log_event(LOG_LEVEL_ERROR, "kept", NULL);
	const char *t = captured();
	assert_null(strstr(t, "dropped"));
	assert_non_null(strstr(t, " error kept\n"));
	assert_int_equal(log_parse_level("debug", &lvl), TLY_OK);
	assert_int_equal(lvl, LOG_LEVEL_DEBUG);
	assert_int_equal(log_parse_level("loud", &lvl), TLY_E_BAD_VALUE);
}

static void test_long_line_cut(void **state)
{
	static char big[LOG_LINE_MAX * 2];
	(void)state;
	memset(big, 'a', sizeof big - 1);
	log_event(LOG_LEVEL_INFO, "long", "v=%s", big);
	const char *t = captured();
	assert_int_equal(count_lines(t), 1);
	assert_true(strlen(t) <= LOG_LINE_MAX);
	assert_non_null(strstr(t, "aaa...\n"));
}

static void test_journal_prefix(void **state)
{
	struct stat st;
	char js[64];
	(void)state;
	assert_int_equal(fstat(fileno(cap), &st), 0);
	snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	log_set_fd(fileno(cap)); /* re-checks the stream */
	log_event(LOG_LEVEL_WARN, "journal", NULL);
	unsetenv("JOURNAL_STREAM");
	assert_int_equal(strncmp(captured(), "<4>", 3), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quoting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_prefix, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
