#!/usr/bin/env python3
"""A village clock years off must not block sync (PROTOCOL.md §6): httpc in
pin mode under faketime 2 years ahead and 3 days behind talks to a server
on the real clock; a wrong pin is still refused; and in CA mode the same
shifted clocks fail, which shows the shift is real and that dates are
checked there. Run one case: httpc_faketime_test.py CASE."""
import subprocess

from tallytest import Server, check, main, run_testc

WRONG_PIN = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def faketime(shift):
    return ("faketime", "-f", shift)


def cases():
    def clock_is_shifted():
        y = int(subprocess.run(["date", "+%Y"], capture_output=True).stdout)
        y2 = int(subprocess.run(list(faketime("+2y")) + ["date", "+%Y"],
                                capture_output=True).stdout)
        check(y2 == y + 2, "faketime does not shift the clock (%d -> %d)" % (y, y2))

    def pin_ignores_dates():
        s = Server(log_level="warn")
        try:
            url = "https://127.0.0.1:%d" % s.port
            for shift in ("+2y", "-3d", "+11y"):
                r, body = run_testc("--url", url, "--pin", s.pin, "--path", "/echo",
                                    "--method", "POST", "--body", '{"clock":"%s"}' % shift,
                                    env_prefix=faketime(shift))
                check(r["rc"] == "ok" and r["status"] == "200", "pin at %s: %r" % (shift, r))
                check(body.strip() == '{"clock":"%s"}' % shift, "echo at %s" % shift)
                r, _ = run_testc("--url", url, "--pin", WRONG_PIN, "--path", "/v1/health",
                                 env_prefix=faketime(shift))
                check(r["rc"] == "pin_mismatch", "wrong pin at %s: %r" % (shift, r))
            s.stop()
        finally:
            s.cleanup()

    def ca_checks_dates():
        s = Server(log_level="warn")
        try:
            url = "https://127.0.0.1:%d" % s.port
            r, _ = run_testc("--url", url, "--ca", s.cert, "--path", "/v1/health")
            check(r["rc"] == "ok", "CA mode, real clock: %r" % r)
            for shift in ("-3d", "+11y"):
                r, _ = run_testc("--url", url, "--ca", s.cert, "--path", "/v1/health",
                                 env_prefix=faketime(shift))
                check(r["rc"] == "tls" and r["curl"] == "60", "CA mode at %s: %r" % (shift, r))
            s.stop()
        finally:
            s.cleanup()

    return {"clock_is_shifted": clock_is_shifted, "pin_ignores_dates": pin_ignores_dates,
            "ca_checks_dates": ca_checks_dates}


if __name__ == "__main__":
    main(cases())
