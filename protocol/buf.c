/*
 * buf — growable byte buffer with a cap (see buf.h).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"

void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	b->max = max;
}

/* Makes room for `extra` more bytes plus the NUL. The cap is checked first,
 * so a peer-declared size never reaches malloc unless it is allowed. */
static int buf_grow(struct buf *b, size_t extra)
{
	if (extra > b->max || b->len > b->max - extra)
		return TLY_E_TOO_LARGE;
	if (b->len + extra == SIZE_MAX)
		return TLY_E_NOMEM; /* no room for the NUL; only a cap of SIZE_MAX gets here */
	size_t need = b->len + extra + 1;
	if (need <= b->alloc)
		return TLY_OK;

	/* Doubling keeps appends amortised O(1); never allocate past cap + NUL,
	 * so the cap also bounds memory, not only len. */
	size_t n = b->alloc ? b->alloc : 64;
	while (n < need)
		n = n > SIZE_MAX / 2 ? need : n * 2;
	if (b->max < SIZE_MAX && n > b->max + 1)
		n = b->max + 1;
	if (n < need)
		n = need;
	char *p = realloc(b->data, n);
	if (!p)
		return TLY_E_NOMEM;
	b->data = p;
	b->alloc = n;
	return TLY_OK;
}

int buf_add(struct buf *b, const void *p, size_t n)
{
	int rc = buf_grow(b, n);
	if (rc != TLY_OK)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return TLY_OK;
}

int buf_add_str(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256];
	char *big = NULL;
	int rc;

	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0) {
		rc = TLY_E_INTERNAL;
		goto out;
	}
	if ((size_t)n < sizeof small) {
		rc = buf_add(b, small, (size_t)n);
		goto out;
	}
	/* Check the cap before allocating the temporary for a long result. */
	if ((size_t)n > b->max || b->len > b->max - (size_t)n) {
		rc = TLY_E_TOO_LARGE;
		goto out;
	}
	big = malloc((size_t)n + 1);
	if (!big) {
		rc = TLY_E_NOMEM;
		goto out;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	rc = buf_add(b, big, (size_t)n);
out:
	free(big);
	return rc;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

char *buf_detach(struct buf *b, size_t *len)
{
	char *p = b->data;
	if (len)
		*len = p ? b->len : 0;
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	return p;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
}
