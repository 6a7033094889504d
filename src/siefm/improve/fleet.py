"""The practice fleet: N simulated robots stepped together in this process.

A fleet only moves robots; it never ends episodes by itself. Stage 2 decides when an episode is over (the
learned detector, or a time limit), calls `reset` on just those robots, and carries on with the others.
Observations come back as {"state": (N, S), "goal": (N, G) vectors or (N,) instruction strings}, and, for
pixel models, "pixels": (N, 2, H, W, 3), each robot's previous and current camera frame. A fleet whose
simulators can fail adds "fault": (N,) bool, the robots whose simulator raised on the last step: Stage 2
ends their episodes as failures. Each domain implements its fleet (`Domain.make_fleet`).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from siefm.config import ImproveConfig
from siefm.domains import get_domain
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


def camera_size(*models: EFMBase) -> int | None:
    """The camera frames' size the models need (None: state models only); pixel models must agree."""
    sizes = {model.config.image_size for model in models if model.reads_frames}
    if len(sizes) > 1:
        raise ValueError(
            f"the policy and the reward model read frames of different sizes {sorted(sizes)}: "
            "train both with the same --sft.model.image-size."
        )
    return sizes.pop() if sizes else None


def practice_env(env: dict[str, Any], config: ImproveConfig) -> dict[str, Any]:
    """The env Stage 2 practises in, as recorded in metadata: the checkpoint's, changed where `config`'s
    domain options say so (checked by the domain, before a run starts)."""
    return {"id": env["id"], "config": get_domain(env["id"]).practice_env(env["config"], config)}


def make_fleet(env: dict[str, Any], config: ImproveConfig, camera_size: int | None = None) -> Fleet:
    """The domain's fleet for `env` (from `practice_env`); `camera_size` adds camera frames for pixel
    models. With `config.env_workers`, the robots are split among that many worker processes."""
    if config.env_workers:
        from siefm.improve.process_fleet import ProcessFleet  # it builds on this module

        return ProcessFleet(env, config, camera_size)
    return get_domain(env["id"]).make_fleet(env["config"], config, camera_size)
