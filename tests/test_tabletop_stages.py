"""The tabletop in the two stages: instruction-goal model, object selection, practice fleet, banana board,
evaluation protocol and videos."""

from __future__ import annotations

import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import as_old_checkpoint, with_arms
from torch.testing import assert_close

from siefm.checkpoint import env_spec, fit_to_env, load_checkpoint, placeholder_stats, save_checkpoint
from siefm.config import ImproveConfig, ModelConfig, SFTConfig, to_dict
from siefm.domains import REGISTRY
from siefm.domains.tabletop.env import TabletopConfig, TabletopEnv
from siefm.domains.tabletop.evaluate import efm_batch_policy, evaluate_tabletop, oracle_batch_policy
from siefm.domains.tabletop.fleet import TabletopFleet
from siefm.domains.tabletop.grounding import selector_grounding
from siefm.domains.tabletop.scene import BOARD_X
from siefm.domains.tabletop.tasks import NOVEL_FAMILY, sample_task
from siefm.domains.tabletop.tasks import vocabulary as tabletop_vocabulary
from siefm.improve.fleet import make_fleet, practice_env
from siefm.models.efm import EFM, ModelSpec
from siefm.models.objects import POSITION_SCALE, ObjectSelector
from siefm.models.text import WordTokenizer

TABLETOP_ID = REGISTRY["tabletop"].env_id


def object_names(env: dict) -> tuple[str, ...]:
    return env_spec(env).object_names


STATE_DIM = 4 + 4 * 8
STANDARD_BOARD = {"id": TABLETOP_ID, "config": {"block_set": "8"}}


def test_object_selector_returns_the_chosen_rows_known_answer() -> None:
    selector = ObjectSelector(num_objects=3, prefix_dim=4, object_dim=4, text_dim=2, num_roles=2, key_dim=2)
    with torch.no_grad():  # keys e0, e1, e2; role 0 queries e2 and role 1 queries e0, both sharply
        selector.keys.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        selector.queries.weight.zero_()
        selector.queries.bias.copy_(torch.tensor([-100.0, -100.0, 100.0, 0.0]))
    state = torch.tensor([[0.1, 0.2, 0.0, 0.0, 0.3, 0.1, 1.0, 0.0, 0.5, 0.5, 0.0, 1.0, 0.2, 0.4, 0.6, 0.8]])
    out = selector(state, torch.zeros(1, 2))
    a, b = torch.tensor([0.2, 0.4]), torch.tensor([0.3, 0.1])  # object 2 moves, object 0 is the reference
    pusher = torch.tensor([0.1, 0.2])
    expected = torch.cat(
        [
            torch.tensor([0.6, 0.8, 1.0, 0.0]),  # yaw features of the two roles
            POSITION_SCALE * torch.cat([a, b]),
            POSITION_SCALE * torch.cat([a - pusher, b - pusher]),
            POSITION_SCALE * (a - b),
        ]
    )
    assert out.shape == (1, selector.out_dim)
    assert_close(out[0], expected, atol=1e-5, rtol=0)


def test_every_pair_of_selector_queries_gets_its_position_difference() -> None:
    selector = ObjectSelector(num_objects=3, prefix_dim=4, object_dim=4, text_dim=2, num_roles=3, key_dim=2)
    with torch.no_grad():  # the three queries pick objects 2, 0 and 1 sharply
        selector.keys.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        selector.queries.weight.zero_()
        selector.queries.bias.copy_(torch.tensor([-100.0, -100.0, 100.0, 0.0, 0.0, 100.0]))
    state = torch.tensor([[0.1, 0.2, 0.0, 0.0, 0.3, 0.1, 1.0, 0.0, 0.5, 0.5, 0.0, 1.0, 0.2, 0.4, 0.6, 0.8]])
    out = selector(state, torch.zeros(1, 2))
    assert out.shape == (1, selector.out_dim) == (1, 3 * 6 + 3 * 2)
    p = POSITION_SCALE * torch.tensor([[0.2, 0.4], [0.3, 0.1], [0.5, 0.5]])  # objects 2, 0, 1
    assert_close(out[0, -6:], torch.cat([p[0] - p[1], p[0] - p[2], p[1] - p[2]]), atol=1e-4, rtol=0)


