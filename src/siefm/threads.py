"""How many threads a siefm process computes with: one per core it is given.

torch sizes its thread pool from the CPUs the process may run on (its affinity: `taskset`, Slurm), but
not from a cgroup CPU quota (`docker --cpus 1`, a Kubernetes limit): such a job starts a thread per
visible core, and the threads spin-wait for each other on the cores the quota allows. Two threads per job
with two jobs on a 2-core machine made a Stage 1 run 5-6x slower (docs/performance.md, "Two jobs on two
cores"). So every `siefm` command calls `configure_threads` first: torch's threads, and the BLAS
libraries' pools at most, are set to the cores given (the affinity mask capped by the quota), or to
SIEFM_THREADS where it is set.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from threadpoolctl import threadpool_info, threadpool_limits

THREADS_VARIABLE = "SIEFM_THREADS"
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


def cores_given() -> int:
    """The CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota (rounded up)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota(CGROUP_CPU_MAX)
    return max(1, min(cores, quota or cores))


def cgroup_cpu_quota(path: Path) -> int | None:
    """CPUs a cgroup v2 `cpu.max` file allows (rounded up); None where there is no quota or no file."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def configure_threads(threads: int | None = None) -> int:
    """Sets torch's threads to `threads`, else SIEFM_THREADS, else the cores given, and caps the BLAS
    libraries' pools at it; returns it. Settings that are already right are left alone, so a process that
    needs no change computes exactly as before (explicitly set pools may sum in another order)."""
    if threads is None:
        variable = os.environ.get(THREADS_VARIABLE, "").strip()
        if variable and (not variable.isdigit() or int(variable) < 1):
            raise ValueError(f"{THREADS_VARIABLE}={variable!r}: set it to a whole number of threads >= 1.")
        threads = int(variable) if variable else cores_given()
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    if any(pool["num_threads"] > threads for pool in threadpool_info() if pool["user_api"] == "blas"):
        threadpool_limits(threads, user_api="blas")  # numpy's OpenBLAS, which torch's setting does not reach
    return threads
