"""Any gymnasium env behind the Domain contract: the domain of an env id no registered domain owns.

The registry hands one out for any id `gymnasium.make` accepts (`siefm.domains.find_domain`), including
`module:EnvId`, which imports the user's package. Its presets follow the PointMass notebook, scaled to the
env's episode limit L: a goal vector, a Gaussian action head, one steps-to-go class per step over 0..L,
N = 32 updates and c = 1 / L (the notebook's 1/140 at L = 140, so returns keep their scale). An env whose
observations hold no goal conditions on its task string, read by learned word embeddings. An env with a
camera (a `pixels` observation) can train pixel models on the recorded frames; their instructions are
read by word embeddings too (one fixed task needs no pretrained text encoder).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from siefm.config import EvalConfig, ImproveConfig
from siefm.domains.base import (
    BOARD_OPTIONS,
    Domain,
    EnvConfig,
    ObservationSpec,
    Presets,
    refuse_options,
)
from siefm.domains.gymnasium_env.collect import GymCollectConfig, collect_gymnasium
from siefm.domains.gymnasium_env.env import (
    GymEnvConfig,
    describe,
    observation_map,
    registered_limit_and_fps,
)
from siefm.domains.gymnasium_env.evaluate import model_policy, run_episodes, scripted_policy
from siefm.domains.gymnasium_env.fleet import VectorFleet
from siefm.domains.gymnasium_env.observations import ObservationMap
from siefm.eval.policy import efm_policy
from siefm.models.efm import EFMBase


class GymnasiumDomain(Domain):
    """The domain of the gymnasium env `env_id`."""

    collect_config = GymCollectConfig
    collect_option = "gym"
    demo_config = None
    demo_description = "Any gymnasium env has no embedded demo: run collect, sft, improve and eval."

    def __init__(self, env_id: str):
        self.name = self.env_id = self.robot_type = env_id

    @cached_property
    def _registered(self) -> tuple[int, int]:
        """The registered env's time limit and control frequency, which the presets follow."""
        return registered_limit_and_fps(self.env_id)

    @property
    def fps(self) -> int:
        return self._registered[1]

    @cached_property
    def _conventions(self) -> ObservationMap | None:
        """The observation map of the env made without keyword arguments (None where it cannot be made
        so); it decides the goal encoder and whether there is a camera."""
        try:
            made = gym.make(self.env_id)
        except Exception:  # some envs need keyword arguments; then the presets assume a goal vector
            return None
        try:
            return ObservationMap.for_space(made.observation_space)
        except ValueError:
            return None
        finally:
            made.close()

    @property
    def renders_frames(self) -> bool:  # type: ignore[override]
        """Whether the env has a camera, whose recorded frames pixel models train on."""
        return bool(self._conventions and self._conventions.cameras)

    @property
    def presets(self) -> Presets:
        limit = self._registered[0]
        vector_goal = self._conventions is None or self._conventions.goal_key is not None
        model = {
            "goal_encoder": "vector" if vector_goal else "words",
            "state_encoder": "flat",
            "steps_to_go_sees": "full",
            "action_head": "gaussian",
            "steps_to_go_bins": limit + 1,
            "steps_to_go_max": float(limit),
        }
        improve = {"num_updates": 32, "reward_scale": 1 / limit}
        return Presets(model=model, improve=improve, eval_episodes=100, pixel_goal_encoder="words")

    def observation_spec(self, env: EnvConfig) -> ObservationSpec:
        config = GymEnvConfig(**env)
        made = gym.make(self.env_id, **config.kwargs)
        try:
            sample = made.observation_space.sample()
            action_dim = int(np.prod(made.action_space.shape or (1,)))
        finally:
            made.close()
        mapping = observation_map(config)
        goal_dim = mapping.goal(sample).shape[-1] if mapping.goal_key else None
        return ObservationSpec(mapping.state(sample).shape[-1], goal_dim, action_dim=action_dim)

    def env_config(self, kwargs: dict[str, Any], task: str | None = None) -> EnvConfig:
        return describe(self.env_id, kwargs, {}, None, None, task)[0].to_dict()

    def episode_limit(self, env: EnvConfig) -> int:
        return GymEnvConfig(**env).max_steps

    def collect(self, out: Path, config: GymCollectConfig, overwrite: bool = False) -> Path:
        return collect_gymnasium(self.env_id, out, config, overwrite=overwrite)

    def run_demo(self, out: Path, config: Any) -> dict[str, Any]:
        raise ValueError(f"{self.env_id} has no embedded demo: run collect, sft, improve and eval.")

    def practice_env(self, env: EnvConfig, config: ImproveConfig) -> EnvConfig:
        refuse_options(self.env_id, "improve", config, *BOARD_OPTIONS["improve"])
        return env

    def make_fleet(self, env: EnvConfig, config: ImproveConfig, camera_size: int | None) -> VectorFleet:
        gym_config = GymEnvConfig(**env)
        return VectorFleet(
            self.env_id,
            gym_config,
            observation_map(gym_config),
            config.num_envs,
            config.seed,
            mode=config.vector_env,
            camera_size=camera_size,
        )

    def eval_env(self, env: EnvConfig, config: EvalConfig) -> EnvConfig:
        refuse_options(self.env_id, "eval", config, *BOARD_OPTIONS["eval"])
        return env

    def evaluate(
        self,
        model: EFMBase,
        metadata: dict[str, Any],
        env: EnvConfig,
        out: Path,
        config: EvalConfig,
        reward: Path | None,
    ) -> dict[str, Any]:
        """The policy, the demonstrator that recorded the data (where it imports) and the reference,
        `config.reference` (a scripted controller) or else the demonstrator, on the same seeded episodes."""
        gym_config = GymEnvConfig(**env)
        mapping = observation_map(gym_config)
        episodes = config.num_episodes(self.env_id)
        limit = config.max_steps or gym_config.max_steps
        size = model.config.image_size if model.reads_frames else None
        policy = model_policy(efm_policy(model, config.deterministic, config.seed), mapping, size)
        results = {"policy": run_episodes(self.env_id, gym_config, policy, episodes, config.seed, limit)}
        scripted = {
            "demonstrator": (gym_config.policy, gym_config.policy_kwargs),
            "optimal": (config.reference, {}),
        }
        seeds = [config.seed + k for k in range(episodes)]
        for key, (reference, kwargs) in scripted.items():
            if reference is not None:
                controller = scripted_policy(reference, kwargs, seeds)
                result = run_episodes(self.env_id, gym_config, controller, episodes, config.seed, limit)
                results[key] = {**result, "name": f"{key.replace('optimal', 'reference')} ({reference})"}
        if "optimal" not in results and "demonstrator" in results:  # the reference is the demonstrator
            results["optimal"] = {**results["demonstrator"], "name": f"demonstrator ({gym_config.policy})"}
        return results
