/*
 * config — key/value configuration files (see config.h).
 *
 * A load is two passes: every line is parsed and checked into a staging
 * array first, and only when the whole file is good are the values stored.
 * That is what lets a bad line 40 leave the running values untouched.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/config.h"
#include "protocol/buf.h"
#include "protocol/error.h"

/* protocol/limits.h shadows <limits.h> on the include path, so the two
 * maxima needed here are spelled out. */
#define CFG_ULL_MAX (~0ull)
#define CFG_UINT_MAX (~0u)

union config_value {
	unsigned long long u;
	int i;
	char *s;
};

struct staged {
	const struct config_option *opt;
	void *target;
	union config_value v;
};

static void config_err(struct config_error *err, unsigned line, const char *key,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void config_err(struct config_error *err, unsigned line, const char *key,
		       const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	err->line = line;
	snprintf(err->key, sizeof err->key, "%s", key ? key : "");
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
}

static int ascii_ieq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++) {
		char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
		char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
		if (x != y)
			return 0;
	}
	return *a == *b;
}

/* Leading decimal digits into *out; returns the first byte after them, or
 * NULL if there were none or the number overflows. */
static const char *parse_digits(const char *s, unsigned long long *out)
{
	unsigned long long v = 0;
	const char *p = s;

	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (CFG_ULL_MAX - d) / 10)
			return NULL;
		v = v * 10 + d;
	}
	if (p == s)
		return NULL;
	*out = v;
	return p;
}

struct suffix {
	const char *name;
	unsigned long long mul;
};

static const struct suffix size_suffixes[] = {
	{"", 1},
	{"b", 1},
	{"k", 1000ull},
	{"kb", 1024ull},
	{"m", 1000ull * 1000},
	{"mb", 1024ull * 1024},
	{"g", 1000ull * 1000 * 1000},
	{"gb", 1024ull * 1024 * 1024},
	{NULL, 0},
};

static const struct suffix ms_suffixes[] = {
	{"", 1},
	{"ms", 1},
	{"s", 1000ull},
	{"m", 60ull * 1000},
	{"h", 3600ull * 1000},
	{NULL, 0},
};

static int parse_scaled(const char *s, const struct suffix *tab, unsigned long long *out)
{
	unsigned long long v;
	const char *rest = parse_digits(s, &v);

	if (!rest)
		return TLY_E_BAD_VALUE;
	for (const struct suffix *x = tab; x->name; x++) {
		if (ascii_ieq(rest, x->name)) {
			if (v > CFG_ULL_MAX / x->mul)
				return TLY_E_BAD_VALUE;
			*out = v * x->mul;
			return TLY_OK;
		}
	}
	return TLY_E_BAD_VALUE;
}

/* Parses value for opt into *v (a STRING is malloc'd). On error writes the
 * reason into err with `line`. */
static int parse_value(const struct config_option *opt, const char *value, unsigned line,
		       union config_value *v, struct config_error *err)
{
	unsigned long long u;
	size_t len;

	switch (opt->type) {
	case CONFIG_UINT:
	case CONFIG_SIZE:
	case CONFIG_MS: {
		int rc;
		unsigned long long cap = opt->type == CONFIG_SIZE ? SIZE_MAX : CFG_UINT_MAX;
		if (opt->type == CONFIG_UINT) {
			const char *rest = parse_digits(value, &u);
			rc = rest && *rest == '\0' ? TLY_OK : TLY_E_BAD_VALUE;
		} else {
			rc = parse_scaled(value, opt->type == CONFIG_SIZE ? size_suffixes : ms_suffixes,
					  &u);
		}
		if (rc != TLY_OK) {
			config_err(err, line, opt->name, "'%s' is not a %s", value,
				   opt->type == CONFIG_UINT   ? "whole number"
				   : opt->type == CONFIG_SIZE ? "size (like 512kb or 8mb)"
							      : "duration (like 500ms, 20s, 5m)");
			return TLY_E_CONFIG;
		}
		if (u < opt->min || u > opt->max || u > cap) {
			config_err(err, line, opt->name, "%s is outside %llu..%llu%s", value,
				   opt->min, opt->max, opt->type == CONFIG_MS ? " ms" : "");
			return TLY_E_CONFIG;
		}
		v->u = u;
		return TLY_OK;
	}
	case CONFIG_BOOL:
		if (ascii_ieq(value, "yes") || ascii_ieq(value, "true") || ascii_ieq(value, "on") ||
		    strcmp(value, "1") == 0) {
			v->i = 1;
		} else if (ascii_ieq(value, "no") || ascii_ieq(value, "false") ||
			   ascii_ieq(value, "off") || strcmp(value, "0") == 0) {
			v->i = 0;
		} else {
			config_err(err, line, opt->name, "'%s' is not yes or no", value);
			return TLY_E_CONFIG;
		}
		return TLY_OK;
	case CONFIG_STRING:
		len = strlen(value);
		if (len < opt->min || len > opt->max) {
			config_err(err, line, opt->name, "length %zu is outside %llu..%llu bytes", len,
				   opt->min, opt->max);
			return TLY_E_CONFIG;
		}
		v->s = strdup(value);
		if (!v->s)
			return TLY_E_NOMEM;
		return TLY_OK;
	case CONFIG_ENUM:
		for (int i = 0; opt->names && opt->names[i]; i++) {
			if (strcmp(opt->names[i], value) == 0) {
				v->i = i;
				return TLY_OK;
			}
		}
		config_err(err, line, opt->name, "'%s' is not one of the allowed values", value);
		return TLY_E_CONFIG;
	}
	return TLY_E_INTERNAL;
}

