/*
 * tls — the township server's TLS material: its SSL_CTX, its key and
 * self-signed certificate, and the pin villages trust it by.
 *
 * Server settings (tls_create_server_ctx): TLS 1.2 and 1.3 only; for 1.2 the
 * Mozilla "intermediate" cipher list (ECDHE with AES-GCM or ChaCha20-Poly1305,
 * and DHE-RSA with the same, forward secret AEAD only); 1.3 keeps OpenSSL's
 * three default suites; groups X25519, P-256, P-384; no compression, no
 * renegotiation; session tickets on; ALPN answers "http/1.1" only.
 *
 * The pin is what a join code carries: "sha256//" + base64(SHA-256(DER
 * SubjectPublicKeyInfo)), exactly the form libcurl's CURLOPT_PINNEDPUBLICKEY
 * takes. It names the key, not the certificate, so a certificate renewed
 * with the same key keeps every village's pin valid.
 *
 * Ownership: tls_create_server_ctx hands the caller one reference to the
 * SSL_CTX (free with SSL_CTX_free). Functions writing a pin fill a caller's
 * char[TLS_PIN_SIZE].
 */
#ifndef TALLY_DAEMON_TLS_H
#define TALLY_DAEMON_TLS_H

#include <stddef.h>

/* OpenSSL's own types (SSL_CTX, EVP_PKEY, X509), declared rather than
 * included: <openssl/ssl.h> includes <limits.h>, which protocol/limits.h
 * shadows for any file built with protocol/ on its -I path, so a header
 * of ours must not pull OpenSSL into such a file. */
struct ssl_ctx_st;
struct evp_pkey_st;
struct x509_st;

#define TLS_PIN_PREFIX "sha256//"
#define TLS_PIN_SIZE 53 /* "sha256//" + 44 base64 characters + NUL */
#define TLS_CERT_DAYS_DEFAULT 3650
#define TLS_MAX_NAMES 32

/* The TLS 1.2 cipher list and the groups, for scanners and tests to check against. */
extern const char tls_ciphers_tls12[];
extern const char tls_ciphersuites_tls13[];
extern const char tls_groups[];

/*
 * Loads a PEM certificate file (the leaf first, then any intermediate CA
 * certificates, as a CA issues them) and its PEM private key, and builds the
 * server context. The key must match the leaf (TLY_E_TLS otherwise, also for
 * a missing or unparsable file; TLY_E_IO when a file cannot be opened). A key
 * file readable by group or others is logged as a warning, not refused.
 */
int tls_create_server_ctx(const char *cert_path, const char *key_path,
			  struct ssl_ctx_st **out);

/*
 * Creates an ECDSA P-256 key and a self-signed X.509 v3 certificate for
 * names[0..n): each is a DNS name or an IPv4/IPv6 address ("::1" or
 * "[::1]"), all put in subjectAltName, names[0] also in the subject CN.
 * Valid from one day ago (a township clock a little behind still accepts it)
 * for `days` days (0 means TLS_CERT_DAYS_DEFAULT). TLY_E_BAD_VALUE for a
 * name that is neither; TLY_E_EXISTS if either file exists and overwrite is
 * 0.
 *
 * Durability: each file is written to a temporary file in the same
 * directory, fsync'd, then renamed over its name, key first, then the
 * directories are fsync'd. The key file is created with mode 0600, the
 * certificate 0644. A crash between the two renames can leave a new key
 * beside an old certificate; tls_create_server_ctx then refuses the pair
 * (key does not match), and generating again repairs it.
 */
int tls_generate_cert(const char *key_path, const char *cert_path, const char *const *names,
		      size_t n, unsigned days, int overwrite);

/* The pin of a public key, a certificate, or the first certificate in a PEM
 * file (the leaf). */
int tls_pin_pubkey(struct evp_pkey_st *key, char out[TLS_PIN_SIZE]);
int tls_pin_x509(struct x509_st *cert, char out[TLS_PIN_SIZE]);
int tls_pin_cert_file(const char *cert_path, char out[TLS_PIN_SIZE]);

/* 1 if `pin` is one of the ';'-separated pins in `list` (the form curl
 * accepts, so a key rotation can pin the old and the new key), else 0. */
int tls_pin_in_list(const char *pin, const char *list);

/* 1 if s is a well-formed pin list: one or more "sha256//" + 44 base64
 * characters, separated by ';'. */
int tls_pin_list_valid(const char *s);

/* Moves OpenSSL's error queue for this thread into buf as one line
 * ("reason; reason"), empty when the queue was empty, and clears it. */
void tls_describe_errors(char *buf, size_t n);

#endif
