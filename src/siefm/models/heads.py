"""Action heads (Gaussian, or tokenized RT-2 style) and the steps-to-go head.

Action heads own the action normalisation statistics, so their distributions take and return actions in
env units: a rollout stores exactly what it sent to the env, and REINFORCE re-scores that same action.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from siefm.config import ModelConfig
from siefm.models.bins import UniformBins


class ActionDistribution(Protocol):
    """What a policy head returns: sampling, a deterministic action and log-likelihoods, in env units."""

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor: ...  # (B, A)
    def mode(self) -> torch.Tensor: ...  # (B, A)
    def log_prob(self, action: torch.Tensor) -> torch.Tensor: ...  # (B, A) -> (B,)


class GaussianActions:
    """Diagonal Gaussian over z-scored actions (the notebook's head)."""

    def __init__(
        self, mean: torch.Tensor, scale: torch.Tensor, action_mean: torch.Tensor, action_std: torch.Tensor
    ):
        self.normal = torch.distributions.Normal(mean, scale)  # in z-scored units, (B, A)
        self.action_mean, self.action_std = action_mean, action_std

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.normal.loc.shape, generator=generator, device=self.normal.loc.device)
        return (self.normal.loc + self.normal.scale * noise) * self.action_std + self.action_mean

    def mode(self) -> torch.Tensor:
        return self.normal.loc * self.action_std + self.action_mean

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        # The density of the z-scored action: it differs from the env-unit density by a constant, which
        # changes neither the BC optimum nor the REINFORCE gradient.
        return self.normal.log_prob((action - self.action_mean) / self.action_std).sum(-1)


class TokenActions:
    """One categorical token per action dimension over uniform bins between the data's min and max."""

    def __init__(
        self, logits: torch.Tensor, bins: UniformBins, action_min: torch.Tensor, action_max: torch.Tensor
    ):
        self.logits = logits  # (B, A, K)
        self.bins, self.action_min, self.action_max = bins, action_min, action_max

    def _to_unit(self, action: torch.Tensor) -> torch.Tensor:
        return 2 * (action - self.action_min) / (self.action_max - self.action_min) - 1

    def _from_index(self, index: torch.Tensor) -> torch.Tensor:
        unit = self.bins.centres().to(self.logits.device)[index]
        return (unit + 1) / 2 * (self.action_max - self.action_min) + self.action_min

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        probs = torch.softmax(self.logits, -1).flatten(0, 1)  # (B*A, K)
        index = torch.multinomial(probs, 1, generator=generator).view(self.logits.shape[:-1])
        return self._from_index(index)

    def mode(self) -> torch.Tensor:
        return self._from_index(self.logits.argmax(-1))

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        index = self.bins.to_index(self._to_unit(action))  # (B, A)
        log_probs = torch.log_softmax(self.logits, -1).gather(-1, index.unsqueeze(-1)).squeeze(-1)
        return log_probs.sum(-1)


class GaussianActionHead(nn.Module):
    """Linear layer -> mean and scale = softplus(.) + min_scale, per action dimension."""

    def __init__(self, hidden_dim: int, action_dim: int, stats: dict[str, torch.Tensor], min_scale: float):
        super().__init__()
        self.linear = nn.Linear(hidden_dim, 2 * action_dim)
        self.min_scale = min_scale
        self.register_buffer("action_mean", stats["mean"].clone())
        self.register_buffer("action_std", stats["std"].clone())

    def forward(self, features: torch.Tensor) -> GaussianActions:
        mean, raw_scale = self.linear(features).chunk(2, dim=-1)
        return GaussianActions(
            mean, F.softplus(raw_scale) + self.min_scale, self.action_mean, self.action_std
        )


class TokenActionHead(nn.Module):
    """Linear layer -> `num_bins` logits per action dimension."""

    def __init__(self, hidden_dim: int, action_dim: int, stats: dict[str, torch.Tensor], num_bins: int):
        super().__init__()
        self.linear = nn.Linear(hidden_dim, action_dim * num_bins)
        self.bins = UniformBins(num_bins, -1.0, 1.0)
        self.register_buffer("action_min", stats["min"].clone())
        # Guard against a constant action dimension (max == min) so the unit mapping stays finite.
        self.register_buffer("action_max", torch.maximum(stats["max"], stats["min"] + 1e-8).clone())

    def forward(self, features: torch.Tensor) -> TokenActions:
        logits = self.linear(features).unflatten(-1, (-1, self.bins.num_bins))
        return TokenActions(logits, self.bins, self.action_min, self.action_max)


def action_head(config: ModelConfig, action_dim: int, stats: dict[str, torch.Tensor]) -> nn.Module:
    """The action head `config.action_head` names, on the towers' `hidden_dim` features."""
    if config.action_head == "gaussian":
        return GaussianActionHead(config.hidden_dim, action_dim, stats, config.min_scale)
    return TokenActionHead(config.hidden_dim, action_dim, stats, config.action_bins)
