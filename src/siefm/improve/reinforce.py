"""Monte-Carlo returns and the REINFORCE loss of the paper's Algorithm 1.

See docs/method.md, "Stage 2: Algorithm 1". No value network, advantage normalisation, entropy bonus, KL
penalty or clipping: the telescoping of r_t = d_t - d_{t+1} already gives the return a built-in baseline
(docs/method.md, "Reward and success detector").
"""

from __future__ import annotations

import torch


def discounted_returns(rewards: torch.Tensor, dones: torch.Tensor, gamma: float) -> torch.Tensor:
    """R_t = sum_{i >= t} gamma^(i - t) r_i within each episode, with no bootstrapping.

    Args:
        rewards: (T, N) rewards of N parallel streams; a stream may hold several episodes back to back.
        dones: (T, N) true where an episode ends at step t, so nothing after it flows back.
        gamma: discount in [0, 1].

    Returns:
        (T, N) returns.
    """
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    not_done = 1.0 - dones.to(rewards.dtype)
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running * not_done[t]
        returns[t] = running
    return returns


def reinforce_loss(
    log_probs: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, scale: float
) -> torch.Tensor:
    """-c * R_t * log pi(a_t | o_t, g), averaged over the samples where `mask` is true. Shapes (B,)."""
    mask = mask.to(log_probs.dtype)
    return -(scale * returns.detach() * log_probs * mask).sum() / mask.sum().clamp(min=1.0)
