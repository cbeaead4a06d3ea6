"""End to end: a proxy answers Python's object protocol with the remote
object's meaning (bool, len, int, float, index, in, iter, reversed, next,
comparisons, arithmetic, hash, str, setattr/setitem and their deletes,
``with``, ``__array__``), or raises a TypeError; never a silent wrong answer.

Every test runs against our server (``python -m simplerpc.server``) and the
stock ``python -m simplerpyc.server``: the protocol is expressed with the
reference protocol's requests, so both must give the same answers. Round
trips are counted by the library, so the pipelining checks are deterministic.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Iterator

import numpy as np
import pytest

import simplerpc
from simplerpc import RemoteException, is_proxy, materialize

SETUP = """
import numpy as np

class Box:
    def __init__(self):
        self.log = []
    def __enter__(self):
        self.log.append("enter")
        return "entered"
    def __exit__(self, etype, exc, tb):
        self.log.append(["exit", None if etype is None else etype.__name__, None if exc is None else str(exc)])
        return etype is KeyError          # suppresses KeyError only

class BadEnter:
    def __enter__(self):
        raise RuntimeError("cannot enter")
    def __exit__(self, *exc):
        return False

class Thing:
    def __init__(self, n):
        self.n = n

def gen(n):
    for i in range(n):
        yield i

def step(action):
    return np.zeros(3, np.float32), 0.0, False, False, {}

