/*
 * fuzz_msg_pull_answer — msg_decode_pull_answer on any bytes: no crash, no
 * leak, the struct cleared on error, every accepted change linked, and what
 * it accepts round-trips exactly (prev omitted and restored included).
 */
#include <stdint.h>

#include "protocol/error.h"
#include "fuzz_common.h"
#include "protocol/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_pull_answer a, b;
	struct buf e1, e2;

	if (msg_decode_pull_answer((const char *)data, size, NULL, &a) != TLY_OK) {
		if (a.changes || a.n)
			abort();
		return 0;
	}
	buf_init(&e1, 64u << 20);
	buf_init(&e2, 64u << 20);
	if (msg_encode_pull_answer(&a, &e1) != TLY_OK ||
	    msg_decode_pull_answer(e1.data, e1.len, NULL, &b) != TLY_OK)
		abort();
	if (a.n != b.n || a.next != b.next || a.more != b.more || a.server_ms != b.server_ms ||
	    strcmp(a.epoch, b.epoch) != 0)
		abort();
	fuzz_same_changes(a.changes, b.changes, a.n);
	if (msg_encode_pull_answer(&b, &e2) != TLY_OK)
		abort();
	fuzz_same_bytes(&e1, &e2);
	msg_pull_answer_clear(&a);
	msg_pull_answer_clear(&b);
	buf_free(&e1);
	buf_free(&e2);
	return 0;
}
