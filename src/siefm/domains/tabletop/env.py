"""Tabletop: a LanguageTable-class pushing environment on MuJoCo, with the gymnasium API (docs/method.md, "The
tabletop reference").

Control runs at 10 Hz: an action is a 2-D delta (metres, at most 0.1 per axis) added to the pusher's
target, which is clipped to the board; the mocap pusher then moves in a straight line to the target over
the physics substeps. Observations hold the instruction text and either `state` (pusher, target and block
poses) or `pixels` (previous and current RGB frame from a fixed front camera). True success and privileged
state (block positions, the task) are only in `info`.

Reset (docs/method.md, "Board, pusher and blocks"): pusher uniform on the board shrunk by 8 cm; blocks uniform
with random yaw, redrawn when two footprints come closer than 1.75 cm (choice: the reference's 1.75 cm read as
clearance between footprints, centres >= 6.5 cm apart) or a block is within 6 cm of the pusher; physics
settles; a task is drawn, and the layout is redrawn if no task of the chosen family fits it.
"""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass

import gymnasium as gym
import mujoco
import numpy as np

from siefm.domains.tabletop.scene import (
    BLOCK_HEIGHT,
    BLOCK_SETS,
    BOARD_X,
    BOARD_Y,
    PUSHER_HEIGHT,
    build_model,
)
from siefm.domains.tabletop.tasks import FAMILIES, NOVEL_FAMILY, Task, on_board, sample_task

MIN_BLOCK_CENTRE_DISTANCE = 0.065
MIN_PUSHER_DISTANCE = 0.06
SETTLE_SUBSTEPS = 20
MAX_INSTRUCTION_LENGTH = 128
MAX_LAYOUT_ATTEMPTS = 1000
TWO_BLOCK_FAMILIES = ("block2block", "block2blockrelativelocation", "separate")
CHARSET = string.ascii_letters + string.digits + " ,.'-"


@dataclass(frozen=True)
class TabletopConfig:
    """Parameters of the tabletop env."""

    block_set: str = "8"
    """Which blocks are on the board: '8' (the standard set), '4' or '1' (for debugging)."""
    observation: str = "state"
    """'state' (pusher, target and block poses) or 'pixels' (previous and current RGB frame)."""
    image_size: tuple[int, int] = (96, 96)
    """(height, width) of rendered frames in 'pixels' mode."""
    families: tuple[str, ...] | None = None
    """Task families to draw from, uniformly; None: every family the block set allows (one block allows
    only block2absolutelocation and block2relativelocation; the 'banana' set only banana2location)."""
    max_steps: int = 200
    """Time limit of an episode in control steps (10 Hz)."""
    substeps: int = 5
    """Physics substeps per control step (timestep 0.02 s, so 5 gives 10 Hz control)."""
    max_action: float = 0.1
    """Per-axis bound of the 2-D delta action, in metres."""

    def with_board(self, block_set: str | None, families: tuple[str, ...] | None = None) -> TabletopConfig:
        """This config on another object set (None: the same) drawing from `families` (None: the set's own),
        validated."""
        return dataclasses.replace(
            self,
            block_set=block_set or self.block_set,
            families=None if families is None else tuple(families),
            image_size=tuple(self.image_size),
        )

    @property
    def task_families(self) -> tuple[str, ...]:
        """The families reset draws from."""
        if self.families is not None:
            return self.families
        if self.block_set == "banana":
            return (NOVEL_FAMILY,)
        if len(BLOCK_SETS[self.block_set]) == 1:
            return tuple(f for f in FAMILIES if f not in TWO_BLOCK_FAMILIES)
        return FAMILIES

    def __post_init__(self) -> None:
        if self.block_set not in BLOCK_SETS:
            raise ValueError(
                f"TabletopConfig.block_set = {self.block_set!r}: choose one of {sorted(BLOCK_SETS)}."
            )
        if self.observation not in ("state", "pixels"):
            raise ValueError(
                f"TabletopConfig.observation = {self.observation!r}: choose 'state' or 'pixels'."
            )
        if self.families is not None:
            known = (*FAMILIES, NOVEL_FAMILY) if self.block_set == "banana" else FAMILIES
            unknown = set(self.families) - set(known)
            if not self.families or unknown:
                raise ValueError(
                    f"TabletopConfig.families has unknown or no entries {sorted(unknown)} for block set "
                    f"{self.block_set!r}; use {known}."
                )
            if len(BLOCK_SETS[self.block_set]) == 1 and set(self.families) & set(TWO_BLOCK_FAMILIES):
                raise ValueError(
                    f"TabletopConfig.families {self.families} need two blocks; block_set '1' has one."
                )
        for name in ("max_steps", "substeps"):
            if getattr(self, name) < 1:
                raise ValueError(f"TabletopConfig.{name} must be >= 1, got {getattr(self, name)}.")
        if not self.max_action > 0:
            raise ValueError(f"TabletopConfig.max_action must be > 0, got {self.max_action}.")


