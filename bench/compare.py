#!/usr/bin/env python3
"""compare — Tally and PouchDB side by side on the same workload, on the
same machine, in one command (issue 8). See bench/README.md.

    python3 bench/compare.py BUILD_DIR [--villages 20] [--records 500,5000]
                             [--runs 3] [--skip-pouch] [--flaky-ms 200]
                             [--out FILE.json] [--md FILE.md] [--readme]
    python3 bench/compare.py --render FILE.json [--md FILE.md] [--readme]

BUILD_DIR is a Release build without sanitizers with the targets tally,
tallyd, sync_helper and faultproxy built; nothing is built here:

    cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release
    cmake --build build-rel -j2 --target tally tallyd sync_helper faultproxy

For each size (V villages x R tasks): sqlite_anchor.py (raw SQLite insert
rates on the same disk), then --runs rounds, each one run of
bench/bench_sync.py (Tally) and one of pouch_bench.js (PouchDB), their order
alternating from round to round so machine noise hits both. Medians with
[min-max] over the runs; a ratio is the median of the per-round ratios
Tally/PouchDB. The PouchDB bench is copied from ../shared/bench/peers into
WORK/peers and `npm ci` runs there once (reused while package-lock.json is
unchanged). WORK is --work, else $TALLY_BENCH_WORK, else BUILD_DIR/bench-work;
every database of the three benches lives under it (one disk).

Output: a markdown report printed and written to --md (default
WORK/compare.md), the JSON of every run to --out (default
WORK/compare.json), and with --readme the section of README.md between
<!-- bench:begin --> and <!-- bench:end --> replaced by the report and the
command. Every process started is in a process group of its own, ended
(SIGTERM, then SIGKILL) when the command ends, fails or is interrupted.
"""
import argparse
import datetime
import filecmp
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PEERS_SRC = os.path.join(REPO, "..", "shared", "bench", "peers")
PEER_FILES = ("package.json", "package-lock.json", "pouch_bench.js", "tcp_proxy.js",
              "sqlite_anchor.py", "summarize_results.py")
PHASES = ("p1", "p2", "p3", "p4")
PHASE_NAMES = {"p1": "p1 initial push", "p2": "p2 10 % updated, pushed",
               "p3": "p3 township pull", "p4": "p4 flaky push"}
FIELDS = ("wall_s", "records_per_s", "bytes_per_record", "requests", "tcp_connections",
          "server_peak_rss_mb", "server_cpu_s", "client_cpu_s", "attempts", "proxy_kills")
# the raw SQLite reference: every record in one transaction, WAL,
# synchronous=FULL (the ledger's pragmas): no batch size inserts faster
ANCHOR_MODE = "bulk-wal-full"
TARGETS = {"push_rate": 10.0, "pull_rate": 10.0, "bytes": 1 / 5, "memory": 1 / 4,
           "apply": 1 / 3}

children = []  # Popen objects, each the leader of its own process group
children_lock = threading.Lock()


def end_children():
    with children_lock:
        live = [p for p in children if p.poll() is None]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in live:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
        for p in live:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        live = [p for p in live if p.poll() is None]
        if not live:
            break


def on_term(sig, frame):
    raise SystemExit(128 + sig)


def run_logged(tag, argv, log_path, timeout, env=None, cwd=None):
    """Runs argv in a new process group; its stdout goes to our stdout
    (prefixed) and to log_path, its stderr to log_path only. The exit code."""
    print("[%s] $ %s" % (tag, " ".join(shlex.quote(a) for a in argv)), flush=True)
    with open(log_path, "ab") as log:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, env=env, cwd=cwd,
                             start_new_session=True)
        with children_lock:
            children.append(p)

        def pump():
            for line in p.stdout:
                log.write(line)
                log.flush()
                sys.stdout.write("[%s] %s" % (tag, line.decode("utf-8", "replace")))
                sys.stdout.flush()
        t = threading.Thread(target=pump, daemon=True)
        t.start()
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print("[%s] timed out after %d s" % (tag, timeout), flush=True)
            end_children()
            rc = -1
        t.join(timeout=10)
    return rc


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


# ---- preparing the PouchDB peer ----

