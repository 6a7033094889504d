"""PointMass (gym and batched forms) and its scripted controllers: contracts and dynamics by hand."""

from __future__ import annotations

import dataclasses
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from siefm.domains.pointmass.demonstrator import (
    generate_demonstrations,
    run_controller,
    simulate_demonstrator,
    straight_line_policy,
)
from siefm.domains.pointmass.env import (
    ACTION_DIM,
    GOAL_DIM,
    STATE_DIM,
    BatchedPointMass,
    PointMassConfig,
    PointMassEnv,
    is_success,
    sample_initial_states,
    step_dynamics,
)

CONFIGS = [PointMassConfig(), PointMassConfig(substeps=3, success_radius=0.3, max_action=5e-3, max_steps=20)]


def hand_step(position: list[float], velocity: list[float], action: list[float], substeps: int, bound: float):
    """The documented dynamics with Python floats: clip, then `substeps` x (vel += a; pos += vel)."""
    a = [min(max(x, -bound), bound) for x in action]
    p, v = list(position), list(velocity)
    for _ in range(substeps):
        v = [v[i] + a[i] for i in range(2)]
        p = [p[i] + v[i] for i in range(2)]
    return p, v


# --- gymnasium form ---------------------------------------------------------------------------------------


def test_registered_with_gymnasium() -> None:
    assert "siefm/PointMass-v0" in gymnasium.registry
    env = gymnasium.make("siefm/PointMass-v0")
    assert isinstance(env.unwrapped, PointMassEnv)
    obs, info = env.reset(seed=0)
    assert set(obs) == {"state", "goal"} and info == {"is_success": False}
    env.close()


@pytest.mark.parametrize("config", CONFIGS)
def test_passes_the_gymnasium_env_checker(config: PointMassConfig) -> None:
    with warnings.catch_warnings():
        # The only complaints are the unbounded state Box (position and velocity have no natural bound).
        warnings.filterwarnings("ignore", message=".*infinity.*")
        check_env(PointMassEnv(config), skip_render_check=True)


@pytest.mark.parametrize("config", CONFIGS)
def test_seeded_reset_reproduces_and_seeds_differ(config: PointMassConfig) -> None:
    env_a, env_b = PointMassEnv(config), PointMassEnv(config)
    obs_a, _ = env_a.reset(seed=3)
    obs_b, _ = env_b.reset(seed=3)
    for key in obs_a:
        np.testing.assert_array_equal(obs_a[key], obs_b[key])
    actions = np.random.default_rng(0).uniform(-2, 2, size=(5, 2)).astype(np.float32) * config.max_action
    for action in actions:
        step_a, step_b = env_a.step(action), env_b.step(action)
        np.testing.assert_array_equal(step_a[0]["state"], step_b[0]["state"])
        assert step_a[1:] == step_b[1:]
    # Later unseeded resets continue the seeded stream identically, and another seed gives another episode.
    np.testing.assert_array_equal(env_a.reset()[0]["goal"], env_b.reset()[0]["goal"])
    assert not np.array_equal(env_a.reset(seed=4)[0]["goal"], obs_a["goal"])


@pytest.mark.parametrize("config", CONFIGS)
def test_observations_match_the_spaces(config: PointMassConfig) -> None:
    env = PointMassEnv(config)
    assert env.action_space.shape == (ACTION_DIM,)
    assert env.observation_space["state"].shape == (STATE_DIM,)
    assert env.observation_space["goal"].shape == (GOAL_DIM,)
    env.action_space.seed(0)
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        assert obs in env.observation_space
        assert obs["state"].dtype == np.float32 and obs["goal"].dtype == np.float32
        np.testing.assert_array_equal(obs["state"][2:], [0.0, 0.0])  # starts at rest
        for _ in range(3):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert obs in env.observation_space
            assert isinstance(reward, float) and isinstance(terminated, bool) and isinstance(truncated, bool)
            assert info["is_success"] == terminated


def test_gym_env_terminates_on_success_and_truncates_at_the_limit() -> None:
    config = PointMassConfig(max_steps=5)
    env = PointMassEnv(config)
    env.reset(seed=0)
    for t in range(1, 6):
        _, _, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
        assert not terminated  # at rest, outside the success radius
        assert truncated == (t == 5)
    # A straight-line controller reaches the goal: terminated with is_success, not truncated.
    env = PointMassEnv(PointMassConfig())
    obs, _ = env.reset(seed=1)
    for _ in range(140):
        action = straight_line_policy({k: v[None] for k, v in obs.items()})[0]
        obs, _, terminated, truncated, info = env.step(action.astype(np.float32))
        if terminated or truncated:
            break
    assert terminated and not truncated and info["is_success"]
    assert np.linalg.norm(obs["state"][:2] - obs["goal"]) < env.config.success_radius


