/*
 * dash — the township dashboard (see dash.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "client/blobstore.h"
#include "client/clock.h"
#include "client/report.h"
#include "client/report_csv.h"
#include "client/report_xlsx.h"
#include "client/views.h"
#include "daemon/dash.h"
#include "daemon/dashauth.h"
#include "daemon/log.h"
#include "daemon/ratelimit.h"
#include "protocol/error.h"

#define COOKIE_NAME "tally_session"
#define PAGE_MAX (64u * 1024 * 1024)
#define FORM_MAX 4096
#define XLSX_MAX (256u * 1024 * 1024)

struct dash {
	struct syncsrv *ss;
	struct db *db;
	struct ratelimit *login_rl;
};

/* ---- assets ---- */

static const char css[] =
	"body{font-family:\"Noto Sans CJK SC\",\"WenQuanYi Micro Hei\",sans-serif;margin:0;"
	"background:#f4f5f7;color:#222}\n"
	"header{background:#a61b1b;color:#fff;padding:.6em 1.2em;display:flex;"
	"justify-content:space-between;align-items:center}\n"
	"header h1{font-size:1.3em;margin:0}header a,header button{color:#fff}\n"
	"main{padding:1em 1.2em;max-width:1200px}\n"
	"section{background:#fff;border-radius:6px;padding:.8em 1em;margin-bottom:1em;"
	"box-shadow:0 1px 2px #0002}\n"
	"h2{font-size:1.1em;margin:.2em 0 .6em}\n"
	"table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;"
	"padding:.3em .5em;text-align:left}td.n{text-align:right}\n"
	"meter{width:8em}\n"
	"span.red{color:#fff;background:#c62828;border-radius:3px;padding:0 .4em}\n"
	"span.yellow{background:#f9a825;border-radius:3px;padding:0 .4em}\n"
	"span.blue{color:#fff;background:#1565c0;border-radius:3px;padding:0 .4em}\n"
	".silent{color:#c62828;font-weight:bold}\n"
	".err{color:#c62828}\n"
	"form.login{max-width:22em;margin:4em auto;background:#fff;padding:1.5em;"
	"border-radius:6px;box-shadow:0 1px 3px #0003}\n"
	"form.login label{display:block;margin:.6em 0}form.login input{width:100%;"
	"padding:.4em;box-sizing:border-box}\n"
	"button{padding:.4em 1.2em}\n"
	"pre{white-space:pre-wrap;margin:0}\n";

/* Pages load nothing from elsewhere and run no script; styles come only
 * from /dash.css (inline style would need 'unsafe-inline'). */
static const char csp[] = "default-src 'self'; script-src 'none'; object-src 'none'; "
			  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/* ---- small helpers ---- */

static int add_security_headers(struct httpd_req *r)
{
	int err = httpd_add_header(r, "Content-Security-Policy", csp);
	if (!err)
		err = httpd_add_header(r, "X-Frame-Options", "DENY");
	if (!err)
		/* Not no-referrer: with it chromium sends "Origin: null" on our own
		 * form posts, which same_origin() must then refuse. */
		err = httpd_add_header(r, "Referrer-Policy", "same-origin");
	return err;
}

/* Escapes the five characters that matter in text and quoted attributes. */
static int html(struct buf *b, const char *s)
{
	int err = TLY_OK;
	if (!s)
		return TLY_OK;
	for (const char *p = s; *p && !err; p++) {
		switch (*p) {
		case '&': err = buf_add_str(b, "&amp;"); break;
		case '<': err = buf_add_str(b, "&lt;"); break;
		case '>': err = buf_add_str(b, "&gt;"); break;
		case '"': err = buf_add_str(b, "&quot;"); break;
		case '\'': err = buf_add_str(b, "&#39;"); break;
		default: err = buf_add(b, p, 1);
		}
	}
	return err;
}

static int page_start(struct buf *b, const char *title, const char *user)
{
	int err = buf_add_str(b, "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
				 "<meta name=\"viewport\" content=\"width=device-width\">"
				 "<link rel=\"stylesheet\" href=\"/dash.css\"><title>");
	if (!err)
		err = html(b, title);
	if (!err)
		err = buf_add_str(b, "</title></head><body><header><h1>");
	if (!err)
		err = html(b, title);
	if (!err)
		err = buf_add_str(b, "</h1>");
	if (!err && user) {
		err = buf_add_str(b, "<form method=\"post\" action=\"/logout\"><span>");
		if (!err)
			err = html(b, user);
		if (!err)
			err = buf_add_str(b, "</span> <a href=\"/\">总览</a> "
					     "<button type=\"submit\" id=\"logout\">退出登录</button></form>");
	}
	if (!err)
		err = buf_add_str(b, "</header><main>");
	return err;
}

static int reply_page(struct httpd_req *r, int status, struct buf *b)
{
	int err = add_security_headers(r);
	if (!err)
		err = buf_add_str(b, "</main></body></html>\n");
	if (!err)
		err = httpd_reply(r, status, "text/html; charset=utf-8", b->data, b->len);
	return err;
}

static int redirect(struct httpd_req *r, const char *to)
{
	int err = add_security_headers(r);
	if (!err)
		err = httpd_add_header(r, "Location", to);
	if (!err)
		err = httpd_reply(r, 303, "text/plain; charset=utf-8", "", 0);
	return err;
}

