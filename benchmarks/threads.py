"""Two jobs on a small machine: Stage 1 speed alone and beside a second Stage 1, with torch's OpenMP threads
as they come (one per core, spinning while they wait), sleeping while they wait (OMP_WAIT_POLICY=PASSIVE),
one thread per job (OMP_NUM_THREADS=1), spinning only briefly before they sleep (GOMP_SPINCOUNT), or each
job given its own core (`taskset -c K`: siefm then computes with one thread, siefm.threads).

    python benchmarks/threads.py --out runs/threads [--settings default PASSIVE one-thread pinned spin-10k]

Each run is `siefm sft` on a PointMass dataset for `steps` steps; speed is taken between its first and
last validation (after start-up). Writes `results.json`; the table is in docs/performance.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import tyro


@dataclass(frozen=True)
class Args:
    out: Path = Path("runs/threads")
    steps: int = 3000
    repeats: int = 2
    """Runs of each setting; the median is reported."""
    settings: tuple[str, ...] = ("default", "PASSIVE", "one-thread")


SETTINGS = {
    "default": {},
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "one-thread": {"OMP_NUM_THREADS": "1"},
    "pinned": {},  # job K runs under `taskset -c K`
    "spin-10k": {"GOMP_SPINCOUNT": "10000"},
    "spin-1k": {"GOMP_SPINCOUNT": "1000"},
}


def start(dataset: Path, out: Path, steps: int, setting: str, job: int) -> subprocess.Popen:
    unset = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT", "SIEFM_THREADS")
    env = {**{k: v for k, v in os.environ.items() if k not in unset}, **SETTINGS[setting]}
    command = [sys.executable, "-m", "siefm.cli", "sft", "--dataset", str(dataset), "--out", str(out)]
    command += ["--sft.steps", str(steps), "--sft.eval-every", str(steps // 3), "--sft.patience", "0"]
    if setting == "pinned":
        command = ["taskset", "-c", str(sorted(os.sched_getaffinity(0))[job]), *command]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def speed(run: Path) -> float:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in records if "sft/step" in r]
    return (records[-1]["sft/step"] - records[0]["sft/step"]) / (records[-1]["time"] - records[0]["time"])


def main(args: Args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    dataset = args.out / "data"
    if not dataset.exists():
        subprocess.run(
            [sys.executable, "-m", "siefm.cli", "collect", "--env", "pointmass", "--out", str(dataset)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    results: dict[str, dict[str, list[float]]] = {}
    for policy in args.settings:
        for together in (1, 2):
            key = f"{policy}, {together} job{'s' if together > 1 else ''}"
            results[key] = {"steps_per_second": []}
            for repeat in range(args.repeats):
                runs = [args.out / f"{policy}-{together}-{repeat}-{k}" for k in range(together)]
                jobs = [start(dataset, run, args.steps, policy, job) for job, run in enumerate(runs)]
                if any(job.wait() != 0 for job in jobs):
                    raise RuntimeError(f"a Stage 1 run of {key} failed")
                results[key]["steps_per_second"] += [speed(run) for run in runs]
            print(key, results[key], flush=True)
    summary = {
        key: float(sorted(value["steps_per_second"])[len(value["steps_per_second"]) // 2])
        for key, value in results.items()
    }
    (args.out / "results.json").write_text(json.dumps({"runs": results, "median": summary}, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main(tyro.cli(Args))
