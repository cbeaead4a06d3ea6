"""Latency of simplerpc against the stock simplerpyc, same machine, loopback.

    .venv/bin/python bench/bench_rpc.py [--steps N]

Needs the package and simplerpyc==0.0.1a3 in the running Python (the test
command's .venv has both). Starts each server as a subprocess, then times:
- `materialize(f(1))` with a trivial remote function (two round trips:
  call, then materialize);
- an env step: `materialize(env.step(a))` where step returns
  (obs uint8[480, 640, 3] fresh each step, reward, done, truncated, info).
Four pairings: ours->ours, stock->stock, stock client->our server,
our client->stock server. Prints a Markdown table of median and p90 in µs.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

ENV_CODE = """
import numpy as np
class Env:
    def __init__(self):
        self.t = 0
    def step(self, action):
        self.t += 1
        obs = np.full((480, 640, 3), self.t % 256, dtype=np.uint8)
        return obs, 1.0, False, False, {"t": self.t}
env = Env()
def f(x):
    return x
"""


def start(cmd, port_re, token_re):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = token = None
    while port is None or token is None:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{cmd} did not start")
        m = re.search(port_re, line)
        port = int(m.group(1)) if m else port
        m = re.search(token_re, line)
        token = m.group(1) if m else token
    return proc, port, token


def timed(fn, n):
    for _ in range(max(50, n // 2)):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e6)
    out.sort()
    return statistics.median(out), out[int(len(out) * 0.9)]


def bench(client_mod, port, token, n):
    conn = client_mod.connect("127.0.0.1", port, token=token)
    conn.execute(ENV_CODE)
    f = conn.eval("f")
    env = conn.eval("env")
    step = env.step
    mat = client_mod.materialize
    call = timed(lambda: mat(f(1)), n * 5)
    obs_check = mat(step(0))[0]
    assert obs_check.shape == (480, 640, 3)
    st = timed(lambda: mat(step(0)), n)
    conn.disconnect()
    return call, st


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    import simplerpc
    import simplerpyc

    py = sys.executable
    ours = start([py, "-m", "simplerpc.server", "--host", "127.0.0.1", "--port", "0", "--log-level", "WARNING"], r"SIMPLERPC_PORT='(\d+)'", r"SIMPLERPC_TOKEN='([^']+)'")
    stock = start([py, "-m", "simplerpyc.server", "--host", "127.0.0.1", "--port", "0"], r"SIMPLERPYC_PORT='(\d+)'", r"SIMPLERPYC_TOKEN='([^']+)'")
    rows = []
    try:
        for name, mod, srv in [
            ("simplerpc client -> simplerpc server", simplerpc, ours),
            ("simplerpyc client -> simplerpyc server (reference)", simplerpyc, stock),
            ("simplerpyc client -> simplerpc server", simplerpyc, ours),
            ("simplerpc client -> simplerpyc server", simplerpc, stock),
        ]:
            (c50, c90), (s50, s90) = bench(mod, srv[1], srv[2], args.steps)
            rows.append((name, c50, c90, s50, s90))
    finally:
        for p in (ours[0], stock[0]):
            p.terminate()
            p.wait()
    import numpy

    print(f"python {sys.version.split()[0]}, numpy {numpy.__version__}, {os.cpu_count()} cores, {args.steps} steps\n")
    print("| pairing | materialize(f(1)) median | p90 | env step (480x640x3 uint8) median | p90 |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, c50, c90, s50, s90 in rows:
        print(f"| {name} | {c50:.0f} µs | {c90:.0f} µs | {s50:.0f} µs | {s90:.0f} µs |")


if __name__ == "__main__":
    main()
