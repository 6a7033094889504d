"""The board-reading pixel EFM (`pixel_readout = 'board'`): the reader's loss, what it may and may not
read, which losses train which layers, checkpoints, config rules, and both stages from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import with_arms
from test_pixels import (  # noqa: F401
    BOARD_METADATA,
    SIZE,
    board_observation,
    pixel_config,
    pixel_model,
    tabletop_data,
)
from torch.testing import assert_close

from siefm.checkpoint import env_spec, load_checkpoint, save_checkpoint
from siefm.config import ModelConfig, SFTConfig
from siefm.domains import REGISTRY
from siefm.models.board_efm import BoardEFM, board_error
from siefm.models.build import with_encoders
from siefm.sft import stage1_optimizer

TABLETOP_ID = REGISTRY["tabletop"].env_id


def object_names(env: dict) -> tuple[str, ...]:
    return env_spec(env).object_names


NAMES = object_names(BOARD_METADATA["env"])  # the 4-block board the tests render


def board_model(seed: int = 0, **overrides: object) -> BoardEFM:
    model = pixel_model(pixel_config(pixel_readout="board", **overrides), seed, objects=NAMES)
    assert isinstance(model, BoardEFM)
    return model


def test_board_error_known_answer() -> None:
    rows = torch.zeros(1, 2, 4)
    estimate = rows.clone()
    estimate[0, 0, :2] = torch.tensor([0.03, 0.04])  # 5 cm off: 0.5 dm, squared 0.25
    estimate[0, 1, 2] = 0.2  # cos yaw off by 0.2: 0.04
    loss, error_cm = board_error(estimate, rows)
    assert_close(loss, torch.tensor((0.25 + 0.04) / 2))
    assert_close(error_cm, torch.tensor([[5.0, 0.0]]))


def test_the_model_never_reads_the_recorded_block_poses_but_its_reader_learns_from_them() -> None:
    model = board_model().eval()
    obs, instructions = board_observation(steps=2)
    goals = model.goal_input(instructions)
    moved = {**obs, "state": obs["state"].clone()}
    moved["state"][:, 4:] += 0.1  # other block poses, the same frames
    action = torch.full((2, 2), 0.02)
    assert_close(model.steps_to_go(moved, goals), model.steps_to_go(obs, goals))
    assert_close(model.log_prob(moved, goals, action), model.log_prob(obs, goals, action))
    assert model.perception_loss(moved)[0] != model.perception_loss(obs)[0]
    moved["state"][:, :4] += 0.1  # the pusher and its target are read
    assert not torch.allclose(model.log_prob(moved, goals, action), model.log_prob(obs, goals, action))


@pytest.mark.parametrize("learn_from", ["estimate", "recorded"])
def test_heads_do_not_train_the_reader_and_the_reader_loss_trains_nothing_else(learn_from: str) -> None:
    model = board_model(board_towers_learn_from=learn_from)
    raw, instructions = board_observation(steps=1)
    goals = model.goal_input(instructions)
    obs = model.encoded(raw)  # as Stage 1: the board is read once, with gradients, for every loss
    out = model(obs, goals)
    towers_read = raw if learn_from == "recorded" else model.estimated_state(raw)
    assert_close(out.steps_to_go_logits, model.board(towers_read, goals).steps_to_go_logits)
    if learn_from == "recorded":  # training on the recorded poses; evaluation (validation) on the estimate
        estimated = model.board(model.estimated_state(raw), goals).steps_to_go_logits
        assert not torch.allclose(out.steps_to_go_logits, estimated)
        assert_close(model.eval()(model.encoded(raw), goals).steps_to_go_logits, estimated)
        model.train()
    (out.steps_to_go_logits.sum() + out.actions.log_prob(torch.zeros(2, 2)).sum()).backward()
    assert all(p.grad is None for p in model.reader.parameters())
    assert all(p.grad is None for p in model.vision.parameters())
    model.zero_grad(set_to_none=True)
    model.perception_loss(obs)[0].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.reader.parameters())
    assert all(p.grad is None for p in model.board.parameters())


@pytest.mark.parametrize("vision_encoder", ["scratch", "efficientnet-lite0"])
def test_stage1_trains_perception_at_its_own_learning_rate(vision_encoder: str) -> None:
    model = board_model(vision_encoder=vision_encoder)
    optimizer = stage1_optimizer(model, SFTConfig(lr=3e-4, perception_lr=1e-3))
    rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert len(rates) == sum(len(group["params"]) for group in optimizer.param_groups)  # each once
    assert set(rates) == {id(p) for p in model.parameters()}
    perception = [
        *model.reader.parameters(),
        *(model.vision.parameters() if vision_encoder == "scratch" else ()),
    ]
    assert {rates.pop(id(p)) for p in perception} == {1e-3}
    assert set(rates.values()) == {3e-4}
    state_model = board_model().board
    assert [g["lr"] for g in stage1_optimizer(state_model, SFTConfig()).param_groups] == [SFTConfig().lr]


def test_stage2_trains_the_state_towers_policy_side_only() -> None:
    model = board_model()
    trained = {id(p) for p in model.policy_parameters()}
    for frozen in (model.vision, model.reader, model.board.steps_to_go_tower):
        assert not {id(p) for p in frozen.parameters()} & trained
    assert {id(p) for p in model.board.policy_tower.parameters()} <= trained


def test_board_checkpoint_round_trip_and_cached_features(tmp_path: Path) -> None:
    model = board_model(vision_encoder="efficientnet-lite0").eval()
    obs, instructions = board_observation(steps=2)
    goals = model.goal_input(instructions)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "ckpt", model, BOARD_METADATA))
    assert isinstance(loaded, BoardEFM)
    assert_close(loaded.steps_to_go(obs, goals), model.steps_to_go(obs, goals))
    assert_close(model.steps_to_go(model.frozen_inputs(obs), goals), model.steps_to_go(obs, goals))


def test_board_readout_config_rules() -> None:
    config = ModelConfig(observation="pixels", pixel_readout="board").resolve(TABLETOP_ID)
    assert config.goal_encoder == "words"
    assert ModelConfig(observation="pixels").resolve(TABLETOP_ID).goal_encoder == "minilm"
    with pytest.raises(ValueError, match="goal_encoder"):
        ModelConfig(observation="pixels", pixel_readout="board", goal_encoder="minilm")
    with pytest.raises(ValueError, match="pixel_readout"):
        ModelConfig(**with_arms(observation="pixels", pixel_readout="board", pixel_towers="shared"))
    with pytest.raises(ValueError, match="pixel_readout"):
        ModelConfig(**with_arms(observation="pixels", pixel_readout="board", instruction_aux_weight=1.0))
    board = ModelConfig(observation="pixels", pixel_readout="board")
    assert with_encoders(board, "pretrained").goal_encoder == "words"  # its selector needs word ids
    assert with_encoders(board, "scratch").vision_encoder == "scratch"
    assert with_encoders(ModelConfig(observation="pixels"), "pretrained").goal_encoder == "minilm"


def test_board_readout_through_both_stages_from_the_command_line(
    tabletop_data: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    from siefm.cli import main

    sft, rl = tmp_path / "sft", tmp_path / "rl"
    model = ["--sft.model.observation", "pixels", "--sft.model.image-size", str(SIZE)]
    model += ["--sft.model.vision-encoder", "scratch", "--sft.model.pixel-readout", "board"]
    model += ["--sft.model.hidden-dim", "16", "--sft.model.num-layers", "1"]
    steps = ["--sft.steps", "20", "--sft.eval-every", "10", "--sft.batch-size", "16"]
    assert main(["sft", "--dataset", str(tabletop_data), "--out", str(sft), *model, *steps]) == 0
    records = [json.loads(line) for line in (sft / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["sft/val_board_error_cm"] > 0 and records[-1]["sft/board_error_cm"] > 0
    summary = json.loads((sft / "sft_summary.json").read_text())
    assert summary["grounding"] is not None
    practice = ["--improve.num-iterations", "1", "--improve.num-envs", "2", "--improve.num-updates", "2"]
    practice += ["--improve.minibatch-size", "8", "--improve.max-episode-steps", "6"]
    assert main(["improve", "--sft-run", str(sft), "--out", str(rl), *practice]) == 0
    assert (rl / "checkpoints" / "policy" / "checkpoint.json").exists()
