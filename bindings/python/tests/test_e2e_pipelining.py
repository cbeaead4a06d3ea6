"""Promise pipelining with real servers on 127.0.0.1: a lazy chain and its
materialize are one round trip, errors keep their types and are raised at
the right wait and never lost, and a stock simplerpyc server gets today's
behaviour exactly. Round trips are counted by the library (each time the
client waited for the server), so these tests are deterministic."""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import pytest

import simplerpc
from simplerpc import materialize

ENV = """
import numpy as np
class Env:
    def __init__(self):
        self.t = 0
        self.obs = np.zeros((48, 64, 3), np.uint8)
    def step(self, action):
        self.t += 1
        return self.obs, float(action), False, False, {"t": self.t}
env = Env()
def f(x):
    return x
"""


def trips(conn: Any) -> int:
    return conn._native.round_trips


def test_our_server_accepts_promises(conn: Any) -> None:
    assert conn._native.promises


def test_the_three_patterns_are_one_round_trip_each(conn: Any) -> None:
    conn.execute(ENV)
    f, env = conn.eval("f"), conn.eval("env")  # pipelined: no wait yet
    np_ = conn.modules.numpy  # eager: one wait (which also carries the two evals)
    before = trips(conn)
    assert materialize(f(1)) == 1
    assert trips(conn) - before == 1
    before = trips(conn)
    obs, reward, terminated, truncated, info = materialize(env.step(0.5))
    assert obs.shape == (48, 64, 3) and reward == 0.5 and info == {"t": 1}
    assert trips(conn) - before == 1
    before = trips(conn)
    assert materialize(np_.zeros(3)).tolist() == [0.0, 0.0, 0.0]
    assert trips(conn) - before == 1
    # The same module proxy the second time, without a request.
    before = trips(conn)
    assert conn.modules.numpy is np_
    assert trips(conn) == before


def test_an_unknown_module_still_raises_at_once(conn: Any) -> None:
    with pytest.raises(ModuleNotFoundError):
        conn.modules.no_such_module_pipelining


def test_the_error_of_a_chain_is_raised_by_its_materialize_with_its_type(conn: Any) -> None:
    d = conn.eval("{'a': 1}")
    missing = d["missing"]  # fails on the server, raises nothing here
    with pytest.raises(KeyError) as e:
        materialize(missing.bit_length())  # built on the failed request: not run
    assert isinstance(e.value, simplerpc.RemoteException)
    assert "missing" in str(e.value)
    # Reported once: the next wait is clean, and the connection goes on.
    assert materialize(conn.eval("1 + 1")) == 2


def test_an_error_nobody_waits_for_is_raised_at_the_next_wait_naming_its_expression(conn: Any) -> None:
    conn.execute("import os")
    unused = conn.eval("1 / 0")  # nobody materializes this one
    with pytest.raises(ZeroDivisionError) as e:
        materialize(conn.eval("2 + 2"))
    assert "eval('1 / 0')" in str(e.value)
    assert materialize(conn.eval("3")) == 3  # raised once, not again
    del unused


def test_errors_are_raised_in_order_and_none_is_lost(conn: Any) -> None:
    first = conn.eval("undefined_one")
    second = conn.eval("[][1]")
    raised = []
    for _ in range(3):
        try:
            materialize(conn.eval("0"))
        except Exception as e:  # noqa: BLE001 - collecting what the waits raise
            raised.append(type(e))
    assert all(issubclass(t, simplerpc.RemoteException) for t in raised)
    assert [issubclass(t, NameError) for t in raised[:1]] == [True]
    assert [issubclass(t, IndexError) for t in raised[1:2]] == [True]
    assert len(raised) == 2, raised
    del first, second


def test_dropped_promises_free_their_objects(conn: Any) -> None:
    conn.execute("import gc as _gc\nclass Probe:\n    pass\n")
    count = conn.eval("lambda: sum(1 for o in _gc.get_objects() if type(o).__name__ == 'Probe')")
    make = conn.eval("Probe")
    before = materialize(count())
    probes = [make() for _ in range(20)]  # pipelined, not waited for
    assert materialize(count()) == before + 20
    del probes
    gc.collect()
    materialize(conn.eval("0"))  # carries the releases
    assert materialize(count()) == before


def test_live_objects_goes_down_after_del_and_the_next_request(conn: Any) -> None:
    base = conn.live_objects()
    f = conn.eval("lambda x: [x]")
    results = [f(i) for i in range(10)]  # pipelined, not waited for
    assert materialize(results[-1]) == [9]
    assert conn.live_objects() == base + 11  # f and its ten results
    del results
    gc.collect()
    # The releases ride on the stats request itself: already counted.
    assert conn.live_objects() == base + 1
    del f
    gc.collect()
    assert conn.live_objects() == base
    trips_before = trips(conn)
    conn.live_objects()
    assert trips(conn) - trips_before == 1


