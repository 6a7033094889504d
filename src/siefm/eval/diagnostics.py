"""Reward-model diagnostics on held-out demonstrations: is d(o, g) a trustworthy steps-to-go?

- voc: value-order correlation, the Spearman rank correlation of d with the true steps-to-go within each
  episode, averaged over episodes (1 = d falls monotonically towards the goal).
- steps_mae: mean absolute error of d against the true steps-to-go, in steps, over all frames.
- spearman: the same rank correlation pooled over all frames.
"""

from __future__ import annotations

import numpy as np
import torch

from siefm.data.dataset import EpisodeDataset
from siefm.models.efm import EFMBase
from siefm.sft import eval_batch_size, model_frames


def rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho (average ranks for ties); nan when either input is constant."""
    rx, ry = _ranks(np.asarray(x, np.float64)), _ranks(np.asarray(y, np.float64))
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]  # ties share their mean rank


@torch.no_grad()
def reward_model_diagnostics(
    model: EFMBase, dataset: EpisodeDataset, max_episodes: int = 500
) -> dict[str, float]:
    """voc, steps_mae and pooled spearman of `model` on (up to `max_episodes` of) `dataset`."""
    subset = dataset.select_episodes(np.arange(min(max_episodes, dataset.num_episodes)))
    frames = model_frames(model, subset)
    chunks = frames.chunks(eval_batch_size(model))
    d = np.concatenate([model.steps_to_go(c.observation(), c.goal_input()).numpy() for c in chunks])
    truth = frames.steps_to_go.numpy().astype(np.float64)
    per_episode = [rank_correlation(d[a:b], truth[a:b]) for a, b in subset.episode_bounds if b - a > 1]
    return {
        "voc": float(np.nanmean(per_episode)),
        "steps_mae": float(np.abs(d - truth).mean()),
        "spearman": rank_correlation(d, truth),
        "episodes": subset.num_episodes,
    }
