"""A 1 GiB round trip by hand: time and peak RSS on each side.

    .venv/bin/python bench/gib.py [MiB]      (default 1024)

Starts `python -m simplerpc.server` on 127.0.0.1, sends a MiB-sized uint64
array up (kept on the server), materializes it back, checks it, and prints
the time of each direction and the peak RSS (VmHWM) of the client (which
holds its own array too) and of the server. Not part of the test suite."""

import re
import subprocess
import sys
import time

import numpy as np

import simplerpc
from simplerpc import materialize


def status(field, pid="self"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) // 1024
    raise LookupError(field)


def main():
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    server = subprocess.Popen(
        [sys.executable, "-m", "simplerpc.server", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        port = token = None
        for line in server.stdout:
            m = re.search(r"SIMPLERPC_PORT='?(\d+)", line)
            port = port or (m and m.group(1))
            m = re.search(r"SIMPLERPC_TOKEN='?([^'\s]+)", line)
            token = token or (m and m.group(1))
            if port and token:
                break
        local = np.arange((mib << 20) // 8, dtype=np.uint64)
        with simplerpc.connect("127.0.0.1", int(port), token) as conn:
            ident, size = conn.eval("lambda a: a"), conn.eval("len")
            materialize(size(np.zeros(3)))
            print(f"before: client {status('VmRSS:')} MiB (its array included), server {status('VmRSS:', server.pid)} MiB")
            t = time.perf_counter()
            remote = ident(local)
            materialize(size(remote))
            up = time.perf_counter() - t
            t = time.perf_counter()
            back = materialize(remote)
            down = time.perf_counter() - t
            assert back[-1] == local[-1] and back.shape == local.shape
            print(f"{mib} MiB up {up:.2f} s, down (materialize) {down:.2f} s")
            print(f"peak RSS: client {status('VmHWM:')} MiB, server {status('VmHWM:', server.pid)} MiB")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
