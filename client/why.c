/*
 * why — error details for people (see why.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "protocol/error.h"
#include "why.h"

void why_set(struct buf *why, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!why)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	/* A cut in the middle of a Chinese character would leave bad UTF-8. */
	size_t n = strlen(line);
	if (n == sizeof line - 1) {
		while (n > 0 && ((unsigned char)line[n - 1] & 0xC0) == 0x80)
			n--;
		if (n > 0 && (unsigned char)line[n - 1] >= 0xC0)
			n--;
		line[n] = '\0';
	}
	buf_reset(why);
	(void)buf_add_str(why, line);
}

const char *why_text(const struct buf *why, int code)
{
	if (why && why->data && why->len)
		return why->data;
	return error_text_zh(code);
}
