/*
 * compress: gzip/zlib round trips, every kind of broken stream, and a gzip
 * bomb that must stop at the cap in bounded memory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zlib.h>

#include "protocol/compress.h"
#include "protocol/error.h"
#include "protocol/limits.h"

/* Mixed text: repetitive enough to compress, varied enough that a
 * round trip that drops or reorders bytes shows. */
static char *sample_text(size_t n)
{
	char *s = malloc(n);
	assert_non_null(s);
	uint32_t x = 12345;
	static const char *words[] = {"整改", "台账", "progress", "村委会", " ", "销号", "\n", "42"};
	size_t i = 0;
	while (i < n) {
		x = x * 1103515245u + 12345u;
		const char *w = words[(x >> 16) % 8];
		size_t wl = strlen(w);
		if (wl > n - i)
			wl = n - i;
		memcpy(s + i, w, wl);
		i += wl;
	}
	return s;
}

static void gzip_of(const char *in, size_t n, struct buf *out)
{
	buf_init(out, 64u << 20);
	assert_int_equal(compress_gzip(in, n, out), TLY_OK);
}

static void test_gzip_round_trip(void **state)
{
	(void)state;
	size_t sizes[] = {0, 1, 100, 16383, 16384, 16385, 300000};
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		size_t n = sizes[k];
		char *text = sample_text(n ? n : 1);
		struct buf z, back;
		gzip_of(text, n, &z);
		assert_true(z.len >= 18); /* header + trailer at least */
		assert_int_equal((unsigned char)z.data[0], 0x1f);
		assert_int_equal((unsigned char)z.data[1], 0x8b);
		buf_init(&back, n);
		assert_int_equal(compress_inflate(z.data, z.len, &back), TLY_OK);
		assert_int_equal(back.len, n);
		if (n)
			assert_memory_equal(back.data, text, n);
		buf_free(&z);
		buf_free(&back);
		free(text);
	}
}

static void test_gzip_appends(void **state)
{
	(void)state;
	struct buf z, a, b;
	buf_init(&z, 1 << 20);
	assert_int_equal(buf_add_str(&z, "prefix"), TLY_OK);
	assert_int_equal(compress_gzip("hello", 5, &z), TLY_OK);
	assert_memory_equal(z.data, "prefix", 6);
	buf_init(&a, 100);
	assert_int_equal(compress_inflate(z.data + 6, z.len - 6, &a), TLY_OK);
	assert_int_equal(a.len, 5);
	assert_memory_equal(a.data, "hello", 5);

	/* An output cap too small for the member leaves out untouched. */
	buf_init(&b, 10);
	assert_int_equal(buf_add_str(&b, "abc"), TLY_OK);
	assert_int_equal(compress_gzip("hello", 5, &b), TLY_E_TOO_LARGE);
	assert_int_equal(b.len, 3);
	assert_string_equal(b.data, "abc");
	buf_free(&z);
	buf_free(&a);
	buf_free(&b);
}

static void test_zlib_round_trip(void **state)
{
	(void)state;
	size_t n = 50000;
	char *text = sample_text(n);
	uLongf zn = compressBound(n);
	unsigned char *z = malloc(zn);
	assert_int_equal(compress2(z, &zn, (const Bytef *)text, n, 9), Z_OK);
	assert_int_equal(z[0], 0x78);
	struct buf back;
	buf_init(&back, n);
	assert_int_equal(compress_inflate(z, zn, &back), TLY_OK);
	assert_int_equal(back.len, n);
	assert_memory_equal(back.data, text, n);

	/* Corrupt the Adler-32 trailer. */
	z[zn - 1] ^= 1;
	assert_int_equal(compress_inflate(z, zn, &back), TLY_E_BAD_COMPRESSION);
	assert_null(back.data);
	assert_int_equal(back.len, 0);
	buf_free(&back);
	free(z);
	free(text);
}

static void test_truncated(void **state)
{
	(void)state;
	size_t n = 40000;
	char *text = sample_text(n);
	struct buf z, back;
	gzip_of(text, n, &z);
	size_t cuts[] = {0, 1, 2, 5, 10, 11, z.len / 3, z.len / 2, z.len - 9, z.len - 8,
			 z.len - 4, z.len - 1};
	for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
		buf_init(&back, n);
		assert_int_equal(compress_inflate(z.data, cuts[k], &back), TLY_E_BAD_COMPRESSION);
		assert_int_equal(back.len, 0);
		assert_null(back.data);
	}
	buf_free(&z);
	free(text);
}

