"""The Domain contract: everything that knows which world siefm is in.

Stage 1, Stage 2, evaluation and the CLI are generic; they reach a domain only through this contract, which
the registry (`siefm.domains`) hands out by name or by the env id a dataset or checkpoint records. A domain
owns its env (gymnasium API, a seeded reset, true success in `info["is_success"]` for evaluation only), its
batched practice fleet, its demonstrator, its observation spec and frame source, its presets for the model
and the stages, its evaluation protocol and report rows, and the robot type and fps of its datasets.

An env is described everywhere (dataset `meta/info.json`, checkpoints, `results.json`) as
`{"id": ENV_ID, "config": {...}}`: the domain's env id and the JSON form of its env config. Every method
below that takes `env` takes that dict's "config" part.

Adding a domain: docs/adding_a_domain.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from siefm.config import EvalConfig, ImproveConfig
    from siefm.data.dataset import EpisodeDataset
    from siefm.data.relabel import RelabelledGoals
    from siefm.improve.fleet import Fleet
    from siefm.models.efm import EFMBase

EnvConfig = dict[str, Any]  # the JSON form of a domain's env config
ActionBounds = tuple[np.ndarray, np.ndarray]  # (low, high) in env units


@dataclass(frozen=True)
class ObservationSpec:
    """What a domain's observations hold, as a model needs to know it before seeing any data."""

    state_dim: int
    """Numbers in the `state` observation."""
    goal_dim: int | None
    """Size of the goal vector; None: goals are instruction strings."""
    object_names: tuple[str, ...] = ()
    """Names of the objects whose rows the state lists after `object_prefix_dim` numbers, as instructions
    word them (empty: no object rows); object-selecting models match instruction words to them."""
    action_dim: int | None = None
    """Numbers in an action, where the domain checks a dataset's actions against it."""
    action_reference: tuple[int, ...] = ()
    """For each action number, the state number it commands (a joint target's observed joint), -1 for
    none; empty: actions command no state number. Models with `actions = 'from_state'` predict each action
    number as a change of its state number."""


@dataclass(frozen=True)
class Presets:
    """A domain's defaults for the settings the paper leaves to the domain. Each is used where the user left
    the field unset (None); resolved configs record the values used."""

    model: dict[str, Any]
    """ModelConfig fields (goal encoder, action head, steps-to-go bins, ...)."""
    improve: dict[str, Any]
    """ImproveConfig fields (N updates, reward scale c, practised families)."""
    sft: dict[str, Any] = field(default_factory=dict)
    """SFTConfig fields (e.g. which validation figure picks the reward model)."""
    eval_episodes: int = 500
    """Evaluation episodes per policy (per task family where the domain has families)."""
    pixel_goal_encoder: str = "minilm"
    """The instruction encoder pixel models take by default."""


class FrameSource(Protocol):
    """Renders a domain's states as a pixel policy's camera sees them."""

    def render(self, states: np.ndarray) -> np.ndarray:
        """(N, S) states -> (N, size, size, 3) uint8 frames."""
        ...

    def close(self) -> None: ...


