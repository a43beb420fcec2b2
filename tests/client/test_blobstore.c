/*
 * blobstore: the local content-addressed store of evidence files — copy in
 * once by content, size cap before copying, type by magic, prefixes,
 * copies out checked against the hash, verify finding a damaged blob, the
 * upload queue (acknowledged records only, smallest first), and the
 * township's chunk bitmap and daily usage.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#include "client/blobstore.h"
#include "client/ledger.h"
#include "helpers.h"

struct fx {
	char *dir;
	struct db *db;
	char task[LEDGER_ID_SIZE];
};

static void write_bytes(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* Pseudo-random bytes (xorshift), so two seeds make two contents. */
static char *make(const char *dir, const char *name, size_t n, uint64_t seed)
{
	char *path = path_in(dir, name);
	unsigned char *b = malloc(n ? n : 1);
	assert_non_null(b);
	for (size_t i = 0; i < n; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		b[i] = (unsigned char)seed;
	}
	write_bytes(path, b, n);
	free(b);
	return path;
}

static size_t count_files(const char *dir)
{
	char cmd[BLOBSTORE_PATH_MAX + 64];
	assert_true((size_t)snprintf(cmd, sizeof cmd, "find '%s' -type f | wc -l", dir) < sizeof cmd);
	FILE *p = popen(cmd, "r");
	unsigned long n = 0;
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%lu", &n), 1);
	pclose(p);
	return (size_t)n;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	char *path, pid[LEDGER_ID_SIZE];
	f->dir = tmp_dir();
	path = path_in(f->dir, "v.db");
	assert_int_equal(ledger_init(path, "village", "王家村", NULL, &f->db, NULL), TLY_OK);
	free(path);
	struct ledger_problem p = {"self_check", "问题", NULL, NULL, NULL, NULL};
	assert_int_equal(ledger_problem_add(f->db, &p, pid, NULL), TLY_OK);
	struct ledger_task t = {pid, NULL, "措施", NULL, NULL, NULL, "李明", "王书记", "2027-06-30",
				NULL};
	assert_int_equal(ledger_task_add(f->db, &t, f->task, NULL), TLY_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	db_close(f->db);
	rm_tree(f->dir);
	free(f);
	return 0;
}

static void test_put_once_by_content(void **state)
{
	struct fx *f = *state;
	struct blobstore_info a, b, c;
	char store[BLOBSTORE_PATH_MAX], path[BLOBSTORE_PATH_MAX], hex[BLOBSTORE_HEX_LEN + 1];
	int64_t size;
	char *f1 = make(f->dir, "a.jpg", 200000, 1), *f2 = make(f->dir, "copy.bin", 200000, 1);
	char *f3 = make(f->dir, "other.jpg", 5000, 2);

	assert_int_equal(blobstore_put_file(f->db, f1, 0, &a, NULL), TLY_OK);
	assert_int_equal(blobstore_put_file(f->db, f2, 0, &b, NULL), TLY_OK);
	assert_int_equal(blobstore_put_file(f->db, f3, 0, &c, NULL), TLY_OK);
	assert_string_equal(a.sha256, b.sha256);
	assert_string_not_equal(a.sha256, c.sha256);
	assert_int_equal(a.size, 200000);
	assert_string_equal(a.type, "image/jpeg"); /* by extension: no magic in random bytes */
	/* Independent hash of the original agrees with the name. */
	assert_int_equal(blobstore_hash_file(f1, hex, &size, NULL), TLY_OK);
	assert_string_equal(hex, a.sha256);
	assert_int_equal(blobstore_path(db_path(f->db), a.sha256, path, sizeof path), TLY_OK);
	assert_int_equal(file_sum(path), file_sum(f1));
	/* Stored once: two blobs, and no temp file left behind. */
	blobstore_dir(db_path(f->db), store, sizeof store);
	assert_int_equal(count_files(store), 2);
	free(f1);
	free(f2);
	free(f3);
}

static void test_cap_before_copy(void **state)
{
	struct fx *f = *state;
	struct blobstore_info a;
	char store[BLOBSTORE_PATH_MAX];
	char *big = make(f->dir, "big.pdf", 100001, 3);
	assert_int_equal(blobstore_put_file(f->db, big, 100000, &a, NULL), TLY_E_BLOB_TOO_LARGE);
	blobstore_dir(db_path(f->db), store, sizeof store);
	assert_int_equal(count_files(store), 0);
	assert_int_equal(blobstore_put_file(f->db, big, 100001, &a, NULL), TLY_OK);
	assert_int_equal(count_files(store), 1);
	char *missing = path_in(f->dir, "nope.jpg");
	assert_int_equal(blobstore_put_file(f->db, missing, 0, &a, NULL), TLY_E_IO);
	free(missing);
	free(big);
}

static void test_types(void **state)
{
	(void)state;
	static const unsigned char jpg[] = {0xff, 0xd8, 0xff, 0xe0};
	static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	assert_string_equal(blobstore_type_of("x.txt", jpg, sizeof jpg), "image/jpeg");
	assert_string_equal(blobstore_type_of("x", png, sizeof png), "image/png");
	assert_string_equal(blobstore_type_of("会议纪要.PDF", NULL, 0), "application/pdf");
	assert_string_equal(blobstore_type_of("a.b/c", NULL, 0), "application/octet-stream");
	assert_string_equal(blobstore_type_of(NULL, (const unsigned char *)"%PDF-1.7", 8),
			    "application/pdf");
}

static void test_records_resolve_copy_verify(void **state)
{
	struct fx *f = *state;
	char *f1 = make(f->dir, "p.jpg", 70000, 4), *f2 = make(f->dir, "q.jpg", 300, 5);
	const char *files[] = {f1, f2};
	char hex[BLOBSTORE_HEX_LEN + 1], got[BLOBSTORE_HEX_LEN + 1], path[BLOBSTORE_PATH_MAX];
	int64_t size;
	struct buf why;
	buf_init(&why, 1024);

	assert_int_equal(ledger_evidence_add(f->db, f->task, NULL, files, 2, &why), TLY_OK);
	assert_int_equal(blobstore_hash_file(f1, hex, &size, NULL), TLY_OK);
	/* Prefix: upper case accepted, too short refused, unknown not found. */
	char pre[9];
	snprintf(pre, sizeof pre, "%.8s", hex);
	for (char *c = pre; *c; c++)
		*c = (char)(*c >= 'a' && *c <= 'f' ? *c - 32 : *c);
	assert_int_equal(blobstore_resolve(f->db, pre, got, &why), TLY_OK);
	assert_string_equal(got, hex);
	assert_int_equal(blobstore_resolve(f->db, "ab", got, &why), TLY_E_BAD_VALUE);
	assert_int_equal(blobstore_resolve(f->db, "zzzz", got, &why), TLY_E_BAD_VALUE);
	char other[BLOBSTORE_HEX_LEN + 1];
	snprintf(other, sizeof other, "%.7s", hex);
	other[6] = (char)(other[6] == '0' ? '1' : '0');
	if (blobstore_resolve(f->db, other, got, &why) == TLY_OK)
		assert_string_not_equal(got, hex);

	char *out = path_in(f->dir, "out.jpg");
	assert_int_equal(blobstore_copy_out(f->db, hex, out, &why), TLY_OK);
	assert_int_equal(file_sum(out), file_sum(f1));

	json_t *r = json_pack("{s:[]}", "problems");
	assert_int_equal(blobstore_verify(f->db, r), TLY_OK);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "blobs"), "checked")),
			 2);
	json_decref(r);

	/* One flipped byte in the store: verify fails, copy out refuses and
	 * leaves nothing at the destination. */
	assert_int_equal(blobstore_path(db_path(f->db), hex, path, sizeof path), TLY_OK);
	FILE *fp = fopen(path, "r+b");
	assert_non_null(fp);
	fseek(fp, 12345, SEEK_SET);
	int ch = fgetc(fp);
	fseek(fp, 12345, SEEK_SET);
	fputc(ch ^ 0x40, fp);
	fclose(fp);
	r = json_pack("{s:[]}", "problems");
	assert_int_equal(blobstore_verify(f->db, r), TLY_E_VERIFY);
	assert_int_equal(json_array_size(json_object_get(json_object_get(r, "blobs"), "bad")), 1);
	assert_int_equal(json_array_size(json_object_get(r, "problems")), 1);
	json_decref(r);
	char *out2 = path_in(f->dir, "out2.jpg");
	assert_int_equal(blobstore_copy_out(f->db, hex, out2, &why), TLY_E_BLOB_HASH);
	assert_int_equal(access(out2, F_OK), -1);
	free(out2);
	free(out);
	free(f1);
	free(f2);
	buf_free(&why);
}

