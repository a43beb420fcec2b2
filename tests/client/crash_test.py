#!/usr/bin/env python3
"""Crash test: kills `tally` with SIGKILL at random moments during writes,
at least 200 times, then checks that every write it reported as saved is
present, that the change log and the data agree exactly (tally verify's
rebuild check, plus direct SQL checks here), and that PRAGMA integrity_check
and `tally verify` pass.

Writes alternate between `task add` (one change) and `progress` (a progress
entry and, on a new task, the task's move to doing: two changes in one
transaction), so a kill between the changes of one batch would show.

Usage: crash_test.py PATH_TO_TALLY [MIN_KILLS]
"""
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

TALLY = sys.argv[1]
MIN_KILLS = int(sys.argv[2]) if len(sys.argv) > 2 else 200
TIME_LIMIT = 50.0
ID = re.compile(rb"^[0-9a-f]{20}$", re.M)


def run(db, args):
    p = subprocess.run([TALLY, "--db", db] + args, capture_output=True, timeout=60)
    if p.returncode != 0:
        sys.exit(f"setup failed: {args}: {p.stderr.decode(errors='replace')}")
    return p.stdout.decode().strip()


def main():
    tmp = tempfile.mkdtemp(prefix="tally-crash-")
    try:
        return body(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def body(tmp):
    rnd = random.Random(int(os.environ.get("TALLY_CRASH_SEED", "20260301")))
    db = os.path.join(tmp, "crash.db")
    run(db, ["init", "--role", "township", "--name", "崩溃测试镇"])
    run(db, ["village", "add", "--name", "王家村"])
    problem = run(db, ["problem", "add", "--source", "patrol", "--text", "崩溃测试问题𠀀"])

    def task_args(i):
        return ["task", "add", "--problem", problem, "--measures", f"措施𠀀-{i}",
                "--owner", "张三", "--leader", "李四", "--deadline", "2026-12-31",
                "--village", "王家村"]

    # How long one write takes here (sanitizer builds are slower): kills
    # land anywhere from process start to just after the usual finish.
    t0 = time.monotonic()
    tasks = {}
    for i in range(5):
        tasks[run(db, task_args(f"warm{i}"))] = f"措施𠀀-warm{i}"
    typical = (time.monotonic() - t0) / 5

    progress = {}  # id -> (task, percent, note)
    kills = finished = attempts = 0
    start = time.monotonic()
    while kills < MIN_KILLS or attempts < MIN_KILLS + 20:
        if time.monotonic() - start > TIME_LIMIT:
            break
        attempts += 1
        if attempts % 2 and tasks:
            task = rnd.choice(list(tasks))
            pct = rnd.randint(0, 100)
            note = f"进展{attempts}"
            args = ["progress", task, "--percent", str(pct), "--note", note,
                    "--reason", "测试"]
            kind = ("progress", task, pct, note)
        else:
            args = task_args(attempts)
            kind = ("task", f"措施𠀀-{attempts}")
        p = subprocess.Popen([TALLY, "--db", db] + args, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        time.sleep(rnd.uniform(0, typical * 1.3))
        p.send_signal(signal.SIGKILL)
        out, err = p.communicate()
        if p.returncode == -signal.SIGKILL:
            kills += 1
        elif p.returncode == 0:
            finished += 1
        else:
            sys.exit(f"write failed without being killed: {p.returncode} {err!r}")
        # The id is printed only after COMMIT returned: if we see it, it was saved.
        m = ID.search(out)
        if m:
            rid = m.group(0).decode()
            if kind[0] == "task":
                tasks[rid] = kind[1]
            else:
                progress[rid] = kind[1:]

    print(f"{attempts} writes, {kills} killed, {finished} finished, "
          f"{len(tasks)} tasks and {len(progress)} progress entries reported saved, "
          f"typical write {typical * 1000:.1f} ms")
    fails = []
    if kills < MIN_KILLS:
        fails.append(f"only {kills} kills within {TIME_LIMIT} s")
    if finished and not (tasks or progress):
        # Guards the check itself: finished writes print their id.
        fails.append(f"{finished} writes finished but no saved id was recognised")

    # Every write reported as saved is there, with its content.
    p = subprocess.run([TALLY, "--db", db, "task", "list", "--json"], capture_output=True)
    listed = {t["id"]: t for t in json.loads(p.stdout)}
    for tid, measures in tasks.items():
        if tid not in listed or listed[tid]["measures"] != measures:
            fails.append(f"saved task {tid} missing or wrong")
    con = sqlite3.connect(db)
    for pid, (task, pct, note) in progress.items():
        row = con.execute("SELECT task, percent, note FROM progress WHERE id = ?",
                          (pid,)).fetchone()
        if row != (task, pct, note):
            fails.append(f"saved progress {pid} missing or wrong: {row}")

    # The change log and the data agree exactly: every record came from the
    # log, every logged record is in the data, no half-written batch.
    def q(sql):
        return con.execute(sql).fetchall()
    if q("PRAGMA integrity_check") != [("ok",)]:
        fails.append("integrity_check failed")
    seqs = [r[0] for r in q("SELECT seq FROM change_log ORDER BY seq")]
    if seqs != list(range(1, len(seqs) + 1)):
        fails.append("change log sequence has gaps")
    for kind in ("task", "progress"):
        data = {r[0] for r in q(f"SELECT id FROM {kind}")}
        logged = {r[0] for r in q(f"SELECT record_id FROM change_log WHERE kind = '{kind}'")}
        if data != logged:
            fails.append(f"{kind}: data and change log differ: {len(data)} vs {len(logged)}")
    if q("SELECT count(*) FROM task WHERE measures IS NULL OR status IS NULL") != [(0,)]:
        fails.append("a task row is half-written")
    # A progress entry on a todo task always commits with the move to doing.
    todo_with_progress = q("SELECT count(*) FROM task t WHERE t.status = 'todo' AND "
                           "EXISTS (SELECT 1 FROM progress p WHERE p.task = t.id)")
    if todo_with_progress != [(0,)]:
        fails.append("progress committed without its status change")
    if q("SELECT hlc_last FROM site") != q("SELECT max(hlc) FROM change_log"):
        fails.append("persisted clock differs from the last change")
    con.close()

    p = subprocess.run([TALLY, "--db", db, "verify", "--json"], capture_output=True)
    v = json.loads(p.stdout)
    if p.returncode != 0 or not v["ok"]:
        fails.append(f"tally verify failed: {v.get('problems')}")

    for f in fails:
        print("FAIL:", f, file=sys.stderr)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
