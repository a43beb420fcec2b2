/*
 * enrol — credentials, join codes, and both ends of enrolment (see enrol.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "client/clock.h"
#include "client/ledger.h"
#include "client/srvstore.h"
#include "client/store.h"
#include "daemon/enrol.h"
#include "daemon/httpc.h"
#include "protocol/error.h"
#include "protocol/limits.h"
#include "protocol/message.h"

/* ---- secrets ---- */

int enrol_secret_new(uint8_t out[ENROL_SECRET_LEN])
{
	return RAND_bytes(out, ENROL_SECRET_LEN) == 1 ? TLY_OK : TLY_E_INTERNAL;
}

void enrol_secret_hash(const uint8_t secret[ENROL_SECRET_LEN], uint8_t out[ENROL_HASH_LEN])
{
	SHA256(secret, ENROL_SECRET_LEN, out);
}

int enrol_secret_matches(const uint8_t secret[ENROL_SECRET_LEN],
			 const uint8_t stored[ENROL_HASH_LEN])
{
	uint8_t h[ENROL_HASH_LEN];
	enrol_secret_hash(secret, h);
	return CRYPTO_memcmp(h, stored, ENROL_HASH_LEN) == 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* lowercase only: one spelling per secret */
}

static int parse_id_secret(const char *s, char sep, char id[DB_ID_LEN + 1],
			   uint8_t secret[ENROL_SECRET_LEN])
{
	for (int i = 0; i < DB_ID_LEN; i++) {
		if (hexval((unsigned char)s[i]) < 0)
			return TLY_E_BAD_VALUE;
		id[i] = s[i];
	}
	id[DB_ID_LEN] = '\0';
	if (s[DB_ID_LEN] != sep)
		return TLY_E_BAD_VALUE;
	s += DB_ID_LEN + 1;
	for (int i = 0; i < ENROL_SECRET_LEN; i++) {
		int hi = hexval((unsigned char)s[2 * i]), lo = hi < 0 ? -1 : hexval((unsigned char)s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return TLY_E_BAD_VALUE;
		secret[i] = (uint8_t)(hi << 4 | lo);
	}
	return s[2 * ENROL_SECRET_LEN] == '\0' ? TLY_OK : TLY_E_BAD_VALUE;
}

static void hex_out(const uint8_t *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

int enrol_token_parse(const char *s, struct enrol_token *out)
{
	memset(out, 0, sizeof *out);
	if (!s || (s[0] != 'd' && s[0] != 'u') || s[1] != '.' ||
	    strnlen(s, ENROL_TOKEN_SIZE) != ENROL_TOKEN_SIZE - 1)
		return TLY_E_UNAUTHORIZED;
	out->kind = s[0];
	if (parse_id_secret(s + 2, '.', out->id, out->secret)) {
		memset(out, 0, sizeof *out);
		return TLY_E_UNAUTHORIZED;
	}
	return TLY_OK;
}

void enrol_token_format(const struct enrol_token *t, char out[ENROL_TOKEN_SIZE])
{
	out[0] = t->kind;
	out[1] = '.';
	memcpy(out + 2, t->id, DB_ID_LEN);
	out[2 + DB_ID_LEN] = '.';
	hex_out(t->secret, ENROL_SECRET_LEN, out + 3 + DB_ID_LEN);
}

int enrol_code_secret_parse(const char *s, char id[DB_ID_LEN + 1],
			    uint8_t secret[ENROL_SECRET_LEN])
{
	if (strnlen(s, DB_ID_LEN + 2 + 2 * ENROL_SECRET_LEN) != DB_ID_LEN + 1 + 2 * ENROL_SECRET_LEN)
		return TLY_E_BAD_VALUE;
	return parse_id_secret(s, '.', id, secret);
}

/* ---- join codes ---- */

int enrol_code_encode(const struct enrol_code *c, struct buf *out)
{
	char secret[DB_ID_LEN + 2 + 2 * ENROL_SECRET_LEN];
	json_t *j = NULL, *urls;
	char *text = NULL;
	unsigned char *b64 = NULL;
	int err = TLY_E_NOMEM;

	memcpy(secret, c->id, DB_ID_LEN);
	secret[DB_ID_LEN] = '.';
	hex_out(c->secret, ENROL_SECRET_LEN, secret + DB_ID_LEN + 1);
	urls = json_array();
	for (size_t i = 0; urls && i < c->nurls; i++) {
		if (json_array_append_new(urls, json_string(c->urls[i])))
			goto out;
	}
	j = json_pack("{s:o,s:s,s:s}", "urls", urls, "pin", c->pin, "code", secret);
	if (!j)
		goto out;
	text = json_dumps(j, JSON_COMPACT);
	if (!text)
		goto out;
	size_t n = strlen(text);
	b64 = malloc(4 * ((n + 2) / 3) + 1);
	if (!b64)
		goto out;
	int m = EVP_EncodeBlock(b64, (const unsigned char *)text, (int)n);
	/* base64url without padding: nothing in it needs quoting in a shell
	 * or a URL, and a double-click selects all of it. */
	while (m > 0 && b64[m - 1] == '=')
		m--;
	for (int i = 0; i < m; i++) {
		if (b64[i] == '+')
			b64[i] = '-';
		else if (b64[i] == '/')
			b64[i] = '_';
	}
	err = buf_add_str(out, ENROL_CODE_PREFIX);
	if (!err)
		err = buf_add(out, b64, (size_t)m);
out:
	free(b64);
	free(text);
	json_decref(j);
	return err;
}

int enrol_code_decode(const char *s, struct enrol_code *out)
{
	const size_t plen = sizeof ENROL_CODE_PREFIX - 1;
	unsigned char *b64 = NULL, *raw = NULL;
	json_t *j = NULL, *urls;
	const char *pin, *code;
	int err = TLY_E_BAD_VALUE;

	memset(out, 0, sizeof *out);
	size_t n = strnlen(s, ENROL_CODE_MAX + 1);
	if (n > ENROL_CODE_MAX || n <= plen || strncmp(s, ENROL_CODE_PREFIX, plen) != 0)
		return TLY_E_BAD_VALUE;
	s += plen;
	n -= plen;
	if (n % 4 == 1)
		return TLY_E_BAD_VALUE;
	b64 = malloc(n + 4);
	raw = malloc(n + 4);
	if (!b64 || !raw) {
		err = TLY_E_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (ch == '-')
			ch = '+';
		else if (ch == '_')
			ch = '/';
		else if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			   (ch >= '0' && ch <= '9')))
			goto out;
		b64[i] = (unsigned char)ch;
	}
	size_t pad = (4 - n % 4) % 4;
	for (size_t i = 0; i < pad; i++)
		b64[n + i] = '=';
	int m = EVP_DecodeBlock(raw, b64, (int)(n + pad));
	if (m < 0)
		goto out;
	m -= (int)pad; /* EVP_DecodeBlock counts the padding as zero bytes */
	j = json_loadb((const char *)raw, (size_t)m, JSON_REJECT_DUPLICATES, NULL);
	if (!j || json_unpack(j, "{s:o,s:s,s:s!}", "urls", &urls, "pin", &pin, "code", &code))
		goto out;
	if (!json_is_array(urls) || json_array_size(urls) == 0 ||
	    json_array_size(urls) > HTTPC_MAX_URLS)
		goto out;
	for (size_t i = 0; i < json_array_size(urls); i++) {
		const char *u = json_string_value(json_array_get(urls, i));
		if (!u || strncmp(u, "https://", 8) != 0 || strlen(u) > ENROL_URL_MAX ||
		    strpbrk(u, " \t\r\n"))
			goto out;
		strcpy(out->urls[i], u);
	}
	out->nurls = json_array_size(urls);
	if (!tls_pin_list_valid(pin) || strlen(pin) >= TLS_PIN_SIZE)
		goto out;
	strcpy(out->pin, pin);
	err = enrol_code_secret_parse(code, out->id, out->secret);
out:
	if (err)
		memset(out, 0, sizeof *out);
	json_decref(j);
	free(b64);
	free(raw);
	return err;
}

