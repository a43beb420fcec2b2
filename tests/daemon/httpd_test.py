#!/usr/bin/env python3
"""Integration tests of daemon/httpd.h: a real tally_testd over real TLS on
loopback, driven byte by byte. Run one case: httpd_test.py CASE."""
import gzip
import os
import socket
import ssl
import subprocess
import threading
import time
import zlib

from tallytest import (Failure, Server, build, check, closed_by_peer, error_code, error_json,
                       main, now, read_response, request)


def with_server(fn, **opts):
    def run():
        s = Server(**opts)
        try:
            fn(s)
            s.stop()
        finally:
            s.cleanup()
    return run


# ---- TLS ----

def tls_versions(s):
    allowed12 = {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                 "ECDHE-ECDSA-CHACHA20-POLY1305"}
    with s.connect(maxv=ssl.TLSVersion.TLSv1_2) as c:
        check(c.version() == "TLSv1.2", "got %s" % c.version())
        check(c.cipher()[0] in allowed12, "TLS 1.2 cipher %s" % c.cipher()[0])
        c.sendall(build("GET", "/v1/health"))
        st, _, body = read_response(c)
        check(st == 200 and b'"ok":true' in body, "health over TLS 1.2")
    with s.connect(minv=ssl.TLSVersion.TLSv1_3) as c:
        check(c.version() == "TLSv1.3", "got %s" % c.version())
        c.sendall(build("GET", "/v1/health"))
        check(read_response(c)[0] == 200, "health over TLS 1.3")
    # TLS 1.0 and 1.1: SECLEVEL=0 makes our own OpenSSL willing, so a
    # refusal is the server's. The same command with -tls1_2 must succeed,
    # or the test would prove nothing.
    def s_client(flag):
        p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % s.port, flag,
                            "-cipher", "DEFAULT:@SECLEVEL=0", "-brief"],
                           input=b"", capture_output=True, timeout=20)
        return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")
    rc, out = s_client("-tls1_2")
    check(rc == 0 and "TLSv1.2" in out, "control: s_client -tls1_2 failed: %s" % out)
    for flag in ("-tls1", "-tls1_1"):
        rc, out = s_client(flag)
        check(rc != 0, "%s accepted: %s" % (flag, out))
    time.sleep(0.2)
    log = s.logtext()
    check(log.count("tls_handshake_failed") >= 2, "refusals not logged:\n" + log)
    check("unsupported protocol" in log, "reason not logged:\n" + log)


def plain_http(s):
    raw = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    raw.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    try:
        while True:
            chunk = raw.recv(4096)
            if not chunk:
                break
            got += chunk
    except (ConnectionError, socket.timeout):
        pass
    raw.close()
    check(b"HTTP/1.1 200" not in got and b"ok" not in got, "plain HTTP answered: %r" % got)
    # still healthy: the next TLS client is served
    st, _, body = request(s, "GET", "/v1/health")
    check(st == 200, "health after plain HTTP: %d" % st)
    time.sleep(0.1)
    check("http request" in s.logtext(), "plain HTTP not logged:\n" + s.logtext())
    check(s.stats()["tls_failed"] >= 1, "tls_failed not counted")


# ---- sizes ----

