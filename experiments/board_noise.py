"""How precisely must a policy know where the blocks are? A state policy's success when the block positions
it reads are off by Gaussian noise of a given size, the target for a pixel model's board reader.

    MUJOCO_GL=egl python experiments/board_noise.py --policy runs/bench-hs1p/sft-bc10/checkpoints/policy

Each block's x and y each get noise of standard deviation sigma / sqrt(2), so sigma is the root mean square
of the 2-D position error; yaw is left exact. Two kinds of noise: 'episode' draws one offset per block and
episode (a reader that is consistently wrong about a layout), 'step' draws a new one every step. Every
setting runs the same seeded block2block episodes (the reference evaluation protocol). Results go to
OUT/results.json and a plot to OUT/board_noise.png.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import tyro

from siefm.checkpoint import load_checkpoint
from siefm.domains.tabletop.env import TabletopConfig
from siefm.domains.tabletop.evaluate import (
    BatchPolicy,
    PolicyFactory,
    efm_batch_policy,
    evaluate_tabletop,
    pooled,
)


@dataclass(frozen=True)
class Args:
    policy: Path
    """A state policy checkpoint of the 8-block tabletop (`siefm sft` on state observations)."""
    out: Path = Path("runs/bench-board-noise")
    sigmas_cm: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 2.0, 3.0, 5.0])
    kinds: list[Literal["episode", "step"]] = field(default_factory=lambda: ["episode", "step"])
    episodes: int = 200
    seed: int = 12345


def noisy_policy(make_policy: PolicyFactory, sigma_cm: float, kind: str, prefix: int) -> PolicyFactory:
    """`make_policy` reading each block's x, y with Gaussian noise (rows of 4 after `prefix` numbers)."""
    per_axis = sigma_cm / 100 / np.sqrt(2)

    def make(seed: int) -> BatchPolicy:
        act, rng, offsets = make_policy(seed), np.random.default_rng(seed), {}

        def noisy(states: np.ndarray, instructions, boards) -> np.ndarray:
            states = states.copy()
            for i, board in enumerate(boards):
                rows = states[i, prefix:].reshape(-1, 4)  # a view: writes reach `states`
                if kind == "step" or board.steps == 0 or id(board) not in offsets:
                    offsets[id(board)] = rng.normal(0.0, per_axis, size=(len(rows), 2))
                rows[:, :2] += offsets[id(board)]
            return act(states, instructions, boards)

        return noisy

    return make


def main(args: Args) -> None:
    model, metadata = load_checkpoint(args.policy)
    if model.config.observation != "state" or model.config.state_encoder != "objects":
        raise SystemExit(f"{args.policy} is not a state policy of the tabletop (object rows).")
    env_config = TabletopConfig(**{**metadata["env"]["config"], "observation": "state"})
    rows = []
    for kind in args.kinds:
        for sigma in args.sigmas_cm:
            start = time.perf_counter()
            make = noisy_policy(efm_batch_policy(model.eval()), sigma, kind, model.config.object_prefix_dim)
            result = pooled(evaluate_tabletop(make, env_config, ["block2block"], args.episodes, args.seed))
            rows.append({"kind": kind, "sigma_cm": sigma, **result.summary()})
            rows[-1]["seconds"] = round(time.perf_counter() - start, 1)
            print(json.dumps(rows[-1]))
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"policy": str(args.policy), "episodes": args.episodes, "seed": args.seed, "rows": rows}
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(rows, args.out / "board_noise.png")
    print(f"results: {args.out / 'results.json'}")


def plot(rows: list[dict], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(5.5, 3.5))
    for kind, label in (("episode", "one offset per episode"), ("step", "a new offset every step")):
        mine = [r for r in rows if r["kind"] == kind]
        if mine:
            low, high = np.array([r["success_ci95"] for r in mine]).T
            rate = np.array([r["success_rate"] for r in mine])
            sigma = [r["sigma_cm"] for r in mine]
            axes.errorbar(sigma, rate, yerr=[rate - low, high - rate], marker="o", capsize=3, label=label)
    axes.set_xlabel("block position error, rms (cm)")
    axes.set_ylabel("block2block success")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main(tyro.cli(Args))
