"""The EFM contract (both action heads), checkpoints on disk, and config validation."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.testing import assert_close

from siefm.checkpoint import METADATA, WEIGHTS, CheckpointError, load_checkpoint, save_checkpoint
from siefm.config import EvalConfig, ImproveConfig, ModelConfig, SFTConfig, from_dict, to_dict
from siefm.domains import REGISTRY
from siefm.domains.pointmass.collect import CollectConfig
from siefm.domains.pointmass.demo import DemoConfig
from siefm.domains.pointmass.env import PointMassConfig
from siefm.models.efm import EFM, ModelSpec

POINTMASS_ID = REGISTRY["pointmass"].env_id
TABLETOP_ID = REGISTRY["tabletop"].env_id

SPEC = ModelSpec(state_dim=4, goal_dim=2, action_dim=2)
HEADS = ["gaussian", "tokenized"]
B = 16


def make_stats(spec: ModelSpec = SPEC, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Non-trivial statistics, so a model that ignored or mixed them up would give other outputs."""
    g = torch.Generator().manual_seed(seed)

    def stats(dim: int, scale: float) -> dict[str, torch.Tensor]:
        mean = (torch.rand(dim, generator=g) - 0.5) * scale
        std = (torch.rand(dim, generator=g) + 0.5) * scale
        return {"mean": mean, "std": std, "min": mean - 2 * std, "max": mean + 2 * std}

    return {
        "state": stats(spec.state_dim, 0.5),
        "goal": stats(spec.goal_dim, 0.5),
        "action": stats(spec.action_dim, 1e-3),
    }


def make_model(action_head: str, spec: ModelSpec = SPEC, seed: int = 0) -> EFM:
    torch.manual_seed(seed)
    return EFM(
        ModelConfig(hidden_dim=32, num_layers=2, action_head=action_head).resolve(POINTMASS_ID),
        spec,
        make_stats(spec, seed),
    )


def make_inputs(
    spec: ModelSpec = SPEC, batch: int = B, seed: int = 1
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"state": torch.randn(batch, spec.state_dim, generator=g)}, torch.randn(
        batch, spec.goal_dim, generator=g
    )


# --- the EFM ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("action_head", HEADS)
def test_output_shapes(action_head: str) -> None:
    model = make_model(action_head)
    obs, goal = make_inputs()
    action, log_prob = model.act(obs, goal)
    assert action.shape == (B, 2) and log_prob.shape == (B,)
    assert model.log_prob(obs, goal, action).shape == (B,)
    assert model.steps_to_go(obs, goal).shape == (B,)
    assert model.steps_to_go_logits(obs, goal).shape == (B, model.config.steps_to_go_bins)
    assert torch.isfinite(log_prob).all()
    d = model.steps_to_go(obs, goal)
    assert ((d >= 0) & (d <= model.config.steps_to_go_max)).all()  # an expectation over centres 0..140


@pytest.mark.parametrize("action_head", HEADS)
def test_deterministic_act_is_repeatable_and_sampling_follows_the_generator(action_head: str) -> None:
    model = make_model(action_head)
    obs, goal = make_inputs()
    first, _ = model.act(obs, goal, deterministic=True)
    second, _ = model.act(obs, goal, deterministic=True)
    assert_close(first, second, rtol=0, atol=0)
    a, _ = model.act(obs, goal, generator=torch.Generator().manual_seed(5))
    b, _ = model.act(obs, goal, generator=torch.Generator().manual_seed(5))
    c, _ = model.act(obs, goal, generator=torch.Generator().manual_seed(6))
    assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("action_head", HEADS)
def test_log_prob_of_a_sampled_action_is_the_returned_one(action_head: str) -> None:
    model = make_model(action_head)
    obs, goal = make_inputs()
    for deterministic in (False, True):
        action, log_prob = model.act(
            obs, goal, deterministic=deterministic, generator=torch.Generator().manual_seed(0)
        )
        assert_close(model.log_prob(obs, goal, action), log_prob)


def test_gaussian_log_prob_by_hand() -> None:
    model = make_model("gaussian")
    obs, goal = make_inputs()
    dist = model.action_distribution(obs, goal)
    action = torch.randn(B, 2) * 1e-3
    head = model.action_head
    z = (action - head.action_mean) / head.action_std
    loc, scale = dist.normal.loc, dist.normal.scale
    expected = (
        -0.5 * ((z - loc) / scale) ** 2 - scale.log() - 0.5 * torch.log(torch.tensor(2 * torch.pi))
    ).sum(-1)
    assert_close(model.log_prob(obs, goal, action), expected)
    # The mode is the mean, in env units.
    assert_close(model.act(obs, goal, deterministic=True)[0], loc * head.action_std + head.action_mean)


