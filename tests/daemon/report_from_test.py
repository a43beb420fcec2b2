#!/usr/bin/env python3
"""`tally report --from URL` against a real `tallyd serve` (real TLS on
loopback): a township user's token fetches JSON, CSV and .xlsx equal to
what `tally report` writes on the server's own database, and the same
text tables; a wrong pin, a village device token, a bad token, an
unreachable server and bad flags are refused with nothing written; an
output directory keeps earlier days' files.

    report_from_test.py [CASE...]      (TALLY_BINARY_DIR = the build tree)
"""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tallytest import Failure, check, main  # noqa: E402
from sync_test import Township, Village, q, run, env_with, TALLY  # noqa: E402

XLSX_NAME = re.compile(r"^整改台账（汇总）\d{8}\.xlsx$")
# A well-formed pin that is not the server's key.
WRONG_PIN = "sha256//" + "A" * 43 + "="

# Reads a workbook's cells with Debian's openpyxl (the build's python3 may
# be another one without it).
DUMP_XLSX = r"""
import json, sys, openpyxl
wb = openpyxl.load_workbook(sys.argv[1], read_only=True)
out = {}
for ws in wb.worksheets:
    out[ws.title] = [[None if v is None else str(v) for v in row]
                     for row in ws.iter_rows(values_only=True)]
print(json.dumps(out, ensure_ascii=False))
"""


def xlsx_cells(path):
    p = subprocess.run(["/usr/bin/python3", "-c", DUMP_XLSX, path], capture_output=True,
                       timeout=60)
    check(p.returncode == 0, "openpyxl opens %s: %s" % (path, p.stderr.decode()[-500:]))
    return json.loads(p.stdout.decode())


class World:
    def __init__(self, tmp):
        self.tmp = tmp
        self.t = Township(tmp, name="青山镇")
        self.t.start()
        self.vids = []
        self.villages = []
        for name, key in [("王家村", "wang"), ("李家村", "li")]:
            vid = self.t.village(name)
            self.vids.append(vid)
            v = Village(tmp, self.t, vid, name=key)
            self.villages.append(v)
        # Tasks of several kinds: overdue, in progress, on time.
        v = self.villages[0]
        ids = v.add_tasks(3)
        p = v.tally("problem", "add", "--source", "self_check", "--text",
                    "再次自查，含逗号,和\"引号\"").stdout.decode().strip()
        late = v.tally("task", "add", "--problem", p, "--measures", "逾期的整改\n第二行",
                       "--owner", "张三", "--leader", "王书记",
                       "--deadline", "2020-01-01").stdout.decode().strip()
        v.tally("progress", ids[0], "--percent", "40", "--note", "完成一部分")
        v.tally("progress", late, "--percent", "10", "--note", "刚开始")
        check(v.sync()["ok"], "wang synced")
        w = self.villages[1]
        w.add_tasks(2)
        check(w.sync()["ok"], "li synced")
        self.device_token = q(v.db, "SELECT value FROM settings WHERE key = 'sync_token'")[0][0]
        self.user_token = self.t.tally("user", "add", "脚本").stdout.decode().split()[0]
        check(self.user_token.startswith("u."), "user token: %r" % self.user_token)
        self.token_file = os.path.join(tmp, "token")
        with open(self.token_file, "w") as f:
            f.write(self.user_token + "\n")

    def local(self, *args, env=None):
        """`tally report` on the server's database, as the server machine runs it."""
        return run([TALLY, "--db", self.t.db, "report"] + list(args), env=env)

    def remote(self, *args, env=None, ok=(0,), pin=True, token=True):
        """`tally report --from` with no local database at all."""
        a = [TALLY, "--db", os.path.join(self.tmp, "no-such.db"), "report", "--from",
             self.t.url()]
        if pin:
            a += ["--pin", self.t.pin]
        if token:
            a += ["--token-file", self.token_file]
        return run(a + list(args), env=env, ok=ok)

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


