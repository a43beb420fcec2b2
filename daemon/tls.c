/*
 * tls — server context, key and certificate generation, pins (see tls.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "daemon/log.h"
#include "daemon/tls.h"
#include "protocol/error.h"

/* Mozilla server-side TLS, "intermediate" configuration (guideline 5.7):
 * forward secret AEAD suites only. The DHE suites matter only with an RSA
 * key (a CA-issued certificate); ours is ECDSA, so they are never chosen. */
const char tls_ciphers_tls12[] = "ECDHE-ECDSA-AES128-GCM-SHA256:"
				 "ECDHE-RSA-AES128-GCM-SHA256:"
				 "ECDHE-ECDSA-AES256-GCM-SHA384:"
				 "ECDHE-RSA-AES256-GCM-SHA384:"
				 "ECDHE-ECDSA-CHACHA20-POLY1305:"
				 "ECDHE-RSA-CHACHA20-POLY1305:"
				 "DHE-RSA-AES128-GCM-SHA256:"
				 "DHE-RSA-AES256-GCM-SHA384:"
				 "DHE-RSA-CHACHA20-POLY1305";
const char tls_ciphersuites_tls13[] = "TLS_AES_128_GCM_SHA256:"
				      "TLS_AES_256_GCM_SHA384:"
				      "TLS_CHACHA20_POLY1305_SHA256";
const char tls_groups[] = "X25519:prime256v1:secp384r1";

void tls_describe_errors(char *buf, size_t n)
{
	unsigned long e;
	size_t len = 0;

	if (n == 0)
		return;
	buf[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		const char *r = ERR_reason_error_string(e);
		char tmp[64];
		if (!r) {
			snprintf(tmp, sizeof tmp, "error:%08lx", e);
			r = tmp;
		}
		int w = snprintf(buf + len, n - len, "%s%s", len ? "; " : "", r);
		if (w < 0 || (size_t)w >= n - len) {
			ERR_clear_error();
			break;
		}
		len += (size_t)w;
	}
}

/* Only HTTP/1.1 is spoken; a client offering only h2 gets no ALPN answer
 * and may still speak HTTP/1.1, as curl does. */
static int tls_select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			   const unsigned char *in, unsigned inlen, void *arg)
{
	static const unsigned char ours[] = "\x08http/1.1";
	unsigned char *sel;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&sel, outlen, ours, sizeof ours - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static int tls_check_key_mode(const char *key_path)
{
	struct stat st;

	if (stat(key_path, &st) != 0)
		return TLY_E_IO;
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		log_event(LOG_LEVEL_WARN, "tls_key_mode", "path=%s mode=%04o hint=%s", key_path,
			  (unsigned)(st.st_mode & 07777), "chmod 600");
	return TLY_OK;
}

int tls_create_server_ctx(const char *cert_path, const char *key_path, SSL_CTX **out)
{
	SSL_CTX *ctx = NULL;
	char why[256];
	int rc;

	*out = NULL;
	if (access(cert_path, R_OK) != 0 || access(key_path, R_OK) != 0) {
		log_event(LOG_LEVEL_ERROR, "tls_file_unreadable", "cert=%s key=%s error=%s",
			  cert_path, key_path, strerror(errno));
		return TLY_E_IO;
	}
	rc = tls_check_key_mode(key_path);
	if (rc != TLY_OK)
		return rc;

	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		rc = TLY_E_NOMEM;
		goto out;
	}
	/* A version or suite the CTX refuses to take is a broken build, not
	 * bad input: fail loudly rather than serve weaker settings. */
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, tls_ciphers_tls12) ||
	    !SSL_CTX_set_ciphersuites(ctx, tls_ciphersuites_tls13) ||
	    !SSL_CTX_set1_groups_list(ctx, tls_groups) || !SSL_CTX_set_dh_auto(ctx, 1)) {
		rc = TLY_E_INTERNAL;
		goto out;
	}
	/* Compression: CRIME. Renegotiation: a client-triggered CPU sink with
	 * no use here. Server preference off, as Mozilla advises when every
	 * offered suite is strong: the client knows if it lacks AES hardware. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Idle connections of hundreds of villages: give the 2 x 16 KiB record
	 * buffers back while a connection has nothing in flight. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"tallyd", 6);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_alpn_select_cb(ctx, tls_select_alpn, NULL);

	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
		tls_describe_errors(why, sizeof why);
		log_event(LOG_LEVEL_ERROR, "tls_cert_invalid", "path=%s reason=%s", cert_path, why);
		rc = TLY_E_TLS;
		goto out;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
		tls_describe_errors(why, sizeof why);
		log_event(LOG_LEVEL_ERROR, "tls_key_invalid", "path=%s reason=%s", key_path, why);
		rc = TLY_E_TLS;
		goto out;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_describe_errors(why, sizeof why);
		log_event(LOG_LEVEL_ERROR, "tls_key_mismatch", "cert=%s key=%s reason=%s", cert_path,
			  key_path, why);
		rc = TLY_E_TLS;
		goto out;
	}
	*out = ctx;
	ctx = NULL;
	rc = TLY_OK;
out:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

int tls_pin_pubkey(EVP_PKEY *key, char out[TLS_PIN_SIZE])
{
	unsigned char *der = NULL;
	unsigned char md[32];
	unsigned mdlen = 0;
	int len;
	int rc = TLY_OK;

	out[0] = '\0';
	/* i2d_PUBKEY is exactly the SubjectPublicKeyInfo structure curl hashes. */
	len = i2d_PUBKEY(key, &der);
	if (len <= 0) {
		rc = TLY_E_TLS;
		goto out;
	}
	if (!EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
		rc = TLY_E_INTERNAL;
		goto out;
	}
	memcpy(out, TLS_PIN_PREFIX, sizeof TLS_PIN_PREFIX - 1);
	/* 32 bytes encode to 44 characters plus the NUL EVP_EncodeBlock adds. */
	EVP_EncodeBlock((unsigned char *)out + sizeof TLS_PIN_PREFIX - 1, md, 32);
