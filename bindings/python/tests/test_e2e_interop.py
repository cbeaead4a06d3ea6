"""End to end: interoperability with the stock reference implementation (PyPI ``simplerpyc==0.0.1a3``).

* the stock ``simplerpyc`` client against our server (``server`` fixture);
* our ``simplerpc.connect`` against the stock ``python -m simplerpyc.server``
  (``reference_server`` fixture), where no extension may be negotiated.

simplerpyc is required, never skipped: the fixtures fail with instructions
when it is missing (the test command, scripts/test.sh, installs it).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any, Callable, Dict, Iterator, List

import numpy as np
import pytest

import simplerpc
from simplerpc import materialize

SHAPES = [(3, 5), (), (0,), (2, 0, 3), (1, 4, 1)]


def main_function(source: str, name: str) -> Callable[..., Any]:
    """A function as if defined in a script's ``__main__``: dill sends it by value."""
    ns: Dict[str, Any] = {"__name__": "__main__"}
    exec(source, ns)
    return ns[name]


# ====================================================================
# The stock client against our server
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


def test_stock_client_modules_builtins_and_calls(rpyc: Any, server: Any) -> None:
    from simplerpyc import is_proxy as stock_is_proxy
    from simplerpyc import materialize as stock_materialize

    remote_os = rpyc.modules.os
    assert stock_is_proxy(remote_os)
    assert stock_materialize(remote_os.getcwd()) == os.readlink(f"/proc/{server.proc.pid}/cwd")
    assert stock_materialize(rpyc.modules["os.path"].join("a", "b")) == os.path.join("a", "b")
    assert stock_materialize(rpyc.builtins.len([1, 2, 3])) == 3
    assert stock_materialize(rpyc.builtins.sorted([3, 1, 2], reverse=True)) == [3, 2, 1]
    # proxies as positional and keyword arguments, nested in containers
    rnp = rpyc.modules.numpy
    x = rnp.arange(6).reshape(2, 3)
    assert stock_materialize(rnp.add(x, np.ones((2, 3), dtype=np.int64), dtype="float32")).tolist() == [
        [1.0, 2.0, 3.0],
        [4.0, 5.0, 6.0],
    ]
    assert stock_materialize(rnp.concatenate([x, x], axis=1)).shape == (2, 6)
    same = rpyc.eval("lambda a, b: a is b")
    assert stock_materialize(same(x, b=x)) is True
    # indexing: ints, slices, tuples of slices
    assert stock_materialize(x[1]).tolist() == [3, 4, 5]
    assert stock_materialize(x[1:, ::2]).tolist() == [[3, 5]]
    assert stock_materialize(x[(slice(None), 1)]).tolist() == [1, 4]
    assert stock_materialize(rpyc.eval("{'k': [10, 20]}")["k"][-1]) == 20


def test_stock_client_arrays_every_dtype(rpyc: Any, arrays: Any) -> None:
    from simplerpyc import materialize as stock_materialize

    echo = rpyc.eval("lambda a: a")
    view = rpyc.eval("lambda a: (type(a).__name__, a.dtype.str, list(a.shape), a.tobytes())")
    rpyc.execute(arrays.source + "\nimport numpy\n")
    make = rpyc.eval("lambda dt, shape: make_array(numpy, dt, shape)")
    for dtype in arrays.dtypes:
        for shape in SHAPES:
            local = arrays.make(dtype, shape)
            assert stock_materialize(view(local)) == ["ndarray", dtype, list(shape), local.tobytes()], (dtype, shape)
            for got in (stock_materialize(echo(local)), stock_materialize(make(dtype, list(shape)))):
                assert isinstance(got, np.ndarray), (dtype, shape)
                assert got.dtype.str == dtype and got.shape == shape and got.tobytes() == local.tobytes()
    # non-contiguous input
    base = arrays.make("<f4", (4, 6))
    assert stock_materialize(view(base.T[::2])) == ["ndarray", "<f4", [3, 4], base.T[::2].tobytes()]


def test_stock_client_eval_execute_teleport_namespace(rpyc: Any) -> None:
    from simplerpyc import materialize as stock_materialize

    assert stock_materialize(rpyc.eval("2 + 3")) == 5
    rpyc.execute("x = 42")
    assert stock_materialize(rpyc.eval("x")) == 42
    square = main_function("def square(v):\n    return v ** 2\n", "square")
    assert stock_materialize(rpyc.teleport(square)(5)) == 25
    assert stock_materialize(rpyc.eval("square(6)")) == 36
    ns = rpyc.namespace
    assert ns["x"] == "<class 'int'>" and ns["square"] == "<class 'function'>"


def test_stock_client_patch_module(rpyc: Any) -> None:
    import simplerpyc

    real_os = sys.modules["os"]
    try:
        proxy = simplerpyc.patch_module(rpyc, "os")
        import os as patched

        assert patched is proxy
        assert simplerpyc.materialize(patched.path.join("x", "y")) == "x/y"
    finally:
        rpyc.unpatch_all()
        sys.modules["os"] = real_os


