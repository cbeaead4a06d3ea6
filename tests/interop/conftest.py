"""Fixtures that start servers written in other languages as real processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _start(cmd: List[str], patterns: Tuple[str, str], stdin: bool = False) -> Tuple[subprocess.Popen, int, str]:
    """Start `cmd`, read its stdout until both the port and the token appear."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE if stdin else None, text=True)
    port = token = None
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    while time.monotonic() < deadline and (port is None or token is None):
        line = proc.stdout.readline()
        if not line:
            break
        # The token goes in export lines, never in a URL (shell histories
        # and logs keep URLs).
        if "token=" in line:
            proc.kill()  # not left serving after the failed assertion
            proc.wait()
            raise AssertionError(f"{cmd[0]} printed its token in a URL: {line!r}")
        m = re.search(patterns[0], line)
        if m:
            port = int(m.group(1))
        m = re.search(patterns[1], line)
        if m:
            token = m.group(1)
    if port is None or token is None:
        proc.kill()
        err = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"{cmd[0]} did not start: {err[-2000:]}")
    return proc, port, token


def _binary(env: str, default: Path) -> str:
    path = Path(os.environ.get(env, default))
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/test.sh (it builds it), or set {env}")
    return str(path)


@pytest.fixture(scope="module")
def rust_server() -> Iterator[Tuple[int, str, subprocess.Popen]]:
    """The Rust registry example server (`cargo run --example sim_server`)."""
    exe = _binary("SIMPLERPC_SIM_SERVER", ROOT / "target" / "debug" / "examples" / "sim_server")
    proc, port, token = _start([exe, "--host", "127.0.0.1", "--port", "0"], (r"SIMPLERPC_PORT='(\d+)'", r"SIMPLERPC_TOKEN='([^']+)'"))
    yield port, token, proc
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def py_server() -> Iterator[Tuple[int, str, subprocess.Popen]]:
    """The Rust host serving Python objects with PyExecutor (example
    `py_server` of bindings/python/pyexec, built with `--features pyo3`)."""
    import site

    exe = _binary("SIMPLERPC_PY_SERVER", ROOT / "target" / "debug" / "examples" / "py_server")
    # The embedded interpreter imports simplerpc, numpy and dill from this venv.
    paths = site.getsitepackages() + [p for p in sys.path if p.endswith("site-packages")]
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    try:
        proc, port, token = _start([exe, "--host", "127.0.0.1", "--port", "0"], (r"SIMPLERPC_PORT='(\d+)'", r"SIMPLERPC_TOKEN='([^']+)'"))
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old
    yield port, token, proc
    proc.terminate()
    proc.wait(timeout=20)


def _c_server(name: str) -> Iterator[Tuple[int, str, subprocess.Popen]]:
    exe = _binary("SIMPLERPC_C_BIN", ROOT / "target" / "c" / name) if "SIMPLERPC_C_BIN" not in os.environ else str(Path(os.environ["SIMPLERPC_C_BIN"]) / name)
    cmd = [exe]
    if os.environ.get("SIMPLERPC_NO_VALGRIND") != "1":
        cmd = ["valgrind", "--quiet", "--leak-check=full", "--show-leak-kinds=definite,indirect",
               "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=9"] + cmd
    proc, port, token = _start(cmd, (r"^PORT (\d+)", r"^TOKEN (\S+)"), stdin=True)
    yield port, token, proc
    assert proc.stdin is not None
    proc.stdin.write("stop\n")
    proc.stdin.flush()
    rc = proc.wait(timeout=120)
    err = proc.stderr.read() if proc.stderr else ""
    assert rc == 0, f"{name} exited {rc} (valgrind errors or leaks?):\n{err[-4000:]}"


@pytest.fixture(scope="module")
def c_server() -> Iterator[Tuple[int, str, subprocess.Popen]]:
    """examples/c/matrix_server.c, run under valgrind: exits non-zero on leaks or bad memory use."""
    yield from _c_server("matrix_server")


@pytest.fixture(scope="module")
def faulty_server() -> Iterator[Tuple[int, str, subprocess.Popen]]:
    """tests/c/faulty_server.c (an executor that breaks its contract), under valgrind."""
    yield from _c_server("faulty_server")


def stock_python() -> str:
    """A python that has the stock simplerpyc (the test command installs it)."""
    try:
        import simplerpyc  # noqa: F401
    except ImportError:
        pytest.fail("simplerpyc is not installed in this venv: run scripts/test.sh, which installs simplerpyc==0.0.1a3")
    return sys.executable
