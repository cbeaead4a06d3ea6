"""End to end: numpy arrays and scalars through a real server, both ways, and memory over a long episode.

"To the server" means the array is an argument of a remote call (the server
looks at what it received and echoes it back); "from the server" means the
server makes the array with numpy and the client materializes it.
"""

from __future__ import annotations

import hashlib
from typing import Any, List, Tuple

import numpy as np
import pytest

import simplerpc
from simplerpc import materialize

SHAPES: List[Tuple[int, ...]] = [(3, 5), (7,), (2, 3, 4), (), (0,), (0, 4), (1, 1, 1, 1)]

# What the server received: type, dtype string with byte order, shape, C-order bytes, flags.
SERVER_VIEW = "lambda a: [type(a).__name__, a.dtype.str, list(a.shape), a.tobytes(), bool(a.flags.writeable)]"
SHA256 = "lambda a: [a.dtype.str, list(a.shape), __import__('hashlib').sha256(a.tobytes()).hexdigest()]"


@pytest.fixture
def maker(conn: simplerpc.Connection, arrays: Any) -> Any:
    """``maker(dtype, shape)``: the server's ``make_array`` (same source as ``arrays.make``)."""
    conn.execute(arrays.source + "\nimport numpy\n")
    return conn.eval("lambda dtype, shape: make_array(numpy, dtype, shape)")


def test_each_dtype_to_the_server_and_back(conn: simplerpc.Connection, arrays: Any, dtype_str: str) -> None:
    view, echo = conn.eval(SERVER_VIEW), conn.eval("lambda a: a")
    for shape in SHAPES:
        local = arrays.make(dtype_str, shape)
        assert local.dtype.str == dtype_str and local.shape == shape
        assert materialize(view(local)) == ["ndarray", dtype_str, list(shape), local.tobytes(), True], shape
        arrays.assert_same(materialize(echo(local)), local)
        # as a keyword argument and inside a container too
        arrays.assert_same(materialize(echo(a=local)), local)
        back = materialize(conn.eval("lambda *a: list(a)")(local, [local], {"k": local}))
        arrays.assert_same(back[0], local)
        arrays.assert_same(back[1][0], local)
        arrays.assert_same(back[2]["k"], local)


def test_each_dtype_from_the_server(conn: simplerpc.Connection, arrays: Any, maker: Any, dtype_str: str) -> None:
    for shape in SHAPES:
        arrays.assert_same(materialize(maker(dtype_str, list(shape))), arrays.make(dtype_str, shape))
    rnp = conn.modules.numpy
    zeros = materialize(rnp.zeros((2, 3), dtype=dtype_str))
    arrays.assert_same(zeros, np.zeros((2, 3), dtype=dtype_str))
    # the dtype object itself as an argument (a proxy) and the array's own methods
    remote = rnp.arange(12).astype(rnp.dtype(dtype_str)).reshape(3, 4)
    arrays.assert_same(materialize(remote), np.arange(12).astype(dtype_str).reshape(3, 4))
    arrays.assert_same(materialize(remote.T.copy()), np.arange(12).astype(dtype_str).reshape(3, 4).T.copy())


def test_non_contiguous_and_fortran_arrays_to_the_server(conn: simplerpc.Connection, arrays: Any) -> None:
    view, echo = conn.eval(SERVER_VIEW), conn.eval("lambda a: a")
    base = arrays.make("<f8", (6, 8))
    cube = arrays.make(">i4", (4, 5, 6))
    cases = [
        base[::2, 1::3],
        base.T,
        base[:, ::-1],
        base[::-1, ::-2],
        np.asfortranarray(base),
        np.asfortranarray(cube),
        cube[..., 2],
        cube[1:3, ::2, ::-1],
        base[:, 3],
        base[2:2],
    ]
    for a in cases:
        assert not a.flags.c_contiguous or a.size == 0 or a is cases[-1]
        seen = materialize(view(a))
        assert seen == ["ndarray", a.dtype.str, list(a.shape), a.tobytes(), True]
        got = materialize(echo(a))
        assert got.flags.c_contiguous
        arrays.assert_same(got, a)


def test_non_contiguous_and_fortran_arrays_from_the_server(conn: simplerpc.Connection) -> None:
    rnp = conn.modules.numpy
    remote = rnp.arange(48.0).reshape(6, 8)
    local = np.arange(48.0).reshape(6, 8)
    pairs = [
        (remote.T, local.T),
        (remote[::2, ::-3], local[::2, ::-3]),
        (rnp.asfortranarray(remote), np.asfortranarray(local)),
        (remote[:, 5], local[:, 5]),
        (rnp.broadcast_to(rnp.arange(3), (4, 3)), np.broadcast_to(np.arange(3), (4, 3))),
    ]
    for r, want in pairs:
        got = materialize(r)
        assert got.flags.c_contiguous and got.shape == want.shape
        assert got.tobytes() == want.tobytes()
        assert not materialize(r.flags.c_contiguous) or want.flags.c_contiguous


