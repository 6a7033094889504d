"""The practice fleet: N simulated robots stepped together in this process.

A fleet only moves robots; it never ends episodes by itself. Stage 2 decides when an episode is over (the
learned detector, or a time limit), resets only those robots, and carries on with the others.
"""

from __future__ import annotations

import numpy as np

from siefm.envs.pointmass import BatchedPointMass, PointMassConfig


class LocalFleet:
    """`num_envs` PointMass robots in one process (vectorised numpy)."""

    def __init__(self, num_envs: int, env_config: PointMassConfig, seed: int):
        self.world = BatchedPointMass(num_envs, env_config, seed=seed)

    @property
    def num_envs(self) -> int:
        return self.world.num_envs

    def reset(self, env_ids: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Starts new episodes on `env_ids` (all by default); returns every robot's observation."""
        return self.world.reset(env_ids)

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Applies actions (N, A); returns observations and the simulator's true success (N,)."""
        return self.world.step(actions)

    def close(self) -> None:
        """Nothing to release in-process; kept so a distributed fleet can share the interface."""

    def rng_state(self) -> dict:
        return self.world.rng.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        self.world.rng.bit_generator.state = state
