#!/usr/bin/env python3
"""Command-line tests: run the real `tally` binary against real database
files in a temporary directory. Every command, the --json shapes, Chinese
(4-byte characters included) byte for byte, and every bad-input case with
exit status 2 and the database files unchanged (checksum of the file and its
-wal before and after).

Usage: cli_test.py PATH_TO_TALLY
"""
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

TALLY = sys.argv[1]
FAILS = []
CHECKS = 0


def check(cond, what):
    global CHECKS
    CHECKS += 1
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(args, db, env_extra=None, stdin=None):
    env = dict(os.environ)
    env.pop("TALLY_DB", None)
    env["TALLY_TODAY"] = "2026-03-01"
    if env_extra:
        env.update(env_extra)
    argv = [TALLY]
    if db is not None:
        argv += ["--db", db]
    argv += args
    p = subprocess.run(argv, capture_output=True, env=env, timeout=60)
    return p.returncode, p.stdout, p.stderr


def ok(args, db, **kw):
    rc, out, err = run(args, db, **kw)
    check(rc == 0, f"{args!r} exit {rc}: {err.decode(errors='replace')}")
    return out.decode()


def js(args, db, **kw):
    rc, out, err = run(args + ["--json"], db, **kw)
    check(rc == 0, f"{args!r} --json exit {rc}: {err.decode(errors='replace')}")
    try:
        return json.loads(out)
    except ValueError:
        check(False, f"{args!r} --json printed no JSON: {out!r}")
        return None


def files_sum(db):
    h = hashlib.sha256()
    for suffix in ("", "-wal"):
        p = db + suffix
        if os.path.exists(p):
            with open(p, "rb") as f:
                h.update(suffix.encode() + b":" + f.read())
    return h.hexdigest()


def refused(args, db, code, label, env_extra=None):
    """Must exit 2 with code, a Chinese message, and change no byte."""
    before = files_sum(db) if db else None
    rc, out, err = run(args, db, env_extra)
    check(rc == 2, f"{label}: exit {rc}, want 2 ({err.decode(errors='replace')})")
    e = err.decode(errors="replace")
    check(e.startswith("错误：") and f"({code})" in e, f"{label}: stderr {e!r} lacks ({code})")
    rc, out, err = run(args + ["--json"], db, env_extra)
    check(rc == 2, f"{label} --json: exit {rc}")
    try:
        j = json.loads(out)
        check(j["error"]["code"] == code and j["error"]["message"],
              f"{label}: json error {j!r}")
    except (ValueError, KeyError, TypeError):
        check(False, f"{label}: --json error not JSON: {out!r}")
    if db:
        check(files_sum(db) == before, f"{label}: database changed")


