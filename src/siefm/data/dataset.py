"""Episode storage on disk in the LeRobot v3.0 layout: write, read and validate.

A dataset directory holds (LeRobot v3.0's layout, so a LeRobot user's reader can open it; this module does
not import lerobot, which pins an incompatible torch):

    meta/info.json                             schema, counts, fps, file paths, extra "siefm" metadata
    meta/stats.json                            per-feature min / max / mean / std / count
    meta/tasks.parquet                         task_index -> task string
    meta/episodes/chunk-000/file-000.parquet   per episode: length, tasks, data file, [from, to) frame range
    data/chunk-CCC/file-FFF.parquet            one row per frame; an episode never spans two files

Vector features are fixed-size list columns and scalars plain columns, as Hugging Face datasets store them.
Every frame also carries LeRobot's standard columns (`STANDARD_COLUMNS`).
"""

from __future__ import annotations

import json
import math
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

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
_DTYPES: dict[str, type[np.generic]] = {"float32": np.float32, "int64": np.int64, "bool": np.bool_}
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
    """

    root: Path
    info: dict[str, Any]
    columns: dict[str, np.ndarray]
    episode_bounds: np.ndarray
    tasks: list[str]

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
        return EpisodeDataset(self.root, self.info, columns, new_bounds, self.tasks)


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


def write_dataset(
    root: Path,
    episodes: Sequence[Mapping[str, np.ndarray]],
    *,
    fps: int,
    tasks: Sequence[str] | None = None,
    robot_type: str = "unknown",
    extra_info: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    max_rows_per_file: int = 1_000_000,
) -> Path:
    """Writes episodes to `root` in the LeRobot v3.0 layout and returns `root`.

    The files go to a temporary sibling directory that is then renamed to `root`, so a crash never leaves
    a half-written dataset at `root`.

    Args:
        root: Target directory; it must not exist, or be empty, unless `overwrite`.
        episodes: Per episode, column name -> array whose first dimension is the episode length T >= 1.
            Every episode has the same columns; arrays are float32, int64 or bool, shaped (T,) or (T, k>=2).
        fps: Frames per second, for the `timestamp` column.
        tasks: `tasks[i]` is episode i's task string; "" for every episode when None.
        robot_type: Stored in info.json.
        extra_info: JSON-serialisable metadata stored under info.json's "siefm" key (env id, env params).
        overwrite: Replace an existing non-empty `root`.
        max_rows_per_file: A new data file starts where adding the next episode would pass this many rows.

    Raises:
        ValueError: The arguments are malformed (the message names the episode and column).
        DatasetError: `root` is not a directory, or is not empty and `overwrite` is False.
    """
    root = Path(root)
    features, lengths = _check_episodes(episodes)
    task_per_episode = [""] * len(episodes) if tasks is None else [str(t) for t in tasks]
    if len(task_per_episode) != len(episodes):
        raise ValueError(f"tasks has {len(task_per_episode)} entries for {len(episodes)} episodes")
    if fps <= 0 or max_rows_per_file < 1:
        raise ValueError(f"fps and max_rows_per_file must be positive, got {fps} and {max_rows_per_file}")
    try:
        extra_json = json.dumps(dict(extra_info or {}))
    except TypeError as error:
        raise ValueError(f"extra_info must be JSON-serialisable: {error}") from error
    if root.exists() and not root.is_dir():
        raise DatasetError(f"{root} exists and is not a directory; choose another dataset path.")
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        raise DatasetError(
            f"{root} already exists and is not empty; pass overwrite=True or choose another path."
        )

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f".{root.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        _write_files(tmp, episodes, features, lengths, task_per_episode, fps, max_rows_per_file)
        info = _info(features, lengths, fps, robot_type, len(set(task_per_episode)))
        info["siefm"] = json.loads(extra_json)
        (tmp / "meta" / "info.json").write_text(json.dumps(info, indent=4))
        if root.exists():  # move the old dataset aside first: a crash here leaves no dataset, never a mix
            old = root.with_name(f".{root.name}.old-{uuid.uuid4().hex[:8]}")
            root.rename(old)
            tmp.rename(root)
            shutil.rmtree(old)
        else:
            tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # still there only if something failed
    return root


def _check_episodes(
    episodes: Sequence[Mapping[str, np.ndarray]],
) -> tuple[dict[str, tuple[str, int]], np.ndarray]:
    """Validates the caller's episodes; returns name -> (dtype, width) and the episode lengths."""
    if len(episodes) == 0 or len(episodes[0]) == 0:
        raise ValueError("episodes must hold at least one episode with at least one column")
    features: dict[str, tuple[str, int]] = {}  # name -> (dtype, width), width 1 for scalars
    for name, values in episodes[0].items():
        if name in STANDARD_COLUMNS or "/" in name:  # LeRobot rejects '/' in feature names
            raise ValueError(f"column {name!r}: no '/' in names, and none of {list(STANDARD_COLUMNS)}")
        features[name] = _dtype_and_width(np.asarray(values))
    lengths = np.zeros(len(episodes), dtype=np.int64)
    for i, episode in enumerate(episodes):
        if set(episode) != set(features):
            raise ValueError(f"episode {i} has columns {sorted(episode)}; episode 0 has {sorted(features)}")
        for name, values in episode.items():
            array, (dtype, width) = np.asarray(values), features[name]
            where = f"episode {i} column {name!r} ({array.dtype} {array.shape})"
            if array.dtype.name not in _DTYPES:
                raise ValueError(f"{where}: use float32, int64 or bool, e.g. `.astype(np.float32)`")
            if array.ndim not in (1, 2) or (array.ndim == 2 and array.shape[1] < 2):
                # LeRobot reads shape [1] as a scalar, so a (T, 1) column could not round-trip.
                raise ValueError(f"{where}: use shape (T,) for scalars or (T, k>=2) for vectors")
            if _dtype_and_width(array) != (dtype, width):
                raise ValueError(f"{where}: dtype or width differs from episode 0 ({dtype}, width {width})")
        episode_lengths = {name: len(values) for name, values in episode.items()}
        if len(set(episode_lengths.values())) != 1 or min(episode_lengths.values()) < 1:
            raise ValueError(f"episode {i}: every column needs the same length T >= 1, got {episode_lengths}")
        lengths[i] = len(next(iter(episode.values())))
    return features, lengths


