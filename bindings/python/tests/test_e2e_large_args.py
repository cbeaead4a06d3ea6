"""End to end: a large array argument travels byte-exact from the client.

The package hands the library positional and keyword arguments as parts
(``packb_parts``): the array's own memory a part of its own, which goes
into the request frame by reference rather than copied (core's
``raw_spliced`` tests check that the frame's own buffer stays small; here
the client's peak RSS shows that no frame-sized copy is made). These tests
check what arrives: the server hashes what it received, and echoes it
back, over a WebSocket connection to the Python server, to the stock
``simplerpyc`` server (which must decode our frames) and over the stream
transport to a child (``spawn``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from typing import Any, Dict, List

import numpy as np
import pytest

import simplerpc
from simplerpc import materialize

SHA256 = "lambda a: [a.dtype.str, list(a.shape), __import__('hashlib').sha256(a.tobytes()).hexdigest()]"


def sha(a: Any) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def check_large_arguments(conn: Any) -> None:
    big = np.random.default_rng(1).integers(0, 256, 64 << 20, dtype=np.uint8)
    wide = np.random.default_rng(2).standard_normal((512, 1024)).astype(">f8")  # 4 MiB, big-endian
    digest = sha(big)
    hasher, echo = conn.eval(SHA256), conn.eval("lambda *a, **k: [list(a), k]")
    assert materialize(hasher(big)) == ["|u1", [64 << 20], digest]
    # Several large arrays, a small one and bytes in one call; kwargs too.
    small = np.arange(10, dtype=np.int16)
    args, kwargs = materialize(echo(big, [wide, small], b"b" * 70000, k=wide))
    assert sha(args[0]) == digest and args[0].flags.writeable
    assert args[1][0].dtype.str == ">f8" and sha(args[1][0]) == sha(wide)
    assert np.array_equal(args[1][1], small) and args[2] == b"b" * 70000
    assert sha(kwargs["k"]) == sha(wide)
    # Sizes around the library's splice threshold (64 KiB).
    for n in ((1 << 16) - 1, 1 << 16, (1 << 16) + 1):
        assert materialize(hasher(big[:n]))[2] == sha(big[:n]), n
    # A non-contiguous array (packed from a copy) and a Fortran-ordered one.
    assert materialize(hasher(big[::2]))[2] == sha(big[::2])
    fortran = np.asfortranarray(wide)
    assert materialize(hasher(fortran))[2] == sha(wide)


def test_a_64_mib_argument_to_the_python_server(conn: simplerpc.Connection) -> None:
    check_large_arguments(conn)


def test_a_64_mib_argument_over_the_stream_transport() -> None:
    with simplerpc.spawn() as conn:
        check_large_arguments(conn)
        assert conn._pipelining
        big = np.full(64 << 20, 7, dtype=np.uint8)
        promise = conn.eval("lambda a: a")(big)
        assert materialize(conn.eval(SHA256)(promise))[2] == sha(big)


# What the server computes of each argument it got: dtype, shape and a hash
# of the bytes (bytes hashed as they are). Python 3.8 and both servers.
HASH_SOURCE = """
import hashlib
def _h(v):
    if isinstance(v, (bytes, bytearray)):
        return ['bytes', [len(v)], hashlib.sha256(v).hexdigest()]
    return [v.dtype.str, list(v.shape), hashlib.sha256(v.tobytes()).hexdigest()]
def hash_all(*a, **k):
    return [[_h(v) for v in a], {n: _h(v) for n, v in k.items()}]
