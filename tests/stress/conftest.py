"""Fixtures of the stress suite: real server processes on 127.0.0.1, sizes, guards.

Sizes: ``SIMPLERPC_STRESS`` unset (or ``ci``) runs the reduced sizes that
scripts/test.sh runs; ``SIMPLERPC_STRESS=full`` runs the full sizes (see
test_stress.py's docstring for the command and the figures).

Every process a test starts goes through :func:`spawn`, which

* makes the kernel SIGKILL it if the pytest process dies (``PR_SET_PDEATHSIG``,
  set by a small launcher that then ``exec``s the real command, so the pid is
  the real process's), and
* records it, so that the test's teardown kills (SIGCONT, then SIGKILL) and
  reaps whatever is still running, passed or failed.

Each test also runs under a watchdog (``faulthandler.dump_traceback_later``
with ``exit=True``): a test stuck past its limit prints every thread's stack
and ends the pytest process, whose children then die with it.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Sequence

import pytest

from support import FULL, HERE, HOST, MODE, ROOT, size

STARTUP_TIMEOUT = 60.0  # generous: a loaded 2-core machine importing numpy
SHUTDOWN_TIMEOUT = 15.0

# Per-test watchdog: past this the whole run ends with every thread's stack.
TEST_LIMIT = size(240.0, 1800.0)
_WATCHDOG_FILE: Any = None


def _real_stderr(config: pytest.Config) -> Any:
    """The terminal's stderr: pytest's output capture redirects fd 2 while tests run."""
    capman = config.pluginmanager.getplugin("capturemanager")
    try:
        fd = capman._global_capturing.err.targetfd_save  # the fd 2 pytest saved before capturing
    except AttributeError:  # capture off (-s), or another pytest: fd 2 is the terminal
        return sys.stderr
    return os.fdopen(os.dup(fd), "w")


@pytest.fixture(autouse=True)
def watchdog(pytestconfig: pytest.Config) -> Iterator[None]:
    global _WATCHDOG_FILE
    if _WATCHDOG_FILE is None:
        _WATCHDOG_FILE = _real_stderr(pytestconfig)
    faulthandler.dump_traceback_later(TEST_LIMIT, exit=True, file=_WATCHDOG_FILE)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def pytest_report_header(config: pytest.Config) -> str:
    return f"simplerpc stress: SIMPLERPC_STRESS={MODE} ({'full' if FULL else 'reduced, CI'} sizes)"


# -------------------------------------------------------------- processes

# Runs first in every child: SIGKILL when the parent (the pytest process) dies,
# then become the real command (the pid stays the same).
_LAUNCHER = """
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) != 0:   # PR_SET_PDEATHSIG
    sys.exit("prctl(PR_SET_PDEATHSIG) failed: errno %d" % ctypes.get_errno())
if os.getppid() != int(sys.argv[1]):                   # the parent died already
    os._exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""


