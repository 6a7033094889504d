"""Instruction-driven selection of objects from an object-list state (the tabletop's state layout).

A state of `prefix_dim` numbers (the pusher and its target) followed by one `object_dim` row per object
(block x, y, cos yaw, sin yaw) gives a flat MLP no hint of which rows the instruction is about; it then has
to learn "red moon -> rows 0..3" by itself, and on the tabletop it memorised demonstrations instead (its
steps-to-go validation loss rose from 3.4 to 8.4 while training loss fell). This module lets the encoded
instruction pick objects by attention: each of `num_roles` queries scores every object's learned identity
key, and the softmax-weighted rows come out, together with their positions relative to the pusher and to
each other. It works for any number of objects of fixed identity.

An instruction names at most two blocks (the block to move, the reference), so two queries are the
default. On the tabletop's 10% subset some Stage 1 runs lock a query onto the wrong block early (each
query on either named block at random, or both on the moved block) and, the softmax being saturated,
never recover: those runs end at 16-18% on block2block. `num_roles` > 2 and `scores="cosine"` (bounded
logits) are options against it; in short runs neither removed the failure (docs/tabletop.md, "Which block
the instruction names"), so the default stays 2 dot-product queries.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

POSITION_SCALE = 10.0  # metres -> decimetres, so the selected positions are O(1) inputs


class ObjectSelector(nn.Module):
    """(B, S) states and (B, T) instruction codes -> (B, out_dim) features of the selected objects."""

    def __init__(
        self,
        num_objects: int,
        prefix_dim: int,
        object_dim: int,
        text_dim: int,
        num_roles: int = 2,
        key_dim: int = 16,
        scores: str = "dot",
    ):
        super().__init__()
        if num_objects < 1 or prefix_dim < 2 or object_dim < 2 or num_roles < 1:
            raise ValueError(
                "an object-list state needs >= 1 object, a prefix starting with x, y, rows of >= 2, "
                "and >= 1 query."
            )
        if scores not in ("dot", "cosine"):
            raise ValueError(f"selector scores must be 'dot' or 'cosine', got {scores!r}.")
        self.num_objects, self.prefix_dim, self.object_dim = num_objects, prefix_dim, object_dim
        self.num_roles, self.key_dim, self.scores = num_roles, key_dim, scores
        self.pairs = list(itertools.combinations(range(num_roles), 2))
        self.keys = nn.Parameter(torch.randn(num_objects, key_dim) / math.sqrt(key_dim))
        self.queries = nn.Linear(text_dim, num_roles * key_dim)

    @property
    def out_dim(self) -> int:
        return self.num_roles * (self.object_dim + 2) + 2 * len(self.pairs)

    def weights(self, text: torch.Tensor) -> torch.Tensor:
        """(B, roles, objects) attention of each query over the objects."""
        queries = self.queries(text).view(-1, self.num_roles, self.key_dim)
        if self.scores == "cosine":
            # Unit vectors and a fixed scale bound every logit to [-5, 5], so the softmax cannot saturate
            # past e^10 : 1 and a query on the wrong block still gets a gradient.
            cosines = nn.functional.normalize(queries, dim=-1) @ nn.functional.normalize(self.keys, dim=-1).T
            return torch.softmax(5.0 * cosines, dim=-1)
        return torch.softmax(queries @ self.keys.T / math.sqrt(self.key_dim), dim=-1)

    def forward(self, state: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        objects = state[:, self.prefix_dim :].view(-1, self.num_objects, self.object_dim)
        selected = self.weights(text) @ objects  # (B, roles, object_dim)
        positions = selected[..., :2] * POSITION_SCALE
        to_pusher = positions - state[:, None, :2] * POSITION_SCALE
        features = [selected[..., 2:].flatten(1), positions.flatten(1), to_pusher.flatten(1)]
        features += [positions[:, i] - positions[:, j] for i, j in self.pairs]
        return torch.cat(features, dim=-1)
