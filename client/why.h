/*
 * why — the optional Chinese detail that goes with an error code.
 *
 * Functions that can refuse input for a reason more precise than the code's
 * own text (which record, which candidates, which rule) take a
 * `struct buf *why` that may be NULL. On failure they may fill it with one
 * line of Chinese for people; the caller owns the buffer. When it is left
 * empty, error_text_zh(code) is the message.
 */
#ifndef TALLY_CLIENT_WHY_H
#define TALLY_CLIENT_WHY_H

#include "protocol/buf.h"

/* Replaces the detail with a formatted line (no-op when why is NULL).
 * Truncates silently at the buffer's cap: the detail is a courtesy. */
void why_set(struct buf *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The text to show for code: the detail if one was set, else the code's own. */
const char *why_text(const struct buf *why, int code);

#endif