def child_env() -> Dict[str, str]:
    """The environment of children: no SIMPLERPC_* defaults (token!), unbuffered output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMPLERPC_", "SIMPLERPYC_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(HERE)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return env


class Processes:
    """Every process a test started; :meth:`reap_all` kills what still runs."""

    def __init__(self) -> None:
        self.procs: List[subprocess.Popen] = []

    def spawn(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen:
        # PR_SET_PDEATHSIG follows the thread that forked: spawn from the main thread only.
        assert threading.current_thread() is threading.main_thread(), "spawn children from the main thread"
        kw.setdefault("env", child_env())
        kw.setdefault("stdin", subprocess.DEVNULL)
        exe = argv[0] if os.path.isabs(argv[0]) else _which(argv[0])
        proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(os.getpid()), exe, *argv[1:]], **kw)
        self.procs.append(proc)
        return proc

    def reap_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.send_signal(signal.SIGCONT)  # a SIGSTOPped one must not outlive us either
                    proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(SHUTDOWN_TIMEOUT)
            for stream in (proc.stdout, proc.stderr, proc.stdin):
                with contextlib.suppress(Exception):
                    if stream is not None:
                        stream.close()


def _which(name: str) -> str:
    import shutil

    found = shutil.which(name)
    assert found, f"{name} not found on PATH"
    return found


@pytest.fixture
def processes() -> Iterator[Processes]:
    procs = Processes()
    try:
        yield procs
    finally:
        procs.reap_all()


# ---------------------------------------------------------------- servers


class Server(NamedTuple):
    """A running server process."""

    kind: str  # "python" (python -m simplerpc.server) or "rust" (sim_server)
    host: str
    port: int
    token: str
    proc: subprocess.Popen
    lines: List[str]

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _status(self, key: str) -> str:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return line.split(":", 1)[1].strip()
        raise AssertionError(f"no {key} in /proc/{self.proc.pid}/status")

    def rss(self) -> int:
        """Resident set size in bytes (VmRSS of /proc/<pid>/status)."""
        value, unit = self._status("VmRSS").split()
        assert unit == "kB", unit
        return int(value) * 1024

    def threads(self) -> int:
        """How many threads the server has (entries of /proc/<pid>/task)."""
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))


def python_server_argv(*extra: str) -> List[str]:
    return [sys.executable, "-m", "simplerpc.server", "--host", HOST, "--port", "0", *extra]


def sim_server_path() -> str:
    default = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "examples" / "sim_server"
    path = Path(os.environ.get("SIMPLERPC_SIM_SERVER", default))
    if not path.exists():
        pytest.fail(
            f"{path} is missing: build it with `cargo build -p simplerpc-ws --example sim_server` "
            "(scripts/test.sh does), or set SIMPLERPC_SIM_SERVER",
            pytrace=False,
        )
    return str(path)


def rust_server_argv(*extra: str) -> List[str]:
    return [sim_server_path(), "--host", HOST, "--port", "0", *extra]


_PORT_RE = re.compile(r"export SIMPLERPC_PORT='?(\d+)'?")
_TOKEN_RE = re.compile(r"export SIMPLERPC_TOKEN='?([^'\s]+)'?")


class ServerFactory:
    """``start_server(kind, *flags)``: a context manager running a server until the block ends.

    At the end a Python server gets SIGINT and must exit 0 within
    SHUTDOWN_TIMEOUT (a clean stop after the stress is part of the check);
    the Rust example server has no SIGINT handler and is killed. Whatever
    still runs when the test ends is killed by the ``processes`` fixture.
    """

    def __init__(self, processes: Processes, tmp_path: Path) -> None:
        self.processes = processes
        self.cwd = tmp_path

    @contextlib.contextmanager
    def __call__(self, kind: str = "python", *flags: str, clean_exit: bool = True) -> Iterator[Server]:
        if kind == "python":
            argv = python_server_argv(*flags)
        elif kind == "rust":
            argv = rust_server_argv(*flags)
        else:
            raise ValueError(kind)
        env = child_env()
        if kind == "rust":
            env.setdefault("RUST_LOG", "info")
        proc = self.processes.spawn(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=str(self.cwd)
        )
        lines: List[str] = []
        found: Dict[str, str] = {}
        ready = threading.Event()

        def drain() -> None:
            # Read everything the server prints, always: a full pipe would block it.
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                for key, rx in (("port", _PORT_RE), ("token", _TOKEN_RE)):
                    m = rx.search(line)
                    if m and key not in found:
                        found[key] = m.group(1)
                if len(found) == 2:
                    ready.set()
            ready.set()  # EOF: the server exited

        reader = threading.Thread(target=drain, name=f"drain-{proc.pid}", daemon=True)
        reader.start()
        if not ready.wait(STARTUP_TIMEOUT) or len(found) < 2:
            proc.kill()
            pytest.fail(f"{' '.join(argv)} did not print its export lines within {STARTUP_TIMEOUT:.0f} s:\n{''.join(lines)}")
        server = Server(kind, HOST, int(found["port"]), found["token"], proc, lines)
        try:
            yield server
        finally:
            if proc.poll() is None:
                if kind == "python":
                    with contextlib.suppress(OSError):
                        proc.send_signal(signal.SIGCONT)
                    proc.send_signal(signal.SIGINT)
                    try:
                        proc.wait(SHUTDOWN_TIMEOUT)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                        reader.join(5)
                        pytest.fail(f"the server did not stop within {SHUTDOWN_TIMEOUT:.0f} s of SIGINT:\n{''.join(lines)[-8000:]}")
                    reader.join(5)
                    if clean_exit and sys.exc_info()[0] is None:
                        assert proc.returncode == 0, f"the server exited {proc.returncode} after SIGINT:\n{''.join(lines)[-8000:]}"
                else:
                    proc.kill()
                    proc.wait(SHUTDOWN_TIMEOUT)
                    reader.join(5)
            if sys.exc_info()[0] is None:
                # Whatever the probe did, no thread of the server panicked.
                panics = [ln for ln in lines if "panicked" in ln]
                assert not panics, "".join(panics[:10])


@pytest.fixture
def start_server(processes: Processes, tmp_path: Path) -> ServerFactory:
    return ServerFactory(processes, tmp_path)


# ---------------------------------------------------------------- helpers


def report(request: pytest.FixtureRequest, **figures: Any) -> None:
    """Record what a probe observed: printed (``-s``) and kept in the junit/terminal report."""
    text = ", ".join(f"{k}={_fmt(v)}" for k, v in figures.items())
    print(f"\n[stress] {request.node.name}: {text}", flush=True)
    request.node.user_properties.append(("figures", text))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    return lambda **kw: report(request, **kw)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    # The figures of every probe at the end of the run, also without -s.
    rows = []
    for key in ("passed", "failed", "xfailed", "xpassed"):
        for rep in terminalreporter.stats.get(key, []):
            if getattr(rep, "when", "call") != "call":
                continue
            for name, value in getattr(rep, "user_properties", []):
                if name == "figures":
                    rows.append(f"{rep.nodeid.split('::')[-1]} [{key}, {rep.duration:.1f} s]: {value}")
    if rows:
        terminalreporter.section("stress figures")
        for row in rows:
            terminalreporter.write_line(row)
