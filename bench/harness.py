"""The benchmark harness: every peer, the loopback floor, one run, one machine.

    bench/run.sh [--quick] [--peers simplerpc,pyro5,...] [--out DIR]

(run.sh builds the venv and the Rust binaries, then runs this file with the
venv's Python.) Writes DIR/RESULTS.md, DIR/latency.png, DIR/results.json and
DIR/logs/; DIR defaults to bench/results. Every server is a subprocess on
127.0.0.1 with a port it picks itself, stopped in a finally; every client is a
subprocess with a time limit; every timing loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from peers import WORKLOADS  # noqa: E402

PEERS = ["simplerpc", "simplerpc-tls", "simplerpc-speedups", "simplerpc-rust", "simplerpc-rust-tls",
         "simplerpyc", "rpyc", "pyro5"]
COLUMNS = ["floor"] + PEERS
LABEL = {
    "floor": "loopback floor",
    "simplerpc": "simplerpc Python",
    "simplerpc-speedups": "simplerpc Python + _speedups",
    "simplerpc-tls": "simplerpc Python wss://",
    "simplerpc-rust": "simplerpc Rust",
    "simplerpc-rust-tls": "simplerpc Rust wss://",
    "simplerpyc": "simplerpyc",
    "rpyc": "RPyC",
    "pyro5": "Pyro5",
    "children": "spawn and gym",
}
ROUND_TRIPS = {  # f(1), env step, down, up
    "floor": "1 / 1 / 1 / 1",
    # promise pipelining: the call and its materialize travel together
    "simplerpc": "1 / 1 / 1 / 1",
    "simplerpc-speedups": "1 / 1 / 1 / 1",
    "simplerpc-rust": "1 / 1 / 1 / 1",
    "simplerpc-tls": "1 / 1 / 1 / 1",
    "simplerpc-rust-tls": "1 / 1 / 1 / 1",
    "simplerpyc": "2 / 2 / 1 / 2",
    "rpyc": "1 / 2 / 1 / 1",
    "pyro5": "1 / 1 / 1 / 1",
}
ENV_BYTES = 480 * 640 * 3

MIB = 1 << 20
FULL = dict(warmup=100, iters=2000, seconds=5.0, min_iters=5, hard_seconds=30.0,
            sweep_seconds=2.0, budget_bytes=1 << 30, bulk_bytes=1 << 30, bulk_reps=3, client_timeout=420.0)
QUICK = dict(warmup=10, iters=100, seconds=0.5, min_iters=3, hard_seconds=5.0,
             sweep_seconds=0.2, budget_bytes=64 * MIB, bulk_bytes=64 * MIB, bulk_reps=1, client_timeout=120.0)
SIZES = [8 * 4**k for k in range(12)] + [64 * MIB]  # 8 B ... 32 MiB, then 64 MiB
QUICK_SIZES = [s for s in SIZES if s < MIB] + [MIB]  # 8 B ... 512 KiB, 1 MiB


# ---------------------------------------------------------------- machine

def machine_info():
    def read(path):
        try:
            return Path(path).read_text()
        except OSError:
            return ""

    cpu = re.search(r"^model name\s*:\s*(.+)$", read("/proc/cpuinfo"), re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", read("/proc/meminfo"), re.M)

    def cmd(*args):
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=30, cwd=ROOT).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ["numpy", "msgpack", "simplerpc", "simplerpyc", "websockets", "rpyc", "Pyro5", "matplotlib"]:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    commit = cmd("git", "rev-parse", "--short", "HEAD")
    # The results this run rewrites do not count as changes to the code.
    if cmd("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results"):
        commit += " (with uncommitted changes)"
    return {
        "cpu": cpu.group(1).strip() if cpu else platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem.group(1)) / 2**20, 1) if mem else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "rustc": cmd("rustc", "--version"),
        "versions": versions,
        "commit": commit,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


class CpuMeter:
    """CPU time used by processes other than this harness and its children over
    a section: the noise indicator of a shared machine. The amount is the
    machine's user+system time minus ours (tick-sampled, so a few percent
    off either way); the names are the running processes outside our tree that
    gained the most CPU time themselves (a process that started and ended
    within the section counts in the amount but has no name here)."""

    def __init__(self):
        self.tick = os.sysconf("SC_CLK_TCK")
        self.start = self._sample()

    def _procs(self):
        out = {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                text = (d / "stat").read_text()
            except OSError:
                continue
            comm = text[text.index("(") + 1:text.rindex(")")]
            f = text[text.rindex(")") + 2:].split()
            # fields after the name: state(0) ppid(1) ... utime(11) stime(12) ... starttime(19)
            out[(int(d.name), f[19])] = (comm, int(f[1]), (int(f[11]) + int(f[12])) / self.tick)
        return out

    def _sample(self):
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = (fields[0] + fields[1] + fields[2]) / self.tick  # user, nice, system
        t = os.times()
        ours = t.user + t.system + t.children_user + t.children_system
        return time.monotonic(), busy, ours, self._procs()

    def stop(self):
        t0, busy0, ours0, procs0 = self.start
        t1, busy1, ours1, procs1 = self._sample()
        parent = {pid: ppid for (pid, _), (_, ppid, _) in procs1.items()}

        def ours(pid):
            while pid > 1:
                if pid == os.getpid():
                    return True
                pid = parent.get(pid, 0)
            return False

        names = {}
        for key, (comm, _, cpu) in procs1.items():
            if not ours(key[0]):
                names[comm] = names.get(comm, 0.0) + cpu - procs0.get(key, (None, None, 0.0))[2]
        top = sorted(((v, k) for k, v in names.items() if v >= 0.5), reverse=True)[:4]
        return {"wall_s": round(t1 - t0, 1), "machine_cpu_s": round(busy1 - busy0, 1),
                "ours_cpu_s": round(ours1 - ours0, 1),
                "other_cpu_s": round(max(0.0, (busy1 - busy0) - (ours1 - ours0)), 1),
                "other_top": [f"{k} {v:.1f} s" for v, k in top]}


def wait_idle(max_wait, share=0.10):
    """Wait (at most `max_wait` s) until the machine spends under `share` of
    its CPUs for a whole second; returns the seconds waited and whether it got
    there. This harness is idle meanwhile, so what runs is someone else."""
    tick, cores = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1

    def busy():
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (f[0] + f[1] + f[2]) / tick

    start = time.monotonic()
    while True:
        b0 = busy()
        time.sleep(1.0)
        if busy() - b0 < share * cores:
            return round(time.monotonic() - start, 1), True
        if time.monotonic() - start >= max_wait:
            return round(time.monotonic() - start, 1), False


# ---------------------------------------------------------------- processes

def start_server(name, cmd, log_dir, port_re, token_re=None, timeout=60.0):
    """Start a server with its output in a log file; wait for its port (and token)."""
    log_path = log_dir / f"{name}-server.log"
    log = open(log_path, "w")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT, env=env)
    log.close()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            text = log_path.read_text(errors="replace")
            port = re.search(port_re, text)
            token = re.search(token_re, text) if token_re else None
            if port and (token or not token_re):
                return proc, int(port.group(1)), token.group(1) if token else None
            if proc.poll() is not None:
                raise RuntimeError(f"{name} server exited ({proc.returncode}): {text[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"{name} server did not print its port within {timeout:.0f} s")
    except BaseException:
        stop(proc)
        raise


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_lines(name, cmd, log_dir, timeout):
    """Run a client; collect its JSON lines, killing it after `timeout` s."""
    with open(log_dir / f"{name}-client.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, cwd=ROOT, text=True)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        note = None
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            note = f"client stopped after the {timeout:.0f} s limit"
        finally:
            stop(proc)
            reader.join(10)
    if proc.returncode not in (0, None) and note is None:
        note = f"client exited with status {proc.returncode} (see logs/{name}-client.log)"
    records = []
    for line in lines:
        line = line.strip()
        if line.startswith("{"):
            records.append(json.loads(line))
    return records, note


# ---------------------------------------------------------------- statistics

def stats(samples):
    s = sorted(samples)
    n = len(s)
    if n == 0:
        return None
    mid = n // 2
    median = s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2
    return {"n": n, "median_us": round(median, 1), "p90_us": round(s[max(0, math.ceil(0.9 * n) - 1)], 1),
            "mean_us": round(sum(s) / n, 1), "min_us": round(s[0], 1), "max_us": round(s[-1], 1)}


def policy_args(p, sizes):
    return ["--sizes", ",".join(map(str, sizes)), "--warmup", str(p["warmup"]), "--iters", str(p["iters"]),
            "--seconds", str(p["seconds"]), "--min-iters", str(p["min_iters"]),
            "--hard-seconds", str(p["hard_seconds"]), "--sweep-seconds", str(p["sweep_seconds"]),
            "--budget-bytes", str(p["budget_bytes"])]


# ---------------------------------------------------------------- runs

def run_floor(p, sizes, log_dir):
    exe = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "bench-loopback"
    floor_sizes = sorted(set(sizes) | {ENV_BYTES})
    cmd = [str(exe)] + policy_args(p, floor_sizes) + ["--bulk-bytes", str(p["bulk_bytes"]),
                                                      "--bulk-write", str(MIB), "--bulk-reps", str(p["bulk_reps"])]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=p["client_timeout"], cwd=ROOT)
    (log_dir / "floor.log").write_text(out.stderr)
    if out.returncode != 0:
        raise RuntimeError(f"bench-loopback failed: {out.stderr[-2000:]}")
    raw = json.loads(out.stdout)

    def median(v):
        return stats(v)["median_us"]

    def best(candidates):
        """The faster placement (by median): the floor is the best the kernel does."""
        name, samples = min(candidates, key=lambda kv: median(kv[1]))
        return name, samples

    records = []
    for key in ("rtt_1b", "rtt_1b_same_cpu", "rtt_1b_cross_cpu"):
        if key in raw:
            records.append({"workload": key, "size": None, "samples": raw[key]})
    placements = [k.split("_", 1)[1] for k in raw if k.startswith("down_")]
    for direction in ("down", "up"):
        for pl in placements:
            for size, samples in raw[f"{direction}_{pl}"].items():
                records.append({"workload": f"{direction}_{pl}", "size": int(size), "samples": samples})
        for size in raw[f"{direction}_{placements[0]}"]:
            pl, samples = best([(pl, raw[f"{direction}_{pl}"][size]) for pl in placements])
            records.append({"workload": direction, "size": int(size), "samples": samples, "placement": pl})
    # the headline rows: one 1-byte round trip; 1 byte out and 921,600 bytes back
    pl, samples = best([(k[len("rtt_1b_"):], raw[k]) for k in raw if k.startswith("rtt_1b_")])
    records.append({"workload": "f1", "size": None, "samples": samples, "placement": pl})
    env = next(r for r in records if r["workload"] == "down" and r["size"] == ENV_BYTES)
    records.append(dict(env, workload="env_step", size=None))
    bulk = raw["bulk"]
    bulk["gb_per_s"] = [round(bulk["bytes"] / s / 1e9, 2) for s in bulk["seconds"]]
    return records, bulk


def certificates(target, log_dir):
    """A CA and a certificate for localhost made for this run (the TLS
    columns), with the `lab_cert` example run.sh builds: (cert, key, ca)."""
    d = log_dir / "certs"
    if not (d / "ca.pem").exists():
        subprocess.run([str(target / "examples" / "lab_cert"), str(d), "localhost"], check=True,
                       capture_output=True, timeout=60)
    return d / "cert.pem", d / "key.pem", d / "ca.pem"


def peer_commands(peer, py, target, log_dir=None):
    """(server command, port regex, token regex, client command prefix)"""
    if peer in ("simplerpc-tls", "simplerpc-rust-tls"):
        cert, key, ca = certificates(target, log_dir)
        tls = ["--certfile", str(cert), "--keyfile", str(key)]
        if peer == "simplerpc-tls":
            return ([py, "-m", "simplerpc.server", "--host", "127.0.0.1", "--port", "0", "--log-level", "WARNING"]
                    + tls, r"SIMPLERPC_PORT='(\d+)'", r"SIMPLERPC_TOKEN='([^']+)'",
                    [py, str(BENCH / "peers.py"), "client", peer, "--cafile", str(ca)])
        return ([str(target / "bench-rpc-server")] + tls, r"SIMPLERPC_PORT='(\d+)'", r"SIMPLERPC_TOKEN='([^']+)'",
                [str(target / "bench-rpc-client"), "--cafile", str(ca)])
    if peer in ("simplerpc", "simplerpc-speedups"):
        return ([py, "-m", "simplerpc.server", "--host", "127.0.0.1", "--port", "0", "--log-level", "WARNING"],
                r"SIMPLERPC_PORT='(\d+)'", r"SIMPLERPC_TOKEN='([^']+)'", [py, str(BENCH / "peers.py"), "client", peer])
    if peer == "simplerpc-rust":
        return ([str(target / "bench-rpc-server")], r"SIMPLERPC_PORT='(\d+)'", r"SIMPLERPC_TOKEN='([^']+)'",
                [str(target / "bench-rpc-client")])
    if peer == "simplerpyc":
        return ([py, "-m", "simplerpyc.server", "--host", "127.0.0.1", "--port", "0"],
                r"SIMPLERPYC_PORT='(\d+)'", r"SIMPLERPYC_TOKEN='([^']+)'", [py, str(BENCH / "peers.py"), "client", peer])
    return ([py, str(BENCH / "peers.py"), "serve", peer], r"BENCH_PORT=(\d+)", None,
            [py, str(BENCH / "peers.py"), "client", peer])


def run_peer(peer, p, sizes, log_dir):
    # Our Python package with its pyo3 accelerator (bench/.venv has it) only
    # in the speedups column; everything else runs it as plain ctypes.
    if peer == "simplerpc-speedups":
        os.environ.pop("SIMPLERPC_NO_SPEEDUPS", None)
    else:
        os.environ["SIMPLERPC_NO_SPEEDUPS"] = "1"
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
    server_cmd, port_re, token_re, client_cmd = peer_commands(peer, sys.executable, target, log_dir)
    proc, port, token = start_server(peer, server_cmd, log_dir, port_re, token_re)
    try:
        # The TLS columns connect by the name in the certificate.
        host = "localhost" if peer.endswith("-tls") else "127.0.0.1"
        cmd = client_cmd + ["--host", host, "--port", str(port)]
        if token:
            cmd += [f"--token={token}"]  # = : a token may start with -
        return run_lines(peer, cmd + policy_args(p, sizes), log_dir, p["client_timeout"])
    finally:
        stop(proc)


def run_children(p, log_dir, quick):
    """bench/children.py: spawn, gather and simplerpc.gym, over a spawned
    child and over WebSocket to our Python server."""
    os.environ["SIMPLERPC_NO_SPEEDUPS"] = "1"  # the plain package, as the simplerpc column
    server_cmd, port_re, token_re, _ = peer_commands("simplerpc", sys.executable, None)
    proc, port, token = start_server("children", server_cmd, log_dir, port_re, token_re)
    try:
        cmd = [sys.executable, str(BENCH / "children.py"), "--port", str(port), f"--token={token}"]
        return run_lines("children", cmd + (["--quick"] if quick else []), log_dir, p["client_timeout"])
    finally:
        stop(proc)


# ---------------------------------------------------------------- report

def human(n):
    for unit, k in (("MiB", MIB), ("KiB", 1024)):
        if n >= k and n % k == 0:
            return f"{n // k} {unit}"
    return f"{n:,} B"


def us(x):
    return f"{x:,.0f}" if x >= 10 else f"{x:.1f}"


def find(results, col, workload, size=None):
    for r in results[col]["records"]:
        if r["workload"] == workload and r.get("size") == size:
            return r
    return None


def cell(results, col, workload, size=None, footnotes=None, rate=False):
    r = find(results, col, workload, size)
    if r is None:
        return "–"
    if "error" in r:
        footnotes.append(f"{LABEL[col]}, {workload}{' ' + human(size) if size else ''}: {r['error']}")
        return f"fails[^{len(footnotes)}]"
    s = r["stats"]
    text = f"{us(s['median_us'])} / {us(s['p90_us'])}"
    if rate and size:
        text += f" ({size / s['median_us']:,.0f} MB/s)" if size / s["median_us"] >= 1 else f" ({size / s['median_us']:.2f} MB/s)"
    return text


def write_markdown(path, results, meta):
    m = meta["machine"]
    cols = [c for c in COLUMNS if c in results]
    footnotes = []
    v = m["versions"]
    lines = [
        "# simplerpc benchmark results",
        "",
        f"**Machine:** {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"Python {m['python']}, numpy {v['numpy']}, {m['rustc']}. **Date:** {m['date']}. "
        f"**Checkout:** {m['commit']}. **Mode:** {meta['mode']}; the run took {meta['total_s']:.0f} s.",
        "",
        f"Peers: simplerpc {v['simplerpc']} (this checkout), simplerpyc {v['simplerpyc']} "
        f"(websockets {v['websockets']}), RPyC {v['rpyc']}, Pyro5 {v['Pyro5']} with the msgpack serializer "
        f"(msgpack {v['msgpack']}). Client and server are separate processes on 127.0.0.1, not pinned to CPUs.",
        "",
    ]
    other = sum(s.get("other_cpu_s", 0) for s in meta["sections"].values())
    wall = sum(s.get("wall_s", 0) for s in meta["sections"].values())
    if wall:
        share = other / (wall * (m["cores"] or 1))
        busy = [f"{LABEL[k]} ({v['other_cpu_s']:.0f} CPU-s in {v['wall_s']:.0f} s"
                + (f": {', '.join(v['other_top'])}" if v["other_top"] else "") + ")"
                for k, v in meta["sections"].items() if v["other_cpu_s"] >= max(2.0, 0.1 * v["wall_s"] * m["cores"])]
        text = (f"Other processes used {other:.0f} CPU-seconds during the {wall:.0f} s of measurement "
                f"({share:.0%} of the machine's CPU time).")
        if busy:
            text += " **Columns measured while the machine was busy:** " + "; ".join(busy) + "."
        lines += [text, ""]
    lines += [
        "## Latency (median / p90, µs)",
        "",
        "| workload | " + " | ".join(LABEL[c] for c in cols) + " |",
        "| --- |" + " ---: |" * len(cols),
        "| `materialize(f(1))` | " + " | ".join(cell(results, c, "f1", None, footnotes) for c in cols) + " |",
        "| env step: `materialize(env.step(a))`, 480×640×3 uint8 | "
        + " | ".join(cell(results, c, "env_step", None, footnotes) for c in cols) + " |",
        "| round trips: f(1) / env step / down / up | " + " | ".join(ROUND_TRIPS[c] for c in cols) + " |",
        "",
    ]
    if "floor" in results:
        fl = results["floor"]
        pins = []
        for key, what in (("rtt_1b_same_cpu", "with both threads on one CPU"), ("rtt_1b_cross_cpu", "with them on two CPUs")):
            r = find(results, "floor", key)
            if r and "stats" in r:
                pins.append(f"{us(r['stats']['median_us'])} / {us(r['stats']['p90_us'])} µs {what}")
        gb = sorted(fl["bulk"]["gb_per_s"])
        unpinned = find(results, "floor", "rtt_1b")
        lines += [
            "The loopback floor is TCP on 127.0.0.1 between two threads of one Rust process, TCP_NODELAY: "
            "for `f(1)` one 1-byte round trip, for the env step 1 byte out and 921,600 bytes back, in the sweep "
            "1 byte out and N back (down) or N out and 1 back (up). Each floor number is the faster of two "
            "placements, both threads pinned to one CPU or to two (results.json has both). "
            f"The 1-byte round trip is {' and '.join(pins)}, and "
            f"{us(unpinned['stats']['median_us'])} / {us(unpinned['stats']['p90_us'])} µs unpinned: "
            "a wakeup across CPUs is what unpinned threads (every peer's) pay when the scheduler puts the two "
            "ends on different CPUs. "
            f"Bulk throughput: {gb[len(gb) // 2]:.2f} GB/s (median of {len(gb)}: {human(fl['bulk']['bytes'])} "
            f"in {human(fl['bulk']['write_size'])} writes to a reader thread).",
            "",
        ]
    for direction, title in (("down", "down: server array → client (`materialize(remote_array)`)"),
                             ("up", "up: client array → server (`f(arr)`, tiny result)")):
        lines += [f"## Sweep {title}", "", "median / p90 µs (MB/s = 10⁶ bytes/s at the median)", "",
                  "| size | " + " | ".join(LABEL[c] for c in cols) + " |", "| ---: |" + " ---: |" * len(cols)]
        for size in meta["sizes"]:
            lines.append(f"| {human(size)} | "
                         + " | ".join(cell(results, c, direction, size, footnotes, rate=True) for c in cols) + " |")
        lines.append("")
    if "children" in results:
        lines += children_markdown(results["children"])
    lines += ["## How each peer does each workload", ""]
    for c in cols:
        if c == "floor":
            continue
        w = WORKLOADS[c]
        lines.append(f"- **{LABEL[c]}**: f(1): {w['f1']}; env step: {w['env_step']}; down: {w['down']}; up: {w['up']}.")
    lines += [
        "",
        "## Notes",
        "",
        "- Every workload: warm-up, then timed iterations until a count or a time limit "
        f"(here at most {meta['policy']['iters']} iterations or {meta['policy']['seconds']} s for the two "
        f"headline workloads; sweep points move at most {human(meta['policy']['budget_bytes'])} or "
        f"{meta['policy']['sweep_seconds']} s each, at least {meta['policy']['min_iters']} iterations unless "
        f"{meta['policy']['hard_seconds']} s have passed). Iteration counts are in results.json.",
        "- The env step returns the SAME preallocated 480×640×3 uint8 image every step. Every array is "
        "random bytes, so compression gains nothing: the stock simplerpyc pair negotiates permessage-deflate "
        "and RPyC compresses every message above 3,000 bytes (zlib level 1); both do so here as shipped.",
        "- Pyro5's msgpack serializer cannot carry numpy arrays, and RPyC's brine carries bytes but not arrays: "
        "for those two, arrays travel as bytes + dtype + shape and are rebuilt with `numpy.frombuffer` on the "
        "other side (RPyC's results come back pickled through `rpyc.classic.obtain`). The rebuild is inside "
        "the timing.",
        "- RPyC and Pyro5 run with TCP_NODELAY on (an option of both, off by default) like the floor, "
        "tungstenite and asyncio.",
        "- The stock simplerpyc keeps websockets' default 1 MiB message limit (on the message, so a 1 MiB "
        "array with its framing is already over it): its sweep fails at the first size above, and a "
        "direction stops at its first failure; \"–\" marks the sizes not measured after it.",
    ]
    notes = [f"{LABEL[c]}: {results[c]['note']}" for c in cols if results[c].get("note")]
    if notes:
        lines += [f"- Incomplete: {n}." for n in notes]
    if footnotes:
        lines.append("")
        lines += [f"[^{i}]: {text}" for i, text in enumerate(footnotes, 1)]
    path.write_text("\n".join(lines) + "\n")


CHILDREN_ROWS = [
    ("spawn_first_call", "`simplerpc.spawn()` to the first answered call (the child imports simplerpc only)"),
    ("gather_8x10ms", "8 spawned children, each step sleeping 10 ms, stepped once with `simplerpc.gather`"),
    ("sequential_8x10ms", "the same 8, one `materialize` after another"),
    ("env_step_spawn", "env step `materialize(env.step(a))`, 480×640×3 uint8, over a spawned child (stream)"),
    ("remote_env_step_spawn", "the same env as `simplerpc.gym.RemoteEnv(...).step(a)`, spawned child"),
    ("env_step_ws", "env step `materialize(env.step(a))` over WebSocket (our Python server)"),
    ("remote_env_step_ws", "the same env as `RemoteEnv(...).step(a)` over WebSocket"),
    ("down_64mib_spawn", "64 MiB uint8 array down (`materialize(arr)`), spawned child"),
    ("up_64mib_spawn", "64 MiB uint8 array up (`materialize(nbytes(a))`), spawned child"),
]


def children_markdown(section):
    """The section of bench/children.py's figures."""
    lines = ["## Child processes and Gymnasium (simplerpc only)", "",
             "bench/children.py, this interpreter as the child (numpy as above). median / p90.", "",
             "| workload | median | p90 |", "| --- | ---: | ---: |"]
    for key, what in CHILDREN_ROWS:
        r = next((x for x in section["records"] if x.get("workload") == key and "stats" in x), None)
        if r is None:
            lines.append(f"| {what} | – | – |")
            continue
        st = r["stats"]
        unit, div = ("ms", 1000.0) if st["median_us"] >= 10_000 else ("µs", 1.0)
        rate = f" ({r['bytes'] / st['median_us']:,.0f} MB/s)" if r.get("bytes") else ""
        lines.append(f"| {what} | {st['median_us'] / div:,.1f} {unit}{rate} | {st['p90_us'] / div:,.1f} {unit} |")
    if section.get("note"):
        lines.append(f"\nIncomplete: {section['note']}.")
    return lines + [""]


