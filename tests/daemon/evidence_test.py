"""Evidence-file integration tests (docs/evidence.md): a real `tallyd serve`
(township) and real `tally sync` / `tallyd sync` (villages) over real TLS on
loopback, through the fault proxy where the link is bad. Python 3 standard
library only. Builds its world with sync_test.py's helpers.

TALLY_EVIDENCE_KILLS sets how many kill -9 rounds the kill cases run (the
issue's long run: 50; the ctest default, 10, keeps them short), and
TALLY_EVIDENCE_KILL_MB the size of each file uploaded meanwhile (8).
"""
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tallytest import Failure, Proxy, check, main, now  # noqa: E402
from sync_test import (TALLYD, VALGRIND, Daemon, Township, Village, env_with, q,  # noqa: E402
                       wait_until)

KILLS = int(os.environ.get("TALLY_EVIDENCE_KILLS", "10"))
KILL_MB = int(os.environ.get("TALLY_EVIDENCE_KILL_MB", "8"))


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_file(path, size, seed):
    """Incompressible bytes, reproducible: a photo as far as gzip is concerned."""
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(rnd.randbytes(n))
            left -= n
    return sha(path)


def stored(db, h):
    return "%s.blobs/%s/%s" % (db, h[:2], h[2:])


def partial(db, h):
    return "%s.blobs/partial/%s" % (db, h)


def server_state(t, h):
    rows = q(t.db, "SELECT state FROM srv_blob WHERE sha256 = ?", h)
    return rows[0][0] if rows else None


def attach(v, task, path):
    v.tally("progress", task, "--percent", "10", "--note", "现场照片", "--evidence", path)


def new_world(tmp, villages=1, serve_extra=()):
    t = Township(tmp).start(extra=serve_extra)
    vs = [Village(tmp, t, t.village("村%d" % i), "v%d" % i) for i in range(villages)]
    return t, vs


def case(villages=1, serve_extra=()):
    def wrap(fn):
        def run_case():
            tmp = tempfile.mkdtemp(prefix="tally_ev_")
            t = None
            try:
                t, vs = new_world(tmp, villages, serve_extra)
                fn(tmp, t, vs)
            finally:
                if t:
                    t.stop()
                shutil.rmtree(tmp, ignore_errors=True)
        run_case.__name__ = fn.__name__
        return run_case
    return wrap


class Raw:
    """Raw HTTPS requests to the township with a village's token, so a test
    can send what a correct village never would."""

    def __init__(self, t, v):
        self.t = t
        self.token = q(v.db, "SELECT value FROM settings WHERE key = 'sync_token'")
        self.token = self.token[0][0] if self.token else None
        if not self.token:
            rows = q(v.db, "SELECT * FROM settings")
            for k, val in rows:
                if "token" in k:
                    self.token = val
        check(self.token, "village token found")

    def req(self, method, path, body=b"", ctype="application/json"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the pin is checked by the real client's tests
        raw = socket.create_connection(("127.0.0.1", self.t.port), timeout=20)
        s = ctx.wrap_socket(raw)
        try:
            head = ("%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                    "Content-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                    % (method, path, self.token, ctype, len(body)))
            s.sendall(head.encode() + body)
            data = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except (ConnectionError, ssl.SSLError):
                    break
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        return status, rest

    def get(self, h):
        """GET the blob, waiting out the device's request rate limit (the
        kill loops ask after every kill, on top of the daemon's own calls)."""
        for _ in range(30):
            st, body = self.req("GET", "/v1/blob/%s" % h)
            if st != 429:
                return st, body
            time.sleep(json.loads(body).get("retry_after", 1))
        return st, body

    def state(self, h, size):
        st, body = self.req("POST", "/v1/blob/%s" % h, json.dumps({"v": 1, "size": size}).encode())
        return st, (json.loads(body) if body else None)


# ---- cases ------------------------------------------------------------------------


@case()
def small_round_trip(tmp, t, vs):
    v = vs[0]
    task = v.add_tasks(1)[0]
    f = os.path.join(tmp, "照片.jpg")
    h = make_file(f, 300_000, 1)
    attach(v, task, f)
    check(os.path.exists(stored(v.db, h)), "copied into the village store")
    r = v.sync()
    check(r["ok"] and r["blobs_uploaded"] == 1 and r["blobs_pending"] == 0, "uploaded: %r" % r)
    check(sha(stored(t.db, h)) == h, "server copy byte-identical")
    check(server_state(t, h) == "complete", "marked complete")
    check(not os.path.exists(partial(t.db, h)), "no partial left")
    # Township gets it out by prefix; its verify checks it.
    out = os.path.join(tmp, "out.jpg")
    t.tally("evidence", "get", h[:10], "-o", out)
    check(sha(out) == h, "evidence get byte-identical")
    lst = json.loads(t.tally("--json", "evidence", "list").stdout)
    check(len(lst) == 1 and lst[0]["state"] == "received" and lst[0]["type"] == "image/jpeg",
          "township list: %r" % lst)
    check("核查通过" in t.tally("verify").stdout.decode(), "verify passes")
    # The dashboard serves it to a township user, not to a village device.
    town = Raw(t, v)
    village_token = town.token
    town.token = t.tally("user", "add", "审核员").stdout.decode().split()[0]
    st, body = town.req("GET", "/evidence/%s" % h)
    check(st == 200 and hashlib.sha256(body).hexdigest() == h,
          "dashboard download byte-identical: %d, %d bytes" % (st, len(body)))
    st, _ = town.req("GET", "/evidence/%s" % ("0" * 64))
    check(st == 404, "unknown evidence is 404: %d" % st)
    town.token = village_token
    st, _ = town.req("GET", "/evidence/%s" % h)
    check(st == 403, "village token refused on the dashboard route: %d" % st)
    # Nothing is sent twice.
    r = v.sync()
    check(r["ok"] and r["blob_bytes"] == 0, "second sync sends no blob bytes: %r" % r)
    # Corrupt the township's copy: verify must say so.
    with open(stored(t.db, h), "r+b") as fh:
        fh.seek(1000)
        b = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([b[0] ^ 0xff]))
    p = t.tally("verify", ok=(1,))
    check("损坏 1 个" in p.stdout.decode(), "verify finds the bad blob: %s" % p.stdout.decode())
    p = t.tally("evidence", "get", h[:10], "-o", out + "2", ok=(1,))
    check(not os.path.exists(out + "2"), "a corrupt blob is never handed out")
    town.token = t.tally("user", "add", "审核员2").stdout.decode().split()[0]
    st, _ = town.req("GET", "/evidence/%s" % h)
    check(st >= 400, "nor served by the dashboard: %d" % st)


