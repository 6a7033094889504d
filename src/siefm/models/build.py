"""The one place that picks the EFM class for a model config (state vectors or pixels)."""

from __future__ import annotations

import dataclasses

from siefm.config import ModelConfig
from siefm.models.efm import EFM, EFMBase, ModelSpec, Stats

# The pixel EFM's two encoder sets of the pretraining ablation (docs/method.md, "Published results"), as
# ModelConfig fields.
ENCODER_PRESETS = {
    "pretrained": {"vision_encoder": "efficientnet-lite0", "goal_encoder": "minilm"},
    "scratch": {"vision_encoder": "scratch", "goal_encoder": "words"},
    # No pretrained weights, but a frozen encoder whose features can be cached, where the scratch CNN's
    # raw frames would not fit in memory (ModelConfig.vision_weights).
    "random": {"vision_encoder": "efficientnet-lite0", "vision_weights": "random", "goal_encoder": "words"},
}


def with_encoders(config: ModelConfig, preset: str) -> ModelConfig:
    """`config` with one of the ablation's encoder sets (ENCODER_PRESETS). The board readout matches the
    instruction's words to the blocks' names, so it keeps the word encoder and only the vision encoder
    changes."""
    encoders = dict(ENCODER_PRESETS[preset])
    if config.pixel_readout == "board":
        encoders["goal_encoder"] = "words"
    return dataclasses.replace(config, **encoders)


def build_efm(config: ModelConfig, spec: ModelSpec, stats: Stats, pretrained: bool = True) -> EFMBase:
    """A fresh EFM for a resolved `config`. `pretrained=False` skips reading packaged pretrained weights
    for a model whose checkpoint is about to load its own copy."""
    if config.observation == "pixels" and config.pixel_readout == "board":
        from siefm.models.board_efm import BoardEFM  # the vision stack is imported only when used

        return BoardEFM(config, spec, stats, pretrained)
    if config.observation == "pixels":
        from siefm.models.pixel_efm import PixelEFM

        return PixelEFM(config, spec, stats, pretrained)
    return EFM(config, spec, stats)
