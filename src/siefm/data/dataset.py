"""Episode storage on disk in the LeRobot v3.0 layout: the layout, reading and validation (writing:
siefm.data.writing and, episode by episode, siefm.data.stream).

A dataset directory holds (LeRobot v3.0's layout, so a LeRobot user's reader can open it; this module does
not import lerobot, which pins an incompatible torch):

    meta/info.json                             schema, counts, fps, file paths, extra "siefm" metadata
    videos/<camera>/chunk-CCC/file-FFF.mp4     camera frames of the data file's episodes (siefm.data.video)
    meta/stats.json                            per-feature min / max / mean / std / count
    meta/tasks.parquet                         task_index -> task string
    meta/episodes/chunk-000/file-000.parquet   per episode: length, tasks, data file, [from, to) frame range
    data/chunk-CCC/file-FFF.parquet            one row per frame; an episode never spans two files

Vector features are fixed-size list columns and scalars plain columns, as Hugging Face datasets store them.
Every frame also carries LeRobot's standard columns (`STANDARD_COLUMNS`). Camera features (dtype "video",
or "image": encoded images in a parquet column) are not loaded with the other columns: `cameras` says where
each episode's frames are, and siefm.data.cameras decodes them when they are needed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from siefm.data.video import is_camera_feature

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
STREAM_PATH = "meta/stream.json"  # marks a dataset still being written episode by episode (siefm.data.stream)
CHUNKS_SIZE = 1000  # files per chunk directory, LeRobot's default
# Per-frame columns of every LeRobot dataset; `index` is the global frame number, timestamp frame_index / fps.
STANDARD_COLUMNS = {
    "timestamp": "float32",
    "frame_index": "int64",
    "episode_index": "int64",
    "index": "int64",
    "task_index": "int64",
}
DTYPES: dict[str, type[np.generic]] = {"float32": np.float32, "int64": np.int64, "bool": np.bool_}
# What the reader also takes from other writers (LeRobot keeps a float64 observation as it is): read as
# float32, the precision siefm computes in.
READ_DTYPES = DTYPES | {"float64": np.float64}
# Columns of meta/episodes that the reader needs (LeRobot also stores per-episode stats there; we do not).
_EPISODE_COLUMNS = (
    "episode_index",
    "length",
    "dataset_from_index",
    "dataset_to_index",
    "data/chunk_index",
    "data/file_index",
)


class DatasetError(ValueError):
    """A dataset on disk is missing, incomplete or inconsistent, or cannot be written where asked."""


def _corrupt(path: Path, problem: str) -> DatasetError:
    fix = "The dataset is incomplete or corrupt: write it again (e.g. re-run `siefm collect`)."
    return DatasetError(f"{path}: {problem}. {fix}")


@dataclass(frozen=True, eq=False)  # eq=False: comparing dicts of arrays elementwise has no single answer
class EpisodeDataset:
    """All frames of a dataset in memory, ordered by global frame index.

    Attributes:
        root: The directory it was read from.
        info: The parsed `meta/info.json` of that directory (`select_episodes` keeps it unchanged).
        columns: Every column for every frame: vectors (F, k), scalars (F,). The standard columns keep their
            on-disk values, so after `select_episodes` `episode_index` still names the source episode.
        episode_bounds: (E, 2) int64 [from, to) rows of each episode in `columns`.
        tasks: Task strings, indexed by the `task_index` column.
        cameras: Per camera feature, where its frames are: for a video feature, each episode's (E, 3)
            [chunk, file, from_timestamp in microseconds] (integers, like the other locations); for an
            image feature, (F,) encoded images (bytes objects), one per frame.
    """

    root: Path
    info: dict[str, Any]
    columns: dict[str, np.ndarray]
    episode_bounds: np.ndarray
    tasks: list[str]
    cameras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def camera_keys(self) -> list[str]:
        return list(self.cameras)

    @property
    def num_episodes(self) -> int:
        return len(self.episode_bounds)

    @property
    def num_frames(self) -> int:
        return len(self.columns["index"])

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """Returns the frames of episode `i` (its position in this dataset), all columns, as views."""
        if not 0 <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range: the dataset has {self.num_episodes} episodes")
        start, stop = self.episode_bounds[i]
        return {name: values[start:stop] for name, values in self.columns.items()}

    def select_episodes(self, episode_ids: np.ndarray) -> EpisodeDataset:
        """Returns an in-memory dataset holding the given episodes in the given order, bounds re-indexed.

        Args:
            episode_ids: Non-empty 1-D integer array of distinct positions in this dataset.
        """
        ids = np.asarray(episode_ids)
        if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(
                f"episode_ids must be a non-empty 1-D integer array, got {ids.dtype} {ids.shape}"
            )
        if ids.min() < 0 or ids.max() >= self.num_episodes or len(np.unique(ids)) != len(ids):
            raise ValueError(f"episode_ids must be distinct and in [0, {self.num_episodes}), got {ids}")
        bounds = self.episode_bounds[ids]
        rows = np.concatenate([np.arange(start, stop) for start, stop in bounds])
        lengths = bounds[:, 1] - bounds[:, 0]
        stops = np.cumsum(lengths)
        new_bounds = np.stack([stops - lengths, stops], axis=1).astype(np.int64)
        columns = {name: values[rows] for name, values in self.columns.items()}
        cameras = {
            key: where[rows] if self.info["features"][key]["dtype"] == "image" else where[ids]
            for key, where in self.cameras.items()
        }
        return EpisodeDataset(self.root, self.info, columns, new_bounds, self.tasks, cameras)


def subset_episode_ids(num_episodes: int, fraction: float, seed: int = 0) -> np.ndarray:
    """Returns the sorted ids of a seeded `fraction` of `num_episodes` episodes (at least one).

    Every fraction takes a prefix of the same seeded permutation, so for one seed the subsets nest:
    the 10% subset lies inside the 20% one, which lies inside the 40% one, and so on.
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    count = max(1, math.floor(fraction * num_episodes + 0.5))  # round half up, unlike Python's round()
    permutation = np.random.default_rng(seed).permutation(num_episodes)
    return np.sort(permutation[:count]).astype(np.int64)