static void test_pending_acked_smallest_first(void **state)
{
	struct fx *f = *state;
	char *f1 = make(f->dir, "big.jpg", 90000, 6), *f2 = make(f->dir, "small.jpg", 10, 7);
	const char *files[] = {f1, f2};
	struct blobstore_pending p[4];
	size_t n;
	int64_t count, bytes;

	assert_int_equal(ledger_evidence_add(f->db, f->task, NULL, files, 2, NULL), TLY_OK);
	/* Nothing acknowledged yet: records before blobs. */
	assert_int_equal(blobstore_pending(f->db, p, 4, &n), TLY_OK);
	assert_int_equal(n, 0);
	assert_int_equal(db_exec(f->db, "UPDATE sync_state SET acked_seq = 1000"), TLY_OK);
	assert_int_equal(blobstore_pending(f->db, p, 4, &n), TLY_OK);
	assert_int_equal(n, 2);
	assert_int_equal(p[0].size, 10);
	assert_int_equal(p[1].size, 90000);
	assert_int_equal(blobstore_pending_stats(f->db, &count, &bytes), TLY_OK);
	assert_int_equal(count, 2);
	assert_int_equal(bytes, 90010);
	assert_int_equal(blobstore_mark(f->db, p[0].sha256, "done", NULL, NULL), TLY_OK);
	assert_int_equal(blobstore_pending(f->db, p, 4, &n), TLY_OK);
	assert_int_equal(n, 1);
	assert_int_equal(p[0].size, 90000);
	assert_int_equal(blobstore_sent_add(f->db, "2026-01-02", 5), TLY_OK);
	assert_int_equal(blobstore_sent_add(f->db, "2026-01-02", 7), TLY_OK);
	assert_int_equal(blobstore_sent_get(f->db, "2026-01-02", &bytes), TLY_OK);
	assert_int_equal(bytes, 12);
	free(f1);
	free(f2);
}