def test_clipped_gaussian_log_prob_by_hand() -> None:
    """With bounds, an action at a bound scores the probability mass at or past it; inside, the density."""
    from siefm.models.heads import GaussianActions

    mean, scale = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.5]])
    stats = torch.zeros(2), torch.ones(2)  # env units = z-scored units
    dist = GaussianActions(mean.clone().requires_grad_(), scale, *stats)
    bounds = torch.tensor([-1.0, -1.0]), torch.tensor([1.0, 1.0])
    phi = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731, the standard normal CDF
    # Dimension 0 at the low bound: P(x <= -1) under N(0, 1); dimension 1 inside: N(1, 0.5) density at 0.5.
    inside = -0.5 * ((0.5 - 1.0) / 0.5) ** 2 - math.log(0.5) - 0.5 * math.log(2 * math.pi)
    expected = math.log(phi(-1.0)) + inside
    assert_close(dist.log_prob(torch.tensor([[-1.0, 0.5]]), bounds), torch.tensor([expected]))
    # At the high bound: P(x >= 1) under N(1, 0.5) is one half.
    at_high = dist.log_prob(torch.tensor([[0.0, 1.0]]), bounds)
    density_at_0 = -0.5 * math.log(2 * math.pi)
    assert_close(at_high, torch.tensor([density_at_0 + math.log(0.5)]))
    # Without bounds it is the plain density.
    plain = dist.log_prob(torch.tensor([[-1.0, 0.5]]))
    assert_close(plain, torch.tensor([-0.5 - 0.5 * math.log(2 * math.pi) + inside]))


def test_clipped_token_log_prob_by_hand() -> None:
    """Tokens at 0.5, 1.5, 2.5, 3.5 (4 bins over 0..4): with bounds, an action at a bound scores every token
    at or past it; inside a bound, or at one no token passes, its own token; without bounds, its token."""
    from siefm.models.bins import UniformBins
    from siefm.models.heads import TokenActions

    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    dist = TokenActions(
        probs.log().view(1, 1, 4), UniformBins(4, -1.0, 1.0), torch.zeros(1), torch.full((1,), 4.0)
    )
    log = lambda p: torch.tensor([math.log(p)])  # noqa: E731
    bounds = torch.tensor([1.0]), torch.tensor([2.0])
    assert_close(dist.log_prob(torch.tensor([[2.0]]), bounds), log(0.3 + 0.4))  # at high: 2.5 and 3.5
    assert_close(dist.log_prob(torch.tensor([[1.0]]), bounds), log(0.1))  # at low: 0.5
    assert_close(dist.log_prob(torch.tensor([[1.5]]), bounds), log(0.2))  # inside
    assert_close(dist.log_prob(torch.tensor([[2.0]])), log(0.3))  # no bounds: 2.0's own token (2.5)
    wide = torch.tensor([0.0]), torch.tensor([4.0])  # no token past either bound
    assert_close(dist.log_prob(torch.tensor([[4.0]]), wide), log(0.4))


def test_clipped_gaussian_gradient_vanishes_past_the_bound_and_stays_finite() -> None:
    from siefm.models.heads import GaussianActions

    bounds = torch.tensor([-1.0]), torch.tensor([1.0])
    gradients = []
    for centre in (0.5, 5.0, 1e4):  # the mean inside, past the bound, far past it
        mean = torch.tensor([[centre]], requires_grad=True)
        dist = GaussianActions(mean, torch.tensor([[0.01]]), torch.zeros(1), torch.ones(1))
        dist.log_prob(torch.tensor([[1.0]]), bounds).sum().backward()  # executed at the high bound
        gradients.append(mean.grad.item())
    assert all(math.isfinite(g) for g in gradients)
    assert gradients[0] > 100  # inside: a strong pull towards the bound
    assert 0 <= gradients[1] < 1e-6 and gradients[2] == 0  # past it: all mass is there, nothing to push
    # The plain density would push a far-off mean back with a gradient of (1 - 1e4) / 0.01 ** 2.
    far = torch.tensor([[1e4]], requires_grad=True)
    GaussianActions(far, torch.tensor([[0.01]]), torch.zeros(1), torch.ones(1)).log_prob(
        torch.tensor([[1.0]])
    ).sum().backward()
    assert far.grad.item() < -1e7


