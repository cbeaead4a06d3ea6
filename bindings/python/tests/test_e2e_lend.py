"""Large answers lent to the library (``srpc_reply_value_lent``) by the
Python server, with either dispatch: the accelerator's (``_speedups``) and
the ctypes callbacks (``SIMPLERPC_NO_SPEEDUPS=1``), each in a real server
process.

With one client connected, a materialized array of 64 KiB or more is not
copied into the response frame: the library writes it from where it lies
and calls back when done, which lets the array go. With two, every part is
copied (a snapshot). Both give the same bytes. Which path was taken is seen
in the server's peak RSS (VmHWM): a copy raises it by the array's size.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any, Iterator

import pytest

import simplerpc
from simplerpc import materialize

np = pytest.importorskip("numpy")

MIB = 1 << 20

# Deterministic arrays of 8 MiB (and a bit) on the server, of several dtypes;
# "strided" and "fortran" are not C-contiguous (encoded from a C-order copy).
SETUP = """
import numpy as np
_raw = np.random.default_rng(7).integers(0, 256, size=8 * 2**20 + 24, dtype=np.uint8)
arrays = {
    "u1": _raw[: 8 * 2**20].copy(),
    "<f8": _raw[: 8 * 2**20].view("<f8").copy(),
    ">i4": _raw[: 8 * 2**20].view(">i4").reshape(1024, -1).copy(),
    "<c16": _raw[: 8 * 2**20].view("<c16").copy(),
    "odd": _raw[: 8 * 2**20 + 24].view("<u2").copy(),
    "strided": _raw[: 8 * 2**20].reshape(2048, -1)[:, ::2],
    "fortran": np.asfortranarray(_raw[: 8 * 2**20].view("<i4").reshape(2048, -1)),
}
"""


def _local_arrays() -> dict:
    ns: dict = {}
    exec(SETUP, ns)
    return ns["arrays"]


def _same(got: Any, want: Any) -> None:
    assert type(got) is np.ndarray
    assert got.dtype.str == want.dtype.str and got.shape == want.shape
    assert got.tobytes() == np.ascontiguousarray(want).tobytes()


def _gone(conn: Any, name: str) -> bool:
    """Whether the server-side weak reference ``name`` is dead, asked up to
    100 times (the library lets the lent memory go on its I/O thread once
    the frame is written; a proxy's release rides on the next request)."""
    for _ in range(100):
        if materialize(conn.eval(f"{name}() is None")):
            return True
        time.sleep(0.05)
    return False


def _use_dispatch(dispatch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the server processes started next use ``dispatch`` ("accelerator"
    or "ctypes"); skip when the accelerator is asked for and not built."""
    if dispatch == "accelerator" and importlib.util.find_spec("simplerpc._speedups") is None:
        pytest.skip("simplerpc._speedups is not built (SIMPLERPC_SPEEDUPS=1 pip install ./bindings/python)")
    # The server process inherits this (conftest's _child_env keeps it).
    monkeypatch.setenv("SIMPLERPC_NO_SPEEDUPS", "" if dispatch == "accelerator" else "1")


@pytest.fixture(params=["accelerator", "ctypes"])
def lab(request: pytest.FixtureRequest, start_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A server process with the given dispatch, and a client connected to it."""
    accelerated = request.param == "accelerator"
    _use_dispatch(request.param, monkeypatch)
    with start_server() as srv:
        host, port, token, _ = srv
        with simplerpc.connect(host, port, token) as conn:
            enabled = materialize(conn.eval("__import__('simplerpc._native')._native.speedups_enabled()"))
            assert enabled is accelerated
            yield srv, conn


def test_large_arrays_come_back_byte_exact_with_one_and_with_two_clients(lab: Any) -> None:
    srv, conn = lab
    host, port, token, _ = srv
    want = _local_arrays()
    conn.execute(SETUP)
    # One client: lent.
    for name, a in want.items():
        _same(materialize(conn.eval(f"arrays[{name!r}]")), a)
    # Inside a larger answer (small parts around the large ones).
    got = materialize(conn.eval("[1, arrays['u1'], 'x', arrays['fortran'], {'k': arrays['<c16']}]"))
    assert got[0] == 1 and got[2] == "x"
    _same(got[1], want["u1"])
    _same(got[3], want["fortran"])
    _same(got[4]["k"], want["<c16"])
    # Two clients: copied; the same bytes for each.
    with simplerpc.connect(host, port, token) as other:
        other.execute(SETUP)
        for name, a in want.items():
            _same(materialize(conn.eval(f"arrays[{name!r}]")), a)
            _same(materialize(other.eval(f"arrays[{name!r}]")), a)
    # Back to one client: lent again, still right.
    _same(materialize(conn.eval("arrays['>i4']")), want[">i4"])


def test_one_client_is_lent_two_are_copied_and_each_array_is_let_go(lab: Any) -> None:
    srv, conn = lab
    host, port, token, _ = srv
    size = 128 * MIB
    n = size // 8
    make = f"big = np.arange({n}, dtype='<u8'); alive = weakref.ref(big)"
    conn.execute("import numpy as np, weakref\n" + make)
    assert materialize(conn.eval("int(big[-1])")) == n - 1  # made and resident

    # One client: lent, written where it lies; no frame-sized copy.
    before = srv.hwm()
    remote = conn.eval("big")
    back = materialize(remote)
    lent_growth = srv.hwm() - before
    assert back.shape == (n,) and int(back[0]) == 0 and int(back[-1]) == n - 1
    del back
    assert lent_growth < size // 4, f"one client: server peak RSS grew by {lent_growth / MIB:.0f} MiB (copied?)"
    # The library's hold ends once the frame is written: with the name and
    # the proxy's handle gone too (its release rides on the next request),
    # the array is freed.
    del remote
    conn.execute("del big")
    assert _gone(conn, "alive"), "the lent array is still alive after its answer was written (never released?)"

    # Two clients: every part is copied into the frame, the peak grows by it.
    conn.execute(make)
    assert materialize(conn.eval("int(big[-1])")) == n - 1
    with simplerpc.connect(host, port, token) as other:
        assert materialize(other.eval("1 + 1")) == 2
        before = srv.hwm()
        back = materialize(conn.eval("big"))
        copied_growth = srv.hwm() - before
        assert back.shape == (n,) and int(back[-1]) == n - 1
        del back
    assert copied_growth > size * 3 // 4, f"two clients: server peak RSS grew by {copied_growth / MIB:.0f} MiB (lent?)"
    conn.execute("del big")
    assert _gone(conn, "alive"), "the copied array is still alive after its answer was written"


# A client that asks for a 256 MiB array again and again, and is stopped
# (SIGSTOP) while the server writes it: the lent write stalls, the server's
# send queue full.
STALLER = """
import sys, simplerpc
from simplerpc import materialize
conn = simplerpc.connect("127.0.0.1", int(sys.argv[1]), sys.argv[2])
conn.execute("import builtins, numpy as np, weakref\\nbig = np.arange(32 * 2**20, dtype='<u8')\\nbuiltins._lend_probe = weakref.ref(big)")
assert materialize(conn.eval("int(big[-1])")) == 32 * 2**20 - 1
print("ready", flush=True)
while True:
    assert materialize(conn.eval("big"))[-1] == 32 * 2**20 - 1
"""


def _send_queued(port: int) -> bool:
    """Whether an established TCP socket of the server (local ``port``) has
    unsent bytes queued (/proc/net/tcp tx_queue)."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state, queues = fields[1], fields[3], fields[4]
            if int(local.split(":")[1], 16) == port and state == "01" and int(queues.split(":")[0], 16) > 0:
                return True
    return False


def _stalled_staller(srv: Any) -> Any:
    """The staller, stopped in the middle of a lent write."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", STALLER, str(srv.port), srv.token], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    for _ in range(20):  # stopped between two answers: let it go on and try again
        time.sleep(0.1)
        proc.send_signal(signal.SIGSTOP)
        time.sleep(0.2)
        if _send_queued(srv.port):
            return proc
        proc.send_signal(signal.SIGCONT)
    proc.kill()
    proc.wait(30)
    pytest.fail("could not stop the client in the middle of an answer")


@pytest.mark.parametrize("dispatch", ["accelerator", "ctypes"])
def test_a_lent_write_to_a_client_killed_midway_is_released(
    dispatch: str, start_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_dispatch(dispatch, monkeypatch)
    with start_server() as srv:
        proc = _stalled_staller(srv)
        proc.kill()
        proc.wait(30)
        assert proc.stdout is not None
        proc.stdout.close()
        with simplerpc.connect(srv.host, srv.port, srv.token) as conn:
            enabled = materialize(conn.eval("__import__('simplerpc._native')._native.speedups_enabled()"))
            assert enabled is (dispatch == "accelerator")
            # Its session and the library's hold gone, the array is freed.
            assert _gone(conn, "__import__('builtins')._lend_probe"), "a broken lent write kept the array"


@pytest.mark.parametrize("dispatch", ["accelerator", "ctypes"])
def test_a_server_stopped_during_a_stalled_lent_write_exits_cleanly(
    dispatch: str, start_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_dispatch(dispatch, monkeypatch)
    proc = None
    try:
        with start_server() as srv:  # at the end: SIGINT, and it must exit 0 within 15 s
            proc = _stalled_staller(srv)
        assert srv.proc.returncode == 0
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(30)
            assert proc.stdout is not None
            proc.stdout.close()