def oversize_body(s):
    with s.connect() as c:
        t0 = now()
        # Headers only: the body is never sent. The answer must come anyway.
        c.sendall(build("POST", "/echo", b"", {"Content-Type": "application/json",
                                               "Content-Length": "100000000"}))
        st, h, body = read_response(c)
        check(now() - t0 < 3, "413 took %.1fs" % (now() - t0))
        check(st == 413 and error_code(body) == "too_large", "got %d %r" % (st, body))
        check(h.get("connection") == "close", "413 must close: %r" % h)
        check(closed_by_peer(c, 3), "connection not closed after 413")
    st = s.stats()
    check(st["bytes_in"] == 0 and st["body_bytes_held"] == 0, "body was buffered: %r" % st)
    # over a lowered limit, body actually sent: still 413, nothing handled
    body = b'{"x":"' + b"a" * 3000 + b'"}'
    st, _, b = request(s, "POST", "/echo", body, {"Content-Type": "application/json"})
    check(st == 413 and error_code(b) == "too_large", "3 KB over a 2 KB limit: %d" % st)
    # just under the limit is fine
    body = b'{"x":"' + b"a" * 1500 + b'"}'
    st, _, b = request(s, "POST", "/echo", body, {"Content-Type": "application/json"})
    check(st == 200 and b == body, "1.5 KB under a 2 KB limit: %d" % st)
    # Expect: 100-continue: told to go on only when the head passes...
    with s.connect() as c:
        c.sendall(build("POST", "/echo", b"", {"Content-Type": "application/json",
                                               "Content-Length": str(len(body)),
                                               "Expect": "100-continue"}))
        st, _, rest = read_response(c, head_only=True)
        check(st == 100 and rest == b"", "100-continue: %d" % st)
        c.sendall(body)
        st, _, b = read_response(c)
        check(st == 200 and b == body, "body after 100 Continue: %d" % st)
    # ...and answered 413 at once, without a 100, when it does not
    with s.connect() as c:
        c.sendall(build("POST", "/echo", b"", {"Content-Type": "application/json",
                                               "Content-Length": "5000",
                                               "Expect": "100-continue"}))
        st, _, b = read_response(c)
        check(st == 413, "oversize with Expect: %d" % st)


def header_flood(s):
    # one huge header: past max_header_bytes (4 KB here)
    with s.connect() as c:
        c.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Flood: " + b"a" * 20000 + b"\r\n\r\n")
        st, _, body = read_response(c)
        check(st == 431 and error_code(body) == "header_too_large", "long header: %d" % st)
    # many small ones: past max_headers (16 here)
    heads = "".join("X-H%d: v\r\n" % i for i in range(40)).encode()
    with s.connect() as c:
        c.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" + heads + b"\r\n")
        st, _, body = read_response(c)
        check(st == 431 and error_code(body) == "header_too_large", "many headers: %d" % st)
    # a head that never ends keeps being refused at the cap, not buffered
    with s.connect() as c:
        try:
            for _ in range(100):
                c.sendall(b"X-Never-Ending: " + b"b" * 1000 + b"\r\n")
        except (ConnectionError, ssl.SSLError):
            pass
        st, _, body = read_response(c)
        check(st == 431, "endless head: %d" % st)
    # malformed: 400 with a code
    for bad in (b"GET /v1/health HTTP/1.1\nHost: x\n\n",
                b"GET /v1/health HTTP/9.9\r\n\r\n",
                b"GET /v1/health HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n"):
        with s.connect() as c:
            c.sendall(bad)
            st, _, body = read_response(c)
            check(st == 400 and error_code(body) == "bad_request", "%r -> %d" % (bad, st))
    check(request(s, "GET", "/v1/health")[0] == 200, "server unhealthy after floods")


# ---- slow clients ----

def slowloris(s):
    """One byte a second, never idle: dropped at the 2 s head deadline while
    a normal client is served the whole time. A client that connects and
    never starts the TLS handshake is dropped at the same deadline."""
    result = {}
    mute = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    t_mute = now()

    def slow():
        c = s.connect()
        t0 = now()
        req = build("GET", "/v1/health")
        try:
            for b in req:
                c.sendall(bytes([b]))
                if closed_by_peer(c, 1.0):
                    break
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        result["dropped_after"] = now() - t0
        c.close()

    t = threading.Thread(target=slow)
    t.start()
    worst = 0.0
    served = 0
    while t.is_alive():
        t0 = now()
        check(request(s, "GET", "/v1/health")[0] == 200, "normal client refused")
        worst = max(worst, now() - t0)
        served += 1
        time.sleep(0.2)
    t.join()
    d = result["dropped_after"]
    check(1.5 <= d <= 4.5, "slowloris dropped after %.1fs (deadline 2s)" % d)
    check(served >= 5 and worst < 1.5, "normal client: %d served, worst %.2fs" % (served, worst))
    check(closed_by_peer(mute, 1), "silent TCP client not dropped")
    check(now() - t_mute <= 5, "silent client dropped after %.1fs" % (now() - t_mute))
    mute.close()
    check(s.stats()["timeouts"] >= 2, "timeouts not counted: %r" % s.stats())
    log = s.logtext()
    check("http_request_timeout" in log and "tls_handshake_timeout" in log, "not logged:\n" + log)


