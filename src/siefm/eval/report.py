"""`siefm eval`: one policy checkpoint against the straight-line reference, on the same seeded episodes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from siefm.checkpoint import CheckpointError, load_checkpoint
from siefm.config import EvalConfig
from siefm.envs.pointmass import GOAL_DIM, STATE_DIM, PointMassConfig
from siefm.envs.pointmass_demos import straight_line_policy
from siefm.eval.evaluate import efm_policy, evaluate
from siefm.eval.plots import plot_trajectories

NUM_PLOTTED = 10


def check_fits_env(checkpoint: Path, spec: Any) -> None:
    """Refuses a checkpoint whose observation or goal sizes do not match PointMass."""
    if (spec.state_dim, spec.goal_dim) != (STATE_DIM, GOAL_DIM):
        raise CheckpointError(
            f"{checkpoint} expects observations of size {spec.state_dim} and goals of size {spec.goal_dim}, "
            f"but PointMass gives {STATE_DIM} and {GOAL_DIM}: use a checkpoint trained on PointMass data."
        )


def evaluate_checkpoint(checkpoint: Path, out: Path, config: EvalConfig) -> dict[str, Any]:
    """Evaluates the policy at `checkpoint`; writes `out/results.json` and `out/trajectories.png`."""
    model, metadata = load_checkpoint(Path(checkpoint))
    check_fits_env(checkpoint, model.spec)
    env_config = PointMassConfig(**metadata["env"]["config"])
    policy = evaluate(efm_policy(model, config.deterministic, config.seed), env_config, config.episodes, config.seed, config.max_steps)
    optimal = evaluate(straight_line_policy, env_config, config.episodes, config.seed, config.max_steps)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"env": metadata["env"], "checkpoint": str(Path(checkpoint).resolve()),
               "policy": policy.summary(), "optimal": optimal.summary()}  # fmt: skip
    (out / "results.json").write_text(json.dumps(results, indent=2))
    panels = [
        (f"{Path(checkpoint).name}: {policy.success_rate:.0%}", [policy.positions[:, i] for i in range(min(NUM_PLOTTED, config.episodes))], policy.goals[:NUM_PLOTTED]),
        (f"straight line: {optimal.success_rate:.0%}", [optimal.positions[:, i] for i in range(min(NUM_PLOTTED, config.episodes))], optimal.goals[:NUM_PLOTTED]),
    ]
    plot_trajectories(panels, out / "trajectories.png", env_config.success_radius)
    return results
