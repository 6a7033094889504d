"""The `siefm` command line: one subcommand per stage, composable through directories, plus `demo`.

    siefm collect --out DATA                       demonstrations -> dataset
    siefm sft --dataset DATA --out SFT             Stage 1 -> SFT/checkpoints/{policy,reward}
    siefm improve --sft-run SFT --out RL           Stage 2 -> RL/checkpoints/policy
    siefm improve --resume RL                      continue an interrupted Stage 2 run
    siefm eval --checkpoint RL/checkpoints/policy --out EVAL
    siefm demo pointmass --out DIR                 all of the above + report (any registered domain)

This is the only module that parses arguments; it calls the same functions as the tests and benchmarks.
Expected failures (bad paths, corrupt files, invalid values) end with a one-paragraph message and exit 2.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union

import tyro

from siefm.config import EvalConfig, ImproveConfig, SFTConfig
from siefm.domains import domain_names, generic_collect_config, get_domain
from siefm.threads import configure_threads


def collect_command() -> type:
    """`siefm collect`, with one option group per registered domain (`--collect.*` for PointMass,
    `--tabletop.*` for the tabletop) and the top-level options of any other gymnasium env."""
    names = domain_names()
    env_help = (
        f"A registered domain ({', '.join(names)}) or any id gymnasium.make accepts (module:EnvId imports "
        "your package first), whose demonstrator is --policy."
    )
    fields: list[tuple[str, Any, Any]] = [
        ("out", Annotated[Path, tyro.conf.arg(help="Dataset directory to create.")], dataclasses.MISSING),
        ("env", Annotated[str, tyro.conf.arg(help=env_help)], field(default=names[0])),
    ]
    for name in names:
        domain = get_domain(name)
        fields.append(
            (domain.collect_option, domain.collect_config, field(default_factory=domain.collect_config))
        )
    fields += [
        (
            "gym",
            Annotated[generic_collect_config(), tyro.conf.OmitArgPrefixes],
            field(default_factory=generic_collect_config()),
        ),
        (
            "overwrite",
            Annotated[bool, tyro.conf.arg(help="Replace an existing dataset at --out.")],
            field(default=False),
        ),
    ]
    command = dataclasses.make_dataclass("Collect", fields, frozen=True)
    command.__doc__ = (
        "Generate demonstrations with the domain's scripted demonstrator and write a dataset (LeRobot v3.0 "
        "layout, with steps-to-go and true-success columns): --env picks the domain, whose options follow ("
        + ", ".join(f"--{get_domain(n).collect_option}.* for {n}" for n in names)
        + "; --policy, --num-episodes, ... for any other gymnasium env)."
    )
    return command


Collect = collect_command()


@dataclass(frozen=True)
class SFT:
    """Stage 1: train the EFM with behavioral cloning + steps-to-go; keep the best policy and the best reward
    model (each by its own validation loss) and calibrate the success threshold s."""

    dataset: Path
    """Dataset directory (LeRobot v3.0 layout), written by `siefm collect` or by LeRobot."""
    out: Path
    """Run directory; checkpoints go to OUT/checkpoints/{policy,reward}."""
    env: str | None = None
    """The env a dataset that records none (one LeRobot wrote) was recorded in: a domain or gymnasium id.
    Its steps-to-go labels are then made from the episodes, each taken to end at its goal."""
    env_kwargs: str = "{}"
    """With --env: keyword arguments of the env, as JSON."""
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
    straight-line controller (PointMass), the scripted oracle per task family with videos (tabletop), or
    the recorded demonstrator and --eval.reference (any other gymnasium env)."""

    checkpoint: Path
    """A policy checkpoint directory (e.g. RUN/checkpoints/policy)."""
    out: Path
    """Directory for results.json and trajectories.png (PointMass) or videos/ (tabletop)."""
    reward: Path | None = None
    """Tabletop: a reward checkpoint (SFT_RUN/checkpoints/reward) for d(o, g) in the videos; default: the
    policy checkpoint's own steps-to-go head (for a Stage 2 policy an approximation: Stage 2 trains the
    instruction encoder and object selection it shares)."""
    eval: EvalConfig = field(default_factory=EvalConfig)


