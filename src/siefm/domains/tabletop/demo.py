"""The whole recipe on the tabletop: collect -> Stage 1 -> Stage 2 -> eval -> report.

`run_tabletop_demo` is what `siefm demo tabletop` calls. Its defaults are the recipe that shows Stage 2's
effect in under 10 minutes on 2 cores (docs/tabletop.md, "`siefm demo tabletop`"): 2,500 attempts of
sub-optimal demonstrations (the oracle makes 0-16 random detours first), 4,000 Stage 1 steps on every
task family with hindsight block2block labels for the steps-to-go head, 500 episodes of block2block
practice (the paper's family), and 200 block2block evaluation episodes for the Stage 1 policy, the
improved policy and the scripted oracle, with annotated videos (`--eval.families` None gives the reference
protocol, 5 families x 50).
It writes `results.json` (docs/method.md, "results.json", plus `per_family` breakdowns),
`success_by_family.png`, `learning_curve.png` and `videos/`. `--obs pixels` runs the same recipe with the
pixel EFM (pretrained EfficientNet-Lite0 + MiniLM by default; see docs/pixels.md).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from siefm.checkpoint import load_checkpoint
from siefm.config import EvalConfig, ImproveConfig, SFTConfig, to_dict
from siefm.data.dataset import DatasetError, EpisodeDataset, read_dataset
from siefm.domains.tabletop.collect import TabletopCollectConfig, collect_tabletop
from siefm.domains.tabletop.evaluate import evaluate_tabletop_policies, tabletop_summaries
from siefm.domains.tabletop.tasks import FAMILIES
from siefm.eval.diagnostics import reward_model_diagnostics
from siefm.eval.plots import plot_family_success, plot_learning_curve
from siefm.eval.summaries import (
    demonstrations_summary,
    machine_info,
    pooled_detector_scores,
    practice_summary,
)
from siefm.improve.reward import RewardModel
from siefm.improve.train import improve
from siefm.logging import read_metrics
from siefm.sft import train_sft


@dataclass(frozen=True)
class TabletopDemoConfig:
    """Settings of every stage of the tabletop demo; the defaults finish in about 9 minutes on 2 cores.
    A small dataset on purpose: Stage 1 then leaves room for practice to show (docs/tabletop.md)."""

    collect: TabletopCollectConfig = field(
        default_factory=lambda: TabletopCollectConfig(num_episodes=2_500, max_detours=16)
    )
    dataset: Path | None = None
    """Use this tabletop dataset (from `siefm collect --env tabletop`) instead of collecting one."""
    sft: SFTConfig = field(
        default_factory=lambda: SFTConfig(steps=4_000, eval_every=1_000, hindsight="block2block")
    )
    improve: ImproveConfig = field(
        default_factory=lambda: ImproveConfig(num_iterations=100, max_practice_episodes=500)
    )
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(families=("block2block",), episodes=200))
    obs: Literal["state", "pixels"] | None = None
    """What the models read: 'state' (block poses) or 'pixels' (camera frames; the same as
    --sft.model.observation pixels, and the default pretrained encoders need `pip install
    'siefm[pretrained]'`). None: --sft.model.observation decides (state by default)."""

    def __post_init__(self) -> None:
        if self.obs is not None and self.sft.model.observation not in ("state", self.obs):
            raise ValueError(
                f"--obs {self.obs} contradicts --sft.model.observation {self.sft.model.observation}: "
                "give one of them."
            )

    @property
    def stage1(self) -> SFTConfig:
        """The Stage 1 settings, with the observation `obs` asks for."""
        if self.obs is None:
            return self.sft
        return dataclasses.replace(self.sft, model=dataclasses.replace(self.sft.model, observation=self.obs))


def run_tabletop_demo(out: Path, config: TabletopDemoConfig) -> dict[str, Any]:
    """Runs every stage into `out/{dataset,sft,improve}` and writes the report files into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(
        json.dumps({"command": "demo tabletop", "demo": to_dict(config)}, indent=2, default=str)
    )
    start = time.perf_counter()
    if config.dataset is not None:
        dataset_dir = Path(config.dataset)
    else:
        dataset_dir = collect_tabletop(out / "dataset", config.collect, overwrite=True)
    collect_seconds = time.perf_counter() - start
    for stage in ("sft", "improve", "videos"):  # a demo always runs every stage afresh
        shutil.rmtree(out / stage, ignore_errors=True)
    sft_run = train_sft(dataset_dir, out / "sft", config.stage1)
    improved = improve(sft_run, out / "improve", config.improve)
    results = tabletop_report(out, dataset_dir, sft_run, improved, config.eval)
    results["collect"] = {"wall_seconds": collect_seconds, "reused_dataset": config.dataset is not None}
    results["model"] = json.loads((sft_run / "config.json").read_text())["sft"]["model"]  # resolved
    results["total_wall_seconds"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def tabletop_report(
    out: Path, dataset_dir: Path, sft_run: Path, improved: Path, ev: EvalConfig
) -> dict[str, Any]:
    """Evaluates the Stage 1 and improved policies beside the oracle; diagnoses the reward model; plots."""
    bc_model, bc_meta = load_checkpoint(sft_run / "checkpoints" / "policy")
    reward_efm, reward_meta = load_checkpoint(sft_run / "checkpoints" / "reward")
    improved_model, improved_meta = load_checkpoint(improved)
    reward_model = RewardModel(reward_efm, reward_meta["success_threshold"])
    env = improved_meta["env"]
    runs = evaluate_tabletop_policies(
        {"bc": bc_model, "improved": improved_model}, env, ev, out / "videos", reward_model
    )
    dataset = read_dataset(dataset_dir)
    records = read_metrics(out / "improve" / "metrics.jsonl")
    sft_summary = json.loads((sft_run / "sft_summary.json").read_text())
    val = dataset.select_episodes(np.array(sft_summary["val_episode_ids"]))
    practice_episodes = int(sum(r["rollout/episodes"] for r in records))
    practised = improved_meta["practice_env"]["config"]["families"]
    practised_demos = sum(episodes_per_family(dataset).get(family, 0) for family in practised)
    results = {
        "env": env,
        "dataset": dataset_summary(dataset, dataset_dir),
        **tabletop_summaries(runs),
        "improve": {
            **improved_meta["improve"],
            **pooled_detector_scores(records),
            **practice_summary(records),
            "success_threshold": improved_meta["success_threshold"],
            "families": list(practised),
            "practice_episodes": practice_episodes,
            # The paper's budget measure: practice episodes per demonstration of the practised families.
            "practice_fraction_of_family_demos": practice_episodes / max(1, practised_demos),
        },
        "sft": {
            "wall_seconds": sft_summary["wall_seconds"],
            "steps": sft_summary["steps"],
            "steps_per_second": read_metrics(sft_run / "metrics.jsonl")[-1]["time/sft_steps_per_second"],
            "train_episodes": bc_meta["train_episodes"],
        },
        "reward_model": {
            **reward_model_diagnostics(reward_efm, val),
            "d_error_of_a_constant": sft_summary.get("d_error_of_a_constant"),  # None: an older run
            "success_threshold": reward_meta["success_threshold"],
            "calibration": reward_meta["calibration"],
            "step": reward_meta["step"],
        },
        "machine": machine_info(),
    }
    results["optimal"]["name"] = "scripted oracle"
    labels = {"bc": "Stage 1 (BC)", "improved": "Stage 2 (self-improved)", "optimal": "scripted oracle"}
    plot_family_success({labels[k]: results[k] for k in labels}, out / "success_by_family.png")
    plot_learning_curve(
        records,
        out / "learning_curve.png",
        results["optimal"]["mean_steps"],
        "scripted oracle (all families)",
    )
    return results


def episodes_per_family(dataset: EpisodeDataset) -> dict[str, int]:
    """How many demonstrations of each task family the dataset holds."""
    first_frames = dataset.episode_bounds[:, 0]
    counts = np.bincount(dataset.columns["family_index"][first_frames], minlength=len(FAMILIES))
    return dict(zip(FAMILIES, counts.tolist(), strict=True))


def dataset_summary(dataset: EpisodeDataset, root: Path) -> dict[str, Any]:
    """The demonstrations as a results.json entry (every kept oracle episode succeeded)."""
    if "family_index" not in dataset.columns:
        raise DatasetError(f"{root} is not a tabletop dataset (no family_index column).")
    return {
        **demonstrations_summary(dataset),
        "episodes_per_family": episodes_per_family(dataset),
        "attempts": dataset.info.get("siefm", {}).get("collect", {}).get("num_episodes"),
        "path": str(Path(root).resolve()),
    }
