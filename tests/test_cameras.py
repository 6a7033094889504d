"""Camera features in datasets (MP4 video as LeRobot stores it, and encoded images), and a pixel policy on a
gymnasium env siefm did not write (tests/toy_reach.py's camera variant) through both stages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_cli import assert_clean_error, run_cli

from siefm.data.cameras import recorded_frames, resize_frames
from siefm.data.dataset import DatasetError, read_dataset
from siefm.data.pixels import render_dataset_frames
from siefm.data.stream import DatasetStream, finish_stream
from siefm.data.video import VideoError, decode_video, encode_video
from siefm.data.writing import write_dataset

DATA = Path(__file__).parent / "data"
CODEC_ERROR = 6.0  # mean absolute error, 0..255, that AV1 at crf 30 leaves on these smooth frames


def smooth_frames(count: int, shift: int, height: int = 32, width: int = 48) -> np.ndarray:
    """Frames lossy coding keeps recognisable: gradients that move with the frame, per-episode blue."""
    y, x = np.mgrid[0:height, 0:width]
    frames = np.zeros((count, height, width, 3), dtype=np.uint8)
    for t in range(count):
        frames[t, ..., 0] = 128 + 100 * np.sin(2 * np.pi * (x + 3 * t) / width)
        frames[t, ..., 1] = 128 + 100 * np.cos(2 * np.pi * (y + 2 * t) / height)
        frames[t, ..., 2] = 40 * shift
    return frames


def episodes(lengths: list[int]) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [
        {
            "observation.state": rng.normal(size=(n, 2)).astype(np.float32),
            "action": rng.normal(size=(n, 2)).astype(np.float32),
            "observation.image": smooth_frames(n, shift=i),
        }
        for i, n in enumerate(lengths)
    ]


def mean_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int64) - b.astype(np.int64)).mean())


def test_a_video_reads_back_from_any_frame() -> None:
    frames = smooth_frames(30, shift=1)
    path = Path(pytest.importorskip("tempfile").mkdtemp()) / "clip.mp4"
    encode_video(frames, path, fps=10)
    assert mean_error(decode_video(path), frames) < CODEC_ERROR
    middle = decode_video(path, start_s=1.3, count=5)  # from a frame that is not a key frame
    assert mean_error(middle, frames[13:18]) < CODEC_ERROR
    assert mean_error(middle, frames[12:17]) > 3 * CODEC_ERROR  # a frame off is far off
    with pytest.raises(VideoError, match="expected"):
        decode_video(path, start_s=2.8, count=5)
    path.write_bytes(b"not a video")
    with pytest.raises(VideoError, match="cannot be decoded"):
        decode_video(path)


@pytest.mark.parametrize("writer", ["all at once", "streamed"])
def test_camera_columns_are_written_as_video_and_read_back_by_row(tmp_path: Path, writer: str) -> None:
    recorded = episodes([5, 9, 4, 7])
    root = tmp_path / "data"
    if writer == "all at once":
        write_dataset(root, recorded, fps=10, max_rows_per_file=12)  # three data (and video) files
    else:
        stream = DatasetStream(root, fps=10)
        stream.append(recorded[:3])
        stream.append(recorded[3:])
        finish_stream(root)
    dataset = read_dataset(root)
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["features"]["observation.image"]["dtype"] == "video"
    assert info["features"]["observation.image"]["shape"] == [32, 48, 3]
    assert "observation.image" not in dataset.columns and dataset.camera_keys == ["observation.image"]
    stats = json.loads((root / "meta" / "stats.json").read_text())["observation.image"]
    everything = np.concatenate([e["observation.image"] for e in recorded])
    np.testing.assert_allclose(np.ravel(stats["mean"]), everything.reshape(-1, 3).mean(0) / 255, atol=1e-9)
    assert stats["count"] == [len(everything)]

    reader = recorded_frames(dataset, 32)
    expected = resize_frames(everything, 32)
    assert mean_error(reader.read(np.arange(dataset.num_frames)), expected) < CODEC_ERROR
    rows = np.array([17, 3, 3, 24, 6])  # any order, repeats, across files
    assert mean_error(reader.read(rows), expected[rows]) < CODEC_ERROR
    # A selection of episodes keeps each episode's frames with it.
    picked = dataset.select_episodes(np.array([3, 1]))
    own = resize_frames(
        np.concatenate([recorded[3]["observation.image"], recorded[1]["observation.image"]]), 32
    )
    assert mean_error(render_dataset_frames(picked, 32), own) < CODEC_ERROR


def test_a_dataset_lerobot_wrote_with_video_reads_its_frames() -> None:
    dataset = read_dataset(DATA / "lerobot_written_video")
    written = np.load(DATA / "lerobot_written_video_frames.npz")["frames"]
    frames = recorded_frames(dataset, 64).read(np.arange(dataset.num_frames))
    assert frames.shape == written.shape
    assert mean_error(frames, written) < CODEC_ERROR
    # Each frame is nearer to the one LeRobot was given than to its neighbours: nothing is shifted.
    assert mean_error(frames[1:], written[1:]) < mean_error(frames[1:], written[:-1])


def test_an_image_feature_is_decoded_from_its_bytes(tmp_path: Path) -> None:
    """LeRobot's dtype "image": PNG bytes in a struct column of the data file."""
    imageio = pytest.importorskip("imageio.v3")
    recorded = episodes([3, 4])
    frames = np.concatenate([e.pop("observation.image") for e in recorded])
    root = write_dataset(tmp_path / "data", recorded, fps=10)
    path = root / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(path)
    encoded = [imageio.imwrite("<bytes>", frame, extension=".png") for frame in frames]
    images = pa.StructArray.from_arrays(
        [pa.array(encoded), pa.array([None] * len(encoded), pa.string())], ["bytes", "path"]
    )
    pq.write_table(table.append_column("observation.image", images), path)
    info_path = root / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["features"]["observation.image"] = {"dtype": "image", "shape": [32, 48, 3], "names": None}
    info_path.write_text(json.dumps(info))
    dataset = read_dataset(root)
    np.testing.assert_array_equal(recorded_frames(dataset, 32).read(np.arange(7)), resize_frames(frames, 32))


