"""A soak run: a long sequence of env steps, and what both processes hold over time.

    .venv/bin/python bench/soak.py ws      [--seconds 180] [--server-python sim-venv/bin/python]
    .venv/bin/python bench/soak.py wss|spawn|rust|gym ...

By hand, not a test; it stops by itself (``--seconds``, ``--max-steps``) and
talks only to 127.0.0.1. A client (this process) steps a simulator
(``bench/soak_env.py``, or the Rust ``sim_server`` example's ``sim.Env``)
over one transport:

- ``ws``: ``python -m simplerpc.server`` in its own process (``--server-python``);
- ``wss``: the same with a certificate made by the ``lab_cert`` example;
- ``spawn``: ``simplerpc.spawn(server_python)``, the stream transport;
- ``rust``: the ``sim_server`` example (``target/release/examples/sim_server``);
- ``gym``: ``simplerpc.gym.RemoteEnv("soak_env:Soak-v0", conn=spawn(...))``.

Each step returns a fresh 480x640x3 uint8 observation with reward,
terminated, truncated and info (materialized: one round trip); an episode is
200 steps, then a reset. Every ``--raise-every`` steps the env raises (a
``ValueError`` the client catches; half of them from a proxy nobody
materializes, reported by the next wait), every ``--proxy-every`` steps
proxies are made and dropped (``env.action_space``, its ``n`` and
``sample()``, attributes), and for ``ws``/``wss``/``rust`` the client
reconnects every ``--reconnect-every`` steps (a new connection and env).

Every ``--sample-every`` seconds it records both processes' RSS (VmRSS of
/proc), open fds and threads, the objects the connection holds on the server
(``conn.live_objects()``) and, in the client, the live ``RPCProxy`` objects
and pending expressions. At the end: a table over time, and per process the
RSS slope after the warm-up (a least-squares fit, KiB per 10k steps) and the
fd and thread growth, with a verdict; ``--json`` writes everything.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import gc
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

import simplerpc
from simplerpc import materialize
from simplerpc._native import speedups_enabled

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOST = "127.0.0.1"
SHAPE = (480, 640, 3)
KiB = 1024
TRANSPORTS = ("ws", "wss", "spawn", "rust", "gym")

# Verdict thresholds: past both, a process "grows". 100 KiB per 10k steps is
# 10 bytes a step (a leaked small object every few steps shows); the total
# must also pass 4 MiB, above what glibc's arenas wander by with 1 MiB images.
SLOPE_LIMIT_KIB = 100.0
GROWTH_LIMIT_KIB = 4096.0

# Runs first in a server child: SIGKILL when this process dies; SIGINT back
# to its default (a script's `cmd &` starts this process with SIGINT ignored,
# and an exec keeps that: the server would never see the stop), then exec.
_LAUNCHER = """
import ctypes, os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_PDEATHSIG) failed")
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""

_HEAP_EXPR = "(__import__('sys').getallocatedblocks(), len(__import__('gc').get_objects()))"

_PORT_RE = re.compile(r"export SIMPLERPC_PORT='?(\d+)'?")
_TOKEN_RE = re.compile(r"export SIMPLERPC_TOKEN='?([^'\s]+)'?")


# ------------------------------------------------------------------ /proc


def proc_figures(pid: int) -> Dict[str, int]:
    """RSS (KiB), open fds and threads of ``pid``, from /proc."""
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
                break
    return {
        "rss_kib": rss,
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": len(os.listdir(f"/proc/{pid}/task")),
    }


# --------------------------------------------------------------- servers


