"""Tabletop evaluation with the reference protocol (docs/method.md, "Reference evaluation protocol"):
per-family true success, videos.

Every policy is run on the same seeded episodes: episode k of a family uses seed `seed + 10_000 f + k`, f
the family's place in `ALL_FAMILIES`, and each family gets a fresh policy seeded with its first seed, so a
family's results do not depend on which other families are evaluated.
Episodes end on the environment's own success criterion or at the time limit (200 steps); `mean_steps`
counts a failure as the limit. All boards of a family step together, so an EFM acts on one batch per step.
Videos (GIF) show the instruction, the step, and, given a reward model, d(o, g) and the reward on each frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import torch
from tqdm.auto import tqdm

from siefm.checkpoint import fit_to_env, load_checkpoint
from siefm.config import EvalConfig
from siefm.domains.tabletop.camera import Camera
from siefm.domains.tabletop.env import TabletopConfig, TabletopEnv
from siefm.domains.tabletop.oracle import PushOracle
from siefm.domains.tabletop.tasks import FAMILIES, NOVEL_FAMILY
from siefm.eval.frames import annotate_frame
from siefm.eval.stats import success_summary
from siefm.improve.reward import RewardModel
from siefm.models.efm import EFMBase

FAMILY_SEED_STRIDE = 10_000
ALL_FAMILIES = (*FAMILIES, NOVEL_FAMILY)
VIDEO_SIZE = (216, 288)  # rendered (height, width) of video frames

# Acts for a batch of boards: (states (B, S), instructions (B,), boards) -> actions (B, 2).
BatchPolicy = Callable[[np.ndarray, Sequence[str], Sequence[TabletopEnv]], np.ndarray]
# Makes a fresh, seeded policy for one family's episodes, so no state or random stream crosses families.
PolicyFactory = Callable[[int], BatchPolicy]


@dataclass
class FamilyResult:
    success: np.ndarray  # (E,) bool
    length: np.ndarray  # (E,) steps to success, or the time limit
    final_positions: np.ndarray  # (E, blocks, 2) where the blocks ended

    def summary(self) -> dict[str, object]:
        """The `results.json` form (docs/method.md, "results.json")."""
        return success_summary(self.success, self.length)


def efm_batch_policy(model: EFMBase, deterministic: bool = False) -> PolicyFactory:
    """An EFM acting on a batch of boards from their states and instructions (seeded sampling)."""
    return lambda seed: _efm_batch_policy(model, deterministic, seed)


class BoardCameras:
    """A pixel model's view of evaluation boards: one camera per board at the model's size, created on
    first sight (None for state models, which see states only)."""

    def __init__(self, model: EFMBase):
        pixels = model.reads_frames
        self.model, self.size = model, model.config.image_size if pixels else None
        self.cameras: dict[int, Camera] = {}

    def observation(self, states: np.ndarray, boards: Sequence[TabletopEnv]) -> dict[str, torch.Tensor]:
        obs = {"state": torch.from_numpy(states)}
        if self.size is not None:
            frames = []
            for board in boards:
                camera = self.cameras.setdefault(id(board), Camera(board, self.size))
                frames.append(camera.observe(new_episode=board.steps == 0))
            obs["pixels"] = torch.from_numpy(np.stack(frames))
        return self.model.frozen_inputs(obs)


def _efm_batch_policy(model: EFMBase, deterministic: bool, seed: int) -> BatchPolicy:
    generator = torch.Generator().manual_seed(seed)
    cameras = BoardCameras(model)

    @torch.no_grad()
    def act(states: np.ndarray, instructions: Sequence[str], boards: Sequence[TabletopEnv]) -> np.ndarray:
        obs = cameras.observation(states, boards)
        action, _ = model.act(
            obs, model.goal_input(instructions), deterministic=deterministic, generator=generator
        )
        return action.numpy().astype(np.float64)

    return act


def oracle_batch_policy() -> PolicyFactory:
    """The scripted push oracle (no noise): a fresh state machine per board and family."""

    def make(seed: int) -> BatchPolicy:
        oracles: dict[int, PushOracle] = {}

        def act(states: np.ndarray, instructions: Sequence[str], boards: Sequence[TabletopEnv]) -> np.ndarray:
            return np.stack([oracles.setdefault(id(board), PushOracle()).act(board) for board in boards])

        return act

    return make


def evaluate_tabletop(
    make_policy: PolicyFactory,
    env_config: TabletopConfig,
    families: Sequence[str],
    episodes: int,
    seed: int,
    max_steps: int = 200,
    reward_model: RewardModel | None = None,
    video_dir: Path | None = None,
    videos_per_family: int = 2,
) -> dict[str, FamilyResult]:
    """Runs `episodes` seeded episodes of each family; writes the first `videos_per_family` as GIFs."""
    env_config = replace(env_config, observation="state", image_size=VIDEO_SIZE)
    boards = [TabletopEnv(env_config, render_mode="rgb_array") for _ in range(episodes)]  # renders lazily
    results = {}
    for family in tqdm(families, desc="evaluation", unit="family"):
        first = seed + ALL_FAMILIES.index(family) * FAMILY_SEED_STRIDE
        seeds = list(range(first, first + episodes))
        filmed = min(videos_per_family, episodes) if video_dir is not None else 0
        results[family] = _run_family(
            make_policy(first), boards, family, seeds, max_steps, reward_model, filmed, video_dir
        )
    for board in boards:
        board.close()
    return results


def _run_family(
    policy: BatchPolicy,
    boards: list[TabletopEnv],
    family: str,
    seeds: list[int],
    max_steps: int,
    reward_model: RewardModel | None,
    filmed: int,
    video_dir: Path | None,
) -> FamilyResult:
    observations = [
        board.reset(seed=s, options={"family": family})[0] for board, s in zip(boards, seeds, strict=True)
    ]
    instructions = [obs["instruction"] for obs in observations]
    success = np.zeros(len(boards), dtype=bool)
    length = np.full(len(boards), max_steps)
    scorer = reward_model if filmed else None  # d(o, g) is only drawn on the filmed boards' frames
    cameras = BoardCameras(reward_model.model) if scorer is not None else None
    filmed_boards = boards[:filmed]
    distance = _distances(scorer, cameras, observations[:filmed], instructions[:filmed], filmed_boards)
    frames: list[list[np.ndarray]] = [[] for _ in range(filmed)]
    for k in range(filmed):
        frames[k].append(_annotate(boards[k].render(), instructions[k], 0, distance, None, k))
    for t in range(1, max_steps + 1):
        active = np.flatnonzero(~success)
        if active.size == 0:
            break
        states = np.stack([observations[i]["state"] for i in active])
        actions = policy(states, [instructions[i] for i in active], [boards[i] for i in active])
        for i, action in zip(active, actions, strict=True):
            observations[i], _, terminated, _, _ = boards[i].step(action)
            if terminated:
                success[i], length[i] = True, t
        previous = distance
        distance = _distances(scorer, cameras, observations[:filmed], instructions[:filmed], filmed_boards)
        for k in range(filmed):
            if k in active:
                reward = None if distance is None else previous[k] - distance[k]
                frames[k].append(_annotate(boards[k].render(), instructions[k], t, distance, reward, k))
    if video_dir is not None:
        video_dir.mkdir(parents=True, exist_ok=True)
        for k in range(filmed):
            outcome = "success" if success[k] else "failure"
            iio.imwrite(
                video_dir / f"{family}-{k:02d}-{outcome}.gif", np.stack(frames[k]), duration=100, loop=0
            )
    return FamilyResult(success, length, np.stack([board.block_positions() for board in boards]))


@torch.no_grad()
def _distances(
    reward_model: RewardModel | None,
    cameras: BoardCameras | None,
    observations: list[dict],
    instructions: list[str],
    boards: Sequence[TabletopEnv],
) -> np.ndarray | None:
    if reward_model is None or cameras is None:
        return None
    obs = cameras.observation(np.stack([o["state"] for o in observations]), boards)
    return reward_model.distance(obs, reward_model.model.goal_input(instructions)).numpy()


def _annotate(
    frame: np.ndarray, instruction: str, step: int, distance: np.ndarray | None, reward: float | None, k: int
) -> np.ndarray:
    """The frame under a caption: the instruction, then the step, d(o, g) and the last reward."""
    status = f"t={step}"
    if distance is not None:
        status += f"  d={distance[k]:.1f}"
    if reward is not None:
        status += f"  r={reward:+.2f}"
    return annotate_frame(frame, instruction, status)


def pooled(results: dict[str, FamilyResult]) -> FamilyResult:
    """All families' episodes as one result."""
    return FamilyResult(
        *(
            np.concatenate([getattr(r, name) for r in results.values()])
            for name in ("success", "length", "final_positions")
        )
    )


