/*
 * log — one event per line (see log.h).
 *
 * The formatter is our own small printf so that every %s value passes
 * through the quoting rule: with vsnprintf a path holding "\n status=200"
 * would forge a field or a whole line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "daemon/log.h"
#include "protocol/error.h"

static int log_level = LOG_LEVEL_INFO;
static int log_fd = 2;
static int log_journal = -1; /* -1: not checked yet */

static const char *const log_names[] = {"debug", "info", "warn", "error"};
/* syslog priorities: debug 7, info 6, warning 4, err 3 */
static const char log_prio[] = {'7', '6', '4', '3'};

void log_set_level(int level)
{
	if (level < LOG_LEVEL_DEBUG)
		level = LOG_LEVEL_DEBUG;
	if (level > LOG_LEVEL_ERROR)
		level = LOG_LEVEL_ERROR;
	log_level = level;
}

int log_get_level(void)
{
	return log_level;
}

void log_set_fd(int fd)
{
	log_fd = fd;
	log_journal = -1;
}

int log_parse_level(const char *name, int *level)
{
	for (int i = 0; i <= LOG_LEVEL_ERROR; i++) {
		if (name && strcmp(name, log_names[i]) == 0) {
			*level = i;
			return TLY_OK;
		}
	}
	return TLY_E_BAD_VALUE;
}

/* journald sets JOURNAL_STREAM=dev:ino for the stream it connected to our
 * stderr; only that exact stream understands the "<N>" prefix, so a log
 * redirected to a file stays free of it. */
static int log_is_journal(void)
{
	const char *js;
	struct stat st;
	unsigned long long dev, ino;

	if (log_journal >= 0)
		return log_journal;
	log_journal = 0;
	js = getenv("JOURNAL_STREAM");
	if (js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(log_fd, &st) == 0 &&
	    (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino)
		log_journal = 1;
	return log_journal;
}

struct line {
	char buf[LOG_LINE_MAX];
	size_t len;
	int cut;
};

/* Keeps 4 bytes for "...\n" so a cut line still ends visibly. */
static void line_add(struct line *l, const char *p, size_t n)
{
	size_t room = sizeof l->buf - 4 - l->len;
	if (n > room) {
		n = room;
		l->cut = 1;
	}
	memcpy(l->buf + l->len, p, n);
	l->len += n;
}

static void line_addc(struct line *l, char c)
{
	line_add(l, &c, 1);
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t need;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		need = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		need = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		need = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	/* overlong forms, surrogates and past U+10FFFF */
	if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}

static int value_plain(const unsigned char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		if (c <= 0x20 || c == 0x7f || c == '"' || c == '\\' || c == '=')
			return 0;
		size_t k = utf8_len(s + i, n - i);
		if (k == 0)
			return 0;
		i += k;
	}
	return 1;
}

static void line_add_value(struct line *l, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	char esc[8];

	if (value_plain(s, n)) {
		line_add(l, str, n);
		return;
	}
	line_addc(l, '"');
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t k = utf8_len(s + i, n - i);
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			line_add(l, esc, 2);
		} else if (c == '\n') {
			line_add(l, "\\n", 2);
		} else if (c == '\r') {
			line_add(l, "\\r", 2);
		} else if (c == '\t') {
			line_add(l, "\\t", 2);
		} else if (c < 0x20 || c == 0x7f || k == 0) {
			snprintf(esc, sizeof esc, "\\x%02x", c);
			line_add(l, esc, 4);
			i++;
			continue;
		} else {
			line_add(l, str + i, k);
			i += k;
			continue;
		}
		i++;
	}
	line_addc(l, '"');
}

/* Formats one numeric conversion with the C library, its spec rebuilt from
 * what we parsed, so widths and flags behave exactly as printf's. */
