"""Gymnasium environments that run in another process: :class:`RemoteEnv` and
:class:`RemoteVectorEnv`.

The environment is made and stepped on a simplerpc server (a connection you
give, or a child process started with :func:`simplerpc.spawn` in the
simulator's own Python), and looks like any local ``gymnasium.Env``: its
``observation_space`` and ``action_space`` are local copies, so
``action_space.sample()`` runs here, and ``reset``, ``step``, ``render`` and
``close`` return local values in one round trip each. The server needs
``gymnasium`` (and the environment's own packages); this side needs
``gymnasium`` too (``pip install 'simplerpc[gym]'``). The two may have
different numpy and gymnasium versions.

Spaces are copied as descriptions, not pickles, so they survive a numpy 1 to
numpy 2 boundary: ``Box``, ``Discrete``, ``MultiDiscrete``, ``MultiBinary``,
``Text`` and ``Tuple``/``Dict`` of those. An environment with another space
raises ``TypeError`` naming it.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

try:
    import gymnasium
    from gymnasium import spaces
    from gymnasium.vector import AutoresetMode, VectorEnv
    from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "simplerpc.gym needs gymnasium>=1.0 in this Python: pip install 'gymnasium>=1.0' "
        "(and in the server's Python, with the environment's own packages)"
    ) from e

from ._client import Connection
from ._proxy import RPCProxy, materialize

__all__ = ["RemoteEnv", "RemoteVectorEnv"]

# Defined in the server's globals for this client (see _helpers).
_REMOTE_SOURCE = r'''
def _simplerpc_gym_make(env_id, kwargs):
    import gymnasium
    return gymnasium.make(env_id, **kwargs)

def _simplerpc_gym_space(space):
    from gymnasium import spaces as S
    if isinstance(space, S.Box):
        return {"type": "Box", "low": space.low, "high": space.high, "dtype": space.dtype.str}
    if isinstance(space, S.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, S.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec, "start": space.start, "dtype": space.dtype.str}
    if isinstance(space, S.MultiBinary):
        n = space.n
        return {"type": "MultiBinary", "n": int(n) if isinstance(n, int) or getattr(n, "ndim", 1) == 0 else [int(x) for x in n]}
    if isinstance(space, S.Text):
        return {"type": "Text", "max_length": space.max_length, "min_length": space.min_length,
                "charset": "".join(sorted(space.character_set))}
    if isinstance(space, S.Tuple):
        return {"type": "Tuple", "spaces": [_simplerpc_gym_space(s) for s in space.spaces]}
    if isinstance(space, S.Dict):
        return {"type": "Dict", "spaces": [[k, _simplerpc_gym_space(s)] for k, s in space.spaces.items()]}
    raise TypeError("simplerpc.gym cannot copy a %s space to the client" % type(space).__name__)

def _simplerpc_gym_describe(env):
    plain = (str, int, float, bool, list, tuple, type(None))
    return {
        "observation_space": _simplerpc_gym_space(env.observation_space),
        "action_space": _simplerpc_gym_space(env.action_space),
        "metadata": {k: v for k, v in env.metadata.items() if isinstance(v, plain)},
        "render_mode": env.render_mode,
        "spec_id": env.spec.id if env.spec is not None else None,
    }

def _simplerpc_gym_rng(env):
    import json
    rng = env.unwrapped._np_random
    return None if rng is None else json.dumps(rng.bit_generator.state)

def _simplerpc_gym_set_rng(env, state):
    import json, numpy
    state = json.loads(state)
    bit_generator = getattr(numpy.random, state["bit_generator"])()
    bit_generator.state = state
    env.unwrapped._np_random = numpy.random.Generator(bit_generator)
'''

def _helpers(conn: Connection) -> Dict[str, RPCProxy]:
    """The server-side helpers, (re)defined in this client's globals there:
    one round trip per environment made, nothing kept per connection here."""
    conn.execute(_REMOTE_SOURCE)
    return {name: conn.eval(f"_simplerpc_gym_{name}") for name in ("make", "describe", "rng", "set_rng")}


def _space(d: Dict[str, Any]) -> "spaces.Space[Any]":
    """A local space from the server's description of one."""
    kind = d["type"]
    if kind == "Box":
        return spaces.Box(low=d["low"], high=d["high"], dtype=np.dtype(d["dtype"]))
    if kind == "Discrete":
        return spaces.Discrete(d["n"], start=d["start"])
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(d["nvec"], dtype=np.dtype(d["dtype"]), start=d["start"])
    if kind == "MultiBinary":
        return spaces.MultiBinary(d["n"])
    if kind == "Text":
        return spaces.Text(d["max_length"], min_length=d["min_length"], charset=d["charset"])
    if kind == "Tuple":
        return spaces.Tuple([_space(s) for s in d["spaces"]])
    if kind == "Dict":
        return spaces.Dict({k: _space(s) for k, s in d["spaces"]})
    raise TypeError(f"simplerpc.gym cannot rebuild a {kind} space")  # pragma: no cover


