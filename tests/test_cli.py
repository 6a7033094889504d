"""Tier 3 smoke: the `siefm` command line in-process, both stages on a tiny config; help and bad input."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from siefm.checkpoint import load_checkpoint, save_checkpoint
from siefm.cli import main
from siefm.config import ModelConfig
from siefm.data.dataset import read_dataset
from siefm.domains import REGISTRY
from siefm.domains.tabletop.env import TabletopConfig
from siefm.domains.tabletop.grounding import selector_grounding
from siefm.domains.tabletop.hindsight import block2block_hindsight
from siefm.eval.diagnostics import reward_model_diagnostics
from siefm.logging import read_metrics
from siefm.models.efm import EFM, ModelSpec

POINTMASS_ID = REGISTRY["pointmass"].env_id

TINY_DEMO = [
    "--collect.num-episodes",
    "80",
    "--sft.steps",
    "200",
    "--sft.eval-every",
    "100",
    "--sft.model.hidden-dim",
    "32",
    "--improve.num-iterations",
    "2",
    "--improve.num-updates",
    "4",
    "--improve.minibatch-size",
    "32",
    "--improve.num-envs",
    "16",
    "--eval.episodes",
    "20",
]
POLICY_KEYS = {"success_rate", "success_ci95", "mean_steps", "episodes"}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit code (returned, or raised as SystemExit by the argument parser), stdout, stderr."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def flat(text: str) -> str:
    """The text with box-drawing characters and line wrapping removed, for matching messages."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def assert_clean_error(code: int, err: str, *phrases: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    message = err.strip()
    assert message and "\n\n" not in message  # one paragraph
    for phrase in phrases:
        assert phrase in flat(err), err


# --- demo -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    out = tmp_path_factory.mktemp("demo") / "run"
    buffer = io.StringIO()  # a module-scoped fixture cannot use capsys
    with contextlib.redirect_stdout(buffer):
        code = main(["demo", "pointmass", "--out", str(out), *TINY_DEMO])
    assert code == 0
    return out, json.loads((out / "results.json").read_text()), buffer.getvalue()


def test_demo_writes_the_report(demo_run: tuple[Path, dict, str]) -> None:
    out, _, table = demo_run
    for name in ("results.json", "trajectories.png", "learning_curve.png"):
        assert (out / name).stat().st_size > 0
    for name in ("trajectories.png", "learning_curve.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "sft" / "checkpoints" / "reward").is_dir() and (
        out / "improve" / "checkpoints" / "policy"
    ).is_dir()
    assert "Stage 1 (BC)" in table and "straight line" in table


def test_demo_results_follow_the_design_schema(demo_run: tuple[Path, dict, str]) -> None:
    _, results, _ = demo_run
    assert results["env"]["id"] == "siefm/PointMass-v0"
    for name in ("dataset", "bc", "improved", "optimal"):
        assert set(results[name]) >= POLICY_KEYS, name
        low, high = results[name]["success_ci95"]
        assert 0.0 <= low <= results[name]["success_rate"] + 1e-9  # see test_math: Wilson ends at 0 / n
        assert results[name]["success_rate"] - 1e-9 <= high <= 1.0
        assert results[name]["mean_steps"] > 0
    for name in ("bc", "improved", "optimal"):
        assert results[name]["episodes"] == 20
    assert results["optimal"]["success_rate"] == 1.0
    assert results["dataset"]["episodes"] <= 80
    improve = results["improve"]
    assert {"env_steps", "updates", "wall_seconds", "detector_precision", "detector_recall"} <= set(improve)
    assert improve["updates"] == 8 and improve["env_steps"] >= 2 * 4 * 32
    assert {"wall_seconds", "steps"} <= set(results["sft"]) and results["sft"]["steps"] == 200
    assert {"voc", "steps_mae"} <= set(results["reward_model"])
    machine = results["machine"]
    assert machine["torch"] == torch.__version__ and machine["cores"] >= 1 and machine["threads"] >= 1


