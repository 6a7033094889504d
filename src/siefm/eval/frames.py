"""Evaluation videos' frames: a rendered frame under a caption (what the episode is, then where it stands)."""

from __future__ import annotations

import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CHAR_WIDTH = 6  # pixels per character of the 11 px font, for wrapping the caption to the frame's width


def caption_height(lines: int = 2) -> int:
    """Pixels above the frame for `lines` caption lines and the status line."""
    return 16 + 15 * lines


def annotate_frame(frame: np.ndarray, caption: str, status: str, lines: int = 2) -> np.ndarray:
    """(H, W, 3) uint8 -> (H + caption_height(lines), W, 3): `caption` in white, each of its lines wrapped
    to the frame's width (`lines` lines fit), then the one-line `status` highlighted."""
    height, width, _ = frame.shape
    top = caption_height(lines)
    image = Image.new("RGB", (width, height + top), (0, 0, 0))
    image.paste(Image.fromarray(frame), (0, top))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=11)
    text = "\n".join(textwrap.fill(line, width // CHAR_WIDTH) for line in caption.splitlines())
    draw.multiline_text((3, 2), text, fill=(255, 255, 255), font=font, spacing=2)
    draw.text((3, top - 16), status, fill=(255, 220, 120), font=font)
    return np.asarray(image)
