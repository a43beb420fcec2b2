/*
 * clock — device and wall time, dates (see clock.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "db.h"
#include "protocol/error.h"

int64_t clock_device_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	const char *skew = getenv("TALLY_CLOCK_SKEW_MS");
	if (skew && *skew) {
		char *end = NULL;
		errno = 0;
		long long s = strtoll(skew, &end, 10);
		if (errno == 0 && end && *end == '\0')
			ms += s;
	}
	return ms;
}

uint64_t clock_wall_ms(struct db *db)
{
	int64_t offset = 0;
	sqlite3_stmt *st;
	if (db && db_stmt(db, "SELECT server_offset_ms FROM sync_state WHERE one = 1", &st) == TLY_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			offset = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
	}
	int64_t ms = clock_device_ms() + offset;
	return ms < 1 ? 1 : (uint64_t)ms;
}

/* Writes digits by hand: the values are in range by construction, and
 * printf's %d would make the compiler assume they might not be. */
static void format_date(char out[CLOCK_DATE_LEN + 1], int y, int m, int d)
{
	y = ((y % 10000) + 10000) % 10000;
	out[0] = (char)('0' + y / 1000);
	out[1] = (char)('0' + y / 100 % 10);
	out[2] = (char)('0' + y / 10 % 10);
	out[3] = (char)('0' + y % 10);
	out[4] = '-';
	out[5] = (char)('0' + m / 10 % 10);
	out[6] = (char)('0' + m % 10);
	out[7] = '-';
	out[8] = (char)('0' + d / 10 % 10);
	out[9] = (char)('0' + d % 10);
	out[10] = '\0';
}

/* Howard Hinnant's civil-from-days arithmetic, written from its description:
 * eras of 400 years, March-based years so the leap day comes last. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void clock_days_date(int64_t z, char out[CLOCK_DATE_LEN + 1])
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = yoe + era * 400;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int d = (int)(doy - (153 * mp + 2) / 5 + 1);
	int m = (int)(mp < 10 ? mp + 3 : mp - 9);
	y += m <= 2;
	format_date(out, (int)y, m, d);
}

static int is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int parse_date(const char *s, int *y, int *m, int *d)
{
	if (!s || strlen(s) != CLOCK_DATE_LEN || s[4] != '-' || s[7] != '-')
		return TLY_E_BAD_DATE;
	for (int i = 0; i < CLOCK_DATE_LEN; i++) {
		if (i == 4 || i == 7)
			continue;
		if (s[i] < '0' || s[i] > '9')
			return TLY_E_BAD_DATE;
	}
	*y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	*m = (s[5] - '0') * 10 + (s[6] - '0');
	*d = (s[8] - '0') * 10 + (s[9] - '0');
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (*y < 1900 || *m < 1 || *m > 12 || *d < 1)
		return TLY_E_BAD_DATE;
	int max = mdays[*m - 1] + (*m == 2 && is_leap(*y));
	return *d <= max ? TLY_OK : TLY_E_BAD_DATE;
}

int clock_check_date(const char *s)
{
	int y, m, d;
	return parse_date(s, &y, &m, &d);
}

int clock_date_days(const char *s, int64_t *days)
{
	int y, m, d;
	int err = parse_date(s, &y, &m, &d);
	if (err)
		return err;
	*days = days_from_civil(y, m, d);
	return TLY_OK;
}

void clock_ms_date(int64_t ms, char out[CLOCK_DATE_LEN + 1])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!localtime_r(&t, &tm)) {
		clock_days_date(ms / 86400000, out);
		return;
	}
	format_date(out, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

int clock_today(char out[CLOCK_DATE_LEN + 1])
{
	const char *t = getenv("TALLY_TODAY");
	if (t && *t) {
		if (clock_check_date(t))
			return TLY_E_BAD_DATE;
		memcpy(out, t, CLOCK_DATE_LEN + 1);
		return TLY_OK;
	}
	clock_ms_date(clock_device_ms(), out);
	return TLY_OK;
}