/* The value of cookie NAME from the Cookie header, into out; 0 if absent. */
static int cookie_get(const struct httpd_req *r, const char *name, char *out, size_t cap)
{
	const char *h = httpd_req_header(r, "Cookie");
	size_t nl = strlen(name);
	while (h && *h) {
		while (*h == ' ' || *h == ';')
			h++;
		const char *end = strchr(h, ';');
		size_t len = end ? (size_t)(end - h) : strlen(h);
		if (len > nl && strncmp(h, name, nl) == 0 && h[nl] == '=') {
			size_t vl = len - nl - 1;
			if (vl >= cap)
				return 0;
			memcpy(out, h + nl + 1, vl);
			out[vl] = '\0';
			return 1;
		}
		h = end;
	}
	return 0;
}

/*
 * Who is asking. Returns 1 when a township user may go on (user filled);
 * otherwise the request has been answered (redirect, 401, 403) and 0 is
 * returned with *err set to the answer's result.
 */
static int authorise(struct dash *d, struct httpd_req *r, int api, char user[DASHAUTH_NAME_MAX + 1],
		     int *err)
{
	char cookie[DASHAUTH_SESSION_HEX + 2];
	const char *bearer = httpd_req_bearer(r);

	*err = TLY_OK;
	if (cookie_get(r, COOKIE_NAME, cookie, sizeof cookie)) {
		int e = dashauth_session_get(d->db, cookie, clock_device_ms(), user);
		if (!e)
			return 1;
		if (e != TLY_E_UNAUTHORIZED) {
			*err = e;
			return 0;
		}
	}
	if (bearer) {
		struct syncsrv_principal p;
		int e = syncsrv_authenticate(d->ss, bearer, &p);
		if (!e && p.kind == 'u') {
			snprintf(user, DASHAUTH_NAME_MAX + 1, "用户凭证 %s", p.id);
			return 1;
		}
		if (!e) {
			/* A village device may sync; it may not read the township's
			 * consolidated ledger (guarantee 7). */
			log_event(LOG_LEVEL_WARN, "dash_forbidden", "remote=%s path=%s device=%s",
				  httpd_req_remote(r), httpd_req_path(r), p.id);
			(void)add_security_headers(r);
			*err = httpd_reply_error(r, 403, TLY_E_FORBIDDEN,
						 "村设备凭证不能查看乡镇看板和汇总报表");
			return 0;
		}
		if (e != TLY_E_UNAUTHORIZED && e != TLY_E_REVOKED) {
			*err = e;
			return 0;
		}
	}
	if (api) {
		(void)add_security_headers(r);
		*err = httpd_reply_error(r, 401, TLY_E_UNAUTHORIZED,
					 "请先登录乡镇看板，或使用乡镇用户凭证");
	} else {
		*err = redirect(r, "/login");
	}
	return 0;
}

/* ---- login ---- */

static int login_page(struct httpd_req *r, int status, const char *message, const char *user)
{
	struct buf b;
	int err;
	buf_init(&b, PAGE_MAX);
	err = page_start(&b, "乡镇整改台账看板 · 登录", NULL);
	if (!err)
		err = buf_add_str(&b, "<form class=\"login\" method=\"post\" action=\"/login\">"
				      "<h2>登录</h2>");
	if (!err && message) {
		err = buf_add_str(&b, "<p class=\"err\" id=\"login-error\">");
		if (!err)
			err = html(&b, message);
		if (!err)
			err = buf_add_str(&b, "</p>");
	}
	if (!err)
		err = buf_add_str(&b, "<label>用户名<input name=\"user\" id=\"user\" "
				      "autocomplete=\"username\" required value=\"");
	if (!err)
		err = html(&b, user ? user : "");
	if (!err)
		err = buf_add_str(&b, "\"></label><label>密码<input name=\"password\" id=\"password\" "
				      "type=\"password\" autocomplete=\"current-password\" required>"
				      "</label><button type=\"submit\" id=\"login\">登录</button></form>");
	if (!err)
		err = reply_page(r, status, &b);
	buf_free(&b);
	return err;
}

static int h_login_get(struct httpd_req *r, void *arg)
{
	(void)arg;
	return login_page(r, 200, NULL, NULL);
}

static int unhex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The value of KEY in an application/x-www-form-urlencoded body, decoded
 * into out. 0 when absent, malformed or longer than cap - 1. */
static int form_get(const char *body, const char *key, char *out, size_t cap)
{
	size_t kl = strlen(key);
	for (const char *p = body; p && *p; p = strchr(p, '&'), p = p ? p + 1 : NULL) {
		if (strncmp(p, key, kl) != 0 || p[kl] != '=')
			continue;
		size_t n = 0;
		for (const char *v = p + kl + 1; *v && *v != '&'; v++) {
			int c = (unsigned char)*v;
			if (c == '+') {
				c = ' ';
			} else if (c == '%') {
				int hi = unhex_digit(v[1]), lo = hi < 0 ? -1 : unhex_digit(v[2]);
				if (hi < 0 || lo < 0)
					return 0;
				c = hi * 16 + lo;
				v += 2;
			}
			if (c == 0 || n + 1 >= cap)
				return 0;
			out[n++] = (char)c;
		}
		out[n] = '\0';
		return 1;
	}
	return 0;
}

