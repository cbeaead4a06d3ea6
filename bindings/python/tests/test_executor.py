"""PythonExecutor: the reference's server semantics with explicit handles."""

from __future__ import annotations

import gc
import os
import weakref
from pathlib import Path
from typing import Any, List

import dill
import numpy as np
import pytest

from simplerpc._executor import PythonExecutor, describe_exception
from simplerpc._serialization import packb, unpackb

GOLDEN = Path(__file__).resolve().parents[3] / "core" / "tests" / "golden"


def ref(handle: int) -> dict:
    return {"__rpc_proxy__": True, "obj_id": handle}


def refs_of(*packed: bytes) -> List[int]:
    """The ids of the proxy markers in ``packed``, in order: what the server
    session passes as ``refs`` when, as in these tests, a marker's id is the
    executor's handle."""
    found: List[int] = []
    for p in packed:
        unpackb(p, on_proxy=lambda marker: found.append(marker["obj_id"]))
    return found


def call(ex: PythonExecutor, handle: Any, path: str, *args: Any, **kwargs: Any) -> int:
    a, k = packb(list(args)), packb(kwargs)
    return ex.call(handle, path, a, k, refs_of(a, k))


def value(ex: PythonExecutor, handle: int) -> Any:
    return unpackb(b"".join(ex.materialize(handle)))


@pytest.fixture
def ex() -> PythonExecutor:
    return PythonExecutor()


def test_handles_are_fresh_integers(ex: PythonExecutor) -> None:
    a, b, c = ex.eval("1"), ex.eval("1"), ex.get_builtin("len")
    assert len({a, b, c}) == 3 and all(isinstance(h, int) for h in (a, b, c))
    assert ex.objects[c] is len


def test_dotted_import_binds_the_top_package(ex: PythonExecutor) -> None:
    h = ex.import_module("os.path")
    assert ex.objects[h] is os.path
    assert ex.globals["os"] is os
    assert value(ex, ex.eval("os.path.join('a', 'b')")) == os.path.join("a", "b")
    with pytest.raises(ModuleNotFoundError):
        ex.import_module("no_such_module_xyz")


def test_getattr_on_a_handle_and_on_a_path(ex: PythonExecutor) -> None:
    os_h = ex.import_module("os")
    path_h = ex.getattr(os_h, "os", "path")
    assert ex.objects[path_h] is os.path
    join_h = ex.getattr(None, "os.path", "join")  # no handle: eval(path) in the globals
    assert ex.objects[join_h] is os.path.join
    with pytest.raises(AttributeError):
        ex.getattr(os_h, "os", "no_such_attribute")


def test_call_with_args_and_kwargs(ex: PythonExecutor) -> None:
    int_h = ex.get_builtin("int")
    assert value(ex, call(ex, int_h, "builtins.int", "ff", base=16)) == 255
    assert value(ex, call(ex, int_h, "builtins.int")) == 0
    ex.import_module("os")
    assert value(ex, call(ex, None, "os.path.join", "a", "b", "c")) == os.path.join("a", "b", "c")


def test_call_resolves_proxy_references_recursively(ex: PythonExecutor) -> None:
    ex.execute("def echo(*args, **kwargs):\n    return [list(args), kwargs]")
    echo = ex.eval("echo")
    arr = ex.eval("__import__('numpy').arange(3)")
    name = ex.eval("'remote'")
    h = call(ex, echo, "echo", ref(arr), [ref(name), {"k": ref(name)}], (1, ref(name)), kw=ref(arr))
    args, kwargs = ex.objects[h]
    assert args[0] is ex.objects[arr] and kwargs["kw"] is ex.objects[arr]
    assert args[1] == ["remote", {"k": "remote"}] and args[2] == [1, "remote"]
    # a dict shaped like a proxy but not marked True is data
    h = call(ex, echo, "echo", {"__rpc_proxy__": False, "obj_id": arr})
    assert ex.objects[h][0][0] == {"__rpc_proxy__": False, "obj_id": arr}


def test_references_are_the_handles_given_not_the_ids_in_the_markers(ex: PythonExecutor) -> None:
    """A marker's obj_id is the client's id; the server session passes the
    handle each marker stands for, in order, and only those count."""
    ex.execute("def echo(*args, **kwargs):\n    return [list(args), kwargs]")
    echo = ex.eval("echo")
    x, y = ex.eval("'x'"), ex.eval("'y'")
    args = packb([ref(900), [ref(901)], {"k": ref(900)}])
    kwargs = packb({"kw": ref(902)})
    h = ex.call(echo, "echo", memoryview(args), kwargs, [y, x, y, x])
    assert ex.objects[h] == [["y", ["x"], {"k": "y"}], {"kw": "x"}]
    key = ex.getitem(ex.eval("{'x': 1}"), packb(ref(12345)), [x])
    assert ex.objects[key] == 1
    with pytest.raises(ValueError, match="more proxy references than the handles"):
        ex.call(echo, "echo", args, kwargs, [y, x])
    with pytest.raises(ValueError, match="fewer proxy references than the handles"):
        ex.call(echo, "echo", args, kwargs, [y, x, y, x, y])


