/*
 * compress — gzip bodies with a hard cap on what inflating may produce
 * (see compress.h).
 *
 * Inflating goes through a fixed stack chunk and is appended to the caller's
 * buf, whose cap both refuses output past the limit and bounds what buf
 * allocates: a bomb costs the cap plus zlib's 32 KiB window and one chunk,
 * however far it would expand.
 */
#include <stdint.h>
#include <limits.h>
#include <string.h>

#include <zlib.h>

#include "compress.h"
#include "error.h"

#define COMPRESS_CHUNK 16384
#define GZIP_WINDOW_BITS (15 + 16) /* 32 KiB window, gzip wrapper */
#define ZLIB_WINDOW_BITS 15        /* 32 KiB window, zlib wrapper */
#define GZIP_LEVEL 6               /* zlib's default: ~all of level 9's ratio on text, much faster */

/* zlib counts in uInt; feed larger inputs in slices so nothing truncates. */
static uInt compress_slice(size_t left)
{
	return left > UINT_MAX ? UINT_MAX : (uInt)left;
}

int compress_gzip(const void *in, size_t n, struct buf *out)
{
	z_stream z;
	unsigned char chunk[COMPRESS_CHUNK];
	const unsigned char *p = in;
	size_t left = n;
	struct buf tmp;
	int rc = TLY_OK;
	int zr;

	/* Deflate into a scratch buffer capped at out's free room, then append
	 * once: out never holds half a member, and buf's members stay buf's. */
	buf_init(&tmp, out->max - out->len);
	memset(&z, 0, sizeof z);
	zr = deflateInit2(&z, GZIP_LEVEL, Z_DEFLATED, GZIP_WINDOW_BITS, 8, Z_DEFAULT_STRATEGY);
	if (zr != Z_OK) {
		rc = zr == Z_MEM_ERROR ? TLY_E_NOMEM : TLY_E_INTERNAL;
		goto out;
	}

	do {
		if (z.avail_in == 0 && left > 0) {
			z.next_in = (unsigned char *)(uintptr_t)p; /* zlib's API is not const */
			z.avail_in = compress_slice(left);
			p += z.avail_in;
			left -= z.avail_in;
		}
		z.next_out = chunk;
		z.avail_out = sizeof chunk;
		zr = deflate(&z, left == 0 ? Z_FINISH : Z_NO_FLUSH);
		if (zr == Z_STREAM_ERROR) {
			rc = TLY_E_INTERNAL;
			goto out;
		}
		rc = buf_add(&tmp, chunk, sizeof chunk - z.avail_out);
		if (rc != TLY_OK)
			goto out;
	} while (zr != Z_STREAM_END);
	rc = buf_add(out, tmp.data, tmp.len);

out:
	deflateEnd(&z);
	buf_free(&tmp);
	return rc;
}

int compress_inflate(const void *in, size_t n, struct buf *out)
{
	z_stream z;
	unsigned char chunk[COMPRESS_CHUNK];
	const unsigned char *p = in;
	size_t left = n;
	int rc = TLY_OK;
	int zr;
	int window;

	/* The result replaces whatever out held, so out->max is exactly the
	 * inflated-size limit. */
	buf_reset(out);
	if (n < 2)
		return TLY_E_BAD_COMPRESSION;
	/* Pick the wrapper from the magic bytes and tell zlib only that one:
	 * its own auto-detection (windowBits + 32) would also be fine, but being
	 * explicit keeps a raw deflate or other junk from being half-read. */
	window = (p[0] == 0x1f && p[1] == 0x8b) ? GZIP_WINDOW_BITS : ZLIB_WINDOW_BITS;

	memset(&z, 0, sizeof z);
	zr = inflateInit2(&z, window);
	if (zr != Z_OK)
		return zr == Z_MEM_ERROR ? TLY_E_NOMEM : TLY_E_INTERNAL;

	for (;;) {
		if (z.avail_in == 0 && left > 0) {
			z.next_in = (unsigned char *)(uintptr_t)p;
			z.avail_in = compress_slice(left);
			p += z.avail_in;
			left -= z.avail_in;
		}
		z.next_out = chunk;
		z.avail_out = sizeof chunk;
		zr = inflate(&z, Z_NO_FLUSH);
		if (zr == Z_MEM_ERROR) {
			rc = TLY_E_NOMEM;
			goto out;
		}
		if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
			/* Z_DATA_ERROR (corrupt data, bad header or checksum), Z_NEED_DICT
			 * (we never use preset dictionaries), Z_STREAM_ERROR. */
			rc = TLY_E_BAD_COMPRESSION;
			goto out;
		}
		size_t got = sizeof chunk - z.avail_out;
		if (got > 0) {
			rc = buf_add(out, chunk, got);
			if (rc == TLY_E_TOO_LARGE)
				rc = TLY_E_INFLATE_LIMIT;
			if (rc != TLY_OK)
				goto out;
		}
		if (zr == Z_STREAM_END) {
			/* One member or stream only: anything after it is not ours to
			 * ignore (a second gzip member would smuggle data past the
			 * checks made on the first). */
			if (z.avail_in != 0 || left != 0)
				rc = TLY_E_BAD_COMPRESSION;
			goto out;
		}
		/* No progress with all input consumed and room to write: the
		 * stream ended before its trailer. */
		if (z.avail_in == 0 && left == 0 && got == 0) {
			rc = TLY_E_BAD_COMPRESSION;
			goto out;
		}
	}

out:
	inflateEnd(&z);
	if (rc != TLY_OK)
		buf_free(out);
	return rc;
}
