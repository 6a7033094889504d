"""The tabletop behind the Domain contract (siefm.domains.base).

Its presets follow the paper's LanguageTable settings: instruction goals, tokenized actions, 50 steps-to-go
bins over 0..100, N = 16 updates, c = 0.05, block2block practice and the 5 families x 50 episodes evaluation.
The state lists the pusher and target (4 numbers), then x, y, cos yaw, sin yaw per block, whose names
("red moon") the object-selecting model matches to the instruction's words. Heavy modules (MuJoCo) load on
first use.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from siefm.config import EvalConfig, ImproveConfig
from siefm.domains import REGISTRY
from siefm.domains.base import ActionBounds, Domain, EnvConfig, ObservationSpec, Presets, refuse_options
from siefm.domains.tabletop.collect import FPS, ROBOT_TYPE, TabletopCollectConfig
from siefm.domains.tabletop.demo import TabletopDemoConfig

if TYPE_CHECKING:
    from siefm.data.dataset import EpisodeDataset
    from siefm.data.relabel import RelabelledGoals
    from siefm.domains.tabletop.fleet import TabletopFleet
    from siefm.domains.tabletop.frames import BoardFrames
    from siefm.models.efm import EFMBase

PRESETS = Presets(
    model={
        "goal_encoder": "words",
        "state_encoder": "objects",
        "steps_to_go_sees": "selected",
        "action_head": "tokenized",
        "steps_to_go_bins": 50,
        "steps_to_go_max": 100.0,
    },
    improve={"num_updates": 16, "reward_scale": 0.05},
    # d's error near the goal picks better reward models from sub-optimal demonstrations (docs/tabletop.md)
    sft={"reward_selection": "d_error_near_goal"},
    eval_episodes=50,
    pixel_goal_encoder="minilm",
)
PRACTICE_FAMILIES = ("block2block",)  # the paper's; the novel-object board practises its own instructions
HINDSIGHT_KINDS = ("block2block",)


class TabletopDomain(Domain):
    name = "tabletop"
    env_id = REGISTRY["tabletop"].env_id
    robot_type = ROBOT_TYPE
    fps = FPS
    presets = PRESETS
    collect_config = TabletopCollectConfig
    collect_option = "tabletop"
    demo_config = TabletopDemoConfig
    demo_description = (
        "Run the whole recipe on the tabletop from state observations (or camera frames, --obs pixels), "
        "about 9 minutes: detouring oracle demonstrations -> Stage 1 (all families, hindsight labels) -> "
        "Stage 2 (300 block2block practice episodes) -> 200 block2block episodes for Stage 1, Stage 2 and "
        "the oracle (--eval.families None: 5 families x 50); writes results.json, success_by_family.png, "
        "learning_curve.png and annotated videos."
    )
    hindsight_kinds = HINDSIGHT_KINDS
    renders_frames = True

    def observation_spec(self, env: EnvConfig) -> ObservationSpec:
        from siefm.domains.tabletop.scene import BLOCK_SETS

        blocks = BLOCK_SETS[env.get("block_set", "8")]
        names = tuple(f"{b.colour} {b.shape}" for b in blocks)
        return ObservationSpec(state_dim=4 + 4 * len(blocks), goal_dim=None, object_names=names)

    def env_config(self, kwargs: dict[str, Any], task: str | None = None) -> EnvConfig:
        from siefm.domains.tabletop.env import TabletopConfig

        return dataclasses.asdict(TabletopConfig(**kwargs))

    def episode_limit(self, env: EnvConfig) -> int:
        from siefm.domains.tabletop.env import TabletopConfig

        return TabletopConfig(**env).max_steps

    def action_bounds(self, env: EnvConfig) -> ActionBounds:
        from siefm.domains.tabletop.env import TabletopConfig

        bound = np.full(2, TabletopConfig(**env).max_action)  # TabletopEnv.step clips the push to it
        return -bound, bound

    def collect(self, out: Path, config: TabletopCollectConfig, overwrite: bool = False) -> Path:
        from siefm.domains.tabletop.collect import collect_tabletop

        return collect_tabletop(out, config, overwrite=overwrite)

    def run_demo(self, out: Path, config: TabletopDemoConfig) -> dict[str, Any]:
        from siefm.domains.tabletop.demo import run_tabletop_demo

        return run_tabletop_demo(out, config)

    def practice_env(self, env: EnvConfig, config: ImproveConfig) -> EnvConfig:
        from siefm.domains.tabletop.env import TabletopConfig
        from siefm.domains.tabletop.tasks import NOVEL_FAMILY

        refuse_options(self.env_id, "improve", config, "vector_env")
        families = config.families
        if families is None:
            families = (NOVEL_FAMILY,) if config.block_set == "banana" else PRACTICE_FAMILIES
        return dataclasses.asdict(TabletopConfig(**env).with_board(config.block_set, families))

    def make_fleet(self, env: EnvConfig, config: ImproveConfig, camera_size: int | None) -> TabletopFleet:
        from siefm.domains.tabletop.env import TabletopConfig
        from siefm.domains.tabletop.fleet import TabletopFleet

        board = TabletopConfig(**env).with_board(None, env.get("families"))
        return TabletopFleet(
            config.num_envs,
            board,
            config.seed,
            board.task_families,
            reset_free=config.practice_mode == "reset-free",
            reset_every=config.reset_every,
            camera_size=camera_size,
        )

    def eval_env(self, env: EnvConfig, config: EvalConfig) -> EnvConfig:
        from siefm.domains.tabletop.evaluate import tabletop_board

        refuse_options(self.env_id, "eval", config, "reference")  # it has its own: the scripted oracle

        return dataclasses.asdict(tabletop_board({"id": self.env_id, "config": env}, config))

    def evaluate(
        self,
        model: EFMBase,
        metadata: dict[str, Any],
        env: EnvConfig,
        out: Path,
        config: EvalConfig,
        reward: Path | None,
    ) -> dict[str, Any]:
        from siefm.domains.tabletop.evaluate import evaluate_against_oracle

        return evaluate_against_oracle(
            model, metadata, {"id": self.env_id, "config": env}, out, config, reward
        )

    def frame_source(self, env: EnvConfig, size: int) -> BoardFrames:
        from siefm.domains.tabletop.frames import BoardFrames

        return BoardFrames(env, size)

    def relabel(self, dataset: EpisodeDataset, env: EnvConfig, kind: str) -> RelabelledGoals:
        from siefm.domains.tabletop.hindsight import block2block_hindsight

        if kind not in HINDSIGHT_KINDS:
            raise ValueError(f"--sft.hindsight {kind}: the tabletop offers {', '.join(HINDSIGHT_KINDS)}.")
        return block2block_hindsight(dataset, env.get("block_set", "8"))

    def stage1_checks(self, policy: EFMBase, env: EnvConfig) -> dict[str, float] | None:
        from siefm.domains.tabletop.env import TabletopConfig
        from siefm.domains.tabletop.grounding import instruction_grounding

        return instruction_grounding(policy, TabletopConfig(block_set=env.get("block_set", "8")))


DOMAIN = TabletopDomain()
