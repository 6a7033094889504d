"""The learned reward and success detector of Stage 2 (docs/method.md, "Reward and success detector"), from a
frozen Stage 1 model.

d(o, g) is the expected steps-to-go; the reward of a transition is r_t = d(o_t, g) - d(o_{t+1}, g) and
the detector declares success when d(o, g) <= s. The threshold s is not published: it is calibrated on
held-out demonstrations (`calibrate_success_threshold`) and stored in the reward checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from siefm.models.efm import EFMBase


def rewards_from_distances(d: torch.Tensor) -> torch.Tensor:
    """r_t = d_t - d_{t+1} along the last axis: (..., T + 1) distances -> (..., T) rewards."""
    return d[..., :-1] - d[..., 1:]


def detect_success(d: torch.Tensor, threshold: float) -> torch.Tensor:
    """The success detector: d <= s (inclusive, so s = 0 still fires on a model certain of 0 steps)."""
    return d <= threshold


class RewardModel:
    """A frozen Stage 1 EFM used only for d(o, g): its parameters never receive gradients."""

    def __init__(self, model: EFMBase, success_threshold: float):
        if success_threshold < 0:
            raise ValueError(f"success_threshold must be >= 0 steps, got {success_threshold}.")
        self.model = model.eval()
        self.model.requires_grad_(False)
        self.success_threshold = success_threshold

    @torch.no_grad()
    def distance(self, obs: Mapping[str, torch.Tensor], goal: torch.Tensor) -> torch.Tensor:
        """d(o, g) (B,)."""
        return self.model.steps_to_go(obs, goal)

    def is_success(self, d: torch.Tensor) -> torch.Tensor:
        return detect_success(d, self.success_threshold)


@dataclass(frozen=True)
class Calibration:
    threshold: float
    precision: float
    recall: float
    frames: int
    positives: int


def precision_recall(true_positives: int, false_positives: int, false_negatives: int) -> tuple[float, float]:
    """Precision P(actual | detected) and recall P(detected | actual) from counts; nan when undefined."""
    detected, actual = true_positives + false_positives, true_positives + false_negatives
    precision = true_positives / detected if detected else float("nan")
    recall = true_positives / actual if actual else float("nan")
    return precision, recall


def detector_precision_recall(detected: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """Precision and recall of boolean detections against boolean truth (same shape)."""
    detected, actual = np.asarray(detected, bool), np.asarray(actual, bool)
    return precision_recall(
        int((detected & actual).sum()), int((detected & ~actual).sum()), int((~detected & actual).sum())
    )


def calibrate_success_threshold(
    d: np.ndarray, is_success: np.ndarray, max_candidates: int = 512
) -> Calibration:
    """Chooses s maximising the F1 score of [d <= s] against true per-frame success on held-out frames.

    Choice: F1 weighs a detector that fires early (ends practice short of the goal) and one that never fires
    (practice runs to the time limit) alike. Candidates are midpoints between quantiles of d.
    """
    d, is_success = np.asarray(d, np.float64), np.asarray(is_success, bool)
    if not is_success.any():
        raise ValueError("cannot calibrate the success threshold: no held-out frame is a true success.")
    values = np.unique(np.quantile(d, np.linspace(0, 1, max_candidates)))
    candidates = np.concatenate([(values[:-1] + values[1:]) / 2, values[-1:]])
    best, best_f1 = None, -1.0
    for s in candidates:
        precision, recall = detector_precision_recall(d <= s, is_success)
        if np.isnan(precision):
            continue
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        if f1 > best_f1:
            best, best_f1 = Calibration(float(s), precision, recall, int(d.size), int(is_success.sum())), f1
    assert best is not None  # the largest candidate fires on every frame, so precision is defined
    return best
