"""Stage 2 collection speed against the simulator's own speed, for any domain's Stage 1 run.

    python benchmarks/fleet.py --sft-run runs/demo-tabletop/sft --out runs/bench-fleet
    python benchmarks/fleet.py --sft-run runs/demo-pointmass/sft --out runs/bench-fleet-pointmass

In one run, with the checkpoint's env, `--num-envs` robots and the same policy and reward model, it
measures (median over `--iterations` collections of N x B samples of complete episodes):
- the raw simulator: the domain's own fleet stepped with actions drawn from the practice actions, no model
  and no bookkeeping, in one process, and in two processes at once with half the robots each (what this
  machine gives two processes; on a shared 2-core machine, less than 2x);
- the practice fleet in this process (one torch thread), with `--env-workers` worker processes stepping
  the simulators, and as `--actors` Ray actors (start-up timed apart).
Ratios are to the raw simulator in one process ("x raw") and to the in-process fleet. Results go to
OUT/results.json (docs/fleet.md).
"""

from __future__ import annotations

import json
import multiprocessing
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import tyro

from siefm.checkpoint import load_checkpoint
from siefm.config import ImproveConfig
from siefm.domains import find_domain
from siefm.domains.gymnasium_env.domain import GymnasiumDomain
from siefm.eval.summaries import machine_info
from siefm.improve.fleet import make_fleet, practice_env
from siefm.improve.ray_fleet import RayFleet, import_ray
from siefm.improve.reward import RewardModel
from siefm.improve.rollout import collect_practice


@dataclass(frozen=True)
class Args:
    sft_run: Path
    """A Stage 1 run of any domain (its policy acts, its reward model ends episodes)."""
    out: Path = Path("runs/bench-fleet")
    iterations: int = 5
    num_envs: int = 16
    max_episode_steps: int = 200
    raw_steps: int = 300
    """Fleet steps of the raw simulator (each steps every robot)."""
    env_workers: tuple[int, ...] = (2,)
    actors: tuple[int, ...] = (1, 2)


def raw_rate(env: dict, config: ImproveConfig, actions: np.ndarray, steps: int, seed: int) -> float:
    """Env steps/s of the domain's fleet alone, stepping every robot with practice actions at random."""
    fleet = make_fleet(env, replace(config, env_workers=0, seed=seed))
    fleet.reset()
    rng = np.random.default_rng(seed)
    draws = actions[rng.integers(len(actions), size=(steps, fleet.num_envs))]
    start = time.perf_counter()
    for step in range(steps):
        fleet.step(draws[step])
    rate = steps * fleet.num_envs / (time.perf_counter() - start)
    fleet.close()
    return rate


def _raw_worker(arguments: tuple) -> float:
    return raw_rate(*arguments)


def collection_rates(fleet: Any, policy: Any, reward_model: RewardModel, config: ImproveConfig, args: Args):
    rates, batch = [], None
    for _ in range(args.iterations):
        start = time.perf_counter()
        batch = collect_practice(
            fleet,
            policy,
            reward_model,
            num_samples=config.samples_per_iteration,
            max_episode_steps=args.max_episode_steps,
            gamma=config.gamma,
        )
        rates.append(batch.num_samples / (time.perf_counter() - start))
    return rates, batch


def main(args: Args) -> dict:
    torch.set_num_threads(1)
    policy, meta = load_checkpoint(args.sft_run / "checkpoints" / "policy")
    reward_efm, reward_meta = load_checkpoint(args.sft_run / "checkpoints" / "reward")
    reward_model = RewardModel(reward_efm, reward_meta["success_threshold"])
    env_id = meta["env"]["id"]
    config = ImproveConfig(num_envs=args.num_envs).resolve(env_id)
    if isinstance(find_domain(env_id), GymnasiumDomain):
        # Every robot in this process (env workers are measured apart below): gymnasium's async vector env
        # would start processes, which the raw simulator's pool workers may not.
        config = replace(config, vector_env="sync")
    env = practice_env(meta["env"], config)
    results: dict = {"env": env, "num_envs": args.num_envs, "fleets": {}}

    fleet = make_fleet(env, config)
    rates, batch = collection_rates(fleet, policy, reward_model, config, args)
    fleet.close()
    results["fleets"]["local"] = {"env_steps_per_second": float(np.median(rates)), "all": rates}
    actions = batch.action.numpy().astype(np.float64)
    half = replace(config, num_envs=max(1, args.num_envs // 2))
    ones, twos = [], []
    for repeat in range(3):  # alternated, so both see the same moments of a noisy machine
        ones.append(raw_rate(env, config, actions, args.raw_steps, repeat))
        with multiprocessing.get_context("fork").Pool(2) as pool:
            pair = [(env, half, actions, args.raw_steps, 10 * repeat + k) for k in (1, 2)]
            twos.append(float(sum(pool.map(_raw_worker, pair))))
    results["raw_env_steps_per_second"] = float(np.median(ones))
    results["raw_two_processes_env_steps_per_second"] = float(np.median(twos))
    results["raw_all"] = {"one_process": ones, "two_processes": twos}

    for workers in args.env_workers:
        worker_config = replace(config, env_workers=workers)
        start = time.perf_counter()
        fleet = make_fleet(env, worker_config)
        startup = time.perf_counter() - start
        rates, _ = collection_rates(fleet, policy, reward_model, worker_config, args)
        fleet.close()
        results["fleets"][f"local, {workers} env workers"] = {
            "env_steps_per_second": float(np.median(rates)),
            "all": rates,
            "startup_seconds": startup,
        }

    ray = import_ray()
    for actors in args.actors:
        ray_config = replace(config, fleet="ray", actors=actors)
        start = time.perf_counter()
        ray_fleet = RayFleet(env, ray_config, policy, reward_model)
        ray.get([actor.set_weights.remote(policy.state_dict(), -1) for actor in ray_fleet.actors])
        startup = time.perf_counter() - start
        rates = []
        for iteration in range(args.iterations):
            start = time.perf_counter()
            batch = ray_fleet.collect(policy, 0, iteration, args.max_episode_steps)
            rates.append(batch.num_samples / (time.perf_counter() - start))
        ray_fleet.close()
        results["fleets"][f"ray-{actors}"] = {
            "env_steps_per_second": float(np.median(rates)),
            "all": rates,
            "startup_seconds": startup,
        }
        ray.shutdown()  # each configuration starts its own instance, so start-up is measured each time

    raw = results["raw_env_steps_per_second"]
    results["raw_two_processes_ratio"] = results["raw_two_processes_env_steps_per_second"] / raw
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
    raw, two = out["raw_env_steps_per_second"], out["raw_two_processes_env_steps_per_second"]
    print(f"raw simulator: {raw:.0f} env steps/s in one process, {two:.0f} in two ({two / raw:.2f}x)")
    for name, entry in out["fleets"].items():
        startup = f"start-up {entry['startup_seconds']:.1f} s" if "startup_seconds" in entry else ""
        rate, local, ratio = (
            entry[k] for k in ("env_steps_per_second", "ratio_to_local_fleet", "ratio_to_raw_simulator")
        )
        print(f"{name:22s} {rate:7.0f} env steps/s  x{local:.2f} local  x{ratio:.2f} raw  {startup}")
