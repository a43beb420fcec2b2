"""Village sync integration tests: a real `tallyd serve` (township), real
`tally sync` / `tallyd sync` (village), real TLS with the pin from a real
join code, loopback, kernel-chosen ports. Python 3 standard library only.

Each case builds its world from nothing: a township database with a
village, a join code, a joined village database, then drives the
programs and reads both databases with sqlite3 to check the outcome.
"""
import hashlib
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tallytest import BIN, VALGRIND, Failure, Proxy, check, main, now  # noqa: E402

TALLY = os.path.join(BIN, "client", "tally")
TALLYD = os.path.join(BIN, "daemon", "tallyd")
HELPER = os.path.join(BIN, "tests", "daemon", "sync_helper")


def env_with(**kw):
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
    env.pop("TALLY_CLOCK_SKEW_MS", None)
    for k, v in kw.items():
        env[k] = str(v)
    return env


def run(args, env=None, timeout=90, ok=(0,)):
    p = subprocess.run(VALGRIND + args, capture_output=True, timeout=timeout,
                       env=env or env_with())
    if ok is not None and p.returncode not in ok:
        raise Failure("%s exit %d\nstdout: %s\nstderr: %s" % (
            " ".join(args[:4]), p.returncode, p.stdout.decode()[-2000:],
            p.stderr.decode()[-2000:]))
    return p


class Township:
    """A township database and its `tallyd serve`."""

    def __init__(self, d, name="某镇"):
        self.dir = d
        self.db = os.path.join(d, "town.db")
        run([TALLY, "--db", self.db, "init", "--role", "township", "--name", name])
        self.proc = None
        self.port = None
        self.log_path = os.path.join(d, "serve.log")

    def tally(self, *args, env=None, ok=(0,)):
        return run([TALLY, "--db", self.db] + list(args), env=env, ok=ok)

    def start(self, port=0, extra=(), host="127.0.0.1", prefix=(), env=None):
        """prefix: a command to run it under (ip netns exec NS); env: its
        environment (a shifted TALLY_CLOCK_SKEW_MS)."""
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            list(prefix) + VALGRIND + [TALLYD, "serve", "--db", self.db, "--listen",
                                       "%s:%d" % (host, port)] + list(extra),
            stdout=subprocess.PIPE, stderr=self.log, env=env or env_with())
        line = self.proc.stdout.readline().decode()
        m = re.search(r"port=(\d+) pin=(\S+) epoch=(\S+)", line)
        if not m:
            self.proc.kill()
            raise Failure("tallyd serve did not start: %r\n%s" % (line, self.logtext()))
        self.port = int(m.group(1))
        self.pin = m.group(2)
        self.epoch = m.group(3)
        return self

    def logtext(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def url(self):
        return "https://127.0.0.1:%d" % self.port

    def village(self, name):
        """Adds a village; returns its id (the join code, printed too once
        the server knows its address, is made again by join_code)."""
        return self.tally("village", "add", "--name", name).stdout.decode().split()[0]

    def join_code(self, village_id, url=None):
        p = self.tally("village", "code", village_id, "--url", url or self.url())
        return p.stdout.decode().split()[0]


class Village:
    def __init__(self, d, town, village_id, name="v"):
        self.db = os.path.join(d, name + ".db")
        self.town = town
        run([TALLY, "--db", self.db, "join", town.join_code(village_id), "--name", name])
        self.problem = None
        # The village record itself comes down with the first pull.
        r = self.sync()
        check(r["ok"] and r["pulled_new"] >= 1, "first sync pulls the village: %r" % r)

    def tally(self, *args, env=None, ok=(0,)):
        return run([TALLY, "--db", self.db] + list(args), env=env, ok=ok)

    def sync(self, *extra, env=None, ok=(0,)):
        p = self.tally("--json", "sync", *extra, env=env, ok=ok)
        return json.loads(p.stdout.decode() or "{}")

    def status(self, env=None):
        return json.loads(self.tally("--json", "status", env=env).stdout.decode())

    def add_tasks(self, n, env=None):
        if not self.problem:
            self.problem = self.tally("problem", "add", "--source", "self_check", "--text",
                                      "自查发现的问题", env=env).stdout.decode().strip()
        ids = []
        for i in range(n):
            ids.append(self.tally("task", "add", "--problem", self.problem, "--measures",
                                  "整改措施第%d条" % i, "--owner", "李明", "--leader", "王书记",
                                  "--deadline", "2027-06-30", env=env).stdout.decode().strip())
        return ids


def q(db, sql, *args):
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=30)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def site_of(db):
    return q(db, "SELECT site_id FROM site")[0][0]


