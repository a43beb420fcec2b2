#!/usr/bin/env python3
"""Long sync tests over bad links (issue 8). Python 3 standard library only.

Real `tallyd serve`, real `tallyd sync` / `tally sync`, real TLS with the
join code's pin, faultproxy in between, real SQLite files; with root, the
server runs in a network namespace made here and nftables drops a random
fraction of its packets.

  bad_link_soak     villages (10) run `tallyd sync` through faultproxy
                    (latency, stalls, cuts of a few KiB, resets at random
                    times, changed every few seconds) and, as root, random
                    packet loss; villages and the township keep writing.
                    VmRSS of the server and of every village daemon must
                    stay flat after a warm-up (see MEM_SLACK_KIB). Then the
                    faults stop and everything converges.
  week_offline      a village offline for 7 days (injected clock) queues
                    10,000 changes, then its daemon syncs through a proxy
                    cutting connections after 1-64 KiB and resetting them at
                    random times: every push within the batch bound, nothing
                    acknowledged ever sent again (only batches whose answer
                    was lost), exactly once at the end; the bytes sent are
                    compared with a clean resend of the same queue.
  concurrent_pairs  1,000 pairs: the village and the township edit the same
                    field of the same task while the village is cut off
                    (4 partitions); after healing, village, township and a
                    township replica hold the same state, the greater write
                    won, and every loser is in every site's `tally
                    conflicts --json`.

Pass criteria of every case (check_site): each village's chain is held by
the township exactly once (seq, hash, eff, state, body bytes); every change
a site holds is byte-identical to the township's copy; a village holds
exactly what its feed offers it; merge-state digests are equal; `tally
verify` is clean everywhere.

    soak_test.py [--seconds N] [--villages N] [--loss PCT] [--changes N]
                 [--pairs N] [--rounds N] [--seed N] [--rss-csv FILE]
                 [BUILD_DIR] [CASE...]

BUILD_DIR defaults to $TALLY_BINARY_DIR (ctest sets it). Long runs:

    python3 tests/soak/soak_test.py --seconds 1800 --rss-csv rss.csv build bad_link_soak
    python3 tests/soak/soak_test.py --changes 50000 build week_offline
    python3 tests/soak/soak_test.py --pairs 5000 --rounds 10 build concurrent_pairs
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=35,
                    help="bad_link_soak: measured time after the warm-up (35)")
    ap.add_argument("--villages", type=int, default=10)
    ap.add_argument("--loss", type=int, default=5,
                    help="mean packet loss in percent (drawn from 0..2*PCT per phase)")
    ap.add_argument("--changes", type=int, default=10000, help="week_offline: queue (10000)")
    ap.add_argument("--pairs", type=int, default=1000, help="concurrent_pairs (1000)")
    ap.add_argument("--rounds", type=int, default=4, help="partitions of concurrent_pairs")
    ap.add_argument("--seed", type=int, default=None, help="the test's own random choices")
    ap.add_argument("--rss-csv", help="bad_link_soak: write every memory sample here")
    ap.add_argument("rest", nargs="*", metavar="[BUILD_DIR] CASE")
    a = ap.parse_args()
    if a.rest and os.path.isdir(a.rest[0]):
        os.environ["TALLY_BINARY_DIR"] = os.path.abspath(a.rest.pop(0))
    a.cases = a.rest
    if a.seed is None:
        a.seed = random.randrange(1 << 31)
    return a


ARGS = parse_args()
if not os.environ.get("TALLY_BINARY_DIR"):
    sys.exit("soak_test: give BUILD_DIR or set TALLY_BINARY_DIR")
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))
# sync_test's world: Township, Village, Daemon, q, digests (imported after
# TALLY_BINARY_DIR is known: tallytest reads it at import).
from sync_test import (DAY, HELPER, TALLY, Daemon, Township, Village, env_with,  # noqa: E402
                       ledger_digest, q, run, same_chain, site_of, wait_until, world)
from tallytest import Failure, Proxy, check, main, now  # noqa: E402

RND = random.Random(ARGS.seed)
# The village daemon's push batch bound (docs/sync.md): 500 changes and
# 512 KiB (past the first change). week_offline checks every push.
BATCH_CHANGES = 500
BATCH_BYTES = 512 * 1024

# Memory: after the warm-up the median of the last third of a process's
# samples may exceed the median of the first third by at most the larger of
# MEM_REL and MEM_SLACK_KIB: room for SQLite's page cache (2000 KiB a
# connection; a village daemon's fills as it reads the outbox it pushes)
# and allocator overhead; the server also gets one push body per village
# (more of them held at once than before is a new high-water mark, not a
# leak). Clean ASan runs grew at most 1.4 MiB (a village); leaking 64 KiB a
# server request and 128 KiB a village one grew them 15-25 and 4.7-6.6 MiB
# in the ctest run. Under ASan the allocator's quarantine is capped
# (cap_asan_quarantine) or its 256 MB fill would read as growth.
MEM_SLACK_KIB = 3 * 1024
MEM_REL = 0.05


def log(msg):
    print(msg, flush=True)


def loud(msg):
    """A warning that must not be missed in a ctest log."""
    bar = "!" * 72
    text = "%s\n!! %s\n%s" % (bar, msg, bar)
    print(text, flush=True)
    print(text, file=sys.stderr, flush=True)


def run_helper(*args, env=None):
    return run([HELPER] + [str(a) for a in args], env=env, timeout=600).stdout.decode()


# ---- network namespace with packet loss ---------------------------------------------


class Netns:
    """A network namespace joined to this one by a veth pair; nftables in
    the namespace drops a random share of the packets on its veth end.
    ok is False (and why says why) when it cannot be made."""

    def __init__(self):
        self.ok = False
        self.why = ""
        self.dropped = 0
        n = os.getpid() & 0x3FFFFF
        self.name = "tsoak%d" % os.getpid()
        self.veth_out = "tsk%do" % n
        self.veth_in = "tsk%di" % n
        # A /30 of 10/8 derived from the pid: parallel runs do not collide.
        base = "10.%d.%d." % ((n >> 14) & 0xFF, (n >> 6) & 0xFF)
        self.addr_out = base + str((n & 0x3F) * 4 + 1)
        self.addr_in = base + str((n & 0x3F) * 4 + 2)
        if os.geteuid() != 0:
            self.why = "not root"
            return
        for tool in ("ip", "nft"):
            if not shutil.which(tool):
                self.why = "no `%s` command (scripts/deps.sh installs iproute2 and nftables)" % tool
                return
        self.sweep()
        try:
            self.sh("ip", "netns", "add", self.name)
            self.sh("ip", "link", "add", self.veth_out, "type", "veth", "peer", "name",
                    self.veth_in)
            self.sh("ip", "link", "set", self.veth_in, "netns", self.name)
            self.sh("ip", "addr", "add", self.addr_out + "/30", "dev", self.veth_out)
            self.sh("ip", "link", "set", self.veth_out, "up")
            self.ns("ip", "addr", "add", self.addr_in + "/30", "dev", self.veth_in)
            self.ns("ip", "link", "set", self.veth_in, "up")
            self.ns("ip", "link", "set", "lo", "up")
            self.ns("nft", "add", "table", "inet", "soak")
            for chain, hook in (("rx", "input"), ("tx", "output")):
                self.ns("nft", "add chain inet soak %s { type filter hook %s priority 0; }" % (
                    chain, hook))
            self.ok = True
        except Failure as e:
            self.why = str(e)
            self.close()

    def sh(self, *args):
        p = subprocess.run(args, capture_output=True, timeout=30)
        if p.returncode != 0:
            raise Failure("%s: %s" % (" ".join(args), p.stderr.decode().strip()))

    def ns(self, *args):
        self.sh("ip", "netns", "exec", self.name, *args)

    def prefix(self):
        return ["ip", "netns", "exec", self.name]

    def set_loss(self, pct):
        """Drops pct % of the packets each way on the namespace's veth."""
        self.dropped += self.counted()
        for chain, d in (("rx", "iifname"), ("tx", "oifname")):
            self.ns("nft", "flush", "chain", "inet", "soak", chain)
            if pct > 0:
                self.ns("nft", "add rule inet soak %s %s %s numgen random mod 100 < %d "
                               "counter drop" % (chain, d, self.veth_in, pct))

    def counted(self):
        """Packets the current rules dropped."""
        p = subprocess.run(self.prefix() + ["nft", "list", "table", "inet", "soak"],
                           capture_output=True, timeout=30)
        return sum(int(x) for x in re.findall(r"counter packets (\d+)", p.stdout.decode()))

    def close(self):
        # Deleting the namespace deletes its veth end, and with it the pair
        # (deleted here too in case setup failed before the move).
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.veth_out], capture_output=True, timeout=30)

    @staticmethod
    def sweep():
        """Deletes namespaces left by runs that were killed (their pid is gone)."""
        p = subprocess.run(["ip", "netns", "list"], capture_output=True, timeout=30)
        for m in re.finditer(r"^tsoak(\d+)\b", p.stdout.decode(), re.M):
            if not os.path.exists("/proc/%s" % m.group(1)):
                subprocess.run(["ip", "netns", "del", "tsoak" + m.group(1)],
                               capture_output=True, timeout=30)


