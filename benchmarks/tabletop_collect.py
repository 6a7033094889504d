"""Throughput of parallel tabletop demonstration collection (the oracle in worker processes).

    python benchmarks/tabletop_collect.py --out runs/tabletop-data --episodes 1000

Prints JSON: attempted and kept episodes, frames, seconds, attempts per second, size on disk, and kept
episodes per task family.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from siefm.data.dataset import read_dataset
from siefm.domains.tabletop.collect import TabletopCollectConfig, collect_tabletop
from siefm.domains.tabletop.tasks import FAMILIES


@dataclass(frozen=True)
class Args:
    out: Path = Path("runs/tabletop-data")
    """Dataset directory (replaced)."""
    episodes: int = 1000
    """Episodes to attempt."""
    workers: int = 2
    """Worker processes."""


def main(args: Args) -> None:
    start = time.perf_counter()
    root = collect_tabletop(
        args.out, TabletopCollectConfig(num_episodes=args.episodes, num_workers=args.workers), overwrite=True
    )
    seconds = time.perf_counter() - start
    dataset = read_dataset(root)
    first_frames = dataset.episode_bounds[:, 0]
    per_family = np.bincount(dataset.columns["family_index"][first_frames], minlength=len(FAMILIES))
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    print(json.dumps({
        "attempted": args.episodes, "kept": dataset.num_episodes, "frames": dataset.num_frames,
        "seconds": seconds, "attempts_per_second": args.episodes / seconds, "bytes": size,
        "kept_per_family": dict(zip(FAMILIES, per_family.tolist(), strict=True)), "workers": args.workers,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main(tyro.cli(Args))
