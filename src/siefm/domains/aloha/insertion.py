"""A scripted Aloha insertion demonstrator that acts in the joint-space env itself, built like the
transfer-cube one (siefm.domains.aloha.demonstrator): keyframes of each hand's tool point, solved by inverse
kinematics from the previous command every 10 Hz step, sent as chunks of 5 joint targets.

The plan: both hands come down on their object from 8 cm above, pointing along its length (the left from -x
onto the socket, the right from +x onto the peg) and tilted down 45 degrees, so that the fingers squeeze its
long sides; they close, lift 5 cm and carry: the left holds the socket's centre at MEET, the right brings the
peg in line with it, its tip 5 cm out of the socket's mouth. Then the right hand is steered by the peg's tip,
closed on the observed poses: every step it moves from its last target by half of the tip's observed error
from a goal on the socket's observed axis, ENTRY (3 cm) out of the mouth for HOLD steps, then moving to DEPTH
(4 cm) in over PUSH steps, past the pin's face 2 cm in; the tip is not let into the mouth while it is more
than 4 mm off the axis. Steering the tip rather than the hand absorbs what an open-loop plan cannot: where
the peg sits in the weak grip (the 2 cm peg is held with ~2 N, near the fingertips), how far the compliant
arms sag, and where the socket sits in the other hand. Success is gym-aloha's: the peg touches the pin.

The sub-optimality knobs are the transfer demonstrator's: pauses (the timeline stands still for 2-6 steps,
the hands still following the objects), detours (each through a random point on one carrying arm's way to
the meeting point, the arm drawn at random), a re-grasp (of the peg or of the socket, drawn at random) and a
drop (the peg is let go about 10 cm up on its way, and picked where it fell). Each is drawn per episode from
the seed given to `reset`.

Measured in AlohaEnv(task="insertion") with its 150-step limit, on seeds 1000-1099 (tuned on seeds 0-59 and
100-159), CPU time of one process on a busy 2-core machine:
- straight: 100/100 successes, 54.4 steps on average (at most 57), 0.39 CPU s per episode;
- pauses=3, detours=3, regrasp_probability=0.3: 100/100, 71.3 steps (at most 96), 0.42 CPU s;
- the same with drop_probability=0.5: 100/100, 89.2 steps (at most 125), 0.62 CPU s;
- every knob at its maximum (3, 3, 1.0, 1.0), seeds 1000-1029: 30/30, 109 steps on average.
- `noise` costs far more here than in the transfer (seeds 1000-1039, straight): 39/40 at 0.005 rad, 31/40
  at 0.01, 4/40 at 0.02. At 0.01 rad the lined-up tip's distance from the socket's axis swings by 1-2 cm
  from step to step (fresh offsets on both arms), more than the 8 mm the hole leaves around the peg; the
  failures seen hit the rim and twisted the peg out of its weak grip, or let it slide out while waiting.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from siefm.domains.aloha.demonstrator import (
    ARM_OFFSETS,
    CLOSED,
    OPEN,
    Keyframe,
    KeyframeDemonstrator,
    Position,
    fixed,
    latched,
    up,
)
from siefm.domains.aloha.env import JOINTS
from siefm.domains.aloha.kinematics import gripper_rotation

OBJECTS = 2 * JOINTS  # where the state's object poses start: the peg's (7), then the socket's (7)
RIGHT_HAND = slice(OBJECTS + 17, OBJECTS + 20)  # the right tool point (after both poses, the left one)
HALF = 0.06  # half the length of the peg and of the socket
MEET = np.array([-0.06, 0.5, 0.15])  # where the left hand holds the socket's centre for the insertion
PICK = {"left": gripper_rotation(0.0, np.pi / 4), "right": gripper_rotation(np.pi, np.pi / 4)}
GRASP = {"left": up(0.0), "right": up(0.005)}  # tool point - object centre at the grasp
ENTRY = 0.03  # how far out of the socket's mouth the peg's tip is lined up, for HOLD steps, before ...
DEPTH = 0.04  # ... it is aimed this far in over PUSH steps (the pin's face is 0.02 in)
HOLD, PUSH = 8, 10
GAIN = 0.5  # the part of the peg tip's observed error that each 10 Hz step corrects (0.7 oscillates)
ALIGNED = 0.004  # the tip stays WAIT out of the mouth until it is this close to the socket's axis: the hole
WAIT = 0.005  # leaves 8 mm around the peg, and the grips are too weak to survive hitting the rim
REACH = 0.03  # the right hand is sent at most this far from where it is (a lost peg does not fling it)

Object = Callable[[np.ndarray], np.ndarray]  # the state -> a point of an object


def peg(state: np.ndarray) -> np.ndarray:
    return state[OBJECTS : OBJECTS + 3]


def socket(state: np.ndarray) -> np.ndarray:
    return state[OBJECTS + 7 : OBJECTS + 10]


HELD: dict[str, Object] = {"left": socket, "right": peg}


def _axis(quaternion: np.ndarray, toward: np.ndarray) -> np.ndarray:
    """A body's x axis (its long axis) from its quaternion, signed to point along `toward`."""
    matrix = np.zeros(9)
    mujoco.mju_quat2Mat(matrix, quaternion)
    axis = matrix.reshape(3, 3)[:, 0]
    return axis if axis @ toward > 0 else -axis


def peg_tip(state: np.ndarray) -> np.ndarray:
    """The peg's end that faces the socket."""
    return peg(state) + HALF * _axis(state[OBJECTS + 3 : OBJECTS + 7], socket(state) - peg(state))


