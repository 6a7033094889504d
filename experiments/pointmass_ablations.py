"""PointMass ablations of the choices in docs/method.md, on one seed and one shared dataset.

    python experiments/pointmass_ablations.py --out runs/ablate-pointmass

Variants (each changes one thing from the demo defaults):
- default: 141 steps-to-go classes, Gaussian head, Stage 2 lr 5e-5, detector-ended episodes;
- bins50: the notebook's nominal 50 steps-to-go bins over 0..140 (properly binned);
- tokenized: RT-2 style action tokens (21 per dimension) instead of the Gaussian head;
- lr3e-4: Stage 2 at the Stage 1 learning rate;
- true-success: practice episodes end on the simulator's success (the notebook's variant);
- budget131k: 56 iterations instead of 64, so Stage 2 uses about the notebook's 131K env steps.
Writes OUT/results.json (`env`, `optimal`, `machine` and one entry per variant) and prints a Markdown
table. Rerunning into the same OUT starts every variant afresh.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import tyro

from siefm.checkpoint import load_checkpoint
from siefm.config import to_dict
from siefm.data.dataset import read_dataset
from siefm.domains import REGISTRY
from siefm.domains.pointmass.collect import collect_demonstrations
from siefm.domains.pointmass.demo import DemoConfig
from siefm.domains.pointmass.demonstrator import straight_line_policy
from siefm.domains.pointmass.evaluate import evaluate
from siefm.eval.policy import efm_policy
from siefm.eval.summaries import machine_info
from siefm.improve.train import improve
from siefm.logging import read_metrics
from siefm.models.efm import EFM
from siefm.sft import train_sft

POINTMASS_ID = REGISTRY["pointmass"].env_id


@dataclass(frozen=True)
class Args:
    out: Path = Path("runs/ablate-pointmass")
    """Output directory."""
    config: DemoConfig = field(default_factory=DemoConfig)


def variants(base: DemoConfig) -> dict[str, DemoConfig]:
    sft, imp = base.sft, base.improve
    return {
        "default": base,
        "bins50": dataclasses.replace(
            base, sft=dataclasses.replace(sft, model=dataclasses.replace(sft.model, steps_to_go_bins=50))
        ),
        "tokenized": dataclasses.replace(
            base, sft=dataclasses.replace(sft, model=dataclasses.replace(sft.model, action_head="tokenized"))
        ),
        "lr3e-4": dataclasses.replace(base, improve=dataclasses.replace(imp, lr=3e-4)),
        "true-success": dataclasses.replace(base, improve=dataclasses.replace(imp, end_on_true_success=True)),
        "budget131k": dataclasses.replace(base, improve=dataclasses.replace(imp, num_iterations=56)),
    }


@torch.no_grad()
def gaussian_spread(model: EFM, states: np.ndarray, goals: np.ndarray) -> dict[str, float] | None:
    """Median scale and |mean| of a Gaussian policy in z-scored action units, on dataset states."""
    if model.config.action_head != "gaussian":
        return None
    dist = model.action_distribution({"state": torch.from_numpy(states)}, torch.from_numpy(goals))
    return {
        "median_scale": dist.normal.scale.median().item(),
        "median_abs_mean": dist.normal.loc.abs().median().item(),
    }


def main(args: Args) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for stale in [*args.out.glob("sft-*"), *args.out.glob("improve-*")]:  # runs of an earlier invocation
        shutil.rmtree(stale)
    dataset = collect_demonstrations(args.out / "dataset", args.config.collect, overwrite=True)
    demos = read_dataset(dataset)
    frames = demos.select_episodes(np.arange(min(200, demos.num_episodes)))
    states, goals = frames.columns["observation.state"], frames.columns["goal"]
    env_config = args.config.collect.env
    ev = args.config.eval
    episodes = ev.num_episodes(POINTMASS_ID)
    optimal = evaluate(straight_line_policy, env_config, episodes, ev.seed, ev.max_steps)
    sft_runs: dict[str, Path] = {}  # variants that share a Stage 1 config share its run
    results = {}
    for name, config in variants(args.config).items():
        key = json.dumps(dataclasses.asdict(config.sft), sort_keys=True)
        if key not in sft_runs:
            sft_runs[key] = train_sft(dataset, args.out / f"sft-{name}", config.sft)
        improved = improve(sft_runs[key], args.out / f"improve-{name}", config.improve)
        row = {}
        for stage, path in (("bc", sft_runs[key] / "checkpoints" / "policy"), ("improved", improved)):
            model, _ = load_checkpoint(path)
            row[stage] = evaluate(
                efm_policy(model, ev.deterministic, ev.seed), env_config, episodes, ev.seed, ev.max_steps
            ).summary()
            row[stage]["action_spread"] = gaussian_spread(model, states, goals)
        records = read_metrics(args.out / f"improve-{name}" / "metrics.jsonl")
        row["last_practice"] = {k: records[-1][k] for k in records[-1] if k.startswith("rollout/")}
        row["env_steps"] = records[-1]["improve/env_steps"]
        row["success_threshold"] = load_checkpoint(improved)[1]["success_threshold"]
        results[name] = row
    report = {
        "env": {"id": "siefm/PointMass-v0", "config": to_dict(env_config)},
        "optimal": optimal.summary(),
        "machine": machine_info(),
        "variants": results,
    }
    (args.out / "results.json").write_text(json.dumps(report, indent=2))
    print("| variant | Stage 1 success | Stage 1 steps | Stage 2 success | Stage 2 steps | s | env steps |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['bc']['success_rate']:.1%} | {r['bc']['mean_steps']:.1f} | "
            f"{r['improved']['success_rate']:.1%} | {r['improved']['mean_steps']:.1f} | "
            f"{r['success_threshold']:.2f} | {r['env_steps']:,} |"
        )


if __name__ == "__main__":
    main(tyro.cli(Args))
