"""The optional accelerator ``simplerpc._speedups`` against the pure-Python
reference behaviour (``_serialization`` and ``_native`` without it).

The codec tests compare the accelerator's bytes and values with the ones
the Python code makes in the same process (with ``_serialization._rs``
set aside); they are skipped where the accelerator is not installed or is
switched off with ``SIMPLERPC_NO_SPEEDUPS=1``. The switch itself is tested
in both cases. Every other test of the package runs with whichever is in
use (scripts/test.sh runs them both ways).
"""

from __future__ import annotations

import collections
import datetime
import enum
import os
import subprocess
import sys
from typing import Any, Callable, List

import msgpack
import numpy as np
import pytest

import simplerpc
from simplerpc import _native, _serialization
from simplerpc._executor import PythonExecutor, describe_exception
from simplerpc._serialization import packb, packb_parts, unpackb

needs_speedups = pytest.mark.skipif(_serialization._rs is None, reason="simplerpc._speedups is not in use")


def python_only(fn: Callable[[], Any]) -> Any:
    """``fn()`` with the pure-Python codec."""
    saved, _serialization._rs = _serialization._rs, None
    try:
        return fn()
    finally:
        _serialization._rs = saved


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a.keys()) == list(b.keys()) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and a != a:
        return b != b
    return bool(a == b)


class Color(enum.IntEnum):
    RED = 1


class Point(collections.namedtuple("Point", "x y")):
    pass


class Str(str):
    pass


class Proxy:
    """Anything with ``_rpc_obj_id`` is packed as a reference."""

    def __init__(self, obj_id: int) -> None:
        self._rpc_obj_id = obj_id


rng = np.random.default_rng(7)
VALUES: List[Any] = [
    None, True, False, 0, 1, -1, 127, 128, 255, 256, -32, -33, -128, -129, 65535, 65536, -32768, -32769,
    2**31, -(2**31) - 1, 2**32, 2**63 - 1, 2**64 - 1, -(2**63), 0.5, float("inf"), float("nan"), -0.0,
    "", "a", "é" * 40, "x" * 300, "y" * 70000, b"", b"\x00" * 40, b"z" * 300, b"w" * 70000, bytearray(b"ab"),
    [], [1, [2, [3]]], list(range(20)), list(range(70000)), {}, {"a": 1, b"b": [2]}, {i: i for i in range(20)},
    (1, 2), ((1,), [2, (3,)]), {"k": (1, 2)}, Point(1, 2), Color.RED, Str("s"), collections.OrderedDict(a=1),
    np.float64(1.5), np.int64(-3), np.uint8(7), np.bool_(True), np.float16(2.5), np.datetime64("2024-01-02"),
    complex(1, -2), slice(1, None, 2), Proxy(5), Proxy(2**63 + 3), memoryview(b"mv"), msgpack.ExtType(5, b"e"),
    np.arange(6, dtype="<i4").reshape(2, 3), np.arange(6, dtype=">f8"), np.zeros((0, 3)), np.asfortranarray(np.ones((3, 4))),
    np.arange(12)[::2], np.array([(1, 2.0)], dtype=[("a", "<i2"), ("b", "<f4")]), np.array(["2024-01-01"], dtype="M8[D]"),
    rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8), np.ones((300, 300))[:, ::2],
    {"__tuple__": [1, 2]}, {"__slice__": True, "start": 1}, {b"nd": "no"}, {b"complex": True, b"data": "1+2j"},
    (rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8), 1.0, False, False, {"t": 3}),
]


@needs_speedups
@pytest.mark.parametrize("tuples", [False, True])
@pytest.mark.parametrize("i", range(len(VALUES)))
def test_encoding_is_byte_for_byte_the_python_one(i: int, tuples: bool) -> None:
    value = VALUES[i]
    want = python_only(lambda: packb(value, tuples=tuples))
    got_parts = packb_parts(value, tuples=tuples)
    assert b"".join(bytes(memoryview(p).cast("B")) for p in got_parts) == want
    assert packb(value, tuples=tuples) == want
    # A large array's memory is a part of its own, not copied into the output.
    big = [p for p in got_parts if isinstance(p, memoryview)]
    assert all(p.nbytes >= 1 << 16 for p in big)


@needs_speedups
@pytest.mark.parametrize("tuples", [False, True])
@pytest.mark.parametrize("i", range(len(VALUES)))
def test_decoding_gives_the_python_values(i: int, tuples: bool) -> None:
    data = python_only(lambda: packb(VALUES[i], tuples=tuples))
    seen_py: List[Any] = []
    seen_rs: List[Any] = []
    want = python_only(lambda: unpackb(data, tuples=tuples, on_proxy=lambda m: seen_py.append(m) or ("proxy", len(seen_py))))
    got = unpackb(memoryview(data), tuples=tuples, on_proxy=lambda m: seen_rs.append(m) or ("proxy", len(seen_rs)))
    assert same(got, want), (got, want)
    assert seen_rs == seen_py