def socket_axis(state: np.ndarray) -> np.ndarray:
    """The socket's axis, out of its end that faces the peg."""
    return _axis(state[OBJECTS + 10 : OBJECTS + 14], peg(state) - socket(state))


def at(thing: Object, offset: np.ndarray) -> Position:
    return lambda state: thing(state) + offset


def lifted(thing: Object, height: float) -> Position:
    """`height` above where `thing` is when first asked for (when the gripper has closed on it)."""
    position = latched(up(height))
    return lambda state: position(thing(state))


class InsertionDemonstrator(KeyframeDemonstrator):
    """The left hand picks the socket and holds it up; the right picks the peg and pushes it in along the
    socket's observed axis until it touches the pin. All of the transfer demonstrator's keyword arguments
    work; the drop lets go of the peg."""

    scene = "insertion"

    def observed(self, state: np.ndarray) -> np.ndarray:
        return state  # the positions read both objects' poses and the right tool point

    def tip_at(self, outside: float) -> Position:
        """The right tool point that brings the peg's tip `outside` metres out of the socket's mouth on
        the socket's axis (negative: in), as a step from where the right hand was last sent: the peg's
        pose in the hand and the arm's sag are both in the tip's observed error, which this closes."""

        def position(state: np.ndarray) -> np.ndarray:
            axis = socket_axis(state)
            mouth = socket(state) + HALF * axis
            off = peg_tip(state) - mouth
            depth = outside
            if off @ axis > 0 and np.linalg.norm(off - (off @ axis) * axis) > ALIGNED:
                depth = max(outside, WAIT)  # not in yet, and off the axis: line up first
            sent, _ = self.kinematics.pose("right", self.command[7:13])  # the last target, before noise
            target = sent + GAIN * (mouth + depth * axis - peg_tip(state))
            lead = target - state[RIGHT_HAND]
            return state[RIGHT_HAND] + lead * min(1.0, REACH / (np.linalg.norm(lead) + 1e-9))

        return position

    def _plan(self, state: np.ndarray) -> dict[str, list[Keyframe]]:
        timeline = {}
        for arm, offset in ARM_OFFSETS:
            point, rotation = self.kinematics.pose(arm, self.command[offset : offset + 6])
            held, grasp, pick = HELD[arm], GRASP[arm], PICK[arm]
            timeline[arm] = [
                Keyframe(0, fixed(point), rotation, OPEN),
                Keyframe(12, at(held, grasp + up(0.08)), pick, OPEN),
                Keyframe(18, at(held, grasp), pick, OPEN),
                Keyframe(21, at(held, grasp), pick, CLOSED),
            ]
        t = 21
        if self.rng.random() < self.suboptimal.regrasp_probability:
            arm = ("left", "right")[self.rng.integers(2)]
            held, grasp, pick = HELD[arm], GRASP[arm], PICK[arm]
            timeline[arm] += [
                Keyframe(t + 2, at(held, grasp), pick, OPEN),
                Keyframe(t + 5, at(held, grasp + up(0.03)), pick, OPEN),
                Keyframe(t + 8, at(held, grasp), pick, OPEN),
                Keyframe(t + 11, at(held, grasp), pick, CLOSED),
            ]
            t += 11
        for arm in timeline:
            timeline[arm].append(Keyframe(t + 3, lifted(HELD[arm], 0.05), PICK[arm], CLOSED))
        t += 3
        right, pick, grasp = timeline["right"], PICK["right"], GRASP["right"]
        start = {arm: HELD[arm](state) for arm in timeline}
        meet = {"left": MEET, "right": MEET + np.array([2 * HALF + 0.05, 0, 0])}  # the tip 5 cm out
        if self.rng.random() < self.suboptimal.drop_probability:
            # Carried part of the way, let go; then back to where the peg fell, and lifted from there.
            above = fixed((start["right"] + meet["right"]) / 2 + grasp + up(0.03))
            right += [
                Keyframe(t + 5, above, pick, CLOSED),
                Keyframe(t + 7, above, pick, OPEN),
                Keyframe(t + 10, above, pick, OPEN),
                Keyframe(t + 18, at(peg, grasp + up(0.08)), pick, OPEN),
                Keyframe(t + 23, at(peg, grasp), pick, OPEN),
                Keyframe(t + 26, at(peg, grasp), pick, CLOSED),
                Keyframe(t + 29, lifted(peg, 0.05), pick, CLOSED),
            ]
            t += 29
        for _ in range(self.rng.integers(self.suboptimal.detours + 1)):
            arm = ("left", "right")[self.rng.integers(2)]
            point = (start[arm] + meet[arm]) / 2 + self.rng.uniform(-0.06, 0.06, 3) + up(0.08)
            t += 5
            timeline[arm].append(Keyframe(t, fixed(point + GRASP[arm]), PICK[arm], CLOSED))
        t += 10
        for arm in timeline:
            timeline[arm].append(Keyframe(t, fixed(meet[arm] + GRASP[arm]), PICK[arm], CLOSED))
        right += [
            Keyframe(t + 2, self.tip_at(ENTRY), pick, CLOSED),
            Keyframe(t + 2 + HOLD, self.tip_at(ENTRY), pick, CLOSED),
            Keyframe(t + 2 + HOLD + PUSH, self.tip_at(-DEPTH), pick, CLOSED),
        ]
        self._draw_pauses(t + 2 + HOLD + PUSH)
        return timeline
