"""The practice fleet of any gymnasium env: N copies in gymnasium's vector env, reset robot by robot.

The vector env runs with autoreset disabled and without the env's own time limit, because Stage 2, not
the simulator, decides when an episode is over (the learned detector, or Stage 2's episode cap, which is
the env's limit by default); `reset(env_ids)` starts new episodes on just those robots. 'async' steps each
robot in its own worker process (for simulators that are slow next to the policy), 'sync' steps them all
in this one. Every robot is stepped every step, since a vector env cannot step a subset; a robot whose env
terminated is reset before it is stepped again (an idle robot, whose steps are not recorded, or one
whose env ended an episode Stage 2 had not: a choice, documented in docs/bring_your_own_env.md).
A robot whose simulator raised on a step reports it in the observations' "fault" (N,), and Stage 2 ends
its episode as a failure (`EndOnFault`). Pixel models get each robot's previous and current frame of the
recorded camera, resized as the dataset's frames were (`siefm.data.cameras.resize_frames`); the previous
frame of an episode's first is itself.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from siefm.data.cameras import resize_frames
from siefm.domains.gymnasium_env.env import GymEnvConfig, true_success
from siefm.domains.gymnasium_env.observations import ObservationMap
from siefm.improve.fleet import Observations

log = logging.getLogger("siefm")


class VectorFleet:
    """`num_envs` copies of a gymnasium env; implements `siefm.improve.fleet.Fleet`."""

    def __init__(
        self,
        env_id: str,
        config: GymEnvConfig,
        mapping: ObservationMap,
        num_envs: int,
        seed: int,
        mode: str = "async",
        camera_size: int | None = None,
    ):
        self.envs = make_vector_env(env_id, config, num_envs, mode)
        self.mapping, self.num_envs, self.camera_size = mapping, num_envs, camera_size
        self.rng = np.random.default_rng(seed)
        self._obs: Observations | None = None
        self._pixels: np.ndarray | None = None  # (N, 2, H, W, 3) previous and current frames, pixel models
        self._over = np.zeros(num_envs, dtype=bool)  # the env ended its episode and was not reset since

    def reset(self, env_ids: np.ndarray | None = None) -> Observations:
        """Starts new episodes on `env_ids` (all by default), each seeded from the fleet's generator;
        returns every robot's observation."""
        every = np.arange(self.num_envs)
        mask = np.ones(self.num_envs, dtype=bool) if env_ids is None else np.isin(every, env_ids)
        seeds = self.rng.integers(2**31, size=self.num_envs)
        if mask.any():
            obs, _ = self.envs.reset(
                seed=[int(s) if m else None for s, m in zip(seeds, mask, strict=True)],
                options={"reset_mask": mask},
            )
            self._observe(obs, mask, mask)
            self._over &= ~mask
        assert self._obs is not None, "reset() every robot first"
        return self._obs

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> tuple[Observations, np.ndarray]:
        """Applies actions (N, A); returns observations and the simulator's true success (N,)."""
        if self._over.any():  # gymnasium steps no env that ended: start it anew first
            self.reset(np.flatnonzero(self._over))
        dtype = self.envs.single_action_space.dtype
        obs, _, terminated, truncated, info = self.envs.step(np.asarray(actions, dtype=dtype))
        self._observe(obs, np.ones(self.num_envs, dtype=bool), np.zeros(self.num_envs, dtype=bool))
        self._over = np.asarray(terminated | truncated, dtype=bool)
        self._obs["fault"] = np.asarray(info.get("_fault", np.zeros(self.num_envs)), dtype=bool)
        return self._obs, true_success(info, terminated)

    def _observe(self, obs: Any, changed: np.ndarray, new_episode: np.ndarray) -> None:
        """Keeps the observations Stage 2 reads. Robots in `changed` moved or were reset; those in
        `new_episode` were reset, so their frame has no previous frame but itself."""
        self._obs = self.mapping.split(obs)
        self._obs["fault"] = np.zeros(self.num_envs, dtype=bool)  # set by `step` where an env raised
        if self.camera_size is None:
            return
        frame = resize_frames(self.mapping.camera(obs), self.camera_size)
        pixels = np.stack([frame, frame], axis=1) if self._pixels is None else self._pixels
        mask = new_episode[:, None, None, None]
        moved = np.stack([np.where(mask, frame, pixels[:, 1]), frame], axis=1)
        self._pixels = np.where(changed[:, None, None, None, None], moved, pixels)
        self._obs["pixels"] = self._pixels

    def close(self) -> None:
        self.envs.close()

    def metrics(self) -> dict[str, float]:
        return {}

    def rng_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


NO_TIME_LIMIT = 2**31 - 1  # Stage 2 caps episodes itself


class EndOnFault(gym.Wrapper):
    """Ends the episode of an env whose step raises, instead of the run: dm_control's `PhysicsError` when
    commands make the simulation unstable, or any error of a user's simulator. The step returns the last
    observation, terminated, without success, with `info["fault"]` naming the error; the next reset starts
    afresh. Stage 2 and evaluation count the episode as a failure and go on; each kind of error is logged
    once per process, so a bug that fails every step is seen at once."""

    seen: ClassVar[set[str]] = set()

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        self._last, info = self.env.reset(**kwargs)
        return self._last, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        try:
            obs, reward, terminated, truncated, info = self.env.step(action)
        except Exception as error:
            fault = f"{type(error).__name__}: {error}"
            if type(error).__name__ not in self.seen:
                self.seen.add(type(error).__name__)
                log.warning("an env's step raised %s; its episode ends as a failure", fault)
            return self._last, 0.0, True, False, {"is_success": False, "fault": fault}
        self._last = obs
        return obs, reward, terminated, truncated, info


def make_vector_env(env_id: str, config: GymEnvConfig, num_envs: int, mode: str) -> gym.vector.VectorEnv:
    """`num_envs` copies of the env, without autoreset and without the env's time limit, each ending an
    episode whose step raises (`EndOnFault`)."""

    def make() -> gym.Env:
        return EndOnFault(gym.make(env_id, max_episode_steps=NO_TIME_LIMIT, **config.kwargs))

    vector = gym.vector.AsyncVectorEnv if mode == "async" else gym.vector.SyncVectorEnv
    return vector([make] * num_envs, autoreset_mode=gym.vector.AutoresetMode.DISABLED)
