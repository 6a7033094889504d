"""Pixel benchmark (issue 4): both stages from camera frames, and the reward-model pretraining ablation.

    siefm collect --env tabletop --out runs/data-20k --tabletop.num-episodes 20000   # ~3 min
    MUJOCO_GL=egl python benchmarks/pixels.py --dataset runs/data-20k --out runs/bench-pixels

Per seed, on the nested `--data-fraction` subset of the dataset:
- Stage 1 for each of the two `--arms` (encoder sets of siefm.models.build.ENCODER_PRESETS; by default
  (a) 'pretrained': EfficientNet-Lite0 + MiniLM, frozen, for `--policy-steps`, and (b) 'scratch': the
  scratch CNN + the word-token encoder, trained, for `--sft.steps`), otherwise the same settings. Each
  reward checkpoint has the lowest validation error of d (the tabletop default), reached early in both
  (by 4,000 steps, measured), so (b) is shorter; (a) runs longer for its policy, whose BC validation loss
  keeps falling long after;
- Stage 2 (block2block practice) from (a)'s Stage 1 policy, once with (a)'s reward model and once with
  (b)'s: the paper's ablation swaps only the reward model (docs/method.md, "Model settings per domain");
- block2block evaluation (`--episodes`, <= 200 steps, fixed seeds) of the Stage 1 policy and both Stage 2
  policies, and of the scripted oracle: `siefm eval`'s, written to RUN/eval-block2block/results.json.
`--shared-stage1` trains Stage 1 once, at the first seed, and the other seeds repeat only Stage 2 from it,
all evaluated on the same episodes (eval seed 12,345 + the first seed): the paper's comparison, at a third
of the Stage 1 cost. Without it each seed has its own Stage 1 and evaluation episodes (12,345 + seed).
Success against practice episodes comes from each Stage 2 run's metrics (the true success of the episodes
practised in each iteration). Writes OUT/results.json (with the DESIGN.md keys: `bc` = (a)'s Stage 1
policy, `improved` = Stage 2 with (a)'s reward model, `optimal` = oracle, for the first seed) and
OUT/ablation.png. Stage 1 runs, finished Stage 2 runs and evaluations already in OUT are reused, so an
interrupted benchmark can be rerun, and a run can be made by hand beside another job (`siefm improve
--sft-run OUT/seedK/sft-pretrained --policy OUT/seedK/sft-pretrained/checkpoints/policy
--out OUT/seedK/improve-reward-pretrained --improve.num-iterations 40 --improve.seed K`, `siefm eval
--checkpoint RUN/checkpoints/policy --out RUN/eval-block2block --eval.families block2block ...`); a reused
run must have the settings the benchmark asks for.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import tyro

from siefm.config import EvalConfig, ImproveConfig, ModelConfig, SFTConfig, from_dict, to_dict
from siefm.data.dataset import read_dataset
from siefm.domains.tabletop.demo import dataset_summary, episodes_per_family
from siefm.eval.report import evaluate_checkpoint
from siefm.eval.summaries import improve_and_summarise, machine_info, stage2_summary
from siefm.improve.train import POLICY_DIR
from siefm.models.build import ENCODER_PRESETS, with_encoders
from siefm.sft import train_sft

matplotlib.use("Agg")
import matplotlib.pyplot as plt


@dataclass(frozen=True)
class Args:
    dataset: Path
    """A tabletop dataset from `siefm collect --env tabletop` (the full dataset)."""
    out: Path = Path("runs/bench-pixels")
    data_fraction: float = 0.1
    seeds: tuple[int, ...] = (0,)
    sft: SFTConfig = field(
        default_factory=lambda: SFTConfig(
            model=ModelConfig(observation="pixels"), steps=6_000, batch_size=128, eval_every=500
        )
    )
    policy_steps: int = 12_000
    """Stage 1 steps of the pretrained run, whose policy checkpoint every Stage 2 run starts from."""
    improve: ImproveConfig = field(default_factory=lambda: ImproveConfig(num_iterations=40))
    episodes: int = 200
    """block2block evaluation episodes per policy."""
    arms: tuple[str, str] = ("pretrained", "scratch")
    """The reward models' encoder sets (ENCODER_PRESETS): (a), whose Stage 1 policy every Stage 2 starts
    from, and (b). 'random' is EfficientNet-Lite0 with random weights, frozen: the no-pretraining arm where
    the scratch CNN's raw frames do not fit in memory (128 x 128 on the 10% subset)."""
    shared_stage1: bool = False
    """Stage 1 once, at the first seed; every seed's Stage 2 starts from it (see the module docstring)."""


def stage1(args: Args, encoder: str, seed: int, **changes: int) -> Path:
    run = args.out / f"seed{seed}" / f"sft-{encoder}"
    if not (run / "sft_summary.json").exists():
        model = with_encoders(args.sft.model, encoder)
        config = dataclasses.replace(
            args.sft, model=model, data_fraction=args.data_fraction, seed=seed, **changes
        )
        train_sft(args.dataset, run, config)
    return run


def stage2(args: Args, reward_run: Path, policy: Path, name: str, seed: int) -> dict:
    out = args.out / f"seed{seed}" / name
    config = dataclasses.replace(args.improve, seed=seed)
    if (out / POLICY_DIR).exists():  # finished before (or by hand with the same settings): reused
        check_reused_stage2(out, reward_run, policy, config)
        return {**stage2_summary(out), "reused": True}
    return improve_and_summarise(reward_run, out, config, policy)


