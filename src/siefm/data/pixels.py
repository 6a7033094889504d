"""Camera frames of a dataset: decoded from its recorded camera, or rendered from its states.

A dataset that records a camera (a video or image feature, siefm.data.cameras) gives its own frames. One
that records states only (siefm's domains write no images) has each frame rendered by its domain
(`Domain.frame_source`): the tabletop poses a board as the frame's state describes it and renders the
policy's camera. Choice: rendering from states keeps a 100K-episode dataset at 250 MB instead of tens of GB
of images, lets one dataset serve any image size, and costs a fraction of a millisecond per frame. What it
leaves out: a block's small tilt and sink while it is pushed (it is drawn at rest and upright); a test
bounds the difference to the live camera.

Both are `FrameReader`s: frames by dataset row, picklable, so worker processes read their own.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from siefm.data.cameras import camera_key, recorded_frames
from siefm.data.dataset import DatasetError, EpisodeDataset
from siefm.domains import FrameSource, find_domain, get_domain
from siefm.models.vision import VisionEncoder, encode_in_small_batches
from siefm.threads import cores_given

CHUNK_FRAMES = 4096  # frames rendered (and encoded) per chunk, by a worker per task: 47 MB of features at 96


class FrameReader(Protocol):
    """Frames of a dataset by row, at one square size."""

    def read(self, rows: np.ndarray) -> np.ndarray:
        """(N,) dataset rows -> (N, size, size, 3) uint8 frames."""
        ...

    def close(self) -> None: ...


class RenderedFrames:
    """A `FrameReader` rendering the states of `env` ({"id", "config"}) with its domain's camera; the camera
    is made on first use, so a reader pickles as its states alone."""

    def __init__(self, env: dict[str, Any], states: np.ndarray, size: int):
        self.env, self.states, self.size = env, states, size
        self._source: FrameSource | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_source": None}

    def read(self, rows: np.ndarray) -> np.ndarray:
        if self._source is None:
            self._source = get_domain(self.env["id"]).frame_source(self.env["config"], self.size)
        return self._source.render(self.states[rows])

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None


def frame_reader(dataset: EpisodeDataset, size: int) -> FrameReader:
    """The frames of `dataset`: its recorded camera's, else rendered from its states by its domain."""
    if camera_key(dataset) is not None:
        return recorded_frames(dataset, size)
    return RenderedFrames(dataset_env(dataset), dataset.columns["observation.state"], size)


def render_dataset_frames(dataset: EpisodeDataset, size: int) -> np.ndarray:
    """(F, size, size, 3) uint8: every frame of a dataset, in frame order."""
    return np.concatenate(list(dataset_frame_chunks(dataset, size)))


def sample_dataset_frames(dataset: EpisodeDataset, size: int, count: int, seed: int) -> np.ndarray:
    """(count, size, size, 3) uint8 frames drawn uniformly, without replacement, from a dataset (all of
    them if it has fewer)."""
    picked = np.random.default_rng(seed).permutation(dataset.num_frames)[:count]
    reader = frame_reader(dataset, size)
    try:
        return reader.read(np.sort(picked))
    finally:
        reader.close()


def dataset_frame_chunks(
    dataset: EpisodeDataset, size: int, chunk_frames: int = CHUNK_FRAMES
) -> Iterator[np.ndarray]:
    """The dataset's frames in frame order, read `chunk_frames` at a time: a consumer that keeps only
    each chunk's encoding never holds all the images, which at 128 x 128 are 15 GB for 300K frames."""
    reader = frame_reader(dataset, size)
    try:
        with tqdm(total=dataset.num_frames, desc="dataset frames", unit="frame", mininterval=1.0) as progress:
            for rows in row_chunks(dataset.num_frames, chunk_frames):
                chunk = reader.read(rows)
                progress.update(len(chunk))
                yield chunk
    finally:
        reader.close()


def row_chunks(num_frames: int, chunk_frames: int) -> list[np.ndarray]:
    return [
        np.arange(start, min(start + chunk_frames, num_frames))
        for start in range(0, num_frames, chunk_frames)
    ]


