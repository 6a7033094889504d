"""The embodied foundation model (EFM) for vector observations: encoder -> two towers -> two heads.

One module holds both outputs the paper trains in Stage 1: the action distribution (BC) and the
categorical steps-to-go prediction, whose expectation is the distance d(o, g) (PAPER.md §3). As in the
published PointMass notebook the two outputs use separate MLP towers over the same z-scored input
(position, velocity, goal), so Stage 2 can update the policy while a frozen copy supplies rewards.
Normalisation statistics are buffers, so they are saved and loaded with the weights.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from siefm.config import ModelConfig
from siefm.models.bins import UniformBins, steps_to_go_bins
from siefm.models.heads import ActionDistribution, GaussianActionHead, TokenActionHead

Stats = Mapping[str, Mapping[str, torch.Tensor]]  # feature ("state", "goal", "action") -> mean/std/min/max


@dataclass(frozen=True)
class ModelSpec:
    """Sizes the data fixes for the model: checked against an env before a checkpoint is used on it."""

    state_dim: int
    goal_dim: int
    action_dim: int


@dataclass
class EFMOutput:
    actions: ActionDistribution
    steps_to_go_logits: torch.Tensor  # (B, K)


def mlp(in_dim: int, hidden_dim: int, num_layers: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(num_layers):
        layers += [nn.Linear(in_dim if i == 0 else hidden_dim, hidden_dim), nn.ReLU()]
    return nn.Sequential(*layers)


class EFM(nn.Module):
    """Goal-conditioned policy + steps-to-go model. Observations are {"state": (B, S)}, goals (B, G)."""

    def __init__(self, config: ModelConfig, spec: ModelSpec, stats: Stats):
        super().__init__()
        self.config, self.spec = config, spec
        self.register_buffer("input_mean", torch.cat([stats["state"]["mean"], stats["goal"]["mean"]]))
        self.register_buffer("input_std", torch.cat([stats["state"]["std"], stats["goal"]["std"]]))
        in_dim = spec.state_dim + spec.goal_dim
        self.policy_tower = mlp(in_dim, config.hidden_dim, config.num_layers)
        if config.action_head == "gaussian":
            self.action_head: nn.Module = GaussianActionHead(
                config.hidden_dim, spec.action_dim, stats["action"], config.min_scale
            )
        else:
            self.action_head = TokenActionHead(
                config.hidden_dim, spec.action_dim, stats["action"], config.action_bins
            )
        self.steps_to_go_tower = mlp(in_dim, config.hidden_dim, config.num_layers)
        self.steps_to_go_head = nn.Linear(config.hidden_dim, config.steps_to_go_bins)

    @property
    def steps_to_go_bins(self) -> UniformBins:
        return steps_to_go_bins(self.config.steps_to_go_bins, self.config.steps_to_go_max)

    def _inputs(self, obs: Mapping[str, torch.Tensor], goal: torch.Tensor) -> torch.Tensor:
        return (torch.cat([obs["state"], goal], dim=-1) - self.input_mean) / self.input_std

    def action_distribution(self, obs: Mapping[str, torch.Tensor], goal: torch.Tensor) -> ActionDistribution:
        return self.action_head(self.policy_tower(self._inputs(obs, goal)))

    def steps_to_go_logits(self, obs: Mapping[str, torch.Tensor], goal: torch.Tensor) -> torch.Tensor:
        return self.steps_to_go_head(self.steps_to_go_tower(self._inputs(obs, goal)))

    def forward(self, obs: Mapping[str, torch.Tensor], goal: torch.Tensor) -> EFMOutput:
        return EFMOutput(self.action_distribution(obs, goal), self.steps_to_go_logits(obs, goal))

    def act(
        self,
        obs: Mapping[str, torch.Tensor],
        goal: torch.Tensor,
        *,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions (B, A) in env units and their log-probabilities (B,)."""
        dist = self.action_distribution(obs, goal)
        action = dist.mode() if deterministic else dist.sample(generator)
        return action, dist.log_prob(action)

    def log_prob(
        self, obs: Mapping[str, torch.Tensor], goal: torch.Tensor, action: torch.Tensor
    ) -> torch.Tensor:
        """log pi(a | o, g) of env-unit actions (B, A) -> (B,)."""
        return self.action_distribution(obs, goal).log_prob(action)

    def steps_to_go(self, obs: Mapping[str, torch.Tensor], goal: torch.Tensor) -> torch.Tensor:
        """d(o, g): expected steps-to-go under the categorical prediction, (B,)."""
        return self.steps_to_go_bins.expectation(self.steps_to_go_logits(obs, goal))

    def policy_parameters(self) -> Iterator[nn.Parameter]:
        """What Stage 2 trains: the action tower and head (the policy never uses its steps-to-go tower)."""
        yield from self.policy_tower.parameters()
        yield from self.action_head.parameters()