static void remote_host(const struct httpd_req *r, char *out, size_t cap)
{
	const char *rem = httpd_req_remote(r);
	const char *colon = strrchr(rem, ':');
	size_t n = colon ? (size_t)(colon - rem) : strlen(rem);
	if (n >= cap)
		n = cap - 1;
	memcpy(out, rem, n);
	out[n] = '\0';
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A form posted from another site is refused: SameSite=Strict already
 * keeps our cookie off it, this keeps a login CSRF out too. */
static int same_origin(const struct httpd_req *r)
{
	const char *origin = httpd_req_header(r, "Origin"), *host = httpd_req_header(r, "Host");
	if (!origin)
		return 1;
	return host && strncmp(origin, "https://", 8) == 0 && strcmp(origin + 8, host) == 0;
}

static int h_login_post(struct httpd_req *r, void *arg)
{
	struct dash *d = arg;
	char user[DASHAUTH_NAME_MAX + 2], pw[DASHAUTH_PW_MAX + 2], key[RATELIMIT_KEY_MAX + 1];
	char host[64], cookie[DASHAUTH_SESSION_HEX + 1], set[256];
	uint64_t wait_ip = 0, wait_user = 0;
	size_t n;
	const char *body = httpd_req_body(r, &n);
	int ok = 0, err;

	memset(pw, 0, sizeof pw);
	if (!same_origin(r)) {
		(void)add_security_headers(r);
		return httpd_reply_error(r, 403, TLY_E_FORBIDDEN, "登录请求来自其他网站，已拒绝");
	}
	if (!form_get(body, "user", user, sizeof user) ||
	    !form_get(body, "password", pw, sizeof pw) || !user[0])
		return login_page(r, 400, "请填写用户名和密码", NULL);
	/* Both buckets are charged on every attempt: one address cannot try
	 * many names, and many addresses cannot try one name quickly. */
	remote_host(r, host, sizeof host);
	snprintf(key, sizeof key, "login-ip:%s", host);
	int e1 = ratelimit_take(d->login_rl, key, mono_ms(), &wait_ip);
	snprintf(key, sizeof key, "login-user:%.60s", user);
	int e2 = ratelimit_take(d->login_rl, key, mono_ms(), &wait_user);
	if (e1 == TLY_E_RATE_LIMITED || e2 == TLY_E_RATE_LIMITED) {
		uint64_t w = wait_ip > wait_user ? wait_ip : wait_user;
		char ra[24];
		snprintf(ra, sizeof ra, "%llu", (unsigned long long)((w + 999) / 1000 ? (w + 999) / 1000 : 1));
		log_event(LOG_LEVEL_WARN, "dash_login_limited", "remote=%s", httpd_req_remote(r));
		(void)httpd_add_header(r, "Retry-After", ra);
		err = login_page(r, 429, "登录尝试过于频繁，请稍后再试", user);
		goto out;
	}
	err = dashauth_password_check(d->db, user, pw, &ok);
	if (err)
		goto out;
	if (!ok) {
		log_event(LOG_LEVEL_WARN, "dash_login_refused", "remote=%s", httpd_req_remote(r));
		err = login_page(r, 401, "用户名或密码错误", user);
		goto out;
	}
	err = dashauth_session_new(d->db, user, clock_device_ms(), DASHAUTH_SESSION_TTL_MS, cookie);
	if (err)
		goto out;
	snprintf(set, sizeof set,
		 COOKIE_NAME "=%s; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=%lld", cookie,
		 (long long)(DASHAUTH_SESSION_TTL_MS / 1000));
	log_event(LOG_LEVEL_INFO, "dash_login", "remote=%s", httpd_req_remote(r));
	err = httpd_add_header(r, "Set-Cookie", set);
	if (!err)
		err = redirect(r, "/");
out:
	memset(pw, 0, sizeof pw);
	memset(cookie, 0, sizeof cookie);
	return err;
}

static int h_logout(struct httpd_req *r, void *arg)
{
	struct dash *d = arg;
	char cookie[DASHAUTH_SESSION_HEX + 2];
	int err = TLY_OK;
	if (!same_origin(r)) {
		(void)add_security_headers(r);
		return httpd_reply_error(r, 403, TLY_E_FORBIDDEN, "请求来自其他网站，已拒绝");
	}
	if (cookie_get(r, COOKIE_NAME, cookie, sizeof cookie))
		err = dashauth_session_end(d->db, cookie, clock_device_ms());
	if (!err)
		err = httpd_add_header(r, "Set-Cookie",
				       COOKIE_NAME "=; Secure; HttpOnly; SameSite=Strict; Path=/; "
						   "Max-Age=0");
	if (!err)
		err = redirect(r, "/login");
	return err;
}

static int h_css(struct httpd_req *r, void *arg)
{
	(void)arg;
	return httpd_reply(r, 200, "text/css; charset=utf-8", css, sizeof css - 1);
}

/* ---- overview ---- */

static int cell(struct buf *b, const char *cls, const char *text)
{
	int err = buf_addf(b, "<td class=\"%s\">", cls);
	if (!err)
		err = html(b, text);
	if (!err)
		err = buf_add_str(b, "</td>");
	return err;
}

static int num(struct buf *b, const char *cls, int64_t v)
{
	return buf_addf(b, "<td class=\"n %s\">%lld</td>", cls, (long long)v);
}

static int warn_cell(struct buf *b, const char *cls, const char *colour, int64_t v)
{
	if (!v)
		return num(b, cls, v);
	return buf_addf(b, "<td class=\"n %s\"><span class=\"%s\">%lld</span></td>", cls, colour,
			(long long)v);
}

static void fmt_time(int64_t ms, char *out, size_t cap)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!ms || !localtime_r(&t, &tm) || !strftime(out, cap, "%Y-%m-%d %H:%M", &tm))
		snprintf(out, cap, "从未同步");
}