def own_changes(db, site):
    """(seq, hash, eff, state) of site's changes held in db."""
    return q(db, "SELECT seq, hex(hash), coalesce(eff, 0), state FROM change_log "
                 "WHERE site = ? ORDER BY seq", site)


def digest(db, keys):
    """SHA-256 over the merge state of the records in keys (kind, id)."""
    h = hashlib.sha256()
    want = {tuple(k) for k in keys}
    # One query, not one per record (10,000 records in the soak tests);
    # SQLite's BINARY order of UTF-8 is Python's order of str.
    for row in q(db, "SELECT kind, record_id, field, quote(value), stamp, site, seq "
                     "FROM field_state ORDER BY kind, record_id, field"):
        if row[:2] in want:
            h.update(repr(row).encode())
    return h.hexdigest()


def ledger_digest(vdb, tdb):
    """Both sides' digests over the records visible to the village, and of
    the village's own chain as each holds it."""
    keys = q(vdb, "SELECT DISTINCT kind, record_id FROM field_state")
    site = site_of(vdb)
    return ((digest(vdb, keys), own_changes(vdb, site)),
            (digest(tdb, keys), own_changes(tdb, site)))


def world(tmp, villages=1):
    t = Township(tmp).start()
    vs = []
    for i in range(villages):
        vid = t.village("村%d" % i)
        vs.append(Village(tmp, t, vid, "v%d" % i))
    return t, vs


def with_world(fn, villages=1):
    def case():
        tmp = tempfile.mkdtemp(prefix="tally_sync_")
        t = None
        try:
            t, vs = world(tmp, villages)
            fn(tmp, t, vs)
        finally:
            if t:
                t.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    return case


# ---- cases ------------------------------------------------------------------------


def round_trip(tmp, t, vs):
    v = vs[0]
    ids = v.add_tasks(3)
    st = v.status()
    check(st["pending"] == 4, "4 changes queued (problem + 3 tasks): %r" % st)
    r = v.sync()
    check(r["ok"] and r["pushed"] == 4 and r["applied"] == 4, "pushed 4: %r" % r)
    st = v.status()
    check(st["pending"] == 0 and st["acked_seq"] == 4, "all acked: %r" % st)
    check(st["sync"]["last_success"] and st["sync"]["last_error"] is None, "success recorded")
    check(st["sync"]["epoch"] == t.epoch, "epoch stored")
    site = site_of(v.db)
    check(own_changes(v.db, site) == own_changes(t.db, site), "server holds the same chain")
    for tid in ids:
        check(q(t.db, "SELECT count(*) FROM task WHERE id = ?", tid)[0][0] == 1, "task at server")
    # Again: nothing to push, nothing new.
    r = v.sync()
    check(r["ok"] and r["pushed"] == 0, "second sync pushes nothing: %r" % r)
    # A township notice to the village arrives on the next sync.
    t.tally("notice", "send", "--type", "reminder", "--title", "请加快进度", "--text",
            "请于月底前完成整改", "--village", q(v.db, "SELECT village_id FROM site")[0][0])
    r = v.sync()
    check(r["ok"] and r["pulled_new"] >= 1, "notice pulled: %r" % r)
    check(q(v.db, "SELECT count(*) FROM notice WHERE title = '请加快进度'")[0][0] == 1,
          "notice in the village db")
    a, b = ledger_digest(v.db, t.db)
    check(a == b, "village and township agree")
    out = v.tally("status").stdout.decode()
    check("上次同步成功" in out and "乡镇服务器" in out, "status shows sync: %s" % out)


class Daemon:
    """A `tallyd sync` process for a village database."""

    def __init__(self, v, *extra, env=None):
        self.log_path = v.db + ".syncd.log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            VALGRIND + [TALLYD, "sync", "--db", v.db, "--backoff-min-ms", "50",
                        "--backoff-max-ms", "1000"] + list(extra),
            stdout=subprocess.DEVNULL, stderr=self.log, env=env or env_with())

    def logtext(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, what, count=1, timeout=30):
        t0 = now()
        while now() - t0 < timeout:
            if self.logtext().count(what) >= count:
                return
            check(self.proc.poll() is None, "tallyd sync died: %s" % self.logtext()[-2000:])
            time.sleep(0.02)
        raise Failure("no %r in time: %s" % (what, self.logtext()[-3000:]))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Failure("tallyd sync ignored SIGTERM")
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def wait_until(cond, timeout, what):
    t0 = now()
    while now() - t0 < timeout:
        if cond():
            return now() - t0
        time.sleep(0.02)
    raise Failure("timed out waiting for " + what)


