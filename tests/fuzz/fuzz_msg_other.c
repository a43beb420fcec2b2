/*
 * fuzz_msg_other — push_answer, pull, error and msg_peek, chosen by the
 * first byte (mod 4); the rest is the message. No crash, no leak, cleared
 * on error, and accepted messages round-trip exactly.
 */
#include <stdint.h>

#include "protocol/error.h"
#include "fuzz_common.h"
#include "protocol/message.h"

static void push_answer(const char *s, size_t n)
{
	struct msg_push_answer a, b;
	struct buf e1, e2;

	if (msg_decode_push_answer(s, n, NULL, &a) != TLY_OK) {
		if (a.results || a.n)
			abort();
		return;
	}
	buf_init(&e1, 64u << 20);
	buf_init(&e2, 64u << 20);
	if (msg_encode_push_answer(&a, &e1) != TLY_OK ||
	    msg_decode_push_answer(e1.data, e1.len, NULL, &b) != TLY_OK ||
	    msg_encode_push_answer(&b, &e2) != TLY_OK)
		abort();
	if (a.n != b.n || a.acked != b.acked || a.expected != b.expected ||
	    a.offset_ms != b.offset_ms)
		abort();
	for (size_t i = 0; i < a.n; i++) {
		if (a.results[i].seq != b.results[i].seq ||
		    a.results[i].status != b.results[i].status ||
		    a.results[i].eff != b.results[i].eff ||
		    (a.results[i].reason == NULL) != (b.results[i].reason == NULL))
			abort();
	}
	fuzz_same_bytes(&e1, &e2);
	msg_push_answer_clear(&a);
	msg_push_answer_clear(&b);
	buf_free(&e1);
	buf_free(&e2);
}

static void pull(const char *s, size_t n)
{
	struct msg_pull a, b;
	struct buf e1;

	if (msg_decode_pull(s, n, NULL, &a) != TLY_OK)
		return;
	buf_init(&e1, 1u << 20);
	if (msg_encode_pull(&a, &e1) != TLY_OK || msg_decode_pull(e1.data, e1.len, NULL, &b) != TLY_OK)
		abort();
	if (memcmp(&a, &b, sizeof a) != 0)
		abort();
	buf_free(&e1);
}

static void error(const char *s, size_t n)
{
	struct msg_error a, b;
	struct buf e1, e2;

	if (msg_decode_error(s, n, NULL, &a) != TLY_OK) {
		if (a.code_name || a.message)
			abort();
		return;
	}
	buf_init(&e1, 1u << 20);
	buf_init(&e2, 1u << 20);
	if (msg_encode_error(&a, &e1) != TLY_OK ||
	    msg_decode_error(e1.data, e1.len, NULL, &b) != TLY_OK ||
	    msg_encode_error(&b, &e2) != TLY_OK)
		abort();
	if (a.code != b.code || strcmp(a.code_name, b.code_name) != 0 ||
	    strcmp(a.message, b.message) != 0 || a.expected != b.expected ||
	    a.retry_after != b.retry_after || a.version != b.version)
		abort();
	fuzz_same_bytes(&e1, &e2);
	msg_error_clear(&a);
	msg_error_clear(&b);
	buf_free(&e1);
	buf_free(&e2);
}

static void peek(const char *s, size_t n)
{
	uint32_t v = 0;
	enum msg_type t = 0;
	int rc = msg_peek(s, n, NULL, &v, &t);
	if (rc == TLY_OK && (v != PROTOCOL_VERSION || t < MSG_PUSH || t > MSG_ERROR))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *s = (const char *)data + 1;
	switch (data[0] & 3) {
	case 0: push_answer(s, size - 1); break;
	case 1: pull(s, size - 1); break;
	case 2: error(s, size - 1); break;
	default: peek(s, size - 1); break;
	}
	return 0;
}
