"""Any domain's practice fleet with its simulators stepped in worker processes (`--improve.env-workers K`).

The robots are split into K shares, each a fleet of the domain's own kind (`Domain.make_fleet`) in its own
process, with a seed of its own. A step sends every worker its robots' actions first and then gathers the
answers, so the K simulators step at the same time while this process, which runs the policy and the
reward model, waits. That pays where the simulator is the bottleneck (the tabletop: about 80% of a
practice step once goals are encoded once per episode, docs/fleet.md); where it is a few numpy operations
(PointMass), the round trips cost more than they save.

Workers are forked (as gymnasium's async vector env does), so a script that builds a fleet needs no
`if __name__ == "__main__"` guard, which 'spawn' would demand; they run only the simulator, never torch,
whose thread pools do not survive a fork. They are daemons, so they end with this process even if it
crashes; a daemon cannot start processes of its own, so a gymnasium env's share steps its copies in the
worker itself ('sync'). An error in a worker is raised here with the worker's traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import traceback
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from siefm.config import ImproveConfig
from siefm.domains import get_domain
from siefm.improve.fleet import Fleet, Observations


class ProcessFleet:
    """`config.num_envs` robots in `config.env_workers` worker processes; a `siefm.improve.fleet.Fleet`."""

    def __init__(self, env: dict[str, Any], config: ImproveConfig, camera_size: int | None = None):
        self.num_envs = config.num_envs
        shares = np.array_split(np.arange(config.num_envs), config.env_workers)
        self.owner = np.concatenate([np.full(len(share), k) for k, share in enumerate(shares)])
        self.local = np.concatenate([np.arange(len(share)) for share in shares])
        self.masks = [self.owner == k for k in range(len(shares))]  # each worker's robots
        seeds = np.random.SeedSequence([config.seed, config.env_workers]).generate_state(len(shares))
        context = multiprocessing.get_context("fork")
        self.connections: list[Connection] = []
        self.processes = []
        for share, seed in zip(shares, seeds, strict=True):
            worker_config = dataclasses.replace(
                config, num_envs=len(share), seed=int(seed), env_workers=0, vector_env="sync"
            )
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_serve, args=(theirs, env, worker_config, camera_size), daemon=True
            )
            process.start()
            theirs.close()
            self.connections.append(ours)
            self.processes.append(process)
        self._last: list[Observations | None] = [None] * len(shares)
        try:
            self._call_all("num_envs")  # waits until every worker has built its fleet (or raises its error)
        except RuntimeError:
            self.close()
            raise

    def reset(self, env_ids: np.ndarray | None = None) -> Observations:
        """Starts new episodes on `env_ids` (all by default); returns every robot's observation."""
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids, dtype=np.int64)
        workers = np.unique(self.owner[ids])
        mine = [(self.local[ids[self.owner[ids] == k]],) for k in workers]
        for k, obs in zip(workers, self._call("reset", mine, workers), strict=True):
            self._last[k] = obs
        return self._gather()

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> tuple[Observations, np.ndarray]:
        """Steps every worker's robots at once; returns observations and the simulator's true success."""
        args = [(actions[mine], None if active is None else active[mine]) for mine in self.masks]
        answers = self._call("step", args)
        self._last = [obs for obs, _ in answers]
        return self._gather(), np.concatenate([success for _, success in answers])

    def close(self) -> None:
        for connection in self.connections:
            with contextlib.suppress(OSError):  # the worker is gone already
                connection.send(("close", ()))
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()

    def metrics(self) -> dict[str, float]:
        """The workers' metrics, summed (they are counts, such as board resets)."""
        total: dict[str, float] = {}
        for metrics in self._call_all("metrics"):
            for key, value in metrics.items():
                total[key] = total.get(key, 0) + value
        return total

    def rng_state(self) -> dict:
        return {"workers": self._call_all("rng_state")}

    def set_rng_state(self, state: dict) -> None:
        """Restores `rng_state()`'s states, or seeds every worker from one generator state (what a caller
        that reseeds a fleet gives)."""
        if "workers" in state:
            states = state["workers"]
        else:
            rng = np.random.default_rng()
            rng.bit_generator.state = state
            seeds = rng.integers(2**63, size=len(self.connections))
            states = [np.random.default_rng(int(seed)).bit_generator.state for seed in seeds]
        self._call("set_rng_state", [(worker_state,) for worker_state in states])

    def _call_all(self, name: str) -> list[Any]:
        return self._call(name, [()] * len(self.connections))

    def _call(self, name: str, args: list[tuple], workers: Any = None) -> list[Any]:
        """Runs the fleet method `name` on `workers` (all by default), each with its `args`, at the same
        time: every request is sent before any answer is read."""
        workers = range(len(self.connections)) if workers is None else workers
        for k, worker_args in zip(workers, args, strict=True):
            self.connections[k].send((name, worker_args))
        return [self._receive(k) for k in workers]

    def _receive(self, k: int) -> Any:
        try:
            status, value = self.connections[k].recv()
        except EOFError as error:
            raise RuntimeError(
                f"env worker {k} died (exit code {self.processes[k].exitcode}); see its output above."
            ) from error
        if status == "error":
            raise RuntimeError(f"env worker {k} failed:\n{value}")
        return value

    def _gather(self) -> Observations:
        assert all(obs is not None for obs in self._last), "reset() every robot first"
        return {key: np.concatenate([obs[key] for obs in self._last]) for key in self._last[0]}  # type: ignore[index]


def _serve(
    connection: Connection, env: dict[str, Any], config: ImproveConfig, camera_size: int | None
) -> None:
    """A worker: builds its share's fleet, then runs the fleet's methods as asked until 'close'."""
    fleet: Fleet | None = None
    try:
        fleet = get_domain(env["id"]).make_fleet(env["config"], config, camera_size)
    except Exception:
        connection.send(("error", traceback.format_exc()))
    while True:
        try:
            name, args = connection.recv()
        except EOFError:
            break  # the main process is gone
        if name == "close":
            if fleet is not None:
                fleet.close()
            break
        if fleet is None:
            connection.send(("error", "the fleet could not be built (traceback sent before)"))
            continue
        try:
            value = getattr(fleet, name)
            connection.send(("ok", value(*args) if callable(value) else value))
        except Exception:
            connection.send(("error", traceback.format_exc()))