static void store_value(const struct config_option *opt, void *target, union config_value *v)
{
	char *field = (char *)target + opt->offset;

	switch (opt->type) {
	case CONFIG_UINT:
	case CONFIG_MS: {
		unsigned x = (unsigned)v->u;
		memcpy(field, &x, sizeof x);
		break;
	}
	case CONFIG_SIZE: {
		size_t x = (size_t)v->u;
		memcpy(field, &x, sizeof x);
		break;
	}
	case CONFIG_BOOL:
	case CONFIG_ENUM:
		memcpy(field, &v->i, sizeof v->i);
		break;
	case CONFIG_STRING: {
		char *old;
		memcpy(&old, field, sizeof old);
		free(old);
		memcpy(field, &v->s, sizeof v->s);
		v->s = NULL; /* now owned by the target */
		break;
	}
	}
}

static int find_option(const struct config_section *secs, size_t nsecs, const char *key,
		       size_t *sec, size_t *idx)
{
	for (size_t s = 0; s < nsecs; s++) {
		for (size_t i = 0; i < secs[s].n; i++) {
			if (strcmp(secs[s].opts[i].name, key) == 0) {
				*sec = s;
				*idx = i;
				return 1;
			}
		}
	}
	return 0;
}

int config_set_defaults(const struct config_section *secs, size_t nsecs)
{
	for (size_t s = 0; s < nsecs; s++) {
		for (size_t i = 0; i < secs[s].n; i++) {
			const struct config_option *opt = &secs[s].opts[i];
			union config_value v;
			int rc;

			if (opt->type == CONFIG_STRING && !opt->def) {
				v.s = NULL;
				store_value(opt, secs[s].target, &v);
				continue;
			}
			rc = parse_value(opt, opt->def ? opt->def : "", 0, &v, NULL);
			if (rc != TLY_OK)
				return rc == TLY_E_NOMEM ? rc : TLY_E_INTERNAL;
			store_value(opt, secs[s].target, &v);
		}
	}
	return TLY_OK;
}

/* Splits one line into key and value, in place. Returns 0 for a blank or
 * comment line, 1 for key/value, -1 with err set for a malformed one. */
static int split_line(char *line, unsigned lineno, char **key, char **value,
		      struct config_error *err)
{
	char *p = line;
	char *end;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	*key = p;
	while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')
		p++;
	if (p == *key || (*p != ' ' && *p != '\t' && *p != '\0')) {
		config_err(err, lineno, NULL, "a key is lowercase letters, digits, '_' or '-'");
		return -1;
	}
	if ((size_t)(p - *key) >= sizeof err->key) {
		config_err(err, lineno, NULL, "key too long");
		return -1;
	}
	if (*p)
		*p++ = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	end = p + strlen(p);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	if (*p == '\0') {
		config_err(err, lineno, *key, "missing value");
		return -1;
	}
	if (*p != '"') {
		*value = p;
		return 1;
	}
	/* Quoted: unescape in place; the closing quote must end the line. */
	char *w = p;
	char *r = p + 1;
	for (;;) {
		if (*r == '\0') {
			config_err(err, lineno, *key, "unterminated quoted value");
			return -1;
		}
		if (*r == '"')
			break;
		if (*r == '\\') {
			r++;
			switch (*r) {
			case '"':
			case '\\':
				*w++ = *r;
				break;
			case 'n':
				*w++ = '\n';
				break;
			case 't':
				*w++ = '\t';
				break;
			default:
				config_err(err, lineno, *key, "unknown escape in quoted value");
				return -1;
			}
			r++;
			continue;
		}
		*w++ = *r++;
	}
	if (r[1] != '\0') {
		config_err(err, lineno, *key, "text after the closing quote");
		return -1;
	}
	*w = '\0';
	*value = p;
	return 1;
}

static void staged_free(struct staged *st, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (st[i].opt->type == CONFIG_STRING)
			free(st[i].v.s);
	}
}

