#!/usr/bin/env python3
"""bench_sync — the PouchDB-comparable sync workload (../shared/bench/peers)
run with real `tallyd serve` and `tally sync` processes over TLS on loopback.

    python3 bench/bench_sync.py BUILD_DIR [--villages 20] [--records 5000]
                                [--cut-kib 16] [--json OUT]

BUILD_DIR is a Release build without sanitizers that has built tally,
tallyd, sync_helper and faultproxy. Phases (as the PouchDB bench):

  p1 initial push   every village pushes its R new tasks at once
  p2 incremental    every village moves 10 % of its tasks to `doing`, pushes
                    again (PouchDB rewrites status/progress/updated_at; a Tally
                    change carries only the field that changed)
  p3 township pull  a new township replica pulls everything (user token)
  p4 flaky link     p2 with a new 10 % selection through faultproxy cutting
                    every connection after --cut-kib KiB; `tally sync` is
                    rerun after 100 ms until it succeeds (as PouchDB's
                    one-shot replications are retried)

Bytes are TCP payload through the proxy, both directions (TLS records,
HTTP headers and gzip'd bodies): what PouchDB's counting proxy measures.
Setup (databases, joins, task creation, the updates themselves) is not
timed. After each phase the township database is checked directly: every
village's chain is held exactly once and the task count is V x R.
"""
import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--villages", type=int, default=20)
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--cut-kib", type=int, default=16)
    ap.add_argument("--json")
    a = ap.parse_args()
    tally = os.path.join(a.build, "client", "tally")
    tallyd = os.path.join(a.build, "daemon", "tallyd")
    helper = os.path.join(a.build, "tests", "daemon", "sync_helper")
    proxy_bin = os.path.join(a.build, "tests", "faultproxy", "faultproxy")
    tmp = tempfile.mkdtemp(prefix="bench_sync_")
    procs = []

    def run(*args, ok=(0,)):
        p = subprocess.run([str(x) for x in args], capture_output=True)
        if ok is not None and p.returncode not in ok:
            sys.exit("%s -> %d\n%s\n%s" % (args[:4], p.returncode, p.stdout.decode()[-2000:],
                                           p.stderr.decode()[-2000:]))
        return p

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
            import socket
            with socket.create_connection(("127.0.0.1", control), timeout=5) as s:
                s.sendall((line + "\n").encode())
                return s.makefile().readline().strip()

        def wire():
            st = dict(kv.split("=") for kv in pcmd("stats").split()[1:])
            return int(st["c2s"]) + int(st["s2c"])

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

        def sync_all(retry):
            def one(v):
                tries = 0
                while True:
                    tries += 1
                    p = run(tally, "--db", v, "--json", "sync", ok=None)
                    if p.returncode == 0 or not retry:
                        return tries, p.returncode
                    time.sleep(0.1)
            with ThreadPoolExecutor(len(villages)) as ex:
                return list(ex.map(one, villages))

        def check_town():
            n = q(town, "SELECT count(*) FROM task")[0][0]
            assert n == a.villages * a.records, "tasks at township %d" % n
            for v in villages:
                site = q(v, "SELECT site_id FROM site")[0][0]
                mine = q(v, "SELECT seq, hash FROM change_log WHERE site = ? ORDER BY seq", site)
                held = q(town, "SELECT seq, hash FROM change_log WHERE site = ? ORDER BY seq",
                         site)
                assert mine == held, "village %s: %d vs %d" % (v, len(mine), len(held))

        results = {}

        def phase(name, fn, changes):
            b0, t0 = wire(), time.monotonic()
            extra = fn()
            dt, b = time.monotonic() - t0, wire() - b0
            results[name] = {"seconds": round(dt, 3), "bytes": b, "changes": changes,
                             "changes_per_s": round(changes / dt), "bytes_per_change":
                             round(b / changes, 1)}
            if extra:
                results[name].update(extra)
            print("%-16s %8.2f s %12d bytes %8d changes %9d/s %7.1f B/change %s" % (
                name, dt, b, changes, changes / dt, b / changes, extra or ""), flush=True)

        total = a.villages * (a.records + 1)
        phase("p1_initial_push", lambda: (sync_all(False), None)[1], total)
        check_town()
        upd = a.records // 10
        with ThreadPoolExecutor(2) as ex:
            list(ex.map(lambda v: run(helper, "update", v, upd, "doing", 0), villages))
        phase("p2_incremental", lambda: (sync_all(False), None)[1], a.villages * upd)
        check_town()

        token = run(tally, "--db", town, "user", "add", "基准").stdout.decode().split()[0]
        rep = os.path.join(tmp, "replica.db")
        run(tally, "--db", rep, "init", "--role", "township", "--name", "副本")
        c = sqlite3.connect(rep)
        c.executemany("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                      [("sync_urls", url), ("sync_pin", pin), ("sync_token", token)])
        c.commit()
        c.close()
        held = q(town, "SELECT count(*) FROM change_log WHERE state = 'applied'")[0][0]
        phase("p3_township_pull", lambda: (run(tally, "--db", rep, "sync"), None)[1], held)
        got = q(rep, "SELECT count(*) FROM change_log")[0][0]
        print("  replica holds %d changes, township %d applied" % (got, held))

        with ThreadPoolExecutor(2) as ex:
            list(ex.map(lambda v: run(helper, "update", v, upd, "doing", upd), villages))
        kib = a.cut_kib * 1024
        pcmd("set cut %d-%d" % (kib, kib))

        def flaky():
            r = sync_all(True)
            return {"runs": sum(t for t, _ in r), "cuts": int(dict(
                kv.split("=") for kv in pcmd("stats").split()[1:])["cuts"])}
        phase("p4_flaky_%dkib" % a.cut_kib, flaky, a.villages * upd)
        pcmd("set cut off")
        check_town()
        print("checks passed: every village's chain held exactly once, %d tasks" % (
            a.villages * a.records))
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"villages": a.villages, "records": a.records, "phases": results},
                          f, indent=1, ensure_ascii=False)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