def test_tokenized_actions_are_bin_centres_and_round_trip() -> None:
    model = make_model("tokenized")
    obs, goal = make_inputs()
    head = model.action_head
    num_bins = model.config.action_bins
    unit_centres = -1 + (torch.arange(num_bins) + 0.5) * 2 / num_bins  # num_bins equal bins over [-1, 1]
    env_centres = (unit_centres[:, None] + 1) / 2 * (
        head.action_max - head.action_min
    ) + head.action_min  # (K, A)
    action, log_prob = model.act(obs, goal, generator=torch.Generator().manual_seed(0))
    # Every sampled value is one of the K centres of its dimension.
    distance = (action[:, None, :] - env_centres[None]).abs()  # (B, K, A)
    nearest, index = distance.min(1)
    assert_close(nearest, torch.zeros_like(nearest), rtol=0, atol=1e-9)
    # log p is the sum over dimensions of log softmax at the sampled token.
    logits = model.action_distribution(obs, goal).logits  # (B, A, K)
    expected = torch.log_softmax(logits, -1).gather(-1, index.unsqueeze(-1)).squeeze(-1).sum(-1)
    assert_close(log_prob, expected)
    assert_close(model.log_prob(obs, goal, action), expected)
    # The mode is the most likely token's centre; the data's extremes map to the end tokens.
    mode, _ = model.act(obs, goal, deterministic=True)
    assert_close(mode, env_centres.T.gather(1, logits.argmax(-1).T).T)
    assert model.action_distribution(obs, goal).bins.to_index(torch.tensor([-1.0, 1.0])).tolist() == [
        0,
        num_bins - 1,
    ]


@pytest.mark.parametrize("action_head", HEADS)
def test_policy_parameters_exclude_the_steps_to_go_tower(action_head: str) -> None:
    model = make_model(action_head)
    policy = {id(p) for p in model.policy_parameters()}
    expected = {id(p) for p in [*model.policy_tower.parameters(), *model.action_head.parameters()]}
    steps = {id(p) for p in [*model.steps_to_go_tower.parameters(), *model.steps_to_go_head.parameters()]}
    assert policy == expected
    assert not policy & steps
    assert policy | steps == {id(p) for p in model.parameters()}
    # And the towers are separate: the action log-likelihood has no gradient in the steps-to-go tower.
    obs, goal = make_inputs()
    action, _ = model.act(obs, goal)
    model.log_prob(obs, goal, action).sum().backward()
    assert all(p.grad is None for p in model.steps_to_go_tower.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.policy_parameters())


@pytest.mark.parametrize("action_head", HEADS)
def test_inputs_are_z_scored_with_the_saved_statistics(action_head: str) -> None:
    stats = make_stats()
    model = make_model(action_head)
    assert_close(model.input_mean, torch.cat([stats["state"]["mean"], stats["goal"]["mean"]]))
    assert_close(model.input_std, torch.cat([stats["state"]["std"], stats["goal"]["std"]]))
    obs, goal = make_inputs()
    z = (torch.cat([obs["state"], goal], -1) - model.input_mean) / model.input_std
    assert_close(model.steps_to_go_logits(obs, goal), model.steps_to_go_head(model.steps_to_go_tower(z)))


def test_clipped_inputs_are_read_as_at_the_clip_and_the_scale_stops_at_its_ceiling() -> None:
    base = ModelConfig(hidden_dim=32, num_layers=2, action_head="gaussian").resolve(POINTMASS_ID)
    assert base.input_clip == 0 and base.max_scale == 0  # off unless a domain or the user asks
    torch.manual_seed(0)
    model = EFM(dataclasses.replace(base, input_clip=5.0, max_scale=1.0), SPEC, make_stats())
    with torch.no_grad():
        model.action_head.linear.bias[SPEC.action_dim :] = 50.0  # a scale far above the ceiling
    obs, goal = make_inputs()
    far = {"state": model.input_mean[:4] + 1e4 * model.input_std[:4] * torch.sign(obs["state"])}
    at_clip = {"state": model.input_mean[:4] + 5.0 * model.input_std[:4] * torch.sign(obs["state"])}
    assert_close(model.steps_to_go(far, goal), model.steps_to_go(at_clip, goal))
    assert_close(model.act(far, goal, deterministic=True)[0], model.act(at_clip, goal, deterministic=True)[0])
    assert (model.action_distribution(obs, goal).normal.scale == 1.0).all()
    unclipped = EFM(base, SPEC, make_stats())
    unclipped.load_state_dict(model.state_dict())
    assert not torch.allclose(unclipped.steps_to_go(far, goal), unclipped.steps_to_go(at_clip, goal))


