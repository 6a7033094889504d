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
    def log_prob(self, action: torch.Tensor, bounds: Bounds | None = None) -> torch.Tensor: ...  # -> (B,)


Bounds = tuple[torch.Tensor, torch.Tensor]  # (low, high) env-unit action bounds the simulator clips to


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

    def log_prob(self, action: torch.Tensor, bounds: Bounds | None = None) -> torch.Tensor:
        """The density of the z-scored action: it differs from the env-unit density by a constant, which
        changes neither the BC optimum nor the REINFORCE gradient.

        With `bounds`, the likelihood of the action a simulator executes when it clips the sampled one (a
        clipped Gaussian): an action at a bound scores the probability of every sample at or past it.
        Its gradient vanishes as the mean moves past the bound, so returns cannot drive the mean off
        without limit, as the plain density lets them (siefm.improve.rollout, "Executed actions")."""
        z = (action - self.action_mean) / self.action_std
        if bounds is None:
            return self.normal.log_prob(z).sum(-1)
        at_low, at_high = action <= bounds[0], action >= bounds[1]
        inside = ~(at_low | at_high)
        low, high = ((bound - self.action_mean) / self.action_std for bound in bounds)
        mean, scale = self.normal.loc, self.normal.scale
        # Each branch is computed only where it is taken (the others see a harmless 0), so the gradient of
        # an unused branch cannot turn into 0 * inf = nan.
        density = self.normal.log_prob(torch.where(inside, z, mean))
        below = torch.special.log_ndtr(torch.where(at_low, (low - mean) / scale, 0.0))  # log P(sample <= low)
        above = torch.special.log_ndtr(torch.where(at_high, (mean - high) / scale, 0.0))  # log P(>= high)
        return torch.where(at_low, below, torch.where(at_high, above, density)).sum(-1)


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

    def log_prob(self, action: torch.Tensor, bounds: Bounds | None = None) -> torch.Tensor:
        """The log-probability of each number's token, summed. With `bounds`, of the action the simulator
        executes: a number at a bound scores every token at or past it (a clipped categorical), as the
        Gaussian head does. Without that, tokens past a bound, which the data can hold (Aloha's
        demonstrator commands its grippers to 0 and 1, outside the 0.065-0.975 the fingers reach), are
        scored as the one at the bound, which the policy never picks: one clipped gripper then weighed
        hundreds of nats and its gradient swamped the rest."""
        log_probs = torch.log_softmax(self.logits, -1)  # (B, A, K)
        index = self.bins.to_index(self._to_unit(action))  # (B, A)
        chosen = torch.zeros_like(log_probs, dtype=torch.bool).scatter_(-1, index.unsqueeze(-1), True)
        if bounds is not None:
            unit = self.bins.centres().to(self.logits.device)  # (K,)
            low, high = self.action_min.unsqueeze(-1), self.action_max.unsqueeze(-1)
            values = ((unit + 1) / 2 * (high - low) + low).expand(log_probs.shape)  # each token's action
            for at, past in (
                (action <= bounds[0], values <= bounds[0].unsqueeze(-1)),
                (action >= bounds[1], values >= bounds[1].unsqueeze(-1)),
            ):
                clipped = at.unsqueeze(-1) & past.any(-1, keepdim=True)  # a token past the bound was drawn
                chosen = torch.where(clipped, past, chosen)
        return torch.logsumexp(log_probs.masked_fill(~chosen, float("-inf")), -1).sum(-1)


class GaussianActionHead(nn.Module):
    """Linear layer -> mean and scale = softplus(.) + min_scale, per action dimension, at most max_scale
    (0 or None: no ceiling)."""

    def __init__(
        self,
        hidden_dim: int,
        action_dim: int,
        stats: dict[str, torch.Tensor],
        min_scale: float,
        max_scale: float | None = None,
    ):
        super().__init__()
        self.linear = nn.Linear(hidden_dim, 2 * action_dim)
        self.min_scale, self.max_scale = min_scale, max_scale or None
        self.register_buffer("action_mean", stats["mean"].clone())
        self.register_buffer("action_std", stats["std"].clone())

    def forward(self, features: torch.Tensor, offset: torch.Tensor | None = None) -> GaussianActions:
        """`offset` (B, A): what the actions are predicted relative to (their statistics are of the change
        from it); None: absolute actions."""
        mean, raw_scale = self.linear(features).chunk(2, dim=-1)
        action_mean = self.action_mean if offset is None else self.action_mean + offset
        scale = F.softplus(raw_scale) + self.min_scale
        if self.max_scale:
            scale = scale.clamp(max=self.max_scale)
        return GaussianActions(mean, scale, action_mean, self.action_std)


class TokenActionHead(nn.Module):
    """Linear layer -> `num_bins` logits per action dimension."""

    def __init__(self, hidden_dim: int, action_dim: int, stats: dict[str, torch.Tensor], num_bins: int):
        super().__init__()
        self.linear = nn.Linear(hidden_dim, action_dim * num_bins)
        self.bins = UniformBins(num_bins, -1.0, 1.0)
        self.register_buffer("action_min", stats["min"].clone())
        # Guard against a constant action dimension (max == min) so the unit mapping stays finite.
        self.register_buffer("action_max", torch.maximum(stats["max"], stats["min"] + 1e-8).clone())

    def forward(self, features: torch.Tensor, offset: torch.Tensor | None = None) -> TokenActions:
        """`offset`: (B, A) what each action is predicted relative to (the bins span the data's changes
        from it, moved there); None: absolute actions."""
        logits = self.linear(features).unflatten(-1, (-1, self.bins.num_bins))
        if offset is None:
            return TokenActions(logits, self.bins, self.action_min, self.action_max)
        return TokenActions(logits, self.bins, self.action_min + offset, self.action_max + offset)


def action_head(config: ModelConfig, action_dim: int, stats: dict[str, torch.Tensor]) -> nn.Module:
    """The action head `config.action_head` names, on the towers' `hidden_dim` features."""
    if config.action_head == "gaussian":
        return GaussianActionHead(config.hidden_dim, action_dim, stats, config.min_scale, config.max_scale)
    return TokenActionHead(config.hidden_dim, action_dim, stats, config.action_bins)
