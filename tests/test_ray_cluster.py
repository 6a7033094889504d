"""Stage 2 against an existing Ray cluster (`--improve.ray-address`): a head node started with `ray start`
on loopback, the way a user brings up a cluster, joined by `siefm improve` instead of a local instance."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from siefm.data.dataset import read_dataset
from siefm.logging import read_metrics


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "`ray start --head` exited"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"no Ray head node answered on port {port} within {seconds} s")


@pytest.fixture
def cluster() -> tuple[str, dict[str, str]]:
    """A one-node cluster's address and the environment its clients need (Ray's auth token)."""
    pytest.importorskip("ray")
    if shutil.which("ray") is None:
        pytest.skip("the `ray` command is not on PATH")
    # Recent Ray authenticates cluster clients with a shared token; Ray reads it when a process starts,
    # so the head node and the client (a separate `siefm` process, as a user runs it) get it from the env.
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    port = free_port()
    head = ["ray", "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2"]
    head += ["--include-dashboard=false", f"--object-store-memory={200 * 1024**2}", "--block"]
    # --block: the head's processes live as long as this one, so stopping it stops exactly this cluster
    # (`ray stop` would stop every Ray process on the machine).
    process = subprocess.Popen(head, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield f"127.0.0.1:{port}", env
    finally:
        process.terminate()
        process.wait(timeout=120)


def test_stage2_joins_an_existing_cluster(cluster, sft_run: Path, tmp_path: Path) -> None:
    address, env = cluster
    out = tmp_path / "rl"
    command = [sys.executable, "-m", "siefm.cli", "improve", "--sft-run", str(sft_run), "--out", str(out)]
    command += ["--improve.fleet", "ray", "--improve.actors", "2", "--improve.ray-address", address]
    command += [
        "--improve.num-iterations",
        "1",
        "--improve.num-updates",
        "4",
        "--improve.minibatch-size",
        "32",
    ]
    done = subprocess.run(command, timeout=300, capture_output=True, text=True, env=env)
    # With an address Ray only joins: had there been no cluster there, the run would have failed.
    assert done.returncode == 0, done.stderr[-2000:]
    record = read_metrics(out / "metrics.jsonl")[-1]
    assert record["fleet/actors_replaced"] == 0 and record["improve/episodes"] >= 1
    episodes = read_dataset(out / "practice" / "iteration-0001").num_episodes
    assert episodes == record["improve/episodes"]