# --- checkpoints ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("action_head", HEADS)
def test_save_load_gives_identical_outputs_and_buffers(action_head: str, tmp_path: Path) -> None:
    model = make_model(action_head, seed=3)
    with torch.no_grad():  # move away from the initialisation so a fresh model would not pass
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    metadata = {"step": 7, "success_threshold": 2.5, "env": {"id": "siefm/PointMass-v0"}}
    path = save_checkpoint(tmp_path / "ckpt", model, metadata)
    assert sorted(p.name for p in path.iterdir()) == [METADATA, WEIGHTS]
    loaded, loaded_metadata = load_checkpoint(path)
    assert loaded_metadata == metadata
    assert loaded.config == model.config and loaded.spec == model.spec
    assert not loaded.training
    for name, buffer in model.named_buffers():
        assert_close(dict(loaded.named_buffers())[name], buffer, rtol=0, atol=0)
    assert {n for n, _ in model.named_buffers()} >= {"input_mean", "input_std"}
    for name, value in model.state_dict().items():
        assert_close(loaded.state_dict()[name], value, rtol=0, atol=0)
    obs, goal = make_inputs()
    gen = torch.Generator
    assert_close(
        loaded.act(obs, goal, generator=gen().manual_seed(0)),
        model.act(obs, goal, generator=gen().manual_seed(0)),
    )
    assert_close(loaded.act(obs, goal, deterministic=True), model.act(obs, goal, deterministic=True))
    assert_close(loaded.steps_to_go(obs, goal), model.steps_to_go(obs, goal))


@pytest.mark.parametrize("head", HEADS)
def test_actions_from_the_state_are_the_state_plus_the_predicted_change(head: str) -> None:
    """With an action reference, the same weights give actions shifted by the referenced state numbers
    (-1: none), and the log-probability of the shifted action is the absolute model's of the change (for
    tokens: the same bins, moved by the reference)."""
    relative = dataclasses.replace(SPEC, action_reference=(2, -1))
    absolute, shifted = make_model(head), make_model(head, relative)
    shifted.load_state_dict(absolute.state_dict())
    obs, goal = make_inputs()
    offset = torch.stack([obs["state"][:, 2], torch.zeros(B)], dim=1)
    assert_close(
        shifted.act(obs, goal, deterministic=True)[0],
        absolute.act(obs, goal, deterministic=True)[0] + offset,
        atol=1e-5,
        rtol=1e-5,
    )
    action = absolute.act(obs, goal, generator=torch.Generator().manual_seed(0))[0]
    # float32 rounding of (change + state) - state, over an action std of 1e-3: about 1e-4 in log-prob
    assert_close(
        shifted.log_prob(obs, goal, action + offset), absolute.log_prob(obs, goal, action), atol=1e-3, rtol=0
    )
    assert not torch.allclose(
        absolute.log_prob(obs, goal, action + offset), absolute.log_prob(obs, goal, action)
    )


