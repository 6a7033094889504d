"""Contract and known-answer tests of the tabletop env, its tasks, oracle and demonstration collection."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import siefm.domains  # noqa: F401  (registers the envs)
from siefm.domains.tabletop.env import TabletopConfig, TabletopEnv
from siefm.domains.tabletop.scene import BLOCK_SETS, BOARD_X, BOARD_Y, Block
from siefm.domains.tabletop.tasks import FAMILIES, Task, block_name, on_board, sample_task


@pytest.fixture(scope="module")
def env() -> TabletopEnv:
    return TabletopEnv()


def test_registered_and_observations_fit_the_spaces() -> None:
    env = gym.make("siefm/Tabletop-v0")
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    obs, _, _, _, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert isinstance(obs["instruction"], str) and obs["state"].shape == (4 + 4 * 8,)
    assert {"is_success", "block_positions", "task_family"} <= set(info)
    env.close()


def test_seeded_reset_reproduces(env: TabletopEnv) -> None:
    first, _ = env.reset(seed=7)
    second, _ = env.reset(seed=7)
    assert first["instruction"] == second["instruction"]
    np.testing.assert_array_equal(first["state"], second["state"])
    third, _ = env.reset(seed=8)
    assert not np.array_equal(first["state"], third["state"])


@pytest.mark.parametrize("seed", range(5))
def test_reset_layout_respects_the_rules(env: TabletopEnv, seed: int) -> None:
    _, info = env.reset(seed=seed)
    positions = info["block_positions"]
    gaps = np.linalg.norm(positions[:, None] - positions[None], axis=-1) + np.eye(len(positions))
    assert gaps.min() > 0.06  # 6.5 cm apart when placed; settling moves blocks by millimetres at most
    assert info["blocks_on_board"] and not info["is_success"]
    pusher = env.pusher
    assert (
        BOARD_X[0] + 0.08 <= pusher[0] <= BOARD_X[1] - 0.08
        and BOARD_Y[0] + 0.08 <= pusher[1] <= BOARD_Y[1] - 0.08
    )


def test_actions_are_bounded_and_the_target_stays_on_the_board(env: TabletopEnv) -> None:
    env.reset(seed=0)
    env.target = np.array([np.mean(BOARD_X), np.mean(BOARD_Y)])  # far from every edge
    before = env.target.copy()
    env.step(np.array([5.0, -5.0]))  # clipped to 0.1 per axis
    np.testing.assert_allclose(np.abs(env.target - before), [0.1, 0.1], atol=1e-9)
    np.testing.assert_allclose(env.pusher, env.target)  # the pusher reaches its target within the step
    for _ in range(20):
        env.step(np.array([0.1, 0.1]))
    np.testing.assert_allclose(env.target, [BOARD_X[1], BOARD_Y[1]])


def test_episode_truncates_at_the_time_limit() -> None:
    env = TabletopEnv(TabletopConfig(block_set="4", max_steps=3))
    env.reset(seed=0)
    flags = [env.step(np.zeros(2))[3] for _ in range(3)]
    assert flags == [False, False, True]


def test_block_names_follow_uniqueness() -> None:
    standard = BLOCK_SETS["8"]  # two of every colour and every shape
    assert {block_name(i, standard) for i in range(8)} == {f"{b.colour} {b.shape}" for b in standard}
    assert block_name(0, BLOCK_SETS["4"]) == "red block"
    mixed = (Block("red", "moon"), Block("red", "cube"), Block("blue", "cube"))
    assert [block_name(i, mixed) for i in range(3)] == ["moon", "red cube", "blue block"]


def test_success_criteria_known_answers() -> None:
    positions = np.array([[0.3, 0.0], [0.34, 0.0], [0.5, 0.2]])
    assert Task("block2block", "", 0, (0.34, 0.0), other=1).is_success(positions)  # 4 cm apart
    positions[1, 0] = 0.36
    assert not Task("block2block", "", 0, (0.36, 0.0), other=1).is_success(positions)  # 6 cm apart
    location = Task("block2absolutelocation", "", 2, (0.5, 0.1), tolerance=0.115)
    assert location.is_success(positions) and not location.is_success(positions + np.array([0.0, 0.02]))
    relative = Task(
        "block2blockrelativelocation", "", 0, (0.3, 0.0), other=1, other_start=(0.36, 0.0), tolerance=0.04
    )
    assert relative.is_success(positions)
    moved = positions.copy()
    moved[1] += [0.06, 0.0]  # the reference block moved 6 cm: not a success even with A on target
    assert not relative.is_success(moved)


@pytest.mark.parametrize("family", FAMILIES)
def test_sampled_tasks_are_valid_and_not_already_done(family: str) -> None:
    rng = np.random.default_rng(0)
    blocks = BLOCK_SETS["8"]
    sampled = 0
    for _ in range(20):
        positions = rng.uniform([0.2, -0.25], [0.55, 0.25], size=(8, 2))
        task = sample_task(rng, family, positions, blocks)
        if task is None:
            continue
        sampled += 1
        assert task.family == family and block_name(task.block, blocks) in task.instruction
        assert not task.is_success(positions)
        if family != "block2block":
            assert on_board(np.asarray(task.target))
    assert sampled >= 15  # random 8-block layouts almost always admit a task of every family


def test_pixels_observation_holds_the_previous_and_current_frame() -> None:
    env = TabletopEnv(TabletopConfig(block_set="4", observation="pixels", image_size=(48, 64)))
    obs, _ = env.reset(seed=0)
    assert obs["pixels"].shape == (2, 48, 64, 3) and obs["pixels"].dtype == np.uint8
    np.testing.assert_array_equal(obs["pixels"][0], obs["pixels"][1])  # no previous frame at reset
    current = obs["pixels"][1]
    obs, *_ = env.step(np.array([0.1, 0.1]))
    np.testing.assert_array_equal(obs["pixels"][0], current)
    assert obs["pixels"][1].std() > 0  # something was drawn
    env.close()


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="block_set"):
        TabletopConfig(block_set="3")
    with pytest.raises(ValueError, match="observation"):
        TabletopConfig(observation="depth")
    with pytest.raises(ValueError, match="families"):
        TabletopConfig(families=("dance",))
    with pytest.raises(ValueError, match="need two blocks"):
        TabletopConfig(block_set="1", families=("block2block",))


def test_one_block_draws_only_single_block_families() -> None:
    env = TabletopEnv(TabletopConfig(block_set="1"))
    families = {env.reset(seed=seed)[1]["task_family"] for seed in range(10)}
    assert families <= {"block2absolutelocation", "block2relativelocation"} and families


def test_the_pusher_pushes_a_block() -> None:
    env = TabletopEnv(TabletopConfig(block_set="1"))
    env.reset(seed=0)
    address = env._block_qpos[0]
    env.data.qpos[address : address + 2] = (0.375, 0.0)
    env.data.qpos[address + 3 : address + 7] = (1.0, 0.0, 0.0, 0.0)
    env.data.qvel[:] = 0.0
    env.data.mocap_pos[0, :2] = env.target = np.array([0.375, -0.1])
    for _ in range(6):  # 18 cm towards +y, through the block
        env.step(np.array([0.0, 0.03]))
    block = env.block_positions()[0]
    assert block[1] > 0.05  # pushed along +y, ahead of the pusher (which stopped at y = 0.08)
    assert abs(block[0] - 0.375) < 0.03


def test_blocks_at_rest_stay_put() -> None:
    env = TabletopEnv()
    _, info = env.reset(seed=1)  # the pusher starts >= 6 cm from every block and does not move
    for _ in range(50):
        env.step(np.zeros(2))
    assert np.abs(env.block_positions() - info["block_positions"]).max() < 0.01
    quats = np.stack([env.data.qpos[a + 3 : a + 7] for a in env._block_qpos])  # (w, x, y, z)
    upright = 1 - 2 * (quats[:, 1] ** 2 + quats[:, 2] ** 2)  # cosine of each block's tilt
    assert (upright > np.cos(np.radians(2))).all()


def test_render_follows_render_mode() -> None:
    env = TabletopEnv(TabletopConfig(block_set="1", image_size=(32, 32)), render_mode="rgb_array")
    env.reset(seed=0)
    assert env.render().shape == (32, 32, 3)
    env.close()
    assert TabletopEnv(TabletopConfig(block_set="1")).render() is None


def test_the_oracle_solves_most_block2block_tasks() -> None:
    from siefm.domains.tabletop.oracle import PushOracle

    env = TabletopEnv(TabletopConfig(families=("block2block",)))
    oracle = PushOracle()
    successes = 0
    for seed in range(20):
        env.reset(seed=seed)
        oracle.reset()
        for _ in range(env.config.max_steps):
            _, _, terminated, truncated, _ = env.step(oracle.act(env))
            if terminated or truncated:
                break
        successes += terminated
    assert successes >= 16  # the benchmark measures ~92% over 100 episodes; a broken oracle gets ~0%


def test_oracle_detours_visit_their_waypoints_before_the_task() -> None:
    from siefm.domains.tabletop.oracle import PushOracle

    env = TabletopEnv(TabletopConfig(families=("block2block",)))
    lengths = {}
    for max_detours in (0, 3):
        oracle = PushOracle(max_detours=max_detours)
        total = 0
        for seed in range(10):
            env.reset(seed=seed)
            oracle.reset(seed=seed)
            waypoints = list(oracle.waypoints)
            assert len(waypoints) <= max_detours
            visited = 0
            for step in range(env.config.max_steps):  # noqa: B007 (its last value is used below)
                _, _, terminated, truncated, _ = env.step(oracle.act(env))
                if visited < len(waypoints) and np.linalg.norm(env.pusher - waypoints[visited]) < 0.01:
                    visited += 1
                if terminated or truncated:
                    break
            total += step + 1
            # Every waypoint is reached in order unless the task is (rarely) finished by the sweep itself.
            assert visited == len(waypoints) or terminated
        lengths[max_detours] = total
        if max_detours:
            again = PushOracle(max_detours=max_detours)
            again.reset(seed=3)
            oracle.reset(seed=3)
            np.testing.assert_array_equal(again.waypoints, oracle.waypoints)  # seeded per episode
    assert lengths[3] > lengths[0] * 1.2  # detours make the demonstrations longer
    with pytest.raises(ValueError, match="max_detours"):
        PushOracle(max_detours=-1)
    from siefm.domains.tabletop.collect import TabletopCollectConfig

    with pytest.raises(ValueError, match="max_detours"):
        TabletopCollectConfig(max_detours=-1)


def test_parallel_collection_writes_successful_oracle_episodes(tmp_path) -> None:
    from siefm.data.dataset import read_dataset
    from siefm.domains.tabletop.collect import TabletopCollectConfig, collect_tabletop

    config = TabletopCollectConfig(num_episodes=6, env=TabletopConfig(block_set="4"), num_workers=2)
    dataset = read_dataset(collect_tabletop(tmp_path / "data", config))
    assert 1 <= dataset.num_episodes <= 6
    assert dataset.info["siefm"]["env"]["id"] == "siefm/Tabletop-v0"
    for i in range(dataset.num_episodes):
        episode = dataset.episode(i)
        frames = len(episode["action"])
        assert (
            episode["is_success"][-1] and episode["is_terminal"][-1] and not episode["is_terminal"][:-1].any()
        )
        np.testing.assert_array_equal(episode["steps_to_go"], np.arange(frames - 1, -1, -1))
        np.testing.assert_array_equal(episode["action"][-1], [0.0, 0.0])
        assert episode["observation.state"].shape == (frames, 4 + 4 * 4)
    # Episodes are seeded by index, so one worker writes the same dataset as two.
    single = read_dataset(collect_tabletop(tmp_path / "one", dataclasses.replace(config, num_workers=1)))
    np.testing.assert_array_equal(single.columns["observation.state"], dataset.columns["observation.state"])
    assert single.tasks == dataset.tasks