def test_demo_reward_diagnostics_are_those_of_its_reward_model_on_validation(
    demo_run: tuple[Path, dict, str],
) -> None:
    out, results, _ = demo_run
    reward, _ = load_checkpoint(out / "sft" / "checkpoints" / "reward")
    val_ids = json.loads((out / "sft" / "sft_summary.json").read_text())["val_episode_ids"]
    expected = reward_model_diagnostics(
        reward, read_dataset(out / "dataset").select_episodes(np.array(val_ids))
    )
    assert results["reward_model"]["voc"] == pytest.approx(expected["voc"])
    assert results["reward_model"]["steps_mae"] == pytest.approx(expected["steps_mae"])
    assert results["reward_model"]["voc"] > 0  # after 200 Stage 1 steps d already falls towards the goal


def test_demo_results_count_iterations(demo_run: tuple[Path, dict, str]) -> None:
    _, results, _ = demo_run
    assert results["improve"]["iterations"] == 2


# --- the stages composed through directories --------------------------------------------------------------


@pytest.fixture(scope="module")
def stage_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stages")
    dirs = {name: root / name for name in ("data", "sft", "rl", "eval")}
    commands = [
        ["collect", "--out", dirs["data"], "--collect.num-episodes", "60"],
        [
            "sft",
            "--dataset",
            dirs["data"],
            "--out",
            dirs["sft"],
            "--sft.steps",
            "60",
            "--sft.eval-every",
            "30",
            "--sft.model.hidden-dim",
            "32",
            "--sft.model.num-layers",
            "2",
        ],
        [
            "improve",
            "--sft-run",
            dirs["sft"],
            "--out",
            dirs["rl"],
            "--improve.num-iterations",
            "2",
            "--improve.num-updates",
            "2",
            "--improve.minibatch-size",
            "16",
            "--improve.num-envs",
            "8",
        ],
        [
            "eval",
            "--checkpoint",
            dirs["rl"] / "checkpoints" / "policy",
            "--out",
            dirs["eval"],
            "--eval.episodes",
            "12",
        ],
    ]
    for command in commands:
        assert main([str(a) for a in command]) == 0, command
    return dirs


def test_stages_compose_through_directories(stage_dirs: dict[str, Path]) -> None:
    assert (stage_dirs["data"] / "meta" / "info.json").is_file()
    for name in ("policy", "reward"):
        assert (stage_dirs["sft"] / "checkpoints" / name / "model.safetensors").is_file()
    assert (stage_dirs["rl"] / "checkpoints" / "policy" / "checkpoint.json").is_file()
    assert [
        json.loads(line)["improve/iteration"] for line in (stage_dirs["rl"] / "metrics.jsonl").open()
    ] == [1, 2]
    results = json.loads((stage_dirs["eval"] / "results.json").read_text())
    for name in ("policy", "optimal"):
        assert set(results[name]) >= POLICY_KEYS and results[name]["episodes"] == 12
    assert results["optimal"]["success_rate"] == 1.0
    assert (stage_dirs["eval"] / "trajectories.png").is_file()


def test_improve_resume_from_the_command_line(
    stage_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(
        ["improve", "--resume", stage_dirs["rl"]], capsys
    )  # a finished run: nothing to redo
    assert code == 0 and "improved policy in" in out
    lines = (stage_dirs["rl"] / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["improve/iteration"] for line in lines] == [1, 2]


# --- help -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("collect", ["--out", "--collect.num-episodes", "--collect.seed", "--overwrite"]),
        ("sft", ["--dataset", "--out", "--sft.steps", "--sft.success-threshold", "--sft.model.action-head"]),
        (
            "improve",
            [
                "--sft-run",
                "--out",
                "--resume",
                "--improve.gamma",
                "--improve.num-envs",
                "--improve.end-on-true-success",
            ],
        ),
        (
            "eval",
            ["--checkpoint", "--out", "--reward", "--eval.episodes", "--eval.families", "--eval.videos"],
        ),
        ("demo", ["pointmass", "tabletop"]),
        ("demo pointmass", ["--out", "--collect.num-episodes", "--sft.steps", "--improve.num-iterations"]),
        ("demo tabletop", ["--out", "--dataset", "--collect.num-episodes", "--improve.practice-mode"]),
    ],
)
def test_help_of_each_subcommand(
    command: str, options: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    code, out, _ = run_cli([*command.split(), "--help"], capsys)
    assert code == 0
    for option in options:
        assert option in out, option


def test_top_level_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    for command in ("collect", "sft", "improve", "eval", "demo"):
        assert command in out


# --- bad input --------------------------------------------------------------------------------------------


def test_missing_dataset_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["sft", "--dataset", tmp_path / "nope", "--out", tmp_path / "sft"], capsys)
    assert_clean_error(code, err, str(tmp_path / "nope"), "siefm collect")


