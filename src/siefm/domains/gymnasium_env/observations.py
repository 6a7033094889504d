"""How a gymnasium env's observations become siefm's state, goal and camera (LeRobot's `features_map`).

By default, of a dict observation:
- `agent_pos`, `state` or `observation` (the first present) is the state (`observation.state`); a plain
  array observation is the state;
- `desired_goal` or `goal` is the goal vector (`observation.goal`); an env without one has a fixed goal,
  which the episodes' task string names (`--task`), and the models condition on that instruction;
- `pixels` is the camera (`observation.image`), or, where `pixels` holds several cameras, `pixels/<cam>`
  is camera <cam> (`observation.images.<cam>`).
A `features_map` ({env key: dataset feature}) replaces these conventions: several keys mapped to the state
are concatenated in the map's order; a nested key is written `outer/inner`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from siefm.data.video import IMAGE_FEATURE, IMAGES_PREFIX

STATE_KEYS = ("agent_pos", "state", "observation")
GOAL_KEYS = ("desired_goal", "goal")
CAMERA_KEY = "pixels"
STATE, GOAL = "observation.state", "observation.goal"
WHOLE = ""  # the key of a plain (non-dict) observation


def is_camera(feature: str) -> bool:
    return feature == IMAGE_FEATURE or feature.startswith(IMAGES_PREFIX)


@dataclass(frozen=True)
class ObservationMap:
    """Which observation keys make the state, the goal and the cameras, and the fixed goal's instruction."""

    state_keys: tuple[str, ...]
    goal_key: str | None
    cameras: dict[str, str] = field(default_factory=dict)
    """env key -> dataset feature (`observation.image` or `observation.images.<cam>`), in the map's order."""
    instruction: str | None = None
    """The goal of an env whose observations hold none (its episodes' task string)."""

    @classmethod
    def for_space(cls, space: gym.Space, features_map: dict[str, str] | None = None) -> ObservationMap:
        """The map for an env's observation space; ValueError when it has no state."""
        keys = observation_keys(space)
        if features_map:
            unknown = sorted(set(features_map) - set(keys))
            wrong = sorted(v for v in features_map.values() if v not in (STATE, GOAL) and not is_camera(v))
            if unknown or wrong:
                raise ValueError(
                    f"the features map names observation keys {unknown} the env does not have (it has "
                    f"{list(keys)}) or targets {wrong}; map keys to '{STATE}', '{GOAL}', "
                    f"'{IMAGE_FEATURE}' or '{IMAGES_PREFIX}<camera>'."
                )
            state = tuple(k for k, v in features_map.items() if v == STATE)
            goals = [k for k, v in features_map.items() if v == GOAL]
            cameras = {k: v for k, v in features_map.items() if is_camera(v)}
        else:
            state = next(((k,) for k in (*STATE_KEYS, WHOLE) if k in keys), ())
            goals = [k for k in GOAL_KEYS if k in keys][:1]
            cameras = _conventional_cameras(keys)
        if not state:
            raise ValueError(
                f"no observation key holds the robot's state (looked for {list(STATE_KEYS)} among "
                f'{list(keys)}): pass --features-map \'{{"<key>": "{STATE}"}}\'.'
            )
        if len(goals) > 1:
            raise ValueError(f"the features map sends {goals} to '{GOAL}': map one key to the goal.")
        return cls(state, goals[0] if goals else None, cameras)

    @classmethod
    def recorded(cls, features_map: dict[str, str], instruction: str | None = None) -> ObservationMap:
        """The map a dataset or checkpoint recorded (`as_features_map`, checked when it was recorded)."""
        goal = [key for key, value in features_map.items() if value == GOAL]
        state = tuple(k for k, v in features_map.items() if v == STATE)
        cameras = {k: v for k, v in features_map.items() if is_camera(v)}
        return cls(state, goal[0] if goal else None, cameras, instruction)

    def state(self, obs: Any) -> np.ndarray:
        """(..., S) float32 state of one observation or of a batch."""
        parts = [_part(obs, key) for key in self.state_keys]
        return np.concatenate(parts, axis=-1).astype(np.float32)

    def goal(self, obs: Any, count: int | None = None) -> np.ndarray:
        """(..., G) float32 goal vector, or the instruction: a str, or (count,) strings for a batch."""
        if self.goal_key is not None:
            return _part(obs, self.goal_key).astype(np.float32)
        if self.instruction is None:
            raise ValueError("this env's observations hold no goal and no instruction was recorded for it.")
        return np.asarray(self.instruction if count is None else [self.instruction] * count)

    def camera(self, obs: Any, key: str | None = None) -> np.ndarray:
        """(..., H, W, 3) uint8 frame of camera `key`; by default the one pixel models read, as
        siefm.data.cameras.camera_key picks it in datasets: the one sent to `observation.image`, else
        the one whose feature name sorts first."""
        if key is None:
            key = min(self.cameras, key=lambda k: (self.cameras[k] != IMAGE_FEATURE, self.cameras[k]))
        return np.asarray(_part(obs, key), dtype=np.uint8)

    def split(self, obs: Any) -> dict[str, np.ndarray]:
        """A batch's {"state", "goal"}: what siefm's models and fleets read (cameras apart)."""
        state = self.state(obs)
        return {"state": state, "goal": self.goal(obs, len(state))}

    def as_features_map(self) -> dict[str, str]:
        """The map in LeRobot's form, as recorded in datasets and checkpoints."""
        goal = {self.goal_key: GOAL} if self.goal_key else {}
        return {**{key: STATE for key in self.state_keys}, **goal, **self.cameras}


def observation_keys(space: gym.Space) -> tuple[str, ...]:
    """The observation's keys, a nested one as `outer/inner`."""
    if not isinstance(space, gym.spaces.Dict):
        return (WHOLE,)
    keys: list[str] = []
    for name, sub in space.spaces.items():
        keys.append(name)
        if isinstance(sub, gym.spaces.Dict):
            keys += [f"{name}/{inner}" for inner in sub.spaces]
    return tuple(keys)


def _conventional_cameras(keys: tuple[str, ...]) -> dict[str, str]:
    nested = [key for key in keys if key.startswith(CAMERA_KEY + "/")]
    if nested:
        return {key: IMAGES_PREFIX + key.split("/", 1)[1] for key in nested}
    return {CAMERA_KEY: IMAGE_FEATURE} if CAMERA_KEY in keys else {}


def _part(obs: Any, key: str) -> np.ndarray:
    if key == WHOLE:
        return np.asarray(obs)
    for name in key.split("/"):
        obs = obs[name]
    return np.asarray(obs)