def main():
    tmp = tempfile.mkdtemp(prefix="tally-cli-")
    try:
        body(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{CHECKS} checks, {len(FAILS)} failed")
    sys.exit(1 if FAILS else 0)


def body(tmp):
    town = os.path.join(tmp, "town.db")
    vil = os.path.join(tmp, "village.db")

    # ---- help -------------------------------------------------------------
    rc, out, _ = run(["--help"], None)
    check(rc == 0 and "命令" in out.decode(), "tally --help")
    for cmd in (["init"], ["task", "add"], ["progress"], ["review"], ["extend", "decide"],
                ["notice", "send"], ["verify"]):
        rc, out, _ = run(cmd + ["--help"], None)
        check(rc == 0 and "用法：tally " + " ".join(cmd) in out.decode(), f"{cmd} --help")
    rc, out, _ = run(["task", "add", "--help"], None)
    for flag in ("--problem", "--measures", "--owner", "--leader", "--deadline", "--village"):
        check(flag in out.decode(), f"task add --help lists {flag}")
    rc, _, err = run([], None)
    check(rc == 2, "no command is a usage error")

    # ---- init ---------------------------------------------------------------
    j = js(["init", "--role", "township", "--name", "某某镇"], town)
    check(j and j["role"] == "township" and len(j["site"]) == 16, f"init township {j}")
    refused(["init", "--role", "township", "--name", "又一个"], town, "exists", "init twice")
    refused(["init", "--role", "county", "--name", "x"], os.path.join(tmp, "n.db"), "usage",
            "init bad role")
    check(not os.path.exists(os.path.join(tmp, "n.db")), "bad init creates no file")
    out = ok(["init", "--role", "village", "--name", "王家村"], vil)
    check(len(out.strip()) == 16, "village init prints the site id")

    # ---- villages, problems, tasks -----------------------------------------------
    v1 = ok(["village", "add", "--name", "王家村"], town).strip()
    v2 = ok(["village", "add", "--name", "李家村"], town).strip()
    vl = js(["village", "list"], town)
    check(sorted(v["name"] for v in vl) == ["李家村", "王家村"], f"village list {vl}")
    check(all(set(v) >= {"id", "name", "tasks", "closed"} for v in vl), "village list keys")

    text = "村务公开不及时，𠀀𪚥字测试🙂 \"引号\" 与\\反斜杠"
    p1 = ok(["problem", "add", "--source", "inspection", "--text", text, "--round", "第三轮"],
            town).strip()
    check(len(p1) == 20, "problem add prints an id")
    pj = js(["problem", "add", "--source", "audit", "--text", "审计发现"], town)
    check(pj and pj["saved"] is True and len(pj["id"]) == 20, f"problem add --json {pj}")
    p2 = pj["id"]
    check(p1 < p2, f"a later record has a later id ({p1} {p2})")
    pl = js(["problem", "list"], town)
    got = [p for p in pl if p["id"] == p1]
    check(got and got[0]["text"] == text and got[0]["source"] == "inspection"
          and got[0]["round"] == "第三轮", "problem text round-trips")
    check(len(js(["problem", "list", "--source", "audit"], town)) == 1, "problem list --source")

    measures = "每月公开一次村务𠀀，建立台账🙂"
    tj = js(["task", "add", "--problem", p1[-6:], "--measures", measures, "--owner", "张三",
             "--leader", "李四", "--deadline", "2026-03-05", "--village", "王家村"], town)
    check(tj and len(tj["id"]) == 20, f"task add --json {tj}")
    t1 = tj["id"]
    t2 = ok(["task", "add", "--problem", p2, "--measures", "整改2", "--owner", "王五",
             "--leader", "赵六", "--deadline", "2026-02-01", "--village", v2[-8:]], town).strip()
    t3 = ok(["task", "add", "--problem", p2, "--measures", "整改3", "--owner", "王五",
             "--leader", "赵六", "--deadline", "2026-12-31", "--village", v1,
             "--target", "目标", "--root-cause", "根源", "--elsewhere", "举一反三"], town).strip()

    tl = js(["task", "list"], town)
    keys = {"id", "village", "problem", "measures", "owner", "leader", "deadline", "status",
            "progress", "warning", "overdue"}
    check(len(tl) == 3 and all(keys <= set(t) for t in tl), f"task list keys {tl and tl[0]}")
    by = {t["id"]: t for t in tl}
    check(by[t1]["measures"] == measures, "4-byte characters round-trip byte for byte")
    check(by[t1]["village"] == "王家村" and by[t1]["problem"] == p1, "task village/problem")
    check(by[t1]["warning"] == "yellow" and not by[t1]["overdue"], f"yellow {by[t1]}")
    check(by[t2]["warning"] == "red" and by[t2]["overdue"] is True, "overdue is red")
    check(by[t3]["warning"] == "none" and by[t3]["status"] == "todo", "none")
    check([t["id"] for t in js(["task", "list", "--overdue"], town)] == [t2], "--overdue")
    check([t["id"] for t in js(["task", "list", "--warning", "yellow"], town)] == [t1],
          "--warning")
    check(sorted(t["id"] for t in js(["task", "list", "--village", "王家村"], town))
          == sorted([t1, t3]), "--village")
    check([t["id"] for t in js(["task", "list", "--source", "inspection"], town)] == [t1],
          "--source")
    check(js(["task", "list", "--status", "closed"], town) == [], "--status")
    out = ok(["task", "list"], town)
    check("红色预警" in out and measures[:5] in out, "task list text")
    # stdout bytes: the exact UTF-8 of the measures
    rc, raw, _ = run(["task", "list", "--json"], town)
    check(measures.encode("utf-8") in raw, "raw UTF-8 bytes on stdout")

    # ---- update, progress, evidence --------------------------------------------------
    ok(["task", "update", t3, "--owner", "新责任人", "--deadline", "2026-11-30"], town)
    t3j = js(["task", "show", t3], town)
    check(t3j["owner"] == "新责任人" and t3j["deadline"] == "2026-11-30", "task update")
    ev = os.path.join(tmp, "照片𠀀.jpg")
    with open(ev, "wb") as f:
        f.write(b"\xff\xd8fake jpeg" * 100)
    evsum = hashlib.sha256(open(ev, "rb").read()).hexdigest()
    pr = js(["progress", t1[-7:], "--percent", "40", "--note", "已公开一次𠀀", "--evidence", ev],
            town)
    check(pr and pr["saved"], "progress --json")
    show = js(["task", "show", t1], town)
    check(show["status"] == "doing" and show["progress"] == 40, "progress moves todo->doing")
    check(show["progress_entries"][0]["note"] == "已公开一次𠀀", "progress note round-trips")
    check(show["evidence"] and show["evidence"][0]["sha256"] == evsum
          and show["evidence"][0]["size"] == 1100 and show["evidence"][0]["name"] == "照片𠀀.jpg",
          f"evidence metadata {show['evidence']}")
    check(show["problem_detail"]["text"] == text, "task show problem text")
    check(len(show["history"]) == 2 and show["history"][1]["fields"] == {"status": "doing"},
          f"history {show['history']}")
    ok(["progress", t1, "--percent", "30", "--note", "返工", "--reason", "验收不合格"], town)
    check(js(["task", "show", t1], town)["progress"] == 30, "decrease with reason")

    # ---- submit, review, reinspect -------------------------------------------------------
    ok(["submit", t1], town)
    ok(["review", t1, "--reject", "--opinion", "材料不全"], town)
    check(js(["task", "show", t1], town)["status"] == "doing", "reject returns to doing")
    ok(["submit", t1], town)
    ok(["review", t1, "--approve", "--opinion", "同意销号"], town)
    s = js(["task", "show", t1], town)
    check(s["status"] == "closed" and not s["overdue"] and s["warning"] == "none", "closed")
    ok(["reinspect", t1, "--holds", "--note", "成效巩固"], town)
    ok(["reinspect", t1, "--rebounded", "--note", "问题反弹"], town)
    s = js(["task", "show", t1], town)
    check(s["status"] == "doing", "rebound reopens")
    check([r["type"] + "/" + (r["decision"] or "") for r in s["reviews"]] ==
          ["close_off/reject", "close_off/approve", "reinspect/holds", "reinspect/rebounded"],
          f"reviews {s['reviews']}")

    # ---- extensions --------------------------------------------------------------------
    rq = js(["extend", t3, "--until", "2027-03-31", "--reason", "雨季施工"], town)["id"]
    ok(["extend", "decide", rq[-8:], "--approve", "--opinion", "同意"], town)
    check(js(["task", "show", t3], town)["deadline"] == "2027-03-31", "extension approved")
    ok(["extend", t3, "--until", "2027-06-30", "--reason", "再延"], town)
    ok(["extend", "decide", t3, "--reject", "--opinion", "不同意"], town)
    check(js(["task", "show", t3], town)["deadline"] == "2027-03-31", "extension rejected")
    refused(["extend", "decide", t3, "--approve"], town, "not_found", "no pending request")

    # ---- withdraw ------------------------------------------------------------------------
    ok(["task", "update", t2, "--status", "withdrawn"], town)
    check(js(["task", "show", t2], town)["overdue"] is False, "withdrawn is never overdue")

    # ---- notices -------------------------------------------------------------------------
    n1 = js(["notice", "send", "--type", "warning", "--title", "预警𠀀", "--text", "请抓紧",
             "--village", "王家村", "--task", t3[-8:]], town)["id"]
    ok(["notice", "send", "--type", "supervision", "--text", "全镇通报"], town)
    nl = js(["notice", "list"], town)
    check(len(nl) == 2, "notice list")
    n = [x for x in nl if x["id"] == n1][0]
    check(n["title"] == "预警𠀀" and n["tasks"] == [t3] and n["village"] == "王家村",
          f"notice {n}")

    # ---- report, status, conflicts, verify ------------------------------------------------
    r = js(["report"], town)
    check(r["total"]["tasks"] == 2 and r["total"]["closed"] == 0, f"report {r['total']}")
    check({g["label"] for g in r["by_village"]} == {"王家村", "李家村"}, "report by village")
    check("完成率" in ok(["report"], town), "report text")
    st = js(["status"], town)
    check(st["role"] == "township" and st["pending"] == st["last_seq"] > 20, f"status {st}")
    check(js(["conflicts"], town) == [], "no conflicts without sync")
    v = js(["verify"], town)
    check(v["ok"] and v["rebuild"]["ok"] and v["integrity"]["ok"] and v["sites"][0]["complete"],
          f"verify {v}")
    check("核查通过" in ok(["verify"], town), "verify text")

    # ---- the village device ------------------------------------------------------------------
    refused(["problem", "add", "--source", "inspection", "--text", "x"], vil, "forbidden",
            "village adds a township-kind problem")
    vp = ok(["problem", "add", "--source", "self_check", "--text", "自查发现𠀀"], vil).strip()
    vt = ok(["task", "add", "--problem", vp, "--measures", "马上改", "--owner", "村干部",
             "--leader", "书记", "--deadline", "2026-04-01"], vil).strip()
    ok(["progress", vt, "--percent", "50", "--note", "进行中"], vil)
    ok(["submit", vt], vil)
    refused(["review", vt, "--approve", "--opinion", "自己批"], vil, "forbidden",
            "village approves its own close-off")
    refused(["task", "update", vt, "--status", "withdrawn"], vil, "forbidden",
            "village withdraws")
    refused(["notice", "send", "--type", "warning", "--text", "x"], vil, "forbidden",
            "village sends notice")
    refused(["village", "add", "--name", "别的村"], vil, "forbidden", "village adds village")
    check(js(["verify"], vil)["ok"], "village verify")

    # A village device that holds another village's task (as after a pull):
    # the township file with its identity row turned into village 王家村's.
    other = os.path.join(tmp, "other.db")
    shutil.copy(town, other)
    con = sqlite3.connect(other)
    con.execute("UPDATE site SET role = 'village', village_id = ?", (v1,))
    con.commit()
    con.close()
    ok(["verify"], other)  # checkpoints the copy; refusals below must not change it
    refused(["progress", t2, "--percent", "10", "--note", "x"], other, "forbidden",
            "village writes another village's task")
    refused(["task", "update", t2, "--owner", "x"], other, "forbidden",
            "village updates another village's task")
    refused(["reinspect", t1, "--holds", "--note", "x"], other, "forbidden",
            "village reinspects")

    # ---- bad input: refused, exit 2, nothing written -------------------------------------------
    refused(["task", "add", "--problem", p1, "--measures", "m", "--owner", "o", "--leader", "l",
             "--deadline", "2026-02-30", "--village", "王家村"], town, "bad_date",
            "deadline not a date")
    refused(["task", "add", "--problem", p1, "--measures", "m", "--owner", "o", "--leader", "l",
             "--deadline", "next friday", "--village", "王家村"], town, "bad_date",
            "deadline words")
    refused(["task", "update", t3, "--deadline", "2026/01/01"], town, "bad_date",
            "update deadline")
    refused(["extend", t3, "--until", "2027-02-29", "--reason", "x"], town, "bad_date",
            "extend until")
    for pct in ("101", "-1", "abc", "50.5", ""):
        refused(["progress", t3, "--percent", pct, "--note", "x"], town, "bad_percent",
                f"percent {pct!r}")
    ok(["progress", t3, "--percent", "60", "--note", "x"], town)
    refused(["progress", t3, "--percent", "59", "--note", "x"], town, "percent_decrease",
            "percent down without reason")
    refused(["progress", "ffffffffffffffff", "--percent", "1", "--note", "x"], town,
            "not_found", "unknown task")
    refused(["task", "show", "zzzz"], town, "not_found", "unknown task prefix")
    refused(["task", "add", "--problem", "0000000000000000", "--measures", "m", "--owner", "o",
             "--leader", "l", "--deadline", "2026-05-01", "--village", "王家村"], town,
            "not_found", "unknown problem")
    refused(["task", "add", "--problem", p1, "--measures", "m", "--owner", "o", "--leader", "l",
             "--deadline", "2026-05-01", "--village", "不存在村"], town, "not_found",
            "unknown village")
    t4 = ok(["task", "add", "--problem", p2, "--measures", "未开始", "--owner", "o",
             "--leader", "l", "--deadline", "2026-08-01", "--village", "李家村"], town).strip()
    refused(["submit", t4], town, "bad_status_move", "submit a task not started")
    refused(["review", t3, "--approve", "--opinion", "x"], town, "bad_status_move",
            "approve a task not submitted")
    refused(["task", "update", t3, "--status", "todo"], town, "bad_status_move",
            "doing -> todo")
    refused(["task", "update", t2, "--status", "doing"], town, "bad_status_move",
            "withdrawn is final")
    refused(["task", "update", t3, "--status", "finished"], town, "bad_value", "unknown status")
    refused(["problem", "add", "--source", "rumour", "--text", "x"], town, "bad_value",
            "unknown source")
    refused(["task", "add", "--problem", p1, "--measures", "x" * 20000, "--owner", "o",
             "--leader", "l", "--deadline", "2026-05-01", "--village", "王家村"], town,
            "field_too_long", "over-long measures")
    refused(["task", "update", t3, "--owner", "长" * 100], town, "field_too_long",
            "over-long owner")
    refused(["task", "update", t3, "--measures", ""], town, "missing_field", "empty measures")
    refused(["task", "list", "--warning", "purple"], town, "usage", "bad warning filter")
    refused(["task", "add", "--problem", p1], town, "usage", "missing flags")
    refused(["task", "add", "--problem", p1, "--measures", "m", "--owner", "o", "--leader", "l",
             "--deadline", "2026-05-01"], town, "usage", "township task without village")
    refused(["task", "list", "--colour", "red"], town, "usage", "unknown flag")
    refused(["review", t3, "--approve", "--reject", "--opinion", "x"], town, "usage",
            "approve and reject")
    refused(["frobnicate"], town, "usage", "unknown command")
    refused(["task", "update", t3, "--owner", "a", "--owner", "b"], town, "usage",
            "flag given twice")

    # not UTF-8, in a value and in a flag's place
    before = files_sum(town)
    for bad in ([b"task", b"update", t3.encode(), b"--owner", b"\xff\xfe"],
                [b"problem", b"add", b"--source", b"audit", b"--text", b"\xe4\xb8"],
                [b"problem", b"add", b"--source", b"audit", b"--text", b"\xed\xa0\x80"]):
        p = subprocess.run([TALLY.encode(), b"--db", town.encode()] + bad, capture_output=True)
        check(p.returncode == 2 and b"(bad_utf8)" in p.stderr, f"bad utf8 {bad!r}: {p.stderr!r}")
    check(files_sum(town) == before, "bad UTF-8 changes nothing")

    # ambiguous prefixes: enough tasks that two share a first character
    for i in range(20):
        ok(["task", "add", "--problem", p2, "--measures", f"批量{i}", "--owner", "o",
            "--leader", "l", "--deadline", "2026-09-01", "--village", "李家村"], town)
    ids = [t["id"] for t in js(["task", "list"], town)]
    firsts = {}
    for i in ids:
        firsts.setdefault(i[0], []).append(i)
    shared = [k for k, v in firsts.items() if len(v) > 1][0]
    refused(["task", "show", shared], town, "ambiguous_id", "ambiguous prefix")
    rc, _, err = run(["task", "show", shared], town)
    check(firsts[shared][0] in err.decode(), "ambiguous lists candidates")

    # files that are not Tally's, or from a newer Tally
    txt = os.path.join(tmp, "notes.txt")
    with open(txt, "w") as f:
        f.write("这是一个普通文本文件。\n" * 300)
    refused(["task", "list"], txt, "not_tally_db", "text file as db")
    refused(["problem", "add", "--source", "audit", "--text", "x"], txt, "not_tally_db",
            "write to text file")
    alien = os.path.join(tmp, "alien.db")
    con = sqlite3.connect(alien)
    con.execute("CREATE TABLE accounts (name TEXT, balance INTEGER)")
    con.execute("INSERT INTO accounts VALUES ('a', 1)")
    con.commit()
    con.close()
    refused(["task", "list"], alien, "not_tally_db", "another program's sqlite db")
    refused(["init", "--role", "township", "--name", "x"], alien, "not_tally_db",
            "init over another program's db")
    newer = os.path.join(tmp, "newer.db")
    shutil.copy(town, newer)
    con = sqlite3.connect(newer)
    con.execute("PRAGMA user_version = 999")
    con.commit()
    con.close()
    refused(["task", "list"], newer, "db_too_new", "database from a newer version")
    refused(["progress", t3, "--percent", "70", "--note", "x"], newer, "db_too_new",
            "write to newer database")
    missing = os.path.join(tmp, "missing.db")
    refused(["task", "list"], missing, "not_initialised", "missing database")
    check(not os.path.exists(missing), "reading a missing database creates nothing")

    # TALLY_DB picks the database
    rc, out, _ = run(["status", "--json"], None, {"TALLY_DB": town})
    check(rc == 0 and json.loads(out)["role"] == "township", "TALLY_DB")

    # verify reports a break: exit 1 and a clear report
    broken = os.path.join(tmp, "broken.db")
    shutil.copy(town, broken)
    con = sqlite3.connect(broken)
    con.execute("UPDATE task SET owner = '篡改' WHERE id = ?", (t3,))
    con.commit()
    con.close()
    rc, out, err = run(["verify"], broken)
    check(rc == 1 and "不一致" in out.decode() and "(verify_failed)" in err.decode(),
          f"verify catches an edit behind the log: {rc} {out!r}")
    con = sqlite3.connect(broken)
    con.execute("UPDATE task SET owner = '新责任人' WHERE id = ?", (t3,))
    con.execute("UPDATE change_log SET body = body || x'00' WHERE seq = 3")
    con.commit()
    con.close()
    rc, out, _ = run(["verify", "--json"], broken)
    j = json.loads(out)
    check(rc == 1 and not j["ok"] and j["problems"] and j["error"]["code"] == "verify_failed",
          f"verify catches a changed body {j}")

    # the original still verifies after everything
    check(js(["verify"], town)["ok"], "final verify")


if __name__ == "__main__":
    main()
