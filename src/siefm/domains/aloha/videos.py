"""Annotated videos of a policy's Aloha episodes: the top camera under a caption with the task, the step t,
d(o, g), the reward r = d_t - d_{t+1}, whether the success detector (d <= s) fires, and the simulator's
stage and success.

Video k is episode k of the evaluation (reset with seed + k: the same object poses). The policy samples
from its own generator seeded seed + k, so a video does not depend on how many are written; its actions
are the evaluated episode's only with deterministic actions (the evaluation samples every episode from one
stream).
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from siefm.data.cameras import resize_frames
from siefm.domains.aloha.env import TASK_TEXT, AlohaConfig, AlohaEnv
from siefm.domains.gymnasium_env.env import GymEnvConfig, observation_map
from siefm.eval.frames import annotate_frame
from siefm.improve.reward import RewardModel
from siefm.models.efm import EFMBase

VIDEO_SIZE = 240  # the top camera's side in video frames: the 96 px observations are too small to read


@torch.no_grad()
def write_videos(
    model: EFMBase,
    env: GymEnvConfig,
    reward: RewardModel | None,
    out_dir: Path,
    episodes: int,
    seed: int,
    deterministic: bool = False,
    max_steps: int | None = None,
    size: int = VIDEO_SIZE,
) -> list[Path]:
    """Plays episodes seed, ..., seed + episodes - 1 of the recorded `env` with `model` (to its first success,
    a fault or `max_steps`, default the env's limit) and writes `out_dir/aloha-{k:02d}-{outcome}.gif` at 10
    fps, one frame per 10 Hz step plus the first; d(o, g) is drawn when a `reward` model is given."""
    aloha = AlohaEnv(AlohaConfig(**env.kwargs))
    mapping = observation_map(env)
    task = env.task or TASK_TEXT[aloha.config.task]
    threshold = None if reward is None else reward.success_threshold
    readers = [model] if reward is None else [model, reward.model]  # each model tokenizes the task its way
    goals = {m: m.goal_input([task]) for m in readers}
    pixels = any(m.reads_frames for m in readers)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(episodes):
        generator = torch.Generator().manual_seed(seed + k)
        obs, info = aloha.reset(seed=seed + k)
        cameras = [mapping.camera(obs)] * 2 if pixels else []  # the first frame twice
        d = _distance(reward, goals, mapping.state(obs), cameras)
        frames = [_frame(aloha, size, task, 0, d, None, threshold, info)]
        for t in range(1, (max_steps or env.max_steps) + 1):
            inputs = _inputs(model, mapping.state(obs), cameras)
            action, _ = model.act(inputs, goals[model], deterministic=deterministic, generator=generator)
            obs, _, terminated, _, info = aloha.step(action[0].numpy().astype(np.float64))
            if pixels:
                cameras = [cameras[-1], mapping.camera(obs)]
            previous, d = d, _distance(reward, goals, mapping.state(obs), cameras)
            r = None if d is None else previous - d
            frames.append(_frame(aloha, size, task, t, d, r, threshold, info))
            if terminated:  # success, or a fault that invalidated the simulation
                break
        outcome = "success" if info["is_success"] else "failure"
        paths.append(out_dir / f"aloha-{k:02d}-{outcome}.gif")
        iio.imwrite(paths[-1], np.stack(frames), duration=100, loop=0)
    aloha.close()
    return paths


def _inputs(model: EFMBase, state: np.ndarray, cameras: list[np.ndarray]) -> dict[str, torch.Tensor]:
    """What `model` reads of one observation: the state, and a pixel model's previous and current top-camera
    frames at its size (as the evaluation's `model_policy` gives them)."""
    inputs = {"state": torch.from_numpy(state)[None]}
    if model.reads_frames:
        inputs["pixels"] = torch.from_numpy(resize_frames(np.stack(cameras), model.config.image_size))[None]
    return inputs


def _distance(
    reward: RewardModel | None, goals: dict, state: np.ndarray, cameras: list[np.ndarray]
) -> float | None:
    if reward is None:
        return None
    return float(reward.distance(_inputs(reward.model, state, cameras), goals[reward.model])[0])


def _frame(
    env: AlohaEnv,
    size: int,
    task: str,
    step: int,
    d: float | None,
    r: float | None,
    threshold: float | None,
    info: dict,
) -> np.ndarray:
    # Rendered apart from the observations (which stay as the policy sees them), at a readable size.
    frame = env.physics.render(height=size, width=size, camera_id="top")
    outcome = "success" if info["is_success"] else ("fault" if "fault" in info else "no success yet")
    lines = [task, f"simulator: stage {info['stage']}/4, {outcome}"]
    status = f"t={step}"
    if d is not None and threshold is not None:
        lines.append(f"detector d <= {threshold:.1f}: {'fires' if d <= threshold else 'off'}")
        status += f"  d={d:.1f}"
    if r is not None:
        status += f"  r={r:+.2f}"
    return annotate_frame(frame, "\n".join(lines), status, lines=len(lines))
