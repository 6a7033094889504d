"""Stage 1 (sft) and Stage 2 (improve) on a tiny dataset: outputs, frozen reward, practice buffers, resume."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_IMPROVE, TINY_MODEL, TINY_SFT, LearnerCrash, assert_same_practice
from torch.testing import assert_close

from siefm import sft as sft_module
from siefm.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from siefm.config import ImproveConfig, ModelConfig, SFTConfig, from_dict, to_dict
from siefm.data.dataset import DatasetError, read_dataset
from siefm.data.stream import finish_stream
from siefm.domains import get_domain
from siefm.domains.pointmass.demonstrator import pd_action
from siefm.domains.pointmass.env import PointMassConfig
from siefm.domains.pointmass.fleet import LocalFleet
from siefm.improve import rollout
from siefm.improve.practice_data import PracticeStream, discard_unfinished
from siefm.improve.reward import RewardModel
from siefm.improve.rollout import PracticeBatch, collect_practice
from siefm.improve.train import improve, reinforce_updates, resume_improve
from siefm.logging import read_metrics
from siefm.models.efm import EFM, ModelSpec
from siefm.sft import train_sft

ROLLOUT_KEYS = (
    "improve/iteration",
    "improve/env_steps",
    "improve/updates",
    "improve/loss",
    "rollout/episodes",
    "rollout/true_success",
    "rollout/detected_success",
    "rollout/detector_precision",
    "rollout/detector_recall",
    "rollout/episode_length",
    "rollout/final_d",
    "time/env_steps_per_second",
)
TIME_KEYS = {"time", "time/env_steps_per_second", "time/iteration_seconds"}


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def without_times(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in records]


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert_close(state_a[key], state_b[key], rtol=0, atol=0, msg=lambda m, key=key: f"{key}: {m}")


# --- Stage 1 ----------------------------------------------------------------------------------------------


def test_sft_writes_policy_and_reward_checkpoints(sft_run: Path, dataset_dir: Path) -> None:
    policy, policy_meta = load_checkpoint(sft_run / "checkpoints" / "policy")
    reward, reward_meta = load_checkpoint(sft_run / "checkpoints" / "reward")
    assert policy.config == reward.config == TINY_MODEL.resolve("siefm/PointMass-v0")
    assert (policy.spec.state_dim, policy.spec.goal_dim, policy.spec.action_dim) == (4, 2, 2)
    for meta in (policy_meta, reward_meta):
        assert meta["stage"] == "sft"
        assert meta["env"]["id"] == "siefm/PointMass-v0"
        assert PointMassConfig(**meta["env"]["config"]) == PointMassConfig()
        assert meta["train_episodes"] + meta["val_episodes"] == read_dataset(dataset_dir).num_episodes
    # The calibrated success threshold travels with the reward model.
    s = reward_meta["success_threshold"]
    assert isinstance(s, float) and 0 <= s <= 140
    calibration = reward_meta["calibration"]
    assert calibration["threshold"] == s
    assert calibration["method"].startswith("calibrated")
    assert {"precision", "recall", "frames", "positives"} <= set(calibration)
    assert 0 < calibration["positives"] <= calibration["frames"]
    assert calibration["positives"] == reward_meta["val_episodes"]  # one success frame per held-out episode
    assert "success_threshold" not in policy_meta
    config = json.loads((sft_run / "config.json").read_text())
    assert config["command"] == "sft" and config["sft"]["steps"] == 300
    summary = json.loads((sft_run / "sft_summary.json").read_text())
    assert summary["steps"] == 300 and summary["calibration"]["threshold"] == s


def test_sft_keeps_each_checkpoint_by_its_own_validation_loss(sft_run: Path) -> None:
    records = read_metrics(sft_run / "metrics.jsonl")
    assert [r["sft/step"] for r in records] == [50, 100, 150, 200, 250, 300]
    best_bc = min(records, key=lambda r: r["sft/val_bc_loss"])
    best_steps = min(records, key=lambda r: r["sft/val_steps_to_go_loss"])
    _, policy_meta = load_checkpoint(sft_run / "checkpoints" / "policy")
    _, reward_meta = load_checkpoint(sft_run / "checkpoints" / "reward")
    assert policy_meta["step"] == best_bc["sft/step"]
    assert policy_meta["val_bc_loss"] == pytest.approx(best_bc["sft/val_bc_loss"])
    assert reward_meta["step"] == best_steps["sft/step"]
    assert reward_meta["val_steps_to_go_loss"] == pytest.approx(best_steps["sft/val_steps_to_go_loss"])


def test_short_sft_lowers_both_validation_losses(sft_run: Path) -> None:
    records = read_metrics(sft_run / "metrics.jsonl")
    first, last = records[0], records[-1]
    assert last["sft/val_bc_loss"] < first["sft/val_bc_loss"] - 0.1
    assert last["sft/val_steps_to_go_loss"] < first["sft/val_steps_to_go_loss"] - 0.1


def test_sft_stops_when_validation_plateaus(dataset_dir: Path, tmp_path: Path) -> None:
    # Asking for a 1000% improvement over one validation: the second validation finds the plateau.
    config = dataclasses.replace(TINY_SFT, steps=300, eval_every=20, patience=1, min_improvement=10.0)
    run = train_sft(dataset_dir, tmp_path / "run", config)
    summary = json.loads((run / "sft_summary.json").read_text())
    assert summary["steps"] == 40 and summary["max_steps"] == 300
    assert [r["sft/step"] for r in read_metrics(run / "metrics.jsonl")] == [20, 40]
    _, meta = load_checkpoint(run / "checkpoints" / "reward")
    assert meta["step"] <= 40 and "success_threshold" in meta  # calibrated after the early stop
    # Without the rule, the same run goes on to its last step.
    longer = train_sft(dataset_dir, tmp_path / "all", dataclasses.replace(config, steps=60, patience=0))
    assert json.loads((longer / "sft_summary.json").read_text())["steps"] == 60


def test_sft_with_a_given_threshold_and_determinism(dataset_dir: Path, tmp_path: Path) -> None:
    config = SFTConfig(
        model=TINY_MODEL, steps=20, batch_size=64, eval_every=10, success_threshold=3.0, seed=1
    )
    a = train_sft(dataset_dir, tmp_path / "a", config)
    b = train_sft(dataset_dir, tmp_path / "b", config)
    _, meta = load_checkpoint(a / "checkpoints" / "reward")
    assert meta["success_threshold"] == 3.0
    assert meta["calibration"] == {"method": "given", "threshold": 3.0}
    for name in ("policy", "reward"):
        assert_same_weights(
            load_checkpoint(a / "checkpoints" / name)[0], load_checkpoint(b / "checkpoints" / name)[0]
        )


@pytest.mark.parametrize(
    ("selection", "reward_step", "value"),
    [(None, 10, 2.0), ("steps_to_go_loss", 10, 2.0), ("d_error_near_goal", 20, 1.5)],
)
def test_sft_selects_checkpoints_by_validation_loss_not_recency(
    dataset_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    selection: str | None,
    reward_step: int,
    value: float,
) -> None:
    # Scripted validation figures: the best BC loss comes at the 2nd evaluation, the best steps-to-go loss
    # at the 1st, the best d error at the 3rd and the best near-goal d error at the 2nd, so only one choice
    # is the latest checkpoint. PointMass (None) picks the reward checkpoint by the steps-to-go loss.
    scripted = iter([(3.0, 2.0, 9.0, 3.0), (1.0, 5.0, 8.0, 1.5), (2.0, 4.0, 6.0, 2.5)])

    def fake_validation_losses(model, frames, batch_size=8192):
        bc, steps, error, near = next(scripted)
        return {"bc_loss": bc, "steps_to_go_loss": steps, "d_error": error, "d_error_near_goal": near}

    monkeypatch.setattr(sft_module, "validation_losses", fake_validation_losses)
    config = SFTConfig(
        model=TINY_MODEL, steps=30, batch_size=32, eval_every=10, seed=2, reward_selection=selection
    )
    run = train_sft(dataset_dir, tmp_path / "run", config)
    _, policy_meta = load_checkpoint(run / "checkpoints" / "policy")
    _, reward_meta = load_checkpoint(run / "checkpoints" / "reward")
    assert (policy_meta["step"], policy_meta["val_bc_loss"]) == (20, 1.0)
    key = f"val_{selection or 'steps_to_go_loss'}"
    assert (reward_meta["step"], reward_meta[key]) == (reward_step, value)
    assert "success_threshold" in reward_meta  # calibrated on the selected reward model


# --- Stage 2: one run -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def improve_run(sft_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    reward_before = digest(sft_run / "checkpoints" / "reward")
    out = tmp_path_factory.mktemp("improve") / "run"
    policy_path = improve(sft_run, out, TINY_IMPROVE)
    return {"out": out, "policy": policy_path, "reward_before": reward_before}


def test_improve_leaves_the_reward_checkpoint_alone(improve_run: dict, sft_run: Path) -> None:
    assert digest(sft_run / "checkpoints" / "reward") == improve_run["reward_before"]


def test_improve_changes_the_policy_but_not_the_steps_to_go_tower(improve_run: dict, sft_run: Path) -> None:
    assert improve_run["policy"] == improve_run["out"] / "checkpoints" / "policy"
    improved, meta = load_checkpoint(improve_run["policy"])
    start, _ = load_checkpoint(sft_run / "checkpoints" / "policy")
    assert meta["stage"] == "improve"
    assert meta["improve"]["iterations"] == 2 and meta["improve"]["updates"] == 8
    _, reward_meta = load_checkpoint(sft_run / "checkpoints" / "reward")
    assert meta["success_threshold"] == reward_meta["success_threshold"]
    improved_state, start_state = improved.state_dict(), start.state_dict()
    for key in start_state:
        if key.startswith(("policy_tower.", "action_head.linear.")):
            assert not torch.equal(improved_state[key], start_state[key]), key
        else:  # the steps-to-go tower and head, and every normalisation buffer
            assert_close(improved_state[key], start_state[key], rtol=0, atol=0)


def test_improve_logs_one_record_per_iteration(improve_run: dict) -> None:
    records = read_metrics(improve_run["out"] / "metrics.jsonl")
    assert [r["improve/iteration"] for r in records] == [1, 2]
    n_times_b = TINY_IMPROVE.samples_per_iteration
    previous = 0
    for r in records:
        assert set(ROLLOUT_KEYS) <= set(r)
        assert r["improve/env_steps"] - previous >= n_times_b  # a whole buffer of >= N x B samples
        previous = r["improve/env_steps"]
        for key in ("rollout/true_success", "rollout/detected_success"):
            assert 0.0 <= r[key] <= 1.0
        for key in ("rollout/detector_precision", "rollout/detector_recall"):
            assert np.isnan(r[key]) or 0.0 <= r[key] <= 1.0
        assert r["time/env_steps_per_second"] > 0
        assert 1 <= r["rollout/episode_length"] <= PointMassConfig().max_steps
    assert records[-1]["improve/updates"] == 2 * TINY_IMPROVE.num_updates
    _, meta = load_checkpoint(improve_run["policy"])
    assert meta["improve"]["env_steps"] == records[-1]["improve/env_steps"]
    resolved = json.loads(json.dumps(to_dict(TINY_IMPROVE.resolve("siefm/PointMass-v0"))))
    assert json.loads((improve_run["out"] / "config.json").read_text())["improve"] == resolved


def test_improve_writes_each_iterations_practice_episodes(improve_run: dict) -> None:
    records = read_metrics(improve_run["out"] / "metrics.jsonl")
    _, meta = load_checkpoint(improve_run["policy"])
    previous = 0
    for version, record in enumerate(records):
        practice = read_dataset(improve_run["out"] / "practice" / f"iteration-{version + 1:04d}")
        samples = record["improve/env_steps"] - previous
        previous = record["improve/env_steps"]
        # One extra (terminal) frame per episode, as in the demonstrations.
        assert practice.num_episodes == record["rollout/episodes"]
        assert practice.num_frames == samples + practice.num_episodes
        columns = practice.columns
        assert (columns["policy_version"] == version).all()
        np.testing.assert_array_equal(
            columns["detected_success"], columns["steps_to_go_pred"] <= meta["success_threshold"]
        )
        assert practice.info["siefm"]["env"] == meta["env"]
        for i in range(practice.num_episodes):
            episode = practice.episode(i)
            d, reward = episode["steps_to_go_pred"], episode["reward"]
            assert_close(torch.tensor(reward[:-1]), torch.tensor(d[:-1] - d[1:]), atol=1e-5, rtol=1e-5)
            assert episode["is_terminal"][-1] and not episode["is_terminal"][:-1].any()
            assert not episode["is_success"][0]


def test_improve_refuses_an_existing_run_and_a_missing_sft_run(
    improve_run: dict, sft_run: Path, tmp_path: Path
) -> None:
    with pytest.raises(FileExistsError, match="--resume"):
        improve(sft_run, improve_run["out"], TINY_IMPROVE)
    with pytest.raises(ValueError, match="checkpoints/policy is not a checkpoint directory"):
        improve(tmp_path / "nowhere", tmp_path / "out", TINY_IMPROVE)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        resume_improve(tmp_path / "nowhere")


def copy_sft_run(sft_run: Path, to: Path, spec: ModelSpec | None = None, drop: str | None = None) -> Path:
    """A copy of the SFT run whose checkpoints are rebuilt for `spec` and/or lack metadata key `drop`."""
    shutil.copytree(sft_run, to)
    for name in ("policy", "reward"):
        model, meta = load_checkpoint(to / "checkpoints" / name)
        if spec is not None:
            sizes = {"state": spec.state_dim, "goal": spec.goal_dim, "action": spec.action_dim}
            ones = {key: torch.ones(d) for key, d in sizes.items()}
            stats = {key: {"mean": 0 * v, "std": v, "min": -v, "max": v} for key, v in ones.items()}
            model = EFM(model.config, spec, stats)
        save_checkpoint(to / "checkpoints" / name, model, {k: v for k, v in meta.items() if k != drop})
    return to


def test_improve_refuses_checkpoints_for_another_env(sft_run: Path, tmp_path: Path) -> None:
    misfit = copy_sft_run(sft_run, tmp_path / "sft", spec=ModelSpec(state_dim=5, goal_dim=2, action_dim=2))
    with pytest.raises(CheckpointError, match="observations of size 5"):
        improve(misfit, tmp_path / "rl", TINY_IMPROVE)


def test_a_failed_start_can_be_retried_with_the_same_out(sft_run: Path, tmp_path: Path) -> None:
    misfit = copy_sft_run(sft_run, tmp_path / "sft", spec=ModelSpec(state_dim=5, goal_dim=2, action_dim=2))
    with pytest.raises(CheckpointError):
        improve(misfit, tmp_path / "rl", TINY_IMPROVE)
    improve(sft_run, tmp_path / "rl", dataclasses.replace(TINY_IMPROVE, num_iterations=1))


def test_improve_with_env_workers_practises_in_worker_processes(sft_run: Path, tmp_path: Path) -> None:
    """Stage 2 with its simulators in 2 worker processes: a run completes, holds complete episodes of
    N x B samples, and its fleet state resumes (it is what `--improve.env-workers` builds for any domain)."""
    config = dataclasses.replace(TINY_IMPROVE, env_workers=2, num_iterations=1)
    out = tmp_path / "rl"
    improve(sft_run, out, config)
    (record,) = read_metrics(out / "metrics.jsonl")
    assert record["improve/env_steps"] >= config.samples_per_iteration
    assert 1 <= record["rollout/episode_length"] <= PointMassConfig().max_steps
    batch = read_dataset(out / "practice" / "iteration-0001")
    assert batch.num_episodes == record["rollout/episodes"]


def test_improve_on_an_uncalibrated_reward_checkpoint(sft_run: Path, tmp_path: Path) -> None:
    uncalibrated = copy_sft_run(sft_run, tmp_path / "sft", drop="success_threshold")
    with pytest.raises(ValueError, match=r"success_threshold|success threshold"):
        improve(uncalibrated, tmp_path / "rl", TINY_IMPROVE)


# --- Stage 2: the pieces ----------------------------------------------------------------------------------


@pytest.fixture
def models(sft_run: Path):
    policy, _ = load_checkpoint(sft_run / "checkpoints" / "policy")
    reward, meta = load_checkpoint(sft_run / "checkpoints" / "reward")
    return policy, RewardModel(reward, meta["success_threshold"])


def test_reward_model_stays_frozen_while_the_policy_learns(models) -> None:
    policy, reward_model = models
    assert all(not p.requires_grad for p in reward_model.model.parameters())
    assert not reward_model.model.training
    reward_before = copy.deepcopy(reward_model.model.state_dict())
    policy_before = copy.deepcopy(policy.state_dict())
    config = dataclasses.replace(TINY_IMPROVE, num_updates=3, minibatch_size=16).resolve("siefm/PointMass-v0")
    optimizer = torch.optim.AdamW(policy.policy_parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    batch = collect_practice(
        LocalFleet(8, PointMassConfig(), seed=0),
        policy,
        reward_model,
        num_samples=48,
        max_episode_steps=40,
        gamma=0.9,
        generator=generator,
    )
    assert not batch.returns.requires_grad and not batch.rewards.requires_grad
    loss = reinforce_updates(policy, optimizer, batch, config, generator)
    assert np.isfinite(loss)
    for key, value in reward_before.items():
        assert_close(reward_model.model.state_dict()[key], value, rtol=0, atol=0)
    assert all(p.grad is None for p in reward_model.model.parameters())
    assert not torch.equal(
        policy.state_dict()["policy_tower.0.weight"], policy_before["policy_tower.0.weight"]
    )
    assert_close(policy.state_dict()["steps_to_go_head.weight"], policy_before["steps_to_go_head.weight"])
    with pytest.raises(ValueError, match="success_threshold"):
        RewardModel(reward_model.model, -1.0)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Records the (T, N) step table that `collect_practice` hands to `_assemble`."""
    captured: dict = {}
    original = rollout._assemble

    def record(columns: dict, ends: dict, counts: dict, gamma: float):
        captured["columns"] = dict(columns)
        captured["counts"] = dict(counts)
        return original(columns, ends, counts, gamma)

    monkeypatch.setattr(rollout, "_assemble", record)
    return captured


