#!/usr/bin/env python3
"""Integration tests of `tallyd serve`: a real server process over real TLS
on loopback, real database files made with `tally`, enrolment with `tally
join`, push bodies built from a village's own changes (srv_testc). Run one
case: server_test.py CASE."""
import json
import os
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import tempfile
import threading
import time

from tallytest import (BIN, VALGRIND, Failure, build, check, closed_by_peer, main, now,
                       read_response)

TALLY = os.path.join(BIN, "client", "tally")
TALLYD = os.path.join(BIN, "daemon", "tallyd")
SRV_TESTC = os.path.join(BIN, "tests", "daemon", "srv_testc")


def run(args, env=None, ok=True):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run(VALGRIND + args, capture_output=True, env=e, timeout=60)
    if ok and p.returncode != 0:
        raise Failure("%s -> %d: %s" % (" ".join(args), p.returncode, p.stderr.decode()))
    return p


def tally(db, *args, env=None, ok=True):
    return run([TALLY, "--db", db] + list(args), env=env, ok=ok)


class Town:
    def __init__(self, **opts):
        self.dir = tempfile.mkdtemp(prefix="tally_srv_")
        self.db = os.path.join(self.dir, "town.db")
        self.opts = opts
        self.proc = None
        tally(self.db, "init", "--role", "township", "--name", "某某镇")
        self.start()

    def start(self, env=None, extra=()):
        self.log_path = os.path.join(self.dir, "server.log")
        args = VALGRIND + [TALLYD, "serve", "--db", self.db, "--listen", "127.0.0.1:0"]
        for k, v in self.opts.items():
            args += ["--set", "%s=%s" % (k, v)]
        args += list(extra)
        e = dict(os.environ)
        e.update(env or {})
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, env=e)
        line = self.proc.stdout.readline().decode()
        parts = dict(kv.split("=", 1) for kv in line.split())
        if "port" not in parts:
            self.proc.kill()
            raise Failure("server did not start: %r\n%s" % (line, self.logtext()))
        self.port = int(parts["port"])
        self.pin = parts["pin"]
        self.epoch = parts["epoch"]

    def logtext(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def connect(self, timeout=10, minv=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.db + ".crt")
        if minv:
            ctx.minimum_version = minv
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")

    def request(self, method, path, body=b"", token=None, headers=None):
        h = {}
        if method == "POST":
            h["Content-Type"] = "application/json"
        if token:
            h["Authorization"] = "Bearer " + token
        h.update(headers or {})
        with self.connect() as s:
            s.sendall(build(method, path, body, h))
            st, hd, b = read_response(s)
        return st, hd, (json.loads(b) if b else None)

    def sql(self, q, *a):
        c = sqlite3.connect(self.db, timeout=10)
        try:
            return c.execute(q, a).fetchall()
        finally:
            c.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(timeout=20)
            check(rc == 0, "server exit %r\n%s" % (rc, self.logtext()))
        self.log.close()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Village:
    """A village device enrolled with `tally join`, with a self-check task."""

    def __init__(self, town, name, env=None):
        self.town = town
        self.db = os.path.join(town.dir, name + ".db")
        out = tally(town.db, "village", "add", name).stdout.decode().split()
        check(len(out) == 2 and out[1].startswith("TALLY1-"), "village add output %r" % out)
        self.village_id, self.code = out
        tally(self.db, "join", self.code, "--name", name + "-pc")
        c = sqlite3.connect(self.db)
        rows = dict(c.execute("SELECT key, value FROM settings"))
        self.site = c.execute("SELECT site_id FROM site").fetchone()[0]
        c.close()
        self.token = rows["sync_token"]
        self.device_id = rows["sync_device_id"]
        self.env = env or {}
        run([SRV_TESTC, "pull", "--db", self.db])
        p = tally(self.db, "problem", "add", "--source", "self_check", "--text", "自查：村务公开不及时",
                  env=self.env)
        self.problem = p.stdout.decode().strip()
        t = tally(self.db, "task", "add", "--problem", self.problem, "--measures", "每月公开",
                  "--owner", "李明", "--leader", "王建国", "--deadline", "2030-12-31", env=self.env)
        self.task = t.stdout.decode().strip()

    def make(self, n):
        run([SRV_TESTC, "make", "--db", self.db, "--task", self.task, "--count", str(n)],
            env=self.env)

    def head(self):
        out = run([SRV_TESTC, "head", "--db", self.db]).stdout.decode()
        return int(out.strip().split("=")[1])

    def body(self, first, n, device_ms=None):
        args = [SRV_TESTC, "body", "--db", self.db, "--from", str(first), "--count", str(n)]
        if device_ms:
            args += ["--device-ms", str(device_ms)]
        return run(args, env=self.env).stdout

    def push(self, body, token=None):
        return self.town.request("POST", "/v1/push", body, token or self.token)

    def pull(self, cursor=0, limit=1000, epoch=""):
        b = json.dumps({"v": 1, "type": "pull", "epoch": epoch, "cursor": cursor,
                        "limit": limit}).encode()
        return self.town.request("POST", "/v1/pull", b, self.token)


def is_error(body, code):
    return (body.get("type") == "error" and body.get("code") == code and
            any(ord(ch) > 0x2e80 for ch in body.get("message", "")))


def with_town(fn, **opts):
    def runit():
        t = Town(**opts)
        try:
            fn(t)
            t.stop()
        finally:
            t.cleanup()
    return runit


def statuses(ans):
    return [r["status"] for r in ans["results"]]


# ---- cases ----

def roundtrip(t):
    v = Village(t, "王家村")
    n = v.head()
    check(n >= 2, "village has %d changes" % n)
    st, _, ans = v.push(v.body(1, n))
    check(st == 200 and ans["type"] == "push_answer", "push %d %r" % (st, ans))
    check(statuses(ans) == ["applied"] * n and ans["acked"] == n, "answer %r" % ans)
    check(ans["epoch"] == t.epoch, "epoch")
    rows = t.sql("SELECT count(*) FROM change_log WHERE site = ?", v.site)[0][0]
    check(rows == n, "server holds %d of %d" % (rows, n))
    check(t.sql("SELECT count(*) FROM task WHERE id = ?", v.task)[0][0] == 1, "task at township")
    # the village pulls: its village record, nothing of its own site
    st, _, page = v.pull()
    check(st == 200 and page["type"] == "pull_answer", "pull %r" % page)
    sites = {c["site"] for c in page["changes"]}
    check(v.site not in sites, "own changes came back")
    check(any(c["kind"] == "village" and c["id"] == v.village_id for c in page["changes"]),
          "village record not pulled")
    # a township task for the village reaches it; a township user sees everything
    tally(t.db, "problem", "add", "--source", "inspection", "--text", "道路硬化不到位")
    prob = t.sql("SELECT id FROM problem WHERE source = 'inspection'")[0][0]
    task = tally(t.db, "task", "add", "--problem", prob, "--village", v.village_id, "--measures",
                 "硬化", "--owner", "李明", "--leader", "王建国",
                 "--deadline", "2030-06-30").stdout.decode().strip()
    st, _, page2 = v.pull(cursor=page["next"], epoch=page["epoch"])
    kinds = [(c["kind"], c["id"]) for c in page2["changes"]]
    check(("problem", prob) in kinds and ("task", task) in kinds, "township task not pulled: %r" % kinds)
    check(kinds.index(("problem", prob)) < kinds.index(("task", task)), "problem after task")
    user = tally(t.db, "user", "add", "督查组").stdout.decode().strip()
    st, _, all_ = t.request("POST", "/v1/pull", json.dumps(
        {"v": 1, "type": "pull", "epoch": "", "cursor": 0, "limit": 1000}).encode(), user)
    check(st == 200 and sum(1 for c in all_["changes"] if c["site"] == v.site) == n,
          "user pull")
    st, _, devs = t.request("GET", "/v1/devices", token=user)
    check(st == 200 and devs["devices"][0]["acked_seq"] == n and
          devs["devices"][0]["queue_depth"] == 0, "devices %r" % devs)
    st, _, who = t.request("GET", "/v1/whoami", token=v.token)
    check(st == 200 and who["village"] == v.village_id and who["site"] == v.site, "whoami")
    st, _, h = t.request("GET", "/v1/health")
    check(st == 200 and h["ok"] is True and h["epoch"] == t.epoch, "health %r" % h)


def replay_and_gap(t):
    v = Village(t, "王家村")
    v.make(3)
    n = v.head()
    st, _, ans = v.push(v.body(3, n - 2))
    check(st == 409 and is_error(ans, "seq_gap") and ans["expected"] == 1, "gap %d %r" % (st, ans))
    check(t.sql("SELECT count(*) FROM change_log WHERE site = ?", v.site)[0][0] == 0,
          "gap applied something")
    body = v.body(1, n)
    st, _, ans = v.push(body)
    check(st == 200 and statuses(ans) == ["applied"] * n, "first push %r" % ans)
    before = t.sql("SELECT count(*) FROM change_log")[0][0]
    prog = t.sql("SELECT count(*) FROM progress")[0][0]
    # the captured request, sent again later: no second effect
    time.sleep(0.2)
    st, _, ans = v.push(body)
    check(st == 200 and statuses(ans) == ["duplicate"] * n and ans["acked"] == n, "replay %r" % ans)
    check(t.sql("SELECT count(*) FROM change_log")[0][0] == before, "replay added rows")
    check(t.sql("SELECT count(*) FROM progress")[0][0] == prog, "replay added progress")
    # a tampered body: the chain does not reach head, nothing applied
    v.make(1)
    b = v.body(n + 1, 1).replace("第1次".encode(), "第9次".encode())
    st, _, ans = v.push(b)
    check(st == 400 and is_error(ans, "chain_broken"), "tampered %d %r" % (st, ans))
    check(t.sql("SELECT count(*) FROM change_log")[0][0] == before, "tampered applied")


def credentials(t):
    v = Village(t, "王家村")
    body = v.body(1, 1)
    st, _, ans = t.request("POST", "/v1/push", body)
    check(st == 401 and is_error(ans, "unauthorized"), "no token %d %r" % (st, ans))
    st, _, ans = t.request("POST", "/v1/push", body, "d.0123456789abcdef." + "0" * 64)
    check(st == 401 and is_error(ans, "unauthorized"), "unknown token %r" % ans)
    st, _, ans = t.request("GET", "/v1/whoami", token=v.token[:-1] + ("0" if v.token[-1] != "0" else "1"))
    check(st == 401 and is_error(ans, "unauthorized"), "wrong secret %r" % ans)
    # the used join code, again
    other = os.path.join(t.dir, "other.db")
    p = tally(other, "join", v.code, ok=False)
    check(p.returncode != 0 and b"join_code_used" in p.stderr, "used code: %r" % p.stderr)
    check(not os.path.exists(other), "failed join left a database")
    tally(t.db, "device", "revoke", v.device_id)
    st, _, ans = v.push(body)
    check(st == 401 and is_error(ans, "revoked") and "注销" in ans["message"], "revoked %r" % ans)
    check(t.sql("SELECT count(*) FROM change_log WHERE site = ?", v.site)[0][0] == 0, "applied")


def cross_village(t):
    a = Village(t, "王家村")
    b = Village(t, "李家村")
    st, _, ans = a.push(b.body(1, b.head()))
    check(st == 403 and is_error(ans, "site_mismatch"), "A pushes B's %d %r" % (st, ans))
    check(t.sql("SELECT count(*) FROM change_log WHERE site = ?", b.site)[0][0] == 0, "stored")
    check(t.sql("SELECT count(*) FROM srv_audit WHERE event = 'site_mismatch' AND device_id = ?",
                a.device_id)[0][0] == 1, "no audit row")
    check("site_mismatch" in t.logtext(), "no audit log line")
    st, _, ans = b.push(b.body(1, b.head()))
    check(st == 200, "B's own push")
    st, _, page = a.pull()
    check(all(c["site"] != b.site for c in page["changes"]), "A pulled B's changes")
    check(all(c.get("fields", {}).get("village") in (None, a.village_id) for c in page["changes"]),
          "A pulled another village's record")
    st, _, ans = t.request("GET", "/v1/devices", token=a.token)
    check(st == 403 and is_error(ans, "forbidden"), "device listed devices")


def limits(t):
    v = Village(t, "王家村")
    v.make(6)
    with t.connect() as s:
        s.sendall(build("POST", "/v1/push", b"", {"Content-Length": "100000",
                                                  "Content-Type": "application/json",
                                                  "Authorization": "Bearer " + v.token}))
        st, _, _ = read_response(s)
    check(st == 413, "oversize declared body: %d" % st)
    st, _, _ = t.request("POST", "/v1/push", b"{}", v.token, {"Content-Type": "text/plain"})
    check(st == 415, "text/plain: %d" % st)
    st, _, _ = t.request("POST", "/v1/push", b"{}", v.token, {"Content-Encoding": "br"})
    check(st == 415, "br: %d" % st)
    st, _, ans = v.push(v.body(1, 6))
    check(st == 400 and is_error(ans, "too_many"), "6 changes over max 5: %d %r" % (st, ans))
    st, _, ans = v.push(v.body(1, 5))
    check(st == 200 and ans["acked"] == 5, "5 changes %r" % ans)
    st, _, ans = t.request("POST", "/v1/push", b'{"v":2,"type":"push"}', v.token)
    check(st == 400 and is_error(ans, "version_unsupported") and ans["version"] == 1, "v2 %r" % ans)


def rate_limit(t):
    v = Village(t, "王家村")
    # the bucket holds 3; the enrolment's first pull took one
    codes = [t.request("GET", "/v1/whoami", token=v.token) for _ in range(3)]
    check([c[0] for c in codes] == [200, 200, 429], "statuses %r" % [c[0] for c in codes])
    st, hd, ans = codes[2]
    check(st == 429 and is_error(ans, "rate_limited") and int(hd.get("retry-after", "0")) >= 1 and
          ans.get("retry_after", 0) >= 1, "429 %d %r %r" % (st, hd, ans))
    # keyed by device: another village is not limited
    w = Village(t, "李家村")
    st, _, _ = t.request("GET", "/v1/whoami", token=w.token)
    check(st == 200, "other village limited: %d" % st)


def tls_refused(t):
    with socket.create_connection(("127.0.0.1", t.port), timeout=10) as s:
        s.sendall(build("GET", "/v1/health"))
        data = b""
        try:
            while True:
                c = s.recv(4096)
                if not c:
                    break
                data += c
        except (ConnectionError, socket.timeout):
            pass
    check(not data.startswith(b"HTTP/"), "plain HTTP answered: %r" % data[:80])

    def s_client(flag):
        p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % t.port, flag,
                            "-cipher", "DEFAULT:@SECLEVEL=0", "-brief"],
                           input=b"", capture_output=True, timeout=20)
        return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")
    rc, out = s_client("-tls1_2")
    check(rc == 0 and "TLSv1.2" in out, "control: TLS 1.2 refused: %s" % out)
    for flag in ("-tls1", "-tls1_1"):
        rc, out = s_client(flag)
        check(rc != 0, "%s accepted: %s" % (flag, out))


