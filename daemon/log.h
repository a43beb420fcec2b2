/*
 * log — one line per event on stderr, for people and for journald.
 *
 *   2026-03-31T08:15:42.123Z warn tls_handshake_failed remote=10.0.0.7:51234 reason="http request"
 *
 * Each line is: UTC time with milliseconds, level, a stable English event
 * code (lower_snake_case, never changed once released: operators grep and
 * alert on it), then key=value pairs. Values that are empty or hold a space,
 * '"', '\\', '=', a control byte or invalid UTF-8 are written quoted with C
 * escapes, so a peer-controlled string (a path, a header) can neither forge a
 * field nor start a new line. Under systemd (JOURNAL_STREAM set) each line
 * also starts with a "<N>" syslog priority prefix, which journald turns into
 * the entry's priority.
 *
 * The line is written with one write(2), so lines from several processes
 * sharing stderr never interleave. Lines longer than LOG_LINE_MAX bytes are
 * cut and end with "...". Not thread-safe: Tally's daemons are one thread.
 */
#ifndef TALLY_DAEMON_LOG_H
#define TALLY_DAEMON_LOG_H

#define LOG_LINE_MAX 4096

enum log_level {
	LOG_LEVEL_DEBUG = 0,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
};

/* Events below `level` are dropped. The default is LOG_LEVEL_INFO. */
void log_set_level(int level);
int log_get_level(void);

/* Where lines go; the default is 2 (stderr). The descriptor is borrowed. */
void log_set_fd(int fd);

/* "debug", "info", "warn" or "error" into *level; TLY_E_BAD_VALUE otherwise. */
int log_parse_level(const char *name, int *level);

/*
 * Writes one event. fmt holds the key=value part, e.g.
 *   log_event(LOG_LEVEL_INFO, "http_request", "path=%s status=%d", path, 200);
 * It is a subset of printf checked by the compiler: %s (quoted when needed;
 * NULL prints as -), %.*s, %c, %d %i %u %x %ld %lu %lld %llu %zu %zd (with
 * flags and widths), %%. fmt may be NULL for an event without fields.
 */
void log_event(int level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
