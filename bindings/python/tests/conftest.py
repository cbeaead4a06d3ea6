"""Fixtures of the end-to-end tests: real server processes on 127.0.0.1, real sockets.

* ``server``: ``python -m simplerpc.server --host 127.0.0.1 --port 0`` in a
  subprocess (module scope), as ``(host, port, token, proc)``. At teardown it
  gets SIGINT (Ctrl-C) and must exit with status 0 within 15 s.
* ``reference_server``: the same with the stock ``python -m simplerpyc.server``.
* ``conn``: ``simplerpc.connect(host, port, token)`` to ``server``, closed after.
* ``start_server``: the factory behind both, for tests that need a server of
  their own (one they kill, one in another Python).
* ``arrays``: deterministic arrays of every numeric dtype, shared by the array
  tests and the numpy 1 <-> 2 tests (the maker is source text, so that a
  server or another Python can run the same code).

Only the standard library is imported here at module level: this file is
also loaded when the numpy<2 venv runs ``test_serialization.py`` alone.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence

import pytest

STARTUP_TIMEOUT = 60.0  # generous: a loaded 2-core machine building numpy imports
SHUTDOWN_TIMEOUT = 15.0
HOST = "127.0.0.1"

REFERENCE_MISSING = (
    "the stock reference server `simplerpyc` is not importable by {python}. The test "
    "command installs it (scripts/test.sh: `pip install simplerpyc==0.0.1a3` into .venv); "
    "install it into this venv with `{python} -m pip install simplerpyc==0.0.1a3`"
)


class Server(NamedTuple):
    """A running server process: unpacks as ``host, port, token, proc``."""

    host: str
    port: int
    token: str
    proc: subprocess.Popen

    @property
    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        return "".join(getattr(self.proc, "e2e_output", []))

    def rss(self) -> int:
        """The server's resident set size in bytes (VmRSS of /proc/<pid>/status)."""
        return self._status_bytes("VmRSS")

    def hwm(self) -> int:
        """The server's peak resident set size in bytes (VmHWM)."""
        return self._status_bytes("VmHWM")

    def _status_bytes(self, field: str) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    value, unit = line.split()[1:3]
                    assert unit == "kB", line
                    return int(value) * 1024
        raise AssertionError(f"no {field} in /proc/{self.proc.pid}/status")


def _child_env() -> Dict[str, str]:
    # Ours reads SIMPLERPC_SERVER_*, the reference SIMPLERPYC_* as defaults (token!): start them clean.
    # SIMPLERPC_NO_SPEEDUPS stays: the servers run with the accelerator or without, as the tests do.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMPLERPC_", "SIMPLERPYC_")) or k == "SIMPLERPC_NO_SPEEDUPS"}
    env["PYTHONUNBUFFERED"] = "1"  # the reference server prints without flushing
    return env


@contextlib.contextmanager
def _start_server(
    argv: Sequence[str],
    env_prefix: str = "SIMPLERPC",
    *,
    clean_exit: bool = True,
    cwd: Optional[str] = None,
) -> Iterator[Server]:
    """Run ``argv`` (a server printing ``export <PREFIX>_PORT='…'`` and ``_TOKEN``) until the block ends.

    At the end the server gets SIGINT and, with ``clean_exit``, must exit 0 within
    SHUTDOWN_TIMEOUT. A server the test already ended (killed) is only reaped.
    """
    port_re = re.compile(rf"export {env_prefix}_PORT='?(\d+)'?")
    token_re = re.compile(rf"export {env_prefix}_TOKEN='?([^'\s]+)'?")
    proc = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_child_env(),
        cwd=cwd,
    )
    lines: List[str] = []
    proc.e2e_output = lines  # type: ignore[attr-defined]
    found: Dict[str, str] = {}
    ready = threading.Event()

    def drain() -> None:
        # Read everything the server prints, always: a full pipe would block it.
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            for key, rx in (("port", port_re), ("token", token_re)):
                m = rx.search(line)
                if m and key not in found:
                    found[key] = m.group(1)
            if len(found) == 2:
                ready.set()
        ready.set()  # EOF: the server exited

    reader = threading.Thread(target=drain, name=f"drain-{proc.pid}", daemon=True)
    reader.start()
    try:
        if not ready.wait(STARTUP_TIMEOUT) or len(found) < 2:
            proc.kill()
            proc.wait(SHUTDOWN_TIMEOUT)
            pytest.fail(
                f"server {' '.join(argv)} did not print its {env_prefix}_PORT/{env_prefix}_TOKEN "
                f"export lines within {STARTUP_TIMEOUT:.0f} s (exit status {proc.returncode}); "
                f"it printed:\n{''.join(lines)}"
            )
        server = Server(HOST, int(found["port"]), found["token"], proc)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                reader.join(5)
                pytest.fail(
                    f"server {' '.join(argv)} did not stop within {SHUTDOWN_TIMEOUT:.0f} s of SIGINT; "
                    f"it printed:\n{''.join(lines)}"
                )
            reader.join(5)
            if clean_exit:
                assert proc.returncode == 0, (
                    f"server {' '.join(argv)} exited with status {proc.returncode} after SIGINT "
                    f"(expected a clean 0); it printed:\n{''.join(lines)}"
                )
        else:
            reader.join(5)
        if proc.stdout is not None:
            proc.stdout.close()