static int group_rows(struct buf *b, const struct report *rep, unsigned part)
{
	size_t n;
	const struct report_group *g = report_groups(rep, part, &n);
	int err = TLY_OK;
	for (size_t i = 0; i <= n && !err; i++) {
		const struct report_group *x = i < n ? &g[i] : report_total(rep);
		int64_t rate = report_rate_permille(&x->n);
		char rs[32];
		if (rate < 0)
			snprintf(rs, sizeof rs, "—");
		else
			snprintf(rs, sizeof rs, "%lld.%lld%%", (long long)(rate / 10),
				 (long long)(rate % 10));
		err = buf_add_str(b, "<tr data-key=\"");
		if (!err)
			err = html(b, x->key);
		if (!err)
			err = buf_add_str(b, "\">");
		if (!err)
			err = cell(b, "label", x->label);
		if (!err)
			err = buf_addf(b, "<td class=\"rate\"><meter min=\"0\" max=\"1000\" value=\"%lld\">"
					  "</meter> %s</td>",
				       (long long)(rate < 0 ? 0 : rate), rs);
		if (!err)
			err = num(b, "tasks", x->n.tasks);
		if (!err)
			err = num(b, "closed", x->n.closed);
		if (!err)
			err = num(b, "submitted", x->n.submitted);
		if (!err)
			err = num(b, "doing", x->n.doing);
		if (!err)
			err = num(b, "todo", x->n.todo);
		if (!err)
			err = num(b, "long_term", x->n.long_term);
		if (!err)
			err = warn_cell(b, "overdue", "red", x->n.overdue);
		if (!err)
			err = warn_cell(b, "red", "red", x->n.red);
		if (!err)
			err = warn_cell(b, "yellow", "yellow", x->n.yellow);
		if (!err)
			err = warn_cell(b, "blue", "blue", x->n.blue);
		if (!err && part == REPORT_PART_VILLAGE) {
			char ts[40];
			if (x->is_village) {
				fmt_time(x->last_sync_ms, ts, sizeof ts);
				err = buf_addf(b, "<td class=\"last_sync%s\">%s%s</td>",
					       x->silent ? " silent" : "", ts,
					       x->silent ? "（久未同步）" : "");
			} else {
				err = buf_add_str(b, "<td></td>");
			}
		}
		if (!err)
			err = buf_add_str(b, "</tr>\n");
	}
	return err;
}

static int group_table(struct buf *b, const struct report *rep, unsigned part, const char *id)
{
	int err = buf_addf(b, "<section><h2>%s</h2><table id=\"%s\"><thead><tr><th>%s</th>"
			      "<th>完成率</th><th>任务总数</th><th>已销号</th><th>申请销号</th>"
			      "<th>整改中</th><th>待整改</th><th>长期坚持</th><th>逾期</th><th>红色预警</th>"
			      "<th>黄色预警</th><th>蓝色预警</th>%s</tr></thead><tbody>\n",
			   report_part_title(part), id, part == REPORT_PART_VILLAGE ? "村" : "问题来源",
			   part == REPORT_PART_VILLAGE ? "<th>最后同步</th>" : "");
	if (!err)
		err = group_rows(b, rep, part);
	if (!err)
		err = buf_add_str(b, "</tbody></table></section>\n");
	return err;
}

static int cmp_overdue(const void *a, const void *b)
{
	const struct report_row *x = *(const struct report_row *const *)a,
				*y = *(const struct report_row *const *)b;
	return x->flags.days_left < y->flags.days_left ? -1 : x->flags.days_left > y->flags.days_left;
}

static int overdue_table(struct buf *b, const struct report *rep)
{
	size_t n, k = 0;
	const struct report_row *rows = report_rows(rep, &n);
	const struct report_row **od = calloc(n ? n : 1, sizeof *od);
	int err = TLY_OK;
	if (!od)
		return TLY_E_NOMEM;
	for (size_t i = 0; i < n; i++) {
		if (rows[i].flags.overdue)
			od[k++] = &rows[i];
	}
	qsort(od, k, sizeof *od, cmp_overdue);
	err = buf_addf(b, "<section><h2>逾期任务（%zu 项）</h2><table id=\"overdue\"><thead><tr>"
			  "<th>村</th><th>整改任务</th><th>责任人</th><th>责任领导</th>"
			  "<th>完成时限</th><th>逾期天数</th><th>进度</th></tr></thead><tbody>\n",
		       k);
	for (size_t i = 0; i < k && !err; i++) {
		err = buf_add_str(b, "<tr><td>");
		if (!err)
			err = html(b, od[i]->village);
		if (!err)
			err = buf_add_str(b, "</td><td><a href=\"/task/");
		if (!err)
			err = html(b, od[i]->id);
		if (!err)
			err = buf_add_str(b, "\">");
		if (!err)
			err = html(b, od[i]->measures[0] ? od[i]->measures : od[i]->id);
		if (!err)
			err = buf_add_str(b, "</a></td>");
		if (!err)
			err = cell(b, "owner", od[i]->owner);
		if (!err)
			err = cell(b, "leader", od[i]->leader);
		if (!err)
			err = cell(b, "deadline", od[i]->deadline);
		if (!err)
			err = buf_addf(b, "<td class=\"n days\"><span class=\"red\">%lld 天</span></td>"
					  "<td class=\"n\">%lld%%</td></tr>\n",
				       (long long)-od[i]->flags.days_left, (long long)od[i]->progress);
	}
	if (!err && k == 0)
		err = buf_add_str(b, "<tr><td colspan=\"7\">没有逾期任务</td></tr>");
	if (!err)
		err = buf_add_str(b, "</tbody></table></section>\n");
	free(od);
	return err;
}