def test_save_replaces_an_existing_checkpoint(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ckpt", make_model("gaussian", seed=0), {"v": 1})
    newer = make_model("gaussian", seed=1)
    save_checkpoint(tmp_path / "ckpt", newer, {"v": 2})
    loaded, metadata = load_checkpoint(tmp_path / "ckpt")
    assert metadata == {"v": 2}
    assert_close(loaded.state_dict()["policy_tower.0.weight"], newer.state_dict()["policy_tower.0.weight"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no .tmp / .old left behind


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "ckpt", make_model("gaussian"), {"step": 1})


def test_missing_checkpoint_dir(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"is not a siefm checkpoint: it needs model\.safetensors"):
        load_checkpoint(tmp_path / "nope")


def test_missing_weights_file(checkpoint: Path) -> None:
    (checkpoint / WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match="not a siefm checkpoint"):
        load_checkpoint(checkpoint)


def test_corrupt_json(checkpoint: Path) -> None:
    (checkpoint / METADATA).write_text('{"format": "siefm.checkpoint/1", "model_config": {')
    with pytest.raises(CheckpointError, match=r"not valid JSON.*corrupt"):
        load_checkpoint(checkpoint)


def test_foreign_json(checkpoint: Path) -> None:
    (checkpoint / METADATA).write_text(json.dumps({"format": "something/else"}))
    with pytest.raises(CheckpointError, match=r"is not a siefm\.checkpoint/1 checkpoint"):
        load_checkpoint(checkpoint)


def test_invalid_model_description(checkpoint: Path) -> None:
    info = json.loads((checkpoint / METADATA).read_text())
    info["model_config"]["hidden_dim"] = 0
    (checkpoint / METADATA).write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match=r"invalid model description.*hidden_dim"):
        load_checkpoint(checkpoint)


def test_truncated_safetensors(checkpoint: Path) -> None:
    data = (checkpoint / WEIGHTS).read_bytes()
    (checkpoint / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors is not a readable safetensors file"):
        load_checkpoint(checkpoint)


def test_weights_that_do_not_match_the_config(checkpoint: Path) -> None:
    info = json.loads((checkpoint / METADATA).read_text())
    info["model_config"]["hidden_dim"] = 64
    (checkpoint / METADATA).write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match=r"does not match the model in checkpoint\.json"):
        load_checkpoint(checkpoint)


def test_weights_missing_a_tensor(checkpoint: Path) -> None:
    state = load_file(str(checkpoint / WEIGHTS))
    del state["input_mean"]
    save_file(state, str(checkpoint / WEIGHTS))
    with pytest.raises(CheckpointError, match="input_mean"):
        load_checkpoint(checkpoint)


def test_json_without_metadata(checkpoint: Path) -> None:
    info = json.loads((checkpoint / METADATA).read_text())
    del info["metadata"]
    (checkpoint / METADATA).write_text(json.dumps(info))
    with pytest.raises(CheckpointError):
        load_checkpoint(checkpoint)


# --- configs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: ImproveConfig(gamma=1.5), "ImproveConfig.gamma"),
        (lambda: ImproveConfig(gamma=-0.1), "ImproveConfig.gamma"),
        (lambda: ImproveConfig(success_threshold=-1.0), "ImproveConfig.success_threshold"),
        (lambda: ImproveConfig(num_envs=0), "ImproveConfig.num_envs"),
        (lambda: ImproveConfig(minibatch_size=-4), "ImproveConfig.minibatch_size"),
        (lambda: ImproveConfig(reward_scale=0.0), "ImproveConfig.reward_scale"),
        (lambda: ImproveConfig(lr=-1e-3), "ImproveConfig.lr"),
        (lambda: ImproveConfig(stream_interval_s=-0.1), "ImproveConfig.stream_interval_s"),
        (lambda: ImproveConfig(actor_timeout_s=5, stream_interval_s=5), "ImproveConfig.stream_interval_s"),
        (lambda: SFTConfig(success_threshold=-1.0), "SFTConfig.success_threshold"),
        (lambda: SFTConfig(batch_size=0), "SFTConfig.batch_size"),
        (lambda: SFTConfig(val_fraction=1.0), "SFTConfig.val_fraction"),
        (lambda: SFTConfig(data_fraction=0.0), "SFTConfig.data_fraction"),
        (lambda: SFTConfig(reward_selection="accuracy"), "SFTConfig.reward_selection"),  # type: ignore[arg-type]
        (lambda: ModelConfig(hidden_dim=-8), "ModelConfig.hidden_dim"),
        (lambda: ModelConfig(num_layers=0), "ModelConfig.num_layers"),
        (lambda: ModelConfig(steps_to_go_bins=1), "ModelConfig.steps_to_go_bins"),
        (lambda: ModelConfig(action_head="diffusion"), "ModelConfig.action_head"),  # type: ignore[arg-type]
        (lambda: ModelConfig(min_scale=0.0), "ModelConfig.min_scale"),
        (lambda: CollectConfig(num_episodes=0), "CollectConfig.num_episodes"),
        (lambda: CollectConfig(num_waypoints=-1), "CollectConfig.num_waypoints"),
        (lambda: EvalConfig(episodes=-5), "EvalConfig.episodes"),
    ],
)
def test_config_errors_name_the_field(make, field: str) -> None:
    with pytest.raises(ValueError, match=rf"{field} = .* is invalid: it must be"):
        make()


def test_configs_accept_their_edges() -> None:
    ImproveConfig(gamma=0.0, success_threshold=0.0)
    ImproveConfig(gamma=1.0, stream_interval_s=0.0)
    SFTConfig(success_threshold=0.0, data_fraction=1.0)
    assert ImproveConfig(num_updates=3, minibatch_size=5).samples_per_iteration == 15


