"""Camera frames of a dataset, rendered from its states (datasets store states, not images).

Each frame is rendered by the dataset's domain (`Domain.frame_source`): the tabletop poses a board as the
frame's state describes it and renders the policy's camera. Choice: rendering from states keeps a
100K-episode dataset at 250 MB instead of tens of GB of images, lets one dataset serve any image size,
and costs a fraction of a millisecond per frame. What it leaves out: a block's small tilt and sink while
it is pushed (it is drawn at rest and upright); a test bounds the difference to the live camera.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from siefm.data.dataset import DatasetError, EpisodeDataset
from siefm.domains import FrameSource, find_domain, get_domain
from siefm.models.vision import VisionEncoder, encode_in_small_batches

CHUNK_FRAMES = 4096  # frames rendered (and encoded) per chunk, by a worker per task: 47 MB of features at 96


def render_dataset_frames(dataset: EpisodeDataset, size: int) -> np.ndarray:
    """(F, size, size, 3) uint8: every frame of a dataset, in frame order."""
    return np.concatenate(list(dataset_frame_chunks(dataset, size)))


def sample_dataset_frames(dataset: EpisodeDataset, size: int, count: int, seed: int) -> np.ndarray:
    """(count, size, size, 3) uint8: frames of `count` states drawn uniformly, without replacement, from a
    dataset (all of them if it has fewer)."""
    states = dataset.columns["observation.state"]
    picked = np.random.default_rng(seed).permutation(len(states))[:count]
    renderer = frame_source(dataset_env(dataset), size)
    try:
        return renderer.render(states[np.sort(picked)])
    finally:
        renderer.close()


def dataset_frame_chunks(
    dataset: EpisodeDataset, size: int, chunk_frames: int = CHUNK_FRAMES
) -> Iterator[np.ndarray]:
    """The dataset's frames in frame order, rendered `chunk_frames` at a time: a consumer that keeps only
    each chunk's encoding never holds all the images, which at 128 x 128 are 15 GB for 300K frames."""
    states = dataset.columns["observation.state"]
    renderer = frame_source(dataset_env(dataset), size)
    try:
        with tqdm(total=len(states), desc="dataset frames", unit="frame", mininterval=1.0) as progress:
            for start in range(0, len(states), chunk_frames):
                chunk = renderer.render(states[start : start + chunk_frames])
                progress.update(len(chunk))
                yield chunk
    finally:
        renderer.close()


def encoded_dataset_frames(
    dataset: EpisodeDataset,
    size: int,
    encoder: VisionEncoder,
    workers: int | None = None,
    chunk_frames: int = CHUNK_FRAMES,
) -> torch.Tensor:
    """(F, C, h, w) float16 features of a frozen `encoder` for every frame of a dataset (float16
    halves the cache; the towers read them as float32), rendered and encoded `chunk_frames` at a time by
    `workers` processes (None: one per CPU core, at most 4).

    Choice: separate processes, each with one torch thread, because the encoder's small batches
    (`encode_in_small_batches`) keep a second thread of one process mostly idle; on this 2-core machine
    two processes rendered and encoded 1.9x as many frames per second as one with two threads. A dataset
    of one chunk is done in this process, where starting workers would cost more than it saves."""
    states = dataset.columns["observation.state"]
    pieces = [states[start : start + chunk_frames] for start in range(0, len(states), chunk_frames)]
    workers = min(os.cpu_count() or 1, 4) if workers is None else workers
    args = (dataset_env(dataset), size, encoder)
    with tqdm(total=len(states), desc="dataset frames", unit="frame", mininterval=1.0) as progress:
        if workers > 1 and len(pieces) > 1:
            context = torch.multiprocessing.get_context("spawn")  # no forked OpenMP or EGL state
            with context.Pool(min(workers, len(pieces)), _start_worker, (*args, 1)) as pool:
                return stack_chunks(pool.imap(_encode_in_worker, pieces), len(states), progress)
        else:
            encode = FrameEncoder(*args)
            try:
                return stack_chunks(map(encode, pieces), len(states), progress)
            finally:
                encode.close()


def stack_chunks(chunks: Iterable[torch.Tensor], frames: int, progress: tqdm | None = None) -> torch.Tensor:
    """Consecutive chunks of `frames` rows, in order, in one tensor allocated at the first chunk: nothing
    is held twice, as a concatenation would."""
    stacked, start = torch.empty(0), 0
    for chunk in chunks:
        if start == 0:
            stacked = torch.empty((frames, *chunk.shape[1:]), dtype=chunk.dtype)
        stacked[start : start + len(chunk)] = chunk
        start += len(chunk)
        if progress is not None:
            progress.update(len(chunk))
    if start != frames:
        raise ValueError(f"the chunks hold {start} rows, not {frames}.")
    return stacked


def encoded_state_chunks(
    dataset: EpisodeDataset, states: np.ndarray, size: int, encoder: VisionEncoder
) -> Iterator[torch.Tensor]:
    """(N, C, h, w) float16 features of `states` (rows of the dataset's state column, any subset), rendered
    and encoded CHUNK_FRAMES at a time in this process: for benchmarks that read only some frames."""
    encode = FrameEncoder(dataset_env(dataset), size, encoder)
    try:
        for start in range(0, len(states), CHUNK_FRAMES):
            yield encode(states[start : start + CHUNK_FRAMES])
    finally:
        encode.close()


def frame_source(env: dict[str, Any], size: int) -> FrameSource:
    """The camera of the domain of `env` ({"id", "config"}), rendering its states at `size` x `size`."""
    return get_domain(env["id"]).frame_source(env["config"], size)


class FrameEncoder:
    """Renders states and encodes the frames with a frozen encoder: (N, S) -> (N, C, h, w) float16."""

    def __init__(self, env: dict[str, Any], size: int, encoder: VisionEncoder):
        self.source = frame_source(env, size)
        self.encoder = encoder

    @torch.no_grad()
    def __call__(self, states: np.ndarray) -> torch.Tensor:
        return encode_in_small_batches(self.encoder, torch.from_numpy(self.source.render(states))).half()

    def close(self) -> None:
        self.source.close()


_worker: FrameEncoder | None = None  # each pool process's own board, camera and encoder


def _start_worker(env: dict[str, Any], size: int, encoder: VisionEncoder, threads: int) -> None:
    global _worker
    torch.set_num_threads(threads)
    _worker = FrameEncoder(env, size, encoder)


def _encode_in_worker(states: np.ndarray) -> torch.Tensor:
    assert _worker is not None, "_start_worker runs first in every pool process"
    return _worker(states)


def dataset_env(dataset: EpisodeDataset) -> dict[str, Any]:
    """The env ({"id", "config"}) a dataset was recorded in, whose domain renders its frames."""
    env = dataset.info.get("siefm", {}).get("env", {})
    domain = find_domain(env.get("id", ""))
    if domain is None or not domain.renders_frames:
        raise DatasetError(
            f"camera frames are rendered from the states of a domain that has a camera; the env "
            f"{env.get('id')!r} of this dataset has none."
        )
    return env


def frame_pairs(dataset: EpisodeDataset) -> np.ndarray:
    """(F, 2) int64: each frame's previous frame (itself at an episode's start) and itself."""
    current = np.arange(dataset.num_frames, dtype=np.int64)
    previous = current - 1
    for start, _ in dataset.episode_bounds:
        previous[start] = start
    return np.stack([previous, current], axis=1)
