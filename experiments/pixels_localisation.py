"""How well can a frozen vision encoder's features locate the blocks, at each frame size?

    MUJOCO_GL=egl python experiments/pixels_localisation.py --dataset runs/data-120k --sizes 64 96 128

A diagnostic for the pixel EFM's vision, apart from behaviour cloning: a small probe is trained to read the
board position of all 8 blocks from the frozen features of one frame, and scored on the frames of held-out
episodes (other layouts) as the distance between predicted and true block centre, in cm. The probe is
translation-equivariant on purpose (two 3 x 3 convolutions, one heat map per block, a spatial softmax,
then a 2-layer MLP from image to board coordinates): in a development run a probe that flattened the map
into an MLP memorised the training layouts (train loss 0.014 in z-units, test error 12.7 cm at 64 x 64).
Every frame size uses the same episodes, frames (every `--stride`-th), seed and steps. Results go to
OUT/results.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import tyro
from torch import nn

from siefm.data.dataset import EpisodeDataset, read_dataset
from siefm.data.pixels import dataset_frame_chunks
from siefm.eval.summaries import machine_info
from siefm.models.pixel_efm import SpatialSoftmax
from siefm.models.vision import build_vision_encoder, encode_in_small_batches

BLOCKS = 8
PUSHER_DIMS = 4  # the state starts with the pusher's position and target, then x, y, cos, sin per block


@dataclass(frozen=True)
class Args:
    dataset: Path
    """A tabletop dataset with the 8-block set (`siefm collect --env tabletop`)."""
    out: Path = Path("runs/bench-pixels-localisation")
    sizes: list[int] = field(default_factory=lambda: [64, 96, 128])
    vision_encoder: str = "efficientnet-lite0"
    train_episodes: int = 1200
    test_episodes: int = 300
    stride: int = 3
    """Keep every stride-th frame (neighbouring frames are near copies)."""
    steps: int = 3000
    batch_size: int = 128
    seed: int = 0


class LocalisationProbe(nn.Module):
    def __init__(self, channels: int, side: int):
        super().__init__()
        self.maps = nn.Sequential(
            nn.Conv2d(channels, 64, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, BLOCKS, 1),
            SpatialSoftmax(side),
        )
        self.to_board = nn.Sequential(nn.Linear(2 * BLOCKS, 128), nn.ReLU(), nn.Linear(128, 2 * BLOCKS))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.to_board(self.maps(features))


def split_frames(
    path: Path, train_episodes: int, test_episodes: int, stride: int
) -> tuple[EpisodeDataset, np.ndarray, torch.Tensor]:
    """The dataset's first train + test episodes, every stride-th frame of them (indices), and which of
    those frames are from the first `train_episodes` (the rest are held-out layouts)."""
    dataset = read_dataset(path).select_episodes(np.arange(train_episodes + test_episodes))
    keep = np.arange(0, dataset.num_frames, stride)
    episode_starts = np.array([start for start, _ in dataset.episode_bounds])
    is_train = torch.from_numpy(np.searchsorted(episode_starts, keep, side="right") - 1 < train_episodes)
    return dataset, keep, is_train


def probe_size(args: Args, size: int) -> dict[str, float]:
    dataset, keep, is_train = split_frames(args.dataset, args.train_episodes, args.test_episodes, args.stride)
    states = dataset.columns["observation.state"][keep]
    if states.shape[1] != PUSHER_DIMS + 4 * BLOCKS:
        width = states.shape[1]
        raise SystemExit(f"{args.dataset} is not an 8-block tabletop dataset (state width {width}).")
    blocks = states[:, PUSHER_DIMS:].reshape(len(states), BLOCKS, 4)[:, :, :2].reshape(len(states), -1)
    targets = torch.from_numpy(blocks).float()

    start = time.perf_counter()
    encoder = build_vision_encoder(args.vision_encoder, size, None, True).eval()
    kept, offset = [], 0
    for chunk in dataset_frame_chunks(dataset, size, 1024):  # encode only the kept frames
        rows = keep[(keep >= offset) & (keep < offset + len(chunk))] - offset
        kept.append(encode_in_small_batches(encoder, torch.from_numpy(chunk[rows])).half())
        offset += len(chunk)
    features = torch.cat(kept)
    encode_seconds = time.perf_counter() - start

    torch.manual_seed(args.seed)
    probe = LocalisationProbe(features.shape[1], features.shape[-1])
    optimizer = torch.optim.AdamW(probe.parameters(), 1e-3)
    mean, std = targets[is_train].mean(0), targets[is_train].std(0)
    train_x, train_y = features[is_train], (targets[is_train] - mean) / std
    generator = torch.Generator().manual_seed(args.seed)
    for _ in range(args.steps):
        batch = torch.randint(len(train_x), (args.batch_size,), generator=generator)
        loss = ((probe(train_x[batch].float()) - train_y[batch]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        test_x = features[~is_train]
        predicted = torch.cat([probe(test_x[i : i + 512].float()) for i in range(0, len(test_x), 512)])
    offsets = (predicted * std + mean - targets[~is_train]).view(-1, BLOCKS, 2)
    error_cm = (offsets.norm(dim=-1) * 100).flatten()
    return {
        "feature_map": list(features.shape[1:]),
        "median_error_cm": round(float(error_cm.median()), 2),
        "mean_error_cm": round(float(error_cm.mean()), 2),
        "within_2cm": round(float((error_cm < 2).float().mean()), 3),
        "final_train_loss": round(loss.item(), 4),
        "render_and_encode_s": round(encode_seconds, 1),
        "test_frames": int((~is_train).sum()),
    }


def main(args: Args) -> None:
    torch.set_num_threads(1)
    results = {}
    for size in args.sizes:
        results[str(size)] = probe_size(args, size)
        print(f"{size} x {size}: {results[str(size)]}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine_info(), "sizes": results}
    (args.out / "results.json").write_text(json.dumps(report, indent=2))
    print(f"results: {args.out / 'results.json'}")


if __name__ == "__main__":
    main(tyro.cli(Args))
