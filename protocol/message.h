/*
 * message — the five protocol messages and their JSON encoding.
 *
 *   push          village -> server: a contiguous run of one site's changes
 *   push_answer   server -> village: per-change outcome, acked high-water
 *   pull          village -> server: cursor and page size
 *   pull_answer   server -> village: a page of changes visible to the caller
 *   error         either way: a stable code and a Chinese message
 *
 * Every message is a JSON object with "v" (protocol version) and "type".
 * Decoders are strict (PROTOCOL.md §Validity): they run jsoncheck_scan over
 * the bytes first, then parse with duplicate keys rejected, then demand
 * exact types, no unknown members, and every limit; a message with another
 * "v" is TLY_E_VERSION whatever else it holds. A decoded push has been
 * chain-verified: its changes link from "prev" to "head".
 *
 * Decoding gzip bodies is the caller's step (compress_inflate) so the HTTP
 * layer can apply its own caps before and after.
 *
 * Ownership: decode functions fill a caller-provided struct that then owns
 * everything it points to; release it with the matching *_clear, which
 * leaves it zeroed. On error the struct is left cleared. Encoders borrow
 * the struct and append to a caller-owned buf.
 */
#ifndef TALLY_PROTOCOL_MESSAGE_H
#define TALLY_PROTOCOL_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "change.h"
#include "limits.h"

#define PROTOCOL_VERSION 1
#define MSG_EPOCH_MAX 32 /* epoch: 1-32 bytes of [0-9a-z] */
#define MSG_REASON_MAX 512

enum msg_type {
	MSG_PUSH = 1,
	MSG_PUSH_ANSWER,
	MSG_PULL,
	MSG_PULL_ANSWER,
	MSG_ERROR,
};

/* "push": changes[0..n) all from `site`, seq consecutive, linked from prev to head. */
struct msg_push {
	char site[CHANGE_SITE_MAX + 1];
	uint8_t prev[CHANGE_HASH_LEN]; /* hash before changes[0] (genesis for seq 1) */
	uint8_t head[CHANGE_HASH_LEN]; /* hash of changes[n-1] */
	struct change **changes;
	size_t n;
	uint64_t device_ms; /* sender's wall clock when it sent, for offset reporting */
	int64_t queue;      /* changes still queued at the sender, -1 if not told */
};

enum push_status {
	PUSH_APPLIED = 1,
	PUSH_DUPLICATE,
	PUSH_REJECTED,
};

struct push_result {
	uint64_t seq;
	enum push_status status;
	int code;     /* TLY_E_* when REJECTED, else TLY_OK */
	char *reason; /* Chinese reason when REJECTED, owned, else NULL */
	uint64_t eff; /* ordering stamp the server assigned, 0 when it kept hlc */
};

/* "push_answer". `acked` is the highest seq of the site the server holds
 * durably with every lower one (rejected changes count as held: they are
 * answered and must not be resent). `expected`, when not 0, is the seq the
 * server needs next because the push started past it (nothing was applied). */
struct msg_push_answer {
	char epoch[MSG_EPOCH_MAX + 1];
	uint64_t server_ms;
	int64_t offset_ms; /* server_ms - device_ms of the push */
	uint64_t acked;
	uint64_t expected;
	struct push_result *results;
	size_t n;
};

/* "pull". cursor 0 means from the beginning; epoch "" means unknown. */
struct msg_pull {
	char epoch[MSG_EPOCH_MAX + 1];
	uint64_t cursor;
	uint32_t limit;
};

/* "pull_answer". Each change carries its links (prev, hash) and eff. */
struct msg_pull_answer {
	char epoch[MSG_EPOCH_MAX + 1];
	uint64_t server_ms;
	struct change **changes;
	size_t n;
	uint64_t next; /* cursor for the next pull */
	int more;      /* 1 if more changes remain after next */
};

/* "error". */
struct msg_error {
	int code;           /* TLY_E_*; TLY_E_REMOTE for a code this build does not know */
	char *code_name;    /* the code as received/sent, owned */
	char *message;      /* Chinese, owned */
	uint64_t expected;  /* TLY_E_SEQ_GAP: seq the server needs next, else 0 */
	uint32_t retry_after; /* seconds, 0 when not told */
	uint32_t version;   /* TLY_E_VERSION: highest version the sender speaks */
};

/* Reads "v" and "type" only (after the same strict scan) so a server can
 * route and answer a wrong version without decoding the rest. *version is
 * set whenever a "v" integer was found. */
int msg_peek(const char *json, size_t n, const struct limits *l, uint32_t *version,
	     enum msg_type *type);

int msg_encode_push(const struct msg_push *m, struct buf *out);
int msg_decode_push(const char *json, size_t n, const struct limits *l, struct msg_push *out);
void msg_push_clear(struct msg_push *m);

int msg_encode_push_answer(const struct msg_push_answer *m, struct buf *out);
int msg_decode_push_answer(const char *json, size_t n, const struct limits *l,
			   struct msg_push_answer *out);
void msg_push_answer_clear(struct msg_push_answer *m);

int msg_encode_pull(const struct msg_pull *m, struct buf *out);
int msg_decode_pull(const char *json, size_t n, const struct limits *l, struct msg_pull *out);

/* Omits a change's "prev" when it is the hash of the change before it in
 * the page (same site, seq one less); the decoder recomputes it. */
int msg_encode_pull_answer(const struct msg_pull_answer *m, struct buf *out);
int msg_decode_pull_answer(const char *json, size_t n, const struct limits *l,
			   struct msg_pull_answer *out);
void msg_pull_answer_clear(struct msg_pull_answer *m);

int msg_encode_error(const struct msg_error *m, struct buf *out);
int msg_decode_error(const char *json, size_t n, const struct limits *l, struct msg_error *out);
void msg_error_clear(struct msg_error *m);

/*
 * Sizes before bodies: the HTTP layer parses the Content-Length header
 * (daemon/httpparse.h) and calls this with the declared size before it
 * buffers a byte, and again with the count when a body has no declared
 * size: over max_body_bytes is TLY_E_TOO_LARGE (HTTP 413), so a peer
 * announcing 1 GB is refused at once. The inflated size is bounded
 * separately: compress_inflate into a buf capped at max_inflated_bytes, and
 * every decoder refuses a longer text.
 */
int msg_check_body_size(uint64_t n, const struct limits *l);

#endif