class Domain(Protocol):
    """One world siefm can practise in. See the module docstring; docs/adding_a_domain.md walks through it
    with PointMass. A domain subclasses this Protocol to take the defaults of the optional capabilities
    (a camera, hindsight relabelling, Stage 1 checks): none."""

    name: str
    """The registry name and the CLI's choice (`siefm collect --env NAME`, `siefm demo NAME`)."""
    env_id: str
    """The gymnasium id the env is registered under; datasets and checkpoints record it."""
    robot_type: str
    """`robot_type` in the datasets' `meta/info.json` (LeRobot's field)."""
    fps: int
    """Control frequency, the datasets' `fps`."""
    presets: Presets
    collect_config: type
    """The frozen dataclass of `siefm collect --env NAME`'s options."""
    collect_option: str
    """The option group those options take on the command line (`--collect.*`, `--tabletop.*`)."""
    demo_config: type
    """The frozen dataclass of `siefm demo NAME`'s options."""
    demo_description: str
    """One line for `siefm demo NAME --help`."""
    hindsight_kinds: tuple[str, ...] = ()
    """The hindsight relabellings `relabel` offers (`--sft.hindsight KIND`); empty: none."""
    renders_frames: bool = False
    """Whether the domain renders camera frames of its states (`frame_source`), so pixel models can train
    on its datasets and practise in its fleet."""

    def observation_spec(self, env: EnvConfig) -> ObservationSpec: ...

    def env_config(self, kwargs: dict[str, Any], task: str | None = None) -> EnvConfig:
        """The env config made with `kwargs` (`--env-kwargs`), for a dataset that records none, such as
        one LeRobot wrote (`siefm sft --env NAME_OR_ID`); `task` is the dataset's one task string, where it
        has one (the goal of an env whose observations hold none)."""
        ...

    def episode_limit(self, env: EnvConfig) -> int:
        """The env's own time limit in steps (Stage 2's and evaluation's default episode cap)."""
        ...

    def action_bounds(self, env: EnvConfig) -> ActionBounds | None:
        """The (low, high) env-unit bounds the simulator clips actions to, None if it does not clip. Stage 2
        then acts with, stores and scores the clipped action (siefm.improve.rollout)."""
        return None

    def collect(self, out: Path, config: Any, overwrite: bool = False) -> Path:
        """Runs the demonstrator and writes a dataset (siefm.data.dataset layout) to `out`."""
        ...

    def run_demo(self, out: Path, config: Any) -> dict[str, Any]:
        """The whole recipe on default settings; returns (and writes) `out/results.json`."""
        ...

    def practice_env(self, env: EnvConfig, config: ImproveConfig) -> EnvConfig:
        """The env Stage 2 practises in: the checkpoint's, changed where `config`'s domain options say so
        (validated here, before a run starts; options the domain does not have raise ValueError)."""
        ...

    def make_fleet(self, env: EnvConfig, config: ImproveConfig, camera_size: int | None) -> Fleet:
        """`config.num_envs` robots in this process, seeded from `config.seed`; `camera_size` adds each
        robot's previous and current camera frame for pixel models (None: states only)."""
        ...

    def eval_env(self, env: EnvConfig, config: EvalConfig) -> EnvConfig:
        """The env evaluated in: the checkpoint's, changed where `config`'s domain options say so."""
        ...

    def evaluate(
        self,
        model: EFMBase,
        metadata: dict[str, Any],
        env: EnvConfig,
        out: Path,
        config: EvalConfig,
        reward: Path | None,
    ) -> dict[str, Any]:
        """`siefm eval`'s figures: the policy and the domain's reference controller on the same seeded
        episodes (results.json entries `policy`, `optimal`, ...), with the domain's plots or videos in `out`.
        `metadata` is the policy checkpoint's; `reward` a reward checkpoint for videos that show d(o, g)."""
        ...

    def frame_source(self, env: EnvConfig, size: int) -> FrameSource:
        """Renders states of `env` at `size` x `size` (domains that `renders_frames`)."""
        raise ValueError(
            f"{self.env_id} renders no camera frames: train a state model (--sft.model.observation state)."
        )

    def relabel(self, dataset: EpisodeDataset, env: EnvConfig, kind: str) -> RelabelledGoals:
        """Hindsight goals reached in `dataset`'s episodes, for a `kind` among `hindsight_kinds`."""
        raise ValueError(f"{self.env_id} offers no hindsight relabelling.")

    def stage1_checks(self, policy: EFMBase, env: EnvConfig) -> dict[str, float] | None:
        """Domain diagnostics of a finished Stage 1 policy, logged and kept in `sft_summary.json`
        (None: none)."""
        return None


# ImproveConfig and EvalConfig fields only the tabletop has, which other domains refuse.
BOARD_OPTIONS = {
    "improve": ("block_set", "families", "practice_mode", "reset_every"),
    "eval": ("block_set", "families"),
}


def refuse_options(env_id: str, stage: str, config: Any, *names: str) -> None:
    """Raises ValueError for the fields `names` of `config` (a config dataclass) that differ from their
    defaults, where the domain of `env_id` has no such option; they are named as on the command line."""
    defaults = type(config)()
    given = [name for name in names if getattr(config, name) != getattr(defaults, name)]
    if given:
        flags = " and ".join(f"--{stage}.{name.replace('_', '-')}" for name in given)
        raise ValueError(f"{flags} do not apply to {env_id}: leave them out.")