def evaluate_against_oracle(
    model: EFMBase,
    metadata: dict[str, Any],
    env: dict[str, Any],
    out: Path,
    config: EvalConfig,
    reward: Path | None,
) -> dict[str, Any]:
    """`siefm eval` on the tabletop: the policy and the oracle per family, with videos in `out/videos`
    whose d(o, g) comes from the `reward` checkpoint (None: the policy's own steps-to-go head and the
    threshold in its `metadata`)."""
    if reward is not None:
        reward_efm, reward_meta = load_checkpoint(Path(reward))
        fit_to_env(Path(reward), reward_efm, env)
    else:
        reward_efm, reward_meta = model, metadata
    reward_model = RewardModel(reward_efm, reward_meta.get("success_threshold", 0.0))
    runs = evaluate_tabletop_policies({"policy": model}, env, config, out / "videos", reward_model)
    return {**tabletop_summaries(runs), "videos": str((out / "videos").resolve())}


def tabletop_board(env: dict[str, Any], config: EvalConfig) -> TabletopConfig:
    """The evaluation board: `env`'s ({"id", "config"}), or another object set when `config.block_set`
    says so, drawing the evaluated families (validated here)."""
    return TabletopConfig(**env["config"]).with_board(config.block_set, config.families)


def evaluate_tabletop_policies(
    policies: dict[str, EFMBase],
    env: dict[str, Any],
    config: EvalConfig,
    video_dir: Path | None,
    reward_model: RewardModel | None,
    oracle: bool = True,
) -> dict[str, dict[str, FamilyResult]]:
    """Each policy (and the oracle, as "optimal") on the same seeded episodes of every family."""
    env_config = tabletop_board(env, config)
    kwargs = {
        "env_config": env_config,
        "families": env_config.task_families,
        "episodes": config.num_episodes(env["id"]),
        "seed": config.seed,
        "max_steps": config.max_steps or env_config.max_steps,
    }
    runs = {
        name: evaluate_tabletop(
            efm_batch_policy(model, config.deterministic),
            reward_model=reward_model,
            video_dir=None if video_dir is None else video_dir / name,
            videos_per_family=config.videos,
            **kwargs,
        )
        for name, model in policies.items()
    }
    if oracle:
        runs["optimal"] = evaluate_tabletop(oracle_batch_policy(), **kwargs)
    return runs


def tabletop_summaries(runs: dict[str, dict[str, FamilyResult]]) -> dict[str, Any]:
    """results.json entries: pooled over families (docs/method.md, "results.json") plus a `per_family`
    breakdown."""
    return {
        name: {**pooled(by_family).summary(), "per_family": {f: r.summary() for f, r in by_family.items()}}
        for name, by_family in runs.items()
    }