def test_call_with_numpy_arrays_and_slices(ex: PythonExecutor) -> None:
    np_h = ex.import_module("numpy")
    add = ex.getattr(np_h, "numpy", "add")
    a = np.arange(6, dtype="<f4").reshape(2, 3)
    out = value(ex, call(ex, add, "numpy.add", a, np.asfortranarray(a)))
    np.testing.assert_array_equal(out, a + a)
    ex.execute("def take(seq, s):\n    return seq[s]")
    assert value(ex, call(ex, ex.eval("take"), "take", [0, 1, 2, 3, 4], slice(None, None, 2))) == [0, 2, 4]


def test_unknown_handle_is_a_clear_key_error(ex: PythonExecutor) -> None:
    with pytest.raises(KeyError, match="no object with handle 12345"):
        ex.materialize(12345)
    f = ex.get_builtin("len")
    with pytest.raises(KeyError, match="handle 999"):
        call(ex, f, "len", ref(999))


def test_call_on_a_non_callable_calls_the_last_path_component(ex: PythonExecutor) -> None:
    lst = ex.eval("[10, 20, 10]")
    assert value(ex, call(ex, lst, "x.count", 10)) == 2
    assert value(ex, call(ex, lst, "x.index()", 20)) == 1


def test_getitem(ex: PythonExecutor) -> None:
    lst = ex.eval("[10, 20, 30, 40]")
    d = ex.eval("{'a': 1, (1, 2): 'tuple', 3: 'int', (1, (2, 3)): 'nested'}")
    arr = ex.eval("__import__('numpy').arange(24).reshape(2, 3, 4)")
    assert value(ex, ex.getitem(lst, packb(-1))) == 40
    assert value(ex, ex.getitem(lst, packb(slice(1, None, 2)))) == [20, 40]
    assert value(ex, ex.getitem(d, packb("a"))) == 1
    assert value(ex, ex.getitem(d, packb((1, 2)))) == "tuple"  # arrives as a list
    assert value(ex, ex.getitem(d, packb((1, (2, 3))))) == "nested"
    a = np.arange(24).reshape(2, 3, 4)
    np.testing.assert_array_equal(value(ex, ex.getitem(arr, packb((1, slice(None), 2)))), a[1, :, 2])
    np.testing.assert_array_equal(value(ex, ex.getitem(arr, packb((slice(0, 1), 2)))), a[0:1, 2])
    fancy = value(ex, ex.getitem(arr, packb([1, 0])))  # a list of ints: fancy, as the reference
    np.testing.assert_array_equal(fancy, a[[1, 0]])
    np.testing.assert_array_equal(value(ex, ex.getitem(arr, packb(np.array([1, 0])))), a[[1, 0]])
    key = ex.eval("3")
    assert value(ex, ex.getitem(d, packb(ref(key)), [key])) == "int"
    with pytest.raises(IndexError):
        ex.getitem(lst, packb(10))


def test_materialize_encodes_values(ex: PythonExecutor) -> None:
    h = ex.eval("{'a': (1, 2.5, None), 'c': 1+2j, 's': slice(1, 2)}")
    assert value(ex, h) == {"a": [1, 2.5, None], "c": 1 + 2j, "s": slice(1, 2)}
    with pytest.raises(TypeError, match="module"):
        ex.materialize(ex.import_module("os"))
    with pytest.raises(TypeError, match="object"):
        ex.materialize(ex.eval("__import__('numpy').array([None], dtype=object)"))


def test_globals_are_isolated_between_executors() -> None:
    a, b = PythonExecutor(), PythonExecutor()
    a.execute("x = 42\nclass K: pass")
    b.execute("x = 'other'")
    assert value(a, a.eval("x")) == 42 and value(b, b.eval("x")) == "other"
    with pytest.raises(NameError):
        b.eval("K")
    assert value(a, a.eval("K.__module__")) == "__simplerpc__"
    assert "x" not in globals()


def test_teleport_binds_a_dill_function(ex: PythonExecutor) -> None:
    offset = 3

    def shift(x: int) -> int:
        return x + offset

    h = ex.teleport(dill.dumps(shift), "shift")
    assert value(ex, call(ex, h, "shift", 4)) == 7
    assert value(ex, ex.eval("shift(10)")) == 13
    square = ex.teleport(dill.dumps(lambda x: x * x), "square")
    assert value(ex, call(ex, square, "square", 5)) == 25


