"""Gathers what examples/fetch_push/run.sh wrote into one JSON: each policy's evaluation (success with its
Wilson 95% interval, mean steps), Stage 1's calibrated detector, and Stage 2's practice, iteration by
iteration (true and detected success, the detector's precision and recall, episode length).

    python examples/fetch_push/summarise.py runs/fetch-push docs/results/fetch_push.json

The diagnostic run `rl-true-end` (same as `rl` with `--improve.end-on-true-success`, evaluated into
`eval-rl-true-end`) is included where it was made.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(run: Path, out: Path) -> None:
    summary: dict[str, object] = {}
    # rl-true-end: the diagnostic run that ends practice episodes on the simulator's success, if made
    for name in ("sft-n", "sft-4n", "rl", "rl-true-end"):
        if not (run / f"eval-{name}").is_dir():
            continue
        results = json.loads((run / f"eval-{name}" / "results.json").read_text())
        summary[f"eval_{name}"] = {
            k: v for k, v in results.items() if k in ("env", "eval", "policy", "demonstrator", "optimal")
        }
    for name in ("sft-n", "sft-4n"):
        stage1 = json.loads((run / name / "sft_summary.json").read_text())
        summary[f"stage1_{name}"] = {k: stage1[k] for k in ("steps", "calibration", "wall_seconds")}
        summary[f"stage1_{name}"]["train_episodes"] = json.loads(
            (run / name / "checkpoints" / "policy" / "checkpoint.json").read_text()
        )["metadata"]["train_episodes"]
    keys = (
        "improve/iteration",
        "improve/episodes",
        "improve/env_steps",
        "rollout/true_success",
        "rollout/detected_success",
        "rollout/detector_precision",
        "rollout/detector_recall",
        "rollout/episode_length",
    )
    for name in ("rl", "rl-true-end"):
        if (run / name / "metrics.jsonl").is_file():
            rows = [json.loads(line) for line in (run / name / "metrics.jsonl").read_text().splitlines()]
            summary[f"practice_{name}"] = [{key: row.get(key) for key in keys} for row in rows]
    out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
