"""Stage 1, Stage 2 and evaluation configs. Field docstrings become the CLI's --help text (tyro).

Defaults follow the paper's PointMass notebook where it is specific; the choices it leaves open are marked
"choice" (docs/method.md lists each with its reason). Fields left None take the data's domain preset
(`siefm.domains`). Options marked "domain option" are honoured by the domains that have them; the others
refuse them before a run starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from siefm.config.base import fill_defaults, require
from siefm.config.model import ModelConfig

IMPROVE_PRESET_FIELDS = ("num_updates", "reward_scale")


@dataclass(frozen=True)
class SFTConfig:
    """Stage 1: behavioral cloning + steps-to-go on demonstrations."""

    model: ModelConfig = field(default_factory=ModelConfig)
    steps: int = 32_768
    """The most optimizer steps (the notebook's fixed 32,768); the plateau rule (`patience`) stops sooner."""
    patience: int | None = None
    """Plateau rule: stop once, over the last `patience` validations, neither selected figure (the policy's
    validation BC loss, the reward model's selection figure) has improved by `min_improvement` of its
    value; 0: always run `steps`. None: the domain's preset (PointMass 4, where the rule was measured; 0
    elsewhere, whose documented runs have fixed lengths): docs/method.md, "Stage 1's length"."""
    min_improvement: float = 0.01
    """Plateau rule: the relative improvement over `patience` validations that counts as still learning."""
    batch_size: int | None = None
    """Frames per batch; both losses are computed on the whole batch with equal weight. None: 256 (the
    notebook's), or 128 with pixel observations (a step of 256 takes about 2.5x as long; docs/pixels.md)."""
    lr: float = 3e-4
    """Adam learning rate (the notebook's)."""
    weight_decay: float = 0.0
    """AdamW weight decay (choice: 0, as Adam in the notebook)."""
    perception_lr: float = 1e-3
    """AdamW learning rate of the layers only a model's perception loss trains (the board readout's reader).
    Choice: 1e-3; at the Stage 1 rate the reader learns nothing in thousands of steps (docs/pixels.md)."""
    data_fraction: float = 1.0
    """Train on this fraction of the dataset's episodes (a deterministic, nested subset: 0.1, 0.2, ...)."""
    val_fraction: float = 0.1
    """Episodes held out for validation, checkpoint selection and success-threshold calibration."""
    eval_every: int = 1024
    """Validation period in optimizer steps; the best policy and reward checkpoints are kept separately."""
    success_threshold: float | None = None
    """Success detector threshold s (steps). None: calibrate on the validation episodes."""
    reward_selection: Literal["steps_to_go_loss", "d_error_near_goal"] | None = None
    """Which validation figure picks the reward-model checkpoint: the steps-to-go cross-entropy (the
    paper's "own validation loss"), or d's error in steps on the frames within 20 steps of the goal, where
    the detector fires (better reward models from sub-optimal demonstrations; docs/tabletop.md). None:
    the domain preset (tabletop: d_error_near_goal)."""
    hindsight: str = "none"
    """A hindsight relabelling the data's domain offers (the tabletop: 'block2block', the block2block goals
    the training episodes reached on the way): its labels also train the steps-to-go head, a batch of them
    beside every batch of demonstration frames. Validation, checkpoint choice and calibration still use
    the demonstrations' own labels. 'none': the demonstrations only."""
    frames: Literal["auto", "memory", "stream"] = "auto"
    """How a trainable vision encoder's frames are held: all decoded (or rendered) in 'memory', or read
    batch by batch in worker processes ahead of the training step ('stream': the same batches, memory
    bounded, for datasets whose frames do not fit in RAM). 'auto': stream when the frames would take more
    than a quarter of the machine's memory."""
    seed: int = 0
    """Seeds the split, initialisation and batches."""

    def resolve(self, env_id: str) -> SFTConfig:
        """This config with its model's and its own None fields set to `env_id`'s domain defaults."""
        from siefm.domains import find_domain

        domain = find_domain(env_id)
        presets = {} if domain is None else domain.presets.sft
        selection = self.reward_selection or presets.get("reward_selection", "steps_to_go_loss")
        batch_size = self.batch_size or (128 if self.model.observation == "pixels" else 256)
        patience = presets.get("patience", 0) if self.patience is None else self.patience
        model = self.model.resolve(env_id)
        return dataclasses.replace(
            self, model=model, reward_selection=selection, batch_size=batch_size, patience=patience
        )

    def __post_init__(self) -> None:
        for name in ("steps", "eval_every"):
            require(getattr(self, name) >= 1, self, name, ">= 1")
        require(self.batch_size is None or self.batch_size >= 1, self, "batch_size", ">= 1")
        require(self.patience is None or self.patience >= 0, self, "patience", ">= 0")
        require(self.min_improvement >= 0, self, "min_improvement", ">= 0")
        require(self.lr > 0, self, "lr", "> 0")
        require(self.perception_lr > 0, self, "perception_lr", "> 0")
        require(self.weight_decay >= 0, self, "weight_decay", ">= 0")
        require(0 < self.data_fraction <= 1, self, "data_fraction", "in (0, 1]")
        require(0 < self.val_fraction < 1, self, "val_fraction", "in (0, 1)")
        require(
            self.reward_selection in (None, "steps_to_go_loss", "d_error_near_goal"),
            self,
            "reward_selection",
            "'steps_to_go_loss' or 'd_error_near_goal'",
        )
        require(
            self.success_threshold is None or self.success_threshold >= 0, self, "success_threshold", ">= 0"
        )


@dataclass(frozen=True)
class ImproveConfig:
    """Stage 2: on-policy REINFORCE with rewards and success detection from the frozen Stage 1 model."""

    num_iterations: int = 64
    """Iterations of collect -> N updates -> discard (the notebook: 2,048 updates = 64 x 32)."""
    max_practice_episodes: int | None = None
    """Practice budget: no new iteration starts once this many practice episodes have been played (the
    last iteration may pass it by its own episodes). None: `num_iterations` alone decides."""
    num_updates: int | None = None
    """N: minibatch updates per iteration. None: the domain default (PointMass and tabletop: the paper's 16;
    other gymnasium envs: the notebook's 32)."""
    minibatch_size: int = 64
    """B: samples per minibatch, drawn without replacement from the iteration's buffer of >= N x B samples."""
    gamma: float = 0.9
    """Discount of the Monte-Carlo returns (the paper's)."""
    reward_scale: float | None = None
    """c in the loss -c * R * log pi. None: the domain default (PointMass: the notebook's 1/140; tabletop:
    the paper's 0.05)."""
    lr: float = 5e-5
    """AdamW learning rate of the policy (choice: faster rates can collapse the policy; the PointMass demo
    uses 1.25e-4 with N = 16 and a scale floor of 0.1: docs/pointmass.md)."""
    weight_decay: float = 0.0
    """AdamW weight decay (choice)."""
    num_envs: int = 16
    """Parallel envs in the fleet (choice: more robots per inference call collect faster; fewer overshoot
    the buffer by less, docs/method.md "Filling the buffer"; the PointMass demo uses 8)."""
    max_episode_steps: int | None = None
    """Time limit of a practice episode; None: the env's own limit (PointMass: 140 steps, the notebook's)."""
    end_on_true_success: bool = False
    """End practice episodes on the simulator's success, as the notebook does, instead of the learned
    detector d <= s (the paper's method; default)."""
    success_bonus: float = 0.0
    """The paper's simulation-only bonus (its Aloha runs, whose success is hard to see on camera): added to
    r_t when the simulator reports success at o_{t+1}. 0 (default): the self-improvement reward alone, with
    no ground truth; a result with a bonus is ground truth's help and is to be reported next to one
    without."""
    success_threshold: float | None = None
    """Override s; None uses the value calibrated in Stage 1 and stored in the reward checkpoint."""
    save_practice: bool = True
    """Write each iteration's practice episodes (with d, detector verdict, reward, return and policy version)
    to RUN/practice/iteration-KKKK in the dataset format."""
    families: tuple[str, ...] | None = None
    """Domain option (tabletop): the task families practised. None: the domain's (the paper's block2block)."""
    practice_mode: Literal["episodic", "reset-free"] = "episodic"
    """Domain option (tabletop): 'episodic' resets the board after every episode; 'reset-free' starts the next
    instruction where the last episode left the board, as the paper's robot fleet, resetting only when a block
    leaves the board or after `reset_every` steps."""
    reset_every: int = 1800
    """Reset-free practice: steps after which a board is reset anyway (choice: 3 minutes at 10 Hz, the
    paper's 3-5 minute shuffle period)."""
    block_set: str | None = None
    """Domain option (tabletop): practise with another object set, e.g. 'banana' (the novel-object
    experiment). None: the Stage 1 data's set."""
    vector_env: Literal["async", "sync"] = "async"
    """Gymnasium envs without a registered domain: step the robots in worker processes, one each
    ('async', for simulators slower than the policy) or all in this process ('sync')."""
    env_workers: int = 0
    """Local fleet: step the robots' simulators in this many worker processes, each with its share of the
    robots, while this process runs the models (0: all in this process). For simulators that dominate a
    step by far: on the tabletop, 2 workers on 2 cores collected 0.92-1.39x as fast as this process alone
    (four runs), and on PointMass slower (docs/fleet.md). Gymnasium envs have their own workers
    (`vector_env`)."""
    fleet: Literal["local", "ray"] = "local"
    """'local': every robot in this process; 'ray': the robots spread over `actors` Ray actors, each with
    its own copy of the policy and the reward model (needs `pip install 'siefm[ray]'`)."""
    actors: int = 2
    """Ray fleet: actors (one CPU each, or an equal share of the CPUs when there are more actors); the
    `num_envs` robots are split among them."""
    reward_on: Literal["actor", "shared"] = "actor"
    """Ray fleet: where d(o, g) is computed: on every practice actor with its own copy of the frozen
    reward model, or on one shared reward-model actor that scores all of them (the paper's v1 servers;
    a round trip per step)."""
    ray_address: str | None = None
    """Ray fleet: the address of an existing cluster; None starts a local instance on loopback."""
    actor_timeout_s: float = 300.0
    """Ray fleet: an actor that sends no episode for this many seconds is replaced; the episodes the
    learner has received from it are kept and the replacement plays the rest of its share. The wait
    starts once the actor is up (a new actor may take up to 120 s to start)."""
    stream_interval_s: float = 0.2
    """Ray fleet: an actor sends the episodes that have ended at most this often (0: each at once). Choice:
    about 10x fewer Ray messages than 0, and a crash loses at most 0.2 s of episodes (docs/fleet.md)."""
    seed: int = 0
    """Seeds the fleet and action sampling."""

    def __post_init__(self) -> None:
        for name in ("num_iterations", "minibatch_size", "num_envs", "reset_every", "actors"):
            require(getattr(self, name) >= 1, self, name, ">= 1")
        require(self.num_updates is None or self.num_updates >= 1, self, "num_updates", ">= 1")
        require(
            self.max_practice_episodes is None or self.max_practice_episodes >= 1,
            self,
            "max_practice_episodes",
            ">= 1",
        )
        require(
            self.practice_mode in ("episodic", "reset-free"),
            self,
            "practice_mode",
            "'episodic' or 'reset-free'",
        )
        require(
            self.max_episode_steps is None or self.max_episode_steps >= 1, self, "max_episode_steps", ">= 1"
        )
        require(0 <= self.gamma <= 1, self, "gamma", "in [0, 1]")
        require(self.reward_scale is None or self.reward_scale > 0, self, "reward_scale", "> 0")
        require(self.lr > 0, self, "lr", "> 0")
        require(self.weight_decay >= 0, self, "weight_decay", ">= 0")
        require(
            self.success_threshold is None or self.success_threshold >= 0, self, "success_threshold", ">= 0"
        )
        require(self.fleet in ("local", "ray"), self, "fleet", "'local' or 'ray'")
        require(0 <= self.env_workers <= self.num_envs, self, "env_workers", ">= 0 and <= num_envs (robots)")
        require(
            self.env_workers == 0 or self.fleet == "local",
            self,
            "env_workers",
            "0 with the Ray fleet (its actors are the workers: --improve.actors)",
        )
        require(self.vector_env in ("async", "sync"), self, "vector_env", "'async' or 'sync'")
        require(self.reward_on in ("actor", "shared"), self, "reward_on", "'actor' or 'shared'")
        require(self.actor_timeout_s > 0, self, "actor_timeout_s", "> 0")
        require(
            0 <= self.stream_interval_s < self.actor_timeout_s,
            self,
            "stream_interval_s",
            ">= 0 and < actor_timeout_s (an actor holding episodes longer would be taken for hung)",
        )

    def resolve(self, env_id: str) -> ImproveConfig:
        """This config with the None fields set to the presets of the domain that owns `env_id`."""
        from siefm.domains import find_domain

        domain = find_domain(env_id)
        defaults = {} if domain is None else domain.presets.improve
        return fill_defaults(self, defaults, IMPROVE_PRESET_FIELDS, env_id)

    @property
    def samples_per_iteration(self) -> int:
        """N x B: the buffer is filled with whole episodes until it holds at least this many samples."""
        assert self.num_updates is not None, "resolve() the config first"
        return self.num_updates * self.minibatch_size


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation on the simulator's true success."""

    episodes: int | None = None
    """Evaluation episodes per policy (per task family where the domain has them). None: the domain's
    preset (PointMass 500; tabletop 50 per family, the reference protocol)."""
    seed: int = 12_345
    """Seeds the starts and goals (the same for every policy compared)."""
    deterministic: bool = False
    """Act with the distribution's mode instead of sampling (choice: sample, the policy as trained)."""
    max_steps: int | None = None
    """Time limit per episode; None: the env's own limit (PointMass: 140 steps, tabletop: 200)."""
    families: tuple[str, ...] | None = None
    """Domain option (tabletop): the task families evaluated. None: every family of the board (the five
    families; on the 'banana' board, its own instructions)."""
    block_set: str | None = None
    """Domain option (tabletop): evaluate on another object set, e.g. 'banana'. None: the checkpoint's
    training set."""
    reference: str | None = None
    """Gymnasium envs without a registered domain: a scripted controller (module:function, observation ->
    action) evaluated beside the policy as the reference ("optimal"); the recorded demonstrator is always
    evaluated too."""
    videos: int = 2
    """Domain option (tabletop, Aloha): annotated GIFs (instruction, d(o, g), reward) written per family
    and policy on the tabletop, of the policy's first episodes on Aloha (the top camera, also showing the
    success detector and the simulator's stage)."""

    def __post_init__(self) -> None:
        require(self.episodes is None or self.episodes >= 1, self, "episodes", ">= 1")
        require(self.max_steps is None or self.max_steps >= 1, self, "max_steps", ">= 1")
        require(self.videos >= 0, self, "videos", ">= 0")

    def num_episodes(self, env_id: str) -> int:
        """Episodes per policy (per task family where the domain has families): `episodes`, or the
        domain's preset."""
        from siefm.domains import find_domain

        domain = find_domain(env_id)
        return self.episodes or (500 if domain is None else domain.presets.eval_episodes)
