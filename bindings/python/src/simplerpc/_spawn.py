"""``simplerpc.spawn``: a server in another interpreter, as a child process
on a private socketpair; and ``simplerpc.gather``: many values at once."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import weakref
from collections import deque
from typing import Any, Deque, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ._client import Connection
from ._proxy import RPCProxy
from .errors import ConnectionClosedError, RequestTimeoutError, ServerProcessError

__all__ = ["spawn", "gather", "SpawnedConnection"]

# How much of the child's stderr is kept for the error that reports its death.
_STDERR_TAIL = 8192
# Send and receive buffers of the socketpair (the kernel caps them at
# net.core.wmem_max / rmem_max).
_SOCKET_BUFFER = 4 << 20
# How long a closed connection's child has to exit on its own before it is
# terminated (SIGTERM), then killed.
_EXIT_GRACE = 5.0


def _describe_exit(code: Optional[int]) -> str:
    if code is None:
        return "is still running"
    if code == 0:
        return "exited normally"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name} (signal {-code})"
    return f"exited with code {code}"


class _StderrTail:
    """Reads the child's stderr on a thread: keeps its last bytes, and
    passes everything on to this process's stderr when asked to."""

    def __init__(self, pipe: Any, forward: bool) -> None:
        self._chunks: Deque[bytes] = deque()
        self._size = 0
        self._lock = threading.Lock()
        self._pipe = pipe
        self._forward = forward
        self._thread = threading.Thread(target=self._run, name="simplerpc-child-stderr", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        fd = self._pipe.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            if self._forward:
                try:
                    sys.stderr.flush()
                    os.write(2, chunk)
                except (OSError, ValueError, AttributeError):  # stderr closed or gone
                    pass
            with self._lock:
                self._chunks.append(chunk)
                self._size += len(chunk)
                while self._size - len(self._chunks[0]) >= _STDERR_TAIL:
                    self._size -= len(self._chunks.popleft())
        try:
            self._pipe.close()
        except OSError:
            pass

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def text(self) -> str:
        with self._lock:
            data = b"".join(self._chunks)[-_STDERR_TAIL:]
        return data.decode("utf-8", "replace")


class _Child:
    """The child process and what is known of its end."""

    def __init__(self, process: subprocess.Popen, tail: _StderrTail, python: str) -> None:
        self.process = process
        self.tail = tail
        self.python = python
        # Waited once for an exit that did not come: later errors do not wait.
        self._waited = False

    def error(self, cause: Optional[BaseException] = None, wait: float = 2.0) -> ServerProcessError:
        """The error that reports the child's death (waiting up to ``wait``
        seconds for it to be seen: the socket closes as the process exits)."""
        try:
            code = self.process.wait(0 if self._waited else wait)
        except subprocess.TimeoutExpired:
            code = None
        self._waited = True
        self.tail.join(1.0 if code is not None else 0.0)
        tail = self.tail.text().rstrip()
        what = f"the server process (pid {self.process.pid}, {self.python}) {_describe_exit(code)}"
        if code in (None, 0) and cause is not None:
            # Alive, or gone because its connection ended: the cause is ours.
            what += f"{',' if code is None else ''} after its connection ended: {cause}"
        message = what + (f"; the end of its stderr:\n{tail}" if tail else "; it wrote nothing to stderr")
        return ServerProcessError(message, code, tail)

    def reap(self) -> None:
        """Wait for the child to exit on its own (its stream is closed), then
        terminate, then kill it; in every case wait for it: no zombie."""
        p = self.process
        for step in (None, p.terminate):
            if step is not None:
                try:
                    step()
                except OSError:
                    pass
            try:
                p.wait(_EXIT_GRACE)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            try:
                p.kill()
            except OSError:
                pass
            p.wait()
        self.tail.join(1.0)


class _SpawnedNative:
    """The native client of a spawned connection: every call that finds the
    connection closed reports the child's death instead, if it died."""

    def __init__(self, native: Any, child: _Child) -> None:
        self._n = native
        self._child = child
        self._closing = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._n, name)
        if not callable(attr) or name in ("release", "close", "abandon", "take_failure"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except RequestTimeoutError:
                raise  # our own wait ran out: the child is not to blame
            except (ConnectionClosedError, ConnectionError) as e:
                if self._closing or isinstance(e, ServerProcessError):
                    raise
                raise self._child.error(e) from e

        return call

    def close(self) -> None:
        self._closing = True
        self._n.close()


class SpawnedConnection(Connection):
    """A :class:`Connection` to a server process started by :func:`spawn`.
    Closing it (``disconnect()``, or leaving its ``with`` block) ends the
    process and waits for it."""

    def __init__(self, native: Any, child: _Child, *, allow_pickle: bool = False) -> None:
        super().__init__(_SpawnedNative(native, child), allow_pickle=allow_pickle)
        self._child = child
        # Dropped without disconnect(): its socket closes, the child exits,
        # and a thread waits for it (no zombie; the collector does not wait).
        # Not at interpreter exit: the child sees this process end anyway.
        self._reaper = weakref.finalize(self, _reap_in_background, child)
        self._reaper.atexit = False

    @property
    def process(self) -> subprocess.Popen:
        """The server process."""
        return self._child.process

    @property
    def pid(self) -> int:
        """The server process's id."""
        return self._child.process.pid

    def disconnect(self) -> None:
        """Close the connection; the server process then exits, and is waited
        for (terminated, then killed, if it does not exit within 5 s)."""
        self._reaper.detach()
        try:
            super().disconnect()
        finally:
            self._child.reap()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<simplerpc.SpawnedConnection {state}, pid {self.pid}>"


def _reap_in_background(child: _Child) -> None:
    """Reap ``child`` (see :meth:`_Child.reap`) on a thread of its own."""
    threading.Thread(target=child.reap, name="simplerpc-child-reaper", daemon=True).start()


def _bootstrap(sys_path: Sequence[str], fd: int, parent: int, pdeathsig: bool) -> str:
    """The ``-c`` program of the child: put ``sys_path`` first, then serve."""
    argv = ["--fd", str(fd), "--parent", str(parent)]
    if pdeathsig:
        argv.append("--parent-death-signal")
    return (
        "import sys\n"
        f"sys.path[0:0] = {list(sys_path)!r}\n"
        "from simplerpc.server import main\n"
        f"main({argv!r})\n"
    )


def spawn(
    python: Optional[str] = None,
    cwd: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    sys_path: Optional[Iterable[str]] = None,
    *,
    timeout: Optional[float] = None,
    start_timeout: Optional[float] = 60.0,
    allow_pickle: bool = False,
    forward_stderr: bool = True,
) -> SpawnedConnection:
    """Start a server in the interpreter ``python`` (default: this one), as a
    child process connected to this one by a socketpair, and connect to it.

    The interpreter needs simplerpc installed (any numpy, or none). No port
    is opened and no token is needed: only this process holds the other end
    of the channel. What the child prints (``print``, C code writing to fd 1
    or 2) goes to this process's stdout and stderr, never into the channel;
    the last 8 KiB of its stderr are also kept for the error that reports its
    death.

    Arguments:
        python: path of the interpreter, e.g. ``"sim-venv/bin/python"``
            (a relative path is taken from this process's working directory).
        cwd: the child's working directory (default: this one's).
        env: variables added to (or replacing) this process's environment for the child.
        sys_path: entries put first on the child's ``sys.path`` (relative
            ones taken from this process's working directory); a single
            path is one entry.
        timeout: seconds each request may wait for its answer (None: no limit).
        start_timeout: seconds the child has to start serving (None: no limit).
        allow_pickle: see :func:`connect`.
        forward_stderr: pass the child's stderr on to this process's stderr.

    The child exits when the connection is closed, and when this process
    dies, even by SIGKILL (it sees the end of the socket; on Linux, when
    called from the main thread, the kernel also kills it). If it dies, the
    next call raises :class:`simplerpc.ServerProcessError` (a
    :class:`ConnectionClosedError`) naming its exit code or signal, with the
    tail of its stderr. ``with simplerpc.spawn(...) as conn:`` closes the
    connection and waits for the child.
    """
    # Checked before a child starts (a bad value would otherwise surface as a
    # child that "did not start serving", after the waits to end it).
    for name, value in (("timeout", timeout), ("start_timeout", start_timeout)):
        if value is not None and not 0 < value < math.inf:
            raise ValueError(f"{name} must be a positive number of seconds or None, not {value!r}")
    python = os.fspath(python) if python is not None else sys.executable
    # A path is this process's path, whatever the child's cwd (Popen would
    # look for a relative one from ``cwd``); a bare name is looked up on PATH.
    if os.sep in python or (os.altsep and os.altsep in python):
        python = os.path.abspath(python)
    child_env = dict(os.environ)
    if env:
        child_env.update({str(k): str(v) for k, v in env.items()})
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    # A Unix socket's default buffers (about 200 KiB) cut an image
    # observation into many small hand-offs between the two processes.
    for end in (parent_end, child_end):
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                end.setsockopt(socket.SOL_SOCKET, opt, _SOCKET_BUFFER)
    # The kernel's parent-death signal follows the thread that forks: only
    # the main thread is sure to live as long as this process.
    pdeathsig = threading.current_thread() is threading.main_thread()
    if isinstance(sys_path, (str, bytes, os.PathLike)):  # one entry, not its characters
        sys_path = [sys_path]  # type: ignore[list-item]
    entries = [os.path.abspath(os.fspath(p)) for p in (sys_path or ())]
    program = _bootstrap(entries, child_end.fileno(), os.getpid(), pdeathsig)
    try:
        try:
            process = subprocess.Popen(
                [python, "-c", program],
                stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(child_end.fileno(),),
                cwd=cwd,
                env=child_env,
            )
        except OSError as e:
            raise ServerProcessError(f"cannot start the server process {python!r}: {e}") from e
        finally:
            child_end.close()
    except BaseException:
        parent_end.close()
        raise
    child = _Child(process, _StderrTail(process.stderr, forward_stderr), python)
    from ._native import NativeClient

    try:
        native = NativeClient.from_fd(parent_end.detach(), hello_timeout=start_timeout, timeout=timeout)
    except Exception as e:
        err = child.error(e, wait=1.0)
        if err.returncode is None:  # alive, but not serving: end it
            child.reap()
            tail = child.tail.text().rstrip()
            err = ServerProcessError(
                f"the server process (pid {process.pid}, {python}) did not start serving: {e}"
                + (f"; the end of its stderr:\n{tail}" if tail else ""),
                process.returncode,
                tail,
            )
        else:
            child.reap()
        raise err from e
    except BaseException:
        child.reap()
        raise
    return SpawnedConnection(native, child, allow_pickle=allow_pickle)


def gather(proxies: Iterable[Any]) -> List[Any]:
    """Materialize many proxies at once, on one connection or many: every
    request is sent first, then every answer waited for, so N servers work
    at the same time and the whole takes about as long as the slowest, not
    the sum. Items that are not proxies come back unchanged. Values come
    back in the order given.

    Errors: every answer is waited for, then the first error (in the order
    of ``proxies``) is raised; the others are dropped.
    """
    items = list(proxies)
    results: List[Any] = [None] * len(items)
    errors: Dict[int, BaseException] = {}
    # (index, connection, request id) of each materialize sent.
    pending: List[Tuple[int, Connection, int]] = []
    from ._client import _KIND_MATERIALIZE  # the call kind of a materialize

    for i, item in enumerate(items):
        if not isinstance(item, RPCProxy):
            results[i] = item
            continue
        conn: Connection = item._rpc_connection
        native = conn._native
        if not hasattr(native, "send") or not hasattr(native, "wait_value"):
            # A client without split send and wait: materialized in turn, below.
            pending.append((i, conn, -1))
            continue
        try:
            if conn._closed:
                raise ConnectionClosedError("the connection is closed")
            pending.append((i, conn, native.send(_KIND_MATERIALIZE, item._rpc_obj_id)))
        except Exception as e:
            errors[i] = e
    done = 0
    try:
        for i, conn, request in pending:
            try:
                if request < 0:
                    results[i] = conn._materialize(items[i])
                else:
                    results[i] = conn._request(conn._native.wait_value, request, conn._allow_pickle)
            except Exception as e:
                errors[i] = e
            done += 1
    except BaseException:
        # Ctrl-C: the answers not waited for are dropped when they come.
        for _, conn, request in pending[done + 1 :]:
            if request >= 0:
                abandon = getattr(conn._native, "abandon", None)
                if abandon is not None:
                    abandon(request)
        raise
    if errors:
        raise errors[min(errors)]
    return results
