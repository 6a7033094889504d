"""Scripted controllers for gymnasium-robotics' FetchReach, as a user brings them to siefm.

`detour` is the demonstrator: a deliberately sub-optimal controller that heads 60 degrees off the goal's
direction (in the table's plane) at a third of the arm's top speed, so it spirals in; `noisy_detour` adds
Gaussian noise to its actions, so that Stage 1's policy keeps some spread to explore with in Stage 2.
`straight` is the reference: full speed straight at the goal. Both read the observation FetchReach gives:
`observation` (the gripper's position first) and `desired_goal`.
"""

from __future__ import annotations

import numpy as np

GAIN = 10.0  # FetchReach moves the gripper by 0.05 m per unit action: reach a 5 cm error in one step
ANGLE = np.deg2rad(60)
NEAR = 0.03  # within 3 cm of the goal, stop detouring (success is within 5 cm)
NOISE = 0.1  # action units; the detour moves at up to 1/3
_rng = np.random.default_rng(0)


def straight(obs: dict[str, np.ndarray]) -> np.ndarray:
    offset = obs["desired_goal"] - obs["observation"][:3]
    return np.append(np.clip(GAIN * offset, -1.0, 1.0), 0.0).astype(np.float32)


def detour(obs: dict[str, np.ndarray]) -> np.ndarray:
    offset = obs["desired_goal"] - obs["observation"][:3]
    distance = float(np.linalg.norm(offset))
    if distance < NEAR:
        return straight(obs)
    c, s = np.cos(ANGLE), np.sin(ANGLE)
    turned = np.array([c * offset[0] - s * offset[1], s * offset[0] + c * offset[1], offset[2]])
    action = np.clip(GAIN * turned / 3, -1 / 3, 1 / 3)
    return np.append(action, 0.0).astype(np.float32)


def noisy_detour(obs: dict[str, np.ndarray]) -> np.ndarray:
    action = detour(obs)
    action[:3] = np.clip(action[:3] + _rng.normal(0.0, NOISE, 3), -1.0, 1.0)
    return action