def _conform(space: "spaces.Space[Any]", value: Any) -> Any:
    """A materialized value in the shape gymnasium expects for ``space``:
    tuples for ``Tuple`` spaces (a peer without the tuple extension sends
    lists), dicts for ``Dict`` spaces."""
    if isinstance(space, spaces.Tuple):
        return tuple(_conform(s, v) for s, v in zip(space.spaces, value))
    if isinstance(space, spaces.Dict):
        return {k: _conform(s, value[k]) for k, s in space.spaces.items()}
    return value


def _spawn(python: Optional[str]) -> Connection:
    from . import spawn

    return spawn(python=python or sys.executable)


def _gather(proxies: Sequence[RPCProxy]) -> List[Any]:
    from . import gather

    return gather(list(proxies))


class RemoteEnv(gymnasium.Env):  # type: ignore[type-arg]
    """A ``gymnasium.Env`` made with ``gymnasium.make(env_id, **make_kwargs)``
    on a server.

    Args:
        env_id: the environment's id, as the server's gymnasium knows it
            (registered there: an id like ``"ale_py:ALE/Pong-v5"`` imports
            its module first).
        conn: the connection to make it over. Without one, a child is
            spawned with ``python`` (:func:`simplerpc.spawn`) and closed
            with the environment.
        python: the interpreter of the child (the simulator's venv), when
            no ``conn`` is given; default: this interpreter.
        **make_kwargs: passed to ``gymnasium.make`` on the server
            (``render_mode="rgb_array"``, ``max_episode_steps=...``).

    ``reset``, ``step``, ``render`` and ``close`` cost one round trip each
    and return local values. ``env.remote`` is the proxy of the server's
    environment, for anything else (each attribute is one more round trip).
    ``spec`` is ``None`` (the spec would make a local environment);
    ``remote_spec_id`` names the server's.
    """

    def __init__(
        self, env_id: str, conn: Optional[Connection] = None, python: Optional[str] = None, **make_kwargs: Any
    ) -> None:
        self._closed = True
        self._owns_conn = conn is None
        self._conn = _spawn(python) if conn is None else conn
        try:
            helpers = _helpers(self._conn)
            self._rng = helpers["rng"]
            self._set_rng = helpers["set_rng"]
            self.remote: RPCProxy = helpers["make"](env_id, make_kwargs)
            info = materialize(helpers["describe"](self.remote))
        except BaseException:
            if self._owns_conn:
                self._conn.disconnect()
            raise
        self._closed = False
        # The bound methods, fetched once: a step is then one request.
        self._reset_fn, self._step_fn = self.remote.reset, self.remote.step
        self.observation_space = _space(info["observation_space"])
        self.action_space = _space(info["action_space"])
        self.metadata = dict(info["metadata"])
        self.render_mode = info["render_mode"]
        self.remote_spec_id: Optional[str] = info["spec_id"]
        self.spec = None

    # The server's random generator, as a local copy (gymnasium's env
    # checker compares its state); setting it sets the server's.
    @property  # type: ignore[override]
    def _np_random(self) -> Optional[np.random.Generator]:  # type: ignore[override]
        state = materialize(self._rng(self.remote))
        if state is None:
            return None
        state = json.loads(state)
        bit_generator = getattr(np.random, state["bit_generator"])()
        bit_generator.state = state
        return np.random.Generator(bit_generator)

    @_np_random.setter
    def _np_random(self, value: Optional[np.random.Generator]) -> None:
        if value is None:  # gymnasium.Env's class default, when set in __init__
            return
        materialize(self._set_rng(self.remote, json.dumps(value.bit_generator.state)))

    def reset(self, *, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None) -> Tuple[Any, Dict[str, Any]]:
        """Reset the server's environment: ``(obs, info)``, local values."""
        return self._reset_result(materialize(self._send_reset(seed, options)))

    def step(self, action: Any) -> Tuple[Any, float, bool, bool, Dict[str, Any]]:
        """Step the server's environment: ``(obs, reward, terminated, truncated, info)``."""
        return self._step_result(materialize(self._send_step(action)))

    def render(self) -> Any:
        """The server's ``render()``: an RGB array for ``render_mode="rgb_array"``."""
        return materialize(self.remote.render())

    def close(self) -> None:
        """Close the server's environment, and the child if this made it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            materialize(self.remote.close())
        finally:
            del self.remote, self._reset_fn, self._step_fn
            if self._owns_conn:
                self._conn.disconnect()

    # The two halves of reset and step, so that RemoteVectorEnv can send to
    # every environment before it waits for any.
    def _send_reset(self, seed: Optional[int], options: Optional[Dict[str, Any]]) -> RPCProxy:
        return self._reset_fn(seed=seed, options=options)

    def _reset_result(self, value: Any) -> Tuple[Any, Dict[str, Any]]:
        obs, info = value
        return _conform(self.observation_space, obs), info

    def _send_step(self, action: Any) -> RPCProxy:
        return self._step_fn(action)

    def _step_result(self, value: Any) -> Tuple[Any, float, bool, bool, Dict[str, Any]]:
        obs, reward, terminated, truncated, info = value
        return _conform(self.observation_space, obs), reward, terminated, truncated, info

    def __repr__(self) -> str:
        return f"<RemoteEnv {self.remote_spec_id or '?'} on {self._conn!r}>"


EnvSource = Union[str, RemoteEnv, Callable[[], RemoteEnv]]


class RemoteVectorEnv(VectorEnv):  # type: ignore[type-arg]
    """A ``gymnasium.vector.VectorEnv`` over remote environments, stepped
    all at once: every environment's request is sent before any answer is
    awaited, so a step costs about the slowest environment's step, not the
    sum.

    Args:
        envs: one entry per environment: an id (made as
            ``RemoteEnv(id, conn=conns[i] or None, python=python,
            **make_kwargs)``: a child per environment unless ``conns`` is
            given), a :class:`RemoteEnv`, or a function returning one.
        python: the interpreter of spawned children.
        conns: a connection per environment (servers on other hosts, say),
            for the entries given as ids.
        autoreset_mode: gymnasium 1.x's autoreset modes: ``NEXT_STEP``
            (default: the step after an episode ends resets that
            environment and returns its first observation, reward 0),
            ``SAME_STEP`` (reset at once; the last observation and info are
            in ``info["final_obs"]`` / ``info["final_info"]``) or
            ``DISABLED`` (reset with ``options={"reset_mask": mask}``).
        **make_kwargs: for the environments given as ids.

    All environments must have the same spaces. Observations are batched
    into numpy arrays as gymnasium's own vector environments batch them.
    """

    def __init__(
        self,
        envs: Sequence[EnvSource],
        *,
        python: Optional[str] = None,
        conns: Optional[Sequence[Connection]] = None,
        autoreset_mode: Union[str, AutoresetMode] = AutoresetMode.NEXT_STEP,
        **make_kwargs: Any,
    ) -> None:
        if isinstance(envs, (str, bytes)):
            raise TypeError(f"envs is one id, {envs!r}: give a list, one entry per environment ([{envs!r}] * n)")
        if conns is not None and len(conns) != len(envs):
            raise ValueError(f"{len(conns)} connections for {len(envs)} environments: give one per environment")
        self.envs: List[RemoteEnv] = []
        try:
            for i, source in enumerate(envs):
                if isinstance(source, str):
                    env = RemoteEnv(source, conn=conns[i] if conns else None, python=python, **make_kwargs)
                elif isinstance(source, RemoteEnv):
                    env = source
                else:
                    env = source()
                if not isinstance(env, RemoteEnv):
                    raise TypeError(
                        f"environment {i} is a {type(env).__name__}, not a RemoteEnv: "
                        "RemoteVectorEnv steps remote environments (use gymnasium's SyncVectorEnv for local ones)"
                    )
                self.envs.append(env)
        except BaseException:
            for env in self.envs:
                env.close()
            raise
        if not self.envs:
            raise ValueError("RemoteVectorEnv needs at least one environment")
        self.num_envs = len(self.envs)
        self.autoreset_mode = autoreset_mode if isinstance(autoreset_mode, AutoresetMode) else AutoresetMode(autoreset_mode)
        first = self.envs[0]
        self.metadata = dict(first.metadata)
        self.metadata["autoreset_mode"] = self.autoreset_mode
        self.render_mode = first.render_mode
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        for i, env in enumerate(self.envs):
            if env.observation_space != self.single_observation_space or env.action_space != self.single_action_space:
                raise RuntimeError(
                    f"environment {i} has other spaces than environment 0 "
                    f"({env.observation_space}, {env.action_space} vs "
                    f"{self.single_observation_space}, {self.single_action_space})"
                )
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        # Each environment's last observation (zeros before the first reset).
        zeros = create_empty_array(self.single_observation_space, n=self.num_envs, fn=np.zeros)
        self._env_obs: List[Any] = list(iterate(self.observation_space, zeros))
        self._autoreset_envs = np.zeros((self.num_envs,), dtype=np.bool_)
        self.closed = False

    def reset(
        self, *, seed: Optional[Union[int, Sequence[Optional[int]]]] = None, options: Optional[Dict[str, Any]] = None
    ) -> Tuple[Any, Dict[str, Any]]:
        """Reset every environment (or those of ``options["reset_mask"]``) at once."""
        if seed is None:
            seeds: List[Optional[int]] = [None] * self.num_envs
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"{len(seeds)} seeds for {self.num_envs} environments")
        options = dict(options) if options else None
        mask = np.ones(self.num_envs, dtype=np.bool_)
        if options is not None and "reset_mask" in options:
            mask = np.asarray(options.pop("reset_mask"))
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_ or not mask.any():
                raise ValueError(
                    f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) with a True in it, got {mask!r}"
                )
        chosen = [i for i in range(self.num_envs) if mask[i]]
        sent = [self.envs[i]._send_reset(seeds[i], options) for i in chosen]
        # The environments not reset keep their last observation.
        observations = list(self._env_obs)
        infos: Dict[str, Any] = {}
        for i, value in zip(chosen, _gather(sent)):
            observations[i], info = self.envs[i]._reset_result(value)
            infos = self._add_info(infos, info, i)
        self._autoreset_envs[mask] = False
        return self._batch(observations), infos

    def step(self, actions: Any) -> Tuple[Any, np.ndarray, np.ndarray, np.ndarray, Dict[str, Any]]:
        """Step every environment at once (resetting those that ended, as
        ``autoreset_mode`` says)."""
        actions = list(iterate(self.action_space, actions))
        resetting = self.autoreset_mode == AutoresetMode.NEXT_STEP and self._autoreset_envs
        if self.autoreset_mode == AutoresetMode.DISABLED and self._autoreset_envs.any():
            raise RuntimeError(
                f"environments {np.flatnonzero(self._autoreset_envs).tolist()} ended: with autoreset_mode=DISABLED "
                "reset them with reset(options={'reset_mask': mask}) before stepping"
            )
        sent = [
            env._send_reset(None, None) if resetting is not False and resetting[i] else env._send_step(actions[i])
            for i, env in enumerate(self.envs)
        ]
        observations: List[Any] = [None] * self.num_envs
        env_infos: List[Dict[str, Any]] = [{}] * self.num_envs
        rewards = np.zeros((self.num_envs,), dtype=np.float64)
        terminations = np.zeros((self.num_envs,), dtype=np.bool_)
        truncations = np.zeros((self.num_envs,), dtype=np.bool_)
        for i, value in enumerate(_gather(sent)):
            env = self.envs[i]
            if resetting is not False and resetting[i]:
                observations[i], env_infos[i] = env._reset_result(value)
            else:
                observations[i], rewards[i], terminations[i], truncations[i], env_infos[i] = env._step_result(value)
        ended = terminations | truncations
        resets: Dict[int, Tuple[Any, Dict[str, Any]]] = {}
        if self.autoreset_mode == AutoresetMode.SAME_STEP and ended.any():
            done = np.flatnonzero(ended).tolist()
            for i, value in zip(done, _gather([self.envs[i]._send_reset(None, None) for i in done])):
                resets[i] = self.envs[i]._reset_result(value)
        infos: Dict[str, Any] = {}
        for i in range(self.num_envs):
            if i in resets:  # as gymnasium's SyncVectorEnv: the final step in final_*, then the reset's
                infos = self._add_info(infos, {"final_obs": observations[i], "final_info": env_infos[i]}, i)
                observations[i], env_infos[i] = resets[i]
            infos = self._add_info(infos, env_infos[i], i)
        self._autoreset_envs = ended
        return self._batch(observations), rewards, terminations, truncations, infos

    def _batch(self, observations: List[Any]) -> Any:
        """The batched observation, a fresh array the caller owns (one copy
        of each environment's; theirs are kept for a partial reset)."""
        self._env_obs = observations
        fresh = create_empty_array(self.single_observation_space, n=self.num_envs, fn=np.empty)
        return concatenate(self.single_observation_space, observations, fresh)

    def render(self) -> Optional[Tuple[Any, ...]]:
        """Every environment's ``render()``, fetched at once."""
        return tuple(_gather([env.remote.render() for env in self.envs]))

    def close_extras(self, **kwargs: Any) -> None:
        """Close every environment (and the children this made)."""
        errors = []
        for env in self.envs:
            try:
                env.close()
            except Exception as e:  # close the others anyway
                errors.append(e)
        if errors:
            raise errors[0]

