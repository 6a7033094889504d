"""Relabelled goals for the steps-to-go objective (hindsight relabelling, which the paper allows).

A domain finds goals its demonstrations reached on the way to their own (`Domain.relabel`); Stage 1 trains
the steps-to-go head on them beside the demonstrations' own labels. They never train the policy: the
behaviour on the way was not aimed at the relabelled goal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RelabelledGoals:
    """Relabelled frames: each is a dataset frame (`frame`, an index into the dataset's rows) with a new
    instruction (`instruction`, an index into `instructions`) and its steps-to-go label."""

    frame: np.ndarray  # (H,) int64
    instruction: np.ndarray  # (H,) int64
    steps_to_go: np.ndarray  # (H,) int64
    instructions: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.frame)