def slow_body(s):
    """The head is fast, the body trickles: the body deadline (2 s + 1 s per
    500 bytes) drops it; a steady fast body of the same size passes."""
    with s.connect() as c:
        t0 = now()
        c.sendall(build("POST", "/echo", b"", {"Content-Type": "application/json",
                                               "Content-Length": "1000"}))
        dropped = False
        for _ in range(20):
            try:
                c.sendall(b" ")
            except (ConnectionError, ssl.SSLError, OSError):
                dropped = True
                break
            if closed_by_peer(c, 0.5):
                dropped = True
                break
        took = now() - t0
        check(dropped and 1.5 <= took <= 4.5, "slow body dropped=%s after %.1fs" % (dropped, took))
    body = b'{"x":"' + b"a" * 992 + b'"}'
    st, _, b = request(s, "POST", "/echo", body, {"Content-Type": "application/json"})
    check(st == 200 and b == body, "normal body after slow one: %d" % st)


def idle_keepalive(s):
    with s.connect() as c:
        c.sendall(build("GET", "/v1/health"))
        check(read_response(c)[0] == 200, "first request")
        c.sendall(build("GET", "/v1/health"))
        check(read_response(c)[0] == 200, "keep-alive request")
        t0 = now()
        check(closed_by_peer(c, 4), "idle connection kept open")
        took = now() - t0
        check(0.7 <= took <= 2.5, "idle close after %.1fs (idle_timeout 1s)" % took)


def max_connections(s):
    held = [s.connect() for _ in range(3)]
    for c in held:  # each fully open: handshake done and a request served
        c.sendall(build("GET", "/v1/health"))
        check(read_response(c)[0] == 200, "held connection")
    refused = False
    try:
        c = s.connect(timeout=3)
        c.sendall(build("GET", "/v1/health"))
        read_response(c)
    except (ConnectionError, ssl.SSLError, OSError, Failure):
        refused = True
    check(refused, "a 4th connection was served with max_connections 3")
    held.pop().close()
    time.sleep(0.3)
    st, _, _ = request(s, "GET", "/v1/health")
    check(st == 200, "after one closed, a new one is served")
    for c in held:
        c.close()
    time.sleep(0.2)
    check(s.stats()["refused"] >= 1, "refusal not counted")


# ---- content rules ----

def media_types(s):
    js = b'{"a":1}'
    st, _, b = request(s, "POST", "/echo", js, {"Content-Type": "text/plain"})
    check(st == 415 and error_code(b) == "unsupported_media_type", "text/plain: %d" % st)
    st, _, b = request(s, "POST", "/echo", js)
    check(st == 415, "no Content-Type: %d" % st)
    st, _, b = request(s, "POST", "/echo", js, {"Content-Type": "application/json",
                                                "Content-Encoding": "br"})
    check(st == 415 and error_code(b) == "unsupported_media_type", "br: %d" % st)
    st, _, b = request(s, "POST", "/echo", js, {"Content-Type": "application/json; charset=utf-8",
                                                "Content-Encoding": "identity"})
    check(st == 200 and b == js, "json+identity: %d" % st)
    with s.connect() as c:
        c.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n7\r\n{\"a\":1}\r\n0\r\n\r\n")
        st, _, b = read_response(c)
        check(st == 411 and error_code(b) == "length_required", "chunked: %d" % st)
    st, _, b = request(s, "GET", "/nowhere")
    check(st == 404 and error_code(b) == "not_found", "404: %d" % st)
    st, h, b = request(s, "DELETE", "/echo")
    check(st == 405 and error_code(b) == "method_not_allowed" and h.get("allow") == "POST",
          "405: %d %r" % (st, h))


