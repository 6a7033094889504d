"""Camera streams of a dataset as LeRobot v3.0 stores them: MP4 video files, or images inside the parquet.

A video feature `observation.image` or `observation.images.<cam>` is declared in info.json with dtype
"video" and shape [H, W, 3]; its frames live in `videos/<key>/chunk-CCC/file-FFF.mp4`, each file holding
consecutive episodes, and meta/episodes gives each episode's file and `from_timestamp` in it. An "image"
feature holds each frame's PNG or JPEG bytes in a parquet column. Frames are decoded with PyAV (the
library LeRobot decodes with) and are uint8 (H, W, 3) RGB.

Choice, LeRobot's defaults: AV1 (libsvtav1) in yuv420p, a key frame every 2 frames (so reading from any
episode's start decodes at most one extra frame), constant rate factor 30. The codec is lossy: a frame read
back differs from the camera's by a few intensity levels on average (a test bounds it), like the frames
of any LeRobot video dataset.
"""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
VISUAL_DTYPES = ("video", "image")
CODEC, PIXEL_FORMAT = "libsvtav1", "yuv420p"
CODEC_OPTIONS = {"g": "2", "crf": "30", "preset": "10"}
# The camera features' names in LeRobot's convention: one camera, or several by name.
IMAGE_FEATURE, IMAGES_PREFIX = "observation.image", "observation.images."


class VideoError(ValueError):
    """A video cannot be written or decoded."""


def _av() -> Any:
    os.environ.setdefault("SVT_LOG", "1")  # the AV1 encoder's banner and notes otherwise flood stderr
    import av  # imported here: only datasets with cameras need it

    return av


_to_rgb: Any = None  # one converter for the process: PyAV's per-frame one rebuilds it, 70x slower


def _rgb(frame: Any) -> np.ndarray:
    """A decoded frame as (H, W, 3) uint8 RGB."""
    global _to_rgb
    if _to_rgb is None:
        from av.video.reformatter import VideoReformatter

        _to_rgb = VideoReformatter()
    return _to_rgb.reformat(frame, format="rgb24").to_ndarray()


def encode_video(frames: np.ndarray, path: Path, fps: int) -> None:
    """Writes (N, H, W, 3) uint8 frames to an MP4 at `path` (even H and W, as yuv420p needs)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise VideoError(f"camera frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise VideoError(f"camera frames of {height} x {width}: the video codec needs even sides.")
    av = _av()
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODEC, rate=Fraction(fps), options=CODEC_OPTIONS)
        stream.width, stream.height, stream.pix_fmt = width, height, PIXEL_FORMAT
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def decode_video(path: Path, start_s: float = 0.0, count: int | None = None) -> np.ndarray:
    """(count, H, W, 3) uint8: the frames of the MP4 at `path` from time `start_s` on (all: count None).

    Raises:
        VideoError: the file is missing, cannot be decoded, or holds fewer frames than asked for.
    """
    av = _av()
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if start_s > 0:  # to the key frame before start_s; at most g - 1 frames are decoded in vain
                container.seek(int(start_s / stream.time_base), stream=stream, backward=True)
            tolerance = 0.5 / float(stream.average_rate or 1)
            for frame in container.decode(stream):
                if frame.time is not None and frame.time < start_s - tolerance:
                    continue
                frames.append(_rgb(frame))
                if count is not None and len(frames) == count:
                    break
    except (OSError, av.error.FFmpegError) as error:
        raise VideoError(f"{path}: cannot be decoded as video ({error}).") from error
    if count is not None and len(frames) < count:
        raise VideoError(f"{path}: {count} frames from {start_s:.3f} s were expected, found {len(frames)}.")
    if not frames:
        raise VideoError(f"{path}: the video holds no frames.")
    return np.stack(frames)


SEEK_GAP_S = 0.5  # a frame further ahead than this is reached by seeking, nearer ones by decoding on


def decode_at(path: Path, times_s: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8: the frames of the MP4 at `path` shown at `times_s` (seconds, ascending, repeats
    allowed). Frames far apart are reached by seeking to the key frame before each, near ones by decoding
    on; only the frames asked for are converted to RGB.

    Raises:
        VideoError: the file is missing or cannot be decoded, or a time lies past its end.
    """
    av = _av()
    found: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            # One decoding thread: a few frames per seek leave a decoder's threads idle, and starting them
            # at every open cost 1.5x the CPU time of a training batch's frames (measured on 2 cores).
            stream.thread_count = 1
            tolerance = 0.5 / float(stream.average_rate or 1)
            frames, position = None, -np.inf
            while len(found) < len(times_s):
                target = float(times_s[len(found)])
                if frames is None or target - position > SEEK_GAP_S:
                    container.seek(int(target / stream.time_base), stream=stream, backward=True)
                    frames = container.decode(stream)
                for frame in frames:
                    position = frame.time if frame.time is not None else position
                    if position < target - tolerance:
                        continue
                    image = _rgb(frame)
                    while len(found) < len(times_s) and abs(times_s[len(found)] - position) <= tolerance:
                        found.append(image)
                    if len(found) == len(times_s) or times_s[len(found)] - position > SEEK_GAP_S:
                        break
                else:
                    raise VideoError(f"{path}: no frame at {target:.3f} s; the video ends before it.")
    except (OSError, av.error.FFmpegError) as error:
        raise VideoError(f"{path}: cannot be decoded as video ({error}).") from error
    return np.stack(found)


