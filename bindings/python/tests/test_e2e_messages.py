"""End to end: what a user reads when something goes wrong, against real servers.

Every failure a Python user meets raises a public class (``simplerpc.X`` for
``type(e).__module__ == "simplerpc"``, or a builtin) with a message that says
what to do and names no Rust or C API item; a value without wire form raises
one clear error; a remote traceback starts at the user's code. And the
server reads its own settings, never the clients' ``SIMPLERPC_*``.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import traceback
from typing import Any, Dict, Iterator, List

import pytest

import simplerpc
from simplerpc import RemoteException, materialize

# What no message a Python user reads may contain: Rust paths, Rust or C
# API names, the library's enum variants.
API_NAMES = re.compile(r"::|ClientConfig|ServerConfig|\bsrpc_|SRPC_|Srpc[A-Z]|Error::")
STARTUP_TIMEOUT = 60.0
TRACEBACK_FILE = re.compile(r'^\s*File "([^"]+)", line \d+, in (\S+)', re.M)


def free_port() -> int:
    """A port nothing listens on (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chain(e: BaseException) -> List[BaseException]:
    """``e`` and every exception a traceback would show with it."""
    seen: List[BaseException] = []
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)  # type: ignore[assignment]
    return seen


def assert_public(e: BaseException, name: str) -> None:
    """``e`` is ``simplerpc.<name>``, reachable under that name; every class
    a traceback of it shows is public; its text names no Rust or C API."""
    assert type(e).__module__ == "simplerpc" and type(e).__name__ == name, type(e)
    assert getattr(simplerpc, name) is type(e)
    for shown in chain(e):
        module = type(shown).__module__
        assert module in ("simplerpc", "builtins"), f"{module}.{type(shown).__qualname__} escapes to the user"
        if module == "simplerpc":
            assert getattr(simplerpc, type(shown).__name__) is type(shown)
    text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    assert not API_NAMES.search(str(e)), str(e)
    assert "_native.Native" not in text


# ------------------------------------------------------------ the connection family


def test_the_connection_family_is_public_and_builtin_too() -> None:
    family = simplerpc.ConnectionError
    assert family.__module__ == "simplerpc" and issubclass(family, builtins.ConnectionError)
    assert issubclass(family, simplerpc.SimpleRPCError)
    for name, also in [
        ("ConnectionRefusedError", builtins.ConnectionRefusedError),
        ("AuthenticationError", builtins.ConnectionError),
        ("ConnectionClosedError", builtins.ConnectionError),
        ("ConnectTimeoutError", builtins.TimeoutError),
        ("RequestTimeoutError", builtins.TimeoutError),
    ]:
        cls = getattr(simplerpc, name)
        assert cls.__module__ == "simplerpc", name
        assert issubclass(cls, family) and issubclass(cls, also), name
    # A star import does not shadow the builtins.
    assert "ConnectionError" not in simplerpc.__all__ and "ConnectionRefusedError" not in simplerpc.__all__