out:
	OPENSSL_free(der);
	return rc;
}

int tls_pin_x509(X509 *cert, char out[TLS_PIN_SIZE])
{
	EVP_PKEY *key = X509_get0_pubkey(cert);

	out[0] = '\0';
	if (!key)
		return TLY_E_TLS;
	return tls_pin_pubkey(key, out);
}

int tls_pin_cert_file(const char *cert_path, char out[TLS_PIN_SIZE])
{
	FILE *f = NULL;
	X509 *x = NULL;
	int rc;

	out[0] = '\0';
	f = fopen(cert_path, "r");
	if (!f) {
		rc = TLY_E_IO;
		goto out;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	if (!x) {
		rc = TLY_E_TLS;
		goto out;
	}
	rc = tls_pin_x509(x, out);
out:
	X509_free(x);
	if (f)
		fclose(f);
	ERR_clear_error();
	return rc;
}

static int pin_char_ok(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/' || c == '=';
}

int tls_pin_list_valid(const char *s)
{
	const size_t plen = sizeof TLS_PIN_PREFIX - 1;

	if (!s || !*s)
		return 0;
	for (;;) {
		if (strncmp(s, TLS_PIN_PREFIX, plen) != 0)
			return 0;
		s += plen;
		for (int i = 0; i < 44; i++, s++) {
			if (!pin_char_ok(*s))
				return 0;
		}
		if (*s == '\0')
			return 1;
		if (*s != ';')
			return 0;
		s++;
	}
}

int tls_pin_in_list(const char *pin, const char *list)
{
	size_t n = strlen(pin);

	if (n == 0 || !list)
		return 0;
	for (const char *p = list; *p;) {
		const char *e = strchr(p, ';');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == n && memcmp(p, pin, n) == 0)
			return 1;
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

/* Adds one subjectAltName entry: an IP address when it parses as one,
 * otherwise a DNS name of letters, digits, '-', '.' (and '*' for a
 * wildcard label) only, so no name can smuggle another entry in. */
static int san_add(GENERAL_NAMES *gens, const char *name)
{
	unsigned char addr[16];
	char tmp[64];
	const char *s = name;
	size_t n = strlen(name);
	int alen = 0;
	GENERAL_NAME *g = NULL;
	int rc = TLY_E_NOMEM;

	if (n >= 2 && name[0] == '[' && name[n - 1] == ']' && n - 2 < sizeof tmp) {
		memcpy(tmp, name + 1, n - 2);
		tmp[n - 2] = '\0';
		s = tmp;
	}
	if (inet_pton(AF_INET, s, addr) == 1)
		alen = 4;
	else if (inet_pton(AF_INET6, s, addr) == 1)
		alen = 16;

	g = GENERAL_NAME_new();
	if (!g)
		goto out;
	if (alen) {
		ASN1_OCTET_STRING *ip = ASN1_OCTET_STRING_new();
		if (!ip || !ASN1_OCTET_STRING_set(ip, addr, alen)) {
			ASN1_OCTET_STRING_free(ip);
			goto out;
		}
		GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
	} else {
		if (n == 0 || n > 253) {
			rc = TLY_E_BAD_VALUE;
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			char c = name[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			      c == '-' || c == '.' || c == '*')) {
				rc = TLY_E_BAD_VALUE;
				goto out;
			}
		}
		ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
		if (!dns || !ASN1_STRING_set(dns, name, (int)n)) {
			ASN1_IA5STRING_free(dns);
			goto out;
		}
		GENERAL_NAME_set0_value(g, GEN_DNS, dns);
	}
	if (!sk_GENERAL_NAME_push(gens, g))
		goto out;
	g = NULL;
	rc = TLY_OK;
out:
	GENERAL_NAME_free(g);
	return rc;
}

static int add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
	int ok;

	if (!ext)
		return TLY_E_INTERNAL;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? TLY_OK : TLY_E_NOMEM;
}

