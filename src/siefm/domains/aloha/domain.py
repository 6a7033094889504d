"""Aloha behind the Domain contract: gym-aloha's bimanual scenes as a gymnasium env that the generic
gymnasium domain runs (its fleet, evaluation and dataset conventions), with Aloha's own demonstrators,
presets and demo.

Presets: the task in words is the goal (one task per dataset; the word encoder learns it); a token head
(64 bins per number, the paper's RT-2 style head with a quarter of its 256 bins, for CPU time) over the
70 joint targets of a 10 Hz chunk, each predicted as a change of the target last sent to its joint
(`--sft.model.actions from_state`: predicted absolute, a cloned policy's targets went up to 3 rad from its
joints within 16 steps of leaving the demonstrations). A Gaussian head cloned 2 of 20 transfers where the
tokens cloned 13 of the same 20: it closes the gripper over 17 steps where the demonstrator does in 3,
averaging when to close (docs/aloha.md). Z-scored inputs are clipped to +-5 and a Gaussian's scale is
capped at 1: numbers the demonstrations hardly vary went hundreds of stds off in practice and threw the
arms apart. One steps-to-go class per 10 Hz step over 0..150 (the time limit); the paper's Stage 2
constants N = 16, c = 0.05; it predicts one steps-to-go class per step over 0..300.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from siefm.config import EvalConfig, require
from siefm.domains import REGISTRY
from siefm.domains.aloha.env import CHUNK, COMMAND_FEATURES, JOINTS, TASK_TEXT, AlohaConfig, action_range
from siefm.domains.base import ActionBounds, EnvConfig, ObservationSpec, Presets
from siefm.domains.gymnasium_env.collect import GymCollectConfig, collect_gymnasium
from siefm.domains.gymnasium_env.domain import GymnasiumDomain
from siefm.domains.gymnasium_env.env import GymEnvConfig
from siefm.models.efm import EFMBase

ENV_ID = REGISTRY["aloha"].env_id
DEMONSTRATORS = {
    "transfer_cube": "siefm.domains.aloha.demonstrator:TransferCubeDemonstrator",
    "insertion": "siefm.domains.aloha.insertion:InsertionDemonstrator",
}
PRESETS = Presets(
    model={
        "goal_encoder": "words",
        "state_encoder": "flat",
        "steps_to_go_sees": "full",
        "action_head": "tokenized",
        "action_bins": 64,
        "steps_to_go_bins": AlohaConfig().max_steps + 1,
        "steps_to_go_max": float(AlohaConfig().max_steps),
        "actions": "from_state",
        "input_clip": 5.0,
        "max_scale": 1.0,
    },
    improve={"num_updates": 16, "reward_scale": 0.05},
    eval_episodes=200,
    pixel_goal_encoder="words",
)


@dataclass(frozen=True)
class AlohaCollectConfig:
    """Scripted Aloha demonstrations (`siefm collect --env aloha`)."""

    task: str = "transfer_cube"
    """'transfer_cube' or 'insertion'."""
    num_episodes: int = 500
    """Episodes to attempt; those that do not reach the simulator's success are not written."""
    seed: int = 0
    """Episode k is reset with seed + k (recorded per episode, so gym-aloha's env reset with it starts
    from the same object poses)."""
    observation: str = "state"
    """'state', or 'pixels' (adds the top camera's frames, `image_size` square)."""
    image_size: int = 96
    """The top camera's frame side, in pixels (observation 'pixels')."""
    max_steps: int | None = None
    """Episode limit in 10 Hz steps; None: the env's (150)."""
    pauses: int = 3
    """Sub-optimal on purpose: up to this many pauses of 2-6 steps per episode."""
    detours: int = 3
    """Up to this many random points the carrying arm passes through."""
    regrasp_probability: float = 0.3
    """The chance that an episode's first grasp is opened and made again."""
    drop_probability: float = 0.5
    """The chance that the cube is dropped on its way and picked up where it fell."""
    feint_probability: float = 0.0
    """Transfer-cube: the chance that the left gripper closes and opens again on its way, so that a closed
    left gripper does not by itself mean done to the reward model (docs/aloha.md)."""
    noise: float = 0.0
    """Radians of Gaussian noise on the arm joints' sent targets, one draw per 10 Hz step (the next step
    corrects it, so the data also shows recoveries from being off the plan)."""

    def __post_init__(self) -> None:
        require(self.task in DEMONSTRATORS, self, "task", f"one of {sorted(DEMONSTRATORS)}")
        require(self.num_episodes >= 1, self, "num_episodes", ">= 1")
        require(self.pauses >= 0 and self.detours >= 0, self, "pauses", ">= 0 (and detours too)")
        for name in ("regrasp_probability", "drop_probability", "feint_probability"):
            require(0 <= getattr(self, name) <= 1, self, name, "in [0, 1]")
        require(self.noise >= 0, self, "noise", ">= 0")
        AlohaConfig(self.task, self.observation, self.image_size)  # checks the env's options

    def generic(self) -> GymCollectConfig:
        """The same collection as the generic gymnasium domain's options."""
        suboptimal = {
            "pauses": self.pauses,
            "detours": self.detours,
            "regrasp_probability": self.regrasp_probability,
            "drop_probability": self.drop_probability,
            "noise": self.noise,
            "feint_probability": self.feint_probability,
        }
        return GymCollectConfig(
            policy=DEMONSTRATORS[self.task],
            policy_kwargs=json.dumps(suboptimal),
            env_kwargs=json.dumps(
                {"task": self.task, "observation": self.observation, "image_size": self.image_size}
            ),
            num_episodes=self.num_episodes,
            max_steps=self.max_steps,
            seed=self.seed,
            task=TASK_TEXT[self.task],
        )


