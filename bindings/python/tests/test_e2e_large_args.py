"""End to end: a large array argument travels byte-exact from the client.

The package hands the library an argument as parts (``packb_parts``): the
array's own memory a part of its own, which goes into the request frame by
reference rather than copied (core's ``raw_spliced`` tests check that the
frame's own buffer stays small). These tests check what arrives: the
server hashes what it received, and echoes it back, over a WebSocket
connection to the Python server and over the stream transport to a child
(``spawn``).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

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
