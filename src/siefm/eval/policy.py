"""An EFM as a numpy policy, for evaluation loops that step simulators with numpy arrays."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from siefm.models.efm import EFMBase

Policy = Callable[[dict[str, np.ndarray]], np.ndarray]


def efm_policy(model: EFMBase, deterministic: bool = False, seed: int = 0) -> Policy:
    """Wraps an EFM as a numpy policy for evaluation (sampling from a seeded generator)."""
    generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        """Actions for a batch {"state", "goal" (vectors or instruction strings), "pixels" (pixel models:
        (B, 2, H, W, 3), the previous and current frames)}."""
        tensors = {key: torch.from_numpy(obs[key]) for key in ("state", "pixels") if key in obs}
        goal = model.goal_input(obs["goal"])
        action, _ = model.act(tensors, goal, deterministic=deterministic, generator=generator)
        return action.numpy().astype(np.float64)

    return act
