#!/usr/bin/env python3
"""I/O failure injection for `tally`: the Nth write (write/pwrite/pwrite64)
or sync (fsync/fdatasync) on the database's files fails, once or from then
on, for N = 1, 2, ... until a run no longer reaches the Nth call, for one
`tally progress` write (a progress entry plus the task's move todo->doing:
two changes in one transaction).

Allowed outcomes of one run, checked after reopening without the shim:
- exit 0: stdout carries the new id, stderr 已保存, and the entry and the
  task's move are present;
- exit 1: stderr `错误：<中文> (db_error|io_error)`, no id, no 已保存; the
  batch is absent, or present whole (SQLite may have written a commit frame
  to the WAL before the failing sync; recovery then finds it: the user was
  told it failed, nothing is lost, the batch is never half there);
- never: saved but absent, failed but half-applied, a crash (signal or
  sanitizer report), any other exit code.
Every run: `tally verify` passes (chains, change log == data, integrity),
PRAGMA integrity_check is ok, the change log and the progress table hold
the same ids, sync_state (acked seq, cursor) is unchanged, and the next
write without the shim succeeds.

Each run starts from a copy of the same checkpointed ledger, so N counts
the same calls every time. Under an ASan build the ASan runtime is
preloaded ahead of the shim (ASan must come first in the library list).

Usage: iofail_test.py PATH_TO_TALLY PATH_TO_IOFAIL_SO
"""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

TALLY = sys.argv[1]
SHIM = os.path.abspath(sys.argv[2])
ID = re.compile(r"^[0-9a-f]{20}$", re.M)
ERR = re.compile(r"错误：.+ \((db_error|io_error)\)")
MAX_N = 400  # a bound in case the shim stops reporting (would be a bug)


def preload():
    """The shim, behind the sanitizer runtimes `tally` links dynamically."""
    out = subprocess.run(["ldd", TALLY], capture_output=True, text=True).stdout
    libs = re.findall(r"^\s*(lib(?:asan|ubsan)\.so\S*) => (\S+)", out, re.M)
    return ":".join([path for _, path in libs] + [SHIM])


