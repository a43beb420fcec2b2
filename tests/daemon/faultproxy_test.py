#!/usr/bin/env python3
"""Tests of tests/faultproxy: each fault measured from outside, through a
real proxy process, against small TCP servers run here. Run one case:
faultproxy_test.py CASE."""
import os
import socket
import threading
import time

from tallytest import Failure, Proxy, Server, check, main, now, run_testc


class Target:
    """A loopback TCP server: mode "blast" sends `size` bytes to each
    client then closes; mode "echo" echoes."""

    def __init__(self, mode, size=0):
        self.mode, self.size = mode, size
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.stop = False
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while not self.stop:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        try:
            if self.mode == "blast":
                block = bytes(range(256)) * 256
                left = self.size
                while left > 0:
                    n = c.send(block[:min(left, len(block))])
                    left -= n
            else:
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop = True
        self.ls.close()


def receive_all(port, timeout=10):
    """Connects and reads until EOF or reset: (bytes received, how it ended)."""
    got = 0
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionResetError:
        # A reset cut can land before connect() has reported success: the
        # proxy accepts, forwards and sends RST within microseconds, and
        # Python's timed connect then reads the reset from SO_ERROR.
        return got, "reset"
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return got, "eof"
            got += len(d)
    except ConnectionResetError:
        return got, "reset"
    finally:
        s.close()