static void line_format(struct line *l, const char *fmt, va_list *ap)
{
	char spec[32];
	char num[64];

	for (const char *p = fmt; *p;) {
		if (*p != '%') {
			const char *q = strchr(p, '%');
			size_t n = q ? (size_t)(q - p) : strlen(p);
			line_add(l, p, n);
			p += n;
			continue;
		}
		const char *start = p++;
		if (*p == '%') {
			line_addc(l, '%');
			p++;
			continue;
		}
		while (*p && strchr("-+ #0", *p))
			p++;
		if (*p == '*') {
			/* a width from the arguments: outside the subset (see above) */
			line_addc(l, '?');
			return;
		}
		while (*p >= '0' && *p <= '9')
			p++;
		int prec = -1;
		if (*p == '.') {
			p++;
			if (*p == '*') {
				prec = va_arg(*ap, int);
				p++;
			} else {
				prec = 0;
				while (*p >= '0' && *p <= '9')
					prec = prec * 10 + (*p++ - '0');
			}
		}
		int lng = 0, size = 0;
		while (*p == 'l') {
			lng++;
			p++;
		}
		if (*p == 'z') {
			size = 1;
			p++;
		}
		char conv = *p;
		if (!conv)
			break;
		p++;
		if (conv == 's') {
			const char *s = va_arg(*ap, const char *);
			if (!s) {
				line_addc(l, '-');
				continue;
			}
			size_t n = prec >= 0 ? strnlen(s, (size_t)prec) : strlen(s);
			line_add_value(l, s, n);
			continue;
		}
		size_t speclen = (size_t)(p - start);
		if (speclen >= sizeof spec) {
			line_addc(l, '?');
			return;
		}
		memcpy(spec, start, speclen);
		spec[speclen] = '\0';
		if (strchr(spec, '*')) {
			line_addc(l, '?'); /* "%.*d": the precision was consumed, not meaningful */
			return;
		}
		int n;
		switch (conv) {
		case 'd':
		case 'i':
			if (size)
				n = snprintf(num, sizeof num, spec, va_arg(*ap, ssize_t));
			else if (lng >= 2)
				n = snprintf(num, sizeof num, spec, va_arg(*ap, long long));
			else if (lng == 1)
				n = snprintf(num, sizeof num, spec, va_arg(*ap, long));
			else
				n = snprintf(num, sizeof num, spec, va_arg(*ap, int));
			break;
		case 'u':
		case 'x':
		case 'X':
			if (size)
				n = snprintf(num, sizeof num, spec, va_arg(*ap, size_t));
			else if (lng >= 2)
				n = snprintf(num, sizeof num, spec, va_arg(*ap, unsigned long long));
			else if (lng == 1)
				n = snprintf(num, sizeof num, spec, va_arg(*ap, unsigned long));
			else
				n = snprintf(num, sizeof num, spec, va_arg(*ap, unsigned));
			break;
		case 'c':
			num[0] = (char)va_arg(*ap, int);
			line_add_value(l, num, 1);
			continue;
		default:
			/* Not in the subset: the format attribute still checked the
			 * argument's type, but we cannot know its size to skip it, so
			 * stop here rather than read the wrong bytes. */
			line_addc(l, '?');
			return;
		}
		if (n > 0)
			line_add(l, num, (size_t)n < sizeof num ? (size_t)n : sizeof num - 1);
	}
}

void log_event(int level, const char *event, const char *fmt, ...)
{
	struct line l;
	struct timeval tv;
	struct tm tm;
	char head[64];
	va_list ap;

	if (level < log_level)
		return;
	if (level > LOG_LEVEL_ERROR)
		level = LOG_LEVEL_ERROR;
	if (level < LOG_LEVEL_DEBUG)
		level = LOG_LEVEL_DEBUG;
	l.len = 0;
	l.cut = 0;

	if (log_is_journal()) {
		char prio[3] = {'<', log_prio[level], '>'};
		line_add(&l, prio, 3);
	}
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	int n = snprintf(head, sizeof head, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, (int)(tv.tv_usec / 1000), log_names[level]);
	if (n > 0)
		line_add(&l, head, (size_t)n < sizeof head ? (size_t)n : sizeof head - 1);
	if (event)
		line_add_value(&l, event, strlen(event));
	if (fmt && *fmt) {
		line_addc(&l, ' ');
		va_start(ap, fmt);
		line_format(&l, fmt, &ap);
		va_end(ap);
	}
	if (l.cut) {
		memcpy(l.buf + l.len, "...", 3);
		l.len += 3;
	}
	l.buf[l.len++] = '\n';

	/* One write so concurrent writers cannot interleave inside a line;
	 * retry only on EINTR: a log must never block the daemon's work. */
	ssize_t w;
	do
		w = write(log_fd, l.buf, l.len);
	while (w < 0 && errno == EINTR);
}
