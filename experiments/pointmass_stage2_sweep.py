"""Stage 2 sample efficiency on PointMass: which of the settings the paper leaves open reach the demo's
target (>= 99% true success at <= 1.15x the straight line) in the fewest env steps?

    python experiments/pointmass_stage2_sweep.py --sft-run runs/demo/sft --out runs/sweep-stage2 \
        --seed 0 --iterations 64 --eval-every 8 --variants n16-envs8-cap100-lr1e-4

Every variant starts from the same Stage 1 run (its policy and frozen reward model) and keeps the
algorithm as it is (on-policy, N x B samples per iteration, each used once); a variant changes only
`ImproveConfig` fields, named in VARIANTS (the Stage 1 run fixes the Gaussian's scale floor). Each is
evaluated every `eval_every` iterations on the same 500 seeded episodes, so the table shows the env steps
at which it first met the target. Writes OUT/results.json and prints a Markdown table.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import tyro

from siefm.checkpoint import load_checkpoint
from siefm.config import ImproveConfig, to_dict
from siefm.domains.pointmass.demonstrator import straight_line_policy
from siefm.domains.pointmass.env import PointMassConfig
from siefm.domains.pointmass.evaluate import evaluate
from siefm.eval.policy import efm_policy
from siefm.eval.summaries import machine_info
from siefm.improve.train import STATE_DIR, improve, resume_improve

VARIANTS: dict[str, dict] = {
    # N x B = 32 x 64 (the notebook's N), 16 robots: the learning rate
    "lr5e-5": {"lr": 5e-5, "num_updates": 32},
    "lr1e-4": {"lr": 1e-4, "num_updates": 32},
    "lr2e-4": {"lr": 2e-4, "num_updates": 32},
    # fewer robots (less overshoot of the buffer) and the episode cap
    "envs8-lr1e-4": {"lr": 1e-4, "num_envs": 8, "num_updates": 32},
    "envs8-lr1.25e-4": {"lr": 1.25e-4, "num_envs": 8, "num_updates": 32},
    "envs8-lr1.5e-4": {"lr": 1.5e-4, "num_envs": 8, "num_updates": 32},
    "envs4-lr1e-4": {"lr": 1e-4, "num_envs": 4, "num_updates": 32},
    "envs8-cap50-lr1e-4": {"lr": 1e-4, "num_envs": 8, "max_episode_steps": 50, "num_updates": 32},
    "envs8-cap70-lr1e-4": {"lr": 1e-4, "num_envs": 8, "max_episode_steps": 70, "num_updates": 32},
    "envs8-cap70-lr7.5e-5": {"lr": 7.5e-5, "num_envs": 8, "max_episode_steps": 70, "num_updates": 32},
    "envs8-cap100-lr1e-4": {"lr": 1e-4, "num_envs": 8, "max_episode_steps": 100, "num_updates": 32},
    "envs8-cap100-lr1.5e-4": {"lr": 1.5e-4, "num_envs": 8, "max_episode_steps": 100, "num_updates": 32},
    "envs8-cap100-lr2e-4": {"lr": 2e-4, "num_envs": 8, "max_episode_steps": 100, "num_updates": 32},
    # N = 16 (the paper's): half the policy's movement per buffer at the same rate
    "n16-envs8-cap100-lr1e-4": {"lr": 1e-4, "num_envs": 8, "max_episode_steps": 100, "num_updates": 16},
    "n16-envs8-cap100-lr2e-4": {"lr": 2e-4, "num_envs": 8, "max_episode_steps": 100, "num_updates": 16},
    "n16-envs8-cap100-lr1.25e-4": {"lr": 1.25e-4, "num_envs": 8, "max_episode_steps": 100, "num_updates": 16},
    # N = 8: the same movement per buffer as N = 16 at half the rate, twice the progress per sample
    "n8-envs8-cap100-lr2e-4": {"lr": 2e-4, "num_envs": 8, "max_episode_steps": 100, "num_updates": 8},
}
TARGET_SUCCESS, TARGET_RATIO = 0.99, 1.15


@dataclass(frozen=True)
class Args:
    sft_run: Path
    out: Path = Path("runs/sweep-stage2")
    variants: tuple[str, ...] = ("lr5e-5", "lr1e-4", "lr2e-4")
    iterations: int = 32
    eval_every: int = 4
    episodes: int = 500
    seed: int = 0


def run_variant(args: Args, name: str, straight_steps: float) -> dict:
    out = args.out / name
    shutil.rmtree(out, ignore_errors=True)
    base = ImproveConfig(save_practice=False, seed=args.seed, num_iterations=args.eval_every)
    config = dataclasses.replace(base, **VARIANTS[name])
    _, meta = load_checkpoint(args.sft_run / "checkpoints" / "policy")
    env_config = PointMassConfig(**meta["env"]["config"])
    curve = []
    for stop in range(args.eval_every, args.iterations + 1, args.eval_every):
        if stop == args.eval_every:
            improve(args.sft_run, out, config)
        else:  # the same run, continued: its saved state and config, with a later stop
            saved = json.loads((out / "config.json").read_text())
            saved["improve"]["num_iterations"] = stop
            (out / "config.json").write_text(json.dumps(saved))
            resume_improve(out)
        model, meta = load_checkpoint(out / STATE_DIR / "policy")
        result = evaluate(efm_policy(model, False, 12_345), env_config, args.episodes, 12_345)
        curve.append(
            {
                "iterations": stop,
                "env_steps": meta["improve"]["env_steps"],
                "wall_seconds": meta["improve"]["wall_seconds"],
                "success_rate": result.success_rate,
                "steps_vs_straight_line": result.mean_steps / straight_steps,
            }
        )
        print(name, curve[-1], flush=True)
    met = [
        c
        for c in curve
        if c["success_rate"] >= TARGET_SUCCESS and c["steps_vs_straight_line"] <= TARGET_RATIO
    ]
    return {"config": to_dict(config), "curve": curve, "first_at_target": met[0] if met else None}


def main(args: Args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    _, meta = load_checkpoint(args.sft_run / "checkpoints" / "policy")
    env_config = PointMassConfig(**meta["env"]["config"])
    straight = evaluate(straight_line_policy, env_config, args.episodes, 12_345).mean_steps
    results = {"sft_run": str(args.sft_run), "straight_line_steps": straight, "machine": machine_info()}
    results["variants"] = {name: run_variant(args, name, straight) for name in args.variants}
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print("| variant | first at target: env steps | success | x straight line | final success | final x |")
    print("|---|---|---|---|---|---|")
    for name, r in results["variants"].items():
        first, last = r["first_at_target"], r["curve"][-1]
        hit = (
            f"{first['env_steps']:,} | {first['success_rate']:.1%} | {first['steps_vs_straight_line']:.2f}"
            if first
            else "not reached | - | -"
        )
        row = f"| {name} | {hit} | {last['success_rate']:.1%} | {last['steps_vs_straight_line']:.2f} |"
        print(row)


if __name__ == "__main__":
    main(tyro.cli(Args))