def episodes_of(columns: dict) -> list[tuple[int, int, int]]:
    """(env, first step, last step) of each episode, in the order the rollout reports them (start order)."""
    done, valid, ids = columns["done"].numpy(), columns["valid"].numpy(), columns["episode"].numpy()
    starts = np.zeros(done.shape[1], dtype=np.int64)
    episodes = {}
    for t, n in zip(*np.nonzero(done), strict=True):  # row-major: by step, then env
        assert valid[starts[n] : t + 1, n].all() and (ids[starts[n] : t + 1, n] == ids[t, n]).all()
        episodes[int(ids[t, n])] = (int(n), int(starts[n]), int(t))
        starts[n] = t + 1
    return [episodes[k] for k in sorted(episodes)]


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_practice_buffer_holds_complete_episodes(models, spy: dict, gamma: float) -> None:
    policy, reward_model = models
    num_envs, num_samples, max_steps = 8, 300, 40
    batch = collect_practice(
        LocalFleet(num_envs, PointMassConfig(), seed=3),
        policy,
        reward_model,
        num_samples=num_samples,
        max_episode_steps=max_steps,
        gamma=gamma,
        generator=torch.Generator().manual_seed(0),
    )
    columns = spy["columns"]
    valid, done = columns["valid"].numpy(), columns["done"].numpy()
    assert batch.num_samples >= num_samples
    assert batch.num_samples == valid.sum() == batch.episode_length.sum()
    assert len(batch.episode_length) == done.sum() == len(batch.true_success) == len(batch.final_distance)
    assert (batch.episode_length >= 1).all() and (batch.episode_length <= max_steps).all()
    for n in range(num_envs):
        active = valid[:, n]
        assert active[0] and done[np.flatnonzero(active).max(), n]  # every robot plays, ending an episode
        stops = np.flatnonzero(active[:-1] & ~active[1:])
        assert done[stops, n].all()  # a robot stops only at the end of an episode
    assert not (done & ~valid).any()
    assert (columns["reward"].numpy()[~valid] == 0).all()
    # Episodes end on the detector or the time limit; lengths and outcomes line up with the step table.
    episodes = episodes_of(columns)
    lengths = np.array([t - start + 1 for _, start, t in episodes])
    np.testing.assert_array_equal(lengths, batch.episode_length)
    s = reward_model.success_threshold
    np.testing.assert_array_equal(batch.detected_success, batch.final_distance <= s)
    assert (batch.detected_success | (batch.episode_length == max_steps)).all()
    # Rewards telescope within each episode: sum r = d(o_0) - d(o_T), where d(o_0) is the new episode's own
    # start (a stale d from the previous episode would break this), and the first return with gamma = 1 is it.
    flat = np.cumsum(valid.reshape(-1)).reshape(valid.shape) - 1  # (T, N) -> index into the flat buffer
    rewards = columns["reward"]
    for k, (n, start, t) in enumerate(episodes):
        state, goal = columns["state"][start, n][None], columns["goal"][start, n][None]
        d0 = reward_model.distance({"state": state}, goal)[0]
        expected = d0 - batch.final_distance[k]
        assert_close(rewards[start : t + 1, n].sum(), expected, atol=1e-3, rtol=1e-4)
        if gamma == 1.0:
            assert_close(batch.returns[flat[start, n]], expected, atol=1e-3, rtol=1e-4)
        assert_close(batch.returns[flat[t, n]], rewards[t, n])  # the last step's return is its own reward
        assert_close(batch.state[flat[start, n]], columns["state"][start, n])
        assert (batch.episode_id[flat[start : t + 1, n]] == k).all()
    # The detector's frame-level counts score d(o_{t+1}) <= s against the simulator's success at o_{t+1}.
    next_d = np.empty(batch.num_samples)
    for k, (n, start, t) in enumerate(episodes):
        index = flat[start : t + 1, n]
        next_d[index] = np.append(batch.distance.numpy()[index[1:]], batch.final_distance[k])
    fired, truth = next_d <= s, batch.next_true_success
    assert spy["counts"] == {
        "true_positives": int((fired & truth).sum()),
        "false_positives": int((fired & ~truth).sum()),
        "false_negatives": int((~fired & truth).sum()),
    }


