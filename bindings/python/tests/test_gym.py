"""simplerpc.gym against real Gymnasium environments in a numpy<2 server.

* ``RemoteEnv`` passes gymnasium's environment checker (CartPole-v1) and
  steps an image-observation environment (Atari Pong through ale-py)
  byte for byte as the server's own copy of it does;
* ``RemoteVectorEnv`` gives exactly what gymnasium's ``SyncVectorEnv`` gives
  over local environments, in each autoreset mode.

The numpy<2 interpreter is ``$SIMPLERPC_NP1_PYTHON`` with gymnasium and
ale-py installed (scripts/test.sh installs them).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from typing import Any, Iterator, List

import numpy as np
import pytest

try:
    import gymnasium
except ImportError:  # fail, never skip: scripts/test.sh installs it
    raise ImportError("these tests need gymnasium>=1.0 in this Python: pip install 'gymnasium>=1.0'") from None

import simplerpc
from simplerpc import materialize
from simplerpc.gym import RemoteEnv, RemoteVectorEnv


@pytest.fixture(scope="module")
def np1_gym_server(np1_python: str, start_server: Any) -> Iterator[Any]:
    with start_server(start_server.simplerpc_argv(np1_python)) as srv:
        yield srv


def _connect(srv: Any) -> simplerpc.Connection:
    host, port, token, _ = srv
    return simplerpc.connect(host, port, token)


@pytest.fixture
def conn(np1_gym_server: Any) -> Iterator[simplerpc.Connection]:
    with _connect(np1_gym_server) as c:
        yield c


def test_remote_cartpole_passes_the_env_checker(conn: simplerpc.Connection) -> None:
    from gymnasium.utils.env_checker import check_env

    env = RemoteEnv("CartPole-v1", conn=conn)
    assert int(materialize(conn.modules.numpy.__version__).split(".")[0]) == 1
    assert isinstance(env, gymnasium.Env)
    # Local copies of the spaces: sampling never leaves this process.
    assert type(env.action_space) is gymnasium.spaces.Discrete and env.action_space.n == 2
    assert type(env.observation_space) is gymnasium.spaces.Box
    assert env.observation_space.shape == (4,) and env.observation_space.dtype == np.float32
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)  # raises on a failed check
    # The only warnings are CartPole's own (infinite bounds) and the absent spec.
    local = gymnasium.make("CartPole-v1").unwrapped
    with warnings.catch_warnings(record=True) as local_caught:
        warnings.simplefilter("always")
        check_env(local, skip_render_check=True)  # rendering needs pygame, not installed
    ours = {str(w.message) for w in caught} - {str(w.message) for w in local_caught}
    assert all("spec" in m for m in ours), ours
    obs, info = env.reset(seed=3)
    assert isinstance(obs, np.ndarray) and obs.dtype == np.float32 and obs in env.observation_space
    step = env.step(env.action_space.sample())
    assert type(step) is tuple and len(step) == 5
    env.close()
    env.close()  # idempotent


def _digest(frames: List[np.ndarray]) -> str:
    h = hashlib.sha256()
    for f in frames:
        h.update(f.tobytes())
    return h.hexdigest()


def test_remote_pong_images_are_the_servers_own(conn: simplerpc.Connection) -> None:
    env = RemoteEnv("ale_py:ALE/Pong-v5", conn=conn, frameskip=4, repeat_action_probability=0.0)
    assert env.observation_space.shape == (210, 160, 3) and env.observation_space.dtype == np.uint8
    actions = [int(a) for a in np.random.default_rng(7).integers(0, env.action_space.n, 40)]
    obs, _ = env.reset(seed=5)
    frames = [obs]
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(a)
        assert obs.shape == (210, 160, 3) and obs.dtype == np.uint8 and obs.flags.writeable
        frames.append(obs)
    env.close()
    # The same episode played in the server by its own numpy<2 gymnasium.
    conn.execute(
        "import gymnasium, hashlib\n"
        "def _pong_digest(actions):\n"
        "    e = gymnasium.make('ale_py:ALE/Pong-v5', frameskip=4, repeat_action_probability=0.0)\n"
        "    h = hashlib.sha256(); o, _ = e.reset(seed=5); h.update(o.tobytes())\n"
        "    for a in actions:\n"
        "        o = e.step(a)[0]; h.update(o.tobytes())\n"
        "    e.close(); return h.hexdigest()\n"
    )
    assert materialize(conn.eval("_pong_digest")(actions)) == _digest(frames)
    assert len({f.tobytes() for f in frames}) > 1  # the game moved


@pytest.mark.parametrize("mode", ["NextStep", "SameStep"])
def test_vector_env_matches_gymnasiums_sync_vector_env(np1_gym_server: Any, mode: str) -> None:
    n = 3
    conns = [_connect(np1_gym_server) for _ in range(n)]
    remote = RemoteVectorEnv(["CartPole-v1"] * n, conns=conns, autoreset_mode=mode)
    local = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make("CartPole-v1")] * n, autoreset_mode=mode)
    try:
        assert remote.observation_space == local.observation_space
        assert remote.action_space == local.action_space
        assert remote.metadata["autoreset_mode"] == local.metadata["autoreset_mode"]
        r_obs, r_info = remote.reset(seed=11)
        l_obs, l_info = local.reset(seed=11)
        np.testing.assert_array_equal(r_obs, l_obs)
        rng = np.random.default_rng(0)
        episodes_ended = 0
        for _ in range(150):
            actions = rng.integers(0, 2, n)
            r = remote.step(actions)
            l = local.step(actions)
            for got, want in zip(r[:4], l[:4]):
                np.testing.assert_array_equal(got, want)
            assert set(r[4]) == set(l[4])
            if "final_obs" in l[4]:
                np.testing.assert_array_equal(r[4]["_final_obs"], l[4]["_final_obs"])
                for i in np.flatnonzero(l[4]["_final_obs"]):
                    np.testing.assert_array_equal(r[4]["final_obs"][i], l[4]["final_obs"][i])
            episodes_ended += int(np.sum(r[2] | r[3]))
        assert episodes_ended >= n  # the autoreset path really ran
    finally:
        remote.close()
        local.close()
        for c in conns:
            c.disconnect()


def test_vector_env_reset_mask_and_disabled_autoreset(np1_gym_server: Any) -> None:
    conns = [_connect(np1_gym_server) for _ in range(2)]
    remote = RemoteVectorEnv(["CartPole-v1"] * 2, conns=conns, autoreset_mode="Disabled")
    try:
        obs, _ = remote.reset(seed=1)
        before = obs.copy()
        ended = np.zeros(2, dtype=bool)
        for _ in range(200):
            obs, _, term, trunc, _ = remote.step(np.zeros(2, dtype=np.int64))  # always left: falls soon
            ended = term | trunc
            if ended.any():
                break
        assert ended.any()
        with pytest.raises(RuntimeError, match="reset_mask"):
            remote.step(np.zeros(2, dtype=np.int64))
        mask = ended.copy()
        after, _ = remote.reset(seed=[7, 8], options={"reset_mask": mask})
        for i in range(2):
            if not mask[i]:  # not reset: keeps its last observation
                np.testing.assert_array_equal(after[i], obs[i])
        assert not np.array_equal(after, before) or mask.all()
        remote.step(np.zeros(2, dtype=np.int64))  # steps again
    finally:
        remote.close()
        for c in conns:
            c.disconnect()


# ------------------------------------------------------------ in spawned children

SLEEPY_ENV = '''
import time
import gymnasium
import numpy as np


class Sleepy(gymnasium.Env):
    """Steps take `delay` seconds and report when they ran."""

    def __init__(self, delay=0.2):
        self.delay = delay
        self.observation_space = gymnasium.spaces.Box(0, 255, (8, 8, 3), np.uint8)
        self.action_space = gymnasium.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        start = time.time()
        time.sleep(self.delay)
        return self.observation_space.sample(), 1.0, False, False, {"start": start, "end": time.time()}


gymnasium.register("Sleepy-v0", entry_point=Sleepy)
'''


def test_remote_env_in_a_spawned_numpy1_child(np1_python: str) -> None:
    env = RemoteEnv("CartPole-v1", python=np1_python)
    conn = env._conn
    pid = materialize(conn.modules.os.getpid())
    assert int(materialize(conn.modules.numpy.__version__).split(".")[0]) == 1
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space
    assert len(env.step(env.action_space.sample())) == 5
    env.close()
    # The child this made is gone with it, reaped (no zombie left in /proc).
    assert not os.path.exists(f"/proc/{pid}")


def test_vector_env_steps_spawned_children_at_once(np1_python: str, tmp_path: Any) -> None:
    (tmp_path / "sleepy_env.py").write_text(SLEEPY_ENV)
    n = 4
    conns = [simplerpc.spawn(np1_python, sys_path=[str(tmp_path)]) for _ in range(n)]
    try:
        venv = RemoteVectorEnv(["sleepy_env:Sleepy-v0"] * n, conns=conns)
        venv.reset(seed=0)
        obs, rewards, *_, info = venv.step(np.zeros(n, dtype=np.int64))
        assert obs.shape == (n, 8, 8, 3) and obs.dtype == np.uint8
        assert rewards.tolist() == [1.0] * n
        # Every environment's step began before any had ended: they ran at
        # the same time, not one after another.
        assert max(info["start"]) < min(info["end"]), (info["start"], info["end"])
        venv.close()
    finally:
        for c in conns:
            c.disconnect()


def test_readme_vector_loop_runs_as_printed(np1_python: str) -> None:
    """examples/python/gym_vector.py, which the README shows verbatim, run
    as its usage line says: 4 numpy<2 children, a linear policy."""
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[3] / "examples" / "python" / "gym_vector.py"
    readme = (example.parents[2] / "README.md").read_text()
    assert example.read_text().split('"""', 2)[2].strip() in readme, "README's loop differs from gym_vector.py"
    run = subprocess.run(
        [sys.executable, str(example), np1_python], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout + run.stderr
    line = run.stdout.strip().splitlines()[-1]
    assert line.endswith("obs batch (4, 4) float32"), line
    assert int(line.split()[0]) >= 1, line  # episodes ended, so autoreset ran


def test_vector_env_refuses_a_single_id() -> None:
    # A str is a sequence too: without the check it made one env per character.
    with pytest.raises(TypeError, match=r"one entry per environment"):
        RemoteVectorEnv("CartPole-v1")


def test_vector_env_batches_are_the_callers_own(np1_gym_server: Any) -> None:
    conns = [_connect(np1_gym_server) for _ in range(2)]
    remote = RemoteVectorEnv(["CartPole-v1"] * 2, conns=conns)
    try:
        remote.reset(seed=3)
        obs, *_ = remote.step(np.zeros(2, dtype=np.int64))
        kept = obs.copy()
        obs[:] = 99.0  # the caller's array: the env keeps its own observations
        again, _ = remote.reset(seed=[5, 6], options={"reset_mask": np.array([True, False])})
        np.testing.assert_array_equal(again[1], kept[1])
        assert again is not obs
    finally:
        remote.close()
        for c in conns:
            c.disconnect()
