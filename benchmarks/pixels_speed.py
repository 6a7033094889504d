"""Speed of the pixel path for each encoder choice: Stage 1 training samples/s and Stage 2 env steps/s.

    MUJOCO_GL=egl python benchmarks/pixels_speed.py --dataset runs/data-20k --out runs/bench-pixels-speed

Encoder choices (`--image-size` frames, 96 x 96 by default, 8 blocks, one torch thread, nothing else
running):
- pretrained: EfficientNet-Lite0 (frozen) + MiniLM token states (frozen);
- pretrained, no cache: the same model re-encoding both frames of every sample on every batch, which is
  what the feature cache saves;
- scratch: the scratch CNN (trained in Stage 1) + the word-token encoder.
Stage 1: `--steps` optimizer steps of batch `--batch-size` on the frames of `--episodes` demonstrations;
samples/s = batch x steps / seconds, median of `--repeats`. The one-off cost of rendering and encoding the
dataset's frames is reported separately, per frame. Stage 2: `collect_practice` of N x B = 1,024 samples
with 16 robots, a policy and a reward model of the same choice (untrained: only speed is measured), median
of `--repeats`, as env steps/s and as a ratio to the raw simulator with the camera (one board stepping with
random 3 cm pushes and rendering one frame per step). Results go to OUT/results.json.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

from siefm.config import ImproveConfig, ModelConfig, SFTConfig
from siefm.data.dataset import read_dataset
from siefm.domains import REGISTRY
from siefm.domains.tabletop.camera import Camera
from siefm.domains.tabletop.env import TabletopConfig, TabletopEnv
from siefm.eval.summaries import machine_info
from siefm.improve.fleet import make_fleet, practice_env
from siefm.improve.reward import RewardModel
from siefm.improve.rollout import collect_practice
from siefm.models.build import ENCODER_PRESETS
from siefm.sft import build_model, model_frames, sft_loss

TABLETOP_ID = REGISTRY["tabletop"].env_id


@dataclass(frozen=True)
class Args:
    dataset: Path
    """A tabletop dataset (`siefm collect --env tabletop`)."""
    out: Path = Path("runs/bench-pixels-speed")
    episodes: int = 200
    """Demonstrations whose frames Stage 1 trains on here."""
    steps: int = 50
    batch_size: int = 128
    """Pixel Stage 1's default batch."""
    repeats: int = 3
    image_size: int = ModelConfig().image_size
    """Frame side; the pixel model's default (96)."""


def model_config(choice: str, image_size: int) -> ModelConfig:
    return ModelConfig(observation="pixels", image_size=image_size, **ENCODER_PRESETS[choice]).resolve(
        TABLETOP_ID
    )


def stage1_rate(model, frames, args: Args, raw_images: torch.Tensor | None = None) -> float:
    """Samples/s of Stage 1 steps; given `raw_images`, the frames are re-encoded on every batch instead
    of read from the feature cache."""
    if raw_images is not None:
        frames = dataclasses.replace(frames, images=raw_images, images_are_features=False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(args.steps):
        loss, _ = sft_loss(model, frames.sample(args.batch_size, generator))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return args.batch_size * args.steps / (time.perf_counter() - start)


def raw_camera_rate(image_size: int, steps: int = 2000) -> float:
    env = TabletopEnv(TabletopConfig())
    env.reset(seed=0)
    camera = Camera(env, image_size)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps):
        env.step(rng.uniform(-0.03, 0.03, 2))
        camera.observe()
    return steps / (time.perf_counter() - start)


def main(args: Args) -> dict:
    torch.set_num_threads(1)
    dataset = read_dataset(args.dataset)
    subset = dataset.select_episodes(np.arange(min(args.episodes, dataset.num_episodes)))
    improve = ImproveConfig().resolve(TABLETOP_ID)
    env = practice_env(dataset.info["siefm"]["env"], improve)
    results: dict = {"raw_env_steps_per_second_with_camera": raw_camera_rate(args.image_size), "choices": {}}
    for choice in ("pretrained", "scratch"):  # 'random' computes as 'pretrained' does
        sft = SFTConfig(model=model_config(choice, args.image_size))
        model = build_model(sft, subset, None if choice == "pretrained" else _tokenizer(subset, sft))
        start = time.perf_counter()
        frames = model_frames(model, subset)
        prepare = (time.perf_counter() - start) / subset.num_frames
        entry: dict = {"prepare_seconds_per_frame": prepare, "frames": subset.num_frames}
        modes: dict = {"trained_encoder": None}
        if choice == "pretrained":
            modes = {"cached": None, "no_cache": model_frames_pixels(model, subset)}
        for mode, raw_images in modes.items():
            rates = [stage1_rate(model.train(), frames, args, raw_images) for _ in range(args.repeats)]
            entry[f"stage1_samples_per_second_{mode}"] = float(np.median(rates))
        model.eval()
        reward = RewardModel(build_model(sft, subset, getattr(model, "tokenizer", None)), 2.0)
        fleet = make_fleet(env, improve, camera_size=args.image_size)
        rates = []
        for repeat in range(args.repeats):
            start = time.perf_counter()
            batch = collect_practice(
                fleet, model, reward, num_samples=improve.samples_per_iteration, max_episode_steps=200,
                gamma=0.9, generator=torch.Generator().manual_seed(repeat),
            )  # fmt: skip
            rates.append(batch.num_samples / (time.perf_counter() - start))
        fleet.close()
        entry["stage2_env_steps_per_second"] = float(np.median(rates))
        entry["stage2_ratio_to_raw"] = (
            entry["stage2_env_steps_per_second"] / results["raw_env_steps_per_second_with_camera"]
        )
        results["choices"][choice] = entry
        print(choice, json.dumps(entry, indent=2), flush=True)
    results["command"] = "MUJOCO_GL=egl python benchmarks/pixels_speed.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
    )
    results["machine"] = machine_info()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def _tokenizer(subset, sft: SFTConfig):
    from siefm.models.text import WordTokenizer

    return WordTokenizer.from_texts(subset.tasks, sft.model.max_words)


def model_frames_pixels(model, subset) -> torch.Tensor:
    from siefm.data.pixels import render_dataset_frames

    return torch.from_numpy(render_dataset_frames(subset, model.config.image_size))


if __name__ == "__main__":
    main(tyro.cli(Args))