def rate_limit(s):
    def ping(tok):
        hdr = {"Authorization": "Bearer " + tok} if tok else {}
        return request(s, "GET", "/auth/ping", b"", hdr)
    for i in range(3):
        st, _, b = ping("dev-a")
        check(st == 200 and b == b'{"you":"dev-a"}', "burst request %d: %d" % (i, st))
    st, h, b = ping("dev-a")
    check(st == 429 and error_code(b) == "rate_limited", "4th: %d" % st)
    ra = int(h.get("retry-after", "0"))
    check(1 <= ra <= 2, "Retry-After %r (rate 60/min)" % h.get("retry-after"))
    check(error_json(b).get("retry_after") == ra, "retry_after in the body: %r" % b)
    st, _, _ = ping("dev-b")
    check(st == 200, "another credential is limited separately: %d" % st)
    st, _, b = ping(None)
    check(st == 401 and error_code(b) == "unauthorized", "no token: %d" % st)
    st, _, b = ping("revoked")
    check(st == 401 and error_code(b) == "revoked", "revoked: %d" % st)
    st, _, b = ping("custom")
    check(st == 403 and error_code(b) == "forbidden" and "其他村" in b.decode(),
          "hook's own answer: %d %r" % (st, b))
    # a public route has no credential and no limit
    for _ in range(6):
        check(request(s, "GET", "/v1/health")[0] == 200, "public route limited")
    time.sleep(ra + 0.1)
    check(ping("dev-a")[0] == 200, "token back after Retry-After")
    # the auth hook answers before the body is read: a 401 with a declared
    # huge body comes back at once
    with s.connect() as c:
        c.sendall(build("POST", "/auth/echo", b"", {"Content-Type": "application/json",
                                                    "Content-Length": "5000"}))
        st, h, b = read_response(c)
        check(st == 401 and h.get("connection") == "close", "401 before body: %d" % st)


def gzip_bodies(s):
    doc = ('{"items":[' + ",".join('"整改任务%d"' % i for i in range(2000)) + "]}").encode()
    gz = gzip.compress(doc)
    st, h, b = request(s, "POST", "/echo", gz, {"Content-Type": "application/json",
                                                "Content-Encoding": "gzip"})
    check(st == 200 and b == doc, "gzip request inflated: %d" % st)
    check(h.get("x-body-bytes") == "%d/%d" % (len(gz), len(doc)), "sizes %r" % h)
    # the answer is gzip'd only when the client accepts it
    st, h, b = request(s, "GET", "/big?n=5000", b"", {"Accept-Encoding": "gzip"})
    check(st == 200 and h.get("content-encoding") == "gzip" and len(b) < 500, "gzip answer")
    check(gzip.decompress(b).startswith(b'{"pad":"aaa'), "gzip answer content")
    st, h, b = request(s, "GET", "/big?n=5000", b"", {"Accept-Encoding": "gzip;q=0, br"})
    check(st == 200 and "content-encoding" not in h and len(b) == 5000, "identity answer")
    st, h, b = request(s, "GET", "/big?n=500", b"", {"Accept-Encoding": "gzip"})
    check("content-encoding" not in h, "small answers are not gzip'd")
    # a bomb: 64 MB of zeros in ~64 KB, against max_inflated_bytes 1 MB
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    z = b"".join(bomb.compress(b"\0" * (1 << 20)) for _ in range(64)) + bomb.flush()
    check(len(z) < 100000, "bomb is small on the wire")
    t0 = now()
    st, _, b = request(s, "POST", "/echo", z, {"Content-Type": "application/json",
                                               "Content-Encoding": "gzip"})
    check(st == 413 and error_code(b) == "inflate_limit", "bomb: %d %r" % (st, b[:100]))
    check(now() - t0 < 5, "bomb took %.1fs" % (now() - t0))
    # corrupt gzip: 400; the body was read, so the connection stays usable
    with s.connect() as c:
        c.sendall(build("POST", "/echo", gz[:-8] + b"XXXXXXXX",
                        {"Content-Type": "application/json", "Content-Encoding": "gzip"}))
        st, h, b = read_response(c)
        check(st == 400 and error_code(b) == "bad_compression", "corrupt gzip: %d" % st)
        c.sendall(build("GET", "/v1/health"))
        check(read_response(c)[0] == 200, "connection reusable after a 400 with its body read")