def simplerpc_server_argv(python: str = sys.executable) -> List[str]:
    return [python, "-m", "simplerpc.server", "--host", HOST, "--port", "0"]


def reference_server_argv(python: str = sys.executable) -> List[str]:
    return [python, "-m", "simplerpyc.server", "--host", HOST, "--port", "0"]


def require_reference() -> None:
    """Fail (never skip) when the stock simplerpyc is missing."""
    if importlib.util.find_spec("simplerpyc") is None:
        pytest.fail(REFERENCE_MISSING.format(python=sys.executable), pytrace=False)


class ServerFactory:
    """``start_server(...)``: a context manager running a server (see ``_start_server``)."""

    simplerpc_argv = staticmethod(simplerpc_server_argv)
    reference_argv = staticmethod(reference_server_argv)

    def __call__(self, argv: Optional[Sequence[str]] = None, env_prefix: str = "SIMPLERPC", **kw: Any) -> Any:
        return _start_server(argv or simplerpc_server_argv(), env_prefix, **kw)


@pytest.fixture(scope="session")
def start_server() -> ServerFactory:
    return ServerFactory()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Our server in a subprocess (cwd: a fresh temporary directory)."""
    cwd = str(tmp_path_factory.mktemp("server-cwd"))
    with _start_server(simplerpc_server_argv(), "SIMPLERPC", cwd=cwd) as s:
        yield s


@pytest.fixture(scope="module")
def reference_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The stock simplerpyc server (PyPI ``simplerpyc==0.0.1a3``) in a subprocess."""
    require_reference()
    cwd = str(tmp_path_factory.mktemp("reference-cwd"))
    with _start_server(reference_server_argv(), "SIMPLERPYC", cwd=cwd) as s:
        yield s


@pytest.fixture
def conn(server: Server) -> Iterator[Any]:
    import simplerpc

    c = simplerpc.connect(server.host, server.port, server.token)
    try:
        yield c
    finally:
        c.disconnect()


# ------------------------------------------------------------------ arrays

# Every numeric dtype, with both byte orders where there is one.
DTYPES: List[str] = ["|b1", "|i1", "|u1"] + [
    f"{order}{kind}{size}"
    for kind, sizes in (("i", (2, 4, 8)), ("u", (2, 4, 8)), ("f", (2, 4, 8)), ("c", (8, 16)))
    for size in sizes
    for order in "<>"
]

# Runs under numpy 1 and 2, locally, on a server (``conn.execute``) or in another Python.
MAKE_ARRAY_SOURCE = '''
def make_array(np, dtype, shape, seed=0):
    """A deterministic array of a numeric dtype, with the dtype's edge values in it."""
    dtype = np.dtype(dtype)
    n = 1
    for d in shape:
        n *= int(d)
    base = (np.arange(n, dtype=np.int64) * 37 + 11 + seed) % 101 - 50
    kind = dtype.kind
    if kind == "b":
        v = (base % 3 == 0).astype(dtype)
    elif kind in "iu":
        v = (base + 50 if kind == "u" else base).astype(dtype)
        if n >= 2:
            info = np.iinfo(dtype)
            v[0], v[-1] = info.min, info.max
    elif kind == "f":
        v = (base / 4.0).astype(dtype)
        if n >= 5:
            v[0], v[1], v[2], v[3] = np.nan, np.inf, -0.0, np.finfo(dtype).max
            v[4] = np.finfo(dtype).tiny
    elif kind == "c":
        v = (base / 4.0 + 1j * (base[::-1] / 8.0)).astype(dtype)
        if n >= 2:
            v[0] = complex(np.nan, np.inf)
            v[1] = complex(-0.0, np.finfo(dtype).max)
    else:
        raise ValueError("no maker for dtype " + dtype.str)
    return v.reshape(tuple(shape))
'''