def test_cosine_selector_scores_cannot_saturate_the_softmax() -> None:
    selector = ObjectSelector(num_objects=8, prefix_dim=4, object_dim=4, text_dim=4, scores="cosine")
    with torch.no_grad():  # huge queries and keys, one key aligned with every query
        selector.queries.weight.fill_(100.0)
        selector.keys.mul_(1000.0)[0] = 1.0
    weights = selector.weights(torch.ones(1, 4))
    # logits lie in [-5, 5]: the best object gets at most e^5 / (e^5 + 7 e^-5) of the weight
    assert weights.max() <= math.exp(5) / (math.exp(5) + 7 * math.exp(-5)) + 1e-6
    assert weights.min() > 0
    with pytest.raises(ValueError, match="'dot' or 'cosine'"):
        ObjectSelector(8, 4, 4, 4, scores="softmax")


def test_selector_grounding_counts_the_named_blocks_the_queries_pick() -> None:
    model = tabletop_model()
    env = TabletopEnv()
    moved, reference = [], []
    for k in range(20):
        env.reset(seed=k, options={"family": "block2block"})
        moved.append(env.task.block)
        reference.append(env.task.other)
    truth = torch.zeros(20, 2, 8)
    truth[torch.arange(20), 0, moved] = 1.0
    truth[torch.arange(20), 1, reference] = 1.0
    # a selector that always picks the moved block with query 0 and the reference with query 1
    model.selector.weights = lambda text, ids: truth  # type: ignore[method-assign]
    assert selector_grounding(model, num_tasks=20) == {"moved": 1.0, "reference": 1.0, "max_weight": 1.0}
    both_moved = truth.clone()
    both_moved[:, 1] = truth[:, 0]  # the failure seen on the tabletop: both queries on the moved block
    model.selector.weights = lambda text, ids: both_moved  # type: ignore[method-assign]
    assert selector_grounding(model, num_tasks=20)["reference"] == 0.0


def test_more_selector_queries_build_a_wider_model_and_old_checkpoints_read_two(tmp_path: Path) -> None:
    wide = tabletop_model(selector_queries=4, selector_scores="cosine", selector_keys="slots")
    assert wide.selector.num_roles == 4 and wide.selector.scores == "cosine"
    path = save_checkpoint(
        tmp_path / "old", tabletop_model(selector_keys="slots"), {"env": {"id": TABLETOP_ID}}
    )
    as_old_checkpoint(path, drop=("selector_queries", "selector_scores", "selector_keys"))
    info = json.loads((path / "checkpoint.json").read_text())
    del info["spec"]["objects"]  # written before the spec named the objects
    (path / "checkpoint.json").write_text(json.dumps(info))
    loaded, _ = load_checkpoint(path)
    assert (loaded.selector.num_roles, loaded.selector.scores) == (2, "dot")
    assert loaded.config.arms.selector_keys == "slots" and loaded.selector.keys is not None


def name_selector(names: tuple[str, ...], vocabulary: list[str]) -> tuple[ObjectSelector, WordTokenizer]:
    """Name keys whose query 0 reads the 3rd and 4th word from the start ("push the RED MOON ...") and
    query 1 the last two ("... the BLUE CUBE")."""
    tokenizer = WordTokenizer(vocabulary, max_length=8)
    selector = ObjectSelector(len(names), 4, 4, text_dim=2, object_words=tokenizer.encode(names), max_words=8)
    with torch.no_grad():
        selector.position_weights.zero_()
        selector.position_weights[0, [2, 3]] = 1.0
        selector.position_weights[1, [14, 15]] = 1.0
    return selector, tokenizer