def encoded_dataset_frames(
    dataset: EpisodeDataset,
    size: int,
    encoder: VisionEncoder,
    workers: int | None = None,
    chunk_frames: int = CHUNK_FRAMES,
) -> torch.Tensor:
    """(F, C, h, w) float16 features of a frozen `encoder` for every frame of a dataset (float16
    halves the cache; the towers read them as float32), read and encoded `chunk_frames` at a time by
    `workers` processes (None: one per core this process is given, at most 4: `taskset -c 0` or a
    one-CPU quota encodes in this process, where a worker per machine core would share the one core).

    Choice: separate processes, each with one torch thread, because the encoder's small batches
    (`encode_in_small_batches`) keep a second thread of one process mostly idle; on this 2-core machine
    two processes rendered and encoded 1.9x as many frames per second as one with two threads. A dataset
    of one chunk is done in this process, where starting workers would cost more than it saves."""
    pieces = row_chunks(dataset.num_frames, chunk_frames)
    workers = min(cores_given(), 4) if workers is None else workers
    reader = frame_reader(dataset, size)
    with tqdm(total=dataset.num_frames, desc="dataset frames", unit="frame", mininterval=1.0) as progress:
        if workers > 1 and len(pieces) > 1:
            context = torch.multiprocessing.get_context("spawn")  # no forked OpenMP or EGL state
            with context.Pool(min(workers, len(pieces)), _start_worker, (reader, encoder, 1)) as pool:
                return stack_chunks(pool.imap(_encode_in_worker, pieces), dataset.num_frames, progress)
        else:
            encode = FrameEncoder(reader, encoder)
            try:
                return stack_chunks(map(encode, pieces), dataset.num_frames, progress)
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
    encode = FrameEncoder(RenderedFrames(dataset_env(dataset), states, size), encoder)
    try:
        yield from map(encode, row_chunks(len(states), CHUNK_FRAMES))
    finally:
        encode.close()


class FrameEncoder:
    """Reads frames and encodes them with a frozen encoder: (N,) rows -> (N, C, h, w) float16."""

    def __init__(self, reader: FrameReader, encoder: VisionEncoder):
        self.reader, self.encoder = reader, encoder

    @torch.no_grad()
    def __call__(self, rows: np.ndarray) -> torch.Tensor:
        return encode_in_small_batches(self.encoder, torch.from_numpy(self.reader.read(rows))).half()

    def close(self) -> None:
        self.reader.close()


# Each pool process's own reader (a board and camera, or a decoder) and encoder.
_worker: FrameEncoder | None = None


def _start_worker(reader: FrameReader, encoder: VisionEncoder, threads: int) -> None:
    global _worker
    torch.set_num_threads(threads)
    _worker = FrameEncoder(reader, encoder)


def _encode_in_worker(rows: np.ndarray) -> torch.Tensor:
    assert _worker is not None, "_start_worker runs first in every pool process"
    return _worker(rows)


class StreamedImages:
    """A dataset's frames read on demand, standing in for the (F, H, W, 3) uint8 tensor of all of them:
    `images[ids]` reads the frames of any index tensor. `prefetched` reads the frames of the coming
    training batches in worker processes while the model trains on the current one."""

    def __init__(self, reader: FrameReader, num_frames: int):
        self.reader, self.num_frames = reader, num_frames

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, ids: torch.Tensor) -> torch.Tensor:
        rows, inverse = np.unique(ids.numpy().ravel(), return_inverse=True)
        frames = torch.from_numpy(self.reader.read(rows))
        return frames[torch.from_numpy(inverse)].reshape(*ids.shape, *frames.shape[1:])

    def prefetched(self, batches: Iterator[torch.Tensor], workers: int, depth: int) -> Iterator[ReadBatch]:
        """For each (B, ...) index tensor of `batches`, in order: its distinct rows' frames (R, H, W, 3)
        and the index tensor renumbered into them. Up to `depth` batches are read ahead by `workers`
        processes (each with its own reader and its bounded cache), so memory holds about `depth` batches."""
        context = torch.multiprocessing.get_context("spawn")  # no forked OpenMP or EGL state
        with context.Pool(workers, _start_reader, (self.reader,)) as pool:
            pending: list[tuple[Any, torch.Tensor]] = []
            for ids in batches:
                rows, inverse = np.unique(ids.numpy().ravel(), return_inverse=True)
                pending.append((pool.apply_async(_read_in_worker, (rows,)), torch.from_numpy(inverse)))
                if len(pending) > depth:
                    yield _finished(*pending.pop(0), ids.shape)
            while pending:
                yield _finished(*pending.pop(0), ids.shape)


ReadBatch = tuple[torch.Tensor, torch.Tensor]  # (R, H, W, 3) frames, and the batch's indices into them


READ_TIMEOUT_S = 600  # a reader that has not answered by then has died (e.g. killed for memory)


def _finished(result: Any, inverse: torch.Tensor, shape: torch.Size) -> ReadBatch:
    try:
        frames = result.get(timeout=READ_TIMEOUT_S)
    except multiprocessing.TimeoutError as error:
        raise RuntimeError(
            f"a process reading streamed frames gave no batch in {READ_TIMEOUT_S} s; it may have been killed "
            "(for memory?). Rerun with --sft.frames memory if the frames fit, or with fewer other jobs."
        ) from error
    return torch.from_numpy(frames), inverse.reshape(shape)


_reader: FrameReader | None = None  # each prefetching process's own reader


def _start_reader(reader: FrameReader) -> None:
    global _reader
    torch.set_num_threads(1)
    _reader = reader


def _read_in_worker(rows: np.ndarray) -> np.ndarray:
    assert _reader is not None, "_start_reader runs first in every pool process"
    return _reader.read(rows)


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