def helper(*args):
    return run([HELPER] + [str(a) for a in args]).stdout.decode()


def village_tasks_at(tdb, vdb):
    vid = q(vdb, "SELECT village_id FROM site")[0][0]
    return q(tdb, "SELECT count(*) FROM task WHERE village = ?", vid)[0][0]


def same_chain(v, t):
    site = site_of(v.db)
    a, b = own_changes(v.db, site), own_changes(t.db, site)
    check(len(a) == len(b) and a == b, "village holds %d own changes, township %d%s" % (
        len(a), len(b), "" if len(a) != len(b) else " (different)"))
    return len(a)


def daemon_push_on_write(tmp, t, vs):
    v = vs[0]
    d = Daemon(v, "--idle-pull", "60")
    try:
        d.wait_log("sync_done")
        ids = v.add_tasks(1)  # a problem, then a task: two writes
        t0 = now()
        wait_until(lambda: q(t.db, "SELECT count(*) FROM task WHERE id = ?", ids[0])[0][0] == 1,
                   10, "the task at the township")
        took = now() - t0
        check(took < 1.5, "pushed %.2fs after the write (want < 1.5 s)" % took)
        # Idle: no cycle runs without a write (the next pull is 60 s away).
        # The cycle that pushed still has to read its answer and pull first.
        wait_until(lambda: v.status()["pending"] == 0, 10, "the answer applied")
        time.sleep(0.5)
        n = d.logtext().count("sync_done")
        time.sleep(1.0)
        check(d.logtext().count("sync_done") == n, "no polling while idle")
        t1 = now()
        rc = d.stop()
        check(rc == 0 and now() - t1 < 5, "clean stop on SIGTERM: rc %r" % rc)
        check("sync_stopped" in d.logtext(), "stop logged")
        st = v.status()
        check(st["pending"] == 0, "nothing left: %r" % st)
    finally:
        d.kill()


def offline_then_online(tmp, t, vs):
    v = vs[0]
    port = t.port
    t.stop()
    helper("tasks", v.db, 1000)  # a problem and 1,000 tasks
    r = v.sync(ok=(1,))
    check(not r["ok"] and r["error"]["code"] == "network", "server down -> network: %r" % r)
    st = v.status()
    check(st["pending"] == 1001 and st["acked_seq"] == 0, "all queued, none marked: %r" % {
        k: st[k] for k in ("pending", "acked_seq")})
    check(st["sync"]["last_error"]["code"] == "network" and st["sync"]["last_error"]["message"],
          "error recorded with its Chinese text: %r" % st["sync"]["last_error"])
    out = v.tally("status").stdout.decode()
    check("同步失败原因" in out and "待上传 1001 条" in out, "status in Chinese: %s" % out)
    t.start(port=port)
    d = Daemon(v)
    try:
        wait_until(lambda: q(v.db, "SELECT acked_seq FROM sync_state")[0][0] == 1001, 60,
                   "all acknowledged")
    finally:
        rc = d.stop()
    check(rc == 0, "tallyd sync exit %r: %s" % (rc, d.logtext()[-2000:]))
    check(same_chain(v, t) == 1001, "1,001 own changes on both sides")
    check(village_tasks_at(t.db, v.db) == 1000, "1,000 tasks at the township")
    check(q(t.db, "SELECT count(*) FROM change_log WHERE site = ?", site_of(v.db))[0][0] == 1001,
          "each exactly once")


def cut_every_few_kib(tmp, t, vs):
    v = vs[0]
    helper("tasks", v.db, 10000)
    p = Proxy(t.port, "--cut", "1024-65536", "--seed", str(random.randrange(1 << 30)))
    d = Daemon(v, "--url", "https://127.0.0.1:%d" % p.port)
    try:
        wait_until(lambda: q(v.db, "SELECT acked_seq FROM sync_state")[0][0] == 10001, 85,
                   "all 10,001 acknowledged through the cutting proxy")
        d.wait_log("sync_done", 1, timeout=20)
    finally:
        d.stop()
        cuts = p.stats()["cuts"]
        p.stop()
    log = d.logtext()
    fails = log.count("sync_failed")
    check(cuts >= 5, "the proxy cut connections (%d)" % cuts)
    check(same_chain(v, t) == 10001, "10,001 own changes on both sides")
    check(village_tasks_at(t.db, v.db) == 10000, "10,000 tasks at the township")
    done = re.findall(r"sync_done pushed=(\d+).* sent=(\d+) received=(\d+)", log)
    codes = re.findall(r"sync_failed code=(\S+)", log)
    print("  cuts=%d failed_cycles=%d (%s) cycles=%r" % (cuts, fails, " ".join(codes), done))