STOCK_ERRORS: List[Any] = [
    ("builtins.ZeroDivisionError", ZeroDivisionError, lambda c: c.eval("1 / 0")),
    ("builtins.KeyError", KeyError, lambda c: c.eval("{}")["missing"]),
    ("builtins.AttributeError", AttributeError, lambda c: c.modules.os.no_such_attribute),
    ("builtins.ModuleNotFoundError", ModuleNotFoundError, lambda c: c.modules.no_such_module_e2e),
]


@pytest.mark.parametrize("name, etype, action", STOCK_ERRORS, ids=[e[0] for e in STOCK_ERRORS])
def test_stock_client_remote_exceptions(rpyc: Any, name: str, etype: type, action: Callable[..., Any]) -> None:
    from simplerpyc import materialize as stock_materialize
    from simplerpyc.client.proxy import RemoteException as StockRemoteException

    with pytest.raises(StockRemoteException) as info:
        action(rpyc)
    exc = info.value
    assert exc.exception_type == name
    assert str(exc).startswith(f"{name}: ")
    assert exc.remote_traceback and etype.__name__ in exc.remote_traceback
    # our server sends the dill pickle of the original: the stock client chains it
    assert type(exc.__cause__) is etype
    assert stock_materialize(rpyc.eval("1 + 1")) == 2


def test_stock_client_sees_a_failed_connection_with_a_wrong_token(server: Any) -> None:
    import simplerpyc
    from websockets.exceptions import WebSocketException

    host, port, _, _ = server
    with pytest.raises((WebSocketException, ConnectionError)):
        simplerpyc.connect(host, port, "wrong-token")


def test_stock_client_and_our_client_share_the_server(rpyc: Any, conn: simplerpc.Connection) -> None:
    from simplerpyc import materialize as stock_materialize

    rpyc.execute("who = 'stock'")
    conn.execute("who = 'ours'")
    assert stock_materialize(rpyc.eval("who")) == "stock"
    assert materialize(conn.eval("who")) == "ours"
    assert conn._native.extensions != 0  # ours negotiated its extensions; the stock client none


# ====================================================================
# Our client against the stock server
# ====================================================================


@pytest.fixture
def ref_conn(reference_server: Any) -> Iterator[simplerpc.Connection]:
    host, port, token, _ = reference_server
    c = simplerpc.connect(host, port, token)
    try:
        yield c
    finally:
        c.disconnect()


def test_against_stock_server_no_extension_is_negotiated(ref_conn: simplerpc.Connection) -> None:
    assert ref_conn._native.extensions == 0
    # dropping proxies is harmless (nothing is sent: the stock server cannot free objects)
    for i in range(50):
        assert materialize(ref_conn.eval(f"{i} * 2")) == 2 * i


def test_against_stock_server_modules_builtins_calls_getitem(
    ref_conn: simplerpc.Connection, reference_server: Any
) -> None:
    remote_os = ref_conn.modules.os
    assert materialize(remote_os.getcwd()) == os.readlink(f"/proc/{reference_server.proc.pid}/cwd")
    assert materialize(remote_os.getpid()) == reference_server.proc.pid
    assert materialize(ref_conn.modules["os.path"].join("a", "b")) == os.path.join("a", "b")
    assert materialize(ref_conn.builtins.len([1, 2, 3])) == 3
    rnp = ref_conn.modules.numpy
    x = rnp.arange(24).reshape(2, 3, 4)
    local = np.arange(24).reshape(2, 3, 4)
    y = np.full((2, 3, 4), 10, dtype=np.int32)
    assert np.array_equal(materialize(rnp.add(x, y, dtype="float32")), (local + y).astype(np.float32))
    assert np.array_equal(materialize(rnp.clip(x, np.int64(3), a_max=y)), np.clip(local, 3, y))
    assert materialize(rnp.concatenate([x, y], axis=0)).shape == (4, 3, 4)
    keys = [1, -1, slice(1, None), (1, 2), (1, 2, 3), (slice(None), 1), (0, slice(None, None, -1), slice(1, 3)), [0, 1]]
    for key in keys:
        assert np.array_equal(materialize(x[key]), local[key]), key
    d = ref_conn.eval("{'k': 1, (1, 2): 'tuple'}")
    assert materialize(d["k"]) == 1
    assert materialize(d[1, 2]) == "tuple"


