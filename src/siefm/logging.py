"""One metric logger for every stage: `metrics.jsonl`, TensorBoard events and a short log line.

Each record carries the counters it was logged against (e.g. `sft/step`, `improve/env_steps`), so a
reader can plot against optimizer steps or env steps without guessing.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("siefm")


class MetricLogger:
    """Appends metric records to `run_dir/metrics.jsonl` and TensorBoard; summarises them via `logging`."""

    def __init__(self, run_dir: Path, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / "metrics.jsonl"
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: slow, and optional in tests

            self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    def log(self, metrics: dict[str, Any], *, step: int, summary_keys: tuple[str, ...] = ()) -> None:
        """Writes one record; `step` is the x-axis for TensorBoard (the stage's own counter)."""
        record = {"time": time.time(), **{key: _plain(value) for key, value in metrics.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in record.items():
                if key != "time" and isinstance(value, (int, float)) and math.isfinite(value):
                    self._writer.add_scalar(key, value, step)
        if summary_keys:
            log.info(
                "  ".join(
                    f"{key.split('/')[-1]}={_fmt(metrics[key])}" for key in summary_keys if key in metrics
                )
            )

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a `metrics.jsonl` file; a final line cut short by a killed writer is skipped."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:  # only the last line can be a partial write; anything else is corruption
                raise
    return records


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