@pytest.mark.parametrize(
    "config",
    [
        SFTConfig(
            model=ModelConfig(hidden_dim=48, action_head="tokenized", action_bins=11),
            steps=9,
            success_threshold=1.5,
        ),
        CollectConfig(num_episodes=12, env=PointMassConfig(substeps=4, success_radius=0.2)),
        ImproveConfig(gamma=0.5, end_on_true_success=True, success_threshold=None),
        EvalConfig(episodes=3, deterministic=True),
        DemoConfig(
            collect=CollectConfig(num_episodes=5, env=PointMassConfig(max_action=2e-3)),
            sft=SFTConfig(model=ModelConfig(num_layers=1)),
            improve=ImproveConfig(num_envs=3),
            eval=EvalConfig(seed=9),
        ),
    ],
    ids=["sft", "collect", "improve", "eval", "demo"],
)
def test_config_dict_round_trip(config) -> None:
    data = to_dict(config)
    assert from_dict(type(config), data) == config
    assert from_dict(type(config), json.loads(json.dumps(data))) == config  # through JSON, as in run dirs
    assert from_dict(type(config), {}) == type(config)()  # missing keys take the defaults


def test_from_dict_validates() -> None:
    data = to_dict(SFTConfig())
    data["model"]["hidden_dim"] = 0
    with pytest.raises(ValueError, match=r"ModelConfig\.hidden_dim"):
        from_dict(SFTConfig, data)


def test_model_config_resolves_to_the_documented_domain_defaults() -> None:
    # PointMass: one steps-to-go class per step 0..140, a Gaussian head, goal vectors. Tabletop (the paper's
    # LanguageTable settings): 50 bins over 0..100, tokenized actions, instruction goals.
    pointmass, tabletop = ModelConfig().resolve(POINTMASS_ID), ModelConfig().resolve(TABLETOP_ID)
    assert (pointmass.steps_to_go_bins, pointmass.steps_to_go_max, pointmass.action_head) == (
        141,
        140.0,
        "gaussian",
    )
    assert pointmass.goal_encoder == "vector"
    assert (tabletop.steps_to_go_bins, tabletop.steps_to_go_max, tabletop.action_head) == (
        50,
        100.0,
        "tokenized",
    )
    assert (tabletop.goal_encoder, tabletop.arms.word_positions) == ("words", "both-ends")
    # What the user set explicitly wins over the domain default.
    assert ModelConfig(action_head="gaussian").resolve(TABLETOP_ID).action_head == "gaussian"
    with pytest.raises(ValueError, match="no default ModelConfig settings for the env 'my/Env-v0'"):
        ModelConfig().resolve("my/Env-v0")
    assert (
        ModelConfig(goal_encoder="vector", action_head="gaussian", steps_to_go_bins=3, steps_to_go_max=2.0)
        .resolve("my/Env-v0")
        .steps_to_go_bins
        == 3
    )


def test_stage1_batch_defaults_to_256_and_to_128_for_pixels() -> None:
    assert SFTConfig().resolve(TABLETOP_ID).batch_size == 256
    pixels = SFTConfig(model=ModelConfig(observation="pixels"))
    assert pixels.resolve(TABLETOP_ID).batch_size == 128
    assert dataclasses.replace(pixels, batch_size=64).resolve(TABLETOP_ID).batch_size == 64


def test_name_words_marks_each_position_holding_a_word_of_an_objects_name() -> None:
    from siefm.models.objects import ObjectSelector

    names = torch.tensor([[5, 7, 0], [7, 9, 0], [3, 0, 0]])  # padded with 0; word 7 is in two names
    selector = ObjectSelector(
        num_objects=3, prefix_dim=4, object_dim=4, num_roles=2, key_dim=4, text_dim=8,
        object_words=names, max_words=4,
    )  # fmt: skip
    layout = torch.tensor([[5, 7, 0, 12], [0, 3, 9, 2]])
    expected = torch.tensor(
        [
            [[True, False, False], [True, True, False], [False, False, False], [False, False, False]],
            [[False, False, False], [False, False, True], [False, True, False], [False, False, False]],
        ]
    )
    assert torch.equal(selector.name_words(layout), expected)
    # The same as comparing every position with every name word (without the padding id).
    ids = torch.randint(0, 14, (64, 8), generator=torch.Generator().manual_seed(0))
    brute = (ids[:, :, None, None] == names[None, None]).any(-1) & (ids != 0)[..., None]
    assert torch.equal(selector.name_words(ids), brute)
