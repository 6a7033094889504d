"""Does stopping Stage 1 on a validation plateau give checkpoints as good as the notebook's fixed 32,768
steps? One dataset, one seed, Stage 1 run both ways (the same batches up to the stop).

    python experiments/stage1_plateau.py --dataset runs/demo-pointmass/dataset --out runs/stage1-plateau

For each run: optimizer steps and wall time; the policy's true success and mean steps on 500 seeded
evaluation episodes; the reward model's VOC and d's mean error on the validation episodes; the detector's
calibrated threshold, precision and recall on validation frames. Writes OUT/results.json and prints a
Markdown table (docs/pointmass.md, "Stage 1 that stops when it has learnt").
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from siefm.checkpoint import load_checkpoint
from siefm.config import SFTConfig
from siefm.data.dataset import read_dataset
from siefm.domains.pointmass.env import PointMassConfig
from siefm.domains.pointmass.evaluate import evaluate
from siefm.eval.diagnostics import reward_model_diagnostics
from siefm.eval.policy import efm_policy
from siefm.eval.summaries import machine_info
from siefm.sft import train_sft
from siefm.threads import configure_threads


@dataclass(frozen=True)
class Args:
    dataset: Path
    out: Path = Path("runs/stage1-plateau")
    seed: int = 0
    episodes: int = 500


def stage1_quality(run: Path, dataset_dir: Path, episodes: int) -> dict:
    summary = json.loads((run / "sft_summary.json").read_text())
    policy, meta = load_checkpoint(run / "checkpoints" / "policy")
    reward, reward_meta = load_checkpoint(run / "checkpoints" / "reward")
    env = PointMassConfig(**meta["env"]["config"])
    result = evaluate(efm_policy(policy, False, 12_345), env, episodes, 12_345)
    val = read_dataset(dataset_dir).select_episodes(np.array(summary["val_episode_ids"]))
    calibration = reward_meta["calibration"]
    return {
        "steps": summary["steps"],
        "wall_seconds": summary["wall_seconds"],
        "policy_step": meta["step"],
        "reward_step": reward_meta["step"],
        "bc_success": result.success_rate,
        "bc_success_ci95": list(result.success_ci95),
        "bc_mean_steps": result.mean_steps,
        **{f"reward_{k}": v for k, v in reward_model_diagnostics(reward, val).items()},
        "threshold": calibration["threshold"],
        "val_precision": calibration["precision"],
        "val_recall": calibration["recall"],
        "best": summary["best"],
    }


def main(args: Args) -> None:
    configure_threads()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"dataset": str(args.dataset), "seed": args.seed, "machine": machine_info()}
    for name, patience in (("plateau rule (patience 4, 1%)", 4), ("fixed 32,768 steps", 0)):
        run = args.out / ("plateau" if patience else "fixed")
        shutil.rmtree(run, ignore_errors=True)
        train_sft(args.dataset, run, SFTConfig(patience=patience, seed=args.seed))
        results[name] = stage1_quality(run, args.dataset, args.episodes)
        print(name, results[name], flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print("| Stage 1 | steps | wall s | BC success | BC steps | VOC | d error | s | precision / recall |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ("plateau rule (patience 4, 1%)", "fixed 32,768 steps"):
        r = results[name]
        print(
            f"| {name} | {r['steps']:,} | {r['wall_seconds']:.0f} | {r['bc_success']:.1%} | "
            f"{r['bc_mean_steps']:.1f} | {r['reward_voc']:.3f} | {r['reward_steps_mae']:.2f} | "
            f"{r['threshold']:.2f} | {r['val_precision']:.2f} / {r['val_recall']:.2f} |"
        )


if __name__ == "__main__":
    main(tyro.cli(Args))
