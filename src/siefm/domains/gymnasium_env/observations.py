"""How a gymnasium env's observations become siefm's state and goal (LeRobot's `features_map` convention).

By default, of a dict observation, `agent_pos`, `state` or `observation` (the first present) is the state
(`observation.state` in datasets) and `desired_goal` or `goal` the goal vector (`goal`); a plain array
observation is the state. A `features_map` ({env key: "observation.state" | "observation.goal"}) overrides
this: several keys mapped to the state are concatenated in the map's order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

STATE_KEYS = ("agent_pos", "state", "observation")
GOAL_KEYS = ("desired_goal", "goal")
STATE, GOAL = "observation.state", "observation.goal"
WHOLE = ""  # the key of a plain (non-dict) observation


@dataclass(frozen=True)
class ObservationMap:
    """Which observation keys make the state and the goal."""

    state_keys: tuple[str, ...]
    goal_key: str | None

    @classmethod
    def for_space(cls, space: gym.Space, features_map: dict[str, str] | None = None) -> ObservationMap:
        """The map for an env's observation space; ValueError when it has no state or no goal."""
        keys = tuple(space.spaces) if isinstance(space, gym.spaces.Dict) else (WHOLE,)
        if features_map:
            unknown = sorted(set(features_map) - set(keys))
            wrong = sorted(v for v in features_map.values() if v not in (STATE, GOAL))
            if unknown or wrong:
                raise ValueError(
                    f"the features map names observation keys {unknown} the env does not have (it has "
                    f"{list(keys)}) or targets {wrong}; map keys to '{STATE}' or '{GOAL}'."
                )
            state = tuple(k for k, v in features_map.items() if v == STATE)
            goals = [k for k, v in features_map.items() if v == GOAL]
        else:
            state = next(((k,) for k in (*STATE_KEYS, WHOLE) if k in keys), ())
            goals = [k for k in GOAL_KEYS if k in keys][:1]
        if not state:
            raise ValueError(
                f"no observation key holds the robot's state (looked for {list(STATE_KEYS)} among "
                f'{list(keys)}): pass --features-map \'{{"<key>": "{STATE}"}}\'.'
            )
        if len(goals) != 1:
            raise ValueError(
                f"the env's observations hold no goal (looked for {list(GOAL_KEYS)} among {list(keys)}). "
                "siefm learns goal-conditioned policies: its reward is the predicted number of steps to a "
                "goal. Use a goal-conditioned env, or map the key that holds the goal: --features-map "
                f'\'{{"<key>": "{GOAL}"}}\'.'
            )
        return cls(state, goals[0])

    @classmethod
    def recorded(cls, features_map: dict[str, str]) -> ObservationMap:
        """The map a dataset or checkpoint recorded (`as_features_map`, checked when it was recorded)."""
        goal = [key for key, value in features_map.items() if value == GOAL]
        return cls(tuple(k for k, v in features_map.items() if v == STATE), goal[0] if goal else None)

    def state(self, obs: Any) -> np.ndarray:
        """(..., S) float32 state of one observation or of a batch."""
        parts = [_part(obs, key) for key in self.state_keys]
        return np.concatenate(parts, axis=-1).astype(np.float32)

    def goal(self, obs: Any) -> np.ndarray:
        """(..., G) float32 goal of one observation or of a batch."""
        assert self.goal_key is not None
        return _part(obs, self.goal_key).astype(np.float32)

    def split(self, obs: Any) -> dict[str, np.ndarray]:
        """{"state", "goal"}: what siefm's models and fleets read."""
        return {"state": self.state(obs), "goal": self.goal(obs)}

    def as_features_map(self) -> dict[str, str]:
        """The map in LeRobot's form, as recorded in datasets and checkpoints."""
        return {**{key: STATE for key in self.state_keys}, **({self.goal_key: GOAL} if self.goal_key else {})}


def _part(obs: Any, key: str) -> np.ndarray:
    return np.asarray(obs if key == WHOLE else obs[key])
