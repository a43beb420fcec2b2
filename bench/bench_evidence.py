"""Evidence upload throughput (issue 7): a real `tallyd serve` and a real
village `tally sync` over TLS on loopback, in one run:

  baseline  `curl --data-binary @FILE` of the same file, one request, to the
            server's PUT /v1/test/raw (a bench-only route, on only when
            TALLY_TEST_RAW_UPLOAD=1: hashes the body, writes and fsyncs it)
  clean     the village's chunked upload of that file (POST state, PUT
            chunks each hashed and fsynced, whole-file check, rename)
  proxied   the same through faultproxy with no fault (the proxy's own cost)
  cut       the same through faultproxy cutting the connection every
            --cut bytes (default 256 KiB) in both directions

Each upload is timed from the start of the command that sends it to its
end; the records were synced before, so only the blob moves. Prints
MB/s and the ratio to the baseline, and writes JSON with --json.

  cmake -DCMAKE_BUILD_TYPE=Release -S . -B build-rel
  cmake --build build-rel --target tally tallyd faultproxy
  python3 bench/bench_evidence.py build-rel [--mb 20] [--cut 262144] [--json FILE]
"""
import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--mb", type=int, default=20)
    ap.add_argument("--cut", type=int, default=262144)
    ap.add_argument("--json")
    a = ap.parse_args()
    os.environ["TALLY_BINARY_DIR"] = os.path.abspath(a.build)
    os.environ["TALLY_TEST_RAW_UPLOAD"] = "1"
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "daemon"))
    from tallytest import Proxy
    from sync_test import Township, Village, q
    from evidence_test import make_file, server_state, attach

    size = a.mb * 1024 * 1024
    tmp = tempfile.mkdtemp(prefix="tally_bench_ev_")
    t = None
    out = {"file_bytes": size}
    try:
        t = Township(tmp).start(extra=("--set", "max_body_bytes=%d" % (size + 4096)))
        v = Village(tmp, t, t.village("村0"), "v0")
        task = v.add_tasks(1)[0]
        token = q(v.db, "SELECT value FROM settings WHERE key = 'sync_token'")[0][0]

        def upload(path, url=None):
            """Records first (blob budget 1 byte), then the timed blob sync."""
            h = make_file(path, size, sum(path.encode()))
            attach(v, task, path)
            c = sqlite3.connect(v.db, timeout=30)
            c.execute("INSERT OR REPLACE INTO settings (key, value) VALUES ('blob_daily_budget', '1')")
            c.commit()
            v.sync()
            c.execute("DELETE FROM settings WHERE key = 'blob_daily_budget'")
            c.commit()
            c.close()
            t0 = time.monotonic()
            syncs = 0
            while server_state(t, h) != "complete":
                syncs += 1
                v.sync(*(["--url", url] if url else []), ok=(0, 1))
                if time.monotonic() - t0 > 600:
                    raise SystemExit("upload did not complete")
            return h, time.monotonic() - t0, syncs

        f1 = os.path.join(tmp, "clean.jpg")
        h1, secs, _ = upload(f1)
        out["clean_s"] = secs
        # Baseline: the same file, one plain request.
        t0 = time.monotonic()
        p = subprocess.run(["curl", "-sS", "--fail", "--cacert", t.db + ".crt", "-X", "PUT",
                            "-H", "Authorization: Bearer " + token,
                            "-H", "Content-Type: application/octet-stream",
                            "--data-binary", "@" + f1, "https://127.0.0.1:%d/v1/test/raw" % t.port],
                           capture_output=True)
        out["curl_s"] = time.monotonic() - t0
        if p.returncode != 0 or json.loads(p.stdout)["sha256"] != h1:
            raise SystemExit("curl baseline failed: %r %r" % (p.stdout, p.stderr))
        # Through the fault proxy without faults: what the proxy itself costs.
        px = Proxy(t.port)
        try:
            _, secs, _ = upload(os.path.join(tmp, "proxied.jpg"), "https://127.0.0.1:%d" % px.port)
        finally:
            px.stop()
        out["proxy_s"] = secs
        # Through the fault proxy: another file of the same size (the first
        # is on the server already and would cost nothing).
        px = Proxy(t.port, "--cut", "%d-%d" % (a.cut, a.cut), "--cut-dir", "both")
        try:
            f2 = os.path.join(tmp, "cut.jpg")
            _, secs, syncs = upload(f2, "https://127.0.0.1:%d" % px.port)
            st = px.stats()
        finally:
            px.stop()
        out.update(cut_s=secs, cut_syncs=syncs, cut_connections=st["connections"],
                   cut_cuts=st["cuts"], cut_c2s_bytes=st["c2s"])
    finally:
        if t:
            t.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    mbs = lambda s: size / s / 1e6  # noqa: E731
    out.update(curl_mbs=mbs(out["curl_s"]), clean_mbs=mbs(out["clean_s"]),
               cut_mbs=mbs(out["cut_s"]), proxy_mbs=mbs(out["proxy_s"]))
    out["clean_ratio"] = out["clean_mbs"] / out["curl_mbs"]
    out["cut_ratio"] = out["cut_mbs"] / out["curl_mbs"]
    out["proxy_ratio"] = out["proxy_mbs"] / out["curl_mbs"]
    out["cut_overhead"] = out["cut_c2s_bytes"] / size
    print("file %d MiB" % a.mb)
    print("curl --data-binary (1 request)  %7.1f MB/s" % out["curl_mbs"])
    print("chunked, clean loopback         %7.1f MB/s  ratio %.2f" % (out["clean_mbs"], out["clean_ratio"]))
    print("chunked, via proxy, no faults   %7.1f MB/s  ratio %.2f" % (out["proxy_mbs"], out["proxy_ratio"]))
    print("chunked, cut every %d B     %7.1f MB/s  ratio %.2f  (%d cuts, %.3f x bytes sent)" % (
        a.cut, out["cut_mbs"], out["cut_ratio"], out["cut_cuts"], out["cut_overhead"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