def test_practice_stores_the_executed_clipped_action(models) -> None:
    policy, reward_model = models
    env = {"id": "siefm/PointMass-v0", "config": dataclasses.asdict(PointMassConfig(max_action=2e-4))}
    bounds = get_domain(env["id"]).action_bounds(env["config"])
    batch = collect_practice(
        LocalFleet(8, PointMassConfig(max_action=2e-4), seed=3),
        policy,
        reward_model,
        num_samples=200,
        max_episode_steps=40,
        gamma=0.9,
        generator=torch.Generator().manual_seed(0),
        action_bounds=bounds,
    )
    action = batch.action.numpy()
    assert (np.abs(action) <= 2e-4 + 1e-9).all()
    assert (np.isclose(np.abs(action), 2e-4)).any() and (np.abs(action) < 2e-4 - 1e-6).any()
    # The updates score the same clipped actions; the loss stays finite.
    config = dataclasses.replace(TINY_IMPROVE, num_updates=2, minibatch_size=32).resolve(env["id"])
    optimizer = torch.optim.AdamW(policy.policy_parameters(), lr=1e-5)
    state = copy.deepcopy(policy.state_dict())
    loss = reinforce_updates(policy, optimizer, batch, config, torch.Generator().manual_seed(0), bounds)
    policy.load_state_dict(state)
    assert math.isfinite(loss)


