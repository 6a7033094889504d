"""Demonstrations from any gymnasium env and a user's scripted policy -> a dataset (LeRobot v3.0 layout).

`siefm collect --env ENV_ID --policy module:function`: the function takes one raw observation of the env
and returns an action. Episode k is reset with seed `seed + k`; an episode ends when the env reports
success (a demonstration ends at its goal, which the steps-to-go labels assume), and one that terminates
otherwise or reaches `max_steps` first is not written. Camera frames are written as MP4 video features.
Episodes are appended to the dataset as they are recorded (siefm.data.stream), so memory stays bounded
and an interrupted collection keeps what it recorded (`finish_stream`).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from siefm.config import require
from siefm.data.sampler import steps_to_go_labels
from siefm.data.stream import DatasetStream
from siefm.domains.gymnasium_env.env import (
    GymEnvConfig,
    controller_maker,
    describe,
    make_env,
    start_episode,
    true_success,
)
from siefm.domains.gymnasium_env.observations import ObservationMap

log = logging.getLogger("siefm")


@dataclass(frozen=True)
class GymCollectConfig:
    """Demonstrations from a user's scripted policy in any gymnasium env (--env ENV_ID)."""

    policy: str | None = None
    """The scripted demonstrator (required for a gymnasium env): module:function, observation -> action, or
    module:Class, a stateful controller made once, called per observation, whose reset(seed) runs as each
    episode starts."""
    policy_kwargs: str = "{}"
    """Keyword arguments of the demonstrator (the function's, or the class's), as JSON; recorded."""
    env_kwargs: str = "{}"
    """Keyword arguments of gymnasium.make, as JSON (recorded, so later stages make the same env)."""
    features_map: str = "{}"
    """Observation keys -> "observation.state" / "observation.goal", as JSON (LeRobot's features_map);
    {}: agent_pos, state or observation is the state, desired_goal or goal the goal."""
    num_episodes: int = 100
    """Episodes to attempt; those that do not reach success are not written."""
    max_steps: int | None = None
    """Episode limit; None: the env's own time limit."""
    seed: int = 0
    """Episode k is reset with seed + k."""
    task: str | None = None
    """Every episode's task string (LeRobot's `task`). Envs with a goal vector: a label (None: the env id).
    Envs whose observations hold no goal (a fixed one, as PushT's): required, the goal in words, which the
    models condition on."""

    def __post_init__(self) -> None:
        require(self.num_episodes >= 1, self, "num_episodes", ">= 1")
        require(self.max_steps is None or self.max_steps >= 1, self, "max_steps", ">= 1")
        for name in ("env_kwargs", "features_map", "policy_kwargs"):
            require(isinstance(_json_object(getattr(self, name)), dict), self, name, "a JSON object")

    def env_config(self, env_id: str) -> tuple[GymEnvConfig, ObservationMap]:
        kwargs, features_map = _json_object(self.env_kwargs), _json_object(self.features_map)
        policy_kwargs = _json_object(self.policy_kwargs)
        return describe(env_id, kwargs, features_map, self.max_steps, self.policy, self.task, policy_kwargs)


def _json_object(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


APPEND_EVERY = 50  # episodes per data (and video) file while collecting


def collect_gymnasium(
    env_id: str, out: Path, config: GymCollectConfig, overwrite: bool = False, robot_type: str | None = None
) -> Path:
    """Runs `config.policy` in `env_id` and writes its successful episodes as a dataset at `out`, with
    LeRobot's `robot_type` (default: the env id)."""
    if config.policy is None:
        raise ValueError(f"collecting in {env_id} needs a scripted demonstrator: --policy module:function.")
    env_config, mapping = config.env_config(env_id)
    policy = controller_maker(config.policy, env_config.policy_kwargs)()
    env = make_env(env_id, env_config)
    extra = {"env": {"id": env_id, "config": env_config.to_dict()}}
    stream = DatasetStream(
        Path(out), fps=env_config.fps, robot_type=robot_type or env_id, extra_info=extra, overwrite=overwrite
    )
    task, pending, lengths = config.task or env_id, [], []
    try:
        for k in tqdm(range(config.num_episodes), desc="demonstrations", unit="episode", mininterval=1.0):
            episode = record_episode(env, policy, mapping, config.seed + k, env_config.max_steps)
            if episode is not None:
                pending.append(episode)
                lengths.append(len(episode["action"]) - 1)
            if len(pending) == APPEND_EVERY or (pending and k == config.num_episodes - 1):
                stream.append(pending, [task] * len(pending))
                pending = []
    finally:
        env.close()
    if not lengths:
        shutil.rmtree(out)
        raise ValueError(
            f"none of the {config.num_episodes} episodes of {config.policy} in {env_id} reached success "
            f"within {env_config.max_steps} steps; check the policy, or raise --max-steps."
        )
    log.info(
        "kept %d of %d demonstrations: %.1f +- %.1f steps",
        len(lengths),
        config.num_episodes,
        np.mean(lengths),
        np.std(lengths),
    )
    return stream.finish()


def record_episode(
    env: Any, policy: Any, mapping: ObservationMap, seed: int, max_steps: int
) -> dict[str, np.ndarray] | None:
    """One episode of `policy` from `env.reset(seed=seed)`, ending at the first success: T + 1 frames (the
    last holds the final observation and a zero action). None when it does not succeed in `max_steps`."""
    obs, info = env.reset(seed=seed)
    start_episode(policy, seed)
    if true_success(info, False):
        return None  # nothing to demonstrate
    observations, actions = [obs], []
    for _ in range(max_steps):
        action = np.asarray(policy(obs), dtype=np.float32)
        obs, _, terminated, truncated, info = env.step(action)
        observations.append(obs)
        actions.append(action)
        if true_success(info, terminated):
            return _columns(observations, actions, mapping) | {
                "episode_seed": np.full(len(observations), seed, dtype=np.int64)
            }
        if terminated or truncated:
            return None
    return None


def _columns(observations: list[Any], actions: list[np.ndarray], mapping: ObservationMap) -> dict[str, Any]:
    frames = len(observations)
    action = np.stack([*actions, np.zeros_like(actions[0])])
    success = np.zeros(frames, dtype=bool)
    success[-1] = True
    columns = {"observation.state": np.stack([mapping.state(o) for o in observations])}
    if mapping.goal_key is not None:  # else the goal is the episodes' task string
        columns["goal"] = np.stack([mapping.goal(o) for o in observations])
    for key, feature in mapping.cameras.items():
        columns[feature] = np.stack([mapping.camera(o, key) for o in observations])
    return columns | {
        "action": action.astype(np.float32),
        "is_success": success,
        "is_terminal": success.copy(),
        "steps_to_go": steps_to_go_labels(frames),
    }