def tally(db, args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    # The sanitizers' own exit code keeps reports distinct from tally's 1.
    e.setdefault("ASAN_OPTIONS", "exitcode=86")
    e.setdefault("UBSAN_OPTIONS", "exitcode=86:halt_on_error=1")
    return subprocess.run([TALLY, "--db", db] + args, capture_output=True, env=e,
                          timeout=60)


def must(db, args):
    p = tally(db, args)
    if p.returncode != 0:
        sys.exit(f"setup failed: {args}: {p.stderr.decode(errors='replace')}")
    return p.stdout.decode().strip()


def snapshot(db):
    con = sqlite3.connect(db)
    try:
        q = lambda sql: con.execute(sql).fetchall()
        return {
            "integrity": q("PRAGMA integrity_check"),
            "progress": {r[0]: r[1:] for r in q("SELECT id, task, percent, note FROM progress")},
            "logged": {r[0] for r in q("SELECT record_id FROM change_log WHERE kind = 'progress'")},
            "log_len": q("SELECT count(*) FROM change_log")[0][0],
            "status": dict(q("SELECT id, status FROM task")),
            "sync": q("SELECT * FROM sync_state"),
        }
    finally:
        con.close()


def main():
    tmp = tempfile.mkdtemp(prefix="tally-iofail-")
    try:
        return body(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def body(tmp):
    ld = preload()
    base = os.path.join(tmp, "base.db")
    must(base, ["init", "--role", "township", "--name", "故障测试镇"])
    must(base, ["village", "add", "--name", "王家村"])
    problem = must(base, ["problem", "add", "--source", "patrol", "--text", "写盘故障𠀀"])
    tasks = []
    for i in range(3):
        tasks.append(must(base, ["task", "add", "--problem", problem, "--measures",
                                 f"措施{i}", "--owner", "张三", "--leader", "李四",
                                 "--deadline", "2026-12-31", "--village", "王家村"]))
    must(base, ["progress", tasks[1], "--percent", "10", "--note", "已有进展"])
    # Fold the WAL into the file so a copy is the whole ledger.
    con = sqlite3.connect(base)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    before = snapshot(base)
    task = tasks[0]  # todo: the write is progress + move to doing

    # The shim is loaded and counts calls: a plain run with a report.
    work = os.path.join(tmp, "run")
    os.mkdir(work)
    db = os.path.join(work, "ledger-iofail.db")
    report = os.path.join(tmp, "report")

    fails, stats = [], {}
    start = time.monotonic()
    for ops in ("write", "fsync"):
        for mode in ("once", "always"):
            n = 0
            while True:
                n += 1
                if n > MAX_N:
                    fails.append(f"{ops}/{mode}: still failing at N={n}")
                    break
                for f in os.listdir(work):
                    os.unlink(os.path.join(work, f))
                shutil.copy(base, db)
                if os.path.exists(report):
                    os.unlink(report)
                errno = "EIO" if n % 2 else "ENOSPC"
                note = f"故障{ops}{mode}{n}"
                env = {"LD_PRELOAD": ld, "IOFAIL_AFTER": str(n), "IOFAIL_MODE": mode,
                       "IOFAIL_OPS": ops, "IOFAIL_PATH": "ledger-iofail.db",
                       "IOFAIL_ERRNO": errno, "IOFAIL_REPORT": report}
                p = tally(db, ["progress", task, "--percent", "40", "--note", note,
                               "--reason", "测试"], env)
                rep = open(report).read() if os.path.exists(report) else ""
                if "calls " not in rep and p.returncode in (0, 1):
                    fails.append(f"{ops}/{mode} N={n}: shim not loaded ({rep!r})")
                    break
                hit = "fail " in rep
                outcome = check_run(db, p, note, task, before, hit,
                                    f"{ops}/{mode} N={n} {errno}", fails)
                key = (ops, mode)
                s = stats.setdefault(key, {"saved": 0, "failed_absent": 0,
                                           "failed_present": 0})
                s[outcome] += 1
                m = re.search(r"^fail (\S+) \S*?ledger-iofail\.db(\S*) ", rep, re.M)
                if m:
                    where = f"{m.group(1)} {m.group(2) or 'db'} -> {outcome}"
                    s.setdefault("where", {}).setdefault(where, 0)
                    s["where"][where] += 1
                if not hit:
                    break
    elapsed = time.monotonic() - start
    for (ops, mode), s in stats.items():
        where = s.pop("where", {})
        runs = sum(s.values())
        print(f"{ops:5s} {mode:6s}: N=1..{runs}: {s['saved']} saved, "
              f"{s['failed_absent']} failed (absent), "
              f"{s['failed_present']} failed (committed whole)")
        print("    " + ", ".join(f"{k}: {v}" for k, v in sorted(where.items())))
    print(f"{sum(s['saved'] + s['failed_absent'] + s['failed_present'] for s in stats.values())}"
          f" runs in {elapsed:.1f} s")
    for f in fails:
        print("FAIL:", f, file=sys.stderr)
    return 1 if fails else 0


def check_run(db, p, note, task, before, hit, label, fails):
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    ids = ID.findall(out)

    def fail(msg):
        fails.append(f"{label}: {msg} (exit {p.returncode}, stderr {err.strip()!r})")

    if p.returncode not in (0, 1):
        fail("crashed or unexpected exit code")
    after = snapshot(db)
    added = {pid: row for pid, row in after["progress"].items() if pid not in before["progress"]}
    mine = [pid for pid, row in added.items() if row[2] == note]
    if len(added) != len(mine):
        fail("progress entries appeared that this run did not write")
    if p.returncode == 0:
        outcome = "saved"
        if "已保存" not in err or len(ids) != 1:
            fail("exit 0 without the id and 已保存")
        elif mine != ids:
            fail("reported saved but absent")
        if after["status"][task] != "doing":
            fail("saved progress without the task's move to doing")
    else:
        outcome = "failed_present" if mine else "failed_absent"
        if not hit:
            fail("failed although no failure was injected")
        if ids or "已保存" in err:
            fail("reported saved and failed")
        if not ERR.search(err):
            fail("no clear error with a stable code (db_error or io_error)")
        # Whole or nothing: the entry and the move travel together.
        if mine and after["status"][task] != "doing":
            fail("failed write half-applied: progress without the move")
        if not mine and after["status"] != before["status"]:
            fail("failed write half-applied: move without the progress")
        if len(mine) > 1:
            fail("failed write applied twice")
    expect_log = before["log_len"] + (2 if mine else 0)
    if after["log_len"] != expect_log:
        fail(f"change log has {after['log_len']} changes, expected {expect_log}")
    if after["integrity"] != [("ok",)]:
        fail(f"integrity_check: {after['integrity']}")
    if set(after["progress"]) != after["logged"]:
        fail("progress table and change log differ")
    if after["sync"] != before["sync"]:
        fail("sync_state moved")
    v = tally(db, ["verify", "--json"])
    try:
        ok = v.returncode == 0 and json.loads(v.stdout)["ok"]
    except (ValueError, KeyError):
        ok = False
    if not ok:
        fail(f"tally verify failed: {v.stdout.decode(errors='replace')[:400]}")
    nxt = tally(db, ["progress", task, "--percent", "50", "--note", "之后正常写入",
                     "--reason", "测试"])
    if nxt.returncode != 0:
        fail(f"next normal write failed: {nxt.stderr.decode(errors='replace').strip()}")
    return outcome


if __name__ == "__main__":
    sys.exit(main())
