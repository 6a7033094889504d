"""`siefm eval` in any gymnasium env: the policy and the recorded demonstrator on the same seeded episodes.

Episode k is reset with seed `seed + k` for every policy compared; an episode ends at the simulator's
first success (`info["is_success"]`, else `terminated`) or at the episode limit, which a failure counts as
its length. All episodes of a policy step together in one synchronous vector env, so an EFM acts on one
batch per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from siefm.domains.gymnasium_env.env import GymEnvConfig, load_callable, true_success
from siefm.domains.gymnasium_env.observations import ObservationMap
from siefm.eval.policy import Policy
from siefm.eval.stats import wilson_interval

BatchPolicy = Callable[[Any], np.ndarray]  # raw batched observations -> actions (N, A)


def run_episodes(
    env_id: str, config: GymEnvConfig, policy: BatchPolicy, episodes: int, seed: int, max_steps: int
) -> dict[str, Any]:
    """Success rate (Wilson 95% CI) and mean length of `policy` over `episodes` seeded episodes."""
    envs = gym.make_vec(
        env_id,
        episodes,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.DISABLED},
        **config.kwargs,
    )
    try:
        obs, _ = envs.reset(seed=[seed + k for k in range(episodes)])
        succeeded = np.zeros(episodes, dtype=bool)
        over = np.zeros(episodes, dtype=bool)  # succeeded, or terminated or truncated without success
        length = np.full(episodes, max_steps)  # a failure counts the limit
        for t in range(1, max_steps + 1):
            actions = np.asarray(policy(obs), dtype=envs.single_action_space.dtype)
            obs, _, terminated, truncated, info = envs.step(actions)
            success = true_success(info, terminated) & ~over
            succeeded |= success
            length[success] = t
            over |= success | terminated | truncated
            if over.all():
                break
    finally:
        envs.close()
    wins = int(succeeded.sum())
    return {
        "success_rate": wins / episodes,
        "success_ci95": list(wilson_interval(wins, episodes)),
        "mean_steps": float(length.mean()),
        "episodes": episodes,
    }


def scripted_policy(reference: str) -> BatchPolicy:
    """A user's single-observation controller (`module:function`), applied to each observation of a batch."""
    act = load_callable(reference)

    def batch(obs: Any) -> np.ndarray:
        if not isinstance(obs, dict):
            return np.stack([np.asarray(act(o)) for o in obs])
        count = len(next(iter(obs.values())))
        return np.stack([np.asarray(act({k: v[i] for k, v in obs.items()})) for i in range(count)])

    return batch


def model_policy(policy: Policy, mapping: ObservationMap) -> BatchPolicy:
    """An EFM numpy policy (siefm.eval.policy) reading the env's raw observations through `mapping`."""
    return lambda obs: policy(mapping.split(obs))
