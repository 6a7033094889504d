"""Figures of a run: PointMass trajectories side by side, the Stage 2 learning curve, tabletop success per
family."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # headless: runs write PNGs, nothing opens a window
import matplotlib.pyplot as plt
import numpy as np


def plot_trajectories(
    panels: Sequence[tuple[str, list[np.ndarray], np.ndarray]], path: Path, radius: float
) -> Path:
    """One panel per (title, list of (T_i, 2) paths, (n, 2) goals); goals drawn with the success radius."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.4), squeeze=False)
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    for ax, (title, paths, goals) in zip(axes[0], panels, strict=True):
        for i, (xy, goal) in enumerate(zip(paths, goals, strict=True)):
            color = colors[i % 10]
            ax.plot(xy[:, 0], xy[:, 1], "-", color=color, lw=1.2, alpha=0.9)
            ax.plot(*xy[0], "o", color=color, ms=4)
            ax.add_patch(plt.Circle(goal, radius, color=color, fill=False, lw=1.0))
            ax.plot(*goal, "*", color=color, ms=9, mec="k", mew=0.4)
        ax.set_title(title, fontsize=10)
        ax.set_xlim(-1.6, 1.6)
        ax.set_ylim(-1.6, 1.6)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
    fig.suptitle("o start   * goal (circle: success radius)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_learning_curve(
    records: Sequence[dict[str, Any]],
    path: Path,
    reference_steps: float | None = None,
    reference_label: str = "straight-line controller",
) -> Path:
    """True and detected success and mean episode length of practice episodes against env steps."""
    rows = [r for r in records if "improve/env_steps" in r]
    steps = np.array([r["improve/env_steps"] for r in rows])
    fig, (ax_success, ax_length) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_success.plot(steps, [r["rollout/true_success"] for r in rows], label="true success (simulator)")
    ax_success.plot(
        steps, [r["rollout/detected_success"] for r in rows], "--", label="detected success (d <= s)"
    )
    ax_success.set_ylim(-0.02, 1.02)
    ax_success.set_ylabel("fraction of practice episodes")
    ax_length.plot(
        steps, [r["rollout/episode_length"] for r in rows], color="C2", label="practice episode length"
    )
    if reference_steps is not None:
        ax_length.axhline(reference_steps, color="k", ls=":", label=reference_label)
    ax_length.set_ylabel("steps")
    for ax in (ax_success, ax_length):
        ax.set_xlabel("env steps in Stage 2")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:g}k"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_family_success(results: dict[str, dict[str, Any]], path: Path) -> Path:
    """Grouped bars: true success per task family for each policy, with the 95% intervals as error bars.

    `results` maps a policy's label to its results.json entry (with `per_family`)."""
    families = list(next(iter(results.values()))["per_family"])
    width = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(2.0 + 1.6 * len(families), 3.8))
    for k, (label, entry) in enumerate(results.items()):
        rates = np.array([entry["per_family"][f]["success_rate"] for f in families])
        ci = np.array([entry["per_family"][f]["success_ci95"] for f in families])
        x = np.arange(len(families)) + (k - (len(results) - 1) / 2) * width
        ax.bar(x, rates, width, label=label, yerr=[rates - ci[:, 0], ci[:, 1] - rates], capsize=2)
    ax.set_xticks(np.arange(len(families)), [f.replace("block2", "block2\n") for f in families], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("true success")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_seed_success(
    rows: dict[str, dict[str, Any]], seeds: Sequence[int], path: Path, title: str = ""
) -> Path:
    """Bars of the mean success per policy over Stage 1 seeds, with each seed's figures joined by a line.

    `rows` maps a policy's label to {"per_seed": [one rate per seed in `seeds`], "mean": m}
    (benchmarks/tabletop_seeds.py). The lines show what a mean of three seeds hides: which seed sits where."""
    labels = list(rows)
    means = [rows[label]["mean"] for label in labels]
    fig, ax = plt.subplots(figsize=(2.2 + 1.3 * len(labels), 3.8))
    x = np.arange(len(labels))
    ax.bar(x, means, 0.6, color="C0", alpha=0.4)
    for i, seed in enumerate(seeds):
        values = [rows[label]["per_seed"][i] for label in labels]
        ax.plot(x, values, "o-", color=f"C{i + 1}", ms=5, lw=0.8, label=f"Stage 1 seed {seed}")
    for k, mean in enumerate(means):  # at the bar's foot, clear of the seeds' dots
        ax.text(k, 0.03, f"mean\n{mean:.1%}", ha="center", fontsize=8)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("true success")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
