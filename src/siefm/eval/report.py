"""`siefm eval`: one policy checkpoint beside its domain's reference, on the same seeded episodes.

What is evaluated and reported is the domain's (`Domain.evaluate`): PointMass adds the straight-line
controller and trajectory plots, the tabletop the scripted oracle per task family with annotated videos,
Aloha its scripted demonstrators with annotated videos of the policy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from siefm.checkpoint import CheckpointError, fit_to_env, load_checkpoint
from siefm.config import EvalConfig, to_dict
from siefm.domains import get_domain


def evaluate_checkpoint(
    checkpoint: Path, out: Path, config: EvalConfig, reward: Path | None = None
) -> dict[str, Any]:
    """Evaluates the policy at `checkpoint` and writes `out/results.json` with the domain's figures.

    `reward` (a Stage 1 reward checkpoint) supplies d(o, g) where the domain's videos show it; without it
    they show the policy checkpoint's own steps-to-go head, which for a Stage 2 policy only approximates the
    reward model (Stage 2 trains the parts it shares with the policy).
    """
    model, metadata = load_checkpoint(Path(checkpoint))
    if "env" not in metadata:
        raise CheckpointError(
            f"{checkpoint} does not record the env it was trained on; it cannot be evaluated."
        )
    domain = get_domain(metadata["env"]["id"])
    env = {"id": domain.env_id, "config": domain.eval_env(metadata["env"]["config"], config)}
    fit_to_env(Path(checkpoint), model, env)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "env": env,
        "checkpoint": str(Path(checkpoint).resolve()),
        "eval": to_dict(config),  # so that a reader can tell which episodes the figures are of
    }
    results.update(domain.evaluate(model, metadata, env["config"], out, config, reward))
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results
