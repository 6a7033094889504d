"""Makes tests/data/lerobot_written/ (state only) and tests/data/lerobot_written_video/ (plus a camera) with
LeRobot's own writer (`LeRobotDataset.create / add_frame / save_episode / finalize` of the `lerobot-dataset`
package, import name `ledataset`), as a LeRobot user's datasets; siefm's tests read the results and never
need LeRobot.

    python -m venv /tmp/ledenv && /tmp/ledenv/bin/pip install lerobot-dataset==0.4.4 torch==2.13.0 av
    /tmp/ledenv/bin/python tests/data/make_lerobot_written.py tests/data/lerobot_written
    /tmp/ledenv/bin/python tests/data/make_lerobot_written.py --video tests/data/lerobot_written_video

(each target directory must not exist yet: LeRobot refuses to write into an existing one).

The video dataset has 4 episodes of 6, 9, 5 and 12 frames at 10 fps, the state-only dataset's features
and a camera `observation.image`, dtype "video", 64 x 64 RGB: smooth gradients that shift with the frame
index and whose blue level tells the episode, so that lossy coding keeps them recognisable. LeRobot encodes
them itself (PyAV, its default codec: AV1 via libsvtav1, yuv420p, a key frame every 2 frames, crf 30) into
one MP4 holding the episodes one after another. The exact uint8 frames handed to the writer, all episodes
concatenated in order, are stored as array `frames` (N, 64, 64, 3) in
tests/data/lerobot_written_video_frames.npz, next to the dataset, for comparing decoded frames to them.

The writer imports torchvision (for image transforms that these datasets never use), which would pull a
multi-GB build here: a stub stands in for it.
"""

import importlib.machinery
import os
import sys
import types
from pathlib import Path


def stub(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    sys.modules[name] = module
    return module


torchvision = stub("torchvision")
torchvision.transforms = stub("torchvision.transforms")
torchvision.transforms.v2 = stub("torchvision.transforms.v2")
torchvision.transforms.v2.functional = stub("torchvision.transforms.v2.functional")
os.environ.setdefault("SVT_LOG", "1")  # the AV1 encoder's banner otherwise floods stderr

import numpy as np  # noqa: E402
from ledataset.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": (2,), "names": None},
    "observation.goal": {"dtype": "float32", "shape": (2,), "names": None},
    "action": {"dtype": "float32", "shape": (2,), "names": None},
}
IMAGE_FEATURE = {"dtype": "video", "shape": (64, 64, 3), "names": ["height", "width", "channels"]}
VIDEO_EPISODE_LENGTHS = (6, 9, 5, 12)


def write_state_only(root: str) -> None:
    dataset = LeRobotDataset.create(
        "local/toy", fps=20, features=FEATURES, root=root, robot_type="toy", use_videos=False
    )
    rng = np.random.default_rng(0)
    for episode in range(3):  # 4, 5 and 6 frames; two tasks
        for _ in range(4 + episode):
            frame = {name: rng.normal(size=2).astype(np.float32) for name in ("observation.state", "action")}
            dataset.add_frame(
                {**frame, "observation.goal": np.ones(2, np.float32), "task": f"reach {episode % 2}"}
            )
        dataset.save_episode()
    dataset.finalize()


def camera_frame(episode: int, frame_index: int) -> np.ndarray:
    """(64, 64, 3) uint8: red varies across, green down, both move with the frame; blue marks the episode."""
    y, x = np.mgrid[0:64, 0:64].astype(np.float64)
    red = 128 + 100 * np.sin(2 * np.pi * (x + 3 * frame_index) / 64)
    green = 128 + 100 * np.cos(2 * np.pi * (y - 2 * frame_index) / 64)
    blue = np.full_like(x, 40 + 50 * episode)
    return np.round(np.stack([red, green, blue], axis=-1)).astype(np.uint8)


def write_video(root: str) -> None:
    features = {**FEATURES, "observation.image": IMAGE_FEATURE}
    dataset = LeRobotDataset.create(
        "local/toy_video", fps=10, features=features, root=root, robot_type="toy", use_videos=True
    )
    rng = np.random.default_rng(1)
    frames = []
    for episode, length in enumerate(VIDEO_EPISODE_LENGTHS):  # two tasks
        for frame_index in range(length):
            image = camera_frame(episode, frame_index)
            frames.append(image)
            frame = {name: rng.normal(size=2).astype(np.float32) for name in ("observation.state", "action")}
            dataset.add_frame(
                {
                    **frame,
                    "observation.goal": np.ones(2, np.float32),
                    "observation.image": image.copy(),
                    "task": f"reach {episode % 2}",
                }
            )
        dataset.save_episode()
    dataset.finalize()
    frames_path = Path(root).with_name(Path(root).name + "_frames.npz")
    np.savez_compressed(frames_path, frames=np.stack(frames))


if __name__ == "__main__":
    if sys.argv[1] == "--video":
        write_video(sys.argv[2])
    else:
        write_state_only(sys.argv[1])