static int all_tasks_table(struct buf *b, const struct report *rep)
{
	size_t n;
	const struct report_row *rows = report_rows(rep, &n);
	int err = buf_add_str(b, "<section><h2>全部任务</h2><table id=\"tasks\"><thead><tr>"
				 "<th>村</th><th>问题来源</th><th>整改任务</th><th>责任人</th>"
				 "<th>完成时限</th><th>状态</th><th>进度</th><th>预警</th></tr></thead>"
				 "<tbody>\n");
	for (size_t i = 0; i < n && !err; i++) {
		const struct report_row *x = &rows[i];
		const char *w = x->flags.warning ? x->flags.warning : "none";
		err = buf_add_str(b, "<tr><td>");
		if (!err)
			err = html(b, x->village);
		if (!err)
			err = buf_add_str(b, "</td>");
		if (!err)
			err = cell(b, "source", x->source_label);
		if (!err)
			err = buf_add_str(b, "<td><a class=\"task\" href=\"/task/");
		if (!err)
			err = html(b, x->id);
		if (!err)
			err = buf_add_str(b, "\">");
		if (!err)
			err = html(b, x->measures[0] ? x->measures : x->id);
		if (!err)
			err = buf_add_str(b, "</a></td>");
		if (!err)
			err = cell(b, "owner", x->owner);
		if (!err)
			err = cell(b, "deadline", x->deadline);
		if (!err)
			err = cell(b, "status", x->status_label);
		if (!err)
			err = buf_addf(b, "<td class=\"n\">%lld%%</td>", (long long)x->progress);
		if (!err && strcmp(w, "none") != 0)
			err = buf_addf(b, "<td><span class=\"%s\">%s</span></td></tr>\n", w,
				       strcmp(w, "red") == 0	  ? "红色"
				       : strcmp(w, "yellow") == 0 ? "黄色"
								  : "蓝色");
		else if (!err)
			err = buf_add_str(b, "<td>无</td></tr>\n");
	}
	if (!err)
		err = buf_add_str(b, "</tbody></table></section>\n");
	return err;
}

static int build_report(struct dash *d, struct report **rep)
{
	struct report_options o;
	memset(&o, 0, sizeof o);
	return report_build(d->db, &o, rep);
}

static int h_overview(struct httpd_req *r, void *arg)
{
	struct dash *d = arg;
	char user[DASHAUTH_NAME_MAX + 1], title[256], gen[40];
	struct report *rep = NULL;
	struct buf b;
	int err;

	if (!authorise(d, r, 0, user, &err))
		return err;
	buf_init(&b, PAGE_MAX);
	err = build_report(d, &rep);
	if (err)
		goto out;
	snprintf(title, sizeof title, "%s 整改情况看板", report_site_name(rep));
	fmt_time(report_generated_ms(rep), gen, sizeof gen);
	err = page_start(&b, title, user);
	if (!err)
		err = buf_addf(&b, "<p>截至 %s（数据生成于 %s）。完成率 = 已销号 ÷（任务总数 − 已撤销）；"
				   "超过 %lld 天未同步的村标为“久未同步”。"
				   " <a id=\"xlsx\" href=\"/report.xlsx\">下载 Excel 台账</a>"
				   " · <a id=\"csv\" href=\"/v1/report.csv\">下载 CSV</a></p>\n",
			       report_today(rep), gen, (long long)report_silent_days(rep));
	if (!err)
		err = group_table(&b, rep, REPORT_PART_VILLAGE, "by-village");
	if (!err)
		err = overdue_table(&b, rep);
	if (!err)
		err = group_table(&b, rep, REPORT_PART_SOURCE, "by-source");
	if (!err)
		err = all_tasks_table(&b, rep);
	if (!err)
		err = reply_page(r, 200, &b);
out:
	report_free(rep);
	buf_free(&b);
	return err;
}

/* ---- task page ---- */

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static int kv_row(struct buf *b, const char *label, const char *v)
{
	int err = buf_add_str(b, "<tr><th>");
	if (!err)
		err = html(b, label);
	if (!err)
		err = buf_add_str(b, "</th><td>");
	if (!err)
		err = html(b, v);
	if (!err)
		err = buf_add_str(b, "</td></tr>\n");
	return err;
}