class ServerProcess:
    """A server in its own process (``ws``, ``wss``, ``rust``), until :meth:`stop`."""

    def __init__(self, argv: List[str], cwd: Path, kind: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMPLERPC_", "SIMPLERPYC_"))}
        env["PYTHONUNBUFFERED"] = "1"
        self.kind = kind
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(os.getpid()), argv[0], *argv[1:]],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, cwd=str(cwd), env=env,
        )
        self.lines: List[str] = []
        found: Dict[str, str] = {}
        ready = threading.Event()

        def drain() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line)
                for key, rx in (("port", _PORT_RE), ("token", _TOKEN_RE)):
                    m = rx.search(line)
                    if m and key not in found:
                        found[key] = m.group(1)
                if len(found) == 2:
                    ready.set()
            ready.set()

        self._reader = threading.Thread(target=drain, daemon=True)
        self._reader.start()
        if not ready.wait(60) or len(found) < 2:
            self.proc.kill()
            raise SystemExit(f"{' '.join(argv)} did not start:\n{''.join(self.lines)}")
        self.port = int(found["port"])
        self.token = found["token"]
        self.exit_code: Optional[int] = None
        self.stacks = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        """SIGINT (Python: must exit within 15 s), else SIGKILL; the exit code is kept."""
        if self.proc.poll() is None:
            if self.kind == "rust":
                self.proc.kill()
            else:
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.lines.append("[soak] no exit within 15 s of SIGINT: its threads' stacks (gdb), then killed\n")
                with contextlib.suppress(Exception):
                    gdb = subprocess.run(
                        ["gdb", "-p", str(self.proc.pid), "-batch", "-ex", "thread apply all bt"],
                        capture_output=True, text=True, timeout=60,
                    )
                    self.stacks = gdb.stdout
                    self.lines.append(gdb.stdout[-6000:])
                self.proc.kill()
                self.proc.wait()
        self.exit_code = self.proc.returncode
        self._reader.join(5)


def lab_cert(directory: Path) -> Path:
    """A CA and a certificate for 127.0.0.1 and localhost (the lab_cert example)."""
    exe = target_dir() / "release" / "examples" / "lab_cert"
    if exe.exists():
        cmd = [str(exe), str(directory), HOST, "localhost"]
    else:
        cmd = ["cargo", "run", "-q", "--release", "-p", "simplerpc-ws", "--example", "lab_cert", "--",
               str(directory), HOST, "localhost"]
    subprocess.run(cmd, check=True, cwd=str(ROOT))
    return directory


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


# ---------------------------------------------------------------- drivers


class Driver:
    """One transport: connect, make the env, step it, churn proxies."""

    reconnects = True

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.conn: Any = None
        self.env: Any = None
        self.server: Optional[ServerProcess] = None
        self.seed = 0

    # server side
    def start(self) -> None:
        pass

    def server_pid(self) -> int:
        assert self.server is not None
        return self.server.pid

    def stop(self) -> Dict[str, Any]:
        if self.server is None:
            return {}
        self.server.stop()
        return {
            "server_exit_code": self.server.exit_code,
            "server_output_tail": "".join(self.server.lines)[-2000:],
            "server_stacks_at_stop": self.server.stacks,
        }

    # client side
    def connect(self) -> None:
        raise NotImplementedError

    def disconnect(self) -> None:
        self.env = None
        if self.conn is not None:
            self.conn.disconnect()
            self.conn = None

    def reset(self) -> np.ndarray:
        self.seed += 1
        obs, _info = materialize(self.env.reset(seed=self.seed))
        return obs

    def step(self, action: int) -> tuple:
        return materialize(self.env.step(action))

    def raise_remote(self, n: int) -> str:
        """A remote ValueError, caught: materialized, or (odd n) from a
        dropped proxy and reported by the next wait."""
        if n % 2:
            self.env.step(-1)  # dropped at once: its error rides on the next wait
            try:
                materialize(self.env.t)
            except ValueError:
                return "next wait"
            return "not raised"
        try:
            materialize(self.env.step(-1))
        except ValueError:
            return "raised"
        return "not raised"

    def churn(self) -> None:
        space = self.env.action_space
        n = materialize(space.n)
        assert n == 4, n
        a = materialize(space.sample())
        assert 0 <= a < 4, a
        self.env.seed  # a promise nobody materializes
        materialize(self.env.episode)

    def live_objects(self) -> Optional[int]:
        return self.conn.live_objects()

    def client_exprs(self) -> Optional[int]:
        return len(getattr(self.conn, "_exprs", ()))

    python_server = True

    def server_heap(self) -> Optional[List[int]]:
        """A Python server's ``sys.getallocatedblocks()`` and gc-tracked
        objects: growth there is Python objects kept, growth of RSS alone
        is native memory or the allocators' (one round trip)."""
        if not self.python_server:
            return None
        return list(materialize(self.conn.eval(_HEAP_EXPR)))


