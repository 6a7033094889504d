"""Stage 2 collection speed on the tabletop (state observations): the local fleet against Ray actors.

    siefm sft --dataset DATA --out runs/sft-bc10 --sft.data-fraction 0.1 --sft.steps 30000 \
        --sft.eval-every 1000 --sft.reward-selection steps_to_go_loss
    python benchmarks/fleet.py --sft-run runs/sft-bc10 --out runs/bench-fleet

For each fleet (local; Ray with 1, 2 and 4 actors) it times `--iterations` Stage 2 collections of
N x B = 1,024 samples of complete block2block episodes with 16 robots, with the same policy and reward
model, and reports the median env steps/s, and its ratio to the raw simulator rate (one process stepping
one env with random 3 cm pushes, nothing else). Ray's start-up (ray.init plus spawning the actors) is timed
separately. Ray actors send finished episodes every `stream_interval_s` (default 0.2 s); `ray-2-per-episode`
is 2 actors sending each episode the moment it ends. Results go to OUT/results.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

from siefm.checkpoint import load_checkpoint
from siefm.config import ImproveConfig
from siefm.domains import REGISTRY
from siefm.domains.tabletop.env import TabletopConfig, TabletopEnv
from siefm.eval.summaries import machine_info
from siefm.improve.fleet import make_fleet, practice_env
from siefm.improve.ray_fleet import RayFleet, import_ray
from siefm.improve.reward import RewardModel
from siefm.improve.rollout import collect_practice

TABLETOP_ID = REGISTRY["tabletop"].env_id


@dataclass(frozen=True)
class Args:
    sft_run: Path
    """A tabletop Stage 1 run (its policy acts, its reward model ends episodes)."""
    out: Path = Path("runs/bench-fleet")
    iterations: int = 5
    actors: tuple[int, ...] = (1, 2, 4)
    raw_steps: int = 3000
    per_episode_actors: tuple[int, ...] = (2,)
    """Also time these actor counts with stream_interval_s = 0 (a Ray message per episode)."""


def raw_simulator_rate(steps: int) -> float:
    env = TabletopEnv(TabletopConfig())
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps):
        env.step(rng.uniform(-0.03, 0.03, 2))
    return steps / (time.perf_counter() - start)


def main(args: Args) -> dict:
    torch.set_num_threads(1)
    policy, meta = load_checkpoint(args.sft_run / "checkpoints" / "policy")
    reward_efm, reward_meta = load_checkpoint(args.sft_run / "checkpoints" / "reward")
    reward_model = RewardModel(reward_efm, reward_meta["success_threshold"])
    config = ImproveConfig().resolve(TABLETOP_ID)
    env = practice_env(meta["env"], config)
    results: dict = {"raw_env_steps_per_second": raw_simulator_rate(args.raw_steps), "fleets": {}}

    fleet = make_fleet(env, config)
    rates = []
    for _ in range(args.iterations):
        start = time.perf_counter()
        batch = collect_practice(
            fleet,
            policy,
            reward_model,
            num_samples=config.samples_per_iteration,
            max_episode_steps=200,
            gamma=config.gamma,
        )
        rates.append(batch.num_samples / (time.perf_counter() - start))
    results["fleets"]["local"] = {"env_steps_per_second": float(np.median(rates)), "all": rates}

    ray = import_ray()
    runs = [(actors, ImproveConfig().stream_interval_s) for actors in args.actors]
    runs += [(actors, 0.0) for actors in args.per_episode_actors]
    for actors, interval in runs:
        ray_config = ImproveConfig(fleet="ray", actors=actors, stream_interval_s=interval).resolve(
            TABLETOP_ID
        )
        start = time.perf_counter()
        ray_fleet = RayFleet(env, ray_config, policy, reward_model)
        ray.get([actor.set_weights.remote(policy.state_dict(), -1) for actor in ray_fleet.actors])
        startup = time.perf_counter() - start
        rates = []
        for iteration in range(args.iterations):
            start = time.perf_counter()
            batch = ray_fleet.collect(policy, 0, iteration, 200)
            rates.append(batch.num_samples / (time.perf_counter() - start))
        ray_fleet.close()
        name = (
            f"ray-{actors}" if interval == ImproveConfig().stream_interval_s else f"ray-{actors}-per-episode"
        )
        results["fleets"][name] = {
            "env_steps_per_second": float(np.median(rates)),
            "all": rates,
            "startup_seconds": startup,
            "stream_interval_s": interval,
        }
        ray.shutdown()  # each configuration starts its own instance, so start-up is measured each time
    raw = results["raw_env_steps_per_second"]
    local = results["fleets"]["local"]["env_steps_per_second"]
    for entry in results["fleets"].values():
        entry["ratio_to_raw_simulator"] = entry["env_steps_per_second"] / raw
        entry["ratio_to_local_fleet"] = entry["env_steps_per_second"] / local
    results["machine"] = machine_info()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    out = main(tyro.cli(Args))
    print(f"raw simulator: {out['raw_env_steps_per_second']:.0f} env steps/s")
    for name, entry in out["fleets"].items():
        startup = f"start-up {entry['startup_seconds']:.1f} s" if "startup_seconds" in entry else ""
        rate, local, raw = (
            entry[k] for k in ("env_steps_per_second", "ratio_to_local_fleet", "ratio_to_raw_simulator")
        )
        print(f"{name:18s} {rate:7.0f} env steps/s  x{local:.2f} local  x{raw:.2f} raw  {startup}")