def test_corrupt_dataset(
    stage_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = shutil.copytree(stage_dirs["data"], tmp_path / "data")
    parquet = next((data / "data").rglob("*.parquet"))
    parquet.write_bytes(parquet.read_bytes()[:500])
    code, _, err = run_cli(["sft", "--dataset", data, "--out", tmp_path / "sft", "--sft.steps", "2"], capsys)
    assert_clean_error(code, err, parquet.name, "corrupt")


def test_missing_checkpoint_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["eval", "--checkpoint", tmp_path / "nope", "--out", tmp_path / "eval"], capsys)
    assert_clean_error(code, err, "is not a siefm checkpoint", "model.safetensors")


def test_improve_with_a_missing_sft_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["improve", "--sft-run", tmp_path / "nope", "--out", tmp_path / "rl"], capsys)
    assert_clean_error(code, err, "checkpoints/policy is not a checkpoint directory")


def test_improve_into_an_existing_run(
    stage_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["improve", "--sft-run", stage_dirs["sft"], "--out", stage_dirs["rl"]], capsys)
    assert_clean_error(code, err, "already holds a Stage 2 run", "--resume")


def test_resume_of_a_missing_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["improve", "--resume", tmp_path / "nope"], capsys)
    assert_clean_error(code, err, "nothing to resume")


def test_resume_of_a_stage1_run(stage_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["improve", "--resume", stage_dirs["sft"]], capsys)
    assert_clean_error(code, err, "not a Stage 2 run directory")


