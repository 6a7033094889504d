"""PointMass's practice fleet: N robots stepped together in one vectorised numpy batch."""

from __future__ import annotations

import numpy as np

from siefm.domains.pointmass.env import BatchedPointMass, PointMassConfig
from siefm.improve.fleet import Observations


class LocalFleet:
    """`num_envs` PointMass robots in one process (vectorised numpy): a `siefm.improve.fleet.Fleet`."""

    def __init__(self, num_envs: int, env_config: PointMassConfig, seed: int):
        self.world = BatchedPointMass(num_envs, env_config, seed=seed)
        self.num_envs = num_envs

    def reset(self, env_ids: np.ndarray | None = None) -> Observations:
        """Starts new episodes on `env_ids` (all by default); returns every robot's observation."""
        return self.world.reset(env_ids)

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> tuple[Observations, np.ndarray]:
        """Applies actions (N, A); returns observations and the simulator's true success (N,). Stepping
        the whole batch costs no more than stepping the active robots, so `active` is not needed."""
        return self.world.step(actions)

    def close(self) -> None:
        """Nothing to release in-process; kept so a distributed fleet can share the interface."""

    def metrics(self) -> dict[str, float]:
        return {}

    def rng_state(self) -> dict:
        return self.world.rng.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        self.world.rng.bit_generator.state = state
