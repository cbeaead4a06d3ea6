"""A 1 GiB array up to the server and back, byte for byte, and the server's
memory after: back within 64 MiB of where it started once the transfer ends
and the objects are released, and the same after the client leaves.

Memory is checked here (it is what the test is about); speed is measured by
the benchmark harness, not here. Set SIMPLERPC_SKIP_GIB=1 to skip on a
machine with less than about 6 GiB free."""

from __future__ import annotations

import os
import time
import zlib
from typing import Any

import pytest

import simplerpc
from simplerpc import materialize

np = pytest.importorskip("numpy")

pytestmark = pytest.mark.skipif(os.environ.get("SIMPLERPC_SKIP_GIB") == "1", reason="SIMPLERPC_SKIP_GIB=1")

GIB = 1 << 30
SLACK = 64 << 20
CHECK = "lambda a: [a.dtype.str, list(a.shape), __import__('zlib').crc32(memoryview(__import__('numpy').ascontiguousarray(a)).cast('B'))]"


def _crc(a: Any) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B"))


def _settled_rss(srv: Any, target: int, wait: float = 10.0) -> int:
    """The server's RSS once it is within SLACK of ``target``, or after ``wait`` s."""
    deadline = time.monotonic() + wait
    rss = srv.rss()
    while rss > target + SLACK and time.monotonic() < deadline:
        time.sleep(0.2)
        rss = srv.rss()
    return rss


def test_one_gib_both_ways_and_the_server_gives_the_memory_back(start_server: Any) -> None:
    local = np.arange(GIB // 8, dtype=np.uint64)  # 1 GiB, every 8 bytes different
    local_crc = _crc(local)
    with start_server() as srv:
        host, port, token, _ = srv
        with simplerpc.connect(host, port, token) as conn:
            check = conn.eval(CHECK)
            ident = conn.eval("lambda a: a")
            assert materialize(check(np.zeros(3, np.uint8)))[1] == [3]
            baseline = srv.rss()
            # Up: the server sees the same bytes.
            assert materialize(check(local)) == ["<u8", [GIB // 8], local_crc]
            # Kept there, then down again: the same bytes, a writable array of ours.
            remote = ident(local)
            back = materialize(remote)
            assert back.dtype == np.uint64 and back.shape == (GIB // 8,) and back.flags.writeable
            assert _crc(back) == local_crc
            del back
            del remote
            # The release rides on the next request.
            assert materialize(check(np.zeros(1, np.uint8)))[1] == [1]
            after = _settled_rss(srv, baseline)
            print(f"\n1 GiB round trip: server VmRSS {baseline / 2**20:.0f} MiB before, {after / 2**20:.0f} MiB after")
            assert after <= baseline + SLACK, (
                f"the server kept {(after - baseline) / 2**20:.0f} MiB after a 1 GiB round trip "
                f"({baseline / 2**20:.0f} -> {after / 2**20:.0f} MiB)"
            )
        # And after the client has gone.
        gone = _settled_rss(srv, baseline)
        assert gone <= baseline + SLACK, f"{(gone - baseline) / 2**20:.0f} MiB kept after disconnect"



def test_a_server_refusing_a_message_closes_with_1009_and_the_client_says_why(start_server: Any) -> None:
    argv = start_server.simplerpc_argv() + ["--max-message-size", str(1 << 20)]
    with start_server(argv) as srv:
        host, port, token, _ = srv
        with simplerpc.connect(host, port, token) as conn:
            size = conn.eval("len")
            assert materialize(size(np.zeros(1000, np.uint8))) == 1000
            with pytest.raises(simplerpc.ConnectionClosedError) as info:
                materialize(size(np.zeros(2 << 20, np.uint8)))
            text = str(info.value)
            assert "1009" in text and str(1 << 20) in text, text
        # The server goes on serving others.
        with simplerpc.connect(host, port, token) as conn:
            assert materialize(conn.eval("6 * 7")) == 42
