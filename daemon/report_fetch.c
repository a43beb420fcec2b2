/*
 * report_fetch — a report from a township server over HTTPS (see
 * report_fetch.h).
 */
#include <string.h>

#include "client/why.h"
#include "daemon/httpc.h"
#include "daemon/report_fetch.h"
#include "protocol/error.h"

/* A report of 50,000 rows takes seconds to build on the server; a slow
 * township link gets minutes, not the sync default's 60 s. */
#define FETCH_TOTAL_TIMEOUT_MS (10u * 60 * 1000)

#define URL_CAP 1024

int report_fetch_get(const struct report_fetch_options *o, const char *path, const char *accept,
		     struct buf *out, struct buf *why)
{
	struct httpc_options ho;
	struct httpc *c = NULL;
	struct httpc_request req;
	struct httpc_response res;
	char url[URL_CAP];
	const char *base = url;
	int err;

	memset(&res, 0, sizeof res);
	size_t n = strlen(o->url);
	if (n == 0 || n >= sizeof url) {
		why_set(why, "--from 要给乡镇服务器地址，例如 https://192.168.1.10:8443");
		return TLY_E_USAGE;
	}
	/* httpc appends the path to the base URL: a trailing '/' would double it. */
	memcpy(url, o->url, n + 1);
	while (n > 0 && url[n - 1] == '/')
		url[--n] = '\0';
	if (strncmp(url, "https://", 8) != 0 || strchr(url + 8, '/') || !url[8]) {
		why_set(why, "--from 只能是 https://主机[:端口]，收到的是“%s”", o->url);
		return TLY_E_USAGE;
	}
	httpc_options_default(&ho);
	ho.base_urls = &base;
	ho.n_base_urls = 1;
	ho.pin = o->pin;
	ho.ca_file = o->ca_file;
	ho.total_timeout_ms = FETCH_TOTAL_TIMEOUT_MS;
	ho.max_response_bytes = REPORT_FETCH_MAX_BYTES;
	ho.max_inflated_bytes = REPORT_FETCH_MAX_BYTES;
	ho.user_agent = "tally-report";
	err = httpc_new(&ho, &c);
	if (err) {
		why_set(why, "--pin 或 --ca 不对（--pin 形如 sha256//...，见 docs/server.md）");
		return err;
	}
	memset(&req, 0, sizeof req);
	req.method = "GET";
	req.path = path;
	req.token = o->token;
	err = httpc_send_accept(c, &req, accept, &res);
	if (err == TLY_OK) {
		buf_reset(out);
		err = buf_add(out, res.body.data, res.body.len);
		goto out;
	}
	if (err == TLY_E_HTTP_STATUS) {
		if (res.remote_code != TLY_OK) {
			err = res.remote_code;
			why_set(why, "%s（服务器 %s：HTTP %ld %s）", error_text_zh(err), url,
				res.status, res.remote_message ? res.remote_message : "");
		} else if (res.status == 401 || (res.status >= 300 && res.status < 400)) {
			/* /report.xlsx sends a browser without a session to /login. */
			err = TLY_E_UNAUTHORIZED;
			why_set(why, "乡镇服务器 %s 不接受这个凭证（HTTP %ld），请用 tally user add "
				     "建立的乡镇用户凭证",
				url, res.status);
		} else if (res.status == 403) {
			err = TLY_E_FORBIDDEN;
			why_set(why, "乡镇服务器 %s 拒绝了这个凭证（HTTP 403）", url);
		} else {
			why_set(why, "乡镇服务器 %s 的回答不对：HTTP %ld，%s", url, res.status,
				res.content_type[0] ? res.content_type : "没有内容类型");
		}
		goto out;
	}
	if (err == TLY_E_PIN)
		why_set(why, "乡镇服务器 %s 的公钥与 --pin 不符，可能连到了别的机器，报表没有下载",
			url);
	else
		why_set(why, "%s：%s（%s）", error_text_zh(err), url, res.detail);
out:
	httpc_response_clear(&res);
	httpc_free(c);
	return err;
}