/* A list of JSON objects as a table: one column per given key. */
static int json_table(struct buf *b, const char *title, const char *id, json_t *arr,
		      const char *const *keys, const char *const *heads, size_t ncols)
{
	size_t i;
	json_t *o;
	int err = buf_addf(b, "<section><h2>%s（%zu）</h2><table id=\"%s\"><thead><tr>", title,
			   json_array_size(arr), id);
	for (size_t c = 0; c < ncols && !err; c++)
		err = buf_addf(b, "<th>%s</th>", heads[c]);
	if (!err)
		err = buf_add_str(b, "</tr></thead><tbody>\n");
	json_array_foreach(arr, i, o)
	{
		if (err)
			break;
		err = buf_add_str(b, "<tr>");
		for (size_t c = 0; c < ncols && !err; c++) {
			json_t *v = json_object_get(o, keys[c]);
			char *s = NULL;
			if (json_is_string(v))
				err = cell(b, keys[c], json_string_value(v));
			else if (v && !json_is_null(v)) {
				s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
				err = s ? buf_add_str(b, "<td><pre>") : TLY_E_NOMEM;
				if (!err)
					err = html(b, s);
				if (!err)
					err = buf_add_str(b, "</pre></td>");
				free(s);
			} else
				err = buf_add_str(b, "<td></td>");
		}
		if (!err)
			err = buf_add_str(b, "</tr>\n");
	}
	if (!err && json_array_size(arr) == 0)
		err = buf_addf(b, "<tr><td colspan=\"%zu\">无</td></tr>", ncols);
	if (!err)
		err = buf_add_str(b, "</tbody></table></section>\n");
	return err;
}

static int id_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return 0;
	for (; *s; s++) {
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return 0;
	}
	return 1;
}

/* One download link per evidence file. The hash is checked to be 64 hex
 * digits before it goes into an href; the name is escaped like all text. */
static int evidence_links(struct buf *b, json_t *arr)
{
	size_t i;
	json_t *e;
	int err = TLY_OK, any = 0;
	json_array_foreach(arr, i, e)
	{
		const char *h = json_string_value(json_object_get(e, "sha256"));
		const char *name = json_string_value(json_object_get(e, "name"));
		if (err || !h || !blobstore_hex_ok(h))
			continue;
		err = buf_addf(b, "%s <a class=\"evidence\" href=\"/evidence/%s\">",
			       any ? "" : "<p>下载佐证材料：", h);
		if (!err)
			err = html(b, name && *name ? name : h);
		if (!err)
			err = buf_add_str(b, "</a>");
		any = 1;
	}
	if (!err && any)
		err = buf_add_str(b, "</p>\n");
	return err;
}

static int h_task(struct httpd_req *r, void *arg)
{
	struct dash *d = arg;
	char user[DASHAUTH_NAME_MAX + 1], title[256], pct[32];
	const char *id = httpd_req_path(r) + strlen("/task/");
	json_t *t = NULL, *pd;
	struct buf b;
	int err;

	if (!authorise(d, r, 0, user, &err))
		return err;
	buf_init(&b, PAGE_MAX);
	err = id_ok(id) ? views_task_show(d->db, id, &t) : TLY_E_NOT_FOUND;
	if (err == TLY_E_NOT_FOUND) {
		err = page_start(&b, "没有这项任务", user);
		if (!err)
			err = buf_add_str(&b, "<p>没有这项任务。<a href=\"/\">回到总览</a></p>");
		if (!err)
			err = reply_page(r, 404, &b);
		goto out;
	}
	if (err)
		goto out;
	snprintf(title, sizeof title, "整改任务 · %s", jstr(t, "village"));
	snprintf(pct, sizeof pct, "%lld%%", (long long)json_integer_value(json_object_get(t, "progress")));
	pd = json_object_get(t, "problem_detail");
	err = page_start(&b, title, user);
	if (!err)
		err = buf_add_str(&b, "<section><h2>任务</h2><table id=\"task\">");
	if (!err)
		err = kv_row(&b, "村", jstr(t, "village"));
	if (!err)
		err = kv_row(&b, "问题原文", jstr(pd, "text"));
	if (!err)
		err = kv_row(&b, "文号", jstr(pd, "doc_no"));
	if (!err)
		err = kv_row(&b, "整改措施", jstr(t, "measures"));
	if (!err)
		err = kv_row(&b, "整改目标", jstr(t, "target"));
	if (!err)
		err = kv_row(&b, "责任领导", jstr(t, "leader"));
	if (!err)
		err = kv_row(&b, "责任人", jstr(t, "owner"));
	if (!err)
		err = kv_row(&b, "完成时限", jstr(t, "deadline"));
	if (!err)
		err = kv_row(&b, "状态", jstr(t, "status_label"));
	if (!err)
		err = kv_row(&b, "进度", pct);
	if (!err)
		err = buf_add_str(&b, "</table></section>\n");
	static const char *const pk[] = {"date", "percent", "note", "author", "reason"};
	static const char *const ph[] = {"日期", "进度", "进展情况", "填报", "说明"};
	static const char *const ek[] = {"name", "sha256", "size", "attested_by", "created_ms"};
	static const char *const eh[] = {"文件", "SHA-256", "大小", "证明人", "时间"};
	static const char *const rk[] = {"kind", "decision", "opinion", "reviewer", "date"};
	static const char *const rh[] = {"类型", "结论", "意见", "审核人", "日期"};
	static const char *const hk[] = {"time", "site", "state", "fields", "reject_reason"};
	static const char *const hh[] = {"时间", "站点", "状态", "修改内容", "拒绝原因"};
	static const char *const ck[] = {"field", "winner_value", "winner_time", "loser_value",
					 "loser_time"};
	static const char *const ch[] = {"字段", "采用的值", "时间", "被覆盖的值", "时间"};
	if (!err)
		err = json_table(&b, "整改进展", "progress", json_object_get(t, "progress_entries"),
				 pk, ph, 5);
	if (!err)
		err = json_table(&b, "佐证材料", "evidence", json_object_get(t, "evidence"), ek, eh,
				 5);
	if (!err)
		err = evidence_links(&b, json_object_get(t, "evidence"));
	if (!err)
		err = json_table(&b, "审核记录", "reviews", json_object_get(t, "reviews"), rk, rh, 5);
	if (!err)
		err = json_table(&b, "修改历史", "history", json_object_get(t, "history"), hk, hh, 5);
	if (!err)
		err = json_table(&b, "冲突（被并发修改覆盖的内容）", "conflicts",
				 json_object_get(t, "conflicts"), ck, ch, 5);
	if (!err)
		err = reply_page(r, 200, &b);
out:
	json_decref(t);
	buf_free(&b);
	return err;
}