def upload_20mb_through_cuts(tmp, t, vs):
    v = vs[0]
    task = v.add_tasks(1)[0]
    v.sync()
    f = os.path.join(tmp, "big.jpg")
    size = 20 * 1024 * 1024
    h = make_file(f, size, 20)
    attach(v, task, f)
    # Records and blob through a link cut every 256 KiB each way (the
    # records are a few hundred bytes of the total).
    p = Proxy(t.port, "--cut", "262144-262144", "--cut-dir", "both")
    try:
        url = "https://127.0.0.1:%d" % p.port
        deadline = now() + 240
        rounds = 0
        while now() < deadline:
            rounds += 1
            r = v.sync("--url", url, ok=(0, 1))
            if r.get("blobs_pending") == 0 and server_state(t, h) == "complete":
                break
        st = p.stats()
    finally:
        p.stop()
    check(server_state(t, h) == "complete", "upload completed through the cuts")
    check(sha(stored(t.db, h)) == h, "server copy byte-identical")
    ratio = st["c2s"] / size
    print("20 MiB through cuts every 256 KiB: %d syncs, %d connections, %d cuts, "
          "c2s %d bytes = %.3f x file" % (rounds, st["connections"], st["cuts"], st["c2s"], ratio))
    check(st["cuts"] >= 60, "the link was really cut: %r" % st)
    check(ratio <= 1.5, "bytes sent %.3f x the file (<= 1.5)" % ratio)