class WsDriver(Driver):
    tls = False

    def start(self) -> None:
        argv = [self.args.server_python, "-m", "simplerpc.server", "--host", HOST, "--port", "0"]
        self.cafile: Optional[str] = None
        if self.tls:
            d = lab_cert(Path(self.args.tmp) / "cert")
            argv += ["--certfile", str(d / "cert.pem"), "--keyfile", str(d / "key.pem")]
            self.cafile = str(d / "ca.pem")
        self.server = ServerProcess(argv, HERE, "python")

    def connect(self) -> None:
        assert self.server is not None
        scheme = "wss" if self.tls else "ws"
        kw = {"cafile": self.cafile} if self.tls else {}
        self.conn = simplerpc.connect(f"{scheme}://{HOST}:{self.server.port}", token=self.server.token, timeout=120, **kw)
        self.env = self.conn.modules.soak_env.SoakEnv(self.seed)


class WssDriver(WsDriver):
    tls = True


class SpawnDriver(Driver):
    reconnects = False  # a reconnect would be a new server process

    def connect(self) -> None:
        self.conn = simplerpc.spawn(self.args.server_python, sys_path=[str(HERE)], timeout=120)
        self.env = self.conn.modules.soak_env.SoakEnv(self.seed)

    def server_pid(self) -> int:
        return self.conn.pid


class RustDriver(Driver):
    """The ``sim_server`` example: ``sim.make(seed)`` -> ``Env`` with
    ``reset(seed) -> obs`` and ``step(a) -> {obs, reward, done, truncated, info}``."""

    python_server = False

    def start(self) -> None:
        exe = Path(self.args.sim_server or target_dir() / "release" / "examples" / "sim_server")
        if not exe.exists():
            raise SystemExit(f"{exe} is missing: cargo build --release -p simplerpc-ws --example sim_server")
        self.server = ServerProcess([str(exe), "--host", HOST, "--port", "0"], HERE, "rust")

    def connect(self) -> None:
        assert self.server is not None
        self.conn = simplerpc.connect(f"ws://{HOST}:{self.server.port}", token=self.server.token, timeout=120)
        self.sim = self.conn.modules.sim
        self.env = self.sim.make(self.seed)

    def disconnect(self) -> None:
        self.sim = None
        super().disconnect()

    def reset(self) -> np.ndarray:
        self.seed += 1
        return materialize(self.env.reset(self.seed))

    def step(self, action: int) -> tuple:
        d = materialize(self.env.step(float(action)))
        return d["obs"], d["reward"], d["done"], d["truncated"], d["info"]

    def raise_remote(self, n: int) -> str:
        # The registry raises AttributeError for a method the class lacks.
        if n % 2:
            self.env.missing(1)
            try:
                materialize(self.sim.add(1.0, 2.0))
            except AttributeError:
                return "next wait"
            return "not raised"
        try:
            materialize(self.env.missing(1))
        except AttributeError:
            return "raised"
        return "not raised"

    def churn(self) -> None:
        assert materialize(self.sim.add(2.0, 3.0)) == 5.0
        self.sim.version  # a promise nobody materializes
        assert materialize(self.sim.echo({"k": [1, 2]})) == {"k": [1, 2]}
        materialize(self.env)  # the step count


class GymDriver(Driver):
    reconnects = False

    def connect(self) -> None:
        from simplerpc.gym import RemoteEnv

        self.conn = simplerpc.spawn(self.args.server_python, sys_path=[str(HERE)], timeout=120)
        self.env = RemoteEnv("soak_env:Soak-v0", conn=self.conn)

    def disconnect(self) -> None:
        if self.env is not None:
            self.env.close()
        super().disconnect()

    def server_pid(self) -> int:
        return self.conn.pid

    def reset(self) -> np.ndarray:
        self.seed += 1
        obs, _info = self.env.reset(seed=self.seed)
        return obs

    def step(self, action: int) -> tuple:
        return self.env.step(action)

    def raise_remote(self, n: int) -> str:
        try:
            self.env.step(-1)
        except ValueError:
            return "raised"
        return "not raised"

    def churn(self) -> None:
        a = self.env.action_space.sample()  # local copy of the space
        assert 0 <= a < 4
        sim = self.env.remote.unwrapped._sim
        materialize(sim.t)
        sim.episode  # a promise nobody materializes


