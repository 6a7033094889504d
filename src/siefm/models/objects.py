"""Instruction-driven selection of objects from an object-list state (the tabletop's state layout).

A state of `prefix_dim` numbers (the pusher and its target) followed by one `object_dim` row per object
(block x, y, cos yaw, sin yaw) gives a flat MLP no hint of which rows the instruction is about; it then has
to learn "red moon -> rows 0..3" by itself, and on the tabletop it memorised demonstrations instead (its
steps-to-go validation loss rose from 3.4 to 8.4 while training loss fell). This module lets the encoded
instruction pick objects by attention: each of `num_roles` queries scores every object's learned identity
key, and the softmax-weighted rows come out, together with their positions relative to the pusher and to
each other. It works for any number of objects of fixed identity.

An instruction names at most two blocks (the block to move, the reference), so two queries are the
default. A query scores objects in one of two ways:
- 'slots': a learned identity key per object row. On the tabletop's 10% subset many Stage 1 runs lock a
  query onto the wrong block early (each query on either named block at random, or both on the moved
  block) and, the softmax being saturated, never recover: those runs end at 16-18% on block2block. More
  queries and bounded (cosine) scores did not remove the failure (docs/tabletop.md, "Which block the
  instruction names").
- 'names': each object's name words (on the tabletop its colour and shape) are compared with the
  instruction's words, laid out from the start and from the end; a query is a weight per layout position,
  and an object's score is the sum of the weights of the positions its name words fill. The query then
  only has to learn where a role's name stands ("push the _ _ to ..." / "... the _ _" at the end), the
  same for every block, instead of eight blocks' names separately. A query cannot take an object an
  earlier query took. A word the vocabulary lacks (token 1) matches an object whose name has one, so a
  never-seen object ("push the banana to ...") is still found. In 6 short runs on the 10% subset's size
  none missed a named block (docs/tabletop.md).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from siefm.models.text import from_both_ends

POSITION_SCALE = 10.0  # metres -> decimetres, so the selected positions are O(1) inputs
NAME_SCALE = 5.0  # name scores: lets Adam's ~lr-sized steps reach a decisive softmax within ~1,000 steps
EXCLUDE = 20.0  # name scores: logit penalty, per unit of weight, on objects earlier queries took


class ObjectSelector(nn.Module):
    """(B, S) states, (B, T) instruction codes (and, for name keys, the (B, L) word ids) -> (B, out_dim)
    features of the selected objects. `object_words` (objects, W) are the word ids of each object's name
    (0 pads): given, queries score names ('names'), else learned slot keys ('slots')."""

    def __init__(
        self,
        num_objects: int,
        prefix_dim: int,
        object_dim: int,
        text_dim: int,
        num_roles: int = 2,
        key_dim: int = 16,
        scores: str = "dot",
        object_words: torch.Tensor | None = None,
        max_words: int | None = None,
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
        self.keys: nn.Parameter | None = None
        if object_words is None:
            self.keys = nn.Parameter(torch.randn(num_objects, key_dim) / math.sqrt(key_dim))
            self.queries = nn.Linear(text_dim, num_roles * key_dim)
            return
        if object_words.shape[0] != num_objects or max_words is None or scores != "dot":
            raise ValueError(
                f"name keys need one name per object ({object_words.shape[0]} for {num_objects}), "
                "the instructions' max_words and dot scores."
            )
        # Not saved with the weights: the names come from the spec, so a board whose objects are renamed
        # (the banana) is used by setting the spec's names (see EFM.use_object_names).
        self.register_buffer("object_words", object_words, persistent=False)
        self.positions = 2 * max_words  # the words from the start, then aligned to the end
        # Choice: a query is its position weights alone, the same for every instruction. A per-instruction
        # term from the encoded text (tried first) let the queries learn which block each instruction
        # names one instruction at a time again, and 3 of 6 short runs locked onto the wrong blocks as
        # slot keys do; with the shared weights alone none of 6 did (docs/tabletop.md).
        self.position_weights = nn.Parameter(torch.zeros(num_roles, self.positions))

    @property
    def out_dim(self) -> int:
        return self.num_roles * (self.object_dim + 2) + 2 * len(self.pairs)

    def weights(self, text: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, roles, objects) attention of each query over the objects (`ids`: the word ids, name keys)."""
        if self.keys is not None:
            return self._slot_weights(text)
        if ids is None:
            raise ValueError("a selector with name keys needs the instruction's word ids.")
        return self._name_weights(ids)

    def _name_weights(self, ids: torch.Tensor) -> torch.Tensor:
        filled = self.name_words(from_both_ends(ids)).float()  # (B, P, objects)
        logits = NAME_SCALE * self.position_weights @ filled  # (B, roles, objects)
        # Choice: the queries name different objects. Each query's logits lose EXCLUDE times the weight the
        # earlier queries put on an object, so the second cannot settle on the first's object, and on
        # block2block falls at once to the other fully named block. Without this (and with a text term in
        # the queries), one of six short Stage 1 runs had both queries on the moved block. The penalty
        # passes no gradient back to the earlier queries: with it, a later query's pull towards a block
        # came back 20x as a push on the earlier query to leave that block, and in an 80% run the first
        # query ended on no named block at all (docs/tabletop.md).
        taken = torch.zeros_like(logits[:, 0])
        roles = []
        for role in range(self.num_roles):
            roles.append(torch.softmax(logits[:, role] - EXCLUDE * taken, dim=-1))
            taken = taken + roles[-1].detach()
        return torch.stack(roles, dim=1)

    def name_words(self, layout: torch.Tensor) -> torch.Tensor:
        """(B, P, objects) bool: whether the word at each position of `layout` (B, P) is a word of each
        object's name (padding, id 0, is none). Looked up in a table of word id -> objects: comparing
        every position with every name word made a (B, P, objects, W) tensor and took a fifth of a
        tabletop Stage 1 step."""
        names = self.object_words  # (objects, W)
        size = max(int(layout.max()) if layout.numel() else 0, int(names.max())) + 1
        table = torch.zeros(size, self.num_objects, dtype=torch.bool, device=layout.device)
        table[names, torch.arange(self.num_objects, device=names.device)[:, None].expand_as(names)] = True
        table[0] = False
        return table[layout]

    def _slot_weights(self, text: torch.Tensor) -> torch.Tensor:
        queries = self.queries(text).view(-1, self.num_roles, self.key_dim)
        if self.scores == "cosine":
            # Unit vectors and a fixed scale bound every logit to [-5, 5], so the softmax cannot saturate
            # past e^10 : 1 and a query on the wrong block still gets a gradient.
            cosines = nn.functional.normalize(queries, dim=-1) @ nn.functional.normalize(self.keys, dim=-1).T
            return torch.softmax(5.0 * cosines, dim=-1)
        return torch.softmax(queries @ self.keys.T / math.sqrt(self.key_dim), dim=-1)

    def forward(
        self,
        state: torch.Tensor,
        text: torch.Tensor,
        ids: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The selected objects' features; `weights`, if given, are `self.weights(text, ids)` computed
        before (they depend on the instruction alone)."""
        objects = state[:, self.prefix_dim :].view(-1, self.num_objects, self.object_dim)
        if weights is None:
            weights = self.weights(text, ids)
        selected = weights @ objects  # (B, roles, object_dim)
        positions = selected[..., :2] * POSITION_SCALE
        to_pusher = positions - state[:, None, :2] * POSITION_SCALE
        features = [selected[..., 2:].flatten(1), positions.flatten(1), to_pusher.flatten(1)]
        features += [positions[:, i] - positions[:, j] for i, j in self.pairs]
        return torch.cat(features, dim=-1)
