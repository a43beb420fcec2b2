/*
 * error — the one error enum of Tally, with a stable English code and a
 * Chinese message for each value.
 *
 * Every function in Tally that can fail returns an `int` that is TLY_OK (0)
 * or one of these codes. The English code (error_name) is what logs, JSON
 * output and the wire carry; it never changes once released. The Chinese
 * text (error_text_zh) is what people read.
 *
 * Adding a code: append it just before TLY_E__COUNT in the section of its
 * part (never renumber or rename an existing one) and add its row to the
 * table in error.c; a static assertion there keeps the two in step.
 */
#ifndef TALLY_PROTOCOL_ERROR_H
#define TALLY_PROTOCOL_ERROR_H

enum tly_err {
	TLY_OK = 0,

	/* general */
	TLY_E_NOMEM,          /* out_of_memory */
	TLY_E_IO,             /* io_error */
	TLY_E_INTERNAL,       /* internal */
	TLY_E_USAGE,          /* usage */

	/* protocol: decoding and validating messages */
	TLY_E_TOO_LARGE,      /* too_large: message or declared size over its cap */
	TLY_E_INFLATE_LIMIT,  /* inflate_limit: compressed body inflates past the cap */
	TLY_E_BAD_COMPRESSION,/* bad_compression: not valid gzip/deflate, or trailing bytes */
	TLY_E_BAD_JSON,       /* bad_json: JSON syntax error */
	TLY_E_DUP_KEY,        /* duplicate_key: an object repeats a key */
	TLY_E_BAD_UTF8,       /* bad_utf8: a string is not valid UTF-8 */
	TLY_E_LONE_SURROGATE, /* lone_surrogate: \uD800-\uDFFF escape without its pair */
	TLY_E_TOO_DEEP,       /* too_deep: nesting past the limit */
	TLY_E_BAD_TYPE,       /* bad_type: a member has the wrong JSON type */
	TLY_E_MISSING_FIELD,  /* missing_field: a required member is absent */
	TLY_E_UNKNOWN_FIELD,  /* unknown_field: a member this version does not define */
	TLY_E_BAD_VALUE,      /* bad_value: right type, invalid value */
	TLY_E_TOO_MANY,       /* too_many: too many changes, fields or elements */
	TLY_E_FIELD_TOO_LONG, /* field_too_long: a string over its byte limit */
	TLY_E_VERSION,        /* version_unsupported: protocol version not spoken */
	TLY_E_BAD_MSG_TYPE,   /* bad_message_type: "type" is not the expected message */
	TLY_E_SEQ_ORDER,      /* seq_order: changes not in consecutive sequence order */
	TLY_E_SEQ_GAP,        /* seq_gap: first change is past the expected sequence */
	TLY_E_CHAIN,          /* chain_broken: hash chain does not link */
	TLY_E_CLOCK_AHEAD,    /* clock_ahead: timestamp too far ahead of the receiver */
	TLY_E_SITE_MISMATCH,  /* site_mismatch: a change's site is not the sender's */

	/* client: the ledger database and its rules */
	TLY_E_NOT_FOUND,      /* not_found */
	TLY_E_AMBIGUOUS,      /* ambiguous_id: an id prefix matches several records */
	TLY_E_BAD_DATE,       /* bad_date: not a YYYY-MM-DD calendar date */
	TLY_E_BAD_PERCENT,    /* bad_percent: outside 0-100 */
	TLY_E_PERCENT_DOWN,   /* percent_decrease: lower than the last entry, no reason */
	TLY_E_FORBIDDEN,      /* forbidden: role or tenancy rule */
	TLY_E_BAD_STATUS_MOVE,/* bad_status_move: not a lifecycle transition */
	TLY_E_NOT_TALLY_DB,   /* not_tally_db: file is not a Tally database */
	TLY_E_DB_TOO_NEW,     /* db_too_new: database from a newer Tally */
	TLY_E_DB,             /* db_error: SQLite failed */
	TLY_E_EXISTS,         /* exists: already there */
	TLY_E_NOT_INITIALISED,/* not_initialised: no database yet, run tally init */
	TLY_E_VERIFY,         /* verify_failed: tally verify found a break */

	/* daemon: network, TLS, HTTP */
	TLY_E_UNAUTHORIZED,   /* unauthorized: missing or unknown credential */
	TLY_E_REVOKED,        /* revoked: device credential revoked */
	TLY_E_RATE_LIMITED,   /* rate_limited */
	TLY_E_MEDIA_TYPE,     /* unsupported_media_type */
	TLY_E_JOIN_USED,      /* join_code_used: join code already exchanged */
	TLY_E_NETWORK,        /* network: could not reach the server */
	TLY_E_TLS,            /* tls: handshake or certificate failure */
	TLY_E_PIN,            /* pin_mismatch: server key is not the pinned one */
	TLY_E_HTTP_STATUS,    /* bad_status: unexpected HTTP status (captive portal) */
	TLY_E_TIMEOUT,        /* timeout */
	TLY_E_REMOTE,         /* remote_error: the peer answered an error code we do not know */
	TLY_E_BAD_REQUEST,    /* bad_request: malformed HTTP request */
	TLY_E_METHOD,         /* method_not_allowed: path exists, method does not */
	TLY_E_HEADER_TOO_LARGE,/* header_too_large: request line and headers over the cap */
	TLY_E_LENGTH_REQUIRED,/* length_required: body without Content-Length (chunked) */
	TLY_E_UNAVAILABLE,    /* unavailable: server stopping or overloaded, retry later */
	TLY_E_CONFIG,         /* bad_config: configuration file or option refused */
	/* evidence files (client/blobstore.h, daemon/blobsrv.h) */
	TLY_E_BLOB_TOO_LARGE, /* blob_too_large: one file over the per-file cap */
	TLY_E_BLOB_QUOTA,     /* blob_quota: a village's bytes for today are used up */
	TLY_E_BLOB_HASH,      /* blob_hash_mismatch: a chunk or file does not hash as declared */

	TLY_E__COUNT
};

/* Stable English code, e.g. "bad_utf8". Never NULL; unknown values give "unknown". */
const char *error_name(int err);

/* Chinese message for people. Never NULL. */
const char *error_text_zh(int err);

/* Parses a stable code back into its value; TLY_E_REMOTE if unknown. */
int error_from_name(const char *name);

#endif
