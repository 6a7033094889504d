"""Making a user's gymnasium env from its recorded description, its true success, and its demonstrator.

An env is recorded (datasets, checkpoints, results.json) as {"id": ENV_ID, "config": GymEnvConfig as a
dict}: the id `gymnasium.make` takes, including the `module:EnvId` form that imports the user's package
first, and what siefm needs to rebuild it the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from siefm.domains.gymnasium_env.observations import GOAL_KEYS, ObservationMap, observation_keys

DEFAULT_FPS = 10  # for envs whose metadata gives no render_fps
DEFAULT_EPISODE_LIMIT = 200  # for envs registered without a time limit


@dataclass(frozen=True)
class GymEnvConfig:
    """What rebuilds a user's env as siefm used it."""

    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of `gymnasium.make`."""
    features_map: dict[str, str] = field(default_factory=dict)
    """Observation keys -> "observation.state" / "observation.goal" (empty: the conventions)."""
    max_steps: int = DEFAULT_EPISODE_LIMIT
    """The episode limit: the env's own time limit unless given."""
    fps: int = DEFAULT_FPS
    """The env's control frequency (its `render_fps`), the datasets' fps."""
    policy: str | None = None
    """The scripted demonstrator (`module:function` or `module:Class`) that recorded the demonstrations."""
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments the demonstrator was made or called with."""
    task: str | None = None
    """The goal of an env whose observations hold none, in words (the episodes' task string), which the
    models condition on; None for envs with a goal vector."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_known(env_id: str) -> bool:
    """Whether gymnasium can make `env_id` (importing the module of a `module:EnvId` id)."""
    return registered_spec(env_id) is not None


def registered_spec(env_id: str) -> gym.envs.registration.EnvSpec | None:
    """The registration of `env_id` (importing the module of a `module:EnvId` id), None if there is none."""
    module, _, name = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError:
            return None
    return gym.registry.get(name)


def registered_limit_and_fps(env_id: str) -> tuple[int, int]:
    """The registered time limit and control frequency (`render_fps` of the env class), without making the
    env: some envs need keyword arguments to be made."""
    spec = registered_spec(env_id)
    if spec is None:
        return DEFAULT_EPISODE_LIMIT, DEFAULT_FPS
    creator = spec.entry_point
    if isinstance(creator, str):
        creator = gym.envs.registration.load_env_creator(creator)
    metadata = getattr(creator, "metadata", None)
    if metadata is None:  # a factory function (e.g. one wrapping an old-gym-API env): ask a made env
        try:
            made = gym.make(env_id)
            metadata = made.metadata
            made.close()
        except Exception:  # an env that needs keyword arguments to be made
            metadata = {}
    fps = metadata.get("render_fps") or DEFAULT_FPS
    return int(spec.max_episode_steps or DEFAULT_EPISODE_LIMIT), int(fps)


def observation_map(config: GymEnvConfig) -> ObservationMap:
    """The observation map `config` recorded, with the fixed goal's instruction."""
    return ObservationMap.recorded(config.features_map, config.task)


def make_env(env_id: str, config: GymEnvConfig) -> gym.Env:
    """One env as recorded, with the recorded episode limit (which may differ from the registered one)."""
    return gym.make(env_id, max_episode_steps=config.max_steps, **config.kwargs)


def describe(
    env_id: str,
    kwargs: dict[str, Any],
    features_map: dict[str, str],
    max_steps: int | None,
    policy: str | None,
    task: str | None = None,
    policy_kwargs: dict[str, Any] | None = None,
) -> tuple[GymEnvConfig, ObservationMap]:
    """The recorded config of `env_id` made with `kwargs`, and its observation map (checked here: an env
    without a goal in its observations needs `task`, its fixed goal in words)."""
    env = gym.make(env_id, **kwargs)
    try:
        mapping = ObservationMap.for_space(env.observation_space, features_map or None)
        keys = [key or "(a plain array)" for key in observation_keys(env.observation_space)]
        limit = max_steps or (env.spec.max_episode_steps if env.spec else None) or DEFAULT_EPISODE_LIMIT
        fps = int(env.metadata.get("render_fps") or DEFAULT_FPS)
    finally:
        env.close()
    if mapping.goal_key is None and not task:
        raise ValueError(
            f"the observations of {env_id} hold no goal (looked for {list(GOAL_KEYS)} among {keys}). "
            "siefm learns goal-conditioned policies: its reward is the predicted number of steps to a goal. "
            'Map the key that holds the goal (--features-map \'{"<key>": "observation.goal"}\'), or, if '
            "the env's goal is fixed (as PushT's), say what it is with --task \"push the T onto its target\"."
        )
    goal_task = None if mapping.goal_key else task
    config = GymEnvConfig(
        dict(kwargs), mapping.as_features_map(), int(limit), fps, policy, dict(policy_kwargs or {}), goal_task
    )
    return config, dataclasses.replace(mapping, instruction=goal_task)


def true_success(info: dict[str, Any], terminated: Any) -> np.ndarray:
    """The simulator's success: `info["is_success"]` (the convention of LeRobot's sim envs and
    gymnasium-robotics), else `terminated`. Works for one env and for a vector env's batched info."""
    if "is_success" in info:
        success = np.asarray(info["is_success"], dtype=bool)
        if "_is_success" in info:  # a vector env marks which sub-envs reported it
            success = success & np.asarray(info["_is_success"], dtype=bool)
        return success
    return np.asarray(terminated, dtype=bool)


def controller_maker(reference: str, kwargs: dict[str, Any] | None = None) -> Callable[[], Any]:
    """What makes one scripted controller for one robot, from `module:function` or `module:Class`.

    A function (observation -> action) is stateless: every robot uses it, with `kwargs` bound. A class is
    a stateful controller (a planner that fixes its waypoints when an episode starts, a phase timer): each
    robot gets its own instance, made with `kwargs`, and siefm calls its `reset(seed)`, if it has one, as
    each episode starts, with the seed the env was reset with (`start_episode`)."""
    found, kwargs = load_callable(reference), dict(kwargs or {})
    if isinstance(found, type):
        return lambda: found(**kwargs)
    controller = functools.partial(found, **kwargs) if kwargs else found
    return lambda: controller


def start_episode(controller: Any, seed: int) -> None:
    """Tells a stateful controller (one with `reset(seed)`) that an episode starts from `seed`."""
    reset = getattr(controller, "reset", None)
    if callable(reset):
        reset(seed)


def load_callable(reference: str) -> Callable[..., Any]:
    """The object named by `module:attribute` (a user's scripted policy)."""
    module, _, name = reference.partition(":")
    if not module or not name:
        raise ValueError(f"--policy {reference!r}: give it as module:function, e.g. my_robot.demos:reach.")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"--policy {reference!r} cannot be imported ({error}).") from error
    if not callable(found):
        raise ValueError(f"--policy {reference!r} is not callable.")
    return found