def read_dataset(root: Path) -> EpisodeDataset:
    """Reads and validates a dataset written by `write_dataset` or by LeRobot (v3.0); camera frames are
    decoded later (siefm.data.cameras).

    Raises:
        DatasetError: Something is missing or inconsistent; the message names the file and the fix.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"{root}: no dataset directory here; check the path or write one (`siefm collect`)."
        )
    if (root / STREAM_PATH).is_file() and not (root / "meta" / "info.json").is_file():
        raise DatasetError(
            f"{root}: this dataset is still being streamed, or its writer stopped before finishing it; "
            "keep the episodes written so far with siefm.data.stream.finish_stream(root)."
        )
    info = _read_info(root / "meta" / "info.json")
    tasks = _read_tasks(root / "meta" / "tasks.parquet")
    episodes_path = root / EPISODES_PATH
    episodes = _read_parquet(episodes_path)
    meta = {name: _int_column(episodes, name, episodes_path) for name in _EPISODE_COLUMNS}
    lengths, num_episodes, num_frames = meta["length"], info["total_episodes"], info["total_frames"]
    bounds = np.stack([meta["dataset_from_index"], meta["dataset_to_index"]], axis=1)  # (E, 2)
    if num_episodes < 1 or not np.array_equal(meta["episode_index"], np.arange(num_episodes)):
        raise _corrupt(
            episodes_path, f"episode_index is not 0..{num_episodes - 1} (info.json total_episodes)"
        )
    contiguous = bounds[0, 0] == 0 and np.array_equal(bounds[1:, 0], bounds[:-1, 1])
    if not contiguous or np.any(lengths < 1) or not np.array_equal(bounds[:, 1] - bounds[:, 0], lengths):
        raise _corrupt(episodes_path, "episode frame ranges are not contiguous or disagree with 'length'")
    if bounds[-1, 1] != num_frames:
        raise _corrupt(episodes_path, f"episodes end at frame {bounds[-1, 1]}, not total_frames={num_frames}")

    # Data files in episode order; episodes are contiguous, so the files' rows concatenate in global order.
    files = dict.fromkeys(
        zip(meta["data/chunk_index"].tolist(), meta["data/file_index"].tolist(), strict=True)
    )
    numeric = {name: f for name, f in info["features"].items() if not is_camera_feature(f)}
    images = [name for name, f in info["features"].items() if f["dtype"] == "image"]
    parts, image_parts = [], []
    for chunk_index, file_index in files:
        path = root / info["data_path"].format(chunk_index=chunk_index, file_index=file_index)
        table = _read_parquet(path)
        parts.append(_columns_from_table(table, numeric, path))
        image_parts.append({name: _image_column(table, name, path) for name in images})
    columns = {name: np.concatenate([part[name] for part in parts]) for name in numeric}
    cameras = {name: np.concatenate([part[name] for part in image_parts]) for name in images}
    cameras |= _video_locations(info, episodes, episodes_path)

    data_dir = root / "data"
    if len(columns["index"]) != num_frames:
        raise _corrupt(
            data_dir, f"the data files hold {len(columns['index'])} rows, not total_frames={num_frames}"
        )
    if not np.array_equal(columns["index"], np.arange(num_frames)):
        raise _corrupt(data_dir, f"the global 'index' column is not 0..{num_frames - 1} in order")
    if not np.array_equal(columns["episode_index"], np.repeat(np.arange(num_episodes), lengths)):
        raise _corrupt(
            data_dir, f"the 'episode_index' column disagrees with the frame ranges in {episodes_path}"
        )
    if np.any(columns["task_index"] < 0) or np.any(columns["task_index"] >= len(tasks)):
        raise _corrupt(data_dir, f"'task_index' values fall outside the {len(tasks)} tasks in tasks.parquet")
    return EpisodeDataset(root, info, columns, bounds.astype(np.int64), tasks, cameras)


def _video_locations(info: dict[str, Any], episodes: pa.Table, path: Path) -> dict[str, np.ndarray]:
    """Each video feature's (E, 3) [chunk, file, from_timestamp in microseconds] per episode."""
    videos = [name for name, feature in info["features"].items() if feature["dtype"] == "video"]
    if videos and not isinstance(info.get("video_path"), str):
        raise _corrupt(path.parent.parent.parent / "info.json", "it declares videos but no 'video_path'")
    locations = {}
    for name in videos:
        prefix = f"videos/{name}/"
        chunk, file = (_int_column(episodes, prefix + part, path) for part in ("chunk_index", "file_index"))
        if prefix + "from_timestamp" not in episodes.column_names:
            raise _corrupt(path, f"column {prefix}from_timestamp is missing")
        start = episodes.column(prefix + "from_timestamp").to_numpy().astype(np.float64)
        locations[name] = np.stack([chunk, file, np.round(start * 1e6).astype(np.int64)], axis=1)
    return locations


