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
from siefm.data.video import VIDEO_PATH, encode_video, image_stats, merge_image_stats, video_feature

Cameras = dict[str, tuple[int, int]]  # a camera feature's name -> its frames' (height, width)


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
            Every episode has the same columns; arrays are float32, int64 or bool, shaped (T,) or (T, k>=2),
            or camera frames: uint8 (T, H, W, 3), written as an MP4 video feature (siefm.data.video).
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
    episodes, frames, cameras = split_cameras(episodes)
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
        episode_task = task_indices(task_per_episode, [])
        columns = episodes_columns(episodes, features, lengths, episode_task, fps)
        files = _write_files(tmp, columns, lengths, max_rows_per_file)
        camera_stats: dict[str, list[dict[str, Any]]] = {key: [] for key in cameras}
        for number, in_file in enumerate(files):
            for key, stats in camera_stats.items():
                stats.append(write_video(tmp, key, number, [frames[key][i] for i in in_file], fps))
        _write_meta(tmp, columns, lengths, file_numbers(files), task_per_episode, camera_stats, fps)
        info = _info(features, lengths, fps, robot_type, len(set(task_per_episode)), cameras)
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


def split_cameras(
    episodes: Sequence[Mapping[str, np.ndarray]],
) -> tuple[list[dict[str, np.ndarray]], dict[str, list[np.ndarray]], Cameras]:
    """Episodes without their camera columns (uint8 (T, H, W, 3)), those columns' frames per episode, and
    each camera's frame size."""
    if not episodes:
        return [], {}, {}
    keys = [name for name, values in episodes[0].items() if np.asarray(values).ndim == 4]
    cameras: Cameras = {}
    for key in keys:
        first = np.asarray(episodes[0][key])
        for i, episode in enumerate(episodes):
            frames = np.asarray(episode.get(key))
            if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != first.shape[1:]:
                raise ValueError(
                    f"episode {i} column {key!r} ({frames.dtype} {frames.shape}): camera frames are uint8 "
                    f"(T, H, W, 3) of one size in every episode (episode 0: {first.shape[1:]})"
                )
        if first.shape[-1] != 3:
            raise ValueError(f"column {key!r}: camera frames are RGB, (T, H, W, 3); got {first.shape}")
        cameras[key] = first.shape[1], first.shape[2]
    frames = {key: [np.asarray(episode[key]) for episode in episodes] for key in keys}
    rest = [{name: values for name, values in episode.items() if name not in keys} for episode in episodes]
    return rest, frames, cameras


def episodes_columns(
    episodes: Sequence[Mapping[str, np.ndarray]],
    features: Mapping[str, tuple[str, int]],
    lengths: np.ndarray,
    episode_task: Sequence[int],
    fps: int,
    first_episode: int = 0,
    first_frame: int = 0,
) -> dict[str, np.ndarray]:
    """Every frame's columns, LeRobot's standard ones included, for episodes numbered from `first_episode`
    whose frames are numbered from `first_frame`, given each episode's task index."""
    frame_index = np.concatenate([np.arange(n, dtype=np.int64) for n in lengths])
    columns = {name: np.concatenate([np.asarray(e[name]) for e in episodes]) for name in features}
    return columns | {
        "timestamp": (frame_index / fps).astype(np.float32),
        "frame_index": frame_index,
        "episode_index": np.repeat(first_episode + np.arange(len(episodes), dtype=np.int64), lengths),
        "index": first_frame + np.arange(lengths.sum(), dtype=np.int64),
        "task_index": np.repeat(np.asarray(episode_task, dtype=np.int64), lengths),
    }


def task_indices(task_per_episode: Sequence[str], task_names: list[str]) -> list[int]:
    """Each episode's task index in `task_names`, which gains the new strings in first-appearance order."""
    task_names += [t for t in dict.fromkeys(task_per_episode) if t not in task_names]
    return [task_names.index(t) for t in task_per_episode]