def check_reused_stage2(run: Path, reward_run: Path, policy: Path, config: ImproveConfig) -> None:
    """A finished Stage 2 run is reused only if it started from the same checkpoints with the settings asked
    for (those left at None are the domain defaults, recorded resolved), or it would change the results."""
    recorded = json.loads((run / "config.json").read_text())
    settings = from_dict(ImproveConfig, recorded["improve"])
    differing = [
        f.name
        for f in dataclasses.fields(ImproveConfig)
        if getattr(config, f.name) is not None and getattr(settings, f.name) != getattr(config, f.name)
    ]
    if recorded["sft_run"] != str(reward_run.resolve()):
        differing.append("sft_run")
    if recorded["policy"] != str(policy.resolve()):
        differing.append("policy")
    if differing:
        raise SystemExit(
            f"{run} ran with other Stage 2 settings ({', '.join(differing)}) than this benchmark asks for; "
            "delete it, or pass the same --improve options."
        )


def evaluation(args: Args, run: Path, seed: int, reward: Path) -> dict:
    """`siefm eval` of RUN's policy on block2block (with the oracle), reused from RUN/eval-block2block if it
    ran there with the same settings. `reward` supplies d for the videos."""
    config = EvalConfig(families=("block2block",), episodes=args.episodes, videos=2, seed=seed)
    out = run / "eval-block2block"
    if (out / "results.json").exists():
        results = json.loads((out / "results.json").read_text())
        asked = json.loads(json.dumps(to_dict(config)))
        recorded = results.get("eval", {})
        differing = [k for k in asked if k != "videos" and recorded.get(k) != asked[k]]  # videos: no figure
        if differing:
            raise SystemExit(f"{out} was evaluated with other settings ({', '.join(differing)}); delete it.")
    else:
        results = evaluate_checkpoint(run / "checkpoints" / "policy", out, config, reward)
    return results


def run_seed(args: Args, seed: int) -> dict:
    first = args.seeds[0] if args.shared_stage1 else seed
    steps = {args.arms[0]: args.policy_steps, args.arms[1]: args.sft.steps}
    runs = {arm: stage1(args, arm, first, steps=steps[arm]) for arm in args.arms}
    policy = runs[args.arms[0]] / "checkpoints" / "policy"
    result: dict = {
        f"sft_{arm}": {
            k: v
            for k, v in json.loads((run / "sft_summary.json").read_text()).items()
            if k != "val_episode_ids"
        }
        for arm, run in runs.items()
    }
    result["stage2"] = {
        f"reward_{arm}": stage2(args, run, policy, f"improve-reward-{arm}", seed) for arm, run in runs.items()
    }
    eval_seed = 12_345 + first
    reward = runs[args.arms[0]] / "checkpoints" / "reward"
    bc = evaluation(args, runs[args.arms[0]], eval_seed, reward)
    result["block2block"] = {"bc": bc["policy"], "optimal": bc["optimal"]}
    for arm in args.arms:
        run = args.out / f"seed{seed}" / f"improve-reward-{arm}"
        result["block2block"][f"reward_{arm}"] = evaluation(args, run, eval_seed, reward)["policy"]
    return result


def plot_ablation(per_seed: dict[int, dict], path: Path) -> None:
    """True success of practice episodes against practice episodes, per reward model and seed."""
    figure, axis = plt.subplots(figsize=(6, 4))
    for seed, result in per_seed.items():
        for colour, (name, run) in zip(("tab:blue", "tab:orange"), result["stage2"].items(), strict=True):
            label = f"{name.replace('reward_', '')} reward model" if seed == min(per_seed) else None
            curve = run["curve"]
            axis.plot(curve["practice_episodes"], curve["true_success"], color=colour, label=label)
    axis.set_xscale("log")  # an arm whose detector fires at once practises ~1,000 one-step episodes a round
    axis.set_xlabel("practice episodes")
    axis.set_ylabel("true success of practice episodes")
    axis.set_title("Stage 2 from pixels, block2block (same Stage 1 policy)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(args: Args) -> dict:
    unknown = set(args.arms) - set(ENCODER_PRESETS)
    if unknown or len(set(args.arms)) != 2:
        raise SystemExit(f"--arms takes two different encoder sets of {list(ENCODER_PRESETS)}.")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    dataset = read_dataset(args.dataset)
    results: dict = {
        "command": " ".join(["python", *sys.argv]),
        "args": json.loads(json.dumps(dataclasses.asdict(args), default=str)),
        "dataset": dataset_summary(dataset, args.dataset),
    }
    per_seed = {seed: run_seed(args, seed) for seed in args.seeds}
    results["seeds"] = {str(seed): result for seed, result in per_seed.items()}
    names = ("bc", *(f"reward_{arm}" for arm in args.arms), "optimal")
    rates = {name: [r["block2block"][name]["success_rate"] for r in per_seed.values()] for name in names}
    results["summary"] = {
        name: {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_seed": v} for name, v in rates.items()
    }
    block2block_demos = episodes_per_family(dataset)["block2block"]
    results["block2block_demos"] = block2block_demos
    first = per_seed[args.seeds[0]]
    results.update(
        bc=first["block2block"]["bc"],
        improved=first["block2block"][f"reward_{args.arms[0]}"],
        optimal=first["block2block"]["optimal"],
        improve=first["stage2"][f"reward_{args.arms[0]}"],
    )
    results["machine"] = machine_info()
    results["wall_seconds"] = time.perf_counter() - started
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    plot_ablation(per_seed, args.out / "ablation.png")
    return results


if __name__ == "__main__":
    out = main(tyro.cli(Args))
    for name, summary in out["summary"].items():
        print(f"{name:20s} block2block {summary['mean']:.1%} +- {summary['std']:.1%} {summary['per_seed']}")
