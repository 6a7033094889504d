"""The Aloha domain: the env against gym-aloha's own, the scripted demonstrator, datasets that replay in the
stock env, the missing-extra message, both stages from the command line, and annotated videos."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

gym_aloha = pytest.importorskip("gym_aloha", reason="the Aloha domain needs pip install 'siefm[aloha]'")

import gymnasium as gym  # noqa: E402
from test_cli import run_cli  # noqa: E402

from siefm.data.dataset import read_dataset  # noqa: E402
from siefm.domains import get_domain  # noqa: E402
from siefm.domains.aloha.demonstrator import KeyframeDemonstrator, TransferCubeDemonstrator  # noqa: E402
from siefm.domains.aloha.env import (  # noqa: E402
    CHUNK,
    COMMAND_FEATURES,
    JOINTS,
    TOOL_FEATURES,
    AlohaConfig,
    AlohaEnv,
)
from siefm.domains.aloha.insertion import InsertionDemonstrator  # noqa: E402


@pytest.mark.parametrize(("task", "objects"), [("transfer_cube", 7), ("insertion", 14)])
def test_the_env_starts_where_gym_alohas_does_and_declares_what_it_executes(task: str, objects: int) -> None:
    env = AlohaEnv(AlohaConfig(task=task))
    assert env.observation_space["state"].shape == (2 * JOINTS + objects + TOOL_FEATURES + COMMAND_FEATURES,)
    assert env.action_space.shape == (CHUNK * JOINTS,)
    low, high = env.action_space.low[:JOINTS], env.action_space.high[:JOINTS]
    assert low[0] == pytest.approx(-3.14158) and high[1] == pytest.approx(1.25664)  # waist, shoulder ranges
    assert 0 < low[6] < 0.1 and 0.9 < high[6] < 1  # the gripper: what the fingers' range allows
    stock_id = {"transfer_cube": "gym_aloha/AlohaTransferCube-v0", "insertion": "gym_aloha/AlohaInsertion-v0"}
    stock = gym.make(stock_id[task], obs_type="pixels_agent_pos")
    for seed in (3, 11):
        stock.reset(seed=seed)
        obs, info = env.reset(seed=seed)
        np.testing.assert_array_equal(env.physics.data.qpos, stock.unwrapped._env.physics.data.qpos)
        np.testing.assert_array_equal(obs["state"][:JOINTS], stock.unwrapped._env.task.get_qpos(env.physics))
        assert info == {"is_success": False, "stage": 0}
        np.testing.assert_array_equal(obs["state"][-JOINTS:], obs["state"][:JOINTS])  # no target sent yet
        tools, to_objects = obs["state"][-26:-20], obs["state"][-20:-14]
        held = [2 * JOINTS + (0 if task == "transfer_cube" else 7), 2 * JOINTS]  # left, right
        np.testing.assert_allclose(to_objects[:3], obs["state"][held[0] : held[0] + 3] - tools[:3])
        np.testing.assert_allclose(to_objects[3:], obs["state"][held[1] : held[1] + 3] - tools[3:])
        assert 0.1 < np.linalg.norm(tools[:3] - tools[3:]) < 0.5  # the hands start 34 cm apart
    stock.close()


def test_pixels_are_the_top_camera_at_the_asked_size() -> None:
    """In a process of its own: dm_control's render context and mujoco.Renderer (the tabletop's camera)
    do not share a process safely once an env that rendered is collected."""
    code = (
        "import numpy as np; from siefm.domains.aloha.env import AlohaConfig, AlohaEnv;"
        "env = AlohaEnv(AlohaConfig(observation='pixels', image_size=32)); obs, _ = env.reset(seed=0);"
        "p = obs['pixels']; assert p.shape == (32, 32, 3) and p.dtype == np.uint8 and p.std() > 5, p.shape;"
        "after, *_ = env.step(np.tile(obs['state'][:14], 5)); assert after['pixels'].shape == (32, 32, 3)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_contact_reward_is_gym_alohas_at_every_physics_step() -> None:
    """The vectorised reward against gym-aloha's own (which names each contact's geoms), over a scripted
    transfer that passes every stage, 0 to 4."""
    from gym_aloha.tasks.sim import TransferCubeTask

    env = AlohaEnv(AlohaConfig())
    demonstrator = TransferCubeDemonstrator()
    obs, _ = env.reset(seed=5)
    demonstrator.reset(5)
    scene, seen = env._scene, set()
    for _ in range(60):
        for target in demonstrator(obs).reshape(CHUNK, JOINTS):
            stage = scene.step(target)
            assert stage == TransferCubeTask.get_reward(scene.env.task, env.physics)
            seen.add(stage)
        obs = {"state": scene.state()}
        if 4 in seen:
            break
    assert seen == {0, 1, 2, 4} or seen == {0, 1, 2, 3, 4}


@pytest.mark.parametrize("task", ["transfer_cube", "insertion"])
def test_the_scripted_demonstrators_succeed_and_their_detours_cost_steps(task: str) -> None:
    """Straight, and with every sub-optimality at its most (pauses, detours, a re-grasp, a drop and, on the
    transfer, a feint of the left gripper)."""
    env = AlohaEnv(AlohaConfig(task=task))
    demonstrator = {"transfer_cube": TransferCubeDemonstrator, "insertion": InsertionDemonstrator}[task]

    def lengths(demonstrator: KeyframeDemonstrator) -> list[int]:
        steps = []
        for seed in range(200, 204):
            obs, _ = env.reset(seed=seed)
            demonstrator.reset(seed)
            for step in range(1, env.config.max_steps + 1):  # noqa: B007 (its last value is the length)
                obs, _, terminated, _, info = env.step(demonstrator(obs))
                if terminated:
                    break
            assert info["is_success"], f"seed {seed}"
            steps.append(step)
        return steps

    straight = lengths(demonstrator())
    detours = lengths(
        demonstrator(3, 3, regrasp_probability=1.0, drop_probability=1.0, feint_probability=1.0)
    )
    assert np.mean(detours) > np.mean(straight) + 5


def test_the_state_ends_with_the_targets_last_sent_and_actions_move_from_them() -> None:
    env = AlohaEnv()
    obs, _ = env.reset(seed=0)
    chunk = np.tile(obs["state"][:JOINTS], (CHUNK, 1))
    chunk[:, 1] += np.linspace(0.01, 0.05, CHUNK)  # the shoulder, forward
    chunk[-1, 6] = 5.0  # a gripper past its range: the actuator is told its limit
    after, *_ = env.step(chunk.reshape(-1))
    expected = chunk[-1].copy()
    expected[6] = env.action_space.high[6]
    np.testing.assert_array_equal(after["state"][-JOINTS:], expected)
    assert abs(after["state"][1] - expected[1]) > 1e-3  # the joint lags its target
    domain = get_domain("aloha")
    reference = domain.observation_spec(domain.env_config({})).action_reference
    np.testing.assert_array_equal(after["state"][list(reference)], np.tile(expected, CHUNK))


def test_an_unstable_simulation_ends_the_episode_as_a_fault() -> None:
    env = AlohaEnv()
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(50):  # targets anywhere in the joints' ranges, new ones every 20 ms
        after, _, terminated, _, info = env.step(env.action_space.sample())
        if "fault" in info:
            break
    assert "PhysicsError" in info["fault"] and terminated and not info["is_success"]
    assert np.isfinite(after["state"]).all()  # the last valid observation
    assert np.isfinite(env.reset(seed=0)[0]["state"]).all()


def test_a_missing_aloha_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import siefm.optional as optional

    real = optional.importlib.import_module

    def without_gym_aloha(name: str, *args):
        if name == "gym_aloha":
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(optional.importlib, "import_module", without_gym_aloha)
    with pytest.raises(ValueError, match=r"pip install 'siefm\[aloha\]'"):
        AlohaEnv()


def test_aloha_from_the_command_line_through_both_stages(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Scripted demonstrations whose recorded seeds reset the stock gym-aloha env to the same poses; then
    a tiny Stage 1, a Stage 2 iteration in 2 env workers, and an evaluation beside the demonstrators."""
    data, sft, rl, ev = (tmp_path / name for name in ("data", "sft", "rl", "eval"))
    code, _, err = run_cli(["collect", "--env", "aloha", "--out", data, "--aloha.num-episodes", "3"], capsys)
    assert code == 0, err
    dataset = read_dataset(data)
    assert dataset.num_episodes == 3 and dataset.columns["action"].shape[1] == CHUNK * JOINTS
    env = dataset.info["siefm"]["env"]
    assert env["config"]["policy_kwargs"] == {
        "pauses": 3,
        "detours": 3,
        "regrasp_probability": 0.3,
        "drop_probability": 0.5,
        "noise": 0.0,
        "feint_probability": 0.0,
    }
    stock = gym.make("gym_aloha/AlohaTransferCube-v0", obs_type="pixels_agent_pos")
    for start, _ in dataset.episode_bounds:
        stock.reset(seed=int(dataset.columns["episode_seed"][start]))
        cube = stock.unwrapped._env.physics.data.qpos[16:]
        np.testing.assert_allclose(
            dataset.columns["observation.state"][start][2 * JOINTS : 2 * JOINTS + 7], cube
        )
    stock.close()
    tiny = ["--sft.model.hidden-dim", "16", "--sft.model.num-layers", "1", "--sft.batch-size", "32"]
    code, _, err = run_cli(["sft", "--dataset", data, "--out", sft, *tiny, "--sft.steps", "20"], capsys)
    assert code == 0, err
    small = ["--improve.num-envs", "4", "--improve.minibatch-size", "8", "--improve.num-updates", "2"]
    improve = ["improve", "--sft-run", sft, "--out", rl, *small, "--improve.num-iterations", "1"]
    code, _, err = run_cli([*improve, "--improve.env-workers", "2"], capsys)
    assert code == 0, err
    code, _, err = run_cli(
        ["eval", "--checkpoint", rl / "checkpoints" / "policy", "--out", ev, "--eval.episodes", "2"], capsys
    )
    assert code == 0, err
    results = (ev / "results.json").read_text()
    assert '"demonstrator"' in results and '"optimal"' in results


