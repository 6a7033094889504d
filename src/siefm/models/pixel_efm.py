"""The pixel EFM (tabletop): previous + current camera frame and an instruction -> actions and steps-to-go.

As the paper's LanguageTable model (docs/method.md, "Model settings per domain") it reads the current and
previous frame and the instruction; as the reference's observation (docs/method.md, "Reference observations")
it also reads the pusher's position and target. Layout (choices for this CPU-sized model):
- a vision encoder (siefm.models.vision) turns each frame into a feature map; the towers see the current
  map and its change since the previous frame, which carries the motion a single frame lacks;
- the instruction is encoded by the learned word-token encoder ('words') or by a frozen pretrained
  transformer's token states, projected per position (siefm.models.pretrained);
- each tower (action, steps-to-go) has its own fusion trunk: a 1 x 1 convolution whose channels the
  instruction scales and shifts (FiLM, as RT-1 conditions its EfficientNet on language), a 3 x 3
  convolution, then an MLP over the map (flattened, or read as keypoints by a spatial softmax), the
  instruction code and the pusher state;
- or the steps-to-go tower sees only the blocks the instruction names (`arms.pixel_steps_to_go_sees =
  'selected'`, SelectedBlocksTower): a few coordinates, so d cannot key on the rest of the layout;
- the heads are the tabletop defaults: tokenized actions and 50 steps-to-go bins;
- optionally (`arms.instruction_aux_weight`, a variant that lost), the paper's auxiliary Stage 1
  objective: tell the instruction from an episode's first and last frame (InstructionFromEndpoints).
The board readout (`pixel_readout = 'board'`) replaces the towers: siefm.models.board_efm. Both share
PixelInputs below (the vision encoder and the feature caching).
Observations are {"state": (B, S), "pixels": (B, 2, H, W, 3) uint8}, or "features" (B, 2, C, h, w) in place
of "pixels": frozen encodings computed once (Stage 1 caches them for the whole dataset, Stage 2 for the
buffer), so the encoder is not run again on every update.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from siefm.config import ModelConfig
from siefm.models.efm import EFMBase, EFMOutput, ModelSpec, Stats, mlp
from siefm.models.heads import ActionDistribution, action_head
from siefm.models.pretrained import MAX_TOKENS, FrozenTextTokens, minilm_path
from siefm.models.text import TextEncoder, WordTokenizer, from_both_ends
from siefm.models.vision import FRAME_FEATURES, build_vision_encoder

FUSION_CHANNELS = 32
KEYPOINTS = 16
AUX_TEMPERATURE = 0.1  # of the instruction retrieval's cosine similarities (choice, CLIP's range)


class TokenProjection(nn.Module):
    """Frozen token states (B, L, D) -> a learned per-position projection, concatenated -> ReLU layer.
    With `both_ends` the tokens are laid out from the start and from the end, as TextEncoder's words."""

    def __init__(
        self, token_dim: int, max_tokens: int, dim: int, word_dim: int = 32, both_ends: bool = False
    ):
        super().__init__()
        self.both_ends = both_ends
        self.per_token = nn.Linear(token_dim, word_dim, bias=False)  # no bias: padding stays zero
        layouts = 2 if both_ends else 1
        self.project = nn.Sequential(nn.Linear(layouts * max_tokens * word_dim, dim), nn.ReLU())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.both_ends:  # the frozen encoder zeroes padding, so a real token is any nonzero row
            tokens = from_both_ends(tokens, tokens.abs().sum(-1) > 0)
        return self.project(self.per_token(tokens).flatten(1))


class SpatialSoftmax(nn.Module):
    """(B, K, h, w) maps -> (B, 2K): the expected x and y (in [-1, 1]) under each map's softmax, i.e. one
    keypoint per map (Levine et al. 2016; robomimic's image encoders end this way)."""

    def __init__(self, side: int):
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.flatten(), ys.flatten()], dim=1))  # (h * w, 2)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        attention = torch.softmax(maps.flatten(2), dim=-1)  # (B, K, h * w)
        return (attention @ self.grid).flatten(1)


def keypoint_layer(side: int) -> nn.Sequential:
    """(B, FUSION_CHANNELS, side, side) cells -> (B, 2 * KEYPOINTS): 16 learned maps, read as keypoints."""
    return nn.Sequential(nn.Conv2d(FUSION_CHANNELS, KEYPOINTS, 1), SpatialSoftmax(side))


def read_keypoints(keypoints: nn.Module, cells: torch.Tensor) -> torch.Tensor:
    """(B, FUSION_CHANNELS, h, w) -> (B, 2 * KEYPOINTS + FUSION_CHANNELS): the keypoint coordinates and
    each channel's strongest response."""
    return torch.cat([keypoints(cells), cells.amax(dim=(2, 3))], dim=-1)


