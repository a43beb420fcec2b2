#!/usr/bin/env python3
"""I/O failure injection for the township server: the Nth write
(write/pwrite/pwrite64) or sync (fsync/fdatasync) on the township
database's files fails, once or from then on, with EIO or ENOSPC, while a
real village (`tally sync`, no shim) pushes a batch of new tasks and
updates to a real `tallyd serve` (shim preloaded) over TLS on loopback,
and pulls the township's decisions back.

N counts from the moment the server is up (IOFAIL_ARM, created after its
`port=` line), on the database, its -wal, -shm and -journal files only
(IOFAIL_PATH; the DB.mark sidecar is IOFAIL_SKIP'd), so N = 1 is the
first write of the push. Every run starts from copies of the same
checkpointed files, so N counts the same calls each time.

Per run, checked:
- nothing crashed: the village exits 0 or 1, the server 0 or 1 (not a
  signal, not a sanitizer report: sanitizer exit code 86, leaks included);
- when the failure was reached and the village did not succeed, it says
  why: `--json` error with a stable code and Chinese text;
- every push or pull the server answered is 200 or 5xx (no 4xx for a disk
  failure), or the server exited;
- sync_state does not advance on a failed exchange: a push that was not
  answered 200 leaves acked_seq where it was, a pull that was not answered
  200 leaves pull_cursor where it was (and a failed `tally sync` has not
  moved the cursor);
- after restarting the server WITHOUT the shim, before any resync: every
  change the village marked acknowledged is held by the township with the
  same hash (nothing acknowledged that the server lost), and the township
  holds the batch (one push message) whole or not at all;
- after a resync: every village change is held at the township exactly
  once, byte-identical ((site, seq, hash) lists equal, no duplicates), the
  records the village sees have the same merge state on both sides,
  the township's decisions reached the village, PRAGMA integrity_check is
  ok and `tally verify` is clean on both databases.

Under an ASan build the sanitizer runtimes are preloaded ahead of the shim
(ASan must be first in the list). ASan intercepts write/pwrite itself and
reaches the shim through RTLD_NEXT, so every call is still counted exactly
once: the counting run finds the same calls as in a Release build. The
shim is preloaded into the server only; `tally` runs without it.

A counting run (IOFAIL_TRACE) first finds the calls a clean push-and-pull
and the server's shutdown make, grouped by the fsync that ends them (the
push's commit, the pull's, the checkpoint at close). The ctest run tries,
for write/fsync x once/always (EIO and ENOSPC alternating), the first, a
middle and the last write of each group and every fsync; --long tries
every N.

Usage: iofail_server_test.py BUILD_DIR PATH_TO_IOFAIL_SO [--long]
"""
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

BUILD = os.path.abspath(sys.argv[1])
SHIM = os.path.abspath(sys.argv[2])
LONG = "--long" in sys.argv[3:]
os.environ["TALLY_BINARY_DIR"] = BUILD
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "daemon"))
import sync_test as st  # noqa: E402  (Township, Village, q, own_changes, ...)
from tallytest import Failure, check  # noqa: E402

# The sanitizers' own exit code keeps their reports distinct from ours.
SAN = {"ASAN_OPTIONS": "exitcode=86:verify_asan_link_order=0",
       "UBSAN_OPTIONS": "exitcode=86:halt_on_error=1"}
DB_FILES = ("town.db", "town.db-wal", "town.db.crt", "town.db.key", "town.db.mark", "v.db",
            "v.db-wal")
ERR_CODE = re.compile(r"[a-z_]+")


def preload():
    """The shim, behind the sanitizer runtimes tallyd links dynamically."""
    out = subprocess.run(["ldd", st.TALLYD], capture_output=True, text=True).stdout
    libs = re.findall(r"^\s*(lib(?:asan|ubsan)\.so\S*) => (\S+)", out, re.M)
    return ":".join([path for _, path in libs] + [SHIM])