def _image_column(table: pa.Table, name: str, path: Path) -> np.ndarray:
    """(F,) the encoded images of an image feature (Hugging Face's Image type: a struct with `bytes`)."""
    if name not in table.column_names:
        raise _corrupt(path, f"the image column {name!r} listed in info.json's features is missing")
    column = table.column(name).combine_chunks()
    if pa.types.is_struct(column.type) and column.type.get_field_index("bytes") >= 0:
        column = column.field("bytes")
    if not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        raise _corrupt(path, f"the image column {name!r} has type {column.type}, not encoded image bytes")
    values = np.empty(len(column), dtype=object)
    values[:] = column.to_pylist()
    return values


def _read_info(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise _corrupt(path, "the file is missing")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _corrupt(path, f"not valid JSON ({error})") from error
    if not isinstance(info, dict):
        raise _corrupt(path, "not a JSON object")
    if info.get("codebase_version") != CODEBASE_VERSION:
        raise DatasetError(
            f"{path}: codebase_version is {info.get('codebase_version')!r} but siefm reads only "
            f"{CODEBASE_VERSION!r}; convert it with LeRobot's converter or write it again."
        )
    for key, kind in (("total_episodes", int), ("total_frames", int), ("data_path", str), ("features", dict)):
        if not isinstance(info.get(key), kind):
            raise _corrupt(path, f"{key!r} is missing or not a {kind.__name__}")
    try:
        info["data_path"].format(chunk_index=0, file_index=0)
    except (KeyError, IndexError, ValueError) as error:
        raise _corrupt(
            path, f"data_path {info['data_path']!r} is not a valid template ({error!r})"
        ) from error
    for name, feature in info["features"].items():
        if is_camera_feature(feature):
            shape = feature.get("shape")
            if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(n, int) for n in shape)):
                raise _corrupt(path, f"camera feature {name!r} needs shape [height, width, channels]")
            continue
        shape = feature.get("shape") if isinstance(feature, dict) else None
        valid_shape = (
            isinstance(shape, list) and len(shape) == 1 and isinstance(shape[0], int) and shape[0] > 0
        )
        if not valid_shape or feature.get("dtype") not in READ_DTYPES:
            raise _corrupt(
                path, f"feature {name!r} needs a dtype in {list(READ_DTYPES)} and shape [k], got {feature}"
            )
    if missing := [name for name in STANDARD_COLUMNS if name not in info["features"]]:
        raise _corrupt(path, f"the features lack the standard columns {missing}")
    return info


