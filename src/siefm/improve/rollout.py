"""Practice rollouts of Stage 2 (the data-collection half of the paper's Algorithm 1).

The fleet plays whole episodes with the current, sampled policy. Every new observation is scored by the
frozen reward model; an episode ends when the detector fires (d <= s), at the time limit, or, if asked, on
the simulator's true success (the notebook's variant). Every robot starts an episode; a robot that
finishes one starts another only while the samples played plus those the episodes under way are expected
to add fall short of N x B (`robots_to_start`). Episodes under way always run to their end, so every
episode in the buffer is complete and its Monte-Carlo returns need no bootstrapping. For the same reason
an episode's rewards and returns are final the moment it ends: an `episode_sink` receives each one then (to
stream it to disk), as a one-episode PracticeBatch.

Executed actions: where the domain's simulator clips actions (`Domain.action_bounds`), the robots act
with, and the buffer holds, the clipped action, and REINFORCE scores it under the clipped policy. Scored
as sampled, a Gaussian policy's mean could wander past the bound, where every sample has the same effect
and no return tells them apart; on PointMass it went 20 to 70 action-stds out within a few iterations
and success fell from 100% to 5% (docs/method.md, "The action REINFORCE scores").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from siefm.domains.base import ActionBounds
from siefm.improve.fleet import Fleet, Observations
from siefm.improve.reinforce import discounted_returns
from siefm.improve.reward import RewardModel, precision_recall
from siefm.models.efm import EFMBase, EncodedGoal, GoalInput
from siefm.models.heads import Bounds


class EpisodeEnd(NamedTuple):
    """How one practice episode ended."""

    length: int
    ever_true: bool  # the simulator reported success at some step
    detected: bool  # the detector fired on the last observation
    last_state: np.ndarray
    last_distance: float  # d at the last observation
    goal: np.ndarray | str  # the episode's raw goal: a vector, or the instruction
    fault: bool = False  # the simulator raised on the last step (the episode ends as a failure)


@dataclass
class PracticeBatch:
    """One iteration's on-policy buffer (flat over samples) and its episode outcomes.

    Samples are (o_t, a_t) of complete episodes, in step order; `episode_id` says which episode each belongs
    to, and the per-episode arrays are indexed by that id.
    """

    state: torch.Tensor  # (M, S)
    goal: torch.Tensor  # (M, ...): the policy's goal input (vectors, word ids, or frozen token states)
    action: torch.Tensor  # (M, A)
    returns: torch.Tensor  # (M,)
    rewards: torch.Tensor  # (M,)
    distance: torch.Tensor  # (M,) d(o_t, g) from the frozen reward model
    next_true_success: np.ndarray  # (M,) the simulator's success at o_{t+1}
    episode_id: np.ndarray  # (M,)
    episode_length: np.ndarray  # (E,)
    true_success: np.ndarray  # (E,) the simulator reported success at some step of the episode
    detected_success: np.ndarray  # (E,) the detector fired on the episode's last observation
    final_state: np.ndarray  # (E, S) the episode's last observation, where it ended
    final_distance: np.ndarray  # (E,) d at that observation
    episode_goal: list  # (E,) raw goals: vectors, or instruction strings
    detector_counts: dict[str, int]  # frame-level true/false positives and false negatives of d <= s
    features: torch.Tensor | None = None  # (M, 2, C, h, w) a pixel policy's frozen frame features
    fault: np.ndarray | None = None  # (E,) the episode ended because its simulator raised (None: none did)

    @property
    def num_samples(self) -> int:
        return self.state.shape[0]

    def faults(self) -> np.ndarray:
        """(E,) which episodes ended because their simulator raised."""
        return np.zeros(len(self.episode_length), dtype=bool) if self.fault is None else self.fault

    def policy_inputs(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """The policy's observation input of samples `index`, as it acted on them (frozen features reused,
        so updates do not run the vision encoder again)."""
        inputs = {"state": self.state[index]}
        if self.features is not None:
            inputs["features"] = self.features[index]
        return inputs

    @classmethod
    def concat(cls, batches: list[PracticeBatch]) -> PracticeBatch:
        """One batch of several (e.g. from the fleet's actors); episode ids are renumbered to stay unique."""
        offsets = np.cumsum([0] + [len(b.episode_length) for b in batches[:-1]])
        merged: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            values = [getattr(b, name) for b in batches]
            if name == "episode_id":
                merged[name] = np.concatenate([v + o for v, o in zip(values, offsets, strict=True)])
            elif name == "detector_counts":
                merged[name] = {key: sum(v[key] for v in values) for key in values[0]}
            elif name == "episode_goal":
                merged[name] = [goal for v in values for goal in v]
            elif name == "fault":
                merged[name] = np.concatenate([b.faults() for b in batches])
            elif values[0] is None:
                merged[name] = None
            elif isinstance(values[0], torch.Tensor):
                merged[name] = torch.cat(values)
            else:
                merged[name] = np.concatenate(values)
        return cls(**merged)

    def metrics(self) -> dict[str, float | int]:
        precision, recall = precision_recall(**self.detector_counts)
        return {
            "rollout/episodes": len(self.episode_length),
            "rollout/true_success": float(self.true_success.mean()),
            "rollout/detected_success": float(self.detected_success.mean()),
            "rollout/detector_precision": precision,
            "rollout/detector_recall": recall,
            **{f"rollout/detector_{key}": value for key, value in self.detector_counts.items()},
            "rollout/episode_length": float(self.episode_length.mean()),
            "rollout/faults": int(self.faults().sum()),
            "rollout/start_d": float(self.distance[_first_steps(self.episode_id)].mean()),
            "rollout/final_d": float(self.final_distance.mean()),
            "rollout/reward_mean": float(self.rewards.mean()),
            "rollout/return_mean": float(self.returns.mean()),
        }


def _first_steps(episode_id: np.ndarray) -> torch.Tensor:
    _, first = np.unique(episode_id, return_index=True)
    return torch.from_numpy(first)


def _observation(
    obs: Observations, model: EFMBase, rows: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """A model's observation input from fleet observations (frozen encodings computed here once), of the
    robots `rows` (None: all)."""
    inputs = {key: torch.from_numpy(obs[key]) for key in ("state", "pixels") if key in obs}
    return model.frozen_inputs(
        inputs if rows is None else {key: value[rows] for key, value in inputs.items()}
    )


def _all_robots(values: torch.Tensor, rows: torch.Tensor | None, num_envs: int) -> torch.Tensor:
    """(N, ...) from the (R, ...) `values` of robots `rows`, zero for the others (None: `values` is all)."""
    if rows is None:
        return values
    full = values.new_zeros((num_envs, *values.shape[1:]))
    full[rows] = values
    return full


class RobotGoals:
    """One model's goal input for every robot (`input`, what the buffer stores) and its encoding
    (`encoded`, what the model reads). Goals change only when a robot starts an episode, and the weights
    not at all while the fleet plays, so both are made then, for those robots, not at every step: on the
    tabletop that cut the rollout's inference time per sample by about a third (docs/fleet.md)."""

    def __init__(self, model: EFMBase, raw_goals: np.ndarray):
        self.model = model
        self.input = model.goal_input(raw_goals)
        self.encoded = model.encode_goal(self.input)

    def restart(self, robots: np.ndarray, raw_goals: np.ndarray) -> None:
        """New goals for `robots`. The tensors are replaced, not written to, so the step records already
        taken keep the goals they were played with."""
        new_input = self.model.goal_input(raw_goals)
        self.input = _with_rows(self.input, robots, new_input)
        self.encoded = _with_rows(self.encoded, robots, self.model.encode_goal(new_input))

    def rows(self, robots: np.ndarray | torch.Tensor | None) -> GoalInput:
        """The encoded goals of `robots` (None: all)."""
        if robots is None:
            return self.encoded
        return self.encoded.rows(robots) if isinstance(self.encoded, EncodedGoal) else self.encoded[robots]


def _with_rows(table: GoalInput, rows: np.ndarray, values: GoalInput) -> GoalInput:
    """A copy of `table` (a tensor, or each tensor of an EncodedGoal) with `rows` set to `values`."""
    if isinstance(table, EncodedGoal):
        return EncodedGoal({name: _with_rows(value, rows, values[name]) for name, value in table.items()})
    table = table.clone()
    table[torch.from_numpy(rows)] = values
    return table


EpisodeSink = Callable[["PracticeBatch"], None]  # receives complete episodes as a PracticeBatch


def collect_practice(
    fleet: Fleet,
    policy: EFMBase,
    reward_model: RewardModel,
    *,
    episode_sink: EpisodeSink | None = None,
    **options: Any,
) -> PracticeBatch:
    """Plays complete episodes until they hold at least `num_samples` samples; labels rewards and returns.
    `options` are `practice_episodes`' (num_samples, max_episode_steps, gamma, ...).

    `episode_sink`, if given, is called with each episode as a one-episode batch when it ends (robots that
    end on the same step in robot order), so it sees the episodes in the order they end; the returned
    batch holds them in the order they started.
    """
    episodes = practice_episodes(fleet, policy, reward_model, stream=episode_sink is not None, **options)
    while True:
        try:
            episode = next(episodes)
        except StopIteration as finished:
            return finished.value
        episode_sink(episode)


@torch.no_grad()
def practice_episodes(
    fleet: Fleet,
    policy: EFMBase,
    reward_model: RewardModel,
    *,
    num_samples: int,
    max_episode_steps: int,
    gamma: float,
    end_on_true_success: bool = False,
    success_bonus: float = 0.0,
    generator: torch.Generator | None = None,
    stream: bool = True,
    whole_buffer: bool = True,
    action_bounds: ActionBounds | None = None,
) -> Generator[PracticeBatch, None, PracticeBatch | None]:
    """`collect_practice` as a generator (what a Ray actor streams): it yields each episode as a
    one-episode batch when it ends, if `stream`, and returns the whole buffer (None if not
    `whole_buffer`, for a caller that keeps the streamed episodes). `action_bounds`, the domain's
    (`Domain.action_bounds`), clip the sampled actions: the robots execute, and the buffer holds, the
    clipped action, which Stage 2 then scores under the clipped policy (`EFMBase.log_prob`)."""
    num_envs = fleet.num_envs
    bounds = bound_tensors(action_bounds)
    obs = fleet.reset()
    policy_goals, reward_goals = RobotGoals(policy, obs["goal"]), RobotGoals(reward_model.model, obs["goal"])
    d = reward_model.distance(_observation(obs, reward_model.model), reward_goals.encoded)
    episode = np.arange(num_envs)  # the id of the episode each robot is playing
    next_episode = num_envs
    steps = np.zeros(num_envs, dtype=np.int64)
    active = np.ones(num_envs, dtype=bool)
    ever_true = np.zeros(num_envs, dtype=bool)
    samples_started = 0
    counts = {"true_positives": 0, "false_positives": 0, "false_negatives": 0}
    robot_counts = np.zeros((len(counts), num_envs), dtype=np.int64)  # the same, for each robot's episode
    columns: dict[str, list] = {
        key: [] for key in ("state", "goal", "action", "reward", "d", "next_true", "episode", "valid", "done")
    }
    if "pixels" in obs and policy.reads_frames:
        columns["features"] = []
    ends: dict[int, EpisodeEnd] = {}
    lengths: list[int] = []  # of the episodes ended so far
    while active.any():
        # The models run on the robots playing an episode only: near the end of an iteration, when a few
        # long episodes are still under way, a step costs what those few robots cost (docs/fleet.md).
        rows = None if active.all() else torch.from_numpy(np.flatnonzero(active))
        obs_t = _observation(obs, policy, rows)
        action, _ = policy.act(obs_t, policy_goals.rows(rows), generator=generator)
        if bounds is not None:  # the action the robot executes is the one stored and scored
            action = torch.clamp(action, *bounds)
        action = _all_robots(action, rows, num_envs)
        next_obs, true_success = fleet.step(action.numpy().astype(np.float64), active)
        d_next = d.clone()  # idle robots keep their last d (masked out below)
        scored = _observation(next_obs, reward_model.model, rows)
        d_next[slice(None) if rows is None else rows] = reward_model.distance(scored, reward_goals.rows(rows))
        detected = reward_model.is_success(d_next).numpy() & active
        steps += active
        samples_started += int(active.sum())
        ever_true |= true_success & active
        frame_counts = np.stack(
            [
                detected & true_success & active,
                detected & ~true_success & active,
                ~detected & true_success & active,
            ]
        )  # (3, N) in the order of `counts`
        for key, count in zip(counts, frame_counts.sum(axis=1), strict=True):
            counts[key] += int(count)
        robot_counts += frame_counts
        fault = next_obs.get("fault", np.zeros(num_envs, dtype=bool))
        ended = (true_success if end_on_true_success else detected) | (steps >= max_episode_steps) | fault
        done = ended & active
        reward = d - d_next  # r_t = d_t - d_{t+1}, plus the simulator's bonus where asked for
        reward = (reward + success_bonus * torch.from_numpy(true_success)) * torch.from_numpy(active)
        step_record = {
            "state": torch.from_numpy(obs["state"]),
            "goal": policy_goals.input,
            "action": action,
            "reward": reward,
            "d": d,
            "next_true": torch.from_numpy(true_success),
            "episode": torch.from_numpy(episode.copy()),
            "valid": torch.from_numpy(active.copy()),
            "done": torch.from_numpy(done),
            "features": _all_robots(obs_t["features"], rows, num_envs) if "features" in columns else None,
        }
        for key in columns:
            columns[key].append(step_record[key])
        ids = np.flatnonzero(done)
        for i in ids:
            ends[int(episode[i])] = EpisodeEnd(
                steps[i],
                ever_true[i],
                detected[i],
                next_obs["state"][i].copy(),
                float(d_next[i]),
                np.copy(next_obs["goal"][i]) if next_obs["goal"].dtype != object else next_obs["goal"][i],
                bool(fault[i]),
            )
            if stream:
                end = ends[int(episode[i])]
                own_counts = {key: int(c) for key, c in zip(counts, robot_counts[:, i], strict=True)}
                yield _finished_episode(columns, i, end, own_counts, gamma)
        d = d_next.clone()
        active &= ~done
        lengths += steps[ids].tolist()
        # Checked only when an episode has ended: between ends the buffer's expected shortfall only shrinks.
        start = robots_to_start(active, samples_started, num_samples, lengths) if ids.size else ids
        if start.size:
            next_obs = fleet.reset(start)  # new episodes on idle robots
            started = {key: value[start] for key, value in next_obs.items()}
            policy_goals.restart(start, started["goal"])
            reward_goals.restart(start, started["goal"])
            started_obs = _observation(started, reward_model.model)
            d[start] = reward_model.distance(started_obs, reward_goals.rows(start))
            steps[start], ever_true[start], robot_counts[:, start], active[start] = 0, False, 0, True
            episode[start] = next_episode + np.arange(start.size)
            next_episode += start.size
        obs = next_obs
    if not whole_buffer:
        return None
    return _assemble({key: torch.stack(value) for key, value in columns.items()}, ends, counts, gamma)


def bound_tensors(action_bounds: ActionBounds | None) -> Bounds | None:
    """A domain's (low, high) action bounds as the float tensors the models take."""
    if action_bounds is None:
        return None
    low, high = (torch.as_tensor(bound).float() for bound in action_bounds)
    return low, high


def robots_to_start(active: np.ndarray, played: int, wanted: int, lengths: list[int]) -> np.ndarray:
    """The idle robots that start a new episode: as few as make the samples played plus those expected
    from the episodes under way reach `wanted`. Each episode under way, and each new one, is expected to
    add the mean length of those ended so far: an estimate that errs long for an episode already well
    under way, so the buffer tends to come out short rather than over, and when it does, idle robots
    start again. Starting robots while the samples played fall short, as before, left every robot's last
    episode to overshoot the buffer: with 16 PointMass robots, 16% of what was played went untrained on
    average, 42% at worst (docs/method.md, "Filling the buffer")."""
    idle = np.flatnonzero(~active)
    if not idle.size or played >= wanted or not lengths:
        return idle[:0]
    mean_length = float(np.mean(lengths))
    expected = played + mean_length * active.sum()
    return idle[: max(0, math.ceil((wanted - expected) / mean_length))]


def _finished_episode(
    columns: dict[str, list], robot: int, end: EpisodeEnd, counts: dict[str, int], gamma: float
) -> PracticeBatch:
    """The episode that `robot` has just ended, as a one-episode batch: its last `end.length` steps of the
    step table, assembled like the whole buffer (so its returns are the buffer's, bit for bit)."""
    steps = slice(len(columns["valid"]) - end.length, None)
    own = {key: _robot_column(value[steps], robot) for key, value in columns.items()}
    return _assemble(own, {int(own["episode"][0, 0]): end}, counts, gamma)


def _robot_column(steps: list[torch.Tensor], robot: int) -> torch.Tensor:
    """One robot's (T, 1, ...) part of a column's (N, ...) step records. Small rows: stack every robot's
    and slice, fewer operations; large rows (frame features, token states): slice each step, so the
    other robots' rows are not copied."""
    if steps[0][0].numel() <= 256:
        return torch.stack(steps)[:, robot : robot + 1]
    return torch.stack([step[robot : robot + 1] for step in steps])


def _assemble(
    stacked: dict[str, torch.Tensor], ends: dict[int, EpisodeEnd], counts: dict[str, int], gamma: float
) -> PracticeBatch:
    """From the (T, N) step table: computes returns and keeps the valid samples."""
    returns = discounted_returns(stacked["reward"], stacked["done"], gamma)  # (T, N)
    valid = stacked["valid"]
    # Renumber episodes 0..E-1 in the order they were started, so per-episode arrays index by id.
    started = np.unique(stacked["episode"][valid].numpy())
    renumber = {int(old): new for new, old in enumerate(started)}
    outcome = [ends[int(old)] for old in started]
    return PracticeBatch(
        state=stacked["state"][valid],
        goal=stacked["goal"][valid],
        action=stacked["action"][valid].float(),
        returns=returns[valid],
        rewards=stacked["reward"][valid],
        distance=stacked["d"][valid],
        next_true_success=stacked["next_true"][valid].numpy(),
        episode_id=np.array([renumber[int(e)] for e in stacked["episode"][valid].numpy()], dtype=np.int64),
        episode_length=np.array([o.length for o in outcome], dtype=np.int64),
        true_success=np.array([o.ever_true for o in outcome], dtype=bool),
        detected_success=np.array([o.detected for o in outcome], dtype=bool),
        final_state=np.stack([o.last_state for o in outcome]),
        final_distance=np.array([o.last_distance for o in outcome]),
        episode_goal=[o.goal for o in outcome],
        fault=np.array([o.fault for o in outcome], dtype=bool) if any(o.fault for o in outcome) else None,
        detector_counts=counts,
        features=stacked["features"][valid] if "features" in stacked else None,
    )
