"""True-success evaluation of a policy on PointMass, with Wilson 95% confidence intervals.

Every policy compared in a report is run on the same seeded starts and goals. Episodes end on the
simulator's success or at the time limit; `mean_steps` averages all episodes (a failure counts the limit).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from siefm.config import EvalConfig
from siefm.domains import REGISTRY
from siefm.domains.pointmass.demonstrator import run_controller, straight_line_policy
from siefm.domains.pointmass.env import BatchedPointMass, PointMassConfig
from siefm.eval.plots import plot_trajectories
from siefm.eval.policy import Policy, efm_policy
from siefm.eval.stats import wilson_interval
from siefm.models.efm import EFMBase


@dataclass
class EvalResult:
    success_rate: float
    success_ci95: tuple[float, float]
    mean_steps: float
    episodes: int
    positions: np.ndarray  # (T + 1, E, 2), for trajectory plots
    goals: np.ndarray  # (E, 2)

    def panel(self, title: str, count: int = 10) -> tuple[str, list[np.ndarray], np.ndarray]:
        """The first `count` episodes as a `plot_trajectories` panel, with the scores in the title."""
        count = min(count, self.episodes)
        paths = [self.positions[:, i] for i in range(count)]
        caption = f"{title}\nsuccess {self.success_rate:.0%}, {self.mean_steps:.1f} steps"
        return caption, paths, self.goals[:count]

    def summary(self) -> dict[str, object]:
        """The `results.json` form (docs/method.md, "results.json")."""
        return {
            "success_rate": self.success_rate,
            "success_ci95": list(self.success_ci95),
            "mean_steps": self.mean_steps,
            "episodes": self.episodes,
        }


def evaluate(
    policy: Policy, env_config: PointMassConfig, episodes: int, seed: int, max_steps: int | None = None
) -> EvalResult:
    """Runs `episodes` seeded episodes in one batch and measures true success and episode length.

    `max_steps` defaults to the env's time limit.
    """
    max_steps = max_steps or env_config.max_steps
    world = BatchedPointMass(episodes, env_config, seed=seed)
    world.reset()
    goals = world.goal.copy()
    success, length, positions = run_controller(policy, world, max_steps)
    num_success = int(success.sum())
    return EvalResult(
        success_rate=num_success / episodes,
        success_ci95=wilson_interval(num_success, episodes),
        mean_steps=float(length.mean()),
        episodes=episodes,
        positions=positions,
        goals=goals,
    )


def evaluate_against_straight_line(
    model: EFMBase, env_config: PointMassConfig, out: Path, config: EvalConfig
) -> dict[str, Any]:
    """`siefm eval` on PointMass: the policy and the straight-line controller on the same seeded episodes,
    with the first episodes of each drawn in `out/trajectories.png`."""
    episodes = config.num_episodes(REGISTRY["pointmass"].env_id)
    policy = evaluate(
        efm_policy(model, config.deterministic, config.seed),
        env_config,
        episodes,
        config.seed,
        config.max_steps,
    )
    optimal = evaluate(straight_line_policy, env_config, episodes, config.seed, config.max_steps)
    panels = [policy.panel("policy"), optimal.panel("straight-line controller")]
    plot_trajectories(panels, out / "trajectories.png", env_config.success_radius)
    return {"policy": policy.summary(), "optimal": optimal.summary()}
