"""The simulator of ``bench/soak.py``, imported on the server (never by the client).

``SoakEnv(seed)``: gym-style ``reset(seed=None) -> (obs, info)`` and
``step(action) -> (obs, reward, terminated, truncated, info)``, ``obs`` a
fresh 480x640x3 uint8 image each step (as a simulator renders one), an
episode ``EPISODE`` steps long. ``step(-1)`` raises ``ValueError`` (the soak's
remote exceptions). ``action_space`` is a small object with ``n`` and
``sample()``, as a proxy would reach one.

With gymnasium installed, ``soak_env:Soak-v0`` is registered too (a
``gymnasium.Env`` over the same simulator), for ``simplerpc.gym.RemoteEnv``.
"""

import numpy as np

SHAPE = (480, 640, 3)
EPISODE = 200


class ActionSpace:
    """Four actions, 0 to 3."""

    n = 4

    def __init__(self, seed):
        self._rng = np.random.default_rng(seed)

    def sample(self):
        return int(self._rng.integers(self.n))


class SoakEnv:
    """A toy simulator with image observations."""

    def __init__(self, seed=0):
        self.seed = int(seed)
        self.t = 0
        self.episode = 0
        self.action_space = ActionSpace(seed)

    def _obs(self):
        obs = np.empty(SHAPE, np.uint8)
        obs[...] = (self.seed + self.t) % 256
        obs[self.t % SHAPE[0]] = 255  # a row that moves: each image differs
        return obs

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.seed = int(seed)
        self.t = 0
        self.episode += 1
        return self._obs(), {"episode": self.episode}

    def step(self, action):
        if action == -1:
            raise ValueError(f"soak: action -1 refused at step {self.t} of episode {self.episode}")
        self.t += 1
        terminated = self.t >= EPISODE
        info = {"t": self.t, "episode": self.episode, "action": int(action)}
        return self._obs(), float(action) * 0.5, terminated, False, info


try:
    import gymnasium
    from gymnasium import spaces
except ImportError:  # the plain transports need no gymnasium
    gymnasium = None

if gymnasium is not None:

    class GymSoakEnv(gymnasium.Env):
        """``SoakEnv`` as a ``gymnasium.Env`` (``soak_env:Soak-v0``)."""

        metadata = {"render_modes": []}

        def __init__(self):
            self.observation_space = spaces.Box(0, 255, SHAPE, np.uint8)
            self.action_space = spaces.Discrete(4)
            self._sim = SoakEnv(0)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return self._sim.reset(seed=seed)

        def step(self, action):
            return self._sim.step(int(action))

    if "Soak-v0" not in gymnasium.registry:
        gymnasium.register(id="Soak-v0", entry_point="soak_env:GymSoakEnv")