def test_resume_with_a_corrupt_saved_state(
    stage_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = shutil.copytree(stage_dirs["rl"], tmp_path / "rl")
    (run / "state" / "optimizer.safetensors").write_bytes(b"not safetensors")
    code, _, err = run_cli(["improve", "--resume", run], capsys)
    assert_clean_error(code, err, "unreadable", "start a new run")


def test_collect_that_keeps_no_episode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["collect", "--out", tmp_path / "d", "--collect.num-episodes", "5", "--collect.min-steps", "399"]
    code, _, err = run_cli(argv, capsys)
    assert_clean_error(code, err, "--collect.min-steps")


def test_improve_needs_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["improve"], capsys)
    assert_clean_error(code, err, "--sft-run and --out", "--resume")


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        (
            ["improve", "--sft-run", "x", "--out", "y", "--improve.gamma", "1.5"],
            "ImproveConfig.gamma = 1.5 is invalid",
        ),
        (
            ["sft", "--dataset", "x", "--out", "y", "--sft.success-threshold", "-1"],
            "SFTConfig.success_threshold",
        ),
        (["improve", "--sft-run", "x", "--out", "y", "--improve.num-envs", "0"], "ImproveConfig.num_envs"),
        (["collect", "--out", "x", "--collect.env.substeps", "0"], "PointMassConfig.substeps"),
    ],
)
def test_invalid_values_name_the_field(
    argv: list[str], phrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(argv, capsys)
    assert_clean_error(code, err, phrase)


def test_eval_of_a_checkpoint_for_another_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = ModelSpec(state_dim=5, goal_dim=2, action_dim=2)
    stats = {
        name: {"mean": torch.zeros(d), "std": torch.ones(d), "min": -torch.ones(d), "max": torch.ones(d)}
        for name, d in (("state", 5), ("goal", 2), ("action", 2))
    }
    model = EFM(ModelConfig(hidden_dim=8, num_layers=1).resolve(POINTMASS_ID), spec, stats)
    env = {"id": "siefm/PointMass-v0", "config": {}}
    checkpoint = save_checkpoint(tmp_path / "five", model, {"env": env})
    code, _, err = run_cli(["eval", "--checkpoint", checkpoint, "--out", tmp_path / "eval"], capsys)
    assert_clean_error(code, err, "observations of size 5", "gives 4 and goal vectors of size 2")
    assert not (tmp_path / "eval" / "results.json").exists()


def test_eval_of_a_checkpoint_without_env_metadata(
    stage_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        ["eval", "--checkpoint", stage_dirs["rl"] / "state" / "policy", "--out", tmp_path], capsys
    )
    assert code in (0, 2) and "Traceback" not in err


def test_tabletop_through_both_stages_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """collect -> sft (instruction goals, tokenized actions by default) -> reset-free improve -> eval."""
    data, sft, rl, ev = (tmp_path / name for name in ("data", "sft", "rl", "eval"))
    argv = ["collect", "--env", "tabletop", "--out", data, "--tabletop.num-episodes", "12"]
    code, out, _ = run_cli([*argv, "--tabletop.num-workers", "1"], capsys)
    assert code == 0 and "dataset written" in out
    assert read_dataset(data).info["siefm"]["env"]["id"] == "siefm/Tabletop-v0"
    tiny = ["--sft.model.hidden-dim", "16", "--sft.model.num-layers", "1", "--sft.batch-size", "32"]
    code, _, err = run_cli(
        ["sft", "--dataset", data, "--out", sft, *tiny, "--sft.steps", "40", "--sft.eval-every", "20"], capsys
    )
    assert code == 0, err
    reward = json.loads((sft / "checkpoints" / "reward" / "checkpoint.json").read_text())
    assert reward["model_config"]["goal_encoder"] == "words"
    assert reward["model_config"]["action_head"] == "tokenized"
    assert (reward["model_config"]["steps_to_go_bins"], reward["model_config"]["steps_to_go_max"]) == (
        50,
        100.0,
    )
    assert "push" in reward["spec"]["vocabulary"]
    # The tabletop's reward checkpoint is the one with the lowest validation error of d near the goal (of
    # 2 evaluations).
    assert json.loads((sft / "config.json").read_text())["sft"]["reward_selection"] == "d_error_near_goal"
    metrics = read_metrics(sft / "metrics.jsonl")
    evaluations = {r["sft/step"]: r["sft/val_d_error_near_goal"] for r in metrics}
    assert reward["metadata"]["step"] == min(evaluations, key=evaluations.get)
    assert reward["metadata"]["val_d_error_near_goal"] == min(evaluations.values())
    # Stage 1 checks whether the policy's object selector picks the blocks block2block instructions name.
    grounding = json.loads((sft / "sft_summary.json").read_text())["grounding"]
    policy, _ = load_checkpoint(sft / "checkpoints" / "policy")
    assert grounding == pytest.approx(selector_grounding(policy, TabletopConfig()))
    # Hindsight block2block labels for the steps-to-go head run through the same command.
    hindsight = ["--sft.hindsight", "block2block", "--sft.steps", "20", "--sft.eval-every", "20"]
    code, _, err = run_cli(
        ["sft", "--dataset", data, "--out", tmp_path / "sft-hs", *tiny, *hindsight], capsys
    )
    assert code == 0, err
    relabelled = json.loads((tmp_path / "sft-hs" / "checkpoints" / "reward" / "checkpoint.json").read_text())
    val_ids = json.loads((tmp_path / "sft-hs" / "sft_summary.json").read_text())["val_episode_ids"]
    dataset = read_dataset(data)
    train = dataset.select_episodes(np.setdiff1d(np.arange(dataset.num_episodes), val_ids))
    assert relabelled["metadata"]["hindsight_frames"] == len(block2block_hindsight(train, "8"))
    code, _, err = run_cli(
        ["improve", "--sft-run", sft, "--out", rl, "--improve.families", "block2blok"], capsys
    )
    assert_clean_error(code, err, "block2blok")
    assert not (rl / "config.json").exists()  # refused before anything was written: --out stays usable
    practice = ["--improve.num-iterations", "1", "--improve.num-envs", "3", "--improve.num-updates", "2"]
    practice += ["--improve.minibatch-size", "16", "--improve.max-episode-steps", "12"]
    code, _, err = run_cli(
        ["improve", "--sft-run", sft, "--out", rl, *practice, "--improve.practice-mode", "reset-free"], capsys
    )
    assert code == 0, err
    episodes = read_dataset(rl / "practice" / "iteration-0001")
    assert all(task.split()[0] in ("push", "move", "slide", "put") for task in episodes.tasks)
    assert "goal" not in episodes.columns  # the instruction is each episode's task
    families = ["--eval.families", "block2block", "separate", "--eval.episodes", "2", "--eval.max-steps", "5"]
    code, out, err = run_cli(
        [
            "eval",
            "--checkpoint",
            rl / "checkpoints" / "policy",
            "--out",
            ev,
            "--reward",
            sft / "checkpoints" / "reward",
            *families,
            "--eval.videos",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    results = json.loads((ev / "results.json").read_text())
    for name in ("policy", "optimal"):
        assert set(results[name]["per_family"]) == {"block2block", "separate"}
        assert results[name]["episodes"] == 4
    assert sorted(p.name.split("-")[0] for p in (ev / "videos" / "policy").glob("*.gif")) == [
        "block2block",
        "separate",
    ]
    code, _, err = run_cli([*argv, "--tabletop.env.observation", "pixels", "--overwrite"], capsys)
    assert_clean_error(code, err, "state observations")


def test_demo_tabletop_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    argv = ["demo", "tabletop", "--out", out, "--collect.num-episodes", "12", "--collect.num-workers", "1"]
    argv += ["--sft.steps", "40", "--sft.eval-every", "20", "--sft.model.hidden-dim", "16"]
    argv += ["--improve.num-iterations", "1", "--improve.num-envs", "3", "--improve.num-updates", "2"]
    argv += ["--improve.minibatch-size", "16", "--improve.max-episode-steps", "10"]
    argv += ["--eval.episodes", "2", "--eval.max-steps", "5", "--eval.videos", "1"]
    code, printed, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "Stage 1 (BC), block2block" in printed and "scripted oracle" in printed
    results = json.loads((out / "results.json").read_text())
    for key in ("env", "dataset", "bc", "improved", "optimal", "improve", "sft", "reward_model", "machine"):
        assert key in results, key
    for key in ("bc", "improved", "optimal"):  # the demo evaluates block2block, the practised family
        assert set(results[key]) >= {"success_rate", "success_ci95", "mean_steps", "episodes", "per_family"}
        assert list(results[key]["per_family"]) == ["block2block"] and results[key]["episodes"] == 2
    assert {
        "env_steps",
        "iterations",
        "updates",
        "wall_seconds",
        "detector_precision",
        "detector_recall",
    } <= set(results["improve"])
    assert results["improve"]["practice_episodes"] == results["improve"]["episodes"] >= 3
    assert {"voc", "steps_mae"} <= set(results["reward_model"])
    assert results["reward_model"]["d_error_of_a_constant"] > 0
    assert (out / "success_by_family.png").stat().st_size > 0 and (out / "learning_curve.png").exists()
    assert len(list((out / "videos" / "improved").glob("*.gif"))) == 1
    assert json.loads((out / "config.json").read_text())["demo"]["collect"]["max_detours"] == 16
