"""The `siefm` command line: one subcommand per stage, composable through directories, plus `demo`.

    siefm collect --out DATA                       demonstrations -> dataset
    siefm sft --dataset DATA --out SFT             Stage 1 -> SFT/checkpoints/{policy,reward}
    siefm improve --sft-run SFT --out RL           Stage 2 -> RL/checkpoints/policy
    siefm improve --resume RL                      continue an interrupted Stage 2 run
    siefm eval --checkpoint RL/checkpoints/policy --out EVAL
    siefm demo pointmass --out DIR                 all of the above + report

This is the only module that parses arguments; it calls the same functions as the tests and benchmarks.
Expected failures (bad paths, corrupt files, invalid values) end with a one-paragraph message and exit 2.
"""

from __future__ import annotations

import json
import logging
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro

from siefm.config import CollectConfig, EvalConfig, ImproveConfig, SFTConfig
from siefm.data.collect_tabletop import TabletopCollectConfig
from siefm.demo import DemoConfig
from siefm.tabletop_demo import TabletopDemoConfig


@dataclass(frozen=True)
class Collect:
    """Generate demonstrations with a scripted controller and write a dataset (LeRobot v3.0 layout, with
    steps-to-go and true-success columns): PointMass's waypoint demonstrator (--collect.* options), or the
    tabletop's push oracle in parallel workers (--env tabletop, --tabletop.* options)."""

    out: Path
    """Dataset directory to create."""
    env: Literal["pointmass", "tabletop"] = "pointmass"
    """Which domain to collect."""
    collect: CollectConfig = field(default_factory=CollectConfig)
    tabletop: TabletopCollectConfig = field(default_factory=TabletopCollectConfig)
    overwrite: bool = False
    """Replace an existing dataset at --out."""


@dataclass(frozen=True)
class SFT:
    """Stage 1: train the EFM with behavioral cloning + steps-to-go; keep the best policy and the best reward
    model (each by its own validation loss) and calibrate the success threshold s."""

    dataset: Path
    """Dataset directory written by `siefm collect`."""
    out: Path
    """Run directory; checkpoints go to OUT/checkpoints/{policy,reward}."""
    sft: SFTConfig = field(default_factory=SFTConfig)


@dataclass(frozen=True)
class Improve:
    """Stage 2: self-improvement with on-policy REINFORCE; rewards r = d(o_t) - d(o_t+1) and success
    d <= s come from the frozen Stage 1 reward model. Give --sft-run and --out for a new run, or
    --resume RUN_DIR."""

    sft_run: Path | None = None
    """Run directory of `siefm sft` (its checkpoints/policy starts the policy, checkpoints/reward scores)."""
    out: Path | None = None
    """Run directory to create; the improved policy goes to OUT/checkpoints/policy."""
    policy: Path | None = None
    """Start from this policy checkpoint instead of SFT_RUN/checkpoints/policy, e.g. an improved policy
    practising the novel object (--improve.block-set banana); rewards still come from SFT_RUN."""
    resume: Path | None = None
    """Continue the interrupted Stage 2 run in this directory from its last completed iteration (the saved
    config is used; other options are ignored)."""
    improve: ImproveConfig = field(default_factory=ImproveConfig)


@dataclass(frozen=True)
class Eval:
    """Evaluate a policy checkpoint on the simulator's true success, beside the domain's reference: the
    straight-line controller (PointMass) or the scripted oracle, per task family, with videos (tabletop)."""

    checkpoint: Path
    """A policy checkpoint directory (e.g. RUN/checkpoints/policy)."""
    out: Path
    """Directory for results.json and trajectories.png (PointMass) or videos/ (tabletop)."""
    reward: Path | None = None
    """Tabletop: a reward checkpoint (SFT_RUN/checkpoints/reward) for d(o, g) in the videos; default: the
    policy checkpoint's own steps-to-go head (for a Stage 2 policy an approximation: Stage 2 trains the
    instruction encoder and object selection it shares)."""
    eval: EvalConfig = field(default_factory=EvalConfig)


@dataclass(frozen=True)
class PointMassDemo:
    """Run the whole recipe on PointMass with embedded defaults (a few minutes): collect -> Stage 1 ->
    Stage 2 -> eval; writes results.json, trajectories.png and learning_curve.png and prints a summary."""

    out: Path = Path("runs/demo-pointmass")
    """Output directory (dataset/, sft/, improve/ and the report files)."""
    config: Annotated[DemoConfig, tyro.conf.arg(name="")] = field(default_factory=DemoConfig)


@dataclass(frozen=True)
class TabletopDemo:
    """Run the whole recipe on the tabletop from state observations (or camera frames, --obs pixels): oracle
    demonstrations -> Stage 1 (all families) -> Stage 2 (block2block practice) -> 5 families x 50 episodes
    for Stage 1, Stage 2 and the oracle; writes results.json, success_by_family.png, learning_curve.png and
    annotated videos."""

    out: Path = Path("runs/demo-tabletop")
    """Output directory (dataset/, sft/, improve/, videos/ and the report files)."""
    config: Annotated[TabletopDemoConfig, tyro.conf.arg(name="")] = field(default_factory=TabletopDemoConfig)


