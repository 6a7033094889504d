"""The practice fleet as Ray actors (the paper's v2 infrastructure): local inference, versioned episodes.

Each actor owns `num_envs / actors` robots, a copy of the policy and the frozen reward model. Per iteration
the learner broadcasts the current weights once (one object in Ray's store) with their version, and every
actor plays complete episodes of its share of the N x B samples with the same rollout loop as the
in-process fleet (so success detection, rewards and returns happen on the actor; or, with
`--improve.reward-on shared`, d(o, g) comes from one shared reward-model actor).

Actors stream: `PracticeWorker.collect` is a Ray generator that sends episodes, tagged with the version
that played them, as they end (those that ended in the last `stream_interval_s`), and the learner hands
each to an `episode_sink` (the practice dataset on disk) as it arrives, so a learner crash loses only the
episodes still being played or on their way. The learner keeps only the current version's episodes
(Stage 2 is strictly on-policy) and counts the stale ones it drops. An actor that dies, or sends nothing
for `actor_timeout_s`, is replaced: the episodes the learner has received from it are kept (each is
complete, and was played by the current weights); those it was playing, or had ended but not sent yet, are
lost (never half-counted); the replacement plays the rest of its share on fresh boards.

Ray is optional (`pip install 'siefm[ray]'`). `ray.init` starts a local instance bound to loopback with a
bounded object store, or joins an existing cluster given its address.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from siefm.config import ImproveConfig
from siefm.domains import get_domain
from siefm.improve.fleet import camera_size, make_fleet
from siefm.improve.reward import RewardModel
from siefm.improve.rollout import EpisodeSink, PracticeBatch, practice_episodes
from siefm.models.build import build_efm
from siefm.models.efm import EFMBase

log = logging.getLogger("siefm")

OBJECT_STORE_BYTES = 200 * 1024**2
MAX_ATTEMPTS = 5  # per share and iteration, before Stage 2 gives up
STARTUP_TIMEOUT_S = 120.0  # the longest an actor may take to come up (import, build models, boards)


def import_ray() -> Any:
    try:
        import ray
    except ImportError as error:
        raise ValueError(
            "--improve.fleet ray needs Ray: pip install 'siefm[ray]' (or pip install 'ray>=2.40')."
        ) from error
    return ray


def start_ray(address: str | None) -> Any:
    """Joins the cluster at `address`, or starts a local instance on loopback with a bounded store."""
    ray = import_ray()
    if not ray.is_initialized():
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        if address is None:
            ray.init(
                # "local": a new instance even where `ray start` left a cluster (ray.init() would join it)
                address="local",
                include_dashboard=False,
                object_store_memory=OBJECT_STORE_BYTES,
                _node_ip_address="127.0.0.1",
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    return ray


def driver_path() -> dict[str, Any]:
    """A runtime_env that puts this process's import path on the practice actors' PYTHONPATH.

    An actor makes the env itself, so the module of `--env module:EnvId` must import there too; but Ray
    gives its workers only the driver's current and script directories, not the entries a test, notebook or
    launcher added to sys.path, where a user's env module may be found. The interpreter's own directories
    are left out (the workers have them), and the node's own PYTHONPATH is kept after these (Ray expands
    `${PYTHONPATH}` on the node)."""
    own = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})
    paths = [os.path.abspath(p) for p in sys.path if p and not os.path.abspath(p).startswith(own)]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join([*dict.fromkeys(paths), "${PYTHONPATH}"])}}


@dataclass(frozen=True)
class ModelPayload:
    """What an actor needs to rebuild an EFM: the config, the data's sizes and the weights."""

    config: Any
    spec: Any
    state: dict[str, torch.Tensor]

    @classmethod
    def of(cls, model: EFMBase) -> ModelPayload:
        state = {key: value.detach().clone() for key, value in model.state_dict().items()}
        return cls(model.config, model.spec, state)

    def build(self) -> EFMBase:
        from siefm.checkpoint import placeholder_stats

        model = build_efm(self.config, self.spec, placeholder_stats(self.spec), pretrained=False)
        model.load_state_dict(self.state)
        return model.eval()


