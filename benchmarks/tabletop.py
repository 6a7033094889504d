"""Tabletop benchmark (issue 3): the paper's LanguageTable shape on block2block, from state observations.

    siefm collect --env tabletop --out data/tabletop-120k --tabletop.num-episodes 120000   # ~27 min
    python benchmarks/tabletop.py --dataset data/tabletop-120k --out runs/bench-tabletop

With sub-optimal demonstrations (the oracle with 0-16 random detours first; docs/tabletop.md has the
results of both collections):

    siefm collect --env tabletop --out data/tabletop-detours16-68k --tabletop.num-episodes 68000 \
        --tabletop.max-detours 16                                                           # ~29 min
    python benchmarks/tabletop.py --dataset data/tabletop-detours16-68k --out runs/bench-tabletop-det16 \
        --stage2-seeds 0 1 2

What it runs, all on the same dataset and seeds:
- Stage 1 on the nested 10% and 80% subsets (same step count and model);
- Stage 2 from the 10% run, practising block2block in episodic and in reset-free mode, each capped at
  `--practice-fraction` of the dataset's block2block demonstrations (the paper's budget is ~1-2%);
- the novel-object experiment: the episodic Stage 2 policy practises "push the banana to ..." on the banana
  board (rewards from the same frozen Stage 1 reward model, which never saw a banana);
- evaluation of every policy and the scripted oracle with the reference protocol (5 families x 50 episodes,
  <= 200 steps), a larger block2block evaluation, and banana evaluations before and after practice.
Writes OUT/results.json (also the DESIGN.md keys: `bc` = 10% Stage 1, `improved` = episodic Stage 2,
`optimal` = oracle) and OUT/success_by_family.png.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tyro

from siefm.checkpoint import load_checkpoint
from siefm.config import EvalConfig, ImproveConfig, SFTConfig, from_dict
from siefm.data.dataset import read_dataset
from siefm.domains import REGISTRY
from siefm.domains.tabletop.demo import dataset_summary, episodes_per_family
from siefm.domains.tabletop.evaluate import evaluate_tabletop_policies, tabletop_summaries
from siefm.eval.plots import plot_family_success, plot_learning_curve
from siefm.eval.summaries import improve_and_summarise, machine_info
from siefm.improve.reward import RewardModel
from siefm.logging import read_metrics
from siefm.sft import train_sft

TABLETOP_ID = REGISTRY["tabletop"].env_id


@dataclass(frozen=True)
class Args:
    dataset: Path
    """A tabletop dataset from `siefm collect --env tabletop` (the full dataset)."""
    out: Path = Path("runs/bench-tabletop")
    small_fraction: float = 0.1
    large_fraction: float = 0.8
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(steps=30_000, eval_every=1_000))
    improve: ImproveConfig = field(default_factory=lambda: ImproveConfig(num_iterations=1_000))
    practice_fraction: float = 0.018
    """Practice budget as a fraction of the dataset's block2block demonstrations; the last iteration may
    pass it by its own episodes, so 1.8% keeps the total within the issue's 2%."""
    modes: tuple[str, ...] = ("episodic", "reset-free")
    stage2_seeds: tuple[int, ...] = (0,)
    """Stage 2 seeds (practice starts, the fleet's action sampling), each run in every mode from the same
    Stage 1 run and evaluated on block2block; the protocol, the figures and the banana run use the first."""
    banana_iterations: int = 30
    eval: EvalConfig = field(default_factory=EvalConfig)
    block2block_episodes: int = 200
    """Episodes of the separate, larger block2block evaluation."""
    banana_episodes: int = 100


def run_stage2(
    args: Args, sft_run: Path, name: str, config: ImproveConfig, policy: Path | None = None
) -> dict:
    return improve_and_summarise(sft_run, args.out / name, config, policy)


def check_reused_stage1(run: Path, config: SFTConfig) -> None:
    """A finished Stage 1 run in OUT is reused (so the two runs can be trained side by side first), but
    only if it was trained with the configuration this benchmark asks for: a run left over from another
    configuration (say, the reward checkpoint picked by another rule) would silently change the results."""
    recorded = from_dict(SFTConfig, json.loads((run / "config.json").read_text())["sft"])
    wanted = config.resolve(TABLETOP_ID)  # the run recorded its resolved configuration
    differing = [
        f.name for f in dataclasses.fields(SFTConfig) if getattr(recorded, f.name) != getattr(wanted, f.name)
    ]
    if differing:
        raise SystemExit(
            f"{run} was trained with other Stage 1 settings ({', '.join(differing)}) than this benchmark "
            "asks for; delete it, or pass the same --sft options."
        )


def seed_spread(block2block: dict, names: list[str], seeds: tuple[int, ...]) -> dict:
    """block2block success of one practice mode's Stage 2 runs (policy names, one per seed), with their
    median and range."""
    rates = [block2block[name]["success_rate"] for name in names]
    return {
        "seeds": list(seeds),
        "success_rate": rates,
        "median": float(np.median(rates)),
        "min": min(rates),
        "max": max(rates),
    }


