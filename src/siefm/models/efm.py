"""The embodied foundation model (EFM) for vector observations: encoders -> two towers -> two heads.

One module holds both outputs the paper trains in Stage 1: the action distribution (BC) and the categorical
steps-to-go prediction, whose expectation is the distance d(o, g) (docs/method.md, "Reward and success
detector"). As in the published PointMass notebook the two outputs use separate MLP towers over the same
input, so Stage 2 can update the policy while a frozen copy supplies rewards. The input is the z-scored state
followed by the goal: a z-scored goal vector (PointMass), or an instruction encoded by the learned word-token
encoder (tabletop), shared by both towers. Normalisation statistics and the vocabulary travel with the
weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from siefm.config import ModelConfig
from siefm.models.bins import UniformBins, steps_to_go_bins
from siefm.models.heads import ActionDistribution, Bounds, action_head
from siefm.models.objects import ObjectSelector
from siefm.models.text import TextEncoder, WordTokenizer
from siefm.models.vision import VisionEncoder

Stats = Mapping[str, Mapping[str, torch.Tensor]]  # feature ("state", "goal", "action") -> mean/std/min/max


@dataclass(frozen=True)
class ModelSpec:
    """Sizes the data fixes for the model: checked against an env before a checkpoint is used on it."""

    state_dim: int
    goal_dim: int  # vector goals: their size; instruction goals: words per instruction (max_words)
    action_dim: int
    vocabulary: tuple[str, ...] = ()  # instruction goals: the tokenizer's words, index = token id
    objects: tuple[str, ...] = ()  # object-list states: each row's object name ("red moon"), if known
    action_reference: tuple[int, ...] = ()  # actions predicted as changes of these state numbers (-1: none)

    def __post_init__(self) -> None:
        for name in ("vocabulary", "objects", "action_reference"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # a JSON list after loading


class EncodedGoal(dict):
    """What a model computes from its goal input alone, by name, each (B, ...) row-aligned with the goals;
    "goal" holds the goal input itself. A model's methods take it wherever they take a goal, with the same
    result: a caller that keeps the same goals for many steps under unchanged weights (Stage 2's rollout,
    for an episode) encodes them once (`EFMBase.encode_goal`) instead of at every step."""

    def rows(self, index: torch.Tensor | np.ndarray) -> EncodedGoal:
        return EncodedGoal({name: value[index] for name, value in self.items()})


GoalInput = torch.Tensor | EncodedGoal


def state_offsets(state: torch.Tensor, reference: Sequence[int]) -> torch.Tensor:
    """(B, A): for each action number, the state number it commands (`ModelSpec.action_reference`), 0
    where it commands none (-1)."""
    index = torch.as_tensor(reference)
    return torch.where(index >= 0, state[:, index.clamp(min=0)], 0.0)


@dataclass
class EFMOutput:
    actions: ActionDistribution
    steps_to_go_logits: torch.Tensor  # (B, K)


def mlp(in_dim: int, hidden_dim: int, num_layers: int, dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(num_layers):
        layers += [nn.Linear(in_dim if i == 0 else hidden_dim, hidden_dim), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class EFMBase(nn.Module):
    """What every EFM offers Stage 1, Stage 2 and evaluation, given its two outputs' logits (the vector EFM
    below, `siefm.models.pixel_efm.PixelEFM` and `siefm.models.board_efm.BoardEFM`).

    The contract the stages call, so that a model's extras are declared rather than probed:
    - what it reads: `reads_frames` (observations then carry "pixels", or their encoded "features"), its
      frame encoder `vision` (None for state models), `goal_input` for raw goals;
    - what trains: Stage 1 trains every parameter, `perception_parameters` at their own rate; Stage 2 trains
      `policy_parameters` only;
    - losses it adds to Stage 1: `perception_loss` (None: none) and `instruction_aux_loss` (models built
      with `arms.instruction_aux_weight` > 0);
    - its parts a domain may inspect or adapt: `selector` (the instruction's object selection, None
      without one) and `use_object_names`.
    """

    # Every model sets these in __init__ (as attributes, not class defaults, which would hide submodules).
    config: ModelConfig
    spec: ModelSpec
    vision: VisionEncoder | None
    selector: ObjectSelector | None

    def action_distribution(self, obs: Mapping[str, torch.Tensor], goal: GoalInput) -> ActionDistribution:
        raise NotImplementedError

    def steps_to_go_logits(self, obs: Mapping[str, torch.Tensor], goal: GoalInput) -> torch.Tensor:
        raise NotImplementedError

    def goal_input(self, goals: np.ndarray | Sequence[str]) -> torch.Tensor:
        raise NotImplementedError

    def encode_goal(self, goal: torch.Tensor) -> GoalInput:
        """`goal` with what depends on it alone computed once (an `EncodedGoal`), for callers that reuse it
        with unchanged weights; models with nothing worth precomputing return `goal` itself."""
        return goal

    def frozen_inputs(self, obs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`obs` with frozen encodings precomputed, for reuse across Stage 2 updates."""
        raise NotImplementedError

    def policy_parameters(self) -> Iterator[nn.Parameter]:
        raise NotImplementedError

    def encoded(self, obs: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        """`obs` with whatever the model encodes first done once (pixel models' frames), for one Stage 1 step
        to share between its losses."""
        return obs

    def perception_loss(
        self, obs: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]] | None:
        """A Stage 1 loss on what the model perceives, with its metrics; None for models with none (all but
        the board-reading pixel model, siefm.models.board_efm)."""
        return None

    def perception_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters only `perception_loss` trains (Stage 1 gives them their own learning rate)."""
        return iter(())

    def instruction_aux_loss(
        self, endpoints: Mapping[str, torch.Tensor], goal: torch.Tensor, task: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The auxiliary objective on episodes' first and last frames: (loss, top-1 retrieval accuracy)."""
        raise ValueError("this model has no auxiliary instruction head (arms.instruction_aux_weight = 0).")

    def use_object_names(self, names: Sequence[str]) -> None:
        """Tells an object-selecting model the names of the env's object rows (a board may differ from its
        training board's, as the novel-object one); models that select no objects ignore them."""

    @property
    def reads_frames(self) -> bool:
        """Whether the model reads camera frames (observations then carry "pixels")."""
        return self.config.observation == "pixels"

    @property
    def steps_to_go_bins(self) -> UniformBins:
        return steps_to_go_bins(self.config.steps_to_go_bins, self.config.steps_to_go_max)

    def act(
        self,
        obs: Mapping[str, torch.Tensor],
        goal: GoalInput,
        *,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions (B, A) in env units and their log-probabilities (B,)."""
        dist = self.action_distribution(obs, goal)
        action = dist.mode() if deterministic else dist.sample(generator)
        return action, dist.log_prob(action)

    def log_prob(
        self,
        obs: Mapping[str, torch.Tensor],
        goal: torch.Tensor,
        action: torch.Tensor,
        bounds: Bounds | None = None,
    ) -> torch.Tensor:
        """log pi(a | o, g) of env-unit actions (B, A) -> (B,); with `bounds`, of the action the simulator
        executes, the sample clipped to them."""
        return self.action_distribution(obs, goal).log_prob(action, bounds)

    def steps_to_go(self, obs: Mapping[str, torch.Tensor], goal: GoalInput) -> torch.Tensor:
        """d(o, g): expected steps-to-go under the categorical prediction, (B,)."""
        return self.steps_to_go_bins.expectation(self.steps_to_go_logits(obs, goal))

    def action_offset(self, state: torch.Tensor) -> torch.Tensor | None:
        """(B, A) what each action number is predicted relative to (`ModelSpec.action_reference`: the
        state number it commands, 0 where none), or None for absolute actions."""
        return state_offsets(state, self.spec.action_reference) if self.spec.action_reference else None


class EFM(EFMBase):
    """Goal-conditioned policy + steps-to-go model. Observations are {"state": (B, S)}; goals are (B, G)
    float vectors or (B, max_words) int64 word ids (`goal_input` makes either from raw goals)."""

    def __init__(self, config: ModelConfig, spec: ModelSpec, stats: Stats):
        super().__init__()
        required = (config.goal_encoder, config.state_encoder, config.steps_to_go_sees, config.action_head)
        if None in (*required, config.steps_to_go_bins, config.steps_to_go_max):
            raise ValueError("the EFM needs a resolved ModelConfig: call config.resolve(env_id) first.")
        if config.goal_encoder not in ("vector", "words"):
            raise ValueError(
                f"--sft.model.goal-encoder {config.goal_encoder} is for pixel models "
                "(--sft.model.observation pixels); state models take 'vector' or 'words'."
            )
        self.config, self.spec = config, spec
        self.tokenizer: WordTokenizer | None = None
        self.selector: ObjectSelector | None = None
        self.vision = None  # it reads states, not frames
        if config.goal_encoder == "words":
            if not spec.vocabulary:
                raise ValueError("an EFM with instruction goals needs ModelSpec.vocabulary.")
            self.tokenizer = WordTokenizer(spec.vocabulary, spec.goal_dim)
            self.text_encoder = TextEncoder(
                len(self.tokenizer),
                spec.goal_dim,
                config.text_dim,
                both_ends=config.words_from_both_ends,
            )
            self.register_buffer("input_mean", stats["state"]["mean"].clone())
            self.register_buffer("input_std", stats["state"]["std"].clone())
            in_dim = spec.state_dim + config.text_dim
            if config.state_encoder == "objects":
                num_objects, leftover = divmod(spec.state_dim - config.object_prefix_dim, config.object_dim)
                if leftover or num_objects < 1:
                    raise ValueError(
                        f"a state of size {spec.state_dim} is not {config.object_prefix_dim} numbers plus "
                        f"rows of {config.object_dim}: use --sft.model.state-encoder flat for this data."
                    )
                object_words = None
                if config.arms.selector_keys == "names":
                    if len(spec.objects) != num_objects:
                        raise ValueError(
                            f"the 'objects' state encoder matches instructions to the names of the "
                            f"{num_objects} objects, and the data's domain names {len(spec.objects)}: use "
                            "--sft.model.state-encoder flat for this data."
                        )
                    object_words = self.tokenizer.encode(spec.objects)
                self.selector = ObjectSelector(
                    num_objects,
                    config.object_prefix_dim,
                    config.object_dim,
                    config.text_dim,
                    num_roles=config.arms.selector_queries,
                    scores=config.arms.selector_scores,
                    object_words=object_words,
                    max_words=spec.goal_dim,
                )
                in_dim += self.selector.out_dim
        else:
            self.register_buffer("input_mean", torch.cat([stats["state"]["mean"], stats["goal"]["mean"]]))
            self.register_buffer("input_std", torch.cat([stats["state"]["std"], stats["goal"]["std"]]))
            in_dim = spec.state_dim + spec.goal_dim
        self.policy_tower = mlp(in_dim, config.hidden_dim, config.num_layers)
        self.action_head = action_head(config, spec.action_dim, stats["action"])
        steps_in_dim = in_dim
        if self.selector is not None and config.steps_to_go_sees == "selected":
            steps_in_dim = config.text_dim + self.selector.out_dim
        self.steps_to_go_tower = mlp(
            steps_in_dim, config.hidden_dim, config.num_layers, config.steps_to_go_dropout
        )
        self.steps_to_go_head = nn.Linear(config.hidden_dim, config.steps_to_go_bins)

    def goal_input(self, goals: np.ndarray | Sequence[str]) -> torch.Tensor:
        """The model's goal tensor from raw goals: float vectors (B, G), or instruction texts -> word ids."""
        if self.tokenizer is not None:
            return self.tokenizer.encode([str(text) for text in goals])
        return torch.as_tensor(np.asarray(goals), dtype=torch.float32)

    def instruction_aux_loss(
        self, endpoints: Mapping[str, torch.Tensor], goal: torch.Tensor, task: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The auxiliary objective on episodes' first and last frames: (loss, top-1 retrieval accuracy)."""
        raise ValueError("this model has no auxiliary instruction head (arms.instruction_aux_weight = 0).")

    def use_object_names(self, names: Sequence[str]) -> None:
        """Reads the object rows as the objects `names` (a board with other objects in the same layout, the
        banana's): name keys then look for the new names; slot keys, which ignore names, are unchanged."""
        names = tuple(names)
        if self.selector is None or not self.spec.objects or names == self.spec.objects:
            return
        if len(names) != len(self.spec.objects):
            raise ValueError(f"{len(names)} object names for a model of {len(self.spec.objects)} objects.")
        self.spec = dataclasses.replace(self.spec, objects=names)
        if self.selector.keys is None:
            self.selector.object_words = self.tokenizer.encode(names).to(self.selector.object_words.device)

    def _encode(self, obs: Mapping[str, torch.Tensor], goal: GoalInput) -> list[torch.Tensor]:
        """The encoded inputs, one pass of the encoders: [z-scored state and goal] for vector goals, else
        [z-scored state, instruction code] and, with object selection, the selected objects' features.

        The policy tower reads them all; `forward` (every Stage 1 step) feeds both towers from one call, so
        the text encoder and the selector run once per batch, not once per head."""
        if self.tokenizer is None:
            return [self._z_scored(torch.cat([obs["state"], goal], dim=-1))]
        code = goal if isinstance(goal, EncodedGoal) else self.encode_goal(goal)
        pieces = [self._z_scored(obs["state"]), code["text"]]
        if self.selector is not None:
            pieces.append(self.selector(obs["state"], code["text"], code["goal"], code.get("weights")))
        return pieces

    def _z_scored(self, inputs: torch.Tensor) -> torch.Tensor:
        """`inputs` z-scored with the training data's statistics, clipped to +-`input_clip` where set."""
        z = (inputs - self.input_mean) / self.input_std
        return z.clamp(-self.config.input_clip, self.config.input_clip) if self.config.input_clip else z

    def encode_goal(self, goal: torch.Tensor) -> GoalInput:
        """Instruction goals: the word ids with their text code and, with object selection, the selector's
        weights over the objects (both depend on the instruction alone)."""
        if self.tokenizer is None:
            return goal
        code = EncodedGoal(goal=goal, text=self.text_encoder(goal))
        if self.selector is not None:
            code["weights"] = self.selector.weights(code["text"], goal)
        return code

    def _steps_to_go_input(
        self, pieces: list[torch.Tensor], policy_input: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The steps-to-go tower's input: the policy's (reused when given), or, with `steps_to_go_sees =
        'selected'`, the instruction code and the selected objects only."""
        if self.selector is not None and self.config.steps_to_go_sees == "selected":
            return torch.cat(pieces[1:], dim=-1)
        return torch.cat(pieces, dim=-1) if policy_input is None else policy_input

    def action_distribution(self, obs: Mapping[str, torch.Tensor], goal: GoalInput) -> ActionDistribution:
        features = self.policy_tower(torch.cat(self._encode(obs, goal), dim=-1))
        return self.action_head(features, self.action_offset(obs["state"]))

    def steps_to_go_logits(self, obs: Mapping[str, torch.Tensor], goal: GoalInput) -> torch.Tensor:
        return self.steps_to_go_head(self.steps_to_go_tower(self._steps_to_go_input(self._encode(obs, goal))))

    def forward(self, obs: Mapping[str, torch.Tensor], goal: torch.Tensor) -> EFMOutput:
        pieces = self._encode(obs, goal)
        policy_input = torch.cat(pieces, dim=-1)
        return EFMOutput(
            self.action_head(self.policy_tower(policy_input), self.action_offset(obs["state"])),
            self.steps_to_go_head(self.steps_to_go_tower(self._steps_to_go_input(pieces, policy_input))),
        )

    def frozen_inputs(self, obs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """State observations have nothing frozen to precompute."""
        return dict(obs)

    def policy_parameters(self) -> Iterator[nn.Parameter]:
        """What Stage 2 trains: the goal encoder, the action tower and head (not the steps-to-go tower, which
        the policy never uses)."""
        if self.tokenizer is not None:
            yield from self.text_encoder.parameters()
            if self.selector is not None:
                yield from self.selector.parameters()
        yield from self.policy_tower.parameters()
        yield from self.action_head.parameters()