int enrol_code_create(struct db *db, const char *village_id, const char *const *urls,
		      size_t nurls, const char *pin, int64_t ttl_ms, struct buf *out)
{
	struct enrol_code c;
	struct srvstore_join j;
	int64_t now = clock_device_ms();
	int err;

	memset(&c, 0, sizeof c);
	memset(&j, 0, sizeof j);
	if (nurls == 0 || nurls > HTTPC_MAX_URLS || strlen(pin) >= TLS_PIN_SIZE)
		return TLY_E_USAGE;
	for (size_t i = 0; i < nurls; i++) {
		if (strlen(urls[i]) > ENROL_URL_MAX || strncmp(urls[i], "https://", 8) != 0)
			return TLY_E_USAGE;
		strcpy(c.urls[i], urls[i]);
	}
	c.nurls = nurls;
	strcpy(c.pin, pin);
	err = db_random_id(c.id);
	if (!err)
		err = enrol_secret_new(c.secret);
	if (err)
		goto out;
	memcpy(j.id, c.id, sizeof j.id);
	snprintf(j.village, sizeof j.village, "%s", village_id);
	enrol_secret_hash(c.secret, j.secret_hash);
	j.expires_ms = now + ttl_ms;
	err = srvstore_join_add(db, &j, now);
	if (!err)
		err = enrol_code_encode(&c, out);
out:
	OPENSSL_cleanse(c.secret, sizeof c.secret);
	return err;
}