def test_the_aloha_demo_writes_its_report(tmp_path: Path) -> None:
    """`siefm demo aloha` end to end on tiny settings: every policy's row, Stage 2's summary, the plot."""
    from siefm.config import EvalConfig, ImproveConfig, ModelConfig, SFTConfig
    from siefm.domains.aloha.demo import AlohaDemoConfig, run_demo
    from siefm.domains.aloha.domain import AlohaCollectConfig

    config = AlohaDemoConfig(
        collect=AlohaCollectConfig(num_episodes=3),
        sft=SFTConfig(model=ModelConfig(hidden_dim=16, num_layers=1), steps=20, batch_size=32, eval_every=10),
        improve=ImproveConfig(num_iterations=1, num_envs=2, minibatch_size=8, num_updates=2),
        eval=EvalConfig(episodes=2, max_steps=20),
    )
    results = run_demo(tmp_path / "demo", config)
    for name in ("bc", "improved", "demonstrator", "optimal"):
        assert results[name]["episodes"] == 2 and 0 <= results[name]["success_rate"] <= 1
    assert results["improve"]["env_steps"] >= 16 and "voc" in results["reward_model"]
    assert (tmp_path / "demo" / "learning_curve.png").is_file()
    assert [Path(path).parent.name for path in results["videos"]] == ["videos", "videos"]  # Stage 2, filmed
    assert (tmp_path / "demo" / "results.json").is_file() and (tmp_path / "demo" / "config.json").is_file()


