"""Tabletop demonstrations: the scripted oracle in parallel worker processes -> a dataset on disk.

Every episode is seeded by its index, so the dataset does not depend on how episodes are split across workers.
Failed oracle episodes are not written (a choice; docs/tabletop.md). Each written episode holds T + 1 frames
(the last is the final observation, with a zero action), its instruction as the LeRobot task, steps-to-go
labels and the simulator's per-frame success.
"""

from __future__ import annotations

import logging
import multiprocessing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from siefm.data.sampler import steps_to_go_labels
from siefm.data.writing import write_dataset
from siefm.domains import REGISTRY
from siefm.domains.tabletop.env import TabletopConfig, TabletopEnv
from siefm.domains.tabletop.oracle import PushOracle
from siefm.domains.tabletop.tasks import FAMILIES

log = logging.getLogger("siefm")

FPS = 10
ROBOT_TYPE = "tabletop-pusher"
CHUNK_SIZE = 200  # episodes per worker job


@dataclass(frozen=True)
class TabletopCollectConfig:
    """Oracle demonstrations on the tabletop."""

    num_episodes: int = 1000
    """Episodes to attempt; failed ones are not written."""
    env: TabletopConfig = field(default_factory=TabletopConfig)
    noise: float = 0.005
    """Gaussian action noise of the oracle (metres per step), for diverse demonstrations."""
    max_detours: int = 0
    """Sub-optimal demonstrations: each episode first visits 0..max_detours random board points (uniform
    count), as the paper's PointMass demonstrations visit waypoints. 0 gives the plain oracle."""
    seed: int = 0
    """Episode k is seeded with seed + k."""
    num_workers: int = 2
    """Worker processes (one per core)."""

    def __post_init__(self) -> None:
        for name in ("num_episodes", "num_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"TabletopCollectConfig.{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("noise", "max_detours"):
            if getattr(self, name) < 0:
                raise ValueError(f"TabletopCollectConfig.{name} must be >= 0, got {getattr(self, name)}.")


def run_oracle_episode(
    env: TabletopEnv, oracle: PushOracle, seed: int
) -> tuple[dict[str, np.ndarray], str] | None:
    """One seeded oracle episode as frame columns and its instruction, or None if the oracle failed."""
    obs, info = env.reset(seed=seed)
    oracle.reset(seed=seed)  # per-episode noise: the dataset does not depend on the split across workers
    states, actions, successes = [obs["state"]], [], [info["is_success"]]
    terminated = truncated = False
    while not (terminated or truncated):
        action = oracle.act(env)
        obs, _, terminated, truncated, info = env.step(action)
        states.append(obs["state"])
        actions.append(action)
        successes.append(info["is_success"])
    if not terminated:
        return None
    frames = len(states)
    actions.append(np.zeros(2))
    episode = {
        "observation.state": np.stack(states).astype(np.float32),
        "action": np.stack(actions).astype(np.float32),
        "is_success": np.array(successes, dtype=bool),
        "is_terminal": np.arange(frames) == frames - 1,
        "steps_to_go": steps_to_go_labels(frames),
        "family_index": np.full(frames, FAMILIES.index(env.task.family), dtype=np.int64),
    }
    return episode, obs["instruction"]


def _collect_chunk(
    job: tuple[TabletopCollectConfig, list[int]],
) -> tuple[list[int], list[tuple[dict[str, np.ndarray], str] | None]]:
    config, seeds = job
    env = TabletopEnv(config.env)
    oracle = PushOracle(noise=config.noise, max_detours=config.max_detours)
    return seeds, [run_oracle_episode(env, oracle, seed) for seed in seeds]


def collect_tabletop(out: Path, config: TabletopCollectConfig, overwrite: bool = False) -> Path:
    """Collects oracle demonstrations in `config.num_workers` processes and writes the dataset at `out`."""
    if config.env.observation != "state":
        raise ValueError(
            "tabletop collection records state observations (pixels are rendered later from the states); "
            "drop --tabletop.env.observation or set it to state."
        )
    seeds = [config.seed + k for k in range(config.num_episodes)]
    # Small chunks keep both workers busy to the end and let the progress bar move; results are keyed by
    # seed, so the order in which chunks finish does not matter.
    chunks = [seeds[i : i + CHUNK_SIZE] for i in range(0, len(seeds), CHUNK_SIZE)]
    by_seed: dict[int, tuple[dict[str, np.ndarray], str] | None] = {}
    with (
        multiprocessing.get_context("spawn").Pool(config.num_workers) as pool,
        tqdm(total=len(seeds), desc="oracle episodes", unit="ep", mininterval=1.0) as bar,
    ):
        jobs = pool.imap_unordered(_collect_chunk, [(config, chunk) for chunk in chunks])
        for chunk, results in jobs:
            by_seed.update(zip(chunk, results, strict=True))
            bar.update(len(chunk))
    kept = [by_seed[seed] for seed in seeds if by_seed[seed] is not None]
    if not kept:
        raise ValueError("the oracle solved no episode; check the env config.")
    log.info("kept %d of %d oracle episodes", len(kept), config.num_episodes)
    extra = {
        "env": {"id": REGISTRY["tabletop"].env_id, "config": asdict(config.env)},
        "collect": asdict(config),
        "families": FAMILIES,
    }
    return write_dataset(
        Path(out),
        [episode for episode, _ in kept],
        fps=FPS,
        tasks=[instruction for _, instruction in kept],
        robot_type=ROBOT_TYPE,
        extra_info=extra,
        overwrite=overwrite,
    )
