"""Practice episodes of Stage 2 written to disk in the project's dataset format (LeRobot v3.0 layout).

Each iteration's buffer becomes one dataset under `RUN/practice/iteration-KKKK`, with the columns of the
demonstrations (state, goal vector or the instruction as the episode's task, action, true success,
terminal flag) plus what Stage 2 knew: the policy
version that acted, d(o, g), the detector's verdict, the reward and the return. Like a demonstration, an
episode of T actions has T + 1 frames; the last holds the observation where it ended and a zero action.

The dataset is streamed (`PracticeStream`): episodes are appended as the fleet hands them over, complete
and with final returns, and the meta is written when the iteration completes. Streams of iterations that
did not complete are discarded on resume (`discard_unfinished`), because the resumed run plays them again.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from siefm.data.stream import DatasetStream
from siefm.domains import get_domain
from siefm.improve.rollout import PracticeBatch

log = logging.getLogger("siefm")


def practice_episodes(
    batch: PracticeBatch, policy_version: int, threshold: float
) -> list[dict[str, np.ndarray]]:
    """The buffer's episodes as per-episode column dicts (T + 1 frames each)."""
    episodes = []
    text_goals = _text_goals(batch)
    for e in range(len(batch.episode_length)):
        index = np.flatnonzero(batch.episode_id == e)  # samples are stored in step order
        frames = len(index) + 1
        distance = np.append(batch.distance[index].numpy(), batch.final_distance[e])
        state = np.concatenate([batch.state[index].numpy(), batch.final_state[e][None]])
        action = np.concatenate([batch.action[index].numpy(), np.zeros((1, batch.action.shape[1]))])
        # o_0 is never a success (envs redraw starts that already succeed); o_t's truth was seen on step t-1.
        is_success = np.concatenate([[False], batch.next_true_success[index]])
        goal = {} if text_goals else {"goal": np.repeat(batch.goal[index[:1]].numpy(), frames, 0)}
        episodes.append(
            {
                "observation.state": state.astype(np.float32),
                **{key: value.astype(np.float32) for key, value in goal.items()},
                "action": action.astype(np.float32),
                "is_success": is_success.astype(bool),
                "is_terminal": np.arange(frames) == frames - 1,
                "steps_to_go_pred": distance.astype(np.float32),
                "detected_success": distance <= threshold,
                "reward": np.append(batch.rewards[index].numpy(), 0.0).astype(np.float32),
                "return": np.append(batch.returns[index].numpy(), 0.0).astype(np.float32),
                "policy_version": np.full(frames, policy_version, dtype=np.int64),
            }
        )
    return episodes


def iteration_dir(practice_root: Path, iteration: int) -> Path:
    """Where iteration `iteration` (counted from 0) writes its practice: `iteration-KKKK`, K from 1."""
    return Path(practice_root) / f"iteration-{iteration + 1:04d}"


class PracticeStream:
    """One iteration's practice dataset at `root`, written as episodes are handed over (`write`), and made
    readable by `finish` once the iteration completes. Opening it deletes what an earlier attempt left."""

    def __init__(self, root: Path, policy_version: int, threshold: float, env: dict[str, Any]):
        extra = {"env": env, "practice": {"policy_version": policy_version, "success_threshold": threshold}}
        domain = get_domain(env["id"])  # fps and robot type as the demonstrations'
        self.stream = DatasetStream(
            root, fps=domain.fps, robot_type=domain.robot_type, extra_info=extra, overwrite=True
        )
        self.policy_version, self.threshold = policy_version, threshold

    def write(self, batch: PracticeBatch) -> None:
        """Appends `batch`'s episodes (complete, so their returns are final) as one data file."""
        tasks = [str(goal) for goal in batch.episode_goal] if _text_goals(batch) else None
        self.stream.append(practice_episodes(batch, self.policy_version, self.threshold), tasks)

    def finish(self) -> Path:
        return self.stream.finish()


def write_practice(
    root: Path, batch: PracticeBatch, policy_version: int, threshold: float, env: dict[str, Any]
) -> Path:
    """Writes one iteration's practice episodes as a dataset at `root` (replacing an earlier one)."""
    stream = PracticeStream(root, policy_version, threshold, env)
    stream.write(batch)
    return stream.finish()


def discard_unfinished(practice_root: Path, completed_iterations: int) -> list[Path]:
    """Deletes the practice of iterations after the first `completed_iterations`, and returns what it deleted.

    After a crash these hold episodes streamed by an iteration whose updates were never saved (or whose
    stream was finished but not its state): the resumed run plays that iteration again from the same seeds,
    so keeping them would count its episodes twice.
    """
    removed = []
    for path in sorted(Path(practice_root).glob("iteration-*")):
        match = re.fullmatch(r"iteration-(\d+)", path.name)
        if match and int(match.group(1)) > completed_iterations:
            shutil.rmtree(path)
            removed.append(path)
    if removed:
        log.info("discarded the practice of unfinished iterations: %s", ", ".join(p.name for p in removed))
    return removed


def _text_goals(batch: PracticeBatch) -> bool:
    """Instruction goals are written as the episodes' tasks; goal vectors as a `goal` column."""
    return isinstance(batch.episode_goal[0], str)