def kill9_daemon(tmp, t, vs):
    v = vs[0]
    rnd = random.Random()
    for i in range(200):
        if i % 4 == 0:
            helper("tasks", v.db, rnd.randint(1, 30))
        d = Daemon(v, env=env_with())
        time.sleep(rnd.uniform(0, 0.08))
        d.kill()
    # 200 daemon starts in seconds can use up the device's request budget
    # (120 a minute): the final sync waits its turn as a daemon would.
    for _ in range(90):
        r = v.sync(ok=(0, 1))
        if r.get("ok") or r.get("error", {}).get("code") != "rate_limited":
            break
        time.sleep(1)
    check(r.get("ok"), "final sync after the kills: %r" % r.get("error"))
    same_chain(v, t)
    a, b = ledger_digest(v.db, t.db)
    check(a == b, "village and township agree after 200 kills")
    v.tally("verify")


def wrong_pin(tmp, t, vs):
    v = vs[0]
    v.add_tasks(2)
    other = "sha256//" + __import__("base64").b64encode(os.urandom(32)).decode()
    r = v.sync("--pin", other, ok=(1,))
    check(r["error"]["code"] == "pin_mismatch", "wrong pin refused: %r" % r)
    st = v.status()
    check(st["acked_seq"] == 0 and st["pending"] == 3, "nothing marked: %r" % st)
    check(st["sync"]["last_error"]["code"] == "pin_mismatch", "recorded")
    check(q(t.db, "SELECT count(*) FROM change_log WHERE site = ?", site_of(v.db))[0][0] == 0,
          "nothing reached the server")


CA_CNF = """[ca]
default_ca = d
[d]
dir = %(dir)s
database = %(dir)s/index.txt
new_certs_dir = %(dir)s
serial = %(dir)s/serial
default_md = sha256
policy = p
copy_extensions = copy
unique_subject = no
[p]
commonName = supplied
[ext]
subjectAltName = %(san)s
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
"""


def make_ca(d):
    """A throwaway CA: returns a function issuing leaf certificates."""
    def sh(*a):
        run(list(a))
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
       "-nodes", "-keyout", os.path.join(d, "ca.key"), "-out", os.path.join(d, "ca.pem"),
       "-days", "3650", "-subj", "/CN=Test Township CA")

    def issue(name, san, start, end):
        cd = os.path.join(d, name)
        os.makedirs(cd)
        open(os.path.join(cd, "index.txt"), "w").close()
        with open(os.path.join(cd, "serial"), "w") as f:
            # openssl reads the serial as whole bytes: an even number of digits
            f.write("%016x\n" % random.randrange(1 << 32, 1 << 62))
        with open(os.path.join(cd, "ca.cnf"), "w") as f:
            f.write(CA_CNF % {"dir": cd, "san": san})
        key, csr, crt = (os.path.join(cd, x) for x in ("leaf.key", "leaf.csr", "leaf.crt"))
        sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", key, "-out", csr, "-subj", "/CN=" + name)
        sh("openssl", "ca", "-batch", "-config", os.path.join(cd, "ca.cnf"), "-extensions",
           "ext", "-cert", os.path.join(d, "ca.pem"), "-keyfile", os.path.join(d, "ca.key"),
           "-in", csr, "-out", crt, "-startdate", start, "-enddate", end, "-notext")
        return crt, key
    return issue


def ca_checks(tmp, t, vs):
    v = vs[0]
    v.add_tasks(1)
    issue = make_ca(tmp)
    ca = os.path.join(tmp, "ca.pem")
    good = issue("good", "IP:127.0.0.1", "20240101000000Z", "20990101000000Z")
    expired = issue("expired", "IP:127.0.0.1", "20200101000000Z", "20210101000000Z")
    otherhost = issue("otherhost", "DNS:other.example", "20240101000000Z", "20990101000000Z")
    for (crt, key), want in ((expired, "tls"), (otherhost, "tls"), (good, None)):
        t.stop()
        t.start(extra=("--cert", crt, "--key", key))
        r = v.sync("--url", t.url(), "--ca", ca, ok=(0,) if want is None else (1,))
        if want:
            check(r["error"]["code"] == want, "%s refused as %s: %r" % (crt, want, r))
            check(v.status()["pending"] == 2, "nothing marked")
        else:
            check(r["ok"] and r["pushed"] == 2, "valid CA certificate works: %r" % r)


