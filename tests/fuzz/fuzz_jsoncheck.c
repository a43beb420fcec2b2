/*
 * fuzz_jsoncheck — the scan never crashes, and it agrees with jansson:
 * whatever the scan passes, jansson parses (bar duplicate keys and numbers
 * too large, which are jansson's to refuse) into a tree the scan's counts
 * describe; whatever the scan refuses as syntax or encoding, jansson
 * refuses too.
 *
 * The first byte picks the limits (defaults, or tiny ones that put every
 * bound within reach of short inputs); the rest is the text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "protocol/error.h"
#include "protocol/jsoncheck.h"
#include "protocol/limits.h"
#include "protocol/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct limits l;
	struct jsoncheck_stats st;
	json_error_t err;

	if (size < 1)
		return 0;
	limits_default(&l);
	if (data[0] & 1) {
		l.max_depth = 3;
		l.max_elements = 4;
		l.max_field_bytes = 8;
		l.max_changes = 2;
		l.max_fields = 2;
	}
	const char *text = (const char *)data + 1;
	size_t n = size - 1;

	int rc = jsoncheck_scan_stats(text, n, &l, &st);
	int again = jsoncheck_scan(text, n, &l);
	if (again != rc)
		abort(); /* the two entry points are one scan */

	json_t *j = json_loadb(text, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
	if (rc == TLY_OK) {
		if (!j && json_error_code(&err) != json_error_duplicate_key &&
		    json_error_code(&err) != json_error_numeric_overflow)
			abort(); /* passed by the scan, refused by jansson */
		/* msg_peek compares jansson's tree with the scan's counts:
		 * a mismatch would come back as out_of_memory. */
		uint32_t v;
		enum msg_type t;
		int prc = msg_peek(text, n, &l, &v, &t);
		if (prc == TLY_E_NOMEM || prc == TLY_E_BAD_JSON)
			abort();
	} else if ((rc == TLY_E_BAD_JSON || rc == TLY_E_BAD_UTF8 || rc == TLY_E_LONE_SURROGATE) &&
		   !memchr(text, 0, n)) {
		/* jansson stops reading at a NUL byte and accepts "1\0junk"; the
		 * scan refuses it, and message.c always scans first. Otherwise
		 * the scan must not refuse what jansson accepts. */
		if (j)
			abort();
	}
	json_decref(j);
	return 0;
}