def prepare_peers(work, src):
    dst = os.path.join(work, "peers")
    os.makedirs(dst, exist_ok=True)
    lock_same = os.path.exists(os.path.join(dst, "package-lock.json")) and filecmp.cmp(
        os.path.join(src, "package-lock.json"), os.path.join(dst, "package-lock.json"),
        shallow=False)
    for f in PEER_FILES:
        shutil.copy2(os.path.join(src, f), os.path.join(dst, f))
    if not lock_same or not os.path.isdir(os.path.join(dst, "node_modules", "pouchdb-server")):
        rc = run_logged("npm", ["npm", "ci", "--no-audit", "--no-fund"],
                        os.path.join(work, "npm.log"), 1800, cwd=dst)
        if rc != 0:
            sys.exit("npm ci failed in %s (see %s/npm.log)" % (dst, work))
    return dst


# ---- one run of each bench ----

def run_tally(a, work, v, r, i):
    out = os.path.join(work, "results", "tally-v%d-r%d-%d.json" % (v, r, i))
    tmp = os.path.join(work, "tmp")
    os.makedirs(tmp, exist_ok=True)
    env = dict(os.environ, TMPDIR=tmp)
    rc = run_logged("tally %dx%d #%d" % (v, r, i),
                    [sys.executable, "-u", os.path.join(HERE, "bench_sync.py"), a.build,
                     "--villages", str(v), "--records", str(r), "--flaky-ms", str(a.flaky_ms),
                     "--phase-timeout-s", str(a.phase_timeout_s), "--json", out],
                    os.path.join(work, "tally.log"), a.run_timeout_s, env=env)
    if rc != 0:
        print("!! tally run failed (exit %d), see %s/tally.log" % (rc, work), flush=True)
        return None
    with open(out) as f:
        return json.load(f)


def run_pouch(a, work, peers, v, r, i):
    out = os.path.join(work, "results", "pouch-v%d-r%d-%d.json" % (v, r, i))
    if os.path.exists(out):
        os.remove(out)
    label = "v%d-r%d-run%d" % (v, r, i)
    rc = run_logged("pouch %dx%d #%d" % (v, r, i),
                    ["node", os.path.join(peers, "pouch_bench.js"), "--villages", str(v),
                     "--records", str(r), "--runs", "1", "--seed", str(i), "--flaky-ms",
                     str(a.flaky_ms), "--phase-timeout-s", str(int(a.phase_timeout_s)),
                     "--workdir", os.path.join(work, "pouch"), "--out", out, "--label", label],
                    os.path.join(work, "pouch.log"), a.run_timeout_s, cwd=peers)
    if rc != 0:
        print("!! pouch run failed (exit %d), see %s/pouch.log" % (rc, work), flush=True)
        return None
    with open(out) as f:
        d = json.load(f)
    run = d["configs"][label]["runs"][0]
    run["versions"] = d.get("versions")
    return run


def run_anchor(a, work, peers, v, r):
    out = os.path.join(work, "results", "sqlite-v%d-r%d.json" % (v, r))
    if os.path.exists(out):
        os.remove(out)
    d = os.path.join(work, "anchor")
    os.makedirs(d, exist_ok=True)
    rc = run_logged("sqlite %dx%d" % (v, r),
                    [sys.executable, "-u", os.path.join(peers, "sqlite_anchor.py"),
                     "--villages", str(v), "--records", str(r), "--runs", str(a.runs),
                     "--modes", ANCHOR_MODE + ",txn-wal-full", "--per-record-limit", "20000",
                     "--dir", d, "--out", out],
                    os.path.join(work, "sqlite.log"), a.run_timeout_s)
    if rc != 0:
        print("!! sqlite_anchor failed (exit %d)" % rc, flush=True)
        return None
    with open(out) as f:
        j = json.load(f)
    c = next(iter(j["configs"].values()))
    shutil.rmtree(d, ignore_errors=True)  # up to a GB at 50,000 tasks per village
    return {"sqlite": j["versions"]["sqlite"], "summary": c["summary"], "runs": c["runs"]}


# ---- summaries ----