def test_materialized_arrays_are_writable_and_own_their_data(conn: simplerpc.Connection) -> None:
    rnp = conn.modules.numpy
    for r in (rnp.arange(10), rnp.zeros((3, 4), dtype=">f4"), rnp.ones((2, 2)).T, rnp.array(5.0)):
        got = materialize(r)
        assert got.flags.writeable and got.flags.owndata
        got[...] = 7
        assert (got == 7).all()
    # a broadcast view is read-only on the server; its copy here is writable
    got = materialize(rnp.broadcast_to(rnp.arange(3), (2, 3)))
    got[0, 0] = 42
    assert got[0, 0] == 42


def test_arrays_made_over_a_frame_free_it_with_the_last_of_them(conn: simplerpc.Connection) -> None:
    """A large uint8 array (aligned anywhere) is made over the received frame
    in place; the frame is freed when the last array over it goes, so a loop
    of materializes keeps the client's memory flat."""

    def rss() -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

    remote = conn.eval("__import__('numpy').arange(32 * 2**20, dtype='u1')")
    first = materialize(remote)
    assert not first.flags.owndata and first.flags.writeable, "made in place, not copied"
    assert first[255] == 255 and first[-1] == (32 * 2**20 - 1) % 256
    second = materialize(remote)
    assert not np.shares_memory(first, second)
    del first, second
    before = rss()
    for _ in range(20):
        got = materialize(remote)
        view = got[1:10]  # a view keeps the frame too
        del got
        assert view[0] == 1
        del view
    assert rss() - before < 96 * 2**20, "frames are freed with their arrays"


def test_large_arguments_are_made_over_the_request_frame_on_the_server(conn: simplerpc.Connection) -> None:
    """The server's reader places a large request so that its first array's
    data is aligned, and the executor makes the array over the frame in
    place (no copy); an array kept on the server keeps its frame alive."""
    probe = conn.eval("lambda a: (a.flags.owndata, a.ctypes.data % 64, a.flags.writeable)")
    materialize(probe(np.zeros(300_000, "u1")))  # the server imports numpy
    for dtype in ("f8", ">f4", "c16", "u1"):
        owndata, misalign, writable = materialize(probe(np.ones(2**18, dtype)))
        assert not owndata and writable, dtype
        assert misalign == 0 or np.dtype(dtype).alignment == 1, (dtype, misalign)
    kept = conn.eval("lambda a: a")(np.arange(2**18, dtype="f8"))
    for _ in range(3):
        materialize(probe(np.ones(2**18)))  # other frames come and go
    back = materialize(kept)
    assert back[0] == 0 and back[-1] == 2**18 - 1 and back.sum() == (2**18 - 1) * 2**18 // 2


def test_zero_dim_and_empty_arrays(conn: simplerpc.Connection) -> None:
    rnp = conn.modules.numpy
    zero_d = materialize(rnp.array(2.5, dtype="float32"))
    assert type(zero_d) is np.ndarray and zero_d.shape == () and zero_d.dtype == np.float32 and zero_d == 2.5
    for shape in [(0,), (0, 3), (3, 0, 2)]:
        got = materialize(rnp.empty(shape, dtype="int16"))
        assert got.shape == shape and got.dtype == np.int16 and got.size == 0
    echo = conn.eval("lambda a: a")
    zd = materialize(echo(np.array(7, dtype=">u2")))
    assert zd.shape == () and zd.dtype.str == ">u2" and int(zd) == 7


def test_structured_arrays(conn: simplerpc.Connection) -> None:
    dt = np.dtype([("id", "<i4"), ("pos", "<f8", (2,)), ("ok", "?")])
    local = np.zeros(3, dtype=dt)
    local["id"] = [1, 2, 3]
    local["pos"] = [[0.5, 1.5], [2.5, 3.5], [4.5, 5.5]]
    local["ok"] = [True, False, True]
    got = materialize(conn.eval("lambda a: a")(local))
    assert got.dtype == dt and got.tobytes() == local.tobytes()
    assert materialize(conn.eval("lambda a: a['pos'].sum()")(local)) == 18.0


NATIVE_SCALAR_DTYPES = ["?", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "c8", "c16"]