static void test_trailing_and_corrupt(void **state)
{
	(void)state;
	const char *text = "整改台账 rectification ledger 整改台账 rectification ledger";
	size_t n = strlen(text);
	struct buf z, back;
	gzip_of(text, n, &z);
	buf_init(&back, 4096);

	/* One stray byte after the member. */
	struct buf t;
	buf_init(&t, 1 << 20);
	assert_int_equal(buf_add(&t, z.data, z.len), TLY_OK);
	assert_int_equal(buf_add(&t, "x", 1), TLY_OK);
	assert_int_equal(compress_inflate(t.data, t.len, &back), TLY_E_BAD_COMPRESSION);
	assert_null(back.data);

	/* A second, valid member: still refused, one member only. */
	buf_reset(&t);
	assert_int_equal(buf_add(&t, z.data, z.len), TLY_OK);
	assert_int_equal(compress_gzip(text, n, &t), TLY_OK);
	assert_int_equal(compress_inflate(t.data, t.len, &back), TLY_E_BAD_COMPRESSION);

	/* CRC-32 (bytes len-8..len-5) and ISIZE (len-4..len-1) flipped. */
	size_t spots[] = {z.len - 8, z.len - 5, z.len - 4, z.len - 1};
	for (size_t k = 0; k < sizeof spots / sizeof spots[0]; k++) {
		buf_reset(&t);
		assert_int_equal(buf_add(&t, z.data, z.len), TLY_OK);
		t.data[spots[k]] ^= 0x20;
		assert_int_equal(compress_inflate(t.data, t.len, &back), TLY_E_BAD_COMPRESSION);
		assert_null(back.data);
	}

	/* A flipped compressed byte: refused by the data or the checksum. */
	buf_reset(&t);
	assert_int_equal(buf_add(&t, z.data, z.len), TLY_OK);
	t.data[12] ^= 0x55;
	assert_int_equal(compress_inflate(t.data, t.len, &back), TLY_E_BAD_COMPRESSION);

	/* Not compressed at all. */
	assert_int_equal(compress_inflate("{\"v\":1}", 7, &back), TLY_E_BAD_COMPRESSION);
	assert_int_equal(compress_inflate("", 0, &back), TLY_E_BAD_COMPRESSION);

	/* The original still inflates: the checks above were not luck. */
	assert_int_equal(compress_inflate(z.data, z.len, &back), TLY_OK);
	assert_int_equal(back.len, n);
	assert_memory_equal(back.data, text, n);

	buf_free(&t);
	buf_free(&z);
	buf_free(&back);
}

static void test_cap_boundary(void **state)
{
	(void)state;
	size_t n = 70000;
	char *text = sample_text(n);
	struct buf z, back;
	gzip_of(text, n, &z);

	buf_init(&back, n); /* exactly enough */
	assert_int_equal(compress_inflate(z.data, z.len, &back), TLY_OK);
	assert_int_equal(back.len, n);
	assert_true(back.alloc <= back.max + 1);
	buf_free(&back);

	buf_init(&back, n - 1); /* one byte short */
	assert_int_equal(compress_inflate(z.data, z.len, &back), TLY_E_INFLATE_LIMIT);
	assert_null(back.data);
	assert_int_equal(back.len, 0);
	buf_free(&back);
	buf_free(&z);
	free(text);
}

/*
 * A gzip bomb: `segments` copies of the raw deflate of `seg_bytes` zero bytes
 * (each ended by a full flush, so each is byte-aligned and self-contained),
 * a final empty block and a correct trailer. Deflate cannot do better than
 * about 1030:1, so 1 GiB needs about 1 MiB; building it this way costs one
 * small deflate instead of compressing a gigabyte.
 */
