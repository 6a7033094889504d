"""Tabletop benchmark over Stage 1 seeds: the paper's sim figures are means of 3 seeds (docs/method.md,
"Published results").

Run `benchmarks/tabletop.py` once per Stage 1 seed (each seed draws its own nested subsets, split and
initialisation; the evaluation episodes are the same), then aggregate the block2block results:

    for K in 1 2; do
        python benchmarks/tabletop.py --dataset D --out runs/bench-det16-seed$K --sft.seed $K \
            --stage2-seeds 0 1 2
    done
    python benchmarks/tabletop_seeds.py --results runs/bench-tabletop-det16/results.json \
        runs/bench-det16-seed1/results.json runs/bench-det16-seed2/results.json --out OUT.json \
        --plot OUT.png

For each policy it reports the block2block success of every Stage 1 seed and their mean and standard
deviation. A Stage 2 mode's figure for one Stage 1 seed is the mean over its Stage 2 seeds, so every
Stage 1 seed weighs the same. The comparison the issue asks for, Stage 2 from 10% against Stage 1 on
80%, is also given seed by seed (the paired difference), since both come from the same Stage 1 seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from siefm.eval.plots import plot_seed_success


@dataclass(frozen=True)
class Args:
    results: tuple[Path, ...]
    """results.json of `benchmarks/tabletop.py`, one per Stage 1 seed."""
    out: Path | None = None
    """Write the aggregate here as JSON."""
    plot: Path | None = None
    """Draw the block2block success per policy here (PNG): the means as bars, each Stage 1 seed as a line."""
    title: str = ""
    """The plot's title."""


# The plot's order and labels: from Stage 1 on 10%, through practice, to Stage 1 on 80% and the oracle.
PLOT_LABELS = {
    "bc10": "Stage 1\n10%",
    "stage2_episodic": "Stage 2 from 10%\nepisodic",
    "stage2_reset-free": "Stage 2 from 10%\nreset-free",
    "bc80": "Stage 1\n80%",
    "optimal": "oracle",
}


def block2block_by_policy(results: dict) -> dict[str, float]:
    """One benchmark run's block2block success per policy; a Stage 2 mode is the mean over its seeds."""
    rates = {name: results["block2block"][name]["success_rate"] for name in ("bc10", "bc80", "optimal")}
    for mode, spread in results["stage2_seed_spread"].items():
        rates[f"stage2_{mode}"] = float(np.mean(spread["success_rate"]))
    return rates


def mean_and_sd(values: list[float]) -> dict:
    # Sample standard deviation (ddof=1), the spread of the Stage 1 seeds; 0 for a single seed.
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"per_seed": values, "mean": float(np.mean(values)), "sd": sd}


def aggregate(runs: list[dict]) -> dict:
    per_run = [block2block_by_policy(run) for run in runs]
    policies = [name for name in per_run[0] if all(name in rates for rates in per_run)]
    summary = {
        "stage1_seeds": [run["args"]["sft"]["seed"] for run in runs],
        "block2block": {name: mean_and_sd([rates[name] for rates in per_run]) for name in policies},
    }
    summary["stage2_minus_bc80"] = {
        name: mean_and_sd([rates[name] - rates["bc80"] for rates in per_run])
        for name in policies
        if name.startswith("stage2_")
    }
    return summary


def main(args: Args) -> dict:
    runs = [json.loads(path.read_text()) for path in args.results]
    for path, run in zip(args.results, runs, strict=True):
        if "stage2_seed_spread" not in run:
            raise SystemExit(f"{path}: not a results.json of benchmarks/tabletop.py (no stage2_seed_spread).")
    summary = aggregate(runs)
    summary["results"] = [str(path) for path in args.results]
    if args.out is not None:
        args.out.write_text(json.dumps(summary, indent=2))
    if args.plot is not None:
        rates = summary["block2block"]
        rows = {label: rates[name] for name, label in PLOT_LABELS.items() if name in rates}
        plot_seed_success(rows, summary["stage1_seeds"], args.plot, args.title)
    return summary


if __name__ == "__main__":
    out = main(tyro.cli(Args))
    print(f"Stage 1 seeds {out['stage1_seeds']}, block2block success:")
    for name, row in out["block2block"].items():
        seeds = " / ".join(f"{v:.1%}" for v in row["per_seed"])
        print(f"  {name:22s} {seeds:28s} mean {row['mean']:.1%} +- {row['sd']:.1%}")
    for name, row in out["stage2_minus_bc80"].items():
        print(f"  {name} - bc80: mean {row['mean']:+.1%} +- {row['sd']:.1%}")