def slow_client(t):
    v = Village(t, "王家村")
    s = t.connect()
    stop = threading.Event()
    head = build("GET", "/v1/whoami", b"", {"Authorization": "Bearer " + v.token})
    t0 = now()

    def dribble():
        try:
            for ch in head:
                if stop.is_set():
                    return
                s.sendall(bytes([ch]))
                time.sleep(1.0)
        except (OSError, ssl.SSLError):
            pass
    th = threading.Thread(target=dribble, daemon=True)
    th.start()
    # meanwhile a normal village syncs
    time.sleep(0.5)
    st, _, ans = v.push(v.body(1, v.head()))
    check(st == 200, "normal village blocked: %d" % st)
    dropped = closed_by_peer(s, 10)
    stop.set()
    elapsed = now() - t0
    check(dropped and elapsed < 8, "slow client kept %.1fs (dropped=%s)" % (elapsed, dropped))
    s.close()


def kill_between_commit_and_answer(t):
    """kill -9 after the commit and before the answer, 100 times; every
    change the village was told about is held exactly once."""
    vv = Village(t, "王家村")
    t.stop()
    rounds = 100
    vv.make(rounds)
    total = vv.head()
    mark = t.db + ".mark"
    acked = 0
    killed = 0
    for i in range(1, rounds + 1):
        t.start(env={"TALLY_TEST_PAUSE_AFTER_COMMIT_MS": "400"})
        if i % 4 == 0 and acked < total:
            # now and then an answer gets through: those are acknowledged
            st, _, ans = vv.push(vv.body(acked + 1, 1))
            check(st == 200, "round %d answered push %d %r" % (i, st, ans))
            acked = ans["acked"]
        last = min(total, acked + 1 + i % 3)
        if last <= acked:
            last = acked + 1 if acked < total else total
        body = vv.body(acked + 1 if acked < total else total, max(1, last - acked))
        before = os.stat(mark).st_mtime_ns
        result = {}

        def send():
            try:
                result["r"] = vv.push(body)
            except Exception as e:  # the server dies under the request
                result["e"] = e
        th = threading.Thread(target=send)
        th.start()
        deadline = now() + 10
        while os.stat(mark).st_mtime_ns == before and now() < deadline:
            time.sleep(0.002)
        check(now() < deadline, "round %d: no commit seen" % i)
        t.kill9()
        th.join(10)
        check("r" not in result, "round %d: answered before the kill: %r" % (i, result))
        killed += 1
    check(killed == rounds, "killed %d times" % killed)
    t.start()
    rows = t.sql("SELECT seq FROM change_log WHERE site = ? ORDER BY seq", vv.site)
    seqs = [r[0] for r in rows]
    check(seqs == list(range(1, len(seqs) + 1)), "server seqs not 1..n: %r" % seqs[:20])
    check(len(seqs) >= acked, "acknowledged %d, held %d" % (acked, len(seqs)))
    # the village resends from its acked point: nothing twice, all held
    st, _, ans = vv.push(vv.body(acked + 1, total - acked))
    check(st == 200 and ans["acked"] == total, "final push %r" % ans)
    held = t.sql("SELECT count(*), count(DISTINCT seq) FROM change_log WHERE site = ?", vv.site)[0]
    check(held == (total, total), "held %r of %d" % (held, total))
    check(t.sql("PRAGMA integrity_check")[0][0] == "ok", "integrity")