def frame_and_change(features: torch.Tensor) -> torch.Tensor:
    """(B, 2, C, h, w) previous and current feature maps -> (B, 2C, h, w): the current map and its change
    since the previous frame, which carries the motion a single frame lacks."""
    previous, current = features[:, 0], features[:, 1]
    return torch.cat([current, current - previous], dim=1)


class FusionTower(nn.Module):
    """(B, 2, C, h, w) frame features + (B, T) instruction code + (B, P) pusher state -> (B, hidden)."""

    def __init__(
        self,
        channels: int,
        side: int,
        text_dim: int,
        proprio_dim: int,
        hidden: int,
        layers: int,
        dropout: float = 0.0,
        readout: str = "flatten",
    ):
        super().__init__()
        self.reduce = nn.Conv2d(2 * channels, FUSION_CHANNELS, 1)
        self.film = nn.Linear(text_dim, 2 * FUSION_CHANNELS)
        self.spatial = nn.Sequential(nn.Conv2d(FUSION_CHANNELS, FUSION_CHANNELS, 3, padding=1), nn.ReLU())
        self.keypoints: nn.Module | None = None
        if readout == "keypoints":  # keypoint coordinates + each channel's strongest response
            self.keypoints = keypoint_layer(side)
            map_dim = 2 * KEYPOINTS + FUSION_CHANNELS
        else:
            map_dim = FUSION_CHANNELS * side * side
        self.mlp = mlp(map_dim + text_dim + proprio_dim, hidden, layers, dropout)

    def frame_cells(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 2, C, h, w) -> (B, FUSION_CHANNELS, h, w): the tower's frame layers without the instruction."""
        return self.spatial(torch.relu(self.reduce(frame_and_change(features))))

    def forward(self, features: torch.Tensor, text: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        x = self.reduce(frame_and_change(features))
        scale, shift = self.film(text)[:, :, None, None].chunk(2, dim=1)
        x = self.spatial(torch.relu(x * (1 + scale) + shift))
        read = read_keypoints(self.keypoints, x) if self.keypoints is not None else x.flatten(1)
        return self.mlp(torch.cat([read, text, proprio], dim=-1))


class SelectedBlocksTower(nn.Module):
    """(B, 2, C, h, w) frame features + (B, T) instruction code + (B, P) pusher state -> (B, hidden). Of the
    frames it sees only where the instruction's blocks are. For each role (the block to move, the reference
    block) a query from the instruction scores every cell's features; a spatial softmax turns the scores
    into that role's expected x, y. The MLP reads the roles' positions, their difference, the instruction
    and the pusher. As ObjectSelector for states, it leaves steps-to-go little but the named blocks'
    geometry to fit, where a map readout can memorise a demonstration by its whole layout."""

    def __init__(
        self,
        channels: int,
        side: int,
        text_dim: int,
        proprio_dim: int,
        hidden: int,
        layers: int,
        dropout: float = 0.0,
        num_roles: int = 2,
    ):
        super().__init__()
        self.num_roles = num_roles
        self.cells = nn.Sequential(
            nn.Conv2d(2 * channels, FUSION_CHANNELS, 1),
            nn.ReLU(),
            nn.Conv2d(FUSION_CHANNELS, FUSION_CHANNELS, 3, padding=1),
        )
        self.queries = nn.Linear(text_dim, num_roles * FUSION_CHANNELS)
        self.expected_position = SpatialSoftmax(side)
        self.mlp = mlp(2 * num_roles + 2 + text_dim + proprio_dim, hidden, layers, dropout)

    def frame_cells(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 2, C, h, w) -> (B, FUSION_CHANNELS, h, w): every cell's features, before the roles' queries."""
        return self.cells(frame_and_change(features))

    def role_positions(self, features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """(B, roles, 2): each role's expected x, y in [-1, 1] (x along the frame's columns)."""
        cells = self.frame_cells(features)  # (B, F, h, w)
        queries = self.queries(text).view(-1, self.num_roles, FUSION_CHANNELS)
        scores = torch.einsum("brf,bfhw->brhw", queries, cells) / FUSION_CHANNELS**0.5
        return self.expected_position(scores).view(-1, self.num_roles, 2)

    def forward(self, features: torch.Tensor, text: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        positions = self.role_positions(features, text)
        between = positions[:, 0] - positions[:, 1]
        return self.mlp(torch.cat([positions.flatten(1), between, text, proprio], dim=-1))


class InstructionFromEndpoints(nn.Module):
    """The paper's auxiliary Stage 1 objective for LanguageTable (docs/method.md, "Model settings per
    domain"): predict the instruction from an episode's first and last frame. The two frames go through the
    steps-to-go tower's frame layers (`frame_cells`, as a (previous, current) pair, so the tower's change
    channels see what the episode moved) with no instruction; this head reads the cells as keypoints and
    embeds them.

    Choices (the paper does not say how the instruction is predicted): the embedding must retrieve the
    episode's own instruction among the batch's, by cosine similarity to the instruction codes (InfoNCE;
    episodes with the same instruction all count as right). The codes are the model's instruction encoder,
    detached, so the objective shapes the frame layers d reads and not the policy's instruction encoder.
    """

    def __init__(self, side: int, text_dim: int, hidden: int):
        super().__init__()
        self.keypoints = keypoint_layer(side)
        self.embed = nn.Sequential(
            nn.Linear(2 * KEYPOINTS + FUSION_CHANNELS, hidden), nn.ReLU(), nn.Linear(hidden, text_dim)
        )

    def forward(self, cells: torch.Tensor) -> torch.Tensor:
        """(B, FUSION_CHANNELS, h, w) -> (B, text_dim) unit vectors."""
        return F.normalize(self.embed(read_keypoints(self.keypoints, cells)), dim=-1)


def instruction_retrieval(
    embedding: torch.Tensor, codes: torch.Tensor, task: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE of (B, D) unit frame embeddings against the (B, D) instruction codes of the same episodes,
    where episodes with the same `task` (B,) are all positives. Returns the loss and the top-1 accuracy."""
    logits = embedding @ F.normalize(codes, dim=-1).T / AUX_TEMPERATURE
    same = (task[:, None] == task[None, :]).float()
    loss = F.cross_entropy(logits, same / same.sum(dim=1, keepdim=True))
    accuracy = same.gather(1, logits.argmax(dim=1, keepdim=True)).mean()
    return loss, accuracy