def test_episodes_reach_the_sink_as_they_end_and_are_the_buffers_episodes(models) -> None:
    policy, reward_model = models
    streamed: list[PracticeBatch] = []
    batch = collect_practice(
        LocalFleet(8, PointMassConfig(), seed=3),
        policy,
        reward_model,
        num_samples=200,
        max_episode_steps=40,
        gamma=0.9,
        generator=torch.Generator().manual_seed(0),
        episode_sink=streamed.append,
    )
    assert all(len(e.episode_length) == 1 for e in streamed)
    assert len(streamed) == len(batch.episode_length)
    # Each streamed episode is one of the buffer's, bit for bit, returns included; each buffer episode once.
    first = {
        tuple(batch.state[batch.episode_id == k][0].tolist()): k for k in range(len(batch.episode_length))
    }
    matched = []
    for episode in streamed:
        k = first[tuple(episode.state[0].tolist())]
        own = torch.from_numpy(batch.episode_id == k)
        for name in ("state", "goal", "action", "rewards", "returns", "distance"):
            assert torch.equal(getattr(episode, name), getattr(batch, name)[own]), name
        assert episode.episode_length[0] == batch.episode_length[k]
        assert episode.final_distance[0] == batch.final_distance[k]
        matched.append(k)
    assert sorted(matched) == list(range(len(batch.episode_length)))
    assert matched != sorted(matched)  # streamed in the order they ended, not the order they started
    totals = {key: sum(e.detector_counts[key] for e in streamed) for key in batch.detector_counts}
    assert totals == batch.detector_counts


