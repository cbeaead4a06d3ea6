"""Ctrl-C during a waited request gives it up (README: 'the late answer is
dropped when it comes'), wherever the KeyboardInterrupt is raised: Python
3.10+ runs signal handlers as soon as a ctypes call returns, before the
code after it. Nothing piles up on the client (found by a review)."""
from __future__ import annotations

import signal
import threading
import traceback

import pytest

import simplerpc
from simplerpc import _native

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX signals")


def test_ctrl_c_abandons_the_request(conn, monkeypatch):
    abandoned = []
    real = _native._client_abandon
    monkeypatch.setattr(_native, "_client_abandon", lambda h, r: (abandoned.append(r), real(h, r))[1])
    main = threading.main_thread().ident
    timer = threading.Timer(0.3, signal.pthread_kill, args=(main, signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt) as exc:
            simplerpc.materialize(conn.eval("__import__('time').sleep(1.5) or 'late'"))
    finally:
        timer.cancel()
    where = traceback.extract_tb(exc.value.__traceback__)[-1]
    print("KeyboardInterrupt raised at", where.name, where.lineno, where.line)
    assert abandoned, f"the interrupted request was not abandoned; KeyboardInterrupt raised in {where.name}: {where.line}"


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError


def test_interrupted_materializes_do_not_pile_up(conn):
    conn.execute("import numpy, time")
    main = threading.main_thread().ident
    before = _rss()
    for _ in range(5):
        timer = threading.Timer(0.2, signal.pthread_kill, args=(main, signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                simplerpc.materialize(conn.eval("time.sleep(0.6) or numpy.ones(50_000_000, 'uint8')"))
        finally:
            timer.cancel()
        # the late answer arrives during this wait
        assert simplerpc.materialize(conn.eval("time.sleep(0.8) or 1")) == 1
    grown = _rss() - before
    print("client RSS grew by", grown >> 20, "MiB")
    assert grown < 100 << 20, f"client RSS grew by {grown >> 20} MiB: interrupted answers are kept"
