/*
 * fuzz_change_canonical — change_decode_canonical on any bytes: no crash,
 * no leak, and an accepted input is exactly the canonical encoding of what
 * it decoded to (one encoding per change, so equal changes hash equal).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/change.h"
#include "protocol/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct change *c = NULL, *d = NULL;
	struct buf out;

	if (change_decode_canonical(data, size, NULL, &c) != TLY_OK) {
		if (c)
			abort();
		return 0;
	}
	buf_init(&out, 64u << 20);
	if (change_encode_canonical(c, &out) != TLY_OK || out.len != size ||
	    memcmp(out.data, data, size) != 0)
		abort();
	if (change_clone(c, &d) != TLY_OK || !change_equal(c, d))
		abort();
	change_free(c);
	change_free(d);
	buf_free(&out);
	return 0;
}