# --- dynamics ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
def test_dynamics_match_a_hand_written_loop(config: PointMassConfig) -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        position, velocity = rng.uniform(-1, 1, 2), rng.uniform(-0.01, 0.01, 2)
        action = rng.uniform(-0.8, 0.8, 2) * config.max_action  # inside the bound
        p, v = step_dynamics(position, velocity, action, config)
        hp, hv = hand_step(
            position.tolist(), velocity.tolist(), action.tolist(), config.substeps, config.max_action
        )
        np.testing.assert_allclose(p, hp, rtol=0, atol=1e-12)
        np.testing.assert_allclose(v, hv, rtol=0, atol=1e-12)
        # Closed form: vel + n a and pos + n vel + n (n + 1) / 2 a.
        n = config.substeps
        np.testing.assert_allclose(v, velocity + n * action, atol=1e-12)
        np.testing.assert_allclose(p, position + n * velocity + n * (n + 1) / 2 * action, atol=1e-12)


def test_ten_substeps_of_a_known_action() -> None:
    p, v = step_dynamics(
        np.array([0.0, 0.5]), np.array([0.0, 0.0]), np.array([1e-3, -1e-3]), PointMassConfig()
    )
    np.testing.assert_allclose(v, [0.01, -0.01], atol=1e-15)
    np.testing.assert_allclose(p, [0.055, 0.5 - 0.055], atol=1e-15)  # 55 = 1 + 2 + ... + 10


def test_actions_are_clipped_to_max_action() -> None:
    config = PointMassConfig()
    position, velocity = np.array([[0.1, -0.2]]), np.array([[0.001, 0.0]])
    big = step_dynamics(position, velocity, np.array([[5.0, -7.0]]), config)
    bounded = step_dynamics(position, velocity, np.array([[config.max_action, -config.max_action]]), config)
    for a, b in zip(big, bounded, strict=True):
        np.testing.assert_array_equal(a, b)
    hp, hv = hand_step([0.1, -0.2], [0.001, 0.0], [5.0, -7.0], config.substeps, config.max_action)
    np.testing.assert_allclose(big[0][0], hp, atol=1e-12)
    np.testing.assert_allclose(big[1][0], hv, atol=1e-12)
    # The gym form clips too (an action outside the space is not an error, it is a saturated motor).
    env = PointMassEnv(config)
    env.reset(seed=0)
    start = env._world.position.copy()
    env.step(np.array([1.0, 1.0], dtype=np.float32))
    np.testing.assert_allclose(env._world.position - start, [[0.055, 0.055]], atol=1e-12)  # 55 x 1e-3


@pytest.mark.parametrize("config", CONFIGS)
def test_batched_and_gym_forms_give_identical_transitions(config: PointMassConfig) -> None:
    env = PointMassEnv(config)
    world = BatchedPointMass(1, config, seed=7)
    obs_gym, _ = env.reset(seed=7)
    obs_batch = world.reset()
    rng = np.random.default_rng(1)
    for episode in range(3):
        np.testing.assert_array_equal(obs_gym["state"], obs_batch["state"][0])
        np.testing.assert_array_equal(obs_gym["goal"], obs_batch["goal"][0])
        for _ in range(8):
            action = (rng.uniform(-1.5, 1.5, 2) * config.max_action).astype(np.float32)
            obs_gym, _, terminated, _, _ = env.step(action)
            obs_batch, success = world.step(action[None].astype(np.float64))
            np.testing.assert_array_equal(obs_gym["state"], obs_batch["state"][0])
            assert terminated == bool(success[0])
        if episode < 2:  # both continue the same RNG stream on reset
            obs_gym, _ = env.reset()
            obs_batch = world.reset()


def test_batched_observations_and_partial_reset() -> None:
    world = BatchedPointMass(6, seed=0)
    obs = world.reset()
    assert obs["state"].shape == (6, STATE_DIM) and obs["goal"].shape == (6, GOAL_DIM)
    assert obs["state"].dtype == np.float32
    world.step(np.full((6, 2), 1e-3))
    before = world.observe()
    after = world.reset(np.array([1, 4]))
    kept = [0, 2, 3, 5]
    np.testing.assert_array_equal(after["state"][kept], before["state"][kept])
    np.testing.assert_array_equal(after["goal"][kept], before["goal"][kept])
    np.testing.assert_array_equal(after["state"][[1, 4], 2:], 0.0)  # new episodes start at rest
    assert not np.array_equal(after["goal"][[1, 4]], before["goal"][[1, 4]])
    with pytest.raises(ValueError, match="num_envs"):
        BatchedPointMass(0)


@pytest.mark.parametrize("radius", [0.15, 0.6])
def test_starts_are_never_inside_the_success_radius(radius: float) -> None:
    config = PointMassConfig(success_radius=radius, start_range=0.5, goal_range=0.5)  # many redraws at 0.6
    position, velocity, goal = sample_initial_states(np.random.default_rng(0), 5000, config)
    assert (np.linalg.norm(position - goal, axis=-1) >= radius).all()
    assert (np.abs(position) <= 0.5).all() and (np.abs(goal) <= 0.5).all()
    np.testing.assert_array_equal(velocity, 0.0)
    world = BatchedPointMass(500, config, seed=1)
    world.reset()
    assert not world.is_success().any()


