"""Demonstration collection: the scripted PointMass demonstrator -> a dataset on disk."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from siefm.config import require, to_dict
from siefm.data.sampler import steps_to_go_labels
from siefm.data.writing import write_dataset
from siefm.domains import REGISTRY
from siefm.domains.pointmass.demonstrator import generate_demonstrations
from siefm.domains.pointmass.env import PointMassConfig

log = logging.getLogger("siefm")

FPS = 10  # one env step = one frame; PointMass has no physical clock, 10 Hz matches the robot domains
ROBOT_TYPE = "pointmass"
TASK = "move the point mass to the goal"


@dataclass(frozen=True)
class CollectConfig:
    """Demonstrations from the scripted waypoint demonstrator."""

    num_episodes: int = 10_000
    """Episodes to simulate; failed ones and ones shorter than `min_steps` are not written."""
    num_waypoints: int = 5
    """Random waypoints the demonstrator visits before the goal."""
    min_steps: int = 10
    """Shorter demonstrations are dropped (the notebook's rule)."""
    max_steps: int = 400
    """Demonstrations still running after this many steps are dropped."""
    seed: int = 0
    """Seeds starts, goals and waypoints."""
    env: PointMassConfig = field(default_factory=PointMassConfig)

    def __post_init__(self) -> None:
        for name in ("num_episodes", "min_steps", "max_steps"):
            require(getattr(self, name) >= 1, self, name, ">= 1")
        require(self.num_waypoints >= 0, self, "num_waypoints", ">= 0")


def collect_demonstrations(out: Path, config: CollectConfig, overwrite: bool = False) -> Path:
    """Generates demonstrations, labels steps-to-go, and writes them as a LeRobot-layout dataset."""
    episodes = generate_demonstrations(
        config.num_episodes,
        config.env,
        seed=config.seed,
        num_waypoints=config.num_waypoints,
        min_steps=config.min_steps,
        max_steps=config.max_steps,
    )
    if not episodes:
        raise ValueError("the demonstrator produced no episode long enough; lower --collect.min-steps.")
    for episode in episodes:
        episode["steps_to_go"] = steps_to_go_labels(len(episode["action"]))
    lengths = np.array([len(e["action"]) - 1 for e in episodes])
    log.info(
        "kept %d of %d demonstrations: %.1f +- %.1f steps",
        len(episodes),
        config.num_episodes,
        lengths.mean(),
        lengths.std(),
    )
    extra = {
        "env": {"id": REGISTRY["pointmass"].env_id, "config": to_dict(config.env)},
        "collect": to_dict(config),
    }
    tasks = [TASK] * len(episodes)  # the goal itself is the vector column; LeRobot expects a task string
    return write_dataset(
        Path(out),
        episodes,
        fps=FPS,
        tasks=tasks,
        robot_type=ROBOT_TYPE,
        extra_info=extra,
        overwrite=overwrite,
    )
