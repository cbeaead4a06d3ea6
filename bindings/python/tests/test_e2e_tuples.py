"""End to end: the ``tuple`` extension. Between our client and our server
tuples stay tuples, both ways and at any depth; a stock ``simplerpyc`` peer
(client or server) sees the reference format, tuples as arrays.

Real server processes on 127.0.0.1 (the ``server`` and ``reference_server``
fixtures), real sockets.
"""

from __future__ import annotations

import collections
import importlib.util
import sys
from typing import Any, Iterator

import numpy as np
import pytest

import simplerpc
from simplerpc import materialize

NESTED = (1, (2, ("three", ())), [4, (5,)], {(6, 7): (8, [9]), "k": ((),)}, None)
SERVER_CODE = """
import numpy as np

def echo(x):
    return x

def kinds(x):
    # What the server got, with every container's type spelled out.
    if isinstance(x, tuple):
        return "tuple(" + ", ".join(kinds(v) for v in x) + ")"
    if isinstance(x, list):
        return "list(" + ", ".join(kinds(v) for v in x) + ")"
    if isinstance(x, dict):
        return "dict(" + ", ".join(kinds(k) + ": " + kinds(v) for k, v in x.items()) + ")"
    if isinstance(x, np.ndarray):
        return "ndarray" + str(x.shape)
    return type(x).__name__

def step(n):
    obs = np.arange(n * n, dtype=np.float64).reshape(n, n)
    return obs, 0.5, False, True, {"pos": (1, 2), "lives": 3}
"""


def kinds(x: Any) -> str:
    """The same description, made here."""
    if isinstance(x, tuple):
        return "tuple(" + ", ".join(kinds(v) for v in x) + ")"
    if isinstance(x, list):
        return "list(" + ", ".join(kinds(v) for v in x) + ")"
    if isinstance(x, dict):
        return "dict(" + ", ".join(kinds(k) + ": " + kinds(v) for k, v in x.items()) + ")"
    if isinstance(x, np.ndarray):
        return "ndarray" + str(x.shape)
    return type(x).__name__


def same(got: Any, want: Any) -> None:
    """Equal, and every container of the same type."""
    assert kinds(got) == kinds(want), (got, want)
    assert got == want


@pytest.fixture
def tconn(conn: simplerpc.Connection) -> simplerpc.Connection:
    conn.execute(SERVER_CODE)
    return conn


def test_our_client_and_server_negotiate_tuple(conn: simplerpc.Connection) -> None:
    assert conn._native.extensions & 8
    assert conn._tuples is True


def test_tuples_round_trip_both_ways(tconn: simplerpc.Connection) -> None:
    echo, remote_kinds = tconn.eval("echo"), tconn.eval("kinds")
    # client -> server: the server sees tuples, nested, as dict keys
    assert materialize(remote_kinds(NESTED)) == kinds(NESTED)
    assert materialize(remote_kinds(x=NESTED)) == kinds(NESTED)
    # server -> client: a tuple built there comes back a tuple
    same(materialize(tconn.eval(repr(NESTED))), NESTED)
    # both ways
    same(materialize(echo(NESTED)), NESTED)
    same(materialize(echo([(), (1,), [()]])), [(), (1,), [()]])
    # a named tuple is a tuple
    Point = collections.namedtuple("Point", "x y")
    same(materialize(echo(Point(1, 2))), (1, 2))
    # a tuple argument where the server needs one: numpy's shape
    z = tconn.modules.numpy.zeros((2, 3), dtype="float32")
    assert materialize(z.shape) == (2, 3)
    assert materialize(tconn.builtins.isinstance(tconn.eval("lambda s: s")((2, 3)), tconn.builtins.tuple)) is True


def test_tuple_keys_index_remotely(tconn: simplerpc.Connection) -> None:
    d = tconn.eval("{(1, 2): 'pair', 1: 'one'}")
    assert materialize(d[1, 2]) == "pair"
    assert materialize(d[(1, 2)]) == "pair"
    assert materialize(d[1]) == "one"
    a = tconn.modules.numpy.arange(12).reshape(3, 4)
    assert materialize(a[1, 2]) == 6
    assert materialize(a[1:, ::2]).tolist() == [[4, 6], [8, 10]]
    assert materialize(a[[0, 2]]).tolist() == [[0, 1, 2, 3], [8, 9, 10, 11]]  # a list stays fancy indexing