DRIVERS = {"ws": WsDriver, "wss": WssDriver, "spawn": SpawnDriver, "rust": RustDriver, "gym": GymDriver}


# ------------------------------------------------------------------- run


def count_proxies() -> int:
    from simplerpc._proxy import RPCProxy

    return sum(1 for o in gc.get_objects() if type(o) is RPCProxy)


def sample(driver: Driver, t0: float, steps: int, episodes: int, **extra: Any) -> Dict[str, Any]:
    row: Dict[str, Any] = {"t": round(time.monotonic() - t0, 2), "steps": steps, "episodes": episodes}
    row["client"] = proc_figures(os.getpid())
    try:
        row["server"] = proc_figures(driver.server_pid())
    except (OSError, AttributeError):
        row["server"] = None
    row["live_objects"] = driver.live_objects() if driver.conn is not None else None
    row["client_proxies"] = count_proxies()
    row["client_exprs"] = driver.client_exprs() if driver.conn is not None else None
    row["server_heap"] = driver.server_heap() if driver.conn is not None else None
    row.update(extra)
    return row


def fit_slope(xs: List[float], ys: List[float]) -> float:
    """Least-squares slope of ys over xs (0 for fewer than two points)."""
    if len(xs) < 2 or max(xs) == min(xs):
        return 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    num = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    den = sum((x - mx) ** 2 for x in xs)
    return num / den


def summarize(rows: List[Dict[str, Any]], warmup_s: float) -> Dict[str, Any]:
    warm = [r for r in rows if r["t"] >= warmup_s and r.get("phase") == "run"]
    if len(warm) < 2:
        warm = [r for r in rows if r.get("phase") == "run"][-2:]
    out: Dict[str, Any] = {"warm_samples": len(warm)}
    for side in ("client", "server"):
        pts = [r for r in warm if r[side] is not None]
        if len(pts) < 2:
            out[side] = None
            continue
        steps = [float(r["steps"]) for r in pts]
        rss = [float(r[side]["rss_kib"]) for r in pts]
        slope = fit_slope(steps, rss) * 10_000
        growth = rss[-1] - rss[0]
        fds = [r[side]["fds"] for r in pts]
        threads = [r[side]["threads"] for r in pts]
        s = {
            "rss_start_kib": rows[0][side]["rss_kib"] if rows[0][side] else None,
            "rss_warm_kib": rss[0],
            "rss_end_kib": rss[-1],
            "rss_max_kib": max(rss),
            "rss_slope_kib_per_10k_steps": round(slope, 1),
            "rss_growth_after_warmup_kib": growth,
            "fds_warm": fds[0], "fds_end": fds[-1], "fds_max": max(fds),
            "threads_warm": threads[0], "threads_end": threads[-1], "threads_max": max(threads),
        }
        problems = []
        if slope > SLOPE_LIMIT_KIB and growth > GROWTH_LIMIT_KIB:
            problems.append(f"RSS grows {slope:.0f} KiB per 10k steps (+{growth / KiB:.1f} MiB after warm-up)")
        if max(fds) > fds[0]:
            problems.append(f"fds {fds[0]} -> max {max(fds)}")
        if max(threads) > threads[0]:
            problems.append(f"threads {threads[0]} -> max {max(threads)}")
        s["verdict"] = "; ".join(problems) if problems else "flat"
        out[side] = s
    lo = [r["live_objects"] for r in warm if r["live_objects"] is not None]
    out["live_objects_max"] = max(lo) if lo else None
    out["live_objects_last"] = lo[-1] if lo else None
    cp = [r["client_proxies"] for r in warm]
    out["client_proxies_max"] = max(cp) if cp else None
    heap = [r for r in warm if r.get("server_heap")]
    if len(heap) >= 2:
        xs = [float(r["steps"]) for r in heap]
        out["server_blocks_slope_per_10k_steps"] = round(fit_slope(xs, [float(r["server_heap"][0]) for r in heap]) * 10_000, 1)
        out["server_gc_objects_slope_per_10k_steps"] = round(fit_slope(xs, [float(r["server_heap"][1]) for r in heap]) * 10_000, 1)
        out["server_blocks_warm_end"] = [heap[0]["server_heap"][0], heap[-1]["server_heap"][0]]
        out["server_gc_objects_warm_end"] = [heap[0]["server_heap"][1], heap[-1]["server_heap"][1]]
    return out


