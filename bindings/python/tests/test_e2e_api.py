"""End to end: every behaviour of the README's user API, against a real server process.

The server is ``python -m simplerpc.server`` on 127.0.0.1 (the ``server``
fixture); clients are real ``simplerpc.connect`` connections over real sockets.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, Callable, Dict, List

import msgpack
import numpy as np
import pytest

import simplerpc
from simplerpc import RemoteException, is_proxy, materialize

JOIN_GUARD = 60.0  # a hang guard for threads, never a performance bound


def main_function(source: str, name: str) -> Callable[..., Any]:
    """A function defined as if in ``__main__`` (a script), as the README's teleport example.

    dill pickles functions of importable modules by reference, which a server
    cannot load; those of ``__main__`` travel by value.
    """
    ns: Dict[str, Any] = {"__name__": "__main__"}
    exec(source, ns)
    return ns[name]


def executor_call_running(conn: simplerpc.Connection, path: str) -> bool:
    """Whether some server thread is inside ``PythonExecutor.call`` for ``path`` (asked over ``conn``)."""
    probe = (
        "any(f.f_code.co_name == 'call' and f.f_code.co_filename.endswith('_executor.py')"
        f" and f.f_locals.get('path') == {path!r}"
        " for f in __import__('sys')._current_frames().values())"
    )
    return bool(materialize(conn.eval(probe)))


def wait_until_running(conn: simplerpc.Connection, path: str, thread: threading.Thread) -> None:
    """Poll the server until a call of ``path`` is in progress there (the other client's)."""
    deadline = threading.Event()
    timer = threading.Timer(JOIN_GUARD, deadline.set)
    timer.start()
    try:
        while not executor_call_running(conn, path):
            assert thread.is_alive(), "the slow call ended before the server was seen running it"
            assert not deadline.is_set(), f"the server never ran {path} (hang guard)"
    finally:
        timer.cancel()


# ------------------------------------------------------------ API styles


def test_style1_patch_module_readme(server: Any) -> None:
    host, port, token, proc = server
    real_os, real_np = sys.modules["os"], sys.modules["numpy"]
    conn = simplerpc.connect(host, port, token)
    try:
        os_proxy = simplerpc.patch_module(conn, "os")
        np_proxy = simplerpc.patch_module(conn, "numpy")
        assert simplerpc.patch_module(conn, "os") is os_proxy  # idempotent

        def user_code() -> Any:
            # The README, verbatim: plain imports give the remote modules.
            import os
            import numpy as np

            assert os is os_proxy and np is np_proxy
            cwd = materialize(os.getcwd())
            arr = materialize(np.array([1, 2, 3]))
            # numpy stays patched while values move: proxies, arrays, slices as arguments.
            total = materialize(np.add(np.arange(3), real_np.ones(3, dtype=real_np.float32)))
            part = materialize(np.arange(10)[2:8:3])
            return cwd, arr, total, part

        cwd, arr, total, part = user_code()
        assert cwd == os.readlink(f"/proc/{proc.pid}/cwd")  # the server's, not ours
        assert cwd != os.getcwd()
        assert type(arr) is np.ndarray and arr.tolist() == [1, 2, 3]
        assert total.dtype == np.float64 and total.tolist() == [1.0, 2.0, 3.0]
        assert part.tolist() == [2, 5]
    finally:
        conn.disconnect()
    # disconnect() unpatched both modules
    assert sys.modules["os"] is real_os and sys.modules["numpy"] is real_np


README_SCRIPT = r'''
import sys
import simplerpc
from simplerpc import materialize

assert "numpy" not in sys.modules  # a fresh process: numpy was never imported here

# Style 1: module patching (token from $SIMPLERPC_TOKEN)
conn = simplerpc.connect(HOST, PORT)
simplerpc.patch_module(conn, "os")
simplerpc.patch_module(conn, "numpy")

import os
import numpy as np

cwd = materialize(os.getcwd())
arr = materialize(np.array([1, 2, 3]))
total = materialize(np.sum(np.array([1, 2, 3])))  # a proxy as an argument while numpy is patched

# with allow_pickle the original exception is unpickled (dill imports locally, os is patched)
trusting = simplerpc.connect(HOST, PORT, allow_pickle=True)
try:
    materialize(trusting.eval("{}")["missing"])
except KeyError as e:
    unpickled = list(e.__cause__.args)
trusting.disconnect()

def square(x):
    return x ** 2

remote_square = conn.teleport(square)  # defined in __main__: dill sends it by value
result = materialize(remote_square(5))
conn.disconnect()

import numpy
import os as local_os
print(repr([cwd, type(arr).__module__, arr.tolist(), total, result, unpickled, local_os.getcwd(),
            type(numpy).__name__, numpy.ndarray is type(arr), simplerpc.is_proxy(os)]))

# Style 2: explicit remote access
from simplerpc import connect
conn = connect(HOST, PORT)
remote_os = conn.modules.os
remote_np = conn.modules.numpy
print(repr([materialize(remote_os.getcwd()), materialize(remote_np.array([1, 2, 3])).tolist()]))
conn.disconnect()
'''


def test_readme_examples_in_a_fresh_process(server: Any, tmp_path: Any) -> None:
    """The README's client examples as a script: numpy not imported before patching, warnings are errors."""
    import subprocess

    host, port, token, proc = server
    script = README_SCRIPT.replace("HOST", repr(host)).replace("PORT", str(port))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLERPC_")}
    env["SIMPLERPC_TOKEN"] = token
    run = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"the README examples failed:\n{run.stdout}\n{run.stderr}"
    style1, style2 = run.stdout.splitlines()
    server_cwd = os.readlink(f"/proc/{proc.pid}/cwd")
    assert eval(style1) == [server_cwd, "numpy", [1, 2, 3], 6, 25, ["missing"], str(tmp_path), "module", True, True]
    assert eval(style2) == [server_cwd, [1, 2, 3]]


def test_style2_namespaces(conn: simplerpc.Connection, server: Any) -> None:
    remote_os = conn.modules.os
    remote_np = conn.modules.numpy
    assert is_proxy(remote_os) and is_proxy(remote_np)
    assert materialize(remote_os.getcwd()) == os.readlink(f"/proc/{server.proc.pid}/cwd")
    arr = materialize(remote_np.array([1, 2, 3]))
    assert type(arr) is np.ndarray and arr.tolist() == [1, 2, 3]
    # dotted modules by item access, attribute chains, builtins
    assert materialize(conn.modules["os.path"].join("a", "b", "c")) == os.path.join("a", "b", "c")
    assert materialize(remote_os.path.basename("/x/y.txt")) == "y.txt"
    assert materialize(conn.builtins.len([1, 2, 3])) == 3
    assert materialize(conn.builtins.sorted([3, 1, 2], reverse=True)) == [3, 2, 1]
    assert materialize(remote_os.getpid()) == server.proc.pid
    assert "os" in repr(remote_os) and is_proxy(conn.builtins.len)


def test_materialize_and_is_proxy(conn: simplerpc.Connection) -> None:
    local = [1, "a", None, 2.5, np.arange(3), {"k": b"v"}]
    for value in local:
        assert materialize(value) is value
        assert not is_proxy(value)
    proxy = conn.eval("[1, 'a', None, 2.5, {'k': b'v'}, (1, 2)]")
    assert is_proxy(proxy) and is_proxy(proxy[0])
    # tuples stay tuples between simplerpc peers (the tuple extension; a
    # stock server sends lists, see test_e2e_tuples.py)
    assert materialize(proxy) == [1, "a", None, 2.5, {"k": b"v"}, (1, 2)]
    assert materialize(proxy[3]) == 2.5 and type(materialize(proxy[3])) is float
    assert materialize(conn.eval("1 + 2j")) == 1 + 2j
    assert materialize(conn.eval("{(1, 2): 'tuple key', 3: 'int key'}")) == {(1, 2): "tuple key", 3: "int key"}
    assert materialize(conn.eval("slice(1, None, 2)")) == slice(1, None, 2)


def test_eval_execute_namespace(conn: simplerpc.Connection) -> None:
    assert materialize(conn.eval("2 + 3")) == 5
    assert conn.execute("x = 42") is None
    assert materialize(conn.eval("x")) == 42
    conn.execute("import math\ndef hyp(a, b):\n    return math.sqrt(a * a + b * b)\n")
    assert materialize(conn.eval("hyp(3, 4)")) == 5.0
    assert materialize(conn.eval("hyp")(6, b=8)) == 10.0
    ns = conn.namespace
    assert ns["x"] == "<class 'int'>"
    assert ns["hyp"] == "<class 'function'>"
    assert ns["math"] == "<class 'module'>"


def test_teleport(conn: simplerpc.Connection) -> None:
    square = main_function("def square(x):\n    return x ** 2\n", "square")
    remote_square = conn.teleport(square)
    assert is_proxy(remote_square)
    assert materialize(remote_square(5)) == 25
    # bound under its name in the client's globals
    assert materialize(conn.eval("square(7)")) == 49
    assert conn.namespace["square"] == "<class 'function'>"
    # a closure over a numpy array and a keyword-only argument travel too
    weights = np.array([1.0, 2.0, 3.0])
    scale = main_function(
        "def make(w):\n    def scaled(v, *, k=1):\n        return (v * w * k).sum()\n    return scaled\n", "make"
    )(weights)
    remote_scaled = conn.teleport(scale)
    assert materialize(remote_scaled(np.ones(3), k=2)) == 12.0


def test_teleport_of_a_function_the_server_cannot_import(conn: simplerpc.Connection) -> None:
    # A function of an importable module pickles by reference (dill): the
    # server has no module "test_e2e_api", and says so.
    with pytest.raises(ModuleNotFoundError) as info:
        conn.teleport(executor_call_running)
    assert isinstance(info.value, RemoteException)
    assert "test_e2e_api" in str(info.value)
    assert materialize(conn.eval("1")) == 1


def test_unpatch_module_and_unpatch_all(conn: simplerpc.Connection) -> None:
    # A module only the server has: written into the server's working directory.
    conn.execute(
        "import importlib\n"
        "with open('e2e_remote_only.py', 'w') as f:\n"
        "    f.write('WHERE = \"server\"\\ndef twice(x):\\n    return 2 * x\\n')\n"
        "importlib.invalidate_caches()\n"
    )
    with pytest.raises(ImportError):
        import e2e_remote_only  # noqa: F401  (not here)
    real_os = sys.modules["os"]
    try:
        conn.patch_module("e2e_remote_only")
        conn.patch_module("os")
        import e2e_remote_only

        assert is_proxy(e2e_remote_only) and is_proxy(sys.modules["os"])
        assert materialize(e2e_remote_only.WHERE) == "server"
        assert materialize(e2e_remote_only.twice(21)) == 42

        conn.unpatch_module("e2e_remote_only")
        assert "e2e_remote_only" not in sys.modules  # it was absent before
        assert is_proxy(sys.modules["os"])
        conn.unpatch_module("e2e_remote_only")  # a no-op now
        conn.unpatch_all()
        assert sys.modules["os"] is real_os
        with pytest.raises(ImportError):
            import e2e_remote_only  # noqa: F401,F811
        # the module proxy still works: unpatching only touches sys.modules
        assert materialize(e2e_remote_only.twice(1)) == 2
    finally:
        conn.unpatch_all()
        sys.modules["os"] = real_os
        conn.execute("import os\nos.remove('e2e_remote_only.py')")


def test_disconnect_and_context_manager(server: Any) -> None:
    host, port, token, _ = server
    real_os = sys.modules["os"]
    with simplerpc.connect(host, port, token) as c:
        assert not c.closed and "open" in repr(c)
        c.patch_module("os")
        getcwd = c.modules.os.getcwd
        assert materialize(c.eval("6 * 7")) == 42
    assert c.closed and "closed" in repr(c)
    assert sys.modules["os"] is real_os  # disconnect unpatched
    with pytest.raises(simplerpc.ConnectionClosedError):
        getcwd()
    with pytest.raises(simplerpc.ConnectionClosedError):
        c.eval("1")
    c.disconnect()  # idempotent

    c2 = simplerpc.connect(host, port, token)
    c2.disconnect()
    with pytest.raises(ConnectionError):  # ConnectionClosedError is a ConnectionError
        c2.modules.os


def test_env_vars_are_the_defaults(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    host, port, token, _ = server
    monkeypatch.setenv("SIMPLERPC_HOST", host)
    monkeypatch.setenv("SIMPLERPC_PORT", str(port))
    monkeypatch.setenv("SIMPLERPC_TOKEN", token)
    with simplerpc.connect() as c:
        assert materialize(c.eval("'from env'")) == "from env"
    # explicit arguments win over the environment
    monkeypatch.setenv("SIMPLERPC_PORT", "1")
    monkeypatch.setenv("SIMPLERPC_TOKEN", "not-the-token")
    with simplerpc.connect(host, port, token) as c:
        assert materialize(c.eval("1")) == 1
    with pytest.raises(simplerpc.AuthenticationError):
        simplerpc.connect(host, port)  # token from the environment: wrong
    monkeypatch.delenv("SIMPLERPC_TOKEN")
    with pytest.raises(ValueError, match="SIMPLERPC_TOKEN"):
        simplerpc.connect(host, port)


# ------------------------------------------------------------ calls and indexing


def test_calls_with_positional_and_keyword_args_proxies_and_arrays(conn: simplerpc.Connection) -> None:
    rnp = conn.modules.numpy
    x = rnp.arange(6).reshape(2, 3)  # a proxy
    y = np.full((2, 3), 10, dtype=np.int32)  # a local array
    assert materialize(rnp.add(x, y, dtype="float32")).tolist() == [[10.0, 11.0, 12.0], [13.0, 14.0, 15.0]]
    assert materialize(rnp.add(x, y, dtype="float32")).dtype == np.float32
    assert materialize(rnp.clip(x, np.int64(1), a_max=y - 6)).tolist() == [[1, 1, 2], [3, 4, 4]]
    stacked = materialize(rnp.concatenate([x, y], axis=0))  # a list of a proxy and an array
    assert stacked.shape == (4, 3) and stacked[2:].tolist() == y.tolist()

    conn.execute(
        "def describe(*args, **kwargs):\n"
        "    def d(v):\n"
        "        if isinstance(v, list):\n"
        "            return [d(i) for i in v]\n"
        "        if isinstance(v, tuple):\n"
        "            return tuple(d(i) for i in v)\n"
        "        if isinstance(v, dict):\n"
        "            return {k: d(i) for k, i in v.items()}\n"
        "        return type(v).__name__\n"
        "    return d(list(args)), d(kwargs)\n"
    )
    args, kwargs = materialize(
        conn.eval("describe")(x, y, 3, "s", b"b", None, 1.5, True, [x, (y, 2)], p=x, q=y, r={"inner": x, "n": [y]})
    )
    assert args == [
        "ndarray", "ndarray", "int", "str", "bytes", "NoneType", "float", "bool", ["ndarray", ("ndarray", "int")]
    ]  # the tuple arrives a tuple (the tuple extension)
    assert kwargs == {"p": "ndarray", "q": "ndarray", "r": {"inner": "ndarray", "n": ["ndarray"]}}
    # the proxy resolves to the very object on the server
    same = conn.eval("lambda a, b: a is b")
    assert materialize(same(x, b=x)) is True


def test_a_proxy_of_another_connection_is_refused(conn: simplerpc.Connection, server: Any) -> None:
    host, port, token, _ = server
    with simplerpc.connect(host, port, token) as other:
        foreign = other.eval("[1, 2]")
        with pytest.raises(ValueError, match="another connection"):
            conn.builtins.len(foreign)
        assert materialize(conn.builtins.len([1])) == 1


def test_getitem(conn: simplerpc.Connection) -> None:
    local = np.arange(60).reshape(3, 4, 5)
    remote = conn.modules.numpy.arange(60).reshape(3, 4, 5)
    keys: List[Any] = [
        1,
        -1,
        np.int64(2),
        slice(1, None),
        slice(None, None, -1),
        slice(None, None, 2),
        (1, 2),
        (1, 2, 3),
        (-1, -2, -3),
        (slice(None), 1),
        (slice(0, 2), slice(None, None, 2), -1),
        (0, slice(1, 3)),
        (None, 0),
        [0, 2],  # a list: numpy fancy indexing
    ]
    for key in keys:
        got = materialize(remote[key])
        assert np.array_equal(got, local[key]), key
        assert np.shape(got) == np.shape(local[key]), key
    # a proxy as the key
    assert materialize(remote[conn.eval("2")]).tolist() == local[2].tolist()

    d = conn.eval("{'k': 1, 2: 'two', (1, 2): 'tuple', b'b': 'bytes', None: 'none'}")
    assert materialize(d["k"]) == 1
    assert materialize(d[2]) == "two"
    assert materialize(d[1, 2]) == "tuple"
    assert materialize(d[(1, 2)]) == "tuple"
    assert materialize(d[b"b"]) == "bytes"
    assert materialize(d[None]) == "none"
    assert materialize(conn.eval("'hello'")[1:4]) == "ell"
    assert materialize(conn.eval("[0, 1, 2, 3, 4]")[::-2]) == [4, 2, 0]
    assert materialize(conn.eval("[[0, 1], [2, 3]]")[1][0]) == 2


def test_path_trails_are_cores(conn: simplerpc.Connection) -> None:
    """Trails come from core (srpc_trail), the same as the Rust client writes them."""
    np_ = conn.modules.numpy
    grid = np_.arange(6).reshape(2, 3)
    assert grid._rpc_path == "numpy.arange().reshape()"
    assert grid[1, ::2]._rpc_path == "numpy.arange().reshape()[1, ::2]"
    assert grid[[1, 0]]._rpc_path == "numpy.arange().reshape()[[1, 0]]"
    assert conn.eval("{'k': 1}")["k"]._rpc_path == "eval(\"{'k': 1}\")['k']"
    assert conn.builtins.len._rpc_path == "builtins.len"
    assert materialize(grid[1, 2]) == 5


# ------------------------------------------------------------ errors


REMOTE_ERRORS: List[Any] = [
    # Pipelined: an operation's error is raised by the wait that needs it.
    (ZeroDivisionError, lambda c: materialize(c.eval("1 / 0")), "division by zero"),
    (KeyError, lambda c: materialize(c.eval("{'a': 1}")["missing"]), "missing"),
    (AttributeError, lambda c: materialize(c.modules.os.no_such_attribute), "no_such_attribute"),
    (ModuleNotFoundError, lambda c: c.modules.no_such_module_e2e, "no_such_module_e2e"),  # eager
    (TypeError, lambda c: materialize(c.builtins.len(5)), "int"),
    (ValueError, lambda c: materialize(c.builtins.int("abc")), "abc"),
    (IndexError, lambda c: materialize(c.eval("[1]")[5]), "index"),
    (NameError, lambda c: materialize(c.eval("undefined_name_e2e")), "undefined_name_e2e"),
    (SyntaxError, lambda c: c.execute("def ("), ""),
]


@pytest.mark.parametrize("etype, action, text", REMOTE_ERRORS, ids=[e[0].__name__ for e in REMOTE_ERRORS])
def test_remote_exceptions(conn: simplerpc.Connection, etype: type, action: Callable[..., Any], text: str) -> None:
    with pytest.raises(etype) as info:
        action(conn)
    exc = info.value
    assert isinstance(exc, RemoteException) and isinstance(exc, etype)
    assert exc.exception_type == f"builtins.{etype.__name__}"
    assert str(exc).startswith(f"builtins.{etype.__name__}: ")
    assert text in str(exc)
    assert exc.remote_traceback and "Traceback (most recent call last)" in exc.remote_traceback
    assert etype.__name__ in exc.remote_traceback
    assert "Remote traceback" in str(exc)
    # raised from an instance of the original type
    assert isinstance(exc.__cause__, etype) and not isinstance(exc.__cause__, RemoteException)
    # the connection is still usable
    assert materialize(conn.eval("1 + 1")) == 2


def test_remote_exception_of_a_type_only_the_server_has(conn: simplerpc.Connection) -> None:
    conn.execute("class E2EError(ValueError):\n    pass\n")
    with pytest.raises(RemoteException) as info:
        conn.execute("raise E2EError('custom message')")
    exc = info.value
    assert exc.exception_type.endswith("E2EError")
    assert "custom message" in str(exc) and "E2EError" in exc.remote_traceback
    assert not isinstance(exc, ValueError)  # the type is unknown here: plain RemoteException
    assert materialize(conn.eval("2")) == 2


def test_allow_pickle_unpickles_the_original_exception(server: Any) -> None:
    host, port, token, _ = server
    with simplerpc.connect(host, port, token, allow_pickle=True) as c:
        with pytest.raises(KeyError) as info:
            materialize(c.eval("{}")["missing"])
        assert isinstance(info.value, RemoteException)
        assert type(info.value.__cause__) is KeyError and info.value.__cause__.args == ("missing",)


def test_object_arrays_are_refused(conn: simplerpc.Connection) -> None:
    # sending: refused locally, before anything is sent
    with pytest.raises(TypeError, match="dtype object") as info:
        conn.builtins.len(np.array([1, "a", None], dtype=object))
    assert "pickle" in str(info.value)
    # receiving: the server refuses to encode it
    remote = conn.eval("__import__('numpy').array([1, 'a', None], dtype=object)")
    with pytest.raises(TypeError, match="dtype object") as info2:
        materialize(remote)
    assert isinstance(info2.value, RemoteException)
    assert materialize(conn.builtins.len(remote)) == 3  # still usable as a proxy
    assert materialize(conn.eval("1")) == 1


@pytest.mark.parametrize(
    "expr, name",
    [
        ("__import__('os')", "module"),
        ("lambda: 1", "function"),
        ("object()", "object"),
        ("{1, 2}", "set"),
        ("(i for i in range(3))", "generator"),
    ],
)
def test_unserializable_values_name_the_problem(conn: simplerpc.Connection, expr: str, name: str) -> None:
    with pytest.raises(TypeError) as info:
        materialize(conn.eval(expr))
    assert isinstance(info.value, RemoteException)
    assert f"cannot materialize an object of type '{name}': it has no wire form; keep it remote" in str(info.value)
    assert materialize(conn.eval("'still here'")) == "still here"


def test_unserializable_arguments_name_the_problem(conn: simplerpc.Connection) -> None:
    with pytest.raises(TypeError, match="cannot send an object of type 'function': it has no wire form; send a function with conn.teleport"):
        conn.builtins.callable(lambda: 1)
    with pytest.raises(TypeError, match=r"cannot send an object of type 'set': it has no wire form; send a list of its items"):
        conn.builtins.len({1, 2})
    assert materialize(conn.builtins.len((1, 2))) == 2


# ------------------------------------------------------------ clients and sessions


def test_two_clients_have_isolated_globals(server: Any) -> None:
    host, port, token, _ = server
    with simplerpc.connect(host, port, token) as a, simplerpc.connect(host, port, token) as b:
        a.execute("x = 'a'")
        with pytest.raises(NameError):
            materialize(b.eval("x"))
        b.execute("x = 'b'\nimport json")
        assert materialize(a.eval("x")) == "a" and materialize(b.eval("x")) == "b"
        assert "json" in b.namespace and "json" not in a.namespace
        sq = main_function("def sq(v):\n    return v * v\n", "sq")
        a.teleport(sq)
        with pytest.raises(NameError):
            materialize(b.eval("sq"))


def test_a_slow_call_does_not_block_another_client(server: Any) -> None:
    host, port, token, _ = server
    slow_conn = simplerpc.connect(host, port, token)
    fast_conn = simplerpc.connect(host, port, token)
    events: List[str] = []
    outcome: Dict[str, Any] = {}

    def slow() -> None:
        try:
            outcome["result"] = materialize(slow_conn.modules.time.sleep(3))
        except BaseException as e:  # reported below
            outcome["error"] = e
        events.append("slow call returned")

    sleep_thread = threading.Thread(target=slow)
    try:
        sleep_thread.start()
        wait_until_running(fast_conn, "time.sleep", sleep_thread)
        events.append("server is running the slow call")
        for i in range(10):
            assert materialize(fast_conn.builtins.len(list(range(i)))) == i
            assert materialize(fast_conn.modules.numpy.arange(i).sum()) == sum(range(i))
        events.append("other client's calls done")
        # Asked after those calls: the slow call is still in progress on the server.
        assert executor_call_running(fast_conn, "time.sleep"), events
        events.append("slow call still running")
        sleep_thread.join(JOIN_GUARD)
        assert not sleep_thread.is_alive()
        assert outcome == {"result": None}
        assert events == [
            "server is running the slow call",
            "other client's calls done",
            "slow call still running",
            "slow call returned",
        ]
        assert not executor_call_running(fast_conn, "time.sleep")
    finally:
        sleep_thread.join(JOIN_GUARD)
        slow_conn.disconnect()
        fast_conn.disconnect()


def test_wrong_token_is_an_authentication_error(server: Any) -> None:
    host, port, token, _ = server
    for bad in ("wrong-token", token[:-1], token + "x"):
        with pytest.raises(simplerpc.AuthenticationError) as info:
            simplerpc.connect(host, port, bad)
        assert isinstance(info.value, ConnectionError)
    with simplerpc.connect(host, port, token) as c:  # the server is fine
        assert materialize(c.eval("1")) == 1


def test_server_killed_mid_call(start_server: Any) -> None:
    with start_server(clean_exit=False) as srv:
        host, port, token, proc = srv
        victim = simplerpc.connect(host, port, token)
        watcher = simplerpc.connect(host, port, token)
        outcome: Dict[str, Any] = {}

        def sleeper() -> None:
            try:
                materialize(victim.modules.time.sleep(30))
                outcome["result"] = "returned"
            except BaseException as e:
                outcome["error"] = e

        t = threading.Thread(target=sleeper)
        t.start()
        try:
            wait_until_running(watcher, "time.sleep", t)
            proc.send_signal(signal.SIGKILL)
            proc.wait(JOIN_GUARD)
            t.join(JOIN_GUARD)  # hang guard: the error must come long before the 30 s sleep ends
            assert not t.is_alive(), "the call did not notice that the server died"
            error = outcome.get("error")
            assert isinstance(error, ConnectionError), outcome
            assert isinstance(error, simplerpc.ConnectionClosedError), repr(error)
            # later calls raise too, on both connections
            for c in (victim, watcher):
                with pytest.raises(ConnectionError):
                    materialize(c.eval("1"))
                with pytest.raises(ConnectionError):
                    c.modules.os
            with pytest.raises(ConnectionError):
                simplerpc.connect(host, port, token)
        finally:
            t.join(JOIN_GUARD)
            victim.disconnect()
            watcher.disconnect()
        assert proc.returncode == -signal.SIGKILL


def test_garbage_frames_get_protocol_errors_and_the_server_keeps_serving(
    conn: simplerpc.Connection, server: Any
) -> None:
    try:
        from websockets.sync.client import connect as ws_connect
    except ImportError:  # pragma: no cover - installed with simplerpyc
        pytest.fail("this test needs the `websockets` package (installed with simplerpyc==0.0.1a3)")
    host, port, token, proc = server
    frames = [
        b"\xc1 not msgpack at all",
        b"",
        msgpack.packb([1, 2, 3]),
        msgpack.packb({"type": "no_such_request"}),
        msgpack.packb({"type": "call"}),
        msgpack.packb({"type": "eval", "expr": 5}),
        msgpack.packb({"no": "type"}),
        msgpack.packb({"type": "eval", "expr": "1"}) + b"trailing",
        "a text frame",
    ]
    with ws_connect(f"ws://{host}:{port}/?token={token}", max_size=None) as ws:
        for frame in frames:
            ws.send(frame)
            reply = msgpack.unpackb(ws.recv(timeout=JOIN_GUARD), raw=False, strict_map_key=False)
            assert reply["type"] == "error", (frame, reply)
            assert reply["exception_type"] == "simplerpc.ProtocolError", (frame, reply)
            message = reply["exception_message"]
            assert message and ("malformed" in message or "Unknown message type" in message), (frame, reply)
        # the same socket still works
        ws.send(msgpack.packb({"type": "eval", "expr": "6 * 7"}))
        ok = msgpack.unpackb(ws.recv(timeout=JOIN_GUARD), raw=False)
        assert ok["type"] == "success" and isinstance(ok["obj_id"], int)
        ws.send(msgpack.packb({"type": "materialize", "obj_id": ok["obj_id"]}))
        assert msgpack.unpackb(ws.recv(timeout=JOIN_GUARD), raw=False) == {"type": "success", "value": 42}
    # and so do the others
    assert proc.poll() is None
    assert materialize(conn.eval("'alive'")) == "alive"
    with simplerpc.connect(host, port, token) as c:
        assert materialize(c.eval("1")) == 1


def test_a_request_past_its_timeout_raises_and_closes(server):
    host, port, token = server[0], server[1], server[2]
    conn = simplerpc.connect(host, port, token=token, timeout=0.3)
    try:
        assert simplerpc.materialize(conn.eval("1 + 1")) == 2
        with pytest.raises(simplerpc.RequestTimeoutError) as e:
            materialize(conn.modules.time.sleep(2))
        assert isinstance(e.value, TimeoutError)
        with pytest.raises(simplerpc.ConnectionClosedError):
            materialize(conn.eval("1"))
    finally:
        conn.disconnect()
    with pytest.raises(ValueError):
        simplerpc.connect(host, port, token=token, timeout=0)
