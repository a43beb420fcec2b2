/*
 * clock — device time, the wall time used for stamping, and calendar dates.
 *
 * Device time is the machine's real clock plus TALLY_CLOCK_SKEW_MS (a
 * signed integer, default 0) from the environment: the test hook with
 * which sync tests fake a village clock days or years off. Wall time for
 * stamping changes is device time plus the server offset last recorded in
 * the database (sync_state.server_offset_ms, PROTOCOL.md §6 rule 1), so a
 * village that synced once stamps near server time even with a wrong clock.
 *
 * Dates are "YYYY-MM-DD" strings of the proleptic Gregorian calendar,
 * years 1900-9999. "Today" is the device's local date, or TALLY_TODAY
 * (YYYY-MM-DD) when set, for tests and reports.
 */
#ifndef TALLY_CLIENT_CLOCK_H
#define TALLY_CLIENT_CLOCK_H

#include <stdint.h>

struct db;

#define CLOCK_DATE_LEN 10

/* Milliseconds since the Unix epoch by the (possibly skewed) device clock. */
int64_t clock_device_ms(void);

/* Device time corrected by the stored server offset; never below 1. */
uint64_t clock_wall_ms(struct db *db);

/* Today's date into out (11 bytes). TLY_E_BAD_DATE if TALLY_TODAY is set
 * but not a date. */
int clock_today(char out[CLOCK_DATE_LEN + 1]);

/* TLY_OK if s is exactly a valid YYYY-MM-DD date, else TLY_E_BAD_DATE. */
int clock_check_date(const char *s);

/* Days since 1970-01-01 of a valid date (negative before). TLY_E_BAD_DATE otherwise. */
int clock_date_days(const char *s, int64_t *days);

/* The date of a day number (inverse of clock_date_days). */
void clock_days_date(int64_t days, char out[CLOCK_DATE_LEN + 1]);

/* Local calendar date of a device-time instant. */
void clock_ms_date(int64_t ms, char out[CLOCK_DATE_LEN + 1]);

#endif
