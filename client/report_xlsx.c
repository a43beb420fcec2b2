/*
 * report_xlsx — Excel rendering of the report (see report_xlsx.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xlsxwriter.h>

#include "client/clock.h"
#include "client/report_xlsx.h"
#include "client/why.h"
#include "protocol/change.h"
#include "protocol/error.h"

#define FILL_RED 0xFF0000
#define FILL_YELLOW 0xFFFF00
#define FILL_BLUE 0x00B0F0

struct xw {
	lxw_workbook *wb;
	lxw_format *header, *title, *date, *datetime, *rate, *wrap;
	lxw_format *fill_red, *fill_yellow, *fill_blue;
	lxw_error lerr; /* the first libxlsxwriter error */
	int err;        /* the first Tally error */
};

static void note(struct xw *x, lxw_error e)
{
	if (e != LXW_NO_ERROR && x->lerr == LXW_NO_ERROR) {
		x->lerr = e;
		if (!x->err)
			x->err = TLY_E_IO;
	}
}

static void put_string(struct xw *x, lxw_worksheet *ws, lxw_row_t row, lxw_col_t col,
		       const char *s, lxw_format *f)
{
	if (change_check_utf8(s, strlen(s)) != TLY_OK) {
		if (!x->err)
			x->err = TLY_E_BAD_UTF8;
		return;
	}
	note(x, worksheet_write_string(ws, row, col, s, f));
}

static lxw_format *warning_fill(struct xw *x, const char *w)
{
	if (strcmp(w, "red") == 0)
		return x->fill_red;
	if (strcmp(w, "yellow") == 0)
		return x->fill_yellow;
	if (strcmp(w, "blue") == 0)
		return x->fill_blue;
	return NULL;
}

static void put_cell(struct xw *x, lxw_worksheet *ws, lxw_row_t row, lxw_col_t col,
		     const struct report_cell *c, lxw_format *fill)
{
	char tmp[32];
	switch (c->type) {
	case REPORT_CELL_TEXT:
		put_string(x, ws, row, col, c->text, fill ? fill : x->wrap);
		break;
	case REPORT_CELL_INT:
		note(x, worksheet_write_number(ws, row, col, (double)c->num, fill));
		break;
	case REPORT_CELL_DATE: {
		lxw_datetime dt = {0};
		if (clock_check_date(c->text) == TLY_OK &&
		    sscanf(c->text, "%4d-%2d-%2d", &dt.year, &dt.month, &dt.day) == 3)
			note(x, worksheet_write_datetime(ws, row, col, &dt, x->date));
		else
			put_string(x, ws, row, col, c->text, NULL);
		break;
	}
	case REPORT_CELL_DATETIME: {
		/* Local time, to the second, as report_cell_text shows it. */
		time_t t = (time_t)(c->num / 1000);
		struct tm tm;
		if (localtime_r(&t, &tm)) {
			lxw_datetime dt = {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
					   tm.tm_hour,        tm.tm_min,     (double)tm.tm_sec};
			note(x, worksheet_write_datetime(ws, row, col, &dt, x->datetime));
		}
		break;
	}
	case REPORT_CELL_BOOL:
		put_string(x, ws, row, col, c->num ? "是" : "否", NULL);
		break;
	case REPORT_CELL_PERMILLE:
		note(x, worksheet_write_number(ws, row, col, (double)c->num / 10.0, x->rate));
		break;
	case REPORT_CELL_WARNING:
		put_string(x, ws, row, col, report_cell_text(c, tmp, sizeof tmp),
			   warning_fill(x, c->text));
		break;
	case REPORT_CELL_EMPTY:
	default:
		break;
	}
}

static void put_header(struct xw *x, lxw_worksheet *ws, lxw_row_t row, unsigned part)
{
	size_t ncols;
	const struct report_col *cols = report_cols(part, &ncols);
	for (size_t c = 0; c < ncols; c++)
		put_string(x, ws, row, (lxw_col_t)c, cols[c].zh, x->header);
}

/* A summary line; non-zero red/yellow/blue counts get their colour. */
static void put_group(struct xw *x, lxw_worksheet *ws, lxw_row_t row,
		      const struct report_group *g, unsigned part)
{
	size_t ncols;
	const struct report_col *cols = report_cols(part, &ncols);
	for (size_t c = 0; c < ncols; c++) {
		struct report_cell cell;
		lxw_format *fill = NULL;
		report_group_cell(g, part, c, &cell);
		if (cell.type == REPORT_CELL_INT && cell.num > 0)
			fill = warning_fill(x, cols[c].key);
		put_cell(x, ws, row, (lxw_col_t)c, &cell, fill);
	}
}

/* Writes rows in order: constant-memory mode flushes a row when the next
 * begins, so nothing may go back to an earlier row. */
static lxw_row_t put_summary(struct xw *x, lxw_worksheet *ws, lxw_row_t row,
			     const struct report *r, unsigned part)
{
	size_t n;
	const struct report_group *g = report_groups(r, part, &n);
	put_string(x, ws, row++, 0, report_part_title(part), x->title);
	put_header(x, ws, row++, part);
	for (size_t i = 0; i < n; i++)
		put_group(x, ws, row++, &g[i], part);
	put_group(x, ws, row++, report_total(r), part);
	return row;
}

