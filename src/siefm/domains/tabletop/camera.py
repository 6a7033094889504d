"""The policy's camera: square RGB frames of a board's front camera, with the previous frame kept.

Pixel models see the previous and the current frame (docs/method.md, "Model settings per domain"). A `Camera`
renders at the model's size with the board's square renderer of that size, so it works on any board, whatever
that board renders for videos, and several cameras (a policy's, a reward model's) can watch one board, each
with its own previous frame. The first observation of an episode repeats its frame as the previous one, as the
env's own pixel observations do.
"""

from __future__ import annotations

import numpy as np

from siefm.domains.tabletop.env import TabletopEnv

# The policy's camera frames the board tightly (oblique from the front, 28 degrees from vertical), unlike
# the wide "front" camera of the videos: at 64 x 64 the wide view left the board ~40 x 20 pixels and a
# block ~2 pixels, and a Stage 1 policy on those frames reached 5% on block2block.
POLICY_CAMERA = "policy"


class Camera:
    """Front-camera frames of one board at `size` x `size`."""

    def __init__(self, board: TabletopEnv, size: int):
        self.board = board
        self.renderer = board.square_renderer(size)  # closed with the board
        self.previous: np.ndarray | None = None

    def frame(self) -> np.ndarray:
        """(size, size, 3) uint8: the board as it is now."""
        self.renderer.update_scene(self.board.data, camera=POLICY_CAMERA)
        return self.renderer.render()

    def observe(self, new_episode: bool = False) -> np.ndarray:
        """(2, size, size, 3): the previous frame (the current one at an episode's start) and the current."""
        current = self.frame()
        previous = current if new_episode or self.previous is None else self.previous
        self.previous = current
        return np.stack([previous, current])
