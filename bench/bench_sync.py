#!/usr/bin/env python3
"""bench_sync — the PouchDB-comparable sync workload (../shared/bench/peers)
run with real `tallyd serve` and `tally sync` processes over TLS on loopback.

    python3 bench/bench_sync.py BUILD_DIR [--villages 20] [--records 5000]
                                [--flaky-ms 200 | --cut-kib N]
                                [--phase-timeout-s 3600] [--json OUT]

BUILD_DIR is a Release build without sanitizers that has built tally,
tallyd, sync_helper and faultproxy. bench/compare.py runs this beside the
PouchDB bench. Phases (as the PouchDB bench):

  p1 initial push   every village pushes its R new tasks at once
  p2 incremental    every village moves 10 % of its tasks to `doing`, pushes
                    again (PouchDB rewrites status/progress/updated_at; a Tally
                    change carries only the field that changed)
  p3 township pull  a new township replica pulls everything (user token)
  p4 flaky link     p2 with the next 10 % of the tasks through faultproxy
                    resetting every open connection at random intervals
                    (exponential, mean --flaky-ms: PouchDB's default fault),
                    or with --cut-kib cutting each connection after N KiB

In every phase each village runs `tally sync` until it succeeds, 100 ms
apart (PouchDB's one-shot replications are retried the same way); attempts
counts those runs.

Records are tasks, as PouchDB's records are documents: p1 and p3 count V x R,
p2 and p4 count V x R/10. Tally moves more than that: p1 also carries one
problem record per village (the tasks' parent; the village record itself
comes from the township), p3 pulls the whole change log (village and
problem records and the p2 and p4 updates too, where PouchDB pulls the
latest revision of each document). `changes` gives the change count.

Measured per phase: wall time; bytes, the TCP payload through the proxy in
both directions (TLS records, HTTP headers, gzip'd bodies), as PouchDB's
counting proxy measures; requests, the HTTP requests the `tally sync` runs
made, answered or failed (PouchDB counts its fetch calls), and
server_requests, those the server answered (its /v1/health counter); TCP
connections opened through the proxy; the server's peak RSS (VmHWM, reset
through /proc/PID/clear_refs before the phase) and CPU seconds; the
clients' CPU seconds. Setup (databases, joins, task creation, the updates
themselves) is not timed. After p1, p2 and p4 the township database is
checked directly: every village's chain is held exactly once and the task
count is V x R; after p3 the replica holds every change the township
applied.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--villages", type=int, default=20)
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--flaky-ms", type=int, default=200,
                    help="p4: mean ms between resets of every open connection")
    ap.add_argument("--cut-kib", type=int, default=0,
                    help="p4: cut each connection after N KiB instead of --flaky-ms")
    ap.add_argument("--phase-timeout-s", type=float, default=3600)
    ap.add_argument("--json")
    a = ap.parse_args()
    tally = os.path.join(a.build, "client", "tally")
    tallyd = os.path.join(a.build, "daemon", "tallyd")
    helper = os.path.join(a.build, "tests", "daemon", "sync_helper")
    proxy_bin = os.path.join(a.build, "tests", "faultproxy", "faultproxy")
    tmp = tempfile.mkdtemp(prefix="bench_sync_")
    procs = []
    live = set()  # short-lived children (tally sync, sync_helper)
    lock = threading.RLock()  # the signal handler takes it in the main thread
    stopping = threading.Event()

    def on_signal(sig, frame):
        # Threads wait on children: end those first, then unwind main().
        stopping.set()
        with lock:
            for p in list(live):
                p.kill()
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def run(*args, ok=(0,), timeout=None):
        if stopping.is_set():
            raise SystemExit(1)
        p = subprocess.Popen([str(x) for x in args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        with lock:
            live.add(p)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        finally:
            with lock:
                live.discard(p)
        if ok is not None and p.returncode not in ok:
            sys.exit("%s -> %d\n%s\n%s" % (args[:4], p.returncode, out.decode()[-2000:],
                                           err.decode()[-2000:]))
        return subprocess.CompletedProcess(args, p.returncode, out, err)

    def q(db, sql, *args):
        c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=60)
        try:
            return c.execute(sql, args).fetchall()
        finally:
            c.close()

    try:
        town = os.path.join(tmp, "town.db")
        run(tally, "--db", town, "init", "--role", "township", "--name", "基准镇")
        log = open(os.path.join(tmp, "serve.log"), "wb")
        srv = subprocess.Popen([tallyd, "serve", "--db", town, "--listen", "127.0.0.1:0",
                                "--set", "rate_per_minute=0", "--log-level", "warn"],
                               stdout=subprocess.PIPE, stderr=log)
        procs.append(srv)
        m = re.search(r"port=(\d+) pin=(\S+)", srv.stdout.readline().decode())
        port, pin = int(m.group(1)), m.group(2)
        px = subprocess.Popen([proxy_bin, "--listen", "127.0.0.1:0", "--target",
                               "127.0.0.1:%d" % port, "--control", "127.0.0.1:0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        procs.append(px)
        m = re.match(r"listen=(\d+) control=(\d+)", px.stdout.readline().decode())
        pport, control = int(m.group(1)), int(m.group(2))
        url = "https://127.0.0.1:%d" % pport

        def pcmd(line):
            with socket.create_connection(("127.0.0.1", control), timeout=5) as s:
                s.sendall((line + "\n").encode())
                ans = s.makefile().readline().strip()
            if not ans.startswith("ok"):
                sys.exit("faultproxy %r -> %r" % (line, ans))
            return ans

        def pstats():
            return {k: int(v) for k, v in (kv.split("=") for kv in pcmd("stats").split()[1:])}

        # The server's own count of answered requests, asked directly (not
        # through the proxy); the pin is checked by `tally`, not needed here.
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE

        def served():
            import http.client
            c = http.client.HTTPSConnection("127.0.0.1", port, context=tls, timeout=30)
            try:
                c.request("GET", "/v1/health")
                return json.loads(c.getresponse().read())["requests"]
            finally:
                c.close()

        def cpu(pid):
            f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

        t_setup = time.monotonic()
        villages = []
        for i in range(a.villages):
            vid = run(tally, "--db", town, "village", "add", "--name",
                      "村%02d" % i).stdout.decode().split()[0]
            code = run(tally, "--db", town, "village", "code", vid, "--url",
                       url).stdout.decode().split()[0]
            vdb = os.path.join(tmp, "v%02d.db" % i)
            run(tally, "--db", vdb, "join", code, "--name", "dev%02d" % i)
            run(tally, "--db", vdb, "sync")
            villages.append(vdb)
        with ThreadPoolExecutor(2) as ex:
            list(ex.map(lambda v: run(helper, "tasks", v, a.records), villages))
        setup_s = time.monotonic() - t_setup

        def sync_until_done(dbs):
            """`tally sync` on each db at once, each rerun 100 ms after a
            failure; the sum of the runs' JSON counters."""
            deadline = time.monotonic() + a.phase_timeout_s

            def one(v):
                tot = {"attempts": 0, "requests": 0, "changes": 0, "errors": {}}
                while True:
                    tot["attempts"] += 1
                    p = run(tally, "--db", v, "--json", "sync", ok=None,
                            timeout=max(1, deadline - time.monotonic()))
                    try:
                        r = json.loads(p.stdout)
                    except ValueError:
                        r = {}
                    tot["requests"] += r.get("requests", 0) + r.get("failures", 0)
                    # not duplicates: a push whose answer was cut is resent
                    tot["changes"] += r.get("applied", 0) + r.get("pulled_new", 0)
                    if p.returncode == 0:
                        return tot
                    e = (r.get("error") or {}).get("code", "exit %d" % p.returncode)
                    tot["errors"][e] = tot["errors"].get(e, 0) + 1
                    if time.monotonic() > deadline:
                        sys.exit("phase timeout: %s after %d runs: %s" % (
                            v, tot["attempts"], p.stderr.decode()[-500:]))
                    time.sleep(0.1)
            with ThreadPoolExecutor(len(dbs)) as ex:
                res = list(ex.map(one, dbs))
            tot = {k: sum(r[k] for r in res) for k in ("attempts", "requests", "changes")}
            tot["errors"] = {}
            for r in res:
                for e, n in r["errors"].items():
                    tot["errors"][e] = tot["errors"].get(e, 0) + n
            return tot

        def check_town():
            n = q(town, "SELECT count(*) FROM task")[0][0]
            assert n == a.villages * a.records, "tasks at township %d" % n
            for v in villages:
                site = q(v, "SELECT site_id FROM site")[0][0]
                mine = q(v, "SELECT seq, hash FROM change_log WHERE site = ? ORDER BY seq", site)
                held = q(town, "SELECT seq, hash FROM change_log WHERE site = ? ORDER BY seq",
                         site)
                assert mine == held, "village %s: %d vs %d" % (v, len(mine), len(held))
            return {"ok": True}

        results = {}

        def phase(key, name, records, dbs):
            with open("/proc/%d/clear_refs" % srv.pid, "w") as f:
                f.write("5")
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            s0, q0, c0 = pstats(), served(), cpu(srv.pid)
            t0 = time.monotonic()
            tot = sync_until_done(dbs)
            dt = time.monotonic() - t0
            c1, s1 = cpu(srv.pid), pstats()
            q1 = served()
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            hwm = int(re.search(r"VmHWM:\s+(\d+)",
                                open("/proc/%d/status" % srv.pid).read()).group(1))
            b = s1["c2s"] + s1["s2c"] - s0["c2s"] - s0["s2c"]
            p = {"phase": name, "records": records, "wall_s": round(dt, 3),
                 "records_per_s": round(records / dt, 1), "bytes_total": b,
                 "bytes_up": s1["c2s"] - s0["c2s"], "bytes_down": s1["s2c"] - s0["s2c"],
                 "bytes_per_record": round(b / records, 1), "changes": tot["changes"],
                 "requests": tot["requests"],
                 # minus one: the first /v1/health is counted after it read the counter
                 "server_requests": q1 - q0 - 1,
                 "tcp_connections": s1["connections"] - s0["connections"],
                 "attempts": tot["attempts"], "errors": tot["errors"],
                 "proxy_kills": s1.get("kills", 0) - s0.get("kills", 0) +
                 s1["cuts"] - s0["cuts"],
                 "server_peak_rss_mb": round(hwm / 1024, 1),
                 "server_cpu_s": round(c1 - c0, 2),
                 "client_cpu_s": round(r1.ru_utime + r1.ru_stime - r0.ru_utime -
                                       r0.ru_stime, 2)}
            results[key] = p
            print("%s %-22s %8.2f s %9.0f rec/s %11d B %7.1f B/rec %6d req %5d conn "
                  "%6.1f MB srv %7.2f cpu-s srv %4d runs %4d kills" % (
                      key, name, dt, records / dt, b, b / records, p["requests"],
                      p["tcp_connections"], p["server_peak_rss_mb"], p["server_cpu_s"],
                      p["attempts"], p["proxy_kills"]), flush=True)
            return p

        v, r = a.villages, a.records
        phase("p1", "initial push", v * r, villages)
        results["p1"]["verify"] = check_town()
        upd = r // 10
        with ThreadPoolExecutor(2) as ex:
            list(ex.map(lambda d: run(helper, "update", d, upd, "doing", 0), villages))
        phase("p2", "incremental push", v * upd, villages)
        results["p2"]["verify"] = check_town()

        token = run(tally, "--db", town, "user", "add", "基准").stdout.decode().split()[0]
        rep = os.path.join(tmp, "replica.db")
        run(tally, "--db", rep, "init", "--role", "township", "--name", "副本")
        c = sqlite3.connect(rep)
        c.executemany("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                      [("sync_urls", url), ("sync_pin", pin), ("sync_token", token)])
        c.commit()
        c.close()
        held = q(town, "SELECT count(*) FROM change_log WHERE state = 'applied'")[0][0]
        p3 = phase("p3", "township pull", v * r, [rep])
        got = q(rep, "SELECT count(*) FROM change_log")[0][0]
        p3["verify"] = {"ok": got == held, "replica_changes": got, "township_applied": held}
        assert got == held, "replica holds %d changes, township %d applied" % (got, held)

        with ThreadPoolExecutor(2) as ex:
            list(ex.map(lambda d: run(helper, "update", d, upd, "doing", upd), villages))
        if a.cut_kib:
            kib = a.cut_kib * 1024
            pcmd("set cut %d-%d" % (kib, kib))
            fault = "cut every %d KiB" % a.cut_kib
        else:
            pcmd("set kill-every %d" % a.flaky_ms)
            fault = "~%d ms kills" % a.flaky_ms
        try:
            phase("p4", "flaky push (%s)" % fault, v * upd, villages)
        finally:
            pcmd("set cut off")
            pcmd("set kill-every off")
        results["p4"]["verify"] = check_town()
        print("checks passed: every village's chain held exactly once, %d tasks; replica "
              "holds all %d changes" % (v * r, held))
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"tool": "tally", "villages": v, "records": r,
                           "p4_fault": {"kill_every_ms": 0 if a.cut_kib else a.flaky_ms,
                                        "cut_kib": a.cut_kib},
                           "setup_s": round(setup_s, 2), "phases": results},
                          f, indent=1, ensure_ascii=False)
    finally:
        stopping.set()
        with lock:
            for p in list(live):
                p.kill()
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
