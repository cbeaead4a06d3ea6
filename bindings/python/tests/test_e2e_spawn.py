"""simplerpc.spawn and simplerpc.gather with real child processes.

The child is the numpy<2 interpreter (``$SIMPLERPC_NP1_PYTHON``, which
scripts/test.sh makes as .venv-np1) under this numpy>=2 process, as in the
use the feature exists for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, List

import numpy as np
import pytest

import simplerpc
from simplerpc import materialize

NP1_ENV = "SIMPLERPC_NP1_PYTHON"
GONE_WITHIN = 20.0  # seconds a child has to disappear after its parent (a hang guard)


@pytest.fixture(scope="module")
def np1() -> str:
    python = os.environ.get(NP1_ENV) or "/tmp/v1/bin/python"
    if not os.path.exists(python):
        pytest.fail(f"the numpy<2 Python {python} (${NP1_ENV}) does not exist; scripts/test.sh makes .venv-np1", pytrace=False)
    return python


def gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (a zombie nobody reaped counts)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + GONE_WITHIN
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


def test_numpy1_child_arrays_both_ways_and_the_full_api(np1: str) -> None:
    with simplerpc.spawn(np1, env={"SIMPLERPC_SPAWN_TEST": "yes"}) as conn:
        np_remote = conn.modules.numpy
        assert materialize(np_remote.__version__).startswith("1."), "the child runs numpy 1"
        assert np.__version__.startswith("2."), "this process runs numpy 2"
        assert materialize(conn.modules.os.environ["SIMPLERPC_SPAWN_TEST"]) == "yes"
        # Parent to child and back: a numpy 2 array into numpy 1, arithmetic there.
        a = np.arange(600 * 600, dtype=np.float64).reshape(600, 600)
        doubled = materialize(np_remote.multiply(a, 2))
        assert doubled.dtype == np.float64 and doubled.shape == (600, 600)
        assert np.array_equal(doubled, a * 2)
        ints = materialize(np_remote.arange(10, dtype="int32"))
        assert ints.dtype == np.int32 and ints.tolist() == list(range(10))
        # eval, execute, teleport, pipelining (a chain, one wait), release.
        conn.execute("state = {'n': 41}")
        assert materialize(conn.eval("state['n'] + 1")) == 42

        ns: dict = {"__name__": "__main__"}  # dill sends __main__'s functions by value
        exec("def triple(x):\n    return x * 3\n", ns)
        triple = ns["triple"]
        assert materialize(conn.teleport(triple)(14)) == 42
        assert conn._pipelining, "the stream connection negotiates promises"
        before = conn._native.round_trips
        chained = np_remote.linspace(0, 1, 5).reshape(5, 1).sum()
        assert conn._native.round_trips == before, "nothing waited for yet"
        assert materialize(chained) == pytest.approx(2.5)
        assert conn._native.round_trips == before + 1, "the chain cost one round trip"
        with pytest.raises(ZeroDivisionError):
            materialize(conn.eval("1 / 0"))
        assert materialize(conn.eval("6 * 7")) == 42, "usable after a remote error"
        # The tuple extension is negotiated in the hello: tuples stay tuples.
        assert materialize(conn.eval("(1, (2, 'x'))")) == (1, (2, "x"))
        assert materialize(conn.eval("lambda t: type(t).__name__")((1, 2))) == "tuple"
        del chained, ints
        pid = conn.pid
        process = conn.process
    assert process.returncode == 0, "the child exited cleanly when the connection closed"
    assert gone(pid), "and was reaped"
    with pytest.raises(simplerpc.ConnectionClosedError):
        conn.eval("1")


def test_large_arrays_over_a_spawned_child_are_made_in_place_both_ways(np1: str) -> None:
    """The stream transport places a large frame so that its first array's
    data is aligned, and reads frames of 16 MiB and more into buffers kept
    for the next ones: arrays are made over the frame in place on either
    side (no copy, any dtype), correct however often a buffer is reused."""
    with simplerpc.spawn(np1) as conn:
        probe = conn.eval("lambda a: (a.flags.owndata, a.ctypes.data % 64, a.flags.writeable, float(abs(a.sum())))")
        materialize(probe(np.zeros(300_000, "u1")))  # the child imports numpy
        for dtype in ("f8", ">f4", "c16", "u1"):
            a = np.ones(2**18, dtype)
            owndata, misalign, writable, total = materialize(probe(a))
            assert not owndata and writable, dtype
            assert misalign == 0 or np.dtype(dtype).alignment == 1, (dtype, misalign)
            assert total == 2**18, dtype
        rnp = conn.modules.numpy
        for dtype in ("f8", ">i4", "u1"):
            got = materialize(rnp.arange(2**18, dtype=dtype))
            assert not got.flags.owndata and got.flags.writeable, dtype
            assert got.ctypes.data % got.dtype.alignment == 0, dtype
            assert np.array_equal(got, np.arange(2**18, dtype=dtype)) and got.dtype == np.dtype(dtype), dtype
        # 24 MiB each way, four times: the kept buffers are reused, and each
        # array keeps its own frame (the first is intact after the others).
        big = conn.eval("lambda seed: __import__('numpy').random.default_rng(seed).integers(0, 2**62, 3 * 2**20)")
        kept = []
        for seed in range(4):
            got = materialize(big(seed))
            assert np.array_equal(got, np.random.default_rng(seed).integers(0, 2**62, 3 * 2**20)), seed
            kept.append(got)
            mine = np.random.default_rng(seed + 10).integers(0, 2**62, 3 * 2**20)
            assert materialize(conn.eval("lambda a: int(a[::1000].sum() % 1000003)")(mine)) == int(mine[::1000].sum() % 1000003)
        assert np.array_equal(kept[0], np.random.default_rng(0).integers(0, 2**62, 3 * 2**20))


def test_sys_path_and_cwd(np1: str, tmp_path: Path) -> None:
    (tmp_path / "mysim.py").write_text("VALUE = 'from sys_path'\n")
    work = tmp_path / "work"
    work.mkdir()
    # Relative paths are this process's, not the child's cwd's.
    here = os.getcwd()
    python, entry = os.path.relpath(np1, here), os.path.relpath(tmp_path, here)
    with simplerpc.spawn(python, cwd=str(work), sys_path=[entry]) as conn:
        assert materialize(conn.modules.mysim.VALUE) == "from sys_path"
        assert materialize(conn.eval("__import__('sys').path[0]")) == str(tmp_path)
        assert materialize(conn.modules.os.getcwd()) == str(work)


PARENT = textwrap.dedent(
    """
    import sys, threading, time, simplerpc
    python, how = sys.argv[1], sys.argv[2]
    box = []
    if how == "thread":  # no parent-death signal: the socket's end must do
        t = threading.Thread(target=lambda: box.append(simplerpc.spawn(python)))
        t.start(); t.join()
        conn = box[0]
    else:
        conn = simplerpc.spawn(python)
    assert simplerpc.materialize(conn.eval("1 + 1")) == 2
    print(conn.pid, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize("how", ["main", "thread"])
def test_the_child_dies_with_a_sigkilled_parent(np1: str, how: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, np1, how], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        line = parent.stdout.readline()
        assert line.strip().isdigit(), f"the parent printed {line!r}"
        child = int(line)
        assert not gone(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(30)
        assert wait_gone(child), f"the child {child} outlived its SIGKILLed parent by {GONE_WITHIN} s"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(30)


@pytest.mark.parametrize(
    "code,expect_code,expect_text",
    [
        ("os.write(2, b'last words\\n'); os._exit(3)", 3, "exited with code 3"),
        ("os.write(2, b'segfault next\\n'); os.kill(os.getpid(), signal.SIGSEGV)", -signal.SIGSEGV, "SIGSEGV"),
    ],
)
def test_a_child_crash_names_its_code_or_signal_and_stderr(np1: str, code: str, expect_code: int, expect_text: str) -> None:
    with simplerpc.spawn(np1, forward_stderr=False) as conn:
        conn.execute("import os, signal")
        with pytest.raises(simplerpc.ServerProcessError) as info:
            conn.execute(code)
        e = info.value
        assert isinstance(e, simplerpc.ConnectionClosedError)
        assert e.returncode == expect_code
        assert expect_text in str(e)
        words = "last words" if expect_code == 3 else "segfault next"
        assert words in e.stderr_tail and words in str(e), str(e)
        # Later calls say the same, not a bare "closed".
        with pytest.raises(simplerpc.ServerProcessError, match=expect_text):
            conn.eval("1")
    assert conn.process.returncode == expect_code


def test_a_child_that_cannot_start_is_reported(tmp_path: Path) -> None:
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'no simplerpc here' >&2\nexit 7\n")
    broken.chmod(0o755)
    with pytest.raises(simplerpc.ServerProcessError) as info:
        simplerpc.spawn(str(broken), forward_stderr=False)
    assert info.value.returncode == 7
    assert "no simplerpc here" in str(info.value)
    with pytest.raises(simplerpc.ServerProcessError, match="cannot start"):
        simplerpc.spawn(str(tmp_path / "missing-python"))


def test_output_on_fd_1_and_2_does_not_touch_the_channel(np1: str) -> None:
    with simplerpc.spawn(np1, forward_stderr=False) as conn:
        conn.execute(
            "import os, sys\n"
            "os.write(1, b'\\x00\\x01garbage on stdout' * 5000)\n"
            "os.write(2, b'\\xff noise on stderr ' * 5000)\n"
            "print('print output ' * 1000); sys.stdout.flush()\n"
        )
        assert materialize(conn.eval("sum(range(10))")) == 45
        big = materialize(conn.modules.numpy.ones(1 << 20))
        assert big.sum() == 1 << 20
        # The kept stderr is bounded.
        assert len(conn._child.tail.text()) <= 8192


STEP = """
import os, time
def step(seconds):
    start = time.time()
    time.sleep(seconds)
    return {"pid": os.getpid(), "start": start, "end": time.time()}
"""


def test_gather_steps_children_at_once(np1: str) -> None:
    conns: List[simplerpc.SpawnedConnection] = [simplerpc.spawn(np1) for _ in range(4)]
    try:
        for c in conns:
            c.execute(STEP)
        results = simplerpc.gather([c.eval("step(0.2)") for c in conns] + ["not a proxy"])
        assert results[-1] == "not a proxy"
        steps = results[:-1]
        assert sorted(s["pid"] for s in steps) == sorted(c.pid for c in conns), "one step per child, in order"
        assert [s["pid"] for s in steps] == [c.pid for c in conns]
        # Concurrency: every step started before any ended.
        assert max(s["start"] for s in steps) < min(s["end"] for s in steps), steps
        # Errors: every answer is waited for, then the first error is raised.
        for c in conns:
            c.execute("done = []\ndef mark():\n    time.sleep(0.1); done.append(1); return 1")
        proxies = [conns[0].eval("mark()"), conns[1].eval("1 / 0"), conns[2].eval("mark()"), conns[3].eval("[][1]")]
        with pytest.raises(ZeroDivisionError):
            simplerpc.gather(proxies)
        assert materialize(conns[2].eval("len(done)")) == 1
        # Many proxies on one connection, and the connection still in order.
        assert simplerpc.gather([conns[0].eval(f"{i} * 2") for i in range(50)]) == [i * 2 for i in range(50)]
    finally:
        for c in conns:
            c.disconnect()
    assert all(c.process.returncode == 0 for c in conns)


def test_readme_spawn_and_gather_examples_as_printed(np1: str) -> None:
    """The README's spawn and gather snippets, run from the repository root
    with the numpy<2 interpreter as the simulator's."""
    root = Path(__file__).resolve().parents[3]
    readme = (root / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    snippets = [b for b in blocks if "simplerpc.spawn(" in b]
    assert len(snippets) == 2, "the spawn and the gather example"
    # A relative path, as printed: taken from the working directory, not from the child's cwd.
    script = "\n".join(snippets).replace('"sim-venv/bin/python"', repr(os.path.relpath(np1, root)))
    script += "\nassert obs.shape == (84, 84, 3) and len(results) == 8, results\nprint('ok')\n"
    run = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), f"{run.stdout}\n{run.stderr}"


def test_gather_mixes_transports(np1: str, conn: simplerpc.Connection, reference_server: Any) -> None:
    """One gather over a spawned child, our WebSocket server (``conn``) and
    a stock simplerpyc server (no extensions, no pipelining)."""
    host, port, token, _ = reference_server
    stock = simplerpc.connect(host, port, token)
    try:
        with simplerpc.spawn(np1) as child:
            proxies = [
                child.modules.numpy.arange(3),
                conn.eval("'ws'"),
                stock.eval("40 + 2"),
                child.eval("'child'"),
                conn.modules.numpy.full(2, 7),
            ]
            values = simplerpc.gather(proxies)
            assert values[0].tolist() == [0, 1, 2]
            assert values[1:4] == ["ws", 42, "child"]
            assert values[4].tolist() == [7, 7]
            with pytest.raises(NameError):
                simplerpc.gather([stock.eval("1"), child.eval("undefined_name"), conn.eval("2")])
            assert simplerpc.gather([stock.eval("3"), conn.eval("4")]) == [3, 4], "all still usable"
    finally:
        stock.disconnect()


def test_ctrl_c_in_the_parent_gives_the_wait_up_and_keeps_the_child(np1: str) -> None:
    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        with simplerpc.spawn(np1) as conn:
            conn.execute("import time")
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            with pytest.raises(KeyboardInterrupt):
                materialize(conn.eval("time.sleep(1.5) or 'slow'"))
            signal.setitimer(signal.ITIMER_REAL, 0)
            assert conn.process.poll() is None, "the child lives on"
            assert materialize(conn.eval("'next'")) == "next", "and answers the next call"
        assert conn.process.returncode == 0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_a_request_timeout_ends_the_connection_and_says_the_child_lives(np1: str) -> None:
    with simplerpc.spawn(np1, timeout=0.3, forward_stderr=False) as conn:
        conn.execute("import time")
        with pytest.raises(simplerpc.RequestTimeoutError):
            materialize(conn.eval("time.sleep(1) or 1"))
        with pytest.raises(simplerpc.ServerProcessError, match="after its connection ended: .*no answer within") as info:
            conn.eval("1")
        # Still in its call, or done with it and gone since it saw the stream's end.
        assert info.value.returncode in (None, 0)
    # The child finished its call, saw the stream's end and exited.
    assert conn.process.returncode == 0


def test_closing_ends_a_child_stuck_in_a_call_and_reaps_it(np1: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from simplerpc import _spawn

    monkeypatch.setattr(_spawn, "_EXIT_GRACE", 0.5)
    conn = simplerpc.spawn(np1)
    conn.execute("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)")
    busy = conn.eval("time.sleep(60)")  # sent (pipelined), not waited for
    conn.disconnect()
    assert conn.process.returncode == -signal.SIGKILL, "SIGTERM ignored, so killed"
    assert gone(conn.pid)
    del busy


@pytest.mark.parametrize(
    "bad", [{"timeout": 0}, {"timeout": -1.0}, {"start_timeout": -1}, {"start_timeout": float("inf")}, {"timeout": float("inf")}]
)
def test_a_bad_timeout_is_a_value_error_before_any_child_starts(bad: Any) -> None:
    # It used to start a child, report "did not start serving" (a
    # ServerProcessError) after 6 s of waits, and leak the socket's fd.
    fds = set(os.listdir("/proc/self/fd"))
    with pytest.raises(ValueError, match="timeout") as info:
        simplerpc.spawn(**bad)
    assert not isinstance(info.value, simplerpc.ServerProcessError)
    assert set(os.listdir("/proc/self/fd")) <= fds, "an fd leaked"


def test_a_connection_dropped_without_closing_has_its_child_reaped() -> None:
    # The child exits when the dropped connection's socket closes; nobody
    # waited for it, so it stayed a zombie (until some later Popen).
    import gc

    conn = simplerpc.spawn(forward_stderr=False)
    assert materialize(conn.eval("1 + 1")) == 2
    pid = conn.pid
    process = conn.process  # kept, so that its own __del__ cannot reap it by chance
    del conn
    gc.collect()
    deadline = time.monotonic() + GONE_WITHIN
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}"), f"child {pid} not reaped: {Path(f'/proc/{pid}/stat').read_text()}"
    assert process.returncode == 0


def test_a_single_sys_path_entry_is_one_entry(tmp_path: Path) -> None:
    # A str is an iterable of str: sys_path="dir" put "/", "d", "i", "r" on the child's path.
    (tmp_path / "single_entry_mod.py").write_text("X = 42\n")
    for entry in (str(tmp_path), tmp_path):
        with simplerpc.spawn(sys_path=entry, forward_stderr=False) as conn:  # type: ignore[arg-type]
            assert materialize(conn.modules.single_entry_mod.X) == 42
            assert materialize(conn.eval("__import__('sys').path[0]")) == str(tmp_path)


def test_connect_with_an_infinite_timeout_is_a_value_error() -> None:
    # It was an OverflowError from converting it to milliseconds.
    with pytest.raises(ValueError, match="None"):
        simplerpc.connect("127.0.0.1", 1, "token", timeout=float("inf"))
    with pytest.raises(ValueError, match="None"):
        simplerpc.connect("127.0.0.1", 1, "token", dead_after=float("inf"))