def test_the_aloha_domain_clips_to_the_actuators_ranges() -> None:
    domain = get_domain("aloha")
    low, high = domain.action_bounds({"kwargs": {"task": "transfer_cube"}})
    env = AlohaEnv()
    np.testing.assert_array_equal(low, env.action_space.low)
    np.testing.assert_array_equal(high, env.action_space.high)
    assert domain.presets.model["steps_to_go_bins"] == AlohaConfig().max_steps + 1


def test_aloha_videos_show_the_top_camera_under_a_caption(tmp_path: Path) -> None:
    """`write_videos` with a tiny untrained EFM: one GIF per seeded episode, named by its outcome, each frame
    the top camera at the asked size under the caption (a third line, the detector's, with a reward model),
    one frame per step plus the first."""
    import imageio.v3 as iio
    import torch

    from siefm.config import ModelConfig
    from siefm.domains.aloha.env import TASK_TEXT
    from siefm.domains.aloha.videos import write_videos
    from siefm.domains.gymnasium_env.env import describe
    from siefm.eval.frames import caption_height
    from siefm.improve.reward import RewardModel
    from siefm.models.efm import EFM, ModelSpec
    from siefm.models.text import WordTokenizer

    domain = get_domain("aloha")
    env, _ = describe(domain.env_id, {"task": "transfer_cube"}, {}, 3, None, TASK_TEXT["transfer_cube"])
    config = ModelConfig(hidden_dim=16, num_layers=1).resolve(domain.env_id)
    observed = domain.observation_spec(env.to_dict())
    vocabulary = WordTokenizer.from_texts([env.task]).vocabulary
    dims = observed.state_dim, CHUNK * JOINTS
    spec = ModelSpec(dims[0], config.max_words, dims[1], vocabulary, (), observed.action_reference)
    scales = dict(zip(("mean", "std", "min", "max"), (0.0, 1.0, -1.0, 1.0), strict=True))
    stats = {
        key: {k: torch.full((dim,), v * std) for k, v in scales.items()}
        for key, dim, std in (("state", dims[0], 1.0), ("action", dims[1], 0.01))
    }
    torch.manual_seed(0)
    model = EFM(config, spec, stats)
    scored = write_videos(model, env, RewardModel(model, 1e6), tmp_path / "d", episodes=2, seed=3, size=64)
    plain = write_videos(model, env, None, tmp_path / "plain", episodes=1, seed=3, size=64)
    assert [p.name for p in scored] == ["aloha-00-failure.gif", "aloha-01-failure.gif"]  # 3 steps: too short
    for path, lines in ((scored[0], 3), (plain[0], 2)):
        frames = iio.imread(path)
        assert frames.shape == (3 + 1, 64 + caption_height(lines), 64, 3)
        assert frames[:, : caption_height(lines)].any() and frames[:, caption_height(lines) :].any()
