#!/usr/bin/env python3
"""`tally report` at the command line, checked against independent counts.

1. A randomised township ledger (4 villages, every status, every source,
   deadlines around today, progress entries written on various days) is
   built through the real `tally` commands with TALLY_TODAY moved per
   command. Device contacts are put into srv_device (the server's table)
   so that villages have several devices, one old contact, or none.
2. Every summary number (by village, by source, total) and every ledger
   row's derived columns are recomputed here with our own SQL over the
   database and Python date arithmetic (not by calling the report code),
   and compared with `tally report --json`.
3. CSV: BOM, CRLF, Python's csv module, 4-byte Chinese round trip, numbers
   equal to the JSON.
4. .xlsx opened with openpyxl: sheet names, frozen panes, every cell equal
   to the CSV (strings, dates as real dates, numbers), warning fills.
5. Default file names, earlier days' files kept, same day replaced, no
   temporary file left behind.
6. Bad input: exit 2, Chinese error, nothing written, database unchanged.
7. A village database: its own village, freshness from sync_state.

Usage: report_test.py PATH_TO_TALLY [SEED]
"""
import csv
import datetime
import hashlib
import io
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import unicodedata

try:
    import openpyxl
except ImportError:
    # Debian's python3-openpyxl lives in the system interpreter; a pyenv or
    # venv python found by CMake does not see it.
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath(
        "/usr/bin/python3"
    ):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("FAIL: python3-openpyxl is not installed (scripts/deps.sh installs it)", file=sys.stderr)
    sys.exit(1)

TALLY = os.path.abspath(sys.argv[1])
SEED = int(sys.argv[2]) if len(sys.argv) > 2 else random.randrange(1 << 30)
TODAY = "2026-03-01"
FAILS = []
CHECKS = 0
SOURCES = ["inspection", "patrol", "audit", "supervision", "self_check"]
SOURCE_ZH = {"inspection": "巡视", "patrol": "巡察", "audit": "审计", "supervision": "督查",
             "self_check": "自查"}
STATUS_ZH = {"todo": "待整改", "doing": "整改中", "submitted": "申请销号", "closed": "已销号",
             "long_term": "长期坚持", "withdrawn": "已撤销"}


