"""Practice rollouts of Stage 2 (the data-collection half of the paper's Algorithm 1).

The fleet plays whole episodes with the current, sampled policy. Every new observation is scored by the
frozen reward model; an episode ends when the detector fires (d <= s), at the time limit, or, if asked, on
the simulator's true success (the notebook's variant). Robots keep starting new episodes until the
episodes started so far hold N x B samples; episodes under way then run to their end, so every episode in
the buffer is complete and its Monte-Carlo returns need no bootstrapping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from siefm.improve.fleet import LocalFleet
from siefm.improve.reinforce import discounted_returns
from siefm.improve.reward import RewardModel, detector_precision_recall
from siefm.models.efm import EFM


@dataclass
class PracticeBatch:
    """One iteration's on-policy buffer (flat over samples) and its episode outcomes."""

    state: torch.Tensor  # (M, S)
    goal: torch.Tensor  # (M, G)
    action: torch.Tensor  # (M, A)
    returns: torch.Tensor  # (M,)
    rewards: torch.Tensor  # (M,)
    episode_length: np.ndarray  # (E,)
    true_success: np.ndarray  # (E,) the simulator reported success at some step of the episode
    detected_success: np.ndarray  # (E,) the episode was ended by the learned detector
    final_distance: np.ndarray  # (E,) d at the episode's last observation

    @property
    def num_samples(self) -> int:
        return self.state.shape[0]

    def metrics(self) -> dict[str, float | int]:
        precision, recall = detector_precision_recall(self.detected_success, self.true_success)
        return {
            "rollout/episodes": len(self.episode_length),
            "rollout/true_success": float(self.true_success.mean()),
            "rollout/detected_success": float(self.detected_success.mean()),
            "rollout/detector_precision": precision,
            "rollout/detector_recall": recall,
            "rollout/detected_count": int(self.detected_success.sum()),
            "rollout/true_count": int(self.true_success.sum()),
            "rollout/detected_and_true": int((self.detected_success & self.true_success).sum()),
            "rollout/episode_length": float(self.episode_length.mean()),
            "rollout/final_d": float(self.final_distance.mean()),
            "rollout/reward_mean": float(self.rewards.mean()),
            "rollout/return_mean": float(self.returns.mean()),
        }


def _tensors(obs: dict[str, np.ndarray]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    return {"state": torch.from_numpy(obs["state"])}, torch.from_numpy(obs["goal"])


@torch.no_grad()
def collect_practice(
    fleet: LocalFleet,
    policy: EFM,
    reward_model: RewardModel,
    *,
    num_samples: int,
    max_episode_steps: int,
    gamma: float,
    end_on_true_success: bool = False,
    generator: torch.Generator | None = None,
) -> PracticeBatch:
    """Plays complete episodes until they hold at least `num_samples` samples; labels rewards and returns."""
    num_envs = fleet.num_envs
    obs = fleet.reset()
    d = reward_model.distance(*_tensors(obs))
    steps = np.zeros(num_envs, dtype=np.int64)
    active = np.ones(num_envs, dtype=bool)
    ever_true = np.zeros(num_envs, dtype=bool)
    samples_started = 0
    columns: dict[str, list] = {key: [] for key in ("state", "goal", "action", "reward", "valid", "done")}
    outcomes: dict[str, list] = {key: [] for key in ("length", "true", "detected", "final_d")}
    while active.any():
        obs_t, goal_t = _tensors(obs)
        action, _ = policy.act(obs_t, goal_t, generator=generator)
        next_obs, true_success = fleet.step(action.numpy().astype(np.float64))
        d_next = reward_model.distance(*_tensors(next_obs))
        detected = reward_model.is_success(d_next).numpy()
        steps += active
        samples_started += int(active.sum())
        ever_true |= true_success & active
        ended = (true_success if end_on_true_success else detected) | (steps >= max_episode_steps)
        done = ended & active
        reward = (d - d_next) * torch.from_numpy(active)  # r_t = d_t - d_{t+1}; zero for idle robots
        for key, value in (
            ("state", obs_t["state"]),
            ("goal", goal_t),
            ("action", action),
            ("reward", reward),
        ):
            columns[key].append(value)
        columns["valid"].append(torch.from_numpy(active.copy()))
        columns["done"].append(torch.from_numpy(done))
        ids = np.flatnonzero(done)
        for key, value in (("length", steps[ids]), ("true", ever_true[ids]), ("detected", detected[ids])):
            outcomes[key].append(value)
        outcomes["final_d"].append(d_next.numpy()[ids])
        d = d_next
        if ids.size and samples_started < num_samples:
            next_obs = fleet.reset(ids)  # new episodes on the robots that finished
            d[ids] = reward_model.distance(*_tensors({k: v[ids] for k, v in next_obs.items()}))
            steps[ids], ever_true[ids] = 0, False
        else:
            active &= ~done
        obs = next_obs
    return _assemble(columns, outcomes, gamma)


def _assemble(columns: dict[str, list], outcomes: dict[str, list], gamma: float) -> PracticeBatch:
    """Stacks the (T, N) step records, computes returns, and keeps the valid samples."""
    stacked = {key: torch.stack(value) for key, value in columns.items()}
    returns = discounted_returns(stacked["reward"], stacked["done"], gamma)  # (T, N)
    valid = stacked["valid"]
    return PracticeBatch(
        state=stacked["state"][valid],
        goal=stacked["goal"][valid],
        action=stacked["action"][valid].float(),
        returns=returns[valid],
        rewards=stacked["reward"][valid],
        episode_length=np.concatenate(outcomes["length"]),
        true_success=np.concatenate(outcomes["true"]),
        detected_success=np.concatenate(outcomes["detected"]),
        final_distance=np.concatenate(outcomes["final_d"]),
    )
