"""A goal-conditioned gymnasium env siefm did not write, for the tests of the generic gymnasium domain:
a point reaching a goal on the plane, `gymnasium.make("toy_reach:ToyReach-v0")`, and a sub-optimal
scripted demonstrator (`toy_reach:demonstrator`) that spirals in instead of heading straight.
`toy_reach:ToyReachCamera-v0` is the pixel variant, as PushT is: a fixed goal (no goal in the
observations), a camera (`pixels`, 16 x 16) and the point's position (`agent_pos`)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

SUCCESS_RADIUS = 0.05
STEP = 0.1


class ToyReach(gym.Env):
    metadata = {"render_modes": [], "render_fps": 20}  # noqa: RUF012 (gymnasium's convention)

    def __init__(self, arena: float = 1.0, terminate_on_success: bool = False, unstable_after: int = 0):
        """`unstable_after` > 0: the step after that many of an episode raises, as an unstable simulator
        does (dm_control's PhysicsError)."""
        self.arena, self.terminate_on_success = arena, terminate_on_success
        self.unstable_after = unstable_after
        self.steps = 0
        box = gym.spaces.Box(-arena, arena, shape=(2,), dtype=np.float32)
        self.observation_space = gym.spaces.Dict({"agent_pos": box, "desired_goal": box})
        self.action_space = gym.spaces.Box(-STEP, STEP, shape=(2,), dtype=np.float32)
        self.position = np.zeros(2, dtype=np.float32)
        self.goal = np.zeros(2, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.steps = 0
        self.position = self.np_random.uniform(-self.arena, self.arena, 2).astype(np.float32)
        self.goal = self.np_random.uniform(-self.arena, self.arena, 2).astype(np.float32)
        return self._obs(), {"is_success": self._success()}

    def step(self, action):
        self.steps += 1
        if self.unstable_after and self.steps > self.unstable_after:
            raise FloatingPointError("the simulation is unstable")
        move = np.clip(np.asarray(action, dtype=np.float32), -STEP, STEP)
        self.position = np.clip(self.position + move, -self.arena, self.arena).astype(np.float32)
        success = self._success()
        terminated = success and self.terminate_on_success
        return self._obs(), float(success), terminated, False, {"is_success": success}

    def _obs(self) -> dict[str, np.ndarray]:
        return {"agent_pos": self.position.copy(), "desired_goal": self.goal.copy()}

    def _success(self) -> bool:
        return bool(np.linalg.norm(self.position - self.goal) < SUCCESS_RADIUS)


FIXED_GOAL = np.array([0.5, 0.5], dtype=np.float32)
SIDE = 16


class ToyReachCamera(ToyReach):
    """ToyReach towards FIXED_GOAL, seen by a camera: the point bright red, the goal green."""

    def __init__(self, arena: float = 1.0):
        super().__init__(arena, terminate_on_success=True)
        box = gym.spaces.Box(-arena, arena, shape=(2,), dtype=np.float32)
        image = gym.spaces.Box(0, 255, shape=(SIDE, SIDE, 3), dtype=np.uint8)
        self.observation_space = gym.spaces.Dict({"agent_pos": box, "pixels": image})

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed, options=options)
        self.goal = FIXED_GOAL.copy()
        return self._obs(), {"is_success": self._success()}

    def _obs(self) -> dict[str, np.ndarray]:
        frame = np.zeros((SIDE, SIDE, 3), dtype=np.uint8)
        for channel, point in ((1, self.goal), (0, self.position)):
            x, y = np.clip(((point / self.arena + 1) / 2 * SIDE).astype(int), 0, SIDE - 1)
            frame[y, x, channel] = 255
        return {"agent_pos": self.position.copy(), "pixels": frame}


def demonstrator(obs: dict[str, np.ndarray]) -> np.ndarray:
    """Heads 60 degrees off the goal's direction at a third of the top speed: a slow spiral in."""
    offset = obs.get("desired_goal", FIXED_GOAL) - obs["agent_pos"]
    distance = float(np.linalg.norm(offset))
    angle = np.deg2rad(60) if distance > 2 * SUCCESS_RADIUS else 0.0
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    heading = rotation @ (offset / max(distance, 1e-9))
    return (min(STEP / 3, distance) * heading).astype(np.float32)


class Waypoint:
    """A stateful demonstrator: at each episode's start it draws a waypoint from the episode's seed, goes
    there, then to the goal. `reset(seed)` records the seeds it was started with."""

    def __init__(self, spread: float = 0.5):
        self.spread, self.seeds, self.waypoint = spread, [], None

    def reset(self, seed: int) -> None:
        self.seeds.append(seed)
        self.waypoint = np.random.default_rng(seed).uniform(-self.spread, self.spread, 2)

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.waypoint is not None and np.linalg.norm(self.waypoint - obs["agent_pos"]) < STEP:
            self.waypoint = None
        target = obs["desired_goal"] if self.waypoint is None else self.waypoint
        return np.clip(target - obs["agent_pos"], -STEP, STEP).astype(np.float32)


def straight(obs: dict[str, np.ndarray]) -> np.ndarray:
    offset = obs["desired_goal"] - obs["agent_pos"]
    return np.clip(offset, -STEP, STEP).astype(np.float32)


if "ToyReach-v0" not in gym.registry:
    gym.register("ToyReach-v0", entry_point=ToyReach, max_episode_steps=100)
    gym.register("ToyReachCamera-v0", entry_point=ToyReachCamera, max_episode_steps=100)