def check(cond, what):
    global CHECKS
    CHECKS += 1
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(args, db, today=TODAY, cwd=None):
    env = dict(os.environ)
    env.pop("TALLY_DB", None)
    env["TALLY_TODAY"] = today
    env["TZ"] = "Asia/Shanghai"
    p = subprocess.run([TALLY, "--db", db] + args, capture_output=True, env=env, timeout=120,
                       cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def ok(args, db, today=TODAY, cwd=None):
    rc, out, err = run(args, db, today, cwd)
    if rc != 0:
        raise SystemExit(f"{args!r} exit {rc}: {err.decode(errors='replace')}")
    return out.decode()


def day(s):
    return datetime.date.fromisoformat(s)


def shift(s, n):
    return (day(s) + datetime.timedelta(days=n)).isoformat()


# ---- 1. the ledger ----------------------------------------------------------------------------

def build(tmp, rng):
    db = os.path.join(tmp, "town.db")
    ok(["init", "--role", "township", "--name", "某某镇"], db)
    names = ["王家村", "李家村", "𠀀𡈽村", "张庄"]  # one name with 4-byte characters
    villages = {}
    for n in names:
        villages[n] = ok(["village", "add", "--name", n], db).strip()
    problems = {}
    for s in SOURCES:
        problems[s] = ok(["problem", "add", "--source", s, "--text", f"{SOURCE_ZH[s]}发现的问题，\"原文\"",
                          "--round", "第二轮", "--doc-no", f"镇{s}〔2026〕1号", "--category", "作风",
                          "--manifestations", "表现一\n表现二"], db).strip()
    written = {}  # task -> percent of the last progress entry we wrote
    tasks = []
    for i in range(44):
        v = names[i % len(names)] if i < 40 else names[0]
        src = SOURCES[rng.randrange(len(SOURCES))]
        created = shift(TODAY, -rng.randrange(1, 60))
        deadline = shift(TODAY, rng.randrange(-15, 40))
        if day(deadline) <= day(created):
            deadline = shift(created, rng.randrange(1, 30))
        measures = f"措施{i}：整改, 到位" + ("𠀀" if i % 7 == 0 else "")
        t = ok(["task", "add", "--problem", problems[src], "--village", v, "--measures", measures,
                "--owner", f"责任人{i}", "--leader", "镇长", "--deadline", deadline,
                "--target", "目标", "--root-cause", "根源", "--elsewhere", "举一反三"],
               db, today=created).strip()
        tasks.append(t)
        target = rng.choice(["todo", "doing", "doing", "submitted", "closed", "long_term",
                             "withdrawn"])
        if target == "todo":
            continue
        if target == "withdrawn":
            ok(["task", "update", t, "--status", "withdrawn"], db, today=created)
            continue
        if target == "long_term":
            ok(["task", "update", t, "--status", "long_term"], db, today=created)
        # Progress entries on random days after creation, not in date order,
        # percents rising: stale counts from the latest date, the percent is
        # the last entry written.
        span = (day(TODAY) - day(created)).days
        pct = 0
        for _ in range(rng.randrange(1, 4)):
            pct = min(100, pct + rng.randrange(0, 60))
            when = shift(created, rng.randrange(0, span + 1))
            ok(["progress", t, "--percent", str(pct), "--note", f"第{pct}进展，含\"引号\""], db,
               today=when)
            written[t] = pct
        if target in ("submitted", "closed"):
            ok(["submit", t], db, today=TODAY)
        if target == "closed":
            ok(["review", t, "--approve", "--opinion", "同意"], db, today=TODAY)
    # Device contacts: 王家村 two devices (the later counts), 李家村 one 10
    # days ago (silent with 7), 𠀀𡈽村 one yesterday, 张庄 none.
    t0 = int(datetime.datetime.fromisoformat(TODAY + "T12:00:00+08:00").timestamp() * 1000)
    dayms = 86400000
    contacts = [("d1", villages["王家村"], t0 - 20 * dayms), ("d2", villages["王家村"], t0 - 1 * dayms),
                ("d3", villages["李家村"], t0 - 10 * dayms), ("d4", villages["𠀀𡈽村"], t0 - dayms // 2)]
    c = sqlite3.connect(db)
    for i, (dev, vil, ms) in enumerate(contacts):
        c.execute("INSERT INTO srv_device (id, site, village, name, secret_hash, created_ms, "
                  "last_contact_ms) VALUES (?, ?, ?, ?, zeroblob(32), 0, ?)",
                  (dev, f"s{i}", vil, dev, ms))
    c.commit()
    c.close()
    return db, villages, written


# ---- 2. independent counts --------------------------------------------------------------------

def expected(db, silent_days=7, stale_days=14):
    c = sqlite3.connect(db)
    c.row_factory = sqlite3.Row
    yellow, blue, behind_pts = 10, 20, 20
    today = day(TODAY)
    tasks = {}
    for r in c.execute("SELECT t.id, t.village, t.status, t.deadline, t.created_on, p.source "
                       "FROM task t JOIN problem p ON p.id = t.problem"):
        tasks[r["id"]] = dict(r)
    # Latest entry in merge order: the highest HLC stamp of the entry's
    # percent write, site as tie-break.
    for r in c.execute("SELECT pr.task, pr.percent, pr.date FROM progress pr JOIN field_state f "
                       "ON f.kind = 'progress' AND f.record_id = pr.id AND f.field = 'percent' "
                       "ORDER BY f.stamp, f.site"):
        t = tasks[r["task"]]
        t["percent"] = r["percent"]
        t["latest_date"] = r["date"]
        t["max_date"] = max(t.get("max_date", ""), r["date"])
    names = {r["id"]: r["name"] for r in c.execute("SELECT id, name FROM village")}
    contact = {r[0]: r[1] for r in c.execute(
        "SELECT village, max(last_contact_ms) FROM srv_device GROUP BY village")}
    c.close()
    keys = ["tasks", "closed", "submitted", "doing", "todo", "long_term", "withdrawn", "overdue",
            "red", "yellow", "blue", "stale", "behind"]
    byv = {vid: dict.fromkeys(keys, 0) for vid in names}
    bys = {s: dict.fromkeys(keys, 0) for s in SOURCES}
    total = dict.fromkeys(keys, 0)
    rows = {}
    for tid, t in tasks.items():
        st = t["status"]
        active = st not in ("closed", "withdrawn")
        dl = day(t["deadline"])
        cr = day(t["created_on"])
        left = (dl - today).days
        f = {"overdue": active and left < 0, "stale": False, "behind": False, "warning": "none"}
        if active:
            f["warning"] = ("red" if left < 0 else "yellow" if left <= yellow else
                            "blue" if left <= blue else "none")
            last = day(t["max_date"]) if "max_date" in t else cr
            f["stale"] = (today - last).days >= stale_days
            if dl > cr:
                elapsed = min(max((today - cr).days, 0), (dl - cr).days)
                f["behind"] = 100 * elapsed // (dl - cr).days - t.get("percent", 0) > behind_pts
        rows[tid] = dict(f, percent=t.get("percent", 0), latest_date=t.get("latest_date"),
                         status=st)
        for g in (byv[t["village"]], bys[t["source"]], total):
            g["tasks"] += st != "withdrawn"
            g[st] += 1
            g["overdue"] += f["overdue"]
            if f["warning"] != "none":
                g[f["warning"]] += 1
            g["stale"] += f["stale"]
            g["behind"] += f["behind"]
    for g in list(byv.values()) + list(bys.values()) + [total]:
        base = sum(g[k] for k in ("closed", "submitted", "doing", "todo", "long_term"))
        g["completion_permille"] = (g["closed"] * 1000 + base // 2) // base if base else None
    for vid, g in byv.items():
        g["label"] = names[vid]
        ms = contact.get(vid)
        if ms:
            lt = datetime.datetime.fromtimestamp(ms / 1000)
            g["last_sync"] = lt.strftime("%Y-%m-%d %H:%M:%S")
            g["silent"] = (today - lt.date()).days >= silent_days
        else:
            g["last_sync"] = None
            g["silent"] = True
    for s, g in bys.items():
        g["label"] = SOURCE_ZH[s]
    return byv, bys, total, rows


def compare_json(rep, db, written, label, **kw):
    byv, bys, total, rows = expected(db, **kw)
    got_v = {g["key"]: g for g in rep["by_village"]}
    check(set(got_v) == set(byv), f"{label}: villages {set(got_v)} != {set(byv)}")
    for vid, want in byv.items():
        g = got_v.get(vid, {})
        for k, v in want.items():
            check(g.get(k) == v, f"{label}: village {want['label']} {k}: report {g.get(k)!r}, "
                                 f"independent {v!r}")
    got_s = {g["key"]: g for g in rep["by_source"]}
    for s, want in bys.items():
        g = got_s.get(s, {})
        for k, v in want.items():
            check(g.get(k) == v, f"{label}: source {s} {k}: report {g.get(k)!r}, independent {v!r}")
    for k, v in total.items():
        check(rep["total"].get(k) == v, f"{label}: total {k}: {rep['total'].get(k)!r} != {v!r}")
    got_rows = {r["id"]: r for r in rep["ledger"]}
    check(set(got_rows) == set(rows), f"{label}: ledger ids differ")
    for tid, want in rows.items():
        r = got_rows.get(tid, {})
        for k in ("overdue", "stale", "behind", "warning"):
            check(r.get(k) == want[k], f"{label}: task {tid} {k}: {r.get(k)!r} != {want[k]!r}")
        check(r.get("progress") == want["percent"], f"{label}: task {tid} progress")
        check(r.get("status_code") == want["status"], f"{label}: task {tid} status")
        check(r.get("status") == STATUS_ZH[want["status"]], f"{label}: task {tid} status label")
        check(r.get("latest_date") == want["latest_date"], f"{label}: task {tid} latest date")
        # And what we wrote: the last entry written is the task's percent.
        check(want["percent"] == written.get(tid, 0), f"{label}: task {tid} written percent")
        v = byv[r.get("village_id")]
        check(r.get("village_last_sync") == v["last_sync"] and r.get("village_silent") == v["silent"],
              f"{label}: task {tid} village freshness")
    return byv, bys, total


# ---- 3. CSV -----------------------------------------------------------------------------------

def read_csv(path):
    raw = open(path, "rb").read()
    check(raw.startswith(b"\xef\xbb\xbf"), f"{path}: no UTF-8 BOM")
    body = raw[3:]
    check(b"\n" not in body.replace(b"\r\n", b"") or b'"' in body,
          f"{path}: bare LF outside quoted fields")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    sections, cur = [], []
    for r in rows:
        if not r:
            sections.append(cur)
            cur = []
        else:
            cur.append(r)
    sections.append(cur)
    return rows, sections


# ---- 4. xlsx ----------------------------------------------------------------------------------

FILLS = {"红色": "FFFF0000", "黄色": "FFFFFF00", "蓝色": "FF00B0F0"}


def cell_str(v, csv_value):
    """The xlsx value in the CSV's rendering, for comparison."""
    if v is None:
        return ""
    if isinstance(v, datetime.datetime):
        return v.strftime("%Y-%m-%d") if len(csv_value) == 10 else \
            (v + datetime.timedelta(microseconds=500000)).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return repr(v)
    return str(v)


def compare_sheet(ws, csv_rows, label, date_cols=()):
    xrows = [list(r) for r in ws.iter_rows(values_only=True)]
    # The sheet may be narrower than the widest CSV row where trailing cells are empty.
    check(len(xrows) == len(csv_rows), f"{label}: {len(xrows)} rows in xlsx, {len(csv_rows)} in CSV")
    for i, (xr, cr) in enumerate(zip(xrows, csv_rows)):
        xr = xr + [None] * (len(cr) - len(xr))
        for j, cv in enumerate(cr):
            xv = xr[j]
            if isinstance(xv, (int, float)) and not isinstance(xv, bool):
                try:
                    same = abs(float(cv) - float(xv)) < 1e-9
                except ValueError:
                    same = False
            else:
                same = cell_str(xv, cv) == cv
            check(same, f"{label}: row {i + 1} col {j + 1}: xlsx {xv!r} vs csv {cv!r}")
            if j in date_cols and re.match(r"^\d{4}-\d\d-\d\d", cv):
                check(isinstance(xv, datetime.datetime), f"{label}: row {i + 1} col {j + 1} not a date")
        for extra in xr[len(cr):]:
            check(extra is None, f"{label}: row {i + 1} has cells past the CSV's")


def test_files(db, tmp, rep):
    out = os.path.join(tmp, "reports")
    os.mkdir(out)
    ok(["report", "--format", "csv", "-o", out], db)
    csv_path = os.path.join(out, "整改台账（汇总）20260301.csv")
    check(os.path.exists(csv_path), "default CSV name")
    rows, sections = read_csv(csv_path)
    check(len(sections) == 3, f"CSV has {len(sections)} sections")
    check([s[0][0] for s in sections] == ["按村汇总", "按问题来源汇总", "整改台账"], "CSV titles")
    # Numbers in the CSV are the JSON's.
    vill = {r[0]: r for r in sections[0][2:]}
    for g in rep["by_village"]:
        r = vill.get(g["label"])
        check(r is not None, f"CSV lacks village {g['label']}")
        if r:
            check(r[1] == str(g["tasks"]) and r[2] == str(g["closed"]) and r[8] == str(g["overdue"]),
                  f"CSV village {g['label']} counts")
            pm = g["completion_permille"]
            check(r[9] == ("" if pm is None else f"{pm // 10}.{pm % 10}"), f"CSV rate {g['label']}")
    check("𠀀𡈽村" in vill, "4-byte Chinese village name round-trips through CSV")
    ledger = sections[2][1:]
    check(len(ledger) == 1 + len(rep["ledger"]), "CSV ledger rows")
    check(any("𠀀" in c for r in ledger for c in r), "4-byte character in CSV ledger")
    check(any("\"引号\"" in c for r in ledger for c in r), "quotes round-trip in CSV")
    check(any("表现一\n表现二" in c for r in ledger for c in r), "line break inside a CSV field")

    ok(["report", "--format", "xlsx", "-o", out], db)
    xpath = os.path.join(out, "整改台账（汇总）20260301.xlsx")
    check(os.path.exists(xpath), "default xlsx name")
    wb = openpyxl.load_workbook(xpath)
    check(wb.sheetnames == ["汇总", "台账"], f"sheet names {wb.sheetnames}")
    s, l = wb["汇总"], wb["台账"]
    check(s.freeze_panes == "A3", f"summary frozen at {s.freeze_panes}")
    check(l.freeze_panes == "A2", f"ledger frozen at {l.freeze_panes}")
    summary_csv = sections[0] + [[]] + sections[1]
    compare_sheet(s, summary_csv, "汇总", date_cols=(15,))
    header = sections[2][1]
    dcols = tuple(i for i, h in enumerate(header) if h in ("完成时限", "最新进展日期", "建立日期",
                                                          "村数据最后同步"))
    check(len(dcols) == 4, "ledger date columns present")
    compare_sheet(l, sections[2][1:], "台账", date_cols=dcols)
    wcol = header.index("预警") + 1
    fills = 0
    for i in range(2, l.max_row + 1):
        c = l.cell(row=i, column=wcol)
        want = FILLS.get(c.value)
        got = c.fill.fgColor.rgb if c.fill and c.fill.fill_type == "solid" else None
        check(got == want, f"ledger row {i} warning {c.value}: fill {got}, want {want}")
        fills += want is not None
    check(fills > 0, "some warning fills checked")
    check(l.column_dimensions["I"].width and l.column_dimensions["I"].width > 20, "measures column width")
    wb.close()

    # Another day's file is kept; the same day's is replaced; no temp file stays.
    ok(["report", "--format", "xlsx", "-o", out], db, today="2026-03-08")
    ok(["report", "--format", "xlsx", "-o", out + "/"], db)
    names = sorted(os.listdir(out))
    check(names == ["整改台账（汇总）20260301.csv", "整改台账（汇总）20260301.xlsx",
                    "整改台账（汇总）20260308.xlsx"], f"report folder: {names}")
    # Without -o: the current directory.
    cwd = os.path.join(tmp, "cwd")
    os.mkdir(cwd)
    ok(["report", "--format", "xlsx"], db, cwd=cwd)
    check(os.listdir(cwd) == ["整改台账（汇总）20260301.xlsx"], "xlsx default in current directory")
    # -o FILE
    f = os.path.join(tmp, "mine.csv")
    ok(["report", "--format", "csv", "--by", "village", "--output", f], db)
    r2, s2 = read_csv(f)
    check(len(s2) == 1 and s2[0][0][0] == "村" and len(s2[0]) == 2 + len(rep["by_village"]),
          "single-part CSV has no title row")


# ---- 6. bad input -----------------------------------------------------------------------------

def files_sum(paths):
    h = hashlib.sha256()
    for p in paths:
        for suffix in ("", "-wal"):
            if os.path.exists(p + suffix):
                h.update(open(p + suffix, "rb").read())
    return h.hexdigest()


def test_bad(db, tmp):
    box = os.path.join(tmp, "box")
    os.mkdir(box)
    cases = [
        (["report", "--format", "pdf"], "usage"),
        (["report", "--by", "town"], "usage"),
        (["report", "--format", "xlsx", "-o", os.path.join(tmp, "missing") + "/"], "not_found"),
        (["report", "--format", "xlsx", "-o", os.path.join(tmp, "missing", "a.xlsx")], "not_found"),
        (["report", "--format", "csv", "-o", os.path.join(tmp, "missing", "a.csv")], "not_found"),
        (["report", "--stale-days", "0"], "usage"),
        (["report", "--silent-days", "abc"], "usage"),
        (["report", "--format", "xlsx", "--by", "village", "-o", box], "usage"),
        (["report", "-x", "y"], "usage"),
    ]
    for args, code in cases:
        before = files_sum([db])
        rc, out, err = run(args, db, cwd=box)
        e = err.decode(errors="replace")
        check(rc == 2, f"{args}: exit {rc}, want 2")
        check(e.startswith("错误：") and f"({code})" in e, f"{args}: stderr {e!r}")
        check(any("\u4e00" <= ch <= "\u9fff" for ch in e[3:]), f"{args}: message not Chinese")
        check(files_sum([db]) == before, f"{args}: database changed")
        check(os.listdir(box) == [], f"{args}: wrote {os.listdir(box)}")
        check(not os.path.exists(os.path.join(tmp, "missing")), f"{args}: made the directory")


# ---- text -------------------------------------------------------------------------------------

def width(s):
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in s)


def test_text(db):
    out = ok(["report", "--by", "all"], db)
    check("完成率" in out and "按村汇总" in out and "整改台账" in out, "text titles")
    tables = [t for t in out.split("\n\n") if t.strip()][1:]
    check(len(tables) == 3, f"text has {len(tables)} tables")
    for t in tables:
        lines = t.split("\n")[1:]
        ws = {width(l) for l in lines}
        check(len(ws) == 1, f"text table {t.splitlines()[0]} not aligned: widths {sorted(ws)}")


# ---- 7. a village device ----------------------------------------------------------------------

def test_village(tmp):
    db = os.path.join(tmp, "village.db")
    ok(["init", "--role", "village", "--name", "王家村"], db)
    p = ok(["problem", "add", "--source", "self_check", "--text", "自查问题"], db).strip()
    for i, dl in enumerate(["2026-02-20", "2026-03-05", "2026-03-15", "2026-06-01"]):
        ok(["task", "add", "--problem", p, "--measures", f"m{i}", "--owner", "o", "--leader", "l",
            "--deadline", dl], db, today="2026-01-01")
    rep = json.loads(ok(["report", "--json"], db))
    check(len(rep["by_village"]) == 1 and rep["by_village"][0]["label"] == "王家村", "village: own only")
    g = rep["by_village"][0]
    check((g["red"], g["yellow"], g["blue"], g["stale"]) == (1, 1, 1, 4), f"village warnings {g}")
    check(g["silent"] is True and g["last_sync"] is None, "village never synced")
    ms = int(datetime.datetime.fromisoformat("2026-02-27T09:30:00+08:00").timestamp() * 1000)
    c = sqlite3.connect(db)
    c.execute("UPDATE sync_state SET last_success_ms = ?", (ms,))
    c.commit()
    c.close()
    g = json.loads(ok(["report", "--json"], db))["by_village"][0]
    check(g["silent"] is False and g["last_sync"] == "2026-02-27 09:30:00", f"village synced {g}")
    g = json.loads(ok(["report", "--json", "--silent-days", "2"], db))["by_village"][0]
    check(g["silent"] is True, "village silent with --silent-days 2")


def main():
    os.environ["TZ"] = "Asia/Shanghai"
    time.tzset()
    rng = random.Random(SEED)
    print(f"report_test seed {SEED}")
    with tempfile.TemporaryDirectory(prefix="tally-report-") as tmp:
        db, villages, written = build(tmp, rng)
        rep = json.loads(ok(["report", "--json"], db))
        compare_json(rep, db, written, "default")
        rep2 = json.loads(ok(["report", "--format", "json", "--stale-days", "5", "--silent-days", "15"], db))
        compare_json(rep2, db, written, "stale 5 silent 15", stale_days=5, silent_days=15)
        statuses = {r["status_code"] for r in rep["ledger"]}
        check(len(statuses) >= 5, f"randomised ledger covers statuses {statuses}")
        test_files(db, tmp, rep)
        test_text(db)
        test_bad(db, tmp)
        test_village(tmp)
    print(f"{CHECKS} checks, {len(FAILS)} failed (seed {SEED})")
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
