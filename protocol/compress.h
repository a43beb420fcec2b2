/*
 * compress — gzip for message bodies, with a hard cap on inflated size.
 *
 * A receiver inflates into a struct buf whose cap is the inflated-size
 * limit, so a small body that inflates past it (a gzip bomb) stops at the
 * cap with TLY_E_INFLATE_LIMIT, having used no more than the cap.
 */
#ifndef TALLY_PROTOCOL_COMPRESS_H
#define TALLY_PROTOCOL_COMPRESS_H

#include <stddef.h>

#include "buf.h"

/* Appends a gzip member (RFC 1952) of in to out. */
int compress_gzip(const void *in, size_t n, struct buf *out);

/* Inflates one gzip member (or a zlib stream, RFC 1950, detected by its
 * header) into out, stopping at out->max: TLY_E_INFLATE_LIMIT. A truncated
 * or corrupt stream, a bad checksum or bytes after the end of the stream
 * are TLY_E_BAD_COMPRESSION. The result replaces whatever out held (so
 * out->max is exactly the inflated-size limit); out is left empty, its
 * memory released, on error. */
int compress_inflate(const void *in, size_t n, struct buf *out);

#endif
