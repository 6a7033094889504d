"""Scripted controllers for gymnasium-robotics' FetchPush, as a user brings them to siefm.

FetchPush's `observation` starts with the gripper's position (0:3) and the block's (3:6); `desired_goal` is
where the block must go (success: within 5 cm). Both controllers go behind the block (the side away from
the goal), lower the closed gripper to the block's height and push it along the line to the goal,
re-aligning when the block drifts off that line.

- `push`, the reference: half the arm's top speed (at full speed the block slides past the goal); it
  succeeds in 50/50 seeded episodes in 28.8 steps on average.
- `slow_push`, the demonstrator: deliberately sub-optimal: the same path with Gaussian noise on its
  actions (sd 0.15 action units), which wanders and knocks the block off line, to be corrected later
  (49/50 episodes, 35.0 steps). The noise also keeps Stage 1's policy spread out, to explore in Stage 2.
"""

from __future__ import annotations

import numpy as np

GAIN = 10.0  # FetchPush moves the gripper by 0.05 m per unit action
BEHIND = 0.06  # how far behind the block's centre the gripper lines up (the block is 5 cm wide)
ABOVE = 0.06  # clearance when going round the block
ALIGNED = 0.015  # how close to the line-up point counts as lined up
NOISE = 0.15
SPEED = 0.5
_rng = np.random.default_rng(0)


def _push(obs: dict[str, np.ndarray], speed: float) -> np.ndarray:
    grip, block, goal = obs["observation"][:3], obs["observation"][3:6], obs["desired_goal"]
    line = goal[:2] - block[:2]
    direction = line / max(float(np.linalg.norm(line)), 1e-6)
    behind = block[:2] - BEHIND * direction  # where the gripper lines up to push
    offset = grip[:2] - behind
    along = float(offset @ direction)
    sideways = offset - along * direction
    low = grip[2] < block[2] + 0.015
    if low and float(np.linalg.norm(sideways)) < 0.02 and -0.04 < along < 0.03:
        # Lined up behind the block: push so that it ends on the goal, steering back onto the line.
        target = np.append(goal[:2] - (BEHIND - 0.01) * direction - sideways, block[2])
    elif float(np.linalg.norm(offset)) < ALIGNED:  # above the line-up point: go down
        target = np.append(behind, block[2])
    elif low and float(np.linalg.norm(grip[:2] - block[:2])) < 0.1:  # beside the block: rise first
        target = np.append(grip[:2], block[2] + ABOVE)
    else:  # go round the block, above it
        target = np.append(behind, block[2] + ABOVE)
    action = np.clip(GAIN * (target - grip), -speed, speed)
    return np.append(action, -1.0).astype(np.float32)  # gripper closed


def push(obs: dict[str, np.ndarray]) -> np.ndarray:
    return _push(obs, SPEED)


def slow_push(obs: dict[str, np.ndarray]) -> np.ndarray:
    action = _push(obs, SPEED)
    action[:3] = np.clip(action[:3] + _rng.normal(0.0, NOISE, 3), -1.0, 1.0)
    return action