"""


def digest(v: Any) -> List[Any]:
    """What ``_h`` answers for ``v``, computed locally."""
    if isinstance(v, bytes):
        return ["bytes", [len(v)], hashlib.sha256(v).hexdigest()]
    return [v.dtype.str, list(v.shape), sha(v)]


def keyword_arrays(budget: int) -> Dict[str, Any]:
    """Arrays of several dtypes, each at least 64 KiB (a part of its own),
    about ``budget`` bytes each: contiguous, Fortran-ordered, strided,
    big-endian, booleans, complex; and sizes around the 64 KiB threshold."""
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 256, budget + 64, dtype=np.uint8)
    n = budget // 8 * 8
    return {
        "u1": raw[:n].copy(),
        "b1": raw[:n] % 3 == 0,
        "f2": raw[:n].view("<f2").copy(),
        "i4_be": raw[:n].view(">i4").reshape(64, -1).copy(),
        "c16": raw[:n].view("<c16").copy(),
        "f8_fortran": np.asfortranarray(raw[:n].view(">f8").reshape(32, -1)),
        "u2_strided": raw[:n].view("<u2")[::2],
        "below": raw[: (1 << 16) - 1].copy(),
        "at": raw[: 1 << 16].copy(),
        "above": raw[: (1 << 16) + 1].copy(),
    }


def check_keyword_arguments(conn: Any, budget: int) -> None:
    """Large arrays as ``f(x=a)``, mixed ``f(a, y=b)`` and with small
    values among them arrive byte-exact, hashed by the server and echoed."""
    conn.execute(HASH_SOURCE)
    hash_all = conn.eval("hash_all")
    echo = conn.eval("lambda *a, **k: [list(a), k]")
    arrays = keyword_arrays(budget)
    for name, a in arrays.items():
        assert materialize(hash_all(x=a)) == [[], {"x": digest(a)}], name
        args, kwargs = materialize(echo(x=a))
        assert args == [] and list(kwargs) == ["x"], name
        got = kwargs["x"]
        assert got.dtype.str == a.dtype.str and got.shape == a.shape, name
        assert sha(got) == sha(a), name
    # Mixed: positional and keyword arrays in one call, small values between.
    a, b, c = arrays["u1"], arrays["c16"], arrays["f8_fortran"]
    small = np.arange(10, dtype=np.int16)
    got = materialize(hash_all(a, c, y=b, z=small, w=b"w" * 70000))
    assert got == [[digest(a), digest(c)], {"y": digest(b), "z": digest(small), "w": digest(b"w" * 70000)}]
    args, kwargs = materialize(echo(a, y=b, s=[c, 1, "x"], z=small))
    assert sha(args[0]) == sha(a) and sha(kwargs["y"]) == sha(b)
    assert kwargs["s"][0].dtype.str == c.dtype.str and sha(kwargs["s"][0]) == sha(c)
    assert kwargs["s"][1:] == [1, "x"] and np.array_equal(kwargs["z"], small)


def check_array_keys(conn: Any, budget: int) -> None:
    """Large arrays as a getitem key (``p[mask]``, ``p[indices]``, inside a
    list or a tuple key) index byte-exact."""
    rng = np.random.default_rng(9)
    n = budget // 8
    local = rng.standard_normal(n).astype(">f8")
    conn.execute(HASH_SOURCE)
    remote = conn.modules.numpy.asarray(local)  # sent by position
    mask = rng.integers(0, 2, n).astype(bool)  # n bytes
    indices = rng.integers(0, n, max(n // 8, (1 << 16) // 8 + 1)).astype("<i8")  # >= 64 KiB
    for name, key in (("mask", mask), ("indices", indices)):
        got = materialize(remote[key])
        assert got.dtype.str == ">f8" and sha(got) == sha(local[key]), name
    # Inside a tuple key (numpy's multi-axis indexing), with a slice.
    grid = local[: (n // 64) * 64].reshape(-1, 64)
    remote_grid = conn.modules.numpy.asarray(grid)
    rows = rng.integers(0, 2, grid.shape[0]).astype(bool)
    got = materialize(remote_grid[rows, 1:5])
    assert sha(got) == sha(grid[rows, 1:5])
    # The key reaches __getitem__ as it was: hashed there.
    keyed = conn.eval("type('K', (), {'__getitem__': lambda self, k: _h(k)})()")
    assert materialize(keyed[mask]) == digest(mask)
    big_bytes = bytes(range(256)) * (budget // 512)
    assert materialize(keyed[big_bytes]) == digest(big_bytes)


def test_keyword_arguments_and_keys_to_the_python_server(conn: simplerpc.Connection) -> None:
    check_keyword_arguments(conn, 2 << 20)
    check_array_keys(conn, 2 << 20)


def test_keyword_arguments_and_keys_to_the_stock_server(reference_server: Any) -> None:
    # The stock server takes messages of 1 MiB at most: arrays of 128 KiB.
    host, port, token, _ = reference_server
    with simplerpc.connect(host, port, token) as conn:
        assert conn._native.extensions == 0
        check_keyword_arguments(conn, 128 << 10)
        check_array_keys(conn, 512 << 10)


def test_keyword_arguments_and_keys_over_the_stream_transport() -> None:
    with simplerpc.spawn() as conn:
        check_keyword_arguments(conn, 1 << 20)
        check_array_keys(conn, 1 << 20)


# A client in a fresh process (its peak RSS is its own) sends one 256 MiB
# array as a keyword argument, then as a positional one, then as a getitem
# key, and reports how much its peak resident set size (VmHWM) grew with
# each. A keyword argument joined into one buffer and copied into the frame
# raised it by twice the array (a key by more: its trail copied it too);
# sent from where it lies, the growth is small.
PEAK_CLIENT = """
import sys, numpy as np, simplerpc
from simplerpc import materialize