def test_name_keys_pick_the_objects_the_instruction_names_known_answer() -> None:
    names = ("red moon", "blue cube", "red cube")
    selector, tokenizer = name_selector(names, ["push", "the", "red", "blue", "moon", "cube", "to"])
    ids = tokenizer.encode(["push the red moon to the blue cube", "push the red cube to the red moon"])
    weights = selector.weights(torch.zeros(2, 2), ids)
    # the full name scores 5 * 2, a half match (same colour or shape) 5 * 1, no match 0
    first = torch.softmax(torch.tensor([10.0, 0.0, 5.0]), dim=0)
    assert_close(weights[0, 0], first)
    # the second query also loses 20 times the weight the first put on each object
    assert_close(weights[0, 1], torch.softmax(torch.tensor([0.0, 10.0, 5.0]) - 20 * first, dim=0))
    assert weights[1].argmax(-1).tolist() == [2, 0]
    # the queries are shared position weights: the encoded text does not move them
    assert_close(selector.weights(torch.randn(2, 2), ids), weights)
    # a query that reads the same words as the first still takes another object: the next best match
    with torch.no_grad():
        selector.position_weights[1] = selector.position_weights[0]
    same = selector.weights(torch.zeros(2, 2), ids)
    assert same[0].argmax(-1).tolist() == [0, 2] and same[0, 1, 0] < 1e-3
    with pytest.raises(ValueError, match="word ids"):
        selector.weights(torch.zeros(2, 2))


def test_the_exclusion_does_not_push_the_earlier_query_off_its_object() -> None:
    names = ("red moon", "blue cube", "red cube")
    selector, tokenizer = name_selector(names, ["push", "the", "red", "blue", "moon", "cube", "to"])
    ids = tokenizer.encode(["push the red moon to the blue cube"])
    # a loss on the second query's weights alone reaches the first query's position weights not at all
    selector.weights(torch.zeros(1, 2), ids)[0, 1, 0].backward()
    assert selector.position_weights.grad[0].abs().max() == 0
    assert selector.position_weights.grad[1].abs().max() > 0


def test_an_unknown_word_finds_the_object_with_an_unknown_name() -> None:
    # "banana" is not in the vocabulary: both it and the banana's name become the unknown token
    selector, tokenizer = name_selector(
        ("yellow star", "yellow banana"), ["push", "the", "yellow", "star", "to"]
    )
    weights = selector.weights(torch.zeros(1, 2), tokenizer.encode(["push the banana to the top left"]))
    assert weights[0, 0].argmax() == 1 and weights[0, 0, 1] > 0.99


def test_a_model_reads_the_banana_boards_names_and_keeps_them_in_its_checkpoint(tmp_path: Path) -> None:
    model = tabletop_model()
    assert model.config.arms.selector_keys == "names" and model.spec.objects[7] == "yellow pentagon"
    banana = {"id": TABLETOP_ID, "config": {"block_set": "banana"}}
    fit_to_env(tmp_path, model, banana)
    assert model.spec.objects[7] == "yellow banana"
    assert (
        model.selector.object_words[7].tolist()[:2]
        == model.tokenizer.encode(["yellow banana"])[0, :2].tolist()
    )
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "ckpt", model, {"env": banana}))
    assert loaded.spec.objects == model.spec.objects
    assert_close(loaded.selector.object_words, model.selector.object_words)
    with pytest.raises(ValueError, match="state-encoder flat"):
        spec = ModelSpec(STATE_DIM, 16, 2, model.spec.vocabulary)
        EFM(model.config, spec, placeholder_stats(spec))


def tabletop_model(seed: int = 0, **config: str | int) -> EFM:
    torch.manual_seed(seed)
    tokenizer = WordTokenizer(tabletop_vocabulary(), max_length=16)
    spec = ModelSpec(STATE_DIM, 16, 2, tuple(tokenizer.vocabulary), object_names(STANDARD_BOARD))
    ones = {"state": torch.ones(STATE_DIM), "goal": torch.ones(16), "action": torch.full((2,), 0.05)}
    stats = {k: {"mean": 0 * v, "std": v, "min": -v, "max": v} for k, v in ones.items()}
    return EFM(
        ModelConfig(**with_arms(hidden_dim=32, num_layers=1, **config)).resolve(TABLETOP_ID), spec, stats
    )


def test_instruction_goal_model_acts_and_scores_from_raw_instructions() -> None:
    model = tabletop_model()
    env = TabletopEnv()
    obs, _ = env.reset(seed=3)
    goals = model.goal_input([obs["instruction"], "push the red moon to the blue cube"])
    assert goals.dtype == torch.int64 and goals.shape == (2, 16)
    state = torch.from_numpy(np.stack([obs["state"]] * 2))
    action, log_prob = model.act({"state": state}, goals)
    assert action.shape == (2, 2) and torch.isfinite(log_prob).all()
    d = model.steps_to_go({"state": state}, goals)
    assert ((d >= 0) & (d <= 100)).all()
    # Stage 2 trains the instruction encoder and object selection with the policy, not the steps-to-go tower.
    trained = {id(p) for p in model.policy_parameters()}
    assert {id(p) for p in model.text_encoder.parameters()} <= trained
    assert {id(p) for p in model.selector.parameters()} <= trained
    assert not {id(p) for p in model.steps_to_go_tower.parameters()} & trained