# ---- memory -------------------------------------------------------------------------


def vmrss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1)) if m else None
    except OSError:
        return None


class RssSampler(threading.Thread):
    """Samples VmRSS of named processes every `interval` seconds."""

    def __init__(self, interval):
        super().__init__(daemon=True)
        self.interval = interval
        self.pids = {}
        self.samples = {}
        self.halt = threading.Event()

    def watch(self, name, pid):
        self.pids[name] = pid
        self.samples[name] = []

    def run(self):
        while not self.halt.wait(self.interval):
            t = now()
            for name, pid in list(self.pids.items()):
                kib = vmrss_kib(pid)
                if kib:
                    self.samples[name].append((t, kib))

    def stop(self):
        self.halt.set()
        self.join()


def memory_verdict(samples, t_warm, t_end, slack):
    """(ok, line) for one process: the median of the last third of the
    samples taken in [t_warm, t_end] against the median of the first third."""
    post = [kib for t, kib in samples if t_warm <= t <= t_end]
    if len(post) < 6:
        return False, "only %d samples after the warm-up" % len(post)
    k = len(post) // 3
    early, late = statistics.median(post[:k]), statistics.median(post[-k:])
    bound = max(slack, early * MEM_REL)
    first = samples[0][1]
    line = "first %d, early %d, late %d, max %d KiB; growth %+d KiB (bound %d)" % (
        first, early, late, max(post), late - early, bound)
    return late - early <= bound, line


