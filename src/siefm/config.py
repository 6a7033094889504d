"""Typed, frozen configs for every stage. Field docstrings become the CLI's --help text (tyro).

Defaults reproduce the PointMass notebook (PAPER.md §7) where it is specific; the open choices (PAPER.md §8)
are marked "choice" and explained. Every config validates itself in `__post_init__`; the error names the field
and the fix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from siefm.envs.pointmass import PointMassConfig


def _require(condition: bool, config: object, name: str, rule: str) -> None:
    if not condition:
        value = getattr(config, name)
        raise ValueError(f"{type(config).__name__}.{name} = {value!r} is invalid: it must be {rule}.")


@dataclass(frozen=True)
class ModelConfig:
    """The EFM for vector observations: two MLP towers (action, steps-to-go) on the z-scored inputs."""

    hidden_dim: int = 256
    """Width of each tower's hidden layers."""
    num_layers: int = 3
    """Hidden layers per tower (the notebook: 3 x 256, ReLU)."""
    action_head: Literal["gaussian", "tokenized"] = "gaussian"
    """'gaussian': diagonal Gaussian (the notebook's); 'tokenized': one categorical token per action dimension
    over uniform bins (the paper's RT-2 style)."""
    action_bins: int = 21
    """Tokens per action dimension for the tokenized head; the tokens span the data's min..max per
    dimension (choice: 21)."""
    min_scale: float = 0.01
    """Gaussian head: scale = softplus(x) + min_scale, in z-scored action units (the notebook's)."""
    steps_to_go_bins: int = 141
    """Categorical classes of the steps-to-go head (choice: one per step 0..140, see docs/method.md; the
    notebook's nominal 50 bins over 0..140 lump the last 3 steps into one class, which blinds the success
    detector to the final approach)."""
    steps_to_go_max: float = 140.0
    """Steps covered by the steps-to-go bins, 0..max; longer labels fall in the last bin."""

    def __post_init__(self) -> None:
        for name in ("hidden_dim", "num_layers"):
            _require(getattr(self, name) >= 1, self, name, ">= 1")
        for name in ("action_bins", "steps_to_go_bins"):
            _require(getattr(self, name) >= 2, self, name, ">= 2")
        _require(
            self.action_head in ("gaussian", "tokenized"), self, "action_head", "'gaussian' or 'tokenized'"
        )
        _require(self.min_scale > 0, self, "min_scale", "> 0")
        _require(self.steps_to_go_max > 0, self, "steps_to_go_max", "> 0")


@dataclass(frozen=True)
class CollectConfig:
    """Demonstrations from the scripted waypoint demonstrator."""

    num_episodes: int = 10_000
    """Episodes to simulate; failed ones and ones shorter than `min_steps` are not written."""
    num_waypoints: int = 5
    """Random waypoints the demonstrator visits before the goal."""
    min_steps: int = 10
    """Shorter demonstrations are dropped (the notebook's rule)."""
    max_steps: int = 400
    """Demonstrations still running after this many steps are dropped."""
    seed: int = 0
    """Seeds starts, goals and waypoints."""
    env: PointMassConfig = field(default_factory=PointMassConfig)

    def __post_init__(self) -> None:
        for name in ("num_episodes", "min_steps", "max_steps"):
            _require(getattr(self, name) >= 1, self, name, ">= 1")
        _require(self.num_waypoints >= 0, self, "num_waypoints", ">= 0")