static void test_server_upload_state(void **state)
{
	struct fx *f = *state;
	struct blobstore_upload u;
	const char *hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	int64_t used;
	assert_int_equal(blobstore_upload_get(f->db, hex, &u), TLY_E_NOT_FOUND);
	assert_int_equal(blobstore_upload_create(f->db, hex, 10 * 65536 + 1, 65536, 1), TLY_OK);
	assert_int_equal(blobstore_upload_get(f->db, hex, &u), TLY_OK);
	assert_int_equal(u.nchunks, 11);
	assert_int_equal(u.complete, 0);
	assert_int_equal(u.have[0] | u.have[1], 0);
	u.have[1] |= 0x04; /* chunk 10, the short last one */
	assert_int_equal(blobstore_upload_save(f->db, &u, "v1", "2026-01-02", 1), TLY_OK);
	blobstore_upload_free(&u);
	assert_int_equal(blobstore_upload_get(f->db, hex, &u), TLY_OK);
	assert_int_equal(u.have[1], 0x04);
	blobstore_upload_free(&u);
	assert_int_equal(blobstore_usage_get(f->db, "v1", "2026-01-02", &used), TLY_OK);
	assert_int_equal(used, 1);
	assert_int_equal(blobstore_upload_reset(f->db, hex), TLY_OK);
	assert_int_equal(blobstore_upload_get(f->db, hex, &u), TLY_OK);
	assert_int_equal(u.have[1], 0);
	blobstore_upload_free(&u);
	assert_int_equal(blobstore_upload_done(f->db, hex, 2), TLY_OK);
	assert_int_equal(blobstore_upload_get(f->db, hex, &u), TLY_OK);
	assert_int_equal(u.complete, 1);
	blobstore_upload_free(&u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_once_by_content, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cap_before_copy, setup, teardown),
		cmocka_unit_test(test_types),
		cmocka_unit_test_setup_teardown(test_records_resolve_copy_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_acked_smallest_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_upload_state, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
