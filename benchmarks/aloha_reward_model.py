"""The Aloha reward model's diagnostics: d's order correlation with time on held-out demonstrations, what d
does when the cube is dropped, and (given a Stage 2 run) the detector's precision and recall in practice.

    python benchmarks/aloha_reward_model.py --sft-run runs/aloha/sft --improve-run runs/aloha/rl \
        --out runs/aloha-reward-model

Drops: the transfer-cube demonstrator with a drop in every episode (it carries the cube part of the way,
lets go, and picks it up where it fell) plays `--episodes` seeded episodes; the frozen reward model's d is
read at every step. The drop is found from the cube's height: released at the first step after the lift
where it falls by more than 5 mm, landed when it is back below 3 cm. Reported: d at the last step held
against d at the landing and its highest value in the 5 steps after, per episode and on average, and a
plot of d along the episodes (the paper shows d rising when an object is dropped).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

from siefm.checkpoint import load_checkpoint
from siefm.data.dataset import read_dataset
from siefm.domains.aloha.demonstrator import TransferCubeDemonstrator
from siefm.domains.aloha.env import JOINTS, AlohaConfig, AlohaEnv
from siefm.eval.diagnostics import reward_model_diagnostics
from siefm.eval.summaries import pooled_detector_scores
from siefm.logging import read_metrics

CUBE_HEIGHT = 2 * JOINTS + 2  # the cube's z in the state
LIFTED, ON_TABLE, FALLING = 0.05, 0.03, 0.005  # metres


@dataclass(frozen=True)
class Args:
    sft_run: Path
    """A Stage 1 run on an Aloha transfer-cube dataset (its reward checkpoint is diagnosed)."""
    out: Path
    improve_run: Path | None = None
    """A Stage 2 run from `sft_run`: the detector's precision and recall in its practice."""
    episodes: int = 20
    seed: int = 5000
    """Drop episode k is reset with seed + k (not the dataset's seeds)."""


def drop_trace(env: AlohaEnv, model, goal: torch.Tensor, seed: int) -> dict:
    """d and the cube's height at every step of one demonstration with a drop."""
    demonstrator = TransferCubeDemonstrator(drop_probability=1.0)
    demonstrator.reset(seed)
    obs, info = env.reset(seed=seed)
    states = [obs["state"]]
    for _ in range(env.config.max_steps):
        obs, _, terminated, _, info = env.step(demonstrator(obs))
        states.append(obs["state"])
        if terminated:
            break
    with torch.no_grad():
        d = model.steps_to_go(
            {"state": torch.tensor(np.array(states), dtype=torch.float32)}, goal.expand(len(states), -1)
        )
    height = np.array(states)[:, CUBE_HEIGHT]
    return {"d": d.numpy(), "height": height, "success": bool(info["is_success"])}


def drop_moments(height: np.ndarray) -> tuple[int, int] | None:
    """(last step held, landing step) of the first drop after a lift, or None if there is none."""
    lifted = np.flatnonzero(height > LIFTED)
    if not lifted.size:
        return None
    falling = [t for t in range(lifted[0] + 1, len(height)) if height[t - 1] - height[t] > FALLING]
    if not falling:
        return None
    landed = [t for t in range(falling[0], len(height)) if height[t] < ON_TABLE]
    return (falling[0] - 1, landed[0]) if landed else None


def plot(traces: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for trace in traces[:6]:
        moments = drop_moments(trace["height"])
        (line,) = ax.plot(trace["d"], lw=1.2)
        if moments is not None:
            ax.axvspan(*moments, color=line.get_color(), alpha=0.12)
    ax.set_xlabel("step (10 Hz)")
    ax.set_ylabel("d(o, g): predicted steps to go")
    ax.set_title("Aloha transfer-cube with a drop: d along the episode (shaded: cube falling)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(args: Args) -> None:
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    model, meta = load_checkpoint(args.sft_run / "checkpoints" / "reward")
    config = json.loads((args.sft_run / "config.json").read_text())
    summary = json.loads((args.sft_run / "sft_summary.json").read_text())
    dataset = read_dataset(Path(config["dataset"]))
    results: dict = {
        "sft_run": str(args.sft_run),
        "held_out_demonstrations": reward_model_diagnostics(
            model, dataset.select_episodes(np.array(summary["val_episode_ids"]))
        ),
        "success_threshold": meta["success_threshold"],
    }
    goal = model.goal_input([meta["env"]["config"]["task"]])
    env = AlohaEnv(AlohaConfig())
    traces = [drop_trace(env, model, goal, args.seed + k) for k in range(args.episodes)]
    rows = []
    for k, trace in enumerate(traces):
        moments = drop_moments(trace["height"])
        if moments is None:
            continue
        held, landed = moments
        d = trace["d"]
        rows.append(
            {
                "seed": args.seed + k,
                "held_step": held,
                "landed_step": landed,
                "d_held": float(d[held]),
                "d_landed": float(d[landed]),
                "d_max_after": float(d[landed : landed + 6].max()),
                "success": trace["success"],
            }
        )
    rise = np.array([r["d_max_after"] - r["d_held"] for r in rows])
    results["drops"] = {
        "episodes": args.episodes,
        "drops_found": len(rows),
        "d_held_mean": float(np.mean([r["d_held"] for r in rows])),
        "d_landed_mean": float(np.mean([r["d_landed"] for r in rows])),
        "rise_to_max_after_mean": float(rise.mean()),
        "rose_in": int((rise > 0).sum()),
        "per_episode": rows,
    }
    if args.improve_run is not None:
        records = read_metrics(args.improve_run / "metrics.jsonl")
        results["practice_detector"] = pooled_detector_scores(records)
    plot(traces, args.out / "aloha_drop_d.png")
    (args.out / "aloha_reward_model.json").write_text(json.dumps(results, indent=2))
    print(
        json.dumps(
            {k: v for k, v in results.items() if k != "drops"}
            | {"drops": {k: v for k, v in results["drops"].items() if k != "per_episode"}},
            indent=2,
        )
    )


if __name__ == "__main__":
    main(tyro.cli(Args))
