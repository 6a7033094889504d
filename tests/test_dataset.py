"""Tests for siefm.data.dataset and siefm.data.stream: LeRobot v3.0 round trip, metadata, atomic writes,
validation, subsets, and datasets streamed a few episodes at a time."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from siefm.data import dataset as dataset_module
from siefm.data.dataset import DatasetError, EpisodeDataset, read_dataset, subset_episode_ids
from siefm.data.stream import DatasetStream, finish_stream
from siefm.data.writing import write_dataset

LENGTHS = (3, 5, 1, 4)
TASKS = ["push the block", "open the drawer", "push the block", "stack"]
DATA_FILE = Path("data/chunk-000/file-000.parquet")
EPISODES_FILE = Path("meta/episodes/chunk-000/file-000.parquet")


def make_episodes(lengths: tuple[int, ...] = LENGTHS, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "observation.state": rng.normal(size=(t, 4)).astype(np.float32),
            "steps_to_go": np.arange(t, 0, -1, dtype=np.int64) - 1,
            "success": np.arange(t) == t - 1,
        }
        for t in lengths
    ]


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, list[dict[str, np.ndarray]]]:
    episodes = make_episodes()
    root = write_dataset(
        tmp_path / "ds", episodes, fps=10, tasks=TASKS, robot_type="pointmass", extra_info={"env": "pm-v0"}
    )
    return root, episodes


def test_round_trip_values_dtypes_shapes_tasks_bounds(written: tuple[Path, list]) -> None:
    root, episodes = written
    ds = read_dataset(root)
    assert isinstance(ds, EpisodeDataset)
    assert ds.num_episodes == len(LENGTHS)
    assert ds.num_frames == sum(LENGTHS)
    assert ds.episode_bounds.dtype == np.int64
    np.testing.assert_array_equal(ds.episode_bounds, [[0, 3], [3, 8], [8, 9], [9, 13]])
    assert ds.tasks == ["push the block", "open the drawer", "stack"]
    for i, original in enumerate(episodes):
        frames = ds.episode(i)
        for name, values in original.items():
            assert frames[name].dtype == values.dtype
            assert frames[name].shape == values.shape
            np.testing.assert_array_equal(frames[name], values)
        t = LENGTHS[i]
        np.testing.assert_array_equal(frames["frame_index"], np.arange(t))
        np.testing.assert_array_equal(frames["episode_index"], np.full(t, i))
        np.testing.assert_allclose(frames["timestamp"], np.arange(t) / 10)
        assert frames["timestamp"].dtype == np.float32
        assert {ds.tasks[k] for k in frames["task_index"]} == {TASKS[i]}
    np.testing.assert_array_equal(ds.columns["index"], np.arange(sum(LENGTHS)))


def test_info_and_stats(written: tuple[Path, list]) -> None:
    root, episodes = written
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["robot_type"] == "pointmass"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (4, 13, 3)
    assert (info["fps"], info["chunks_size"], info["splits"]) == (10, 1000, {"train": "0:4"})
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] is None
    assert info["siefm"] == {"env": "pm-v0"}
    assert info["features"]["observation.state"] == {"dtype": "float32", "shape": [4], "names": None}
    assert info["features"]["steps_to_go"] == {"dtype": "int64", "shape": [1], "names": None}
    assert info["features"]["success"]["dtype"] == "bool"
    assert info["features"]["timestamp"]["dtype"] == "float32"

    stats = json.loads((root / "meta/stats.json").read_text())
    state = np.concatenate([e["observation.state"] for e in episodes]).astype(np.float64)
    np.testing.assert_allclose(stats["observation.state"]["mean"], state.mean(axis=0))
    np.testing.assert_allclose(stats["observation.state"]["std"], state.std(axis=0))
    np.testing.assert_allclose(stats["observation.state"]["min"], state.min(axis=0))
    assert stats["observation.state"]["count"] == [13]
    for name, q in (("q01", 0.01), ("q50", 0.5), ("q99", 0.99)):  # the quantiles LeRobot's stats hold
        np.testing.assert_allclose(stats["observation.state"][name], np.quantile(state, q, axis=0))
    assert info["video_files_size_in_mb"] > 0  # LeRobot's split_dataset reads it
    steps = np.concatenate([e["steps_to_go"] for e in episodes])
    assert stats["steps_to_go"]["max"] == [steps.max()]
    assert stats["success"]["mean"] == pytest.approx([4 / 13])


def test_pyarrow_opens_files_with_lerobot_columns(written: tuple[Path, list]) -> None:
    root, _ = written
    table = pq.read_table(root / DATA_FILE)
    assert table.num_rows == 13
    assert {"timestamp", "frame_index", "episode_index", "index", "task_index"} <= set(table.column_names)
    assert table.schema.field("observation.state").type == pa.list_(pa.float32(), 4)
    assert table.schema.field("steps_to_go").type == pa.int64()
    assert table.schema.field("success").type == pa.bool_()
    assert table.schema.field("timestamp").type == pa.float32()

    episodes = pq.read_table(root / EPISODES_FILE).to_pydict()
    assert episodes["length"] == list(LENGTHS)
    assert episodes["tasks"][1] == ["open the drawer"]
    assert episodes["dataset_from_index"] == [0, 3, 8, 9]
    assert episodes["dataset_to_index"] == [3, 8, 9, 13]
    assert episodes["data/chunk_index"] == episodes["data/file_index"] == [0, 0, 0, 0]

    tasks = pq.read_table(root / "meta/tasks.parquet")
    assert tasks.to_pydict() == {
        "task_index": [0, 1, 2],
        "task": ["push the block", "open the drawer", "stack"],
    }
    # pandas (and so LeRobot) reads "task" as the DataFrame index.
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]


def test_default_tasks_are_empty_strings(tmp_path: Path) -> None:
    ds = read_dataset(write_dataset(tmp_path / "ds", make_episodes((2, 2)), fps=5))
    assert ds.tasks == [""]
    np.testing.assert_array_equal(ds.columns["task_index"], 0)


def test_large_datasets_split_into_files_at_episode_boundaries(tmp_path: Path) -> None:
    episodes = make_episodes()
    root = write_dataset(tmp_path / "ds", episodes, fps=10, max_rows_per_file=6)
    files = sorted(p.relative_to(root).as_posix() for p in (root / "data").rglob("*.parquet"))
    # lengths 3, 5, 1, 4 with at most 6 rows per file: [3] [5, 1] [4]
    assert files == [f"data/chunk-000/file-00{i}.parquet" for i in range(3)]
    assert pq.read_table(root / EPISODES_FILE).column("data/file_index").to_pylist() == [0, 1, 1, 2]
    ds = read_dataset(root)
    for i, original in enumerate(episodes):
        np.testing.assert_array_equal(ds.episode(i)["observation.state"], original["observation.state"])


def test_refuses_to_overwrite_unless_asked(written: tuple[Path, list]) -> None:
    root, _ = written
    with pytest.raises(DatasetError, match="overwrite=True"):
        write_dataset(root, make_episodes((2,)), fps=10)
    assert read_dataset(root).num_episodes == len(LENGTHS)

    write_dataset(root, make_episodes((2,)), fps=10, overwrite=True)
    assert read_dataset(root).num_episodes == 1
    assert sorted(p.name for p in root.parent.iterdir()) == ["ds"]  # no temporary or old directories left


def test_writes_into_an_existing_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    assert read_dataset(write_dataset(tmp_path / "ds", make_episodes((2,)), fps=10)).num_frames == 2


def test_crash_during_write_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: tuple[Path, list]
) -> None:
    root, _ = written

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(dataset_module.pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(tmp_path / "new", make_episodes(), fps=10)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(root, make_episodes((2,)), fps=10, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    monkeypatch.undo()
    assert read_dataset(root).num_episodes == len(LENGTHS)  # the old dataset is untouched


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e[1].update(x=e[1]["steps_to_go"].astype(np.float64)), "columns"),
        (lambda e: e[0].update(steps_to_go=e[0]["steps_to_go"].astype(np.float64)), "float32, int64 or bool"),
        (lambda e: e[0].update(success=e[0]["success"][:, None]), r"shape \(T,\)"),
        (lambda e: e[2].update(steps_to_go=e[2]["steps_to_go"].astype(np.int32)), "float32, int64 or bool"),
        (lambda e: e[1].update(steps_to_go=e[1]["steps_to_go"][:-1]), "same length"),
        (lambda e: e[3].update(success=e[3]["success"].astype(np.float32)), "differs from episode 0"),
        (lambda e: [x.update(index=x["steps_to_go"]) for x in e], "'index'"),
        (lambda e: [x.update({"a/b": x["steps_to_go"]}) for x in e], "'/'"),
    ],
)
def test_write_rejects_malformed_episodes(tmp_path: Path, change: Callable, message: str) -> None:
    episodes = make_episodes()
    change(episodes)
    with pytest.raises(ValueError, match=message):
        write_dataset(tmp_path / "ds", episodes, fps=10)
    assert not (tmp_path / "ds").exists()


def test_write_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tasks"):
        write_dataset(tmp_path / "ds", make_episodes(), fps=10, tasks=["a"])
    with pytest.raises(ValueError, match="at least one episode"):
        write_dataset(tmp_path / "ds", [], fps=10)
    with pytest.raises(ValueError, match="extra_info"):
        write_dataset(tmp_path / "ds", make_episodes(), fps=10, extra_info={"x": object()})
    with pytest.raises(ValueError, match="fps"):
        write_dataset(tmp_path / "ds", make_episodes(), fps=0)


def _edit_info(root: Path, **changes: object) -> None:
    info = json.loads((root / "meta/info.json").read_text())
    info.update(changes)
    (root / "meta/info.json").write_text(json.dumps(info))


def _edit_column(path: Path, name: str, edit: Callable[[np.ndarray], np.ndarray]) -> None:
    table = pq.read_table(path)
    i = table.schema.get_field_index(name)
    pq.write_table(table.set_column(i, name, pa.array(edit(table.column(name).to_numpy()))), path)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _drop_last_row(path: Path) -> None:
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 1), path)


def _features_with(root: Path, name: str, feature: dict) -> dict:
    features = json.loads((root / "meta/info.json").read_text())["features"]
    return features | {name: feature}


CORRUPTIONS: dict[str, tuple[Callable[[Path], object], str, str]] = {
    # case: (corrupt the dataset at root, file the message must name, what the message must say)
    "info missing": (lambda r: (r / "meta/info.json").unlink(), "info.json", "missing"),
    "info unparseable": (
        lambda r: (r / "meta/info.json").write_text("{not json"),
        "info.json",
        "not valid JSON",
    ),
    "wrong version": (lambda r: _edit_info(r, codebase_version="v2.1"), "info.json", "v2.1"),
    "total_frames": (lambda r: _edit_info(r, total_frames=14), "file-000.parquet", "total_frames=14"),
    "total_episodes": (lambda r: _edit_info(r, total_episodes=3), "file-000.parquet", "total_episodes"),
    "data missing": (lambda r: (r / DATA_FILE).unlink(), "data/chunk-000/file-000.parquet", "missing"),
    "data truncated": (lambda r: _truncate(r / DATA_FILE), "data/chunk-000/file-000.parquet", "parquet"),
    "data byte flipped": (lambda r: _flip_byte(r / DATA_FILE, 100), "file-000.parquet", "parquet"),
    "data row dropped": (lambda r: _drop_last_row(r / DATA_FILE), "data", "12 rows, not total_frames=13"),
    "data garbage": (lambda r: (r / DATA_FILE).write_bytes(b"PAR1 nope"), "file-000.parquet", "parquet"),
    "episodes missing": (lambda r: (r / EPISODES_FILE).unlink(), "meta/episodes", "missing"),
    "episodes truncated": (lambda r: _truncate(r / EPISODES_FILE), "meta/episodes", "parquet"),
    "tasks missing": (lambda r: (r / "meta/tasks.parquet").unlink(), "tasks.parquet", "missing"),
    "length disagrees": (
        lambda r: _edit_column(r / EPISODES_FILE, "length", lambda v: v + (np.arange(len(v)) == 1)),
        "meta/episodes",
        "length",
    ),
    "bounds overlap": (
        lambda r: _edit_column(
            r / EPISODES_FILE, "dataset_from_index", lambda v: v - (np.arange(len(v)) == 2)
        ),
        "meta/episodes",
        "contiguous",
    ),
    "episode_index column": (
        lambda r: _edit_column(r / DATA_FILE, "episode_index", lambda v: np.where(v == 1, 2, v)),
        "data",
        "episode_index",
    ),
    "index not contiguous": (
        lambda r: _edit_column(r / DATA_FILE, "index", lambda v: np.where(v > 5, v + 1, v)),
        "data",
        "'index'",
    ),
    "task_index out of range": (
        lambda r: _edit_column(r / DATA_FILE, "task_index", lambda v: v + 5),
        "data",
        "task_index",
    ),
    "feature absent in data": (
        lambda r: _edit_info(r, features=_features_with(r, "reward", {"dtype": "float32", "shape": [1]})),
        "file-000.parquet",
        "'reward'",
    ),
    "vector shape mismatch": (
        lambda r: _edit_info(
            r, features=_features_with(r, "observation.state", {"dtype": "float32", "shape": [3]})
        ),
        "file-000.parquet",
        "shape [3]",
    ),
    "scalar shape mismatch": (
        lambda r: _edit_info(r, features=_features_with(r, "steps_to_go", {"dtype": "int64", "shape": [2]})),
        "file-000.parquet",
        "shape [2]",
    ),
    "dtype mismatch": (
        lambda r: _edit_info(r, features=_features_with(r, "success", {"dtype": "int64", "shape": [1]})),
        "file-000.parquet",
        "dtype",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_read_rejects_corrupt_datasets_with_a_helpful_error(written: tuple[Path, list], case: str) -> None:
    root, _ = written
    corrupt, file_named, problem = CORRUPTIONS[case]
    corrupt(root)
    with pytest.raises(DatasetError) as error:
        read_dataset(root)
    message = str(error.value)
    assert file_named in message
    assert problem in message
    if case != "wrong version":
        assert "siefm collect" in message  # says what to do


def test_read_rejects_a_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no dataset directory"):
        read_dataset(tmp_path / "nowhere")


def test_select_episodes(written: tuple[Path, list]) -> None:
    root, episodes = written
    ds = read_dataset(root)
    subset = ds.select_episodes(np.array([3, 0]))
    assert (subset.num_episodes, subset.num_frames) == (2, LENGTHS[3] + LENGTHS[0])
    np.testing.assert_array_equal(subset.episode_bounds, [[0, 4], [4, 7]])
    for position, source in enumerate([3, 0]):
        frames = subset.episode(position)
        np.testing.assert_array_equal(frames["observation.state"], episodes[source]["observation.state"])
        np.testing.assert_array_equal(frames["episode_index"], source)  # provenance kept
    assert subset.tasks == ds.tasks
    for bad in ([], [0, 0], [4], [-1], [[0]], [0.5]):
        with pytest.raises(ValueError, match="episode_ids"):
            ds.select_episodes(np.array(bad))
    with pytest.raises(IndexError):
        ds.episode(4)


def test_subset_episode_ids_is_deterministic_nested_and_bounded() -> None:
    fractions = [0.1, 0.2, 0.4, 0.8, 1.0]
    subsets = [subset_episode_ids(50, f, seed=3) for f in fractions]
    assert [len(s) for s in subsets] == [5, 10, 20, 40, 50]
    for smaller, larger in itertools.pairwise(subsets):
        assert set(smaller) <= set(larger)
    for s in subsets:
        assert np.all(np.diff(s) > 0) and s.min() >= 0 and s.max() < 50 and s.dtype == np.int64
    np.testing.assert_array_equal(subsets[0], subset_episode_ids(50, 0.1, seed=3))
    assert not np.array_equal(subset_episode_ids(50, 0.2, seed=3), subset_episode_ids(50, 0.2, seed=4))
    np.testing.assert_array_equal(subsets[-1], np.arange(50))
    assert len(subset_episode_ids(3, 0.01)) == 1
    for fraction in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="fraction"):
            subset_episode_ids(10, fraction)


# --- streamed datasets -----------------------------------------------------------------------------------


def stream_of(root: Path, episodes: list, flushes: tuple[int, ...], tasks: list[str]) -> DatasetStream:
    """A stream at `root` that was handed `episodes` in flushes of the given sizes."""
    stream = DatasetStream(root, fps=10, robot_type="pointmass", extra_info={"env": "pm-v0"})
    start = 0
    for size in flushes:
        stream.append(episodes[start : start + size], tasks[start : start + size])
        start += size
    return stream


def test_a_finished_stream_reads_back_as_write_dataset_writes(
    written: tuple[Path, list], tmp_path: Path
) -> None:
    whole, episodes = written
    streamed = stream_of(tmp_path / "streamed", episodes, (1, 2, 1), TASKS).finish()
    a, b = read_dataset(whole), read_dataset(streamed)
    # Same frames, standard columns, bounds, tasks, info and stats; only the split into files differs.
    assert a.columns.keys() == b.columns.keys()
    for name in a.columns:
        np.testing.assert_array_equal(a.columns[name], b.columns[name], err_msg=name)
    np.testing.assert_array_equal(a.episode_bounds, b.episode_bounds)
    assert a.tasks == b.tasks and a.info == b.info
    assert json.loads((whole / "meta" / "stats.json").read_text()) == json.loads(
        (streamed / "meta" / "stats.json").read_text()
    )
    files = pq.read_table(streamed / EPISODES_FILE).column("data/file_index").to_pylist()
    assert files == [0, 1, 1, 2]  # one data file per flush, each holding whole episodes
    assert not (streamed / "meta" / "stream.json").exists()


def test_a_crashed_stream_keeps_every_episode_it_appended(tmp_path: Path) -> None:
    episodes = make_episodes()
    root = tmp_path / "ds"
    stream_of(root, episodes, (2, 1), TASKS)  # the writer "crashes": never finished ...
    torn = root / "data" / "chunk-000" / "file-002.parquet.tmp"
    torn.write_bytes(b"PAR1 half a file")  # ... while writing its next file
    with pytest.raises(DatasetError, match=r"still being streamed.*finish_stream"):
        read_dataset(root)
    ds = read_dataset(finish_stream(root))
    assert ds.num_episodes == 3 and ds.num_frames == sum(LENGTHS[:3]) and not torn.exists()
    np.testing.assert_array_equal(ds.episode(2)["observation.state"], episodes[2]["observation.state"])
    assert ds.tasks == ["push the block", "open the drawer"]


def test_stream_rejects_bad_use(tmp_path: Path) -> None:
    episodes = make_episodes()
    stream = DatasetStream(tmp_path / "ds", fps=10)
    with pytest.raises(DatasetError, match="no episodes"):
        stream.finish()
    stream.append(episodes[:1])
    with pytest.raises(ValueError, match="first episodes had"):
        stream.append([{**episodes[1], "extra": np.zeros(LENGTHS[1], dtype=np.float32)}])
    with pytest.raises(ValueError, match="tasks has 1 entries for 2 episodes"):
        stream.append(episodes[1:3], ["a"])
    with pytest.raises(DatasetError, match="not empty; pass overwrite=True"):
        DatasetStream(tmp_path / "ds", fps=10)
    fresh = DatasetStream(tmp_path / "ds", fps=10, overwrite=True)  # what a crashed attempt left is gone
    fresh.append(episodes[3:])
    assert read_dataset(fresh.finish()).num_episodes == 1
    with pytest.raises(DatasetError, match="not a dataset being streamed"):
        finish_stream(tmp_path / "ds")
    with pytest.raises(ValueError, match="fps"):
        DatasetStream(tmp_path / "other", fps=0)


def test_a_dataset_lerobots_own_writer_made_reads_back() -> None:
    """tests/data/lerobot_written was written by LeRobot's `LeRobotDataset` (made by
    tests/data/make_lerobot_written.py): its tasks are the unnamed pandas index of tasks.parquet, and its
    info.json has no siefm block."""
    dataset = read_dataset(Path(__file__).parent / "data" / "lerobot_written")
    assert dataset.num_episodes == 3 and dataset.num_frames == 15
    np.testing.assert_array_equal(dataset.episode_bounds, [[0, 4], [4, 9], [9, 15]])
    assert dataset.tasks == ["reach 0", "reach 1"]
    np.testing.assert_array_equal(dataset.columns["task_index"], [0] * 4 + [1] * 5 + [0] * 6)
    assert dataset.columns["observation.goal"].shape == (15, 2) and dataset.info["fps"] == 20
    assert "siefm" not in dataset.info