static int make_cert(EVP_PKEY *key, const char *const *names, size_t n, unsigned days,
		     X509 **out)
{
	X509 *x = NULL;
	X509_NAME *subj = NULL;
	GENERAL_NAMES *gens = NULL;
	BIGNUM *bn = NULL;
	unsigned char serial[16];
	X509V3_CTX v3;
	int rc = TLY_E_NOMEM;

	x = X509_new();
	gens = sk_GENERAL_NAME_new_null();
	bn = BN_new();
	if (!x || !gens || !bn)
		goto out;
	/* RFC 5280: positive, at most 20 octets, unpredictable. */
	if (RAND_bytes(serial, sizeof serial) != 1) {
		rc = TLY_E_INTERNAL;
		goto out;
	}
	serial[0] &= 0x7f;
	serial[0] |= 0x01; /* never zero, never a shorter encoding */
	if (!BN_bin2bn(serial, sizeof serial, bn) || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		goto out;
	if (!X509_set_version(x, 2))
		goto out;
	if (!X509_gmtime_adj(X509_getm_notBefore(x), -86400) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL))
		goto out;

	subj = X509_get_subject_name(x);
	{
		char cn[65];
		snprintf(cn, sizeof cn, "%s", names[0]);
		if (!X509_NAME_add_entry_by_txt(subj, "O", MBSTRING_UTF8,
						(const unsigned char *)"Tally township", -1, -1, 0) ||
		    !X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8,
						(const unsigned char *)cn, -1, -1, 0))
			goto out;
	}
	if (!X509_set_issuer_name(x, subj) || !X509_set_pubkey(x, key))
		goto out;

	for (size_t i = 0; i < n; i++) {
		rc = san_add(gens, names[i]);
		if (rc != TLY_OK)
			goto out;
	}
	rc = TLY_E_NOMEM;
	if (!X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT))
		goto out;

	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	if ((rc = add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE")) != TLY_OK ||
	    (rc = add_ext(x, &v3, NID_key_usage, "critical,digitalSignature")) != TLY_OK ||
	    (rc = add_ext(x, &v3, NID_ext_key_usage, "serverAuth")) != TLY_OK ||
	    (rc = add_ext(x, &v3, NID_subject_key_identifier, "hash")) != TLY_OK)
		goto out;
	rc = TLY_E_INTERNAL;
	if (!X509_sign(x, key, EVP_sha256()))
		goto out;
	*out = x;
	x = NULL;
	rc = TLY_OK;
out:
	X509_free(x);
	GENERAL_NAMES_free(gens);
	BN_free(bn);
	return rc;
}

/* fsync of the directory holding path, so a rename into it is durable. */
static int fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd = -1;
	int rc = TLY_OK;

	if (!copy)
		return TLY_E_NOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		rc = TLY_E_IO;
	if (fd >= 0)
		close(fd);
	free(copy);
	return rc;
}

