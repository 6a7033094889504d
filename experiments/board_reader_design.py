"""Which training choices let the board reader locate blocks more precisely? The board model's reader
(siefm.models.board_efm.BoardReader) trained alone on frozen EfficientNet-Lite0 features, one variant
at a time, and scored on held-out episodes (other layouts).

    MUJOCO_GL=egl python experiments/board_reader_design.py --dataset runs/data-det16-68k --size 128

Variants, all with the same frames, seed and steps:
- 'stage1': as Stage 1 trains it: position and yaw loss (`board_error`), AdamW at lr 3e-4;
- 'lr1e-3': the same at lr 1e-3, the localisation probe's rate (experiments/pixels_localisation.py);
- 'position-only': lr 3e-4 without the yaw term. Why it might matter: the cube's and the pentagon's yaw
  can only be told modulo their symmetry, so part of the yaw loss cannot be learnt, and it shares the
  reader's convolutions with the heat maps.
Results (median, mean and rms error in cm on the test frames) go to OUT/results.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import tyro
from pixels_localisation import PUSHER_DIMS, split_frames

from siefm.data.pixels import encoded_state_chunks
from siefm.eval.summaries import machine_info
from siefm.models.board_efm import BoardReader, board_error
from siefm.models.vision import build_vision_encoder

VARIANTS = {"stage1": (3e-4, True), "lr1e-3": (1e-3, True), "position-only": (3e-4, False)}


@dataclass(frozen=True)
class Args:
    dataset: Path
    """A tabletop dataset (`siefm collect --env tabletop`)."""
    out: Path = Path("runs/bench-board-reader-design")
    size: int = 128
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    train_episodes: int = 600
    test_episodes: int = 150
    stride: int = 3
    """Keep every stride-th frame (neighbouring frames are near copies)."""
    steps: int = 3000
    batch_size: int = 128
    seed: int = 0


def encoded_rows(args: Args) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features of the kept frames, their recorded block rows (F, blocks, 4), and which frames train."""
    dataset, keep, is_train = split_frames(args.dataset, args.train_episodes, args.test_episodes, args.stride)
    states = dataset.columns["observation.state"][keep]
    encoder = build_vision_encoder("efficientnet-lite0", args.size)
    features = torch.cat(list(encoded_state_chunks(dataset, states, args.size, encoder)))
    rows = torch.from_numpy(states[:, PUSHER_DIMS:]).float().unflatten(1, (-1, 4))
    return features, rows, is_train


def train_variant(args: Args, name: str, features, rows, is_train) -> dict[str, float]:
    lr, with_yaw = VARIANTS[name]
    torch.manual_seed(args.seed)
    reader = BoardReader(features.shape[1], features.shape[-1], rows.shape[1])
    optimizer = torch.optim.AdamW(reader.parameters(), lr, weight_decay=0.0)
    train_x, train_rows = features[is_train], rows[is_train]
    generator = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for _ in range(args.steps):
        batch = torch.randint(len(train_x), (args.batch_size,), generator=generator)
        estimate, target = reader(train_x[batch].float()), train_rows[batch]
        if not with_yaw:  # the yaw head is left untrained: its estimate is replaced by the recorded yaw
            estimate = torch.cat([estimate[..., :2], target[..., 2:]], dim=-1)
        loss, _ = board_error(estimate, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        test_x, test_rows = features[~is_train], rows[~is_train]
        estimate = torch.cat([reader(test_x[i : i + 512].float()) for i in range(0, len(test_x), 512)])
    error_cm = 100 * (estimate[..., :2] - test_rows[..., :2]).norm(dim=-1).flatten()
    return {
        "lr": lr,
        "yaw_loss": with_yaw,
        "median_error_cm": round(float(error_cm.median()), 2),
        "mean_error_cm": round(float(error_cm.mean()), 2),
        "rms_error_cm": round(float(error_cm.square().mean().sqrt()), 2),
        "within_2cm": round(float((error_cm < 2).float().mean()), 3),
        "train_seconds": round(time.perf_counter() - start, 1),
    }


def main(args: Args) -> None:
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}: choose from {list(VARIANTS)}.")
    torch.set_num_threads(1)
    start = time.perf_counter()
    features, rows, is_train = encoded_rows(args)
    report = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "machine": machine_info(),
        "frames": {"train": int(is_train.sum()), "test": int((~is_train).sum())},
        "render_and_encode_s": round(time.perf_counter() - start, 1),
        "variants": {},
    }
    for name in args.variants:
        report["variants"][name] = train_variant(args, name, features, rows, is_train)
        print(f"{name}: {report['variants'][name]}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {args.out / 'results.json'}")


if __name__ == "__main__":
    main(tyro.cli(Args))
