"""Helpers for the daemon integration tests (Python 3 standard library only).

Starts tally_testd / faultproxy as real processes on loopback with ports the
kernel picks, and speaks raw HTTP/1.1 over TLS so every byte a test sends is
visible in the test.
"""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

BIN = os.environ.get("TALLY_BINARY_DIR", "")
TESTD = os.path.join(BIN, "tests", "daemon", "tally_testd")
TESTC = os.path.join(BIN, "tests", "daemon", "tally_testc")
FAULTPROXY = os.path.join(BIN, "tests", "faultproxy", "faultproxy")
# TALLY_VALGRIND=1 runs the servers and clients under valgrind (use a build
# without sanitizers); any valgrind error makes the process exit 99, which
# the exit-code checks then report.
VALGRIND = (["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
             "--errors-for-leak-kinds=definite,indirect"]
            if os.environ.get("TALLY_VALGRIND") == "1" else [])


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def now():
    return time.monotonic()


class Server:
    """A tally_testd process. Options are httpd config keys (--set)."""

    def __init__(self, **opts):
        self.dir = tempfile.mkdtemp(prefix="tally_httpd_")
        self.log_path = os.path.join(self.dir, "server.log")
        args = VALGRIND + [TESTD, "--dir", self.dir, "--log-level", opts.pop("log_level", "info")]
        for k, v in opts.items():
            args += ["--set", "%s=%s" % (k, v)]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline().decode()
        m = re.match(r"port=(\d+) pin=(\S+) cert=(\S+)", line)
        if not m:
            self.proc.kill()
            raise Failure("server did not start: %r\n%s" % (line, self.logtext()))
        self.port = int(m.group(1))
        self.pin = m.group(2)
        self.cert = m.group(3)

    def logtext(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def context(self, minv=None, maxv=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.cert)
        ctx.check_hostname = True
        if minv:
            ctx.minimum_version = minv
        if maxv:
            ctx.maximum_version = maxv
        return ctx

    def connect(self, minv=None, maxv=None, timeout=10):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return self.context(minv, maxv).wrap_socket(raw, server_hostname="127.0.0.1")

    def stats(self):
        st, _, body = request(self, "GET", "/stats")
        check(st == 200, "stats status %d" % st)
        return json.loads(body)

    def stop(self, timeout=15):
        """SIGTERM, and the exit must be clean (0) and prompt."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Failure("server did not stop within %ds" % timeout)
        self.log.close()
        check(rc == 0, "server exit code %r\n%s" % (rc, self.logtext()))

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def read_response(sock, head_only=False):
    """Reads one HTTP/1.1 response: (status, headers dict lower-cased, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise Failure("connection closed before a response head (got %r)" % data[:200])
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for l in lines[1:]:
        k, v = l.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    if head_only:
        return status, headers, rest
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise Failure("connection closed mid-body")
        rest += chunk
    return status, headers, rest[:n]


def build(method, path, body=b"", headers=None, host="127.0.0.1"):
    h = {"Host": host}
    if body or method == "POST":
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    lines = ["%s %s HTTP/1.1" % (method, path)] + ["%s: %s" % kv for kv in h.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def request(server, method, path, body=b"", headers=None, sock=None):
    """One request on a new (or given) connection: (status, headers, body)."""
    own = sock is None
    s = sock or server.connect()
    try:
        s.sendall(build(method, path, body, headers))
        return read_response(s)
    finally:
        if own:
            s.close()


def error_json(body):
    """The protocol's error message (PROTOCOL.md 7.7), checked for shape."""
    j = json.loads(body)
    check(j.get("v") == 1 and j.get("type") == "error", "not an error message: %r" % j)
    check(set(j) <= {"v", "type", "code", "message", "expected", "retry_after", "version"},
          "unknown members: %r" % j)
    check(re.fullmatch(r"[a-z0-9_]{1,64}", j["code"]) is not None, "code %r" % j)
    check(any(ord(ch) > 0x2e80 for ch in j["message"]), "message not Chinese: %r" % j)
    return j


def error_code(body):
    """The stable code of an error message body."""
    return error_json(body)["code"]


def closed_by_peer(sock, within):
    """True if the peer closes (EOF/reset) within `within` seconds; data read
    meanwhile is discarded."""
    deadline = now() + within
    while now() < deadline:
        sock.settimeout(max(0.05, deadline - now()))
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            return False
        except (ConnectionError, ssl.SSLError, OSError):
            return True
    return False


class Proxy:
    """A faultproxy process in front of a target port, with its control port."""

    def __init__(self, target_port, *args, target_host="127.0.0.1"):
        # stderr to a file: a pipe nobody reads could fill and block it
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            VALGRIND + [FAULTPROXY, "--listen", "127.0.0.1:0", "--target",
                        "%s:%d" % (target_host, target_port),
             "--control", "127.0.0.1:0"] + list(args),
            stdout=subprocess.PIPE, stderr=self.err)
        line = self.proc.stdout.readline().decode()
        m = re.match(r"listen=(\d+) control=(\d+)", line)
        if not m:
            self.proc.kill()
            raise Failure("faultproxy did not start: %r" % line)
        self.port = int(m.group(1))
        self.control = int(m.group(2))

    def cmd(self, line):
        with socket.create_connection(("127.0.0.1", self.control), timeout=5) as s:
            s.sendall((line + "\n").encode())
            ans = s.makefile().readline().strip()
        check(ans.startswith("ok"), "faultproxy %r -> %r" % (line, ans))
        return ans

    def stats(self):
        return {k: int(v) for k, v in (kv.split("=") for kv in self.cmd("stats").split()[1:])}

    def errtext(self):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=5)
        check(self.proc.returncode == 0, "faultproxy exit %r: %s" % (self.proc.returncode,
                                                                    self.errtext()))


def run_testc(*args, env_prefix=(), timeout=60):
    """Runs tally_testc (optionally under a prefix such as faketime);
    returns (summary dict of the last request, body)."""
    env = dict(os.environ)
    # libfaketime is LD_PRELOADed; an ASan build must not insist on being first.
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
    p = subprocess.run(list(env_prefix) + VALGRIND + [TESTC] + list(args), capture_output=True,
                       timeout=timeout, env=env)
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode not in (0, 1):
        raise Failure("tally_testc exit %d: %s" % (p.returncode, p.stderr.decode()[-3000:]))
    lines = out.split("\n--\n")[0].strip().split("\n")
    summary = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', lines[-1]))
    body = out.split("\n--\n", 1)[1] if "\n--\n" in out else ""
    if "rc" not in summary:
        raise Failure("tally_testc said %r / %r" % (out, p.stderr.decode()[-2000:]))
    return summary, body


def main(cases):
    """Runs the case named by argv[1] (or all), prints a closing line."""
    names = sys.argv[1:] or list(cases)
    failed = 0
    for name in names:
        t0 = now()
        try:
            cases[name]()
            print("ok   %s (%.1fs)" % (name, now() - t0))
        except Failure as e:
            failed += 1
            print("FAIL %s: %s" % (name, e))
        except Exception:  # an unexpected error fails too, with its trace
            failed += 1
            print("FAIL %s: unexpected error\n%s" % (name, traceback.format_exc()))
    print("%d passed, %d failed" % (len(names) - failed, failed))
    sys.exit(1 if failed else 0)
