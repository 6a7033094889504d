"""PointMass: the 2-D goal-reaching domain of the paper's published notebook (docs/method.md, "The PointMass
notebook").

A point with position and velocity, no walls. One env step holds the 2-D acceleration action for
`substeps` Euler substeps of ``vel += a; pos += vel``. Success: distance to the goal below
`success_radius`. The dynamics live in pure functions so that the batched form (used for fast rollouts)
and the gymnasium form (registered as ``siefm/PointMass-v0``) share one implementation.

Choices the notebook leaves open, made here:
- Actions are clipped to ``[-max_action, max_action]`` per axis. The bound is ~2x the largest action the
  demonstrator uses, so Stage 2 cannot win by leaving the data's action scale far behind.
- A start closer to the goal than the success radius is resampled, so every episode has work to do.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

STATE_DIM = 4  # position (2) + velocity (2)
GOAL_DIM = 2
ACTION_DIM = 2


@dataclass(frozen=True)
class PointMassConfig:
    """Physical and task parameters of PointMass (defaults follow the notebook)."""

    substeps: int = 10
    """Euler substeps per env step; the action is held constant across them."""
    success_radius: float = 0.15
    """An episode succeeds when the point is closer than this to the goal."""
    start_range: float = 1.0
    """Start position is uniform in [-start_range, start_range]^2, at rest."""
    goal_range: float = 0.9
    """Goal is uniform in [-goal_range, goal_range]^2."""
    max_action: float = 1e-3
    """Per-axis bound on the acceleration action."""
    max_steps: int = 140
    """Time limit of an episode in env steps."""

    def __post_init__(self) -> None:
        for name in ("substeps", "max_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"PointMassConfig.{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("success_radius", "start_range", "goal_range", "max_action"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PointMassConfig.{name} must be > 0, got {getattr(self, name)}.")


def sample_initial_states(
    rng: np.random.Generator, num: int, config: PointMassConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draws `num` starts (position, zero velocity) and goals; starts already at the goal are redrawn.

    Returns:
        position (num, 2), velocity (num, 2), goal (num, 2), all float64.
    """
    position = rng.uniform(-config.start_range, config.start_range, size=(num, 2))
    goal = rng.uniform(-config.goal_range, config.goal_range, size=(num, 2))
    too_close = np.linalg.norm(position - goal, axis=-1) < config.success_radius
    while too_close.any():
        position[too_close] = rng.uniform(-config.start_range, config.start_range, size=(too_close.sum(), 2))
        too_close = np.linalg.norm(position - goal, axis=-1) < config.success_radius
    return position, np.zeros_like(position), goal


def step_dynamics(
    position: np.ndarray, velocity: np.ndarray, action: np.ndarray, config: PointMassConfig
) -> tuple[np.ndarray, np.ndarray]:
    """One env step: the clipped action is applied for `config.substeps` substeps. Shapes (..., 2)."""
    action = np.clip(action, -config.max_action, config.max_action)
    for _ in range(config.substeps):
        velocity = velocity + action
        position = position + velocity
    return position, velocity


def is_success(position: np.ndarray, goal: np.ndarray, config: PointMassConfig) -> np.ndarray:
    """True success: distance to goal below the success radius. Shapes (..., 2) -> (...)."""
    return np.linalg.norm(position - goal, axis=-1) < config.success_radius


class BatchedPointMass:
    """`num_envs` independent PointMass worlds stepped together with numpy.

    Nothing here resets automatically: the caller (a rollout or the demonstrator) decides when an episode
    ends, because in Stage 2 that is the learned success detector's call, not the simulator's.
    """

    def __init__(self, num_envs: int, config: PointMassConfig | None = None, seed: int | None = None):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
        self.num_envs = num_envs
        self.config = config or PointMassConfig()
        self.rng = np.random.default_rng(seed)
        self.position = np.zeros((num_envs, 2))
        self.velocity = np.zeros((num_envs, 2))
        self.goal = np.zeros((num_envs, 2))

    def reset(self, env_ids: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Resets the given envs (all by default) and returns the observation of every env."""
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids)
        if ids.size:
            pos, vel, goal = sample_initial_states(self.rng, ids.size, self.config)
            self.position[ids], self.velocity[ids], self.goal[ids] = pos, vel, goal
        return self.observe()

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Steps every env with `actions` (N, 2); returns observations and true success (N,)."""
        self.position, self.velocity = step_dynamics(self.position, self.velocity, actions, self.config)
        return self.observe(), self.is_success()

    def observe(self) -> dict[str, np.ndarray]:
        """Policy observation: {"state": (N, 4) position+velocity, "goal": (N, 2)} as float32."""
        state = np.concatenate([self.position, self.velocity], axis=-1).astype(np.float32)
        return {"state": state, "goal": self.goal.astype(np.float32)}

    def is_success(self) -> np.ndarray:
        return is_success(self.position, self.goal, self.config)


class PointMassEnv(gym.Env):
    """Gymnasium form of PointMass: observation {"state", "goal"}, terminated on true success.

    ``info["is_success"]`` carries the simulator's success, for evaluation only.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium's convention is a class attribute)

    def __init__(self, config: PointMassConfig | None = None):
        self.config = config or PointMassConfig()
        bound = np.float32(self.config.max_action)
        self.action_space = gym.spaces.Box(-bound, bound, shape=(ACTION_DIM,), dtype=np.float32)
        self.observation_space = gym.spaces.Dict(
            {
                "state": gym.spaces.Box(-np.inf, np.inf, shape=(STATE_DIM,), dtype=np.float32),
                "goal": gym.spaces.Box(
                    -self.config.goal_range, self.config.goal_range, shape=(GOAL_DIM,), dtype=np.float32
                ),
            }
        )
        self._world = BatchedPointMass(1, self.config)
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._world.rng = self.np_random  # one RNG stream: the batched and gym forms match for a seed
        self._steps = 0
        obs = self._world.reset()
        return _unbatch(obs), {"is_success": False}

    def step(self, action):
        obs, success = self._world.step(np.asarray(action, dtype=np.float64)[None])
        self._steps += 1
        terminated = bool(success[0])
        truncated = not terminated and self._steps >= self.config.max_steps
        return _unbatch(obs), 0.0, terminated, truncated, {"is_success": terminated}


def _unbatch(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {key: value[0] for key, value in obs.items()}