def test_numpy_scalars_both_ways(conn: simplerpc.Connection, arrays: Any) -> None:
    inspect = conn.eval("lambda s: [type(s).__name__, s.dtype.str, s.tobytes()]")
    echo = conn.eval("lambda s: s")
    for code in NATIVE_SCALAR_DTYPES:
        scalar = arrays.make(code, (4,))[1]
        assert isinstance(scalar, np.generic) and type(scalar).__name__ != "ndarray"
        assert materialize(inspect(scalar)) == [type(scalar).__name__, scalar.dtype.str, scalar.tobytes()], code
        back = materialize(echo(scalar))
        assert type(back) is type(scalar) and back.tobytes() == scalar.tobytes(), code
        made = materialize(conn.modules.numpy.dtype(code).type(1))
        assert type(made) is np.dtype(code).type and made == 1, code
    # numpy float64 is a Python float and travels as one (as in the reference)
    assert type(materialize(echo(np.float64(1.25)))) is float
    assert type(materialize(conn.modules.numpy.float64(2.5))) is float
    assert materialize(conn.eval("lambda s: type(s).__name__")(np.float64(1.0))) in ("float", "float64")


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_64_mib_arrays_both_ways(conn: simplerpc.Connection) -> None:
    n = 64 * 2**20 // 8
    local = np.random.default_rng(2024).random(n)
    assert local.nbytes == 64 * 2**20
    digest = conn.eval(SHA256)
    # to the server: what it received has the same checksum
    assert materialize(digest(local)) == ["<f8", [n], _sha(local)]
    # and back
    back = materialize(conn.eval("lambda a: a")(local))
    assert back.dtype == np.float64 and back.shape == (n,) and _sha(back) == _sha(local)
    del back
    # made on the server
    remote = conn.eval(f"__import__('numpy').random.default_rng(7).random({n})")
    got = materialize(remote)
    assert got.shape == (n,) and got.flags.writeable
    assert materialize(digest(remote)) == ["<f8", [n], _sha(got)]
    assert _sha(got) == _sha(np.random.default_rng(7).random(n))


# ------------------------------------------------------------ a long RL episode

ENV_SOURCE = '''
import gc
import numpy as np
import weakref


class ImageEnv:
    """gym-like: step(action) -> (obs, reward, done, truncated, info), a FRESH 480x640x3 image each step."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.t = 0
        self.live = weakref.WeakValueDictionary()  # observations still referenced anywhere
        self.made = 0

    def _obs(self):
        obs = self.rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
        obs[0, 0, :] = [self.t % 256, (self.t // 256) % 256, 7]  # a step stamp
        self.made += 1
        self.live[self.made] = obs
        return obs

    def reset(self):
        self.t = 0
        return self._obs(), {"t": 0}

    def step(self, action):
        self.t += 1
        obs = self._obs()
        reward = float(np.asarray(action, dtype=np.float64).sum())
        return obs, reward, False, self.t >= 10 ** 9, {"t": self.t, "mean": float(obs[1:, :, 0].mean())}


def executor_objects():
    """How many objects this client's executor holds (the session's object table)."""
    me = globals()
    for o in gc.get_objects():
        if type(o).__name__ == "PythonExecutor" and o.globals is me:
            return len(o.objects)
    raise LookupError("no executor owns these globals")
'''

STEPS = 2200
WARMUP = 200
MAX_RSS_GROWTH = 50 * 2**20