static void set_widths(struct xw *x, lxw_worksheet *ws, unsigned part)
{
	size_t ncols;
	const struct report_col *cols = report_cols(part, &ncols);
	for (size_t c = 0; c < ncols; c++)
		note(x, worksheet_set_column(ws, (lxw_col_t)c, (lxw_col_t)c, cols[c].width, NULL));
}

static lxw_format *fill_format(lxw_workbook *wb, uint32_t colour, int white)
{
	lxw_format *f = workbook_add_format(wb);
	format_set_pattern(f, LXW_PATTERN_SOLID);
	format_set_bg_color(f, colour);
	if (white)
		format_set_font_color(f, LXW_COLOR_WHITE);
	return f;
}

int report_xlsx_write(const struct report *r, const char *path, struct buf *why)
{
	struct xw x;
	lxw_workbook_options opt = {.constant_memory = LXW_TRUE, .tmpdir = NULL, .use_zip64 = LXW_FALSE};
	lxw_worksheet *sum, *led;
	lxw_doc_properties props = {0};
	size_t nrows;
	const struct report_row *rows = report_rows(r, &nrows);
	char title[64];

	memset(&x, 0, sizeof x);
	if (change_check_utf8(path, strlen(path)) != TLY_OK)
		return TLY_E_BAD_UTF8;
	x.wb = workbook_new_opt(path, &opt);
	if (!x.wb) {
		why_set(why, "无法建立 Excel 文件 %s", path);
		return TLY_E_IO;
	}
	snprintf(title, sizeof title, "整改台账（汇总）%s", report_today(r));
	props.title = title;
	props.subject = "整改台账";
	note(&x, workbook_set_properties(x.wb, &props));

	x.header = workbook_add_format(x.wb);
	format_set_bold(x.header);
	format_set_text_wrap(x.header);
	format_set_pattern(x.header, LXW_PATTERN_SOLID);
	format_set_bg_color(x.header, 0xD9D9D9);
	format_set_border(x.header, LXW_BORDER_THIN);
	x.title = workbook_add_format(x.wb);
	format_set_bold(x.title);
	format_set_font_size(x.title, 13);
	x.date = workbook_add_format(x.wb);
	format_set_num_format(x.date, "yyyy-mm-dd");
	x.datetime = workbook_add_format(x.wb);
	format_set_num_format(x.datetime, "yyyy-mm-dd hh:mm:ss");
	x.rate = workbook_add_format(x.wb);
	format_set_num_format(x.rate, "0.0");
	x.wrap = NULL; /* long texts keep one line per row; widths bound them */
	x.fill_red = fill_format(x.wb, FILL_RED, 1);
	x.fill_yellow = fill_format(x.wb, FILL_YELLOW, 0);
	x.fill_blue = fill_format(x.wb, FILL_BLUE, 0);

	/* Sheets are filled one after the other, top to bottom: the order
	 * constant-memory mode needs. */
	sum = workbook_add_worksheet(x.wb, "汇总");
	led = workbook_add_worksheet(x.wb, "台账");
	if (!sum || !led) {
		note(&x, LXW_ERROR_MEMORY_MALLOC_FAILED);
		goto out;
	}
	set_widths(&x, sum, REPORT_PART_VILLAGE);
	/* Title row and the village header row stay on screen. */
	worksheet_freeze_panes(sum, 2, 0);
	lxw_row_t row = put_summary(&x, sum, 0, r, REPORT_PART_VILLAGE);
	put_summary(&x, sum, row + 1, r, REPORT_PART_SOURCE);

	set_widths(&x, led, REPORT_PART_LEDGER);
	worksheet_freeze_panes(led, 1, 0);
	put_header(&x, led, 0, REPORT_PART_LEDGER);
	size_t ncols;
	report_cols(REPORT_PART_LEDGER, &ncols);
	for (size_t i = 0; i < nrows && !x.err; i++) {
		for (size_t c = 0; c < ncols; c++) {
			struct report_cell cell;
			report_row_cell(&rows[i], c, &cell);
			put_cell(&x, led, (lxw_row_t)(i + 1), (lxw_col_t)c, &cell, NULL);
		}
	}
	if (nrows)
		note(&x, worksheet_autofilter(led, 0, 0, (lxw_row_t)nrows, (lxw_col_t)(ncols - 1)));
out:;
	/* workbook_close writes the file and frees the workbook, even after an
	 * error above; the caller removes the partial file then. */
	lxw_error ce = workbook_close(x.wb);
	note(&x, ce);
	if (x.lerr != LXW_NO_ERROR)
		why_set(why, "写 Excel 文件 %s 失败：%s", path, lxw_strerror(x.lerr));
	else if (x.err == TLY_E_BAD_UTF8)
		why_set(why, "台账里有不是 UTF-8 的文字，没有写入 Excel 文件");
	return x.err;
}
