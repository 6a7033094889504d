"""Scripted Aloha demonstrators (transfer-cube here, insertion in siefm.domains.aloha.insertion) that act
in the joint-space env itself, closing the loop through inverse kinematics every 10 Hz step
(siefm.domains.aloha.kinematics).

A demonstrator is a timeline of gripper keyframes per arm: a tool-point position (which may follow the
object's observed pose), an orientation and a gripper opening. At every step it interpolates the two arms'
targets for the end of the step, solves each arm's joints from the previous command, and sends the chunk
of 5 joint targets that moves there in straight joint-space lines. Because it reads the object's pose from
the observation at every step, what it demonstrates succeeds in the env it is evaluated in.

`noise` (radians) perturbs the joint targets it sends, so the demonstrations also show how the closed loop
recovers from being off its plan, which a cloned policy needs once its own errors put it there.

Sub-optimal on purpose (`detours`, `pauses`, `regrasp_probability`, `drop_probability`), so that Stage 2
has something to remove: pauses hold both arms still for a few steps; detours send the carrying arm through
a random point on its way; a re-grasp opens the gripper after the first grasp, lifts, and grasps again; a
drop lets the cube fall on its way to the middle and picks it up where it fell. Drops also show an arm in
mid-air without the cube, far from done, which unbroken carries never do (meant for the steps-to-go model;
on its own it did not stop practice from fooling the detector: docs/aloha.md). Each is drawn per episode
from the demonstrator's seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import numpy as np

from siefm.domains.aloha.env import CHUNK, JOINTS, scene_model
from siefm.domains.aloha.kinematics import ArmKinematics, gripper_rotation

Position = Callable[[np.ndarray], np.ndarray]  # what a demonstrator reads (`observed`) -> a tool point

RIGHT_BASE = np.array([0.469, 0.5])
ARM_OFFSETS = (("left", 0), ("right", 7))  # where each arm's 7 numbers start in a 14-number joint vector
OPEN, CLOSED = 1.0, 0.0


@dataclass(frozen=True)
class Keyframe:
    time: float  # in 10 Hz steps
    position: Position
    rotation: np.ndarray
    gripper: float


@dataclass(frozen=True)
class Suboptimality:
    pauses: int = 0
    """At most this many pauses of 2-6 steps, each at a random moment."""
    detours: int = 0
    """At most this many random points (within 6 cm) the carrying arm passes through."""
    regrasp_probability: float = 0.0
    """The chance that the first grasp is opened and made again."""
    drop_probability: float = 0.0
    """The chance that the cube is dropped on its way to the middle and picked up where it fell."""
    feint_probability: float = 0.0
    """The chance that the left gripper closes and opens again on its way (transfer-cube), so that a closed
    left gripper does not by itself mean the transfer is done."""


class KeyframeDemonstrator:
    """What the scripted demonstrators share: per arm a timeline of keyframes planned at the first
    observation, followed through inverse kinematics from the previous command every 10 Hz step, pauses
    that stop the timeline's clock, and noise on what is sent.

    A stateful controller for `siefm collect` (one observation -> one chunk of joint targets), started by
    `reset(seed)` at each episode; its keyword arguments are JSON, so datasets record them. Subclasses name
    their `scene`, say what their keyframes' positions read (`observed`) and plan the timelines."""

    scene: str

    def __init__(
        self,
        pauses: int = 0,
        detours: int = 0,
        regrasp_probability: float = 0.0,
        drop_probability: float = 0.0,
        noise: float = 0.0,
        feint_probability: float = 0.0,
    ):
        self.kinematics = ArmKinematics(scene_model(self.scene))
        self.suboptimal = Suboptimality(
            pauses, detours, regrasp_probability, drop_probability, feint_probability
        )
        self.noise = noise
        self.reset(0)

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.timeline: dict[str, list[Keyframe]] | None = None
        self.pauses: list[tuple[float, int]] = []  # (timeline time, steps) at which the timeline stops
        self.step = 0

    def observed(self, state: np.ndarray) -> np.ndarray:
        """What the keyframes' positions are functions of."""
        raise NotImplementedError

    def _plan(self, state: np.ndarray) -> dict[str, list[Keyframe]]:
        raise NotImplementedError

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        state = observation["state"]
        if self.timeline is None:
            self.command = state[:JOINTS].copy()
            self.timeline = self._plan(state)
        target = self.command.copy()
        time, objects = self._clock(self.step + 1), self.observed(state)
        for arm, offset in ARM_OFFSETS:
            position, rotation, gripper = interpolate(self.timeline[arm], time, objects)
            joints = self.kinematics.solve(arm, self.command[offset : offset + 6], position, rotation)
            target[offset : offset + 6], target[offset + 6] = joints, gripper
        chunk = self.command + np.outer(np.arange(1, CHUNK + 1) / CHUNK, target - self.command)
        self.command, self.step = target, self.step + 1
        if self.noise:  # on the arm joints of what is sent, not on the plan: the loop corrects it next step
            arms = np.r_[0:6, 7:13]
            chunk[:, arms] += self.rng.normal(0.0, self.noise, len(arms))  # one offset per 10 Hz step
        return chunk.reshape(-1)

    def _draw_pauses(self, end: float) -> None:
        """Up to `suboptimal.pauses` pauses of 2-6 steps, each at a random time before `end`."""
        count = self.rng.integers(self.suboptimal.pauses + 1)
        self.pauses = sorted((self.rng.uniform(1, end), int(self.rng.integers(2, 7))) for _ in range(count))

    def _clock(self, step: int) -> float:
        """The timeline's time at `step`: it stands still during the pauses, while the hands' positions
        still follow the objects. (A clock, not held keyframes inserted at planning time: those would
        evaluate positions before the object is seen there and latch a `latched` position wrongly.)"""
        time = float(step)
        for begin, length in self.pauses:
            if time > begin:
                time = max(begin, time - length)
        return time


