"""The client API (Connection, RPCProxy, materialize, remote errors) over an in-process native client.

``Loopback`` follows the NativeClientAPI protocol with a PythonExecutor behind
it, so everything above the native layer runs for real.
"""

from __future__ import annotations

import gc
import sys
from typing import Any, Callable, List, Optional, TypeVar

import numpy as np
import pytest

import simplerpc
from simplerpc import (
    Connection,
    ConnectionClosedError,
    RemoteException,
    UnknownObjectError,
    is_proxy,
    materialize,
)
from simplerpc._executor import PythonExecutor, describe_exception
from simplerpc._native_api import NativeClientAPI, NativeRemoteError
from simplerpc._serialization import packb, unpackb

T = TypeVar("T")


def refs_of(*packed: bytes) -> List[int]:
    """What the server session passes as ``refs``: the handle of each proxy
    marker, in order (here the ids the client holds are the handles)."""
    found: List[int] = []
    for p in packed:
        unpackb(p, on_proxy=lambda marker: found.append(marker["obj_id"]))
    return found


class Loopback:
    """A native client whose server is a PythonExecutor in this process."""

    def __init__(self) -> None:
        self.ex = PythonExecutor()
        self.released: List[int] = []
        self.closed = False

    def _run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except Exception as e:
            raise NativeRemoteError(*describe_exception(e)) from None

    def import_module(self, name: str) -> int:
        return self._run(self.ex.import_module, name)

    def get_builtin(self, name: str) -> int:
        return self._run(self.ex.get_builtin, name)

    def getattr(self, obj_id: Optional[int], path: str, attr: str) -> int:
        return self._run(self.ex.getattr, obj_id, path, attr)

    def call(self, obj_id: Optional[int], path: str, args: bytes, kwargs: bytes) -> int:
        return self._run(self.ex.call, obj_id, path, args, kwargs, refs_of(args, kwargs))

    def getitem(self, obj_id: int, key: bytes) -> int:
        return self._run(self.ex.getitem, obj_id, key, refs_of(key))

    def materialize(self, obj_id: int) -> bytes:
        return b"".join(self._run(self.ex.materialize, obj_id))

    def eval(self, expr: str) -> int:
        return self._run(self.ex.eval, expr)

    def execute(self, code: str) -> None:
        self._run(self.ex.execute, code)

    def teleport(self, func_bytes: bytes, name: str) -> int:
        return self._run(self.ex.teleport, func_bytes, name)

    def namespace(self) -> bytes:
        return self._run(self.ex.namespace)

    def release(self, obj_id: int) -> None:
        self.released.append(obj_id)
        self.ex.release(obj_id)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def native() -> Loopback:
    return Loopback()


@pytest.fixture
def conn(native: Loopback) -> Connection:
    _: NativeClientAPI = native  # type-checks against the protocol
    return Connection(native)


def test_modules_builtins_calls_and_materialize(conn: Connection) -> None:
    remote_os = conn.modules.os
    assert is_proxy(remote_os) and repr(remote_os).startswith("<RPCProxy: os (id=")
    assert materialize(remote_os.path.join("a", "b")) == "a/b"
    assert materialize(conn.modules["os.path"].basename("/x/y")) == "y"
    assert materialize(conn.builtins.max(3, 1, 2)) == 3
    assert materialize(conn.builtins.int("ff", base=16)) == 255
    assert materialize(42) == 42 and not is_proxy(42)


def test_numpy_arrays_and_proxies_as_arguments(conn: Connection) -> None:
    rnp = conn.modules.numpy
    a = np.arange(6, dtype="<f4").reshape(2, 3)
    remote = rnp.asarray(a)
    doubled = rnp.add(remote, a)  # a proxy and a local array
    got = materialize(doubled)
    np.testing.assert_array_equal(got, a + a)
    assert got.dtype == np.float32 and got.flags.writeable
    assert materialize(rnp.concatenate([remote, remote], axis=0)).shape == (4, 3)
    assert materialize(remote.shape) == [2, 3]  # tuples come back as lists