def cases():
    def cut_exact():
        t = Target("blast", 200000)
        p = Proxy(t.port, "--cut", "5000-5000", "--cut-dir", "s2c", "--cut-mode", "fin")
        try:
            try:
                got, how = receive_all(p.port)
            except OSError as e:
                raise Failure("%s; proxy said: %s" % (e, p.errtext()))
            check(got == 5000 and how == "eof", "fin cut: got %d (%s)" % (got, how))
            p.cmd("set cut-mode rst")
            got, how = receive_all(p.port)
            check(got <= 5000 and how in ("reset", "eof"), "rst cut: got %d (%s)" % (got, how))
            st = p.stats()
            check(st["cuts"] == 2 and st["s2c"] == 10000, "stats %r" % st)
            p.cmd("set cut off")
            got, how = receive_all(p.port)
            check(got == 200000 and how == "eof", "no cut: got %d" % got)
        finally:
            p.stop()
            t.close()

    def cut_random_range():
        t = Target("blast", 100000)
        p = Proxy(t.port, "--cut-mode", "fin", "--seed", "7")
        try:
            p.cmd("set cut 1000-3000")
            p.cmd("set cut-dir s2c")
            sizes = [receive_all(p.port)[0] for _ in range(20)]
            check(all(1000 <= n <= 3000 for n in sizes), "out of range: %r" % sizes)
            check(len(set(sizes)) >= 10, "not random: %r" % sizes)
        finally:
            p.stop()
            t.close()

    def latency():
        t = Target("echo")
        p = Proxy(t.port, "--latency-ms", "150")

        def rtt():
            with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
                s.sendall(b"x")  # warm up the proxy's connect
                s.recv(10)
                t0 = now()
                s.sendall(b"ping")
                got = b""
                while len(got) < 4:
                    got += s.recv(10)
                return now() - t0
        try:
            slow = rtt()
            check(0.29 <= slow <= 1.0, "rtt %.3fs with 150 ms each way" % slow)
            p.cmd("set latency 0")
            fast = rtt()
            check(fast < 0.25, "rtt %.3fs after latency 0" % fast)
        finally:
            p.stop()
            t.close()

    def refuse():
        t = Target("blast", 1000)
        e = Target("echo")
        p = Proxy(t.port)
        q = Proxy(e.port)
        try:
            # "reset" drops live connections
            with socket.create_connection(("127.0.0.1", q.port), timeout=5) as s:
                s.sendall(b"hi")
                check(s.recv(10) == b"hi", "echo through proxy")
                check(q.cmd("reset") == "ok reset=1", "reset answer")
                try:
                    gone = s.recv(10) == b""
                except ConnectionResetError:
                    gone = True
                check(gone, "connection survived reset")
            check(receive_all(p.port)[0] == 1000, "before refuse")
            p.cmd("set refuse on")
            try:
                socket.create_connection(("127.0.0.1", p.port), timeout=2).close()
                refused = False
            except ConnectionRefusedError:
                refused = True
            check(refused, "connect not refused")
            p.cmd("set refuse off")
            check(receive_all(p.port)[0] == 1000, "same port after refuse off")
        finally:
            p.stop()
            q.stop()
            t.close()
            e.close()

    def stall():
        t = Target("blast", 4000)
        p = Proxy(t.port, "--cut-dir", "s2c")
        try:
            p.cmd("set stall 1000 800")
            t0 = now()
            got, how = receive_all(p.port)
            took = now() - t0
            check(got == 4000, "stall lost data: %d" % got)
            check(0.75 <= took <= 2.0, "stall of 800 ms took %.2fs" % took)
            check(p.stats()["stalls"] == 1, "stall not counted")
        finally:
            p.stop()
            t.close()

    def kill_every():
        """Time-based kills (the PouchDB bench's fault): every open
        connection is reset, idle or not; "off" stops it."""
        e = Target("echo")
        p = Proxy(e.port, "--seed", "3")
        try:
            conns = [socket.create_connection(("127.0.0.1", p.port), timeout=10) for _ in range(3)]
            for s in conns:
                s.sendall(b"hi")
                check(s.recv(10) == b"hi", "echo through proxy")
            p.cmd("set kill-every 50")
            for s in conns:
                try:
                    gone = s.recv(10) == b""
                except ConnectionResetError:
                    gone = True
                check(gone, "connection survived the kills")
                s.close()
            p.cmd("set kill-every off")
            st = p.stats()
            check(st["kills"] >= 3 and st["active"] == 0, "stats %r" % st)
            with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
                for _ in range(20):
                    s.sendall(b"ping")
                    check(s.recv(10) == b"ping", "echo after kill-every off")
                    time.sleep(0.02)
            check(p.stats()["kills"] == st["kills"], "killed after off")
        finally:
            p.stop()
            e.close()

    def bounded_memory():
        """A fast sender and a client that does not read: the proxy holds
        about --max-buffer per direction, not the 64 MB sent."""
        t = Target("blast", 64 << 20)
        p = Proxy(t.port, "--max-buffer", "262144")
        try:
            s = socket.create_connection(("127.0.0.1", p.port))
            time.sleep(1.0)
            with open("/proc/%d/status" % p.proc.pid) as f:
                rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            check(rss < 40 * 1024, "faultproxy RSS %d KiB with a stalled reader" % rss)
            st = p.stats()
            check(st["s2c"] < 8 << 20, "forwarded %d bytes to a non-reader" % st["s2c"])
            s.close()
        finally:
            p.stop()
            t.close()

    def tls_through_proxy():
        """httpc through the proxy: fine as is and with latency; a cut
        mid-handshake or mid-answer is a network error, not a TLS one."""
        srv = Server(log_level="warn")
        p = Proxy(srv.port, "--cut-mode", "rst")
        try:
            url = "https://127.0.0.1:%d" % p.port
            r, body = run_testc("--url", url, "--pin", srv.pin, "--path", "/v1/health")
            check(r["rc"] == "ok", "through proxy: %r" % r)
            p.cmd("set latency 100")
            t0 = now()
            r, _ = run_testc("--url", url, "--pin", srv.pin, "--path", "/v1/health")
            check(r["rc"] == "ok" and now() - t0 >= 0.4, "with latency: %r" % r)
            p.cmd("set latency 0")
            p.cmd("set cut-dir s2c")
            p.cmd("set cut 1000-1000")  # inside the server's handshake flight
            r, _ = run_testc("--url", url, "--pin", srv.pin, "--path", "/v1/health")
            check(r["rc"] == "network", "cut in handshake: %r" % r)
            p.cmd("set cut 3500-3500")  # inside a 100 KB random answer
            r, _ = run_testc("--url", url, "--pin", srv.pin, "--path", "/random?n=100000")
            check(r["rc"] == "network", "cut in answer: %r" % r)
            p.cmd("set cut off")
            p.cmd("set refuse on")
            r, _ = run_testc("--url", url, "--pin", srv.pin, "--path", "/v1/health")
            check(r["rc"] == "network", "refused: %r" % r)
            p.cmd("set refuse off")
            p.cmd("set stall 0 0")  # nothing ever moves: bounded by the timeout
            p.cmd("set cut-dir both")
            t0 = now()
            r, _ = run_testc("--url", url, "--pin", srv.pin, "--path", "/v1/health",
                             "--connect-ms", "1000")
            check(r["rc"] == "timeout" and now() - t0 < 5, "stalled: %r" % r)
            srv.stop()
        finally:
            p.stop()
            srv.cleanup()

    return {
        "cut_exact": cut_exact,
        "cut_random_range": cut_random_range,
        "latency": latency,
        "refuse": refuse,
        "stall": stall,
        "kill_every": kill_every,
        "bounded_memory": bounded_memory,
        "tls_through_proxy": tls_through_proxy,
    }


if __name__ == "__main__":
    main(cases())