class RewardServer:
    """The frozen reward model as one shared actor (`--improve.reward-on shared`): it scores every practice
    actor's observations, like the paper's v1 steps-to-go servers."""

    def __init__(self, reward: ModelPayload):
        torch.set_num_threads(1)
        self.model = reward.build()

    def distance(self, obs: dict[str, torch.Tensor], goal: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model.steps_to_go(obs, goal)


class SharedRewardModel(RewardModel):
    """A RewardModel whose d(o, g) comes from the shared RewardServer; the local copy only encodes goals."""

    def __init__(self, server: Any, model: EFMBase, success_threshold: float):
        super().__init__(model, success_threshold)
        self.server = server

    def distance(self, obs: dict[str, torch.Tensor], goal: torch.Tensor) -> torch.Tensor:
        import ray

        return ray.get(self.server.distance.remote(dict(obs), goal))


class PracticeWorker:
    """One actor's robots, policy copy and frozen reward model (the class Ray turns into an actor)."""

    def __init__(
        self,
        env: dict[str, Any],
        config: ImproveConfig,
        num_envs: int,
        seed: int,
        policy: ModelPayload,
        reward: ModelPayload,
        threshold: float,
        reward_server: Any = None,
    ):
        torch.set_num_threads(1)  # one core per actor
        self.policy = policy.build()
        if reward_server is None:
            self.reward_model = RewardModel(reward.build(), threshold)
        else:
            self.reward_model = SharedRewardModel(reward_server, reward.build(), threshold)
        share = dataclasses.replace(config, num_envs=num_envs, seed=seed)
        self.fleet = make_fleet(env, share, camera_size(self.policy, self.reward_model.model))
        self.action_bounds = get_domain(env["id"]).action_bounds(env["config"])
        self.version = -1
        self.config = config

    def set_weights(self, state: dict[str, torch.Tensor], version: int) -> int:
        self.policy.load_state_dict(state)
        self.version = version
        return version

    def collect(
        self, num_samples: int, max_episode_steps: int, seed: int
    ) -> Iterator[tuple[int, list[PracticeBatch]]]:
        """Complete episodes holding >= num_samples samples, played with the current weights, yielded with
        that version as they end (a Ray generator streams them to the learner): the ones that ended since
        the last message, once `stream_interval_s` has passed.

        `seed` also reseeds the robots' starts, so an iteration replays identically after a resume."""
        self.fleet.set_rng_state(np.random.default_rng(seed).bit_generator.state)
        episodes = practice_episodes(
            self.fleet,
            self.policy,
            self.reward_model,
            num_samples=num_samples,
            max_episode_steps=max_episode_steps,
            gamma=self.config.gamma,
            end_on_true_success=self.config.end_on_true_success,
            success_bonus=self.config.success_bonus,
            generator=torch.Generator().manual_seed(seed),
            whole_buffer=False,  # the learner assembles the batch from the streamed episodes
            action_bounds=self.action_bounds,
        )
        held, last_sent = [], time.monotonic()
        for episode in episodes:
            held.append(episode)
            if time.monotonic() - last_sent >= self.config.stream_interval_s:
                yield self.version, held
                held, last_sent = [], time.monotonic()
        if held:
            yield self.version, held


class RayFleet:
    """`config.actors` PracticeWorkers as Ray actors; `collect` returns one iteration's merged batch."""

    def __init__(
        self, env: dict[str, Any], config: ImproveConfig, policy: EFMBase, reward_model: RewardModel
    ):
        if config.num_envs < config.actors:
            raise ValueError(
                f"--improve.num-envs {config.num_envs} < --improve.actors {config.actors}: "
                "every actor needs at least one robot."
            )
        self.ray = start_ray(config.ray_address)
        self.env, self.config = env, config
        self.policy_payload = ModelPayload.of(policy)
        self.reward_payload = ModelPayload.of(reward_model.model)
        self.threshold = reward_model.success_threshold
        # Half a CPU's worth of Ray's accounting per actor (an equal share when there are more actors than
        # CPUs): a full CPU each left a replacement waiting, in testing, for the CPU of the actor it
        # replaced, which Ray had not released; half leaves room for it.
        cpus = min(1.0, self.ray.cluster_resources().get("CPU", 1.0) / config.actors) / 2
        self.remote_worker = self.ray.remote(num_cpus=cpus, runtime_env=driver_path())(PracticeWorker)
        self.reward_server = None
        if config.reward_on == "shared":
            self.reward_server = self.ray.remote(num_cpus=cpus)(RewardServer).remote(self.reward_payload)
        self.spawned = self.replaced = self.stale_dropped = 0
        self.actors = [self.spawn(i) for i in range(config.actors)]

    def spawn(self, index: int) -> Any:
        """A new actor for slot `index` (a replacement gets fresh boards of its own)."""
        share = self.config.num_envs // self.config.actors + (
            index < self.config.num_envs % self.config.actors
        )
        self.spawned += 1
        return self.remote_worker.remote(
            self.env,
            self.config,
            share,
            self.config.seed * 1000 + self.spawned,
            self.policy_payload,
            self.reward_payload,
            self.threshold,
            self.reward_server,
        )

    def collect(
        self,
        policy: EFMBase,
        version: int,
        iteration: int,
        max_episode_steps: int,
        episode_sink: EpisodeSink | None = None,
    ) -> PracticeBatch:
        """One iteration: broadcast `policy` as `version`, collect N x B samples across the actors.

        `episode_sink`, if given, gets every kept episode (as a one-episode batch) as soon as it arrives;
        stale ones never reach it. The returned batch holds the same episodes by actor slot, each slot's
        in the order they ended, so it does not depend on which actor answered first."""
        weights = self.ray.put({k: v.detach().clone() for k, v in policy.state_dict().items()})
        shares = np.array_split(np.arange(self.config.samples_per_iteration), len(self.actors))
        kept: list[list[PracticeBatch]] = [[] for _ in shares]
        missing = {i: len(share) for i, share in enumerate(shares)}  # samples each share still needs
        for attempt in range(MAX_ATTEMPTS):
            streams = {}  # an actor's episode stream -> (its slot, the ref that says the actor is up)
            for i, samples in missing.items():
                up = self.actors[i].set_weights.remote(weights, version)  # runs before collect on this actor
                # Attempt 0 is what a resumed run replays; a replacement must not replay the episodes its
                # predecessor already delivered, so later attempts get seeds of their own.
                entropy = [self.config.seed, iteration, i, attempt]
                seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
                stream = self.actors[i].collect.remote(samples, max_episode_steps, seed)
                streams[stream] = (i, up)
            for i, episode in self._receive(streams, version):
                kept[i].append(episode)
                if episode_sink is not None:
                    episode_sink(episode)
            for i in list(missing):
                missing[i] = len(shares[i]) - sum(episode.num_samples for episode in kept[i])
                if missing[i] <= 0:
                    del missing[i]
            if not missing:
                return PracticeBatch.concat([episode for share in kept for episode in share])
        raise RuntimeError(
            f"practice actors {sorted(missing)} failed {MAX_ATTEMPTS} times running in iteration {iteration}."
        )

    def _receive(
        self, calls: dict[Any, tuple[int, Any]], version: int
    ) -> Iterator[tuple[int, PracticeBatch]]:
        """(slot, episode) for every current-version episode the streams send, as each arrives, until
        every stream has ended or its actor has failed (and been replaced).

        The timeout runs from the moment an actor is up (its weights are loaded): a new actor's start-up
        takes seconds on a busy machine and is allowed STARTUP_TIMEOUT_S."""
        timeout = self.config.actor_timeout_s
        streams = {stream: i for stream, (i, _) in calls.items()}
        starting = {up: stream for stream, (_, up) in calls.items()}
        deadline = dict.fromkeys(streams, time.monotonic() + max(timeout, STARTUP_TIMEOUT_S))
        while streams:
            wait = max(0.0, min(deadline.values()) - time.monotonic())
            ready, _ = self.ray.wait([*streams, *starting], num_returns=1, timeout=wait)
            for item in ready:
                if item in starting:  # an actor is up: from now on it must send within the timeout
                    stream = starting.pop(item)
                    if stream in deadline:
                        deadline[stream] = time.monotonic() + timeout
                    continue
                stream, i = item, streams[item]
                try:
                    got_version, episodes = self.ray.get(next(stream))
                except StopIteration:  # the share is complete
                    del streams[stream], deadline[stream]
                    continue
                except self.ray.exceptions.RayError as error:  # the actor died
                    self._replace(i, type(error).__name__)
                    del streams[stream], deadline[stream]
                    continue
                deadline[stream] = time.monotonic() + timeout
                if got_version != version:  # played with other weights: off-policy, so never used
                    self.stale_dropped += len(episodes)
                    continue
                for episode in episodes:
                    yield i, episode
            for stream in [s for s, due in deadline.items() if due <= time.monotonic()]:
                if self.ray.wait([stream], timeout=0)[0]:  # it has sent; the learner was busy reading
                    continue
                self._replace(streams.pop(stream), f"nothing for {timeout:g} s")
                del deadline[stream]

    def _replace(self, index: int, why: str) -> None:
        log.warning("practice actor %d failed (%s); replacing it", index, why)
        self.ray.kill(self.actors[index], no_restart=True)
        self.actors[index] = self.spawn(index)
        self.replaced += 1

    def metrics(self) -> dict[str, float]:
        return {"fleet/actors_replaced": self.replaced, "fleet/stale_episodes_dropped": self.stale_dropped}

    def close(self) -> None:
        for actor in [*self.actors, *([self.reward_server] if self.reward_server is not None else [])]:
            self.ray.kill(actor, no_restart=True)
        self.actors, self.reward_server = [], None

    # Actors are seeded afresh every iteration from (seed, iteration, actor), so a resumed run needs no
    # saved generator state.
    def rng_state(self) -> dict:
        return {}

    def set_rng_state(self, state: dict) -> None:
        pass