@case()
def refusals(tmp, t, vs):
    v = vs[0]
    task = v.add_tasks(1)[0]
    f = os.path.join(tmp, "a.jpg")
    h = make_file(f, 200_000, 3)
    attach(v, task, f)
    # Records only: fill blob_upload so the village leaves it alone, then
    # speak raw HTTP as a misbehaving village would.
    v.sync()
    raw = Raw(t, v)
    # Not started yet by us (village uploads were done by sync above: use a new file).
    g = os.path.join(tmp, "b.jpg")
    hg = make_file(g, 150_000, 4)
    attach(v, task, g)
    sqlite_mark(v.db, hg)
    v.sync()
    st, s = raw.state(hg, 150_000)
    check(st == 200 and not s["complete"], "state: %r %r" % (st, s))
    data = open(g, "rb").read()
    cs = s["chunk_size"]
    c0 = data[:cs]
    # A chunk with flipped bytes, sent with the hash of the good bytes.
    bad = bytearray(c0)
    bad[100] ^= 0xff
    st, body = raw.req("PUT", "/v1/blob/%s/chunk/0?sha256=%s" % (hg, hashlib.sha256(c0).hexdigest()),
                       bytes(bad), "application/octet-stream")
    check(st == 422 and json.loads(body)["code"] == "blob_hash_mismatch", "flipped: %r %r" % (st, body))
    st, s = raw.state(hg, 150_000)
    check(s["have"].strip("0") == "", "nothing stored after a bad chunk: %r" % s)
    # Truncated chunk.
    st, body = raw.req("PUT", "/v1/blob/%s/chunk/0?sha256=%s" % (hg, hashlib.sha256(c0[:-1]).hexdigest()),
                       c0[:-1], "application/octet-stream")
    check(st == 400, "short chunk refused: %r" % st)
    # Wrong total hash: a record claims hash X for size N, chunks are
    # self-consistent but the whole is not X. Make such a record by
    # attaching a file and then uploading other bytes of the same size.
    w = os.path.join(tmp, "w.jpg")
    hw = make_file(w, 100_000, 5)
    attach(v, task, w)
    sqlite_mark(v.db, hw)
    v.sync()
    other = random.Random(6).randbytes(100_000)
    st, s = raw.state(hw, 100_000)
    cs = s["chunk_size"]
    last = None
    for i in range(s["chunks"]):
        part = other[i * cs:(i + 1) * cs]
        last = raw.req("PUT", "/v1/blob/%s/chunk/%d?sha256=%s" % (hw, i, hashlib.sha256(part).hexdigest()),
                       part, "application/octet-stream")
    check(last[0] == 422 and json.loads(last[1])["code"] == "blob_hash_mismatch",
          "wrong whole hash refused: %r" % (last,))
    check(not os.path.exists(stored(t.db, hw)) and not os.path.exists(partial(t.db, hw)),
          "nothing stored for a wrong whole hash")
    check(server_state(t, hw) == "partial", "state back to partial")
    st, s = raw.state(hw, 100_000)
    check(s["have"].strip("0") == "", "bits cleared: %r" % s)
    st, _ = raw.req("GET", "/v1/blob/%s" % hw)
    check(st == 404, "an incomplete blob is never served: %r" % st)
    # Oversize: a record claiming 100 MB (over the 64 MB default cap).
    big = "ab" * 32
    st, body = raw.state(big, 100 * 1024 * 1024)
    check(st == 413 and body["code"] == "blob_too_large" and "单个文件超过上限" in body["message"],
          "oversize: %r %r" % (st, body))
    # A hash no record of this village names.
    st, body = raw.state("cd" * 32, 1000)
    check(st == 403 and body["code"] == "forbidden", "unreferenced blob refused: %r" % st)
    check(q(t.db, "SELECT count(*) FROM srv_blob WHERE sha256 IN (?, ?)", big, "cd" * 32)[0][0] == 0,
          "no upload state for refused blobs")
    # The real village fixes hw: its own upload completes fine.
    unmark(v.db, hw)
    r = v.sync()
    check(server_state(t, hw) == "complete" and sha(stored(t.db, hw)) == hw, "real upload ok: %r" % r)


def sqlite_mark(db, h):
    """Tells the village not to upload h itself (the test speaks for it)."""
    import sqlite3
    c = sqlite3.connect(db, timeout=30)
    c.execute("INSERT OR REPLACE INTO blob_upload (sha256, state, at_ms) VALUES (?, 'done', 0)", (h,))
    c.commit()
    c.close()


def unmark(db, h):
    import sqlite3
    c = sqlite3.connect(db, timeout=30)
    c.execute("DELETE FROM blob_upload WHERE sha256 = ?", (h,))
    c.commit()
    c.close()


@case(villages=2)
def other_village_and_dedup(tmp, t, vs):
    a, b = vs
    ta = a.add_tasks(1)[0]
    tb = b.add_tasks(1)[0]
    f = os.path.join(tmp, "same.jpg")
    h = make_file(f, 500_000, 7)
    attach(a, ta, f)
    ra = a.sync()
    check(ra["blobs_uploaded"] == 1 and ra["blob_bytes"] >= 500_000, "a uploads: %r" % ra)
    # Village b has no record naming h: it may neither read nor upload it.
    raw = Raw(t, b)
    st, _ = raw.state(h, 500_000)
    check(st == 403, "another village's evidence refused: %r" % st)
    st, _ = raw.req("GET", "/v1/blob/%s" % h)
    check(st == 403, "another village's evidence not readable: %r" % st)
    # Now b attaches the same file to its own task: stored once, no bytes sent.
    attach(b, tb, f)
    rb = b.sync()
    check(rb["blobs_uploaded"] == 1 and rb["blob_bytes"] == 0, "b sends no bytes: %r" % rb)
    st, body = raw.req("GET", "/v1/blob/%s" % h)
    check(st == 200 and hashlib.sha256(body).hexdigest() == h, "b reads its evidence")
    check(q(t.db, "SELECT count(*) FROM srv_blob WHERE sha256 = ?", h)[0][0] == 1, "one upload row")
    files = [os.path.join(dp, x) for dp, _, fs in os.walk(t.db + ".blobs") for x in fs]
    check(len([x for x in files if x.endswith(h[2:])]) == 1, "stored once: %r" % files)
    tasks = {r[0] for r in q(t.db, "SELECT task FROM evidence WHERE sha256 = ?", h)}
    check(tasks == {ta, tb}, "both tasks show it")