def test_a_raised_error_frees_the_proxies_of_the_wait_without_the_cyclic_gc(conn: Any) -> None:
    # A wait that raises (its own error, or an earlier request's nobody
    # waited for), or an argument without wire form, must leave no
    # reference cycle through the frames that raised: such a
    # cycle kept the proxy being waited for, and its server object, until
    # Python's cyclic GC happened to run (against --max-objects too).
    d = conn.eval("{}")
    blen = conn.builtins.len
    materialize(blen([1]))
    with pytest.raises(AttributeError):  # the first setattr caches builtins.setattr
        conn.eval("object()").x = 0
    with pytest.raises(TypeError):  # and the first unsendable argument what it needs
        blen(conn.eval("[0]"), lambda: 0)
    gc.collect()
    base = conn.live_objects()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(5):
            unwaited = d["missing"]
            del unwaited  # an error nobody waits for...
            try:
                materialize(blen([i]))  # ...raised by this wait instead of its value
            except KeyError:
                pass
            frozen = conn.eval("object()")
            try:
                frozen.x = i  # its own error, raised with the proxy in the frames
            except AttributeError:
                pass
            del frozen
            held = conn.eval("[0]")
            try:
                blen(held, lambda: 0)  # no wire form: a TypeError before anything is sent
            except TypeError:
                pass
            del held
        assert conn.live_objects() == base
    finally:
        if enabled:
            gc.enable()


def test_live_objects_needs_our_server(reference_server: Any) -> None:
    host, port, token, _ = reference_server
    with simplerpc.connect(host, port, token) as c:
        before = trips(c)
        with pytest.raises(simplerpc.SimpleRPCError, match="stock simplerpyc"):
            c.live_objects()
        assert trips(c) == before  # nothing was sent
        assert materialize(c.builtins.len([1, 2])) == 2  # the connection goes on


def test_a_stock_server_gets_todays_behaviour(reference_server: Any) -> None:
    host, port, token, _ = reference_server
    with simplerpc.connect(host, port, token) as c:
        assert not c._native.promises
        before = trips(c)
        p = c.eval("{'a': 1}")
        assert trips(c) - before == 1  # every operation waits
        with pytest.raises(KeyError):
            p["missing"]  # and fails at once
        assert materialize(c.builtins.len([1, 2])) == 2


def test_probes_of_private_names_raise_at_once(conn: Any) -> None:
    """hasattr() and getattr(obj, name, default) on a leading-underscore name
    (what IPython and duck-typing code probe for) wait for their answer."""
    one = conn.eval("1")
    assert not hasattr(one, "_no_such_private_name")
    assert getattr(one, "_repr_html_", None) is None
    assert materialize(conn.eval("2")) == 2  # and no failure is left behind
    # A public name is pipelined: its error comes with the next wait.
    missing = conn.modules.os.no_such_public_name
    with pytest.raises(AttributeError):
        materialize(missing)


def test_a_closed_connection_patches_nothing(server: Any) -> None:
    host, port, token, _ = server
    c = simplerpc.connect(host, port, token)
    assert c.modules.json is c.modules.json
    c.disconnect()
    with pytest.raises(simplerpc.ConnectionClosedError):
        c.patch_module("json")
    with pytest.raises(simplerpc.ConnectionClosedError):
        c.modules.json


def test_arguments_over_the_limit_are_refused_before_they_are_packed(conn: Any) -> None:
    limit = conn._native.max_message_size
    assert limit == 2 << 30
    huge = np.broadcast_to(np.zeros(1, np.uint8), (limit + 1,))  # no memory behind it
    with pytest.raises(ValueError, match="over the message limit"):
        conn.builtins.len(huge)
    with pytest.raises(ValueError, match=f"the key takes [0-9]+ bytes, over the message limit of {limit} bytes"):
        conn.eval("[]")[[huge]]
    assert materialize(conn.builtins.len([1, 2])) == 2  # the connection goes on


CONCURRENT_FIRST_ARRAYS = r'''
import sys, threading
import simplerpc
assert "numpy" not in sys.modules
errors = []
def worker():
    try:
        with simplerpc.connect(HOST, PORT, TOKEN) as c:
            a = simplerpc.materialize(c.modules.numpy.arange(6).reshape(2, 3))
            assert a.shape == (2, 3) and a[1, 2] == 5
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=worker) for _ in range(8)]
[t.start() for t in threads]
[t.join(60) for t in threads]
print(errors)
'''


def test_threads_decoding_their_first_arrays_at_once(server: Any) -> None:
    """numpy is imported by the first decode: the other threads wait for that
    import instead of using a half-initialised module."""
    import subprocess
    import sys

    host, port, token, _ = server
    script = CONCURRENT_FIRST_ARRAYS.replace("HOST", repr(host)).replace("PORT", str(port)).replace("TOKEN", repr(token))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]", run.stdout
