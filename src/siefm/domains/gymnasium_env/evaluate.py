"""`siefm eval` in any gymnasium env: the policy and the recorded demonstrator on the same seeded episodes.

Episode k is reset with seed `seed + k` for every policy compared; an episode ends at the simulator's
first success (`info["is_success"]`, else `terminated`) or at the episode limit, which a failure counts as
its length. All episodes of a policy step together in one synchronous vector env, so an EFM acts on one
batch per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from siefm.data.cameras import resize_frames
from siefm.domains.gymnasium_env.env import GymEnvConfig, controller_maker, start_episode, true_success
from siefm.domains.gymnasium_env.fleet import make_vector_env
from siefm.domains.gymnasium_env.observations import ObservationMap
from siefm.eval.policy import Policy
from siefm.eval.stats import success_summary

BatchPolicy = Callable[[Any], np.ndarray]  # raw batched observations -> actions (N, A)


def run_episodes(
    env_id: str, config: GymEnvConfig, policy: BatchPolicy, episodes: int, seed: int, max_steps: int
) -> dict[str, Any]:
    """Success rate (Wilson 95% CI) and mean length of `policy` over `episodes` seeded episodes."""
    envs = make_vector_env(env_id, config, episodes, "sync")  # the loop below is the time limit
    try:
        obs, _ = envs.reset(seed=[seed + k for k in range(episodes)])
        succeeded = np.zeros(episodes, dtype=bool)
        over = np.zeros(episodes, dtype=bool)  # succeeded, or terminated without success
        length = np.full(episodes, max_steps)  # a failure counts the limit
        for t in range(1, max_steps + 1):
            actions = np.asarray(policy(obs), dtype=envs.single_action_space.dtype)
            obs, _, terminated, _, info = envs.step(actions)
            success = true_success(info, terminated) & ~over
            succeeded |= success
            length[success] = t
            ended = np.asarray(terminated, dtype=bool)
            over |= success | ended
            if over.all():
                break
            if ended.any():  # gymnasium steps no env that ended: restart it; its episode is already counted
                obs, _ = envs.reset(options={"reset_mask": ended})
    finally:
        envs.close()
    return success_summary(succeeded, length)


def scripted_policy(reference: str, kwargs: dict[str, Any], seeds: list[int]) -> BatchPolicy:
    """A user's single-observation controller (`module:function` or `module:Class`, made with `kwargs`),
    one per episode of `run_episodes`, each started with its episode's seed, applied to each observation of
    a batch."""
    make = controller_maker(reference, kwargs)
    controllers = [make() for _ in seeds]
    for controller, seed in zip(controllers, seeds, strict=True):
        start_episode(controller, seed)

    def batch(obs: Any) -> np.ndarray:
        if not isinstance(obs, dict):
            return np.stack([np.asarray(act(o)) for act, o in zip(controllers, obs, strict=True)])
        rows = [{k: v[i] for k, v in obs.items()} for i in range(len(controllers))]
        return np.stack([np.asarray(act(row)) for act, row in zip(controllers, rows, strict=True)])

    return batch


def model_policy(policy: Policy, mapping: ObservationMap, camera_size: int | None = None) -> BatchPolicy:
    """An EFM numpy policy (siefm.eval.policy) reading the env's raw observations through `mapping`; pixel
    models (`camera_size`) also get each env's previous and current frame, its first frame twice. For one
    run of `run_episodes`, whose first call is every episode's first step."""
    previous: list[np.ndarray] = []

    def act(obs: Any) -> np.ndarray:
        inputs = mapping.split(obs)
        if camera_size is not None:
            frame = resize_frames(mapping.camera(obs), camera_size)
            inputs["pixels"] = np.stack([previous.pop() if previous else frame, frame], axis=1)
            previous.append(frame)
        return policy(inputs)

    return act
