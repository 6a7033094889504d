"""The tabletop's practice fleet: N boards in one process, episodic or reset-free."""

from __future__ import annotations

from typing import Any

import numpy as np

from siefm.domains.tabletop.camera import Camera
from siefm.domains.tabletop.env import TabletopConfig, TabletopEnv
from siefm.improve.fleet import Observations


class TabletopFleet:
    """`num_envs` tabletop boards in one process, practising instructions of the given families.

    Episodic practice resets the board for every instruction. Reset-free practice (the paper's robot fleet)
    gives the next instruction on the board as the last episode left it, and resets a board only when a
    block has left it, no instruction of the family fits the layout, or `reset_every` steps have passed.
    Episode seeds come from the fleet's own generator, so a fleet is reproducible from its seed.
    """

    def __init__(
        self,
        num_envs: int,
        env_config: TabletopConfig,
        seed: int,
        families: tuple[str, ...],
        reset_free: bool = False,
        reset_every: int = 1800,
        camera_size: int | None = None,
    ):
        self.envs = [TabletopEnv(env_config) for _ in range(num_envs)]
        # Pixel policies: each board's camera at the model's size (None: state observations only).
        self.cameras = [Camera(env, camera_size) for env in self.envs] if camera_size else []
        self._pixels: list[np.ndarray | None] = [None] * num_envs
        self.num_envs = num_envs
        self.families, self.reset_free, self.reset_every = families, reset_free, reset_every
        self.rng = np.random.default_rng(seed)
        self.board_resets = 0  # full resets so far (reset-free practice reports how rarely it needs them)
        self._steps_since_reset = np.zeros(num_envs, dtype=np.int64)
        self._obs: list[dict[str, Any] | None] = [None] * num_envs
        self._success = np.zeros(num_envs, dtype=bool)

    def reset(self, env_ids: np.ndarray | None = None) -> Observations:
        """Gives `env_ids` (all by default) a new instruction; returns every robot's observation."""
        for i in range(self.num_envs) if env_ids is None else env_ids:
            env = self.envs[i]
            family = self.families[self.rng.integers(len(self.families))]
            started = None
            if (
                self.reset_free
                and self._obs[i] is not None
                and self._steps_since_reset[i] < self.reset_every
                and env.blocks_on_board()
            ):
                started = env.new_task(family)
            if started is None:
                started = env.reset(seed=int(self.rng.integers(2**31)), options={"family": family})
                self._steps_since_reset[i] = 0
                self.board_resets += 1
            self._obs[i], info = started
            self._success[i] = info["is_success"]
            self._observe_pixels(i, new_episode=True)
        return self._gather()

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> tuple[Observations, np.ndarray]:
        """Steps the `active` robots (all by default) with their actions (N, 2); idle robots stand still and
        report their last observation. Returns observations and the simulator's true success (N,)."""
        ids = range(self.num_envs) if active is None else np.flatnonzero(active)
        for i in ids:
            self._obs[i], _, _, _, info = self.envs[i].step(actions[i])
            self._success[i] = info["is_success"]
            self._steps_since_reset[i] += 1
            self._observe_pixels(i)
        return self._gather(), self._success.copy()

    def _observe_pixels(self, i: int, new_episode: bool = False) -> None:
        if self.cameras:
            self._pixels[i] = self.cameras[i].observe(new_episode)

    def _gather(self) -> Observations:
        assert all(obs is not None for obs in self._obs), "reset() every robot first"
        observations = {
            "state": np.stack([obs["state"] for obs in self._obs]),  # type: ignore[index]
            "goal": np.array([obs["instruction"] for obs in self._obs], dtype=object),  # type: ignore[index]
        }
        if self.cameras:
            observations["pixels"] = np.stack(self._pixels)  # type: ignore[arg-type]
        return observations

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def metrics(self) -> dict[str, float]:
        return {"rollout/board_resets": self.board_resets}

    def rng_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        # Boards are not part of the saved state: a resumed reset-free run starts from freshly reset boards.
        self.rng.bit_generator.state = state
