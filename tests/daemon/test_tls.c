/*
 * test_tls — key and certificate generation (names, validity, modes,
 * atomic files), pins checked against the openssl command line, the server
 * context's protocol settings, and a CA-issued chain.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "daemon/tls.h"
#include "protocol/error.h"

static char dir[64];
static char key[128], cert[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/tally_tls_XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(key, sizeof key, "%s/key.pem", dir);
	snprintf(cert, sizeof cert, "%s/cert.pem", dir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[256];
	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static const char *const names[] = {"township.example", "127.0.0.1", "::1", "[fe80::2]"};

static X509 *read_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

static int dir_entries(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void test_generate(void **state)
{
	struct stat st;
	(void)state;
	assert_int_equal(tls_generate_cert(key, cert, names, 4, 0, 0), TLY_OK);
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(cert, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(dir_entries(), 2); /* no temporary file left behind */

	X509 *x = read_cert(cert);
	/* ECDSA P-256 */
	EVP_PKEY *pk = X509_get0_pubkey(x);
	assert_int_equal(EVP_PKEY_get_base_id(pk), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_bits(pk), 256);
	/* 10 years (and the one day back-dating) */
	int days = 0, secs = 0;
	assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)),
			 1);
	assert_int_equal(days, TLS_CERT_DAYS_DEFAULT + 1);
	/* every name in subjectAltName, as DNS or IP */
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	assert_non_null(gens);
	assert_int_equal(sk_GENERAL_NAME_num(gens), 4);
	int dns = 0, ip4 = 0, ip6 = 0;
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type == GEN_DNS &&
		    strcmp((const char *)ASN1_STRING_get0_data(g->d.dNSName), "township.example") == 0)
			dns++;
		if (g->type == GEN_IPADD && ASN1_STRING_length(g->d.iPAddress) == 4)
			ip4 += memcmp(ASN1_STRING_get0_data(g->d.iPAddress), "\x7f\0\0\x01", 4) == 0;
		if (g->type == GEN_IPADD && ASN1_STRING_length(g->d.iPAddress) == 16)
			ip6++;
	}
	GENERAL_NAMES_free(gens);
	assert_int_equal(dns, 1);
	assert_int_equal(ip4, 1);
	assert_int_equal(ip6, 2);
	/* self-signed, a server certificate, not a CA */
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
	assert_int_equal(X509_verify(x, pk), 1);
	assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 1);
	assert_int_equal(X509_check_ca(x), 0);
	X509_free(x);
}

static void test_refuse_existing_and_overwrite(void **state)
{
	char pin1[TLS_PIN_SIZE], pin2[TLS_PIN_SIZE];
	(void)state;
	assert_int_equal(tls_generate_cert(key, cert, names, 1, 30, 0), TLY_OK);
	assert_int_equal(tls_pin_cert_file(cert, pin1), TLY_OK);
	assert_int_equal(tls_generate_cert(key, cert, names, 1, 30, 0), TLY_E_EXISTS);
	assert_int_equal(tls_generate_cert(key, cert, names, 1, 30, 1), TLY_OK);
	assert_int_equal(tls_pin_cert_file(cert, pin2), TLY_OK);
	assert_string_not_equal(pin1, pin2); /* a new key */
}

static void test_bad_names(void **state)
{
	static const char *const bad1[] = {"ok.example", "two words"};
	static const char *const bad2[] = {"x,DNS:evil.example"};
	(void)state;
	assert_int_equal(tls_generate_cert(key, cert, bad1, 2, 0, 0), TLY_E_BAD_VALUE);
	assert_int_equal(tls_generate_cert(key, cert, bad2, 1, 0, 0), TLY_E_BAD_VALUE);
	assert_int_equal(tls_generate_cert(key, cert, names, 0, 0, 0), TLY_E_USAGE);
	assert_int_equal(dir_entries(), 0);
}

/* The pin equals what the openssl command line computes the way curl's
 * documentation does it. */
static void test_pin_matches_openssl(void **state)
{
	char pin[TLS_PIN_SIZE], cmd[512], want[128] = "";
	(void)state;
	assert_int_equal(tls_generate_cert(key, cert, names, 2, 0, 0), TLY_OK);
	assert_int_equal(tls_pin_cert_file(cert, pin), TLY_OK);
	snprintf(cmd, sizeof cmd,
		 "openssl x509 -in '%s' -pubkey -noout | openssl pkey -pubin -outform der | "
		 "openssl dgst -sha256 -binary | openssl enc -base64",
		 cert);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(want, sizeof want, p));
	assert_int_equal(pclose(p), 0);
	want[strcspn(want, "\n")] = '\0';
	assert_int_equal(strlen(pin), TLS_PIN_SIZE - 1);
	assert_int_equal(strncmp(pin, "sha256//", 8), 0);
	assert_string_equal(pin + 8, want);
	assert_true(tls_pin_list_valid(pin));
}