@pytest.mark.parametrize("steps_to_go_sees", ["full", "selected"])
def test_forward_encodes_the_instruction_once_and_matches_the_per_head_calls(steps_to_go_sees: str) -> None:
    model = tabletop_model(steps_to_go_sees=steps_to_go_sees)
    state = torch.randn(5, STATE_DIM, generator=torch.Generator().manual_seed(0))
    goals = model.goal_input(["push the red moon to the blue cube"] * 3 + ["move the green star up"] * 2)
    calls = []
    hooks = [
        m.register_forward_hook(lambda *_: calls.append(1)) for m in (model.text_encoder, model.selector)
    ]
    output = model({"state": state}, goals)
    assert len(calls) == 2  # one text encoding and one selection serve both heads
    for hook in hooks:
        hook.remove()
    assert_close(output.steps_to_go_logits, model.steps_to_go_logits({"state": state}, goals))
    action = output.actions.mode()
    assert_close(output.actions.log_prob(action), model.log_prob({"state": state}, goals, action))


@pytest.mark.parametrize("selector_keys", ["names", "slots"])
def test_a_goal_encoded_once_gives_what_the_raw_goal_gives(selector_keys: str) -> None:
    """What Stage 2's rollout relies on to encode an episode's instruction once, not at every step."""
    model = tabletop_model(selector_keys=selector_keys).eval()
    state = torch.randn(4, STATE_DIM, generator=torch.Generator().manual_seed(1))
    goals = model.goal_input(["push the red moon to the blue cube", "move the green star up"] * 2)
    encoded = model.encode_goal(goals)
    assert set(encoded) == {"goal", "text", "weights"}
    for method in ("steps_to_go", "steps_to_go_logits"):
        assert_close(
            getattr(model, method)({"state": state}, encoded), getattr(model, method)({"state": state}, goals)
        )
    raw, coded = (model.action_distribution({"state": state}, g) for g in (goals, encoded))
    assert_close(coded.mode(), raw.mode())
    rows = np.array([3, 1])
    assert_close(
        model.steps_to_go({"state": state[rows]}, encoded.rows(rows)),
        model.steps_to_go({"state": state[rows]}, goals[rows]),
    )


def test_a_checkpoint_from_before_word_positions_loads_as_words_from_the_start(tmp_path: Path) -> None:
    old = tabletop_model(word_positions="start")
    path = save_checkpoint(tmp_path / "old", old, {"env": {"id": TABLETOP_ID}})
    as_old_checkpoint(path, drop=("word_positions",))  # as written before the option existed
    loaded, _ = load_checkpoint(path)
    assert loaded.config.arms.word_positions == "start"
    goal = loaded.goal_input(["push the red moon to the blue cube"])
    assert_close(loaded.text_encoder(goal), old.text_encoder(goal))
    # A new tabletop model lays the words out from both ends: twice the encoder's input.
    assert tabletop_model().text_encoder.project[0].in_features == 2 * old.text_encoder.project[0].in_features


def test_an_object_state_of_the_wrong_size_is_refused() -> None:
    config = ModelConfig(hidden_dim=8, num_layers=1).resolve(TABLETOP_ID)
    spec = ModelSpec(7, 16, 2, ("push",))
    stats = {k: {"mean": torch.zeros(d), "std": torch.ones(d)} for k, d in (("state", 7), ("goal", 16))}
    with pytest.raises(ValueError, match="state-encoder flat"):
        EFM(config, spec, {**stats, "action": {"min": -torch.ones(2), "max": torch.ones(2)}})


def positions(fleet: TabletopFleet) -> np.ndarray:
    return np.stack([env.block_positions() for env in fleet.envs])


