"""`siefm eval`: one policy checkpoint against the straight-line reference, on the same seeded episodes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from siefm.checkpoint import CheckpointError, check_fits_env, load_checkpoint
from siefm.config import EvalConfig
from siefm.envs.pointmass import GOAL_DIM, STATE_DIM, PointMassConfig
from siefm.envs.pointmass_demos import straight_line_policy
from siefm.eval.evaluate import efm_policy, evaluate
from siefm.eval.plots import plot_trajectories


def evaluate_checkpoint(checkpoint: Path, out: Path, config: EvalConfig) -> dict[str, Any]:
    """Evaluates the policy at `checkpoint`; writes `out/results.json` and `out/trajectories.png`."""
    model, metadata = load_checkpoint(Path(checkpoint))
    check_fits_env(Path(checkpoint), model.spec, STATE_DIM, GOAL_DIM)
    if "env" not in metadata:
        raise CheckpointError(
            f"{checkpoint} does not record the env it was trained on; it cannot be evaluated."
        )
    env_config = PointMassConfig(**metadata["env"]["config"])
    policy = evaluate(
        efm_policy(model, config.deterministic, config.seed),
        env_config,
        config.episodes,
        config.seed,
        config.max_steps,
    )
    optimal = evaluate(straight_line_policy, env_config, config.episodes, config.seed, config.max_steps)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "env": metadata["env"],
        "checkpoint": str(Path(checkpoint).resolve()),
        "policy": policy.summary(),
        "optimal": optimal.summary(),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    panels = [policy.panel(str(checkpoint)), optimal.panel("straight-line controller")]
    plot_trajectories(panels, out / "trajectories.png", env_config.success_radius)
    return results
