"""The C matrix executor (examples/c) serving over WebSocket, under valgrind,
driven by the stock simplerpyc client and by ours."""

from __future__ import annotations

import numpy as np
import pytest

import simplerpc
import simplerpyc
from simplerpc._native_api import NativeRemoteError


def test_stock_client_uses_the_c_executor(c_server):
    port, token, _ = c_server
    conn = simplerpyc.connect("127.0.0.1", port, token=token)
    try:
        m = conn.modules.matrix
        eye = m.eye(3)
        full = m.full(3, 3, 2.5)
        np.testing.assert_array_equal(simplerpyc.materialize(m.matmul(eye, full)), np.full((3, 3), 2.5))
        np.testing.assert_array_equal(simplerpyc.materialize(m.matmul(np.ones((2, 3)), full)), np.full((2, 3), 7.5))
        np.testing.assert_array_equal(simplerpyc.materialize(eye[1]), [0.0, 1.0, 0.0])
        with pytest.raises(Exception, match="shapes do not align"):
            m.matmul(full, eye[0])
        with pytest.raises(Exception, match="cannot be materialized"):
            simplerpyc.materialize(m)
        with pytest.raises(Exception, match="No module named"):
            conn.modules.numpy
        assert simplerpyc.materialize(m.zeros(2, 2)).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    finally:
        conn.disconnect()


def test_our_client_and_release_against_the_c_executor(c_server):
    port, token, _ = c_server
    with simplerpc.connect("127.0.0.1", port, token=token) as conn:
        m = conn.modules.matrix
        for i in range(200):  # proxies dropped every round are released on the server
            p = m.full(64, 64, float(i))
            assert simplerpc.materialize(p)[0, 0] == float(i)
        with pytest.raises(NativeRemoteError) as e:
            conn._native.materialize(10**9)  # an id the server never issued
        assert e.value.exception_type == "simplerpc.UnknownObjectError"
        with pytest.raises(AttributeError):
            simplerpc.materialize(m.nope)
    with pytest.raises(simplerpc.AuthenticationError):
        simplerpc.connect("127.0.0.1", port, token="wrong")


def test_a_c_executor_that_did_not_ask_for_tuples_gets_arrays(c_server):
    """srpc_server_start() leaves the tuple extension out unless the host
    asks (srpc_server_config.extensions): our client then sends tuples as
    plain arrays, which the C executor reads as it always did."""
    port, token, _ = c_server
    with simplerpc.connect("127.0.0.1", port, token=token) as conn:
        assert conn._native.extensions == 23 and not conn._tuples  # all but tuple
        packed, _ = conn._pack(((2, 3), [1.5]))
        assert packed == b"\x92\x92\x02\x03\x91\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"  # plain arrays
        assert simplerpc.materialize(conn.modules.matrix.full(2, 3, 1.5)).shape == (2, 3)


def test_c_client_against_the_c_server(c_server):
    """tests/c/ws_client.c uses the C client API, under valgrind."""
    import os
    import subprocess
    from pathlib import Path

    port, token, _ = c_server
    exe = str(Path(__file__).resolve().parents[2] / "target" / "c" / "ws_client")
    cmd = [exe, str(port), token]
    if os.environ.get("SIMPLERPC_NO_VALGRIND") != "1":
        cmd = ["valgrind", "--quiet", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=9"] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all checks passed" in out.stdout
