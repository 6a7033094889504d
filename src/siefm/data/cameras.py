"""A dataset's recorded camera frames, decoded by frame row and resized to a model's square frames.

Which camera a pixel model reads (`camera_key`): `observation.image`, else the camera feature whose name
sorts first.
Frames are resized to the model's `size` x `size` by area-weighted (antialiased bilinear) interpolation;
a frame that is not square is squeezed, the same way in the dataset and in the live env (`resize_frames`),
so the model sees what it was trained on.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from siefm.data.dataset import DatasetError, EpisodeDataset
from siefm.data.video import IMAGE_FEATURE, check_video, decode_at, decode_image, decode_video

OPEN_EPISODES = 64  # decoded episodes a reader keeps (its bounded cache): about 60 MB at 96 x 96 x 300


def camera_key(dataset: EpisodeDataset) -> str | None:
    """The camera feature a pixel model of this dataset reads (None: the dataset records no camera):
    `observation.image`, else the camera feature whose name sorts first (the gymnasium domain's fleet
    picks the live camera by the same rule)."""
    if not dataset.camera_keys:
        return None
    return min(dataset.camera_keys, key=lambda name: (name != IMAGE_FEATURE, name))


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, size, size, 3) uint8 (unchanged when already that size)."""
    if frames.shape[1:3] == (size, size):
        return frames
    pixels = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    resized = torch.nn.functional.interpolate(
        pixels, size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


class RecordedFrames:
    """Reads frames of one camera of a dataset by row, at `size` x `size`.

    Reading a few frames of many episodes (a training batch) goes once through each video file, seeking
    to the key frame before each frame asked for (at most one frame earlier) and decoding on to it: a frame
    and its previous one, as a pixel model reads them, cost two or three decoded frames. Reading most of an
    episode decodes it whole and keeps it: the last OPEN_EPISODES whole episodes are kept (the bounded
    cache). Picklable: each worker process builds its own cache.
    """

    def __init__(self, dataset: EpisodeDataset, key: str, size: int):
        feature = dataset.info["features"][key]
        self.kind, self.size, self.fps = feature["dtype"], size, dataset.info["fps"]
        self.where = dataset.cameras[key]
        self.bounds = dataset.episode_bounds
        self.starts = dataset.episode_bounds[:, 0]
        if self.kind == "video":
            template = dataset.info["video_path"]
            paths = [
                str(Path(dataset.root) / template.format(video_key=key, chunk_index=c, file_index=f))
                for c, f, _ in self.where.tolist()
            ]
            self.paths = np.array(paths, dtype=object)  # each episode's video file
        self._episodes: OrderedDict[int, np.ndarray] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_episodes": OrderedDict()}  # workers start with an empty cache

    def episode(self, i: int) -> np.ndarray:
        """(T, size, size, 3) uint8: every frame of episode `i` (its position in the dataset)."""
        if i in self._episodes:
            self._episodes.move_to_end(i)
            return self._episodes[i]
        start, stop = self.bounds[i]
        if self.kind == "video":
            frames = decode_video(Path(self.paths[i]), self.where[i, 2] / 1e6, int(stop - start))
        else:
            frames = np.stack([decode_image(data) for data in self.where[start:stop]])
        self._episodes[i] = frames = resize_frames(frames, self.size)
        if len(self._episodes) > OPEN_EPISODES:
            self._episodes.popitem(last=False)
        return frames

    def read(self, rows: np.ndarray) -> np.ndarray:
        """(N, size, size, 3) uint8: the frames of dataset rows `rows` (any order, repeats allowed)."""
        rows = np.asarray(rows, dtype=np.int64)
        episodes = np.searchsorted(self.starts, rows, side="right") - 1
        out = np.empty((len(rows), self.size, self.size, 3), dtype=np.uint8)
        scattered = np.zeros(len(rows), dtype=bool)  # rows read frame by frame, below
        for i in np.unique(episodes).tolist():
            here = episodes == i
            offsets = rows[here] - self.starts[i]
            length = int(self.bounds[i, 1] - self.bounds[i, 0])
            if i in self._episodes or 2 * len(np.unique(offsets)) > length or self.kind != "video":
                out[here] = self.episode(i)[offsets]  # most of the episode: decode it whole and keep it
            else:
                scattered |= here
        if scattered.any():  # a few frames of many episodes: one pass through each video file
            times = self.where[episodes, 2] / 1e6 + (rows - self.starts[episodes]) / self.fps
            paths = self.paths[episodes]
            for path in np.unique(paths[scattered]):
                picked = np.flatnonzero(scattered & (paths == path))
                order = picked[np.argsort(times[picked], kind="stable")]
                out[order] = resize_frames(decode_at(Path(path), times[order]), self.size)
        return out

    def close(self) -> None:
        self._episodes.clear()


def check_camera(dataset: EpisodeDataset) -> None:
    """Raises VideoError if a video of the camera pixel models read is missing, cannot be decoded, or is
    shorter than the episodes it should hold: checked before training starts, not when a batch needs it."""
    key = camera_key(dataset)
    if key is None or dataset.info["features"][key]["dtype"] != "video":
        return
    reader = RecordedFrames(dataset, key, 1)
    ends = reader.where[:, 2] / 1e6 * dataset.info["fps"] + (reader.bounds[:, 1] - reader.bounds[:, 0])
    needed: dict[str, int] = {}  # each file's frames: up to the end of its last episode
    for path, end in zip(reader.paths, np.round(ends).astype(int).tolist(), strict=True):
        needed[path] = max(needed.get(path, 0), end)
    for path, frames in needed.items():
        check_video(Path(path), frames)


def recorded_frames(dataset: EpisodeDataset, size: int) -> RecordedFrames:
    """The reader of the camera a pixel model of `dataset` reads; DatasetError if it records none."""
    key = camera_key(dataset)
    if key is None:
        raise DatasetError(f"{dataset.root} records no camera feature (video or image).")
    return RecordedFrames(dataset, key, size)
