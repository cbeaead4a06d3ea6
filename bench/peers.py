"""The Python peers of the benchmark harness: servers and clients.

    python bench/peers.py serve {rpyc,pyro5}
    python bench/peers.py client PEER --port P [--token T] [--sizes 8,32,...] [policy options]

PEER is one of simplerpc, simplerpyc, rpyc, pyro5. (The simplerpc and
simplerpyc servers are the packages' own `python -m ... .server`; the Rust
pairing is `bench-rpc-server` / `bench-rpc-client`.) A server prints
`BENCH_PORT=<port>` once it listens. A client prints one JSON object per line:
`{"workload": W, "size": N or null, "samples": [µs, ...]}` or the same with
`"error"` instead of `"samples"`; it stops a direction of the sweep at its first
error and reconnects for the next workload.

Every peer runs the same workloads, each in the way that peer is meant to be
used (the "idiom"); what crosses the wire per call differs and is listed in
WORKLOADS below and in the report:

- f1: `materialize(f(1))` with `f(x): return x`;
- env_step: `materialize(env.step(a))`, step returning (obs, reward,
  terminated, truncated, info) with ONE preallocated 480x640x3 uint8 image of
  noise (the same object every step);
- down N: a uint8[N] array built once on the server, brought to the client;
- up N: a client uint8[N] array sent as the argument of a call whose result
  is its byte count (tiny), then that result materialized.

Arrays are random bytes so that compression (the stock simplerpyc pair
negotiates permessage-deflate) cannot shrink them; a camera image lies
between noise and a constant image.
"""

from __future__ import annotations

import argparse
import json
import socket
import time

# Executed on the server by the peers that can run code remotely
# (simplerpc, simplerpyc, RPyC classic), imported by the Pyro5 server.
SERVER_CODE = """
import numpy as np
_rng = np.random.default_rng(0)
class Env:
    def __init__(self):
        self.t = 0
        self.obs = _rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    def step(self, action):
        self.t += 1
        return self.obs, 1.0, False, False, {"t": self.t}
env = Env()
def f(x):
    return x
def make_array(n):
    return _rng.integers(0, 256, size=n, dtype=np.uint8)
def nbytes(a):
    return int(a.nbytes)
def nbytes_from_buffer(data, dtype, shape):
    # for the peers that carry bytes but not numpy arrays (RPyC, Pyro5/msgpack)
    return nbytes(np.frombuffer(data, dtype=dtype).reshape(shape))
"""

# How each peer does each workload, and the round trips that costs.
WORKLOADS = {
    "simplerpc": {
        "f1": "materialize(f(1)): the call pipelined on a promise, then the materialize (1 round trip)",
        "env_step": "materialize(env.step(0)), env.step bound once, pipelined (1 round trip)",
        "down": "materialize(arr) of a proxy to a server array (1 round trip); msgpack-numpy ext",
        "up": "materialize(nbytes(arr)) with a numpy argument, pipelined (1 round trip); msgpack-numpy ext",
    },
    "simplerpc-speedups": {
        "f1": "as simplerpc, with the pyo3 accelerator simplerpc._speedups on both sides",
        "env_step": "as simplerpc, with the accelerator",
        "down": "as simplerpc, with the accelerator",
        "up": "as simplerpc, with the accelerator",
    },
    "simplerpc-tls": {
        "f1": "as simplerpc, over wss:// (TLS 1.3, rustls with ring, a CA made for the run)",
        "env_step": "as simplerpc, over wss://",
        "down": "as simplerpc, over wss://",
        "up": "as simplerpc, over wss://",
    },
    "simplerpc-rust": {
        "f1": "f.call_args([1])?.materialize()? (pipelined: 1 round trip)",
        "env_step": "step.call_args([0.0])?.materialize()? (pipelined: 1 round trip)",
        "down": "arr.materialize()? (1 round trip)",
        "up": "nbytes.call_args([array])?.materialize()? (pipelined: 1 round trip)",
    },
    "simplerpc-rust-tls": {
        "f1": "as simplerpc Rust, over wss:// (TLS 1.3, rustls with ring)",
        "env_step": "as simplerpc Rust, over wss://",
        "down": "as simplerpc Rust, over wss://",
        "up": "as simplerpc Rust, over wss://",
    },
    "simplerpyc": {
        "f1": "materialize(f(1)) (2 round trips)",
        "env_step": "materialize(env.step(0)) (2 round trips); the stock pair negotiates permessage-deflate",
        "down": "materialize(arr) (1 round trip)",
        "up": "materialize(nbytes(arr)) (2 round trips)",
    },
    "rpyc": {
        "f1": "f(1) on a netref: the int comes back by value (1 round trip)",
        "env_step": "rpyc.classic.obtain(step(0)): call -> netref, then the server pickles it (2 round trips)",
        "down": "rpyc.classic.obtain(arr_netref): pickled on the server (1 round trip)",
        "up": "nbytes_from_buffer(arr.tobytes(), dtype, shape), rebuilt on the server with numpy.frombuffer "
        "(1 round trip): brine carries bytes by value but not arrays (an array argument would be a netref "
        "the server reads back across the connection), and rpyc.classic.deliver costs an extra inspect "
        "round trip and a netref class per new array in RPyC 6",
    },
    "pyro5": {
        "f1": "proxy.f(1) (1 round trip)",
        "env_step": "proxy.step(0), obs as bytes+dtype+shape rebuilt with numpy.frombuffer (1 round trip)",
        "down": "proxy.get_array(n) as bytes+dtype+shape, rebuilt with numpy.frombuffer (1 round trip)",
        "up": "proxy.nbytes_from_buffer(memoryview(arr), dtype, shape), rebuilt on the server with numpy.frombuffer "
        "(1 round trip); Pyro5's msgpack serializer cannot carry numpy arrays",
    },
}


