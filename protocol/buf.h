/*
 * buf — a growable byte buffer with a mandatory size cap.
 *
 * Every buffer that holds bytes a peer controls has a cap, set when it is
 * initialised, so no code path can grow memory without bound: an append that
 * would pass the cap fails with TLY_E_TOO_LARGE and leaves the buffer as it
 * was. The struct is declared here so it can live on the stack or inside
 * another struct; treat its members as read-only outside buf.c.
 *
 * Ownership: the buffer owns `data`. buf_free releases it; buf_detach hands
 * it to the caller, who frees it with free(). `data` is NUL-terminated
 * whenever it is not NULL, so text can be used as a C string (the NUL is
 * not counted in `len` nor against the cap).
 */
#ifndef TALLY_PROTOCOL_BUF_H
#define TALLY_PROTOCOL_BUF_H

#include <stddef.h>

struct buf {
	char *data;   /* NULL until the first append */
	size_t len;   /* bytes in use */
	size_t alloc; /* bytes allocated */
	size_t max;   /* cap on len */
};

void buf_init(struct buf *b, size_t max);

/* Appends n bytes. TLY_E_TOO_LARGE past the cap, TLY_E_NOMEM; unchanged on error. */
int buf_add(struct buf *b, const void *p, size_t n);
int buf_add_str(struct buf *b, const char *s);
int buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Empties the buffer, keeping its memory and cap. */
void buf_reset(struct buf *b);

/* Hands the bytes to the caller (free() them) and empties the buffer.
 * Returns NULL if nothing was ever appended. */
char *buf_detach(struct buf *b, size_t *len);

void buf_free(struct buf *b);

#endif