def keepalive_pipeline(s):
    with s.connect() as c:
        # two requests in one write: two answers, in order
        c.sendall(build("GET", "/v1/health") + build("POST", "/echo", b'{"n":2}',
                                                      {"Content-Type": "application/json"}))
        st1, _, b1 = read_response(c)
        st2, _, b2 = read_response(c)
        check(st1 == 200 and b'"ok":true' in b1, "first pipelined")
        check(st2 == 200 and b2 == b'{"n":2}', "second pipelined")
        c.sendall(build("GET", "/v1/health", headers={"Connection": "close"}))
        st, h, _ = read_response(c)
        check(st == 200 and h.get("connection") == "close", "Connection: close honoured")
        check(closed_by_peer(c, 3), "closed after Connection: close")
    st = s.stats()
    check(st["requests"] >= 3, "requests counted: %r" % st)


def shutdown(s):
    """SIGTERM during a running handler: the handler finishes and its answer
    is delivered (with Connection: close), idle connections are closed, new
    connections are refused, and the process exits 0."""
    idle = s.connect()
    idle.sendall(build("GET", "/v1/health"))
    check(read_response(idle)[0] == 200, "idle conn warm-up")
    out = {}

    def slow():
        try:
            with s.connect() as c:
                c.sendall(build("GET", "/slow?ms=1500"))
                out["resp"] = read_response(c)
                out["closed"] = closed_by_peer(c, 3)
        except Exception as e:  # recorded and checked below
            out["err"] = e

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)  # the handler is running, blocking the loop
    t_sig = now()
    s.proc.send_signal(15)
    t.join(10)
    check("resp" in out, "slow request lost: %r" % out.get("err"))
    st, h, b = out["resp"]
    check(st == 200 and b == b'{"slept":1500}', "slow answer %d %r" % (st, b))
    # composed before the stop was seen, so no "Connection: close" header,
    # but the connection is closed once the answer is out
    check(out["closed"], "connection kept open after the answer during stop")
    check(closed_by_peer(idle, 3), "idle connection not closed at stop")
    rc = s.proc.wait(10)
    check(rc == 0, "exit code %d" % rc)
    check(now() - t_sig < 5, "stop took %.1fs" % (now() - t_sig))
    try:
        socket.create_connection(("127.0.0.1", s.port), timeout=2).close()
        refused = False
    except OSError:
        refused = True
    check(refused, "listening socket still open after stop")
    log = s.logtext()
    check(log.index("http_stopping") < log.index("http_stopped"), "stop order in log")
    check(log.index("path=/slow") < log.index("http_stopped"), "handler finished before exit")


CASES = {
    "tls_versions": with_server(tls_versions),
    "plain_http": with_server(plain_http),
    "oversize_body": with_server(oversize_body, max_body_bytes="2kb"),
    "header_flood": with_server(header_flood, max_header_bytes="4kb", max_headers=16),
    "slowloris": with_server(slowloris, header_timeout="2s"),
    "slow_body": with_server(slow_body, body_timeout="2s", body_min_rate=500),
    "idle_keepalive": with_server(idle_keepalive, idle_timeout="1s"),
    "max_connections": with_server(max_connections, max_connections=3),
    "media_types": with_server(media_types),
    "rate_limit": with_server(rate_limit, rate_per_minute=60, rate_burst=3),
    "gzip_bodies": with_server(gzip_bodies, max_inflated_bytes="1mb"),
    "keepalive_pipeline": with_server(keepalive_pipeline),
    "shutdown": with_server(shutdown),
}

if __name__ == "__main__":
    main(CASES)