def _dtype_and_width(array: np.ndarray) -> tuple[str, int]:
    return array.dtype.name, array.shape[1] if array.ndim == 2 else 1


def _write_files(
    tmp: Path,
    episodes: Sequence[Mapping[str, np.ndarray]],
    features: Mapping[str, tuple[str, int]],
    lengths: np.ndarray,
    task_per_episode: list[str],
    fps: int,
    max_rows_per_file: int,
) -> None:
    """Writes the data files, episodes, tasks and stats under `tmp` (all but info.json)."""
    stops = np.cumsum(lengths)
    task_names = list(dict.fromkeys(task_per_episode))  # first-appearance order
    episode_task = np.array([task_names.index(t) for t in task_per_episode], dtype=np.int64)
    frame_index = np.concatenate([np.arange(n, dtype=np.int64) for n in lengths])
    columns = {name: np.concatenate([np.asarray(e[name]) for e in episodes]) for name in features}
    columns |= {
        "timestamp": (frame_index / fps).astype(np.float32),
        "frame_index": frame_index,
        "episode_index": np.repeat(np.arange(len(episodes), dtype=np.int64), lengths),
        "index": np.arange(stops[-1], dtype=np.int64),
        "task_index": np.repeat(episode_task, lengths),
    }

    # An episode never spans two data files: start a new file where the next episode would overflow.
    file_number = np.zeros(len(episodes), dtype=np.int64)
    rows_in_file = 0
    for i, length in enumerate(lengths):
        if rows_in_file > 0 and rows_in_file + length > max_rows_per_file:
            file_number[i:] += 1
            rows_in_file = 0
        rows_in_file += length
    for number in np.unique(file_number):
        in_file = np.flatnonzero(file_number == number)
        start, stop = stops[in_file[0]] - lengths[in_file[0]], stops[in_file[-1]]
        path = tmp / _data_path(number)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_parquet(_to_table({name: values[start:stop] for name, values in columns.items()}), path)
    _write_meta(tmp, columns, lengths, file_number, task_per_episode)


def _data_path(file_number: int) -> str:
    """The data file of a dataset's `file_number`-th file, CHUNKS_SIZE files per chunk directory."""
    return DATA_PATH.format(chunk_index=file_number // CHUNKS_SIZE, file_index=file_number % CHUNKS_SIZE)


def _write_meta(
    root: Path,
    columns: Mapping[str, np.ndarray],
    lengths: np.ndarray,
    file_number: np.ndarray,
    task_per_episode: list[str],
) -> None:
    """Writes meta/episodes, meta/tasks.parquet and meta/stats.json (not info.json) under `root`, given
    every frame's columns (standard ones included), the episode lengths and the data file of each episode."""
    stops = np.cumsum(lengths)
    task_names = list(dict.fromkeys(task_per_episode))
    chunk_index, file_index = file_number // CHUNKS_SIZE, file_number % CHUNKS_SIZE
    (root / EPISODES_PATH).parent.mkdir(parents=True, exist_ok=True)
    episodes_table = {
        "episode_index": np.arange(len(lengths), dtype=np.int64),
        "tasks": pa.array([[t] for t in task_per_episode], pa.list_(pa.string())),
        "length": lengths,
        "data/chunk_index": chunk_index,
        "data/file_index": file_index,
        "dataset_from_index": stops - lengths,
        "dataset_to_index": stops,
        "meta/episodes/chunk_index": np.zeros(len(lengths), dtype=np.int64),
        "meta/episodes/file_index": np.zeros(len(lengths), dtype=np.int64),
    }
    _write_parquet(pa.table(episodes_table), root / EPISODES_PATH)
    _write_parquet(_tasks_table(task_names), root / "meta" / "tasks.parquet")
    stats = {name: _stats(values) for name, values in columns.items()}
    (root / "meta" / "stats.json").write_text(json.dumps(stats, indent=4))


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, write_page_checksum=True)


