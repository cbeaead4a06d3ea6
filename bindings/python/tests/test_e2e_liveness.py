"""A long call keeps its connection: the server answers pings while the call
runs. The stock client (websockets) pings every 20 s and drops a connection
whose pong is late; here a websockets client pings every 0.2 s with a 0.5 s
timeout during a 2.5 s call, so a server that answered no ping while it
computes would lose the connection several times over."""

from __future__ import annotations

import msgpack
import pytest

websockets_sync = pytest.importorskip("websockets.sync.client")


def test_pings_are_answered_during_a_long_call(server):
    host, port, token, _ = server
    url = f"ws://{host}:{port}/?token={token}"
    with websockets_sync.connect(url, ping_interval=0.2, ping_timeout=0.5, max_size=None) as ws:
        ws.send(msgpack.packb({"type": "import_module", "module": "time"}))
        reply = msgpack.unpackb(ws.recv(timeout=30))
        assert reply["type"] == "success", reply
        call = {"type": "call", "path": "time.sleep", "obj_id": None, "args": [2.5], "kwargs": {}}
        ws.send(msgpack.packb(call))
        reply = msgpack.unpackb(ws.recv(timeout=30))
        assert reply["type"] == "success", reply
        # and the connection is still good for another request
        ws.send(msgpack.packb({"type": "eval", "expr": "6 * 7"}))
        ident = msgpack.unpackb(ws.recv(timeout=30))["obj_id"]
        ws.send(msgpack.packb({"type": "materialize", "obj_id": ident}))
        assert msgpack.unpackb(ws.recv(timeout=30))["value"] == 42


# ------------------------------------------------- dead peers, on both sides

import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import simplerpc  # noqa: E402
from simplerpc import materialize  # noqa: E402


def _wait_stopped(pid: int) -> None:
    """Wait until every thread of ``pid`` is stopped (SIGSTOP takes effect
    asynchronously), within a bound."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        states = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except FileNotFoundError:
                pass
        if states and all(s in "tT" for s in states):
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not stop")


def test_a_frozen_server_is_reported_not_waited_for_forever(start_server):
    with start_server(clean_exit=False) as srv:
        host, port, token, proc = srv
        conn = simplerpc.connect(host, port, token, dead_after=2.0)
        assert materialize(conn.eval("1 + 1")) == 2
        outcome = {}

        def call():
            try:
                outcome["value"] = materialize(conn.eval("2 + 2"))
            except BaseException as e:  # noqa: BLE001 - recorded for the assertion
                outcome["error"] = e

        os.kill(proc.pid, signal.SIGSTOP)
        try:
            _wait_stopped(proc.pid)
            t = threading.Thread(target=call, daemon=True)
            t.start()
            t.join(60)  # a bound for the test, not a measurement
            assert not t.is_alive(), "the call still waits on a frozen server"
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        err = outcome.get("error")
        assert isinstance(err, simplerpc.RequestTimeoutError), outcome
        assert "frozen or unreachable" in str(err), str(err)
        # The Python setting, not the Rust one (ClientConfig::dead_after).
        assert str(err).endswith("(connect(dead_after=...) sets how long to wait)") and "::" not in str(err), str(err)
        conn.disconnect()
        proc.kill()


CLIENT = """
import sys, time, simplerpc
conn = simplerpc.connect(sys.argv[1], int(sys.argv[2]), sys.argv[3])
keep = conn.eval("bytearray(64 * 2**20)")
simplerpc.materialize(conn.eval("len")(keep))
print("ready", flush=True)
time.sleep(600)
"""


def test_a_frozen_client_is_dropped_and_its_objects_freed(start_server):
    argv = start_server.simplerpc_argv() + ["--dead-after", "1.5"]
    with start_server(argv) as srv:
        host, port, token, _ = srv
        baseline = srv.rss()
        client = subprocess.Popen([sys.executable, "-c", CLIENT, host, str(port), token], stdout=subprocess.PIPE, text=True)
        try:
            assert client.stdout is not None and client.stdout.readline().strip() == "ready"
            assert srv.rss() > baseline + 48 * 2**20, "the client's object lives on the server"
            # Idle but alive, it stays: its library answers the server's pings.
            time.sleep(3)
            assert "frozen or unreachable" not in srv.output
            client.send_signal(signal.SIGSTOP)
            _wait_stopped(client.pid)
            deadline = time.monotonic() + 30  # a bound, not a measurement
            while "frozen or unreachable" not in srv.output and time.monotonic() < deadline:
                time.sleep(0.2)
            assert "frozen or unreachable" in srv.output, srv.output
            while srv.rss() > baseline + 16 * 2**20 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert srv.rss() <= baseline + 16 * 2**20, "the dropped client's objects were freed"
        finally:
            client.kill()
            client.wait()
