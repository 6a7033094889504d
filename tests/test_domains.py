"""The Domain contract, for every registered domain and for a gymnasium env siefm did not write (the
generic domain, on tests/toy_reach.py): a new domain gets these tests by registering.

Each domain must: make its env with gymnasium, reset it reproducibly from a seed and report true success in
`info["is_success"]`; run its demonstrator into a dataset that reads back with the domain's robot type, fps
and env; give a fleet that resets and steps robots by index, reproducibly from its seed; and carry a tiny
Stage 1 + Stage 2 + evaluation through the generic stages.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from siefm.config import EvalConfig, ImproveConfig, ModelConfig, SFTConfig
from siefm.data.dataset import EpisodeDataset, read_dataset
from siefm.domains import REGISTRY, UnknownDomainError, domain_names, find_domain, get_domain
from siefm.domains.base import Domain
from siefm.eval.report import evaluate_checkpoint
from siefm.improve.train import improve
from siefm.sft import train_sft

NAMES = domain_names()
TOY = "toy_reach:ToyReach-v0"  # a gymnasium env with no registered domain (tests/toy_reach.py)
DOMAINS = (*NAMES, TOY)
TINY_SFT = SFTConfig(
    model=ModelConfig(hidden_dim=16, num_layers=1), steps=20, batch_size=32, eval_every=10, seed=0
)
TINY_IMPROVE = ImproveConfig(
    num_iterations=1, num_updates=2, minibatch_size=8, num_envs=2, max_episode_steps=12, seed=0
)


def tiny_collect(domain: Domain, episodes: int = 12) -> object:
    """The domain's collect options for a handful of episodes in this process (every collect config has
    `num_episodes`; a worker count, where there is one, is set to 1; a gymnasium env gets its scripted
    demonstrator)."""
    config = domain.collect_config()
    changes: dict[str, object] = {"num_episodes": episodes}
    names = {f.name for f in dataclasses.fields(config)}
    if "num_workers" in names:
        changes["num_workers"] = 1
    if "policy" in names:
        changes["policy"] = "toy_reach:demonstrator"
    return dataclasses.replace(config, **changes)


@pytest.fixture(scope="module", params=DOMAINS)
def collected(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Domain, Path]:
    """Each domain with a small dataset its demonstrator wrote, once per module."""
    domain = get_domain(request.param)
    out = tmp_path_factory.mktemp(request.param.replace(":", "-")) / "data"
    return domain, domain.collect(out, tiny_collect(domain))


def env_of(dataset: EpisodeDataset) -> dict:
    return dataset.info["siefm"]["env"]


def test_the_registry_names_each_domain_once_and_finds_it_by_name_or_env_id() -> None:
    env_ids = [r.env_id for r in REGISTRY.values()]
    assert len(set(env_ids)) == len(env_ids) == len(NAMES)
    for name in NAMES:
        domain = get_domain(name)
        assert domain.name == name and get_domain(domain.env_id) is domain is find_domain(domain.env_id)
        assert domain.env_id in gym.registry
    assert find_domain("someone/Else-v0") is None and find_domain("no_such_module:Else-v0") is None
    with pytest.raises(UnknownDomainError, match="siefm knows"):
        get_domain("someone/Else-v0")
    generic = get_domain(TOY)  # any env gymnasium can make, importing the module of a module:EnvId id
    assert generic.env_id == TOY and find_domain(TOY) is generic and generic.fps == 20


@pytest.mark.parametrize("name", DOMAINS)
def test_env_resets_from_a_seed_steps_and_reports_true_success(name: str) -> None:
    domain = get_domain(name)
    env = gym.make(domain.env_id)
    first, info = env.reset(seed=7)
    again, _ = env.reset(seed=7)
    other, _ = env.reset(seed=8)
    numbers = [key for key, value in first.items() if not isinstance(value, str)]
    for key in numbers:
        np.testing.assert_array_equal(first[key], again[key])
    assert any(not np.array_equal(first[key], other[key]) for key in numbers)
    assert isinstance(info["is_success"], bool | np.bool_) and not info["is_success"]
    for _ in range(3):
        *_, info = env.step(env.action_space.sample())
        assert isinstance(info["is_success"], bool | np.bool_)
    env.close()


def test_demonstrations_read_back_with_the_domains_robot_type_fps_and_env(
    collected: tuple[Domain, Path],
) -> None:
    domain, path = collected
    dataset = read_dataset(path)
    assert dataset.num_episodes >= 1
    assert (dataset.info["robot_type"], dataset.info["fps"]) == (domain.robot_type, domain.fps)
    assert env_of(dataset)["id"] == domain.env_id
    spec = domain.observation_spec(env_of(dataset)["config"])
    # A dataset that records no env gets the domain's default config, which fits the same data.
    assert domain.observation_spec(domain.env_config({})).state_dim == spec.state_dim
    assert dataset.columns["observation.state"].shape[1] == spec.state_dim
    assert all(dataset.tasks)  # every episode has a task string, as LeRobot's readers expect
    last = dataset.episode_bounds[:, 1] - 1  # every demonstration ends at its goal, labelled 0 steps to go
    assert dataset.columns["is_success"][last].all() and (dataset.columns["steps_to_go"][last] == 0).all()


def test_fleet_resets_and_steps_robots_by_index_reproducibly(collected: tuple[Domain, Path]) -> None:
    domain, path = collected
    env = env_of(read_dataset(path))
    config = ImproveConfig(num_envs=3, seed=5).resolve(domain.env_id)
    practice = domain.practice_env(env["config"], config)
    fleets = [domain.make_fleet(practice, config, None) for _ in range(2)]
    starts = [fleet.reset() for fleet in fleets]
    np.testing.assert_array_equal(starts[0]["state"], starts[1]["state"])  # seeded
    state_dim = domain.observation_spec(practice).state_dim
    assert domain.episode_limit(practice) >= 1
    assert starts[0]["state"].shape == (3, state_dim) and len(starts[0]["goal"]) == 3
    fleet = fleets[0]
    actions = np.zeros((3, read_dataset(path).columns["action"].shape[1]))
    obs, success = fleet.step(actions)
    assert obs["state"].shape == (3, state_dim) and success.shape == (3,) and success.dtype == bool
    state = fleet.rng_state()
    renewed = fleet.reset(np.array([1]))
    np.testing.assert_array_equal(renewed["state"][[0, 2]], obs["state"][[0, 2]])  # others untouched
    fleet.set_rng_state(state)
    np.testing.assert_array_equal(fleet.reset(np.array([1]))["state"][1], renewed["state"][1])
    for each in fleets:
        each.close()


def test_a_tiny_recipe_runs_through_both_stages_and_evaluation(
    collected: tuple[Domain, Path], tmp_path: Path
) -> None:
    domain, path = collected
    sft = train_sft(path, tmp_path / "sft", TINY_SFT)
    policy = improve(sft, tmp_path / "rl", TINY_IMPROVE)
    config = EvalConfig(episodes=2, max_steps=12, videos=0)
    results = evaluate_checkpoint(policy, tmp_path / "eval", config)
    assert results["env"]["id"] == domain.env_id
    for name in ("policy", "optimal"):  # the policy beside the domain's reference controller
        low, high = results[name]["success_ci95"]
        assert low <= results[name]["success_rate"] <= high
        assert results[name]["episodes"] >= 2 and results[name]["mean_steps"] <= 12
    assert (tmp_path / "rl" / "practice").is_dir()  # practice data written in the dataset format
    practice = read_dataset(sorted((tmp_path / "rl" / "practice").iterdir())[0])
    assert (practice.info["robot_type"], practice.info["fps"]) == (domain.robot_type, domain.fps)


def test_generic_layers_name_no_domain() -> None:
    """Outside `siefm/domains/`, no module imports a domain's folder, spells an env id or compares one."""
    root = Path(__file__).parents[1] / "src" / "siefm"
    env_ids = [r.env_id for r in REGISTRY.values()]
    folders = [f"siefm.domains.{name}" for name in (*NAMES, "gymnasium_env")]
    comparison = re.compile(r"==\s*['\"](" + "|".join(NAMES) + r")['\"]|env\[.id.\]\s*==")
    offenders = []
    for path in root.rglob("*.py"):
        if root / "domains" in path.parents:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if any(s in line for s in (*env_ids, *folders)) or comparison.search(line):
                offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