def test_wrong_token(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    host, port, token, _ = server
    with pytest.raises(simplerpc.AuthenticationError) as info:
        simplerpc.connect(host, port, "not-the-token")
    e = info.value
    assert_public(e, "AuthenticationError")
    assert isinstance(e, simplerpc.ConnectionError) and isinstance(e, builtins.ConnectionError)
    assert str(e).startswith(f"the server at {host}:{port} refused the token: use the token the server printed")
    assert "connect(token=...)" in str(e)
    # From the environment: the message says so (another server's export?).
    monkeypatch.setenv("SIMPLERPC_TOKEN", "another-servers-token")
    with pytest.raises(simplerpc.AuthenticationError, match=r"came from \$SIMPLERPC_TOKEN, which may be another server's") as info:
        simplerpc.connect(host, port)
    assert_public(info.value, "AuthenticationError")


def test_nothing_listening_is_connection_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    with pytest.raises(simplerpc.ConnectionRefusedError) as info:
        simplerpc.connect("127.0.0.1", port, "t")
    e = info.value
    assert_public(e, "ConnectionRefusedError")
    assert isinstance(e, builtins.ConnectionRefusedError) and isinstance(e, simplerpc.ConnectionError)
    assert e.errno == errno.ECONNREFUSED
    assert str(e) == f"nothing listens on 127.0.0.1:{port} (connection refused): is the server running, on that port?"
    # Host and port from the environment: the message says where they came from.
    monkeypatch.setenv("SIMPLERPC_HOST", "127.0.0.1")
    monkeypatch.setenv("SIMPLERPC_PORT", str(port))
    with pytest.raises(builtins.ConnectionRefusedError) as info:
        simplerpc.connect(token="t")
    assert str(info.value).startswith(f"nothing listens on 127.0.0.1:{port} (connection refused)")
    assert f"(host 127.0.0.1 from $SIMPLERPC_HOST, port {port} from $SIMPLERPC_PORT: pass connect(host, port)" in str(info.value)
    assert_public(info.value, "ConnectionRefusedError")
    assert info.value.errno == errno.ECONNREFUSED
    monkeypatch.delenv("SIMPLERPC_HOST")
    with pytest.raises(simplerpc.ConnectionRefusedError, match=rf"\(host localhost by default, port {port} from \$SIMPLERPC_PORT"):
        simplerpc.connect(token="t")
    with pytest.raises(ValueError, match=r"port 70000 \(from the argument\) is not a port number \(1-65535\)"):
        simplerpc.connect("127.0.0.1", 70000, "t")


def test_a_silent_listener_is_a_connect_timeout() -> None:
    with socket.socket() as silent:  # accepts TCP (its backlog), never answers the upgrade
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with pytest.raises(TimeoutError) as info:
            simplerpc.connect("127.0.0.1", port, "t", timeout=0.2)
    e = info.value
    assert_public(e, "ConnectTimeoutError")
    assert isinstance(e, simplerpc.ConnectionError)
    assert str(e).startswith(f"connecting to 127.0.0.1:{port} took longer than 200ms")
    assert "is the address right, and the server running?" in str(e)


def test_a_request_past_its_timeout(server: Any) -> None:
    host, port, token, _ = server
    conn = simplerpc.connect(host, port, token, timeout=0.3)
    try:
        with pytest.raises(simplerpc.RequestTimeoutError) as info:
            materialize(conn.modules.time.sleep(5))
    finally:
        conn.disconnect()
    e = info.value
    assert_public(e, "RequestTimeoutError")
    assert isinstance(e, builtins.TimeoutError) and isinstance(e, simplerpc.ConnectionError)
    assert str(e) == "the server did not answer within 300ms; the connection was closed, connect again (the timeout=... given to connect() or spawn() sets the limit)"


def test_a_server_gone_is_connection_closed(start_server: Any) -> None:
    with start_server() as srv:
        conn = simplerpc.connect(srv.host, srv.port, srv.token)
        assert materialize(conn.eval("1")) == 1
        srv.proc.send_signal(signal.SIGINT)
        srv.proc.wait(30)
    with pytest.raises(simplerpc.ConnectionClosedError) as info:
        materialize(conn.eval("2"))
    e = info.value
    assert_public(e, "ConnectionClosedError")
    assert str(e).startswith("the connection to the server is closed (")
    assert str(e).endswith("connect again")
    conn.disconnect()
    with pytest.raises(simplerpc.ConnectionClosedError, match="the connection is closed") as info:
        conn.eval("3")
    assert_public(info.value, "ConnectionClosedError")


# ------------------------------------------------------------ values without wire form


@pytest.mark.parametrize(
    "expr, name, hint",
    [
        ("open(__import__('os').devnull)", "TextIOWrapper", "materialize(p.read())"),
        ("lambda x: x", "function", "call it through the proxy instead, e.g. materialize(p(...))"),
        ("__import__('threading').Lock()", "lock", "materialize(conn.builtins.str(p))"),
        ("(i for i in range(3))", "generator", "materialize(conn.builtins.list(p))"),
        ("{'f': len}", "builtin_function_or_method", "call it through the proxy"),
    ],
)
def test_materializing_a_value_without_wire_form(conn: simplerpc.Connection, expr: str, name: str, hint: str) -> None:
    proxy = conn.eval(expr)
    with pytest.raises(TypeError) as info:
        materialize(proxy)
    e = info.value
    assert isinstance(e, RemoteException)
    assert_public(e, f"Remote{TypeError.__name__}")
    inside = " (inside the dict)" if expr.startswith("{") else ""
    expected = f"cannot materialize an object of type {name!r}{inside}: it has no wire form; keep it remote (use the proxy) or "
    assert e.args[0].startswith(f"builtins.TypeError: {expected}"), e.args[0]
    assert hint in e.args[0]
    # The remote traceback: that one error, no frame of the packer or the package.
    assert e.remote_traceback.endswith(f"TypeError: {e.args[0][len('builtins.TypeError: '):]}\n")
    assert "File " not in e.remote_traceback and "msgpack" not in e.remote_traceback
    # The object is still there, usable through its proxy.
    assert isinstance(materialize(conn.builtins.repr(proxy)), str)


@pytest.mark.parametrize(
    "make, name, hint",
    [
        (lambda: open(os.devnull), "TextIOWrapper", "send its contents (f.read()), or open it on the server (conn.builtins.open(...))"),
        (lambda: (lambda x: x), "function", "send a function with conn.teleport(f), or pass a proxy of a remote one"),
        (lambda: threading.Lock(), "lock", "send None, bool, int, float, str, bytes, lists, dicts, numpy arrays or proxies instead"),
        (lambda: (i for i in range(3)), "generator", "send a list of its items instead (list(x))"),
    ],
)
def test_sending_an_argument_without_wire_form(conn: simplerpc.Connection, make: Any, name: str, hint: str) -> None:
    value = make()
    try:
        for send in (lambda: conn.builtins.repr(value), lambda: conn.builtins.repr(x=[value]), lambda: conn.eval("{}")[value]):
            with pytest.raises(TypeError) as info:
                send()
            e = info.value
            assert type(e) is TypeError
            assert str(e) == f"cannot send an object of type {name!r}: it has no wire form; {hint}"
            assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__)  # not the packer's error again
            text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            assert "msgpack" not in text and "_serialization" not in text, text
    finally:
        if hasattr(value, "close"):
            value.close()
    assert materialize(conn.builtins.len([1, 2])) == 2  # the connection is fine


