#!/usr/bin/env python3
"""The township dashboard on a real `tallyd serve` (real TLS, loopback):
every report and dashboard route refused without credentials and with a
village device's token, login (wrong password refused, rate limited,
cookie flags), the overview's numbers against `tally report --json`, the
Excel download, XSS-proof escaping of village text, the task page.

    dash_test.py [CASE...]      (TALLY_BINARY_DIR = the build tree)
"""
import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tallytest import Failure, check, main  # noqa: E402
from sync_test import Township, Village, q, run, TALLY  # noqa: E402

PASSWORD = "正确的密码-Secret-42"
XSS = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>"

# (method, path, kind): "page" answers 303 to /login, "api" 401 JSON.
ROUTES = [
    ("GET", "/", "page"),
    ("GET", "/task/0123456789abcdef", "page"),
    ("GET", "/report.xlsx", "page"),
    ("GET", "/evidence/" + "0" * 64, "page"),
    ("GET", "/v1/report", "api"),
    ("GET", "/v1/report?by=village", "api"),
    ("GET", "/v1/report?by=source", "api"),
    ("GET", "/v1/report?by=ledger", "api"),
    ("GET", "/v1/report.csv", "api"),
]


class World:
    def __init__(self, tmp):
        self.t = Township(tmp, name="青山镇")
        self.t.start()
        self.vid = self.t.village("王家村")
        self.v = Village(tmp, self.t, self.vid, name="wang")
        p = self.v.tally("problem", "add", "--source", "self_check", "--text",
                         "自查问题" + XSS).stdout.decode().strip()
        self.task = self.v.tally("task", "add", "--problem", p, "--measures", "整改" + XSS,
                                 "--owner", "李'明\"", "--leader", "王书记", "--deadline",
                                 "2020-01-01").stdout.decode().strip()
        self.v.tally("progress", self.task, "--percent", "30", "--note", "进展" + XSS)
        r = self.v.sync()
        check(r["ok"], "village synced: %r" % r)
        self.device_token = q(self.v.db, "SELECT value FROM settings WHERE key = 'sync_token'")[0][0]
        self.user_token = self.t.tally("user", "add", "脚本").stdout.decode().split()[0]
        p = subprocess.run([TALLY, "--db", self.t.db, "user", "passwd", "乡镇干部"],
                           input=(PASSWORD + "\n" + PASSWORD + "\n").encode(),
                           capture_output=True, timeout=60)
        check(p.returncode == 0, "user passwd: %s" % p.stderr.decode())
        self.ctx = ssl.create_default_context(cafile=self.t.db + ".crt")

    def req(self, method, path, body=None, headers=None):
        c = http.client.HTTPSConnection("127.0.0.1", self.t.port, context=self.ctx, timeout=30)
        try:
            h = dict(headers or {})
            if body is not None and "Content-Type" not in h:
                h["Content-Type"] = "application/x-www-form-urlencoded"
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def login(self, user="乡镇干部", password=PASSWORD):
        body = urllib.parse.urlencode({"user": user, "password": password})
        return self.req("POST", "/login", body)

    def session(self):
        st, h, _ = self.login()
        check(st == 303, "login answers 303, got %d" % st)
        return h["set-cookie"].split(";")[0]

    def stop(self):
        self.t.stop()


def with_world(fn):
    def case():
        with tempfile.TemporaryDirectory() as tmp:
            w = World(tmp)
            try:
                fn(w)
            finally:
                w.stop()
    return case


def refused(w):
    bad_cookie = "tally_session=" + "ab" * 32
    for method, path, kind in ROUTES:
        for name, headers in [("none", {}), ("bad cookie", {"Cookie": bad_cookie}),
                              ("bad token", {"Authorization": "Bearer u.x.y"})]:
            st, h, body = w.req(method, path, headers=headers)
            if kind == "page":
                check(st == 303 and h.get("location") == "/login",
                      "%s %s (%s): %d %r" % (method, path, name, st, h.get("location")))
            else:
                check(st == 401 and json.loads(body)["code"] == "unauthorized",
                      "%s %s (%s): %d %r" % (method, path, name, st, body[:200]))
        st, _, body = w.req(method, path, headers={"Authorization": "Bearer " + w.device_token})
        check(st == 403 and json.loads(body)["code"] == "forbidden",
              "%s %s with a village device token: %d %r" % (method, path, st, body[:200]))
        # The same route opens to a township user: the refusals above are
        # about the credential, not a route that never answers.
        st, _, _ = w.req(method, path, headers={"Authorization": "Bearer " + w.user_token})
        want = 404 if path.startswith(("/task/", "/evidence/")) else 200
        check(st == want, "%s %s with a township user token: %d" % (method, path, st))


