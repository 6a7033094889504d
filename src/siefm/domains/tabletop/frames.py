"""The tabletop's frame source: states rendered as the pixel policy's camera sees them (Domain.frame_source).

Rendering from states, not storing images: see siefm.data.pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from siefm.domains.tabletop.camera import Camera
from siefm.domains.tabletop.env import TabletopConfig, TabletopEnv


class BoardFrames:
    """Renders tabletop states as the policy's camera sees them."""

    def __init__(self, config: dict[str, Any], size: int):
        self.board = TabletopEnv(TabletopConfig(**{**config, "image_size": (size, size)}))
        self.camera = Camera(self.board, size)
        self.size = size

    def render(self, states: np.ndarray) -> np.ndarray:
        """(N, S) states -> (N, size, size, 3) uint8 frames."""
        frames = np.empty((len(states), self.size, self.size, 3), dtype=np.uint8)
        for i, state in enumerate(states):
            self.board.show_state(state)
            frames[i] = self.camera.frame()
        return frames

    def close(self) -> None:
        self.board.close()
