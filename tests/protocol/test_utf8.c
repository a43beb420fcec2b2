/*
 * change_check_utf8 against a second, deliberately plain validator that
 * decodes code points (RFC 3629: no overlongs, no surrogates, nothing past
 * U+10FFFF, and no NUL for Tally). The fast paths (eight ASCII bytes at a
 * time, the common three-byte leads) must agree with it on every input:
 * random byte strings over the bytes where the rules change, and valid
 * text with one byte changed, at every offset around the eight-byte steps.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "protocol/change.h"
#include "protocol/error.h"

static int plain_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i], len;
		uint32_t cp, min;
		if (c < 0x80) {
			len = 1, cp = c, min = 0;
		} else if ((c & 0xE0) == 0xC0) {
			len = 2, cp = c & 0x1F, min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			len = 3, cp = c & 0x0F, min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			len = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if (n - i < len)
			return 0;
		for (unsigned k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if (cp == 0 || cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += len;
	}
	return 1;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

static void agree(const unsigned char *s, size_t n)
{
	int fast = change_check_utf8((const char *)s, n) == TLY_OK;
	int plain = plain_valid(s, n);
	if (fast != plain) {
		char hex[3 * 64 + 1] = "";
		for (size_t i = 0; i < n && i < 64; i++)
			snprintf(hex + 3 * i, 4, "%02x ", s[i]);
		fail_msg("fast %d plain %d on %zu bytes: %s", fast, plain, n, hex);
	}
}

static void test_random_bytes(void **state)
{
	(void)state;
	/* Bytes where the rules change, plus plain ASCII to make runs. */
	static const unsigned char alphabet[] = {
		0x00, 'a',  'b',  'z',  0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1,
		0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 'a',
		'a',  'a',  'a',  'a',  'a',  'a',  0xE4, 0xB8, 0xAD,
	};
	unsigned char s[48];
	for (int round = 0; round < 200000; round++) {
		size_t n = next() % sizeof s;
		for (size_t i = 0; i < n; i++)
			s[i] = alphabet[next() % sizeof alphabet];
		agree(s, n);
	}
}

static void test_one_byte_changed(void **state)
{
	(void)state;
	/* ASCII runs around the eight-byte steps, 2-, 3- and 4-byte forms. */
	static const char text[] = "abcdefgh中文ijklmnopq字Ω𠀀rstuvwxyz0123456789é问题整改";
	size_t n = sizeof text - 1;
	unsigned char s[sizeof text];
	assert_int_equal(change_check_utf8(text, n), TLY_OK);
	for (size_t at = 0; at < n; at++) {
		for (unsigned b = 0; b < 256; b++) {
			memcpy(s, text, n);
			s[at] = (unsigned char)b;
			agree(s, n);
			agree(s, at + 1); /* cut right after the change */
			agree(s + at, n - at);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_bytes),
		cmocka_unit_test(test_one_byte_changed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