class StraightLinePolicy:
    """The PD controller aimed at the goal, dressed as an EFM for `collect_practice`."""

    config = ModelConfig()  # state observations

    def goal_input(self, goals):
        return torch.as_tensor(goals)

    def encode_goal(self, goal):  # vector goals: nothing to precompute, as for the state EFM
        return goal

    def frozen_inputs(self, obs):  # state observations: nothing frozen, as for the state EFM
        return dict(obs)

    def act(self, obs, goal, *, deterministic: bool = False, generator=None):
        state = obs["state"].double().numpy()
        action = pd_action(state[:, :2], state[:, 2:], goal.double().numpy())
        return torch.from_numpy(action).float(), torch.zeros(len(action))


def straight_line_practice(fleet, reward_model: RewardModel, threshold: float, **options) -> PracticeBatch:
    """The straight-line controller's practice in `fleet`, judged by `reward_model` with this threshold."""
    detector = RewardModel(reward_model.model, success_threshold=threshold)
    return collect_practice(fleet, StraightLinePolicy(), detector, gamma=0.9, **options)


class RowCounting(StraightLinePolicy):
    """The straight-line policy, recording how many robots each call is given."""

    def __init__(self) -> None:
        self.rows: list[int] = []

    def act(self, obs, goal, **options):
        self.rows.append(len(obs["state"]))
        return super().act(obs, goal, **options)