static void make_bomb(size_t seg_bytes, size_t segments, struct buf *out)
{
	unsigned char *zero = calloc(1, seg_bytes);
	unsigned char *seg = malloc(seg_bytes / 100 + 1024);
	z_stream z;
	assert_non_null(zero);
	assert_non_null(seg);
	memset(&z, 0, sizeof z);
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = zero;
	z.avail_in = (uInt)seg_bytes;
	z.next_out = seg;
	z.avail_out = (uInt)(seg_bytes / 100 + 1024);
	assert_int_equal(deflate(&z, Z_FULL_FLUSH), Z_OK);
	assert_int_equal(z.avail_in, 0);
	size_t seg_len = (size_t)(z.next_out - seg);
	deflateEnd(&z);

	uLong crc_seg = crc32(0, zero, (uInt)seg_bytes);
	uLong crc = crc32(0, Z_NULL, 0);
	for (size_t k = 0; k < segments; k++)
		crc = crc32_combine(crc, crc_seg, (z_off_t)seg_bytes);
	uint64_t total = (uint64_t)seg_bytes * segments;

	static const unsigned char hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
	static const unsigned char last_block[2] = {0x03, 0x00}; /* BFINAL, fixed, end of block */
	unsigned char trailer[8];
	for (int k = 0; k < 4; k++) {
		trailer[k] = (unsigned char)(crc >> (8 * k));
		trailer[4 + k] = (unsigned char)(total >> (8 * k));
	}
	buf_init(out, 16u << 20);
	assert_int_equal(buf_add(out, hdr, sizeof hdr), TLY_OK);
	for (size_t k = 0; k < segments; k++)
		assert_int_equal(buf_add(out, seg, seg_len), TLY_OK);
	assert_int_equal(buf_add(out, last_block, 2), TLY_OK);
	assert_int_equal(buf_add(out, trailer, 8), TLY_OK);
	free(zero);
	free(seg);
}

static void test_bomb_is_genuine(void **state)
{
	(void)state;
	/* The construction must be a valid stream, or the limit tests below
	 * would prove nothing. */
	struct buf bomb, back;
	make_bomb(1u << 20, 3, &bomb);
	buf_init(&back, 3u << 20);
	assert_int_equal(compress_inflate(bomb.data, bomb.len, &back), TLY_OK);
	assert_int_equal(back.len, 3u << 20);
	for (size_t i = 0; i < back.len; i++)
		if (back.data[i] != 0)
			fail_msg("byte %zu is not zero", i);
	buf_free(&back);
	buf_free(&bomb);
}

static void test_small_bomb(void **state)
{
	(void)state;
	/* About 1 KiB that inflates to 1 MiB, against a 64 KiB cap. */
	struct buf bomb, back;
	make_bomb(1u << 20, 1, &bomb);
	assert_true(bomb.len < 1200);
	buf_init(&back, 64u << 10);
	assert_int_equal(compress_inflate(bomb.data, bomb.len, &back), TLY_E_INFLATE_LIMIT);
	assert_null(back.data);
	buf_free(&bomb);
}

static long maxrss_kib(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static void test_gigabyte_bomb(void **state)
{
	(void)state;
	/* About 1 MiB that would inflate to 1 GiB, against the default cap. In
	 * a child process, whose peak RSS starts at its RSS at fork, so the
	 * peak growth measured is this inflate's alone. */
	struct buf bomb;
	make_bomb(1u << 20, 1024, &bomb);
	assert_true(bomb.len < (2u << 20));
	const struct limits *l = limits_or_default(NULL);

	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct buf back;
		buf_init(&back, l->max_inflated_bytes);
		long before = maxrss_kib();
		int rc = compress_inflate(bomb.data, bomb.len, &back);
		long grown = maxrss_kib() - before;
		/* Growing by doubling leaves the smaller blocks behind (ASan keeps
		 * them in quarantine), so allow 4x the cap: inflating the whole
		 * bomb would take 1 GiB, still 6x more than this bound. */
		int ok = rc == TLY_E_INFLATE_LIMIT && back.data == NULL &&
			 (size_t)grown * 1024 < 4 * l->max_inflated_bytes + (32u << 20);
		if (!ok)
			fprintf(stderr, "bomb: rc=%d grown=%ld KiB\n", rc, grown);
		_exit(ok ? 0 : 1);
	}
	int status = 0;
	pid_t waited = waitpid(pid, &status, 0);
	buf_free(&bomb);
	assert_int_equal(waited, pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gzip_round_trip),
		cmocka_unit_test(test_gzip_appends),
		cmocka_unit_test(test_zlib_round_trip),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_trailing_and_corrupt),
		cmocka_unit_test(test_cap_boundary),
		cmocka_unit_test(test_bomb_is_genuine),
		cmocka_unit_test(test_small_bomb),
		cmocka_unit_test(test_gigabyte_bomb),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