@dataclass(frozen=True)
class SFTConfig:
    """Stage 1: behavioral cloning + steps-to-go on demonstrations."""

    model: ModelConfig = field(default_factory=ModelConfig)
    steps: int = 32_768
    """Optimizer steps (the notebook: 32,768)."""
    batch_size: int = 256
    """Frames per batch; both losses are computed on the whole batch with equal weight."""
    lr: float = 3e-4
    """Adam learning rate (the notebook's)."""
    weight_decay: float = 0.0
    """AdamW weight decay (choice: 0, as Adam in the notebook)."""
    data_fraction: float = 1.0
    """Train on this fraction of the dataset's episodes (a deterministic, nested subset: 0.1, 0.2, ...)."""
    val_fraction: float = 0.1
    """Episodes held out for validation, checkpoint selection and success-threshold calibration."""
    eval_every: int = 1024
    """Validation period in optimizer steps; the best policy and reward checkpoints are kept separately."""
    success_threshold: float | None = None
    """Success detector threshold s (steps). None: calibrate on the validation episodes."""
    seed: int = 0
    """Seeds the split, initialisation and batches."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every"):
            _require(getattr(self, name) >= 1, self, name, ">= 1")
        _require(self.lr > 0, self, "lr", "> 0")
        _require(self.weight_decay >= 0, self, "weight_decay", ">= 0")
        _require(0 < self.data_fraction <= 1, self, "data_fraction", "in (0, 1]")
        _require(0 < self.val_fraction < 1, self, "val_fraction", "in (0, 1)")
        _require(
            self.success_threshold is None or self.success_threshold >= 0, self, "success_threshold", ">= 0"
        )


@dataclass(frozen=True)
class ImproveConfig:
    """Stage 2: on-policy REINFORCE with rewards and success detection from the frozen Stage 1 model."""

    num_iterations: int = 64
    """Iterations of collect -> N updates -> discard (the notebook: 2,048 updates = 64 x 32)."""
    num_updates: int = 32
    """N: minibatch updates per iteration (the paper: 16; the notebook: 32)."""
    minibatch_size: int = 64
    """B: samples per minibatch, drawn without replacement from the iteration's buffer of >= N x B samples."""
    gamma: float = 0.9
    """Discount of the Monte-Carlo returns (the paper's)."""
    reward_scale: float = 1 / 140
    """c in the loss -c * R * log pi (the notebook: 1/140; the paper: 0.05 for its step scale)."""
    lr: float = 5e-5
    """AdamW learning rate of the policy (choice: at the Stage 1 rate, 3e-4, the Gaussian's scale collapses
    and the loss diverges within ~5 iterations on PointMass, and 1e-4 with 16 envs diverged once; see
    docs/pointmass.md)."""
    weight_decay: float = 0.0
    """AdamW weight decay (choice)."""
    num_envs: int = 16
    """Parallel envs in the fleet (choice: few enough that finishing the episodes under way overshoots
    N x B by little, so an iteration costs about the notebook's 2,048 env steps)."""
    max_episode_steps: int | None = None
    """Time limit of a practice episode; None: the env's own limit (PointMass: 140 steps, the notebook's)."""
    end_on_true_success: bool = False
    """End practice episodes on the simulator's success, as the notebook does, instead of the learned
    detector d <= s (the paper's method; default)."""
    success_threshold: float | None = None
    """Override s; None uses the value calibrated in Stage 1 and stored in the reward checkpoint."""
    save_practice: bool = True
    """Write each iteration's practice episodes (with d, detector verdict, reward, return and policy version)
    to RUN/practice/iteration-KKKK in the dataset format."""
    seed: int = 0
    """Seeds the fleet and action sampling."""

    def __post_init__(self) -> None:
        for name in ("num_iterations", "num_updates", "minibatch_size", "num_envs"):
            _require(getattr(self, name) >= 1, self, name, ">= 1")
        _require(
            self.max_episode_steps is None or self.max_episode_steps >= 1, self, "max_episode_steps", ">= 1"
        )
        _require(0 <= self.gamma <= 1, self, "gamma", "in [0, 1]")
        _require(self.reward_scale > 0, self, "reward_scale", "> 0")
        _require(self.lr > 0, self, "lr", "> 0")
        _require(self.weight_decay >= 0, self, "weight_decay", ">= 0")
        _require(
            self.success_threshold is None or self.success_threshold >= 0, self, "success_threshold", ">= 0"
        )

    @property
    def samples_per_iteration(self) -> int:
        """N x B: the buffer is filled with whole episodes until it holds at least this many samples."""
        return self.num_updates * self.minibatch_size


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation on the simulator's true success."""

    episodes: int = 500
    """Evaluation episodes per policy."""
    seed: int = 12_345
    """Seeds the starts and goals (the same for every policy compared)."""
    deterministic: bool = False
    """Act with the distribution's mode instead of sampling (choice: sample, the policy as trained)."""
    max_steps: int | None = None
    """Time limit per episode; None: the env's own limit (PointMass: 140 steps)."""

    def __post_init__(self) -> None:
        _require(self.episodes >= 1, self, "episodes", ">= 1")
        _require(self.max_steps is None or self.max_steps >= 1, self, "max_steps", ">= 1")


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass."""
    return dataclasses.asdict(config)


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuilds a (nested) config dataclass from `to_dict` output, validating it on the way."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        kwargs[f.name] = (
            from_dict(type(sub()), value) if sub is not None and isinstance(value, dict) else value
        )
    return cls(**kwargs)