Demo = tyro.conf.OmitSubcommandPrefixes[
    Annotated[PointMassDemo, tyro.conf.subcommand("pointmass")]
    | Annotated[TabletopDemo, tyro.conf.subcommand("tabletop")]
]


Command = (
    Annotated[Collect, tyro.conf.subcommand("collect")]
    | Annotated[SFT, tyro.conf.subcommand("sft")]
    | Annotated[Improve, tyro.conf.subcommand("improve")]
    | Annotated[Eval, tyro.conf.subcommand("eval")]
    | Annotated[Demo, tyro.conf.subcommand("demo", description="Run the whole recipe on one domain.")]
)


def run(command: Collect | SFT | Improve | Eval | PointMassDemo | TabletopDemo) -> None:
    """Executes a parsed command (importing the heavy stages only when needed)."""
    if isinstance(command, Collect):
        if command.env == "tabletop":
            from siefm.data.collect_tabletop import collect_tabletop

            path = collect_tabletop(command.out, command.tabletop, overwrite=command.overwrite)
        else:
            from siefm.data.collect import collect_demonstrations

            path = collect_demonstrations(command.out, command.collect, overwrite=command.overwrite)
        print(f"dataset written to {path}")
    elif isinstance(command, SFT):
        from siefm.sft import train_sft

        out = train_sft(command.dataset, command.out, command.sft)
        print(f"Stage 1 checkpoints in {out / 'checkpoints'}")
    elif isinstance(command, Improve):
        from siefm.improve.train import improve, resume_improve

        if command.resume is not None:
            path = resume_improve(command.resume)
        elif command.sft_run is None or command.out is None:
            raise ValueError("siefm improve needs --sft-run and --out for a new run, or --resume RUN_DIR.")
        else:
            path = improve(command.sft_run, command.out, command.improve, command.policy)
        print(f"improved policy in {path}")
    elif isinstance(command, Eval):
        from siefm.eval.report import evaluate_checkpoint

        results = evaluate_checkpoint(command.checkpoint, command.out, command.eval, command.reward)
        print(json.dumps(results, indent=2))
    elif isinstance(command, TabletopDemo):
        from siefm.tabletop_demo import run_tabletop_demo

        results = run_tabletop_demo(command.out, command.config)
        print(format_table(results))
        print(f"\nreport: {command.out / 'results.json'}, {command.out / 'success_by_family.png'}, videos/")
    else:
        from siefm.demo import run_demo

        results = run_demo(command.out, command.config)
        print(format_table(results))
        print(
            f"\nreport: {command.out / 'results.json'}, {command.out / 'trajectories.png'}, "
            f"{command.out / 'learning_curve.png'}"
        )


def _row(name: str, r: dict) -> tuple[str, str, str, str]:
    low, high = r["success_ci95"]
    return name, f"{r['success_rate']:.1%}", f"[{low:.1%}, {high:.1%}]", f"{r['mean_steps']:.1f}"


def format_table(results: dict) -> str:
    """The demo's short summary table."""
    rows = [("policy", "true success", "95% CI", "mean steps")]
    tabletop = "per_family" in results["bc"]
    for key, name in (
        ("demonstrator", "demonstrator"),
        ("bc", "Stage 1 (BC)"),
        ("improved", "Stage 2"),
        ("optimal", "scripted oracle" if tabletop else "straight line"),
    ):
        if key in results:
            rows.append(_row(name, results[key]))
    for family in results["improve"].get("families", []) if tabletop else []:  # the practised families
        for key, name in (("bc", "Stage 1 (BC)"), ("improved", "Stage 2"), ("optimal", "scripted oracle")):
            if family in results[key]["per_family"]:
                rows.append(_row(f"{name}, {family}", results[key]["per_family"][family]))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    imp, rm = results["improve"], results["reward_model"]
    lines.append(
        f"Stage 2: {imp['env_steps']:,} env steps, {imp['updates']} updates, {imp['wall_seconds']:.0f} s; "
        f"detector precision {imp['detector_precision']:.2f} recall {imp['detector_recall']:.2f} (s = "
        f"{imp['success_threshold']:.2f}); reward model VOC {rm['voc']:.3f}, MAE {rm['steps_mae']:.2f} steps"
    )
    return "\n".join(lines)


# Raised for bad input (DatasetError and CheckpointError are ValueErrors); anything else is a bug and
# keeps its traceback.
EXPECTED_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        command = tyro.cli(Command, args=argv, description=__doc__.split("\n\n")[0])
        run(command)
    except EXPECTED_ERRORS as error:
        message = str(error).strip("'\"") or type(error).__name__
        print("error: " + textwrap.fill(message, width=100, subsequent_indent="       "), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