/* ---- the village end ---- */

static void why_put(struct buf *why, const char *fmt, const char *arg)
{
	if (!why)
		return;
	buf_reset(why);
	(void)buf_addf(why, fmt, arg);
}

static int file_exists(const char *p)
{
	return access(p, F_OK) == 0;
}

static void remove_db_files(const char *path)
{
	static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
	char p[4096];
	for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
		if (snprintf(p, sizeof p, "%s%s", path, sfx[i]) < (int)sizeof p)
			(void)unlink(p);
	}
}

/* The answer of POST /v1/join, strictly: exactly these members. */
struct join_answer {
	const char *device_id, *token, *village_id, *village_name, *server_site, *epoch;
	json_int_t server_ms;
};

static int join_decode(json_t *j, struct join_answer *a)
{
	json_int_t v;
	if (json_unpack(j, "{s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:s!}", "v", &(int){0}, "type",
			&(const char *){0}, "device_id", &a->device_id, "token", &a->token,
			"village_id", &a->village_id, "village_name", &a->village_name,
			"server_site", &a->server_site, "server_ms", &v, "epoch", &a->epoch))
		return TLY_E_BAD_VALUE;
	a->server_ms = v;
	if (strcmp(json_string_value(json_object_get(j, "type")), "join_answer") != 0 ||
	    json_integer_value(json_object_get(j, "v")) != PROTOCOL_VERSION)
		return TLY_E_BAD_MSG_TYPE;
	struct enrol_token t;
	if (enrol_token_parse(a->token, &t) || t.kind != 'd' || strcmp(t.id, a->device_id) != 0 ||
	    change_check_id(a->village_id) || change_check_site(a->server_site) ||
	    strlen(a->epoch) == 0 || strlen(a->epoch) > MSG_EPOCH_MAX)
		return TLY_E_BAD_VALUE;
	OPENSSL_cleanse(t.secret, sizeof t.secret);
	return TLY_OK;
}

int enrol_join(const char *db_path, const char *code_str, const char *device_name, struct buf *why,
	       struct buf *summary)
{
	struct enrol_code code;
	struct db *db = NULL;
	struct httpc *hc = NULL;
	struct httpc_options ho;
	struct httpc_response res;
	struct buf body;
	const char *urls[HTTPC_MAX_URLS];
	char host[256] = "";
	char secret[DB_ID_LEN + 2 + 2 * ENROL_SECRET_LEN];
	json_t *req = NULL, *ans = NULL;
	int created = 0, err;
	int64_t device_ms;

