"""A goal-conditioned gymnasium env siefm did not write, for the tests of the generic gymnasium domain:
a point reaching a goal on the plane, `gymnasium.make("toy_reach:ToyReach-v0")`, and a sub-optimal
scripted demonstrator (`toy_reach:demonstrator`) that spirals in instead of heading straight."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

SUCCESS_RADIUS = 0.05
STEP = 0.1


class ToyReach(gym.Env):
    metadata = {"render_modes": [], "render_fps": 20}  # noqa: RUF012 (gymnasium's convention)

    def __init__(self, arena: float = 1.0, terminate_on_success: bool = False):
        self.arena, self.terminate_on_success = arena, terminate_on_success
        box = gym.spaces.Box(-arena, arena, shape=(2,), dtype=np.float32)
        self.observation_space = gym.spaces.Dict({"agent_pos": box, "desired_goal": box})
        self.action_space = gym.spaces.Box(-STEP, STEP, shape=(2,), dtype=np.float32)
        self.position = np.zeros(2, dtype=np.float32)
        self.goal = np.zeros(2, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position = self.np_random.uniform(-self.arena, self.arena, 2).astype(np.float32)
        self.goal = self.np_random.uniform(-self.arena, self.arena, 2).astype(np.float32)
        return self._obs(), {"is_success": self._success()}

    def step(self, action):
        move = np.clip(np.asarray(action, dtype=np.float32), -STEP, STEP)
        self.position = np.clip(self.position + move, -self.arena, self.arena).astype(np.float32)
        success = self._success()
        terminated = success and self.terminate_on_success
        return self._obs(), float(success), terminated, False, {"is_success": success}

    def _obs(self) -> dict[str, np.ndarray]:
        return {"agent_pos": self.position.copy(), "desired_goal": self.goal.copy()}

    def _success(self) -> bool:
        return bool(np.linalg.norm(self.position - self.goal) < SUCCESS_RADIUS)


def demonstrator(obs: dict[str, np.ndarray]) -> np.ndarray:
    """Heads 60 degrees off the goal's direction at a third of the top speed: a slow spiral in."""
    offset = obs["desired_goal"] - obs["agent_pos"]
    distance = float(np.linalg.norm(offset))
    angle = np.deg2rad(60) if distance > 2 * SUCCESS_RADIUS else 0.0
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    heading = rotation @ (offset / max(distance, 1e-9))
    return (min(STEP / 3, distance) * heading).astype(np.float32)


def straight(obs: dict[str, np.ndarray]) -> np.ndarray:
    offset = obs["desired_goal"] - obs["agent_pos"]
    return np.clip(offset, -STEP, STEP).astype(np.float32)


if "ToyReach-v0" not in gym.registry:
    gym.register("ToyReach-v0", entry_point=ToyReach, max_episode_steps=100)