def write_plot(path, results, meta):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"floor": "black", "simplerpc": "tab:blue", "simplerpc-speedups": "tab:purple", "simplerpc-rust": "tab:cyan", "simplerpyc": "tab:orange",
              "rpyc": "tab:green", "pyro5": "tab:red", "simplerpc-tls": "tab:olive", "simplerpc-rust-tls": "tab:gray"}
    fig, ax = plt.subplots(figsize=(12, 7.5))
    for c in COLUMNS:
        if c not in results:
            continue
        for direction, style, marker in (("down", "-", "o"), ("up", "--", "s")):
            pts = [(r["size"], r["stats"]["median_us"]) for r in results[c]["records"]
                   if r["workload"] == direction and "stats" in r and r["size"] in meta["sizes"]]
            if pts:
                pts.sort()
                ax.plot([x for x, _ in pts], [y for _, y in pts], style, marker=marker, markersize=4,
                        color=colors[c], label=f"{LABEL[c]} {direction}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ticks = [s for s in meta["sizes"] if s in (8, 128, 2048, 32768, 524288, 8 * MIB, 64 * MIB, MIB)]
    ax.set_xticks(ticks)
    ax.set_xticklabels([human(t).replace(" ", "\u00a0") for t in ticks])
    ax.set_xlabel("payload (array bytes)")
    ax.set_ylabel("median latency per call (µs)")
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", alpha=0.15)
    m = meta["machine"]
    ax.set_title(f"Latency against payload size (down: server → client, up: client → server)\n"
                 f"{m['cpu']}, {m['cores']} cores, Python {m['python']}, numpy {m['versions']['numpy']}, "
                 f"{m['date']}", fontsize=10)
    ax.legend(ncol=2, fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description="simplerpc benchmark harness")
    ap.add_argument("--quick", action="store_true", help="a fast smoke run: few iterations, sizes up to 1 MiB")
    ap.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated subset of {','.join(PEERS)}")
    ap.add_argument("--no-floor", action="store_true", help="skip the loopback floor")
    ap.add_argument("--no-children", action="store_true", help="skip spawn, gather and simplerpc.gym (bench/children.py)")
    ap.add_argument("--out", default=str(BENCH / "results"), help="output directory (default bench/results)")
    ap.add_argument("--wait-idle", type=float, default=None, metavar="S",
                    help="before each section wait up to S s for other processes to go quiet "
                         "(default 60 for a full run, 0 for --quick)")
    args = ap.parse_args(argv)
    p = QUICK if args.quick else FULL
    sizes = QUICK_SIZES if args.quick else SIZES
    peers = [x for x in args.peers.split(",") if x]
    unknown = set(peers) - set(PEERS)
    if unknown:
        ap.error(f"unknown peers: {', '.join(sorted(unknown))}")
    out = Path(args.out)
    log_dir = out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    meta = {"mode": "quick" if args.quick else "full", "policy": p, "sizes": sizes, "machine": machine_info(),
            "sections": {}, "workloads": {k: WORKLOADS[k] for k in peers}}
    print(f"machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores; mode {meta['mode']}", flush=True)
    results = {}
    jobs = ([] if args.no_floor else ["floor"]) + peers + ([] if args.no_children else ["children"])
    max_wait = args.wait_idle if args.wait_idle is not None else (0.0 if args.quick else 60.0)
    for name in jobs:
        waited, quiet = wait_idle(max_wait) if max_wait > 0 else (0.0, None)
        if waited > 1.5 or quiet is False:
            print(f"[{name}] waited {waited:.0f} s for the machine to go quiet"
                  + ("" if quiet else " (it did not)"), flush=True)
        t = time.monotonic()
        meter = CpuMeter()
        print(f"[{name}] ...", end="", flush=True)
        note, bulk = None, None
        try:
            if name == "floor":
                records, bulk = run_floor(p, sizes, log_dir)
            elif name == "children":
                records, note = run_children(p, log_dir, args.quick)
            else:
                records, note = run_peer(name, p, sizes, log_dir)
        except Exception as e:  # a peer that cannot run is reported, the others still run
            records, note = [], f"{type(e).__name__}: {e}"
        meta["sections"][name] = dict(meter.stop(), waited_s=waited, quiet_at_start=quiet)
        for r in records:
            if "samples" in r:
                r["stats"] = stats(r["samples"])
        results[name] = {"records": records, "note": note}
        if bulk:
            results[name]["bulk"] = bulk
        errors = sum("error" in r for r in records)
        print(f" {len(records)} results, {errors} errors, {time.monotonic() - t:.0f} s"
              + (f"; {note}" if note else ""), flush=True)

    meta["total_s"] = time.monotonic() - started
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    write_markdown(out / "RESULTS.md", results, meta)
    write_plot(out / "latency.png", results, meta)
    print(f"wrote {out / 'RESULTS.md'}, {out / 'latency.png'}, {out / 'results.json'} "
          f"in {time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