# ---- checks shared by the cases ----------------------------------------------------------


def top_seq(db, site):
    return q(db, "SELECT coalesce(max(seq), 0) FROM change_log WHERE site = ?", site)[0][0]


def acked(db):
    return q(db, "SELECT acked_seq FROM sync_state")[0][0]


def chain_rows(db):
    """{(site, seq): (hash, body, eff, state)} of every change db holds."""
    rows = q(db, "SELECT site, seq, hash, body, coalesce(eff, 0), state FROM change_log")
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def feed_of(tdb, village, site):
    """(site, seq) of the changes the township offers a village's pulls
    (its feed, docs/server.md), without the village's own."""
    return set(q(tdb, "SELECT c.site, c.seq FROM srv_feed f JOIN change_log c ON c.pos = f.pos "
                      "WHERE f.village IN (?, '') AND c.state = 'applied' AND c.site != ?",
                 village, site))


def check_site(v, t, replica=None):
    """The pass criteria for one village against the township (and a
    replica): returns the number of the village's own changes."""
    site = site_of(v.db)
    n = same_chain(v, t)  # (seq, hash, eff, state) in order, same length
    top, ack = top_seq(v.db, site), acked(v.db)
    cnt, distinct, lo, hi = q(t.db, "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) "
                                    "FROM change_log WHERE site = ?", site)[0]
    check(ack == top == n, "village %s: acked %d, last seq %d, held %d" % (v.db, ack, top, n))
    check(cnt == distinct == n and (n == 0 or (lo, hi) == (1, n)),
          "township holds %s's seqs 1..%d exactly once: count %d distinct %d range %r-%r" % (
              site, n, cnt, distinct, lo, hi))
    town = chain_rows(t.db)
    mine = chain_rows(v.db)
    bad = [k for k, val in mine.items() if town.get(k) != val]
    check(not bad, "%d changes at %s differ from the township's copy (bytes, hash, eff or "
                   "state), e.g. %r" % (len(bad), v.db, bad[:3]))
    # ... and holds exactly what its feed at the township offers it.
    feed = feed_of(t.db, q(v.db, "SELECT village_id FROM site")[0][0], site)
    held = set(q(v.db, "SELECT site, seq FROM change_log WHERE site != ?", site))
    check(feed == held, "%s lacks %d changes of its feed and holds %d not in it" % (
        v.db, len(feed - held), len(held - feed)))
    a, b = ledger_digest(v.db, t.db)
    check(a == b, "merge-state digests differ: %s vs township" % v.db)
    if replica:
        rep = chain_rows(replica)
        applied = {k: val for k, val in town.items() if val[3] == "applied"}
        missing = [k for k, val in applied.items() if rep.get(k) != val]
        check(not missing, "%d township changes missing or different at the replica" % len(missing))
    return n


def verify_clean(db):
    p = run([TALLY, "--db", db, "verify"], ok=None)
    check(p.returncode == 0, "tally verify %s exit %d: %s" % (db, p.returncode,
                                                           p.stdout.decode()[-1500:]))


def stop_server(t):
    p = t.proc
    t.stop()
    check(p is None or p.returncode == 0, "tallyd serve exit %r: %s" % (
        p.returncode, t.logtext()[-2000:]))


