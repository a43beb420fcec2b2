/*
 * config — a small configuration file reader in the style of redis.conf.
 *
 *   # comment
 *   max_body_bytes   8mb
 *   header_timeout   20s
 *   log_level        info
 *   listen           "0.0.0.0:8443"
 *
 * One `key value` per line; blank lines and lines starting with '#' are
 * ignored; the value is the rest of the line with surrounding blanks removed,
 * or a double-quoted string with \" \\ \n \t escapes. Each key may appear
 * once. Unknown keys, repeated keys and values of the wrong type or out of
 * bounds are refused with the line number, and nothing is applied: a daemon
 * never starts on half its configuration.
 *
 * Options are described by tables (struct config_option) that point, by
 * offset, into a caller's struct; several tables (one per module, each with
 * its own target struct) make one file through struct config_section. Every
 * module that owns options publishes its table beside its options struct
 * (httpd.h does), so the defaults, the bounds and the file format live in
 * one place.
 *
 * Value syntax by type:
 *   UINT    decimal digits, within [min, max]               -> unsigned
 *   SIZE    digits with an optional suffix k kb m mb g gb   -> size_t
 *           (k/m/g are powers of 1000, kb/mb/gb of 1024, as in Redis)
 *   MS      digits with a suffix ms s m h (no suffix = ms)  -> unsigned (ms)
 *   BOOL    yes/no, true/false, on/off, 1/0                  -> int 0/1
 *   STRING  any text of at most max bytes, no NUL/newline   -> char *, malloc'd
 *   ENUM    one of names[]                                   -> int index
 *
 * Ownership: STRING fields are owned by the target struct after
 * config_set_defaults or a successful load, and are freed by config_free.
 */
#ifndef TALLY_DAEMON_CONFIG_H
#define TALLY_DAEMON_CONFIG_H

#include <stddef.h>

#define CONFIG_LINE_MAX 4096      /* longest line accepted */
#define CONFIG_FILE_MAX (1 << 20) /* largest file accepted */

enum config_type {
	CONFIG_UINT = 1,
	CONFIG_SIZE,
	CONFIG_MS,
	CONFIG_BOOL,
	CONFIG_STRING,
	CONFIG_ENUM,
};

struct config_option {
	const char *name;
	enum config_type type;
	size_t offset;              /* offsetof(target struct, field) */
	unsigned long long min;     /* UINT, SIZE, MS: bounds (inclusive); STRING: min length */
	unsigned long long max;     /* STRING: max length in bytes */
	const char *def;            /* default, in the file's syntax; STRING may be NULL */
	const char *const *names;   /* ENUM: NULL-terminated */
	const char *help;           /* one line, English, for `--help-config` */
};

struct config_section {
	const struct config_option *opts;
	size_t n;
	void *target;
};

/* Where a load failed: line 0 means the file as a whole (unreadable, too big). */
struct config_error {
	unsigned line;
	char key[64];
	char msg[192]; /* English, for the log and the terminal */
};

/* Sets every option of every section to its default. A target's STRING
 * fields must be NULL or strings it owns (zero the struct before the first
 * call): an old value is freed when replaced. A table whose default does not
 * parse is a programming error: TLY_E_INTERNAL. */
int config_set_defaults(const struct config_section *secs, size_t nsecs);

/* Parses text[0..n) and applies it over the current values. On any error
 * nothing is changed and err (if not NULL) says where: TLY_E_CONFIG. */
int config_load_text(const struct config_section *secs, size_t nsecs, const char *text,
		     size_t n, struct config_error *err);

/* Reads the file (at most CONFIG_FILE_MAX bytes) and loads it as above.
 * An unreadable file is TLY_E_IO with err->line 0. */
int config_load_file(const struct config_section *secs, size_t nsecs, const char *path,
		     struct config_error *err);

/* Sets one option by name, as a command-line override would. TLY_E_CONFIG
 * for an unknown key or a bad value (err->line is 0). */
int config_set(const struct config_section *secs, size_t nsecs, const char *key,
	       const char *value, struct config_error *err);

/* Frees the STRING fields of every section and sets them to NULL. */
void config_free(const struct config_section *secs, size_t nsecs);

#endif
