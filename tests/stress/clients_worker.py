"""One process of the many-clients probe: ``--threads`` clients, one connection each.

Run by test_stress.py (never by pytest itself):

    python clients_worker.py --target python|rust --host H --port P --token T
        --first-id C --threads N --calls K --time-limit S

Client ``c`` makes ``K`` checked calls whose answers the server computes from
``(c, i)``, ``i`` the call number, so a lost, wrong, duplicated or misordered
answer is seen:

* python server: ``answer(c, i)`` returns ``[c, i, n, h(c, i)]`` where ``n``
  counts the calls of this connection on the server (so it must be ``i + 1``:
  every call ran once, in order); every 97th call also materializes a
  ~100 KB string made from ``(c, i)`` (a large, streamed response).
* rust sim_server: ``sim.add(c * 1e6, i)`` and ``sim.echo([c, i, s])``; every
  50th call steps the client's own ``Env`` and checks its step count.

Calls go in pipelined batches of 1 to 8 (our client sends a call and returns
a proxy at once), whose answers are fetched in order or in reverse order.

Prints one line ``RESULT {json}``: per client, the calls checked and the first
failures. Exits by ``os._exit`` within ``--time-limit``, whatever the threads do.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from typing import Any, Dict, List

import simplerpc
from simplerpc import materialize

PY_SOURCE = """
n = 0
def answer(c, i):
    global n
    n += 1
    return [c, i, n, (c * 1000003 + i * 7919) % 2147483647]
def big(c, i):
    return (f"{c}:{i};" * 20000)[:100000]
"""


def expected_answer(c: int, i: int) -> List[int]:
    return [c, i, i + 1, (c * 1000003 + i * 7919) % 2147483647]


def expected_big(c: int, i: int) -> str:
    return (f"{c}:{i};" * 20000)[:100000]


def batches(calls: int, c: int):
    """(start, size, reverse) of the pipelined batches of client ``c``."""
    i = 0
    k = 0
    while i < calls:
        size = min(1 + (c + k) % 8, calls - i)
        yield i, size, (c + k) % 3 == 0
        i += size
        k += 1


def run_python_client(conn: Any, c: int, calls: int, stats: Dict[str, Any], stop: float) -> None:
    conn.execute(PY_SOURCE)
    answer = conn.eval("answer")
    big = conn.eval("big")
    for start, size, reverse in batches(calls, c):
        if time.monotonic() > stop:
            stats["errors"].append(f"out of time at call {start}")
            return
        proxies = [(i, answer(c, i)) for i in range(start, start + size)]
        for i, p in reversed(proxies) if reverse else proxies:
            got = materialize(p)
            want = expected_answer(c, i)
            if got != want:
                stats["errors"].append(f"call {i}: got {got!r}, want {want!r}")
            else:
                stats["ok"] += 1
        for i in range(start, start + size):
            if i % 97 == 96:
                got = materialize(big(c, i))
                if got != expected_big(c, i):
                    stats["errors"].append(f"big {i}: got {len(got)} chars starting {got[:40]!r}")
                else:
                    stats["big"] += 1


def run_rust_client(conn: Any, c: int, calls: int, stats: Dict[str, Any], stop: float) -> None:
    sim = conn.modules.sim
    env = sim.make(c)
    steps = 0
    for start, size, reverse in batches(calls, c):
        if time.monotonic() > stop:
            stats["errors"].append(f"out of time at call {start}")
            return
        proxies = []
        for i in range(start, start + size):
            if i % 2:
                proxies.append((i, sim.echo([c, i, f"c{c}i{i}"]), [c, i, f"c{c}i{i}"]))
            else:
                proxies.append((i, sim.add(c * 1e6, i), c * 1e6 + i))
        for i, p, want in reversed(proxies) if reverse else proxies:
            got = materialize(p)
            if got != want:
                stats["errors"].append(f"call {i}: got {got!r}, want {want!r}")
            else:
                stats["ok"] += 1
        for i in range(start, start + size):
            if i % 50 == 49:
                env.step(0.5)  # pipelined; its result (an image) is released unread
                steps += 1
                got = materialize(env)
                if got != steps:
                    stats["errors"].append(f"env of client {c}: {got} steps after {steps}")
                else:
                    stats["big"] += 1


def client(args: argparse.Namespace, c: int, stats: Dict[str, Any], stop: float) -> None:
    try:
        # timeout: a request that waits this long fails instead of hanging the probe.
        conn = simplerpc.connect(args.host, args.port, args.token, timeout=args.time_limit)
        try:
            if args.target == "python":
                run_python_client(conn, c, args.calls, stats, stop)
            else:
                run_rust_client(conn, c, args.calls, stats, stop)
        finally:
            conn.disconnect()
    except BaseException:  # noqa: BLE001 - reported to the test
        stats["errors"].append(traceback.format_exc(limit=6))
    finally:
        stats["done"] = True


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--target", choices=("python", "rust"), required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--first-id", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--calls", type=int, required=True)
    p.add_argument("--time-limit", type=float, required=True)
    args = p.parse_args()
    stop = time.monotonic() + args.time_limit
    stats = {
        c: {"client": c, "ok": 0, "big": 0, "errors": [], "done": False}
        for c in range(args.first_id, args.first_id + args.threads)
    }
    threads = [
        threading.Thread(target=client, args=(args, c, stats[c], stop), name=f"client-{c}", daemon=True)
        for c in stats
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, stop + 5 - time.monotonic()))
    for s in stats.values():
        s["errors"] = s["errors"][:5]
    print("RESULT " + json.dumps(list(stats.values())), flush=True)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
