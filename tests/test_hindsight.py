"""Hindsight block2block labels: which events count, their frames, labels and instructions, and how they
enter Stage 1's steps-to-go objective."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_tabletop_stages import STATE_DIM, tabletop_model
from torch.testing import assert_close

from siefm.config import SFTConfig
from siefm.data.dataset import EpisodeDataset
from siefm.data.relabel import RelabelledGoals
from siefm.data.sampler import Frames
from siefm.domains.tabletop.hindsight import block2block_hindsight
from siefm.domains.tabletop.tasks import PREPOSITIONS, VERBS
from siefm.sft import hindsight_frames, sft_loss, train_sft

# The 8-block board's names, in state-row order (tasks.block_name).
NAMES = ("red moon", "red pentagon", "blue moon", "blue cube", "green cube", "green star", "yellow star")
NAMES += ("yellow pentagon",)


def states(paths: dict[int, list[tuple[float, float]]], frames: int) -> np.ndarray:
    """(frames, STATE_DIM) states: blocks on a grid 15 cm apart, those in `paths` at the given centres."""
    state = np.zeros((frames, STATE_DIM), np.float32)
    for i in range(8):
        row = 4 + 4 * i
        state[:, row : row + 2] = (0.15 * (i % 4), 0.15 * (i // 4))
        if i in paths:
            state[:, row : row + 2] = paths[i]
        state[:, row + 2] = 1.0  # cos yaw
    return state


def two_episodes() -> EpisodeDataset:
    # Episode 0, "push the red moon to the blue cube": its own pair (0, 3) meets at the end (no hindsight
    # label); blocks 1 and 2 touch at frame 3 (4 cm apart) and part again.
    own = {0: [(0.07 * t, -0.15) for t in range(5)] + [(0.43, -0.15)], 3: [(0.45, -0.15)] * 6}
    touch = {
        1: [(0.15, 0.0)] * 6,
        2: [(0.3, 0.0), (0.25, 0.0), (0.22, 0.0), (0.19, 0.0), (0.3, 0.0), (0.3, 0.0)],
    }
    first = states({**own, **touch}, 6)
    # Episode 1, another family: blocks 4 and 5 meet at frame 2; blocks 6 and 7 start 5.5 cm apart, too
    # close for a block2block task, and touch at frame 1.
    meet = {4: [(0.0, 0.15)] * 4, 5: [(0.15, 0.15), (0.1, 0.15), (0.045, 0.15), (0.045, 0.15)]}
    close = {6: [(0.3, 0.15)] * 4, 7: [(0.355, 0.15), (0.33, 0.15), (0.33, 0.15), (0.33, 0.15)]}
    second = states({**meet, **close}, 4)
    state = np.concatenate([first, second])
    tasks = ["push the red moon to the blue cube", "push the green cube to the top left corner"]
    columns = {"observation.state": state, "task_index": np.repeat([0, 1], [6, 4])}
    return EpisodeDataset(Path("."), {}, columns, np.array([[0, 6], [6, 10]]), tasks)


def test_hindsight_labels_known_answer() -> None:
    labels = block2block_hindsight(two_episodes(), "8", seed=3)
    # Both orders of (1, 2) over frames 0..3 of episode 0, then both orders of (4, 5) over episode 1's 0..2.
    assert labels.frame.tolist() == [0, 1, 2, 3] * 2 + [6, 7, 8] * 2
    assert labels.steps_to_go.tolist() == [3, 2, 1, 0] * 2 + [2, 1, 0] * 2
    texts = [labels.instructions[i] for i in labels.instruction]
    pairs = [("red pentagon", "blue moon"), ("blue moon", "red pentagon")]
    pairs += [("green cube", "green star"), ("green star", "green cube")]
    for (moved, other), start in zip(pairs, (0, 4, 8, 11), strict=True):
        text = texts[start]
        assert text in {f"{v} the {moved} {p} the {other}" for v in VERBS for p in PREPOSITIONS}
        assert all(t == text for t in texts[start : start + (4 if start < 8 else 3)])  # one text per event
    assert len(labels.instructions) == 4


def test_hindsight_refuses_states_of_another_board() -> None:
    data = two_episodes()
    data.columns["observation.state"] = data.columns["observation.state"][:, :20]
    with pytest.raises(ValueError, match="tabletop state observations"):
        block2block_hindsight(data, "8")


def test_hindsight_frames_join_only_the_steps_to_go_loss() -> None:
    model = tabletop_model()
    goals = torch.stack([model.goal_input([t])[0] for t in ("push the red moon to the blue cube",)] * 3)
    generator = torch.Generator().manual_seed(0)
    demos = Frames(
        state=torch.randn(3, STATE_DIM, generator=generator),
        goal=goals,
        action=torch.full((3, 2), 0.01),
        steps_to_go=torch.tensor([5, 1, 0]),
        has_action=torch.tensor([True, True, False]),
    )
    relabelled = Frames(
        state=torch.randn(2, STATE_DIM, generator=generator),
        goal=torch.stack([model.goal_input(["push the red pentagon to the blue moon"])[0]] * 2),
        action=torch.zeros(2, 2),
        steps_to_go=torch.tensor([40, 3]),
        has_action=torch.zeros(2, dtype=torch.bool),
    )
    plain, plain_metrics = sft_loss(model, demos)
    loss, metrics = sft_loss(model, demos, hindsight=relabelled)
    bins = model.steps_to_go_bins
    logits = torch.cat(
        [model.steps_to_go_logits(f.observation(), f.goal_input()) for f in (demos, relabelled)]
    )
    expected = F.cross_entropy(logits, bins.to_index(torch.tensor([5, 1, 0, 40, 3])))
    assert metrics["bc_loss"] == pytest.approx(plain_metrics["bc_loss"])  # BC sees the demonstrations only
    assert_close(loss - plain, expected - plain_metrics["steps_to_go_loss"], atol=1e-5, rtol=0)


def test_hindsight_is_refused_for_pointmass_data(dataset_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="offers no such relabelling"):
        train_sft(dataset_dir, tmp_path / "run", SFTConfig(steps=1, hindsight="block2block"))
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_hindsight_frames_keep_each_frame_and_its_images() -> None:
    """A pixel model's relabelled frames point at the same cached frames as the demonstrations'."""
    model = tabletop_model()
    train = Frames(
        state=torch.arange(4 * STATE_DIM, dtype=torch.float32).view(4, STATE_DIM),
        goal=torch.zeros(4, dtype=torch.int64),
        action=torch.ones(4, 2),
        steps_to_go=torch.tensor([3, 2, 1, 0]),
        has_action=torch.tensor([True, True, True, False]),
        image_ids=torch.tensor([[0, 0], [0, 1], [1, 2], [2, 3]]),
        images=torch.rand(4, 8, 8, 3),
        goal_table=model.goal_input(["push the red moon to the blue cube"]),
    )
    labels = block2block_hindsight(two_episodes(), "8")
    picked = RelabelledGoals(np.array([2, 3]), np.array([1, 0]), np.array([1, 0]), labels.instructions[:2])
    frames = hindsight_frames(model, train, picked)
    assert_close(frames.state, train.state[2:])
    assert frames.image_ids.tolist() == [[1, 2], [2, 3]] and frames.images is train.images
    assert frames.steps_to_go.tolist() == [1, 0] and not frames.has_action.any()
    assert_close(frames.goal_input(), model.goal_input([labels.instructions[1], labels.instructions[0]]))
