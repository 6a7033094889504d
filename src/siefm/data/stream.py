"""Datasets written a few episodes at a time, so a crash loses only the episodes not yet appended.

A stream has the layout of `siefm.data.dataset` (LeRobot v3.0) and is filled in two phases:
- While open, every `DatasetStream.append` writes one new data file `data/chunk-CCC/file-FFF.parquet`
  holding whole episodes with their final standard columns (global `index`, `episode_index`,
  `task_index`). It is written under a temporary name and renamed, so a file is either whole or absent.
  `meta/stream.json` holds what the meta will need (fps, robot type, extra info, the features). There is
  no `meta/info.json` yet, so `read_dataset` refuses the directory and says how to finish it.
- `finish_stream` reads the data files back and writes meta/episodes, tasks and stats, then info.json
  last. It needs nothing held in memory, so a stream whose writer crashed is finished by the same code as
  one that ran to its end.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from siefm.data.dataset import (
    STANDARD_COLUMNS,
    STREAM_PATH,
    DatasetError,
    _columns_from_table,
    _corrupt,
    _read_parquet,
)
from siefm.data.writing import (
    _check_episodes,
    _data_path,
    _info,
    _to_table,
    _video_path,
    _write_meta,
    _write_parquet,
    episodes_columns,
    split_cameras,
    task_indices,
    write_video,
)

# Parquet key-value metadata of a data file: its episodes' task strings, and its cameras' `image_stats`.
TASKS_KEY, CAMERA_STATS_KEY = b"siefm.tasks", b"siefm.camera_stats"


class DatasetStream:
    """An open stream at `root`; `append` episodes as they become final, then `finish`.

    Args:
        root: Target directory; it must not exist, or be empty, unless `overwrite` (which deletes it).
        fps: Frames per second, for the `timestamp` column.
        robot_type: Stored in info.json.
        extra_info: JSON-serialisable metadata stored under info.json's "siefm" key.
        overwrite: Replace an existing non-empty `root`, e.g. the stream of a crashed earlier attempt.
    """

    def __init__(
        self,
        root: Path,
        *,
        fps: int,
        robot_type: str = "unknown",
        extra_info: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ):
        root = Path(root)
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        try:
            extra = json.loads(json.dumps(dict(extra_info or {})))
        except TypeError as error:
            raise ValueError(f"extra_info must be JSON-serialisable: {error}") from error
        if root.exists() and not root.is_dir():
            raise DatasetError(f"{root} exists and is not a directory; choose another dataset path.")
        if root.is_dir() and any(root.iterdir()):
            if not overwrite:
                raise DatasetError(
                    f"{root} already exists and is not empty; pass overwrite=True or choose another path."
                )
            shutil.rmtree(root)
        (root / "meta").mkdir(parents=True, exist_ok=True)
        self.root = root
        self.header: dict[str, Any] = {"fps": fps, "robot_type": robot_type, "siefm": extra}
        self.features: dict[str, tuple[str, int]] | None = None
        self.cameras: dict[str, tuple[int, int]] | None = None
        self.task_names: list[str] = []  # first-appearance order, as write_dataset numbers tasks
        self.num_files = self.num_episodes = self.num_frames = 0
        _write_json(root / STREAM_PATH, self.header)

    def append(
        self, episodes: Sequence[Mapping[str, np.ndarray]], tasks: Sequence[str] | None = None
    ) -> None:
        """Writes `episodes` (as for `write_dataset`, with the same columns every time) as one data file,
        and their camera frames as one video file per camera."""
        episodes, frames, cameras = split_cameras(episodes)
        features, lengths = _check_episodes(episodes)
        if self.features is None:
            self.features, self.cameras = features, cameras
            _write_json(self.root / STREAM_PATH, {**self.header, "features": features, "cameras": cameras})
        elif features != self.features or cameras != self.cameras:
            raise ValueError(
                f"episodes have columns {sorted(features.items())} and cameras {cameras}; the stream's "
                f"first episodes had {sorted(self.features.items())} and {self.cameras}"
            )
        task_per_episode = [""] * len(episodes) if tasks is None else [str(t) for t in tasks]
        if len(task_per_episode) != len(episodes):
            raise ValueError(f"tasks has {len(task_per_episode)} entries for {len(episodes)} episodes")
        fps = self.header["fps"]
        episode_task = task_indices(task_per_episode, self.task_names)  # one numbering for every file
        columns = episodes_columns(
            episodes, features, lengths, episode_task, fps, self.num_episodes, self.num_frames
        )
        # Videos first: the data file's appearance is what makes these episodes count.
        stats = {key: write_video(self.root, key, self.num_files, frames[key], fps) for key in cameras}
        metadata = {TASKS_KEY: json.dumps(task_per_episode), CAMERA_STATS_KEY: json.dumps(stats)}
        table = _to_table(columns).replace_schema_metadata(metadata)
        path = self.root / _data_path(self.num_files)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".tmp")
        _write_parquet(table, partial)
        partial.rename(path)  # only now does the file count: a crash mid-write leaves just the .tmp
        self.num_files += 1
        self.num_episodes += len(episodes)
        self.num_frames += int(lengths.sum())

    def finish(self) -> Path:
        """Writes the meta; the directory is then a dataset `read_dataset` opens. Returns `root`."""
        return finish_stream(self.root)


def finish_stream(root: Path) -> Path:
    """Makes the stream at `root` a complete dataset from the data files it holds, and returns `root`.

    Works on an open stream and on one whose writer crashed: every episode appended before the crash is kept.

    Raises:
        DatasetError: `root` is not a stream, holds no episodes, or its files are inconsistent.
    """
    root = Path(root)
    marker = root / STREAM_PATH
    if not marker.is_file():
        raise DatasetError(f"{root}: no {STREAM_PATH} here, so this is not a dataset being streamed.")
    header = json.loads(marker.read_text())
    for torn in root.glob("data/chunk-*/*.tmp"):  # being written when the writer stopped: never appended
        torn.unlink()
    paths = sorted(root.glob("data/chunk-*/file-*.parquet"))
    if "features" not in header or not paths:
        raise DatasetError(f"{root}: the stream holds no episodes, so there is no dataset to finish.")
    if paths != [root / _data_path(number) for number in range(len(paths))]:
        raise _corrupt(root / "data", "the data files are not numbered 0, 1, 2, ... without gaps")
    cameras = {key: (height, width) for key, (height, width) in header.get("cameras", {}).items()}
    for key in cameras:  # a video written just before a crash, whose data file never appeared
        for video in root.glob(f"videos/{key}/chunk-*/file-*.mp4"):
            if video.relative_to(root).as_posix() not in {_video_path(key, n) for n in range(len(paths))}:
                video.unlink()
    features = {name: (dtype, width) for name, (dtype, width) in header["features"].items()}
    declared = {name: {"dtype": d, "shape": [w]} for name, (d, w) in features.items()}
    declared |= {name: {"dtype": d, "shape": [1]} for name, d in STANDARD_COLUMNS.items()}
    parts, task_per_episode, file_number = [], [], []
    camera_stats: dict[str, list[dict[str, Any]]] = {key: [] for key in cameras}
    for number, path in enumerate(paths):
        table = _read_parquet(path)
        metadata = table.schema.metadata or {}
        tasks = json.loads(metadata.get(TASKS_KEY, b"null"))
        stats = json.loads(metadata.get(CAMERA_STATS_KEY, b"{}"))
        if not isinstance(tasks, list) or set(stats) != set(cameras):
            raise _corrupt(path, "the file's metadata lacks its episodes' tasks or its cameras' statistics")
        for key, part in stats.items():
            camera_stats[key].append(part)
        parts.append(_columns_from_table(table, declared, path))
        task_per_episode += tasks
        file_number += [number] * len(tasks)
    columns = {name: np.concatenate([part[name] for part in parts]) for name in declared}
    lengths = np.bincount(columns["episode_index"], minlength=len(task_per_episode)).astype(np.int64)
    if len(lengths) != len(task_per_episode) or not np.array_equal(
        columns["episode_index"], np.repeat(np.arange(len(lengths)), lengths)
    ):
        raise _corrupt(
            root / "data", "episode_index does not number the files' episodes 0, 1, 2, ... in order"
        )
    numbers, fps = np.array(file_number, dtype=np.int64), header["fps"]
    _write_meta(root, columns, lengths, numbers, task_per_episode, camera_stats, fps)
    info = _info(features, lengths, fps, header["robot_type"], len(set(task_per_episode)), cameras)
    info["siefm"] = header["siefm"]
    _write_json(root / "meta" / "info.json", info)  # last: its presence marks the dataset complete
    marker.unlink()
    return root


def _write_json(path: Path, value: Any) -> None:
    """Writes through a temporary file and a rename, so a crash never leaves half a JSON file."""
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(value, indent=4))
    os.replace(partial, path)