def main(args: Args) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    dataset = read_dataset(args.dataset)
    block2block_demos = episodes_per_family(dataset)["block2block"]
    budget = int(args.practice_fraction * block2block_demos)
    results: dict = {
        "command": " ".join(["python", *sys.argv]),
        "args": json.loads(json.dumps(dataclasses.asdict(args), default=str)),
    }
    results["dataset"] = dataset_summary(dataset, args.dataset)
    sft_runs = {}
    for label, fraction in (("bc10", args.small_fraction), ("bc80", args.large_fraction)):
        config = dataclasses.replace(args.sft, data_fraction=fraction)
        sft_runs[label] = args.out / f"sft-{label}"
        if (sft_runs[label] / "sft_summary.json").exists():
            check_reused_stage1(sft_runs[label], config)
        else:
            train_sft(args.dataset, sft_runs[label], config)
        results[f"sft_{label}"] = json.loads((sft_runs[label] / "sft_summary.json").read_text())
        results[f"sft_{label}"].pop("val_episode_ids")
    seed_runs: dict[str, dict[str, dict]] = {}  # mode -> policy name -> Stage 2 summary, one per seed
    for mode in args.modes:
        seed_runs[mode] = {}
        for seed in args.stage2_seeds:
            config = dataclasses.replace(
                args.improve, practice_mode=mode, max_practice_episodes=budget, seed=seed
            )
            # The first seed keeps the single-seed names (improve-episodic, improved_episodic).
            tag = "" if seed == args.stage2_seeds[0] else f"seed{seed}"
            run = run_stage2(args, sft_runs["bc10"], f"improve-{mode}" + (f"-{tag}" if tag else ""), config)
            run["practice_fraction_of_block2block_demos"] = run["episodes"] / block2block_demos
            seed_runs[mode][f"improved_{mode}" + (f"_{tag}" if tag else "")] = run
    stage2 = {mode: next(iter(runs.values())) for mode, runs in seed_runs.items()}
    other_seeds = {name: run for runs in seed_runs.values() for name, run in list(runs.items())[1:]}
    results["stage2"] = stage2
    results["stage2_other_seeds"] = other_seeds
    results["practice_budget"] = {"episodes": budget, "block2block_demos": block2block_demos}

    reward_efm, reward_meta = load_checkpoint(sft_runs["bc10"] / "checkpoints" / "reward")
    reward_model = RewardModel(reward_efm, reward_meta["success_threshold"])
    env = reward_meta["env"]
    policies = {
        "bc10": load_checkpoint(sft_runs["bc10"] / "checkpoints" / "policy")[0],
        "bc80": load_checkpoint(sft_runs["bc80"] / "checkpoints" / "policy")[0],
        **{f"improved_{mode}": load_checkpoint(Path(stage2[mode]["checkpoint"]))[0] for mode in args.modes},
    }
    protocol = tabletop_summaries(
        evaluate_tabletop_policies(policies, env, args.eval, args.out / "videos", reward_model)
    )
    results["protocol"] = protocol
    block2block = dataclasses.replace(
        args.eval, families=("block2block",), episodes=args.block2block_episodes, videos=0
    )
    seed_policies = {name: load_checkpoint(Path(run["checkpoint"]))[0] for name, run in other_seeds.items()}
    results["block2block"] = tabletop_summaries(
        evaluate_tabletop_policies({**policies, **seed_policies}, env, block2block, None, reward_model)
    )
    results["stage2_seed_spread"] = {
        mode: seed_spread(results["block2block"], list(runs), args.stage2_seeds)
        for mode, runs in seed_runs.items()
    }
    # DESIGN.md keys: the 10% Stage 1 policy, the episodic Stage 2 policy and the oracle.
    results.update(
        bc=protocol["bc10"], improved=protocol[f"improved_{args.modes[0]}"], optimal=protocol["optimal"]
    )
    results["improve"] = stage2[args.modes[0]]

    start = Path(stage2[args.modes[0]]["checkpoint"])
    banana_eval = dataclasses.replace(args.eval, block_set="banana", episodes=args.banana_episodes, videos=2)
    before = evaluate_tabletop_policies(
        {"before": policies[f"improved_{args.modes[0]}"]},
        env,
        banana_eval,
        args.out / "videos-banana",
        reward_model,
        oracle=True,
    )
    banana_config = dataclasses.replace(
        args.improve, block_set="banana", num_iterations=args.banana_iterations, families=None
    )
    results["banana_practice"] = run_stage2(args, sft_runs["bc10"], "improve-banana", banana_config, start)
    after_model = load_checkpoint(Path(results["banana_practice"]["checkpoint"]))[0]
    after = evaluate_tabletop_policies(
        {"after": after_model}, env, banana_eval, args.out / "videos-banana", reward_model, oracle=False
    )
    results["banana"] = tabletop_summaries({**before, **after})
    results["machine"] = machine_info()
    results["wall_seconds"] = time.perf_counter() - started
    (args.out / "results.json").write_text(json.dumps(results, indent=2))

    labels = {
        "bc10": "Stage 1, 10%",
        "bc80": "Stage 1, 80%",
        f"improved_{args.modes[0]}": "Stage 2 from 10%",
        "optimal": "scripted oracle",
    }
    plot_family_success({labels[k]: protocol[k] for k in labels}, args.out / "success_by_family.png")
    plot_learning_curve(
        read_metrics(args.out / f"improve-{args.modes[0]}" / "metrics.jsonl"), args.out / "learning_curve.png"
    )
    return results


if __name__ == "__main__":
    out = main(tyro.cli(Args))
    for name, r in out["block2block"].items():
        print(f"{name:30s} block2block {r['success_rate']:.1%} {r['success_ci95']}")