def restore_epoch(t):
    v = Village(t, "王家村")
    v.make(3)
    n = v.head()
    st, _, ans = v.push(v.body(1, 3))
    check(st == 200 and ans["acked"] == 3, "first %r" % ans)
    epoch1 = ans["epoch"]
    t.stop()
    backup = os.path.join(t.dir, "backup.db")
    src = sqlite3.connect(t.db)
    dst = sqlite3.connect(backup)
    src.backup(dst)
    src.close()
    dst.close()
    t.start()
    st, _, ans = v.push(v.body(4, n - 3))
    check(st == 200 and ans["acked"] == n and ans["epoch"] == epoch1, "second %r" % ans)
    t.stop()
    for sfx in ("", "-wal", "-shm"):
        if os.path.exists(t.db + sfx):
            os.unlink(t.db + sfx)
    shutil.copy(backup, t.db)
    t.start()
    check(t.epoch != epoch1, "restored database kept its epoch")
    check("server_restored" in t.logtext(), "restore not logged")
    # the village resends everything of the old epoch from seq 1
    st, _, ans = v.push(v.body(1, n))
    check(st == 200 and ans["epoch"] == t.epoch, "resend %r" % ans)
    check(statuses(ans) == ["duplicate"] * 3 + ["applied"] * (n - 3), "statuses %r" % statuses(ans))
    held = t.sql("SELECT count(*) FROM change_log WHERE site = ?", v.site)[0][0]
    check(held == n, "held %d of %d" % (held, n))
    # an operator's new epoch
    t.stop()
    t.start(extra=["--new-epoch"])
    check(t.epoch != ans["epoch"], "--new-epoch kept the epoch")