box = Box()
"""


@pytest.fixture(params=["ours", "stock"])
def rconn(request: pytest.FixtureRequest) -> Iterator[simplerpc.Connection]:
    """A connection to our server or to the stock one, with SETUP run in its globals."""
    srv = request.getfixturevalue("server" if request.param == "ours" else "reference_server")
    c = simplerpc.connect(srv.host, srv.port, srv.token)
    try:
        c.execute(SETUP)
        yield c
    finally:
        c.disconnect()


def ours(conn: simplerpc.Connection) -> bool:
    return bool(conn._native.promises)


def trips(conn: simplerpc.Connection) -> int:
    return int(conn._native.round_trips)


# ---------------------------------------------------------------- values


@pytest.mark.parametrize("expr", ["[]", "0", "False", "''", "{}", "None", "0.0", "np.zeros(1)"])
def test_bool_of_falsy_remote_objects_is_false(rconn: Any, expr: str) -> None:
    p = rconn.eval(expr)
    assert bool(p) is False
    assert not p


@pytest.mark.parametrize("expr", ["[0]", "1", "True", "'a'", "{'k': 0}", "Thing(0)", "-0.5"])
def test_bool_of_truthy_remote_objects_is_true(rconn: Any, expr: str) -> None:
    assert bool(rconn.eval(expr)) is True


def test_an_unmaterialized_step_result_is_tested_remotely(rconn: Any) -> None:
    result = rconn.eval("step")(1)
    terminated = result[2]
    assert is_proxy(terminated)
    assert not terminated  # was always true before: the proxy object itself
    with pytest.raises(ValueError, match="ambiguous"):
        bool(result[0])  # a numpy array of 3: the remote ValueError, as locally


def test_len(rconn: Any) -> None:
    assert len(rconn.eval("[]")) == 0
    assert len(rconn.eval("{'a': 1, 'b': 2}")) == 2
    assert len(rconn.eval("'hello'")) == 5
    assert len(rconn.eval("np.zeros((4, 2))")) == 4
    with pytest.raises(TypeError, match="has no len"):
        len(rconn.eval("0"))


def test_int_float_complex_and_index(rconn: Any) -> None:
    assert int(rconn.eval("7")) == 7 and type(int(rconn.eval("7"))) is int
    assert int(rconn.eval("'12'")) == 12
    assert int(rconn.eval("np.float32(3.9)")) == 3
    assert float(rconn.eval("2.5")) == 2.5
    assert float(rconn.eval("np.float32(0.5)")) == 0.5
    assert complex(rconn.eval("1+2j")) == 1 + 2j
    three = rconn.eval("3")
    assert list(range(three)) == [0, 1, 2]
    assert operator.index(three) == 3
    assert [10, 20, 30, 40][rconn.eval("1") : three] == [20, 30]
    assert "abcd"[rconn.eval("np.int64(2)")] == "c"
    assert hex(rconn.eval("255")) == "0xff"
    with pytest.raises(TypeError):
        operator.index(rconn.eval("2.5"))  # a float is no index, remotely either
    with pytest.raises(ValueError):
        int(rconn.eval("'x'"))


def test_in(rconn: Any) -> None:
    d = rconn.eval("{'a': 1, (1, 2): 3}")
    assert "a" in d and "b" not in d
    assert (1, 2) in d  # the tuple key is built on the server: it must not arrive as a list
    assert 2 in rconn.eval("[1, 2, 3]") and 5 not in rconn.eval("[1, 2, 3]")
    assert "ell" in rconn.eval("'hello'")
    assert (1, 2) in rconn.eval("[(1, 2)]")
    with pytest.raises(TypeError):
        1 in rconn.eval("5")


def test_str_is_remote_repr_is_local(rconn: Any) -> None:
    p = rconn.eval("[1, 'a']")
    assert str(p) == "[1, 'a']"
    assert repr(p).startswith("<RPCProxy: ") and "[1, 'a']" in repr(p)  # names its expression
    assert f"{rconn.eval('3.14159'):.2f}" == "3.14"
    assert f"{rconn.eval('42')}" == "42"
    assert bytes(rconn.eval("b'xy'")) == b"xy"
    assert "append" in dir(p) and "n" in dir(rconn.eval("Thing(1)"))


# ---------------------------------------------------------------- iteration


def test_iterating_a_dict_yields_its_keys(rconn: Any) -> None:
    d = rconn.eval("{'a': 1, 'b': 2, 3: None}")
    keys = [k for k in d]
    assert keys == ["a", "b", 3]
    assert not any(is_proxy(k) for k in keys)  # usable keys
    assert {k: materialize(d[k]) for k in d} == {"a": 1, "b": 2, 3: None}
    assert list(d.items()) == [("a", 1), ("b", 2), (3, None)]  # tuples of values
    assert sorted(d.values(), key=str) == [1, 2, None]


def test_iterating_generators_lists_tuples_and_arrays(rconn: Any) -> None:
    assert list(rconn.eval("gen(5)")) == [0, 1, 2, 3, 4]
    assert [x * 2 for x in rconn.eval("gen(3)")] == [0, 2, 4]
    assert list(rconn.eval("[]")) == []
    assert list(rconn.eval("(1, 'two', 3.0, None, b'4', 1+1j, True)")) == [1, "two", 3.0, None, b"4", 1 + 1j, True]
    scalars = list(rconn.eval("np.arange(4, dtype=np.int16)"))
    assert scalars == [0, 1, 2, 3] and all(type(x) is np.int16 for x in scalars)
    rows = list(rconn.eval("np.arange(6).reshape(3, 2)"))  # arrays stay remote: proxies
    assert len(rows) == 3 and all(is_proxy(r) for r in rows)
    assert np.asarray(rows[2]).tolist() == [4, 5]
    a, b = rconn.eval("(7, 8)")  # unpacking iterates
    assert (a, b) == (7, 8)
    with pytest.raises(TypeError, match="not iterable"):
        iter(rconn.eval("5"))


def test_dict_of_a_proxy(rconn: Any) -> None:
    # dict() asks hasattr(p, "keys"): answered by the server, not assumed.
    assert dict(rconn.eval("[('x', 1), ('y', (2, 3))]")) == {"x": 1, "y": (2, 3)}
    mapping = dict(rconn.eval("{'a': 1, 'b': [2]}"))  # keys as values, values by reference
    assert list(mapping) == ["a", "b"] and all(is_proxy(v) for v in mapping.values())
    assert materialize(mapping["b"]) == [2]
    merged = {"z": 0}
    merged.update(rconn.eval("[('x', 1)]"))
    assert merged == {"z": 0, "x": 1}
    assert materialize(rconn.eval("1 + 1")) == 2  # no error left behind for a later wait


def test_items_that_are_not_simple_values_arrive_as_usable_proxies(rconn: Any) -> None:
    things = list(rconn.eval("[Thing(1), 2, (Thing(3), 'x'), [4]]"))
    assert is_proxy(things[0]) and materialize(things[0].n) == 1
    assert things[1] == 2
    assert isinstance(things[2], tuple) and is_proxy(things[2][0]) and things[2][1] == "x"
    assert materialize(things[2][0].n) == 3
    assert is_proxy(things[3]) and materialize(things[3]) == [4]  # mutable: by reference
    assert "next(iter(" in repr(things[0])
    big = list(rconn.eval("[2**70, -2**64]"))  # ints msgpack cannot carry: by reference
    assert all(is_proxy(x) for x in big) and str(big[0]) == str(2**70)


def test_a_thousand_items_take_a_few_round_trips(rconn: Any) -> None:
    p = rconn.eval("list(range(1000))")
    list(rconn.eval("[0]"))  # warm up: the remote helpers are looked up once per connection
    before = trips(rconn)
    assert list(p) == list(range(1000))
    used = trips(rconn) - before
    # list() asks len() first, then batches of 32, 128, 512, 1024: one round
    # trip each against our server, three against a stock one (call,
    # getitem, materialize), and the stock one's iter() and len() two more
    assert used <= (5 if ours(rconn) else 15), used


def test_long_strings_come_in_smaller_batches(rconn: Any) -> None:
    p = rconn.eval("[bytes([i]) * 100_000 for i in range(40)]")  # 4 MB in all
    list(rconn.eval("[0]"))  # warm up
    before = trips(rconn)
    got = [x for x in p]
    assert got == [bytes([i]) * 100_000 for i in range(40)]
    assert trips(rconn) - before > 3  # not one 4 MB message: batches of about 256 KiB


@pytest.mark.parametrize("n", [3, 100])
def test_items_before_an_error_in_the_iterator_arrive_first(rconn: Any, n: int) -> None:
    # The batch that met the error took the items before it from the
    # generator: they were dropped, and the loop saw only the error.
    rconn.execute("def failing(n):\n    yield from range(n)\n    raise ValueError('bad item')\n")
    got = []
    with pytest.raises(ValueError, match="bad item") as info:
        for x in rconn.eval(f"failing({n})"):
            got.append(x)
    assert got == list(range(n))
    assert isinstance(info.value, RemoteException)


def test_reversed_and_next(rconn: Any) -> None:
    assert list(reversed(rconn.eval("[1, 2, 3]"))) == [3, 2, 1]
    assert list(reversed(rconn.eval("{'a': 1, 'b': 2}"))) == ["b", "a"]
    g = rconn.eval("gen(2)")
    assert next(g) == 0 and next(g) == 1
    with pytest.raises(StopIteration):
        next(g)
    assert next(g, "done") == "done"
    with pytest.raises(TypeError, match="not an iterator"):
        next(rconn.eval("[1, 2]"))  # a list is no iterator: never its first item
    with pytest.raises(TypeError):
        reversed(rconn.eval("gen(2)"))


# ---------------------------------------------------------------- comparisons and arithmetic


def test_comparisons_are_remote_and_lazy(rconn: Any) -> None:
    p = rconn.eval("[10, 20, 30]")
    eq = p == [10, 20, 30]
    assert is_proxy(eq) and bool(eq) is True  # was silently False
    assert (p != [10, 20, 30]) is not True and not (p != [10, 20, 30])
    assert p == rconn.eval("[10, 20, 30]") and not (p == [10, 20])
    assert rconn.eval("(1, 2)") == (1, 2)  # a tuple operand stays a tuple
    five = rconn.eval("5")
    assert five < 6 and five <= 5 and five > 4 and five >= 5 and not five > 5
    assert 4 < five and 6 > five  # reflected
    assert rconn.eval("'a'") < rconn.eval("'b'")
    assert not (five == object())  # cannot be sent: identity, as Python does for unrelated types
    assert five != object()
    with pytest.raises(TypeError, match="not supported"):
        bool(five < "x")
    elementwise = rconn.eval("np.arange(3)") == np.array([0, 5, 2])
    assert np.asarray(elementwise).tolist() == [True, False, True]


def test_tuples_inside_lists_and_dicts_stay_tuples(rconn: Any) -> None:
    # Against the stock server these compared a list of lists with a list
    # of tuples: silently False (and True for !=).
    pairs = rconn.eval("[(1, 2), (3, (4, 5))]")
    assert bool(pairs == [(1, 2), (3, (4, 5))]) is True
    assert bool(pairs != [(1, 2), (3, (4, 5))]) is False
    assert bool(pairs == [[1, 2], [3, [4, 5]]]) is False
    assert bool(rconn.eval("{'a': (1, 2)}") == {"a": (1, 2)}) is True
    assert [(1, 2)] in rconn.eval("[[(1, 2)]]")
    d = rconn.eval("{}")
    d["k"] = [(1, 2)]
    assert materialize(rconn.builtins.repr(d)) == "{'k': [(1, 2)]}"


def test_a_nested_tuple_key_indexes_as_it_does_locally(rconn: Any) -> None:
    # p[1, (2, 3)] reached a stock server as the key (1, [2, 3]): unhashable.
    d = rconn.eval("{(1, (2, 3)): 'nested', (1, 2): 'flat'}")
    assert materialize(d[1, (2, 3)]) == "nested"
    assert materialize(d[1, 2]) == "flat"


def test_arithmetic_is_remote_and_lazy(rconn: Any) -> None:
    x = rconn.eval("5")
    s = x + 1
    assert is_proxy(s) and materialize(s) == 6
    cases = [
        (x - 2, 3), (2 - x, -3), (x * 3, 15), (3 * x, 15), (x / 2, 2.5), (10 / x, 2.0),
        (x // 2, 2), (11 // x, 2), (x % 3, 2), (12 % x, 2), (x ** 2, 25), (2 ** x, 32),
        (pow(x, 2, 7), 4), (x << 1, 10), (1 << x, 32), (x >> 1, 2), (64 >> x, 2),
        (x & 4, 4), (6 & x, 4), (x | 2, 7), (2 | x, 7), (x ^ 1, 4), (1 ^ x, 4),
        (-x, -5), (+x, 5), (~x, -6), (abs(rconn.eval("-3")), 3), (divmod(x, 3), [1, 2]),
        (divmod(7, x), [1, 2]), (round(rconn.eval("2.567"), 1), 2.6), (round(rconn.eval("2.5")), 2),
        (math.floor(rconn.eval("2.5")), 2), (math.ceil(rconn.eval("2.5")), 3), (math.trunc(rconn.eval("-2.5")), -2),
        (rconn.eval("'ab'") + "c", "abc"), ("c" + rconn.eval("'ab'"), "cab"), (rconn.eval("[1]") * 2, [1, 1]),
    ]
    for got, want in cases:
        assert is_proxy(got)
        value = materialize(got)
        assert (list(value) if isinstance(value, tuple) else value) == want  # tuples may arrive as lists
    m = rconn.eval("np.eye(2) * 2") @ np.array([[1.0], [1.0]])
    assert np.asarray(m).tolist() == [[2.0], [2.0]]
    assert materialize(x + x) == 10 and bool(x + 1 == 6)
    with pytest.raises(ZeroDivisionError):
        materialize(x / 0)
    with pytest.raises(TypeError, match="materialize"):
        x + object()  # cannot be sent: says what to do


def test_in_place_operators(rconn: Any) -> None:
    x = rconn.eval("5")
    y = x
    y += 1  # an int is immutable: y is the new object, x unchanged
    assert materialize(y) == 6 and materialize(x) == 5
    y *= 2
    y -= 2
    y //= 3
    assert materialize(y) == 3
    lst = rconn.eval("[1]")
    alias = lst
    alias += [2]  # a list is extended in place, on the server
    assert materialize(lst) == [1, 2]
    arr = rconn.eval("np.ones(2)")
    arr *= 3
    assert np.asarray(arr).tolist() == [3.0, 3.0]


def test_hash_is_the_remote_objects(rconn: Any) -> None:
    p = rconn.eval("'abc'")
    assert hash(p) == materialize(rconn.builtins.hash("abc"))
    before = trips(rconn)
    assert hash(p) == hash(p)
    assert trips(rconn) == before  # kept: a hash never changes
    assert hash(rconn.eval("12345")) == 12345
    with pytest.raises(TypeError, match="unhashable"):
        hash(rconn.eval("[1]"))
    # Proxies as dict keys: equal remote objects are one key.
    d = {rconn.eval("'k'"): 1}
    assert d[rconn.eval("'k'")] == 1
    assert len({rconn.eval("'k'"), rconn.eval("'k'"), rconn.eval("'j'")}) == 2


# ---------------------------------------------------------------- changes


def test_setattr_and_delattr_are_remote(rconn: Any) -> None:
    t = rconn.eval("Thing(1)")
    t.n = 5
    t.extra = [1, 2]
    assert materialize(t.n) == 5 and materialize(t.extra) == [1, 2]
    del t.extra
    assert materialize(rconn.builtins.hasattr(t, "extra")) is False
    with pytest.raises(AttributeError):
        del t.extra  # raised at once, not at a later wait
    with pytest.raises(AttributeError):
        rconn.eval("1").attr = 1  # an int takes no attributes, remotely either
    # The proxy's own state stays local.
    t._rpc_path = "renamed"
    assert repr(t).startswith("<RPCProxy: renamed")
    assert materialize(rconn.builtins.hasattr(t, "_rpc_path")) is False


def test_setitem_and_delitem_are_remote(rconn: Any) -> None:
    d = rconn.eval("{}")
    d["k"] = 1
    d[1, 2] = (3, 4)
    assert materialize(d["k"]) == 1 and materialize(d[1, 2][1]) == 4
    assert (1, 2) in d and [1, 2] not in list(d)
    del d["k"]
    assert "k" not in d
    with pytest.raises(KeyError):
        del d["missing"]
    lst = rconn.eval("[0, 0, 0]")
    lst[0] = 1
    lst[1:] = [7, 8]
    assert materialize(lst) == [1, 7, 8]
    arr = rconn.eval("np.zeros((2, 3))")
    arr[0, 1] = 7  # a tuple key: arr[0, 1], not arr[[0, 1]]
    assert np.asarray(arr).tolist() == [[0, 7, 0], [0, 0, 0]]
    with pytest.raises(IndexError):
        lst[10] = 1


# ---------------------------------------------------------------- with, callable, __array__


def test_with_runs_the_remote_enter_and_exit(rconn: Any) -> None:
    box = rconn.eval("box")
    with box as entered:
        assert is_proxy(entered) and materialize(entered) == "entered"
    with box:
        raise KeyError("k")  # the remote __exit__ returns True for a KeyError: suppressed
    with pytest.raises(ValueError, match="v"):
        with box:
            raise ValueError("v")
    with pytest.raises(ValueError):
        with box:  # a remote error in the body: the remote __exit__ sees its type
            int(rconn.eval("'x'"))
    log = materialize(box.log)
    assert log[:6] == ["enter", ["exit", None, None], "enter", ["exit", "KeyError", "'k'"], "enter", ["exit", "ValueError", "v"]]
    assert log[6] == "enter" and log[7][1] == "ValueError"
    ran = []
    with pytest.raises(RuntimeError, match="cannot enter"):
        with rconn.eval("BadEnter()"):
            ran.append(1)
    assert ran == []  # __enter__ failed: the body did not run
    with pytest.raises(TypeError, match="context manager"):
        with rconn.eval("5"):
            pass


def test_callable_is_true_and_calling_a_non_callable_raises(rconn: Any) -> None:
    five = rconn.eval("5")
    assert callable(five)  # documented: Python asks the proxy's type
    assert materialize(rconn.builtins.callable(five)) is False
    # The reference protocol calls the attribute named by the path's last
    # part when the object is not callable: an AttributeError, not a TypeError.
    with pytest.raises((TypeError, AttributeError)) as e:
        materialize(five())
    assert isinstance(e.value, RemoteException)


def test_array_materializes(rconn: Any) -> None:
    p = rconn.eval("np.arange(6, dtype=np.int32).reshape(2, 3)")
    a = np.asarray(p)
    assert type(a) is np.ndarray and a.dtype == np.int32 and a.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert np.asarray(p, dtype=np.float64).dtype == np.float64
    assert np.array(p, copy=True).tolist() == a.tolist()
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0":
        with pytest.raises(ValueError, match="always a new copy"):  # numpy 2: copy=False is "never copy"
            np.asarray(p, copy=False)
    else:
        assert np.array(p, copy=False).tolist() == a.tolist()  # numpy 1: "copy only if needed"
    lst = np.asarray(rconn.eval("[1.5, 2.5]"))
    assert lst.dtype == np.float64 and lst.tolist() == [1.5, 2.5]  # not an object array
    assert np.asarray(rconn.eval("3")).tolist() == 3
    stacked = np.stack([rconn.eval("np.zeros(2)"), np.ones(2)])
    assert stacked.tolist() == [[0.0, 0.0], [1.0, 1.0]]
    # numpy functions of this numpy run here, on the materialized values
    total = np.sum(p)
    assert not is_proxy(total) and total == 15
    assert np.sum(rconn.eval("[1, 2, 3]")) == 6  # a list has no .sum(): never asked of the server
    assert np.mean(rconn.eval("[1.0, 3.0]")) == 2.0
    both = np.concatenate([rconn.eval("np.zeros(1)"), np.ones(1), rconn.eval("[2.0]")])
    assert both.tolist() == [0.0, 1.0, 2.0]
    assert np.allclose(rconn.eval("[1.0, 2.0]"), [1.0, 2.0])
    assert materialize(rconn.modules.numpy.sum(p)) == 15  # the server's numpy: remote


def test_probes_stay_local(rconn: Any) -> None:
    p = rconn.eval("np.zeros(2)")
    materialize(p)
    before = trips(rconn)
    for name in ("__array_interface__", "__array_struct__", "__array_priority__", "__dlpack__", "__fspath__"):
        assert not hasattr(p, name)
    assert trips(rconn) == before


def test_a_probe_left_local_says_how_to_ask_the_server(rconn: Any) -> None:
    # `module.__file__` is one of the names answered locally: its error
    # must not read as "the remote module has no __file__".
    mod = rconn.modules.json
    with pytest.raises(AttributeError, match=r"__file__ .*not asked of the server.*conn\.builtins\.getattr\(p, '__file__'\)"):
        mod.__file__
    assert getattr(mod, "__file__", None) is None  # still an AttributeError for getattr/hasattr
    assert materialize(rconn.builtins.getattr(mod, "__file__")).endswith("__init__.py")


# ---------------------------------------------------------------- pipelining (our server)


def test_an_operation_and_its_materialize_are_one_round_trip(rconn: Any) -> None:
    p, q = rconn.eval("[1, 2]"), rconn.eval("[1, 2]")
    # warm up: operator and builtins are imported once per connection
    bool(p), len(p), bool(p == q), 1 in p, materialize(p + [3])
    per_op = 1 if ours(rconn) else 2
    for op in (lambda: bool(p), lambda: len(p), lambda: 2 in p, lambda: materialize(p + [3])):
        before = trips(rconn)
        op()
        assert trips(rconn) - before == per_op
    before = trips(rconn)
    assert bool(p == q)  # == is lazy, its bool one wait: the chain rides on it
    assert trips(rconn) - before == (1 if ours(rconn) else 3)


def test_an_unsendable_operand_is_a_plain_type_error_saying_what_to_do(rconn: Any) -> None:
    x = rconn.eval("5")
    for op in (lambda: x + object(), lambda: setattr(x, "attr", object())):
        with pytest.raises(TypeError) as info:
            op()
        # A TypeError of its own, not a private class of the package.
        assert type(info.value) is TypeError, type(info.value)
        text = str(info.value)
        assert "'object'" in text and "on the server" in text and "materialize()" in text
        assert text.count("instead") == 1 and text.count("send ") == 2, text  # one hint, not two


def test_errors_keep_their_type(rconn: Any) -> None:
    with pytest.raises(TypeError) as e:
        len(rconn.eval("5"))
    assert isinstance(e.value, RemoteException)
    with pytest.raises(TypeError):
        materialize(rconn.eval("5") + "a")


def test_a_closed_connection_says_so(rconn: Any) -> None:
    p = rconn.eval("[1]")
    assert bool(p)
    rconn.disconnect()
    for op in (bool, len, str, hash, list, lambda q: q == 1, lambda q: q + 1, lambda q: setattr(q, "x", 1)):
        with pytest.raises(simplerpc.ConnectionClosedError):
            op(p)
    assert repr(p).startswith("<RPCProxy: ")  # local: works after the connection is gone


def test_tuple_operands_travel_as_tuples_to_our_server(rconn: Any) -> None:
    p = rconn.eval("(1, (2, 3))")
    assert bool(p == (1, (2, 3))) and not bool(p == [1, [2, 3]])
    d = rconn.eval("{(1, (2, 3)): 'x'}")
    assert materialize(d[1, (2, 3)]) == "x"
    # Against our server (the tuple extension) no request builds a tuple on
    # the server first; against the stock one that is how tuples get there.
    assert (rconn._remote_tuple is None) == ours(rconn)