class AlohaDomain(GymnasiumDomain):
    presets = PRESETS
    renders_frames = True  # with observation="pixels", datasets hold the top camera
    collect_config = AlohaCollectConfig
    collect_option = "aloha"
    demo_description = (
        "Run the whole recipe on Aloha transfer-cube from states with embedded defaults: scripted "
        "demonstrations -> Stage 1 -> Stage 2 -> eval; writes results.json and learning_curve.png."
    )

    def __init__(self) -> None:
        super().__init__(ENV_ID)
        self.name, self.robot_type = "aloha", "aloha"

    @property
    def demo_config(self) -> type:  # type: ignore[override]
        from siefm.domains.aloha.demo import AlohaDemoConfig

        return AlohaDemoConfig

    def env_config(self, kwargs: dict[str, Any], task: str | None = None) -> EnvConfig:
        """A dataset that records no env (one LeRobot wrote): the task's words are the goal."""
        return super().env_config(kwargs, task or TASK_TEXT[AlohaConfig(**kwargs).task])

    def observation_spec(self, env: EnvConfig) -> ObservationSpec:
        """The generic spec, with each joint target's last sent target (the state's last 14 numbers)."""
        spec = super().observation_spec(env)
        first = spec.state_dim - COMMAND_FEATURES
        return dataclasses.replace(
            spec, action_reference=tuple(first + j % JOINTS for j in range(CHUNK * JOINTS))
        )

    def action_bounds(self, env: EnvConfig) -> ActionBounds:
        """Each joint's control range and the grippers' reachable range, per 50 Hz target: MuJoCo clamps
        the position actuators' controls to them."""
        task = AlohaConfig(**GymEnvConfig(**env).kwargs).task
        low, high = action_range(task)
        return np.tile(low, CHUNK), np.tile(high, CHUNK)

    def collect(self, out: Path, config: AlohaCollectConfig, overwrite: bool = False) -> Path:
        return collect_gymnasium(self.env_id, out, config.generic(), overwrite, self.robot_type)

    def run_demo(self, out: Path, config: Any) -> dict[str, Any]:
        from siefm.domains.aloha.demo import run_demo

        return run_demo(out, config)

    def evaluate(
        self,
        model: EFMBase,
        metadata: dict[str, Any],
        env: EnvConfig,
        out: Path,
        config: EvalConfig,
        reward: Path | None,
    ) -> dict[str, Any]:
        """The generic evaluation, with the task's scripted demonstrator without detours as the reference
        (`optimal`) unless `--eval.reference` names another; then `config.videos` annotated videos of the
        policy's first episodes in `out/videos`, whose d(o, g) comes from the `reward` checkpoint (None: the
        policy's own steps-to-go head and the threshold in its `metadata`, as on the tabletop)."""
        from siefm.checkpoint import fit_to_env, load_checkpoint
        from siefm.domains.aloha.videos import write_videos
        from siefm.improve.reward import RewardModel

        gym_config = GymEnvConfig(**env)
        if config.reference is None:
            task = AlohaConfig(**gym_config.kwargs).task
            config = dataclasses.replace(config, reference=DEMONSTRATORS[task])
        results = super().evaluate(model, metadata, env, out, config, reward)
        if config.videos:
            if reward is not None:
                model_for_d, metadata = load_checkpoint(Path(reward))
                fit_to_env(Path(reward), model_for_d, {"id": self.env_id, "config": env})
            else:
                model_for_d = model
            reward_model = RewardModel(model_for_d, metadata.get("success_threshold", 0.0))
            filmed = min(config.videos, config.num_episodes(self.env_id))
            args = (config.seed, config.deterministic, config.max_steps)
            write_videos(model, gym_config, reward_model, out / "videos", filmed, *args)
            results["videos"] = str((out / "videos").resolve())
        return results


DOMAIN = AlohaDomain()
