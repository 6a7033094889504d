"""Any gymnasium env as a domain: observation conventions, true success, and the CLI through both stages on
an env siefm did not write (tests/toy_reach.py), with the errors a user meets when something does not fit."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from test_cli import assert_clean_error, run_cli

from siefm.data.dataset import DatasetError, read_dataset
from siefm.domains.gymnasium_env.env import GymEnvConfig, describe, true_success
from siefm.domains.gymnasium_env.fleet import VectorFleet
from siefm.domains.gymnasium_env.observations import ObservationMap

TOY = "toy_reach:ToyReach-v0"
BOX = gym.spaces.Box(-1, 1, shape=(2,))
IMAGE = gym.spaces.Box(0, 255, shape=(4, 6, 3), dtype=np.uint8)


def test_observation_conventions_and_features_map() -> None:
    fetch_like = gym.spaces.Dict({"observation": BOX, "achieved_goal": BOX, "desired_goal": BOX})
    mapping = ObservationMap.for_space(fetch_like)
    assert (mapping.state_keys, mapping.goal_key) == (("observation",), "desired_goal")
    pusht_like = gym.spaces.Dict({"agent_pos": BOX, "goal": BOX, "state": BOX})
    assert ObservationMap.for_space(pusht_like).state_keys == ("agent_pos",)  # the first convention present
    both = {"achieved_goal": "observation.state", "observation": "observation.state"}
    mapping = ObservationMap.for_space(fetch_like, {**both, "desired_goal": "observation.goal"})
    obs = {
        "observation": np.array([1.0, 2.0]),
        "achieved_goal": np.array([3.0, 4.0]),
        "desired_goal": np.ones(2),
    }
    np.testing.assert_array_equal(mapping.state(obs), [3.0, 4.0, 1.0, 2.0])  # in the map's order
    batch = {key: np.stack([value, value + 10]) for key, value in obs.items()}
    np.testing.assert_array_equal(mapping.split(batch)["state"][1], [13.0, 14.0, 11.0, 12.0])
    assert mapping.as_features_map()["desired_goal"] == "observation.goal"


def test_cameras_follow_lerobots_features_map_and_a_goal_less_env_conditions_on_its_task() -> None:
    one = ObservationMap.for_space(gym.spaces.Dict({"agent_pos": BOX, "pixels": IMAGE}))
    assert (one.state_keys, one.goal_key) == (("agent_pos",), None)
    assert one.cameras == {"pixels": "observation.image"}
    several = gym.spaces.Dict({"agent_pos": BOX, "pixels": gym.spaces.Dict({"top": IMAGE, "wrist": IMAGE})})
    cameras = ObservationMap.for_space(several).cameras
    assert cameras == {"pixels/top": "observation.images.top", "pixels/wrist": "observation.images.wrist"}
    features_map = {"agent_pos": "observation.state", "pixels/wrist": "observation.image"}
    mapped = ObservationMap.for_space(several, features_map)
    frames = {"agent_pos": np.zeros(2), "pixels": {"top": np.zeros((4, 6, 3)), "wrist": np.ones((4, 6, 3))}}
    assert mapped.camera(frames).mean() == 1  # the nested key reads the wrist camera
    recorded = ObservationMap.recorded(mapped.as_features_map(), instruction="reach it")
    assert recorded.cameras == mapped.cameras
    assert list(recorded.split({"agent_pos": np.zeros((3, 2))})["goal"]) == ["reach it"] * 3


def test_observations_without_a_goal_or_with_unknown_keys_are_refused() -> None:
    with pytest.raises(ValueError, match=r"hold no goal.*--task"):
        describe("CartPole-v1", {}, {}, None, None)  # a plain array: a state, but no goal and no task
    assert describe("CartPole-v1", {}, {}, None, None, task="balance")[0].task == "balance"
    with pytest.raises(ValueError, match="does not have"):
        ObservationMap.for_space(
            gym.spaces.Dict({"agent_pos": BOX, "goal": BOX}), {"pos": "observation.state"}
        )
    with pytest.raises(ValueError, match="no observation key holds the robot's state"):
        ObservationMap.for_space(gym.spaces.Dict({"joints": BOX, "goal": BOX}))


def test_true_success_reads_is_success_then_terminated() -> None:
    assert true_success({"is_success": True}, False)
    assert not true_success({}, False) and true_success({}, True)
    vector_info = {"is_success": np.array([True, True, False]), "_is_success": np.array([True, False, True])}
    np.testing.assert_array_equal(true_success(vector_info, np.zeros(3)), [True, False, False])
    np.testing.assert_array_equal(true_success({}, np.array([False, True])), [False, True])


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_fleet_steps_past_an_episode_its_env_ended_by_starting_a_new_one(mode: str) -> None:
    config = GymEnvConfig(kwargs={"terminate_on_success": True}, max_steps=100)
    mapping = ObservationMap(("agent_pos",), "desired_goal")
    fleet = VectorFleet(TOY, config, mapping, num_envs=3, seed=0, mode=mode)
    obs = fleet.reset()
    for _ in range(40):  # straight at the goal: every robot succeeds, and its env terminates
        offset = obs["goal"] - obs["state"]
        obs, success = fleet.step(np.clip(offset, -0.1, 0.1))
        if success.any():
            break
    done = np.flatnonzero(success)
    assert done.size and np.linalg.norm(obs["goal"][done] - obs["state"][done], axis=1).max() < 0.05
    obs, _ = fleet.step(np.zeros((3, 2)))  # gymnasium refuses to step an ended env; the fleet resets it
    assert np.linalg.norm(obs["goal"][done] - obs["state"][done], axis=1).min() > 0.05
    fleet.close()


def test_evaluation_counts_episodes_of_envs_that_end_on_success_and_honours_the_recorded_limit() -> None:
    from siefm.domains.gymnasium_env.evaluate import run_episodes, scripted_policy

    config = GymEnvConfig(kwargs={"terminate_on_success": True}, max_steps=300)
    straight = scripted_policy("toy_reach:straight", {}, list(range(6)))
    straight = run_episodes(TOY, config, straight, 6, seed=0, max_steps=300)
    assert straight["success_rate"] == 1.0 and straight["mean_steps"] < 30  # every env ended, none crashed
    wide = GymEnvConfig(kwargs={"arena": 2.0}, max_steps=300)  # spirals that take more than 100 steps
    spiral = scripted_policy("toy_reach:demonstrator", {}, list(range(20)))
    long, short = (run_episodes(TOY, wide, spiral, 20, seed=0, max_steps=limit) for limit in (300, 100))
    # Past the registered limit of 100 steps the spiral finishes episodes it could not finish within it.
    assert long["success_rate"] > short["success_rate"] and long["mean_steps"] > 100


def test_a_stateful_demonstrator_is_started_with_each_episodes_seed_and_the_seed_is_recorded(
    tmp_path: Path,
) -> None:
    """A demonstrator class gets one instance, made with the recorded keyword arguments, whose reset(seed)
    runs as each episode starts; every kept episode stores the seed its env was reset with, and the env
    reset with it starts where the episode did. Evaluation makes one instance per episode."""
    from siefm.domains.gymnasium_env.collect import GymCollectConfig, collect_gymnasium
    from siefm.domains.gymnasium_env.evaluate import scripted_policy

    config = GymCollectConfig(
        policy="toy_reach:Waypoint", policy_kwargs='{"spread": 0.3}', num_episodes=12, seed=40
    )
    dataset = read_dataset(collect_gymnasium(TOY, tmp_path / "data", config))
    env_config = dataset.info["siefm"]["env"]["config"]
    assert env_config["policy"] == "toy_reach:Waypoint" and env_config["policy_kwargs"] == {"spread": 0.3}
    starts, ends = dataset.episode_bounds.T
    seeds = dataset.columns["episode_seed"]
    assert all((seeds[a:b] == seeds[a]).all() for a, b in zip(starts, ends, strict=True))
    kept = seeds[starts]
    assert len(set(kept.tolist())) == dataset.num_episodes and set(kept) <= set(range(40, 52))
    env = gym.make(TOY)
    first_states = dataset.columns["observation.state"][starts]
    for state, seed in zip(first_states, kept, strict=True):
        np.testing.assert_allclose(env.reset(seed=int(seed))[0]["agent_pos"], state)
    batch = scripted_policy("toy_reach:Waypoint", {"spread": 0.3}, [7, 8, 9])
    obs = {"agent_pos": np.zeros((3, 2), np.float32), "desired_goal": np.ones((3, 2), np.float32)}
    first = batch(obs)
    assert first.shape == (3, 2) and not np.allclose(first[0], first[1])  # each its own waypoint


def test_a_simulator_that_raises_ends_its_practice_episode_as_a_failure(tmp_path: Path) -> None:
    """An env whose step raises (as dm_control's PhysicsError) ends that robot's episode, counted as a
    fault and a failure; practice goes on with a fresh episode on that robot."""
    from siefm.domains.gymnasium_env.fleet import VectorFleet, make_vector_env
    from siefm.domains.gymnasium_env.observations import ObservationMap

    config = GymEnvConfig(kwargs={"unstable_after": 3}, max_steps=100)
    envs = make_vector_env(TOY, config, 2, "sync")
    mapping = ObservationMap.for_space(envs.single_observation_space)
    envs.close()
    fleet = VectorFleet(TOY, config, mapping, num_envs=2, seed=0, mode="sync")
    fleet.reset()
    for step in range(1, 5):
        obs, success = fleet.step(np.zeros((2, 2)))
        assert obs["fault"].tolist() == [step == 4] * 2 and not success.any()
    obs, _ = fleet.step(np.zeros((2, 2)))  # both robots start afresh and step again
    assert not obs["fault"].any()
    fleet.close()


def test_any_gymnasium_env_through_both_stages_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, sft, rl, ev = (tmp_path / name for name in ("data", "sft", "rl", "eval"))
    collect = ["collect", "--env", TOY, "--out", data, "--policy", "toy_reach:demonstrator"]
    code, _, err = run_cli([*collect, "--num-episodes", "40", "--env-kwargs", '{"arena": 0.8}'], capsys)
    assert code == 0, err
    dataset = read_dataset(data)
    env = dataset.info["siefm"]["env"]
    assert env["id"] == TOY and env["config"]["kwargs"] == {"arena": 0.8}
    assert env["config"]["features_map"] == {
        "agent_pos": "observation.state",
        "desired_goal": "observation.goal",
    }
    assert (dataset.info["robot_type"], dataset.info["fps"], env["config"]["max_steps"]) == (TOY, 20, 100)
    assert 1 <= dataset.num_episodes <= 40 and dataset.columns["goal"].shape[1] == 2
    tiny = ["--sft.model.hidden-dim", "16", "--sft.model.num-layers", "1", "--sft.batch-size", "64"]
    code, _, err = run_cli(["sft", "--dataset", data, "--out", sft, *tiny, "--sft.steps", "30"], capsys)
    assert code == 0, err
    reward = json.loads((sft / "checkpoints" / "reward" / "checkpoint.json").read_text())["model_config"]
    # Presets scaled to the env's limit of 100 steps: one steps-to-go class per step, a goal vector.
    assert (reward["goal_encoder"], reward["steps_to_go_bins"], reward["steps_to_go_max"]) == (
        "vector",
        101,
        100,
    )
    practice = ["--improve.num-iterations", "1", "--improve.num-envs", "4", "--improve.vector-env", "sync"]
    code, _, err = run_cli(["improve", "--sft-run", sft, "--out", rl, *practice], capsys)
    assert code == 0, err
    resolved = json.loads((rl / "config.json").read_text())["improve"]
    assert resolved["reward_scale"] == pytest.approx(1 / 100)
    evaluation = ["eval", "--checkpoint", rl / "checkpoints" / "policy", "--out", ev]
    evaluation += ["--eval.episodes", "10", "--eval.reference", "toy_reach:straight"]
    code, _, err = run_cli(evaluation, capsys)
    assert code == 0, err
    results = json.loads((ev / "results.json").read_text())
    assert results["demonstrator"]["name"] == "demonstrator (toy_reach:demonstrator)"
    assert results["optimal"]["name"] == "reference (toy_reach:straight)"
    assert results["policy"]["episodes"] == results["optimal"]["episodes"] == 10
    assert results["optimal"]["success_rate"] == 1.0  # straight at the goal, well within 100 steps
    # The demonstrator spirals in: several times the straight path's length.
    assert results["demonstrator"]["mean_steps"] > 2 * results["optimal"]["mean_steps"]


def test_a_gymnasium_env_that_does_not_fit_ends_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ["--out", tmp_path / "data"]
    code, _, err = run_cli(["collect", "--env", TOY, *out], capsys)
    assert_clean_error(code, err, "--policy module:function")
    code, _, err = run_cli(["collect", "--env", "someone/Else-v0", *out, "--policy", "m:f"], capsys)
    assert_clean_error(code, err, "gymnasium knows")
    code, _, err = run_cli(["collect", "--env", TOY, *out, "--policy", "toy_reach:nothing"], capsys)
    assert_clean_error(code, err, "cannot be imported")
    code, _, err = run_cli(
        ["collect", "--env", "CartPole-v1", *out, "--policy", "toy_reach:straight"], capsys
    )
    assert_clean_error(code, err, "hold no goal")
    code, _, err = run_cli(
        [
            "collect",
            "--env",
            TOY,
            *out,
            "--policy",
            "toy_reach:straight",
            "--features-map",
            '{"pos": "observation.state"}',
        ],
        capsys,
    )
    assert_clean_error(code, err, "does not have")
    code, _, err = run_cli(["collect", "--env", "pointmass", *out, "--policy", "toy_reach:straight"], capsys)
    assert_clean_error(code, err, "do not apply to --env pointmass")
    code, _, err = run_cli(["collect", "--env", TOY, *out, "--collect.num-episodes", "3"], capsys)
    assert_clean_error(code, err, "--collect.* options do not apply")
    assert not (tmp_path / "data").exists()  # nothing written by a refused command


def test_a_dataset_lerobot_wrote_through_both_stages_in_the_env_it_was_recorded_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tests/data/lerobot_written (LeRobot's own writer; state, goal and action of size 2) records no env:
    `--env` names it, and the steps-to-go labels are made from its episodes."""
    data = Path(__file__).parent / "data" / "lerobot_written"
    sft, rl = tmp_path / "sft", tmp_path / "rl"
    code, _, err = run_cli(["sft", "--dataset", data, "--out", tmp_path / "refused"], capsys)
    assert_clean_error(code, err, "--env ENV_ID")
    # An env whose sizes differ is refused before anything is written.
    wrong = ["sft", "--dataset", data, "--out", tmp_path / "wrong", "--env", "pointmass"]
    code, _, err = run_cli(wrong, capsys)
    assert_clean_error(code, err, "gives observation.state of")
    assert not (tmp_path / "wrong").exists()
    tiny = [
        "--sft.model.hidden-dim",
        "8",
        "--sft.model.num-layers",
        "1",
        "--sft.steps",
        "4",
        "--sft.eval-every",
        "2",
    ]
    code, _, err = run_cli(["sft", "--dataset", data, "--out", sft, "--env", TOY, *tiny], capsys)
    assert code == 0, err
    metadata = json.loads((sft / "checkpoints" / "reward" / "checkpoint.json").read_text())["metadata"]
    assert metadata["env"]["id"] == TOY and metadata["train_episodes"] + metadata["val_episodes"] == 3
    practice = ["--improve.num-iterations", "1", "--improve.num-envs", "2", "--improve.vector-env", "sync"]
    code, _, err = run_cli(
        ["improve", "--sft-run", sft, "--out", rl, *practice, "--improve.num-updates", "1"], capsys
    )
    assert code == 0, err


def test_stage1_labels_of_a_dataset_that_has_none() -> None:
    from siefm.data.labels import with_stage1_columns

    dataset = with_stage1_columns(read_dataset(Path(__file__).parent / "data" / "lerobot_written"))
    np.testing.assert_array_equal(
        dataset.columns["steps_to_go"], [3, 2, 1, 0, 4, 3, 2, 1, 0, 5, 4, 3, 2, 1, 0]
    )
    np.testing.assert_array_equal(np.flatnonzero(dataset.columns["is_terminal"]), [3, 8, 14])
    np.testing.assert_array_equal(dataset.columns["is_success"], dataset.columns["is_terminal"])
    np.testing.assert_array_equal(dataset.columns["goal"], dataset.columns["observation.goal"])


def test_stage1_keeps_the_episodes_that_end_in_recorded_success(tmp_path: Path) -> None:
    from siefm.data.labels import with_stage1_columns
    from siefm.data.writing import write_dataset

    def episode(length: int, success: bool) -> dict[str, np.ndarray]:
        ends = np.zeros(length, dtype=bool)
        ends[-1] = success
        return {"observation.state": np.zeros((length, 2), np.float32), "next.success": ends}

    write_dataset(tmp_path / "d", [episode(3, True), episode(4, False), episode(2, True)], fps=10)
    dataset = with_stage1_columns(read_dataset(tmp_path / "d"))
    np.testing.assert_array_equal(dataset.episode_bounds, [[0, 3], [3, 5]])  # the failed episode left out
    np.testing.assert_array_equal(dataset.columns["steps_to_go"], [2, 1, 0, 1, 0])
    write_dataset(tmp_path / "failed", [episode(3, False)], fps=10)
    with pytest.raises(DatasetError, match="no episode ends in success"):
        with_stage1_columns(read_dataset(tmp_path / "failed"))


def test_a_resumed_run_in_a_users_env_ends_with_the_same_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fleet's seeds are saved with Stage 2's state, so stopping after iteration 1 and resuming gives
    the run that was never stopped."""
    data, sft = tmp_path / "data", tmp_path / "sft"
    collect = ["collect", "--env", TOY, "--out", data, "--policy", "toy_reach:demonstrator"]
    assert run_cli([*collect, "--num-episodes", "12"], capsys)[0] == 0
    tiny = ["--sft.model.hidden-dim", "8", "--sft.model.num-layers", "1", "--sft.steps", "4"]
    assert run_cli(["sft", "--dataset", data, "--out", sft, *tiny, "--sft.eval-every", "2"], capsys)[0] == 0
    practice = ["--improve.num-envs", "3", "--improve.vector-env", "sync", "--improve.num-updates", "2"]
    for name, iterations in (("straight", "2"), ("stopped", "1")):
        run = ["improve", "--sft-run", sft, "--out", tmp_path / name, *practice]
        assert run_cli([*run, "--improve.num-iterations", iterations], capsys)[0] == 0
    saved = json.loads((tmp_path / "stopped" / "config.json").read_text())
    saved["improve"]["num_iterations"] = 2  # as if it had been stopped after its first iteration
    (tmp_path / "stopped" / "config.json").write_text(json.dumps(saved))
    assert run_cli(["improve", "--resume", tmp_path / "stopped"], capsys)[0] == 0
    weights = [
        (tmp_path / name / "checkpoints" / "policy" / "model.safetensors").read_bytes()
        for name in ("straight", "stopped")
    ]
    assert weights[0] == weights[1]