def captive_portal(tmp, t, vs):
    """A stand-in that completes TLS with the township's own key (so the pin
    passes) and answers every request 200 text/html, like a portal's login
    page: a failure, nothing marked."""
    import http.server
    import ssl
    import threading
    v = vs[0]
    v.add_tasks(2)

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(n)
            body = "<html><body>请登录 WiFi</body></html>".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(t.db + ".crt", t.db + ".key")
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        r = v.sync("--url", "https://127.0.0.1:%d" % srv.server_address[1], ok=(1,))
    finally:
        srv.shutdown()
    check(r["error"]["code"] == "bad_status", "portal page is no answer: %r" % r)
    st = v.status()
    check(st["acked_seq"] == 0 and st["pending"] == 3, "nothing marked: %r" % st)
    check(st["sync"]["last_error"]["code"] == "bad_status", "recorded: %r" % st["sync"])


DAY = 86400 * 1000


def clock_skew(tmp, t, vs):
    v = vs[0]
    behind = env_with(TALLY_CLOCK_SKEW_MS=-3 * DAY)
    ids = v.add_tasks(1, env=behind)
    r = v.sync(env=behind)
    check(r["ok"] and r["applied"] == 2, "3 days behind syncs: %r" % r)
    st = v.status(env=behind)
    off = st["sync"]["offset_ms"]
    check(abs(off - 3 * DAY) < 60000, "offset ~ +3 days: %r" % off)
    check(st["sync"]["clock_warning"], "status warns")
    out = v.tally("status", env=behind).stdout.decode()
    check("本机时钟不准" in out, "warning in Chinese: %s" % out)
    # The device clock jumps a year ahead; the stored offset is for the old
    # clock, so stamps run a year ahead until the next answer.
    ahead = env_with(TALLY_CLOCK_SKEW_MS=365 * DAY)
    v.tally("task", "update", ids[0], "--measures", "村里一年后的时钟改的", env=ahead)
    r = v.sync(env=ahead)
    check(r["ok"] and r["pushed"] == 1, "a year ahead syncs: %r" % r)
    eff = q(v.db, "SELECT eff FROM change_log WHERE site = ? ORDER BY seq DESC LIMIT 1",
            site_of(v.db))[0][0]
    hlc = q(v.db, "SELECT hlc FROM change_log WHERE site = ? ORDER BY seq DESC LIMIT 1",
            site_of(v.db))[0][0]
    check(eff and eff < hlc, "the server re-stamped the far-ahead change: eff %r hlc %r" % (eff, hlc))
    st = v.status(env=ahead)
    check(abs(st["sync"]["offset_ms"] + 365 * DAY) < 60000, "offset ~ -1 year: %r" % st["sync"])
    # A later edit at the township wins on both sides.
    time.sleep(0.05)
    t.tally("task", "update", ids[0], "--measures", "乡镇后来改的")
    r = v.sync(env=ahead)
    check(r["ok"], "pull: %r" % r)
    for db in (v.db, t.db):
        m = q(db, "SELECT measures FROM task WHERE id = ?", ids[0])[0][0]
        check(m == "乡镇后来改的", "later township edit wins at %s: %r" % (db, m))
    a, b = ledger_digest(v.db, t.db)
    check(a == b, "both sides agree")


