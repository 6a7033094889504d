"""Thread discipline: a process computes with one thread per core it is given (siefm.threads)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_info

from siefm.threads import cgroup_cpu_quota, configure_threads, cores_given


@pytest.mark.parametrize(
    ("text", "expected"), [("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000", 1), ("", None)]
)
def test_cgroup_quota_rounds_up_and_reads_no_limit(tmp_path: Path, text: str, expected: int | None) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(text)
    assert cgroup_cpu_quota(path) == expected
    assert cgroup_cpu_quota(tmp_path / "missing") is None


def test_configure_threads_sets_torch_and_blas(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("SIEFM_THREADS", "1")
        assert configure_threads() == 1 and torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
        monkeypatch.delenv("SIEFM_THREADS")
        assert configure_threads() == cores_given() == torch.get_num_threads()
        monkeypatch.setenv("SIEFM_THREADS", "two")
        with pytest.raises(ValueError, match="SIEFM_THREADS"):
            configure_threads()
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2, reason="1 core")
def test_a_cli_pinned_to_one_core_computes_with_one_thread() -> None:
    code = (
        "import torch; from siefm.threads import configure_threads as c; c(); print(torch.get_num_threads())"
    )
    core = min(os.sched_getaffinity(0))
    pinned = subprocess.run(
        ["taskset", "-c", str(core), sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert pinned.stdout.strip() == "1"
