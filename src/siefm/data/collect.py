"""Demonstration collection: the scripted PointMass demonstrator -> a dataset on disk."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from siefm.config import CollectConfig, to_dict
from siefm.data.dataset import write_dataset
from siefm.data.sampler import steps_to_go_labels
from siefm.envs.pointmass_demos import generate_demonstrations

log = logging.getLogger("siefm")

ENV_ID = "siefm/PointMass-v0"
FPS = 10  # one env step = one frame; PointMass has no physical clock, 10 Hz matches the robot domains


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
    extra = {"env": {"id": ENV_ID, "config": to_dict(config.env)}, "collect": to_dict(config)}
    return write_dataset(
        Path(out), episodes, fps=FPS, robot_type="pointmass", extra_info=extra, overwrite=overwrite
    )