def _write_files(
    tmp: Path, columns: Mapping[str, np.ndarray], lengths: np.ndarray, max_rows_per_file: int
) -> list[np.ndarray]:
    """Writes every frame's `columns` as data files under `tmp`; returns the episodes of each file."""
    # An episode never spans two data files: start a new file where the next episode would overflow.
    files: list[list[int]] = [[]]
    rows_in_file = 0
    for i, length in enumerate(lengths):
        if rows_in_file > 0 and rows_in_file + length > max_rows_per_file:
            files.append([])
            rows_in_file = 0
        files[-1].append(i)
        rows_in_file += length
    stops = np.cumsum(lengths)
    for number, in_file in enumerate(files):
        start, stop = stops[in_file[0]] - lengths[in_file[0]], stops[in_file[-1]]
        path = tmp / _data_path(number)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_parquet(_to_table({name: values[start:stop] for name, values in columns.items()}), path)
    return [np.array(in_file, dtype=np.int64) for in_file in files]


def file_numbers(files: list[np.ndarray]) -> np.ndarray:
    """Each episode's file number, from the episodes of each file."""
    return np.concatenate([np.full(len(in_file), number) for number, in_file in enumerate(files)])


def write_video(root: Path, key: str, file_number: int, frames: list[np.ndarray], fps: int) -> dict[str, Any]:
    """Writes one file's episodes of camera `key` as one MP4; returns the frames' `image_stats`."""
    stacked = np.concatenate(frames)
    encode_video(stacked, root / _video_path(key, file_number), fps)
    return image_stats(stacked)


def _video_path(key: str, file_number: int) -> str:
    chunk, file = divmod(file_number, CHUNKS_SIZE)
    return VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)


def _data_path(file_number: int) -> str:
    """The data file of a dataset's `file_number`-th file, CHUNKS_SIZE files per chunk directory."""
    return DATA_PATH.format(chunk_index=file_number // CHUNKS_SIZE, file_index=file_number % CHUNKS_SIZE)


def _write_meta(
    root: Path,
    columns: Mapping[str, np.ndarray],
    lengths: np.ndarray,
    file_number: np.ndarray,
    task_per_episode: list[str],
    camera_stats: Mapping[str, list[dict[str, Any]]],
    fps: int,
) -> None:
    """Writes meta/episodes, meta/tasks.parquet and meta/stats.json (not info.json) under `root`, given
    every frame's columns (standard ones included), the episode lengths, the data file of each episode and
    the `image_stats` of each camera's video files (whose episodes are those of the data files)."""
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
    # A video file holds its data file's episodes in order: each starts where the one before it ended.
    first_in_file = np.flatnonzero(np.diff(file_number, prepend=-1))
    frames_before = (
        stops
        - lengths
        - np.repeat(
            stops[first_in_file] - lengths[first_in_file], np.diff(np.append(first_in_file, len(lengths)))
        )
    )
    for key in camera_stats:
        episodes_table |= {
            f"videos/{key}/chunk_index": chunk_index,
            f"videos/{key}/file_index": file_index,
            f"videos/{key}/from_timestamp": frames_before / fps,
            f"videos/{key}/to_timestamp": (frames_before + lengths) / fps,
        }
    _write_parquet(pa.table(episodes_table), root / EPISODES_PATH)
    _write_parquet(_tasks_table(task_names), root / "meta" / "tasks.parquet")
    stats = {name: _stats(values) for name, values in columns.items()}
    stats |= {key: merge_image_stats(parts) for key, parts in camera_stats.items()}
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
    features: Mapping[str, tuple[str, int]],
    lengths: np.ndarray,
    fps: int,
    robot_type: str,
    num_tasks: int,
    cameras: Cameras,
) -> dict[str, Any]:
    all_features = {name: {"dtype": d, "shape": [w], "names": None} for name, (d, w) in features.items()}
    all_features |= {name: video_feature(height, width, fps) for name, (height, width) in cameras.items()}
    all_features |= {name: {"dtype": d, "shape": [1], "names": None} for name, d in STANDARD_COLUMNS.items()}
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": len(lengths),
        "total_frames": int(lengths.sum()),
        "total_tasks": num_tasks,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 500,
        "fps": fps,
        "splits": {"train": f"0:{len(lengths)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if cameras else None,
        "features": all_features,
    }
