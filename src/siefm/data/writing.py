"""Writing episodes in the LeRobot v3.0 layout (siefm.data.dataset describes it): all at once
(`write_dataset`), or episode by episode through siefm.data.stream, which shares these helpers."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from siefm.data.dataset import (
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_PATH,
    DTYPES,
    EPISODES_PATH,
    STANDARD_COLUMNS,
    DatasetError,
)


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
            if array.dtype.name not in DTYPES:
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


QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}  # those LeRobot writes


def _stats(values: np.ndarray) -> dict[str, list[float] | list[int]]:
    flat = values.reshape(len(values), -1).astype(np.float64)  # (F, k), scalars as k = 1 like LeRobot
    return {
        "min": flat.min(axis=0).tolist(),
        "max": flat.max(axis=0).tolist(),
        "mean": flat.mean(axis=0).tolist(),
        "std": flat.std(axis=0).tolist(),
        "count": [len(values)],
        **{name: np.quantile(flat, q, axis=0).tolist() for name, q in QUANTILES.items()},
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
        "video_files_size_in_mb": 500,  # LeRobot's split_dataset reads it; siefm writes no video
        "fps": fps,
        "splits": {"train": f"0:{len(lengths)}"},
        "data_path": DATA_PATH,
        "video_path": None,
        "features": all_features,
    }