class Run:
    """One server run in `work` (a copy of the base files), shim or not."""

    def __init__(self, work, shim_env=None):
        self.work = work
        self.db = os.path.join(work, "town.db")
        self.vdb = os.path.join(work, "v.db")
        self.log_path = os.path.join(work, "serve.log")
        env = st.env_with(**SAN)
        env.update(shim_env or {})
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [st.TALLYD, "serve", "--db", self.db, "--listen", "127.0.0.1:0"],
                stdout=subprocess.PIPE, stderr=log, env=env)
        line = self.proc.stdout.readline().decode()
        m = re.search(r"port=(\d+) pin=(\S+) epoch=(\S+)", line)
        if not m:
            self.proc.kill()
            self.proc.wait()
            raise Failure("tallyd serve did not start: %r\n%s" % (line, self.logtext()[-2000:]))
        self.port = int(m.group(1))

    def logtext(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def sync(self):
        """`tally --json sync` against this server: (exit code, JSON)."""
        p = subprocess.run([st.TALLY, "--db", self.vdb, "--json", "sync", "--url",
                            "https://127.0.0.1:%d" % self.port],
                           capture_output=True, timeout=120, env=st.env_with(**SAN))
        try:
            j = json.loads(p.stdout.decode() or "{}")
        except ValueError:
            j = {}
        return p.returncode, j, p.stderr.decode("utf-8", "replace")

    def stop(self):
        """SIGTERM (if still running): the exit code, or a signal as -N."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "hung"
        finally:
            self.proc.stdout.close()


def sync_state(db):
    return st.q(db, "SELECT acked_seq, pull_cursor FROM sync_state")[0]


def chain_rows(db, site=None):
    """(site, seq, hex hash) of every change held, or of one site's."""
    if site:
        return st.q(db, "SELECT site, seq, hex(hash) FROM change_log WHERE site = ? "
                        "ORDER BY site, seq", site)
    return st.q(db, "SELECT site, seq, hex(hash) FROM change_log ORDER BY site, seq")


def integrity(db):
    c = sqlite3.connect(db, timeout=30)
    try:
        return c.execute("PRAGMA integrity_check").fetchall()
    finally:
        c.close()


def verify(db):
    p = subprocess.run([st.TALLY, "--db", db, "--json", "verify"], capture_output=True,
                       timeout=120, env=st.env_with(**SAN))
    try:
        ok = p.returncode == 0 and json.loads(p.stdout)["ok"]
    except (ValueError, KeyError):
        ok = False
    return ok, p.stdout.decode("utf-8", "replace")[:600] + p.stderr.decode()[-600:]


def checkpoint(db):
    c = sqlite3.connect(db, timeout=30)
    try:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        c.close()


def requests(log):
    """(path, status) of every push/pull the server answered, in order."""
    return [(m.group(1), int(m.group(2))) for m in
            re.finditer(r"http_request .*?path=(/v1/(?:push|pull)) status=(\d+)", log)]


def make_base(d):
    """A township with one joined village (synced once), then, with the
    server stopped: township decisions for the village, and a batch of new
    village tasks and updates. Returns facts the runs are checked against."""
    t = st.Township(d).start()
    vid = t.village("王家村")
    v = st.Village(d, t, vid, "v")
    # Township decisions the pull brings down (a task for the village, a notice).
    prob = t.tally("problem", "add", "--source", "patrol", "--text", "巡察发现：账目公开不及时"
                   ).stdout.decode().strip()
    ttask = t.tally("task", "add", "--problem", prob, "--measures", "按月公开村务账目",
                    "--owner", "张三", "--leader", "李四", "--deadline", "2027-06-30",
                    "--village", vid).stdout.decode().strip()
    t.tally("notice", "send", "--type", "reminder", "--title", "请按期整改", "--text",
            "请于月底前报送整改进展", "--village", vid)
    t.stop()
    # The village's batch: a problem, tasks, progress (each a progress entry
    # plus the task's move to doing) and an edit.
    ids = v.add_tasks(8)
    for i, tid in enumerate(ids[:4]):
        v.tally("progress", tid, "--percent", str(20 + 10 * i), "--note", "已完成第%d步𠀀" % i)
    v.tally("task", "update", ids[5], "--measures", "调整后的措施：逐户核实")
    for db in (t.db, v.db):
        checkpoint(db)
    site = st.site_of(v.db)
    facts = {
        "site": site,
        "state": sync_state(v.db),
        "own": chain_rows(v.db, site),
        "town_task": ttask,
        "base_town": chain_rows(t.db),
    }
    check(facts["state"][0] < len(facts["own"]), "the batch is queued")
    return facts


def copy_base(base, work):
    shutil.rmtree(work, ignore_errors=True)
    os.mkdir(work)
    for name in DB_FILES:
        src = os.path.join(base, name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(work, name))


def one_run(base, work, facts, ld, n, mode, ops, errno):
    """Returns (reached, outcome, failures); outcome names what happened."""
    copy_base(base, work)
    report = os.path.join(work, "iofail.report")
    arm = os.path.join(work, "arm")
    env = {"LD_PRELOAD": ld, "IOFAIL_AFTER": str(n), "IOFAIL_MODE": mode, "IOFAIL_OPS": ops,
           "IOFAIL_PATH": os.path.join(work, "town.db"), "IOFAIL_SKIP": "town.db.mark",
           "IOFAIL_ERRNO": errno, "IOFAIL_REPORT": report, "IOFAIL_ARM": arm}
    fails = []
    label = "%s/%s N=%d %s" % (ops, mode, n, errno)

    def fail(msg):
        fails.append("%s: %s" % (label, msg))

    r = Run(work, env)
    open(arm, "w").close()
    rc, j, err = r.sync()
    src = r.stop()
    log = r.logtext()
    rep = open(report).read() if os.path.exists(report) else ""
    reached = "fail " in rep
    where = re.search(r"^fail \S+ \S*?town\.db(\S*) ", rep, re.M)
    if "calls " not in rep:
        fail("shim not loaded or server did not exit normally (report %r)" % rep)
    if rc not in (0, 1):
        fail("village exit %r: %s" % (rc, err[-1500:]))
    if src not in (0, 1):
        fail("server exit %r: %s" % (src, log[-3000:]))
    reqs = requests(log)
    for path, status in reqs:
        if status != 200 and status < 500:
            fail("%s answered %d for a disk failure" % (path, status))
    if rc == 0:
        # A failure past the exchange (the shutdown's checkpoint) or one
        # SQLite absorbed.
        outcome = "synced" + ("(%s)" % (where.group(1) or "db") if where else "")
        if not j.get("ok"):
            fail("exit 0 without ok: %r" % j)
    else:
        outcome = "failed"
        e = j.get("error") or {}
        if not reached:
            fail("failed although no failure was injected: %r %s" % (j, err[-500:]))
        if not (ERR_CODE.fullmatch(e.get("code", "")) and
                any(ord(ch) > 0x2e80 for ch in e.get("message", ""))):
            fail("no clear error (stable code + Chinese): %r" % j)
        bad = [p for p, s in reqs if s != 200]
        outcome += ":%s@%s" % (e.get("code", "?"),
                              bad[0][4:] if bad else "exit" if src == 1 else "?")
    acked, cursor = sync_state(r.vdb)
    acked0, cursor0 = facts["state"]
    push_ok = any(p == "/v1/push" and s == 200 for p, s in reqs)
    pull_bad = any(p == "/v1/pull" and s != 200 for p, s in reqs)
    if not push_ok and acked != acked0:
        fail("acked_seq moved %d -> %d without a 200 push answer" % (acked0, acked))
    if (pull_bad or rc != 0) and cursor != cursor0:
        fail("pull_cursor moved %d -> %d on a failed exchange" % (cursor0, cursor))

    # Restart without the shim: what the township holds now is what it
    # kept through the failure (WAL recovery included).
    r = Run(work)
    try:
        held = {(s, q): h for s, q, h in chain_rows(r.db, facts["site"])}
        acked, _ = sync_state(r.vdb)
        for s, q, h in facts["own"]:
            if q <= acked and held.get((s, q)) != h:
                fail("seq %d acknowledged but %s at the township after restart" %
                     (q, "absent" if (s, q) not in held else "different"))
        if held and len(held) not in (acked0, len(facts["own"])):
            # One push carries the whole batch: all of it or none.
            fail("township holds %d of the village's %d changes (batch half-applied)" %
                 (len(held), len(facts["own"])))
        if not push_ok and rc != 0 and len(held) == len(facts["own"]) > acked0:
            # Failed, yet the batch is there: SQLite wrote the commit frame
            # before the failing call and recovery found it. The village
            # resends it and is answered duplicate.
            outcome += " (kept)"
        rc2, j2, err2 = r.sync()
        if rc2 != 0 or not j2.get("ok"):
            fail("resync failed: %r %s" % (j2, err2[-800:]))
    finally:
        src2 = r.stop()
    if src2 != 0:
        fail("clean server exit %r: %s" % (src2, r.logtext()[-2000:]))
    check_converged(r, facts, fail)
    return reached, outcome, fails


def check_converged(r, facts, fail):
    site = facts["site"]
    vown, town = chain_rows(r.vdb, site), chain_rows(r.db, site)
    if vown != facts["own"]:
        fail("the village's own chain changed")
    if town != vown:
        fail("township holds %d village changes, village %d (or different bytes)" %
             (len(town), len(vown)))
    dup = st.q(r.db, "SELECT site, seq, count(*) FROM change_log GROUP BY site, seq "
                     "HAVING count(*) > 1")
    if dup:
        fail("changes held twice at the township: %r" % dup[:5])
    # Everything the village holds (its own and the township's decisions)
    # is at the township with the same bytes, and the merge state agrees.
    tall = set(chain_rows(r.db))
    missing = [x for x in chain_rows(r.vdb) if x not in tall]
    if missing:
        fail("village holds changes the township lacks: %r" % missing[:5])
    if not set(facts["base_town"]) <= tall:
        fail("township lost changes it held before the run")
    (da, _), (db_, _) = st.ledger_digest(r.vdb, r.db)
    if da != db_:
        fail("village and township merge states differ")
    if st.q(r.vdb, "SELECT count(*) FROM task WHERE id = ?", facts["town_task"])[0][0] != 1:
        fail("the township's task did not reach the village")
    for db in (r.db, r.vdb):
        ic = integrity(db)
        if ic != [("ok",)]:
            fail("integrity_check %s: %r" % (os.path.basename(db), ic[:3]))
        ok, out = verify(db)
        if not ok:
            fail("tally verify %s: %s" % (os.path.basename(db), out))


def count_calls(base, work, facts, ld):
    """A clean push-and-pull with every call traced: the write numbers
    grouped by the sync that ends them (one group per commit or
    checkpoint), and the syncs, each as (N, file suffix)."""
    copy_base(base, work)
    report = os.path.join(work, "iofail.report")
    arm = os.path.join(work, "arm")
    r = Run(work, {"LD_PRELOAD": ld, "IOFAIL_AFTER": "0", "IOFAIL_OPS": "write,fsync",
                   "IOFAIL_PATH": os.path.join(work, "town.db"), "IOFAIL_SKIP": "town.db.mark",
                   "IOFAIL_REPORT": report, "IOFAIL_ARM": arm, "IOFAIL_TRACE": "1"})
    open(arm, "w").close()
    rc, j, err = r.sync()
    src = r.stop()
    check(rc == 0 and src == 0, "clean counting run: village %r server %r %s" % (rc, src, err))
    groups, syncs, cur = [], [], []
    nw = 0
    for op, path in re.findall(r"^call (\S+) (\S+) \d+$", open(report).read(), re.M):
        suffix = path.rsplit("town.db", 1)[-1] or "db"
        if op in ("fsync", "fdatasync"):
            syncs.append((len(syncs) + 1, suffix))
            if cur:
                groups.append(cur)
            cur = []
        else:
            nw += 1
            cur.append((nw, suffix))
    if cur:
        groups.append(cur)
    return groups, syncs


def ranges(ns):
    """"1-5,9" for [1, 2, 3, 4, 5, 9]."""
    out, ns = [], sorted(ns)
    i = 0
    while i < len(ns):
        j = i
        while j + 1 < len(ns) and ns[j + 1] == ns[j] + 1:
            j += 1
        out.append(str(ns[i]) if i == j else "%d-%d" % (ns[i], ns[j]))
        i = j + 1
    return ",".join(out)


def spread(groups):
    """Every N (--long), or the first, a middle and the last call of each
    group: the first frame, one inside, and the commit frame of each commit,
    and the same of each checkpoint."""
    ns = [n for g in groups for n, _ in g]
    if LONG:
        return ns
    pick = set()
    for g in groups:
        pick |= {g[0][0], g[len(g) // 2][0], g[-1][0]}
    return sorted(pick)


def body(tmp):
    ld = preload()
    base = os.path.join(tmp, "base")
    os.mkdir(base)
    facts = make_base(base)
    work = os.path.join(tmp, "work")
    fails, lines = [], []
    start = time.monotonic()
    groups, syncs = count_calls(base, work, facts, ld)
    runs = 1
    lines.append("clean push-and-pull: writes %s | fsyncs %s" % (
        " | ".join("%s %s" % ("/".join(sorted({sfx for _, sfx in g})), ranges([n for n, _ in g]))
                   for g in groups),
        ",".join("%d:%s" % s for s in syncs)))
    for ops, todo in (("write", spread(groups)), ("fsync", [n for n, _ in syncs])):
        for mode in ("once", "always"):
            seen = {}
            for i, n in enumerate(todo):
                errno = "EIO" if i % 2 == 0 else "ENOSPC"
                reached, outcome, f = one_run(base, work, facts, ld, n, mode, ops, errno)
                runs += 1
                fails += f
                if not reached:
                    outcome = "not reached"
                seen.setdefault(outcome, []).append(n)
            lines.append("%-5s %-6s N=%s: %s" % (ops, mode, ranges(todo), "; ".join(
                "%s N=%s" % (k, ranges(v)) for k, v in sorted(seen.items()))))
    for line in lines:
        print(line)
    print("%d runs in %.1f s" % (runs, time.monotonic() - start))
    for f in fails:
        print("FAIL:", f, file=sys.stderr)
    return 1 if fails else 0


def main():
    tmp = tempfile.mkdtemp(prefix="tally-iofail-srv-")
    try:
        return body(tmp)
    except Failure as e:
        print("FAIL:", e, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
