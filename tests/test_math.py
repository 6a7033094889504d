"""Tier 1, known answers: labels, bins, rewards, returns, the REINFORCE loss, calibration, intervals, ranks.

Every expected value is written out by hand (or computed here from the defining formula), never taken from
the code under test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from siefm.data.sampler import steps_to_go_labels
from siefm.eval.diagnostics import rank_correlation
from siefm.eval.stats import wilson_interval
from siefm.improve.reinforce import discounted_returns, reinforce_loss
from siefm.improve.reward import (
    calibrate_success_threshold,
    detect_success,
    detector_precision_recall,
    rewards_from_distances,
)
from siefm.improve.rollout import robots_to_start
from siefm.models.bins import UniformBins, steps_to_go_bins
from siefm.sft import NEAR_GOAL_STEPS, Plateau, constant_d_error, d_error, near_goal_error_sum

# --- Stage 1's plateau rule and Stage 2's buffer filling --------------------------------------------------


def test_plateau_waits_for_patience_then_compares_with_the_best_values_that_far_back() -> None:
    rule = Plateau(patience=2, min_improvement=0.01)
    # Improvements over two validations: 10 -> 9 is 10%, 9.5 -> 8.96 is 5.7% (both go on).
    assert not rule.reached({"policy": 10.0, "reward": 4.0})
    assert not rule.reached({"policy": 9.5, "reward": 3.9})
    assert not rule.reached({"policy": 9.0, "reward": 3.8})
    assert not rule.reached({"policy": 8.96, "reward": 3.8})  # policy: 9.5 -> 8.96 is 5.7%
    # 9.0 -> 8.92 is 0.9% and 3.8 -> 3.78 is 0.5%: both under 1%, so learning has stopped.
    assert rule.reached({"policy": 8.92, "reward": 3.78})


def test_plateau_goes_on_while_one_figure_still_improves_and_handles_negative_losses() -> None:
    rule = Plateau(patience=1, min_improvement=0.05)
    assert not rule.reached({"policy": -1.0, "reward": 2.0})
    assert not rule.reached({"policy": -1.2, "reward": 2.0})  # policy: 0.2 better than |-1.0|, 20%
    assert not rule.reached({"policy": -1.21, "reward": 1.5})  # reward: 25%
    assert rule.reached({"policy": -1.25, "reward": 1.45})  # 3.3% and 3.3%
    never = Plateau(patience=0, min_improvement=0.05)
    assert not any(never.reached({"policy": 1.0}) for _ in range(10))


def test_robots_to_start_fill_the_buffer_by_the_expected_length() -> None:
    active = np.array([True, True, False, False, False])
    # Episodes so far lasted 20 on average: 100 played + 2 under way x 20 = 140 expected; 60 short of
    # 200 is three more episodes, on the first three idle robots.
    assert robots_to_start(active, 100, 200, [10, 30]).tolist() == [2, 3, 4]
    assert robots_to_start(active, 100, 170, [10, 30]).tolist() == [2, 3]  # 30 short: 1.5 -> 2
    assert robots_to_start(active, 100, 140, [10, 30]).tolist() == []  # expected to fill it
    assert robots_to_start(active, 200, 200, [10, 30]).tolist() == []  # already full
    assert robots_to_start(active, 0, 200, []).tolist() == []  # no length known yet
    # Every robot idle and the buffer short: some start again, so the buffer always fills.
    idle = np.zeros(5, dtype=bool)
    assert robots_to_start(idle, 190, 200, [10, 30]).tolist() == [0]


# --- steps-to-go labels -----------------------------------------------------------------------------------


def test_labels_of_a_five_step_episode() -> None:
    labels = steps_to_go_labels(6)  # 5 actions -> 6 frames, goal reached at the last one
    np.testing.assert_array_equal(labels, [5, 4, 3, 2, 1, 0])
    assert labels.dtype == np.int64


def test_labels_of_a_single_frame_and_of_nothing() -> None:
    np.testing.assert_array_equal(steps_to_go_labels(1), [0])
    with pytest.raises(ValueError, match="at least one frame"):
        steps_to_go_labels(0)


# --- steps-to-go bins -------------------------------------------------------------------------------------


def test_one_bin_per_step_has_integer_centres() -> None:
    bins = steps_to_go_bins(141, 140)
    assert bins.width == pytest.approx(1.0)
    assert_close(bins.centres(), torch.arange(141, dtype=torch.float32))
    assert_close(bins.edges(), torch.arange(142, dtype=torch.float32) - 0.5)
    labels = torch.arange(141)
    assert_close(bins.to_index(labels), labels)  # class k is label k
    assert bins.to_index(torch.tensor([500])).item() == 140  # beyond max_steps: the last bin


def test_fifty_bins_over_140_steps() -> None:
    bins = steps_to_go_bins(50, 140)
    width = 141 / 50  # 2.82 steps per bin over [-0.5, 140.5]
    assert bins.width == pytest.approx(width)
    assert_close(bins.edges()[:3], torch.tensor([-0.5, -0.5 + width, -0.5 + 2 * width]))
    assert_close(bins.centres()[:2], torch.tensor([-0.5 + width / 2, -0.5 + 1.5 * width]))
    assert_close(bins.centres()[-1], torch.tensor(140.5 - width / 2))
    # bin 0 covers [-0.5, 2.32): labels 0, 1, 2; label 3 opens bin 1; 5 is still bin 1, 6 is bin 2.
    assert bins.to_index(torch.tensor([0, 1, 2, 3, 5, 6])).tolist() == [0, 0, 0, 1, 1, 2]
    assert bins.to_index(torch.tensor([139, 140, 500])).tolist() == [49, 49, 49]
    assert bins.to_index(torch.tensor([-3])).item() == 0  # below the range: the first bin


def test_every_label_lands_between_its_bin_edges() -> None:
    bins = steps_to_go_bins(50, 140)
    labels = torch.arange(141)
    index = bins.to_index(labels)
    edges = bins.edges().double()
    assert (edges[index] <= labels + 1e-4).all()
    assert (labels < edges[index + 1] + 1e-4).all()
    assert index.diff().ge(0).all()  # monotone


def test_expectation_of_hand_built_logits() -> None:
    bins = steps_to_go_bins(50, 140)
    centres = bins.centres()
    one_hot = torch.full((2, 50), -math.inf)
    one_hot[0, 7] = 0.0
    one_hot[1, 49] = 3.0
    assert_close(bins.expectation(one_hot), torch.stack([centres[7], centres[49]]))
    two = torch.full((50,), -math.inf)
    two[[2, 10]] = 1.5  # two equal logits: half the mass on each centre
    assert_close(bins.expectation(two), (centres[2] + centres[10]) / 2)
    uniform = torch.zeros(3, 50)  # all equal: the mean centre, i.e. the middle of [-0.5, 140.5]
    assert_close(bins.expectation(uniform), torch.full((3,), 70.0))


def test_d_error_of_hand_built_logits() -> None:
    bins = steps_to_go_bins(50, 140)
    centres = bins.centres()
    logits = torch.full((3, 50), -math.inf)
    logits[0, 7], logits[1, 0], logits[2, 49] = 0.0, 0.0, 0.0  # certain of bins 7, 0 and 49
    labels = torch.tensor([10, 0, 500])
    # |centre - label|; the label 500 lies past the last bin, so it counts as that bin's centre: error 0.
    expected = torch.stack([(centres[7] - 10).abs(), centres[0].abs(), torch.tensor(0.0)])
    assert_close(d_error(logits, labels, bins), expected)


def test_near_goal_error_counts_only_frames_close_to_the_goal() -> None:
    errors = torch.tensor([1.0, 2.0, 4.0, 8.0])
    labels = torch.tensor([0, NEAR_GOAL_STEPS, NEAR_GOAL_STEPS + 1, 90])
    assert near_goal_error_sum(errors, labels) == (3.0, 2)  # the last two are farther than the cut


def test_constant_d_error_guesses_the_training_median() -> None:
    bins = steps_to_go_bins(50, 100)
    cap = bins.centres()[-1].item()  # 99: longer labels count as the last bin's centre
    train = torch.tensor([0, 2, 4, 6, 500])  # median 4 (500 is capped, which does not move the median)
    val = torch.tensor([4, 10, 300])
    expected = (0 + 6 + (cap - 4)) / 3
    assert constant_d_error(train, val, bins) == pytest.approx(expected)


def test_uniform_bins_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="num_bins"):
        UniformBins(1, 0.0, 1.0)
    with pytest.raises(ValueError, match="high > low"):
        UniformBins(4, 1.0, 1.0)


# --- rewards and success detection ------------------------------------------------------------------------


def test_rewards_by_hand() -> None:
    assert_close(rewards_from_distances(torch.tensor([10.0, 7.0, 8.0, 2.0])), torch.tensor([3.0, -1.0, 6.0]))


def test_rewards_telescope_to_first_minus_last_distance() -> None:
    d = torch.rand(3, 11, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 100
    rewards = rewards_from_distances(d)
    assert rewards.shape == (3, 10)
    assert_close(rewards.sum(-1), d[:, 0] - d[:, -1])


def test_detector_fires_at_the_threshold_and_not_above() -> None:
    s = 2.0
    d = torch.tensor([2.0, 2.0 + 1e-4, 1.999, 0.0, 50.0])
    assert detect_success(d, s).tolist() == [True, False, True, True, False]
    assert detect_success(torch.tensor([0.0, 1e-6]), 0.0).tolist() == [True, False]


def test_detector_precision_recall_by_hand() -> None:
    precision, recall = detector_precision_recall(np.array([1, 1, 1, 0, 0]), np.array([1, 0, 1, 1, 0]))
    assert (precision, recall) == pytest.approx((2 / 3, 2 / 3))
    precision, recall = detector_precision_recall(np.zeros(3), np.array([1, 0, 0]))
    assert math.isnan(precision) and recall == 0.0


# --- returns and the REINFORCE loss -----------------------------------------------------------------------


def test_discounted_returns_with_two_episodes_in_one_stream() -> None:
    # Stream 0: episode [1, 2, 3] then episode [4, 5]; stream 1: one episode of five 1s.
    rewards = torch.tensor([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0], [4.0, 1.0], [5.0, 1.0]])
    dones = torch.tensor([[0, 0], [0, 0], [1, 0], [0, 0], [1, 1]], dtype=torch.bool)
    expected_09 = torch.tensor(
        [
            [1 + 0.9 * 2 + 0.81 * 3, 1 + 0.9 + 0.81 + 0.729 + 0.6561],
            [2 + 0.9 * 3, 1 + 0.9 + 0.81 + 0.729],
            [3.0, 1 + 0.9 + 0.81],
            [4 + 0.9 * 5, 1 + 0.9],
            [5.0, 1.0],
        ]
    )
    assert_close(discounted_returns(rewards, dones, 0.9), expected_09)
    assert_close(discounted_returns(rewards, dones, 0.0), rewards)
    expected_1 = torch.tensor([[6.0, 5.0], [5.0, 4.0], [3.0, 3.0], [9.0, 2.0], [5.0, 1.0]])
    assert_close(discounted_returns(rewards, dones, 1.0), expected_1)


def test_discounted_returns_do_not_bootstrap_past_the_end() -> None:
    rewards = torch.tensor([[1.0], [1.0]])
    dones = torch.zeros(2, 1, dtype=torch.bool)
    assert_close(discounted_returns(rewards, dones, 0.5), torch.tensor([[1.5], [1.0]]))


def test_reinforce_loss_by_hand_mask_and_gradients() -> None:
    log_probs = torch.tensor([-1.0, -2.0, -3.0], requires_grad=True)
    returns = torch.tensor([2.0, 1.0, 4.0], requires_grad=True)
    mask = torch.tensor([True, True, False])
    loss = reinforce_loss(log_probs, returns, mask, scale=0.5)
    # -(0.5 * (2 * -1 + 1 * -2)) / 2 masked samples = 1.0
    assert_close(loss, torch.tensor(1.0))
    loss.backward()
    assert_close(log_probs.grad, torch.tensor([-0.5 * 2 / 2, -0.5 * 1 / 2, 0.0]))
    assert returns.grad is None  # returns are constants of the REINFORCE gradient
    # The masked sample does not enter the value either.
    other = reinforce_loss(torch.tensor([-1.0, -2.0, -300.0]), torch.tensor([2.0, 1.0, -7.0]), mask, 0.5)
    assert_close(other, torch.tensor(1.0))


def test_reinforce_loss_with_everything_masked_is_zero() -> None:
    loss = reinforce_loss(
        torch.tensor([-1.0, -2.0]), torch.tensor([3.0, 4.0]), torch.zeros(2, dtype=torch.bool), 1.0
    )
    assert_close(loss, torch.tensor(0.0))


# --- success-threshold calibration ------------------------------------------------------------------------


def test_calibration_picks_the_obvious_threshold() -> None:
    d = np.array([0.0, 1.0, 2.0, 10.0, 11.0, 12.0])
    success = np.array([True, True, True, False, False, False])
    # With 6 candidates the quantiles are exactly the data; midpoints 0.5, 1.5, 6, 10.5, 11.5 and 12.
    calibration = calibrate_success_threshold(d, success, max_candidates=6)
    assert calibration.threshold == pytest.approx(6.0)
    assert (calibration.precision, calibration.recall) == (1.0, 1.0)
    assert (calibration.frames, calibration.positives) == (6, 3)
    # With the default candidates any s in [2, 10) separates the classes perfectly.
    calibration = calibrate_success_threshold(d, success)
    assert 2.0 <= calibration.threshold < 10.0
    assert (calibration.precision, calibration.recall) == (1.0, 1.0)


def test_calibration_trades_precision_for_recall_by_f1() -> None:
    # Successes at d = 1 and d = 5; a failure at d = 3 sits between them.
    # s in [1, 3): P = 1, R = 1/2, F1 = 2/3; s in [3, 5): P = 1/2, R = 1/2; s in [5, 9): P = 2/3, R = 1,
    # F1 = 0.8; s >= 9: P = 1/2, R = 1. The best is s in [5, 9).
    d = np.array([1.0, 3.0, 5.0, 9.0])
    success = np.array([True, False, True, False])
    calibration = calibrate_success_threshold(d, success)
    assert 5.0 <= calibration.threshold < 9.0
    assert (calibration.precision, calibration.recall) == pytest.approx((2 / 3, 1.0))


def test_calibration_needs_a_success() -> None:
    with pytest.raises(ValueError, match="no held-out frame is a true success"):
        calibrate_success_threshold(np.array([1.0, 2.0, 3.0]), np.zeros(3, dtype=bool))


# --- Wilson interval --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "trials", "expected"),
    [  # published Wilson 95% intervals (Newcombe 1998, Table I style), 4 decimals
        (0, 10, (0.0, 0.2775)),
        (10, 10, (0.7225, 1.0)),
        (5, 10, (0.2366, 0.7634)),
        (1, 10, (0.0179, 0.4042)),
    ],
)
def test_wilson_interval_known_values(successes: int, trials: int, expected: tuple[float, float]) -> None:
    low, high = wilson_interval(successes, trials)
    assert low == pytest.approx(expected[0], abs=1e-4)
    assert high == pytest.approx(expected[1], abs=1e-4)


@pytest.mark.parametrize(("successes", "trials"), [(0, 7), (3, 7), (7, 7), (13, 50), (499, 500)])
def test_wilson_interval_solves_its_quadratic(successes: int, trials: int) -> None:
    # The bounds are the roots p of (p - p_hat)^2 = z^2 p (1 - p) / n.
    z, p_hat = 1.959964, successes / trials
    a, b, c = 1 + z**2 / trials, -(2 * p_hat + z**2 / trials), p_hat**2
    roots = sorted(np.roots([a, b, c]).real)
    low, high = wilson_interval(successes, trials)
    assert (low, high) == pytest.approx((max(roots[0], 0.0), min(roots[1], 1.0)), abs=1e-9)
    assert 0.0 <= low <= p_hat <= high <= 1.0


def test_wilson_interval_is_exact_at_zero_and_all_successes() -> None:
    for n in range(1, 600):
        assert wilson_interval(0, n)[0] == 0.0, n
        assert wilson_interval(n, n)[1] == 1.0, n


def test_wilson_interval_rejects_no_trials() -> None:
    with pytest.raises(ValueError, match="trials"):
        wilson_interval(0, 0)


# --- rank correlation -------------------------------------------------------------------------------------


def test_rank_correlation_perfect_reversed_monotone() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert rank_correlation(x, 10 * x) == pytest.approx(1.0)
    assert rank_correlation(x, -x) == pytest.approx(-1.0)
    assert rank_correlation(x, np.exp(x)) == pytest.approx(1.0)  # ranks only: any monotone map is perfect


def test_rank_correlation_with_ties() -> None:
    # x ranks (average for the tie): [0, 1.5, 1.5, 3]; y ranks [0, 1, 2, 3].
    # cov = 2.25 + 0 + 0 + 2.25 = 4.5, var_x = 4.5, var_y = 5 -> rho = 4.5 / sqrt(4.5 * 5) = sqrt(0.9).
    assert rank_correlation(np.array([1.0, 2.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(
        math.sqrt(0.9)
    )
    # Order of the input does not matter.
    assert rank_correlation(np.array([2.0, 3.0, 1.0, 2.0]), np.array([2.0, 4.0, 1.0, 3.0])) == pytest.approx(
        math.sqrt(0.9)
    )


def test_rank_correlation_of_a_constant_is_nan() -> None:
    assert math.isnan(rank_correlation(np.ones(4), np.arange(4)))


# --- aggregating the tabletop benchmark over Stage 1 seeds ------------------------------------------------


def _benchmark_results(seed: int, bc10: float, bc80: float, reset_free: list[float]) -> dict:
    rates = {"bc10": bc10, "bc80": bc80, "optimal": 0.95}
    return {
        "args": {"sft": {"seed": seed}},
        "block2block": {name: {"success_rate": rate} for name, rate in rates.items()},
        "stage2_seed_spread": {"reset-free": {"success_rate": reset_free}},
    }


def test_tabletop_seed_aggregate_weighs_each_stage1_seed_equally(monkeypatch: pytest.MonkeyPatch) -> None:
    # benchmarks/ is a folder of scripts, not a package: import the script from its folder.
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    import tabletop_seeds as module

    # Stage 1 seed 0 has three Stage 2 seeds (mean 0.8), seed 1 has one (0.9): the mean is over Stage 1
    # seeds, (0.8 + 0.9) / 2 = 0.85, not over the four runs (0.825).
    summary = module.aggregate(
        [_benchmark_results(0, 0.7, 0.84, [0.7, 0.8, 0.9]), _benchmark_results(1, 0.6, 0.8, [0.9])]
    )
    assert summary["stage1_seeds"] == [0, 1]
    row = summary["block2block"]["stage2_reset-free"]
    assert row["per_seed"] == pytest.approx([0.8, 0.9])
    assert row["mean"] == pytest.approx(0.85)
    assert row["sd"] == pytest.approx(math.sqrt(0.005))  # sample sd of (0.8, 0.9): sqrt(2 * 0.05^2 / 1)
    assert summary["block2block"]["bc10"]["mean"] == pytest.approx(0.65)
    # Paired with its own Stage 1 seed's 80% policy: 0.8 - 0.84 and 0.9 - 0.8.
    assert summary["stage2_minus_bc80"]["stage2_reset-free"]["per_seed"] == pytest.approx([-0.04, 0.1])


def test_tabletop_seed_aggregate_writes_its_json_and_plot(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    import tabletop_seeds as module

    paths = []
    for seed, rates in ((0, [0.8]), (1, [0.9])):
        paths.append(tmp_path / f"seed{seed}.json")
        paths[-1].write_text(json.dumps(_benchmark_results(seed, 0.6, 0.85, rates)))
    out, plot = tmp_path / "seeds.json", tmp_path / "seeds.png"
    module.main(module.Args(results=tuple(paths), out=out, plot=plot))
    assert json.loads(out.read_text())["block2block"]["stage2_reset-free"]["mean"] == pytest.approx(0.85)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"not a results\.json"):
        module.main(module.Args(results=(tmp_path / "other.json",)))