def summarize(size):
    """Medians, per-round ratios and target checks of one size, in place."""
    t_runs = [x for x in size["tally"] if x]
    p_runs = [x for x in size["pouch"] if x]
    pairs = [(t, p) for t, p in zip(size["tally"], size["pouch"]) if t and p]
    s = {"runs_tally": len(t_runs), "runs_pouch": len(p_runs), "phases": {}}
    for k in PHASES:
        ph = {"records": None, "tally": {}, "pouch": {}, "ratio": {}}
        for name, runs, get in (("tally", t_runs, lambda x: x["phases"].get(k)),
                                ("pouch", p_runs, lambda x: x["phases"].get(k))):
            got = [get(x) for x in runs if get(x)]
            if got:
                ph["records"] = got[0]["records"]
            for f in FIELDS:
                ph[name][f] = spread([g.get(f) for g in got])
            ph[name]["verified"] = all((g.get("verify") or {}).get("ok", True) for g in got)
        for f in FIELDS:
            ph["ratio"][f] = median([t["phases"][k][f] / p["phases"][k][f] for t, p in pairs
                                     if k in t["phases"] and k in p["phases"]
                                     and t["phases"][k].get(f) is not None
                                     and p["phases"][k].get(f)])
        s["phases"][k] = ph

    def peak(x):
        return max(x["phases"][k]["server_peak_rss_mb"] for k in PHASES if k in x["phases"])
    s["peak_mb"] = {"tally": spread([peak(x) for x in t_runs]),
                    "pouch": spread([peak(x) for x in p_runs]),
                    "ratio": median([peak(t) / peak(p) for t, p in pairs])}
    # Tally's server apply rate: p1 changes (tasks and one problem per
    # village) per second of the server's CPU (user+sys): what one core
    # given to the server applies, with TLS, HTTP, gzip, JSON and the hash
    # chain included. The wall rate (20 clients on the same 2 cores) beside it.
    apply_cpu = [x["phases"]["p1"]["changes"] / x["phases"]["p1"]["server_cpu_s"]
                 for x in t_runs if x["phases"]["p1"]["server_cpu_s"] > 0]
    apply_wall = [x["phases"]["p1"]["changes"] / x["phases"]["p1"]["wall_s"] for x in t_runs]
    anchor = size.get("anchor")
    raw = anchor["summary"][ANCHOR_MODE]["records_per_s"]["median"] if anchor else None
    raw_txn = anchor["summary"]["txn-wal-full"]["records_per_s"]["median"] if anchor else None
    s["apply"] = {"per_cpu_s": spread(apply_cpu), "per_wall_s": spread(apply_wall),
                  "raw_batch": raw, "raw_txn_per_record": raw_txn,
                  "ratio_cpu": median(apply_cpu) / raw if raw and apply_cpu else None,
                  "ratio_wall": median(apply_wall) / raw if raw and apply_wall else None}
    ph = s["phases"]
    checks = {"push_rate": (ph["p1"]["ratio"]["records_per_s"], ">=", TARGETS["push_rate"]),
              "pull_rate": (ph["p3"]["ratio"]["records_per_s"], ">=", TARGETS["pull_rate"])}
    for k in PHASES:
        checks["bytes_" + k] = (ph[k]["ratio"]["bytes_per_record"], "<=", TARGETS["bytes"])
    checks["memory"] = (s["peak_mb"]["ratio"], "<=", TARGETS["memory"])
    checks["apply"] = (s["apply"]["ratio_cpu"], ">=", TARGETS["apply"])
    s["checks"] = {k: {"value": v, "op": op, "target": t,
                       "met": None if v is None else (v >= t if op == ">=" else v <= t)}
                   for k, (v, op, t) in checks.items()}
    size["summary"] = s


# ---- markdown ----

def fmt(x, d=None):
    """A number for the tables: d decimals if given, else whole numbers
    from 10 up and 1 or 2 significant decimals below."""
    if x is None:
        return "–"
    if d is None:
        if float(x).is_integer() or abs(x) >= 10:
            d = 0
        else:
            d = 1 if abs(x) >= 1 else 2
    return "{:,.{}f}".format(x, d)


def cell(sp, d=None, rng=False):
    if not sp:
        return "–"
    if rng and sp["min"] != sp["max"]:
        return "%s [%s–%s]" % (fmt(sp["median"], d), fmt(sp["min"], d), fmt(sp["max"], d))
    return fmt(sp["median"], d)


def ratio(x):
    if x is None:
        return "–"
    return "%s×" % (("%.2f" % x) if x < 10 else ("%.0f" % x))