def login_and_cookie(w):
    st, h, body = w.login(password="wrong password")
    check(st == 401 and "set-cookie" not in h and "用户名或密码错误" in body.decode(),
          "wrong password refused: %d %r" % (st, h))
    st, h, _ = w.login(user="没有这个人")
    check(st == 401 and "set-cookie" not in h, "unknown user refused: %d" % st)
    st, h, _ = w.login()
    check(st == 303 and h.get("location") == "/", "right password: %d %r" % (st, h))
    c = h["set-cookie"]
    flags = [f.strip().lower() for f in c.split(";")[1:]]
    for f in ["secure", "httponly", "samesite=strict", "path=/"]:
        check(f in flags, "cookie flag %s in %r" % (f, c))
    check(re.match(r"tally_session=[0-9a-f]{64};", c), "session id: 32 random bytes: %r" % c)
    cookie = c.split(";")[0]
    st, h, _ = w.req("GET", "/", headers={"Cookie": cookie})
    check(st == 200, "overview with the session: %d" % st)
    csp = h.get("content-security-policy", "")
    check("default-src 'self'" in csp and "frame-ancestors 'none'" in csp, "CSP: %r" % csp)
    check(h.get("x-content-type-options") == "nosniff", "nosniff")
    # Only a hash of the session is stored.
    sid = cookie.split("=")[1]
    held = [r[0].hex() for r in q(w.t.db, "SELECT id_hash FROM dash_session")]
    check(held and sid not in held, "session stored hashed: %r" % held)
    # A form from another site is refused.
    st, _, _ = w.req("POST", "/login", urllib.parse.urlencode(
        {"user": "乡镇干部", "password": PASSWORD}), headers={"Origin": "https://evil.example"})
    check(st == 403, "cross-site login refused: %d" % st)
    st, h, _ = w.req("POST", "/logout", "", headers={"Cookie": cookie})
    check(st == 303 and "max-age=0" in h.get("set-cookie", "").lower(), "logout: %d" % st)
    st, h, _ = w.req("GET", "/", headers={"Cookie": cookie})
    check(st == 303, "session ended by logout: %d" % st)


def rate_limited(w):
    codes = [w.login(password="wrong-%d" % i)[0] for i in range(8)]
    check(codes[:5] == [401] * 5 and 429 in codes[5:], "limited after 5 tries: %r" % codes)
    st, h, _ = w.login()
    check(st == 429 and int(h.get("retry-after", "0")) >= 1,
          "right password also waits once limited: %d %r" % (st, h.get("retry-after")))
    check("set-cookie" not in h, "no session while limited")


def numbers_match(w):
    cookie = w.session()
    st, _, page = w.req("GET", "/", headers={"Cookie": cookie})
    page = page.decode()
    rep = json.loads(run([TALLY, "--db", w.t.db, "--json", "report"]).stdout.decode())
    for g in rep["by_village"]:
        key = next(v for k, v in g.items() if k in ("village_id", "id", "key"))
        m = re.search(r'<tr data-key="%s">(.*?)</tr>' % re.escape(key), page)
        check(m, "row for village %s in the page" % key)
        cells = dict(re.findall(r'<td class="n (\w+)">(?:<span class="\w+">)?(\d+)', m.group(1)))
        for col in ["tasks", "closed", "submitted", "doing", "todo", "overdue", "red",
                    "yellow", "blue"]:
            check(int(cells[col]) == g[col], "%s %s: page %s, report %s" % (
                key, col, cells[col], g[col]))
    st, _, body = w.req("GET", "/v1/report", headers={"Cookie": cookie})
    api = json.loads(body)
    for k in ("by_village", "by_source", "total", "ledger"):
        check(api[k] == rep[k], "/v1/report %s equals tally report --json" % k)
    st, h, body = w.req("GET", "/report.xlsx", headers={"Cookie": cookie})
    cd = h.get("content-disposition", "")
    check(st == 200 and body[:2] == b"PK", "xlsx download: %d %r" % (st, body[:4]))
    name = urllib.parse.unquote(cd.split("filename*=UTF-8''")[1])
    check(re.fullmatch(r"整改台账（汇总）\d{8}\.xlsx", name), "file name %r" % name)
    st, h, body = w.req("GET", "/v1/report.csv", headers={"Cookie": cookie})
    check(st == 200 and body[:3] == b"\xef\xbb\xbf", "CSV with BOM")


def xss_escaped(w):
    cookie = w.session()
    for path in ["/", "/task/" + w.task]:
        st, _, page = w.req("GET", path, headers={"Cookie": cookie})
        page = page.decode()
        check(st == 200, "%s: %d" % (path, st))
        check("<script" not in page and "<img" not in page and "onerror=alert" not in page
              .replace("onerror=alert(1)&gt;", ""), "%s: village text not escaped" % path)
        check("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&gt;" in page,
              "%s: the text shown escaped" % path)
    st, _, page = w.req("GET", "/task/" + w.task, headers={"Cookie": cookie})
    page = page.decode()
    check("进展" in page and "id=\"history\"" in page and "id=\"evidence\"" in page
          and "id=\"conflicts\"" in page, "task page has progress, history, evidence, conflicts")
    st, _, _ = w.req("GET", "/task/nothex'", headers={"Cookie": cookie})
    check(st == 404, "bad task id: %d" % st)


CASES = {
    "refused": with_world(refused),
    "login_and_cookie": with_world(login_and_cookie),
    "rate_limited": with_world(rate_limited),
    "numbers_match": with_world(numbers_match),
    "xss_escaped": with_world(xss_escaped),
}

if __name__ == "__main__":
    main(CASES)
