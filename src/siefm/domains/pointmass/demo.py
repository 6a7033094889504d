"""The whole recipe on PointMass in one call: collect -> Stage 1 -> Stage 2 -> eval -> report.

`run_demo` is what `siefm demo pointmass` and `benchmarks/pointmass.py` call. It writes `results.json`
(docs/method.md, "results.json"), `trajectories.png` and `learning_curve.png` into the output directory.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from siefm.checkpoint import load_checkpoint
from siefm.config import EvalConfig, ImproveConfig, SFTConfig, to_dict
from siefm.data.dataset import read_dataset
from siefm.domains import REGISTRY
from siefm.domains.pointmass.collect import CollectConfig, collect_demonstrations
from siefm.domains.pointmass.demonstrator import simulate_demonstrator, straight_line_policy
from siefm.domains.pointmass.env import PointMassConfig
from siefm.domains.pointmass.evaluate import EvalResult, evaluate
from siefm.eval.diagnostics import reward_model_diagnostics
from siefm.eval.plots import plot_learning_curve, plot_trajectories
from siefm.eval.policy import efm_policy
from siefm.eval.stats import wilson_interval
from siefm.eval.summaries import (
    demonstrations_summary,
    machine_info,
    pooled_detector_scores,
    practice_summary,
    run_demo_stages,
)
from siefm.logging import read_metrics

log = logging.getLogger("siefm")

NUM_PLOTTED = 10
ENV_ID = REGISTRY["pointmass"].env_id


# Stage 2 settings chosen by the sample-efficiency sweep (docs/pointmass.md, "Stage 2 in half the
# notebook's samples"): 2.5x the default rate, 8 robots (a smaller overshoot of the buffer), a 100-step
# cap and 60 iterations of N x B = 16 x 64: about 63K env steps where the notebook plays 131K.
DEMO_IMPROVE = ImproveConfig(lr=1.25e-4, num_envs=8, max_episode_steps=100, num_iterations=60)


@dataclass(frozen=True)
class DemoConfig:
    """Settings of every stage of the demo; the defaults finish in about 3 minutes on 2 CPU cores."""

    collect: CollectConfig = field(default_factory=CollectConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    improve: ImproveConfig = field(default_factory=lambda: DEMO_IMPROVE)
    eval: EvalConfig = field(default_factory=EvalConfig)


def run_demo(out: Path, config: DemoConfig) -> dict[str, Any]:
    """Runs every stage into `out/{dataset,sft,improve}` and writes the report files into `out`."""
    out, start = Path(out), time.perf_counter()
    dataset_dir, sft_run, improved, collect_seconds = run_demo_stages(
        out, config, lambda path: collect_demonstrations(path, config.collect, overwrite=True)
    )
    results = report(out, dataset_dir, sft_run, improved, config)
    results["collect"] = {"wall_seconds": collect_seconds}
    results["total_wall_seconds"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def report(out: Path, dataset_dir: Path, sft_run: Path, improved: Path, config: DemoConfig) -> dict[str, Any]:
    """Evaluates every policy on the same seeds, diagnoses the reward model, draws the figures."""
    env_config = config.collect.env
    bc_model, _ = load_checkpoint(sft_run / "checkpoints" / "policy")
    reward_model, reward_meta = load_checkpoint(sft_run / "checkpoints" / "reward")
    improved_model, improved_meta = load_checkpoint(improved)
    ev = config.eval
    episodes = ev.num_episodes(ENV_ID)
    results_by_name: dict[str, EvalResult] = {}
    for name, policy in (
        ("bc", efm_policy(bc_model, ev.deterministic, ev.seed)),
        ("improved", efm_policy(improved_model, ev.deterministic, ev.seed)),
        ("optimal", straight_line_policy),
    ):
        results_by_name[name] = evaluate(policy, env_config, episodes, ev.seed, ev.max_steps)
    demonstrator = evaluate_demonstrator(env_config, config.collect, ev)
    dataset = read_dataset(dataset_dir)
    records = read_metrics(out / "improve" / "metrics.jsonl")
    sft_summary = json.loads((sft_run / "sft_summary.json").read_text())
    val_ids = np.array(sft_summary["val_episode_ids"])
    results = {
        "env": {"id": ENV_ID, "config": to_dict(env_config)},
        "dataset": demonstrations_summary(dataset),
        "demonstrator": demonstrator.summary(),
        **{name: result.summary() for name, result in results_by_name.items()},
        "improve": {
            **improved_meta["improve"],
            **pooled_detector_scores(records),
            **practice_summary(records),
            "success_threshold": improved_meta["success_threshold"],
        },
        "sft": {
            "wall_seconds": sft_summary["wall_seconds"],
            "steps": sft_summary["steps"],
            "steps_per_second": read_metrics(sft_run / "metrics.jsonl")[-1]["time/sft_steps_per_second"],
        },
        "reward_model": {
            **reward_model_diagnostics(reward_model, dataset.select_episodes(val_ids)),
            "success_threshold": reward_meta["success_threshold"],
            "calibration": reward_meta["calibration"],
            "step": reward_meta["step"],
        },
        "machine": machine_info(),
    }
    results["optimal"]["name"] = "straight line"
    results["improved"]["steps_vs_optimal"] = (
        results["improved"]["mean_steps"] / results["optimal"]["mean_steps"]
    )
    draw_figures(out, dataset, results_by_name, records, env_config)
    return results


def evaluate_demonstrator(env_config: PointMassConfig, collect: CollectConfig, ev: EvalConfig) -> EvalResult:
    """The waypoint demonstrator on the evaluation seeds (same starts and goals as the policies)."""
    max_steps = ev.max_steps or env_config.max_steps
    episodes = ev.num_episodes(ENV_ID)
    positions, length, goals = simulate_demonstrator(
        episodes, env_config, ev.seed, collect.num_waypoints, max_steps
    )
    success = length >= 0
    return EvalResult(
        success_rate=float(success.mean()),
        success_ci95=wilson_interval(int(success.sum()), episodes),
        mean_steps=float(np.where(success, length, max_steps).mean()),
        episodes=episodes,
        positions=positions,
        goals=goals,
    )


def draw_figures(
    out: Path,
    dataset: Any,
    results: dict[str, EvalResult],
    records: list[dict[str, Any]],
    env_config: PointMassConfig,
) -> None:
    shown = range(min(NUM_PLOTTED, dataset.num_episodes))
    demos = [dataset.episode(i)["observation.state"][:, :2] for i in shown]
    demo_goals = np.stack([dataset.episode(i)["goal"][0] for i in shown])
    panels = [
        (f"dataset (demonstrator)\n{len(demos)} of {dataset.num_episodes} episodes", demos, demo_goals),
        results["bc"].panel("Stage 1 (BC)", NUM_PLOTTED),
        results["improved"].panel("Stage 2 (self-improved)", NUM_PLOTTED),
    ]
    plot_trajectories(panels, out / "trajectories.png", env_config.success_radius)
    plot_learning_curve(records, out / "learning_curve.png", results["optimal"].mean_steps)