def test_against_stock_server_arrays_every_dtype(ref_conn: simplerpc.Connection, arrays: Any) -> None:
    echo = ref_conn.eval("lambda a: a")
    view = ref_conn.eval("lambda a: (type(a).__name__, a.dtype.str, list(a.shape), a.tobytes())")
    ref_conn.execute(arrays.source + "\nimport numpy\n")
    make = ref_conn.eval("lambda dt, shape: make_array(numpy, dt, shape)")
    for dtype in arrays.dtypes:
        for shape in SHAPES:
            local = arrays.make(dtype, shape)
            assert materialize(view(local)) == ["ndarray", dtype, list(shape), local.tobytes()], (dtype, shape)
            arrays.assert_same(materialize(echo(local)), local)
            arrays.assert_same(materialize(make(dtype, list(shape))), local)
    fortran = np.asfortranarray(arrays.make(">f8", (5, 7)))
    arrays.assert_same(materialize(echo(fortran)), fortran)
    # numpy scalars
    for scalar in (np.float32(1.5), np.int16(-3), np.uint64(2**64 - 1), np.bool_(True), np.complex64(1 - 2j)):
        back = materialize(echo(scalar))
        assert type(back) is type(scalar) and back == scalar


def test_against_stock_server_eval_execute_teleport(ref_conn: simplerpc.Connection) -> None:
    assert materialize(ref_conn.eval("2 + 3")) == 5
    ref_conn.execute("x = 42")
    assert materialize(ref_conn.eval("x")) == 42
    square = main_function("def square(v):\n    return v ** 2\n", "square")
    assert materialize(ref_conn.teleport(square)(5)) == 25
    assert materialize(ref_conn.eval("square(7)")) == 49
    assert ref_conn.namespace["x"] == "<class 'int'>"


def test_against_stock_server_patch_module(reference_server: Any) -> None:
    host, port, token, _ = reference_server
    real_os = sys.modules["os"]
    with simplerpc.connect(host, port, token) as c:
        simplerpc.patch_module(c, "os")
        simplerpc.patch_module(c, "numpy")
        import numpy as remote_np
        import os as remote_os

        assert materialize(remote_os.getpid()) == reference_server.proc.pid
        assert materialize(remote_np.arange(4)[1:3]).tolist() == [1, 2]
    assert sys.modules["os"] is real_os and sys.modules["numpy"] is np


ERRORS: List[Any] = [
    (ZeroDivisionError, lambda c: c.eval("1 / 0")),
    (KeyError, lambda c: c.eval("{}")["missing"]),
    (AttributeError, lambda c: c.modules.os.no_such_attribute),
    (ModuleNotFoundError, lambda c: c.modules.no_such_module_e2e),
    (TypeError, lambda c: c.builtins.len(5)),
]


@pytest.mark.parametrize("etype, action", ERRORS, ids=[e[0].__name__ for e in ERRORS])
def test_against_stock_server_remote_exceptions(
    ref_conn: simplerpc.Connection, etype: type, action: Callable[..., Any]
) -> None:
    with pytest.raises(etype) as info:
        action(ref_conn)
    exc = info.value
    assert isinstance(exc, simplerpc.RemoteException)
    assert exc.exception_type == f"builtins.{etype.__name__}"
    assert exc.remote_traceback and etype.__name__ in exc.remote_traceback
    assert isinstance(exc.__cause__, etype)
    assert materialize(ref_conn.eval("1 + 1")) == 2


def test_against_stock_server_object_arrays_need_allow_pickle(reference_server: Any) -> None:
    host, port, token, _ = reference_server
    expr = "__import__('numpy').array([1, 'a', None], dtype=object)"
    with simplerpc.connect(host, port, token) as c:
        # the stock server pickles object arrays: refused unless the user trusts the server
        with pytest.raises(ValueError, match="refusing to decode a numpy object array"):
            materialize(c.eval(expr))
        assert materialize(c.eval("1")) == 1
    with simplerpc.connect(host, port, token, allow_pickle=True) as c:
        got = materialize(c.eval(expr))
        assert got.dtype == object and got.tolist() == [1, "a", None]


def test_against_stock_server_unserializable_value(ref_conn: simplerpc.Connection) -> None:
    with pytest.raises(TypeError) as info:
        materialize(ref_conn.eval("__import__('os')"))
    assert isinstance(info.value, simplerpc.RemoteException) and "module" in str(info.value)
    assert materialize(ref_conn.eval("1")) == 1


def test_against_stock_server_wrong_token(reference_server: Any) -> None:
    host, port, _, _ = reference_server
    # The stock server accepts the upgrade, then closes with 1008: our client
    # reports it as an AuthenticationError at connect or, at the latest, on the first request.
    with pytest.raises(simplerpc.AuthenticationError):
        c = simplerpc.connect(host, port, "wrong-token")
        try:
            c.eval("1")
        finally:
            c.disconnect()


def test_against_stock_server_message_too_big_is_a_clear_error(reference_server: Any) -> None:
    host, port, token, _ = reference_server
    with simplerpc.connect(host, port, token) as c:
        with pytest.raises(simplerpc.ConnectionClosedError, match="1009"):
            c.eval("lambda a: a")(np.zeros(2**18))  # 2 MiB > the stock server's 1 MiB limit