/* ---- downloads and API ---- */

/* RFC 5987: filename*=UTF-8''percent-encoded, beside an ASCII filename. */
static int disposition(struct httpd_req *r, const char *ascii, const char *utf8)
{
	char v[512];
	size_t n = (size_t)snprintf(v, sizeof v, "attachment; filename=\"%s\"; filename*=UTF-8''",
				    ascii);
	for (const unsigned char *p = (const unsigned char *)utf8; *p && n + 4 < sizeof v; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p))
			v[n++] = (char)*p;
		else
			n += (size_t)snprintf(v + n, sizeof v - n, "%%%02X", *p);
	}
	v[n] = '\0';
	return httpd_add_header(r, "Content-Disposition", v);
}

static void compact_date(const char *ymd, char out[9])
{
	size_t k = 0;
	for (const char *p = ymd; *p && k < 8; p++) {
		if (*p >= '0' && *p <= '9')
			out[k++] = *p;
	}
	out[k] = '\0';
}

static int read_file(const char *path, struct buf *out)
{
	char chunk[65536];
	size_t n;
	int err = TLY_OK;
	FILE *f = fopen(path, "rb");
	if (!f)
		return TLY_E_IO;
	while (!err && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		err = buf_add(out, chunk, n);
	if (!err && ferror(f))
		err = TLY_E_IO;
	fclose(f);
	return err;
}

/*
 * GET /evidence/HASH: the township reads a village's evidence file. It is
 * copied out through blobstore_copy_out, which checks the SHA-256 on the
 * way, so a damaged stored file is refused rather than served; a file the
 * server does not hold complete is 404 (partial uploads live elsewhere and
 * are never served).
 */
static int h_evidence(struct httpd_req *r, void *arg)
{
	struct dash *d = arg;
	char user[DASHAUTH_NAME_MAX + 1], tmp[] = "/tmp/tally-evidence-XXXXXX", name[96];
	const char *hex = httpd_req_path(r) + strlen("/evidence/");
	struct buf b, why;
	int fd = -1, err;

	if (!authorise(d, r, 0, user, &err))
		return err;
	if (!blobstore_hex_ok(hex))
		return httpd_reply_error(r, 404, TLY_E_NOT_FOUND, NULL);
	buf_init(&b, (size_t)BLOBSTORE_MAX_FILE_DEFAULT * 4);
	buf_init(&why, 1024);
	fd = mkstemp(tmp);
	if (fd < 0) {
		err = TLY_E_IO;
		goto out;
	}
	err = blobstore_copy_out(d->db, hex, tmp, &why);
	if (!err)
		err = read_file(tmp, &b);
	if (err == TLY_E_NOT_FOUND) {
		err = httpd_reply_error(r, 404, TLY_E_NOT_FOUND, NULL);
		goto out;
	}
	if (err)
		goto out;
	snprintf(name, sizeof name, "evidence-%.12s", hex);
	err = disposition(r, name, name);
	if (!err)
		err = httpd_reply(r, 200, "application/octet-stream", b.data, b.len);
out:
	if (err && why.len)
		log_event(LOG_LEVEL_ERROR, "dash_evidence_failed", "code=%s detail=%s",
			  error_name(err), why.data);
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	buf_free(&b);
	buf_free(&why);
	return err;
}

static int h_xlsx(struct httpd_req *r, void *arg)
{
	struct dash *d = arg;
	char user[DASHAUTH_NAME_MAX + 1], tmp[] = "/tmp/tally-dash-XXXXXX.xlsx", ymd[9];
	char ascii[64], zh[128];
	struct report *rep = NULL;
	struct buf b, why;
	int fd = -1, err;

	if (!authorise(d, r, 0, user, &err))
		return err;
	buf_init(&b, XLSX_MAX);
	buf_init(&why, 1024);
	err = build_report(d, &rep);
	if (err)
		goto out;
	/* libxlsxwriter writes by path, so the file goes through a private
	 * temporary (0600, removed before we answer). */
	fd = mkstemps(tmp, 5);
	if (fd < 0) {
		err = TLY_E_IO;
		goto out;
	}
	err = report_xlsx_write(rep, tmp, &why);
	if (!err)
		err = read_file(tmp, &b);
	if (err)
		goto out;
	compact_date(report_today(rep), ymd);
	snprintf(ascii, sizeof ascii, "tally-report-%s.xlsx", ymd);
	snprintf(zh, sizeof zh, "整改台账（汇总）%s.xlsx", ymd);
	err = disposition(r, ascii, zh);
	if (!err)
		err = httpd_reply(r, 200,
				  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
				  b.data, b.len);
out:
	if (err && why.len)
		log_event(LOG_LEVEL_ERROR, "dash_xlsx_failed", "code=%s detail=%s", error_name(err),
			  why.data);
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	report_free(rep);
	buf_free(&b);
	buf_free(&why);
	return err;
}

/* by=... from the query string, as tally report --by. */
static int parts_of(const char *query, unsigned *parts)
{
	static const struct {
		const char *name;
		unsigned parts;
	} t[] = {{"village", REPORT_PART_VILLAGE}, {"source", REPORT_PART_SOURCE},
		 {"summary", REPORT_PART_SUMMARY}, {"ledger", REPORT_PART_LEDGER},
		 {"all", REPORT_PART_ALL}};
	*parts = REPORT_PART_ALL;
	for (const char *p = query; p && *p; p = strchr(p, '&'), p = p ? p + 1 : NULL) {
		if (strncmp(p, "by=", 3) != 0)
			continue;
		size_t n = strcspn(p + 3, "&");
		for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
			if (strlen(t[i].name) == n && strncmp(p + 3, t[i].name, n) == 0) {
				*parts = t[i].parts;
				return TLY_OK;
			}
		}
		return TLY_E_BAD_VALUE;
	}
	return TLY_OK;
}