def print_table(rows: List[Dict[str, Any]]) -> None:
    head = f"{'t s':>7} {'steps':>8} {'ep':>5} | {'cli RSS MiB':>11} {'fd':>4} {'thr':>4} | {'srv RSS MiB':>11} {'fd':>4} {'thr':>4} | {'live':>5} {'proxies':>7} {'exprs':>5} | {'srv blocks':>10} {'gc objs':>7}  phase"
    print(head)
    print("-" * len(head))
    for r in rows:
        c, s = r["client"], r["server"] or {"rss_kib": 0, "fds": 0, "threads": 0}
        heap = r.get("server_heap") or ["-", "-"]
        print(
            f"{r['t']:7.1f} {r['steps']:8d} {r['episodes']:5d} | {c['rss_kib'] / KiB:11.1f} {c['fds']:4d} {c['threads']:4d} | "
            f"{s['rss_kib'] / KiB:11.1f} {s['fds']:4d} {s['threads']:4d} | {str(r['live_objects']):>5} {r['client_proxies']:7d} "
            f"{str(r['client_exprs']):>5} | {heap[0]:>10} {heap[1]:>7}  {r.get('phase', '')}"
        )


def run(args: argparse.Namespace) -> Dict[str, Any]:
    driver = DRIVERS[args.transport](args)
    reconnect_every = args.reconnect_every if driver.reconnects else 0
    rows: List[Dict[str, Any]] = []
    counts = {"steps": 0, "episodes": 0, "resets": 0, "raised": 0, "next_wait": 0, "not_raised": 0, "churns": 0,
              "reconnects": 0, "images_checked": 0}
    driver.start()
    t0 = time.monotonic()
    deadline = t0 + args.seconds
    try:
        driver.connect()
        obs = driver.reset()
        rows.append(sample(driver, t0, 0, 0, phase="start"))
        next_sample = time.monotonic() + args.sample_every
        since_connect = 0
        while counts["steps"] < args.max_steps and time.monotonic() < deadline:
            step = counts["steps"]
            obs, reward, terminated, truncated, info = driver.step(step % 4)
            counts["steps"] += 1
            since_connect += 1
            if step % 1000 == 0:  # the image is what the server made, on this side
                assert obs.shape == SHAPE and obs.dtype == np.uint8 and obs.flags.writeable, (obs.shape, obs.dtype)
                counts["images_checked"] += 1
            if terminated or truncated:
                counts["episodes"] += 1
                obs = driver.reset()
                counts["resets"] += 1
            if args.raise_every and step % args.raise_every == args.raise_every - 1:
                how = driver.raise_remote(step // args.raise_every)
                counts[how.replace(" ", "_")] += 1
            if args.proxy_every and step % args.proxy_every == args.proxy_every - 1:
                driver.churn()
                counts["churns"] += 1
            if reconnect_every and since_connect >= reconnect_every:
                driver.disconnect()
                driver.connect()
                obs = driver.reset()
                counts["reconnects"] += 1
                since_connect = 0
            if time.monotonic() >= next_sample:
                rows.append(sample(driver, t0, counts["steps"], counts["episodes"], phase="run"))
                next_sample += args.sample_every
        rows.append(sample(driver, t0, counts["steps"], counts["episodes"], phase="run"))
        elapsed = time.monotonic() - t0
        driver.disconnect()
        # The server with no client (ws, wss, rust): what it keeps once the connection is gone.
        if driver.server is not None:
            time.sleep(3)
            rows.append(sample(driver, t0, counts["steps"], counts["episodes"], phase="disconnected"))
    finally:
        with contextlib.suppress(Exception):
            driver.disconnect()
        stopped = driver.stop()
    summary = summarize(rows, args.warmup)
    return {
        "transport": args.transport,
        "server_python": args.server_python,
        "server_numpy": None,
        "client_numpy": np.__version__,
        "speedups": speedups_enabled(),
        "seconds": round(elapsed, 1),
        "steps_per_s": round(counts["steps"] / elapsed, 1),
        "counts": counts,
        "args": {k: v for k, v in vars(args).items() if k != "tmp"},
        "summary": summary,
        "samples": rows,
        **stopped,
    }


def server_numpy(python: str) -> str:
    out = subprocess.run([python, "-c", "import numpy; print(numpy.__version__)"], capture_output=True, text=True)
    return out.stdout.strip() or out.stderr.strip()[-200:]


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("transport", choices=TRANSPORTS)
    p.add_argument("--seconds", type=float, default=180.0, help="run this long (default 180)")
    p.add_argument("--max-steps", type=int, default=10_000_000, help="or this many steps")
    p.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples (default 10)")
    p.add_argument("--warmup", type=float, default=None, help="seconds left out of the slope (default: a fifth of --seconds, at most 60)")
    p.add_argument("--raise-every", type=int, default=97, help="a remote exception every N steps (0: none)")
    p.add_argument("--proxy-every", type=int, default=13, help="proxies made and dropped every N steps (0: none)")
    p.add_argument("--reconnect-every", type=int, default=20_000, help="ws/wss/rust: reconnect every N steps (0: never)")
    p.add_argument("--server-python", default=sys.executable, help="the server's interpreter (ws, wss, spawn, gym): the simulator's venv")
    p.add_argument("--sim-server", default=None, help="the sim_server binary (rust; default target/release/examples/sim_server)")
    p.add_argument("--json", default=None, help="write the samples and the summary here")
    args = p.parse_args(argv)
    args.server_python = os.path.abspath(args.server_python)  # the server runs in bench/
    if args.warmup is None:
        args.warmup = min(60.0, args.seconds / 5)
    # A hang is a finding too: past this, every thread's stack and exit.
    faulthandler.dump_traceback_later(args.seconds + 300, exit=True)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        args.tmp = tmp
        result = run(args)
    if args.transport != "rust":
        result["server_numpy"] = server_numpy(args.server_python)
    print(f"soak {args.transport}: {result['counts']['steps']} steps in {result['seconds']} s "
          f"({result['steps_per_s']}/s), client numpy {result['client_numpy']}, server numpy {result['server_numpy']}, "
          f"speedups {result['speedups']}")
    print(f"counts: {result['counts']}")
    print_table(result["samples"])
    s = result["summary"]
    print(f"after the warm-up ({args.warmup:.0f} s, {s['warm_samples']} samples):")
    for side in ("client", "server"):
        v = s[side]
        if v is None:
            print(f"  {side}: no samples")
            continue
        print(
            f"  {side}: RSS {v['rss_start_kib'] / KiB:.1f} -> {v['rss_warm_kib'] / KiB:.1f} -> {v['rss_end_kib'] / KiB:.1f} MiB "
            f"(start, warm, end), slope {v['rss_slope_kib_per_10k_steps']:+.1f} KiB/10k steps; "
            f"fds {v['fds_warm']} -> {v['fds_end']} (max {v['fds_max']}); threads {v['threads_warm']} -> {v['threads_end']} "
            f"(max {v['threads_max']}): {v['verdict']}"
        )
    print(f"  server objects of the connection: max {s['live_objects_max']}, last {s['live_objects_last']}; "
          f"client RPCProxy objects: max {s['client_proxies_max']}")
    if "server_blocks_slope_per_10k_steps" in s:
        print(f"  server Python heap: allocated blocks {s['server_blocks_warm_end'][0]} -> {s['server_blocks_warm_end'][1]} "
              f"({s['server_blocks_slope_per_10k_steps']:+.1f} per 10k steps), gc objects {s['server_gc_objects_warm_end'][0]} -> "
              f"{s['server_gc_objects_warm_end'][1]} ({s['server_gc_objects_slope_per_10k_steps']:+.1f} per 10k steps)")
    if "server_exit_code" in result:
        how = "SIGKILL (the example has no SIGINT handler)" if args.transport == "rust" else "SIGINT"
        print(f"  server exit code after stop by {how}: {result['server_exit_code']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")
    verdicts = [s[side]["verdict"] for side in ("client", "server") if s[side]]
    return 0 if all(v == "flat" for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