static void test_pin_lists(void **state)
{
	const char *a = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
	const char *b = "sha256//BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=";
	char both[200];
	(void)state;
	snprintf(both, sizeof both, "%s;%s", a, b);
	assert_true(tls_pin_list_valid(a));
	assert_true(tls_pin_list_valid(both));
	assert_false(tls_pin_list_valid(""));
	assert_false(tls_pin_list_valid("sha1//AAAA"));
	assert_false(tls_pin_list_valid("sha256//AAAA"));
	assert_false(tls_pin_list_valid("sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=;"));
	assert_true(tls_pin_in_list(b, both));
	assert_true(tls_pin_in_list(a, a));
	assert_false(tls_pin_in_list("sha256//AAAA", both));
}

static void test_server_ctx(void **state)
{
	SSL_CTX *ctx = NULL;
	(void)state;
	assert_int_equal(tls_generate_cert(key, cert, names, 2, 0, 0), TLY_OK);
	assert_int_equal(tls_create_server_ctx(cert, key, &ctx), TLY_OK);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	assert_int_equal(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
	uint64_t opts = SSL_CTX_get_options(ctx);
	assert_true(opts & SSL_OP_NO_COMPRESSION);
	assert_true(opts & SSL_OP_NO_RENEGOTIATION);
	assert_false(opts & SSL_OP_NO_TICKET);
	/* only the intermediate suites: every one AEAD and forward secret */
	STACK_OF(SSL_CIPHER) *cs = SSL_CTX_get_ciphers(ctx);
	int n = sk_SSL_CIPHER_num(cs);
	assert_int_equal(n, 12); /* 3 TLS 1.3 + 9 TLS 1.2 */
	for (int i = 0; i < n; i++) {
		const char *name = SSL_CIPHER_get_name(sk_SSL_CIPHER_value(cs, i));
		if (!strstr(tls_ciphers_tls12, name) && !strstr(tls_ciphersuites_tls13, name))
			fail_msg("unexpected cipher %s", name);
		assert_true(strstr(name, "GCM") || strstr(name, "CHACHA20"));
	}
	SSL_CTX_free(ctx);
}

static void test_server_ctx_errors(void **state)
{
	char key2[160], cert2[160];
	SSL_CTX *ctx = (SSL_CTX *)1;
	(void)state;
	assert_int_equal(tls_create_server_ctx(cert, key, &ctx), TLY_E_IO);
	assert_null(ctx);
	assert_int_equal(tls_generate_cert(key, cert, names, 1, 0, 0), TLY_OK);
	snprintf(key2, sizeof key2, "%s/key2.pem", dir);
	snprintf(cert2, sizeof cert2, "%s/cert2.pem", dir);
	assert_int_equal(tls_generate_cert(key2, cert2, names, 1, 0, 0), TLY_OK);
	/* a key that is not the certificate's: refused */
	assert_int_equal(tls_create_server_ctx(cert, key2, &ctx), TLY_E_TLS);
	assert_null(ctx);
	/* a file that is not PEM */
	assert_int_equal(tls_create_server_ctx(key, key, &ctx), TLY_E_TLS);
	FILE *f = fopen(cert2, "w");
	fputs("not a certificate\n", f);
	fclose(f);
	assert_int_equal(tls_create_server_ctx(cert2, key2, &ctx), TLY_E_TLS);
}

/* A township with a CA-issued certificate: leaf + intermediate in one
 * file, key separate. Made with the openssl command line. */
static void test_ca_issued_chain(void **state)
{
	char cmd[2048];
	SSL_CTX *ctx = NULL;
	STACK_OF(X509) *chain = NULL;
	(void)state;
	snprintf(cmd, sizeof cmd,
		 "cd '%s' && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
		 "-out ca.pem -days 30 -subj /CN=TestCA 2>/dev/null && "
		 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key "
		 "-out leaf.csr -subj /CN=township.example 2>/dev/null && "
		 "printf 'subjectAltName=DNS:township.example\\n' > ext.cnf && "
		 "openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 "
		 "-extfile ext.cnf -out leaf.pem 2>/dev/null && "
		 "cat leaf.pem ca.pem > chain.pem",
		 dir);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof cmd, "%s/chain.pem", dir);
	snprintf(key, sizeof key, "%s/leaf.key", dir);
	assert_int_equal(tls_create_server_ctx(cmd, key, &ctx), TLY_OK);
	assert_int_equal(SSL_CTX_get0_chain_certs(ctx, &chain), 1);
	assert_int_equal(sk_X509_num(chain), 1);
	SSL_CTX_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_generate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_existing_and_overwrite, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pin_matches_openssl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pin_lists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_ctx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_ctx_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ca_issued_chain, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
