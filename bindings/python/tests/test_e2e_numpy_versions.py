"""End to end across numpy versions: the README's reason to exist.

* a server running in a numpy<2 venv (``$SIMPLERPC_NP1_PYTHON``, default
  ``/tmp/v1/bin/python``) with a client in this numpy>=2 process;
* the reverse: client code run by the numpy<2 Python in a subprocess against
  a server of this venv.

Arrays of every numeric dtype and byte order must arrive identical (dtype
string, shape, bytes) both ways, and the two sides must really run different
numpy major versions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator

import numpy as np
import pytest

import simplerpc
from simplerpc import materialize

# (600, 600): a value over 256 KiB, whose arrays are made over the frame in place.
SHAPES = [(3, 5), (7,), (2, 3, 4), (), (0,), (0, 4), (600, 600)]
SCALARS = ["?", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "c8", "c16"]
SUBPROCESS_TIMEOUT = 300  # a hang guard


@pytest.fixture(scope="module")
def np1_server(np1_python: str, start_server: Any) -> Iterator[Any]:
    with start_server(start_server.simplerpc_argv(np1_python)) as srv:
        yield srv


@pytest.fixture
def np1_conn(np1_server: Any) -> Iterator[simplerpc.Connection]:
    host, port, token, _ = np1_server
    with simplerpc.connect(host, port, token) as c:
        yield c


# ------------------------------------------------------------ numpy<2 server, this client


def test_the_versions_really_differ(np1_conn: simplerpc.Connection, np1_python: str) -> None:
    server_version = materialize(np1_conn.modules.numpy.__version__)
    assert int(server_version.split(".")[0]) == 1, server_version
    assert int(np.__version__.split(".")[0]) >= 2, np.__version__
    assert materialize(np1_conn.modules.sys.executable) == np1_python


def test_np1_server_each_dtype_both_ways(np1_conn: simplerpc.Connection, arrays: Any, dtype_str: str) -> None:
    view = np1_conn.eval("lambda a: [type(a).__name__, a.dtype.str, list(a.shape), a.tobytes(), a.flags.writeable]")
    echo = np1_conn.eval("lambda a: a")
    np1_conn.execute(arrays.source + "\nimport numpy\n")
    make = np1_conn.eval("lambda dt, shape: make_array(numpy, dt, shape)")
    for shape in SHAPES:
        local = arrays.make(dtype_str, shape)
        # this numpy 2 array, as the numpy 1 server sees it
        assert materialize(view(local)) == ["ndarray", dtype_str, list(shape), local.tobytes(), True], shape
        arrays.assert_same(materialize(echo(local)), local)
        # made by numpy 1 with the same code
        arrays.assert_same(materialize(make(dtype_str, list(shape))), local)
    non_contiguous = arrays.make(dtype_str, (6, 4))[::2, ::-1]
    arrays.assert_same(materialize(echo(non_contiguous)), non_contiguous)
    fortran = np.asfortranarray(arrays.make(dtype_str, (3, 4)))
    arrays.assert_same(materialize(echo(fortran)), fortran)


def test_np1_server_scalars_both_ways(np1_conn: simplerpc.Connection, arrays: Any) -> None:
    inspect = np1_conn.eval("lambda s: (type(s).__name__, s.dtype.str, s.tobytes())")
    echo = np1_conn.eval("lambda s: s")
    for code in SCALARS:
        scalar = arrays.make(code, (4,))[1]
        name, dtype, data = materialize(inspect(scalar))
        assert (dtype, data) == (scalar.dtype.str, scalar.tobytes()), code
        back = materialize(echo(scalar))
        assert type(back) is type(scalar) and back.tobytes() == scalar.tobytes(), code
    assert type(materialize(echo(np.float64(0.5)))) is float


def test_np1_server_patch_module_readme_flow(np1_server: Any) -> None:
    # The README's use case: the environment under numpy<2, the policy here under numpy>=2.
    host, port, token, _ = np1_server
    real_np = sys.modules["numpy"]
    with simplerpc.connect(host, port, token) as conn:
        simplerpc.patch_module(conn, "numpy")
        import numpy as remote_np

        assert remote_np is not real_np
        obs = materialize(remote_np.arange(12, dtype="uint8").reshape(3, 4))
        assert type(obs) is real_np.ndarray and obs.dtype == real_np.uint8
        policy_out = real_np.asarray(obs, dtype=real_np.float32) / 2  # numpy 2 code on the numpy 1 data
        assert materialize(remote_np.sum(policy_out)) == 33.0
        assert materialize(remote_np.__version__).startswith("1.")
    assert sys.modules["numpy"] is real_np


# ------------------------------------------------------------ this server, numpy<2 client

CLIENT_SCRIPT = r"""
import json, os, sys
import numpy as np
import simplerpc
from simplerpc import materialize

spec = json.loads(os.environ["E2E_SPEC"])
exec(spec["source"])
out = {"client_numpy": np.__version__, "checked": 0, "failures": []}

def check(label, got, want):
    out["checked"] += 1
    ok = (type(got) is np.ndarray and got.dtype.str == want.dtype.str and got.shape == want.shape
          and got.tobytes() == np.ascontiguousarray(want).tobytes() and got.flags.writeable)
    if not ok:
        out["failures"].append([label, repr(got)[:200], repr(want)[:200]])