def hwm():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    raise SystemExit('no VmHWM')

host, port, token, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
a = np.full(size // 8, 3, dtype='<u8')
a[::4096] = np.arange(a.size // 4096 + (a.size % 4096 > 0), dtype='<u8')
with simplerpc.connect(host, port, token) as conn:
    check = conn.eval("lambda *a, **k: [(v.nbytes, int(v[::4096].sum()), int(v[-1])) for v in list(a) + list(k.values())]")
    want = [(a.nbytes, int(a[::4096].sum()), int(a[-1]))]
    before = hwm()
    got = materialize(check(x=a))
    kw = hwm() - before
    assert got == want, (got, want)
    before = hwm()
    got = materialize(check(a))
    pos = hwm() - before
    assert got == want, (got, want)
    keyed = conn.eval("type('K', (), {'__getitem__': lambda self, v: [(v.nbytes, int(v[::4096].sum()), int(v[-1]))]})()")
    before = hwm()
    got = materialize(keyed[a])
    key = hwm() - before
    assert got == want, (got, want)
    print(kw, pos, key, flush=True)
"""


@pytest.mark.parametrize("dispatch", ["accelerator", "ctypes"])
def test_a_256_mib_keyword_argument_or_key_is_not_copied_by_the_client(server: Any, dispatch: str) -> None:
    import importlib.util

    if dispatch == "accelerator" and importlib.util.find_spec("simplerpc._speedups") is None:
        pytest.skip("simplerpc._speedups is not built (SIMPLERPC_SPEEDUPS=1 pip install ./bindings/python)")
    host, port, token, _ = server
    size = 256 << 20
    env = dict(os.environ, SIMPLERPC_NO_SPEEDUPS="" if dispatch == "accelerator" else "1")
    out = subprocess.run(
        [sys.executable, "-c", PEAK_CLIENT, host, str(port), token, str(size)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    kw, pos, key = (int(v) for v in out.stdout.split())
    mib = 1 << 20
    # Joined and copied, the peak grew by 512 MiB; from where it lies, by
    # the frame's small own buffer and the answer.
    assert kw < size // 4, f"a keyword argument raised the client's peak RSS by {kw / mib:.0f} MiB (copied?)"
    assert pos < size // 4, f"a positional argument raised the client's peak RSS by {pos / mib:.0f} MiB (copied?)"
    assert key < size // 4, f"a getitem key raised the client's peak RSS by {key / mib:.0f} MiB (copied?)"


def test_a_tuple_key_built_on_the_server_takes_its_trail_from_parts(conn: simplerpc.Connection, monkeypatch: Any) -> None:
    # Without the tuple extension (a Rust or C server by default, the stock
    # server) `p[rows, 1:3]` builds the tuple on the server; its trail is
    # named from the key in parts, not from the mask joined into bytes.
    from simplerpc import _client
    from simplerpc._serialization import packb

    seen: List[Any] = []
    real = _client._trail

    def spy(kind: str, parent: str = "", a: str = "", key: Any = b"") -> str:
        seen.append((kind, key))
        return real(kind, parent, a, key)

    grid = np.arange(70000 * 4, dtype="<f8").reshape(-1, 4)
    rows = np.arange(grid.shape[0]) % 3 == 0  # 70,000 bytes: a part of its own
    remote = conn.modules.numpy.asarray(grid)
    monkeypatch.setattr(conn, "_tuples", False)
    monkeypatch.setattr(_client, "_trail", spy)
    item = remote[rows, 1:3]
    assert np.array_equal(materialize(item), grid[rows, 1:3])
    keys = [key for kind, key in seen if kind == "GETITEM_TUPLE"]
    assert len(keys) == 1
    assert isinstance(keys[0], list), "the key was joined into one buffer for its trail"
    assert not any(isinstance(p, bytes) and len(p) >= rows.nbytes for p in keys[0]), "the mask was copied"
    assert item._rpc_path == real("GETITEM_TUPLE", remote._rpc_path, key=packb([rows, slice(1, 3)]))
