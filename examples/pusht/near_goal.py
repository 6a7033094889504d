"""PushT (gym-pusht, LeRobot's sim env) made easier for a scripted demonstrator, as a user would wrap it.

`NearGoalPushT-v0` starts the T a short push from its target (its position within OFFSET pixels of the
target's along each axis, its angle within TURN of the target's), counts success at COVERAGE of the target
covered (gym-pusht's 95% needs a precise final turn no simple script makes), and adds the T's pose to the
observation as `block_pose` for the scripted demonstrator. The policies siefm trains read only the
conventions' keys: the camera (`pixels`) and the agent's position (`agent_pos`).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gym_pusht.envs import PushTEnv

OFFSET = 60.0  # pixels (the table is 512 wide)
TURN = 0.2  # radians
COVERAGE = 0.8
GOAL = np.array([256.0, 256.0, np.pi / 4])  # gym-pusht's fixed target pose


class NearGoalPushT(PushTEnv):
    def __init__(self, **kwargs):
        super().__init__(obs_type="pixels_agent_pos", **kwargs)
        self.observation_space = gym.spaces.Dict(
            {
                **self.observation_space.spaces,
                "block_pose": gym.spaces.Box(-np.inf, np.inf, (3,), np.float64),
            }
        )

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)  # seeds the generator
        rng = self.np_random
        block = GOAL + np.array([*rng.uniform(-OFFSET, OFFSET, 2), rng.uniform(-TURN, TURN)])
        # the agent starts on a random side, clear of the T
        angle = rng.uniform(-np.pi, np.pi)
        agent = block[:2] + 110.0 * np.array([np.cos(angle), np.sin(angle)])
        state = np.concatenate([np.clip(agent, 20, 492), block])
        obs, info = super().reset(seed=None, options={"reset_to_state": state})
        return self._with_pose(obs), info

    def step(self, action):
        obs, reward, _, truncated, info = super().step(action)
        info["is_success"] = bool(info["coverage"] >= COVERAGE)
        return self._with_pose(obs), reward, info["is_success"], truncated, info

    def _with_pose(self, obs):
        return {**obs, "block_pose": np.array([*self.block.position, self.block.angle])}


gym.register("NearGoalPushT-v0", entry_point=NearGoalPushT, max_episode_steps=100)
