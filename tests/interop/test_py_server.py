"""The Rust host serving Python objects (`PyExecutor`, example `py_server`
of bindings/python/pyexec, cargo feature pyo3) against the Python client:
the same answers and errors as `python -m simplerpc.server`."""

from __future__ import annotations

import os
import subprocess
from typing import Tuple

import numpy as np
import pytest

import simplerpc
from simplerpc import materialize

def test_a_rust_host_serves_python_objects(py_server: Tuple[int, str, subprocess.Popen]) -> None:
    port, token, _ = py_server
    with simplerpc.connect("127.0.0.1", port, token) as conn:
        conn.execute("import numpy as np\nclass Env:\n    def step(self, a):\n        return np.full((4, 3), a, 'uint8'), 1.0, False, {'t': 1}\nenv = Env()")
        obs, reward, done, info = materialize(conn.eval("env").step(7))
        assert obs.dtype == np.uint8 and obs.shape == (4, 3) and (obs == 7).all()
        assert (reward, done, info) == (1.0, False, {"t": 1})
        # Arrays as arguments, keyword arguments, builtins, modules, items.
        total = conn.builtins.sum(conn.modules.numpy.ones(300_000))
        assert materialize(total) == 300_000.0
        assert materialize(conn.modules.os.path.join("a", "b")) == os.path.join("a", "b")
        assert materialize(conn.eval("{'k': [1, 2]}")["k"][1]) == 2

        # Defined as in a script (__main__): dill sends it by value.
        ns: dict = {"__name__": "__main__"}
        exec("def square(x):\n    return x * x\n", ns)
        square = ns["square"]
        assert materialize(conn.teleport(square)(9)) == 81
        assert "env" in conn.namespace


def test_errors_keep_their_python_types(py_server: Tuple[int, str, subprocess.Popen]) -> None:
    port, token, _ = py_server
    with simplerpc.connect("127.0.0.1", port, token) as conn:
        with pytest.raises(ZeroDivisionError):
            materialize(conn.eval("1/0"))
        with pytest.raises(KeyError):
            materialize(conn.eval("{}")["missing"])
        with pytest.raises(ModuleNotFoundError):
            conn.execute("import no_such_module_here")


def test_each_client_has_its_own_globals(py_server: Tuple[int, str, subprocess.Popen]) -> None:
    port, token, _ = py_server
    with simplerpc.connect("127.0.0.1", port, token) as a, simplerpc.connect("127.0.0.1", port, token) as b:
        a.execute("x = 1")
        assert materialize(a.eval("x")) == 1
        with pytest.raises(NameError):
            materialize(b.eval("x"))
