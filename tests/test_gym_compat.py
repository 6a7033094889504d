"""A user's env the generic gymnasium domain meets in the wild, through both stages from the command line:
one written against the old gym API, run through shimmy's compatibility wrapper (tests/old_api_reach.py),
and Stage 2's Ray fleet on an env from the user's own module (tests/toy_reach.py), which its actors must
import too."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from test_cli import run_cli

from siefm.data.dataset import read_dataset
from siefm.logging import read_metrics

OLD = "old_api_reach:OldReach-v0"
TOY = "toy_reach:ToyReach-v0"
TINY_SFT = ["--sft.model.hidden-dim", "16", "--sft.model.num-layers", "1", "--sft.batch-size", "64"]
TINY_SFT += ["--sft.steps", "30"]


def stage1(env_id: str, policy: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """Demonstrations of `policy` in `env_id` and a short SFT run on them; returns the SFT run."""
    data, sft = tmp_path / "data", tmp_path / "sft"
    collect = ["collect", "--env", env_id, "--out", data, "--policy", policy, "--num-episodes", "30"]
    code, _, err = run_cli([*collect, "--env-kwargs", '{"arena": 0.8}'], capsys)
    assert code == 0, err
    dataset = read_dataset(data)
    assert dataset.info["siefm"]["env"]["id"] == env_id and 1 <= dataset.num_episodes <= 30
    code, _, err = run_cli(["sft", "--dataset", data, "--out", sft, *TINY_SFT], capsys)
    assert code == 0, err
    return sft


@pytest.mark.skipif(
    importlib.util.find_spec("shimmy") is None or importlib.util.find_spec("gym") is None,
    reason="the old gym API runs through shimmy's wrapper, which needs shimmy and gym",
)
@pytest.mark.filterwarnings("ignore::UserWarning")  # shimmy: "Gym v21 environment do not accept options"
def test_an_old_gym_api_env_through_shimmy_through_both_stages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sft = stage1(OLD, "old_api_reach:demonstrator", tmp_path, capsys)
    env = read_dataset(tmp_path / "data").info["siefm"]["env"]
    assert env["config"]["kwargs"] == {"arena": 0.8} and env["config"]["max_steps"] == 100
    assert env["config"]["features_map"] == {
        "agent_pos": "observation.state",
        "desired_goal": "observation.goal",
    }
    rl, ev = tmp_path / "rl", tmp_path / "eval"
    practice = ["--improve.num-iterations", "1", "--improve.num-envs", "4", "--improve.vector-env", "sync"]
    code, _, err = run_cli(["improve", "--sft-run", sft, "--out", rl, *practice], capsys)
    assert code == 0, err
    assert (rl / "checkpoints" / "policy").is_dir() and len(read_metrics(rl / "metrics.jsonl")) == 1
    evaluation = ["eval", "--checkpoint", rl / "checkpoints" / "policy", "--out", ev]
    code, _, err = run_cli([*evaluation, "--eval.episodes", "10"], capsys)
    assert code == 0, err
    results = json.loads((ev / "results.json").read_text())
    assert results["demonstrator"]["name"] == "demonstrator (old_api_reach:demonstrator)"
    assert results["policy"]["episodes"] == results["demonstrator"]["episodes"] == 10
    # The old env's info["is_success"] reaches siefm through the wrapper: the demonstrator succeeds.
    assert results["demonstrator"]["success_rate"] > 0


@pytest.fixture
def ray_session():
    """A local Ray instance, which `siefm improve` joins (and would otherwise start, and leave running)."""
    ray = pytest.importorskip("ray")
    from siefm.improve.ray_fleet import start_ray

    try:
        start_ray(None)
    except Exception as error:  # whatever stops Ray starting here, the test cannot run
        pytest.skip(f"Ray cannot start a local instance here: {error}")
    yield ray
    ray.shutdown()


def test_the_ray_fleet_imports_the_users_env_module_in_its_actors(
    ray_session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """toy_reach is importable here only through pytest's addition of tests/ to sys.path, which the Ray
    workers do not inherit; the fleet hands its actors the driver's path."""
    sft = stage1(TOY, "toy_reach:demonstrator", tmp_path, capsys)
    rl = tmp_path / "rl"
    practice = ["--improve.num-iterations", "2", "--improve.num-envs", "2", "--improve.vector-env", "sync"]
    practice += ["--improve.num-updates", "1", "--improve.minibatch-size", "32"]
    ray = ["--improve.fleet", "ray", "--improve.actors", "2", "--improve.actor-timeout-s", "60"]
    code, _, err = run_cli(["improve", "--sft-run", sft, "--out", rl, *practice, *ray], capsys)
    assert code == 0, err
    metrics = read_metrics(rl / "metrics.jsonl")
    assert len(metrics) == 2 and metrics[-1]["fleet/actors_replaced"] == 0  # no actor failed to start
    assert (rl / "checkpoints" / "policy").is_dir()