def test_episodic_fleet_resets_the_board_for_every_instruction() -> None:
    fleet = TabletopFleet(2, TabletopConfig(), seed=0, families=("block2block",))
    first = fleet.reset()
    before = positions(fleet)
    again = fleet.reset(np.array([1]))
    assert np.array_equal(positions(fleet)[0], before[0]) and not np.allclose(positions(fleet)[1], before[1])
    assert again["goal"][0] == first["goal"][0] and fleet.board_resets == 3
    assert all(env.task.family == "block2block" for env in fleet.envs)


def test_reset_free_fleet_gives_new_instructions_on_the_same_board() -> None:
    fleet = TabletopFleet(
        2, TabletopConfig(), seed=0, families=("block2block",), reset_free=True, reset_every=5
    )
    fleet.reset()
    for _ in range(3):
        fleet.step(np.full((2, 2), 0.02))
    before = positions(fleet)
    fleet.reset()
    assert np.array_equal(positions(fleet), before) and fleet.board_resets == 2  # only the first resets
    for _ in range(5):  # past reset_every: the next instruction comes with a fresh board
        fleet.step(np.zeros((2, 2)))
    fleet.reset(np.array([0]))
    assert fleet.board_resets == 3 and not np.allclose(positions(fleet)[0], before[0])


def test_reset_free_fleet_resets_a_board_whose_block_fell_off() -> None:
    fleet = TabletopFleet(1, TabletopConfig(), seed=1, families=("block2block",), reset_free=True)
    fleet.reset()
    env = fleet.envs[0]
    address = env._block_qpos[0]
    env.data.qpos[address] = BOARD_X[1] + 0.2  # push block 0 off the far edge
    assert not env.blocks_on_board()
    fleet.reset()
    assert fleet.board_resets == 2 and env.blocks_on_board()


def test_only_active_robots_move() -> None:
    fleet = TabletopFleet(2, TabletopConfig(), seed=0, families=("block2block",))
    obs = fleet.reset()
    moved, _ = fleet.step(np.full((2, 2), 0.05), active=np.array([True, False]))
    assert not np.array_equal(moved["state"][0], obs["state"][0])
    assert np.array_equal(moved["state"][1], obs["state"][1])


def fleet_for(env: dict, **options) -> TabletopFleet:
    config = ImproveConfig(**options).resolve(TABLETOP_ID)
    return make_fleet(practice_env(env, config), config)


def test_env_workers_step_the_boards_their_own_fleets_would(tmp_path: Path) -> None:
    """Two worker processes hold the robots in two shares, each exactly a fleet of the domain's own with
    the worker's seed: the same boards, moves, success flags and resets, gathered in robot order."""
    from siefm.improve.process_fleet import ProcessFleet

    config = ImproveConfig(num_envs=3, env_workers=2, seed=5).resolve(TABLETOP_ID)
    env = practice_env(STANDARD_BOARD, config)
    fleet = ProcessFleet(env, config)
    seeds = np.random.SeedSequence([5, 2]).generate_state(2)
    sizes = (2, 1)
    shares = [fleet_for(STANDARD_BOARD, num_envs=n, seed=int(k)) for n, k in zip(sizes, seeds, strict=True)]

    def gathered(parts: list) -> dict:
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

    try:
        obs = fleet.reset()
        expected = gathered([share.reset() for share in shares])
        np.testing.assert_array_equal(obs["state"], expected["state"])
        np.testing.assert_array_equal(obs["goal"], expected["goal"])
        actions = np.array([[0.05, 0.0], [0.0, -0.05], [0.03, 0.03]])
        active = np.array([True, False, True])
        moved, success = fleet.step(actions, active)
        rows = ([0, 1], [2])
        steps = [share.step(actions[r], active[r]) for share, r in zip(shares, rows, strict=True)]
        np.testing.assert_array_equal(moved["state"], gathered([obs for obs, _ in steps])["state"])
        np.testing.assert_array_equal(success, np.concatenate([s for _, s in steps]))
        again = fleet.reset(np.array([2]))  # only robot 2, in the second worker, starts anew
        np.testing.assert_array_equal(again["state"][:2], moved["state"][:2])
        np.testing.assert_array_equal(again["state"][2], shares[1].reset(np.array([0]))["state"][0])
        assert fleet.metrics() == {"rollout/board_resets": 4}
        state = fleet.rng_state()
        first = fleet.reset()
        fleet.set_rng_state(state)
        np.testing.assert_array_equal(fleet.reset()["state"], first["state"])
    finally:
        fleet.close()
    assert not any(process.is_alive() for process in fleet.processes)