def no_generated_at(text):
    """JSON text without its generated_at line (the only field that is
    the moment of the run, not the data)."""
    lines = text.split("\n")
    kept = [ln for ln in lines if not ln.lstrip().startswith('"generated_at"')]
    check(len(kept) == len(lines) - 1, "exactly one generated_at line")
    return "\n".join(kept)


def listing(d):
    return sorted(os.listdir(d))


def formats_match(w):
    out = os.path.join(w.tmp, "out")
    os.mkdir(out)
    # JSON, every --by, on stdout.
    for by in ["village", "source", "summary", "ledger", "all"]:
        a = w.local("--format", "json", "--by", by).stdout.decode()
        b = w.remote("--format", "json", "--by", by).stdout.decode()
        check(no_generated_at(a) == no_generated_at(b),
              "json --by %s equal:\n%s\n----\n%s" % (by, a[:3000], b[:3000]))
        check(json.loads(b)["today"] and b.endswith("}\n"), "json ends like local")
    data = json.loads(w.remote("--format", "json").stdout.decode())
    check(len(data["ledger"]) == 6 and len(data["by_village"]) == 2,
          "the report has the villages' tasks: %d rows" % len(data["ledger"]))
    # CSV: bytes equal, on stdout and into a file.
    for by in ["village", "ledger", "all"]:
        a = w.local("--format", "csv", "--by", by).stdout
        b = w.remote("--format", "csv", "--by", by).stdout
        check(a == b and b.startswith(b"\xef\xbb\xbf"), "csv --by %s equal" % by)
    w.remote("--format", "csv", "-o", os.path.join(out, "r.csv"))
    with open(os.path.join(out, "r.csv"), "rb") as f:
        check(f.read() == w.local("--format", "csv").stdout, "csv file equal")
    # JSON into a directory: the default name.
    p = w.remote("--format", "json", "-o", out)
    path = p.stdout.decode().strip()
    check(re.search(r"/整改台账（汇总）\d{8}\.json$", path) and os.path.isfile(path),
          "json default name: %r" % path)
    # xlsx: the default name in the directory, the same cells as local.
    xdir = os.path.join(w.tmp, "xlsx")
    ldir = os.path.join(w.tmp, "xlsx-local")
    os.mkdir(xdir)
    os.mkdir(ldir)
    w.remote("--format", "xlsx", "-o", xdir)
    w.local("--format", "xlsx", "-o", ldir)
    names = listing(xdir)
    check(len(names) == 1 and XLSX_NAME.match(names[0]) and names == listing(ldir),
          "xlsx default name: %r vs %r" % (names, listing(ldir)))
    rc = xlsx_cells(os.path.join(xdir, names[0]))
    lc = xlsx_cells(os.path.join(ldir, names[0]))
    check(set(rc) == {"汇总", "台账"} and len(rc["台账"]) == 7, "sheets: %r" % list(rc))
    check(rc == lc, "xlsx cells equal")
    # Text: the same tables as local, for the default and for each --by.
    for by in [None, "village", "source", "ledger", "all"]:
        extra = ["--by", by] if by else []
        a = w.local(*extra).stdout.decode()
        b = w.remote(*extra).stdout.decode()
        check(("按村汇总" in a) == (by in (None, "village", "all")), "text %s tables" % by)
        check(a == b, "text %s equal:\n%s\n----\n%s" % (by, a, b))
    # --token and TALLY_TOKEN work like --token-file.
    a = w.remote("--format", "csv", token=False, env=env_with(TALLY_TOKEN=w.user_token)).stdout
    b = w.remote("--format", "csv", "--token", w.user_token, token=False).stdout
    check(a == b == w.local("--format", "csv").stdout, "TALLY_TOKEN and --token")