/* Writes data to a new temporary file beside path, fsync'd, with mode;
 * *tmp receives its name (malloc'd) for the caller to rename or unlink. */
static int write_temp(const char *path, const void *data, size_t len, mode_t mode, char **tmp)
{
	size_t n = strlen(path) + 16;
	char *name = malloc(n);
	const char *p = data;
	int fd = -1;
	int rc = TLY_E_IO;

	*tmp = NULL;
	if (!name)
		return TLY_E_NOMEM;
	snprintf(name, n, "%s.tmp.XXXXXX", path);
	/* mkstemp creates the file 0600 before any byte is in it, so the key
	 * is never readable by others, not even for an instant. */
	fd = mkstemp(name);
	if (fd < 0) {
		free(name);
		return TLY_E_IO;
	}
	if (fchmod(fd, mode) != 0)
		goto out;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto out;
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) != 0)
		goto out;
	rc = TLY_OK;
out:
	if (close(fd) != 0 && rc == TLY_OK)
		rc = TLY_E_IO;
	if (rc != TLY_OK) {
		unlink(name);
		free(name);
		return rc;
	}
	*tmp = name;
	return TLY_OK;
}

static int pem_of(int is_key, void *obj, char **data, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;
	int ok;

	if (!b)
		return TLY_E_NOMEM;
	ok = is_key ? PEM_write_bio_PrivateKey(b, obj, NULL, NULL, 0, NULL, NULL)
		    : PEM_write_bio_X509(b, obj);
	n = BIO_get_mem_data(b, &p);
	if (!ok || n <= 0) {
		BIO_free(b);
		return TLY_E_INTERNAL;
	}
	*data = malloc((size_t)n);
	if (!*data) {
		BIO_free(b);
		return TLY_E_NOMEM;
	}
	memcpy(*data, p, (size_t)n);
	*len = (size_t)n;
	BIO_free(b);
	return TLY_OK;
}

int tls_generate_cert(const char *key_path, const char *cert_path, const char *const *names,
		      size_t n, unsigned days, int overwrite)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	char *key_pem = NULL, *cert_pem = NULL;
	size_t key_len = 0, cert_len = 0;
	char *key_tmp = NULL, *cert_tmp = NULL;
	int rc;

	if (n == 0 || n > TLS_MAX_NAMES || !names)
		return TLY_E_USAGE;
	if (days == 0)
		days = TLS_CERT_DAYS_DEFAULT;
	if (!overwrite && (access(key_path, F_OK) == 0 || access(cert_path, F_OK) == 0))
		return TLY_E_EXISTS;

	key = EVP_EC_gen("P-256");
	if (!key) {
		rc = TLY_E_INTERNAL;
		goto out;
	}
	rc = make_cert(key, names, n, days, &x);
	if (rc != TLY_OK)
		goto out;
	if ((rc = pem_of(1, key, &key_pem, &key_len)) != TLY_OK ||
	    (rc = pem_of(0, x, &cert_pem, &cert_len)) != TLY_OK)
		goto out;

	/* Both files complete and fsync'd before either name changes. */
	if ((rc = write_temp(key_path, key_pem, key_len, 0600, &key_tmp)) != TLY_OK ||
	    (rc = write_temp(cert_path, cert_pem, cert_len, 0644, &cert_tmp)) != TLY_OK)
		goto out;
	if (rename(key_tmp, key_path) != 0) {
		rc = TLY_E_IO;
		goto out;
	}
	free(key_tmp);
	key_tmp = NULL;
	if (rename(cert_tmp, cert_path) != 0) {
		rc = TLY_E_IO;
		goto out;
	}
	free(cert_tmp);
	cert_tmp = NULL;
	/* The renames are durable only once their directories are synced. */
	if ((rc = fsync_dir_of(key_path)) != TLY_OK || (rc = fsync_dir_of(cert_path)) != TLY_OK)
		goto out;
	rc = TLY_OK;
out:
	if (key_tmp)
		unlink(key_tmp);
	if (cert_tmp)
		unlink(cert_tmp);
	free(key_tmp);
	free(cert_tmp);
	if (key_pem)
		OPENSSL_cleanse(key_pem, key_len);
	free(key_pem);
	free(cert_pem);
	X509_free(x);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}