def check_video(path: Path, frames: int) -> None:
    """Raises VideoError unless the MP4 at `path` decodes and holds at least `frames` frames (by its
    header; the first frame is decoded)."""
    av = _av()
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            next(container.decode(stream))
            held = stream.frames or int(
                float(stream.duration * stream.time_base) * float(stream.average_rate)
            )
    except (OSError, IndexError, StopIteration, TypeError, av.error.FFmpegError) as error:
        raise VideoError(f"{path}: cannot be decoded as video ({error!r}).") from error
    if held < frames:
        raise VideoError(f"{path}: the episodes need {frames} frames, the video holds {held}.")


def decode_image(data: bytes) -> np.ndarray:
    """(H, W, 3) uint8 from the bytes of an image feature (PNG or JPEG, as LeRobot's writer stores them)."""
    import imageio.v3 as iio

    try:
        image = np.asarray(iio.imread(io.BytesIO(data)))
    except Exception as error:  # imageio raises plugin-specific errors for bad bytes
        raise VideoError(f"an image feature's bytes cannot be decoded ({error}).") from error
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def is_camera_feature(feature: Any) -> bool:
    return isinstance(feature, dict) and feature.get("dtype") in VISUAL_DTYPES


def video_feature(height: int, width: int, fps: int) -> dict[str, Any]:
    """info.json's declaration of a video feature, as LeRobot writes it."""
    return {
        "dtype": "video",
        "shape": [height, width, 3],
        "names": ["height", "width", "channels"],
        "info": {
            "video.height": height,
            "video.width": width,
            "video.codec": "av1",
            "video.pix_fmt": PIXEL_FORMAT,
            "video.is_depth_map": False,
            "video.fps": fps,
            "video.channels": 3,
            "has_audio": False,
        },
    }


def image_stats(frames: np.ndarray) -> dict[str, Any]:
    """Per-channel statistics of uint8 frames in [0, 1], shaped (3, 1, 1) as LeRobot stores them for
    cameras; partial sums too, so a stream can merge the statistics of its files (`merge_image_stats`)."""
    pixels = frames.reshape(-1, 3).astype(np.float64) / 255.0
    return {
        "min": pixels.min(0).tolist(),
        "max": pixels.max(0).tolist(),
        "sum": pixels.sum(0).tolist(),
        "sum_sq": (pixels**2).sum(0).tolist(),
        "pixels": len(pixels),
        "count": len(frames),
    }


def merge_image_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """LeRobot's camera statistics (min, max, mean, std, count) of frames whose `image_stats` are `parts`."""
    pixels = sum(part["pixels"] for part in parts)
    mean = np.sum([part["sum"] for part in parts], axis=0) / pixels
    variance = np.sum([part["sum_sq"] for part in parts], axis=0) / pixels - mean**2
    per_channel = {
        "min": np.min([part["min"] for part in parts], axis=0),
        "max": np.max([part["max"] for part in parts], axis=0),
        "mean": mean,
        "std": np.sqrt(np.maximum(variance, 0.0)),
    }
    stats: dict[str, Any] = {name: values.reshape(3, 1, 1).tolist() for name, values in per_channel.items()}
    return stats | {"count": [sum(part["count"] for part in parts)]}