def test_env_step_loop_memory_stays_flat(start_server: Any) -> None:
    with start_server() as srv:
        host, port, token, _ = srv
        with simplerpc.connect(host, port, token) as conn:
            conn.execute(ENV_SOURCE)
            env = conn.eval("ImageEnv(0)")
            obs, info = materialize(env.reset())
            assert obs.shape == (480, 640, 3) and obs.dtype == np.uint8 and info == {"t": 0}
            namespace_size = len(conn.namespace)
            rss_warm = None
            previous = None
            for i in range(1, STEPS + 1):
                action = np.full(7, i % 5, dtype=np.float32)
                result = env.step(action)  # a proxy; the previous one is dropped here
                obs, reward, done, truncated, info = materialize(result)
                assert obs.shape == (480, 640, 3) and obs.dtype == np.uint8 and obs.flags.writeable
                assert (obs[0, 0, 0], obs[0, 0, 1]) == (i % 256, (i // 256) % 256)
                assert reward == 7.0 * (i % 5) and done is False and truncated is False and info["t"] == i
                if previous is not None:
                    assert not np.array_equal(obs, previous)  # fresh every step
                previous = obs
                if i == WARMUP:
                    rss_warm = srv.rss()
            rss_end = srv.rss()
            del result
            assert rss_warm is not None
            growth = rss_end - rss_warm
            print(
                f"\nenv-step loop: server VmRSS {rss_warm / 2**20:.1f} MiB after {WARMUP} steps, "
                f"{rss_end / 2**20:.1f} MiB after {STEPS} steps (growth {growth / 2**20:+.1f} MiB)"
            )
            assert growth < MAX_RSS_GROWTH, (
                f"server RSS grew by {growth / 2**20:.1f} MiB over {STEPS - WARMUP} steps "
                f"({rss_warm / 2**20:.1f} -> {rss_end / 2**20:.1f} MiB): objects are not released"
            )
            # Released on the server: the dropped step results are gone (releases ride on the
            # next request; this eval is one), only the env and a handful of proxies remain.
            made = materialize(env.made)
            assert made == STEPS + 1
            live = materialize(conn.eval("lambda e: len(e.live)")(env))
            assert live <= 2, f"{live} of {made} observations are still alive on the server"
            held = materialize(conn.eval("executor_objects()"))
            assert held <= 8, f"the executor still holds {held} objects after {STEPS} steps"
            assert len(conn.namespace) == namespace_size


def test_large_arrays_of_each_dtype_are_copied_once_and_come_back_right(conn: simplerpc.Connection, arrays: Any, maker: Any, dtype_str: str) -> None:
    """Values of 256 KiB and more are decoded with their large bins taken out
    (srpc_value_split): each array is made over the received frame in place
    when its data lies aligned there, else copied once, from the frame into
    its own numpy array; either way writable, apart from every other array,
    with its dtype, byte order and shape; small parts, bytes and nested
    containers come back as usual."""
    itemsize = np.dtype(dtype_str).itemsize
    n = (300 << 10) // itemsize
    for shape in [(n,), (n // 8, 8), (2, n // 2)]:
        big = materialize(maker(dtype_str, list(shape)))
        arrays.assert_same(big, arrays.make(dtype_str, shape))
        big[...] = big[::-1].copy() if big.ndim == 1 else big  # writable, owns its memory
    value = materialize(conn.eval("lambda a: [a, {'k': a, 'b': bytes(70000)}, (b'x' * 100000, 'text')]")(maker(dtype_str, [n])))
    want = arrays.make(dtype_str, (n,))
    arrays.assert_same(value[0], want)
    arrays.assert_same(value[1]["k"], want)
    assert value[1]["b"] == bytes(70000) and type(value[1]["b"]) is bytes
    assert value[2] == (b"x" * 100000, "text")  # a tuple stays a tuple (the tuple extension)
    # Each array is writable and apart from the other.
    assert value[0].flags.writeable and value[1]["k"].flags.writeable
    assert not np.shares_memory(value[0], value[1]["k"])
    value[0][...] = value[0][::-1].copy()
    arrays.assert_same(value[1]["k"], want)
    # Large values that are not arrays come back as they were.
    other = materialize(conn.eval("[b'z' * 300000, 'y' * 300000, slice(b'a' * 300000, None)]"))
    assert other == [b"z" * 300000, "y" * 300000, slice(b"a" * 300000, None)]
    sub = materialize(conn.eval("__import__('numpy').zeros((40000,), '(3,)<f8')"))
    assert sub.shape == (40000, 3) and sub.dtype == np.dtype("<f8") and sub.flags.owndata


def test_large_arrays_sent_up_with_references_around_them(conn: simplerpc.Connection, arrays: Any) -> None:
    """Arguments of 256 KiB and more reach the server's executor with each
    array copied once, straight from the request frame; references before,
    between and after them still resolve to the right objects."""
    a = arrays.make(">f8", (300, 200))
    b = arrays.make("<i2", (90000,))
    tag1, tag2 = conn.eval("'first'"), conn.eval("'second'")
    check = conn.eval(
        "lambda t1, x, d, t2: [t1, x.dtype.str, x.shape, x.tobytes() == bytes(x), "
        "d['k'], d['y'].dtype.str, int(d['y'].sum()), t2, x.flags.writeable and x.flags.owndata]"
    )
    got = materialize(check(tag1, a, {"k": tag2, "y": b}, tag1))
    assert got == ["first", ">f8", (300, 200), True, "second", "<i2", int(b.sum()), "first", True]
    echo = conn.eval("lambda *a: list(a)")
    back = materialize(echo(a, tag2, b))
    arrays.assert_same(back[0], a)
    assert back[1] == "second"
    arrays.assert_same(back[2], b)