class TabletopEnv(gym.Env):
    """Language-conditioned block pushing; see the module docstring."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012 (gymnasium's convention)

    def __init__(self, config: TabletopConfig | None = None, render_mode: str | None = None):
        self.config = config or TabletopConfig()
        self.render_mode = render_mode
        self.blocks = BLOCK_SETS[self.config.block_set]
        self.model = build_model(self.blocks, self.config.image_size)
        self.data = mujoco.MjData(self.model)
        self._block_qpos = [self.model.jnt_qposadr[self.model.body(b.body).jntadr[0]] for b in self.blocks]
        self._renderer: mujoco.Renderer | None = None
        self._cameras: dict[int, mujoco.Renderer] = {}  # square renderers of pixel policies, by size
        num_blocks = len(self.blocks)
        self.state_dim = 4 + 4 * num_blocks
        bound = np.float32(self.config.max_action)
        self.action_space = gym.spaces.Box(-bound, bound, shape=(2,), dtype=np.float32)
        spaces: dict[str, gym.Space] = {
            "instruction": gym.spaces.Text(MAX_INSTRUCTION_LENGTH, charset=CHARSET)
        }
        if self.config.observation == "state":
            spaces["state"] = gym.spaces.Box(-np.inf, np.inf, shape=(self.state_dim,), dtype=np.float32)
        else:
            h, w = self.config.image_size
            spaces["pixels"] = gym.spaces.Box(0, 255, shape=(2, h, w, 3), dtype=np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self.task: Task | None = None
        self.target = np.zeros(2)
        self._steps = 0
        self._previous_frame: np.ndarray | None = None

    # --- state access --------------------------------------------------------------------------------------

    def block_positions(self) -> np.ndarray:
        """(num_blocks, 2) block centres in metres."""
        return np.stack([self.data.qpos[a : a + 2] for a in self._block_qpos])

    def block_yaws(self) -> np.ndarray:
        quats = np.stack([self.data.qpos[a + 3 : a + 7] for a in self._block_qpos])  # (w, x, y, z)
        return np.arctan2(
            2 * (quats[:, 0] * quats[:, 3] + quats[:, 1] * quats[:, 2]),
            1 - 2 * (quats[:, 2] ** 2 + quats[:, 3] ** 2),
        )

    @property
    def pusher(self) -> np.ndarray:
        return self.data.mocap_pos[0, :2].copy()

    @property
    def steps(self) -> int:
        """Control steps since the current episode started (0 right after reset or new_task)."""
        return self._steps

    def blocks_on_board(self) -> bool:
        return all(on_board(position) for position in self.block_positions())

    def show_state(self, state: np.ndarray) -> None:
        """Poses the board as a `state` observation describes it (pusher, blocks at rest, upright), to
        render the frame a camera would have seen; the physics is not stepped. Stage 1 renders
        demonstrations' frames this way, so datasets store states only."""
        blocks = np.asarray(state[4:], dtype=np.float64).reshape(len(self.blocks), 4)
        for address, (x, y, cos_yaw, sin_yaw) in zip(self._block_qpos, blocks, strict=True):
            half = np.arctan2(sin_yaw, cos_yaw) / 2
            self.data.qpos[address : address + 3] = (x, y, BLOCK_HEIGHT / 2)
            self.data.qpos[address + 3 : address + 7] = (np.cos(half), 0.0, 0.0, np.sin(half))
        self.data.mocap_pos[0, :2] = state[:2]
        self.target = np.asarray(state[2:4], dtype=np.float64).copy()
        mujoco.mj_forward(self.model, self.data)

    # --- gymnasium API -------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        families = self.config.task_families
        family = (options or {}).get("family") or families[self.np_random.integers(len(families))]
        if family not in families:
            raise ValueError(f"options['family'] = {family!r} is not one of this env's families {families}.")
        for _ in range(MAX_LAYOUT_ATTEMPTS):
            self._place_layout()
            self.task = sample_task(self.np_random, family, self.block_positions(), self.blocks)
            if self.task is not None:
                break
        else:
            raise RuntimeError(f"no layout of {len(self.blocks)} blocks admitted a {family} task.")
        self._steps = 0
        self._previous_frame = None
        obs, _, info = self._outputs()
        return obs, info

    def new_task(self, family: str | None = None) -> tuple[dict, dict] | None:
        """Draws a new instruction on the board as it is, without moving anything (reset-free practice).

        Returns the observation and info like `reset`, or None when the layout admits no task of `family`.
        """
        families = self.config.task_families
        family = family or families[self.np_random.integers(len(families))]
        if family not in families:
            raise ValueError(f"family {family!r} is not one of this env's families {families}.")
        task = sample_task(self.np_random, family, self.block_positions(), self.blocks)
        if task is None:
            return None
        self.task, self._steps = task, 0
        obs, _, info = self._outputs()
        return obs, info

    def step(self, action):
        action = np.clip(
            np.asarray(action, dtype=np.float64), -self.config.max_action, self.config.max_action
        )
        start = self.pusher
        self.target = np.clip(self.target + action, [BOARD_X[0], BOARD_Y[0]], [BOARD_X[1], BOARD_Y[1]])
        for k in range(1, self.config.substeps + 1):  # a straight line to the target over the substeps
            self.data.mocap_pos[0, :2] = start + (self.target - start) * k / self.config.substeps
            mujoco.mj_step(self.model, self.data)
        self._steps += 1
        obs, success, info = self._outputs()
        truncated = not success and self._steps >= self.config.max_steps
        return obs, 0.0, success, truncated, info

    def is_success(self) -> bool:
        assert self.task is not None, "call reset() first"
        return self.task.is_success(self.block_positions())

    def render(self) -> np.ndarray | None:
        """The front camera's RGB frame when render_mode is 'rgb_array' (gymnasium's convention)."""
        return self._frame() if self.render_mode == "rgb_array" else None

    def _frame(self) -> np.ndarray:
        if self._renderer is None:
            h, w = self.config.image_size
            self._renderer = mujoco.Renderer(self.model, h, w)
        self._renderer.update_scene(self.data, camera="front")
        return self._renderer.render()

    def square_renderer(self, size: int) -> mujoco.Renderer:
        """A renderer of `size` x `size` frames on this board, made once and closed with the env (pixel
        policies' cameras share it; see siefm.domains.tabletop.camera)."""
        if size not in self._cameras:
            visual = self.model.vis.global_  # the offscreen buffer must hold the frame
            visual.offwidth, visual.offheight = max(visual.offwidth, size), max(visual.offheight, size)
            self._cameras[size] = mujoco.Renderer(self.model, size, size)
        return self._cameras[size]

    def close(self) -> None:
        for renderer in [self._renderer, *self._cameras.values()]:
            if renderer is not None:
                renderer.close()
        self._renderer, self._cameras = None, {}

    # --- helpers -------------------------------------------------------------------------------------------

    def _place_layout(self) -> None:
        rng = self.np_random
        mujoco.mj_resetData(self.model, self.data)
        margin = 0.08
        pusher = rng.uniform(
            [BOARD_X[0] + margin, BOARD_Y[0] + margin], [BOARD_X[1] - margin, BOARD_Y[1] - margin]
        )
        for _ in range(MAX_LAYOUT_ATTEMPTS):
            positions = rng.uniform(
                [BOARD_X[0] + 0.03, BOARD_Y[0] + 0.03],
                [BOARD_X[1] - 0.03, BOARD_Y[1] - 0.03],
                size=(len(self.blocks), 2),
            )
            gaps = np.linalg.norm(positions[:, None] - positions[None], axis=-1) + np.eye(len(self.blocks))
            if (
                gaps.min() >= MIN_BLOCK_CENTRE_DISTANCE
                and np.linalg.norm(positions - pusher, axis=-1).min() >= MIN_PUSHER_DISTANCE
            ):
                break
        else:
            raise RuntimeError(
                f"could not place {len(self.blocks)} blocks {MIN_BLOCK_CENTRE_DISTANCE} m apart."
            )
        for address, position, yaw in zip(
            self._block_qpos, positions, rng.uniform(-np.pi, np.pi, len(self.blocks)), strict=True
        ):
            self.data.qpos[address : address + 3] = (*position, BLOCK_HEIGHT / 2 + 0.001)
            self.data.qpos[address + 3 : address + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        self.data.mocap_pos[0] = (*pusher, PUSHER_HEIGHT + 0.04)
        self.target = pusher.copy()
        mujoco.mj_forward(self.model, self.data)
        for _ in range(SETTLE_SUBSTEPS):
            mujoco.mj_step(self.model, self.data)

    def _outputs(self) -> tuple[dict, bool, dict]:
        """Observation, true success and info, from one read of the block positions."""
        assert self.task is not None, "call reset() first"
        positions = self.block_positions()
        success = self.task.is_success(positions)
        info = {
            "is_success": success,
            "block_positions": positions,
            "task_family": self.task.family,
            "task_block": self.task.block,
            "task_target": np.asarray(self.task.target),
            "blocks_on_board": all(on_board(position) for position in positions),
        }
        return self._observation(positions), success, info

    def _observation(self, positions: np.ndarray) -> dict:
        assert self.task is not None
        obs: dict = {"instruction": self.task.instruction}
        if self.config.observation == "state":
            yaws = self.block_yaws()
            blocks = np.concatenate([positions, np.cos(yaws)[:, None], np.sin(yaws)[:, None]], axis=1)
            obs["state"] = np.concatenate([self.pusher, self.target, blocks.ravel()]).astype(np.float32)
        else:
            frame = self._frame()
            previous = frame if self._previous_frame is None else self._previous_frame
            obs["pixels"] = np.stack([previous, frame])
            self._previous_frame = frame
        return obs
