"""Success of the scripted oracle on each tabletop task family (8 blocks, <= 200 steps, fixed seeds).

    python benchmarks/tabletop_oracle.py --episodes 100

Prints JSON: per family, the success rate with a Wilson 95% interval and the mean length of successful
episodes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import tyro

from siefm.domains.tabletop.env import TabletopConfig, TabletopEnv
from siefm.domains.tabletop.oracle import PushOracle
from siefm.domains.tabletop.tasks import FAMILIES
from siefm.eval.stats import wilson_interval


@dataclass(frozen=True)
class Args:
    episodes: int = 100
    """Episodes per family."""
    noise: float = 0.0
    """Gaussian action noise of the oracle (metres per step)."""
    seed: int = 1000
    """Episode k of every family uses seed + k."""


def run_family(family: str, args: Args) -> dict:
    env = TabletopEnv(TabletopConfig(families=(family,)))
    oracle = PushOracle(noise=args.noise, seed=args.seed)
    lengths = []
    for k in range(args.episodes):
        env.reset(seed=args.seed + k)
        oracle.reset()
        steps, terminated, truncated = 0, False, False
        while not (terminated or truncated):  # the env truncates at its time limit (200 steps)
            _, _, terminated, truncated, _ = env.step(oracle.act(env))
            steps += 1
        if terminated:
            lengths.append(steps)
    successes = len(lengths)
    return {
        "success_rate": successes / args.episodes,
        "success_ci95": list(wilson_interval(successes, args.episodes)),
        "mean_steps_of_successes": float(np.mean(lengths)) if lengths else None,
        "episodes": args.episodes,
    }


def main(args: Args) -> None:
    print(json.dumps({family: run_family(family, args) for family in FAMILIES}, indent=2))


if __name__ == "__main__":
    main(tyro.cli(Args))
