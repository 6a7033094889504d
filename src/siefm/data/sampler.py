"""Stage 1 samples (o_t, a_t, g, steps_to_go) from a dataset, the episode split and the label math.

Labels (PAPER.md §2): in a goal-per-episode dataset the goal is reached at the episode's last frame t',
so frame t is labelled steps_to_go = t' - t. An episode of T actions has T + 1 frames; the last one holds
the final observation (label 0) and no action, so it teaches the steps-to-go head what success looks like
and is masked out of the BC loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from siefm.data.dataset import EpisodeDataset, subset_episode_ids
from siefm.models.text import WordTokenizer


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


@dataclass
class Frames:
    """All frames of a dataset as tensors, ready for random minibatches."""

    state: torch.Tensor  # (F, S)
    goal: torch.Tensor  # (F, G) float goal vectors, or (F, max_words) int64 instruction word ids
    action: torch.Tensor  # (F, A)
    steps_to_go: torch.Tensor  # (F,) int64
    has_action: torch.Tensor  # (F,) bool: False on an episode's final frame

    @classmethod
    def from_dataset(cls, dataset: EpisodeDataset, tokenizer: WordTokenizer | None = None) -> Frames:
        """Frames with the `goal` column as goals, or, given a tokenizer, each episode's instruction (its
        LeRobot task) as word ids."""
        columns = dataset.columns
        if tokenizer is not None:
            goal = tokenizer.encode(dataset.tasks)[torch.as_tensor(columns["task_index"], dtype=torch.int64)]
        else:
            goal = torch.as_tensor(columns["goal"], dtype=torch.float32)
        return cls(
            state=torch.as_tensor(columns["observation.state"], dtype=torch.float32),
            goal=goal,
            action=torch.as_tensor(columns["action"], dtype=torch.float32),
            steps_to_go=torch.as_tensor(columns["steps_to_go"], dtype=torch.int64),
            has_action=~torch.as_tensor(columns["is_terminal"], dtype=torch.bool),
        )

    def __len__(self) -> int:
        return self.state.shape[0]

    def batch(self, index: torch.Tensor) -> Frames:
        return Frames(*(getattr(self, name)[index] for name in self.__dataclass_fields__))

    def sample(self, batch_size: int, generator: torch.Generator) -> Frames:
        """A batch of frames drawn uniformly (with replacement across batches)."""
        return self.batch(torch.randint(len(self), (batch_size,), generator=generator))

    def chunks(self, size: int) -> list[Frames]:
        """Consecutive batches covering every frame once (for validation)."""
        return [self.batch(torch.arange(i, min(i + size, len(self)))) for i in range(0, len(self), size)]