def test_namespace_lists_the_globals(ex: PythonExecutor) -> None:
    ex.import_module("os")
    ex.execute("def f(): pass\ny = 1")
    ns = unpackb(ex.namespace())
    assert ns["os"] == "<class 'module'>"
    assert ns["f"] == "<class 'function'>" and ns["y"] == "<class 'int'>"
    assert ns["__builtins__"] == "<class 'module'>"


def test_release_frees_the_object(ex: PythonExecutor) -> None:
    ex.execute("class Thing: pass")
    h = ex.eval("Thing()")
    probe = weakref.ref(ex.objects[h])
    ex.release(h)
    gc.collect()
    assert probe() is None and h not in ex.objects
    ex.release(h)  # releasing twice, or an unknown handle, is harmless
    with pytest.raises(KeyError):
        ex.materialize(h)


def test_a_value_without_wire_form_is_freed_without_the_cyclic_gc(ex: PythonExecutor) -> None:
    # materialize()'s TypeError must not make a reference cycle through the
    # frame holding the value: the object stayed after its release until
    # the server's cyclic GC ran.
    ex.execute("class Thing:\n    pass")
    h = ex.eval("Thing()")
    probe = weakref.ref(ex.objects[h])
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            ex.materialize(h)
        except TypeError as e:
            assert "Thing" in str(e)
        else:
            raise AssertionError("a Thing has no wire form")
        ex.release(h)
        assert probe() is None
    finally:
        if enabled:
            gc.enable()


def test_errors_propagate_as_the_original_exceptions(ex: PythonExecutor) -> None:
    with pytest.raises(ZeroDivisionError):
        ex.eval("1 / 0")
    with pytest.raises(SyntaxError):
        ex.execute("def (")
    with pytest.raises(ValueError):
        call(ex, ex.get_builtin("int"), "int", "nope")


def raise_and_describe(fn: Any) -> tuple:
    try:
        fn()
    except Exception as e:
        return describe_exception(e)
    raise AssertionError("did not raise")


def test_describe_exception(ex: PythonExecutor) -> None:
    etype, message, tb, payload = raise_and_describe(lambda: ex.eval("int('nope')"))
    assert etype == "builtins.ValueError"
    assert message == "invalid literal for int() with base 10: 'nope'"
    assert tb.startswith("Traceback (most recent call last):") and "ValueError: invalid literal" in tb
    assert "<string>" in tb  # the remote frame
    restored = dill.loads(payload)
    assert type(restored) is ValueError and str(restored) == message

    ex.execute("class MyError(Exception): pass")
    etype, message, _, payload = raise_and_describe(lambda: ex.execute("raise MyError('boom', 42)"))
    assert etype == "__simplerpc__.MyError" and message == "('boom', 42)"

    etype, message, _, _ = raise_and_describe(lambda: ex.materialize(7))
    assert etype == "builtins.KeyError" and "no object with handle 7" in message


def test_describe_exception_without_a_picklable_exception() -> None:
    class Unpicklable(Exception):
        def __reduce__(self) -> Any:
            raise TypeError("no pickling")

    etype, message, tb, payload = describe_exception(Unpicklable("x"))
    assert etype.endswith("test_describe_exception_without_a_picklable_exception.<locals>.Unpicklable")
    assert message == "x" and payload is None and "Unpicklable: x" in tb

    class BadStr(Exception):
        def __str__(self) -> str:
            raise RuntimeError

    assert describe_exception(BadStr())[1] == "<unprintable BadStr object>"


def test_golden_requests_drive_the_executor(ex: PythonExecutor) -> None:
    """The reference client's request frames, replayed in order through the executor."""

    def req(name: str) -> dict:
        return unpackb((GOLDEN / f"req_{name}.msgpack").read_bytes())

    def args(msg: dict) -> tuple:
        return packb(msg["args"]), packb(msg["kwargs"])

    m = req("import_module")
    assert ex.objects[ex.import_module(m["module"])] is os
    m = req("call_kwargs")
    assert value(ex, ex.call(ex.get_builtin("int"), m["path"], *args(m))) == 255
    m = req("execute")
    ex.execute(m["code"])
    m = req("eval")
    assert value(ex, ex.eval(m["expr"])) == [30, 10, 20]
    m = req("getitem_tuple_slices")
    np_arr = ex.eval("__import__('numpy').arange(40).reshape(5, 8)")
    got = value(ex, ex.getitem(np_arr, packb(m["key"])))
    np.testing.assert_array_equal(got, np.arange(40).reshape(5, 8)[1:3, ::2])
    m = req("teleport")
    h = ex.teleport(m["func_bytes"], m["name"])
    assert callable(ex.objects[h]) and m["name"] in ex.globals