# ------------------------------------------------------------ remote tracebacks


def user_module_function(conn: simplerpc.Connection, tmp_path: Any) -> Any:
    """A function of a real file, sent by value (as if defined in a script)."""
    path = tmp_path / "user_code.py"
    path.write_text("def inner(x):\n    return 1 / x\n\n\ndef outer(x):\n    return inner(x) + 1\n")
    ns: Dict[str, Any] = {"__name__": "__main__"}
    exec(compile(path.read_text(), str(path), "exec"), ns)
    return conn.teleport(ns["outer"]), str(path)


def frames(tb: str) -> List[Any]:
    return TRACEBACK_FILE.findall(tb)


def test_an_array_arriving_where_numpy_is_missing_says_what_to_do(server: Any) -> None:
    # `pip install ./bindings/python` alone brings no numpy; the Quick start's
    # first materialize then needs it. (numpy is hidden from the child with
    # sys.modules["numpy"] = None, which makes `import numpy` fail.)
    code = (
        "import sys; sys.modules['numpy'] = None\n"
        "import simplerpc\n"
        f"c = simplerpc.connect({server.host!r}, {server.port}, {server.token!r})\n"
        "assert simplerpc.materialize(c.eval('[1, 2]')) == [1, 2]\n"
        "try:\n"
        "    simplerpc.materialize(c.eval('__import__(\"numpy\").arange(3)'))\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "numpy is not installed" in done.stdout and "pip install numpy" in done.stdout, done.stdout


def test_remote_tracebacks_start_at_the_users_code(conn: simplerpc.Connection, tmp_path: Any) -> None:
    remote, path = user_module_function(conn, tmp_path)
    with pytest.raises(ZeroDivisionError) as info:
        materialize(remote(0))
    tb = info.value.remote_traceback
    assert tb.startswith("Traceback (most recent call last):\n"), tb
    assert frames(tb) == [(path, "outer"), (path, "inner")], tb
    assert tb.endswith("ZeroDivisionError: division by zero\n")
    assert "simplerpc" not in tb and "msgpack" not in tb

    # Code given to eval and execute: its first frame is the string's.
    with pytest.raises(ZeroDivisionError) as info:
        materialize(conn.eval("1 / 0"))
    assert frames(info.value.remote_traceback) == [("<string>", "<module>")]
    with pytest.raises(NameError) as info:
        conn.execute("x = 1\nundefined_name\n")
    assert frames(info.value.remote_traceback) == [("<string>", "<module>")]

    # Chained exceptions: each part starts at the user's code.
    conn.execute(
        "def chained():\n"
        "    try:\n"
        "        {}['k']\n"
        "    except KeyError as e:\n"
        "        raise ValueError('bad') from e\n"
    )
    with pytest.raises(ValueError) as info:
        materialize(conn.eval("chained")())
    tb = info.value.remote_traceback
    assert "KeyError: 'k'" in tb and "direct cause" in tb and tb.endswith("ValueError: bad\n")
    assert [f for f in frames(tb)] == [("<string>", "chained"), ("<string>", "chained")], tb
    assert "simplerpc" not in tb


def test_an_import_traceback_starts_at_the_users_module(conn: simplerpc.Connection) -> None:
    # A module in the server's working directory (on its sys.path) that fails on import.
    name = "user_module_that_fails_on_import"
    conn.execute(
        f"import importlib, os\n"
        f"with open({name + '.py'!r}, 'w') as f:\n"
        f"    f.write('x = 1\\nraise RuntimeError(\"at import\")\\n')\n"
        f"importlib.invalidate_caches()\n"
        f"path = os.path.abspath({name + '.py'!r})\n"
    )
    path = materialize(conn.eval("path"))
    try:
        with pytest.raises(RuntimeError) as info:
            conn.modules[name]
        assert frames(info.value.remote_traceback) == [(path, "<module>")], info.value.remote_traceback
        with pytest.raises(ModuleNotFoundError) as info:
            conn.modules.no_such_module_anywhere
        tb = info.value.remote_traceback
        assert tb == "Traceback (most recent call last):\nModuleNotFoundError: No module named 'no_such_module_anywhere'\n", tb
    finally:
        conn.execute("os.remove(path)")


def test_an_operation_the_client_asked_for_keeps_the_reference_format(conn: simplerpc.Connection) -> None:
    # No user frame at all (the client's own d["missing"]): the header and the error.
    with pytest.raises(KeyError) as info:
        materialize(conn.eval("{}")["missing"])
    assert info.value.remote_traceback == "Traceback (most recent call last):\nKeyError: 'missing'\n"
    assert info.value.exception_type == "builtins.KeyError"


def test_remote_error_classes_are_reachable_by_name(conn: simplerpc.Connection) -> None:
    import pickle

    with pytest.raises(KeyError) as info:
        materialize(conn.eval("{}")["missing"])
    e = info.value
    assert_public(e, "RemoteKeyError")
    assert isinstance(e, simplerpc.RemoteKeyError) and isinstance(e, KeyError)
    again = pickle.loads(pickle.dumps(e))
    assert type(again) is type(e)
    with pytest.raises(AttributeError):
        simplerpc.RemoteNoSuchThing  # noqa: B018


# ------------------------------------------------------------ the server's own settings


@contextlib.contextmanager
def run_server(args: List[str], env: Dict[str, str]) -> Iterator[Any]:
    """``python -m simplerpc.server ARGS`` with exactly ``env`` added to a
    clean environment; yields (port, token, everything printed up to the export lines)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SIMPLERPC_", "SIMPLERPYC_"))}
    clean.update(env, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "simplerpc.server", "--log-level", "WARNING", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=clean,
    )
    lines: List[str] = []
    done = threading.Event()
    found: Dict[str, str] = {}

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            m = re.search(r"export SIMPLERPC_(PORT|TOKEN)='([^']*)'", line)
            if m:
                found[m.group(1)] = m.group(2)
            if len(found) == 2:
                done.set()
        done.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        assert done.wait(STARTUP_TIMEOUT) and len(found) == 2, "".join(lines)
        yield int(found["PORT"]), found["TOKEN"], "".join(lines)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(5)
        if proc.stdout is not None:
            proc.stdout.close()


def test_the_server_ignores_the_clients_variables(server: Any) -> None:
    """A shell holding another server's exports: the new server takes
    neither its port nor its token, and says it ignored them."""
    host, port, token, _ = server
    other = {"SIMPLERPC_HOST": host, "SIMPLERPC_PORT": str(port), "SIMPLERPC_TOKEN": token}
    with run_server([], dict(other, SIMPLERPC_SERVER_HOST="127.0.0.1", SIMPLERPC_SERVER_PORT="0")) as (new_port, new_token, out):
        assert new_port != port and new_token != token
        assert re.search(r"host +127\.0\.0\.1 +\(from \$SIMPLERPC_SERVER_HOST\)", out), out
        assert re.search(rf"port +{new_port} +\(from \$SIMPLERPC_SERVER_PORT, 0: a free one\)", out), out
        assert "token  (generated: a fresh random one)" in out, out
        assert "SIMPLERPC_HOST, SIMPLERPC_PORT, SIMPLERPC_TOKEN in this environment are for clients: the server does not read them" in out, out
        with simplerpc.connect("127.0.0.1", new_port, new_token) as c:
            assert materialize(c.eval("'new server'")) == "new server"
        with pytest.raises(simplerpc.AuthenticationError):
            simplerpc.connect("127.0.0.1", new_port, token)  # the other server's token is not this one's


def test_the_server_settings_flags_then_variables_then_defaults() -> None:
    env = {"SIMPLERPC_SERVER_HOST": "localhost", "SIMPLERPC_SERVER_PORT": "1", "SIMPLERPC_SERVER_TOKEN": "from-the-variable"}
    with run_server(["--host", "127.0.0.1", "--port", "0"], env) as (port, token, out):
        assert token == "from-the-variable"
        assert re.search(r"host +127\.0\.0\.1 +\(from --host\)", out), out
        assert re.search(rf"port +{port} +\(from --port, 0: a free one\)", out), out
        assert "token  (from $SIMPLERPC_SERVER_TOKEN)" in out, out
        assert "for clients" not in out  # no client variable was set
        assert f"export SIMPLERPC_PORT='{port}'" in out and "export SIMPLERPC_TOKEN='from-the-variable'" in out
        with simplerpc.connect("127.0.0.1", port, "from-the-variable") as c:
            assert materialize(c.eval("2")) == 2


def test_a_bad_server_variable_is_named() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLERPC_")}
    run = subprocess.run(
        [sys.executable, "-m", "simplerpc.server"],
        env=dict(clean, SIMPLERPC_SERVER_PORT="eighty"),
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
    )
    assert run.returncode == 2
    assert "SIMPLERPC_SERVER_PORT: 'eighty' is not a port number (0-65535)" in run.stderr


def test_the_help_names_the_server_variables() -> None:
    out = subprocess.run([sys.executable, "-m", "simplerpc.server", "--help"], capture_output=True, text=True, check=True, timeout=STARTUP_TIMEOUT).stdout
    flat = " ".join(out.split())
    assert "(default: $SIMPLERPC_SERVER_HOST or localhost)" in flat
    assert "(default: $SIMPLERPC_SERVER_PORT or 8000)" in flat
    assert "(default: $SIMPLERPC_SERVER_TOKEN or a fresh random one)" in flat
    assert "never from the clients' SIMPLERPC_HOST/PORT/TOKEN" in flat