class TransferCubeDemonstrator(KeyframeDemonstrator):
    """The right arm picks the cube, lifts it to the middle; the left arm, rolled 90 degrees, comes from
    the other side and grips its top and bottom faces, following the cube's observed position."""

    scene = "transfer_cube"

    def observed(self, state: np.ndarray) -> np.ndarray:
        return state[2 * JOINTS : 2 * JOINTS + 3]  # the cube's position

    def _plan(self, state: np.ndarray) -> dict[str, list[Keyframe]]:
        cube = self.observed(state)
        start = {arm: self.kinematics.pose(arm, self.command[o : o + 6]) for arm, o in ARM_OFFSETS}
        reach = np.arctan2(cube[1] - RIGHT_BASE[1], cube[0] - RIGHT_BASE[0])
        along = np.array([np.cos(reach), np.sin(reach), 0.0])
        grasp_offset = 0.01 * along + up(0.005)
        pick = gripper_rotation(reach, np.pi / 4)
        carry = gripper_rotation(np.pi, np.pi / 4)
        meet = np.array([0.06, 0.5, 0.22])
        meet_left = gripper_rotation(0.0, 0.0, np.pi / 2)

        def at_cube(offset: np.ndarray) -> Position:
            return lambda c: c + offset

        right = [
            Keyframe(0, fixed(start["right"][0]), start["right"][1], OPEN),
            Keyframe(12, at_cube(grasp_offset + up(0.08)), pick, OPEN),
            Keyframe(18, at_cube(grasp_offset), pick, OPEN),
            Keyframe(21, at_cube(grasp_offset), pick, CLOSED),
        ]
        t = 21
        if self.rng.random() < self.suboptimal.regrasp_probability:
            right += [
                Keyframe(t + 2, at_cube(grasp_offset), pick, OPEN),
                Keyframe(t + 5, at_cube(grasp_offset + up(0.03)), pick, OPEN),
                Keyframe(t + 8, at_cube(grasp_offset), pick, OPEN),
                Keyframe(t + 11, at_cube(grasp_offset), pick, CLOSED),
            ]
            t += 11
        right.append(Keyframe(t + 3, fixed(cube + grasp_offset + up(0.05)), pick, CLOSED))
        t += 3
        if self.rng.random() < self.suboptimal.drop_probability:
            # Carried part of the way, let go; then back to where the cube fell, and lifted from there
            # (the height is taken from where the cube is when the gripper has closed on it again).
            above = fixed((cube + meet) / 2 + grasp_offset + up(0.04))
            right += [
                Keyframe(t + 5, above, pick, CLOSED),
                Keyframe(t + 7, above, pick, OPEN),
                Keyframe(t + 10, above, pick, OPEN),
                Keyframe(t + 18, at_cube(grasp_offset + up(0.08)), pick, OPEN),
                Keyframe(t + 23, at_cube(grasp_offset), pick, OPEN),
                Keyframe(t + 26, at_cube(grasp_offset), pick, CLOSED),
                Keyframe(t + 29, latched(grasp_offset + up(0.05)), pick, CLOSED),
            ]
            t += 29
        for _ in range(self.rng.integers(self.suboptimal.detours + 1)):
            point = (cube + meet) / 2 + self.rng.uniform(-0.06, 0.06, 3) + up(0.08)
            t += 5
            right.append(Keyframe(t, fixed(point + grasp_offset), pick, CLOSED))
        t += 10
        right += [
            Keyframe(t, fixed(meet + grasp_offset), carry, CLOSED),
            Keyframe(t + 24, fixed(meet + grasp_offset), carry, CLOSED),
            Keyframe(t + 27, fixed(meet + grasp_offset), carry, OPEN),
            Keyframe(t + 35, fixed(meet + grasp_offset + np.array([0.1, 0, 0.05])), carry, OPEN),
        ]
        left = [
            Keyframe(0, fixed(start["left"][0]), start["left"][1], OPEN),
            Keyframe(t, fixed(meet + np.array([-0.12, 0, 0])), meet_left, OPEN),
            Keyframe(t + 10, at_cube(np.array([0.01, 0, 0])), meet_left, OPEN),
            Keyframe(t + 14, at_cube(np.array([0.01, 0, 0])), meet_left, CLOSED),
            Keyframe(t + 40, fixed(meet + np.array([-0.1, 0, 0.05])), meet_left, CLOSED),
        ]
        self._draw_pauses(t)
        if self.suboptimal.feint_probability and self.rng.random() < self.suboptimal.feint_probability:
            # Drawn last, so that datasets without feints keep their other draws. The left arm's way to the
            # meeting point has fixed positions, so it can be read at planning time.
            begin = self.rng.uniform(3, t - 8)
            feint = [(begin, OPEN), (begin + 3, CLOSED), (begin + 6, OPEN)]
            frames = []
            for time, gripper in feint:
                position, rotation, _ = interpolate(left, time, cube)
                frames.append(Keyframe(time, fixed(position), rotation, gripper))
            left[1:1] = frames
        return {"left": left, "right": right}


