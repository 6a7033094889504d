"""Any gymnasium env behind the Domain contract: the domain of an env id no registered domain owns.

The registry hands one out for any id `gymnasium.make` accepts (`siefm.domains.find_domain`), including
`module:EnvId`, which imports the user's package. Its presets follow the PointMass notebook, scaled to the
env's episode limit L: a goal vector, a Gaussian action head, one steps-to-go class per step over 0..L,
N = 32 updates and c = 1 / L (the notebook's 1/140 at L = 140, so returns keep their scale).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import gymnasium as gym

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
from siefm.domains.gymnasium_env.env import GymEnvConfig, describe, registered_limit_and_fps
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

    @property
    def presets(self) -> Presets:
        limit = self._registered[0]
        model = {
            "goal_encoder": "vector",
            "state_encoder": "flat",
            "steps_to_go_sees": "full",
            "action_head": "gaussian",
            "steps_to_go_bins": limit + 1,
            "steps_to_go_max": float(limit),
        }
        return Presets(model=model, improve={"num_updates": 32, "reward_scale": 1 / limit}, eval_episodes=100)

    def observation_spec(self, env: EnvConfig) -> ObservationSpec:
        config = GymEnvConfig(**env)
        made = gym.make(self.env_id, **config.kwargs)
        try:
            sample = made.observation_space.sample()
        finally:
            made.close()
        mapping = ObservationMap.recorded(config.features_map)
        return ObservationSpec(mapping.state(sample).shape[-1], mapping.goal(sample).shape[-1])

    def env_config(self, kwargs: dict[str, Any]) -> EnvConfig:
        return describe(self.env_id, kwargs, {}, None, None)[0].to_dict()

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
        mapping = ObservationMap.recorded(gym_config.features_map)
        return VectorFleet(
            self.env_id, gym_config, mapping, config.num_envs, config.seed, mode=config.vector_env
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
        mapping = ObservationMap.recorded(gym_config.features_map)
        episodes = config.num_episodes(self.env_id)
        limit = config.max_steps or gym_config.max_steps
        policy = model_policy(efm_policy(model, config.deterministic, config.seed), mapping)
        results = {"policy": run_episodes(self.env_id, gym_config, policy, episodes, config.seed, limit)}
        scripted = {"demonstrator": gym_config.policy, "optimal": config.reference}
        for key, reference in scripted.items():
            if reference is not None:
                controller = scripted_policy(reference)
                result = run_episodes(self.env_id, gym_config, controller, episodes, config.seed, limit)
                results[key] = {**result, "name": f"{key.replace('optimal', 'reference')} ({reference})"}
        if "optimal" not in results and "demonstrator" in results:  # the reference is the demonstrator
            results["optimal"] = {**results["demonstrator"], "name": f"demonstrator ({gym_config.policy})"}
        return results
