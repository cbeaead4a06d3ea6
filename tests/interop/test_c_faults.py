"""A C executor that breaks its contract: each fault is a clear remote error,
and the server keeps serving this client and others."""

from __future__ import annotations

import pytest

import simplerpc
import simplerpyc


@pytest.mark.parametrize(
    "name, expected",
    [
        ("no_reply", "with no result"),
        ("bad_status", "failed with status 3"),
        ("null_value", "failed with status 1"),
    ],
)
def test_broken_calls_are_remote_errors(faulty_server, name, expected):
    port, token, _ = faulty_server
    with simplerpc.connect("127.0.0.1", port, token=token) as conn:
        m = conn.modules.faulty
        with pytest.raises(simplerpc.RemoteException) as e:
            simplerpc.materialize(getattr(m, name)())  # pipelined: raised by the wait
        assert e.value.exception_type == "simplerpc.ExecutorError"
        assert expected in str(e.value)
        assert simplerpc.materialize(m.ok()) == 42  # the connection goes on


def test_bad_values_and_ghost_handles(faulty_server):
    port, token, _ = faulty_server
    with simplerpc.connect("127.0.0.1", port, token=token) as conn:
        m = conn.modules.faulty
        with pytest.raises(simplerpc.RemoteException, match="invalid msgpack"):
            simplerpc.materialize(m.bad_msgpack())
        with pytest.raises(KeyError, match="no object under handle 999999"):
            simplerpc.materialize(m.ghost())
        assert simplerpc.materialize(m.twice()) == 42  # a second answer is refused, the first stands
        assert simplerpc.materialize(m.stale()) == 42  # a dead reply from an earlier call is refused
    # Another client, the stock one, is still served.
    stock = simplerpyc.connect("127.0.0.1", port, token=token)
    try:
        assert simplerpyc.materialize(stock.modules.faulty.ok()) == 42
    finally:
        stock.disconnect()
