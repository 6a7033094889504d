"""Which block the instruction names: how often Stage 1's object selector locks onto the wrong blocks.

    siefm collect --env tabletop --out runs/data-det16-7k --tabletop.num-episodes 7000 \
        --tabletop.max-detours 16
    python experiments/tabletop_selector.py --dataset runs/data-det16-7k --out runs/bench-selector \
        --seeds 0 1 2 3 4 5 6 7 --variants dot2 dot4 cosine2

Trains short Stage 1 runs (state observations, hindsight labels, the tabletop defaults otherwise) for each
selector variant and seed, two at a time (one per core), and checks each run's policy checkpoint with
`siefm.domains.tabletop.grounding.selector_grounding` on 300 block2block instructions: the share of
instructions whose moved and whose reference block a query picks. A run counts as failed when either share
is below 0.9 (healthy runs reach 1.00 on both; failed ones 0-0.6). 7,000 attempts give about as many
episodes as the 10% subset of the 68,000-attempt benchmark dataset, where the failures were first seen.
Finished runs are reused. Writes OUT/selector.json.

The selector variants are `ModelConfig.arms` fields now, no longer on the command line this script drives:
run it at commit 547f1ba (experiments/README.md).
"""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from siefm.checkpoint import load_checkpoint
from siefm.domains.tabletop.grounding import is_grounded, selector_grounding

VARIANTS = {  # name -> (selector_keys, selector_queries, selector_scores)
    "dot2": ("slots", 2, "dot"),
    "dot4": ("slots", 4, "dot"),
    "dot6": ("slots", 6, "dot"),
    "cosine2": ("slots", 2, "cosine"),
    "cosine4": ("slots", 4, "cosine"),
    "names2": ("names", 2, "dot"),
    "names4": ("names", 4, "dot"),
}


@dataclass(frozen=True)
class Args:
    dataset: Path
    out: Path
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    variants: tuple[str, ...] = ("dot2", "names2")
    steps: int = 4000
    data_fraction: float = 1.0
    hindsight: str = "block2block"
    workers: int = 2


def stage1(args: Args, variant: str, seed: int) -> Path:
    run = args.out / variant / f"seed{seed}"
    if (run / "sft_summary.json").exists():
        return run
    keys, queries, scores = VARIANTS[variant]
    command = [
        "siefm", "sft", "--dataset", str(args.dataset), "--out", str(run),
        "--sft.steps", str(args.steps), "--sft.eval-every", "1000", "--sft.seed", str(seed),
        "--sft.data-fraction", str(args.data_fraction), "--sft.hindsight", args.hindsight,
        "--sft.model.selector-keys", keys, "--sft.model.selector-queries", str(queries),
        "--sft.model.selector-scores", scores,
    ]  # fmt: skip
    run.parent.mkdir(parents=True, exist_ok=True)
    with open(run.parent / f"seed{seed}.log", "w") as log:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    return run


def check(run: Path) -> dict:
    model, _ = load_checkpoint(run / "checkpoints" / "policy")
    summary = json.loads((run / "sft_summary.json").read_text())
    grounding = selector_grounding(model)
    return {
        **grounding,
        "failed": not is_grounded(grounding),
        "val_bc_loss": summary["best"]["policy"],
        "val_reward_metric": summary["best"]["reward"],
    }


def main(args: Args) -> dict:
    raise SystemExit(
        "the selector variants left the command line (ModelConfig.arms); run this script at commit 547f1ba."
    )
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    jobs = [(v, s) for v in args.variants for s in args.seeds]
    with ThreadPoolExecutor(args.workers) as pool:
        runs = list(pool.map(lambda job: stage1(args, *job), jobs))
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "variants": {}}
    for (variant, seed), run in zip(jobs, runs, strict=True):
        results["variants"].setdefault(variant, {"seeds": {}})["seeds"][seed] = check(run)
    for variant, entry in results["variants"].items():
        seeds = entry["seeds"].values()
        entry["failed"] = sum(r["failed"] for r in seeds)
        entry["median_val_bc_loss"] = float(np.median([r["val_bc_loss"] for r in seeds]))
        print(
            f"{variant:8s} failed {entry['failed']}/{len(seeds)}  "
            f"median val BC {entry['median_val_bc_loss']:.3f}  "
            + "  ".join(f"s{s}:{r['moved']:.2f}/{r['reference']:.2f}" for s, r in entry["seeds"].items())
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "selector.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
