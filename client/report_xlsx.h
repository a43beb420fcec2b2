/*
 * report_xlsx — the report as an Excel workbook (libxlsxwriter).
 *
 * Two sheets: 汇总 (the by-village table, an empty row, the by-source
 * table, each with its title row, header row and 合计 row) and 台账 (the
 * ledger, header in row 1). Chinese headers, the header rows frozen,
 * column widths from report_cols, dates and times as real Excel dates
 * (yyyy-mm-dd, yyyy-mm-dd hh:mm:ss), rates as numbers (0.0), warning cells
 * filled red/yellow/blue (and non-zero warning counts in the summaries).
 *
 * Every string is checked with change_check_utf8 before libxlsxwriter sees
 * it: invalid bytes would silently make a file Excel cannot open. The
 * report's strings are already cleaned by report_build, so a failure here
 * is a bug and is reported as TLY_E_BAD_UTF8 rather than written.
 *
 * The workbook is written in libxlsxwriter's constant-memory mode (rows go
 * to a temporary file as they are written), so 50,000 rows cost a few MB.
 * report_xlsx_write writes path directly; making that atomic (temp file in
 * the same directory, fsync, rename) is the caller's business
 * (cmd_report.c).
 */
#ifndef TALLY_CLIENT_REPORT_XLSX_H
#define TALLY_CLIENT_REPORT_XLSX_H

#include "client/report.h"
#include "protocol/buf.h"

/* TLY_E_IO (why says what libxlsxwriter refused), TLY_E_BAD_UTF8, TLY_E_NOMEM. */
int report_xlsx_write(const struct report *r, const char *path, struct buf *why);

#endif