	memset(&res, 0, sizeof res);
	buf_init(&body, 64 * 1024);
	err = enrol_code_decode(code_str, &code);
	if (err) {
		why_put(why, "%s", "加入码不完整或有误，请从乡镇重新复制完整的加入码");
		goto out;
	}
	if (!device_name) {
		if (gethostname(host, sizeof host - 1) != 0 || !host[0])
			snprintf(host, sizeof host, "device");
		device_name = host;
	}
	if (!file_exists(db_path)) {
		/* A new device: its database and identity first, so the join
		 * can name its site. The village id is a placeholder until the
		 * server's answer gives the real one (same transaction below). */
		created = 1;
		err = db_open(db_path, DB_OPEN_CREATE, &db, why);
		if (!err)
			err = db_begin(db);
		if (!err)
			err = db_site_create(db, "village", device_name, "unenrolled",
					     clock_device_ms());
		if (!err)
			err = db_commit(db);
	} else {
		err = db_open(db_path, 0, &db, why);
	}
	if (err)
		goto out;
	if (!db_site(db) || strcmp(db_site(db)->role, "village") != 0) {
		why_put(why, "%s", "只有村的设备才能加入乡镇台账（这个数据库是乡镇的或未初始化）");
		err = TLY_E_USAGE;
		goto out;
	}

	memcpy(secret, code.id, DB_ID_LEN);
	secret[DB_ID_LEN] = '.';
	hex_out(code.secret, ENROL_SECRET_LEN, secret + DB_ID_LEN + 1);
	req = json_pack("{s:i,s:s,s:s,s:s}", "v", PROTOCOL_VERSION, "code", secret, "site",
			db_site(db)->site_id, "name", device_name);
	OPENSSL_cleanse(secret, sizeof secret);
	if (!req) {
		err = TLY_E_NOMEM;
		goto out;
	}
	char *text = json_dumps(req, JSON_COMPACT);
	if (!text) {
		err = TLY_E_NOMEM;
		goto out;
	}
	err = buf_add_str(&body, text);
	free(text);
	if (err)
		goto out;

	httpc_options_default(&ho);
	for (size_t i = 0; i < code.nurls; i++)
		urls[i] = code.urls[i];
	ho.base_urls = urls;
	ho.n_base_urls = code.nurls;
	ho.pin = code.pin;
	err = httpc_new(&ho, &hc);
	if (err)
		goto out;
	struct httpc_request hr = {
		.method = "POST", .path = "/v1/join", .body = body.data, .body_len = body.len,
	};
	device_ms = clock_device_ms();
	err = httpc_send(hc, &hr, &res);
	if (err) {
		if (res.status && res.body.data) {
			struct msg_error me;
			if (msg_decode_error(res.body.data, res.body.len, NULL, &me) == TLY_OK) {
				err = me.code == TLY_E_REMOTE ? TLY_E_REMOTE : me.code;
				why_put(why, "%s", me.message);
				msg_error_clear(&me);
				goto out;
			}
		}
		why_put(why, "%s", res.detail[0] ? res.detail : error_text_zh(err));
		goto out;
	}
	ans = json_loadb(res.body.data, res.body.len, JSON_REJECT_DUPLICATES, NULL);
	struct join_answer a;
	if (!ans || join_decode(ans, &a)) {
		why_put(why, "%s", "服务器的答复无法识别");
		err = TLY_E_BAD_VALUE;
		goto out;
	}
	/* The credential, where to reach the server, and the village id
	 * commit together: a device never holds half an enrolment. */
	err = db_begin(db);
	if (!err)
		err = db_site_set_village(db, a.village_id);
	if (!err)
		err = srvstore_enrolled_save(db, (const char *const *)urls, code.nurls, code.pin,
					     a.device_id, a.token, a.server_site, a.epoch,
					     (int64_t)a.server_ms - device_ms);
	if (!err)
		err = db_commit(db);
	if (err) {
		db_rollback(db);
		goto out;
	}
	if (summary) {
		json_t *s = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "device_id", a.device_id,
				      "site", db_site(db)->site_id, "village_id", a.village_id,
				      "village_name", a.village_name, "server_site", a.server_site,
				      "epoch", a.epoch);
		char *st = s ? json_dumps(s, JSON_COMPACT) : NULL;
		if (st)
			(void)buf_add_str(summary, st);
		free(st);
		json_decref(s);
	}
out:
	OPENSSL_cleanse(code.secret, sizeof code.secret);
	json_decref(req);
	json_decref(ans);
	httpc_response_clear(&res);
	httpc_free(hc);
	buf_free(&body);
	db_close(db);
	if (err && created)
		remove_db_files(db_path);
	return err;
}