def test_a_video_that_cannot_be_decoded_is_a_clear_error_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    collect = ["collect", "--env", "toy_reach:ToyReachCamera-v0", "--out", data, "--task", "reach the dot"]
    assert run_cli([*collect, "--policy", "toy_reach:demonstrator", "--num-episodes", "4"], capsys)[0] == 0
    video = next(data.glob("videos/observation.image/chunk-000/*.mp4"))
    video.write_bytes(video.read_bytes()[:300])  # truncated
    with pytest.raises(VideoError, match=r"cannot be decoded|expected|holds"):
        recorded_frames(read_dataset(data), 16).read(np.arange(read_dataset(data).num_frames))
    run = ["sft", "--dataset", data, "--out", tmp_path / "sft", "--sft.model.observation", "pixels"]
    code, _, err = run_cli([*run, "--sft.model.vision-encoder", "scratch"], capsys)
    assert_clean_error(code, err, "file-000.mp4")
    assert not (tmp_path / "sft").exists()  # refused before the run directory is made


def test_a_pixel_policy_on_a_users_camera_env_through_both_stages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = "toy_reach:ToyReachCamera-v0"
    data, sft, rl, ev = (tmp_path / name for name in ("data", "sft", "rl", "eval"))
    collect = [
        "collect",
        "--env",
        env,
        "--out",
        data,
        "--policy",
        "toy_reach:demonstrator",
        "--num-episodes",
        "6",
    ]
    code, _, err = run_cli(collect, capsys)
    assert_clean_error(code, err, "hold no goal")  # the goal is fixed, and no --task says what it is
    code, _, err = run_cli([*collect, "--task", "reach the green dot"], capsys)
    assert code == 0, err
    dataset = read_dataset(data)
    assert dataset.camera_keys == ["observation.image"] and "goal" not in dataset.columns
    assert dataset.tasks == ["reach the green dot"]
    pixels = ["--sft.model.observation", "pixels", "--sft.model.vision-encoder", "scratch"]
    tiny = ["--sft.model.image-size", "16", "--sft.model.hidden-dim", "16", "--sft.batch-size", "16"]
    run = [
        "sft",
        "--dataset",
        data,
        "--out",
        sft,
        *pixels,
        *tiny,
        "--sft.steps",
        "4",
        "--sft.eval-every",
        "2",
    ]
    code, _, err = run_cli(run, capsys)
    assert code == 0, err
    reward = json.loads((sft / "checkpoints" / "reward" / "checkpoint.json").read_text())["model_config"]
    assert (reward["observation"], reward["goal_encoder"]) == ("pixels", "words")
    practice = ["--improve.num-iterations", "1", "--improve.num-envs", "3", "--improve.vector-env", "sync"]
    code, _, err = run_cli(
        ["improve", "--sft-run", sft, "--out", rl, *practice, "--improve.num-updates", "1"], capsys
    )
    assert code == 0, err
    assert read_dataset(rl / "practice" / "iteration-0001").num_frames > 0
    code, _, err = run_cli(
        ["eval", "--checkpoint", rl / "checkpoints" / "policy", "--out", ev, "--eval.episodes", "4"], capsys
    )
    assert code == 0, err
    results = json.loads((ev / "results.json").read_text())
    assert results["policy"]["episodes"] == 4 and results["demonstrator"]["success_rate"] > 0


def test_a_state_dataset_of_a_domain_without_a_camera_refuses_pixels(tmp_path: Path) -> None:
    root = write_dataset(
        tmp_path / "data",
        [{k: v for k, v in e.items() if k != "observation.image"} for e in episodes([3])],
        fps=10,
    )
    with pytest.raises(DatasetError, match="camera"):
        recorded_frames(read_dataset(root), 16)


def test_streamed_frames_train_the_same_stage1_as_frames_in_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Streaming reads the same batches (in worker processes, ahead of the step), so the checkpoints match."""
    data = tmp_path / "data"
    collect = ["collect", "--env", "toy_reach:ToyReachCamera-v0", "--out", data, "--task", "reach the dot"]
    code, _, err = run_cli([*collect, "--policy", "toy_reach:demonstrator", "--num-episodes", "5"], capsys)
    assert code == 0, err
    pixels = ["--sft.model.observation", "pixels", "--sft.model.vision-encoder", "scratch"]
    tiny = ["--sft.model.image-size", "16", "--sft.model.hidden-dim", "16", "--sft.batch-size", "8"]
    weights = {}
    for mode in ("memory", "stream"):
        out = tmp_path / mode
        run = [
            "sft",
            "--dataset",
            data,
            "--out",
            out,
            *pixels,
            *tiny,
            "--sft.steps",
            "6",
            "--sft.frames",
            mode,
        ]
        code, _, err = run_cli([*run, "--sft.eval-every", "3"], capsys)
        assert code == 0, err
        weights[mode] = (out / "checkpoints" / "policy" / "model.safetensors").read_bytes()
    assert weights["memory"] == weights["stream"]