def test_an_env_worker_that_fails_raises_its_error_here() -> None:
    from siefm.improve.process_fleet import ProcessFleet

    config = ImproveConfig(num_envs=2, env_workers=2).resolve(TABLETOP_ID)
    env = {"id": TABLETOP_ID, "config": {"block_set": "no such set"}}
    with pytest.raises(RuntimeError, match="env worker 0 failed"):
        ProcessFleet(env, config)


def test_env_workers_are_checked_against_the_fleet() -> None:
    with pytest.raises(ValueError, match="env_workers"):
        ImproveConfig(num_envs=2, env_workers=3)
    with pytest.raises(ValueError, match="env_workers"):
        ImproveConfig(env_workers=2, fleet="ray")


def test_make_fleet_follows_the_practice_config() -> None:
    env = {"id": TABLETOP_ID, "config": {"block_set": "8"}}
    fleet = fleet_for(env, num_envs=2, practice_mode="reset-free")
    assert fleet.reset_free and fleet.families == ("block2block",)
    banana = fleet_for(env, num_envs=1, block_set="banana")
    obs = banana.reset()
    assert banana.families == (NOVEL_FAMILY,) and "banana" in obs["goal"][0]
    assert fleet_for(env, num_envs=1, families=("separate", "block2block")).families == (
        "separate",
        "block2block",
    )


def test_practice_env_refuses_families_the_board_cannot_draw() -> None:
    env = {"id": TABLETOP_ID, "config": {"block_set": "8"}}
    with pytest.raises(ValueError, match="unknown or no entries"):
        practice_env(env, ImproveConfig(families=("block2blok",)).resolve(TABLETOP_ID))
    with pytest.raises(ValueError, match="need two blocks"):
        practice_env({"id": TABLETOP_ID, "config": {"block_set": "1"}}, ImproveConfig().resolve(TABLETOP_ID))
    with pytest.raises(ValueError, match="unknown or no entries"):
        practice_env(env, ImproveConfig(families=(NOVEL_FAMILY,)).resolve(TABLETOP_ID))  # no banana on '8'
    board = practice_env(env, ImproveConfig(block_set="banana").resolve(TABLETOP_ID))["config"]
    assert (board["block_set"], tuple(board["families"])) == ("banana", (NOVEL_FAMILY,))


def test_banana_board_and_instructions() -> None:
    env = TabletopEnv(TabletopConfig(block_set="banana"))
    obs, info = env.reset(seed=0)
    assert info["task_family"] == NOVEL_FAMILY and obs["state"].shape == (STATE_DIM,)
    assert obs["instruction"].startswith("push the banana to the ") and obs["instruction"].endswith(
        " of the table"
    )
    assert env.blocks[info["task_block"]].shape == "banana"
    # The standard board has no banana, so no banana task fits it.
    standard = TabletopEnv()
    standard.reset(seed=0)
    rng = np.random.default_rng(0)
    assert sample_task(rng, NOVEL_FAMILY, standard.block_positions(), standard.blocks) is None
    with pytest.raises(ValueError, match="families"):
        TabletopConfig(families=(NOVEL_FAMILY,))


def test_oracle_evaluation_and_annotated_videos(tmp_path: Path) -> None:
    results = evaluate_tabletop(
        oracle_batch_policy(), TabletopConfig(), ["block2block", "separate"], 4, seed=5, video_dir=tmp_path
    )
    assert set(results) == {"block2block", "separate"}
    summary = results["separate"].summary()
    assert summary["episodes"] == 4 and summary["success_rate"] >= 0.75
    assert (results["separate"].length[results["separate"].success] < 200).all()
    videos = sorted(tmp_path.glob("*.gif"))
    assert len(videos) == 4  # the first two episodes of each family
    frames = iio.imread(videos[0])
    assert frames.ndim == 4 and frames.shape[0] >= 2  # the first frame plus one per step
    # Same seeds, same episodes: a second run gives identical results.
    again = evaluate_tabletop(oracle_batch_policy(), TabletopConfig(), ["separate"], 4, seed=5)
    assert np.array_equal(again["separate"].length, results["separate"].length)


