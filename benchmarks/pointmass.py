"""PointMass benchmark: the full recipe (`siefm demo pointmass` defaults) over several seeds.

    python benchmarks/pointmass.py --out runs/bench-pointmass --seeds 0 1 2

Each seed is one complete run (its own demonstrations, Stage 1, Stage 2 and evaluation, all seeded with
it). Writes `OUT/seed-K/results.json` per seed and `OUT/results.json`: the DESIGN.md keys pooled over
seeds (success rates and Wilson intervals over all evaluation episodes, other figures averaged), plus
`summary` (mean, std and per-seed values of the headline figures) and `runs` (every seed's results).
Prints a Markdown table for docs/pointmass.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tyro

from siefm.domains.pointmass.demo import DemoConfig, run_demo
from siefm.eval.stats import wilson_interval

HEADLINES = {
    "demonstrator success": ("demonstrator", "success_rate"),
    "demonstrator steps": ("demonstrator", "mean_steps"),
    "Stage 1 success": ("bc", "success_rate"),
    "Stage 1 steps": ("bc", "mean_steps"),
    "Stage 2 success": ("improved", "success_rate"),
    "Stage 2 steps": ("improved", "mean_steps"),
    "straight-line steps": ("optimal", "mean_steps"),
    "Stage 2 steps / straight-line": ("improved", "steps_vs_optimal"),
    "Stage 2 env steps": ("improve", "env_steps"),
    "Stage 2 env steps/s while collecting (median)": ("improve", "median_env_steps_per_second"),
    "Stage 1 optimizer steps/s": ("sft", "steps_per_second"),
    "practice true success, last 8 iterations": ("improve", "late_practice_true_success"),
    "practice detected success, last 8 iterations": ("improve", "late_practice_detected_success"),
    "detector precision (practice)": ("improve", "detector_precision"),
    "detector recall (practice)": ("improve", "detector_recall"),
    "success threshold s": ("improve", "success_threshold"),
    "reward model VOC": ("reward_model", "voc"),
    "reward model MAE (steps)": ("reward_model", "steps_mae"),
    "collect seconds": ("collect", "wall_seconds"),
    "Stage 1 seconds": ("sft", "wall_seconds"),
    "Stage 2 seconds": ("improve", "wall_seconds"),
    "whole demo seconds": ("total_wall_seconds", None),
}


@dataclass(frozen=True)
class Args:
    out: Path = Path("runs/bench-pointmass")
    """Benchmark directory."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """One full run per seed."""
    config: DemoConfig = field(default_factory=DemoConfig)


def seeded(config: DemoConfig, seed: int) -> DemoConfig:
    return DemoConfig(
        collect=dataclasses.replace(config.collect, seed=seed),
        sft=dataclasses.replace(config.sft, seed=seed),
        improve=dataclasses.replace(config.improve, seed=seed),
        eval=config.eval,  # the same evaluation episodes for every seed
    )


def headline(results: dict, key: str, sub: str | None) -> float:
    return float(results[key] if sub is None else results[key][sub])


def pooled(runs: list[dict]) -> dict:
    """The DESIGN.md results.json keys over all seeds: successes pooled, other numbers averaged."""
    result: dict = {"env": runs[0]["env"], "machine": runs[0]["machine"]}
    for key in ("dataset", "demonstrator", "bc", "improved", "optimal"):
        episodes = sum(r[key]["episodes"] for r in runs)
        successes = round(sum(r[key]["success_rate"] * r[key]["episodes"] for r in runs))
        result[key] = {
            "success_rate": successes / episodes,
            "success_ci95": list(wilson_interval(successes, episodes)),
            "mean_steps": float(np.mean([r[key]["mean_steps"] for r in runs])),
            "episodes": episodes,
        }
    for key in ("improve", "sft", "reward_model"):
        numeric = [k for k, v in runs[0][key].items() if isinstance(v, (int, float))]
        result[key] = {k: float(np.mean([r[key][k] for r in runs])) for k in numeric}
    return result


def main(args: Args) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runs = {seed: run_demo(args.out / f"seed-{seed}", seeded(args.config, seed)) for seed in args.seeds}
    summary = {}
    for name, (key, sub) in HEADLINES.items():
        values = np.array([headline(r, key, sub) for r in runs.values()])
        summary[name] = {"mean": float(values.mean()), "std": float(values.std()), "values": values.tolist()}
    report = {
        **pooled(list(runs.values())),
        "seeds": list(args.seeds),
        "summary": summary,
        "runs": {str(k): v for k, v in runs.items()},
    }
    (args.out / "results.json").write_text(json.dumps(report, indent=2))
    print("| quantity | mean | std | per seed |\n|---|---|---|---|")
    for name, s in summary.items():
        print(f"| {name} | {s['mean']:.4g} | {s['std']:.3g} | {', '.join(f'{v:.4g}' for v in s['values'])} |")


if __name__ == "__main__":
    main(tyro.cli(Args))