def cap_asan_quarantine():
    """ASan keeps freed memory in a 256 MB quarantine by default: it fills
    over minutes and reads as growth (16 MB still grew a village daemon by
    8 MB in 45 s; 1 MB is flat). Use after free of recently freed memory is
    still caught; the other tests run with the full quarantine."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    if "quarantine_size_mb" not in opts:
        os.environ["ASAN_OPTIONS"] = opts + ":quarantine_size_mb=1"


def in_tmp(fn):
    def case():
        tmp = tempfile.mkdtemp(prefix="tally_soak_")
        try:
            fn(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return case


# ---- bad_link_soak --------------------------------------------------------------------


class FaultPlan:
    """Changes the proxy's faults (and the packet loss) every few seconds."""

    def __init__(self, proxy, netns, loss):
        self.p = proxy
        self.ns = netns
        self.loss = loss
        self.phases = 0
        self.resets = 0
        self.loss_now = 0

    def next_phase(self):
        self.phases += 1
        self.p.cmd("set latency %d" % RND.choice((0, 0, 10, 40, 120, 300)))
        if RND.random() < 0.7:  # a connection moves a few KiB: cut most of them
            lo = RND.randint(1, 4) * 1024
            self.p.cmd("set cut %d-%d" % (lo, lo * RND.randint(2, 4)))
        else:
            self.p.cmd("set cut off")
        if RND.random() < 0.5:
            self.p.cmd("set stall %d %d" % (RND.randint(1, 16) * 512, RND.randint(200, 4000)))
        else:
            self.p.cmd("set stall off")
        self.p.cmd("set cut-mode %s" % RND.choice(("rst", "fin")))
        if self.ns.ok:
            self.loss_now = min(50, RND.randint(0, 2 * self.loss))
            self.ns.set_loss(self.loss_now)

    def reset(self):
        self.resets += 1
        self.p.cmd("reset")

    def calm(self):
        for c in ("set latency 0", "set cut off", "set stall off"):
            self.p.cmd(c)
        if self.ns.ok:
            self.ns.set_loss(0)


class Writer:
    """The work people do during the soak, with real `tally` commands (and
    sync_helper for bulk task creation)."""

    def __init__(self, t, vs):
        self.t = t
        self.vs = vs
        self.pct = {}
        self.count = {"tasks": 0, "owner": 0, "progress": 0, "notice": 0, "town_edit": 0}

    def task_of(self, v):
        rows = q(v.db, "SELECT id FROM task ORDER BY random() LIMIT 1")
        return rows[0][0] if rows else None

    def step(self):
        v = RND.choice(self.vs)
        r = RND.random()
        if r < 0.25:
            run_helper("tasks", v.db, RND.randint(1, 20))
            self.count["tasks"] += 1
        elif r < 0.5:
            tid = self.task_of(v)
            v.tally("task", "update", tid, "--owner", "负责人%d" % RND.randrange(1000))
            self.count["owner"] += 1
        elif r < 0.8:
            tid = self.task_of(v)
            p = min(100, self.pct.get(tid, 0) + RND.randint(1, 30))
            self.pct[tid] = p
            v.tally("progress", tid, "--percent", str(p), "--note", "第%d次进展" % p)
            self.count["progress"] += 1
        elif r < 0.9:
            vid = q(v.db, "SELECT village_id FROM site")[0][0]
            self.t.tally("notice", "send", "--type", RND.choice(("reminder", "warning")),
                         "--title", "请加快进度", "--text", "第%d号提醒" % RND.randrange(10 ** 6),
                         "--village", vid)
            self.count["notice"] += 1
        else:  # a task of the village that already reached the township
            rows = q(self.t.db, "SELECT id FROM task WHERE village = ? ORDER BY random() LIMIT 1",
                     q(v.db, "SELECT village_id FROM site")[0][0])
            if rows:
                self.t.tally("task", "update", rows[0][0], "--leader",
                             "镇领导%d" % RND.randrange(1000))
                self.count["town_edit"] += 1


