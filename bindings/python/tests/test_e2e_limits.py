"""The server's limits, against real ``python -m simplerpc.server`` processes
on 127.0.0.1: objects per connection, connections at once, the stack of the
threads that run calls and the handshake deadline."""

from __future__ import annotations

import gc
import socket
import subprocess
import sys
import time

import pytest

import simplerpc
from simplerpc import materialize

# Recursion through a C slot (``__call__``): every level takes C stack, which
# a 2 MiB thread stack runs out of long before this depth (the server died
# of SIGSEGV), and 8 MiB does not.
DEEP_SOURCE = """
import sys
sys.setrecursionlimit({limit})

class Deep:
    def __call__(self, n):
        return 0 if n == 0 else 1 + self(n - 1)

deep = Deep()
"""


def _argv(*extra: str) -> list:
    return [sys.executable, "-m", "simplerpc.server", "--host", "127.0.0.1", "--port", "0", *extra]


def test_help_documents_every_limit():
    out = subprocess.run([sys.executable, "-m", "simplerpc.server", "--help"], capture_output=True, text=True, check=True).stdout
    for option in ("--max-objects", "--max-connections", "--stack-size", "--handshake-timeout"):
        assert option in out, out
    assert "1,000,000" in out and "256" in out and "8 MiB" in out


@pytest.mark.parametrize("bad", [["--stack-size", "0"], ["--max-connections", "-1"], ["--max-objects", "many"]])
def test_a_limit_that_cannot_work_is_refused(bad):
    r = subprocess.run(_argv(*bad), capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and bad[0] in r.stderr, r.stderr


def test_a_stack_below_the_minimum_is_one_clear_line():
    r = subprocess.run(_argv("--stack-size", "1024"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "stack_size" in r.stderr, (r.stdout, r.stderr)


def test_deep_recursion_runs_on_the_default_stack(server, conn):
    conn.execute(DEEP_SOURCE.format(limit=20000))
    assert materialize(conn.eval("deep(9000)")) == 9000
    assert server.proc.poll() is None


def test_a_larger_stack_takes_deeper_recursion(start_server):
    with start_server(_argv("--stack-size", str(64 << 20))) as s:
        with simplerpc.connect(s.host, s.port, s.token) as conn:
            conn.execute(DEEP_SOURCE.format(limit=200000))
            # Past what 8 MiB holds.
            assert materialize(conn.eval("deep(60000)")) == 60000


def test_objects_past_max_objects_raise_until_released(start_server):
    with start_server(_argv("--max-objects", "5")) as s:
        with simplerpc.connect(s.host, s.port, s.token) as conn:
            held = [conn.eval(str(i)) for i in range(5)]
            assert materialize(held[4]) == 4
            with pytest.raises(simplerpc.ObjectLimitError) as e:
                materialize(conn.eval("5"))
            assert isinstance(e.value, simplerpc.RemoteException)
            assert e.value.exception_type == "simplerpc.ObjectLimitError"
            assert "max_objects = 5" in str(e.value) and "--max-objects" in str(e.value)
            # Still at the limit: refused again; what makes no object works.
            with pytest.raises(simplerpc.ObjectLimitError):
                materialize(conn.builtins.len)
            assert materialize(held[0]) == 0
            # Dropped proxies are released with the next request: room again.
            del held[2:]
            gc.collect()
            assert materialize(conn.eval("40 + 2")) == 42
            assert materialize(conn.eval("7")) == 7


def test_failed_calls_with_large_errors_do_not_pile_up_on_the_server(start_server):
    """The server keeps the errors of failed requests for promises built on
    them: the newest 4096, but at most 8 MiB of them. Before that bound in
    bytes, each 4 MiB error here stayed (with its traceback and pickle about
    20 MiB), so 40 of them grew the server by some 800 MiB."""
    failures = 40
    with start_server(_argv()) as s:
        with simplerpc.connect(s.host, s.port, s.token) as conn:
            conn.execute("def fail():\n    raise ValueError('x' * (4 << 20))\n")
            fail = conn.eval("fail")
            for _ in range(2):  # warm: the first error imports what formats it
                with pytest.raises(ValueError):
                    materialize(fail())
            base = s.rss()
            for _ in range(failures):
                with pytest.raises(ValueError) as e:
                    materialize(fail())
                assert len(str(e.value)) >= 4 << 20
            grown = s.rss() - base
            # Still the newest error for a promise built on it, in full.
            last = fail()
            with pytest.raises(ValueError) as e:
                materialize(last.real)
            assert e.value.exception_type == "builtins.ValueError" and "x" * 1000 in str(e.value)
    assert grown < 200 << 20, f"the server grew {grown >> 20} MiB for {failures} failed calls with 4 MiB errors"


def test_one_connection_past_max_connections_is_refused_naming_the_cap(start_server):
    with start_server(_argv("--max-connections", "2")) as s:
        a = simplerpc.connect(s.host, s.port, s.token)
        b = simplerpc.connect(s.host, s.port, s.token)
        try:
            with pytest.raises(simplerpc.SimpleRPCError) as e:
                simplerpc.connect(s.host, s.port, s.token)
            text = str(e.value)
            assert "503" in text and "limit of 2 connections" in text and "max_connections" in text, text
            assert materialize(a.eval("1")) == 1 and materialize(b.eval("2")) == 2
            b.disconnect()
            # The server notices the departure within a read poll.
            deadline = time.monotonic() + 10
            while True:
                try:
                    c = simplerpc.connect(s.host, s.port, s.token)
                    break
                except simplerpc.SimpleRPCError:
                    assert time.monotonic() < deadline, "no room after a client left"
                    time.sleep(0.05)
            assert materialize(c.eval("3")) == 3
            c.disconnect()
        finally:
            a.disconnect()
            b.disconnect()


def test_a_client_trickling_its_handshake_is_dropped_at_the_deadline(start_server):
    with start_server(_argv("--handshake-timeout", "1")) as s:
        sock = socket.create_connection((s.host, s.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(0.1)
        start = time.monotonic()
        closed = False
        try:
            # A request that never ends, 200 bytes every 100 ms.
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            while not closed and time.monotonic() - start < 15:
                try:
                    sock.sendall(b"a" * 200)
                    closed = sock.recv(64) == b""
                except socket.timeout:
                    pass
                except OSError:
                    closed = True
        finally:
            sock.close()
        elapsed = time.monotonic() - start
        assert closed and elapsed < 10, f"the trickling client was still connected after {elapsed:.1f} s (deadline 1 s)"
        assert elapsed >= 0.9, elapsed
        # A prompt client is served.
        with simplerpc.connect(s.host, s.port, s.token) as conn:
            assert materialize(conn.eval("1")) == 1
