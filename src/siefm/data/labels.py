"""Stage 1's columns for a dataset that lacks them, such as one LeRobot wrote: steps-to-go labels from the
episode boundaries, and which frames are terminal and successful.

The paper's assumption (docs/method.md, "Stage 1: supervised fine-tuning"): every episode ends at its goal,
so frame t of an episode whose last frame is t' is t' - t steps from it. A LeRobot episode stores an action
on every frame, its last included; siefm's convention is a final observation without one, so the last
frame's action is masked out of behavioural cloning (one action per episode unused). Where the dataset
records success (`next.success`, as LeRobot's sim datasets do), only the episodes whose last frame
succeeded are kept: the others did not end at a goal, and labels counting steps to their end would teach
the reward model a wrong one.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from siefm.data.dataset import DatasetError, EpisodeDataset
from siefm.data.sampler import steps_to_go_labels

log = logging.getLogger("siefm")

SUCCESS_COLUMNS = ("is_success", "next.success")


def with_stage1_columns(dataset: EpisodeDataset) -> EpisodeDataset:
    """`dataset` with `steps_to_go`, `is_terminal`, `is_success` and `goal` made where they are missing (and,
    when it records success but has no labels, only its episodes that end in success)."""
    if "steps_to_go" not in dataset.columns:
        dataset = _successful_episodes(dataset)
    columns = dict(dataset.columns)
    if "steps_to_go" not in columns:
        labels = [steps_to_go_labels(int(b - a)) for a, b in dataset.episode_bounds]
        columns["steps_to_go"] = np.concatenate(labels)
    last = dataset.episode_bounds[:, 1] - 1
    if "is_terminal" not in columns:
        columns["is_terminal"] = np.zeros(dataset.num_frames, dtype=bool)
        columns["is_terminal"][last] = True
    if "is_success" not in columns:
        columns["is_success"] = columns["is_terminal"].copy()
    if "goal" not in columns and "observation.goal" in columns:  # LeRobot's name for siefm's goal vector
        columns["goal"] = columns["observation.goal"]
    return dataclasses.replace(dataset, columns=columns)


def _successful_episodes(dataset: EpisodeDataset) -> EpisodeDataset:
    recorded = next((dataset.columns[name] for name in SUCCESS_COLUMNS if name in dataset.columns), None)
    if recorded is None:  # no record of success: every episode is taken to end at its goal
        return dataset
    ended_well = np.flatnonzero(np.asarray(recorded, dtype=bool)[dataset.episode_bounds[:, 1] - 1])
    if ended_well.size == 0:
        raise DatasetError(
            f"{dataset.root}: no episode ends in success, so none can teach steps to a goal (the labels "
            "count the steps to an episode's end, taken as its goal)."
        )
    if ended_well.size < dataset.num_episodes:
        log.warning(
            "%d of %d episodes do not end in success; Stage 1 uses the %d that do",
            dataset.num_episodes - ended_well.size,
            dataset.num_episodes,
            ended_well.size,
        )
        return dataset.select_episodes(ended_well)
    return dataset