def demo_command(name: str) -> type:
    """`siefm demo NAME`: the registered domain's whole recipe on its embedded defaults."""
    domain = get_domain(name)
    command = dataclasses.make_dataclass(
        f"{name.title()}Demo",
        [
            (
                "out",
                Annotated[
                    Path, tyro.conf.arg(help="Output directory (dataset/, sft/, improve/, the report).")
                ],
                field(default=Path(f"runs/demo-{name}")),
            ),
            (
                "config",
                Annotated[domain.demo_config, tyro.conf.arg(name="")],
                field(default_factory=domain.demo_config),
            ),
        ],
        frozen=True,
        namespace={"domain": name},
    )
    command.__doc__ = domain.demo_description
    return command


Demo = tyro.conf.OmitSubcommandPrefixes[
    Union[  # noqa: UP007 (a Union of a runtime-built tuple)
        tuple(
            Annotated[
                demo_command(name), tyro.conf.subcommand(name, description=get_domain(name).demo_description)
            ]
            for name in domain_names()
        )
    ]
]


Command = (
    Annotated[Collect, tyro.conf.subcommand("collect")]
    | Annotated[SFT, tyro.conf.subcommand("sft")]
    | Annotated[Improve, tyro.conf.subcommand("improve")]
    | Annotated[Eval, tyro.conf.subcommand("eval")]
    | Annotated[Demo, tyro.conf.subcommand("demo", description="Run the whole recipe on one domain.")]
)


def run(command: Any) -> None:
    """Executes a parsed command (importing the heavy stages only when needed)."""
    if isinstance(command, Collect):
        domain = get_domain(command.env)
        for group in {get_domain(name).collect_option for name in domain_names()} | {"gym"}:
            options = getattr(command, group)
            if group != domain.collect_option and options != type(options)():
                flags = f"--{group}.*" if group != "gym" else "--policy, --num-episodes, ..."
                raise ValueError(f"{flags} options do not apply to --env {command.env}: leave them out.")
        config = getattr(command, domain.collect_option)
        path = domain.collect(command.out, config, overwrite=command.overwrite)
        print(f"dataset written to {path}")
    elif isinstance(command, SFT):
        from siefm.sft import train_sft

        kwargs = json.loads(command.env_kwargs)
        out = train_sft(command.dataset, command.out, command.sft, command.env, kwargs)
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
    else:  # a demo
        results = get_domain(command.domain).run_demo(command.out, command.config)
        print(format_table(results))
        figures = sorted(p.name for p in Path(command.out).glob("*.png"))
        print(f"\nreport: {command.out / 'results.json'}" + "".join(f", {command.out / f}" for f in figures))


def _row(name: str, r: dict) -> tuple[str, str, str, str]:
    low, high = r["success_ci95"]
    return name, f"{r['success_rate']:.1%}", f"[{low:.1%}, {high:.1%}]", f"{r['mean_steps']:.1f}"


def format_table(results: dict) -> str:
    """The demo's short summary table."""
    rows = [("policy", "true success", "95% CI", "mean steps")]
    reference = results.get("optimal", {}).get("name", "reference")  # the domain's reference controller
    names = (("bc", "Stage 1 (BC)"), ("improved", "Stage 2"), ("optimal", reference))
    for key, name in (("demonstrator", "demonstrator"), *names):
        if key in results:
            rows.append(_row(name, results[key]))
    families = results["improve"].get("families", []) if "per_family" in results["bc"] else []
    for family in families:  # the practised task families, for domains that report per family
        for key, name in names:
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
        configure_threads()
        run(command)
    except EXPECTED_ERRORS as error:
        message = str(error).strip("'\"") or type(error).__name__
        print("error: " + textwrap.fill(message, width=100, subsequent_indent="       "), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
