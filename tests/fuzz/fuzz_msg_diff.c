/*
 * fuzz_msg_diff — msg_decode_push and msg_decode_pull_answer, which read
 * the bytes with jsonpull, against the jansson decoders they replaced
 * (msg_jansson.h), on any bytes, under the default limits and two tight
 * ones: the same code every time, and on success the same message (every
 * change's canonical bytes, eff and links). Seeds: the msg_push and
 * msg_pull_answer corpora, and texts in other member orders.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "msg_diff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[128];
	const char *bad = msg_diff_all((const char *)data, size, why, sizeof why);

	if (bad) {
		fprintf(stderr, "msg_diff: %s\n", bad);
		abort();
	}
	return 0;
}