def test_models_run_on_the_robots_playing_only_and_their_outputs_reach_those_robots(
    models, spy: dict
) -> None:
    _, reward_model = models
    policy = RowCounting()
    batch = collect_practice(
        LocalFleet(8, PointMassConfig(), seed=4),
        policy,
        reward_model,
        gamma=0.9,
        num_samples=120,
        max_episode_steps=25,
    )
    valid = spy["columns"]["valid"].numpy()
    assert policy.rows == valid.sum(axis=1).tolist()  # one call per step, with the robots playing
    assert min(policy.rows) < 8  # some steps ran with idle robots
    # Each stored sample's action and d are what the models give for its own observation and goal.
    state, goal = batch.state.double().numpy(), batch.goal.double().numpy()
    np.testing.assert_allclose(batch.action.numpy(), pd_action(state[:, :2], state[:, 2:], goal), atol=1e-6)
    d = reward_model.distance({"state": batch.state}, batch.goal)
    assert_close(batch.distance, d, rtol=0, atol=1e-5)


@pytest.mark.parametrize("end_on_true_success", [False, True])
def test_which_signal_ends_practice_episodes(models, end_on_true_success: bool) -> None:
    _, reward_model = models
    batch = straight_line_practice(  # a threshold of 1e6 steps: the detector fires on every observation
        LocalFleet(8, PointMassConfig(), seed=0),
        reward_model,
        threshold=1e6,
        num_samples=100,
        max_episode_steps=60,
        end_on_true_success=end_on_true_success,
    )
    if end_on_true_success:  # the notebook's variant: the simulator decides, so the detector is ignored
        assert batch.true_success.all()
        assert (batch.episode_length > 5).all() and (batch.episode_length < 60).all()
        assert batch.num_samples == batch.episode_length.sum() >= 100
    else:  # the paper's method: the learned detector ends every episode after one step
        assert (batch.episode_length == 1).all() and batch.detected_success.all()
        assert not batch.true_success.any()
        assert batch.num_samples == len(batch.episode_length) >= 100


def test_the_simulators_success_bonus_adds_to_the_reward_where_success_holds(models) -> None:
    _, reward_model = models

    def practice(bonus: float) -> PracticeBatch:
        fleet = LocalFleet(4, PointMassConfig(), seed=0)
        options = {"num_samples": 60, "max_episode_steps": 60, "end_on_true_success": True}
        return straight_line_practice(fleet, reward_model, threshold=5.0, success_bonus=bonus, **options)

    without, with_bonus = practice(0.0), practice(2.5)
    assert with_bonus.next_true_success.sum() == with_bonus.true_success.size  # one success step per episode
    expected = without.rewards + 2.5 * torch.from_numpy(without.next_true_success).float()
    torch.testing.assert_close(with_bonus.rewards, expected)


