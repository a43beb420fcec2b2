#!/usr/bin/env python3
"""The TLS proof table: in one place, every way a connection between a
village and the real `tallyd serve` must fail, each next to a control that
succeeds with the same tools (so a row cannot pass because the tool never
worked). Village side: `tally sync` (libcurl through daemon/httpc) against
a township that presents an expired CA-issued certificate, a certificate
for another host, a self-signed certificate the village has no pin for,
and a key other than the pinned one. Server side: TLS 1.0 and 1.1 peers
and plain HTTP. Prints the table; fails on any row that was not refused
as it should be.

Helpers come from tests/daemon/sync_test.py (Township, Village, make_ca).
Run: tls_test.py proof_table."""
import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))
import sync_test as syn  # noqa: E402
from tallytest import build, check, main  # noqa: E402

SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"


def s_client(port, flag):
    """openssl s_client with SECLEVEL=0, so an old version is only refused
    if the server refuses it."""
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, flag,
                        "-cipher", "DEFAULT:@SECLEVEL=0", "-brief"],
                       input=b"", capture_output=True, timeout=30)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    return p.returncode, out


def plain_http(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(build("GET", "/v1/health"))
        data = b""
        try:
            while len(data) < 4096:
                c = s.recv(4096)
                if not c:
                    break
                data += c
        except (ConnectionError, socket.timeout):
            pass
    return data


def proof_table():
    tmp = tempfile.mkdtemp(prefix="tally_tls_")
    t = None
    rows = []

    def row(peer, client, want, got, how):
        ok = (got == want)
        rows.append((peer, client, want, got, how, ok))

    try:
        t = syn.Township(tmp).start()
        v = syn.Village(tmp, t, t.village("王家村"), "v")
        site = syn.site_of(v.db)
        v.add_tasks(1)
        issue = syn.make_ca(tmp)
        ca = os.path.join(tmp, "ca.pem")
        good = issue("good", "IP:127.0.0.1", "20240101000000Z", "20990101000000Z")
        expired = issue("expired", "IP:127.0.0.1", "20200101000000Z", "20210101000000Z")
        otherhost = issue("otherhost", "DNS:other.example", "20240101000000Z", "20990101000000Z")

        def village(*args):
            r = v.sync(*args, ok=(0, 1))
            code = "ok" if r.get("ok") else r.get("error", {}).get("code", "?")
            return code, r

        def nothing_moved(what):
            st = v.status()
            held = syn.q(t.db, "SELECT count(*) FROM change_log WHERE site = ?", site)[0][0]
            check(st["pending"] == 2 and held == 0,
                  "%s: something moved (pending %d, township holds %d)" % (
                      what, st["pending"], held))

        # -- the self-signed township (the default), pinned by the join code --
        wrong = "sha256//" + base64.b64encode(os.urandom(32)).decode()
        code, r = village("--pin", wrong)
        row("self-signed", "tally sync, another pin", "pin_mismatch", code,
            r.get("error", {}).get("message", ""))
        nothing_moved("wrong pin")
        cas = SYSTEM_CAS if os.path.exists(SYSTEM_CAS) else ca
        code, r = village("--ca", cas)
        row("self-signed", "tally sync, no pin, system CAs", "tls", code,
            r.get("error", {}).get("message", ""))
        nothing_moved("unpinned, system CAs")
        code, r = village("--ca", ca)
        row("self-signed", "tally sync, no pin, another CA", "tls", code,
            r.get("error", {}).get("message", ""))
        nothing_moved("unpinned, another CA")

        # -- server side: old TLS versions, plain HTTP, on the same server --
        rc, out = s_client(t.port, "-tls1_2")
        row("tallyd serve", "openssl s_client -tls1_2 (control)", "ok",
            "ok" if rc == 0 and "TLSv1.2" in out else "refused", "handshake done")
        rc, out = s_client(t.port, "-tls1_3")
        row("tallyd serve", "openssl s_client -tls1_3 (control)", "ok",
            "ok" if rc == 0 and "TLSv1.3" in out else "refused", "handshake done")
        for flag, name in (("-tls1", "TLS 1.0"), ("-tls1_1", "TLS 1.1")):
            rc, out = s_client(t.port, flag)
            alert = re.search(r"alert ([a-z ]+?):", out)
            row("tallyd serve", "openssl s_client %s (%s)" % (flag, name), "refused",
                "refused" if rc != 0 else "ok",
                "server alert: " + alert.group(1) if alert else "handshake failed")
        data = plain_http(t.port)
        row("tallyd serve", "plain HTTP GET /v1/health", "refused",
            "refused" if not data.startswith(b"HTTP/") else "answered",
            "no HTTP answer (%d bytes back)" % len(data))
        time.sleep(0.3)
        log = t.logtext()
        check(log.count("unsupported protocol") >= 2,
              "the server did not log the old-version refusals:\n" + log[-2000:])

        # -- CA-issued certificates: dates and host names are checked --
        for (crt, key), peer, want, client in (
                (expired, "CA-issued, expired 2021", "tls", "tally sync --ca"),
                (otherhost, "CA-issued for other.example", "tls", "tally sync --ca"),
                (good, "CA-issued, valid, 127.0.0.1", "ok", "tally sync --ca (control)")):
            t.stop()
            t.start(extra=("--cert", crt, "--key", key))
            code, r = village("--url", t.url(), "--ca", ca)
            row(peer, client, want, code,
                r.get("error", {}).get("message", "") if code != "ok" else
                "pushed %d" % r.get("pushed", 0))
            if want != "ok":
                nothing_moved(peer)

        # -- control: the pinned self-signed township again, from the join code --
        t.stop()
        t.start()
        v.tally("task", "add", "--problem", v.problem, "--measures", "再一条", "--owner", "李明",
                "--leader", "王书记", "--deadline", "2027-06-30")
        code, r = village("--url", t.url())
        row("self-signed", "tally sync, pin from the join code (control)", "ok", code,
            "pushed %d" % r.get("pushed", 0))
    finally:
        if t:
            t.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        if rows:
            w = [max(len(str(r[i])) for r in rows) for i in range(4)]
            print("  %-*s  %-*s  %-*s  %-*s  %s" % (w[0], "server presents", w[1], "client",
                                                   w[2], "want", w[3], "got", "how"))
            for r in rows:
                print("  %-*s  %-*s  %-*s  %-*s  %s%s" % (w[0], r[0], w[1], r[1], w[2], r[2],
                                                         w[3], r[3], r[4][:70],
                                                         "" if r[5] else "   <-- WRONG"))
    bad = [r for r in rows if not r[5]]
    check(not bad, "%d row(s) not as they must be: %r" % (len(bad), bad))


CASES = {"proof_table": proof_table}

if __name__ == "__main__":
    main(CASES)