def chunks_have(t, h):
    rows = q(t.db, "SELECT have FROM srv_blob WHERE sha256 = ?", h)
    return sum(bin(b).count("1") for b in rows[0][0]) if rows else 0


def kill_loop(tmp, t, v, task, size, kill_server):
    """Kills (-9) the village daemon or the server at random moments, KILLS
    times; whenever the current upload completes, the village attaches
    another file, so every kill lands during some upload. After each kill:
    nothing partial is served, chunks held never go backwards, a stored
    blob is whole. At the end every upload completes and hashes right."""
    uploads = []

    def new_upload():
        f = os.path.join(tmp, "k%d.jpg" % len(uploads))
        uploads.append(make_file(f, size, 100 + len(uploads)))
        attach(v, task, f)

    new_upload()
    d = Daemon(v)
    raw = Raw(t, v)
    kills = last_have = 0
    rnd = random.Random(11)
    try:
        while kills < KILLS:
            h = uploads[-1]
            if server_state(t, h) == "complete":
                new_upload()
                last_have = 0
                continue
            time.sleep(rnd.uniform(0.05, 0.4))
            if kill_server:
                t.proc.kill()
                t.proc.wait()
                t.start(port=t.port)
            else:
                d.proc.kill()
                d.proc.wait()
                d = Daemon(v)
            kills += 1
            have = chunks_have(t, h)
            check(have >= last_have, "resumed, not restarted: %d chunks after %d" % (have, last_have))
            last_have = have
            st, _ = raw.req("GET", "/v1/blob/%s" % h)
            if server_state(t, h) != "complete":
                # 404 while uploading, 403 while the record is still on its
                # way, 429 when this checking outran the device's rate limit
                check(st in (403, 404, 429), "partial blob served (kill %d): %r" % (kills, st))
            if os.path.exists(stored(t.db, h)):
                check(sha(stored(t.db, h)) == h, "a stored blob is always whole")
        wait_until(lambda: all(server_state(t, h) == "complete" for h in uploads), 120,
                   "every upload completes")
    finally:
        d.stop()
    for h in uploads:
        check(sha(stored(t.db, h)) == h, "hash matches after %d kills" % kills)
        st, body = raw.get(h)
        check(st == 200 and hashlib.sha256(body).hexdigest() == h, "served whole: %r" % st)
    check(not os.listdir(t.db + ".blobs/partial") if os.path.isdir(t.db + ".blobs/partial") else True,
          "no partial file left")
    print("%s killed %d times during %d uploads of %d bytes" % (
        "server" if kill_server else "daemon", kills, len(uploads), size))
    return kills


@case()
def kill9_village_daemon(tmp, t, vs):
    v = vs[0]
    kill_loop(tmp, t, v, v.add_tasks(1)[0], KILL_MB * 1024 * 1024, kill_server=False)


@case()
def kill9_server(tmp, t, vs):
    v = vs[0]
    kill_loop(tmp, t, v, v.add_tasks(1)[0], KILL_MB * 1024 * 1024, kill_server=True)


@case(serve_extra=("--set", "blob_daily=300kb"))
def daily_quota(tmp, t, vs):
    v = vs[0]
    task = v.add_tasks(1)[0]
    small = os.path.join(tmp, "s.jpg")
    hs = make_file(small, 100_000, 12)
    big = os.path.join(tmp, "b.jpg")
    hb = make_file(big, 1_000_000, 13)
    attach(v, task, big)
    attach(v, task, small)
    r = v.sync()
    # Small before large: the small one fits in today's bytes, the big one waits.
    check(server_state(t, hs) == "complete", "small file first: %r" % r)
    check(server_state(t, hb) != "complete" and r["blobs_pending"] == 1, "big one deferred: %r" % r)
    check(r["ok"], "a quota is not a failure of the sync: %r" % r)
    lst = json.loads(v.tally("--json", "evidence", "list").stdout)
    check({x["sha256"]: x["state"] for x in lst} == {hs: "uploaded", hb: "pending"}, "%r" % lst)


if __name__ == "__main__":
    main({
        "small_round_trip": small_round_trip,
        "upload_20mb_through_cuts": case()(upload_20mb_through_cuts),
        "refusals": refusals,
        "other_village_and_dedup": other_village_and_dedup,
        "kill9_village_daemon": kill9_village_daemon,
        "kill9_server": kill9_server,
        "daily_quota": daily_quota,
    })
