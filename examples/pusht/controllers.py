"""A scripted demonstrator for NearGoalPushT (near_goal.py): push the T's centre straight to the target."""

from __future__ import annotations

import numpy as np
from near_goal import GOAL

BEHIND = 95.0  # pixels behind the T's centre of mass where the agent lines up
STEP = 25.0  # how far ahead of the agent each target is, pixels
ORBIT = 110.0  # pixels from the T's centre while going round it
_rng = np.random.default_rng(0)


def centre(pose: np.ndarray) -> np.ndarray:
    """The T's centre of mass: 45 pixels along its stem from the body's origin (gym-pusht's geometry)."""
    return pose[:2] + 45.0 * np.array([-np.sin(pose[2]), np.cos(pose[2])])


def push(obs: dict[str, np.ndarray]) -> np.ndarray:
    agent, block = obs["agent_pos"], centre(obs["block_pose"])
    line = centre(GOAL) - block
    direction = line / max(float(np.linalg.norm(line)), 1e-6)
    behind = block - BEHIND * direction
    offset = agent - behind
    along = float(offset @ direction)
    sideways = offset - along * direction
    if np.linalg.norm(sideways) < 12 and along < 20:  # lined up behind the T: push it towards the target
        return (agent + STEP * direction - sideways).astype(np.float32)
    # Otherwise go round the T at a safe radius to the line-up point, the short way round.
    relative = agent - block
    at = np.arctan2(relative[1], relative[0])
    wanted = np.arctan2(-direction[1], -direction[0])
    turn = (wanted - at + np.pi) % (2 * np.pi) - np.pi
    if abs(turn) < 0.35:
        return behind.astype(np.float32)
    step = at + np.sign(turn) * min(abs(turn), 0.6)
    return (block + ORBIT * np.array([np.cos(step), np.sin(step)])).astype(np.float32)


def noisy_push(obs: dict[str, np.ndarray]) -> np.ndarray:
    return (push(obs) + _rng.normal(0.0, 5.0, 2)).astype(np.float32)
