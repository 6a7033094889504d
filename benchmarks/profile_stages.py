"""Where the time of each stage goes, per Stage 1 step and per Stage 2 env step.

    python benchmarks/profile_stages.py --dataset DATA --out runs/profile [--sft-steps 2048]
    python benchmarks/profile_stages.py --dataset runs/demo-tabletop/dataset --out runs/profile-tabletop \
        --sft-steps 1000 --num-envs 16 --hindsight block2block

Runs a Stage 1 (`train_sft`, `--sft-steps` steps, no plateau stop) on DATA, then a Stage 2 (`improve`,
`--iterations` iterations, `--num-envs` robots, other settings the defaults) from it, with timers wrapped
around the functions each stage calls: nothing in the stages is changed or reimplemented. Stage 1 parts:
setup (reading the dataset, building the model and its frames), data (the next batch), forward (model and
losses), backward, optimizer, validation (and calibration), checkpoint I/O; the rest of the wall time is
bookkeeping (metrics, the progress bar, the loop). Stage 2 parts: setup (checkpoints, env), env (the
fleet's step and reset), policy inference, reward inference (d of every new observation), update forward
/ backward / optimizer, practice I/O (streaming episodes to disk), state I/O (the resumable state after
each iteration); the rest is bookkeeping (step records, returns, episode assembly, metrics). Writes
OUT/profile.json and prints the two tables (docs/performance.md).
"""

from __future__ import annotations

import json
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import torch
import tyro

import siefm.improve.train as stage2
import siefm.sft as stage1
from siefm.config import ImproveConfig, SFTConfig
from siefm.eval.summaries import machine_info
from siefm.improve.practice_data import PracticeStream
from siefm.improve.reward import RewardModel
from siefm.models.efm import EFMBase
from siefm.threads import configure_threads


@dataclass(frozen=True)
class Args:
    dataset: Path
    """A dataset of any registered domain (e.g. `siefm collect --env pointmass --out DATA`)."""
    out: Path = Path("runs/profile")
    sft_steps: int = 2048
    iterations: int = 8
    num_envs: int = 8
    hindsight: str = "none"
    """Stage 1's hindsight labels (`--sft.hindsight`; the tabletop demo uses block2block)."""


class Timers:
    """Seconds spent inside wrapped callables, by label; a label nested in another counts once."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._inside = False

    def wrap(self, label: str, function: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._inside:  # e.g. a forward pass inside validation: counted as validation
                return function(*args, **kwargs)
            self._inside = True
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - start
                self.calls[label] += 1
                self._inside = False

        return timed

    def table(self, wall: float, per: int, unit: str) -> dict[str, dict[str, float]]:
        parts = dict(self.seconds)
        parts["bookkeeping (the rest)"] = wall - sum(parts.values())
        per_unit = f"ms_per_{unit}"
        table = {}
        for label, seconds in parts.items():
            table[label] = {"seconds": seconds, "share": seconds / wall, per_unit: 1000 * seconds / per}
        return table


# (owner, function, part): what each stage's timers wrap (the fleet's step and reset are wrapped as made).
STAGE1_PARTS = [
    (stage1, "sft_loss", "forward"),
    (torch.Tensor, "backward", "backward"),
    (torch.optim.AdamW, "step", "optimizer"),
    (stage1, "validation_losses", "validation"),
    (stage1, "calibrate_detector", "validation"),
    (stage1, "save_checkpoint", "checkpoint I/O"),
    *(
        (stage1, name, "setup (dataset, model, frames)")
        for name in ("stage1_inputs", "build_model", "model_frames")
    ),
]
STAGE2_PARTS = [
    (EFMBase, "act", "policy inference"),
    (RewardModel, "distance", "reward inference"),
    (EFMBase, "log_prob", "update forward"),
    (torch.Tensor, "backward", "update backward"),
    (torch.optim.AdamW, "step", "update optimizer"),
    (PracticeStream, "write", "practice I/O"),
    (PracticeStream, "finish", "practice I/O"),
    (stage2, "_save_state", "state I/O"),
    (stage2, "_load_inputs", "setup (checkpoints, env)"),
]


def patch(stack: ExitStack, timers: Timers, owner: Any, name: str, label: str) -> None:
    stack.enter_context(mock.patch.object(owner, name, timers.wrap(label, getattr(owner, name))))


def profile_stage1(args: Args, out: Path) -> dict:
    timers = Timers()
    config = SFTConfig(
        steps=args.sft_steps, eval_every=args.sft_steps // 2, patience=0, hindsight=args.hindsight
    )
    frames_batches = stage1.Frames.batches

    def timed_batches(self: Any, *a: Any, **k: Any) -> Any:
        batches = frames_batches(self, *a, **k)
        next_batch = timers.wrap("data", lambda: next(batches))

        class Batches:
            def __next__(self) -> Any:
                return next_batch()

            def close(self) -> None:
                batches.close()

        return Batches()

    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(stage1.Frames, "batches", timed_batches))
        for owner, name, label in STAGE1_PARTS:
            patch(stack, timers, owner, name, label)
        start = time.perf_counter()
        stage1.train_sft(args.dataset, out, config)
        wall = time.perf_counter() - start
    parts = timers.table(wall, args.sft_steps, "step")
    return {"steps": args.sft_steps, "wall_seconds": wall, "parts": parts}


def profile_stage2(args: Args, sft_run: Path, out: Path) -> dict:
    timers = Timers()
    config = ImproveConfig(num_iterations=args.iterations, num_envs=args.num_envs)
    make_fleet = stage2.make_fleet

    def timed_fleet(*a: Any, **k: Any) -> Any:
        fleet = make_fleet(*a, **k)
        fleet.step = timers.wrap("env", fleet.step)
        fleet.reset = timers.wrap("env", fleet.reset)
        return fleet

    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(stage2, "make_fleet", timed_fleet))
        for owner, name, label in STAGE2_PARTS:
            patch(stack, timers, owner, name, label)
        start = time.perf_counter()
        stage2.improve(sft_run, out, config)
        wall = time.perf_counter() - start
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    env_steps = records[-1]["improve/env_steps"]
    return {
        "iterations": args.iterations,
        "env_steps": env_steps,
        "wall_seconds": wall,
        "parts": timers.table(wall, env_steps, "env_step"),
    }


def print_table(title: str, result: dict, unit: str) -> None:
    print(f"\n{title}: {result['wall_seconds']:.1f} s")
    print(f"| part | share | ms per {unit} |\n|---|---|---|")
    for label, part in sorted(result["parts"].items(), key=lambda item: -item[1]["seconds"]):
        print(f"| {label} | {part['share']:.1%} | {part[f'ms_per_{unit}']:.3f} |")


def main(args: Args) -> None:
    configure_threads()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    results = {"dataset": str(args.dataset), "machine": machine_info()}
    results["stage1"] = profile_stage1(args, args.out / "sft")
    results["stage2"] = profile_stage2(args, args.out / "sft", args.out / "improve")
    (args.out / "profile.json").write_text(json.dumps(results, indent=2))
    print_table("Stage 1", results["stage1"], "step")
    print_table("Stage 2", results["stage2"], "env_step")


if __name__ == "__main__":
    main(tyro.cli(Args))
