/*
 * report_csv — CSV rendering of the report (see report_csv.h).
 */
#include <stdlib.h>
#include <string.h>

#include "client/report_csv.h"
#include "protocol/error.h"

#define CELL_CAP (70 * 1024) /* above the protocol's long-field limit */

void report_csv_field(FILE *f, const char *s)
{
	size_t n = strlen(s);
	int quote = n > 0 && (s[0] == ' ' || s[n - 1] == ' ');
	if (!quote && strpbrk(s, ",\"\r\n"))
		quote = 1;
	if (!quote) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (const char *p = s; *p; p++) {
		if (*p == '"')
			fputc('"', f);
		fputc(*p, f);
	}
	fputc('"', f);
}

static void header(FILE *f, const struct report_col *cols, size_t ncols)
{
	for (size_t c = 0; c < ncols; c++) {
		if (c)
			fputc(',', f);
		report_csv_field(f, cols[c].zh);
	}
	fputs("\r\n", f);
}

static void group_line(FILE *f, const struct report_group *g, unsigned part, size_t ncols,
		       char *buf)
{
	for (size_t c = 0; c < ncols; c++) {
		struct report_cell cell;
		report_group_cell(g, part, c, &cell);
		if (c)
			fputc(',', f);
		report_csv_field(f, report_cell_text(&cell, buf, CELL_CAP));
	}
	fputs("\r\n", f);
}

int report_csv_write(const struct report *r, unsigned parts, FILE *f)
{
	static const unsigned order[] = {REPORT_PART_VILLAGE, REPORT_PART_SOURCE,
					 REPORT_PART_LEDGER};
	char *buf = malloc(CELL_CAP);
	int several = (parts & (parts - 1)) != 0, first = 1;
	if (!buf)
		return TLY_E_NOMEM;
	fputs("\xEF\xBB\xBF", f);
	for (size_t p = 0; p < sizeof order / sizeof order[0]; p++) {
		unsigned part = order[p];
		size_t ncols, n;
		if (!(parts & part))
			continue;
		const struct report_col *cols = report_cols(part, &ncols);
		if (!first)
			fputs("\r\n", f);
		first = 0;
		if (several) {
			report_csv_field(f, report_part_title(part));
			fputs("\r\n", f);
		}
		header(f, cols, ncols);
		if (part == REPORT_PART_LEDGER) {
			const struct report_row *rows = report_rows(r, &n);
			for (size_t i = 0; i < n; i++) {
				for (size_t c = 0; c < ncols; c++) {
					struct report_cell cell;
					report_row_cell(&rows[i], c, &cell);
					if (c)
						fputc(',', f);
					report_csv_field(f, report_cell_text(&cell, buf, CELL_CAP));
				}
				fputs("\r\n", f);
			}
		} else {
			const struct report_group *g = report_groups(r, part, &n);
			for (size_t i = 0; i < n; i++)
				group_line(f, &g[i], part, ncols, buf);
			group_line(f, report_total(r), part, ncols, buf);
		}
	}
	free(buf);
	return ferror(f) ? TLY_E_IO : TLY_OK;
}