def test_indexing(conn: Connection) -> None:
    arr = conn.modules.numpy.arange(24).reshape(2, 3, 4)
    local = np.arange(24).reshape(2, 3, 4)
    np.testing.assert_array_equal(materialize(arr[1]), local[1])
    np.testing.assert_array_equal(materialize(arr[1, :, ::2]), local[1, :, ::2])
    assert materialize(arr[1, 2, 3]) == local[1, 2, 3]  # a tuple, not fancy indexing
    np.testing.assert_array_equal(materialize(arr[[1, 0]]), local[[1, 0]])  # fancy indexing
    np.testing.assert_array_equal(materialize(arr[arr[0, 0, 1]]), local[1])  # proxy key
    d = conn.eval("{'a': [1, 2], (1, 2): 'pair'}")
    assert materialize(d["a"][-1]) == 2 and materialize(d[1, 2]) == "pair"


def test_eval_execute_namespace_teleport(conn: Connection) -> None:
    assert materialize(conn.eval("2 + 3")) == 5
    conn.execute("x = 42")
    assert materialize(conn.eval("x")) == 42

    def square(x: int) -> int:
        return x**2

    remote_square = conn.teleport(square)
    assert materialize(remote_square(5)) == 25
    ns = conn.namespace
    assert ns["x"] == "<class 'int'>" and ns["square"] == "<class 'function'>"


def test_remote_errors(conn: Connection) -> None:
    with pytest.raises(RemoteException) as info:
        conn.eval("1 / 0")
    e = info.value
    assert isinstance(e, ZeroDivisionError)  # builtin types: also an instance of the type
    assert e.exception_type == "builtins.ZeroDivisionError"
    assert type(e.__cause__) is ZeroDivisionError and str(e.__cause__) == "division by zero"
    assert "Remote traceback" in str(e) and "ZeroDivisionError" in e.remote_traceback
    assert str(e).startswith("builtins.ZeroDivisionError: division by zero")

    with pytest.raises(KeyError):
        conn.eval("{}")["missing"]
    assert not hasattr(conn.modules.os, "no_such_attribute")  # a remote AttributeError
    with pytest.raises(IndexError):
        materialize(conn.eval("[1]")[5])


def test_remote_errors_of_unknown_types(conn: Connection) -> None:
    conn.execute("class MyError(Exception): pass")
    with pytest.raises(RemoteException) as info:
        conn.execute("raise MyError('boom')")
    assert type(info.value) is RemoteException and info.value.__cause__ is None
    assert info.value.exception_type == "__simplerpc__.MyError"


def test_remote_error_cause_from_an_imported_module(conn: Connection) -> None:
    import json

    with pytest.raises(RemoteException) as info:
        conn.modules.json.loads("{")
    cause = info.value.__cause__  # JSONDecodeError(message) fails: rebuilt without __init__
    assert type(cause) is json.JSONDecodeError
    assert cause.args == ("Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",)
    assert type(info.value) is RemoteException  # not a builtin type: no mixin
    assert info.value.exception_type == "json.decoder.JSONDecodeError"


def test_server_side_simplerpc_errors_map_to_our_classes() -> None:
    from simplerpc._client import remote_exception

    exc, cause = remote_exception(NativeRemoteError("simplerpc.UnknownObjectError", "id 9", "", None))
    assert isinstance(exc, UnknownObjectError) and isinstance(exc, RemoteException)
    assert type(cause) is UnknownObjectError and isinstance(cause, LookupError)
    exc, cause = remote_exception(NativeRemoteError("simplerpc.ProtocolError", "bad", "", None))
    assert type(cause) is simplerpc.ProtocolError
    assert simplerpc.ProtocolError.__module__ == "simplerpc"
    assert issubclass(simplerpc.AuthenticationError, ConnectionError)
    exc, cause = remote_exception(NativeRemoteError("simplerpc.ObjectLimitError", "full", "", None))
    assert isinstance(exc, simplerpc.ObjectLimitError) and isinstance(exc, RemoteException)
    assert type(cause) is simplerpc.ObjectLimitError and simplerpc.ObjectLimitError.__module__ == "simplerpc"


