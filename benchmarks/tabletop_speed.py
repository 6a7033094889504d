"""Tabletop env speed on one core: env steps/s with state and with pixel observations (8 blocks).

    MUJOCO_GL=egl python benchmarks/tabletop_speed.py --repeats 5

Random small pushes (uniform in +-3 cm per axis, like the oracle's speed), resetting when an episode ends.
Each repeat times `steps` env steps; the median over repeats is reported, with the spread, as JSON.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
import tyro

from siefm.domains.tabletop.env import TabletopConfig, TabletopEnv


@dataclass(frozen=True)
class Args:
    steps: int = 2000
    """Env steps per timed repeat."""
    repeats: int = 5
    """Timed repeats per observation mode."""
    image_size: tuple[int, int] = (96, 96)
    """Frame size in pixels mode."""


def steps_per_second(env: TabletopEnv, steps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in rng.uniform(-0.03, 0.03, size=(steps, 2)):
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main(args: Args) -> None:
    torch.set_num_threads(1)
    results = {}
    for mode in ("state", "pixels"):
        env = TabletopEnv(TabletopConfig(observation=mode, image_size=args.image_size))
        rates = [steps_per_second(env, args.steps, seed) for seed in range(args.repeats)]
        env.close()
        results[mode] = {"median": float(np.median(rates)), "min": min(rates), "max": max(rates)}
    results["machine"] = {"cores": os.cpu_count(), "mujoco_gl": os.environ.get("MUJOCO_GL")}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(tyro.cli(Args))