class PixelInputs(EFMBase):
    """What every EFM from pixels shares: the vision encoder, and frames (B, 2, H, W, 3) turned into feature
    maps (B, 2, C, h, w), computed once and reused where the encoder is frozen."""

    def __init__(self, config: ModelConfig, spec: ModelSpec, pretrained: bool):
        super().__init__()
        self.config, self.spec = config, spec
        imagenet = pretrained and config.vision_weights == "imagenet"
        self.vision = build_vision_encoder(config.vision_encoder, config.image_size, config.hf_path, imagenet)
        self.side = self.vision.output_size(config.image_size)

    def encode_frames(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 2, H, W, 3) uint8 frames -> (B, 2, C, h, w) feature maps."""
        return self._as_cached(self.vision(pixels.flatten(0, 1))).unflatten(0, pixels.shape[:2])

    def _as_cached(self, features: torch.Tensor) -> torch.Tensor:
        """A frozen encoder's features rounded to float16, as Stage 1 caches them, so the model (and the
        threshold s calibrated on it) sees the same inputs live as in training."""
        return features if self.vision.trainable else features.half().float()

    @torch.no_grad()
    def frozen_inputs(self, obs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Observations with the frames replaced by their (frozen) features, to reuse across updates.
        Frames already encoded with the same weights come from the process's feature cache."""
        if "features" in obs:
            return dict(obs)
        pixels = obs["pixels"]
        features = self._as_cached(FRAME_FEATURES.encode(self.vision, pixels.flatten(0, 1)))
        return {"state": obs["state"], "features": features.unflatten(0, pixels.shape[:2])}

    def _features(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return (obs["features"] if "features" in obs else self.encode_frames(obs["pixels"])).float()

    def encoded(self, obs: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        """`obs` with raw frames encoded (with gradients, for a trainable encoder), so that both heads of one
        forward pass, and Stage 1's other losses, share one encoding."""
        if "pixels" in obs:
            return {"state": obs["state"], "features": self.encode_frames(obs["pixels"])}
        return obs


class PixelEFM(PixelInputs):
    """The EFM from pixels (see the module docstring)."""

    def __init__(self, config: ModelConfig, spec: ModelSpec, stats: Stats, pretrained: bool = True):
        if config.observation != "pixels" or config.goal_encoder not in ("words", "minilm", "hf"):
            raise ValueError("a PixelEFM needs a resolved pixel ModelConfig with an instruction encoder.")
        super().__init__(config, spec, pretrained)
        self.selector = None  # it reads the instruction-conditioned map, selecting no object rows
        side = self.side
        self.tokenizer: WordTokenizer | None = None
        self.frozen_text: FrozenTextTokens | None = None
        if config.goal_encoder == "words":
            self.tokenizer = WordTokenizer(spec.vocabulary, spec.goal_dim)
            self.text_encoder: nn.Module = TextEncoder(
                len(self.tokenizer),
                spec.goal_dim,
                config.text_dim,
                both_ends=config.words_from_both_ends,
            )
        else:
            path = minilm_path() if config.goal_encoder == "minilm" else config.hf_path
            assert path is not None
            self.frozen_text = FrozenTextTokens.load(path)
            self.text_encoder = TokenProjection(
                self.frozen_text.dim,
                MAX_TOKENS,
                config.text_dim,
                both_ends=config.words_from_both_ends,
            )
        # The robot's own numbers, first in the state: the tabletop's pusher x, y and target x, y; an env
        # whose whole state is the robot's own (e.g. agent_pos) has fewer than object_prefix_dim.
        proprio = min(config.object_prefix_dim, spec.state_dim)
        self.register_buffer("proprio_mean", stats["state"]["mean"][:proprio].clone())
        self.register_buffer("proprio_std", stats["state"]["std"][:proprio].clone())
        sizes = (self.vision.out_channels, side, config.text_dim, proprio, config.hidden_dim)
        readout = "flatten" if config.arms.flat_pixel_readout else config.pixel_readout
        self.policy_tower = FusionTower(*sizes, config.num_layers, readout=readout)
        self.steps_to_go_tower: nn.Module
        if config.arms.pixel_towers == "shared":
            self.steps_to_go_tower = self.policy_tower
        elif config.arms.pixel_steps_to_go_sees == "selected":
            self.steps_to_go_tower = SelectedBlocksTower(
                *sizes, config.num_layers, config.steps_to_go_dropout
            )
        else:
            self.steps_to_go_tower = FusionTower(
                *sizes, config.num_layers, config.steps_to_go_dropout, readout
            )
        self.action_head = action_head(config, spec.action_dim, stats["action"])
        self.steps_to_go_head = nn.Linear(config.hidden_dim, config.steps_to_go_bins)
        self.instruction_aux: InstructionFromEndpoints | None = None
        if config.arms.instruction_aux_weight > 0:  # built last: the other layers start as without it
            self.instruction_aux = InstructionFromEndpoints(side, config.text_dim, config.hidden_dim)

    def goal_input(self, goals: np.ndarray | Sequence[str]) -> torch.Tensor:
        """Instruction texts -> word ids (B, L), or frozen token states (B, MAX_TOKENS, D)."""
        texts = [str(text) for text in goals]
        if self.tokenizer is not None:
            return self.tokenizer.encode(texts)
        assert self.frozen_text is not None
        return self.frozen_text.encode(texts)

    def _trunk(self, tower: nn.Module, obs: Mapping[str, torch.Tensor], goal: torch.Tensor) -> torch.Tensor:
        proprio = obs["state"][:, : self.proprio_mean.shape[0]]
        proprio = (proprio - self.proprio_mean) / self.proprio_std
        return tower(self._features(obs), self.text_encoder(goal), proprio)

    def instruction_aux_loss(
        self, endpoints: Mapping[str, torch.Tensor], goal: torch.Tensor, task: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The auxiliary objective on episodes' first and last frames ({"features" or "pixels": (B, 2, ...)})
        with their instructions' goal input and task ids: (loss, top-1 retrieval accuracy)."""
        if self.instruction_aux is None:
            return super().instruction_aux_loss(endpoints, goal, task)
        cells = self.steps_to_go_tower.frame_cells(self._features(endpoints))  # type: ignore[operator]
        with torch.no_grad():
            codes = self.text_encoder(goal)
        return instruction_retrieval(self.instruction_aux(cells), codes, task)

    def action_distribution(self, obs: Mapping[str, torch.Tensor], goal: torch.Tensor) -> ActionDistribution:
        return self.action_head(self._trunk(self.policy_tower, obs, goal), self.action_offset(obs["state"]))

    def steps_to_go_logits(self, obs: Mapping[str, torch.Tensor], goal: torch.Tensor) -> torch.Tensor:
        return self.steps_to_go_head(self._trunk(self.steps_to_go_tower, obs, goal))

    def forward(self, obs: Mapping[str, torch.Tensor], goal: torch.Tensor) -> EFMOutput:
        obs = self.encoded(obs)
        return EFMOutput(self.action_distribution(obs, goal), self.steps_to_go_logits(obs, goal))

    def policy_parameters(self) -> Iterator[nn.Parameter]:
        """What Stage 2 trains: the instruction encoder's learned part, the action tower and head. The vision
        encoder is frozen, as in the paper."""
        yield from self.text_encoder.parameters()
        yield from self.policy_tower.parameters()
        yield from self.action_head.parameters()
