"""How well a board-reading pixel EFM (`--sft.model.pixel-readout board`) locates the blocks on the
validation episodes of its own Stage 1 run, which it never trained on.

    MUJOCO_GL=egl python experiments/board_reader.py --run runs/board/sft

Every `--stride`-th frame of the run's validation episodes is rendered, encoded and read; each block's
estimated centre is compared with the recorded one. Besides the error's median and mean, it counts how
often the reader mistakes a block for the other block of its colour (the 8-block set has two of each
colour, told apart by shape only): the estimate is nearer the other block than its own, with the two at
least 5 cm apart. Results go to RUN/board_reader.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

from siefm.checkpoint import load_checkpoint
from siefm.data.dataset import read_dataset
from siefm.data.pixels import encoded_state_chunks
from siefm.domains.tabletop.scene import BLOCK_SETS
from siefm.models.board_efm import BoardEFM

APART_CM = 5.0  # a same-colour pair closer than this is not counted for mix-ups


@dataclass(frozen=True)
class Args:
    run: Path
    """A finished Stage 1 run of a board-reading pixel model."""
    checkpoint: str = "reward"
    """Which of the run's checkpoints to read with ('reward' or 'policy'; they share nothing but the data)."""
    stride: int = 5
    """Read every stride-th frame (neighbouring frames are near copies)."""


@torch.no_grad()
def read_board(args: Args) -> dict:
    model, metadata = load_checkpoint(args.run / "checkpoints" / args.checkpoint)
    if not isinstance(model, BoardEFM):
        raise SystemExit(f"{args.run} is not a board-reading pixel run (--sft.model.pixel-readout board).")
    val_ids = np.asarray(json.loads((args.run / "sft_summary.json").read_text())["val_episode_ids"])
    dataset = read_dataset(Path(metadata["dataset"])).select_episodes(val_ids)
    keep = np.arange(0, dataset.num_frames, args.stride)
    states = dataset.columns["observation.state"][keep]
    blocks = torch.from_numpy(states[:, model.config.object_prefix_dim :]).float()
    rows = blocks.unflatten(1, (model.num_objects, -1))
    chunks = encoded_state_chunks(dataset, states, model.config.image_size, model.vision)  # kept frames only
    estimate = torch.cat([model.reader(features.float()) for features in chunks])
    error_cm = 100 * (estimate[..., :2] - rows[..., :2]).norm(dim=-1)  # (frames, blocks)
    return {
        "frames": len(keep),
        "episodes": len(val_ids),
        "median_error_cm": round(float(error_cm.median()), 2),
        "mean_error_cm": round(float(error_cm.mean()), 2),
        "rms_error_cm": round(float(error_cm.square().mean().sqrt()), 2),  # board_noise.py's sigma
        "within_2cm": round(float((error_cm < 2).float().mean()), 3),
        "within_5cm": round(float((error_cm < 5).float().mean()), 3),
        "same_colour_mix_ups": mix_ups(estimate, rows, metadata["env"]["config"]["block_set"]),
        "per_block_median_cm": [round(float(m), 2) for m in error_cm.median(dim=0).values],
    }


def mix_ups(estimate: torch.Tensor, rows: torch.Tensor, block_set: str) -> float | None:
    """Share of (frame, block) estimates nearer the other block of the same colour than to their own,
    among blocks whose same-colour partner is at least APART_CM away; None for sets without pairs."""
    colours = [block.colour for block in BLOCK_SETS[block_set]]
    partner = [
        next((j for j, c in enumerate(colours) if c == colour and j != i), None)
        for i, colour in enumerate(colours)
    ]
    counted = mixed = 0
    for i, j in enumerate(partner):
        if j is None:
            continue
        apart = 100 * (rows[:, i, :2] - rows[:, j, :2]).norm(dim=-1) >= APART_CM
        own = (estimate[:, i, :2] - rows[:, i, :2]).norm(dim=-1)
        other = (estimate[:, i, :2] - rows[:, j, :2]).norm(dim=-1)
        counted += int(apart.sum())
        mixed += int((apart & (other < own)).sum())
    return round(mixed / counted, 3) if counted else None


def main(args: Args) -> None:
    torch.set_num_threads(2)
    result = {"run": str(args.run), "checkpoint": args.checkpoint, **read_board(args)}
    (args.run / "board_reader.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(tyro.cli(Args))
