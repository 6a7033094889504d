"""Shared fixtures: one torch thread (2-core CI), tiny seeded configs, a session-wide dataset and SFT run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from siefm.config import ImproveConfig, ModelConfig, SFTConfig
from siefm.domains.pointmass.collect import CollectConfig

torch.set_num_threads(1)

TINY_MODEL = ModelConfig(hidden_dim=32, num_layers=2)
TINY_SFT = SFTConfig(model=TINY_MODEL, steps=300, batch_size=128, eval_every=50, seed=0)
# N x B = 4 x 32 = 128 samples per iteration; 16 robots already play more than that in their first episodes.
TINY_IMPROVE = ImproveConfig(num_iterations=2, num_updates=4, minibatch_size=32, num_envs=16, seed=0)


class LearnerCrash(RuntimeError):
    """Raised by tests that kill the Stage 2 learner part-way through an iteration."""


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 57 demonstrations (60 simulated, the short ones dropped), written once per session."""
    from siefm.domains.pointmass.collect import collect_demonstrations

    return collect_demonstrations(
        tmp_path_factory.mktemp("data") / "dataset", CollectConfig(num_episodes=60, seed=0)
    )


@pytest.fixture(scope="session")
def sft_run(dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short Stage 1 run (300 steps, validation every 50) on the session dataset. Treat as read-only."""
    from siefm.sft import train_sft

    return train_sft(dataset_dir, tmp_path_factory.mktemp("sft") / "run", TINY_SFT)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def assert_same_practice(run: Path, reference: Path, ordered: bool = True) -> None:
    """The two Stage 2 runs hold the same practice datasets: the same iterations, and in each the same
    episodes, frame for frame (so none is missing or duplicated), in the same order unless not `ordered`."""
    from siefm.data.dataset import read_dataset

    names = sorted(p.name for p in (run / "practice").iterdir())
    assert names == sorted(p.name for p in (reference / "practice").iterdir())
    for name in names:
        a, b = read_dataset(run / "practice" / name), read_dataset(reference / "practice" / name)
        assert a.num_episodes == b.num_episodes and a.columns.keys() == b.columns.keys(), name
        if not ordered:
            assert sorted(_episodes(a)) == sorted(_episodes(b)), name
            continue
        np.testing.assert_array_equal(a.episode_bounds, b.episode_bounds)
        for column in a.columns:
            np.testing.assert_array_equal(a.columns[column], b.columns[column], err_msg=f"{name} {column}")


def _episodes(data) -> list[bytes]:
    """Each episode's task and frames as bytes, without the columns that number episodes, frames and tasks
    in the file."""
    renumbered = {"index", "episode_index", "task_index"}
    return [
        data.tasks[int(data.columns["task_index"][start])].encode()
        + b"".join(
            np.ascontiguousarray(data.columns[c][start:end]).tobytes()
            for c in sorted(data.columns)
            if c not in renumbered
        )
        for start, end in data.episode_bounds
    ]


def with_arms(**fields: object) -> dict[str, object]:
    """ModelConfig keyword arguments, with the variants that are `ModelArms` now (and the 'flatten' pixel
    readout) moved into `arms`, so tests can name them as ModelConfig fields."""
    from siefm.config import ModelArms
    from siefm.config.model import ARM_FIELDS

    arms = {name: fields.pop(name) for name in ARM_FIELDS if name in fields}
    if fields.get("pixel_readout") == "flatten":
        fields["pixel_readout"], arms["flat_pixel_readout"] = "keypoints", True
    return {**fields, "arms": ModelArms(**arms)} if arms else fields


def as_old_checkpoint(path: Path, drop: tuple[str, ...] = ()) -> None:
    """Rewrites the checkpoint at `path` as written before the variants moved into `arms` (flat fields, a
    'flatten' pixel readout) and before the options in `drop` existed."""
    import json

    info = json.loads((path / "checkpoint.json").read_text())
    config = info["model_config"]
    arms = config.pop("arms")
    if arms.pop("flat_pixel_readout"):
        config["pixel_readout"] = "flatten"
    config.update(arms)
    for name in drop:
        del config[name]
    (path / "checkpoint.json").write_text(json.dumps(info))
