"""PointMass behind the Domain contract (siefm.domains.base): the worked example of docs/adding_a_domain.md.

Its presets follow the published notebook where they can: a goal vector, a Gaussian action head, one
steps-to-go class per step over 0..140 (docs/method.md explains why not the notebook's 50) and c = 1/140.
Two differ, for Stage 2's stability at 2.5x the default learning rate (docs/pointmass.md, "Stage 2 in half the
notebook's samples"): the Gaussian's scale floor is 0.1 (the notebook's 0.01), and N = 16 updates per
iteration (the paper's; the notebook's 32).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from siefm.config import EvalConfig, ImproveConfig
from siefm.domains import REGISTRY
from siefm.domains.base import (
    BOARD_OPTIONS,
    ActionBounds,
    Domain,
    EnvConfig,
    ObservationSpec,
    Presets,
    refuse_options,
)
from siefm.domains.pointmass.collect import FPS, ROBOT_TYPE, CollectConfig, collect_demonstrations
from siefm.domains.pointmass.demo import DemoConfig, run_demo
from siefm.domains.pointmass.env import GOAL_DIM, STATE_DIM, PointMassConfig
from siefm.domains.pointmass.evaluate import evaluate_against_straight_line
from siefm.domains.pointmass.fleet import LocalFleet
from siefm.models.efm import EFMBase

PRESETS = Presets(
    model={
        "goal_encoder": "vector",
        "state_encoder": "flat",
        "steps_to_go_sees": "full",
        "action_head": "gaussian",
        "steps_to_go_bins": 141,
        "steps_to_go_max": 140.0,
        "min_scale": 0.1,
    },
    improve={"num_updates": 16, "reward_scale": 1 / 140},
    sft={"patience": 4},  # Stage 1 stops on a validation plateau (docs/pointmass.md)
    eval_episodes=500,
)


class PointMassDomain(Domain):
    name = "pointmass"
    env_id = REGISTRY["pointmass"].env_id
    robot_type = ROBOT_TYPE
    fps = FPS
    presets = PRESETS
    collect_config = CollectConfig
    collect_option = "collect"
    demo_config = DemoConfig
    demo_description = (
        "Run the whole recipe on PointMass with embedded defaults (a few minutes): collect -> Stage 1 -> "
        "Stage 2 -> eval; writes results.json, trajectories.png and learning_curve.png and prints a summary."
    )

    def observation_spec(self, env: EnvConfig) -> ObservationSpec:
        return ObservationSpec(state_dim=STATE_DIM, goal_dim=GOAL_DIM)

    def env_config(self, kwargs: dict[str, Any], task: str | None = None) -> EnvConfig:
        return asdict(PointMassConfig(**kwargs))

    def episode_limit(self, env: EnvConfig) -> int:
        return PointMassConfig(**env).max_steps

    def action_bounds(self, env: EnvConfig) -> ActionBounds:
        bound = np.full(2, PointMassConfig(**env).max_action)  # what step_dynamics clips to
        return -bound, bound

    def collect(self, out: Path, config: CollectConfig, overwrite: bool = False) -> Path:
        return collect_demonstrations(out, config, overwrite=overwrite)

    def run_demo(self, out: Path, config: DemoConfig) -> dict[str, Any]:
        return run_demo(out, config)

    def practice_env(self, env: EnvConfig, config: ImproveConfig) -> EnvConfig:
        refuse_options(self.env_id, "improve", config, *BOARD_OPTIONS["improve"], "vector_env")
        return env

    def make_fleet(self, env: EnvConfig, config: ImproveConfig, camera_size: int | None) -> LocalFleet:
        return LocalFleet(config.num_envs, PointMassConfig(**env), seed=config.seed)

    def eval_env(self, env: EnvConfig, config: EvalConfig) -> EnvConfig:
        refuse_options(self.env_id, "eval", config, *BOARD_OPTIONS["eval"], "reference")
        return env

    def evaluate(
        self,
        model: EFMBase,
        metadata: dict[str, Any],
        env: EnvConfig,
        out: Path,
        config: EvalConfig,
        reward: Path | None,
    ) -> dict[str, Any]:
        return evaluate_against_straight_line(model, PointMassConfig(**env), out, config)


DOMAIN = PointMassDomain()
