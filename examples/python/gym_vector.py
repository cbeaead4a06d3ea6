"""A training-style loop over RemoteVectorEnv: 4 CartPole environments, each
in its own child process running the simulator's Python (numpy<2 there,
numpy>=2 here). Usage: python gym_vector.py path/to/sim-venv/bin/python"""

import sys

import numpy as np

from simplerpc.gym import RemoteVectorEnv

sim_python = sys.argv[1]
envs = RemoteVectorEnv(["CartPole-v1"] * 4, python=sim_python)  # 4 children, stepped at once
obs, info = envs.reset(seed=0)
rng = np.random.default_rng(0)
weights = rng.normal(size=4)  # a linear policy: push right when obs @ weights > 0
returns, episode_return = [], np.zeros(4)
for step in range(500):
    actions = (obs @ weights > 0).astype(np.int64)
    obs, rewards, terminated, truncated, info = envs.step(actions)
    episode_return += rewards
    for i in np.flatnonzero(terminated | truncated):  # the next step resets env i
        returns.append(episode_return[i])
        episode_return[i] = 0
envs.close()  # closes the environments and their children
print(f"{len(returns)} episodes, mean return {np.mean(returns):.1f}, obs batch {obs.shape} {obs.dtype}")
