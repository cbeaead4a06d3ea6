"""The child-process and Gymnasium figures of the harness (issue 12).

    bench/.venv/bin/python bench/children.py [--quick] [--port P --token T]

Prints JSON lines, one per figure, each with the samples in µs:
- ``spawn_first_call``: ``simplerpc.spawn()`` of this interpreter to the
  first answered call (``materialize(conn.builtins.len([1]))``); the child
  imports only simplerpc (the user's own imports are not counted);
- ``gather_8x10ms`` and ``sequential_8x10ms``: 8 spawned children whose
  step sleeps 10 ms, stepped once, with ``simplerpc.gather`` and one after
  another;
- ``env_step_spawn`` / ``remote_env_step_spawn``: the harness's env step
  (a 480x640x3 uint8 observation), as ``materialize(env.step(a))`` and as
  ``simplerpc.gym.RemoteEnv.step(a)`` over a spawned child (the stream
  transport); with ``--port``/``--token`` of a running server also
  ``env_step_ws`` / ``remote_env_step_ws`` over WebSocket;
- ``down_64mib_spawn`` / ``up_64mib_spawn``: a 64 MiB uint8 array over a
  spawned child, ``materialize(arr)`` of one made there and
  ``materialize(nbytes(a))`` of one sent there (with ``bytes``, the
  array's size, from which the harness shows MB/s).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import simplerpc
from simplerpc import materialize

SLEEPY = """
import time
def step():
    time.sleep(0.01)
    return 1
"""

# The harness's env (bench/peers.py SERVER_CODE), as a Gymnasium env.
IMAGE_ENV = """
import gymnasium
import numpy as np
_rng = np.random.default_rng(0)

class BenchImage(gymnasium.Env):
    def __init__(self):
        self.observation_space = gymnasium.spaces.Box(0, 255, (480, 640, 3), np.uint8)
        self.action_space = gymnasium.spaces.Discrete(2)
        self.obs = _rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
        self.t = 0
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.obs, {}
    def step(self, action):
        self.t += 1
        return self.obs, 1.0, False, False, {"t": self.t}

if "BenchImage-v0" not in gymnasium.registry:
    gymnasium.register("BenchImage-v0", entry_point=BenchImage)
env = BenchImage()
"""


def timed(fn, n, warmup=3):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e6)
    return out


def emit(workload, samples, **extra):
    print(json.dumps(dict(workload=workload, size=None, samples=samples, **extra)), flush=True)


def spawn_first_call(n):
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        conn = simplerpc.spawn()
        assert materialize(conn.builtins.len([1])) == 1
        samples.append((time.perf_counter() - t) * 1e6)
        conn.disconnect()
    emit("spawn_first_call", samples)


def eight_children(rounds):
    conns = [simplerpc.spawn() for _ in range(8)]
    try:
        steps = []
        for c in conns:
            c.execute(SLEEPY)
            steps.append(c.eval("step"))
        emit("gather_8x10ms", timed(lambda: simplerpc.gather([s() for s in steps]), rounds))
        emit("sequential_8x10ms", timed(lambda: [materialize(s()) for s in steps], rounds))
    finally:
        for c in conns:
            c.disconnect()


def env_steps(conn, suffix, n):
    from simplerpc.gym import RemoteEnv

    conn.execute(IMAGE_ENV)
    step = conn.eval("env").step
    r = materialize(step(0))
    assert r[0].shape == (480, 640, 3)
    emit(f"env_step_{suffix}", timed(lambda: materialize(step(0)), n))
    env = RemoteEnv("BenchImage-v0", conn=conn, disable_env_checker=True)  # it returns one array each step, as the harness env does
    env.reset(seed=0)
    emit(f"remote_env_step_{suffix}", timed(lambda: env.step(0), n))
    env.close()


def big_arrays_spawn(conn, n):
    """64 MiB each way over the stream transport, as the harness's sweep
    moves it over WebSocket."""
    size = 64 << 20
    remote = conn.eval(f"__import__('numpy').frombuffer(__import__('os').urandom({size}), 'u1')")
    nbytes = conn.eval("lambda a: a.nbytes")
    mine = np.frombuffer(np.random.default_rng(5).bytes(size), np.uint8)

    def down():
        assert materialize(remote).nbytes == size

    def up():
        assert materialize(nbytes(mine)) == size

    emit("down_64mib_spawn", timed(down, n), bytes=size)
    emit("up_64mib_spawn", timed(up, n), bytes=size)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int)
    ap.add_argument("--token")
    args = ap.parse_args()
    n = 20 if args.quick else 200
    spawn_first_call(5 if args.quick else 20)
    eight_children(10 if args.quick else 50)
    with simplerpc.spawn() as conn:
        env_steps(conn, "spawn", n)
        big_arrays_spawn(conn, 5 if args.quick else 30)
    if args.port:
        with simplerpc.connect(args.host, args.port, args.token) as conn:
            env_steps(conn, "ws", n)
    print(json.dumps({"numpy": np.__version__, "python": sys.version.split()[0]}), file=sys.stderr)


if __name__ == "__main__":
    main()