static int h_report_json(struct httpd_req *r, void *arg)
{
	struct dash *d = arg;
	char user[DASHAUTH_NAME_MAX + 1];
	struct report *rep = NULL;
	json_t *j = NULL;
	char *s = NULL;
	unsigned parts;
	int err;

	if (!authorise(d, r, 1, user, &err))
		return err;
	if (parts_of(httpd_req_query(r), &parts))
		return httpd_reply_error(r, 400, TLY_E_BAD_VALUE,
					 "by 只能是 village、source、summary、ledger 或 all");
	err = build_report(d, &rep);
	if (!err) {
		j = report_json(rep, parts);
		s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
		err = s ? TLY_OK : TLY_E_NOMEM;
	}
	if (!err)
		err = httpd_reply_json(r, 200, s, strlen(s));
	free(s);
	json_decref(j);
	report_free(rep);
	return err;
}

static int h_report_csv(struct httpd_req *r, void *arg)
{
	struct dash *d = arg;
	char user[DASHAUTH_NAME_MAX + 1], ymd[9], ascii[64], zh[128];
	struct report *rep = NULL;
	char *data = NULL;
	size_t len = 0;
	unsigned parts;
	FILE *f = NULL;
	int err;

	if (!authorise(d, r, 1, user, &err))
		return err;
	if (parts_of(httpd_req_query(r), &parts))
		return httpd_reply_error(r, 400, TLY_E_BAD_VALUE,
					 "by 只能是 village、source、summary、ledger 或 all");
	err = build_report(d, &rep);
	if (err)
		goto out;
	f = open_memstream(&data, &len);
	if (!f) {
		err = TLY_E_NOMEM;
		goto out;
	}
	err = report_csv_write(rep, parts, f);
	if (fclose(f) != 0 && !err)
		err = TLY_E_NOMEM;
	if (err)
		goto out;
	compact_date(report_today(rep), ymd);
	snprintf(ascii, sizeof ascii, "tally-report-%s.csv", ymd);
	snprintf(zh, sizeof zh, "整改台账（汇总）%s.csv", ymd);
	err = disposition(r, ascii, zh);
	if (!err)
		err = httpd_reply(r, 200, "text/csv; charset=utf-8", data, len);
out:
	free(data);
	report_free(rep);
	return err;
}

/* ---- setup ---- */

int dash_new(struct syncsrv *ss, struct dash **out)
{
	struct dash *d = calloc(1, sizeof *d);
	int err;
	*out = NULL;
	if (!d)
		return TLY_E_NOMEM;
	d->ss = ss;
	d->db = syncsrv_db(ss);
	err = ratelimit_new(DASH_LOGIN_PER_MINUTE, DASH_LOGIN_BURST, 4096, &d->login_rl);
	if (err) {
		free(d);
		return err;
	}
	*out = d;
	return TLY_OK;
}

int dash_add_routes(struct dash *d, struct httpd *h)
{
	const struct httpd_route routes[] = {
		{"GET", "/login", 0, HTTPD_PUBLIC, 0, h_login_get, d},
		{"POST", "/login", 0, HTTPD_PUBLIC, FORM_MAX, h_login_post, d},
		{"POST", "/logout", 0, HTTPD_PUBLIC, FORM_MAX, h_logout, d},
		{"GET", "/dash.css", 0, HTTPD_PUBLIC, 0, h_css, d},
		{"GET", "/", 0, HTTPD_PUBLIC, 0, h_overview, d},
		{"GET", "/task/", 1, HTTPD_PUBLIC, 0, h_task, d},
		{"GET", "/report.xlsx", 0, HTTPD_PUBLIC, 0, h_xlsx, d},
		{"GET", "/evidence/", 1, HTTPD_PUBLIC, 0, h_evidence, d},
		{"GET", "/v1/report", 0, HTTPD_PUBLIC, 0, h_report_json, d},
		{"GET", "/v1/report.csv", 0, HTTPD_PUBLIC, 0, h_report_csv, d},
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		int err = httpd_add_route(h, &routes[i]);
		if (err)
			return err;
	}
	return TLY_OK;
}

void dash_free(struct dash *d)
{
	if (!d)
		return;
	ratelimit_free(d->login_rl);
	free(d);
}
