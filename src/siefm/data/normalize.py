"""Normalisation statistics: computed once from the training data and saved inside every checkpoint."""

from __future__ import annotations

import numpy as np
import torch

# A feature that never varies (e.g. a fixed goal) would otherwise divide by zero when z-scored.
MIN_STD = 1e-6


def feature_stats(values: np.ndarray) -> dict[str, torch.Tensor]:
    """Per-dimension mean, std (floored at MIN_STD), min and max of a (F, k) array."""
    values = np.asarray(values, dtype=np.float64)
    return {
        "mean": torch.as_tensor(values.mean(0), dtype=torch.float32),
        "std": torch.as_tensor(np.maximum(values.std(0), MIN_STD), dtype=torch.float32),
        "min": torch.as_tensor(values.min(0), dtype=torch.float32),
        "max": torch.as_tensor(values.max(0), dtype=torch.float32),
    }
