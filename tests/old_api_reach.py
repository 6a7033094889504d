"""tests/toy_reach.py's env written against the old gym API (gym <= 0.21), for the test that siefm runs such
an env through shimmy's compatibility wrapper and no code of its own: `reset()` returns the observation
alone, `step` returns (obs, reward, done, info), `seed(seed)` seeds it, and its spaces are gym's.

Registered as `old_api_reach:OldReach-v0` with a factory as the entry point, so every `gymnasium.make`
(one per vector-env copy, in this process or an async worker) wraps an env of its own. Needs `gym` besides
shimmy: shimmy's wrapper imports it, and converts gym's spaces to gymnasium's."""

from __future__ import annotations

import gym
import gymnasium
import numpy as np
from shimmy.openai_gym_compatibility import GymV21CompatibilityV0
from toy_reach import STEP, ToyReach, demonstrator, straight

__all__ = ["OldReach", "demonstrator", "make_old_reach", "straight"]


class OldReach:
    """tests/toy_reach.py's point reaching a goal, seen through the old API; not a gymnasium.Env (and not
    gym >= 0.26's new API)."""

    metadata = {"render.modes": [], "render_fps": 20}  # noqa: RUF012 (gym's convention)

    def __init__(self, arena: float = 1.0, terminate_on_success: bool = False):
        self.toy = ToyReach(arena, terminate_on_success)  # the dynamics; only the API differs
        box = gym.spaces.Box(-arena, arena, shape=(2,), dtype=np.float32)
        self.observation_space = gym.spaces.Dict({"agent_pos": box, "desired_goal": box})
        self.action_space = gym.spaces.Box(-STEP, STEP, shape=(2,), dtype=np.float32)
        self._seed: int | None = None

    def seed(self, seed: int | None = None) -> list[int | None]:
        self._seed = seed  # taken by the next reset, as the old API's seed() then reset() did
        return [seed]

    def reset(self) -> dict[str, np.ndarray]:
        obs, _ = self.toy.reset(seed=self._seed)
        self._seed = None
        return obs

    def step(self, action) -> tuple[dict[str, np.ndarray], float, bool, dict]:
        obs, reward, terminated, _, info = self.toy.step(action)
        return obs, reward, terminated, info

    def render(self, mode: str = "human") -> None:
        return None

    def close(self) -> None:
        pass


def make_old_reach(**kwargs) -> GymV21CompatibilityV0:
    """The gymnasium entry point: a new old-API env in shimmy's wrapper. (`kwargs={"env": OldReach()}` in
    `register` would hand one instance to every copy of a vector env; `env_id=` needs gym's registry and
    `gym.make`, which wraps old-API envs in gym 0.26's new-API checkers.)"""
    return GymV21CompatibilityV0(env=OldReach(**kwargs))


if "OldReach-v0" not in gymnasium.registry:
    gymnasium.register("OldReach-v0", entry_point=make_old_reach, max_episode_steps=100)
