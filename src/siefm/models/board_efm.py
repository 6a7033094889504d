"""The board-reading EFM from pixels (tabletop, `pixel_readout = 'board'`): frames -> estimated block poses
-> the state model's towers.

Why: every pixel model that read its feature maps directly (flattened, keypoints, selected blocks, with
the paper's auxiliary objective) learnt a steps-to-go d barely better than a constant guess on held-out
layouts, and Stage 2 on its reward lowered success (docs/pixels.md). The paper's EFM gets its sense of
where objects are from web-scale vision-language pretraining that a frozen ImageNet encoder at 96 x 96
lacks. Here that sense is learnt in Stage 1 from the demonstrations themselves: they record every block's
pose, so a reader is trained to estimate the poses from the current frame, and the state model's towers
(siefm.models.efm: the instruction's object selector, the policy and steps-to-go towers) act and predict
steps-to-go on the estimate. At run time the model sees what the other pixel models see, the two frames,
the instruction and the pusher's position and target, never the recorded block poses.

Choices:
- The reader (BoardReader) has one heat map per block over the feature map, read by a spatial softmax
  (a layout-free readout: in experiments/pixels_localisation.py a flattened readout memorised layouts). One
  small MLP, shared by all blocks, maps a heat map's image position to board x, y (the camera's
  projection is the same for every block); the yaw is read from the features under the heat map.
- The estimate goes to the towers detached: the reader learns only from the recorded poses, so neither
  head can shape it into a code for the training layouts.
- In Stage 1 training the towers read the recorded poses (`arms.board_towers_learn_from = 'recorded'`), so
  they learn what the state model learns; the reader's error meets them at run time only. Towers trained
  on the estimate ('estimate') acted worse, on the estimate and on exact poses (docs/pixels.md).
- The reader is part of perception: Stage 2 trains the policy's layers only, as with the vision encoder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from siefm.config import ModelConfig
from siefm.models.efm import EFM, EFMOutput, ModelSpec, Stats
from siefm.models.heads import ActionDistribution
from siefm.models.objects import POSITION_SCALE, ObjectSelector
from siefm.models.pixel_efm import PixelInputs, SpatialSoftmax
from siefm.models.text import TextEncoder, WordTokenizer

READER_CHANNELS = 64


class BoardReader(nn.Module):
    """(B, C, h, w) features of one frame -> (B, objects, 4): each object's estimated x, y (metres, board
    frame), cos yaw and sin yaw, the rows of the tabletop's state."""

    def __init__(self, channels: int, side: int, num_objects: int):
        super().__init__()
        self.cells = nn.Sequential(
            nn.Conv2d(channels, READER_CHANNELS, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(READER_CHANNELS, READER_CHANNELS, 3, padding=1),
            nn.ReLU(),
        )
        self.heat_maps = nn.Conv2d(READER_CHANNELS, num_objects, 1)
        self.image_position = SpatialSoftmax(side)  # its grid: each cell's x, y in [-1, 1]
        self.to_board = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 2))  # -> decimetres
        self.to_yaw = nn.Linear(READER_CHANNELS, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        cells = self.cells(features)  # (B, R, h, w)
        maps = self.heat_maps(cells)  # (B, objects, h, w)
        attention = torch.softmax(maps.flatten(2), dim=-1)  # (B, objects, h * w)
        image_xy = attention @ self.image_position.grid  # (B, objects, 2) in [-1, 1]
        under_map = attention @ cells.flatten(2).transpose(1, 2)  # (B, objects, R)
        board_xy = self.to_board(image_xy) / POSITION_SCALE
        return torch.cat([board_xy, self.to_yaw(under_map)], dim=-1)


def board_error(estimate: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reader's loss and its position error: (B, objects, 4) estimates against the recorded rows.
    The loss is the mean squared error with positions in decimetres (POSITION_SCALE), so a 1 cm error
    weighs as a 0.1 error in cos or sin of the yaw; the error is each block's centre distance in cm,
    (B, objects)."""
    offset = estimate - rows
    loss = ((offset[..., :2] * POSITION_SCALE) ** 2).sum(-1).mean() + (offset[..., 2:] ** 2).sum(-1).mean()
    return loss, 100 * offset[..., :2].norm(dim=-1)


class BoardEFM(PixelInputs):
    """The EFM that reads the board from pixels (see the module docstring). `board` is a state EFM over
    [pusher position and target, estimated block rows]."""

    def __init__(self, config: ModelConfig, spec: ModelSpec, stats: Stats, pretrained: bool = True):
        if (
            config.observation != "pixels"
            or config.pixel_readout != "board"
            or config.goal_encoder != "words"
        ):
            raise ValueError(
                "a BoardEFM needs a resolved pixel ModelConfig with pixel_readout 'board' and "
                "'words' instructions."
            )
        super().__init__(config, spec, pretrained)
        self.num_objects, leftover = divmod(spec.state_dim - config.object_prefix_dim, config.object_dim)
        if leftover or self.num_objects < 1 or config.object_dim != 4:
            raise ValueError(
                "pixel_readout 'board' reads tabletop boards (pusher then x, y, cos, sin per block); a "
                f"state of {spec.state_dim} numbers is not that."
            )
        self.reader = BoardReader(self.vision.out_channels, self.side, self.num_objects)
        self.board = EFM(dataclasses.replace(config, observation="state"), spec, stats)

    # The state model's instruction layers, for what inspects them (Stage 1's grounding check).
    @property
    def tokenizer(self) -> WordTokenizer | None:
        return self.board.tokenizer

    @property
    def text_encoder(self) -> TextEncoder:
        return self.board.text_encoder

    @property
    def selector(self) -> ObjectSelector | None:
        return self.board.selector

    def goal_input(self, goals: np.ndarray | Sequence[str]) -> torch.Tensor:
        return self.board.goal_input(goals)

    def use_object_names(self, names: Sequence[str]) -> None:
        """As EFM.use_object_names: the selector looks for the new names. The reader still finds each row's
        object by its Stage 1 appearance, so a new object (the banana) is not seen."""
        self.board.use_object_names(names)

    def encoded(self, obs: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        """`obs` with the frames encoded and the state the towers read ("towers_state"), so that one Stage 1
        step reads the board once for the heads and the reader's loss. In training with
        `arms.board_towers_learn_from = 'recorded'` the towers read the recorded state; otherwise, and always
        in eval mode (Stage 1's validation), the reader's estimate ("blocks", kept with gradients for its
        loss)."""
        obs = super().encoded(obs)
        if self.training and self.config.arms.board_towers_learn_from == "recorded":
            return {**obs, "towers_state": obs["state"]}  # the reader reads only for its loss
        blocks = self.estimated_blocks(obs)
        return {**obs, "blocks": blocks, "towers_state": self.with_blocks(obs["state"], blocks.detach())}

    def estimated_blocks(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, objects, 4): the reader's estimate from the current frame."""
        if "blocks" in obs:
            return obs["blocks"]
        return self.reader(self._features(obs)[:, 1])

    def with_blocks(self, state: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
        """The recorded pusher position and target of `state`, then `blocks` in place of its block rows."""
        return torch.cat([state[:, : self.config.object_prefix_dim], blocks.flatten(1)], dim=-1)

    def estimated_state(self, obs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The state the towers read: the recorded pusher position and target, then the estimated block
        rows (detached: the heads do not train the reader), or what `encoded` chose in Stage 1."""
        if "towers_state" in obs:
            return {"state": obs["towers_state"]}
        with torch.no_grad():
            return {"state": self.with_blocks(obs["state"], self.estimated_blocks(obs))}

    def perception_loss(self, obs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """The reader's loss against the recorded block rows of `obs["state"]`, and its mean error in cm."""
        rows = obs["state"][:, self.config.object_prefix_dim :].unflatten(1, (self.num_objects, -1))
        loss, error_cm = board_error(self.estimated_blocks(obs), rows)
        return loss, {"board_error_cm": error_cm.mean().item()}

    def perception_parameters(self) -> Iterator[nn.Parameter]:
        """The reader's, and a trainable vision encoder's: the towers' losses reach neither."""
        yield from self.reader.parameters()
        if self.vision.trainable:
            yield from self.vision.parameters()

    def action_distribution(self, obs: Mapping[str, torch.Tensor], goal: torch.Tensor) -> ActionDistribution:
        return self.board.action_distribution(self.estimated_state(obs), goal)

    def steps_to_go_logits(self, obs: Mapping[str, torch.Tensor], goal: torch.Tensor) -> torch.Tensor:
        return self.board.steps_to_go_logits(self.estimated_state(obs), goal)

    def forward(self, obs: Mapping[str, torch.Tensor], goal: torch.Tensor) -> EFMOutput:
        return self.board(self.estimated_state(obs), goal)

    def policy_parameters(self) -> Iterator[nn.Parameter]:
        """What Stage 2 trains: the state model's policy layers. The vision encoder and the reader are
        perception, frozen as the paper freezes the vision encoder."""
        return self.board.policy_parameters()