def refused(w):
    out = os.path.join(w.tmp, "out")
    os.mkdir(out)
    base = ["--format", "xlsx", "-o", out]

    def refused_with(code, status, *args, **kw):
        p = w.remote(*args, ok=None, **kw)
        err = p.stderr.decode()
        check(p.returncode == status and "(%s)" % code in err,
              "%r: exit %d, want %d %s: %s" % (args, p.returncode, status, code, err))
        check(listing(out) == [], "nothing written after %r: %r" % (args, listing(out)))
        return err

    # Wrong pin: the server's key is not the one asked for.
    refused_with("pin_mismatch", 1, *base, "--pin", WRONG_PIN, pin=False)
    # A village device's token may sync, not read the township's report.
    for fmt in ["xlsx", "csv", "json", "text"]:
        err = refused_with("forbidden", 2, "--format", fmt, "-o", out, "--token",
                           w.device_token, token=False)
        check("村设备凭证" in err, "the server's message: %s" % err)
    for fmt in ["xlsx", "csv"]:
        refused_with("unauthorized", 1, "--format", fmt, "-o", out, "--token",
                     "u.nobody.secret", token=False)
    # Nothing listens there.
    p = w.remote(*base, ok=None, pin=False, token=False,
                 env=env_with(TALLY_TOKEN=w.user_token))
    check(p.returncode == 2, "no pin: usage")
    dead = ["--from", "https://127.0.0.1:1", "--pin", w.t.pin]
    p = run([TALLY, "report", *dead, "--token", w.user_token] + base, ok=None)
    check(p.returncode == 1 and "(network)" in p.stderr.decode() and listing(out) == [],
          "unreachable: %d %s" % (p.returncode, p.stderr.decode()))
    # Bad flags: exit 2 before any network or file action.
    refused_with("usage", 2, "--format", "pdf", "-o", out)
    refused_with("usage", 2, "--format", "xlsx", "--by", "village", "-o", out)
    refused_with("usage", 2, "--stale-days", "3", "-o", out)
    refused_with("usage", 2, *base, "--token", w.user_token)  # with --token-file too
    refused_with("usage", 2, *base, token=False, env=env_with(TALLY_TOKEN=""))
    refused_with("usage", 2, *base, "--pin", "md5//abc", pin=False)
    refused_with("not_found", 2, "--format", "csv", "-o", os.path.join(out, "no/such/"))
    p = run([TALLY, "--db", w.t.db, "report", "--pin", w.t.pin, "-o", out], ok=None)
    check(p.returncode == 2 and "(usage)" in p.stderr.decode() and listing(out) == [],
          "--pin without --from: %s" % p.stderr.decode())
    p = run([TALLY, "report", "--from", "http://127.0.0.1:%d" % w.t.port, "--pin", w.t.pin,
             "--token", w.user_token] + base, ok=None)
    check(p.returncode == 2 and "(usage)" in p.stderr.decode() and listing(out) == [],
          "http:// refused: %s" % p.stderr.decode())
    # The server saw a village token refused, and no report was fetched for it.
    check("dash_forbidden" in w.t.logtext(), "server logged the refusal")


def keeps_earlier(w):
    out = os.path.join(w.tmp, "weekly")
    os.mkdir(out)
    w.remote("--format", "xlsx", "-o", out, env=env_with(TALLY_TODAY="2024-03-04"))
    first = os.path.join(out, "整改台账（汇总）20240304.xlsx")
    with open(first, "rb") as f:
        before = f.read()
    w.remote("--format", "xlsx", "-o", out, env=env_with(TALLY_TODAY="2024-03-11"))
    w.remote("--format", "csv", "-o", out, env=env_with(TALLY_TODAY="2024-03-11"))
    check(listing(out) == ["整改台账（汇总）20240304.xlsx", "整改台账（汇总）20240311.csv",
                           "整改台账（汇总）20240311.xlsx"], "files: %r" % listing(out))
    with open(first, "rb") as f:
        check(f.read() == before, "the earlier file is untouched")
    # The same day again replaces that day's file, leaving no temp file.
    w.remote("--format", "xlsx", "-o", out, env=env_with(TALLY_TODAY="2024-03-11"))
    check(len(listing(out)) == 3, "no temporary left: %r" % listing(out))
    check(xlsx_cells(os.path.join(out, "整改台账（汇总）20240311.xlsx"))["台账"][1:] != [],
          "ledger rows in the scheduled file")


CASES = {
    "formats_match": with_world(formats_match),
    "refused": with_world(refused),
    "keeps_earlier": with_world(keeps_earlier),
}

if __name__ == "__main__":
    main(CASES)
