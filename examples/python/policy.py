"""The policy side: numpy>=2 in its own venv, stepping toy_sim.Catch in the
simulator's venv through simplerpc. Run it with the SIMPLERPC_* exports the
server printed (see the README, "Run your simulator in its own venv")."""

import numpy as np

import simplerpc
from simplerpc import materialize


def policy(obs):
    """Move the paddle under the ball (found in the image)."""
    ball = np.argwhere(obs[:-1].any(axis=2))
    paddle = np.flatnonzero(obs[-1, :, 1])
    if len(ball) == 0:
        return 1
    centre = paddle.mean()
    return 0 if ball[0, 1] < centre - 2 else 2 if ball[0, 1] > centre + 2 else 1


with simplerpc.connect() as conn:  # SIMPLERPC_HOST / _PORT / _TOKEN
    env = conn.modules.toy_sim.Catch()  # made in the server, stays there
    obs, info = materialize(env.reset(seed=1))
    print(f"policy numpy {np.__version__}, simulator numpy {info['numpy']}")
    total, episodes = 0.0, 0
    for t in range(1000):
        action = policy(obs)  # the image is a local numpy>=2 array
        obs, reward, terminated, truncated, info = materialize(env.step(action))
        total += reward
        if terminated or truncated:
            episodes += 1
            obs, info = materialize(env.reset())
    print(f"{episodes} episodes, return {total:+.0f}, last obs {obs.shape} {obs.dtype}")
