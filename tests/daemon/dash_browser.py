#!/usr/bin/env python3
"""The dashboard in a real browser: starts a township with a village (as
dash_test.py does), writes `tally report --json` to a file and runs
tests/dashboard/dashboard.test.js (playwright-core + Debian's chromium).
Exits 77 (skipped) when node, chromium or playwright-core is missing.
Screenshots and the downloaded .xlsx stay in TALLY_BINARY_DIR/dashboard/.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tallytest import BIN, check, main  # noqa: E402
from dash_test import PASSWORD, World  # noqa: E402
from sync_test import TALLY, run  # noqa: E402

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dashboard")


def browser(w):
    out = os.path.join(BIN, "dashboard")
    os.makedirs(out, exist_ok=True)
    rep = os.path.join(out, "report.json")
    with open(rep, "wb") as f:
        f.write(run([TALLY, "--db", w.t.db, "--json", "report"]).stdout)
    env = dict(os.environ, DASH_URL="https://127.0.0.1:%d" % w.t.port, DASH_USER="乡镇干部",
               DASH_PASSWORD=PASSWORD, DASH_REPORT=rep, DASH_OUT=out)
    p = subprocess.run(["node", os.path.join(JS_DIR, "dashboard.test.js")], cwd=JS_DIR, env=env,
                       capture_output=True, timeout=120)
    check(p.returncode == 0, "dashboard.test.js: %s%s" % (p.stdout.decode(), p.stderr.decode()))
    print(p.stdout.decode().strip())


def case():
    with tempfile.TemporaryDirectory() as tmp:
        w = World(tmp)
        try:
            browser(w)
        finally:
            w.stop()


if __name__ == "__main__":
    if not (shutil.which("node") and os.access("/usr/bin/chromium", os.X_OK)
            and os.path.isdir(os.path.join(JS_DIR, "node_modules", "playwright-core"))):
        print("skipped: needs node, /usr/bin/chromium and npm ci in tests/dashboard")
        sys.exit(77)
    main({"browser": case})
