"""Camera frames of a tabletop dataset, rendered from its states (datasets store states, not images).

Each frame is rendered by posing a board as the frame's state describes it (`TabletopEnv.show_state`)
and rendering the policy's camera. Choice: rendering from states keeps a 100K-episode dataset at 250 MB
instead of tens of GB of images, lets one dataset serve any image size, and costs a fraction of a
millisecond per frame. What it leaves out: a block's small tilt and sink while it is pushed (it is drawn
at rest and upright); a test bounds the difference to the live camera.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from tqdm.auto import tqdm

from siefm.data.dataset import DatasetError, EpisodeDataset
from siefm.envs.tabletop import TabletopConfig, TabletopEnv
from siefm.envs.tabletop.camera import Camera

TABLETOP_ID = "siefm/Tabletop-v0"


def render_dataset_frames(dataset: EpisodeDataset, size: int) -> np.ndarray:
    """(F, size, size, 3) uint8: every frame of a tabletop dataset, in frame order."""
    return np.concatenate(list(dataset_frame_chunks(dataset, size)))


def dataset_frame_chunks(
    dataset: EpisodeDataset, size: int, chunk_frames: int = 4096
) -> Iterator[np.ndarray]:
    """The dataset's frames in frame order, rendered `chunk_frames` at a time: a consumer that keeps only
    each chunk's encoding (Stage 1's frozen features) never holds all the images, which at 128 x 128 are
    15 GB for 300K frames."""
    env = dataset.info.get("siefm", {}).get("env", {})
    if env.get("id") != TABLETOP_ID:
        raise DatasetError(f"pixel observations are rendered for tabletop datasets, not {env.get('id')!r}.")
    board = TabletopEnv(TabletopConfig(**{**env["config"], "image_size": (size, size)}))
    camera = Camera(board, size)
    states = dataset.columns["observation.state"]
    try:
        with tqdm(total=len(states), desc="dataset frames", unit="frame", mininterval=1.0) as progress:
            for start in range(0, len(states), chunk_frames):
                chunk = np.empty((min(chunk_frames, len(states) - start), size, size, 3), dtype=np.uint8)
                for i in range(len(chunk)):
                    board.show_state(states[start + i])
                    chunk[i] = camera.frame()
                progress.update(len(chunk))
                yield chunk
    finally:
        board.close()


def frame_pairs(dataset: EpisodeDataset) -> np.ndarray:
    """(F, 2) int64: each frame's previous frame (itself at an episode's start) and itself."""
    current = np.arange(dataset.num_frames, dtype=np.int64)
    previous = current - 1
    for start, _ in dataset.episode_bounds:
        previous[start] = start
    return np.stack([previous, current], axis=1)