@needs_speedups
@pytest.mark.parametrize(
    "value, tuples",
    [(2**64, False), (2**64, True), (-(2**63) - 1, False), (object(), False), (np.array([object()]), False), (Color, True)],
)
def test_unencodable_values_raise_what_the_python_code_raises(value: Any, tuples: bool) -> None:
    with pytest.raises(Exception) as py_err:
        python_only(lambda: packb(value, tuples=tuples))
    with pytest.raises(Exception) as rs_err:
        packb(value, tuples=tuples)
    assert type(rs_err.value) is type(py_err.value)
    assert str(rs_err.value) == str(py_err.value)


@needs_speedups
@pytest.mark.parametrize(
    "data",
    [b"", b"\x92\x01", b"\x01\x02", b"\xc1", b"\xa3ab", b"\xa2\xff\xfe", b"\xdd\xff\xff\xff\xff", b"\x81\x91\x01\x02"],
)
def test_malformed_input_fails_as_in_python(data: bytes) -> None:
    try:
        want: Any = python_only(lambda: unpackb(data))
    except ValueError:
        with pytest.raises(ValueError):
            unpackb(data)
    else:
        assert same(unpackb(data), want)


@needs_speedups
def test_deep_nesting_is_refused_not_a_crash() -> None:
    with pytest.raises(ValueError):
        unpackb(b"\x91" * 100_000 + b"\x01")
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    with pytest.raises((ValueError, RecursionError)):
        packb(deep)


@needs_speedups
def test_timestamp_ext_decodes_as_msgpack_does() -> None:
    ts = msgpack.Timestamp.from_datetime(datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc))
    data = msgpack.packb([ts, msgpack.ExtType(7, b"x")])
    assert unpackb(data) == python_only(lambda: unpackb(data))


@needs_speedups
def test_a_large_array_in_a_frame_is_made_over_it_in_place_when_aligned() -> None:
    arr = rng.integers(0, 1000, size=(300, 300)).astype("<i8")
    frame = np.frombuffer(packb((arr, {"n": 1}), tuples=True), np.uint8).copy()

    class Owner:
        taken = False

    owner = Owner()
    value = _serialization.unpackb_at(frame.ctypes.data, frame.nbytes, owner=owner, split_min=1 << 16, tuples=True)
    assert isinstance(value, tuple) and value[1] == {"n": 1}
    assert np.array_equal(value[0], arr) and value[0].dtype == arr.dtype
    addr = frame.ctypes.data
    inside = addr <= value[0].ctypes.data < addr + frame.nbytes
    # In place exactly when the data lies aligned for the dtype in the frame.
    assert inside == owner.taken
    if not inside:
        assert value[0].flags.owndata


@pytest.mark.parametrize("off", ["1", ""])
def test_the_switch_selects_ctypes_or_the_accelerator(off: str) -> None:
    code = "from simplerpc import _native, _serialization; print(_native.speedups_enabled(), _serialization._rs is not None)"
    env = dict(os.environ, SIMPLERPC_NO_SPEEDUPS=off)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    if off == "1":
        assert out.stdout.split() == ["False", "False"]
    else:
        try:
            import simplerpc._speedups  # noqa: F401
        except ImportError:
            expect = "False"
        else:
            expect = "True"
        assert out.stdout.split() == [expect, expect]


def test_an_in_process_server_serves_every_call_kind_with_either_dispatch() -> None:
    """The server's dispatch (the accelerator's Rust callbacks when in use,
    else the ctypes ones) end to end: every call kind, a large array each
    way, errors with their types, a refused executor."""
    server = _native.NativeServer("127.0.0.1", 0, "tok", PythonExecutor, describe_exception)
    try:
        assert (server._dispatcher is not None) == _native.speedups_enabled()
        with simplerpc.connect("127.0.0.1", server.port, "tok") as conn:
            conn.execute("import numpy as np\ndef f(a, k=0):\n    return a.sum() + k\nbig = np.arange(100_000, dtype='<i8')")
            assert simplerpc.materialize(conn.eval("f")(np.ones(50_000), k=2)) == 50_002.0
            assert simplerpc.materialize(conn.modules.os.path.join("a", "b")) == os.path.join("a", "b")
            assert simplerpc.materialize(conn.builtins.len([1, 2, 3])) == 3
            assert simplerpc.materialize(conn.eval("{'a': (1, 2)}")["a"]) == (1, 2)
            got = simplerpc.materialize(conn.eval("big"))
            assert np.array_equal(got, np.arange(100_000, dtype="<i8"))
            assert "f" in conn.namespace
            with pytest.raises(ZeroDivisionError):
                simplerpc.materialize(conn.eval("1/0"))
            with pytest.raises(KeyError):
                simplerpc.materialize(conn.eval("{}")["missing"])
    finally:
        server.close()

    def refuse() -> Any:
        raise RuntimeError("no executor today")

    server = _native.NativeServer("127.0.0.1", 0, "tok", refuse, describe_exception)
    try:
        with pytest.raises(Exception):
            with simplerpc.connect("127.0.0.1", server.port, "tok") as conn:
                simplerpc.materialize(conn.eval("1"))
    finally:
        server.close()