def bad_link_soak(tmp):
    cap_asan_quarantine()
    netns = Netns()
    if not netns.ok:
        loud("bad_link_soak: NO PACKET LOSS in this run (%s): the soak runs through "
             "faultproxy only" % netns.why)
    t = Township(tmp)
    p = None
    daemons = []
    sampler = RssSampler(max(1.0, ARGS.seconds / 300))
    try:
        if netns.ok:
            t.start(host=netns.addr_in, prefix=netns.prefix())
            p = Proxy(t.port, target_host=netns.addr_in)
        else:
            t.start()
            p = Proxy(t.port)
        # Join codes (and so every village's upstream) carry the proxy's address.
        url = "https://127.0.0.1:%d" % p.port
        t.url = lambda: url
        vs = [Village(tmp, t, t.village("村%d" % i), "v%d" % i) for i in range(ARGS.villages)]
        # Queued before the daemons start: each first push is a full batch,
        # so the warm-up sees the largest requests.
        for v in vs:
            run_helper("tasks", v.db, 200)
        first_queue = [top_seq(v.db, site_of(v.db)) for v in vs]
        # A notice to each village in turn: every village then holds the
        # township's chain with gaps (the others' notices), as in real use.
        for v in vs:
            t.tally("notice", "send", "--type", "reminder", "--title", "开始整改", "--text",
                    "请按时报送", "--village", q(v.db, "SELECT village_id FROM site")[0][0])
        for v in vs:
            daemons.append(Daemon(v, "--idle-pull", "2", "--timeout-ms", "20000"))
        sampler.watch("server", t.proc.pid)
        for i, d in enumerate(daemons):
            sampler.watch("village%d" % i, d.proc.pid)
        sampler.start()
        plan = FaultPlan(p, netns, ARGS.loss)
        writer = Writer(t, vs)
        t0 = now()
        # Warm-up, faults on: until every village's first queue (full
        # batches: the largest requests) is acknowledged, and at least 10 s
        # (120 s in long runs, for the page caches to fill). Then the
        # measured soak: memory samples from there on.
        warm_min = max(10, min(120, ARGS.seconds / 10))
        t_warm = None
        next_phase = next_reset = t0
        while t_warm is None or now() - t_warm < ARGS.seconds:
            if t_warm is None and now() - t0 >= warm_min and all(
                    acked(v.db) >= top for v, top in zip(vs, first_queue)):
                t_warm = now()
            check(t_warm or now() - t0 < 300, "warm-up: the first queues not acknowledged in "
                                              "300 s")
            if now() >= next_phase:
                plan.next_phase()
                next_phase = now() + RND.uniform(2, 8)
            if now() >= next_reset:
                plan.reset()
                next_reset = now() + RND.uniform(0.5, 4)
            writer.step()
            for i, d in enumerate(daemons):
                check(d.proc.poll() is None, "village %d's tallyd sync died: %s" % (
                    i, d.logtext()[-2000:]))
            check(t.proc.poll() is None, "tallyd serve died: %s" % t.logtext()[-2000:])
        t_end = now()
        stats = p.stats()
        plan.calm()

        # Converge: every village's queue acknowledged, then one clean
        # `tally sync` each after its daemon stopped (pulls what is left).
        def drained():
            return all(acked(v.db) == top_seq(v.db, site_of(v.db)) for v in vs)
        took = wait_until(drained, 240, "every village's queue acknowledged after the faults")
        sampler.stop()
        for i, d in enumerate(daemons):
            rc = d.stop()
            check(rc == 0, "village %d's tallyd sync exit %r: %s" % (i, rc, d.logtext()[-2000:]))
        for v in vs:
            r = v.sync()
            check(r["ok"] and r["pushed"] == 0, "final sync of %s: %r" % (v.db, r))

        log("  seed %d, %d villages, %.0f s of faults (warm-up %.0f s, then %.0f s measured; %d "
            "phases, %d resets), converged %.1f s after" % (
                ARGS.seed, len(vs), t_end - t0, t_warm - t0, t_end - t_warm, plan.phases,
                plan.resets, took))
        log("  proxy: %s" % " ".join("%s=%d" % kv for kv in sorted(stats.items())))
        if netns.ok:
            log("  packet loss by nftables in %s (0-%d %% per phase): %d packets dropped" % (
                netns.name, min(50, 2 * ARGS.loss), netns.dropped))
        else:
            log("  packet loss: NONE (%s)" % netns.why)
        log("  writes: %s; %d changes from the villages" % (
            writer.count, sum(acked(v.db) for v in vs)))
        fails = sum(d.logtext().count("sync_failed") for d in daemons)
        done = sum(d.logtext().count("sync_done") for d in daemons)
        log("  daemon cycles: %d done, %d failed" % (done, fails))
        if ARGS.rss_csv:
            with open(ARGS.rss_csv, "w") as f:
                f.write("process,seconds,vmrss_kib\n")
                for name, ss in sampler.samples.items():
                    f.writelines("%s,%.1f,%d\n" % (name, tt - t0, kib) for tt, kib in ss)
        check(stats["cuts"] > 0 and plan.resets > 0, "no faults happened: %r" % stats)
        check(not netns.ok or ARGS.loss == 0 or netns.dropped > 0, "no packet dropped")
        bad = []
        for name in sorted(sampler.samples, key=lambda s: (s != "server", len(s), s)):
            # The server may hold one push body per village at once.
            slack = MEM_SLACK_KIB + (len(vs) * BATCH_BYTES // 1024 if name == "server" else 0)
            ok, line = memory_verdict(sampler.samples[name], t_warm, t_end, slack)
            log("  memory %-9s %s%s" % (name, line, "" if ok else "  <-- GREW"))
            if not ok:
                bad.append(name)
        for v in vs:
            check_site(v, t)
            rej = q(t.db, "SELECT count(*) FROM change_log WHERE site = ? AND state = 'rejected'",
                    site_of(v.db))[0][0]
            check(rej == 0, "%d changes of %s refused by the township" % (rej, v.db))
        for db in [v.db for v in vs] + [t.db]:
            verify_clean(db)
        check(not bad, "memory grew after the warm-up: %s" % ", ".join(bad))
        stop_server(t)
    finally:
        if sampler.is_alive():
            sampler.stop()
        for d in daemons:
            d.kill()
        if p:
            p.stop()
        t.stop()
        if netns.ok:
            netns.close()


# ---- week_offline ---------------------------------------------------------------------


def week_offline(tmp):
    n = ARGS.changes
    t_start = now()
    t, (v,) = world(tmp, 1)
    p = None
    d = None
    resetter = None
    try:
        site = site_of(v.db)
        # Offline from day 0 (just joined) to day 7: each day's work under
        # that day's clock and date; status moves of earlier tasks from day 2.
        day0 = time.time()
        made = 0
        for day in range(7):
            env = env_with(TALLY_CLOCK_SKEW_MS=day * DAY + RND.randint(8, 17) * 3600 * 1000,
                           TALLY_TODAY=time.strftime("%Y-%m-%d",
                                                     time.localtime(day0 + day * 86400)))
            budget = (n - made) // (7 - day)
            # Small changes in runs longer than a batch from day 4: the change
            # count bounds those pushes, the byte count the task ones.
            moves = (budget // 3 if day < 4 else budget // 2) if day >= 2 else 0
            if moves:
                run_helper("update", v.db, moves, "doing" if day < 5 else "long_term",
                           RND.randrange(made // 3 + 1), env=env)
            run_helper("tasks", v.db, budget - moves - 1, env=env)  # + its problem
            made += budget
        t_queued = now()
        st = v.status()
        check(st["pending"] == n and made == n, "%d changes queued offline: %r" % (n, st["pending"]))

        # Day 7: the township's clock too (the server restarts a week later).
        week = env_with(TALLY_CLOCK_SKEW_MS=7 * DAY)
        port = t.port
        t.stop()
        t.start(port=port, env=week)
        p = Proxy(t.port, "--cut", "1024-65536", "--seed", str(RND.randrange(1 << 30)))
        halt = threading.Event()
        resets = [0]

        def reset_at_random():
            # Resets at random times; the 1-64 KiB cut on and off, so that
            # full batches get through too (else the cut bounds them).
            while not halt.wait(RND.uniform(0.2, 2.0)):
                try:
                    p.cmd("reset")
                    resets[0] += 1
                    p.cmd("set cut 1024-65536" if RND.random() < 0.6 else "set cut off")
                except (Failure, OSError):
                    pass
        resetter = threading.Thread(target=reset_at_random, daemon=True)
        d = Daemon(v, "--url", "https://127.0.0.1:%d" % p.port, env=week)
        resetter.start()
        took = wait_until(lambda: acked(v.db) == n, 240 * max(1, n / 10000),
                          "all %d acknowledged through the cutting proxy" % n)
        halt.set()
        resetter.join()

        def answered():  # changes in push answers, logged when each cycle ends
            return sum(int(x) for x in re.findall(r"sync_(?:done|failed).*? pushed=(\d+)",
                                                  d.logtext()))
        wait_until(lambda: answered() >= n, 120, "the cycle that pushed the last batch ended")
        rc = d.stop()
        check(rc == 0, "tallyd sync exit %r" % rc)
        stats = p.stats()
        c2s_cut = stats["c2s"]

        # Bounded batches: one push's changes share their receive time at the
        # township (one transaction); pushes run one after another.
        groups = q(t.db, "SELECT recv_ms, count(*), min(seq), max(seq), sum(length(body)), "
                         "max(length(body)) FROM change_log WHERE site = ? GROUP BY recv_ms "
                         "ORDER BY min(seq)", site)
        too_big = [g for g in groups if g[1] > BATCH_CHANGES or g[4] > BATCH_BYTES + g[5]]
        check(not too_big, "pushes over the batch bound (%d changes, %d bytes): %r" % (
            BATCH_CHANGES, BATCH_BYTES, too_big[:3]))
        check(len(groups) >= -(-n // BATCH_CHANGES), "%d pushes for %d changes" % (len(groups), n))
        # Resumed where it stopped: a batch whose answer a cut lost is sent
        # again (answered `duplicate`), but nothing the village was told the
        # township holds: the changes in the answers it received add up to
        # its queue exactly. (Starting over after a cut would resend the
        # acknowledged part: the sum grows past the queue.)
        log_text = d.logtext()
        got = answered()
        cuts = stats["cuts"] + resets[0]
        failed = re.findall(r"sync_failed code=(\S+)", log_text)
        check(cuts >= 5, "the proxy cut connections (%d)" % cuts)
        check(got == n, "answers for %d changes reached the village, its queue is %d: it sent "
                        "again what was acknowledged" % (got, n))
        resent = sum(int(x) for x in re.findall(r"sync_done .*?duplicate=(\d+)", log_text))
        srv_pushes = len(re.findall(r"path=/v1/push status=200", t.logtext()))
        eff = q(t.db, "SELECT count(*) FROM change_log WHERE site = ? AND eff IS NOT NULL",
                site)[0][0]
        check(eff == 0, "a week-old queue keeps its own stamps (%d re-stamped)" % eff)
        check_site(v, t)

        # The same queue over a clean link, for the resend overhead: a new
        # epoch makes the village resend all of it (answered duplicate).
        t_clean = now()
        p.cmd("set cut off")
        t.tally("server", "new-epoch", env=week)
        t.stop()  # and a fresh rate-limit bucket: the cut run spent it
        t.start(port=port, env=week)
        r = v.sync("--url", "https://127.0.0.1:%d" % p.port, env=week)
        check(r["ok"] and r["epoch_changed"] and r["duplicates"] == n,
              "clean resend after a new epoch, all answered duplicate: %r" % r)
        c2s_clean = p.stats()["c2s"] - c2s_cut
        t_clean = now() - t_clean
        n_held = check_site(v, t)
        check(n_held == n, "still %d held once after the clean resend" % n)
        for db in (v.db, t.db):
            verify_clean(db)
        log("  seed %d: %d changes queued in %.1f s; synced in %.1f s through %d cuts (%d by "
            "the proxy's 1-64 KiB limit, %d random resets), %d failed cycles; clean resend "
            "%.1f s" % (ARGS.seed, n, t_queued - t_start, took, cuts, stats["cuts"], resets[0],
                        len(failed), t_clean))
        if failed:
            log("  failed cycles' codes: %s" % " ".join(failed))
        sizes = [g[1] for g in groups]
        log("  pushes applied: %d, changes per push min %d median %d max %d (bound %d), "
            "bytes max %d (bound %d)" % (len(groups), min(sizes), statistics.median(sizes),
                                        max(sizes), BATCH_CHANGES, max(g[4] for g in groups),
                                        BATCH_BYTES))
        log("  resent after a lost answer and answered duplicate: %d changes (%.1f %%%s); "
            "pushes answered by the server %d, %d of them applied something" % (
                resent, 100.0 * resent / n, ", more in failed cycles" if failed else "",
                srv_pushes, len(groups)))
        log("  bytes client->server: %d through the cuts, %d clean: resend overhead %d bytes "
            "(%.1f %%)" % (c2s_cut, c2s_clean, c2s_cut - c2s_clean,
                           100.0 * (c2s_cut - c2s_clean) / max(1, c2s_clean)))
        p.stop()
        p = None
        stop_server(t)
    finally:
        if resetter and resetter.is_alive():
            halt.set()
            resetter.join()
        if d:
            d.kill()
        if p:
            p.stop()
        t.stop()


# ---- concurrent_pairs -----------------------------------------------------------------

FIELDS = ("owner", "leader", "measures", "target", "root_cause", "deadline", "status")


def pair_values(i, field):
    """(village value, township value) of pair i: always different."""
    if field == "deadline":
        return "2027-%02d-%02d" % (1 + i % 12, 1 + i % 28), "2028-%02d-%02d" % (1 + i % 12,
                                                                                 1 + i % 28)
    if field == "status":  # both moves are open to a village and to the township
        return ("doing", "long_term") if i % 2 else ("long_term", "doing")
    return "村里改的%s%d" % (field, i), "乡镇改的%s%d" % (field, i)


def replica_of(tmp, t):
    """A township replica: a township database pulling everything with a
    township user's token (docs/sync.md)."""
    token = t.tally("user", "add", "副本").stdout.decode().split()[0]
    rep = os.path.join(tmp, "replica.db")
    run([TALLY, "--db", rep, "init", "--role", "township", "--name", "副本"])
    c = sqlite3.connect(rep)
    c.executemany("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                  [("sync_urls", t.url()), ("sync_pin", t.pin), ("sync_token", token)])
    c.commit()
    c.close()
    return rep


def edit_file(path, edits):
    with open(path, "w") as f:
        for tid, field, value in edits:
            f.write("%s\t%s\t%s\n" % (tid, field, value))
    return path


def field_values(db, pairs):
    rows = q(db, "SELECT record_id, field, quote(value), stamp, site, seq FROM field_state "
                 "WHERE kind = 'task'")
    want = {(tid, f) for tid, f, *_ in pairs}
    return {(r[0], r[1]): r[2:] for r in rows if (r[0], r[1]) in want}


def sql_text(s):
    return "'" + s.replace("'", "''") + "'"


def concurrent_pairs(tmp):
    n = ARGS.pairs
    t, (v,) = world(tmp, 1)
    p = None
    d = None
    try:
        run_helper("tasks", v.db, n)
        check(v.sync()["ok"], "tasks pushed")
        rep = replica_of(tmp, t)
        run([TALLY, "--db", rep, "sync"])
        ids = [r[0] for r in q(v.db, "SELECT id FROM task ORDER BY id")]
        RND.shuffle(ids)
        # (task, field, village value, township value, village edits last)
        pairs = []
        for i, tid in enumerate(ids[:n]):
            f = RND.choice(FIELDS)
            pairs.append((tid, f) + pair_values(i, f) + (RND.random() < 0.5,))
        p = Proxy(t.port)
        d = Daemon(v, "--url", "https://127.0.0.1:%d" % p.port, "--idle-pull", "1")
        d.wait_log("sync_done")
        vsite, tsite = site_of(v.db), site_of(t.db)
        rounds = max(1, ARGS.rounds)
        for r in range(rounds):
            part = pairs[r * n // rounds:(r + 1) * n // rounds]
            # Partition: no new connection, and the open one is dropped.
            p.cmd("set refuse on")
            p.cmd("reset")
            first = [(x[0], x[1], x[2]) for x in part if not x[4]]
            last = [(x[0], x[1], x[2]) for x in part if x[4]]
            town = [(x[0], x[1], x[3]) for x in part]
            run_helper("edit", v.db, edit_file(os.path.join(tmp, "v1.txt"), first))
            time.sleep(0.5)  # stamps in order of the edits, clock offsets aside
            t_lo = top_seq(t.db, tsite)
            run_helper("edit", t.db, edit_file(os.path.join(tmp, "t.txt"), town))
            t_hi = top_seq(t.db, tsite)
            time.sleep(0.5)
            run_helper("edit", v.db, edit_file(os.path.join(tmp, "v2.txt"), last))
            run([TALLY, "--db", rep, "sync"])  # the replica sees the township's side first
            p.cmd("set refuse off")

            def healed():  # all pushed, and the township's edits pulled
                if acked(v.db) != top_seq(v.db, vsite):
                    return False
                return q(v.db, "SELECT count(*) FROM change_log WHERE site = ? AND seq > ? "
                               "AND seq <= ?", tsite, t_lo, t_hi)[0][0] == t_hi - t_lo
            wait_until(healed, 120 * max(1, len(part) / 250), "round %d healed" % r)
            a, b = field_values(v.db, part), field_values(t.db, part)
            diff = sum(1 for k in a if a[k] != b.get(k))
            check(diff == 0, "round %d: %d of %d pairs differ between village and township" % (
                r, diff, len(part)))
        rc = d.stop()
        check(rc == 0, "tallyd sync exit %r" % rc)
        check(v.sync()["ok"], "final village sync")
        run([TALLY, "--db", rep, "sync"])

        # Identical state everywhere, winners by the merge order.
        vals = [field_values(db, pairs) for db in (v.db, t.db, rep)]
        check(vals[0] == vals[1] == vals[2], "field states differ between village, township "
                                             "and replica")
        stamp = {}
        for site in (vsite, tsite):
            for seq, st in q(t.db, "SELECT seq, coalesce(eff, hlc) FROM change_log WHERE site = ?",
                             site):
                stamp[(site, seq)] = st
        conflicts = []  # `tally conflicts --json` of each site: loser -> its stamp
        for db in (v.db, t.db, rep):
            out = run([TALLY, "--db", db, "--json", "conflicts"]).stdout.decode()
            conflicts.append({(c["record"], c["field"], c["loser_value"], c["loser_site"]):
                              c["loser_stamp"] for c in json.loads(out)})
        won = {"village": 0, "township": 0}
        later_won = 0
        missing = [0, 0, 0]
        for tid, f, vv, tv, vlast in pairs:
            val, st, wsite, wseq = vals[0][(tid, f)]
            check(val in (sql_text(vv), sql_text(tv)), "pair %s.%s holds %s" % (tid, f, val))
            if val == sql_text(vv):
                won["village"] += 1
                loser, lsite = tv, tsite
            else:
                won["township"] += 1
                loser, lsite = vv, vsite
            check(wsite in (vsite, tsite) and st == stamp[(wsite, wseq)], "winner's stamp")
            later_won += (wsite == vsite) == vlast
            for i, c in enumerate(conflicts):
                lstamp = c.get((tid, f, loser, lsite))
                if lstamp is None:
                    missing[i] += 1
                else:  # the greater write won (PROTOCOL.md §5: stamp, then site)
                    check((st, wsite) > (lstamp, lsite), "pair %s.%s: %r won over %r" % (
                        tid, f, (st, wsite), (lstamp, lsite)))
        check(missing == [0, 0, 0], "losers missing from the conflict log (village, township, "
                                    "replica): %r of %d" % (missing, n))
        check(q(t.db, "SELECT count(*) FROM change_log WHERE state = 'rejected'")[0][0] == 0,
              "every edit legal under the role rules")
        check_site(v, t, replica=rep)
        for db in (v.db, t.db, rep):
            verify_clean(db)
        log("  seed %d: %d pairs in %d partitions (%s); won: village %d, township %d; the "
            "later edit won %d; every loser in the conflict log of village, township and "
            "replica" % (ARGS.seed, n, rounds, " ".join(
                "%s=%d" % (f, sum(1 for x in pairs if x[1] == f)) for f in FIELDS),
                won["village"], won["township"], later_won))
        p.stop()
        p = None
        stop_server(t)
    finally:
        if d:
            d.kill()
        if p:
            p.stop()
        t.stop()


CASES = {
    "bad_link_soak": in_tmp(bad_link_soak),
    "week_offline": in_tmp(week_offline),
    "concurrent_pairs": in_tmp(concurrent_pairs),
}

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))  # run the finally blocks
    sys.argv = sys.argv[:1] + ARGS.cases
    main(CASES)
