"""`siefm demo aloha`: the whole recipe on Aloha transfer-cube from states, in one call.

Scripted demonstrations (straight by default; `--collect.pauses` etc. make them sub-optimal) -> Stage 1 ->
Stage 2 -> evaluation of Stage 1, Stage 2, the demonstrator that recorded the data and the same
demonstrator without pauses, detours, re-grasps or drops, on the same seeded episodes. Writes
`results.json` (the pointmass demo's layout), `learning_curve.png` and annotated videos of Stage 2's first
episodes in `videos/`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from siefm.checkpoint import load_checkpoint
from siefm.config import EvalConfig, ImproveConfig, SFTConfig
from siefm.data.dataset import read_dataset
from siefm.domains.aloha.domain import DEMONSTRATORS, DOMAIN, AlohaCollectConfig
from siefm.domains.aloha.videos import write_videos
from siefm.domains.gymnasium_env.env import GymEnvConfig, observation_map
from siefm.domains.gymnasium_env.evaluate import model_policy, run_episodes, scripted_policy
from siefm.eval.diagnostics import reward_model_diagnostics
from siefm.eval.plots import plot_learning_curve
from siefm.eval.policy import efm_policy
from siefm.eval.summaries import (
    demonstrations_summary,
    machine_info,
    pooled_detector_scores,
    practice_summary,
    run_demo_stages,
)
from siefm.improve.reward import RewardModel
from siefm.logging import read_metrics

# The simulators are most of a practice step (a 10 Hz step is 5 x 10 physics steps): 2 worker processes
# step them, each its robots in one process.
DEMO_IMPROVE = ImproveConfig(num_iterations=30, env_workers=2)
# Straight demonstrations: Stage 1 from 500 of them clones 13 of 20 transfers by its mode, from 500 with
# pauses, detours, re-grasps and drops (the collection defaults) 1 of 20 (docs/aloha.md).
STRAIGHT = AlohaCollectConfig(pauses=0, detours=0, regrasp_probability=0.0, drop_probability=0.0)


@dataclass(frozen=True)
class AlohaDemoConfig:
    """Settings of every stage of the Aloha demo (transfer-cube, state observations)."""

    collect: AlohaCollectConfig = field(default_factory=lambda: STRAIGHT)
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(steps=10_000, eval_every=500))
    improve: ImproveConfig = field(default_factory=lambda: DEMO_IMPROVE)
    eval: EvalConfig = field(default_factory=EvalConfig)


def run_demo(out: Path, config: AlohaDemoConfig) -> dict[str, Any]:
    """Runs every stage into `out/{dataset,sft,improve}` and writes the report files into `out`."""
    out, start = Path(out), time.perf_counter()
    dataset_dir, sft_run, improved, collect_seconds = run_demo_stages(
        out, config, lambda path: DOMAIN.collect(path, config.collect, overwrite=True)
    )
    results = report(out, dataset_dir, sft_run, improved, config.eval)
    results["collect"] = {"wall_seconds": collect_seconds}
    results["total_wall_seconds"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def report(out: Path, dataset_dir: Path, sft_run: Path, improved: Path, ev: EvalConfig) -> dict[str, Any]:
    """Evaluates the four policies on the same seeded episodes, diagnoses the reward model, films Stage 2."""
    dataset = read_dataset(dataset_dir)
    env = dataset.info["siefm"]["env"]
    gym_config = GymEnvConfig(**env["config"])
    episodes = ev.num_episodes(DOMAIN.env_id)
    limit = ev.max_steps or gym_config.max_steps
    seeds = [ev.seed + k for k in range(episodes)]
    bc_model, _ = load_checkpoint(sft_run / "checkpoints" / "policy")
    reward_model, reward_meta = load_checkpoint(sft_run / "checkpoints" / "reward")
    improved_model, improved_meta = load_checkpoint(improved)
    mapping = observation_map(gym_config)
    policies = {
        "bc": model_policy(efm_policy(bc_model, ev.deterministic, ev.seed), mapping),
        "improved": model_policy(efm_policy(improved_model, ev.deterministic, ev.seed), mapping),
        "optimal": scripted_policy(DEMONSTRATORS[gym_config.kwargs["task"]], {}, seeds),
    }
    straight = not any(gym_config.policy_kwargs.values())  # the recording demonstrator is the optimal one
    if not straight:
        policies["demonstrator"] = scripted_policy(gym_config.policy, gym_config.policy_kwargs, seeds)
    results: dict[str, Any] = {"env": env, "dataset": demonstrations_summary(dataset)}
    for name, policy in policies.items():
        results[name] = run_episodes(DOMAIN.env_id, gym_config, policy, episodes, ev.seed, limit)
    if straight:
        results["demonstrator"] = results["optimal"]
    results["optimal"]["name"] = "scripted demonstrator without pauses, detours or re-grasps"
    improved_steps, optimal_steps = (results[k]["mean_steps"] for k in ("improved", "optimal"))
    results["improved"]["steps_vs_optimal"] = improved_steps / optimal_steps
    records = read_metrics(out / "improve" / "metrics.jsonl")
    sft_summary = json.loads((sft_run / "sft_summary.json").read_text())
    val_ids = np.array(sft_summary["val_episode_ids"])
    results["improve"] = {
        **improved_meta["improve"],
        **pooled_detector_scores(records),
        **practice_summary(records),
        "success_threshold": improved_meta["success_threshold"],
    }
    results["sft"] = {"wall_seconds": sft_summary["wall_seconds"], "steps": sft_summary["steps"]}
    results["reward_model"] = {
        **reward_model_diagnostics(reward_model, dataset.select_episodes(val_ids)),
        "success_threshold": reward_meta["success_threshold"],
        "calibration": reward_meta["calibration"],
        "step": reward_meta["step"],
    }
    results["machine"] = machine_info()
    plot_learning_curve(records, out / "learning_curve.png", results["optimal"]["mean_steps"])
    # Stage 2's first episodes, with the Stage 1 reward model's d(o, g), the reward Stage 2 practised on.
    scorer = RewardModel(reward_model, reward_meta["success_threshold"])
    filmed, video_dir = min(ev.videos, episodes), out / "videos"
    videos = write_videos(
        improved_model, gym_config, scorer, video_dir, filmed, ev.seed, ev.deterministic, limit
    )
    results["videos"] = [str(path.resolve()) for path in videos]
    return results
