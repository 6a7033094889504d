"""The practice fleet: N simulated robots stepped together in this process.

A fleet only moves robots; it never ends episodes by itself. Stage 2 decides when an episode is over (the
learned detector, or a time limit), calls `reset` on just those robots, and carries on with the others.
Observations come back as {"state": (N, S), "goal": (N, G) vectors or (N,) instruction strings}, and, for
pixel models on the tabletop, "pixels": (N, 2, H, W, 3), each robot's previous and current camera frame.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Protocol

import numpy as np

from siefm.config import POINTMASS_ID, TABLETOP_ID, ImproveConfig
from siefm.envs.pointmass import BatchedPointMass, PointMassConfig
from siefm.envs.tabletop import TabletopConfig, TabletopEnv
from siefm.envs.tabletop.camera import Camera
from siefm.models.efm import EFMBase

Observations = dict[str, np.ndarray]


class Fleet(Protocol):
    """What Stage 2 needs from a group of robots."""

    num_envs: int

    def reset(self, env_ids: np.ndarray | None = None) -> Observations: ...
    def step(
        self, actions: np.ndarray, active: np.ndarray | None = None
    ) -> tuple[Observations, np.ndarray]: ...
    def close(self) -> None: ...
    def metrics(self) -> dict[str, float]: ...
    def rng_state(self) -> dict: ...
    def set_rng_state(self, state: dict) -> None: ...


class LocalFleet:
    """`num_envs` PointMass robots in one process (vectorised numpy)."""

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


def camera_size(*models: EFMBase) -> int | None:
    """The camera frames' size the models need (None: state models only); pixel models must agree."""
    sizes = {model.config.image_size for model in models if model.config.observation == "pixels"}
    if len(sizes) > 1:
        raise ValueError(
            f"the policy and the reward model read frames of different sizes {sorted(sizes)}: "
            "train both with the same --sft.model.image-size."
        )
    return sizes.pop() if sizes else None


def practice_env(env: dict[str, Any], config: ImproveConfig) -> dict[str, Any]:
    """The env Stage 2 practises on, as recorded in metadata: the checkpoint's env, on another board and
    with the practised families where `config` says so (checked here, before a run starts)."""
    if env["id"] != TABLETOP_ID:
        if config.block_set is not None or config.families:
            raise ValueError(
                f"--improve.block-set and --improve.families apply to the tabletop, not {env['id']}."
            )
        return env
    board = TabletopConfig(**env["config"]).with_board(config.block_set, config.families)
    return {"id": TABLETOP_ID, "config": asdict(board)}


def make_fleet(
    env: dict[str, Any], config: ImproveConfig, camera_size: int | None = None
) -> LocalFleet | TabletopFleet:
    """The fleet for `env` (from `practice_env`); `camera_size` adds camera frames for pixel models."""
    if env["id"] == POINTMASS_ID:
        return LocalFleet(config.num_envs, PointMassConfig(**env["config"]), seed=config.seed)
    if env["id"] == TABLETOP_ID:
        board = TabletopConfig(**env["config"]).with_board(None, env["config"].get("families"))
        return TabletopFleet(
            config.num_envs,
            board,
            config.seed,
            board.task_families,
            reset_free=config.practice_mode == "reset-free",
            reset_every=config.reset_every,
            camera_size=camera_size,
        )
    raise ValueError(
        f"no practice fleet for the env {env['id']!r}; Stage 2 supports {POINTMASS_ID} and {TABLETOP_ID}."
    )
