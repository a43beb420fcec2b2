/*
 * fuzz_inflate — compress_inflate never crashes or passes its cap, cleans
 * up on every error, and what it inflates gzips and inflates back to the
 * same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/compress.h"
#include "protocol/error.h"

#define CAP (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf out, gz, back;

	buf_init(&out, CAP);
	int rc = compress_inflate(data, size, &out);
	if (rc != TLY_OK) {
		if (out.data || out.len)
			abort(); /* "out is left empty on error" */
		if (rc != TLY_E_BAD_COMPRESSION && rc != TLY_E_INFLATE_LIMIT && rc != TLY_E_NOMEM)
			abort();
		return 0;
	}
	if (out.len > CAP || out.alloc > CAP + 1)
		abort();
	buf_init(&gz, 2 * CAP);
	buf_init(&back, CAP);
	if (compress_gzip(out.data, out.len, &gz) != TLY_OK ||
	    compress_inflate(gz.data, gz.len, &back) != TLY_OK || back.len != out.len ||
	    (out.len && memcmp(back.data, out.data, out.len) != 0))
		abort();
	buf_free(&out);
	buf_free(&gz);
	buf_free(&back);
	return 0;
}