def latched(offset: np.ndarray) -> Position:
    """`offset` from where the object is when this position is first asked for, then fixed there."""
    at: list[np.ndarray] = []

    def position(cube: np.ndarray) -> np.ndarray:
        if not at:
            at.append(cube.copy())
        return at[0] + offset

    return position


def fixed(point: np.ndarray) -> Position:
    """`point`, wherever the objects are."""
    return lambda _: point


def up(height: float) -> np.ndarray:
    return np.array([0.0, 0.0, height])


def interpolate(
    frames: list[Keyframe], time: float, objects: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Position, rotation and gripper at `time`: straight lines between keyframes (rotations by normalised
    quaternion interpolation), the last keyframe held after its time."""
    if time >= frames[-1].time:
        last = frames[-1]
        return last.position(objects), last.rotation, last.gripper
    k = max(i for i, f in enumerate(frames) if f.time <= time)
    a, b = frames[k], frames[k + 1]
    alpha = (time - a.time) / (b.time - a.time)
    position = (1 - alpha) * a.position(objects) + alpha * b.position(objects)
    return position, _blend(a.rotation, b.rotation, alpha), (1 - alpha) * a.gripper + alpha * b.gripper


def _blend(a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    qa, qb = np.zeros(4), np.zeros(4)
    mujoco.mju_mat2Quat(qa, a.flatten())
    mujoco.mju_mat2Quat(qb, b.flatten())
    if qa @ qb < 0:
        qb = -qb
    q = (1 - alpha) * qa + alpha * qb
    q /= np.linalg.norm(q)
    matrix = np.zeros(9)
    mujoco.mju_quat2Mat(matrix, q)
    return matrix.reshape(3, 3)