# LeRobot's writer stores the task strings as the (unnamed) pandas index of tasks.parquet.
PANDAS_INDEX = "__index_level_0__"


def _read_tasks(path: Path) -> list[str]:
    table = _read_parquet(path)
    column = next((name for name in ("task", PANDAS_INDEX) if name in table.column_names), None)
    if column is None:
        raise _corrupt(path, "column 'task' is missing")
    task_index = _int_column(table, "task_index", path)
    order = np.argsort(task_index)
    if not np.array_equal(task_index[order], np.arange(len(task_index))):
        raise _corrupt(path, f"task_index is not a permutation of 0..{len(task_index) - 1}")
    names = table.column(column).to_pylist()
    return [str(names[i]) for i in order]


def _read_parquet(path: Path) -> pa.Table:
    if not path.is_file():
        raise _corrupt(path, "the file is missing")
    try:
        # Page checksums (written by `_write_parquet`) catch flipped bytes inside data pages too.
        table = pq.read_table(path, page_checksum_verification=True)
        _ = table.column_names  # names decode lazily: make a garbled one fail here, inside the try
        return table
    except (pa.ArrowException, OSError, ValueError) as error:  # truncated or garbled files land here
        raise _corrupt(path, f"cannot be read as parquet ({error})") from error


def _int_column(table: pa.Table, name: str, path: Path) -> np.ndarray:
    if name not in table.column_names:
        raise _corrupt(path, f"column {name!r} is missing")
    values = table.column(name).to_numpy()
    if not np.issubdtype(values.dtype, np.integer):
        raise _corrupt(path, f"column {name!r} has dtype {values.dtype}, expected integers")
    return values.astype(np.int64)


def _columns_from_table(table: pa.Table, features: Mapping[str, Any], path: Path) -> dict[str, np.ndarray]:
    """Converts the columns that info.json declares to numpy, checking each one's dtype and width."""
    if missing := [name for name in features if name not in table.column_names]:
        raise _corrupt(path, f"columns {missing} listed in info.json's features are missing")
    columns = {}
    for name, feature in features.items():
        column, width = table.column(name).combine_chunks(), feature["shape"][0]
        if column.null_count:
            raise _corrupt(path, f"column {name!r} has {column.null_count} missing values")
        if pa.types.is_fixed_size_list(column.type) and column.type.list_size == width:
            values = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
        elif not pa.types.is_nested(column.type) and width == 1:
            values = column.to_numpy(zero_copy_only=False)
        else:
            raise _corrupt(
                path, f"column {name!r} has type {column.type}, but info.json gives shape [{width}]"
            )
        if values.dtype != READ_DTYPES[feature["dtype"]]:
            raise _corrupt(
                path, f"column {name!r} has dtype {values.dtype}, info.json says {feature['dtype']}"
            )
        columns[name] = values.astype(np.float32) if values.dtype == np.float64 else values
    return columns