def clock_ahead(t):
    year = 365 * 24 * 3600 * 1000
    v = Village(t, "王家村", env={"TALLY_CLOCK_SKEW_MS": str(year)})
    n = v.head()
    device_ms = int(time.time() * 1000) + year
    t0 = int(time.time() * 1000)
    st, _, ans = v.push(v.body(1, n, device_ms=device_ms))
    check(st == 200 and statuses(ans) == ["applied"] * n, "push %r" % ans)
    for r in ans["results"]:
        check("eff" in r and t0 - 2000 <= (r["eff"] >> 16) <= int(time.time() * 1000) + 2000,
              "eff not at server time: %r" % r)
    check(abs(ans["offset_ms"] + year) < 120000, "offset %r" % ans["offset_ms"])
    row = t.sql("SELECT hlc, eff, recv_ms FROM change_log WHERE site = ? AND seq = 1", v.site)[0]
    check(row[0] > row[1] and abs(row[2] - t0) < 60000, "hlc/eff/recv %r" % (row,))


CASES = {
    "roundtrip": with_town(roundtrip),
    "replay_and_gap": with_town(replay_and_gap),
    "credentials": with_town(credentials),
    "cross_village": with_town(cross_village),
    "limits": with_town(limits, max_body_bytes="64kb", max_changes="5"),
    "rate_limit": with_town(rate_limit, rate_per_minute="6", rate_burst="3"),
    "tls_refused": with_town(tls_refused),
    "slow_client": with_town(slow_client, header_timeout="3s"),
    "kill_between_commit_and_answer": with_town(kill_between_commit_and_answer),
    "restore_epoch": with_town(restore_epoch),
    "clock_ahead": with_town(clock_ahead),
}

if __name__ == "__main__":
    main(CASES)