def test_is_success_is_strictly_inside_the_radius() -> None:
    config = PointMassConfig(success_radius=0.5)
    goal = np.zeros((3, 2))
    position = np.array([[0.3, 0.0], [0.5, 0.0], [0.0, 0.6]])
    assert is_success(position, goal, config).tolist() == [True, False, False]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("substeps", 0),
        ("success_radius", -0.1),
        ("success_radius", 0.0),
        ("max_action", 0.0),
        ("max_steps", 0),
        ("start_range", -1.0),
        ("goal_range", 0.0),
    ],
)
def test_config_rejects_nonsense(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"PointMassConfig.{field}"):
        PointMassConfig(**{field: value})


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PointMassConfig().substeps = 3  # type: ignore[misc]


# --- the demonstrator -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demos() -> list[dict[str, np.ndarray]]:
    return generate_demonstrations(300, PointMassConfig(), seed=0)


def test_demonstrations_follow_the_documented_contract(demos: list[dict[str, np.ndarray]]) -> None:
    config = PointMassConfig()
    assert len(demos) > 250  # ~5% are dropped as shorter than 10 steps
    for episode in demos:
        frames = len(episode["action"])
        assert set(episode) == {"observation.state", "goal", "action", "is_success", "is_terminal"}
        assert episode["observation.state"].shape == (frames, STATE_DIM)
        assert episode["goal"].shape == (frames, GOAL_DIM)
        assert episode["observation.state"].dtype == np.float32 and episode["action"].dtype == np.float32
        assert frames - 1 >= 10  # min_steps
        # Success first reached at the final frame, and only there; the final frame is the only terminal one.
        assert episode["is_success"][-1] and not episode["is_success"][:-1].any()
        np.testing.assert_array_equal(episode["is_terminal"], np.arange(frames) == frames - 1)
        np.testing.assert_array_equal(episode["action"][-1], [0.0, 0.0])
        assert (np.abs(episode["action"]) <= config.max_action * (1 + 1e-6)).all()
        assert (episode["goal"] == episode["goal"][0]).all()
        np.testing.assert_array_equal(episode["observation.state"][0, 2:], 0.0)
        # Each frame follows from the previous one by the env's dynamics (up to the float32 storage).
        state = episode["observation.state"].astype(np.float64)
        p, v = step_dynamics(
            state[:-1, :2], state[:-1, 2:], episode["action"][:-1].astype(np.float64), config
        )
        np.testing.assert_allclose(np.concatenate([p, v], -1), state[1:], atol=1e-5)


def test_min_steps_and_max_steps_are_respected() -> None:
    episodes = generate_demonstrations(200, PointMassConfig(), seed=1, min_steps=60, max_steps=100)
    lengths = np.array([len(e["action"]) - 1 for e in episodes])
    assert len(lengths) > 0 and (lengths >= 60).all() and (lengths <= 100).all()


def test_demonstrations_are_deterministic_for_a_seed() -> None:
    a = generate_demonstrations(40, PointMassConfig(), seed=5)
    b = generate_demonstrations(40, PointMassConfig(), seed=5)
    c = generate_demonstrations(40, PointMassConfig(), seed=6)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert not np.array_equal(a[0]["goal"], c[0]["goal"])


def test_demonstration_lengths_match_the_notebook() -> None:
    episodes = generate_demonstrations(2000, PointMassConfig(), seed=0)
    lengths = np.array([len(e["action"]) - 1 for e in episodes])
    assert 60 <= lengths.mean() <= 95  # the notebook: about 77 +- 30 steps
    assert 15 <= lengths.std() <= 45
    assert 0.85 <= len(episodes) / 2000 <= 0.99  # ~5% under 10 steps dropped, almost none unfinished


def test_simulate_demonstrator_matches_its_episodes() -> None:
    config = PointMassConfig()
    positions, length, goals = simulate_demonstrator(30, config, seed=2, num_waypoints=5, max_steps=400)
    episodes = generate_demonstrations(30, config, seed=2, min_steps=1)
    assert (length >= 1).all()
    assert [len(e["action"]) - 1 for e in episodes] == length.tolist()
    # Starts and goals are those of BatchedPointMass(seed).reset(), so policies can be compared on them.
    world = BatchedPointMass(30, config, seed=2)
    world.reset()
    np.testing.assert_array_equal(goals, world.goal)
    np.testing.assert_array_equal(positions[0], world.position)
    for i, episode in enumerate(episodes):
        np.testing.assert_allclose(positions[length[i], i], episode["observation.state"][-1, :2], atol=1e-6)
        np.testing.assert_array_equal(positions[-1, i], positions[length[i], i])  # frozen after the end


def test_straight_line_policy_is_short_and_always_succeeds() -> None:
    world = BatchedPointMass(100, PointMassConfig(), seed=0)
    world.reset()
    success, length, positions = run_controller(straight_line_policy, world, max_steps=140)
    assert success.all()
    assert 10 <= length.mean() <= 16  # the notebook: about 13-15 steps going straight
    assert positions.shape == (length.max() + 1, 100, 2)
    # Finished robots stay where they succeeded.
    i = int(np.argmin(length))
    np.testing.assert_array_equal(
        positions[length[i] :, i], np.repeat(positions[length[i], i][None], len(positions) - length[i], 0)
    )
