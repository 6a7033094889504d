"""Stage 1 with a trainable vision encoder on an MP4 video dataset: frames streamed by a worker process
against all frames decoded into memory, on the same batches: speed and peak memory, on a dataset and on
one `memory_episodes` long, to see how each mode's memory grows with the dataset.

    PYTHONPATH=benchmarks python benchmarks/frame_streaming.py --out runs/frame-streaming

The dataset is synthetic (this file's `Camera-v0` env only declares the spaces; nothing is simulated):
episodes of 96 x 96 frames, each a smooth pattern moving with the frame plus noise, so the codec has
work like a camera's, written by siefm's writer as LeRobot video features. Writes `results.json`; the
table is in docs/pixels.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import tyro

from siefm.data.stream import DatasetStream

ENV_ID = "frame_streaming:Camera-v0"
SIDE, LENGTH = 96, 100  # frame side, frames per episode


class Camera(gym.Env):
    """The spaces of a camera env with a fixed goal; the benchmark never steps it."""

    metadata = {"render_fps": 10}  # noqa: RUF012 (gymnasium's convention)

    def __init__(self):
        image = gym.spaces.Box(0, 255, (SIDE, SIDE, 3), np.uint8)
        self.observation_space = gym.spaces.Dict({"agent_pos": gym.spaces.Box(-1, 1, (2,)), "pixels": image})
        self.action_space = gym.spaces.Box(-1, 1, (2,))


if "Camera-v0" not in gym.registry:
    gym.register("Camera-v0", entry_point=Camera, max_episode_steps=LENGTH)


@dataclass(frozen=True)
class Args:
    out: Path = Path("runs/frame-streaming")
    speed_episodes: int = 200
    """Episodes of the dataset both modes train on (20K frames: 0.51 GB of frames; 0: skip)."""
    memory_episodes: int = 0
    """Episodes of a second, larger dataset both modes train on, to see how their peak memory grows with
    the dataset (0: skip)."""
    steps: int = 300
    """Stage 1 steps per run; speed is measured from step `steps // 3` on (after warm-up)."""


def write_dataset(root: Path, episodes: int, seed: int = 0) -> Path:
    """`episodes` synthetic episodes streamed to disk 50 at a time (memory stays bounded)."""
    if (root / "meta" / "info.json").exists():
        return root
    rng = np.random.default_rng(seed)
    extra = {
        "env": {
            "id": ENV_ID,
            "config": {
                "features_map": {"agent_pos": "observation.state", "pixels": "observation.image"},
                "max_steps": LENGTH,
                "fps": 10,
                "task": "reach",
            },
        }
    }
    stream = DatasetStream(root, fps=10, robot_type=ENV_ID, extra_info=extra, overwrite=True)
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    for start in range(0, episodes, 50):
        batch = []
        for _ in range(min(50, episodes - start)):
            phase = rng.uniform(0, 2 * np.pi, 3)
            t = np.arange(LENGTH)[:, None, None]
            frames = np.stack(
                [
                    128 + 90 * np.sin(2 * np.pi * (x + 2 * t) / SIDE + phase[0]),
                    128 + 90 * np.cos(2 * np.pi * (y - t) / SIDE + phase[1]),
                    128 + 90 * np.sin(2 * np.pi * (x + y + 3 * t) / SIDE + phase[2]),
                ],
                axis=-1,
            )
            frames = np.clip(frames + rng.normal(0, 8, frames.shape), 0, 255).astype(np.uint8)
            steps = np.arange(LENGTH - 1, -1, -1)
            terminal = steps == 0
            batch.append(
                {
                    "observation.state": rng.uniform(-1, 1, (LENGTH, 2)).astype(np.float32),
                    "action": rng.uniform(-1, 1, (LENGTH, 2)).astype(np.float32),
                    "observation.image": frames,
                    "steps_to_go": steps.astype(np.int64),
                    "is_terminal": terminal,
                    "is_success": terminal.copy(),
                }
            )
        stream.append(batch, ["reach"] * len(batch))
    return stream.finish()


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
        todo += children.get(current, [])
    return total


def train(dataset: Path, out: Path, mode: str, steps: int) -> dict[str, float]:
    """One Stage 1 run; its training speed after warm-up and the peak memory of its processes."""
    every = steps // 3
    command = [
        sys.executable,
        "-m",
        "siefm.cli",
        "sft",
        "--dataset",
        str(dataset),
        "--out",
        str(out),
        "--sft.model.observation",
        "pixels",
        "--sft.model.vision-encoder",
        "scratch",
        "--sft.steps",
        str(steps),
        "--sft.eval-every",
        str(every),
        "--sft.frames",
        mode,
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = [0]

    def watch() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], tree_rss(process.pid))
            time.sleep(0.5)

    watcher = threading.Thread(target=watch)
    watcher.start()
    process.wait()
    watcher.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {process.returncode}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in records if "sft/step" in r]
    first, last = records[0], records[-1]  # speed between the first and last validation
    steps_per_second = (last["sft/step"] - first["sft/step"]) / (last["time"] - first["time"])
    batch = json.loads((out / "config.json").read_text())["sft"]["batch_size"]
    return {
        "steps_per_second": steps_per_second,
        "frames_per_second": steps_per_second * batch,
        "peak_rss_gb": peak[0] / 2**30,
        "wall_seconds": time.perf_counter() - start,
    }


def main(args: Args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {"args": {k: str(v) for k, v in vars(args).items()}}
    if args.speed_episodes:
        small = write_dataset(args.out / "data-speed", args.speed_episodes)
        frames = args.speed_episodes * LENGTH
        results["speed_dataset"] = {"frames": frames, "frames_gb_in_memory": frames * 3 * SIDE**2 / 2**30}
        for mode in ("memory", "stream"):
            results[mode] = train(small, args.out / f"sft-{mode}", mode, args.steps)
            print(mode, results[mode], flush=True)
        results["stream_over_memory"] = (
            results["stream"]["frames_per_second"] / results["memory"]["frames_per_second"]
        )
    if args.memory_episodes:
        large = write_dataset(args.out / "data-large", args.memory_episodes, seed=1)
        frames = args.memory_episodes * LENGTH
        results["large_dataset"] = {
            "frames": frames,
            "frames_gb_in_memory": frames * 3 * SIDE**2 / 2**30,
            "video_gb_on_disk": sum(p.stat().st_size for p in large.rglob("*.mp4")) / 2**30,
        }
        for mode in ("memory", "stream"):
            results[f"large_{mode}"] = train(large, args.out / f"sft-large-{mode}", mode, args.steps)
            print("large", mode, results[f"large_{mode}"], flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(tyro.cli(Args))
