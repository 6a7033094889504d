"""The practice fleet of any gymnasium env: N copies in gymnasium's vector env, reset robot by robot.

The vector env runs with autoreset disabled, because Stage 2, not the simulator, decides when an episode
is over (the learned detector or the time limit); `reset(env_ids)` starts new episodes on just those
robots. 'async' steps each robot in its own worker process (for simulators that are slow next to the
policy), 'sync' steps them all in this one. Every robot is stepped every step: a vector env cannot step a
subset, and a robot that is idle (its episode over, the iteration finishing the others') is not recorded.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from siefm.domains.gymnasium_env.env import GymEnvConfig, true_success
from siefm.domains.gymnasium_env.observations import ObservationMap
from siefm.improve.fleet import Observations


class VectorFleet:
    """`num_envs` copies of a gymnasium env; implements `siefm.improve.fleet.Fleet`."""

    def __init__(
        self,
        env_id: str,
        config: GymEnvConfig,
        mapping: ObservationMap,
        num_envs: int,
        seed: int,
        mode: str = "async",
    ):
        self.envs = gym.make_vec(
            env_id,
            num_envs,
            vectorization_mode=mode,
            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.DISABLED},
            **config.kwargs,
        )
        self.mapping, self.num_envs = mapping, num_envs
        self.rng = np.random.default_rng(seed)
        self._obs: Observations | None = None

    def reset(self, env_ids: np.ndarray | None = None) -> Observations:
        """Starts new episodes on `env_ids` (all by default), each seeded from the fleet's generator;
        returns every robot's observation."""
        every = np.arange(self.num_envs)
        mask = np.ones(self.num_envs, dtype=bool) if env_ids is None else np.isin(every, env_ids)
        seeds = self.rng.integers(2**31, size=self.num_envs)
        if mask.any():
            obs, _ = self.envs.reset(
                seed=[int(s) if m else None for s, m in zip(seeds, mask, strict=True)],
                options={"reset_mask": mask},
            )
            self._obs = self.mapping.split(obs)
        assert self._obs is not None, "reset() every robot first"
        return self._obs

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> tuple[Observations, np.ndarray]:
        """Applies actions (N, A); returns observations and the simulator's true success (N,)."""
        dtype = self.envs.single_action_space.dtype
        obs, _, terminated, _, info = self.envs.step(np.asarray(actions, dtype=dtype))
        self._obs = self.mapping.split(obs)
        return self._obs, true_success(info, terminated)

    def close(self) -> None:
        self.envs.close()

    def metrics(self) -> dict[str, float]:
        return {}

    def rng_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state