def test_exception_pickles_are_loaded_only_when_allowed(native: Loopback) -> None:
    import dill

    class Custom(Exception):
        pass

    payload = dill.dumps(Custom("c"))
    err = NativeRemoteError("tests.Custom", "c", "tb", payload)
    from simplerpc._client import remote_exception

    assert remote_exception(err)[1] is None
    assert type(remote_exception(err, allow_pickle=True)[1]).__name__ == "Custom"

    conn = Connection(native, allow_pickle=True)
    obj = conn.eval("__import__('numpy').array([1, 'a'], dtype=object)")
    with pytest.raises(RemoteException, match="object"):  # the server refuses to send it anyway
        materialize(obj)


def test_proxies_of_another_connection_are_refused(conn: Connection) -> None:
    other = Connection(Loopback())
    with pytest.raises(ValueError, match="another connection"):
        conn.builtins.len(other.eval("[1]"))


def test_garbage_collected_proxies_release_their_objects(conn: Connection, native: Loopback) -> None:
    p = conn.eval("[1, 2, 3]")
    obj_id = p._rpc_obj_id
    assert obj_id in native.ex.objects
    del p
    gc.collect()
    assert obj_id in native.released and obj_id not in native.ex.objects
    # temporaries of a chain are released too (a module is kept by the
    # connection: conn.modules.os is the same proxy every time)
    assert conn.modules.os is conn.modules.os
    before = len(native.ex.objects)
    assert materialize(conn.modules.os.path.join("a", "b")) == "a/b"
    gc.collect()
    assert len(native.ex.objects) == before


def test_proxies_are_not_picklable_and_copy_to_themselves(conn: Connection) -> None:
    import copy
    import pickle

    p = conn.eval("1")
    assert copy.copy(p) is p and copy.deepcopy(p) is p
    with pytest.raises(TypeError, match="materialize"):
        pickle.dumps(p)
    with pytest.raises(AttributeError):
        p.attr = 1


def test_patch_module(conn: Connection) -> None:
    name = "colorsys"  # the loopback server shares this process: start without it
    sys.modules.pop(name, None)
    proxy = simplerpc.patch_module(conn, name)
    assert conn.patch_module(name) is proxy  # idempotent
    import colorsys as patched

    assert patched is proxy
    assert materialize(patched.rgb_to_hsv(1.0, 0.0, 0.0)) == [0.0, 1.0, 1.0]
    conn.unpatch_module(name)
    assert name not in sys.modules

    import json

    original = sys.modules["json"]
    conn.patch_module("json")
    assert is_proxy(sys.modules["json"])
    conn.unpatch_all()
    assert sys.modules["json"] is original is json


def test_disconnect(native: Loopback) -> None:
    with Connection(native) as conn:
        p = conn.eval("[1]")
        conn.patch_module("json")
    assert native.closed and conn.closed and not is_proxy(sys.modules["json"])
    with pytest.raises(ConnectionClosedError):
        materialize(p)
    with pytest.raises(ConnectionClosedError):
        conn.eval("1")
    released = len(native.released)
    del p
    gc.collect()
    assert len(native.released) == released  # no release on a closed connection
    conn.disconnect()  # idempotent


def test_connect_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIMPLERPC_TOKEN", raising=False)
    with pytest.raises(ValueError, match="SIMPLERPC_TOKEN"):
        simplerpc.connect("localhost", 1)


def test_packb_of_arguments_matches_the_reference_request_values(conn: Connection) -> None:
    p = conn.eval("7")
    assert packb([p, slice(1, 2)], proxy_owner=conn) == packb(
        [
            {"__rpc_proxy__": True, "obj_id": p._rpc_obj_id},
            {"__slice__": True, "start": 1, "stop": 2, "step": None},
        ]
    )