# ---------------------------------------------------------------- timing

def measure(op, p):
    """Warm up, then time `op`; bounded by count and by time (same rules as
    the Rust binaries' `simplerpc_bench::measure`). Samples in µs."""
    start = time.perf_counter()
    warm_limit = min(p["seconds"] / 4.0, 2.0)
    for _ in range(p["warmup"]):
        op()
        if time.perf_counter() - start > warm_limit:
            break
    out = []
    clock = time.perf_counter
    start = clock()
    while len(out) < p["iters"]:
        t = clock()
        op()
        out.append((clock() - t) * 1e6)
        el = clock() - start
        if el >= p["hard_seconds"] or (el >= p["seconds"] and len(out) >= p["min_iters"]):
            break
    return out


def for_size(p, size, seconds, budget):
    iters = min(p["iters"], max(budget // max(size, 1), p["min_iters"]))
    return dict(p, iters=iters, warmup=min(p["warmup"], max(iters // 10, 1)), seconds=seconds)


# ---------------------------------------------------------------- clients

def noise(n, seed):
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8)


def check(ok, what):
    if not ok:
        raise AssertionError(f"wrong result: {what}")


class SimpleRPCClient:
    """simplerpc and the stock simplerpyc: the same user API."""

    def __init__(self, module_name, host, port, token, cafile=None):
        import importlib

        self.mod = importlib.import_module(module_name)
        self.args = (host, port, token)
        self.cafile = cafile
        self.conn = None

    def connect(self):
        host, port, token = self.args
        if self.cafile:  # wss://, trusting the run's own CA
            self.conn = self.mod.connect(f"wss://{host}:{port}", token=token, cafile=self.cafile)
        else:
            self.conn = self.mod.connect(host, port, token=token)
        self.conn.execute(SERVER_CODE)

    def close(self):
        if self.conn is not None:
            try:
                self.conn.disconnect()
            except Exception:
                pass
            self.conn = None

    def f1(self):
        f, mat = self.conn.eval("f"), self.mod.materialize
        check(mat(f(1)) == 1, "f(1)")
        return lambda: mat(f(1))

    def env_step(self):
        step, mat = self.conn.eval("env").step, self.mod.materialize
        r = mat(step(0))
        check(r[0].shape == (480, 640, 3) and r[0].dtype.name == "uint8", "env.step")
        return lambda: mat(step(0))

    def down(self, n):
        arr, mat = self.conn.eval("make_array")(n), self.mod.materialize
        check(mat(arr).nbytes == n, "down")
        return lambda: mat(arr)

    def up(self, n):
        nb, mat, a = self.conn.eval("nbytes"), self.mod.materialize, noise(n, 5)
        check(mat(nb(a)) == n, "up")
        return lambda: mat(nb(a))


class RPyCClient:
    """RPyC classic mode (SlaveService): netrefs; results by pickle via
    rpyc.classic.obtain; arrays up as bytes."""

    def __init__(self, host, port, token):
        self.args = (host, port)
        self.conn = None

    def connect(self):
        from rpyc.core.stream import SocketStream
        from rpyc.utils.classic import SlaveService
        from rpyc.utils.factory import connect_stream

        # rpyc.classic.connect(host, port), plus TCP_NODELAY like every other peer
        self.conn = connect_stream(SocketStream.connect(*self.args, nodelay=True), SlaveService)
        self.conn.execute(SERVER_CODE)
        self.ns = self.conn.namespace

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None

    def f1(self):
        f = self.ns["f"]
        check(f(1) == 1, "f(1)")
        return lambda: f(1)

    def env_step(self):
        from rpyc.utils.classic import obtain

        step = self.ns["env"].step
        r = obtain(step(0))
        check(r[0].shape == (480, 640, 3), "env.step")
        return lambda: obtain(step(0))

    def down(self, n):
        from rpyc.utils.classic import obtain

        arr = self.ns["make_array"](n)
        check(obtain(arr).nbytes == n, "down")
        return lambda: obtain(arr)

    def up(self, n):
        nb, a = self.ns["nbytes_from_buffer"], noise(n, 5)
        dtype, shape = a.dtype.str, a.shape

        def op():
            return nb(a.tobytes(), dtype, shape)

        check(op() == n, "up")
        return op


def unpack_array(d):
    """Pyro5 side: an array sent as {"data": bytes, "dtype": str, "shape": [...]}."""
    import numpy as np

    return np.frombuffer(d["data"], dtype=d["dtype"]).reshape(d["shape"])


def pack_array(a):
    return {"data": memoryview(a).cast("B"), "dtype": a.dtype.str, "shape": list(a.shape)}


class Pyro5Client:
    """Pyro5 with the msgpack serializer; arrays as bytes + dtype + shape."""

    def __init__(self, host, port, token):
        self.uri = f"PYRO:bench@{host}:{port}"
        self.proxy = None

    def connect(self):
        import Pyro5.api

        Pyro5.config.SOCK_NODELAY = True
        self.proxy = Pyro5.api.Proxy(self.uri)
        self.proxy._pyroSerializer = "msgpack"
        self.proxy._pyroBind()

    def close(self):
        if self.proxy is not None:
            try:
                self.proxy._pyroRelease()
            except Exception:
                pass
            self.proxy = None

    def f1(self):
        p = self.proxy
        check(p.f(1) == 1, "f(1)")
        return lambda: p.f(1)

    def env_step(self):
        p = self.proxy

        def op():
            obs, reward, terminated, truncated, info = p.step(0)
            return unpack_array(obs), reward, terminated, truncated, info

        check(op()[0].shape == (480, 640, 3), "env.step")
        return op

    def down(self, n):
        p = self.proxy
        p.make_array(n)
        check(unpack_array(p.get_array(n)).nbytes == n, "down")
        return lambda: unpack_array(p.get_array(n))

    def up(self, n):
        p, a = self.proxy, noise(n, 5)
        data, dtype, shape = memoryview(a).cast("B"), a.dtype.str, list(a.shape)
        check(p.nbytes_from_buffer(data, dtype, shape) == n, "up")
        return lambda: p.nbytes_from_buffer(data, dtype, shape)


def run_client(args):
    p = {
        "warmup": args.warmup,
        "iters": args.iters,
        "seconds": args.seconds,
        "min_iters": args.min_iters,
        "hard_seconds": args.hard_seconds,
    }
    if args.peer in ("simplerpc", "simplerpyc"):
        client = SimpleRPCClient(args.peer, args.host, args.port, args.token)
    elif args.peer == "simplerpc-speedups":  # the same package; the harness turns the accelerator on
        client = SimpleRPCClient("simplerpc", args.host, args.port, args.token)
    elif args.peer == "simplerpc-tls":
        client = SimpleRPCClient("simplerpc", args.host, args.port, args.token, cafile=args.cafile)
    elif args.peer == "rpyc":
        client = RPyCClient(args.host, args.port, args.token)
    elif args.peer == "pyro5":
        client = Pyro5Client(args.host, args.port, args.token)
    else:
        raise SystemExit(f"unknown peer {args.peer}")

    def emit(workload, size, samples=None, error=None):
        rec = {"workload": workload, "size": size}
        if error is None:
            rec["samples"] = [round(x, 1) for x in samples]
        else:
            rec["error"] = error
        print(json.dumps(rec), flush=True)

    def attempt(workload, size, make, policy):
        """Time one workload; False on error (the connection is then reopened)."""
        try:
            if client.conn_needed:
                client.connect()
                client.conn_needed = False
            op = make()
            emit(workload, size, measure(op, policy))
            return True
        except Exception as e:  # a peer's limit or failure is a result too
            emit(workload, size, error=f"{type(e).__name__}: {e}"[:500])
            client.close()
            client.conn_needed = True
            return False

    client.conn_needed = True
    try:
        attempt("f1", None, client.f1, p)
        attempt("env_step", None, client.env_step, p)
        sizes = [int(x) for x in args.sizes.split(",") if x]
        for direction in ("down", "up"):
            for n in sizes:
                pn = for_size(p, n, args.sweep_seconds, args.budget_bytes)
                if not attempt(direction, n, lambda: getattr(client, direction)(n), pn):
                    break
    finally:
        client.close()


# ---------------------------------------------------------------- servers

def serve_rpyc(host):
    from rpyc.utils.classic import SlaveService  # what rpyc_classic.py serves
    from rpyc.utils.server import ThreadedServer

    server = ThreadedServer(SlaveService, hostname=host, port=0, reuse_addr=True)
    # accepted sockets inherit TCP_NODELAY from the listener (Linux)
    server.listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print(f"BENCH_PORT={server.port}", flush=True)
    server.start()


def serve_pyro5(host):
    import Pyro5.api

    Pyro5.config.SOCK_NODELAY = True
    ns = {}
    exec(SERVER_CODE, ns)

    @Pyro5.api.expose
    class Bench:
        def __init__(self):
            self.arrays = {}

        def f(self, x):
            return ns["f"](x)

        def step(self, action):
            obs, reward, terminated, truncated, info = ns["env"].step(action)
            return pack_array(obs), reward, terminated, truncated, info

        def make_array(self, n):
            self.arrays[n] = ns["make_array"](n)
            return n

        def get_array(self, n):
            return pack_array(self.arrays[n])

        def nbytes_from_buffer(self, data, dtype, shape):
            return ns["nbytes_from_buffer"](data, dtype, shape)

    # One instance for every call, so make_array's arrays are there for get_array.
    Pyro5.api.behavior(instance_mode="single")(Bench)
    daemon = Pyro5.api.Daemon(host=host, port=0)
    daemon.register(Bench, "bench")
    print(f"BENCH_PORT={daemon.locationStr.rsplit(':', 1)[1]}", flush=True)
    daemon.requestLoop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("peer", choices=["rpyc", "pyro5"])
    s.add_argument("--host", default="127.0.0.1")
    c = sub.add_parser("client")
    c.add_argument("peer", choices=["simplerpc", "simplerpc-speedups", "simplerpc-tls", "simplerpyc", "rpyc", "pyro5"])
    c.add_argument("--cafile", default=None, help="simplerpc-tls: the CA of the server's certificate")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--token", default=None)
    c.add_argument("--sizes", default="")
    c.add_argument("--warmup", type=int, default=100)
    c.add_argument("--iters", type=int, default=2000)
    c.add_argument("--seconds", type=float, default=5.0)
    c.add_argument("--min-iters", type=int, default=5)
    c.add_argument("--hard-seconds", type=float, default=30.0)
    c.add_argument("--sweep-seconds", type=float, default=2.0)
    c.add_argument("--budget-bytes", type=int, default=1 << 30)
    args = ap.parse_args(argv)
    if args.cmd == "serve":
        {"rpyc": serve_rpyc, "pyro5": serve_pyro5}[args.peer](args.host)
    else:
        run_client(args)


if __name__ == "__main__":
    main()
