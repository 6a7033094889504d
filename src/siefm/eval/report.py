"""`siefm eval`: one policy checkpoint beside the domain's reference controller, on the same seeded episodes.

PointMass: the straight-line controller, with trajectory plots. Tabletop: the scripted oracle, per task
family (the reference's 5 x 50 protocol), with annotated videos of the policy.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from siefm.checkpoint import CheckpointError, fit_to_env, load_checkpoint
from siefm.config import POINTMASS_ID, EvalConfig, to_dict
from siefm.envs.pointmass import PointMassConfig
from siefm.envs.pointmass_demos import straight_line_policy
from siefm.envs.tabletop import TabletopConfig
from siefm.eval.evaluate import efm_policy, evaluate
from siefm.eval.plots import plot_trajectories
from siefm.eval.tabletop import FamilyResult, efm_batch_policy, evaluate_tabletop, oracle_batch_policy, pooled
from siefm.improve.reward import RewardModel
from siefm.models.efm import EFMBase


def evaluate_checkpoint(
    checkpoint: Path, out: Path, config: EvalConfig, reward: Path | None = None
) -> dict[str, Any]:
    """Evaluates the policy at `checkpoint` and writes `out/results.json` with the domain's figures.

    `reward` (a Stage 1 reward checkpoint) supplies d(o, g) for the tabletop videos; without it they show
    the policy checkpoint's own steps-to-go head, which for a Stage 2 policy only approximates the reward
    model (Stage 2 trains the instruction encoder and object selection it shares).
    """
    model, metadata = load_checkpoint(Path(checkpoint))
    if "env" not in metadata:
        raise CheckpointError(
            f"{checkpoint} does not record the env it was trained on; it cannot be evaluated."
        )
    env = metadata["env"]
    if env["id"] != POINTMASS_ID:  # the board evaluated on, which --eval.block-set may change
        env = {"id": env["id"], "config": dataclasses.asdict(tabletop_board(env, config))}
    fit_to_env(Path(checkpoint), model, env)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "env": env,
        "checkpoint": str(Path(checkpoint).resolve()),
        "eval": to_dict(config),  # so that a reader can tell which episodes the figures are of
    }
    if metadata["env"]["id"] == POINTMASS_ID:
        results.update(_pointmass(model, metadata, out, config, str(checkpoint)))
    else:
        if reward is not None:
            reward_efm, reward_meta = load_checkpoint(Path(reward))
            fit_to_env(Path(reward), reward_efm, env)
        else:
            reward_efm, reward_meta = model, metadata
        reward_model = RewardModel(reward_efm, reward_meta.get("success_threshold", 0.0))
        runs = evaluate_tabletop_policies(
            {"policy": model}, metadata["env"], config, out / "videos", reward_model
        )
        results.update(tabletop_summaries(runs))
        results["videos"] = str((out / "videos").resolve())
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def _pointmass(
    model: EFMBase, metadata: dict[str, Any], out: Path, config: EvalConfig, name: str
) -> dict[str, Any]:
    env_config = PointMassConfig(**metadata["env"]["config"])
    episodes = config.num_episodes(POINTMASS_ID)
    policy = evaluate(
        efm_policy(model, config.deterministic, config.seed),
        env_config,
        episodes,
        config.seed,
        config.max_steps,
    )
    optimal = evaluate(straight_line_policy, env_config, episodes, config.seed, config.max_steps)
    panels = [policy.panel(name), optimal.panel("straight-line controller")]
    plot_trajectories(panels, out / "trajectories.png", env_config.success_radius)
    return {"policy": policy.summary(), "optimal": optimal.summary()}


def tabletop_board(env: dict[str, Any], config: EvalConfig) -> TabletopConfig:
    """The evaluation board: the checkpoint's, or another object set when `config.block_set` says so,
    drawing the evaluated families (validated here)."""
    return TabletopConfig(**env["config"]).with_board(config.block_set, config.families)


def evaluate_tabletop_policies(
    policies: dict[str, EFMBase],
    env: dict[str, Any],
    config: EvalConfig,
    video_dir: Path | None,
    reward_model: RewardModel | None,
    oracle: bool = True,
) -> dict[str, dict[str, FamilyResult]]:
    """Each policy (and the oracle, as "optimal") on the same seeded episodes of every family."""
    env_config = tabletop_board(env, config)
    kwargs = {
        "env_config": env_config,
        "families": env_config.task_families,
        "episodes": config.num_episodes(env["id"]),
        "seed": config.seed,
        "max_steps": config.max_steps or env_config.max_steps,
    }
    runs = {
        name: evaluate_tabletop(
            efm_batch_policy(model, config.deterministic),
            reward_model=reward_model,
            video_dir=None if video_dir is None else video_dir / name,
            videos_per_family=config.videos,
            **kwargs,
        )
        for name, model in policies.items()
    }
    if oracle:
        runs["optimal"] = evaluate_tabletop(oracle_batch_policy(), **kwargs)
    return runs


def tabletop_summaries(runs: dict[str, dict[str, FamilyResult]]) -> dict[str, Any]:
    """results.json entries: pooled over families (DESIGN.md schema) plus a `per_family` breakdown."""
    return {
        name: {**pooled(by_family).summary(), "per_family": {f: r.summary() for f, r in by_family.items()}}
        for name, by_family in runs.items()
    }