int config_load_text(const struct config_section *secs, size_t nsecs, const char *text,
		     size_t n, struct config_error *err)
{
	size_t total = 0, nst = 0, base;
	struct staged *st = NULL;
	unsigned char *seen = NULL;
	char *line = NULL;
	unsigned lineno = 0;
	int rc = TLY_OK;

	if (err)
		memset(err, 0, sizeof *err);
	if (n > CONFIG_FILE_MAX) {
		config_err(err, 0, NULL, "file is over %d bytes", CONFIG_FILE_MAX);
		return TLY_E_CONFIG;
	}
	if (memchr(text, '\0', n)) {
		config_err(err, 0, NULL, "file holds a NUL byte (not a text file)");
		return TLY_E_CONFIG;
	}
	for (size_t s = 0; s < nsecs; s++)
		total += secs[s].n;
	/* Each key may appear once, so the staging array never needs more
	 * than one slot per option. */
	st = calloc(total ? total : 1, sizeof *st);
	seen = calloc(total ? total : 1, 1);
	line = malloc(CONFIG_LINE_MAX + 1);
	if (!st || !seen || !line) {
		rc = TLY_E_NOMEM;
		goto out;
	}

	for (size_t pos = 0; pos < n;) {
		const char *nl = memchr(text + pos, '\n', n - pos);
		size_t len = nl ? (size_t)(nl - (text + pos)) : n - pos;
		char *key, *value;
		size_t sec, idx;

		lineno++;
		if (len > 0 && text[pos + len - 1] == '\r')
			len--;
		if (len > CONFIG_LINE_MAX) {
			config_err(err, lineno, NULL, "line is over %d bytes", CONFIG_LINE_MAX);
			rc = TLY_E_CONFIG;
			goto out;
		}
		memcpy(line, text + pos, len);
		line[len] = '\0';
		pos += (nl ? (size_t)(nl - (text + pos)) + 1 : n - pos);

		int k = split_line(line, lineno, &key, &value, err);
		if (k < 0) {
			rc = TLY_E_CONFIG;
			goto out;
		}
		if (k == 0)
			continue;
		if (!find_option(secs, nsecs, key, &sec, &idx)) {
			config_err(err, lineno, key, "unknown option");
			rc = TLY_E_CONFIG;
			goto out;
		}
		base = 0;
		for (size_t s = 0; s < sec; s++)
			base += secs[s].n;
		if (seen[base + idx]) {
			config_err(err, lineno, key, "option given twice");
			rc = TLY_E_CONFIG;
			goto out;
		}
		seen[base + idx] = 1;
		st[nst].opt = &secs[sec].opts[idx];
		st[nst].target = secs[sec].target;
		rc = parse_value(st[nst].opt, value, lineno, &st[nst].v, err);
		if (rc != TLY_OK)
			goto out;
		nst++;
	}

	/* The whole file is good: only now touch the targets. */
	for (size_t i = 0; i < nst; i++)
		store_value(st[i].opt, st[i].target, &st[i].v);

out:
	if (st)
		staged_free(st, nst);
	free(st);
	free(seen);
	free(line);
	return rc;
}

int config_load_file(const struct config_section *secs, size_t nsecs, const char *path,
		     struct config_error *err)
{
	struct buf b;
	char chunk[8192];
	int fd = -1;
	int rc = TLY_OK;

	buf_init(&b, CONFIG_FILE_MAX);
	if (err)
		memset(err, 0, sizeof *err);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		config_err(err, 0, NULL, "cannot open %s: %s", path, strerror(errno));
		rc = TLY_E_IO;
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			config_err(err, 0, NULL, "cannot read %s: %s", path, strerror(errno));
			rc = TLY_E_IO;
			goto out;
		}
		if (r == 0)
			break;
		rc = buf_add(&b, chunk, (size_t)r);
		if (rc == TLY_E_TOO_LARGE) {
			config_err(err, 0, NULL, "file is over %d bytes", CONFIG_FILE_MAX);
			rc = TLY_E_CONFIG;
		}
		if (rc != TLY_OK)
			goto out;
	}
	rc = config_load_text(secs, nsecs, b.data ? b.data : "", b.len, err);
out:
	if (fd >= 0)
		close(fd);
	buf_free(&b);
	return rc;
}

int config_set(const struct config_section *secs, size_t nsecs, const char *key,
	       const char *value, struct config_error *err)
{
	size_t sec, idx;
	union config_value v;
	int rc;

	if (err)
		memset(err, 0, sizeof *err);
	if (!find_option(secs, nsecs, key, &sec, &idx)) {
		config_err(err, 0, key, "unknown option");
		return TLY_E_CONFIG;
	}
	rc = parse_value(&secs[sec].opts[idx], value, 0, &v, err);
	if (rc != TLY_OK)
		return rc;
	store_value(&secs[sec].opts[idx], secs[sec].target, &v);
	return TLY_OK;
}

void config_free(const struct config_section *secs, size_t nsecs)
{
	for (size_t s = 0; s < nsecs; s++) {
		for (size_t i = 0; i < secs[s].n; i++) {
			const struct config_option *opt = &secs[s].opts[i];
			if (opt->type == CONFIG_STRING) {
				union config_value v = {.s = NULL};
				store_value(opt, secs[s].target, &v);
			}
		}
	}
}