def township_decisions(tmp, t, vs):
    v = vs[0]
    ids = v.add_tasks(2)
    v.tally("progress", ids[0], "--percent", "100", "--note", "已完成")
    v.tally("submit", ids[0])
    v.tally("progress", ids[1], "--percent", "100", "--note", "已完成")
    v.tally("submit", ids[1])
    check(v.sync()["ok"], "pushed")
    # Village offline: the township decides.
    t.tally("review", ids[0], "--reject", "--opinion", "佐证材料不足，请补充")
    t.tally("review", ids[1], "--approve", "--opinion", "同意销号")
    vid = q(v.db, "SELECT village_id FROM site")[0][0]
    t.tally("notice", "send", "--type", "warning", "--title", "进度预警", "--text", "请加快",
            "--village", vid, "--task", ids[0])
    # Meanwhile the village adds progress to the task the township closed.
    v.tally("progress", ids[1], "--percent", "100", "--note", "补充说明")
    r = v.sync()
    check(r["ok"] and r["rejected"] == 1, "the change to a closed task is refused: %r" % r)
    st = {row[0]: row[1] for row in q(v.db, "SELECT id, status FROM task")}
    check(st[ids[0]] == "doing" and st[ids[1]] == "closed", "decisions arrived: %r" % st)
    check(q(v.db, "SELECT count(*) FROM notice WHERE title = '进度预警'")[0][0] == 1, "notice")
    s = v.status()
    check(len(s["rejected_changes"]) == 1 and s["rejected_changes"][0]["reason"],
          "status lists the rejection with its reason: %r" % s["rejected_changes"])
    out = v.tally("status").stdout.decode()
    check("被乡镇拒收" in out, "shown: %s" % out)
    show = v.tally("task", "show", ids[1]).stdout.decode()
    check(s["rejected_changes"][0]["reason"] in show, "task show has the reason: %s" % show)
    r = v.sync()
    check(r["ok"] and r["pushed"] == 0, "a rejected change is not resent: %r" % r)
    a, b = ledger_digest(v.db, t.db)
    check(a == b, "both sides agree")


def concurrent_edit(tmp, t, vs):
    v = vs[0]
    ids = v.add_tasks(1)
    check(v.sync()["ok"], "pushed")
    v.tally("task", "update", ids[0], "--owner", "村里改的")
    t.tally("task", "update", ids[0], "--owner", "乡镇改的")
    check(v.sync()["ok"], "synced")
    a = q(v.db, "SELECT owner FROM task WHERE id = ?", ids[0])[0][0]
    b = q(t.db, "SELECT owner FROM task WHERE id = ?", ids[0])[0][0]
    check(a == b, "converged: %r vs %r" % (a, b))
    loser = "村里改的" if a == "乡镇改的" else "乡镇改的"
    for side in (v, t):
        c = json.loads(side.tally("--json", "conflicts").stdout.decode())
        check(loser in json.dumps(c, ensure_ascii=False), "loser %s in conflicts at %s: %r" % (
            loser, side.db, c))


def epoch_change(tmp, t, vs):
    v = vs[0]
    v.add_tasks(3)
    check(v.sync()["ok"], "first push")
    port = t.port
    t.stop()
    backup = t.db + ".bak"
    run(["sqlite3", t.db, ".backup " + backup])
    t.start(port=port)
    v.add_tasks(3)
    check(v.sync()["ok"], "second push")
    old_epoch = v.status()["sync"]["epoch"]
    t.stop()
    for ext in ("", "-wal", "-shm"):
        if os.path.exists(t.db + ext):
            os.remove(t.db + ext)
    shutil.copy(backup, t.db)
    t.start(port=port)
    check(t.epoch != old_epoch, "restored server has a new epoch")
    v.add_tasks(1)
    r = v.sync()
    check(r["ok"] and r["epoch_changed"], "epoch change noticed: %r" % r)
    st = v.status()
    check(st["sync"]["epoch"] == t.epoch and st["pending"] == 0, "all acked in the new epoch")
    n = same_chain(v, t)
    check(n == q(t.db, "SELECT count(*) FROM change_log WHERE site = ?", site_of(v.db))[0][0],
          "no duplicates")


def backoff_bounds():
    for f, cap in ((1, 1000), (2, 2000), (4, 8000), (9, 256000), (10, 300000), (40, 300000)):
        mx = int(helper("backoff", 1000, 300000, f, (1 << 64) - 1))
        check(mx <= cap, "failure %d: %d <= %d" % (f, mx, cap))
        vals = {int(helper("backoff", 1000, 300000, f, random.getrandbits(64))) for _ in range(5)}
        check(len(vals) > 1 and all(0 <= x <= cap for x in vals), "jitter in [0, %d]: %r" % (
            cap, vals))


CASES = {
    "round_trip": with_world(round_trip),
    "daemon_push_on_write": with_world(daemon_push_on_write),
    "offline_then_online": with_world(offline_then_online),
    "cut_every_few_kib": with_world(cut_every_few_kib),
    "kill9_daemon": with_world(kill9_daemon),
    "wrong_pin": with_world(wrong_pin),
    "ca_checks": with_world(ca_checks),
    "captive_portal": with_world(captive_portal),
    "clock_skew": with_world(clock_skew),
    "township_decisions": with_world(township_decisions),
    "concurrent_edit": with_world(concurrent_edit),
    "epoch_change": with_world(epoch_change),
    "backoff_bounds": backoff_bounds,
}

if __name__ == "__main__":
    main(CASES)
