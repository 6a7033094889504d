"""Discretisation math: steps-to-go bins (docs/method.md, "Reward and success detector") and per-dimension
action tokens (RT-2 style).

Steps-to-go is predicted as a categorical over `num_bins` equal-width bins covering the integer labels
0..max_steps, i.e. the interval [-0.5, max_steps + 0.5]; the model's distance estimate is the expectation over
bin centres, d(o, g) = sum_k p_k c_k. Labels beyond `max_steps` fall in the last bin. With
num_bins = max_steps + 1 every step has its own class (centres 0, 1, 2, ...). The published PointMass
notebook used the raw step count as the class index of its 50 bins; here the step count is binned properly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class UniformBins:
    """`num_bins` equal-width bins over [low, high]; values outside are clamped to the end bins."""

    num_bins: int
    low: float
    high: float

    def __post_init__(self) -> None:
        if self.num_bins < 2:
            raise ValueError(f"num_bins must be >= 2, got {self.num_bins}.")
        if not self.high > self.low:
            raise ValueError(f"bins need high > low, got low={self.low}, high={self.high}.")

    @property
    def width(self) -> float:
        return (self.high - self.low) / self.num_bins

    def edges(self) -> torch.Tensor:
        """(num_bins + 1,) bin edges."""
        return torch.linspace(self.low, self.high, self.num_bins + 1)

    def centres(self) -> torch.Tensor:
        """(num_bins,) bin centres: the value each class stands for."""
        return self.low + self.width * (torch.arange(self.num_bins, dtype=torch.float32) + 0.5)

    def to_index(self, values: torch.Tensor) -> torch.Tensor:
        """Bin index of each value (same shape, int64)."""
        index = torch.floor((values.float() - self.low) / self.width).long()
        return index.clamp(0, self.num_bins - 1)

    def expectation(self, logits: torch.Tensor) -> torch.Tensor:
        """Expected value under softmax(logits) over the last dim: (..., K) -> (...)."""
        return torch.softmax(logits, dim=-1) @ self.centres().to(logits.device, logits.dtype)


def steps_to_go_bins(num_bins: int, max_steps: float) -> UniformBins:
    """The steps-to-go classes: `num_bins` equal bins over the integer steps 0..max_steps."""
    return UniformBins(num_bins, -0.5, max_steps + 0.5)