def test_step_tuple_with_a_large_array(tconn: simplerpc.Connection) -> None:
    # 8 MiB of float64: large enough for the one-copy and in-place paths
    n = 1024
    got = materialize(tconn.eval("step")(n))
    assert isinstance(got, tuple) and len(got) == 5
    obs, reward, terminated, truncated, info = got
    assert isinstance(obs, np.ndarray) and obs.dtype == np.float64 and obs.shape == (n, n)
    assert np.array_equal(obs, np.arange(n * n, dtype=np.float64).reshape(n, n))
    # made over the received frame in place (its data found aligned through
    # the marker map), not copied
    assert not obs.flags.owndata and obs.flags.writeable
    assert (reward, terminated, truncated) == (0.5, False, True)
    same(info, {"pos": (1, 2), "lives": 3})
    # and a large array inside a tuple argument, sent and echoed back
    big = np.random.default_rng(1).standard_normal((512, 512))
    assert materialize(tconn.eval("kinds")((big, 1))) == "tuple(ndarray(512, 512), int)"
    back = materialize(tconn.eval("echo")(((big,), big[:3])))
    assert isinstance(back, tuple) and isinstance(back[0], tuple)
    assert np.array_equal(back[0][0], big) and np.array_equal(back[1], big[:3])


def test_the_marker_key_is_reserved_between_tuple_peers(tconn: simplerpc.Connection) -> None:
    # As "__rpc_proxy__" is: a dict that is exactly the marker is a tuple
    # (docs/protocol-extensions.md); one entry more and it is a dict.
    assert materialize(tconn.eval("kinds")({"__tuple__": [1, 2]})) == "tuple(int, int)"
    assert materialize(tconn.eval("kinds")({"__tuple__": [1], "x": 0})) == "dict(str: list(int), str: int)"
    assert materialize(tconn.eval("kinds")({"__tuple__": 1})) == "dict(str: int)"


# ====================================================================
# Stock peers see the reference format
# ====================================================================


@pytest.fixture
def rpyc(server: Any) -> Iterator[Any]:
    """A stock simplerpyc client connected to our server."""
    if importlib.util.find_spec("simplerpyc") is None:
        pytest.fail(
            f"the stock client `simplerpyc` is not importable by {sys.executable}; the test command "
            "(scripts/test.sh) installs it: pip install simplerpyc==0.0.1a3",
            pytrace=False,
        )
    import simplerpyc

    host, port, token, _ = server
    c = simplerpyc.connect(host, port, token)
    try:
        yield c
    finally:
        c.disconnect()
        c.loop.close()


def test_stock_client_gets_lists_from_our_server(rpyc: Any) -> None:
    from simplerpyc import materialize as stock_materialize

    rpyc.execute(SERVER_CODE)
    got = stock_materialize(rpyc.eval("step")(300))
    assert isinstance(got, list) and len(got) == 5
    assert got[0].shape == (300, 300) and got[1:4] == [0.5, False, True]
    assert got[4] == {"pos": [1, 2], "lives": 3}
    assert stock_materialize(rpyc.eval("(1, (2, ()))")) == [1, [2, []]]
    # what it sends arrives as the reference sends it: tuples as lists, and
    # its own {"__tuple__": [...]} dict is a dict
    assert stock_materialize(rpyc.eval("kinds")((1, (2,)))) == "list(int, list(int))"
    assert stock_materialize(rpyc.eval("kinds")({"__tuple__": [1]})) == "dict(str: list(int))"
    assert stock_materialize(rpyc.eval("echo")({"__tuple__": [1]})) == {"__tuple__": [1]}


@pytest.fixture
def ref_conn(reference_server: Any) -> Iterator[simplerpc.Connection]:
    host, port, token, _ = reference_server
    c = simplerpc.connect(host, port, token)
    try:
        yield c
    finally:
        c.disconnect()


def test_our_client_against_the_stock_server(ref_conn: simplerpc.Connection) -> None:
    assert ref_conn._native.extensions == 0 and ref_conn._tuples is False
    ref_conn.execute(SERVER_CODE)
    # tuples go as arrays, as the stock client sends them
    assert materialize(ref_conn.eval("kinds")(NESTED[:3])) == "list(int, list(int, list(str, list())), list(int, list(int)))"
    got = materialize(ref_conn.eval("step")(4))
    assert isinstance(got, list) and got[0].shape == (4, 4) and got[4] == {"pos": [1, 2], "lives": 3}
    # a stock server's {"__tuple__": ...} dict is a dict
    assert materialize(ref_conn.eval("{'__tuple__': [1, 2]}")) == {"__tuple__": [1, 2]}
    # tuple keys still index (built remotely, as before)
    d = ref_conn.eval("{(1, 2): 'pair'}")
    assert materialize(d[1, 2]) == "pair"
    assert materialize(ref_conn.modules.numpy.zeros((2, 3)).shape) == [2, 3]
