"""A stand-in for a simulator that pins numpy<2: a ball falls down an 84x84
image and the agent moves a paddle (0: left, 1: stay, 2: right) to catch it.

It lives in the simulator's venv, next to where the server starts, and is
imported there by the client with ``conn.modules.toy_sim``. Gym-style API:
``reset(seed) -> (obs, info)``, ``step(action) -> (obs, reward, terminated,
truncated, info)``, obs an (84, 84, 3) uint8 image.
"""

import numpy as np

SIZE = 84
PADDLE = 12


class Catch:
    """One episode after another of the catch game."""

    def __init__(self, max_steps=200):
        self.max_steps = max_steps
        self.rng = np.random.RandomState(0)
        self.reset()

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.RandomState(seed)
        self.ball = np.array([0, self.rng.randint(SIZE)])
        self.paddle = SIZE // 2
        self.steps = 0
        return self._obs(), {"numpy": np.__version__}

    def step(self, action):
        self.paddle = int(np.clip(self.paddle + (int(action) - 1) * 4, 0, SIZE - PADDLE))
        self.ball[0] += 3
        self.steps += 1
        terminated = bool(self.ball[0] >= SIZE - 1)
        caught = self.paddle <= self.ball[1] < self.paddle + PADDLE
        reward = (1.0 if caught else -1.0) if terminated else 0.0
        truncated = self.steps >= self.max_steps and not terminated
        return self._obs(), reward, terminated, truncated, {"steps": self.steps}

    def _obs(self):
        img = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
        y, x = min(int(self.ball[0]), SIZE - 1), int(self.ball[1])
        img[y, x] = (255, 255, 255)
        img[SIZE - 1, self.paddle : self.paddle + PADDLE] = (0, 255, 0)
        return img
