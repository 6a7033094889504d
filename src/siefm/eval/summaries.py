"""What every domain's demo and benchmarks share: running the stages, and the results.json entries for the
demonstrations, Stage 2's practice and detector scores, and the machine."""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from siefm.checkpoint import load_checkpoint
from siefm.config import ImproveConfig, to_dict
from siefm.eval.stats import wilson_interval
from siefm.improve.reward import precision_recall
from siefm.improve.train import POLICY_DIR, improve
from siefm.logging import read_metrics


def demonstrations_summary(dataset: Any) -> dict[str, Any]:
    """A dataset of successful demonstrations as a results.json entry: their lengths and sizes."""
    lengths = np.diff(dataset.episode_bounds, axis=1)[:, 0] - 1
    return {
        "success_rate": 1.0,
        "success_ci95": list(wilson_interval(len(lengths), len(lengths))),
        "mean_steps": float(lengths.mean()),
        "std_steps": float(lengths.std()),
        "episodes": int(dataset.num_episodes),
        "frames": int(dataset.num_frames),
    }


def pooled_detector_scores(records: list[dict[str, Any]]) -> dict[str, float]:
    """Detector precision and recall against the simulator's success over every practice frame of Stage 2."""
    counts = {
        key: sum(r[f"rollout/detector_{key}"] for r in records)
        for key in ("true_positives", "false_positives", "false_negatives")
    }
    precision, recall = precision_recall(**counts)
    return {"detector_precision": precision, "detector_recall": recall, "detector_counts": counts}


def practice_summary(records: list[dict[str, Any]], last: int = 8) -> dict[str, float]:
    """Collection speed, and how practice episodes ended over the last `last` iterations."""
    late = records[-last:]
    return {
        "median_env_steps_per_second": float(np.median([r["time/env_steps_per_second"] for r in records])),
        "late_practice_true_success": float(np.mean([r["rollout/true_success"] for r in late])),
        "late_practice_detected_success": float(np.mean([r["rollout/detected_success"] for r in late])),
    }


def run_demo_stages(
    out: Path, config: Any, collect: Callable[[Path], Path]
) -> tuple[Path, Path, Path, float]:
    """A demo's collection (`collect(path)`), Stage 1 (`config.sft`) and Stage 2 (`config.improve`) into
    `out/{dataset,sft,improve}`, every stage afresh, with the demo's settings in `out/config.json`.
    Returns the dataset, the Stage 1 run, the Stage 2 policy and the collection's seconds."""
    from siefm.sft import train_sft  # Stage 1 imports this module's neighbours

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"command": "demo", "demo": to_dict(config)}, indent=2))
    start = time.perf_counter()
    dataset_dir = collect(out / "dataset")
    collect_seconds = time.perf_counter() - start
    for stage in ("sft", "improve"):
        shutil.rmtree(out / stage, ignore_errors=True)
    sft_run = train_sft(dataset_dir, out / "sft", config.sft)
    return dataset_dir, sft_run, improve(sft_run, out / "improve", config.improve), collect_seconds


def improve_and_summarise(
    sft_run: Path, out: Path, config: ImproveConfig, policy: Path | None = None
) -> dict[str, Any]:
    """Runs Stage 2 (`siefm improve`) and summarises it for a benchmark: its counters, the detector's
    pooled precision and recall, how practice ended, and the practice curve."""
    started = time.perf_counter()
    improve(sft_run, out, config, policy)
    return {**stage2_summary(out), "wall_seconds_total": time.perf_counter() - started}


def stage2_summary(out: Path) -> dict[str, Any]:
    """The benchmark summary of the finished Stage 2 run in `out` (see `improve_and_summarise`)."""
    path = out / POLICY_DIR
    records = read_metrics(out / "metrics.jsonl")
    meta = load_checkpoint(path)[1]
    return {
        "checkpoint": str(path),
        **meta["improve"],
        **pooled_detector_scores(records),
        **practice_summary(records),
        "first_practice_true_success": records[0]["rollout/true_success"],
        "success_threshold": meta["success_threshold"],
        "curve": {
            "practice_episodes": np.cumsum([r["rollout/episodes"] for r in records]).tolist(),
            "true_success": [r["rollout/true_success"] for r in records],
            "detected_success": [r["rollout/detected_success"] for r in records],
        },
    }


def machine_info() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