class FaultyFleet(LocalFleet):
    """PointMass robots whose simulator 'raises' on robot 0's 5th step of every episode (a fleet reports it
    in the observations' "fault", as the gymnasium fleet does for an env whose step raised)."""

    def reset(self, env_ids=None):
        obs = super().reset(env_ids)
        if env_ids is None:
            self.steps = np.zeros(self.num_envs, dtype=int)
        else:
            self.steps[env_ids] = 0
        return obs

    def step(self, actions, active=None):
        obs, success = super().step(actions, active)
        self.steps += 1
        obs["fault"] = (np.arange(self.num_envs) == 0) & (self.steps == 5)
        return obs, success


def test_an_episode_whose_simulator_raised_ends_as_a_failure_and_practice_goes_on(models) -> None:
    _, reward_model = models
    batch = straight_line_practice(  # a threshold of 0 steps: d > 0 always, so the detector never fires
        FaultyFleet(4, PointMassConfig(), seed=0),
        reward_model,
        threshold=0.0,
        num_samples=200,
        max_episode_steps=40,
    )
    assert batch.fault is not None and batch.metrics()["rollout/faults"] == batch.fault.sum() >= 2
    faulted = batch.fault
    assert (batch.episode_length[faulted] == 5).all() and not batch.true_success[faulted].any()
    assert not batch.detected_success[faulted].any()
    assert (batch.episode_length[~faulted] == 40).all()  # the detector never fires: the cap ends them
    assert batch.num_samples == batch.episode_length.sum() >= 200


# --- Stage 2: resume --------------------------------------------------------------------------------------

FOUR = dataclasses.replace(TINY_IMPROVE, num_iterations=4)

