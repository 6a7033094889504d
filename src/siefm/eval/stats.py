"""Confidence intervals for success rates."""

from __future__ import annotations

import math

import numpy as np


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (well behaved at 0% and 100%)."""
    if trials <= 0:
        raise ValueError(f"trials must be > 0, got {trials}.")
    p = successes / trials
    denom = 1 + z**2 / trials
    centre = (p + z**2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denom
    # At 0 or n successes the exact bound is 0 or 1; computing it in floating point leaves a residue that
    # would put the estimate itself outside its interval.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def success_summary(success: np.ndarray, length: np.ndarray) -> dict[str, object]:
    """The results.json form of evaluated episodes (docs/method.md, "results.json"): the success rate with
    its Wilson 95% interval and the mean length (a failure counts the limit)."""
    wins, episodes = int(np.sum(success)), len(success)
    return {
        "success_rate": wins / episodes,
        "success_ci95": list(wilson_interval(wins, episodes)),
        "mean_steps": float(np.mean(length)),
        "episodes": episodes,
    }
