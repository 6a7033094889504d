"""A scripted pushing oracle for the tabletop env, using privileged state (docs/method.md, "The reference's
scripted oracle").

Two phases with hysteresis, re-planned every step from the task's block A and the point T it must reach:
- reposition: move to the pre-push point 6 cm behind A on the line from T through A (clipped to the
  board). When the pusher is beside or beyond A, it first goes to a point beside and behind A, on a side
  that lies on the board, so the approach goes around A instead of sweeping it along.
- push: from behind A, push along the direction to T (slower), correcting sideways to stay on the line.
  It falls back to repositioning when it loses the line.
Speeds are capped (3.5 cm per step while repositioning, 2 cm while pushing); optional Gaussian noise adds
diversity to demonstrations. Every success criterion is about block positions, not orientations, so the
reference's re-orientation phase is left out.

Optional detours make the demonstrations sub-optimal in the way the paper's PointMass demonstrations are
(docs/method.md, "The PointMass notebook": random waypoints before the goal): at the start of an episode the
pusher first visits a random number of random points on the board, sweeping any block in its way, and only
then does the task. The waypoints are not in the observation, so a policy cloned from such data wanders as
well.
"""

from __future__ import annotations

import numpy as np

from siefm.domains.tabletop.env import TabletopEnv
from siefm.domains.tabletop.scene import BOARD_X, BOARD_Y

APPROACH_SPEED = 0.035
PUSH_SPEED = 0.02
PRE_PUSH_OFFSET = 0.06
SIDE_OFFSET = 0.065
NOISE_STREAM = 1
LOST_LINE = 0.03  # lateral error (m) at which pushing gives way to repositioning
WAYPOINT_MARGIN = 0.04  # detour waypoints keep this far (m) from the board's edges
WAYPOINT_REACHED = 0.01
BOARD_LOW, BOARD_HIGH = np.array([BOARD_X[0], BOARD_Y[0]]), np.array([BOARD_X[1], BOARD_Y[1]])


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 1e-9 else np.zeros_like(vector)


def _step_towards(start: np.ndarray, goal: np.ndarray, speed: float) -> np.ndarray:
    delta = goal - start
    distance = np.linalg.norm(delta)
    return delta if distance <= speed else delta * speed / distance


class PushOracle:
    """`reset()` at each episode start, then `act(env)` per step returns a 2-D delta action."""

    def __init__(self, noise: float = 0.0, seed: int | None = None, max_detours: int = 0):
        if max_detours < 0:
            raise ValueError(f"max_detours must be >= 0, got {max_detours}.")
        self.noise = noise
        self.max_detours = max_detours
        self.rng = np.random.default_rng(seed)
        self.pushing = False
        self.waypoints: list[np.ndarray] = []

    def reset(self, seed: int | None = None) -> None:
        """Starts an episode; a seed makes its noise and detours independent of the episodes before it."""
        self.pushing = False
        if seed is not None:
            # A stream of its own: seeding with the env's seed alone would replay the layout's random draws.
            self.rng = np.random.default_rng([seed, NOISE_STREAM])
        # No draw without detours, so the plain oracle's noise stream (and its datasets) stay as they were.
        count = int(self.rng.integers(0, self.max_detours + 1)) if self.max_detours else 0
        low, high = BOARD_LOW + WAYPOINT_MARGIN, BOARD_HIGH - WAYPOINT_MARGIN
        self.waypoints = [self.rng.uniform(low, high) for _ in range(count)]

    def goal_point(self, env: TabletopEnv) -> np.ndarray:
        """Where block A should go: the other block for block2block, else the task's fixed target."""
        task = env.task
        assert task is not None
        if task.family == "block2block":
            return env.block_positions()[task.other]
        return np.asarray(task.target)

    @staticmethod
    def _detour(block: np.ndarray, direction: np.ndarray, lateral: np.ndarray) -> np.ndarray | None:
        """A point beside and behind A on the pusher's side, or on the other side if that is off the board."""
        normal = np.array([-direction[1], direction[0]])
        sides = [normal, -normal] if np.dot(lateral, normal) >= 0 else [-normal, normal]
        for side in sides:
            point = block + SIDE_OFFSET * side - PRE_PUSH_OFFSET * direction
            if (point >= BOARD_LOW).all() and (point <= BOARD_HIGH).all():
                return point
        return None

    def act(self, env: TabletopEnv) -> np.ndarray:
        while self.waypoints and np.linalg.norm(env.pusher - self.waypoints[0]) < WAYPOINT_REACHED:
            self.waypoints.pop(0)
        if self.waypoints:
            return self._noisy(env, _step_towards(env.pusher, self.waypoints[0], APPROACH_SPEED))
        task = env.task
        assert task is not None
        block = env.block_positions()[task.block]
        pusher = env.pusher
        direction = _unit(self.goal_point(env) - block)  # the way A must move
        along = float(np.dot(pusher - block, direction))  # < 0: the pusher is behind A
        lateral = pusher - block - along * direction
        if self.pushing and (np.linalg.norm(lateral) > LOST_LINE or along > -0.01):
            self.pushing = False
        # Near an edge the point behind A can lie off the board, where the pusher cannot go: use the closest
        # reachable point and push at a slant.
        pre_push = np.clip(block - PRE_PUSH_OFFSET * direction, BOARD_LOW + 0.005, BOARD_HIGH - 0.005)
        if not self.pushing and np.linalg.norm(pusher - pre_push) < 0.01:
            self.pushing = True
        if self.pushing:
            action = PUSH_SPEED * direction - 0.5 * lateral
        elif (
            along > -0.03
            and np.linalg.norm(lateral) < SIDE_OFFSET - 0.005
            and (detour := self._detour(block, direction, lateral)) is not None
        ):
            # Beside or beyond A: pass A on one side so the way to the pre-push point does not sweep it along.
            action = _step_towards(pusher, detour, APPROACH_SPEED)
        else:
            action = _step_towards(pusher, pre_push, APPROACH_SPEED)
        return self._noisy(env, action)

    def _noisy(self, env: TabletopEnv, action: np.ndarray) -> np.ndarray:
        if self.noise > 0:
            action = action + self.rng.normal(0.0, self.noise, size=2)
        return np.clip(action, -env.config.max_action, env.config.max_action)