class Arrays:
    """Helpers for array tests (a fixture: tests do not import conftest)."""

    dtypes = DTYPES
    source = MAKE_ARRAY_SOURCE

    def __init__(self) -> None:
        ns: Dict[str, Any] = {}
        exec(MAKE_ARRAY_SOURCE, ns)
        self._make: Callable[..., Any] = ns["make_array"]

    def make(self, dtype: str, shape: Sequence[int] = (3, 5), seed: int = 0) -> Any:
        import numpy as np

        return self._make(np, dtype, shape, seed)

    @staticmethod
    def assert_same(got: Any, want: Any) -> None:
        """Same type, dtype (with byte order), shape and bytes (NaN-safe), and a usable array."""
        import numpy as np

        assert type(got) is np.ndarray, f"got {type(got).__name__}: {got!r}"
        assert got.dtype.str == want.dtype.str, (got.dtype.str, want.dtype.str)
        assert got.shape == want.shape
        assert got.tobytes() == np.ascontiguousarray(want).tobytes()
        assert got.flags.writeable


@pytest.fixture(scope="session")
def arrays() -> Arrays:
    return Arrays()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # ``dtype_str``: one test per numeric dtype and byte order.
    if "dtype_str" in metafunc.fixturenames:
        metafunc.parametrize("dtype_str", DTYPES)


# ------------------------------------------------------------ a numpy<2 interpreter

NP1_ENV = "SIMPLERPC_NP1_PYTHON"
NP1_DEFAULT = "/tmp/v1/bin/python"
PACKAGE_DIGEST = (
    "import hashlib, pathlib, simplerpc; d = pathlib.Path(simplerpc.__file__).parent; "
    "print(hashlib.sha256(b''.join(p.name.encode() + p.read_bytes() for p in sorted(d.glob('*.py')))).hexdigest())"
)


@pytest.fixture(scope="session")
def np1_python() -> str:
    """The numpy<2 interpreter (``$SIMPLERPC_NP1_PYTHON``), checked: it must
    import numpy 1.x and the same simplerpc as this one."""
    timeout = 300
    python = os.environ.get(NP1_ENV) or NP1_DEFAULT
    how = (
        f'create it with: python3 -m venv /tmp/v1 && /tmp/v1/bin/pip install "numpy<2" dill msgpack pytest '
        f"./bindings/python (or point ${NP1_ENV} at such a python; scripts/test.sh makes .venv-np1)"
    )
    if not os.path.exists(python):
        pytest.fail(f"the numpy<2 Python {python} (${NP1_ENV}) does not exist; {how}", pytrace=False)
    probe = subprocess.run(
        [python, "-c", "import numpy, simplerpc, dill; print(numpy.__version__)"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if probe.returncode != 0:
        pytest.fail(
            f"{python} (${NP1_ENV}) cannot import numpy, simplerpc and dill:\n{probe.stderr}\n{how}", pytrace=False
        )
    version = probe.stdout.strip()
    # Both sides must run the same simplerpc Python code, or this tests a stale copy.
    theirs = subprocess.run([python, "-c", PACKAGE_DIGEST], capture_output=True, text=True, timeout=timeout).stdout.strip()
    ours = subprocess.run([sys.executable, "-c", PACKAGE_DIGEST], capture_output=True, text=True, timeout=timeout).stdout.strip()
    if theirs != ours:
        pytest.fail(
            f"the simplerpc package installed for {python} differs from this one ({sys.executable}): "
            f"reinstall it with `{python} -m pip install ./bindings/python`",
            pytrace=False,
        )
    if int(version.split(".")[0]) >= 2:
        pytest.fail(f"{python} (${NP1_ENV}) has numpy {version}, not numpy<2; {how}", pytrace=False)
    return python
