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