# Runs `improve` for FOUR's 4 iterations, but blocks inside iteration 3 after its metrics record is written
# and before its state is saved, so the parent can SIGKILL it at the worst moment.
CHILD = """
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
import siefm.improve.train as train
from siefm.config import ImproveConfig, from_dict

sft_run, out, marker, config = sys.argv[1:]
save_state = train._save_state

def blocking_save_state(out_dir, policy, optimizer, generator, fleet, counters, metadata):
    if counters["iterations"] == 3:
        Path(marker).write_text("iteration 3 logged, state still at 2")
        time.sleep(600)
    save_state(out_dir, policy, optimizer, generator, fleet, counters, metadata)

train._save_state = blocking_save_state
train.improve(Path(sft_run), Path(out), from_dict(ImproveConfig, json.loads(config)))
"""


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """The resume tests compare Stage 2 runs made in this process and in a child process bit for bit, so
    all of them compute with one thread: floating-point sums may differ between thread counts, and this
    process's count depends on what ran in it before."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def straight_run(sft_run: Path, tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Path:
    return improve(sft_run, tmp_path_factory.mktemp("straight") / "run", FOUR).parent.parent


def test_resume_after_sigkill_finishes_the_run(sft_run: Path, straight_run: Path, tmp_path: Path) -> None:
    out, marker = tmp_path / "run", tmp_path / "blocked"
    with (tmp_path / "child.log").open("w") as log:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(sft_run), str(out), str(marker), json.dumps(to_dict(FOUR))],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        try:
            deadline = time.monotonic() + 120
            while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert marker.exists(), (tmp_path / "child.log").read_text()
            os.kill(child.pid, signal.SIGKILL)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    before = read_metrics(out / "metrics.jsonl")
    assert [r["improve/iteration"] for r in before] == [1, 2, 3]  # iteration 3 was logged ...
    assert json.loads((out / "state" / "trainer.json").read_text())["iterations"] == 2  # ... but not saved
    assert not (out / "checkpoints" / "policy").exists()

    path = resume_improve(out)

    after = read_metrics(out / "metrics.jsonl")
    assert [r["improve/iteration"] for r in after] == [1, 2, 3, 4]
    assert after[:2] == before[:2]  # iterations 1-2 were not run again: the resume started from 2, not 0
    assert after[2]["time"] > before[2]["time"]  # iteration 3 was redone ...
    assert without_times(after[2:3]) == without_times(before[2:3])  # ... identically, from the saved RNGs
    _, meta = load_checkpoint(path)
    assert meta["improve"]["iterations"] == 4
    assert meta["improve"]["updates"] == 4 * FOUR.num_updates
    assert meta["improve"]["env_steps"] == after[-1]["improve/env_steps"]
    assert json.loads((out / "state" / "trainer.json").read_text())["iterations"] == 4
    # Killed and resumed == never interrupted.
    assert without_times(after) == without_times(read_metrics(straight_run / "metrics.jsonl"))
    assert_same_weights(load_checkpoint(path)[0], load_checkpoint(straight_run / "checkpoints" / "policy")[0])
    assert_same_practice(out, straight_run)  # iteration 3's finished practice was discarded and replayed


def test_resume_discards_the_practice_of_unfinished_iterations_only(tmp_path: Path) -> None:
    for name in ("iteration-0001", "iteration-0002", "iteration-0003", "iteration-0010", "notes"):
        (tmp_path / name).mkdir()
    removed = discard_unfinished(tmp_path, completed_iterations=2)
    assert [p.name for p in removed] == ["iteration-0003", "iteration-0010"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iteration-0001", "iteration-0002", "notes"]
    assert discard_unfinished(tmp_path / "no-practice-yet", 0) == []


def test_a_learner_crash_mid_iteration_loses_and_duplicates_no_practice_episode(
    sft_run: Path, straight_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The learner dies in iteration 3 while streaming its 4th episode: 3 are on disk, its state is at 2.
    write = PracticeStream.write

    def crashing_write(self: PracticeStream, batch: PracticeBatch) -> None:
        if self.policy_version == 2 and self.stream.num_episodes == 3:
            raise LearnerCrash("killed mid-iteration")
        write(self, batch)

    monkeypatch.setattr(PracticeStream, "write", crashing_write)
    out = tmp_path / "run"
    with pytest.raises(LearnerCrash):
        improve(sft_run, out, FOUR)
    monkeypatch.undo()
    assert json.loads((out / "state" / "trainer.json").read_text())["iterations"] == 2
    streamed = out / "practice" / "iteration-0003"
    with pytest.raises(DatasetError, match="still being streamed"):
        read_dataset(streamed)
    # What the crash left is a dataset of the 3 episodes that had ended: only the 4th, in flight, is lost.
    partial = read_dataset(finish_stream(shutil.copytree(streamed, tmp_path / "partial")))
    whole = read_dataset(straight_run / "practice" / "iteration-0003")
    assert partial.num_episodes == 3
    end = partial.num_frames
    for column, values in partial.columns.items():
        np.testing.assert_array_equal(values, whole.columns[column][:end], err_msg=column)

    path = resume_improve(out)  # discards the 3 streamed episodes and plays iteration 3 again

    assert_same_practice(out, straight_run)
    assert_same_weights(load_checkpoint(path)[0], load_checkpoint(straight_run / "checkpoints" / "policy")[0])


def test_two_iterations_then_resume_equals_four_straight(
    sft_run: Path, straight_run: Path, tmp_path: Path
) -> None:
    # An interruption after iteration 2, made cleanly: run 2 iterations, then raise the saved target to 4.
    # The state is also left only as `state.old`, as a kill between the two renames of a save would leave it.
    out = tmp_path / "run"
    improve(sft_run, out, TINY_IMPROVE)
    config = json.loads((out / "config.json").read_text())
    config["improve"]["num_iterations"] = 4
    (out / "config.json").write_text(json.dumps(config))
    (out / "state").rename(out / "state.old")
    path = resume_improve(out)
    assert [r["improve/iteration"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2, 3, 4]
    assert without_times(read_metrics(out / "metrics.jsonl")) == without_times(
        read_metrics(straight_run / "metrics.jsonl")
    )
    assert_same_weights(load_checkpoint(path)[0], load_checkpoint(straight_run / "checkpoints" / "policy")[0])


def test_resume_survives_a_half_written_metrics_line(sft_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    improve(sft_run, out, TINY_IMPROVE)
    config = json.loads((out / "config.json").read_text())
    config["improve"]["num_iterations"] = 3
    (out / "config.json").write_text(json.dumps(config))
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"time": 1.0, "improve/iteration": 3, "improve/env_st')  # killed mid-write
    resume_improve(out)
    assert [r["improve/iteration"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2, 3]


def test_resuming_a_finished_run_changes_nothing(straight_run: Path, tmp_path: Path) -> None:
    run = shutil.copytree(straight_run, tmp_path / "run")
    records = read_metrics(run / "metrics.jsonl")
    path = resume_improve(run)
    assert read_metrics(run / "metrics.jsonl") == records
    assert_same_weights(load_checkpoint(path)[0], load_checkpoint(straight_run / "checkpoints" / "policy")[0])
    assert load_checkpoint(path)[1]["improve"]["iterations"] == 4


def test_improve_config_is_what_resume_uses(straight_run: Path) -> None:
    saved = json.loads((straight_run / "config.json").read_text())
    assert saved["command"] == "improve"
    assert from_dict(ImproveConfig, saved["improve"]) == FOUR.resolve("siefm/PointMass-v0")


def test_the_practice_budget_stops_stage2(sft_run: Path, tmp_path: Path) -> None:
    config = dataclasses.replace(TINY_IMPROVE, num_iterations=5, max_practice_episodes=40)
    path = improve(sft_run, tmp_path / "rl", config)
    records = read_metrics(tmp_path / "rl" / "metrics.jsonl")
    # 16 robots play >= 16 episodes per iteration: the budget is spent before the fifth iteration, and
    # no iteration starts after it is.
    played = [r["improve/episodes"] for r in records]
    assert 1 < len(played) < 5 and played[-2] < 40 <= played[-1]
    assert load_checkpoint(path)[1]["improve"]["episodes"] == records[-1]["improve/episodes"]
