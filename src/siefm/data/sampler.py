"""Stage 1 samples (o_t, a_t, g, steps_to_go) from a dataset, the episode split and the label math.

Labels (docs/method.md, "Stage 1: supervised fine-tuning"): in a goal-per-episode dataset the goal is reached
at the episode's last frame t', so frame t is labelled steps_to_go = t' - t. An episode of T actions has T + 1
frames; the last one holds the final observation (label 0) and no action, so it teaches the steps-to-go head
what success looks like and is masked out of the BC loss.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from siefm.data.dataset import EpisodeDataset, subset_episode_ids


def steps_to_go_labels(num_frames: int) -> np.ndarray:
    """Labels of an episode whose goal is reached at its last frame: [T, T-1, ..., 0] for T + 1 frames."""
    if num_frames < 1:
        raise ValueError(f"an episode needs at least one frame, got {num_frames}.")
    return np.arange(num_frames - 1, -1, -1, dtype=np.int64)


def split_episodes(num_episodes: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random train/validation split by episode (never by frame, so no episode leaks across)."""
    if num_episodes < 2:
        raise ValueError(f"a train/validation split needs at least 2 episodes, got {num_episodes}.")
    order = np.random.default_rng(seed).permutation(num_episodes)
    num_val = min(max(1, round(val_fraction * num_episodes)), num_episodes - 1)
    return np.sort(order[num_val:]), np.sort(order[:num_val])


def stage1_split(
    num_episodes: int, data_fraction: float, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation episode ids (indices into the full dataset) of a Stage 1 run.

    The run uses the nested `data_fraction` subset of the episodes and holds out `val_fraction` of it.
    """
    subset = subset_episode_ids(num_episodes, data_fraction, seed)
    train, val = split_episodes(len(subset), val_fraction, seed)
    return subset[train], subset[val]


PREFETCH = 4  # batches of streamed frames read ahead of the training step


@dataclass
class Frames:
    """All frames of a dataset as tensors, ready for random minibatches.

    Instruction goals are stored once per LeRobot task in `goal_table` (word ids, or a frozen encoder's
    token states), and `goal` holds each frame's task index. Pixel models also get `images`: one entry per
    dataset frame (uint8 frames, or their frozen features), shared by every batch, and `image_ids` (F, 2),
    each frame's previous and current entry, and `episode_ends` (E, 2), each episode's first and last
    entry, with its task index in `episode_task` (E,), for the auxiliary instruction objective.
    """

    state: torch.Tensor  # (F, S)
    goal: torch.Tensor  # (F, G) float goal vectors, or (F,) int64 task indices into `goal_table`
    action: torch.Tensor  # (F, A)
    steps_to_go: torch.Tensor  # (F,) int64
    has_action: torch.Tensor  # (F,) bool: False on an episode's final frame
    image_ids: torch.Tensor | None = None  # (F, 2) int64 into `images`
    # (I, H, W, 3) uint8 frames (a tensor, or StreamedImages read on demand) or (I, C, h, w) features
    images: torch.Tensor | Any | None = None
    images_are_features: bool = False
    goal_table: torch.Tensor | None = None  # (tasks, ...) the model's goal input of each task; not batched
    episode_ends: torch.Tensor | None = None  # (E, 2) int64 into `images`; not batched
    episode_task: torch.Tensor | None = None  # (E,) int64 into `goal_table`; not batched

    @classmethod
    def from_dataset(cls, dataset: EpisodeDataset, task_goals: torch.Tensor | None = None) -> Frames:
        """Frames with the `goal` column as goals, or with `task_goals` (the model's goal input of each
        LeRobot task, e.g. each instruction's word ids) as the goal table."""
        columns = dataset.columns
        if task_goals is not None:
            goal = torch.as_tensor(columns["task_index"], dtype=torch.int64)
        else:
            goal = torch.as_tensor(columns["goal"], dtype=torch.float32)
        return cls(
            state=torch.as_tensor(columns["observation.state"], dtype=torch.float32),
            goal=goal,
            action=torch.as_tensor(columns["action"], dtype=torch.float32),
            steps_to_go=torch.as_tensor(columns["steps_to_go"], dtype=torch.int64),
            has_action=~torch.as_tensor(columns["is_terminal"], dtype=torch.bool),
            goal_table=task_goals,
        )

    def __len__(self) -> int:
        return self.state.shape[0]

    def observation(self) -> dict[str, torch.Tensor]:
        """The model's observation input: the state, and for pixel models both frames (or features)."""
        obs = {"state": self.state}
        if self.images is not None and self.image_ids is not None:
            obs["features" if self.images_are_features else "pixels"] = self.images[self.image_ids]
        return obs

    def goal_input(self) -> torch.Tensor:
        """The model's goal input of every frame."""
        return self.goal if self.goal_table is None else self.goal_table[self.goal]

    def batch(self, index: torch.Tensor) -> Frames:
        batched = ("state", "goal", "action", "steps_to_go", "has_action", "image_ids")
        picked = {n: None if getattr(self, n) is None else getattr(self, n)[index] for n in batched}
        shared = ("images", "images_are_features", "goal_table", "episode_ends", "episode_task")
        return Frames(**picked, **{name: getattr(self, name) for name in shared})

    def sample(self, batch_size: int, generator: torch.Generator) -> Frames:
        """A batch of frames drawn uniformly (with replacement across batches)."""
        return self.batch(torch.randint(len(self), (batch_size,), generator=generator))

    def batches(self, batch_size: int, generator: torch.Generator, workers: int = 1) -> Iterator[Frames]:
        """Endless training batches, each drawn as `sample` draws it (the same batches in the same order).
        Streamed images (siefm.data.pixels.StreamedImages) are read PREFETCH batches ahead by `workers`
        processes; close the iterator to stop them."""
        draws = (self.sample(batch_size, generator) for _ in itertools.count())
        if not hasattr(self.images, "prefetched"):
            yield from draws
            return
        ahead: collections.deque[Frames] = collections.deque()

        def image_ids(batches: Iterator[Frames]) -> Iterator[torch.Tensor]:
            for batch in batches:
                ahead.append(batch)
                yield batch.image_ids

        for images, ids in self.images.prefetched(image_ids(draws), workers, PREFETCH):
            yield dataclasses.replace(ahead.popleft(), images=images, image_ids=ids)

    def chunks(self, size: int) -> list[Frames]:
        """Consecutive batches covering every frame once (for validation)."""
        return [self.batch(torch.arange(i, min(i + size, len(self)))) for i in range(0, len(self), size)]

    def endpoints(self, episodes: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Episodes' (E,) first and last frames as a (previous, current) observation ("features" or "pixels"
        (E, 2, ...)), their instructions' goal input and their task ids."""
        if self.images is None or self.episode_ends is None or self.episode_task is None:
            raise ValueError("these frames hold no images or episode ends (pixel models only).")
        assert self.goal_table is not None  # pixel models always take instructions
        task = self.episode_task[episodes]
        key = "features" if self.images_are_features else "pixels"
        return {key: self.images[self.episode_ends[episodes]]}, self.goal_table[task], task
