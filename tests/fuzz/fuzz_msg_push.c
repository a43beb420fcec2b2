/*
 * fuzz_msg_push — msg_decode_push on any bytes: no crash, no leak, the
 * struct cleared on error, and what it accepts round-trips exactly.
 */
#include <stdint.h>

#include "protocol/error.h"
#include "fuzz_common.h"
#include "protocol/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_push a, b;
	struct buf e1, e2;

	if (msg_decode_push((const char *)data, size, NULL, &a) != TLY_OK) {
		if (a.changes || a.n)
			abort();
		return 0;
	}
	buf_init(&e1, 64u << 20);
	buf_init(&e2, 64u << 20);
	if (msg_encode_push(&a, &e1) != TLY_OK ||
	    msg_decode_push(e1.data, e1.len, NULL, &b) != TLY_OK)
		abort();
	if (a.n != b.n || a.device_ms != b.device_ms || a.queue != b.queue)
		abort();
	fuzz_same_changes(a.changes, b.changes, a.n);
	if (msg_encode_push(&b, &e2) != TLY_OK)
		abort();
	fuzz_same_bytes(&e1, &e2);
	msg_push_clear(&a);
	msg_push_clear(&b);
	buf_free(&e1);
	buf_free(&e2);
	return 0;
}
