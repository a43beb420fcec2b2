/*
 * report_csv — the report as CSV for Excel and WPS: RFC 4180 quoting,
 * CRLF line ends, UTF-8 with a byte order mark (without it both programs
 * read the file in the local ANSI code page and Chinese is garbled).
 *
 * Each part asked for is one table: a title line (按村汇总 / 按问题来源汇总
 * / 整改台账), the Chinese header line, the rows (summaries end with the
 * 合计 row), then an empty line before the next part. With one part the
 * file is a plain table: header first, no title.
 *
 * Cells are report_cell_text's renderings: dates YYYY-MM-DD, times
 * YYYY-MM-DD HH:MM:SS, booleans 是/否, rates as percent with one decimal.
 * The writer does not own f and does not close it.
 */
#ifndef TALLY_CLIENT_REPORT_CSV_H
#define TALLY_CLIENT_REPORT_CSV_H

#include <stdio.h>

#include "client/report.h"

/* TLY_E_IO when writing fails, TLY_E_NOMEM. */
int report_csv_write(const struct report *r, unsigned parts, FILE *f);

/* One field, quoted when it holds a comma, quote, CR or LF (or leading or
 * trailing space, which spreadsheet programs would trim). */
void report_csv_field(FILE *f, const char *s);

#endif