def render(res):
    sizes = res["sizes"]
    keys = list(sizes)
    L = []
    o = res["options"]
    L.append("Tally and PouchDB side by side on one machine (%s, load average %.1f at the "
             "start), %d run(s) each, interleaved; "
             "medians [min–max]; × = median of the per-round ratios Tally/PouchDB. "
             "p4: every open connection reset at random intervals (exponential, mean %d ms), "
             "the same fault for both. Rec = tasks (PouchDB documents)." % (
                 res["machine"]["summary"], res["machine"]["load_at_start"], o["runs"],
                 o["flaky_ms"]))
    L.append("")
    for key in keys:
        sz = sizes[key]
        s = sz["summary"]
        L.append("**%s villages × %s tasks** (%d Tally, %d PouchDB runs)" % (
            fmt(sz["villages"]), fmt(sz["records"]), s["runs_tally"], s["runs_pouch"]))
        L.append("")
        L.append("| phase | records | rec/s Tally | rec/s PouchDB | × | B/rec Tally | B/rec PouchDB "
                 "| × | requests T / P | TCP conns T / P | server peak MB T / P | × "
                 "| server CPU s T / P |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for k in PHASES:
            ph = s["phases"][k]
            t, p, x = ph["tally"], ph["pouch"], ph["ratio"]
            bad = "" if t["verified"] and p["verified"] else " (CHECK FAILED)"
            L.append("| %s%s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s / %s "
                     "| %s | %s / %s |" % (
                         PHASE_NAMES[k], bad, fmt(ph["records"]),
                         cell(t["records_per_s"], rng=True), cell(p["records_per_s"], rng=True),
                         ratio(x["records_per_s"]), cell(t["bytes_per_record"]),
                         cell(p["bytes_per_record"]), ratio(x["bytes_per_record"]),
                         cell(t["requests"]), cell(p["requests"]), cell(t["tcp_connections"]),
                         cell(p["tcp_connections"]), cell(t["server_peak_rss_mb"]),
                         cell(p["server_peak_rss_mb"]), ratio(x["server_peak_rss_mb"]),
                         cell(t["server_cpu_s"], 1), cell(p["server_cpu_s"], 1)))
        L.append("")
    # targets
    L.append("**Targets** (medians of the per-round ratios)")
    L.append("")
    L.append("| target | " + " | ".join(sizes[k]["label"] for k in keys) + " |")
    L.append("|---|" + "---:|" * len(keys))
    rows = [("push_rate", "p1 push rec/s ≥ 10× PouchDB"), ("pull_rate", "p3 pull rec/s ≥ 10× PouchDB")]
    rows += [("bytes_" + k, "%s bytes/rec ≤ 1/5 of PouchDB" % k) for k in PHASES]
    rows += [("memory", "server peak RSS (all phases) ≤ 1/4 of PouchDB's"),
             ("apply", "server apply ≥ 1/3 of raw SQLite batch inserts")]
    for ck, label in rows:
        cells = []
        for k in keys:
            c = sizes[k]["summary"]["checks"][ck]
            v = c["value"]
            if v is None:
                cells.append("–")
                continue
            cells.append("%s %s" % ("%.2f×" % v if v < 10 else "%.0f×" % v,
                                    "met" if c["met"] else "**not met**"))
        L.append("| %s | %s |" % (label, " | ".join(cells)))
    L.append("")
    # the physical limit
    L.append("**Server apply rate against raw SQLite on this disk** (same run)")
    L.append("")
    L.append("| figure | " + " | ".join(sizes[k]["label"] for k in keys) + " |")
    L.append("|---|" + "---:|" * len(keys))

    def arow(label, f):
        L.append("| %s | %s |" % (label, " | ".join(f(sizes[k]["summary"]["apply"]) for k in keys)))
    arow("raw SQLite, all records in 1 transaction, WAL, synchronous=FULL (rec/s)",
         lambda a: fmt(a["raw_batch"]))
    arow("raw SQLite, 1 transaction per record, WAL, FULL (rec/s)",
         lambda a: fmt(a["raw_txn_per_record"]))
    arow("Tally server: p1 changes / server CPU s", lambda a: cell(a["per_cpu_s"], rng=True))
    arow("Tally p1 end to end: changes / wall s", lambda a: cell(a["per_wall_s"], rng=True))
    arow("apply (CPU) / raw batch", lambda a: ratio(a["ratio_cpu"]))
    arow("apply (wall) / raw batch", lambda a: ratio(a["ratio_wall"]))
    L.append("")
    # growth
    if len(keys) > 1:
        L.append("**Growth with the number of tasks per village** (medians; last column: "
                 "largest size / smallest)")
        L.append("")
        L.append("| figure | system | " + " | ".join(sizes[k]["label"] for k in keys) +
                 " | growth |")
        L.append("|---|---|" + "---:|" * (len(keys) + 1))
        grow = [("p1 rec/s", "p1", "records_per_s"), ("p3 rec/s", "p3", "records_per_s"),
                ("p4 rec/s", "p4", "records_per_s"), ("p1 B/rec", "p1", "bytes_per_record"),
                ("p3 B/rec", "p3", "bytes_per_record"), ("p1 requests", "p1", "requests"),
                ("p3 requests", "p3", "requests"), ("p1 server CPU s", "p1", "server_cpu_s")]
        for label, k, f in grow:
            for sysn, name in (("tally", "Tally"), ("pouch", "PouchDB")):
                vals = [(sizes[x]["summary"]["phases"][k][sysn][f] or {}).get("median")
                        for x in keys]
                g = vals[-1] / vals[0] if vals[0] and vals[-1] is not None else None
                L.append("| %s | %s | %s | %s |" % (label, name, " | ".join(
                    fmt(x, 1 if f == "server_cpu_s" else None) for x in vals),
                    "–" if g is None else "%.2f×" % g))
        for sysn, name in (("tally", "Tally"), ("pouch", "PouchDB")):
            vals = [(sizes[x]["summary"]["peak_mb"][sysn] or {}).get("median") for x in keys]
            g = vals[-1] / vals[0] if vals[0] and vals[-1] is not None else None
            L.append("| server peak MB | %s | %s | %s |" % (
                name, " | ".join(fmt(x) for x in vals), "–" if g is None else "%.2f×" % g))
        L.append("")
    v = res["versions"]
    pouch = ("PouchDB %s with pouchdb-server %s" % (v["pouchdb"], v.get("pouchdb-server"))
             if v.get("pouchdb") else "PouchDB not run")
    L.append("Tally %s; %s on Node %s; SQLite %s. "
             "Apply rate: p1 changes (tasks plus one problem record per village) per second "
             "of `tallyd serve` CPU; raw SQLite: `sqlite_anchor.py` mode %s. %s." % (
                 v.get("tally"), pouch, v.get("node"),
                 v.get("sqlite"), ANCHOR_MODE, res["date"][:16].replace("T", " ") + " UTC"))
    L.append("")
    L.append("    " + res["command"])
    return "\n".join(L) + "\n"


def write_readme(md):
    path = os.path.join(REPO, "README.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    b, e = "<!-- bench:begin -->", "<!-- bench:end -->"
    i, j = text.find(b), text.find(e)
    if i < 0 or j < i:
        sys.exit("README.md has no %s ... %s section" % (b, e))
    text = text[:i + len(b)] + "\n" + md + text[j:]
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    print("README.md: bench section rewritten")


def tally_version():
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+changes" if dirty else "")
    except OSError:
        return None


def check_build(build):
    missing = [b for b in ("client/tally", "daemon/tallyd", "tests/daemon/sync_helper",
                           "tests/faultproxy/faultproxy")
               if not os.access(os.path.join(build, b), os.X_OK)]
    if missing:
        sys.exit("%s lacks %s: cmake --build %s -j2 --target tally tallyd sync_helper "
                 "faultproxy" % (build, ", ".join(missing), build))
    cache = {}
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            for line in f:
                if "=" in line and ":" in line.split("=", 1)[0]:
                    k, v = line.split("=", 1)
                    cache[k.split(":")[0]] = v.strip()
    except OSError:
        pass
    if cache.get("CMAKE_BUILD_TYPE") != "Release" or cache.get("TALLY_SANITIZE", "OFF") not in (
            "OFF", "", "0", "FALSE"):
        sys.exit("%s is not a Release build without sanitizers (CMAKE_BUILD_TYPE=%s, "
                 "TALLY_SANITIZE=%s)" % (build, cache.get("CMAKE_BUILD_TYPE"),
                                          cache.get("TALLY_SANITIZE")))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?")
    ap.add_argument("--villages", type=int, default=20)
    ap.add_argument("--records", default="500,5000", help="tasks per village, comma-separated")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-pouch", action="store_true", help="Tally and SQLite only")
    ap.add_argument("--flaky-ms", type=int, default=200,
                    help="p4: mean interval between resets of every open connection")
    ap.add_argument("--phase-timeout-s", type=float, default=3600)
    ap.add_argument("--run-timeout-s", type=float, default=None,
                    help="bound on one bench process (default: 5 x phase timeout)")
    ap.add_argument("--work", default=None)
    ap.add_argument("--peers", default=PEERS_SRC, help="the PouchDB bench to copy")
    ap.add_argument("--out")
    ap.add_argument("--md")
    ap.add_argument("--readme", action="store_true",
                    help="rewrite README.md's bench section with the report")
    ap.add_argument("--render", metavar="JSON", help="only render an earlier --out file")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, on_term)

    if a.render:
        with open(a.render) as f:
            res = json.load(f)
        md = render(res)
        print(md)
        if a.md:
            with open(a.md, "w", encoding="utf-8") as f:
                f.write(md)
        if a.readme:
            write_readme(md)
        return
    if not a.build:
        ap.error("BUILD_DIR is needed (or --render)")
    a.build = os.path.abspath(a.build)
    check_build(a.build)
    a.run_timeout_s = a.run_timeout_s or 5 * a.phase_timeout_s
    work = os.path.abspath(a.work or os.environ.get("TALLY_BENCH_WORK") or
                           os.path.join(a.build, "bench-work"))
    os.makedirs(os.path.join(work, "results"), exist_ok=True)
    out = a.out or os.path.join(work, "compare.json")
    md_path = a.md or os.path.join(work, "compare.md")
    records = [int(x) for x in a.records.split(",") if x]
    argv = ["python3", "bench/compare.py"] + [
        os.path.relpath(x, REPO) if os.path.abspath(x) == a.build else x for x in sys.argv[1:]]
    res = {"command": " ".join(shlex.quote(x) for x in argv),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
           "options": {"villages": a.villages, "records": records, "runs": a.runs,
                       "flaky_ms": a.flaky_ms, "skip_pouch": a.skip_pouch},
           "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                       "load_at_start": os.getloadavg()[0],
                       "summary": "%d cores, Linux %s" % (os.cpu_count(), platform.release())},
           "versions": {"tally": tally_version()}, "sizes": {}}
    try:
        peers = prepare_peers(work, os.path.abspath(a.peers))
        res["versions"]["node"] = subprocess.run(["node", "--version"], capture_output=True,
                                                 text=True).stdout.strip()
        for r in records:
            key = "%dx%d" % (a.villages, r)
            size = {"villages": a.villages, "records": r,
                    "label": "%s×%s" % (fmt(a.villages), fmt(r)),
                    "anchor": run_anchor(a, work, peers, a.villages, r),
                    "tally": [], "pouch": []}
            res["sizes"][key] = size
            if size["anchor"]:
                res["versions"]["sqlite"] = size["anchor"]["sqlite"]
            for i in range(1, a.runs + 1):
                order = ("tally", "pouch") if i % 2 else ("pouch", "tally")
                for which in order:
                    if which == "tally":
                        size["tally"].append(run_tally(a, work, a.villages, r, i))
                    elif not a.skip_pouch:
                        run = run_pouch(a, work, peers, a.villages, r, i)
                        size["pouch"].append(run)
                        if run and run.get("versions"):
                            res["versions"].update(run.pop("versions"))
                    else:
                        size["pouch"].append(None)
            summarize(size)
            with open(out, "w") as f:
                json.dump(res, f, indent=1, ensure_ascii=False)
    except KeyboardInterrupt:
        print("\ninterrupted: ending the bench processes", flush=True)
        end_children()
        sys.exit(130)
    finally:
        end_children()
        for d in ("tmp", "pouch", "anchor"):
            shutil.rmtree(os.path.join(work, d), ignore_errors=True)
    md = render(res)
    print()
    print(md)
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(md)
    print("JSON: %s\nmarkdown: %s" % (out, md_path))
    if a.readme:
        write_readme(md)


if __name__ == "__main__":
    main()