def _to_table(columns: Mapping[str, np.ndarray]) -> pa.Table:
    arrays = {}
    for name, values in columns.items():
        if values.ndim == 2:  # (F, k) -> fixed_size_list<k>, the Arrow type of HF `Sequence(length=k)`
            flat = pa.array(np.ascontiguousarray(values).reshape(-1))
            arrays[name] = pa.FixedSizeListArray.from_arrays(flat, values.shape[1])
        else:
            arrays[name] = pa.array(values)
    return pa.table(arrays)


def _tasks_table(task_names: list[str]) -> pa.Table:
    table = pa.table({"task_index": np.arange(len(task_names), dtype=np.int64), "task": task_names})
    # LeRobot reads this file with pandas and finds task strings in the DataFrame index, so mark "task" as
    # the index in the pandas metadata, as `DataFrame.to_parquet` would. Arrow readers still see both columns.
    column_types = [("task_index", "int64", "int64"), ("task", "unicode", "object")]
    pandas_metadata = {
        "index_columns": ["task"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {"name": n, "field_name": n, "pandas_type": p, "numpy_type": t, "metadata": None}
            for n, p, t in column_types
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    return table.replace_schema_metadata({"pandas": json.dumps(pandas_metadata)})


def _stats(values: np.ndarray) -> dict[str, list[float] | list[int]]:
    flat = values.reshape(len(values), -1).astype(np.float64)  # (F, k), scalars as k = 1 like LeRobot
    return {
        "min": flat.min(axis=0).tolist(),
        "max": flat.max(axis=0).tolist(),
        "mean": flat.mean(axis=0).tolist(),
        "std": flat.std(axis=0).tolist(),
        "count": [len(values)],
    }


def _info(
    features: Mapping[str, tuple[str, int]], lengths: np.ndarray, fps: int, robot_type: str, num_tasks: int
) -> dict[str, Any]:
    all_features = {name: {"dtype": d, "shape": [w], "names": None} for name, (d, w) in features.items()}
    all_features |= {name: {"dtype": d, "shape": [1], "names": None} for name, d in STANDARD_COLUMNS.items()}
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": len(lengths),
        "total_frames": int(lengths.sum()),
        "total_tasks": num_tasks,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100,
        "fps": fps,
        "splits": {"train": f"0:{len(lengths)}"},
        "data_path": DATA_PATH,
        "video_path": None,
        "features": all_features,
    }


def read_dataset(root: Path) -> EpisodeDataset:
    """Reads and validates a dataset written by `write_dataset` (or a LeRobot v3.0 dataset without video).

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
    parts = []
    for chunk_index, file_index in files:
        path = root / info["data_path"].format(chunk_index=chunk_index, file_index=file_index)
        parts.append(_columns_from_table(_read_parquet(path), info["features"], path))
    columns = {name: np.concatenate([part[name] for part in parts]) for name in info["features"]}

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
    return EpisodeDataset(root, info, columns, bounds.astype(np.int64), tasks)


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
        shape = feature.get("shape") if isinstance(feature, dict) else None
        valid_shape = (
            isinstance(shape, list) and len(shape) == 1 and isinstance(shape[0], int) and shape[0] > 0
        )
        if not valid_shape or feature.get("dtype") not in _DTYPES:
            raise _corrupt(
                path, f"feature {name!r} needs a dtype in {list(_DTYPES)} and shape [k], got {feature}"
            )
    if missing := [name for name in STANDARD_COLUMNS if name not in info["features"]]:
        raise _corrupt(path, f"the features lack the standard columns {missing}")
    return info


def _read_tasks(path: Path) -> list[str]:
    table = _read_parquet(path)
    if "task" not in table.column_names:
        raise _corrupt(path, "column 'task' is missing")
    task_index = _int_column(table, "task_index", path)
    order = np.argsort(task_index)
    if not np.array_equal(task_index[order], np.arange(len(task_index))):
        raise _corrupt(path, f"task_index is not a permutation of 0..{len(task_index) - 1}")
    names = table.column("task").to_pylist()
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
        if values.dtype != _DTYPES[feature["dtype"]]:
            raise _corrupt(
                path, f"column {name!r} has dtype {values.dtype}, info.json says {feature['dtype']}"
            )
        columns[name] = values
    return columns
