"""The stock simplerpyc client and our Python client against the Rust registry server."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import simplerpc
import simplerpyc


def test_stock_client_steps_the_rust_env(rust_server):
    port, token, _ = rust_server
    conn = simplerpyc.connect("127.0.0.1", port, token=token)
    try:
        sim = conn.modules.sim
        assert simplerpyc.materialize(sim.add(2, 3.5)) == 5.5
        assert simplerpyc.materialize(sim.version) == "0.2.0"
        env = sim.make(7)
        obs = simplerpyc.materialize(env.reset(7))
        assert obs.shape == (480, 640, 3) and obs.dtype == np.uint8 and obs[0, 0, 0] == 7
        for t in range(1, 4):
            out = simplerpyc.materialize(env.step(1.0))
            assert out["obs"].shape == (480, 640, 3)
            assert out["obs"][0, 0, 0] == 7 + t
            assert out["reward"] == 0.5 and out["done"] is False and out["truncated"] is False
            assert out["info"] == {"t": t}
        assert simplerpyc.materialize(env) == 3
        z = simplerpyc.materialize(sim.zeros(5))
        assert z.dtype == np.float64 and z.tolist() == [0.0] * 5
        echoed = simplerpyc.materialize(sim.echo(np.arange(6, dtype=np.int16).reshape(2, 3)))
        assert echoed.dtype == np.int16 and echoed.tolist() == [[0, 1, 2], [3, 4, 5]]
        with pytest.raises(Exception, match="TypeError"):
            sim.add("x", 1)
        assert simplerpyc.materialize(sim.add(1, 1)) == 2.0  # still usable
    finally:
        conn.disconnect()


def test_our_client_against_the_rust_server(rust_server):
    port, token, _ = rust_server
    with simplerpc.connect("127.0.0.1", port, token=token) as conn:
        assert conn._native.extensions == 31  # release, request-id, promise, tuple, stats
        assert conn._native.promises
        env = conn.modules.sim.make(1)
        step = simplerpc.materialize(env.step(2.0))
        assert step["obs"].shape == (480, 640, 3) and step["obs"].flags.writeable
        with pytest.raises(ModuleNotFoundError):
            conn.modules.nonexistent
        with pytest.raises(simplerpc.RemoteException) as e:
            simplerpc.materialize(conn.modules.sim)
        assert "cannot materialize module 'sim': it has no wire form; keep it remote (use the proxy)" in str(e.value)


def test_a_huge_zeros_is_a_memory_error_and_the_server_keeps_serving(rust_server):
    port, token, proc = rust_server
    with simplerpc.connect("127.0.0.1", port, token=token) as conn:
        sim = conn.modules.sim
        # 8 TiB: over the example's --max-alloc (2 GiB), and over any machine's memory.
        with pytest.raises(MemoryError) as e:
            simplerpc.materialize(sim.zeros(2**40))
        assert isinstance(e.value, simplerpc.RemoteException)
        assert "2147483648" in str(e.value) and "--max-alloc" in str(e.value)
        # The same connection and a new one are served.
        assert simplerpc.materialize(sim.add(1, 2)) == 3.0
        assert simplerpc.materialize(sim.zeros(4)).tolist() == [0.0] * 4
    with simplerpc.connect("127.0.0.1", port, token=token) as conn:
        assert simplerpc.materialize(conn.modules.sim.add(2, 2)) == 4.0
    assert proc.poll() is None, "the server process ended"


def test_tuples_stay_tuples_with_the_rust_registry(rust_server):
    """Our client and the Rust server negotiate `tuple`: a tuple argument is
    a Value::Tuple there and comes back a tuple; the stock client sends and
    gets lists, as the reference does."""
    port, token, _ = rust_server
    value = (1, ("a", ()), [2.5, (None,)], {"k": (True, b"x")})
    big = np.arange(1 << 17, dtype=np.float64)  # 1 MiB: the one-copy paths
    with simplerpc.connect("127.0.0.1", port, token=token) as conn:
        echo = conn.modules.sim.echo
        back = simplerpc.materialize(echo(value))
        assert back == value and type(back[1]) is tuple and type(back[2]) is list and type(back[2][1]) is tuple
        got = simplerpc.materialize(echo((big, 0.5, False)))
        assert type(got) is tuple and got[1:] == (0.5, False) and np.array_equal(got[0], big)
    stock = simplerpyc.connect("127.0.0.1", port, token=token)
    try:
        back = simplerpyc.materialize(stock.modules.sim.echo(value))
        assert back == [1, ["a", []], [2.5, [None]], {"k": [True, b"x"]}]
        theirs = {"__tuple__": [1, 2]}  # a stock client's own dict stays a dict
        assert simplerpyc.materialize(stock.modules.sim.echo(theirs)) == theirs
    finally:
        stock.disconnect()


def test_proxy_operations_on_a_server_without_python_say_what_to_do(rust_server):
    # bool(), ==, len(), for ... run Python's builtins/operator on the server:
    # the Rust registry has none, so each says so (never a silent answer).
    port, token, _ = rust_server
    with simplerpc.connect("127.0.0.1", port, token=token) as conn:
        version = conn.modules.sim.version
        for op in (bool, len, lambda p: p == "0.2.0", lambda p: p + "x", list):
            with pytest.raises(TypeError, match="materialize"):
                op(version)
        assert simplerpc.materialize(version) == "0.2.0"  # the connection goes on


def test_the_rust_server_reads_its_own_variables_not_the_clients(rust_server):
    """As python -m simplerpc.server: flags, then SIMPLERPC_SERVER_*, then
    defaults; a shell holding another server's exports changes nothing."""
    port, token, _ = rust_server
    root = Path(__file__).resolve().parents[2]
    exe = os.environ.get("SIMPLERPC_SIM_SERVER", str(root / "target" / "debug" / "examples" / "sim_server"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLERPC_")}
    env.update(
        SIMPLERPC_HOST="127.0.0.1", SIMPLERPC_PORT=str(port), SIMPLERPC_TOKEN=token,
        SIMPLERPC_SERVER_HOST="127.0.0.1", SIMPLERPC_SERVER_PORT="0", SIMPLERPC_SERVER_TOKEN="the-servers-own",
    )
    proc = subprocess.Popen([exe], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:  # ends at the export lines (or at exit)
            lines.append(line)
            if line.startswith("export SIMPLERPC_TOKEN="):
                break
        out = "".join(lines)
        m = re.search(r"export SIMPLERPC_PORT='(\d+)'", out)
        assert m and int(m.group(1)) != port, out
        assert "export SIMPLERPC_TOKEN='the-servers-own'" in out, out
        assert "host   127.0.0.1  (from $SIMPLERPC_SERVER_HOST)" in out, out
        assert f"port   {m.group(1)}  (from $SIMPLERPC_SERVER_PORT, 0: a free one)" in out, out
        assert "token  (from $SIMPLERPC_SERVER_TOKEN)" in out, out
        assert "SIMPLERPC_HOST, SIMPLERPC_PORT, SIMPLERPC_TOKEN in this environment: for clients, not read by the server" in out, out
        with simplerpc.connect("127.0.0.1", int(m.group(1)), "the-servers-own") as conn:
            assert simplerpc.materialize(conn.modules.sim.add(1.0, 2.0)) == 3.0
    finally:
        proc.kill()
        proc.wait()


def test_a_64_mib_argument_reaches_the_rust_server_byte_exact(rust_server):
    """A large array argument goes from the array's own memory into the
    frame (by reference, not copied: core's raw_spliced tests show that);
    here, that what arrives is the array: echoed back, its hash is the
    one sent, alone, among other arguments, and pipelined."""
    import hashlib

    port, token, _ = rust_server
    big = np.random.default_rng(9).integers(0, 256, 64 << 20, dtype=np.uint8)
    other = np.random.default_rng(10).standard_normal((1 << 17,)).astype(">f8")  # 1 MiB, big-endian
    digest = hashlib.sha256(big.tobytes()).hexdigest()
    with simplerpc.connect("127.0.0.1", port, token=token) as conn:
        echo = conn.modules.sim.echo
        back = simplerpc.materialize(echo(big))
        assert back.dtype == np.uint8 and back.shape == big.shape
        assert hashlib.sha256(back.tobytes()).hexdigest() == digest
        mixed = simplerpc.materialize(echo([other, b"x" * 100, big, {"k": other[:10]}]))
        assert hashlib.sha256(mixed[2].tobytes()).hexdigest() == digest
        assert mixed[0].dtype.str == ">f8" and np.array_equal(mixed[0], other)
        assert mixed[1] == b"x" * 100 and np.array_equal(mixed[3]["k"], other[:10])
        assert conn._pipelining
        before = conn._native.round_trips
        sent = echo(big)  # a promise: sent, not waited for
        assert conn._native.round_trips == before
        assert hashlib.sha256(simplerpc.materialize(sent).tobytes()).hexdigest() == digest