conn = simplerpc.connect()  # host, port and token from SIMPLERPC_HOST/PORT/TOKEN
out["server_numpy"] = materialize(conn.modules.numpy.__version__)
view = conn.eval("lambda a: [type(a).__name__, a.dtype.str, list(a.shape), a.tobytes()]")
echo = conn.eval("lambda a: a")
conn.execute(spec["source"] + "\nimport numpy\n")
make = conn.eval("lambda dt, shape: make_array(numpy, dt, shape)")
for dtype in spec["dtypes"]:
    for shape in spec["shapes"]:
        shape = tuple(shape)
        local = make_array(np, dtype, shape)
        label = "%s %s" % (dtype, shape)
        out["checked"] += 1
        seen = materialize(view(local))
        if seen != ["ndarray", dtype, list(shape), local.tobytes()]:
            out["failures"].append(["server view " + label, repr(seen)[:200], dtype])
        check("echo " + label, materialize(echo(local)), local)
        check("made by numpy 2 " + label, materialize(make(dtype, list(shape))), local)
    nc = make_array(np, dtype, (6, 4))[::2, ::-1]
    check("non-contiguous " + dtype, materialize(echo(nc)), nc)
    f = np.asfortranarray(make_array(np, dtype, (3, 4)))
    check("fortran " + dtype, materialize(echo(f)), f)
for code in spec["scalars"]:
    s = make_array(np, code, (4,))[1]
    back = materialize(echo(s))
    out["checked"] += 1
    if type(back) is not type(s) or back.tobytes() != s.tobytes():
        out["failures"].append(["scalar " + code, repr(back), repr(s)])

# patch_module under numpy 1, against the numpy 2 server
simplerpc.patch_module(conn, "numpy")
import numpy as remote_np
arr = materialize(remote_np.arange(6).reshape(2, 3)[:, 1:])
out["patched_numpy"] = [type(arr).__module__, arr.tolist(), materialize(remote_np.__version__)]
conn.disconnect()
assert sys.modules["numpy"] is np
print("E2E-RESULT " + json.dumps(out))
"""


def test_np1_client_against_this_server(np1_python: str, server: Any, arrays: Any) -> None:
    host, port, token, _ = server
    spec = {"source": arrays.source, "dtypes": arrays.dtypes, "shapes": [list(s) for s in SHAPES], "scalars": SCALARS}
    env: Dict[str, str] = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLERPC_")}
    env.update(
        SIMPLERPC_HOST=host, SIMPLERPC_PORT=str(port), SIMPLERPC_TOKEN=token, E2E_SPEC=json.dumps(spec)
    )
    run = subprocess.run(
        [np1_python, "-c", CLIENT_SCRIPT], env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT
    )
    assert run.returncode == 0, f"the numpy<2 client failed:\n{run.stdout}\n{run.stderr}"
    lines = [line for line in run.stdout.splitlines() if line.startswith("E2E-RESULT ")]
    assert len(lines) == 1, run.stdout
    out = json.loads(lines[0][len("E2E-RESULT "):])
    assert int(out["client_numpy"].split(".")[0]) == 1, out["client_numpy"]
    assert out["server_numpy"] == np.__version__ and int(out["server_numpy"].split(".")[0]) >= 2
    assert out["failures"] == []
    per_dtype = len(SHAPES) * 3 + 2
    assert out["checked"] == len(arrays.dtypes) * per_dtype + len(SCALARS)
    assert out["patched_numpy"] == ["numpy", [[1, 2], [4, 5]], np.__version__]


# ------------------------------------------------ the README's own-venv example, as printed

EXAMPLE_DIR = Path(__file__).resolve().parents[3] / "examples" / "python"


def test_readme_simulator_in_its_own_venv(np1_python: str, start_server: Any) -> None:
    """The README's "Run your simulator in its own venv" section, run as it
    says: the server in the numpy<2 venv started in the directory holding
    toy_sim.py, the policy loop (examples/python/policy.py, shown verbatim in
    the README) in this numpy>=2 venv with the server's exports."""
    readme = (EXAMPLE_DIR.parents[1] / "README.md").read_text()
    for name in ("policy.py", "toy_sim.py"):
        assert (EXAMPLE_DIR / name).exists(), name
    policy = (EXAMPLE_DIR / "policy.py").read_text()
    body = policy.split('"""', 2)[2].strip()  # the code after the docstring
    assert body in readme, "the README's policy loop differs from examples/python/policy.py: copy it over"
    argv = start_server.simplerpc_argv(np1_python)
    with start_server(argv, cwd=str(EXAMPLE_DIR)) as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLERPC_")}
        env.update(SIMPLERPC_HOST=srv.host, SIMPLERPC_PORT=str(srv.port), SIMPLERPC_TOKEN=srv.token)
        run = subprocess.run(
            [sys.executable, str(EXAMPLE_DIR / "policy.py")],
            env=env,
            cwd=str(EXAMPLE_DIR.parent),  # not the example's directory: toy_sim must come from the server
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
        )
    assert run.returncode == 0, f"policy.py failed:\n{run.stdout}\n{run.stderr}"
    first, last = run.stdout.strip().splitlines()
    assert first == f"policy numpy {np.__version__}, simulator numpy {first.rsplit(' ', 1)[1]}", first
    assert int(first.rsplit(" ", 1)[1].split(".")[0]) == 1, first
    # The game is deterministic (seed 1) and the policy catches every ball.
    assert last == "35 episodes, return +35, last obs (84, 84, 3) uint8", last