def test_instruction_goal_checkpoints_round_trip(tmp_path: Path) -> None:
    model = tabletop_model(seed=1)
    path = save_checkpoint(tmp_path / "ckpt", model, {"env": {"id": TABLETOP_ID, "config": {}}})
    loaded, _ = load_checkpoint(path)
    assert loaded.spec == model.spec and loaded.config == model.config
    goals = model.goal_input(["push the red moon to the blue cube"])
    state = {"state": torch.rand(1, STATE_DIM)}
    assert_close(loaded.steps_to_go(state, goals), model.eval().steps_to_go(state, goals))
    assert_close(
        loaded.log_prob(state, goals, torch.zeros(1, 2)), model.log_prob(state, goals, torch.zeros(1, 2))
    )


def test_a_checkpoint_written_before_the_newer_model_fields_still_loads(tmp_path: Path) -> None:
    model = tabletop_model()
    path = save_checkpoint(tmp_path / "ckpt", model, {"env": {"id": TABLETOP_ID, "config": {}}})
    info = json.loads((path / "checkpoint.json").read_text())
    for name in ("state_encoder", "steps_to_go_sees", "steps_to_go_dropout"):
        del info["model_config"][name]  # fields added after the first tabletop checkpoints
    (path / "checkpoint.json").write_text(json.dumps(info))
    loaded, _ = load_checkpoint(path)
    assert loaded.config.state_encoder == "objects" and loaded.config.steps_to_go_sees == "selected"


def test_a_family_gets_the_same_episodes_whatever_else_is_evaluated() -> None:
    policy = efm_batch_policy(tabletop_model())
    alone = evaluate_tabletop(policy, TabletopConfig(), ["separate"], 2, seed=3, max_steps=6)
    both = evaluate_tabletop(policy, TabletopConfig(), ["block2block", "separate"], 2, seed=3, max_steps=6)
    # The sampled policy's random stream is seeded per family: the final states must agree exactly.
    assert np.array_equal(alone["separate"].length, both["separate"].length)
    assert np.array_equal(alone["separate"].final_positions, both["separate"].final_positions)


def test_tabletop_benchmark_refuses_a_leftover_stage1_run_with_other_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # benchmarks/ is a folder of scripts, not a package: import the script from its folder.
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    import tabletop as benchmark

    asked = SFTConfig(steps=30_000, eval_every=1_000, data_fraction=0.1).resolve(TABLETOP_ID)
    (tmp_path / "config.json").write_text(json.dumps({"command": "sft", "sft": to_dict(asked)}))
    benchmark.check_reused_stage1(tmp_path, SFTConfig(steps=30_000, eval_every=1_000, data_fraction=0.1))
    old_rule = SFTConfig(
        steps=30_000, eval_every=1_000, data_fraction=0.1, reward_selection="steps_to_go_loss"
    )
    with pytest.raises(SystemExit, match="reward_selection"):
        benchmark.check_reused_stage1(tmp_path, old_rule)


def test_pixel_benchmark_reuses_a_stage2_run_only_with_the_same_checkpoints_and_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    import pixels as benchmark

    sft_run, policy = tmp_path / "sft", tmp_path / "sft" / "checkpoints" / "policy"
    # as `siefm improve` records it: the tabletop defaults (N, c) resolved
    ran = ImproveConfig(num_iterations=40, seed=1, num_updates=16, reward_scale=0.05)
    recorded = {"command": "improve", "sft_run": str(sft_run), "policy": str(policy), "improve": to_dict(ran)}
    (tmp_path / "config.json").write_text(json.dumps(recorded))
    asked = ImproveConfig(num_iterations=40, seed=1)
    benchmark.check_reused_stage2(tmp_path, sft_run, policy, asked)
    with pytest.raises(SystemExit, match="num_iterations, seed"):
        benchmark.check_reused_stage2(tmp_path, sft_run, policy, ImproveConfig(num_iterations=64, seed=0))
    with pytest.raises(SystemExit, match="policy"):
        benchmark.check_reused_stage2(tmp_path, sft_run, tmp_path / "other", asked)
